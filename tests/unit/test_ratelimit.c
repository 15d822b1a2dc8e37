#include "check_main.h"

#include "runtime/ratelimit.h"

START_TEST(test_ratelimit_first_event_is_logged_with_nothing_held)
{
    struct ratelimit r = {0};
    unsigned held = 99;
    ck_assert(ratelimit_pass(&r, 1000.0, &held));
    ck_assert_uint_eq(held, 0);
}
END_TEST

START_TEST(test_ratelimit_burst_within_a_second_is_held_then_counted_by_the_next_line)
{
    struct ratelimit r = {0};
    unsigned held;
    ck_assert(ratelimit_pass(&r, 1000.0, &held));
    for (int i = 1; i <= 50; i++)
        ck_assert(!ratelimit_pass(&r, 1000.0 + i * 0.01, &held));
    ck_assert(ratelimit_pass(&r, 1001.0, &held));
    ck_assert_uint_eq(held, 50);
    /* The count starts again after a line went out. */
    ck_assert(!ratelimit_pass(&r, 1001.5, &held));
    ck_assert(ratelimit_pass(&r, 1002.5, &held));
    ck_assert_uint_eq(held, 1);
}
END_TEST

START_TEST(test_ratelimit_events_a_second_apart_are_all_logged)
{
    struct ratelimit r = {0};
    unsigned held;
    for (int i = 0; i < 10; i++) {
        ck_assert(ratelimit_pass(&r, 5.0 + i * RATELIMIT_INTERVAL_S, &held));
        ck_assert_uint_eq(held, 0);
    }
}
END_TEST

START_TEST(test_tokens_a_burst_then_the_rate)
{
    struct tokens t = {0};
    for (int i = 0; i < 5; i++)
        ck_assert(tokens_take(&t, 100.0, 5, 2.0));
    ck_assert(!tokens_take(&t, 100.0, 5, 2.0)); /* the sixth at once */
    /* The refused take is a debt: half a second later (one token back) there is still none. */
    ck_assert(!tokens_take(&t, 100.5, 5, 2.0));
    /* Two more tokens' time later: the debts repaid, one left to take. */
    ck_assert(tokens_take(&t, 101.5, 5, 2.0));
}
END_TEST

START_TEST(test_tokens_refill_no_higher_than_the_burst)
{
    struct tokens t = {0};
    ck_assert(tokens_take(&t, 10.0, 3, 1.0));
    /* An hour later the bucket holds 3, not 3600. */
    for (int i = 0; i < 3; i++)
        ck_assert(tokens_take(&t, 3610.0, 3, 1.0));
    ck_assert(!tokens_take(&t, 3610.0, 3, 1.0));
}
END_TEST

static Suite *ratelimit_suite(void)
{
    Suite *s = suite_create("ratelimit");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_ratelimit_first_event_is_logged_with_nothing_held);
    tcase_add_test(tc, test_ratelimit_burst_within_a_second_is_held_then_counted_by_the_next_line);
    tcase_add_test(tc, test_ratelimit_events_a_second_apart_are_all_logged);
    tcase_add_test(tc, test_tokens_a_burst_then_the_rate);
    tcase_add_test(tc, test_tokens_refill_no_higher_than_the_burst);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = ratelimit_suite};
