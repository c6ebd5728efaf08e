/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/* Runs the unit suites of the protocol core; exits non-zero on a failure. */

#include <check.h>
#include <stdlib.h>

/* One line per suite: X(name_of_its_constructor). */
#define LEM_SUITES(X) \
    X(lem_args_suite) \
    X(lem_id_suite) \
    X(lem_imap_suite) \
    X(lem_smtp_suite) \
    X(lem_soap_suite) \
    X(lem_spool_suite)

#define DECLARE(fn) Suite *fn(void);
#define LIST(fn)    fn,

LEM_SUITES(DECLARE)

static Suite *(*const suites[])(void) = { LEM_SUITES(LIST) };

int main(void)
{
    SRunner *sr = srunner_create(NULL);
    size_t i;
    int failed;

    for (i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        srunner_add_suite(sr, suites[i]());
    }
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
