/*
 * The master's task queue: submit, dispatch (a TASK_AVAILABLE push, then the node's fetch; or,
 * to a free node that takes pushed tasks, the assignment at once and the task itself pushed once
 * that is durable), the status a node reports, cancels, what a node holds after it reconnects
 * (resync), and what happens to a node's tasks when it goes offline. TaskService
 * (master/tasks_rpc.h) is the gRPC glue in front of it.
 *
 * A task submitted with retries that ends error or abnormal gets its next attempt here, in the
 * same store transaction as its end, and it is announced when its delay is over (a timer set at
 * the earliest stored eligible time, so the delay survives a restart of the master).
 *
 * Every change of a task's status goes through here, and each task that a node starts or stops
 * holding (assigned, running or node_disconnected) is reported to the node registry
 * (nodes_task_held / nodes_task_released), so that node->active stays exact.
 *
 * Loop thread only; functions block only on the store. Errors: 0 or a negative errno.
 */
#ifndef CRAWLAB_TASKS_H
#define CRAWLAB_TASKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "core/resync.h"
#include "store/store.h"

struct events;
struct group;
struct metrics;
struct tasks;
struct nodes;

/* The few settings the queue reads, from struct config. */
struct tasks_opts {
    /* How long the tasks of a node that went offline wait for it: a started one then ends
     * abnormal; one never confirmed started goes back to the queue after at most 30 s. */
    uint64_t disconnect_grace_ms;
};

/*
 * Counts the held tasks of the store into nodes (which must be loaded) and starts the grace
 * sweep on loop. The queue does not listen to nodes by itself: whoever wires them calls
 * tasks_node_offline when a node goes offline (nodes_on_offline).
 */
int tasks_create(struct ev_loop *loop, struct store *store, struct nodes *nodes,
                 const struct tasks_opts *opts, struct tasks **out);
/* Ends every cancel stream (TASK_END_STOPPING), answers the fetches still waiting (no task: drain
 * first, while answers can still go out) and frees the queue. NULL is accepted. */
void tasks_destroy(struct tasks *t);

/* The master stops: fetches get no task from now on, those that wait (tasks_fetch) too, and every
 * cancel stream ends (TASK_END_STOPPING), now and as soon as it is opened again. */
void tasks_drain(struct tasks *t);
/* Counts each assignment's wait since the task's creation into m (which must outlive t). */
void tasks_set_metrics(struct tasks *t, struct metrics *m);
/* Records the task events in ev (master/events.h), which must outlive t: a move to running,
 * finished (finished_empty without result items), error, abnormal or cancelled (core/event.h),
 * and the workers' notifications. */
void tasks_set_events(struct tasks *t, struct events *ev);

/* Assigns in the open group of g (master/group.h), which must outlive t, a task handed to a node
 * that takes pushed tasks; the push leaves after the group's commit (tasks_committed). Without a
 * group every node fetches. */
void tasks_set_group(struct tasks *t, struct group *g);

/* A worker's SendNotification about a task (node_key may be ""): recorded as task.notification
 * with the task as it stands. */
void tasks_notification(struct tasks *t, const char *node_key, const char *id);

/* News of other masters may have been lost (the store's connection was made again): every node of
 * this master with a free runner is told TASK_AVAILABLE, and fetches what waits. */
void tasks_news_lost(struct tasks *t);

/* Another master sharing the store made task id pending (store_news): a node of this master that
 * can take it hears of it now, or when it becomes eligible (eligible_ms: 0, at once). */
void tasks_news(struct tasks *t, const char *id, const char *node_key, const char *labels,
                int64_t eligible_ms);

/* Another master sharing the store was asked to cancel task id, held by node_key (store_news):
 * if that node's worker is connected here, the cancel goes to it as tasks_cancel sends one. */
void tasks_cancel_news(struct tasks *t, const char *id, const char *node_key, bool force);

/* Stores a new pending task and hands it to a node that can take it: the node it is addressed
 * to, else a free node that has the labels of its selector (nodes_pick_free). A node that takes
 * pushed tasks and has room gets it assigned in the same group and pushed after the commit;
 * another gets TASK_AVAILABLE and fetches. */
int tasks_submit(struct tasks *t, const struct task_new *tn, char id_out[TASK_ID_LEN + 1]);

/* The task of a schedule's fire (store_schedule_fire: the tasks, the fire records and the
 * schedule's last fire in one transaction), then pushed as tasks_submit does; with all_nodes, one
 * task per node that takes tn now (nodes_takes with tn's labels), each for that node. Returns 0
 * (also when that fire already has its tasks), -ENODEV when all_nodes and no node takes it, or a
 * negative errno. */
int tasks_fire(struct tasks *t, int64_t schedule_id, int64_t fire_s, const struct task_new *tn,
               bool all_nodes);

/* A new task with the spec of task id, linked to it (store_task_restart), pushed as tasks_submit
 * does. -EINVAL, -ENOENT. */
int tasks_restart(struct tasks *t, const char *id, char id_out[TASK_ID_LEN + 1]);

/* Cancels a task: at once when nobody runs it, else by telling its worker through the task's
 * stream, now or when the worker opens it. *after receives the status after the call (see
 * store_task_request_cancel). */
int tasks_cancel(struct tasks *t, const char *id, bool force, enum task_status *after);

/* The answer to a fetch that waited (tasks_fetch): rc as tasks_fetch returns it, and the task
 * (borrowed, valid during the call) when rc is 1. */
typedef void (*tasks_fetch_answer_fn)(void *ctx, int rc, const struct task_row *row);

/* tasks_fetch's answer will come later, through the callback. */
#define TASKS_FETCH_WAITS 2
/* How long a fetch waits at most for a runner of its node to be released. */
#define TASKS_FETCH_WAIT_MS 1000

/*
 * The node asks for work: 1 and *out (release it with store_task_row_free) when a task was
 * assigned to it (one addressed to it, or one whose selector its labels match), 0 when none
 * waits, the node is not enabled (disabled or draining) or the master is draining.
 *
 * A node for which the master holds as many tasks as it has runners (nodes_full) gets no task
 * now. Its worker fetches when a runner of its is free, and the final status of the task that ran
 * there travels on another call, which may arrive second. With later, such a fetch waits until
 * one of the node's tasks is released, or the node goes offline, the master drains or
 * TASKS_FETCH_WAIT_MS pass: later(ctx, ...) then answers it, exactly once and never from inside
 * this call, and TASKS_FETCH_WAITS is returned. Without later (NULL), or when as many fetches of
 * the node wait as it has runners, 0.
 */
int tasks_fetch(struct tasks *t, const char *node_key, struct task_row *out,
                tasks_fetch_answer_fn later, void *ctx);

/*
 * The node reports a status of one of its tasks (exit_code counts only for a terminal one; error
 * may be NULL) under assignment epoch `epoch` (0: none, as before fencing; core/fence.h). A
 * 'running' report with an epoch and no pid is the worker's claim: once it is answered 0 (after
 * the commit), the worker starts the task. 0 when applied or ignored as a repeat or a step
 * backwards (reports are idempotent); refused, changing nothing: -EPERM when the task is not
 * assigned to this node, -ESTALE when the epoch is an older assignment's, -EALREADY for a claim of
 * a task that has ended; -EINVAL, -ENOENT.
 */
int tasks_report(struct tasks *t, const char *node_key, const char *id, enum task_status to,
                 int pid, int exit_code, const char *error, uint64_t epoch);

/*
 * Resync, after a node reconnects. First the node lists the n task ids it holds: each task the
 * master has it hold but that it does not list is settled -- back to the queue when never
 * started, error when started, since its process and unsent output are gone with the worker.
 */
void tasks_settle_unlisted(struct tasks *t, const char *node_key, const char *const *ids, size_t n);
/*
 * Then, for each task it lists (worker_status: what its worker says, NULL for none; epoch: the
 * epoch it holds the task under, 0 for none): *row is where the task stands (release it with
 * store_task_row_free) and *view what resync decides by (core/resync.h). A task put back in the
 * queue while its node was away, but which that node had started, returns to the node if it may run
 * there (resync_adopts): it stays rather than run a second time elsewhere. The cursor for the
 * worker is resync_cursor(view). -EINVAL, -ENOENT.
 */
int tasks_resync_one(struct tasks *t, const char *node_key, const char *id,
                     const enum task_status *worker_status, uint64_t epoch, struct task_row *row,
                     struct resync_row *view);

/* A node went offline: its tasks wait for it as node_disconnected -- the assigned ones too,
 * since it may have started one whose 'running' report was lost. Its resync settles them when it
 * comes back; if it does not within the grace, the grace sweep does. */
void tasks_node_offline(struct tasks *t, const char *node_key);

/* Why the master ends a task's stream. */
enum task_end {
    TASK_END_OVER,     /* the task ended */
    TASK_END_REPLACED, /* the worker opened a new stream for the task */
    TASK_END_STOPPING, /* the master stops */
};

/* The stream through which a task's worker hears CANCEL: TaskService.Subscribe in tasks_rpc.c,
 * or a fake in a test. The handle is the stream's own; the queue only passes it back. */
struct task_stream_ops {
    /* Tell the worker to cancel the task (force: kill it now). 0 when it is on its way. */
    int (*cancel)(void *handle, const char *id, bool force);
    /* End the stream from the master's side. The queue has let go of it already. */
    void (*end)(void *handle, enum task_end why);
};

/* The task's worker opened its stream: an older one ends (TASK_END_REPLACED); a cancel asked for
 * meanwhile is delivered now; a task already over ends it at once (TASK_END_OVER). -EINVAL,
 * -ENOENT, -ENOMEM. */
int tasks_stream_attach(struct tasks *t, const char *id, const struct task_stream_ops *ops,
                        void *handle);
/* The stream with this handle is gone from its own side. Another handle is ignored. */
void tasks_stream_gone(struct tasks *t, const char *id, void *handle);

/* Someone interested in a task's log and status (a `logs --follow`). */
struct task_watcher {
    struct task_watcher *next;
    void (*on_change)(struct task_watcher *w); /* new lines committed, or the status changed */
};

/* Watchers are told about every change of the task until they unwatch. */
/* On a store several masters share, what a watcher waits for may have been stored by another
 * master (its task's worker is connected there), which gives no news of it: every watcher looks
 * again (the master polls). */
void tasks_recheck_watchers(struct tasks *t);
int tasks_watch(struct tasks *t, const char *id, struct task_watcher *w);
void tasks_unwatch(struct tasks *t, const char *id, struct task_watcher *w);

/* A group was committed (ok) or rolled back: the tasks assigned in it are pushed to their nodes
 * (or forgotten), and watchers of any task may have new lines. */
void tasks_committed(struct tasks *t, bool ok);

#endif
