/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * In-band mode (draft-maes-lemonade-http-binding-04, 2.1.2):
 *
 *   "It is possible to use persistent HTTP or persistent HTTPS plus
 *    chunked- transfer-encoding so that the server can instantly send
 *    notifications to the client while a session is open."
 *
 * One chunked POST per client connection. The answer starts with the
 * server's greeting; from then on the client's bytes go out as chunks,
 * one per read, and the answer's chunks come back as bytes, so the client
 * sees a plain connection to its server.
 *
 *   "To maintain such an open channel might be a practical challenge to
 *    proxies/firewalls, which might not forward the requests chunk by
 *    chunk to the server"
 *
 * which is how a buffering path is recognised: no greeting within
 * --inband-wait seconds. The client has then been sent nothing, and the
 * session goes on in in-response mode instead.
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "lemonade_connect.h"
#include "lemonade_connect_http.h"

/* draft 2.1.2: the headers the client sends once. */
#define LC_INBAND_HEADERS \
    "Content-Type: application/vnd.lemonade\r\n" \
    "Cache-Control: no-cache\r\n" \
    "Pragma: no-cache\r\n"

/* One in-band session. */
typedef struct {
    lc_session_t *s;
    lc_conn_t     conn;
    lc_head_t     head;
    lc_body_t     body;
    lc_track_t    track;        /* where the server's responses end */
    int           client_eof;   /* its last chunk is sent */
    int           ended;        /* the answer ended with its last chunk */
    int           lost;         /* the connection broke before that */
    char          why[LC_ERR_MAX];
} inband_t;

/* ------------------------------------------------------------------ */
/* Server to client                                                    */
/* ------------------------------------------------------------------ */

static void to_client(inband_t *ib, const char *data, size_t len)
{
    ib->s->conf->proto->track(&ib->track, data, len);
    lc_client_write(ib->s, data, len);
}

/* Pass on whatever the answer holds now, waiting at most `ms` for the
 * first of it. LC_OK while the session goes on, LC_ERROR once it ended. */
static int from_server(inband_t *ib, int ms)
{
    const char *data;
    size_t len;

    while (!ib->s->client_gone) {
        int rc = lc_body_next(&ib->conn, &ib->body, ms, &data, &len);

        ms = 0;
        if (rc == LC_OK) {
            to_client(ib, data, len);
            continue;
        }
        if (rc == LC_TIMEOUT) {
            return LC_OK;
        }
        if (rc == LC_END) {
            ib->ended = 1;
        }
        else {
            ib->lost = 1;
            snprintf(ib->why, sizeof(ib->why), "%s", ib->conn.err[0]
                     ? ib->conn.err : "the connection was lost");
        }
        return LC_ERROR;
    }
    return LC_ERROR;
}

/* While a chunk waits for room: see lc_pump_fn. */
static int pump(void *ctx)
{
    return from_server(ctx, 0);
}

/* ------------------------------------------------------------------ */
/* Client to server                                                    */
/* ------------------------------------------------------------------ */

/* What the client sent is one chunk; its EOF the last chunk. LC_OK while
 * the session goes on. */
static int from_client(inband_t *ib)
{
    lc_session_t *s = ib->s;
    lc_inbuf_t *in = &s->in;
    int rc = lc_client_fill(s, 0);

    if (rc == LC_TIMEOUT) {
        return LC_OK;
    }
    if (rc != LC_OK) {
        /* draft 2.1.2: the last chunk ends the client's side */
        ib->client_eof = 1;
        lc_http_chunk(&ib->conn, "", 0, s->conf->timeout * 1000, pump, ib);
        return LC_OK;
    }
    rc = lc_http_chunk(&ib->conn, in->data + in->off, in->len - in->off,
                       s->conf->timeout * 1000, pump, ib);
    in->off = in->len;
    if (rc != LC_OK && !ib->ended && !ib->lost) {
        ib->lost = 1;
        snprintf(ib->why, sizeof(ib->why), "%s", ib->conn.err[0]
                 ? ib->conn.err : "the server took nothing for too long");
    }
    return rc == LC_OK ? LC_OK : LC_ERROR;
}

/* ------------------------------------------------------------------ */
/* The session                                                         */
/* ------------------------------------------------------------------ */

/* Wait for either side: LC_OK, or LC_TIMEOUT after the time allowed. */
static int wait_either(inband_t *ib)
{
    const lc_conf_t *conf = ib->s->conf;
    struct pollfd pfd[2];
    int rc, ms = (ib->client_eof ? conf->timeout : conf->idle_timeout)
                 * 1000;

    if (lc_conn_buffered(&ib->conn)) {
        return LC_OK;
    }
    pfd[0].fd = ib->client_eof ? -1 : ib->s->cfd;
    pfd[0].events = POLLIN;
    pfd[1].fd = ib->conn.fd;
    pfd[1].events = POLLIN;
    do {
        rc = poll(pfd, 2, ms);
    } while (rc < 0 && errno == EINTR);
    return rc > 0 ? LC_OK : LC_TIMEOUT;
}

static void relay(inband_t *ib)
{
    for (;;) {
        /* 1. the server's side, as far as it has sent */
        if (from_server(ib, 0) != LC_OK) {
            return;
        }

        /* 2. wait for either side */
        if (wait_either(ib) != LC_OK) {
            snprintf(ib->why, sizeof(ib->why), ib->client_eof
                     ? "the server did not end the session in time"
                     : "the session was silent for too long");
            ib->lost = 1;
            return;
        }

        /* 3. the client's side, as far as it has sent */
        if (!ib->client_eof && from_client(ib) != LC_OK) {
            return;
        }
    }
}

/* How it ends: a goodbye of ours only where the stream allows one. */
static void finish(inband_t *ib)
{
    lc_session_t *s = ib->s;
    const lc_proto_t *proto = s->conf->proto;

    if (ib->lost && !ib->track.said_bye && proto->at_boundary(&ib->track)
        && !s->client_gone) {
        char why[LC_ERR_MAX + 32];

        snprintf(why, sizeof(why), "lemonade-connect: %s", ib->why);
        lc_client_bye(s, why);
    }
    s->end = s->client_gone ? "the client went away"
           : ib->track.said_bye ? "the server said goodbye"
           : ib->ended ? (ib->client_eof ? "the client closed"
                                         : "the gateway ended the session")
           : "the HTTP connection was lost";
    if (ib->lost) {
        snprintf(s->err, sizeof(s->err), "%s", ib->why);
    }
}

/* ------------------------------------------------------------------ */
/* Opening, and the greeting that tells                                */
/* ------------------------------------------------------------------ */

/* A 502, 503 or 504 is the gateway's word that the mail server cannot be
 * had now; in-response mode would hear the same. */
static int server_unavailable(const lc_head_t *h)
{
    return h->status == 502 || h->status == 503 || h->status == 504;
}

/* The request, and the answer's head and first chunk within the time
 * allowed. LC_OK with the greeting passed on; LC_TIMEOUT to fall back;
 * LC_ERROR when the session is over (the client has been told). */
static int open_session(inband_t *ib)
{
    lc_session_t *s = ib->s;
    long long deadline = lc_now_ms() + s->conf->inband_wait * 1000LL;
    const char *data;
    size_t len;
    int rc;

    /* 1. the connection; not reaching the server at all is no fallback */
    if (lc_http_open(&ib->conn, s->conf) != LC_OK) {
        snprintf(s->err, sizeof(s->err), "%s", ib->conn.err);
        return LC_ERROR;
    }

    /* 2. the request head, once (draft 2.1.2) */
    if (lc_http_request(&ib->conn, s->conf, "POST", -1, LC_INBAND_HEADERS,
                        NULL) != LC_OK) {
        snprintf(s->err, sizeof(s->err), "%s", ib->conn.err);
        return LC_TIMEOUT;
    }

    /* 3. the answer's head */
    rc = lc_http_head(&ib->conn, &ib->head, NULL, lc_left_ms(deadline));
    if (rc == LC_OK && server_unavailable(&ib->head)) {
        snprintf(s->err, sizeof(s->err), "HTTP %d %s", ib->head.status,
                 ib->head.reason);
        return LC_ERROR;
    }
    if (rc != LC_OK || ib->head.status != 200 || !ib->head.chunked) {
        snprintf(s->err, sizeof(s->err), "%s", rc != LC_OK ? ib->conn.err
                 : "the answer was not a chunked 200");
        return LC_TIMEOUT;
    }

    /* 4. the greeting, the first chunk */
    lc_body_init(&ib->body, &ib->head, "POST");
    rc = lc_body_next(&ib->conn, &ib->body, lc_left_ms(deadline), &data,
                      &len);
    if (rc != LC_OK) {
        snprintf(s->err, sizeof(s->err), "%s", rc == LC_TIMEOUT
                 ? "no greeting in time" : ib->conn.err);
        return LC_TIMEOUT;
    }
    to_client(ib, data, len);
    return LC_OK;
}

int lc_inband(lc_session_t *s)
{
    inband_t ib;
    int rc;

    memset(&ib, 0, sizeof(ib));
    ib.s = s;
    lc_conn_init(&ib.conn);
    s->conf->proto->track_init(&ib.track);

    rc = open_session(&ib);
    if (rc == LC_OK) {
        s->mode = "in-band";
        relay(&ib);
        finish(&ib);
    }
    else if (rc == LC_ERROR) {
        char why[LC_ERR_MAX + 32];

        snprintf(why, sizeof(why), "lemonade-connect: %s", s->err);
        lc_client_bye(s, why);
        s->end = "the server could not be reached";
    }
    lc_conn_close(&ib.conn);
    return rc == LC_TIMEOUT ? LC_TIMEOUT : LC_OK;
}
