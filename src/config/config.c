/*
 * config_parse() runs the passes in their order: defaults, scan, command, options, positional
 * words, environment, cross-checks. Also the error message and the owned strings every pass
 * shares.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/internal.h"

/* The message quotes what was given, which may hold anything: it is kept to one printable line,
 * every control character shown as '?'. */
int config_fail(struct config_parser *p, const char *fmt, ...)
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

int config_nomem(struct config_parser *p)
{
    if (p->err && p->errlen > 0)
        snprintf(p->err, p->errlen, "out of memory");
    return -ENOMEM;
}

int config_set_string(struct config_parser *p, char **dst, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return config_nomem(p);
    free(*dst);
    *dst = copy;
    return 0;
}

int config_push_string(struct config_parser *p, char ***arr, size_t *n, const char *value)
{
    char **grown = realloc(*arr, (*n + 2) * sizeof(*grown));
    if (!grown)
        return config_nomem(p);
    *arr = grown;
    grown[*n] = strdup(value);
    if (!grown[*n]) {
        grown[*n] = NULL;
        return config_nomem(p);
    }
    (*n)++;
    grown[*n] = NULL;
    return 0;
}

void config_free_strings(char **arr, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(arr[i]);
    free(arr);
}

const char *config_getenv(config_getenv_fn *getenv_fn, const char *name)
{
    if (!getenv_fn)
        return NULL;
    const char *v = getenv_fn(name);
    /* Container tooling often sets a variable to "" to mean "not set". */
    return v && *v ? v : NULL;
}

static int parse_all(struct config_parser *p, struct config_scan *s, int argc, char **argv,
                     config_getenv_fn *getenv_fn)
{
    int rc = config_options_defaults(p);
    if (rc != 0)
        return rc;
    config_scan_args(s, argc, argv);
    /* Help and version win over everything else on the line, errors included. */
    if (config_scan_help(p, s))
        return 0;
    rc = config_scan_command(p, s, getenv_fn);
    if (rc == 0)
        rc = config_options_apply(p, s);
    if (rc == 0)
        rc = config_scan_positionals(p, s);
    if (rc == 0)
        rc = config_options_apply_env(p, getenv_fn);
    if (rc == 0)
        rc = config_set_string(p, &p->c->zoneinfo_dir, config_zone_dir(getenv_fn));
    if (rc == 0)
        rc = config_check(p);
    return rc;
}

int config_parse(struct config *c, int argc, char **argv, char *(*getenv_fn)(const char *name),
                 char *err, size_t errlen)
{
    struct config_parser p = {.c = c, .err = err, .errlen = errlen};
    if (err && errlen > 0)
        err[0] = '\0';

    size_t n = argc > 0 ? (size_t)argc : 1;
    struct config_scan s = {
        .items = calloc(n, sizeof(*s.items)),
        .positional = calloc(n, sizeof(*s.positional)),
    };
    int rc;
    if (!s.items || !s.positional) {
        memset(c, 0, sizeof(*c));
        rc = config_nomem(&p);
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
    free(c->metrics_host);
    for (size_t i = 0; i < c->n_masters; i++)
        free(c->masters[i].host);
    free(c->data_dir);
    free(c->store);
    free(c->auth_key);
    free(c->auth_key_file);
    free(c->admin_key);
    free(c->admin_key_file);
    free(c->node_key);
    free(c->node_name);
    config_free_strings(c->nodes, c->n_nodes);
    config_free_strings(c->env, c->n_env);
    config_free_strings(c->on_event, c->n_on_event);
    free(c->task_name);
    config_free_strings(c->labels, c->n_labels);
    free(c->node_action);
    free(c->node_target);
    config_free_strings(c->argv_cmd, c->n_argv_cmd);
    free(c->status_filter);
    free(c->task_id);
    free(c->sched_action);
    free(c->spider_action);
    free(c->spider_dir);
    free(c->spider_ref);
    free(c->spider_archive);
    free(c->spider_sha256);
    free(c->sched_expr);
    free(c->sched_tz);
    free(c->zoneinfo_dir);
    free(c->sched_overlap);
    free(c->sched_missed);
    free(c->before_id);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->tls_ca);
    free(c->tls_server_name);
    free(c->cert_dir);
    config_free_strings(c->cert_hosts, c->n_cert_hosts);
    free(c->cert_name);
    memset(c, 0, sizeof(*c));
}
