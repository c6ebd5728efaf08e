/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * Fuzz target: the SMTP reply framing, lem_smtp_reply_* of lem_smtp.h,
 * and lem_smtp_ehlo_has() on every line it returns.
 *
 * Input: the server's stream, fed whole, a byte at a time and in slices
 * of lengths drawn from the input. Each run is held to lem_smtp.h:
 * `*used` within the slice and all of it on NEED_MORE, a bounded number
 * of calls, lines whole with one CRLF, a code and separator as RFC 5321
 * section 4.2 writes them, one code per reply, `text` inside the line,
 * every byte handed out in order and none invented, and an error that
 * sticks. The runs must agree.
 */

#include <stdlib.h>
#include <string.h>

#include "lem_smtp.h"
#include "fuzz_common.h"

/* fz_log_t record kinds */
enum { REC_LINE = 1, REC_ERROR, REC_END };

typedef struct {
    const uint8_t    *stream;
    size_t            size;
    lem_smtp_reply_t *p;            /* on the heap: ASan guards its line */
    fz_log_t          log;

    size_t            consumed;
    size_t            emitted;
    size_t            calls;
    int               reply_code;   /* of the reply under way, or 0 */
    int               failed;
} run_t;

/* ------------------------------------------------------------------ */
/* Lines                                                               */
/* ------------------------------------------------------------------ */

static int same_ci(const char *a, const char *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char x = (a[i] >= 'a' && a[i] <= 'z') ? (char)(a[i] - 32) : a[i];
        char y = (b[i] >= 'a' && b[i] <= 'z') ? (char)(b[i] - 32) : b[i];

        if (x != y) {
            return 0;
        }
    }
    return 1;
}

/* RFC 5321, 4.1.1.1: the keyword is the text's first word, any case. */
static void check_ehlo(const lem_smtp_reply_t *p)
{
    static const char *const keywords[] = {
        "PIPELINING", "8BITMIME", "CHUNKING", "SIZE", "AUTH", "X"
    };
    size_t k = 0, i;

    while (k < p->text_len && p->text[k] != ' ') {
        k++;
    }
    for (i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
        size_t n = strlen(keywords[i]);
        int want = (k == n && same_ci(p->text, keywords[i], n));

        FZ_CHECK(lem_smtp_ehlo_has(p->text, p->text_len, keywords[i])
                 == want, "ehlo_has(\"%.*s\", %s) is not %d",
                 (int)p->text_len, p->text, keywords[i], want);
    }
}

/* RFC 5321, 4.2: Reply-code [ ("-" / SP) textstring ] CRLF. */
static void check_code(run_t *r, const char *s, size_t n,
                       const lem_smtp_piece_t *pc)
{
    const lem_smtp_reply_t *p = r->p;
    int code;

    FZ_CHECK(n >= 3 && s[0] >= '1' && s[0] <= '5'
             && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9',
             "a line without a reply code passed");
    code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    FZ_CHECK(p->code == code, "code %d for \"%.3s\"", p->code, s);
    FZ_CHECK(n == 3 || s[3] == ' ' || s[3] == '-',
             "separator 0x%02x passed", (unsigned char)s[3]);
    FZ_CHECK(r->reply_code == 0 || r->reply_code == code,
             "code %d inside a reply of %d", code, r->reply_code);
    FZ_CHECK(pc->last == (n == 3 || s[3] == ' '), "last is %u", pc->last);
    FZ_CHECK(p->text == s + (n > 3 ? 4 : 3)
             && p->text_len == (n > 3 ? n - 4 : 0),
             "text at %td, %zu bytes, in a line of %zu",
             p->text - s, p->text_len, n);
    r->reply_code = pc->last ? 0 : code;
}

static void on_line(run_t *r, const lem_smtp_piece_t *pc)
{
    const char *s = pc->data, *buf = r->p->line;
    size_t n = pc->len, i;

    FZ_CHECK(s == buf && n <= LEM_SMTP_REPLY_MAX,
             "a line of %zu bytes outside the line buffer", n);
    FZ_CHECK(fz_ends_crlf(s, n), "a line without CRLF");
    for (i = 0; i + 2 < n; i++) {
        FZ_CHECK(s[i] != '\r' && s[i] != '\n', "CR or LF inside a line");
    }
    FZ_CHECK(r->emitted + n == r->consumed
             && memcmp(s, r->stream + r->emitted, n) == 0,
             "a line of %zu bytes is not the stream at %zu", n, r->emitted);
    r->emitted += n;
    check_code(r, s, n - 2, pc);
    check_ehlo(r->p);
    FZ_CHECK(lem_smtp_reply_at_boundary(r->p) == pc->last,
             "at_boundary is not last (%u)", pc->last);

    fz_log_begin(&r->log, REC_LINE);
    fz_log_u64(&r->log, (uint64_t)r->p->code);
    fz_log_u64(&r->log, pc->last);
    fz_log_data(&r->log, s, n);
}

static void on_error(run_t *r)
{
    const char *msg = r->p->error;
    apr_size_t used = 1;
    lem_smtp_piece_t pc;

    FZ_CHECK(msg && msg[0], "ERROR without a message");
    fz_log_begin(&r->log, REC_ERROR);
    fz_log_str(&r->log, msg);
    fz_log_u64(&r->log, r->emitted);
    FZ_CHECK(lem_smtp_reply_next(r->p, "250 OK\r\n", 8, &used, &pc)
             == LEM_SMTP_ERROR && used == 0 && r->p->error == msg,
             "the parser left its error state");
    FZ_CHECK(!lem_smtp_reply_at_boundary(r->p), "a boundary after an error");
    r->failed = 1;
}

/* ------------------------------------------------------------------ */
/* Runs                                                                */
/* ------------------------------------------------------------------ */

static void feed(run_t *r, const char *in, size_t len)
{
    size_t off = 0;

    while (off < len && !r->failed) {
        lem_smtp_piece_t pc;
        apr_size_t used = len + 1;
        lem_smtp_ev_t ev = lem_smtp_reply_next(r->p, in + off, len - off,
                                               &used, &pc);

        FZ_CHECK(used <= len - off, "used %zu of %zu", used, len - off);
        FZ_CHECK(++r->calls <= 2 * r->size + 8, "%zu calls for %zu bytes",
                 r->calls, r->size);
        r->consumed += used;
        switch (ev) {
        case LEM_SMTP_NEED_MORE:
            FZ_CHECK(used == len - off, "NEED_MORE with input left");
            return;
        case LEM_SMTP_LINE:
            FZ_CHECK(used > 0, "a line that took no input");
            on_line(r, &pc);
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

static void finish(run_t *r)
{
    int boundary = lem_smtp_reply_at_boundary(r->p);

    if (!r->failed) {
        FZ_CHECK(r->size - r->emitted <= LEM_SMTP_REPLY_MAX,
                 "%zu bytes held back", r->size - r->emitted);
        FZ_CHECK(boundary == (r->emitted == r->size && r->reply_code == 0),
                 "at_boundary %d after %zu of %zu bytes handed out",
                 boundary, r->emitted, r->size);
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
    r->p = malloc(sizeof(*r->p));
    fz_log_init(&r->log);
    lem_smtp_reply_init(r->p);
    FZ_CHECK(lem_smtp_reply_at_boundary(r->p), "no boundary at the start");

    fz_slicer_init(&sl, cut, stream, size);
    while (off < size && !r->failed) {
        size_t n = fz_slicer_next(&sl, size - off);
        char *slice = fz_slice(stream + off, n);

        feed(r, slice, n);
        free(slice);
        off += n;
    }
    finish(r);
    free(r->p);
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
