/*
 * The master's node registry: who is known, who is online, what each node holds, and what it is
 * told on its live stream. NodeService (nodes_rpc.h) is the gRPC glue in front of it.
 *
 * A node is online from its registration until its stream ends or no heartbeat arrives for three
 * intervals. Nodes are kept in memory (for O(1) heartbeats) and in the store (so that they survive
 * a restart and can be listed).
 *
 * Invariant kept here: node->active is the number of tasks the master holds for the node (assigned
 * to it, in status assigned, running or node_disconnected). The task queue reports every task
 * that becomes held or stops being held with nodes_task_held / nodes_task_released, including
 * the held tasks it finds in the store at start; nothing else changes the count, which never goes
 * below zero. Work is pushed only to a node whose count is below its max_runners, and fetched only
 * by one (nodes_full).
 *
 * Several masters on one store (store.h): each node is held by the master its stream is on. This
 * master judges by silence only the nodes that registered here; the others' are judged by their
 * master's lease: every heartbeat interval this master renews its own and reaps those that ran
 * out, taking their nodes offline here (their tasks then go as any offline node's). A node that
 * registers here is held here from then on, and its count of held tasks is read again from the
 * store, where other masters changed it.
 *
 * Loop thread only; functions block only on the store. Errors: 0 or a negative errno.
 */
#ifndef CRAWLAB_NODES_H
#define CRAWLAB_NODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "core/limits.h"
#include "runtime/hmap.h"
#include "runtime/ratelimit.h"

struct events;
struct nodes;
struct store;
struct task_row;

/* What the master tells a node on its stream. */
enum node_push {
    NODE_PUSH_HEARTBEAT,      /* every interval: the master is alive */
    NODE_PUSH_TASK_AVAILABLE, /* a task waits: fetch */
    NODE_PUSH_DRAIN,          /* the master stops: take no more work */
};

/* Why the master ends a node's stream. */
enum node_end {
    NODE_END_REPLACED, /* a newer connection or stream of the same node took over */
    NODE_END_SILENT,   /* no heartbeat for three intervals */
    NODE_END_STOPPING, /* the master stops */
};

/*
 * A node's live stream, through which the master pushes: the Subscribe call in nodes_rpc.c, or a
 * fake in a test. The handle is the stream's own; nodes only passes it back.
 */
struct node_stream_ops {
    /* Queue a push; the stream writes what is queued in order of urgency (DRAIN first, then
     * TASK_AVAILABLE, then HEARTBEAT), and after a DRAIN ends itself (nodes_stream_gone). */
    void (*push)(void *handle, enum node_push what);
    /* Queue a push of the task itself (its spec and epoch), for a node that takes pushed tasks;
     * written before any TASK_AVAILABLE or HEARTBEAT, each once. 0, or -ENOMEM (nothing queued). */
    int (*push_task)(void *handle, const struct task_row *row);
    /* Queue the cancel of a task (for a node that takes pushed cancels), written in order with
     * the pushed tasks. 0, or -ENOMEM (nothing queued). */
    int (*push_cancel)(void *handle, const char *task_id, bool force);
    /* End the stream from the master's side. The node has let go of it already. */
    void (*end)(void *handle, enum node_end why);
};

/* Whether a node takes new tasks; kept in the store, so it survives a restart. */
enum node_state {
    NODE_ENABLED,
    NODE_DISABLED, /* takes no new task; its running ones go on */
    NODE_DRAINING, /* takes no new task; disabled once it holds none (active reaches 0) */
};

/* What an admin does to a node (AdminService.ChangeNode). */
enum node_action {
    NODE_ENABLE,
    NODE_DISABLE,
    NODE_DRAIN,
    NODE_REMOVE, /* forget it: only an offline node that holds no task */
};

struct node {
    struct hmap_entry link; /* keyed by key */
    char key[LIMIT_NODE_KEY_MAX + 1];
    char name[LIMIT_NAME_MAX + 1];
    char machine_id[LIMIT_NODE_KEY_MAX + 1];
    char version[LIMIT_VERSION_MAX + 1];
    char containment[LIMIT_VERSION_MAX + 1]; /* as announced at Register; "" if unknown */
    char *labels; /* as announced at its last Register, joined form (core/rules.h); never NULL */
    enum node_state state;
    int max_runners;
    bool claims; /* it claims each fetched task before it starts it, as announced at Register */
    bool takes_pushed_tasks;   /* it starts a task pushed with its spec, as announced at Register */
    bool takes_pushed_cancels; /* its tasks' cancels go on its stream, as announced */
    bool resynced; /* its Resync since its last Register was answered: tasks may be pushed to it */
    bool here;     /* it registered with this master and has not gone offline since */
    int running;   /* as the node last reported it */
    int active;    /* read only outside nodes.c: see the invariant above */
    bool online;
    int64_t last_seen_ms;  /* wall clock, as shown and stored */
    int64_t last_heard_ms; /* monotonic (clock_mono_ms): what liveness is judged by */
    const struct node_stream_ops *stream; /* the live stream, or NULL */
    void *stream_handle;
    int64_t pushed_ms;           /* monotonic: the stream's last HEARTBEAT push, or when it began */
    struct tokens registrations; /* LIMIT_REGISTER_* (monotonic seconds) */
};

/* The few settings the registry reads, from struct config. */
struct nodes_opts {
    uint64_t heartbeat_interval_ms; /* > 0: the sweep runs this often; silence x3 is offline */
    bool bind_node_key;             /* --tls-bind-node-key: a node must show its own certificate */
    const char *master_id;          /* this master's name in a shared store's leases (copied) */
};

/* Told whenever a node goes offline (the task queue takes back its tasks then). */
typedef void (*nodes_offline_fn)(void *ctx, struct node *node);

/* Loads the known nodes from the store and starts the liveness sweep on loop. A node that was
 * online before a restart gets three intervals from now to come back. */
int nodes_create(struct ev_loop *loop, struct store *store, const struct nodes_opts *opts,
                 struct nodes **out);
/* Ends every live stream (NODE_END_STOPPING) and frees the registry. NULL is accepted. */
void nodes_destroy(struct nodes *n);
/* Sets the one offline listener. */
void nodes_on_offline(struct nodes *n, nodes_offline_fn fn, void *ctx);
/* Records node.online and node.offline in ev (master/events.h), which must outlive n. */
void nodes_set_events(struct nodes *n, struct events *ev);

/* What a node says when it registers: strings borrowed for the call, already validated. */
struct node_hello {
    const char *key, *name, *machine_id, *version, *containment;
    const char *labels; /* joined form, valid (labels_text_valid); NULL = none */
    int max_runners;
    bool claims;
    bool takes_pushed_tasks;
    bool takes_pushed_cancels;
    const char *peer; /* where it connects from, for the log */
};

/*
 * A node registers: it is created or updated, in memory and in the store, and is online. A key in
 * use by a live stream is taken over only by the same machine (same non-empty machine id), whose
 * old stream ends (NODE_END_REPLACED); anyone else gets -EADDRINUSE. A known key registering more
 * often than LIMIT_REGISTER_* allows gets -EAGAIN, with nothing changed. -ENOMEM, or the store's
 * error. *out is the node.
 */
int nodes_register(struct nodes *n, const struct node_hello *hello, struct node **out);

/* A heartbeat from the node, reporting how many tasks it runs. -ENOTCONN when it is offline (it
 * must register again). */
int nodes_heartbeat(struct nodes *n, struct node *node, int running);

/* Whether a connection that presented the certificate named cert_name (NULL: none) may speak for
 * the node key: always without bind_node_key, else only with that node's own certificate. */
bool nodes_identity_ok(const struct nodes *n, const char *cert_name, const char *key);

/* The node's stream is open: pushes go there from now on; an older stream ends
 * (NODE_END_REPLACED). -ENOTCONN when the node is not online, -ESHUTDOWN once draining. */
int nodes_stream_attach(struct nodes *n, struct node *node, const struct node_stream_ops *ops,
                        void *handle);

/* The stream with this handle is gone from the stream's side (the peer left, a write failed, a
 * DRAIN was delivered): the node lets go of it and goes offline, unless the master is draining.
 * A handle the node no longer holds is ignored. */
void nodes_stream_gone(struct nodes *n, struct node *node, void *handle, const char *why);

struct node *nodes_find(struct nodes *n, const char *key);
/* Iterates every known node (online or not). */
void nodes_foreach(struct nodes *n, void (*fn)(void *ctx, struct node *node), void *ctx);
/* How many nodes are known (online or not). */
size_t nodes_count(const struct nodes *n);

/* Whether this master holds the node's stream, so that its memory of the node is the truth (always
 * on a store of its own; on a shared one, when the node registered here). */
bool nodes_held_here(const struct nodes *n, const struct node *node);

/* Whether the node takes a new task with the selector `labels` (joined form, NULL = any) now:
 * online, enabled and having those labels. */
bool nodes_takes(const struct node *node, const char *labels);
/* Whether some known node takes such a task now (nodes_takes). */
bool nodes_any_takes(struct nodes *n, const char *labels);

/* A node that takes a task with the selector `labels` (nodes_takes), with a live stream and free
 * capacity, taken in turn so that pushes spread fairly; NULL when there is none. */
struct node *nodes_pick_free(struct nodes *n, const char *labels);

/* Whether the node takes such a task (nodes_takes), has a live stream and fewer held tasks than
 * runners: what nodes_pick_free looks for. */
bool nodes_has_room(const struct node *node, const char *labels);

/* Whether the master holds as many tasks for the node as it has runners (a node that reported
 * none, 0, is never full): it may fetch nothing more now. A fetch is sent when the worker sees a
 * free runner, and a task pushed meanwhile may have taken it; or the final status of the task
 * that freed it has not arrived yet (tasks_fetch then makes the fetch wait for it). */
bool nodes_full(const struct node *node);

/*
 * The node that `given` names: the node with that key, else the one node with that name. -ENOENT
 * when none; -ENOTUNIQ when several nodes have that name: then why (why_len bytes) names them.
 */
int nodes_resolve(struct nodes *n, const char *given, struct node **out, char *why, size_t why_len);

/*
 * Enables, disables, drains or removes the node, in memory and in the store. A node's state
 * changes only here and when a drain completes, both through one function of nodes.c
 * (set_state), and a node is forgotten in one other (remove_node): events hook in there.
 * Draining a node that holds no task disables it at once; enabling one pushes TASK_AVAILABLE to
 * it. Removing is refused with -EBUSY while the node is online or holds tasks; on success the node
 * is freed. -ENOMEM, or the store's error (nothing changed).
 */
int nodes_change(struct nodes *n, struct node *node, enum node_action action);
/* The name of a state, as listings and the store show it. */
const char *nodes_state_name(enum node_state s);

/* Pushes TASK_AVAILABLE to the node if it has a live stream. Returns false when it has none. */
bool nodes_notify_task(struct node *node);
/* Pushes the task (assigned to the node, durably) on its live stream. -ENOTCONN when it has none,
 * -ENOMEM. */
int nodes_push_task(struct node *node, const struct task_row *row);
/* Sends the cancel of a task on the node's stream (a node that takes pushed cancels). 0, or
 * -ENOTCONN without a stream, -ENOMEM. */
int nodes_push_cancel(struct node *node, const char *task_id, bool force);

/* The master stops: the sweep stops, every live stream gets DRAIN, and from now on no stream is
 * attached and no node goes offline. drained(ctx), if given, runs once every stream has ended
 * (each ends after its DRAIN is written, or when its peer goes), at once when none was open, and
 * never after nodes_destroy. */
void nodes_drain_all(struct nodes *n, void (*drained)(void *ctx), void *ctx);

/* The task queue's reports behind node->active (see the invariant above). An unknown key is
 * ignored. */
void nodes_task_held(struct nodes *n, const char *key);
void nodes_task_released(struct nodes *n, const char *key);

#endif
