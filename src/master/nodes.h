/*
 * The master's node registry and NodeService: Register, SendHeartbeat, Subscribe (the liveness
 * stream, which also carries TASK_AVAILABLE and DRAIN), and who is online.
 *
 * A node is online from its Register until its Subscribe stream ends or no heartbeat arrives for
 * three intervals. Nodes are kept in memory (for O(1) heartbeats) and in the store (so that they
 * survive a restart and can be listed). Loop thread only.
 */
#ifndef CRAWLAB_NODES_H
#define CRAWLAB_NODES_H

#include <stdbool.h>
#include <stdint.h>

#include "core/limits.h"
#include "master/master.h"
#include "rpc/server.h"
#include "runtime/hmap.h"

struct node {
    struct hmap_entry link; /* keyed by key */
    char key[LIMIT_NODE_KEY_MAX + 1];
    char name[LIMIT_NAME_MAX + 1];
    char machine_id[LIMIT_NODE_KEY_MAX + 1];
    char version[LIMIT_VERSION_MAX + 1];
    int max_runners;
    int running; /* as the node last reported it */
    int active;  /* tasks the master holds for it: assigned, running, node_disconnected */
    bool online;
    int64_t last_seen_ms;
    struct srv_call *subscribe; /* the live Subscribe stream, or NULL */
    unsigned pending_codes;     /* codes waiting for the stream's current write */
    struct nodes *owner;
};

typedef void (*nodes_offline_fn)(void *ctx, struct node *node);

int nodes_create(struct master *m, struct nodes **out);
void nodes_destroy(struct nodes *n);
void nodes_add_methods(struct nodes *n, struct rpc_server *s);

/* Called whenever a node goes offline (to return its tasks); set by the tasks module. */
void nodes_on_offline(struct nodes *n, nodes_offline_fn fn, void *ctx);

struct node *nodes_find(struct nodes *n, const char *key);

/* Iterates every known node (online or not). */
void nodes_foreach(struct nodes *n, void (*fn)(void *ctx, struct node *node), void *ctx);

/* With --tls-bind-node-key, whether the call's connection presented the certificate of the node
 * named key (always true without that flag). */
bool nodes_caller_owns_key(struct nodes *n, struct srv_call *c, const char *key);

/* How many nodes are known (online or not). */
size_t nodes_count(const struct nodes *n);

/* A node with a live stream and free capacity, taken in turn so that pushes spread fairly; NULL
 * when every node is busy or gone. */
struct node *nodes_pick_free(struct nodes *n);

/* Sends TASK_AVAILABLE to the node if it has a live stream. Returns false when it has none. */
bool nodes_notify_task(struct node *node);

/* Sends DRAIN to every live stream, then ends those streams once it is written. */
void nodes_drain_all(struct nodes *n);

#endif
