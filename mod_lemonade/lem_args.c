/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#include <apr_lib.h>
#include <apr_strings.h>

#include "lem_args.h"

/* lem_args_parser_t.state */
enum {
    ST_TAG = 0,     /* the tag, "*" or "+" */
    ST_NAME,        /* a command's name */
    ST_NAME_UID,    /* the word after "UID" */
    ST_ARGS,        /* between arguments */
    ST_ATOM,        /* in an atom */
    ST_TILDE,       /* "~": "{" makes a literal8, else an atom goes on */
    ST_QUOTED,      /* in a quoted string */
    ST_QUOTED_ESC,  /* after a backslash in one */
    ST_LIT_NUM,     /* "{" DIGITS */
    ST_LIT_CLOSE,   /* "{" DIGITS "+": only "}" may follow */
    ST_LIT_CR,      /* "}": only CR may follow */
    ST_LIT_LF,      /* "}" CR: only LF may follow */
    ST_LIT_DATA,    /* the literal's octets */
    ST_PARTIAL,     /* "<" after a section */
    ST_STATUS,      /* after a status word: SP or CR */
    ST_CODE,        /* after the status word's SP: "[" or text */
    ST_AFTER_CODE,  /* after the code's "]": SP or CR */
    ST_TEXT,        /* the rest of the line */
    ST_LF,          /* CR read: only LF may follow */
    ST_DONE,
    ST_ERROR
};

#define TOK_FIRST_CAP 256

struct lem_args_parser_t {
    apr_pool_t      *pool;          /* nodes and copies */
    apr_pool_t      *own;           /* the token buffer */
    lem_args_mode_t  mode;
    apr_size_t       max_literal;
    lem_args_msg_t   msg;
    const char      *error;
    int              state;

    char            *tok;           /* the token being read */
    apr_size_t       tok_len;
    apr_size_t       tok_cap;

    /* level 0 is the message; level n > 0 the n-th open list/section */
    lem_arg_list_t   level[LEM_ARGS_MAX_DEPTH + 1];
    lem_arg_t       *open[LEM_ARGS_MAX_DEPTH + 1];
    int              depth;
    int              glue;          /* no space since the last token */
    int              after_section; /* and that token closed a section */
    int              in_code;       /* level 1 is a response code */

    lem_arg_t       *lit;           /* the literal being read */
    apr_uint64_t     lit_len;
    apr_size_t       lit_got;
    unsigned         lit8:1;
    unsigned         nonsync:1;
};

/* ------------------------------------------------------------------ */
/* Characters                                                          */
/* ------------------------------------------------------------------ */

/* RFC 3501 9: ATOM-CHAR, with "%" and "*" (list-wildcards: "1:*", "\*")
 * and "\" (flags) allowed too; "]" ends a section, so it is not. */
static int is_atom_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{'
           && c != '"' && c != '[' && c != ']';
}

/* RFC 3501 9: tag = 1*<any ASTRING-CHAR except "+">. */
static int is_tag_char(unsigned char c)
{
    return (is_atom_char(c) && c != '+' && c != '%' && c != '*'
            && c != '\\') || c == ']';
}

/* What lem_arg_value() writes as an atom: a cautious subset. */
static int is_value_char(unsigned char c)
{
    return apr_isalnum(c) || (c && strchr("!#$&'+,-./:;=?@^_`|~", c));
}

static int is_digits(const char *s, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; i++) {
        if (!apr_isdigit(s[i])) {
            return 0;
        }
    }
    return len > 0;
}

/* RFC 3501 9: "<" number "." nz-number ">", or "<" number ">". */
static int is_partial(const char *s, apr_size_t len)
{
    const char *dot = len ? memchr(s, '.', len) : NULL;

    if (!dot) {
        return is_digits(s, len);
    }
    return is_digits(s, (apr_size_t)(dot - s))
           && is_digits(dot + 1, len - (apr_size_t)(dot - s) - 1);
}

/* ------------------------------------------------------------------ */
/* Building trees                                                      */
/* ------------------------------------------------------------------ */

lem_arg_t *lem_arg_new(apr_pool_t *p, lem_arg_kind_t kind,
                       const char *data, apr_size_t len)
{
    lem_arg_t *a = apr_pcalloc(p, sizeof(*a));
    char *copy = apr_palloc(p, len + 1);

    if (len) {
        memcpy(copy, data, len);
    }
    copy[len] = '\0';
    a->kind = kind;
    a->data = copy;
    a->len = len;
    return a;
}

lem_arg_t *lem_arg_value(apr_pool_t *p, const char *data, apr_size_t len)
{
    apr_size_t i, atom = 0, quoted = 0;
    int nul = 0;
    lem_arg_t *lit;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];

        atom += is_value_char(c);
        quoted += (c > 0 && c < 0x80 && c != '\r' && c != '\n');
        nul |= (c == 0);
    }
    if (len <= LEM_ARGS_MAX_QUOTED && atom == len && len
        && !(len == 3 && !strncasecmp(data, "NIL", 3))) {
        return lem_arg_new(p, LEM_ARG_ATOM, data, len);
    }
    if (len <= LEM_ARGS_MAX_QUOTED && quoted == len) {
        return lem_arg_new(p, LEM_ARG_QUOTED, data, len);
    }
    lit = lem_arg_new(p, LEM_ARG_LITERAL, data, len);
    lit->literal8 = nul;
    return lit;
}

void lem_arg_list_init(lem_arg_list_t *l)
{
    l->first = l->last = NULL;
    l->tail = &l->first;
}

void lem_arg_list_add(lem_arg_list_t *l, lem_arg_t *node)
{
    *l->tail = node;
    l->tail = &node->next;
    l->last = node;
}

/* ------------------------------------------------------------------ */
/* Parsing: the tree                                                   */
/* ------------------------------------------------------------------ */

static lem_args_ev_t fail(lem_args_parser_t *ps, const char *why)
{
    ps->error = why;
    ps->state = ST_ERROR;
    return LEM_ARGS_ERROR;
}

static lem_arg_list_t *here(lem_args_parser_t *ps)
{
    return &ps->level[ps->depth];
}

static void add(lem_args_parser_t *ps, lem_arg_t *node)
{
    lem_arg_list_t *l = here(ps);

    node->glued = ps->glue && l->first != NULL;
    lem_arg_list_add(l, node);
    ps->glue = 1;
    ps->after_section = 0;
}

static int tok_push(lem_args_parser_t *ps, char c)
{
    if (ps->tok_len == ps->tok_cap) {
        apr_size_t cap = ps->tok_cap ? ps->tok_cap * 2 : TOK_FIRST_CAP;
        char *tok;

        if (ps->tok_cap >= LEM_ARGS_MAX_TOKEN) {
            return 0;
        }
        tok = apr_palloc(ps->own, cap);
        if (ps->tok_len) {
            memcpy(tok, ps->tok, ps->tok_len);
        }
        ps->tok = tok;
        ps->tok_cap = cap;
    }
    ps->tok[ps->tok_len++] = c;
    return 1;
}

static lem_args_ev_t push_or_fail(lem_args_parser_t *ps, char c)
{
    return tok_push(ps, c) ? LEM_ARGS_NEED_MORE
                           : fail(ps, "a token is longer than 64 KB");
}

static lem_args_ev_t open_level(lem_args_parser_t *ps, lem_arg_kind_t kind)
{
    lem_arg_t *node;

    if (ps->depth == LEM_ARGS_MAX_DEPTH) {
        return fail(ps, "lists or sections nested too deep");
    }
    node = lem_arg_new(ps->pool, kind, NULL, 0);
    add(ps, node);
    ps->depth++;
    ps->open[ps->depth] = node;
    lem_arg_list_init(here(ps));
    ps->glue = 0;
    return LEM_ARGS_NEED_MORE;
}

static lem_args_ev_t close_level(lem_args_parser_t *ps, lem_arg_kind_t kind)
{
    if (ps->depth == 0 || ps->open[ps->depth]->kind != kind) {
        return fail(ps, kind == LEM_ARG_LIST ? "a \")\" closes nothing"
                                             : "a \"]\" closes nothing");
    }
    ps->open[ps->depth]->kids = here(ps)->first;
    ps->depth--;
    ps->glue = 1;
    ps->after_section = (kind == LEM_ARG_SECTION);
    if (ps->in_code && ps->depth == 0) {
        ps->in_code = 0;
        ps->state = ST_AFTER_CODE;
    }
    return LEM_ARGS_NEED_MORE;
}

static lem_status_t status_of(const char *s, apr_size_t len)
{
    static const struct {
        const char *word;
        lem_status_t status;
    } words[] = {
        { "OK", LEM_STATUS_OK }, { "NO", LEM_STATUS_NO },
        { "BAD", LEM_STATUS_BAD }, { "PREAUTH", LEM_STATUS_PREAUTH },
        { "BYE", LEM_STATUS_BYE }
    };
    apr_size_t i;

    for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strlen(words[i].word) == len && !strncasecmp(s, words[i].word,
                                                         len)) {
            return words[i].status;
        }
    }
    return LEM_STATUS_NONE;
}

/* RFC 3501 7.1: the first word of a response may make it a status. */
static int starts_status(lem_args_parser_t *ps, const lem_arg_t *atom)
{
    if (ps->mode != LEM_ARGS_RESPONSE || ps->depth != 0
        || ps->level[0].first != atom || atom->kind != LEM_ARG_ATOM) {
        return 0;
    }
    ps->msg.status = status_of(atom->data, atom->len);
    return ps->msg.status != LEM_STATUS_NONE;
}

static void end_atom(lem_args_parser_t *ps)
{
    lem_arg_kind_t kind = LEM_ARG_ATOM;
    lem_arg_t *node;

    if (is_digits(ps->tok, ps->tok_len)) {
        kind = LEM_ARG_NUMBER;
    }
    else if (ps->tok_len == 3 && !strncasecmp(ps->tok, "NIL", 3)) {
        kind = LEM_ARG_NIL;
    }
    node = lem_arg_new(ps->pool, kind, ps->tok, ps->tok_len);
    add(ps, node);
    ps->state = starts_status(ps, node) ? ST_STATUS : ST_ARGS;
}

static void end_token(lem_args_parser_t *ps, lem_arg_kind_t kind)
{
    add(ps, lem_arg_new(ps->pool, kind, ps->tok, ps->tok_len));
    ps->state = ST_ARGS;
}

/* ------------------------------------------------------------------ */
/* Parsing: one byte                                                   */
/* ------------------------------------------------------------------ */

static lem_args_ev_t start_literal(lem_args_parser_t *ps, int lit8)
{
    if (ps->mode == LEM_ARGS_PLAIN) {
        return fail(ps, "a literal is not allowed here");
    }
    ps->lit8 = lit8;
    ps->nonsync = 0;
    ps->lit_len = 0;
    ps->tok_len = 0;
    ps->state = ST_LIT_NUM;
    return LEM_ARGS_NEED_MORE;
}

/* Between arguments: what starts the next one. */
static lem_args_ev_t on_args(lem_args_parser_t *ps, char c)
{
    ps->tok_len = 0;
    switch (c) {
    case ' ':
        ps->glue = 0;
        ps->after_section = 0;
        return LEM_ARGS_NEED_MORE;
    case '\r':
        if (ps->depth) {
            return fail(ps, "the line ends inside a list or section");
        }
        ps->state = ST_LF;
        return LEM_ARGS_NEED_MORE;
    case '(':
        return open_level(ps, LEM_ARG_LIST);
    case ')':
        return close_level(ps, LEM_ARG_LIST);
    case '[':
        return open_level(ps, LEM_ARG_SECTION);
    case ']':
        return close_level(ps, LEM_ARG_SECTION);
    case '"':
        ps->state = ST_QUOTED;
        return LEM_ARGS_NEED_MORE;
    case '{':
        return start_literal(ps, 0);
    case '~':
        ps->state = ST_TILDE;
        return LEM_ARGS_NEED_MORE;
    case '<':
        if (ps->after_section && ps->glue) {
            ps->state = ST_PARTIAL;
            return LEM_ARGS_NEED_MORE;
        }
        break;
    }
    if (!is_atom_char((unsigned char)c)) {
        return fail(ps, "a character that starts no argument");
    }
    ps->state = ST_ATOM;
    return push_or_fail(ps, c);
}

static lem_args_ev_t end_tag(lem_args_parser_t *ps, char c)
{
    if (ps->tok_len == 0) {
        return fail(ps, "the tag is missing");
    }
    ps->msg.tag = apr_pstrmemdup(ps->pool, ps->tok, ps->tok_len);
    ps->tok_len = 0;
    if (ps->mode == LEM_ARGS_COMMAND) {
        ps->msg.kind = LEM_MSG_COMMAND;
        ps->state = ST_NAME;
    }
    else if (!strcmp(ps->msg.tag, "+")) {
        ps->msg.kind = LEM_MSG_CONTINUATION;
        ps->state = (c == '\r') ? ST_LF : ST_TEXT;
    }
    else {
        ps->msg.kind = strcmp(ps->msg.tag, "*") ? LEM_MSG_TAGGED
                                                : LEM_MSG_UNTAGGED;
        ps->state = ST_ARGS;
    }
    return LEM_ARGS_NEED_MORE;
}

/* RFC 3501 2.2.2: a tag; a response may have "*" or "+" instead. */
static lem_args_ev_t on_tag(lem_args_parser_t *ps, char c)
{
    int resp = (ps->mode == LEM_ARGS_RESPONSE);
    int special = resp && ps->tok_len == 1
                  && (ps->tok[0] == '*' || ps->tok[0] == '+');

    if (c == ' ' || (c == '\r' && special && ps->tok[0] == '+')) {
        return end_tag(ps, c);
    }
    if (resp && ps->tok_len == 0 && (c == '*' || c == '+')) {
        return push_or_fail(ps, c);
    }
    if (special || !is_tag_char((unsigned char)c)) {
        return fail(ps, "a malformed tag");
    }
    return push_or_fail(ps, c);
}

static lem_args_ev_t on_name(lem_args_parser_t *ps, char c)
{
    if (c != ' ' && c != '\r') {
        return is_atom_char((unsigned char)c) ? push_or_fail(ps, c)
               : fail(ps, "a malformed command name");
    }
    if (ps->tok_len == 0 || (ps->state == ST_NAME_UID
                             && ps->tok[ps->tok_len - 1] == ' ')) {
        return fail(ps, "the command name is missing");
    }
    if (ps->state == ST_NAME && c == ' ' && ps->tok_len == 3
        && !strncasecmp(ps->tok, "UID", 3)) {
        ps->state = ST_NAME_UID;
        return push_or_fail(ps, ' ');
    }
    ps->msg.name = apr_pstrmemdup(ps->pool, ps->tok, ps->tok_len);
    ps->tok_len = 0;
    ps->state = (c == '\r') ? ST_LF : ST_ARGS;
    return LEM_ARGS_NEED_MORE;
}

static lem_args_ev_t on_literal_number(lem_args_parser_t *ps, char c)
{
    if (apr_isdigit(c)) {
        unsigned d = (unsigned)(c - '0');

        if (ps->lit_len > (APR_UINT64_MAX - d) / 10
            || ps->lit_len * 10 + d > ps->max_literal) {
            return fail(ps, "a literal is larger than allowed");
        }
        ps->lit_len = ps->lit_len * 10 + d;
        ps->tok_len++;
        return LEM_ARGS_NEED_MORE;
    }
    if (ps->tok_len == 0 || (c != '}' && c != '+')) {
        return fail(ps, "a malformed literal marker");
    }
    ps->nonsync = (c == '+');
    ps->state = (c == '+') ? ST_LIT_CLOSE : ST_LIT_CR;
    return LEM_ARGS_NEED_MORE;
}

static lem_args_ev_t begin_literal_data(lem_args_parser_t *ps)
{
    lem_arg_t *lit = apr_pcalloc(ps->pool, sizeof(*lit));
    char *data = apr_palloc(ps->pool, (apr_size_t)ps->lit_len + 1);

    data[ps->lit_len] = '\0';
    lit->kind = LEM_ARG_LITERAL;
    lit->data = data;
    lit->len = (apr_size_t)ps->lit_len;
    lit->literal8 = ps->lit8;
    lit->nonsync = ps->nonsync;
    add(ps, lit);
    ps->lit = lit;
    ps->lit_got = 0;
    ps->state = ps->lit_len ? ST_LIT_DATA : ST_ARGS;
    return LEM_ARGS_NEED_MORE;
}

static lem_args_ev_t on_partial(lem_args_parser_t *ps, char c)
{
    if (c != '>') {
        return (apr_isdigit(c) || c == '.') ? push_or_fail(ps, c)
               : fail(ps, "a malformed partial");
    }
    if (!is_partial(ps->tok, ps->tok_len)) {
        return fail(ps, "a malformed partial");
    }
    end_token(ps, LEM_ARG_PARTIAL);
    return LEM_ARGS_NEED_MORE;
}

static lem_args_ev_t on_quoted(lem_args_parser_t *ps, char c)
{
    if (c == '\r' || c == '\n' || c == '\0') {
        return fail(ps, "a quoted string holds CR, LF or NUL");
    }
    if (ps->state == ST_QUOTED_ESC) {
        ps->state = ST_QUOTED;
        return push_or_fail(ps, c);
    }
    if (c == '\\') {
        ps->state = ST_QUOTED_ESC;
        return LEM_ARGS_NEED_MORE;
    }
    if (c == '"') {
        end_token(ps, LEM_ARG_QUOTED);
        return LEM_ARGS_NEED_MORE;
    }
    return push_or_fail(ps, c);
}

static lem_args_ev_t on_text(lem_args_parser_t *ps, char c)
{
    if (c == '\n' || c == '\0') {
        return fail(ps, "the text holds a bare LF or a NUL");
    }
    if (c != '\r') {
        return push_or_fail(ps, c);
    }
    if (ps->tok_len) {
        add(ps, lem_arg_new(ps->pool, LEM_ARG_TEXT, ps->tok, ps->tok_len));
    }
    ps->state = ST_LF;
    return LEM_ARGS_NEED_MORE;
}

/* After a status word and its space: a code in brackets, or the text. */
static int on_code(lem_args_parser_t *ps, char c, lem_args_ev_t *ev)
{
    if (c == '[') {
        ps->state = ST_ARGS;
        *ev = open_level(ps, LEM_ARG_SECTION);
        ps->in_code = 1;
        return 1;
    }
    ps->tok_len = 0;
    ps->state = ST_TEXT;
    return 0;
}

/*
 * One byte in any state but ST_LIT_DATA. Sets `*again` when the byte
 * ends a token without belonging to it and must be read again.
 */
static lem_args_ev_t step(lem_args_parser_t *ps, char c, int *again)
{
    lem_args_ev_t ev = LEM_ARGS_NEED_MORE;

    *again = 0;
    switch (ps->state) {
    case ST_TAG:
        return on_tag(ps, c);
    case ST_NAME:
    case ST_NAME_UID:
        return on_name(ps, c);
    case ST_ARGS:
        return on_args(ps, c);
    case ST_ATOM:
        if (is_atom_char((unsigned char)c)) {
            return push_or_fail(ps, c);
        }
        end_atom(ps);
        *again = 1;
        return ev;
    case ST_TILDE:
        if (c == '{') {
            return start_literal(ps, 1);
        }
        ps->state = ST_ATOM;
        *again = 1;
        return push_or_fail(ps, '~');
    case ST_QUOTED:
    case ST_QUOTED_ESC:
        return on_quoted(ps, c);
    case ST_LIT_NUM:
        return on_literal_number(ps, c);
    case ST_LIT_CLOSE:
        ps->state = ST_LIT_CR;
        return c == '}' ? ev : fail(ps, "a malformed literal marker");
    case ST_LIT_CR:
        ps->state = ST_LIT_LF;
        return c == '\r' ? ev : fail(ps, "a literal marker must end the line");
    case ST_LIT_LF:
        return c == '\n' ? begin_literal_data(ps)
                         : fail(ps, "a literal marker must end the line");
    case ST_PARTIAL:
        return on_partial(ps, c);
    case ST_STATUS:
        ps->state = (c == ' ') ? ST_CODE : ST_LF;
        ps->glue = (c != ' ');
        return (c == ' ' || c == '\r') ? ev
               : fail(ps, "a status word runs into other text");
    case ST_CODE:
        if (on_code(ps, c, &ev)) {
            return ev;
        }
        *again = 1;
        return ev;
    case ST_AFTER_CODE:
        if (c == ' ' || c == '\r') {
            ps->tok_len = 0;
            ps->glue = 0;
            ps->state = (c == ' ') ? ST_TEXT : ST_LF;
            return ev;
        }
        ps->tok_len = 0;
        ps->state = ST_TEXT;
        *again = 1;
        return ev;
    case ST_TEXT:
        return on_text(ps, c);
    case ST_LF:
        if (c != '\n') {
            return fail(ps, "a CR without LF");
        }
        ps->msg.args = ps->level[0].first;
        ps->state = ST_DONE;
        return LEM_ARGS_DONE;
    }
    return fail(ps, ps->error ? ps->error : "the parser was not reset");
}

static apr_size_t literal_data(lem_args_parser_t *ps, const char *in,
                               apr_size_t len)
{
    apr_size_t n = ps->lit->len - ps->lit_got;

    if (n > len) {
        n = len;
    }
    memcpy((char *)ps->lit->data + ps->lit_got, in, n);
    ps->lit_got += n;
    if (ps->lit_got == ps->lit->len) {
        ps->state = ST_ARGS;
    }
    return n;
}

lem_args_ev_t lem_args_feed(lem_args_parser_t *ps, const char *in,
                            apr_size_t len, apr_size_t *used)
{
    apr_size_t i = 0;

    while (i < len) {
        lem_args_ev_t ev;
        int again;

        if (ps->state == ST_LIT_DATA) {
            i += literal_data(ps, in + i, len - i);
            continue;
        }
        ev = step(ps, in[i], &again);
        if (ev == LEM_ARGS_ERROR) {
            *used = i;
            return ev;
        }
        if (!again) {
            i++;
        }
        if (ev == LEM_ARGS_DONE) {
            *used = i;
            return ev;
        }
    }
    *used = len;
    return ps->state == ST_ERROR ? LEM_ARGS_ERROR : LEM_ARGS_NEED_MORE;
}

/* ------------------------------------------------------------------ */
/* Parsing: the rest of the API                                        */
/* ------------------------------------------------------------------ */

void lem_args_parser_reset(lem_args_parser_t *ps, apr_pool_t *pool)
{
    if (pool) {
        ps->pool = pool;
    }
    memset(&ps->msg, 0, sizeof(ps->msg));
    ps->msg.kind = (ps->mode == LEM_ARGS_PLAIN) ? LEM_MSG_PLAIN
                                                 : LEM_MSG_COMMAND;
    ps->error = NULL;
    ps->state = (ps->mode == LEM_ARGS_PLAIN) ? ST_ARGS : ST_TAG;
    ps->tok_len = 0;
    ps->depth = 0;
    lem_arg_list_init(&ps->level[0]);
    ps->glue = ps->after_section = ps->in_code = 0;
    ps->lit = NULL;
}

lem_args_parser_t *lem_args_parser_create(apr_pool_t *pool,
                                          lem_args_mode_t mode,
                                          apr_size_t max_literal)
{
    lem_args_parser_t *ps = apr_pcalloc(pool, sizeof(*ps));

    ps->own = pool;
    ps->mode = mode;
    ps->max_literal = max_literal;
    lem_args_parser_reset(ps, pool);
    return ps;
}

const lem_args_msg_t *lem_args_msg(const lem_args_parser_t *ps)
{
    return ps->state == ST_DONE ? &ps->msg : NULL;
}

const char *lem_args_error(const lem_args_parser_t *ps)
{
    return ps->error;
}

apr_status_t lem_args_parse(apr_pool_t *pool, lem_args_mode_t mode,
                            const char *data, apr_size_t len,
                            const lem_args_msg_t **msg, const char **error)
{
    lem_args_parser_t *ps = lem_args_parser_create(pool, mode, len);
    apr_size_t used = 0;
    lem_args_ev_t ev = lem_args_feed(ps, data, len, &used);

    *msg = NULL;
    if (ev == LEM_ARGS_ERROR) {
        *error = ps->error;
        return APR_EINVAL;
    }
    if (ev != LEM_ARGS_DONE || used != len) {
        *error = (ev != LEM_ARGS_DONE) ? "the message is cut short"
                                       : "bytes follow the message";
        return APR_EINVAL;
    }
    *msg = &ps->msg;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

static apr_status_t put(const lem_sink_t *out, const char *data,
                        apr_size_t len)
{
    return len ? out->write(out->ctx, data, len) : APR_SUCCESS;
}

static apr_status_t refuse(const char **error, const char *why)
{
    *error = why;
    return APR_EINVAL;
}

static int all_chars(const char *s, apr_size_t len, int (*ok)(unsigned char))
{
    apr_size_t i;

    for (i = 0; i < len; i++) {
        if (!ok((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

static int is_line_char(unsigned char c)
{
    return c != '\r' && c != '\n' && c != '\0';
}

static apr_status_t write_literal(const lem_arg_t *a, const lem_sink_t *out);

static int is_7bit(const char *s, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; i++) {
        if ((unsigned char)s[i] > 0x7f) {
            return 0;
        }
    }
    return 1;
}

static apr_status_t write_quoted(const lem_arg_t *a, const lem_sink_t *out,
                                 const char **error)
{
    apr_size_t i, from = 0;
    apr_status_t rv;

    if (!all_chars(a->data, a->len, is_line_char)) {
        return refuse(error, "a quoted string may not hold CR, LF or NUL");
    }
    /* draft 2.1: command text is 7-bit; RFC 3501 4.3: 8-bit octets go in
     * a literal */
    if (!is_7bit(a->data, a->len)) {
        return write_literal(a, out);
    }
    if ((rv = put(out, "\"", 1)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < a->len; i++) {
        if (a->data[i] == '"' || a->data[i] == '\\') {
            if ((rv = put(out, a->data + from, i - from)) != APR_SUCCESS
                || (rv = put(out, "\\", 1)) != APR_SUCCESS) {
                return rv;
            }
            from = i;
        }
    }
    if ((rv = put(out, a->data + from, a->len - from)) != APR_SUCCESS) {
        return rv;
    }
    return put(out, "\"", 1);
}

static apr_status_t write_literal(const lem_arg_t *a, const lem_sink_t *out)
{
    char head[48];
    int n = apr_snprintf(head, sizeof(head), "%s{%" APR_SIZE_T_FMT "%s}\r\n",
                         a->literal8 ? "~" : "", a->len,
                         a->nonsync ? "+" : "");
    apr_status_t rv = put(out, head, (apr_size_t)n);

    return rv == APR_SUCCESS ? put(out, a->data, a->len) : rv;
}

static apr_status_t write_list(const lem_arg_t *a, const lem_sink_t *out,
                               const char **error);

static apr_status_t write_nested(const lem_arg_t *a, const lem_sink_t *out,
                                 const char **error)
{
    int list = (a->kind == LEM_ARG_LIST);
    apr_status_t rv = put(out, list ? "(" : "[", 1);

    if (rv == APR_SUCCESS) {
        rv = write_list(a->kids, out, error);
    }
    return rv == APR_SUCCESS ? put(out, list ? ")" : "]", 1) : rv;
}

static apr_status_t write_leaf(const lem_arg_t *a, const lem_sink_t *out,
                               const char **error)
{
    apr_status_t rv;

    switch (a->kind) {
    case LEM_ARG_ATOM:
        if (!a->len || !all_chars(a->data, a->len, is_atom_char)) {
            return refuse(error, "an atom holds a character atoms cannot");
        }
        return put(out, a->data, a->len);
    case LEM_ARG_NUMBER:
        return is_digits(a->data, a->len) ? put(out, a->data, a->len)
               : refuse(error, "a number holds other than digits");
    case LEM_ARG_PARTIAL:
        if (!is_partial(a->data, a->len)) {
            return refuse(error, "a partial is not offset[.length]");
        }
        if ((rv = put(out, "<", 1)) == APR_SUCCESS
            && (rv = put(out, a->data, a->len)) == APR_SUCCESS) {
            rv = put(out, ">", 1);
        }
        return rv;
    case LEM_ARG_TEXT:
        return all_chars(a->data, a->len, is_line_char)
               ? put(out, a->data, a->len)
               : refuse(error, "text may not hold CR, LF or NUL");
    default:
        return refuse(error, "a node of an unknown kind");
    }
}

static apr_status_t write_node(const lem_arg_t *a, const lem_sink_t *out,
                               const char **error)
{
    switch (a->kind) {
    case LEM_ARG_QUOTED:
        return write_quoted(a, out, error);
    case LEM_ARG_LITERAL:
        return write_literal(a, out);
    case LEM_ARG_NIL:
        return put(out, "NIL", 3);
    case LEM_ARG_LIST:
    case LEM_ARG_SECTION:
        return write_nested(a, out, error);
    default:
        return write_leaf(a, out, error);
    }
}

static apr_status_t write_list(const lem_arg_t *a, const lem_sink_t *out,
                               const char **error)
{
    const lem_arg_t *first = a;
    apr_status_t rv = APR_SUCCESS;

    for (; a && rv == APR_SUCCESS; a = a->next) {
        if (a != first && !a->glued) {
            rv = put(out, " ", 1);
        }
        if (rv == APR_SUCCESS) {
            rv = write_node(a, out, error);
        }
    }
    return rv;
}

apr_status_t lem_args_write(const lem_arg_t *args, const lem_sink_t *out,
                            const char **error)
{
    return write_list(args, out, error);
}

/* The name: words of atom characters, one space between them. */
static int is_command_name(const char *name)
{
    const char *p = name;

    while (*p) {
        const char *w = p;

        while (is_atom_char((unsigned char)*p)) {
            p++;
        }
        if (p == w || (*p && (*p != ' ' || !p[1]))) {
            return 0;
        }
        p += (*p == ' ');
    }
    return p != name;
}

static apr_status_t write_head(const char *tag, const char *name,
                               const lem_arg_t *args, const lem_sink_t *out)
{
    apr_status_t rv = put(out, tag, strlen(tag));

    if (rv == APR_SUCCESS && name) {
        if ((rv = put(out, " ", 1)) == APR_SUCCESS) {
            rv = put(out, name, strlen(name));
        }
    }
    if (rv == APR_SUCCESS && args) {
        rv = put(out, " ", 1);
    }
    return rv;
}

/*
 * A command's text is written as it is (a response's text may hold
 * quotes and UTF-8, RFC 3501 7.1): in a command it must not start a
 * quoted string or end in what would read as a literal's announcement,
 * and it is 7-bit (draft 2.1). Returns the first text node that is not.
 */
static const lem_arg_t *unsafe_text(const lem_arg_t *a)
{
    const lem_arg_t *bad;

    for (; a; a = a->next) {
        if (a->kids && (bad = unsafe_text(a->kids)) != NULL) {
            return bad;
        }
        if (a->kind == LEM_ARG_TEXT
            && (!is_7bit(a->data, a->len) || memchr(a->data, '"', a->len)
                || (a->len && a->data[a->len - 1] == '}'))) {
            return a;
        }
    }
    return NULL;
}

apr_status_t lem_args_write_command(const char *tag, const char *name,
                                    const lem_arg_t *args,
                                    const lem_sink_t *out,
                                    const char **error)
{
    apr_status_t rv;

    if (!*tag || !all_chars(tag, strlen(tag), is_tag_char)) {
        return refuse(error, "a malformed tag");
    }
    if (!is_command_name(name)) {
        return refuse(error, "a malformed command name");
    }
    if (unsafe_text(args)) {
        return refuse(error, "text in a command may hold only 7-bit "
                      "characters, no quote, and not end in \"}\"");
    }
    rv = write_head(tag, name, args, out);
    if (rv == APR_SUCCESS) {
        rv = write_list(args, out, error);
    }
    return rv == APR_SUCCESS ? put(out, "\r\n", 2) : rv;
}

apr_status_t lem_args_write_msg(const lem_args_msg_t *msg,
                                const lem_sink_t *out, const char **error)
{
    apr_status_t rv;

    if (msg->kind == LEM_MSG_COMMAND) {
        return lem_args_write_command(msg->tag, msg->name, msg->args, out,
                                      error);
    }
    rv = (msg->kind == LEM_MSG_PLAIN) ? APR_SUCCESS
         : write_head(msg->tag, NULL, msg->args, out);
    if (rv == APR_SUCCESS) {
        rv = write_list(msg->args, out, error);
    }
    return rv == APR_SUCCESS ? put(out, "\r\n", 2) : rv;
}
