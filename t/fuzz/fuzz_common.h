/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

/*
 * What the libFuzzer targets of t/fuzz share.
 *
 * Every framing target feeds one input to a fresh parser several times,
 * cut into slices in different ways, checks each run against the
 * contract its header states, and requires the same log of events from
 * every run: a push parser must not care where its input was cut.
 *
 * A broken promise aborts the process with a message on stderr, which
 * libFuzzer turns into a reproducer file (see t/fuzz/run).
 */

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ */
/* Cutting a stream into slices                                        */
/* ------------------------------------------------------------------ */

typedef enum {
    FZ_WHOLE = 0,       /* one slice holding the whole stream */
    FZ_BYTES,           /* one byte per slice */
    FZ_RANDOM,          /* lengths from a generator seeded by the input */
    FZ_LIST             /* lengths from a list of bytes, cycled */
} fz_cut_t;

typedef struct {
    fz_cut_t        cut;
    uint64_t        rng;        /* FZ_RANDOM: generator state */
    const uint8_t  *list;       /* FZ_LIST: lengths less one */
    size_t          list_len;
    size_t          at;         /* FZ_LIST: next entry */
} fz_slicer_t;

/* Prepare a cut; `data` seeds FZ_RANDOM, so a run can be repeated. */
void fz_slicer_init(fz_slicer_t *s, fz_cut_t cut, const uint8_t *data,
                    size_t size);

/* FZ_LIST: each byte b of `list` is a slice of b + 1 bytes. */
void fz_slicer_list(fz_slicer_t *s, const uint8_t *list, size_t n);

/* Length of the next slice, 1..left (left > 0). */
size_t fz_slicer_next(fz_slicer_t *s, size_t left);

/*
 * A slice in a heap block of exactly `len` bytes, so that AddressSanitizer
 * stops a parser that reads one byte past what it was given. Free it with
 * free(); a piece a parser returned from it is dead with it.
 */
char *fz_slice(const uint8_t *data, size_t len);

/* ------------------------------------------------------------------ */
/* The log two runs are compared by                                    */
/* ------------------------------------------------------------------ */

/*
 * Records of bytes: a kind, fields, then data that may grow over several
 * events (the pieces of one literal, say), so that runs cut differently
 * still write the same records.
 */
typedef struct {
    unsigned char *buf;
    size_t         len;
    size_t         cap;
    size_t         data_at;     /* open record: offset of its data length
                                 * plus one, or 0 when no data yet */
} fz_log_t;

void fz_log_init(fz_log_t *log);
void fz_log_free(fz_log_t *log);

/* Start a record of `kind` (a small number of the target's own). */
void fz_log_begin(fz_log_t *log, int kind);
void fz_log_u64(fz_log_t *log, uint64_t v);
void fz_log_str(fz_log_t *log, const char *s);

/* A field of bytes: its length, then the bytes. */
void fz_log_bytes(fz_log_t *log, const void *data, size_t len);

/* Append to the data of the record begun last; fields come before it. */
void fz_log_data(fz_log_t *log, const void *data, size_t len);

/* Abort, showing where, if `a` and `b` differ; `what` names the runs. */
void fz_log_same(const fz_log_t *a, const fz_log_t *b, const char *what);

/* ------------------------------------------------------------------ */
/* Output gathered in memory                                           */
/* ------------------------------------------------------------------ */

/* What a writer wrote, on the heap, NUL-terminated after `len` bytes. */
typedef struct {
    char   *data;
    size_t  len;
    size_t  cap;
} fz_buf_t;

void fz_buf_put(fz_buf_t *b, const void *data, size_t len);
void fz_buf_free(fz_buf_t *b);

/* ------------------------------------------------------------------ */
/* Failing                                                             */
/* ------------------------------------------------------------------ */

#if defined(__GNUC__)
#define FZ_NORETURN __attribute__((noreturn))
#define FZ_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define FZ_NORETURN
#define FZ_PRINTF(f, a)
#endif

/* Print what broke and abort (libFuzzer keeps the input). */
FZ_NORETURN FZ_PRINTF(4, 5)
void fz_fail(const char *file, int line, const char *cond,
             const char *fmt, ...);

/* Check a promise; the message says which and with what values. */
#define FZ_CHECK(cond, ...) \
    do { \
        if (!(cond)) { \
            fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); \
        } \
    } while (0)

/* Non-zero when the n bytes at s end in CRLF. */
int fz_ends_crlf(const char *s, size_t n);

/*
 * RFC 3501, 9: ATOM-CHAR = <any CHAR except atom-specials>, written out
 * here on its own so that the targets judge the parser by the grammar
 * rather than by its own code.
 */
int fz_imap_atom_char(unsigned char c);

/*
 * RFC 3501, 9 and RFC 7888, 3: the literal a line announces, by reading
 * its last bytes (CRLF excluded) backwards: "{" 1*DIGIT ["+"] "}".
 * Returns 0 for none, 1 for "{n}", 2 for "{n+}"; `*n` is the number and
 * `*overflow` is set when it does not fit 64 bits.
 */
int fz_imap_literal(const char *s, size_t n, uint64_t *num, int *overflow);

#endif /* FUZZ_COMMON_H */
