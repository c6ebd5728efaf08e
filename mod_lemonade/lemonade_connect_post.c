/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#include <stdio.h>
#include <string.h>

#include "lemonade_connect_post.h"

/* draft 2.1: "The Content-Type header is the only HTTP headers that MUST
 * be sent to a Lemonade server"; no-cache keeps caches out of the way. */
#define LC_BATCH_HEADERS \
    "Content-Type: application/vnd.lemonade\r\n" \
    "Cache-Control: no-cache\r\n" \
    "Pragma: no-cache\r\n"

void lc_post_init(lc_post_t *p, lc_session_t *s)
{
    memset(p, 0, sizeof(*p));
    p->s = s;
    lc_conn_init(&p->conn);
}

void lc_post_close(lc_post_t *p)
{
    lc_conn_close(&p->conn);
    p->open = 0;
}

int lc_post_session_ended(const lc_post_t *p)
{
    return p->jar.ever && p->jar.n == 0;
}

int lc_post_session_replaced(const lc_post_t *p)
{
    return p->jar.replaced;
}

int lc_post_has_session(const lc_post_t *p)
{
    return p->jar.n > 0;
}

/* A kept connection the server has closed meanwhile reads EOF at once:
 * better found before the request than after. */
static void drop_if_stale(lc_post_t *p)
{
    if (p->open && lc_conn_fill(&p->conn, 0) != LC_TIMEOUT) {
        lc_post_close(p);
    }
}

/* Send the request; LC_OK, or an LC_* code with p->err set. */
static int send_batch(lc_post_t *p, const char *body, size_t len,
                      const char *extra)
{
    const lc_conf_t *conf = p->s->conf;
    lc_buf_t headers = { 0 };
    int rc;

    if (!p->open) {
        if (lc_http_open(&p->conn, conf) != LC_OK) {
            snprintf(p->err, sizeof(p->err), "%s", p->conn.err);
            return LC_ERROR;
        }
        p->open = 1;
    }
    lc_buf_addstr(&headers, LC_BATCH_HEADERS);
    lc_buf_addstr(&headers, extra ? extra : "");
    lc_buf_add(&headers, "", 1);
    rc = lc_http_request(&p->conn, conf, "POST", (long long)len,
                         headers.data, &p->jar);
    lc_buf_free(&headers);
    if (rc == LC_OK) {
        rc = lc_conn_write(&p->conn, body, len, conf->timeout * 1000, NULL,
                           NULL);
    }
    if (rc != LC_OK) {
        snprintf(p->err, sizeof(p->err), "sending the request: %.200s",
                 p->conn.err[0] ? p->conn.err : "timed out");
    }
    return rc;
}

/* Read the answer's body into `answer`. */
static int read_answer(lc_post_t *p, lc_answer_fn answer, void *ctx)
{
    lc_body_t body;
    const char *data;
    size_t len;
    int rc;

    lc_body_init(&body, &p->head, "POST");
    for (;;) {
        rc = lc_body_next(&p->conn, &body, p->s->conf->timeout * 1000,
                          &data, &len);
        if (rc == LC_END) {
            answer(ctx, &p->head, NULL, 0);
            break;
        }
        if (rc != LC_OK) {
            snprintf(p->err, sizeof(p->err), "%s", rc == LC_TIMEOUT
                     ? "the server stopped in the middle of an answer"
                     : p->conn.err);
            lc_post_close(p);
            return rc;
        }
        if (answer(ctx, &p->head, data, len) != LC_OK) {
            lc_post_close(p);
            return LC_OK;
        }
    }
    if (p->head.close) {
        lc_post_close(p);
    }
    return LC_OK;
}

/* One try: LC_OK; LC_EOF when a kept connection turned out closed before
 * it took the request or before any byte of an answer (the batch may be
 * sent again); else an LC_* code. */
static int try_batch(lc_post_t *p, const char *body, size_t len,
                     const char *extra, lc_wait_fn wait, lc_answer_fn answer,
                     void *ctx)
{
    int reused = p->open;
    int rc = send_batch(p, body, len, extra);

    if (rc != LC_OK) {
        lc_post_close(p);
        return reused && rc == LC_ERROR ? LC_EOF : rc;
    }
    if (wait && (rc = wait(ctx, &p->conn)) != LC_OK) {
        snprintf(p->err, sizeof(p->err), "%s", p->conn.err[0]
                 ? p->conn.err : "the exchange was given up");
        lc_post_close(p);
        return LC_ERROR;
    }
    rc = lc_http_head(&p->conn, &p->head, &p->jar,
                      p->s->conf->timeout * 1000);
    if (rc != LC_OK) {
        snprintf(p->err, sizeof(p->err), "%s", p->conn.err);
        lc_post_close(p);
        return reused && rc == LC_EOF ? LC_EOF : rc;
    }
    return read_answer(p, answer, ctx);
}

int lc_post_batch(lc_post_t *p, const char *body, size_t len,
                  const char *extra, lc_wait_fn wait, lc_answer_fn answer,
                  void *ctx)
{
    int rc;

    drop_if_stale(p);
    memset(&p->head, 0, sizeof(p->head));
    rc = try_batch(p, body, len, extra, wait, answer, ctx);
    if (rc == LC_EOF) {
        /* RFC 9112 9.5: a server may close a kept connection between
         * requests (its keep-alive timeout); a request sent just then is
         * never read, so it goes again, once, on a new connection.
         * XXX: a server that read the request and died before a byte of
         * answer looks the same, and then the batch runs twice. */
        rc = try_batch(p, body, len, extra, wait, answer, ctx);
    }
    return rc == LC_EOF ? LC_ERROR : rc;
}
