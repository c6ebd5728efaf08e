/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * lemonade-bench: load for an IMAP server, straight or through
 * mod_lemonade, so that the paths can be measured side by side.
 *
 *   lemonade-bench [options] imap    HOST PORT USER PASS
 *   lemonade-bench [options] http    HOST PORT PATH USER PASS
 *   lemonade-bench [options] inband  HOST PORT PATH USER PASS
 *   lemonade-bench [options] connect HOST PORT TARGET USER PASS
 *   lemonade-bench [options] push    HOST IMAP-PORT HTTP-PORT PATH USER PASS
 *
 *   -c N   sessions, each on its own connection and thread (default 1);
 *          with -H, the threads that open and close the held sessions
 *   -b B   NOOP commands per round trip (default 1)
 *   -d S   seconds measured (default 5); with -H, the longest hold
 *   -w S   seconds of warm-up before that, not counted (default 1)
 *   -t S   the longest wait for any socket operation (default 10)
 *   -s     SELECT INBOX after the login
 *   -H N   hold N idle sessions instead of running rounds (http, inband)
 *   -x K   with -H in inband mode: K more sessions tried once the N are
 *          held, to see whether the server takes any more
 *   -m S   APPEND one message of S bytes, then FETCH its BODY[] back,
 *          instead of running rounds (imap, http)
 *   -n N   push mode: APPENDs made (default 30)
 *   -i S   push mode: seconds between two APPENDs (default 1.2)
 *
 * The paths, all of them IMAP sessions in the end:
 *
 *   imap     straight to the IMAP server
 *   http     one POST per round through the module, with the session
 *            cookie (draft-maes-lemonade-http-binding-04, 2.1.1)
 *   inband   one chunked POST per session, one chunk per command
 *            (draft 2.1.2); the answers arrive a chunk each
 *   connect  an HTTP CONNECT tunnel to TARGET (HOST:PORT as the proxy
 *            sees the IMAP server), then IMAP as straight (draft 2.1.3)
 *
 * Rounds (the default): every session logs in before the clock starts,
 * then sends rounds of B pipelined "tN NOOP" commands until the time is
 * up, and waits after each round for all B tagged answers. At the end
 * each session logs out, so the server is left with none, and one line
 * is printed:
 *
 *   mode=http conns=16 batch=1 seconds=5.00 rounds=... commands=...
 *   rps=... cps=... p50_us=... p99_us=... errors=0 reconnects=0
 *
 * rps counts round trips per second, cps commands per second; p50 and p99
 * are of round-trip latency. A round counts when it started after the
 * warm-up and ended before the time was up. errors counts failed rounds
 * and logins; reconnects the connections opened again after the server
 * closed one.
 *
 * Hold (-H N): N sessions log in (and SELECT INBOX), using -c threads.
 * In http mode each then drops its HTTP connection, leaving only the
 * session the cookie names; in inband mode each stays in IDLE on its own
 * POST. Then "ready held=N failed=F extra_tried=K extra_served=S" is
 * printed, and the sessions are held until a line (or the end) comes on
 * standard input or -d seconds pass; they log out and "mode=... held=N
 * closed=C errors=E" ends the output.
 *
 * A big message (-m S): after the login and SELECT, one APPEND of an
 * S-byte message as a LITERAL+ ("{S+}", RFC 7888), then "UID FETCH uid
 * BODY[]" of it, then it is expunged. One line:
 *
 *   mode=http size=... append_s=... fetch_s=... append_mbps=...
 *   fetch_mbps=... fetched=... errors=0
 *
 * Push: three sessions of the same user IDLE on INBOX at once: straight
 * (a), in-band (b) and as long polls, IDLE in in-response batches
 * posted again as soon as each is answered (c). A fourth, straight
 * session APPENDs N messages to INBOX, one every -i seconds (plus up to
 * 0.1 s, so that no periodic timer lines up with them). For each APPEND
 * one line tells how long after the APPEND command was sent each watcher
 * had its EXISTS, in microseconds (-1: never), and whether the long poll
 * missed it (its poll was posted after the APPEND, so the news waited
 * in the server for the next one):
 *
 *   event=3 a_us=... b_us=... c_us=... c_miss=0 append_ok_us=...
 *
 * and a last one: "mode=push events=N seen_a=.. seen_b=.. seen_c=..
 * misses_c=.. errors=..".
 *
 * Exit status: 0, 1 when an error was counted (or nothing was measured),
 * 2 on bad usage.
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
#define MSG_MAX         (256u << 20) /* largest message for -m */
#define PROBE_WAIT_MS   2000         /* -x: how long a probe may wait */
#define PUSH_JITTER_MS  100          /* push: spread added to -i */
#define PUSH_SETTLE_MS  300          /* push: before the first APPEND */
#define PUSH_GRACE_MS   5000         /* push: after the last APPEND */
#define PUSH_POLL_MS    200          /* push: how often watchers look up */
#define PUSH_HEARTBEAT  10           /* push: the long poll's bound, s */

typedef enum {
    MODE_IMAP,
    MODE_HTTP,
    MODE_INBAND,
    MODE_CONNECT,
    MODE_PUSH
} bench_mode_t;

static const char *const mode_names[] = {
    "imap", "http", "inband", "connect", "push"
};

/* What the command line asked for. */
typedef struct {
    bench_mode_t     mode;
    const char      *host;
    const char      *port;
    const char      *http_port;      /* push mode: the module's port */
    const char      *path;           /* http, inband: the Location */
    const char      *target;         /* connect: HOST:PORT to tunnel to */
    const char      *user;
    const char      *pass;
    int              conns;
    int              batch;
    double           duration;       /* seconds measured */
    double           warmup;         /* seconds before, not counted */
    int              timeout_ms;     /* per socket operation */
    int              select_inbox;
    int              hold;           /* -H: sessions held, 0 for rounds */
    int              extra;          /* -x: probes past the held ones */
    size_t           msg_size;       /* -m: 0 for rounds */
    int              events;         /* -n */
    double           interval;       /* -i */
    struct addrinfo *addrs;          /* host and port, resolved once */
} bench_opts_t;

/* A growable byte buffer, always with room for a closing NUL. */
typedef struct {
    char   *data;
    size_t  len;
    size_t  cap;
} bench_buf_t;

/* Where a chunked body's decoder is (RFC 9112, section 7.1). */
typedef enum {
    CK_SIZE,                         /* the chunk size's hex digits */
    CK_EXT,                          /* the rest of the size line */
    CK_DATA,                         /* chunk data */
    CK_DATA_END,                     /* the CRLF after the data */
    CK_TRAILER,                      /* trailer lines after the last chunk */
    CK_DONE                          /* the body has ended */
} chunk_state_t;

/* One TCP connection and the bytes read from it but not used yet. When
 * dechunk is set, what is read is a chunked body, and `in` receives its
 * data with the framing taken off. */
typedef struct {
    int                 fd;          /* -1 when closed */
    bench_buf_t         in;          /* read so far, from off to in.len */
    size_t              off;         /* first byte not used yet */
    int                 timeout_ms;
    int                 timed_out;   /* the last read waited in vain */
    int                 dechunk;
    chunk_state_t       ck_state;
    unsigned long long  ck_left;     /* size, then what is left of it */
    int                 ck_digits;   /* hex digits of the size so far */
    int                 ck_line;     /* trailer: bytes on this line */
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

/* Push mode: what one watcher saw, event by event. */
typedef struct {
    int            *missed;          /* long poll: posted after the APPEND */
    double         *seen;            /* when the EXISTS came, 0 before */
    unsigned long   base;            /* EXISTS once INBOX was selected */
    int             count;           /* events seen (read by main) */
    double          poll_posted;     /* long poll: the current poll's start */
} push_watch_t;

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
    const char   *extra_header;      /* http: one more request header */
    unsigned      next_tag;
    unsigned      idle_tag;          /* the IDLE under way, 0 if none */
    bench_buf_t   cmds;              /* the commands of one round */
    bench_buf_t   req;               /* http: one request, head and body */
    bench_buf_t   resp;              /* http: one answer's body */
    double        answer_at;         /* http: when the answer was read */
    unsigned long exists;            /* the last "* N EXISTS" */
    unsigned long appenduid;         /* from the last [APPENDUID v uid] */
    uint64_t      literal_bytes;     /* literal bytes in answers */
    push_watch_t *watch;             /* push mode, once INBOX is selected */
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

/* Push mode: the APPENDs' times, shared by the appender and watchers. */
static pthread_mutex_t push_lock = PTHREAD_MUTEX_INITIALIZER;
static double *push_sent;            /* when each APPEND went out */
static int push_events;
static int push_stop;                /* the watchers end (atomic) */

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

static void pause_until(double when)
{
    double left = when - now();

    if (left > 0) {
        pause_ms((int)(left * 1000.0 + 0.5));
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
        fprintf(stderr, "lemonade-bench: %s session %d: ",
                mode_names[w->opts->mode], w->id);
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

static void conn_reset(bench_conn_t *c)
{
    c->in.len = c->off = 0;
    c->timed_out = 0;
    c->dechunk = 0;
}

/* Connect to the first address that answers: 0, or -1. */
static int conn_open(bench_conn_t *c, const struct addrinfo *addrs)
{
    const struct addrinfo *ai;

    conn_reset(c);
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
    conn_reset(c);
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

/*
 * RFC 9112, section 7.1: take the framing off n raw bytes of a chunked
 * body, appending the chunks' data to c->in, which has room for n more.
 * Chunk extensions and trailers are skipped. Returns 0, or -1 when a
 * chunk size is not one.
 */
static int dechunk(bench_conn_t *c, const char *p, size_t n)
{
    const char *end = p + n;

    while (p < end) {
        size_t take;

        switch (c->ck_state) {
        case CK_SIZE:
            if (isxdigit((unsigned char)*p)) {
                if (c->ck_left > (1ULL << 40)) {
                    return -1;
                }
                c->ck_left = c->ck_left * 16
                             + (unsigned)(isdigit((unsigned char)*p)
                                          ? *p - '0'
                                          : tolower((unsigned char)*p)
                                            - 'a' + 10);
                c->ck_digits++;
                p++;
                break;
            }
            if (!c->ck_digits) {
                return -1;
            }
            c->ck_state = CK_EXT;
            break;
        case CK_EXT:
            if (*p++ == '\n') {
                c->ck_state = c->ck_left ? CK_DATA : CK_TRAILER;
                c->ck_digits = c->ck_line = 0;
            }
            break;
        case CK_DATA:
            take = (size_t)(end - p) < c->ck_left ? (size_t)(end - p)
                                                  : (size_t)c->ck_left;
            memcpy(c->in.data + c->in.len, p, take);
            c->in.len += take;
            p += take;
            if ((c->ck_left -= take) == 0) {
                c->ck_state = CK_DATA_END;
            }
            break;
        case CK_DATA_END:
            if (*p++ == '\n') {
                c->ck_state = CK_SIZE;
            }
            break;
        case CK_TRAILER:
            if (*p == '\n') {
                c->ck_state = c->ck_line ? CK_TRAILER : CK_DONE;
                c->ck_line = 0;
            }
            else if (*p != '\r') {
                c->ck_line++;
            }
            p++;
            break;
        case CK_DONE:
            p = end;             /* nothing is expected after the body */
            break;
        }
    }
    c->in.data[c->in.len] = '\0';
    return 0;
}

/* From here on what is read is a chunked body; what was read past the
 * head already is decoded at once. 0, or -1. */
static int conn_start_dechunk(bench_conn_t *c)
{
    size_t rest = c->in.len - c->off;
    char *copy = NULL;
    int rc = 0;

    c->dechunk = 1;
    c->ck_state = CK_SIZE;
    c->ck_left = 0;
    c->ck_digits = c->ck_line = 0;
    if (rest && (copy = malloc(rest)) == NULL) {
        return -1;
    }
    if (rest) {
        memcpy(copy, c->in.data + c->off, rest);
    }
    c->in.len = c->off = 0;
    if (rest) {
        rc = buf_reserve(&c->in, rest) == 0 ? dechunk(c, copy, rest) : -1;
    }
    free(copy);
    return rc;
}

/* Read what is there into the buffer: 1 read some (perhaps only chunk
 * framing), 0 the peer closed (or reset) the connection or the chunked
 * body ended, -1 error or nothing for timeout_ms (timed_out is set). */
static int conn_fill(bench_conn_t *c)
{
    bench_buf_t *b = &c->in;
    char raw[READ_MIN];

    c->timed_out = 0;
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
        ssize_t n;
        int rc;

        if (c->dechunk && c->ck_state == CK_DONE) {
            return 0;
        }
        n = c->dechunk ? recv(c->fd, raw, sizeof(raw), 0)
                       : recv(c->fd, b->data + b->len, b->cap - b->len - 1, 0);
        if (n > 0 && c->dechunk) {
            return dechunk(c, raw, (size_t)n) == 0 ? 1 : -1;
        }
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
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return -1;
        }
        if ((rc = wait_fd(c->fd, POLLIN, c->timeout_ms)) != 1) {
            c->timed_out = rc == 0;
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

/* Push mode: the EXISTS for events up to `event` came at t. A long poll
 * posted after an APPEND was sent missed it. */
static void watch_saw(push_watch_t *pw, int event, double t)
{
    int i;

    for (i = 0; i <= event; i++) {
        if (pw->seen[i] != 0) {
            continue;
        }
        pw->seen[i] = t;
        pthread_mutex_lock(&push_lock);
        pw->missed[i] = pw->poll_posted > 0 && pw->poll_posted > push_sent[i];
        pthread_mutex_unlock(&push_lock);
        __atomic_add_fetch(&pw->count, 1, __ATOMIC_SEQ_CST);
    }
}

/* An untagged response line that came at t (0: now): EXISTS is noted,
 * and in push mode its arrival. */
static void untagged(bench_worker_t *w, const char *line, double t)
{
    unsigned long n;
    char word[8];

    if (line[0] != '*' || sscanf(line, "* %lu %7s", &n, word) != 2
        || strcasecmp(word, "EXISTS")) {
        return;
    }
    w->exists = n;
    if (w->watch && n > w->watch->base && n - w->watch->base <=
        (unsigned long)push_events) {
        watch_saw(w->watch, (int)(n - w->watch->base - 1), t ? t : now());
    }
}

/* A tagged OK may carry [APPENDUID uidvalidity uid] (RFC 4315). */
static void tagged(bench_worker_t *w, const char *line)
{
    const char *code = strstr(line, "[APPENDUID ");
    unsigned long validity, uid;

    if (code && sscanf(code, "[APPENDUID %lu %lu]", &validity, &uid) == 2) {
        w->appenduid = uid;
    }
}

/* Read answers on the IMAP stream until each of the n commands from tag
 * tFIRST has its tagged one: 0 when all were OK, else -1. */
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
            tagged(w, line);
            if (!ok) {
                fail(w, "answer: %.200s", line);
            }
        }
        else if (!in_literal) {
            untagged(w, line, 0);
        }
        literal = line_literal(line, len);
        in_literal = literal >= 0;
        if (literal > 0) {
            w->literal_bytes += (uint64_t)literal;
            if (conn_take(&w->conn, (size_t)literal, NULL)) {
                return fail(w, "a literal was cut short");
            }
        }
    }
    return failed ? -1 : 0;
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
            tagged(w, p);
        }
        else if (!in_literal) {
            untagged(w, p, w->answer_at);
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
/* HTTP: the head of an answer                                         */
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

/* A Host header for the server (RFC 9110, section 7.2); an IPv6 address
 * is bracketed (RFC 3986, section 3.2.2). */
static void add_host(bench_buf_t *b, const bench_opts_t *o)
{
    const char *v6 = strchr(o->host, ':') ? "[" : "";

    buf_addf(b, "Host: %s%s%s:%s\r\n", v6, o->host, *v6 ? "]" : "",
             o->port);
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

/* The head of the final answer, after any interim 1xx ones: as above. */
static int http_final_head(bench_conn_t *c, http_answer_t *a)
{
    int rc, first = 1;

    do {
        if ((rc = http_head(c, a)) != 1) {
            return first ? rc : -1;
        }
        first = 0;
    } while (a->status >= 100 && a->status < 200);
    return 1;
}

/* ------------------------------------------------------------------ */
/* IMAP streams: straight, through CONNECT, or in-band                 */
/* ------------------------------------------------------------------ */

/* draft 2.1.3: CONNECT, then the connection is the IMAP server's. */
static int tunnel_open(bench_worker_t *w)
{
    const char *target = w->opts->target;
    http_answer_t a;

    w->req.len = 0;
    buf_addf(&w->req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target,
             target);
    if (conn_send(&w->conn, w->req.data, w->req.len) != 0
        || http_final_head(&w->conn, &a) != 1) {
        return fail(w, "CONNECT %s: no answer", target);
    }
    if (a.status != 200) {
        return fail(w, "CONNECT %s: HTTP status %d", target, a.status);
    }
    return 0;
}

/* draft 2.1.2: a chunked POST whose answer, chunked too, starts at once
 * with the server's greeting. */
static int inband_open(bench_worker_t *w)
{
    const bench_opts_t *o = w->opts;
    http_answer_t a;

    w->req.len = 0;
    buf_addf(&w->req, "POST %s HTTP/1.1\r\n", o->path);
    add_host(&w->req, o);
    buf_addf(&w->req, "Content-Type: " MEDIA_TYPE "\r\n"
             "Transfer-Encoding: chunked\r\n\r\n");
    if (conn_send(&w->conn, w->req.data, w->req.len) != 0
        || http_final_head(&w->conn, &a) != 1) {
        return fail(w, "in-band POST: no answer");
    }
    if (a.status != 200 || !a.chunked) {
        return fail(w, "in-band POST: HTTP status %d%s", a.status,
                    a.chunked ? "" : ", not chunked");
    }
    return conn_start_dechunk(&w->conn) == 0 ? 0
           : fail(w, "in-band POST: a bad chunk");
}

/* Connect, CONNECT or POST as the mode says, and read the greeting. */
static int stream_open(bench_worker_t *w)
{
    bench_mode_t mode = w->opts->mode;
    char *line;
    size_t len;

    if (worker_connect(w) != 0) {
        return -1;
    }
    if ((mode == MODE_CONNECT && tunnel_open(w) != 0)
        || (mode == MODE_INBAND && inband_open(w) != 0)) {
        conn_close(&w->conn);
        return -1;
    }
    if (conn_line(&w->conn, &line, &len) != 1 || strncmp(line, "* OK", 4)) {
        conn_close(&w->conn);
        return fail(w, "the IMAP server sent no greeting");
    }
    return 0;
}

/* Send lines of IMAP text: as they are, or in-band one chunk per line
 * (draft 2.1.2: "each command ... in its own chunk"). 0, or -1. */
static int stream_send(bench_worker_t *w, const char *data, size_t len)
{
    const char *end = data + len;

    if (w->opts->mode != MODE_INBAND) {
        return conn_send(&w->conn, data, len);
    }
    w->req.len = 0;
    while (data < end) {
        const char *nl = memchr(data, '\n', (size_t)(end - data));
        size_t n = nl ? (size_t)(nl + 1 - data) : (size_t)(end - data);

        buf_addf(&w->req, "%zx\r\n", n);
        buf_add(&w->req, data, n);
        buf_add(&w->req, "\r\n", 2);
        data += n;
    }
    return conn_send(&w->conn, w->req.data, w->req.len);
}

static int stream_round(bench_worker_t *w, const char *const *cmds, int n)
{
    unsigned first = build_round(w, cmds, n);

    if (stream_send(w, w->cmds.data, w->cmds.len) != 0) {
        return fail(w, "sending to the server failed");
    }
    return imap_answers(w, first, n);
}

/* After LOGOUT: in-band, the client's last chunk, and the answer's end
 * awaited briefly, so that the server is left with nothing open. */
static void stream_end(bench_worker_t *w)
{
    if (w->conn.fd >= 0 && w->opts->mode == MODE_INBAND) {
        w->conn.timeout_ms = w->conn.timeout_ms < 2000 ? w->conn.timeout_ms
                                                       : 2000;
        conn_send(&w->conn, "0\r\n\r\n", 5);
        w->conn.off = w->conn.in.len;
        while (conn_fill(&w->conn) == 1) {
            w->conn.off = w->conn.in.len;
        }
    }
    conn_close(&w->conn);
}

/* ------------------------------------------------------------------ */
/* HTTP: one POST per round                                            */
/* ------------------------------------------------------------------ */

/* One answer, its body into w->resp: 1; 0 when the connection closed
 * before its first byte; -1 on anything else. */
static int http_answer(bench_worker_t *w, http_answer_t *a)
{
    bench_conn_t *c = &w->conn;
    int rc;

    if ((rc = http_final_head(c, a)) != 1) {
        return rc;
    }
    w->resp.len = 0;
    if (a->status == 204 || a->status == 304) {
        rc = 0;
    }
    else if (a->chunked) {
        if ((rc = conn_start_dechunk(c)) == 0) {
            rc = conn_take_rest(c, &w->resp);
        }
        c->dechunk = 0;
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

/* The head of a POST of `len` body bytes with the session cookie, into
 * w->req. */
static void http_request_head(bench_worker_t *w, size_t len)
{
    const bench_opts_t *o = w->opts;

    w->req.len = 0;
    buf_addf(&w->req, "POST %s HTTP/1.1\r\n", o->path);
    add_host(&w->req, o);
    buf_addf(&w->req, "Content-Type: " MEDIA_TYPE "\r\nContent-Length: "
             "%zu\r\n", len);
    if (w->cookie[0]) {
        buf_addf(&w->req, "Cookie: " COOKIE_NAME "=%s\r\n", w->cookie);
    }
    if (w->extra_header) {
        buf_addf(&w->req, "%s\r\n", w->extra_header);
    }
    buf_add(&w->req, "\r\n", 2);
}

/* POST w->cmds with the session cookie, on the kept-alive connection or a
 * new one: 0 with the answer's head in *a and body in w->resp, or -1 (the
 * connection is then closed). */
static int http_post(bench_worker_t *w, http_answer_t *a)
{
    int attempt;

    http_request_head(w, w->cmds.len);
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

/* The cookie an answer set: 0, or -1 when it replaced the session that
 * NOOPs (cmds NULL) were meant for. */
static int http_take_cookie(bench_worker_t *w, const http_answer_t *a,
                            int had_cookie, const char *const *cmds)
{
    if (a->cookie_set && a->cookie_expired) {
        w->cookie[0] = '\0';
        w->logged_in = 0;
    }
    else if (a->cookie_set && strcmp(a->cookie, w->cookie)) {
        /* The session the cookie named is gone and a new one, not logged
         * in, ran these commands: a failure for NOOPs, while a LOGIN has
         * just logged the new one in. */
        strcpy(w->cookie, a->cookie);
        if (had_cookie && !cmds) {
            w->logged_in = 0;
            return fail(w, "the session was replaced by a new one");
        }
    }
    return 0;
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
    w->answer_at = now();
    if (http_take_cookie(w, &a, had_cookie, cmds) != 0) {
        return -1;
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
    int rc;

    if (w->opts->mode == MODE_HTTP || w->opts->mode == MODE_PUSH) {
        return http_round(w, cmds, n);
    }
    if ((rc = stream_round(w, cmds, n)) != 0) {
        /* the answers may be out of step now: start again */
        conn_close(&w->conn);
        w->logged_in = 0;
    }
    return rc;
}

static int is_http(const bench_worker_t *w)
{
    return w->opts->mode == MODE_HTTP || w->opts->mode == MODE_PUSH;
}

/* Log in (and SELECT INBOX): 0, or -1. */
static int session_open(bench_worker_t *w)
{
    const char *cmds[2] = { w->login, "SELECT INBOX" };

    if (!is_http(w) && stream_open(w) != 0) {
        return -1;
    }
    if (session_round(w, cmds, w->opts->select_inbox ? 2 : 1) != 0) {
        return -1;
    }
    if (is_http(w) && !w->cookie[0]) {
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
    if (w->logged_in && (!is_http(w) || w->cookie[0])) {
        session_round(w, cmds, 1);
    }
    w->logged_in = 0;
    stream_end(w);
}

/* RFC 2177: IDLE on a stream, until the server's "+": 0, or -1. */
static int idle_start(bench_worker_t *w)
{
    const char *cmds[1] = { "IDLE" };
    char *line;
    size_t len;

    w->idle_tag = build_round(w, cmds, 1);
    if (stream_send(w, w->cmds.data, w->cmds.len) != 0) {
        return fail(w, "sending IDLE failed");
    }
    for (;;) {
        if (conn_line(&w->conn, &line, &len) != 1) {
            return fail(w, "no answer to IDLE");
        }
        if (line[0] == '+') {
            return 0;
        }
        if (line[0] == 't') {
            return fail(w, "IDLE refused: %.200s", line);
        }
        untagged(w, line, 0);
    }
}

/* "DONE", and IDLE's tagged OK: 0, or -1. */
static int idle_done(bench_worker_t *w)
{
    unsigned tag = w->idle_tag;

    w->idle_tag = 0;
    if (stream_send(w, "DONE\r\n", 6) != 0) {
        return fail(w, "sending DONE failed");
    }
    return imap_answers(w, tag, 1);
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

static void worker_init(bench_worker_t *w, const bench_opts_t *o, int id,
                        const char *user, const char *pass)
{
    memset(w, 0, sizeof(*w));
    w->opts = o;
    w->id = id;
    w->conn.fd = -1;
    w->conn.timeout_ms = o->timeout_ms;
    w->next_tag = 1;
    snprintf(w->login, sizeof(w->login), "LOGIN %s %s", user, pass);
}

static void worker_free(bench_worker_t *w)
{
    conn_close(&w->conn);
    buf_free(&w->conn.in);
    buf_free(&w->cmds);
    buf_free(&w->req);
    buf_free(&w->resp);
    free(w->lat);
}

/* ------------------------------------------------------------------ */
/* Rounds: NOOPs for a set time                                        */
/* ------------------------------------------------------------------ */

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
           mode_names[o->mode], o->conns, o->batch,
           o->duration, rounds, commands, (double)rounds / o->duration,
           (double)commands / o->duration, percentile(all, n, 50),
           percentile(all, n, 99), errors, reconnects);
    fflush(stdout);
    free(all);
    return errors || !rounds ? 1 : 0;
}

static int run_rounds(const bench_opts_t *o, bench_worker_t *w)
{
    double start;
    int i, rc;

    if (pthread_barrier_init(&start_barrier, NULL,
                             (unsigned)o->conns + 1) != 0) {
        fprintf(stderr, "lemonade-bench: out of memory\n");
        return 2;
    }

    /* 1. the sessions log in */
    for (i = 0; i < o->conns; i++) {
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
    t_measure = start + o->warmup;
    t_end = t_measure + o->duration;
    pthread_barrier_wait(&start_barrier);

    /* 3. they run, log out, and are counted */
    for (i = 0; i < o->conns; i++) {
        pthread_join(w[i].thread, NULL);
    }
    rc = summarize(o, w);
    pthread_barrier_destroy(&start_barrier);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Hold: many idle sessions at once                                    */
/* ------------------------------------------------------------------ */

/* One thread's share of the held sessions: every `step`-th from `first`. */
typedef struct {
    pthread_t        thread;
    bench_worker_t  *w;
    int              first;
    int              step;
    int              total;
    int              done;           /* opened, or closed */
    int              failed;
} hold_share_t;

/* Log in, then idle: over http the connection goes and the session stays
 * in the module; in-band the POST stays, in IDLE. */
static int hold_one(bench_worker_t *w)
{
    if (session_open(w) != 0) {
        conn_close(&w->conn);
        return -1;
    }
    if (w->opts->mode == MODE_HTTP) {
        conn_close(&w->conn);
        return 0;
    }
    if (idle_start(w) != 0) {
        session_close(w);
        return -1;
    }
    return 0;
}

static void *hold_open(void *arg)
{
    hold_share_t *s = arg;
    int i;

    for (i = s->first; i < s->total; i += s->step) {
        if (hold_one(&s->w[i]) == 0) {
            s->done++;
        }
        else {
            s->failed++;
        }
    }
    return NULL;
}

static void *hold_close(void *arg)
{
    hold_share_t *s = arg;
    int i;

    for (i = s->first; i < s->total; i += s->step) {
        bench_worker_t *w = &s->w[i];

        if (!w->logged_in) {
            continue;
        }
        if ((w->idle_tag && idle_done(w) != 0)) {
            s->failed++;
        }
        session_close(w);
        s->done++;
    }
    return NULL;
}

/* Every share at once, in -c threads: the sum of what they did. */
static int hold_all(const bench_opts_t *o, bench_worker_t *w,
                    void *(*fn)(void *), int *failed)
{
    int threads = o->conns < o->hold ? o->conns : o->hold, i, done = 0;
    hold_share_t *s = calloc((size_t)threads, sizeof(*s));

    *failed = 0;
    if (!s) {
        return 0;
    }
    for (i = 0; i < threads; i++) {
        s[i].w = w;
        s[i].first = i;
        s[i].step = threads;
        s[i].total = o->hold;
        if (pthread_create(&s[i].thread, NULL, fn, &s[i]) != 0) {
            fprintf(stderr, "lemonade-bench: no thread for a share\n");
            exit(2);
        }
    }
    for (i = 0; i < threads; i++) {
        pthread_join(s[i].thread, NULL);
        done += s[i].done;
        *failed += s[i].failed;
    }
    free(s);
    return done;
}

/* -x: how many more in-band POSTs get their answer started within
 * PROBE_WAIT_MS, all tried at once. Their connections stay open until
 * probes_close(). */
static int probes_try(bench_worker_t *p, int n)
{
    double deadline;
    int i, served = 0;

    for (i = 0; i < n; i++) {
        p[i].quiet = 1;
        p[i].conn.timeout_ms = PROBE_WAIT_MS;
        if (worker_connect(&p[i]) != 0) {
            continue;
        }
        p[i].req.len = 0;
        buf_addf(&p[i].req, "POST %s HTTP/1.1\r\n", p[i].opts->path);
        add_host(&p[i].req, p[i].opts);
        buf_addf(&p[i].req, "Content-Type: " MEDIA_TYPE "\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n");
        conn_send(&p[i].conn, p[i].req.data, p[i].req.len);
    }
    deadline = now() + PROBE_WAIT_MS / 1000.0;
    for (i = 0; i < n; i++) {
        http_answer_t a;
        double left = deadline - now();

        if (p[i].conn.fd < 0) {
            continue;
        }
        p[i].conn.timeout_ms = left > 0 ? (int)(left * 1000) + 1 : 1;
        served += http_final_head(&p[i].conn, &a) == 1 && a.status == 200;
    }
    return served;
}

static void probes_close(bench_worker_t *p, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        conn_close(&p[i].conn);
    }
}

/* Wait for a line or the end on standard input, at most `seconds`. */
static void wait_for_stdin(double seconds)
{
    double deadline = now() + seconds;
    char c;

    for (;;) {
        double left = deadline - now();
        int rc;

        if (left <= 0) {
            return;
        }
        rc = wait_fd(0, POLLIN, (int)(left * 1000) + 1);
        if (rc < 0 || (rc == 1 && (read(0, &c, 1) <= 0 || c == '\n'))) {
            return;
        }
    }
}

static int run_hold(const bench_opts_t *o, bench_worker_t *w,
                    bench_worker_t *probes)
{
    int held, opened_failed, closed, close_failed, served = 0;

    /* 1. every session logs in and idles */
    held = hold_all(o, w, hold_open, &opened_failed);
    if (o->mode == MODE_INBAND && o->extra) {
        served = probes_try(probes, o->extra);
    }
    printf("ready held=%d failed=%d extra_tried=%d extra_served=%d\n", held,
           opened_failed, o->mode == MODE_INBAND ? o->extra : 0, served);
    fflush(stdout);

    /* 2. held until told, then let go */
    wait_for_stdin(o->duration);
    probes_close(probes, o->extra);
    closed = hold_all(o, w, hold_close, &close_failed);
    printf("mode=%s held=%d closed=%d errors=%d\n", mode_names[o->mode],
           held, closed, opened_failed + close_failed);
    fflush(stdout);
    return opened_failed || close_failed || held == 0 ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* A big message: APPEND it, FETCH it back                             */
/* ------------------------------------------------------------------ */

/* "tN APPEND INBOX {S+}" CRLF, an S-byte message of 78-character lines,
 * CRLF: the whole command, in memory before any clock starts. */
static char *big_append(bench_worker_t *w, size_t size, size_t *len,
                        unsigned *tag)
{
    static const char head[] = "From: bench@localhost\r\n"
                               "Subject: a big message\r\n\r\n";
    char prefix[96];
    size_t plen, i;
    char *cmd;

    *tag = w->next_tag++;
    plen = (size_t)snprintf(prefix, sizeof(prefix),
                            "t%u APPEND INBOX {%zu+}\r\n", *tag, size);
    if ((cmd = malloc(plen + size + 2)) == NULL) {
        return NULL;
    }
    memcpy(cmd, prefix, plen);
    memset(cmd + plen, 'x', size);
    memcpy(cmd + plen, head, size < sizeof(head) - 1 ? size
                                                     : sizeof(head) - 1);
    for (i = sizeof(head) - 1 + 78; i + 2 <= size; i += 80) {
        cmd[plen + i] = '\r';
        cmd[plen + i + 1] = '\n';
    }
    if (size >= 2) {
        memcpy(cmd + plen + size - 2, "\r\n", 2);
    }
    memcpy(cmd + plen + size, "\r\n", 2);
    *len = plen + size + 2;
    return cmd;
}

/* The APPEND, straight or as one POST: 0, or -1. */
static int big_send(bench_worker_t *w, const char *cmd, size_t len,
                    unsigned tag)
{
    http_answer_t a;

    if (w->opts->mode == MODE_IMAP) {
        if (conn_send(&w->conn, cmd, len) != 0) {
            return fail(w, "sending the APPEND failed");
        }
        return imap_answers(w, tag, 1);
    }
    http_request_head(w, len);
    if ((w->conn.fd < 0 && worker_connect(w) != 0)
        || conn_send(&w->conn, w->req.data, w->req.len) != 0
        || conn_send(&w->conn, cmd, len) != 0
        || http_answer(w, &a) != 1) {
        conn_close(&w->conn);
        return fail(w, "no answer to the APPEND");
    }
    if (a.close) {
        conn_close(&w->conn);
    }
    if (a.status != 200) {
        return fail(w, "APPEND: HTTP status %d: %.200s", a.status,
                    w->resp.len ? w->resp.data : "");
    }
    return body_answers(w, tag, 1);
}

/* The FETCH; over http the answer is read as it streams in, as straight,
 * and never held whole. 0, or -1. */
static int big_fetch(bench_worker_t *w, const char *cmd)
{
    const char *cmds[1] = { cmd };
    http_answer_t a;
    unsigned first;
    int rc;

    if (w->opts->mode == MODE_IMAP) {
        return stream_round(w, cmds, 1);
    }
    first = build_round(w, cmds, 1);
    http_request_head(w, w->cmds.len);
    buf_add(&w->req, w->cmds.data, w->cmds.len);
    if ((w->conn.fd < 0 && worker_connect(w) != 0)
        || conn_send(&w->conn, w->req.data, w->req.len) != 0
        || http_final_head(&w->conn, &a) != 1) {
        conn_close(&w->conn);
        return fail(w, "no answer to the FETCH");
    }
    if (a.status != 200) {
        conn_close(&w->conn);
        return fail(w, "FETCH: HTTP status %d", a.status);
    }
    if (a.chunked && conn_start_dechunk(&w->conn) != 0) {
        conn_close(&w->conn);
        return fail(w, "FETCH: a bad chunk");
    }
    rc = imap_answers(w, first, 1);
    /* whatever of the answer is left is not read: a new connection */
    conn_close(&w->conn);
    return rc;
}

static int run_big(const bench_opts_t *o, bench_worker_t *w)
{
    const char *cleanup[2];
    char fetch[64], store[96], expunge[64];
    double t0, t1, t2, t3;
    size_t len;
    unsigned tag;
    char *cmd;
    int rc = 1;

    if ((cmd = big_append(w, o->msg_size, &len, &tag)) == NULL) {
        fprintf(stderr, "lemonade-bench: no memory for the message\n");
        return 2;
    }
    if (session_open(w) != 0) {
        goto done;
    }

    /* 1. the APPEND, then the FETCH of what it stored */
    t0 = now();
    if (big_send(w, cmd, len, tag) != 0) {
        goto done;
    }
    t1 = now();
    if (w->appenduid) {
        snprintf(fetch, sizeof(fetch), "UID FETCH %lu BODY[]", w->appenduid);
    }
    else {
        snprintf(fetch, sizeof(fetch), "FETCH * BODY[]");
    }
    w->literal_bytes = 0;
    t2 = now();
    if (big_fetch(w, fetch) != 0) {
        goto done;
    }
    t3 = now();

    /* 2. the mailbox as it was */
    snprintf(store, sizeof(store), "UID STORE %lu +FLAGS.SILENT (\\Deleted)",
             w->appenduid);
    snprintf(expunge, sizeof(expunge), "UID EXPUNGE %lu", w->appenduid);
    cleanup[0] = store;
    cleanup[1] = expunge;
    if (w->appenduid && session_round(w, cleanup, 2) != 0) {
        w->errors++;
    }
    printf("mode=%s size=%zu append_s=%.6f fetch_s=%.6f append_mbps=%.1f "
           "fetch_mbps=%.1f fetched=%" PRIu64 " errors=%" PRIu64 "\n",
           mode_names[o->mode], o->msg_size, t1 - t0, t3 - t2,
           (double)o->msg_size / 1048576.0 / (t1 - t0),
           (double)o->msg_size / 1048576.0 / (t3 - t2), w->literal_bytes,
           w->errors);
    fflush(stdout);
    rc = w->errors || w->literal_bytes != o->msg_size;

done:
    if (rc && !w->errors) {
        printf("mode=%s size=%zu errors=1\n", mode_names[o->mode],
               o->msg_size);
    }
    session_close(w);
    free(cmd);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Push: three watchers, one appender                                  */
/* ------------------------------------------------------------------ */

/* A straight or in-band watcher: in IDLE, noting each EXISTS as its line
 * is read, until every event came or the appender says stop. */
static void watch_stream(bench_worker_t *w, push_watch_t *pw)
{
    int timeout = w->conn.timeout_ms;

    w->conn.timeout_ms = PUSH_POLL_MS;
    while (!__atomic_load_n(&push_stop, __ATOMIC_SEQ_CST)
           && __atomic_load_n(&pw->count, __ATOMIC_SEQ_CST) < push_events) {
        char *line;
        size_t len;

        if (conn_line(&w->conn, &line, &len) == 1) {
            untagged(w, line, 0);
        }
        else if (!w->conn.timed_out) {
            w->errors++;
            fail(w, "the IDLE session ended");
            break;
        }
    }
    w->conn.timeout_ms = timeout;
    if (w->idle_tag && w->conn.fd >= 0 && idle_done(w) != 0) {
        w->errors++;
    }
}

/* A long poll: IDLE alone in a batch, posted again at once each time it
 * is answered. */
static void watch_poll(bench_worker_t *w, push_watch_t *pw)
{
    const char *cmds[1] = { "IDLE" };

    while (!__atomic_load_n(&push_stop, __ATOMIC_SEQ_CST)
           && __atomic_load_n(&pw->count, __ATOMIC_SEQ_CST) < push_events) {
        pw->poll_posted = now();
        if (http_round(w, cmds, 1) != 0) {
            w->errors++;
            pause_ms(ERROR_PAUSE_MS);
        }
    }
}

static void *watcher_main(void *arg)
{
    bench_worker_t *w = arg;
    push_watch_t *pw = w->watch;
    int ok;

    /* 1. logged in, INBOX selected, IDLE begun: then ready */
    w->watch = NULL;
    ok = session_open(w) == 0;
    pw->base = w->exists;
    w->watch = pw;
    if (ok && w->opts->mode != MODE_PUSH) {
        ok = idle_start(w) == 0;
    }
    if (!ok) {
        w->errors++;
    }
    pthread_barrier_wait(&start_barrier);

    /* 2. the events */
    if (ok && w->opts->mode == MODE_PUSH) {
        watch_poll(w, pw);
    }
    else if (ok) {
        watch_stream(w, pw);
    }
    session_close(w);
    return NULL;
}

/* The appender: N APPENDs, each timed from the moment it is sent. */
static int push_appends(const bench_opts_t *o, bench_worker_t *a,
                        double *ok_at)
{
    unsigned seed = (unsigned)getpid();
    double start = now() + PUSH_SETTLE_MS / 1000.0;
    int i;

    for (i = 0; i < o->events; i++) {
        static const char msg[] = "From: bench@localhost\r\n"
                                  "Subject: news\r\n\r\nnews\r\n";
        double at = start + i * o->interval
                    + (rand_r(&seed) % (PUSH_JITTER_MS + 1)) / 1000.0;
        unsigned tag = a->next_tag++;

        a->cmds.len = 0;
        buf_addf(&a->cmds, "t%u APPEND INBOX {%zu+}\r\n%s\r\n", tag,
                 sizeof(msg) - 1, msg);
        pause_until(at);
        pthread_mutex_lock(&push_lock);
        push_sent[i] = now();
        pthread_mutex_unlock(&push_lock);
        if (conn_send(&a->conn, a->cmds.data, a->cmds.len) != 0
            || imap_answers(a, tag, 1) != 0) {
            return fail(a, "APPEND %d failed", i + 1);
        }
        ok_at[i] = now();
    }
    return 0;
}

/* Microseconds from the APPEND to t, or -1 when it never came. */
static long since(double t, double sent)
{
    return t > 0 && sent > 0 ? (long)((t - sent) * 1e6 + 0.5) : -1;
}

static int push_report(const bench_opts_t *o, push_watch_t *pw,
                       const double *ok_at, uint64_t errors)
{
    int i, j, misses = 0;

    for (i = 0; i < o->events; i++) {
        printf("event=%d a_us=%ld b_us=%ld c_us=%ld c_miss=%d "
               "append_ok_us=%ld\n", i + 1,
               since(pw[0].seen[i], push_sent[i]),
               since(pw[1].seen[i], push_sent[i]),
               since(pw[2].seen[i], push_sent[i]), pw[2].missed[i],
               since(ok_at[i], push_sent[i]));
        misses += pw[2].missed[i];
    }
    printf("mode=push events=%d", o->events);
    for (j = 0; j < 3; j++) {
        printf(" seen_%c=%d", 'a' + j, pw[j].count);
    }
    printf(" misses_c=%d errors=%" PRIu64 "\n", misses, errors);
    fflush(stdout);
    return errors || pw[0].count < o->events || pw[1].count < o->events
           || pw[2].count < o->events;
}

/* Options for one of the push sessions: the mode and port it uses. */
static int push_opts(bench_opts_t *dst, const bench_opts_t *src,
                     bench_mode_t mode, const char *port)
{
    struct addrinfo hints;
    int rc;

    *dst = *src;
    dst->mode = mode;
    dst->port = port;
    dst->select_inbox = mode != MODE_IMAP || src->select_inbox;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(dst->host, port, &hints, &dst->addrs)) != 0) {
        fprintf(stderr, "lemonade-bench: %s port %s: %s\n", dst->host, port,
                gai_strerror(rc));
        return -1;
    }
    return 0;
}

static int run_push(const bench_opts_t *o, const char *user,
                    const char *pass)
{
    /* watchers: (a) straight, (b) in-band, (c) long poll; then the
     * appender, straight */
    static const bench_mode_t modes[4] = { MODE_IMAP, MODE_INBAND,
                                           MODE_PUSH, MODE_IMAP };
    bench_opts_t wo[4];
    bench_worker_t w[4];
    push_watch_t pw[3];
    double *ok_at;
    char heartbeat[64];
    uint64_t errors = 0;
    int i, rc = 1;

    push_events = o->events;
    push_sent = calloc((size_t)o->events, sizeof(double));
    ok_at = calloc((size_t)o->events, sizeof(double));
    if (!push_sent || !ok_at
        || pthread_barrier_init(&start_barrier, NULL, 4) != 0) {
        return 2;
    }
    snprintf(heartbeat, sizeof(heartbeat), "Lemonade-Heartbeat: %d",
             PUSH_HEARTBEAT);
    for (i = 0; i < 4; i++) {
        if (push_opts(&wo[i], o, modes[i],
                      modes[i] == MODE_IMAP ? o->port : o->http_port)) {
            return 2;
        }
        wo[i].select_inbox = i < 3;
        worker_init(&w[i], &wo[i], i, user, pass);
    }
    w[2].extra_header = heartbeat;
    w[2].conn.timeout_ms = (PUSH_HEARTBEAT + 5) * 1000;
    for (i = 0; i < 3; i++) {
        memset(&pw[i], 0, sizeof(pw[i]));
        pw[i].seen = calloc((size_t)o->events, sizeof(double));
        pw[i].missed = calloc((size_t)o->events, sizeof(int));
        if (!pw[i].seen || !pw[i].missed) {
            return 2;
        }
        w[i].watch = &pw[i];
        if (pthread_create(&w[i].thread, NULL, watcher_main, &w[i]) != 0) {
            fprintf(stderr, "lemonade-bench: no thread for a watcher\n");
            exit(2);
        }
    }

    /* 1. the appender logs in while the watchers settle into IDLE */
    if (session_open(&w[3]) != 0) {
        w[3].errors++;
    }
    pthread_barrier_wait(&start_barrier);

    /* 2. the APPENDs, then a grace for the last EXISTS to arrive */
    if (w[3].logged_in && push_appends(o, &w[3], ok_at) != 0) {
        w[3].errors++;
    }
    {
        double until = now() + PUSH_GRACE_MS / 1000.0;

        while (now() < until
               && (__atomic_load_n(&pw[0].count, __ATOMIC_SEQ_CST) < o->events
                   || __atomic_load_n(&pw[1].count, __ATOMIC_SEQ_CST)
                      < o->events
                   || __atomic_load_n(&pw[2].count, __ATOMIC_SEQ_CST)
                      < o->events)) {
            pause_ms(20);
        }
    }
    __atomic_store_n(&push_stop, 1, __ATOMIC_SEQ_CST);
    for (i = 0; i < 3; i++) {
        pthread_join(w[i].thread, NULL);
    }
    session_close(&w[3]);

    /* 3. what each watcher saw */
    for (i = 0; i < 4; i++) {
        errors += w[i].errors;
    }
    rc = push_report(o, pw, ok_at, errors);
    for (i = 0; i < 4; i++) {
        worker_free(&w[i]);
        freeaddrinfo(wo[i].addrs);
    }
    for (i = 0; i < 3; i++) {
        free(pw[i].seen);
        free(pw[i].missed);
    }
    free(ok_at);
    free(push_sent);
    pthread_barrier_destroy(&start_barrier);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The command line                                                    */
/* ------------------------------------------------------------------ */

static void usage(void)
{
    static const char *const forms[] = {
        "imap HOST PORT USER PASS",
        "http HOST PORT PATH USER PASS",
        "inband HOST PORT PATH USER PASS",
        "connect HOST PORT TARGET USER PASS",
        "push HOST IMAP-PORT HTTP-PORT PATH USER PASS",
    };
    size_t i;

    for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        fprintf(stderr, "%s lemonade-bench [-c N] [-b B] [-d S] [-w S] "
                "[-t S] [-s] [-H N] [-x K] [-m S] [-n N] [-i S] %s\n",
                i ? "      " : "usage:", forms[i]);
    }
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

static void parse_options(int argc, char **argv, bench_opts_t *o)
{
    int c;

    memset(o, 0, sizeof(*o));
    o->conns = 1;
    o->batch = 1;
    o->duration = 5;
    o->warmup = 1;
    o->timeout_ms = 10000;
    o->events = 30;
    o->interval = 1.2;
    while ((c = getopt(argc, argv, "c:b:d:w:t:sH:x:m:n:i:")) != -1) {
        switch (c) {
        case 'c': o->conns = (int)number(optarg, 1, 1024); break;
        case 'b': o->batch = (int)number(optarg, 1, 1000); break;
        case 'd': o->duration = number(optarg, 0.1, 3600); break;
        case 'w': o->warmup = number(optarg, 0, 3600); break;
        case 't': o->timeout_ms = (int)(number(optarg, 0.1, 600) * 1000);
                  break;
        case 's': o->select_inbox = 1; break;
        case 'H': o->hold = (int)number(optarg, 1, 100000); break;
        case 'x': o->extra = (int)number(optarg, 0, 1000); break;
        case 'm': o->msg_size = (size_t)number(optarg, 64, MSG_MAX); break;
        case 'n': o->events = (int)number(optarg, 1, 10000); break;
        case 'i': o->interval = number(optarg, 0.01, 600); break;
        default:  usage();
        }
    }
}

/* The mode and its operands. */
static void parse_operands(int left, char **argv, bench_opts_t *o)
{
    static const struct {
        const char   *name;
        bench_mode_t  mode;
        int           operands;
    } forms[] = {
        { "imap", MODE_IMAP, 5 },
        { "http", MODE_HTTP, 6 },
        { "inband", MODE_INBAND, 6 },
        { "connect", MODE_CONNECT, 6 },
        { "push", MODE_PUSH, 7 },
    };
    size_t i;

    for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        if (left == forms[i].operands && !strcmp(argv[0], forms[i].name)) {
            break;
        }
    }
    if (i == sizeof(forms) / sizeof(forms[0])) {
        usage();
    }
    o->mode = forms[i].mode;
    o->host = argv[1];
    o->port = argv[2];
    o->user = argv[left - 2];
    o->pass = argv[left - 1];
    if (o->mode == MODE_HTTP || o->mode == MODE_INBAND) {
        o->path = argv[3];
    }
    else if (o->mode == MODE_CONNECT) {
        o->target = argv[3];
    }
    else if (o->mode == MODE_PUSH) {
        o->http_port = argv[3];
        o->path = argv[4];
    }
}

static void parse_args(int argc, char **argv, bench_opts_t *o)
{
    struct addrinfo hints;
    int rc;

    parse_options(argc, argv, o);
    parse_operands(argc - optind, argv + optind, o);
    if (strlen(o->user) > CRED_MAX || strlen(o->pass) > CRED_MAX
        || (o->path && (o->path[0] != '/' || strpbrk(o->path, " \r\n")))
        || (o->target && strpbrk(o->target, " \r\n"))
        || (o->hold && o->mode != MODE_HTTP && o->mode != MODE_INBAND)
        || (o->msg_size && o->mode != MODE_IMAP && o->mode != MODE_HTTP)
        || (o->hold && o->msg_size)) {
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

int main(int argc, char **argv)
{
    bench_opts_t o;
    bench_worker_t *w;
    char user[2 * CRED_MAX + 3], pass[2 * CRED_MAX + 3];
    int i, n, rc;

    parse_args(argc, argv, &o);
    signal(SIGPIPE, SIG_IGN);
    quote(user, o.user);
    quote(pass, o.pass);
    if (o.mode == MODE_PUSH) {
        rc = run_push(&o, user, pass);
        freeaddrinfo(o.addrs);
        return rc;
    }

    /* rounds: one worker a session; hold: one a held session, then the
     * probes; a big message: one */
    n = o.hold ? o.hold + o.extra : o.msg_size ? 1 : o.conns;
    if ((w = calloc((size_t)n, sizeof(*w))) == NULL) {
        fprintf(stderr, "lemonade-bench: out of memory\n");
        return 2;
    }
    for (i = 0; i < n; i++) {
        worker_init(&w[i], &o, i, user, pass);
    }
    if (o.hold) {
        o.select_inbox = 1;
        rc = run_hold(&o, w, w + o.hold);
    }
    else if (o.msg_size) {
        o.select_inbox = 1;
        rc = run_big(&o, w);
    }
    else {
        rc = run_rounds(&o, w);
    }
    for (i = 0; i < n; i++) {
        worker_free(&w[i]);
    }
    free(w);
    freeaddrinfo(o.addrs);
    return rc;
}
