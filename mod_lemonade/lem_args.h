/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef LEM_ARGS_H
#define LEM_ARGS_H

/*
 * The IMAP argument tree: the protocol core, with no httpd in it.
 *
 * One parser, several writers. A command or a response is parsed once
 * into a small tree of arguments; the tree is written out as IMAP wire
 * text here (lem_args_write*) or as SOAP XML by lem_soap.c, so the SOAP
 * binding never grows a grammar of its own.
 *
 *   a1 UID FETCH 1:5 (FLAGS BODY[HEADER.FIELDS (From)]<0.100>)
 *
 *   tag "a1", name "UID FETCH", args:
 *     ATOM "1:5"
 *     LIST
 *       ATOM "FLAGS"
 *       ATOM "BODY"
 *         SECTION (glued)                 "[...]"
 *           ATOM "HEADER.FIELDS"
 *           LIST: ATOM "From"
 *         PARTIAL "0.100" (glued)         "<0.100>"
 *
 * (SECTION and PARTIAL are siblings of "BODY" in the tree: `glued` says
 * that no space comes before them.)
 *
 * The writer is where injection is stopped: every node is checked as it
 * is written, a quoted string never holds CR, LF or NUL, an atom never
 * holds a space, a bracket, a parenthesis, a brace or a quote, and a value
 * that is not safe as an atom or a quoted string is written as a literal
 * (lem_arg_value). Whatever a tree holds, its text is exactly one command.
 */

#include <apr_pools.h>

#include "lem_imap.h"

/* Deepest nesting of lists and sections the parser accepts. */
#define LEM_ARGS_MAX_DEPTH    64

/* Longest atom, quoted string or text the parser accepts. */
#define LEM_ARGS_MAX_TOKEN    (64 * 1024)

/* Longest value lem_arg_value() writes as an atom or a quoted string. */
#define LEM_ARGS_MAX_QUOTED   1024

/* What a node is; `data`/`len` hold the octets of the leaf kinds. */
typedef enum {
    LEM_ARG_ATOM = 1,   /* FLAGS, \Seen, 1:5,9, BODY.PEEK, +FLAGS */
    LEM_ARG_NUMBER,     /* an atom of digits only: 1234 */
    LEM_ARG_QUOTED,     /* "..." : `data` is the string, unescaped */
    LEM_ARG_LITERAL,    /* {n} CRLF octets: `data` is the octets */
    LEM_ARG_NIL,        /* NIL */
    LEM_ARG_LIST,       /* ( kids ) */
    LEM_ARG_SECTION,    /* [ kids ]: BODY[...] or a response code */
    LEM_ARG_PARTIAL,    /* <data>: "0.100" in BODY[]<0.100> */
    LEM_ARG_TEXT        /* the rest of a line: resp-text, "+" data */
} lem_arg_kind_t;

typedef struct lem_arg_t lem_arg_t;

/* One node of the tree. */
struct lem_arg_t {
    lem_arg_kind_t kind;
    const char    *data;        /* leaf octets, NUL-terminated copy */
    apr_size_t     len;
    lem_arg_t     *kids;        /* LIST, SECTION: the first kid */
    lem_arg_t     *next;        /* the next sibling */
    unsigned       glued:1;     /* no space before it: "BODY[", ")<" */
    unsigned       literal8:1;  /* LITERAL: "~{n}" (RFC 3516) */
    unsigned       nonsync:1;   /* LITERAL: "{n+}" (RFC 7888) */
};

/* What a parsed message is. */
typedef enum {
    LEM_MSG_COMMAND = 1,    /* tag SP name [SP args] CRLF */
    LEM_MSG_UNTAGGED,       /* "*" SP args CRLF */
    LEM_MSG_CONTINUATION,   /* "+" [SP text] CRLF */
    LEM_MSG_TAGGED,         /* tag SP status ... CRLF */
    LEM_MSG_PLAIN           /* args CRLF, nothing before them */
} lem_msg_kind_t;

/*
 * One parsed message. In a status response (RFC 3501 7.1: OK, NO, BAD,
 * PREAUTH, BYE) the args are the status word (ATOM), a SECTION for the
 * response code when there is one, and TEXT for the text when there is
 * one; a continuation's args are one TEXT, or none.
 */
typedef struct {
    lem_msg_kind_t kind;
    const char    *tag;         /* COMMAND, TAGGED; "*" or "+" else */
    const char    *name;        /* COMMAND: "FETCH", "UID FETCH", as sent */
    lem_status_t   status;      /* a status response's word, else NONE */
    lem_arg_t     *args;        /* the first argument, or NULL */
} lem_args_msg_t;

/* ------------------------------------------------------------------ */
/* Building trees                                                      */
/* ------------------------------------------------------------------ */

/* A node of `kind` holding a copy of `len` octets (NULL for none). */
lem_arg_t *lem_arg_new(apr_pool_t *p, lem_arg_kind_t kind,
                       const char *data, apr_size_t len);

/*
 * A string value, in the form that carries it safely: an atom when it is
 * 1 to LEM_ARGS_MAX_QUOTED of the characters A-Z a-z 0-9 and
 * !#$&'+,-./:;=?@^_`|~ and is not NIL; else a quoted string when it is
 * no longer than that, 7-bit and free of NUL, CR and LF; else a literal,
 * "~{n}" when it holds a NUL and "{n}" otherwise.
 */
lem_arg_t *lem_arg_value(apr_pool_t *p, const char *data, apr_size_t len);

/* Appends nodes one after another. */
typedef struct {
    lem_arg_t  *first;      /* the list */
    lem_arg_t  *last;       /* its last node, or NULL */
    lem_arg_t **tail;       /* where the next node goes */
} lem_arg_list_t;

void lem_arg_list_init(lem_arg_list_t *l);
void lem_arg_list_add(lem_arg_list_t *l, lem_arg_t *node);

/* ------------------------------------------------------------------ */
/* Parsing                                                             */
/* ------------------------------------------------------------------ */

/* What a parser reads. */
typedef enum {
    LEM_ARGS_COMMAND = 1,   /* a client command */
    LEM_ARGS_RESPONSE,      /* a server response of any kind */
    LEM_ARGS_PLAIN          /* arguments alone, CRLF ended, no literal */
} lem_args_mode_t;

/* What one call to lem_args_feed() found. */
typedef enum {
    LEM_ARGS_NEED_MORE = 0, /* all input consumed: feed more */
    LEM_ARGS_DONE,          /* a message ended; lem_args_msg() has it */
    LEM_ARGS_ERROR          /* malformed; lem_args_error() says why */
} lem_args_ev_t;

typedef struct lem_args_parser_t lem_args_parser_t;

/*
 * A push parser for one message at a time. Its nodes and copies come
 * from `pool`; no literal longer than `max_literal` is accepted (nor ever
 * allocated). Never logs, never blocks; one byte at a time works.
 */
lem_args_parser_t *lem_args_parser_create(apr_pool_t *pool,
                                          lem_args_mode_t mode,
                                          apr_size_t max_literal);

/*
 * Read from `in` (len bytes) up to the end of the message. `*used` is
 * how many bytes were consumed. Returns NEED_MORE (all of `in` used),
 * DONE (the message ends after `*used` bytes) or ERROR. After DONE or
 * ERROR, call lem_args_parser_reset() before the next message.
 */
lem_args_ev_t lem_args_feed(lem_args_parser_t *ps, const char *in,
                            apr_size_t len, apr_size_t *used);

/* The message after DONE: valid until the reset or the pool's end. */
const lem_args_msg_t *lem_args_msg(const lem_args_parser_t *ps);

/* A static, human-readable message after ERROR. */
const char *lem_args_error(const lem_args_parser_t *ps);

/* Ready for the next message; its nodes come from `pool` (NULL: the
 * pool given so far). */
void lem_args_parser_reset(lem_args_parser_t *ps, apr_pool_t *pool);

/*
 * Parse exactly one message that fills `len` bytes of `data`. APR_SUCCESS
 * and `*msg`, or APR_EINVAL and a static `*error` (also when bytes are
 * left over, or the message is cut short).
 */
apr_status_t lem_args_parse(apr_pool_t *pool, lem_args_mode_t mode,
                            const char *data, apr_size_t len,
                            const lem_args_msg_t **msg, const char **error);

/* ------------------------------------------------------------------ */
/* Writing IMAP                                                        */
/* ------------------------------------------------------------------ */

/* Where written bytes go; a non-zero return stops the writing. */
typedef apr_status_t (*lem_sink_fn)(void *ctx, const char *data,
                                    apr_size_t len);

typedef struct {
    lem_sink_fn write;
    void       *ctx;
} lem_sink_t;

/*
 * Write `args` and their siblings as IMAP text: a space between nodes
 * unless the later one is glued, literals as "{n}" CRLF octets. Returns
 * APR_SUCCESS, the sink's error, or APR_EINVAL with a static `*error`
 * when a node cannot be written as what it is (an atom with a space, a
 * quoted string with a CR, a malformed partial...).
 */
apr_status_t lem_args_write(const lem_arg_t *args, const lem_sink_t *out,
                            const char **error);

/* A command: `tag` SP `name` [SP args] CRLF. As lem_args_write(). */
apr_status_t lem_args_write_command(const char *tag, const char *name,
                                    const lem_arg_t *args,
                                    const lem_sink_t *out,
                                    const char **error);

/* A whole message as parsed, with its CRLF. As lem_args_write(). */
apr_status_t lem_args_write_msg(const lem_args_msg_t *msg,
                                const lem_sink_t *out, const char **error);

#endif /* LEM_ARGS_H */
