/*
 * What the files of src/config/ share, and nothing outside src/config/ may include: the option
 * ids and table, the scanned command line and the state of one config_parse() run. The public
 * contract is src/config.h. Each file has one job and one prefix:
 *
 *   config.c   config_parse() and config_free(): the passes in order; errors and owned strings
 *   scan.c     argv -> option items, positional words and the command (config_scan_*)
 *   options.c  the option and environment tables, one setter per value type (config_options_*)
 *   values.c   text -> value: durations, sizes, addresses, integers (config_parse_*)
 *   checks.c   the rules between options, once all are known (config_check)
 *   help.c     the --help text (config_usage)
 *   zone.c     a named zone's file, read and parsed (config_zone_load): the one file that reads
 *
 * Like the public functions, everything here keeps no global state, may run on any thread and
 * never blocks, but for zone.c, which reads one small file. Functions that can fail return 0 or a
 * negative errno; those taking a struct config_parser have written its error message when they
 * return -EINVAL or -ENOMEM.
 */
#ifndef CRAWLAB_CONFIG_INTERNAL_H
#define CRAWLAB_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Sets of commands, as bitmasks of M(CMD_...). */
#define M(cmd)  (1u << (cmd))
#define DAEMONS (M(CMD_MASTER) | M(CMD_WORKER))
#define CLIENTS                                                                                    \
    (M(CMD_NODES) | M(CMD_SUBMIT) | M(CMD_TASKS) | M(CMD_LOGS) | M(CMD_RESULTS) | M(CMD_CANCEL) |  \
     M(CMD_SCHEDULE) | M(CMD_NODE) | M(CMD_METRICS) | M(CMD_EVENTS) | M(CMD_TASKS_PURGE) |         \
     M(CMD_TASK_RESTART) | M(CMD_SPIDER))
#define ALL   (DAEMONS | CLIENTS)
#define CERTS (M(CMD_CERT_INIT) | M(CMD_CERT_ISSUE))
#define EVERY (ALL | CERTS)

/* Values quoted in error messages are cut here so that a pasted blob stays readable. */
#define QUOTE_MAX 80

enum option_id {
    OPT_ROLE,
    OPT_LISTEN,
    OPT_MASTER,
    OPT_DATA_DIR,
    OPT_STORE,
    OPT_AUTH_KEY,
    OPT_AUTH_KEY_FILE,
    OPT_ADMIN_KEY,
    OPT_ADMIN_KEY_FILE,
    OPT_INSECURE_NO_AUTH,
    OPT_LOG_LEVEL,
    OPT_LOG_FORMAT,
    OPT_NODE_KEY,
    OPT_NODE_NAME,
    OPT_MAX_RUNNERS,
    OPT_MAX_CONNECTIONS,
    OPT_MAX_CONNECTION_RATE,
    OPT_AUTH_TIMEOUT,
    OPT_HEARTBEAT_INTERVAL,
    OPT_FETCH_INTERVAL,
    OPT_RECONNECT_MAX,
    OPT_CANCEL_GRACE,
    OPT_SHUTDOWN_GRACE,
    OPT_DISCONNECT_GRACE,
    OPT_RETENTION,
    OPT_SPOOL_MAX_BYTES,
    OPT_TASK_CONTAINMENT,
    OPT_TASK_MAX_PIDS,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_CA,
    OPT_TLS_CLIENT_AUTH,
    OPT_TLS_BIND_NODE_KEY,
    OPT_NO_TLS_BIND_NODE_KEY,
    OPT_TLS_SERVER_NAME,
    OPT_JSON,
    OPT_NODE,
    OPT_ALL_NODES,
    OPT_PRIORITY,
    OPT_RETRIES,
    OPT_RETRY_DELAY,
    OPT_TIMEOUT,
    OPT_ENV,
    OPT_LABEL,
    OPT_NAME,
    OPT_STATUS,
    OPT_LIMIT,
    OPT_BEFORE,
    OPT_FOLLOW,
    OPT_FORCE,
    OPT_DIR,
    OPT_MASTER_HOST,
    OPT_TEST_EXPIRED,
    OPT_DAYS,
    OPT_TZ,
    OPT_OVERLAP,
    OPT_MISSED,
    OPT_METRICS_LISTEN,
    OPT_ON_EVENT,
    OPT_ON_EVENT_TIMEOUT,
    OPT_AFTER,
    OPT_SPIDER,
    OPT_SPIDER_MAX_BYTES,
    OPT_SPIDER_MAX_FILES,
    OPT_SPIDER_CACHE_BYTES,
    OPT_TEST_ARCHIVE,
    OPT_TEST_SHA256,
    OPT_HELP,
    OPT_VERSION,
    OPT_COUNT
};
/* A set of options, one bit each: which were given, which a check is about. */
typedef unsigned __int128 option_set;
_Static_assert(OPT_COUNT <= 128, "too many options for an option_set");
#define BIT(id) ((option_set)1 << (id))

typedef char *config_getenv_fn(const char *name);

/* One config_parse() run: the struct being filled and where its one error message goes. */
struct config_parser {
    struct config *c;
    char *err;
    size_t errlen;
    option_set given;  /* BIT(option) for every option seen on the command line */
    bool listen_named; /* the master's address came from --listen or CRAWLAB_GRPC_SERVER_HOST */
};

struct config_option;

/*
 * Checks one value and stores it in p->c. label is how the user gave it ("--max-runners" or
 * "CRAWLAB_NODE_MAXRUNNERS") so that the message names what they must fix. value is NULL for an
 * option without a metavar (a flag).
 */
typedef int config_set_fn(struct config_parser *p, const struct config_option *o, const char *value,
                          const char *label);

/* The bounds and wording of an option's value type; which member is used depends on set. */
union config_spec {
    struct {
        long min, max;
        const char *noun; /* "an integer", "a port": what the message says was expected */
    } range;
    bool nonzero; /* a duration of zero is refused (it would make a timer spin) */
    struct {
        uint64_t min;
        const char *min_text; /* the minimum as the message words it */
        uint64_t max;         /* 0: none */
        const char *max_text;
    } size;
    size_t port_at; /* host:port: offsetof the port's int */
    struct {
        bool (*valid)(const char *s);
        const char *expected; /* "expected ..." for the message */
    } text;
    struct {
        /* Checks one entry and says how much of it must be unique (all of it, or "K" of K=V). */
        bool (*valid)(const char *s, size_t *key_len);
        const char *expected;
        const char *noun; /* "node", "variable": what is given twice */
        size_t n_at;      /* offsetof the array's size_t count */
    } list;
};

/*
 * One entry of the table that drives scanning, setting, the per-command check and the usage
 * text, so that they cannot drift apart.
 */
struct config_option {
    const char *name;    /* without the leading "--" */
    const char *metavar; /* NULL for a flag that takes no value */
    unsigned commands;   /* bitmask of M(CMD_...) that accept the option */
    const char *env;     /* for the usage text only */
    const char *help;    /* for the usage text */
    const char *def;     /* the default as the usage text states it; NULL when none */
    bool hidden;         /* left out of the usage text: for tests only */
    config_set_fn *set;  /* NULL: the option picks the command and the scan has read it, or
                          * a flag that checks.c reads from the given-mask */
    size_t at;           /* offsetof the field in struct config that set writes */
    union config_spec spec;
};

extern const struct config_option config_options[OPT_COUNT];

enum item_problem { P_NONE, P_UNKNOWN, P_MISSING_VALUE, P_UNEXPECTED_VALUE };

/* One option occurrence on the command line. token and value point into argv. */
struct config_item {
    int id; /* enum option_id, or -1 when unknown */
    enum item_problem problem;
    const char *token;
    int name_len; /* length of the option name within token, dashes included, "=value" not */
    const char *value;
};

/* The command line split up; every pointer points into argv. */
struct config_scan {
    const char *command; /* argv[1] when it is not an option: a client command or "cert" */
    const char *sub;     /* after "cert": argv[2] when it is not an option */
    struct config_item *items;
    size_t n_items;
    char **positional;
    size_t n_positional;
    char **rest; /* the words after "--" */
    size_t n_rest;
};

/* config.c: errors and owned strings. */
int config_fail(struct config_parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int config_nomem(struct config_parser *p);
/* Replaces *dst with a copy of value. */
int config_set_string(struct config_parser *p, char **dst, const char *value);
/* Appends a copy of value and keeps the array NULL-terminated. */
int config_push_string(struct config_parser *p, char ***arr, size_t *n, const char *value);
void config_free_strings(char **arr, size_t n);
/* A variable's value, or NULL when getenv_fn is NULL or it is unset or empty. */
const char *config_getenv(config_getenv_fn *getenv_fn, const char *name);

/* The zoneinfo directory: $TZDIR when set and not empty, else CONFIG_ZONEINFO_DIR (zone.c). */
const char *config_zone_dir(config_getenv_fn *getenv_fn);

/* scan.c */
const char *config_scan_command_name(enum config_command cmd);
/* Splits argv into the command words, option items, positional words and the words after "--".
 * It never fails: problems are recorded on the items and reported once the command is known.
 * s->items and s->positional have room for argc entries. */
void config_scan_args(struct config_scan *s, int argc, char **argv);
/* --help, -h or --version among the options: sets the command and returns true. */
bool config_scan_help(struct config_parser *p, const struct config_scan *s);
/* Sets p->c->command from the command words, else from --role or CRAWLAB_NODE_MASTER. */
int config_scan_command(struct config_parser *p, const struct config_scan *s,
                        config_getenv_fn *getenv_fn);
/* The TASK_ID of logs, results and cancel; the task's command of submit. */
int config_scan_positionals(struct config_parser *p, const struct config_scan *s);

/* options.c */
int config_options_defaults(struct config_parser *p);
int config_options_find(const char *name, size_t len);
/* Reports the items' problems, refuses options of other commands, sets the others. */
int config_options_apply(struct config_parser *p, const struct config_scan *s);
/* The CRAWLAB_* variables of the command that no flag hides. */
int config_options_apply_env(struct config_parser *p, config_getenv_fn *getenv_fn);

/* values.c, besides the public config_parse_duration_ms, _size and _hostport. */
/* Strict decimal integer: optional '-', then digits only. 0, -EINVAL or -ERANGE. */
int config_parse_int(const char *s, long min, long max, long *out);
/* A host without a port: a name, "[v6]" or a bare IPv6 address; *host gets a malloc'd copy
 * without brackets. 0, -EINVAL or -ENOMEM. */
int config_parse_host(const char *s, char **host);
/* Crawlab's Y/N and the usual spellings of a boolean, in any case. 0 or -EINVAL. */
int config_parse_yes_no(const char *s, bool *out);
/* The len bytes at s are a host name or an IP address literal, as a certificate names it.
 * 0 or -EINVAL. */
int config_parse_cert_host(const char *s, size_t len);

/* checks.c: the rules between options, after every option and variable is set. */
int config_check(struct config_parser *p);

#endif
