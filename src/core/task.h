/*
 * The task state machine, task ids and seq dedupe: pure logic with no I/O, shared by the wire
 * validator, the store, the master's task queue and ingest path and the worker, so that they all
 * agree on what a status is, what a status change means and what a resent batch means.
 *
 * Every function here is pure and reentrant: any thread may call it, none of them blocks.
 */
#ifndef CRAWLAB_CORE_TASK_H
#define CRAWLAB_CORE_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

/* The task statuses of the Crawlab protocol. The numeric values are internal; only the names
 * (task_status_name) are stored or sent on the wire. */
enum task_status {
    TASK_PENDING,
    TASK_ASSIGNED,
    TASK_RUNNING,
    TASK_FINISHED,
    TASK_ERROR,
    TASK_CANCELLED,
    TASK_ABNORMAL,
    TASK_NODE_DISCONNECTED,
    TASK_STATUS_COUNT
};

/* The names, in the enum's order, for help and error messages. */
#define TASK_STATUS_NAMES                                                                          \
    "pending, assigned, running, finished, error, cancelled, abnormal, node_disconnected"

/* Returns the protocol name ("pending", "node_disconnected", ...) as a static string, or
 * "unknown" for a value outside the enum, so that it is always safe to print. */
const char *task_status_name(enum task_status s);

/* Parses a protocol status name into *out. Returns 0, or -EINVAL for NULL or an unknown name
 * (then *out is untouched). */
int task_status_parse(const char *s, enum task_status *out);

/* True for finished, error, cancelled and abnormal: states a task never leaves. */
bool task_status_terminal(enum task_status s);

/*
 * The state machine (docs/architecture.md draws it):
 *   pending -> assigned | cancelled
 *   assigned -> running | finished | error | cancelled | pending | node_disconnected
 *     (finished/error directly, because a fast task can end before 'running' is reported;
 *     pending, because a task whose node goes offline before starting it is handed out again)
 *   running -> finished | error | cancelled | node_disconnected
 *   node_disconnected -> running | abnormal | finished | error | cancelled | pending
 *     (an assigned task whose node goes offline waits there too, since the node may have started
 *     it without the master hearing so; it goes back to pending when the node returns without
 *     it, or after a short grace)
 *   terminal states never move.
 * Returns true if from -> to is allowed. from == to is not a move and returns false, which is what
 * makes repeated reports idempotent. Values outside the enum return false.
 */
bool task_transition_allowed(enum task_status from, enum task_status to);

/* True if s is exactly 24 lowercase hex characters. A valid id is safe to use as a file name. */
bool task_id_valid(const char *s);

/* The shortest prefix of a task id that client commands and AdminService accept for one. */
#define TASK_ID_PREFIX_MIN 6

/* True if s is TASK_ID_PREFIX_MIN to 24 lowercase hex characters: a full id, or a prefix that
 * names the one task whose id starts with it (or none, or several: the store says which). */
bool task_id_prefix_valid(const char *s);

/*
 * Seq dedupe for a batch of n log lines or items (docs/protocol.md, "seq"). stored is how many
 * records of that kind the task already holds; record i of the batch is numbered first_seq + i, and
 * first_seq 0 means unsequenced (appended after what is stored).
 *
 * Sets *skip to how many leading records of the batch are already stored (a resent prefix); the
 * records [*skip, n) are new. Returns 0, or -ERANGE when the batch starts beyond stored + 1 (a
 * gap: nothing of it may be stored, *skip is untouched). An empty batch is never a gap.
 */
int task_seq_window(uint64_t stored, uint64_t first_seq, size_t n, size_t *skip);

#endif
