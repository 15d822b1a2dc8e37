/*
 * Command line and environment -> struct config, for every crawlab-node command.
 *
 * The module is pure but for one file: it reads only the argv and the getenv function it is given,
 * and the zone file that `schedule add --tz=Area/City` names (config_zone_load: one small read,
 * the only blocking here), and writes only to the FILE * handed to config_usage(). It keeps no
 * global state, so any thread may call it. It lives in src/config/ (config/internal.h says which
 * file does what); this header is its only public one.
 *
 * The first argument selects a client command when it does not start with '-' (nodes, submit,
 * tasks, logs, results, cancel, and "cert init" / "cert issue" / "tasks purge" / "task restart",
 * which take a second word).
 * Otherwise the process is a daemon whose role comes from --role=master|worker, else from
 * CRAWLAB_NODE_MASTER. --help, -h and --version anywhere before a "--" turn the whole command
 * line into CMD_HELP or CMD_VERSION.
 */
#ifndef CRAWLAB_CONFIG_H
#define CRAWLAB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/limits.h"
#include "runtime/log.h"

/* How a worker keeps a task's processes together (worker/contain.h has the mechanisms). */
enum config_containment {
    CONFIG_CONTAIN_AUTO, /* cgroup where the machine allows it, else subreaper */
    CONFIG_CONTAIN_CGROUP,
    CONFIG_CONTAIN_SUBREAPER,
};

enum config_command {
    CMD_MASTER,
    CMD_WORKER,
    CMD_NODES,
    CMD_SUBMIT,
    CMD_TASKS,
    CMD_LOGS,
    CMD_RESULTS,
    CMD_CANCEL,
    CMD_SCHEDULE, /* schedule add|list|show|pause|resume|rm */
    CMD_NODE,     /* node enable|disable|drain|rm */
    CMD_METRICS,
    CMD_EVENTS,
    CMD_CERT_INIT,
    CMD_CERT_ISSUE,
    CMD_TASKS_PURGE,
    CMD_TASK_RESTART,
    CMD_SPIDER, /* spider push|list|show|rm */
    CMD_HELP,
    CMD_VERSION
};

/* cert issue --days: two years by default, at most the CA's ten. */
#define CONFIG_CERT_DAYS_DEFAULT 731
#define CONFIG_CERT_DAYS_MAX     3652

/* One master of --master: a host (a name or an IP address, without brackets) and a port. */
struct config_master {
    char *host;
    int port;
};

/*
 * Every char * and array below is owned by the struct and released by config_free(). After a
 * successful config_parse() listen_host is never NULL and there is at least one master, each
 * with its host; the other strings are
 * NULL when not given. The string arrays are also NULL-terminated, so argv_cmd can be passed
 * where an argv is expected.
 */
struct config {
    enum config_command command;

    /* Common. */
    char *listen_host; /* master: --listen; 0.0.0.0 with TLS, else 127.0.0.1 */
    int listen_port;
    /* worker and clients: --master=HOST:PORT[,HOST:PORT...], tried in this order, at most
     * LIMIT_MASTERS_MAX, no entry twice; default 127.0.0.1:9666. */
    struct config_master masters[LIMIT_MASTERS_MAX];
    size_t n_masters;
    char *data_dir; /* daemons: --data-dir; NULL means the caller picks its default */
    char *store;    /* master: --store, a PostgreSQL URI; NULL: SQLite in data_dir */
    char *auth_key; /* daemons: the node key, --auth-key or CRAWLAB_AUTH_KEY; never log it */
    char *auth_key_file;
    char *admin_key; /* master, clients: --admin-key or CRAWLAB_ADMIN_KEY; never log it */
    char *admin_key_file;
    bool insecure_no_auth;
    enum log_level log_level;   /* --log-level, default info */
    enum log_format log_format; /* --log-format=text|json, default text */

    /* Daemons. */
    char *node_key;           /* worker: --node-key, CRAWLAB_NODE_KEY */
    char *node_name;          /* worker: --node-name, CRAWLAB_NODE_NAME */
    int max_connections;      /* master: --max-connections, default 10000 */
    int max_connection_rate;  /* master: --max-connection-rate, per address a second, 0 = none */
    uint64_t auth_timeout_ms; /* master: --auth-timeout, default 10 s, 0 = none */
    int max_runners;          /* worker: --max-runners, CRAWLAB_NODE_MAXRUNNERS, 1..1024 */
    uint64_t heartbeat_interval_ms; /* both roles, default 5 s, never 0 */
    uint64_t fetch_interval_ms;     /* worker, default 1 s, never 0 */
    uint64_t reconnect_max_ms;      /* worker: --reconnect-max, default 30 s, 1 s .. 1 h */
    uint64_t cancel_grace_ms;       /* worker, default 15 s */
    uint64_t shutdown_grace_ms;     /* both roles, default 30 s */
    uint64_t disconnect_grace_ms;   /* master, default 5 min */
    uint64_t retention_ms;          /* master: --retention, default 30 days, 0 = keep all */
    char **on_event;                /* master: --on-event=CMD, repeatable, no duplicates */
    size_t n_on_event;
    uint64_t on_event_timeout_ms; /* master: --on-event-timeout, default 30 s, never 0 */
    uint64_t spool_max_bytes;     /* worker, default 1 GiB, at least 1 MiB */
    enum config_containment task_containment; /* worker: --task-containment, default auto */
    int task_max_pids;                        /* worker: --task-max-pids, 0 = no limit */
    uint64_t spider_max_bytes;                /* master: --spider-max-bytes, default 256 MiB */
    int spider_max_files;                     /* master: --spider-max-files, default 10000 */
    uint64_t spider_cache_bytes;              /* worker: --spider-cache-bytes, default 2 GiB */

    /* TLS. The master uses TLS when tls_cert is set (then tls_key is too); a worker or client
     * command when tls_ca is set. Combinations that cannot work are refused by config_parse. */
    char *tls_cert;               /* --tls-cert: PEM certificate (master's, or ours for mTLS) */
    char *tls_key;                /* --tls-key: its private key */
    char *tls_ca;                 /* --tls-ca: master: CA of client certificates; others: CA of
                                   * the master's certificate */
    bool tls_require_client_cert; /* master: --tls-client-auth=require; the default when
                                   * --tls-ca is given, none otherwise */
    bool tls_bind_node_key;       /* master: on with client certificates required, unless
                                   * --no-tls-bind-node-key; --tls-bind-node-key asks for it */
    char *tls_server_name;        /* worker, clients: --tls-server-name, NULL = the master host */

    /* Client commands. */
    bool json;    /* nodes, tasks: --json */
    char **nodes; /* submit: --node=KEY|NAME, repeatable, no duplicates */
    size_t n_nodes;
    bool all_nodes;          /* submit, schedule add: --all-nodes (excludes --node) */
    int priority;            /* submit: --priority, default 5, 1 (first) .. 10 (last) */
    int retries;             /* submit: --retries, default 0, 0..100 */
    uint64_t retry_delay_ms; /* submit: --retry-delay, default 10 s, at most 24 h */
    uint64_t timeout_ms;     /* submit: --timeout, 0 = none */
    char **env;              /* submit: --env=K=V, repeatable, stored as "K=V", no duplicate K */
    size_t n_env;
    char *task_name; /* submit: --name */
    char **labels;   /* worker: its labels; submit, schedule add: the selector. --label=K=V,
                      * repeatable, label_valid (core/rules.h), no K twice, excludes --node */
    size_t n_labels;
    char **argv_cmd; /* submit: everything after "--", at least one non-empty word */
    size_t n_argv_cmd;
    char *status_filter;  /* tasks: --status, one of the task status names */
    bool follow;          /* logs, events: --follow */
    uint64_t after_event; /* events: --after=ID, the events after this one (0: from the first) */
    bool force;           /* cancel: --force */
    char *task_id;    /* logs, results, cancel, task restart: a task id or a prefix of 6 to 24 */
    unsigned limit;   /* tasks, nodes, events: --limit, at most this many (0 = all) */
    bool limit_given; /* tasks, nodes, events: --limit given (else tasks: 100 on a terminal) */
    char *before_id;  /* tasks: --before=ID, tasks older than this one (an id or a prefix) */
    int64_t purge_before_ms; /* tasks purge: --before=DATE, ms since the epoch; or */
    uint64_t purge_age_ms;   /* tasks purge: --before=DURATION, that long before now */

    /* schedule: the sub-command and its arguments; --node, --priority, --timeout, --env,
     * --name and the command after "--" as for submit (one --node at most, no --all-nodes). */
    char *sched_action;  /* "add", "list", "show", "pause", "resume", "rm" */
    char *sched_expr;    /* add: the expression, checked with cron_parse */
    int64_t sched_id;    /* show, pause, resume, rm: the schedule's id, > 0 */
    char *sched_tz;      /* add: --tz, a fixed offset or a zone name; NULL = UTC */
    char *zoneinfo_dir;  /* $TZDIR, else CONFIG_ZONEINFO_DIR: where zone names are read */
    char *sched_overlap; /* add: --overlap, NULL = skip */
    char *sched_missed;  /* add: --missed, NULL = run-once */

    /* node: the sub-command and the node it changes. */
    char *node_action; /* "enable", "disable", "drain", "rm" */
    char *node_target; /* a node key or name (name_valid) */
    /* spider: the sub-command and its arguments; submit and schedule add: --spider. */
    char *spider_action;  /* "push", "list", "show", "rm" */
    char *spider_dir;     /* push: the directory to pack */
    char *spider_ref;     /* submit, schedule add: --spider; list: NAME; show, rm: NAME[@VERSION] */
    char *spider_archive; /* push: --test-archive, an archive sent as it is (tests only) */
    char *spider_sha256;  /* push: --test-sha256, announced instead of the real one (tests only) */

    /* cert init, cert issue. */
    char *cert_dir;    /* --dir, required */
    char **cert_hosts; /* cert init: --master-host=NAME[,NAME|IP...], required, split */
    size_t n_cert_hosts;
    char *cert_name;        /* cert issue: --name, required; letters, digits, '.', '_', '-' */
    bool cert_test_expired; /* cert issue: --test-expired (hidden, for tests only) */
    int cert_days;          /* cert issue: --days, the validity of the certificate */
    unsigned cert_role;     /* cert issue: --role=worker|admin as ROLE_NODE (the default) or
                             * ROLE_ADMIN of core/roles.h */

    /* Metrics. */
    char *metrics_host; /* master: --metrics-listen=ADDR:PORT, NULL = no HTTP endpoint */
    int metrics_port;
};

/*
 * Fills *c from argv (argv[0] is the program name and is ignored) and the environment read
 * through getenv_fn (pass getenv in production, a fake in tests, or NULL for none). Flags win
 * over environment variables; an environment variable is read only by the commands that use
 * it, and an empty value counts as unset. Each option is accepted only by the commands that use
 * it, as "--opt=value" or "--opt value".
 *
 * Returns 0, -EINVAL with one human sentence in err naming the option or variable at fault
 * (the auth key itself is never quoted), or -ENOMEM. On failure *c owns nothing; calling
 * config_free() on it is still safe. err may be NULL when errlen is 0. argv is not modified
 * and need not outlive *c.
 */
int config_parse(struct config *c, int argc, char **argv, char *(*getenv_fn)(const char *name),
                 char *err, size_t errlen);

/* Releases everything *c owns and zeroes it; safe on a zeroed or already freed struct. */
void config_free(struct config *c);

/* Writes the --help text: every command, and every option with its default, environment
 * variable and the commands that accept it. */
void config_usage(FILE *out);

/*
 * Parses a duration into milliseconds: a number with a unit (ms, s, m, h, d; "1.5s"), several of
 * them in a row ("1h30m"), or a bare number meaning seconds ("5", "1.5"). Fractions below a
 * millisecond are dropped. Returns 0, -EINVAL for bad syntax or -ERANGE when the value does not
 * fit in 64 bits; *out is written only on success.
 */
int config_parse_duration_ms(const char *s, uint64_t *out);

/*
 * Parses a byte count: an integer with an optional binary suffix K, M, G or T (any case, with
 * an optional "iB" or "B": "64K", "64KiB", "64kb" are all 65536), or "B". Returns 0, -EINVAL or
 * -ERANGE; *out is written only on success.
 */
int config_parse_size(const char *s, uint64_t *out);

/*
 * Parses "host:port", "[ipv6]:port", "host" or "[ipv6]". Without a port *port is left as it
 * is, so the caller presets the default. Host names are letters, digits, '.', '-', '_'; IPv6
 * addresses need brackets when a port follows. Ports are 1..65535. On success *host receives a
 * new malloc'd string without brackets (the caller frees it; the old value is not freed).
 * Returns 0, -EINVAL or -ENOMEM; nothing is written on failure.
 */
int config_parse_hostport(const char *s, char **host, int *port);

/*
 * Parses a UTC date into milliseconds since the epoch: "YYYY-MM-DD" (midnight), or
 * "YYYY-MM-DDTHH:MM[:SS]" with an optional trailing "Z". Returns 0 or -EINVAL; *out is written
 * only on success.
 */
int config_parse_date_ms(const char *s, int64_t *out);

/* ---- Named zones (the one part of this module that reads a file) ---- */

#define CONFIG_ZONEINFO_DIR "/usr/share/zoneinfo" /* when TZDIR is not set */

struct tz_zone;

/*
 * The zone name (core/tz.h, tz_name_valid) read from dir/name and parsed (tz_parse): 0 with *out
 * (free it with tz_free); else a negative errno (-EINVAL: not a zone name, or not a valid TZif
 * file; -ENOENT: no such file, also when dir itself is missing) and one line in why naming the
 * zone and the file. Blocks on reading one small file; any thread.
 */
int config_zone_load(const char *dir, const char *name, struct tz_zone **out, char *why,
                     size_t why_len);

#endif
