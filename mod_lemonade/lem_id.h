/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef LEM_ID_H
#define LEM_ID_H

/*
 * Session ids, as carried in the session cookie (protocol core, no httpd).
 *
 * An id is LEM_ID_BYTES random octets from OpenSSL's CSPRNG, and names the
 * slot of the session table it lives in. Its text form is
 *
 *     cookie-value = 32HEXDIG "-" slot
 *     slot         = 1*8DIGIT           ; decimal, no leading zeros
 *
 * for example "9f86d081884c7d659a2feaa0c55ad015-17". No "." appears in it,
 * so a load balancer may append ".ROUTE" for sticky sessions. The slot
 * only says where to look: a session is found only when all 128 random
 * bits match too, compared in constant time.
 */

#include <apr.h>
#include <apr_errno.h>

#define LEM_ID_BYTES    16
#define LEM_ID_TEXT_MAX (2 * LEM_ID_BYTES + 1 + 10 + 1)  /* any slot */

typedef struct {
    unsigned char bytes[LEM_ID_BYTES];
    apr_uint32_t  slot;
} lem_id_t;

/* Fill `id` with fresh random bytes for `slot`. APR_EGENERAL when the
 * CSPRNG cannot deliver (then no id must be handed out). */
apr_status_t lem_id_generate(lem_id_t *id, apr_uint32_t slot);

/* Write the text form into `buf` (LEM_ID_TEXT_MAX bytes, NUL ended). */
void lem_id_format(const lem_id_t *id, char *buf);

/*
 * Read the text form from `text` (`len` bytes, need not be NUL ended).
 * A trailing ".ROUTE" is ignored. Returns APR_SUCCESS, or APR_EINVAL for
 * anything else; `id` is then undefined.
 */
apr_status_t lem_id_parse(lem_id_t *id, const char *text, apr_size_t len);

/* Non-zero when the random parts of `a` and `b` are equal, in time that
 * does not depend on where they differ. */
int lem_id_equal(const unsigned char *a, const unsigned char *b);

#endif /* LEM_ID_H */
