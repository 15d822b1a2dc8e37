#include "rpc/validate.h"

#include <errno.h>
#include <string.h>

#include "core/cron.h"
#include "core/rules.h"
#include "core/spider.h"
#include "core/task.h"
#include "core/tz.h"
#include "runtime/utf8.h"

/* Sets the reason (when wanted) and returns the error, so that a rule reads as one statement. */
static int fail(const char **why, int err, const char *reason)
{
    if (why)
        *why = reason;
    return err;
}

static int ok(const char **why)
{
    if (why)
        *why = NULL;
    return 0;
}

int validate_json_values(const uint8_t *data, size_t n, size_t max, const char **why)
{
    /* The count below is at most n + 1: short data needs no scan. */
    if (n < max)
        return ok(why);
    size_t count = 1;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = data[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if ((c == ',' || c == '[' || c == '{') && ++count > max) {
            return fail(why, -EMSGSIZE, "data: too many JSON values in one message");
        }
    }
    return ok(why);
}

int validate_seq_span(uint64_t first_seq, size_t n, const char **why)
{
    if (first_seq == 0 || n == 0)
        return ok(why);
    if (first_seq > LIMIT_SAFE_INT_MAX || (uint64_t)n > LIMIT_SAFE_INT_MAX - (first_seq - 1))
        return fail(why, -ERANGE, "seq: the batch would end beyond 2^53 - 1");
    return ok(why);
}

/* What a string may hold besides being bounded UTF-8. */
enum text_kind {
    TEXT_ANY,  /* any characters: commands, env values, error texts */
    TEXT_LINE, /* one line of printable text: names, versions, labels */
};

/* 0, -EMSGSIZE (too long) or -EINVAL (not UTF-8, or not a text line for TEXT_LINE). */
static int text_check(const char *s, size_t max, enum text_kind kind)
{
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return -EMSGSIZE;
    bool good = kind == TEXT_LINE ? text_line_valid(s, max) : utf8_valid(s, n);
    return good ? 0 : -EINVAL;
}

/* A machine id follows the node key's rule (and bound), but may be empty: upstream workers have
 * none. */
static bool machine_id_valid(const char *s)
{
    return !*s || node_key_valid(s);
}

/* The statuses a worker reports; the others are the master's to set. */
static bool worker_status(const char *name)
{
    enum task_status s;
    if (task_status_parse(name, &s) < 0)
        return false;
    return s == TASK_RUNNING || s == TASK_FINISHED || s == TASK_ERROR || s == TASK_CANCELLED;
}

/* A worker's view of a task, in ReportStatus and Resync. any_status: Resync lists every task the
 * worker holds, whatever its status, and a task not started yet has none. */
static int task_state_check(const Grpc__TaskState *st, bool any_status, const char **why)
{
    if (!task_id_valid(st->task_id))
        return fail(why, -EINVAL, "state.task_id: expected 24 lowercase hex digits");
    enum task_status s;
    if (any_status) {
        if (*st->status && task_status_parse(st->status, &s) < 0)
            return fail(why, -EINVAL, "state.status: unknown status");
    } else if (!worker_status(st->status) && !(st->epoch && !strcmp(st->status, "pending"))) {
        return fail(why, -EINVAL,
                    "state.status: a worker reports running, finished, error or cancelled (or "
                    "pending with an epoch: a pushed task given back)");
    }
    if (st->log_lines > LIMIT_SAFE_INT_MAX || st->data_items > LIMIT_SAFE_INT_MAX)
        return fail(why, -ERANGE, "state: log_lines and data_items are at most 2^53 - 1");
    if (st->pid < 0)
        return fail(why, -ERANGE, "state.pid: negative");
    int rc = text_check(st->error, LIMIT_ERROR_MAX, TEXT_ANY);
    if (rc < 0)
        return fail(why, rc,
                    rc == -EMSGSIZE ? "state.error: longer than 4096 bytes"
                                    : "state.error: not valid UTF-8");
    return ok(why);
}

/* ---- NodeService ---- */

#define NODE_KEY_REASON "node_key: 1 to 64 of [A-Za-z0-9._:-]"
#define LABELS_REASON   "labels: " RULE_LABELS
/* Where a node is named by an admin: its key or its name (every key is a valid name). */
#define NODE_REASON "a node key or name, " RULE_NAME

int validate_register(const Grpc__NodeServiceRegisterRequest *r, const char **why)
{
    if (!node_key_valid(r->node_key))
        return fail(why, -EINVAL, NODE_KEY_REASON);
    int rc = text_check(r->node_name, LIMIT_NAME_MAX, TEXT_LINE);
    if (rc < 0)
        return fail(why, rc,
                    rc == -EMSGSIZE ? "node_name: longer than 128 bytes"
                                    : "node_name: not UTF-8, or holds control characters");
    rc = text_check(r->version, LIMIT_VERSION_MAX, TEXT_LINE);
    if (rc < 0)
        return fail(why, rc,
                    rc == -EMSGSIZE ? "version: longer than 32 bytes"
                                    : "version: not UTF-8, or holds control characters");
    if (!machine_id_valid(r->machine_id))
        return fail(why, -EINVAL, "machine_id: at most 64 of [A-Za-z0-9._:-]");
    if (r->max_runners < 0 || r->max_runners > LIMIT_RUNNERS_MAX)
        return fail(why, -ERANGE, "max_runners: 0 to 100000");
    if (r->n_labels > LIMIT_LABELS_MAX)
        return fail(why, -EMSGSIZE, "labels: more than " STR(LIMIT_LABELS_MAX));
    if (!labels_valid(r->labels, r->n_labels))
        return fail(why, -EINVAL, LABELS_REASON);
    rc = text_check(r->containment, LIMIT_VERSION_MAX, TEXT_LINE);
    if (rc < 0)
        return fail(why, rc,
                    rc == -EMSGSIZE ? "containment: longer than 32 bytes"
                                    : "containment: not UTF-8, or holds control characters");
    return ok(why);
}

int validate_heartbeat(const Grpc__NodeServiceSendHeartbeatRequest *r, const char **why)
{
    if (!node_key_valid(r->node_key))
        return fail(why, -EINVAL, NODE_KEY_REASON);
    if (r->running < 0 || r->running > LIMIT_RUNNERS_MAX)
        return fail(why, -ERANGE, "running: 0 to 100000");
    return ok(why);
}

int validate_node_subscribe(const Grpc__NodeServiceSubscribeRequest *r, const char **why)
{
    if (!node_key_valid(r->node_key))
        return fail(why, -EINVAL, NODE_KEY_REASON);
    return ok(why);
}

int validate_resync(const Grpc__NodeServiceResyncRequest *r, const char **why)
{
    if (!node_key_valid(r->node_key))
        return fail(why, -EINVAL, NODE_KEY_REASON);
    if (r->n_tasks > LIMIT_RESYNC_TASKS)
        return fail(why, -EMSGSIZE, "tasks: more than 100000");
    for (size_t i = 0; i < r->n_tasks; i++) {
        int rc = task_state_check(r->tasks[i], true, why);
        if (rc < 0)
            return rc;
    }
    return ok(why);
}

/* ---- TaskService ---- */

#define TASK_ID_REASON "task_id: expected 24 lowercase hex digits"

int validate_task_subscribe(const Grpc__TaskServiceSubscribeRequest *r, const char **why)
{
    if (!task_id_valid(r->task_id))
        return fail(why, -EINVAL, TASK_ID_REASON);
    return ok(why);
}

int validate_connect(const Grpc__TaskServiceConnectRequest *r, const char **why)
{
    switch (r->code) {
    case GRPC__TASK_SERVICE_CONNECT_CODE__PING:
        return ok(why);
    case GRPC__TASK_SERVICE_CONNECT_CODE__INSERT_DATA:
    case GRPC__TASK_SERVICE_CONNECT_CODE__INSERT_LOGS:
        break;
    default:
        return fail(why, -EINVAL, "code: expected INSERT_DATA, INSERT_LOGS or PING");
    }
    if (!task_id_valid(r->task_id))
        return fail(why, -EINVAL, TASK_ID_REASON);
    if (r->data.len > LIMIT_DATA_MAX)
        return fail(why, -EMSGSIZE, "data: larger than 4 MiB");
    if (r->seq > LIMIT_SAFE_INT_MAX)
        return fail(why, -ERANGE, "seq: at most 2^53 - 1");
    /* Items are parsed into a tree, which costs memory per value; log lines are read in place. */
    if (r->code == GRPC__TASK_SERVICE_CONNECT_CODE__INSERT_DATA)
        return validate_json_values(r->data.data, r->data.len, LIMIT_DATA_VALUES_MAX, why);
    return ok(why);
}

int validate_fetch(const Grpc__TaskServiceFetchTaskRequest *r, const char **why)
{
    if (!node_key_valid(r->node_key))
        return fail(why, -EINVAL, NODE_KEY_REASON);
    return ok(why);
}

int validate_notification(const Grpc__TaskServiceSendNotificationRequest *r, const char **why)
{
    /* Who notified is only recorded; an upstream worker that leaves the key out is heard. */
    if (*r->node_key && !node_key_valid(r->node_key))
        return fail(why, -EINVAL, "node_key: empty, or 1 to 64 of [A-Za-z0-9._:-]");
    if (!task_id_valid(r->task_id))
        return fail(why, -EINVAL, TASK_ID_REASON);
    return ok(why);
}

int validate_report_status(const Grpc__TaskServiceReportStatusRequest *r, const char **why)
{
    if (!node_key_valid(r->node_key))
        return fail(why, -EINVAL, NODE_KEY_REASON);
    if (!r->state)
        return fail(why, -EINVAL, "state: required");
    return task_state_check(r->state, false, why);
}

/* ---- AdminService ---- */

int validate_list_nodes(const Grpc__AdminListNodesRequest *r, const char **why)
{
    /* The master's page token for nodes is the last key of the page before. */
    if (*r->page_token && !node_key_valid(r->page_token))
        return fail(why, -EINVAL, "page_token: not a token of this master");
    return ok(why);
}

int validate_metrics(const Grpc__AdminMetricsRequest *r, const char **why)
{
    return ok(why);
}

/* A page token of ListTasks: digits and one '.', as the master writes them. */
static bool task_page_token_valid(const char *s)
{
    size_t n = strnlen(s, LIMIT_PAGE_TOKEN_MAX + 1);
    if (n > LIMIT_PAGE_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '-'))
            return false;
    return true;
}

/* A task's spider: none, or a reference; the hash is the master's to fill in, so a client may
 * leave it out, but what is given must be a hash. */
static int spider_ref_check(const char *ref, const char *sha256, const char **why)
{
    char name[LIMIT_SPIDER_NAME_MAX + 1];
    uint32_t version;
    if (*ref && !spider_ref_parse(ref, name, &version))
        return fail(why, -EINVAL, "spec.spider: " RULE_SPIDER_REF);
    if (*sha256 && !spider_sha256_valid(sha256))
        return fail(why, -EINVAL, "spec.spider_sha256: " RULE_SPIDER_SHA256);
    return ok(why);
}

static int spec_check(const Grpc__TaskSpec *spec, const char **why)
{
    if (!*spec->cmd)
        return fail(why, -EINVAL, "spec.cmd: required");
    int rc = text_check(spec->cmd, LIMIT_CMD_MAX, TEXT_ANY);
    if (rc < 0)
        return fail(why, rc,
                    rc == -EMSGSIZE ? "spec.cmd: longer than 64 KiB" : "spec.cmd: not valid UTF-8");
    rc = text_check(spec->param, LIMIT_CMD_MAX, TEXT_ANY);
    if (rc < 0)
        return fail(why, rc,
                    rc == -EMSGSIZE ? "spec.param: longer than 64 KiB"
                                    : "spec.param: not valid UTF-8");
    rc = text_check(spec->name, LIMIT_NAME_MAX, TEXT_LINE);
    if (rc < 0)
        return fail(why, rc,
                    rc == -EMSGSIZE ? "spec.name: longer than 128 bytes"
                                    : "spec.name: not UTF-8, or holds control characters");
    if (spec->timeout_ms < 0 || (uint64_t)spec->timeout_ms > LIMIT_SAFE_INT_MAX)
        return fail(why, -ERANGE, "spec.timeout_ms: 0 (none) to 2^53 - 1");
    /* 0 is proto3's "not given": the master uses LIMIT_PRIORITY_DEFAULT. */
    if (spec->priority != 0 && !priority_valid(spec->priority))
        return fail(why, -ERANGE, "spec.priority: 0 (not given: 5) or " RULE_PRIORITY);
    if (spec->n_env > LIMIT_ENV_MAX)
        return fail(why, -EMSGSIZE, "spec.env: more than 256 entries");
    for (size_t i = 0; i < spec->n_env; i++) {
        const Grpc__TaskSpec__EnvEntry *e = spec->env[i];
        if (!env_name_valid(e->key, strnlen(e->key, LIMIT_ENV_NAME_MAX + 1)))
            return fail(why, -EINVAL,
                        "spec.env: names are [A-Za-z_][A-Za-z0-9_]*, at most 256 bytes");
        rc = text_check(e->value, LIMIT_ENV_VALUE_MAX, TEXT_ANY);
        if (rc < 0)
            return fail(why, rc,
                        rc == -EMSGSIZE ? "spec.env: a value is longer than 64 KiB"
                                        : "spec.env: a value is not valid UTF-8");
    }
    return spider_ref_check(spec->spider, spec->spider_sha256, why);
}

/* The retries of a task, as SubmitTask and CreateSchedule carry them. */
static int retries_check(uint32_t retries, int64_t delay_ms, const char **why)
{
    if (!retries_valid(retries))
        return fail(why, -ERANGE, "retries: " RULE_RETRIES);
    if (!retry_delay_valid(delay_ms))
        return fail(why, -ERANGE, "retry_delay_ms: " RULE_RETRY_DELAY);
    return ok(why);
}

int validate_submit(const Grpc__AdminSubmitTaskRequest *r, const char **why)
{
    if (!r->spec)
        return fail(why, -EINVAL, "spec: required");
    int rc = spec_check(r->spec, why);
    if (rc < 0)
        return rc;
    rc = retries_check(r->retries, r->retry_delay_ms, why);
    if (rc < 0)
        return rc;
    if (r->n_node_keys > LIMIT_SUBMIT_NODES)
        return fail(why, -EMSGSIZE, "node_keys: more than 10000");
    for (size_t i = 0; i < r->n_node_keys; i++)
        if (!name_valid(r->node_keys[i]))
            return fail(why, -EINVAL, "node_keys: each is " NODE_REASON);
    if (!labels_valid(r->labels, r->n_labels))
        return fail(why, -EINVAL, LABELS_REASON);
    if (r->n_labels && r->n_node_keys)
        return fail(why, -EINVAL, "labels: not with node_keys (a task for a named node)");
    return ok(why);
}

int validate_list_tasks(const Grpc__AdminListTasksRequest *r, const char **why)
{
    enum task_status s;
    if (*r->status && task_status_parse(r->status, &s) < 0)
        return fail(why, -EINVAL, "status: unknown status");
    if (*r->node_key && !node_key_valid(r->node_key))
        return fail(why, -EINVAL, NODE_KEY_REASON);
    if (*r->before && !task_id_prefix_valid(r->before))
        return fail(why, -EINVAL,
                    "before: expected a task id or 6 to 24 of its lowercase hex digits");
    if (!task_page_token_valid(r->page_token))
        return fail(why, -EINVAL, "page_token: not a token of this master");
    return ok(why);
}

int validate_task_request(const Grpc__AdminTaskRequest *r, const char **why)
{
    if (!task_id_prefix_valid(r->task_id))
        return fail(why, -EINVAL,
                    "task_id: expected a task id or 6 to 24 of its lowercase hex digits");
    if (r->from > LIMIT_SAFE_INT_MAX)
        return fail(why, -ERANGE, "from: at most 2^53 - 1");
    return ok(why);
}

int validate_create_schedule(const Grpc__AdminCreateScheduleRequest *r, const char **why)
{
    if (!r->spec)
        return fail(why, -EINVAL, "spec: required");
    int rc = spec_check(r->spec, why);
    if (rc < 0)
        return rc;
    rc = retries_check(r->retries, r->retry_delay_ms, why);
    if (rc < 0)
        return rc;
    int32_t offset = 0;
    if (*r->tz && cron_parse_offset(r->tz, &offset) < 0 && !tz_name_valid(r->tz))
        return fail(why, -EINVAL,
                    "tz: a fixed offset, +HH:MM or -HH:MM (at most 14:00), Z, or " RULE_TZ_NAME);
    struct cron_expr e;
    if (cron_parse(r->expr, 0, &e, NULL) < 0)
        return fail(why, -EINVAL, "expr: not a schedule expression");
    if (*r->node_key && !name_valid(r->node_key))
        return fail(why, -EINVAL, "node_key: " NODE_REASON);
    if (!labels_valid(r->labels, r->n_labels))
        return fail(why, -EINVAL, LABELS_REASON);
    if (r->n_labels && *r->node_key)
        return fail(why, -EINVAL, "labels: not with node_key (a task for a named node)");
    if (r->all_nodes && *r->node_key)
        return fail(why, -EINVAL, "all_nodes: not with node_key");
    enum cron_overlap o;
    if (*r->overlap && cron_overlap_parse(r->overlap, &o) < 0)
        return fail(why, -EINVAL, "overlap: skip, allow or cancel-previous");
    enum cron_missed m;
    if (*r->missed && cron_missed_parse(r->missed, &m) < 0)
        return fail(why, -EINVAL, "missed: run-once or skip");
    return ok(why);
}

int validate_schedule_request(const Grpc__AdminScheduleRequest *r, const char **why)
{
    if (r->id < 0)
        return fail(why, -EINVAL, "id: not negative");
    size_t digits = strspn(r->page_token, "0123456789");
    if (r->page_token[digits] || digits > 18)
        return fail(why, -EINVAL, "page_token: not a token of this master");
    if (*r->action && strcmp(r->action, "pause") != 0 && strcmp(r->action, "resume") != 0 &&
        strcmp(r->action, "remove") != 0)
        return fail(why, -EINVAL, "action: pause, resume or remove");
    return ok(why);
}

int validate_node_request(const Grpc__AdminNodeRequest *r, const char **why)
{
    if (!name_valid(r->node))
        return fail(why, -EINVAL, "node: " NODE_REASON);
    if (strcmp(r->action, "enable") != 0 && strcmp(r->action, "disable") != 0 &&
        strcmp(r->action, "drain") != 0 && strcmp(r->action, "remove") != 0)
        return fail(why, -EINVAL, "action: enable, disable, drain or remove");
    return ok(why);
}

int validate_purge_tasks(const Grpc__AdminPurgeTasksRequest *r, const char **why)
{
    if (r->before_ms <= 0 || (uint64_t)r->before_ms > LIMIT_SAFE_INT_MAX)
        return fail(why, -ERANGE, "before_ms: 1 to 2^53 - 1");
    return ok(why);
}

int validate_events(const Grpc__AdminEventsRequest *r, const char **why)
{
    if (r->after > LIMIT_SAFE_INT_MAX)
        return fail(why, -ERANGE, "after: at most 2^53 - 1");
    return ok(why);
}

/* ---- spiders ---- */

int validate_push_spider(const Grpc__AdminPushSpiderRequest *r, const char **why)
{
    if (*r->name && !spider_name_valid(r->name))
        return fail(why, -EINVAL, "name: " RULE_SPIDER_NAME);
    if (*r->sha256 && !spider_sha256_valid(r->sha256))
        return fail(why, -EINVAL, "sha256: " RULE_SPIDER_SHA256);
    if (r->size > LIMIT_SPIDER_BYTES_MAX)
        return fail(why, -ERANGE, "size: at most 4 GiB");
    if (r->data.len > LIMIT_SPIDER_CHUNK)
        return fail(why, -EMSGSIZE, "data: more than 256 KiB in one message");
    return ok(why);
}

int validate_spider_request(const Grpc__AdminSpiderRequest *r, const char **why)
{
    char name[LIMIT_SPIDER_NAME_MAX + 1];
    uint32_t version;
    if (*r->ref && !spider_ref_parse(r->ref, name, &version))
        return fail(why, -EINVAL, "ref: " RULE_SPIDER_REF);
    return ok(why);
}

int validate_spider_fetch(const Grpc__SpiderFetchRequest *r, const char **why)
{
    if (!spider_sha256_valid(r->sha256))
        return fail(why, -EINVAL, "sha256: " RULE_SPIDER_SHA256);
    if (r->offset > LIMIT_SPIDER_BYTES_MAX)
        return fail(why, -ERANGE, "offset: at most 4 GiB");
    return ok(why);
}

/* ---- by descriptor ---- */

/* The generic form of each validator, for the method table. */
#define GENERIC(fn, type)                                                                          \
    static int fn##_msg(const ProtobufCMessage *m, const char **why)                               \
    {                                                                                              \
        return fn((const type *)m, why);                                                           \
    }

GENERIC(validate_register, Grpc__NodeServiceRegisterRequest)
GENERIC(validate_heartbeat, Grpc__NodeServiceSendHeartbeatRequest)
GENERIC(validate_node_subscribe, Grpc__NodeServiceSubscribeRequest)
GENERIC(validate_resync, Grpc__NodeServiceResyncRequest)
GENERIC(validate_task_subscribe, Grpc__TaskServiceSubscribeRequest)
GENERIC(validate_connect, Grpc__TaskServiceConnectRequest)
GENERIC(validate_fetch, Grpc__TaskServiceFetchTaskRequest)
GENERIC(validate_notification, Grpc__TaskServiceSendNotificationRequest)
GENERIC(validate_report_status, Grpc__TaskServiceReportStatusRequest)
GENERIC(validate_list_nodes, Grpc__AdminListNodesRequest)
GENERIC(validate_submit, Grpc__AdminSubmitTaskRequest)
GENERIC(validate_list_tasks, Grpc__AdminListTasksRequest)
GENERIC(validate_task_request, Grpc__AdminTaskRequest)
GENERIC(validate_create_schedule, Grpc__AdminCreateScheduleRequest)
GENERIC(validate_schedule_request, Grpc__AdminScheduleRequest)
GENERIC(validate_metrics, Grpc__AdminMetricsRequest)
GENERIC(validate_purge_tasks, Grpc__AdminPurgeTasksRequest)
GENERIC(validate_node_request, Grpc__AdminNodeRequest)
GENERIC(validate_events, Grpc__AdminEventsRequest)
GENERIC(validate_push_spider, Grpc__AdminPushSpiderRequest)
GENERIC(validate_spider_request, Grpc__AdminSpiderRequest)
GENERIC(validate_spider_fetch, Grpc__SpiderFetchRequest)

static const struct {
    const ProtobufCMessageDescriptor *d;
    validate_fn fn;
} validators[] = {
    {&grpc__node_service_register_request__descriptor, validate_register_msg},
    {&grpc__node_service_send_heartbeat_request__descriptor, validate_heartbeat_msg},
    {&grpc__node_service_subscribe_request__descriptor, validate_node_subscribe_msg},
    {&grpc__node_service_resync_request__descriptor, validate_resync_msg},
    {&grpc__task_service_subscribe_request__descriptor, validate_task_subscribe_msg},
    {&grpc__task_service_connect_request__descriptor, validate_connect_msg},
    {&grpc__task_service_fetch_task_request__descriptor, validate_fetch_msg},
    {&grpc__task_service_send_notification_request__descriptor, validate_notification_msg},
    {&grpc__task_service_report_status_request__descriptor, validate_report_status_msg},
    {&grpc__admin_list_nodes_request__descriptor, validate_list_nodes_msg},
    {&grpc__admin_submit_task_request__descriptor, validate_submit_msg},
    {&grpc__admin_list_tasks_request__descriptor, validate_list_tasks_msg},
    {&grpc__admin_task_request__descriptor, validate_task_request_msg},
    {&grpc__admin_create_schedule_request__descriptor, validate_create_schedule_msg},
    {&grpc__admin_schedule_request__descriptor, validate_schedule_request_msg},
    {&grpc__admin_metrics_request__descriptor, validate_metrics_msg},
    {&grpc__admin_purge_tasks_request__descriptor, validate_purge_tasks_msg},
    {&grpc__admin_node_request__descriptor, validate_node_request_msg},
    {&grpc__admin_events_request__descriptor, validate_events_msg},
    {&grpc__admin_push_spider_request__descriptor, validate_push_spider_msg},
    {&grpc__admin_spider_request__descriptor, validate_spider_request_msg},
    {&grpc__spider_fetch_request__descriptor, validate_spider_fetch_msg},
};

validate_fn validate_lookup(const ProtobufCMessageDescriptor *d)
{
    for (size_t i = 0; i < sizeof(validators) / sizeof(validators[0]); i++)
        if (validators[i].d == d)
            return validators[i].fn;
    return NULL;
}

int validate_request(const ProtobufCMessage *m, const char **why)
{
    validate_fn fn = validate_lookup(m->descriptor);
    if (!fn)
        return fail(why, -ENOSYS, "no validator for this message type");
    return fn(m, why);
}
