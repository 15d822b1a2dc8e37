/*
 * The master's events (core/event.h has their kinds): recorded in the store in the same group of
 * changes (master/group.h) as the change each one records, so that an event is committed exactly
 * when its change is, and handed, once committed, to whoever watches: the followers of
 * AdminService.ReadEvents (master/admin.c) and the hooks of --on-event (master/hooks.h).
 *
 * One place emits each kind: master/nodes.c node.online, node.offline, node.disabled (set_state)
 * and node.removed (remove_node); master/tasks.c the task kinds, task.retried (retry_task's new
 * attempt) and task.notification; master/hooks.c hook.overflow.
 *
 * Usage: events_join() before the store change, events_node() / events_task() after it succeeded.
 * Every function accepts a NULL struct events and then does nothing, so that a service built
 * without events (a unit test) needs no branch.
 *
 * Ownership: the master creates it after the group and destroys it before. Loop thread only;
 * functions block only on the store. Errors: 0 or a negative errno; a failed recording is logged
 * here (and rolls the group back, store_event_add).
 */
#ifndef CRAWLAB_EVENTS_H
#define CRAWLAB_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "core/event.h"
#include "store/store.h"

struct events;
struct group;
struct metrics;

/* Someone who reads events as they are committed (a follower, a hook). */
struct events_watcher {
    struct events_watcher *next;
    void (*on_new)(struct events_watcher *w); /* events up to events_last() were committed */
};

int events_create(struct ev_loop *loop, struct store *store, struct group *group,
                  struct events **out);
void events_destroy(struct events *ev);
/* Counts the events recorded, by kind, into m (which must outlive ev). */
void events_set_metrics(struct events *ev, struct metrics *m);

/* Opens the group the change and its event go into; call it before the change. */
void events_join(struct events *ev);

/* A node event: key, the node's name, and why (NULL: no reason given). */
void events_node(struct events *ev, enum event_kind kind, const char *key, const char *name,
                 const char *why);

/* A task event, from the task's row after the change (NULL: only the id is known). node_key
 * (NULL: the node the task is assigned to, else the one it is addressed to) names the node. */
void events_task(struct events *ev, enum event_kind kind, const char *task_id,
                 const struct task_row *r, const char *node_key);

/* Any event: data is a JSON object text (NULL: none). Returns the event's id, or a negative
 * errno. */
int64_t events_emit(struct events *ev, enum event_kind kind, const char *node_key,
                    const char *task_id, const char *data);

/* The id of the last committed event: readers read up to it, never beyond (what is beyond may
 * still be rolled back). 0 with no events. */
int64_t events_last(const struct events *ev);

/* The group was committed (ok) or rolled back: watchers hear of newly committed events. */
void events_committed(struct events *ev, bool ok);

/* On a store several masters share: the events other masters committed since are handed to the
 * watchers too (the store gives no news of them: the master polls). Nothing without watchers. */
void events_refresh(struct events *ev);
void events_watch(struct events *ev, struct events_watcher *w);
void events_unwatch(struct events *ev, struct events_watcher *w);

#endif
