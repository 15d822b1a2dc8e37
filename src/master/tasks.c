#include "master/tasks.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fence.h"
#include "master/clock.h"
#include "master/events.h"
#include "master/group.h"
#include "master/metrics.h"
#include "master/nodes.h"
#include "resilience/backoff.h"
#include "runtime/hmap.h"
#include "runtime/log.h"
#include "runtime/array.h"

/* A task that was never confirmed started waits this long for its node (at most the disconnect
 * grace) before it goes back to the queue. */
#define UNCONFIRMED_GRACE_MS 30000

/* The statuses in which a node holds a task (node->active counts them). */
static const enum task_status held_states[] = {TASK_ASSIGNED, TASK_RUNNING, TASK_NODE_DISCONNECTED};

/*
 * What the master keeps in memory about a task while someone cares: its worker's stream and the
 * log followers. Created on demand, freed when neither is left.
 */
struct live_task {
    struct hmap_entry link;
    char id[TASK_ID_LEN + 1];
    const struct task_stream_ops *stream; /* the worker's stream, or NULL */
    void *stream_handle;
    bool cancel_sent;
    struct task_watcher *watchers;
};

/* A fetch that waits for a runner of its node (tasks_fetch). */
struct fetch_wait {
    struct fetch_wait *next;
    struct tasks *t;
    char node_key[LIMIT_NODE_KEY_MAX + 1];
    tasks_fetch_answer_fn answer;
    void *ctx;
    ev_timer limit; /* TASKS_FETCH_WAIT_MS */
};

/* A task assigned to a node that takes pushed tasks, pushed once the assignment is committed. */
struct unpushed {
    struct unpushed *next;
    char id[TASK_ID_LEN + 1];
    char node_key[LIMIT_NODE_KEY_MAX + 1];
};

struct tasks {
    struct ev_loop *loop;
    struct store *store;
    struct nodes *nodes;
    struct tasks_opts opts;
    struct hmap live;
    struct hmap away; /* struct away_task by id: when each node_disconnected task became so */
    uint64_t sweeps;  /* grace sweeps so far */
    ev_timer grace_sweep;
    ev_timer wake;    /* at the earliest eligible_ms of a waiting retry */
    int64_t woken_ms; /* retries due up to this time were announced */
    bool draining;
    struct metrics *metrics;                    /* NULL: none kept */
    struct events *events;                      /* NULL: none recorded */
    struct group *group;                        /* NULL: nothing is pushed, every node fetches */
    struct unpushed *unpushed, **unpushed_tail; /* assigned in the open group, oldest first */
    struct fetch_wait *fetch_waits;             /* oldest first */
};

static bool is_held(enum task_status s)
{
    return s == TASK_ASSIGNED || s == TASK_RUNNING || s == TASK_NODE_DISCONNECTED;
}

/* ---- tasks someone cares about ---- */

static struct live_task *live_get(struct tasks *t, const char *id, bool create)
{
    struct hmap_entry *e = hmap_get(&t->live, id);
    if (e)
        return hmap_item(e, struct live_task, link);
    if (!create)
        return NULL;
    struct live_task *lt = calloc(1, sizeof(*lt));
    if (!lt)
        return NULL;
    memcpy(lt->id, id, TASK_ID_LEN + 1);
    lt->link.key = lt->id;
    if (hmap_put(&t->live, &lt->link) < 0) {
        free(lt);
        return NULL;
    }
    return lt;
}

static void live_release_if_idle(struct tasks *t, struct live_task *lt)
{
    if (lt->stream || lt->watchers)
        return;
    hmap_remove(&t->live, &lt->link);
    free(lt);
}

static void notify_watchers(struct live_task *lt)
{
    /* A watcher may unwatch itself from its callback; walk a snapshot of the links. */
    struct task_watcher *w = lt->watchers;
    while (w) {
        struct task_watcher *next = w->next;
        w->on_change(w);
        w = next;
    }
}

/* Lets go of the task's stream and ends it. lt may be freed. */
static void end_stream(struct tasks *t, struct live_task *lt, enum task_end why)
{
    const struct task_stream_ops *ops = lt->stream;
    if (!ops)
        return;
    void *handle = lt->stream_handle;
    lt->stream = NULL;
    lt->stream_handle = NULL;
    live_release_if_idle(t, lt);
    ops->end(handle, why);
}

static void send_cancel(struct live_task *lt, bool force)
{
    if (!lt->stream || lt->cancel_sent)
        return;
    if (lt->stream->cancel(lt->stream_handle, lt->id, force) == 0) {
        lt->cancel_sent = true;
        log_info("task %s: cancel%s sent to its worker", lt->id, force ? " (force)" : "");
    }
}

int tasks_stream_attach(struct tasks *t, const char *id, const struct task_stream_ops *ops,
                        void *handle)
{
    struct task_row row;
    int rc = store_task_get(t->store, id, &row);
    if (rc < 0)
        return rc;
    struct live_task *lt = live_get(t, id, true);
    if (!lt) {
        store_task_row_free(&row);
        return -ENOMEM;
    }
    /* A worker reconnecting opens the stream again; the old one is stale. */
    if (lt->stream)
        lt->stream->end(lt->stream_handle, TASK_END_REPLACED);
    lt->stream = ops;
    lt->stream_handle = handle;
    lt->cancel_sent = false;
    if (task_status_terminal(row.status))
        end_stream(t, lt, TASK_END_OVER);
    else if (t->draining)
        end_stream(t, lt, TASK_END_STOPPING);
    else if (row.cancel_requested)
        send_cancel(lt, row.cancel_force); /* asked for while the worker had no stream */
    store_task_row_free(&row);
    return 0;
}

void tasks_stream_gone(struct tasks *t, const char *id, void *handle)
{
    struct live_task *lt = live_get(t, id, false);
    if (!lt || lt->stream_handle != handle)
        return;
    lt->stream = NULL;
    lt->stream_handle = NULL;
    live_release_if_idle(t, lt);
}

int tasks_watch(struct tasks *t, const char *id, struct task_watcher *w)
{
    struct live_task *lt = live_get(t, id, true);
    if (!lt)
        return -ENOMEM;
    w->next = lt->watchers;
    lt->watchers = w;
    return 0;
}

void tasks_unwatch(struct tasks *t, const char *id, struct task_watcher *w)
{
    struct live_task *lt = live_get(t, id, false);
    if (!lt)
        return;
    for (struct task_watcher **p = &lt->watchers; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    live_release_if_idle(t, lt);
}

/* The time from the task's creation (or a retry's eligibility) to its assignment, now. */
static void observe_dispatch(struct tasks *t, const struct task_row *r, int64_t now_ms)
{
    int64_t since = r->eligible_ms > r->created_ms ? r->eligible_ms : r->created_ms;
    if (t->metrics && now_ms >= since)
        metrics_observe(&t->metrics->dispatch_seconds, (double)(now_ms - since) / 1000.0);
}

/* The task goes to its node, if it is still assigned there: the assignment is durable. A push
 * that does not arrive (the stream broke, the node is gone) is settled as any assignment of a
 * node that went away: tasks_node_offline, then the grace, or the node's Resync. */
static void push_assigned(struct tasks *t, const struct unpushed *u)
{
    struct node *node = nodes_find(t->nodes, u->node_key);
    struct task_row row;
    if (!node || store_task_get(t->store, u->id, &row) < 0)
        return;
    if (row.status == TASK_ASSIGNED && strcmp(row.assigned_node, u->node_key) == 0) {
        observe_dispatch(t, &row, clock_now_ms(t->loop));
        if (nodes_push_task(node, &row) == 0) {
            if (t->metrics)
                t->metrics->tasks_pushed++;
            log_debug("task %s pushed to node %s (epoch %" PRIu64 ")", row.id, u->node_key,
                      row.epoch);
        }
    }
    store_task_row_free(&row);
}

void tasks_recheck_watchers(struct tasks *t)
{
    struct hmap_entry *e, *tmp;
    hmap_foreach(&t->live, e, tmp)
    {
        struct live_task *lt = hmap_item(e, struct live_task, link);
        if (lt->watchers)
            notify_watchers(lt);
    }
}

void tasks_committed(struct tasks *t, bool ok)
{
    struct unpushed *u = t->unpushed;
    t->unpushed = NULL;
    t->unpushed_tail = &t->unpushed;
    while (u) {
        struct unpushed *next = u->next;
        if (ok)
            push_assigned(t, u);
        free(u);
        u = next;
    }
    if (ok)
        tasks_recheck_watchers(t);
}

/* ---- status changes ---- */

/*
 * Whether the task may have started: its node reported it, or it was pushed to it (the row's
 * pushed, stored with the assignment, so that a restarted master judges it the same). Such a task
 * whose node goes away ends abnormal after the grace and is never queued again; only the node's
 * own Resync without it, or its giving it back, puts it back in the queue.
 */
static bool maybe_started(const struct task_row *r)
{
    return r->started_ms != 0 || r->pushed;
}

/* The event of the task's move to its current status, if that records one (core/event.h): about
 * `now`, the row after the move, or, when NULL, the row read again. */
static void record_status_event(struct tasks *t, const char *id, const struct task_row *now)
{
    if (!t->events)
        return;
    struct task_row read;
    enum event_kind kind;
    if (!now) {
        if (store_task_get(t->store, id, &read) < 0)
            return;
        now = &read;
    }
    if (event_of_task_status(now->status, now->data_items, &kind))
        events_task(t->events, kind, id, now, NULL);
    if (now == &read)
        store_task_row_free(&read);
}

/* task.retried, about the new attempt `id` of a task that failed on node_key. */
static void record_retry_event(struct tasks *t, const char *id, const char *node_key)
{
    struct task_row attempt;
    if (!t->events || store_task_get(t->store, id, &attempt) < 0)
        return;
    events_task(t->events, EVENT_TASK_RETRIED, id, &attempt, node_key);
    store_task_row_free(&attempt);
}

static void announce(struct tasks *t, const char *id, const char *node_key, const char *labels);
static void wake_arm(struct tasks *t);
static void serve_waits(struct tasks *t, const char *node_key);

/* Does a task that ends in `to` get another attempt? Only an error or abnormal end of a task
 * submitted with retries it has not used up; finished and cancelled never retry, nor does a task
 * someone asked to cancel that ended otherwise meanwhile. */
static bool retries_left(const struct task_row *r, enum task_status to)
{
    return (to == TASK_ERROR || to == TASK_ABNORMAL) && r->attempt <= r->retries &&
           !r->cancel_requested && task_transition_allowed(r->status, to);
}

/*
 * The one place a retry is made: the failed task ends in `to` and its next attempt is stored in
 * the same transaction (store_task_retry), eligible after the failed attempt's backoff delay
 * (backoff_nth_ms: the retry delay doubling per attempt, jittered, seeded by the task id). The
 * new attempt (its id into next) is announced when it becomes eligible (the wake timer), or by
 * the caller when *due_now (no delay): after the failed attempt's node was released, so that the
 * node counts as free for it. Returns what store_task_retry returned.
 */
static int retry_task(struct tasks *t, const struct task_row *failed, enum task_status to,
                      int exit_code, const char *error, int64_t now, char next[TASK_ID_LEN + 1],
                      bool *due_now)
{
    uint64_t seed = 0;
    for (const char *c = failed->id; *c; c++)
        seed = seed * 31 + (unsigned char)*c;
    int64_t delay =
        (int64_t)backoff_nth_ms((uint64_t)failed->retry_delay_ms, LIMIT_RETRY_DELAY_MAX_MS,
                                (unsigned)failed->attempt, seed);
    int rc = store_task_retry(t->store, failed->id, to, exit_code, error, now + delay, now, next);
    if (rc != 0)
        return rc;
    log_info("task %s %s; retried as task %s (attempt %d of %d) in %" PRId64 " ms", failed->id,
             task_status_name(to), next, failed->attempt + 1, failed->retries + 1, delay);
    if (t->woken_ms > now)
        t->woken_ms = now; /* the wall clock stepped back: this retry is still to announce */
    *due_now = delay == 0;
    if (!*due_now)
        wake_arm(t);
    return 0;
}

/*
 * The one place a task's status changes: the store and its event, the node's count of held tasks,
 * the task's stream and the watchers follow. A failed task with retries left gets its next attempt
 * here (retry_task). whole: before is the whole row, read in this turn of the loop (not a list's
 * copy of a few fields), so the event's row is made from it (store_task_row_after_move) instead of
 * read again. Returns what store_task_set_status returned.
 */
static int change_status(struct tasks *t, const struct task_row *before, bool whole,
                         enum task_status to, int pid, int exit_code, const char *error)
{
    char next[TASK_ID_LEN + 1] = "";
    bool retry_due = false;
    int64_t now = clock_now_ms(t->loop);
    events_join(t->events);
    bool retry = retries_left(before, to);
    if (retry)
        pid = 0; /* store_task_retry ends the failed attempt without one */
    int rc = retry ? retry_task(t, before, to, exit_code, error, now, next, &retry_due)
                   : store_task_set_status(t->store, before->id, to, pid, exit_code, error, now);
    if (rc != 0)
        return rc;
    struct task_row after;
    if (whole)
        store_task_row_after_move(before, to, pid, exit_code, error, now, &after);
    record_status_event(t, before->id, whole ? &after : NULL);
    if (*next)
        record_retry_event(t, next, before->assigned_node);
    if (is_held(before->status) && !is_held(to)) {
        nodes_task_released(t->nodes, before->assigned_node);
        serve_waits(t, before->assigned_node);
    }
    if (retry_due)
        announce(t, next, before->node_key, before->labels);
    if (task_status_terminal(to))
        log_info("task %s %s%s%s", before->id, task_status_name(to), error && *error ? ": " : "",
                 error ? error : "");
    struct live_task *lt = live_get(t, before->id, false);
    if (lt && task_status_terminal(to))
        end_stream(t, lt, TASK_END_OVER);
    if ((lt = live_get(t, before->id, false)))
        notify_watchers(lt);
    return 0;
}

/*
 * Assigns the pending task id to node in the open group (opened if none is); it is pushed once
 * that group is committed (tasks_committed). False when it stays pending: no group, out of
 * memory, or the store did not assign it.
 */
static bool assign_to_push(struct tasks *t, const char *id, struct node *node)
{
    struct unpushed *u = t->group && !t->draining ? calloc(1, sizeof(*u)) : NULL;
    if (!u || group_join(t->group) < 0 ||
        store_task_assign(t->store, id, node->key, clock_now_ms(t->loop), true) != 0) {
        free(u);
        return false;
    }
    group_want_commit(t->group);
    nodes_task_held(t->nodes, node->key);
    memcpy(u->id, id, sizeof(u->id));
    snprintf(u->node_key, sizeof(u->node_key), "%s", node->key);
    *t->unpushed_tail = u;
    t->unpushed_tail = &u->next;
    log_debug("task %s assigned to node %s, to be pushed", id, node->key);
    return true;
}

/* Hands a newly pending task (id, when known) to whoever should run it: the node it is addressed
 * to, else a free node that has the labels of its selector (NULL: any). A node that takes pushed
 * tasks, has room and has resynced since it registered gets it assigned (assign_to_push): before
 * its Resync is answered, a task pushed to it could be missing from its listing and be queued
 * again. Else the node is told TASK_AVAILABLE and fetches. */
static void announce(struct tasks *t, const char *id, const char *node_key, const char *labels)
{
    struct node *node =
        node_key && *node_key ? nodes_find(t->nodes, node_key) : nodes_pick_free(t->nodes, labels);
    if (!node || !nodes_takes(node, labels))
        return;
    if (id && node->takes_pushed_tasks && node->resynced && nodes_has_room(node, labels) &&
        assign_to_push(t, id, node))
        return;
    nodes_notify_task(node);
}

/* Back to the queue, for any node: it was never confirmed started. */
static void requeue(struct tasks *t, const struct task_row *r, const char *why)
{
    if (change_status(t, r, false, TASK_PENDING, 0, STORE_NO_EXIT_CODE, NULL) == 0) {
        log_info("task %s returned to the queue: %s", r->id, why);
        announce(t, r->id, r->node_key, r->labels);
    }
}

int tasks_submit(struct tasks *t, const struct task_new *tn, char id_out[TASK_ID_LEN + 1])
{
    int rc = store_task_create(t->store, tn, clock_now_ms(t->loop), id_out);
    if (rc < 0)
        return rc;
    log_debug("task %s submitted", id_out);
    announce(t, id_out, tn->node_key, tn->labels);
    return 0;
}

struct fire_nodes {
    const struct task_new *base;
    struct task_new *each;
    size_t n, cap;
};

static void add_fire_node(void *ctx, struct node *node)
{
    struct fire_nodes *f = ctx;
    if (!nodes_takes(node, f->base->labels) || f->n == f->cap)
        return;
    f->each[f->n] = *f->base;
    f->each[f->n].node_key = node->key;
    f->each[f->n].labels = NULL; /* a task for a named node is that node's, as submit makes it */
    f->n++;
}

int tasks_fire(struct tasks *t, int64_t schedule_id, int64_t fire_s, const struct task_new *tn,
               bool all_nodes)
{
    struct fire_nodes f = {.base = tn, .each = (struct task_new *)tn, .n = 1};
    if (all_nodes) {
        f.cap = nodes_count(t->nodes);
        f.n = 0;
        f.each = f.cap ? calloc(f.cap, sizeof(*f.each)) : NULL;
        if (f.cap && !f.each)
            return -ENOMEM;
        nodes_foreach(t->nodes, add_fire_node, &f);
        if (f.n == 0) {
            free(f.each);
            return -ENODEV;
        }
    }
    char(*ids)[TASK_ID_LEN + 1] = calloc(f.n, sizeof(*ids));
    int rc = ids ? store_schedule_fire(t->store, schedule_id, fire_s, f.each, f.n, all_nodes,
                                       clock_now_ms(t->loop), ids)
                 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < f.n; i++) {
        log_info("schedule %" PRId64 ": task %s for the fire at %" PRId64 "%s%s", schedule_id,
                 ids[i], fire_s, all_nodes ? " on node " : "", all_nodes ? f.each[i].node_key : "");
        announce(t, ids[i], f.each[i].node_key, f.each[i].labels);
    }
    free(ids);
    if (all_nodes)
        free(f.each);
    return rc < 0 ? rc : 0;
}

int tasks_restart(struct tasks *t, const char *id, char id_out[TASK_ID_LEN + 1])
{
    struct task_row row;
    int rc = store_task_get(t->store, id, &row);
    if (rc < 0)
        return rc;
    rc = store_task_restart(t->store, id, clock_now_ms(t->loop), id_out);
    if (rc == 0) {
        log_info("task %s restarted as task %s", id, id_out);
        announce(t, id_out, row.node_key, row.labels);
    }
    store_task_row_free(&row);
    return rc;
}

/* Sends a held task's cancel to its worker, if the worker is connected here: on the task's own
 * stream, else on its node's stream when the node takes pushed cancels. False when neither is. */
static bool deliver_cancel(struct tasks *t, const char *id, const char *node_key, bool force)
{
    struct live_task *lt = live_get(t, id, false);
    struct node *node = *node_key ? nodes_find(t->nodes, node_key) : NULL;
    if (lt && lt->stream) {
        send_cancel(lt, force);
        return true;
    }
    if (node && node->takes_pushed_cancels && nodes_push_cancel(node, id, force) == 0) {
        log_info("task %s: cancel%s sent to its worker on its node stream", id,
                 force ? " (force)" : "");
        return true;
    }
    return false;
}

int tasks_cancel(struct tasks *t, const char *id, bool force, enum task_status *after)
{
    struct task_row before;
    int rc = store_task_get(t->store, id, &before);
    if (rc < 0)
        return rc;
    events_join(t->events);
    rc = store_task_request_cancel(t->store, id, force, clock_now_ms(t->loop), after);
    struct live_task *lt = rc == 0 ? live_get(t, id, false) : NULL;
    if (rc == 0 && *after == TASK_CANCELLED && before.status != TASK_CANCELLED) {
        log_info("task %s cancelled before any worker took it", id);
        record_status_event(t, id, NULL);
        if (lt)
            notify_watchers(lt);
    } else if (rc == 0 && !task_status_terminal(*after) &&
               !deliver_cancel(t, id, before.assigned_node, force)) {
        log_info("task %s: cancel recorded; its worker gets it %s", id,
                 store_shared(t->store)
                     ? "through the master it is connected to, or when it resyncs"
                     : "when it opens the task stream or resyncs");
    }
    store_task_row_free(&before);
    return rc;
}

/* Assigns the node its next task, if one waits that it may take now: 1 and *out, 0, -errno. */
static int fetch_now(struct tasks *t, struct node *node, struct task_row *out)
{
    if (t->draining || node->state != NODE_ENABLED || nodes_full(node))
        return 0;
    int64_t now_ms = clock_now_ms(t->loop);
    int rc = store_task_fetch(t->store, node->key, node->labels, now_ms, out);
    if (rc == 1) {
        observe_dispatch(t, out, now_ms);
        nodes_task_held(t->nodes, node->key);
        log_debug("task %s assigned to node %s", out->id, node->key);
    }
    return rc;
}

/* ---- fetches that wait for a runner ---- */

/* The oldest fetch that waits, of node_key (NULL: of any node). */
static struct fetch_wait *first_wait(struct tasks *t, const char *node_key)
{
    for (struct fetch_wait *w = t->fetch_waits; w; w = w->next)
        if (!node_key || strcmp(w->node_key, node_key) == 0)
            return w;
    return NULL;
}

/* Takes w off the list, answers it and frees it. */
static void answer_wait(struct tasks *t, struct fetch_wait *w, int rc, const struct task_row *row)
{
    for (struct fetch_wait **p = &t->fetch_waits; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    ev_timer_stop(t->loop, &w->limit);
    w->answer(w->ctx, rc, row);
    free(w);
}

/* A task of the node was released: its fetches that wait get what it has room for, oldest first;
 * once the queue has nothing for it, the rest get no task. */
static void serve_waits(struct tasks *t, const char *node_key)
{
    struct fetch_wait *w;
    while ((w = first_wait(t, node_key))) {
        struct node *node = nodes_find(t->nodes, node_key);
        if (node && nodes_full(node))
            return;
        struct task_row row;
        int rc = node ? fetch_now(t, node, &row) : 0;
        answer_wait(t, w, rc, rc == 1 ? &row : NULL);
        if (rc == 1)
            store_task_row_free(&row);
    }
}

/* Every fetch that waits, of node_key (NULL: of any node), gets no task. */
static void end_waits(struct tasks *t, const char *node_key)
{
    struct fetch_wait *w;
    while ((w = first_wait(t, node_key)))
        answer_wait(t, w, 0, NULL);
}

static void on_wait_limit(struct ev_loop *loop, ev_timer *timer, int revents)
{
    struct fetch_wait *w = timer->data;
    log_debug("node %s: a fetch waited %d ms for a runner in vain", w->node_key,
              TASKS_FETCH_WAIT_MS);
    answer_wait(w->t, w, 0, NULL);
}

/* Puts the node's fetch on the list; false when it already has one waiting per runner (a worker
 * sends no more fetches than it has free runners: more come from a peer that misbehaves, and each
 * would hold a call for up to TASKS_FETCH_WAIT_MS) or when out of memory. */
static bool wait_for_runner(struct tasks *t, const struct node *node, tasks_fetch_answer_fn later,
                            void *ctx)
{
    int waiting = 0;
    struct fetch_wait **tail = &t->fetch_waits;
    for (; *tail; tail = &(*tail)->next)
        waiting += strcmp((*tail)->node_key, node->key) == 0;
    if (waiting >= node->max_runners)
        return false;
    struct fetch_wait *w = calloc(1, sizeof(*w));
    if (!w)
        return false;
    w->t = t;
    snprintf(w->node_key, sizeof(w->node_key), "%s", node->key);
    w->answer = later;
    w->ctx = ctx;
    ev_timer_init(&w->limit, on_wait_limit, TASKS_FETCH_WAIT_MS / 1000.0, 0.0);
    w->limit.data = w;
    ev_timer_start(t->loop, &w->limit);
    *tail = w;
    if (t->metrics)
        t->metrics->fetches_waited++;
    log_debug("node %s: its fetch waits for a runner (the master holds %d tasks of it)", node->key,
              node->active);
    return true;
}

int tasks_fetch(struct tasks *t, const char *node_key, struct task_row *out,
                tasks_fetch_answer_fn later, void *ctx)
{
    struct node *node = nodes_find(t->nodes, node_key);
    if (!node)
        return 0;
    if (later && !t->draining && node->state == NODE_ENABLED && nodes_full(node) &&
        wait_for_runner(t, node, later, ctx))
        return TASKS_FETCH_WAITS;
    return fetch_now(t, node, out);
}

void tasks_drain(struct tasks *t)
{
    t->draining = true;
    end_waits(t, NULL);
    /* A cancel stream would otherwise hold the server's shutdown for its whole grace; the worker
     * opens it again on its next connection, to this master or another. */
    struct hmap_entry *e, *tmp;
    hmap_foreach(&t->live, e, tmp)
    {
        end_stream(t, hmap_item(e, struct live_task, link), TASK_END_STOPPING);
    }
}

/*
 * The node gives back a task pushed to it that it will not start (it is stopping): back to the
 * queue, and no more pushes to that node until it registers again. Only a task still assigned (not
 * reported running) can be given back: -EALREADY otherwise.
 */
static int give_back(struct tasks *t, const struct task_row *r, const char *node_key)
{
    if (r->status != TASK_ASSIGNED)
        return -EALREADY;
    struct node *node = nodes_find(t->nodes, node_key);
    if (node)
        node->takes_pushed_tasks = false;
    requeue(t, r, "its node gave it back");
    return 0;
}

int tasks_report(struct tasks *t, const char *node_key, const char *id, enum task_status to,
                 int pid, int exit_code, const char *error, uint64_t epoch)
{
    struct task_row row;
    int rc = store_task_get(t->store, id, &row);
    if (rc < 0)
        return rc;
    struct fence_row fr = {
        .status = row.status,
        .held_here = strcmp(row.assigned_node, node_key) == 0,
        .epoch = row.epoch,
    };
    switch (fence_report(&fr, to, epoch)) {
    case FENCE_ACCEPT:
        if (to == TASK_PENDING) {
            rc = give_back(t, &row, node_key);
            break;
        }
        rc = change_status(t, &row, true, to, pid,
                           task_status_terminal(to) ? exit_code : STORE_NO_EXIT_CODE, error);
        if (rc == 0 && epoch && to == TASK_RUNNING && !pid)
            log_debug("task %s claimed by node %s (epoch %" PRIu64 ")", id, node_key, epoch);
        break;
    case FENCE_ELSEWHERE:
        rc = -EPERM;
        break;
    case FENCE_STALE:
        log_info("task %s: node %s reported '%s' under epoch %" PRIu64 ", but the task is at "
                 "epoch %" PRIu64 ": refused",
                 id, node_key, task_status_name(to), epoch, row.epoch);
        rc = -ESTALE;
        break;
    case FENCE_OVER:
        log_info("task %s: node %s claimed it, but it is already %s: refused", id, node_key,
                 task_status_name(row.status));
        rc = -EALREADY;
        break;
    }
    store_task_row_free(&row);
    return rc < 0 ? rc : 0;
}

/* ---- lists of task rows to settle ---- */

/*
 * Task rows collected before any of them changes: only the fields the settling code reads are
 * copied (the row's heap strings stay the store's).
 */
struct row_list {
    struct task_row *rows;
    size_t n, cap;
};

static int row_list_add(struct row_list *l, const struct task_row *r)
{
    struct task_row *rows = array_grow(l->rows, l->n, &l->cap, sizeof(*rows), 16);
    if (!rows)
        return -ENOMEM;
    l->rows = rows;
    struct task_row *copy = &l->rows[l->n++];
    memset(copy, 0, sizeof(*copy));
    memcpy(copy->id, r->id, sizeof(copy->id));
    memcpy(copy->node_key, r->node_key, sizeof(copy->node_key));
    memcpy(copy->assigned_node, r->assigned_node, sizeof(copy->assigned_node));
    copy->status = r->status;
    copy->started_ms = r->started_ms;
    copy->pushed = r->pushed; /* with started_ms, what maybe_started reads */
    copy->updated_ms = r->updated_ms;
    /* What retry_task reads. */
    copy->cancel_requested = r->cancel_requested;
    copy->attempt = r->attempt;
    copy->retries = r->retries;
    copy->retry_delay_ms = r->retry_delay_ms;
    return 0;
}

static int collect_row(void *ctx, const struct task_row *r)
{
    return row_list_add(ctx, r);
}

/* ---- resync ---- */

static bool listed(const char *const *ids, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    return false;
}

void tasks_settle_unlisted(struct tasks *t, const char *node_key, const char *const *ids, size_t n)
{
    struct row_list h = {0};
    for (size_t i = 0; i < sizeof(held_states) / sizeof(held_states[0]); i++)
        store_task_list_by_node(t->store, node_key, held_states[i], collect_row, &h);
    for (size_t i = 0; i < h.n; i++) {
        const struct task_row *r = &h.rows[i];
        if (listed(ids, n, r->id))
            continue;
        if (resync_missing(r->started_ms != 0) == RESYNC_REQUEUE)
            requeue(t, r, "its node came back without it");
        else
            change_status(t, r, false, TASK_ERROR, 0, STORE_NO_EXIT_CODE, "lost by worker");
    }
    free(h.rows);
}

static void resync_view(const struct task_row *row, const char *node_key, uint64_t epoch,
                        struct resync_row *v)
{
    *v = (struct resync_row){
        .status = row->status,
        .held_here = strcmp(row->assigned_node, node_key) == 0,
        .targets_elsewhere = row->node_key[0] && strcmp(row->node_key, node_key) != 0,
        .stale = fence_stale(row->epoch, epoch),
        .cancel_requested = row->cancel_requested,
        .cancel_force = row->cancel_force,
    };
}

int tasks_resync_one(struct tasks *t, const char *node_key, const char *id,
                     const enum task_status *worker_status, uint64_t epoch, struct task_row *row,
                     struct resync_row *view)
{
    int rc = store_task_get(t->store, id, row);
    if (rc < 0)
        return rc;
    resync_view(row, node_key, epoch, view);
    if (view->stale)
        log_info("task %s: node %s holds it under epoch %" PRIu64 ", but the task is at epoch "
                 "%" PRIu64 ": its copy is stopped",
                 row->id, node_key, epoch, row->epoch);
    if (!resync_adopts(view, worker_status) ||
        store_task_assign(t->store, row->id, node_key, clock_now_ms(t->loop), false) != 0)
        return 0;
    nodes_task_held(t->nodes, node_key);
    log_info("task %s stays with node %s, which had started it", row->id, node_key);
    row->status = TASK_ASSIGNED;
    row->epoch++; /* as store_task_assign counted it */
    snprintf(row->assigned_node, sizeof(row->assigned_node), "%s", node_key);
    resync_view(row, node_key, epoch, view);
    return 0;
}

/* ---- a node going offline, and the grace it gets ---- */

/*
 * The grace is measured on the monotonic clock (clock_mono_ms), from when this master saw the
 * task's node go away, so that a step of the wall clock neither ends it at once nor suspends it.
 * A task found node_disconnected without an entry (it was so when the master started) starts its
 * grace at the first sweep that sees it. Entries of tasks no longer node_disconnected are dropped
 * by the sweep that no longer sees them.
 */
struct away_task {
    struct hmap_entry link;
    char id[TASK_ID_LEN + 1];
    int64_t since_mono_ms;
    uint64_t seen; /* the last sweep that found the task node_disconnected */
};

/* The entry of a task, made with since = now when absent; NULL when out of memory. */
static struct away_task *away_get(struct tasks *t, const char *id, int64_t now)
{
    struct hmap_entry *e = hmap_get(&t->away, id);
    if (e)
        return hmap_item(e, struct away_task, link);
    struct away_task *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    snprintf(a->id, sizeof(a->id), "%s", id);
    a->link.key = a->id;
    a->since_mono_ms = now;
    a->seen = t->sweeps;
    if (hmap_put(&t->away, &a->link) < 0) {
        free(a);
        return NULL;
    }
    return a;
}

static void away_remove(struct tasks *t, struct away_task *a)
{
    hmap_remove(&t->away, &a->link);
    free(a);
}

static int on_held_task_of_offline_node(void *ctx, const struct task_row *r)
{
    struct tasks *t = ctx;
    if (change_status(t, r, false, TASK_NODE_DISCONNECTED, 0, STORE_NO_EXIT_CODE, NULL) == 0) {
        /* A task away before and back since may have an old entry: its grace starts now. */
        int64_t now = clock_mono_ms();
        struct away_task *a = away_get(t, r->id, now);
        if (a)
            a->since_mono_ms = now;
    }
    return 0;
}

void tasks_node_offline(struct tasks *t, const char *node_key)
{
    end_waits(t, node_key);
    store_task_list_by_node(t->store, node_key, TASK_RUNNING, on_held_task_of_offline_node, t);
    store_task_list_by_node(t->store, node_key, TASK_ASSIGNED, on_held_task_of_offline_node, t);
}

struct grace_scan {
    struct tasks *t;
    int64_t now, started_grace, unconfirmed_grace;
    struct row_list expired;
};

static int collect_expired(void *ctx, const struct task_row *r)
{
    struct grace_scan *g = ctx;
    struct away_task *a = away_get(g->t, r->id, g->now);
    if (!a)
        return 0; /* out of memory: this task waits for a later sweep */
    a->seen = g->t->sweeps;
    if (g->now - a->since_mono_ms < (maybe_started(r) ? g->started_grace : g->unconfirmed_grace))
        return 0;
    return row_list_add(&g->expired, r);
}

/* Tasks whose node stayed away too long: started ones end abnormal after the disconnect grace,
 * never confirmed ones go back to the queue sooner. */
static void on_grace_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct tasks *t = w->data;
    int64_t grace = (int64_t)t->opts.disconnect_grace_ms;
    struct grace_scan g = {
        .t = t,
        .now = clock_mono_ms(),
        .started_grace = grace,
        .unconfirmed_grace = grace < UNCONFIRMED_GRACE_MS ? grace : UNCONFIRMED_GRACE_MS,
    };
    t->sweeps++;
    if (store_task_list(t->store, task_status_name(TASK_NODE_DISCONNECTED), NULL, 0,
                        collect_expired, &g) == 0) {
        struct hmap_entry *e, *tmp;
        hmap_foreach(&t->away, e, tmp)
        {
            struct away_task *a = hmap_item(e, struct away_task, link);
            if (a->seen != t->sweeps)
                away_remove(t, a);
        }
    }
    for (size_t i = 0; i < g.expired.n; i++) {
        const struct task_row *r = &g.expired.rows[i];
        if (maybe_started(r))
            change_status(t, r, false, TASK_ABNORMAL, 0, STORE_NO_EXIT_CODE,
                          "node did not come back within the disconnect grace");
        else
            requeue(t, r, "its node did not come back");
    }
    free(g.expired.rows);
}

/* ---- retries waiting for their time ---- */

static int announce_node(void *ctx, const char *node_key, const char *labels)
{
    announce(ctx, NULL, node_key, *labels ? labels : NULL);
    return 0;
}

/* Retries that became eligible since the last wake-up are announced; then the timer is set for
 * the next one. Times are the stored wall-clock ones: a timer that fires early finds nothing due
 * and is set again. */
static void on_wake(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct tasks *t = w->data;
    int64_t now = clock_now_ms(loop);
    if (store_task_eligible_nodes(t->store, t->woken_ms, now, announce_node, t) == 0)
        t->woken_ms = now;
    wake_arm(t);
}

/* Sets the wake timer for the earliest retry not announced yet (stored, so it survives a restart
 * of the master). */
static void wake_arm(struct tasks *t)
{
    int64_t at = 0;
    if (store_task_next_eligible(t->store, t->woken_ms, &at) < 0) {
        at = clock_now_ms(t->loop) + 1000; /* look again in a second */
    } else if (at == 0) {
        ev_timer_stop(t->loop, &t->wake);
        return;
    }
    double in = (double)(at - clock_now_ms(t->loop)) / 1000.0;
    ev_timer_stop(t->loop, &t->wake);
    ev_timer_set(&t->wake, in > 0 ? in : 0, 0.0);
    ev_timer_start(t->loop, &t->wake);
}

static void tell_if_free(void *ctx, struct node *node)
{
    if (nodes_has_room(node, NULL))
        nodes_notify_task(node);
}

void tasks_news_lost(struct tasks *t)
{
    nodes_foreach(t->nodes, tell_if_free, NULL);
    wake_arm(t); /* and retries due later, which the news would have announced */
}

void tasks_news(struct tasks *t, const char *id, const char *node_key, const char *labels,
                int64_t eligible_ms)
{
    if (eligible_ms > clock_now_ms(t->loop))
        wake_arm(t); /* a retry for later: the wake timer announces it then */
    else
        announce(t, id, node_key, *labels ? labels : NULL);
}

void tasks_cancel_news(struct tasks *t, const char *id, const char *node_key, bool force)
{
    if (deliver_cancel(t, id, node_key, force))
        log_info("task %s: cancel asked of another master, sent to its worker", id);
}

/* ---- life cycle ---- */

static int count_held(void *ctx, const struct task_row *r)
{
    struct tasks *t = ctx;
    nodes_task_held(t->nodes, r->assigned_node);
    return 0;
}

int tasks_create(struct ev_loop *loop, struct store *store, struct nodes *nodes,
                 const struct tasks_opts *opts, struct tasks **out)
{
    struct tasks *t = calloc(1, sizeof(*t));
    if (!t || hmap_init(&t->live) < 0) {
        free(t);
        return -ENOMEM;
    }
    if (hmap_init(&t->away) < 0) {
        hmap_destroy(&t->live);
        free(t);
        return -ENOMEM;
    }
    t->loop = loop;
    t->store = store;
    t->nodes = nodes;
    t->opts = *opts;
    t->unpushed_tail = &t->unpushed;
    /* A tenth of the grace, within 0.1 .. 5 s. */
    double every = (double)opts->disconnect_grace_ms / 10000.0;
    if (every > 5.0)
        every = 5.0;
    if (every < 0.1)
        every = 0.1;
    ev_timer_init(&t->grace_sweep, on_grace_sweep, every, every);
    t->grace_sweep.data = t;
    ev_init(&t->wake, on_wake);
    t->wake.data = t;
    for (size_t i = 0; i < sizeof(held_states) / sizeof(held_states[0]); i++) {
        int rc = store_task_list(store, task_status_name(held_states[i]), NULL, 0, count_held, t);
        if (rc < 0) {
            tasks_destroy(t);
            return rc;
        }
    }
    ev_timer_start(loop, &t->grace_sweep);
    wake_arm(t); /* retries stored before a restart */
    *out = t;
    return 0;
}

void tasks_destroy(struct tasks *t)
{
    if (!t)
        return;
    ev_timer_stop(t->loop, &t->grace_sweep);
    ev_timer_stop(t->loop, &t->wake);
    end_waits(t, NULL);
    struct hmap_entry *e, *tmp;
    hmap_foreach(&t->live, e, tmp)
    {
        struct live_task *lt = hmap_item(e, struct live_task, link);
        if (lt->stream)
            lt->stream->end(lt->stream_handle, TASK_END_STOPPING);
        free(lt);
    }
    hmap_destroy(&t->live);
    hmap_foreach(&t->away, e, tmp)
    {
        free(hmap_item(e, struct away_task, link));
    }
    hmap_destroy(&t->away);
    while (t->unpushed) {
        struct unpushed *u = t->unpushed;
        t->unpushed = u->next;
        free(u);
    }
    free(t);
}

void tasks_set_metrics(struct tasks *t, struct metrics *m)
{
    t->metrics = m;
}

void tasks_set_events(struct tasks *t, struct events *ev)
{
    t->events = ev;
}

void tasks_set_group(struct tasks *t, struct group *g)
{
    t->group = g;
}

void tasks_notification(struct tasks *t, const char *node_key, const char *id)
{
    log_debug("notification for task %s from node %s", id, node_key);
    if (!t->events)
        return;
    /* Only about a task of this master: a node cannot fill the stream with made-up ids. */
    struct task_row r;
    if (store_task_get(t->store, id, &r) < 0)
        return;
    events_join(t->events);
    events_task(t->events, EVENT_TASK_NOTIFICATION, id, &r, *node_key ? node_key : NULL);
    store_task_row_free(&r);
}
