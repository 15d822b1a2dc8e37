#include "core/fence.h"

bool fence_stale(uint64_t current, uint64_t said)
{
    return said != 0 && said != current;
}

enum fence_verdict fence_report(const struct fence_row *row, enum task_status to, uint64_t said)
{
    if (!row->held_here)
        return FENCE_ELSEWHERE;
    if (fence_stale(row->epoch, said))
        return FENCE_STALE;
    /* A claim must not be answered OK for a task that is over: the worker would start it. */
    if (said != 0 && to == TASK_RUNNING && task_status_terminal(row->status))
        return FENCE_OVER;
    return FENCE_ACCEPT;
}

const char *fence_reason(enum fence_verdict v)
{
    switch (v) {
    case FENCE_ACCEPT:
        return "";
    case FENCE_ELSEWHERE:
        return "task is not assigned to this node";
    case FENCE_STALE:
        return "stale assignment: the task was taken back from this node";
    case FENCE_OVER:
        return "task already ended";
    }
    return "refused";
}

bool fence_claim_needed(uint64_t epoch)
{
    return epoch != 0;
}

bool fence_push_start(uint64_t epoch)
{
    return epoch != 0;
}

enum fence_next fence_claim_answer(bool ok, bool refused_for_good)
{
    if (ok)
        return FENCE_SPAWN;
    return refused_for_good ? FENCE_DROP : FENCE_RETRY;
}

bool fence_cursor_drops(bool started, bool cancel)
{
    return cancel && !started;
}

bool fence_fetch_answer_early(bool node_claims)
{
    return node_claims;
}
