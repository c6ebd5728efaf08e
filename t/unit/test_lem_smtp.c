/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * The SMTP framing core: every table row is fed twice, whole and one byte
 * at a time, and both runs must give the same events as the row wants.
 */

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lem_smtp.h"

#define MAX_LINE      64        /* max_line of every run */
#define MAX_CONTENT   64        /* max_content of every run */
#define MAX_EVENTS    16
#define MAX_DATA      512
#define MAX_WANT      8

/* 16 letters; four and a few more make lines near MAX_LINE. */
#define C16 "abcdefghijklmnop"

#define N_ROWS(t) ((int)(sizeof(t) / sizeof((t)[0])))

/* Row options: what the server said in between, as the caller learns it. */
#define REFUSE_DATA  1u     /* DATA is answered 554: no content follows */
#define SASL         2u     /* AUTH is answered 334: one answer line */

/* ------------------------------------------------------------------ */
/* Feeding a parser and writing down what it said                      */
/* ------------------------------------------------------------------ */

/*
 * One event as the tests compare it: a whole line, the CONTENT pieces of
 * one message or chunk joined, or an error.
 */
typedef struct {
    lem_smtp_ev_t ev;
    char          data[MAX_DATA];
    size_t        len;
    int           last;
    char          verb[LEM_SMTP_VERB_MAX + 1];
    apr_uint64_t  bdat_len;
    int           bdat_last;
    int           code;
    char          text[MAX_DATA];
    const char   *error;
    int           limit_hit;
} seen_t;

typedef struct {
    seen_t   ev[MAX_EVENTS];
    int      n;
    int      open;                  /* the last CONTENT takes more pieces */
    int      boundary;              /* at_boundary after the input */
    unsigned commands;
} run_t;

/* Both parsers; `is_reply` says which one a run feeds. */
typedef struct {
    int              is_reply;
    unsigned         opts;
    lem_smtp_cmd_t   cmd;
    lem_smtp_reply_t reply;
    char             line[MAX_LINE];
} parser_t;

static lem_smtp_ev_t parser_next(parser_t *ps, const char *in,
                                 apr_size_t len, apr_size_t *used,
                                 lem_smtp_piece_t *piece)
{
    if (ps->is_reply) {
        return lem_smtp_reply_next(&ps->reply, in, len, used, piece);
    }
    return lem_smtp_cmd_next(&ps->cmd, in, len, used, piece);
}

static const char *parser_error(const parser_t *ps)
{
    return ps->is_reply ? ps->reply.error : ps->cmd.error;
}

static int parser_at_boundary(const parser_t *ps)
{
    if (ps->is_reply) {
        return lem_smtp_reply_at_boundary(&ps->reply);
    }
    return lem_smtp_cmd_at_boundary(&ps->cmd);
}

/* The server's answer to the line just read, as a row's options say. */
static void parser_answer(parser_t *ps)
{
    if (ps->is_reply) {
        return;
    }
    if ((ps->opts & REFUSE_DATA) && strcmp(ps->cmd.verb, "DATA") == 0) {
        lem_smtp_cmd_no_content(&ps->cmd);
    }
    if ((ps->opts & SASL) && strcmp(ps->cmd.verb, "AUTH") == 0) {
        lem_smtp_cmd_expect_line(&ps->cmd);
    }
}

static seen_t *seen_new(run_t *r, lem_smtp_ev_t ev)
{
    seen_t *s;

    ck_assert_int_lt(r->n, MAX_EVENTS);
    s = &r->ev[r->n++];
    memset(s, 0, sizeof(*s));
    s->ev = ev;
    return s;
}

/* What the parser says about the line just returned. */
static void seen_line(const parser_t *ps, seen_t *s,
                      const lem_smtp_piece_t *pc)
{
    const lem_smtp_reply_t *rp = &ps->reply;

    if (!ps->is_reply) {
        /* lem_smtp.h: a command line is always one whole piece */
        ck_assert(pc->last);
        strcpy(s->verb, ps->cmd.verb);
        s->bdat_len = ps->cmd.bdat_len;
        s->bdat_last = ps->cmd.bdat_last;
        return;
    }
    /* the text lies in the line returned, before its CRLF */
    ck_assert(rp->text >= pc->data);
    ck_assert(rp->text + rp->text_len + 2 <= pc->data + pc->len);
    s->code = rp->code;
    memcpy(s->text, rp->text, rp->text_len);
}

/* Add one piece to the run. */
static void seen_piece(run_t *r, const parser_t *ps, lem_smtp_ev_t ev,
                       const lem_smtp_piece_t *pc)
{
    int is_new = !(r->open && ev == LEM_SMTP_CONTENT);
    seen_t *s = is_new ? seen_new(r, ev) : &r->ev[r->n - 1];

    /* only "BDAT 0" ends in an empty piece */
    ck_assert(pc->len > 0 || (ev == LEM_SMTP_CONTENT && pc->last));
    ck_assert_uint_le(s->len + pc->len, MAX_DATA);
    memcpy(s->data + s->len, pc->data, pc->len);
    s->len += pc->len;
    s->last = pc->last;
    r->open = (ev == LEM_SMTP_CONTENT && !pc->last);
    if (ev == LEM_SMTP_LINE) {
        seen_line(ps, s, pc);
    }
}

static void seen_error(run_t *r, parser_t *ps)
{
    seen_t *s = seen_new(r, LEM_SMTP_ERROR);
    lem_smtp_piece_t pc;
    apr_size_t used = 1;

    s->error = parser_error(ps);
    s->limit_hit = !ps->is_reply && ps->cmd.limit_hit;

    /* it stays in error, consuming nothing */
    ck_assert_int_eq(parser_next(ps, "x", 1, &used, &pc), LEM_SMTP_ERROR);
    ck_assert_uint_eq(used, 0);
    ck_assert_str_eq(parser_error(ps), s->error);
}

/*
 * Feed `in` to a fresh parser `step` bytes at a time. After every event
 * the rest of the slice is passed again, down to zero bytes, so an event
 * left behind at a feed boundary shows up as a difference.
 */
static void run(run_t *r, int is_reply, unsigned opts, const char *in,
                size_t len, size_t step)
{
    parser_t *ps = calloc(1, sizeof(*ps));
    size_t off = 0, calls = 0;

    ck_assert_ptr_nonnull(ps);
    memset(r, 0, sizeof(*r));
    ps->is_reply = is_reply;
    ps->opts = opts;
    lem_smtp_cmd_init(&ps->cmd, ps->line, MAX_LINE, MAX_CONTENT);
    lem_smtp_reply_init(&ps->reply);
    while (off < len) {
        size_t n = (len - off < step) ? len - off : step, pos = 0;

        for (;;) {
            lem_smtp_piece_t pc;
            apr_size_t used = n + 1;
            lem_smtp_ev_t ev = parser_next(ps, in + off + pos, n - pos,
                                           &used, &pc);

            ck_assert_uint_le(used, n - pos);
            ck_assert_uint_lt(++calls, 4 * len + 16);
            pos += used;
            if (ev == LEM_SMTP_NEED_MORE) {
                ck_assert_uint_eq(pos, n);
                break;
            }
            if (ev == LEM_SMTP_ERROR) {
                seen_error(r, ps);
                free(ps);
                return;
            }
            ck_assert(used > 0 || pc.len == 0);
            seen_piece(r, ps, ev, &pc);
            if (ev == LEM_SMTP_LINE) {
                parser_answer(ps);
            }
        }
        off += n;
    }
    r->boundary = parser_at_boundary(ps);
    r->commands = ps->cmd.commands;
    free(ps);
}

static void assert_same_runs(const char *why, const run_t *a,
                             const run_t *b)
{
    int i;

    ck_assert_msg(a->n == b->n, "%s: %d events, then %d", why, a->n, b->n);
    for (i = 0; i < a->n; i++) {
        const seen_t *x = &a->ev[i], *y = &b->ev[i];

        ck_assert_msg(x->ev == y->ev && x->len == y->len
                      && memcmp(x->data, y->data, x->len) == 0
                      && x->last == y->last
                      && strcmp(x->verb, y->verb) == 0
                      && x->bdat_len == y->bdat_len
                      && x->bdat_last == y->bdat_last
                      && x->code == y->code
                      && strcmp(x->text, y->text) == 0
                      && x->error == y->error
                      && x->limit_hit == y->limit_hit,
                      "%s: event %d differs between feeds", why, i);
    }
    ck_assert_msg(a->boundary == b->boundary, "%s: boundary", why);
    ck_assert_msg(a->commands == b->commands, "%s: commands", why);
}

/* ------------------------------------------------------------------ */
/* Tables                                                              */
/* ------------------------------------------------------------------ */

/* An event a row wants. */
typedef struct {
    lem_smtp_ev_t ev;               /* NEED_MORE ends the list */
    const char   *data;             /* ERROR: the message */
    size_t        len;
    int           last;
    const char   *verb;             /* commands; "" for a SASL answer */
    apr_uint64_t  bdat_len;
    int           bdat_last;
    int           code;             /* replies */
    const char   *text;             /* replies */
    int           limit_hit;        /* errors */
} want_t;

typedef struct {
    const char *why;                /* the behaviour and its section */
    const char *in;
    size_t      in_len;
    unsigned    opts;               /* REFUSE_DATA, SASL */
    want_t      want[MAX_WANT];
} smtp_case_t;

#define IN(s) s, sizeof(s) - 1

#define W_LINE(d, verb) \
    { LEM_SMTP_LINE, d, sizeof(d) - 1, 1, verb, 0, 0, 0, NULL, 0 }
#define W_BDAT(d, n, lst) \
    { LEM_SMTP_LINE, d, sizeof(d) - 1, 1, "BDAT", n, lst, 0, NULL, 0 }
#define W_CONTENT(d, lst) \
    { LEM_SMTP_CONTENT, d, sizeof(d) - 1, lst, NULL, 0, 0, 0, NULL, 0 }
#define W_REPLY(d, lst, code, text) \
    { LEM_SMTP_LINE, d, sizeof(d) - 1, lst, NULL, 0, 0, code, text, 0 }
#define W_ERR(msg) \
    { LEM_SMTP_ERROR, msg, 0, 0, NULL, 0, 0, 0, NULL, 0 }
#define W_LIMIT(msg) \
    { LEM_SMTP_ERROR, msg, 0, 0, NULL, 0, 0, 0, NULL, 1 }

static void assert_event(const char *why, int i, const seen_t *s,
                         const want_t *w)
{
    ck_assert_msg(s->ev == w->ev, "%s: event %d type %d, want %d",
                  why, i, s->ev, w->ev);
    if (w->ev == LEM_SMTP_ERROR) {
        ck_assert_msg(strcmp(s->error, w->data) == 0
                      && s->limit_hit == w->limit_hit,
                      "%s: error \"%s\" (limit %d), want \"%s\"",
                      why, s->error, s->limit_hit, w->data);
        return;
    }
    ck_assert_msg(s->len == w->len && memcmp(s->data, w->data, w->len) == 0,
                  "%s: event %d data \"%.*s\"", why, i, (int)s->len,
                  s->data);
    ck_assert_msg(s->last == w->last, "%s: event %d last %d", why, i,
                  s->last);
    if (w->ev == LEM_SMTP_CONTENT) {
        return;
    }
    ck_assert_msg(!w->verb || (strcmp(s->verb, w->verb) == 0
                               && s->bdat_len == w->bdat_len
                               && s->bdat_last == w->bdat_last),
                  "%s: event %d verb \"%s\" bdat %llu %d", why, i,
                  s->verb, (unsigned long long)s->bdat_len, s->bdat_last);
    ck_assert_msg(!w->text || (s->code == w->code
                               && strcmp(s->text, w->text) == 0),
                  "%s: event %d code %d text \"%s\"", why, i, s->code,
                  s->text);
}

/* Non-zero if the wanted line is followed by content. */
static int starts_content(const want_t *w, unsigned opts)
{
    if (w->ev != LEM_SMTP_LINE || !w->verb) {
        return 0;
    }
    if (strcmp(w->verb, "DATA") == 0) {
        return !(opts & REFUSE_DATA);
    }
    return strcmp(w->verb, "BDAT") == 0;
}

static void assert_wanted(const smtp_case_t *c, const run_t *r)
{
    const want_t *want = c->want;
    int i, n = 0, boundary;
    unsigned commands = 0;
    size_t covered = 0;

    while (n < MAX_WANT && want[n].ev != LEM_SMTP_NEED_MORE) {
        covered += want[n].len;
        commands += want[n].verb && want[n].verb[0];
        n++;
    }
    ck_assert_msg(r->n == n, "%s: %d events, want %d", c->why, r->n, n);
    for (i = 0; i < n; i++) {
        assert_event(c->why, i, &r->ev[i], &want[i]);
    }

    /* at rest only if the input ends right after a command or content */
    boundary = n > 0 && want[n - 1].ev != LEM_SMTP_ERROR
               && want[n - 1].last && covered == c->in_len
               && !starts_content(&want[n - 1], c->opts);
    ck_assert_msg(r->boundary == boundary, "%s: at_boundary %d",
                  c->why, r->boundary);
    ck_assert_msg(want[n - 1].ev == LEM_SMTP_ERROR
                  || r->commands == commands,
                  "%s: %u commands", c->why, r->commands);
}

/* Feed a row whole and one byte at a time; both must match the row. */
static void check_row(const smtp_case_t *c, int is_reply)
{
    run_t *whole = malloc(sizeof(*whole));
    run_t *bytes = malloc(sizeof(*bytes));

    ck_assert_ptr_nonnull(whole);
    ck_assert_ptr_nonnull(bytes);
    run(whole, is_reply, c->opts, c->in, c->in_len, c->in_len);
    run(bytes, is_reply, c->opts, c->in, c->in_len, 1);
    assert_same_runs(c->why, whole, bytes);
    assert_wanted(c, whole);
    free(whole);
    free(bytes);
}

/* ------------------------------------------------------------------ */
/* Command lines                                                       */
/* ------------------------------------------------------------------ */

static const smtp_case_t line_cases[] = {
    /* RFC 5321 4.1.1.2: the verb is the first word */
    { "the verb is the word before SP", IN("MAIL FROM:<a@b>\r\n"), 0,
      { W_LINE("MAIL FROM:<a@b>\r\n", "MAIL") } },
    /* RFC 5321 2.4: verbs are not case sensitive */
    { "a lower-case verb is upper-cased", IN("rcpt TO:<c@d>\r\n"), 0,
      { W_LINE("rcpt TO:<c@d>\r\n", "RCPT") } },
    { "a mixed-case verb is upper-cased", IN("EhLo mx.example\r\n"), 0,
      { W_LINE("EhLo mx.example\r\n", "EHLO") } },
    /* RFC 5321 4.1.1.10 */
    { "a verb alone is a line", IN("QUIT\r\n"), 0,
      { W_LINE("QUIT\r\n", "QUIT") } },
    /* RFC 3207 4 */
    { "an extension verb is a verb", IN("STARTTLS\r\n"), 0,
      { W_LINE("STARTTLS\r\n", "STARTTLS") } },
    /* RFC 5321 4.1.1: arguments are the server's to judge */
    { "arguments are not judged", IN("NOOP  (x) \t{3}\r\n"), 0,
      { W_LINE("NOOP  (x) \t{3}\r\n", "NOOP") } },
    /* lem_smtp.h: LEM_SMTP_VERB_MAX */
    { "the longest verb is accepted", IN(C16 "\r\n"), 0,
      { W_LINE(C16 "\r\n", "ABCDEFGHIJKLMNOP") } },
    /* lem_smtp.h: max_line, CRLF included */
    { "a line of max_line octets is accepted",
      IN("NOOP " C16 C16 C16 "abcdefghi\r\n"), 0,
      { W_LINE("NOOP " C16 C16 C16 "abcdefghi\r\n", "NOOP") } },
};

static const smtp_case_t refused_line_cases[] = {
    /* RFC 5321 4.1.1: a command is a verb, then arguments */
    { "an empty line is refused", IN("\r\n"), 0,
      { W_ERR("empty line") } },
    { "a line starting with SP is refused", IN(" NOOP\r\n"), 0,
      { W_ERR("missing verb") } },
    { "a digit in the verb is refused", IN("MA1L FROM:<a@b>\r\n"), 0,
      { W_ERR("invalid verb") } },
    { "a colon in the verb is refused", IN("MAIL:<a@b>\r\n"), 0,
      { W_ERR("invalid verb") } },
    { "a hyphen in the verb is refused", IN("X-FOO\r\n"), 0,
      { W_ERR("invalid verb") } },
    /* lem_smtp.h: LEM_SMTP_VERB_MAX */
    { "a longer verb is refused", IN(C16 "q\r\n"), 0,
      { W_ERR("verb too long") } },
    /* RFC 5321 2.4: commands are US-ASCII */
    { "an 8-bit byte in a command is refused",
      IN("MAIL FROM:<\xe9@b>\r\n"), 0,
      { W_ERR("8-bit byte in command line") } },
    { "a NUL in a command is refused", IN("NO\0OP\r\n"), 0,
      { W_ERR("NUL in command line") } },
    /* RFC 5321 2.3.8: CR and LF only as CRLF */
    { "a CR without LF is refused", IN("NOOP\rx\r\n"), 0,
      { W_ERR("CR not followed by LF") } },
    { "a CR before CRLF is refused", IN("NOOP\r\r\n"), 0,
      { W_ERR("CR not followed by LF") } },
    { "an LF without CR is refused", IN("NOOP\n"), 0,
      { W_ERR("LF without CR") } },
    { "a bare LF alone is refused", IN("\n"), 0,
      { W_ERR("LF without CR") } },
    /* lem_smtp.h: max_line */
    { "a line one octet too long is refused",
      IN("NOOP " C16 C16 C16 "abcdefghij\r\n"), 0,
      { W_LIMIT("line too long") } },
    { "a line too long is refused before its end",
      IN("NOOP " C16 C16 C16 C16), 0,
      { W_LIMIT("line too long") } },
};

START_TEST(command_lines_are_read_with_their_verb)
{
    check_row(&line_cases[_i], 0);
}
END_TEST

START_TEST(malformed_command_lines_are_refused)
{
    check_row(&refused_line_cases[_i], 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* DATA content                                                        */
/* ------------------------------------------------------------------ */

static const smtp_case_t data_cases[] = {
    /* RFC 5321 4.1.1.4: content ends with CRLF "." CRLF */
    { "content ends at the end-of-data line",
      IN("DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n"), 0,
      { W_LINE("DATA\r\n", "DATA"),
        W_CONTENT("Subject: x\r\n\r\nhi\r\n.\r\n", 1) } },
    /* RFC 5321 4.1.1.4: the first line of content counts */
    { "an empty message is the end-of-data line alone",
      IN("DATA\r\n.\r\n"), 0,
      { W_LINE("DATA\r\n", "DATA"), W_CONTENT(".\r\n", 1) } },
    /* RFC 5321 4.5.2: a leading dot is doubled */
    { "a stuffed line \"..\" is content", IN("DATA\r\n..\r\n.\r\n"), 0,
      { W_LINE("DATA\r\n", "DATA"), W_CONTENT("..\r\n.\r\n", 1) } },
    { "a stuffed first line is kept as written",
      IN("DATA\r\n..x\r\nb\r\n.\r\n"), 0,
      { W_LINE("DATA\r\n", "DATA"),
        W_CONTENT("..x\r\nb\r\n.\r\n", 1) } },
    { "a stuffed later line is kept as written",
      IN("DATA\r\na\r\n...\r\n.\r\n"), 0,
      { W_LINE("DATA\r\n", "DATA"), W_CONTENT("a\r\n...\r\n.\r\n", 1) } },
    { "a dot ending a line is content", IN("DATA\r\na.\r\n.\r\n"), 0,
      { W_LINE("DATA\r\n", "DATA"), W_CONTENT("a.\r\n.\r\n", 1) } },
    /* RFC 6152 3: 8BITMIME content */
    { "8-bit octets pass in content", IN("DATA\r\n\xe9t\xe9\xff\r\n.\r\n"),
      0,
      { W_LINE("DATA\r\n", "DATA"),
        W_CONTENT("\xe9t\xe9\xff\r\n.\r\n", 1) } },
    /* RFC 5321 4.1.1.4: only CRLF "." CRLF ends content */
    { "NUL, bare CR and bare LF pass in content",
      IN("DATA\r\na\0b\rc\nd\r\n.\r\n"), 0,
      { W_LINE("DATA\r\n", "DATA"),
        W_CONTENT("a\0b\rc\nd\r\n.\r\n", 1) } },
    { "a dot after a bare LF does not end content",
      IN("DATA\r\na\n.\r\nb\r\n.\r\n"), 0,
      { W_LINE("DATA\r\n", "DATA"),
        W_CONTENT("a\n.\r\nb\r\n.\r\n", 1) } },
    { "a dot after a bare CR does not end content",
      IN("DATA\r\na\r.\r\nb\r\n.\r\n"), 0,
      { W_LINE("DATA\r\n", "DATA"),
        W_CONTENT("a\r.\r\nb\r\n.\r\n", 1) } },
    { "a dot and a bare LF do not end content",
      IN("DATA\r\na\r\n.\nb\r\n.\r\n"), 0,
      { W_LINE("DATA\r\n", "DATA"),
        W_CONTENT("a\r\n.\nb\r\n.\r\n", 1) } },
    { "a dot, CR, CRLF does not end content but starts a line",
      IN("DATA\r\n.\r\r\n.\r\n"), 0,
      { W_LINE("DATA\r\n", "DATA"), W_CONTENT(".\r\r\n.\r\n", 1) } },
    { "CR, CRLF before the dot ends content",
      IN("DATA\r\na\r\r\n.\r\n"), 0,
      { W_LINE("DATA\r\n", "DATA"), W_CONTENT("a\r\r\n.\r\n", 1) } },
    /* RFC 5321 4.1.1.4: the server judges the arguments of DATA */
    { "DATA with an argument is still followed by content",
      IN("DATA x\r\n.\r\n"), 0,
      { W_LINE("DATA x\r\n", "DATA"), W_CONTENT(".\r\n", 1) } },
    { "a lower-case data is DATA", IN("data\r\nhi\r\n.\r\n"), 0,
      { W_LINE("data\r\n", "DATA"), W_CONTENT("hi\r\n.\r\n", 1) } },
    { "DATAX is no DATA", IN("DATAX\r\n.\r\n"), 0,
      { W_LINE("DATAX\r\n", "DATAX"), W_ERR("invalid verb") } },
    /* RFC 5321 4.1.1.4: commands follow the end of the content */
    { "commands follow the content", IN("DATA\r\nhi\r\n.\r\nQUIT\r\n"), 0,
      { W_LINE("DATA\r\n", "DATA"), W_CONTENT("hi\r\n.\r\n", 1),
        W_LINE("QUIT\r\n", "QUIT") } },
    { "content cut short is no boundary", IN("DATA\r\nhi\r\n.\r"), 0,
      { W_LINE("DATA\r\n", "DATA"), W_CONTENT("hi\r\n.\r", 0) } },
    /* lem_smtp.h: max_content, "." CRLF not counted */
    { "a message of max_content octets is accepted",
      IN("DATA\r\n" C16 C16 C16 "abcdefghijklmn\r\n.\r\n"), 0,
      { W_LINE("DATA\r\n", "DATA"),
        W_CONTENT(C16 C16 C16 "abcdefghijklmn\r\n.\r\n", 1) } },
    { "a message one octet too large is refused",
      IN("DATA\r\n" C16 C16 C16 "abcdefghijklmno\r\n.\r\n"), 0,
      { W_LINE("DATA\r\n", "DATA"),
        W_CONTENT(C16 C16 C16 "abcdefghijklmno\r", 0),
        W_LIMIT("message too large") } },
    { "a stuffed dot past max_content is refused",
      IN("DATA\r\n" C16 C16 C16 "abcdefghijklmn\r\n..\r\n.\r\n"), 0,
      { W_LINE("DATA\r\n", "DATA"),
        W_CONTENT(C16 C16 C16 "abcdefghijklmn\r\n.", 0),
        W_LIMIT("message too large") } },
};

START_TEST(data_content_runs_to_the_end_of_data_line)
{
    check_row(&data_cases[_i], 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* BDAT chunks                                                         */
/* ------------------------------------------------------------------ */

static const smtp_case_t bdat_cases[] = {
    /* RFC 3030 2: BDAT n, then exactly n octets */
    { "chunks with and without LAST", IN("BDAT 5\r\nhelloBDAT 3 LAST\r\nabc"),
      0,
      { W_BDAT("BDAT 5\r\n", 5, 0), W_CONTENT("hello", 1),
        W_BDAT("BDAT 3 LAST\r\n", 3, 1), W_CONTENT("abc", 1) } },
    /* RFC 3030 2: chunk octets are not scanned for end-of-data */
    { "an end-of-data line inside a chunk is content",
      IN("BDAT 5 LAST\r\n.\r\n\r\nQUIT\r\n"), 0,
      { W_BDAT("BDAT 5 LAST\r\n", 5, 1), W_CONTENT(".\r\n\r\n", 1),
        W_LINE("QUIT\r\n", "QUIT") } },
    /* RFC 3030 3: BINARYMIME */
    { "any octets pass in a chunk", IN("BDAT 4\r\n\0\xff\r\n"), 0,
      { W_BDAT("BDAT 4\r\n", 4, 0), W_CONTENT("\0\xff\r\n", 1) } },
    /* RFC 3030 2: "BDAT 0 LAST" ends a message with no more octets */
    { "BDAT 0 LAST gives one empty last piece", IN("BDAT 0 LAST\r\n"), 0,
      { W_BDAT("BDAT 0 LAST\r\n", 0, 1), W_CONTENT("", 1) } },
    { "BDAT 0 is followed by the next command",
      IN("BDAT 0\r\nBDAT 2 LAST\r\nhi"), 0,
      { W_BDAT("BDAT 0\r\n", 0, 0), W_CONTENT("", 1),
        W_BDAT("BDAT 2 LAST\r\n", 2, 1), W_CONTENT("hi", 1) } },
    /* RFC 5321 2.4: keywords are not case sensitive */
    { "a lower-case bdat and last are read", IN("bdat 3 last\r\nabc"), 0,
      { W_BDAT("bdat 3 last\r\n", 3, 1), W_CONTENT("abc", 1) } },
    /* RFC 3030 4: chunk-size ::= 1*DIGIT */
    { "leading zeros are a number", IN("BDAT 007\r\n1234567"), 0,
      { W_BDAT("BDAT 007\r\n", 7, 0), W_CONTENT("1234567", 1) } },
    { "a chunk cut short is no boundary", IN("BDAT 4\r\nab"), 0,
      { W_BDAT("BDAT 4\r\n", 4, 0), W_CONTENT("ab", 0) } },
    /* lem_smtp.h: max_content applies to each chunk */
    { "chunks of max_content each are accepted",
      IN("BDAT 64\r\n" C16 C16 C16 C16 "BDAT 64 LAST\r\n"), 0,
      { W_BDAT("BDAT 64\r\n", 64, 0), W_CONTENT(C16 C16 C16 C16, 1),
        W_BDAT("BDAT 64 LAST\r\n", 64, 1) } },
    { "a chunk larger than max_content is refused", IN("BDAT 65\r\n"), 0,
      { W_LIMIT("BDAT chunk too large") } },
    { "the largest 64-bit chunk is refused as too large",
      IN("BDAT 18446744073709551615\r\n"), 0,
      { W_LIMIT("BDAT chunk too large") } },
};

static const smtp_case_t refused_bdat_cases[] = {
    /* RFC 3030 4: bdat-cmd ::= "BDAT" SP chunk-size [SP end-marker] */
    { "BDAT without a size is refused", IN("BDAT\r\n"), 0,
      { W_ERR("malformed BDAT") } },
    { "BDAT and SP alone are refused", IN("BDAT \r\n"), 0,
      { W_ERR("malformed BDAT") } },
    { "a size of letters is refused", IN("BDAT x\r\n"), 0,
      { W_ERR("malformed BDAT") } },
    { "a size with a letter is refused", IN("BDAT 1x\r\n"), 0,
      { W_ERR("malformed BDAT") } },
    { "a negative size is refused", IN("BDAT -1\r\n"), 0,
      { W_ERR("malformed BDAT") } },
    { "two SP before the size are refused", IN("BDAT  1\r\n"), 0,
      { W_ERR("malformed BDAT") } },
    { "a trailing SP is refused", IN("BDAT 1 \r\n"), 0,
      { W_ERR("malformed BDAT") } },
    { "another end marker is refused", IN("BDAT 1 LASTX\r\n"), 0,
      { W_ERR("malformed BDAT") } },
    { "text after LAST is refused", IN("BDAT 1 LAST x\r\n"), 0,
      { W_ERR("malformed BDAT") } },
    { "a size past 64 bits is refused",
      IN("BDAT 18446744073709551616\r\n"), 0,
      { W_ERR("malformed BDAT") } },
};

START_TEST(bdat_chunks_carry_exactly_their_octets)
{
    check_row(&bdat_cases[_i], 0);
}
END_TEST

START_TEST(malformed_bdat_is_refused)
{
    check_row(&refused_bdat_cases[_i], 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Batches, refused DATA, SASL answers                                 */
/* ------------------------------------------------------------------ */

static const smtp_case_t batch_cases[] = {
    /* RFC 2920 3, RFC 2442: a whole transaction in one buffer */
    { "a pipelined transaction with DATA comes out in order",
      IN("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
         "S: t\r\n\r\n..x\r\n\xe9t\xe9\r\n.\r\nQUIT\r\n"), 0,
      { W_LINE("MAIL FROM:<a@b>\r\n", "MAIL"),
        W_LINE("RCPT TO:<c@d>\r\n", "RCPT"),
        W_LINE("DATA\r\n", "DATA"),
        W_CONTENT("S: t\r\n\r\n..x\r\n\xe9t\xe9\r\n.\r\n", 1),
        W_LINE("QUIT\r\n", "QUIT") } },
    /* RFC 3030 2, RFC 2920 3 */
    { "a pipelined transaction with BDAT comes out in order",
      IN("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 3 LAST\r\nab\nRSET\r\n"),
      0,
      { W_LINE("MAIL FROM:<a@b>\r\n", "MAIL"),
        W_LINE("RCPT TO:<c@d>\r\n", "RCPT"),
        W_BDAT("BDAT 3 LAST\r\n", 3, 1), W_CONTENT("ab\n", 1),
        W_LINE("RSET\r\n", "RSET") } },
    { "two messages in one buffer",
      IN("DATA\r\na\r\n.\r\nDATA\r\n.\r\n"), 0,
      { W_LINE("DATA\r\n", "DATA"), W_CONTENT("a\r\n.\r\n", 1),
        W_LINE("DATA\r\n", "DATA"), W_CONTENT(".\r\n", 1) } },
    { "a bad line follows a good one", IN("NOOP\r\nbad\n"), 0,
      { W_LINE("NOOP\r\n", "NOOP"), W_ERR("LF without CR") } },
    { "a line cut short is no boundary", IN("NOOP\r\nRSE"), 0,
      { W_LINE("NOOP\r\n", "NOOP") } },
    /* RFC 5321 3.3: after a 554 to DATA no content follows */
    { "a refused DATA is followed by commands",
      IN("DATA\r\nRSET\r\n"), REFUSE_DATA,
      { W_LINE("DATA\r\n", "DATA"), W_LINE("RSET\r\n", "RSET") } },
    { "after a refused DATA a dot is no end of data",
      IN("DATA\r\n.\r\n"), REFUSE_DATA,
      { W_LINE("DATA\r\n", "DATA"), W_ERR("invalid verb") } },
    /* RFC 4954 4: after 334 the client sends a base64 answer */
    { "a SASL answer is a line without a verb",
      IN("AUTH LOGIN\r\ndXNlcg==\r\nNOOP\r\n"), SASL,
      { W_LINE("AUTH LOGIN\r\n", "AUTH"), W_LINE("dXNlcg==\r\n", ""),
        W_LINE("NOOP\r\n", "NOOP") } },
    { "a SASL cancel \"*\" is an answer", IN("AUTH PLAIN\r\n*\r\n"), SASL,
      { W_LINE("AUTH PLAIN\r\n", "AUTH"), W_LINE("*\r\n", "") } },
    { "an empty SASL answer is not judged", IN("AUTH PLAIN\r\n\r\n"), SASL,
      { W_LINE("AUTH PLAIN\r\n", "AUTH"), W_LINE("\r\n", "") } },
    { "a SASL answer DATA starts no content",
      IN("AUTH LOGIN\r\nDATA\r\nQUIT\r\n"), SASL,
      { W_LINE("AUTH LOGIN\r\n", "AUTH"), W_LINE("DATA\r\n", ""),
        W_LINE("QUIT\r\n", "QUIT") } },
    { "an 8-bit SASL answer is refused", IN("AUTH LOGIN\r\nd\xe9\r\n"),
      SASL,
      { W_LINE("AUTH LOGIN\r\n", "AUTH"),
        W_ERR("8-bit byte in command line") } },
    { "a SASL answer with NUL is refused", IN("AUTH LOGIN\r\na\0\r\n"),
      SASL,
      { W_LINE("AUTH LOGIN\r\n", "AUTH"), W_ERR("NUL in command line") } },
    { "a SASL answer with a bare LF is refused",
      IN("AUTH LOGIN\r\nab\ncd\r\n"), SASL,
      { W_LINE("AUTH LOGIN\r\n", "AUTH"), W_ERR("LF without CR") } },
    { "a SASL answer too long is refused",
      IN("AUTH LOGIN\r\n" C16 C16 C16 C16 "\r\n"), SASL,
      { W_LINE("AUTH LOGIN\r\n", "AUTH"), W_LIMIT("line too long") } },
};

START_TEST(commands_in_one_buffer_come_out_in_order)
{
    check_row(&batch_cases[_i], 0);
}
END_TEST

/* RFC 5321 4.1.1.4: the end of data, one octet per feed */
START_TEST(end_of_data_split_over_one_byte_feeds_ends_content)
{
    static const char *const feeds[] = { "x", "\r", "\n", ".", "\r", "\n" };
    char line[MAX_LINE];
    lem_smtp_cmd_t p;
    lem_smtp_piece_t pc;
    apr_size_t used;
    int i;

    lem_smtp_cmd_init(&p, line, sizeof(line), MAX_CONTENT);
    ck_assert_int_eq(lem_smtp_cmd_next(&p, "DATA\r\n", 6, &used, &pc),
                     LEM_SMTP_LINE);
    for (i = 0; i < N_ROWS(feeds); i++) {
        ck_assert(!lem_smtp_cmd_at_boundary(&p));
        ck_assert_int_eq(lem_smtp_cmd_next(&p, feeds[i], 1, &used, &pc),
                         LEM_SMTP_CONTENT);
        ck_assert_uint_eq(used, 1);
        ck_assert_ptr_eq(pc.data, feeds[i]);
        ck_assert_uint_eq(pc.len, 1);
        ck_assert_int_eq(pc.last, i == N_ROWS(feeds) - 1);
        ck_assert_int_eq(lem_smtp_cmd_next(&p, "", 0, &used, &pc),
                         LEM_SMTP_NEED_MORE);
    }
    ck_assert(lem_smtp_cmd_at_boundary(&p));
}
END_TEST

/* Content pieces end where a feed ends, even inside CRLF "." CRLF. */
START_TEST(content_pieces_point_into_the_input)
{
    static const char in[] = "DATA\r\nhi\r\n.\r\nQUIT\r\n";
    static const char *const feeds[] = { "hi\r", "\n.", "\r\nQUIT\r\n" };
    static const size_t want[] = { 3, 2, 2 };
    char line[MAX_LINE];
    lem_smtp_cmd_t p;
    lem_smtp_piece_t pc;
    apr_size_t used;
    int i;

    lem_smtp_cmd_init(&p, line, sizeof(line), MAX_CONTENT);
    ck_assert_int_eq(lem_smtp_cmd_next(&p, in, sizeof(in) - 1, &used, &pc),
                     LEM_SMTP_LINE);
    ck_assert_int_eq(lem_smtp_cmd_next(&p, in + used, sizeof(in) - 1 - used,
                                       &used, &pc), LEM_SMTP_CONTENT);
    ck_assert_ptr_eq(pc.data, in + 6);
    ck_assert(pc.len == 7 && pc.last);

    lem_smtp_cmd_init(&p, line, sizeof(line), MAX_CONTENT);
    lem_smtp_cmd_next(&p, in, 6, &used, &pc);
    for (i = 0; i < N_ROWS(feeds); i++) {
        ck_assert_int_eq(lem_smtp_cmd_next(&p, feeds[i], strlen(feeds[i]),
                                           &used, &pc), LEM_SMTP_CONTENT);
        ck_assert_ptr_eq(pc.data, feeds[i]);
        ck_assert_uint_eq(pc.len, want[i]);
        ck_assert_uint_eq(used, want[i]);
        ck_assert_int_eq(pc.last, i == 2);
    }
    ck_assert(lem_smtp_cmd_at_boundary(&p));
}
END_TEST

/* RFC 3030 2: the empty chunk is said once, consuming nothing. */
START_TEST(bdat_zero_gives_one_empty_last_piece)
{
    char line[MAX_LINE];
    lem_smtp_cmd_t p;
    lem_smtp_piece_t pc;
    apr_size_t used;

    lem_smtp_cmd_init(&p, line, sizeof(line), MAX_CONTENT);
    ck_assert_int_eq(lem_smtp_cmd_next(&p, "BDAT 0 LAST\r\nQUIT\r\n", 19,
                                       &used, &pc), LEM_SMTP_LINE);
    ck_assert_uint_eq(used, 13);
    ck_assert(!lem_smtp_cmd_at_boundary(&p));
    ck_assert_int_eq(lem_smtp_cmd_next(&p, "QUIT\r\n", 6, &used, &pc),
                     LEM_SMTP_CONTENT);
    ck_assert(used == 0 && pc.len == 0 && pc.last);
    ck_assert(lem_smtp_cmd_at_boundary(&p));
    ck_assert_int_eq(lem_smtp_cmd_next(&p, "QUIT\r\n", 6, &used, &pc),
                     LEM_SMTP_LINE);
    ck_assert_str_eq(p.verb, "QUIT");
    ck_assert_uint_eq(p.bdat_len, 0);
    ck_assert_int_eq(p.bdat_last, 0);
}
END_TEST

START_TEST(at_boundary_is_true_only_between_commands)
{
    static const struct {
        const char *in;
        int         boundary;
    } steps[] = {
        { "NOO", 0 }, { "P\r\n", 1 },
        { "DATA\r\n", 0 }, { "x\r\n.", 0 }, { "\r\n", 1 },
        { "BDAT 2\r\n", 0 }, { "a", 0 }, { "b", 1 },
    };
    char line[MAX_LINE];
    lem_smtp_cmd_t p;
    lem_smtp_piece_t pc;
    apr_size_t used;
    int i;

    lem_smtp_cmd_init(&p, line, sizeof(line), MAX_CONTENT);
    ck_assert(lem_smtp_cmd_at_boundary(&p));
    for (i = 0; i < N_ROWS(steps); i++) {
        const char *in = steps[i].in;
        size_t len = strlen(in);

        while (lem_smtp_cmd_next(&p, in, len, &used, &pc)
               != LEM_SMTP_NEED_MORE) {
            in += used;
            len -= used;
        }
        ck_assert_msg(lem_smtp_cmd_at_boundary(&p) == steps[i].boundary,
                      "after \"%s\"", steps[i].in);
    }
}
END_TEST

/* lem_smtp.h: no_content only right after the DATA line */
START_TEST(no_content_is_ignored_once_content_has_begun)
{
    char line[MAX_LINE];
    lem_smtp_cmd_t p;
    lem_smtp_piece_t pc;
    apr_size_t used;

    lem_smtp_cmd_init(&p, line, sizeof(line), MAX_CONTENT);
    lem_smtp_cmd_no_content(&p);
    ck_assert(lem_smtp_cmd_at_boundary(&p));
    lem_smtp_cmd_next(&p, "DATA\r\nQU", 8, &used, &pc);
    ck_assert_int_eq(lem_smtp_cmd_next(&p, "QU", 2, &used, &pc),
                     LEM_SMTP_CONTENT);
    lem_smtp_cmd_no_content(&p);
    ck_assert(!lem_smtp_cmd_at_boundary(&p));
    ck_assert_int_eq(lem_smtp_cmd_next(&p, "IT\r\n", 4, &used, &pc),
                     LEM_SMTP_CONTENT);
    ck_assert(!pc.last);
}
END_TEST

/* lem_smtp.h: expect_line only at a boundary */
START_TEST(expect_line_is_ignored_inside_a_line)
{
    char line[MAX_LINE];
    lem_smtp_cmd_t p;
    lem_smtp_piece_t pc;
    apr_size_t used;

    lem_smtp_cmd_init(&p, line, sizeof(line), MAX_CONTENT);
    lem_smtp_cmd_next(&p, "NO", 2, &used, &pc);
    lem_smtp_cmd_expect_line(&p);
    ck_assert_int_eq(lem_smtp_cmd_next(&p, "OP\r\n", 4, &used, &pc),
                     LEM_SMTP_LINE);
    ck_assert_str_eq(p.verb, "NOOP");
    ck_assert_uint_eq(p.commands, 1);
}
END_TEST

/* RFC 4954 4: answers are no commands, so they are not counted. */
START_TEST(commands_are_counted_without_sasl_answers)
{
    static const char in[] = "EHLO x\r\nAUTH LOGIN\r\nZnJlZA==\r\n"
                             "cHc=\r\nDATA\r\n.\r\nQUIT\r\n";
    char line[MAX_LINE];
    const char *s = in;
    size_t len = sizeof(in) - 1;
    lem_smtp_cmd_t p;
    lem_smtp_piece_t pc;
    apr_size_t used;
    int answers = 0;

    lem_smtp_cmd_init(&p, line, sizeof(line), MAX_CONTENT);
    while (lem_smtp_cmd_next(&p, s, len, &used, &pc) != LEM_SMTP_NEED_MORE) {
        s += used;
        len -= used;
        /* two 334 continuations: user name, then password */
        if (p.verb[0] == '\0' || strcmp(p.verb, "AUTH") == 0) {
            if (answers++ < 2) {
                lem_smtp_cmd_expect_line(&p);
            }
        }
    }
    ck_assert_uint_eq(p.commands, 4);
    ck_assert(lem_smtp_cmd_at_boundary(&p));
}
END_TEST

START_TEST(command_parser_stays_in_error)
{
    char line[MAX_LINE];
    lem_smtp_cmd_t p;
    lem_smtp_piece_t pc;
    apr_size_t used;

    lem_smtp_cmd_init(&p, line, sizeof(line), MAX_CONTENT);
    ck_assert_int_eq(lem_smtp_cmd_next(&p, "NOOP\n", 5, &used, &pc),
                     LEM_SMTP_ERROR);
    ck_assert_str_eq(p.error, "LF without CR");
    ck_assert(!p.limit_hit);
    ck_assert_int_eq(lem_smtp_cmd_next(&p, "NOOP\r\n", 6, &used, &pc),
                     LEM_SMTP_ERROR);
    ck_assert_uint_eq(used, 0);
    ck_assert(!lem_smtp_cmd_at_boundary(&p));
    lem_smtp_cmd_no_content(&p);
    lem_smtp_cmd_expect_line(&p);
    ck_assert_int_eq(lem_smtp_cmd_next(&p, "x\r\n", 3, &used, &pc),
                     LEM_SMTP_ERROR);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Replies                                                             */
/* ------------------------------------------------------------------ */

static const smtp_case_t reply_cases[] = {
    /* RFC 5321 4.2: Reply-code [ SP textstring ] CRLF */
    { "a one-line reply", IN("220 mx.example ESMTP\r\n"), 0,
      { W_REPLY("220 mx.example ESMTP\r\n", 1, 220, "mx.example ESMTP") } },
    { "a code followed by CRLF has no text", IN("250\r\n"), 0,
      { W_REPLY("250\r\n", 1, 250, "") } },
    { "a code and SP have empty text", IN("250 \r\n"), 0,
      { W_REPLY("250 \r\n", 1, 250, "") } },
    /* RFC 5321 4.2.1: Reply-code "-" [ textstring ] CRLF */
    { "an EHLO reply names its extensions",
      IN("250-mx.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
         "250 SIZE 1000\r\n"), 0,
      { W_REPLY("250-mx.example\r\n", 0, 250, "mx.example"),
        W_REPLY("250-PIPELINING\r\n", 0, 250, "PIPELINING"),
        W_REPLY("250-8BITMIME\r\n", 0, 250, "8BITMIME"),
        W_REPLY("250 SIZE 1000\r\n", 1, 250, "SIZE 1000") } },
    { "a continuation line may have no text", IN("250-\r\n250 ok\r\n"), 0,
      { W_REPLY("250-\r\n", 0, 250, ""),
        W_REPLY("250 ok\r\n", 1, 250, "ok") } },
    /* RFC 5321 4.2.1: 1yz, positive preliminary */
    { "a 1yz reply is let through", IN("110 wait\r\n"), 0,
      { W_REPLY("110 wait\r\n", 1, 110, "wait") } },
    /* RFC 3463: enhanced status codes are text */
    { "a 5yz reply with a status code", IN("554 5.7.1 no\r\n"), 0,
      { W_REPLY("554 5.7.1 no\r\n", 1, 554, "5.7.1 no") } },
    /* RFC 2920 3.2: pipelined replies come back in order */
    { "replies in one buffer come out in order",
      IN("250 ok\r\n250-a\r\n250 b\r\n354 go\r\n"), 0,
      { W_REPLY("250 ok\r\n", 1, 250, "ok"),
        W_REPLY("250-a\r\n", 0, 250, "a"),
        W_REPLY("250 b\r\n", 1, 250, "b"),
        W_REPLY("354 go\r\n", 1, 354, "go") } },
    /* RFC 4954 4: a 334 carries base64, and may be empty */
    { "a 334 continuation", IN("334 VXNlcm5hbWU6\r\n334 \r\n"), 0,
      { W_REPLY("334 VXNlcm5hbWU6\r\n", 1, 334, "VXNlcm5hbWU6"),
        W_REPLY("334 \r\n", 1, 334, "") } },
    { "a reply cut short is no boundary", IN("250-a\r\n250 b"), 0,
      { W_REPLY("250-a\r\n", 0, 250, "a") } },
    /* RFC 6531 3.7.4: text may be UTF-8 */
    { "8-bit text is not judged", IN("550 \xc3\xa9\r\n"), 0,
      { W_REPLY("550 \xc3\xa9\r\n", 1, 550, "\xc3\xa9") } },
};

static const smtp_case_t refused_reply_cases[] = {
    /* RFC 5321 4.2: Reply-code = %x32-35 %x30-35 %x30-39 */
    { "two digits are refused", IN("25\r\n"), 0,
      { W_ERR("invalid reply code") } },
    { "an empty line is refused", IN("\r\n"), 0,
      { W_ERR("invalid reply code") } },
    { "a letter in the code is refused", IN("25a ok\r\n"), 0,
      { W_ERR("invalid reply code") } },
    { "a first digit 0 is refused", IN("050 ok\r\n"), 0,
      { W_ERR("invalid reply code") } },
    { "a first digit 6 is refused", IN("650 ok\r\n"), 0,
      { W_ERR("invalid reply code") } },
    { "four digits are refused", IN("2500 ok\r\n"), 0,
      { W_ERR("invalid reply separator") } },
    { "another separator is refused", IN("250_ok\r\n"), 0,
      { W_ERR("invalid reply separator") } },
    /* RFC 5321 4.2.1: one code for all lines of a reply */
    { "a reply whose lines change code is refused",
      IN("250-a\r\n251 b\r\n"), 0,
      { W_REPLY("250-a\r\n", 0, 250, "a"),
        W_ERR("reply code changed within a reply") } },
    { "a continuation changing code is refused",
      IN("250-a\r\n550-b\r\n550 c\r\n"), 0,
      { W_REPLY("250-a\r\n", 0, 250, "a"),
        W_ERR("reply code changed within a reply") } },
    /* RFC 5321 2.3.8: CRLF only */
    { "a CR without LF is refused", IN("250 o\rk\r\n"), 0,
      { W_ERR("CR not followed by LF") } },
    { "an LF without CR is refused", IN("250 ok\n"), 0,
      { W_ERR("LF without CR") } },
};

START_TEST(replies_are_read_with_their_code_and_text)
{
    check_row(&reply_cases[_i], 1);
}
END_TEST

START_TEST(malformed_replies_are_refused)
{
    check_row(&refused_reply_cases[_i], 1);
}
END_TEST

/* Fills `buf` with one reply line of `len` octets, CRLF included. */
static void long_reply(char *buf, size_t len)
{
    memset(buf, 'x', len);
    memcpy(buf, "250 ", 4);
    memcpy(buf + len - 2, "\r\n", 2);
}

/* lem_smtp.h: LEM_SMTP_REPLY_MAX, CRLF included */
START_TEST(reply_line_of_max_length_is_accepted)
{
    static char in[LEM_SMTP_REPLY_MAX];
    lem_smtp_reply_t *p = malloc(sizeof(*p));
    lem_smtp_piece_t pc;
    apr_size_t used;

    ck_assert_ptr_nonnull(p);
    long_reply(in, sizeof(in));
    lem_smtp_reply_init(p);
    ck_assert_int_eq(lem_smtp_reply_next(p, in, sizeof(in), &used, &pc),
                     LEM_SMTP_LINE);
    ck_assert(used == sizeof(in) && pc.len == sizeof(in) && pc.last);
    ck_assert_uint_eq(p->text_len, sizeof(in) - 6);
    ck_assert_ptr_eq(p->text, pc.data + 4);
    free(p);
}
END_TEST

START_TEST(reply_line_longer_than_max_is_refused)
{
    static char in[LEM_SMTP_REPLY_MAX + 1];
    lem_smtp_reply_t *p = malloc(sizeof(*p));
    lem_smtp_piece_t pc;
    apr_size_t used;

    ck_assert_ptr_nonnull(p);
    long_reply(in, sizeof(in));
    lem_smtp_reply_init(p);
    ck_assert_int_eq(lem_smtp_reply_next(p, in, sizeof(in), &used, &pc),
                     LEM_SMTP_ERROR);
    ck_assert_str_eq(p->error, "reply line too long");
    ck_assert_int_eq(lem_smtp_reply_next(p, "250 ok\r\n", 8, &used, &pc),
                     LEM_SMTP_ERROR);
    ck_assert_uint_eq(used, 0);
    free(p);
}
END_TEST

/* RFC 5321 4.2.1: a reply ends only with its last line. */
START_TEST(reply_at_boundary_only_after_the_last_line)
{
    lem_smtp_reply_t p;
    lem_smtp_piece_t pc;
    apr_size_t used;

    lem_smtp_reply_init(&p);
    ck_assert(lem_smtp_reply_at_boundary(&p));
    lem_smtp_reply_next(&p, "250-a\r\n", 7, &used, &pc);
    ck_assert(!pc.last && !lem_smtp_reply_at_boundary(&p));
    lem_smtp_reply_next(&p, "250 b", 5, &used, &pc);
    ck_assert(!lem_smtp_reply_at_boundary(&p));
    lem_smtp_reply_next(&p, "\r\n", 2, &used, &pc);
    ck_assert(pc.last && lem_smtp_reply_at_boundary(&p));
}
END_TEST

/* ------------------------------------------------------------------ */
/* EHLO keywords                                                       */
/* ------------------------------------------------------------------ */

static const struct {
    const char *why;
    const char *text;
    size_t      len;
    const char *keyword;
    int         has;
} ehlo_cases[] = {
    /* RFC 2920 2 */
    { "the keyword alone", IN("PIPELINING"), "PIPELINING", 1 },
    /* RFC 5321 2.4: keywords are not case sensitive */
    { "the keyword in lower case", IN("pipelining"), "PIPELINING", 1 },
    { "a lower-case keyword asked", IN("PIPELINING"), "pipelining", 1 },
    /* RFC 5321 4.1.1.1: the keyword is the whole first word */
    { "a longer word is another keyword", IN("PIPELININGX"),
      "PIPELINING", 0 },
    { "a shorter word is another keyword", IN("PIPELIN"), "PIPELINING", 0 },
    { "only `len` octets count", "PIPELININGX", 10, "PIPELINING", 1 },
    /* RFC 1870 3 */
    { "a keyword with a parameter", IN("SIZE 1000"), "SIZE", 1 },
    { "a parameter is no keyword", IN("SIZE 1000"), "1000", 0 },
    /* RFC 6152 2 */
    { "a keyword starting with a digit", IN("8BITMIME"), "8BITMIME", 1 },
    /* RFC 4954 3 */
    { "a keyword with mechanisms", IN("AUTH PLAIN LOGIN"), "AUTH", 1 },
    { "a mechanism is no keyword", IN("AUTH PLAIN LOGIN"), "PLAIN", 0 },
    { "empty text names nothing", IN(""), "PIPELINING", 0 },
    { "text starting with SP names nothing", IN(" PIPELINING"),
      "PIPELINING", 0 },
    { "an empty keyword is named by nothing", IN(""), "", 0 },
};

START_TEST(ehlo_has_matches_the_first_word)
{
    ck_assert_msg(lem_smtp_ehlo_has(ehlo_cases[_i].text, ehlo_cases[_i].len,
                                    ehlo_cases[_i].keyword)
                  == ehlo_cases[_i].has, "%s", ehlo_cases[_i].why);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Both parsers                                                        */
/* ------------------------------------------------------------------ */

START_TEST(an_empty_feed_needs_more)
{
    char line[MAX_LINE];
    lem_smtp_cmd_t c;
    lem_smtp_reply_t r;
    lem_smtp_piece_t pc;
    apr_size_t used = 1;

    lem_smtp_cmd_init(&c, line, sizeof(line), MAX_CONTENT);
    ck_assert_int_eq(lem_smtp_cmd_next(&c, "", 0, &used, &pc),
                     LEM_SMTP_NEED_MORE);
    ck_assert_uint_eq(used, 0);
    used = 1;
    lem_smtp_reply_init(&r);
    ck_assert_int_eq(lem_smtp_reply_next(&r, "", 0, &used, &pc),
                     LEM_SMTP_NEED_MORE);
    ck_assert_uint_eq(used, 0);
}
END_TEST

/* Every way of cutting a stream into feeds gives the same events. */
START_TEST(any_split_gives_the_same_events)
{
    static const char cmds[] =
        "EHLO x\r\nMAIL FROM:<a@b>\r\nDATA\r\n..a\r\nb\r\r\n.\n\r\n.\r\n"
        "BDAT 4\r\n\r\n.\rBDAT 0 LAST\r\nQUIT\r\n";
    static const char replies[] =
        "220 hi\r\n250-x\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        "250\r\n354 go\r\n";
    static const struct {
        int         is_reply;
        const char *in;
        size_t      len;
    } streams[] = {
        { 0, cmds, sizeof(cmds) - 1 },
        { 1, replies, sizeof(replies) - 1 },
    };
    run_t *whole = malloc(sizeof(*whole)), *cut = malloc(sizeof(*cut));
    size_t len, step;
    int i;

    ck_assert(whole && cut);
    for (i = 0; i < N_ROWS(streams); i++) {
        len = streams[i].len;
        run(whole, streams[i].is_reply, 0, streams[i].in, len, len);
        ck_assert_int_ge(whole->n, 5);
        ck_assert_int_ne(whole->ev[whole->n - 1].ev, LEM_SMTP_ERROR);
        ck_assert(whole->boundary);
        for (step = 1; step < len; step++) {
            run(cut, streams[i].is_reply, 0, streams[i].in, len, step);
            assert_same_runs("split", whole, cut);
        }
    }
    free(whole);
    free(cut);
}
END_TEST

Suite *lem_smtp_suite(void)
{
    Suite *s = suite_create("lem_smtp");
    TCase *cmd = tcase_create("commands");
    TCase *reply = tcase_create("replies");
    TCase *both = tcase_create("both");

    tcase_add_loop_test(cmd, command_lines_are_read_with_their_verb,
                        0, N_ROWS(line_cases));
    tcase_add_loop_test(cmd, malformed_command_lines_are_refused,
                        0, N_ROWS(refused_line_cases));
    tcase_add_loop_test(cmd, data_content_runs_to_the_end_of_data_line,
                        0, N_ROWS(data_cases));
    tcase_add_loop_test(cmd, bdat_chunks_carry_exactly_their_octets,
                        0, N_ROWS(bdat_cases));
    tcase_add_loop_test(cmd, malformed_bdat_is_refused,
                        0, N_ROWS(refused_bdat_cases));
    tcase_add_loop_test(cmd, commands_in_one_buffer_come_out_in_order,
                        0, N_ROWS(batch_cases));
    tcase_add_test(cmd, end_of_data_split_over_one_byte_feeds_ends_content);
    tcase_add_test(cmd, content_pieces_point_into_the_input);
    tcase_add_test(cmd, bdat_zero_gives_one_empty_last_piece);
    tcase_add_test(cmd, at_boundary_is_true_only_between_commands);
    tcase_add_test(cmd, no_content_is_ignored_once_content_has_begun);
    tcase_add_test(cmd, expect_line_is_ignored_inside_a_line);
    tcase_add_test(cmd, commands_are_counted_without_sasl_answers);
    tcase_add_test(cmd, command_parser_stays_in_error);
    suite_add_tcase(s, cmd);

    tcase_add_loop_test(reply, replies_are_read_with_their_code_and_text,
                        0, N_ROWS(reply_cases));
    tcase_add_loop_test(reply, malformed_replies_are_refused,
                        0, N_ROWS(refused_reply_cases));
    tcase_add_test(reply, reply_line_of_max_length_is_accepted);
    tcase_add_test(reply, reply_line_longer_than_max_is_refused);
    tcase_add_test(reply, reply_at_boundary_only_after_the_last_line);
    tcase_add_loop_test(reply, ehlo_has_matches_the_first_word,
                        0, N_ROWS(ehlo_cases));
    suite_add_tcase(s, reply);

    tcase_add_test(both, an_empty_feed_needs_more);
    tcase_add_test(both, any_split_gives_the_same_events);
    suite_add_tcase(s, both);
    return s;
}
