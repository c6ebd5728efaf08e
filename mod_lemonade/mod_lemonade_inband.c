/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#include <errno.h>
#include <poll.h>

#include <apr_portable.h>
#include <apr_strings.h>

#include <httpd.h>
#include <ap_mpm.h>
#include <http_connection.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include "mod_lemonade.h"
#include "mod_lemonade_backend.h"
#include "mod_lemonade_filter.h"
#include "mod_lemonade_handler.h"
#include "mod_lemonade_inband.h"
#include "mod_lemonade_proto.h"

APLOG_USE_MODULE(lemonade);

#define LEM_READ_SIZE   (64 * 1024)

/* A response longer than this goes out in several chunks, so that a
 * large literal streams through in bounded memory. */
#define LEM_CHUNK_MAX   (256 * 1024)

/* ------------------------------------------------------------------ */
/* To the client: one chunk per response                               */
/* ------------------------------------------------------------------ */

apr_status_t lem_inband_flush(lem_inband_t *ib)
{
    apr_status_t rv;

    if (APR_BRIGADE_EMPTY(ib->out) || ib->client_gone) {
        return APR_SUCCESS;
    }
    rv = ap_pass_brigade(ib->r->output_filters, ib->out);
    apr_brigade_cleanup(ib->out);
    ib->out_len = 0;
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, ib->r, LEMLOGNO(0401)
                      "in-band: client cannot be written to; ending");
        ib->client_gone = 1;
    }
    return rv;
}

apr_status_t lem_inband_to_client(lem_inband_t *ib, const char *data,
                                  apr_size_t len)
{
    apr_brigade_write(ib->out, NULL, NULL, data, len);
    ib->out_len += len;
    ib->bytes_out += len;
    return ib->out_len >= LEM_CHUNK_MAX ? lem_inband_flush(ib) : APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* To and from the backend                                             */
/* ------------------------------------------------------------------ */

void lem_inband_backend_ended(lem_inband_t *ib, apr_status_t rv)
{
    ib->backend_done = 1;
    ib->why = lem_failure_text(ib->r->pool, ib->proto, rv);
    if (rv != APR_EOF || !ib->saw_bye) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, ib->r, LEMLOGNO(0402)
                      "in-band: backend %s: %s", ib->conf->backend_url,
                      ib->why);
    }
}

apr_status_t lem_inband_backend_more(lem_inband_t *ib)
{
    apr_status_t rv;

    if (ib->be.off < ib->be.len) {
        return APR_SUCCESS;
    }
    if (!lem_backend_readable(&ib->be)) {
        return APR_EAGAIN;
    }
    if ((rv = lem_backend_fill(&ib->be)) != APR_SUCCESS) {
        lem_inband_backend_ended(ib, rv);
    }
    return rv;
}

apr_status_t lem_inband_to_backend(lem_inband_t *ib, const char *data,
                                   apr_size_t len)
{
    apr_status_t rv = lem_backend_write(&ib->be, data, len,
                                        ib->proto->backend_bytes, ib);

    if (rv != APR_SUCCESS && !ib->backend_done && !ib->client_gone) {
        lem_inband_backend_ended(ib, rv);
    }
    return rv;
}

apr_status_t lem_inband_bad_client(lem_inband_t *ib, const char *bye)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, ib->r, LEMLOGNO(0404)
                  "in-band: client broke the protocol: %s", bye);
    lem_inband_to_client(ib, bye, strlen(bye));
    ib->saw_bye = 1;
    ib->backend_done = 1;
    return APR_EGENERAL;
}

/* ------------------------------------------------------------------ */
/* From the client                                                     */
/* ------------------------------------------------------------------ */

/* Take all the client has sent so far; never waits. */
static apr_status_t from_client(lem_inband_t *ib)
{
    while (!ib->client_done && !ib->backend_done) {
        apr_bucket *e;
        apr_status_t rv = ap_get_brigade(ib->r->input_filters, ib->in,
                                         AP_MODE_READBYTES,
                                         APR_NONBLOCK_READ, LEM_READ_SIZE);

        if (APR_STATUS_IS_EAGAIN(rv)) {
            return APR_SUCCESS;
        }
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, ib->r, LEMLOGNO(0405)
                          "in-band: client went away; closing its IMAP "
                          "connection");
            ib->client_gone = 1;
            return rv;
        }
        for (e = APR_BRIGADE_FIRST(ib->in); e != APR_BRIGADE_SENTINEL(ib->in);
             e = APR_BUCKET_NEXT(e)) {
            const char *data;
            apr_size_t len;

            if (APR_BUCKET_IS_EOS(e)) {
                ib->client_done = 1;
                break;
            }
            rv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ);
            if (rv == APR_SUCCESS) {
                ib->bytes_in += len;
                rv = ib->proto->client_bytes(ib, data, len);
            }
            if (rv != APR_SUCCESS) {
                apr_brigade_cleanup(ib->in);
                return rv;
            }
        }
        apr_brigade_cleanup(ib->in);
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* The session                                                         */
/* ------------------------------------------------------------------ */

/* How often a quiet session looks whether httpd is stopping. */
#define LEM_STOP_CHECK  apr_time_from_sec(1)

static int httpd_stopping(void)
{
    int state = AP_MPMQ_RUNNING;

    return ap_mpm_query(AP_MPMQ_MPM_STATE, &state) == APR_SUCCESS
           && state == AP_MPMQ_STOPPING;
}

/* Wait for either side: 1 when one has something, 0 after silence past
 * the time allowed, -1 when httpd is stopping (a graceful stop or
 * restart waits for its workers, and would wait for a quiet session). */
static int wait_either(lem_inband_t *ib)
{
    struct pollfd pfd[2];
    apr_interval_time_t limit = ib->client_done ? ib->conf->backend_timeout
                                                : ib->conf->idle_timeout;
    apr_time_t until = apr_time_now() + limit;

    pfd[0].fd = ib->client_done ? -1 : ib->cfd;
    pfd[0].events = POLLIN;
    pfd[1].fd = ib->be.fd;
    pfd[1].events = POLLIN;
    for (;;) {
        apr_interval_time_t left = until - apr_time_now();
        int rc;

        if (left <= 0) {
            return 0;
        }
        if (httpd_stopping()) {
            return -1;
        }
        pfd[0].revents = pfd[1].revents = 0;
        rc = poll(pfd, 2, (int)apr_time_as_msec(left < LEM_STOP_CHECK
                                                ? left : LEM_STOP_CHECK));
        if (rc > 0 || (rc < 0 && errno != EINTR)) {
            return 1;
        }
    }
}

static void relay(lem_inband_t *ib)
{
    while (!ib->client_gone && !ib->backend_done) {
        /* 1. the client's side, as far as it has sent */
        if (from_client(ib) != APR_SUCCESS) {
            break;
        }

        /* 2. the server's side, as far as it has sent */
        if (ib->proto->backend_bytes(ib) != APR_SUCCESS) {
            break;
        }

        /* 3. the client said goodbye and has all its answers */
        if (ib->client_done && ib->proto->quiet(ib)) {
            break;
        }

        /* 4. wait for either */
        switch (wait_either(ib)) {
        case 0:
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, ib->r, LEMLOGNO(0406)
                          "in-band: silent for too long; ending");
            ib->why = "the session was silent for too long";
            return;
        case -1:
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, ib->r, LEMLOGNO(0410)
                          "in-band: httpd is stopping; ending");
            ib->why = "the server is shutting down";
            return;
        default:
            break;
        }
    }
}

/* How the answer ends: a BYE when the server went, the last chunk. */
static void finish(lem_inband_t *ib)
{
    if (!ib->client_gone && !ib->saw_bye && ib->why) {
        const char *bye = apr_psprintf(ib->r->pool, ib->proto->bye_fmt,
                                       ib->why);
        lem_inband_to_client(ib, bye, strlen(bye));
    }
    lem_backend_close(&ib->be);
    if (!ib->client_gone) {
        APR_BRIGADE_INSERT_TAIL(ib->out, apr_bucket_eos_create(
                                    ib->out->bucket_alloc));
        lem_inband_flush(ib);
    }
    if (!ib->client_done) {
        /* the rest of the request will not be read */
        ib->r->connection->keepalive = AP_CONN_CLOSE;
    }
}

static int open_backend(lem_inband_t *ib, char *greeting, apr_size_t cap,
                        apr_size_t *len)
{
    lem_link_t link = { -1 };
    const char *what;
    apr_status_t rv;

    rv = lem_backend_open(ib->r, ib->conf, ib->proto, &link, &ib->be,
                          greeting, cap, len, &what);
    lem_link_release(&link, 0);
    if (rv != APR_SUCCESS) {
        /* the body that was to follow will not be read */
        ib->r->connection->keepalive = AP_CONN_CLOSE;
        return lem_answer_unreachable(ib->r, ib->conf, ib->proto->server, rv,
                                      what);
    }
    ib->be.own = 1;
    return OK;
}

/* The status page's figures: sessions open now, and what they carried. */
static void count(lem_inband_t *ib, int open)
{
    lem_table_t *t = lem_state.table;

    lem_stat_add(t, ib->proto->proto == LEM_PROTO_IMAP
                    ? LEM_STAT_INBAND_IMAP : LEM_STAT_INBAND_SMTP, open);
    if (open > 0) {
        lem_stat_add(t, LEM_STAT_INBAND, 1);
        return;
    }
    lem_stat_add(t, LEM_STAT_BYTES_IN, (apr_int64_t)ib->bytes_in);
    lem_stat_add(t, LEM_STAT_BYTES_OUT, (apr_int64_t)ib->bytes_out);
    if (ib->why && !ib->saw_bye) {
        lem_stat_add(t, LEM_STAT_ERR_BACKEND, 1);
    }
}

int lem_inband_serve(request_rec *r, const lem_dir_conf_t *conf,
                     const lem_protocol_t *proto)
{
    lem_inband_t *ib = apr_pcalloc(r->pool, sizeof(*ib));
    apr_socket_t *csock = ap_get_conn_socket(r->connection);
    apr_os_sock_t cfd;
    char greeting[4096];
    apr_size_t glen = 0;

    ib->r = r;
    ib->conf = conf;
    ib->proto = proto;
    if (r->connection->master || !csock
        || apr_os_sock_get(&cfd, csock) != APR_SUCCESS) {
        r->connection->keepalive = AP_CONN_CLOSE;
        return lem_answer_line(r, HTTP_BAD_REQUEST, "in-band mode needs "
                               "an HTTP/1.1 connection of its own");
    }
    ib->cfd = cfd;

    /* 1. the server, and its greeting */
    if (open_backend(ib, greeting, sizeof(greeting), &glen) != OK) {
        return DONE;
    }
    ib->line = apr_palloc(r->pool, conf->max_line);
    proto->inband_init(ib);
    ib->in = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    ib->out = apr_brigade_create(r->pool, r->connection->bucket_alloc);

    /* 2. the answer starts now (draft 2.1.2: "Cache-Control: private") */
    r->status = HTTP_OK;
    ap_set_content_type(r, "text/plain");
    apr_table_setn(r->err_headers_out, "Cache-Control",
                   "private, no-cache, no-store, must-revalidate");
    ap_add_output_filter(LEM_PUSH_FILTER, NULL, r, r->connection);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, LEMLOGNO(0408)
                  "in-band: session opened to %s", conf->backend_url);
    count(ib, 1);
    lem_inband_to_client(ib, greeting, glen);
    lem_inband_flush(ib);

    /* 3. both ways, until either side ends */
    relay(ib);

    /* 4. the end */
    finish(ib);
    count(ib, -1);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, LEMLOGNO(0409)
                  "in-band: session ended (%s)", ib->client_gone
                  ? "client went away" : ib->why ? ib->why
                  : "client finished");
    return DONE;
}
