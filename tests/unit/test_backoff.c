#include <check.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "check_main.h"
#include "resilience/backoff.h"

START_TEST(test_backoff_delays_stay_within_the_current_window)
{
    for (uint64_t seed = 0; seed < 50; seed++) {
        struct backoff b;
        backoff_init(&b, 100, 1000, seed);
        for (int i = 0; i < 20; i++) {
            uint64_t window = backoff_window_ms(&b);
            ck_assert_uint_le(backoff_next_ms(&b), window);
        }
    }
}
END_TEST

START_TEST(test_backoff_window_doubles_per_attempt_and_stops_at_the_cap)
{
    static const uint64_t expected[] = {100, 200, 400, 800, 1000, 1000, 1000};
    struct backoff b;
    backoff_init(&b, 100, 1000, 1);
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        ck_assert_uint_eq(backoff_window_ms(&b), expected[i]);
        backoff_next_ms(&b);
    }
}
END_TEST

START_TEST(test_backoff_reset_restarts_at_the_base_window)
{
    struct backoff b;
    backoff_init(&b, 100, 1000, 7);
    for (int i = 0; i < 6; i++)
        backoff_next_ms(&b);
    ck_assert_uint_eq(backoff_window_ms(&b), 1000);
    backoff_reset(&b);
    ck_assert_uint_eq(backoff_window_ms(&b), 100);
    ck_assert_uint_le(backoff_next_ms(&b), 100);
    ck_assert_uint_eq(backoff_window_ms(&b), 200);
}
END_TEST

START_TEST(test_backoff_does_not_overflow_after_1000_calls_with_a_huge_cap)
{
    struct backoff b;
    backoff_init(&b, 1, UINT64_MAX, 3);
    uint64_t previous = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t window = backoff_window_ms(&b);
        /* A wrapped multiplication would show up as a window that shrinks. */
        ck_assert_uint_ge(window, previous);
        previous = window;
        backoff_next_ms(&b);
    }
    ck_assert_uint_eq(backoff_window_ms(&b), UINT64_MAX);
}
END_TEST

START_TEST(test_backoff_large_base_reaches_the_cap_without_wrapping)
{
    struct backoff b;
    backoff_init(&b, (UINT64_MAX >> 1) + 1, UINT64_MAX, 3);
    ck_assert_uint_eq(backoff_window_ms(&b), (UINT64_MAX >> 1) + 1);
    for (int i = 0; i < 1000; i++)
        backoff_next_ms(&b);
    ck_assert_uint_eq(backoff_window_ms(&b), UINT64_MAX);
}
END_TEST

START_TEST(test_backoff_attempt_counter_never_wraps_back_to_the_base)
{
    struct backoff b;
    backoff_init(&b, 100, 1000, 5);
    for (int i = 0; i < 1000; i++)
        backoff_next_ms(&b);
    ck_assert_uint_eq(backoff_window_ms(&b), 1000);
    ck_assert_uint_lt(b.attempt, 64);

    /* Even a counter pushed to its limit from outside keeps the window at the cap. */
    b.attempt = UINT_MAX;
    ck_assert_uint_le(backoff_next_ms(&b), 1000);
    ck_assert_uint_eq(b.attempt, UINT_MAX);
    ck_assert_uint_eq(backoff_window_ms(&b), 1000);
}
END_TEST

START_TEST(test_backoff_base_above_the_cap_uses_the_cap)
{
    struct backoff b;
    backoff_init(&b, 5000, 1000, 9);
    ck_assert_uint_eq(backoff_window_ms(&b), 1000);
    for (int i = 0; i < 100; i++)
        ck_assert_uint_le(backoff_next_ms(&b), 1000);
}
END_TEST

START_TEST(test_backoff_zero_base_always_returns_zero)
{
    struct backoff b;
    backoff_init(&b, 0, 1000, 9);
    for (int i = 0; i < 1000; i++)
        ck_assert_uint_eq(backoff_next_ms(&b), 0);
    ck_assert_uint_eq(backoff_window_ms(&b), 0);
}
END_TEST

START_TEST(test_backoff_same_seed_gives_the_same_sequence)
{
    struct backoff a, b;
    backoff_init(&a, 100, 100000, 42);
    backoff_init(&b, 100, 100000, 42);
    for (int i = 0; i < 100; i++)
        ck_assert_uint_eq(backoff_next_ms(&a), backoff_next_ms(&b));
}
END_TEST

START_TEST(test_backoff_different_seeds_give_different_sequences)
{
    struct backoff a, b;
    backoff_init(&a, 1000, 1000, 1);
    backoff_init(&b, 1000, 1000, 2);
    int same = 0;
    for (int i = 0; i < 100; i++)
        same += backoff_next_ms(&a) == backoff_next_ms(&b);
    ck_assert_int_lt(same, 10);
}
END_TEST

START_TEST(test_backoff_jitter_spans_the_whole_window)
{
    /* Full jitter: with a fixed window, draws land near both ends and average near the middle. */
    struct backoff b;
    backoff_init(&b, 1000, 1000, 11);
    uint64_t lowest = UINT64_MAX, highest = 0, sum = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t d = backoff_next_ms(&b);
        lowest = d < lowest ? d : lowest;
        highest = d > highest ? d : highest;
        sum += d;
    }
    ck_assert_uint_lt(lowest, 10);
    ck_assert_uint_gt(highest, 990);
    ck_assert_uint_gt(sum / 10000, 450);
    ck_assert_uint_lt(sum / 10000, 550);
}
END_TEST

START_TEST(test_backoff_window_of_one_yields_both_values)
{
    struct backoff b;
    backoff_init(&b, 1, 1, 0);
    int seen[2] = {0, 0};
    for (int i = 0; i < 100; i++) {
        uint64_t d = backoff_next_ms(&b);
        ck_assert_uint_le(d, 1);
        seen[d]++;
    }
    ck_assert_int_gt(seen[0], 0);
    ck_assert_int_gt(seen[1], 0);
}
END_TEST

START_TEST(test_backoff_nth_delay_is_in_the_upper_half_of_its_window)
{
    /* Retry n's window is base * 2^(n-1): 100, 200, 400 ms, then capped at 500. */
    const uint64_t windows[] = {100, 100, 200, 400, 500, 500};
    for (unsigned n = 0; n < 6; n++) {
        for (uint64_t seed = 0; seed < 200; seed++) {
            uint64_t d = backoff_nth_ms(100, 500, n, seed);
            ck_assert_uint_ge(d, windows[n] / 2);
            ck_assert_uint_le(d, windows[n]);
            ck_assert_uint_eq(backoff_nth_ms(100, 500, n, seed), d);
        }
    }
    ck_assert_uint_eq(backoff_nth_ms(0, 500, 3, 7), 0);
    /* Many retries stay at the cap, without wrapping back to small windows. */
    uint64_t late = backoff_nth_ms(10000, 86400000, 101, 7);
    ck_assert_uint_ge(late, 86400000 / 2);
    ck_assert_uint_le(late, 86400000);
}
END_TEST

START_TEST(test_backoff_nth_delay_spreads_over_its_half_window)
{
    uint64_t lo = UINT64_MAX, hi = 0;
    for (uint64_t seed = 0; seed < 1000; seed++) {
        uint64_t d = backoff_nth_ms(1000, 100000, 2, seed);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    ck_assert_uint_lt(lo, 1100);
    ck_assert_uint_gt(hi, 1900);
}
END_TEST

static Suite *backoff_suite(void)
{
    Suite *s = suite_create("backoff");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_backoff_delays_stay_within_the_current_window);
    tcase_add_test(tc, test_backoff_window_doubles_per_attempt_and_stops_at_the_cap);
    tcase_add_test(tc, test_backoff_reset_restarts_at_the_base_window);
    tcase_add_test(tc, test_backoff_does_not_overflow_after_1000_calls_with_a_huge_cap);
    tcase_add_test(tc, test_backoff_large_base_reaches_the_cap_without_wrapping);
    tcase_add_test(tc, test_backoff_attempt_counter_never_wraps_back_to_the_base);
    tcase_add_test(tc, test_backoff_base_above_the_cap_uses_the_cap);
    tcase_add_test(tc, test_backoff_zero_base_always_returns_zero);
    tcase_add_test(tc, test_backoff_same_seed_gives_the_same_sequence);
    tcase_add_test(tc, test_backoff_different_seeds_give_different_sequences);
    tcase_add_test(tc, test_backoff_jitter_spans_the_whole_window);
    tcase_add_test(tc, test_backoff_window_of_one_yields_both_values);
    tcase_add_test(tc, test_backoff_nth_delay_is_in_the_upper_half_of_its_window);
    tcase_add_test(tc, test_backoff_nth_delay_spreads_over_its_half_window);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = backoff_suite};
