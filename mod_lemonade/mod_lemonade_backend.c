/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <apr_portable.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_log.h>

#include "mod_lemonade.h"
#include "mod_lemonade_backend.h"
#include "mod_lemonade_proto.h"

APLOG_USE_MODULE(lemonade);

#define LEM_READ_SIZE  (64 * 1024)

/* One address, within the timeout: a descriptor of our own, or the error. */
static apr_status_t connect_one(apr_sockaddr_t *sa,
                                apr_interval_time_t timeout, int *fd,
                                apr_pool_t *p)
{
    apr_socket_t *sock = NULL;
    apr_os_sock_t os;
    apr_status_t rv;

    rv = apr_socket_create(&sock, sa->family, SOCK_STREAM, APR_PROTO_TCP,
                           p);
    if (rv == APR_SUCCESS) {
        apr_socket_timeout_set(sock, timeout);
        rv = apr_socket_connect(sock, sa);
    }
    if (rv == APR_SUCCESS) {
        rv = apr_os_sock_get(&os, sock);
    }
    /* a plain descriptor, free of APR's pool: it may go to the keeper */
    if (rv == APR_SUCCESS && (*fd = dup(os)) < 0) {
        rv = errno;
    }
    if (sock) {
        apr_socket_close(sock);
    }
    return rv;
}

apr_status_t lem_backend_connect(const char *host, apr_port_t port,
                                 apr_interval_time_t timeout, int *fd,
                                 apr_pool_t *p)
{
    apr_sockaddr_t *sa;
    apr_status_t rv;
    int one = 1;

    /* 1. every address of the name, in turn, until one answers */
    rv = apr_sockaddr_info_get(&sa, host, APR_UNSPEC, port, 0, p);
    for (; rv == APR_SUCCESS && sa; sa = sa->next) {
        rv = connect_one(sa, timeout, fd, p);
        if (rv == APR_SUCCESS || APR_STATUS_IS_TIMEUP(rv) || !sa->next) {
            break;
        }
        rv = APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        return APR_STATUS_IS_TIMEUP(rv) ? APR_TIMEUP : rv;
    }

    /* 2. commands are small and pipelined; a session may idle for long */
    setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(*fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    return APR_SUCCESS;
}

void lem_backend_init(lem_backend_t *b, int fd, apr_interval_time_t timeout,
                      apr_size_t cap, apr_pool_t *p)
{
    b->fd = fd;
    b->own = 0;
    b->timeout = timeout;
    b->buf = apr_palloc(p, cap);
    b->cap = cap;
    b->off = b->len = 0;
}

/* Wait for `events` on the socket; APR_TIMEUP after the timeout. */
static apr_status_t wait_for(lem_backend_t *b, short events, short *got)
{
    struct pollfd pfd;
    int ms = (int)apr_time_as_msec(b->timeout), rc;

    for (;;) {
        pfd.fd = b->fd;
        pfd.events = events;
        pfd.revents = 0;
        rc = poll(&pfd, 1, ms);
        if (rc > 0) {
            *got = pfd.revents;
            return APR_SUCCESS;
        }
        if (rc == 0) {
            return APR_TIMEUP;
        }
        if (errno != EINTR) {
            return errno;
        }
    }
}

apr_status_t lem_backend_commit(lem_backend_t *b)
{
    if (b->own) {
        b->off = b->len = 0;
    }
    while (b->off) {
        ssize_t n = recv(b->fd, b->buf, b->off, MSG_DONTWAIT);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            /* the bytes were peeked, so they are there to take */
            return n == 0 ? APR_EOF : errno;
        }
        b->off -= (apr_size_t)n;
    }
    b->len = 0;
    return APR_SUCCESS;
}

apr_status_t lem_backend_fill(lem_backend_t *b)
{
    apr_status_t rv = lem_backend_commit(b);
    short got;
    ssize_t n;

    if (rv != APR_SUCCESS) {
        return rv;
    }
    for (;;) {
        n = recv(b->fd, b->buf, b->cap, (b->own ? 0 : MSG_PEEK)
                                        | MSG_DONTWAIT);
        if (n > 0) {
            b->len = (apr_size_t)n;
            return APR_SUCCESS;
        }
        if (n == 0) {
            return APR_EOF;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == ECONNRESET) {
            return APR_EOF;     /* closed on us, bytes of ours unread */
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return errno;
        }
        rv = wait_for(b, POLLIN, &got);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
}

int lem_backend_readable(lem_backend_t *b)
{
    struct pollfd pfd = { b->fd, POLLIN, 0 };

    /* peeked bytes already used are still in the socket: drop them, or
     * they would pass for news */
    if (b->off && lem_backend_commit(b) != APR_SUCCESS) {
        return 1;
    }
    return poll(&pfd, 1, 0) > 0;
}

apr_status_t lem_backend_write(lem_backend_t *b, const char *data,
                               apr_size_t len, lem_backend_drain_fn *drain,
                               void *ctx)
{
    apr_status_t rv;
    short got;

    while (len) {
        ssize_t n = send(b->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (n > 0) {
            data += n;
            len -= (apr_size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            return errno == EPIPE || errno == ECONNRESET ? APR_EOF : errno;
        }

        /* full: listen to the backend while it works through its input */
        rv = wait_for(b, drain ? POLLOUT | POLLIN : POLLOUT, &got);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if ((got & POLLIN) && drain && (rv = drain(ctx)) != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

void lem_backend_close(lem_backend_t *b)
{
    if (b->fd >= 0) {
        close(b->fd);
        b->fd = -1;
    }
}

/* ------------------------------------------------------------------ */
/* Opening a session's connection                                      */
/* ------------------------------------------------------------------ */

/* TLS through the keeper's relay: `be` then reads and writes plaintext. */
static apr_status_t secure(request_rec *r, const lem_dir_conf_t *conf,
                           lem_link_t *link, lem_backend_t *be,
                           const char **what)
{
    char why[192] = "";
    int plain;
    apr_status_t rv = APR_SUCCESS;

    if (link->fd < 0) {
        rv = lem_link_open(link, lem_state.socket_path);
    }
    if (rv == APR_SUCCESS) {
        rv = lem_link_tls(link, be->fd, conf->backend_host, conf->backend_ca,
                          conf->backend_timeout, &plain, why, sizeof(why));
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, LEMLOGNO(0601)
                      "backend %s: TLS failed: %s", conf->backend_url,
                      why[0] ? why : "the session keeper did not answer");
        *what = why[0] ? apr_pstrcat(r->pool, "failed TLS: ", why, NULL)
                       : "could not be reached over TLS";
        return rv;
    }
    close(be->fd);
    be->fd = plain;
    be->off = be->len = 0;
    return APR_SUCCESS;
}

static apr_status_t greet(request_rec *r, const lem_dir_conf_t *conf,
                          const lem_protocol_t *proto, lem_backend_t *be,
                          char *out, apr_size_t cap, apr_size_t *len,
                          const char **what)
{
    int welcome = 0;
    apr_status_t rv = proto->greet(be, &welcome, out, cap, len);

    *what = rv == APR_TIMEUP ? "sent no greeting in time"
          : rv == APR_EOF ? "closed before its greeting"
          : rv != APR_SUCCESS ? "sent a malformed greeting"
          : !welcome ? "refused the connection" : NULL;
    if (rv == APR_SUCCESS && !welcome) {
        rv = APR_ECONNREFUSED;
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, LEMLOGNO(0602)
                      "backend %s %s", conf->backend_url, *what);
    }
    return rv;
}

apr_status_t lem_backend_open(request_rec *r, const lem_dir_conf_t *conf,
                              const lem_protocol_t *proto, lem_link_t *link,
                              lem_backend_t *be, char *out, apr_size_t cap,
                              apr_size_t *len, const char **what)
{
    apr_status_t rv;
    int fd;

    /* 1. the connection */
    rv = lem_backend_connect(conf->backend_host, conf->backend_port,
                             conf->backend_timeout, &fd, r->pool);
    if (rv != APR_SUCCESS) {
        *what = rv == APR_TIMEUP ? "did not accept a connection in time"
                                 : "cannot be reached";
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, LEMLOGNO(0603)
                      "backend %s %s", conf->backend_url, *what);
        return rv;
    }
    lem_backend_init(be, fd, conf->backend_timeout, LEM_READ_SIZE, r->pool);

    /* 2. TLS, at once or after the plain greeting and STARTTLS */
    switch (conf->backend_tls) {
    case LEM_TLS_IMPLICIT:
        rv = secure(r, conf, link, be, what);
        break;
    case LEM_TLS_STARTTLS:
        rv = greet(r, conf, proto, be, out, cap, len, what);
        if (rv == APR_SUCCESS
            && (rv = proto->starttls(be, r->server->server_hostname))
               != APR_SUCCESS) {
            *what = "refused STARTTLS";
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, LEMLOGNO(0604)
                          "backend %s refused STARTTLS", conf->backend_url);
        }
        if (rv == APR_SUCCESS) {
            rv = secure(r, conf, link, be, what);
        }
        break;
    default:
        break;
    }

    /* 3. the greeting, unless STARTTLS came after it */
    if (rv == APR_SUCCESS && conf->backend_tls != LEM_TLS_STARTTLS) {
        rv = greet(r, conf, proto, be, out, cap, len, what);
    }
    if (rv != APR_SUCCESS) {
        lem_backend_close(be);
    }
    return rv;
}
