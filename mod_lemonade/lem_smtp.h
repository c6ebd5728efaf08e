/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef LEM_SMTP_H
#define LEM_SMTP_H

/*
 * SMTP framing for the HTTP binding (draft-maes-lemonade-http-binding-04,
 * 2.1.4): the protocol core, with no httpd in it.
 *
 *   lem_smtp_cmd_*    the client's side: command lines (RFC 5321 4.1.1),
 *                     each DATA followed by its message content up to the
 *                     end-of-data line "." (RFC 5321 4.1.1.4), each
 *                     "BDAT n" by n octets (RFC 3030), as in batch SMTP
 *                     (RFC 2442) where the content follows DATA at once.
 *   lem_smtp_reply_*  the server's side: replies, each one or more lines
 *                     "ddd-text" ending with "ddd text" (RFC 5321 4.2).
 *
 * Like lem_imap.h: push parsers fed any slice of the stream (one byte at
 * a time works), one event per call, no allocation, no logging; on bad
 * input LEM_SMTP_ERROR with a static message in `error`, after which the
 * parser stays in error until initialised again.
 *
 * Message content is never judged nor copied: CONTENT events point into
 * the caller's input, the client's dot-stuffing is kept as written, and
 * 8-bit octets pass (RFC 6152). Only command lines must be 7-bit.
 */

#include <apr.h>

#define LEM_SMTP_VERB_MAX  16

typedef enum {
    LEM_SMTP_NEED_MORE = 0,   /* all input consumed, no event */
    LEM_SMTP_LINE,            /* a command line or a reply line, whole */
    LEM_SMTP_CONTENT,         /* message octets after DATA or BDAT */
    LEM_SMTP_ERROR
} lem_smtp_ev_t;

/* One piece of the stream. */
typedef struct {
    const char *data;         /* valid until the next call */
    apr_size_t  len;
    unsigned    last:1;       /* LINE: the reply's last line;
                               * CONTENT: ends the content (for DATA it
                               * includes the end-of-data ".\r\n") */
} lem_smtp_piece_t;

/* ------------------------------------------------------------------ */
/* Commands, client to server                                          */
/* ------------------------------------------------------------------ */

/*
 * Each command line is returned whole (CRLF included) from the caller's
 * line buffer, with its verb upper-cased in `verb` ("MAIL", "RCPT",
 * "DATA", "BDAT", ...). A line must be 7-bit, without NUL, CRLF-ended,
 * non-empty, start with a verb of letters only and fit in max_line.
 *
 * After a "DATA" line the parser reads content until the end-of-data
 * line, "." alone on a line (the content's first line counts too), and
 * returns it in CONTENT pieces, the last one ending with ".\r\n". After
 * "BDAT n [LAST]" it returns exactly n octets of content, and a single
 * empty CONTENT piece with last set for "BDAT 0". A message larger than
 * max_content (dot-stuffing counted, the end-of-data "." CRLF not) or a
 * BDAT chunk larger than max_content is an error.
 *
 * In an interactive session the server may refuse DATA; the client then
 * sends no content and the caller says so with lem_smtp_cmd_no_content().
 * After a "334" continuation of AUTH, the client's next line is a SASL
 * answer, no command: lem_smtp_cmd_expect_line() says so.
 */
typedef struct {
    /* Set by lem_smtp_cmd_init(). */
    char         *line;           /* caller's buffer of max_line bytes */
    apr_size_t    max_line;
    apr_uint64_t  max_content;    /* one message, bytes */

    /* Describe the last LINE event. */
    char          verb[LEM_SMTP_VERB_MAX + 1]; /* "" for a SASL answer */
    apr_uint64_t  bdat_len;       /* BDAT: the octets announced */
    int           bdat_last;      /* BDAT: with LAST */
    unsigned      commands;       /* command lines so far */
    const char   *error;
    unsigned      limit_hit:1;    /* the error is max_line or max_content */

    /* Private state. */
    int           state;
    apr_size_t    len;            /* bytes in `line` */
    apr_uint64_t  left;           /* BDAT octets to come */
    apr_uint64_t  content;        /* DATA content octets so far */
    int           eod;            /* DATA: how much of CRLF "." CRLF the
                                   * content ends in */
    int           raw_line;       /* the next line is a SASL answer */
} lem_smtp_cmd_t;

void lem_smtp_cmd_init(lem_smtp_cmd_t *p, char *line, apr_size_t max_line,
                       apr_uint64_t max_content);

/* Returns NEED_MORE, LINE or CONTENT with `*piece`, or ERROR; `*used` is
 * how much of `in` was consumed. */
lem_smtp_ev_t lem_smtp_cmd_next(lem_smtp_cmd_t *p, const char *in,
                                apr_size_t len, apr_size_t *used,
                                lem_smtp_piece_t *piece);

/* Non-zero between commands (not inside a line nor inside content). */
int lem_smtp_cmd_at_boundary(const lem_smtp_cmd_t *p);

/* Right after a DATA line whose content will not come: back to commands. */
void lem_smtp_cmd_no_content(lem_smtp_cmd_t *p);

/* At a boundary: the next line is a SASL answer (RFC 4954 4), checked as
 * 7-bit text only; it comes back as LINE with an empty verb. */
void lem_smtp_cmd_expect_line(lem_smtp_cmd_t *p);

/* ------------------------------------------------------------------ */
/* Replies, server to client                                           */
/* ------------------------------------------------------------------ */

/*
 * RFC 5321, 4.2:
 *   Reply-line = *( Reply-code "-" [ textstring ] CRLF )
 *                   Reply-code [ SP textstring ] CRLF
 * Each line is returned whole, CRLF included; `code` is its three-digit
 * code and piece->last is set on the line ending the reply. Every line of
 * one reply must carry the same code. A line longer than
 * LEM_SMTP_REPLY_MAX is an error.
 */
#define LEM_SMTP_REPLY_MAX 4096

typedef struct {
    int         code;            /* of the last LINE event, 100..599 */
    const char *text;            /* its text after "ddd-" / "ddd ", in
                                  * the line returned; may be empty */
    apr_size_t  text_len;
    const char *error;

    /* Private state. */
    int         state;
    char        line[LEM_SMTP_REPLY_MAX];
    apr_size_t  len;
    int         reply_code;      /* of the reply being read, or 0 */
} lem_smtp_reply_t;

void lem_smtp_reply_init(lem_smtp_reply_t *p);

lem_smtp_ev_t lem_smtp_reply_next(lem_smtp_reply_t *p, const char *in,
                                  apr_size_t len, apr_size_t *used,
                                  lem_smtp_piece_t *piece);

/* Non-zero between replies. */
int lem_smtp_reply_at_boundary(const lem_smtp_reply_t *p);

/*
 * RFC 5321 4.1.1.1, RFC 2920: non-zero when the EHLO reply line `text`
 * (as in lem_smtp_reply_t.text) names the extension `keyword`, e.g.
 * "PIPELINING", case-insensitive, as the whole first word.
 */
int lem_smtp_ehlo_has(const char *text, apr_size_t len,
                      const char *keyword);

#endif /* LEM_SMTP_H */
