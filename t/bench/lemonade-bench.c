/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * lemonade-bench: load for an IMAP server, either straight or through
 * mod_lemonade, so that the two can be measured side by side.
 *
 *   lemonade-bench [options] imap HOST PORT USER PASS
 *   lemonade-bench [options] http HOST PORT PATH USER PASS
 *
 *   -c N   sessions, each on its own connection and thread (default 1)
 *   -b B   NOOP commands per round trip (default 1)
 *   -d S   seconds measured (default 5)
 *   -w S   seconds of warm-up before that, not counted (default 1)
 *   -t S   the longest wait for any socket operation (default 10)
 *   -s     SELECT INBOX after the login
 *
 * Every session logs in before the clock starts, then sends rounds of B
 * pipelined "tN NOOP" commands until the time is up, and waits after each
 * round for all B tagged answers. In imap mode the commands go straight on
 * the IMAP connection. In http mode each round is one POST on a kept-alive
 * connection (draft-maes-lemonade-http-binding-04, 2.1.1), sent with the
 * session cookie the login's answer set. At the end each session logs out,
 * so the server is left with none, and one line is printed:
 *
 *   mode=http conns=16 batch=1 seconds=5.00 rounds=... commands=...
 *   rps=... cps=... p50_us=... p99_us=... errors=0 reconnects=0
 *
 * rps counts round trips per second, cps commands per second; p50 and p99
 * are of round-trip latency. A round counts when it started after the
 * warm-up and ended before the time was up. errors counts failed rounds
 * and logins; reconnects the connections opened again after the server
 * closed one. Exit status: 0, 1 when an error was counted or no round
 * was, 2 on bad usage.
 */

#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define COOKIE_NAME     "lemonade_session"
#define MEDIA_TYPE      "application/vnd.lemonade"

#define READ_MIN        16384        /* room made before each recv() */
#define LINE_MAX_LEN    65536        /* longest response line accepted */
#define BUF_MAX         (64u << 20)  /* largest buffer: an answer body */
#define COOKIE_MAX      256
#define CRED_MAX        200          /* longest user name or password */
#define ERRORS_SHOWN    10           /* error messages printed at most */
#define ERROR_PAUSE_MS  50           /* after a failure, before retrying */

typedef enum {
    MODE_IMAP,
    MODE_HTTP
} bench_mode_t;

/* What the command line asked for. */
typedef struct {
    bench_mode_t     mode;
    const char      *host;
    const char      *port;
    const char      *path;           /* http mode: the lemonade Location */
    const char      *user;
    const char      *pass;
    int              conns;
    int              batch;
    double           duration;       /* seconds measured */
    double           warmup;         /* seconds before, not counted */
    int              timeout_ms;     /* per socket operation */
    int              select_inbox;
    struct addrinfo *addrs;          /* host and port, resolved once */
} bench_opts_t;

/* A growable byte buffer, always with room for a closing NUL. */
typedef struct {
    char   *data;
    size_t  len;
    size_t  cap;
} bench_buf_t;

/* One TCP connection and the bytes read from it but not used yet. */
typedef struct {
    int          fd;                 /* -1 when closed */
    bench_buf_t  in;                 /* read so far, from off to in.len */
    size_t       off;                /* first byte not used yet */
    int          timeout_ms;
} bench_conn_t;

/* The parts of an HTTP answer's head that matter here. */
typedef struct {
    int        status;
    long long  length;               /* Content-Length, -1 if none */
    int        chunked;
    int        close;                /* the server will close after it */
    int        cookie_set;           /* a Set-Cookie for COOKIE_NAME */
    int        cookie_expired;       /* ... that ends the cookie */
    char       cookie[COOKIE_MAX];   /* ... and its value */
} http_answer_t;

/* One session: its thread, connection and counts. */
typedef struct {
    const bench_opts_t *opts;
    int           id;
    pthread_t     thread;
    bench_conn_t  conn;
    int           opened;            /* a connection was opened before */
    int           logged_in;         /* imap: this connection; http: the
                                      * session the cookie names */
    int           quiet;             /* failures are not reported */
    char          cookie[COOKIE_MAX];/* http: "" when there is none */
    char          login[4 * CRED_MAX + 32];
    unsigned      next_tag;
    bench_buf_t   cmds;              /* the commands of one round */
    bench_buf_t   req;               /* http: one request, head and body */
    bench_buf_t   resp;              /* http: one answer's body */
    uint32_t     *lat;               /* round-trip latencies, us */
    size_t        lat_len;
    size_t        lat_cap;
    uint64_t      rounds;
    uint64_t      commands;
    uint64_t      errors;
    uint64_t      reconnects;
} bench_worker_t;

/* The clock, set by main() between the two start barriers. */
static pthread_barrier_t start_barrier;
static double t_measure;             /* rounds count from here */
static double t_end;                 /* ... to here */

static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static int errors_shown;

/* ------------------------------------------------------------------ */
/* Small utilities                                                     */
/* ------------------------------------------------------------------ */

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pause_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Report why a worker's operation failed (the first few times only).
 * Returns -1, for the caller to return in turn. */
static int fail(bench_worker_t *w, const char *fmt, ...)
{
    va_list ap;

    if (w->quiet) {
        return -1;
    }
    pthread_mutex_lock(&report_lock);
    if (errors_shown < ERRORS_SHOWN) {
        errors_shown++;
        fprintf(stderr, "lemonade-bench: session %d: ", w->id);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
    pthread_mutex_unlock(&report_lock);
    return -1;
}

/* Make room for n more bytes and a NUL: 0, or -1 past BUF_MAX or when
 * memory runs out. */
static int buf_reserve(bench_buf_t *b, size_t n)
{
    size_t want, cap;
    char *data;

    if (n > BUF_MAX || b->len + n + 1 > BUF_MAX) {
        return -1;
    }
    want = b->len + n + 1;
    if (want <= b->cap) {
        return 0;
    }
    cap = b->cap ? b->cap : 1024;
    while (cap < want) {
        cap *= 2;
    }
    if ((data = realloc(b->data, cap)) == NULL) {
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static int buf_add(bench_buf_t *b, const void *data, size_t n)
{
    if (buf_reserve(b, n) != 0) {
        return -1;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int buf_addf(bench_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n) != 0) {
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

static void buf_free(bench_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Is token one of the comma-separated items of list (any case)? */
static int has_token(const char *list, const char *token)
{
    size_t n = strlen(token);

    while (*list) {
        size_t len;

        list += strspn(list, " \t,");
        len = strcspn(list, ",");
        while (len && (list[len - 1] == ' ' || list[len - 1] == '\t')) {
            len--;
        }
        if (len == n && !strncasecmp(list, token, n)) {
            return 1;
        }
        list += strcspn(list, ",");
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Connections: every wait bounded by timeout_ms                       */
/* ------------------------------------------------------------------ */

/* Wait for `events` on fd: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd p = { fd, events, 0 };
    int rc;

    do {
        rc = poll(&p, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    return rc < 0 ? -1 : rc;
}

static int connect_one(const struct addrinfo *ai, int timeout_ms)
{
    int fd, err = 0, one = 1;
    socklen_t len = sizeof(err);

    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) {
        return -1;
    }
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        goto failed;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS
            || wait_fd(fd, POLLOUT, timeout_ms) != 1
            || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0
            || err != 0) {
            goto failed;
        }
    }
    /* rounds are written whole: nothing is gained by waiting to merge */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;

failed:
    close(fd);
    return -1;
}

/* Connect to the first address that answers: 0, or -1. */
static int conn_open(bench_conn_t *c, const struct addrinfo *addrs)
{
    const struct addrinfo *ai;

    c->in.len = c->off = 0;
    for (ai = addrs; ai; ai = ai->ai_next) {
        if ((c->fd = connect_one(ai, c->timeout_ms)) >= 0) {
            return 0;
        }
    }
    return -1;
}

static void conn_close(bench_conn_t *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->in.len = c->off = 0;
}

/* Send all of data: 0, or -1 (error, or no progress for timeout_ms). */
static int conn_send(bench_conn_t *c, const char *data, size_t len)
{
    while (len) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);

        if (n > 0) {
            data += n;
            len -= (size_t)n;
        }
        else if (n < 0 && errno == EINTR) {
            continue;
        }
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(c->fd, POLLOUT, c->timeout_ms) != 1) {
                return -1;
            }
        }
        else {
            return -1;
        }
    }
    return 0;
}

/* Read what is there into the buffer: 1 read some, 0 the peer closed
 * (or reset) the connection, -1 error or nothing for timeout_ms. */
static int conn_fill(bench_conn_t *c)
{
    bench_buf_t *b = &c->in;

    if (c->off == b->len) {
        c->off = b->len = 0;
    }
    else if (c->off > 0 && b->cap - b->len < READ_MIN) {
        memmove(b->data, b->data + c->off, b->len - c->off);
        b->len -= c->off;
        c->off = 0;
    }
    if (buf_reserve(b, READ_MIN) != 0) {
        return -1;
    }
    for (;;) {
        ssize_t n = recv(c->fd, b->data + b->len, b->cap - b->len - 1, 0);

        if (n > 0) {
            b->len += (size_t)n;
            return 1;
        }
        if (n == 0 || errno == ECONNRESET) {
            return 0;
        }
        if (errno == EINTR) {
            continue;
        }
        if ((errno != EAGAIN && errno != EWOULDBLOCK)
            || wait_fd(c->fd, POLLIN, c->timeout_ms) != 1) {
            return -1;
        }
    }
}

/*
 * The next line, its CRLF (or bare LF) cut off and a NUL in its place, in
 * *line (valid until the next read) and its length in *len. Returns 1;
 * 0 when the connection closed with nothing left unread; -1 on an error,
 * a timeout, a line longer than LINE_MAX_LEN or one cut short by the end.
 */
static int conn_line(bench_conn_t *c, char **line, size_t *len)
{
    size_t scanned = 0;

    for (;;) {
        char *start = c->in.data + c->off;
        size_t avail = c->in.len - c->off;
        char *nl = avail ? memchr(start + scanned, '\n', avail - scanned)
                         : NULL;
        int rc;

        if (nl) {
            *len = (size_t)(nl - start);
            if (*len && start[*len - 1] == '\r') {
                (*len)--;
            }
            start[*len] = '\0';
            c->off += (size_t)(nl - start) + 1;
            *line = start;
            return 1;
        }
        if (avail > LINE_MAX_LEN) {
            return -1;
        }
        scanned = avail;
        if ((rc = conn_fill(c)) <= 0) {
            return rc == 0 && c->in.len == c->off ? 0 : -1;
        }
    }
}

/* Take the next n bytes off the connection, appended to out unless it is
 * NULL: 0, or -1 when they do not all come. */
static int conn_take(bench_conn_t *c, size_t n, bench_buf_t *out)
{
    while (n) {
        size_t avail = c->in.len - c->off, take;

        if (!avail && conn_fill(c) != 1) {
            return -1;
        }
        avail = c->in.len - c->off;
        take = avail < n ? avail : n;
        if (out && buf_add(out, c->in.data + c->off, take) != 0) {
            return -1;
        }
        c->off += take;
        n -= take;
    }
    return 0;
}

/* All that comes until the peer closes, appended to out: 0, or -1. */
static int conn_take_rest(bench_conn_t *c, bench_buf_t *out)
{
    for (;;) {
        size_t avail = c->in.len - c->off;
        int rc;

        if (avail && buf_add(out, c->in.data + c->off, avail) != 0) {
            return -1;
        }
        c->off = c->in.len;
        if ((rc = conn_fill(c)) <= 0) {
            return rc;
        }
    }
}

/* ------------------------------------------------------------------ */
/* IMAP: commands out, tagged answers counted                          */
/* ------------------------------------------------------------------ */

/* Write s as an IMAP quoted string (RFC 3501, section 9: quoted). */
static void quote(char *out, const char *s)
{
    *out++ = '"';
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            *out++ = '\\';
        }
        *out++ = *s;
    }
    *out++ = '"';
    *out = '\0';
}

/* Put n tagged commands into w->cmds: cmds[i], or NOOP when cmds is NULL.
 * Their tags are tF .. tF+n-1; returns F. */
static unsigned build_round(bench_worker_t *w, const char *const *cmds,
                            int n)
{
    unsigned first = w->next_tag;
    int i;

    w->cmds.len = 0;
    for (i = 0; i < n; i++) {
        /* never fails: a round is far below BUF_MAX */
        buf_addf(&w->cmds, "t%u %s\r\n", w->next_tag++,
                 cmds ? cmds[i] : "NOOP");
    }
    return first;
}

/* If line is the tagged answer to one of the n commands from tag tFIRST,
 * set *ok (1 for OK) and return 1; return 0 for any other line. */
static int our_answer(const char *line, unsigned first, int n, int *ok)
{
    unsigned long tag;
    char *end;

    if (line[0] != 't' || !isdigit((unsigned char)line[1])) {
        return 0;
    }
    tag = strtoul(line + 1, &end, 10);
    if (*end != ' ' || tag < first || tag - first >= (unsigned long)n) {
        return 0;
    }
    *ok = !strncasecmp(end + 1, "OK", 2) && strchr(" \r\n", end[3]);
    return 1;
}

/* The size of the literal a response line ends with ("{123}"), or -1
 * (RFC 3501, section 4.3). */
static long line_literal(const char *line, size_t len)
{
    size_t i;

    if (len < 3 || line[len - 1] != '}') {
        return -1;
    }
    for (i = len - 1; i > 0 && isdigit((unsigned char)line[i - 1]); i--) {
    }
    if (i == 0 || i == len - 1 || line[i - 1] != '{') {
        return -1;
    }
    return strtol(line + i, NULL, 10);
}

/* Read answers on the IMAP connection until each of the n commands from
 * tag tFIRST has its tagged one: 0 when all were OK, else -1. */
static int imap_answers(bench_worker_t *w, unsigned first, int n)
{
    int answered = 0, failed = 0, in_literal = 0;

    while (answered < n) {
        char *line;
        size_t len;
        long literal;
        int ok, rc = conn_line(&w->conn, &line, &len);

        if (rc <= 0) {
            return fail(w, rc == 0 ? "the IMAP server closed the connection"
                        : "no complete answer within the timeout");
        }
        /* the text after a literal continues a response */
        if (!in_literal && our_answer(line, first, n, &ok)) {
            answered++;
            failed += !ok;
            if (!ok) {
                fail(w, "answer: %.200s", line);
            }
        }
        literal = line_literal(line, len);
        in_literal = literal >= 0;
        if (literal > 0 && conn_take(&w->conn, (size_t)literal, NULL)) {
            return fail(w, "a literal was cut short");
        }
    }
    return failed ? -1 : 0;
}

static int imap_round(bench_worker_t *w, const char *const *cmds, int n)
{
    unsigned first = build_round(w, cmds, n);

    if (conn_send(&w->conn, w->cmds.data, w->cmds.len) != 0) {
        return fail(w, "sending to the IMAP server failed");
    }
    return imap_answers(w, first, n);
}

/* Count the n tagged answers in a body of IMAP responses, as above. */
static int body_answers(bench_worker_t *w, unsigned first, int n)
{
    const char *p = w->resp.data, *end = p + w->resp.len;
    int answered = 0, failed = 0, in_literal = 0;

    while (w->resp.len && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        long literal;
        int ok;

        if (len && p[len - 1] == '\r') {
            len--;
        }
        if (!in_literal && our_answer(p, first, n, &ok)) {
            answered++;
            failed += !ok;
        }
        literal = line_literal(p, len);
        in_literal = literal >= 0;
        p = nl ? nl + 1 : end;
        if (literal > 0) {
            p = (size_t)literal < (size_t)(end - p) ? p + literal : end;
        }
    }
    if (answered != n || failed) {
        return fail(w, "%d of %d commands answered, %d not OK: %.200s",
                    answered, n, failed, w->resp.len ? w->resp.data : "");
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* HTTP: one POST per round                                            */
/* ------------------------------------------------------------------ */

/* Open the worker's connection, counting it when it is not the first. */
static int worker_connect(bench_worker_t *w)
{
    conn_close(&w->conn);
    if (w->opened) {
        w->reconnects++;
    }
    if (conn_open(&w->conn, w->opts->addrs) != 0) {
        return fail(w, "cannot connect to %s port %s", w->opts->host,
                    w->opts->port);
    }
    w->opened = 1;
    return 0;
}

/* Set-Cookie: NAME=VALUE; attributes (RFC 6265, section 4.1.1). */
static void http_cookie(http_answer_t *a, const char *value)
{
    size_t n = strlen(COOKIE_NAME), len;
    const char *attr;

    if (strncmp(value, COOKIE_NAME "=", n + 1)) {
        return;
    }
    value += n + 1;
    len = strcspn(value, ";");
    while (len && value[len - 1] == ' ') {
        len--;
    }
    if (len >= COOKIE_MAX) {
        return;
    }
    memcpy(a->cookie, value, len);
    a->cookie[len] = '\0';
    a->cookie_set = 1;
    a->cookie_expired = len == 0;
    for (attr = strchr(value, ';'); attr; attr = strchr(attr + 1, ';')) {
        const char *s = attr + 1 + strspn(attr + 1, " ");

        if (!strncasecmp(s, "Max-Age=", 8) && atol(s + 8) <= 0) {
            a->cookie_expired = 1;
        }
    }
}

static void http_header(http_answer_t *a, char *line)
{
    char *colon = strchr(line, ':'), *value;

    if (!colon) {
        return;
    }
    *colon = '\0';
    value = colon + 1 + strspn(colon + 1, " \t");
    if (!strcasecmp(line, "Content-Length")) {
        a->length = strtoll(value, NULL, 10);
    }
    else if (!strcasecmp(line, "Transfer-Encoding")) {
        a->chunked = has_token(value, "chunked");
    }
    else if (!strcasecmp(line, "Connection")) {
        if (has_token(value, "close")) {
            a->close = 1;
        }
        else if (has_token(value, "keep-alive")) {
            a->close = 0;
        }
    }
    else if (!strcasecmp(line, "Set-Cookie")) {
        http_cookie(a, value);
    }
}

/* The status line and headers: 1; 0 when the connection closed before
 * the first byte; -1 on anything else. */
static int http_head(bench_conn_t *c, http_answer_t *a)
{
    char *line;
    size_t len;
    int major, minor, rc;

    memset(a, 0, sizeof(*a));
    a->length = -1;
    if ((rc = conn_line(c, &line, &len)) <= 0) {
        return rc;
    }
    if (sscanf(line, "HTTP/%d.%d %d", &major, &minor, &a->status) != 3) {
        return -1;
    }
    a->close = major == 1 && minor == 0;
    for (;;) {
        if (conn_line(c, &line, &len) != 1) {
            return -1;
        }
        if (len == 0) {
            return 1;
        }
        http_header(a, line);
    }
}

/* RFC 9112, section 7.1: chunks, a last chunk of size 0, a trailer. */
static int http_chunked(bench_conn_t *c, bench_buf_t *body)
{
    char *line, *end;
    size_t len;

    for (;;) {
        unsigned long long size;

        if (conn_line(c, &line, &len) != 1) {
            return -1;
        }
        errno = 0;
        size = strtoull(line, &end, 16);
        if (end == line || errno || (*end && !strchr("; \t", *end))) {
            return -1;
        }
        if (size == 0) {
            break;
        }
        if (size > BUF_MAX || conn_take(c, (size_t)size, body) != 0
            || conn_line(c, &line, &len) != 1 || len != 0) {
            return -1;
        }
    }
    do {
        if (conn_line(c, &line, &len) != 1) {
            return -1;
        }
    } while (len);
    return 0;
}

/* One answer, its body into w->resp: 1; 0 when the connection closed
 * before its first byte; -1 on anything else. */
static int http_answer(bench_worker_t *w, http_answer_t *a)
{
    bench_conn_t *c = &w->conn;
    int rc, first = 1;

    /* interim 1xx answers come before the real one */
    do {
        if ((rc = http_head(c, a)) != 1) {
            return first ? rc : -1;
        }
        first = 0;
    } while (a->status >= 100 && a->status < 200);

    w->resp.len = 0;
    if (a->status == 204 || a->status == 304) {
        rc = 0;
    }
    else if (a->chunked) {
        rc = http_chunked(c, &w->resp);
    }
    else if (a->length >= 0) {
        rc = (unsigned long long)a->length > BUF_MAX ? -1
             : conn_take(c, (size_t)a->length, &w->resp);
    }
    else {
        a->close = 1;
        rc = conn_take_rest(c, &w->resp);
    }
    return rc == 0 ? 1 : -1;
}

/* POST w->cmds with the session cookie, on the kept-alive connection or a
 * new one: 0 with the answer's head in *a and body in w->resp, or -1 (the
 * connection is then closed). */
static int http_post(bench_worker_t *w, http_answer_t *a)
{
    const bench_opts_t *o = w->opts;
    /* an IPv6 address is bracketed in Host (RFC 3986, section 3.2.2) */
    const char *v6 = strchr(o->host, ':') ? "[" : "";
    int attempt;

    w->req.len = 0;
    buf_addf(&w->req, "POST %s HTTP/1.1\r\nHost: %s%s%s:%s\r\n"
             "Content-Type: " MEDIA_TYPE "\r\nContent-Length: %zu\r\n",
             o->path, v6, o->host, *v6 ? "]" : "", o->port, w->cmds.len);
    if (w->cookie[0]) {
        buf_addf(&w->req, "Cookie: " COOKIE_NAME "=%s\r\n", w->cookie);
    }
    buf_add(&w->req, "\r\n", 2);
    if (buf_add(&w->req, w->cmds.data, w->cmds.len) != 0) {
        return fail(w, "out of memory");
    }

    for (attempt = 0; attempt < 2; attempt++) {
        int reused = w->conn.fd >= 0, sent, rc = -1;

        if (!reused && worker_connect(w) != 0) {
            return -1;
        }
        sent = conn_send(&w->conn, w->req.data, w->req.len) == 0;
        if (sent) {
            rc = http_answer(w, a);
        }
        if (rc == 1) {
            if (a->close) {
                conn_close(&w->conn);
            }
            return 0;
        }
        conn_close(&w->conn);
        /* A kept-alive connection the server closed meanwhile takes no
         * request (the send fails, or the answer ends before its first
         * byte): once more on a new one. Anything else is a failure. */
        if (!reused || (sent && rc < 0)) {
            break;
        }
    }
    return fail(w, "no complete HTTP answer");
}

/* One round over HTTP: 0 when it was answered 200 with every command OK
 * in the session we meant, else -1. */
static int http_round(bench_worker_t *w, const char *const *cmds, int n)
{
    http_answer_t a;
    int had_cookie = w->cookie[0] != '\0';
    unsigned first = build_round(w, cmds, n);

    if (http_post(w, &a) != 0) {
        return -1;
    }
    if (a.cookie_set && a.cookie_expired) {
        w->cookie[0] = '\0';
        w->logged_in = 0;
    }
    else if (a.cookie_set && strcmp(a.cookie, w->cookie)) {
        /* The session the cookie named is gone and a new one, not logged
         * in, ran these commands: a failure for NOOPs, while a LOGIN has
         * just logged the new one in. */
        strcpy(w->cookie, a.cookie);
        if (had_cookie && !cmds) {
            w->logged_in = 0;
            return fail(w, "the session was replaced by a new one");
        }
    }
    if (a.status != 200) {
        return fail(w, "HTTP status %d: %.200s", a.status,
                    w->resp.len ? w->resp.data : "");
    }
    return body_answers(w, first, n);
}

/* ------------------------------------------------------------------ */
/* Sessions                                                            */
/* ------------------------------------------------------------------ */

static int session_round(bench_worker_t *w, const char *const *cmds, int n)
{
    int rc = w->opts->mode == MODE_IMAP ? imap_round(w, cmds, n)
                                        : http_round(w, cmds, n);

    if (rc != 0 && w->opts->mode == MODE_IMAP) {
        /* the answers may be out of step now: start again */
        conn_close(&w->conn);
        w->logged_in = 0;
    }
    return rc;
}

static int imap_greeting(bench_worker_t *w)
{
    char *line;
    size_t len;

    if (worker_connect(w) != 0) {
        return -1;
    }
    if (conn_line(&w->conn, &line, &len) != 1 || strncmp(line, "* OK", 4)) {
        conn_close(&w->conn);
        return fail(w, "the IMAP server sent no greeting");
    }
    return 0;
}

/* Log in (and SELECT INBOX): 0, or -1. */
static int session_open(bench_worker_t *w)
{
    const char *cmds[2] = { w->login, "SELECT INBOX" };

    if (w->opts->mode == MODE_IMAP && imap_greeting(w) != 0) {
        return -1;
    }
    if (session_round(w, cmds, w->opts->select_inbox ? 2 : 1) != 0) {
        return -1;
    }
    if (w->opts->mode == MODE_HTTP && !w->cookie[0]) {
        return fail(w, "the login's answer set no " COOKIE_NAME " cookie");
    }
    w->logged_in = 1;
    return 0;
}

/* LOGOUT, so that the server keeps no session of ours. Failures here
 * are not counted: the measurement is over. */
static void session_close(bench_worker_t *w)
{
    const char *cmds[1] = { "LOGOUT" };

    w->quiet = 1;
    if (w->logged_in && (w->opts->mode == MODE_IMAP || w->cookie[0])) {
        session_round(w, cmds, 1);
    }
    conn_close(&w->conn);
}

static void record(bench_worker_t *w, double seconds)
{
    if (w->lat_len == w->lat_cap) {
        size_t cap = w->lat_cap ? w->lat_cap * 2 : 4096;
        uint32_t *lat = realloc(w->lat, cap * sizeof(*lat));

        if (!lat) {
            return;
        }
        w->lat = lat;
        w->lat_cap = cap;
    }
    w->lat[w->lat_len++] = (uint32_t)(seconds * 1e6 + 0.5);
}

static void *worker_main(void *arg)
{
    bench_worker_t *w = arg;
    int batch = w->opts->batch;

    /* 1. a session, before the clock starts */
    if (session_open(w) != 0) {
        w->errors++;
    }
    pthread_barrier_wait(&start_barrier);
    pthread_barrier_wait(&start_barrier);

    /* 2. rounds until the time is up */
    while (now() < t_end) {
        double t0, t1;

        if (!w->logged_in && session_open(w) != 0) {
            w->errors++;
            pause_ms(ERROR_PAUSE_MS);
            continue;
        }
        t0 = now();
        if (session_round(w, NULL, batch) != 0) {
            w->errors++;
            pause_ms(ERROR_PAUSE_MS);
            continue;
        }
        t1 = now();
        if (t0 >= t_measure && t1 <= t_end) {
            w->rounds++;
            w->commands += (uint64_t)batch;
            record(w, t1 - t0);
        }
    }

    /* 3. leave nothing behind */
    session_close(w);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* The command line and the summary                                    */
/* ------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr,
            "usage: lemonade-bench [-c N] [-b B] [-d S] [-w S] [-t S] [-s] "
            "imap HOST PORT USER PASS\n"
            "       lemonade-bench [-c N] [-b B] [-d S] [-w S] [-t S] [-s] "
            "http HOST PORT PATH USER PASS\n");
    exit(2);
}

static double number(const char *arg, double min, double max)
{
    char *end;
    double v = strtod(arg, &end);

    if (end == arg || *end || !(v >= min && v <= max)) {
        fprintf(stderr, "lemonade-bench: '%s' is not a number from %g to "
                "%g\n", arg, min, max);
        exit(2);
    }
    return v;
}

static void parse_args(int argc, char **argv, bench_opts_t *o)
{
    struct addrinfo hints;
    int c, rc, left;

    memset(o, 0, sizeof(*o));
    o->conns = 1;
    o->batch = 1;
    o->duration = 5;
    o->warmup = 1;
    o->timeout_ms = 10000;
    while ((c = getopt(argc, argv, "c:b:d:w:t:s")) != -1) {
        switch (c) {
        case 'c': o->conns = (int)number(optarg, 1, 1024); break;
        case 'b': o->batch = (int)number(optarg, 1, 1000); break;
        case 'd': o->duration = number(optarg, 0.1, 3600); break;
        case 'w': o->warmup = number(optarg, 0, 3600); break;
        case 't': o->timeout_ms = (int)(number(optarg, 0.1, 600) * 1000);
                  break;
        case 's': o->select_inbox = 1; break;
        default:  usage();
        }
    }
    left = argc - optind;
    argv += optind;
    if (left == 5 && !strcmp(argv[0], "imap")) {
        o->mode = MODE_IMAP;
        o->user = argv[3];
        o->pass = argv[4];
    }
    else if (left == 6 && !strcmp(argv[0], "http") && argv[3][0] == '/') {
        o->mode = MODE_HTTP;
        o->path = argv[3];
        o->user = argv[4];
        o->pass = argv[5];
    }
    else {
        usage();
    }
    o->host = argv[1];
    o->port = argv[2];
    if (strlen(o->user) > CRED_MAX || strlen(o->pass) > CRED_MAX
        || strpbrk(o->path ? o->path : "", " \r\n")) {
        usage();
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(o->host, o->port, &hints, &o->addrs)) != 0) {
        fprintf(stderr, "lemonade-bench: %s port %s: %s\n", o->host,
                o->port, gai_strerror(rc));
        exit(2);
    }
}

static int by_value(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return (x > y) - (x < y);
}

/* The p-th percentile by nearest rank of n sorted values (0 if none). */
static uint32_t percentile(const uint32_t *v, size_t n, double p)
{
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);

    if (n == 0) {
        return 0;
    }
    return v[rank ? rank - 1 : 0];
}

static int summarize(const bench_opts_t *o, bench_worker_t *w)
{
    uint64_t rounds = 0, commands = 0, errors = 0, reconnects = 0;
    size_t n = 0, i;
    uint32_t *all;

    for (i = 0; i < (size_t)o->conns; i++) {
        rounds += w[i].rounds;
        commands += w[i].commands;
        errors += w[i].errors;
        reconnects += w[i].reconnects;
        n += w[i].lat_len;
    }
    all = malloc((n ? n : 1) * sizeof(*all));
    if (!all) {
        fprintf(stderr, "lemonade-bench: out of memory\n");
        return 1;
    }
    for (n = 0, i = 0; i < (size_t)o->conns; i++) {
        memcpy(all + n, w[i].lat, w[i].lat_len * sizeof(*all));
        n += w[i].lat_len;
    }
    qsort(all, n, sizeof(*all), by_value);

    printf("mode=%s conns=%d batch=%d seconds=%.2f rounds=%" PRIu64
           " commands=%" PRIu64 " rps=%.1f cps=%.1f p50_us=%" PRIu32
           " p99_us=%" PRIu32 " errors=%" PRIu64 " reconnects=%" PRIu64 "\n",
           o->mode == MODE_IMAP ? "imap" : "http", o->conns, o->batch,
           o->duration, rounds, commands, (double)rounds / o->duration,
           (double)commands / o->duration, percentile(all, n, 50),
           percentile(all, n, 99), errors, reconnects);
    fflush(stdout);
    free(all);
    return errors || !rounds ? 1 : 0;
}

int main(int argc, char **argv)
{
    bench_opts_t o;
    bench_worker_t *w;
    char user[2 * CRED_MAX + 3], pass[2 * CRED_MAX + 3];
    double start;
    int i, rc;

    parse_args(argc, argv, &o);
    signal(SIGPIPE, SIG_IGN);
    quote(user, o.user);
    quote(pass, o.pass);

    w = calloc((size_t)o.conns, sizeof(*w));
    if (!w || pthread_barrier_init(&start_barrier, NULL,
                                   (unsigned)o.conns + 1) != 0) {
        fprintf(stderr, "lemonade-bench: out of memory\n");
        return 2;
    }

    /* 1. the sessions log in */
    for (i = 0; i < o.conns; i++) {
        w[i].opts = &o;
        w[i].id = i;
        w[i].conn.fd = -1;
        w[i].conn.timeout_ms = o.timeout_ms;
        w[i].next_tag = 1;
        snprintf(w[i].login, sizeof(w[i].login), "LOGIN %s %s", user, pass);
        if ((rc = pthread_create(&w[i].thread, NULL, worker_main, &w[i]))) {
            /* the others wait at the barrier: exit() ends them too */
            fprintf(stderr, "lemonade-bench: thread %d: %s\n", i,
                    strerror(rc));
            exit(2);
        }
    }
    pthread_barrier_wait(&start_barrier);

    /* 2. the clock starts once every session is ready */
    start = now();
    t_measure = start + o.warmup;
    t_end = t_measure + o.duration;
    pthread_barrier_wait(&start_barrier);

    /* 3. they run, log out, and are counted */
    for (i = 0; i < o.conns; i++) {
        pthread_join(w[i].thread, NULL);
    }
    rc = summarize(&o, w);

    for (i = 0; i < o.conns; i++) {
        buf_free(&w[i].conn.in);
        buf_free(&w[i].cmds);
        buf_free(&w[i].req);
        buf_free(&w[i].resp);
        free(w[i].lat);
    }
    free(w);
    freeaddrinfo(o.addrs);
    pthread_barrier_destroy(&start_barrier);
    return rc;
}
