/*
 * The master's task queue: TaskService (FetchTask, ReportStatus, SendNotification, and the
 * per-task Subscribe stream that carries CANCEL), dispatch pushes, cancels, and what happens to a
 * node's tasks when it goes offline. Loop thread only.
 *
 * Every status change a worker reports goes through here, so the per-node count of tasks the
 * master holds (node->active, used to push work only to nodes with room) stays exact.
 */
#ifndef CRAWLAB_TASKS_H
#define CRAWLAB_TASKS_H

#include <stdbool.h>

#include "master/master.h"
#include "master/store.h"
#include "rpc/server.h"

struct tasks;

/* Someone interested in a task's log and status (a `logs --follow`). */
struct task_watcher {
    struct task_watcher *next;
    void (*on_change)(struct task_watcher *w); /* new lines committed, or the status changed */
};

int tasks_create(struct master *m, struct tasks **out);
void tasks_destroy(struct tasks *t);
void tasks_add_methods(struct tasks *t, struct rpc_server *s);

/* Stores a new pending task and pushes TASK_AVAILABLE to a node that can take it. */
int tasks_submit(struct tasks *t, const struct task_new *tn, char id_out[TASK_ID_LEN + 1]);

/* Cancels a task: at once when nobody runs it, else by telling its worker. *after receives the
 * status after the call (see store_task_request_cancel). */
int tasks_cancel(struct tasks *t, const char *id, bool force, enum task_status *after);

/* Watchers are told about every change of the task until they unwatch. */
int tasks_watch(struct tasks *t, const char *id, struct task_watcher *w);
void tasks_unwatch(struct tasks *t, const char *id, struct task_watcher *w);

/* The ingest path calls this after each commit: watchers of any task may have new lines. */
void tasks_committed(struct tasks *t);

#endif
