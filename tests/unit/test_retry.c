#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "check_main.h"
#include "resilience/retry.h"

START_TEST(test_retry_short_outage_is_retried_within_one_second_windows)
{
    for (uint64_t seed = 0; seed < 200; seed++) {
        struct retry_policy_state r;
        retry_init(&r, seed);
        uint64_t now = 1000000;
        /* The master is down for three attempts, then answers. */
        for (int i = 0; i < 3; i++) {
            ck_assert(retry_allow(&r, now));
            uint64_t next = retry_on_failure(&r, now);
            ck_assert_uint_ge(next, now);
            ck_assert_uint_le(next - now, 1000);
            now = next;
        }
        ck_assert(retry_allow(&r, now));
        retry_on_success(&r, now);
        ck_assert_int_eq(r.breaker.state, BREAKER_CLOSED);
    }
}
END_TEST

START_TEST(test_retry_first_five_failures_each_wait_at_most_one_second)
{
    /* Backoff windows 100, 200, 400, 800 ms, then the breaker opens for at most 1 s. */
    static const uint64_t max_wait[] = {100, 200, 400, 800, 1000};
    for (uint64_t seed = 0; seed < 200; seed++) {
        struct retry_policy_state r;
        retry_init(&r, seed);
        uint64_t now = 0;
        for (size_t i = 0; i < 5; i++) {
            ck_assert(retry_allow(&r, now));
            uint64_t next = retry_on_failure(&r, now);
            ck_assert_uint_le(next - now, max_wait[i]);
            now = next;
        }
        ck_assert_int_eq(r.breaker.state, BREAKER_OPEN);
    }
}
END_TEST

START_TEST(test_retry_long_outage_backs_off_to_cooldowns_between_15_and_30_seconds)
{
    for (uint64_t seed = 0; seed < 50; seed++) {
        struct retry_policy_state r;
        retry_init(&r, seed);
        uint64_t now = 0, longest = 0;
        unsigned attempts = 0;
        /* An hour of outage: every attempt the policy allows fails. */
        while (now < 3600000) {
            ck_assert(retry_allow(&r, now));
            uint64_t next = retry_on_failure(&r, now);
            uint64_t wait = next - now;
            ck_assert_uint_le(wait, 30000);
            longest = wait > longest ? wait : longest;
            /* While the breaker is open, nothing may be tried before the returned instant. */
            if (r.breaker.state == BREAKER_OPEN)
                ck_assert(!retry_allow(&r, next - 1));
            now = next;
            attempts++;
        }
        ck_assert_uint_ge(longest, 15000);
        /* About one probe every 15 to 30 s: at most 240 an hour plus the first few. */
        ck_assert_uint_le(attempts, 3600 / 15 + 12);
    }
}
END_TEST

START_TEST(test_retry_capped_cooldowns_reach_the_cap_and_never_pass_it)
{
    /* --reconnect-max=4s: cool-downs 1, 2, then 4 s for each later probe, jittered to half. */
    for (uint64_t seed = 0; seed < 50; seed++) {
        struct retry_policy_state r;
        retry_init_capped(&r, seed, 4000);
        uint64_t now = 0, longest = 0;
        unsigned attempts = 0;
        while (now < 600000) {
            ck_assert(retry_allow(&r, now));
            uint64_t next = retry_on_failure(&r, now);
            ck_assert_uint_le(next - now, 4000);
            longest = next - now > longest ? next - now : longest;
            now = next;
            attempts++;
        }
        ck_assert_uint_ge(longest, 2000);
        /* Ten minutes at one probe every 2 to 4 s: at least 150 of them. */
        ck_assert_uint_ge(attempts, 600 / 4);
    }
    /* A cap below the first cool-down is the first cool-down. */
    struct retry_policy_state r;
    retry_init_capped(&r, 7, 10);
    uint64_t now = 0;
    for (int i = 0; i < 20; i++) {
        ck_assert(retry_allow(&r, now));
        uint64_t next = retry_on_failure(&r, now);
        ck_assert_uint_le(next - now, 1000);
        now = next;
    }
    ck_assert_int_eq(r.breaker.state, BREAKER_OPEN);
}
END_TEST

START_TEST(test_retry_breaker_cooldowns_follow_1_2_4_8_16_30_seconds)
{
    static const uint64_t cooldown[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000};
    struct retry_policy_state r;
    retry_init(&r, 12345);
    uint64_t now = 0;
    for (int i = 0; i < 4; i++)
        now = retry_on_failure(&r, now);
    for (size_t i = 0; i < sizeof(cooldown) / sizeof(cooldown[0]); i++) {
        ck_assert(retry_allow(&r, now));
        uint64_t next = retry_on_failure(&r, now);
        ck_assert_uint_ge(next - now, cooldown[i] / 2);
        ck_assert_uint_le(next - now, cooldown[i]);
        now = next;
    }
}
END_TEST

START_TEST(test_retry_recovery_after_long_outage_starts_again_at_the_base)
{
    struct retry_policy_state r;
    retry_init(&r, 99);
    uint64_t now = 0;
    for (int i = 0; i < 12; i++) {
        ck_assert(retry_allow(&r, now));
        now = retry_on_failure(&r, now);
    }
    ck_assert(retry_allow(&r, now));
    retry_on_success(&r, now);
    ck_assert_int_eq(r.breaker.state, BREAKER_CLOSED);
    ck_assert_uint_eq(backoff_window_ms(&r.backoff), 100);
    ck_assert_uint_le(retry_on_failure(&r, now) - now, 100);
}
END_TEST

START_TEST(test_retry_failure_reported_while_open_keeps_the_same_probe_time)
{
    struct retry_policy_state r;
    retry_init(&r, 3);
    uint64_t now = 0;
    for (int i = 0; i < 5; i++)
        now = retry_on_failure(&r, now);
    ck_assert_int_eq(r.breaker.state, BREAKER_OPEN);
    uint64_t until = breaker_open_until(&r.breaker);
    ck_assert_uint_eq(now, until);
    ck_assert(!retry_allow(&r, until - 1));
    /* Another connection failing now must not push the probe further away. */
    ck_assert_uint_eq(retry_on_failure(&r, until - 1), until);
}
END_TEST

START_TEST(test_retry_same_seed_gives_the_same_schedule)
{
    struct retry_policy_state a, b;
    retry_init(&a, 2024);
    retry_init(&b, 2024);
    uint64_t ta = 0, tb = 0;
    for (int i = 0; i < 20; i++) {
        ta = retry_on_failure(&a, ta);
        tb = retry_on_failure(&b, tb);
        ck_assert_uint_eq(ta, tb);
        ck_assert(retry_allow(&a, ta));
        ck_assert(retry_allow(&b, tb));
    }
}
END_TEST

START_TEST(test_retry_returned_time_saturates_instead_of_wrapping)
{
    struct retry_policy_state r;
    retry_init(&r, 8);
    for (int i = 0; i < 4; i++)
        ck_assert_uint_ge(retry_on_failure(&r, UINT64_MAX - 5), UINT64_MAX - 5);
}
END_TEST

/* ---- Several targets ---- */

START_TEST(test_retry_targets_are_tried_in_turn_wrapping_around)
{
    struct retry_policy_state r;
    retry_init(&r, 5);
    retry_set_targets(&r, 3);
    uint64_t now = 0;
    static const unsigned order[] = {0, 1, 2, 0, 1, 2, 0};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        ck_assert_uint_eq(retry_target(&r), order[i]);
        ck_assert(retry_allow(&r, now));
        now = retry_on_failure(&r, now);
    }
}
END_TEST

START_TEST(test_retry_window_grows_and_breaker_counts_only_after_a_full_round)
{
    for (uint64_t seed = 0; seed < 200; seed++) {
        struct retry_policy_state r;
        retry_init(&r, seed);
        retry_set_targets(&r, 3);
        uint64_t now = 0;
        /* Round n waits in the window 100 * 2^n ms, the same for each of its three attempts. */
        static const uint64_t window[] = {100, 200, 400, 800};
        for (size_t round = 0; round < 4; round++) {
            for (int i = 0; i < 3; i++) {
                ck_assert(retry_allow(&r, now));
                uint64_t next = retry_on_failure(&r, now);
                ck_assert_uint_le(next - now, window[round]);
                now = next;
            }
            ck_assert_uint_eq(r.breaker.failures, round + 1);
            ck_assert_int_eq(r.breaker.state, BREAKER_CLOSED);
        }
        /* The fifth failed round opens the breaker; no round starts before its cool-down. */
        for (int i = 0; i < 3; i++)
            now = retry_on_failure(&r, now);
        ck_assert_int_eq(r.breaker.state, BREAKER_OPEN);
        ck_assert_uint_eq(retry_target(&r), 0);
        ck_assert(!retry_allow(&r, now - 1));
    }
}
END_TEST

START_TEST(test_retry_probe_of_an_open_breaker_is_a_whole_round)
{
    struct retry_policy_state r;
    retry_init(&r, 11);
    retry_set_targets(&r, 2);
    uint64_t now = 0;
    for (int i = 0; i < 10; i++)
        now = retry_on_failure(&r, now);
    ck_assert_int_eq(r.breaker.state, BREAKER_OPEN);
    ck_assert(retry_allow(&r, now)); /* the probe, on target 0 */
    ck_assert_int_eq(r.breaker.state, BREAKER_HALF_OPEN);
    uint64_t next = retry_on_failure(&r, now);
    ck_assert_int_eq(r.breaker.state, BREAKER_HALF_OPEN);
    ck_assert_uint_eq(retry_target(&r), 1);
    ck_assert(retry_allow(&r, next)); /* target 1 belongs to the same probe */
    ck_assert_uint_ge(retry_on_failure(&r, next) - next, 1000);
    ck_assert_int_eq(r.breaker.state, BREAKER_OPEN);
}
END_TEST

START_TEST(test_retry_lost_session_moves_on_in_the_base_window)
{
    for (uint64_t seed = 0; seed < 200; seed++) {
        struct retry_policy_state r;
        retry_init(&r, seed);
        retry_set_targets(&r, 2);
        uint64_t now = 0;
        for (int i = 0; i < 5; i++)
            now = retry_on_failure(&r, now);
        ck_assert_uint_eq(retry_target(&r), 1);
        ck_assert(retry_allow(&r, now));
        retry_on_success(&r, now);
        ck_assert_uint_eq(retry_target(&r), 1);
        /* Target 1's session is lost: target 0 comes next, within the base window. */
        uint64_t next = retry_on_failure(&r, now);
        ck_assert_uint_eq(retry_target(&r), 0);
        ck_assert_uint_le(next - now, 100);
        ck_assert_uint_eq(r.breaker.failures, 0);
    }
}
END_TEST

static Suite *retry_suite(void)
{
    Suite *s = suite_create("retry");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_retry_short_outage_is_retried_within_one_second_windows);
    tcase_add_test(tc, test_retry_first_five_failures_each_wait_at_most_one_second);
    tcase_add_test(tc, test_retry_long_outage_backs_off_to_cooldowns_between_15_and_30_seconds);
    tcase_add_test(tc, test_retry_breaker_cooldowns_follow_1_2_4_8_16_30_seconds);
    tcase_add_test(tc, test_retry_capped_cooldowns_reach_the_cap_and_never_pass_it);
    tcase_add_test(tc, test_retry_recovery_after_long_outage_starts_again_at_the_base);
    tcase_add_test(tc, test_retry_failure_reported_while_open_keeps_the_same_probe_time);
    tcase_add_test(tc, test_retry_same_seed_gives_the_same_schedule);
    tcase_add_test(tc, test_retry_returned_time_saturates_instead_of_wrapping);
    tcase_add_test(tc, test_retry_targets_are_tried_in_turn_wrapping_around);
    tcase_add_test(tc, test_retry_window_grows_and_breaker_counts_only_after_a_full_round);
    tcase_add_test(tc, test_retry_probe_of_an_open_breaker_is_a_whole_round);
    tcase_add_test(tc, test_retry_lost_session_moves_on_in_the_base_window);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = retry_suite};
