/*
 * AdminService: what the client commands (nodes, submit, tasks, logs, results, cancel, schedule,
 * metrics, events) call, on the same port as the node protocol, with the admin key. It reads the
 * store and the node registry, and submits and cancels through the task queue. Listings come in
 * pages under the message limit; a task id may be given as a unique prefix (core/task.h). Loop
 * thread only; handlers block only on the store.
 */
#ifndef CRAWLAB_ADMIN_H
#define CRAWLAB_ADMIN_H

#include <ev.h>

#include "rpc/server.h"

struct events;
struct list_link;
struct nodes;
struct purge;
struct store;
struct tasks;
struct sched;

/* What the methods reach. Filled in by whoever adds them; it must outlive the server. */
struct admin {
    struct store *store;
    struct nodes *nodes;
    struct tasks *tasks;
    struct sched *sched;  /* told when a schedule changes */
    struct ev_loop *loop; /* its clock */
    /* Metrics: renders the exposition text into *text (free() it); 0 or -errno. */
    int (*metrics_text)(void *ctx, char **text, size_t *len);
    void *metrics_ctx;
    struct purge *purge;   /* PurgeTasks: NULL purges nothing */
    struct events *events; /* ReadEvents: required */

    /* Kept by admin.c; zero at first. */
    struct list_link *feeds; /* the open ReadLogs, ReadResults and ReadEvents streams */
    bool stopping;
};

void admin_add_methods(struct admin *a, struct rpc_server *s);
/* The master stops: every `--follow` stream ends (UNAVAILABLE, "master stopping") once it has
 * sent what is stored, instead of waiting for news; one that begins from now on too. Until then
 * they go on, as do the streams that only read what is stored. */
void admin_stop(struct admin *a);

#endif
