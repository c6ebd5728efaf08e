/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * Fuzz target: the client's side of in-band mode (draft-maes-lemonade-
 * http-binding-04, 2.1.2), framed as mod_lemonade_imap.c frames it.
 *
 * In in-band mode the request body arrives with HTTP chunked encoding.
 * httpd decodes it; the module gets the decoded bytes in pieces whose
 * sizes the client's chunks, the network and httpd's filters decide, and
 * hands each piece to lem_cmd_next() at once, with the module's limits,
 * switching to answer lines after IDLE and AUTHENTICATE. The bytes sent
 * to the IMAP server, and where a client is cut off, must not depend on
 * those sizes.
 *
 * Input: one byte n, then n % 16 bytes of chunk sizes (b means b + 1
 * bytes, the list cycled; none means sizes drawn from the input), then
 * the decoded body. The body is fed as one piece and as chunks, each
 * chunk in a heap block of its own like a bucket of httpd's; both runs
 * must send the same bytes to the server, line by line, and stop at the
 * same error.
 *
 * The server is played so that the client's answer lines stay
 * answers for as long as a real server would keep asking: one answer
 * after IDLE ("DONE"); after AUTHENTICATE none when it carries an
 * initial response (RFC 4959), two for the LOGIN mechanism (user name,
 * then password) and one for any other.
 */

#include <stdlib.h>
#include <string.h>

#include "lem_imap.h"
#include "fuzz_common.h"

/* mod_lemonade_config.c: LemonadeMaxLine and LemonadeMaxLiteral. */
#define MODULE_MAX_LINE     ((apr_size_t)64 * 1024)
#define MODULE_MAX_LITERAL  ((apr_uint64_t)64 * 1024 * 1024)

/* fz_log_t record kinds */
enum { REC_SENT = 1, REC_BYE, REC_END };

typedef struct {
    const uint8_t    *body;
    size_t            size;
    lem_cmd_parser_t  cp;
    char             *line;
    fz_log_t          log;

    /* the module's in-band state (imap_inband_t) */
    int               raw;           /* client lines are answers */
    int               answers_left;  /* answers the server still asks */
    int               outstanding;   /* commands not yet answered */
    int               bye;           /* the client was cut off */

    size_t            sent;          /* body bytes sent to the server */
} run_t;

/* How many answers a command's continuations ask for. */
static int answers_for(const lem_cmd_parser_t *cp, const char *s, size_t n)
{
    size_t spaces = 0, i, mech;

    if (!strcmp(cp->name, "IDLE")) {
        return 1;
    }
    if (strcmp(cp->name, "AUTHENTICATE") != 0) {
        return 0;
    }
    /* tag SP "AUTHENTICATE" SP mechanism [SP initial-response] CRLF */
    for (i = 0; i + 2 < n; i++) {
        spaces += s[i] == ' ';
    }
    if (spaces != 2) {
        return 0;
    }
    mech = strlen(cp->tag) + 1 + strlen("AUTHENTICATE") + 1;
    if (n - 2 - mech == 5 && (s[mech] | 0x20) == 'l'
        && (s[mech + 1] | 0x20) == 'o' && (s[mech + 2] | 0x20) == 'g'
        && (s[mech + 3] | 0x20) == 'i' && (s[mech + 4] | 0x20) == 'n') {
        return 2;
    }
    return 1;
}

/* What one line means for the next ones (on_client_line). */
static void on_line(run_t *r, const lem_imap_piece_t *pc)
{
    if (!pc->last) {
        return;
    }
    if (!r->cp.tag[0]) {
        FZ_CHECK(r->raw && r->answers_left > 0, "an answer nobody asked");
        r->raw = --r->answers_left > 0;
        return;
    }
    r->outstanding++;
    r->answers_left = answers_for(&r->cp, pc->data, pc->len);
    r->raw = r->answers_left > 0;
}

/* Send a piece on: it must be the next bytes of the body. */
static void send_piece(run_t *r, lem_imap_ev_t ev, const lem_imap_piece_t *pc)
{
    FZ_CHECK(r->sent + pc->len <= r->size
             && memcmp(pc->data, r->body + r->sent, pc->len) == 0,
             "sent %zu bytes that are not the body at %zu", pc->len,
             r->sent);
    r->sent += pc->len;
    if (ev == LEM_IMAP_TEXT || pc->first) {
        fz_log_begin(&r->log, REC_SENT);
        fz_log_u64(&r->log, (uint64_t)ev);
    }
    fz_log_data(&r->log, pc->data, pc->len);
    /* a literal's pieces add up to one record until the next line */
    if (ev == LEM_IMAP_TEXT && r->cp.literal != LEM_LITERAL_NONE) {
        fz_log_begin(&r->log, REC_SENT);
        fz_log_u64(&r->log, (uint64_t)LEM_IMAP_LITERAL);
    }
}

/* imap_client_bytes(): frame one piece of the body and send it on. */
static void client_bytes(run_t *r, const char *data, size_t len)
{
    size_t calls = 0;

    while (len && !r->bye) {
        lem_imap_piece_t pc;
        apr_size_t used = len + 1;
        lem_imap_ev_t ev;

        if (r->raw && lem_cmd_at_boundary(&r->cp)) {
            lem_cmd_expect_line(&r->cp);
        }
        ev = lem_cmd_next(&r->cp, data, len, &used, &pc);
        FZ_CHECK(used <= len, "used %zu of %zu", used, len);
        FZ_CHECK(++calls <= 2 * r->size + 4, "%zu calls", calls);
        data += used;
        len -= used;
        if (ev == LEM_IMAP_ERROR) {
            fz_log_begin(&r->log, REC_BYE);
            fz_log_str(&r->log, r->cp.error);
            r->bye = 1;
            return;
        }
        if (ev == LEM_IMAP_NEED_MORE) {
            FZ_CHECK(len == 0, "NEED_MORE with %zu bytes left", len);
            return;
        }
        send_piece(r, ev, &pc);
        if (ev == LEM_IMAP_TEXT) {
            on_line(r, &pc);
        }
    }
}

static void run(run_t *r, fz_slicer_t *sl, const uint8_t *body, size_t size)
{
    size_t off = 0;

    memset(r, 0, sizeof(*r));
    r->body = body;
    r->size = size;
    r->line = malloc(MODULE_MAX_LINE);
    fz_log_init(&r->log);
    lem_cmd_init(&r->cp, r->line, MODULE_MAX_LINE, MODULE_MAX_LITERAL);

    /* from_client(): bucket after bucket until the body ends */
    while (off < size && !r->bye) {
        size_t n = sl ? fz_slicer_next(sl, size - off) : size - off;
        char *bucket = fz_slice(body + off, n);

        client_bytes(r, bucket, n);
        free(bucket);
        off += n;
    }
    fz_log_begin(&r->log, REC_END);
    fz_log_u64(&r->log, (uint64_t)lem_cmd_at_boundary(&r->cp));
    fz_log_u64(&r->log, r->cp.commands);
    fz_log_u64(&r->log, (uint64_t)r->outstanding);
    fz_log_u64(&r->log, (uint64_t)r->raw);
    free(r->line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n_sizes;
    const uint8_t *body;
    fz_slicer_t sl;
    run_t whole, chunked;

    if (size < 1) {
        return 0;
    }
    n_sizes = data[0] % 16;
    if (n_sizes > size - 1) {
        return 0;
    }
    body = data + 1 + n_sizes;
    size -= 1 + n_sizes;

    run(&whole, NULL, body, size);

    fz_slicer_init(&sl, FZ_RANDOM, body, size);
    if (n_sizes > 0) {
        fz_slicer_list(&sl, data + 1, n_sizes);
    }
    run(&chunked, &sl, body, size);
    fz_log_same(&whole.log, &chunked.log, "the body whole and chunked");

    fz_log_free(&chunked.log);
    fz_log_free(&whole.log);
    return 0;
}
