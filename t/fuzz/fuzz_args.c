/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * Fuzz target: the IMAP argument tree, lem_args.h: its push parser and
 * its writer, which the SOAP binding relies on to keep one command one
 * command.
 *
 * Input: one byte of settings, then the rest.
 *
 *   bits 0-1  0: parse commands, 1: responses, 2: plain arguments
 *             3: build a tree from the rest and write it as a command
 *
 * Parsing: the stream is fed whole and in slices of lengths drawn from
 * the input, message after message; both runs must give the same trees
 * and the same error. Each message parsed is written back: the text must
 * parse again to the same tree, and a command's text must frame as one
 * command (lem_cmd_*).
 *
 * Building: the rest is read as a little program of nodes (see build());
 * whatever tree it makes, lem_args_write_command() either refuses it or
 * writes text that frames as exactly one command with the given tag.
 */

#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "lem_args.h"
#include "lem_imap.h"
#include "fuzz_common.h"

#define MAX_LITERAL   4096
#define MAX_MESSAGES  64

/* fz_log_t record kinds */
enum { REC_MSG = 1, REC_NODE, REC_KIDS, REC_KIDS_END, REC_ERROR, REC_END };

static apr_pool_t *root;

static apr_status_t to_buf(void *ctx, const char *data, apr_size_t len)
{
    fz_buf_put(ctx, data, len);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Trees, as a log                                                     */
/* ------------------------------------------------------------------ */

static void log_tree(fz_log_t *log, const lem_arg_t *a, int depth)
{
    FZ_CHECK(depth <= LEM_ARGS_MAX_DEPTH + 1, "a tree %d deep", depth);
    for (; a; a = a->next) {
        FZ_CHECK(!a->data || a->data[a->len] == '\0',
                 "a node's copy is not NUL-terminated");
        fz_log_begin(log, REC_NODE);
        fz_log_u64(log, (uint64_t)a->kind | a->glued << 8
                        | a->literal8 << 9 | a->nonsync << 10);
        /* NIL is NIL in any case; the writer spells it in capitals */
        if (a->kind != LEM_ARG_NIL) {
            fz_log_bytes(log, a->data ? a->data : "", a->data ? a->len : 0);
        }
        if (a->kids) {
            FZ_CHECK(a->kind == LEM_ARG_LIST || a->kind == LEM_ARG_SECTION,
                     "kids under a node of kind %d", (int)a->kind);
            fz_log_begin(log, REC_KIDS);
            log_tree(log, a->kids, depth + 1);
            fz_log_begin(log, REC_KIDS_END);
        }
    }
}

static void log_msg(fz_log_t *log, const lem_args_msg_t *m)
{
    fz_log_begin(log, REC_MSG);
    fz_log_u64(log, (uint64_t)m->kind);
    fz_log_str(log, m->tag ? m->tag : "");
    fz_log_str(log, m->name ? m->name : "");
    fz_log_u64(log, (uint64_t)m->status);
    log_tree(log, m->args, 1);
}

/* ------------------------------------------------------------------ */
/* Written text                                                        */
/* ------------------------------------------------------------------ */

/*
 * lem_args.h: "Whatever a tree holds, its text is exactly one command."
 * Framed as the module frames a client's commands, with every limit
 * wide open, `text` must be one whole command tagged `tag`.
 */
static void check_one_command(const char *text, size_t len, const char *tag)
{
    lem_cmd_parser_t cp;
    lem_imap_piece_t pc;
    char *line = malloc(len + 1);
    size_t off = 0;

    lem_cmd_init(&cp, line, len + 1, APR_UINT64_MAX);
    while (off < len) {
        apr_size_t used = 0;
        lem_imap_ev_t ev = lem_cmd_next(&cp, text + off, len - off, &used,
                                        &pc);

        FZ_CHECK(ev != LEM_IMAP_ERROR, "written text does not frame (%s): "
                 "\"%.*s\"", cp.error, (int)(len < 200 ? len : 200), text);
        FZ_CHECK(ev != LEM_IMAP_NEED_MORE || used == len - off,
                 "NEED_MORE with input left");
        if (ev == LEM_IMAP_TEXT && pc.first) {
            FZ_CHECK(!strcmp(cp.tag, tag), "tag \"%s\" framed as \"%s\"",
                     tag, cp.tag);
        }
        off += used;
        FZ_CHECK(cp.commands == 0 || off == len,
                 "one command ends %zu bytes into %zu: \"%.*s\"", off, len,
                 (int)(len < 200 ? len : 200), text);
    }
    FZ_CHECK(cp.commands == 1 && lem_cmd_at_boundary(&cp),
             "%u commands framed in \"%.*s\"", cp.commands,
             (int)(len < 200 ? len : 200), text);
    free(line);
}

/*
 * RFC 3501 9: a command name is an atom. lem_args.c takes "\", "%" and
 * "*" in names too (its atoms allow them for flags and wildcards), which
 * lem_cmd_* refuses; such names are left out of the framing check.
 */
static int rfc_name(const char *name)
{
    for (; *name; name++) {
        if (*name != ' ' && !fz_imap_atom_char((unsigned char)*name)) {
            return 0;
        }
    }
    return 1;
}

/*
 * Non-zero if the tree holds an atom with an 8-bit octet: the parser
 * takes one from a server, the writer refuses it (command text is 7-bit,
 * draft 2.1), so there is no command to frame. Quoted strings with 8-bit
 * octets are written as literals, and text nodes the writer cannot keep
 * on one line are refused.
 */
static int unframable(const lem_arg_t *a)
{
    size_t i;

    for (; a; a = a->next) {
        if (a->kids && unframable(a->kids)) {
            return 1;
        }
        if (a->kind != LEM_ARG_ATOM || !a->data) {
            continue;
        }
        for (i = 0; i < a->len; i++) {
            if ((unsigned char)a->data[i] >= 0x80) {
                return 1;
            }
        }
    }
    return 0;
}

/* Non-zero if a quoted string holds an 8-bit octet: the writer sends it
 * as a literal (draft 2.1: command text is 7-bit), so it comes back as
 * another kind of node with the same octets. */
static int quoted_8bit(const lem_arg_t *a)
{
    size_t i;

    for (; a; a = a->next) {
        if (a->kids && quoted_8bit(a->kids)) {
            return 1;
        }
        for (i = 0; a->kind == LEM_ARG_QUOTED && i < a->len; i++) {
            if ((unsigned char)a->data[i] >= 0x80) {
                return 1;
            }
        }
    }
    return 0;
}

/* A parsed message, written back, must parse to the same tree. */
static void check_round_trip(const lem_args_msg_t *m, lem_args_mode_t mode)
{
    lem_sink_t sink = { to_buf, NULL };
    fz_buf_t text = { 0 };
    const lem_args_msg_t *again;
    const char *error = NULL;
    apr_pool_t *pool;
    fz_log_t a, b;

    sink.ctx = &text;
    if (quoted_8bit(m->args)) {
        return;
    }
    FZ_CHECK(lem_args_write_msg(m, &sink, &error) == APR_SUCCESS,
             "a parsed message cannot be written: %s", error);
    FZ_CHECK(fz_ends_crlf(text.data, text.len), "no CRLF at the end");
    /* XXX: "a2 " CRLF parses as a tagged response with no argument and
     * is written back as "a2" CRLF, which does not parse */
    if (!m->args && (m->kind == LEM_MSG_TAGGED
                     || m->kind == LEM_MSG_UNTAGGED)) {
        fz_buf_free(&text);
        return;
    }
    apr_pool_create(&pool, root);
    FZ_CHECK(lem_args_parse(pool, mode, text.data, text.len, &again, &error)
             == APR_SUCCESS, "written text does not parse (%s): \"%.*s\"",
             error, (int)(text.len < 200 ? text.len : 200), text.data);
    fz_log_init(&a);
    fz_log_init(&b);
    log_msg(&a, m);
    log_msg(&b, again);
    fz_log_same(&a, &b, "a message and its text parsed again");
    /* lem_cmd_* has limits of its own on tags and names: within them */
    if (mode == LEM_ARGS_COMMAND && strlen(m->tag) <= LEM_IMAP_TAG_MAX
        && strlen(m->name) <= LEM_IMAP_NAME_MAX && rfc_name(m->name)
        && !unframable(m->args)) {
        check_one_command(text.data, text.len, m->tag);
    }
    fz_log_free(&a);
    fz_log_free(&b);
    apr_pool_destroy(pool);
    fz_buf_free(&text);
}

/* ------------------------------------------------------------------ */
/* Parsing runs                                                        */
/* ------------------------------------------------------------------ */

typedef struct {
    lem_args_parser_t *ps;
    lem_args_mode_t    mode;
    fz_log_t           log;
    int                messages;
    int                stop;
    size_t             calls;
    size_t             size;
} run_t;

static void feed(run_t *r, const char *in, size_t len)
{
    size_t off = 0;

    while (off < len && !r->stop) {
        apr_size_t used = len + 1;
        lem_args_ev_t ev = lem_args_feed(r->ps, in + off, len - off, &used);

        FZ_CHECK(used <= len - off, "used %zu of %zu", used, len - off);
        FZ_CHECK(++r->calls <= 2 * r->size + 8, "%zu calls for %zu bytes",
                 r->calls, r->size);
        off += used;
        switch (ev) {
        case LEM_ARGS_NEED_MORE:
            FZ_CHECK(off == len, "NEED_MORE with input left");
            return;
        case LEM_ARGS_DONE:
            log_msg(&r->log, lem_args_msg(r->ps));
            check_round_trip(lem_args_msg(r->ps), r->mode);
            lem_args_parser_reset(r->ps, NULL);
            r->stop = ++r->messages >= MAX_MESSAGES;
            break;
        case LEM_ARGS_ERROR:
            FZ_CHECK(lem_args_error(r->ps) && lem_args_error(r->ps)[0],
                     "ERROR without a message");
            fz_log_begin(&r->log, REC_ERROR);
            fz_log_str(&r->log, lem_args_error(r->ps));
            r->stop = 1;
            return;
        default:
            FZ_CHECK(0, "event %d", (int)ev);
        }
    }
}

static void run(run_t *r, lem_args_mode_t mode, fz_cut_t cut,
                const uint8_t *stream, size_t size)
{
    apr_pool_t *pool;
    fz_slicer_t sl;
    size_t off = 0;

    memset(r, 0, sizeof(*r));
    apr_pool_create(&pool, root);
    r->mode = mode;
    r->size = size;
    r->ps = lem_args_parser_create(pool, mode, MAX_LITERAL);
    fz_log_init(&r->log);
    fz_slicer_init(&sl, cut, stream, size);
    while (off < size && !r->stop) {
        size_t n = fz_slicer_next(&sl, size - off);
        char *slice = fz_slice(stream + off, n);

        feed(r, slice, n);
        free(slice);
        off += n;
    }
    fz_log_begin(&r->log, REC_END);
    fz_log_u64(&r->log, (uint64_t)r->messages);
    apr_pool_destroy(pool);
}

/* ------------------------------------------------------------------ */
/* Building trees                                                      */
/* ------------------------------------------------------------------ */

typedef struct {
    const uint8_t *p;
    size_t         left;
} reader_t;

static unsigned next_byte(reader_t *rd)
{
    if (rd->left == 0) {
        return 0;
    }
    rd->left--;
    return *rd->p++;
}

/*
 * One node per op byte: its low nibble the kind (or a list closing, or
 * a value through lem_arg_value), bit 4 glued, bits 5-6 literal8 and
 * nonsync; leaf data is a length byte (mod 24) and that many bytes.
 */
static lem_arg_t *build(apr_pool_t *pool, reader_t *rd, int depth)
{
    lem_arg_list_t l;

    lem_arg_list_init(&l);
    while (rd->left > 0) {
        unsigned op = next_byte(rd), kind = op & 15;
        lem_arg_t *node;

        if (kind == 0 || kind == 15) {
            break;                          /* the list ends */
        }
        if (kind == LEM_ARG_LIST || kind == LEM_ARG_SECTION) {
            node = lem_arg_new(pool, (lem_arg_kind_t)kind, NULL, 0);
            if (depth < 8) {
                node->kids = build(pool, rd, depth + 1);
            }
        }
        else {
            size_t n = next_byte(rd) % 24;
            const char *data = (const char *)rd->p;

            n = n < rd->left ? n : rd->left;
            rd->p += n;
            rd->left -= n;
            node = kind > LEM_ARG_TEXT
                   ? lem_arg_value(pool, data, n)
                   : lem_arg_new(pool, (lem_arg_kind_t)kind, data, n);
        }
        node->glued = (op >> 4) & 1;
        node->literal8 |= (op >> 5) & 1;
        node->nonsync = (op >> 6) & 1;
        lem_arg_list_add(&l, node);
    }
    return l.first;
}

static void check_written_tree(const uint8_t *data, size_t size)
{
    static const char *const names[] = {
        "NOOP", "UID FETCH", "APPEND", "X-Y", "STORE"
    };
    reader_t rd = { data, size };
    lem_sink_t sink = { to_buf, NULL };
    fz_buf_t text = { 0 };
    const char *error = NULL, *name = names[next_byte(&rd) % 5];
    apr_pool_t *pool;
    lem_arg_t *args;

    apr_pool_create(&pool, root);
    args = build(pool, &rd, 1);
    sink.ctx = &text;
    if (lem_args_write_command("t1", name, args, &sink, &error)
        == APR_SUCCESS) {
        if (!unframable(args)) {
            check_one_command(text.data, text.len, "t1");
        }
    }
    else {
        FZ_CHECK(error && error[0], "a refusal without a message");
    }
    fz_buf_free(&text);
    apr_pool_destroy(pool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const lem_args_mode_t modes[] = {
        LEM_ARGS_COMMAND, LEM_ARGS_RESPONSE, LEM_ARGS_PLAIN
    };
    run_t whole, sliced;
    unsigned how;

    if (!root) {
        apr_initialize();
        apr_pool_create(&root, NULL);
    }
    if (size < 1) {
        return 0;
    }
    how = data[0] & 3;
    if (how == 3) {
        check_written_tree(data + 1, size - 1);
        return 0;
    }
    run(&whole, modes[how], FZ_WHOLE, data + 1, size - 1);
    run(&sliced, modes[how], FZ_RANDOM, data + 1, size - 1);
    fz_log_same(&whole.log, &sliced.log, "whole and sliced feeds");
    fz_log_free(&whole.log);
    fz_log_free(&sliced.log);
    return 0;
}
