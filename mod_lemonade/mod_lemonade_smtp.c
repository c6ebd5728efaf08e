/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * SMTP in both modes (draft 2.1.4: "The only difference between IMAP and
 * SMTP will be the HTTP URL used"): what only SMTP knows.
 *
 *   greeting       RFC 5321 4.2: 220 opens a session
 *   in-response    check: the command framing of lem_smtp.h over the body
 *                  relay: commands in order, a group at a time where the
 *                  server offers PIPELINING (RFC 2920) and one at a time
 *                  where it does not; DATA waits for 354; no message is
 *                  sent into a transaction without a sender or recipient
 *   in-band        each reply a chunk of its own; DATA and AUTH
 *                  continuations pass both ways
 *
 * SMTP has no tags: a reply answers the oldest command without one, so
 * both modes keep the commands sent in a queue.
 */

#include <apr_strings.h>

#include <httpd.h>
#include <http_log.h>
#include <http_protocol.h>

#include "lem_smtp.h"
#include "mod_lemonade.h"
#include "mod_lemonade_proto.h"

APLOG_USE_MODULE(lemonade);

/* What a session keeps between requests (lem_batch_t.flags). */
#define SMTP_PIPELINING  0x1u   /* the last EHLO offered PIPELINING */
#define SMTP_MAIL_OK     0x2u   /* a transaction has its sender */
#define SMTP_RCPT_OK     0x4u   /* ... and at least one recipient */
#define SMTP_CHUNKING    0x8u   /* the last EHLO offered CHUNKING */

/* The commands a reply may answer, oldest first. */
typedef enum {
    V_OTHER = 0,
    V_EHLO,                    /* also HELO: resets the transaction */
    V_MAIL,
    V_RCPT,
    V_RSET,
    V_DATA,                    /* the DATA line: 354 or a refusal */
    V_CONTENT,                 /* the message after 354, or a BDAT chunk */
    V_AUTH,
    V_QUIT
} smtp_verb_t;

#define QUEUE_MAX 4096

typedef struct {
    unsigned char v[QUEUE_MAX];
    unsigned      head;
    unsigned      count;
} smtp_queue_t;

static int queue_push(smtp_queue_t *q, smtp_verb_t v)
{
    if (q->count == QUEUE_MAX) {
        return 0;
    }
    q->v[(q->head + q->count++) % QUEUE_MAX] = (unsigned char)v;
    return 1;
}

static smtp_verb_t queue_peek(const smtp_queue_t *q)
{
    return q->count ? (smtp_verb_t)q->v[q->head] : V_OTHER;
}

static void queue_pop(smtp_queue_t *q)
{
    if (q->count) {
        q->head = (q->head + 1) % QUEUE_MAX;
        q->count--;
    }
}

static smtp_verb_t verb_of(const char *verb, int bdat)
{
    if (bdat) return V_CONTENT;
    if (!strcmp(verb, "EHLO") || !strcmp(verb, "HELO")) return V_EHLO;
    if (!strcmp(verb, "MAIL")) return V_MAIL;
    if (!strcmp(verb, "RCPT")) return V_RCPT;
    if (!strcmp(verb, "RSET")) return V_RSET;
    if (!strcmp(verb, "DATA")) return V_DATA;
    if (!strcmp(verb, "AUTH")) return V_AUTH;
    if (!strcmp(verb, "QUIT")) return V_QUIT;
    return V_OTHER;
}

/*
 * A complete reply to verb `v` with `code`: what it means for the
 * transaction and the session, kept in `flags`.
 */
static void note_reply(apr_uint32_t *flags, smtp_verb_t v, int code)
{
    int ok = code >= 200 && code < 300;

    switch (v) {
    case V_EHLO:
    case V_RSET:
        *flags &= ~(SMTP_MAIL_OK | SMTP_RCPT_OK);
        break;
    case V_MAIL:
        if (ok) {
            *flags |= SMTP_MAIL_OK;
        }
        break;
    case V_RCPT:
        if (ok) {
            *flags |= SMTP_RCPT_OK;
        }
        break;
    case V_CONTENT:
        /* RFC 5321 4.1.1.4: after the data, the transaction is over */
        *flags &= ~(SMTP_MAIL_OK | SMTP_RCPT_OK);
        break;
    default:
        break;
    }
}

/* The EHLO reply's lines: does the server offer PIPELINING, CHUNKING? */
static void note_ehlo_line(apr_uint32_t *flags, const lem_smtp_reply_t *rp,
                           int first)
{
    if (first) {
        *flags &= ~(SMTP_PIPELINING | SMTP_CHUNKING);
    }
    else if (lem_smtp_ehlo_has(rp->text, rp->text_len, "PIPELINING")) {
        *flags |= SMTP_PIPELINING;
    }
    else if (lem_smtp_ehlo_has(rp->text, rp->text_len, "CHUNKING")) {
        *flags |= SMTP_CHUNKING;
    }
}

/* ------------------------------------------------------------------ */
/* The greeting                                                        */
/* ------------------------------------------------------------------ */

static apr_status_t smtp_greet(lem_backend_t *be, int *welcome, char *out,
                               apr_size_t cap, apr_size_t *len)
{
    lem_smtp_reply_t rp;
    lem_smtp_piece_t piece;
    apr_size_t used;
    apr_status_t rv;

    *len = 0;
    lem_smtp_reply_init(&rp);
    for (;;) {
        lem_smtp_ev_t ev;

        if (be->off == be->len && (rv = lem_backend_fill(be)) != APR_SUCCESS) {
            return rv;
        }
        ev = lem_smtp_reply_next(&rp, be->buf + be->off, be->len - be->off,
                                 &used, &piece);
        be->off += used;
        if (ev == LEM_SMTP_ERROR) {
            return APR_EGENERAL;
        }
        if (ev == LEM_SMTP_NEED_MORE) {
            continue;
        }
        if (*len + piece.len <= cap) {
            memcpy(out + *len, piece.data, piece.len);
            *len += piece.len;
        }
        if (piece.last) {
            /* RFC 5321 4.3.1: 220 greets, 554 refuses */
            *welcome = rp.code == 220;
            return lem_backend_commit(be);
        }
    }
}

/* One whole reply to `line` sent; its code in `*code`. */
static apr_status_t exchange(lem_backend_t *be, const char *line, int *code)
{
    lem_smtp_reply_t rp;
    lem_smtp_piece_t piece;
    apr_size_t used;
    apr_status_t rv = lem_backend_write(be, line, strlen(line), NULL, NULL);

    lem_smtp_reply_init(&rp);
    while (rv == APR_SUCCESS) {
        lem_smtp_ev_t ev;

        if (be->off == be->len && (rv = lem_backend_fill(be)) != APR_SUCCESS) {
            break;
        }
        ev = lem_smtp_reply_next(&rp, be->buf + be->off, be->len - be->off,
                                 &used, &piece);
        be->off += used;
        if (ev == LEM_SMTP_ERROR) {
            rv = APR_EGENERAL;
        }
        else if (ev == LEM_SMTP_LINE && piece.last) {
            *code = rp.code;
            return lem_backend_commit(be);
        }
    }
    return rv;
}

/* RFC 3207 4: EHLO, then STARTTLS answered 220; then TLS. The client's
 * own EHLO comes after, as RFC 3207 4.2 wants one on the new channel. */
static apr_status_t smtp_starttls(lem_backend_t *be, const char *helo)
{
    char line[300];
    int code = 0;
    apr_status_t rv;

    apr_snprintf(line, sizeof(line), "EHLO %s\r\n", helo ? helo : "lemonade");
    rv = exchange(be, line, &code);
    if (rv == APR_SUCCESS && code == 250) {
        rv = exchange(be, "STARTTLS\r\n", &code);
    }
    return rv != APR_SUCCESS ? rv : code == 220 ? APR_SUCCESS : APR_EACCES;
}

/* ------------------------------------------------------------------ */
/* In-response, pass 1: check the batch                                */
/* ------------------------------------------------------------------ */

static int smtp_check(lem_batch_t *b, const char *data, apr_size_t len)
{
    lem_smtp_cmd_t *cp = b->state;
    lem_smtp_piece_t piece;
    apr_size_t used;

    if (!cp) {
        cp = b->state = apr_palloc(b->r->pool, sizeof(*cp));
        lem_smtp_cmd_init(cp, b->line, b->conf->max_line,
                          (apr_uint64_t)b->conf->max_body);
    }
    if (!data) {
        /* a "BDAT 0" last in the body still owes its empty content */
        while (lem_smtp_cmd_next(cp, "", 0, &used, &piece) == LEM_SMTP_CONTENT
               && !piece.last) {
        }
        if (!lem_smtp_cmd_at_boundary(cp)) {
            return lem_batch_refuse(b, HTTP_BAD_REQUEST, cp->commands,
                                    "the body ends inside a command or a "
                                    "message (a missing CRLF, or no "
                                    "end-of-data line)");
        }
        return cp->commands ? OK : lem_batch_refuse(b, HTTP_BAD_REQUEST, 0,
                                                    "the body holds no "
                                                    "command");
    }
    while (len) {
        lem_smtp_ev_t ev = lem_smtp_cmd_next(cp, data, len, &used, &piece);

        data += used;
        len -= used;
        if (ev == LEM_SMTP_ERROR) {
            return lem_batch_refuse(b, cp->limit_hit
                                    ? HTTP_REQUEST_ENTITY_TOO_LARGE
                                    : HTTP_BAD_REQUEST, cp->commands + 1,
                                    cp->error);
        }
        if (ev == LEM_SMTP_LINE
            && cp->commands > (unsigned)b->conf->max_commands) {
            return lem_batch_refuse(b, HTTP_REQUEST_ENTITY_TOO_LARGE,
                                    cp->commands, apr_psprintf(b->r->pool,
                                    "more than %d commands in one request",
                                    b->conf->max_commands));
        }
        if (ev == LEM_SMTP_NEED_MORE) {
            break;
        }
    }
    return OK;
}

/* ------------------------------------------------------------------ */
/* In-response, pass 2: relay                                          */
/* ------------------------------------------------------------------ */

typedef struct {
    lem_batch_t      *m;
    lem_smtp_reply_t  rp;
    smtp_queue_t      queue;       /* commands sent, not yet answered */
    unsigned          unsent;      /* commands of the batch not sent */
    int               first_line;  /* the next reply line starts a reply */
    int               sending;     /* DATA got 354: send its content */
    int               skipping;    /* drop content: DATA refused */
    int               cancel;      /* an AUTH challenge to cancel */
} smtp_batch_t;

static apr_status_t smtp_send(smtp_batch_t *s, const char *data,
                              apr_size_t len);

/* One reply line read: into the answer; a whole reply ends a command. */
static void on_reply_line(smtp_batch_t *s, const lem_smtp_piece_t *piece)
{
    smtp_verb_t v = queue_peek(&s->queue);

    lem_batch_answer(s->m, piece->data, piece->len);
    if (v == V_EHLO) {
        note_ehlo_line(&s->m->flags, &s->rp, s->first_line);
    }
    s->first_line = piece->last;
    if (!piece->last) {
        return;
    }
    if (s->rp.code == 334) {
        /* RFC 4954 4: a challenge in-response mode cannot answer */
        s->cancel = 1;
        return;
    }
    note_reply(&s->m->flags, v, s->rp.code);
    if (v == V_DATA) {
        s->sending = s->rp.code == 354;
        s->skipping = !s->sending;
    }
    if (s->rp.code >= 400) {
        s->m->any_failed = 1;
    }
    if (v == V_QUIT) {
        s->m->ended = 1;
    }
    queue_pop(&s->queue);
}

/* Read replies until at most `left` commands wait for theirs; with
 * `drain`, only what is there already. */
static apr_status_t replies(smtp_batch_t *s, unsigned left, int drain)
{
    lem_backend_t *be = &s->m->be;
    lem_smtp_piece_t piece;
    apr_size_t used;
    apr_status_t rv;

    while (s->queue.count > left || !lem_smtp_reply_at_boundary(&s->rp)) {
        lem_smtp_ev_t ev;

        if (lem_smtp_reply_at_boundary(&s->rp) && s->cancel && !drain) {
            s->cancel = 0;
            if ((rv = smtp_send(s, "*\r\n", 3)) != APR_SUCCESS) {
                return rv;
            }
        }
        if (be->off == be->len) {
            if (drain && !lem_backend_readable(be)) {
                return APR_SUCCESS;
            }
            if ((rv = lem_backend_fill(be)) != APR_SUCCESS) {
                return rv;
            }
        }
        ev = lem_smtp_reply_next(&s->rp, be->buf + be->off,
                                 be->len - be->off, &used, &piece);
        be->off += used;
        if (ev == LEM_SMTP_ERROR) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, s->m->r, LEMLOGNO(0501)
                          "session %u: backend sent a malformed reply: %s",
                          s->m->id.slot, s->rp.error);
            return APR_EGENERAL;
        }
        if (ev == LEM_SMTP_LINE) {
            on_reply_line(s, &piece);
        }
    }
    return APR_SUCCESS;
}

static apr_status_t drain(void *ctx)
{
    return replies(ctx, 0, 1);
}

static apr_status_t smtp_send(smtp_batch_t *s, const char *data,
                              apr_size_t len)
{
    return lem_backend_write(&s->m->be, data, len, drain, s);
}

/* The gateway's own reply, in its place among the server's. */
static apr_status_t own_reply(smtp_batch_t *s, const char *reply)
{
    apr_status_t rv = replies(s, 0, 0);

    if (rv == APR_SUCCESS) {
        lem_batch_answer(s->m, reply, strlen(reply));
        s->m->any_failed = 1;
    }
    return rv;
}

/* "AUTH mechanism initial-response": RFC 4954 4. */
static int has_initial_response(const lem_smtp_piece_t *piece)
{
    apr_size_t i, spaces = 0;

    for (i = 0; i < piece->len; i++) {
        spaces += piece->data[i] == ' ';
    }
    return spaces >= 2;
}

/* Commands in-response mode cannot carry, with the reply given. */
static const char *refusal(const lem_smtp_cmd_t *cp, smtp_verb_t v,
                           const lem_smtp_piece_t *piece, apr_uint32_t flags)
{
    /* RFC 3030 2: BDAT only to a server that offered CHUNKING; another
     * would read the chunk's octets as commands */
    if (v == V_CONTENT && !(flags & SMTP_CHUNKING)) {
        return "503 5.5.1 BDAT needs CHUNKING, which the server did not "
               "offer: the chunk was not sent\r\n";
    }
    if (!strcmp(cp->verb, "STARTTLS")) {
        return "454 4.7.0 STARTTLS is not relayed: use HTTPS to protect "
               "the session\r\n";
    }
    if (v == V_AUTH && !has_initial_response(piece)) {
        return "501 5.5.2 AUTH needs an initial response (RFC 4954) in "
               "in-response mode\r\n";
    }
    return NULL;
}

/* RFC 2920 3.1: only these may stand inside a group of commands. */
static int may_pipeline(smtp_verb_t v, const lem_smtp_cmd_t *cp)
{
    return (v == V_MAIL || v == V_RCPT || v == V_RSET)
           && strcmp(cp->verb, "STARTTLS");
}

static apr_status_t relay_line(smtp_batch_t *s, const lem_smtp_cmd_t *cp,
                               const lem_smtp_piece_t *piece)
{
    smtp_verb_t v = verb_of(cp->verb, !strcmp(cp->verb, "BDAT"));
    const char *why;
    apr_status_t rv;

    s->unsent--;
    s->sending = s->skipping = 0;
    if (v == V_CONTENT && (rv = replies(s, 0, 0)) != APR_SUCCESS) {
        return rv;          /* the EHLO that offers CHUNKING, if any */
    }
    why = refusal(cp, v, piece, s->m->flags);
    if (why) {
        s->skipping = 1;    /* a BDAT's chunk goes nowhere either */
        return own_reply(s, why);
    }
    if (v == V_DATA) {
        /* a careful client sends no message into a failed transaction */
        rv = replies(s, 0, 0);
        if (rv == APR_SUCCESS && (s->m->flags & (SMTP_MAIL_OK | SMTP_RCPT_OK))
                                 != (SMTP_MAIL_OK | SMTP_RCPT_OK)) {
            s->skipping = 1;
            return own_reply(s, "554 5.5.1 no valid sender and recipient: "
                                "DATA and the message were not sent\r\n");
        }
    }
    queue_push(&s->queue, v);
    rv = smtp_send(s, piece->data, piece->len);
    if (rv != APR_SUCCESS || v == V_CONTENT) {
        return rv;              /* BDAT's octets follow at once */
    }
    if (v == V_DATA || !(s->m->flags & SMTP_PIPELINING)
        || !may_pipeline(v, cp)) {
        return replies(s, 0, 0);
    }
    return APR_SUCCESS;
}

static apr_status_t relay_content(smtp_batch_t *s, const lem_smtp_cmd_t *cp,
                                  const lem_smtp_piece_t *piece)
{
    apr_status_t rv = APR_SUCCESS;
    int bdat = !strcmp(cp->verb, "BDAT");

    if (s->skipping) {
        return APR_SUCCESS;
    }
    if (!s->sending && !bdat) {
        return APR_SUCCESS;
    }
    if (piece->len) {
        rv = smtp_send(s, piece->data, piece->len);
    }
    if (rv == APR_SUCCESS && piece->last) {
        if (!bdat) {
            queue_push(&s->queue, V_CONTENT);
        }
        s->sending = 0;
        rv = replies(s, 0, 0);
    }
    return rv;
}

/* The backend failed: a 421 for every command not answered, so the
 * client can tell which ones did not run. */
static void answer_unanswered(smtp_batch_t *s, apr_status_t why)
{
    const char *line = apr_psprintf(s->m->r->pool, "421 4.4.2 %s\r\n",
                                    lem_failure_text(s->m->r->pool,
                                                     &lem_smtp_protocol,
                                                     why));
    unsigned n = s->queue.count + s->unsent;

    while (n--) {
        lem_batch_answer(s->m, line, strlen(line));
    }
    s->m->any_failed = 1;
}

static apr_status_t smtp_relay(lem_batch_t *m)
{
    smtp_batch_t *s = apr_pcalloc(m->r->pool, sizeof(*s));
    lem_smtp_cmd_t cp;
    lem_smtp_piece_t piece;
    const char *data;
    apr_size_t len, used;
    apr_status_t rv = APR_SUCCESS;

    s->m = m;
    s->first_line = 1;
    s->unsent = ((lem_smtp_cmd_t *)m->state)->commands;
    lem_smtp_reply_init(&s->rp);
    lem_smtp_cmd_init(&cp, m->line, m->conf->max_line,
                      (apr_uint64_t)m->conf->max_body);
    lem_spool_rewind(m->body);

    /* every command in order; after a failure the rest are counted */
    while (rv == APR_SUCCESS
           && lem_spool_read(m->body, &data, &len) == APR_SUCCESS) {
        while (len && rv == APR_SUCCESS) {
            lem_smtp_ev_t ev = lem_smtp_cmd_next(&cp, data, len, &used,
                                                 &piece);

            data += used;
            len -= used;
            if (ev == LEM_SMTP_NEED_MORE) {
                break;
            }
            rv = ev == LEM_SMTP_LINE ? relay_line(s, &cp, &piece)
                                     : relay_content(s, &cp, &piece);
        }
    }
    if (rv == APR_SUCCESS
        && lem_smtp_cmd_next(&cp, "", 0, &used, &piece) == LEM_SMTP_CONTENT) {
        rv = relay_content(s, &cp, &piece);     /* "BDAT 0" last */
    }
    if (rv == APR_SUCCESS) {
        rv = replies(s, 0, 0);
    }
    if (rv != APR_SUCCESS) {
        answer_unanswered(s, rv);
        m->be_error = rv;
    }
    return rv;
}

/* ------------------------------------------------------------------ */
/* In-band                                                             */
/* ------------------------------------------------------------------ */

typedef struct {
    lem_smtp_cmd_t   cp;
    lem_smtp_reply_t rp;
    smtp_queue_t     queue;
    apr_uint32_t     flags;
    int              first_line;
    int              sasl;         /* a 334 came: the next line answers */
} smtp_inband_t;

static void smtp_inband_init(lem_inband_t *ib)
{
    smtp_inband_t *s = apr_pcalloc(ib->r->pool, sizeof(*s));

    lem_smtp_cmd_init(&s->cp, ib->line, ib->conf->max_line,
                      (apr_uint64_t)ib->conf->max_body);
    lem_smtp_reply_init(&s->rp);
    s->first_line = 1;
    ib->state = s;
}

static int smtp_quiet(lem_inband_t *ib)
{
    return ((smtp_inband_t *)ib->state)->queue.count == 0;
}

/* A whole reply came: what the client will send next depends on it. */
static void on_inband_reply(lem_inband_t *ib, smtp_inband_t *s)
{
    smtp_verb_t v = queue_peek(&s->queue);

    if (s->rp.code == 334) {
        s->sasl = 1;           /* RFC 4954 4: the next line answers */
        return;
    }
    if (v == V_DATA && s->rp.code != 354) {
        lem_smtp_cmd_no_content(&s->cp);
    }
    if (v == V_DATA && s->rp.code == 354) {
        /* the reply to the message that follows */
        s->queue.v[s->queue.head] = V_CONTENT;
        return;
    }
    if (v == V_QUIT) {
        ib->saw_bye = 1;
    }
    queue_pop(&s->queue);
}

static apr_status_t smtp_backend_bytes(void *ctx)
{
    lem_inband_t *ib = ctx;
    smtp_inband_t *s = ib->state;
    lem_smtp_piece_t piece;
    apr_size_t used;

    while (!ib->backend_done) {
        lem_smtp_ev_t ev;
        apr_status_t rv = lem_inband_backend_more(ib);

        if (rv == APR_EAGAIN) {
            return APR_SUCCESS;
        }
        if (rv != APR_SUCCESS) {
            break;
        }
        ev = lem_smtp_reply_next(&s->rp, ib->be.buf + ib->be.off,
                                 ib->be.len - ib->be.off, &used, &piece);
        ib->be.off += used;
        if (ev == LEM_SMTP_ERROR) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, ib->r, LEMLOGNO(0502)
                          "in-band: backend sent a malformed reply: %s",
                          s->rp.error);
            lem_inband_backend_ended(ib, APR_EGENERAL);
            break;
        }
        if (ev != LEM_SMTP_LINE) {
            continue;
        }
        lem_inband_to_client(ib, piece.data, piece.len);
        if (piece.last) {
            on_inband_reply(ib, s);
            /* draft 2.1.2: each reply a chunk of its own, now */
            lem_inband_flush(ib);
        }
    }
    return ib->client_gone ? APR_ECONNABORTED : APR_SUCCESS;
}

static apr_status_t smtp_client_bytes(lem_inband_t *ib, const char *data,
                                      apr_size_t len)
{
    smtp_inband_t *s = ib->state;
    lem_smtp_piece_t piece;
    apr_size_t used;
    apr_status_t rv;

    while (len) {
        lem_smtp_ev_t ev;

        if (s->sasl && lem_smtp_cmd_at_boundary(&s->cp)) {
            lem_smtp_cmd_expect_line(&s->cp);
            s->sasl = 0;
        }
        ev = lem_smtp_cmd_next(&s->cp, data, len, &used, &piece);
        data += used;
        len -= used;
        if (ev == LEM_SMTP_ERROR) {
            return lem_inband_bad_client(ib, apr_psprintf(ib->r->pool,
                                         "500 5.5.2 %s; closing\r\n",
                                         s->cp.error));
        }
        if (ev == LEM_SMTP_NEED_MORE) {
            break;
        }
        if (ev == LEM_SMTP_LINE && s->cp.verb[0]) {
            smtp_verb_t v = verb_of(s->cp.verb, !strcmp(s->cp.verb, "BDAT"));

            if (!queue_push(&s->queue, v)) {
                return lem_inband_bad_client(ib, "421 4.7.0 too many "
                                             "commands in flight; "
                                             "closing\r\n");
            }
        }
        if (piece.len
            && (rv = lem_inband_to_backend(ib, piece.data, piece.len))
               != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

const lem_protocol_t lem_smtp_protocol = {
    LEM_PROTO_SMTP,
    "SMTP server",
    "421 4.4.2 %s\r\n",
    smtp_greet,
    smtp_starttls,
    smtp_check,
    smtp_relay,
    smtp_inband_init,
    smtp_client_bytes,
    smtp_backend_bytes,
    smtp_quiet
};
