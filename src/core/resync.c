#include "core/resync.h"

enum resync_fate resync_missing(bool started)
{
    return started ? RESYNC_LOST : RESYNC_REQUEUE;
}

bool resync_adopts(const struct resync_row *row, const enum task_status *worker_status)
{
    if (row->held_here || row->stale || row->status != TASK_PENDING || row->targets_elsewhere ||
        !worker_status)
        return false;
    return *worker_status == TASK_RUNNING || task_status_terminal(*worker_status);
}

struct resync_verdict resync_cursor(const struct resync_row *row)
{
    /* A task of another node, or of an assignment taken back since, is not this worker's to run:
     * it is stopped at once. */
    if (!row->held_here || row->stale)
        return (struct resync_verdict){.cancel = true, .force = true};
    return (struct resync_verdict){
        .cancel = row->cancel_requested || task_status_terminal(row->status),
        .force = row->cancel_force,
    };
}

bool resync_stored(uint64_t last_seq, uint64_t master_count, uint64_t dropped)
{
    return last_seq <= master_count + dropped;
}
