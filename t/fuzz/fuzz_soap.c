/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * Fuzz target: the SOAP binding's mapping, lem_soap.h.
 *
 * Input: one byte of settings, then the rest.
 *
 *   bit 0  0: SOAP 1.1, 1: SOAP 1.2
 *   bit 1  0: the rest is a request document
 *          1: the rest is what the IMAP server answered to the commands
 *             of a fixed request (answer_doc below)
 *
 * Requests are fed whole and in slices of lengths drawn from the input;
 * both runs must come to the same request or the same fault. A request
 * that maps must write commands that frame (lem_cmd_*) as exactly one
 * command per call, tagged s1, s2, ... in order: no XML a client sends
 * may smuggle a second command or a literal into the stream.
 *
 * Answers are made in the two passes of lem_soap.h, fed whole and in
 * slices; both runs must write the same bytes, and those bytes must be
 * a well-formed XML document whatever the server said.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_xml.h>

#include "lem_soap.h"
#include "fuzz_common.h"

/* fz_log_t record kinds */
enum { REC_FAULT = 1, REC_CALL, REC_COMMANDS, REC_END };

static apr_pool_t *root;

/* A request with one call of each shape the answers take. */
static const char answer_doc[] =
    "<?xml version=\"1.0\"?>"
    "<soap:Envelope xmlns:soap=\"%s\" xmlns=\"" LEM_SOAP_NS "\">"
    "<soap:Body>"
    "<NOOP/>"
    "<FETCH><SEQUENCE>1:*</SEQUENCE>"
    "<L><FLAGS/><BODY.PEEK><SECTION>HEADER</SECTION></BODY.PEEK></L>"
    "</FETCH>"
    "<SEARCH><ALL/></SEARCH>"
    "</soap:Body></soap:Envelope>";

static apr_status_t to_buf(void *ctx, const char *data, apr_size_t len)
{
    fz_buf_put(ctx, data, len);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

/* The commands of a mapped request: one per call, tagged in order. */
static void check_commands(const lem_soap_request_t *req, const char *text,
                           size_t len)
{
    lem_cmd_parser_t cp;
    lem_imap_piece_t pc;
    char *line = malloc(len + 1), want[16];
    size_t off = 0;

    lem_cmd_init(&cp, line, len + 1, APR_UINT64_MAX);
    while (off < len) {
        apr_size_t used = 0;
        lem_imap_ev_t ev = lem_cmd_next(&cp, text + off, len - off, &used,
                                        &pc);

        FZ_CHECK(ev != LEM_IMAP_ERROR, "the commands do not frame (%s): "
                 "\"%.*s\"", cp.error, (int)(len < 300 ? len : 300), text);
        if (ev == LEM_IMAP_TEXT && pc.first) {
            snprintf(want, sizeof(want), LEM_SOAP_TAG_PREFIX "%u",
                     cp.commands + !pc.last);
            FZ_CHECK(!strcmp(cp.tag, want), "command tagged \"%s\", not "
                     "\"%s\"", cp.tag, want);
        }
        off += used;
    }
    FZ_CHECK(cp.error || (cp.commands == (unsigned)req->ncalls
                          && lem_cmd_at_boundary(&cp)),
             "%u commands framed for %d calls: \"%.*s\"", cp.commands,
             req->ncalls, (int)(len < 300 ? len : 300), text);
    free(line);
}

static void log_request(fz_log_t *log, const lem_soap_request_t *req)
{
    lem_sink_t sink = { to_buf, NULL };
    fz_buf_t text = { 0 };
    const char *error = NULL;
    int i;

    FZ_CHECK(req->ncalls >= 1 && req->calls, "a request of %d calls",
             req->ncalls);
    for (i = 0; i < req->ncalls; i++) {
        fz_log_begin(log, REC_CALL);
        fz_log_str(log, req->calls[i].method);
        fz_log_str(log, req->calls[i].command);
    }
    sink.ctx = &text;
    fz_log_begin(log, REC_COMMANDS);
    if (lem_soap_write_commands(req, &sink, &error) != APR_SUCCESS) {
        FZ_CHECK(error && error[0], "a refusal without a message");
        fz_log_str(log, error);
    }
    else {
        check_commands(req, text.data, text.len);
        fz_log_bytes(log, text.data, text.len);
    }
    fz_buf_free(&text);
}

static void run_request(fz_log_t *log, lem_soap_version_t version,
                        fz_cut_t cut, const uint8_t *doc, size_t size)
{
    apr_pool_t *pool;
    lem_soap_reader_t *rd;
    const lem_soap_request_t *req = NULL;
    apr_status_t rv = APR_SUCCESS;
    lem_soap_fault_t fault;
    const char *why = NULL;
    fz_slicer_t sl;
    size_t off = 0;

    apr_pool_create(&pool, root);
    rd = lem_soap_reader_create(pool, version);
    fz_slicer_init(&sl, cut, doc, size);
    while (off < size && rv == APR_SUCCESS) {
        size_t n = fz_slicer_next(&sl, size - off);
        char *slice = fz_slice(doc + off, n);

        rv = lem_soap_reader_feed(rd, slice, n);
        free(slice);
        off += n;
    }
    if (rv == APR_SUCCESS) {
        rv = lem_soap_reader_done(rd, &req);
    }
    fault = lem_soap_reader_fault(rd, &why);
    fz_log_begin(log, REC_FAULT);
    fz_log_u64(log, (uint64_t)fault);
    if (rv != APR_SUCCESS) {
        FZ_CHECK(fault == LEM_FAULT_VERSION
                 || fault == LEM_FAULT_MUST_UNDERSTAND
                 || fault == LEM_FAULT_CLIENT, "refused with fault %d",
                 (int)fault);
        FZ_CHECK(why && why[0], "a fault without a faultstring");
        /* which of expat's and apr_xml's checks stops a malformed
         * document first depends on the cuts: only the kind is kept */
        fz_log_str(log, strncmp(why, "malformed XML", 13) ? why
                                                          : "malformed XML");
    }
    else {
        FZ_CHECK(fault == LEM_FAULT_NONE && req, "mapped with fault %d",
                 (int)fault);
        log_request(log, req);
    }
    apr_pool_destroy(pool);
}

/* ------------------------------------------------------------------ */
/* Answers                                                             */
/* ------------------------------------------------------------------ */

static const lem_soap_request_t *fixed_request(apr_pool_t *pool,
                                               lem_soap_version_t version)
{
    const char *doc = apr_psprintf(pool, answer_doc,
                                   version == LEM_SOAP_12
                                   ? LEM_SOAP12_ENV_NS : LEM_SOAP11_ENV_NS);
    lem_soap_reader_t *rd = lem_soap_reader_create(pool, version);
    const lem_soap_request_t *req = NULL;
    const char *why = "";

    if (lem_soap_reader_feed(rd, doc, strlen(doc)) != APR_SUCCESS
        || lem_soap_reader_done(rd, &req) != APR_SUCCESS) {
        lem_soap_reader_fault(rd, &why);
        FZ_CHECK(0, "the fixed request is refused: %s", why);
    }
    return req;
}

/* What a client gets must be XML, whatever the server sent. */
static void check_well_formed(const fz_buf_t *out)
{
    apr_pool_t *pool;
    apr_xml_parser *xp;
    apr_xml_doc *doc = NULL;
    char error[256] = "";

    apr_pool_create(&pool, root);
    xp = apr_xml_parser_create(pool);
    if (apr_xml_parser_feed(xp, out->data, out->len) != APR_SUCCESS
        || apr_xml_parser_done(xp, &doc) != APR_SUCCESS || !doc) {
        apr_xml_parser_geterror(xp, error, sizeof(error));
        FZ_CHECK(0, "the answer is not XML (%s): \"%.*s\"", error,
                 (int)(out->len < 400 ? out->len : 400), out->data);
    }
    FZ_CHECK(!strcmp(doc->root->name, "Envelope"), "the answer's root is "
             "<%s>", doc->root->name);
    apr_pool_destroy(pool);
}

/* Feed `data` in slices to one of the passes; stop at a refusal. */
static apr_status_t feed_pass(lem_soap_answer_t *a, int scan, fz_cut_t cut,
                              const uint8_t *data, size_t size)
{
    fz_slicer_t sl;
    size_t off = 0;
    apr_status_t rv = APR_SUCCESS;

    fz_slicer_init(&sl, cut, data, size);
    while (off < size && rv == APR_SUCCESS) {
        size_t n = fz_slicer_next(&sl, size - off);
        char *slice = fz_slice(data + off, n);

        rv = scan ? lem_soap_answer_scan(a, slice, n)
                  : lem_soap_answer_feed(a, slice, n);
        free(slice);
        off += n;
    }
    return rv;
}

static void run_answer(fz_buf_t *out, lem_soap_version_t version,
                       fz_cut_t cut, const uint8_t *data, size_t size)
{
    apr_pool_t *pool;
    const lem_soap_request_t *req;
    lem_soap_answer_t *a;
    lem_soap_fault_t fault;
    lem_sink_t sink = { to_buf, NULL };
    const char *why = NULL;

    apr_pool_create(&pool, root);
    req = fixed_request(pool, version);

    /* 1. what the outcome is */
    a = lem_soap_answer_create(pool, req);
    if (feed_pass(a, 1, cut, data, size) != APR_SUCCESS) {
        fault = LEM_FAULT_SERVER;
        why = "the IMAP server's answer is malformed";
    }
    else {
        fault = lem_soap_answer_outcome(a, &why);
    }

    /* 2. the answer, from the same bytes again */
    a = lem_soap_answer_create(pool, req);
    sink.ctx = out;
    FZ_CHECK(lem_soap_answer_begin(a, fault, why, &sink) == APR_SUCCESS,
             "answer_begin failed");
    if (fault != LEM_FAULT_SERVER) {
        FZ_CHECK(feed_pass(a, 0, cut, data, size) == APR_SUCCESS,
                 "pass 2 refused what pass 1 took");
    }
    FZ_CHECK(lem_soap_answer_end(a) == APR_SUCCESS, "answer_end failed");
    apr_pool_destroy(pool);
    check_well_formed(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lem_soap_version_t version;

    if (!root) {
        apr_initialize();
        apr_pool_create(&root, NULL);
    }
    if (size < 1) {
        return 0;
    }
    version = (data[0] & 1) ? LEM_SOAP_12 : LEM_SOAP_11;
    if (data[0] & 2) {
        fz_buf_t whole = { 0 }, sliced = { 0 };

        run_answer(&whole, version, FZ_WHOLE, data + 1, size - 1);
        run_answer(&sliced, version, FZ_RANDOM, data + 1, size - 1);
        FZ_CHECK(whole.len == sliced.len
                 && memcmp(whole.data, sliced.data, whole.len) == 0,
                 "the answer depends on how the responses were cut");
        fz_buf_free(&whole);
        fz_buf_free(&sliced);
    }
    else {
        fz_log_t whole, sliced;

        fz_log_init(&whole);
        fz_log_init(&sliced);
        run_request(&whole, version, FZ_WHOLE, data + 1, size - 1);
        run_request(&sliced, version, FZ_RANDOM, data + 1, size - 1);
        fz_log_same(&whole, &sliced, "a request whole and sliced");
        fz_log_free(&whole);
        fz_log_free(&sliced);
    }
    return 0;
}
