/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "lemonade_connect_net.h"

/* Wait for `events` on fd: LC_OK or LC_TIMEOUT. */
static int wait_fd(int fd, short events, int ms)
{
    struct pollfd pfd;
    int rc;

    pfd.fd = fd;
    pfd.events = events;
    do {
        rc = poll(&pfd, 1, ms);
    } while (rc < 0 && errno == EINTR);
    return rc > 0 ? LC_OK : LC_TIMEOUT;
}

/* The first OpenSSL error, or `fallback`, into c->err. */
static void tls_error(lc_conn_t *c, const char *what, const char *fallback)
{
    unsigned long e = ERR_get_error();
    char text[160];

    if (e) {
        ERR_error_string_n(e, text, sizeof(text));
    }
    snprintf(c->err, sizeof(c->err), "%s: %s", what, e ? text : fallback);
    ERR_clear_error();
}

/* ------------------------------------------------------------------ */
/* TLS context                                                         */
/* ------------------------------------------------------------------ */

SSL_CTX *lc_tls_context(const char *ca_file, int insecure, char *err,
                        size_t cap)
{
    /* RFC 7301: ask for HTTP/1.1, which in-band mode needs (one request
     * per connection, chunked both ways) */
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (!ctx) {
        snprintf(err, cap, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                          | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* an answer cut short is caught by HTTP framing (chunks, length) */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
    if (insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1
                : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        unsigned long e = ERR_get_error();

        snprintf(err, cap, "cannot load CA certificates from %s: %s",
                 ca_file ? ca_file : "the system's store",
                 e ? ERR_reason_error_string(e) : "unknown error");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* ------------------------------------------------------------------ */
/* TCP                                                                 */
/* ------------------------------------------------------------------ */

void lc_conn_init(lc_conn_t *c)
{
    c->fd = -1;
    c->ssl = NULL;
    c->off = c->len = 0;
    c->err[0] = '\0';
}

/* An in-band session or a long poll may be silent for minutes; a path
 * that died without a word (a NAT that forgot it, a dropped link) is
 * found within about 90 s instead of at --idle-timeout. */
static void keep_alive(int fd)
{
    int one = 1, idle = 60, interval = 10, count = 3;

    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
}

/* Connect one address within `ms`: the socket, or -1 with errno. */
static int connect_one(const struct addrinfo *ai, int ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK
                                   | SOCK_CLOEXEC, ai->ai_protocol);
    int one = 1, soerr = 0;
    socklen_t len = sizeof(soerr);

    if (fd < 0) {
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS) {
            goto fail;
        }
        if (wait_fd(fd, POLLOUT, ms) != LC_OK) {
            errno = ETIMEDOUT;
            goto fail;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0
            || soerr) {
            errno = soerr ? soerr : errno;
            goto fail;
        }
    }
    /* commands and responses are small and wanted at once */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    keep_alive(fd);
    return fd;

fail:
    soerr = errno;
    close(fd);
    errno = soerr;
    return -1;
}

int lc_conn_tcp(lc_conn_t *c, const char *host, const char *port, int ms)
{
    struct addrinfo hints, *res, *ai;
    long long deadline = lc_now_ms() + ms;
    int rc, saved = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* XXX: getaddrinfo() cannot be bounded; a resolver that hangs holds
     * this session (only this one) for the resolver's own timeouts */
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(c->err, sizeof(c->err), "cannot resolve %s: %s", host,
                 gai_strerror(rc));
        return LC_ERROR;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        c->fd = connect_one(ai, lc_left_ms(deadline));
        if (c->fd >= 0) {
            break;
        }
        saved = errno;
    }
    freeaddrinfo(res);
    if (c->fd < 0) {
        snprintf(c->err, sizeof(c->err), "cannot connect to %s port %s: %s",
                 host, port, strerror(saved));
        return LC_ERROR;
    }
    return LC_OK;
}

/* ------------------------------------------------------------------ */
/* TLS                                                                 */
/* ------------------------------------------------------------------ */

/* An IP address in the URL is checked against the certificate's IP
 * SANs, a name against its DNS names (RFC 6125); only names go in SNI. */
static int set_peer_name(lc_conn_t *c, const char *host, int verify)
{
    unsigned char addr[16];
    int is_ip = inet_pton(AF_INET, host, addr) == 1
                || inet_pton(AF_INET6, host, addr) == 1;

    if (!is_ip && SSL_set_tlsext_host_name(c->ssl, host) != 1) {
        tls_error(c, "TLS", "cannot set the server name");
        return LC_ERROR;
    }
    if (!verify) {
        return LC_OK;
    }
    if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl),
                                              host) != 1
              : SSL_set1_host(c->ssl, host) != 1) {
        tls_error(c, "TLS", "cannot set the name to verify");
        return LC_ERROR;
    }
    return LC_OK;
}

/* Say why a handshake failed: the certificate, or the exchange. */
static void handshake_error(lc_conn_t *c, const char *host)
{
    long v = SSL_get_verify_result(c->ssl);

    if (v != X509_V_OK) {
        snprintf(c->err, sizeof(c->err), "the certificate of %s is not "
                 "trusted: %s", host, X509_verify_cert_error_string(v));
        ERR_clear_error();
        return;
    }
    tls_error(c, "TLS handshake failed", "the server closed the connection");
}

int lc_conn_tls(lc_conn_t *c, SSL_CTX *ctx, const char *host, int ms)
{
    long long deadline = lc_now_ms() + ms;
    int verify = SSL_CTX_get_verify_mode(ctx) != SSL_VERIFY_NONE;

    c->ssl = SSL_new(ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
        tls_error(c, "TLS", "cannot start a session");
        return LC_ERROR;
    }
    if (set_peer_name(c, host, verify) != LC_OK) {
        return LC_ERROR;
    }
    for (;;) {
        int rc = SSL_connect(c->ssl);
        int e = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, rc);

        if (e == SSL_ERROR_NONE) {
            return LC_OK;
        }
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            handshake_error(c, host);
            return LC_ERROR;
        }
        if (wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                    lc_left_ms(deadline)) != LC_OK) {
            snprintf(c->err, sizeof(c->err), "TLS handshake with %s timed "
                     "out", host);
            return LC_ERROR;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

int lc_conn_buffered(const lc_conn_t *c)
{
    return c->off < c->len || (c->ssl && SSL_pending(c->ssl) > 0);
}

/* One read into `to`: bytes, 0 at EOF, LC_TIMEOUT (would wait, with the
 * event to wait for in `*want`) or LC_ERROR. */
static int read_some(lc_conn_t *c, char *to, size_t room, short *want)
{
    ssize_t n;
    int e;

    *want = POLLIN;
    if (!c->ssl) {
        n = recv(c->fd, to, room, 0);
        if (n >= 0) {
            return (int)n;
        }
        if (errno == EAGAIN || errno == EINTR) {
            return LC_TIMEOUT;
        }
        if (errno == ECONNRESET) {
            return 0;           /* closed, with our last bytes unread */
        }
        snprintf(c->err, sizeof(c->err), "reading: %s", strerror(errno));
        return LC_ERROR;
    }
    n = SSL_read(c->ssl, to, (int)room);
    if (n > 0) {
        return (int)n;
    }
    e = SSL_get_error(c->ssl, (int)n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        return LC_TIMEOUT;
    }
    if (e == SSL_ERROR_ZERO_RETURN
        || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0
            && (errno == 0 || errno == ECONNRESET))) {
        return 0;
    }
    tls_error(c, "TLS read", e == SSL_ERROR_SYSCALL ? strerror(errno)
                                                    : "protocol error");
    return LC_ERROR;
}

int lc_conn_fill(lc_conn_t *c, int ms)
{
    long long deadline = lc_now_ms() + ms;

    if (c->off > 0) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->len == sizeof(c->buf)) {
        return LC_OK;           /* full: use what is there first */
    }
    for (;;) {
        short want;
        int n;

        errno = 0;
        n = read_some(c, c->buf + c->len, sizeof(c->buf) - c->len, &want);
        if (n > 0) {
            c->len += (size_t)n;
            return LC_OK;
        }
        if (n == 0) {
            return LC_EOF;
        }
        if (n == LC_ERROR) {
            return LC_ERROR;
        }
        if (ms == 0 || wait_fd(c->fd, want, lc_left_ms(deadline)) != LC_OK) {
            return LC_TIMEOUT;
        }
        if (lc_left_ms(deadline) == 0) {
            ms = 0;             /* one last try, without waiting */
        }
    }
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

/* One write: bytes written, LC_TIMEOUT (with the event to wait for) or
 * LC_ERROR. */
static int write_some(lc_conn_t *c, const char *data, size_t len,
                      short *want)
{
    ssize_t n;
    int e;

    *want = POLLOUT;
    if (!c->ssl) {
        n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n >= 0) {
            return (int)n;
        }
        if (errno == EAGAIN || errno == EINTR) {
            return LC_TIMEOUT;
        }
        snprintf(c->err, sizeof(c->err), "writing: %s", strerror(errno));
        return LC_ERROR;
    }
    n = SSL_write(c->ssl, data, (int)(len > 1 << 30 ? 1 << 30 : len));
    if (n > 0) {
        return (int)n;
    }
    e = SSL_get_error(c->ssl, (int)n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        return LC_TIMEOUT;
    }
    tls_error(c, "TLS write", e == SSL_ERROR_SYSCALL ? strerror(errno)
                                                     : "protocol error");
    return LC_ERROR;
}

/* Wait for `want`, and while waiting serve what the server sends. */
static int wait_write(lc_conn_t *c, short want, long long deadline,
                      lc_pump_fn pump, void *ctx)
{
    struct pollfd pfd;
    int rc;

    pfd.fd = c->fd;
    pfd.events = want | (pump ? POLLIN : 0);
    do {
        rc = poll(&pfd, 1, lc_left_ms(deadline));
    } while (rc < 0 && errno == EINTR);
    if (rc <= 0) {
        snprintf(c->err, sizeof(c->err), "the server took nothing for "
                 "too long");
        return LC_TIMEOUT;
    }
    if (pump && (pfd.revents & (POLLIN | POLLHUP | POLLERR))
        && !(pfd.revents & want & POLLOUT)) {
        return pump(ctx);
    }
    return LC_OK;
}

int lc_conn_write(lc_conn_t *c, const char *data, size_t len, int ms,
                  lc_pump_fn pump, void *ctx)
{
    long long deadline = lc_now_ms() + ms;

    while (len) {
        short want;
        int n = write_some(c, data, len, &want);

        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n == LC_ERROR) {
            return LC_ERROR;
        }
        n = wait_write(c, want, deadline, pump, ctx);
        if (n != LC_OK) {
            return n;
        }
    }
    return LC_OK;
}

void lc_conn_close(lc_conn_t *c)
{
    if (c->ssl) {
        /* no close_notify round trip: nothing waits for it */
        SSL_set_quiet_shutdown(c->ssl, 1);
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->off = c->len = 0;
}
