/*
 * The fenced claim's decisions, one behaviour each: which reports the master accepts under which
 * epoch, and what the worker does with its claim's answer and with a cursor before it started.
 */
#include "check_main.h"

#include "core/fence.h"

START_TEST(an_epoch_is_stale_only_when_named_and_different)
{
    ck_assert(!fence_stale(3, 3));
    ck_assert(!fence_stale(3, 0));
    ck_assert(fence_stale(3, 2));
    ck_assert(fence_stale(3, 4));
    ck_assert(fence_stale(0, 1));
}
END_TEST

START_TEST(a_claim_under_the_current_epoch_is_accepted)
{
    struct fence_row row = {.status = TASK_ASSIGNED, .held_here = true, .epoch = 7};
    ck_assert_int_eq(fence_report(&row, TASK_RUNNING, 7), FENCE_ACCEPT);
    /* the node went offline meanwhile: the claim brings the task back */
    row.status = TASK_NODE_DISCONNECTED;
    ck_assert_int_eq(fence_report(&row, TASK_RUNNING, 7), FENCE_ACCEPT);
    /* a repeated claim, whose first answer was lost */
    row.status = TASK_RUNNING;
    ck_assert_int_eq(fence_report(&row, TASK_RUNNING, 7), FENCE_ACCEPT);
}
END_TEST

START_TEST(a_claim_under_an_older_epoch_is_refused)
{
    /* taken back and handed to this same node again: the old claim is still not this one */
    struct fence_row row = {.status = TASK_ASSIGNED, .held_here = true, .epoch = 9};
    ck_assert_int_eq(fence_report(&row, TASK_RUNNING, 7), FENCE_STALE);
    ck_assert_str_ne(fence_reason(FENCE_STALE), "");
}
END_TEST

START_TEST(a_claim_for_a_task_assigned_elsewhere_is_refused)
{
    struct fence_row row = {.status = TASK_ASSIGNED, .held_here = false, .epoch = 7};
    ck_assert_int_eq(fence_report(&row, TASK_RUNNING, 7), FENCE_ELSEWHERE);
    ck_assert_int_eq(fence_report(&row, TASK_RUNNING, 0), FENCE_ELSEWHERE);
}
END_TEST

START_TEST(a_claim_for_an_ended_task_is_refused)
{
    struct fence_row row = {.status = TASK_ABNORMAL, .held_here = true, .epoch = 7};
    ck_assert_int_eq(fence_report(&row, TASK_RUNNING, 7), FENCE_OVER);
    row.status = TASK_CANCELLED;
    ck_assert_int_eq(fence_report(&row, TASK_RUNNING, 7), FENCE_OVER);
}
END_TEST

START_TEST(an_end_report_for_an_ended_task_is_accepted_as_a_repeat)
{
    /* the state machine ignores it; refusing it would only make the worker log an error */
    struct fence_row row = {.status = TASK_ABNORMAL, .held_here = true, .epoch = 7};
    ck_assert_int_eq(fence_report(&row, TASK_CANCELLED, 7), FENCE_ACCEPT);
    ck_assert_int_eq(fence_report(&row, TASK_FINISHED, 7), FENCE_ACCEPT);
}
END_TEST

START_TEST(a_stale_end_report_is_refused)
{
    struct fence_row row = {.status = TASK_RUNNING, .held_here = true, .epoch = 8};
    ck_assert_int_eq(fence_report(&row, TASK_FINISHED, 7), FENCE_STALE);
}
END_TEST

START_TEST(a_report_without_an_epoch_is_judged_as_before_fencing)
{
    struct fence_row row = {.status = TASK_ABNORMAL, .held_here = true, .epoch = 8};
    ck_assert_int_eq(fence_report(&row, TASK_RUNNING, 0), FENCE_ACCEPT);
    row.status = TASK_ASSIGNED;
    ck_assert_int_eq(fence_report(&row, TASK_RUNNING, 0), FENCE_ACCEPT);
}
END_TEST

START_TEST(a_fetch_is_answered_before_it_is_durable_only_for_a_node_that_claims)
{
    ck_assert(fence_fetch_answer_early(true));
    ck_assert(!fence_fetch_answer_early(false));
}
END_TEST

START_TEST(a_task_is_claimed_only_when_the_master_gave_an_epoch)
{
    ck_assert(fence_claim_needed(1));
    ck_assert(!fence_claim_needed(0));
}
END_TEST

START_TEST(a_pushed_task_starts_at_once_only_under_an_epoch)
{
    ck_assert(fence_push_start(7));
    ck_assert(!fence_push_start(0));
}
END_TEST

START_TEST(the_worker_spawns_only_on_an_accepted_claim)
{
    ck_assert_int_eq(fence_claim_answer(true, false), FENCE_SPAWN);
    ck_assert_int_eq(fence_claim_answer(false, true), FENCE_DROP);
    ck_assert_int_eq(fence_claim_answer(false, false), FENCE_RETRY);
}
END_TEST

START_TEST(a_cancelling_cursor_drops_a_task_not_started_yet)
{
    ck_assert(fence_cursor_drops(false, true));
    ck_assert(!fence_cursor_drops(false, false));
    ck_assert(!fence_cursor_drops(true, true));
}
END_TEST

static Suite *fence_suite(void)
{
    Suite *s = suite_create("fence");
    TCase *master = tcase_create("master");
    tcase_add_test(master, an_epoch_is_stale_only_when_named_and_different);
    tcase_add_test(master, a_claim_under_the_current_epoch_is_accepted);
    tcase_add_test(master, a_claim_under_an_older_epoch_is_refused);
    tcase_add_test(master, a_claim_for_a_task_assigned_elsewhere_is_refused);
    tcase_add_test(master, a_claim_for_an_ended_task_is_refused);
    tcase_add_test(master, an_end_report_for_an_ended_task_is_accepted_as_a_repeat);
    tcase_add_test(master, a_stale_end_report_is_refused);
    tcase_add_test(master, a_report_without_an_epoch_is_judged_as_before_fencing);
    tcase_add_test(master, a_fetch_is_answered_before_it_is_durable_only_for_a_node_that_claims);
    suite_add_tcase(s, master);
    TCase *worker = tcase_create("worker");
    tcase_add_test(worker, a_task_is_claimed_only_when_the_master_gave_an_epoch);
    tcase_add_test(worker, a_pushed_task_starts_at_once_only_under_an_epoch);
    tcase_add_test(worker, the_worker_spawns_only_on_an_accepted_claim);
    tcase_add_test(worker, a_cancelling_cursor_drops_a_task_not_started_yet);
    suite_add_tcase(s, worker);
    return s;
}

const struct unit_tests unit_tests = {.suite = fence_suite};
