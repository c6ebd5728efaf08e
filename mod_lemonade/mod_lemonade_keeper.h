/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef MOD_LEMONADE_KEEPER_H
#define MOD_LEMONADE_KEEPER_H

/*
 * The keeper: one process, forked by the Apache parent, that holds the
 * backend connection of every in-response session.
 *
 * A session must outlive the child that opened it (under prefork with
 * MaxConnectionsPerChild 1 every request is served by a new process), and
 * a socket cannot live in shared memory. So the keeper holds the sockets,
 * numbered like the slots of the session table, and lends them: a child
 * that serves a request borrows the session's socket (passed with
 * SCM_RIGHTS over the keeper's Unix socket), talks to the backend itself,
 * and gives it back by closing its link. One lender means one borrower at
 * a time: a second request for the same session waits in the keeper's
 * queue until the first gives the socket back, so two requests never
 * interleave on one backend connection, and a child that dies gives its
 * socket back by dying (and the session is then closed, since nobody
 * knows where its stream stands).
 *
 *   child (one link per request)                 keeper
 *   ADOPT slot id idle + socket  -------------->  holds it, lent to link
 *   ATTACH slot id               -------------->  queues while lent
 *                                <--------------  OK + socket | GONE
 *   CLOSE slot id                -------------->  closes it, frees slot
 *   TLS host ca + socket         -------------->  verifies the server
 *                                <--------------  OK + plaintext end | TLS why
 *   RELEASE, link closed         -------------->  given back; idle clock
 *   (link closed, no RELEASE)    -------------->  closed: the stream's state
 *                                                 is unknown
 *
 * While a socket is not lent the keeper watches it for the backend's
 * hang-up and closes sessions idle for longer than their timeout or past
 * their lifetime, freeing
 * their slots in the table. The keeper reads no byte of any session, so
 * whatever the backend sends between requests waits in the socket for the
 * next borrower.
 *
 * The keeper survives graceful and hard restarts of Apache (sessions do
 * too), is started again by the parent if it dies (its sessions are then
 * lost and every slot freed), and ends with the parent.
 */

#include <httpd.h>

#include "lem_id.h"
#include "mod_lemonade_session.h"

/* post_config: start the keeper unless it already runs; every generation
 * calls this so that the parent watches (and restarts) it. */
apr_status_t lem_keeper_start(server_rec *s, apr_pool_t *pconf,
                              apr_pool_t *ptemp);

/* A child's link to the keeper, for one request. */
typedef struct {
    int fd;                    /* -1 when closed */
} lem_link_t;

/* Connect to the keeper. APR_SUCCESS or the socket error. */
apr_status_t lem_link_open(lem_link_t *link, const char *path);

/* Hand the new session's backend socket to the keeper, to be closed when
 * idle for `idle_timeout` or `lifetime` after now; the link keeps it lent
 * to this request until lem_link_release(). */
apr_status_t lem_link_adopt(lem_link_t *link, const lem_id_t *id,
                            apr_interval_time_t idle_timeout,
                            apr_interval_time_t lifetime, int backend_fd);

/*
 * Borrow the session's backend socket into `*backend_fd`, waiting at most
 * `wait` while another request holds it. APR_SUCCESS; APR_NOTFOUND when
 * the keeper has no such session (closed, expired, keeper restarted);
 * APR_TIMEUP when the wait ran out; other errors from the link.
 */
apr_status_t lem_link_attach(lem_link_t *link, const lem_id_t *id,
                             apr_interval_time_t wait, int *backend_fd);

/*
 * TLS to a server (mod_lemonade_tls.h): hand `net_fd`, connected to it, to
 * the keeper, which verifies the server as `host` against `ca_file` (NULL:
 * the system's store) and answers with `*plain_fd`, the plaintext end of
 * its relay, within `wait`. APR_SUCCESS; APR_EGENERAL with the reason in
 * `why` when TLS failed; APR_TIMEUP. `net_fd` is the keeper's either way
 * (the caller closes its own copy).
 */
apr_status_t lem_link_tls(lem_link_t *link, int net_fd, const char *host,
                          const char *ca_file, apr_interval_time_t wait,
                          int *plain_fd, char *why, apr_size_t whylen);

/* End the session: the keeper closes its socket and frees its slot. */
apr_status_t lem_link_close_session(lem_link_t *link, const lem_id_t *id);

/* Give the socket back (the caller closed its own copy first). `clean`
 * says the session's stream stands between exchanges; given back
 * otherwise (or by a child that dies), the session is closed. */
void lem_link_release(lem_link_t *link, int clean);

#endif /* MOD_LEMONADE_KEEPER_H */
