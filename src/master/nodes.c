#include "master/nodes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rules.h"
#include "master/clock.h"
#include "master/events.h"
#include "store/store.h"
#include "runtime/log.h"

struct nodes {
    struct ev_loop *loop;
    struct store *store;
    struct nodes_opts opts;
    struct hmap map;
    size_t cursor; /* where nodes_pick_free goes on */
    struct node *last_pick;
    ev_timer sweep;
    nodes_offline_fn offline_fn;
    void *offline_ctx;
    struct events *events; /* NULL: none recorded */
    bool draining;
    size_t drain_left;          /* while draining: the streams still open */
    void (*drained)(void *ctx); /* runs once drain_left reaches 0 */
    void *drained_ctx;
    struct ratelimit register_refusals; /* their log lines */
    bool shared;                        /* other masters share the store */
    char master_id[LIMIT_NODE_KEY_MAX + 1];
    unsigned sweeps; /* leases are renewed and reaped every SWEEP_SLICES-th sweep */
    bool leased;     /* this master has held a lease since it started */
};

struct node *nodes_find(struct nodes *n, const char *key)
{
    struct hmap_entry *e = hmap_get(&n->map, key);
    return e ? hmap_item(e, struct node, link) : NULL;
}

static void free_node(struct node *node)
{
    free(node->labels);
    free(node);
}

static struct node *add_node(struct nodes *n, const char *key)
{
    struct node *node = calloc(1, sizeof(*node));
    if (!node || !(node->labels = strdup(""))) {
        free(node);
        return NULL;
    }
    snprintf(node->key, sizeof(node->key), "%s", key);
    node->link.key = node->key;
    if (hmap_put(&n->map, &node->link) < 0) {
        free_node(node);
        return NULL;
    }
    return node;
}

/* Replaces the node's labels with a copy of labels (NULL: none). */
static int set_labels(struct node *node, const char *labels)
{
    char *copy = strdup(labels ? labels : "");
    if (!copy)
        return -ENOMEM;
    free(node->labels);
    node->labels = copy;
    return 0;
}

void nodes_foreach(struct nodes *n, void (*fn)(void *ctx, struct node *node), void *ctx)
{
    struct hmap_entry *e, *tmp;
    hmap_foreach(&n->map, e, tmp)
    {
        fn(ctx, hmap_item(e, struct node, link));
    }
}

size_t nodes_count(const struct nodes *n)
{
    return n->map.count;
}

void nodes_on_offline(struct nodes *n, nodes_offline_fn fn, void *ctx)
{
    n->offline_fn = fn;
    n->offline_ctx = ctx;
}

void nodes_set_events(struct nodes *n, struct events *ev)
{
    n->events = ev;
}

bool nodes_identity_ok(const struct nodes *n, const char *cert_name, const char *key)
{
    return !n->opts.bind_node_key || (cert_name && strcmp(cert_name, key) == 0);
}

/* ---- who takes a task ---- */

bool nodes_held_here(const struct nodes *n, const struct node *node)
{
    return !n->shared || node->here;
}

bool nodes_takes(const struct node *node, const char *labels)
{
    return node->online && node->state == NODE_ENABLED && labels_match(labels, node->labels);
}

bool nodes_any_takes(struct nodes *n, const char *labels)
{
    struct hmap_entry *e, *tmp;
    hmap_foreach(&n->map, e, tmp)
    {
        if (nodes_takes(hmap_item(e, struct node, link), labels))
            return true;
    }
    return false;
}

bool nodes_has_room(const struct node *node, const char *labels)
{
    return nodes_takes(node, labels) && node->stream && node->active < node->max_runners;
}

bool nodes_full(const struct node *node)
{
    return node->max_runners > 0 && node->active >= node->max_runners;
}

struct node *nodes_pick_free(struct nodes *n, const char *labels)
{
    /* A scan from where the last pick stopped; at most one pass over the nodes. */
    size_t nb = n->map.n_buckets;
    for (size_t k = 0; k < nb; k++) {
        size_t i = (n->cursor + k) % nb;
        for (struct hmap_entry *e = n->map.buckets[i]; e; e = e->next) {
            struct node *node = hmap_item(e, struct node, link);
            if (nodes_has_room(node, labels) && node != n->last_pick) {
                n->cursor = i;
                n->last_pick = node;
                return node;
            }
        }
    }
    /* Only the node picked last time is free: it is still the right one. */
    struct node *last = n->last_pick;
    return last && nodes_has_room(last, labels) ? last : NULL;
}

#define NAMES_SHOWN 10

static int load_node(void *ctx, const struct node_row *r);

static int learn_node(void *ctx, const struct node_row *r)
{
    return nodes_find(ctx, r->key) ? 0 : load_node(ctx, r);
}

int nodes_resolve(struct nodes *n, const char *given, struct node **out, char *why, size_t why_len)
{
    if ((*out = nodes_find(n, given)))
        return 0;
    /* On a shared store, nodes may have registered with other masters since this one started:
     * learn those `given` names before judging (a name another master's node shares too makes
     * it ambiguous). */
    if (n->shared && store_node_named(n->store, given, learn_node, n) == 0 &&
        (*out = nodes_find(n, given)))
        return 0;
    size_t found = 0;
    int len = snprintf(why, why_len, "node name %s is ambiguous: it names", given);
    struct hmap_entry *e, *tmp;
    hmap_foreach(&n->map, e, tmp)
    {
        struct node *node = hmap_item(e, struct node, link);
        if (strcmp(node->name, given) != 0)
            continue;
        *out = node;
        if (found < NAMES_SHOWN && len > 0 && (size_t)len < why_len)
            len += snprintf(why + len, why_len - (size_t)len, "%s %s", found ? "," : "", node->key);
        found++;
    }
    if (found > NAMES_SHOWN && len > 0 && (size_t)len < why_len)
        snprintf(why + len, why_len - (size_t)len, " and more");
    if (found == 1)
        return 0;
    *out = NULL;
    if (found == 0)
        snprintf(why, why_len, "unknown node");
    return found ? -ENOTUNIQ : -ENOENT;
}

/* ---- states ---- */

const char *nodes_state_name(enum node_state s)
{
    switch (s) {
    case NODE_DISABLED:
        return STORE_NODE_DISABLED;
    case NODE_DRAINING:
        return STORE_NODE_DRAINING;
    case NODE_ENABLED:
        break;
    }
    return STORE_NODE_ENABLED;
}

static enum node_state state_of_name(const char *name)
{
    if (strcmp(name, STORE_NODE_DISABLED) == 0)
        return NODE_DISABLED;
    if (strcmp(name, STORE_NODE_DRAINING) == 0)
        return NODE_DRAINING;
    return NODE_ENABLED;
}

/* The one place a node's state changes (an admin's command, a drain that completes): the store
 * and the event of a node disabled, then memory. */
static int set_state(struct nodes *n, struct node *node, enum node_state to, const char *why)
{
    if (node->state == to)
        return 0;
    events_join(n->events);
    int rc = store_node_set_state(n->store, node->key, nodes_state_name(to));
    if (rc < 0)
        return rc;
    node->state = to;
    log_info("node %s (%s) %s%s%s", node->key, node->name, nodes_state_name(to), why ? ": " : "",
             why ? why : "");
    if (to == NODE_DISABLED)
        events_node(n->events, EVENT_NODE_DISABLED, node->key, node->name, why);
    return 0;
}

/* A draining node that holds no task any more is disabled. */
static void settle_drain(struct nodes *n, struct node *node)
{
    if (node->state == NODE_DRAINING && node->active == 0)
        set_state(n, node, NODE_DISABLED, "drained");
}

/* The one place a node is forgotten: only an offline node that holds no task. */
static int remove_node(struct nodes *n, struct node *node)
{
    if (node->online || node->active > 0)
        return -EBUSY;
    events_join(n->events);
    int rc = store_node_delete(n->store, node->key);
    if (rc < 0)
        return rc;
    log_info("node %s (%s) removed", node->key, node->name);
    events_node(n->events, EVENT_NODE_REMOVED, node->key, node->name, NULL);
    if (n->last_pick == node)
        n->last_pick = NULL;
    hmap_remove(&n->map, &node->link);
    free_node(node);
    return 0;
}

int nodes_change(struct nodes *n, struct node *node, enum node_action action)
{
    int rc = 0;
    switch (action) {
    case NODE_ENABLE:
        rc = set_state(n, node, NODE_ENABLED, NULL);
        if (rc == 0)
            nodes_notify_task(node); /* tasks may wait for it */
        break;
    case NODE_DISABLE:
        rc = set_state(n, node, NODE_DISABLED, NULL);
        break;
    case NODE_DRAIN:
        rc = set_state(n, node, node->active ? NODE_DRAINING : NODE_DISABLED,
                       node->active ? "its running tasks finish first" : "it holds no task");
        break;
    case NODE_REMOVE:
        rc = remove_node(n, node);
        break;
    }
    return rc;
}

void nodes_task_held(struct nodes *n, const char *key)
{
    struct node *node = nodes_find(n, key);
    if (node)
        node->active++;
}

void nodes_task_released(struct nodes *n, const char *key)
{
    struct node *node = nodes_find(n, key);
    if (node && node->active > 0) {
        node->active--;
        settle_drain(n, node);
    }
}

/* ---- the live stream ---- */

bool nodes_notify_task(struct node *node)
{
    if (!node->stream)
        return false;
    node->stream->push(node->stream_handle, NODE_PUSH_TASK_AVAILABLE);
    return true;
}

int nodes_push_task(struct node *node, const struct task_row *row)
{
    if (!node->stream)
        return -ENOTCONN;
    return node->stream->push_task(node->stream_handle, row);
}

int nodes_push_cancel(struct node *node, const char *task_id, bool force)
{
    if (!node->stream)
        return -ENOTCONN;
    return node->stream->push_cancel(node->stream_handle, task_id, force);
}

/* The node has no stream any more. When the master drains and it was the last one, every worker
 * that could hear DRAIN has: nodes_drain_all's callback runs. */
static void stream_let_go(struct nodes *n, struct node *node)
{
    node->stream = NULL;
    node->stream_handle = NULL;
    if (!n->draining || --n->drain_left > 0 || !n->drained)
        return;
    void (*drained)(void *ctx) = n->drained;
    n->drained = NULL;
    drained(n->drained_ctx);
}

/* Ends the node's stream from our side. */
static void end_stream(struct nodes *n, struct node *node, enum node_end why)
{
    const struct node_stream_ops *ops = node->stream;
    if (!ops)
        return;
    void *handle = node->stream_handle;
    stream_let_go(n, node);
    ops->end(handle, why);
}

/* Marks the node offline, in memory and in the store, and tells the listener. */
static void set_offline(struct nodes *n, struct node *node, const char *why)
{
    /* Streams ending because the master stops are no news about the node. */
    if (!node->online || n->draining)
        return;
    node->online = false;
    node->here = false;
    node->running = 0;
    log_info("node %s (%s) offline: %s", node->key, node->name, why);
    events_join(n->events);
    if (store_node_set_status(n->store, node->key, STORE_NODE_OFFLINE, clock_now_ms(n->loop)) == 0)
        events_node(n->events, EVENT_NODE_OFFLINE, node->key, node->name, why);
    if (n->offline_fn)
        n->offline_fn(n->offline_ctx, node);
}

int nodes_stream_attach(struct nodes *n, struct node *node, const struct node_stream_ops *ops,
                        void *handle)
{
    if (!node->online)
        return -ENOTCONN;
    if (n->draining)
        return -ESHUTDOWN;
    end_stream(n, node, NODE_END_REPLACED);
    node->stream = ops;
    node->stream_handle = handle;
    node->last_seen_ms = clock_now_ms(n->loop);
    node->last_heard_ms = node->pushed_ms = clock_mono_ms();
    log_debug("node %s subscribed", node->key);
    return 0;
}

void nodes_stream_gone(struct nodes *n, struct node *node, void *handle, const char *why)
{
    if (!node->stream || node->stream_handle != handle)
        return;
    stream_let_go(n, node);
    set_offline(n, node, why);
}

/* ---- registration and heartbeats ---- */

/* A live key is taken over only by the machine that holds it (a worker restarting). */
static bool may_take_over(const struct node *node, const struct node_hello *hello)
{
    return *hello->machine_id && strcmp(hello->machine_id, node->machine_id) == 0;
}

/* Whether a registration of node is within LIMIT_REGISTER_*; the refusals are logged at most once a
 * second. */
static bool register_allowed(struct nodes *n, struct node *node, const char *peer)
{
    if (tokens_take(&node->registrations, (double)clock_mono_ms() / 1000.0, LIMIT_REGISTER_BURST,
                    LIMIT_REGISTER_PER_S))
        return true;
    unsigned held;
    if (ratelimit_pass(&n->register_refusals, ev_now(n->loop), &held))
        log_warn("node %s: refused a registration from %s: more than %d at once or %.0f a second "
                 "(%u more such refusals since the last such line)",
                 node->key, peer, LIMIT_REGISTER_BURST, LIMIT_REGISTER_PER_S, held);
    return false;
}

/* On a shared store, what other masters changed about a node that registers here: its state
 * (an admin may have drained it through another master) and the tasks it holds. */
static int catch_up(struct nodes *n, struct node *node)
{
    struct node_row row;
    uint64_t counts[TASK_STATUS_COUNT];
    int rc = store_node_get(n->store, node->key, &row);
    if (rc == 0)
        rc = store_task_count_by_status(n->store, node->key, counts);
    if (rc < 0)
        return rc;
    node->state = state_of_name(row.state);
    node->active =
        (int)(counts[TASK_ASSIGNED] + counts[TASK_RUNNING] + counts[TASK_NODE_DISCONNECTED]);
    return 0;
}

int nodes_register(struct nodes *n, const struct node_hello *hello, struct node **out)
{
    struct node *node = nodes_find(n, hello->key);
    if (node && !register_allowed(n, node, hello->peer))
        return -EAGAIN;
    if (node && node->stream && !may_take_over(node, hello))
        return -EADDRINUSE;
    int64_t now = clock_now_ms(n->loop);
    events_join(n->events);
    int rc = store_node_upsert(n->store, hello->key, hello->name, hello->max_runners,
                               hello->version, hello->labels, now);
    if (rc == 0 && n->shared)
        rc = store_node_hold(n->store, hello->key, n->master_id);
    if (rc < 0)
        return rc;
    if (!node && !(node = add_node(n, hello->key)))
        return -ENOMEM;
    if (set_labels(node, hello->labels) < 0)
        return -ENOMEM;
    if (node->stream) {
        log_info("node %s: new connection from %s replaces the previous one", node->key,
                 hello->peer);
        end_stream(n, node, NODE_END_REPLACED);
    }
    snprintf(node->name, sizeof(node->name), "%s", hello->name);
    snprintf(node->version, sizeof(node->version), "%s", hello->version);
    snprintf(node->machine_id, sizeof(node->machine_id), "%s", hello->machine_id);
    snprintf(node->containment, sizeof(node->containment), "%s",
             hello->containment ? hello->containment : "");
    node->max_runners = hello->max_runners;
    node->claims = hello->claims;
    node->takes_pushed_tasks = hello->takes_pushed_tasks;
    node->takes_pushed_cancels = hello->takes_pushed_cancels;
    node->resynced = false;
    node->last_seen_ms = now;
    node->last_heard_ms = clock_mono_ms();
    if (n->shared && (rc = catch_up(n, node)) < 0)
        return rc;
    node->here = true;
    if (!node->online) {
        log_info("node %s (%s) online from %s, max_runners %d", node->key, node->name, hello->peer,
                 node->max_runners);
        events_node(n->events, EVENT_NODE_ONLINE, node->key, node->name, NULL);
    }
    node->online = true;
    *out = node;
    return 0;
}

int nodes_heartbeat(struct nodes *n, struct node *node, int running)
{
    if (!node->online)
        return -ENOTCONN;
    node->last_seen_ms = clock_now_ms(n->loop);
    node->last_heard_ms = clock_mono_ms();
    node->running = running;
    return 0;
}

/* The sweep runs this many times per heartbeat interval. */
#define SWEEP_SLICES 8

/* ---- several masters on one store ---- */

/* A node whose master's lease ran out, reaped by this master: offline here, whatever this master
 * last knew of it (the store said online until the reap), so that its tasks go as any offline
 * node's. One this master has never seen is loaded first. */
static int on_reaped(void *ctx, const char *key)
{
    struct nodes *n = ctx;
    struct node *node = nodes_find(n, key);
    if (!node) {
        struct node_row row;
        if (store_node_get(n->store, key, &row) < 0 || load_node(n, &row) < 0)
            return 0; /* removed meanwhile, or no memory: nothing held here to let go of */
        node = nodes_find(n, key);
    }
    end_stream(n, node, NODE_END_SILENT);
    node->online = true;
    set_offline(n, node, "its master stopped renewing its lease");
    return 0;
}

/*
 * Once an interval: this master's lease is renewed for three intervals, and the leases of others
 * that ran out are reaped. A lease of this master's own that had run out (the store was out of
 * reach for three intervals) was reaped by another master, which took this master's nodes
 * offline: their streams end here, and the workers register again.
 */
static void keep_lease(struct nodes *n)
{
    int rc = store_master_renew(n->store, n->master_id, 3 * (int64_t)n->opts.heartbeat_interval_ms);
    if (rc == 1 && n->leased) {
        log_warn("this master's lease ran out and its nodes were taken offline by another master; "
                 "their streams end so that they register again");
        struct hmap_entry *e, *tmp;
        hmap_foreach(&n->map, e, tmp)
        {
            struct node *node = hmap_item(e, struct node, link);
            if (node->here) {
                end_stream(n, node, NODE_END_SILENT);
                set_offline(n, node, "this master's lease ran out");
            }
        }
    }
    if (rc >= 0)
        n->leased = true;
    store_master_reap(n->store, on_reaped, n);
}

/*
 * Every SWEEP_SLICES-th of an interval: nodes silent for three intervals go offline, and each
 * stream whose last heartbeat push is an interval old gets the next one. A stream's pushes keep
 * the phase of its start, so those of a large fleet spread over the interval instead of going out
 * all at once (10,000 in one loop iteration held heartbeat calls up by close to a second).
 */
static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct nodes *n = w->data;
    int64_t now = clock_mono_ms();
    int64_t interval = (int64_t)n->opts.heartbeat_interval_ms;
    int64_t limit = 3 * interval;
    /* Due within half a slice: pushed on this sweep rather than a slice late. */
    int64_t due = interval - interval / (2 * SWEEP_SLICES);
    struct hmap_entry *e, *tmp;
    hmap_foreach(&n->map, e, tmp)
    {
        struct node *node = hmap_item(e, struct node, link);
        settle_drain(n, node); /* one drained while the master was down */
        if (!node->online)
            continue;
        /* On a shared store, a node that did not register here is its master's to judge. */
        if ((node->here || !n->shared) && now - node->last_heard_ms > limit) {
            end_stream(n, node, NODE_END_SILENT);
            set_offline(n, node, "no heartbeat for 3 intervals");
            continue;
        }
        if (node->stream && now - node->pushed_ms >= due) {
            node->pushed_ms = now;
            node->stream->push(node->stream_handle, NODE_PUSH_HEARTBEAT);
        }
    }
    if (n->shared && n->sweeps++ % SWEEP_SLICES == 0)
        keep_lease(n);
}

/* ---- life cycle ---- */

static int load_node(void *ctx, const struct node_row *r)
{
    struct nodes *n = ctx;
    struct node *node = add_node(n, r->key);
    if (!node)
        return -ENOMEM;
    snprintf(node->name, sizeof(node->name), "%s", r->name);
    snprintf(node->version, sizeof(node->version), "%s", r->version);
    if (set_labels(node, r->labels) < 0)
        return -ENOMEM;
    node->state = state_of_name(r->state);
    node->max_runners = r->max_runners;
    /* A node that was online before a restart gets three intervals from now to come back
     * before it is declared offline; its tasks are not touched meanwhile. */
    node->online = strcmp(r->status, STORE_NODE_ONLINE) == 0;
    node->last_seen_ms = node->online ? clock_now_ms(n->loop) : r->last_seen_ms;
    node->last_heard_ms = clock_mono_ms();
    return 0;
}

int nodes_create(struct ev_loop *loop, struct store *store, const struct nodes_opts *opts,
                 struct nodes **out)
{
    struct nodes *n = calloc(1, sizeof(*n));
    if (!n)
        return -ENOMEM;
    n->loop = loop;
    n->store = store;
    n->opts = *opts;
    if (hmap_init(&n->map) < 0) {
        free(n);
        return -ENOMEM;
    }
    double every = (double)opts->heartbeat_interval_ms / 1000.0 / SWEEP_SLICES;
    ev_timer_init(&n->sweep, on_sweep, every, every);
    n->sweep.data = n;
    int rc = store_node_list(store, load_node, n);
    if (rc < 0) {
        nodes_destroy(n);
        return rc;
    }
    n->shared = store_shared(store);
    if (n->shared) {
        snprintf(n->master_id, sizeof(n->master_id), "%s", opts->master_id);
        keep_lease(n); /* held from the start, before any node registers */
    }
    ev_timer_start(loop, &n->sweep);
    *out = n;
    return 0;
}

void nodes_destroy(struct nodes *n)
{
    if (!n)
        return;
    ev_timer_stop(n->loop, &n->sweep);
    n->drained = NULL; /* the streams ended below are no news to whoever waited */
    /* Released, not left to run out: the nodes still held here go offline through the next
     * master that reaps, now rather than three intervals from now. */
    if (n->leased)
        store_master_renew(n->store, n->master_id, 0);
    struct hmap_entry *e, *tmp;
    hmap_foreach(&n->map, e, tmp)
    {
        struct node *node = hmap_item(e, struct node, link);
        end_stream(n, node, NODE_END_STOPPING);
        free_node(node);
    }
    hmap_destroy(&n->map);
    free(n);
}

void nodes_drain_all(struct nodes *n, void (*drained)(void *ctx), void *ctx)
{
    n->draining = true;
    ev_timer_stop(n->loop, &n->sweep);
    /* Counted before any DRAIN goes: a stream that ends while they are pushed cannot bring the
     * count to zero before the others had theirs. */
    struct hmap_entry *e, *tmp;
    hmap_foreach(&n->map, e, tmp)
    {
        n->drain_left += hmap_item(e, struct node, link)->stream != NULL;
    }
    n->drained = drained;
    n->drained_ctx = ctx;
    if (n->drain_left == 0) {
        n->drained = NULL;
        if (drained)
            drained(ctx);
        return;
    }
    hmap_foreach(&n->map, e, tmp)
    {
        struct node *node = hmap_item(e, struct node, link);
        if (node->stream)
            node->stream->push(node->stream_handle, NODE_PUSH_DRAIN);
    }
}
