/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

/* ------------------------------------------------------------------ */
/* Slices                                                              */
/* ------------------------------------------------------------------ */

/* FNV-1a over the input: the same input always gets the same cuts. */
static uint64_t seed_of(const uint8_t *data, size_t size)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i;

    for (i = 0; i < size; i++) {
        h = (h ^ data[i]) * 0x100000001b3ULL;
    }
    return h ? h : 1;
}

/* xorshift64*: small and good enough to pick slice lengths. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dULL;
}

void fz_slicer_init(fz_slicer_t *s, fz_cut_t cut, const uint8_t *data,
                    size_t size)
{
    memset(s, 0, sizeof(*s));
    s->cut = cut;
    s->rng = seed_of(data, size);
}

void fz_slicer_list(fz_slicer_t *s, const uint8_t *list, size_t n)
{
    s->cut = FZ_LIST;
    s->list = list;
    s->list_len = n;
    s->at = 0;
}

/*
 * Mostly short slices, where cuts land inside CRLFs, markers and heads;
 * now and then a long one, so that several events come from one slice.
 */
static size_t random_length(fz_slicer_t *s, size_t left)
{
    uint64_t r = next_random(&s->rng);

    switch (r % 10) {
    case 0: case 1: case 2: case 3: case 4:
        return 1 + (size_t)((r >> 8) % 8);
    case 5: case 6: case 7:
        return 1 + (size_t)((r >> 8) % 64);
    default:
        return 1 + (size_t)((r >> 8) % left);
    }
}

size_t fz_slicer_next(fz_slicer_t *s, size_t left)
{
    size_t n = left;

    switch (s->cut) {
    case FZ_BYTES:
        n = 1;
        break;
    case FZ_RANDOM:
        n = random_length(s, left);
        break;
    case FZ_LIST:
        if (s->list_len > 0) {
            n = (size_t)s->list[s->at] + 1;
            s->at = (s->at + 1) % s->list_len;
        }
        break;
    default:
        break;
    }
    return n < left ? n : left;
}

char *fz_slice(const uint8_t *data, size_t len)
{
    /* malloc(0) still gives a block ASan guards: no byte may be read */
    char *p = malloc(len);

    if (!p && len > 0) {
        fprintf(stderr, "fuzz: out of memory\n");
        abort();
    }
    if (len > 0) {
        memcpy(p, data, len);
    }
    return p;
}

/* ------------------------------------------------------------------ */
/* The log                                                             */
/* ------------------------------------------------------------------ */

void fz_log_init(fz_log_t *log)
{
    memset(log, 0, sizeof(*log));
}

void fz_log_free(fz_log_t *log)
{
    free(log->buf);
    fz_log_init(log);
}

static void log_put(fz_log_t *log, const void *data, size_t len)
{
    if (log->len + len > log->cap) {
        size_t cap = log->cap ? log->cap : 256;

        while (cap < log->len + len) {
            cap *= 2;
        }
        log->buf = realloc(log->buf, cap);
        if (!log->buf) {
            fprintf(stderr, "fuzz: out of memory\n");
            abort();
        }
        log->cap = cap;
    }
    if (len > 0) {
        memcpy(log->buf + log->len, data, len);
        log->len += len;
    }
}

void fz_log_begin(fz_log_t *log, int kind)
{
    unsigned char k = (unsigned char)kind;

    log->data_at = 0;
    log_put(log, &k, 1);
}

void fz_log_u64(fz_log_t *log, uint64_t v)
{
    log_put(log, &v, sizeof(v));
}

void fz_log_str(fz_log_t *log, const char *s)
{
    uint64_t n = strlen(s);

    fz_log_u64(log, n);
    log_put(log, s, (size_t)n);
}

void fz_log_bytes(fz_log_t *log, const void *data, size_t len)
{
    fz_log_u64(log, len);
    log_put(log, data, len);
}

void fz_log_data(fz_log_t *log, const void *data, size_t len)
{
    uint64_t total;

    if (log->data_at == 0) {
        total = 0;
        log->data_at = log->len + 1;
        log_put(log, &total, sizeof(total));
    }
    memcpy(&total, log->buf + log->data_at - 1, sizeof(total));
    total += len;
    memcpy(log->buf + log->data_at - 1, &total, sizeof(total));
    log_put(log, data, len);
}

static void dump_around(const char *name, const fz_log_t *log, size_t at)
{
    size_t from = at > 32 ? at - 32 : 0, to = at + 32, i;

    fprintf(stderr, "  %s (%zu bytes), from offset %zu:\n   ", name,
            log->len, from);
    for (i = from; i < to && i < log->len; i++) {
        fprintf(stderr, "%s%02x", i == at ? " [" : " ", log->buf[i]);
    }
    fprintf(stderr, "\n");
}

void fz_log_same(const fz_log_t *a, const fz_log_t *b, const char *what)
{
    size_t i = 0;

    while (i < a->len && i < b->len && a->buf[i] == b->buf[i]) {
        i++;
    }
    if (i == a->len && i == b->len) {
        return;
    }
    fprintf(stderr, "fuzz: the event logs of %s differ at byte %zu\n",
            what, i);
    dump_around("first", a, i);
    dump_around("second", b, i);
    abort();
}

/* ------------------------------------------------------------------ */
/* Output gathered in memory                                           */
/* ------------------------------------------------------------------ */

void fz_buf_put(fz_buf_t *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;

        while (cap < b->len + len + 1) {
            cap *= 2;
        }
        b->data = realloc(b->data, cap);
        if (!b->data) {
            fprintf(stderr, "fuzz: out of memory\n");
            abort();
        }
        b->cap = cap;
    }
    if (len > 0) {
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    b->data[b->len] = '\0';
}

void fz_buf_free(fz_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ------------------------------------------------------------------ */
/* Failing, and small judges                                           */
/* ------------------------------------------------------------------ */

void fz_fail(const char *file, int line, const char *cond,
             const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "fuzz: %s:%d: broken promise: %s\n  ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    abort();
}

int fz_ends_crlf(const char *s, size_t n)
{
    return n >= 2 && s[n - 2] == '\r' && s[n - 1] == '\n';
}

int fz_imap_atom_char(unsigned char c)
{
    /* CTL and SP, and what is not CHAR at all */
    if (c <= 0x20 || c >= 0x7f) {
        return 0;
    }
    /* "(" / ")" / "{" / list-wildcards / quoted-specials / resp-specials */
    return strchr("(){%*\"\\]", c) == NULL;
}

int fz_imap_literal(const char *s, size_t n, uint64_t *num, int *overflow)
{
    size_t end = n, digits = 0, i;
    int plus = 0;

    *num = 0;
    *overflow = 0;
    if (end == 0 || s[end - 1] != '}') {
        return 0;
    }
    end--;
    if (end > 0 && s[end - 1] == '+') {
        plus = 1;
        end--;
    }
    while (digits < end && s[end - 1 - digits] >= '0'
           && s[end - 1 - digits] <= '9') {
        digits++;
    }
    if (digits == 0 || digits == end || s[end - 1 - digits] != '{') {
        return 0;
    }
    for (i = end - digits; i < end; i++) {
        unsigned d = (unsigned)(s[i] - '0');

        if (*num > (UINT64_MAX - d) / 10) {
            *overflow = 1;
        }
        else if (!*overflow) {
            *num = *num * 10 + d;
        }
    }
    return plus ? 2 : 1;
}
