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

#include "lem_spool.h"
#include "mod_lemonade.h"
#include "mod_lemonade_backend.h"
#include "mod_lemonade_config.h"
#include "mod_lemonade_handler.h"
#include "mod_lemonade_inband.h"
#include "mod_lemonade_keeper.h"
#include "mod_lemonade_proto.h"
#include "mod_lemonade_soap.h"

APLOG_USE_MODULE(lemonade);

#define LEM_MEDIA_TYPE  "application/vnd.lemonade"
#define LEM_ALLOW       "POST, OPTIONS"
#define LEM_READ_SIZE   (64 * 1024)

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
    if (lem_soap_is_soap(r)) {
        return lem_soap_answer_line(r, status, text);
    }
    r->status = status;
    ap_set_content_type(r, "text/plain");
    ap_set_content_length(r, (apr_off_t)strlen(text) + 2);
    if (!r->header_only) {
        ap_rvputs(r, text, "\r\n", NULL);
    }
    return DONE;
}

/* draft 2.1.1: "A session-id is passed in the cookie". With LemonadeRoute
 * the id ends in ".ROUTE", which mod_proxy_balancer's stickysession
 * reads to send the session's requests back to this node. */
static void set_cookie(lem_batch_t *b, const char *value, int expire)
{
    request_rec *r = b->r;
    const char *secure = ap_ssl_conn_is_ssl(r->connection) ? "; Secure" : "";
    const char *route = lem_srv_conf(r->server)->route;

    apr_table_addn(r->err_headers_out, "Set-Cookie", apr_psprintf(
        r->pool, "%s=%s%s%s; Path=%s; HttpOnly; SameSite=Strict%s%s",
        b->conf->cookie_name, value, route && !expire ? "." : "",
        route && !expire ? route : "", b->conf->location,
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
    if (b->conf->proto == LEM_PROTO_IMAP) {
        apr_table_setn(r->headers_out, "Lemonade-Modes",
                       "in-response, in-band, long-poll");
        apr_table_setn(r->headers_out, "Lemonade-Heartbeat", apr_psprintf(
                       r->pool, "%" APR_TIME_T_FMT,
                       apr_time_sec(b->conf->heartbeat)));
    }
    else {
        apr_table_setn(r->headers_out, "Lemonade-Modes",
                       "in-response, in-band");
    }
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

    /* draft 3: "the client SHOULD use HTTPS instead of HTTP" */
    if (b->conf->require_tls && !ap_ssl_conn_is_ssl(r->connection)) {
        ap_discard_request_body(r);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, LEMLOGNO(0305)
                      "client used plain HTTP where LemonadeRequireTLS is "
                      "on");
        return lem_answer_line(r, HTTP_FORBIDDEN, "this binding is served "
                               "over HTTPS only");
    }
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
    /* draft 2.2: a SOAP request is marked and goes on */
    if (!is_lemonade_type(apr_table_get(r->headers_in, "Content-Type"))
        && !lem_soap_accept(r, b->conf)) {
        ap_discard_request_body(r);
        return lem_answer_line(r, HTTP_UNSUPPORTED_MEDIA_TYPE,
                           "the body must be of type " LEM_MEDIA_TYPE);
    }
    if (!b->proto) {
        ap_discard_request_body(r);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, LEMLOGNO(0301)
                      "%s: SetHandler lemonade without LemonadeBackend",
                      b->conf->location);
        return lem_answer_line(r, HTTP_INTERNAL_SERVER_ERROR,
                               "this location has no LemonadeBackend");
    }
    return OK;
}

/* ------------------------------------------------------------------ */
/* Step 2: read and check the batch                                    */
/* ------------------------------------------------------------------ */

int lem_batch_refuse(lem_batch_t *b, int status, unsigned cmd,
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

static int read_batch(lem_batch_t *b)
{
    request_rec *r = b->r;
    apr_bucket_brigade *bb;
    apr_off_t total = 0;
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    int seen_eos = 0, rc;

    if (cl && apr_atoi64(cl) > b->conf->max_body) {
        return lem_batch_refuse(b, HTTP_REQUEST_ENTITY_TOO_LARGE, 0,
                            "the request body is larger than "
                            "LemonadeMaxRequestBody");
    }
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
                return lem_batch_refuse(b, HTTP_REQUEST_ENTITY_TOO_LARGE, 0,
                                        "the request body is larger than "
                                        "LemonadeMaxRequestBody");
            }
            if ((rc = b->proto->check(b, data, len)) != OK) {
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
    return b->proto->check(b, NULL, 0);
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
        || lem_session_find(lem_state.table, &b->id, b->conf->proto,
                            b->conf->bind_address ? b->r->useragent_ip
                                                  : NULL) != APR_SUCCESS) {
        return DECLINED;
    }
    if ((rv = lem_link_open(&b->link, lem_state.socket_path))
        != APR_SUCCESS) {
        return keeper_down(b, rv);
    }
    rv = lem_link_attach(&b->link, &b->id, b->conf->session_wait, &fd);
    if (rv == APR_NOTFOUND) {
        lem_link_release(&b->link, 0);
        return DECLINED;
    }
    if (rv == APR_TIMEUP) {
        lem_link_release(&b->link, 0);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, b->r, LEMLOGNO(0311)
                      "session %u: still busy with another request after "
                      "%" APR_TIME_T_FMT "s", b->id.slot,
                      apr_time_sec(b->conf->session_wait));
        apr_table_setn(b->r->err_headers_out, "Retry-After", "1");
        return lem_answer_line(b->r, HTTP_SERVICE_UNAVAILABLE,
                           "the session is busy with another request");
    }
    if (rv != APR_SUCCESS) {
        lem_link_release(&b->link, 0);
        return keeper_down(b, rv);
    }
    lem_backend_init(&b->be, fd, b->conf->backend_timeout, LEM_READ_SIZE,
                     b->r->pool);
    b->have_session = 1;
    return OK;
}

int lem_answer_unreachable(request_rec *r, const lem_dir_conf_t *conf,
                           const char *server, apr_status_t rv,
                           const char *what)
{
    return lem_answer_line(r, rv == APR_TIMEUP ? HTTP_GATEWAY_TIME_OUT
                                               : HTTP_BAD_GATEWAY,
                           apr_psprintf(r->pool, "the %s %s:%u %s", server,
                                        conf->backend_host,
                                        (unsigned)conf->backend_port, what));
}

/* A slot for a new session, within LemonadeMaxSessions and
 * LemonadeMaxSessionsPerClient: OK, or DONE with a 503 or a 429. */
static int reserve_slot(lem_batch_t *b)
{
    request_rec *r = b->r;
    lem_session_spec_t spec;
    apr_status_t rv;

    spec.proto = b->conf->proto;
    spec.client_ip = r->useragent_ip;
    spec.idle_timeout = b->conf->idle_timeout;
    spec.lifetime = b->conf->lifetime;
    spec.max_per_client = b->conf->max_per_client;
    rv = lem_session_reserve(lem_state.table, &spec, &b->id);
    if (rv == APR_SUCCESS) {
        return OK;
    }
    lem_stat_add(lem_state.table, LEM_STAT_LIMITS, 1);
    if (rv == APR_EBUSY) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, LEMLOGNO(0315)
                      "client holds %d sessions already "
                      "(LemonadeMaxSessionsPerClient)",
                      b->conf->max_per_client);
        apr_table_setn(r->err_headers_out, "Retry-After", "60");
        return lem_answer_line(r, HTTP_TOO_MANY_REQUESTS,
                               "this address holds too many sessions: log "
                               "out of one, or try again later");
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r, LEMLOGNO(0313)
                  "no session slot free (LemonadeMaxSessions)");
    apr_table_setn(r->err_headers_out, "Retry-After", "30");
    return lem_answer_line(r, HTTP_SERVICE_UNAVAILABLE,
                           "too many sessions; try again later");
}

static int open_session(lem_batch_t *b)
{
    request_rec *r = b->r;
    char greeting[512];
    apr_size_t len;
    const char *what;
    apr_status_t rv;

    /* 1. a slot of the table */
    rv = reserve_slot(b);
    if (rv != OK) {
        return rv;
    }

    /* 2. the backend, protected as configured, and its greeting */
    rv = lem_backend_open(r, b->conf, b->proto, &b->link, &b->be, greeting,
                          sizeof(greeting), &len, &what);
    if (rv != APR_SUCCESS) {
        lem_link_release(&b->link, 0);
        lem_session_release(lem_state.table, &b->id);
        return lem_answer_unreachable(r, b->conf, b->proto->server, rv,
                                      what);
    }

    /* 3. the keeper holds the connection from now on */
    rv = b->link.fd < 0 ? lem_link_open(&b->link, lem_state.socket_path)
                        : APR_SUCCESS;
    if (rv == APR_SUCCESS) {
        rv = lem_link_adopt(&b->link, &b->id, b->conf->idle_timeout,
                            b->conf->lifetime, b->be.fd);
    }
    if (rv != APR_SUCCESS) {
        lem_link_release(&b->link, 0);
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
/* Step 4: relay (the protocol's), and letting go                      */
/* ------------------------------------------------------------------ */

void lem_batch_answer(lem_batch_t *b, const char *data, apr_size_t len)
{
    if (lem_spool_write(b->answer, data, len) != APR_SUCCESS
        && b->be_error == APR_SUCCESS) {
        b->be_error = APR_EGENERAL;
    }
}

const char *lem_failure_text(apr_pool_t *p, const lem_protocol_t *proto,
                             apr_status_t rv)
{
    return apr_pstrcat(p, "the ", proto->server, rv == APR_TIMEUP
                       ? " did not answer in time" : rv == APR_EOF
                       ? " closed the connection" : " failed", NULL);
}

/* Give the connection back to the keeper, or end the session. */
static void let_go(lem_batch_t *b)
{
    int ended = b->ended || b->be_error != APR_SUCCESS;

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
                      ? lem_failure_text(b->r->pool, b->proto, b->be_error)
                      : "the server said goodbye");
    }
    else {
        lem_session_touch(lem_state.table, &b->id, b->flags);
        if (b->is_new) {
            char text[LEM_ID_TEXT_MAX];

            lem_id_format(&b->id, text);
            set_cookie(b, text, 0);
        }
    }
    lem_link_release(&b->link, !ended);
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
    b->proto = b->conf->proto == LEM_PROTO_IMAP ? &lem_imap_protocol
             : b->conf->proto == LEM_PROTO_SMTP ? &lem_smtp_protocol : NULL;
    b->line = apr_palloc(r->pool, b->conf->max_line);
    lem_spool_create(&b->body, r->pool, b->conf->spool_memory);
    lem_spool_create(&b->answer, r->pool, b->conf->spool_memory);
    return b;
}

/* The in-response steps; DONE when an answer was made along the way. */
static int serve(lem_batch_t *b)
{
    int rc;

    /* 1. the method and the media type */
    if ((rc = check_request(b)) != OK) {
        return rc;
    }

    /* draft 2.1.2: a chunked POST is an in-band session */
    if (is_chunked(b->r) && !lem_soap_is_soap(b->r)) {
        return lem_inband_serve(b->r, b->conf, b->proto);
    }

    /* 2. the whole batch, checked (SOAP: mapped to IMAP first) */
    rc = lem_soap_is_soap(b->r) ? lem_soap_read_batch(b) : read_batch(b);
    if (rc != OK) {
        return rc;
    }

    /* 3. the session */
    if ((rc = attach_session(b)) != OK) {
        return rc;
    }

    /* 4. relay */
    b->flags = lem_session_borrowed(lem_state.table, &b->id);
    b->be_error = b->proto->relay(b);
    let_go(b);

    /* 5. answer */
    return lem_soap_is_soap(b->r) ? lem_soap_send_answer(b) : send_answer(b);
}

/* Count the request for the status page, by how it ended. */
static void tally(lem_batch_t *b, int status)
{
    lem_table_t *t = lem_state.table;

    if (!t || is_chunked(b->r)) {
        return;                 /* in-band counts its own */
    }
    lem_stat_add(t, LEM_STAT_REQUESTS, 1);
    lem_stat_add(t, LEM_STAT_BYTES_IN, lem_spool_size(b->body));
    lem_stat_add(t, LEM_STAT_BYTES_OUT, lem_spool_size(b->answer));
    switch (status) {
    case HTTP_REQUEST_ENTITY_TOO_LARGE:
        lem_stat_add(t, LEM_STAT_LIMITS, 1);
        /* fall through */
    case HTTP_BAD_REQUEST:
    case HTTP_METHOD_NOT_ALLOWED:
    case HTTP_UNSUPPORTED_MEDIA_TYPE:
        lem_stat_add(t, LEM_STAT_ERR_CLIENT, 1);
        break;
    case HTTP_BAD_GATEWAY:
    case HTTP_GATEWAY_TIME_OUT:
        lem_stat_add(t, LEM_STAT_ERR_BACKEND, 1);
        break;
    case HTTP_SERVICE_UNAVAILABLE:
        lem_stat_add(t, LEM_STAT_ERR_BUSY, 1);
        break;
    case HTTP_FORBIDDEN:
    case HTTP_TOO_MANY_REQUESTS:
        lem_stat_add(t, LEM_STAT_ERR_CLIENT, 1);
        break;
    default:
        break;
    }
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
    rc = serve(b);
    tally(b, rc == DONE || rc == OK ? r->status : rc);
    return rc == DONE ? OK : rc;
}
