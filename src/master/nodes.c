#include "master/nodes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "master/store.h"
#include "rpc/codec.h"
#include "rpc/validate.h"
#include "runtime/log.h"
#include "entity/response.pb-c.h"
#include "services/node_service.pb-c.h"

#define CODE_HEARTBEAT      (1u << 0)
#define CODE_TASK_AVAILABLE (1u << 1)
#define CODE_DRAIN          (1u << 2)

struct nodes {
    struct master *m;
    struct hmap map;
    size_t cursor; /* where nodes_pick_free goes on */
    struct node *last_pick;
    ev_timer sweep;
    nodes_offline_fn offline_fn;
    void *offline_ctx;
    bool draining;
};

bool nodes_key_valid(const char *key)
{
    return validate_node_key(key);
}

struct node *nodes_find(struct nodes *n, const char *key)
{
    struct hmap_entry *e = hmap_get(&n->map, key);
    return e ? hmap_item(e, struct node, link) : NULL;
}

static struct node *add_node(struct nodes *n, const char *key)
{
    struct node *node = calloc(1, sizeof(*node));
    if (!node)
        return NULL;
    snprintf(node->key, sizeof(node->key), "%s", key);
    node->link.key = node->key;
    node->owner = n;
    hmap_put(&n->map, &node->link);
    return node;
}

void nodes_foreach(struct nodes *n, void (*fn)(void *ctx, struct node *node), void *ctx)
{
    struct hmap_entry *e, *tmp;
    hmap_foreach(&n->map, e, tmp)
    {
        fn(ctx, hmap_item(e, struct node, link));
    }
}

bool nodes_caller_owns_key(struct nodes *n, struct srv_call *c, const char *key)
{
    if (!n->m->cfg->tls_bind_node_key)
        return true;
    /* The certificate the call's connection presented in its TLS handshake. */
    const char *cn = srv_call_cert_cn(c);
    return cn && strcmp(cn, key) == 0;
}

size_t nodes_count(const struct nodes *n)
{
    return n->map.count;
}

struct node *nodes_pick_free(struct nodes *n)
{
    /* A scan from where the last pick stopped; at most one pass over the nodes. */
    size_t nb = n->map.n_buckets;
    for (size_t k = 0; k < nb; k++) {
        size_t i = (n->cursor + k) % nb;
        for (struct hmap_entry *e = n->map.buckets[i]; e; e = e->next) {
            struct node *node = hmap_item(e, struct node, link);
            if (node->online && node->subscribe && node->active < node->max_runners &&
                node != n->last_pick) {
                n->cursor = i;
                n->last_pick = node;
                return node;
            }
        }
    }
    /* Only the node picked last time is free: it is still the right one. */
    struct node *last = n->last_pick;
    if (last && last->online && last->subscribe && last->active < last->max_runners)
        return last;
    return NULL;
}

void nodes_on_offline(struct nodes *n, nodes_offline_fn fn, void *ctx)
{
    n->offline_fn = fn;
    n->offline_ctx = ctx;
}

/* ---- the Subscribe stream ---- */

static void write_next(struct node *node)
{
    struct srv_call *c = node->subscribe;
    if (!c || srv_call_write_pending(c) || !node->pending_codes)
        return;
    Grpc__NodeServiceSubscribeResponse resp = GRPC__NODE_SERVICE_SUBSCRIBE_RESPONSE__INIT;
    /* DRAIN first, then TASK_AVAILABLE: a pending heartbeat is the least urgent. */
    if (node->pending_codes & CODE_DRAIN) {
        node->pending_codes &= ~CODE_DRAIN;
        resp.code = GRPC__NODE_SERVICE_SUBSCRIBE_CODE__DRAIN;
    } else if (node->pending_codes & CODE_TASK_AVAILABLE) {
        node->pending_codes &= ~CODE_TASK_AVAILABLE;
        resp.code = GRPC__NODE_SERVICE_SUBSCRIBE_CODE__TASK_AVAILABLE;
    } else {
        node->pending_codes &= ~CODE_HEARTBEAT;
        resp.code = GRPC__NODE_SERVICE_SUBSCRIBE_CODE__HEARTBEAT;
    }
    srv_call_write(c, codec_pack(&resp.base));
}

static void push(struct node *node, unsigned code)
{
    node->pending_codes |= code;
    write_next(node);
}

bool nodes_notify_task(struct node *node)
{
    if (!node->subscribe)
        return false;
    push(node, CODE_TASK_AVAILABLE);
    return true;
}

/* Marks the node offline, in memory and in the store, and tells the tasks module. */
static void set_offline(struct nodes *n, struct node *node, const char *why)
{
    /* Streams ending because the master stops are no news about the node. */
    if (!node->online || n->draining)
        return;
    node->online = false;
    node->running = 0;
    log_info("node %s (%s) offline: %s", node->key, node->name, why);
    store_node_set_status(n->m->store, node->key, STORE_NODE_OFFLINE, master_now_ms(n->m));
    if (n->offline_fn)
        n->offline_fn(n->offline_ctx, node);
}

/* Ends a node's stream from our side; its on_done will find it detached. */
static void end_stream(struct node *node, grpc_status_code st, const char *why)
{
    struct srv_call *c = node->subscribe;
    if (!c)
        return;
    node->subscribe = NULL;
    node->pending_codes = 0;
    srv_call_bind(c, NULL, NULL);
    srv_call_fail(c, st, why);
}

static void sub_on_sent(struct srv_call *c, bool ok)
{
    struct node *node = srv_call_user(c);
    if (!node || node->subscribe != c)
        return;
    if (!ok) {
        end_stream(node, GRPC_STATUS_UNAVAILABLE, "stream write failed");
        set_offline(node->owner, node, "subscribe stream broken");
        return;
    }
    if (node->owner->draining && !node->pending_codes) {
        end_stream(node, GRPC_STATUS_UNAVAILABLE, "master is shutting down");
        return;
    }
    write_next(node);
}

static void sub_on_done(struct srv_call *c, bool cancelled)
{
    struct node *node = srv_call_user(c);
    if (!node || node->subscribe != c)
        return;
    end_stream(node, GRPC_STATUS_CANCELLED, "stream ended");
    set_offline(node->owner, node, "subscribe stream ended");
}

static const struct srv_handler subscribe_handler = {
    .on_sent = sub_on_sent,
    .on_done = sub_on_done,
};

/* ---- the methods ---- */

static void reply_ok(struct srv_call *c, const char *data)
{
    Grpc__Response resp = GRPC__RESPONSE__INIT;
    resp.code = GRPC__RESPONSE_CODE__OK;
    if (data) {
        resp.data.data = (uint8_t *)data;
        resp.data.len = strlen(data);
    }
    srv_call_reply(c, &resp.base);
}

static char *node_json(const struct node *node)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:s, s:b}", "key", node->key, "name", node->name,
                          "status", node->online ? "online" : "offline", "max_runners",
                          node->max_runners, "version", node->version, "is_master", 0);
    if (!j)
        return NULL;
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static void on_register(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct nodes *n = ctx;
    const Grpc__NodeServiceRegisterRequest *req = (const void *)msg; /* validated */
    if (!nodes_caller_owns_key(n, c, req->node_key)) {
        log_warn("node %s: refused a registration from %s whose certificate names another node",
                 req->node_key, srv_call_peer(c));
        srv_call_fail(c, GRPC_STATUS_PERMISSION_DENIED,
                      "the client certificate is not this node's (--tls-bind-node-key)");
        return;
    }
    struct node *node = nodes_find(n, req->node_key);
    if (node && node->subscribe) {
        /* The key is in use by a live connection. The same worker restarting (same machine id)
         * takes over at once; anyone else is refused, so that two machines never silently
         * share one node. */
        if (!*req->machine_id || strcmp(req->machine_id, node->machine_id) != 0) {
            log_warn("node %s: refused a second registration from %s (key in use by a live "
                     "connection)",
                     node->key, srv_call_peer(c));
            srv_call_fail(c, GRPC_STATUS_ALREADY_EXISTS,
                          "node key already connected from another machine");
            return;
        }
        log_info("node %s: new connection from %s replaces the previous one", node->key,
                 srv_call_peer(c));
        end_stream(node, GRPC_STATUS_ABORTED, "replaced by a new connection of this node");
    }
    if (!node && !(node = add_node(n, req->node_key))) {
        srv_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    int64_t now = master_now_ms(n->m);
    int rc = store_node_upsert(n->m->store, req->node_key, req->node_name, req->max_runners,
                               req->version, now);
    if (rc < 0) {
        srv_call_fail(c, GRPC_STATUS_UNAVAILABLE, "cannot store the node");
        return;
    }
    snprintf(node->name, sizeof(node->name), "%s", req->node_name);
    snprintf(node->version, sizeof(node->version), "%s", req->version);
    snprintf(node->machine_id, sizeof(node->machine_id), "%s", req->machine_id);
    node->max_runners = req->max_runners;
    node->last_seen_ms = now;
    if (!node->online)
        log_info("node %s (%s) online from %s, max_runners %d", node->key, node->name,
                 srv_call_peer(c), node->max_runners);
    node->online = true;
    char *json = node_json(node);
    reply_ok(c, json);
    free(json);
}

static void on_heartbeat(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct nodes *n = ctx;
    const Grpc__NodeServiceSendHeartbeatRequest *req = (const void *)msg; /* validated */
    struct node *node = nodes_find(n, req->node_key);
    if (!node) {
        srv_call_fail(c, GRPC_STATUS_NOT_FOUND, "unknown node; register first");
        return;
    }
    if (!nodes_caller_owns_key(n, c, node->key)) {
        srv_call_fail(c, GRPC_STATUS_PERMISSION_DENIED,
                      "the client certificate is not this node's");
        return;
    }
    if (!node->online) {
        srv_call_fail(c, GRPC_STATUS_FAILED_PRECONDITION, "node is offline; register again");
        return;
    }
    node->last_seen_ms = master_now_ms(n->m);
    node->running = req->running;
    reply_ok(c, NULL);
}

/* Subscribe: the request is read by hand, since the call then stays open as our stream. */
static void sub_on_request(struct srv_call *c, grpc_byte_buffer *msg)
{
    struct nodes *n = srv_call_user(c);
    ProtobufCMessage *m = NULL;
    const char *why;
    int rc = srv_call_decode(c, msg, &grpc__node_service_subscribe_request__descriptor, &m, &why);
    if (rc < 0) {
        srv_call_fail(c, codec_status_from_errno(rc), why);
        return;
    }
    const Grpc__NodeServiceSubscribeRequest *req = (const void *)m;
    struct node *node = nodes_find(n, req->node_key);
    protobuf_c_message_free_unpacked(m, NULL);
    if (!node || !node->online) {
        srv_call_fail(c, GRPC_STATUS_FAILED_PRECONDITION, "node is not registered");
        return;
    }
    if (!nodes_caller_owns_key(n, c, node->key)) {
        srv_call_fail(c, GRPC_STATUS_PERMISSION_DENIED,
                      "the client certificate is not this node's");
        return;
    }
    if (n->draining) {
        srv_call_fail(c, GRPC_STATUS_UNAVAILABLE, "master is shutting down");
        return;
    }
    if (node->subscribe)
        end_stream(node, GRPC_STATUS_ABORTED, "replaced by a new subscription of this node");
    node->subscribe = c;
    node->pending_codes = 0;
    node->last_seen_ms = master_now_ms(n->m);
    srv_call_bind(c, &subscribe_handler, node);
    log_debug("node %s subscribed", node->key);
}

static void sub_on_first_done(struct srv_call *c, bool cancelled)
{
    /* The peer left before its request arrived; the pending read fails and answers. */
}

static const struct srv_handler subscribe_request_handler = {
    .on_message = sub_on_request,
    .on_done = sub_on_first_done,
};

static void on_subscribe(struct srv_call *c, void *ctx)
{
    srv_call_bind(c, &subscribe_request_handler, ctx);
    srv_call_read(c);
}

/* Every interval: a heartbeat on each stream, and nodes silent for three intervals go offline. */
static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct nodes *n = w->data;
    int64_t now = master_now_ms(n->m);
    int64_t limit = 3 * (int64_t)n->m->cfg->heartbeat_interval_ms;
    struct hmap_entry *e, *tmp;
    hmap_foreach(&n->map, e, tmp)
    {
        struct node *node = hmap_item(e, struct node, link);
        if (!node->online)
            continue;
        if (now - node->last_seen_ms > limit) {
            end_stream(node, GRPC_STATUS_UNAVAILABLE, "no heartbeat");
            set_offline(n, node, "no heartbeat for 3 intervals");
            continue;
        }
        if (node->subscribe)
            push(node, CODE_HEARTBEAT);
    }
}

static int load_node(void *ctx, const struct node_row *r)
{
    struct nodes *n = ctx;
    struct node *node = add_node(n, r->key);
    if (!node)
        return -ENOMEM;
    snprintf(node->name, sizeof(node->name), "%s", r->name);
    snprintf(node->version, sizeof(node->version), "%s", r->version);
    node->max_runners = r->max_runners;
    /* A node that was online before a restart gets three intervals from now to come back
     * before it is declared offline; its tasks are not touched meanwhile. */
    node->online = strcmp(r->status, STORE_NODE_ONLINE) == 0;
    node->last_seen_ms = node->online ? master_now_ms(n->m) : r->last_seen_ms;
    return 0;
}

int nodes_create(struct master *m, struct nodes **out)
{
    struct nodes *n = calloc(1, sizeof(*n));
    if (!n)
        return -ENOMEM;
    n->m = m;
    if (hmap_init(&n->map) < 0) {
        free(n);
        return -ENOMEM;
    }
    int rc = store_node_list(m->store, load_node, n);
    if (rc < 0) {
        nodes_destroy(n);
        return rc;
    }
    double every = (double)m->cfg->heartbeat_interval_ms / 1000.0;
    ev_timer_init(&n->sweep, on_sweep, every, every);
    n->sweep.data = n;
    ev_timer_start(m->loop, &n->sweep);
    *out = n;
    return 0;
}

void nodes_destroy(struct nodes *n)
{
    if (!n)
        return;
    ev_timer_stop(n->m->loop, &n->sweep);
    struct hmap_entry *e, *tmp;
    hmap_foreach(&n->map, e, tmp)
    {
        struct node *node = hmap_item(e, struct node, link);
        end_stream(node, GRPC_STATUS_UNAVAILABLE, "master is shutting down");
        free(node);
    }
    hmap_destroy(&n->map);
    free(n);
}

void nodes_drain_all(struct nodes *n)
{
    n->draining = true;
    ev_timer_stop(n->m->loop, &n->sweep);
    struct hmap_entry *e, *tmp;
    hmap_foreach(&n->map, e, tmp)
    {
        struct node *node = hmap_item(e, struct node, link);
        if (node->subscribe) {
            node->pending_codes = CODE_DRAIN;
            write_next(node);
        }
    }
}

void nodes_add_methods(struct nodes *n, struct rpc_server *s)
{
    rpc_server_add_unary(s, "/grpc.NodeService/Register",
                         &grpc__node_service_register_request__descriptor, on_register, n);
    rpc_server_add_unary(s, "/grpc.NodeService/SendHeartbeat",
                         &grpc__node_service_send_heartbeat_request__descriptor, on_heartbeat, n);
    rpc_server_add_stream(s, "/grpc.NodeService/Subscribe", on_subscribe, n);
}
