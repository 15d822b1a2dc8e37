/*
 * TaskService, the gRPC glue in front of the task queue (master/tasks.h): FetchTask,
 * ReportStatus, SendNotification, the per-task Subscribe stream that carries CANCEL, and
 * NodeService.Resync. Calls are checked to come from an online node (nodes_rpc_caller); what they
 * may do is decided by the queue. Loop thread only; nothing here blocks but the queue's store
 * access.
 */
#ifndef CRAWLAB_TASKS_RPC_H
#define CRAWLAB_TASKS_RPC_H

#include "master/tasks.h"
#include "rpc/server.h"

struct nodes;

/* What the methods reach. Filled in by whoever adds them; it must outlive the server. */
struct tasks_rpc {
    struct tasks *tasks;
    struct nodes *nodes;
};

void tasks_rpc_add_methods(struct tasks_rpc *r, struct rpc_server *s);

#endif
