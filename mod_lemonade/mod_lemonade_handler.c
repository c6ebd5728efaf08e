/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#include <unistd.h>

#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_ssl.h>
#include <util_cookies.h>

#include "lem_imap.h"
#include "lem_spool.h"
#include "mod_lemonade.h"
#include "mod_lemonade_backend.h"
#include "mod_lemonade_config.h"
#include "mod_lemonade_handler.h"
#include "mod_lemonade_inband.h"
#include "mod_lemonade_keeper.h"

APLOG_USE_MODULE(lemonade);

#define LEM_MEDIA_TYPE  "application/vnd.lemonade"
#define LEM_ALLOW       "POST, OPTIONS"
#define LEM_READ_SIZE   (64 * 1024)

/* A command of the batch that was sent, and whether it was answered. */
typedef struct {
    char tag[LEM_IMAP_TAG_MAX + 1];
    int  done;
} lem_pending_t;

/* One in-response exchange: a request, its session, its answer. */
typedef struct {
    request_rec          *r;
    const lem_dir_conf_t *conf;

    /* step 2: the batch */
    lem_spool_t          *body;
    char                 *line;       /* the command parser's buffer */

    /* step 3: the session */
    lem_id_t              id;
    int                   have_session;
    int                   is_new;
    lem_link_t            link;
    lem_backend_t         be;

    /* step 4: relaying */
    lem_resp_parser_t     resp;
    lem_spool_t          *answer;
    apr_array_header_t   *pending;    /* of lem_pending_t, in order */
    int                   first_open; /* first pending not done */
    int                   outstanding;
    int                   skipping;   /* the rest of a command is dropped */
    int                   cont_wanted;/* a "{n}" waits for "+" */
    int                   cont_got;
    int                   cont_refused;
    int                   cancel;     /* an unasked "+" to answer with "*" */
    int                   in_cont;    /* inside a "+" line we consume */
    int                   in_tagged;  /* inside a tagged response */
    const char           *cur_tag;    /* of the command being sent */
    int                   any_failed; /* a NO or BAD came back */
    int                   saw_bye;
    int                   notices;    /* untagged data seen (long poll) */
    apr_time_t            deadline;   /* of a long poll, or 0 */
    apr_status_t          be_error;   /* the backend failed: EOF, TIMEUP */
} lem_batch_t;

/* ------------------------------------------------------------------ */
/* Answers                                                             */
/* ------------------------------------------------------------------ */

/* draft 3: "Cache-Control ... no-cache, no-store, must-revalidate" and
 * "Pragma: no-cache" for HTTP/1.0 caches, on every answer. */
void lem_set_no_cache(request_rec *r)
{
    apr_table_setn(r->err_headers_out, "Cache-Control",
                   "no-cache, no-store, must-revalidate");
    apr_table_setn(r->err_headers_out, "Pragma", "no-cache");
}

/* A one-line text/plain answer with `status`, sent as our own body rather
 * than an HTML error page. Returns DONE: the answer is made. */
int lem_answer_line(request_rec *r, int status, const char *text)
{
    r->status = status;
    ap_set_content_type(r, "text/plain");
    ap_set_content_length(r, (apr_off_t)strlen(text) + 2);
    if (!r->header_only) {
        ap_rvputs(r, text, "\r\n", NULL);
    }
    return DONE;
}

static void set_cookie(lem_batch_t *b, const char *value, int expire)
{
    request_rec *r = b->r;
    const char *secure = ap_ssl_conn_is_ssl(r->connection) ? "; Secure" : "";

    apr_table_addn(r->err_headers_out, "Set-Cookie", apr_psprintf(
        r->pool, "%s=%s; Path=%s; HttpOnly; SameSite=Strict%s%s",
        b->conf->cookie_name, value, b->conf->location,
        expire ? "; Max-Age=0" : "", secure));
}

/* ------------------------------------------------------------------ */
/* Step 1: method and media type                                       */
/* ------------------------------------------------------------------ */

/* draft section 5, item 1: OPTIONS tells what this URL is bound to. */
static int answer_options(lem_batch_t *b)
{
    request_rec *r = b->r;

    apr_table_setn(r->headers_out, "Allow", LEM_ALLOW);
    apr_table_setn(r->headers_out, "Lemonade-Protocol",
                   lem_proto_name(b->conf->proto));
    apr_table_setn(r->headers_out, "Lemonade-Modes",
                   "in-response, in-band, long-poll");
    apr_table_setn(r->headers_out, "Lemonade-Heartbeat", apr_psprintf(
                   r->pool, "%" APR_TIME_T_FMT,
                   apr_time_sec(b->conf->heartbeat)));
    r->status = HTTP_NO_CONTENT;
    return DONE;
}

static int is_lemonade_type(const char *ct)
{
    apr_size_t n = sizeof(LEM_MEDIA_TYPE) - 1;

    if (!ct) {
        return 0;
    }
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    if (strncasecmp(ct, LEM_MEDIA_TYPE, n)) {
        return 0;
    }
    ct += n;
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    return *ct == '\0' || *ct == ';';
}

/* Each step returns OK to go on, or DONE when the answer is made. */
static int check_request(lem_batch_t *b)
{
    request_rec *r = b->r;

    if (r->method_number == M_OPTIONS) {
        ap_discard_request_body(r);
        return answer_options(b);
    }
    /* draft 2.1: "A server MUST reject a HTTP GET request" */
    if (r->method_number != M_POST) {
        ap_discard_request_body(r);
        apr_table_setn(r->err_headers_out, "Allow", LEM_ALLOW);
        return lem_answer_line(r, HTTP_METHOD_NOT_ALLOWED, apr_psprintf(
                           r->pool, "%s is not served here: use POST with "
                           "Content-Type: " LEM_MEDIA_TYPE, r->method));
    }
    if (!is_lemonade_type(apr_table_get(r->headers_in, "Content-Type"))) {
        ap_discard_request_body(r);
        return lem_answer_line(r, HTTP_UNSUPPORTED_MEDIA_TYPE,
                           "the body must be of type " LEM_MEDIA_TYPE);
    }
    if (b->conf->proto != LEM_PROTO_IMAP) {
        ap_discard_request_body(r);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, LEMLOGNO(0301)
                      "%s: SetHandler lemonade without an imap:// "
                      "LemonadeBackend", b->conf->location);
        return lem_answer_line(r, HTTP_INTERNAL_SERVER_ERROR,
                           "this location has no IMAP LemonadeBackend");
    }
    return OK;
}

/* ------------------------------------------------------------------ */
/* Step 2: read and check the batch                                    */
/* ------------------------------------------------------------------ */

static int refuse_batch(lem_batch_t *b, int status, unsigned cmd,
                        const char *why)
{
    request_rec *r = b->r;

    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, LEMLOGNO(0302)
                  "client sent a bad batch (command %u): %s", cmd, why);
    if (status == HTTP_REQUEST_ENTITY_TOO_LARGE) {
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    return lem_answer_line(r, status, apr_psprintf(r->pool, "command %u: %s",
                                               cmd, why));
}

/* Run the checking parser over one piece of the body. */
static int check_piece(lem_batch_t *b, lem_cmd_parser_t *cp,
                       const char *data, apr_size_t len)
{
    lem_imap_piece_t piece;
    apr_size_t used;

    while (len) {
        lem_imap_ev_t ev = lem_cmd_next(cp, data, len, &used, &piece);

        data += used;
        len -= used;
        if (ev == LEM_IMAP_ERROR) {
            return refuse_batch(b, cp->limit_hit
                                ? HTTP_REQUEST_ENTITY_TOO_LARGE
                                : HTTP_BAD_REQUEST, cp->commands + 1,
                                cp->error);
        }
        if (ev == LEM_IMAP_TEXT && piece.first
            && cp->commands >= (unsigned)b->conf->max_commands) {
            return refuse_batch(b, HTTP_REQUEST_ENTITY_TOO_LARGE,
                                cp->commands + 1, apr_psprintf(b->r->pool,
                                "more than %d commands in one request",
                                b->conf->max_commands));
        }
        if (ev == LEM_IMAP_NEED_MORE) {
            break;
        }
    }
    return OK;
}

static int read_batch(lem_batch_t *b)
{
    request_rec *r = b->r;
    apr_bucket_brigade *bb;
    lem_cmd_parser_t cp;
    apr_off_t total = 0;
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    int seen_eos = 0, rc;

    if (cl && apr_atoi64(cl) > b->conf->max_body) {
        return refuse_batch(b, HTTP_REQUEST_ENTITY_TOO_LARGE, 0,
                            "the request body is larger than "
                            "LemonadeMaxRequestBody");
    }
    lem_cmd_init(&cp, b->line, b->conf->max_line,
                 (apr_uint64_t)b->conf->max_literal);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    while (!seen_eos) {
        apr_status_t rv = ap_get_brigade(r->input_filters, bb,
                                         AP_MODE_READBYTES, APR_BLOCK_READ,
                                         LEM_READ_SIZE);
        apr_bucket *e;

        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r, LEMLOGNO(0303)
                          "client: reading the request body failed");
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        }
        for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb);
             e = APR_BUCKET_NEXT(e)) {
            const char *data;
            apr_size_t len;

            if (APR_BUCKET_IS_EOS(e)) {
                seen_eos = 1;
                break;
            }
            if (apr_bucket_read(e, &data, &len, APR_BLOCK_READ)
                != APR_SUCCESS) {
                return HTTP_BAD_REQUEST;
            }
            total += (apr_off_t)len;
            if (total > b->conf->max_body) {
                return refuse_batch(b, HTTP_REQUEST_ENTITY_TOO_LARGE,
                                    cp.commands + 1, "the request body is "
                                    "larger than LemonadeMaxRequestBody");
            }
            if ((rc = check_piece(b, &cp, data, len)) != OK) {
                return rc;
            }
            if (lem_spool_write(b->body, data, len) != APR_SUCCESS) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, LEMLOGNO(0304)
                              "cannot spool the request body");
                return HTTP_INTERNAL_SERVER_ERROR;
            }
        }
        apr_brigade_cleanup(bb);
    }
    if (!lem_cmd_at_boundary(&cp)) {
        return refuse_batch(b, HTTP_BAD_REQUEST, cp.commands + 1,
                            "the body ends inside a command (a missing "
                            "CRLF, or a literal shorter than announced)");
    }
    if (!cp.commands) {
        return refuse_batch(b, HTTP_BAD_REQUEST, 0, "the body holds no "
                            "command");
    }
    return OK;
}

/* ------------------------------------------------------------------ */
/* Step 3: the session                                                 */
/* ------------------------------------------------------------------ */

static int keeper_down(lem_batch_t *b, apr_status_t rv)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, b->r, LEMLOGNO(0310)
                  "session keeper at %s does not answer",
                  lem_state.socket_path);
    apr_table_setn(b->r->err_headers_out, "Retry-After", "5");
    return lem_answer_line(b->r, HTTP_SERVICE_UNAVAILABLE,
                       "the session keeper is not available");
}

/* Borrow the session the cookie names: OK, DECLINED when there is none
 * to borrow, or DONE. */
static int borrow_session(lem_batch_t *b)
{
    const char *value = NULL;
    int fd;
    apr_status_t rv;

    if (ap_cookie_read(b->r, b->conf->cookie_name, &value, 0) != APR_SUCCESS
        || !value
        || lem_id_parse(&b->id, value, strlen(value)) != APR_SUCCESS
        || lem_session_find(lem_state.table, &b->id, b->conf->proto)
           != APR_SUCCESS) {
        return DECLINED;
    }
    if ((rv = lem_link_open(&b->link, lem_state.socket_path))
        != APR_SUCCESS) {
        return keeper_down(b, rv);
    }
    rv = lem_link_attach(&b->link, &b->id, b->conf->session_wait, &fd);
    if (rv == APR_NOTFOUND) {
        lem_link_release(&b->link);
        return DECLINED;
    }
    if (rv == APR_TIMEUP) {
        lem_link_release(&b->link);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, b->r, LEMLOGNO(0311)
                      "session %u: still busy with another request after "
                      "%" APR_TIME_T_FMT "s", b->id.slot,
                      apr_time_sec(b->conf->session_wait));
        apr_table_setn(b->r->err_headers_out, "Retry-After", "1");
        return lem_answer_line(b->r, HTTP_SERVICE_UNAVAILABLE,
                           "the session is busy with another request");
    }
    if (rv != APR_SUCCESS) {
        lem_link_release(&b->link);
        return keeper_down(b, rv);
    }
    lem_backend_init(&b->be, fd, b->conf->backend_timeout, LEM_READ_SIZE,
                     b->r->pool);
    b->have_session = 1;
    return OK;
}

static int backend_unreachable(lem_batch_t *b, apr_status_t rv,
                               const char *what)
{
    const lem_dir_conf_t *conf = b->conf;

    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, b->r, LEMLOGNO(0312)
                  "backend %s: %s", conf->backend_url, what);
    return lem_answer_line(b->r, rv == APR_TIMEUP ? HTTP_GATEWAY_TIME_OUT
                                              : HTTP_BAD_GATEWAY,
                       apr_psprintf(b->r->pool, "the IMAP server %s:%u %s",
                                    conf->backend_host,
                                    (unsigned)conf->backend_port, what));
}

/* Read the backend's greeting: "* OK" or "* PREAUTH" opens a session. */
static int read_greeting(lem_batch_t *b)
{
    char text[512];
    apr_size_t len;
    int status;
    apr_status_t rv = lem_backend_greeting(&b->be, &status, text,
                                           sizeof(text), &len);

    if (rv == APR_TIMEUP || rv == APR_EOF) {
        return backend_unreachable(b, rv, rv == APR_TIMEUP
                                   ? "sent no greeting in time"
                                   : "closed before its greeting");
    }
    if (rv != APR_SUCCESS) {
        return backend_unreachable(b, rv, "sent a malformed greeting");
    }
    if (status != LEM_STATUS_OK && status != LEM_STATUS_PREAUTH) {
        return backend_unreachable(b, APR_EGENERAL,
                                   "refused the connection");
    }
    return OK;
}

static int open_session(lem_batch_t *b)
{
    request_rec *r = b->r;
    int fd, rc;
    apr_status_t rv;

    /* 1. a slot of the table */
    rv = lem_session_reserve(lem_state.table, b->conf->proto,
                             r->useragent_ip, b->conf->idle_timeout, &b->id);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, LEMLOGNO(0313)
                      "no session slot free (LemonadeMaxSessions)");
        apr_table_setn(r->err_headers_out, "Retry-After", "30");
        return lem_answer_line(r, HTTP_SERVICE_UNAVAILABLE,
                           "too many sessions; try again later");
    }

    /* 2. the backend, and its greeting */
    rv = lem_backend_connect(b->conf->backend_host, b->conf->backend_port,
                             b->conf->backend_timeout, &fd, r->pool);
    if (rv != APR_SUCCESS) {
        lem_session_release(lem_state.table, &b->id);
        return backend_unreachable(b, rv, rv == APR_TIMEUP
                                   ? "did not accept a connection in time"
                                   : "cannot be reached");
    }
    lem_backend_init(&b->be, fd, b->conf->backend_timeout, LEM_READ_SIZE,
                     r->pool);
    if ((rc = read_greeting(b)) != OK) {
        lem_backend_close(&b->be);
        lem_session_release(lem_state.table, &b->id);
        return rc;
    }

    /* 3. the keeper holds the connection from now on */
    rv = lem_link_open(&b->link, lem_state.socket_path);
    if (rv == APR_SUCCESS) {
        rv = lem_link_adopt(&b->link, &b->id, b->conf->idle_timeout, fd);
    }
    if (rv != APR_SUCCESS) {
        lem_link_release(&b->link);
        lem_backend_close(&b->be);
        lem_session_release(lem_state.table, &b->id);
        return keeper_down(b, rv);
    }
    lem_session_opened(lem_state.table, &b->id);
    b->have_session = b->is_new = 1;
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, LEMLOGNO(0314)
                  "session %u: opened to %s", b->id.slot,
                  b->conf->backend_url);
    return OK;
}

static int attach_session(lem_batch_t *b)
{
    int rc = borrow_session(b);

    return rc == DECLINED ? open_session(b) : rc;
}

/* ------------------------------------------------------------------ */
/* Step 4: relay                                                       */
/* ------------------------------------------------------------------ */

static void answer_write(lem_batch_t *b, const char *data, apr_size_t len)
{
    if (lem_spool_write(b->answer, data, len) != APR_SUCCESS
        && b->be_error == APR_SUCCESS) {
        b->be_error = APR_EGENERAL;
    }
}

static lem_pending_t *pending_of(lem_batch_t *b, const char *tag)
{
    lem_pending_t *p = (lem_pending_t *)b->pending->elts;
    int i;

    for (i = b->first_open; i < b->pending->nelts; i++) {
        if (!p[i].done && !strcmp(p[i].tag, tag)) {
            return &p[i];
        }
    }
    return NULL;
}

/* A tagged response: the command it completes is answered. */
static void on_tagged(lem_batch_t *b)
{
    lem_pending_t *p = pending_of(b, b->resp.tag);
    lem_pending_t *all = (lem_pending_t *)b->pending->elts;

    if (!p) {
        return;
    }
    p->done = 1;
    b->outstanding--;
    while (b->first_open < b->pending->nelts && all[b->first_open].done) {
        b->first_open++;
    }
    if (b->resp.status != LEM_STATUS_OK) {
        b->any_failed = 1;
    }
    if (b->cont_wanted && b->cur_tag && !strcmp(b->cur_tag, b->resp.tag)) {
        b->cont_refused = 1;
    }
}

/* The start of a response: decide what becomes of it. */
static void on_response_head(lem_batch_t *b)
{
    b->in_cont = b->in_tagged = 0;
    switch (b->resp.kind) {
    case LEM_RESP_CONTINUATION:
        /* ours to answer: a literal's go-ahead, or an unasked request
         * (a SASL challenge) that in-response mode cannot answer */
        b->in_cont = 1;
        if (b->cont_wanted) {
            b->cont_got = 1;
        }
        else {
            b->cancel = 1;
        }
        break;
    case LEM_RESP_TAGGED:
        b->in_tagged = 1;
        break;
    case LEM_RESP_UNTAGGED:
        if (b->resp.status == LEM_STATUS_BYE) {
            b->saw_bye = 1;
        }
        /* "* 4 EXISTS", "* 2 EXPUNGE", ... is news; "* OK Still here"
         * is only a keepalive */
        if (b->resp.status == LEM_STATUS_NONE) {
            b->notices++;
        }
        break;
    }
}

typedef enum {
    UNTIL_CONTINUATION,   /* "+" or the command's tagged refusal */
    UNTIL_COMMAND_DONE,   /* the current command is answered */
    UNTIL_ALL_DONE,       /* every command sent is answered */
    UNTIL_NOTICE,         /* news from the server, or the deadline */
    UNTIL_DRAINED         /* what can be read without waiting */
} lem_until_t;

static int reached(lem_batch_t *b, lem_until_t until)
{
    switch (until) {
    case UNTIL_CONTINUATION:
        return b->cont_got || b->cont_refused;
    case UNTIL_COMMAND_DONE:
        return !b->cur_tag || !pending_of(b, b->cur_tag);
    case UNTIL_ALL_DONE:
        return b->outstanding == 0;
    case UNTIL_NOTICE:
        return b->notices > 0 || apr_time_now() >= b->deadline;
    default:
        return 0;
    }
}

static apr_status_t send_backend(lem_batch_t *b, const char *data,
                                 apr_size_t len);

/* Wait for the backend; a long poll waits no longer than its deadline,
 * and its end at a response boundary is no failure. */
static apr_status_t fill(lem_batch_t *b, lem_until_t until)
{
    apr_interval_time_t saved = b->be.timeout;
    apr_status_t rv;

    if (until != UNTIL_NOTICE) {
        return lem_backend_fill(&b->be);
    }
    b->be.timeout = b->deadline - apr_time_now();
    if (b->be.timeout < 0) {
        b->be.timeout = 0;
    }
    rv = lem_backend_fill(&b->be);
    b->be.timeout = saved;
    if (rv == APR_TIMEUP && lem_resp_at_boundary(&b->resp)) {
        rv = APR_SUCCESS;       /* reached() now holds */
    }
    return rv;
}

/*
 * Read responses into the answer until `until` holds at a response
 * boundary; with UNTIL_DRAINED, only what is there already. Bytes after
 * the point it stops are left in the socket.
 */
static apr_status_t pump(lem_batch_t *b, lem_until_t until)
{
    lem_imap_piece_t piece;
    apr_size_t used;
    apr_status_t rv;

    for (;;) {
        lem_imap_ev_t ev;

        if (lem_resp_at_boundary(&b->resp)) {
            if (b->cancel && until != UNTIL_DRAINED) {
                /* RFC 3501 6.2.2: "*" cancels the exchange */
                b->cancel = 0;
                if ((rv = send_backend(b, "*\r\n", 3)) != APR_SUCCESS) {
                    return rv;
                }
            }
            if (reached(b, until) || (until == UNTIL_DRAINED
                                      && b->outstanding == 0)) {
                return APR_SUCCESS;
            }
        }
        if (b->be.off == b->be.len) {
            if (until == UNTIL_DRAINED && !lem_backend_readable(&b->be)) {
                return APR_SUCCESS;
            }
            if ((rv = fill(b, until)) != APR_SUCCESS) {
                return rv;
            }
        }
        ev = lem_resp_next(&b->resp, b->be.buf + b->be.off,
                           b->be.len - b->be.off, &used, &piece);
        b->be.off += used;
        if (ev == LEM_IMAP_ERROR) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, b->r, LEMLOGNO(0320)
                          "session %u: backend sent a malformed response: "
                          "%s", b->id.slot, b->resp.error);
            return APR_EGENERAL;
        }
        if (ev == LEM_IMAP_NEED_MORE) {
            continue;
        }
        if (piece.first) {
            on_response_head(b);
        }
        if (!b->in_cont) {
            answer_write(b, piece.data, piece.len);
        }
        if (piece.last && b->in_tagged) {
            on_tagged(b);
        }
    }
}

static apr_status_t drain(void *ctx)
{
    return pump(ctx, UNTIL_DRAINED);
}

static apr_status_t send_backend(lem_batch_t *b, const char *data,
                                 apr_size_t len)
{
    return lem_backend_write(&b->be, data, len, drain, b);
}

/* The words after the command name, for the few commands that care. */
static const char *arguments(const lem_cmd_parser_t *cp,
                             const lem_imap_piece_t *piece)
{
    const char *p = piece->data + strlen(cp->tag) + 1 + strlen(cp->name);

    return p < piece->data + piece->len ? p : "";
}

/* Commands in-response mode cannot carry, with the reason given. */
static const char *refusal(const lem_cmd_parser_t *cp,
                           const lem_imap_piece_t *piece)
{
    const char *name = cp->name;

    if (!strcmp(name, "STARTTLS")) {
        return "STARTTLS is not relayed: use HTTPS to protect the session";
    }
    if (!strcmp(name, "COMPRESS")) {
        return "COMPRESS is not relayed by the HTTP binding";
    }
    if (!strcmp(name, "AUTHENTICATE") && piece->last) {
        /* RFC 4959: without an initial response the exchange needs
         * continuations, which in-response mode cannot answer */
        const char *args = arguments(cp, piece);
        const char *sp = strchr(args + (*args == ' '), ' ');

        if (!sp || sp[1] == '\r') {
            return "AUTHENTICATE needs an initial response (RFC 4959) in "
                   "in-response mode";
        }
    }
    return NULL;
}

static void start_command(lem_batch_t *b, const lem_cmd_parser_t *cp,
                          const lem_imap_piece_t *piece)
{
    const char *why = refusal(cp, piece);
    lem_pending_t *p;

    b->skipping = 0;
    b->cur_tag = NULL;
    if (why) {
        answer_write(b, cp->tag, strlen(cp->tag));
        answer_write(b, " BAD ", 5);
        answer_write(b, why, strlen(why));
        answer_write(b, "\r\n", 2);
        b->any_failed = 1;
        b->skipping = 1;
        return;
    }
    p = apr_array_push(b->pending);
    apr_cpystrn(p->tag, cp->tag, sizeof(p->tag));
    p->done = 0;
    b->outstanding++;
    b->cur_tag = p->tag;
}

/* Send a line that ends in "{n}": wait for "+" before the octets. */
static apr_status_t send_sync_line(lem_batch_t *b,
                                   const lem_imap_piece_t *piece)
{
    apr_status_t rv;

    b->cont_wanted = 1;
    b->cont_got = b->cont_refused = 0;
    rv = send_backend(b, piece->data, piece->len);
    if (rv == APR_SUCCESS) {
        rv = pump(b, UNTIL_CONTINUATION);
    }
    b->cont_wanted = 0;
    if (rv == APR_SUCCESS && b->cont_refused) {
        /* the server said NO or BAD instead: drop the literal and the
         * rest of the command, go on with the batch */
        b->skipping = 1;
    }
    return rv;
}

/*
 * IDLE in a batch is a long poll (an extension of draft 2.1.1, which has
 * no IDLE in this mode): the request is held until the server has news or
 * LemonadeHeartbeat passes, then the gateway ends the IDLE itself. The
 * client reads the news and posts IDLE again.
 */
static apr_status_t long_poll(lem_batch_t *b, const lem_imap_piece_t *piece)
{
    apr_status_t rv;

    /* 1. IDLE, and the server's go-ahead (RFC 2177) */
    rv = send_sync_line(b, piece);
    if (rv != APR_SUCCESS || b->skipping) {
        b->skipping = 0;
        return rv;
    }

    /* 2. hold the request until something happens */
    b->notices = 0;
    b->deadline = apr_time_now() + b->conf->heartbeat;
    rv = pump(b, UNTIL_NOTICE);
    b->deadline = 0;

    /* 3. "DONE", and the tagged OK */
    if (rv == APR_SUCCESS) {
        rv = send_backend(b, "DONE\r\n", 6);
    }
    if (rv == APR_SUCCESS) {
        rv = pump(b, UNTIL_COMMAND_DONE);
    }
    return rv;
}

static apr_status_t relay_event(lem_batch_t *b, const lem_cmd_parser_t *cp,
                                lem_imap_ev_t ev,
                                const lem_imap_piece_t *piece)
{
    apr_status_t rv;

    if (ev == LEM_IMAP_TEXT && piece->first) {
        start_command(b, cp, piece);
    }
    if (b->skipping) {
        return APR_SUCCESS;
    }
    if (ev == LEM_IMAP_LITERAL) {
        return send_backend(b, piece->data, piece->len);
    }
    if (cp->literal == LEM_LITERAL_SYNC && piece->line_end && !piece->last) {
        return send_sync_line(b, piece);
    }
    if (piece->first && piece->last && !strcmp(cp->name, "IDLE")) {
        return long_poll(b, piece);
    }
    rv = send_backend(b, piece->data, piece->len);
    if (rv == APR_SUCCESS && piece->last
        && !strcmp(cp->name, "AUTHENTICATE")) {
        /* what follows must not be taken for a SASL response */
        rv = pump(b, UNTIL_COMMAND_DONE);
    }
    return rv;
}

/* The backend failed mid-batch: every command not answered gets a NO,
 * so the client knows exactly which ones did not run. */
static void answer_unanswered(lem_batch_t *b, const char *why)
{
    lem_pending_t *p = (lem_pending_t *)b->pending->elts;
    int i;

    if (!b->saw_bye) {
        const char *bye = apr_psprintf(b->r->pool,
                                       "* BYE [UNAVAILABLE] %s\r\n", why);
        answer_write(b, bye, strlen(bye));
        b->saw_bye = 1;
    }
    for (i = b->first_open; i < b->pending->nelts; i++) {
        if (!p[i].done) {
            const char *no = apr_psprintf(b->r->pool,
                                          "%s NO [UNAVAILABLE] %s\r\n",
                                          p[i].tag, why);
            answer_write(b, no, strlen(no));
            p[i].done = 1;
        }
    }
    b->outstanding = 0;
    b->any_failed = 1;
}

static const char *failure_text(apr_status_t rv)
{
    if (rv == APR_TIMEUP) {
        return "the IMAP server did not answer in time";
    }
    if (rv == APR_EOF) {
        return "the IMAP server closed the connection";
    }
    return "the connection to the IMAP server failed";
}

static apr_status_t relay_batch(lem_batch_t *b)
{
    lem_cmd_parser_t cp;
    lem_imap_piece_t piece;
    const char *data;
    apr_size_t len, used;
    apr_status_t rv = APR_SUCCESS, read_rv;

    lem_resp_init(&b->resp);
    lem_cmd_init(&cp, b->line, b->conf->max_line,
                 (apr_uint64_t)b->conf->max_literal);
    lem_spool_rewind(b->body);

    /* every command, in order; after a failure the rest only get NO */
    while ((read_rv = lem_spool_read(b->body, &data, &len)) == APR_SUCCESS) {
        while (len) {
            lem_imap_ev_t ev = lem_cmd_next(&cp, data, len, &used, &piece);

            data += used;
            len -= used;
            if (ev == LEM_IMAP_NEED_MORE) {
                break;
            }
            if (rv == APR_SUCCESS) {
                rv = relay_event(b, &cp, ev, &piece);
                if (rv != APR_SUCCESS) {
                    b->be_error = rv;
                }
            }
            else if (ev == LEM_IMAP_TEXT && piece.first) {
                start_command(b, &cp, &piece);
            }
        }
    }
    if (rv == APR_SUCCESS) {
        rv = pump(b, UNTIL_ALL_DONE);
        b->be_error = rv;
    }
    if (rv != APR_SUCCESS) {
        answer_unanswered(b, failure_text(rv));
    }
    return rv;
}

/* Give the connection back to the keeper, or end the session. */
static void let_go(lem_batch_t *b)
{
    int ended = b->saw_bye || b->be_error != APR_SUCCESS;

    if (!ended && lem_backend_commit(&b->be) != APR_SUCCESS) {
        ended = 1;
    }
    lem_backend_close(&b->be);
    if (ended) {
        lem_link_close_session(&b->link, &b->id);
        if (!b->is_new) {
            set_cookie(b, "", 1);
        }
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, b->r, LEMLOGNO(0321)
                      "session %u: ended (%s)", b->id.slot,
                      b->be_error != APR_SUCCESS
                      ? failure_text(b->be_error) : "BYE");
    }
    else {
        lem_session_touch(lem_state.table, &b->id);
        if (b->is_new) {
            char text[LEM_ID_TEXT_MAX];

            lem_id_format(&b->id, text);
            set_cookie(b, text, 0);
        }
    }
    lem_link_release(&b->link);
}

/* ------------------------------------------------------------------ */
/* Step 5: answer                                                      */
/* ------------------------------------------------------------------ */

static int send_answer(lem_batch_t *b)
{
    request_rec *r = b->r;
    apr_bucket_brigade *bb;
    apr_status_t rv;

    if (b->be_error == APR_TIMEUP) {
        r->status = HTTP_GATEWAY_TIME_OUT;
    }
    else if (b->be_error != APR_SUCCESS) {
        r->status = HTTP_BAD_GATEWAY;
    }
    else {
        /* draft 2.1: NO and BAD "generate a HTTP 500 response code" */
        r->status = b->any_failed ? HTTP_INTERNAL_SERVER_ERROR : HTTP_OK;
    }
    ap_set_content_type(r, "text/plain");
    ap_set_content_length(r, lem_spool_size(b->answer));
    if (r->header_only) {
        return OK;
    }
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    rv = lem_spool_to_brigade(b->answer, bb);
    if (rv == APR_SUCCESS) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
        rv = ap_pass_brigade(r->output_filters, bb);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r, LEMLOGNO(0330)
                      "client: sending the answer failed");
        return AP_FILTER_ERROR;
    }
    return OK;
}

/* ------------------------------------------------------------------ */

static int is_chunked(request_rec *r)
{
    const char *te = apr_table_get(r->headers_in, "Transfer-Encoding");

    return te && ap_find_last_token(r->pool, te, "chunked");
}

static lem_batch_t *batch_new(request_rec *r)
{
    lem_batch_t *b = apr_pcalloc(r->pool, sizeof(*b));

    b->r = r;
    b->conf = lem_dir_conf(r);
    b->link.fd = -1;
    b->be.fd = -1;
    b->line = apr_palloc(r->pool, b->conf->max_line);
    b->pending = apr_array_make(r->pool, 8, sizeof(lem_pending_t));
    lem_spool_create(&b->body, r->pool, b->conf->spool_memory);
    lem_spool_create(&b->answer, r->pool, b->conf->spool_memory);
    return b;
}

int lem_handler(request_rec *r)
{
    lem_batch_t *b;
    int rc;

    if (!r->handler || strcmp(r->handler, "lemonade")) {
        return DECLINED;
    }
    b = batch_new(r);
    lem_set_no_cache(r);

    /* 1. the method and the media type */
    if ((rc = check_request(b)) != OK) {
        return rc == DONE ? OK : rc;
    }

    /* draft 2.1.2: a chunked POST is an in-band session */
    if (is_chunked(r)) {
        rc = lem_inband_serve(r, b->conf);
        return rc == DONE ? OK : rc;
    }

    /* 2. the whole batch, checked */
    if ((rc = read_batch(b)) != OK) {
        return rc == DONE ? OK : rc;
    }

    /* 3. the session */
    if ((rc = attach_session(b)) != OK) {
        return rc == DONE ? OK : rc;
    }

    /* 4. relay */
    relay_batch(b);
    let_go(b);

    /* 5. answer */
    return send_answer(b);
}
