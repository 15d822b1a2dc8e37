/*
 * The fenced claim: how master and worker make sure that a task runs on one node only, as pure
 * decisions both roles share (docs/reliability.md, "No double run"; docs/protocol.md, "epoch").
 *
 *   1. Each assignment of a task to a node gets a new epoch: the master's store counts it up
 *      whenever the task is assigned and whenever it goes back to pending. FetchTask's answer
 *      carries it.
 *   2. The worker claims the task before it starts it: a ReportStatus 'running' with the epoch
 *      and no pid. The master accepts the claim (fence_report) only while this assignment is the
 *      task's current one and the task has not ended; it stores the task 'running' (so it knows
 *      the task may have started, and never hands it out again) and answers after the commit. The
 *      worker spawns only on that answer (fence_claim_answer); a refusal means "not yours": the
 *      worker drops the task without running it.
 *      A task the master assigns when it becomes pending, to a free node that takes pushed
 *      tasks, is pushed to it with its spec only once that assignment is durable: the worker
 *      starts it without fetching or claiming it (fence_push_start).
 *   3. Every later report, Resync listing and Connect message of the task carries the epoch; one
 *      with a stale epoch is refused, and a Resync cursor stops the stale copy (core/resync.h).
 *
 * Epoch 0 means "no epoch": a worker or master that does not fence (an upstream peer) is served
 * as before fencing.
 *
 * Everything here is pure and reentrant: any thread may call it, nothing blocks or allocates.
 */
#ifndef CRAWLAB_CORE_FENCE_H
#define CRAWLAB_CORE_FENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/task.h"

/* ---- the master's side ---- */

/* True when a worker names an epoch (not 0) that is not the task's current one: it speaks for an
 * assignment the master has since taken back. */
bool fence_stale(uint64_t current, uint64_t said);

/* The master's row of a task that a node reports on, as far as the fence reads it. */
struct fence_row {
    enum task_status status;
    bool held_here; /* assigned to the reporting node */
    uint64_t epoch; /* the current assignment's epoch */
};

/* The master's verdict on a report. */
enum fence_verdict {
    FENCE_ACCEPT,    /* the state machine applies it (or ignores it as a repeat) */
    FENCE_ELSEWHERE, /* the task is not assigned to this node */
    FENCE_STALE,     /* the epoch is an older assignment's */
    FENCE_OVER,      /* a claim ('running' with an epoch) for a task that has ended */
};

/*
 * A node reports status `to` for a task, naming epoch `said` (0: none). A report without an epoch
 * is judged as before fencing: only the node is checked. Every verdict but FENCE_ACCEPT means
 * "not yours" and is refused (PERMISSION_DENIED on the wire).
 */
enum fence_verdict fence_report(const struct fence_row *row, enum task_status to, uint64_t said);

/* Why a report was refused, for the error message ("" for FENCE_ACCEPT). Static string. */
const char *fence_reason(enum fence_verdict v);

/*
 * Whether the master may answer a FetchTask before the assignment it makes is durable: yes when
 * the node claims its tasks (it said so at Register). Such a node starts nothing before its claim
 * is stored; the claim's commit makes the assignment durable with it; and a claim for an
 * assignment that a crash took back finds the task pending or assigned elsewhere, and is refused.
 * A node that does not claim starts the task on the answer, which must then promise it.
 */
bool fence_fetch_answer_early(bool node_claims);

/* ---- the worker's side ---- */

/* Whether a fetched task must be claimed before it starts: yes when the master gave an epoch. A
 * master that gives none does not fence, and the task starts at once, as before. */
bool fence_claim_needed(uint64_t epoch);

/*
 * Whether the worker starts a task the master pushed with its spec (to a node that registered
 * takes_pushed_tasks) at once, without a claim: yes when it carries an epoch. The master assigned
 * it to this node under that epoch and pushed it only once that was durable, so the push is the
 * claim's answer already; a task pushed without an epoch is not a fenced assignment and is not
 * started.
 */
bool fence_push_start(uint64_t epoch);

/* What the worker does next with a task whose claim was answered. */
enum fence_next {
    FENCE_SPAWN, /* the master stored the claim: start the process */
    FENCE_DROP,  /* refused for good (not yours, unknown task): forget it, never start it */
    FENCE_RETRY, /* no answer (connection lost, deadline, store failure): claim again */
};

/* ok: the claim was answered OK; refused_for_good: it was refused with a definite status (see
 * worker/jobs.c). */
enum fence_next fence_claim_answer(bool ok, bool refused_for_good);

/* Whether a Resync cursor that says `cancel` drops a task the worker has not started yet (it was
 * still claiming): yes, always; such a task must not start. For a started one the cancel stops
 * the process instead. */
bool fence_cursor_drops(bool started, bool cancel);

#endif
