/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#include <apr.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "lem_imap.h"

/* lem_cmd_parser_t.state */
enum {
    CMD_LINE = 0,       /* reading a line segment into p->line */
    CMD_LF,             /* a CR was read: only LF may follow */
    CMD_LITERAL,        /* relaying p->left literal octets */
    CMD_ERROR
};

/* lem_resp_parser_t.state */
enum {
    RESP_HEAD = 0,      /* gathering the head of a response into p->head */
    RESP_TEXT,          /* streaming the rest of a line from the input */
    RESP_LF,            /* a CR was read and held back: only LF may follow */
    RESP_LITERAL,       /* relaying p->left literal octets */
    RESP_ERROR
};

/* lem_imap_lit_scan_t.state: how the line read so far ends */
enum {
    LIT_NONE = 0,       /* not in a marker */
    LIT_OPEN,           /* "{" */
    LIT_DIGITS,         /* "{" 1*DIGIT */
    LIT_PLUS,           /* "{" 1*DIGIT "+" */
    LIT_SYNC,           /* "{" 1*DIGIT "}" */
    LIT_NONSYNC         /* "{" 1*DIGIT "+}" */
};

static const char crlf[] = "\r\n";

/* ------------------------------------------------------------------ */
/* Literal markers                                                     */
/* ------------------------------------------------------------------ */

static void lit_reset(lem_imap_lit_scan_t *s, char c)
{
    s->state = (c == '{') ? LIT_OPEN : LIT_NONE;
    s->num = 0;
    s->overflow = 0;
}

static void lit_digit(lem_imap_lit_scan_t *s, char c)
{
    unsigned d = (unsigned)(c - '0');

    /* Too big is only an error if the marker turns out to end the line. */
    if (s->num > (APR_UINT64_MAX - d) / 10) {
        s->overflow = 1;
    }
    else {
        s->num = s->num * 10 + d;
    }
    s->state = LIT_DIGITS;
}

/*
 * RFC 3501, 9: literal = "{" number "}" CRLF; RFC 7888, 3: "{" number "+}".
 * The marker counts only as the last bytes before CRLF, so every text byte
 * of a line but CR and LF passes through here and the state says whether
 * the line so far ends in a complete marker. Anything else, "{}" or
 * "{12a}" say, is just text.
 */
static void lit_scan(lem_imap_lit_scan_t *s, char c)
{
    int digit = (c >= '0' && c <= '9');

    switch (s->state) {
    case LIT_OPEN:
        if (digit) {
            lit_digit(s, c);
            return;
        }
        break;
    case LIT_DIGITS:
        if (digit) {
            lit_digit(s, c);
            return;
        }
        if (c == '+' || c == '}') {
            s->state = (c == '+') ? LIT_PLUS : LIT_SYNC;
            return;
        }
        break;
    case LIT_PLUS:
        if (c == '}') {
            s->state = LIT_NONSYNC;
            return;
        }
        break;
    default:
        break;
    }
    lit_reset(s, c);
}

/*
 * At CRLF: store the literal the line announces in `kind` and `len`.
 * Returns 0, or -1 if its length does not fit 64 bits.
 */
static int lit_end(lem_imap_lit_scan_t *s, lem_literal_t *kind,
                   apr_uint64_t *len)
{
    lem_imap_lit_scan_t seen = *s;

    /* the next line starts afresh */
    lit_reset(s, '\0');
    *kind = LEM_LITERAL_NONE;
    *len = 0;
    if (seen.state != LIT_SYNC && seen.state != LIT_NONSYNC) {
        return 0;
    }
    if (seen.overflow) {
        return -1;
    }
    *kind = (seen.state == LIT_SYNC) ? LEM_LITERAL_SYNC
                                     : LEM_LITERAL_NONSYNC;
    *len = seen.num;
    return 0;
}

/* Non-zero if the line so far ends in a marker too big for 64 bits. */
static int lit_overflow(const lem_imap_lit_scan_t *s)
{
    return (s->state == LIT_SYNC || s->state == LIT_NONSYNC) && s->overflow;
}

/* Hands out the next piece of a literal straight from the input. */
static lem_imap_ev_t literal_piece(apr_uint64_t *left, const char *in,
                                   apr_size_t len, apr_size_t *used,
                                   lem_imap_piece_t *piece)
{
    apr_size_t n = len;

    if (len == 0) {
        return LEM_IMAP_NEED_MORE;
    }
    if (*left < (apr_uint64_t)len) {
        n = (apr_size_t)*left;
    }
    *left -= n;
    *used = n;
    piece->data = in;
    piece->len = n;
    piece->first = 0;
    piece->line_end = 0;
    piece->last = 0;
    return LEM_IMAP_LITERAL;
}

/* ------------------------------------------------------------------ */
/* Words                                                               */
/* ------------------------------------------------------------------ */

/*
 * RFC 3501, 9:
 *   ATOM-CHAR     = <any CHAR except atom-specials>
 *   atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards /
 *                   quoted-specials / resp-specials
 */
static int is_atom_char(char c)
{
    switch (c) {
    case '(': case ')': case '{': case '%': case '*':
    case '"': case '\\': case ']':
        return 0;
    default:
        return c > 0x20 && c < 0x7f;
    }
}

/* RFC 3501, 9: tag = 1*<any ASTRING-CHAR except "+">; "]" is allowed. */
static int is_tag_char(char c)
{
    return c != '+' && (c == ']' || is_atom_char(c));
}

static apr_size_t atom_len(const char *s, apr_size_t n)
{
    apr_size_t i = 0;

    while (i < n && is_atom_char(s[i])) {
        i++;
    }
    return i;
}

/* Bytes before the first SP, CR or LF. */
static apr_size_t word_len(const char *s, apr_size_t n)
{
    apr_size_t i = 0;

    while (i < n && s[i] != ' ' && s[i] != '\r' && s[i] != '\n') {
        i++;
    }
    return i;
}

/* Compares s[0..n) with an upper-case word, ignoring case. */
static int same_word(const char *s, apr_size_t n, const char *upper)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (upper[i] == '\0' || apr_toupper(s[i]) != upper[i]) {
            return 0;
        }
    }
    return upper[n] == '\0';
}

static void copy_upper(char *dst, const char *src, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        dst[i] = (char)apr_toupper(src[i]);
    }
    dst[n] = '\0';
}

static void copy_word(char *dst, const char *src, apr_size_t n)
{
    apr_cpystrn(dst, src, n + 1);
}

/* ------------------------------------------------------------------ */
/* Commands                                                            */
/* ------------------------------------------------------------------ */

void lem_cmd_init(lem_cmd_parser_t *p, char *line, apr_size_t max_line,
                  apr_uint64_t max_literal)
{
    lem_cmd_parser_t fresh = { 0 };

    *p = fresh;
    p->line = line;
    p->max_line = max_line;
    p->max_literal = max_literal;
    p->state = CMD_LINE;
    p->seg_first = 1;
}

static lem_imap_ev_t cmd_fail(lem_cmd_parser_t *p, const char *msg)
{
    p->state = CMD_ERROR;
    p->error = msg;
    return LEM_IMAP_ERROR;
}

/* RFC 3501, 4.3: a backslash quotes the next character of a string. */
static void cmd_quote(lem_cmd_parser_t *p, char c)
{
    if (p->escaped) {
        p->escaped = 0;
    }
    else if (p->in_quote && c == '\\') {
        p->escaped = 1;
    }
    else if (c == '"') {
        p->in_quote = !p->in_quote;
    }
}

/*
 * RFC 3501, 6.4.8: "UID" is a prefix; the name is the command it
 * modifies, so "UID FETCH" is kept whole. `s` follows "UID".
 * Returns NULL, or the message for a name too long.
 */
static const char *cmd_uid_name(lem_cmd_parser_t *p, const char *s,
                                apr_size_t n)
{
    apr_size_t k;

    if (n < 2 || s[0] != ' ') {
        return NULL;
    }
    k = atom_len(s + 1, n - 1);
    if (k == 0) {
        return NULL;
    }
    if (3 + 1 + k > LEM_IMAP_NAME_MAX) {
        return "command name too long";
    }
    p->name[3] = ' ';
    copy_upper(p->name + 4, s + 1, k);
    return NULL;
}

/*
 * RFC 3501, 9: command = tag SP command-name ...
 * Reads tag and name from the first segment of a command, CRLF excluded.
 * Returns NULL, or the message saying what is wrong.
 */
static const char *cmd_head(lem_cmd_parser_t *p, const char *s,
                            apr_size_t n)
{
    apr_size_t i = 0, k;

    if (n == 0) {
        return "empty line";
    }
    while (i < n && is_tag_char(s[i])) {
        i++;
    }
    if (i == 0) {
        return (s[0] == ' ') ? "missing tag" : "invalid tag";
    }
    if (i > LEM_IMAP_TAG_MAX) {
        return "tag too long";
    }
    if (i < n && s[i] != ' ') {
        return "invalid tag";
    }
    copy_word(p->tag, s, i);

    k = (i < n) ? atom_len(s + i + 1, n - i - 1) : 0;
    if (k == 0) {
        return "missing command name";
    }
    if (k > LEM_IMAP_NAME_MAX) {
        return "command name too long";
    }
    s += i + 1;
    n -= i + 1;
    copy_upper(p->name, s, k);

    if (same_word(s, k, "UID")) {
        return cmd_uid_name(p, s + k, n - k);
    }
    return NULL;
}

/* A line that answers a continuation request: text, nothing more. */
static lem_imap_ev_t cmd_raw_line(lem_cmd_parser_t *p,
                                  lem_imap_piece_t *piece)
{
    lem_literal_t kind;
    apr_uint64_t len;

    lit_end(&p->lit, &kind, &len);
    p->raw_line = 0;
    p->in_quote = p->escaped = 0;
    p->literal = LEM_LITERAL_NONE;
    p->literal_len = 0;
    p->tag[0] = p->name[0] = '\0';

    piece->data = p->line;
    piece->len = p->len;
    piece->first = piece->line_end = piece->last = 1;
    p->len = 0;
    p->state = CMD_LINE;
    return LEM_IMAP_TEXT;
}

/* A segment ended in CRLF: judge it and hand it out whole. */
static lem_imap_ev_t cmd_segment(lem_cmd_parser_t *p,
                                 lem_imap_piece_t *piece)
{
    const char *msg = NULL;

    if (p->raw_line) {
        return cmd_raw_line(p, piece);
    }

    /* 1. the first segment of a command carries tag and name */
    if (p->seg_first) {
        msg = cmd_head(p, p->line, p->len - 2);
        if (msg) {
            return cmd_fail(p, msg);
        }
    }

    /* 2. RFC 3501, 4.3: a quoted string never spans lines */
    if (p->in_quote) {
        return cmd_fail(p, "unterminated quoted string");
    }

    /* 3. a literal announced right before CRLF */
    if (lit_end(&p->lit, &p->literal, &p->literal_len) < 0) {
        return cmd_fail(p, "literal length overflow");
    }
    if (p->literal != LEM_LITERAL_NONE
        && p->literal_len > p->max_literal) {
        p->limit_hit = 1;
        return cmd_fail(p, "literal too large");
    }

    /* 4. hand it out; the next segment overwrites the buffer */
    piece->data = p->line;
    piece->len = p->len;
    piece->first = p->seg_first;
    piece->line_end = 1;
    piece->last = (p->literal == LEM_LITERAL_NONE);

    p->len = 0;
    p->seg_first = piece->last;
    p->state = (p->literal_len > 0) ? CMD_LITERAL : CMD_LINE;
    p->left = p->literal_len;
    if (piece->last) {
        p->commands++;
    }
    return LEM_IMAP_TEXT;
}

static lem_imap_ev_t cmd_keep(lem_cmd_parser_t *p, char c)
{
    if (p->len >= p->max_line) {
        p->limit_hit = 1;
        return cmd_fail(p, "line too long");
    }
    p->line[p->len++] = c;
    return LEM_IMAP_NEED_MORE;
}

/* One byte of line text. Returns TEXT at the end of a segment. */
static lem_imap_ev_t cmd_byte(lem_cmd_parser_t *p, char c,
                              lem_imap_piece_t *piece)
{
    switch (p->state) {
    case CMD_LF:
        if (c != '\n') {
            return cmd_fail(p, "CR not followed by LF");
        }
        if (cmd_keep(p, c) == LEM_IMAP_ERROR) {
            return LEM_IMAP_ERROR;
        }
        return cmd_segment(p, piece);

    case CMD_LINE:
        if (c == '\r') {
            p->state = CMD_LF;
            return cmd_keep(p, c);
        }
        if (c == '\n') {
            return cmd_fail(p, "LF without CR");
        }
        if (c == '\0') {
            return cmd_fail(p, "NUL in command text");
        }
        /* draft-maes-lemonade-http-binding-04, 2.1: 7bit only */
        if ((unsigned char)c > 0x7f) {
            return cmd_fail(p, "8-bit byte in command text");
        }
        cmd_quote(p, c);
        lit_scan(&p->lit, c);
        return cmd_keep(p, c);

    default:
        return cmd_fail(p, "parser in an unknown state");
    }
}

lem_imap_ev_t lem_cmd_next(lem_cmd_parser_t *p, const char *in,
                           apr_size_t len, apr_size_t *used,
                           lem_imap_piece_t *piece)
{
    lem_imap_ev_t ev = LEM_IMAP_NEED_MORE;
    apr_size_t i = 0;

    *used = 0;
    switch (p->state) {
    case CMD_ERROR:
        return LEM_IMAP_ERROR;

    case CMD_LITERAL:
        /* RFC 3501, 4.3: literal octets are any values, unjudged */
        ev = literal_piece(&p->left, in, len, used, piece);
        if (p->left == 0) {
            p->state = CMD_LINE;
        }
        return ev;

    default:
        while (i < len && ev == LEM_IMAP_NEED_MORE) {
            ev = cmd_byte(p, in[i++], piece);
        }
        *used = i;
        return ev;
    }
}

int lem_cmd_at_boundary(const lem_cmd_parser_t *p)
{
    return p->state == CMD_LINE && p->seg_first && p->len == 0;
}

void lem_cmd_expect_line(lem_cmd_parser_t *p)
{
    if (lem_cmd_at_boundary(p)) {
        p->raw_line = 1;
    }
}

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

static const struct {
    const char  *name;
    lem_status_t status;
} statuses[] = {
    { "OK",      LEM_STATUS_OK },
    { "NO",      LEM_STATUS_NO },
    { "BAD",     LEM_STATUS_BAD },
    { "PREAUTH", LEM_STATUS_PREAUTH },
    { "BYE",     LEM_STATUS_BYE },
};

#define N_STATUSES (sizeof(statuses) / sizeof(statuses[0]))

const char *lem_status_name(lem_status_t status)
{
    apr_size_t i;

    for (i = 0; i < N_STATUSES; i++) {
        if (statuses[i].status == status) {
            return statuses[i].name;
        }
    }
    return "";
}

void lem_resp_init(lem_resp_parser_t *p)
{
    lem_resp_parser_t fresh = { 0 };

    *p = fresh;
    p->state = RESP_HEAD;
}

static lem_imap_ev_t resp_fail(lem_resp_parser_t *p, const char *msg)
{
    p->state = RESP_ERROR;
    p->error = msg;
    return LEM_IMAP_ERROR;
}

/*
 * RFC 3501, 7.1: resp-cond-* = ("OK" / "NO" / "BAD" / "PREAUTH" / "BYE")
 * SP resp-text; the word must end in SP or CRLF, so "* OKAY" is none.
 */
static lem_status_t status_word(const char *s, apr_size_t n)
{
    apr_size_t k = word_len(s, n), i;

    if (k == n || s[k] == '\n') {
        return LEM_STATUS_NONE;
    }
    for (i = 0; i < N_STATUSES; i++) {
        if (same_word(s, k, statuses[i].name)) {
            return statuses[i].status;
        }
    }
    return LEM_STATUS_NONE;
}

/* RFC 3501, 7: sort the gathered head into kind, tag and status. */
static void resp_classify(lem_resp_parser_t *p)
{
    const char *h = p->head;
    apr_size_t n = p->head_len, t = word_len(h, n);

    p->tag[0] = '\0';
    p->status = LEM_STATUS_NONE;
    if (h[0] == '*') {
        p->kind = LEM_RESP_UNTAGGED;
    }
    else if (h[0] == '+') {
        /* RFC 3501, 7.5: "+" carries text, never a status */
        p->kind = LEM_RESP_CONTINUATION;
        return;
    }
    else {
        p->kind = LEM_RESP_TAGGED;
        /* a tag with a NUL in it names no command: leave it empty, which
         * matches none, rather than cut it short into one that does */
        if (!memchr(h, '\0', t)) {
            copy_word(p->tag, h, t);
        }
    }
    if (t < n && h[t] == ' ') {
        p->status = status_word(h + t + 1, n - t - 1);
    }
}

/* A piece ending in CRLF: a literal may follow, or the response ends. */
static lem_imap_ev_t resp_line_end(lem_resp_parser_t *p,
                                   lem_imap_piece_t *piece)
{
    if (lit_end(&p->lit, &p->literal, &p->literal_len) < 0) {
        return resp_fail(p, "literal length overflow");
    }
    piece->line_end = 1;
    piece->last = (p->literal == LEM_LITERAL_NONE);
    p->left = p->literal_len;
    if (piece->last) {
        p->state = RESP_HEAD;
        p->head_len = 0;
    }
    else {
        p->state = (p->left > 0) ? RESP_LITERAL : RESP_TEXT;
    }
    return LEM_IMAP_TEXT;
}

static lem_imap_ev_t resp_piece(lem_resp_parser_t *p, const char *data,
                                apr_size_t len, lem_imap_piece_t *piece)
{
    piece->data = data;
    piece->len = len;
    piece->first = 0;
    piece->line_end = 0;
    piece->last = 0;
    p->literal = LEM_LITERAL_NONE;
    p->literal_len = 0;
    return LEM_IMAP_TEXT;
}

/*
 * One byte of a response head. Returns NEED_MORE until the head is
 * complete (status word ended, CRLF, or buffer full), then TEXT.
 */
static lem_imap_ev_t resp_head_byte(lem_resp_parser_t *p, char c)
{
    apr_size_t n = p->head_len;
    int after_cr = (n > 0 && p->head[n - 1] == '\r');
    int tagged;

    if (after_cr && c != '\n') {
        return resp_fail(p, "CR not followed by LF");
    }
    if (!after_cr && c == '\n') {
        return resp_fail(p, "LF without CR");
    }
    p->head[p->head_len++] = c;
    if (c == '\n') {
        return LEM_IMAP_TEXT;
    }
    if (c == '\r') {
        return LEM_IMAP_NEED_MORE;
    }
    lit_scan(&p->lit, c);

    tagged = (p->head[0] != '*' && p->head[0] != '+');
    if (tagged && word_len(p->head, n + 1) > LEM_IMAP_TAG_MAX) {
        return resp_fail(p, "tag too long");
    }
    /* a second SP ends the status word */
    if (c == ' ' && word_len(p->head, n) < n) {
        return LEM_IMAP_TEXT;
    }
    /* keep one byte free so that a CR always has room for its LF */
    if (p->head_len >= sizeof(p->head) - 1) {
        return LEM_IMAP_TEXT;
    }
    return LEM_IMAP_NEED_MORE;
}

/* Gather the head; its first TEXT event comes from p->head. */
static lem_imap_ev_t resp_head(lem_resp_parser_t *p, const char *in,
                               apr_size_t len, apr_size_t *used,
                               lem_imap_piece_t *piece)
{
    lem_imap_ev_t ev = LEM_IMAP_NEED_MORE;
    apr_size_t i = 0;

    while (i < len && ev == LEM_IMAP_NEED_MORE) {
        ev = resp_head_byte(p, in[i++]);
    }
    *used = i;
    if (ev != LEM_IMAP_TEXT) {
        return ev;
    }
    resp_classify(p);
    resp_piece(p, p->head, p->head_len, piece);
    piece->first = 1;
    if (p->head[p->head_len - 1] == '\n') {
        return resp_line_end(p, piece);
    }
    p->state = RESP_TEXT;
    return LEM_IMAP_TEXT;
}

/*
 * Stream line text straight from the input up to CRLF. A CR that ends
 * the input is consumed and held back, so no piece ends inside a CRLF;
 * text before a bad byte goes out before the error, as it would have if
 * the input had been cut there.
 */
static lem_imap_ev_t resp_text(lem_resp_parser_t *p, const char *in,
                               apr_size_t len, apr_size_t *used,
                               lem_imap_piece_t *piece)
{
    apr_size_t i = 0;
    int bad;

    while (i < len && in[i] != '\r' && in[i] != '\n') {
        lit_scan(&p->lit, in[i++]);
    }
    if (i == len) {
        *used = len;
        return len ? resp_piece(p, in, len, piece) : LEM_IMAP_NEED_MORE;
    }
    if (in[i] == '\r' && i + 1 == len) {
        *used = len;
        p->state = RESP_LF;
        return i ? resp_piece(p, in, i, piece) : LEM_IMAP_NEED_MORE;
    }
    bad = (in[i] == '\n' || in[i + 1] != '\n' || lit_overflow(&p->lit));
    if (bad && i > 0) {
        *used = i;
        return resp_piece(p, in, i, piece);
    }
    if (in[i] == '\n') {
        return resp_fail(p, "LF without CR");
    }
    if (in[i + 1] != '\n') {
        return resp_fail(p, "CR not followed by LF");
    }
    *used = i + 2;
    resp_piece(p, in, i + 2, piece);
    return resp_line_end(p, piece);
}

lem_imap_ev_t lem_resp_next(lem_resp_parser_t *p, const char *in,
                            apr_size_t len, apr_size_t *used,
                            lem_imap_piece_t *piece)
{
    lem_imap_ev_t ev;

    *used = 0;
    switch (p->state) {
    case RESP_HEAD:
        return resp_head(p, in, len, used, piece);

    case RESP_TEXT:
        return resp_text(p, in, len, used, piece);

    case RESP_LF:
        /* the held-back CR and this LF go out together */
        if (len == 0) {
            return LEM_IMAP_NEED_MORE;
        }
        if (in[0] != '\n') {
            return resp_fail(p, "CR not followed by LF");
        }
        *used = 1;
        resp_piece(p, crlf, 2, piece);
        return resp_line_end(p, piece);

    case RESP_LITERAL:
        ev = literal_piece(&p->left, in, len, used, piece);
        if (p->left == 0) {
            p->state = RESP_TEXT;
        }
        return ev;

    default:
        return LEM_IMAP_ERROR;
    }
}

int lem_resp_at_boundary(const lem_resp_parser_t *p)
{
    return p->state == RESP_HEAD && p->head_len == 0;
}
