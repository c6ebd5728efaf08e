/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * The IMAP framing core: every table row is fed twice, whole and one byte
 * at a time, and both runs must give the same events as the row wants.
 */

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lem_imap.h"

#define MAX_LINE      128       /* max_line of the table runs */
#define MAX_LITERAL   1000      /* max_literal of every run */
#define LINE_BUF      1024
#define MAX_EVENTS    16
#define MAX_DATA      4096
#define MAX_WANT      8

#define FIRST 1u
#define LAST  2u

/* 16 tag characters; four make the longest tag accepted. */
#define C16 "abcdefghijklmnop"

#define N_ROWS(t) ((int)(sizeof(t) / sizeof((t)[0])))

/* ------------------------------------------------------------------ */
/* Feeding a parser and writing down what it said                      */
/* ------------------------------------------------------------------ */

/*
 * One event as the tests compare it: the TEXT pieces of a segment joined
 * up to its CRLF, the LITERAL pieces of a literal joined, or an error.
 */
typedef struct {
    lem_imap_ev_t   ev;
    char            data[MAX_DATA];
    size_t          len;
    unsigned        flags;          /* FIRST, LAST */
    lem_literal_t   literal;
    apr_uint64_t    literal_len;
    char            tag[LEM_IMAP_TAG_MAX + 1];
    char            name[LEM_IMAP_NAME_MAX + 1];
    lem_resp_kind_t kind;
    lem_status_t    status;
    const char     *error;
} seen_t;

typedef struct {
    seen_t   ev[MAX_EVENTS];
    int      n;
    int      open;                  /* the last event takes more pieces */
    int      boundary;              /* at_boundary after the input */
    unsigned commands;
} run_t;

/* Both parsers; `is_resp` says which one a run feeds. */
typedef struct {
    int               is_resp;
    lem_cmd_parser_t  cmd;
    lem_resp_parser_t resp;
    char              line[LINE_BUF];
} parser_t;

static void parser_init(parser_t *ps, int is_resp, apr_size_t max_line)
{
    ck_assert_uint_le(max_line, sizeof(ps->line));
    ps->is_resp = is_resp;
    lem_cmd_init(&ps->cmd, ps->line, max_line, MAX_LITERAL);
    lem_resp_init(&ps->resp);
}

static lem_imap_ev_t parser_next(parser_t *ps, const char *in,
                                 apr_size_t len, apr_size_t *used,
                                 lem_imap_piece_t *piece)
{
    if (ps->is_resp) {
        return lem_resp_next(&ps->resp, in, len, used, piece);
    }
    return lem_cmd_next(&ps->cmd, in, len, used, piece);
}

static const char *parser_error(const parser_t *ps)
{
    return ps->is_resp ? ps->resp.error : ps->cmd.error;
}

static int parser_at_boundary(const parser_t *ps)
{
    if (ps->is_resp) {
        return lem_resp_at_boundary(&ps->resp);
    }
    return lem_cmd_at_boundary(&ps->cmd);
}

/* What the parser says about the segment a TEXT piece belongs to. */
static void seen_fields(const parser_t *ps, seen_t *s, int is_new,
                        const lem_imap_piece_t *pc)
{
    if (!ps->is_resp) {
        strcpy(s->tag, ps->cmd.tag);
        strcpy(s->name, ps->cmd.name);
        s->literal = ps->cmd.literal;
        s->literal_len = ps->cmd.literal_len;
        return;
    }
    if (is_new) {
        s->kind = ps->resp.kind;
        s->status = ps->resp.status;
        strcpy(s->tag, ps->resp.tag);
    }
    if (pc->line_end) {
        s->literal = ps->resp.literal;
        s->literal_len = ps->resp.literal_len;
    }
}

static seen_t *seen_new(run_t *r, lem_imap_ev_t ev)
{
    seen_t *s;

    ck_assert_int_lt(r->n, MAX_EVENTS);
    s = &r->ev[r->n++];
    memset(s, 0, sizeof(*s));
    s->ev = ev;
    return s;
}

/* Add one piece to the run, checking the flags the header promises. */
static void seen_piece(run_t *r, const parser_t *ps, lem_imap_ev_t ev,
                       const lem_imap_piece_t *pc)
{
    int is_new = !(r->open && r->ev[r->n - 1].ev == ev);
    seen_t *s = is_new ? seen_new(r, ev) : &r->ev[r->n - 1];

    ck_assert_uint_gt(pc->len, 0);
    ck_assert_uint_le(s->len + pc->len, MAX_DATA);
    memcpy(s->data + s->len, pc->data, pc->len);
    s->len += pc->len;
    if (pc->first) {
        ck_assert_msg(is_new, "first set on a later piece");
        s->flags |= FIRST;
    }
    if (ev == LEM_IMAP_LITERAL) {
        ck_assert(!pc->first && !pc->line_end && !pc->last);
        r->open = 1;
        return;
    }
    /* commands come in whole segments */
    ck_assert(ps->is_resp || pc->line_end);
    ck_assert(pc->line_end || !pc->last);
    if (pc->last) {
        s->flags |= LAST;
    }
    seen_fields(ps, s, is_new, pc);
    r->open = !pc->line_end;
}

/*
 * Feed `in` to a fresh parser `step` bytes at a time. After every event
 * the rest of the slice is passed again, down to zero bytes, so an event
 * left behind at a feed boundary shows up as a difference.
 */
static void run(run_t *r, int is_resp, const char *in, size_t len,
                size_t step, apr_size_t max_line)
{
    parser_t *ps = calloc(1, sizeof(*ps));
    size_t off = 0, calls = 0;

    ck_assert_ptr_nonnull(ps);
    memset(r, 0, sizeof(*r));
    parser_init(ps, is_resp, max_line);
    r->boundary = parser_at_boundary(ps);
    while (off < len) {
        size_t n = (len - off < step) ? len - off : step, pos = 0;

        for (;;) {
            lem_imap_piece_t pc;
            apr_size_t used = n + 1;
            lem_imap_ev_t ev = parser_next(ps, in + off + pos, n - pos,
                                           &used, &pc);

            ck_assert_uint_le(used, n - pos);
            ck_assert_uint_lt(++calls, 4 * len + 16);
            pos += used;
            if (ev == LEM_IMAP_NEED_MORE) {
                ck_assert_uint_eq(pos, n);
                break;
            }
            if (ev == LEM_IMAP_ERROR) {
                seen_new(r, ev)->error = parser_error(ps);
                /* it stays in error, consuming nothing */
                ev = parser_next(ps, "x", 1, &used, &pc);
                ck_assert_int_eq(ev, LEM_IMAP_ERROR);
                ck_assert_uint_eq(used, 0);
                ck_assert_str_eq(parser_error(ps), r->ev[r->n - 1].error);
                r->boundary = parser_at_boundary(ps);
                free(ps);
                return;
            }
            ck_assert_uint_gt(used, 0);
            seen_piece(r, ps, ev, &pc);
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
                      && x->flags == y->flags
                      && x->literal == y->literal
                      && x->literal_len == y->literal_len
                      && strcmp(x->tag, y->tag) == 0
                      && strcmp(x->name, y->name) == 0
                      && x->kind == y->kind && x->status == y->status
                      && x->error == y->error,
                      "%s: event %d differs between feeds", why, i);
    }
    ck_assert_msg(a->boundary == b->boundary, "%s: boundary", why);
    ck_assert_msg(a->commands == b->commands, "%s: commands", why);
}

/* ------------------------------------------------------------------ */
/* Tables                                                              */
/* ------------------------------------------------------------------ */

/* An event a row wants; tag and name are checked unless NULL. */
typedef struct {
    lem_imap_ev_t   ev;             /* NEED_MORE ends the list */
    const char     *data;           /* ERROR: the message */
    size_t          len;
    unsigned        flags;
    lem_literal_t   literal;
    apr_uint64_t    literal_len;
    const char     *tag;
    const char     *name;
    lem_resp_kind_t kind;           /* responses only */
    lem_status_t    status;         /* responses only */
} want_t;

typedef struct {
    const char *why;                /* the behaviour and its section */
    const char *in;
    size_t      in_len;
    want_t      want[MAX_WANT];
} imap_case_t;

#define IN(s) s, sizeof(s) - 1

#define W_CMD(d, fl, tag, name) \
    { LEM_IMAP_TEXT, d, sizeof(d) - 1, fl, LEM_LITERAL_NONE, 0, \
      tag, name, LEM_RESP_UNTAGGED, LEM_STATUS_NONE }
#define W_CMD_LIT(d, fl, tag, name, lit, n) \
    { LEM_IMAP_TEXT, d, sizeof(d) - 1, fl, lit, n, \
      tag, name, LEM_RESP_UNTAGGED, LEM_STATUS_NONE }
#define W_RESP(d, fl, kind, status, tag) \
    { LEM_IMAP_TEXT, d, sizeof(d) - 1, fl, LEM_LITERAL_NONE, 0, \
      tag, NULL, kind, status }
#define W_RESP_LIT(d, fl, kind, tag, lit, n) \
    { LEM_IMAP_TEXT, d, sizeof(d) - 1, fl, lit, n, \
      tag, NULL, kind, LEM_STATUS_NONE }
#define W_LIT(d) \
    { LEM_IMAP_LITERAL, d, sizeof(d) - 1, 0, LEM_LITERAL_NONE, 0, \
      NULL, NULL, LEM_RESP_UNTAGGED, LEM_STATUS_NONE }
#define W_ERR(msg) \
    { LEM_IMAP_ERROR, msg, 0, 0, LEM_LITERAL_NONE, 0, \
      NULL, NULL, LEM_RESP_UNTAGGED, LEM_STATUS_NONE }

/* Short names for the tables only. */
#define SYNC      LEM_LITERAL_SYNC
#define NONSYNC   LEM_LITERAL_NONSYNC
#define UNTAGGED  LEM_RESP_UNTAGGED
#define CONT      LEM_RESP_CONTINUATION
#define TAGGED    LEM_RESP_TAGGED

static void assert_wanted(const char *why, int is_resp, const run_t *r,
                          const want_t *want, size_t in_len)
{
    int i, n = 0, boundary;
    size_t covered = 0;

    while (n < MAX_WANT && want[n].ev != LEM_IMAP_NEED_MORE) {
        covered += want[n++].len;
    }
    ck_assert_msg(r->n == n, "%s: %d events, want %d", why, r->n, n);
    for (i = 0; i < n; i++) {
        const seen_t *s = &r->ev[i];
        const want_t *w = &want[i];

        ck_assert_msg(s->ev == w->ev, "%s: event %d type %d, want %d",
                      why, i, s->ev, w->ev);
        if (w->ev == LEM_IMAP_ERROR) {
            ck_assert_msg(strcmp(s->error, w->data) == 0,
                          "%s: error \"%s\", want \"%s\"",
                          why, s->error, w->data);
            continue;
        }
        ck_assert_msg(s->len == w->len
                      && memcmp(s->data, w->data, w->len) == 0,
                      "%s: event %d data \"%.*s\"", why, i,
                      (int)s->len, s->data);
        ck_assert_msg(s->flags == w->flags, "%s: event %d flags %u",
                      why, i, s->flags);
        if (w->ev == LEM_IMAP_LITERAL) {
            continue;
        }
        ck_assert_msg(s->literal == w->literal
                      && s->literal_len == w->literal_len,
                      "%s: event %d literal %d %llu", why, i, s->literal,
                      (unsigned long long)s->literal_len);
        ck_assert_msg(!w->tag || strcmp(s->tag, w->tag) == 0,
                      "%s: event %d tag \"%s\"", why, i, s->tag);
        ck_assert_msg(!w->name || strcmp(s->name, w->name) == 0,
                      "%s: event %d name \"%s\"", why, i, s->name);
        ck_assert_msg(!is_resp || (s->kind == w->kind
                                   && s->status == w->status),
                      "%s: event %d kind %d status %d", why, i,
                      s->kind, s->status);
    }

    /* at rest only if the input ends right after a whole command */
    boundary = n > 0 && want[n - 1].ev == LEM_IMAP_TEXT
               && (want[n - 1].flags & LAST) && covered == in_len;
    ck_assert_msg(r->boundary == boundary, "%s: at_boundary %d",
                  why, r->boundary);
}

/* Feed a row whole and one byte at a time; both must match the row. */
static void check_row(const imap_case_t *c, int is_resp)
{
    run_t *whole = malloc(sizeof(*whole));
    run_t *bytes = malloc(sizeof(*bytes));

    ck_assert_ptr_nonnull(whole);
    ck_assert_ptr_nonnull(bytes);
    run(whole, is_resp, c->in, c->in_len, c->in_len, MAX_LINE);
    run(bytes, is_resp, c->in, c->in_len, 1, MAX_LINE);
    assert_same_runs(c->why, whole, bytes);
    assert_wanted(c->why, is_resp, whole, c->want, c->in_len);
    free(whole);
    free(bytes);
}

/* ------------------------------------------------------------------ */
/* Commands                                                            */
/* ------------------------------------------------------------------ */

static const imap_case_t tag_cases[] = {
    /* RFC 3501 9: tag */
    { "a tag of letters and digits", IN("a001 NOOP\r\n"),
      { W_CMD("a001 NOOP\r\n", FIRST | LAST, "a001", "NOOP") } },
    /* RFC 3501 9: ASTRING-CHAR = ATOM-CHAR / resp-specials */
    { "\"]\" is allowed in a tag", IN("a]1 NOOP\r\n"),
      { W_CMD("a]1 NOOP\r\n", FIRST | LAST, "a]1", "NOOP") } },
    /* RFC 3501 9: ATOM-CHAR */
    { "other printable characters are allowed", IN("A.b-c!#$&'[ NOOP\r\n"),
      { W_CMD("A.b-c!#$&'[ NOOP\r\n", FIRST | LAST, "A.b-c!#$&'[",
              "NOOP") } },
    /* RFC 3501 9: tag = 1*<any ASTRING-CHAR except "+"> */
    { "\"+\" in a tag is refused", IN("a+1 NOOP\r\n"),
      { W_ERR("invalid tag") } },
    /* RFC 3501 7.5: "+" starts a continuation, never a command */
    { "a \"+\" tag is refused", IN("+ NOOP\r\n"),
      { W_ERR("invalid tag") } },
    /* RFC 3501 9: list-wildcards */
    { "\"*\" in a tag is refused", IN("a*1 NOOP\r\n"),
      { W_ERR("invalid tag") } },
    { "\"%\" in a tag is refused", IN("a%1 NOOP\r\n"),
      { W_ERR("invalid tag") } },
    /* RFC 3501 9: atom-specials */
    { "\"(\" in a tag is refused", IN("a(1 NOOP\r\n"),
      { W_ERR("invalid tag") } },
    { "\")\" in a tag is refused", IN("a)1 NOOP\r\n"),
      { W_ERR("invalid tag") } },
    { "\"{\" in a tag is refused", IN("a{1 NOOP\r\n"),
      { W_ERR("invalid tag") } },
    /* RFC 3501 9: quoted-specials */
    { "a quote in a tag is refused", IN("a\"1 NOOP\r\n"),
      { W_ERR("invalid tag") } },
    { "a backslash in a tag is refused", IN("a\\1 NOOP\r\n"),
      { W_ERR("invalid tag") } },
    /* RFC 3501 9: CTL */
    { "a control character in a tag is refused", IN("a\t1 NOOP\r\n"),
      { W_ERR("invalid tag") } },
    /* RFC 3501 9: command = tag SP ... */
    { "a command without a tag is refused", IN(" NOOP\r\n"),
      { W_ERR("missing tag") } },
    { "a tag alone is refused", IN("a1\r\n"),
      { W_ERR("missing command name") } },
    { "a tag and SP alone are refused", IN("a1 \r\n"),
      { W_ERR("missing command name") } },
    { "a tag followed by a list is refused", IN("a1 (x)\r\n"),
      { W_ERR("missing command name") } },
    /* lem_imap.h: LEM_IMAP_TAG_MAX */
    { "the longest tag is accepted", IN(C16 C16 C16 C16 " NOOP\r\n"),
      { W_CMD(C16 C16 C16 C16 " NOOP\r\n", FIRST | LAST,
              C16 C16 C16 C16, "NOOP") } },
    { "a longer tag is refused", IN(C16 C16 C16 C16 "q NOOP\r\n"),
      { W_ERR("tag too long") } },
};

static const imap_case_t name_cases[] = {
    /* RFC 3501 9: command names are case-insensitive */
    { "a lower-case name is upper-cased", IN("a noop\r\n"),
      { W_CMD("a noop\r\n", FIRST | LAST, "a", "NOOP") } },
    { "a mixed-case name is upper-cased", IN("a Login fred pw\r\n"),
      { W_CMD("a Login fred pw\r\n", FIRST | LAST, "a", "LOGIN") } },
    /* RFC 3501 6.4.8: UID prefixes the command it modifies */
    { "UID keeps the command it modifies", IN("a uid fetch 1:* FLAGS\r\n"),
      { W_CMD("a uid fetch 1:* FLAGS\r\n", FIRST | LAST, "a",
              "UID FETCH") } },
    { "UID alone is a name", IN("a UID\r\n"),
      { W_CMD("a UID\r\n", FIRST | LAST, "a", "UID") } },
    /* RFC 3501 9: x-command = "X" atom */
    { "an extension name is an atom", IN("a X-Acme.list\r\n"),
      { W_CMD("a X-Acme.list\r\n", FIRST | LAST, "a", "X-ACME.LIST") } },
    /* lem_imap.h: LEM_IMAP_NAME_MAX */
    { "the longest name is accepted", IN("a " C16 C16 "\r\n"),
      { W_CMD("a " C16 C16 "\r\n", FIRST | LAST, "a",
              "ABCDEFGHIJKLMNOPABCDEFGHIJKLMNOP") } },
    { "a longer name is refused", IN("a " C16 C16 "q\r\n"),
      { W_ERR("command name too long") } },
    { "a longer UID name is refused", IN("a UID " C16 "abcdefghijklm\r\n"),
      { W_ERR("command name too long") } },
};

static const imap_case_t quote_cases[] = {
    /* RFC 3501 4.3: quoted-specials are escaped with a backslash */
    { "an escaped quote stays inside the string",
      IN("a LOGIN \"fred \\\"x\\\"\" pw\r\n"),
      { W_CMD("a LOGIN \"fred \\\"x\\\"\" pw\r\n", FIRST | LAST,
              "a", "LOGIN") } },
    { "an escaped backslash does not escape the quote",
      IN("a LOGIN \"fr\\\\\" pw\r\n"),
      { W_CMD("a LOGIN \"fr\\\\\" pw\r\n", FIRST | LAST, "a",
              "LOGIN") } },
    /* RFC 3501 4.3: a literal is not a quoted string */
    { "a marker inside a quoted string is text", IN("a SELECT \"{5}\"\r\n"),
      { W_CMD("a SELECT \"{5}\"\r\n", FIRST | LAST, "a", "SELECT") } },
    { "a marker after a closed string is a literal",
      IN("a LOGIN \"fred\" {2}\r\n"),
      { W_CMD_LIT("a LOGIN \"fred\" {2}\r\n", FIRST, "a", "LOGIN",
                  SYNC, 2) } },
    /* RFC 3501 9: quoted = DQUOTE *QUOTED-CHAR DQUOTE, no CR or LF */
    { "an unterminated string is refused", IN("a LOGIN \"fred pw\r\n"),
      { W_ERR("unterminated quoted string") } },
    { "a marker inside an open string is no literal",
      IN("a LOGIN \"fred {5}\r\n"),
      { W_ERR("unterminated quoted string") } },
    { "a string ending in an escaped quote is open",
      IN("a LOGIN \"fred\\\"\r\n"),
      { W_ERR("unterminated quoted string") } },
    /* RFC 3501 9: flag-keyword; a backslash outside a string is text */
    { "a backslash outside a string is text",
      IN("a STORE 1 +FLAGS (\\Seen)\r\n"),
      { W_CMD("a STORE 1 +FLAGS (\\Seen)\r\n", FIRST | LAST, "a",
              "STORE") } },
};

static const imap_case_t literal_cases[] = {
    /* RFC 3501 4.3: literal */
    { "synchronizing literals are relayed with their octets",
      IN("a LOGIN {4}\r\nfred {2}\r\npw\r\n"),
      { W_CMD_LIT("a LOGIN {4}\r\n", FIRST, "a", "LOGIN", SYNC, 4),
        W_LIT("fred"),
        W_CMD_LIT(" {2}\r\n", 0, "a", "LOGIN", SYNC, 2),
        W_LIT("pw"),
        W_CMD("\r\n", LAST, "a", "LOGIN") } },
    /* RFC 7888 3: LITERAL+ */
    { "literal+ is relayed with its octets",
      IN("a APPEND box {5+}\r\nhello\r\n"),
      { W_CMD_LIT("a APPEND box {5+}\r\n", FIRST, "a", "APPEND",
                  NONSYNC, 5),
        W_LIT("hello"),
        W_CMD("\r\n", LAST, "a", "APPEND") } },
    /* RFC 3516 4.3, RFC 4466 4.3: literal8 */
    { "literal8 is relayed with its octets",
      IN("a APPEND box ~{5}\r\nhe\0lo\r\n"),
      { W_CMD_LIT("a APPEND box ~{5}\r\n", FIRST, "a", "APPEND", SYNC, 5),
        W_LIT("he\0lo"),
        W_CMD("\r\n", LAST, "a", "APPEND") } },
    /* RFC 3501 4.3: CHAR8; the binding's 7bit rule is for text only */
    { "eight bit inside a literal is allowed",
      IN("a APPEND box {4+}\r\n\xe9\r\n\xff\r\n"),
      { W_CMD_LIT("a APPEND box {4+}\r\n", FIRST, "a", "APPEND",
                  NONSYNC, 4),
        W_LIT("\xe9\r\n\xff"),
        W_CMD("\r\n", LAST, "a", "APPEND") } },
    /* RFC 3501 4.3: number may be zero */
    { "empty literals carry no octets",
      IN("a LOGIN {0}\r\n {0+}\r\n\r\n"),
      { W_CMD_LIT("a LOGIN {0}\r\n", FIRST, "a", "LOGIN", SYNC, 0),
        W_CMD_LIT(" {0+}\r\n", 0, "a", "LOGIN", NONSYNC, 0),
        W_CMD("\r\n", LAST, "a", "LOGIN") } },
    /* RFC 3501 9: number = 1*DIGIT */
    { "leading zeros are a number", IN("a X {007}\r\n1234567\r\n"),
      { W_CMD_LIT("a X {007}\r\n", FIRST, "a", "X", SYNC, 7),
        W_LIT("1234567"),
        W_CMD("\r\n", LAST, "a", "X") } },
    /* lem_imap.h: max_literal */
    { "the largest literal is accepted", IN("a APPEND box {1000+}\r\n"),
      { W_CMD_LIT("a APPEND box {1000+}\r\n", FIRST, "a", "APPEND",
                  NONSYNC, 1000) } },
    /* RFC 3501 4.3: the marker is the last thing before CRLF */
    { "empty braces are text", IN("a X {}\r\n"),
      { W_CMD("a X {}\r\n", FIRST | LAST, "a", "X") } },
    { "braces around a non-number are text", IN("a X {12a}\r\n"),
      { W_CMD("a X {12a}\r\n", FIRST | LAST, "a", "X") } },
    { "a plus without digits is text", IN("a X {+}\r\n"),
      { W_CMD("a X {+}\r\n", FIRST | LAST, "a", "X") } },
    { "two plus signs are text", IN("a X {5++}\r\n"),
      { W_CMD("a X {5++}\r\n", FIRST | LAST, "a", "X") } },
    { "a marker before other text is text", IN("a X {5}x\r\n"),
      { W_CMD("a X {5}x\r\n", FIRST | LAST, "a", "X") } },
    { "a huge number before other text is text",
      IN("a X {99999999999999999999999} y\r\n"),
      { W_CMD("a X {99999999999999999999999} y\r\n", FIRST | LAST,
              "a", "X") } },
};

static const imap_case_t refused_cases[] = {
    /* RFC 3501 2.2: lines end in CRLF */
    { "CR without LF is refused", IN("a NOOP\rx\r\n"),
      { W_ERR("CR not followed by LF") } },
    { "a bare LF is refused", IN("a NOOP\n"),
      { W_ERR("LF without CR") } },
    /* RFC 3501 9: CHAR excludes NUL */
    { "NUL outside a literal is refused", IN("a NO\0OP\r\n"),
      { W_ERR("NUL in command text") } },
    /* draft-maes-lemonade-http-binding-04 2.1: plain text (7bit) */
    { "eight bit outside a literal is refused",
      IN("a SELECT caf\xc3\xa9\r\n"),
      { W_ERR("8-bit byte in command text") } },
    { "eight bit after a literal is refused",
      IN("a APPEND b {1+}\r\nx\xe9\r\n"),
      { W_CMD_LIT("a APPEND b {1+}\r\n", FIRST, "a", "APPEND",
                  NONSYNC, 1),
        W_LIT("x"),
        W_ERR("8-bit byte in command text") } },
    /* RFC 3501 9: command = tag SP ... */
    { "an empty line is refused", IN("\r\n"),
      { W_ERR("empty line") } },
    /* lem_imap.h: max_literal */
    { "a literal above max_literal is refused",
      IN("a APPEND box {1001}\r\n"),
      { W_ERR("literal too large") } },
    { "the largest 64-bit literal is refused as too large",
      IN("a APPEND box {18446744073709551615+}\r\n"),
      { W_ERR("literal too large") } },
    /* RFC 3501 9: number is unsigned 32-bit; 64 bits is our ceiling */
    { "a literal length past 64 bits is refused",
      IN("a APPEND box {18446744073709551616}\r\n"),
      { W_ERR("literal length overflow") } },
    { "a very long literal length is refused",
      IN("a APPEND box {99999999999999999999999999+}\r\n"),
      { W_ERR("literal length overflow") } },
};

static const imap_case_t batch_cases[] = {
    /* draft-maes-lemonade-http-binding-04 2.1: several commands a request */
    { "two commands in one buffer", IN("a NOOP\r\nb CHECK\r\n"),
      { W_CMD("a NOOP\r\n", FIRST | LAST, "a", "NOOP"),
        W_CMD("b CHECK\r\n", FIRST | LAST, "b", "CHECK") } },
    { "a command after one with a literal",
      IN("a LOGIN {4+}\r\nfred pw\r\nb SELECT inbox\r\n"),
      { W_CMD_LIT("a LOGIN {4+}\r\n", FIRST, "a", "LOGIN", NONSYNC, 4),
        W_LIT("fred"),
        W_CMD(" pw\r\n", LAST, "a", "LOGIN"),
        W_CMD("b SELECT inbox\r\n", FIRST | LAST, "b", "SELECT") } },
    /* RFC 3501 6.3.11: APPEND ends with the CRLF after its literal */
    { "a command after an APPEND",
      IN("a APPEND x {1+}\r\ny\r\nb NOOP\r\n"),
      { W_CMD_LIT("a APPEND x {1+}\r\n", FIRST, "a", "APPEND", NONSYNC, 1),
        W_LIT("y"),
        W_CMD("\r\n", LAST, "a", "APPEND"),
        W_CMD("b NOOP\r\n", FIRST | LAST, "b", "NOOP") } },
    { "a bad second command follows a good first",
      IN("a NOOP\r\nb\r\n"),
      { W_CMD("a NOOP\r\n", FIRST | LAST, "a", "NOOP"),
        W_ERR("missing command name") } },
    /* RFC 3501 4.3: a literal's CRLF is octets, not a line end */
    { "CRLF inside a literal does not end the command",
      IN("a APPEND box {4+}\r\n\r\n\r\n\r\nb NOOP\r\n"),
      { W_CMD_LIT("a APPEND box {4+}\r\n", FIRST, "a", "APPEND",
                  NONSYNC, 4),
        W_LIT("\r\n\r\n"),
        W_CMD("\r\n", LAST, "a", "APPEND"),
        W_CMD("b NOOP\r\n", FIRST | LAST, "b", "NOOP") } },
    { "a command cut short is no boundary", IN("a NOOP\r\nb NO"),
      { W_CMD("a NOOP\r\n", FIRST | LAST, "a", "NOOP") } },
};

START_TEST(tags_follow_the_rfc3501_grammar)
{
    check_row(&tag_cases[_i], 0);
}
END_TEST

START_TEST(command_names_are_read_and_upper_cased)
{
    check_row(&name_cases[_i], 0);
}
END_TEST

START_TEST(quoted_strings_must_end_on_their_line)
{
    check_row(&quote_cases[_i], 0);
}
END_TEST

START_TEST(literals_are_relayed_with_their_octets)
{
    check_row(&literal_cases[_i], 0);
}
END_TEST

START_TEST(malformed_command_text_is_refused)
{
    check_row(&refused_cases[_i], 0);
}
END_TEST

START_TEST(commands_in_one_buffer_come_out_in_order)
{
    check_row(&batch_cases[_i], 0);
}
END_TEST

/* RFC 3501 4.3: literal octets go through untouched and uncopied */
START_TEST(literal_octets_point_into_the_input)
{
    static const char in[] = "a APPEND b {5+}\r\nhello\r\n";
    char line[MAX_LINE];
    lem_cmd_parser_t p;
    lem_imap_piece_t pc;
    apr_size_t used;

    lem_cmd_init(&p, line, sizeof(line), MAX_LITERAL);
    ck_assert_int_eq(lem_cmd_next(&p, in, sizeof(in) - 1, &used, &pc),
                     LEM_IMAP_TEXT);
    ck_assert_ptr_eq(pc.data, line);
    ck_assert_uint_eq(used, 17);
    ck_assert_int_eq(lem_cmd_next(&p, in + 17, sizeof(in) - 18, &used, &pc),
                     LEM_IMAP_LITERAL);
    ck_assert_ptr_eq(pc.data, in + 17);
    ck_assert_uint_eq(pc.len, 5);
    ck_assert_uint_eq(used, 5);
}
END_TEST

/* RFC 7888 3: a large literal may arrive in any number of reads */
START_TEST(literal_split_across_feeds_is_relayed_piece_by_piece)
{
    static const char *feeds[] = {
        "a APPEND b {11+}\r\nhel", "lo wor", "ld\r\n"
    };
    static const char *want[] = { "hel", "lo wor", "ld" };
    char line[MAX_LINE];
    lem_cmd_parser_t p;
    lem_imap_piece_t pc;
    apr_size_t used;
    const char *in;
    size_t len;
    int i;

    lem_cmd_init(&p, line, sizeof(line), MAX_LITERAL);
    ck_assert_int_eq(lem_cmd_next(&p, feeds[0], strlen(feeds[0]), &used,
                                  &pc), LEM_IMAP_TEXT);
    for (i = 0; i < 3; i++) {
        in = (i == 0) ? feeds[0] + used : feeds[i];
        len = strlen(in);
        ck_assert_int_eq(lem_cmd_next(&p, in, len, &used, &pc),
                         LEM_IMAP_LITERAL);
        ck_assert_uint_eq(pc.len, strlen(want[i]));
        ck_assert(memcmp(pc.data, want[i], pc.len) == 0);
        ck_assert(!lem_cmd_at_boundary(&p));
    }
    ck_assert_int_eq(lem_cmd_next(&p, in + used, len - used, &used, &pc),
                     LEM_IMAP_TEXT);
    ck_assert(pc.last && pc.len == 2);
    ck_assert(lem_cmd_at_boundary(&p));
}
END_TEST

/* lem_imap.h: max_line counts the CRLF */
START_TEST(line_of_max_length_is_accepted)
{
    char in[MAX_LINE + 1];
    run_t *r = malloc(sizeof(*r));

    memset(in, 'y', sizeof(in));
    memcpy(in, "a X ", 4);
    memcpy(in + MAX_LINE - 2, "\r\n", 2);
    run(r, 0, in, MAX_LINE, MAX_LINE, MAX_LINE);
    ck_assert_int_eq(r->n, 1);
    ck_assert_uint_eq(r->ev[0].len, MAX_LINE);
    ck_assert_uint_eq(r->ev[0].flags, FIRST | LAST);
    run(r, 0, in, MAX_LINE, 1, MAX_LINE);
    ck_assert_int_eq(r->n, 1);
    free(r);
}
END_TEST

START_TEST(line_longer_than_max_is_refused)
{
    static const char lit[] = "a APPEND b {1+}\r\nx";
    static const size_t steps[] = { 1, 2 * MAX_LINE };
    char in[2 * MAX_LINE];
    run_t *r = malloc(sizeof(*r));
    size_t n, step;
    int i;

    for (i = 0; i < N_ROWS(steps); i++) {
        step = steps[i];
        /* the first segment of a command */
        memset(in, 'y', sizeof(in));
        memcpy(in, "a X ", 4);
        memcpy(in + MAX_LINE - 1, "\r\n", 2);
        run(r, 0, in, MAX_LINE + 1, step, MAX_LINE);
        ck_assert_int_eq(r->n, 1);
        ck_assert_str_eq(r->ev[0].error, "line too long");

        /* a later segment, after a literal */
        n = sizeof(lit) - 1;
        memcpy(in, lit, n);
        memset(in + n, 'y', sizeof(in) - n);
        run(r, 0, in, sizeof(in), step, MAX_LINE);
        ck_assert_int_eq(r->n, 3);
        ck_assert_str_eq(r->ev[2].error, "line too long");
    }
    free(r);
}
END_TEST

/* draft-maes-lemonade-http-binding-04 2.1.2: replies follow commands */
START_TEST(at_boundary_is_true_only_between_commands)
{
    static const struct {
        const char   *in;
        lem_imap_ev_t ev;
        int           boundary;
    } steps[] = {
        { "a NOOP\r", LEM_IMAP_NEED_MORE, 0 },
        { "\n",       LEM_IMAP_TEXT,      1 },
        { "b APPEND x {2}\r\n", LEM_IMAP_TEXT, 0 },
        { "h",        LEM_IMAP_LITERAL,   0 },
        { "i",        LEM_IMAP_LITERAL,   0 },
        { "\r",       LEM_IMAP_NEED_MORE, 0 },
        { "\n",       LEM_IMAP_TEXT,      1 },
    };
    char line[MAX_LINE];
    lem_cmd_parser_t p;
    lem_imap_piece_t pc;
    apr_size_t used;
    int i;

    lem_cmd_init(&p, line, sizeof(line), MAX_LITERAL);
    ck_assert(lem_cmd_at_boundary(&p));
    for (i = 0; i < N_ROWS(steps); i++) {
        ck_assert_int_eq(lem_cmd_next(&p, steps[i].in, strlen(steps[i].in),
                                      &used, &pc), steps[i].ev);
        ck_assert_uint_eq(used, strlen(steps[i].in));
        ck_assert_int_eq(lem_cmd_at_boundary(&p), steps[i].boundary);
    }
    ck_assert_uint_eq(p.commands, 2);
}
END_TEST

START_TEST(complete_commands_are_counted)
{
    static const char in[] = "a NOOP\r\nb LOGIN {2+}\r\nxy pw\r\nc NO";
    run_t *r = malloc(sizeof(*r));

    run(r, 0, in, sizeof(in) - 1, sizeof(in) - 1, MAX_LINE);
    ck_assert_uint_eq(r->commands, 2);
    run(r, 0, in, sizeof(in) - 1, 1, MAX_LINE);
    ck_assert_uint_eq(r->commands, 2);
    free(r);
}
END_TEST

START_TEST(command_parser_stays_in_error)
{
    char line[MAX_LINE];
    lem_cmd_parser_t p;
    lem_imap_piece_t pc;
    apr_size_t used;

    lem_cmd_init(&p, line, sizeof(line), MAX_LITERAL);
    ck_assert_int_eq(lem_cmd_next(&p, "a\n", 2, &used, &pc),
                     LEM_IMAP_ERROR);
    ck_assert_str_eq(p.error, "LF without CR");
    ck_assert_int_eq(lem_cmd_next(&p, "b NOOP\r\n", 8, &used, &pc),
                     LEM_IMAP_ERROR);
    ck_assert_uint_eq(used, 0);
    ck_assert_str_eq(p.error, "LF without CR");
    ck_assert(!lem_cmd_at_boundary(&p));
}
END_TEST

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

static const imap_case_t class_cases[] = {
    /* RFC 3501 7.1.1 */
    { "an untagged OK", IN("* OK IMAP4rev1 ready\r\n"),
      { W_RESP("* OK IMAP4rev1 ready\r\n", FIRST | LAST, UNTAGGED,
               LEM_STATUS_OK, "") } },
    /* RFC 3501 9: status words are case-insensitive */
    { "a lower-case status", IN("* ok ready\r\n"),
      { W_RESP("* ok ready\r\n", FIRST | LAST, UNTAGGED,
               LEM_STATUS_OK, "") } },
    { "a mixed-case tagged status", IN("a1 nO nope\r\n"),
      { W_RESP("a1 nO nope\r\n", FIRST | LAST, TAGGED,
               LEM_STATUS_NO, "a1") } },
    /* RFC 3501 7.3.1 */
    { "an EXISTS has no status", IN("* 3 EXISTS\r\n"),
      { W_RESP("* 3 EXISTS\r\n", FIRST | LAST, UNTAGGED,
               LEM_STATUS_NONE, "") } },
    /* RFC 3501 7.2.1 */
    { "a CAPABILITY has no status",
      IN("* CAPABILITY IMAP4rev1 LITERAL+ BINARY\r\n"),
      { W_RESP("* CAPABILITY IMAP4rev1 LITERAL+ BINARY\r\n",
               FIRST | LAST, UNTAGGED, LEM_STATUS_NONE, "") } },
    /* RFC 3501 7.1.5 */
    { "an untagged BYE", IN("* BYE going down\r\n"),
      { W_RESP("* BYE going down\r\n", FIRST | LAST, UNTAGGED,
               LEM_STATUS_BYE, "") } },
    /* RFC 3501 7.1.4 */
    { "an untagged PREAUTH", IN("* PREAUTH welcome\r\n"),
      { W_RESP("* PREAUTH welcome\r\n", FIRST | LAST, UNTAGGED,
               LEM_STATUS_PREAUTH, "") } },
    /* RFC 3501 7.5 */
    { "a continuation", IN("+ Ready for literal\r\n"),
      { W_RESP("+ Ready for literal\r\n", FIRST | LAST, CONT,
               LEM_STATUS_NONE, "") } },
    { "a continuation never has a status", IN("+ OK\r\n"),
      { W_RESP("+ OK\r\n", FIRST | LAST, CONT, LEM_STATUS_NONE, "") } },
    { "a bare continuation", IN("+\r\n"),
      { W_RESP("+\r\n", FIRST | LAST, CONT, LEM_STATUS_NONE, "") } },
    /* RFC 3501 7.1.1 - 7.1.3 */
    { "a tagged OK", IN("a1 OK LOGIN completed\r\n"),
      { W_RESP("a1 OK LOGIN completed\r\n", FIRST | LAST, TAGGED,
               LEM_STATUS_OK, "a1") } },
    { "a tagged NO", IN("a2 NO [TRYCREATE] no such box\r\n"),
      { W_RESP("a2 NO [TRYCREATE] no such box\r\n", FIRST | LAST, TAGGED,
               LEM_STATUS_NO, "a2") } },
    { "a tagged BAD", IN("a3 BAD junk\r\n"),
      { W_RESP("a3 BAD junk\r\n", FIRST | LAST, TAGGED,
               LEM_STATUS_BAD, "a3") } },
    /* RFC 3501 7.1: the status word ends in SP, or CRLF as sent */
    { "a status ending the line", IN("a4 OK\r\n"),
      { W_RESP("a4 OK\r\n", FIRST | LAST, TAGGED, LEM_STATUS_OK, "a4") } },
    { "a longer word is no status", IN("a5 OKAY\r\n"),
      { W_RESP("a5 OKAY\r\n", FIRST | LAST, TAGGED, LEM_STATUS_NONE,
               "a5") } },
    { "a status glued to a code is no status", IN("* OK[ALERT] x\r\n"),
      { W_RESP("* OK[ALERT] x\r\n", FIRST | LAST, UNTAGGED,
               LEM_STATUS_NONE, "") } },
    { "a tag alone has no status", IN("a6\r\n"),
      { W_RESP("a6\r\n", FIRST | LAST, TAGGED, LEM_STATUS_NONE, "a6") } },
    /* lem_imap.h: LEM_IMAP_TAG_MAX */
    { "the longest tag is read", IN(C16 C16 C16 C16 " BAD x\r\n"),
      { W_RESP(C16 C16 C16 C16 " BAD x\r\n", FIRST | LAST, TAGGED,
               LEM_STATUS_BAD, C16 C16 C16 C16) } },
    { "a head longer than its buffer is cut, unclassified",
      IN("* " C16 C16 C16 C16 C16 C16 "\r\n"),
      { W_RESP("* " C16 C16 C16 C16 C16 C16 "\r\n", FIRST | LAST,
               UNTAGGED, LEM_STATUS_NONE, "") } },
};

static const imap_case_t resp_literal_cases[] = {
    /* RFC 3501 7.4.2: FETCH BODY[] */
    { "a literal in a FETCH response",
      IN("* 1 FETCH (BODY[] {5}\r\nhello)\r\n"),
      { W_RESP_LIT("* 1 FETCH (BODY[] {5}\r\n", FIRST, UNTAGGED, "",
                   SYNC, 5),
        W_LIT("hello"),
        W_RESP(")\r\n", LAST, UNTAGGED, LEM_STATUS_NONE, "") } },
    { "two literals in a FETCH response",
      IN("* 2 FETCH (BODY[1] {2}\r\nab BODY[2] {3}\r\nc\r\n)\r\n"),
      { W_RESP_LIT("* 2 FETCH (BODY[1] {2}\r\n", FIRST, UNTAGGED, "",
                   SYNC, 2),
        W_LIT("ab"),
        W_RESP_LIT(" BODY[2] {3}\r\n", 0, UNTAGGED, "", SYNC, 3),
        W_LIT("c\r\n"),
        W_RESP(")\r\n", LAST, UNTAGGED, LEM_STATUS_NONE, "") } },
    /* RFC 3501 4.3: number may be zero */
    { "an empty literal carries no octets",
      IN("* 3 FETCH (BODY[] {0}\r\n)\r\n"),
      { W_RESP_LIT("* 3 FETCH (BODY[] {0}\r\n", FIRST, UNTAGGED, "",
                   SYNC, 0),
        W_RESP(")\r\n", LAST, UNTAGGED, LEM_STATUS_NONE, "") } },
    /* RFC 3516 4.2: literal8 in a FETCH BINARY response */
    { "literal8 octets are any values",
      IN("* 4 FETCH (BINARY[] ~{4}\r\n\0\xff\r\n)\r\n"),
      { W_RESP_LIT("* 4 FETCH (BINARY[] ~{4}\r\n", FIRST, UNTAGGED, "",
                   SYNC, 4),
        W_LIT("\0\xff\r\n"),
        W_RESP(")\r\n", LAST, UNTAGGED, LEM_STATUS_NONE, "") } },
    /* RFC 7888 3: the marker form is read the same either way */
    { "a literal+ marker in a response",
      IN("* 5 FETCH (BODY[] {2+}\r\nhi)\r\n"),
      { W_RESP_LIT("* 5 FETCH (BODY[] {2+}\r\n", FIRST, UNTAGGED, "",
                   NONSYNC, 2),
        W_LIT("hi"),
        W_RESP(")\r\n", LAST, UNTAGGED, LEM_STATUS_NONE, "") } },
    { "a marker within the head is found", IN("* {3}\r\nabc\r\n"),
      { W_RESP_LIT("* {3}\r\n", FIRST, UNTAGGED, "", SYNC, 3),
        W_LIT("abc"),
        W_RESP("\r\n", LAST, UNTAGGED, LEM_STATUS_NONE, "") } },
    /* RFC 3501 4.3: the marker is the last thing before CRLF */
    { "braces around a non-number are text", IN("* OK {12a}\r\n"),
      { W_RESP("* OK {12a}\r\n", FIRST | LAST, UNTAGGED,
               LEM_STATUS_OK, "") } },
    { "a huge number before other text is text",
      IN("* OK {99999999999999999999999} x\r\n"),
      { W_RESP("* OK {99999999999999999999999} x\r\n", FIRST | LAST,
               UNTAGGED, LEM_STATUS_OK, "") } },
};

static const imap_case_t resp_refused_cases[] = {
    /* RFC 3501 2.2: lines end in CRLF */
    { "CR without LF in the text is refused", IN("* OK x\ry\r\n"),
      { W_RESP("* OK x", FIRST, UNTAGGED, LEM_STATUS_OK, ""),
        W_ERR("CR not followed by LF") } },
    { "CR without LF in the head is refused", IN("* O\rK\r\n"),
      { W_ERR("CR not followed by LF") } },
    { "a bare LF in the text is refused", IN("* OK x\n"),
      { W_RESP("* OK x", FIRST, UNTAGGED, LEM_STATUS_OK, ""),
        W_ERR("LF without CR") } },
    { "a bare LF in the head is refused", IN("*\n"),
      { W_ERR("LF without CR") } },
    /* lem_imap.h: LEM_IMAP_TAG_MAX */
    { "a longer tag is refused", IN(C16 C16 C16 C16 "q OK\r\n"),
      { W_ERR("tag too long") } },
    /* RFC 3501 9: number is unsigned 32-bit; 64 bits is our ceiling */
    { "a literal length past 64 bits is refused",
      IN("* 1 FETCH (BODY[] {18446744073709551616}\r\n"),
      { W_RESP("* 1 FETCH (BODY[] {18446744073709551616}", FIRST,
               UNTAGGED, LEM_STATUS_NONE, ""),
        W_ERR("literal length overflow") } },
    { "a literal length past 64 bits in the head is refused",
      IN("* {18446744073709551616}\r\n"),
      { W_ERR("literal length overflow") } },
};

static const imap_case_t resp_batch_cases[] = {
    /* RFC 3501 7: untagged data, then the tagged completion */
    { "two responses in one buffer", IN("* 2 EXISTS\r\na1 OK done\r\n"),
      { W_RESP("* 2 EXISTS\r\n", FIRST | LAST, UNTAGGED,
               LEM_STATUS_NONE, ""),
        W_RESP("a1 OK done\r\n", FIRST | LAST, TAGGED,
               LEM_STATUS_OK, "a1") } },
    /* RFC 3501 7.5 */
    { "a continuation, then a completion", IN("+ go\r\na2 NO done\r\n"),
      { W_RESP("+ go\r\n", FIRST | LAST, CONT, LEM_STATUS_NONE, ""),
        W_RESP("a2 NO done\r\n", FIRST | LAST, TAGGED,
               LEM_STATUS_NO, "a2") } },
    { "a response after one with a literal",
      IN("* 1 FETCH (BODY[] {2}\r\nhi)\r\na3 OK done\r\n"),
      { W_RESP_LIT("* 1 FETCH (BODY[] {2}\r\n", FIRST, UNTAGGED, "",
                   SYNC, 2),
        W_LIT("hi"),
        W_RESP(")\r\n", LAST, UNTAGGED, LEM_STATUS_NONE, ""),
        W_RESP("a3 OK done\r\n", FIRST | LAST, TAGGED,
               LEM_STATUS_OK, "a3") } },
    { "a bad response follows a good one", IN("* OK x\r\nbad\n"),
      { W_RESP("* OK x\r\n", FIRST | LAST, UNTAGGED, LEM_STATUS_OK, ""),
        W_ERR("LF without CR") } },
    { "a response cut short is no boundary", IN("* OK x\r\na1 O"),
      { W_RESP("* OK x\r\n", FIRST | LAST, UNTAGGED,
               LEM_STATUS_OK, "") } },
};

START_TEST(responses_are_classified_by_their_head)
{
    check_row(&class_cases[_i], 1);
}
END_TEST

START_TEST(response_literals_are_relayed_with_their_octets)
{
    check_row(&resp_literal_cases[_i], 1);
}
END_TEST

START_TEST(malformed_responses_are_refused)
{
    check_row(&resp_refused_cases[_i], 1);
}
END_TEST

START_TEST(responses_in_one_buffer_come_out_in_order)
{
    check_row(&resp_batch_cases[_i], 1);
}
END_TEST

/* RFC 3501 7: the head decides where a response goes; the rest streams */
START_TEST(first_piece_of_a_response_is_its_classified_head)
{
    static const char in[] = "* 1 FETCH (BODY[] {5}\r\nhello)\r\n";
    size_t len = sizeof(in) - 1, off = 0;
    lem_resp_parser_t p;
    lem_imap_piece_t pc;
    apr_size_t used;

    lem_resp_init(&p);
    ck_assert_int_eq(lem_resp_next(&p, in, len, &used, &pc),
                     LEM_IMAP_TEXT);
    ck_assert(pc.first && !pc.line_end && !pc.last);
    ck_assert_uint_eq(pc.len, 4);
    ck_assert(memcmp(pc.data, "* 1 ", 4) == 0);
    ck_assert_int_eq(p.kind, LEM_RESP_UNTAGGED);
    off += used;

    ck_assert_int_eq(lem_resp_next(&p, in + off, len - off, &used, &pc),
                     LEM_IMAP_TEXT);
    ck_assert_ptr_eq(pc.data, in + off);
    ck_assert(!pc.first && pc.line_end && !pc.last);
    ck_assert_int_eq(p.literal, LEM_LITERAL_SYNC);
    off += used;

    ck_assert_int_eq(lem_resp_next(&p, in + off, len - off, &used, &pc),
                     LEM_IMAP_LITERAL);
    ck_assert_ptr_eq(pc.data, in + off);
    ck_assert_uint_eq(pc.len, 5);
    off += used;

    ck_assert_int_eq(lem_resp_next(&p, in + off, len - off, &used, &pc),
                     LEM_IMAP_TEXT);
    ck_assert(pc.line_end && pc.last);
    ck_assert_uint_eq(off + used, len);
    ck_assert(lem_resp_at_boundary(&p));
}
END_TEST

/* RFC 3501 2.2: no piece stops between the CR and the LF of a line */
START_TEST(a_cr_at_the_end_of_a_feed_waits_for_its_lf)
{
    lem_resp_parser_t p;
    lem_imap_piece_t pc;
    apr_size_t used;

    lem_resp_init(&p);
    ck_assert_int_eq(lem_resp_next(&p, "* OK x\r", 7, &used, &pc),
                     LEM_IMAP_TEXT);
    ck_assert_uint_eq(used, 5);
    ck_assert_int_eq(lem_resp_next(&p, "x\r", 2, &used, &pc),
                     LEM_IMAP_TEXT);
    ck_assert_uint_eq(used, 2);
    ck_assert(pc.len == 1 && pc.data[0] == 'x' && !pc.line_end);
    ck_assert(!lem_resp_at_boundary(&p));
    ck_assert_int_eq(lem_resp_next(&p, "\n", 1, &used, &pc),
                     LEM_IMAP_TEXT);
    ck_assert_uint_eq(used, 1);
    ck_assert(pc.len == 2 && memcmp(pc.data, "\r\n", 2) == 0);
    ck_assert(pc.line_end && pc.last);
    ck_assert(lem_resp_at_boundary(&p));
}
END_TEST

/* RFC 3501 7.2.5: a SEARCH answer can be far longer than any buffer */
START_TEST(long_response_streams_in_pieces)
{
    static const char tail[] = "\r\na1 OK done\r\n";
    char in[3100];
    size_t len = 0;
    run_t *whole = malloc(sizeof(*whole)), *bytes = malloc(sizeof(*bytes));
    lem_resp_parser_t p;
    lem_imap_piece_t pc;
    apr_size_t used;

    memcpy(in, "* SEARCH", 8);
    for (len = 8; len + 6 + sizeof(tail) < sizeof(in); len += 6) {
        memcpy(in + len, " 12345", 6);
    }
    memcpy(in + len, tail, sizeof(tail) - 1);
    len += sizeof(tail) - 1;

    /* the head comes first, the rest straight from the input */
    lem_resp_init(&p);
    ck_assert_int_eq(lem_resp_next(&p, in, len, &used, &pc),
                     LEM_IMAP_TEXT);
    ck_assert_uint_le(pc.len, sizeof(p.head));
    ck_assert_int_eq(lem_resp_next(&p, in + used, len - used, &used, &pc),
                     LEM_IMAP_TEXT);
    ck_assert(pc.line_end && pc.last);
    ck_assert_uint_gt(pc.len, 3000);

    run(whole, 1, in, len, len, MAX_LINE);
    run(bytes, 1, in, len, 1, MAX_LINE);
    assert_same_runs("long SEARCH", whole, bytes);
    ck_assert_int_eq(whole->n, 2);
    ck_assert_uint_eq(whole->ev[0].len, len - (sizeof(tail) - 1) + 2);
    ck_assert_int_eq(whole->ev[1].status, LEM_STATUS_OK);
    free(whole);
    free(bytes);
}
END_TEST

START_TEST(response_parser_stays_in_error)
{
    lem_resp_parser_t p;
    lem_imap_piece_t pc;
    apr_size_t used;

    lem_resp_init(&p);
    ck_assert(lem_resp_at_boundary(&p));
    ck_assert_int_eq(lem_resp_next(&p, "* OK\r*", 6, &used, &pc),
                     LEM_IMAP_ERROR);
    ck_assert_str_eq(p.error, "CR not followed by LF");
    ck_assert_int_eq(lem_resp_next(&p, "* OK\r\n", 6, &used, &pc),
                     LEM_IMAP_ERROR);
    ck_assert_uint_eq(used, 0);
    ck_assert(!lem_resp_at_boundary(&p));
}
END_TEST

START_TEST(status_names_are_spelled_as_imap_does)
{
    ck_assert_str_eq(lem_status_name(LEM_STATUS_NONE), "");
    ck_assert_str_eq(lem_status_name(LEM_STATUS_OK), "OK");
    ck_assert_str_eq(lem_status_name(LEM_STATUS_NO), "NO");
    ck_assert_str_eq(lem_status_name(LEM_STATUS_BAD), "BAD");
    ck_assert_str_eq(lem_status_name(LEM_STATUS_PREAUTH), "PREAUTH");
    ck_assert_str_eq(lem_status_name(LEM_STATUS_BYE), "BYE");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Both parsers                                                        */
/* ------------------------------------------------------------------ */

START_TEST(an_empty_feed_needs_more)
{
    char line[MAX_LINE];
    lem_cmd_parser_t c;
    lem_resp_parser_t r;
    lem_imap_piece_t pc;
    apr_size_t used = 1;

    lem_cmd_init(&c, line, sizeof(line), MAX_LITERAL);
    ck_assert_int_eq(lem_cmd_next(&c, "", 0, &used, &pc),
                     LEM_IMAP_NEED_MORE);
    ck_assert_uint_eq(used, 0);
    used = 1;
    lem_resp_init(&r);
    ck_assert_int_eq(lem_resp_next(&r, "", 0, &used, &pc),
                     LEM_IMAP_NEED_MORE);
    ck_assert_uint_eq(used, 0);
}
END_TEST

/* Every way of cutting a stream into feeds gives the same events. */
START_TEST(any_split_gives_the_same_events)
{
    static const char cmds[] =
        "a LOGIN {4}\r\nfred \"p\\\"w\"\r\nb APPEND x ~{3+}\r\n"
        "\r\n\0\r\nc UID FETCH 1 BODY[]\r\n";
    static const char resps[] =
        "* OK [CAPABILITY IMAP4rev1] hi\r\n+ go\r\n"
        "* 1 FETCH (BODY[] {3}\r\nab\r BODY[1] {0}\r\n)\r\n"
        "a1 OK done\r\n";
    static const struct {
        int         is_resp;
        const char *in;
        size_t      len;
    } streams[] = {
        { 0, cmds, sizeof(cmds) - 1 },
        { 1, resps, sizeof(resps) - 1 },
    };
    run_t *whole = malloc(sizeof(*whole)), *cut = malloc(sizeof(*cut));
    size_t len, step;
    int i;

    for (i = 0; i < N_ROWS(streams); i++) {
        len = streams[i].len;
        run(whole, streams[i].is_resp, streams[i].in, len, len, MAX_LINE);
        ck_assert_int_ge(whole->n, 4);
        ck_assert_int_ne(whole->ev[whole->n - 1].ev, LEM_IMAP_ERROR);
        for (step = 1; step < len; step++) {
            run(cut, streams[i].is_resp, streams[i].in, len, step,
                MAX_LINE);
            assert_same_runs("split", whole, cut);
        }
    }
    free(whole);
    free(cut);
}
END_TEST

/*
 * RFC 2177 and RFC 3501 6.2.2: the line after a continuation request
 * answers it. Fed one byte at a time: "DONE" is no command, what follows
 * it is one again.
 */
START_TEST(line_after_a_continuation_is_no_command)
{
    static const char in[] = "DONE\r\na2 NOOP\r\n";
    lem_cmd_parser_t p;
    lem_imap_piece_t piece;
    char line[64], got[64];
    size_t i, n = 0, used;
    int events = 0;

    lem_cmd_init(&p, line, sizeof(line), 100);
    lem_cmd_expect_line(&p);
    for (i = 0; i < sizeof(in) - 1; i++) {
        lem_imap_ev_t ev = lem_cmd_next(&p, in + i, 1, &used, &piece);

        ck_assert_uint_eq(used, 1);
        if (ev == LEM_IMAP_NEED_MORE) {
            continue;
        }
        ck_assert_int_eq(ev, LEM_IMAP_TEXT);
        ck_assert(piece.first && piece.last && piece.line_end);
        memcpy(got + n, piece.data, piece.len);
        n += piece.len;
        if (++events == 1) {
            ck_assert_str_eq(p.tag, "");
            ck_assert_uint_eq(p.commands, 0);
            ck_assert(lem_cmd_at_boundary(&p));
        }
    }
    ck_assert_int_eq(events, 2);
    ck_assert_str_eq(p.tag, "a2");
    ck_assert_str_eq(p.name, "NOOP");
    ck_assert_uint_eq(p.commands, 1);
    ck_assert_uint_eq(n, sizeof(in) - 1);
    ck_assert(!memcmp(got, in, n));
}
END_TEST

/* A continuation answer is text all the same: 7-bit, CRLF-ended. */
START_TEST(line_after_a_continuation_is_still_checked)
{
    lem_cmd_parser_t p;
    lem_imap_piece_t piece;
    char line[64];
    size_t used;

    lem_cmd_init(&p, line, sizeof(line), 100);
    lem_cmd_expect_line(&p);
    ck_assert_int_eq(lem_cmd_next(&p, "DON\xc9\r\n", 6, &used, &piece),
                     LEM_IMAP_ERROR);
    ck_assert_str_eq(p.error, "8-bit byte in command text");
}
END_TEST

/* "{5}" ending a SASL line announces nothing: there is no literal. */
START_TEST(line_after_a_continuation_announces_no_literal)
{
    lem_cmd_parser_t p;
    lem_imap_piece_t piece;
    char line[64];
    size_t used;

    lem_cmd_init(&p, line, sizeof(line), 100);
    lem_cmd_expect_line(&p);
    ck_assert_int_eq(lem_cmd_next(&p, "abc{5}\r\n", 8, &used, &piece),
                     LEM_IMAP_TEXT);
    ck_assert_int_eq(p.literal, LEM_LITERAL_NONE);
    ck_assert(lem_cmd_at_boundary(&p));
}
END_TEST

Suite *lem_imap_suite(void)
{
    Suite *s = suite_create("lem_imap");
    TCase *cmd = tcase_create("commands");
    TCase *resp = tcase_create("responses");
    TCase *both = tcase_create("both");

    tcase_add_loop_test(cmd, tags_follow_the_rfc3501_grammar,
                        0, N_ROWS(tag_cases));
    tcase_add_loop_test(cmd, command_names_are_read_and_upper_cased,
                        0, N_ROWS(name_cases));
    tcase_add_loop_test(cmd, quoted_strings_must_end_on_their_line,
                        0, N_ROWS(quote_cases));
    tcase_add_loop_test(cmd, literals_are_relayed_with_their_octets,
                        0, N_ROWS(literal_cases));
    tcase_add_loop_test(cmd, malformed_command_text_is_refused,
                        0, N_ROWS(refused_cases));
    tcase_add_loop_test(cmd, commands_in_one_buffer_come_out_in_order,
                        0, N_ROWS(batch_cases));
    tcase_add_test(cmd, literal_octets_point_into_the_input);
    tcase_add_test(cmd, literal_split_across_feeds_is_relayed_piece_by_piece);
    tcase_add_test(cmd, line_of_max_length_is_accepted);
    tcase_add_test(cmd, line_longer_than_max_is_refused);
    tcase_add_test(cmd, at_boundary_is_true_only_between_commands);
    tcase_add_test(cmd, complete_commands_are_counted);
    tcase_add_test(cmd, command_parser_stays_in_error);
    tcase_add_test(cmd, line_after_a_continuation_is_no_command);
    tcase_add_test(cmd, line_after_a_continuation_is_still_checked);
    tcase_add_test(cmd, line_after_a_continuation_announces_no_literal);
    suite_add_tcase(s, cmd);

    tcase_add_loop_test(resp, responses_are_classified_by_their_head,
                        0, N_ROWS(class_cases));
    tcase_add_loop_test(resp, response_literals_are_relayed_with_their_octets,
                        0, N_ROWS(resp_literal_cases));
    tcase_add_loop_test(resp, malformed_responses_are_refused,
                        0, N_ROWS(resp_refused_cases));
    tcase_add_loop_test(resp, responses_in_one_buffer_come_out_in_order,
                        0, N_ROWS(resp_batch_cases));
    tcase_add_test(resp, first_piece_of_a_response_is_its_classified_head);
    tcase_add_test(resp, a_cr_at_the_end_of_a_feed_waits_for_its_lf);
    tcase_add_test(resp, long_response_streams_in_pieces);
    tcase_add_test(resp, response_parser_stays_in_error);
    tcase_add_test(resp, status_names_are_spelled_as_imap_does);
    suite_add_tcase(s, resp);

    tcase_add_test(both, an_empty_feed_needs_more);
    tcase_add_test(both, any_split_gives_the_same_events);
    suite_add_tcase(s, both);
    return s;
}
