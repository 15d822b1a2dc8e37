/*
 * Retention: purges ended tasks (task_status_terminal) with their logs and result items in the
 * background, a small batch at a time, each batch in the open group of store changes
 * (master/group.h) without a commit of its own, so that dispatch never waits for more than one
 * small batch and the purge adds at most one commit every 50 ms (the group's maximum age). Two
 * sources of work: --retention (tasks that ended longer ago than that; 0 keeps everything), checked
 * every tenth of it (at least every 100 ms, at most every minute), and purge_request
 * (AdminService.PurgeTasks: tasks that ended before a given time). While there is work, a tick runs
 * every PURGE_TICK_MS: it has the log files of tasks whose deletion is committed removed, then
 * deletes one batch (store.h, store_task_purge, store_purge_logs).
 *
 * Events (master/events.h) that are older than --retention go the same way, a batch a tick in the
 * same group; PurgeTasks does not purge events.
 *
 * Ownership: the purger belongs to the master; it keeps a timer on the loop. Loop thread only.
 * Blocking: each tick blocks on the store for at most PURGE_BATCH_ROWS rows deleted; log files
 * are removed by a thread of the log engine (store_purge_logs hands PURGE_LOGS_PER_TICK over).
 * Errors: 0 or a negative errno; a failed batch is logged and tried again at the next check.
 */
#ifndef CRAWLAB_PURGE_H
#define CRAWLAB_PURGE_H

#include <stdint.h>

#include <ev.h>

struct group;
struct purge;
struct store;

/* The rows one tick deletes at most (16 tasks with an item each), the log files it hands over at
 * most, and the pause between two ticks: about 1,600 such tasks a second, more than the master
 * dispatches (docs/benchmarks.md), at a fraction of the loop. */
#define PURGE_BATCH_ROWS    32
#define PURGE_LOGS_PER_TICK 256
#define PURGE_TICK_MS       10

struct purge_opts {
    uint64_t retention_ms; /* 0: no retention (purge_request still works) */
};

int purge_create(struct ev_loop *loop, struct store *store, struct group *group,
                 const struct purge_opts *opts, struct purge **out);
/* Stops the timer and frees. NULL is accepted. */
void purge_destroy(struct purge *p);

/* Purges, in the background, the ended tasks that ended before before_ms (wall clock, ms), on
 * top of what retention purges. A later request with an earlier time changes nothing. */
void purge_request(struct purge *p, int64_t before_ms);

#endif
