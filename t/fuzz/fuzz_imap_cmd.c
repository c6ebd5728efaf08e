/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * Fuzz target: the IMAP command framing, lem_cmd_* of lem_imap.h.
 *
 * Input: one byte of settings, then the client's stream.
 *
 *   bits 0-2  max_line, from line_sizes[]
 *   bits 3-4  max_literal, from literal_sizes[]
 *   bit  5    after an IDLE or AUTHENTICATE command the next line
 *             answers a continuation (lem_cmd_expect_line), as the
 *             module has it in in-band mode
 *
 * The stream is fed whole, a byte at a time and in slices of lengths
 * drawn from the input. Each run is held to lem_imap.h: `*used` within
 * the slice and all of it on NEED_MORE, a bounded number of calls,
 * segments whole and 7-bit, tag and name as RFC 3501 reads them, the
 * announced literal delivered exactly, every byte handed out in order
 * and none invented, and an error that sticks. The runs must agree.
 */

#include <stdlib.h>
#include <string.h>

#include "lem_imap.h"
#include "fuzz_common.h"

static const apr_size_t line_sizes[8] = {
    3, 8, 16, 40, 80, 128, 1024, 64 * 1024
};
static const apr_uint64_t literal_sizes[4] = {
    0, 7, 1000, APR_UINT64_MAX
};

/* fz_log_t record kinds */
enum { REC_TEXT = 1, REC_LITERAL, REC_ERROR, REC_END };

typedef struct {
    const uint8_t   *stream;
    size_t           size;
    lem_cmd_parser_t p;
    char            *line;
    int              raw_rule;
    fz_log_t         log;

    size_t           consumed;      /* stream bytes the parser took */
    size_t           emitted;       /* stream bytes handed out in pieces */
    size_t           calls;
    apr_uint64_t     lit_left;      /* announced literal octets to come */
    int              want_first;    /* the next segment starts a command */
    int              raw_next;      /* the next line answers "+" */
    unsigned         commands;
    int              failed;
} run_t;

/* ------------------------------------------------------------------ */
/* What a TEXT event must look like                                    */
/* ------------------------------------------------------------------ */

/* draft-maes-lemonade-http-binding-04, 2.1: 7-bit text, one CRLF. */
static void check_text_bytes(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i + 2 < n; i++) {
        unsigned char c = (unsigned char)s[i];

        FZ_CHECK(c != 0 && c < 0x80 && c != '\r' && c != '\n',
                 "byte 0x%02x at %zu of a %zu-byte segment", c, i, n);
    }
}

/* RFC 3501, 4.3: a quoted string ends on its line. */
static void check_quotes(const char *s, size_t n)
{
    int quoted = 0, escaped = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        if (escaped) {
            escaped = 0;
        }
        else if (quoted && s[i] == '\\') {
            escaped = 1;
        }
        else if (s[i] == '"') {
            quoted = !quoted;
        }
    }
    FZ_CHECK(!quoted, "a segment with an open quoted string passed");
}

/* RFC 3501, 9: command = tag SP command-name ..., as the parser said. */
static void check_head(const run_t *r, const char *s, size_t n)
{
    size_t t = strlen(r->p.tag), k = strlen(r->p.name), i;

    FZ_CHECK(t > 0 && t <= LEM_IMAP_TAG_MAX, "tag of %zu bytes", t);
    FZ_CHECK(k > 0 && k <= LEM_IMAP_NAME_MAX, "name of %zu bytes", k);
    FZ_CHECK(t + 1 + k <= n && memcmp(s, r->p.tag, t) == 0
             && s[t] == ' ', "tag \"%s\" is not how the line starts",
             r->p.tag);
    for (i = 0; i < t; i++) {
        FZ_CHECK(s[i] != '+' && (s[i] == ']'
                 || fz_imap_atom_char((unsigned char)s[i])),
                 "tag \"%s\" has a byte no tag may have", r->p.tag);
    }
    for (i = 0; i < k; i++) {
        char c = s[t + 1 + i];
        char up = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;

        FZ_CHECK(r->p.name[i] == up, "name \"%s\" is not the line's",
                 r->p.name);
    }
    /* the whole atom (or "UID" and the whole atom after it) */
    FZ_CHECK(!fz_imap_atom_char((unsigned char)s[t + 1 + k]),
             "name \"%s\" stops inside an atom", r->p.name);
}

/* RFC 3501, 9 / RFC 7888, 3: the marker before CRLF, read backwards. */
static void check_literal(const run_t *r, const char *s, size_t n)
{
    uint64_t num;
    int overflow;
    int kind = fz_imap_literal(s, n - 2, &num, &overflow);

    FZ_CHECK(!(kind && overflow), "a marker over 64 bits passed");
    FZ_CHECK((int)r->p.literal == kind
             && r->p.literal_len == (kind ? num : 0),
             "literal %d/%llu announced, the line says %d/%llu",
             (int)r->p.literal, (unsigned long long)r->p.literal_len,
             kind, (unsigned long long)num);
    FZ_CHECK(r->p.literal_len <= r->p.max_literal,
             "literal of %llu over max_literal",
             (unsigned long long)r->p.literal_len);
}

static void log_text(run_t *r, const lem_imap_piece_t *pc)
{
    fz_log_begin(&r->log, REC_TEXT);
    fz_log_u64(&r->log, pc->first | pc->line_end << 1 | pc->last << 2);
    fz_log_str(&r->log, r->p.tag);
    fz_log_str(&r->log, r->p.name);
    fz_log_u64(&r->log, (uint64_t)r->p.literal);
    fz_log_u64(&r->log, r->p.literal_len);
    fz_log_u64(&r->log, r->p.commands);
    fz_log_data(&r->log, pc->data, pc->len);
}

/* Handed out in order: the next bytes of the stream, nothing else. */
static void check_lossless(run_t *r, const lem_imap_piece_t *pc)
{
    FZ_CHECK(r->emitted + pc->len <= r->consumed
             && memcmp(pc->data, r->stream + r->emitted, pc->len) == 0,
             "a piece of %zu bytes is not the stream at %zu",
             pc->len, r->emitted);
    r->emitted += pc->len;
    /* segments and literals leave nothing behind in the parser */
    FZ_CHECK(r->emitted == r->consumed, "%zu bytes taken, %zu handed out",
             r->consumed, r->emitted);
}

static void on_text(run_t *r, const lem_imap_piece_t *pc)
{
    const char *s = pc->data;
    size_t n = pc->len;

    FZ_CHECK(s >= r->line && n <= r->p.max_line
             && s + n <= r->line + r->p.max_line,
             "a segment of %zu bytes outside the line buffer", n);
    FZ_CHECK(pc->line_end && fz_ends_crlf(s, n),
             "a segment that does not end in CRLF");
    FZ_CHECK(r->lit_left == 0, "a segment with %llu literal octets due",
             (unsigned long long)r->lit_left);
    FZ_CHECK(pc->first == r->want_first, "first is %u", pc->first);
    check_text_bytes(s, n);
    check_lossless(r, pc);
    log_text(r, pc);

    if (r->raw_next) {
        FZ_CHECK(pc->first && pc->last && !r->p.tag[0] && !r->p.name[0]
                 && r->p.literal == LEM_LITERAL_NONE,
                 "an answer line read as a command");
        r->raw_next = 0;
        return;
    }
    check_quotes(s, n - 2);
    if (pc->first) {
        check_head(r, s, n - 2);
    }
    check_literal(r, s, n);
    FZ_CHECK(pc->last == (r->p.literal == LEM_LITERAL_NONE),
             "last is %u with literal %d", pc->last, (int)r->p.literal);
    r->commands += pc->last;
    FZ_CHECK(r->p.commands == r->commands, "commands %u, counted %u",
             r->p.commands, r->commands);
    r->want_first = pc->last;
    r->lit_left = r->p.literal_len;

    /* the module's in-band rule for lines that answer "+" */
    if (r->raw_rule && pc->last && (!strcmp(r->p.name, "IDLE")
                                    || !strcmp(r->p.name, "AUTHENTICATE"))) {
        FZ_CHECK(lem_cmd_at_boundary(&r->p), "no boundary after a command");
        lem_cmd_expect_line(&r->p);
        r->raw_next = 1;
    }
}

/* ------------------------------------------------------------------ */
/* LITERAL and ERROR events                                            */
/* ------------------------------------------------------------------ */

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
    fz_log_u64(&r->log, r->p.limit_hit);
    fz_log_u64(&r->log, r->emitted);

    /* lem_imap.h: a parser stays in error, taking nothing */
    FZ_CHECK(lem_cmd_next(&r->p, "a1 NOOP\r\n", 9, &used, &pc)
             == LEM_IMAP_ERROR && used == 0 && r->p.error == msg,
             "the parser left its error state");
    FZ_CHECK(!lem_cmd_at_boundary(&r->p), "a boundary after an error");
    r->failed = 1;
}

/* ------------------------------------------------------------------ */
/* Runs                                                                */
/* ------------------------------------------------------------------ */

/* Feed one slice until the parser wants more or fails. */
static void feed(run_t *r, const char *in, size_t len)
{
    size_t off = 0, stalls = 0;

    while (off < len && !r->failed) {
        lem_imap_piece_t pc;
        apr_size_t used = len + 1;
        lem_imap_ev_t ev = lem_cmd_next(&r->p, in + off, len - off, &used,
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
            on_text(r, &pc);
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

/* At the end: a boundary exactly when everything went out whole. */
static void finish(run_t *r)
{
    int boundary = lem_cmd_at_boundary(&r->p);

    if (!r->failed) {
        FZ_CHECK(boundary == (r->emitted == r->size && r->want_first
                              && r->lit_left == 0),
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
    r->raw_rule = (settings >> 5) & 1;
    r->want_first = 1;
    r->line = malloc(max_line);
    fz_log_init(&r->log);
    lem_cmd_init(&r->p, r->line, max_line,
                 literal_sizes[(settings >> 3) & 3]);
    FZ_CHECK(lem_cmd_at_boundary(&r->p), "no boundary at the start");

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
