/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * IMAP for lemonade-connect.
 *
 *   in-band        the server's responses are only watched (lc_track_t)
 *   in-response    draft-maes-lemonade-http-binding-04, 2.1.1: the
 *                  client's commands are framed with lem_imap.h and
 *                  posted in batches; what the mode cannot carry is
 *                  answered here:
 *                  - a synchronizing literal gets our "+" (the gateway
 *                    waits for the server's own)
 *                  - IDLE (RFC 2177) becomes a run of long polls
 *                  - AUTHENTICATE PLAIN without an initial response
 *                    (RFC 4959) gets our "+" and goes out with one
 *
 * The client sees exactly one tagged response per command, as from a
 * server on a plain connection.
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "lemonade_connect.h"
#include "lemonade_connect_post.h"

/* Commands and bytes gathered before a batch goes out anyway; well under
 * mod_lemonade's LemonadeMaxCommands and LemonadeMaxRequestBody. */
#define LC_BATCH_MAX        64
#define LC_BATCH_BYTES      (16 * 1024 * 1024)

/* What the gateway says about a refused batch, kept for the client. */
#define LC_TEXT_MAX         400

#define GREETING  "* OK lemonade-connect ready (in-response mode)\r\n"

/* One IMAP session in in-response mode. */
typedef struct {
    lc_session_t     *s;
    lc_post_t         post;
    lem_cmd_parser_t  cp;
    char              line[LC_MAX_LINE];   /* the parser's */

    /* commands */
    lc_buf_t          cur;          /* the command being read */
    lc_buf_t          batch;        /* complete commands, not posted */
    unsigned          ntags;
    char              tags[LC_BATCH_MAX][LEM_IMAP_TAG_MAX + 1];
    unsigned char     answered[LC_BATCH_MAX];

    /* the answer being read */
    lem_resp_parser_t rp;
    int               decided;      /* its kind is known: */
    int               is_imap;      /* responses, or the gateway's text */
    int               hide;         /* this response is not for the client */
    lc_buf_t          text;         /* the gateway's text */

    /* IDLE as long polls */
    const char       *idle_tag;     /* its tagged response is held */
    lc_buf_t          held;         /* ... here */
    lem_status_t      held_status;  /* NONE: none came */
    int               holding;      /* reading it */
    int               done;         /* the client said DONE */

    int               bye;          /* the server said BYE */
    int               lost;         /* the HTTP side failed */
    int               client_eof;
    int               over;
} imap_t;

/* ------------------------------------------------------------------ */
/* In-band: watching the server's responses                            */
/* ------------------------------------------------------------------ */

static void track_init(lc_track_t *t)
{
    memset(t, 0, sizeof(*t));
    lem_resp_init(&t->p.imap);
}

static void track(lc_track_t *t, const char *data, size_t len)
{
    lem_imap_piece_t piece;
    apr_size_t used;

    while (len && !t->broken) {
        lem_imap_ev_t ev = lem_resp_next(&t->p.imap, data, len, &used,
                                         &piece);

        data += used;
        len -= used;
        if (ev == LEM_IMAP_ERROR) {
            t->broken = 1;
        }
        else if (ev != LEM_IMAP_NEED_MORE && piece.first) {
            t->said_bye |= t->p.imap.kind == LEM_RESP_UNTAGGED
                           && t->p.imap.status == LEM_STATUS_BYE;
        }
    }
}

static int at_boundary(const lc_track_t *t)
{
    return !t->broken && lem_resp_at_boundary(&t->p.imap);
}

/* ------------------------------------------------------------------ */
/* Answers                                                             */
/* ------------------------------------------------------------------ */

static void say(imap_t *m, const char *text)
{
    lc_client_say(m->s, text);
}

/* The HTTP side failed: a goodbye, if it fits between responses. */
static void lost(imap_t *m, const char *why)
{
    char line[LC_ERR_MAX + 64];

    if (lem_resp_at_boundary(&m->rp)) {
        snprintf(line, sizeof(line), "lemonade-connect: %s", why);
        lc_client_bye(m->s, line);
    }
    snprintf(m->s->err, sizeof(m->s->err), "%s", why);
    m->lost = m->over = 1;
}

/* A 502 or 504 carries the responses the gateway could give; any other
 * status but 200 and 500 carries its own words instead. */
static int looks_like_imap(const imap_t *m, const char *data, size_t len)
{
    unsigned i;

    if (len >= 2 && data[0] == '*' && data[1] == ' ') {
        return 1;
    }
    for (i = 0; i < m->ntags; i++) {
        size_t n = strlen(m->tags[i]);

        if (len > n && !memcmp(data, m->tags[i], n) && data[n] == ' ') {
            return 1;
        }
    }
    return 0;
}

static void on_tagged(imap_t *m)
{
    unsigned i;

    for (i = 0; i < m->ntags; i++) {
        if (!m->answered[i] && !strcmp(m->tags[i], m->rp.tag)) {
            m->answered[i] = 1;
            break;
        }
    }
    if (m->idle_tag && !strcmp(m->rp.tag, m->idle_tag)) {
        /* the long poll's end, not the end of the client's IDLE */
        m->hide = m->holding = 1;
        m->held_status = m->rp.status;
        lc_buf_reset(&m->held);
    }
}

static void on_response_head(imap_t *m)
{
    m->hide = m->holding = 0;
    switch (m->rp.kind) {
    case LEM_RESP_TAGGED:
        on_tagged(m);
        break;
    case LEM_RESP_CONTINUATION:
        /* draft 2.1.1: none in this mode; the gateway answered them */
        m->hide = 1;
        break;
    case LEM_RESP_UNTAGGED:
        m->bye |= m->rp.status == LEM_STATUS_BYE;
        break;
    }
}

/* The responses of an answer, to the client as they come. */
static int relay_responses(imap_t *m, const char *data, size_t len)
{
    lem_imap_piece_t piece;
    apr_size_t used;

    while (len) {
        lem_imap_ev_t ev = lem_resp_next(&m->rp, data, len, &used, &piece);

        data += used;
        len -= used;
        if (ev == LEM_IMAP_ERROR) {
            lost(m, "the answer is not IMAP");
            return LC_ERROR;
        }
        if (ev == LEM_IMAP_NEED_MORE) {
            break;
        }
        if (piece.first) {
            on_response_head(m);
        }
        if (!m->hide) {
            lc_client_write(m->s, piece.data, piece.len);
        }
        else if (m->holding) {
            lc_buf_add(&m->held, piece.data, piece.len);
        }
    }
    return m->s->client_gone ? LC_ERROR : LC_OK;
}

/* After an answer of responses: a command without its tagged response
 * gets one, so the client never waits for it. */
static void answer_unanswered(imap_t *m)
{
    char line[LEM_IMAP_TAG_MAX + 128];
    unsigned i;

    for (i = 0; i < m->ntags && !m->bye; i++) {
        if (!m->answered[i] && !(m->idle_tag && i == 0)) {
            snprintf(line, sizeof(line), "%s NO [UNAVAILABLE] "
                     "lemonade-connect: the answer held no response to "
                     "this command\r\n", m->tags[i]);
            say(m, line);
        }
    }
}

/* After an answer in the gateway's words: 4xx refused the batch, any
 * other status ends the session. A refused long poll's BAD is held as
 * its tagged response would have been. */
static void answer_refusal(imap_t *m, const lc_head_t *h)
{
    char line[LC_TEXT_MAX + LEM_IMAP_TAG_MAX + 128];
    const char *why;
    unsigned i;

    lc_buf_add(&m->text, "", 1);
    m->text.data[strcspn(m->text.data, "\r\n")] = '\0';
    why = m->text.data[0] ? m->text.data : h->reason;
    if (h->status >= 400 && h->status < 500) {
        for (i = 0; i < m->ntags; i++) {
            snprintf(line, sizeof(line), "%s BAD lemonade-connect: the "
                     "gateway refused the request: HTTP %d: %s\r\n",
                     m->tags[i], h->status, why);
            if (m->idle_tag) {
                m->held_status = LEM_STATUS_BAD;
                lc_buf_reset(&m->held);
                lc_buf_addstr(&m->held, line);
            }
            else {
                say(m, line);
            }
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
    imap_t *m = ctx;

    if (!m->decided) {
        m->decided = 1;
        m->is_imap = h->status == 200 || h->status == 500
                     || ((h->status == 502 || h->status == 504) && data
                         && looks_like_imap(m, data, len));
    }
    if (!data) {
        if (m->is_imap) {
            answer_unanswered(m);
        }
        else {
            answer_refusal(m, h);
        }
        return LC_OK;
    }
    if (!m->is_imap) {
        /* only the gateway's own words: not an HTML error page */
        if (h->text_plain && m->text.len < LC_TEXT_MAX) {
            lc_buf_add(&m->text, data, len < LC_TEXT_MAX ? len : LC_TEXT_MAX);
        }
        return LC_OK;
    }
    return relay_responses(m, data, len);
}

/* ------------------------------------------------------------------ */
/* Batches                                                             */
/* ------------------------------------------------------------------ */

static void add_command(imap_t *m, const char *tag, const char *data,
                        size_t len)
{
    snprintf(m->tags[m->ntags], sizeof(m->tags[0]), "%s", tag);
    m->answered[m->ntags++] = 0;
    lc_buf_add(&m->batch, data, len);
}

/* Post the gathered commands (draft 2.1.1: "as many commands as it would
 * like in one HTTP request") and relay the answer. */
static void flush_with(imap_t *m, const char *extra, lc_wait_fn wait)
{
    int rc;

    if (!m->ntags || m->over) {
        return;
    }
    m->decided = m->is_imap = m->hide = 0;
    lc_buf_reset(&m->text);
    lem_resp_init(&m->rp);
    rc = lc_post_batch(&m->post, m->batch.data, m->batch.len, extra, wait,
                       on_answer, m);
    if (rc != LC_OK && !m->over) {
        lost(m, m->post.err);
    }
    lc_buf_reset(&m->batch);
    m->ntags = 0;
    if (lc_post_session_replaced(&m->post) && !m->over) {
        /* the client's state (login, selected mailbox) was in the old
         * session: it has to start again; the new one is logged out */
        say(m, "* BYE [UNAVAILABLE] lemonade-connect: the gateway's "
               "session expired; connect again\r\n");
        snprintf(m->s->err, sizeof(m->s->err), "the gateway's session "
                 "expired");
        m->over = 1;
    }
    if (m->bye || lc_post_session_ended(&m->post)) {
        m->over = 1;
    }
}

static void flush(imap_t *m)
{
    flush_with(m, NULL, NULL);
}

/* ------------------------------------------------------------------ */
/* Reading the client                                                  */
/* ------------------------------------------------------------------ */

static void client_bug(imap_t *m)
{
    char line[160];

    snprintf(line, sizeof(line), "* BYE [CLIENTBUG] lemonade-connect: %s"
             "\r\n", m->cp.error);
    flush(m);
    say(m, line);
    m->s->end = "the client broke the protocol";
    m->over = 1;
}

/* Wait for more from the client: LC_OK, or the session ends. */
static int client_more(imap_t *m, int ms)
{
    int rc = lc_client_fill(m->s, ms);

    if (rc == LC_OK) {
        return LC_OK;
    }
    if (rc == LC_TIMEOUT) {
        say(m, "* BYE lemonade-connect: the client was idle for too long"
               "\r\n");
        m->s->end = "the client was idle for too long";
    }
    m->client_eof = m->over = 1;
    return LC_ERROR;
}

/* The next parser event from what the client has sent, without waiting:
 * NEED_MORE when all of it is used. */
static lem_imap_ev_t next_event(imap_t *m, lem_imap_piece_t *piece)
{
    lc_inbuf_t *in = &m->s->in;
    apr_size_t used = 0;
    lem_imap_ev_t ev = LEM_IMAP_NEED_MORE;

    if (in->off < in->len) {
        ev = lem_cmd_next(&m->cp, in->data + in->off, in->len - in->off,
                          &used, piece);
        in->off += used;
    }
    return ev;
}

/*
 * RFC 3501 7.5: the line that answers our "+" (the parser was told to
 * expect it), without its CRLF, into `out`. LC_OK, or the session ended.
 */
static int read_answer_line(imap_t *m, lc_buf_t *out)
{
    lem_imap_piece_t piece;

    for (;;) {
        lem_imap_ev_t ev = next_event(m, &piece);

        if (ev == LEM_IMAP_TEXT) {
            lc_buf_add(out, piece.data, piece.len - 2);
            return LC_OK;
        }
        if (ev == LEM_IMAP_ERROR) {
            client_bug(m);
            return LC_ERROR;
        }
        if (client_more(m, m->s->conf->idle_timeout * 1000) != LC_OK) {
            return LC_ERROR;
        }
    }
}

/* ------------------------------------------------------------------ */
/* IDLE                                                                */
/* ------------------------------------------------------------------ */

/* Whether the client's "DONE" has come (RFC 2177: "The IDLE command is
 * terminated by the receipt of a "DONE" continuation"). */
static void check_done(imap_t *m)
{
    lem_imap_piece_t piece;
    lem_imap_ev_t ev = next_event(m, &piece);

    if (ev == LEM_IMAP_TEXT || ev == LEM_IMAP_ERROR) {
        m->done = 1;
    }
}

/* lc_wait_fn for a long poll: the client's DONE may come meanwhile. */
static int poll_wait(void *ctx, lc_conn_t *c)
{
    imap_t *m = ctx;
    const lc_conf_t *conf = m->s->conf;
    long long deadline = lc_now_ms()
                         + (conf->heartbeat + conf->timeout) * 1000LL;

    while (!lc_conn_buffered(c)) {
        struct pollfd pfd[2];
        int rc;

        pfd[0].fd = m->done || m->client_eof ? -1 : m->s->cfd;
        pfd[0].events = POLLIN;
        pfd[1].fd = c->fd;
        pfd[1].events = POLLIN;
        do {
            rc = poll(pfd, 2, lc_left_ms(deadline));
        } while (rc < 0 && errno == EINTR);
        if (rc <= 0) {
            snprintf(c->err, sizeof(c->err), "no answer to a long poll in "
                     "time");
            return LC_TIMEOUT;
        }
        if (pfd[1].revents) {
            break;
        }
        rc = lc_client_fill(m->s, 0);
        if (rc == LC_OK) {
            check_done(m);
        }
        else if (rc != LC_TIMEOUT) {
            m->client_eof = 1;
        }
    }
    return LC_OK;
}

/* One long poll: IDLE until news or the heartbeat (mod_lemonade ends the
 * IDLE itself); the news goes to the client, the tagged OK is held. */
static void long_poll(imap_t *m, const char *tag)
{
    char cmd[LEM_IMAP_TAG_MAX + 16], extra[64];

    snprintf(cmd, sizeof(cmd), "%s IDLE\r\n", tag);
    snprintf(extra, sizeof(extra), "Lemonade-Heartbeat: %d\r\n",
             m->s->conf->heartbeat);
    add_command(m, tag, cmd, strlen(cmd));
    m->idle_tag = tag;
    m->held_status = LEM_STATUS_NONE;
    flush_with(m, extra, poll_wait);
    m->idle_tag = NULL;
}

/* The client's IDLE, until its DONE. */
static void idle(imap_t *m, const char *tag)
{
    char line[LEM_IMAP_TAG_MAX + 64];
    int failed = 0;

    /* 1. RFC 2177: "+" at once; the next line is DONE */
    say(m, "+ idling\r\n");
    lem_cmd_expect_line(&m->cp);
    lc_buf_reset(&m->held);
    m->held_status = LEM_STATUS_NONE;
    m->done = 0;
    check_done(m);

    /* 2. long polls; a refused one (not selected, say) waits for DONE,
     * which the client sends having had our "+" */
    while (!m->done && !m->over && !m->client_eof) {
        if (failed) {
            if (client_more(m, m->s->conf->idle_timeout * 1000) == LC_OK) {
                check_done(m);
            }
            continue;
        }
        long_poll(m, tag);
        failed = m->held_status != LEM_STATUS_OK;
    }

    /* 3. the tagged response ends the client's IDLE */
    if (m->over || !m->done) {
        return;
    }
    if (m->held.len) {
        lc_client_write(m->s, m->held.data, m->held.len);
        return;
    }
    snprintf(line, sizeof(line), "%s OK IDLE terminated\r\n", tag);
    say(m, line);
}

/* ------------------------------------------------------------------ */
/* AUTHENTICATE                                                        */
/* ------------------------------------------------------------------ */

/*
 * RFC 4959: "AUTHENTICATE" SP auth-type [SP (base64 / "=")]. Returns the
 * mechanism (upper case) in `mech` and whether an initial response is
 * there.
 */
static int initial_response(const lc_buf_t *cmd, const char *tag,
                            char *mech, size_t cap)
{
    const char *p = cmd->data + strlen(tag) + 1 + strlen("AUTHENTICATE");
    const char *end = cmd->data + cmd->len - 2;
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
    return p < end;
}

/* AUTHENTICATE without an initial response: PLAIN takes one round, so
 * we give the "+" and send the client's answer as the initial response. */
static void authenticate(imap_t *m, const char *tag, const char *mech)
{
    char line[LEM_IMAP_TAG_MAX + 200];
    lc_buf_t answer = { 0 }, cmd = { 0 };

    if (strcmp(mech, "PLAIN")) {
        snprintf(line, sizeof(line), "%s NO [CANNOT] lemonade-connect: in "
                 "in-response mode AUTHENTICATE needs an initial response "
                 "(RFC 4959), or the PLAIN mechanism\r\n", tag);
        say(m, line);
        return;
    }
    say(m, "+ \r\n");
    lem_cmd_expect_line(&m->cp);
    if (read_answer_line(m, &answer) != LC_OK) {
        return;
    }
    if (answer.len == 1 && answer.data[0] == '*') {
        snprintf(line, sizeof(line), "%s BAD AUTHENTICATE cancelled\r\n",
                 tag);
        say(m, line);
    }
    else {
        lc_buf_addstr(&cmd, tag);
        lc_buf_addstr(&cmd, " AUTHENTICATE PLAIN ");
        lc_buf_add(&cmd, answer.len ? answer.data : "=",
                   answer.len ? answer.len : 1);
        lc_buf_addstr(&cmd, "\r\n");
        add_command(m, tag, cmd.data, cmd.len);
        flush(m);
        OPENSSL_cleanse(cmd.data, cmd.len);
        OPENSSL_cleanse(answer.data, answer.len);
    }
    lc_buf_free(&answer);
    lc_buf_free(&cmd);
}

/* ------------------------------------------------------------------ */
/* The session                                                         */
/* ------------------------------------------------------------------ */

/* A command is complete: into the batch, or served on its own. */
static void command_done(imap_t *m)
{
    char tag[LEM_IMAP_TAG_MAX + 1], mech[32];

    snprintf(tag, sizeof(tag), "%s", m->cp.tag);
    if (!strcmp(m->cp.name, "IDLE")) {
        flush(m);
        if (!m->over) {
            idle(m, tag);
        }
        return;
    }
    if (!strcmp(m->cp.name, "AUTHENTICATE")
        && !initial_response(&m->cur, tag, mech, sizeof(mech))) {
        flush(m);
        if (!m->over) {
            authenticate(m, tag, mech);
        }
        return;
    }
    add_command(m, tag, m->cur.data, m->cur.len);
    if (m->ntags == LC_BATCH_MAX || m->batch.len >= LC_BATCH_BYTES) {
        flush(m);
    }
}

static void on_piece(imap_t *m, lem_imap_ev_t ev,
                     const lem_imap_piece_t *piece)
{
    if (ev == LEM_IMAP_TEXT && piece->first) {
        lc_buf_reset(&m->cur);
    }
    lc_buf_add(&m->cur, piece->data, piece->len);
    if (ev != LEM_IMAP_TEXT) {
        return;
    }
    if (!piece->last) {
        /* RFC 3501 7.5: the go-ahead for "{n}"; the gateway waits for
         * the server's own before it sends the octets on */
        if (m->cp.literal == LEM_LITERAL_SYNC) {
            say(m, "+ go ahead\r\n");
        }
        return;
    }
    command_done(m);
}

/* Commands are posted once all the client has sent is read, so a
 * pipelining client's commands share a request. */
static void serve(imap_t *m)
{
    lem_imap_piece_t piece;

    while (!m->over && !m->s->client_gone) {
        lem_imap_ev_t ev = next_event(m, &piece);

        if (ev == LEM_IMAP_ERROR) {
            client_bug(m);
        }
        else if (ev != LEM_IMAP_NEED_MORE) {
            on_piece(m, ev, &piece);
        }
        else if (m->ntags) {
            flush(m);
        }
        else {
            client_more(m, m->s->conf->idle_timeout * 1000);
        }
    }
}

/* A client that left without LOGOUT: the gateway's session ends now
 * rather than at its idle timeout. */
static void logout(imap_t *m)
{
    static const char cmd[] = "lc1 LOGOUT\r\n";

    if (m->lost || m->bye || !lc_post_has_session(&m->post)) {
        return;
    }
    m->s->client_gone = 1;      /* nothing more goes to the client */
    m->over = 0;
    add_command(m, "lc1", cmd, sizeof(cmd) - 1);
    flush(m);
}

static void imap_in_response(lc_session_t *s)
{
    imap_t *m = calloc(1, sizeof(*m));

    if (!m) {
        lc_client_bye(s, "lemonade-connect: out of memory");
        return;
    }
    m->s = s;
    lc_post_init(&m->post, s);
    lem_cmd_init(&m->cp, m->line, sizeof(m->line), LC_MAX_LITERAL);

    /* 1. our greeting: the server's comes with the first batch's session
     * and is not relayed (draft 2.1.1) */
    say(m, GREETING);

    /* 2. commands until either side ends */
    serve(m);
    lc_note_end(s, m->lost, m->bye, m->over, m->client_eof);

    /* 3. the gateway's session ends with ours */
    logout(m);
    lc_post_close(&m->post);
    lc_buf_free(&m->cur);
    lc_buf_free(&m->batch);
    lc_buf_free(&m->text);
    lc_buf_free(&m->held);
    free(m);
}

const lc_proto_t lc_imap_proto = {
    "IMAP",
    "* BYE [UNAVAILABLE] %s\r\n",
    track_init,
    track,
    at_boundary,
    imap_in_response
};
