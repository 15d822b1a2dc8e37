/*
 * The master's metrics: counters and histograms the services add to as they work (each is handed
 * a pointer to the one struct metrics, owned by the master), and the rendering of those plus a
 * snapshot of gauges read at scrape time into the Prometheus text exposition format (0.0.4).
 * Adding is loop thread only and never fails; rendering is pure (no I/O, any thread) and returns
 * 0 or -ENOMEM.
 */
#ifndef CRAWLAB_METRICS_H
#define CRAWLAB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/event.h"
#include "core/task.h"

struct certwatch_cert;

#define METRICS_BUCKETS_MAX 16

/* A histogram over fixed upper bounds (seconds, ascending); a value above the last bound counts
 * only in +Inf. counts[i] is per bucket, not cumulative: rendering accumulates. */
struct metrics_histogram {
    const double *bounds;
    size_t n_bounds;
    uint64_t counts[METRICS_BUCKETS_MAX + 1]; /* the last one is +Inf */
    double sum;
    uint64_t count;
};

struct metrics {
    uint64_t log_lines, log_bytes; /* log lines stored (dedupe applied) and their bytes */
    uint64_t result_items;         /* result items stored */
    uint64_t tasks_pushed;         /* tasks pushed with their spec to the node assigned them */
    uint64_t fetches_waited;       /* FetchTask calls that waited for a runner of their node */
    uint64_t commits, commit_failures;
    uint64_t tls_refused;                      /* TLS handshakes that failed or were refused */
    struct metrics_histogram commit_seconds;   /* one store group commit */
    struct metrics_histogram dispatch_seconds; /* task creation to its assignment */
    uint64_t events[EVENT_KIND_COUNT];         /* events recorded, by kind */
};

/* What is read at scrape time from the services (gauges) and from the listener (its own
 * counters) and the RPC server. has_conns is false when the listener is gone or does not count. */
struct metrics_state {
    uint64_t nodes_online, nodes_offline;
    uint64_t tasks[TASK_STATUS_COUNT];
    uint64_t conns_open, conns_accepted, conns_refused;
    uint64_t auth_refused; /* calls the server refused for their key or role */
    int has_conns;
    const struct certwatch_cert *certs; /* the master's --tls-cert and --tls-ca, n_certs of them */
    size_t n_certs;
};

/* Zeroes m and sets the histograms' bounds. */
void metrics_init(struct metrics *m);
/* Counts value (seconds) into h. */
void metrics_observe(struct metrics_histogram *h, double value);

/* Renders m and s as exposition text: *out is NUL-terminated, *len its length; free() it. */
int metrics_render(const struct metrics *m, const struct metrics_state *s, char **out, size_t *len);

/* Appends value to buf as a label value, escaped (backslash, double quote, newline) and quoted:
 * for tests and the renderer. Returns the bytes written (without the NUL) or, if cap is too small,
 * the bytes it would need, as snprintf does. */
size_t metrics_label_value(char *buf, size_t cap, const char *value);

#endif
