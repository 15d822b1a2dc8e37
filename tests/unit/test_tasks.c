/*
 * The master's task queue (master/tasks.h) with the node registry, on a real store and a real
 * loop, without a gRPC server: dispatch to a free node, status reports, the count of tasks each
 * node holds through every step, a node going offline and coming back, the disconnect grace, the
 * fenced claim, retries and restarts, and cancels.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "check_main.h"
#include "master/group.h"
#include "master_fixture.h"

/* What a worker says of a task it has started. */
static const enum task_status running = TASK_RUNNING;

/* Long: no node goes offline by itself while a test runs. */
#define INTERVAL_MS 60000
/* Short: the grace sweep runs every 100 ms. */
#define SHORT_GRACE_MS 100

static struct nodes *nodes;
static struct tasks *tasks;

/* The wiring the master does. */
static void on_node_offline(void *ctx, struct node *node)
{
    tasks_node_offline(tasks, node->key);
}

static void start(uint64_t grace_ms)
{
    const struct nodes_opts nopts = {.heartbeat_interval_ms = INTERVAL_MS};
    const struct tasks_opts topts = {.disconnect_grace_ms = grace_ms};
    ck_assert_int_eq(nodes_create(fx.loop, fx.store, &nopts, &nodes), 0);
    ck_assert_int_eq(tasks_create(fx.loop, fx.store, nodes, &topts, &tasks), 0);
    nodes_on_offline(nodes, on_node_offline, NULL);
}

static void stop(void)
{
    tasks_destroy(tasks);
    nodes_destroy(nodes);
}

static void setup(void)
{
    fixture_open();
    start(60000);
}

static void teardown(void)
{
    stop();
    fixture_close();
}

/* A registered node with a live stream (s may be NULL for none). */
static struct node *add_node(const char *key, int max_runners, struct fake_node_stream *s)
{
    const struct node_hello hello = {.key = key,
                                     .name = key,
                                     .machine_id = key,
                                     .version = "1.0",
                                     .max_runners = max_runners,
                                     .peer = "test"};
    struct node *node;
    ck_assert_int_eq(nodes_register(nodes, &hello, &node), 0);
    if (s)
        ck_assert_int_eq(nodes_stream_attach(nodes, node, &fixture_node_ops, s), 0);
    return node;
}

static void submit(const char *node_key, char id[TASK_ID_LEN + 1])
{
    const struct task_new tn = {.name = "t", .cmd = "echo", .node_key = node_key};
    ck_assert_int_eq(tasks_submit(tasks, &tn, id), 0);
}

/* Fetches for the node and expects the task id. */
static void fetch(const char *node_key, const char *want_id)
{
    struct task_row row;
    ck_assert_int_eq(tasks_fetch(tasks, node_key, &row, NULL, NULL), 1);
    ck_assert_str_eq(row.id, want_id);
    ck_assert_str_eq(row.assigned_node, node_key);
    store_task_row_free(&row);
}

static void fetch_none(const char *node_key)
{
    struct task_row row;
    ck_assert_int_eq(tasks_fetch(tasks, node_key, &row, NULL, NULL), 0);
}

static void report(const char *node_key, const char *id, enum task_status to)
{
    ck_assert_int_eq(tasks_report(tasks, node_key, id, to, 42, 0, NULL, 0), 0);
}

static enum task_status status_of(const char *id)
{
    struct task_row row;
    ck_assert_int_eq(store_task_get(fx.store, id, &row), 0);
    enum task_status st = row.status;
    store_task_row_free(&row);
    return st;
}

/* Takes the node offline the way a broken Subscribe stream does. */
static void lose_stream(struct node *node)
{
    nodes_stream_gone(nodes, node, node->stream_handle, "test: stream ended");
    ck_assert(!node->online);
}

/* A watcher that notes every change of its task. */
struct watch {
    struct task_watcher w;
    int changes;
    bool changed;
};

static void on_watch(struct task_watcher *w)
{
    struct watch *wt = (struct watch *)w;
    wt->changes++;
    wt->changed = true;
}

static void watch(struct watch *wt, const char *id)
{
    memset(wt, 0, sizeof(*wt));
    wt->w.on_change = on_watch;
    ck_assert_int_eq(tasks_watch(tasks, id, &wt->w), 0);
}

/* ---- dispatch ---- */

/* News of other masters lost with the store's connection: every node with a free runner is told
 * to fetch, a full one is not. */
START_TEST(test_lost_news_send_every_free_node_fetching)
{
    struct fake_node_stream *sa = fixture_node_stream(), *sb = fixture_node_stream();
    add_node("a", 1, sa);
    add_node("b", 1, sb);
    char t1[TASK_ID_LEN + 1];
    submit("a", t1);
    fetch("a", t1);
    int before_a = sa->pushes[NODE_PUSH_TASK_AVAILABLE];
    int before_b = sb->pushes[NODE_PUSH_TASK_AVAILABLE];
    tasks_news_lost(tasks);
    ck_assert_int_eq(sa->pushes[NODE_PUSH_TASK_AVAILABLE], before_a);
    ck_assert_int_eq(sb->pushes[NODE_PUSH_TASK_AVAILABLE], before_b + 1);
}
END_TEST

START_TEST(test_submitted_task_is_pushed_to_a_free_node_and_fetched_by_it)
{
    struct fake_node_stream *sa = fixture_node_stream(), *sb = fixture_node_stream();
    struct node *a = add_node("a", 1, sa), *b = add_node("b", 1, sb);
    char t1[TASK_ID_LEN + 1], t2[TASK_ID_LEN + 1], t3[TASK_ID_LEN + 1];

    submit(NULL, t1);
    ck_assert_int_eq(sa->pushes[NODE_PUSH_TASK_AVAILABLE] + sb->pushes[NODE_PUSH_TASK_AVAILABLE],
                     1);
    struct node *first = sa->pushes[NODE_PUSH_TASK_AVAILABLE] ? a : b;
    struct node *second = first == a ? b : a;
    fetch(first->key, t1);
    ck_assert_int_eq(status_of(t1), TASK_ASSIGNED);
    ck_assert_int_eq(first->active, 1);

    /* The first node is full: the next task goes to the other one. */
    submit(NULL, t2);
    struct fake_node_stream *s2 = second == a ? sa : sb;
    ck_assert_int_eq(s2->pushes[NODE_PUSH_TASK_AVAILABLE], 1);
    fetch(second->key, t2);
    ck_assert_int_eq(second->active, 1);

    /* Both full: nobody is told, and the task waits. */
    submit(NULL, t3);
    ck_assert_int_eq(sa->pushes[NODE_PUSH_TASK_AVAILABLE] + sb->pushes[NODE_PUSH_TASK_AVAILABLE],
                     2);
    ck_assert_int_eq(status_of(t3), TASK_PENDING);
}
END_TEST

START_TEST(test_addressed_task_goes_to_its_node_only)
{
    struct fake_node_stream *sa = fixture_node_stream(), *sb = fixture_node_stream();
    add_node("a", 1, sa);
    struct node *b = add_node("b", 1, sb);
    char id[TASK_ID_LEN + 1];
    submit("b", id);
    ck_assert_int_eq(sa->pushes[NODE_PUSH_TASK_AVAILABLE], 0);
    ck_assert_int_eq(sb->pushes[NODE_PUSH_TASK_AVAILABLE], 1);
    fetch_none("a");
    fetch("b", id);
    ck_assert_int_eq(b->active, 1);
}
END_TEST

START_TEST(test_draining_queue_hands_out_nothing)
{
    struct fake_node_stream *sa = fixture_node_stream();
    add_node("a", 1, sa);
    char id[TASK_ID_LEN + 1];
    submit(NULL, id);
    tasks_drain(tasks);
    fetch_none("a");
    ck_assert_int_eq(status_of(id), TASK_PENDING);
}
END_TEST

/* ---- a fetch that waits for a runner ---- */

/* The answer a waiting fetch got. */
struct waited {
    bool answered;
    int calls, rc;
    char id[TASK_ID_LEN + 1];
};

static void on_waited(void *ctx, int rc, const struct task_row *row)
{
    struct waited *w = ctx;
    w->answered = true;
    w->calls++;
    w->rc = rc;
    snprintf(w->id, sizeof(w->id), "%s", rc == 1 ? row->id : "");
}

/* A fetch from the full node a, which waits. */
static void fetch_waits(struct waited *w)
{
    struct task_row row;
    memset(w, 0, sizeof(*w));
    ck_assert_int_eq(tasks_fetch(tasks, "a", &row, on_waited, w), TASKS_FETCH_WAITS);
    ck_assert(!w->answered);
}

/* The worker fetches as its runner frees, before the task's final status arrives (another call):
 * the fetch gets the next task once that status is stored, not "no task" now. */
START_TEST(test_a_fetch_that_beats_the_final_status_gets_the_task_freed_for_it)
{
    struct node *a = add_node("a", 1, NULL);
    char t1[TASK_ID_LEN + 1], t2[TASK_ID_LEN + 1];
    submit(NULL, t1);
    fetch("a", t1);
    report("a", t1, running);
    submit(NULL, t2);
    struct waited w;
    fetch_waits(&w);
    ck_assert_int_eq(status_of(t2), TASK_PENDING);
    report("a", t1, TASK_FINISHED);
    ck_assert_int_eq(w.calls, 1);
    ck_assert_int_eq(w.rc, 1);
    ck_assert_str_eq(w.id, t2);
    ck_assert_int_eq(status_of(t2), TASK_ASSIGNED);
    ck_assert_int_eq(a->active, 1);
}
END_TEST

/* A fetch that waits and finds the queue empty when the runner frees is told so then. */
START_TEST(test_a_waiting_fetch_gets_no_task_when_the_queue_is_empty)
{
    struct node *a = add_node("a", 1, NULL);
    char t1[TASK_ID_LEN + 1];
    submit(NULL, t1);
    fetch("a", t1);
    struct waited w;
    fetch_waits(&w);
    report("a", t1, TASK_ERROR);
    ck_assert_int_eq(w.calls, 1);
    ck_assert_int_eq(w.rc, 0);
    ck_assert_int_eq(a->active, 0);
}
END_TEST

/* Without a release, the wait ends: at its time limit, when the node goes offline, when the
 * master drains. A fetch that may not wait, or one more than the node has runners, is answered at
 * once. Each is answered once. */
START_TEST(test_a_waiting_fetch_ends_at_its_limit_offline_or_drain)
{
    struct fake_node_stream *sa = fixture_node_stream();
    struct node *a = add_node("a", 1, sa);
    char t1[TASK_ID_LEN + 1], t2[TASK_ID_LEN + 1];
    submit(NULL, t1);
    fetch("a", t1);
    submit(NULL, t2);
    fetch_none("a"); /* no callback: no wait */

    struct waited w, more;
    fetch_waits(&w);
    struct task_row row;
    memset(&more, 0, sizeof(more)); /* one waits per runner: a second one is answered now */
    ck_assert_int_eq(tasks_fetch(tasks, "a", &row, on_waited, &more), 0);
    ck_assert_int_eq(more.calls, 0);
    fixture_run_until(&w.answered);
    ck_assert_int_eq(w.calls, 1);
    ck_assert_int_eq(w.rc, 0);
    ck_assert_int_eq(status_of(t2), TASK_PENDING);

    fetch_waits(&w);
    lose_stream(a);
    ck_assert_int_eq(w.calls, 1);
    ck_assert_int_eq(w.rc, 0);

    a = add_node("a", 1, fixture_node_stream()); /* back; it still holds t1 */
    ck_assert_int_eq(a->active, 1);
    fetch_waits(&w);
    tasks_drain(tasks);
    ck_assert_int_eq(w.calls, 1);
    ck_assert_int_eq(w.rc, 0);
    ck_assert_int_eq(status_of(t2), TASK_PENDING);
    ck_assert_int_eq(tasks_fetch(tasks, "a", &row, on_waited, &w), 0);
    ck_assert_int_eq(w.calls, 1);
}
END_TEST

/* ---- the count of held tasks ---- */

START_TEST(test_held_count_follows_assign_running_finished)
{
    struct fake_node_stream *sa = fixture_node_stream();
    struct node *a = add_node("a", 2, sa);
    char t1[TASK_ID_LEN + 1], t2[TASK_ID_LEN + 1];
    submit(NULL, t1);
    submit(NULL, t2);
    fetch("a", t1);
    fetch("a", t2);
    ck_assert_int_eq(a->active, 2);
    report("a", t1, TASK_RUNNING);
    ck_assert_int_eq(a->active, 2);
    report("a", t1, TASK_FINISHED);
    ck_assert_int_eq(status_of(t1), TASK_FINISHED);
    ck_assert_int_eq(a->active, 1);
    /* A repeated or backwards report changes nothing. */
    report("a", t1, TASK_FINISHED);
    report("a", t1, TASK_RUNNING);
    ck_assert_int_eq(a->active, 1);
    /* A fast task may end before 'running' is reported. */
    report("a", t2, TASK_ERROR);
    ck_assert_int_eq(a->active, 0);
}
END_TEST

START_TEST(test_report_from_another_node_is_refused)
{
    struct fake_node_stream *sa = fixture_node_stream(), *sb = fixture_node_stream();
    struct node *a = add_node("a", 1, sa);
    add_node("b", 1, sb);
    char id[TASK_ID_LEN + 1];
    submit("a", id);
    fetch("a", id);
    ck_assert_int_eq(tasks_report(tasks, "b", id, TASK_FINISHED, 0, 0, NULL, 0), -EPERM);
    ck_assert_int_eq(status_of(id), TASK_ASSIGNED);
    ck_assert_int_eq(a->active, 1);
    ck_assert_int_eq(
        tasks_report(tasks, "a", "0123456789abcdef01234567", TASK_RUNNING, 0, 0, NULL, 0), -ENOENT);
}
END_TEST

START_TEST(test_held_count_survives_offline_and_settles_when_the_node_returns_without_them)
{
    struct fake_node_stream *sa = fixture_node_stream();
    struct node *a = add_node("a", 3, sa);
    char unconfirmed[TASK_ID_LEN + 1], started[TASK_ID_LEN + 1], kept[TASK_ID_LEN + 1];
    submit("a", unconfirmed);
    submit("a", started);
    submit("a", kept);
    fetch("a", unconfirmed);
    fetch("a", started);
    fetch("a", kept);
    report("a", started, TASK_RUNNING);
    report("a", kept, TASK_RUNNING);

    /* Offline: everything it held waits for it, still counted. */
    lose_stream(a);
    ck_assert_int_eq(status_of(unconfirmed), TASK_NODE_DISCONNECTED);
    ck_assert_int_eq(status_of(started), TASK_NODE_DISCONNECTED);
    ck_assert_int_eq(status_of(kept), TASK_NODE_DISCONNECTED);
    ck_assert_int_eq(a->active, 3);

    /* Back, holding only `kept`: the others are settled and no longer counted. */
    struct fake_node_stream *again = fixture_node_stream();
    ck_assert_ptr_eq(add_node("a", 3, again), a);
    const char *const held[] = {kept};
    tasks_settle_unlisted(tasks, "a", held, 1);
    ck_assert_int_eq(status_of(unconfirmed), TASK_PENDING);
    ck_assert_int_eq(status_of(started), TASK_ERROR);
    ck_assert_int_eq(a->active, 1);
    /* The task back in the queue is announced to the node it is addressed to. */
    ck_assert_int_eq(again->pushes[NODE_PUSH_TASK_AVAILABLE], 1);

    struct task_row row;
    struct resync_row view;
    ck_assert_int_eq(tasks_resync_one(tasks, "a", kept, &running, 0, &row, &view), 0);
    ck_assert(view.held_here);
    ck_assert_int_eq(row.status, TASK_NODE_DISCONNECTED);
    store_task_row_free(&row);
    report("a", kept, TASK_RUNNING);
    ck_assert_int_eq(a->active, 1);
    report("a", kept, TASK_FINISHED);
    ck_assert_int_eq(a->active, 0);
}
END_TEST

START_TEST(test_held_count_is_rebuilt_from_the_store_at_start)
{
    struct fake_node_stream *sa = fixture_node_stream();
    add_node("a", 2, sa);
    char t1[TASK_ID_LEN + 1], t2[TASK_ID_LEN + 1];
    submit(NULL, t1);
    submit(NULL, t2);
    fetch("a", t1);
    fetch("a", t2);
    report("a", t2, TASK_FINISHED);
    stop();
    start(60000);
    struct node *a = nodes_find(nodes, "a");
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->active, 1);
}
END_TEST

/* ---- the disconnect grace ---- */

/* A node that held one task, started or not, goes offline and does not come back. */
static void strand_one_task(bool started, char id[TASK_ID_LEN + 1], struct node **a)
{
    stop();
    start(SHORT_GRACE_MS);
    struct fake_node_stream *sa = fixture_node_stream();
    *a = add_node("a", 1, sa);
    submit(NULL, id);
    fetch("a", id);
    if (started)
        report("a", id, TASK_RUNNING);
    lose_stream(*a); /* the node lets go of sa */
    ck_assert_int_eq(status_of(id), TASK_NODE_DISCONNECTED);
    ck_assert_int_eq((*a)->active, 1);
}

START_TEST(test_started_task_of_a_node_that_stays_away_ends_abnormal_after_the_grace)
{
    char id[TASK_ID_LEN + 1];
    struct node *a;
    strand_one_task(true, id, &a);
    struct watch wt;
    watch(&wt, id);
    fixture_run_until(&wt.changed);
    ck_assert_int_eq(status_of(id), TASK_ABNORMAL);
    ck_assert_int_eq(a->active, 0);
    tasks_unwatch(tasks, id, &wt.w);
}
END_TEST

/* Moves the task's stored wall-clock times by delta_ms, as a step of the clock would make them
 * look: another connection to the store's database, between two of the store's transactions. */
static void shift_stored_times(const char *id, int64_t delta_ms)
{
    char path[128], sql[256];
    snprintf(path, sizeof(path), "%s/crawlab.db", fx.dir);
    snprintf(sql, sizeof(sql),
             "UPDATE tasks SET updated_ms = updated_ms + %lld, started_ms = started_ms + %lld "
             "WHERE id = '%s'",
             (long long)delta_ms, (long long)delta_ms, id);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_changes(db), 1);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

/* The grace runs on the monotonic clock from when the master saw the node go: stored times an
 * hour ahead (the wall clock stepped back since) do not suspend it. */
START_TEST(test_the_grace_ignores_a_step_of_the_wall_clock)
{
    char id[TASK_ID_LEN + 1];
    struct node *a;
    strand_one_task(true, id, &a);
    shift_stored_times(id, 3600 * 1000);
    struct watch wt;
    watch(&wt, id);
    fixture_run_until(&wt.changed);
    ck_assert_int_eq(status_of(id), TASK_ABNORMAL);
    tasks_unwatch(tasks, id, &wt.w);
}
END_TEST

START_TEST(test_unconfirmed_task_of_a_node_that_stays_away_goes_back_to_the_queue)
{
    char id[TASK_ID_LEN + 1];
    struct node *a;
    strand_one_task(false, id, &a);
    struct fake_node_stream *sb = fixture_node_stream();
    add_node("b", 1, sb);
    struct watch wt;
    watch(&wt, id);
    fixture_run_until(&wt.changed);
    ck_assert_int_eq(status_of(id), TASK_PENDING);
    ck_assert_int_eq(a->active, 0);
    /* Announced to the node that has room, which gets it. */
    ck_assert_int_eq(sb->pushes[NODE_PUSH_TASK_AVAILABLE], 1);
    fetch("b", id);
    tasks_unwatch(tasks, id, &wt.w);
}
END_TEST

START_TEST(test_task_requeued_while_its_node_was_away_stays_with_that_node_if_started)
{
    char id[TASK_ID_LEN + 1];
    struct node *a;
    strand_one_task(false, id, &a);
    struct watch wt;
    watch(&wt, id);
    fixture_run_until(&wt.changed);
    ck_assert_int_eq(status_of(id), TASK_PENDING);

    /* The node comes back and says it had started the task: it keeps it. */
    struct fake_node_stream *again = fixture_node_stream();
    add_node("a", 1, again);
    tasks_settle_unlisted(tasks, "a", (const char *const[]){id}, 1);
    struct task_row row;
    struct resync_row view;
    ck_assert_int_eq(tasks_resync_one(tasks, "a", id, &running, 0, &row, &view), 0);
    ck_assert(view.held_here);
    ck_assert_int_eq(row.status, TASK_ASSIGNED);
    store_task_row_free(&row);
    ck_assert_int_eq(status_of(id), TASK_ASSIGNED);
    ck_assert_int_eq(a->active, 1);

    /* Another node listing it gets told it is not its own. */
    add_node("b", 1, NULL);
    ck_assert_int_eq(tasks_resync_one(tasks, "b", id, &running, 0, &row, &view), 0);
    ck_assert(!view.held_here);
    ck_assert(resync_cursor(&view).cancel);
    store_task_row_free(&row);
    tasks_unwatch(tasks, id, &wt.w);
}
END_TEST

/* ---- the fenced claim (core/fence.h) ---- */

/* Fetches for the node and returns the assignment's epoch. */
static uint64_t fetch_epoch(const char *node_key, const char *want_id)
{
    struct task_row row;
    ck_assert_int_eq(tasks_fetch(tasks, node_key, &row, NULL, NULL), 1);
    ck_assert_str_eq(row.id, want_id);
    uint64_t epoch = row.epoch;
    store_task_row_free(&row);
    ck_assert_uint_ne(epoch, 0);
    return epoch;
}

/* The worker's claim: 'running' under the epoch, without a pid. */
static int claim(const char *node_key, const char *id, uint64_t epoch)
{
    return tasks_report(tasks, node_key, id, TASK_RUNNING, 0, 0, NULL, epoch);
}

START_TEST(test_a_claim_makes_the_task_started_and_the_pid_follows)
{
    struct fake_node_stream *sa = fixture_node_stream();
    add_node("a", 1, sa);
    char id[TASK_ID_LEN + 1];
    submit(NULL, id);
    uint64_t e = fetch_epoch("a", id);
    ck_assert_int_eq(claim("a", id, e), 0);
    struct task_row row;
    ck_assert_int_eq(store_task_get(fx.store, id, &row), 0);
    ck_assert_int_eq(row.status, TASK_RUNNING);
    ck_assert_int_ne(row.started_ms, 0);
    ck_assert_int_eq(row.pid, 0);
    store_task_row_free(&row);
    /* a repeated claim (its answer was lost) is answered the same */
    ck_assert_int_eq(claim("a", id, e), 0);
    /* the report after the spawn brings the pid */
    ck_assert_int_eq(tasks_report(tasks, "a", id, TASK_RUNNING, 77, 0, NULL, e), 0);
    ck_assert_int_eq(store_task_get(fx.store, id, &row), 0);
    ck_assert_int_eq(row.pid, 77);
    store_task_row_free(&row);
    ck_assert_int_eq(tasks_report(tasks, "a", id, TASK_FINISHED, 77, 0, NULL, e), 0);
    ck_assert_int_eq(status_of(id), TASK_FINISHED);
}
END_TEST

START_TEST(test_a_claimed_task_whose_node_stays_away_is_never_handed_out_again)
{
    stop();
    start(SHORT_GRACE_MS);
    struct fake_node_stream *sa = fixture_node_stream(), *sb = fixture_node_stream();
    struct node *a = add_node("a", 1, sa);
    char id[TASK_ID_LEN + 1];
    submit(NULL, id);
    uint64_t e = fetch_epoch("a", id);
    /* the claim was stored; its answer (and everything after it) was lost with the node */
    ck_assert_int_eq(claim("a", id, e), 0);
    lose_stream(a);
    add_node("b", 1, sb);
    struct watch wt;
    watch(&wt, id);
    fixture_run_until(&wt.changed);
    /* the rule for a started task: abnormal after the grace, never back to the queue */
    ck_assert_int_eq(status_of(id), TASK_ABNORMAL);
    fetch_none("b");
    /* the node comes back and claims again: refused, so it never starts it */
    add_node("a", 1, fixture_node_stream());
    ck_assert_int_eq(claim("a", id, e), -EALREADY);
    tasks_unwatch(tasks, id, &wt.w);
}
END_TEST

START_TEST(test_a_stale_claim_is_refused_and_changes_nothing)
{
    stop();
    start(SHORT_GRACE_MS);
    struct fake_node_stream *sa = fixture_node_stream(), *sb = fixture_node_stream();
    struct node *a = add_node("a", 1, sa);
    char id[TASK_ID_LEN + 1];
    submit(NULL, id);
    uint64_t e1 = fetch_epoch("a", id);
    /* the claim never reached the master: the task goes back to the queue after the grace */
    lose_stream(a);
    struct watch wt;
    watch(&wt, id);
    fixture_run_until(&wt.changed);
    ck_assert_int_eq(status_of(id), TASK_PENDING);
    add_node("b", 1, sb);
    uint64_t e2 = fetch_epoch("b", id);
    ck_assert_uint_gt(e2, e1 + 1); /* counted up when it went back to pending, and again now */

    /* a's late claim: the task is b's */
    add_node("a", 1, fixture_node_stream());
    ck_assert_int_eq(claim("a", id, e1), -EPERM);
    ck_assert_int_eq(claim("b", id, e2), 0);
    ck_assert_int_eq(status_of(id), TASK_RUNNING);
    /* b's own reports under an older epoch are refused too */
    ck_assert_int_eq(tasks_report(tasks, "b", id, TASK_FINISHED, 5, 0, NULL, e1), -ESTALE);
    ck_assert_int_eq(status_of(id), TASK_RUNNING);
    /* a report without an epoch is judged as before fencing */
    ck_assert_int_eq(tasks_report(tasks, "b", id, TASK_FINISHED, 5, 0, NULL, 0), 0);
    ck_assert_int_eq(status_of(id), TASK_FINISHED);
    tasks_unwatch(tasks, id, &wt.w);
}
END_TEST

/*
 * A claiming node's FetchTask is answered before the assignment is durable
 * (fence_fetch_answer_early). When the master crashes before the commit, the node holds an
 * assignment the store never had: its claim must be refused, and the task must run once,
 * elsewhere.
 */
START_TEST(test_an_assignment_lost_in_a_crash_is_claimed_in_vain_and_the_task_runs_elsewhere)
{
    add_node("a", 1, fixture_node_stream());
    char id[TASK_ID_LEN + 1];
    submit(NULL, id); /* durable: outside a group */
    ck_assert_int_eq(store_begin(fx.store), 0);
    uint64_t e = fetch_epoch("a", id); /* answered at once; the group is still open */

    /* the crash: the open group is lost, and the master starts again on what is durable */
    stop();
    store_close(fx.store);
    ck_assert_int_eq(store_open(fx.dir, &fx.store), 0);
    start(60000);
    ck_assert_int_eq(status_of(id), TASK_PENDING);

    add_node("a", 1, fixture_node_stream());
    ck_assert_int_eq(claim("a", id, e), -EPERM);
    ck_assert_int_eq(status_of(id), TASK_PENDING);
    add_node("b", 1, fixture_node_stream());
    uint64_t eb = fetch_epoch("b", id);
    ck_assert_int_eq(claim("b", id, eb), 0);
    ck_assert_int_eq(claim("a", id, e), -EPERM);
    ck_assert_int_eq(status_of(id), TASK_RUNNING);
}
END_TEST

START_TEST(test_a_claim_under_an_older_epoch_of_the_same_node_is_refused)
{
    struct fake_node_stream *sa = fixture_node_stream();
    struct node *a = add_node("a", 1, sa);
    char id[TASK_ID_LEN + 1];
    submit(NULL, id);
    uint64_t e1 = fetch_epoch("a", id);
    /* a comes back without it (its claim was lost): back to the queue, then a fetches it again */
    lose_stream(a);
    add_node("a", 1, fixture_node_stream());
    tasks_settle_unlisted(tasks, "a", NULL, 0);
    ck_assert_int_eq(status_of(id), TASK_PENDING);
    uint64_t e2 = fetch_epoch("a", id);
    ck_assert_int_eq(claim("a", id, e1), -ESTALE);
    ck_assert_int_eq(status_of(id), TASK_ASSIGNED);
    ck_assert_int_eq(claim("a", id, e2), 0);
    ck_assert_int_eq(status_of(id), TASK_RUNNING);
}
END_TEST

START_TEST(test_resync_stops_a_copy_listed_under_an_older_epoch)
{
    struct fake_node_stream *sa = fixture_node_stream();
    struct node *a = add_node("a", 1, sa);
    char id[TASK_ID_LEN + 1];
    submit(NULL, id);
    uint64_t e1 = fetch_epoch("a", id);
    lose_stream(a);
    add_node("a", 1, fixture_node_stream());
    tasks_settle_unlisted(tasks, "a", NULL, 0);
    uint64_t e2 = fetch_epoch("a", id);
    struct task_row row;
    struct resync_row view;
    ck_assert_int_eq(tasks_resync_one(tasks, "a", id, &running, e1, &row, &view), 0);
    ck_assert(view.held_here);
    ck_assert(view.stale);
    struct resync_verdict v = resync_cursor(&view);
    ck_assert(v.cancel && v.force);
    store_task_row_free(&row);
    /* the current epoch runs on */
    ck_assert_int_eq(tasks_resync_one(tasks, "a", id, &running, e2, &row, &view), 0);
    ck_assert(!view.stale);
    ck_assert(!resync_cursor(&view).cancel);
    store_task_row_free(&row);
}
END_TEST

START_TEST(test_a_requeued_task_listed_under_an_epoch_is_not_adopted)
{
    char id[TASK_ID_LEN + 1];
    struct node *a;
    strand_one_task(false, id, &a);
    struct task_row row;
    ck_assert_int_eq(store_task_get(fx.store, id, &row), 0);
    uint64_t e1 = row.epoch;
    store_task_row_free(&row);
    struct watch wt;
    watch(&wt, id);
    fixture_run_until(&wt.changed);
    ck_assert_int_eq(status_of(id), TASK_PENDING);
    /* a fencing worker that lists it never started it: it is not given back, and is stopped */
    add_node("a", 1, fixture_node_stream());
    struct resync_row view;
    ck_assert_int_eq(tasks_resync_one(tasks, "a", id, &running, e1, &row, &view), 0);
    ck_assert_int_eq(row.status, TASK_PENDING);
    ck_assert(resync_cursor(&view).cancel);
    store_task_row_free(&row);
    ck_assert_int_eq(status_of(id), TASK_PENDING);
    tasks_unwatch(tasks, id, &wt.w);
}
END_TEST

/* ---- retries and restarts ---- */

static void submit_with_retries(int retries, int64_t delay_ms, char id[TASK_ID_LEN + 1])
{
    const struct task_new tn = {
        .name = "r", .cmd = "false", .retries = retries, .retry_delay_ms = delay_ms};
    ck_assert_int_eq(tasks_submit(tasks, &tn, id), 0);
}

struct attempt_search {
    const char *first;
    int attempt;
    char id[TASK_ID_LEN + 1];
    int linked; /* tasks whose retry_of is first */
};

static int find_attempt(void *ctx, const struct task_row *r)
{
    struct attempt_search *a = ctx;
    if (strcmp(r->retry_of, a->first) != 0)
        return 0;
    a->linked++;
    if (r->attempt == a->attempt)
        snprintf(a->id, sizeof(a->id), "%s", r->id);
    return 0;
}

/* The id of attempt n of the task first ("" when there is none); returns how many retries of
 * first there are. */
static int attempt_of(const char *first, int n, char id[TASK_ID_LEN + 1])
{
    struct attempt_search a = {.first = first, .attempt = n};
    ck_assert_int_eq(store_task_list(fx.store, NULL, NULL, 0, find_attempt, &a), 0);
    snprintf(id, TASK_ID_LEN + 1, "%s", a.id);
    return a.linked;
}

static bool announced;

static void note_push(struct fake_node_stream *s, enum node_push what)
{
    if (what == NODE_PUSH_TASK_AVAILABLE)
        announced = true;
}

START_TEST(test_an_error_with_retries_left_makes_an_attempt_announced_when_due)
{
    struct fake_node_stream *sa = fixture_node_stream();
    add_node("a", 1, sa);
    char first[TASK_ID_LEN + 1], second[TASK_ID_LEN + 1], third[TASK_ID_LEN + 1];
    submit_with_retries(1, 50, first);
    fetch("a", first);
    report("a", first, TASK_RUNNING);
    report("a", first, TASK_ERROR);
    ck_assert_int_eq(status_of(first), TASK_ERROR);
    ck_assert_int_eq(attempt_of(first, 2, second), 1);
    ck_assert_int_eq(status_of(second), TASK_PENDING);
    /* Its delay (25 to 50 ms) is not over: nothing to fetch until the wake timer says so. */
    announced = false;
    sa->on_push = note_push;
    fetch_none("a");
    fixture_run_until(&announced);
    fetch("a", second);
    report("a", second, TASK_RUNNING);
    report("a", second, TASK_ERROR);
    ck_assert_int_eq(attempt_of(first, 3, third), 1); /* retries=1: no third attempt */
    ck_assert_str_eq(third, "");
}
END_TEST

START_TEST(test_finished_and_cancelled_tasks_are_not_retried)
{
    add_node("a", 2, fixture_node_stream());
    char done[TASK_ID_LEN + 1], dropped[TASK_ID_LEN + 1], next[TASK_ID_LEN + 1];
    submit_with_retries(3, 0, done);
    fetch("a", done);
    report("a", done, TASK_RUNNING);
    report("a", done, TASK_FINISHED);
    submit_with_retries(3, 0, dropped);
    fetch("a", dropped);
    report("a", dropped, TASK_RUNNING);
    report("a", dropped, TASK_CANCELLED);
    ck_assert_int_eq(attempt_of(done, 2, next), 0);
    ck_assert_int_eq(attempt_of(dropped, 2, next), 0);
    /* Asked to cancel, it failed before the cancel took effect: still no retry. */
    char asked[TASK_ID_LEN + 1];
    submit_with_retries(3, 0, asked);
    fetch("a", asked);
    report("a", asked, TASK_RUNNING);
    enum task_status after;
    ck_assert_int_eq(tasks_cancel(tasks, asked, false, &after), 0);
    report("a", asked, TASK_ERROR);
    ck_assert_int_eq(status_of(asked), TASK_ERROR);
    ck_assert_int_eq(attempt_of(asked, 2, next), 0);
}
END_TEST

/* A task lost with its node (abnormal after the grace) retries too. */
START_TEST(test_an_abnormal_end_after_the_grace_is_retried)
{
    stop();
    start(SHORT_GRACE_MS);
    struct node *a = add_node("a", 1, fixture_node_stream());
    char id[TASK_ID_LEN + 1], next[TASK_ID_LEN + 1];
    submit_with_retries(1, 0, id);
    fetch("a", id);
    report("a", id, TASK_RUNNING);
    lose_stream(a);
    struct watch wt;
    watch(&wt, id);
    fixture_run_until(&wt.changed);
    tasks_unwatch(tasks, id, &wt.w);
    ck_assert_int_eq(status_of(id), TASK_ABNORMAL);
    ck_assert_int_eq(attempt_of(id, 2, next), 1);
    ck_assert_int_eq(status_of(next), TASK_PENDING);
}
END_TEST

/* The wait is stored: a queue made again (a restarted master) wakes up for it. */
START_TEST(test_a_waiting_retry_is_announced_after_a_restart)
{
    add_node("a", 1, fixture_node_stream());
    char first[TASK_ID_LEN + 1], second[TASK_ID_LEN + 1];
    submit_with_retries(1, 100, first);
    fetch("a", first);
    report("a", first, TASK_RUNNING);
    report("a", first, TASK_ERROR);
    ck_assert_int_eq(attempt_of(first, 2, second), 1);
    stop();
    start(60000);
    struct fake_node_stream *sa = fixture_node_stream();
    announced = false;
    sa->on_push = note_push;
    add_node("a", 1, sa);
    fixture_run_until(&announced);
    fetch("a", second);
}
END_TEST

START_TEST(test_restart_makes_a_linked_pending_task)
{
    add_node("a", 1, fixture_node_stream());
    char old[TASK_ID_LEN + 1], again[TASK_ID_LEN + 1];
    submit(NULL, old);
    ck_assert_int_eq(tasks_restart(tasks, old, again), 0);
    struct task_row r;
    ck_assert_int_eq(store_task_get(fx.store, again, &r), 0);
    ck_assert_str_eq(r.restart_of, old);
    ck_assert_int_eq(r.status, TASK_PENDING);
    store_task_row_free(&r);
    ck_assert_int_eq(tasks_restart(tasks, "0123456789abcdef01234567", again), -ENOENT);
}
END_TEST

/* ---- cancels ---- */

START_TEST(test_cancel_of_a_pending_task_is_immediate)
{
    char id[TASK_ID_LEN + 1];
    submit(NULL, id);
    struct watch wt;
    watch(&wt, id);
    enum task_status after;
    ck_assert_int_eq(tasks_cancel(tasks, id, false, &after), 0);
    ck_assert_int_eq(after, TASK_CANCELLED);
    ck_assert_int_eq(status_of(id), TASK_CANCELLED);
    ck_assert_int_eq(wt.changes, 1);
    struct fake_node_stream *sa = fixture_node_stream();
    add_node("a", 1, sa);
    fetch_none("a");
    tasks_unwatch(tasks, id, &wt.w);
}
END_TEST

/* A task submitted, fetched by node a (one runner) and reported `to` by it; returns a. */
static struct node *task_on_a(enum task_status to, char id[TASK_ID_LEN + 1])
{
    struct node *a = add_node("a", 1, fixture_node_stream());
    submit(NULL, id);
    fetch("a", id);
    report("a", id, to);
    return a;
}

START_TEST(test_cancel_of_a_running_task_reaches_its_worker_stream)
{
    char id[TASK_ID_LEN + 1];
    struct node *a = task_on_a(TASK_RUNNING, id);
    struct fake_task_stream *ts = fixture_task_stream();
    ck_assert_int_eq(tasks_stream_attach(tasks, id, &fixture_task_ops, ts), 0);
    ck_assert_int_eq(ts->cancels, 0);

    enum task_status after;
    ck_assert_int_eq(tasks_cancel(tasks, id, true, &after), 0);
    ck_assert_int_eq(after, TASK_RUNNING);
    ck_assert_int_eq(ts->cancels, 1);
    ck_assert(ts->last_force);
    /* Asked again: the worker already has it. */
    ck_assert_int_eq(tasks_cancel(tasks, id, true, &after), 0);
    ck_assert_int_eq(ts->cancels, 1);

    /* The worker ends the task: its stream ends, the node has room again. */
    report("a", id, TASK_CANCELLED);
    ck_assert(ts->ended);
    ck_assert_int_eq(ts->end_why, TASK_END_OVER);
    ck_assert_int_eq(a->active, 0);
}
END_TEST

START_TEST(test_cancel_asked_before_the_stream_opens_is_delivered_when_it_does)
{
    struct fake_node_stream *sa = fixture_node_stream();
    add_node("a", 1, sa);
    char id[TASK_ID_LEN + 1];
    submit(NULL, id);
    fetch("a", id);
    enum task_status after;
    ck_assert_int_eq(tasks_cancel(tasks, id, false, &after), 0);
    ck_assert_int_eq(after, TASK_ASSIGNED);

    struct fake_task_stream *old = fixture_task_stream(), *ts = fixture_task_stream();
    ck_assert_int_eq(tasks_stream_attach(tasks, id, &fixture_task_ops, old), 0);
    ck_assert_int_eq(old->cancels, 1);
    ck_assert(!old->last_force);
    /* A reconnecting worker opens the stream again: the stale one ends, the new one hears it. */
    ck_assert_int_eq(tasks_stream_attach(tasks, id, &fixture_task_ops, ts), 0);
    ck_assert(old->ended);
    ck_assert_int_eq(old->end_why, TASK_END_REPLACED);
    ck_assert_int_eq(ts->cancels, 1);
    tasks_stream_gone(tasks, id, old); /* stale: ignored */
    report("a", id, TASK_CANCELLED);
    ck_assert(ts->ended);
}
END_TEST

/* A stopping master ends the cancel streams at once, and one opened after: they would hold its
 * shutdown. The task itself runs on; the worker opens the stream again on its next connection. */
START_TEST(test_a_draining_queue_ends_the_cancel_streams_and_those_opened_after)
{
    char id[TASK_ID_LEN + 1];
    task_on_a(TASK_RUNNING, id);
    struct fake_task_stream *ts = fixture_task_stream(), *late = fixture_task_stream();
    ck_assert_int_eq(tasks_stream_attach(tasks, id, &fixture_task_ops, ts), 0);
    tasks_drain(tasks);
    ck_assert(ts->ended);
    ck_assert_int_eq(ts->end_why, TASK_END_STOPPING);
    ck_assert_int_eq(tasks_stream_attach(tasks, id, &fixture_task_ops, late), 0);
    ck_assert(late->ended);
    ck_assert_int_eq(late->end_why, TASK_END_STOPPING);
    ck_assert_int_eq(status_of(id), TASK_RUNNING);
}
END_TEST

START_TEST(test_stream_of_a_task_already_over_ends_at_once)
{
    char id[TASK_ID_LEN + 1];
    task_on_a(TASK_FINISHED, id);
    struct fake_task_stream *ts = fixture_task_stream();
    ck_assert_int_eq(tasks_stream_attach(tasks, id, &fixture_task_ops, ts), 0);
    ck_assert(ts->ended);
    ck_assert_int_eq(ts->end_why, TASK_END_OVER);
    ck_assert_int_eq(ts->cancels, 0);
    ck_assert_int_eq(tasks_stream_attach(tasks, "0123456789abcdef01234567", &fixture_task_ops, ts),
                     -ENOENT);
}
END_TEST

/* ---- tasks pushed to a node that takes them (assigned at once, pushed after the commit) ---- */

static struct group *group;

static void on_commit(void *ctx, uint64_t n, bool ok)
{
    tasks_committed(tasks, ok);
}

/* The queue with a group, as the master wires it, and node a: takes pushed tasks, resynced. */
static struct node *start_pushing(uint64_t grace_ms, struct fake_node_stream *sa)
{
    stop();
    start(grace_ms);
    ck_assert_int_eq(group_create(fx.loop, fx.store, NULL, &group), 0);
    group_on_commit(group, on_commit, NULL);
    tasks_set_group(tasks, group);
    const struct node_hello hello = {.key = "a",
                                     .name = "a",
                                     .machine_id = "a",
                                     .version = "1.0",
                                     .max_runners = 1,
                                     .takes_pushed_tasks = true,
                                     .peer = "test"};
    struct node *a;
    ck_assert_int_eq(nodes_register(nodes, &hello, &a), 0);
    ck_assert_int_eq(nodes_stream_attach(nodes, a, &fixture_node_ops, sa), 0);
    a->resynced = true; /* as its Resync's answer sets it */
    return a;
}

static void stop_pushing(void)
{
    group_destroy(group);
}

static uint64_t epoch_of(const char *id)
{
    struct task_row row;
    ck_assert_int_eq(store_task_get(fx.store, id, &row), 0);
    uint64_t e = row.epoch;
    store_task_row_free(&row);
    return e;
}

/* Replies wait for the commit only while the open group holds a change: reads leave it unchanged,
 * a submit changes it, and its commit ends the wait. */
START_TEST(test_replies_wait_only_while_the_group_holds_a_change)
{
    struct fake_node_stream *sa = fixture_node_stream();
    start_pushing(60000, sa);
    char first[TASK_ID_LEN + 1], second[TASK_ID_LEN + 1];
    submit(NULL, first);
    ck_assert(group_holds_replies(group));
    group_commit(group);
    ck_assert(!group_holds_replies(group));
    ck_assert_int_eq(sa->task_pushes, 1);

    ck_assert_int_eq(group_join(group), 0);
    ck_assert(!group_holds_replies(group));
    ck_assert_int_eq(status_of(first), TASK_ASSIGNED);
    ck_assert(!group_holds_replies(group));
    submit(NULL, second); /* queued behind first: a has one runner */
    ck_assert(group_holds_replies(group));
    group_commit(group);
    ck_assert(!group_holds_replies(group));
    stop_pushing();
}
END_TEST

/* Submits a task that a takes: assigned at once, pushed after the commit. */
static void submit_pushed(struct node *a, struct fake_node_stream *sa, char id[TASK_ID_LEN + 1])
{
    int before = sa->task_pushes;
    submit(NULL, id);
    ck_assert_int_eq(status_of(id), TASK_ASSIGNED);
    ck_assert_int_eq(a->active, 1);
    ck_assert_int_eq(sa->task_pushes, before); /* not before the assignment is durable */
    group_commit(group);
    ck_assert_int_eq(sa->task_pushes, before + 1);
    ck_assert_str_eq(sa->last_task, id);
    ck_assert_uint_eq(sa->last_epoch, epoch_of(id));
}

START_TEST(test_a_free_node_that_takes_pushed_tasks_gets_the_task_after_the_commit)
{
    struct fake_node_stream *sa = fixture_node_stream();
    struct node *a = start_pushing(60000, sa);
    char t1[TASK_ID_LEN + 1], t2[TASK_ID_LEN + 1];
    submit_pushed(a, sa, t1);
    ck_assert_int_eq(sa->pushes[NODE_PUSH_TASK_AVAILABLE], 0);
    fetch_none("a");
    /* Its report under the push's epoch starts it, as after a claim. */
    ck_assert_int_eq(tasks_report(tasks, "a", t1, TASK_RUNNING, 42, 0, NULL, epoch_of(t1)), 0);
    ck_assert_int_eq(status_of(t1), TASK_RUNNING);
    /* Full: the next task waits for a fetch, and nothing is pushed. */
    submit(NULL, t2);
    group_commit(group);
    ck_assert_int_eq(status_of(t2), TASK_PENDING);
    ck_assert_int_eq(sa->task_pushes, 1);
    stop_pushing();
}
END_TEST

START_TEST(test_a_cancel_goes_on_the_node_stream_only_to_a_node_that_takes_pushed_cancels)
{
    struct fake_node_stream *sa = fixture_node_stream();
    struct node *a = start_pushing(60000, sa);
    char t1[TASK_ID_LEN + 1];
    submit_pushed(a, sa, t1);
    ck_assert_int_eq(tasks_report(tasks, "a", t1, TASK_RUNNING, 42, 0, NULL, epoch_of(t1)), 0);
    enum task_status after;
    /* A node that did not say it takes them: the cancel waits for the task's own stream. */
    ck_assert_int_eq(tasks_cancel(tasks, t1, false, &after), 0);
    ck_assert_int_eq(sa->cancel_pushes, 0);
    /* One that did: on its node stream, force and all, each time it is asked. */
    a->takes_pushed_cancels = true;
    ck_assert_int_eq(tasks_cancel(tasks, t1, true, &after), 0);
    ck_assert_int_eq(after, TASK_RUNNING);
    ck_assert_int_eq(sa->cancel_pushes, 1);
    ck_assert_str_eq(sa->last_cancel, t1);
    ck_assert(sa->last_cancel_force);
    /* With the task's own stream open, the cancel goes there instead. */
    struct fake_task_stream *ts = fixture_task_stream();
    ck_assert_int_eq(tasks_stream_attach(tasks, t1, &fixture_task_ops, ts), 0);
    ck_assert_int_eq(ts->cancels, 1); /* the one asked for before it opened */
    ck_assert_int_eq(tasks_cancel(tasks, t1, true, &after), 0);
    ck_assert_int_eq(sa->cancel_pushes, 1);
    stop_pushing();
}
END_TEST

START_TEST(test_a_node_not_resynced_yet_or_that_does_not_take_pushes_is_told_to_fetch)
{
    struct fake_node_stream *sa = fixture_node_stream();
    struct node *a = start_pushing(60000, sa);
    a->resynced = false;
    char t1[TASK_ID_LEN + 1];
    submit(NULL, t1);
    group_commit(group);
    ck_assert_int_eq(status_of(t1), TASK_PENDING);
    ck_assert_int_eq(sa->task_pushes, 0);
    ck_assert_int_eq(sa->pushes[NODE_PUSH_TASK_AVAILABLE], 1);
    fetch("a", t1);
    stop_pushing();
}
END_TEST

START_TEST(test_a_rolled_back_assignment_is_not_pushed)
{
    struct fake_node_stream *sa = fixture_node_stream();
    start_pushing(60000, sa);
    char t1[TASK_ID_LEN + 1];
    submit(NULL, t1);
    tasks_committed(tasks, false); /* what a failed commit tells */
    group_commit(group);
    ck_assert_int_eq(sa->task_pushes, 0);
    stop_pushing();
}
END_TEST

START_TEST(test_a_pushed_task_whose_node_stays_away_ends_abnormal_never_queued_again)
{
    /* The push may have arrived and the task run: a lost push looks like a lost report. */
    struct fake_node_stream *sa = fixture_node_stream();
    struct node *a = start_pushing(SHORT_GRACE_MS, sa);
    char id[TASK_ID_LEN + 1];
    submit_pushed(a, sa, id);
    lose_stream(a);
    ck_assert_int_eq(status_of(id), TASK_NODE_DISCONNECTED);
    struct watch wt;
    watch(&wt, id);
    fixture_run_until(&wt.changed);
    ck_assert_int_eq(status_of(id), TASK_ABNORMAL);
    ck_assert_int_eq(a->active, 0);
    tasks_unwatch(tasks, id, &wt.w);
    stop_pushing();
}
END_TEST

START_TEST(test_a_pushed_task_its_node_comes_back_without_is_queued_again)
{
    struct fake_node_stream *sa = fixture_node_stream();
    struct node *a = start_pushing(60000, sa);
    char id[TASK_ID_LEN + 1];
    submit_pushed(a, sa, id);
    lose_stream(a);
    add_node("a", 1, fixture_node_stream());
    tasks_settle_unlisted(tasks, "a", NULL, 0);
    ck_assert_int_eq(status_of(id), TASK_PENDING);
    ck_assert_int_eq(a->active, 0);
    stop_pushing();
}
END_TEST

START_TEST(test_a_pushed_task_given_back_is_queued_again_and_its_node_gets_no_more)
{
    struct fake_node_stream *sa = fixture_node_stream();
    struct node *a = start_pushing(60000, sa);
    char t1[TASK_ID_LEN + 1], t2[TASK_ID_LEN + 1];
    submit_pushed(a, sa, t1);
    uint64_t e = epoch_of(t1);
    /* Under an older epoch, or once started, it cannot be given back. */
    ck_assert_int_eq(tasks_report(tasks, "a", t1, TASK_PENDING, 0, 0, NULL, e + 1), -ESTALE);
    ck_assert_int_eq(tasks_report(tasks, "a", t1, TASK_PENDING, 0, 0, NULL, e), 0);
    ck_assert_int_eq(status_of(t1), TASK_PENDING);
    ck_assert_int_eq(a->active, 0);
    ck_assert(!a->takes_pushed_tasks);
    submit(NULL, t2);
    group_commit(group);
    ck_assert_int_eq(sa->task_pushes, 1);
    ck_assert_int_eq(status_of(t2), TASK_PENDING);
    fetch("a", t1);
    ck_assert_int_eq(tasks_report(tasks, "a", t1, TASK_RUNNING, 42, 0, NULL, epoch_of(t1)), 0);
    ck_assert_int_eq(tasks_report(tasks, "a", t1, TASK_PENDING, 0, 0, NULL, epoch_of(t1)),
                     -EALREADY);
    stop_pushing();
}
END_TEST

static Suite *tasks_suite(void)
{
    Suite *s = suite_create("tasks");
    TCase *tc = tcase_create("tasks");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_replies_wait_only_while_the_group_holds_a_change);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_submitted_task_is_pushed_to_a_free_node_and_fetched_by_it);
    tcase_add_test(tc, test_lost_news_send_every_free_node_fetching);
    tcase_add_test(tc, test_addressed_task_goes_to_its_node_only);
    tcase_add_test(tc, test_draining_queue_hands_out_nothing);
    tcase_add_test(tc, test_a_fetch_that_beats_the_final_status_gets_the_task_freed_for_it);
    tcase_add_test(tc, test_a_waiting_fetch_gets_no_task_when_the_queue_is_empty);
    tcase_add_test(tc, test_a_waiting_fetch_ends_at_its_limit_offline_or_drain);
    tcase_add_test(tc, test_held_count_follows_assign_running_finished);
    tcase_add_test(tc, test_report_from_another_node_is_refused);
    tcase_add_test(tc,
                   test_held_count_survives_offline_and_settles_when_the_node_returns_without_them);
    tcase_add_test(tc, test_held_count_is_rebuilt_from_the_store_at_start);
    tcase_add_test(tc, test_started_task_of_a_node_that_stays_away_ends_abnormal_after_the_grace);
    tcase_add_test(tc, test_the_grace_ignores_a_step_of_the_wall_clock);
    tcase_add_test(tc, test_unconfirmed_task_of_a_node_that_stays_away_goes_back_to_the_queue);
    tcase_add_test(tc, test_task_requeued_while_its_node_was_away_stays_with_that_node_if_started);
    tcase_add_test(tc, test_a_claim_makes_the_task_started_and_the_pid_follows);
    tcase_add_test(tc, test_a_claimed_task_whose_node_stays_away_is_never_handed_out_again);
    tcase_add_test(tc, test_a_stale_claim_is_refused_and_changes_nothing);
    tcase_add_test(
        tc, test_an_assignment_lost_in_a_crash_is_claimed_in_vain_and_the_task_runs_elsewhere);
    tcase_add_test(tc, test_a_claim_under_an_older_epoch_of_the_same_node_is_refused);
    tcase_add_test(tc, test_resync_stops_a_copy_listed_under_an_older_epoch);
    tcase_add_test(tc, test_a_requeued_task_listed_under_an_epoch_is_not_adopted);
    tcase_add_test(tc, test_cancel_of_a_pending_task_is_immediate);
    tcase_add_test(tc, test_an_error_with_retries_left_makes_an_attempt_announced_when_due);
    tcase_add_test(tc, test_finished_and_cancelled_tasks_are_not_retried);
    tcase_add_test(tc, test_an_abnormal_end_after_the_grace_is_retried);
    tcase_add_test(tc, test_a_waiting_retry_is_announced_after_a_restart);
    tcase_add_test(tc, test_restart_makes_a_linked_pending_task);
    tcase_add_test(tc, test_cancel_of_a_running_task_reaches_its_worker_stream);
    tcase_add_test(tc, test_cancel_asked_before_the_stream_opens_is_delivered_when_it_does);
    tcase_add_test(tc, test_stream_of_a_task_already_over_ends_at_once);
    tcase_add_test(tc, test_a_draining_queue_ends_the_cancel_streams_and_those_opened_after);
    tcase_add_test(tc, test_a_free_node_that_takes_pushed_tasks_gets_the_task_after_the_commit);
    tcase_add_test(tc,
                   test_a_cancel_goes_on_the_node_stream_only_to_a_node_that_takes_pushed_cancels);
    tcase_add_test(tc, test_a_node_not_resynced_yet_or_that_does_not_take_pushes_is_told_to_fetch);
    tcase_add_test(tc, test_a_rolled_back_assignment_is_not_pushed);
    tcase_add_test(tc, test_a_pushed_task_whose_node_stays_away_ends_abnormal_never_queued_again);
    tcase_add_test(tc, test_a_pushed_task_its_node_comes_back_without_is_queued_again);
    tcase_add_test(tc, test_a_pushed_task_given_back_is_queued_again_and_its_node_gets_no_more);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = tasks_suite};
