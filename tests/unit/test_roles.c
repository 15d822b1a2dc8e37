/*
 * Who may call what (core/roles.h): the role words of cert issue, the role a certificate's subject
 * OU entries give, what each certificate allows, and the verdict on a call from its secret and
 * its certificate, for every combination.
 */
#include <check.h>
#include <stddef.h>

#include "check_main.h"
#include "core/roles.h"

START_TEST(test_role_words)
{
    ck_assert_uint_eq(role_parse("worker"), ROLE_NODE);
    ck_assert_uint_eq(role_parse("admin"), ROLE_ADMIN);
    ck_assert_uint_eq(role_parse("Admin"), 0);
    ck_assert_uint_eq(role_parse("node"), 0);
    ck_assert_uint_eq(role_parse(""), 0);
    ck_assert_uint_eq(role_parse(NULL), 0);
    ck_assert_str_eq(role_word(ROLE_NODE), "worker");
    ck_assert_str_eq(role_word(ROLE_ADMIN), "admin");
}
END_TEST

#define OUS(...)     ((const char *const[]){__VA_ARGS__})
#define N(...)       (sizeof(OUS(__VA_ARGS__)) / sizeof(const char *))
#define ROLE_OF(...) role_of_cert_ous(OUS(__VA_ARGS__), N(__VA_ARGS__))

START_TEST(test_role_of_a_certificate_from_its_ou_entries)
{
    ck_assert_int_eq(role_of_cert_ous(NULL, 0), CERT_ROLE_NONE);
    ck_assert_int_eq(ROLE_OF("crawlab-node:worker"), CERT_ROLE_WORKER);
    ck_assert_int_eq(ROLE_OF("crawlab-node:admin"), CERT_ROLE_ADMIN);
    /* Other OU entries are someone else's business. */
    ck_assert_int_eq(ROLE_OF("Engineering", "crawlab-node:admin"), CERT_ROLE_ADMIN);
    ck_assert_int_eq(ROLE_OF("Engineering", "admin"), CERT_ROLE_NONE);
    ck_assert_int_eq(ROLE_OF("crawlab-node:worker", "crawlab-node:worker"), CERT_ROLE_WORKER);
    /* Our prefix with something we do not know, or both roles: nothing is allowed. */
    ck_assert_int_eq(ROLE_OF("crawlab-node:root"), CERT_ROLE_INVALID);
    ck_assert_int_eq(ROLE_OF("crawlab-node:"), CERT_ROLE_INVALID);
    ck_assert_int_eq(ROLE_OF("crawlab-node:Admin"), CERT_ROLE_INVALID);
    ck_assert_int_eq(ROLE_OF("crawlab-node:admin", "crawlab-node:worker"), CERT_ROLE_INVALID);
    ck_assert_int_eq(ROLE_OF("crawlab-node:admin", "crawlab-node:x"), CERT_ROLE_INVALID);
}
END_TEST

START_TEST(test_what_each_certificate_allows)
{
    ck_assert_uint_eq(role_cert_allows(CERT_ROLE_ABSENT), ROLE_ALL);
    ck_assert_uint_eq(role_cert_allows(CERT_ROLE_NONE), ROLE_NODE);
    ck_assert_uint_eq(role_cert_allows(CERT_ROLE_WORKER), ROLE_NODE);
    ck_assert_uint_eq(role_cert_allows(CERT_ROLE_ADMIN), ROLE_ADMIN);
    ck_assert_uint_eq(role_cert_allows(CERT_ROLE_INVALID), 0);
}
END_TEST

START_TEST(test_verdicts)
{
    /* No secret, or a wrong one: unauthenticated whatever the certificate. */
    ck_assert_int_eq(role_check(ROLE_NODE, 0, CERT_ROLE_WORKER), ROLE_NO_SECRET);
    ck_assert_int_eq(role_check(ROLE_ADMIN, 0, CERT_ROLE_ADMIN), ROLE_NO_SECRET);
    ck_assert_int_eq(role_check(ROLE_ADMIN, 0, CERT_ROLE_INVALID), ROLE_NO_SECRET);
    /* The node key opens the worker's methods only, the admin key the admin's only. */
    ck_assert_int_eq(role_check(ROLE_NODE, ROLE_NODE, CERT_ROLE_ABSENT), ROLE_OK);
    ck_assert_int_eq(role_check(ROLE_ADMIN, ROLE_NODE, CERT_ROLE_ABSENT), ROLE_WRONG_SECRET);
    ck_assert_int_eq(role_check(ROLE_ADMIN, ROLE_ADMIN, CERT_ROLE_ABSENT), ROLE_OK);
    ck_assert_int_eq(role_check(ROLE_NODE, ROLE_ADMIN, CERT_ROLE_ABSENT), ROLE_WRONG_SECRET);
    /* With the right secret, the certificate must allow the role too. */
    ck_assert_int_eq(role_check(ROLE_NODE, ROLE_NODE, CERT_ROLE_WORKER), ROLE_OK);
    ck_assert_int_eq(role_check(ROLE_NODE, ROLE_NODE, CERT_ROLE_NONE), ROLE_OK);
    ck_assert_int_eq(role_check(ROLE_NODE, ROLE_NODE, CERT_ROLE_ADMIN), ROLE_WRONG_CERT);
    ck_assert_int_eq(role_check(ROLE_ADMIN, ROLE_ADMIN, CERT_ROLE_ADMIN), ROLE_OK);
    ck_assert_int_eq(role_check(ROLE_ADMIN, ROLE_ADMIN, CERT_ROLE_WORKER), ROLE_WRONG_CERT);
    ck_assert_int_eq(role_check(ROLE_ADMIN, ROLE_ADMIN, CERT_ROLE_NONE), ROLE_WRONG_CERT);
    ck_assert_int_eq(role_check(ROLE_NODE, ROLE_NODE, CERT_ROLE_INVALID), ROLE_INVALID_CERT);
    ck_assert_int_eq(role_check(ROLE_ADMIN, ROLE_ADMIN, CERT_ROLE_INVALID), ROLE_INVALID_CERT);
    /* Authentication off (every secret passes): the certificate still decides. */
    ck_assert_int_eq(role_check(ROLE_ADMIN, ROLE_ALL, CERT_ROLE_ABSENT), ROLE_OK);
    ck_assert_int_eq(role_check(ROLE_ADMIN, ROLE_ALL, CERT_ROLE_WORKER), ROLE_WRONG_CERT);
    ck_assert_int_eq(role_check(ROLE_NODE, ROLE_ALL, CERT_ROLE_ADMIN), ROLE_WRONG_CERT);
    /* Every refusal has its own reason. */
    ck_assert_str_eq(role_verdict_reason(ROLE_NO_SECRET, ROLE_NODE), "missing or wrong auth key");
    ck_assert_str_ne(role_verdict_reason(ROLE_WRONG_SECRET, ROLE_NODE),
                     role_verdict_reason(ROLE_WRONG_SECRET, ROLE_ADMIN));
    ck_assert_str_ne(role_verdict_reason(ROLE_WRONG_CERT, ROLE_NODE),
                     role_verdict_reason(ROLE_WRONG_CERT, ROLE_ADMIN));
}
END_TEST

static Suite *roles_suite(void)
{
    Suite *s = suite_create("roles");
    TCase *tc = tcase_create("roles");
    tcase_add_test(tc, test_role_words);
    tcase_add_test(tc, test_role_of_a_certificate_from_its_ou_entries);
    tcase_add_test(tc, test_what_each_certificate_allows);
    tcase_add_test(tc, test_verdicts);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = roles_suite};
