/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#include <apr_lib.h>
#include <apr_file_info.h>
#include <apr_strings.h>
#include <apr_uri.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>

#include "mod_lemonade_config.h"

#define UNSET (-1)

/* Defaults: each one works with no directive at all. */
#define DEF_BACKEND_TIMEOUT  apr_time_from_sec(30)
#define DEF_IDLE_TIMEOUT     apr_time_from_sec(25 * 60) /* < IMAP's 30 min */
#define DEF_SESSION_WAIT     apr_time_from_sec(10)
#define DEF_HEARTBEAT        apr_time_from_sec(55)  /* < proxies' 60 s */
#define DEF_LIFETIME         apr_time_from_sec(24 * 3600)
#define DEF_MAX_PER_CLIENT   256    /* room for a NAT of a small office */
#define DEF_COOKIE_NAME      "lemonade_session"
#define DEF_MAX_BODY         ((apr_off_t)64 * 1024 * 1024)
#define DEF_MAX_LINE         ((apr_size_t)64 * 1024)
#define DEF_MAX_LITERAL      ((apr_off_t)64 * 1024 * 1024)
#define DEF_MAX_COMMANDS     1000
#define DEF_SPOOL_MEMORY     ((apr_size_t)256 * 1024)
#define DEF_MAX_SESSIONS     4096
#define DEF_SOCKET_PATH      "lemonade"

void *lem_dir_conf_create(apr_pool_t *p, char *dir)
{
    lem_dir_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    conf->location = dir;
    conf->backend_timeout = UNSET;
    conf->idle_timeout = UNSET;
    conf->session_wait = UNSET;
    conf->heartbeat = UNSET;
    conf->lifetime = UNSET;
    conf->starttls = UNSET;
    conf->max_per_client = UNSET;
    conf->bind_address = UNSET;
    conf->require_tls = UNSET;
    conf->max_body = UNSET;
    conf->max_line = 0;
    conf->max_literal = UNSET;
    conf->max_commands = UNSET;
    conf->spool_memory = 0;
    return conf;
}

#define PICK(field, unset) \
    conf->field = (add->field != (unset)) ? add->field : base->field

void *lem_dir_conf_merge(apr_pool_t *p, void *basev, void *addv)
{
    const lem_dir_conf_t *base = basev, *add = addv;
    lem_dir_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    PICK(location, NULL);
    PICK(backend_url, NULL);
    PICK(proto, LEM_PROTO_NONE);
    PICK(backend_host, NULL);
    PICK(backend_port, 0);
    /* the scheme and its TLS go together */
    conf->backend_tls = add->backend_url ? add->backend_tls
                                         : base->backend_tls;
    PICK(starttls, UNSET);
    PICK(backend_ca, NULL);
    PICK(backend_timeout, UNSET);
    PICK(idle_timeout, UNSET);
    PICK(session_wait, UNSET);
    PICK(heartbeat, UNSET);
    PICK(lifetime, UNSET);
    PICK(max_per_client, UNSET);
    PICK(bind_address, UNSET);
    PICK(require_tls, UNSET);
    PICK(cookie_name, NULL);
    PICK(max_body, UNSET);
    PICK(max_line, 0);
    PICK(max_literal, UNSET);
    PICK(max_commands, UNSET);
    PICK(spool_memory, 0);
    return conf;
}

void *lem_srv_conf_create(apr_pool_t *p, server_rec *s)
{
    lem_srv_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    (void)s;
    conf->max_sessions = DEF_MAX_SESSIONS;
    conf->socket_path = DEF_SOCKET_PATH;
    return conf;
}

#define DEFAULT(field, unset, value) \
    if (conf->field == (unset)) conf->field = (value)

const lem_dir_conf_t *lem_dir_conf(const request_rec *r)
{
    const lem_dir_conf_t *set = ap_get_module_config(r->per_dir_config,
                                                     &lemonade_module);
    lem_dir_conf_t *conf = apr_pmemdup(r->pool, set, sizeof(*conf));

    DEFAULT(location, NULL, "/");
    DEFAULT(backend_timeout, UNSET, DEF_BACKEND_TIMEOUT);
    DEFAULT(idle_timeout, UNSET, DEF_IDLE_TIMEOUT);
    DEFAULT(session_wait, UNSET, DEF_SESSION_WAIT);
    DEFAULT(heartbeat, UNSET, DEF_HEARTBEAT);
    DEFAULT(lifetime, UNSET, DEF_LIFETIME);
    DEFAULT(max_per_client, UNSET, DEF_MAX_PER_CLIENT);
    DEFAULT(bind_address, UNSET, 0);
    DEFAULT(require_tls, UNSET, 0);
    DEFAULT(starttls, UNSET, 0);
    if (conf->starttls && conf->backend_tls == LEM_TLS_NONE) {
        conf->backend_tls = LEM_TLS_STARTTLS;
    }
    DEFAULT(cookie_name, NULL, DEF_COOKIE_NAME);
    DEFAULT(max_body, UNSET, DEF_MAX_BODY);
    DEFAULT(max_line, 0, DEF_MAX_LINE);
    DEFAULT(max_literal, UNSET, DEF_MAX_LITERAL);
    DEFAULT(max_commands, UNSET, DEF_MAX_COMMANDS);
    DEFAULT(spool_memory, 0, DEF_SPOOL_MEMORY);
    return conf;
}

const lem_srv_conf_t *lem_srv_conf(const server_rec *s)
{
    return ap_get_module_config(s->module_config, &lemonade_module);
}

const char *lem_proto_name(lem_proto_t proto)
{
    switch (proto) {
    case LEM_PROTO_IMAP: return "IMAP";
    case LEM_PROTO_SMTP: return "SMTP";
    default:             return "none";
    }
}

/* ------------------------------------------------------------------ */
/* Directive handlers                                                  */
/* ------------------------------------------------------------------ */

/* The schemes of LemonadeBackend, and what each means. */
static const struct {
    const char    *scheme;
    lem_proto_t    proto;
    lem_tls_mode_t tls;
    apr_port_t     port;
} schemes[] = {
    { "imap",  LEM_PROTO_IMAP, LEM_TLS_NONE,     143 },
    { "imaps", LEM_PROTO_IMAP, LEM_TLS_IMPLICIT, 993 },
    { "smtp",  LEM_PROTO_SMTP, LEM_TLS_NONE,     25 },
    { "smtps", LEM_PROTO_SMTP, LEM_TLS_IMPLICIT, 465 },
};

static const char *set_backend(cmd_parms *cmd, void *dconf, const char *arg)
{
    lem_dir_conf_t *conf = dconf;
    apr_uri_t uri;
    size_t i;

    if (apr_uri_parse(cmd->pool, arg, &uri) != APR_SUCCESS
        || !uri.scheme || !uri.hostname) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a URL of the form "
                            "imap://HOST:PORT", cmd->cmd->name, arg);
    }
    for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        if (!strcasecmp(uri.scheme, schemes[i].scheme)) {
            break;
        }
    }
    if (i == sizeof(schemes) / sizeof(schemes[0])) {
        return apr_psprintf(cmd->pool, "%s: unsupported scheme '%s' in '%s' "
                            "(use imap://, imaps://, smtp:// or smtps://)",
                            cmd->cmd->name, uri.scheme, arg);
    }
    if (uri.user || uri.password || uri.query || uri.fragment
        || (uri.path && strcmp(uri.path, "/"))) {
        return apr_psprintf(cmd->pool, "%s: '%s' may name only a host and "
                            "a port", cmd->cmd->name, arg);
    }
    conf->proto = schemes[i].proto;
    conf->backend_tls = schemes[i].tls;
    conf->backend_url = arg;
    conf->backend_host = uri.hostname;
    conf->backend_port = uri.port ? uri.port : schemes[i].port;
    return NULL;
}

static const char *set_ca(cmd_parms *cmd, void *dconf, const char *arg)
{
    lem_dir_conf_t *conf = dconf;
    const char *path = ap_server_root_relative(cmd->pool, arg);
    apr_finfo_t fi;

    if (!path || apr_stat(&fi, path, APR_FINFO_TYPE, cmd->pool)
                 != APR_SUCCESS || fi.filetype != APR_REG) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a readable file of "
                            "CA certificates", cmd->cmd->name, arg);
    }
    conf->backend_ca = path;
    return NULL;
}

static const char *set_interval(cmd_parms *cmd, void *dconf, const char *arg)
{
    apr_interval_time_t t;
    char *base = dconf;

    if (ap_timeout_parameter_parse(arg, &t, "s") != APR_SUCCESS || t <= 0) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a positive time "
                            "(seconds, or with ms/s/mi/h)", cmd->cmd->name,
                            arg);
    }
    *(apr_interval_time_t *)(base + (apr_size_t)cmd->info) = t;
    return NULL;
}

/* A byte count, with an optional K, M or G suffix. */
static const char *parse_size(cmd_parms *cmd, const char *arg, apr_off_t *n)
{
    char *end;
    apr_off_t v;

    if (apr_strtoff(&v, arg, &end, 10) != APR_SUCCESS || v <= 0) {
        goto bad;
    }
    switch (*end) {
    case 'K': case 'k': v *= 1024; end++; break;
    case 'M': case 'm': v *= 1024 * 1024; end++; break;
    case 'G': case 'g': v *= 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end) {
        goto bad;
    }
    *n = v;
    return NULL;
bad:
    return apr_psprintf(cmd->pool, "%s: '%s' is not a positive size "
                        "(bytes, or with K/M/G)", cmd->cmd->name, arg);
}

static const char *set_off(cmd_parms *cmd, void *dconf, const char *arg)
{
    char *base = dconf;

    return parse_size(cmd, arg, (apr_off_t *)(base
                                              + (apr_size_t)cmd->info));
}

static const char *set_size(cmd_parms *cmd, void *dconf, const char *arg)
{
    char *base = dconf;
    apr_off_t n;
    const char *err = parse_size(cmd, arg, &n);

    if (!err && (apr_uint64_t)n > APR_SIZE_MAX / 2) {
        err = apr_psprintf(cmd->pool, "%s: '%s' is too large",
                           cmd->cmd->name, arg);
    }
    if (!err) {
        *(apr_size_t *)(base + (apr_size_t)cmd->info) = (apr_size_t)n;
    }
    return err;
}

static const char *set_count(cmd_parms *cmd, void *dconf, const char *arg)
{
    char *base = dconf;
    int n = atoi(arg);

    if (n <= 0 || n > 1000000) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a count from 1 to "
                            "1000000", cmd->cmd->name, arg);
    }
    *(int *)(base + (apr_size_t)cmd->info) = n;
    return NULL;
}

static const char *set_flag(cmd_parms *cmd, void *dconf, int on)
{
    char *base = dconf;

    *(int *)(base + (apr_size_t)cmd->info) = on;
    return NULL;
}

static const char *set_cookie(cmd_parms *cmd, void *dconf, const char *arg)
{
    lem_dir_conf_t *conf = dconf;
    const char *c;

    /* RFC 6265 4.1.1: cookie-name is a token */
    for (c = arg; *c; c++) {
        if (!apr_isalnum(*c) && !strchr("!#$%&'*+-.^_`|~", *c)) {
            return apr_psprintf(cmd->pool, "%s: '%s' is not a cookie name",
                                cmd->cmd->name, arg);
        }
    }
    if (!*arg) {
        return "LemonadeSessionCookie: the name is empty";
    }
    conf->cookie_name = arg;
    return NULL;
}

static const char *set_max_sessions(cmd_parms *cmd, void *dummy,
                                    const char *arg)
{
    lem_srv_conf_t *conf = ap_get_module_config(cmd->server->module_config,
                                                &lemonade_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    int n = atoi(arg);

    (void)dummy;
    if (err) {
        return err;
    }
    if (n < 1 || n > 1000000) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a count from 1 to "
                            "1000000", cmd->cmd->name, arg);
    }
    conf->max_sessions = n;
    return NULL;
}

static const char *set_socket(cmd_parms *cmd, void *dummy, const char *arg)
{
    lem_srv_conf_t *conf = ap_get_module_config(cmd->server->module_config,
                                                &lemonade_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dummy;
    if (err) {
        return err;
    }
    conf->socket_path = arg;
    return NULL;
}

/* mod_proxy_balancer's stickysession reads the route after the first
 * ".": it must be a token of its own. */
static const char *set_route(cmd_parms *cmd, void *dummy, const char *arg)
{
    lem_srv_conf_t *conf = ap_get_module_config(cmd->server->module_config,
                                                &lemonade_module);
    const char *c;

    (void)dummy;
    for (c = arg; *c; c++) {
        if (!apr_isalnum(*c) && *c != '-' && *c != '_') {
            return apr_psprintf(cmd->pool, "%s: '%s' may hold only "
                                "letters, digits, '-' and '_'",
                                cmd->cmd->name, arg);
        }
    }
    conf->route = *arg ? arg : NULL;
    return NULL;
}

#define DIR_OFFSET(field) (void *)APR_OFFSETOF(lem_dir_conf_t, field)

const command_rec lem_cmds[] = {
    AP_INIT_TAKE1("LemonadeBackend", set_backend, NULL, ACCESS_CONF,
        "imap://HOST:PORT or smtp://HOST:PORT: the server this Location "
        "carries commands to"),
    AP_INIT_FLAG("LemonadeBackendStartTLS", set_flag,
        DIR_OFFSET(starttls), ACCESS_CONF,
        "On: protect an imap:// or smtp:// backend with STARTTLS before "
        "anything else is sent (default Off)"),
    AP_INIT_TAKE1("LemonadeBackendCA", set_ca, NULL, ACCESS_CONF,
        "a file of CA certificates the backend's certificate is verified "
        "against (default: the system's store)"),
    AP_INIT_TAKE1("LemonadeBackendTimeout", set_interval,
        DIR_OFFSET(backend_timeout), ACCESS_CONF,
        "how long to wait for the backend to connect or answer "
        "(default 30s)"),
    AP_INIT_TAKE1("LemonadeSessionIdleTimeout", set_interval,
        DIR_OFFSET(idle_timeout), ACCESS_CONF,
        "how long an unused session keeps its backend connection "
        "(default 25 minutes)"),
    AP_INIT_TAKE1("LemonadeSessionWait", set_interval,
        DIR_OFFSET(session_wait), ACCESS_CONF,
        "how long a request waits for its session while another request "
        "uses it (default 10s)"),
    AP_INIT_TAKE1("LemonadeHeartbeat", set_interval,
        DIR_OFFSET(heartbeat), ACCESS_CONF,
        "how long IDLE in an in-response batch (a long poll) waits for "
        "news before it is answered anyway (default 55s)"),
    AP_INIT_TAKE1("LemonadeSessionCookie", set_cookie, NULL, ACCESS_CONF,
        "the name of the session cookie (default lemonade_session)"),
    AP_INIT_TAKE1("LemonadeMaxRequestBody", set_off,
        DIR_OFFSET(max_body), ACCESS_CONF,
        "the largest request body accepted (default 64M)"),
    AP_INIT_TAKE1("LemonadeMaxLineLength", set_size,
        DIR_OFFSET(max_line), ACCESS_CONF,
        "the longest command line accepted (default 64K)"),
    AP_INIT_TAKE1("LemonadeMaxLiteralSize", set_off,
        DIR_OFFSET(max_literal), ACCESS_CONF,
        "the largest literal accepted (default 64M)"),
    AP_INIT_TAKE1("LemonadeMaxCommands", set_count,
        DIR_OFFSET(max_commands), ACCESS_CONF,
        "the most commands in one request (default 1000)"),
    AP_INIT_TAKE1("LemonadeMaxSessionsPerClient", set_count,
        DIR_OFFSET(max_per_client), ACCESS_CONF,
        "the most in-response sessions one client address may hold "
        "(default 256)"),
    AP_INIT_TAKE1("LemonadeSessionMaxLifetime", set_interval,
        DIR_OFFSET(lifetime), ACCESS_CONF,
        "the longest an in-response session lives, used or not "
        "(default 24h)"),
    AP_INIT_FLAG("LemonadeSessionBindAddress", set_flag,
        DIR_OFFSET(bind_address), ACCESS_CONF,
        "On: a session is found only from the client address that opened "
        "it (default Off)"),
    AP_INIT_FLAG("LemonadeRequireTLS", set_flag,
        DIR_OFFSET(require_tls), ACCESS_CONF,
        "On: refuse the binding over plain HTTP with 403 (default Off)"),
    AP_INIT_TAKE1("LemonadeSpoolMemory", set_size,
        DIR_OFFSET(spool_memory), ACCESS_CONF,
        "how much of a request or answer is held in memory before the "
        "rest goes to a temporary file (default 256K)"),
    AP_INIT_TAKE1("LemonadeMaxSessions", set_max_sessions, NULL,
        RSRC_CONF, "slots in the shared session table (default 4096; "
        "takes effect when Apache starts, not on a restart)"),
    AP_INIT_TAKE1("LemonadeRoute", set_route, NULL, RSRC_CONF,
        "this node's name for a balancer's sticky sessions: session ids "
        "end in .ROUTE"),
    AP_INIT_TAKE1("LemonadeSocket", set_socket, NULL, RSRC_CONF,
        "where the session keeper's Unix socket lives, relative to "
        "DefaultRuntimeDir (default 'lemonade')"),
    { NULL }
};
