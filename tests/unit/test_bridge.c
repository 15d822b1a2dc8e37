#include "check_main.h"

#include <pthread.h>
#include <stdlib.h>

#include "runtime/bridge.h"

/*
 * The bridge's bound and batching, without gRPC traffic: completions are posted with bridge_post()
 * the way a poller posts them, while the pollers themselves wait on an empty completion queue.
 */

struct probe {
    struct bridge_tag tag;
    struct run *run;
    size_t index;
};

struct run {
    struct ev_loop *loop;
    struct bridge *bridge;
    struct probe *probes;
    size_t total, delivered;
    bool in_order;
    /* Per loop iteration (counted by a prepare watcher, like the master's commit point). */
    unsigned iteration, last_iteration, prepares;
    size_t in_iteration, most_in_one_iteration;
    size_t delivered_at_timer; /* SIZE_MAX until the timer ran */
};

static void on_probe(struct bridge_tag *tag, bool ok)
{
    struct probe *p = (struct probe *)tag;
    struct run *r = p->run;
    ck_assert(ok);
    r->in_order = r->in_order && p->index == r->delivered;
    r->delivered++;
    if (r->iteration != r->last_iteration) {
        r->last_iteration = r->iteration;
        r->in_iteration = 0;
    }
    if (++r->in_iteration > r->most_in_one_iteration)
        r->most_in_one_iteration = r->in_iteration;
    if (r->delivered == r->total)
        ev_break(r->loop, EVBREAK_ALL);
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct run *r = w->data;
    r->iteration++;
    if (r->delivered > 0 && r->delivered < r->total)
        r->prepares++;
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct run *r = w->data;
    r->delivered_at_timer = r->delivered;
}

static void on_guard(struct ev_loop *loop, ev_timer *w, int revents)
{
    ck_abort_msg("the completions were not all delivered within the guard time");
}

static void run_init(struct run *r, size_t total)
{
    grpc_init();
    *r = (struct run){.loop = ev_loop_new(EVFLAG_AUTO),
                      .total = total,
                      .in_order = true,
                      .delivered_at_timer = SIZE_MAX};
    ck_assert_int_eq(bridge_create(r->loop, &r->bridge), 0);
    r->probes = calloc(total, sizeof(*r->probes));
    ck_assert_ptr_nonnull(r->probes);
    for (size_t i = 0; i < total; i++)
        r->probes[i] = (struct probe){{on_probe}, r, i};
}

/* Runs the loop until every probe was delivered, with a prepare watcher counting iterations. */
static void run_loop(struct run *r)
{
    ev_prepare prepare;
    ev_prepare_init(&prepare, on_prepare);
    prepare.data = r;
    ev_prepare_start(r->loop, &prepare);
    ev_timer guard;
    ev_timer_init(&guard, on_guard, 30.0, 0.0);
    ev_timer_start(r->loop, &guard);
    ev_run(r->loop, 0);
    ev_timer_stop(r->loop, &guard);
    ev_prepare_stop(r->loop, &prepare);
}

static void run_done(struct run *r)
{
    bridge_destroy(r->bridge);
    ev_loop_destroy(r->loop);
    free(r->probes);
    grpc_shutdown();
}

START_TEST(test_a_full_queue_goes_out_a_batch_per_iteration_with_timers_in_between)
{
    struct run r;
    run_init(&r, BRIDGE_QUEUE_MAX);
    /* The loop is not running: filling the queue up to its bound does not wait. */
    for (size_t i = 0; i < r.total; i++)
        bridge_post(r.bridge, &r.probes[i].tag, true);
    ck_assert_uint_eq(bridge_queued(r.bridge), BRIDGE_QUEUE_MAX);
    ev_timer timer;
    ev_timer_init(&timer, on_timer, 0.0, 0.0);
    timer.data = &r;
    ev_timer_start(r.loop, &timer);
    run_loop(&r);

    ck_assert_uint_eq(r.delivered, r.total);
    ck_assert(r.in_order);
    ck_assert_uint_le(r.most_in_one_iteration, BRIDGE_BATCH);
    /* The timer was due from the start: it ran while completions were still queued. */
    ck_assert_uint_lt(r.delivered_at_timer, r.total);
    /* And the loop prepared for a new iteration between every two batches. */
    ck_assert_uint_ge(r.prepares, BRIDGE_QUEUE_MAX / BRIDGE_BATCH - 1);
    ck_assert_uint_eq(bridge_queued(r.bridge), 0);
    run_done(&r);
}
END_TEST

static void *post_all(void *arg)
{
    struct run *r = arg;
    for (size_t i = 0; i < r->total; i++)
        bridge_post(r->bridge, &r->probes[i].tag, true);
    return NULL;
}

START_TEST(test_a_poster_waits_for_room_and_nothing_is_lost_or_reordered)
{
    struct run r;
    /* Three times what the queue holds: the poster must wait for the loop twice at least. */
    run_init(&r, 3 * BRIDGE_QUEUE_MAX);
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, post_all, &r), 0);
    run_loop(&r);
    pthread_join(thread, NULL);

    ck_assert_uint_eq(r.delivered, r.total);
    ck_assert(r.in_order);
    ck_assert_uint_le(r.most_in_one_iteration, BRIDGE_BATCH);
    ck_assert_uint_eq(bridge_queued(r.bridge), 0);
    run_done(&r);
}
END_TEST

START_TEST(test_destroy_delivers_what_is_still_queued)
{
    struct run r;
    run_init(&r, BRIDGE_BATCH + 1);
    for (size_t i = 0; i < r.total; i++)
        bridge_post(r.bridge, &r.probes[i].tag, true);
    /* No loop iteration: bridge_destroy() hands everything out itself. */
    bridge_destroy(r.bridge);
    ck_assert_uint_eq(r.delivered, r.total);
    ck_assert(r.in_order);
    ev_loop_destroy(r.loop);
    free(r.probes);
    grpc_shutdown();
}
END_TEST

static Suite *bridge_suite(void)
{
    Suite *s = suite_create("bridge");
    TCase *tc = tcase_create("bound");
    tcase_add_test(tc, test_a_full_queue_goes_out_a_batch_per_iteration_with_timers_in_between);
    tcase_add_test(tc, test_a_poster_waits_for_room_and_nothing_is_lost_or_reordered);
    tcase_add_test(tc, test_destroy_delivers_what_is_still_queued);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = bridge_suite};
