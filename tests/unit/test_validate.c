/* Unit tests for rpc/validate: every rule a request must pass, and each one failing. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "rpc/validate.h"
#include "../common/requests.h"

#define ID  "0123456789abcdef01234567"
#define KEY "worker-1.example:9666"

/* A string of n copies of c (caller frees). */
static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* The validators are called as fn(msg, &why); these wrap the two outcomes. */
#define REFUSES(fn, msg, err)                                                                      \
    do {                                                                                           \
        const char *why = NULL;                                                                    \
        ck_assert_int_eq(fn((msg), &why), (err));                                                  \
        ck_assert_ptr_nonnull(why);                                                                \
        ck_assert_uint_gt(strlen(why), 0);                                                         \
    } while (0)

#define ACCEPTS(fn, msg)                                                                           \
    do {                                                                                           \
        const char *why = "unset";                                                                 \
        ck_assert_int_eq(fn((msg), &why), 0);                                                      \
        ck_assert_ptr_null(why);                                                                   \
    } while (0)

/* ---- JSON value count and seq span ---- */

START_TEST(test_json_values_are_counted_outside_strings_only)
{
    const char *text = "[\"a,b,c,[{\\\",\", {\"k\":[1,2]}]";
    const uint8_t *d = (const uint8_t *)text;
    size_t n = strlen(text);
    /* Outside strings: 1 + '[' + ',' + '{' + '[' + ',' = 6. */
    ck_assert_int_eq(validate_json_values(d, n, 6, NULL), 0);
    const char *why = NULL;
    ck_assert_int_eq(validate_json_values(d, n, 5, &why), -EMSGSIZE);
    ck_assert_ptr_nonnull(why);
}
END_TEST

START_TEST(test_seq_span_must_end_at_a_json_safe_number)
{
    ck_assert_int_eq(validate_seq_span(0, 10, NULL), 0);
    ck_assert_int_eq(validate_seq_span(LIMIT_SAFE_INT_MAX, 1, NULL), 0);
    ck_assert_int_eq(validate_seq_span(LIMIT_SAFE_INT_MAX, 2, NULL), -ERANGE);
    ck_assert_int_eq(validate_seq_span(LIMIT_SAFE_INT_MAX - 9, 10, NULL), 0);
    ck_assert_int_eq(validate_seq_span(LIMIT_SAFE_INT_MAX + 1, 1, NULL), -ERANGE);
    ck_assert_int_eq(validate_seq_span(UINT64_MAX, 0, NULL), 0);
}
END_TEST

/* ---- NodeService ---- */

static Grpc__NodeServiceRegisterRequest good_register(void)
{
    Grpc__NodeServiceRegisterRequest r = GRPC__NODE_SERVICE_REGISTER_REQUEST__INIT;
    r.node_key = KEY;
    r.node_name = "worker one \xe2\x9c\x93";
    r.max_runners = 8;
    r.version = "0.1.0";
    r.machine_id = "0123456789abcdef0123456789abcdef";
    r.containment = "cgroup";
    return r;
}

START_TEST(test_register_accepts_a_well_formed_request)
{
    Grpc__NodeServiceRegisterRequest r = good_register();
    ACCEPTS(validate_register, &r);
    r.node_name = "";
    r.version = "";
    r.machine_id = "";
    r.max_runners = 0;
    ACCEPTS(validate_register, &r);
}
END_TEST

START_TEST(test_register_refuses_a_bad_node_key)
{
    Grpc__NodeServiceRegisterRequest r = good_register();
    r.node_key = "";
    REFUSES(validate_register, &r, -EINVAL);
    r.node_key = "bad key";
    REFUSES(validate_register, &r, -EINVAL);
}
END_TEST

START_TEST(test_register_bounds_the_node_name)
{
    Grpc__NodeServiceRegisterRequest r = good_register();
    char *name = repeat('n', LIMIT_NAME_MAX);
    r.node_name = name;
    ACCEPTS(validate_register, &r);
    free(name);
    name = repeat('n', LIMIT_NAME_MAX + 1);
    r.node_name = name;
    REFUSES(validate_register, &r, -EMSGSIZE);
    free(name);
}
END_TEST

START_TEST(test_register_refuses_a_name_with_control_characters_or_bad_utf8)
{
    Grpc__NodeServiceRegisterRequest r = good_register();
    r.node_name = "forged\n2024-01-01 info master: node x online";
    REFUSES(validate_register, &r, -EINVAL);
    r.node_name = "bell\a";
    REFUSES(validate_register, &r, -EINVAL);
    r.node_name = "del\x7f";
    REFUSES(validate_register, &r, -EINVAL);
    r.node_name = "latin1 caf\xe9";
    REFUSES(validate_register, &r, -EINVAL);
}
END_TEST

START_TEST(test_register_bounds_the_version)
{
    Grpc__NodeServiceRegisterRequest r = good_register();
    char *v = repeat('1', LIMIT_VERSION_MAX + 1);
    r.version = v;
    REFUSES(validate_register, &r, -EMSGSIZE);
    free(v);
    r.version = "1.0\t";
    REFUSES(validate_register, &r, -EINVAL);
}
END_TEST

START_TEST(test_register_refuses_a_bad_machine_id)
{
    Grpc__NodeServiceRegisterRequest r = good_register();
    r.machine_id = "no spaces";
    REFUSES(validate_register, &r, -EINVAL);
    char *id = repeat('a', 65);
    r.machine_id = id;
    REFUSES(validate_register, &r, -EINVAL);
    free(id);
}
END_TEST

START_TEST(test_register_bounds_the_containment_name)
{
    Grpc__NodeServiceRegisterRequest r = good_register();
    r.containment = "";
    ACCEPTS(validate_register, &r);
    r.containment = "cgroup\n";
    REFUSES(validate_register, &r, -EINVAL);
    char *name = repeat('a', 33);
    r.containment = name;
    REFUSES(validate_register, &r, -EMSGSIZE);
    free(name);
}
END_TEST

START_TEST(test_register_keeps_max_runners_in_range)
{
    Grpc__NodeServiceRegisterRequest r = good_register();
    r.max_runners = LIMIT_RUNNERS_MAX;
    ACCEPTS(validate_register, &r);
    r.max_runners = -1;
    REFUSES(validate_register, &r, -ERANGE);
    r.max_runners = LIMIT_RUNNERS_MAX + 1;
    REFUSES(validate_register, &r, -ERANGE);
}
END_TEST

START_TEST(test_register_bounds_labels_and_their_count)
{
    Grpc__NodeServiceRegisterRequest r = good_register();
    char *labels[LIMIT_LABELS_MAX + 1], text[LIMIT_LABELS_MAX + 1][16];
    for (size_t i = 0; i <= LIMIT_LABELS_MAX; i++) {
        snprintf(text[i], sizeof(text[i]), "k%zu=v", i);
        labels[i] = text[i];
    }
    r.labels = labels;
    r.n_labels = LIMIT_LABELS_MAX;
    ACCEPTS(validate_register, &r);
    r.n_labels = LIMIT_LABELS_MAX + 1;
    REFUSES(validate_register, &r, -EMSGSIZE);
    r.n_labels = 2;
    labels[1] = "k=two\nlines";
    REFUSES(validate_register, &r, -EINVAL);
    labels[1] = "gpu"; /* no '=' */
    REFUSES(validate_register, &r, -EINVAL);
    labels[1] = "k0=again"; /* a KEY twice */
    REFUSES(validate_register, &r, -EINVAL);
    char *long_label = repeat('l', LIMIT_NAME_MAX + 1);
    long_label[1] = '=';
    labels[1] = long_label;
    REFUSES(validate_register, &r, -EINVAL);
    free(long_label);
}
END_TEST

START_TEST(test_heartbeat_needs_a_key_and_a_running_count_in_range)
{
    Grpc__NodeServiceSendHeartbeatRequest r = GRPC__NODE_SERVICE_SEND_HEARTBEAT_REQUEST__INIT;
    r.node_key = KEY;
    r.running = 3;
    ACCEPTS(validate_heartbeat, &r);
    r.running = -1;
    REFUSES(validate_heartbeat, &r, -ERANGE);
    r.running = LIMIT_RUNNERS_MAX + 1;
    REFUSES(validate_heartbeat, &r, -ERANGE);
    r.running = 0;
    r.node_key = "";
    REFUSES(validate_heartbeat, &r, -EINVAL);
}
END_TEST

START_TEST(test_node_subscribe_needs_a_node_key)
{
    Grpc__NodeServiceSubscribeRequest r = GRPC__NODE_SERVICE_SUBSCRIBE_REQUEST__INIT;
    r.node_key = KEY;
    ACCEPTS(validate_node_subscribe, &r);
    r.node_key = "k\xc3\xa9y";
    REFUSES(validate_node_subscribe, &r, -EINVAL);
}
END_TEST

static Grpc__TaskState good_state(void)
{
    Grpc__TaskState st = GRPC__TASK_STATE__INIT;
    st.task_id = ID;
    st.status = "finished";
    st.log_lines = 12;
    st.data_items = 3;
    st.pid = 4242;
    st.exit_code = 0;
    st.error = "";
    return st;
}

START_TEST(test_resync_accepts_tasks_of_any_status_or_none)
{
    Grpc__TaskState a = good_state(), b = good_state();
    b.status = "";
    Grpc__TaskState *tasks[] = {&a, &b};
    Grpc__NodeServiceResyncRequest r = GRPC__NODE_SERVICE_RESYNC_REQUEST__INIT;
    r.node_key = KEY;
    r.n_tasks = 2;
    r.tasks = tasks;
    ACCEPTS(validate_resync, &r);
    a.status = "node_disconnected";
    ACCEPTS(validate_resync, &r);
}
END_TEST

START_TEST(test_resync_refuses_a_bad_key_or_a_bad_task)
{
    Grpc__TaskState a = good_state(), b = good_state();
    Grpc__TaskState *tasks[] = {&a, &b};
    Grpc__NodeServiceResyncRequest r = GRPC__NODE_SERVICE_RESYNC_REQUEST__INIT;
    r.node_key = "";
    r.n_tasks = 2;
    r.tasks = tasks;
    REFUSES(validate_resync, &r, -EINVAL);
    r.node_key = KEY;
    b.task_id = "not-an-id";
    REFUSES(validate_resync, &r, -EINVAL);
    b.task_id = ID;
    b.status = "done";
    REFUSES(validate_resync, &r, -EINVAL);
    b.status = "running";
    b.data_items = LIMIT_SAFE_INT_MAX + 1;
    REFUSES(validate_resync, &r, -ERANGE);
}
END_TEST

START_TEST(test_resync_bounds_the_number_of_tasks)
{
    Grpc__TaskState a = good_state();
    size_t n = LIMIT_RESYNC_TASKS + 1;
    Grpc__TaskState **tasks = malloc(n * sizeof(*tasks));
    ck_assert_ptr_nonnull(tasks);
    for (size_t i = 0; i < n; i++)
        tasks[i] = &a;
    Grpc__NodeServiceResyncRequest r = GRPC__NODE_SERVICE_RESYNC_REQUEST__INIT;
    r.node_key = KEY;
    r.tasks = tasks;
    r.n_tasks = n - 1;
    ACCEPTS(validate_resync, &r);
    r.n_tasks = n;
    REFUSES(validate_resync, &r, -EMSGSIZE);
    free(tasks);
}
END_TEST

/* ---- TaskService ---- */

START_TEST(test_task_subscribe_needs_a_task_id)
{
    Grpc__TaskServiceSubscribeRequest r = GRPC__TASK_SERVICE_SUBSCRIBE_REQUEST__INIT;
    r.task_id = ID;
    ACCEPTS(validate_task_subscribe, &r);
    r.task_id = "";
    REFUSES(validate_task_subscribe, &r, -EINVAL);
}
END_TEST

static Grpc__TaskServiceConnectRequest good_connect(const char *json)
{
    Grpc__TaskServiceConnectRequest r = GRPC__TASK_SERVICE_CONNECT_REQUEST__INIT;
    r.code = GRPC__TASK_SERVICE_CONNECT_CODE__INSERT_LOGS;
    r.task_id = ID;
    r.data.data = (uint8_t *)json;
    r.data.len = strlen(json);
    r.seq = 1;
    return r;
}

START_TEST(test_connect_accepts_logs_items_and_a_bare_ping)
{
    Grpc__TaskServiceConnectRequest r = good_connect("[\"line\"]");
    ACCEPTS(validate_connect, &r);
    r = good_connect("[{\"a\":1}]");
    r.code = GRPC__TASK_SERVICE_CONNECT_CODE__INSERT_DATA;
    ACCEPTS(validate_connect, &r);
    /* A PING's other fields are never used, so they are not looked at. */
    r.code = GRPC__TASK_SERVICE_CONNECT_CODE__PING;
    r.task_id = "";
    r.seq = UINT64_MAX;
    ACCEPTS(validate_connect, &r);
}
END_TEST

START_TEST(test_connect_refuses_an_unknown_code)
{
    Grpc__TaskServiceConnectRequest r = good_connect("[]");
    r.code = (Grpc__TaskServiceConnectCode)3;
    REFUSES(validate_connect, &r, -EINVAL);
    r.code = (Grpc__TaskServiceConnectCode)-1;
    REFUSES(validate_connect, &r, -EINVAL);
}
END_TEST

START_TEST(test_connect_refuses_a_bad_task_id)
{
    Grpc__TaskServiceConnectRequest r = good_connect("[]");
    r.task_id = "0123456789abcdef0123456";
    REFUSES(validate_connect, &r, -EINVAL);
}
END_TEST

START_TEST(test_connect_keeps_seq_json_safe)
{
    Grpc__TaskServiceConnectRequest r = good_connect("[]");
    r.seq = LIMIT_SAFE_INT_MAX;
    ACCEPTS(validate_connect, &r);
    r.seq = LIMIT_SAFE_INT_MAX + 1;
    REFUSES(validate_connect, &r, -ERANGE);
}
END_TEST

START_TEST(test_connect_bounds_the_data_size)
{
    char *big = repeat(' ', LIMIT_DATA_MAX + 1);
    Grpc__TaskServiceConnectRequest r = good_connect(big);
    REFUSES(validate_connect, &r, -EMSGSIZE);
    r.data.len = LIMIT_DATA_MAX;
    ACCEPTS(validate_connect, &r);
    free(big);
}
END_TEST

START_TEST(test_connect_bounds_the_json_values_of_items_only)
{
    /* "[{},{},...]": cheap on the wire, costly once parsed. */
    size_t n = LIMIT_DATA_VALUES_MAX;
    char *json = malloc(3 * n + 2);
    ck_assert_ptr_nonnull(json);
    size_t o = 0;
    json[o++] = '[';
    for (size_t i = 0; i < n; i++) {
        json[o++] = '{';
        json[o++] = '}';
        json[o++] = ',';
    }
    json[o - 1] = ']';
    json[o] = '\0';
    Grpc__TaskServiceConnectRequest r = good_connect(json);
    r.code = GRPC__TASK_SERVICE_CONNECT_CODE__INSERT_DATA;
    REFUSES(validate_connect, &r, -EMSGSIZE);
    /* Log lines are read in place, without a tree: their count is not bounded here. */
    r.code = GRPC__TASK_SERVICE_CONNECT_CODE__INSERT_LOGS;
    ACCEPTS(validate_connect, &r);
    /* The same bytes inside one string are one value. */
    json[0] = '"';
    json[o - 1] = '"';
    r = good_connect(json);
    r.code = GRPC__TASK_SERVICE_CONNECT_CODE__INSERT_DATA;
    ACCEPTS(validate_connect, &r);
    free(json);
}
END_TEST

START_TEST(test_fetch_needs_a_node_key)
{
    Grpc__TaskServiceFetchTaskRequest r = GRPC__TASK_SERVICE_FETCH_TASK_REQUEST__INIT;
    r.node_key = KEY;
    ACCEPTS(validate_fetch, &r);
    r.node_key = "";
    REFUSES(validate_fetch, &r, -EINVAL);
}
END_TEST

START_TEST(test_notification_needs_a_task_id_and_a_well_formed_key_if_any)
{
    Grpc__TaskServiceSendNotificationRequest r = GRPC__TASK_SERVICE_SEND_NOTIFICATION_REQUEST__INIT;
    r.node_key = KEY;
    r.task_id = ID;
    ACCEPTS(validate_notification, &r);
    r.node_key = "";
    ACCEPTS(validate_notification, &r);
    r.node_key = "x\n";
    REFUSES(validate_notification, &r, -EINVAL);
    r.node_key = KEY;
    r.task_id = "nope";
    REFUSES(validate_notification, &r, -EINVAL);
}
END_TEST

static Grpc__TaskServiceReportStatusRequest report(Grpc__TaskState *st)
{
    Grpc__TaskServiceReportStatusRequest r = GRPC__TASK_SERVICE_REPORT_STATUS_REQUEST__INIT;
    r.node_key = KEY;
    r.state = st;
    return r;
}

START_TEST(test_report_status_accepts_the_four_statuses_a_worker_reports)
{
    static const char *const statuses[] = {"running", "finished", "error", "cancelled"};
    Grpc__TaskState st = good_state();
    Grpc__TaskServiceReportStatusRequest r = report(&st);
    for (size_t i = 0; i < 4; i++) {
        st.status = (char *)statuses[i];
        ACCEPTS(validate_report_status, &r);
    }
}
END_TEST

START_TEST(test_report_status_refuses_other_or_unknown_statuses)
{
    Grpc__TaskState st = good_state();
    Grpc__TaskServiceReportStatusRequest r = report(&st);
    st.status = "pending";
    REFUSES(validate_report_status, &r, -EINVAL);
    st.status = "abnormal";
    REFUSES(validate_report_status, &r, -EINVAL);
    st.status = "";
    REFUSES(validate_report_status, &r, -EINVAL);
    st.status = "FINISHED";
    REFUSES(validate_report_status, &r, -EINVAL);
}
END_TEST

START_TEST(test_report_status_accepts_pending_only_with_an_epoch)
{
    /* A worker gives back a task the master pushed to it (docs/protocol.md). */
    Grpc__TaskState st = good_state();
    Grpc__TaskServiceReportStatusRequest r = report(&st);
    st.status = "pending";
    st.epoch = 0;
    REFUSES(validate_report_status, &r, -EINVAL);
    st.epoch = 3;
    ACCEPTS(validate_report_status, &r);
}
END_TEST

START_TEST(test_report_status_needs_a_state_a_node_key_and_a_task_id)
{
    Grpc__TaskState st = good_state();
    Grpc__TaskServiceReportStatusRequest r = report(NULL);
    REFUSES(validate_report_status, &r, -EINVAL);
    r = report(&st);
    r.node_key = "";
    REFUSES(validate_report_status, &r, -EINVAL);
    r.node_key = KEY;
    st.task_id = "";
    REFUSES(validate_report_status, &r, -EINVAL);
}
END_TEST

START_TEST(test_report_status_bounds_totals_pid_and_error)
{
    Grpc__TaskState st = good_state();
    Grpc__TaskServiceReportStatusRequest r = report(&st);
    st.log_lines = LIMIT_SAFE_INT_MAX;
    ACCEPTS(validate_report_status, &r);
    st.log_lines = LIMIT_SAFE_INT_MAX + 1;
    REFUSES(validate_report_status, &r, -ERANGE);
    st.log_lines = 0;
    st.pid = -5;
    REFUSES(validate_report_status, &r, -ERANGE);
    st.pid = 0;
    char *err = repeat('e', LIMIT_ERROR_MAX);
    st.error = err;
    ACCEPTS(validate_report_status, &r);
    free(err);
    err = repeat('e', LIMIT_ERROR_MAX + 1);
    st.error = err;
    REFUSES(validate_report_status, &r, -EMSGSIZE);
    free(err);
    st.error = "exit code \xff";
    REFUSES(validate_report_status, &r, -EINVAL);
    /* An error text may span lines (a stack trace); it only has to be UTF-8. */
    st.error = "Traceback:\n  line 1\n";
    ACCEPTS(validate_report_status, &r);
}
END_TEST

/* ---- AdminService ---- */

START_TEST(test_list_nodes_takes_a_node_key_as_page_token)
{
    Grpc__AdminListNodesRequest r = GRPC__ADMIN_LIST_NODES_REQUEST__INIT;
    ACCEPTS(validate_list_nodes, &r);
    r.limit = 5;
    r.page_token = KEY;
    ACCEPTS(validate_list_nodes, &r);
    r.page_token = "a b";
    REFUSES(validate_list_nodes, &r, -EINVAL);
}
END_TEST

START_TEST(test_metrics_has_nothing_to_refuse)
{
    Grpc__AdminMetricsRequest r = GRPC__ADMIN_METRICS_REQUEST__INIT;
    ACCEPTS(validate_metrics, &r);
}
END_TEST

struct submit {
    Grpc__AdminSubmitTaskRequest req;
    Grpc__TaskSpec spec;
    Grpc__TaskSpec__EnvEntry env;
    Grpc__TaskSpec__EnvEntry *envs[1];
    char *keys[1];
};

static void good_submit(struct submit *s)
{
    grpc__admin_submit_task_request__init(&s->req);
    grpc__task_spec__init(&s->spec);
    grpc__task_spec__env_entry__init(&s->env);
    s->spec.cmd = "python3 spider.py";
    s->spec.param = "--pages 3";
    s->spec.name = "spider";
    s->spec.timeout_ms = 60000;
    s->spec.priority = 5;
    s->env.key = "PROXY_URL";
    s->env.value = "http://proxy:3128\nsecond line is fine";
    s->envs[0] = &s->env;
    s->spec.env = s->envs;
    s->spec.n_env = 1;
    s->keys[0] = KEY;
    s->req.node_keys = s->keys;
    s->req.n_node_keys = 1;
    s->req.spec = &s->spec;
}

START_TEST(test_submit_accepts_a_well_formed_task)
{
    struct submit s;
    good_submit(&s);
    ACCEPTS(validate_submit, &s.req);
    s.spec.priority = LIMIT_PRIORITY_MIN;
    s.spec.timeout_ms = 0;
    s.spec.name = "";
    s.spec.param = "";
    ACCEPTS(validate_submit, &s.req);
}
END_TEST

START_TEST(test_submit_needs_a_spec_with_a_command)
{
    struct submit s;
    good_submit(&s);
    s.req.spec = NULL;
    REFUSES(validate_submit, &s.req, -EINVAL);
    s.req.spec = &s.spec;
    s.spec.cmd = "";
    REFUSES(validate_submit, &s.req, -EINVAL);
}
END_TEST

START_TEST(test_submit_bounds_cmd_and_param)
{
    struct submit s;
    good_submit(&s);
    char *big = repeat('c', LIMIT_CMD_MAX);
    s.spec.cmd = big;
    s.spec.param = big;
    ACCEPTS(validate_submit, &s.req);
    free(big);
    big = repeat('c', LIMIT_CMD_MAX + 1);
    s.spec.cmd = big;
    REFUSES(validate_submit, &s.req, -EMSGSIZE);
    s.spec.cmd = "true";
    s.spec.param = big;
    REFUSES(validate_submit, &s.req, -EMSGSIZE);
    free(big);
}
END_TEST

START_TEST(test_submit_refuses_cmd_or_param_that_is_not_utf8)
{
    struct submit s;
    good_submit(&s);
    s.spec.cmd = "echo \xc0\xaf";
    REFUSES(validate_submit, &s.req, -EINVAL);
    s.spec.cmd = "echo";
    s.spec.param = "\xed\xa0\x80";
    REFUSES(validate_submit, &s.req, -EINVAL);
}
END_TEST

START_TEST(test_submit_bounds_the_task_name)
{
    struct submit s;
    good_submit(&s);
    char *name = repeat('t', LIMIT_NAME_MAX + 1);
    s.spec.name = name;
    REFUSES(validate_submit, &s.req, -EMSGSIZE);
    free(name);
    s.spec.name = "two\nlines";
    REFUSES(validate_submit, &s.req, -EINVAL);
}
END_TEST

START_TEST(test_submit_keeps_timeout_and_priority_in_range)
{
    struct submit s;
    good_submit(&s);
    s.spec.timeout_ms = -1;
    REFUSES(validate_submit, &s.req, -ERANGE);
    s.spec.timeout_ms = (int64_t)LIMIT_SAFE_INT_MAX + 1;
    REFUSES(validate_submit, &s.req, -ERANGE);
    s.spec.timeout_ms = 0;
    s.spec.priority = LIMIT_PRIORITY_MAX + 1;
    REFUSES(validate_submit, &s.req, -ERANGE);
    s.spec.priority = -1;
    REFUSES(validate_submit, &s.req, -ERANGE);
    s.spec.priority = 0; /* not given: the master's default */
    ck_assert_int_eq(validate_submit(&s.req, NULL), 0);
    s.spec.priority = LIMIT_PRIORITY_MIN;
    ck_assert_int_eq(validate_submit(&s.req, NULL), 0);
}
END_TEST

START_TEST(test_submit_keeps_retries_in_range)
{
    struct submit s;
    good_submit(&s);
    s.req.retries = LIMIT_RETRIES_MAX;
    s.req.retry_delay_ms = LIMIT_RETRY_DELAY_MAX_MS;
    ck_assert_int_eq(validate_submit(&s.req, NULL), 0);
    s.req.retries = LIMIT_RETRIES_MAX + 1;
    REFUSES(validate_submit, &s.req, -ERANGE);
    s.req.retries = 1;
    s.req.retry_delay_ms = -1;
    REFUSES(validate_submit, &s.req, -ERANGE);
    s.req.retry_delay_ms = LIMIT_RETRY_DELAY_MAX_MS + 1;
    REFUSES(validate_submit, &s.req, -ERANGE);
}
END_TEST

START_TEST(test_submit_checks_every_env_entry)
{
    struct submit s;
    good_submit(&s);
    s.env.key = "1BAD";
    REFUSES(validate_submit, &s.req, -EINVAL);
    s.env.key = "GOOD";
    char *value = repeat('v', LIMIT_ENV_VALUE_MAX + 1);
    s.env.value = value;
    REFUSES(validate_submit, &s.req, -EMSGSIZE);
    free(value);
    s.env.value = "\xfe";
    REFUSES(validate_submit, &s.req, -EINVAL);
}
END_TEST

START_TEST(test_submit_bounds_the_number_of_env_entries)
{
    struct submit s;
    good_submit(&s);
    Grpc__TaskSpec__EnvEntry *many[LIMIT_ENV_MAX + 1];
    for (size_t i = 0; i <= LIMIT_ENV_MAX; i++)
        many[i] = &s.env;
    s.spec.env = many;
    s.spec.n_env = LIMIT_ENV_MAX;
    ACCEPTS(validate_submit, &s.req);
    s.spec.n_env = LIMIT_ENV_MAX + 1;
    REFUSES(validate_submit, &s.req, -EMSGSIZE);
}
END_TEST

START_TEST(test_submit_checks_the_node_keys_and_their_number)
{
    struct submit s;
    good_submit(&s);
    s.keys[0] = "bad\nkey";
    REFUSES(validate_submit, &s.req, -EINVAL);
    s.keys[0] = "a node name"; /* a name stands for a key */
    ACCEPTS(validate_submit, &s.req);
    char *labels[] = {"gpu=1"};
    s.req.labels = labels;
    s.req.n_labels = 1;
    REFUSES(validate_submit, &s.req, -EINVAL); /* a selector and named nodes */
    s.req.n_node_keys = 0;
    ACCEPTS(validate_submit, &s.req);
    labels[0] = "gpu";
    REFUSES(validate_submit, &s.req, -EINVAL);
    s.req.n_labels = 0;
    char **keys = malloc((LIMIT_SUBMIT_NODES + 1) * sizeof(*keys));
    ck_assert_ptr_nonnull(keys);
    for (size_t i = 0; i <= LIMIT_SUBMIT_NODES; i++)
        keys[i] = KEY;
    s.req.node_keys = keys;
    s.req.n_node_keys = LIMIT_SUBMIT_NODES;
    ACCEPTS(validate_submit, &s.req);
    s.req.n_node_keys = LIMIT_SUBMIT_NODES + 1;
    REFUSES(validate_submit, &s.req, -EMSGSIZE);
    free(keys);
}
END_TEST

START_TEST(test_list_tasks_takes_an_optional_known_status_and_node_key)
{
    Grpc__AdminListTasksRequest r = GRPC__ADMIN_LIST_TASKS_REQUEST__INIT;
    ACCEPTS(validate_list_tasks, &r);
    r.status = "node_disconnected";
    r.node_key = KEY;
    ACCEPTS(validate_list_tasks, &r);
    r.status = "sleeping";
    REFUSES(validate_list_tasks, &r, -EINVAL);
    r.status = "";
    r.node_key = "a b";
    REFUSES(validate_list_tasks, &r, -EINVAL);
}
END_TEST

START_TEST(test_list_tasks_takes_a_task_prefix_or_a_page_token)
{
    Grpc__AdminListTasksRequest r = GRPC__ADMIN_LIST_TASKS_REQUEST__INIT;
    r.before = "65a1b2";
    r.page_token = "1700000000000.42";
    ACCEPTS(validate_list_tasks, &r);
    r.before = ID;
    ACCEPTS(validate_list_tasks, &r);
    r.before = "65a1b";
    REFUSES(validate_list_tasks, &r, -EINVAL);
    r.before = "";
    r.page_token = "1700000000000;drop";
    REFUSES(validate_list_tasks, &r, -EINVAL);
    char long_token[LIMIT_PAGE_TOKEN_MAX + 2];
    memset(long_token, '1', sizeof(long_token) - 1);
    long_token[sizeof(long_token) - 1] = '\0';
    r.page_token = long_token;
    REFUSES(validate_list_tasks, &r, -EINVAL);
}
END_TEST

START_TEST(test_purge_needs_a_json_safe_positive_time)
{
    Grpc__AdminPurgeTasksRequest r = GRPC__ADMIN_PURGE_TASKS_REQUEST__INIT;
    REFUSES(validate_purge_tasks, &r, -ERANGE);
    r.before_ms = 1;
    ACCEPTS(validate_purge_tasks, &r);
    r.before_ms = (int64_t)LIMIT_SAFE_INT_MAX + 1;
    REFUSES(validate_purge_tasks, &r, -ERANGE);
    r.before_ms = -5;
    REFUSES(validate_purge_tasks, &r, -ERANGE);
}
END_TEST

START_TEST(test_events_request_needs_a_json_safe_cursor)
{
    Grpc__AdminEventsRequest r = GRPC__ADMIN_EVENTS_REQUEST__INIT;
    ACCEPTS(validate_events, &r);
    r.after = LIMIT_SAFE_INT_MAX;
    r.limit = UINT32_MAX;
    r.follow = true;
    ACCEPTS(validate_events, &r);
    r.after = LIMIT_SAFE_INT_MAX + 1;
    REFUSES(validate_events, &r, -ERANGE);
}
END_TEST

START_TEST(test_task_request_needs_a_task_id_and_a_json_safe_from)
{
    Grpc__AdminTaskRequest r = GRPC__ADMIN_TASK_REQUEST__INIT;
    r.task_id = ID;
    r.from = LIMIT_SAFE_INT_MAX;
    ACCEPTS(validate_task_request, &r);
    r.from = LIMIT_SAFE_INT_MAX + 1;
    REFUSES(validate_task_request, &r, -ERANGE);
    r.from = 0;
    r.task_id = "0123456789abcdef0123456Z";
    REFUSES(validate_task_request, &r, -EINVAL);
    /* A prefix of 6 digits or more names a task too; the master looks it up. */
    r.task_id = "0123456789abcdef0123456";
    ACCEPTS(validate_task_request, &r);
    r.task_id = "012345";
    ACCEPTS(validate_task_request, &r);
    r.task_id = "01234";
    REFUSES(validate_task_request, &r, -EINVAL);
}
END_TEST

/* ---- by descriptor ---- */

START_TEST(test_every_request_type_has_a_validator)
{
    for (size_t i = 0; i < n_request_types; i++) {
        ck_assert_msg(validate_lookup(request_types[i]) != NULL, "%s", request_types[i]->name);
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(request_types[j] != request_types[i], "%s listed twice",
                          request_types[i]->name);
    }
    ck_assert_ptr_null(validate_lookup(&grpc__task_service_fetch_task_response__descriptor));
}
END_TEST

START_TEST(test_validate_request_dispatches_on_the_message_type)
{
    Grpc__TaskServiceFetchTaskRequest fetch = GRPC__TASK_SERVICE_FETCH_TASK_REQUEST__INIT;
    const char *why = NULL;
    ck_assert_int_eq(validate_request(&fetch.base, &why), -EINVAL);
    ck_assert_ptr_nonnull(why);
    fetch.node_key = KEY;
    ck_assert_int_eq(validate_request(&fetch.base, &why), 0);
    Grpc__TaskServiceFetchTaskResponse resp = GRPC__TASK_SERVICE_FETCH_TASK_RESPONSE__INIT;
    ck_assert_int_eq(validate_request(&resp.base, &why), -ENOSYS);
}
END_TEST

START_TEST(test_spider_requests_and_a_task_spider)
{
    static const char sha[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    Grpc__TaskSpec spec = GRPC__TASK_SPEC__INIT;
    spec.cmd = "true";
    Grpc__AdminSubmitTaskRequest s = GRPC__ADMIN_SUBMIT_TASK_REQUEST__INIT;
    s.spec = &spec;
    spec.spider = "quotes@3";
    ACCEPTS(validate_submit, &s);
    spec.spider_sha256 = (char *)sha;
    ACCEPTS(validate_submit, &s);
    spec.spider = "quotes@0";
    REFUSES(validate_submit, &s, -EINVAL);
    spec.spider = "quotes";
    spec.spider_sha256 = "../../etc";
    REFUSES(validate_submit, &s, -EINVAL);
    spec.spider_sha256 = "";
    /* a schedule's, by the same rule */
    Grpc__AdminCreateScheduleRequest c = GRPC__ADMIN_CREATE_SCHEDULE_REQUEST__INIT;
    c.spec = &spec;
    c.expr = "@daily";
    ACCEPTS(validate_create_schedule, &c);
    spec.spider = "quotes@x";
    REFUSES(validate_create_schedule, &c, -EINVAL);
    spec.spider = "quotes";

    Grpc__AdminPushSpiderRequest p = GRPC__ADMIN_PUSH_SPIDER_REQUEST__INIT;
    ACCEPTS(validate_push_spider, &p); /* a data message with no data: the handler's business */
    p.name = "quotes";
    p.sha256 = (char *)sha;
    p.size = LIMIT_SPIDER_BYTES_MAX;
    ACCEPTS(validate_push_spider, &p);
    p.size++;
    REFUSES(validate_push_spider, &p, -ERANGE);
    p.size = 1;
    p.name = "a/b";
    REFUSES(validate_push_spider, &p, -EINVAL);
    p.name = "";
    p.sha256 = "ABC";
    REFUSES(validate_push_spider, &p, -EINVAL);
    p.sha256 = "";
    static uint8_t big[LIMIT_SPIDER_CHUNK + 1];
    p.data.data = big;
    p.data.len = LIMIT_SPIDER_CHUNK;
    ACCEPTS(validate_push_spider, &p);
    p.data.len++;
    REFUSES(validate_push_spider, &p, -EMSGSIZE);

    Grpc__AdminSpiderRequest q = GRPC__ADMIN_SPIDER_REQUEST__INIT;
    ACCEPTS(validate_spider_request, &q);
    q.ref = "quotes@12";
    ACCEPTS(validate_spider_request, &q);
    q.ref = "quotes@";
    REFUSES(validate_spider_request, &q, -EINVAL);

    Grpc__SpiderFetchRequest f = GRPC__SPIDER_FETCH_REQUEST__INIT;
    REFUSES(validate_spider_fetch, &f, -EINVAL);
    f.sha256 = (char *)sha;
    ACCEPTS(validate_spider_fetch, &f);
    f.offset = LIMIT_SPIDER_BYTES_MAX + 1;
    REFUSES(validate_spider_fetch, &f, -ERANGE);
}
END_TEST

START_TEST(test_create_schedule_checks_expression_offset_target_and_policies)
{
    Grpc__TaskSpec spec = GRPC__TASK_SPEC__INIT;
    spec.cmd = "true";
    Grpc__AdminCreateScheduleRequest r = GRPC__ADMIN_CREATE_SCHEDULE_REQUEST__INIT;
    r.spec = &spec;
    r.expr = "*/5 * * * *";
    ACCEPTS(validate_create_schedule, &r);
    r.tz = "+05:30";
    r.overlap = "cancel-previous";
    r.missed = "skip";
    r.node_key = KEY;
    r.expr = "@every 90s";
    ACCEPTS(validate_create_schedule, &r);
    r.expr = "* * * *";
    REFUSES(validate_create_schedule, &r, -EINVAL);
    r.expr = "@daily";
    r.tz = "Europe/Paris"; /* a zone name: whether the master has it is the master's to say */
    ACCEPTS(validate_create_schedule, &r);
    r.tz = "../../etc/passwd";
    REFUSES(validate_create_schedule, &r, -EINVAL);
    r.tz = "";
    r.all_nodes = true; /* not with node_key */
    REFUSES(validate_create_schedule, &r, -EINVAL);
    r.all_nodes = false;
    r.overlap = "queue";
    REFUSES(validate_create_schedule, &r, -EINVAL);
    r.overlap = "";
    r.missed = "all";
    REFUSES(validate_create_schedule, &r, -EINVAL);
    r.missed = "";
    r.node_key = "bad\tkey";
    REFUSES(validate_create_schedule, &r, -EINVAL);
    r.node_key = "w1";
    char *labels[] = {"gpu=1"};
    r.labels = labels;
    r.n_labels = 1;
    REFUSES(validate_create_schedule, &r, -EINVAL); /* a selector and a named node */
    r.node_key = "";
    ACCEPTS(validate_create_schedule, &r);
    labels[0] = "=1";
    REFUSES(validate_create_schedule, &r, -EINVAL);
    r.n_labels = 0;
    spec.cmd = "";
    REFUSES(validate_create_schedule, &r, -EINVAL);
    r.spec = NULL;
    REFUSES(validate_create_schedule, &r, -EINVAL);

    Grpc__AdminScheduleRequest q = GRPC__ADMIN_SCHEDULE_REQUEST__INIT;
    ACCEPTS(validate_schedule_request, &q);
    q.id = 3;
    q.action = "remove";
    ACCEPTS(validate_schedule_request, &q);
    q.action = "delete";
    REFUSES(validate_schedule_request, &q, -EINVAL);
    q.action = "";
    q.id = -1;
    REFUSES(validate_schedule_request, &q, -EINVAL);
}
END_TEST

static Suite *validate_suite(void)
{
    Suite *s = suite_create("validate");
    TCase *tc = tcase_create("rules");
    tcase_add_test(tc, test_json_values_are_counted_outside_strings_only);
    tcase_add_test(tc, test_seq_span_must_end_at_a_json_safe_number);
    suite_add_tcase(s, tc);

    tc = tcase_create("node_service");
    tcase_add_test(tc, test_register_accepts_a_well_formed_request);
    tcase_add_test(tc, test_register_refuses_a_bad_node_key);
    tcase_add_test(tc, test_register_bounds_the_node_name);
    tcase_add_test(tc, test_register_refuses_a_name_with_control_characters_or_bad_utf8);
    tcase_add_test(tc, test_register_bounds_the_version);
    tcase_add_test(tc, test_register_refuses_a_bad_machine_id);
    tcase_add_test(tc, test_register_bounds_the_containment_name);
    tcase_add_test(tc, test_register_keeps_max_runners_in_range);
    tcase_add_test(tc, test_register_bounds_labels_and_their_count);
    tcase_add_test(tc, test_heartbeat_needs_a_key_and_a_running_count_in_range);
    tcase_add_test(tc, test_node_subscribe_needs_a_node_key);
    tcase_add_test(tc, test_resync_accepts_tasks_of_any_status_or_none);
    tcase_add_test(tc, test_resync_refuses_a_bad_key_or_a_bad_task);
    tcase_add_test(tc, test_resync_bounds_the_number_of_tasks);
    suite_add_tcase(s, tc);

    tc = tcase_create("task_service");
    tcase_add_test(tc, test_task_subscribe_needs_a_task_id);
    tcase_add_test(tc, test_connect_accepts_logs_items_and_a_bare_ping);
    tcase_add_test(tc, test_connect_refuses_an_unknown_code);
    tcase_add_test(tc, test_connect_refuses_a_bad_task_id);
    tcase_add_test(tc, test_connect_keeps_seq_json_safe);
    tcase_add_test(tc, test_connect_bounds_the_data_size);
    tcase_add_test(tc, test_connect_bounds_the_json_values_of_items_only);
    tcase_add_test(tc, test_fetch_needs_a_node_key);
    tcase_add_test(tc, test_notification_needs_a_task_id_and_a_well_formed_key_if_any);
    tcase_add_test(tc, test_report_status_accepts_the_four_statuses_a_worker_reports);
    tcase_add_test(tc, test_report_status_refuses_other_or_unknown_statuses);
    tcase_add_test(tc, test_report_status_accepts_pending_only_with_an_epoch);
    tcase_add_test(tc, test_report_status_needs_a_state_a_node_key_and_a_task_id);
    tcase_add_test(tc, test_report_status_bounds_totals_pid_and_error);
    suite_add_tcase(s, tc);

    tc = tcase_create("admin_service");
    tcase_add_test(tc, test_metrics_has_nothing_to_refuse);
    tcase_add_test(tc, test_list_nodes_takes_a_node_key_as_page_token);
    tcase_add_test(tc, test_submit_accepts_a_well_formed_task);
    tcase_add_test(tc, test_submit_needs_a_spec_with_a_command);
    tcase_add_test(tc, test_submit_bounds_cmd_and_param);
    tcase_add_test(tc, test_submit_refuses_cmd_or_param_that_is_not_utf8);
    tcase_add_test(tc, test_submit_bounds_the_task_name);
    tcase_add_test(tc, test_submit_keeps_timeout_and_priority_in_range);
    tcase_add_test(tc, test_submit_keeps_retries_in_range);
    tcase_add_test(tc, test_submit_checks_every_env_entry);
    tcase_add_test(tc, test_submit_bounds_the_number_of_env_entries);
    tcase_add_test(tc, test_submit_checks_the_node_keys_and_their_number);
    tcase_add_test(tc, test_list_tasks_takes_an_optional_known_status_and_node_key);
    tcase_add_test(tc, test_task_request_needs_a_task_id_and_a_json_safe_from);
    tcase_add_test(tc, test_list_tasks_takes_a_task_prefix_or_a_page_token);
    tcase_add_test(tc, test_purge_needs_a_json_safe_positive_time);
    tcase_add_test(tc, test_events_request_needs_a_json_safe_cursor);
    suite_add_tcase(s, tc);

    tc = tcase_create("dispatch");
    tcase_add_test(tc, test_every_request_type_has_a_validator);
    tcase_add_test(tc, test_create_schedule_checks_expression_offset_target_and_policies);
    tcase_add_test(tc, test_spider_requests_and_a_task_spider);
    tcase_add_test(tc, test_validate_request_dispatches_on_the_message_type);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = validate_suite};
