#include "master/nodes_rpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/rules.h"
#include "master/taskspec.h"
#include "net/tls.h"
#include "rpc/codec.h"
#include "runtime/log.h"
#include "entity/response.pb-c.h"
#include "services/node_service.pb-c.h"

/* The name on the certificate the call's connection presented in its TLS handshake, or NULL. */
static const char *caller_cert(struct srv_call *c)
{
    return srv_call_cert_cn(c);
}

struct node *nodes_rpc_caller(struct nodes *n, struct srv_call *c, const char *key)
{
    struct node *node = nodes_find(n, key);
    if (!node) {
        srv_call_fail(c, GRPC_STATUS_NOT_FOUND, "unknown node; register first");
        return NULL;
    }
    if (!nodes_identity_ok(n, caller_cert(c), node->key)) {
        srv_call_fail(c, GRPC_STATUS_PERMISSION_DENIED,
                      "the client certificate is not this node's");
        return NULL;
    }
    if (!node->online) {
        srv_call_fail(c, GRPC_STATUS_FAILED_PRECONDITION, "node is offline; register again");
        return NULL;
    }
    return node;
}

/* ---- the Subscribe stream ---- */

#define PUSH_BIT(what) (1u << (what))

/* A task pushed with its spec, packed, waiting for the stream's current write. */
struct task_push {
    struct task_push *next;
    grpc_byte_buffer *msg;
};

/* One Subscribe call: the node's stream once its request is accepted. */
struct sub {
    struct nodes *nodes;
    struct srv_call *call;
    struct node *node;       /* whose stream this is; NULL before the request and once let go */
    unsigned pending;        /* PUSH_BIT()s waiting for the current write */
    struct task_push *tasks; /* pushed tasks, oldest first */
    struct task_push **tail; /* where the next one goes */
    bool drained;            /* DRAIN is written: the stream ends after it */
};

/* The oldest pushed task's message, taken off the queue (NULL when none waits). */
static grpc_byte_buffer *take_task(struct sub *s)
{
    struct task_push *p = s->tasks;
    if (!p)
        return NULL;
    s->tasks = p->next;
    if (!s->tasks)
        s->tail = &s->tasks;
    grpc_byte_buffer *msg = p->msg;
    free(p);
    return msg;
}

/* The most urgent pending push: DRAIN, then TASK_AVAILABLE; a heartbeat can wait. */
static Grpc__NodeServiceSubscribeCode take_next(struct sub *s)
{
    if (s->pending & PUSH_BIT(NODE_PUSH_DRAIN)) {
        s->pending = 0;
        s->drained = true;
        return GRPC__NODE_SERVICE_SUBSCRIBE_CODE__DRAIN;
    }
    if (s->pending & PUSH_BIT(NODE_PUSH_TASK_AVAILABLE)) {
        s->pending &= ~PUSH_BIT(NODE_PUSH_TASK_AVAILABLE);
        return GRPC__NODE_SERVICE_SUBSCRIBE_CODE__TASK_AVAILABLE;
    }
    s->pending &= ~PUSH_BIT(NODE_PUSH_HEARTBEAT);
    return GRPC__NODE_SERVICE_SUBSCRIBE_CODE__HEARTBEAT;
}

/* DRAIN first; then pushed tasks, in order; then TASK_AVAILABLE and HEARTBEAT (take_next). */
static void write_next(struct sub *s)
{
    if (!s->node || (!s->pending && !s->tasks) || srv_call_write_pending(s->call))
        return;
    grpc_byte_buffer *task = s->pending & PUSH_BIT(NODE_PUSH_DRAIN) ? NULL : take_task(s);
    if (task) {
        srv_call_write(s->call, task);
        return;
    }
    Grpc__NodeServiceSubscribeResponse resp = GRPC__NODE_SERVICE_SUBSCRIBE_RESPONSE__INIT;
    resp.code = take_next(s);
    srv_call_write(s->call, codec_pack(&resp.base));
}

static void sub_push(void *handle, enum node_push what)
{
    struct sub *s = handle;
    s->pending |= PUSH_BIT(what);
    write_next(s);
}

/* Queues a message written after those queued before it, ahead of TASK_AVAILABLE and HEARTBEAT.
 * 0, or -ENOMEM (nothing queued). */
static int queue_message(struct sub *s, const Grpc__NodeServiceSubscribeResponse *resp)
{
    struct task_push *p = calloc(1, sizeof(*p));
    if (!p || !(p->msg = codec_pack(&resp->base))) {
        free(p);
        return -ENOMEM;
    }
    *s->tail = p;
    s->tail = &p->next;
    write_next(s);
    return 0;
}

static int sub_push_task(void *handle, const struct task_row *row)
{
    struct sub *s = handle;
    struct taskspec ts;
    taskspec_init(&ts, row);
    Grpc__NodeServiceSubscribeResponse resp = GRPC__NODE_SERVICE_SUBSCRIBE_RESPONSE__INIT;
    resp.code = GRPC__NODE_SERVICE_SUBSCRIBE_CODE__TASK_AVAILABLE;
    resp.task = &ts.spec;
    resp.epoch = row->epoch;
    /* Its cancel then comes here too (tasks_cancel), not on a stream of the task's own. */
    resp.cancel_here = s->node && s->node->takes_pushed_cancels;
    int rc = queue_message(s, &resp);
    taskspec_free(&ts);
    return rc;
}

static int sub_push_cancel(void *handle, const char *task_id, bool force)
{
    Grpc__NodeServiceSubscribeResponse resp = GRPC__NODE_SERVICE_SUBSCRIBE_RESPONSE__INIT;
    resp.code = GRPC__NODE_SERVICE_SUBSCRIBE_CODE__CANCEL;
    resp.task_id = (char *)task_id;
    resp.force = force;
    return queue_message(handle, &resp);
}

static void sub_end(void *handle, enum node_end why)
{
    struct sub *s = handle;
    s->node = NULL;
    switch (why) {
    case NODE_END_REPLACED:
        srv_call_fail(s->call, GRPC_STATUS_ABORTED, "replaced by a new connection of this node");
        break;
    case NODE_END_SILENT:
        srv_call_fail(s->call, GRPC_STATUS_UNAVAILABLE, "no heartbeat");
        break;
    case NODE_END_STOPPING:
        srv_call_fail(s->call, GRPC_STATUS_UNAVAILABLE, "master is shutting down");
        break;
    }
}

static const struct node_stream_ops sub_ops = {
    .push = sub_push, .push_task = sub_push_task, .push_cancel = sub_push_cancel, .end = sub_end};

/* The stream ends on our side of the call: the registry lets go of it first. */
static void sub_close(struct sub *s, grpc_status_code st, const char *details, const char *why)
{
    struct node *node = s->node;
    s->node = NULL;
    nodes_stream_gone(s->nodes, node, s, why);
    srv_call_fail(s->call, st, details);
}

static void sub_on_sent(struct srv_call *c, bool ok)
{
    struct sub *s = srv_call_user(c);
    if (!s->node)
        return;
    if (!ok)
        sub_close(s, GRPC_STATUS_UNAVAILABLE, "stream write failed", "subscribe stream broken");
    else if (s->drained)
        sub_close(s, GRPC_STATUS_UNAVAILABLE, "master is shutting down", "drained");
    else
        write_next(s);
}

static void sub_on_done(struct srv_call *c, bool cancelled)
{
    /* Before the request, the pending read fails and answers the call. */
    struct sub *s = srv_call_user(c);
    if (s->node)
        sub_close(s, GRPC_STATUS_CANCELLED, "stream ended", "subscribe stream ended");
}

static void sub_on_free(struct srv_call *c)
{
    struct sub *s = srv_call_user(c);
    grpc_byte_buffer *msg;
    while ((msg = take_task(s)))
        grpc_byte_buffer_destroy(msg);
    free(s);
}

/* The request is read by hand, since the call then stays open as the node's stream. */
static void sub_on_request(struct srv_call *c, grpc_byte_buffer *msg)
{
    struct sub *s = srv_call_user(c);
    ProtobufCMessage *m = NULL;
    const char *why;
    int rc = srv_call_decode(c, msg, &grpc__node_service_subscribe_request__descriptor, &m, &why);
    if (rc < 0) {
        srv_call_fail(c, codec_status_from_errno(rc), why);
        return;
    }
    const Grpc__NodeServiceSubscribeRequest *req = (const void *)m;
    struct node *node = nodes_rpc_caller(s->nodes, c, req->node_key);
    protobuf_c_message_free_unpacked(m, NULL);
    if (!node)
        return;
    if (nodes_stream_attach(s->nodes, node, &sub_ops, s) < 0) {
        srv_call_fail(c, GRPC_STATUS_UNAVAILABLE, "master is shutting down");
        return;
    }
    s->node = node;
}

static const struct srv_handler sub_handler = {
    .on_message = sub_on_request,
    .on_sent = sub_on_sent,
    .on_done = sub_on_done,
    .on_free = sub_on_free,
};

static void on_subscribe(struct srv_call *c, void *ctx)
{
    struct sub *s = calloc(1, sizeof(*s));
    if (!s) {
        srv_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    s->nodes = ctx;
    s->call = c;
    s->tail = &s->tasks;
    srv_call_bind(c, &sub_handler, s);
    srv_call_read(c);
}

/* ---- the unary methods ---- */

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
    if (!nodes_identity_ok(n, caller_cert(c), req->node_key)) {
        log_warn("node %s: refused a registration from %s whose certificate names another node",
                 req->node_key, srv_call_peer(c));
        srv_call_fail(c, GRPC_STATUS_PERMISSION_DENIED,
                      "the client certificate is not this node's (--tls-bind-node-key)");
        return;
    }
    char labels[LIMIT_LABELS_TEXT_MAX + 1];
    labels_join(req->labels, req->n_labels, labels, sizeof(labels)); /* validated: it fits */
    struct node_hello hello = {
        .key = req->node_key,
        .labels = labels,
        .name = req->node_name,
        .machine_id = req->machine_id,
        .version = req->version,
        .containment = req->containment,
        .max_runners = req->max_runners,
        .claims = req->claims,
        .takes_pushed_tasks = req->takes_pushed_tasks,
        .takes_pushed_cancels = req->takes_pushed_cancels,
        .peer = srv_call_peer(c),
    };
    struct node *node;
    int rc = nodes_register(n, &hello, &node);
    if (rc == -EADDRINUSE) {
        log_warn("node %s: refused a second registration from %s (key in use by a live "
                 "connection)",
                 req->node_key, srv_call_peer(c));
        srv_call_fail(c, GRPC_STATUS_ALREADY_EXISTS,
                      "node key already connected from another machine");
    } else if (rc == -ENOMEM) {
        srv_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    } else if (rc == -EAGAIN) {
        srv_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
                      "this node key registers too often; retry later");
    } else if (rc < 0) {
        srv_call_fail(c, GRPC_STATUS_UNAVAILABLE, "cannot store the node");
    } else {
        char *json = node_json(node);
        reply_ok(c, json);
        free(json);
    }
}

/* A heartbeat changes nothing in the store, so its answer goes at once, even when the loop
 * iteration's group holds other calls' changes (group_holds_replies): held, it would turn into
 * UNAVAILABLE when those cannot be stored (the database away), and the worker would take that for
 * a lost master. */
static void on_heartbeat(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct nodes *n = ctx;
    const Grpc__NodeServiceSendHeartbeatRequest *req = (const void *)msg; /* validated */
    struct node *node = nodes_rpc_caller(n, c, req->node_key);
    if (!node)
        return;
    nodes_heartbeat(n, node, req->running);
    Grpc__Response resp = GRPC__RESPONSE__INIT;
    resp.code = GRPC__RESPONSE_CODE__OK;
    srv_call_reply_now(c, &resp.base);
}

void nodes_rpc_add_methods(struct nodes *n, struct rpc_server *s)
{
    rpc_server_add_unary(s, "/grpc.NodeService/Register", ROLE_NODE,
                         &grpc__node_service_register_request__descriptor, on_register, n);
    rpc_server_add_unary(s, "/grpc.NodeService/SendHeartbeat", ROLE_NODE,
                         &grpc__node_service_send_heartbeat_request__descriptor, on_heartbeat, n);
    rpc_server_add_stream(s, "/grpc.NodeService/Subscribe", ROLE_NODE, on_subscribe, n);
}
