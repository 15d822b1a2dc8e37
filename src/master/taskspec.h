/*
 * A task's TaskSpec, as the master sends it to a worker: in FetchTask's answer (tasks_rpc.c) and
 * in a Subscribe push that carries the task (nodes_rpc.c). The spec borrows the row's strings;
 * the env entries are the taskspec's own. Pure (no I/O), any thread.
 */
#ifndef CRAWLAB_TASKSPEC_H
#define CRAWLAB_TASKSPEC_H

#include <jansson.h>

#include "store/store.h"
#include "entity/task.pb-c.h"

struct taskspec {
    Grpc__TaskSpec spec; /* valid while the row and the taskspec are */
    Grpc__TaskSpec__EnvEntry *entries;
    Grpc__TaskSpec__EnvEntry **ptrs;
    json_t *env;
};

/* Fills ts->spec from row. Out of memory, the spec goes without its env. */
void taskspec_init(struct taskspec *ts, const struct task_row *row);
void taskspec_free(struct taskspec *ts);

#endif
