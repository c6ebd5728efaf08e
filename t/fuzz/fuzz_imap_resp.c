/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * Fuzz target: the IMAP response framing, lem_resp_* of lem_imap.h.
 *
 * Input: the server's stream, fed whole, a byte at a time and in slices
 * of lengths drawn from the input. Each run is held to lem_imap.h:
 * `*used` within the slice and all of it on NEED_MORE, a bounded number
 * of calls, lines ending in CRLF and holding no other CR or LF, kind,
 * tag and status as RFC 3501 section 7 reads the line, the announced
 * literal delivered exactly, every byte handed out in order and none
 * invented, and an error that sticks. The pieces of a line depend on
 * the cuts; the joined lines, their fields and any error must not.
 */

#include <stdlib.h>
#include <string.h>

#include "lem_imap.h"
#include "fuzz_common.h"

/* fz_log_t record kinds */
enum { REC_LINE = 1, REC_LITERAL, REC_ERROR, REC_END };

typedef struct {
    const uint8_t     *stream;
    size_t             size;
    lem_resp_parser_t  p;
    fz_log_t           log;

    size_t             consumed;
    size_t             emitted;
    size_t             calls;
    size_t             line_at;     /* stream offset of the open line */
    int                line_open;   /* a line has pieces out, no CRLF yet */
    int                want_first;  /* the next line starts a response */
    apr_uint64_t       lit_left;
    int                failed;
} run_t;

/* ------------------------------------------------------------------ */
/* RFC 3501, 7: what the first line of a response says                 */
/* ------------------------------------------------------------------ */

static size_t word_at(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n && s[i] != ' ' && s[i] != '\r') {
        i++;
    }
    return i;
}

static int same_upper(const char *s, size_t n, const char *word)
{
    size_t i;

    if (strlen(word) != n) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        char c = (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 32) : s[i];

        if (c != word[i]) {
            return 0;
        }
    }
    return 1;
}

/*
 * resp-cond-* = ("OK" / "NO" / "BAD" / "PREAUTH" / "BYE") SP resp-text;
 * the word after the tag, ended by SP or CRLF. `s` is the line so far.
 */
static lem_status_t status_of(const char *s, size_t n, size_t tag_len)
{
    static const char *const names[] = { "OK", "NO", "BAD", "PREAUTH",
                                         "BYE" };
    static const lem_status_t values[] = {
        LEM_STATUS_OK, LEM_STATUS_NO, LEM_STATUS_BAD, LEM_STATUS_PREAUTH,
        LEM_STATUS_BYE
    };
    size_t from = tag_len + 1, k, i;

    if (from >= n || s[tag_len] != ' ') {
        return LEM_STATUS_NONE;
    }
    k = word_at(s + from, n - from);
    if (from + k >= n) {
        return LEM_STATUS_NONE;     /* the word does not end on the line */
    }
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (same_upper(s + from, k, names[i])) {
            return values[i];
        }
    }
    return LEM_STATUS_NONE;
}

/* The head the parser classified: only its first bytes are judged. */
static void check_head(const run_t *r, const char *s, size_t n)
{
    size_t t = word_at(s, n);

    FZ_CHECK(n > 0, "an empty first piece");
    if (s[0] == '*') {
        FZ_CHECK(r->p.kind == LEM_RESP_UNTAGGED, "kind %d for \"*\"",
                 (int)r->p.kind);
    }
    else if (s[0] == '+') {
        FZ_CHECK(r->p.kind == LEM_RESP_CONTINUATION
                 && r->p.status == LEM_STATUS_NONE,
                 "kind %d status %d for \"+\"", (int)r->p.kind,
                 (int)r->p.status);
        return;
    }
    else {
        /* `tag` is a C string: a NUL in the server's tag ends it there */
        const char *nul = memchr(s, '\0', t);
        size_t c = nul ? (size_t)(nul - s) : t;

        FZ_CHECK(r->p.kind == LEM_RESP_TAGGED, "kind %d for a tag",
                 (int)r->p.kind);
        /* a tag with a NUL names no command: it is left empty */
        FZ_CHECK(t <= LEM_IMAP_TAG_MAX
                 && (nul ? r->p.tag[0] == '\0'
                         : strlen(r->p.tag) == c
                           && memcmp(r->p.tag, s, c) == 0),
                 "tag \"%s\" for a line starting \"%.*s\"", r->p.tag,
                 (int)(t < 80 ? t : 80), s);
    }
    FZ_CHECK(r->p.status == status_of(s, n, t),
             "status %d for \"%.*s\"", (int)r->p.status,
             (int)(n < 80 ? n : 80), s);
}

/* ------------------------------------------------------------------ */
/* Events                                                              */
/* ------------------------------------------------------------------ */

static void check_lossless(run_t *r, const lem_imap_piece_t *pc)
{
    FZ_CHECK(r->emitted + pc->len <= r->consumed
             && memcmp(pc->data, r->stream + r->emitted, pc->len) == 0,
             "a piece of %zu bytes is not the stream at %zu",
             pc->len, r->emitted);
    r->emitted += pc->len;
}

/* Where a TEXT piece may point: the head buffer, the input, or CRLF. */
static void check_source(const run_t *r, const char *in, size_t len,
                         const lem_imap_piece_t *pc)
{
    const char *h = r->p.head;

    if (pc->data >= h && pc->data < h + sizeof(r->p.head)) {
        FZ_CHECK(pc->first && pc->data + pc->len <= h + sizeof(r->p.head),
                 "a piece from the head buffer that is no head");
        return;
    }
    if (pc->data >= in && pc->data < in + len) {
        FZ_CHECK(pc->data + pc->len <= in + len, "a piece past the input");
        return;
    }
    FZ_CHECK(pc->len == 2 && memcmp(pc->data, "\r\n", 2) == 0,
             "a piece from nowhere");
}

/*
 * A line ended: judge it whole, as the stream has it (the pieces were
 * checked against the stream), and log it whole, however it was cut.
 */
static void on_line_end(run_t *r, const lem_imap_piece_t *pc)
{
    const char *s = (const char *)r->stream + r->line_at;
    size_t n = r->emitted - r->line_at, i;
    uint64_t num;
    int overflow, kind;

    FZ_CHECK(fz_ends_crlf(s, n), "line_end without CRLF");
    for (i = 0; i + 2 < n; i++) {
        FZ_CHECK(s[i] != '\r' && s[i] != '\n', "CR or LF inside a line");
    }
    kind = fz_imap_literal(s, n - 2, &num, &overflow);
    FZ_CHECK(!(kind && overflow), "a marker over 64 bits passed");
    FZ_CHECK((int)r->p.literal == kind
             && r->p.literal_len == (kind ? num : 0),
             "literal %d/%llu announced, the line says %d/%llu",
             (int)r->p.literal, (unsigned long long)r->p.literal_len,
             kind, (unsigned long long)num);
    FZ_CHECK(pc->last == (kind == 0), "last %u with literal %d",
             pc->last, kind);
    fz_log_u64(&r->log, (uint64_t)r->p.literal);
    fz_log_u64(&r->log, r->p.literal_len);
    fz_log_data(&r->log, s, n);
    r->line_open = 0;
    r->want_first = pc->last;
    r->lit_left = r->p.literal_len;
}

static void on_text(run_t *r, const char *in, size_t len,
                    const lem_imap_piece_t *pc)
{
    FZ_CHECK(r->lit_left == 0, "text with %llu literal octets due",
             (unsigned long long)r->lit_left);
    FZ_CHECK(pc->len > 0, "an empty text piece");
    FZ_CHECK(pc->line_end || !pc->last, "last without line_end");
    check_source(r, in, len, pc);
    if (!r->line_open) {
        FZ_CHECK(pc->first == r->want_first, "first is %u", pc->first);
        r->line_at = r->emitted;
        r->line_open = 1;
        fz_log_begin(&r->log, REC_LINE);
        fz_log_u64(&r->log, pc->first);
        if (pc->first) {
            fz_log_u64(&r->log, (uint64_t)r->p.kind);
            fz_log_u64(&r->log, (uint64_t)r->p.status);
            fz_log_str(&r->log, r->p.tag);
        }
    }
    else {
        FZ_CHECK(!pc->first, "first on a later piece of a line");
    }
    check_lossless(r, pc);
    if (pc->first) {
        check_head(r, pc->data, pc->len);
    }
    if (pc->line_end) {
        on_line_end(r, pc);
    }
}

static void on_literal(run_t *r, const char *at, const lem_imap_piece_t *pc)
{
    FZ_CHECK(r->lit_left > 0, "literal octets nobody announced");
    FZ_CHECK(pc->len > 0 && pc->len <= r->lit_left,
             "a literal piece of %zu bytes, %llu due", pc->len,
             (unsigned long long)r->lit_left);
    FZ_CHECK(pc->data == at, "a literal piece not taken from the input");
    FZ_CHECK(!pc->first && !pc->line_end && !pc->last,
             "flags on a literal piece");
    check_lossless(r, pc);
    if (r->lit_left == r->p.literal_len) {
        fz_log_begin(&r->log, REC_LITERAL);
    }
    fz_log_data(&r->log, pc->data, pc->len);
    r->lit_left -= pc->len;
}

static void on_error(run_t *r)
{
    const char *msg = r->p.error;
    apr_size_t used = 1;
    lem_imap_piece_t pc;

    FZ_CHECK(msg && msg[0], "ERROR without a message");
    fz_log_begin(&r->log, REC_ERROR);
    fz_log_str(&r->log, msg);
    fz_log_u64(&r->log, r->emitted);
    FZ_CHECK(lem_resp_next(&r->p, "* OK\r\n", 6, &used, &pc)
             == LEM_IMAP_ERROR && used == 0 && r->p.error == msg,
             "the parser left its error state");
    FZ_CHECK(!lem_resp_at_boundary(&r->p), "a boundary after an error");
    r->failed = 1;
}

/* ------------------------------------------------------------------ */
/* Runs                                                                */
/* ------------------------------------------------------------------ */

static void feed(run_t *r, const char *in, size_t len)
{
    size_t off = 0, stalls = 0;

    while (off < len && !r->failed) {
        lem_imap_piece_t pc;
        apr_size_t used = len + 1;
        lem_imap_ev_t ev = lem_resp_next(&r->p, in + off, len - off, &used,
                                         &pc);

        FZ_CHECK(used <= len - off, "used %zu of %zu", used, len - off);
        FZ_CHECK(++r->calls <= 3 * r->size + 8, "%zu calls for %zu bytes",
                 r->calls, r->size);
        stalls = used ? 0 : stalls + 1;
        FZ_CHECK(stalls <= 1, "two events in a row took no input");
        r->consumed += used;
        switch (ev) {
        case LEM_IMAP_NEED_MORE:
            FZ_CHECK(used == len - off, "NEED_MORE with input left");
            return;
        case LEM_IMAP_TEXT:
            on_text(r, in, len, &pc);
            break;
        case LEM_IMAP_LITERAL:
            on_literal(r, in + off, &pc);
            break;
        case LEM_IMAP_ERROR:
            on_error(r);
            return;
        default:
            FZ_CHECK(0, "event %d", (int)ev);
        }
        off += used;
    }
}

/*
 * At the end: a boundary exactly when the last response ended. A line
 * may have been cut anywhere, so what was taken and not yet handed out
 * (a head being gathered, a CR held back) is logged by size only.
 */
static void finish(run_t *r)
{
    int boundary = lem_resp_at_boundary(&r->p);

    if (!r->failed) {
        FZ_CHECK(r->consumed == r->size, "input left over");
        FZ_CHECK(boundary == (r->emitted == r->size && r->want_first
                              && !r->line_open && r->lit_left == 0),
                 "at_boundary %d after %zu of %zu bytes handed out",
                 boundary, r->emitted, r->size);
        FZ_CHECK(r->size - r->emitted <= sizeof(r->p.head),
                 "%zu bytes held back", r->size - r->emitted);
    }
    fz_log_begin(&r->log, REC_END);
    fz_log_u64(&r->log, (uint64_t)boundary);
}

static void run(run_t *r, fz_cut_t cut, const uint8_t *stream, size_t size)
{
    fz_slicer_t sl;
    size_t off = 0;

    memset(r, 0, sizeof(*r));
    r->stream = stream;
    r->size = size;
    r->want_first = 1;
    fz_log_init(&r->log);
    lem_resp_init(&r->p);
    FZ_CHECK(lem_resp_at_boundary(&r->p), "no boundary at the start");

    fz_slicer_init(&sl, cut, stream, size);
    while (off < size && !r->failed) {
        size_t n = fz_slicer_next(&sl, size - off);
        char *slice = fz_slice(stream + off, n);

        feed(r, slice, n);
        free(slice);
        off += n;
    }
    finish(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_t whole, sliced;

    run(&whole, FZ_WHOLE, data, size);

    run(&sliced, FZ_BYTES, data, size);
    fz_log_same(&whole.log, &sliced.log, "whole and byte-wise feeds");
    fz_log_free(&sliced.log);

    run(&sliced, FZ_RANDOM, data, size);
    fz_log_same(&whole.log, &sliced.log, "whole and sliced feeds");
    fz_log_free(&sliced.log);

    fz_log_free(&whole.log);
    return 0;
}
