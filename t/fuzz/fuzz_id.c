/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * Fuzz target: the session id parser, lem_id_parse() of lem_id.h, which
 * reads the cookie value every client sends.
 *
 * Input: a cookie value, in a heap block of its exact size (the parser
 * is given a length and must not look past it). The verdict must match
 * the grammar of lem_id.h read here on its own; an accepted value must
 * format back to itself, its ".ROUTE" aside. The first 20 bytes of the
 * input are also taken as an id and a slot, formatted and parsed back.
 */

#include <stdlib.h>
#include <string.h>

#include "lem_id.h"
#include "fuzz_common.h"

/*
 * lem_id.h:
 *   cookie-value = 32HEXDIG "-" slot   (lower-case hex)
 *   slot         = 1*8DIGIT            (no leading zeros)
 * and a ".ROUTE" from the first "." on is the balancer's.
 */
static int grammar_accepts(const char *s, size_t len, lem_id_t *want)
{
    const char *dot = memchr(s, '.', len);
    size_t end = dot ? (size_t)(dot - s) : len, i, digits;
    static const char hex[] = "0123456789abcdef";

    if (end < 2 * LEM_ID_BYTES + 2 || s[2 * LEM_ID_BYTES] != '-') {
        return 0;
    }
    for (i = 0; i < 2 * LEM_ID_BYTES; i++) {
        const char *h = s[i] ? strchr(hex, s[i]) : NULL;

        if (!h) {
            return 0;
        }
        if (i % 2 == 0) {
            want->bytes[i / 2] = (unsigned char)((h - hex) << 4);
        }
        else {
            want->bytes[i / 2] |= (unsigned char)(h - hex);
        }
    }
    digits = end - (2 * LEM_ID_BYTES + 1);
    if (digits > 8 || (digits > 1 && s[2 * LEM_ID_BYTES + 1] == '0')) {
        return 0;
    }
    want->slot = 0;
    for (i = 2 * LEM_ID_BYTES + 1; i < end; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        want->slot = want->slot * 10 + (apr_uint32_t)(s[i] - '0');
    }
    return 1;
}

static void check_parse(const uint8_t *data, size_t size)
{
    char *text = fz_slice(data, size);
    char back[LEM_ID_TEXT_MAX];
    lem_id_t got, want;
    int ok = lem_id_parse(&got, text, size) == APR_SUCCESS;
    const char *dot = memchr(text, '.', size);
    size_t end = dot ? (size_t)(dot - text) : size;

    FZ_CHECK(ok == grammar_accepts(text, size, &want),
             "lem_id_parse says %d to \"%.*s\"", ok,
             (int)(size < 80 ? size : 80), text);
    if (ok) {
        FZ_CHECK(memcmp(got.bytes, want.bytes, LEM_ID_BYTES) == 0
                 && got.slot == want.slot, "read a different id");
        FZ_CHECK(lem_id_equal(got.bytes, want.bytes), "lem_id_equal");
        lem_id_format(&got, back);
        FZ_CHECK(strlen(back) == end && memcmp(back, text, end) == 0,
                 "\"%.*s\" formats back as \"%s\"", (int)end, text, back);
    }
    free(text);
}

/* Any id and slot: format, then parse back to the same. */
static void check_round_trip(const uint8_t *data, size_t size)
{
    lem_id_t id, back;
    char text[LEM_ID_TEXT_MAX + 1];
    size_t n;

    if (size < LEM_ID_BYTES + 4) {
        return;
    }
    memcpy(id.bytes, data, LEM_ID_BYTES);
    memcpy(&id.slot, data + LEM_ID_BYTES, sizeof(id.slot));
    /* slot = 1*8DIGIT: the table never has 10^8 slots */
    id.slot %= 100000000u;
    memset(text, 0x7f, sizeof(text));
    lem_id_format(&id, text);
    n = strlen(text);
    FZ_CHECK(n < LEM_ID_TEXT_MAX && text[LEM_ID_TEXT_MAX] == 0x7f,
             "lem_id_format wrote %zu bytes", n);
    FZ_CHECK(lem_id_parse(&back, text, n) == APR_SUCCESS,
             "\"%s\" does not parse back", text);
    FZ_CHECK(memcmp(back.bytes, id.bytes, LEM_ID_BYTES) == 0
             && back.slot == id.slot, "\"%s\" parses to another id", text);
    back.bytes[data[0] % LEM_ID_BYTES] ^= 1;
    FZ_CHECK(!lem_id_equal(back.bytes, id.bytes), "lem_id_equal on a "
             "different id");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_parse(data, size);
    check_round_trip(data, size);
    return 0;
}
