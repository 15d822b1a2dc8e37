/*
 * Behaviour of command-line and environment parsing: defaults, precedence of flags over the
 * environment, per-command options, error messages, and the duration, size and address helpers.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"

#include "config.h"
#include "core/limits.h"
#include "core/roles.h"

#define MAX_ARGS 32
#define MAX_ENV  16

/* The fake environment every parse in this file sees; reset before each test. */
static const char *env_names[MAX_ENV];
static const char *env_values[MAX_ENV];
static size_t n_env;

static void env_clear(void)
{
    n_env = 0;
}

static void env_set(const char *name, const char *value)
{
    ck_assert_uint_lt(n_env, MAX_ENV);
    env_names[n_env] = name;
    env_values[n_env] = value;
    n_env++;
}

static char *fake_getenv(const char *name)
{
    for (size_t i = 0; i < n_env; i++) {
        if (strcmp(env_names[i], name) == 0)
            return (char *)env_values[i];
    }
    return NULL;
}

static struct config cfg;
static char err[256];

/* Parses "crawlab-node" followed by the NULL-terminated words; argv is built by hand as in
 * main(), with writable copies so that nothing relies on the strings being literals. */
static int parse(const char *first, ...)
{
    static char storage[MAX_ARGS][512];
    char *argv[MAX_ARGS + 1];
    int argc = 0;

    snprintf(storage[argc], sizeof(storage[argc]), "crawlab-node");
    argv[argc] = storage[argc];
    argc++;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        ck_assert_int_lt(argc, MAX_ARGS);
        snprintf(storage[argc], sizeof(storage[argc]), "%s", a);
        argv[argc] = storage[argc];
        argc++;
    }
    va_end(ap);
    argv[argc] = NULL;

    config_free(&cfg);
    memset(err, 0, sizeof(err));
    return config_parse(&cfg, argc, argv, fake_getenv, err, sizeof(err));
}

static void setup(void)
{
    env_clear();
    memset(&cfg, 0, sizeof(cfg));
}

static void teardown(void)
{
    config_free(&cfg);
}

/* Asserts that the last parse failed with -EINVAL and a message containing every fragment. */
static void expect_error(int rc, const char *fragment, const char *fragment2)
{
    ck_assert_msg(rc == -EINVAL, "expected -EINVAL, got %d", rc);
    ck_assert_msg(strstr(err, fragment) != NULL, "message '%s' lacks '%s'", err, fragment);
    if (fragment2)
        ck_assert_msg(strstr(err, fragment2) != NULL, "message '%s' lacks '%s'", err, fragment2);
}

#define TASK_ID "65a1b2c3d4e5f60718293a4b"

/* ---- Defaults and roles ---- */

START_TEST(test_master_gets_documented_defaults)
{
    ck_assert_int_eq(parse("--role=master", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_MASTER);
    ck_assert_str_eq(cfg.listen_host, "127.0.0.1"); /* no TLS: loopback only */
    ck_assert_int_eq(cfg.listen_port, 9666);
    ck_assert_ptr_null(cfg.data_dir);
    ck_assert_ptr_null(cfg.auth_key);
    ck_assert_ptr_null(cfg.auth_key_file);
    ck_assert(!cfg.insecure_no_auth);
    ck_assert_int_eq(cfg.log_level, LOG_INFO);
    ck_assert_int_eq(cfg.log_format, LOG_FORMAT_TEXT);
    ck_assert_uint_eq(cfg.heartbeat_interval_ms, 5000);
    ck_assert_uint_eq(cfg.shutdown_grace_ms, 30000);
    ck_assert_uint_eq(cfg.disconnect_grace_ms, 300000);
    ck_assert_uint_eq(cfg.retention_ms, 30ULL * 24 * 3600 * 1000);
}
END_TEST

START_TEST(test_worker_gets_documented_defaults)
{
    ck_assert_int_eq(parse("--role=worker", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_WORKER);
    ck_assert_str_eq(cfg.masters[0].host, "127.0.0.1");
    ck_assert_int_eq(cfg.masters[0].port, 9666);
    ck_assert_ptr_null(cfg.node_key);
    ck_assert_ptr_null(cfg.node_name);
    ck_assert_int_eq(cfg.max_runners, 8);
    ck_assert_uint_eq(cfg.heartbeat_interval_ms, 5000);
    ck_assert_uint_eq(cfg.fetch_interval_ms, 1000);
    ck_assert_uint_eq(cfg.cancel_grace_ms, 15000);
    ck_assert_uint_eq(cfg.shutdown_grace_ms, 30000);
    ck_assert_uint_eq(cfg.spool_max_bytes, 1ULL << 30);
    ck_assert_int_eq(cfg.task_containment, CONFIG_CONTAIN_AUTO);
    ck_assert_int_eq(cfg.task_max_pids, 0);
}
END_TEST

START_TEST(test_client_commands_get_documented_defaults)
{
    ck_assert_int_eq(parse("nodes", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_NODES);
    ck_assert_str_eq(cfg.masters[0].host, "127.0.0.1");
    ck_assert_int_eq(cfg.masters[0].port, 9666);
    ck_assert(!cfg.json);

    ck_assert_int_eq(parse("tasks", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_TASKS);
    ck_assert_ptr_null(cfg.status_filter);

    ck_assert_int_eq(parse("submit", "--", "echo", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_SUBMIT);
    ck_assert_int_eq(cfg.priority, 5); /* Crawlab's default */
    ck_assert_int_eq(cfg.retries, 0);
    ck_assert_uint_eq(cfg.retry_delay_ms, 10000);
    ck_assert_uint_eq(cfg.timeout_ms, 0);
    ck_assert_uint_eq(cfg.n_nodes, 0);
    ck_assert(!cfg.all_nodes);
    ck_assert_uint_eq(cfg.n_env, 0);
    ck_assert_ptr_null(cfg.task_name);

    ck_assert_int_eq(parse("logs", TASK_ID, NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_LOGS);
    ck_assert_str_eq(cfg.task_id, TASK_ID);
    ck_assert(!cfg.follow);

    ck_assert_int_eq(parse("results", TASK_ID, NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_RESULTS);

    ck_assert_int_eq(parse("cancel", TASK_ID, NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_CANCEL);
    ck_assert(!cfg.force);
}
END_TEST

START_TEST(test_metrics_command_and_metrics_listen)
{
    ck_assert_int_eq(parse("metrics", "--master=10.0.0.1:9000", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_METRICS);
    ck_assert_str_eq(cfg.masters[0].host, "10.0.0.1");
    expect_error(parse("metrics", TASK_ID, NULL), "unexpected argument", NULL);
    expect_error(parse("metrics", "--json", NULL), "'--json' is not an option of 'metrics'", NULL);

    ck_assert_int_eq(parse("--role=master", NULL), 0);
    ck_assert_ptr_null(cfg.metrics_host);
    ck_assert_int_eq(parse("--role=master", "--metrics-listen=127.0.0.1:9100", NULL), 0);
    ck_assert_str_eq(cfg.metrics_host, "127.0.0.1");
    ck_assert_int_eq(cfg.metrics_port, 9100);
    ck_assert_int_eq(parse("--role=master", "--metrics-listen=[::1]:9101", NULL), 0);
    ck_assert_str_eq(cfg.metrics_host, "::1");
    ck_assert_int_eq(cfg.metrics_port, 9101);
    /* The address must be named, and the port given. */
    expect_error(parse("--role=master", "--metrics-listen=9100", NULL), "--metrics-listen",
                 "address named");
    expect_error(parse("--role=master", "--metrics-listen=:9100", NULL), "address named", NULL);
    expect_error(parse("--role=master", "--metrics-listen=127.0.0.1", NULL), "address named", NULL);
    expect_error(parse("--role=master", "--metrics-listen=[::1]", NULL), "address named", NULL);
    expect_error(parse("--role=master", "--metrics-listen=127.0.0.1:0", NULL), "--metrics-listen",
                 NULL);
    expect_error(parse("--role=worker", "--metrics-listen=127.0.0.1:9100", NULL),
                 "not an option of 'worker'", NULL);
}
END_TEST

/* Crawlab's own spelling first, then the other accepted ones, in mixed case. */
static const struct {
    const char *value;
    enum config_command role;
} node_master_values[] = {
    {"Y", CMD_MASTER},     {"y", CMD_MASTER}, {"yes", CMD_MASTER}, {"TRUE", CMD_MASTER},
    {"1", CMD_MASTER},     {"N", CMD_WORKER}, {"n", CMD_WORKER},   {"No", CMD_WORKER},
    {"false", CMD_WORKER}, {"0", CMD_WORKER},
};

START_TEST(test_crawlab_node_master_selects_the_role)
{
    env_set("CRAWLAB_NODE_MASTER", node_master_values[_i].value);
    ck_assert_int_eq(parse(NULL), 0);
    ck_assert_int_eq(cfg.command, node_master_values[_i].role);
}
END_TEST

START_TEST(test_role_flag_wins_over_crawlab_node_master)
{
    env_set("CRAWLAB_NODE_MASTER", "Y");
    ck_assert_int_eq(parse("--role", "worker", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_WORKER);
}
END_TEST

START_TEST(test_daemon_without_role_is_refused)
{
    expect_error(parse(NULL), "--role is required", NULL);
    expect_error(parse("--max-runners=4", NULL), "--role is required", NULL);
}
END_TEST

START_TEST(test_bad_role_values_name_their_source)
{
    expect_error(parse("--role=boss", NULL), "--role", "'boss'");
    env_set("CRAWLAB_NODE_MASTER", "maybe");
    expect_error(parse(NULL), "CRAWLAB_NODE_MASTER", "'maybe'");
}
END_TEST

START_TEST(test_errors_quoting_a_value_stay_one_printable_line)
{
    expect_error(parse("--role=bo\nss\x1b[31m", NULL), "--role", "'bo?ss?[31m'");
    for (const char *c = err; *c; c++)
        ck_assert_msg((unsigned char)*c >= 0x20 && *c != 0x7f, "control character in: %s", err);
}
END_TEST

START_TEST(test_client_command_ignores_crawlab_node_master)
{
    env_set("CRAWLAB_NODE_MASTER", "maybe");
    ck_assert_int_eq(parse("nodes", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_NODES);
}
END_TEST

START_TEST(test_unknown_command_is_refused)
{
    expect_error(parse("frobnicate", NULL), "unknown command 'frobnicate'", NULL);
    expect_error(parse("master", NULL), "unknown command 'master'", "--role=master");
}
END_TEST

/* ---- Environment ---- */

START_TEST(test_worker_reads_crawlab_environment)
{
    env_set("CRAWLAB_GRPC_HOST", "master.internal");
    env_set("CRAWLAB_GRPC_PORT", "9777");
    env_set("CRAWLAB_NODE_KEY", "node-7");
    env_set("CRAWLAB_NODE_NAME", "crawler 7");
    env_set("CRAWLAB_NODE_MAXRUNNERS", "32");
    env_set("CRAWLAB_AUTH_KEY", "s3cret");
    ck_assert_int_eq(parse("--role=worker", NULL), 0);
    ck_assert_str_eq(cfg.masters[0].host, "master.internal");
    ck_assert_int_eq(cfg.masters[0].port, 9777);
    ck_assert_str_eq(cfg.node_key, "node-7");
    ck_assert_str_eq(cfg.node_name, "crawler 7");
    ck_assert_int_eq(cfg.max_runners, 32);
    ck_assert_str_eq(cfg.auth_key, "s3cret");
}
END_TEST

START_TEST(test_master_reads_server_address_from_environment)
{
    env_set("CRAWLAB_GRPC_SERVER_HOST", "::");
    env_set("CRAWLAB_GRPC_SERVER_PORT", "9000");
    ck_assert_int_eq(parse("--role=master", NULL), 0);
    ck_assert_str_eq(cfg.listen_host, "::");
    ck_assert_int_eq(cfg.listen_port, 9000);
}
END_TEST

START_TEST(test_master_listens_everywhere_by_default_only_with_tls)
{
    ck_assert_int_eq(parse("--role=master", "--tls-cert=m.pem", "--tls-key=m.key", NULL), 0);
    ck_assert_str_eq(cfg.listen_host, "0.0.0.0");
    ck_assert_int_eq(parse("--role=master", NULL), 0);
    ck_assert_str_eq(cfg.listen_host, "127.0.0.1");
    /* The port alone does not name an address. */
    env_set("CRAWLAB_GRPC_SERVER_PORT", "9000");
    ck_assert_int_eq(parse("--role=master", NULL), 0);
    ck_assert_str_eq(cfg.listen_host, "127.0.0.1");
    ck_assert_int_eq(cfg.listen_port, 9000);
    /* An address named, by flag or variable, is kept without TLS. */
    ck_assert_int_eq(parse("--role=master", "--listen=0.0.0.0:9001", NULL), 0);
    ck_assert_str_eq(cfg.listen_host, "0.0.0.0");
    env_set("CRAWLAB_GRPC_SERVER_HOST", "0.0.0.0");
    ck_assert_int_eq(parse("--role=master", NULL), 0);
    ck_assert_str_eq(cfg.listen_host, "0.0.0.0");
}
END_TEST

START_TEST(test_flags_win_over_environment)
{
    env_set("CRAWLAB_GRPC_HOST", "from-env");
    env_set("CRAWLAB_GRPC_PORT", "9777");
    env_set("CRAWLAB_NODE_KEY", "env-key");
    env_set("CRAWLAB_NODE_NAME", "env-name");
    env_set("CRAWLAB_NODE_MAXRUNNERS", "32");
    env_set("CRAWLAB_AUTH_KEY", "env-secret");
    ck_assert_int_eq(parse("--role=worker", "--master=flag-host:1234", "--node-key", "flag-key",
                           "--node-name=flag-name", "--max-runners=2", "--auth-key=flag-secret",
                           NULL),
                     0);
    ck_assert_str_eq(cfg.masters[0].host, "flag-host");
    ck_assert_int_eq(cfg.masters[0].port, 1234);
    ck_assert_str_eq(cfg.node_key, "flag-key");
    ck_assert_str_eq(cfg.node_name, "flag-name");
    ck_assert_int_eq(cfg.max_runners, 2);
    ck_assert_str_eq(cfg.auth_key, "flag-secret");
}
END_TEST

START_TEST(test_address_flag_without_port_replaces_environment_port)
{
    env_set("CRAWLAB_GRPC_PORT", "9777");
    ck_assert_int_eq(parse("nodes", "--master=other", NULL), 0);
    ck_assert_str_eq(cfg.masters[0].host, "other");
    ck_assert_int_eq(cfg.masters[0].port, 9666);
}
END_TEST

START_TEST(test_flag_hides_an_invalid_environment_value)
{
    env_set("CRAWLAB_NODE_MAXRUNNERS", "lots");
    ck_assert_int_eq(parse("--role=worker", "--max-runners=3", NULL), 0);
    ck_assert_int_eq(cfg.max_runners, 3);
}
END_TEST

START_TEST(test_auth_key_file_flag_hides_auth_key_variable)
{
    env_set("CRAWLAB_AUTH_KEY", "env-secret");
    ck_assert_int_eq(parse("--role=worker", "--auth-key-file=/etc/key", NULL), 0);
    ck_assert_ptr_null(cfg.auth_key);
    ck_assert_str_eq(cfg.auth_key_file, "/etc/key");

    ck_assert_int_eq(parse("--role=master", "--insecure-no-auth", NULL), 0);
    ck_assert_ptr_null(cfg.auth_key);
    ck_assert(cfg.insecure_no_auth);
}
END_TEST

static const struct {
    const char *name;
    const char *value;
} bad_env[] = {
    {"CRAWLAB_NODE_MAXRUNNERS", "lots"}, {"CRAWLAB_NODE_MAXRUNNERS", "0"},
    {"CRAWLAB_GRPC_PORT", "0"},          {"CRAWLAB_GRPC_PORT", "http"},
    {"CRAWLAB_GRPC_HOST", "a b"},        {"CRAWLAB_NODE_KEY", "bad\tkey"},
};

START_TEST(test_invalid_environment_value_names_the_variable)
{
    env_set(bad_env[_i].name, bad_env[_i].value);
    expect_error(parse("--role=worker", NULL), bad_env[_i].name, NULL);
}
END_TEST

START_TEST(test_environment_of_other_commands_is_ignored)
{
    env_set("CRAWLAB_GRPC_SERVER_PORT", "nope");
    env_set("CRAWLAB_NODE_MAXRUNNERS", "nope");
    ck_assert_int_eq(parse("--role=worker", "--max-runners=2", NULL), 0);
    ck_assert_int_eq(parse("nodes", NULL), 0);
    ck_assert_int_eq(cfg.max_runners, 8);
    env_clear();
    env_set("CRAWLAB_GRPC_PORT", "nope");
    ck_assert_int_eq(parse("--role=master", NULL), 0);
}
END_TEST

START_TEST(test_empty_environment_value_counts_as_unset)
{
    env_set("CRAWLAB_NODE_MASTER", "");
    env_set("CRAWLAB_GRPC_PORT", "");
    expect_error(parse(NULL), "--role is required", NULL);
    ck_assert_int_eq(parse("--role=worker", NULL), 0);
    ck_assert_int_eq(cfg.masters[0].port, 9666);
}
END_TEST

/* ---- Option syntax ---- */

START_TEST(test_both_value_forms_are_accepted)
{
    ck_assert_int_eq(parse("--role", "master", "--listen", "10.0.0.1:7000", "--log-level", "debug",
                           "--log-format=json", "--data-dir=/srv/crawlab", NULL),
                     0);
    ck_assert_int_eq(cfg.command, CMD_MASTER);
    ck_assert_str_eq(cfg.listen_host, "10.0.0.1");
    ck_assert_int_eq(cfg.listen_port, 7000);
    ck_assert_int_eq(cfg.log_level, LOG_DEBUG);
    ck_assert_int_eq(cfg.log_format, LOG_FORMAT_JSON);
    ck_assert_str_eq(cfg.data_dir, "/srv/crawlab");
}
END_TEST

START_TEST(test_negative_value_in_separate_word_is_a_value)
{
    /* Read as --priority's value (and refused as one), not as an option. */
    expect_error(parse("submit", "--priority", "-5", "--", "true", NULL),
                 "--priority: expected an integer from 1 to 10, got '-5'", NULL);
}
END_TEST

START_TEST(test_repeated_single_option_keeps_the_last_value)
{
    ck_assert_int_eq(parse("--role=worker", "--max-runners=2", "--max-runners=9", NULL), 0);
    ck_assert_int_eq(cfg.max_runners, 9);
}
END_TEST

START_TEST(test_option_without_its_value_is_refused)
{
    expect_error(parse("--role=worker", "--node-key", NULL), "'--node-key' requires a value", NULL);
    expect_error(parse("submit", "--name", "--", "true", NULL), "'--name' requires a value", NULL);
    expect_error(parse("--role", NULL), "'--role' requires a value", NULL);
}
END_TEST

START_TEST(test_flag_given_a_value_is_refused)
{
    expect_error(parse("nodes", "--json=yes", NULL), "'--json' takes no value", NULL);
}
END_TEST

START_TEST(test_unknown_option_is_refused_naming_the_command)
{
    expect_error(parse("nodes", "--foo", NULL), "unknown option '--foo' for 'nodes'", NULL);
    expect_error(parse("--role=worker", "-x", NULL), "unknown option '-x' for 'worker'", NULL);
    expect_error(parse("--rol=master", NULL), "unknown option '--rol'", NULL);
}
END_TEST

START_TEST(test_misspelt_option_does_not_echo_its_value)
{
    ck_assert_int_eq(parse("nodes", "--auth-keys=topsecret", NULL), -EINVAL);
    ck_assert_ptr_null(strstr(err, "topsecret"));
    ck_assert_int_eq(parse("nodes", "--auth-key=top secret", NULL), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--auth-key"));
    ck_assert_ptr_null(strstr(err, "secret'"));
}
END_TEST

static const struct {
    const char *args[4];
    const char *message;
} misplaced[] = {
    {{"tasks", "--follow"}, "'--follow' is not an option of 'tasks'"},
    {{"nodes", "--force"}, "'--force' is not an option of 'nodes'"},
    {{"logs", "--json", TASK_ID}, "'--json' is not an option of 'logs'"},
    {{"--role=master", "--max-runners=4"}, "'--max-runners' is not an option of 'master'"},
    {{"--role=worker", "--listen=0.0.0.0:1"}, "'--listen' is not an option of 'worker'"},
    {{"--role=master", "--master=h:1"}, "'--master' is not an option of 'master'"},
    {{"nodes", "--role=master"}, "'--role' is not an option of 'nodes'"},
    {{"nodes", "--data-dir=/x"}, "'--data-dir' is not an option of 'nodes'"},
    {{"tasks", "--node=k"}, "'--node' is not an option of 'tasks'"},
    {{"--role=worker", "--disconnect-grace=1m"},
     "'--disconnect-grace' is not an option of 'worker'"},
};

START_TEST(test_option_of_another_command_is_refused)
{
    const char *const *a = misplaced[_i].args;
    expect_error(parse(a[0], a[1], a[2], a[3], NULL), misplaced[_i].message, NULL);
}
END_TEST

/* Each bad value is refused with a message naming the option that carried it. */
static const struct {
    const char *args[4];
    const char *option;
} bad_values[] = {
    {{"--role=worker", "--max-runners=x"}, "--max-runners: expected an integer from 1 to 1024"},
    {{"--role=worker", "--max-runners=0"}, "--max-runners"},
    {{"--role=worker", "--max-runners=1025"}, "--max-runners"},
    {{"--role=worker", "--max-runners= 4"}, "--max-runners"},
    {{"--role=worker", "--heartbeat-interval=0"}, "--heartbeat-interval: must be greater"},
    {{"--role=worker", "--fetch-interval=soon"}, "--fetch-interval"},
    {{"--role=worker", "--cancel-grace=-1s"}, "--cancel-grace"},
    {{"--role=worker", "--shutdown-grace=99999999999999999999h"}, "--shutdown-grace"},
    {{"--role=master", "--disconnect-grace=5 m"}, "--disconnect-grace"},
    {{"--role=worker", "--spool-max-bytes=lots"}, "--spool-max-bytes"},
    {{"--role=worker", "--spool-max-bytes=64K"}, "--spool-max-bytes: must be at least 1M"},
    {{"--role=worker", "--node-key="}, "--node-key"},
    {{"--role=worker", "--node-name="}, "--node-name"},
    {{"--role=master", "--listen=0.0.0.0:0"}, "--listen"},
    {{"--role=master", "--listen=:9666"}, "--listen"},
    {{"--role=worker", "--master=h:65536"}, "--master"},
    {{"--role=master", "--data-dir="}, "--data-dir"},
    {{"--role=master", "--log-level=loud"}, "--log-level"},
    {{"--role=master", "--log-format=xml"}, "--log-format"},
    {{"nodes", "--auth-key="}, "--auth-key"},
    {{"nodes", "--auth-key-file="}, "--auth-key-file"},
    {{"nodes", "--admin-key="}, "--admin-key"},
    {{"nodes", "--admin-key-file="}, "--admin-key-file"},
    {{"tasks", "--status=done"}, "--status"},
    {{"submit", "--priority=11", "--", "true"}, "--priority: expected an integer from 1 to 10"},
    {{"submit", "--priority=0", "--", "true"}, "--priority: expected an integer from 1 to 10"},
    {{"submit", "--retries=101", "--", "true"}, "--retries: expected an integer from 0 to 100"},
    {{"submit", "--retries=-1", "--", "true"}, "--retries"},
    {{"submit", "--retry-delay=25h", "--", "true"}, "--retry-delay: expected a duration from 0"},
    {{"submit", "--retry-delay=soon", "--", "true"}, "--retry-delay"},
    {{"submit", "--priority=high", "--", "true"}, "--priority"},
    {{"submit", "--timeout=forever", "--", "true"}, "--timeout"},
    {{"submit", "--name=", "--", "true"}, "--name"},
    {{"submit", "--node=", "--", "true"}, "--node"},
    {{"submit", "--env=1ABC=x", "--", "true"}, "--env"},
    {{"submit", "--env=A-B=x", "--", "true"}, "--env"},
    {{"submit", "--env==x", "--", "true"}, "--env"},
    {{"submit", "--env=NOVALUE", "--", "true"}, "--env"},
};

START_TEST(test_bad_value_is_refused_naming_the_option)
{
    const char *const *a = bad_values[_i].args;
    expect_error(parse(a[0], a[1], a[2], a[3], NULL), bad_values[_i].option, NULL);
}
END_TEST

/* The node key is the daemons' (a worker presents it, the master checks it); the admin key the
 * master's and the client commands'. Each reads only its own variable. */
START_TEST(test_node_key_and_admin_key_belong_to_their_commands)
{
    env_set("CRAWLAB_AUTH_KEY", "node-secret");
    env_set("CRAWLAB_ADMIN_KEY", "admin-secret");
    ck_assert_int_eq(parse("nodes", NULL), 0);
    ck_assert_ptr_null(cfg.auth_key);
    ck_assert_str_eq(cfg.admin_key, "admin-secret");
    ck_assert_int_eq(parse("--role=worker", NULL), 0);
    ck_assert_str_eq(cfg.auth_key, "node-secret");
    ck_assert_ptr_null(cfg.admin_key);
    ck_assert_int_eq(parse("--role=master", NULL), 0);
    ck_assert_str_eq(cfg.auth_key, "node-secret");
    ck_assert_str_eq(cfg.admin_key, "admin-secret");
    ck_assert_int_eq(parse("submit", "--admin-key-file=/etc/admin", "--", "true", NULL), 0);
    ck_assert_ptr_null(cfg.admin_key);
    ck_assert_str_eq(cfg.admin_key_file, "/etc/admin");
    ck_assert_int_eq(parse("--role=master", "--admin-key=flag-admin", NULL), 0);
    ck_assert_str_eq(cfg.admin_key, "flag-admin");
    /* A client given the node key is told which key it needs. */
    expect_error(parse("cancel", "--auth-key-file=/k", "0123456789abcdef01234567", NULL),
                 "'--auth-key-file' is not an option of 'cancel'", "--admin-key-file");
    expect_error(parse("--role=worker", "--admin-key=k", NULL),
                 "'--admin-key' is not an option of 'worker'", NULL);
    ck_assert_int_eq(parse("tasks", "--admin-key=bad key", NULL), -EINVAL);
    ck_assert_ptr_null(strstr(err, "bad key"));
}
END_TEST

START_TEST(test_contradictory_options_are_refused)
{
    expect_error(parse("--role=worker", "--auth-key=k", "--auth-key-file=/f", NULL),
                 "--auth-key-file", "cannot be used together");
    expect_error(parse("nodes", "--admin-key=k", "--admin-key-file=/f", NULL), "--admin-key-file",
                 "cannot be used together");
    expect_error(parse("--role=master", "--insecure-no-auth", "--admin-key-file=/f", NULL),
                 "--insecure-no-auth", NULL);
    expect_error(parse("--role=master", "--insecure-no-auth", "--auth-key=k", NULL),
                 "--insecure-no-auth", NULL);
    expect_error(parse("submit", "--node=a", "--all-nodes", "--", "true", NULL), "--all-nodes",
                 NULL);
}
END_TEST

/* "--opt=" followed by n copies of s: a value of a given length in bytes. */
static const char *repeat_arg(const char *opt, const char *s, size_t n)
{
    static char buf[4][512];
    static int next;
    char *b = buf[next++ % 4];
    size_t len = (size_t)snprintf(b, sizeof(buf[0]), "%s=", opt);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(b + len, sizeof(buf[0]) - len, "%s", s);
    ck_assert_uint_lt(len, sizeof(buf[0]) - 1);
    return b;
}

/* A worker whose name the master would refuse at every registration must not start: the bound
 * is the master's (core/rules.h), counted in bytes, and the text must be UTF-8 without controls. */
START_TEST(test_node_name_is_bounded_as_the_master_bounds_it)
{
    ck_assert_int_eq(parse("--role=worker", repeat_arg("--node-name", "n", LIMIT_NAME_MAX), NULL),
                     0);
    ck_assert_uint_eq(strlen(cfg.node_name), LIMIT_NAME_MAX);
    expect_error(parse("--role=worker", repeat_arg("--node-name", "n", LIMIT_NAME_MAX + 1), NULL),
                 "--node-name: expected 1 to 128 bytes of UTF-8 text", NULL);
    /* Two bytes a character: 64 fit, 65 do not. */
    ck_assert_int_eq(
        parse("--role=worker", repeat_arg("--node-name", "\xc3\xa9", LIMIT_NAME_MAX / 2), NULL), 0);
    expect_error(
        parse("--role=worker", repeat_arg("--node-name", "\xc3\xa9", LIMIT_NAME_MAX / 2 + 1), NULL),
        "--node-name", NULL);
    expect_error(parse("--role=worker", "--node-name=bad\xff", NULL), "--node-name", NULL);
    expect_error(parse("--role=worker", "--node-name=del\x7f", NULL), "--node-name", NULL);
    expect_error(parse("--role=worker", "--node-name=two\nlines", NULL), "--node-name", NULL);

    char long_name[LIMIT_NAME_MAX + 2];
    memset(long_name, 'n', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    env_set("CRAWLAB_NODE_NAME", long_name);
    expect_error(parse("--role=worker", NULL), "CRAWLAB_NODE_NAME", "128 bytes");
}
END_TEST

/* Node keys follow the master's rule exactly: 1 to 64 of [A-Za-z0-9._:-]. */
START_TEST(test_node_key_follows_the_master_rule)
{
    ck_assert_int_eq(parse("--role=worker", "--node-key=Az09._:-", NULL), 0);
    ck_assert_str_eq(cfg.node_key, "Az09._:-");
    ck_assert_int_eq(
        parse("--role=worker", repeat_arg("--node-key", "k", LIMIT_NODE_KEY_MAX), NULL), 0);
    ck_assert_uint_eq(strlen(cfg.node_key), LIMIT_NODE_KEY_MAX);
    expect_error(
        parse("--role=worker", repeat_arg("--node-key", "k", LIMIT_NODE_KEY_MAX + 1), NULL),
        "--node-key: expected a node key of 1 to 64 letters, digits", NULL);
    const char *bad[] = {"--node-key=node key", "--node-key=a/b", "--node-key=a@b",
                         "--node-key=caf\xc3\xa9", "--node-key=a\tb"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(parse("--role=worker", bad[i], NULL), "--node-key", NULL);
    env_set("CRAWLAB_NODE_KEY", "with space");
    expect_error(parse("--role=worker", NULL), "CRAWLAB_NODE_KEY", "1 to 64");
}
END_TEST

/* submit sends the task name and node keys to the master, which bounds them the same way. */
START_TEST(test_submit_name_and_nodes_follow_the_master_rules)
{
    ck_assert_int_eq(parse("submit", repeat_arg("--name", "t", LIMIT_NAME_MAX), "--node=w-1:a",
                           "--", "true", NULL),
                     0);
    ck_assert_uint_eq(strlen(cfg.task_name), LIMIT_NAME_MAX);
    expect_error(parse("submit", repeat_arg("--name", "t", LIMIT_NAME_MAX + 1), "--", "true", NULL),
                 "--name", "128 bytes");
    ck_assert_int_eq(parse("submit", "--node=a node name", "--", "true", NULL), 0);
    expect_error(parse("submit", "--node=a\tb", "--", "true", NULL), "--node",
                 "expected a node key or name");
    expect_error(parse("submit", repeat_arg("--node", "k", LIMIT_NAME_MAX + 1), "--", "true", NULL),
                 "--node", NULL);
}
END_TEST

/* --label: KEY=VALUE (core/rules.h), no KEY twice, not with --node; the worker's too. */
START_TEST(test_labels_and_the_node_command)
{
    ck_assert_int_eq(
        parse("submit", "--label=gpu=1", "--label", "zone=eu west", "--", "true", NULL), 0);
    ck_assert_uint_eq(cfg.n_labels, 2);
    ck_assert_str_eq(cfg.labels[1], "zone=eu west");
    ck_assert_int_eq(parse("--role=worker", "--label=gpu=", NULL), 0);
    expect_error(parse("submit", "--label=gpu", "--", "true", NULL), "--label", "KEY=VALUE");
    expect_error(parse("submit", "--label=g pu=1", "--", "true", NULL), "--label", "KEY=VALUE");
    expect_error(parse("submit", "--label=gpu=1", "--label=gpu=2", "--", "true", NULL), "--label",
                 "given twice");
    expect_error(parse("submit", "--label=gpu=1", "--node=w1", "--", "true", NULL), "'--label'",
                 "'--node'");
    expect_error(parse("schedule", "list", "--label=gpu=1", NULL), "takes none", NULL);
    expect_error(parse("tasks", "--label=gpu=1", NULL), "'--label' is not an option", NULL);

    ck_assert_int_eq(parse("node", "drain", "my worker", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_NODE);
    ck_assert_str_eq(cfg.node_action, "drain");
    ck_assert_str_eq(cfg.node_target, "my worker");
    expect_error(parse("node", "pause", "w1", NULL), "unknown sub-command 'node pause'", NULL);
    expect_error(parse("node", "rm", NULL), "'node rm' needs a node", NULL);
    expect_error(parse("node", "rm", "w1", "w2", NULL), "unexpected argument 'w2'", NULL);
    expect_error(parse("node", NULL), "'node' needs a sub-command", NULL);
}
END_TEST

START_TEST(test_failed_parse_leaves_nothing_to_free)
{
    ck_assert_int_eq(
        parse("submit", "--node=a", "--env=A=1", "--name=n", "--all-nodes", "--", "true", NULL),
        -EINVAL);
    ck_assert_ptr_null(cfg.nodes);
    ck_assert_ptr_null(cfg.env);
    ck_assert_ptr_null(cfg.masters[0].host);
    config_free(&cfg);
}
END_TEST

/* ---- submit ---- */

START_TEST(test_submit_collects_nodes_env_and_command)
{
    ck_assert_int_eq(parse("submit", "--node=alpha", "--node", "beta", "--env=A=1", "--env",
                           "_B2=x=y", "--env=EMPTY=", "--name=crawl quotes", "--priority=10",
                           "--timeout=1h30m", "--", "scrapy", "crawl", "--help", NULL),
                     0);
    ck_assert_int_eq(cfg.command, CMD_SUBMIT);
    ck_assert_uint_eq(cfg.n_nodes, 2);
    ck_assert_str_eq(cfg.nodes[0], "alpha");
    ck_assert_str_eq(cfg.nodes[1], "beta");
    ck_assert_ptr_null(cfg.nodes[2]);
    ck_assert_uint_eq(cfg.n_env, 3);
    ck_assert_str_eq(cfg.env[0], "A=1");
    ck_assert_str_eq(cfg.env[1], "_B2=x=y");
    ck_assert_str_eq(cfg.env[2], "EMPTY=");
    ck_assert_str_eq(cfg.task_name, "crawl quotes");
    ck_assert_int_eq(cfg.priority, 10);
    ck_assert_uint_eq(cfg.timeout_ms, 5400000);
    ck_assert_uint_eq(cfg.n_argv_cmd, 3);
    ck_assert_str_eq(cfg.argv_cmd[0], "scrapy");
    ck_assert_str_eq(cfg.argv_cmd[1], "crawl");
    ck_assert_str_eq(cfg.argv_cmd[2], "--help");
    ck_assert_ptr_null(cfg.argv_cmd[3]);
}
END_TEST

START_TEST(test_submit_to_all_nodes)
{
    ck_assert_int_eq(parse("submit", "--all-nodes", "--", "true", NULL), 0);
    ck_assert(cfg.all_nodes);
}
END_TEST

START_TEST(test_submit_without_command_is_refused)
{
    expect_error(parse("submit", NULL), "'submit' needs a command after '--'", NULL);
    expect_error(parse("submit", "--name=x", "--", NULL), "'submit' needs a command", NULL);
    expect_error(parse("submit", "--", "", NULL), "'submit' needs a command", NULL);
}
END_TEST

START_TEST(test_submit_refuses_command_words_before_dashdash)
{
    expect_error(parse("submit", "scrapy", "--", "true", NULL), "unexpected argument 'scrapy'",
                 "after '--'");
}
END_TEST

START_TEST(test_submit_refuses_duplicates)
{
    expect_error(parse("submit", "--env=A=1", "--env=A=2", "--", "true", NULL), "--env",
                 "'A' is given twice");
    expect_error(parse("submit", "--node=n1", "--node=n1", "--", "true", NULL), "--node", "twice");
}
END_TEST

/* ---- Task ids and other positionals ---- */

START_TEST(test_task_id_must_be_24_lowercase_hex)
{
    ck_assert_int_eq(parse("cancel", "--force", TASK_ID, NULL), 0);
    ck_assert_str_eq(cfg.task_id, TASK_ID);
    ck_assert(cfg.force);
    ck_assert_int_eq(parse("logs", "--", TASK_ID, "--follow", NULL), -EINVAL);
    ck_assert_int_eq(parse("logs", "--follow", "--", TASK_ID, NULL), 0);
    ck_assert(cfg.follow);

    expect_error(parse("logs", "65A1B2C3D4E5F60718293A4B", NULL), "TASK_ID", "24 lowercase");
    expect_error(parse("logs", "65a1b", NULL), "TASK_ID", "at least 6");
    expect_error(parse("logs", "65a1b2c3d4e5f60718293a4b0", NULL), "TASK_ID", NULL);
    expect_error(parse("results", "65a1b2c3d4e5f60718293a4g", NULL), "TASK_ID", NULL);
    expect_error(parse("cancel", NULL), "'cancel' needs a TASK_ID", NULL);
    expect_error(parse("results", TASK_ID, TASK_ID, NULL), "unexpected argument", NULL);
}
END_TEST

START_TEST(test_unexpected_positional_is_refused)
{
    expect_error(parse("nodes", "extra", NULL), "unexpected argument 'extra' for 'nodes'", NULL);
    expect_error(parse("--role=worker", "extra", NULL), "unexpected argument 'extra' for 'worker'",
                 NULL);
}
END_TEST

START_TEST(test_tasks_status_filter_accepts_every_status)
{
    static const char *const statuses[] = {"pending", "assigned",  "running",  "finished",
                                           "error",   "cancelled", "abnormal", "node_disconnected"};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        ck_assert_int_eq(parse("tasks", "--status", statuses[i], "--json", NULL), 0);
        ck_assert_str_eq(cfg.status_filter, statuses[i]);
        ck_assert(cfg.json);
    }
}
END_TEST

/* ---- Help and version ---- */

START_TEST(test_help_and_version_win_anywhere)
{
    ck_assert_int_eq(parse("--help", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_HELP);
    ck_assert_int_eq(parse("-h", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_HELP);
    ck_assert_int_eq(parse("submit", "--bogus", "-h", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_HELP);
    ck_assert_int_eq(parse("frobnicate", "--help", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_HELP);
    ck_assert_int_eq(parse("--version", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_VERSION);
    ck_assert_int_eq(parse("tasks", "--status=bogus", "--version", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_VERSION);
}
END_TEST

START_TEST(test_help_after_dashdash_belongs_to_the_task)
{
    ck_assert_int_eq(parse("submit", "--", "curl", "--help", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_SUBMIT);
    ck_assert_int_eq(parse("submit", "--name", "-h", "--", "true", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_SUBMIT);
    ck_assert_str_eq(cfg.task_name, "-h");
}
END_TEST

START_TEST(test_usage_lists_every_command_and_option)
{
    static const char *const expected[] = {
        "--role=master",
        "--role=worker",
        "nodes",
        "submit",
        "tasks",
        "logs",
        "results",
        "cancel",
        "--listen=",
        "--master=",
        "--data-dir=",
        "--auth-key=",
        "--auth-key-file=",
        "--insecure-no-auth",
        "--log-level=",
        "--log-format=",
        "--node-key=",
        "--node-name=",
        "--max-runners=",
        "--heartbeat-interval=",
        "--fetch-interval=",
        "--reconnect-max=",
        "--cancel-grace=",
        "--shutdown-grace=",
        "--disconnect-grace=",
        "--spool-max-bytes=",
        "--json",
        "--node=",
        "--all-nodes",
        "--priority=",
        "--timeout=",
        "--env=",
        "--name=",
        "--status=",
        "--follow",
        "--force",
        "--help",
        "--version",
        "CRAWLAB_NODE_MASTER",
        "CRAWLAB_GRPC_HOST",
        "CRAWLAB_GRPC_PORT",
        "CRAWLAB_GRPC_SERVER_HOST",
        "CRAWLAB_AUTH_KEY",
        "CRAWLAB_NODE_MAXRUNNERS",
        "Default: 127.0.0.1:9666 without TLS (loopback only), 0.0.0.0:9666 with TLS.",
        "Default: 127.0.0.1:9666.",
        "Default: 8.",
        "Default: 5s.",
        "Default: 1s.",
        "Default: 15s.",
        "Default: 30s.",
        "Default: 5m.",
        "Default: 1G.",
    };
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(out);
    config_usage(out);
    fclose(out);
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
        ck_assert_msg(strstr(text, expected[i]) != NULL, "usage lacks '%s'", expected[i]);
    free(text);
}
END_TEST

/* ---- TLS ---- */

START_TEST(test_master_tls_flags_in_both_forms_require_client_certificates_with_a_ca)
{
    ck_assert_int_eq(parse("--role=master", "--tls-cert=/pki/master.pem", "--tls-key",
                           "/pki/master.key", "--tls-ca", "/pki/ca.pem", NULL),
                     0);
    ck_assert_str_eq(cfg.tls_cert, "/pki/master.pem");
    ck_assert_str_eq(cfg.tls_key, "/pki/master.key");
    ck_assert_str_eq(cfg.tls_ca, "/pki/ca.pem");
    ck_assert(cfg.tls_require_client_cert);
}
END_TEST

START_TEST(test_master_client_auth_defaults_and_explicit_values)
{
    ck_assert_int_eq(parse("--role=master", "--tls-cert=c", "--tls-key=k", NULL), 0);
    ck_assert(!cfg.tls_require_client_cert);
    ck_assert_ptr_null(cfg.tls_ca);
    ck_assert_int_eq(parse("--role=master", "--tls-cert=c", "--tls-key=k", "--tls-ca=a",
                           "--tls-client-auth=none", NULL),
                     0);
    ck_assert(!cfg.tls_require_client_cert);
    ck_assert_int_eq(parse("--role=master", "--tls-cert=c", "--tls-key=k", "--tls-ca=a",
                           "--tls-client-auth", "require", NULL),
                     0);
    ck_assert(cfg.tls_require_client_cert);
}
END_TEST

START_TEST(test_plaintext_stays_the_default)
{
    ck_assert_int_eq(parse("--role=master", NULL), 0);
    ck_assert_ptr_null(cfg.tls_cert);
    ck_assert_int_eq(parse("--role=worker", NULL), 0);
    ck_assert_ptr_null(cfg.tls_ca);
    ck_assert_int_eq(parse("nodes", NULL), 0);
    ck_assert_ptr_null(cfg.tls_ca);
}
END_TEST

START_TEST(test_worker_and_clients_take_tls_flags)
{
    ck_assert_int_eq(parse("--role=worker", "--tls-ca=ca.pem", "--tls-cert", "w.pem",
                           "--tls-key=w.key", "--tls-server-name=master.example.com", NULL),
                     0);
    ck_assert_str_eq(cfg.tls_ca, "ca.pem");
    ck_assert_str_eq(cfg.tls_cert, "w.pem");
    ck_assert_str_eq(cfg.tls_key, "w.key");
    ck_assert_str_eq(cfg.tls_server_name, "master.example.com");
    ck_assert_int_eq(parse("nodes", "--tls-ca=ca.pem", "--tls-server-name=10.0.0.5", NULL), 0);
    ck_assert_str_eq(cfg.tls_server_name, "10.0.0.5");
    ck_assert_int_eq(parse("logs", "--tls-ca=ca.pem", "--tls-server-name", "::1", TASK_ID, NULL),
                     0);
    ck_assert_int_eq(parse("submit", "--tls-ca=ca.pem", "--tls-cert=a.pem", "--tls-key=a.key", "--",
                           "true", NULL),
                     0);
    ck_assert_str_eq(cfg.tls_cert, "a.pem");
}
END_TEST

/* Combinations that cannot work, each refused with a message naming what is missing. */
static const struct {
    const char *args[5];
    const char *message;
} bad_tls[] = {
    {{"--role=master", "--tls-key=k"}, "'--tls-key' needs '--tls-cert'"},
    {{"--role=master", "--tls-cert=c"}, "'--tls-cert' needs '--tls-key'"},
    {{"--role=master", "--tls-ca=a"}, "'--tls-ca' needs TLS on the master"},
    {{"--role=master", "--tls-client-auth=none"}, "'--tls-client-auth' needs TLS on the master"},
    {{"--role=master", "--tls-cert=c", "--tls-key=k", "--tls-client-auth=require"},
     "'--tls-client-auth=require' needs '--tls-ca'"},
    {{"--role=master", "--tls-cert=c", "--tls-key=k", "--tls-client-auth=optional"},
     "--tls-client-auth: expected none or require"},
    {{"--role=worker", "--tls-cert=c", "--tls-key=k"}, "'--tls-cert' needs '--tls-ca'"},
    {{"--role=worker", "--tls-server-name=m"}, "'--tls-server-name' needs '--tls-ca'"},
    {{"--role=worker", "--tls-ca=a", "--tls-cert=c"}, "'--tls-cert' needs '--tls-key'"},
    {{"nodes", "--tls-ca=a", "--tls-key=k"}, "'--tls-key' needs '--tls-cert'"},
    {{"nodes", "--tls-key=k"}, "'--tls-key' needs '--tls-ca'"},
    {{"nodes", "--tls-ca="}, "--tls-ca: expected a path"},
    {{"--role=worker", "--tls-ca=a", "--tls-server-name=bad name"}, "--tls-server-name"},
    {{"--role=worker", "--tls-client-auth=none"},
     "'--tls-client-auth' is not an option of 'worker'"},
    {{"--role=master", "--tls-server-name=m"}, "'--tls-server-name' is not an option of 'master'"},
};

START_TEST(test_incomplete_tls_combinations_are_refused)
{
    const char *const *a = bad_tls[_i].args;
    expect_error(parse(a[0], a[1], a[2], a[3], a[4], NULL), bad_tls[_i].message, NULL);
}
END_TEST

/* ---- cert ---- */

START_TEST(test_cert_init_splits_master_hosts)
{
    ck_assert_int_eq(parse("cert", "init", "--dir=/tmp/pki",
                           "--master-host=master.example.com,10.0.0.5,::1", NULL),
                     0);
    ck_assert_int_eq(cfg.command, CMD_CERT_INIT);
    ck_assert_str_eq(cfg.cert_dir, "/tmp/pki");
    ck_assert_uint_eq(cfg.n_cert_hosts, 3);
    ck_assert_str_eq(cfg.cert_hosts[0], "master.example.com");
    ck_assert_str_eq(cfg.cert_hosts[1], "10.0.0.5");
    ck_assert_str_eq(cfg.cert_hosts[2], "::1");
    ck_assert_ptr_null(cfg.cert_hosts[3]);
    ck_assert_int_eq(parse("cert", "init", "--dir", "pki", "--master-host", "localhost", NULL), 0);
    ck_assert_uint_eq(cfg.n_cert_hosts, 1);
}
END_TEST

START_TEST(test_cert_issue_takes_a_name_and_a_hidden_test_flag)
{
    ck_assert_int_eq(parse("cert", "issue", "--dir=pki", "--name=worker-07", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_CERT_ISSUE);
    ck_assert_str_eq(cfg.cert_name, "worker-07");
    ck_assert(!cfg.cert_test_expired);
    ck_assert_int_eq(parse("cert", "issue", "--dir=pki", "--name=old", "--test-expired", NULL), 0);
    ck_assert(cfg.cert_test_expired);
}
END_TEST

START_TEST(test_cert_issue_days_default_to_two_years_within_the_cas_ten)
{
    ck_assert_int_eq(parse("cert", "issue", "--dir=pki", "--name=w", NULL), 0);
    ck_assert_int_eq(cfg.cert_days, 731);
    ck_assert_int_eq(parse("cert", "issue", "--dir=pki", "--name=w", "--days=10", NULL), 0);
    ck_assert_int_eq(cfg.cert_days, 10);
    ck_assert_int_eq(parse("cert", "issue", "--dir=pki", "--name=w", "--days=3652", NULL), 0);
    ck_assert_int_eq(cfg.cert_days, 3652);
    expect_error(parse("cert", "issue", "--dir=pki", "--name=w", "--days=0", NULL),
                 "--days: expected a number of days from 1 to 3652", "'0'");
    expect_error(parse("cert", "issue", "--dir=pki", "--name=w", "--days=3653", NULL),
                 "--days: expected a number of days from 1 to 3652", "'3653'");
    expect_error(parse("cert", "init", "--dir=pki", "--master-host=h", "--days=10", NULL),
                 "'--days' is not an option of 'cert init'", NULL);
}
END_TEST

START_TEST(test_cert_issue_role_is_worker_unless_admin_is_asked)
{
    ck_assert_int_eq(parse("cert", "issue", "--dir=pki", "--name=w", NULL), 0);
    ck_assert_uint_eq(cfg.cert_role, ROLE_NODE);
    ck_assert_int_eq(parse("cert", "issue", "--dir=pki", "--name=a", "--role=admin", NULL), 0);
    ck_assert_uint_eq(cfg.cert_role, ROLE_ADMIN);
    ck_assert_int_eq(parse("cert", "issue", "--dir=pki", "--name=w", "--role", "worker", NULL), 0);
    ck_assert_uint_eq(cfg.cert_role, ROLE_NODE);
    expect_error(parse("cert", "issue", "--dir=pki", "--name=w", "--role=master", NULL),
                 "--role: expected worker or admin", "'master'");
    expect_error(parse("cert", "init", "--dir=pki", "--master-host=h", "--role=admin", NULL),
                 "'--role' is not an option of 'cert init'", NULL);
}
END_TEST

static const struct {
    const char *args[5];
    const char *message;
} bad_cert[] = {
    {{"cert"}, "'cert' needs a sub-command"},
    {{"cert", "renew"}, "unknown sub-command 'cert renew'"},
    {{"cert", "init", "--master-host=m"}, "'cert init' needs '--dir'"},
    {{"cert", "init", "--dir=d"}, "'cert init' needs '--master-host'"},
    {{"cert", "init", "--dir=d", "--master-host=a,,b"}, "--master-host: expected host names"},
    {{"cert", "init", "--dir=d", "--master-host=a b"}, "--master-host"},
    {{"cert", "init", "--dir=d", "--master-host=a,a"}, "'a' is given twice"},
    {{"cert", "init", "--dir=d", "--master-host=m", "--name=x"},
     "'--name' is not an option of 'cert init'"},
    {{"cert", "issue", "--name=x"}, "'cert issue' needs '--dir'"},
    {{"cert", "issue", "--dir=d"}, "'cert issue' needs '--name'"},
    {{"cert", "issue", "--dir=d", "--name=../x"}, "--name: expected 1 to 64 letters"},
    {{"cert", "issue", "--dir=d", "--name=.hidden"}, "--name"},
    {{"cert", "issue", "--dir=d", "--name=ca"}, "not 'ca'"},
    {{"cert", "issue", "--dir=d", "--name=x", "--auth-key=k"},
     "'--auth-key' is not an option of 'cert issue'"},
    {{"cert", "init", "--dir=d", "--master-host=m", "--test-expired"},
     "'--test-expired' is not an option of 'cert init'"},
    {{"cert", "issue", "--dir=d", "--name=x", "extra"}, "unexpected argument 'extra'"},
};

START_TEST(test_bad_cert_command_lines_are_refused)
{
    const char *const *a = bad_cert[_i].args;
    expect_error(parse(a[0], a[1], a[2], a[3], a[4], NULL), bad_cert[_i].message, NULL);
}
END_TEST

START_TEST(test_usage_shows_tls_and_cert_but_not_the_test_flag)
{
    static const char *const expected[] = {
        "cert init --dir=DIR --master-host=",
        "cert issue --dir=DIR --name=NAME",
        "--tls-cert=FILE",
        "--tls-key=FILE",
        "--tls-ca=FILE",
        "--tls-client-auth=MODE",
        "--tls-server-name=NAME",
        "--dir=DIR",
        "--master-host=",
        "Default: require with --tls-ca, none without.",
    };
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(out);
    config_usage(out);
    fclose(out);
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
        ck_assert_msg(strstr(text, expected[i]) != NULL, "usage lacks '%s'", expected[i]);
    ck_assert_ptr_null(strstr(text, "test-expired"));
    free(text);
}
END_TEST

START_TEST(test_cert_help_is_help)
{
    ck_assert_int_eq(parse("cert", "--help", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_HELP);
    ck_assert_int_eq(parse("cert", "init", "-h", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_HELP);
}
END_TEST

/* ---- Each value type stores what it read, within its bounds ---- */

START_TEST(test_integer_options_store_their_value_within_bounds)
{
    ck_assert_int_eq(parse("--role=master", "--max-connections=1", NULL), 0);
    ck_assert_int_eq(cfg.max_connections, 1);
    ck_assert_int_eq(parse("--role=master", "--max-connections", "1000000", NULL), 0);
    ck_assert_int_eq(cfg.max_connections, 1000000);
    ck_assert_int_eq(parse("--role=master", NULL), 0);
    ck_assert_int_eq(cfg.max_connections, 10000);
    expect_error(parse("--role=master", "--max-connections=0", NULL),
                 "--max-connections: expected an integer from 1 to 1000000, got '0'", NULL);
    expect_error(parse("--role=master", "--max-connections=1000001", NULL), "--max-connections",
                 "'1000001'");
    ck_assert_int_eq(parse("submit", "--priority=1", "--", "true", NULL), 0);
    ck_assert_int_eq(cfg.priority, 1);
    ck_assert_int_eq(parse("submit", "--priority=10", "--", "true", NULL), 0);
    ck_assert_int_eq(cfg.priority, 10);
    ck_assert_int_eq(parse("submit", "--retries=100", "--retry-delay=24h", "--", "true", NULL), 0);
    ck_assert_int_eq(cfg.retries, 100);
    ck_assert_uint_eq(cfg.retry_delay_ms, 24 * 3600 * 1000);
    ck_assert_int_eq(parse("submit", "--retries=2", "--retry-delay=100ms", "--", "true", NULL), 0);
    ck_assert_int_eq(cfg.retries, 2);
    ck_assert_uint_eq(cfg.retry_delay_ms, 100);
    env_set("CRAWLAB_GRPC_SERVER_PORT", "65536");
    expect_error(parse("--role=master", NULL),
                 "CRAWLAB_GRPC_SERVER_PORT: expected a port from 1 to 65535, got '65536'", NULL);
}
END_TEST

START_TEST(test_task_containment_and_its_process_limit)
{
    ck_assert_int_eq(parse("--role=worker", "--task-containment=subreaper", NULL), 0);
    ck_assert_int_eq(cfg.task_containment, CONFIG_CONTAIN_SUBREAPER);
    ck_assert_int_eq(parse("--role=worker", "--task-containment", "cgroup", NULL), 0);
    ck_assert_int_eq(cfg.task_containment, CONFIG_CONTAIN_CGROUP);
    ck_assert_int_eq(parse("--role=worker", "--task-containment=auto", NULL), 0);
    ck_assert_int_eq(cfg.task_containment, CONFIG_CONTAIN_AUTO);
    expect_error(parse("--role=worker", "--task-containment=jail", NULL),
                 "--task-containment: expected auto, cgroup or subreaper, got 'jail'", NULL);
    ck_assert_int_eq(parse("--role=worker", "--task-max-pids=4194304", NULL), 0);
    ck_assert_int_eq(cfg.task_max_pids, 4194304);
    expect_error(parse("--role=worker", "--task-max-pids=0", NULL),
                 "--task-max-pids: expected an integer from 1 to 4194304, got '0'", NULL);
    expect_error(parse("--role=master", "--task-max-pids=10", NULL),
                 "'--task-max-pids' is not an option of 'master'", NULL);
}
END_TEST

START_TEST(test_duration_options_store_milliseconds)
{
    ck_assert_int_eq(parse("--role=worker", "--heartbeat-interval=2s", "--fetch-interval", "250ms",
                           "--cancel-grace=0", "--shutdown-grace=1m30s", NULL),
                     0);
    ck_assert_uint_eq(cfg.heartbeat_interval_ms, 2000);
    ck_assert_uint_eq(cfg.fetch_interval_ms, 250);
    ck_assert_uint_eq(cfg.cancel_grace_ms, 0);
    ck_assert_uint_eq(cfg.shutdown_grace_ms, 90000);
    ck_assert_int_eq(parse("--role=master", "--disconnect-grace=0", "--shutdown-grace=0", NULL), 0);
    ck_assert_uint_eq(cfg.disconnect_grace_ms, 0);
    ck_assert_uint_eq(cfg.shutdown_grace_ms, 0);
    ck_assert_int_eq(parse("submit", "--timeout=1.5", "--", "true", NULL), 0);
    ck_assert_uint_eq(cfg.timeout_ms, 1500);
    ck_assert_int_eq(parse("--role=worker", NULL), 0);
    ck_assert_uint_eq(cfg.reconnect_max_ms, 30000);
    ck_assert_int_eq(parse("--role=worker", "--reconnect-max=2s", NULL), 0);
    ck_assert_uint_eq(cfg.reconnect_max_ms, 2000);
    ck_assert_int_eq(parse("--role=worker", "--reconnect-max=1h", NULL), 0);
    ck_assert_uint_eq(cfg.reconnect_max_ms, 3600000);
    /* Below the breaker's first cool-down, or past an hour: refused, not quietly raised. */
    expect_error(parse("--role=worker", "--reconnect-max=500ms", NULL),
                 "--reconnect-max: expected a duration from 1s to 1h, got '500ms'", NULL);
    expect_error(parse("--role=worker", "--reconnect-max=61m", NULL),
                 "--reconnect-max: expected a duration from 1s to 1h, got '61m'", NULL);
    expect_error(parse("--role=master", "--reconnect-max=5s", NULL),
                 "'--reconnect-max' is not an option of 'master'", NULL);
    /* Zero would make a timer spin: the intervals refuse it, the graces and timeout do not. */
    expect_error(parse("--role=worker", "--fetch-interval=0ms", NULL),
                 "--fetch-interval: must be greater than zero", NULL);
    expect_error(parse("--role=master", "--heartbeat-interval=0s", NULL),
                 "--heartbeat-interval: must be greater than zero", NULL);
    expect_error(parse("--role=worker", "--cancel-grace=99999999999999999999h", NULL),
                 "--cancel-grace: duration '99999999999999999999h' is too large", NULL);
    expect_error(parse("submit", "--timeout=1w", "--", "true", NULL),
                 "--timeout: expected a duration such as 500ms, 5s, 2m or 1h, got '1w'", NULL);
}
END_TEST

START_TEST(test_size_option_stores_bytes_from_its_minimum)
{
    ck_assert_int_eq(parse("--role=worker", "--spool-max-bytes=1M", NULL), 0);
    ck_assert_uint_eq(cfg.spool_max_bytes, 1ULL << 20);
    ck_assert_int_eq(parse("--role=worker", "--spool-max-bytes", "2GiB", NULL), 0);
    ck_assert_uint_eq(cfg.spool_max_bytes, 2ULL << 30);
    expect_error(parse("--role=worker", "--spool-max-bytes=1048575", NULL),
                 "--spool-max-bytes: must be at least 1M, the longest output line, got '1048575'",
                 NULL);
    expect_error(parse("--role=worker", "--spool-max-bytes=16777216T", NULL),
                 "--spool-max-bytes: size '16777216T' is too large", NULL);
    expect_error(parse("--role=worker", "--spool-max-bytes=1.5G", NULL),
                 "--spool-max-bytes: expected a size such as", "'1.5G'");
}
END_TEST

START_TEST(test_bind_node_key_needs_required_client_certificates)
{
    ck_assert_int_eq(parse("--role=master", "--tls-cert=c", "--tls-key=k", NULL), 0);
    ck_assert(!cfg.tls_bind_node_key);
    /* On by default once every connection shows a certificate; off only when asked. */
    ck_assert_int_eq(parse("--role=master", "--tls-cert=c", "--tls-key=k", "--tls-ca=a", NULL), 0);
    ck_assert(cfg.tls_bind_node_key);
    ck_assert_int_eq(parse("--role=master", "--tls-cert=c", "--tls-key=k", "--tls-ca=a",
                           "--no-tls-bind-node-key", NULL),
                     0);
    ck_assert(!cfg.tls_bind_node_key);
    ck_assert_int_eq(cfg.command, CMD_MASTER);
    ck_assert(cfg.tls_require_client_cert);
    ck_assert_int_eq(parse("--role=master", "--tls-cert=c", "--tls-key=k", "--tls-ca=a",
                           "--tls-client-auth=none", NULL),
                     0);
    ck_assert(!cfg.tls_bind_node_key);
    expect_error(parse("--role=master", "--tls-cert=c", "--tls-key=k", "--tls-ca=a",
                       "--tls-bind-node-key", "--no-tls-bind-node-key", NULL),
                 "cannot be used together", NULL);
    ck_assert_int_eq(parse("--role=master", "--tls-cert=c", "--tls-key=k", "--tls-ca=a",
                           "--tls-bind-node-key", NULL),
                     0);
    ck_assert(cfg.tls_bind_node_key);
    ck_assert(cfg.tls_require_client_cert);
    expect_error(parse("--role=master", "--tls-cert=c", "--tls-key=k", "--tls-bind-node-key", NULL),
                 "'--tls-bind-node-key' needs client certificates", NULL);
    expect_error(parse("--role=master", "--tls-cert=c", "--tls-key=k", "--tls-ca=a",
                       "--tls-client-auth=none", "--tls-bind-node-key", NULL),
                 "'--tls-bind-node-key' needs client certificates", NULL);
    expect_error(parse("--role=master", "--tls-bind-node-key=yes", NULL),
                 "'--tls-bind-node-key' takes no value", NULL);
}
END_TEST

START_TEST(test_repeated_master_host_replaces_the_list)
{
    ck_assert_int_eq(parse("cert", "init", "--dir=d", "--master-host=a,b", "--master-host=c", NULL),
                     0);
    ck_assert_uint_eq(cfg.n_cert_hosts, 1);
    ck_assert_str_eq(cfg.cert_hosts[0], "c");
    ck_assert_ptr_null(cfg.cert_hosts[1]);
}
END_TEST

START_TEST(test_master_takes_a_list_of_addresses_in_order)
{
    ck_assert_int_eq(parse("--role=worker", "--master=a:1,[::1]:2,b", NULL), 0);
    ck_assert_uint_eq(cfg.n_masters, 3);
    ck_assert_str_eq(cfg.masters[0].host, "a");
    ck_assert_int_eq(cfg.masters[0].port, 1);
    ck_assert_str_eq(cfg.masters[1].host, "::1");
    ck_assert_int_eq(cfg.masters[1].port, 2);
    ck_assert_str_eq(cfg.masters[2].host, "b");
    ck_assert_int_eq(cfg.masters[2].port, 9666);
    /* The default and the variables make a list of one. */
    ck_assert_int_eq(parse("nodes", NULL), 0);
    ck_assert_uint_eq(cfg.n_masters, 1);
    ck_assert_str_eq(cfg.masters[0].host, "127.0.0.1");
    /* A repeated flag replaces the list. */
    ck_assert_int_eq(parse("nodes", "--master=a,b", "--master=c:7", NULL), 0);
    ck_assert_uint_eq(cfg.n_masters, 1);
    ck_assert_str_eq(cfg.masters[0].host, "c");
    ck_assert_int_eq(cfg.masters[0].port, 7);
    ck_assert_int_eq(parse("nodes", "--master=a1,a2,a3,a4,a5,a6,a7,a8", NULL), 0);
    ck_assert_uint_eq(cfg.n_masters, LIMIT_MASTERS_MAX);
}
END_TEST

START_TEST(test_master_list_refuses_bad_empty_duplicate_and_too_many_entries)
{
    expect_error(parse("--role=worker", "--master=a:1,b:0", NULL), "--master: expected HOST:PORT",
                 "got 'b:0'");
    expect_error(parse("tasks", "--master=a:1,b c", NULL), "--master", "got 'b c'");
    expect_error(parse("tasks", "--master=a:1,,b", NULL), "--master: an empty entry", "'a:1,,b'");
    expect_error(parse("tasks", "--master=a,", NULL), "--master: an empty entry", NULL);
    expect_error(parse("tasks", "--master=,a", NULL), "--master: an empty entry", NULL);
    expect_error(parse("tasks", "--master=", NULL), "--master: an empty entry", NULL);
    expect_error(parse("tasks", "--master=a:9666,b,a", NULL), "--master: 'a' is given twice", NULL);
    expect_error(parse("tasks", "--master=a1,a2,a3,a4,a5,a6,a7,a8,a9", NULL),
                 "--master: at most 8 masters", NULL);
    /* The same host on two ports is two masters. */
    ck_assert_int_eq(parse("tasks", "--master=a:1,a:2", NULL), 0);
    ck_assert_uint_eq(cfg.n_masters, 2);
}
END_TEST

/* ---- Helpers ---- */

static const struct {
    const char *text;
    uint64_t ms;
} good_durations[] = {
    {"500ms", 500},      {"5s", 5000},
    {"5", 5000},         {"0", 0},
    {"2m", 120000},      {"1h", 3600000},
    {"1.5s", 1500},      {"0.25m", 15000},
    {"1h30m", 5400000},  {"1m0.5s", 60500},
    {"1.0009s", 1000},   {"0.1ms", 0},
    {"1.5", 1500},       {"18446744073709551615ms", UINT64_MAX},
    {"30d", 2592000000}, {"1d12h", 129600000},
};

START_TEST(test_duration_accepts_units_fractions_and_bare_seconds)
{
    uint64_t ms = 12345;
    ck_assert_int_eq(config_parse_duration_ms(good_durations[_i].text, &ms), 0);
    ck_assert_uint_eq(ms, good_durations[_i].ms);
}
END_TEST

START_TEST(test_duration_refuses_bad_syntax)
{
    static const char *const bad[] = {"",    "s",  "-1s", "+1s", " 1s", "1s ",  "1 s",  "1.s",
                                      ".5s", "1w", "1S",  "5x",  "1h5", "1ms5", "0x10s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t ms = 777;
        ck_assert_msg(config_parse_duration_ms(bad[i], &ms) == -EINVAL, "'%s' accepted", bad[i]);
        ck_assert_uint_eq(ms, 777);
    }
    ck_assert_int_eq(config_parse_duration_ms(NULL, &(uint64_t){0}), -EINVAL);
}
END_TEST

START_TEST(test_duration_reports_overflow)
{
    static const char *const huge[] = {"18446744073709551616ms", "18446744073709552s",
                                       "99999999999999999999999", "5124095576030432h",
                                       "18446744073709551615ms1ms"};
    for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
        uint64_t ms = 777;
        ck_assert_msg(config_parse_duration_ms(huge[i], &ms) == -ERANGE, "'%s' not ERANGE",
                      huge[i]);
        ck_assert_uint_eq(ms, 777);
    }
}
END_TEST

START_TEST(test_size_accepts_binary_suffixes)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {
        {"1024", 1024},
        {"0", 0},
        {"10B", 10},
        {"64K", 65536},
        {"64k", 65536},
        {"64KiB", 65536},
        {"64kb", 65536},
        {"512M", 512ULL << 20},
        {"1G", 1ULL << 30},
        {"2gib", 2ULL << 30},
        {"3T", 3ULL << 40},
        {"16777215T", 16777215ULL << 40},
        {"18446744073709551615", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t bytes = 0;
        ck_assert_msg(config_parse_size(good[i].text, &bytes) == 0, "'%s' refused", good[i].text);
        ck_assert_uint_eq(bytes, good[i].bytes);
    }
}
END_TEST

START_TEST(test_size_refuses_bad_syntax_and_overflow)
{
    static const char *const bad[] = {"",    "K",    "-1", "+1",  " 1",
                                      "1 K", "1.5G", "1P", "1KK", "1Kib2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t bytes = 777;
        ck_assert_msg(config_parse_size(bad[i], &bytes) == -EINVAL, "'%s' accepted", bad[i]);
        ck_assert_uint_eq(bytes, 777);
    }
    uint64_t bytes = 777;
    ck_assert_int_eq(config_parse_size("18446744073709551616", &bytes), -ERANGE);
    ck_assert_int_eq(config_parse_size("16777216T", &bytes), -ERANGE);
    ck_assert_int_eq(config_parse_size("99999999999999999999999K", &bytes), -ERANGE);
    ck_assert_uint_eq(bytes, 777);
}
END_TEST

START_TEST(test_hostport_parses_names_ipv4_and_bracketed_ipv6)
{
    static const struct {
        const char *text;
        const char *host;
        int port;
    } good[] = {
        {"master:9000", "master", 9000},
        {"10.1.2.3:1", "10.1.2.3", 1},
        {"crawlab_master.local:65535", "crawlab_master.local", 65535},
        {"[::1]:9777", "::1", 9777},
        {"[fe80::1%eth0]:80", "fe80::1%eth0", 80},
        {"[::ffff:10.0.0.1]:443", "::ffff:10.0.0.1", 443},
        {"onlyhost", "onlyhost", 4242},
        {"[::]", "::", 4242},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char *host = NULL;
        int port = 4242;
        ck_assert_msg(config_parse_hostport(good[i].text, &host, &port) == 0, "'%s' refused",
                      good[i].text);
        ck_assert_str_eq(host, good[i].host);
        ck_assert_int_eq(port, good[i].port);
        free(host);
    }
}
END_TEST

START_TEST(test_hostport_refuses_bad_addresses)
{
    static const char *const bad[] = {
        "",         ":9666",     "host:",    "host:0", "host:65536",  "host:-1", "host:+80",
        "host:80x", "host: 80",  "::1:9666", "::1",    "[::1",        "[]:80",   "[::1]80",
        "[::1]:",   "[host]:80", "a b:80",   "h:1:2",  "[::1]:99999",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *host = (char *)"untouched";
        int port = 4242;
        ck_assert_msg(config_parse_hostport(bad[i], &host, &port) == -EINVAL, "'%s' accepted",
                      bad[i]);
        ck_assert_str_eq(host, "untouched");
        ck_assert_int_eq(port, 4242);
    }
}
END_TEST

/* ---- schedule ---- */

START_TEST(test_schedule_add_takes_an_expression_a_command_and_the_task_flags)
{
    ck_assert_int_eq(parse("schedule", "add", "--tz=+02:00", "--overlap=allow", "--missed=skip",
                           "--node=n1", "--priority=3", "--name=nightly", "--retries=2",
                           "--retry-delay=1m", "30 2 * * 1-5", "--", "echo", "hi", NULL),
                     0);
    ck_assert_int_eq(cfg.retries, 2);
    ck_assert_uint_eq(cfg.retry_delay_ms, 60000);
    ck_assert_int_eq(cfg.command, CMD_SCHEDULE);
    ck_assert_str_eq(cfg.sched_action, "add");
    ck_assert_str_eq(cfg.sched_expr, "30 2 * * 1-5");
    ck_assert_str_eq(cfg.sched_tz, "+02:00");
    ck_assert_str_eq(cfg.sched_overlap, "allow");
    ck_assert_str_eq(cfg.sched_missed, "skip");
    ck_assert_str_eq(cfg.nodes[0], "n1");
    ck_assert_int_eq(cfg.priority, 3);
    ck_assert_str_eq(cfg.task_name, "nightly");
    ck_assert_uint_eq(cfg.n_argv_cmd, 2);
    ck_assert_str_eq(cfg.argv_cmd[1], "hi");

    ck_assert_int_eq(parse("schedule", "rm", "12", NULL), 0);
    ck_assert_str_eq(cfg.sched_action, "rm");
    ck_assert_int_eq(cfg.sched_id, 12);
    ck_assert_int_eq(parse("schedule", "list", "--json", NULL), 0);
    ck_assert(cfg.json);
}
END_TEST

START_TEST(test_task_restart_takes_one_task_id)
{
    ck_assert_int_eq(parse("task", "restart", "abcdef", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_TASK_RESTART);
    ck_assert_str_eq(cfg.task_id, "abcdef");
    ck_assert_int_eq(parse("task", "--json", NULL) == 0, 0);
    expect_error(parse("task", NULL), "'task' needs a sub-command", NULL);
    expect_error(parse("task", "rerun", "abcdef", NULL), "'task' needs a sub-command", NULL);
    expect_error(parse("task", "restart", NULL), "needs a TASK_ID", NULL);
    expect_error(parse("task", "restart", "xyz", NULL), "TASK_ID", NULL);
    expect_error(parse("task", "restart", "abcdef", "012345", NULL), "one TASK_ID", NULL);
    expect_error(parse("task", "restart", "--retries=1", "abcdef", NULL), "--retries", NULL);
}
END_TEST

START_TEST(test_bad_schedule_command_lines_are_refused)
{
    expect_error(parse("schedule", "list", "--retries=1", NULL), "task options", NULL);
    expect_error(parse("schedule", "add", "*/5 * * * 9", "--", "true", NULL),
                 "schedule: day-of-week at position 11", "out of range 0-7");
    expect_error(parse("schedule", "add", "@every", "--", "true", NULL), "schedule: expression",
                 NULL);
    expect_error(parse("schedule", "add", "--tz=../etc/passwd", "@daily", "--", "true", NULL),
                 "--tz", NULL);
    expect_error(parse("schedule", "add", "--overlap=queue", "@daily", "--", "true", NULL),
                 "--overlap", NULL);
    expect_error(parse("schedule", "add", "@daily", NULL), "needs a command after '--'", NULL);
    expect_error(parse("schedule", "add", "--node=a", "--node=b", "@daily", "--", "true", NULL),
                 "one '--node' at most", NULL);
    expect_error(parse("schedule", "add", "--all-nodes", "--node=a", "@daily", "--", "true", NULL),
                 "'--node' and '--all-nodes'", NULL);
    expect_error(parse("schedule", "list", "--all-nodes", NULL), "task options", NULL);
    expect_error(parse("schedule", "pause", NULL), "needs a schedule ID", NULL);
    expect_error(parse("schedule", "pause", "x1", NULL), "ID: expected a schedule id", NULL);
    expect_error(parse("schedule", "show", "0", NULL), "ID: expected a schedule id", NULL);
    expect_error(parse("schedule", "list", "--priority=1", NULL), "task options", NULL);
    expect_error(parse("schedule", "run", NULL), "unknown sub-command 'schedule run'", NULL);
    expect_error(parse("schedule", NULL), "needs a sub-command", NULL);
}
END_TEST

/* ---- spider ---- */

START_TEST(test_spider_command_lines)
{
    ck_assert_int_eq(parse("spider", "push", "./quotes", "--name=quotes", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_SPIDER);
    ck_assert_str_eq(cfg.spider_action, "push");
    ck_assert_str_eq(cfg.spider_dir, "./quotes");
    ck_assert_str_eq(cfg.spider_ref, "quotes");
    ck_assert_int_eq(parse("spider", "show", "quotes@4", NULL), 0);
    ck_assert_str_eq(cfg.spider_ref, "quotes@4");
    ck_assert_int_eq(parse("spider", "list", NULL), 0);
    ck_assert_ptr_null(cfg.spider_ref);
    ck_assert_int_eq(parse("submit", "--spider=quotes@2", "--", "ls", NULL), 0);
    ck_assert_str_eq(cfg.spider_ref, "quotes@2");
    ck_assert_int_eq(parse("--role=master", "--spider-max-bytes=1G", "--spider-max-files=50", NULL),
                     0);
    ck_assert_uint_eq(cfg.spider_max_bytes, UINT64_C(1) << 30);
    ck_assert_int_eq(cfg.spider_max_files, 50);
    ck_assert_int_eq(parse("--role=worker", NULL), 0);
    ck_assert_uint_eq(cfg.spider_cache_bytes, UINT64_C(2) << 30);

    expect_error(parse("spider", "push", "--name=quotes", NULL), "needs the spider's DIR", NULL);
    expect_error(parse("spider", "push", "d", NULL), "needs '--name'", NULL);
    expect_error(parse("spider", "push", "d", "--name=a/b", NULL), "--name", "letters, digits");
    expect_error(parse("spider", "show", NULL), "needs NAME or NAME@VERSION", NULL);
    expect_error(parse("spider", "rm", "q@0", NULL), "NAME[@VERSION]", NULL);
    expect_error(parse("spider", "list", "q@1", NULL), "NAME: expected", NULL);
    expect_error(parse("spider", "list", "--name=q", NULL), "those are for 'spider push'", NULL);
    expect_error(parse("spider", "get", NULL), "unknown sub-command 'spider get'", NULL);
    expect_error(parse("submit", "--spider=a b", "--", "ls", NULL), "--spider", NULL);
    ck_assert_int_eq(parse("schedule", "add", "--spider=q", "@daily", "--", "ls", NULL), 0);
    ck_assert_str_eq(cfg.spider_ref, "q");
    expect_error(parse("schedule", "list", "--spider=q", NULL), "task options", NULL);
    expect_error(parse("--role=master", "--spider-max-bytes=5G", NULL), "at most 4G", NULL);
}
END_TEST

/* --tz: a fixed offset, or a zone name read from $TZDIR (else /usr/share/zoneinfo) and parsed;
 * when this machine has no zoneinfo directory at all, the master decides. */
START_TEST(test_schedule_zones_are_read_where_the_client_has_them)
{
    ck_assert_int_eq(parse("schedule", "add", "--tz=Europe/Berlin", "--all-nodes", "--label=a=b",
                           "30 2 * * *", "--", "true", NULL),
                     0);
    ck_assert_str_eq(cfg.sched_tz, "Europe/Berlin");
    ck_assert(cfg.all_nodes);
    ck_assert_str_eq(cfg.zoneinfo_dir, "/usr/share/zoneinfo");
    expect_error(parse("schedule", "add", "--tz=Nowhere/City", "@daily", "--", "true", NULL),
                 "--tz: unknown zone Nowhere/City", "/usr/share/zoneinfo");

    char dir[] = "/tmp/crawlab-tz-XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/Bad", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("TZif2 but nothing else", f);
    fclose(f);
    env_set("TZDIR", dir);
    expect_error(parse("schedule", "add", "--tz=Bad", "@daily", "--", "true", NULL),
                 "--tz: zone Bad", "not a valid zone file");
    unlink(path);
    rmdir(dir);
    /* the directory is gone: nothing to check against here, the master reads its own */
    ck_assert_int_eq(parse("schedule", "add", "--tz=Bad", "@daily", "--", "true", NULL), 0);
    ck_assert_int_eq(parse("schedule", "add", "--tz=+05:30", "@daily", "--", "true", NULL), 0);
}
END_TEST

/* ---- Paging, short ids and retention ---- */

START_TEST(test_task_id_prefix_of_six_digits_or_more)
{
    ck_assert_int_eq(parse("logs", "65a1b2", NULL), 0);
    ck_assert_str_eq(cfg.task_id, "65a1b2");
    ck_assert_int_eq(parse("cancel", "65a1b2c3d4e5f60718293a4", NULL), 0);
    ck_assert_int_eq(parse("results", TASK_ID, NULL), 0);
    expect_error(parse("results", "65A1B2", NULL), "TASK_ID", NULL);
    expect_error(parse("results", "65a1b2c3d4e5f60718293a4b0", NULL), "TASK_ID", NULL);
}
END_TEST

START_TEST(test_retention_is_a_master_duration)
{
    ck_assert_int_eq(parse("--role=master", "--retention=0", NULL), 0);
    ck_assert_uint_eq(cfg.retention_ms, 0);
    ck_assert_int_eq(parse("--role=master", "--retention", "1s", NULL), 0);
    ck_assert_uint_eq(cfg.retention_ms, 1000);
    ck_assert_int_eq(parse("--role=master", "--retention=7d", NULL), 0);
    ck_assert_uint_eq(cfg.retention_ms, 7ULL * 24 * 3600 * 1000);
    expect_error(parse("--role=master", "--retention=forever", NULL), "--retention",
                 "expected a duration");
    expect_error(parse("--role=worker", "--retention=1d", NULL), "'--retention' is not an option",
                 NULL);
    expect_error(parse("tasks", "--retention=1d", NULL), "'--retention' is not an option", NULL);
}
END_TEST

START_TEST(test_on_event_hooks_are_master_options_and_repeatable)
{
    ck_assert_int_eq(parse("--role=master", NULL), 0);
    ck_assert_uint_eq(cfg.n_on_event, 0);
    ck_assert_uint_eq(cfg.on_event_timeout_ms, 30000);
    ck_assert_int_eq(parse("--role=master", "--on-event=curl -d @- http://x", "--on-event",
                           "logger", "--on-event-timeout=2s", NULL),
                     0);
    ck_assert_uint_eq(cfg.n_on_event, 2);
    ck_assert_str_eq(cfg.on_event[0], "curl -d @- http://x");
    ck_assert_str_eq(cfg.on_event[1], "logger");
    ck_assert_uint_eq(cfg.on_event_timeout_ms, 2000);
    expect_error(parse("--role=master", "--on-event=logger", "--on-event=logger", NULL),
                 "--on-event", "given twice");
    expect_error(parse("--role=master", "--on-event=", NULL), "--on-event", NULL);
    expect_error(parse("--role=master", "--on-event-timeout=0", NULL), "--on-event-timeout",
                 "greater than zero");
    expect_error(parse("--role=worker", "--on-event=logger", NULL), "'--on-event' is not an option",
                 NULL);
}
END_TEST

START_TEST(test_events_takes_after_limit_follow_and_json)
{
    ck_assert_int_eq(parse("events", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_EVENTS);
    ck_assert_uint_eq(cfg.after_event, 0);
    ck_assert_int_eq(parse("events", "--after=42", "--limit=3", "--follow", "--json", NULL), 0);
    ck_assert_uint_eq(cfg.after_event, 42);
    ck_assert_uint_eq(cfg.limit, 3);
    ck_assert(cfg.follow && cfg.json);
    expect_error(parse("events", "--after=-1", NULL), "--after", "event id");
    expect_error(parse("events", "--after=9007199254740992", NULL), "--after", "event id");
    ck_assert_int_eq(parse("events", "--after=9007199254740991", NULL), 0);
    ck_assert_uint_eq(cfg.after_event, 9007199254740991u);
    /* far past any range: refused, never wrapped into one */
    expect_error(parse("events", "--after=18446744073709551617", NULL), "--after", "event id");
    expect_error(parse("--role=worker", "--max-runners=100000000000000000004", NULL),
                 "--max-runners", NULL);
    expect_error(parse("events", "--limit=x", NULL), "--limit", "number of events");
    expect_error(parse("events", "12", NULL), "unexpected argument '12'", NULL);
    expect_error(parse("tasks", "--after=1", NULL), "'--after' is not an option", NULL);
}
END_TEST

START_TEST(test_tasks_limit_and_before)
{
    ck_assert_int_eq(parse("tasks", NULL), 0);
    ck_assert(!cfg.limit_given);
    ck_assert_ptr_null(cfg.before_id);
    ck_assert_int_eq(parse("tasks", "--limit=20", "--before", "65a1b2c3", NULL), 0);
    ck_assert(cfg.limit_given);
    ck_assert_uint_eq(cfg.limit, 20);
    ck_assert_str_eq(cfg.before_id, "65a1b2c3");
    ck_assert_int_eq(parse("tasks", "--limit=0", NULL), 0);
    ck_assert(cfg.limit_given);
    ck_assert_uint_eq(cfg.limit, 0);
    expect_error(parse("tasks", "--limit=-1", NULL), "--limit", "from 0 (all)");
    expect_error(parse("tasks", "--limit=many", NULL), "--limit", NULL);
    expect_error(parse("tasks", "--before=65a1b", NULL), "--before", "at least 6");
    expect_error(parse("tasks", "--before=2026-01-01", NULL), "--before", NULL);
    ck_assert_int_eq(parse("nodes", "--limit=5", NULL), 0);
    ck_assert_uint_eq(cfg.limit, 5);
    expect_error(parse("schedule", "list", "--limit=5", NULL), "'--limit' is not an option", NULL);
    expect_error(parse("logs", "--before=65a1b2", TASK_ID, NULL), "'--before' is not an option",
                 NULL);
}
END_TEST

START_TEST(test_tasks_purge_takes_a_date_or_a_duration)
{
    ck_assert_int_eq(parse("tasks", "purge", "--before=2026-01-31", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_TASKS_PURGE);
    ck_assert_int_eq(cfg.purge_before_ms, 1769817600000LL);
    ck_assert_uint_eq(cfg.purge_age_ms, 0);
    /* "purge" may follow the options, as the other flags may precede it */
    ck_assert_int_eq(parse("tasks", "--before=2026-01-31T12:30:15Z", "purge", NULL), 0);
    ck_assert_int_eq(cfg.command, CMD_TASKS_PURGE);
    ck_assert_int_eq(cfg.purge_before_ms, 1769817600000LL + (12 * 3600 + 30 * 60 + 15) * 1000LL);
    ck_assert_int_eq(parse("tasks", "purge", "--before=30d", NULL), 0);
    ck_assert_int_eq(cfg.purge_before_ms, 0);
    ck_assert_uint_eq(cfg.purge_age_ms, 30ULL * 24 * 3600 * 1000);
    expect_error(parse("tasks", "purge", NULL), "'tasks purge' needs '--before'", NULL);
    expect_error(parse("tasks", "purge", "--before=0", NULL), "--before", "a date");
    expect_error(parse("tasks", "purge", "--before=65a1b2c3", NULL), "--before", "a date");
    expect_error(parse("tasks", "purge", "--before=2026-02-30", NULL), "--before", NULL);
    expect_error(parse("tasks", "purge", "--before=1d", "--limit=3", NULL),
                 "'--limit' is not an option of 'tasks purge'", NULL);
    expect_error(parse("tasks", "purge", "--before=1d", "extra", NULL), "unexpected argument",
                 NULL);
    expect_error(parse("tasks", "prune", NULL), "unexpected argument 'prune'", NULL);
}
END_TEST

START_TEST(test_date_parser)
{
    int64_t ms = 42;
    ck_assert_int_eq(config_parse_date_ms("1970-01-01", &ms), 0);
    ck_assert_int_eq(ms, 0);
    ck_assert_int_eq(config_parse_date_ms("2000-02-29T23:59", &ms), 0);
    ck_assert_int_eq(ms, 951868740000LL);
    ck_assert_int_eq(config_parse_date_ms("2024-12-31T00:00:01", &ms), 0);
    ck_assert_int_eq(ms, 1735603201000LL);
    static const char *const bad[] = {"",
                                      "2026",
                                      "2026-13-01",
                                      "2026-1-01",
                                      "1900-02-29",
                                      "2023-02-29",
                                      "2026-01-01T",
                                      "2026-01-01T24:00",
                                      "2026-01-01 10:00",
                                      "2026-01-01Z1",
                                      "2026-01-01T10:00:60"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ms = 42;
        ck_assert_msg(config_parse_date_ms(bad[i], &ms) == -EINVAL, "'%s' accepted", bad[i]);
        ck_assert_int_eq(ms, 42);
    }
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, setup, teardown);

    tcase_add_test(tc, test_master_gets_documented_defaults);
    tcase_add_test(tc, test_worker_gets_documented_defaults);
    tcase_add_test(tc, test_client_commands_get_documented_defaults);
    tcase_add_test(tc, test_metrics_command_and_metrics_listen);
    tcase_add_loop_test(tc, test_crawlab_node_master_selects_the_role, 0,
                        sizeof(node_master_values) / sizeof(node_master_values[0]));
    tcase_add_test(tc, test_role_flag_wins_over_crawlab_node_master);
    tcase_add_test(tc, test_daemon_without_role_is_refused);
    tcase_add_test(tc, test_bad_role_values_name_their_source);
    tcase_add_test(tc, test_client_command_ignores_crawlab_node_master);
    tcase_add_test(tc, test_unknown_command_is_refused);

    tcase_add_test(tc, test_worker_reads_crawlab_environment);
    tcase_add_test(tc, test_master_reads_server_address_from_environment);
    tcase_add_test(tc, test_master_listens_everywhere_by_default_only_with_tls);
    tcase_add_test(tc, test_flags_win_over_environment);
    tcase_add_test(tc, test_address_flag_without_port_replaces_environment_port);
    tcase_add_test(tc, test_flag_hides_an_invalid_environment_value);
    tcase_add_test(tc, test_auth_key_file_flag_hides_auth_key_variable);
    tcase_add_test(tc, test_node_key_and_admin_key_belong_to_their_commands);
    tcase_add_loop_test(tc, test_invalid_environment_value_names_the_variable, 0,
                        sizeof(bad_env) / sizeof(bad_env[0]));
    tcase_add_test(tc, test_environment_of_other_commands_is_ignored);
    tcase_add_test(tc, test_empty_environment_value_counts_as_unset);

    tcase_add_test(tc, test_both_value_forms_are_accepted);
    tcase_add_test(tc, test_negative_value_in_separate_word_is_a_value);
    tcase_add_test(tc, test_repeated_single_option_keeps_the_last_value);
    tcase_add_test(tc, test_option_without_its_value_is_refused);
    tcase_add_test(tc, test_flag_given_a_value_is_refused);
    tcase_add_test(tc, test_unknown_option_is_refused_naming_the_command);
    tcase_add_test(tc, test_misspelt_option_does_not_echo_its_value);
    tcase_add_loop_test(tc, test_option_of_another_command_is_refused, 0,
                        sizeof(misplaced) / sizeof(misplaced[0]));
    tcase_add_loop_test(tc, test_bad_value_is_refused_naming_the_option, 0,
                        sizeof(bad_values) / sizeof(bad_values[0]));
    tcase_add_test(tc, test_contradictory_options_are_refused);
    tcase_add_test(tc, test_failed_parse_leaves_nothing_to_free);
    tcase_add_test(tc, test_node_name_is_bounded_as_the_master_bounds_it);
    tcase_add_test(tc, test_errors_quoting_a_value_stay_one_printable_line);
    tcase_add_test(tc, test_node_key_follows_the_master_rule);
    tcase_add_test(tc, test_submit_name_and_nodes_follow_the_master_rules);
    tcase_add_test(tc, test_labels_and_the_node_command);

    tcase_add_test(tc, test_submit_collects_nodes_env_and_command);
    tcase_add_test(tc, test_submit_to_all_nodes);
    tcase_add_test(tc, test_submit_without_command_is_refused);
    tcase_add_test(tc, test_submit_refuses_command_words_before_dashdash);
    tcase_add_test(tc, test_submit_refuses_duplicates);
    tcase_add_test(tc, test_task_id_must_be_24_lowercase_hex);
    tcase_add_test(tc, test_unexpected_positional_is_refused);
    tcase_add_test(tc, test_tasks_status_filter_accepts_every_status);

    tcase_add_test(tc, test_help_and_version_win_anywhere);
    tcase_add_test(tc, test_help_after_dashdash_belongs_to_the_task);
    tcase_add_test(tc, test_usage_lists_every_command_and_option);

    tcase_add_test(tc, test_master_tls_flags_in_both_forms_require_client_certificates_with_a_ca);
    tcase_add_test(tc, test_master_client_auth_defaults_and_explicit_values);
    tcase_add_test(tc, test_plaintext_stays_the_default);
    tcase_add_test(tc, test_worker_and_clients_take_tls_flags);
    tcase_add_loop_test(tc, test_incomplete_tls_combinations_are_refused, 0,
                        sizeof(bad_tls) / sizeof(bad_tls[0]));
    tcase_add_test(tc, test_cert_init_splits_master_hosts);
    tcase_add_test(tc, test_cert_issue_takes_a_name_and_a_hidden_test_flag);
    tcase_add_test(tc, test_cert_issue_days_default_to_two_years_within_the_cas_ten);
    tcase_add_test(tc, test_cert_issue_role_is_worker_unless_admin_is_asked);
    tcase_add_loop_test(tc, test_bad_cert_command_lines_are_refused, 0,
                        sizeof(bad_cert) / sizeof(bad_cert[0]));
    tcase_add_test(tc, test_usage_shows_tls_and_cert_but_not_the_test_flag);
    tcase_add_test(tc, test_cert_help_is_help);

    tcase_add_test(tc, test_integer_options_store_their_value_within_bounds);
    tcase_add_test(tc, test_task_containment_and_its_process_limit);
    tcase_add_test(tc, test_duration_options_store_milliseconds);
    tcase_add_test(tc, test_size_option_stores_bytes_from_its_minimum);
    tcase_add_test(tc, test_bind_node_key_needs_required_client_certificates);
    tcase_add_test(tc, test_repeated_master_host_replaces_the_list);
    tcase_add_test(tc, test_master_takes_a_list_of_addresses_in_order);
    tcase_add_test(tc, test_master_list_refuses_bad_empty_duplicate_and_too_many_entries);
    tcase_add_test(tc, test_schedule_add_takes_an_expression_a_command_and_the_task_flags);
    tcase_add_test(tc, test_bad_schedule_command_lines_are_refused);
    tcase_add_test(tc, test_schedule_zones_are_read_where_the_client_has_them);
    tcase_add_test(tc, test_task_restart_takes_one_task_id);
    tcase_add_test(tc, test_spider_command_lines);
    tcase_add_test(tc, test_task_id_prefix_of_six_digits_or_more);
    tcase_add_test(tc, test_retention_is_a_master_duration);
    tcase_add_test(tc, test_tasks_limit_and_before);
    tcase_add_test(tc, test_on_event_hooks_are_master_options_and_repeatable);
    tcase_add_test(tc, test_events_takes_after_limit_follow_and_json);
    tcase_add_test(tc, test_tasks_purge_takes_a_date_or_a_duration);
    suite_add_tcase(s, tc);

    TCase *helpers = tcase_create("helpers");
    tcase_add_loop_test(helpers, test_duration_accepts_units_fractions_and_bare_seconds, 0,
                        sizeof(good_durations) / sizeof(good_durations[0]));
    tcase_add_test(helpers, test_duration_refuses_bad_syntax);
    tcase_add_test(helpers, test_duration_reports_overflow);
    tcase_add_test(helpers, test_size_accepts_binary_suffixes);
    tcase_add_test(helpers, test_size_refuses_bad_syntax_and_overflow);
    tcase_add_test(helpers, test_hostport_parses_names_ipv4_and_bracketed_ipv6);
    tcase_add_test(helpers, test_hostport_refuses_bad_addresses);
    tcase_add_test(helpers, test_date_parser);
    suite_add_tcase(s, helpers);
    return s;
}

const struct unit_tests unit_tests = {.suite = config_suite};
