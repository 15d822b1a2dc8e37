/*
 * core/event.h: the kinds' names, which task status change is which event, and the JSON of an
 * event that hooks read and `events --json` prints.
 */
#include <check.h>
#include <string.h>

#include <jansson.h>

#include "check_main.h"
#include "core/event.h"

START_TEST(test_every_kind_has_its_own_name)
{
    for (int i = 0; i < EVENT_KIND_COUNT; i++) {
        const char *a = event_kind_name((enum event_kind)i);
        ck_assert_ptr_nonnull(a);
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(a, event_kind_name((enum event_kind)j));
    }
    ck_assert_ptr_null(event_kind_name(EVENT_KIND_COUNT));
    ck_assert_str_eq(event_kind_name(EVENT_TASK_FINISHED_EMPTY), "task.finished_empty");
}
END_TEST

START_TEST(test_task_statuses_map_to_their_events)
{
    enum event_kind k;
    ck_assert(event_of_task_status(TASK_RUNNING, 0, &k) && k == EVENT_TASK_STARTED);
    ck_assert(event_of_task_status(TASK_FINISHED, 2, &k) && k == EVENT_TASK_FINISHED);
    ck_assert(event_of_task_status(TASK_FINISHED, 0, &k) && k == EVENT_TASK_FINISHED_EMPTY);
    ck_assert(event_of_task_status(TASK_ERROR, 1, &k) && k == EVENT_TASK_ERROR);
    ck_assert(event_of_task_status(TASK_ABNORMAL, 0, &k) && k == EVENT_TASK_ABNORMAL);
    ck_assert(event_of_task_status(TASK_CANCELLED, 0, &k) && k == EVENT_TASK_CANCELLED);
    ck_assert(!event_of_task_status(TASK_PENDING, 0, &k));
    ck_assert(!event_of_task_status(TASK_ASSIGNED, 0, &k));
    ck_assert(!event_of_task_status(TASK_NODE_DISCONNECTED, 0, &k));
}
END_TEST

START_TEST(test_json_is_one_line_with_every_field)
{
    char *text = event_json(7, 1769860800123, "task.error", "w1", "679ced4093b4c1f2e1000003",
                            "{\"exit_code\":3}");
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_null(strchr(text, '\n'));
    ck_assert_str_eq(text, "{\"id\":7,\"time\":\"2026-01-31T12:00:00.123Z\","
                           "\"time_ms\":1769860800123,\"kind\":\"task.error\",\"node_key\":\"w1\","
                           "\"task_id\":\"679ced4093b4c1f2e1000003\",\"data\":{\"exit_code\":3}}");
    free(text);
}
END_TEST

START_TEST(test_json_keeps_data_that_is_not_an_object_as_a_string)
{
    char *text = event_json(1, 0, "x", "", "", "not json \xff");
    ck_assert_ptr_nonnull(text);
    json_t *o = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_string_value(json_object_get(o, "data")), "not json ?");
    ck_assert_str_eq(json_string_value(json_object_get(o, "time")), "1970-01-01T00:00:00.000Z");
    json_decref(o);
    free(text);
}
END_TEST

static Suite *event_suite(void)
{
    Suite *s = suite_create("event");
    TCase *tc = tcase_create("event");
    tcase_add_test(tc, test_every_kind_has_its_own_name);
    tcase_add_test(tc, test_task_statuses_map_to_their_events);
    tcase_add_test(tc, test_json_is_one_line_with_every_field);
    tcase_add_test(tc, test_json_keeps_data_that_is_not_an_object_as_a_string);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = event_suite};
