/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef LEMONADE_CONNECT_NET_H
#define LEMONADE_CONNECT_NET_H

/*
 * One connection towards the HTTP server: TCP, then TLS if the hop needs
 * it, with a read buffer and bounded waits. The socket is non-blocking
 * from the start; every call that may wait takes the milliseconds it may
 * wait, so no step of a session can hang.
 */

#include <openssl/ssl.h>

#include "lemonade_connect.h"

typedef struct {
    int     fd;                 /* -1 when closed */
    SSL    *ssl;                /* NULL for plain TCP */
    char    buf[LC_IO_BUF];     /* read, not yet used */
    size_t  off;                /* first byte not used */
    size_t  len;
    char    err[LC_ERR_MAX];    /* what went wrong, for log and client */
} lc_conn_t;

/*
 * Called while a write waits for room and the server has sent something:
 * in-band mode passes it on to the client, so that neither side waits
 * for the other with full buffers. Returns LC_OK, or anything else to
 * end the write with that.
 */
typedef int (*lc_pump_fn)(void *ctx);

/* A TLS context for the server (and proxy) certificates: the CA file or
 * the system's store, TLS 1.2 at least, verification unless `insecure`.
 * NULL with `err` filled on failure. */
SSL_CTX *lc_tls_context(const char *ca_file, int insecure, char *err,
                        size_t cap);

/* Resolve host and connect within `ms`: LC_OK or LC_ERROR. */
int lc_conn_tcp(lc_conn_t *c, const char *host, const char *port, int ms);

/* Start TLS over the open connection, checking that the certificate
 * names `host` (unless the context does not verify): LC_OK or LC_ERROR. */
int lc_conn_tls(lc_conn_t *c, SSL_CTX *ctx, const char *host, int ms);

/* Read more into c->buf, moving what is unused to its front first.
 * `ms` 0 only takes what is there. LC_OK when bytes came, LC_TIMEOUT,
 * LC_EOF or LC_ERROR. */
int lc_conn_fill(lc_conn_t *c, int ms);

/* Write all of `data` within `ms`, calling `pump` (may be NULL) whenever
 * the server has sent something meanwhile: LC_OK, LC_TIMEOUT, LC_ERROR
 * or what pump returned. */
int lc_conn_write(lc_conn_t *c, const char *data, size_t len, int ms,
                  lc_pump_fn pump, void *ctx);

/* Non-zero if reading would find bytes without waiting on the socket:
 * in c->buf, or decrypted and held inside TLS. */
int lc_conn_buffered(const lc_conn_t *c);

void lc_conn_init(lc_conn_t *c);
void lc_conn_close(lc_conn_t *c);

#endif /* LEMONADE_CONNECT_NET_H */
