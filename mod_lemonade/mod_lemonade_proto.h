/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef MOD_LEMONADE_PROTO_H
#define MOD_LEMONADE_PROTO_H

/*
 * What a protocol brings to the two modes of the binding.
 *
 * draft-maes-lemonade-http-binding-04, 2.1.4: "The only difference between
 * IMAP and SMTP will be the HTTP URL used." The modes are the same for
 * both, so each is written once (mod_lemonade_handler.c for in-response,
 * mod_lemonade_inband.c for in-band) and asks the Location's protocol,
 * through the table below, for what only the protocol knows: how commands
 * and answers are framed, what a greeting looks like, how a batch is
 * relayed.
 *
 *   in-response:  check (each piece of the body, then NULL)
 *                 greet (a new backend connection)
 *                 relay (the checked body, into the answer)
 *   in-band:      greet, then client_bytes / backend_bytes as they come,
 *                 quiet (nothing left unanswered)
 */

#include <httpd.h>

#include "lem_id.h"
#include "lem_spool.h"
#include "mod_lemonade_backend.h"
#include "mod_lemonade_config.h"
#include "mod_lemonade_keeper.h"

typedef struct lem_protocol_t lem_protocol_t;

/* One in-response exchange: a request, its session, its answer. */
typedef struct {
    request_rec          *r;
    const lem_dir_conf_t *conf;
    const lem_protocol_t *proto;
    lem_spool_t          *body;       /* the batch, checked whole */
    char                 *line;       /* a max_line buffer for parsers */
    void                 *state;      /* the protocol's, for check/relay */

    lem_id_t              id;         /* the session */
    int                   have_session;
    int                   is_new;
    apr_uint32_t          flags;      /* the protocol's, kept in the slot */
    lem_link_t            link;       /* to the keeper, while borrowed */
    lem_backend_t         be;

    lem_spool_t          *answer;     /* every response, in order */
    int                   any_failed; /* a NO or BAD; a 4xx or 5xx */
    int                   ended;      /* the server said goodbye */
    apr_status_t          be_error;   /* the backend failed: EOF, TIMEUP */
} lem_batch_t;

/* One in-band session: one request, one backend connection. */
typedef struct {
    request_rec          *r;
    const lem_dir_conf_t *conf;
    const lem_protocol_t *proto;
    void                 *state;        /* the protocol's */
    int                   cfd;          /* the client's socket, to poll */
    apr_bucket_brigade   *in;           /* read from the client */
    apr_bucket_brigade   *out;          /* the response being gathered */
    apr_size_t            out_len;
    char                 *line;         /* a max_line buffer for parsers */
    lem_backend_t         be;
    int                   saw_bye;      /* the server said goodbye */
    int                   client_done;  /* its last chunk came */
    int                   client_gone;  /* it hung up, or cannot be written */
    int                   backend_done; /* closed, failed or malformed */
    const char           *why;          /* why the backend side ended */
    apr_uint64_t          bytes_in;     /* from the client, for the status */
    apr_uint64_t          bytes_out;
} lem_inband_t;

struct lem_protocol_t {
    lem_proto_t proto;
    const char *server;          /* "IMAP server", for messages */
    const char *bye_fmt;         /* the goodbye the gateway says, "%s" */

    /* A new backend connection's greeting: APR_SUCCESS and `*welcome`
     * when it opens a session; its bytes, up to `cap`, into `out`. */
    apr_status_t (*greet)(lem_backend_t *be, int *welcome, char *out,
                          apr_size_t cap, apr_size_t *len);

    /* After the greeting: ask the server to start TLS. APR_SUCCESS when
     * it agreed; APR_EACCES when it refused. */
    apr_status_t (*starttls)(lem_backend_t *be, const char *helo);

    /* In-response, pass 1: check a piece of the body (`data` NULL after
     * the last). OK, or DONE when the 400/413 answer is made. */
    int (*check)(lem_batch_t *b, const char *data, apr_size_t len);

    /* In-response, pass 2: relay the checked body into b->answer. */
    apr_status_t (*relay)(lem_batch_t *b);

    /* In-band: set up ib->state, framing the client's bytes and the
     * server's answers, and say when nothing is left unanswered. */
    void (*inband_init)(lem_inband_t *ib);
    apr_status_t (*client_bytes)(lem_inband_t *ib, const char *data,
                                 apr_size_t len);
    apr_status_t (*backend_bytes)(void *ib);
    int (*quiet)(lem_inband_t *ib);
};

extern const lem_protocol_t lem_imap_protocol;
extern const lem_protocol_t lem_smtp_protocol;

/* ------------------------------------------------------------------ */
/* What the modes offer the protocols                                  */
/* ------------------------------------------------------------------ */

/*
 * Both modes: reach the Location's server. Connect, protect the
 * connection as configured (LemonadeBackendStartTLS after the plain
 * greeting, imaps:// and smtps:// at once; both through the keeper's TLS
 * relay, opening `link` if it is closed) and read the greeting, whose
 * bytes go to `out`. APR_SUCCESS with `be` ready; otherwise APR_TIMEUP or
 * another error, logged, with `*what` for the client's one-line answer.
 */
apr_status_t lem_backend_open(request_rec *r, const lem_dir_conf_t *conf,
                              const lem_protocol_t *proto, lem_link_t *link,
                              lem_backend_t *be, char *out, apr_size_t cap,
                              apr_size_t *len, const char **what);

/* In-response: add bytes to the answer. */
void lem_batch_answer(lem_batch_t *b, const char *data, apr_size_t len);

/* In-response, pass 1: refuse the batch at its command `n` (from 1) with
 * 400 or 413 and `why`. Returns DONE. */
int lem_batch_refuse(lem_batch_t *b, int status, unsigned n,
                     const char *why);

/* Both modes: the gateway's words for a backend failure. */
const char *lem_failure_text(apr_pool_t *p, const lem_protocol_t *proto,
                             apr_status_t rv);

/* In-band: add bytes to the response being gathered, send it as a chunk
 * of its own, note that the backend side ended, send to the backend. */
apr_status_t lem_inband_to_client(lem_inband_t *ib, const char *data,
                                  apr_size_t len);
apr_status_t lem_inband_flush(lem_inband_t *ib);
void lem_inband_backend_ended(lem_inband_t *ib, apr_status_t rv);
apr_status_t lem_inband_to_backend(lem_inband_t *ib, const char *data,
                                   apr_size_t len);

/* In-band: make sure unread backend bytes stand in be.buf[off, len):
 * APR_SUCCESS when they do, APR_EAGAIN when none came yet, or another
 * status when the backend side ended (already noted). Never waits. */
apr_status_t lem_inband_backend_more(lem_inband_t *ib);

/* In-band: the client broke the protocol; end with the goodbye. */
apr_status_t lem_inband_bad_client(lem_inband_t *ib, const char *bye);

#endif /* MOD_LEMONADE_PROTO_H */
