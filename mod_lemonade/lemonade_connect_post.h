/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef LEMONADE_CONNECT_POST_H
#define LEMONADE_CONNECT_POST_H

/*
 * In-response exchanges (draft 2.1.1): a batch of commands POSTed with
 * Content-Type: application/vnd.lemonade and the session's cookie, the
 * answer streamed back piece by piece. The connection is kept for the
 * next batch while the server allows it.
 */

#include "lemonade_connect.h"
#include "lemonade_connect_http.h"

/* The HTTP side of one in-response session. */
typedef struct {
    lc_session_t *s;
    lc_conn_t     conn;
    int           open;         /* conn carries earlier answers */
    lc_jar_t      jar;          /* the session's cookie */
    lc_head_t     head;         /* of the answer being read */
    char          err[LC_ERR_MAX]; /* why no answer came */
} lc_post_t;

/*
 * After the request is sent, before its answer is read: a long poll
 * watches the client meanwhile and returns once the connection has
 * something to read (lc_conn_buffered(), or its socket readable).
 * Returns LC_OK, or anything else to give up the exchange.
 */
typedef int (*lc_wait_fn)(void *ctx, lc_conn_t *c);

/*
 * A piece of the answer's body, with p->head describing the answer;
 * `data` NULL once after the last piece. Returns LC_OK, or anything else
 * to stop reading (the connection is then closed).
 */
typedef int (*lc_answer_fn)(void *ctx, const lc_head_t *h, const char *data,
                            size_t len);

void lc_post_init(lc_post_t *p, lc_session_t *s);

/*
 * POST `body` with the extra header lines `extra` (may be NULL), call
 * `wait` (may be NULL), pass the answer to `answer`. A kept connection
 * that the server had closed is opened again and the batch sent once
 * more, but only when no byte of an answer came: the server never saw
 * it. Returns LC_OK once an answer of any status was passed on; else an
 * LC_* code with p->err saying why no answer came, for the client.
 */
int lc_post_batch(lc_post_t *p, const char *body, size_t len,
                  const char *extra, lc_wait_fn wait, lc_answer_fn answer,
                  void *ctx);

/* Non-zero once a cookie was set and the server took it back: the
 * gateway ended the session (draft 2.1.1, Max-Age=0). */
int lc_post_session_ended(const lc_post_t *p);

/* Non-zero once the server set the session's cookie to a new value: the
 * session we had expired there, and the last batch ran in a new one. */
int lc_post_session_replaced(const lc_post_t *p);

/* Non-zero while the gateway holds a session for us. */
int lc_post_has_session(const lc_post_t *p);

void lc_post_close(lc_post_t *p);

#endif /* LEMONADE_CONNECT_POST_H */
