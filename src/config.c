#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rpc/validate.h"

#define DEFAULT_PORT            9666
#define DEFAULT_LISTEN_HOST     "0.0.0.0"
#define DEFAULT_MASTER_HOST     "127.0.0.1"
#define DEFAULT_MAX_RUNNERS     8
#define MAX_RUNNERS_LIMIT       1024
#define MAX_CONNECTIONS_LIMIT   1000000
#define DEFAULT_MAX_CONNECTIONS 10000
#define PRIORITY_MIN            (-1000)
#define PRIORITY_MAX            1000
#define DEFAULT_SPOOL_BYTES     (UINT64_C(1) << 30)
/* The worker splits output lines at 1 MiB; a spool smaller than that could not hold one. */
#define MIN_SPOOL_BYTES  (UINT64_C(1) << 20)
#define MAX_HOSTNAME_LEN 253
#define MAX_IPV6_LEN     63
#define TASK_ID_LEN      24
#define CERT_NAME_MAX    64
/* Values quoted in error messages are cut here so that a pasted blob stays readable. */
#define QUOTE_MAX 80
/* What the master takes as a node key or a name (validate.h), for help and error messages. */
#define STR_(x)       #x
#define STR(x)        STR_(x)
#define NODE_KEY_RULE "1 to " STR(VALIDATE_NODE_KEY_MAX) " letters, digits, '.', '_', ':' or '-'"
#define NAME_RULE     "at most " STR(VALIDATE_NAME_MAX) " bytes"
#define NAME_EXPECTED                                                                              \
    "expected 1 to " STR(VALIDATE_NAME_MAX) " bytes of UTF-8 text without control characters"

#define M(cmd)  (1u << (cmd))
#define DAEMONS (M(CMD_MASTER) | M(CMD_WORKER))
#define CLIENTS                                                                                    \
    (M(CMD_NODES) | M(CMD_SUBMIT) | M(CMD_TASKS) | M(CMD_LOGS) | M(CMD_RESULTS) | M(CMD_CANCEL))
#define ALL     (DAEMONS | CLIENTS)
#define CERTS   (M(CMD_CERT_INIT) | M(CMD_CERT_ISSUE))
#define EVERY   (ALL | CERTS)
#define BIT(id) (UINT64_C(1) << (id))

static const char *const command_names[] = {
    [CMD_MASTER] = "master",         [CMD_WORKER] = "worker", [CMD_NODES] = "nodes",
    [CMD_SUBMIT] = "submit",         [CMD_TASKS] = "tasks",   [CMD_LOGS] = "logs",
    [CMD_RESULTS] = "results",       [CMD_CANCEL] = "cancel", [CMD_CERT_INIT] = "cert init",
    [CMD_CERT_ISSUE] = "cert issue", [CMD_HELP] = "help",     [CMD_VERSION] = "version",
};

static const char *const task_statuses[] = {
    "pending", "assigned",  "running",  "finished",
    "error",   "cancelled", "abnormal", "node_disconnected",
};

enum option_id {
    OPT_ROLE,
    OPT_LISTEN,
    OPT_MASTER,
    OPT_DATA_DIR,
    OPT_AUTH_KEY,
    OPT_AUTH_KEY_FILE,
    OPT_INSECURE_NO_AUTH,
    OPT_LOG_LEVEL,
    OPT_LOG_FORMAT,
    OPT_NODE_KEY,
    OPT_NODE_NAME,
    OPT_MAX_RUNNERS,
    OPT_MAX_CONNECTIONS,
    OPT_AUTH_TIMEOUT,
    OPT_HEARTBEAT_INTERVAL,
    OPT_FETCH_INTERVAL,
    OPT_CANCEL_GRACE,
    OPT_SHUTDOWN_GRACE,
    OPT_DISCONNECT_GRACE,
    OPT_SPOOL_MAX_BYTES,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_CA,
    OPT_TLS_CLIENT_AUTH,
    OPT_TLS_BIND_NODE_KEY,
    OPT_TLS_SERVER_NAME,
    OPT_JSON,
    OPT_NODE,
    OPT_ALL_NODES,
    OPT_PRIORITY,
    OPT_TIMEOUT,
    OPT_ENV,
    OPT_NAME,
    OPT_STATUS,
    OPT_FOLLOW,
    OPT_FORCE,
    OPT_DIR,
    OPT_MASTER_HOST,
    OPT_TEST_EXPIRED,
    OPT_HELP,
    OPT_VERSION,
    OPT_COUNT
};
/* Which options were given is kept in one 64-bit mask. */
_Static_assert(OPT_COUNT <= 64, "too many options for the given-mask");

struct option_def {
    const char *name;    /* without the leading "--" */
    const char *metavar; /* NULL for a flag that takes no value */
    unsigned commands;   /* bitmask of M(CMD_...) that accept the option */
    const char *env;     /* for the usage text only */
    const char *help;    /* for the usage text */
    const char *def;     /* the default as the usage text states it; NULL when none */
    bool hidden;         /* left out of the usage text: for tests only */
};

/* One table drives parsing, the per-command check and the usage text, so they cannot drift. */
static const struct option_def options[OPT_COUNT] = {
    [OPT_ROLE] = {"role", "ROLE", DAEMONS, "CRAWLAB_NODE_MASTER=Y (master) or N (worker)",
                  "Run as the master or as a worker. Required to start a daemon.", NULL},
    [OPT_LISTEN] = {"listen", "ADDR:PORT", M(CMD_MASTER),
                    "CRAWLAB_GRPC_SERVER_HOST, CRAWLAB_GRPC_SERVER_PORT",
                    "Address the master listens on.", "0.0.0.0:9666"},
    [OPT_MASTER] = {"master", "HOST:PORT", M(CMD_WORKER) | CLIENTS,
                    "CRAWLAB_GRPC_HOST, CRAWLAB_GRPC_PORT", "Address of the master.",
                    "127.0.0.1:9666"},
    [OPT_DATA_DIR] = {"data-dir", "DIR", DAEMONS, NULL,
                      "Directory for the database, logs, spool, node key and auth.key.",
                      "/var/lib/crawlab-node, or ./crawlab-data when not run as root"},
    [OPT_AUTH_KEY] = {"auth-key", "KEY", ALL, "CRAWLAB_AUTH_KEY",
                      "Shared secret checked on every call. Anyone on the machine can read "
                      "it in the process list: prefer --auth-key-file or the environment.",
                      NULL},
    [OPT_AUTH_KEY_FILE] = {"auth-key-file", "FILE", ALL, NULL,
                           "File holding the auth key. The master's default is "
                           "<data-dir>/auth.key, generated on first start.",
                           NULL},
    [OPT_INSECURE_NO_AUTH] = {"insecure-no-auth", NULL, ALL, NULL,
                              "Turn authentication off: anyone who reaches the port can run "
                              "commands on the workers.",
                              NULL},
    [OPT_LOG_LEVEL] = {"log-level", "LEVEL", ALL, NULL, "error, warn, info or debug.", "info"},
    [OPT_LOG_FORMAT] = {"log-format", "FORMAT", ALL, NULL, "text or json.", "text"},
    [OPT_NODE_KEY] = {"node-key", "KEY", M(CMD_WORKER), "CRAWLAB_NODE_KEY",
                      "Identity of this worker: " NODE_KEY_RULE ".",
                      "generated once and kept in the data directory"},
    [OPT_NODE_NAME] = {"node-name", "NAME", M(CMD_WORKER), "CRAWLAB_NODE_NAME",
                       "Name shown for this worker, " NAME_RULE ".", "the host name"},
    [OPT_MAX_RUNNERS] = {"max-runners", "N", M(CMD_WORKER), "CRAWLAB_NODE_MAXRUNNERS",
                         "Tasks run at the same time, 1 to 1024.", "8"},
    [OPT_MAX_CONNECTIONS] = {"max-connections", "N", M(CMD_MASTER), NULL,
                             "Connections open at once, 1 to 1000000; more are refused. A "
                             "worker uses two.",
                             "10000"},
    [OPT_AUTH_TIMEOUT] = {"auth-timeout", "DURATION", M(CMD_MASTER), NULL,
                          "Time a new connection has for its first call with the auth key; "
                          "then it is closed. 0: no limit.",
                          "10s"},
    [OPT_HEARTBEAT_INTERVAL] = {"heartbeat-interval", "DURATION", DAEMONS, NULL,
                                "Time between a worker's heartbeats; the master expects the "
                                "same.",
                                "5s"},
    [OPT_FETCH_INTERVAL] = {"fetch-interval", "DURATION", M(CMD_WORKER), NULL,
                            "How often a worker asks for tasks when none is pushed to it.", "1s"},
    [OPT_CANCEL_GRACE] = {"cancel-grace", "DURATION", M(CMD_WORKER), NULL,
                          "Time between SIGTERM and SIGKILL when a task is cancelled or times "
                          "out.",
                          "15s"},
    [OPT_SHUTDOWN_GRACE] = {"shutdown-grace", "DURATION", DAEMONS, NULL,
                            "Time given to running work after SIGTERM before stopping hard.",
                            "30s"},
    [OPT_DISCONNECT_GRACE] = {"disconnect-grace", "DURATION", M(CMD_MASTER), NULL,
                              "Time an offline worker has to come back before its running "
                              "tasks become abnormal.",
                              "5m"},
    [OPT_SPOOL_MAX_BYTES] = {"spool-max-bytes", "SIZE", M(CMD_WORKER), NULL,
                             "Disk space for task output kept while the master is unreachable; "
                             "at least 1M.",
                             "1G"},
    [OPT_TLS_CERT] = {"tls-cert", "FILE", DAEMONS | CLIENTS, NULL,
                      "PEM certificate. On the master it turns TLS 1.3 on (with --tls-key); on a "
                      "worker or client command it is presented to the master for mutual TLS "
                      "(with --tls-key and --tls-ca).",
                      NULL},
    [OPT_TLS_KEY] = {"tls-key", "FILE", DAEMONS | CLIENTS, NULL, "PEM private key of --tls-cert.",
                     NULL},
    [OPT_TLS_CA] = {"tls-ca", "FILE", DAEMONS | CLIENTS, NULL,
                    "PEM CA certificate. On a worker or client command it turns TLS on and is "
                    "the CA the master's certificate must be signed by; on the master it is "
                    "the CA worker and client certificates must be signed by.",
                    NULL},
    [OPT_TLS_CLIENT_AUTH] = {"tls-client-auth", "MODE", M(CMD_MASTER), NULL,
                             "none or require: whether every connection must present a "
                             "certificate signed by --tls-ca. With none and --tls-ca, a "
                             "certificate offered is still verified.",
                             "require with --tls-ca, none without"},
    [OPT_TLS_BIND_NODE_KEY] = {"tls-bind-node-key", NULL, M(CMD_MASTER), NULL,
                               "Bind each node key to the certificate of its worker: a call "
                               "that names a node key is refused unless the common name of "
                               "the connection's client certificate equals that key. Needs "
                               "--tls-client-auth=require.",
                               NULL},
    [OPT_TLS_SERVER_NAME] = {"tls-server-name", "NAME", M(CMD_WORKER) | CLIENTS, NULL,
                             "Host name or IP address the master's certificate must be valid "
                             "for.",
                             "the host of --master"},
    [OPT_JSON] = {"json", NULL, M(CMD_NODES) | M(CMD_TASKS), NULL, "Print JSON instead of a table.",
                  NULL},
    [OPT_NODE] = {"node", "KEY", M(CMD_SUBMIT), NULL,
                  "Run the task on this node; repeat for several.", "any node"},
    [OPT_ALL_NODES] = {"all-nodes", NULL, M(CMD_SUBMIT), NULL,
                       "Run the task once on every online node.", NULL},
    [OPT_PRIORITY] = {"priority", "N", M(CMD_SUBMIT), NULL, "Queue priority, -1000 to 1000.", "0"},
    [OPT_TIMEOUT] = {"timeout", "DURATION", M(CMD_SUBMIT), NULL,
                     "Stop the task after this long; it ends in error.", "0, no limit"},
    [OPT_ENV] = {"env", "K=V", M(CMD_SUBMIT), NULL,
                 "Add a variable to the task's environment; repeatable.", NULL},
    [OPT_NAME] = {"name", "NAME", M(CMD_SUBMIT) | M(CMD_CERT_ISSUE), NULL,
                  "submit: task name shown in listings, " NAME_RULE ". cert issue: name of "
                  "the new certificate (its common name, and DIR/NAME.pem, DIR/NAME.key); "
                  "letters, digits, '.', '_' and '-'.",
                  NULL},
    [OPT_STATUS] = {"status", "STATUS", M(CMD_TASKS), NULL,
                    "Only tasks in this status: pending, assigned, running, finished, error, "
                    "cancelled, abnormal or node_disconnected.",
                    NULL},
    [OPT_FOLLOW] = {"follow", NULL, M(CMD_LOGS), NULL,
                    "Keep printing new lines until the task ends.", NULL},
    [OPT_FORCE] = {"force", NULL, M(CMD_CANCEL), NULL,
                   "Kill the task at once instead of sending SIGTERM first.", NULL},
    [OPT_DIR] = {"dir", "DIR", CERTS, NULL,
                 "Directory of the CA and the certificates; cert init creates it (0700).", NULL},
    [OPT_MASTER_HOST] = {"master-host", "NAME[,NAME|IP...]", M(CMD_CERT_INIT), NULL,
                         "Host names and IP addresses workers use to reach the master; they "
                         "go into the master certificate's subject alternative names.",
                         NULL},
    [OPT_TEST_EXPIRED] = {"test-expired", NULL, M(CMD_CERT_ISSUE), NULL,
                          "Issue a certificate that expired yesterday (tests only).", NULL, true},
    [OPT_HELP] = {"help", NULL, EVERY, NULL, "Show this text (also -h).", NULL},
    [OPT_VERSION] = {"version", NULL, EVERY, NULL, "Show the version.", NULL},
};

enum env_target {
    ENV_LISTEN_HOST,
    ENV_LISTEN_PORT,
    ENV_MASTER_HOST,
    ENV_MASTER_PORT,
    ENV_OPTION, /* validated and applied exactly like the option it stands for */
};

struct env_def {
    const char *name;
    enum env_target target;
    enum option_id option;  /* for ENV_OPTION */
    unsigned commands;      /* commands that read the variable; the others ignore it */
    uint64_t overridden_by; /* options whose presence on the command line hides the variable */
};

/* CRAWLAB_NODE_MASTER is not here: it decides the command, see pick_role(). */
static const struct env_def envs[] = {
    {"CRAWLAB_GRPC_SERVER_HOST", ENV_LISTEN_HOST, OPT_LISTEN, M(CMD_MASTER), BIT(OPT_LISTEN)},
    {"CRAWLAB_GRPC_SERVER_PORT", ENV_LISTEN_PORT, OPT_LISTEN, M(CMD_MASTER), BIT(OPT_LISTEN)},
    {"CRAWLAB_GRPC_HOST", ENV_MASTER_HOST, OPT_MASTER, M(CMD_WORKER) | CLIENTS, BIT(OPT_MASTER)},
    {"CRAWLAB_GRPC_PORT", ENV_MASTER_PORT, OPT_MASTER, M(CMD_WORKER) | CLIENTS, BIT(OPT_MASTER)},
    /* A key file or --insecure-no-auth is a deliberate choice that a stray variable must not
     * turn into a conflict. */
    {"CRAWLAB_AUTH_KEY", ENV_OPTION, OPT_AUTH_KEY, ALL,
     BIT(OPT_AUTH_KEY) | BIT(OPT_AUTH_KEY_FILE) | BIT(OPT_INSECURE_NO_AUTH)},
    {"CRAWLAB_NODE_KEY", ENV_OPTION, OPT_NODE_KEY, M(CMD_WORKER), BIT(OPT_NODE_KEY)},
    {"CRAWLAB_NODE_NAME", ENV_OPTION, OPT_NODE_NAME, M(CMD_WORKER), BIT(OPT_NODE_NAME)},
    {"CRAWLAB_NODE_MAXRUNNERS", ENV_OPTION, OPT_MAX_RUNNERS, M(CMD_WORKER), BIT(OPT_MAX_RUNNERS)},
};

enum problem { P_NONE, P_UNKNOWN, P_MISSING_VALUE, P_UNEXPECTED_VALUE };

/* One option occurrence on the command line. token and value point into argv. */
struct item {
    int id; /* enum option_id, or -1 when unknown */
    enum problem problem;
    const char *token;
    int name_len; /* length of the option name within token, dashes included, "=value" not */
    const char *value;
};

struct scan {
    struct item *items;
    size_t n_items;
    char **positional;
    size_t n_positional;
    char **rest; /* the words after "--" */
    size_t n_rest;
};

struct parse {
    struct config *c;
    char *err;
    size_t errlen;
    uint64_t given; /* BIT(option) for every option seen on the command line */
};

static int fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The message quotes what was given, which may hold anything: it is kept to one printable line,
 * every control character shown as '?'. */
static int fail(struct parse *p, const char *fmt, ...)
{
    if (p->err && p->errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, p->errlen, fmt, ap);
        va_end(ap);
        for (char *c = p->err; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
    }
    return -EINVAL;
}

static int out_of_memory(struct parse *p)
{
    if (p->err && p->errlen > 0)
        snprintf(p->err, p->errlen, "out of memory");
    return -ENOMEM;
}

static int set_string(struct parse *p, char **dst, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return out_of_memory(p);
    free(*dst);
    *dst = copy;
    return 0;
}

/* Appends a copy of value and keeps the array NULL-terminated. */
static int push_string(struct parse *p, char ***arr, size_t *n, const char *value)
{
    char **grown = realloc(*arr, (*n + 2) * sizeof(*grown));
    if (!grown)
        return out_of_memory(p);
    *arr = grown;
    grown[*n] = strdup(value);
    if (!grown[*n]) {
        grown[*n] = NULL;
        return out_of_memory(p);
    }
    (*n)++;
    grown[*n] = NULL;
    return 0;
}

static void free_strings(char **arr, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(arr[i]);
    free(arr);
}

/* Strict decimal integer: optional '-', then digits only; no spaces, no '+', no trailing text. */
static int parse_int(const char *s, long min, long max, long *out)
{
    const char *d = s[0] == '-' ? s + 1 : s;
    if (!isdigit((unsigned char)*d))
        return -EINVAL;
    long long v = 0;
    for (; *d; d++) {
        if (!isdigit((unsigned char)*d))
            return -EINVAL;
        /* Saturate instead of overflowing; any saturated value is out of range anyway. */
        if (v < 1000000000000LL)
            v = v * 10 + (*d - '0');
    }
    if (s[0] == '-')
        v = -v;
    if (v < min || v > max)
        return -ERANGE;
    *out = (long)v;
    return 0;
}

static bool valid_hostname(const char *s, size_t len)
{
    if (len == 0 || len > MAX_HOSTNAME_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '.' && ch != '-' && ch != '_')
            return false;
    }
    return true;
}

/* Hex digits, ':' and '.' (embedded IPv4), then an optional "%zone" of name characters. */
static bool valid_ipv6(const char *s, size_t len)
{
    if (len < 2 || len > MAX_IPV6_LEN || !memchr(s, ':', len))
        return false;
    size_t i = 0;
    for (; i < len && s[i] != '%'; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isxdigit(ch) && ch != ':' && ch != '.')
            return false;
    }
    if (i < len)
        return valid_hostname(s + i + 1, len - i - 1);
    return true;
}

/* A host without a port, as in CRAWLAB_GRPC_HOST: a name, "[v6]" or a bare IPv6 address. */
static int parse_host(const char *s, char **host)
{
    size_t len = strlen(s);
    const char *h = s;
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        h = s + 1;
        len -= 2;
        if (!valid_ipv6(h, len))
            return -EINVAL;
    } else if (!valid_hostname(h, len) && !valid_ipv6(h, len)) {
        return -EINVAL;
    }
    char *copy = strndup(h, len);
    if (!copy)
        return -ENOMEM;
    *host = copy;
    return 0;
}

int config_parse_hostport(const char *s, char **host, int *port)
{
    const char *h;
    size_t hlen;
    const char *port_text = NULL;

    if (!s)
        return -EINVAL;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return -EINVAL;
        h = s + 1;
        hlen = (size_t)(close - h);
        if (!valid_ipv6(h, hlen))
            return -EINVAL;
        if (close[1] == ':')
            port_text = close + 2;
        else if (close[1] != '\0')
            return -EINVAL;
    } else {
        const char *colon = strchr(s, ':');
        h = s;
        hlen = colon ? (size_t)(colon - s) : strlen(s);
        /* A second colon means an unbracketed IPv6 address, whose port cannot be told apart. */
        if (colon && strchr(colon + 1, ':'))
            return -EINVAL;
        if (colon)
            port_text = colon + 1;
        if (!valid_hostname(h, hlen))
            return -EINVAL;
    }

    int port_value = *port;
    if (port_text) {
        long v;
        if (parse_int(port_text, 1, 65535, &v) != 0)
            return -EINVAL;
        port_value = (int)v;
    }
    char *copy = strndup(h, hlen);
    if (!copy)
        return -ENOMEM;
    *host = copy;
    *port = port_value;
    return 0;
}

int config_parse_duration_ms(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return -EINVAL;

    const char *p = s;
    uint64_t total = 0;
    bool overflow = false;
    bool first = true;

    while (*p) {
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        uint64_t whole = 0;
        for (; isdigit((unsigned char)*p); p++) {
            if (__builtin_mul_overflow(whole, 10, &whole) ||
                __builtin_add_overflow(whole, (uint64_t)(*p - '0'), &whole))
                overflow = true;
        }
        /* Nine fractional digits are far below a millisecond for every unit; later ones are
         * checked for syntax and otherwise ignored. */
        uint64_t frac = 0, frac_scale = 1;
        if (*p == '.') {
            p++;
            if (!isdigit((unsigned char)*p))
                return -EINVAL;
            for (; isdigit((unsigned char)*p); p++) {
                if (frac_scale < 1000000000) {
                    frac = frac * 10 + (uint64_t)(*p - '0');
                    frac_scale *= 10;
                }
            }
        }

        uint64_t unit;
        if (strncmp(p, "ms", 2) == 0) {
            unit = 1;
            p += 2;
        } else if (*p == 's') {
            unit = 1000;
            p++;
        } else if (*p == 'm') {
            unit = 60 * 1000;
            p++;
        } else if (*p == 'h') {
            unit = 60 * 60 * 1000;
            p++;
        } else if (*p == '\0' && first) {
            /* A bare number means seconds, as in Crawlab's own settings. */
            unit = 1000;
        } else {
            return -EINVAL;
        }

        uint64_t part;
        if (__builtin_mul_overflow(whole, unit, &part) ||
            __builtin_add_overflow(part, frac * unit / frac_scale, &part) ||
            __builtin_add_overflow(total, part, &total))
            overflow = true;
        first = false;
    }
    if (overflow)
        return -ERANGE;
    *out = total;
    return 0;
}

int config_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        unsigned shift;
    } suffixes[] = {
        {"", 0},     {"b", 0},  {"k", 10},  {"kb", 10},  {"kib", 10}, {"m", 20},  {"mb", 20},
        {"mib", 20}, {"g", 30}, {"gb", 30}, {"gib", 30}, {"t", 40},   {"tb", 40}, {"tib", 40},
    };

    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    const char *p = s;
    uint64_t v = 0;
    bool overflow = false;
    for (; isdigit((unsigned char)*p); p++) {
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
            overflow = true;
    }
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        if (strcasecmp(p, suffixes[i].suffix) != 0)
            continue;
        unsigned shift = suffixes[i].shift;
        if (overflow || (shift > 0 && v > (UINT64_MAX >> shift)))
            return -ERANGE;
        *out = v << shift;
        return 0;
    }
    return -EINVAL;
}

static bool valid_task_id(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++) {
        if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
            return false;
    }
    return i == TASK_ID_LEN;
}

/*
 * Node names and task names, by the rule the master applies to them on the wire (validate.h):
 * a name it would refuse must be refused here, at start, rather than by a master that a worker
 * would then ask again and again. Node keys are checked with validate_node_key() itself.
 */
static bool valid_name(const char *s)
{
    return *s && validate_text_line(s, VALIDATE_NAME_MAX);
}

/* The key travels as gRPC metadata, whose values are printable ASCII. */
static bool valid_auth_key(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < 0x21 || *s > 0x7e)
            return false;
    }
    return true;
}

static bool valid_env_name(const char *s, size_t len)
{
    if (len == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < len; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    }
    return true;
}

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

/* A host name or an IP address literal, as a certificate names it. */
static bool valid_cert_host(const char *s, size_t len)
{
    char buf[MAX_HOSTNAME_LEN + 1];
    unsigned char addr[16];
    if (len == 0 || len > MAX_HOSTNAME_LEN)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET6, buf, addr) == 1)
        return true;
    return valid_hostname(s, len);
}

/* --master-host=a,b,c: every entry valid, none twice. */
static int apply_cert_hosts(struct parse *p, const char *value, const char *label)
{
    struct config *c = p->c;
    free_strings(c->cert_hosts, c->n_cert_hosts);
    c->cert_hosts = NULL;
    c->n_cert_hosts = 0;
    const char *item = value;
    for (;;) {
        size_t len = strcspn(item, ",");
        if (!valid_cert_host(item, len))
            return fail(p,
                        "%s: expected host names or IP addresses separated by commas, got "
                        "'%.*s'",
                        label, QUOTE_MAX, value);
        for (size_t i = 0; i < c->n_cert_hosts; i++) {
            if (strlen(c->cert_hosts[i]) == len && strncmp(c->cert_hosts[i], item, len) == 0)
                return fail(p, "%s: '%.*s' is given twice", label, (int)len, item);
        }
        char *one = strndup(item, len);
        if (!one)
            return out_of_memory(p);
        int rc = push_string(p, &c->cert_hosts, &c->n_cert_hosts, one);
        free(one);
        if (rc != 0)
            return rc;
        if (item[len] == '\0')
            return 0;
        item += len + 1;
    }
}

/* Durations of zero are refused where they would make a timer spin. */
static int apply_duration(struct parse *p, uint64_t *dst, const char *value, const char *label,
                          bool allow_zero)
{
    uint64_t ms;
    int rc = config_parse_duration_ms(value, &ms);
    if (rc == -ERANGE)
        return fail(p, "%s: duration '%.*s' is too large", label, QUOTE_MAX, value);
    if (rc != 0)
        return fail(p, "%s: expected a duration such as 500ms, 5s, 2m or 1h, got '%.*s'", label,
                    QUOTE_MAX, value);
    if (!allow_zero && ms == 0)
        return fail(p, "%s: must be greater than zero", label);
    *dst = ms;
    return 0;
}

/*
 * Validates and stores one option value. label is how the user gave it ("--max-runners" or
 * "CRAWLAB_NODE_MAXRUNNERS") so the message names what they must fix.
 */
static int apply_option(struct parse *p, enum option_id id, const char *value, const char *label)
{
    struct config *c = p->c;
    long n;
    int rc;

    switch (id) {
    case OPT_ROLE:
        /* Already validated and applied by pick_role(). */
        return 0;
    case OPT_LISTEN:
    case OPT_MASTER: {
        char **host = id == OPT_LISTEN ? &c->listen_host : &c->master_host;
        int *port = id == OPT_LISTEN ? &c->listen_port : &c->master_port;
        char *new_host;
        /* A flag replaces the whole address: without a port it means the default port, not
         * the one from the environment. */
        int new_port = DEFAULT_PORT;
        rc = config_parse_hostport(value, &new_host, &new_port);
        if (rc == -ENOMEM)
            return out_of_memory(p);
        if (rc != 0)
            return fail(p,
                        "%s: expected HOST:PORT or [IPV6]:PORT with a port from 1 to 65535, "
                        "got '%.*s'",
                        label, QUOTE_MAX, value);
        free(*host);
        *host = new_host;
        *port = new_port;
        return 0;
    }
    case OPT_DATA_DIR:
    case OPT_AUTH_KEY_FILE:
    case OPT_TLS_CERT:
    case OPT_TLS_KEY:
    case OPT_TLS_CA:
    case OPT_DIR: {
        if (!*value)
            return fail(p, "%s: expected a path, got an empty value", label);
        char **dst = id == OPT_DATA_DIR        ? &c->data_dir
                     : id == OPT_AUTH_KEY_FILE ? &c->auth_key_file
                     : id == OPT_TLS_CERT      ? &c->tls_cert
                     : id == OPT_TLS_KEY       ? &c->tls_key
                     : id == OPT_TLS_CA        ? &c->tls_ca
                                               : &c->cert_dir;
        return set_string(p, dst, value);
    }
    case OPT_TLS_CLIENT_AUTH:
        if (strcmp(value, "none") == 0)
            c->tls_require_client_cert = false;
        else if (strcmp(value, "require") == 0)
            c->tls_require_client_cert = true;
        else
            return fail(p, "%s: expected none or require, got '%.*s'", label, QUOTE_MAX, value);
        return 0;
    case OPT_TLS_SERVER_NAME:
        if (!valid_cert_host(value, strlen(value)))
            return fail(p, "%s: expected a host name or IP address, got '%.*s'", label, QUOTE_MAX,
                        value);
        return set_string(p, &c->tls_server_name, value);
    case OPT_MASTER_HOST:
        return apply_cert_hosts(p, value, label);
    case OPT_TEST_EXPIRED:
        c->cert_test_expired = true;
        return 0;
    case OPT_AUTH_KEY:
        if (!valid_auth_key(value))
            return fail(p, "%s: the key must be printable ASCII without spaces (value not shown)",
                        label);
        return set_string(p, &c->auth_key, value);
    case OPT_INSECURE_NO_AUTH:
        c->insecure_no_auth = true;
        return 0;
    case OPT_TLS_BIND_NODE_KEY:
        c->tls_bind_node_key = true;
        return 0;
    case OPT_LOG_LEVEL:
        if (log_level_parse(value, &c->log_level) != 0)
            return fail(p, "%s: expected error, warn, info or debug, got '%.*s'", label, QUOTE_MAX,
                        value);
        return 0;
    case OPT_LOG_FORMAT:
        if (strcmp(value, "text") == 0)
            c->log_format = LOG_FORMAT_TEXT;
        else if (strcmp(value, "json") == 0)
            c->log_format = LOG_FORMAT_JSON;
        else
            return fail(p, "%s: expected text or json, got '%.*s'", label, QUOTE_MAX, value);
        return 0;
    case OPT_NODE_KEY:
        if (!validate_node_key(value))
            return fail(p, "%s: expected a node key of " NODE_KEY_RULE ", got '%.*s'", label,
                        QUOTE_MAX, value);
        return set_string(p, &c->node_key, value);
    case OPT_NODE_NAME:
        if (!valid_name(value))
            return fail(p, "%s: " NAME_EXPECTED ", got '%.*s'", label, QUOTE_MAX, value);
        return set_string(p, &c->node_name, value);
    case OPT_MAX_RUNNERS:
        if (parse_int(value, 1, MAX_RUNNERS_LIMIT, &n) != 0)
            return fail(p, "%s: expected an integer from 1 to %d, got '%.*s'", label,
                        MAX_RUNNERS_LIMIT, QUOTE_MAX, value);
        c->max_runners = (int)n;
        return 0;
    case OPT_MAX_CONNECTIONS:
        if (parse_int(value, 1, MAX_CONNECTIONS_LIMIT, &n) != 0)
            return fail(p, "%s: expected an integer from 1 to %d, got '%.*s'", label,
                        MAX_CONNECTIONS_LIMIT, QUOTE_MAX, value);
        c->max_connections = (int)n;
        return 0;
    case OPT_AUTH_TIMEOUT:
        return apply_duration(p, &c->auth_timeout_ms, value, label, true);
    case OPT_HEARTBEAT_INTERVAL:
        return apply_duration(p, &c->heartbeat_interval_ms, value, label, false);
    case OPT_FETCH_INTERVAL:
        return apply_duration(p, &c->fetch_interval_ms, value, label, false);
    case OPT_CANCEL_GRACE:
        return apply_duration(p, &c->cancel_grace_ms, value, label, true);
    case OPT_SHUTDOWN_GRACE:
        return apply_duration(p, &c->shutdown_grace_ms, value, label, true);
    case OPT_DISCONNECT_GRACE:
        return apply_duration(p, &c->disconnect_grace_ms, value, label, true);
    case OPT_TIMEOUT:
        return apply_duration(p, &c->timeout_ms, value, label, true);
    case OPT_SPOOL_MAX_BYTES: {
        uint64_t bytes;
        rc = config_parse_size(value, &bytes);
        if (rc == -ERANGE)
            return fail(p, "%s: size '%.*s' is too large", label, QUOTE_MAX, value);
        if (rc != 0)
            return fail(p, "%s: expected a size such as 1048576, 64K, 512M or 1G, got '%.*s'",
                        label, QUOTE_MAX, value);
        if (bytes < MIN_SPOOL_BYTES)
            return fail(p, "%s: must be at least 1M, the longest output line, got '%.*s'", label,
                        QUOTE_MAX, value);
        c->spool_max_bytes = bytes;
        return 0;
    }
    case OPT_JSON:
        c->json = true;
        return 0;
    case OPT_NODE:
        if (!validate_node_key(value))
            return fail(p, "%s: expected a node key of " NODE_KEY_RULE ", got '%.*s'", label,
                        QUOTE_MAX, value);
        for (size_t i = 0; i < c->n_nodes; i++) {
            if (strcmp(c->nodes[i], value) == 0)
                return fail(p, "%s: node '%.*s' is given twice", label, QUOTE_MAX, value);
        }
        return push_string(p, &c->nodes, &c->n_nodes, value);
    case OPT_ALL_NODES:
        c->all_nodes = true;
        return 0;
    case OPT_PRIORITY:
        if (parse_int(value, PRIORITY_MIN, PRIORITY_MAX, &n) != 0)
            return fail(p, "%s: expected an integer from %d to %d, got '%.*s'", label, PRIORITY_MIN,
                        PRIORITY_MAX, QUOTE_MAX, value);
        c->priority = (int)n;
        return 0;
    case OPT_ENV: {
        const char *eq = strchr(value, '=');
        size_t klen = eq ? (size_t)(eq - value) : 0;
        if (!eq || !valid_env_name(value, klen))
            return fail(p,
                        "%s: expected NAME=VALUE with NAME made of letters, digits and '_' "
                        "and not starting with a digit, got '%.*s'",
                        label, QUOTE_MAX, value);
        for (size_t i = 0; i < c->n_env; i++) {
            if (strncmp(c->env[i], value, klen + 1) == 0)
                return fail(p, "%s: variable '%.*s' is given twice", label, (int)klen, value);
        }
        return push_string(p, &c->env, &c->n_env, value);
    }
    case OPT_NAME:
        if (c->command == CMD_CERT_ISSUE) {
            if (!valid_cert_name(value) || strcmp(value, "ca") == 0)
                return fail(p,
                            "%s: expected 1 to %d letters, digits, '.', '_' or '-', not "
                            "starting with '.' or '-' and not 'ca', got '%.*s'",
                            label, CERT_NAME_MAX, QUOTE_MAX, value);
            return set_string(p, &c->cert_name, value);
        }
        if (!valid_name(value))
            return fail(p, "%s: " NAME_EXPECTED ", got '%.*s'", label, QUOTE_MAX, value);
        return set_string(p, &c->task_name, value);
    case OPT_STATUS:
        for (size_t i = 0; i < sizeof(task_statuses) / sizeof(task_statuses[0]); i++) {
            if (strcmp(value, task_statuses[i]) == 0)
                return set_string(p, &c->status_filter, value);
        }
        return fail(p,
                    "%s: expected one of pending, assigned, running, finished, error, "
                    "cancelled, abnormal, node_disconnected, got '%.*s'",
                    label, QUOTE_MAX, value);
    case OPT_FOLLOW:
        c->follow = true;
        return 0;
    case OPT_FORCE:
        c->force = true;
        return 0;
    case OPT_HELP:
    case OPT_VERSION:
    case OPT_COUNT:
        break;
    }
    return 0;
}

static int find_option(const char *name, size_t len)
{
    for (int i = 0; i < OPT_COUNT; i++) {
        if (strlen(options[i].name) == len && strncmp(options[i].name, name, len) == 0)
            return i;
    }
    return -1;
}

/*
 * Splits argv[start..] into option items, positional words and the words after "--". It knows
 * from the table which options take a value, so "--name -h" reads "-h" as the name; it never
 * fails, problems are recorded on the items and reported once the command is known.
 */
static void scan_args(struct scan *s, int argc, char **argv, int start)
{
    for (int i = start; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            s->rest = argv + i + 1;
            s->n_rest = (size_t)(argc - i - 1);
            return;
        }
        if (a[0] != '-' || a[1] == '\0') {
            s->positional[s->n_positional++] = a;
            continue;
        }
        struct item *it = &s->items[s->n_items++];
        it->token = a;
        if (a[1] != '-') {
            it->name_len = (int)strlen(a);
            it->id = strcmp(a, "-h") == 0 ? OPT_HELP : -1;
            it->problem = it->id < 0 ? P_UNKNOWN : P_NONE;
            continue;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        /* The name alone is quoted in messages: "--auth-keys=SECRET" must not echo SECRET. */
        it->name_len = (int)len + 2;
        it->id = find_option(name, len);
        if (it->id < 0) {
            it->problem = P_UNKNOWN;
        } else if (!options[it->id].metavar) {
            if (eq)
                it->problem = P_UNEXPECTED_VALUE;
        } else if (eq) {
            it->value = eq + 1;
        } else if (i + 1 < argc && strcmp(argv[i + 1], "--") != 0) {
            it->value = argv[++i];
        } else {
            it->problem = P_MISSING_VALUE;
        }
    }
}

/* Accepts Crawlab's Y/N and the usual spellings of a boolean. */
static int parse_yes_no(const char *s, bool *out)
{
    static const char *const yes[] = {"y", "yes", "true", "1"};
    static const char *const no[] = {"n", "no", "false", "0"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

static const char *env_value(char *(*getenv_fn)(const char *), const char *name)
{
    if (!getenv_fn)
        return NULL;
    const char *v = getenv_fn(name);
    /* Container tooling often sets a variable to "" to mean "not set". */
    return v && *v ? v : NULL;
}

static int report_unknown(struct parse *p, const struct scan *s, const char *command)
{
    for (size_t i = 0; i < s->n_items; i++) {
        const struct item *it = &s->items[i];
        if (it->problem != P_UNKNOWN)
            continue;
        if (command)
            return fail(p, "unknown option '%.*s' for '%s'", it->name_len, it->token, command);
        return fail(p, "unknown option '%.*s'", it->name_len, it->token);
    }
    return 0;
}

/* A daemon's role: the last --role wins, then CRAWLAB_NODE_MASTER. */
static int pick_role(struct parse *p, const struct scan *s, char *(*getenv_fn)(const char *))
{
    const char *role = NULL;
    for (size_t i = 0; i < s->n_items; i++) {
        if (s->items[i].id == OPT_ROLE && s->items[i].problem == P_NONE)
            role = s->items[i].value;
    }
    if (role) {
        if (strcmp(role, "master") == 0)
            p->c->command = CMD_MASTER;
        else if (strcmp(role, "worker") == 0)
            p->c->command = CMD_WORKER;
        else
            return fail(p, "--role: expected master or worker, got '%.*s'", QUOTE_MAX, role);
        return 0;
    }
    const char *env = env_value(getenv_fn, "CRAWLAB_NODE_MASTER");
    if (env) {
        bool master;
        if (parse_yes_no(env, &master) != 0)
            return fail(p, "CRAWLAB_NODE_MASTER: expected Y (master) or N (worker), got '%.*s'",
                        QUOTE_MAX, env);
        p->c->command = master ? CMD_MASTER : CMD_WORKER;
        return 0;
    }
    /* "--rol=master" should be reported as the typo it is, not as a missing role. */
    int rc = report_unknown(p, s, NULL);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < s->n_items; i++) {
        if (s->items[i].id == OPT_ROLE && s->items[i].problem == P_MISSING_VALUE)
            return fail(p, "'--role' requires a value");
    }
    return fail(p, "--role is required: use --role=master or --role=worker, set "
                   "CRAWLAB_NODE_MASTER=Y or N, or give a command (see --help)");
}

static int apply_items(struct parse *p, const struct scan *s)
{
    enum config_command cmd = p->c->command;
    const char *cmd_name = command_names[cmd];
    char label[64];

    for (size_t i = 0; i < s->n_items; i++) {
        const struct item *it = &s->items[i];
        switch (it->problem) {
        case P_UNKNOWN:
            return fail(p, "unknown option '%.*s' for '%s'", it->name_len, it->token, cmd_name);
        case P_MISSING_VALUE:
            return fail(p, "'%s' requires a value", it->token);
        case P_UNEXPECTED_VALUE:
            return fail(p, "'%.*s' takes no value", it->name_len, it->token);
        case P_NONE:
            break;
        }
        if (!(options[it->id].commands & M(cmd)))
            return fail(p, "'--%s' is not an option of '%s'", options[it->id].name, cmd_name);
        snprintf(label, sizeof(label), "--%s", options[it->id].name);
        int rc = apply_option(p, (enum option_id)it->id, it->value, label);
        if (rc != 0)
            return rc;
        p->given |= BIT(it->id);
    }
    return 0;
}

static int apply_env(struct parse *p, char *(*getenv_fn)(const char *))
{
    struct config *c = p->c;
    for (size_t i = 0; i < sizeof(envs) / sizeof(envs[0]); i++) {
        const struct env_def *e = &envs[i];
        if (!(e->commands & M(c->command)) || (p->given & e->overridden_by))
            continue;
        const char *v = env_value(getenv_fn, e->name);
        if (!v)
            continue;
        int rc;
        switch (e->target) {
        case ENV_LISTEN_HOST:
        case ENV_MASTER_HOST: {
            char *host;
            rc = parse_host(v, &host);
            if (rc == -ENOMEM)
                return out_of_memory(p);
            if (rc != 0)
                return fail(p, "%s: expected a host name or IP address, got '%.*s'", e->name,
                            QUOTE_MAX, v);
            char **dst = e->target == ENV_LISTEN_HOST ? &c->listen_host : &c->master_host;
            free(*dst);
            *dst = host;
            break;
        }
        case ENV_LISTEN_PORT:
        case ENV_MASTER_PORT: {
            long port;
            if (parse_int(v, 1, 65535, &port) != 0)
                return fail(p, "%s: expected a port from 1 to 65535, got '%.*s'", e->name,
                            QUOTE_MAX, v);
            *(e->target == ENV_LISTEN_PORT ? &c->listen_port : &c->master_port) = (int)port;
            break;
        }
        case ENV_OPTION:
            rc = apply_option(p, e->option, v, e->name);
            if (rc != 0)
                return rc;
            break;
        }
    }
    return 0;
}

static int apply_positionals(struct parse *p, const struct scan *s)
{
    struct config *c = p->c;
    const char *cmd_name = command_names[c->command];

    if (c->command == CMD_SUBMIT) {
        if (s->n_positional > 0)
            return fail(p,
                        "unexpected argument '%.*s' for 'submit': put the task's command "
                        "after '--'",
                        QUOTE_MAX, s->positional[0]);
        if (s->n_rest == 0 || s->rest[0][0] == '\0')
            return fail(p, "'submit' needs a command after '--', e.g. crawlab-node submit -- "
                           "scrapy crawl quotes");
        for (size_t i = 0; i < s->n_rest; i++) {
            int rc = push_string(p, &c->argv_cmd, &c->n_argv_cmd, s->rest[i]);
            if (rc != 0)
                return rc;
        }
        return 0;
    }

    /* Outside submit, "--" only ends the options; what follows is positional. */
    const char *words[2] = {NULL, NULL};
    size_t n_words = 0;
    for (size_t i = 0; i < s->n_positional && n_words < 2; i++)
        words[n_words++] = s->positional[i];
    for (size_t i = 0; i < s->n_rest && n_words < 2; i++)
        words[n_words++] = s->rest[i];
    const char *first = words[0], *second = words[1];
    bool wants_task_id =
        c->command == CMD_LOGS || c->command == CMD_RESULTS || c->command == CMD_CANCEL;

    if (!wants_task_id) {
        if (first)
            return fail(p, "unexpected argument '%.*s' for '%s'", QUOTE_MAX, first, cmd_name);
        return 0;
    }
    if (!first)
        return fail(p, "'%s' needs a TASK_ID", cmd_name);
    if (second)
        return fail(p, "unexpected argument '%.*s' for '%s': it takes one TASK_ID", QUOTE_MAX,
                    second, cmd_name);
    if (!valid_task_id(first))
        return fail(p, "TASK_ID: expected 24 lowercase hexadecimal digits, got '%.*s'", QUOTE_MAX,
                    first);
    return set_string(p, &c->task_id, first);
}

static int check_conflicts(struct parse *p)
{
    if ((p->given & BIT(OPT_AUTH_KEY)) && (p->given & BIT(OPT_AUTH_KEY_FILE)))
        return fail(p, "'--auth-key' and '--auth-key-file' cannot be used together");
    if ((p->given & BIT(OPT_INSECURE_NO_AUTH)) &&
        (p->given & (BIT(OPT_AUTH_KEY) | BIT(OPT_AUTH_KEY_FILE))))
        return fail(p, "'--insecure-no-auth' cannot be combined with an auth key");
    if ((p->given & BIT(OPT_NODE)) && (p->given & BIT(OPT_ALL_NODES)))
        return fail(p, "'--node' and '--all-nodes' cannot be used together");
    return 0;
}

/* TLS options that make sense only together, and the required options of the cert commands. */
static int check_tls(struct parse *p)
{
    struct config *c = p->c;
    uint64_t g = p->given;
    bool cert = g & BIT(OPT_TLS_CERT), key = g & BIT(OPT_TLS_KEY), ca = g & BIT(OPT_TLS_CA);

    switch (c->command) {
    case CMD_MASTER:
        if (key && !cert)
            return fail(p, "'--tls-key' needs '--tls-cert', the certificate it belongs to");
        if (cert && !key)
            return fail(p, "'--tls-cert' needs '--tls-key', the certificate's private key");
        if (!cert && (ca || (g & BIT(OPT_TLS_CLIENT_AUTH))))
            return fail(p, "'%s' needs TLS on the master: add '--tls-cert' and '--tls-key'",
                        ca ? "--tls-ca" : "--tls-client-auth");
        if (!(g & BIT(OPT_TLS_CLIENT_AUTH)))
            c->tls_require_client_cert = ca;
        else if (c->tls_require_client_cert && !ca)
            return fail(p, "'--tls-client-auth=require' needs '--tls-ca', the CA that signs "
                           "the workers' certificates");
        if (c->tls_bind_node_key && !c->tls_require_client_cert)
            return fail(p, "'--tls-bind-node-key' needs client certificates: add '--tls-ca' "
                           "(and '--tls-client-auth=require')");
        return 0;
    case CMD_WORKER:
    case CMD_NODES:
    case CMD_SUBMIT:
    case CMD_TASKS:
    case CMD_LOGS:
    case CMD_RESULTS:
    case CMD_CANCEL:
        if (!ca && (cert || key || (g & BIT(OPT_TLS_SERVER_NAME))))
            return fail(p,
                        "'%s' needs '--tls-ca', the CA that signs the master's certificate "
                        "(TLS to the master is on exactly when --tls-ca is given)",
                        cert  ? "--tls-cert"
                        : key ? "--tls-key"
                              : "--tls-server-name");
        if (cert != key)
            return fail(p, "'%s' needs '%s': a client certificate goes with its private key",
                        cert ? "--tls-cert" : "--tls-key", cert ? "--tls-key" : "--tls-cert");
        return 0;
    case CMD_CERT_INIT:
        if (!(g & BIT(OPT_DIR)))
            return fail(p, "'cert init' needs '--dir', where to create the CA and certificates");
        if (!(g & BIT(OPT_MASTER_HOST)))
            return fail(p, "'cert init' needs '--master-host', the names workers use to reach "
                           "the master (e.g. --master-host=master.example.com,10.0.0.5)");
        return 0;
    case CMD_CERT_ISSUE:
        if (!(g & BIT(OPT_DIR)))
            return fail(p, "'cert issue' needs '--dir', the directory made by 'cert init'");
        if (!(g & BIT(OPT_NAME)))
            return fail(p, "'cert issue' needs '--name', the new certificate's name");
        return 0;
    default:
        return 0;
    }
}

static int set_defaults(struct parse *p)
{
    struct config *c = p->c;
    memset(c, 0, sizeof(*c));
    c->listen_port = DEFAULT_PORT;
    c->master_port = DEFAULT_PORT;
    c->log_level = LOG_INFO;
    c->log_format = LOG_FORMAT_TEXT;
    c->max_runners = DEFAULT_MAX_RUNNERS;
    c->max_connections = DEFAULT_MAX_CONNECTIONS;
    c->auth_timeout_ms = 10 * 1000;
    c->heartbeat_interval_ms = 5 * 1000;
    c->fetch_interval_ms = 1000;
    c->cancel_grace_ms = 15 * 1000;
    c->shutdown_grace_ms = 30 * 1000;
    c->disconnect_grace_ms = 5 * 60 * 1000;
    c->spool_max_bytes = DEFAULT_SPOOL_BYTES;
    int rc = set_string(p, &c->listen_host, DEFAULT_LISTEN_HOST);
    if (rc == 0)
        rc = set_string(p, &c->master_host, DEFAULT_MASTER_HOST);
    return rc;
}

static int parse_all(struct parse *p, struct scan *s, int argc, char **argv,
                     char *(*getenv_fn)(const char *))
{
    struct config *c = p->c;
    int rc = set_defaults(p);
    if (rc != 0)
        return rc;

    bool has_command = argc > 1 && argv[1][0] != '-';
    /* "cert" takes a second word, the sub-command, before its options. */
    bool is_cert = has_command && strcmp(argv[1], "cert") == 0;
    bool has_sub = is_cert && argc > 2 && argv[2][0] != '-';
    scan_args(s, argc, argv, has_sub ? 3 : has_command ? 2 : 1);

    /* Help and version win over everything else on the line, errors included. */
    for (size_t i = 0; i < s->n_items; i++) {
        if (s->items[i].problem == P_NONE &&
            (s->items[i].id == OPT_HELP || s->items[i].id == OPT_VERSION)) {
            c->command = s->items[i].id == OPT_HELP ? CMD_HELP : CMD_VERSION;
            return 0;
        }
    }

    if (is_cert) {
        if (!has_sub)
            return fail(p, "'cert' needs a sub-command: init or issue");
        if (strcmp(argv[2], "init") == 0)
            c->command = CMD_CERT_INIT;
        else if (strcmp(argv[2], "issue") == 0)
            c->command = CMD_CERT_ISSUE;
        else
            return fail(p, "unknown sub-command 'cert %.*s' (cert init, cert issue)", QUOTE_MAX,
                        argv[2]);
    } else if (has_command) {
        bool found = false;
        for (int cmd = CMD_NODES; cmd <= CMD_CANCEL; cmd++) {
            if (strcmp(argv[1], command_names[cmd]) == 0) {
                c->command = (enum config_command)cmd;
                found = true;
            }
        }
        if (!found && (strcmp(argv[1], "master") == 0 || strcmp(argv[1], "worker") == 0))
            return fail(p, "unknown command '%s': start a daemon with --role=%s", argv[1], argv[1]);
        if (!found)
            return fail(p,
                        "unknown command '%.*s' (commands: nodes, submit, tasks, logs, "
                        "results, cancel, cert; daemons use --role)",
                        QUOTE_MAX, argv[1]);
    } else {
        rc = pick_role(p, s, getenv_fn);
        if (rc != 0)
            return rc;
    }

    rc = apply_items(p, s);
    if (rc == 0)
        rc = apply_positionals(p, s);
    if (rc == 0)
        rc = apply_env(p, getenv_fn);
    if (rc == 0)
        rc = check_conflicts(p);
    if (rc == 0)
        rc = check_tls(p);
    return rc;
}

int config_parse(struct config *c, int argc, char **argv, char *(*getenv_fn)(const char *name),
                 char *err, size_t errlen)
{
    struct parse p = {.c = c, .err = err, .errlen = errlen};
    if (err && errlen > 0)
        err[0] = '\0';

    size_t n = argc > 0 ? (size_t)argc : 1;
    struct scan s = {
        .items = calloc(n, sizeof(*s.items)),
        .positional = calloc(n, sizeof(*s.positional)),
    };
    int rc;
    if (!s.items || !s.positional) {
        memset(c, 0, sizeof(*c));
        rc = out_of_memory(&p);
    } else {
        rc = parse_all(&p, &s, argc, argv, getenv_fn);
        if (rc != 0)
            config_free(c);
    }
    free(s.items);
    free(s.positional);
    return rc;
}

void config_free(struct config *c)
{
    free(c->listen_host);
    free(c->master_host);
    free(c->data_dir);
    free(c->auth_key);
    free(c->auth_key_file);
    free(c->node_key);
    free(c->node_name);
    free_strings(c->nodes, c->n_nodes);
    free_strings(c->env, c->n_env);
    free(c->task_name);
    free_strings(c->argv_cmd, c->n_argv_cmd);
    free(c->status_filter);
    free(c->task_id);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->tls_ca);
    free(c->tls_server_name);
    free(c->cert_dir);
    free_strings(c->cert_hosts, c->n_cert_hosts);
    free(c->cert_name);
    memset(c, 0, sizeof(*c));
}

/* Writes text as lines of at most USAGE_WIDTH columns, each indented, so that the help reads
 * well on an 80-column terminal whatever the length of the table's sentences. */
static void print_wrapped(FILE *out, const char *text)
{
    enum { INDENT = 6, USAGE_WIDTH = 79 };
    int col = 0;
    while (*text) {
        size_t word = strcspn(text, " ");
        if (col > INDENT && col + 1 + (int)word > USAGE_WIDTH) {
            fputc('\n', out);
            col = 0;
        }
        if (col == 0)
            col = fprintf(out, "%*s", INDENT, "");
        else
            col += fprintf(out, " ");
        col += fprintf(out, "%.*s", (int)word, text);
        text += word;
        while (*text == ' ')
            text++;
    }
    fputc('\n', out);
}

void config_usage(FILE *out)
{
    fputs("Usage:\n"
          "  crawlab-node --role=master [OPTIONS]          run the master\n"
          "  crawlab-node --role=worker [OPTIONS]          run a worker\n"
          "  crawlab-node nodes [OPTIONS]                  list the nodes\n"
          "  crawlab-node submit [OPTIONS] -- COMMAND...   queue a task running COMMAND\n"
          "  crawlab-node tasks [OPTIONS]                  list the tasks\n"
          "  crawlab-node logs [OPTIONS] TASK_ID           print a task's log\n"
          "  crawlab-node results [OPTIONS] TASK_ID        print a task's results\n"
          "  crawlab-node cancel [OPTIONS] TASK_ID         cancel a task\n"
          "  crawlab-node cert init --dir=DIR --master-host=NAME[,NAME|IP...]\n"
          "                                                create a CA and certificates\n"
          "  crawlab-node cert issue --dir=DIR --name=NAME another certificate from the CA\n"
          "  crawlab-node --help | --version\n"
          "\n"
          "Durations are 500ms, 5s, 2m, 1h, 1h30m or 1.5s; a bare number is seconds.\n"
          "Sizes are bytes or binary multiples: 64K, 512M, 1G. Flags win over the\n"
          "environment; an empty environment variable counts as unset.\n"
          "TLS 1.3 is on for the master with --tls-cert, for the others with --tls-ca.\n"
          "\n"
          "Options:\n",
          out);
    for (int i = 0; i < OPT_COUNT; i++) {
        const struct option_def *o = &options[i];
        if (o->hidden)
            continue;
        fprintf(out, "  --%s%s%s\n", o->name, o->metavar ? "=" : "", o->metavar ? o->metavar : "");
        print_wrapped(out, o->help);
        if (o->def)
            fprintf(out, "      Default: %s.\n", o->def);
        if (o->env)
            fprintf(out, "      Environment: %s.\n", o->env);
        if (o->commands == EVERY) {
            fputs("      For: every command.\n", out);
            continue;
        }
        if (o->commands == ALL) {
            fputs("      For: every command but cert.\n", out);
            continue;
        }
        fputs("      For:", out);
        const char *sep = " ";
        for (int cmd = CMD_MASTER; cmd <= CMD_CERT_ISSUE; cmd++) {
            if (o->commands & M(cmd)) {
                fprintf(out, "%s%s", sep, command_names[cmd]);
                sep = ", ";
            }
        }
        fputs(".\n", out);
    }
}
