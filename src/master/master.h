/*
 * The master role: owns the loop, the gRPC server, the listener and the store, and wires the
 * services (nodes, tasks, ingest, admin) to them. Internal to src/master/.
 */
#ifndef CRAWLAB_MASTER_H
#define CRAWLAB_MASTER_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "config.h"

struct master {
    const struct config *cfg;
    struct ev_loop *loop;
    struct bridge *bridge;
    struct rpc_server *server;
    struct listener *listener;
    struct store *store;
    struct group *group;
    struct nodes *nodes;
    struct tasks *tasks;
    struct ingest *ingest;
    char *auth_key;
    ev_signal sigterm, sigint, sighup;
    bool stopping;
    int exit_code;
};

/* Runs the master until SIGTERM/SIGINT; returns the process exit status. */
int master_main(const struct config *cfg);

/* Wall-clock milliseconds as of this loop iteration. */
int64_t master_now_ms(const struct master *m);

#endif
