/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef LEM_SOAP_H
#define LEM_SOAP_H

/*
 * The SOAP binding's mapping: draft-maes-lemonade-http-binding-04, 2.2,
 * made complete. The protocol core, with no httpd in it.
 *
 *   request:  SOAP XML --apr_xml--> elements --map--> lem_arg_t tree
 *             --lem_args_write_command--> IMAP command text
 *   answer:   IMAP responses --lem_args_parse--> lem_arg_t tree
 *             --map--> SOAP XML
 *
 * The tree is the one lem_args.h parses and writes for the tunnel, so the
 * binding has no IMAP grammar of its own. conf.d/lemonade-soap.txt is the
 * mapping rule by rule; conf.d/lemonade.xsd and conf.d/lemonade.wsdl are
 * the contract every answer keeps. lem_soap.c reads requests,
 * lem_soap_answer.c writes answers and faults.
 *
 * Hostile documents: the XML parser is APR-util's (expat), which refuses
 * any entity declaration, so no entity can expand (a "billion laughs"
 * document is malformed XML here) and no external entity is ever read.
 * A request may hold at most LEM_SOAP_MAX_MARKUP "<" characters, which
 * bounds the elements (and so the memory) a document can make, and
 * elements nest at most LEM_SOAP_MAX_DEPTH deep; the caller bounds its
 * size (LemonadeMaxRequestBody).
 */

#include <apr_pools.h>

#include "lem_args.h"

/* The binding's own namespace; its elements are accepted without one. */
#define LEM_SOAP_NS         "urn:mod-lemonade:soap"
#define LEM_SOAP11_ENV_NS   "http://schemas.xmlsoap.org/soap/envelope/"
#define LEM_SOAP12_ENV_NS   "http://www.w3.org/2003/05/soap-envelope"

/* Most "<" in a request: elements, comments, CDATA sections. */
#define LEM_SOAP_MAX_MARKUP 10000

/* Deepest element nesting in a request, the Envelope being 1. */
#define LEM_SOAP_MAX_DEPTH  32

/* The commands of a request are tagged "s1", "s2", ... in order. */
#define LEM_SOAP_TAG_PREFIX "s"

typedef enum {
    LEM_SOAP_NONE = 0,
    LEM_SOAP_11,            /* text/xml with a SOAPAction header */
    LEM_SOAP_12             /* application/soap+xml */
} lem_soap_version_t;

/*
 * The SOAP version a request asks for: SOAP 1.1 (SOAP 1.1, 6.1.1) for a
 * Content-Type of text/xml with a SOAPAction header (`soap_action` not
 * NULL, any value), SOAP 1.2 (SOAP 1.2 part 2, 7.1.4) for
 * application/soap+xml, NONE for anything else.
 */
lem_soap_version_t lem_soap_version_of(const char *content_type,
                                       const char *soap_action);

/* Content-Type of an answer in `version`, with its charset. */
const char *lem_soap_media_type(lem_soap_version_t version);

/* The Envelope's namespace in `version`. */
const char *lem_soap_envelope_ns(lem_soap_version_t version);

/* Why an answer is a Fault; the names are SOAP 1.1's. */
typedef enum {
    LEM_FAULT_NONE = 0,
    LEM_FAULT_VERSION,      /* VersionMismatch: the wrong envelope */
    LEM_FAULT_MUST_UNDERSTAND, /* a mustUnderstand header block */
    LEM_FAULT_CLIENT,       /* Client (1.2: Sender): the request is wrong */
    LEM_FAULT_SERVER,       /* Server (1.2: Receiver): gateway or backend */
    LEM_FAULT_NO,           /* Server.NO (1.2: Receiver, lem:NO) */
    LEM_FAULT_BAD           /* Server.BAD (1.2: Receiver, lem:BAD) */
} lem_soap_fault_t;

/*
 * The HTTP status of an answer: 200 without a fault; with one, 500 (SOAP
 * 1.1, 6.2: "MUST issue an HTTP 500"), except 400 for a SOAP 1.2 Sender
 * fault (SOAP 1.2 part 2, 7.5.2.2, table 20).
 */
int lem_soap_http_status(lem_soap_version_t version, lem_soap_fault_t fault);

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

/* One method element of the Body: one IMAP command. */
typedef struct {
    const char *method;     /* "UID_FETCH"; its answer: UID_FETCHResponse */
    const char *command;    /* "UID FETCH" */
    lem_arg_t  *args;       /* its arguments, or NULL */
} lem_soap_call_t;

/* A request, read and mapped. */
typedef struct {
    lem_soap_version_t version;
    lem_soap_call_t   *calls;   /* the Body's method elements, in order */
    int                ncalls;  /* at least 1 */
} lem_soap_request_t;

typedef struct lem_soap_reader_t lem_soap_reader_t;

/* A reader of one request in `version`, allocating from `pool`. */
lem_soap_reader_t *lem_soap_reader_create(apr_pool_t *pool,
                                          lem_soap_version_t version);

/* Feed the next `len` bytes of the document. APR_SUCCESS, or APR_EINVAL
 * once the document is refused (see lem_soap_reader_fault). */
apr_status_t lem_soap_reader_feed(lem_soap_reader_t *rd, const char *data,
                                  apr_size_t len);

/* The document is complete: map it. APR_SUCCESS and `*req`, or
 * APR_EINVAL (see lem_soap_reader_fault). */
apr_status_t lem_soap_reader_done(lem_soap_reader_t *rd,
                                  const lem_soap_request_t **req);

/* Why the request was refused: the fault (VERSION, MUST_UNDERSTAND or
 * CLIENT) and a message for the faultstring. NONE before a refusal. */
lem_soap_fault_t lem_soap_reader_fault(const lem_soap_reader_t *rd,
                                       const char **why);

/*
 * The IMAP commands of `req`, tagged LEM_SOAP_TAG_PREFIX 1, 2, ..., each
 * CRLF-ended, literals as "{n}" or "~{n}". APR_SUCCESS, the sink's error,
 * or APR_EINVAL and `*error` (lem_args_write_command).
 */
apr_status_t lem_soap_write_commands(const lem_soap_request_t *req,
                                     const lem_sink_t *out,
                                     const char **error);

/* ------------------------------------------------------------------ */
/* Answers                                                             */
/* ------------------------------------------------------------------ */

typedef struct lem_soap_answer_t lem_soap_answer_t;

/*
 * The answer to `req`, made from the IMAP responses its commands got (as
 * the relay gathered them, literals inline) in two passes over them:
 *
 *   1. lem_soap_answer_scan() each piece, then lem_soap_answer_outcome():
 *      NO or BAD when a command was refused, with a faultstring;
 *   2. lem_soap_answer_begin() with the fault to give (NONE, NO, BAD or
 *      SERVER), lem_soap_answer_feed() each piece again, and
 *      lem_soap_answer_end().
 *
 * A fault carries the answer elements in its detail. Only one response
 * is held in memory at a time, in a pool cleared after each.
 */
lem_soap_answer_t *lem_soap_answer_create(apr_pool_t *pool,
                                          const lem_soap_request_t *req);

/* Pass 1. APR_SUCCESS, or APR_EINVAL when the bytes are not IMAP
 * responses (the answer is then a SERVER fault). */
apr_status_t lem_soap_answer_scan(lem_soap_answer_t *a, const char *data,
                                  apr_size_t len);

/* After pass 1: NONE, or NO or BAD (the first command refused) and
 * `*why`: "LOGIN: NO [AUTHENTICATIONFAILED] ...". */
lem_soap_fault_t lem_soap_answer_outcome(const lem_soap_answer_t *a,
                                         const char **why);

/* Pass 2. Each returns APR_SUCCESS or the sink's error; `why` is the
 * faultstring when `fault` is not NONE. */
apr_status_t lem_soap_answer_begin(lem_soap_answer_t *a,
                                   lem_soap_fault_t fault, const char *why,
                                   const lem_sink_t *out);
apr_status_t lem_soap_answer_feed(lem_soap_answer_t *a, const char *data,
                                  apr_size_t len);
apr_status_t lem_soap_answer_end(lem_soap_answer_t *a);

/*
 * A Fault with no detail: a refused request or a failure before any
 * command ran. APR_SUCCESS or the sink's error.
 */
apr_status_t lem_soap_write_fault(apr_pool_t *pool,
                                  lem_soap_version_t version,
                                  lem_soap_fault_t fault, const char *why,
                                  const lem_sink_t *out);

#endif /* LEM_SOAP_H */
