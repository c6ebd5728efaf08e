/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#include <apr.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "lem_smtp.h"

/* lem_smtp_cmd_t.state */
enum {
    CMD_LINE = 0,       /* reading a command line into p->line */
    CMD_LF,             /* a CR was read: only LF may follow */
    CMD_DATA,           /* relaying content up to the end-of-data line */
    CMD_BDAT,           /* relaying p->left octets of a BDAT chunk */
    CMD_ERROR
};

/*
 * lem_smtp_cmd_t.eod: how much of the end-of-data sequence CRLF "." CRLF
 * the content read so far ends in. Content starts as if after a CRLF, so
 * that "." CRLF as its first line ends it too (RFC 5321 4.1.1.4).
 */
enum {
    EOD_NONE = 0,       /* in the middle of a line */
    EOD_CR,             /* CR */
    EOD_BOL,            /* CRLF, or the start of the content */
    EOD_DOT,            /* CRLF "." */
    EOD_DOT_CR,         /* CRLF "." CR */
    EOD_DONE            /* CRLF "." CRLF: the content has ended */
};

/* lem_smtp_reply_t.state */
enum {
    REPLY_LINE = 0,     /* reading a reply line into p->line */
    REPLY_LF,           /* a CR was read: only LF may follow */
    REPLY_ERROR
};

/* ------------------------------------------------------------------ */
/* Words                                                               */
/* ------------------------------------------------------------------ */

/* Bytes before the first SP. */
static apr_size_t word_len(const char *s, apr_size_t n)
{
    apr_size_t i = 0;

    while (i < n && s[i] != ' ') {
        i++;
    }
    return i;
}

/* Compares s[0..n) with a word of any case, ignoring case. */
static int same_word(const char *s, apr_size_t n, const char *word)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (word[i] == '\0' || apr_toupper(s[i]) != apr_toupper(word[i])) {
            return 0;
        }
    }
    return word[n] == '\0';
}

/* RFC 5234, B.1: ALPHA = %x41-5A / %x61-7A, whatever the locale says. */
static int is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ------------------------------------------------------------------ */
/* Commands                                                            */
/* ------------------------------------------------------------------ */

void lem_smtp_cmd_init(lem_smtp_cmd_t *p, char *line, apr_size_t max_line,
                       apr_uint64_t max_content)
{
    lem_smtp_cmd_t fresh = { 0 };

    *p = fresh;
    p->line = line;
    p->max_line = max_line;
    p->max_content = max_content;
    p->state = CMD_LINE;
}

static lem_smtp_ev_t cmd_fail(lem_smtp_cmd_t *p, const char *msg)
{
    p->state = CMD_ERROR;
    p->error = msg;
    return LEM_SMTP_ERROR;
}

static lem_smtp_ev_t cmd_limit(lem_smtp_cmd_t *p, const char *msg)
{
    p->limit_hit = 1;
    return cmd_fail(p, msg);
}

static void set_piece(lem_smtp_piece_t *piece, const char *data,
                      apr_size_t len, int last)
{
    piece->data = data;
    piece->len = len;
    piece->last = last ? 1 : 0;
}

/*
 * RFC 5321, 4.1.1: a command is a verb, then SP and arguments, or CRLF.
 * RFC 5321, 2.4: verbs are not case sensitive. Reads the verb of the
 * line in p->line, CRLF excluded. Returns NULL, or what is wrong.
 */
static const char *cmd_verb(lem_smtp_cmd_t *p, const char *s, apr_size_t n)
{
    apr_size_t k = word_len(s, n), i;

    if (n == 0) {
        return "empty line";
    }
    if (k == 0) {
        return "missing verb";
    }
    for (i = 0; i < k; i++) {
        if (!is_alpha(s[i])) {
            return "invalid verb";
        }
    }
    if (k > LEM_SMTP_VERB_MAX) {
        return "verb too long";
    }
    for (i = 0; i < k; i++) {
        p->verb[i] = (char)apr_toupper(s[i]);
    }
    p->verb[k] = '\0';
    return NULL;
}

/*
 * RFC 3030, 2 and 4:
 *   bdat-cmd   ::= "BDAT" SP chunk-size [ SP end-marker ] CRLF
 *   chunk-size ::= 1*DIGIT
 *   end-marker ::= "LAST"
 * `s` follows the verb, CRLF excluded. Returns 0, or -1 if malformed or
 * if the size does not fit 64 bits.
 */
static int cmd_bdat_args(lem_smtp_cmd_t *p, const char *s, apr_size_t n)
{
    apr_size_t i = 1;
    apr_uint64_t size = 0;

    if (n < 2 || s[0] != ' ' || !is_digit(s[1])) {
        return -1;
    }
    for (; i < n && is_digit(s[i]); i++) {
        unsigned d = (unsigned)(s[i] - '0');

        if (size > (APR_UINT64_MAX - d) / 10) {
            return -1;
        }
        size = size * 10 + d;
    }
    p->bdat_len = size;
    if (i == n) {
        return 0;
    }
    if (s[i] != ' ' || !same_word(s + i + 1, n - i - 1, "LAST")) {
        return -1;
    }
    p->bdat_last = 1;
    return 0;
}

/* A line that answers a "334" (RFC 4954, 4): text, nothing more. */
static lem_smtp_ev_t cmd_raw_line(lem_smtp_cmd_t *p,
                                  lem_smtp_piece_t *piece)
{
    p->raw_line = 0;
    p->verb[0] = '\0';
    set_piece(piece, p->line, p->len, 1);
    p->len = 0;
    p->state = CMD_LINE;
    return LEM_SMTP_LINE;
}

/* Non-zero if the verb of the last line is `verb`, in upper case. */
static int verb_is(const lem_smtp_cmd_t *p, const char *verb)
{
    apr_size_t i = 0;

    while (p->verb[i] != '\0' && p->verb[i] == verb[i]) {
        i++;
    }
    return p->verb[i] == verb[i];
}

/*
 * After the line: what the verb says comes next. RFC 5321, 4.1.1.4: the
 * content follows DATA (the server has said 354, or the stream is a
 * batch); RFC 3030, 2: the chunk follows BDAT in any case. Arguments are
 * the server's to judge, so "DATA x" is followed by content as well.
 */
static int cmd_next_state(lem_smtp_cmd_t *p)
{
    p->content = 0;
    p->eod = EOD_BOL;
    p->left = p->bdat_len;
    if (verb_is(p, "DATA")) {
        return CMD_DATA;
    }
    if (verb_is(p, "BDAT")) {
        return CMD_BDAT;
    }
    return CMD_LINE;
}

/* A command line ended in CRLF: judge it and hand it out whole. */
static lem_smtp_ev_t cmd_line(lem_smtp_cmd_t *p, lem_smtp_piece_t *piece)
{
    apr_size_t n = p->len - 2, k;
    const char *msg;

    p->bdat_len = 0;
    p->bdat_last = 0;
    if (p->raw_line) {
        return cmd_raw_line(p, piece);
    }

    /* 1. the verb */
    msg = cmd_verb(p, p->line, n);
    if (msg) {
        return cmd_fail(p, msg);
    }

    /* 2. RFC 3030, 2: BDAT announces its chunk; others are the server's */
    k = word_len(p->line, n);
    if (verb_is(p, "BDAT")) {
        if (cmd_bdat_args(p, p->line + k, n - k) < 0) {
            return cmd_fail(p, "malformed BDAT");
        }
        if (p->bdat_len > p->max_content) {
            return cmd_limit(p, "BDAT chunk too large");
        }
    }

    /* 3. hand it out; the next line overwrites the buffer */
    set_piece(piece, p->line, p->len, 1);
    p->len = 0;
    p->commands++;
    p->state = cmd_next_state(p);
    return LEM_SMTP_LINE;
}

static lem_smtp_ev_t cmd_keep(lem_smtp_cmd_t *p, char c)
{
    if (p->len >= p->max_line) {
        return cmd_limit(p, "line too long");
    }
    p->line[p->len++] = c;
    return LEM_SMTP_NEED_MORE;
}

/* One byte of a command line. Returns LINE at its end. */
static lem_smtp_ev_t cmd_byte(lem_smtp_cmd_t *p, char c,
                              lem_smtp_piece_t *piece)
{
    switch (p->state) {
    case CMD_LF:
        if (c != '\n') {
            return cmd_fail(p, "CR not followed by LF");
        }
        if (cmd_keep(p, c) == LEM_SMTP_ERROR) {
            return LEM_SMTP_ERROR;
        }
        return cmd_line(p, piece);

    case CMD_LINE:
        /* RFC 5321, 2.3.8: lines end in CRLF, and only there */
        if (c == '\r') {
            p->state = CMD_LF;
            return cmd_keep(p, c);
        }
        if (c == '\n') {
            return cmd_fail(p, "LF without CR");
        }
        if (c == '\0') {
            return cmd_fail(p, "NUL in command line");
        }
        /* RFC 5321, 2.4: commands are US-ASCII, whatever the content */
        if ((unsigned char)c > 0x7f) {
            return cmd_fail(p, "8-bit byte in command line");
        }
        return cmd_keep(p, c);

    default:
        return cmd_fail(p, "parser in an unknown state");
    }
}

/* RFC 5321, 4.1.1.4: one more octet of content; see EOD_* above. */
static int eod_step(int eod, char c)
{
    switch (eod) {
    case EOD_CR:
        if (c == '\n') {
            return EOD_BOL;
        }
        break;
    case EOD_BOL:
        /* RFC 5321, 4.5.2: "." and more is a stuffed line, not the end */
        if (c == '.') {
            return EOD_DOT;
        }
        break;
    case EOD_DOT:
        if (c == '\r') {
            return EOD_DOT_CR;
        }
        break;
    case EOD_DOT_CR:
        if (c == '\n') {
            return EOD_DONE;
        }
        break;
    default:
        break;
    }
    return (c == '\r') ? EOD_CR : EOD_NONE;
}

/* Octets of the end-of-data line that may be under way: not content. */
static apr_uint64_t eod_held(int eod)
{
    switch (eod) {
    case EOD_DOT:
        return 1;
    case EOD_DOT_CR:
        return 2;
    default:
        return 0;
    }
}

/*
 * Content after DATA, straight from the input. A piece ends where the
 * input ends, however far into a possible end-of-data line, or right
 * after the end-of-data line itself. The message is counted against
 * max_content without the end-of-data line "." CRLF but with its
 * dot-stuffing; octets before the one over the limit go out first, as
 * they would have if the input had been cut there.
 */
static lem_smtp_ev_t cmd_data(lem_smtp_cmd_t *p, const char *in,
                              apr_size_t len, apr_size_t *used,
                              lem_smtp_piece_t *piece)
{
    apr_size_t i = 0;

    while (i < len && p->eod != EOD_DONE) {
        int eod = eod_step(p->eod, in[i]);

        if (eod != EOD_DONE
            && p->content + 1 - eod_held(eod) > p->max_content) {
            if (i > 0) {
                break;
            }
            return cmd_limit(p, "message too large");
        }
        p->eod = eod;
        p->content++;
        i++;
    }
    *used = i;
    if (p->eod == EOD_DONE) {
        p->state = CMD_LINE;
        set_piece(piece, in, i, 1);
        return LEM_SMTP_CONTENT;
    }
    if (i == 0) {
        return LEM_SMTP_NEED_MORE;
    }
    set_piece(piece, in, i, 0);
    return LEM_SMTP_CONTENT;
}

/* RFC 3030, 2: exactly the announced octets, whatever they are. */
static lem_smtp_ev_t cmd_bdat(lem_smtp_cmd_t *p, const char *in,
                              apr_size_t len, apr_size_t *used,
                              lem_smtp_piece_t *piece)
{
    apr_size_t n = len;

    /* "BDAT 0" still ends its chunk: one empty piece says so */
    if (len == 0 && p->left > 0) {
        return LEM_SMTP_NEED_MORE;
    }
    if (p->left < (apr_uint64_t)len) {
        n = (apr_size_t)p->left;
    }
    p->left -= n;
    *used = n;
    set_piece(piece, in, n, p->left == 0);
    if (p->left == 0) {
        p->state = CMD_LINE;
    }
    return LEM_SMTP_CONTENT;
}

lem_smtp_ev_t lem_smtp_cmd_next(lem_smtp_cmd_t *p, const char *in,
                                apr_size_t len, apr_size_t *used,
                                lem_smtp_piece_t *piece)
{
    lem_smtp_ev_t ev = LEM_SMTP_NEED_MORE;
    apr_size_t i = 0;

    *used = 0;
    switch (p->state) {
    case CMD_ERROR:
        return LEM_SMTP_ERROR;

    case CMD_DATA:
        return cmd_data(p, in, len, used, piece);

    case CMD_BDAT:
        return cmd_bdat(p, in, len, used, piece);

    default:
        while (i < len && ev == LEM_SMTP_NEED_MORE) {
            ev = cmd_byte(p, in[i++], piece);
        }
        *used = i;
        return ev;
    }
}

int lem_smtp_cmd_at_boundary(const lem_smtp_cmd_t *p)
{
    return p->state == CMD_LINE && p->len == 0;
}

void lem_smtp_cmd_no_content(lem_smtp_cmd_t *p)
{
    /* RFC 5321, 3.3: after a refused DATA the client sends no message */
    if (p->state == CMD_DATA && p->content == 0) {
        p->state = CMD_LINE;
    }
}

void lem_smtp_cmd_expect_line(lem_smtp_cmd_t *p)
{
    if (lem_smtp_cmd_at_boundary(p)) {
        p->raw_line = 1;
    }
}

/* ------------------------------------------------------------------ */
/* Replies                                                             */
/* ------------------------------------------------------------------ */

void lem_smtp_reply_init(lem_smtp_reply_t *p)
{
    p->code = 0;
    p->text = NULL;
    p->text_len = 0;
    p->error = NULL;
    p->state = REPLY_LINE;
    p->len = 0;
    p->reply_code = 0;
}

static lem_smtp_ev_t reply_fail(lem_smtp_reply_t *p, const char *msg)
{
    p->state = REPLY_ERROR;
    p->error = msg;
    return LEM_SMTP_ERROR;
}

/*
 * RFC 5321, 4.2: Reply-code = %x32-35 %x30-35 %x30-39. The 1yz replies
 * of 4.2.1 are let through as well; the server knows what it says.
 * Returns the code, or -1.
 */
static int reply_code(const char *s, apr_size_t n)
{
    if (n < 3 || s[0] < '1' || s[0] > '5'
        || !is_digit(s[1]) || !is_digit(s[2])) {
        return -1;
    }
    return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

/* A reply line ended in CRLF: judge it and hand it out whole. */
static lem_smtp_ev_t reply_line(lem_smtp_reply_t *p,
                                lem_smtp_piece_t *piece)
{
    apr_size_t n = p->len - 2;
    int code = reply_code(p->line, n), more;

    if (code < 0) {
        return reply_fail(p, "invalid reply code");
    }
    if (n > 3 && p->line[3] != '-' && p->line[3] != ' ') {
        return reply_fail(p, "invalid reply separator");
    }
    /* RFC 5321, 4.2.1: every line of a multiline reply has one code */
    if (p->reply_code != 0 && code != p->reply_code) {
        return reply_fail(p, "reply code changed within a reply");
    }
    more = (n > 3 && p->line[3] == '-');
    p->reply_code = more ? code : 0;
    p->code = code;
    p->text = p->line + ((n > 3) ? 4 : 3);
    p->text_len = (n > 3) ? n - 4 : 0;

    set_piece(piece, p->line, p->len, !more);
    p->len = 0;
    p->state = REPLY_LINE;
    return LEM_SMTP_LINE;
}

static lem_smtp_ev_t reply_keep(lem_smtp_reply_t *p, char c)
{
    if (p->len >= sizeof(p->line)) {
        return reply_fail(p, "reply line too long");
    }
    p->line[p->len++] = c;
    return LEM_SMTP_NEED_MORE;
}

/* One byte of a reply line. Returns LINE at its end. */
static lem_smtp_ev_t reply_byte(lem_smtp_reply_t *p, char c,
                                lem_smtp_piece_t *piece)
{
    switch (p->state) {
    case REPLY_LF:
        if (c != '\n') {
            return reply_fail(p, "CR not followed by LF");
        }
        if (reply_keep(p, c) == LEM_SMTP_ERROR) {
            return LEM_SMTP_ERROR;
        }
        return reply_line(p, piece);

    case REPLY_LINE:
        if (c == '\r') {
            p->state = REPLY_LF;
            return reply_keep(p, c);
        }
        if (c == '\n') {
            return reply_fail(p, "LF without CR");
        }
        return reply_keep(p, c);

    default:
        return reply_fail(p, "parser in an unknown state");
    }
}

lem_smtp_ev_t lem_smtp_reply_next(lem_smtp_reply_t *p, const char *in,
                                  apr_size_t len, apr_size_t *used,
                                  lem_smtp_piece_t *piece)
{
    lem_smtp_ev_t ev = LEM_SMTP_NEED_MORE;
    apr_size_t i = 0;

    *used = 0;
    if (p->state == REPLY_ERROR) {
        return LEM_SMTP_ERROR;
    }
    while (i < len && ev == LEM_SMTP_NEED_MORE) {
        ev = reply_byte(p, in[i++], piece);
    }
    *used = i;
    return ev;
}

int lem_smtp_reply_at_boundary(const lem_smtp_reply_t *p)
{
    return p->state == REPLY_LINE && p->len == 0 && p->reply_code == 0;
}

/*
 * RFC 5321, 4.1.1.1:
 *   ehlo-line    = ehlo-keyword *( SP ehlo-param )
 *   ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
 * Keywords are not case sensitive (2.4).
 */
int lem_smtp_ehlo_has(const char *text, apr_size_t len,
                      const char *keyword)
{
    apr_size_t k = word_len(text, len);

    return k > 0 && same_word(text, k, keyword);
}
