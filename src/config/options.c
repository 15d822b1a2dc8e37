/*
 * The option table and the environment table, and how a value reaches struct config: each entry
 * names its setter (one per value type: flag, path, checked text, integer range, duration, size,
 * address, list) and where the value goes (an offsetof into struct config, plus the type's
 * bounds). The few options whose handling is their own have a named setter of their own.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/internal.h"
#include "core/cron.h"
#include "core/tz.h"
#include "core/roles.h"
#include "core/rules.h"
#include "core/spider.h"
#include "core/task.h"

#define DEFAULT_PORT            9666
#define DEFAULT_LISTEN_HOST     "0.0.0.0"
#define DEFAULT_MASTER_HOST     "127.0.0.1"
#define DEFAULT_MAX_RUNNERS     8
#define MAX_RUNNERS_LIMIT       1024
#define MAX_CONNECTIONS_LIMIT   1000000
#define TASK_MAX_PIDS_LIMIT     4194304 /* the kernel's own bound on pids (PID_MAX_LIMIT) */
#define DEFAULT_MAX_CONNECTIONS 10000
#define DEFAULT_SPOOL_BYTES     (UINT64_C(1) << 30)
/* --reconnect-max: the breaker's cool-downs start at 1 s (resilience/breaker.h), so no cap lies
 * below that; an hour between probes is as long as a worker may stay away from a master that is
 * back. */
#define RECONNECT_MAX_DEFAULT_MS (30 * 1000)
#define RECONNECT_MAX_MIN_MS     1000
#define RECONNECT_MAX_MAX_MS     (60 * 60 * 1000)
/* The worker splits output lines at 1 MiB; a spool smaller than that could not hold one. */
#define MIN_SPOOL_BYTES (UINT64_C(1) << 20)
#define CERT_NAME_MAX   64
/* The rules of core/rules.h as help and error messages word them. */
#define NAME_RULE         "at most " STR(LIMIT_NAME_MAX) " bytes"
#define NAME_EXPECTED     "expected " RULE_NAME
#define NODE_KEY_EXPECTED "expected a node key of " RULE_NODE_KEY
#define NODE_EXPECTED     "expected a node key or name, " RULE_NAME
#define HOST_EXPECTED     "expected a host name or IP address"
#define TASK_ID_EXPECTED                                                                           \
    "expected a task id, or at least " STR(TASK_ID_PREFIX_MIN) " of its first lowercase hex "      \
                                                               "digits"
/* --limit's bound: far more than a store holds, small enough for every counter. */
#define LIMIT_TASKS_MAX            1000000000
#define DEFAULT_RETENTION_MS       (UINT64_C(30) * 24 * 60 * 60 * 1000)
#define DEFAULT_SPIDER_MAX_BYTES   (UINT64_C(256) << 20)
#define DEFAULT_SPIDER_MAX_FILES   10000
#define DEFAULT_SPIDER_CACHE_BYTES (UINT64_C(2) << 30)
/* The delay before a failed task's first retry (--retry-delay). */
#define DEFAULT_RETRY_DELAY_MS 10000

#define AT(field) offsetof(struct config, field)

static void *field(const struct config_parser *p, size_t at)
{
    return (char *)p->c + at;
}

/* ---- Checks of values that are this module's own (the domain's are in core/rules.h) ---- */

/* A name that becomes a file name under --dir: no '/', no leading '.' or '-'. */
static bool valid_cert_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > CERT_NAME_MAX || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '.' && ch != '_' && ch != '-')
            return false;
    }
    return true;
}

static bool valid_server_name(const char *s)
{
    return config_parse_cert_host(s, strlen(s)) == 0;
}

static bool valid_spider_ref(const char *s)
{
    char name[LIMIT_SPIDER_NAME_MAX + 1];
    uint32_t version;
    return spider_ref_parse(s, name, &version);
}

static bool valid_spider_sha256(const char *s)
{
    return spider_sha256_valid(s);
}

static bool valid_tz(const char *s)
{
    int32_t off;
    return cron_parse_offset(s, &off) == 0 || tz_name_valid(s);
}

static bool valid_overlap(const char *s)
{
    enum cron_overlap o;
    return cron_overlap_parse(s, &o) == 0;
}

static bool valid_missed(const char *s)
{
    enum cron_missed m;
    return cron_missed_parse(s, &m) == 0;
}

static bool valid_status(const char *s)
{
    enum task_status st;
    return task_status_parse(s, &st) == 0;
}

/* A node key or a node name: every key is also a valid name. */
static bool valid_node_entry(const char *s, size_t *key_len)
{
    *key_len = strlen(s);
    return name_valid(s);
}

/* K=V of core/rules.h; K must be unique among the entries. */
static bool valid_label_entry(const char *s, size_t *key_len)
{
    const char *eq = strchr(s, '=');
    *key_len = eq ? (size_t)(eq - s) : 0;
    return label_valid(s, strlen(s));
}

/* K=V: K must be unique among the entries, V may be anything, empty included. */
static bool valid_env_entry(const char *s, size_t *key_len)
{
    const char *eq = strchr(s, '=');
    *key_len = eq ? (size_t)(eq - s) : 0;
    return eq && env_name_valid(s, *key_len);
}

/* ---- Setters, one per value type ---- */

static int set_flag(struct config_parser *p, const struct config_option *o, const char *value,
                    const char *label)
{
    *(bool *)field(p, o->at) = true;
    return 0;
}

static int set_path(struct config_parser *p, const struct config_option *o, const char *value,
                    const char *label)
{
    if (!*value)
        return config_fail(p, "%s: expected a path, got an empty value", label);
    return config_set_string(p, field(p, o->at), value);
}

/* The store's location. It may hold a password: an error never quotes it. */
static int set_store(struct config_parser *p, const struct config_option *o, const char *value,
                     const char *label)
{
    if (!store_location_is_pg(value))
        return config_fail(p, "%s: expected " RULE_STORE, label);
    return config_set_string(p, field(p, o->at), value);
}

/* A string that must pass spec.text.valid. */
static int set_text(struct config_parser *p, const struct config_option *o, const char *value,
                    const char *label)
{
    if (!o->spec.text.valid(value))
        return config_fail(p, "%s: %s, got '%.*s'", label, o->spec.text.expected, QUOTE_MAX, value);
    return config_set_string(p, field(p, o->at), value);
}

/* An int within spec.range. */
static int set_int(struct config_parser *p, const struct config_option *o, const char *value,
                   const char *label)
{
    long n;
    if (config_parse_int(value, o->spec.range.min, o->spec.range.max, &n) != 0)
        return config_fail(p, "%s: expected %s from %ld to %ld, got '%.*s'", label,
                           o->spec.range.noun, o->spec.range.min, o->spec.range.max, QUOTE_MAX,
                           value);
    *(int *)field(p, o->at) = (int)n;
    return 0;
}

static int set_duration(struct config_parser *p, const struct config_option *o, const char *value,
                        const char *label)
{
    uint64_t ms;
    int rc = config_parse_duration_ms(value, &ms);
    if (rc == -ERANGE)
        return config_fail(p, "%s: duration '%.*s' is too large", label, QUOTE_MAX, value);
    if (rc != 0)
        return config_fail(p, "%s: expected a duration such as 500ms, 5s, 2m or 1h, got '%.*s'",
                           label, QUOTE_MAX, value);
    if (o->spec.nonzero && ms == 0)
        return config_fail(p, "%s: must be greater than zero", label);
    *(uint64_t *)field(p, o->at) = ms;
    return 0;
}

static int set_retry_delay(struct config_parser *p, const struct config_option *o,
                           const char *value, const char *label)
{
    int rc = set_duration(p, o, value, label);
    if (rc == 0 && !retry_delay_valid((long long)p->c->retry_delay_ms))
        return config_fail(p, "%s: expected a duration from 0 to 24h, got '%.*s'", label, QUOTE_MAX,
                           value);
    return rc;
}

static int set_reconnect_max(struct config_parser *p, const struct config_option *o,
                             const char *value, const char *label)
{
    int rc = set_duration(p, o, value, label);
    if (rc == 0 && (p->c->reconnect_max_ms < RECONNECT_MAX_MIN_MS ||
                    p->c->reconnect_max_ms > RECONNECT_MAX_MAX_MS))
        return config_fail(p, "%s: expected a duration from 1s to 1h, got '%.*s'", label, QUOTE_MAX,
                           value);
    return rc;
}

static int set_size(struct config_parser *p, const struct config_option *o, const char *value,
                    const char *label)
{
    uint64_t bytes;
    int rc = config_parse_size(value, &bytes);
    if (rc == -ERANGE)
        return config_fail(p, "%s: size '%.*s' is too large", label, QUOTE_MAX, value);
    if (rc != 0)
        return config_fail(p, "%s: expected a size such as 1048576, 64K, 512M or 1G, got '%.*s'",
                           label, QUOTE_MAX, value);
    if (bytes < o->spec.size.min)
        return config_fail(p, "%s: must be at least %s, got '%.*s'", label, o->spec.size.min_text,
                           QUOTE_MAX, value);
    if (o->spec.size.max && bytes > o->spec.size.max)
        return config_fail(p, "%s: must be at most %s, got '%.*s'", label, o->spec.size.max_text,
                           QUOTE_MAX, value);
    *(uint64_t *)field(p, o->at) = bytes;
    return 0;
}

/* A flag replaces the whole address: without a port it means the default port, not the one from
 * the environment. */
static int set_hostport(struct config_parser *p, const struct config_option *o, const char *value,
                        const char *label)
{
    char *host;
    int port = DEFAULT_PORT;
    int rc = config_parse_hostport(value, &host, &port);
    if (rc == -ENOMEM)
        return config_nomem(p);
    if (rc != 0)
        return config_fail(p,
                           "%s: expected HOST:PORT or [IPV6]:PORT with a port from 1 to 65535, "
                           "got '%.*s'",
                           label, QUOTE_MAX, value);
    char **dst = field(p, o->at);
    free(*dst);
    *dst = host;
    *(int *)field(p, o->spec.port_at) = port;
    return 0;
}

/* Adds one entry of --master (len bytes at item) to the list, after the entries before it. */
static int push_master(struct config_parser *p, const char *label, const char *item, size_t len,
                       const char *value)
{
    struct config *c = p->c;
    if (len == 0)
        return config_fail(p, "%s: an empty entry in '%.*s' (masters are separated by one comma)",
                           label, QUOTE_MAX, value);
    if (c->n_masters == LIMIT_MASTERS_MAX)
        return config_fail(p, "%s: at most " STR(LIMIT_MASTERS_MAX) " masters, got more in '%.*s'",
                           label, QUOTE_MAX, value);
    char *one = strndup(item, len);
    if (!one)
        return config_nomem(p);
    char *host;
    int port = DEFAULT_PORT;
    int rc = config_parse_hostport(one, &host, &port);
    free(one);
    if (rc == -ENOMEM)
        return config_nomem(p);
    if (rc != 0)
        return config_fail(p,
                           "%s: expected HOST:PORT or [IPV6]:PORT with a port from 1 to 65535, "
                           "got '%.*s'",
                           label, (int)(len < QUOTE_MAX ? len : QUOTE_MAX), item);
    for (size_t i = 0; i < c->n_masters; i++) {
        if (c->masters[i].port == port && strcmp(c->masters[i].host, host) == 0) {
            free(host);
            return config_fail(p, "%s: '%.*s' is given twice", label,
                               (int)(len < QUOTE_MAX ? len : QUOTE_MAX), item);
        }
    }
    c->masters[c->n_masters++] = (struct config_master){host, port};
    return 0;
}

/* --master=A,B,...: every entry an address (the default port when it names none), none twice
 * (the same host and port), at most LIMIT_MASTERS_MAX; the option replaces the whole list. */
static int set_masters(struct config_parser *p, const struct config_option *o, const char *value,
                       const char *label)
{
    struct config *c = p->c;
    for (size_t i = 0; i < c->n_masters; i++)
        free(c->masters[i].host);
    c->n_masters = 0;
    const char *item = value;
    for (;;) {
        size_t len = strcspn(item, ",");
        int rc = push_master(p, label, item, len, value);
        if (rc != 0 || item[len] == '\0')
            return rc;
        item += len + 1;
    }
}

/* --metrics-listen: like --listen, but the address and the port must both be named. */
static int set_metrics_listen(struct config_parser *p, const struct config_option *o,
                              const char *value, const char *label)
{
    const char *colon = strrchr(value, ':');
    if (!colon || colon == value || !colon[1] || value[strlen(value) - 1] == ']')
        return config_fail(p,
                           "%s: expected ADDR:PORT with the address named (127.0.0.1:PORT for "
                           "loopback), got '%.*s'",
                           label, QUOTE_MAX, value);
    return set_hostport(p, o, value, label);
}

/* A host without a port, as CRAWLAB_GRPC_HOST gives it. */
static int set_host(struct config_parser *p, const struct config_option *o, const char *value,
                    const char *label)
{
    char *host;
    int rc = config_parse_host(value, &host);
    if (rc == -ENOMEM)
        return config_nomem(p);
    if (rc != 0)
        return config_fail(p, "%s: " HOST_EXPECTED ", got '%.*s'", label, QUOTE_MAX, value);
    char **dst = field(p, o->at);
    free(*dst);
    *dst = host;
    return 0;
}

/* A repeatable option: each occurrence adds an entry; an entry whose key is there already is
 * refused. */
static int set_list(struct config_parser *p, const struct config_option *o, const char *value,
                    const char *label)
{
    char ***arr = field(p, o->at);
    size_t *n = field(p, o->spec.list.n_at);
    size_t key_len;
    if (!o->spec.list.valid(value, &key_len))
        return config_fail(p, "%s: %s, got '%.*s'", label, o->spec.list.expected, QUOTE_MAX, value);
    for (size_t i = 0; i < *n; i++) {
        /* Comparing one byte past the key takes in the '=' or the NUL that ends it. */
        if (strncmp((*arr)[i], value, key_len + 1) == 0)
            return config_fail(p, "%s: %s '%.*s' is given twice", label, o->spec.list.noun,
                               (int)key_len, value);
    }
    return config_push_string(p, arr, n, value);
}

/* ---- Setters of one option each ---- */

/* --auth-key, --admin-key and their variables: the value is never quoted. */
static int set_auth_key(struct config_parser *p, const struct config_option *o, const char *value,
                        const char *label)
{
    if (!auth_key_valid(value))
        return config_fail(p, "%s: the key must be " RULE_AUTH_KEY " (value not shown)", label);
    return config_set_string(p, field(p, o->at), value);
}

/* --role picks a daemon's role (scan.c has read it) and, for cert issue, the certificate's. */
static int set_role(struct config_parser *p, const struct config_option *o, const char *value,
                    const char *label)
{
    if (p->c->command != CMD_CERT_ISSUE)
        return 0;
    unsigned r = role_parse(value);
    if (!r)
        return config_fail(p, "%s: expected worker or admin, got '%.*s'", label, QUOTE_MAX, value);
    p->c->cert_role = r;
    return 0;
}

static int set_log_level(struct config_parser *p, const struct config_option *o, const char *value,
                         const char *label)
{
    if (log_level_parse(value, &p->c->log_level) != 0)
        return config_fail(p, "%s: expected error, warn, info or debug, got '%.*s'", label,
                           QUOTE_MAX, value);
    return 0;
}

static int set_log_format(struct config_parser *p, const struct config_option *o, const char *value,
                          const char *label)
{
    if (strcmp(value, "text") == 0)
        p->c->log_format = LOG_FORMAT_TEXT;
    else if (strcmp(value, "json") == 0)
        p->c->log_format = LOG_FORMAT_JSON;
    else
        return config_fail(p, "%s: expected text or json, got '%.*s'", label, QUOTE_MAX, value);
    return 0;
}

static int set_client_auth(struct config_parser *p, const struct config_option *o,
                           const char *value, const char *label)
{
    if (strcmp(value, "none") == 0)
        p->c->tls_require_client_cert = false;
    else if (strcmp(value, "require") == 0)
        p->c->tls_require_client_cert = true;
    else
        return config_fail(p, "%s: expected none or require, got '%.*s'", label, QUOTE_MAX, value);
    return 0;
}

static int set_containment(struct config_parser *p, const struct config_option *o,
                           const char *value, const char *label)
{
    if (strcmp(value, "auto") == 0)
        p->c->task_containment = CONFIG_CONTAIN_AUTO;
    else if (strcmp(value, "cgroup") == 0)
        p->c->task_containment = CONFIG_CONTAIN_CGROUP;
    else if (strcmp(value, "subreaper") == 0)
        p->c->task_containment = CONFIG_CONTAIN_SUBREAPER;
    else
        return config_fail(p, "%s: expected auto, cgroup or subreaper, got '%.*s'", label,
                           QUOTE_MAX, value);
    return 0;
}

/* --name is the task's name for submit and the certificate's for cert issue. */
static int set_name(struct config_parser *p, const struct config_option *o, const char *value,
                    const char *label)
{
    if (p->c->command == CMD_SPIDER) {
        if (!spider_name_valid(value))
            return config_fail(p, "%s: expected " RULE_SPIDER_NAME ", got '%.*s'", label, QUOTE_MAX,
                               value);
        return config_set_string(p, &p->c->spider_ref, value);
    }
    if (p->c->command != CMD_CERT_ISSUE) {
        if (!name_valid(value))
            return config_fail(p, "%s: " NAME_EXPECTED ", got '%.*s'", label, QUOTE_MAX, value);
        return config_set_string(p, &p->c->task_name, value);
    }
    if (!valid_cert_name(value) || strcmp(value, "ca") == 0)
        return config_fail(p,
                           "%s: expected 1 to %d letters, digits, '.', '_' or '-', not "
                           "starting with '.' or '-' and not 'ca', got '%.*s'",
                           label, CERT_NAME_MAX, QUOTE_MAX, value);
    return config_set_string(p, &p->c->cert_name, value);
}

/* --limit=N: at most N tasks, nodes or events, 0 for all. */
static int set_limit(struct config_parser *p, const struct config_option *o, const char *value,
                     const char *label)
{
    long n;
    if (config_parse_int(value, 0, LIMIT_TASKS_MAX, &n) != 0)
        return config_fail(p, "%s: expected a number of %s from 0 (all) to %d, got '%.*s'", label,
                           p->c->command == CMD_EVENTS  ? "events"
                           : p->c->command == CMD_NODES ? "nodes"
                                                        : "tasks",
                           LIMIT_TASKS_MAX, QUOTE_MAX, value);
    p->c->limit = (unsigned)n;
    p->c->limit_given = true;
    return 0;
}

/* --after=ID: an event id, 0 (from the first) to 2^53 - 1. */
static int set_after(struct config_parser *p, const struct config_option *o, const char *value,
                     const char *label)
{
    long id;
    if (value[0] == '-' || config_parse_int(value, 0, LIMIT_SAFE_INT_MAX, &id) < 0)
        return config_fail(p, "%s: expected an event id from 0 to 2^53 - 1, got '%.*s'", label,
                           QUOTE_MAX, value);
    p->c->after_event = (uint64_t)id;
    return 0;
}

/* --on-event=CMD: a non-empty command, for sh -c. */
static bool valid_hook(const char *s, size_t *key_len)
{
    *key_len = strlen(s);
    return *key_len > 0 && *key_len <= LIMIT_CMD_MAX;
}

/* --before is a task (tasks: list the older ones) or a time (tasks purge: a date, or a duration
 * before now). */
static int set_before(struct config_parser *p, const struct config_option *o, const char *value,
                      const char *label)
{
    if (p->c->command != CMD_TASKS_PURGE) {
        if (!task_id_prefix_valid(value))
            return config_fail(p, "%s: " TASK_ID_EXPECTED ", got '%.*s'", label, QUOTE_MAX, value);
        return config_set_string(p, &p->c->before_id, value);
    }
    if (config_parse_date_ms(value, &p->c->purge_before_ms) == 0) {
        p->c->purge_age_ms = 0;
        return 0;
    }
    uint64_t ms;
    if (config_parse_duration_ms(value, &ms) != 0 || ms == 0)
        return config_fail(p,
                           "%s: expected a date (2026-01-31, 2026-01-31T12:00:00Z) or a duration "
                           "greater than zero (30d, 12h), got '%.*s'",
                           label, QUOTE_MAX, value);
    p->c->purge_before_ms = 0;
    p->c->purge_age_ms = ms;
    return 0;
}

/* --master-host=a,b,c: every entry valid, none twice; a repeated option replaces the list. */
static int set_cert_hosts(struct config_parser *p, const struct config_option *o, const char *value,
                          const char *label)
{
    struct config *c = p->c;
    config_free_strings(c->cert_hosts, c->n_cert_hosts);
    c->cert_hosts = NULL;
    c->n_cert_hosts = 0;
    const char *item = value;
    for (;;) {
        size_t len = strcspn(item, ",");
        if (config_parse_cert_host(item, len) != 0)
            return config_fail(p,
                               "%s: expected host names or IP addresses separated by commas, "
                               "got '%.*s'",
                               label, QUOTE_MAX, value);
        for (size_t i = 0; i < c->n_cert_hosts; i++) {
            if (strlen(c->cert_hosts[i]) == len && strncmp(c->cert_hosts[i], item, len) == 0)
                return config_fail(p, "%s: '%.*s' is given twice", label, (int)len, item);
        }
        char *one = strndup(item, len);
        if (!one)
            return config_nomem(p);
        int rc = config_push_string(p, &c->cert_hosts, &c->n_cert_hosts, one);
        free(one);
        if (rc != 0)
            return rc;
        if (item[len] == '\0')
            return 0;
        item += len + 1;
    }
}

/* ---- The tables ---- */

const struct config_option config_options[OPT_COUNT] = {
    [OPT_ROLE] = {"role", "ROLE", DAEMONS | M(CMD_CERT_ISSUE),
                  "CRAWLAB_NODE_MASTER=Y (master) or N (worker)",
                  "Daemons: master or worker, required. cert issue: worker or admin, the role the "
                  "certificate gives its holder (a worker certificate cannot call the admin "
                  "service, an admin certificate cannot act as a worker).",
                  "cert issue: worker", .set = set_role},
    [OPT_LISTEN] = {"listen", "ADDR:PORT", M(CMD_MASTER),
                    "CRAWLAB_GRPC_SERVER_HOST, CRAWLAB_GRPC_SERVER_PORT",
                    "Address the master listens on.",
                    "127.0.0.1:9666 without TLS (loopback only), 0.0.0.0:9666 with TLS",
                    .set = set_hostport, .at = AT(listen_host), .spec.port_at = AT(listen_port)},
    [OPT_MASTER] = {"master", "HOST:PORT[,HOST:PORT...]", M(CMD_WORKER) | CLIENTS,
                    "CRAWLAB_GRPC_HOST, CRAWLAB_GRPC_PORT (one master)",
                    "Address of the master, or of up to " STR(
                        LIMIT_MASTERS_MAX) " masters "
                                           "separated by commas: a worker connects to the first "
                                           "and moves to the next "
                                           "when a connection fails or is lost; a client command "
                                           "tries them in order "
                                           "until one can be reached.",
                    "127.0.0.1:9666", .set = set_masters},
    [OPT_DATA_DIR] = {"data-dir", "DIR", DAEMONS, NULL,
                      "Directory for the database, logs, spool, node key and auth.key.",
                      "/var/lib/crawlab-node, or ./crawlab-data when not run as root",
                      .set = set_path, .at = AT(data_dir)},
    [OPT_STORE] = {"store", "URI", M(CMD_MASTER), "CRAWLAB_NODE_STORE",
                   "Where the master keeps its rows: a PostgreSQL database that several masters "
                   "share (" RULE_STORE "). sslmode=require, verify-ca or verify-full, with "
                   "sslrootcert=FILE, goes through the binary's own TLS, the server's "
                   "certificate always verified. A password in it shows in the process list: "
                   "prefer the environment.",
                   "SQLite in the data directory", .set = set_store, .at = AT(store)},
    [OPT_AUTH_KEY] = {"auth-key", "KEY", DAEMONS, "CRAWLAB_AUTH_KEY",
                      "The node key: the secret of workers, checked on every call of theirs. "
                      "Anyone on the machine can read it in the process list: prefer "
                      "--auth-key-file or the environment.",
                      NULL, .set = set_auth_key, .at = AT(auth_key)},
    [OPT_AUTH_KEY_FILE] = {"auth-key-file", "FILE", DAEMONS, NULL,
                           "File holding the node key. The master's default is "
                           "<data-dir>/auth.key, generated on first start.",
                           NULL, .set = set_path, .at = AT(auth_key_file)},
    [OPT_ADMIN_KEY] = {"admin-key", "KEY", M(CMD_MASTER) | CLIENTS, "CRAWLAB_ADMIN_KEY",
                       "The admin key: the secret of client commands (submit, cancel, ...), "
                       "which the node key does not open. Visible in the process list: prefer "
                       "--admin-key-file or the environment.",
                       NULL, .set = set_auth_key, .at = AT(admin_key)},
    [OPT_ADMIN_KEY_FILE] = {"admin-key-file", "FILE", M(CMD_MASTER) | CLIENTS, NULL,
                            "File holding the admin key. The master's default is "
                            "<data-dir>/admin.key, generated on first start; a client "
                            "command's, the admin.key of the default data directory.",
                            NULL, .set = set_path, .at = AT(admin_key_file)},
    [OPT_INSECURE_NO_AUTH] = {"insecure-no-auth", NULL, ALL, NULL,
                              "Turn authentication off: anyone who reaches the port can run "
                              "commands on the workers.",
                              NULL, .set = set_flag, .at = AT(insecure_no_auth)},
    [OPT_LOG_LEVEL] = {"log-level", "LEVEL", ALL, NULL, "error, warn, info or debug.", "info",
                       .set = set_log_level},
    [OPT_LOG_FORMAT] = {"log-format", "FORMAT", ALL, NULL, "text or json.", "text",
                        .set = set_log_format},
    [OPT_NODE_KEY] = {"node-key", "KEY", M(CMD_WORKER), "CRAWLAB_NODE_KEY",
                      "Identity of this worker: " RULE_NODE_KEY ".",
                      "generated once and kept in the data directory", .set = set_text,
                      .at = AT(node_key), .spec.text = {node_key_valid, NODE_KEY_EXPECTED}},
    [OPT_NODE_NAME] = {"node-name", "NAME", M(CMD_WORKER), "CRAWLAB_NODE_NAME",
                       "Name shown for this worker, " NAME_RULE ".", "the host name",
                       .set = set_text, .at = AT(node_name),
                       .spec.text = {name_valid, NAME_EXPECTED}},
    [OPT_MAX_RUNNERS] = {"max-runners", "N", M(CMD_WORKER), "CRAWLAB_NODE_MAXRUNNERS",
                         "Tasks run at the same time, 1 to 1024.", "8", .set = set_int,
                         .at = AT(max_runners), .spec.range = {1, MAX_RUNNERS_LIMIT, "an integer"}},
    [OPT_MAX_CONNECTIONS] = {"max-connections", "N", M(CMD_MASTER), NULL,
                             "Connections open at once, 1 to 1000000; more are refused. A "
                             "worker uses two.",
                             "10000", .set = set_int, .at = AT(max_connections),
                             .spec.range = {1, MAX_CONNECTIONS_LIMIT, "an integer"}},
    [OPT_MAX_CONNECTION_RATE] = {"max-connection-rate", "N", M(CMD_MASTER), NULL,
                                 "New connections a second from one address, after a burst of "
                                 "10 x N; more are closed at once. 127.0.0.1 and ::1 are not "
                                 "limited. 0: no limit.",
                                 "0", .set = set_int, .at = AT(max_connection_rate),
                                 .spec.range = {0, MAX_CONNECTIONS_LIMIT, "an integer"}},
    [OPT_AUTH_TIMEOUT] = {"auth-timeout", "DURATION", M(CMD_MASTER), NULL,
                          "Time a new connection has for its first call with the auth key; "
                          "then it is closed. 0: no limit.",
                          "10s", .set = set_duration, .at = AT(auth_timeout_ms)},
    [OPT_HEARTBEAT_INTERVAL] = {"heartbeat-interval", "DURATION", DAEMONS, NULL,
                                "Time between a worker's heartbeats; the master expects the "
                                "same.",
                                "5s", .set = set_duration, .at = AT(heartbeat_interval_ms),
                                .spec.nonzero = true},
    [OPT_FETCH_INTERVAL] = {"fetch-interval", "DURATION", M(CMD_WORKER), NULL,
                            "How often a worker asks for tasks when none is pushed to it.", "1s",
                            .set = set_duration, .at = AT(fetch_interval_ms), .spec.nonzero = true},
    [OPT_RECONNECT_MAX] = {"reconnect-max", "DURATION", M(CMD_WORKER), NULL,
                           "Longest wait between two attempts to reach the masters while none "
                           "answers (the circuit breaker's cool-down: 1s, doubling up to this), "
                           "1s to 1h.",
                           "30s", .set = set_reconnect_max, .at = AT(reconnect_max_ms)},
    [OPT_CANCEL_GRACE] = {"cancel-grace", "DURATION", M(CMD_WORKER), NULL,
                          "Time between SIGTERM and SIGKILL when a task is cancelled or times "
                          "out.",
                          "15s", .set = set_duration, .at = AT(cancel_grace_ms)},
    [OPT_SHUTDOWN_GRACE] = {"shutdown-grace", "DURATION", DAEMONS, NULL,
                            "Time given to running work after SIGTERM before stopping hard.", "30s",
                            .set = set_duration, .at = AT(shutdown_grace_ms)},
    [OPT_DISCONNECT_GRACE] = {"disconnect-grace", "DURATION", M(CMD_MASTER), NULL,
                              "Time an offline worker has to come back before its running "
                              "tasks become abnormal.",
                              "5m", .set = set_duration, .at = AT(disconnect_grace_ms)},
    [OPT_RETENTION] = {"retention", "DURATION", M(CMD_MASTER), NULL,
                       "Ended tasks (finished, error, cancelled, abnormal) are purged, with "
                       "their logs and results, this long after they ended. 0: keep everything.",
                       "30d", .set = set_duration, .at = AT(retention_ms)},
    [OPT_SPOOL_MAX_BYTES] = {"spool-max-bytes", "SIZE", M(CMD_WORKER), NULL,
                             "Disk space for task output kept while the master is unreachable; "
                             "at least 1M.",
                             "1G", .set = set_size, .at = AT(spool_max_bytes),
                             .spec.size = {MIN_SPOOL_BYTES, "1M, the longest output line"}},
    [OPT_TASK_CONTAINMENT] = {"task-containment", "MODE", M(CMD_WORKER), NULL,
                              "How every process of a task is found and ended: cgroup (a cgroup "
                              "v2 per task; needs a writable cgroup tree), subreaper (the worker "
                              "adopts escaped processes and finds them by their environment), or "
                              "auto (cgroup where possible).",
                              "auto", .set = set_containment},
    [OPT_TASK_MAX_PIDS] = {"task-max-pids", "N", M(CMD_WORKER), NULL,
                           "Processes and threads one task may have at once (the pids.max of "
                           "its cgroup), 1 to 4194304; needs cgroup containment with the pids "
                           "controller.",
                           "no limit", .set = set_int, .at = AT(task_max_pids),
                           .spec.range = {1, TASK_MAX_PIDS_LIMIT, "an integer"}},
    [OPT_TLS_CERT] = {"tls-cert", "FILE", DAEMONS | CLIENTS, NULL,
                      "PEM certificate. On the master it turns TLS 1.3 on (with --tls-key); on a "
                      "worker or client command it is presented to the master for mutual TLS "
                      "(with --tls-key and --tls-ca).",
                      NULL, .set = set_path, .at = AT(tls_cert)},
    [OPT_TLS_KEY] = {"tls-key", "FILE", DAEMONS | CLIENTS, NULL, "PEM private key of --tls-cert.",
                     NULL, .set = set_path, .at = AT(tls_key)},
    [OPT_TLS_CA] = {"tls-ca", "FILE", DAEMONS | CLIENTS, NULL,
                    "PEM CA certificate. On a worker or client command it turns TLS on and is "
                    "the CA the master's certificate must be signed by; on the master it is "
                    "the CA worker and client certificates must be signed by.",
                    NULL, .set = set_path, .at = AT(tls_ca)},
    [OPT_TLS_CLIENT_AUTH] = {"tls-client-auth", "MODE", M(CMD_MASTER), NULL,
                             "none or require: whether every connection must present a "
                             "certificate signed by --tls-ca. With none and --tls-ca, a "
                             "certificate offered is still verified.",
                             "require with --tls-ca, none without", .set = set_client_auth},
    [OPT_TLS_BIND_NODE_KEY] = {"tls-bind-node-key", NULL, M(CMD_MASTER), NULL,
                               "Bind each node key to the certificate of its worker: a call "
                               "that names a node key is refused unless the common name of "
                               "the connection's client certificate equals that key. Needs "
                               "--tls-client-auth=require, where it is on by default.",
                               "on with --tls-client-auth=require", .set = set_flag,
                               .at = AT(tls_bind_node_key)},
    [OPT_NO_TLS_BIND_NODE_KEY] = {"no-tls-bind-node-key", NULL, M(CMD_MASTER), NULL,
                                  "Turn node-key binding off although client certificates are "
                                  "required (any worker certificate may then register any "
                                  "node key).",
                                  NULL, .set = NULL /* checks.c reads it from the given-mask */},
    [OPT_TLS_SERVER_NAME] = {"tls-server-name", "NAME", M(CMD_WORKER) | CLIENTS, NULL,
                             "Host name or IP address the master's certificate must be valid "
                             "for.",
                             "the host of --master", .set = set_text, .at = AT(tls_server_name),
                             .spec.text = {valid_server_name, HOST_EXPECTED}},
    [OPT_JSON] = {"json", NULL, M(CMD_NODES) | M(CMD_TASKS) | M(CMD_SCHEDULE) | M(CMD_EVENTS), NULL,
                  "Print JSON instead of a table (events: one object per line).", NULL,
                  .set = set_flag, .at = AT(json)},
    [OPT_NODE] = {"node", "KEY|NAME", M(CMD_SUBMIT) | M(CMD_SCHEDULE), NULL,
                  "Run the task on this node (its key, or a name no other node has); repeat "
                  "for several.",
                  "any node", .set = set_list, .at = AT(nodes),
                  .spec.list = {valid_node_entry, NODE_EXPECTED, "node", AT(n_nodes)}},
    [OPT_LABEL] = {"label", "K=V", M(CMD_WORKER) | M(CMD_SUBMIT) | M(CMD_SCHEDULE), NULL,
                   "worker: a label this node announces. submit, schedule add: only a node "
                   "with this label runs the task (all of them, when repeated). Repeatable, "
                   "at most " STR(LIMIT_LABELS_MAX) ".",
                   NULL, .set = set_list, .at = AT(labels),
                   .spec.list = {valid_label_entry, "expected " RULE_LABEL, "label key",
                                 AT(n_labels)}},
    [OPT_ALL_NODES] = {"all-nodes", NULL, M(CMD_SUBMIT) | M(CMD_SCHEDULE), NULL,
                       "Run the task once on every online, enabled node (with --label: every "
                       "one that has the labels); schedule add: at each fire, the nodes of "
                       "that moment.",
                       NULL, .set = set_flag, .at = AT(all_nodes)},
    [OPT_PRIORITY] = {"priority", "N", M(CMD_SUBMIT) | M(CMD_SCHEDULE), NULL,
                      "Queue priority as Crawlab has it, " RULE_PRIORITY ": lower numbers run "
                      "first.",
                      STR(LIMIT_PRIORITY_DEFAULT), .set = set_int, .at = AT(priority),
                      .spec.range = {LIMIT_PRIORITY_MIN, LIMIT_PRIORITY_MAX, "an integer"}},
    [OPT_RETRIES] = {"retries", "N", M(CMD_SUBMIT) | M(CMD_SCHEDULE), NULL,
                     "Run the task again, as a new task linked to the first, when it ends in "
                     "error or abnormal (not cancelled), up to N more times; " RULE_RETRIES ".",
                     "0", .set = set_int, .at = AT(retries),
                     .spec.range = {0, LIMIT_RETRIES_MAX, "an integer"}},
    [OPT_RETRY_DELAY] = {"retry-delay", "DURATION", M(CMD_SUBMIT) | M(CMD_SCHEDULE), NULL,
                         "Wait this long before the first retry, twice as long before the "
                         "next, and so on (each jittered down to at most half); " RULE_RETRY_DELAY
                         ".",
                         "10s", .set = set_retry_delay, .at = AT(retry_delay_ms)},
    [OPT_TIMEOUT] = {"timeout", "DURATION", M(CMD_SUBMIT) | M(CMD_SCHEDULE), NULL,
                     "Stop the task after this long; it ends in error.", "0, no limit",
                     .set = set_duration, .at = AT(timeout_ms)},
    [OPT_ENV] = {"env", "K=V", M(CMD_SUBMIT) | M(CMD_SCHEDULE), NULL,
                 "Add a variable to the task's environment; repeatable.", NULL, .set = set_list,
                 .at = AT(env),
                 .spec.list = {valid_env_entry,
                               "expected NAME=VALUE with NAME made of letters, digits and '_' "
                               "and not starting with a digit",
                               "variable", AT(n_env)}},
    [OPT_NAME] =
        {"name", "NAME", M(CMD_SUBMIT) | M(CMD_SCHEDULE) | M(CMD_CERT_ISSUE) | M(CMD_SPIDER), NULL,
         "submit: task name shown in listings, " NAME_RULE ". cert issue: name of "
         "the new certificate (its common name, and DIR/NAME.pem, DIR/NAME.key); "
         "letters, digits, '.', '_' and '-'. spider push: the spider's name, " RULE_SPIDER_NAME ".",
         NULL, .set = set_name},
    [OPT_STATUS] = {"status", "STATUS", M(CMD_TASKS), NULL,
                    "Only tasks in this status: pending, assigned, running, finished, error, "
                    "cancelled, abnormal or node_disconnected.",
                    NULL, .set = set_text, .at = AT(status_filter),
                    .spec.text = {valid_status, "expected one of " TASK_STATUS_NAMES}},
    [OPT_LIMIT] = {"limit", "N", M(CMD_NODES) | M(CMD_TASKS) | M(CMD_EVENTS), NULL,
                   "tasks, nodes: show at most N tasks (newest first) or nodes (by key); 0: all "
                   "of them. events: stop after N events; 0: no limit.",
                   "tasks: 100 when stdout is a terminal, else 0 (all); nodes, events: 0",
                   .set = set_limit},
    [OPT_BEFORE] = {"before", "ID|TIME", M(CMD_TASKS) | M(CMD_TASKS_PURGE), NULL,
                    "tasks: only tasks older than task ID (a full id or a unique prefix of at "
                    "least 6 digits), to see the next page. tasks purge: purge the tasks that "
                    "ended before TIME, a UTC date (2026-01-31, 2026-01-31T12:00:00Z) or a "
                    "duration before now (30d, 12h); required.",
                    NULL, .set = set_before},
    [OPT_FOLLOW] = {"follow", NULL, M(CMD_LOGS) | M(CMD_EVENTS), NULL,
                    "logs: keep printing new lines until the task ends. events: keep printing "
                    "new events as they happen.",
                    NULL, .set = set_flag, .at = AT(follow)},
    [OPT_AFTER] = {"after", "ID", M(CMD_EVENTS), NULL,
                   "Start after event ID (the id of the last event seen, to go on from there).",
                   "0, the oldest event kept", .set = set_after},
    [OPT_FORCE] = {"force", NULL, M(CMD_CANCEL), NULL,
                   "Kill the task at once instead of sending SIGTERM first.", NULL, .set = set_flag,
                   .at = AT(force)},
    [OPT_DIR] = {"dir", "DIR", CERTS, NULL,
                 "Directory of the CA and the certificates; cert init creates it (0700).", NULL,
                 .set = set_path, .at = AT(cert_dir)},
    [OPT_MASTER_HOST] = {"master-host", "NAME[,NAME|IP...]", M(CMD_CERT_INIT), NULL,
                         "Host names and IP addresses workers use to reach the master; they "
                         "go into the master certificate's subject alternative names.",
                         NULL, .set = set_cert_hosts},
    [OPT_TEST_EXPIRED] = {"test-expired", NULL, M(CMD_CERT_ISSUE), NULL,
                          "Issue a certificate that expired yesterday (tests only).", NULL,
                          .hidden = true, .set = set_flag, .at = AT(cert_test_expired)},
    [OPT_DAYS] = {"days", "N", M(CMD_CERT_ISSUE), NULL,
                  "How many days the certificate is valid, from now: short-lived certificates "
                  "limit what a stolen key is worth (the daemons warn 30 days before the end).",
                  STR(CONFIG_CERT_DAYS_DEFAULT), .set = set_int, .at = AT(cert_days),
                  .spec.range = {1, CONFIG_CERT_DAYS_MAX, "a number of days"}},
    [OPT_TZ] = {"tz", "ZONE", M(CMD_SCHEDULE), NULL,
                "schedule add: read the cron fields in this zone: a fixed offset from UTC "
                "(+HH:MM, -HH:MM, Z or UTC) or a zone name (Europe/Berlin) from the zoneinfo "
                "directory ($TZDIR, else " CONFIG_ZONEINFO_DIR ") of the master.",
                "Z (UTC)", .set = set_text, .at = AT(sched_tz),
                .spec.text = {valid_tz, "expected +HH:MM, -HH:MM (at most 14:00), Z, or a zone "
                                        "name such as Europe/Berlin"}},
    [OPT_OVERLAP] = {"overlap", "POLICY", M(CMD_SCHEDULE), NULL,
                     "schedule add: when the previous task of the schedule is still pending, "
                     "assigned or running, skip the fire, allow a new task, or "
                     "cancel-previous and start a new one.",
                     "skip", .set = set_text, .at = AT(sched_overlap),
                     .spec.text = {valid_overlap, "expected skip, allow or cancel-previous"}},
    [OPT_MISSED] = {"missed", "POLICY", M(CMD_SCHEDULE), NULL,
                    "schedule add: for fires missed while the master was down, run-once (one "
                    "task for the most recent one) or skip them.",
                    "run-once", .set = set_text, .at = AT(sched_missed),
                    .spec.text = {valid_missed, "expected run-once or skip"}},
    [OPT_METRICS_LISTEN] = {"metrics-listen", "ADDR:PORT", M(CMD_MASTER), NULL,
                            "Serve GET /metrics (Prometheus text format) over plain HTTP on this "
                            "address, without authentication.",
                            "none", .set = set_metrics_listen, .at = AT(metrics_host),
                            .spec.port_at = AT(metrics_port)},
    [OPT_ON_EVENT] = {"on-event", "CMD", M(CMD_MASTER), NULL,
                      "Run sh -c CMD for each event, with its JSON on stdin: in order, one at a "
                      "time, at least once (retried with backoff while it fails); repeatable, "
                      "each hook on its own.",
                      NULL, .set = set_list, .at = AT(on_event),
                      .spec.list = {valid_hook, "expected a command of 1 to 65536 bytes", "hook",
                                    AT(n_on_event)}},
    [OPT_ON_EVENT_TIMEOUT] = {"on-event-timeout", "DURATION", M(CMD_MASTER), NULL,
                              "Kill an --on-event hook (its process group) that runs longer "
                              "than this, and retry its event.",
                              "30s", .set = set_duration, .at = AT(on_event_timeout_ms),
                              .spec.nonzero = true},
    [OPT_SPIDER] = {"spider", "NAME[@VERSION]", M(CMD_SUBMIT) | M(CMD_SCHEDULE), NULL,
                    "Run the task in a fresh directory holding the files of this spider (its "
                    "latest version when the task is made, or VERSION), pushed with 'spider "
                    "push'.",
                    NULL, .set = set_text, .at = AT(spider_ref),
                    .spec.text = {valid_spider_ref, "expected " RULE_SPIDER_REF}},
    [OPT_SPIDER_MAX_BYTES] = {"spider-max-bytes", "SIZE", M(CMD_MASTER), NULL,
                              "The largest spider a push may bring: its archive, and the sum of "
                              "its files' sizes; at most 4G.",
                              "256M", .set = set_size, .at = AT(spider_max_bytes),
                              .spec.size = {1, "1 byte", LIMIT_SPIDER_BYTES_MAX, "4G"}},
    [OPT_SPIDER_MAX_FILES] = {"spider-max-files", "N", M(CMD_MASTER), NULL,
                              "The most entries (files, directories, links) a pushed spider may "
                              "hold, 1 to 1000000.",
                              "10000", .set = set_int, .at = AT(spider_max_files),
                              .spec.range = {1, LIMIT_SPIDER_FILES_MAX, "an integer"}},
    [OPT_SPIDER_CACHE_BYTES] = {"spider-cache-bytes", "SIZE", M(CMD_WORKER), NULL,
                                "Disk space for unpacked spiders in <data-dir>/spiders; past it "
                                "the least recently used ones are removed (a spider larger than "
                                "it is still unpacked, alone).",
                                "2G", .set = set_size, .at = AT(spider_cache_bytes)},
    [OPT_TEST_ARCHIVE] = {"test-archive", "FILE", M(CMD_SPIDER), NULL,
                          "spider push: send this archive as it is instead of packing DIR "
                          "(tests only).",
                          NULL, .hidden = true, .set = set_path, .at = AT(spider_archive)},
    [OPT_TEST_SHA256] = {"test-sha256", "HEX", M(CMD_SPIDER), NULL,
                         "spider push: announce this SHA-256 instead of the archive's (tests "
                         "only).",
                         NULL, .hidden = true, .set = set_text, .at = AT(spider_sha256),
                         .spec.text = {valid_spider_sha256, "expected " RULE_SPIDER_SHA256}},
    [OPT_HELP] = {"help", NULL, EVERY, NULL, "Show this text (also -h).", NULL},
    [OPT_VERSION] = {"version", NULL, EVERY, NULL, "Show the version.", NULL},
};

/* The variables that set half an address, where an option sets all of it. */
static const struct config_option listen_host_env = {.set = set_host, .at = AT(listen_host)};
static const struct config_option listen_port_env = {
    .set = set_int, .at = AT(listen_port), .spec.range = {1, 65535, "a port"}};
/* Without --master the list is the default's one entry, whose host and port these replace. */
static const struct config_option master_host_env = {.set = set_host, .at = AT(masters[0].host)};
static const struct config_option master_port_env = {
    .set = set_int, .at = AT(masters[0].port), .spec.range = {1, 65535, "a port"}};

struct env_def {
    const char *name;
    unsigned commands;               /* commands that read the variable; the others ignore it */
    option_set overridden_by;        /* options whose presence on the command line hides it */
    const struct config_option *opt; /* how its value is checked and stored */
};

/* CRAWLAB_NODE_MASTER is not here: it decides the command (scan.c). */
static const struct env_def envs[] = {
    {"CRAWLAB_GRPC_SERVER_HOST", M(CMD_MASTER), BIT(OPT_LISTEN), &listen_host_env},
    {"CRAWLAB_GRPC_SERVER_PORT", M(CMD_MASTER), BIT(OPT_LISTEN), &listen_port_env},
    {"CRAWLAB_GRPC_HOST", M(CMD_WORKER) | CLIENTS, BIT(OPT_MASTER), &master_host_env},
    {"CRAWLAB_GRPC_PORT", M(CMD_WORKER) | CLIENTS, BIT(OPT_MASTER), &master_port_env},
    /* A key file or --insecure-no-auth is a deliberate choice that a stray variable must not
     * turn into a conflict. */
    {"CRAWLAB_AUTH_KEY", DAEMONS,
     BIT(OPT_AUTH_KEY) | BIT(OPT_AUTH_KEY_FILE) | BIT(OPT_INSECURE_NO_AUTH),
     &config_options[OPT_AUTH_KEY]},
    {"CRAWLAB_ADMIN_KEY", M(CMD_MASTER) | CLIENTS,
     BIT(OPT_ADMIN_KEY) | BIT(OPT_ADMIN_KEY_FILE) | BIT(OPT_INSECURE_NO_AUTH),
     &config_options[OPT_ADMIN_KEY]},
    {"CRAWLAB_NODE_KEY", M(CMD_WORKER), BIT(OPT_NODE_KEY), &config_options[OPT_NODE_KEY]},
    {"CRAWLAB_NODE_NAME", M(CMD_WORKER), BIT(OPT_NODE_NAME), &config_options[OPT_NODE_NAME]},
    {"CRAWLAB_NODE_MAXRUNNERS", M(CMD_WORKER), BIT(OPT_MAX_RUNNERS),
     &config_options[OPT_MAX_RUNNERS]},
};

/* ---- Applying them ---- */

int config_options_defaults(struct config_parser *p)
{
    struct config *c = p->c;
    memset(c, 0, sizeof(*c));
    c->listen_port = DEFAULT_PORT;
    c->masters[0].port = DEFAULT_PORT;
    c->n_masters = 1;
    c->log_level = LOG_INFO;
    c->log_format = LOG_FORMAT_TEXT;
    c->max_runners = DEFAULT_MAX_RUNNERS;
    c->max_connections = DEFAULT_MAX_CONNECTIONS;
    c->auth_timeout_ms = 10 * 1000;
    c->heartbeat_interval_ms = 5 * 1000;
    c->fetch_interval_ms = 1000;
    c->reconnect_max_ms = RECONNECT_MAX_DEFAULT_MS;
    c->cancel_grace_ms = 15 * 1000;
    c->shutdown_grace_ms = 30 * 1000;
    c->disconnect_grace_ms = 5 * 60 * 1000;
    c->retention_ms = DEFAULT_RETENTION_MS;
    c->on_event_timeout_ms = 30 * 1000;
    c->spool_max_bytes = DEFAULT_SPOOL_BYTES;
    c->spider_max_bytes = DEFAULT_SPIDER_MAX_BYTES;
    c->spider_max_files = DEFAULT_SPIDER_MAX_FILES;
    c->spider_cache_bytes = DEFAULT_SPIDER_CACHE_BYTES;
    c->cert_role = ROLE_NODE;
    c->cert_days = CONFIG_CERT_DAYS_DEFAULT;
    c->priority = LIMIT_PRIORITY_DEFAULT;
    c->retry_delay_ms = DEFAULT_RETRY_DELAY_MS;
    int rc = config_set_string(p, &c->listen_host, DEFAULT_LISTEN_HOST);
    if (rc == 0)
        rc = config_set_string(p, &c->masters[0].host, DEFAULT_MASTER_HOST);
    return rc;
}

int config_options_find(const char *name, size_t len)
{
    for (int i = 0; i < OPT_COUNT; i++) {
        if (strlen(config_options[i].name) == len &&
            strncmp(config_options[i].name, name, len) == 0)
            return i;
    }
    return -1;
}

int config_options_apply(struct config_parser *p, const struct config_scan *s)
{
    enum config_command cmd = p->c->command;
    const char *cmd_name = config_scan_command_name(cmd);
    char label[64];

    for (size_t i = 0; i < s->n_items; i++) {
        const struct config_item *it = &s->items[i];
        switch (it->problem) {
        case P_UNKNOWN:
            return config_fail(p, "unknown option '%.*s' for '%s'", it->name_len, it->token,
                               cmd_name);
        case P_MISSING_VALUE:
            return config_fail(p, "'%s' requires a value", it->token);
        case P_UNEXPECTED_VALUE:
            return config_fail(p, "'%.*s' takes no value", it->name_len, it->token);
        case P_NONE:
            break;
        }
        const struct config_option *o = &config_options[it->id];
        if ((it->id == OPT_AUTH_KEY || it->id == OPT_AUTH_KEY_FILE) && (CLIENTS & M(cmd)))
            return config_fail(p,
                               "'--%s' is not an option of '%s': the auth key is the workers' "
                               "key; client commands present the admin key (--admin-key-file, "
                               "CRAWLAB_ADMIN_KEY, default the master's admin.key)",
                               o->name, cmd_name);
        if (!(o->commands & M(cmd)))
            return config_fail(p, "'--%s' is not an option of '%s'", o->name, cmd_name);
        snprintf(label, sizeof(label), "--%s", o->name);
        int rc = o->set ? o->set(p, o, it->value, label) : 0;
        if (rc != 0)
            return rc;
        p->given |= BIT(it->id);
        if (it->id == OPT_LISTEN)
            p->listen_named = true;
    }
    return 0;
}

int config_options_apply_env(struct config_parser *p, config_getenv_fn *getenv_fn)
{
    for (size_t i = 0; i < sizeof(envs) / sizeof(envs[0]); i++) {
        const struct env_def *e = &envs[i];
        if (!(e->commands & M(p->c->command)) || (p->given & e->overridden_by))
            continue;
        const char *v = config_getenv(getenv_fn, e->name);
        if (!v)
            continue;
        int rc = e->opt->set(p, e->opt, v, e->name);
        if (rc != 0)
            return rc;
        if (e->opt == &listen_host_env)
            p->listen_named = true;
    }
    return 0;
}
