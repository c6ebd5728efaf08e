/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef MOD_LEMONADE_TLS_H
#define MOD_LEMONADE_TLS_H

/*
 * TLS to the mail servers: imaps:// and smtps://, or STARTTLS.
 *
 * A child borrows a session's connection as a plain socket and may die
 * between requests, so a TLS state could live neither in it nor in shared
 * memory. The keeper (mod_lemonade_keeper.h) holds it: for each TLS
 * connection it runs one relay, which speaks TLS with the server on one
 * side and plaintext over a Unix socket pair on the other. The children
 * get the pair's other end and see a plain connection, so both modes and
 * both protocols work unchanged over TLS.
 *
 *   child  <-- plaintext, socketpair -->  relay (keeper)  <-- TLS --> server
 *
 * The server's certificate is verified against LemonadeBackendCA (the
 * system's store by default) and must name the host of LemonadeBackend;
 * a failure ends the connection before a byte of the session is sent,
 * never falling back to plaintext.
 *
 * These functions run in the keeper only, in its epoll loop: nothing in
 * them blocks.
 */

#include <stddef.h>

typedef struct lem_tls_t lem_tls_t;

typedef enum {
    LEM_TLS_HANDSHAKE = 0,   /* still shaking hands */
    LEM_TLS_READY,           /* just verified: hand the plain end over */
    LEM_TLS_OPEN,            /* relaying */
    LEM_TLS_DONE             /* over, or failed: lem_tls_close() it */
} lem_tls_state_t;

/*
 * Start TLS on `net_fd` (a connected socket, now the relay's) to `host`,
 * verified against `ca_file` (NULL: the system's store). Both of the
 * relay's descriptors join the epoll set `ep` with `tag` as their data.
 * NULL on failure, with the reason in `why`.
 */
lem_tls_t *lem_tls_start(int ep, int net_fd, const char *host,
                         const char *ca_file, void *tag, char *why,
                         size_t whylen);

/* Something happened on one of its descriptors: move bytes and the
 * handshake on as far as they go. Returns the state; for DONE after a
 * failure, the reason is in `why`. */
lem_tls_state_t lem_tls_on_event(lem_tls_t *t, char *why, size_t whylen);

/* The plaintext end for the child, once READY; the relay keeps no copy. */
int lem_tls_take_plain_end(lem_tls_t *t);

/* Close the connection (with a TLS close_notify when it can) and free. */
void lem_tls_close(lem_tls_t *t);

#endif /* MOD_LEMONADE_TLS_H */
