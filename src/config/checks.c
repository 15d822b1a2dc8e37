/*
 * The rules between options, checked once every option and variable is set: options that
 * exclude each other, TLS options that only work together, and the options each cert command
 * requires. Also settles --tls-client-auth's default, which depends on --tls-ca, and the master's
 * default address, which depends on TLS.
 */
#include "config/internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/cron.h"
#include "core/limits.h"
#include "core/spider.h"
#include "core/tz.h"

static int check_conflicts(struct config_parser *p)
{
    if ((p->given & BIT(OPT_AUTH_KEY)) && (p->given & BIT(OPT_AUTH_KEY_FILE)))
        return config_fail(p, "'--auth-key' and '--auth-key-file' cannot be used together");
    if ((p->given & BIT(OPT_ADMIN_KEY)) && (p->given & BIT(OPT_ADMIN_KEY_FILE)))
        return config_fail(p, "'--admin-key' and '--admin-key-file' cannot be used together");
    if ((p->given & BIT(OPT_INSECURE_NO_AUTH)) &&
        (p->given & (BIT(OPT_AUTH_KEY) | BIT(OPT_AUTH_KEY_FILE) | BIT(OPT_ADMIN_KEY) |
                     BIT(OPT_ADMIN_KEY_FILE))))
        return config_fail(p, "'--insecure-no-auth' cannot be combined with an auth key");
    if ((p->given & BIT(OPT_TLS_BIND_NODE_KEY)) && (p->given & BIT(OPT_NO_TLS_BIND_NODE_KEY)))
        return config_fail(
            p, "'--tls-bind-node-key' and '--no-tls-bind-node-key' cannot be used together");
    if ((p->given & BIT(OPT_NODE)) && (p->given & BIT(OPT_ALL_NODES)))
        return config_fail(p, "'--node' and '--all-nodes' cannot be used together");
    if ((p->given & BIT(OPT_NODE)) && (p->given & BIT(OPT_LABEL)))
        return config_fail(p, "'--label' and '--node' cannot be used together: '--label' picks "
                              "among the nodes that have it");
    if (p->c->n_labels > LIMIT_LABELS_MAX)
        return config_fail(p, "--label: at most %d labels", LIMIT_LABELS_MAX);
    return 0;
}

/* TLS options that make sense only together, and the required options of the cert commands. */
static int check_tls(struct config_parser *p)
{
    struct config *c = p->c;
    option_set g = p->given;
    bool cert = g & BIT(OPT_TLS_CERT), key = g & BIT(OPT_TLS_KEY), ca = g & BIT(OPT_TLS_CA);

    switch (c->command) {
    case CMD_MASTER:
        if (key && !cert)
            return config_fail(p, "'--tls-key' needs '--tls-cert', the certificate it belongs to");
        if (cert && !key)
            return config_fail(p, "'--tls-cert' needs '--tls-key', the certificate's private key");
        if (!cert && (ca || (g & BIT(OPT_TLS_CLIENT_AUTH))))
            return config_fail(p, "'%s' needs TLS on the master: add '--tls-cert' and '--tls-key'",
                               ca ? "--tls-ca" : "--tls-client-auth");
        if (!(g & BIT(OPT_TLS_CLIENT_AUTH)))
            c->tls_require_client_cert = ca;
        else if (c->tls_require_client_cert && !ca)
            return config_fail(p, "'--tls-client-auth=require' needs '--tls-ca', the CA that signs "
                                  "the workers' certificates");
        if (c->tls_bind_node_key && !c->tls_require_client_cert)
            return config_fail(p, "'--tls-bind-node-key' needs client certificates: add '--tls-ca' "
                                  "(and '--tls-client-auth=require')");
        /* Every connection shows a certificate: each node key is bound to one by default. */
        if (c->tls_require_client_cert && !(g & BIT(OPT_NO_TLS_BIND_NODE_KEY)))
            c->tls_bind_node_key = true;
        return 0;
    case CMD_WORKER:
    case CMD_NODES:
    case CMD_SUBMIT:
    case CMD_TASKS:
    case CMD_LOGS:
    case CMD_RESULTS:
    case CMD_CANCEL:
    case CMD_SCHEDULE:
    case CMD_NODE:
    case CMD_METRICS:
    case CMD_EVENTS:
    case CMD_TASKS_PURGE:
    case CMD_TASK_RESTART:
    case CMD_SPIDER:
        if (!ca && (cert || key || (g & BIT(OPT_TLS_SERVER_NAME))))
            return config_fail(p,
                               "'%s' needs '--tls-ca', the CA that signs the master's certificate "
                               "(TLS to the master is on exactly when --tls-ca is given)",
                               cert  ? "--tls-cert"
                               : key ? "--tls-key"
                                     : "--tls-server-name");
        if (cert != key)
            return config_fail(p, "'%s' needs '%s': a client certificate goes with its private key",
                               cert ? "--tls-cert" : "--tls-key",
                               cert ? "--tls-key" : "--tls-cert");
        return 0;
    case CMD_CERT_INIT:
        if (!(g & BIT(OPT_DIR)))
            return config_fail(
                p, "'cert init' needs '--dir', where to create the CA and certificates");
        if (!(g & BIT(OPT_MASTER_HOST)))
            return config_fail(p,
                               "'cert init' needs '--master-host', the names workers use to reach "
                               "the master (e.g. --master-host=master.example.com,10.0.0.5)");
        return 0;
    case CMD_CERT_ISSUE:
        if (!(g & BIT(OPT_DIR)))
            return config_fail(p, "'cert issue' needs '--dir', the directory made by 'cert init'");
        if (!(g & BIT(OPT_NAME)))
            return config_fail(p, "'cert issue' needs '--name', the new certificate's name");
        return 0;
    default:
        return 0;
    }
}

/* A master whose address nobody named listens on every interface only with TLS: without it the
 * auth key would cross the network in clear, so it stays on loopback. */
static int settle_listen(struct config_parser *p)
{
    struct config *c = p->c;
    if (c->command != CMD_MASTER || p->listen_named || c->tls_cert)
        return 0;
    return config_set_string(p, &c->listen_host, "127.0.0.1");
}

/* --tz names a zone: it must be readable here, unless this machine has no zoneinfo directory at
 * all (a distroless image): then the master, which reads its own, decides. */
static int check_zone(struct config_parser *p, const char *name)
{
    struct tz_zone *z = NULL;
    char why[512];
    int rc = config_zone_load(p->c->zoneinfo_dir, name, &z, why, sizeof(why));
    tz_free(z);
    if (rc == 0 || (rc == -ENOENT && access(p->c->zoneinfo_dir, F_OK) != 0))
        return 0;
    return config_fail(p, "--tz: %s", why);
}

/* schedule add: the expression parses (one line naming the field and position when it does not),
 * one node at most; the options of add only with add. */
static int check_schedule(struct config_parser *p)
{
    struct config *c = p->c;
    if (c->command != CMD_SCHEDULE)
        return 0;
    bool add = strcmp(c->sched_action, "add") == 0;
    option_set add_only = BIT(OPT_NODE) | BIT(OPT_PRIORITY) | BIT(OPT_TIMEOUT) | BIT(OPT_ENV) |
                          BIT(OPT_NAME) | BIT(OPT_TZ) | BIT(OPT_OVERLAP) | BIT(OPT_MISSED) |
                          BIT(OPT_LABEL) | BIT(OPT_RETRIES) | BIT(OPT_RETRY_DELAY) |
                          BIT(OPT_SPIDER) | BIT(OPT_ALL_NODES);
    if (!add && (p->given & add_only))
        return config_fail(p,
                           "'schedule %s' takes none of the task options (those are for "
                           "'schedule add')",
                           c->sched_action);
    if (!add)
        return 0;
    if (c->n_nodes > 1)
        return config_fail(p, "'schedule add' takes one '--node' at most");
    int32_t offset = 0;
    struct cron_expr e;
    struct cron_error err;
    if (cron_parse(c->sched_expr, 0, &e, &err) < 0) {
        char line[200];
        return config_fail(p, "%s", cron_error_text(&err, line, sizeof(line)));
    }
    if (!c->sched_tz || cron_parse_offset(c->sched_tz, &offset) == 0)
        return 0;
    return check_zone(p, c->sched_tz);
}

/* spider push: a DIR (or, in tests, --test-archive instead) and --name; --name and the test
 * options belong to push only. */
static int check_spider(struct config_parser *p)
{
    const struct config *c = p->c;
    if (c->command != CMD_SPIDER)
        return 0;
    bool push = strcmp(c->spider_action, "push") == 0;
    option_set push_only = BIT(OPT_NAME) | BIT(OPT_TEST_ARCHIVE) | BIT(OPT_TEST_SHA256);
    if (!push && (p->given & push_only))
        return config_fail(p,
                           "'spider %s' takes none of --name, --test-archive, --test-sha256 "
                           "(those are for 'spider push')",
                           c->spider_action);
    if (!push)
        return 0;
    if (!c->spider_dir == !c->spider_archive)
        return config_fail(p, c->spider_dir ? "'spider push' takes DIR or --test-archive, not both"
                                            : "'spider push' needs the spider's DIR, e.g. "
                                              "crawlab-node spider push ./quotes --name=quotes");
    if (!(p->given & BIT(OPT_NAME)))
        return config_fail(p, "'spider push' needs '--name', the spider's name (" RULE_SPIDER_NAME
                              ")");
    return 0;
}

/* tasks purge names what it purges: there is no default. */
static int check_purge(struct config_parser *p)
{
    if (p->c->command == CMD_TASKS_PURGE && !(p->given & BIT(OPT_BEFORE)))
        return config_fail(p, "'tasks purge' needs '--before', a date (2026-01-31) or a duration "
                              "before now (30d): the tasks that ended before it are purged");
    return 0;
}

int config_check(struct config_parser *p)
{
    int rc = check_conflicts(p);
    if (rc == 0)
        rc = check_schedule(p);
    if (rc == 0)
        rc = check_purge(p);
    if (rc == 0)
        rc = check_spider(p);
    if (rc == 0)
        rc = check_tls(p);
    return rc != 0 ? rc : settle_listen(p);
}
