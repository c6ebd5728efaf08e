/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/* Session ids: the cookie value's grammar (lem_id.h), both ways. */

#include <check.h>
#include <string.h>

#include "lem_id.h"

START_TEST(formatted_id_parses_back_to_itself)
{
    lem_id_t id, back;
    char text[LEM_ID_TEXT_MAX];

    ck_assert_int_eq(lem_id_generate(&id, 4095), APR_SUCCESS);
    lem_id_format(&id, text);
    ck_assert_uint_eq(strlen(text), 32 + 1 + 4);
    ck_assert_int_eq(lem_id_parse(&back, text, strlen(text)), APR_SUCCESS);
    ck_assert_uint_eq(back.slot, 4095);
    ck_assert(lem_id_equal(id.bytes, back.bytes));
}
END_TEST

START_TEST(two_ids_never_share_their_random_part)
{
    lem_id_t a, b;

    ck_assert_int_eq(lem_id_generate(&a, 0), APR_SUCCESS);
    ck_assert_int_eq(lem_id_generate(&b, 0), APR_SUCCESS);
    ck_assert(!lem_id_equal(a.bytes, b.bytes));
}
END_TEST

START_TEST(route_suffix_of_a_balancer_is_ignored)
{
    const char *text = "000102030405060708090a0b0c0d0e0f-17.node2";
    lem_id_t id;

    ck_assert_int_eq(lem_id_parse(&id, text, strlen(text)), APR_SUCCESS);
    ck_assert_uint_eq(id.slot, 17);
    ck_assert_uint_eq(id.bytes[0], 0x00);
    ck_assert_uint_eq(id.bytes[15], 0x0f);
}
END_TEST

/* Every row is a cookie value a client might send and we must refuse. */
static const char *const bad_values[] = {
    "",                                             /* empty */
    "000102030405060708090a0b0c0d0e0f",             /* no slot */
    "000102030405060708090a0b0c0d0e0f-",            /* empty slot */
    "000102030405060708090a0b0c0d0e0f-01",          /* leading zero */
    "000102030405060708090a0b0c0d0e0f-123456789",   /* 9 digits */
    "000102030405060708090a0b0c0d0e0f-1x",          /* not decimal */
    "000102030405060708090A0B0C0D0E0F-1",           /* upper-case hex */
    "000102030405060708090a0b0c0d0e-1",             /* 15 bytes */
    "000102030405060708090a0b0c0d0e0f0-1",          /* 33 digits */
    "g00102030405060708090a0b0c0d0e0f-1",           /* not hex */
    "000102030405060708090a0b0c0d0e0f+1",           /* wrong separator */
};

START_TEST(malformed_cookie_values_are_refused)
{
    const char *text = bad_values[_i];
    lem_id_t id;

    ck_assert_msg(lem_id_parse(&id, text, strlen(text)) == APR_EINVAL,
                  "accepted '%s'", text);
}
END_TEST

START_TEST(parse_reads_only_the_length_given)
{
    const char *text = "000102030405060708090a0b0c0d0e0f-12345";
    lem_id_t id;

    ck_assert_int_eq(lem_id_parse(&id, text, strlen(text) - 3),
                     APR_SUCCESS);
    ck_assert_uint_eq(id.slot, 12);
}
END_TEST

Suite *lem_id_suite(void)
{
    Suite *s = suite_create("lem_id");
    TCase *tc = tcase_create("lem_id");

    tcase_add_test(tc, formatted_id_parses_back_to_itself);
    tcase_add_test(tc, two_ids_never_share_their_random_part);
    tcase_add_test(tc, route_suffix_of_a_balancer_is_ignored);
    tcase_add_loop_test(tc, malformed_cookie_values_are_refused, 0,
                        (int)(sizeof(bad_values) / sizeof(bad_values[0])));
    tcase_add_test(tc, parse_reads_only_the_length_given);
    suite_add_tcase(s, tc);
    return s;
}
