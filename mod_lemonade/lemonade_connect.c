/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * lemonade-connect: a local IMAP or SMTP port carried over HTTP
 * (draft-maes-lemonade-http-binding-04). See lemonade_connect.h for the
 * layout and lemonade-connect.1 for the user's side.
 *
 * One thread per client connection. A session is a short sequence of
 * blocking steps (connect, CONNECT through a proxy, TLS, a request, its
 * answer, the client's next command) with a protocol state that lives
 * across them; written as straight-line code in a thread of its own,
 * each step reads as what it does. Mail clients open few connections
 * (one or two per account), so a thread each costs little; the sessions
 * share only the read-only configuration, the TLS context and the
 * fallback note, and each thread waits with poll() on its own sockets
 * so that every wait stays bounded.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "lemonade_connect.h"
#include "lemonade_connect_http.h"

static const char usage_text[] =
"NAME\n"
"    lemonade-connect - a local IMAP or SMTP port carried over HTTP\n"
"\n"
"SYNOPSIS\n"
"    lemonade-connect [options] LISTEN_ADDR:PORT URL\n"
"\n"
"DESCRIPTION\n"
"    Listens on LISTEN_ADDR:PORT. Each client connection (a mail client,\n"
"    a synchroniser, a submission tool) becomes one session over the HTTP\n"
"    binding of draft-maes-lemonade-http-binding-04 at URL, such as\n"
"    mod_lemonade serves. URL is asked with OPTIONS once at start-up; its\n"
"    Lemonade-Protocol answer says whether the port speaks IMAP or SMTP.\n"
"\n"
"    In-band mode (draft 2.1.2) is tried first: one chunked POST per\n"
"    connection, the client's bytes out as chunks, the answer's chunks\n"
"    back as bytes. If the answer's first chunk, the server's greeting,\n"
"    does not come within --inband-wait seconds, something on the way\n"
"    holds chunked messages back (a buffering proxy); the session goes\n"
"    on in in-response mode (draft 2.1.1) instead, unseen by the client,\n"
"    and so do the sessions of the next 15 minutes. That is logged once.\n"
"\n"
"    In in-response mode the client's commands are posted in batches\n"
"    with the session's cookie. What that mode cannot carry is answered\n"
"    here: the go-ahead of an IMAP synchronizing literal; IMAP IDLE,\n"
"    carried as a run of long polls; IMAP AUTHENTICATE PLAIN and SMTP\n"
"    AUTH PLAIN or LOGIN without an initial response; SMTP DATA, whose\n"
"    354 is given here and whose message goes out with it.\n"
"\n"
"    A lost HTTP connection ends the client's session with an IMAP\n"
"    \"* BYE\" or an SMTP \"421\" and a close.\n"
"\n"
"OPTIONS\n"
"    --ca FILE\n"
"        Trust the CA certificates (PEM) in FILE for https URLs instead\n"
"        of the system's store. The server's certificate must name the\n"
"        URL's host.\n"
"    --insecure\n"
"        Do not verify the server's certificate. For tests only.\n"
"    --proxy http://[USER:PASSWORD@]HOST:PORT\n"
"        Reach the server through this HTTP proxy, with CONNECT.\n"
"    --mode auto|in-band|in-response\n"
"        auto (the default) tries in-band and falls back; the others\n"
"        use one mode only.\n"
"    --inband-wait SECONDS\n"
"        How long to wait for the in-band greeting (default 5).\n"
"    --connect-timeout SECONDS\n"
"        For TCP, the proxy's CONNECT and TLS together (default 10).\n"
"    --timeout SECONDS\n"
"        The longest silence within an HTTP answer, and the longest a\n"
"        write may wait (default 60).\n"
"    --idle-timeout SECONDS\n"
"        A session silent this long on both sides ends (default 1800).\n"
"    --heartbeat SECONDS\n"
"        In in-response mode, how long one IDLE long poll may be held\n"
"        (Lemonade-Heartbeat); also how long DONE may wait (default 5).\n"
"    --max-clients N\n"
"        Sessions at once; more are turned away (default 64).\n"
"    -v, --verbose\n"
"        A log line per session. Passwords and message contents are\n"
"        never logged.\n"
"    -h, --help\n"
"        This text.\n"
"    -V, --version\n"
"        The version.\n"
"\n"
"EXAMPLES\n"
"    lemonade-connect 127.0.0.1:1143 https://mail.example.com/lemonade/imap\n"
"    lemonade-connect --proxy http://proxy.example.com:3128 \\\n"
"        127.0.0.1:1587 https://mail.example.com/lemonade/smtp\n"
"\n"
"EXIT STATUS\n"
"    0 never (it serves until killed); 1 if URL cannot be used or the\n"
"    port cannot be listened on; 2 for a bad command line.\n";

/* Long options without a short letter. */
enum {
    OPT_CA = 256, OPT_INSECURE, OPT_PROXY, OPT_MODE, OPT_INBAND_WAIT,
    OPT_CONNECT_TIMEOUT, OPT_TIMEOUT, OPT_IDLE_TIMEOUT, OPT_HEARTBEAT,
    OPT_MAX_CLIENTS
};

/* Sessions now, against --max-clients. */
static pthread_mutex_t clients_lock = PTHREAD_MUTEX_INITIALIZER;
static int clients;

/* ------------------------------------------------------------------ */
/* The command line                                                    */
/* ------------------------------------------------------------------ */

static void usage_error(const char *fmt, const char *arg)
{
    fputs("lemonade-connect: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\nTry 'lemonade-connect --help'.\n", stderr);
    exit(2);
}

static int seconds(const char *arg, const char *name)
{
    char *end;
    long v = strtol(arg, &end, 10);

    if (*arg == '\0' || *end != '\0' || v < 1 || v > 24 * 3600) {
        usage_error("%s wants a number of seconds from 1 to 86400", name);
    }
    return (int)v;
}

/* LISTEN_ADDR:PORT, the address in brackets for IPv6. */
static void parse_listen(lc_conf_t *conf, const char *arg)
{
    const char *colon = strrchr(arg, ':');
    size_t n;

    if (!colon || !colon[1] || strlen(colon + 1) >= sizeof(conf->listen_port)
        || strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
        usage_error("'%s' is not LISTEN_ADDR:PORT", arg);
    }
    n = (size_t)(colon - arg);
    if (n >= 2 && arg[0] == '[' && arg[n - 1] == ']') {
        arg++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(conf->listen_host)) {
        usage_error("'%s' is not LISTEN_ADDR:PORT", arg);
    }
    memcpy(conf->listen_host, arg, n);
    conf->listen_host[n] = '\0';
    strcpy(conf->listen_port, colon + 1);
}

static void parse_option(lc_conf_t *conf, int opt, const char *arg)
{
    const char *why;

    switch (opt) {
    case OPT_CA: conf->ca_file = arg; break;
    case OPT_INSECURE: conf->insecure = 1; break;
    case OPT_PROXY:
        if (lc_url_parse(&conf->proxy, arg, &why) != LC_OK) {
            usage_error("--proxy: %s", why);
        }
        if (conf->proxy.tls) {
            usage_error("--proxy: %s", "the proxy is reached with http://");
        }
        conf->have_proxy = 1;
        break;
    case OPT_MODE:
        conf->mode = !strcmp(arg, "auto") ? LC_MODE_AUTO
                   : !strcmp(arg, "in-band") ? LC_MODE_INBAND
                   : !strcmp(arg, "in-response") ? LC_MODE_INRESPONSE : -1;
        if ((int)conf->mode < 0) {
            usage_error("--mode: '%s' is not auto, in-band or in-response",
                        arg);
        }
        break;
    case OPT_INBAND_WAIT:
        conf->inband_wait = seconds(arg, "--inband-wait");
        break;
    case OPT_CONNECT_TIMEOUT:
        conf->connect_timeout = seconds(arg, "--connect-timeout");
        break;
    case OPT_TIMEOUT: conf->timeout = seconds(arg, "--timeout"); break;
    case OPT_IDLE_TIMEOUT:
        conf->idle_timeout = seconds(arg, "--idle-timeout");
        break;
    case OPT_HEARTBEAT: conf->heartbeat = seconds(arg, "--heartbeat"); break;
    case OPT_MAX_CLIENTS:
        conf->max_clients = atoi(arg);
        if (conf->max_clients < 1) {
            usage_error("--max-clients: '%s' is not a positive number", arg);
        }
        break;
    case 'v': conf->verbose = 1; break;
    case 'h': fputs(usage_text, stdout); exit(0);
    case 'V': puts("lemonade-connect " LC_VERSION); exit(0);
    default: usage_error("%s", "unknown option");
    }
}

static void parse_args(lc_conf_t *conf, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "ca", required_argument, NULL, OPT_CA },
        { "insecure", no_argument, NULL, OPT_INSECURE },
        { "proxy", required_argument, NULL, OPT_PROXY },
        { "mode", required_argument, NULL, OPT_MODE },
        { "inband-wait", required_argument, NULL, OPT_INBAND_WAIT },
        { "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
        { "timeout", required_argument, NULL, OPT_TIMEOUT },
        { "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
        { "heartbeat", required_argument, NULL, OPT_HEARTBEAT },
        { "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    const char *why;
    int opt;

    conf->inband_wait = 5;
    conf->connect_timeout = 10;
    conf->timeout = 60;
    conf->idle_timeout = 1800;
    conf->heartbeat = 5;
    conf->max_clients = 64;
    while ((opt = getopt_long(argc, argv, "vhV", longopts, NULL)) != -1) {
        parse_option(conf, opt, optarg);
    }
    if (argc - optind != 2) {
        usage_error("%s", "LISTEN_ADDR:PORT and URL are wanted");
    }
    parse_listen(conf, argv[optind]);
    if (lc_url_parse(&conf->url, argv[optind + 1], &why) != LC_OK) {
        usage_error("URL: %s", why);
    }
}

/* ------------------------------------------------------------------ */
/* The start-up probe                                                  */
/* ------------------------------------------------------------------ */

/* draft section 5, item 1 (as mod_lemonade serves it): OPTIONS says
 * which protocol the URL carries, and in which modes. */
static int probe(lc_conf_t *conf, char *err, size_t cap)
{
    lc_conn_t *c = malloc(sizeof(*c));
    lc_head_t h;
    lc_body_t body;
    const char *data;
    size_t len;
    int rc;

    if (!c) {
        snprintf(err, cap, "out of memory");
        return LC_ERROR;
    }
    rc = lc_http_open(c, conf);
    if (rc == LC_OK) {
        rc = lc_http_request(c, conf, "OPTIONS", -2, "Connection: close\r\n",
                             NULL);
    }
    if (rc == LC_OK) {
        rc = lc_http_head(c, &h, NULL, conf->timeout * 1000);
    }
    if (rc == LC_OK) {
        lc_body_init(&body, &h, "OPTIONS");
        while (lc_body_next(c, &body, conf->timeout * 1000, &data, &len)
               == LC_OK) {
            /* nothing in it is needed */
        }
    }
    snprintf(err, cap, "%s", c->err[0] ? c->err : "no answer in time");
    lc_conn_close(c);
    free(c);
    if (rc != LC_OK) {
        return LC_ERROR;
    }
    if (h.status < 200 || h.status > 299) {
        snprintf(err, cap, "OPTIONS was answered %d %s", h.status, h.reason);
        return LC_ERROR;
    }
    conf->proto = !strcasecmp(h.protocol, "IMAP") ? &lc_imap_proto
                : !strcasecmp(h.protocol, "SMTP") ? &lc_smtp_proto : NULL;
    if (!conf->proto) {
        snprintf(err, cap, "the OPTIONS answer names no protocol this "
                 "program speaks (Lemonade-Protocol: \"%s\")", h.protocol);
        return LC_ERROR;
    }
    conf->server_inband = strstr(h.modes, "in-band") != NULL;
    return LC_OK;
}

/* ------------------------------------------------------------------ */
/* Sessions                                                            */
/* ------------------------------------------------------------------ */

/* Which mode, for a session starting now. */
static int try_inband(const lc_conf_t *conf)
{
    return conf->mode == LC_MODE_INBAND
           || (conf->mode == LC_MODE_AUTO && conf->server_inband
               && !lc_fallback_active());
}

static void note_fallback(lc_session_t *s)
{
    if (lc_fallback_note()) {
        lc_log(s, "no in-band greeting from %s within %d s (%s): "
               "something on the way holds chunked messages back; using "
               "in-response mode from now on, in-band again in 15 minutes",
               s->conf->url.authority, s->conf->inband_wait, s->err);
    }
    s->err[0] = '\0';
}

static void log_end(const lc_session_t *s, long long started)
{
    double took = (double)(lc_now_ms() - started) / 1000.0;

    if (s->conf->verbose) {
        lc_log(s, "%s %s, %.1f s, %lld bytes up, %lld down: %s%s%s",
               s->conf->proto->name, s->mode, took, s->up, s->down,
               s->end ? s->end : "ended", s->err[0] ? ": " : "", s->err);
    }
    else if (s->err[0]) {
        lc_log(s, "%s: %s", s->end ? s->end : "ended", s->err);
    }
}

static void *session_main(void *arg)
{
    lc_session_t *s = arg;
    const lc_conf_t *conf = s->conf;
    long long started = lc_now_ms();
    int fallback = !try_inband(conf);

    /* 1. in-band, when it may work */
    s->mode = "in-band";
    if (!fallback && lc_inband(s) == LC_TIMEOUT) {
        if (conf->mode == LC_MODE_INBAND) {
            char why[LC_ERR_MAX + 64];

            snprintf(why, sizeof(why), "lemonade-connect: no in-band "
                     "session: %s", s->err);
            lc_client_bye(s, why);
            s->end = "in-band mode does not pass";
        }
        else {
            note_fallback(s);
            fallback = 1;
        }
    }

    /* 2. in-response, when it must */
    if (fallback) {
        s->mode = "in-response";
        conf->proto->in_response(s);
    }

    /* 3. the end */
    log_end(s, started);
    close(s->cfd);
    free(s);
    pthread_mutex_lock(&clients_lock);
    clients--;
    pthread_mutex_unlock(&clients_lock);
    return NULL;
}

static void start_session(const lc_conf_t *conf, int fd, const char *peer)
{
    static unsigned next_id;
    lc_session_t *s;
    pthread_attr_t attr;
    pthread_t tid;
    int full;

    pthread_mutex_lock(&clients_lock);
    full = clients >= conf->max_clients;
    clients += !full;
    pthread_mutex_unlock(&clients_lock);
    s = full ? NULL : calloc(1, sizeof(*s));
    if (!s) {
        const char *bye = conf->proto == &lc_imap_proto
            ? "* BYE [UNAVAILABLE] lemonade-connect: too many clients\r\n"
            : "421 4.3.2 lemonade-connect: too many clients\r\n";

        send(fd, bye, strlen(bye), MSG_DONTWAIT | MSG_NOSIGNAL);
        close(fd);
        lc_log(NULL, "turned a client away from %s: %s", peer,
               full ? "--max-clients reached" : "out of memory");
        if (!full) {
            pthread_mutex_lock(&clients_lock);
            clients--;
            pthread_mutex_unlock(&clients_lock);
        }
        return;
    }
    s->conf = conf;
    s->id = ++next_id;
    s->cfd = fd;
    snprintf(s->peer, sizeof(s->peer), "%s", peer);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&tid, &attr, session_main, s) != 0) {
        lc_log(s, "cannot start a thread: %s", strerror(errno));
        close(fd);
        free(s);
        pthread_mutex_lock(&clients_lock);
        clients--;
        pthread_mutex_unlock(&clients_lock);
    }
    pthread_attr_destroy(&attr);
}

/* ------------------------------------------------------------------ */
/* Listening                                                           */
/* ------------------------------------------------------------------ */

static int listen_on(const lc_conf_t *conf)
{
    struct addrinfo hints, *res, *ai;
    int fd = -1, one = 1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(conf->listen_host, conf->listen_port, &hints, &res);
    if (rc != 0) {
        lc_log(NULL, "cannot listen on %s: %s", conf->listen_host,
               gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0
            || listen(fd, 64) < 0) {
            rc = errno;
            close(fd);
            fd = -1;
            errno = rc;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        lc_log(NULL, "cannot listen on %s:%s: %s", conf->listen_host,
               conf->listen_port, strerror(errno));
    }
    return fd;
}

static void peer_name(const struct sockaddr_storage *sa, socklen_t len,
                      char *out, size_t cap)
{
    char host[NI_MAXHOST], port[NI_MAXSERV];

    if (getnameinfo((const struct sockaddr *)sa, len, host, sizeof(host),
                    port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV)) {
        snprintf(out, cap, "?");
        return;
    }
    snprintf(out, cap, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
}

static void serve(const lc_conf_t *conf, int lfd)
{
    for (;;) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        char peer[64];
        int fd = accept4(lfd, (struct sockaddr *)&sa, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
                lc_log(NULL, "accept: %s; pausing", strerror(errno));
                sleep(1);
            }
            continue;
        }
        peer_name(&sa, len, peer, sizeof(peer));
        start_session(conf, fd, peer);
    }
}

int main(int argc, char **argv)
{
    static lc_conf_t conf;
    char err[LC_ERR_MAX];
    int lfd;

    /* 1. what to do */
    parse_args(&conf, argc, argv);
    signal(SIGPIPE, SIG_IGN);

    /* 2. TLS, when the URL needs it */
    if (conf.url.tls) {
        conf.ssl_ctx = lc_tls_context(conf.ca_file, conf.insecure, err,
                                      sizeof(err));
        if (!conf.ssl_ctx) {
            lc_log(NULL, "%s", err);
            return 1;
        }
    }

    /* 3. what the URL carries */
    if (probe(&conf, err, sizeof(err)) != LC_OK) {
        lc_log(NULL, "cannot use %s%s: %s", conf.url.tls ? "https://"
               : "http://", conf.url.authority, err);
        return 1;
    }

    /* 4. the port */
    lfd = listen_on(&conf);
    if (lfd < 0) {
        return 1;
    }
    lc_log(NULL, "%s at %s%s%s, %s, listening on %s:%s", conf.proto->name,
           conf.url.tls ? "https://" : "http://", conf.url.authority,
           conf.url.path, conf.mode == LC_MODE_INRESPONSE || !conf.server_inband
           ? "in-response mode" : conf.mode == LC_MODE_INBAND
           ? "in-band mode" : "in-band mode falling back to in-response",
           conf.listen_host, conf.listen_port);
    serve(&conf, lfd);
    return 0;
}
