#include "master_fixture.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "scratch.h"

/* The most loop time fixture_run_until waits for. */
#define RUN_LIMIT_S 10.0
/* The most fakes of each kind one test uses. */
#define FAKES_MAX 16

struct fixture fx;

static struct fake_node_stream node_fakes[FAKES_MAX];
static struct fake_task_stream task_fakes[FAKES_MAX];
static size_t n_node_fakes, n_task_fakes;

void fixture_open(void)
{
    memset(&fx, 0, sizeof(fx));
    memset(node_fakes, 0, sizeof(node_fakes));
    memset(task_fakes, 0, sizeof(task_fakes));
    n_node_fakes = n_task_fakes = 0;
    scratch_make(fx.dir, sizeof(fx.dir), "master");
    ck_assert_int_eq(store_open(fx.dir, &fx.store), 0);
    fx.loop = ev_loop_new(EVFLAG_AUTO);
    ck_assert_ptr_nonnull(fx.loop);
}

void fixture_close(void)
{
    store_close(fx.store);
    ev_loop_destroy(fx.loop);
    scratch_remove(fx.dir);
}

static void on_run_limit(struct ev_loop *loop, ev_timer *w, int revents)
{
    *(bool *)w->data = true;
}

void fixture_run_until(const bool *done)
{
    bool out_of_time = false;
    ev_timer limit;
    ev_timer_init(&limit, on_run_limit, RUN_LIMIT_S, 0.0);
    limit.data = &out_of_time;
    ev_timer_start(fx.loop, &limit);
    while (!*done && !out_of_time)
        ev_run(fx.loop, EVRUN_ONCE);
    ev_timer_stop(fx.loop, &limit);
    ck_assert_msg(*done, "what the test waits for did not happen within %.0f s", RUN_LIMIT_S);
}

struct fake_node_stream *fixture_node_stream(void)
{
    ck_assert_uint_lt(n_node_fakes, FAKES_MAX);
    return &node_fakes[n_node_fakes++];
}

struct fake_task_stream *fixture_task_stream(void)
{
    ck_assert_uint_lt(n_task_fakes, FAKES_MAX);
    return &task_fakes[n_task_fakes++];
}

static void node_push(void *handle, enum node_push what)
{
    struct fake_node_stream *s = handle;
    ck_assert_msg(!s->ended, "a push to an ended stream");
    s->pushes[what]++;
    if (s->on_push)
        s->on_push(s, what);
}

static void node_end(void *handle, enum node_end why)
{
    struct fake_node_stream *s = handle;
    ck_assert_msg(!s->ended, "a stream ended twice");
    s->ended = true;
    s->end_why = why;
}

static int node_push_task(void *handle, const struct task_row *row)
{
    struct fake_node_stream *s = handle;
    ck_assert_msg(!s->ended, "a task pushed to an ended stream");
    s->task_pushes++;
    snprintf(s->last_task, sizeof(s->last_task), "%s", row->id);
    s->last_epoch = row->epoch;
    return 0;
}

static int node_push_cancel(void *handle, const char *task_id, bool force)
{
    struct fake_node_stream *s = handle;
    ck_assert_msg(!s->ended, "a cancel pushed to an ended stream");
    s->cancel_pushes++;
    snprintf(s->last_cancel, sizeof(s->last_cancel), "%s", task_id);
    s->last_cancel_force = force;
    return 0;
}

const struct node_stream_ops fixture_node_ops = {.push = node_push,
                                                 .push_task = node_push_task,
                                                 .push_cancel = node_push_cancel,
                                                 .end = node_end};

static int task_cancel(void *handle, const char *id, bool force)
{
    struct fake_task_stream *s = handle;
    ck_assert_msg(!s->ended, "a cancel on an ended stream");
    s->cancels++;
    s->last_force = force;
    return 0;
}

static void task_end(void *handle, enum task_end why)
{
    struct fake_task_stream *s = handle;
    ck_assert_msg(!s->ended, "a stream ended twice");
    s->ended = true;
    s->end_why = why;
}

const struct task_stream_ops fixture_task_ops = {.cancel = task_cancel, .end = task_end};
