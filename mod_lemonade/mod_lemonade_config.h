/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef MOD_LEMONADE_CONFIG_H
#define MOD_LEMONADE_CONFIG_H

/*
 * Configuration: the directives and where their values live.
 *
 * Per-location settings (lem_dir_conf_t) come from the <Location> that
 * carries `SetHandler lemonade`; server-wide ones (lem_srv_conf_t) size
 * the session table and place the keeper's socket, and are read once,
 * when the keeper starts.
 */

#include <httpd.h>
#include <http_config.h>

/* How the connection to the backend is protected. */
typedef enum {
    LEM_TLS_NONE = 0,
    LEM_TLS_IMPLICIT,          /* imaps://, smtps:// */
    LEM_TLS_STARTTLS           /* LemonadeBackendStartTLS On */
} lem_tls_mode_t;

/* The protocol a Location is bound to (draft 2.1.4: "via the URL"). */
typedef enum {
    LEM_PROTO_NONE = 0,
    LEM_PROTO_IMAP,
    LEM_PROTO_SMTP
} lem_proto_t;

typedef struct {
    const char         *location;      /* the <Location> path: cookie Path */
    const char         *backend_url;   /* LemonadeBackend, as written */
    lem_proto_t         proto;         /* from the URL scheme */
    const char         *backend_host;
    apr_port_t          backend_port;
    int                 backend_tls;      /* lem_tls_mode_t */
    int                 starttls;         /* LemonadeBackendStartTLS; -1 */
    const char         *backend_ca;       /* LemonadeBackendCA, or NULL */
    apr_interval_time_t backend_timeout;  /* connect, and each read */
    apr_interval_time_t idle_timeout;     /* a session nobody uses */
    apr_interval_time_t session_wait;     /* for a session in use */
    apr_interval_time_t heartbeat;        /* longest long poll */
    apr_interval_time_t lifetime;         /* longest a session lives */
    int                 max_per_client;   /* sessions per client address */
    int                 bind_address;     /* a session answers only its
                                           * client's address; -1 unset */
    int                 require_tls;      /* refuse plain HTTP; -1 unset */
    const char         *cookie_name;
    apr_off_t           max_body;         /* request body, bytes */
    apr_size_t          max_line;         /* one command line, bytes */
    apr_off_t           max_literal;      /* one literal, bytes */
    int                 max_commands;     /* commands in one batch */
    apr_size_t          spool_memory;     /* held in memory per spool */
} lem_dir_conf_t;

typedef struct {
    int         max_sessions;   /* slots in the session table */
    const char *socket_path;    /* the keeper's Unix socket, prefix */
    const char *route;          /* LemonadeRoute: ".ROUTE" on session ids */
} lem_srv_conf_t;

extern module AP_MODULE_DECLARE_DATA lemonade_module;

extern const command_rec lem_cmds[];

void *lem_dir_conf_create(apr_pool_t *p, char *dir);
void *lem_dir_conf_merge(apr_pool_t *p, void *basev, void *addv);
void *lem_srv_conf_create(apr_pool_t *p, server_rec *s);

/* The effective settings for `r`, defaults filled in. */
const lem_dir_conf_t *lem_dir_conf(const request_rec *r);
const lem_srv_conf_t *lem_srv_conf(const server_rec *s);

/* "IMAP" or "SMTP". */
const char *lem_proto_name(lem_proto_t proto);

#endif /* MOD_LEMONADE_CONFIG_H */
