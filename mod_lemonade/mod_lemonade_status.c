/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * The status of the binding for operators: `SetHandler lemonade-status`,
 * and a section of mod_status's server-status when mod_status is loaded.
 * Everything comes from the shared session table; nothing names a user,
 * a cookie or a password.
 */

#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_protocol.h>
#include <mod_status.h>

#include "mod_lemonade.h"
#include "mod_lemonade_status.h"

/* Sessions counted by protocol and activity. */
typedef struct {
    lem_table_hdr_t hdr;
    unsigned        idle[3];      /* by lem_proto_t */
    unsigned        busy[3];
    unsigned        long_poll[3];
    unsigned        opening;
    unsigned        open;
} lem_census_t;

static void take_census(lem_census_t *c)
{
    int n, slots = lem_table_slots(lem_state.table);
    lem_slot_t slot;

    memset(c, 0, sizeof(*c));
    lem_table_header(lem_state.table, &c->hdr);
    for (n = 0; n < slots; n++) {
        lem_slot_state_t st = lem_table_peek(lem_state.table,
                                             (apr_uint32_t)n, &slot);
        unsigned p = slot.proto < 3 ? slot.proto : 0;

        if (st == LEM_SLOT_OPENING) {
            c->opening++;
        }
        if (st != LEM_SLOT_OPEN) {
            continue;
        }
        c->open++;
        switch (slot.activity) {
        case LEM_ACT_BUSY:      c->busy[p]++;      break;
        case LEM_ACT_LONG_POLL: c->long_poll[p]++; break;
        default:                c->idle[p]++;      break;
        }
    }
}

/* The figures, as "Key: value" lines, in the order of lem_census_t. */
static void put_figures(request_rec *r, const lem_census_t *c,
                        const char *before, const char *between,
                        const char *after)
{
    const apr_uint64_t *st = c->hdr.stats;
    apr_uint64_t inband = st[LEM_STAT_INBAND_IMAP] + st[LEM_STAT_INBAND_SMTP];
    const struct {
        const char  *key;
        apr_uint64_t value;
    } rows[] = {
        { "Sessions",              c->open + inband },
        { "SessionsInResponse",    c->open },
        { "SessionsInBand",        inband },
        { "IMAPIdle",              c->idle[LEM_PROTO_IMAP] },
        { "IMAPBusy",              c->busy[LEM_PROTO_IMAP] },
        { "IMAPLongPoll",          c->long_poll[LEM_PROTO_IMAP] },
        { "IMAPInBand",            st[LEM_STAT_INBAND_IMAP] },
        { "SMTPIdle",              c->idle[LEM_PROTO_SMTP] },
        { "SMTPBusy",              c->busy[LEM_PROTO_SMTP] },
        { "SMTPInBand",            st[LEM_STAT_INBAND_SMTP] },
        { "BackendConnections",    c->open + c->opening + inband },
        { "SessionSlots",          c->hdr.nslots },
        { "SessionsOpened",        c->hdr.opened },
        { "SessionsClosed",        c->hdr.closed },
        { "Requests",              st[LEM_STAT_REQUESTS] },
        { "InBandSessionsServed",  st[LEM_STAT_INBAND] },
        { "BytesIn",               st[LEM_STAT_BYTES_IN] },
        { "BytesOut",              st[LEM_STAT_BYTES_OUT] },
        { "ErrorsClient",          st[LEM_STAT_ERR_CLIENT] },
        { "ErrorsBackend",         st[LEM_STAT_ERR_BACKEND] },
        { "ErrorsBusy",            st[LEM_STAT_ERR_BUSY] },
        { "LimitsHit",             st[LEM_STAT_LIMITS] },
    };
    size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ap_rprintf(r, "%s%s%s%" APR_UINT64_T_FMT "%s", before, rows[i].key,
                   between, rows[i].value, after);
    }
}

int lem_status_handler(request_rec *r)
{
    lem_census_t c;
    int machine;

    if (!r->handler || strcmp(r->handler, "lemonade-status")) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        apr_table_setn(r->err_headers_out, "Allow", "GET");
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (!lem_state.table) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    machine = r->args && !strcmp(r->args, "auto");
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache, no-store");
    ap_set_content_type(r, machine ? "text/plain; charset=ISO-8859-1"
                                   : "text/html; charset=ISO-8859-1");
    if (r->header_only) {
        return OK;
    }
    take_census(&c);
    if (machine) {
        put_figures(r, &c, "", ": ", "\n");
        return OK;
    }
    ap_rputs(DOCTYPE_HTML_4_01 "<html><head><title>mod_lemonade status"
             "</title></head><body>\n<h1>mod_lemonade status</h1>\n"
             "<table>\n", r);
    put_figures(r, &c, "<tr><th align=\"left\">", "</th><td>",
                "</td></tr>\n");
    ap_rputs("</table>\n</body></html>\n", r);
    return OK;
}

/* mod_status's server-status: the same figures, in its manner. */
static int status_hook(request_rec *r, int flags)
{
    lem_census_t c;

    if (!lem_state.table) {
        return OK;
    }
    take_census(&c);
    if (flags & AP_STATUS_SHORT) {
        put_figures(r, &c, "Lemonade", ": ", "\n");
        return OK;
    }
    ap_rputs("<hr />\n<h2>mod_lemonade</h2>\n<table>\n", r);
    put_figures(r, &c, "<tr><th align=\"left\">", "</th><td>",
                "</td></tr>\n");
    ap_rputs("</table>\n", r);
    return OK;
}

void lem_status_register(void)
{
    APR_OPTIONAL_HOOK(ap, status_hook, status_hook, NULL, NULL,
                      APR_HOOK_MIDDLE);
}
