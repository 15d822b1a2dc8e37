/*
 * The master's node registry (master/nodes.h) on a real store and a real loop, without a gRPC
 * server: registration, heartbeats and the liveness sweep, the live stream, picking a node with
 * room, draining, and the count of held tasks.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "master/clock.h"
#include "master_fixture.h"

/* Short, so that a test waits little for the sweep; long enough that the loop keeps up with it. */
#define INTERVAL_MS 50

static struct nodes *nodes;

/* What the offline listener saw. */
static struct {
    int calls;
    struct node *last;
    int64_t at_mono_ms; /* the monotonic clock, which liveness is judged by */
    bool seen;
} offline;

static void on_offline(void *ctx, struct node *node)
{
    offline.calls++;
    offline.last = node;
    offline.at_mono_ms = clock_mono_ms();
    offline.seen = true;
}

static void start(bool bind_node_key)
{
    const struct nodes_opts opts = {.heartbeat_interval_ms = INTERVAL_MS,
                                    .bind_node_key = bind_node_key};
    ck_assert_int_eq(nodes_create(fx.loop, fx.store, &opts, &nodes), 0);
    nodes_on_offline(nodes, on_offline, NULL);
}

static void setup(void)
{
    fixture_open();
    memset(&offline, 0, sizeof(offline));
    start(false);
}

static void teardown(void)
{
    nodes_destroy(nodes);
    fixture_close();
}

static struct node *reg(const char *key, const char *machine_id, int max_runners)
{
    const struct node_hello hello = {.key = key,
                                     .name = "name",
                                     .machine_id = machine_id,
                                     .version = "1.0",
                                     .max_runners = max_runners,
                                     .peer = "test"};
    struct node *node = NULL;
    ck_assert_int_eq(nodes_register(nodes, &hello, &node), 0);
    ck_assert_ptr_nonnull(node);
    return node;
}

static void attach(struct node *node, struct fake_node_stream *s)
{
    ck_assert_int_eq(nodes_stream_attach(nodes, node, &fixture_node_ops, s), 0);
}

static const char *stored_status(const char *key)
{
    static struct node_row row;
    ck_assert_int_eq(store_node_get(fx.store, key, &row), 0);
    return row.status;
}

/* ---- registration ---- */

START_TEST(test_registered_node_is_online_in_memory_and_in_the_store)
{
    struct node *node = reg("n1", "m1", 2);
    ck_assert(node->online);
    ck_assert_int_eq(node->max_runners, 2);
    ck_assert_int_eq(node->active, 0);
    ck_assert_ptr_eq(nodes_find(nodes, "n1"), node);
    ck_assert_uint_eq(nodes_count(nodes), 1);
    ck_assert_str_eq(stored_status("n1"), STORE_NODE_ONLINE);
}
END_TEST

START_TEST(test_a_key_registering_in_a_loop_is_refused_without_a_change)
{
    /* The first registration makes the node; then a burst of registrations again. */
    struct node *node = reg("n1", "m1", 2);
    for (int i = 0; i < LIMIT_REGISTER_BURST; i++)
        reg("n1", "m1", 2);
    const struct node_hello again = {.key = "n1",
                                     .name = "renamed",
                                     .machine_id = "m1",
                                     .version = "1.0",
                                     .max_runners = 7,
                                     .peer = "test"};
    struct node *got = NULL;
    ck_assert_int_eq(nodes_register(nodes, &again, &got), -EAGAIN);
    ck_assert_int_eq(node->max_runners, 2);
    ck_assert_str_eq(node->name, "name");
    /* Other keys are not held back by it. */
    reg("n2", "m2", 1);
}
END_TEST

START_TEST(test_live_key_is_taken_over_only_by_the_same_machine)
{
    struct node *node = reg("n1", "m1", 1);
    struct fake_node_stream *s = fixture_node_stream();
    attach(node, s);
    const struct node_hello other = {.key = "n1",
                                     .name = "x",
                                     .machine_id = "m2",
                                     .version = "",
                                     .max_runners = 1,
                                     .peer = "test"};
    struct node *got;
    ck_assert_int_eq(nodes_register(nodes, &other, &got), -EADDRINUSE);
    const struct node_hello anonymous = {.key = "n1",
                                         .name = "x",
                                         .machine_id = "",
                                         .version = "",
                                         .max_runners = 1,
                                         .peer = "test"};
    ck_assert_int_eq(nodes_register(nodes, &anonymous, &got), -EADDRINUSE);
    ck_assert(!s->ended);

    /* The same worker restarting takes over: its old stream ends. */
    ck_assert_ptr_eq(reg("n1", "m1", 3), node);
    ck_assert(s->ended);
    ck_assert_int_eq(s->end_why, NODE_END_REPLACED);
    ck_assert_ptr_null(node->stream);
    ck_assert_int_eq(node->max_runners, 3);
    ck_assert_int_eq(offline.calls, 0);

    /* Without a live stream, the key is free for anyone. */
    ck_assert_int_eq(nodes_register(nodes, &other, &got), 0);
    ck_assert_ptr_eq(got, node);
}
END_TEST

START_TEST(test_identity_binding)
{
    ck_assert(nodes_identity_ok(nodes, NULL, "n1"));
    ck_assert(nodes_identity_ok(nodes, "n2", "n1"));
    nodes_destroy(nodes);
    start(true);
    ck_assert(!nodes_identity_ok(nodes, NULL, "n1"));
    ck_assert(!nodes_identity_ok(nodes, "n2", "n1"));
    ck_assert(nodes_identity_ok(nodes, "n1", "n1"));
}
END_TEST

/* ---- liveness ---- */

/* A worker that answers the first `answers` heartbeat pushes, then falls silent. */
struct worker {
    struct node *node;
    int answers;
};

static void answer_heartbeat(struct fake_node_stream *s, enum node_push what)
{
    struct worker *w = s->ctx;
    if (what == NODE_PUSH_HEARTBEAT && w->answers > 0) {
        w->answers--;
        ck_assert_int_eq(nodes_heartbeat(nodes, w->node, 0), 0);
    }
}

START_TEST(test_node_goes_offline_after_three_missed_heartbeats)
{
    struct node *node = reg("n1", "m1", 1);
    struct worker w = {.node = node, .answers = 3};
    struct fake_node_stream *s = fixture_node_stream();
    s->on_push = answer_heartbeat;
    s->ctx = &w;
    attach(node, s);
    fixture_run_until(&offline.seen);

    /* Every answered heartbeat kept it online; it went offline only after it stopped. */
    ck_assert_int_eq(w.answers, 0);
    ck_assert_int_ge(s->pushes[NODE_PUSH_HEARTBEAT], 3);
    ck_assert_int_gt(offline.at_mono_ms - node->last_heard_ms, 3 * INTERVAL_MS);
    ck_assert_int_eq(offline.calls, 1);
    ck_assert_ptr_eq(offline.last, node);
    ck_assert(!node->online);
    ck_assert(s->ended);
    ck_assert_int_eq(s->end_why, NODE_END_SILENT);
    ck_assert_ptr_null(node->stream);
    ck_assert_str_eq(stored_status("n1"), STORE_NODE_OFFLINE);

    /* Offline, it must register again. */
    ck_assert_int_eq(nodes_heartbeat(nodes, node, 0), -ENOTCONN);
    ck_assert_int_eq(nodes_stream_attach(nodes, node, &fixture_node_ops, s), -ENOTCONN);
    reg("n1", "m1", 1);
    ck_assert(node->online);
    ck_assert_str_eq(stored_status("n1"), STORE_NODE_ONLINE);
}
END_TEST

START_TEST(test_node_online_before_a_restart_gets_three_intervals_to_come_back)
{
    reg("n1", "m1", 1);
    nodes_destroy(nodes);
    start(false);
    struct node *node = nodes_find(nodes, "n1");
    ck_assert_ptr_nonnull(node);
    ck_assert(node->online);
    ck_assert_int_eq(node->max_runners, 1);
    fixture_run_until(&offline.seen);
    ck_assert_ptr_eq(offline.last, node);
    ck_assert_str_eq(stored_status("n1"), STORE_NODE_OFFLINE);
}
END_TEST

START_TEST(test_stream_gone_takes_the_node_offline_once)
{
    struct node *node = reg("n1", "m1", 1);
    struct fake_node_stream *old = fixture_node_stream(), *cur = fixture_node_stream();
    attach(node, old);
    attach(node, cur);
    ck_assert(old->ended);
    ck_assert_int_eq(old->end_why, NODE_END_REPLACED);

    /* The replaced stream's end is no news about the node. */
    nodes_stream_gone(nodes, node, old, "old stream ended");
    ck_assert(node->online);
    ck_assert_int_eq(offline.calls, 0);

    nodes_stream_gone(nodes, node, cur, "stream ended");
    ck_assert(!node->online);
    ck_assert_ptr_null(node->stream);
    ck_assert(!cur->ended); /* it ended on its own side */
    ck_assert_int_eq(offline.calls, 1);
    nodes_stream_gone(nodes, node, cur, "stream ended");
    ck_assert_int_eq(offline.calls, 1);
}
END_TEST

/* ---- dispatch ---- */

START_TEST(test_pick_free_spreads_work_and_respects_capacity)
{
    struct node *a = reg("a", "ma", 1), *b = reg("b", "mb", 1);
    struct node *quiet = reg("quiet", "mq", 5); /* online, but without a stream */
    struct fake_node_stream *sa = fixture_node_stream(), *sb = fixture_node_stream();
    attach(a, sa);
    attach(b, sb);

    struct node *first = nodes_pick_free(nodes, NULL);
    ck_assert(first == a || first == b);
    nodes_task_held(nodes, first->key);
    struct node *second = nodes_pick_free(nodes, NULL);
    ck_assert(second == a || second == b);
    ck_assert_ptr_ne(second, first);
    nodes_task_held(nodes, second->key);
    ck_assert_ptr_null(nodes_pick_free(nodes, NULL));

    nodes_task_released(nodes, first->key);
    ck_assert_ptr_eq(nodes_pick_free(nodes, NULL), first);
    ck_assert_ptr_eq(nodes_pick_free(nodes, NULL), first);
    ck_assert_int_eq(quiet->active, 0);

    ck_assert(nodes_notify_task(first));
    ck_assert_int_eq(first == a ? sa->pushes[NODE_PUSH_TASK_AVAILABLE]
                                : sb->pushes[NODE_PUSH_TASK_AVAILABLE],
                     1);
    ck_assert(!nodes_notify_task(quiet));
}
END_TEST

/* A selector picks among the nodes that have its labels; a disabled node is never picked. */
START_TEST(test_pick_free_takes_labels_and_states_into_account)
{
    const struct node_hello hello = {.key = "gpu",
                                     .name = "box",
                                     .machine_id = "mg",
                                     .labels = "gpu=1\nzone=eu",
                                     .max_runners = 4,
                                     .peer = "test"};
    struct node *gpu = NULL, *cpu = reg("cpu", "mc", 4);
    ck_assert_int_eq(nodes_register(nodes, &hello, &gpu), 0);
    attach(gpu, fixture_node_stream());
    attach(cpu, fixture_node_stream());
    ck_assert_str_eq(gpu->labels, "gpu=1\nzone=eu");
    ck_assert_ptr_eq(nodes_pick_free(nodes, "zone=eu\ngpu=1"), gpu);
    ck_assert_ptr_eq(nodes_pick_free(nodes, "gpu=1"), gpu);
    ck_assert_ptr_null(nodes_pick_free(nodes, "gpu=2"));
    ck_assert(nodes_any_takes(nodes, "gpu=1"));

    ck_assert_int_eq(nodes_change(nodes, gpu, NODE_DISABLE), 0);
    ck_assert_ptr_null(nodes_pick_free(nodes, "gpu=1"));
    ck_assert(!nodes_any_takes(nodes, "gpu=1"));
    ck_assert_ptr_eq(nodes_pick_free(nodes, NULL), cpu);
    ck_assert_int_eq(nodes_change(nodes, gpu, NODE_ENABLE), 0);
    ck_assert_ptr_eq(nodes_pick_free(nodes, "gpu=1"), gpu);
}
END_TEST

/* Drain: disabled once the last held task is released, or at once when none is held; the state
 * is stored and a registration keeps it; a node is removed only offline and idle. */
START_TEST(test_drain_disable_and_remove)
{
    struct node *node = reg("n1", "m1", 2);
    struct node_row row;
    nodes_task_held(nodes, "n1");
    ck_assert_int_eq(nodes_change(nodes, node, NODE_DRAIN), 0);
    ck_assert_int_eq(node->state, NODE_DRAINING);
    ck_assert(!nodes_takes(node, NULL));
    ck_assert_int_eq(nodes_change(nodes, node, NODE_REMOVE), -EBUSY);
    nodes_task_released(nodes, "n1");
    ck_assert_int_eq(node->state, NODE_DISABLED);
    ck_assert_int_eq(store_node_get(fx.store, "n1", &row), 0);
    ck_assert_str_eq(row.state, STORE_NODE_DISABLED);
    ck_assert_ptr_eq(reg("n1", "m1", 2), node);
    ck_assert_int_eq(node->state, NODE_DISABLED);

    struct node *idle = reg("n2", "m2", 1);
    ck_assert_int_eq(nodes_change(nodes, idle, NODE_DRAIN), 0);
    ck_assert_int_eq(idle->state, NODE_DISABLED);

    struct node *dup = reg("n3", "m3", 1);
    snprintf(dup->name, sizeof(dup->name), "%s", idle->name);
    char why[256];
    struct node *got;
    ck_assert_int_eq(nodes_resolve(nodes, "name", &got, why, sizeof(why)), -ENOTUNIQ);
    ck_assert_ptr_nonnull(strstr(why, "n1"));
    ck_assert_ptr_nonnull(strstr(why, "n3"));
    ck_assert_int_eq(nodes_resolve(nodes, "n2", &got, why, sizeof(why)), 0);
    ck_assert_ptr_eq(got, idle);
    ck_assert_int_eq(nodes_resolve(nodes, "nobody", &got, why, sizeof(why)), -ENOENT);

    ck_assert_int_eq(nodes_change(nodes, idle, NODE_REMOVE), -EBUSY); /* online */
    attach(idle, fixture_node_stream());
    nodes_stream_gone(nodes, idle, idle->stream_handle, "test");
    ck_assert(!idle->online);
    ck_assert_int_eq(nodes_change(nodes, idle, NODE_REMOVE), 0);
    ck_assert_ptr_null(nodes_find(nodes, "n2"));
    ck_assert_int_eq(store_node_get(fx.store, "n2", &row), -ENOENT);
}
END_TEST

START_TEST(test_held_count_never_goes_below_zero)
{
    struct node *node = reg("n1", "m1", 2);
    nodes_task_released(nodes, "n1");
    ck_assert_int_eq(node->active, 0);
    nodes_task_held(nodes, "n1");
    nodes_task_held(nodes, "n1");
    nodes_task_held(nodes, "unknown");
    ck_assert_int_eq(node->active, 2);
    nodes_task_released(nodes, "n1");
    nodes_task_released(nodes, "n1");
    nodes_task_released(nodes, "n1");
    ck_assert_int_eq(node->active, 0);
}
END_TEST

static void count_call(void *ctx)
{
    (*(int *)ctx)++;
}

START_TEST(test_drain_tells_every_stream_and_takes_no_node_offline)
{
    struct node *a = reg("a", "ma", 1), *b = reg("b", "mb", 1);
    reg("c", "mc", 1); /* online, without a stream */
    struct fake_node_stream *sa = fixture_node_stream(), *sb = fixture_node_stream();
    attach(a, sa);
    attach(b, sb);
    int drained = 0;
    nodes_drain_all(nodes, count_call, &drained);
    ck_assert_int_eq(sa->pushes[NODE_PUSH_DRAIN], 1);
    ck_assert_int_eq(sb->pushes[NODE_PUSH_DRAIN], 1);
    struct fake_node_stream *late = fixture_node_stream();
    ck_assert_int_eq(nodes_stream_attach(nodes, a, &fixture_node_ops, late), -ESHUTDOWN);
    nodes_stream_gone(nodes, a, sa, "drained");
    ck_assert_ptr_null(a->stream);
    ck_assert(a->online);
    ck_assert_int_eq(offline.calls, 0);
    ck_assert_str_eq(stored_status("a"), STORE_NODE_ONLINE);
    /* Told once the last stream is gone, and only then. */
    ck_assert_int_eq(drained, 0);
    nodes_stream_gone(nodes, b, sb, "drained");
    ck_assert_int_eq(drained, 1);
    nodes_stream_gone(nodes, b, sb, "drained");
    ck_assert_int_eq(drained, 1);
}
END_TEST

START_TEST(test_drain_without_a_stream_is_over_at_once)
{
    reg("a", "ma", 1);
    int drained = 0;
    nodes_drain_all(nodes, count_call, &drained);
    ck_assert_int_eq(drained, 1);
}
END_TEST

static Suite *nodes_suite(void)
{
    Suite *s = suite_create("nodes");
    TCase *tc = tcase_create("nodes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_registered_node_is_online_in_memory_and_in_the_store);
    tcase_add_test(tc, test_a_key_registering_in_a_loop_is_refused_without_a_change);
    tcase_add_test(tc, test_live_key_is_taken_over_only_by_the_same_machine);
    tcase_add_test(tc, test_identity_binding);
    tcase_add_test(tc, test_node_goes_offline_after_three_missed_heartbeats);
    tcase_add_test(tc, test_node_online_before_a_restart_gets_three_intervals_to_come_back);
    tcase_add_test(tc, test_stream_gone_takes_the_node_offline_once);
    tcase_add_test(tc, test_pick_free_spreads_work_and_respects_capacity);
    tcase_add_test(tc, test_held_count_never_goes_below_zero);
    tcase_add_test(tc, test_pick_free_takes_labels_and_states_into_account);
    tcase_add_test(tc, test_drain_disable_and_remove);
    tcase_add_test(tc, test_drain_tells_every_stream_and_takes_no_node_offline);
    tcase_add_test(tc, test_drain_without_a_stream_is_over_at_once);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = nodes_suite};
