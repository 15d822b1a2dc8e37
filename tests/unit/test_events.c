/*
 * The master's events (master/events.h) and hooks (master/hooks.h) on a real store, group and
 * loop, without a gRPC server: an event is seen only once its group commits, the node registry
 * records node.online and node.offline, and a hook too far behind skips ahead and is told so by
 * hook.overflow. The hooks' order, retries, timeout and restart are in
 * tests/integration/test_events.py.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "check_main.h"
#include "master/events.h"
#include "master/group.h"
#include "master/hooks.h"
#include "master_fixture.h"

static struct group *group;
static struct events *events;

struct seen {
    struct events_watcher w; /* first */
    int calls;
};

static void on_new(struct events_watcher *w)
{
    ((struct seen *)w)->calls++;
}

static void on_commit(void *ctx, uint64_t n, bool ok)
{
    events_committed(events, ok);
}

static void setup(void)
{
    fixture_open();
    /* Hooks watch their processes with ev_child, which only the default loop has. */
    ev_loop_destroy(fx.loop);
    fx.loop = ev_default_loop(0);
    ck_assert_int_eq(group_create(fx.loop, fx.store, NULL, &group), 0);
    ck_assert_int_eq(events_create(fx.loop, fx.store, group, &events), 0);
    group_on_commit(group, on_commit, NULL);
}

static void teardown(void)
{
    group_destroy(group);
    events_destroy(events);
    fixture_close();
}

START_TEST(test_an_event_is_seen_once_its_group_commits)
{
    struct seen s = {.w.on_new = on_new};
    events_watch(events, &s.w);
    events_join(events);
    int64_t id = events_emit(events, EVENT_NODE_ONLINE, "w1", NULL, "{\"name\":\"w1\"}");
    ck_assert_int_gt(id, 0);
    ck_assert_int_eq(events_last(events), 0);
    ck_assert_int_eq(s.calls, 0);
    group_commit(group);
    ck_assert_int_eq(events_last(events), id);
    ck_assert_int_eq(s.calls, 1);
    /* A rolled-back group's events are never seen. */
    events_join(events);
    ck_assert_int_gt(events_emit(events, EVENT_NODE_OFFLINE, "w1", NULL, NULL), id);
    events_committed(events, false);
    ck_assert_int_eq(events_last(events), id);
    ck_assert_int_eq(s.calls, 1);
    events_unwatch(events, &s.w);
}
END_TEST

struct kind_count {
    const char *kind;
    int n;
};

static int count_kind(void *ctx, const struct event_row *e)
{
    struct kind_count *k = ctx;
    if (strcmp(e->kind, k->kind) == 0)
        k->n++;
    return 0;
}

/* How many events of kind are stored, once the open group is committed. */
static int stored(const char *kind)
{
    struct kind_count k = {kind, 0};
    group_commit(group);
    ck_assert_int_eq(store_event_page(fx.store, 0, INT64_MAX, 0, count_kind, &k), 0);
    return k.n;
}

START_TEST(test_nodes_record_online_once_and_offline)
{
    struct nodes *n;
    const struct nodes_opts opts = {.heartbeat_interval_ms = 1000};
    ck_assert_int_eq(nodes_create(fx.loop, fx.store, &opts, &n), 0);
    nodes_set_events(n, events);
    struct node_hello hello = {.key = "w1",
                               .name = "one",
                               .machine_id = "m1",
                               .version = "v",
                               .max_runners = 1,
                               .peer = "test"};
    struct node *node;
    ck_assert_int_eq(nodes_register(n, &hello, &node), 0);
    ck_assert_int_eq(nodes_register(n, &hello, &node), 0); /* already online: no news */
    ck_assert_int_eq(stored("node.online"), 1);
    struct fake_node_stream *fs = fixture_node_stream();
    ck_assert_int_eq(nodes_stream_attach(n, node, &fixture_node_ops, fs), 0);
    nodes_stream_gone(n, node, fs, "gone");
    ck_assert_int_eq(stored("node.offline"), 1);
    nodes_destroy(n);
}
END_TEST

static bool file_has_line(const char *path, char *line, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool got = fgets(line, (int)cap, f) != NULL;
    fclose(f);
    return got;
}

static char out_path[128];
static char line[1024];
static bool delivered;

static void on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    delivered = file_has_line(out_path, line, sizeof(line));
}

static int keep_data(void *ctx, const struct event_row *e)
{
    json_t **out = ctx;
    json_decref(*out);
    *out = json_loads(e->data, 0, NULL);
    return 0;
}

/* The data is written without jansson: it must still read back as the same values, whatever
 * the strings hold (quotes, backslashes, every control character, multi-byte UTF-8). */
START_TEST(test_a_task_event_data_reads_back_as_json)
{
    char error[64] = "a\"b\\c/\xc3\xa9\x7f";
    size_t n = strlen(error);
    for (int c = 1; c < 0x20; c++)
        error[n++] = (char)c;
    error[n] = '\0';
    struct task_row r = {.name = "quote \" and \\",
                         .status = TASK_ERROR,
                         .exit_code = -3,
                         .error = error,
                         .log_lines = 7,
                         .created_ms = 1700000000123,
                         .retry_of = "0123456789abcdef01234567",
                         .attempt = 2,
                         .ended_ms = 5};
    events_task(events, EVENT_TASK_ERROR, "0123456789abcdef01234568", &r, "w1");
    events_task(events, EVENT_TASK_NOTIFICATION, "0123456789abcdef01234569", NULL, NULL);
    group_commit(group);
    json_t *data = NULL;
    ck_assert_int_eq(store_event_page(fx.store, 0, 1, 0, keep_data, &data), 0);
    ck_assert_ptr_nonnull(data);
    ck_assert_str_eq(json_string_value(json_object_get(data, "name")), r.name);
    ck_assert_str_eq(json_string_value(json_object_get(data, "status")), "error");
    ck_assert_str_eq(json_string_value(json_object_get(data, "error")), error);
    ck_assert_int_eq(json_integer_value(json_object_get(data, "exit_code")), -3);
    ck_assert_int_eq(json_integer_value(json_object_get(data, "created_ms")), 1700000000123);
    ck_assert_int_eq(json_integer_value(json_object_get(data, "attempt")), 2);
    ck_assert_ptr_null(json_object_get(data, "started_ms"));
    ck_assert_int_eq(json_object_size(data), 10);
    /* Without a row: an empty object. */
    ck_assert_int_eq(store_event_page(fx.store, 1, 2, 0, keep_data, &data), 0);
    ck_assert_ptr_nonnull(data);
    ck_assert_int_eq(json_object_size(data), 0);
    json_decref(data);
}
END_TEST

START_TEST(test_a_hook_far_behind_skips_ahead_and_gets_an_overflow_event)
{
    snprintf(out_path, sizeof(out_path), "%s/out", fx.dir);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cat > %s.tmp && mv %s.tmp %s", out_path, out_path, out_path);
    for (int i = 0; i < 5; i++)
        ck_assert_int_gt(events_emit(events, EVENT_NODE_ONLINE, "w1", NULL, NULL), 0);
    /* The hook delivered none of them (it was down, say). */
    ck_assert_int_eq(store_event_cursor_set(fx.store, cmd, 0), 0);
    char *const cmds[] = {cmd};
    const struct hooks_opts opts = {
        .cmds = cmds, .n_cmds = 1, .timeout_ms = 10000, .backlog_max = 2};
    struct hooks *hooks;
    ck_assert_int_eq(hooks_create(fx.loop, fx.store, group, events, &opts, &hooks), 0);
    ev_timer poll;
    ev_timer_init(&poll, on_poll, 0.02, 0.02);
    ev_timer_start(fx.loop, &poll);
    delivered = false;
    fixture_run_until(&delivered);
    ev_timer_stop(fx.loop, &poll);
    ck_assert_msg(strstr(line, "\"id\":6,") && strstr(line, "\"kind\":\"hook.overflow\"") &&
                      strstr(line, "\"skipped\":5,\"after\":0,\"through\":5"),
                  "%s", line);
    hooks_destroy(hooks);
}
END_TEST

static Suite *events_suite(void)
{
    Suite *s = suite_create("events");
    TCase *tc = tcase_create("events");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_an_event_is_seen_once_its_group_commits);
    tcase_add_test(tc, test_nodes_record_online_once_and_offline);
    tcase_add_test(tc, test_a_task_event_data_reads_back_as_json);
    tcase_add_test(tc, test_a_hook_far_behind_skips_ahead_and_gets_an_overflow_event);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = events_suite};
