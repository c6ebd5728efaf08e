/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "lem_id.h"

static const char hexdigits[] = "0123456789abcdef";

apr_status_t lem_id_generate(lem_id_t *id, apr_uint32_t slot)
{
    if (RAND_bytes(id->bytes, LEM_ID_BYTES) != 1) {
        return APR_EGENERAL;
    }
    id->slot = slot;
    return APR_SUCCESS;
}

void lem_id_format(const lem_id_t *id, char *buf)
{
    char *p = buf;
    char digits[10];
    apr_uint32_t n = id->slot;
    int i = 0;

    for (int k = 0; k < LEM_ID_BYTES; k++) {
        *p++ = hexdigits[id->bytes[k] >> 4];
        *p++ = hexdigits[id->bytes[k] & 0x0f];
    }
    *p++ = '-';
    do {
        digits[i++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    while (i) {
        *p++ = digits[--i];
    }
    *p = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

apr_status_t lem_id_parse(lem_id_t *id, const char *text, apr_size_t len)
{
    apr_size_t i, end = len;
    apr_uint64_t slot = 0;

    /* 1. a ".ROUTE" suffix belongs to the balancer, not to us */
    for (i = 0; i < len; i++) {
        if (text[i] == '.') {
            end = i;
            break;
        }
    }

    /* 2. 32 lower-case hex digits and a dash */
    if (end < 2 * LEM_ID_BYTES + 2 || text[2 * LEM_ID_BYTES] != '-') {
        return APR_EINVAL;
    }
    for (i = 0; i < LEM_ID_BYTES; i++) {
        int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return APR_EINVAL;
        }
        id->bytes[i] = (unsigned char)(hi << 4 | lo);
    }

    /* 3. the slot, decimal, at most 8 digits, no leading zero */
    i = 2 * LEM_ID_BYTES + 1;
    if (end - i > 8 || (text[i] == '0' && end - i > 1)) {
        return APR_EINVAL;
    }
    for (; i < end; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return APR_EINVAL;
        }
        slot = slot * 10 + (apr_uint64_t)(text[i] - '0');
    }
    id->slot = (apr_uint32_t)slot;
    return APR_SUCCESS;
}

int lem_id_equal(const unsigned char *a, const unsigned char *b)
{
    return CRYPTO_memcmp(a, b, LEM_ID_BYTES) == 0;
}
