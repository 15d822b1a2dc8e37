/*
 * State resync: what master and worker settle after every (re)connect, as pure decisions both
 * roles share. The wire exchange is NodeService.Resync (docs/protocol.md):
 *
 *   1. The worker lists every task it holds, with its status ("" while not started) and how many
 *      log lines and items it has produced.
 *   2. The master settles the tasks it thought the node held but the node no longer lists
 *      (resync_missing), adopts a task it had put back in the queue while the node was away if
 *      the node had in fact started it (resync_adopts), and answers each listed task with a
 *      cursor: its durable counts, its status, and whether the worker must cancel it
 *      (resync_cursor).
 *   3. The worker drops every kept message the master already stores (resync_stored) and resends
 *      the rest, cancels a process still running when the cursor says so, then reports every status
 * again.
 *
 * Everything here is pure and reentrant: any thread may call it, nothing blocks or allocates.
 */
#ifndef CRAWLAB_CORE_RESYNC_H
#define CRAWLAB_CORE_RESYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "core/task.h"

/* ---- the master's side ---- */

/* What happens to a task the master holds for a node that came back without it. */
enum resync_fate {
    RESYNC_REQUEUE, /* never reported started: back to pending, to be handed out again */
    RESYNC_LOST,    /* it had started: its process and unsent output are gone, so it is an error */
};

enum resync_fate resync_missing(bool started);

/* The master's row of a task a worker listed, as far as resync reads it. */
struct resync_row {
    enum task_status status;
    bool held_here;         /* assigned to the node that is resyncing */
    bool targets_elsewhere; /* addressed to another node */
    bool stale;             /* the worker listed it under an older epoch (core/fence.h) */
    bool cancel_requested, cancel_force;
};

/*
 * Whether the master gives the node back a task it had put back in the queue while the node was
 * away: yes when the task is pending, may run on this node, and the worker says it has (or had)
 * the process (running, or a terminal status). Running it elsewhere would run it twice. The
 * caller assigns it to the node; when that succeeds the row is held_here and assigned.
 * worker_status is NULL when the worker listed none. A task listed under an epoch is never
 * adopted: a fencing worker starts a task only after a claim the master stored, and the master
 * never re-queues a claimed task, so such a listing is a stale copy.
 */
bool resync_adopts(const struct resync_row *row, const enum task_status *worker_status);

/* The cursor's verdict on one listed task. */
struct resync_verdict {
    bool cancel; /* the worker must stop the task: not its own (or not under the epoch it
                    named), cancelled, or already over */
    bool force;  /* ... at once (SIGKILL), without the grace */
};

struct resync_verdict resync_cursor(const struct resync_row *row);

/* ---- the worker's side ---- */

/*
 * Whether a message the worker kept, whose last record is number last_seq (counting the records
 * the worker produced), is already stored by the master, which says it holds master_count
 * records. dropped is how many records before it the worker gave up for good (refused twice): the
 * master never counted those, so its count is that much lower for everything after them.
 */
bool resync_stored(uint64_t last_seq, uint64_t master_count, uint64_t dropped);

#endif
