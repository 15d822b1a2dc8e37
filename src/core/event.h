/*
 * Events: what the master records when a node or a task changes (docs/protocol.md, "Events"),
 * their kinds and names, which task status change is which event, and the JSON an event is shown
 * as -- on a hook's stdin (master/hooks.c) and by `events --json` (cli/events.c), the same text.
 *
 * Pure: no I/O, no global state; any thread. event_json allocates.
 */
#ifndef CRAWLAB_EVENT_H
#define CRAWLAB_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/task.h"

enum event_kind {
    EVENT_NODE_ONLINE,
    EVENT_NODE_OFFLINE,
    EVENT_NODE_DISABLED,
    EVENT_NODE_REMOVED,
    EVENT_TASK_STARTED,
    EVENT_TASK_FINISHED,
    EVENT_TASK_FINISHED_EMPTY, /* finished with no result items: Crawlab's "empty results" */
    EVENT_TASK_ERROR,
    EVENT_TASK_ABNORMAL,
    EVENT_TASK_CANCELLED,
    EVENT_TASK_RETRIED,
    EVENT_TASK_NOTIFICATION, /* a worker's TaskService.SendNotification */
    EVENT_HOOK_OVERFLOW,     /* a hook fell too far behind and skipped events */
    EVENT_KIND_COUNT
};

/* "node.online", "task.finished_empty", ...; NULL for a value out of range. */
const char *event_kind_name(enum event_kind k);

/* The event a task's move to status `to` records, given its result items then: started
 * (running), finished or finished_empty, error, abnormal, cancelled. false for the other
 * statuses, which record none. */
bool event_of_task_status(enum task_status to, uint64_t data_items, enum event_kind *out);

/*
 * One event as a JSON object on one line: {"id", "time" (UTC ISO 8601 with ms), "time_ms",
 * "kind", "node_key", "task_id", "data"}. data is the stored JSON object text; text that does not
 * parse as one is carried as a string. Bytes that are not UTF-8 become '?'. Returns a malloc'd
 * string (free() it), or NULL when out of memory.
 */
char *event_json(int64_t id, int64_t at_ms, const char *kind, const char *node_key,
                 const char *task_id, const char *data);

#endif
