#include "master/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/certwatch.h"

/* Seconds: a store commit is an fdatasync or two; a dispatch waits for a worker's next fetch. */
static const double commit_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,   0.1,   0.25,   0.5,   1,    2.5};
static const double dispatch_bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1,
                                         5,     10,    30,   60,   300, 1800};

void metrics_init(struct metrics *m)
{
    memset(m, 0, sizeof(*m));
    m->commit_seconds.bounds = commit_bounds;
    m->commit_seconds.n_bounds = sizeof(commit_bounds) / sizeof(commit_bounds[0]);
    m->dispatch_seconds.bounds = dispatch_bounds;
    m->dispatch_seconds.n_bounds = sizeof(dispatch_bounds) / sizeof(dispatch_bounds[0]);
}

void metrics_observe(struct metrics_histogram *h, double value)
{
    size_t i = 0;
    while (i < h->n_bounds && value > h->bounds[i])
        i++;
    h->counts[i]++;
    h->sum += value;
    h->count++;
}

size_t metrics_label_value(char *buf, size_t cap, const char *value)
{
    size_t n = 0;
#define PUT(ch)                                                                                    \
    do {                                                                                           \
        if (n + 1 < cap)                                                                           \
            buf[n] = (ch);                                                                         \
        n++;                                                                                       \
    } while (0)
    PUT('"');
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"') {
            PUT('\\');
            PUT(*p);
        } else if (*p == '\n') {
            PUT('\\');
            PUT('n');
        } else {
            PUT(*p);
        }
    }
    PUT('"');
#undef PUT
    if (cap)
        buf[n < cap ? n : cap - 1] = '\0';
    return n;
}

/* ---- the text being built ---- */

struct text {
    char *buf;
    size_t len, cap;
    bool failed;
};

static void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_printf(struct text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if (t->buf && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 4096;
        while (cap <= t->len + (size_t)n)
            cap *= 2;
        char *buf = realloc(t->buf, cap);
        if (!buf) {
            t->failed = true;
            return;
        }
        t->buf = buf;
        t->cap = cap;
    }
}

static void family(struct text *t, const char *name, const char *type, const char *help)
{
    text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void scalar(struct text *t, const char *name, const char *type, const char *help,
                   uint64_t value)
{
    family(t, name, type, help);
    text_printf(t, "%s %llu\n", name, (unsigned long long)value);
}

/* One sample with one label. */
static void labelled(struct text *t, const char *name, const char *label, const char *value,
                     uint64_t v)
{
    char quoted[256];
    size_t n = metrics_label_value(quoted, sizeof(quoted), value);
    if (n >= sizeof(quoted)) {
        t->failed = true; /* no label of ours is that long */
        return;
    }
    text_printf(t, "%s{%s=%s} %llu\n", name, label, quoted, (unsigned long long)v);
}

static void histogram(struct text *t, const char *name, const char *help,
                      const struct metrics_histogram *h)
{
    family(t, name, "histogram", help);
    uint64_t cum = 0;
    for (size_t i = 0; i < h->n_bounds; i++) {
        cum += h->counts[i];
        text_printf(t, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
    }
    cum += h->counts[h->n_bounds];
    text_printf(t, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    text_printf(t, "%s_sum %.9g\n", name, h->sum);
    text_printf(t, "%s_count %llu\n", name, (unsigned long long)h->count);
}

int metrics_render(const struct metrics *m, const struct metrics_state *s, char **out, size_t *len)
{
    struct text t = {0};
    family(&t, "crawlab_nodes", "gauge", "Nodes known to the master, by status.");
    labelled(&t, "crawlab_nodes", "status", "online", s->nodes_online);
    labelled(&t, "crawlab_nodes", "status", "offline", s->nodes_offline);
    family(&t, "crawlab_tasks", "gauge", "Tasks in the store, by status.");
    for (int i = 0; i < TASK_STATUS_COUNT; i++)
        labelled(&t, "crawlab_tasks", "status", task_status_name((enum task_status)i), s->tasks[i]);
    scalar(&t, "crawlab_queue_depth", "gauge", "Tasks waiting for a node (status pending).",
           s->tasks[TASK_PENDING]);
    histogram(&t, "crawlab_dispatch_seconds",
              "Time from a task's creation to its assignment to a node, in seconds.",
              &m->dispatch_seconds);
    scalar(&t, "crawlab_tasks_pushed_total", "counter",
           "Tasks assigned when they became pending and pushed with their spec to the node, "
           "which starts them without FetchTask.",
           m->tasks_pushed);
    scalar(&t, "crawlab_fetches_waited_total", "counter",
           "FetchTask calls that came while the master held as many tasks of the node as it has "
           "runners, and waited for one of them to end.",
           m->fetches_waited);
    scalar(&t, "crawlab_log_lines_total", "counter", "Log lines stored (resent lines not counted).",
           m->log_lines);
    scalar(&t, "crawlab_log_bytes_total", "counter", "Bytes of the log lines stored.",
           m->log_bytes);
    scalar(&t, "crawlab_result_items_total", "counter",
           "Result items stored (resent items not counted).", m->result_items);
    scalar(&t, "crawlab_store_commits_total", "counter", "Group commits of the store.", m->commits);
    scalar(&t, "crawlab_store_commit_failures_total", "counter",
           "Group commits of the store that failed (their changes were rolled back).",
           m->commit_failures);
    histogram(&t, "crawlab_store_commit_seconds", "Time one group commit of the store took.",
              &m->commit_seconds);
    if (s->has_conns) {
        scalar(&t, "crawlab_connections_open", "gauge",
               "Connections to the master's port open now.", s->conns_open);
        scalar(&t, "crawlab_connections_accepted_total", "counter",
               "Connections to the master's port accepted.", s->conns_accepted);
        scalar(&t, "crawlab_connections_refused_total", "counter",
               "Connections closed at once because --max-connections were open.", s->conns_refused);
    }
    family(&t, "crawlab_events_total", "counter", "Events recorded, by kind.");
    for (int i = 0; i < EVENT_KIND_COUNT; i++)
        labelled(&t, "crawlab_events_total", "kind", event_kind_name((enum event_kind)i),
                 m->events[i]);
    scalar(&t, "crawlab_tls_handshakes_refused_total", "counter",
           "TLS handshakes that failed or that the master refused.", m->tls_refused);
    scalar(&t, "crawlab_auth_refused_total", "counter",
           "Calls refused for a missing or wrong key or a role that may not make them.",
           s->auth_refused);
    if (s->n_certs) {
        family(&t, "crawlab_tls_cert_expiry_timestamp_seconds", "gauge",
               "When the certificate the master presents (kind cert, --tls-cert) and the CA it "
               "trusts (kind ca, --tls-ca) stop being valid, in seconds since the epoch.");
        for (size_t i = 0; i < s->n_certs; i++)
            labelled(&t, "crawlab_tls_cert_expiry_timestamp_seconds", "kind", s->certs[i].kind,
                     s->certs[i].not_after_s > 0 ? (uint64_t)s->certs[i].not_after_s : 0);
    }
    if (t.failed) {
        free(t.buf);
        return -ENOMEM;
    }
    *out = t.buf;
    *len = t.len;
    return 0;
}
