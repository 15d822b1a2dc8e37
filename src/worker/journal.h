/*
 * The running journal: which tasks this worker has started, as which process group and under
 * which assignment epoch, so that a worker restarted after a kill can end what its previous run
 * left running and report those tasks (jobs.c's recover).
 *
 * One file, <data dir>/running.journal, appended to with a line per change:
 *
 *     + <task id> <process group> <group leader's start time> <epoch>
 *     - <task id>
 *
 * The last line about a task says whether it is listed. A file per task, made and removed for
 * each one, cost the worker more CPU than any other part of a task's start on ext4 (see
 * docs/benchmarks.md); an append is one write() on an open descriptor. When the file holds
 * JOURNAL_SLACK times more lines than tasks listed (and at least JOURNAL_MIN_LINES), it is
 * written anew with only the tasks listed, to a new file renamed over the old one. It is
 * rewritten that way at every open too, which drops a line a crash cut short.
 *
 * Not synced: it has to outlive the worker, not the machine (after a machine's restart no task
 * process is left to end, and the master reports a node that stays away on its own).
 *
 * Versions before this file kept a file per task, running/<task id> ("pgid start epoch"):
 * journal_open folds those in and removes them once the journal lists them.
 *
 * Loop thread; writes block briefly on the file system. Write errors are logged, not returned:
 * a worker that cannot note a task still runs it.
 */
#ifndef CRAWLAB_WORKER_JOURNAL_H
#define CRAWLAB_WORKER_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

#define JOURNAL_SLACK     4
#define JOURNAL_MIN_LINES 256

struct journal_entry {
    char id[TASK_ID_LEN + 1];
    int pgid;                 /* the task's process group; 0 until it is spawned */
    unsigned long long start; /* its leader's start time (/proc/PID/stat field 22), 0 unknown */
    uint64_t epoch;           /* the assignment's epoch, 0 when the master gave none */
};

struct journal;

/* Opens (or creates, mode 0600) the journal of data_dir and reads what it lists. -errno. */
int journal_open(const char *data_dir, struct journal **out);
void journal_close(struct journal *jn);

/* The tasks listed now, in no particular order; valid until the next call that changes them.
 * Right after journal_open: what the previous run left. */
size_t journal_entries(const struct journal *jn, const struct journal_entry **out);

/* Lists e's task, or updates it when listed. */
void journal_note(struct journal *jn, const struct journal_entry *e);

/* The task is over: no longer listed. Nothing when it is not listed. */
void journal_forget(struct journal *jn, const char *task_id);

/* Lines in the file now (for tests: they show when it was written anew). */
size_t journal_lines(const struct journal *jn);

#endif
