/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "mod_lemonade_tls.h"

/* Plaintext held on its way each way; a TLS record may be larger, and
 * OpenSSL keeps the rest. */
#define RELAY_BUF  8192

struct lem_tls_t {
    int             ep;
    int             net;          /* to the server: TLS */
    int             app;          /* the relay's end of the pair */
    int             plain;        /* the child's end, until taken */
    SSL            *ssl;
    void           *tag;
    lem_tls_state_t state;
    int             net_wants_out;/* OpenSSL waits to write */
    int             net_eof;      /* the server side is over */
    int             app_eof;      /* the child side is over */
    unsigned        net_mask;     /* registered with epoll */
    unsigned        app_mask;
    char            to_app[RELAY_BUF];
    size_t          to_app_len;
    size_t          to_app_off;
    char            to_net[RELAY_BUF];
    size_t          to_net_len;
};

/* ------------------------------------------------------------------ */
/* Contexts, one per CA file                                           */
/* ------------------------------------------------------------------ */

#define CTX_MAX 8

static struct {
    char    *ca;                  /* "" for the system's store */
    SSL_CTX *ctx;
} ctxs[CTX_MAX];
static int nctxs;

static void set_why(char *why, size_t whylen, const char *what,
                    const char *detail)
{
    snprintf(why, whylen, "%s%s%s", what, detail ? ": " : "",
             detail ? detail : "");
}

static SSL_CTX *ctx_for(const char *ca, char *why, size_t whylen)
{
    const char *key = ca ? ca : "";
    SSL_CTX *ctx;
    int i, loaded;

    for (i = 0; i < nctxs; i++) {
        if (!strcmp(ctxs[i].ca, key)) {
            return ctxs[i].ctx;
        }
    }
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        set_why(why, whylen, "cannot make a TLS context", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                          | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    loaded = ca ? SSL_CTX_load_verify_locations(ctx, ca, NULL)
                : SSL_CTX_set_default_verify_paths(ctx);
    if (loaded != 1) {
        set_why(why, whylen, "cannot load the CA certificates", ca);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (nctxs < CTX_MAX && (ctxs[nctxs].ca = strdup(key)) != NULL) {
        ctxs[nctxs++].ctx = ctx;
    }
    return ctx;
}

/* ------------------------------------------------------------------ */
/* Starting                                                            */
/* ------------------------------------------------------------------ */

static int set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* RFC 6125: the certificate must name the host we were told to reach,
 * by its DNS name or, for an address, by its IP address. */
static int expect_name(SSL *ssl, const char *host)
{
    unsigned char addr[16];

    if (inet_pton(AF_INET, host, addr) == 1
        || inet_pton(AF_INET6, host, addr) == 1) {
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
    }
    /* RFC 6066 3: server_name carries host names only */
    return SSL_set_tlsext_host_name(ssl, host) == 1
           && SSL_set1_host(ssl, host) == 1;
}

static void watch(lem_tls_t *t, int fd, unsigned *mask, unsigned want)
{
    struct epoll_event ev;

    if (*mask == want) {
        return;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = want;
    ev.data.ptr = t->tag;
    epoll_ctl(t->ep, EPOLL_CTL_MOD, fd, &ev);
    *mask = want;
}

static int join_epoll(lem_tls_t *t, int fd, unsigned mask)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = mask;
    ev.data.ptr = t->tag;
    return epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev);
}

lem_tls_t *lem_tls_start(int ep, int net_fd, const char *host,
                         const char *ca_file, void *tag, char *why,
                         size_t whylen)
{
    SSL_CTX *ctx = ctx_for(ca_file, why, whylen);
    lem_tls_t *t;
    int pair[2];

    if (!ctx || !(t = calloc(1, sizeof(*t)))) {
        close(net_fd);
        return NULL;
    }
    t->ep = ep;
    t->tag = tag;
    t->net = net_fd;
    t->app = t->plain = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0
        || set_nonblock(pair[0]) != 0 || set_nonblock(net_fd) != 0) {
        set_why(why, whylen, "cannot make a socket pair", strerror(errno));
        goto fail;
    }
    t->app = pair[0];
    t->plain = pair[1];
    t->ssl = SSL_new(ctx);
    if (!t->ssl || SSL_set_fd(t->ssl, net_fd) != 1
        || !expect_name(t->ssl, host)) {
        set_why(why, whylen, "cannot set up TLS for", host);
        goto fail;
    }
    SSL_set_connect_state(t->ssl);
    t->net_mask = EPOLLIN | EPOLLOUT;
    if (join_epoll(t, t->net, t->net_mask) != 0
        || join_epoll(t, t->app, t->app_mask) != 0) {
        set_why(why, whylen, "cannot watch the connection", NULL);
        goto fail;
    }
    return t;

fail:
    lem_tls_close(t);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Shaking hands                                                       */
/* ------------------------------------------------------------------ */

static void handshake_failed(lem_tls_t *t, char *why, size_t whylen)
{
    long verify = SSL_get_verify_result(t->ssl);
    unsigned long err = ERR_get_error();

    if (verify != X509_V_OK) {
        set_why(why, whylen, "the server's certificate is not trusted",
                X509_verify_cert_error_string(verify));
    }
    else {
        set_why(why, whylen, "the TLS handshake failed",
                err ? ERR_reason_error_string(err) : "connection closed");
    }
    ERR_clear_error();
    t->state = LEM_TLS_DONE;
}

static lem_tls_state_t handshake(lem_tls_t *t, char *why, size_t whylen)
{
    int rc = SSL_do_handshake(t->ssl);

    if (rc == 1) {
        t->state = LEM_TLS_READY;
        watch(t, t->net, &t->net_mask, EPOLLIN);
        watch(t, t->app, &t->app_mask, EPOLLIN);
        return t->state;
    }
    switch (SSL_get_error(t->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        watch(t, t->net, &t->net_mask, EPOLLIN);
        break;
    case SSL_ERROR_WANT_WRITE:
        watch(t, t->net, &t->net_mask, EPOLLIN | EPOLLOUT);
        break;
    default:
        handshake_failed(t, why, whylen);
        break;
    }
    return t->state;
}

/* ------------------------------------------------------------------ */
/* Relaying                                                            */
/* ------------------------------------------------------------------ */

/* What OpenSSL's answer `rc` means: 1 progress, 0 wait, -1 the end. */
static int ssl_result(lem_tls_t *t, int rc)
{
    if (rc > 0) {
        return 1;
    }
    switch (SSL_get_error(t->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        return 0;
    case SSL_ERROR_WANT_WRITE:
        t->net_wants_out = 1;
        return 0;
    default:
        ERR_clear_error();
        return -1;
    }
}

/* From the server to the child. Returns non-zero on progress. */
static int server_to_child(lem_tls_t *t)
{
    int moved = 0;

    if (t->to_app_off == t->to_app_len && !t->net_eof) {
        int n = SSL_read(t->ssl, t->to_app, sizeof(t->to_app));
        int r = ssl_result(t, n);

        if (r > 0) {
            t->to_app_len = (size_t)n;
            t->to_app_off = 0;
            moved = 1;
        }
        t->net_eof |= r < 0;
    }
    if (t->to_app_off < t->to_app_len) {
        ssize_t w = write(t->app, t->to_app + t->to_app_off,
                          t->to_app_len - t->to_app_off);

        if (w > 0) {
            t->to_app_off += (size_t)w;
            moved = 1;
        }
        else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            t->app_eof = 1;     /* nobody left to read it */
        }
    }
    return moved;
}

/* From the child to the server. Returns non-zero on progress. */
static int child_to_server(lem_tls_t *t)
{
    int moved = 0;

    if (t->to_net_len == 0 && !t->app_eof) {
        ssize_t n = read(t->app, t->to_net, sizeof(t->to_net));

        if (n > 0) {
            t->to_net_len = (size_t)n;
            moved = 1;
        }
        else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            t->app_eof = 1;
        }
    }
    if (t->to_net_len && !t->net_eof) {
        int w = SSL_write(t->ssl, t->to_net, (int)t->to_net_len);
        int r = ssl_result(t, w);

        if (r > 0) {
            memmove(t->to_net, t->to_net + w, t->to_net_len - (size_t)w);
            t->to_net_len -= (size_t)w;
            moved = 1;
        }
        t->net_eof |= r < 0;
    }
    return moved;
}

static lem_tls_state_t relay(lem_tls_t *t)
{
    int moved;

    t->net_wants_out = 0;
    do {
        moved = server_to_child(t);
        moved |= child_to_server(t);
    } while (moved);

    /* either side over, and what it left is delivered: the end */
    if ((t->net_eof && t->to_app_off == t->to_app_len)
        || (t->app_eof && (t->to_net_len == 0 || t->net_eof))) {
        t->state = LEM_TLS_DONE;
        return t->state;
    }
    watch(t, t->net, &t->net_mask, (t->to_app_off == t->to_app_len
                                    ? EPOLLIN : 0)
                                   | (t->net_wants_out ? EPOLLOUT : 0));
    watch(t, t->app, &t->app_mask, (t->to_net_len == 0 ? EPOLLIN : 0)
                                   | (t->to_app_off < t->to_app_len
                                      ? EPOLLOUT : 0));
    return t->state;
}

lem_tls_state_t lem_tls_on_event(lem_tls_t *t, char *why, size_t whylen)
{
    switch (t->state) {
    case LEM_TLS_HANDSHAKE:
        return handshake(t, why, whylen);
    case LEM_TLS_READY:
    case LEM_TLS_OPEN:
        return relay(t);
    default:
        return t->state;
    }
}

int lem_tls_take_plain_end(lem_tls_t *t)
{
    int fd = t->plain;

    t->plain = -1;
    t->state = LEM_TLS_OPEN;
    return fd;
}

void lem_tls_close(lem_tls_t *t)
{
    if (!t) {
        return;
    }
    if (t->ssl) {
        if (t->state == LEM_TLS_OPEN && !t->net_eof) {
            SSL_shutdown(t->ssl);   /* close_notify, once, not waited for */
        }
        SSL_free(t->ssl);
        ERR_clear_error();
    }
    if (t->net >= 0) {
        epoll_ctl(t->ep, EPOLL_CTL_DEL, t->net, NULL);
        close(t->net);
    }
    if (t->app >= 0) {
        epoll_ctl(t->ep, EPOLL_CTL_DEL, t->app, NULL);
        close(t->app);
    }
    if (t->plain >= 0) {
        close(t->plain);
    }
    free(t);
}
