/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/* The spool: what goes in comes out, from memory and from its file. */

#include <check.h>
#include <string.h>

#include <apr_general.h>

#include "lem_spool.h"

static apr_pool_t *pool;

static void setup(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
    apr_terminate();
}

/* Read the whole spool back into `out` (cap bytes). */
static apr_size_t read_back(lem_spool_t *sp, char *out, apr_size_t cap)
{
    const char *data;
    apr_size_t len, total = 0;

    ck_assert_int_eq(lem_spool_rewind(sp), APR_SUCCESS);
    while (lem_spool_read(sp, &data, &len) == APR_SUCCESS) {
        ck_assert_uint_le(total + len, cap);
        memcpy(out + total, data, len);
        total += len;
    }
    return total;
}

/* Fill `buf` with a pattern no two nearby offsets share. */
static void pattern(char *buf, apr_size_t len)
{
    for (apr_size_t i = 0; i < len; i++) {
        buf[i] = (char)(i * 7 + i / 251);
    }
}

START_TEST(small_spool_stays_in_memory)
{
    lem_spool_t *sp;
    char out[64];

    lem_spool_create(&sp, pool, 64);
    ck_assert_int_eq(lem_spool_write(sp, "a1 OK\r\n", 7), APR_SUCCESS);
    ck_assert(!lem_spool_on_disk(sp));
    ck_assert_int_eq(lem_spool_size(sp), 7);
    ck_assert_uint_eq(read_back(sp, out, sizeof(out)), 7);
    ck_assert(!memcmp(out, "a1 OK\r\n", 7));
}
END_TEST

START_TEST(bytes_past_the_memory_limit_go_to_a_file_and_come_back)
{
    static char in[300000], out[300000];
    lem_spool_t *sp;
    apr_size_t off = 0;

    pattern(in, sizeof(in));
    lem_spool_create(&sp, pool, 1000);
    /* uneven writes across the memory/file seam */
    while (off < sizeof(in)) {
        apr_size_t n = sizeof(in) - off < 777 ? sizeof(in) - off : 777;
        ck_assert_int_eq(lem_spool_write(sp, in + off, n), APR_SUCCESS);
        off += n;
    }
    ck_assert(lem_spool_on_disk(sp));
    ck_assert_int_eq(lem_spool_size(sp), (apr_off_t)sizeof(in));
    ck_assert_uint_eq(read_back(sp, out, sizeof(out)), sizeof(in));
    ck_assert(!memcmp(in, out, sizeof(in)));
}
END_TEST

START_TEST(brigade_of_a_spool_holds_every_byte_in_order)
{
    static char in[100000], out[100000];
    apr_bucket_alloc_t *ba = apr_bucket_alloc_create(pool);
    apr_bucket_brigade *bb = apr_brigade_create(pool, ba);
    apr_size_t len = sizeof(out);
    lem_spool_t *sp;

    pattern(in, sizeof(in));
    lem_spool_create(&sp, pool, 4096);
    ck_assert_int_eq(lem_spool_write(sp, in, sizeof(in)), APR_SUCCESS);
    ck_assert_int_eq(lem_spool_to_brigade(sp, bb), APR_SUCCESS);
    ck_assert_int_eq(apr_brigade_flatten(bb, out, &len), APR_SUCCESS);
    ck_assert_uint_eq(len, sizeof(in));
    ck_assert(!memcmp(in, out, sizeof(in)));
}
END_TEST

START_TEST(empty_spool_reads_as_eof)
{
    lem_spool_t *sp;
    const char *data;
    apr_size_t len = 1;

    lem_spool_create(&sp, pool, 16);
    ck_assert_int_eq(lem_spool_rewind(sp), APR_SUCCESS);
    ck_assert_int_eq(lem_spool_read(sp, &data, &len), APR_EOF);
    ck_assert_uint_eq(len, 0);
}
END_TEST

Suite *lem_spool_suite(void)
{
    Suite *s = suite_create("lem_spool");
    TCase *tc = tcase_create("lem_spool");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, small_spool_stays_in_memory);
    tcase_add_test(tc, bytes_past_the_memory_limit_go_to_a_file_and_come_back);
    tcase_add_test(tc, brigade_of_a_spool_holds_every_byte_in_order);
    tcase_add_test(tc, empty_spool_reads_as_eof);
    suite_add_tcase(s, tc);
    return s;
}
