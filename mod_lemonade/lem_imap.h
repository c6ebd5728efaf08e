/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef LEM_IMAP_H
#define LEM_IMAP_H

/*
 * IMAP framing for the HTTP binding: the protocol core, with no httpd in it.
 *
 * Two push parsers cut an IMAP byte stream into commands and responses
 * without understanding their arguments:
 *
 *   lem_cmd_*   the client's side: tagged commands, each a run of line
 *               segments joined by literals (RFC 3501 section 2.2.1 and 9,
 *               "{n}" synchronizing, "{n+}" LITERAL+ of RFC 7888).
 *   lem_resp_*  the server's side: untagged ("*"), continuation ("+") and
 *               tagged responses, each a run of lines joined by literals
 *               (RFC 3501 section 7).
 *
 * Both are fed whatever slice of the stream is at hand (one byte at a time
 * works) and hand back one event per call. They never allocate, never log,
 * never block: on bad input they return LEM_IMAP_ERROR and point `error`
 * at a static, human-readable message. After an error a parser stays in
 * error until it is initialised again.
 *
 * Literal octets are never copied: LITERAL events point into the caller's
 * input, so a message of any size streams through in constant memory.
 */

#include <apr.h>

/* Longest tag and command name the command parser accepts. */
#define LEM_IMAP_TAG_MAX   64
#define LEM_IMAP_NAME_MAX  32

/* What one call to lem_cmd_next()/lem_resp_next() found. */
typedef enum {
    LEM_IMAP_NEED_MORE = 0, /* all input consumed, no event: feed more */
    LEM_IMAP_TEXT,          /* line text (see lem_imap_piece_t) */
    LEM_IMAP_LITERAL,       /* literal octets, any values */
    LEM_IMAP_ERROR          /* the stream is malformed; see `error` */
} lem_imap_ev_t;

/* The kind of literal announced at the end of a line segment. */
typedef enum {
    LEM_LITERAL_NONE = 0,   /* the line ends the command or response */
    LEM_LITERAL_SYNC,       /* "{n}": the sender must wait for "+" */
    LEM_LITERAL_NONSYNC     /* "{n+}": the octets follow at once */
} lem_literal_t;

/*
 * Private to both parsers: recognises a literal marker, "{" number ["+"]
 * "}", as the last bytes of a line however the line arrives in pieces.
 */
typedef struct {
    int           state;         /* how much of a marker was just seen */
    apr_uint64_t  num;           /* its number so far */
    int           overflow;      /* the number does not fit 64 bits */
} lem_imap_lit_scan_t;

/* One piece of the stream, as returned with TEXT and LITERAL events. */
typedef struct {
    const char *data;       /* the bytes; valid until the next call */
    apr_size_t  len;        /* may be 0 only for LITERAL of "{0}" */
    unsigned    first:1;    /* the first piece of a command/response */
    unsigned    line_end:1; /* TEXT: ends with the CRLF of a line */
    unsigned    last:1;     /* ends the whole command/response */
} lem_imap_piece_t;

/* ------------------------------------------------------------------ */
/* Commands, client to server                                          */
/* ------------------------------------------------------------------ */

/*
 * RFC 3501, section 9:
 *   command  = tag SP (command-any / command-auth / ...) CRLF
 *   tag      = 1*<any ASTRING-CHAR except "+">
 *   literal  = "{" number ["+"] "}" CRLF *CHAR8
 *   literal8 = "~{" number ["+"] "}" CRLF *OCTET      (RFC 4466, 4.3)
 *
 * The "~" of a literal8 (RFC 3516 BINARY) is plain text to this parser;
 * the marker that follows it is read like any other.
 *
 * The parser checks what the binding must check before a byte goes to the
 * backend (draft-maes-lemonade-http-binding-04, 2.1: "The Lemonade command
 * MUST be plain text (7bit)"): every text byte is 7-bit and not NUL, every
 * CR is followed by LF and every LF preceded by CR, quoted strings end on
 * their line, the tag is well formed, a command name follows it, no line
 * segment exceeds max_line and no literal exceeds max_literal. Literal
 * octets are not checked at all.
 *
 * Each line segment is returned whole, as one TEXT event (line_end is set),
 * from the caller's line buffer; then, if the segment announced a literal,
 * LITERAL events carry its octets (possibly in several pieces, none for
 * "{0}"), then the next segment of the same command follows.
 */
typedef struct {
    /* Set by lem_cmd_init(). */
    char         *line;          /* caller's buffer of max_line bytes */
    apr_size_t    max_line;      /* longest segment, CRLF included */
    apr_uint64_t  max_literal;   /* largest literal accepted */

    /* Describe the command of the last TEXT event. */
    char          tag[LEM_IMAP_TAG_MAX + 1];
    char          name[LEM_IMAP_NAME_MAX + 1]; /* upper case; "UID FETCH" */
    lem_literal_t literal;       /* announced at the end of the segment */
    apr_uint64_t  literal_len;   /* its length in octets */
    unsigned      commands;      /* complete commands seen so far */
    const char   *error;         /* static message after LEM_IMAP_ERROR */
    unsigned      limit_hit:1;   /* the error is max_line or max_literal */

    /* Private state. */
    int           state;
    apr_size_t    len;           /* bytes in `line` */
    apr_uint64_t  left;          /* literal octets still to come */
    int           in_quote;      /* inside a quoted string */
    int           escaped;       /* after a backslash inside one */
    int           seg_first;     /* the segment being read starts a command */
    int           raw_line;      /* the next line answers a continuation */
    lem_imap_lit_scan_t lit;     /* marker at the end of the segment */
} lem_cmd_parser_t;

/* Prepare `p` to read a new stream. `line` must hold `max_line` bytes. */
void lem_cmd_init(lem_cmd_parser_t *p, char *line, apr_size_t max_line,
                  apr_uint64_t max_literal);

/*
 * Read from `in` (len bytes) up to the next event. `*used` is set to how
 * many bytes of `in` were consumed; the caller passes the rest again.
 * Returns NEED_MORE when all of `in` was consumed without an event,
 * TEXT or LITERAL with `*piece` filled, or ERROR with `p->error` set.
 */
lem_imap_ev_t lem_cmd_next(lem_cmd_parser_t *p, const char *in,
                           apr_size_t len, apr_size_t *used,
                           lem_imap_piece_t *piece);

/* Non-zero when the stream read so far ends exactly after a command. */
int lem_cmd_at_boundary(const lem_cmd_parser_t *p);

/*
 * RFC 3501, 7.5 and 6.2.2, RFC 2177: after a continuation request the
 * client's next line answers it (a SASL response, or IDLE's "DONE") and
 * is no command: it has no tag, no name and no literal. Call at a
 * boundary; the next line is checked as text only (7-bit, no NUL, CRLF)
 * and returned as one TEXT piece with first and last set and an empty
 * tag and name. It does not count in `commands`.
 */
void lem_cmd_expect_line(lem_cmd_parser_t *p);

/* ------------------------------------------------------------------ */
/* Responses, server to client                                         */
/* ------------------------------------------------------------------ */

typedef enum {
    LEM_RESP_UNTAGGED = 0,      /* "* ..." */
    LEM_RESP_CONTINUATION,      /* "+ ..." */
    LEM_RESP_TAGGED             /* "tag OK|NO|BAD ..." */
} lem_resp_kind_t;

typedef enum {
    LEM_STATUS_NONE = 0,        /* data response ("* 3 EXISTS") or "+" */
    LEM_STATUS_OK,
    LEM_STATUS_NO,
    LEM_STATUS_BAD,
    LEM_STATUS_PREAUTH,
    LEM_STATUS_BYE
} lem_status_t;

/*
 * RFC 3501, section 7 and 9:
 *   response      = *(continue-req / response-data) response-done
 *   resp-cond-*   = ("OK" / "NO" / "BAD" / "PREAUTH" / "BYE") SP resp-text
 *
 * Line text streams through in pieces (a SEARCH answer may be megabytes
 * long and is never held whole); only the head of a response, up to and
 * including its status word, is gathered first so that the first TEXT
 * event of each response arrives classified in `kind`, `tag` and
 * `status`. Lines must end in CRLF; apart from that and the literal
 * syntax, the server's bytes are not judged.
 */
typedef struct {
    /* Describe the response of the last event. */
    lem_resp_kind_t kind;
    lem_status_t    status;
    char            tag[LEM_IMAP_TAG_MAX + 1]; /* TAGGED only */
    lem_literal_t   literal;     /* announced at the end of the line */
    apr_uint64_t    literal_len;
    const char     *error;       /* static message after LEM_IMAP_ERROR */

    /* Private state. */
    int             state;
    char            head[LEM_IMAP_TAG_MAX + 16]; /* tag, status, CRLF */
    apr_size_t      head_len;
    apr_uint64_t    left;        /* literal octets still to come */
    lem_imap_lit_scan_t lit;     /* marker at the end of the line */
} lem_resp_parser_t;

/* Prepare `p` to read a new stream. */
void lem_resp_init(lem_resp_parser_t *p);

/* As lem_cmd_next(), for the server's responses. */
lem_imap_ev_t lem_resp_next(lem_resp_parser_t *p, const char *in,
                            apr_size_t len, apr_size_t *used,
                            lem_imap_piece_t *piece);

/* Non-zero when the stream read so far ends exactly after a response. */
int lem_resp_at_boundary(const lem_resp_parser_t *p);

/* The status word as IMAP spells it ("OK", ...), "" for NONE. */
const char *lem_status_name(lem_status_t status);

#endif /* LEM_IMAP_H */
