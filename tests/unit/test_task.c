#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "check_main.h"
#include "core/task.h"

START_TEST(test_status_names_round_trip_through_parse)
{
    for (int i = 0; i < TASK_STATUS_COUNT; i++) {
        enum task_status parsed = TASK_STATUS_COUNT;
        ck_assert_int_eq(task_status_parse(task_status_name((enum task_status)i), &parsed), 0);
        ck_assert_int_eq(parsed, i);
    }
    ck_assert_str_eq(task_status_name(TASK_NODE_DISCONNECTED), "node_disconnected");
    ck_assert_str_eq(task_status_name(TASK_PENDING), "pending");
}
END_TEST

START_TEST(test_status_parse_rejects_unknown_names_and_leaves_output_alone)
{
    enum task_status out = TASK_RUNNING;
    ck_assert_int_eq(task_status_parse("Running", &out), -EINVAL);
    ck_assert_int_eq(task_status_parse("", &out), -EINVAL);
    ck_assert_int_eq(task_status_parse("runningx", &out), -EINVAL);
    ck_assert_int_eq(task_status_parse(NULL, &out), -EINVAL);
    ck_assert_int_eq(out, TASK_RUNNING);
}
END_TEST

START_TEST(test_status_name_of_out_of_range_value_is_printable)
{
    ck_assert_str_eq(task_status_name(TASK_STATUS_COUNT), "unknown");
    ck_assert_str_eq(task_status_name((enum task_status) - 1), "unknown");
}
END_TEST

START_TEST(test_terminal_statuses_are_the_four_ends)
{
    ck_assert(task_status_terminal(TASK_FINISHED));
    ck_assert(task_status_terminal(TASK_ERROR));
    ck_assert(task_status_terminal(TASK_CANCELLED));
    ck_assert(task_status_terminal(TASK_ABNORMAL));
    ck_assert(!task_status_terminal(TASK_PENDING));
    ck_assert(!task_status_terminal(TASK_ASSIGNED));
    ck_assert(!task_status_terminal(TASK_RUNNING));
    ck_assert(!task_status_terminal(TASK_NODE_DISCONNECTED));
}
END_TEST

/* The design's state machine written out as pairs, independent of the implementation's table, so
 * that every one of the 64 pairs is checked both ways. */
static const enum task_status design_moves[][2] = {
    {TASK_PENDING, TASK_ASSIGNED},
    {TASK_PENDING, TASK_CANCELLED},
    {TASK_ASSIGNED, TASK_RUNNING},
    {TASK_ASSIGNED, TASK_FINISHED},
    {TASK_ASSIGNED, TASK_ERROR},
    {TASK_ASSIGNED, TASK_CANCELLED},
    {TASK_ASSIGNED, TASK_PENDING},
    {TASK_ASSIGNED, TASK_NODE_DISCONNECTED},
    {TASK_RUNNING, TASK_FINISHED},
    {TASK_RUNNING, TASK_ERROR},
    {TASK_RUNNING, TASK_CANCELLED},
    {TASK_RUNNING, TASK_NODE_DISCONNECTED},
    {TASK_NODE_DISCONNECTED, TASK_RUNNING},
    {TASK_NODE_DISCONNECTED, TASK_ABNORMAL},
    {TASK_NODE_DISCONNECTED, TASK_FINISHED},
    {TASK_NODE_DISCONNECTED, TASK_ERROR},
    {TASK_NODE_DISCONNECTED, TASK_CANCELLED},
    {TASK_NODE_DISCONNECTED, TASK_PENDING},
};

static bool in_design(enum task_status from, enum task_status to)
{
    for (size_t i = 0; i < sizeof(design_moves) / sizeof(design_moves[0]); i++)
        if (design_moves[i][0] == from && design_moves[i][1] == to)
            return true;
    return false;
}

START_TEST(test_transitions_allow_exactly_the_design_moves)
{
    for (int from = 0; from < TASK_STATUS_COUNT; from++) {
        for (int to = 0; to < TASK_STATUS_COUNT; to++) {
            bool want = in_design((enum task_status)from, (enum task_status)to);
            bool got = task_transition_allowed((enum task_status)from, (enum task_status)to);
            ck_assert_msg(got == want, "%s -> %s: allowed=%d, design says %d",
                          task_status_name((enum task_status)from),
                          task_status_name((enum task_status)to), got, want);
        }
    }
}
END_TEST

START_TEST(test_same_status_is_not_a_move)
{
    for (int s = 0; s < TASK_STATUS_COUNT; s++)
        ck_assert(!task_transition_allowed((enum task_status)s, (enum task_status)s));
}
END_TEST

START_TEST(test_terminal_states_never_move)
{
    const enum task_status ends[] = {TASK_FINISHED, TASK_ERROR, TASK_CANCELLED, TASK_ABNORMAL};
    for (size_t i = 0; i < 4; i++)
        for (int to = 0; to < TASK_STATUS_COUNT; to++)
            ck_assert(!task_transition_allowed(ends[i], (enum task_status)to));
}
END_TEST

START_TEST(test_running_after_finished_is_refused)
{
    ck_assert(!task_transition_allowed(TASK_FINISHED, TASK_RUNNING));
    ck_assert(!task_transition_allowed(TASK_RUNNING, TASK_ASSIGNED));
    ck_assert(!task_transition_allowed(TASK_PENDING, TASK_RUNNING));
}
END_TEST

START_TEST(test_out_of_range_statuses_are_refused)
{
    ck_assert(!task_transition_allowed(TASK_STATUS_COUNT, TASK_RUNNING));
    ck_assert(!task_transition_allowed(TASK_PENDING, TASK_STATUS_COUNT));
    ck_assert(!task_transition_allowed((enum task_status) - 1, TASK_PENDING));
}
END_TEST

START_TEST(test_task_id_accepts_24_lowercase_hex)
{
    ck_assert(task_id_valid("0123456789abcdef01234567"));
    ck_assert(task_id_valid("000000000000000000000000"));
    ck_assert(task_id_valid("ffffffffffffffffffffffff"));
}
END_TEST

START_TEST(test_task_id_rejects_wrong_length_case_and_path_characters)
{
    ck_assert(!task_id_valid(NULL));
    ck_assert(!task_id_valid(""));
    ck_assert(!task_id_valid("0123456789abcdef0123456"));   /* 23 */
    ck_assert(!task_id_valid("0123456789abcdef012345678")); /* 25 */
    ck_assert(!task_id_valid("0123456789ABCDEF01234567"));
    ck_assert(!task_id_valid("0123456789abcdef0123456g"));
    ck_assert(!task_id_valid("../../../../etc/passwd.xx"));
    ck_assert(!task_id_valid("0123456789abcdef/1234567"));
    ck_assert(!task_id_valid(" 0123456789abcdef0123456"));
}
END_TEST

START_TEST(test_seq_unsequenced_batch_is_all_new)
{
    size_t skip = 99;
    ck_assert_int_eq(task_seq_window(42, 0, 5, &skip), 0);
    ck_assert_uint_eq(skip, 0);
}
END_TEST

START_TEST(test_seq_continuation_is_all_new)
{
    size_t skip = 99;
    ck_assert_int_eq(task_seq_window(10, 11, 5, &skip), 0);
    ck_assert_uint_eq(skip, 0);
    ck_assert_int_eq(task_seq_window(0, 1, 3, &skip), 0);
    ck_assert_uint_eq(skip, 0);
}
END_TEST

START_TEST(test_seq_resent_prefix_is_skipped)
{
    size_t skip = 0;
    /* Lines 8..12 arrive while 10 are stored: 8, 9, 10 are skipped. */
    ck_assert_int_eq(task_seq_window(10, 8, 5, &skip), 0);
    ck_assert_uint_eq(skip, 3);
}
END_TEST

START_TEST(test_seq_fully_resent_batch_is_skipped)
{
    size_t skip = 0;
    ck_assert_int_eq(task_seq_window(10, 1, 4, &skip), 0);
    ck_assert_uint_eq(skip, 4);
    ck_assert_int_eq(task_seq_window(10, 7, 4, &skip), 0);
    ck_assert_uint_eq(skip, 4);
}
END_TEST

START_TEST(test_seq_gap_is_refused_and_leaves_skip_alone)
{
    size_t skip = 77;
    ck_assert_int_eq(task_seq_window(10, 12, 1, &skip), -ERANGE);
    ck_assert_int_eq(task_seq_window(0, 2, 1, &skip), -ERANGE);
    ck_assert_uint_eq(skip, 77);
}
END_TEST

START_TEST(test_seq_empty_batch_is_never_a_gap)
{
    size_t skip = 77;
    ck_assert_int_eq(task_seq_window(0, 1000, 0, &skip), 0);
    ck_assert_uint_eq(skip, 0);
}
END_TEST

START_TEST(test_seq_extreme_values_do_not_overflow)
{
    size_t skip = 0;
    ck_assert_int_eq(task_seq_window(5, UINT64_MAX, 1, &skip), -ERANGE);
    ck_assert_int_eq(task_seq_window(UINT64_MAX, 1, 3, &skip), 0);
    ck_assert_uint_eq(skip, 3);
    ck_assert_int_eq(task_seq_window(UINT64_MAX - 1, UINT64_MAX, 2, &skip), 0);
    ck_assert_uint_eq(skip, 0);
}
END_TEST

static Suite *task_state_suite(void)
{
    Suite *s = suite_create("task_state");
    TCase *tc = tcase_create("status");
    tcase_add_test(tc, test_status_names_round_trip_through_parse);
    tcase_add_test(tc, test_status_parse_rejects_unknown_names_and_leaves_output_alone);
    tcase_add_test(tc, test_status_name_of_out_of_range_value_is_printable);
    tcase_add_test(tc, test_terminal_statuses_are_the_four_ends);
    suite_add_tcase(s, tc);

    tc = tcase_create("transitions");
    tcase_add_test(tc, test_transitions_allow_exactly_the_design_moves);
    tcase_add_test(tc, test_same_status_is_not_a_move);
    tcase_add_test(tc, test_terminal_states_never_move);
    tcase_add_test(tc, test_running_after_finished_is_refused);
    tcase_add_test(tc, test_out_of_range_statuses_are_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("ids");
    tcase_add_test(tc, test_task_id_accepts_24_lowercase_hex);
    tcase_add_test(tc, test_task_id_rejects_wrong_length_case_and_path_characters);
    suite_add_tcase(s, tc);

    tc = tcase_create("seq");
    tcase_add_test(tc, test_seq_unsequenced_batch_is_all_new);
    tcase_add_test(tc, test_seq_continuation_is_all_new);
    tcase_add_test(tc, test_seq_resent_prefix_is_skipped);
    tcase_add_test(tc, test_seq_fully_resent_batch_is_skipped);
    tcase_add_test(tc, test_seq_gap_is_refused_and_leaves_skip_alone);
    tcase_add_test(tc, test_seq_empty_batch_is_never_a_gap);
    tcase_add_test(tc, test_seq_extreme_values_do_not_overflow);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = task_state_suite};
