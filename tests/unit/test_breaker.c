#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "resilience/breaker.h"

/* Reports n failed attempts at now, each of which the breaker must have let through. */
static void fail_times(struct breaker *b, unsigned n, uint64_t now)
{
    for (unsigned i = 0; i < n; i++) {
        ck_assert(breaker_allow(b, now));
        breaker_failure(b, now);
    }
}

/* Waits out the cool-down, takes the probe and fails it; returns the instant it failed. */
static uint64_t fail_probe(struct breaker *b)
{
    uint64_t now = breaker_open_until(b);
    ck_assert(breaker_allow(b, now));
    breaker_failure(b, now);
    return now;
}

START_TEST(test_breaker_null_policy_uses_the_defaults)
{
    struct breaker b;
    breaker_init(&b, NULL, 1);
    ck_assert_uint_eq(b.policy.failure_threshold, 5);
    ck_assert_uint_eq(b.policy.open_min_ms, 1000);
    ck_assert_uint_eq(b.policy.open_max_ms, 30000);
    ck_assert_int_eq(b.state, BREAKER_CLOSED);
    ck_assert_uint_eq(b.failures, 0);
}
END_TEST

START_TEST(test_breaker_zero_policy_fields_take_defaults_and_max_is_raised_to_min)
{
    struct breaker b;
    struct breaker_policy p = {.failure_threshold = 3};
    breaker_init(&b, &p, 1);
    ck_assert_uint_eq(b.policy.failure_threshold, 3);
    ck_assert_uint_eq(b.policy.open_min_ms, 1000);
    ck_assert_uint_eq(b.policy.open_max_ms, 30000);

    p = (struct breaker_policy){.open_min_ms = 5000, .open_max_ms = 2000};
    breaker_init(&b, &p, 1);
    ck_assert_uint_eq(b.policy.failure_threshold, 5);
    ck_assert_uint_eq(b.policy.open_min_ms, 5000);
    ck_assert_uint_eq(b.policy.open_max_ms, 5000);
}
END_TEST

START_TEST(test_breaker_opens_after_exactly_five_failures)
{
    struct breaker b;
    breaker_init(&b, NULL, 1);
    fail_times(&b, 4, 100);
    ck_assert_int_eq(b.state, BREAKER_CLOSED);
    ck_assert(breaker_allow(&b, 100));
    breaker_failure(&b, 100);
    ck_assert_int_eq(b.state, BREAKER_OPEN);
    ck_assert(!breaker_allow(&b, 100));
}
END_TEST

START_TEST(test_breaker_opens_at_a_custom_threshold)
{
    struct breaker b;
    struct breaker_policy p = {.failure_threshold = 2, .open_min_ms = 10, .open_max_ms = 100};
    breaker_init(&b, &p, 1);
    fail_times(&b, 1, 0);
    ck_assert_int_eq(b.state, BREAKER_CLOSED);
    fail_times(&b, 1, 0);
    ck_assert_int_eq(b.state, BREAKER_OPEN);
}
END_TEST

START_TEST(test_breaker_success_between_failures_resets_the_count)
{
    struct breaker b;
    breaker_init(&b, NULL, 1);
    fail_times(&b, 4, 0);
    breaker_success(&b, 0);
    ck_assert_uint_eq(b.failures, 0);
    fail_times(&b, 4, 0);
    ck_assert_int_eq(b.state, BREAKER_CLOSED);
    fail_times(&b, 1, 0);
    ck_assert_int_eq(b.state, BREAKER_OPEN);
}
END_TEST

START_TEST(test_breaker_rejects_every_attempt_until_the_cooldown_ends)
{
    struct breaker b;
    breaker_init(&b, NULL, 3);
    fail_times(&b, 5, 10000);
    uint64_t until = breaker_open_until(&b);
    ck_assert_uint_gt(until, 10000);
    for (uint64_t t = 10000; t < until; t += 7)
        ck_assert(!breaker_allow(&b, t));
    ck_assert(!breaker_allow(&b, until - 1));
    ck_assert_int_eq(b.state, BREAKER_OPEN);
}
END_TEST

START_TEST(test_breaker_lets_exactly_one_probe_through_after_the_cooldown)
{
    struct breaker b;
    breaker_init(&b, NULL, 3);
    fail_times(&b, 5, 0);
    uint64_t until = breaker_open_until(&b);
    ck_assert(breaker_allow(&b, until));
    ck_assert_int_eq(b.state, BREAKER_HALF_OPEN);
    ck_assert(!breaker_allow(&b, until));
    ck_assert(!breaker_allow(&b, until + 100000));
}
END_TEST

START_TEST(test_breaker_probe_is_allowed_late_as_well)
{
    struct breaker b;
    breaker_init(&b, NULL, 3);
    fail_times(&b, 5, 0);
    ck_assert(breaker_allow(&b, breaker_open_until(&b) + 3600000));
    ck_assert_int_eq(b.state, BREAKER_HALF_OPEN);
}
END_TEST

START_TEST(test_breaker_closes_when_the_probe_succeeds)
{
    struct breaker b;
    breaker_init(&b, NULL, 3);
    fail_times(&b, 5, 0);
    uint64_t until = breaker_open_until(&b);
    ck_assert(breaker_allow(&b, until));
    breaker_success(&b, until);
    ck_assert_int_eq(b.state, BREAKER_CLOSED);
    ck_assert_uint_eq(b.failures, 0);
    ck_assert(breaker_allow(&b, until));
    ck_assert(breaker_allow(&b, until));
    /* Closed again means a full threshold of failures is needed to open it. */
    fail_times(&b, 4, until);
    ck_assert_int_eq(b.state, BREAKER_CLOSED);
}
END_TEST

START_TEST(test_breaker_reopens_with_a_doubled_capped_cooldown_when_the_probe_fails)
{
    static const uint64_t expected[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
    struct breaker b;
    breaker_init(&b, NULL, 5);
    fail_times(&b, 5, 0);
    ck_assert_uint_eq(b.cooldown_ms, expected[0]);
    for (size_t i = 1; i < sizeof(expected) / sizeof(expected[0]); i++) {
        uint64_t now = fail_probe(&b);
        ck_assert_int_eq(b.state, BREAKER_OPEN);
        ck_assert_uint_eq(b.cooldown_ms, expected[i]);
        ck_assert_uint_ge(breaker_open_until(&b), now + expected[i] / 2);
        ck_assert_uint_le(breaker_open_until(&b), now + expected[i]);
    }
}
END_TEST

START_TEST(test_breaker_success_resets_the_cooldown_to_the_minimum)
{
    struct breaker b;
    breaker_init(&b, NULL, 5);
    fail_times(&b, 5, 0);
    fail_probe(&b);
    fail_probe(&b);
    ck_assert_uint_eq(b.cooldown_ms, 4000);
    uint64_t now = breaker_open_until(&b);
    ck_assert(breaker_allow(&b, now));
    breaker_success(&b, now);
    ck_assert_uint_eq(b.cooldown_ms, 1000);
    fail_times(&b, 5, now);
    ck_assert_uint_le(breaker_open_until(&b), now + 1000);
}
END_TEST

START_TEST(test_breaker_cooldown_jitter_stays_in_half_to_full_and_varies)
{
    uint64_t lowest = UINT64_MAX, highest = 0;
    for (uint64_t seed = 0; seed < 2000; seed++) {
        struct breaker b;
        breaker_init(&b, NULL, seed);
        fail_times(&b, 5, 50000);
        uint64_t wait = breaker_open_until(&b) - 50000;
        ck_assert_uint_ge(wait, 500);
        ck_assert_uint_le(wait, 1000);
        lowest = wait < lowest ? wait : lowest;
        highest = wait > highest ? wait : highest;
    }
    /* Workers that opened together must not all probe at the same instant. */
    ck_assert_uint_lt(lowest, 550);
    ck_assert_uint_gt(highest, 950);
}
END_TEST

START_TEST(test_breaker_ignores_failures_reported_while_open)
{
    struct breaker b;
    breaker_init(&b, NULL, 5);
    fail_times(&b, 5, 0);
    uint64_t until = breaker_open_until(&b);
    breaker_failure(&b, 10);
    breaker_failure(&b, 20);
    ck_assert_int_eq(b.state, BREAKER_OPEN);
    ck_assert_uint_eq(breaker_open_until(&b), until);
    ck_assert_uint_eq(b.cooldown_ms, 1000);
}
END_TEST

START_TEST(test_breaker_open_until_saturates_at_the_end_of_time)
{
    struct breaker b;
    breaker_init(&b, NULL, 5);
    fail_times(&b, 5, UINT64_MAX - 10);
    ck_assert_uint_eq(breaker_open_until(&b), UINT64_MAX);
    ck_assert(!breaker_allow(&b, UINT64_MAX - 1));
    ck_assert(breaker_allow(&b, UINT64_MAX));
}
END_TEST

START_TEST(test_breaker_cooldown_doubling_cannot_overflow_a_huge_cap)
{
    struct breaker b;
    struct breaker_policy p = {.failure_threshold = 1, .open_min_ms = 1, .open_max_ms = UINT64_MAX};
    breaker_init(&b, &p, 5);
    fail_times(&b, 1, 0);
    for (int i = 0; i < 70; i++) {
        uint64_t before = b.cooldown_ms;
        b.open_until_ms = 0; /* Keep the clock small; only the cool-down arithmetic is tested. */
        ck_assert(breaker_allow(&b, 0));
        breaker_failure(&b, 0);
        ck_assert_uint_ge(b.cooldown_ms, before);
    }
    ck_assert_uint_eq(b.cooldown_ms, UINT64_MAX);
}
END_TEST

START_TEST(test_breaker_same_seed_gives_the_same_schedule)
{
    struct breaker a, b;
    breaker_init(&a, NULL, 77);
    breaker_init(&b, NULL, 77);
    fail_times(&a, 5, 0);
    fail_times(&b, 5, 0);
    for (int i = 0; i < 10; i++) {
        ck_assert_uint_eq(breaker_open_until(&a), breaker_open_until(&b));
        fail_probe(&a);
        fail_probe(&b);
    }
}
END_TEST

START_TEST(test_breaker_state_names_are_stable)
{
    ck_assert_str_eq(breaker_state_name(BREAKER_CLOSED), "closed");
    ck_assert_str_eq(breaker_state_name(BREAKER_OPEN), "open");
    ck_assert_str_eq(breaker_state_name(BREAKER_HALF_OPEN), "half-open");
    ck_assert_str_eq(breaker_state_name((enum breaker_state)42), "unknown");
}
END_TEST

static Suite *breaker_suite(void)
{
    Suite *s = suite_create("breaker");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_breaker_null_policy_uses_the_defaults);
    tcase_add_test(tc, test_breaker_zero_policy_fields_take_defaults_and_max_is_raised_to_min);
    tcase_add_test(tc, test_breaker_opens_after_exactly_five_failures);
    tcase_add_test(tc, test_breaker_opens_at_a_custom_threshold);
    tcase_add_test(tc, test_breaker_success_between_failures_resets_the_count);
    tcase_add_test(tc, test_breaker_rejects_every_attempt_until_the_cooldown_ends);
    tcase_add_test(tc, test_breaker_lets_exactly_one_probe_through_after_the_cooldown);
    tcase_add_test(tc, test_breaker_probe_is_allowed_late_as_well);
    tcase_add_test(tc, test_breaker_closes_when_the_probe_succeeds);
    tcase_add_test(tc, test_breaker_reopens_with_a_doubled_capped_cooldown_when_the_probe_fails);
    tcase_add_test(tc, test_breaker_success_resets_the_cooldown_to_the_minimum);
    tcase_add_test(tc, test_breaker_cooldown_jitter_stays_in_half_to_full_and_varies);
    tcase_add_test(tc, test_breaker_ignores_failures_reported_while_open);
    tcase_add_test(tc, test_breaker_open_until_saturates_at_the_end_of_time);
    tcase_add_test(tc, test_breaker_cooldown_doubling_cannot_overflow_a_huge_cap);
    tcase_add_test(tc, test_breaker_same_seed_gives_the_same_schedule);
    tcase_add_test(tc, test_breaker_state_names_are_stable);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = breaker_suite};
