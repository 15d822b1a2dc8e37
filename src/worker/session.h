/*
 * The worker's connection to the master: dial (under the retry and breaker policy), Register,
 * Subscribe, heartbeat; on any failure tear the channel down and start over, with the next of
 * cfg->masters when there are several (resilience/retry.h has the rule). Loop thread only.
 *
 * Every channel is a "connection generation": calls made on it carry the generation, and a
 * completion from an older one is ignored, so a late callback can never act on a new channel.
 */
#ifndef CRAWLAB_SESSION_H
#define CRAWLAB_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>
#include <grpc/grpc.h>

#include "config.h"
#include "runtime/bridge.h"
#include "services/node_service.pb-c.h"

struct session;

struct session_hooks {
    void (*on_online)(void *ctx);         /* registered and subscribed */
    void (*on_offline)(void *ctx);        /* the channel is gone; calls on it have failed */
    void (*on_task_available)(void *ctx); /* the master pushed TASK_AVAILABLE */
    void (*on_drain)(void *ctx);          /* the master asked us to stop fetching */
    int (*running)(void *ctx);            /* tasks running now, for heartbeats */
    /* The master pushed a task assigned to us (task and epoch set); the hook takes m. */
    void (*on_task_pushed)(void *ctx, Grpc__NodeServiceSubscribeResponse *m);
    /* The master asked on the node stream to cancel a task (task_id is the message's). */
    void (*on_cancel)(void *ctx, const char *task_id, bool force);
};

struct tls_client;

struct session_identity {
    const char *node_key, *node_name, *machine_id, *auth_key;
    const char *containment; /* announced at Register: "cgroup" or "subreaper" */
    struct tls_client *tls;  /* borrowed; NULL: plaintext */
    int max_runners;
};

int session_create(struct ev_loop *loop, struct bridge *br, const struct config *cfg,
                   const struct session_identity *id, const struct session_hooks *hooks, void *ctx,
                   struct session **out);
void session_start(struct session *s);
/* Closes the connection for good; hooks are not called afterwards. */
void session_stop(struct session *s);
void session_destroy(struct session *s);

bool session_online(const struct session *s);
/* The live channel and its generation; NULL when offline. */
grpc_channel *session_channel(const struct session *s);
/* The data connection, for log and result streams; NULL when offline. */
grpc_channel *session_data_channel(const struct session *s);
/* Whether the data connection is up (its socket neither closed nor reset): an UNAVAILABLE answer
 * on it then comes from the master, not from a lost connection. */
bool session_data_ready(const struct session *s);
unsigned session_generation(const struct session *s);
struct bridge *session_bridge(const struct session *s);
const char *session_auth_key(const struct session *s);
/* Gives up the current connection (e.g. a call on it failed with UNAVAILABLE). */
void session_connection_failed(struct session *s, unsigned generation, const char *why);

#endif
