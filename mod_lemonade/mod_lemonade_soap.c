/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * The SOAP binding's httpd glue (mod_lemonade_soap.h): reading the XML
 * body, handing its IMAP commands to the relay, sending the answer. The
 * mapping itself is lem_soap.c.
 */

#include <apr_strings.h>

#include <httpd.h>
#include <http_log.h>
#include <http_protocol.h>

#include "lem_soap.h"
#include "lem_spool.h"
#include "mod_lemonade.h"
#include "mod_lemonade_soap.h"

APLOG_USE_MODULE(lemonade);

#define SOAP_KEY        "mod_lemonade_soap"
#define SOAP_READ_SIZE  (64 * 1024)

/* What a SOAP request carries from step to step, in its pool. */
typedef struct {
    lem_soap_version_t        version;
    const lem_soap_request_t *req;      /* after step 2 */
} soap_state_t;

static soap_state_t *state_of(request_rec *r)
{
    void *s = NULL;

    apr_pool_userdata_get(&s, SOAP_KEY, r->pool);
    return s;
}

int lem_soap_is_soap(request_rec *r)
{
    return state_of(r) != NULL;
}

int lem_soap_accept(request_rec *r, const lem_dir_conf_t *conf)
{
    soap_state_t *s;
    lem_soap_version_t v;

    if (conf->proto != LEM_PROTO_IMAP) {
        return 0;
    }
    v = lem_soap_version_of(apr_table_get(r->headers_in, "Content-Type"),
                            apr_table_get(r->headers_in, "SOAPAction"));
    if (v == LEM_SOAP_NONE) {
        return 0;
    }
    s = apr_pcalloc(r->pool, sizeof(*s));
    s->version = v;
    apr_pool_userdata_setn(s, SOAP_KEY, NULL, r->pool);
    return 1;
}

/* ------------------------------------------------------------------ */
/* Sending an answer                                                   */
/* ------------------------------------------------------------------ */

static apr_status_t to_spool(void *ctx, const char *data, apr_size_t len)
{
    return lem_spool_write(ctx, data, len);
}

/* Send `xml` with `status`; OK, or AP_FILTER_ERROR. */
static int send_spool(request_rec *r, const soap_state_t *s, int status,
                      lem_spool_t *xml)
{
    apr_bucket_brigade *bb;
    apr_status_t rv;

    r->status = status;
    ap_set_content_type(r, lem_soap_media_type(s->version));
    ap_set_content_length(r, lem_spool_size(xml));
    if (r->header_only) {
        return OK;
    }
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    rv = lem_spool_to_brigade(xml, bb);
    if (rv == APR_SUCCESS) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
        rv = ap_pass_brigade(r->output_filters, bb);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r, LEMLOGNO(1202)
                      "client: sending the SOAP answer failed");
        return AP_FILTER_ERROR;
    }
    return OK;
}

static int send_fault(request_rec *r, const soap_state_t *s,
                      lem_soap_fault_t fault, const char *why)
{
    const lem_dir_conf_t *conf = lem_dir_conf(r);
    lem_spool_t *xml;
    lem_sink_t out;

    lem_spool_create(&xml, r->pool, conf->spool_memory);
    out.write = to_spool;
    out.ctx = xml;
    if (lem_soap_write_fault(r->pool, s->version, fault, why, &out)
        != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, LEMLOGNO(1203)
                      "cannot spool the SOAP answer");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    send_spool(r, s, lem_soap_http_status(s->version, fault), xml);
    return DONE;
}

int lem_soap_answer_line(request_rec *r, int status, const char *text)
{
    return send_fault(r, state_of(r), status < 500 ? LEM_FAULT_CLIENT
                                                   : LEM_FAULT_SERVER, text);
}

/* A request the mapping refused: a client's fault, logged as one. */
static int refuse(lem_batch_t *b, lem_soap_fault_t fault, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, b->r, LEMLOGNO(1201)
                  "client sent a SOAP request that is refused: %s", why);
    return send_fault(b->r, state_of(b->r), fault, why);
}

/* The request the reader refused, with the fault it chose. */
static int refuse_request(lem_batch_t *b, const lem_soap_reader_t *rd)
{
    const char *why = NULL;
    lem_soap_fault_t fault = lem_soap_reader_fault(rd, &why);

    return refuse(b, fault, why ? why : "the request is refused");
}

/* ------------------------------------------------------------------ */
/* Step 2: the XML body, as IMAP commands                              */
/* ------------------------------------------------------------------ */

static int too_large(lem_batch_t *b)
{
    b->r->connection->keepalive = AP_CONN_CLOSE;
    return refuse(b, LEM_FAULT_CLIENT, "the request body is larger than "
                  "LemonadeMaxRequestBody");
}

/* Feed one brigade's data to the reader. OK, DONE or an HTTP error. */
static int feed_brigade(lem_batch_t *b, lem_soap_reader_t *rd,
                        apr_bucket_brigade *bb, apr_off_t *total, int *eos)
{
    apr_bucket *e;

    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb);
         e = APR_BUCKET_NEXT(e)) {
        const char *data;
        apr_size_t len;

        if (APR_BUCKET_IS_EOS(e)) {
            *eos = 1;
            return OK;
        }
        if (apr_bucket_read(e, &data, &len, APR_BLOCK_READ) != APR_SUCCESS) {
            return HTTP_BAD_REQUEST;
        }
        if ((*total += (apr_off_t)len) > b->conf->max_body) {
            return too_large(b);
        }
        if (lem_soap_reader_feed(rd, data, len) != APR_SUCCESS) {
            return refuse_request(b, rd);
        }
    }
    return OK;
}

static int read_document(lem_batch_t *b, lem_soap_reader_t *rd)
{
    request_rec *r = b->r;
    apr_bucket_brigade *bb;
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_off_t total = 0;
    int eos = 0, rc = OK;

    if (cl && apr_atoi64(cl) > b->conf->max_body) {
        return too_large(b);
    }
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    while (!eos && rc == OK) {
        apr_status_t rv = ap_get_brigade(r->input_filters, bb,
                                         AP_MODE_READBYTES, APR_BLOCK_READ,
                                         SOAP_READ_SIZE);

        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r, LEMLOGNO(1204)
                          "client: reading the request body failed");
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        }
        rc = feed_brigade(b, rd, bb, &total, &eos);
        apr_brigade_cleanup(bb);
    }
    return rc;
}

/* Where the commands go: the body spool, through the tunnel's check. */
typedef struct {
    lem_batch_t *b;
    int          rc;        /* the check's, once it refused */
} batch_sink_t;

static apr_status_t to_batch(void *ctx, const char *data, apr_size_t len)
{
    batch_sink_t *bs = ctx;

    if ((bs->rc = bs->b->proto->check(bs->b, data, len)) != OK) {
        return APR_EGENERAL;
    }
    if (lem_spool_write(bs->b->body, data, len) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, bs->b->r, LEMLOGNO(1205)
                      "cannot spool the request body");
        bs->rc = HTTP_INTERNAL_SERVER_ERROR;
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static int write_batch(lem_batch_t *b, const lem_soap_request_t *req)
{
    batch_sink_t bs = { b, OK };
    lem_sink_t out = { to_batch, &bs };
    const char *error = NULL;
    apr_status_t rv = lem_soap_write_commands(req, &out, &error);

    if (rv != APR_SUCCESS) {
        return bs.rc != OK ? bs.rc : refuse(b, LEM_FAULT_CLIENT, error);
    }
    return b->proto->check(b, NULL, 0);
}

int lem_soap_read_batch(lem_batch_t *b)
{
    soap_state_t *s = state_of(b->r);
    lem_soap_reader_t *rd = lem_soap_reader_create(b->r->pool, s->version);
    int rc;

    /* 1. the document, bounded */
    if ((rc = read_document(b, rd)) != OK) {
        return rc;
    }

    /* 2. its method elements, mapped */
    if (lem_soap_reader_done(rd, &s->req) != APR_SUCCESS) {
        return refuse_request(b, rd);
    }

    /* 3. their IMAP commands, checked as a tunnel batch is */
    return write_batch(b, s->req);
}

/* ------------------------------------------------------------------ */
/* Step 5: the IMAP responses, as the SOAP answer                      */
/* ------------------------------------------------------------------ */

typedef apr_status_t (*pass_fn)(lem_soap_answer_t *a, const char *data,
                                apr_size_t len);

static apr_status_t each_piece(lem_batch_t *b, lem_soap_answer_t *a,
                               pass_fn fn)
{
    const char *data;
    apr_size_t len;
    apr_status_t rv;

    if ((rv = lem_spool_rewind(b->answer)) != APR_SUCCESS) {
        return rv;
    }
    while ((rv = lem_spool_read(b->answer, &data, &len)) == APR_SUCCESS) {
        if ((rv = fn(a, data, len)) != APR_SUCCESS) {
            return rv;
        }
    }
    return rv == APR_EOF ? APR_SUCCESS : rv;
}

/* Which fault, if any: the backend's failure first, then NO or BAD. */
static lem_soap_fault_t outcome(lem_batch_t *b, lem_soap_answer_t *a,
                                const char **why)
{
    if (each_piece(b, a, lem_soap_answer_scan) != APR_SUCCESS) {
        *why = "the IMAP server's answer cannot be read";
        return LEM_FAULT_SERVER;
    }
    if (b->be_error != APR_SUCCESS) {
        *why = lem_failure_text(b->r->pool, b->proto, b->be_error);
        return LEM_FAULT_SERVER;
    }
    return lem_soap_answer_outcome(a, why);
}

int lem_soap_send_answer(lem_batch_t *b)
{
    soap_state_t *s = state_of(b->r);
    lem_soap_answer_t *a = lem_soap_answer_create(b->r->pool, s->req);
    lem_soap_fault_t fault;
    lem_spool_t *xml;
    lem_sink_t out;
    const char *why = NULL;
    apr_status_t rv;

    /* 1. pass 1: did a command fail? */
    fault = outcome(b, a, &why);

    /* 2. pass 2: the answer, or the Fault with it as its detail */
    lem_spool_create(&xml, b->r->pool, b->conf->spool_memory);
    out.write = to_spool;
    out.ctx = xml;
    rv = lem_soap_answer_begin(a, fault, why, &out);
    if (rv == APR_SUCCESS) {
        rv = each_piece(b, a, lem_soap_answer_feed);
    }
    if (rv == APR_SUCCESS) {
        rv = lem_soap_answer_end(a);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, b->r, LEMLOGNO(1206)
                      "cannot spool the SOAP answer");
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    /* 3. out it goes */
    return send_spool(b->r, s, lem_soap_http_status(s->version, fault), xml);
}
