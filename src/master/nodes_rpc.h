/*
 * NodeService, the gRPC glue in front of the node registry (master/nodes.h): Register,
 * SendHeartbeat, and Subscribe, the node's live stream that carries HEARTBEAT, TASK_AVAILABLE and
 * DRAIN. What a call may do is decided by the registry; this file decodes, asks, and answers.
 * Loop thread only; nothing here blocks but the registry's store writes.
 */
#ifndef CRAWLAB_NODES_RPC_H
#define CRAWLAB_NODES_RPC_H

#include "master/nodes.h"
#include "rpc/server.h"

/* Adds the methods; n must outlive the server. */
void nodes_rpc_add_methods(struct nodes *n, struct rpc_server *s);

/*
 * The node a call speaks for, by its (validated) key: known, reached through its own certificate
 * when keys are bound to certificates, and online. Otherwise fails the call (NOT_FOUND,
 * PERMISSION_DENIED, FAILED_PRECONDITION) and returns NULL.
 */
struct node *nodes_rpc_caller(struct nodes *n, struct srv_call *c, const char *key);

#endif
