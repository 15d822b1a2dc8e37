#include "master/admin.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cron.h"
#include "core/rules.h"
#include "core/spider.h"
#include "master/clock.h"
#include "master/events.h"
#include "master/nodes.h"
#include "master/sched.h"
#include "master/purge.h"
#include "store/store.h"
#include "master/tasks.h"
#include "rpc/codec.h"
#include "runtime/log.h"
#include "entity/response.pb-c.h"
#include "services/admin_service.pb-c.h"
#include "runtime/array.h"
#include "runtime/list.h"

#include <jansson.h>

/* A chunk of a log or of results stays well under the 4 MiB message limit. */
#define CHUNK_BYTES (1u << 20)
/* How many of the ids an ambiguous prefix matches are named in the refusal. */
#define PREFIX_SHOWN 10

/* The struct of type that holds p as its member. */
#define owner_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

/* The entries of one page: up to limit of them, and up to LIMIT_PAGE_BYTES encoded. */
struct page {
    unsigned limit;
    size_t bytes;
    bool more; /* an entry was left out: there is a next page */
};

/* Whether an entry of `size` encoded bytes fits as entry number n (from 0): the first always
 * does, since no single entry comes near the message limit. */
static bool page_fits(struct page *pg, size_t n, size_t size)
{
    /* A repeated field costs its tag and length besides the entry. */
    size += 6;
    if (n >= pg->limit || (n > 0 && pg->bytes + size > LIMIT_PAGE_BYTES)) {
        pg->more = true;
        return false;
    }
    pg->bytes += size;
    return true;
}

static unsigned page_limit(uint32_t asked)
{
    return asked && asked < LIMIT_PAGE_ITEMS ? asked : LIMIT_PAGE_ITEMS;
}

/* A page's entries as a repeated message field holds them: an array of pointers to the n messages
 * of `size` bytes at items, which the caller frees. NULL for none, or when out of memory. */
static void *message_ptrs(void *items, size_t n, size_t size)
{
    void **ptrs = n ? calloc(n, sizeof(*ptrs)) : NULL;
    for (size_t i = 0; ptrs && i < n; i++)
        ptrs[i] = (char *)items + i * size;
    return ptrs;
}

/*
 * Labels in their joined form (core/rules.h) as a message's repeated field: *out is one block
 * holding the pointers and the strings, which the caller frees. 0 or -ENOMEM.
 */
static int labels_field(const char *text, char ***out, size_t *n)
{
    size_t len = strlen(text), count = len ? 1 : 0;
    for (const char *p = text; *p; p++)
        count += *p == '\n';
    char **ptrs = malloc(count * sizeof(*ptrs) + len + 1);
    if (!ptrs)
        return -ENOMEM;
    char *copy = (char *)(ptrs + count);
    memcpy(copy, text, len + 1);
    for (size_t i = 0; i < count; i++) {
        ptrs[i] = copy;
        copy += strcspn(copy, "\n");
        *copy++ = '\0';
    }
    *out = ptrs;
    *n = count;
    return 0;
}

/* A selector as the store keeps it, from a validated request (labels_valid: it fits). */
static void labels_text(char *const *labels, size_t n, char out[LIMIT_LABELS_TEXT_MAX + 1])
{
    labels_join(labels, n, out, LIMIT_LABELS_TEXT_MAX + 1);
}

/* The node `given` names (nodes_resolve). Returns OK, or the status to refuse with and why. */
static grpc_status_code resolve_node(struct admin *a, const char *given, struct node **out,
                                     char *why, size_t why_len)
{
    int rc = nodes_resolve(a->nodes, given, out, why, why_len);
    return rc == 0           ? GRPC_STATUS_OK
           : rc == -ENOTUNIQ ? GRPC_STATUS_INVALID_ARGUMENT
                             : GRPC_STATUS_NOT_FOUND;
}

struct node_list {
    struct admin *admin;
    Grpc__AdminNode *items;
    size_t n, cap;
    int err;
    struct page page;
};

/* The store knows every node ever seen; the registry knows who is connected right now. */
static int collect_node(void *ctx, const struct node_row *r)
{
    struct node_list *l = ctx;
    Grpc__AdminNode *items = array_grow(l->items, l->n, &l->cap, sizeof(*items), 64);
    if (!items)
        return -ENOMEM;
    l->items = items;
    Grpc__AdminNode *a = &l->items[l->n++];
    grpc__admin_node__init(a);
    a->key = strdup(r->key);
    a->name = strdup(r->name);
    a->version = strdup(r->version);
    a->max_runners = r->max_runners;
    a->last_seen_ms = r->last_seen_ms;
    struct node *live = nodes_find(l->admin->nodes, r->key);
    if (live && !nodes_held_here(l->admin->nodes, live))
        live = NULL; /* another master's: the store's row is the truth */
    bool online = live ? live->online
                       : store_shared(l->admin->store) && strcmp(r->status, STORE_NODE_ONLINE) == 0;
    if (live) {
        a->last_seen_ms = live->last_seen_ms;
        a->running = live->online ? live->running : 0;
    }
    a->status = strdup(online ? "online" : "offline");
    a->containment = strdup(live ? live->containment : "");
    a->state = strdup(r->state);
    if (!a->key || !a->name || !a->version || !a->status || !a->containment || !a->state ||
        labels_field(r->labels, &a->labels, &a->n_labels) < 0)
        return -ENOMEM;
    if (!page_fits(&l->page, l->n - 1, grpc__admin_node__get_packed_size(a)))
        return 1;
    return 0;
}

static void admin_node_free(Grpc__AdminNode *a)
{
    free(a->key);
    free(a->name);
    free(a->version);
    free(a->status);
    free(a->containment);
    free(a->state);
    free(a->labels);
}

static void node_list_free(struct node_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        admin_node_free(&l->items[i]);
    free(l->items);
}

/* Answers the nodes collected into l (one page, the token of the next one if any), or fails. */
static void reply_nodes(struct srv_call *c, struct node_list *l, int rc)
{
    Grpc__AdminNode **ptrs = rc == 0 ? message_ptrs(l->items, l->n, sizeof(*l->items)) : NULL;
    if (rc == 0 && l->n && !ptrs)
        rc = -ENOMEM;
    if (rc < 0) {
        srv_call_fail(c, codec_status_from_errno(rc), "cannot list nodes");
        return;
    }
    Grpc__AdminListNodesResponse resp = GRPC__ADMIN_LIST_NODES_RESPONSE__INIT;
    resp.n_nodes = l->n;
    resp.nodes = ptrs;
    if (l->page.more && l->n)
        resp.next_page_token = l->items[l->n - 1].key;
    srv_call_reply(c, &resp.base);
    free(ptrs);
}

/* A page of nodes: one more than the page holds is read, to know whether another page follows;
 * the token of the next page is the last key of this one. */
static void on_list_nodes(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct admin *a = ctx;
    const Grpc__AdminListNodesRequest *req = (const void *)msg; /* validated */
    struct node_list l = {.admin = a, .page = {.limit = page_limit(req->limit)}};
    int rc = store_node_page(a->store, req->page_token, l.page.limit + 1, collect_node, &l);
    if (rc == 1) {
        /* The entry that did not fit is the last one collected. */
        admin_node_free(&l.items[--l.n]);
        rc = 0;
    }
    reply_nodes(c, &l, rc);
    node_list_free(&l);
}

/* ---- ChangeNode ---- */

static int node_action_parse(const char *name, enum node_action *out)
{
    static const char *const names[] = {
        [NODE_ENABLE] = "enable",
        [NODE_DISABLE] = "disable",
        [NODE_DRAIN] = "drain",
        [NODE_REMOVE] = "remove",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (enum node_action)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* Answers the node (none after a removal). */
static void on_change_node(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct admin *a = ctx;
    const Grpc__AdminNodeRequest *req = (const void *)msg; /* validated */
    char why[512], key[LIMIT_NODE_KEY_MAX + 1];
    struct node *node;
    enum node_action action = NODE_ENABLE;
    node_action_parse(req->action, &action);
    grpc_status_code st = resolve_node(a, req->node, &node, why, sizeof(why));
    if (st != GRPC_STATUS_OK) {
        srv_call_fail(c, st, why);
        return;
    }
    if (action == NODE_REMOVE && (node->online || node->active)) {
        if (node->online)
            snprintf(why, sizeof(why), "node %s is online: stop its worker first", node->key);
        else
            snprintf(why, sizeof(why), "node %s holds %d tasks: wait until they end", node->key,
                     node->active);
        srv_call_fail(c, GRPC_STATUS_FAILED_PRECONDITION, why);
        return;
    }
    snprintf(key, sizeof(key), "%s", node->key); /* node is freed by a removal */
    int rc = nodes_change(a->nodes, node, action);
    if (rc < 0) {
        srv_call_fail(c, codec_status_from_errno(rc), "cannot change the node");
        return;
    }
    struct node_list l = {.admin = a, .page = {.limit = 1}};
    struct node_row row;
    rc = action == NODE_REMOVE ? 0 : store_node_get(a->store, key, &row);
    if (rc == 0 && action != NODE_REMOVE)
        rc = collect_node(&l, &row);
    reply_nodes(c, &l, rc);
    node_list_free(&l);
}

/* ---- SubmitTask ---- */

struct targets {
    const char **keys; /* borrowed from the node registry */
    size_t n, cap;
    const char *labels; /* the selector, joined form */
    const char *idle;   /* a named node that takes no task now, for the warning */
};

static void add_taker(void *ctx, struct node *node)
{
    struct targets *t = ctx;
    if (!nodes_takes(node, t->labels) || t->n == t->cap)
        return;
    t->keys[t->n++] = node->key;
}

/*
 * The nodes a submit names: the ones listed (each a known key or the name of one node), every
 * online, enabled node that has the labels, or none, which means any node. Returns OK, or the
 * status to refuse with and why.
 */
static grpc_status_code submit_targets(struct admin *a, const Grpc__AdminSubmitTaskRequest *req,
                                       struct targets *t, char *why, size_t why_len)
{
    t->cap = req->all_nodes ? nodes_count(a->nodes) : req->n_node_keys;
    if (t->cap && !(t->keys = calloc(t->cap, sizeof(*t->keys)))) {
        snprintf(why, why_len, "out of memory");
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    if (req->all_nodes) {
        nodes_foreach(a->nodes, add_taker, t);
        if (t->n == 0) {
            snprintf(why, why_len, "no node is online and enabled%s",
                     *t->labels ? " with those labels" : "");
            return GRPC_STATUS_FAILED_PRECONDITION;
        }
        return GRPC_STATUS_OK;
    }
    for (size_t i = 0; i < req->n_node_keys; i++) {
        struct node *node;
        grpc_status_code st = resolve_node(a, req->node_keys[i], &node, why, why_len);
        if (st != GRPC_STATUS_OK)
            return st;
        if (!nodes_takes(node, NULL))
            t->idle = node->key;
        t->keys[t->n++] = node->key;
    }
    return GRPC_STATUS_OK;
}

/* What submit warns about: a task that no node can take now waits in the queue. */
static void submit_warning(struct admin *a, const struct targets *t, char *out, size_t len)
{
    if (t->idle)
        snprintf(out, len, "node %s is not online and enabled: its task stays pending until it is",
                 t->idle);
    else if (t->n == 0 && !nodes_any_takes(a->nodes, t->labels))
        snprintf(out, len, "no online, enabled node%s: the task stays pending until one is",
                 *t->labels ? " has those labels" : "");
    else
        *out = '\0';
}

/* The validated TaskSpec's env as the JSON object the store keeps, or NULL when out of memory. */
static char *env_to_json(const Grpc__TaskSpec *spec)
{
    json_t *env = json_object();
    for (size_t i = 0; env && i < spec->n_env; i++)
        json_object_set_new(env, spec->env[i]->key, json_string(spec->env[i]->value));
    char *text = env ? json_dumps(env, JSON_COMPACT) : NULL;
    json_decref(env);
    return text;
}

/* The validated TaskSpec's priority; 0 on the wire is "not given". */
static int spec_priority(const Grpc__TaskSpec *spec)
{
    return spec->priority ? spec->priority : LIMIT_PRIORITY_DEFAULT;
}

/* The spider a submit names (NAME: its latest version) as NAME@VERSION and its archive's hash,
 * both "" for none. Returns OK, or the status and a message (into why) to refuse with. */
static grpc_status_code resolve_spider(struct admin *a, const char *ref,
                                       char resolved[LIMIT_SPIDER_NAME_MAX + 12],
                                       char sha256[SPIDER_SHA256_HEX + 1], char *why,
                                       size_t why_len)
{
    *resolved = *sha256 = '\0';
    char name[LIMIT_SPIDER_NAME_MAX + 1];
    uint32_t version;
    if (!*ref || !spider_ref_parse(ref, name, &version)) /* validated */
        return GRPC_STATUS_OK;
    struct spider_row r;
    int rc = store_spider_get(a->store, name, version, &r);
    if (rc < 0) {
        snprintf(why, why_len, rc == -ENOENT ? "spec.spider: no spider %s" : "cannot look up %s",
                 ref);
        return codec_status_from_errno(rc);
    }
    snprintf(resolved, LIMIT_SPIDER_NAME_MAX + 12, "%s@%u", r.name, r.version);
    memcpy(sha256, r.sha256, SPIDER_SHA256_HEX + 1);
    return GRPC_STATUS_OK;
}

static void on_submit(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct admin *a = ctx;
    const Grpc__AdminSubmitTaskRequest *req = (const void *)msg; /* validated */
    const Grpc__TaskSpec *spec = req->spec;
    char spider[LIMIT_SPIDER_NAME_MAX + 12], sha256[SPIDER_SHA256_HEX + 1], spider_why[160];
    grpc_status_code st =
        resolve_spider(a, spec->spider, spider, sha256, spider_why, sizeof(spider_why));
    if (st != GRPC_STATUS_OK) {
        srv_call_fail(c, st, spider_why);
        return;
    }
    char *env_json = env_to_json(spec);
    if (!env_json) {
        srv_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    char labels[LIMIT_LABELS_TEXT_MAX + 1], why[512], warning[256];
    labels_text(req->labels, req->n_labels, labels);
    struct targets t = {.labels = labels};
    st = submit_targets(a, req, &t, why, sizeof(why));
    size_t n_tasks = t.n ? t.n : 1;
    char(*ids)[TASK_ID_LEN + 1] = NULL;
    char **id_ptrs = NULL;
    if (st == GRPC_STATUS_OK && (!(ids = calloc(n_tasks, sizeof(*ids))) ||
                                 !(id_ptrs = calloc(n_tasks, sizeof(*id_ptrs))))) {
        st = GRPC_STATUS_RESOURCE_EXHAUSTED;
        snprintf(why, sizeof(why), "out of memory");
    }
    for (size_t i = 0; st == GRPC_STATUS_OK && i < n_tasks; i++) {
        struct task_new tn = {
            .name = spec->name,
            .cmd = spec->cmd,
            .param = spec->param,
            .env_json = env_json,
            .priority = spec_priority(spec),
            .timeout_ms = spec->timeout_ms,
            .node_key = t.n ? t.keys[i] : NULL,
            .labels = t.n ? NULL : labels, /* a task for a named node is that node's */
            .retries = (int)req->retries,
            .retry_delay_ms = req->retry_delay_ms,
            .spider = spider,
            .spider_sha256 = sha256,
        };
        int rc = tasks_submit(a->tasks, &tn, ids[i]);
        if (rc < 0) {
            st = codec_status_from_errno(rc);
            snprintf(why, sizeof(why), "cannot store the task");
        }
        id_ptrs[i] = ids[i];
    }
    if (st == GRPC_STATUS_OK) {
        Grpc__AdminSubmitTaskResponse resp = GRPC__ADMIN_SUBMIT_TASK_RESPONSE__INIT;
        resp.n_task_ids = n_tasks;
        resp.task_ids = id_ptrs;
        submit_warning(a, &t, warning, sizeof(warning));
        resp.warning = warning;
        srv_call_reply(c, &resp.base);
    } else {
        srv_call_fail(c, st, why);
    }
    free(ids);
    free(id_ptrs);
    free(t.keys);
    free(env_json);
}

/* ---- ListTasks ---- */

struct task_list {
    Grpc__AdminTask *items;
    size_t n, cap;
    struct page page;
    struct task_pos last; /* the position of the last task in the page */
};

static void admin_task_free(Grpc__AdminTask *a)
{
    free(a->id);
    free(a->name);
    free(a->cmd);
    free(a->param);
    free(a->status);
    free(a->node_key);
    free(a->assigned_node);
    free(a->error);
    free(a->labels);
    free(a->restart_of);
    free(a->retry_of);
    free(a->spider);
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

static int collect_task(void *ctx, const struct task_row *r, const struct task_pos *pos)
{
    struct task_list *l = ctx;
    Grpc__AdminTask *items = array_grow(l->items, l->n, &l->cap, sizeof(*items), 64);
    if (!items)
        return -ENOMEM;
    l->items = items;
    Grpc__AdminTask *a = &l->items[l->n++];
    grpc__admin_task__init(a);
    a->id = dup_or_empty(r->id);
    a->name = dup_or_empty(r->name);
    a->cmd = dup_or_empty(r->cmd);
    a->param = dup_or_empty(r->param);
    a->status = dup_or_empty(task_status_name(r->status));
    a->node_key = dup_or_empty(r->node_key);
    a->assigned_node = dup_or_empty(r->assigned_node);
    a->error = dup_or_empty(r->error);
    a->spider = dup_or_empty(r->spider);
    a->priority = r->priority;
    a->timeout_ms = r->timeout_ms;
    a->pid = r->pid;
    a->exit_code = r->exit_code == STORE_NO_EXIT_CODE ? 0 : r->exit_code;
    a->log_lines = r->log_lines;
    a->data_items = r->data_items;
    a->created_ms = r->created_ms;
    a->started_ms = r->started_ms;
    a->ended_ms = r->ended_ms;
    a->restart_of = dup_or_empty(r->restart_of);
    a->retry_of = dup_or_empty(r->retry_of);
    a->attempt = (uint32_t)r->attempt;
    a->retries = (uint32_t)r->retries;
    a->retry_delay_ms = r->retry_delay_ms;
    a->eligible_ms = r->eligible_ms;
    if (!a->id || !a->name || !a->cmd || !a->param || !a->status || !a->node_key ||
        !a->assigned_node || !a->error || !a->restart_of || !a->retry_of || !a->spider ||
        labels_field(r->labels, &a->labels, &a->n_labels) < 0)
        return -ENOMEM;
    if (!page_fits(&l->page, l->n - 1, grpc__admin_task__get_packed_size(a))) {
        admin_task_free(a);
        l->n--;
        return 1;
    }
    l->last = *pos;
    return 0;
}

static void task_list_free(struct task_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        admin_task_free(&l->items[i]);
    free(l->items);
}

/* The task a full id or a unique prefix names, into id. Returns OK, or the status and a message
 * (into why) to refuse with: NOT_FOUND for no task, INVALID_ARGUMENT naming the ids that an
 * ambiguous prefix matches. */
static grpc_status_code resolve_task(struct admin *a, const char *given, char id[TASK_ID_LEN + 1],
                                     char *why, size_t why_len)
{
    char ids[PREFIX_SHOWN][TASK_ID_LEN + 1];
    int n = store_task_find_prefix(a->store, given, ids, PREFIX_SHOWN);
    if (n < 0) {
        snprintf(why, why_len, "cannot look the task up");
        return codec_status_from_errno(n);
    }
    if (n == 0) {
        snprintf(why, why_len, "unknown task");
        return GRPC_STATUS_NOT_FOUND;
    }
    if (n == 1) {
        memcpy(id, ids[0], TASK_ID_LEN + 1);
        return GRPC_STATUS_OK;
    }
    int len = snprintf(why, why_len, "task id prefix %s is ambiguous: it matches", given);
    for (int i = 0; i < n && i < PREFIX_SHOWN && len > 0 && (size_t)len < why_len; i++)
        len += snprintf(why + len, why_len - (size_t)len, "%s %s", i ? "," : "", ids[i]);
    if (n > PREFIX_SHOWN && len > 0 && (size_t)len < why_len)
        snprintf(why + len, why_len - (size_t)len, " and more");
    return GRPC_STATUS_INVALID_ARGUMENT;
}

/* The task a request names (resolve_task), into id; false when there is none, after failing the
 * call with the reason. */
static bool resolve_task_or_fail(struct srv_call *c, struct admin *a, const char *given,
                                 char id[TASK_ID_LEN + 1])
{
    char why[512];
    grpc_status_code st = resolve_task(a, given, id, why, sizeof(why));
    if (st != GRPC_STATUS_OK)
        srv_call_fail(c, st, why);
    return st == GRPC_STATUS_OK;
}

/* The page token of ListTasks: the position of the last task of the page, "created_ms.rowid". */
static int parse_page_token(const char *s, struct task_pos *out)
{
    int64_t created, rowid;
    int used = 0;
    if (sscanf(s, "%" SCNd64 ".%" SCNd64 "%n", &created, &rowid, &used) != 2 || s[used] != '\0')
        return -EINVAL;
    out->created_ms = created;
    out->rowid = rowid;
    return 0;
}

/* Where a page starts: after the page token's position, or after the task `before` names, or
 * at the newest task (*start NULL). */
static grpc_status_code list_start(struct admin *a, const Grpc__AdminListTasksRequest *req,
                                   struct task_pos *pos, struct task_pos **start, char *why,
                                   size_t why_len)
{
    *start = NULL;
    if (*req->page_token) {
        if (parse_page_token(req->page_token, pos) < 0) {
            snprintf(why, why_len, "page_token: not a token of this master");
            return GRPC_STATUS_INVALID_ARGUMENT;
        }
        *start = pos;
        return GRPC_STATUS_OK;
    }
    if (!*req->before)
        return GRPC_STATUS_OK;
    char id[TASK_ID_LEN + 1];
    grpc_status_code st = resolve_task(a, req->before, id, why, why_len);
    if (st != GRPC_STATUS_OK)
        return st;
    int rc = store_task_pos(a->store, id, pos);
    if (rc < 0) {
        snprintf(why, why_len, "cannot look the task up");
        return codec_status_from_errno(rc);
    }
    *start = pos;
    return GRPC_STATUS_OK;
}

/* A page of tasks, newest first. One more task than the page holds is read, to know whether
 * another page follows; the next page token is the position of this page's last task, which
 * stays valid if that task is purged meanwhile. */
static void on_list_tasks(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct admin *a = ctx;
    const Grpc__AdminListTasksRequest *req = (const void *)msg; /* validated */
    struct task_list l = {.page = {.limit = page_limit(req->limit)}};
    struct task_pos pos, *start;
    char why[512];
    grpc_status_code st = list_start(a, req, &pos, &start, why, sizeof(why));
    if (st != GRPC_STATUS_OK) {
        srv_call_fail(c, st, why);
        return;
    }
    int rc = store_task_page(a->store, *req->status ? req->status : NULL,
                             *req->node_key ? req->node_key : NULL, start, l.page.limit + 1,
                             collect_task, &l);
    if (rc == 1)
        rc = 0;
    Grpc__AdminTask **ptrs = message_ptrs(l.items, l.n, sizeof(*l.items));
    if (rc < 0 || (l.n && !ptrs)) {
        srv_call_fail(c, GRPC_STATUS_UNAVAILABLE, "cannot list tasks");
    } else {
        Grpc__AdminListTasksResponse resp = GRPC__ADMIN_LIST_TASKS_RESPONSE__INIT;
        resp.n_tasks = l.n;
        resp.tasks = ptrs;
        char token[LIMIT_PAGE_TOKEN_MAX + 1];
        if (l.page.more && l.n) {
            snprintf(token, sizeof(token), "%" PRId64 ".%" PRId64, l.last.created_ms, l.last.rowid);
            resp.next_page_token = token;
        }
        srv_call_reply(c, &resp.base);
    }
    free(ptrs);
    task_list_free(&l);
}

/* ---- CancelTask ---- */

static void on_cancel(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct admin *a = ctx;
    const Grpc__AdminTaskRequest *req = (const void *)msg; /* validated */
    char id[TASK_ID_LEN + 1];
    if (!resolve_task_or_fail(c, a, req->task_id, id))
        return;
    enum task_status after;
    int rc = tasks_cancel(a->tasks, id, req->force, &after);
    if (rc < 0) {
        srv_call_fail(c, codec_status_from_errno(rc),
                      rc == -ENOENT ? "unknown task" : "cannot cancel");
        return;
    }
    char text[128];
    if (after == TASK_CANCELLED)
        snprintf(text, sizeof(text), "cancelled");
    else if (task_status_terminal(after))
        snprintf(text, sizeof(text), "task already ended: %s", task_status_name(after));
    else
        snprintf(text, sizeof(text), "cancel%s sent to the task's worker",
                 req->force ? " (force)" : "");
    Grpc__Response resp = GRPC__RESPONSE__INIT;
    resp.code = GRPC__RESPONSE_CODE__OK;
    resp.message = text;
    srv_call_reply(c, &resp.base);
}

/* ---- RestartTask ---- */

static void on_restart(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct admin *a = ctx;
    const Grpc__AdminTaskRequest *req = (const void *)msg; /* validated */
    char id[TASK_ID_LEN + 1];
    if (!resolve_task_or_fail(c, a, req->task_id, id))
        return;
    char nid[TASK_ID_LEN + 1];
    int rc = tasks_restart(a->tasks, id, nid);
    if (rc < 0) {
        srv_call_fail(c, codec_status_from_errno(rc),
                      rc == -ENOENT ? "unknown task" : "cannot store the task");
        return;
    }
    char *ids[] = {nid};
    Grpc__AdminSubmitTaskResponse resp = GRPC__ADMIN_SUBMIT_TASK_RESPONSE__INIT;
    resp.n_task_ids = 1;
    resp.task_ids = ids;
    srv_call_reply(c, &resp.base);
}

/* ---- ReadLogs / ReadResults: a pump that sends stored data in chunks ---- */

/*
 * Feeds: the server streams that send what is stored page after page and, caught up, wait for
 * more: ReadLogs and ReadResults (a task's lines) and ReadEvents. Each reads one request, then
 * writes one page at a time (the next one when the last was sent), and ends when its source says
 * so, when a write fails or when the client leaves. The kinds differ only in their ops.
 *
 * When the master stops (admin_stop), a feed that follows ends UNAVAILABLE once it has sent
 * what is stored, where it would otherwise wait for news until the server's grace is over. Its
 * client goes on from its last line with another master, if it knows one. Until then it keeps
 * going, within the grace, like a feed that only reads what is stored: a follower of a task that
 * has ended reads to the end.
 */
struct feed;

struct feed_ops {
    const ProtobufCMessageDescriptor *request;
    /* Takes the decoded request: GRPC_STATUS_OK, or the status to refuse it with and why. */
    grpc_status_code (*start)(struct feed *f, const ProtobufCMessage *req, char *why, size_t len);
    /* Sends the next page (feed_write), or ends the feed (feed_end), or waits for news. */
    void (*pump)(struct feed *f);
    /* Stops waiting for news, if it waits. */
    void (*unwatch)(struct feed *f);
    /* Releases the feed, which was unwatched. */
    void (*free)(struct feed *f);
};

struct feed {
    const struct feed_ops *ops;
    struct admin *a;
    struct srv_call *call; /* NULL once the feed ended */
    struct list_link link; /* in a->feeds, from feed_open to on_free */
    bool follows;          /* waits for news once caught up: set by ops->start */
};

/* Ends the stream with st, last (may be NULL) as its final message. */
static void feed_end(struct feed *f, grpc_status_code st, const char *why, grpc_byte_buffer *last)
{
    f->ops->unwatch(f);
    struct srv_call *c = f->call;
    f->call = NULL;
    if (c)
        srv_call_finish(c, st, why, last);
    else if (last)
        grpc_byte_buffer_destroy(last);
}

/* May the pump write? Not after the end, nor while a write is in flight. */
static bool feed_ready(const struct feed *f)
{
    return f->call && !srv_call_write_pending(f->call);
}

/* Called by a pump caught up with what is stored, before it waits for news: a stopping master's
 * feed ends instead (see above); true when it did. */
static bool feed_stopped(struct feed *f)
{
    if (!f->a->stopping)
        return false;
    feed_end(f, GRPC_STATUS_UNAVAILABLE, "master stopping", NULL);
    return true;
}

static void feed_on_sent(struct srv_call *c, bool ok)
{
    struct feed *f = srv_call_user(c);
    if (!ok)
        feed_end(f, GRPC_STATUS_CANCELLED, "write failed", NULL);
    else
        f->ops->pump(f);
}

static void feed_on_done(struct srv_call *c, bool cancelled)
{
    feed_end(srv_call_user(c), GRPC_STATUS_CANCELLED, "client went away", NULL);
}

static void feed_on_free(struct srv_call *c)
{
    struct feed *f = srv_call_user(c);
    list_unlink(&f->link);
    f->ops->unwatch(f);
    f->ops->free(f);
}

static const struct srv_handler feed_handler = {
    .on_sent = feed_on_sent,
    .on_done = feed_on_done,
    .on_free = feed_on_free,
};

static void feed_on_request(struct srv_call *c, grpc_byte_buffer *msg)
{
    struct feed *f = srv_call_user(c);
    ProtobufCMessage *pm = NULL;
    const char *why;
    int rc = srv_call_decode(c, msg, f->ops->request, &pm, &why);
    if (rc < 0) {
        feed_end(f, codec_status_from_errno(rc), why, NULL);
        return;
    }
    char why_text[512];
    grpc_status_code st = f->ops->start(f, pm, why_text, sizeof(why_text));
    protobuf_c_message_free_unpacked(pm, NULL);
    if (st != GRPC_STATUS_OK) {
        feed_end(f, st, why_text, NULL);
        return;
    }
    srv_call_bind(c, &feed_handler, f);
    f->ops->pump(f);
}

static const struct srv_handler feed_request_handler = {
    .on_message = feed_on_request,
    .on_free = feed_on_free,
};

/* Starts feed f (allocated by the caller, its ops set) on call c: reads the request. */
static void feed_open(struct srv_call *c, struct admin *a, struct feed *f)
{
    f->a = a;
    f->call = c;
    list_push(&a->feeds, &f->link);
    srv_call_bind(c, &feed_request_handler, f);
    srv_call_read(c);
}

void admin_stop(struct admin *a)
{
    a->stopping = true;
    list_foreach(f, a->feeds, struct feed, link)
    {
        /* A follower with no page in flight waits for news; one sending goes on until it would
         * (its pump calls feed_stopped). feed_end frees nothing. */
        if (f->call && f->follows && !srv_call_write_pending(f->call))
            feed_stopped(f);
    }
}

/* ---- ReadLogs, ReadResults: a task's lines, in chunks ---- */

struct reader {
    struct feed feed; /* first */
    struct task_watcher watcher;
    char task_id[TASK_ID_LEN + 1];
    bool items, watching;
    uint64_t next_seq;
    /* The chunk being filled. */
    char **lines;
    size_t n, cap, bytes;
};

static int add_line(void *ctx, uint64_t seq, const char *line, size_t len)
{
    struct reader *r = ctx;
    /* A chunk of one line must still fit in a message. Our worker cuts log lines at 1 MiB and
     * items are stored within LIMIT_ITEM_MAX, but another worker may have sent a log line of
     * nearly 4 MiB in one INSERT_LOGS: it is shown cut at LIMIT_ITEM_MAX, on a character
     * boundary. */
    if (len > LIMIT_ITEM_MAX) {
        len = LIMIT_ITEM_MAX;
        while (len > 0 && ((unsigned char)line[len] & 0xc0) == 0x80)
            len--;
    }
    if (r->n && r->bytes + len > CHUNK_BYTES)
        return 1; /* full: the rest goes in the next chunk */
    char **lines = array_grow(r->lines, r->n, &r->cap, sizeof(*lines), 256);
    if (!lines)
        return -ENOMEM;
    r->lines = lines;
    /* The line goes out as a protobuf string, which ends at a NUL. ingest_batch_parse stores no
     * NUL in a line or an item; a log written by a master from before that rule may still hold
     * one, and such a line is cut there. */
    if (!(r->lines[r->n] = strndup(line, len)))
        return -ENOMEM;
    r->n++;
    r->bytes += len + 8;
    r->next_seq = seq + 1;
    return 0;
}

static void chunk_clear(struct reader *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->lines[i]);
    r->n = r->bytes = 0;
}

static void reader_unwatch(struct feed *f)
{
    struct reader *r = (struct reader *)f;
    if (r->watching)
        tasks_unwatch(f->a->tasks, r->task_id, &r->watcher);
    r->watching = false;
}

static void reader_free(struct feed *f)
{
    struct reader *r = (struct reader *)f;
    chunk_clear(r);
    free(r->lines);
    free(r);
}

/* Sends the next chunk, or the final one, or waits for the task to change. */
static void reader_pump(struct feed *f)
{
    struct reader *r = (struct reader *)f;
    if (!feed_ready(f))
        return;
    struct task_row row;
    int rc = store_task_get(f->a->store, r->task_id, &row);
    if (rc < 0) {
        feed_end(f, codec_status_from_errno(rc), rc == -ENOENT ? "unknown task" : "cannot read",
                 NULL);
        return;
    }
    bool ended = task_status_terminal(row.status);
    Grpc__AdminChunk chunk = GRPC__ADMIN_CHUNK__INIT;
    chunk.status = (char *)task_status_name(row.status);
    store_task_row_free(&row);

    rc = r->items ? store_items_read(f->a->store, r->task_id, r->next_seq, add_line, r)
                  : store_log_read(f->a->store, r->task_id, r->next_seq, add_line, r);
    if (rc < 0) {
        chunk_clear(r);
        feed_end(f, GRPC_STATUS_UNAVAILABLE, "cannot read the stored data", NULL);
        return;
    }
    bool more = rc > 0;
    chunk.n_lines = r->n;
    chunk.lines = r->lines;
    /* Done when everything is sent and no more can come (or nobody asked to follow). */
    chunk.done = !more && (ended || !f->follows);
    if (chunk.n_lines == 0 && !chunk.done) {
        if (feed_stopped(f))
            return;
        if (!r->watching) {
            if (tasks_watch(f->a->tasks, r->task_id, &r->watcher) < 0) {
                feed_end(f, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
                return;
            }
            r->watching = true;
        }
        return;
    }
    grpc_byte_buffer *bb = codec_pack(&chunk.base);
    chunk_clear(r);
    if (chunk.done)
        feed_end(f, GRPC_STATUS_OK, NULL, bb);
    else
        srv_call_write(f->call, bb);
}

static void reader_on_change(struct task_watcher *w)
{
    reader_pump(&owner_of(w, struct reader, watcher)->feed);
}

static grpc_status_code reader_start(struct feed *f, const ProtobufCMessage *msg, char *why,
                                     size_t len)
{
    struct reader *r = (struct reader *)f;
    const Grpc__AdminTaskRequest *req = (const void *)msg;
    grpc_status_code st = resolve_task(f->a, req->task_id, r->task_id, why, len);
    f->follows = req->follow && !r->items;
    r->next_seq = req->from ? req->from : 1;
    return st;
}

static const struct feed_ops reader_ops = {
    .request = &grpc__admin_task_request__descriptor,
    .start = reader_start,
    .pump = reader_pump,
    .unwatch = reader_unwatch,
    .free = reader_free,
};

static void start_reader(struct srv_call *c, struct admin *a, bool items)
{
    struct reader *r = calloc(1, sizeof(*r));
    if (!r) {
        srv_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    r->feed.ops = &reader_ops;
    r->items = items;
    r->watcher.on_change = reader_on_change;
    feed_open(c, a, &r->feed);
}

static void on_read_logs(struct srv_call *c, void *ctx)
{
    start_reader(c, ctx, false);
}

static void on_read_results(struct srv_call *c, void *ctx)
{
    start_reader(c, ctx, true);
}

/* ---- Schedules ---- */

struct sched_list {
    Grpc__AdminSchedule *items;
    size_t n, cap;
    int64_t only;  /* 0 = every schedule, one page of them */
    int64_t after; /* the page starts after this id */
    struct page page;
    int64_t now_s;
    struct sched *sched;
};

static int collect_schedule(void *ctx, const struct schedule_row *r)
{
    struct sched_list *l = ctx;
    if (l->only ? r->id != l->only : r->id <= l->after)
        return 0;
    Grpc__AdminSchedule *items = array_grow(l->items, l->n, &l->cap, sizeof(*items), 16);
    if (!items)
        return -ENOMEM;
    l->items = items;
    Grpc__AdminSchedule *a = &l->items[l->n++];
    grpc__admin_schedule__init(a);
    char tz[8];
    a->id = r->id;
    a->name = dup_or_empty(r->name);
    a->expr = dup_or_empty(r->expr);
    a->tz = dup_or_empty(r->tz_name[0] ? r->tz_name : cron_offset_text(r->tz_offset, tz));
    a->cmd = dup_or_empty(r->cmd);
    a->node_key = dup_or_empty(r->node_key);
    a->overlap = dup_or_empty(cron_overlap_name(r->overlap));
    a->missed = dup_or_empty(cron_missed_name(r->missed));
    a->last_task = dup_or_empty(r->last_task);
    a->spider = dup_or_empty(r->spider);
    a->priority = r->priority;
    a->timeout_ms = r->timeout_ms;
    a->paused = r->paused;
    a->last_fire_s = r->last_fire_s;
    a->created_ms = r->created_ms;
    a->retries = (uint32_t)r->retries;
    a->retry_delay_ms = r->retry_delay_ms;
    a->all_nodes = r->all_nodes;
    a->next_fire_s = sched_next_fire(l->sched, r, l->now_s, &a->next_fire_utc_offset);
    if (!a->name || !a->expr || !a->tz || !a->cmd || !a->node_key || !a->overlap || !a->missed ||
        !a->last_task || !a->spider || labels_field(r->labels, &a->labels, &a->n_labels) < 0)
        return -ENOMEM;
    if (!l->only && !page_fits(&l->page, l->n - 1, grpc__admin_schedule__get_packed_size(a))) {
        l->n--; /* the page is full: this one starts the next (sched_list_free frees it) */
        return 1;
    }
    return 0;
}

static void sched_list_free(struct sched_list *l)
{
    /* The entry that did not fit the page, if any, is the one past l->n. */
    if (l->page.more)
        l->n++;
    for (size_t i = 0; i < l->n; i++) {
        Grpc__AdminSchedule *a = &l->items[i];
        free(a->name);
        free(a->expr);
        free(a->tz);
        free(a->cmd);
        free(a->node_key);
        free(a->overlap);
        free(a->missed);
        free(a->last_task);
        free(a->labels);
        free(a->spider);
    }
    free(l->items);
}

/* Replies with the schedules: one of them (only; NOT_FOUND when it is unknown), or with only 0 the
 * page of them after the id page_token names. */
static void reply_schedules(struct srv_call *c, struct admin *a, int64_t only,
                            const char *page_token)
{
    struct sched_list l = {.only = only,
                           .after = page_token ? strtoll(page_token, NULL, 10) : 0, /* validated */
                           .page = {.limit = LIMIT_PAGE_ITEMS},
                           .now_s = clock_now_ms(a->loop) / 1000,
                           .sched = a->sched};
    int rc = store_schedule_list(a->store, collect_schedule, &l);
    if (rc == 1)
        rc = 0;
    Grpc__AdminSchedule **ptrs = message_ptrs(l.items, l.n, sizeof(*l.items));
    char token[24] = "";
    if (rc < 0 || (l.n && !ptrs)) {
        srv_call_fail(c, GRPC_STATUS_UNAVAILABLE, "cannot list schedules");
    } else if (only && l.n == 0) {
        srv_call_fail(c, GRPC_STATUS_NOT_FOUND, "unknown schedule");
    } else {
        Grpc__AdminListSchedulesResponse resp = GRPC__ADMIN_LIST_SCHEDULES_RESPONSE__INIT;
        resp.n_schedules = l.n;
        resp.schedules = ptrs;
        if (l.page.more && l.n)
            snprintf(token, sizeof(token), "%lld", (long long)l.items[l.n - 1].id);
        resp.next_page_token = token;
        srv_call_reply(c, &resp.base);
    }
    free(ptrs);
    sched_list_free(&l);
}

static void on_create_schedule(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct admin *a = ctx;
    const Grpc__AdminCreateScheduleRequest *req = (const void *)msg; /* validated */
    int32_t offset = 0;
    enum cron_overlap overlap = CRON_OVERLAP_SKIP;
    enum cron_missed missed = CRON_MISSED_RUN_ONCE;
    bool named = *req->tz && cron_parse_offset(req->tz, &offset) < 0; /* validated: a zone name */
    char why[512], labels[LIMIT_LABELS_TEXT_MAX + 1];
    const struct tz_zone *zone;
    if (named && sched_zone(a->sched, req->tz, &zone, why, sizeof(why)) < 0) {
        srv_call_fail(c, GRPC_STATUS_FAILED_PRECONDITION, why);
        return;
    }
    if (*req->overlap)
        cron_overlap_parse(req->overlap, &overlap);
    if (*req->missed)
        cron_missed_parse(req->missed, &missed);
    struct node *node = NULL;
    grpc_status_code st =
        *req->node_key ? resolve_node(a, req->node_key, &node, why, sizeof(why)) : GRPC_STATUS_OK;
    if (st != GRPC_STATUS_OK) {
        srv_call_fail(c, st, why);
        return;
    }
    labels_text(req->labels, req->n_labels, labels);
    char spider[LIMIT_SPIDER_NAME_MAX + 12], sha256[SPIDER_SHA256_HEX + 1];
    st = resolve_spider(a, req->spec->spider, spider, sha256, why, sizeof(why));
    if (st != GRPC_STATUS_OK) {
        srv_call_fail(c, st, why);
        return;
    }
    char *env_json = env_to_json(req->spec);
    if (!env_json) {
        srv_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    struct schedule_new n = {
        .name = req->spec->name,
        .expr = req->expr,
        .tz_offset = offset,
        .cmd = req->spec->cmd,
        .env_json = env_json,
        .priority = spec_priority(req->spec),
        .timeout_ms = req->spec->timeout_ms,
        .node_key = node ? node->key : NULL,
        .labels = labels,
        .overlap = overlap,
        .missed = missed,
        .retries = (int)req->retries,
        .retry_delay_ms = req->retry_delay_ms,
        .spider = req->spec->spider, /* as named: NAME is the latest version at each fire */
        .tz_name = named ? req->tz : NULL,
        .all_nodes = req->all_nodes,
    };
    int64_t id;
    int rc = store_schedule_create(a->store, &n, clock_now_ms(a->loop), &id);
    free(env_json);
    if (rc < 0) {
        srv_call_fail(c, codec_status_from_errno(rc), "cannot store the schedule");
        return;
    }
    log_info("schedule %lld added: %s%s%s%s", (long long)id, req->expr, *req->tz ? " in " : "",
             req->tz, req->all_nodes ? ", on all nodes" : "");
    sched_changed(a->sched);
    reply_schedules(c, a, id, NULL);
}

static void on_list_schedules(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    const Grpc__AdminScheduleRequest *req = (const void *)msg; /* validated */
    reply_schedules(c, ctx, req->id, req->page_token);
}

static void on_change_schedule(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct admin *a = ctx;
    const Grpc__AdminScheduleRequest *req = (const void *)msg; /* validated */
    int rc;
    bool removing = strcmp(req->action, "remove") == 0;
    if (removing)
        rc = store_schedule_delete(a->store, req->id);
    else if (strcmp(req->action, "pause") == 0 || strcmp(req->action, "resume") == 0)
        rc = store_schedule_set_paused(a->store, req->id, strcmp(req->action, "pause") == 0,
                                       clock_now_ms(a->loop) / 1000);
    else
        rc = -EINVAL;
    if (rc < 0) {
        srv_call_fail(c, codec_status_from_errno(rc),
                      rc == -ENOENT ? "unknown schedule" : "cannot change the schedule");
        return;
    }
    log_info("schedule %lld: %s", (long long)req->id, req->action);
    sched_changed(a->sched);
    if (removing) {
        Grpc__AdminListSchedulesResponse resp = GRPC__ADMIN_LIST_SCHEDULES_RESPONSE__INIT;
        srv_call_reply(c, &resp.base);
    } else {
        reply_schedules(c, a, req->id, NULL);
    }
}

/* ---- Metrics ---- */

static void on_metrics(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct admin *a = ctx;
    char *text = NULL;
    size_t len = 0;
    int rc = a->metrics_text ? a->metrics_text(a->metrics_ctx, &text, &len) : -ENOSYS;
    if (rc < 0) {
        srv_call_fail(c, codec_status_from_errno(rc), "cannot gather the metrics");
        return;
    }
    Grpc__AdminMetricsResponse resp = GRPC__ADMIN_METRICS_RESPONSE__INIT;
    resp.text = text;
    srv_call_reply(c, &resp.base);
    free(text);
}

/* ---- PurgeTasks ---- */

/* Answers how many tasks match now; the purger deletes them in the background. */
static void on_purge(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct admin *a = ctx;
    const Grpc__AdminPurgeTasksRequest *req = (const void *)msg; /* validated */
    uint64_t n = 0;
    int rc = store_task_count_purgeable(a->store, req->before_ms, &n);
    if (rc < 0) {
        srv_call_fail(c, codec_status_from_errno(rc), "cannot count the tasks to purge");
        return;
    }
    if (a->purge)
        purge_request(a->purge, req->before_ms);
    Grpc__AdminPurgeTasksResponse resp = GRPC__ADMIN_PURGE_TASKS_RESPONSE__INIT;
    resp.tasks = n;
    srv_call_reply(c, &resp.base);
}

/* ---- ReadEvents: the events after a cursor, in pages; a follower waits for commits ---- */

struct event_reader {
    struct feed feed; /* first */
    struct events_watcher watcher;
    int64_t after; /* the last event sent */
    uint64_t left; /* events still to send; UINT64_MAX: no limit */
    bool watching;
    /* The page being filled. */
    Grpc__AdminEvent *items;
    size_t n, cap;
    struct page page;
};

static void admin_event_free(Grpc__AdminEvent *a)
{
    free(a->kind);
    free(a->node_key);
    free(a->task_id);
    free(a->data);
}

static void event_page_clear(struct event_reader *r)
{
    for (size_t i = 0; i < r->n; i++)
        admin_event_free(&r->items[i]);
    r->n = 0;
}

static int collect_event(void *ctx, const struct event_row *e)
{
    struct event_reader *r = ctx;
    Grpc__AdminEvent *items = array_grow(r->items, r->n, &r->cap, sizeof(*items), 64);
    if (!items)
        return -ENOMEM;
    r->items = items;
    Grpc__AdminEvent *a = &r->items[r->n++];
    grpc__admin_event__init(a);
    a->id = (uint64_t)e->id;
    a->at_ms = e->at_ms;
    a->kind = strdup(e->kind);
    a->node_key = strdup(e->node_key);
    a->task_id = strdup(e->task_id);
    a->data = strdup(e->data);
    if (!a->kind || !a->node_key || !a->task_id || !a->data)
        return -ENOMEM;
    if (!page_fits(&r->page, r->n - 1, grpc__admin_event__get_packed_size(a))) {
        admin_event_free(a);
        r->n--;
        return 1;
    }
    return 0;
}

static void event_reader_unwatch(struct feed *f)
{
    struct event_reader *r = (struct event_reader *)f;
    if (r->watching)
        events_unwatch(f->a->events, &r->watcher);
    r->watching = false;
}

static void event_reader_free(struct feed *f)
{
    struct event_reader *r = (struct event_reader *)f;
    event_page_clear(r);
    free(r->items);
    free(r);
}

/* Sends the next page of committed events, or ends the stream, or waits for a commit. */
static void event_reader_pump(struct feed *f)
{
    struct event_reader *r = (struct event_reader *)f;
    if (!feed_ready(f))
        return;
    int64_t last = events_last(f->a->events);
    r->page =
        (struct page){.limit = page_limit(r->left < LIMIT_PAGE_ITEMS ? (uint32_t)r->left : 0)};
    int rc =
        r->left ? store_event_page(f->a->store, r->after, last, r->page.limit + 1, collect_event, r)
                : 0;
    Grpc__AdminEvent **ptrs = rc < 0 ? NULL : message_ptrs(r->items, r->n, sizeof(*r->items));
    if (rc < 0 || (r->n && !ptrs)) {
        event_page_clear(r);
        feed_end(f, GRPC_STATUS_UNAVAILABLE, "cannot read the events", NULL);
        return;
    }
    if (r->n == 0) {
        if (!f->follows || !r->left) {
            feed_end(f, GRPC_STATUS_OK, NULL, NULL);
        } else if (!feed_stopped(f) && !r->watching) {
            events_watch(f->a->events, &r->watcher);
            r->watching = true;
        }
        return;
    }
    Grpc__AdminEventsChunk chunk = GRPC__ADMIN_EVENTS_CHUNK__INIT;
    chunk.n_events = r->n;
    chunk.events = ptrs;
    r->after = (int64_t)r->items[r->n - 1].id;
    if (r->left != UINT64_MAX)
        r->left -= r->n;
    grpc_byte_buffer *bb = codec_pack(&chunk.base);
    free(ptrs);
    event_page_clear(r);
    /* Without follow, the last page ends the stream: nothing after it is committed yet. */
    if ((!f->follows && !r->page.more) || !r->left)
        feed_end(f, GRPC_STATUS_OK, NULL, bb);
    else
        srv_call_write(f->call, bb);
}

static void event_reader_on_new(struct events_watcher *w)
{
    event_reader_pump(&owner_of(w, struct event_reader, watcher)->feed);
}

static grpc_status_code event_reader_start(struct feed *f, const ProtobufCMessage *msg, char *why,
                                           size_t len)
{
    (void)why;
    (void)len;
    struct event_reader *r = (struct event_reader *)f;
    const Grpc__AdminEventsRequest *req = (const void *)msg; /* validated */
    r->after = (int64_t)req->after;
    r->left = req->limit ? req->limit : UINT64_MAX;
    f->follows = req->follow;
    return GRPC_STATUS_OK;
}

static const struct feed_ops event_reader_ops = {
    .request = &grpc__admin_events_request__descriptor,
    .start = event_reader_start,
    .pump = event_reader_pump,
    .unwatch = event_reader_unwatch,
    .free = event_reader_free,
};

static void on_read_events(struct srv_call *c, void *ctx)
{
    struct event_reader *r = calloc(1, sizeof(*r));
    if (!r) {
        srv_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    r->feed.ops = &event_reader_ops;
    r->watcher.on_new = event_reader_on_new;
    feed_open(c, ctx, &r->feed);
}

void admin_add_methods(struct admin *a, struct rpc_server *s)
{
    rpc_server_add_unary(s, "/grpc.AdminService/ListNodes", ROLE_ADMIN,
                         &grpc__admin_list_nodes_request__descriptor, on_list_nodes, a);
    rpc_server_add_unary(s, "/grpc.AdminService/SubmitTask", ROLE_ADMIN,
                         &grpc__admin_submit_task_request__descriptor, on_submit, a);
    rpc_server_add_unary(s, "/grpc.AdminService/ListTasks", ROLE_ADMIN,
                         &grpc__admin_list_tasks_request__descriptor, on_list_tasks, a);
    rpc_server_add_unary(s, "/grpc.AdminService/CancelTask", ROLE_ADMIN,
                         &grpc__admin_task_request__descriptor, on_cancel, a);
    rpc_server_add_unary(s, "/grpc.AdminService/RestartTask", ROLE_ADMIN,
                         &grpc__admin_task_request__descriptor, on_restart, a);
    rpc_server_add_stream(s, "/grpc.AdminService/ReadLogs", ROLE_ADMIN, on_read_logs, a);
    rpc_server_add_stream(s, "/grpc.AdminService/ReadResults", ROLE_ADMIN, on_read_results, a);
    rpc_server_add_unary(s, "/grpc.AdminService/CreateSchedule", ROLE_ADMIN,
                         &grpc__admin_create_schedule_request__descriptor, on_create_schedule, a);
    rpc_server_add_unary(s, "/grpc.AdminService/ListSchedules", ROLE_ADMIN,
                         &grpc__admin_schedule_request__descriptor, on_list_schedules, a);
    rpc_server_add_unary(s, "/grpc.AdminService/ChangeSchedule", ROLE_ADMIN,
                         &grpc__admin_schedule_request__descriptor, on_change_schedule, a);
    rpc_server_add_unary(s, "/grpc.AdminService/Metrics", ROLE_ADMIN,
                         &grpc__admin_metrics_request__descriptor, on_metrics, a);
    rpc_server_add_unary(s, "/grpc.AdminService/PurgeTasks", ROLE_ADMIN,
                         &grpc__admin_purge_tasks_request__descriptor, on_purge, a);
    rpc_server_add_unary(s, "/grpc.AdminService/ChangeNode", ROLE_ADMIN,
                         &grpc__admin_node_request__descriptor, on_change_node, a);
    rpc_server_add_stream(s, "/grpc.AdminService/ReadEvents", ROLE_ADMIN, on_read_events, a);
}
