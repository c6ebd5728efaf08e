/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * SMTP for lemonade-connect (draft-maes-lemonade-http-binding-04, 2.1.4:
 * "All of the techniques described in sections 2.1, 2.2, and 2.3 may be
 * used for SMTP as well").
 *
 *   in-band        the server's replies are only watched (lc_track_t)
 *   in-response    the client's commands are framed with lem_smtp.h and
 *                  posted in batches; what the mode cannot carry is
 *                  answered here:
 *                  - DATA gets our 354; the message is collected up to
 *                    its end-of-data line and posted with its DATA, as
 *                    in batch SMTP (RFC 2442)
 *                  - AUTH PLAIN without an initial response (RFC 4954 4),
 *                    and AUTH LOGIN, get our 334s and go out as AUTH
 *                    PLAIN with an initial response (RFC 4616)
 *
 * The client sees exactly one reply per command, as from a server on a
 * plain connection: the gateway's answer to DATA and its message holds
 * the server's 354 too, which is dropped.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "lemonade_connect.h"
#include "lemonade_connect_post.h"

/* As lemonade_connect_imap.c: batches well under the gateway's limits. */
#define LC_BATCH_MAX        64
#define LC_BATCH_BYTES      (16 * 1024 * 1024)
#define LC_MAX_MESSAGE      ((apr_uint64_t)64 * 1024 * 1024)
#define LC_TEXT_MAX         400

#define GREETING  "220 lemonade-connect ready (in-response mode)\r\n"

/* The LOGIN mechanism (draft-murchison-sasl-login, never an RFC, still in
 * wide use): prompts "Username:" and "Password:", one answer each. */
#define LOGIN_USER  "334 VXNlcm5hbWU6\r\n"
#define LOGIN_PASS  "334 UGFzc3dvcmQ6\r\n"

/* One SMTP session in in-response mode. */
typedef struct {
    lc_session_t     *s;
    lc_post_t         post;
    lem_smtp_cmd_t    cp;
    char              line[LC_MAX_LINE];   /* the parser's */

    /* commands */
    lc_buf_t          cur;          /* DATA or BDAT with its octets */
    lc_buf_t          batch;        /* complete commands, not posted */
    unsigned          ncmds;        /* replies the client waits for */
    int               with_data;    /* the batch is DATA and its message */

    /* the answer being read */
    lem_smtp_reply_t  rp;
    int               decided;
    int               is_smtp;      /* replies, or the gateway's text */
    unsigned          replies;      /* passed on so far */
    lc_buf_t          text;

    int               bye;          /* 221 or 421: the session is over */
    int               lost;
    int               client_eof;
    int               over;
} smtp_t;

/* ------------------------------------------------------------------ */
/* In-band: watching the server's replies                              */
/* ------------------------------------------------------------------ */

static void track_init(lc_track_t *t)
{
    memset(t, 0, sizeof(*t));
    lem_smtp_reply_init(&t->p.smtp);
}

static void track(lc_track_t *t, const char *data, size_t len)
{
    lem_smtp_piece_t piece;
    apr_size_t used;

    while (len && !t->broken) {
        lem_smtp_ev_t ev = lem_smtp_reply_next(&t->p.smtp, data, len, &used,
                                               &piece);

        data += used;
        len -= used;
        if (ev == LEM_SMTP_ERROR) {
            t->broken = 1;
        }
        else if (ev == LEM_SMTP_LINE && piece.last) {
            /* RFC 5321 3.8, 4.2.2: 221 after QUIT, 421 closing */
            t->said_bye |= t->p.smtp.code == 221 || t->p.smtp.code == 421;
        }
    }
}

static int at_boundary(const lc_track_t *t)
{
    return !t->broken && lem_smtp_reply_at_boundary(&t->p.smtp);
}

/* ------------------------------------------------------------------ */
/* Answers                                                             */
/* ------------------------------------------------------------------ */

static void say(smtp_t *m, const char *text)
{
    lc_client_say(m->s, text);
}

static void lost(smtp_t *m, const char *why)
{
    char line[LC_ERR_MAX + 64];

    if (lem_smtp_reply_at_boundary(&m->rp)) {
        snprintf(line, sizeof(line), "lemonade-connect: %s", why);
        lc_client_bye(m->s, line);
    }
    snprintf(m->s->err, sizeof(m->s->err), "%s", why);
    m->lost = m->over = 1;
}

/* RFC 5321 4.2: a reply starts with three digits and SP or "-". */
static int looks_like_smtp(const char *data, size_t len)
{
    return len >= 4 && data[0] >= '2' && data[0] <= '5'
           && data[1] >= '0' && data[1] <= '9'
           && data[2] >= '0' && data[2] <= '9'
           && (data[3] == ' ' || data[3] == '-');
}

/* The replies of an answer, to the client as they come. */
static int relay_replies(smtp_t *m, const char *data, size_t len)
{
    lem_smtp_piece_t piece;
    apr_size_t used;

    while (len) {
        lem_smtp_ev_t ev = lem_smtp_reply_next(&m->rp, data, len, &used,
                                               &piece);

        data += used;
        len -= used;
        if (ev == LEM_SMTP_ERROR) {
            lost(m, "the answer is not SMTP");
            return LC_ERROR;
        }
        if (ev != LEM_SMTP_LINE) {
            continue;
        }
        /* the 354 was ours to give, and was given */
        if (m->with_data && m->rp.code == 354) {
            continue;
        }
        lc_client_write(m->s, piece.data, piece.len);
        if (piece.last) {
            m->replies++;
            m->bye |= m->rp.code == 221 || m->rp.code == 421;
        }
    }
    return m->s->client_gone ? LC_ERROR : LC_OK;
}

/* The gateway's own words, one reply per command waiting: a 4xx refused
 * the batch, anything else ends the session. */
static void answer_refusal(smtp_t *m, const lc_head_t *h)
{
    char line[LC_TEXT_MAX + 128];
    const char *why;
    unsigned i;

    lc_buf_add(&m->text, "", 1);
    m->text.data[strcspn(m->text.data, "\r\n")] = '\0';
    why = m->text.data[0] ? m->text.data : h->reason;
    if (h->status >= 400 && h->status < 500) {
        for (i = 0; i < m->ncmds; i++) {
            snprintf(line, sizeof(line), "%s lemonade-connect: the gateway "
                     "refused the request: HTTP %d: %s\r\n", h->status == 413
                     ? "552 5.3.4" : "500 5.5.2", h->status, why);
            say(m, line);
        }
        return;
    }
    snprintf(line, sizeof(line), "HTTP %d %s%s%s", h->status, h->reason,
             m->text.data[0] ? ": " : "", m->text.data);
    lost(m, line);
}

static int on_answer(void *ctx, const lc_head_t *h, const char *data,
                     size_t len)
{
    smtp_t *m = ctx;
    char line[128];

    if (!m->decided) {
        m->decided = 1;
        m->is_smtp = h->status == 200 || h->status == 500
                     || ((h->status == 502 || h->status == 504) && data
                         && looks_like_smtp(data, len));
    }
    if (data && !m->is_smtp) {
        /* only the gateway's own words: not an HTML error page */
        if (h->text_plain && m->text.len < LC_TEXT_MAX) {
            lc_buf_add(&m->text, data, len < LC_TEXT_MAX ? len : LC_TEXT_MAX);
        }
        return LC_OK;
    }
    if (data) {
        return relay_replies(m, data, len);
    }
    if (!m->is_smtp) {
        answer_refusal(m, h);
        return LC_OK;
    }
    /* a command left without its reply gets one of ours */
    snprintf(line, sizeof(line), "451 4.4.0 lemonade-connect: the answer "
             "held no reply to this command\r\n");
    for (; m->replies < m->ncmds && !m->bye; m->replies++) {
        say(m, line);
    }
    return LC_OK;
}

/* ------------------------------------------------------------------ */
/* Batches                                                             */
/* ------------------------------------------------------------------ */

static void add_command(smtp_t *m, const char *data, size_t len)
{
    lc_buf_add(&m->batch, data, len);
    m->ncmds++;
}

static void flush(smtp_t *m)
{
    int rc;

    if (!m->ncmds || m->over) {
        return;
    }
    m->decided = m->is_smtp = 0;
    m->replies = 0;
    lc_buf_reset(&m->text);
    lem_smtp_reply_init(&m->rp);
    rc = lc_post_batch(&m->post, m->batch.data, m->batch.len, NULL, NULL,
                       on_answer, m);
    if (rc != LC_OK && !m->over) {
        lost(m, m->post.err);
    }
    lc_buf_reset(&m->batch);
    m->ncmds = 0;
    m->with_data = 0;
    if (lc_post_session_replaced(&m->post) && !m->over) {
        say(m, "421 4.4.2 lemonade-connect: the gateway's session expired; "
               "connect again\r\n");
        snprintf(m->s->err, sizeof(m->s->err), "the gateway's session "
                 "expired");
        m->over = 1;
    }
    if (m->bye || lc_post_session_ended(&m->post)) {
        m->over = 1;
    }
}

/* One command, posted on its own. */
static void post_one(smtp_t *m, const char *data, size_t len)
{
    add_command(m, data, len);
    flush(m);
}

/* ------------------------------------------------------------------ */
/* Reading the client                                                  */
/* ------------------------------------------------------------------ */

static void client_bug(smtp_t *m)
{
    char line[160];

    snprintf(line, sizeof(line), "500 5.5.2 lemonade-connect: %s; closing"
             "\r\n", m->cp.error);
    flush(m);
    say(m, line);
    m->s->end = "the client broke the protocol";
    m->over = 1;
}

static int client_more(smtp_t *m)
{
    int rc = lc_client_fill(m->s, m->s->conf->idle_timeout * 1000);

    if (rc == LC_OK) {
        return LC_OK;
    }
    if (rc == LC_TIMEOUT) {
        say(m, "421 4.4.2 lemonade-connect: the client was idle for too "
               "long\r\n");
        m->s->end = "the client was idle for too long";
    }
    m->client_eof = m->over = 1;
    return LC_ERROR;
}

static lem_smtp_ev_t next_event(smtp_t *m, lem_smtp_piece_t *piece)
{
    lc_inbuf_t *in = &m->s->in;
    apr_size_t used = 0;
    lem_smtp_ev_t ev = LEM_SMTP_NEED_MORE;

    if (in->off < in->len) {
        ev = lem_smtp_cmd_next(&m->cp, in->data + in->off,
                               in->len - in->off, &used, piece);
        in->off += used;
    }
    return ev;
}

/* RFC 4954 4: after our 334, the client's answer line, CRLF dropped. */
static int read_answer_line(smtp_t *m, lc_buf_t *out)
{
    lem_smtp_piece_t piece;

    lem_smtp_cmd_expect_line(&m->cp);
    for (;;) {
        lem_smtp_ev_t ev = next_event(m, &piece);

        if (ev == LEM_SMTP_LINE) {
            lc_buf_add(out, piece.data, piece.len - 2);
            return LC_OK;
        }
        if (ev == LEM_SMTP_ERROR) {
            client_bug(m);
            return LC_ERROR;
        }
        if (client_more(m) != LC_OK) {
            return LC_ERROR;
        }
    }
}

/* ------------------------------------------------------------------ */
/* AUTH                                                                */
/* ------------------------------------------------------------------ */

/* RFC 4954 4: "AUTH" SP sasl-mech [SP initial-response]. The mechanism
 * in upper case into `mech`; returns whether a response follows it. */
static int auth_words(const char *line, size_t len, char *mech, size_t cap,
                      const char **ir, size_t *ir_len)
{
    const char *p = line + 4, *end = line + len - 2;
    size_t i = 0;

    while (p < end && *p == ' ') {
        p++;
    }
    while (p < end && *p != ' ' && i + 1 < cap) {
        mech[i++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        p++;
    }
    mech[i] = '\0';
    while (p < end && *p == ' ') {
        p++;
    }
    *ir = p;
    *ir_len = (size_t)(end - p);
    return p < end;
}

/* One answer to a 334 of ours, base64-decoded into `out` (NUL-ended).
 * LC_OK; LC_END when the client cancelled ("*") or sent no base64, the
 * reply said; LC_ERROR when the session ended. */
static int login_answer(smtp_t *m, const char *prompt, unsigned char *out,
                        size_t cap, int *len)
{
    lc_buf_t line = { 0 };
    int rc;

    say(m, prompt);
    rc = read_answer_line(m, &line);
    if (rc == LC_OK && line.len == 1 && line.data[0] == '*') {
        say(m, "501 5.7.0 authentication cancelled\r\n");
        rc = LC_END;
    }
    else if (rc == LC_OK
             && (*len = lc_b64_decode(line.data, line.len, out, cap - 1)) < 0) {
        say(m, "501 5.5.2 lemonade-connect: cannot decode the answer as "
               "base64\r\n");
        rc = LC_END;
    }
    if (rc == LC_OK) {
        out[*len] = '\0';
    }
    OPENSSL_cleanse(line.data, line.len);
    lc_buf_free(&line);
    return rc;
}

/* RFC 4616: message = [authzid] UTF8NUL authcid UTF8NUL passwd; LOGIN's
 * two answers become PLAIN's one, which the gateway can carry. */
static void auth_login(smtp_t *m, const char *ir, size_t ir_len)
{
    unsigned char user[512], pass[512], plain[1100];
    char b64[1500];
    int ulen = 0, plen = 0;
    lc_buf_t cmd = { 0 };

    if (ir_len) {
        ulen = lc_b64_decode(ir, ir_len, user, sizeof(user) - 1);
        if (ulen < 0) {
            say(m, "501 5.5.2 lemonade-connect: cannot decode the initial "
                   "response as base64\r\n");
            return;
        }
    }
    else if (login_answer(m, LOGIN_USER, user, sizeof(user), &ulen)
             != LC_OK) {
        return;
    }
    if (login_answer(m, LOGIN_PASS, pass, sizeof(pass), &plen) == LC_OK) {
        plain[0] = '\0';
        memcpy(plain + 1, user, (size_t)ulen);
        plain[1 + ulen] = '\0';
        memcpy(plain + 2 + ulen, pass, (size_t)plen);
        lc_b64_encode(plain, (size_t)(2 + ulen + plen), b64, sizeof(b64));
        lc_buf_addstr(&cmd, "AUTH PLAIN ");
        lc_buf_addstr(&cmd, b64);
        lc_buf_addstr(&cmd, "\r\n");
        post_one(m, cmd.data, cmd.len);
        OPENSSL_cleanse(cmd.data, cmd.len);
        lc_buf_free(&cmd);
    }
    OPENSSL_cleanse(user, sizeof(user));
    OPENSSL_cleanse(pass, sizeof(pass));
    OPENSSL_cleanse(plain, sizeof(plain));
    OPENSSL_cleanse(b64, sizeof(b64));
}

/* PLAIN takes one round: our "334 ", the client's answer as initial
 * response. */
static void auth_plain(smtp_t *m)
{
    lc_buf_t line = { 0 }, cmd = { 0 };

    say(m, "334 \r\n");
    if (read_answer_line(m, &line) != LC_OK) {
        return;
    }
    if (line.len == 1 && line.data[0] == '*') {
        say(m, "501 5.7.0 authentication cancelled\r\n");
    }
    else {
        lc_buf_addstr(&cmd, "AUTH PLAIN ");
        lc_buf_add(&cmd, line.len ? line.data : "=", line.len ? line.len : 1);
        lc_buf_addstr(&cmd, "\r\n");
        post_one(m, cmd.data, cmd.len);
        OPENSSL_cleanse(cmd.data, cmd.len);
    }
    OPENSSL_cleanse(line.data, line.len);
    lc_buf_free(&line);
    lc_buf_free(&cmd);
}

static void auth(smtp_t *m, const lem_smtp_piece_t *piece)
{
    char mech[32];
    const char *ir;
    size_t ir_len;
    int has_ir = auth_words(piece->data, piece->len, mech, sizeof(mech),
                            &ir, &ir_len);

    if (has_ir && strcmp(mech, "LOGIN")) {
        add_command(m, piece->data, piece->len);
        return;
    }
    flush(m);
    if (m->over) {
        return;
    }
    if (!strcmp(mech, "LOGIN")) {
        auth_login(m, ir, ir_len);
    }
    else if (!strcmp(mech, "PLAIN")) {
        auth_plain(m);
    }
    else {
        say(m, "504 5.5.4 lemonade-connect: in in-response mode AUTH needs "
               "an initial response (RFC 4954), or PLAIN or LOGIN\r\n");
    }
}

/* ------------------------------------------------------------------ */
/* The session                                                         */
/* ------------------------------------------------------------------ */

/* RFC 5321 4.1.1.4: our 354, after the replies to what came before, so
 * that the client sees them in order. */
static void start_data(smtp_t *m, const lem_smtp_piece_t *piece)
{
    flush(m);
    if (m->over) {
        return;
    }
    lc_buf_reset(&m->cur);
    lc_buf_add(&m->cur, piece->data, piece->len);
    say(m, "354 lemonade-connect: end data with <CR><LF>.<CR><LF>\r\n");
}

static void on_line(smtp_t *m, const lem_smtp_piece_t *piece)
{
    lem_smtp_piece_t empty;
    apr_size_t used;

    if (!strcmp(m->cp.verb, "DATA")) {
        start_data(m, piece);
        return;
    }
    if (!strcmp(m->cp.verb, "BDAT")) {
        /* RFC 3030 2: its octets follow at once; "BDAT 0" has none, and
         * the parser says so with an empty piece only when asked */
        lc_buf_reset(&m->cur);
        lc_buf_add(&m->cur, piece->data, piece->len);
        if (m->cp.bdat_len == 0) {
            lem_smtp_cmd_next(&m->cp, "", 0, &used, &empty);
            add_command(m, m->cur.data, m->cur.len);
        }
        return;
    }
    if (!strcmp(m->cp.verb, "AUTH")) {
        auth(m, piece);
        return;
    }
    add_command(m, piece->data, piece->len);
}

static void on_content(smtp_t *m, const lem_smtp_piece_t *piece)
{
    lc_buf_add(&m->cur, piece->data, piece->len);
    if (!piece->last) {
        return;
    }
    if (!strcmp(m->cp.verb, "DATA")) {
        /* RFC 2442: DATA and its message in one batch, one reply */
        add_command(m, m->cur.data, m->cur.len);
        m->with_data = 1;
        flush(m);
        return;
    }
    add_command(m, m->cur.data, m->cur.len);
}

static void serve(smtp_t *m)
{
    lem_smtp_piece_t piece;

    while (!m->over && !m->s->client_gone) {
        lem_smtp_ev_t ev = next_event(m, &piece);

        if (ev == LEM_SMTP_ERROR) {
            client_bug(m);
        }
        else if (ev == LEM_SMTP_LINE) {
            on_line(m, &piece);
        }
        else if (ev == LEM_SMTP_CONTENT) {
            on_content(m, &piece);
        }
        else if (m->ncmds) {
            flush(m);
        }
        else {
            client_more(m);
        }
        if (m->ncmds >= LC_BATCH_MAX || m->batch.len >= LC_BATCH_BYTES) {
            flush(m);
        }
    }
}

/* A client that left without QUIT: the gateway's session ends now. */
static void quit(smtp_t *m)
{
    static const char cmd[] = "QUIT\r\n";

    if (m->lost || m->bye || !lc_post_has_session(&m->post)) {
        return;
    }
    m->s->client_gone = 1;
    m->over = 0;
    post_one(m, cmd, sizeof(cmd) - 1);
}

static void smtp_in_response(lc_session_t *s)
{
    smtp_t *m = calloc(1, sizeof(*m));

    if (!m) {
        lc_client_bye(s, "lemonade-connect: out of memory");
        return;
    }
    m->s = s;
    lc_post_init(&m->post, s);
    lem_smtp_cmd_init(&m->cp, m->line, sizeof(m->line), LC_MAX_MESSAGE);

    /* 1. our greeting; the server's opens the gateway's session */
    say(m, GREETING);

    /* 2. commands until either side ends */
    serve(m);
    lc_note_end(s, m->lost, m->bye, m->over, m->client_eof);

    /* 3. the gateway's session ends with ours */
    quit(m);
    lc_post_close(&m->post);
    lc_buf_free(&m->cur);
    lc_buf_free(&m->batch);
    lc_buf_free(&m->text);
    free(m);
}

const lc_proto_t lc_smtp_proto = {
    "SMTP",
    "421 4.4.2 %s\r\n",
    track_init,
    track,
    at_boundary,
    smtp_in_response
};
