/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * What every part of lemonade-connect uses: buffers, the clock, the log,
 * the client's socket, base64, and the one piece of state the sessions
 * share, the in-band fallback.
 */

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "lemonade_connect.h"

/* How long sessions skip in-band mode once a path held it back: long
 * enough not to make every connection wait for a greeting that will not
 * come, short enough to notice a laptop that moved to another network. */
#define LC_FALLBACK_SECONDS  (15 * 60)

/* ------------------------------------------------------------------ */
/* Buffers                                                             */
/* ------------------------------------------------------------------ */

void lc_buf_add(lc_buf_t *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;

        while (cap < b->len + len) {
            cap *= 2;
        }
        b->data = realloc(b->data, cap);
        if (!b->data) {
            fputs("lemonade-connect: out of memory\n", stderr);
            abort();
        }
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

void lc_buf_addstr(lc_buf_t *b, const char *s)
{
    lc_buf_add(b, s, strlen(s));
}

void lc_buf_reset(lc_buf_t *b)
{
    b->len = 0;
}

void lc_buf_free(lc_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ------------------------------------------------------------------ */
/* Time                                                                */
/* ------------------------------------------------------------------ */

long long lc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int lc_left_ms(long long deadline)
{
    long long left = deadline - lc_now_ms();

    return left < 0 ? 0 : left > 24 * 3600 * 1000 ? 24 * 3600 * 1000
                                                   : (int)left;
}

/* ------------------------------------------------------------------ */
/* The log                                                             */
/* ------------------------------------------------------------------ */

static void vlog(const lc_session_t *s, const char *fmt, va_list ap)
{
    char line[1024];
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    int n;

    localtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
    n = s ? snprintf(line, sizeof(line), "%s lemonade-connect: session %u "
                     "(%s): ", stamp, s->id, s->peer)
          : snprintf(line, sizeof(line), "%s lemonade-connect: ", stamp);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        n = 0;
    }
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    /* one call, so that the lines of two sessions never mix */
    fprintf(stderr, "%s\n", line);
}

void lc_log(const lc_session_t *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(s, fmt, ap);
    va_end(ap);
}

void lc_debug(const lc_session_t *s, const char *fmt, ...)
{
    va_list ap;

    if (!s || !s->conf->verbose) {
        return;
    }
    va_start(ap, fmt);
    vlog(s, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ */
/* The client                                                          */
/* ------------------------------------------------------------------ */

/* Wait until fd is ready for `events`: LC_OK or LC_TIMEOUT. */
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

int lc_client_write(lc_session_t *s, const char *data, size_t len)
{
    long long deadline = lc_now_ms() + (long long)s->conf->timeout * 1000;

    while (len && !s->client_gone) {
        ssize_t n = send(s->cfd, data, len, MSG_NOSIGNAL);

        if (n > 0) {
            data += n;
            len -= (size_t)n;
            s->down += n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)
            && wait_fd(s->cfd, POLLOUT, lc_left_ms(deadline)) == LC_OK) {
            continue;
        }
        /* a client that reads nothing for --timeout is gone as well */
        s->client_gone = 1;
    }
    return s->client_gone ? LC_ERROR : LC_OK;
}

int lc_client_say(lc_session_t *s, const char *text)
{
    return lc_client_write(s, text, strlen(text));
}

int lc_client_fill(lc_session_t *s, int ms)
{
    lc_inbuf_t *in = &s->in;
    ssize_t n;

    if (s->client_gone) {
        return LC_EOF;
    }
    if (in->off > 0) {
        /* what is left of the last read moves to the front */
        memmove(in->data, in->data + in->off, in->len - in->off);
        in->len -= in->off;
        in->off = 0;
    }
    if (in->len == sizeof(in->data)) {
        return LC_OK;           /* full: use what is there first */
    }
    for (;;) {
        n = recv(s->cfd, in->data + in->len, sizeof(in->data) - in->len, 0);
        if (n > 0) {
            in->len += (size_t)n;
            s->up += n;
            return LC_OK;
        }
        if (n == 0) {
            return LC_EOF;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN || ms == 0) {
            return errno == EAGAIN ? LC_TIMEOUT : LC_ERROR;
        }
        if (wait_fd(s->cfd, POLLIN, ms) != LC_OK) {
            return LC_TIMEOUT;
        }
        ms = 0;                 /* readable now: one more try is enough */
    }
}

void lc_client_bye(lc_session_t *s, const char *why)
{
    char line[LC_ERR_MAX + 64];

    snprintf(line, sizeof(line), s->conf->proto->bye_fmt, why);
    lc_client_say(s, line);
}

/* ------------------------------------------------------------------ */
/* Base64                                                              */
/* ------------------------------------------------------------------ */

size_t lc_b64_encode(const unsigned char *in, size_t n, char *out,
                     size_t cap)
{
    if (cap < 4 * ((n + 2) / 3) + 1) {
        return 0;
    }
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

int lc_b64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    int len, pad = 0;

    if (n % 4 || 3 * (n / 4) > cap) {
        return -1;
    }
    if (n == 0) {
        return 0;
    }
    len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (len < 0) {
        return -1;
    }
    /* EVP_DecodeBlock counts the padding as zero octets */
    pad = (in[n - 1] == '=') + (in[n - 2] == '=');
    return len - pad;
}

/* ------------------------------------------------------------------ */
/* The fallback, shared                                                */
/* ------------------------------------------------------------------ */

static pthread_mutex_t fallback_lock = PTHREAD_MUTEX_INITIALIZER;
static long long fallback_since;        /* lc_now_ms(), or 0 */

int lc_fallback_active(void)
{
    int active;

    pthread_mutex_lock(&fallback_lock);
    active = fallback_since
             && lc_now_ms() - fallback_since < LC_FALLBACK_SECONDS * 1000LL;
    pthread_mutex_unlock(&fallback_lock);
    return active;
}

int lc_fallback_note(void)
{
    int first;
    long long now = lc_now_ms();

    pthread_mutex_lock(&fallback_lock);
    first = !fallback_since
            || now - fallback_since >= LC_FALLBACK_SECONDS * 1000LL;
    if (first) {
        fallback_since = now;
    }
    pthread_mutex_unlock(&fallback_lock);
    return first;
}

void lc_note_end(lc_session_t *s, int lost, int bye, int over,
                 int client_eof)
{
    if (s->end) {
        return;
    }
    s->end = lost ? "the HTTP side failed"
           : bye ? "the server said goodbye"
           : over && !client_eof ? "the gateway ended the session"
           : "the client closed";
}
