/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * IMAP in both modes: what only IMAP knows (mod_lemonade_proto.h).
 *
 *   greeting       RFC 3501 7.1: "* OK" or "* PREAUTH" opens a session
 *   in-response    check: the command framing of lem_imap.h over the body
 *                  relay: commands pipelined in order, waiting only for a
 *                  synchronizing literal's "+" and for AUTHENTICATE; IDLE
 *                  as a long poll
 *   in-band        client lines and literals framed and passed on, each
 *                  response a chunk of its own, continuations both ways
 */

#include <apr_strings.h>

#include <httpd.h>
#include <http_log.h>
#include <http_protocol.h>

#include "lem_imap.h"
#include "mod_lemonade.h"
#include "mod_lemonade_proto.h"

APLOG_USE_MODULE(lemonade);

/* ------------------------------------------------------------------ */
/* The greeting                                                        */
/* ------------------------------------------------------------------ */

static apr_status_t imap_greet(lem_backend_t *be, int *welcome, char *out,
                               apr_size_t cap, apr_size_t *len)
{
    lem_resp_parser_t rp;
    lem_imap_piece_t piece;
    apr_size_t used;
    apr_status_t rv;

    *len = 0;
    lem_resp_init(&rp);
    for (;;) {
        lem_imap_ev_t ev;

        if (be->off == be->len && (rv = lem_backend_fill(be)) != APR_SUCCESS) {
            return rv;
        }
        ev = lem_resp_next(&rp, be->buf + be->off, be->len - be->off, &used,
                           &piece);
        be->off += used;
        if (ev == LEM_IMAP_ERROR || (ev != LEM_IMAP_NEED_MORE && piece.first
                                     && rp.kind != LEM_RESP_UNTAGGED)) {
            return APR_EGENERAL;
        }
        if (ev == LEM_IMAP_NEED_MORE) {
            continue;
        }
        if (*len + piece.len <= cap) {
            memcpy(out + *len, piece.data, piece.len);
            *len += piece.len;
        }
        if (piece.last) {
            *welcome = rp.status == LEM_STATUS_OK
                       || rp.status == LEM_STATUS_PREAUTH;
            return lem_backend_commit(be);
        }
    }
}

/* RFC 3501 6.2.1: "a STARTTLS" until its tagged OK; then TLS. */
static apr_status_t imap_starttls(lem_backend_t *be, const char *helo)
{
    static const char cmd[] = "LEMTLS STARTTLS\r\n";
    lem_resp_parser_t rp;
    lem_imap_piece_t piece;
    apr_size_t used;
    apr_status_t rv;

    (void)helo;
    rv = lem_backend_write(be, cmd, sizeof(cmd) - 1, NULL, NULL);
    lem_resp_init(&rp);
    while (rv == APR_SUCCESS) {
        lem_imap_ev_t ev;

        if (be->off == be->len && (rv = lem_backend_fill(be)) != APR_SUCCESS) {
            break;
        }
        ev = lem_resp_next(&rp, be->buf + be->off, be->len - be->off, &used,
                           &piece);
        be->off += used;
        if (ev == LEM_IMAP_ERROR) {
            rv = APR_EGENERAL;
        }
        else if (ev != LEM_IMAP_NEED_MORE && piece.last
                 && rp.kind == LEM_RESP_TAGGED) {
            rv = lem_backend_commit(be);
            return rv != APR_SUCCESS ? rv : rp.status == LEM_STATUS_OK
                                            ? APR_SUCCESS : APR_EACCES;
        }
    }
    return rv;
}

/* ------------------------------------------------------------------ */
/* In-response, pass 1: check the batch                                */
/* ------------------------------------------------------------------ */

static int imap_check(lem_batch_t *b, const char *data, apr_size_t len)
{
    lem_cmd_parser_t *cp = b->state;
    lem_imap_piece_t piece;
    apr_size_t used;

    if (!cp) {
        cp = b->state = apr_palloc(b->r->pool, sizeof(*cp));
        lem_cmd_init(cp, b->line, b->conf->max_line,
                     (apr_uint64_t)b->conf->max_literal);
    }
    if (!data) {
        if (!lem_cmd_at_boundary(cp)) {
            return lem_batch_refuse(b, HTTP_BAD_REQUEST, cp->commands + 1,
                                    "the body ends inside a command (a "
                                    "missing CRLF, or a literal shorter "
                                    "than announced)");
        }
        return cp->commands ? OK : lem_batch_refuse(b, HTTP_BAD_REQUEST, 0,
                                                    "the body holds no "
                                                    "command");
    }
    while (len) {
        lem_imap_ev_t ev = lem_cmd_next(cp, data, len, &used, &piece);

        data += used;
        len -= used;
        if (ev == LEM_IMAP_ERROR) {
            return lem_batch_refuse(b, cp->limit_hit
                                    ? HTTP_REQUEST_ENTITY_TOO_LARGE
                                    : HTTP_BAD_REQUEST, cp->commands + 1,
                                    cp->error);
        }
        /* `commands` already counts a one-line command just read */
        if (ev == LEM_IMAP_TEXT && piece.first
            && cp->commands - piece.last >= (unsigned)b->conf->max_commands) {
            return lem_batch_refuse(b, HTTP_REQUEST_ENTITY_TOO_LARGE,
                                    cp->commands + !piece.last, apr_psprintf(
                                    b->r->pool, "more than %d commands in "
                                    "one request", b->conf->max_commands));
        }
        if (ev == LEM_IMAP_NEED_MORE) {
            break;
        }
    }
    return OK;
}

/* ------------------------------------------------------------------ */
/* In-response, pass 2: relay                                          */
/* ------------------------------------------------------------------ */

#define LEM_WBUF_SIZE  (16 * 1024)

/* A command of the batch that was sent, and whether it was answered. */
typedef struct {
    char tag[LEM_IMAP_TAG_MAX + 1];
    int  done;
} lem_pending_t;

/* The relay of one batch. */
typedef struct {
    lem_batch_t          *m;          /* the exchange it is part of */
    lem_resp_parser_t     resp;
    apr_array_header_t   *pending;    /* of lem_pending_t, in order */
    int                   first_open; /* first pending not done */
    int                   outstanding;
    int                   skipping;   /* the rest of a command is dropped */
    int                   cont_wanted;/* a "{n}" waits for "+" */
    int                   cont_got;
    int                   cont_refused;
    int                   cancel;     /* an unasked "+" to answer with "*" */
    int                   in_cont;    /* inside a "+" line we consume */
    int                   in_tagged;  /* inside a tagged response */
    int                   in_bad;     /* inside an untagged BAD */
    const char           *cur_tag;    /* of the command being sent */
    char                 *wbuf;       /* commands gathered for one write */
    apr_size_t            wlen;
    int                   saw_bye;
    int                   notices;    /* untagged data seen (long poll) */
    apr_time_t            deadline;   /* of a long poll, or 0 */
} imap_batch_t;


static void answer_write(imap_batch_t *b, const char *data, apr_size_t len)
{
    lem_batch_answer(b->m, data, len);
}

static lem_pending_t *pending_of(imap_batch_t *b, const char *tag)
{
    lem_pending_t *p = (lem_pending_t *)b->pending->elts;
    int i;

    for (i = b->first_open; i < b->pending->nelts; i++) {
        if (!p[i].done && !strcmp(p[i].tag, tag)) {
            return &p[i];
        }
    }
    return NULL;
}

/* Command `p` is answered with `status`. */
static void complete(imap_batch_t *b, lem_pending_t *p, lem_status_t status)
{
    lem_pending_t *all = (lem_pending_t *)b->pending->elts;

    p->done = 1;
    b->outstanding--;
    while (b->first_open < b->pending->nelts && all[b->first_open].done) {
        b->first_open++;
    }
    if (status != LEM_STATUS_OK) {
        b->m->any_failed = 1;
    }
    if (b->cont_wanted && b->cur_tag && !strcmp(b->cur_tag, p->tag)) {
        b->cont_refused = 1;
    }
}

/* A tagged response: the command it completes is answered. */
static void on_tagged(imap_batch_t *b)
{
    lem_pending_t *p = pending_of(b, b->resp.tag);

    if (p) {
        complete(b, p, b->resp.status);
    }
}

/*
 * An untagged BAD: a server that cannot read a command line (Dovecot, for
 * a tag with "]", which RFC 3501 allows) answers it so, and that command
 * will never get a tagged answer. It is taken for the oldest command not
 * answered, which is given a tagged BAD of the gateway's, so that the
 * batch ends instead of waiting for LemonadeBackendTimeout.
 */
static void on_untagged_bad(imap_batch_t *b)
{
    lem_pending_t *p = (lem_pending_t *)b->pending->elts + b->first_open;
    const char *line;

    if (b->outstanding == 0 || b->first_open >= b->pending->nelts) {
        return;
    }
    line = apr_psprintf(b->m->r->pool, "%s BAD the server could not read "
                        "this command and answered it untagged\r\n",
                        p->tag);
    answer_write(b, line, strlen(line));
    complete(b, p, LEM_STATUS_BAD);
}

/* The start of a response: decide what becomes of it. */
static void on_response_head(imap_batch_t *b)
{
    b->in_cont = b->in_tagged = b->in_bad = 0;
    switch (b->resp.kind) {
    case LEM_RESP_CONTINUATION:
        /* ours to answer: a literal's go-ahead, or an unasked request
         * (a SASL challenge) that in-response mode cannot answer */
        b->in_cont = 1;
        if (b->cont_wanted) {
            b->cont_got = 1;
        }
        else {
            b->cancel = 1;
        }
        break;
    case LEM_RESP_TAGGED:
        b->in_tagged = 1;
        break;
    case LEM_RESP_UNTAGGED:
        if (b->resp.status == LEM_STATUS_BYE) {
            b->saw_bye = 1;
        }
        b->in_bad = b->resp.status == LEM_STATUS_BAD;
        /* "* 4 EXISTS", "* 2 EXPUNGE", ... is news; "* OK Still here"
         * is only a keepalive */
        if (b->resp.status == LEM_STATUS_NONE) {
            b->notices++;
        }
        break;
    }
}

typedef enum {
    UNTIL_CONTINUATION,   /* "+" or the command's tagged refusal */
    UNTIL_COMMAND_DONE,   /* the current command is answered */
    UNTIL_ALL_DONE,       /* every command sent is answered */
    UNTIL_NOTICE,         /* news from the server, or the deadline */
    UNTIL_DRAINED         /* what can be read without waiting */
} lem_until_t;

static int reached(imap_batch_t *b, lem_until_t until)
{
    switch (until) {
    case UNTIL_CONTINUATION:
        return b->cont_got || b->cont_refused;
    case UNTIL_COMMAND_DONE:
        return !b->cur_tag || !pending_of(b, b->cur_tag);
    case UNTIL_ALL_DONE:
        return b->outstanding == 0;
    case UNTIL_NOTICE:
        return b->notices > 0 || apr_time_now() >= b->deadline;
    default:
        return 0;
    }
}

static apr_status_t send_backend(imap_batch_t *b, const char *data,
                                 apr_size_t len);
static apr_status_t flush_writes(imap_batch_t *b);

/* Wait for the backend; a long poll waits no longer than its deadline,
 * and its end at a response boundary is no failure. */
static apr_status_t fill(imap_batch_t *b, lem_until_t until)
{
    apr_interval_time_t saved = b->m->be.timeout;
    apr_status_t rv;

    if (until != UNTIL_NOTICE) {
        return lem_backend_fill(&b->m->be);
    }
    b->m->be.timeout = b->deadline - apr_time_now();
    if (b->m->be.timeout < 0) {
        b->m->be.timeout = 0;
    }
    rv = lem_backend_fill(&b->m->be);
    b->m->be.timeout = saved;
    if (rv == APR_TIMEUP && lem_resp_at_boundary(&b->resp)) {
        rv = APR_SUCCESS;       /* reached() now holds */
    }
    return rv;
}

/*
 * Read responses into the answer until `until` holds at a response
 * boundary; with UNTIL_DRAINED, only what is there already. Bytes after
 * the point it stops are left in the socket.
 */
static apr_status_t pump(imap_batch_t *b, lem_until_t until)
{
    lem_imap_piece_t piece;
    apr_size_t used;
    apr_status_t rv;

    /* what waits to be written must go before anything is waited for */
    if (until != UNTIL_DRAINED && (rv = flush_writes(b)) != APR_SUCCESS) {
        return rv;
    }
    for (;;) {
        lem_imap_ev_t ev;

        if (lem_resp_at_boundary(&b->resp)) {
            if (b->cancel && until != UNTIL_DRAINED) {
                /* RFC 3501 6.2.2: "*" cancels the exchange */
                b->cancel = 0;
                if ((rv = send_backend(b, "*\r\n", 3)) != APR_SUCCESS
                    || (rv = flush_writes(b)) != APR_SUCCESS) {
                    return rv;
                }
            }
            if (reached(b, until) || (until == UNTIL_DRAINED
                                      && b->outstanding == 0)) {
                return APR_SUCCESS;
            }
        }
        if (b->m->be.off == b->m->be.len) {
            if (until == UNTIL_DRAINED && !lem_backend_readable(&b->m->be)) {
                return APR_SUCCESS;
            }
            if ((rv = fill(b, until)) != APR_SUCCESS) {
                return rv;
            }
        }
        ev = lem_resp_next(&b->resp, b->m->be.buf + b->m->be.off,
                           b->m->be.len - b->m->be.off, &used, &piece);
        b->m->be.off += used;
        if (ev == LEM_IMAP_ERROR) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, b->m->r, LEMLOGNO(0320)
                          "session %u: backend sent a malformed response: "
                          "%s", b->m->id.slot, b->resp.error);
            return APR_EGENERAL;
        }
        if (ev == LEM_IMAP_NEED_MORE) {
            continue;
        }
        if (piece.first) {
            on_response_head(b);
        }
        if (!b->in_cont) {
            answer_write(b, piece.data, piece.len);
        }
        if (piece.last && b->in_tagged) {
            on_tagged(b);
        }
        else if (piece.last && b->in_bad) {
            on_untagged_bad(b);
        }
    }
}

static apr_status_t drain(void *ctx)
{
    return pump(ctx, UNTIL_DRAINED);
}

/* Write what was gathered: the commands since the last wait. */
static apr_status_t flush_writes(imap_batch_t *b)
{
    apr_size_t len = b->wlen;

    b->wlen = 0;
    return len ? lem_backend_write(&b->m->be, b->wbuf, len, drain, b)
               : APR_SUCCESS;
}

/*
 * Commands pipelined together go out in one write, as a client writing
 * to IMAP directly would send them: gathered here, written before the
 * gateway waits for an answer (pump) or when they fill the buffer. A
 * large piece, a literal's octets say, is written at once.
 */
static apr_status_t send_backend(imap_batch_t *b, const char *data,
                                 apr_size_t len)
{
    apr_status_t rv;

    if (b->wlen + len > LEM_WBUF_SIZE) {
        if ((rv = flush_writes(b)) != APR_SUCCESS) {
            return rv;
        }
        if (len > LEM_WBUF_SIZE / 2) {
            return lem_backend_write(&b->m->be, data, len, drain, b);
        }
    }
    if (!b->wbuf) {
        b->wbuf = apr_palloc(b->m->r->pool, LEM_WBUF_SIZE);
    }
    memcpy(b->wbuf + b->wlen, data, len);
    b->wlen += len;
    return APR_SUCCESS;
}

/* The words after the command name, for the few commands that care. */
static const char *arguments(const lem_cmd_parser_t *cp,
                             const lem_imap_piece_t *piece)
{
    const char *p = piece->data + strlen(cp->tag) + 1 + strlen(cp->name);

    return p < piece->data + piece->len ? p : "";
}

/* Commands in-response mode cannot carry, with the reason given. */
static const char *refusal(const lem_cmd_parser_t *cp,
                           const lem_imap_piece_t *piece)
{
    const char *name = cp->name;

    if (!strcmp(name, "STARTTLS")) {
        return "STARTTLS is not relayed: use HTTPS to protect the session";
    }
    if (!strcmp(name, "COMPRESS")) {
        return "COMPRESS is not relayed by the HTTP binding";
    }
    if (!strcmp(name, "AUTHENTICATE") && piece->last) {
        /* RFC 4959: without an initial response the exchange needs
         * continuations, which in-response mode cannot answer */
        const char *args = arguments(cp, piece);
        const char *sp = strchr(args + (*args == ' '), ' ');

        if (!sp || sp[1] == '\r') {
            return "AUTHENTICATE needs an initial response (RFC 4959) in "
                   "in-response mode";
        }
    }
    return NULL;
}

/*
 * A new command: registered as waiting for its answer, or, when the mode
 * cannot carry it, answered with the gateway's BAD in its place among the
 * others (after those before it are answered, when `live`).
 */
static apr_status_t start_command(imap_batch_t *b,
                                  const lem_cmd_parser_t *cp,
                                  const lem_imap_piece_t *piece, int live)
{
    const char *why = refusal(cp, piece);
    lem_pending_t *p;
    apr_status_t rv;

    b->skipping = 0;
    b->cur_tag = NULL;
    if (why) {
        if (live && (rv = pump(b, UNTIL_ALL_DONE)) != APR_SUCCESS) {
            return rv;
        }
        answer_write(b, cp->tag, strlen(cp->tag));
        answer_write(b, " BAD ", 5);
        answer_write(b, why, strlen(why));
        answer_write(b, "\r\n", 2);
        b->m->any_failed = 1;
        b->skipping = 1;
        return APR_SUCCESS;
    }
    p = apr_array_push(b->pending);
    apr_cpystrn(p->tag, cp->tag, sizeof(p->tag));
    p->done = 0;
    b->outstanding++;
    b->cur_tag = p->tag;
    return APR_SUCCESS;
}

/* Send a line that ends in "{n}": wait for "+" before the octets. */
static apr_status_t send_sync_line(imap_batch_t *b,
                                   const lem_imap_piece_t *piece)
{
    apr_status_t rv;

    b->cont_wanted = 1;
    b->cont_got = b->cont_refused = 0;
    rv = send_backend(b, piece->data, piece->len);
    if (rv == APR_SUCCESS) {
        rv = pump(b, UNTIL_CONTINUATION);
    }
    b->cont_wanted = 0;
    if (rv == APR_SUCCESS && b->cont_refused) {
        /* the server said NO or BAD instead: drop the literal and the
         * rest of the command, go on with the batch */
        b->skipping = 1;
    }
    return rv;
}

/* LemonadeHeartbeat, or less when the client asks for less with a
 * "Lemonade-Heartbeat: SECONDS" request header (a client behind a proxy
 * with a shorter idle limit, or one that wants to end IDLE sooner). */
static apr_interval_time_t heartbeat(lem_batch_t *m)
{
    const char *asked = apr_table_get(m->r->headers_in, "Lemonade-Heartbeat");
    apr_interval_time_t t = m->conf->heartbeat;

    if (asked) {
        apr_int64_t sec = apr_atoi64(asked);

        if (sec > 0 && apr_time_from_sec(sec) < t) {
            t = apr_time_from_sec(sec);
        }
    }
    return t;
}

/*
 * IDLE in a batch is a long poll (an extension of draft 2.1.1, which has
 * no IDLE in this mode): the request is held until the server has news or
 * LemonadeHeartbeat passes, then the gateway ends the IDLE itself. The
 * client reads the news and posts IDLE again.
 */
static apr_status_t long_poll(imap_batch_t *b, const lem_imap_piece_t *piece)
{
    apr_status_t rv;

    /* 1. IDLE, and the server's go-ahead (RFC 2177) */
    rv = send_sync_line(b, piece);
    if (rv != APR_SUCCESS || b->skipping) {
        b->skipping = 0;
        return rv;
    }

    /* 2. hold the request until something happens */
    lem_session_activity(lem_state.table, &b->m->id, LEM_ACT_LONG_POLL);
    b->notices = 0;
    b->deadline = apr_time_now() + heartbeat(b->m);
    rv = pump(b, UNTIL_NOTICE);
    b->deadline = 0;
    lem_session_activity(lem_state.table, &b->m->id, LEM_ACT_BUSY);

    /* 3. "DONE", and the tagged OK */
    if (rv == APR_SUCCESS) {
        rv = send_backend(b, "DONE\r\n", 6);
    }
    if (rv == APR_SUCCESS) {
        rv = pump(b, UNTIL_COMMAND_DONE);
    }
    return rv;
}

static apr_status_t relay_event(imap_batch_t *b, const lem_cmd_parser_t *cp,
                                lem_imap_ev_t ev,
                                const lem_imap_piece_t *piece)
{
    apr_status_t rv;

    if (ev == LEM_IMAP_TEXT && piece->first
        && (rv = start_command(b, cp, piece, 1)) != APR_SUCCESS) {
        return rv;
    }
    if (b->skipping) {
        return APR_SUCCESS;
    }
    if (ev == LEM_IMAP_LITERAL) {
        return send_backend(b, piece->data, piece->len);
    }
    if (cp->literal == LEM_LITERAL_SYNC && piece->line_end && !piece->last) {
        return send_sync_line(b, piece);
    }
    if (piece->first && piece->last && !strcmp(cp->name, "IDLE")) {
        return long_poll(b, piece);
    }
    rv = send_backend(b, piece->data, piece->len);
    if (rv == APR_SUCCESS && piece->last
        && !strcmp(cp->name, "AUTHENTICATE")) {
        /* what follows must not be taken for a SASL response */
        rv = pump(b, UNTIL_COMMAND_DONE);
    }
    return rv;
}

/* The backend failed mid-batch: every command not answered gets a NO,
 * so the client knows exactly which ones did not run. */
static void answer_unanswered(imap_batch_t *b, const char *why)
{
    lem_pending_t *p = (lem_pending_t *)b->pending->elts;
    int i;

    if (!b->saw_bye) {
        const char *bye = apr_psprintf(b->m->r->pool,
                                       "* BYE [UNAVAILABLE] %s\r\n", why);
        answer_write(b, bye, strlen(bye));
        b->saw_bye = 1;
    }
    for (i = b->first_open; i < b->pending->nelts; i++) {
        if (!p[i].done) {
            const char *no = apr_psprintf(b->m->r->pool,
                                          "%s NO [UNAVAILABLE] %s\r\n",
                                          p[i].tag, why);
            answer_write(b, no, strlen(no));
            p[i].done = 1;
        }
    }
    b->outstanding = 0;
    b->m->any_failed = 1;
}

static apr_status_t relay_batch(imap_batch_t *b)
{
    lem_cmd_parser_t cp;
    lem_imap_piece_t piece;
    const char *data;
    apr_size_t len, used;
    apr_status_t rv = APR_SUCCESS, read_rv;

    lem_resp_init(&b->resp);
    lem_cmd_init(&cp, b->m->line, b->m->conf->max_line,
                 (apr_uint64_t)b->m->conf->max_literal);
    lem_spool_rewind(b->m->body);

    /* every command, in order; after a failure the rest only get NO */
    while ((read_rv = lem_spool_read(b->m->body, &data, &len)) == APR_SUCCESS) {
        while (len) {
            lem_imap_ev_t ev = lem_cmd_next(&cp, data, len, &used, &piece);

            data += used;
            len -= used;
            if (ev == LEM_IMAP_NEED_MORE) {
                break;
            }
            if (rv == APR_SUCCESS) {
                rv = relay_event(b, &cp, ev, &piece);
                if (rv != APR_SUCCESS) {
                    b->m->be_error = rv;
                }
            }
            else if (ev == LEM_IMAP_TEXT && piece.first) {
                start_command(b, &cp, &piece, 0);
            }
        }
    }
    if (rv == APR_SUCCESS) {
        rv = pump(b, UNTIL_ALL_DONE);
        b->m->be_error = rv;
    }
    if (rv != APR_SUCCESS) {
        answer_unanswered(b, lem_failure_text(b->m->r->pool, &lem_imap_protocol,
                                             rv));
    }
    return rv;
}


static apr_status_t imap_relay(lem_batch_t *m)
{
    imap_batch_t *b = apr_pcalloc(m->r->pool, sizeof(*b));
    apr_status_t rv;

    b->m = m;
    b->pending = apr_array_make(m->r->pool, 8, sizeof(lem_pending_t));
    rv = relay_batch(b);
    m->ended = b->saw_bye;
    return rv;
}

/* ------------------------------------------------------------------ */
/* In-band                                                             */
/* ------------------------------------------------------------------ */

typedef struct {
    lem_cmd_parser_t      cp;
    lem_resp_parser_t     rp;

    /* RFC 3501 7.5: while IDLE or AUTHENTICATE runs, the client's lines
     * answer continuation requests instead of being commands */
    char                  raw_tag[LEM_IMAP_TAG_MAX + 1];
    int                   raw;          /* client lines are answers */
    int                   raw_once;     /* IDLE: one line, "DONE" */

    int                   outstanding;  /* commands not yet answered */
    int                   in_tagged;    /* reading a tagged response */
} imap_inband_t;

static void imap_inband_init(lem_inband_t *ib)
{
    imap_inband_t *s = apr_pcalloc(ib->r->pool, sizeof(*s));

    lem_cmd_init(&s->cp, ib->line, ib->conf->max_line,
                 (apr_uint64_t)ib->conf->max_literal);
    lem_resp_init(&s->rp);
    ib->state = s;
}

static int imap_quiet(lem_inband_t *ib)
{
    return ((imap_inband_t *)ib->state)->outstanding == 0;
}

/* ------------------------------------------------------------------ */
/* From the backend                                                    */
/* ------------------------------------------------------------------ */

static void on_response_end(lem_inband_t *ib)
{
    imap_inband_t *s = ib->state;

    if (!s->in_tagged) {
        return;
    }
    if (s->outstanding > 0) {
        s->outstanding--;
    }
    if (s->raw && !strcmp(s->rp.tag, s->raw_tag)) {
        s->raw = 0;
    }
}

/* Pass on whatever the backend has sent, without waiting for more. */
static apr_status_t imap_backend_bytes(void *ctx)
{
    lem_inband_t *ib = ctx;
    imap_inband_t *s = ib->state;
    lem_imap_piece_t piece;
    apr_size_t used;

    while (!ib->backend_done) {
        lem_imap_ev_t ev;
        apr_status_t rv = lem_inband_backend_more(ib);

        if (rv == APR_EAGAIN) {
            return APR_SUCCESS;
        }
        if (rv != APR_SUCCESS) {
            break;
        }
        ev = lem_resp_next(&s->rp, ib->be.buf + ib->be.off,
                           ib->be.len - ib->be.off, &used, &piece);
        ib->be.off += used;
        if (ev == LEM_IMAP_ERROR) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, ib->r, LEMLOGNO(0403)
                          "in-band: backend sent a malformed response: %s",
                          s->rp.error);
            lem_inband_backend_ended(ib, APR_EGENERAL);
            break;
        }
        if (ev == LEM_IMAP_NEED_MORE) {
            continue;
        }
        if (piece.first) {
            s->in_tagged = s->rp.kind == LEM_RESP_TAGGED;
            ib->saw_bye |= s->rp.kind == LEM_RESP_UNTAGGED
                           && s->rp.status == LEM_STATUS_BYE;
        }
        lem_inband_to_client(ib, piece.data, piece.len);
        if (piece.last) {
            on_response_end(ib);
            /* draft 2.1.2: each response a chunk of its own, now */
            lem_inband_flush(ib);
        }
    }
    return ib->client_gone ? APR_ECONNABORTED : APR_SUCCESS;
}

/* Track what a command or answer line means for what comes next. */
static void on_client_line(imap_inband_t *s, const lem_imap_piece_t *piece)
{
    const lem_cmd_parser_t *cp = &s->cp;

    if (!piece->last) {
        return;
    }
    if (!cp->tag[0]) {             /* an answer to a continuation */
        if (s->raw_once) {
            s->raw = s->raw_once = 0;
        }
        return;
    }
    s->outstanding++;
    if (!strcmp(cp->name, "IDLE") || !strcmp(cp->name, "AUTHENTICATE")) {
        apr_cpystrn(s->raw_tag, cp->tag, sizeof(s->raw_tag));
        s->raw = 1;
        s->raw_once = !strcmp(cp->name, "IDLE");
    }
}

/* Frame the client's bytes by lines and literals and send them on. */
static apr_status_t imap_client_bytes(lem_inband_t *ib, const char *data,
                                      apr_size_t len)
{
    imap_inband_t *s = ib->state;
    lem_imap_piece_t piece;
    apr_size_t used;
    apr_status_t rv;

    while (len) {
        lem_imap_ev_t ev;

        if (s->raw && lem_cmd_at_boundary(&s->cp)) {
            lem_cmd_expect_line(&s->cp);
        }
        ev = lem_cmd_next(&s->cp, data, len, &used, &piece);
        data += used;
        len -= used;
        if (ev == LEM_IMAP_ERROR) {
            return lem_inband_bad_client(ib, apr_psprintf(ib->r->pool,
                                         "* BYE [CLIENTBUG] %s\r\n",
                                         s->cp.error));
        }
        if (ev == LEM_IMAP_NEED_MORE) {
            break;
        }
        rv = lem_inband_to_backend(ib, piece.data, piece.len);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (ev == LEM_IMAP_TEXT) {
            on_client_line(s, &piece);
        }
    }
    return APR_SUCCESS;
}

const lem_protocol_t lem_imap_protocol = {
    LEM_PROTO_IMAP,
    "IMAP server",
    "* BYE [UNAVAILABLE] %s\r\n",
    imap_greet,
    imap_starttls,
    imap_check,
    imap_relay,
    imap_inband_init,
    imap_client_bytes,
    imap_backend_bytes,
    imap_quiet
};
