/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef MOD_LEMONADE_BACKEND_H
#define MOD_LEMONADE_BACKEND_H

/*
 * A child's I/O on one backend connection, borrowed from the keeper or
 * just opened.
 *
 * Reading never takes more from the socket than the caller has used: bytes
 * are peeked into `buf`, the caller marks how many it consumed, and only
 * those are removed from the socket. Whatever the backend sent after the
 * last response a request waited for (an unsolicited EXISTS, a BYE) stays
 * in the socket for the next request of the session.
 *
 *   buf: [ consumed | seen, not yet consumed ............ ] len
 *        0          off                                   len
 */

#include <apr_network_io.h>
#include <apr_pools.h>

typedef struct {
    int                 fd;
    int                 own;      /* nobody reads after us: no peeking */
    apr_interval_time_t timeout;  /* for each wait on the backend */
    char               *buf;
    apr_size_t          cap;
    apr_size_t          off;      /* consumed, still in the socket */
    apr_size_t          len;      /* peeked */
} lem_backend_t;

/*
 * Connect to host:port within `timeout`. On success `*fd` is a connected
 * blocking socket the caller owns. APR_TIMEUP when the time ran out,
 * otherwise the error of the name lookup or the connect.
 */
apr_status_t lem_backend_connect(const char *host, apr_port_t port,
                                 apr_interval_time_t timeout, int *fd,
                                 apr_pool_t *p);

/* Set up `b` on `fd` with a peek buffer of `cap` bytes from `p`. */
void lem_backend_init(lem_backend_t *b, int fd, apr_interval_time_t timeout,
                      apr_size_t cap, apr_pool_t *p);

/*
 * Make new bytes visible at buf[off, len): remove the consumed bytes from
 * the socket, then wait up to the timeout for more. APR_SUCCESS with
 * len > off; APR_EOF when the backend closed; APR_TIMEUP; or the error.
 */
apr_status_t lem_backend_fill(lem_backend_t *b);

/* Non-zero when new bytes can be read without waiting (or the socket
 * failed: the next fill says how). Call when all of buf is used. */
int lem_backend_readable(lem_backend_t *b);

/* Remove the consumed bytes from the socket; done before letting go. */
apr_status_t lem_backend_commit(lem_backend_t *b);

/*
 * Send `len` bytes. While the backend does not take them, `drain(ctx)` is
 * called whenever it has something to say, so neither side waits for the
 * other; drain returns APR_SUCCESS to go on. APR_TIMEUP when the backend
 * accepted nothing within the timeout.
 */
typedef apr_status_t lem_backend_drain_fn(void *ctx);
apr_status_t lem_backend_write(lem_backend_t *b, const char *data,
                               apr_size_t len, lem_backend_drain_fn *drain,
                               void *ctx);

/* Close our copy of the socket. */
void lem_backend_close(lem_backend_t *b);

#endif /* MOD_LEMONADE_BACKEND_H */
