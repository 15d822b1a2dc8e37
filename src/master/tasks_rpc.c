#include "master/tasks_rpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/fence.h"
#include "master/nodes_rpc.h"
#include "master/taskspec.h"
#include "rpc/codec.h"
#include "runtime/log.h"
#include "entity/response.pb-c.h"
#include "services/node_service.pb-c.h"
#include "services/task_service.pb-c.h"

#define NO_TASK_ID "000000000000000000000000"

static void reply_ok(struct srv_call *c)
{
    Grpc__Response resp = GRPC__RESPONSE__INIT;
    resp.code = GRPC__RESPONSE_CODE__OK;
    resp.message = "";
    srv_call_reply(c, &resp.base);
}

/* ---- the per-task stream that carries CANCEL ---- */

/* One TaskService.Subscribe call: the task's stream once its request is accepted. */
struct task_sub {
    struct tasks *tasks;
    struct srv_call *call;
    char id[TASK_ID_LEN + 1];
    bool attached; /* the queue holds it */
};

static int sub_cancel(void *handle, const char *id, bool force)
{
    struct task_sub *s = handle;
    Grpc__TaskServiceSubscribeResponse resp = GRPC__TASK_SERVICE_SUBSCRIBE_RESPONSE__INIT;
    resp.code = GRPC__TASK_SERVICE_SUBSCRIBE_CODE__CANCEL;
    resp.task_id = (char *)id;
    resp.force = force;
    return srv_call_write(s->call, codec_pack(&resp.base));
}

static void sub_end(void *handle, enum task_end why)
{
    struct task_sub *s = handle;
    s->attached = false;
    switch (why) {
    case TASK_END_OVER:
        srv_call_finish(s->call, GRPC_STATUS_OK, NULL, NULL);
        break;
    case TASK_END_REPLACED:
        srv_call_finish(s->call, GRPC_STATUS_ABORTED, "replaced by a new stream", NULL);
        break;
    case TASK_END_STOPPING:
        srv_call_finish(s->call, GRPC_STATUS_UNAVAILABLE, "master stopping", NULL);
        break;
    }
}

static const struct task_stream_ops sub_ops = {.cancel = sub_cancel, .end = sub_end};

static void sub_on_request(struct srv_call *c, grpc_byte_buffer *msg)
{
    struct task_sub *s = srv_call_user(c);
    ProtobufCMessage *m = NULL;
    const char *why;
    int rc = srv_call_decode(c, msg, &grpc__task_service_subscribe_request__descriptor, &m, &why);
    if (rc < 0) {
        srv_call_fail(c, codec_status_from_errno(rc), why);
        return;
    }
    const Grpc__TaskServiceSubscribeRequest *req = (const void *)m;
    memcpy(s->id, req->task_id, sizeof(s->id));
    protobuf_c_message_free_unpacked(m, NULL);
    /* Attached first: a task already over ends the stream from inside tasks_stream_attach. */
    s->attached = true;
    rc = tasks_stream_attach(s->tasks, s->id, &sub_ops, s);
    if (rc < 0) {
        s->attached = false;
        srv_call_fail(c, codec_status_from_errno(rc),
                      rc == -ENOMEM ? "out of memory" : "unknown task");
    }
}

static void sub_on_done(struct srv_call *c, bool cancelled)
{
    /* Before the request, the pending read fails and answers the call. */
    struct task_sub *s = srv_call_user(c);
    if (!s->attached)
        return;
    s->attached = false;
    tasks_stream_gone(s->tasks, s->id, s);
    srv_call_finish(c, GRPC_STATUS_OK, NULL, NULL);
}

static void sub_on_free(struct srv_call *c)
{
    free(srv_call_user(c));
}

static const struct srv_handler sub_handler = {
    .on_message = sub_on_request,
    .on_done = sub_on_done,
    .on_free = sub_on_free,
};

static void on_task_subscribe(struct srv_call *c, void *ctx)
{
    struct tasks_rpc *r = ctx;
    struct task_sub *s = calloc(1, sizeof(*s));
    if (!s) {
        srv_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    s->tasks = r->tasks;
    s->call = c;
    srv_call_bind(c, &sub_handler, s);
    srv_call_read(c);
}

/* ---- FetchTask ---- */

/* Answers a FetchTask with the task; at once (before the assignment is durable) when early.
 * cancel_here: its node takes pushed cancels (tasks_cancel sends them on the node stream). */
static void reply_task(struct srv_call *c, const struct task_row *row, bool early, bool cancel_here)
{
    struct taskspec ts;
    taskspec_init(&ts, row);
    Grpc__TaskServiceFetchTaskResponse resp = GRPC__TASK_SERVICE_FETCH_TASK_RESPONSE__INIT;
    resp.task_id = ts.spec.id;
    resp.task = &ts.spec;
    resp.epoch = row->epoch;
    resp.cancel_here = cancel_here;
    if (early)
        srv_call_reply_now(c, &resp.base);
    else
        srv_call_reply(c, &resp.base);
    taskspec_free(&ts);
}

/* Answers a FetchTask as tasks_fetch decided: rc 1 with the task in row, 0 without one, or a
 * failure. */
static void answer_fetch(struct srv_call *c, int rc, const struct task_row *row, bool early,
                         bool cancel_here)
{
    if (rc < 0) {
        srv_call_fail(c, GRPC_STATUS_UNAVAILABLE, "cannot read the task queue");
    } else if (rc == 0) {
        Grpc__TaskServiceFetchTaskResponse resp = GRPC__TASK_SERVICE_FETCH_TASK_RESPONSE__INIT;
        resp.task_id = NO_TASK_ID;
        srv_call_reply(c, &resp.base);
    } else {
        reply_task(c, row, early, cancel_here);
    }
}

/* A fetch that waits: its call, and what its node said at Register. */
struct waited_fetch {
    struct srv_call *call;
    bool cancel_here;
};

/* A fetch that waited for a runner of its node: its answer waits for the commit of what it hands
 * out, as for a node that does not claim (the node may be gone by now, and after a wait the
 * commit adds little). */
static void on_fetch_waited(void *ctx, int rc, const struct task_row *row)
{
    struct waited_fetch *w = ctx;
    answer_fetch(w->call, rc, row, false, w->cancel_here);
    free(w);
}

static void on_fetch(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct tasks_rpc *r = ctx;
    const Grpc__TaskServiceFetchTaskRequest *req = (const void *)msg; /* validated */
    struct node *node = nodes_rpc_caller(r->nodes, c, req->node_key);
    if (!node)
        return;
    struct waited_fetch *w = malloc(sizeof(*w));
    if (!w) {
        srv_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    *w = (struct waited_fetch){c, node->takes_pushed_cancels};
    struct task_row row;
    int rc = tasks_fetch(r->tasks, node->key, &row, on_fetch_waited, w);
    if (rc == TASKS_FETCH_WAITS)
        return;
    free(w);
    answer_fetch(c, rc, rc == 1 ? &row : NULL, fence_fetch_answer_early(node->claims),
                 node->takes_pushed_cancels);
    if (rc == 1)
        store_task_row_free(&row);
}

/* ---- ReportStatus, SendNotification ---- */

static void on_report_status(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct tasks_rpc *r = ctx;
    const Grpc__TaskServiceReportStatusRequest *req = (const void *)msg; /* validated */
    struct node *node = nodes_rpc_caller(r->nodes, c, req->node_key);
    if (!node)
        return;
    const Grpc__TaskState *st = req->state;
    /* Validated: the status is one of the four a worker reports. */
    enum task_status to = TASK_ERROR;
    task_status_parse(st->status, &to);
    int rc = tasks_report(r->tasks, node->key, st->task_id, to, st->pid, st->exit_code,
                          *st->error ? st->error : NULL, st->epoch);
    /* All three mean "not yours" to the worker (core/fence.h): it does not start the task, or
     * stops its copy. */
    if (rc == -EPERM)
        srv_call_fail(c, GRPC_STATUS_PERMISSION_DENIED, fence_reason(FENCE_ELSEWHERE));
    else if (rc == -ESTALE)
        srv_call_fail(c, GRPC_STATUS_PERMISSION_DENIED, fence_reason(FENCE_STALE));
    else if (rc == -EALREADY)
        srv_call_fail(c, GRPC_STATUS_PERMISSION_DENIED, fence_reason(FENCE_OVER));
    else if (rc == -ENOENT || rc == -EINVAL)
        srv_call_fail(c, codec_status_from_errno(rc), "unknown task");
    else if (rc < 0)
        srv_call_fail(c, GRPC_STATUS_UNAVAILABLE, "cannot store the status");
    else
        reply_ok(c); /* applied, or ignored as a repeat or a step backwards */
}

static void on_send_notification(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct tasks_rpc *r = ctx;
    const Grpc__TaskServiceSendNotificationRequest *req = (const void *)msg; /* validated */
    tasks_notification(r->tasks, req->node_key, req->task_id);
    reply_ok(c);
}

/* ---- Resync ---- */

/* Where the task stands, for the worker, and whether it must stop it (core/resync.h). */
static void fill_cursor(Grpc__TaskCursor *cur, const char *id, const struct task_row *row,
                        const struct resync_row *view)
{
    struct resync_verdict v = resync_cursor(view);
    grpc__task_cursor__init(cur);
    cur->task_id = (char *)id;
    cur->status = (char *)task_status_name(row->status);
    cur->log_lines = row->log_lines;
    cur->data_items = row->data_items;
    cur->cancel = v.cancel;
    cur->force = v.force;
}

/*
 * After a (re)connect the worker lists what it holds; the queue settles what the node no longer
 * knows, and the reply says where each listed task stands (durable counts, status, a pending
 * cancel).
 */
static void on_resync(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct tasks_rpc *r = ctx;
    const Grpc__NodeServiceResyncRequest *req = (const void *)msg; /* validated */
    struct node *node = nodes_rpc_caller(r->nodes, c, req->node_key);
    if (!node)
        return;
    size_t n = req->n_tasks;
    const char **ids = n ? calloc(n, sizeof(*ids)) : NULL;
    Grpc__TaskCursor *cursors = n ? calloc(n, sizeof(*cursors)) : NULL;
    Grpc__TaskCursor **ptrs = n ? calloc(n, sizeof(*ptrs)) : NULL;
    if (n && (!ids || !cursors || !ptrs)) {
        srv_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        ids[i] = req->tasks[i]->task_id;
    tasks_settle_unlisted(r->tasks, node->key, ids, n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const Grpc__TaskState *st = req->tasks[i];
        struct task_row row;
        struct resync_row view;
        enum task_status said;
        bool has_status = task_status_parse(st->status, &said) == 0;
        if (tasks_resync_one(r->tasks, node->key, st->task_id, has_status ? &said : NULL, st->epoch,
                             &row, &view) < 0)
            continue;
        fill_cursor(&cursors[k], st->task_id, &row, &view);
        ptrs[k] = &cursors[k];
        k++;
        store_task_row_free(&row);
    }
    Grpc__NodeServiceResyncResponse resp = GRPC__NODE_SERVICE_RESYNC_RESPONSE__INIT;
    resp.n_tasks = k;
    resp.tasks = ptrs;
    srv_call_reply(c, &resp.base);
    /* From now on a task pushed to it cannot be one its listing left out. */
    node->resynced = true;
    log_debug("node %s resynced: it holds %zu task(s)", node->key, n);
out:
    free(ids);
    free(cursors);
    free(ptrs);
}

void tasks_rpc_add_methods(struct tasks_rpc *r, struct rpc_server *s)
{
    rpc_server_add_unary(s, "/grpc.TaskService/FetchTask", ROLE_NODE,
                         &grpc__task_service_fetch_task_request__descriptor, on_fetch, r);
    rpc_server_add_unary(s, "/grpc.TaskService/ReportStatus", ROLE_NODE,
                         &grpc__task_service_report_status_request__descriptor, on_report_status,
                         r);
    rpc_server_add_unary(s, "/grpc.TaskService/SendNotification", ROLE_NODE,
                         &grpc__task_service_send_notification_request__descriptor,
                         on_send_notification, r);
    rpc_server_add_stream(s, "/grpc.TaskService/Subscribe", ROLE_NODE, on_task_subscribe, r);
    rpc_server_add_unary(s, "/grpc.NodeService/Resync", ROLE_NODE,
                         &grpc__node_service_resync_request__descriptor, on_resync, r);
}
