/*
 * The master's scheduler: makes the task of each fire of each schedule in the store (schedules:
 * core/cron.h for the expressions, store/store.h for the rows).
 *
 * One ev_periodic, an absolute wall-clock timer, is set to the earliest next fire time of all
 * schedules that are not paused; it is recomputed after each evaluation and whenever a schedule
 * changes (sched_changed). There is no polling between fire times.
 *
 * On each evaluation, for each schedule not paused, the latest fire time due (after the later of
 * its last fire and its creation, at or before now) is handled once:
 *   - a fire time before this master started was missed (the master was down then): with
 *     "skip" it is recorded as handled without a task, with "run-once" it gets its task; older
 *     missed fires are never run (no burst);
 *   - overlap: while the schedule's last task is pending, assigned, running or node_disconnected,
 *     "skip" records the fire without a task, "allow" makes the task, "cancel-previous" cancels
 *     the last task (tasks_cancel) and then makes the task.
 * A fire's task, its (schedule, fire time) record and the schedule's last fire are stored in one
 * transaction (tasks_fire), inside the master's open group commit: after a crash either all of
 * them are there or none, and a fire that already has its task never gets a second one.
 *
 * Loop thread only; functions block only on the store. Errors: 0 or a negative errno; failures
 * are logged here, and when the schedules cannot be read the evaluation is tried again 5 s later.
 */
#ifndef CRAWLAB_SCHED_H
#define CRAWLAB_SCHED_H

#include <ev.h>

struct sched;
struct store;
struct tasks;
struct group;

/* Evaluates the schedules once (fires due now, or missed) and arms the timer. */
int sched_create(struct ev_loop *loop, struct store *store, struct tasks *tasks,
                 struct group *group, struct sched **out);

/* Stops the timer and frees. NULL is accepted. */
void sched_destroy(struct sched *sc);

/* A schedule was added, paused, resumed or removed: evaluate again and re-arm the timer. */
void sched_changed(struct sched *sc);

#endif
