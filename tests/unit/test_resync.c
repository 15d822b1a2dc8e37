/*
 * The decisions of a resync, one behaviour each: what the master does with tasks a returning
 * node no longer lists, when it hands a re-queued task back, what the cursor tells the worker, and
 * what the worker drops as already stored.
 */
#include "check_main.h"

#include "core/resync.h"

START_TEST(a_missing_task_that_never_started_goes_back_to_the_queue)
{
    ck_assert_int_eq(resync_missing(false), RESYNC_REQUEUE);
}
END_TEST

START_TEST(a_missing_task_that_had_started_is_lost)
{
    ck_assert_int_eq(resync_missing(true), RESYNC_LOST);
}
END_TEST

START_TEST(a_requeued_task_the_worker_started_is_adopted)
{
    struct resync_row row = {.status = TASK_PENDING};
    enum task_status running = TASK_RUNNING, finished = TASK_FINISHED;
    ck_assert(resync_adopts(&row, &running));
    ck_assert(resync_adopts(&row, &finished));
}
END_TEST

START_TEST(a_task_is_not_adopted_unless_the_worker_has_its_process)
{
    struct resync_row row = {.status = TASK_PENDING};
    enum task_status assigned = TASK_ASSIGNED;
    ck_assert(!resync_adopts(&row, NULL));
    ck_assert(!resync_adopts(&row, &assigned));
}
END_TEST

START_TEST(a_task_is_not_adopted_when_it_is_not_pending_or_belongs_elsewhere)
{
    enum task_status running = TASK_RUNNING;
    struct resync_row assigned = {.status = TASK_ASSIGNED};
    struct resync_row elsewhere = {.status = TASK_PENDING, .targets_elsewhere = true};
    struct resync_row ours = {.status = TASK_PENDING, .held_here = true};
    ck_assert(!resync_adopts(&assigned, &running));
    ck_assert(!resync_adopts(&elsewhere, &running));
    ck_assert(!resync_adopts(&ours, &running));
}
END_TEST

START_TEST(a_task_of_another_node_is_killed)
{
    struct resync_row row = {.status = TASK_RUNNING};
    struct resync_verdict v = resync_cursor(&row);
    ck_assert(v.cancel);
    ck_assert(v.force);
}
END_TEST

START_TEST(a_held_task_runs_on_unless_cancelled_or_over)
{
    struct resync_row row = {.status = TASK_RUNNING, .held_here = true};
    struct resync_verdict v = resync_cursor(&row);
    ck_assert(!v.cancel);
    row.cancel_requested = true;
    v = resync_cursor(&row);
    ck_assert(v.cancel);
    ck_assert(!v.force);
    row.cancel_force = true;
    ck_assert(resync_cursor(&row).force);
    struct resync_row ended = {.status = TASK_ABNORMAL, .held_here = true};
    ck_assert(resync_cursor(&ended).cancel);
}
END_TEST

START_TEST(a_task_listed_under_an_older_epoch_is_killed_and_never_adopted)
{
    struct resync_row held = {.status = TASK_RUNNING, .held_here = true, .stale = true};
    struct resync_verdict v = resync_cursor(&held);
    ck_assert(v.cancel);
    ck_assert(v.force);
    struct resync_row requeued = {.status = TASK_PENDING, .stale = true};
    enum task_status running = TASK_RUNNING;
    ck_assert(!resync_adopts(&requeued, &running));
}
END_TEST

START_TEST(kept_messages_up_to_the_master_count_are_stored)
{
    ck_assert(resync_stored(10, 10, 0));
    ck_assert(!resync_stored(11, 10, 0));
    ck_assert(resync_stored(0, 0, 0));
}
END_TEST

START_TEST(records_the_worker_dropped_shift_the_master_count)
{
    /* The worker produced 12 records and gave up 2 of them: the master holds 10 of the rest. */
    ck_assert(resync_stored(12, 10, 2));
    ck_assert(!resync_stored(13, 10, 2));
}
END_TEST

static Suite *resync_suite(void)
{
    Suite *s = suite_create("resync");
    TCase *master = tcase_create("master");
    tcase_add_test(master, a_missing_task_that_never_started_goes_back_to_the_queue);
    tcase_add_test(master, a_missing_task_that_had_started_is_lost);
    tcase_add_test(master, a_requeued_task_the_worker_started_is_adopted);
    tcase_add_test(master, a_task_is_not_adopted_unless_the_worker_has_its_process);
    tcase_add_test(master, a_task_is_not_adopted_when_it_is_not_pending_or_belongs_elsewhere);
    tcase_add_test(master, a_task_of_another_node_is_killed);
    tcase_add_test(master, a_held_task_runs_on_unless_cancelled_or_over);
    tcase_add_test(master, a_task_listed_under_an_older_epoch_is_killed_and_never_adopted);
    suite_add_tcase(s, master);
    TCase *worker = tcase_create("worker");
    tcase_add_test(worker, kept_messages_up_to_the_master_count_are_stored);
    tcase_add_test(worker, records_the_worker_dropped_shift_the_master_count);
    suite_add_tcase(s, worker);
    return s;
}

const struct unit_tests unit_tests = {.suite = resync_suite};
