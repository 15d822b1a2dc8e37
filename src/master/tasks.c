#include "master/tasks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "entity/response.pb-c.h"
#include "master/nodes.h"
#include "rpc/codec.h"
#include "runtime/hmap.h"
#include "runtime/log.h"
#include "services/node_service.pb-c.h"
#include "services/task_service.pb-c.h"

#define NO_TASK_ID "000000000000000000000000"

/*
 * What the master keeps in memory about a task while someone cares: the worker's cancel stream
 * and the log followers. Created on demand, freed when neither is left.
 */
struct live_task {
    struct hmap_entry link;
    char id[TASK_ID_LEN + 1];
    struct srv_call *cancel_stream;
    bool cancel_sent;
    struct task_watcher *watchers;
    struct tasks *owner;
};

struct tasks {
    struct master *m;
    struct hmap live;
    ev_timer grace_sweep;
    bool notifying;
};

static struct live_task *live_get(struct tasks *t, const char *id, bool create)
{
    struct hmap_entry *e = hmap_get(&t->live, id);
    if (e)
        return hmap_item(e, struct live_task, link);
    if (!create)
        return NULL;
    struct live_task *lt = calloc(1, sizeof(*lt));
    if (!lt)
        return NULL;
    memcpy(lt->id, id, TASK_ID_LEN + 1);
    lt->link.key = lt->id;
    lt->owner = t;
    hmap_put(&t->live, &lt->link);
    return lt;
}

static void live_release_if_idle(struct tasks *t, struct live_task *lt)
{
    if (lt->cancel_stream || lt->watchers)
        return;
    hmap_remove(&t->live, &lt->link);
    free(lt);
}

static void notify_watchers(struct live_task *lt)
{
    /* A watcher may unwatch itself from its callback; walk a snapshot of the links. */
    struct task_watcher *w = lt->watchers;
    while (w) {
        struct task_watcher *next = w->next;
        w->on_change(w);
        w = next;
    }
}

/* ---- the per-task cancel stream ---- */

static void send_cancel(struct live_task *lt, bool force)
{
    if (!lt->cancel_stream || lt->cancel_sent)
        return;
    Grpc__TaskServiceSubscribeResponse resp = GRPC__TASK_SERVICE_SUBSCRIBE_RESPONSE__INIT;
    resp.code = GRPC__TASK_SERVICE_SUBSCRIBE_CODE__CANCEL;
    resp.task_id = lt->id;
    resp.force = force;
    if (srv_call_write(lt->cancel_stream, codec_pack(&resp.base)) == 0) {
        lt->cancel_sent = true;
        log_info("task %s: cancel%s sent to its worker", lt->id, force ? " (force)" : "");
    }
}

static void end_cancel_stream(struct tasks *t, struct live_task *lt)
{
    struct srv_call *c = lt->cancel_stream;
    if (!c)
        return;
    lt->cancel_stream = NULL;
    srv_call_bind(c, NULL, NULL);
    srv_call_finish(c, GRPC_STATUS_OK, NULL, NULL);
    live_release_if_idle(t, lt);
}

static void cancel_stream_done(struct srv_call *c, bool cancelled)
{
    struct live_task *lt = srv_call_user(c);
    if (lt && lt->cancel_stream == c)
        end_cancel_stream(lt->owner, lt);
}

static const struct srv_handler cancel_stream_handler = {
    .on_done = cancel_stream_done,
};

static void cancel_stream_request(struct srv_call *c, grpc_byte_buffer *msg)
{
    struct tasks *t = srv_call_user(c);
    ProtobufCMessage *m = NULL;
    const char *why;
    int rc = srv_call_decode(c, msg, &grpc__task_service_subscribe_request__descriptor, &m, &why);
    if (rc < 0) {
        srv_call_fail(c, codec_status_from_errno(rc), why);
        return;
    }
    const Grpc__TaskServiceSubscribeRequest *req = (const void *)m;
    struct task_row row;
    rc = store_task_get(t->m->store, req->task_id, &row);
    if (rc < 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        srv_call_fail(c, codec_status_from_errno(rc), "unknown task");
        return;
    }
    struct live_task *lt = live_get(t, req->task_id, true);
    protobuf_c_message_free_unpacked(m, NULL);
    if (!lt) {
        store_task_row_free(&row);
        srv_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    if (lt->cancel_stream) {
        /* A worker reconnecting opens the stream again; the old one is stale. */
        srv_call_bind(lt->cancel_stream, NULL, NULL);
        srv_call_finish(lt->cancel_stream, GRPC_STATUS_ABORTED, "replaced by a new stream", NULL);
    }
    lt->cancel_stream = c;
    lt->cancel_sent = false;
    srv_call_bind(c, &cancel_stream_handler, lt);
    if (task_status_terminal(row.status)) {
        end_cancel_stream(t, lt);
    } else if (row.cancel_requested) {
        /* The cancel came while the worker had no stream open for the task: deliver it now. */
        send_cancel(lt, row.cancel_force);
    }
    store_task_row_free(&row);
}

static const struct srv_handler cancel_request_handler = {
    .on_message = cancel_stream_request,
};

static void on_task_subscribe(struct srv_call *c, void *ctx)
{
    srv_call_bind(c, &cancel_request_handler, ctx);
    srv_call_read(c);
}

/* ---- status changes ---- */

/*
 * The one place a task's status changes: the store, the node's count of held tasks, the cancel
 * stream and the watchers follow. Returns what store_task_set_status returned.
 */
static int change_status(struct tasks *t, const struct task_row *before, enum task_status to,
                         int pid, int exit_code, const char *error)
{
    int rc = store_task_set_status(t->m->store, before->id, to, pid, exit_code, error,
                                   master_now_ms(t->m));
    if (rc != 0)
        return rc;
    bool held_before = before->status == TASK_ASSIGNED || before->status == TASK_RUNNING ||
                       before->status == TASK_NODE_DISCONNECTED;
    bool held_after = to == TASK_ASSIGNED || to == TASK_RUNNING || to == TASK_NODE_DISCONNECTED;
    struct node *node =
        before->assigned_node[0] ? nodes_find(t->m->nodes, before->assigned_node) : NULL;
    if (node && held_before && !held_after && node->active > 0)
        node->active--;
    if (task_status_terminal(to))
        log_info("task %s %s%s%s", before->id, task_status_name(to), error && *error ? ": " : "",
                 error ? error : "");
    struct live_task *lt = live_get(t, before->id, false);
    if (lt) {
        if (task_status_terminal(to))
            end_cancel_stream(t, lt);
        if ((lt = live_get(t, before->id, false)))
            notify_watchers(lt);
    }
    return 0;
}

/* Pushes TASK_AVAILABLE to whoever should fetch a newly pending task. */
static void announce(struct tasks *t, const char *node_key)
{
    if (node_key && *node_key) {
        struct node *node = nodes_find(t->m->nodes, node_key);
        if (node)
            nodes_notify_task(node);
        return;
    }
    struct node *node = nodes_pick_free(t->m->nodes);
    if (node)
        nodes_notify_task(node);
}

/* Back to the queue, for any node: it was never confirmed started. */
static void requeue(struct tasks *t, const struct task_row *r, const char *why)
{
    if (change_status(t, r, TASK_PENDING, 0, STORE_NO_EXIT_CODE, NULL) == 0) {
        log_info("task %s returned to the queue: %s", r->id, why);
        announce(t, r->node_key);
    }
}

int tasks_submit(struct tasks *t, const struct task_new *tn, char id_out[TASK_ID_LEN + 1])
{
    int rc = store_task_create(t->m->store, tn, master_now_ms(t->m), id_out);
    if (rc < 0)
        return rc;
    log_debug("task %s submitted", id_out);
    announce(t, tn->node_key);
    return 0;
}

int tasks_cancel(struct tasks *t, const char *id, bool force, enum task_status *after)
{
    struct task_row before;
    int rc = store_task_get(t->m->store, id, &before);
    if (rc < 0)
        return rc;
    rc = store_task_request_cancel(t->m->store, id, force, master_now_ms(t->m), after);
    if (rc == 0 && *after == TASK_CANCELLED && before.status != TASK_CANCELLED) {
        log_info("task %s cancelled before any worker took it", id);
        struct live_task *lt = live_get(t, id, false);
        if (lt)
            notify_watchers(lt);
    } else if (rc == 0 && !task_status_terminal(*after)) {
        struct live_task *lt = live_get(t, id, false);
        if (lt)
            send_cancel(lt, force);
        else
            log_info("task %s: cancel recorded; its worker gets it when it opens the task stream",
                     id);
    }
    store_task_row_free(&before);
    return rc;
}

int tasks_watch(struct tasks *t, const char *id, struct task_watcher *w)
{
    struct live_task *lt = live_get(t, id, true);
    if (!lt)
        return -ENOMEM;
    w->next = lt->watchers;
    lt->watchers = w;
    return 0;
}

void tasks_unwatch(struct tasks *t, const char *id, struct task_watcher *w)
{
    struct live_task *lt = live_get(t, id, false);
    if (!lt)
        return;
    for (struct task_watcher **p = &lt->watchers; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    live_release_if_idle(t, lt);
}

void tasks_committed(struct tasks *t)
{
    struct hmap_entry *e, *tmp;
    hmap_foreach(&t->live, e, tmp)
    {
        struct live_task *lt = hmap_item(e, struct live_task, link);
        if (lt->watchers)
            notify_watchers(lt);
    }
}

/* ---- TaskService unary methods ---- */

/* The calling node, from a validated key. */
static struct node *caller_node(struct tasks *t, struct srv_call *c, const char *key)
{
    struct node *node = nodes_find(t->m->nodes, key);
    if (!node) {
        srv_call_fail(c, GRPC_STATUS_NOT_FOUND, "unknown node; register first");
        return NULL;
    }
    if (!node->online) {
        srv_call_fail(c, GRPC_STATUS_FAILED_PRECONDITION, "node is offline; register again");
        return NULL;
    }
    if (!nodes_caller_owns_key(t->m->nodes, c, node->key)) {
        srv_call_fail(c, GRPC_STATUS_PERMISSION_DENIED,
                      "the client certificate is not this node's");
        return NULL;
    }
    return node;
}

/* TaskSpec.env from the stored JSON object; entries live in the caller's arrays. */
static size_t spec_env(json_t *env, Grpc__TaskSpec__EnvEntry *entries,
                       Grpc__TaskSpec__EnvEntry **ptrs, size_t cap)
{
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v)
    {
        if (n == cap || !json_is_string(v))
            continue;
        grpc__task_spec__env_entry__init(&entries[n]);
        entries[n].key = (char *)k;
        entries[n].value = (char *)json_string_value(v);
        ptrs[n] = &entries[n];
        n++;
    }
    return n;
}

static void on_fetch(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct tasks *t = ctx;
    const Grpc__TaskServiceFetchTaskRequest *req = (const void *)msg;
    struct node *node = caller_node(t, c, req->node_key);
    if (!node)
        return;
    Grpc__TaskServiceFetchTaskResponse resp = GRPC__TASK_SERVICE_FETCH_TASK_RESPONSE__INIT;
    if (t->m->stopping) {
        resp.task_id = NO_TASK_ID;
        srv_call_reply(c, &resp.base);
        return;
    }
    struct task_row row;
    int rc = store_task_fetch(t->m->store, node->key, master_now_ms(t->m), &row);
    if (rc < 0) {
        srv_call_fail(c, GRPC_STATUS_UNAVAILABLE, "cannot read the task queue");
        return;
    }
    if (rc == 0) {
        resp.task_id = NO_TASK_ID;
        srv_call_reply(c, &resp.base);
        return;
    }
    node->active++;
    log_debug("task %s assigned to node %s", row.id, node->key);

    Grpc__TaskSpec spec = GRPC__TASK_SPEC__INIT;
    spec.id = row.id;
    spec.cmd = row.cmd;
    spec.param = row.param;
    spec.name = row.name;
    spec.timeout_ms = row.timeout_ms;
    spec.priority = row.priority;
    json_t *env = json_loads(row.env_json, 0, NULL);
    size_t cap = json_is_object(env) ? json_object_size(env) : 0;
    Grpc__TaskSpec__EnvEntry *entries = cap ? calloc(cap, sizeof(*entries)) : NULL;
    Grpc__TaskSpec__EnvEntry **ptrs = cap ? calloc(cap, sizeof(*ptrs)) : NULL;
    if (entries && ptrs) {
        spec.n_env = spec_env(env, entries, ptrs, cap);
        spec.env = ptrs;
    }
    resp.task_id = row.id;
    resp.task = &spec;
    srv_call_reply(c, &resp.base);
    free(entries);
    free(ptrs);
    json_decref(env);
    store_task_row_free(&row);
}

static void reply_ok(struct srv_call *c, const char *message)
{
    Grpc__Response resp = GRPC__RESPONSE__INIT;
    resp.code = GRPC__RESPONSE_CODE__OK;
    resp.message = (char *)(message ? message : "");
    srv_call_reply(c, &resp.base);
}

static void on_report_status(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct tasks *t = ctx;
    const Grpc__TaskServiceReportStatusRequest *req = (const void *)msg; /* validated */
    struct node *node = caller_node(t, c, req->node_key);
    if (!node)
        return;
    const Grpc__TaskState *st = req->state;
    /* Validated: the status is one of the four a worker reports. */
    enum task_status to = TASK_ERROR;
    task_status_parse(st->status, &to);
    struct task_row row;
    int rc = store_task_get(t->m->store, st->task_id, &row);
    if (rc < 0) {
        srv_call_fail(c, codec_status_from_errno(rc), "unknown task");
        return;
    }
    if (strcmp(row.assigned_node, node->key) != 0) {
        store_task_row_free(&row);
        srv_call_fail(c, GRPC_STATUS_PERMISSION_DENIED, "task is not assigned to this node");
        return;
    }
    rc = change_status(t, &row, to, st->pid,
                       task_status_terminal(to) ? st->exit_code : STORE_NO_EXIT_CODE,
                       *st->error ? st->error : NULL);
    store_task_row_free(&row);
    if (rc < 0) {
        srv_call_fail(c, GRPC_STATUS_UNAVAILABLE, "cannot store the status");
        return;
    }
    /* Applied, or ignored as a repeat or a step backwards: both are OK (idempotent). */
    reply_ok(c, NULL);
}

static void on_send_notification(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    const Grpc__TaskServiceSendNotificationRequest *req = (const void *)msg; /* validated */
    log_debug("notification for task %s from node %s", req->task_id, req->node_key);
    reply_ok(c, NULL);
}

/* ---- Resync ---- */

/*
 * Task rows collected before any of them changes: only the fields the settling code reads are
 * copied (the row's heap strings stay the store's).
 */
struct row_list {
    struct task_row *rows;
    size_t n, cap;
};

static int row_list_add(struct row_list *l, const struct task_row *r)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct task_row *rows = realloc(l->rows, cap * sizeof(*rows));
        if (!rows)
            return -ENOMEM;
        l->rows = rows;
        l->cap = cap;
    }
    struct task_row *copy = &l->rows[l->n++];
    memset(copy, 0, sizeof(*copy));
    memcpy(copy->id, r->id, sizeof(copy->id));
    memcpy(copy->node_key, r->node_key, sizeof(copy->node_key));
    memcpy(copy->assigned_node, r->assigned_node, sizeof(copy->assigned_node));
    copy->status = r->status;
    copy->started_ms = r->started_ms;
    copy->updated_ms = r->updated_ms;
    return 0;
}

static int collect_held(void *ctx, const struct task_row *r)
{
    return row_list_add(ctx, r);
}

/* Whether a worker's status says it has (or had) the task's process. */
static bool worker_holds(const char *status)
{
    enum task_status st;
    return task_status_parse(status, &st) == 0 && (st == TASK_RUNNING || task_status_terminal(st));
}

static bool listed(const Grpc__NodeServiceResyncRequest *req, const char *id)
{
    for (size_t i = 0; i < req->n_tasks; i++)
        if (req->tasks[i] && strcmp(req->tasks[i]->task_id, id) == 0)
            return true;
    return false;
}

/*
 * After a (re)connect the worker lists what it holds; the master answers where each of those
 * tasks stands (durable counts, its status, a pending cancel) and settles the tasks it thought
 * the node had but the node no longer knows: never started -> back to the queue; started ->
 * error, since its process and unsent output are gone with the worker.
 */
static void on_resync(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct tasks *t = ctx;
    const Grpc__NodeServiceResyncRequest *req = (const void *)msg; /* validated */
    struct node *node = caller_node(t, c, req->node_key);
    if (!node)
        return;
    struct row_list h = {0};
    static const enum task_status held_states[] = {TASK_ASSIGNED, TASK_RUNNING,
                                                   TASK_NODE_DISCONNECTED};
    for (size_t i = 0; i < sizeof(held_states) / sizeof(held_states[0]); i++)
        store_task_list_by_node(t->m->store, node->key, held_states[i], collect_held, &h);
    for (size_t i = 0; i < h.n; i++) {
        if (listed(req, h.rows[i].id))
            continue;
        if (h.rows[i].started_ms == 0)
            requeue(t, &h.rows[i], "its node came back without it");
        else
            change_status(t, &h.rows[i], TASK_ERROR, 0, STORE_NO_EXIT_CODE, "lost by worker");
    }
    free(h.rows);

    size_t n = req->n_tasks;
    Grpc__TaskCursor *cursors = n ? calloc(n, sizeof(*cursors)) : NULL;
    Grpc__TaskCursor **ptrs = n ? calloc(n, sizeof(*ptrs)) : NULL;
    if (n && (!cursors || !ptrs)) {
        free(cursors);
        free(ptrs);
        srv_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const Grpc__TaskState *st = req->tasks[i];
        struct task_row row;
        if (store_task_get(t->m->store, st->task_id, &row) < 0)
            continue;
        Grpc__TaskCursor *cur = &cursors[k];
        grpc__task_cursor__init(cur);
        cur->task_id = st->task_id;
        bool ours = strcmp(row.assigned_node, node->key) == 0;
        if (!ours && row.status == TASK_PENDING && worker_holds(st->status) &&
            (!row.node_key[0] || strcmp(row.node_key, node->key) == 0) &&
            store_task_assign(t->m->store, row.id, node->key, master_now_ms(t->m)) == 0) {
            /* Put back in the queue while its node was away, but that node had started it: it
             * stays there rather than run a second time elsewhere. */
            log_info("task %s stays with node %s, which had started it", row.id, node->key);
            node->active++;
            ours = true;
            row.status = TASK_ASSIGNED;
        }
        /* A task of another node is not this worker's to run: it gets cancelled. */
        cur->status = (char *)task_status_name(row.status);
        cur->log_lines = row.log_lines;
        cur->data_items = row.data_items;
        cur->cancel = !ours || row.cancel_requested || task_status_terminal(row.status);
        cur->force = !ours || row.cancel_force;
        ptrs[k++] = cur;
        store_task_row_free(&row);
    }
    Grpc__NodeServiceResyncResponse resp = GRPC__NODE_SERVICE_RESYNC_RESPONSE__INIT;
    resp.n_tasks = k;
    resp.tasks = ptrs;
    srv_call_reply(c, &resp.base);
    free(cursors);
    free(ptrs);
    log_debug("node %s resynced: it holds %zu task(s)", node->key, n);
}

/* ---- a node going offline, and the grace it gets ---- */

static int on_held_task_of_offline_node(void *ctx, const struct task_row *r)
{
    change_status(ctx, r, TASK_NODE_DISCONNECTED, 0, STORE_NO_EXIT_CODE, NULL);
    return 0;
}

/*
 * A node went offline: its tasks wait for it as node_disconnected -- the assigned ones too, since
 * the node may have started one whose 'running' report was lost. When it comes back, its resync
 * settles them; if it does not, the grace sweep does.
 */
static void on_node_offline(void *ctx, struct node *node)
{
    struct tasks *t = ctx;
    store_task_list_by_node(t->m->store, node->key, TASK_RUNNING, on_held_task_of_offline_node, t);
    store_task_list_by_node(t->m->store, node->key, TASK_ASSIGNED, on_held_task_of_offline_node, t);
}

/* A task that was never confirmed started waits this long for its node (at most the disconnect
 * grace) before it goes back to the queue. */
#define UNCONFIRMED_GRACE_MS 30000

struct grace_scan {
    int64_t started_deadline, unconfirmed_deadline;
    struct row_list expired;
};

static int collect_expired(void *ctx, const struct task_row *r)
{
    struct grace_scan *g = ctx;
    if (r->updated_ms > (r->started_ms ? g->started_deadline : g->unconfirmed_deadline))
        return 0;
    return row_list_add(&g->expired, r);
}

/* Tasks whose node stayed away too long: started ones end abnormal after --disconnect-grace,
 * never confirmed ones go back to the queue sooner. */
static void on_grace_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct tasks *t = w->data;
    int64_t now = master_now_ms(t->m);
    int64_t grace = (int64_t)t->m->cfg->disconnect_grace_ms;
    struct grace_scan g = {
        .started_deadline = now - grace,
        .unconfirmed_deadline = now - (grace < UNCONFIRMED_GRACE_MS ? grace : UNCONFIRMED_GRACE_MS),
    };
    store_task_list(t->m->store, task_status_name(TASK_NODE_DISCONNECTED), NULL, 0, collect_expired,
                    &g);
    for (size_t i = 0; i < g.expired.n; i++) {
        const struct task_row *r = &g.expired.rows[i];
        if (r->started_ms)
            change_status(t, r, TASK_ABNORMAL, 0, STORE_NO_EXIT_CODE,
                          "node did not come back within the disconnect grace");
        else
            requeue(t, r, "its node did not come back");
    }
    free(g.expired.rows);
}

static int count_held(void *ctx, const struct task_row *r)
{
    struct tasks *t = ctx;
    struct node *node = r->assigned_node[0] ? nodes_find(t->m->nodes, r->assigned_node) : NULL;
    if (node)
        node->active++;
    return 0;
}

int tasks_create(struct master *m, struct tasks **out)
{
    struct tasks *t = calloc(1, sizeof(*t));
    if (!t || hmap_init(&t->live) < 0) {
        free(t);
        return -ENOMEM;
    }
    t->m = m;
    static const enum task_status held[] = {TASK_ASSIGNED, TASK_RUNNING, TASK_NODE_DISCONNECTED};
    for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
        int rc = store_task_list(m->store, task_status_name(held[i]), NULL, 0, count_held, t);
        if (rc < 0) {
            tasks_destroy(t);
            return rc;
        }
    }
    nodes_on_offline(m->nodes, on_node_offline, t);
    double every = (double)m->cfg->disconnect_grace_ms / 10000.0;
    if (every > 5.0)
        every = 5.0;
    if (every < 0.1)
        every = 0.1;
    ev_timer_init(&t->grace_sweep, on_grace_sweep, every, every);
    t->grace_sweep.data = t;
    ev_timer_start(m->loop, &t->grace_sweep);
    *out = t;
    return 0;
}

void tasks_destroy(struct tasks *t)
{
    if (!t)
        return;
    ev_timer_stop(t->m->loop, &t->grace_sweep);
    struct hmap_entry *e, *tmp;
    hmap_foreach(&t->live, e, tmp)
    {
        struct live_task *lt = hmap_item(e, struct live_task, link);
        if (lt->cancel_stream) {
            srv_call_bind(lt->cancel_stream, NULL, NULL);
            srv_call_finish(lt->cancel_stream, GRPC_STATUS_UNAVAILABLE, "master stopping", NULL);
        }
        free(lt);
    }
    hmap_destroy(&t->live);
    free(t);
}

void tasks_add_methods(struct tasks *t, struct rpc_server *s)
{
    rpc_server_add_unary(s, "/grpc.TaskService/FetchTask",
                         &grpc__task_service_fetch_task_request__descriptor, on_fetch, t);
    rpc_server_add_unary(s, "/grpc.TaskService/ReportStatus",
                         &grpc__task_service_report_status_request__descriptor, on_report_status,
                         t);
    rpc_server_add_unary(s, "/grpc.TaskService/SendNotification",
                         &grpc__task_service_send_notification_request__descriptor,
                         on_send_notification, t);
    rpc_server_add_stream(s, "/grpc.TaskService/Subscribe", on_task_subscribe, t);
    rpc_server_add_unary(s, "/grpc.NodeService/Resync",
                         &grpc__node_service_resync_request__descriptor, on_resync, t);
}
