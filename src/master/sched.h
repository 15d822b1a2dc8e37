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
 *   - overlap, per fire: while a task of the schedule's last fire that made tasks (for an
 *     all-nodes schedule, any of them) is pending, assigned, running or node_disconnected, "skip"
 *     records the fire without a task, "allow" makes the task, "cancel-previous" cancels those
 *     tasks (tasks_cancel) and then makes the task;
 *   - all-nodes: one task per node that takes it at the fire (online, enabled, with the labels);
 *     none is recorded as a skipped fire.
 * A fire's tasks, their (schedule, fire time, node) records and the schedule's last fire are
 * stored in one transaction (tasks_fire), inside the master's open group commit: after a crash
 * either all of them are there or none, and a fire that already has its tasks never gets more.
 *
 * Named zones: the zone of a schedule is read from the zoneinfo directory (config_zone_load) the
 * first time a schedule names it, and kept for the master's life. A schedule whose zone cannot be
 * read (a master without the zone's file: the distroless image has no zoneinfo) is paused, with
 * the reason logged: it never fires in another zone.
 *
 * Loop thread only; functions block only on the store. Errors: 0 or a negative errno; failures
 * are logged here, and when the schedules cannot be read the evaluation is tried again 5 s later.
 */
#ifndef CRAWLAB_SCHED_H
#define CRAWLAB_SCHED_H

#include <ev.h>

#include <stddef.h>
#include <stdint.h>

struct sched;
struct store;
struct tasks;
struct group;
struct tz_zone;
struct schedule_row;

/* Evaluates the schedules once (fires due now, or missed) and arms the timer. Zone names are read
 * under zoneinfo_dir (copied). */
int sched_create(struct ev_loop *loop, struct store *store, struct tasks *tasks,
                 struct group *group, const char *zoneinfo_dir, struct sched **out);

/* The zone name, read once and kept (owned by sc): 0 with *out, or a negative errno with one line
 * in why naming the zone and the file (config_zone_load). */
int sched_zone(struct sched *sc, const char *name, const struct tz_zone **out, char *why,
               size_t why_len);

/* The schedule's next fire time after now_s (Unix seconds) and, in *offset, its zone's UTC offset
 * then; 0 when it is paused, has none, or its zone cannot be read. */
int64_t sched_next_fire(struct sched *sc, const struct schedule_row *r, int64_t now_s,
                        int32_t *offset);

/* Stops the timer and frees. NULL is accepted. */
void sched_destroy(struct sched *sc);

/* A schedule was added, paused, resumed or removed: evaluate again and re-arm the timer. */
void sched_changed(struct sched *sc);

#endif
