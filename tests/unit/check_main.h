/*
 * The main() every unit test program shares (check_main.c): it runs one Check suite, each test in
 * its own process unless CK_FORK=no, and exits 0 only when every test passed.
 *
 * A test program defines unit_tests, naming the function that builds its suite and, when the
 * program needs them, work to do once around the whole run (in the parent process, before the
 * first test and after the last):
 *
 *     const struct unit_tests unit_tests = {.suite = hmap_suite};
 */
#ifndef CRAWLAB_TESTS_CHECK_MAIN_H
#define CRAWLAB_TESTS_CHECK_MAIN_H

#include <check.h>

struct unit_tests {
    Suite *(*suite)(void);  /* builds the suite; called once */
    int (*setup)(void);     /* NULL, or run before any test: nonzero fails the run untested */
    void (*teardown)(void); /* NULL, or run after every test, whatever they gave */
};

extern const struct unit_tests unit_tests;

#endif
