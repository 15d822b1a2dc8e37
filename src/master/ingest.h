/*
 * Ingest: TaskService.Connect, the client stream that carries a task's log lines and result
 * items, stored with seq dedupe. Messages join the master's group commit (master/group.h); a
 * stream's final OK is sent only after the group holding the last of its data is durable.
 * Loop thread only.
 */
#ifndef CRAWLAB_INGEST_H
#define CRAWLAB_INGEST_H

#include "master/master.h"
#include "rpc/server.h"

struct ingest;

int ingest_create(struct master *m, struct ingest **out);
void ingest_destroy(struct ingest *in);
void ingest_add_methods(struct ingest *in, struct rpc_server *s);

#endif
