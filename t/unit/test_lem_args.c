/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * The IMAP argument tree: every table row is parsed twice, whole and one
 * byte at a time, both trees must look as the row says, and the tree
 * written back must be the row's input again, byte for byte.
 */

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "lem_args.h"
#include "lem_imap.h"

#define N_ROWS(t) ((int)(sizeof(t) / sizeof((t)[0])))
#define DUMP_MAX  2048
#define TEXT_MAX  4096

static apr_pool_t *pool;

static void setup(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
    apr_terminate();
}

/* ------------------------------------------------------------------ */
/* Looking at trees                                                    */
/* ------------------------------------------------------------------ */

/*
 * A tree as one line: KIND(data) for leaves, KIND(kids) for lists and
 * sections, a "^" after the kind of a glued node, a space between nodes.
 * Octets that are not printable appear as \xNN.
 */
static void dump_list(const lem_arg_t *a, char *out, size_t cap);

static void dump_node(const lem_arg_t *a, char *out, size_t cap)
{
    static const char *const kinds[] = {
        "?", "ATOM", "NUMBER", "QUOTED", "LITERAL", "NIL", "LIST",
        "SECTION", "PARTIAL", "TEXT"
    };
    size_t i;

    strncat(out, kinds[a->kind], cap - strlen(out) - 1);
    strncat(out, a->literal8 ? "8" : a->nonsync ? "+" : "",
            cap - strlen(out) - 1);
    strncat(out, a->glued ? "^(" : "(", cap - strlen(out) - 1);
    if (a->kind == LEM_ARG_LIST || a->kind == LEM_ARG_SECTION) {
        dump_list(a->kids, out, cap);
    }
    else if (a->kind != LEM_ARG_NIL) {
        for (i = 0; i < a->len; i++) {
            unsigned char c = (unsigned char)a->data[i];
            char esc[8];

            if (c >= 0x20 && c < 0x7f) {
                esc[0] = (char)c;
                esc[1] = '\0';
            }
            else {
                snprintf(esc, sizeof(esc), "\\x%02x", c);
            }
            strncat(out, esc, cap - strlen(out) - 1);
        }
    }
    strncat(out, ")", cap - strlen(out) - 1);
}

static void dump_list(const lem_arg_t *a, char *out, size_t cap)
{
    for (; a; a = a->next) {
        dump_node(a, out, cap);
        if (a->next) {
            strncat(out, " ", cap - strlen(out) - 1);
        }
    }
}

typedef struct {
    char   data[TEXT_MAX];
    size_t len;
} text_t;

static apr_status_t to_text(void *ctx, const char *data, apr_size_t len)
{
    text_t *t = ctx;

    ck_assert_uint_le(t->len + len, sizeof(t->data));
    memcpy(t->data + t->len, data, len);
    t->len += len;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Parsing whole and one byte at a time                                */
/* ------------------------------------------------------------------ */

typedef struct {
    const char     *cite;     /* where the example comes from */
    lem_args_mode_t mode;
    const char     *in;       /* the message */
    size_t          len;      /* 0: strlen(in) */
    const char     *tag;      /* the tag, "*" or "+" */
    const char     *name;     /* a command's name, else NULL */
    lem_status_t    status;
    const char     *tree;     /* dump of the arguments */
} parse_row_t;

static size_t row_len(const char *in, size_t len)
{
    return len ? len : strlen(in);
}

/* Parse `in` in pieces of `step` bytes (0: all at once). */
static const lem_args_msg_t *parse_in_steps(lem_args_mode_t mode,
                                            const char *in, size_t len,
                                            size_t step, const char **error)
{
    lem_args_parser_t *ps = lem_args_parser_create(pool, mode, 1 << 20);
    size_t off = 0;

    *error = NULL;
    while (off < len) {
        size_t n = (step && step < len - off) ? step : len - off;
        apr_size_t used = 0;
        lem_args_ev_t ev = lem_args_feed(ps, in + off, n, &used);

        off += used;
        if (ev == LEM_ARGS_ERROR) {
            *error = lem_args_error(ps);
            return NULL;
        }
        if (ev == LEM_ARGS_DONE) {
            ck_assert_uint_eq(off, len);
            return lem_args_msg(ps);
        }
        ck_assert_uint_eq(used, n);
    }
    *error = "cut short";
    return NULL;
}

static void check_parsed(const parse_row_t *row, const lem_args_msg_t *msg)
{
    char tree[DUMP_MAX] = "";

    ck_assert_msg(msg != NULL, "%s: not parsed", row->cite);
    ck_assert_str_eq(msg->tag ? msg->tag : "", row->tag ? row->tag : "");
    if (row->name) {
        ck_assert_str_eq(msg->name, row->name);
    }
    ck_assert_int_eq(msg->status, row->status);
    dump_list(msg->args, tree, sizeof(tree));
    ck_assert_msg(!strcmp(tree, row->tree), "%s:\n got  %s\n want %s",
                  row->cite, tree, row->tree);
}

static void check_written_back(const parse_row_t *row,
                               const lem_args_msg_t *msg)
{
    text_t out = { "", 0 };
    lem_sink_t sink = { to_text, &out };
    const char *error = NULL;
    size_t len = row_len(row->in, row->len);

    ck_assert_int_eq(lem_args_write_msg(msg, &sink, &error), APR_SUCCESS);
    ck_assert_msg(out.len == len && !memcmp(out.data, row->in, len),
                  "%s: written back as %.*s", row->cite, (int)out.len,
                  out.data);
}

static const parse_row_t parse_rows[] = {
    /* commands */
    { "draft 2.2, the session: C-IMAP: a1 LOGIN username password",
      LEM_ARGS_COMMAND, "a1 LOGIN username password\r\n", 0, "a1", "LOGIN",
      LEM_STATUS_NONE, "ATOM(username) ATOM(password)" },
    { "draft 2.2, the example encoding (quotes made ASCII)",
      LEM_ARGS_COMMAND,
      "a1 FETCH 1:5,9 BODY[1.1.CONVERT(\"TEXT/PLAIN\")]<1024.2048>\r\n",
      0, "a1", "FETCH", LEM_STATUS_NONE,
      "ATOM(1:5,9) ATOM(BODY) SECTION^(ATOM(1.1.CONVERT) "
      "LIST^(QUOTED(TEXT/PLAIN))) PARTIAL^(1024.2048)" },
    { "draft 2.2: UID FETCH is one command, UID_FETCH",
      LEM_ARGS_COMMAND,
      "a2 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100>)"
      "\r\n", 0, "a2", "UID FETCH", LEM_STATUS_NONE,
      "ATOM(1:*) LIST(ATOM(FLAGS) ATOM(BODY.PEEK) SECTION^(ATOM("
      "HEADER.FIELDS) LIST(ATOM(From) ATOM(To))) PARTIAL^(0.100))" },
    { "RFC 3501 6.3.11: APPEND with a flag list and a literal",
      LEM_ARGS_COMMAND, "a3 APPEND INBOX (\\Seen) {5}\r\nhello\r\n", 0,
      "a3", "APPEND", LEM_STATUS_NONE,
      "ATOM(INBOX) LIST(ATOM(\\Seen)) LITERAL(hello)" },
    { "RFC 3516 4.4: literal8 holds any octet, NUL too",
      LEM_ARGS_COMMAND, "a4 APPEND INBOX ~{3}\r\n\0\1\2\r\n", 27, "a4",
      "APPEND", LEM_STATUS_NONE,
      "ATOM(INBOX) LITERAL8(\\x00\\x01\\x02)" },
    { "RFC 7888 3: {n+}; RFC 3501 4.3: quoted-specials escaped",
      LEM_ARGS_COMMAND, "a5 LOGIN {4+}\r\ndemo \"pa\\\"s\\\\s\"\r\n", 0,
      "a5", "LOGIN", LEM_STATUS_NONE,
      "LITERAL+(demo) QUOTED(pa\"s\\s)" },
    { "RFC 3501 6.4.4: SEARCH keys are atoms",
      LEM_ARGS_COMMAND, "a6 SEARCH CHARSET UTF-8 NOT SEEN 2:4\r\n", 0,
      "a6", "SEARCH", LEM_STATUS_NONE,
      "ATOM(CHARSET) ATOM(UTF-8) ATOM(NOT) ATOM(SEEN) ATOM(2:4)" },
    { "RFC 3501 6.1.2: a command without arguments",
      LEM_ARGS_COMMAND, "a7 NOOP\r\n", 0, "a7", "NOOP", LEM_STATUS_NONE,
      "" },
    { "RFC 3501 6.3.1: an empty quoted string",
      LEM_ARGS_COMMAND, "a8 LIST \"\" *\r\n", 0, "a8", "LIST",
      LEM_STATUS_NONE, "QUOTED() ATOM(*)" },

    /* responses */
    { "draft 2.2, the session: S-IMAP: * 1234 EXISTS",
      LEM_ARGS_RESPONSE, "* 1234 EXISTS\r\n", 0, "*", NULL,
      LEM_STATUS_NONE, "NUMBER(1234) ATOM(EXISTS)" },
    { "draft 2.2, the session: S-IMAP: * Ok [UIDVALIDITY 12345678]",
      LEM_ARGS_RESPONSE, "* Ok [UIDVALIDITY 12345678]\r\n", 0, "*", NULL,
      LEM_STATUS_OK, "ATOM(Ok) SECTION(ATOM(UIDVALIDITY) NUMBER(12345678))" },
    { "draft 2.2, the session: S-IMAP: * FLAGS (...)",
      LEM_ARGS_RESPONSE, "* FLAGS (\\Answered \\Draft \\Flagged \\Seen)\r\n",
      0, "*", NULL, LEM_STATUS_NONE,
      "ATOM(FLAGS) LIST(ATOM(\\Answered) ATOM(\\Draft) ATOM(\\Flagged) "
      "ATOM(\\Seen))" },
    { "draft 2.2, the session: S-IMAP: * OK [PERMANENTFLAGS (...)]",
      LEM_ARGS_RESPONSE, "* OK [PERMANENTFLAGS (\\Seen \\*)] Limited\r\n",
      0, "*", NULL, LEM_STATUS_OK,
      "ATOM(OK) SECTION(ATOM(PERMANENTFLAGS) LIST(ATOM(\\Seen) ATOM(\\*))) "
      "TEXT(Limited)" },
    { "RFC 3501 7.1: a tagged OK with text",
      LEM_ARGS_RESPONSE, "a1 OK LOGIN completed\r\n", 0, "a1", NULL,
      LEM_STATUS_OK, "ATOM(OK) TEXT(LOGIN completed)" },
    { "RFC 5530 3: a NO with a response code",
      LEM_ARGS_RESPONSE,
      "a2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n", 0, "a2",
      NULL, LEM_STATUS_NO,
      "ATOM(NO) SECTION(ATOM(AUTHENTICATIONFAILED)) "
      "TEXT(Authentication failed.)" },
    { "RFC 3501 7.1.5: BYE", LEM_ARGS_RESPONSE,
      "* BYE [UNAVAILABLE] closed\r\n", 0, "*", NULL, LEM_STATUS_BYE,
      "ATOM(BYE) SECTION(ATOM(UNAVAILABLE)) TEXT(closed)" },
    { "RFC 3501 7.1: a code and no text", LEM_ARGS_RESPONSE,
      "* OK [ALERT]\r\n", 0, "*", NULL, LEM_STATUS_OK,
      "ATOM(OK) SECTION(ATOM(ALERT))" },
    { "RFC 3501 7.5: a continuation request", LEM_ARGS_RESPONSE,
      "+ Ready for literal data\r\n", 0, "+", NULL, LEM_STATUS_NONE,
      "TEXT(Ready for literal data)" },
    { "RFC 3501 7.5: a continuation request without text",
      LEM_ARGS_RESPONSE, "+\r\n", 0, "+", NULL, LEM_STATUS_NONE, "" },
    { "RFC 3501 7.4.2: FETCH with a literal inside its list",
      LEM_ARGS_RESPONSE,
      "* 1 FETCH (UID 5 BODY[] {5}\r\nhello FLAGS (\\Seen))\r\n", 0, "*",
      NULL, LEM_STATUS_NONE,
      "NUMBER(1) ATOM(FETCH) LIST(ATOM(UID) NUMBER(5) ATOM(BODY) "
      "SECTION^() LITERAL(hello) ATOM(FLAGS) LIST(ATOM(\\Seen)))" },
    { "RFC 3501 7.4.2: a partial's origin", LEM_ARGS_RESPONSE,
      "* 2 FETCH (BODY[1]<0> \"ab\")\r\n", 0, "*", NULL, LEM_STATUS_NONE,
      "NUMBER(2) ATOM(FETCH) LIST(ATOM(BODY) SECTION^(NUMBER(1)) "
      "PARTIAL^(0) QUOTED(ab))" },
    { "RFC 3516 4.2: BINARY[] answered with literal8", LEM_ARGS_RESPONSE,
      "* 3 FETCH (BINARY[1] ~{2}\r\n\0\1)\r\n", 32, "*", NULL,
      LEM_STATUS_NONE,
      "NUMBER(3) ATOM(FETCH) LIST(ATOM(BINARY) SECTION^(NUMBER(1)) "
      "LITERAL8(\\x00\\x01))" },
    { "RFC 3501 7.2.2: LIST", LEM_ARGS_RESPONSE,
      "* LIST (\\HasNoChildren) \".\" INBOX\r\n", 0, "*", NULL,
      LEM_STATUS_NONE,
      "ATOM(LIST) LIST(ATOM(\\HasNoChildren)) QUOTED(.) ATOM(INBOX)" },
    { "RFC 2342 5: NAMESPACE with NIL", LEM_ARGS_RESPONSE,
      "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n", 0, "*", NULL,
      LEM_STATUS_NONE,
      "ATOM(NAMESPACE) LIST(LIST(QUOTED() QUOTED(/))) NIL() NIL()" },

    /* arguments alone */
    { "lem_soap.c: a <SECTION> text", LEM_ARGS_PLAIN,
      "HEADER.FIELDS (From To)\r\n", 0, NULL, NULL, LEM_STATUS_NONE,
      "ATOM(HEADER.FIELDS) LIST(ATOM(From) ATOM(To))" },
};

START_TEST(rows_parse_to_their_tree_whole_and_byte_at_a_time)
{
    const parse_row_t *row = &parse_rows[_i];
    size_t len = row_len(row->in, row->len);
    const char *error;
    const lem_args_msg_t *whole, *bytes;

    whole = parse_in_steps(row->mode, row->in, len, 0, &error);
    ck_assert_msg(whole, "%s: %s", row->cite, error);
    check_parsed(row, whole);
    bytes = parse_in_steps(row->mode, row->in, len, 1, &error);
    ck_assert_msg(bytes, "%s, byte at a time: %s", row->cite, error);
    check_parsed(row, bytes);
}
END_TEST

START_TEST(rows_are_written_back_byte_for_byte)
{
    const parse_row_t *row = &parse_rows[_i];
    const char *error;
    const lem_args_msg_t *msg = parse_in_steps(row->mode, row->in,
                                               row_len(row->in, row->len),
                                               1, &error);

    ck_assert_msg(msg, "%s: %s", row->cite, error);
    check_written_back(row, msg);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Malformed input                                                     */
/* ------------------------------------------------------------------ */

typedef struct {
    const char     *what;
    lem_args_mode_t mode;
    const char     *in;
    size_t          len;      /* 0: strlen(in) */
    const char     *error;    /* expected message */
} bad_row_t;

static const bad_row_t bad_rows[] = {
    { "RFC 3501 4.3: a quoted string ends on its line", LEM_ARGS_COMMAND,
      "a1 LOGIN \"x\r\n", 0, "a quoted string holds CR, LF or NUL" },
    { "a list left open", LEM_ARGS_COMMAND, "a1 FETCH 1 (FLAGS\r\n", 0,
      "the line ends inside a list or section" },
    { "a list closed twice", LEM_ARGS_COMMAND, "a1 FETCH 1)\r\n", 0,
      "a \")\" closes nothing" },
    { "a section closed by a parenthesis", LEM_ARGS_COMMAND,
      "a1 FETCH 1 BODY[1)\r\n", 0, "a \")\" closes nothing" },
    { "a literal shorter than announced", LEM_ARGS_COMMAND,
      "a1 APPEND x {5}\r\nabc", 0, "the message is cut short" },
    { "a literal marker with text after it", LEM_ARGS_COMMAND,
      "a1 APPEND x {5}x\r\n", 0, "a literal marker must end the line" },
    { "a literal too large to count", LEM_ARGS_COMMAND,
      "a1 APPEND x {99999999999999999999999}\r\n", 0,
      "a literal is larger than allowed" },
    { "RFC 3501 9: tag excludes \"+\"", LEM_ARGS_COMMAND, "a+b NOOP\r\n", 0,
      "a malformed tag" },
    { "a bare LF ends no line", LEM_ARGS_COMMAND, "a1 NOOP\n", 0,
      "a malformed command name" },
    { "no command name", LEM_ARGS_COMMAND, "a1 \r\n", 0,
      "the command name is missing" },
    { "a response code left open", LEM_ARGS_RESPONSE,
      "* OK [ALERT look\r\n", 0, "the line ends inside a list or section" },
    { "a NUL in a response's text", LEM_ARGS_RESPONSE, "* OK a\0b\r\n", 10,
      "the text holds a bare LF or a NUL" },
    { "bytes after the message", LEM_ARGS_RESPONSE, "* 1 EXISTS\r\nx", 0,
      "bytes follow the message" },
    { "a section text holds no literal", LEM_ARGS_PLAIN, "HEADER {5}\r\n",
      0, "a literal is not allowed here" },
    { "a partial of letters", LEM_ARGS_RESPONSE,
      "* 1 FETCH (BODY[]<ab> x)\r\n", 0, "a malformed partial" },
};

START_TEST(malformed_messages_are_refused_with_a_reason)
{
    const bad_row_t *row = &bad_rows[_i];
    const lem_args_msg_t *msg;
    const char *error = NULL;

    ck_assert_msg(lem_args_parse(pool, row->mode, row->in,
                                 row_len(row->in, row->len), &msg, &error)
                  == APR_EINVAL, "%s: accepted", row->what);
    ck_assert_ptr_null(msg);
    ck_assert_msg(!strcmp(error, row->error), "%s: said %s", row->what,
                  error);
}
END_TEST

START_TEST(nesting_deeper_than_the_limit_is_refused)
{
    char in[LEM_ARGS_MAX_DEPTH * 2 + 32];
    const lem_args_msg_t *msg;
    const char *error;
    int i, n = 0;

    n += snprintf(in, sizeof(in), "a1 X ");
    for (i = 0; i <= LEM_ARGS_MAX_DEPTH; i++) {
        in[n++] = '(';
    }
    memcpy(in + n, "\r\n", 3);
    ck_assert_int_eq(lem_args_parse(pool, LEM_ARGS_COMMAND, in, strlen(in),
                                    &msg, &error), APR_EINVAL);
    ck_assert_str_eq(error, "lists or sections nested too deep");
}
END_TEST

START_TEST(a_literal_larger_than_the_parser_allows_is_refused)
{
    lem_args_parser_t *ps = lem_args_parser_create(pool, LEM_ARGS_COMMAND,
                                                   10);
    apr_size_t used;
    const char *in = "a1 APPEND x {11}\r\n";

    ck_assert_int_eq(lem_args_feed(ps, in, strlen(in), &used),
                     LEM_ARGS_ERROR);
    ck_assert_str_eq(lem_args_error(ps), "a literal is larger than allowed");
}
END_TEST

START_TEST(a_parser_reads_message_after_message_when_reset)
{
    const char *in = "* 1 EXISTS\r\n* 2 RECENT\r\nt1 OK done\r\n";
    lem_args_parser_t *ps = lem_args_parser_create(pool, LEM_ARGS_RESPONSE,
                                                   100);
    const char *want[] = { "NUMBER(1) ATOM(EXISTS)", "NUMBER(2) ATOM(RECENT)",
                           "ATOM(OK) TEXT(done)" };
    size_t off = 0, len = strlen(in);
    int i;

    for (i = 0; i < 3; i++) {
        char tree[DUMP_MAX] = "";
        apr_size_t used;

        ck_assert_int_eq(lem_args_feed(ps, in + off, len - off, &used),
                         LEM_ARGS_DONE);
        off += used;
        dump_list(lem_args_msg(ps)->args, tree, sizeof(tree));
        ck_assert_str_eq(tree, want[i]);
        lem_args_parser_reset(ps, NULL);
    }
    ck_assert_uint_eq(off, len);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Values and the writer                                               */
/* ------------------------------------------------------------------ */

typedef struct {
    const char *why;
    const char *value;
    size_t      len;        /* 0: strlen(value) */
    const char *written;    /* as IMAP text */
    size_t      written_len; /* 0: strlen(written) */
} value_row_t;

static const value_row_t value_rows[] = {
    { "an atom when it can be one", "INBOX", 0, "INBOX", 0 },
    { "keywords are atoms (RFC 3501 2.3.2)", "$Forwarded", 0,
      "$Forwarded", 0 },
    { "STORE's data item is an atom", "+FLAGS.SILENT", 0, "+FLAGS.SILENT", 0 },
    { "SASL-IR's base64 is an atom", "AGRlbW8AZGVtbw==", 0,
      "AGRlbW8AZGVtbw==", 0 },
    { "the empty string is quoted", "", 0, "\"\"", 0 },
    { "NIL as a string is quoted, not NIL", "NIL", 0, "\"NIL\"", 0 },
    { "a space makes it quoted", "Sent Items", 0, "\"Sent Items\"", 0 },
    { "quoted-specials are escaped", "a\"b\\c", 0, "\"a\\\"b\\\\c\"", 0 },
    { "list-wildcards are quoted", "1:*", 0, "\"1:*\"", 0 },
    { "a flag given as a value is a string", "\\Seen", 0, "\"\\\\Seen\"", 0 },
    { "brackets are quoted", "a[b]", 0, "\"a[b]\"", 0 },
    { "CR LF make a literal", "x\r\ny", 0, "{4}\r\nx\r\ny", 0 },
    { "a lone LF makes a literal", "x\ny", 0, "{3}\r\nx\ny", 0 },
    { "8-bit makes a literal", "\xc3\xa9t\xc3\xa9", 0,
      "{5}\r\n\xc3\xa9t\xc3\xa9", 0 },
    { "NUL makes a literal8 (RFC 3516)", "a\0b", 3, "~{3}\r\na\0b", 9 },
};

START_TEST(values_take_the_form_that_carries_them_safely)
{
    const value_row_t *row = &value_rows[_i];
    size_t len = row->len ? row->len : strlen(row->value);
    lem_arg_t *a = lem_arg_value(pool, row->value, len);
    text_t out = { "", 0 };
    lem_sink_t sink = { to_text, &out };
    const char *error;
    size_t want = row_len(row->written, row->written_len);

    ck_assert_int_eq(lem_args_write(a, &sink, &error), APR_SUCCESS);
    ck_assert_msg(out.len == want && !memcmp(out.data, row->written, want),
                  "%s: written as %.*s", row->why, (int)out.len, out.data);
}
END_TEST

START_TEST(a_long_value_is_a_literal)
{
    char big[LEM_ARGS_MAX_QUOTED + 1];
    lem_arg_t *a;

    memset(big, 'a', sizeof(big));
    a = lem_arg_value(pool, big, sizeof(big) - 1);
    ck_assert_int_eq(a->kind, LEM_ARG_ATOM);
    a = lem_arg_value(pool, big, sizeof(big));
    ck_assert_int_eq(a->kind, LEM_ARG_LITERAL);
}
END_TEST

/* Count the commands a client stream holds, with the tunnel's parser. */
static unsigned commands_in(const char *data, size_t len)
{
    char line[TEXT_MAX];
    lem_cmd_parser_t cp;
    lem_imap_piece_t piece;
    apr_size_t used;

    lem_cmd_init(&cp, line, sizeof(line), 1 << 20);
    while (len) {
        lem_imap_ev_t ev = lem_cmd_next(&cp, data, len, &used, &piece);

        ck_assert_int_ne(ev, LEM_IMAP_ERROR);
        data += used;
        len -= used;
        if (ev == LEM_IMAP_NEED_MORE) {
            break;
        }
    }
    ck_assert(lem_cmd_at_boundary(&cp));
    return cp.commands;
}

START_TEST(no_value_can_make_a_second_command)
{
    static const struct {
        const char *s;
        size_t      len;    /* 0: strlen(s) */
    } hostile[] = {
        { "x\r\na2 LOGOUT", 0 }, { "x\"\r\na2 LOGOUT\r\n", 0 },
        { "\r\n", 0 }, { "{5}", 0 }, { "x {5}", 0 }, { "x\" {5}\r\n", 0 },
        { "\\", 0 }, { "\"", 0 }, { ") a2 NOOP", 0 },
        { "x\na2 LOGOUT\n", 0 }, { "x\ra2 LOGOUT", 0 }, { "a\0\r\nb", 5 }
    };
    size_t i;

    for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        size_t len = row_len(hostile[i].s, hostile[i].len);
        lem_arg_list_t args;
        text_t out = { "", 0 };
        lem_sink_t sink = { to_text, &out };
        const char *error;

        lem_arg_list_init(&args);
        lem_arg_list_add(&args, lem_arg_value(pool, hostile[i].s, len));
        lem_arg_list_add(&args, lem_arg_value(pool, hostile[i].s, len));
        ck_assert_int_eq(lem_args_write_command("a1", "LOGIN", args.first,
                                                &sink, &error),
                         APR_SUCCESS);
        ck_assert_msg(commands_in(out.data, out.len) == 1,
                      "value %zu made more than one command", i);
    }
}
END_TEST

typedef struct {
    const char    *why;
    lem_arg_kind_t kind;
    const char    *data;
    const char    *error;
} unsafe_row_t;

static const unsafe_row_t unsafe_rows[] = {
    { "an atom with a space", LEM_ARG_ATOM, "a b",
      "an atom holds a character atoms cannot" },
    { "an atom with a CRLF", LEM_ARG_ATOM, "a\r\nb",
      "an atom holds a character atoms cannot" },
    { "an atom with a brace", LEM_ARG_ATOM, "{5}",
      "an atom holds a character atoms cannot" },
    { "an empty atom", LEM_ARG_ATOM, "",
      "an atom holds a character atoms cannot" },
    { "a quoted string with CR", LEM_ARG_QUOTED, "a\rb",
      "a quoted string may not hold CR, LF or NUL" },
    { "a number with a letter", LEM_ARG_NUMBER, "12a",
      "a number holds other than digits" },
    { "a partial of letters", LEM_ARG_PARTIAL, "a.b",
      "a partial is not offset[.length]" },
    { "text with LF", LEM_ARG_TEXT, "a\nb",
      "text may not hold CR, LF or NUL" },
};

/* Text that a response may hold but a command may not. */
static const char *const unsafe_command_text[] = {
    "a\"b",            /* RFC 3501 4.3: opens a string to the line's end */
    "x {5}",            /* RFC 3501 9: announces a literal before CRLF */
    "caf\xc3\xa9",      /* draft 2.1: command text is 7-bit */
};

START_TEST(a_command_keeps_no_text_that_would_change_its_framing)
{
    lem_arg_t *a = lem_arg_new(pool, LEM_ARG_TEXT, unsafe_command_text[_i],
                               strlen(unsafe_command_text[_i]));
    text_t out = { "", 0 };
    lem_sink_t sink = { to_text, &out };
    const char *error = NULL;

    ck_assert_int_eq(lem_args_write_command("t1", "NOOP", a, &sink,
                                            &error), APR_EINVAL);
    ck_assert_uint_eq(out.len, 0);
    /* the same text in a response goes as it is */
    ck_assert_int_eq(lem_args_write(a, &sink, &error), APR_SUCCESS);
}
END_TEST

/* draft 2.1 and RFC 3501 4.3: a value with 8-bit octets is no quoted
 * string on a 7-bit command line, but a literal */
START_TEST(eight_bit_value_is_written_as_a_literal)
{
    lem_arg_t *a = lem_arg_new(pool, LEM_ARG_QUOTED, "caf\xc3\xa9", 5);
    text_t out = { "", 0 };
    lem_sink_t sink = { to_text, &out };
    const char *error = NULL;

    ck_assert_int_eq(lem_args_write(a, &sink, &error), APR_SUCCESS);
    ck_assert_uint_eq(out.len, 10);
    ck_assert(!memcmp(out.data, "{5}\r\ncaf\xc3\xa9", 10));
}
END_TEST

START_TEST(the_writer_refuses_what_would_not_stay_one_argument)
{
    const unsafe_row_t *row = &unsafe_rows[_i];
    lem_arg_t *a = lem_arg_new(pool, row->kind, row->data,
                               strlen(row->data));
    text_t out = { "", 0 };
    lem_sink_t sink = { to_text, &out };
    const char *error = NULL;

    ck_assert_int_eq(lem_args_write(a, &sink, &error), APR_EINVAL);
    ck_assert_msg(!strcmp(error, row->error), "%s: said %s", row->why,
                  error);
}
END_TEST

START_TEST(malformed_tags_and_names_are_not_written)
{
    text_t out = { "", 0 };
    lem_sink_t sink = { to_text, &out };
    const char *error;

    ck_assert_int_eq(lem_args_write_command("a 1", "NOOP", NULL, &sink,
                                            &error), APR_EINVAL);
    ck_assert_int_eq(lem_args_write_command("a1", "NO\r\nOP", NULL, &sink,
                                            &error), APR_EINVAL);
    ck_assert_int_eq(lem_args_write_command("a1", "UID ", NULL, &sink,
                                            &error), APR_EINVAL);
    ck_assert_int_eq(lem_args_write_command("a1", "UID FETCH", NULL, &sink,
                                            &error), APR_SUCCESS);
    ck_assert_uint_eq(out.len, strlen("a1 UID FETCH\r\n"));
}
END_TEST

Suite *lem_args_suite(void)
{
    Suite *s = suite_create("lem_args");
    TCase *parse = tcase_create("parse");
    TCase *write = tcase_create("write");

    tcase_add_checked_fixture(parse, setup, teardown);
    tcase_add_loop_test(parse,
                        rows_parse_to_their_tree_whole_and_byte_at_a_time, 0,
                        N_ROWS(parse_rows));
    tcase_add_loop_test(parse, rows_are_written_back_byte_for_byte, 0,
                        N_ROWS(parse_rows));
    tcase_add_loop_test(parse, malformed_messages_are_refused_with_a_reason,
                        0, N_ROWS(bad_rows));
    tcase_add_test(parse, nesting_deeper_than_the_limit_is_refused);
    tcase_add_test(parse, a_literal_larger_than_the_parser_allows_is_refused);
    tcase_add_test(parse, a_parser_reads_message_after_message_when_reset);
    suite_add_tcase(s, parse);

    tcase_add_checked_fixture(write, setup, teardown);
    tcase_add_loop_test(write, values_take_the_form_that_carries_them_safely,
                        0, N_ROWS(value_rows));
    tcase_add_test(write, a_long_value_is_a_literal);
    tcase_add_test(write, eight_bit_value_is_written_as_a_literal);
    tcase_add_loop_test(write,
        a_command_keeps_no_text_that_would_change_its_framing, 0,
        (int)(sizeof(unsafe_command_text) / sizeof(unsafe_command_text[0])));
    tcase_add_test(write, no_value_can_make_a_second_command);
    tcase_add_loop_test(write,
                        the_writer_refuses_what_would_not_stay_one_argument,
                        0, N_ROWS(unsafe_rows));
    tcase_add_test(write, malformed_tags_and_names_are_not_written);
    suite_add_tcase(s, write);
    return s;
}
