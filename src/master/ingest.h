/*
 * Ingest: TaskService.Connect, the client stream that carries a task's log lines and result
 * items, stored with seq dedupe and group commit. Many messages from many streams go into one
 * store transaction, committed once per loop iteration (fdatasync of the log files, then the
 * database); a stream's final OK is sent only after everything it carried is durable.
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
/* Commits whatever is open now (used at shutdown). */
void ingest_flush(struct ingest *in);

#endif
