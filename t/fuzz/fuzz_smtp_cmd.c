/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * Fuzz target: the SMTP command framing, lem_smtp_cmd_* of lem_smtp.h.
 *
 * Input: one byte of settings, then the client's stream.
 *
 *   bits 0-2  max_line, from line_sizes[]
 *   bits 3-4  max_content, from content_sizes[]
 *   bit  5    play a server that refuses every DATA whose line has an
 *             odd length (lem_smtp_cmd_no_content)
 *   bit  6    play a server that answers "AUTH mech" without an initial
 *             response with 334 (lem_smtp_cmd_expect_line)
 *
 * The stream is fed whole, a byte at a time and in slices of lengths
 * drawn from the input. Each run is held to lem_smtp.h: `*used` within
 * the slice and all of it on NEED_MORE, a bounded number of calls, lines
 * whole, 7-bit and with the verb RFC 5321 reads, DATA content up to the
 * first end-of-data line and counted against max_content as promised,
 * BDAT chunks of exactly the announced size, every byte handed out in
 * order and none invented, and an error that sticks. The runs must
 * agree.
 */

#include <stdlib.h>
#include <string.h>

#include "lem_smtp.h"
#include "fuzz_common.h"

static const apr_size_t line_sizes[8] = {
    3, 8, 16, 40, 80, 512, 1024, 64 * 1024
};
static const apr_uint64_t content_sizes[4] = {
    0, 5, 100, APR_UINT64_MAX
};

/* fz_log_t record kinds */
enum { REC_LINE = 1, REC_CONTENT, REC_ERROR, REC_END };

/* What the octets after the last line are. */
enum { AFTER_NONE = 0, AFTER_DATA, AFTER_BDAT };

typedef struct {
    const uint8_t  *stream;
    size_t          size;
    lem_smtp_cmd_t  p;
    char           *line;
    uint8_t         settings;
    fz_log_t        log;

    size_t          consumed;
    size_t          emitted;
    size_t          calls;
    int             after;          /* AFTER_* */
    size_t          content_at;     /* stream offset of the content */
    apr_uint64_t    bdat_left;
    int             raw_next;       /* the next line is a SASL answer */
    unsigned        commands;
    int             failed;
} run_t;

/* ------------------------------------------------------------------ */
/* Lines                                                               */
/* ------------------------------------------------------------------ */

static char upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
}

/* RFC 5321, 2.3.8 and 2.4: US-ASCII, no NUL, one CRLF at the end. */
static void check_line_bytes(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i + 2 < n; i++) {
        unsigned char c = (unsigned char)s[i];

        FZ_CHECK(c != 0 && c < 0x80 && c != '\r' && c != '\n',
                 "byte 0x%02x at %zu of a %zu-byte line", c, i, n);
    }
}

/* RFC 5321, 4.1.1: the verb is the line's first word, letters only. */
static void check_verb(const run_t *r, const char *s, size_t n)
{
    size_t k = strlen(r->p.verb), i;

    FZ_CHECK(k > 0 && k <= LEM_SMTP_VERB_MAX, "verb of %zu bytes", k);
    FZ_CHECK(k <= n && (k == n || s[k] == ' '),
             "verb \"%s\" is not the line's first word", r->p.verb);
    for (i = 0; i < k; i++) {
        FZ_CHECK(((s[i] >= 'A' && s[i] <= 'Z')
                  || (s[i] >= 'a' && s[i] <= 'z'))
                 && r->p.verb[i] == upper(s[i]),
                 "verb \"%s\" for a line starting \"%.*s\"", r->p.verb,
                 (int)k, s);
    }
}

/*
 * RFC 3030, 2: "BDAT" SP 1*DIGIT [SP "LAST"]; what the parser read from
 * the line must be what the line says.
 */
static void check_bdat(const run_t *r, const char *s, size_t n)
{
    apr_uint64_t size = 0;
    size_t i = 5;

    FZ_CHECK(n >= 6 && s[4] == ' ', "BDAT without a size passed");
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        FZ_CHECK(size <= (APR_UINT64_MAX - (unsigned)(s[i] - '0')) / 10,
                 "a BDAT size over 64 bits passed");
        size = size * 10 + (unsigned)(s[i++] - '0');
    }
    FZ_CHECK(i > 5, "BDAT without digits passed");
    FZ_CHECK(r->p.bdat_len == size, "BDAT %llu read as %llu",
             (unsigned long long)size,
             (unsigned long long)r->p.bdat_len);
    FZ_CHECK(r->p.bdat_last == (i < n), "LAST is %d", r->p.bdat_last);
    FZ_CHECK(i == n || (n - i == 5 && s[i] == ' '
                        && upper(s[i + 1]) == 'L' && upper(s[i + 2]) == 'A'
                        && upper(s[i + 3]) == 'S' && upper(s[i + 4]) == 'T'),
             "BDAT with more than LAST passed");
    FZ_CHECK(size <= r->p.max_content, "BDAT %llu over max_content",
             (unsigned long long)size);
}

/* The server's side, as the settings byte plays it. */
static void answer_line(run_t *r, size_t n)
{
    if (r->after == AFTER_DATA && (r->settings & 0x20) && n % 2 == 1) {
        lem_smtp_cmd_no_content(&r->p);
        FZ_CHECK(lem_smtp_cmd_at_boundary(&r->p),
                 "no boundary after a refused DATA");
        r->after = AFTER_NONE;
    }
    if (!strcmp(r->p.verb, "AUTH") && (r->settings & 0x40)) {
        const char *line = r->line;
        size_t sp = 0, i;

        /* "AUTH" SP mechanism CRLF: one space, nothing after it */
        for (i = 0; i + 2 < n; i++) {
            sp += line[i] == ' ';
        }
        if (sp == 1) {
            FZ_CHECK(lem_smtp_cmd_at_boundary(&r->p),
                     "no boundary after AUTH");
            lem_smtp_cmd_expect_line(&r->p);
            r->raw_next = 1;
        }
    }
}

static void check_lossless(run_t *r, const lem_smtp_piece_t *pc)
{
    FZ_CHECK(r->emitted + pc->len <= r->consumed
             && memcmp(pc->data, r->stream + r->emitted, pc->len) == 0,
             "a piece of %zu bytes is not the stream at %zu",
             pc->len, r->emitted);
    r->emitted += pc->len;
    FZ_CHECK(r->emitted == r->consumed, "%zu bytes taken, %zu handed out",
             r->consumed, r->emitted);
}

static void on_line(run_t *r, const lem_smtp_piece_t *pc)
{
    const char *s = pc->data;
    size_t n = pc->len;

    FZ_CHECK(r->after == AFTER_NONE, "a line where content was due");
    FZ_CHECK(s >= r->line && n <= r->p.max_line
             && s + n <= r->line + r->p.max_line,
             "a line of %zu bytes outside the line buffer", n);
    FZ_CHECK(pc->last && fz_ends_crlf(s, n), "a line without CRLF");
    check_line_bytes(s, n);
    check_lossless(r, pc);

    fz_log_begin(&r->log, REC_LINE);
    fz_log_str(&r->log, r->p.verb);
    fz_log_u64(&r->log, r->p.bdat_len);
    fz_log_u64(&r->log, (uint64_t)r->p.bdat_last);
    fz_log_data(&r->log, s, n);

    if (r->raw_next) {
        FZ_CHECK(!r->p.verb[0], "a SASL answer read as a command");
        r->raw_next = 0;
        return;
    }
    FZ_CHECK(n > 2, "an empty line passed");
    check_verb(r, s, n - 2);
    r->commands++;
    FZ_CHECK(r->p.commands == r->commands, "commands %u, counted %u",
             r->p.commands, r->commands);
    r->content_at = r->emitted;
    if (!strcmp(r->p.verb, "DATA")) {
        r->after = AFTER_DATA;
    }
    else if (!strcmp(r->p.verb, "BDAT")) {
        check_bdat(r, s, n - 2);
        r->after = AFTER_BDAT;
        r->bdat_left = r->p.bdat_len;
    }
    answer_line(r, n);
}

/* ------------------------------------------------------------------ */
/* Content                                                             */
/* ------------------------------------------------------------------ */

/*
 * RFC 5321, 4.1.1.4: the content ends at the first "." CRLF that starts
 * a line, the content's first line included. `s` is all of it so far.
 * Returns the offset just past the end-of-data line, or 0 if none yet.
 */
static size_t end_of_data(const char *s, size_t n)
{
    size_t i;

    if (n >= 3 && memcmp(s, ".\r\n", 3) == 0) {
        return 3;
    }
    for (i = 0; i + 5 <= n; i++) {
        if (memcmp(s + i, "\r\n.\r\n", 5) == 0) {
            return i + 5;
        }
    }
    return 0;
}

static void on_data_content(run_t *r, const lem_smtp_piece_t *pc)
{
    const char *s = (const char *)r->stream + r->content_at;
    size_t n = r->emitted - r->content_at;
    size_t end = end_of_data(s, n);

    /* the last piece ends at the end-of-data line and no earlier one */
    FZ_CHECK(pc->last ? end == n : end == 0,
             "content of %zu bytes, last %u, end-of-data at %zu",
             n, pc->last, end);
    /* lem_smtp.h: max_content counts all but the final "." CRLF */
    FZ_CHECK((apr_uint64_t)(pc->last ? n - 3 : n) <= r->p.max_content
             || (!pc->last && n - r->p.max_content <= 2),
             "content of %zu bytes passed max_content %llu", n,
             (unsigned long long)r->p.max_content);
    if (pc->last) {
        r->after = AFTER_NONE;
    }
}

static void on_content(run_t *r, const char *at, const lem_smtp_piece_t *pc)
{
    FZ_CHECK(r->after != AFTER_NONE, "content nobody announced");
    FZ_CHECK(pc->data == at, "content not taken from the input");
    FZ_CHECK(pc->len > 0 || (r->after == AFTER_BDAT && r->bdat_left == 0
                             && pc->last),
             "an empty content piece");
    check_lossless(r, pc);
    if (r->emitted - pc->len == r->content_at) {
        fz_log_begin(&r->log, REC_CONTENT);
    }
    fz_log_data(&r->log, pc->data, pc->len);
    if (r->after == AFTER_DATA) {
        on_data_content(r, pc);
        return;
    }
    FZ_CHECK(pc->len <= r->bdat_left, "a chunk piece of %zu, %llu due",
             pc->len, (unsigned long long)r->bdat_left);
    r->bdat_left -= pc->len;
    FZ_CHECK(pc->last == (r->bdat_left == 0), "last %u with %llu due",
             pc->last, (unsigned long long)r->bdat_left);
    if (pc->last) {
        r->after = AFTER_NONE;
    }
}

static void on_error(run_t *r)
{
    const char *msg = r->p.error;
    apr_size_t used = 1;
    lem_smtp_piece_t pc;

    FZ_CHECK(msg && msg[0], "ERROR without a message");
    fz_log_begin(&r->log, REC_ERROR);
    fz_log_str(&r->log, msg);
    fz_log_u64(&r->log, r->p.limit_hit);
    fz_log_u64(&r->log, r->emitted);
    FZ_CHECK(lem_smtp_cmd_next(&r->p, "NOOP\r\n", 6, &used, &pc)
             == LEM_SMTP_ERROR && used == 0 && r->p.error == msg,
             "the parser left its error state");
    FZ_CHECK(!lem_smtp_cmd_at_boundary(&r->p), "a boundary after an error");
    r->failed = 1;
}

/* ------------------------------------------------------------------ */
/* Runs                                                                */
/* ------------------------------------------------------------------ */

static void feed(run_t *r, const char *in, size_t len)
{
    size_t off = 0, stalls = 0;

    while (off < len && !r->failed) {
        lem_smtp_piece_t pc;
        apr_size_t used = len + 1;
        lem_smtp_ev_t ev = lem_smtp_cmd_next(&r->p, in + off, len - off,
                                             &used, &pc);

        FZ_CHECK(used <= len - off, "used %zu of %zu", used, len - off);
        FZ_CHECK(++r->calls <= 3 * r->size + 8, "%zu calls for %zu bytes",
                 r->calls, r->size);
        stalls = used ? 0 : stalls + 1;
        FZ_CHECK(stalls <= 1, "two events in a row took no input");
        r->consumed += used;
        switch (ev) {
        case LEM_SMTP_NEED_MORE:
            FZ_CHECK(used == len - off, "NEED_MORE with input left");
            return;
        case LEM_SMTP_LINE:
            on_line(r, &pc);
            break;
        case LEM_SMTP_CONTENT:
            on_content(r, in + off, &pc);
            break;
        case LEM_SMTP_ERROR:
            on_error(r);
            return;
        default:
            FZ_CHECK(0, "event %d", (int)ev);
        }
        off += used;
    }
}

/*
 * At the end: a boundary exactly when no line and no content is under
 * way. An empty "BDAT 0" piece is only handed out on the next call with
 * input, so a stream ending right after "BDAT 0" is no boundary yet.
 */
static void finish(run_t *r)
{
    int boundary = lem_smtp_cmd_at_boundary(&r->p);

    if (!r->failed) {
        FZ_CHECK(boundary == (r->emitted == r->size
                              && r->after == AFTER_NONE),
                 "at_boundary %d after %zu of %zu bytes handed out",
                 boundary, r->emitted, r->size);
    }
    fz_log_begin(&r->log, REC_END);
    fz_log_u64(&r->log, (uint64_t)boundary);
    fz_log_u64(&r->log, r->p.commands);
}

static void run(run_t *r, fz_cut_t cut, uint8_t settings,
                const uint8_t *stream, size_t size)
{
    apr_size_t max_line = line_sizes[settings & 7];
    fz_slicer_t sl;
    size_t off = 0;

    memset(r, 0, sizeof(*r));
    r->stream = stream;
    r->size = size;
    r->settings = settings;
    r->line = malloc(max_line);
    fz_log_init(&r->log);
    lem_smtp_cmd_init(&r->p, r->line, max_line,
                      content_sizes[(settings >> 3) & 3]);
    FZ_CHECK(lem_smtp_cmd_at_boundary(&r->p), "no boundary at the start");

    fz_slicer_init(&sl, cut, stream, size);
    while (off < size && !r->failed) {
        size_t n = fz_slicer_next(&sl, size - off);
        char *slice = fz_slice(stream + off, n);

        feed(r, slice, n);
        free(slice);
        off += n;
    }
    finish(r);
    free(r->line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_t whole, sliced;

    if (size < 1) {
        return 0;
    }
    run(&whole, FZ_WHOLE, data[0], data + 1, size - 1);

    run(&sliced, FZ_BYTES, data[0], data + 1, size - 1);
    fz_log_same(&whole.log, &sliced.log, "whole and byte-wise feeds");
    fz_log_free(&sliced.log);

    run(&sliced, FZ_RANDOM, data[0], data + 1, size - 1);
    fz_log_same(&whole.log, &sliced.log, "whole and sliced feeds");
    fz_log_free(&sliced.log);

    fz_log_free(&whole.log);
    return 0;
}
