/*
 * AdminService: what the client commands (nodes, submit, tasks, logs, results, cancel) call.
 * Same port and auth key as the node protocol. Loop thread only.
 */
#ifndef CRAWLAB_ADMIN_H
#define CRAWLAB_ADMIN_H

#include "master/master.h"
#include "rpc/server.h"

void admin_add_methods(struct master *m, struct rpc_server *s);

#endif
