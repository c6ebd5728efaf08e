/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef LEMONADE_CONNECT_HTTP_H
#define LEMONADE_CONNECT_HTTP_H

/*
 * The HTTP/1.1 that lemonade-connect speaks (RFC 9112): requests with a
 * length or chunked bodies, answers read head first then body piece by
 * piece, the few headers the binding uses, a cookie jar for one session,
 * and the proxy's CONNECT tunnel (RFC 9110 9.3.6).
 */

#include "lemonade_connect.h"
#include "lemonade_connect_net.h"

/* Parse an http:// or https:// URL; a proxy URL may carry user:password.
 * Returns LC_OK, or LC_ERROR with `*why` set to a static message. */
int lc_url_parse(lc_url_t *u, const char *text, const char **why);

/* The cookies of one session (draft 2.1.1), name to value; values are
 * secrets and are never logged. */
#define LC_JAR_MAX 8

typedef struct {
    int  n;
    int  ever;                  /* a cookie was set at some point */
    int  replaced;              /* one was set again to a new value */
    struct {
        char name[64];
        char value[512];
    } c[LC_JAR_MAX];
} lc_jar_t;

/* The head of an answer: what lemonade-connect looks at. */
typedef struct {
    int        status;
    char       reason[128];
    int        chunked;         /* Transfer-Encoding ends in chunked */
    long long  length;          /* Content-Length, or -1 */
    int        close;           /* the connection ends with this answer */
    char       protocol[16];    /* Lemonade-Protocol */
    char       modes[128];      /* Lemonade-Modes */
    int        text_plain;      /* Content-Type: text/plain */
} lc_head_t;

/* Reading a body. */
typedef struct {
    int                 kind;   /* private: length, chunked, until EOF */
    int                 state;  /* private: where in the chunk syntax */
    unsigned long long  left;   /* octets left in the body or chunk */
    int                 digits; /* hex digits of the chunk size so far */
} lc_body_t;

/*
 * Open the connection for a request to conf->url: TCP to the server, or
 * to the proxy and through it with CONNECT; then TLS for https. Within
 * conf->connect_timeout. LC_OK, or LC_ERROR with c->err set.
 */
int lc_http_open(lc_conn_t *c, const lc_conf_t *conf);

/*
 * Send a request head for conf->url's path. `length` is the body's
 * Content-Length, -1 for a chunked body, -2 for none; `extra` more header
 * lines, each ending in CRLF (may be NULL); the jar's cookies (jar may be
 * NULL). Returns LC_OK or what lc_conn_write() returned.
 */
int lc_http_request(lc_conn_t *c, const lc_conf_t *conf, const char *method,
                    long long length, const char *extra,
                    const lc_jar_t *jar);

/*
 * Read an answer's head within `ms` (1xx answers are skipped), keeping
 * its cookies in `jar` (may be NULL). LC_OK; LC_EOF when the connection
 * closed before the first byte of it (a keep-alive connection the server
 * let go); LC_TIMEOUT; LC_ERROR with c->err set.
 */
int lc_http_head(lc_conn_t *c, lc_head_t *h, lc_jar_t *jar, int ms);

/* Prepare to read the body of the answer `h` (to `method`). */
void lc_body_init(lc_body_t *b, const lc_head_t *h, const char *method);

/*
 * The next piece of the body, pointing into c->buf (valid until the next
 * call), waiting at most `ms` (0: only what is there). LC_OK with a piece;
 * LC_END after the last; LC_TIMEOUT; LC_EOF when the connection ended
 * before the body did; LC_ERROR with c->err set.
 */
int lc_body_next(lc_conn_t *c, lc_body_t *b, int ms, const char **data,
                 size_t *len);

/* draft 2.1.2: one chunk of an in-band request body; len 0 is the last
 * chunk. With `pump`, as lc_conn_write(). */
int lc_http_chunk(lc_conn_t *c, const char *data, size_t len, int ms,
                  lc_pump_fn pump, void *ctx);

#endif /* LEMONADE_CONNECT_HTTP_H */
