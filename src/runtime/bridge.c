#include "runtime/bridge.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "runtime/log.h"

struct completion {
    struct bridge_tag *tag;
    bool ok;
    double queued_at; /* monotonic seconds */
};

struct bridge {
    struct ev_loop *loop;
    grpc_completion_queue *cq;
    ev_async wakeup;
    pthread_t pollers[2]; /* the poller, then the standby */
    size_t n_pollers;     /* started */
    clockid_t poller_cpu; /* the poller's CPU-time clock */
    atomic_ulong posted;  /* completions queued so far, for the standby */
    atomic_bool stopping; /* bridge_destroy began: the standby ends */

    pthread_mutex_t lock;
    /* Broadcast when the loop took completions (room for the pollers), when one was queued and
     * when a poller ended (both for bridge_destroy). */
    pthread_cond_t changed;
    struct completion ring[BRIDGE_QUEUE_MAX]; /* guarded by lock, like the three below */
    size_t head, len;
    size_t pollers_done;
};

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bridge_post(struct bridge *b, struct bridge_tag *tag, bool ok)
{
    pthread_mutex_lock(&b->lock);
    while (b->len == BRIDGE_QUEUE_MAX)
        pthread_cond_wait(&b->changed, &b->lock);
    b->ring[(b->head + b->len) % BRIDGE_QUEUE_MAX] = (struct completion){tag, ok, monotonic_s()};
    b->len++;
    pthread_cond_broadcast(&b->changed);
    pthread_mutex_unlock(&b->lock);
    atomic_fetch_add_explicit(&b->posted, 1, memory_order_relaxed);
    ev_async_send(b->loop, &b->wakeup);
}

size_t bridge_queued(struct bridge *b)
{
    pthread_mutex_lock(&b->lock);
    size_t n = b->len;
    pthread_mutex_unlock(&b->lock);
    return n;
}

/* Before a poller asks gRPC for more: while the oldest completion has waited longer than
 * BRIDGE_LAG_MAX_S, the loop is behind, and the poller waits until the loop took it. */
static void wait_for_loop(struct bridge *b)
{
    pthread_mutex_lock(&b->lock);
    while (b->len > 0 && monotonic_s() - b->ring[b->head].queued_at > BRIDGE_LAG_MAX_S)
        pthread_cond_wait(&b->changed, &b->lock);
    pthread_mutex_unlock(&b->lock);
}

/* Asks gRPC for one completion, waiting until deadline, and queues it. False at the shutdown. */
static bool poll_once(struct bridge *b, gpr_timespec deadline)
{
    wait_for_loop(b);
    grpc_event ev = grpc_completion_queue_next(b->cq, deadline, NULL);
    if (ev.type == GRPC_OP_COMPLETE)
        bridge_post(b, ev.tag, ev.success != 0);
    return ev.type != GRPC_QUEUE_SHUTDOWN;
}

static void poller_done(struct bridge *b)
{
    pthread_mutex_lock(&b->lock);
    b->pollers_done++;
    pthread_cond_broadcast(&b->changed);
    pthread_mutex_unlock(&b->lock);
}

static void *poll_queue(void *arg)
{
    struct bridge *b = arg;
    while (poll_once(b, gpr_inf_future(GPR_CLOCK_MONOTONIC)))
        ;
    poller_done(b);
    return NULL;
}

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) < 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The standby: every BRIDGE_STANDBY_TICK_S it looks at the poller, and when the poller spent at
 * least a quarter of the tick on the CPU (a starved machine may give it no more) without queueing a
 * single completion, it is held inside gRPC (reading a socket that never runs dry): then the
 * standby polls too, until a tick passes with nothing for it. Otherwise it only sleeps, so that the
 * ordinary path has one polling thread and no hand-over between two.
 */
static void *stand_by(void *arg)
{
    struct bridge *b = arg;
    const uint64_t tick_ns = (uint64_t)(BRIDGE_STANDBY_TICK_S * 1e9);
    const struct timespec tick = {0, (long)tick_ns};
    uint64_t cpu = clock_ns(b->poller_cpu);
    unsigned long posted = atomic_load_explicit(&b->posted, memory_order_relaxed);
    bool running = true;
    while (running && !atomic_load(&b->stopping)) {
        nanosleep(&tick, NULL);
        uint64_t cpu_now = clock_ns(b->poller_cpu);
        unsigned long posted_now = atomic_load_explicit(&b->posted, memory_order_relaxed);
        bool held = posted_now == posted && cpu_now > cpu && cpu_now - cpu >= tick_ns / 4;
        if (held)
            log_debug("the completion queue's poller is held inside gRPC; the standby polls too");
        while (held && running) {
            gpr_timespec until = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                              gpr_time_from_nanos((int64_t)tick_ns, GPR_TIMESPAN));
            unsigned long before = atomic_load_explicit(&b->posted, memory_order_relaxed);
            running = poll_once(b, until);
            held = atomic_load_explicit(&b->posted, memory_order_relaxed) != before;
        }
        cpu = clock_ns(b->poller_cpu);
        posted = atomic_load_explicit(&b->posted, memory_order_relaxed);
    }
    poller_done(b);
    return NULL;
}

/* Moves up to BRIDGE_BATCH queued completions into batch, oldest first, and makes room for the
 * pollers. Returns how many; *more tells whether some are left. */
static size_t take(struct bridge *b, struct completion *batch, bool *more)
{
    pthread_mutex_lock(&b->lock);
    size_t n = b->len < BRIDGE_BATCH ? b->len : BRIDGE_BATCH;
    for (size_t i = 0; i < n; i++)
        batch[i] = b->ring[(b->head + i) % BRIDGE_QUEUE_MAX];
    b->head = (b->head + n) % BRIDGE_QUEUE_MAX;
    b->len -= n;
    *more = b->len > 0;
    if (n)
        pthread_cond_broadcast(&b->changed);
    pthread_mutex_unlock(&b->lock);
    return n;
}

static void deliver(const struct completion *batch, size_t n)
{
    for (size_t i = 0; i < n; i++)
        batch[i].tag->done(batch[i].tag, batch[i].ok);
}

/* One batch per wake-up; what is left waits for the next loop iteration (see bridge.h). */
static void drain(struct ev_loop *loop, ev_async *w, int revents)
{
    struct bridge *b = w->data;
    struct completion batch[BRIDGE_BATCH];
    bool more;
    size_t n = take(b, batch, &more);
    if (more)
        ev_async_send(loop, w);
    deliver(batch, n);
}

int bridge_create(struct ev_loop *loop, struct bridge **out)
{
    struct bridge *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->loop = loop;
    b->cq = grpc_completion_queue_create_for_next(NULL);
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->changed, NULL);
    ev_async_init(&b->wakeup, drain);
    b->wakeup.data = b;
    ev_async_start(loop, &b->wakeup);
    /* The pollers do not keep the loop alive by themselves; active calls and timers do. */
    ev_unref(loop);
    int rc = pthread_create(&b->pollers[0], NULL, poll_queue, b);
    if (rc == 0) {
        b->n_pollers = 1;
        /* Named, so that top, perf and /proc/<pid>/task tell gRPC core's socket reading and
         * HTTP/2 parsing, done on these threads, from the loop's work. */
        pthread_setname_np(b->pollers[0], "cq-poller");
        rc = pthread_getcpuclockid(b->pollers[0], &b->poller_cpu);
    }
    if (rc == 0 && (rc = pthread_create(&b->pollers[1], NULL, stand_by, b)) == 0) {
        b->n_pollers = 2;
        pthread_setname_np(b->pollers[1], "cq-standby");
    }
    if (rc != 0) {
        bridge_destroy(b);
        return -rc;
    }
    *out = b;
    return 0;
}

struct ev_loop *bridge_loop(struct bridge *b)
{
    return b->loop;
}

grpc_completion_queue *bridge_cq(struct bridge *b)
{
    return b->cq;
}

/* Delivers until the queue is empty, with no pause for the loop: for the end only. */
static void deliver_all(struct bridge *b)
{
    struct completion batch[BRIDGE_BATCH];
    bool more = true;
    while (more)
        deliver(batch, take(b, batch, &more));
}

void bridge_destroy(struct bridge *b)
{
    if (!b)
        return;
    atomic_store(&b->stopping, true);
    grpc_completion_queue_shutdown(b->cq);
    /* A poller may be waiting for room: keep taking until every one has seen the shutdown. */
    pthread_mutex_lock(&b->lock);
    while (b->pollers_done < b->n_pollers) {
        if (b->len) {
            pthread_mutex_unlock(&b->lock);
            deliver_all(b);
            pthread_mutex_lock(&b->lock);
        } else {
            pthread_cond_wait(&b->changed, &b->lock);
        }
    }
    pthread_mutex_unlock(&b->lock);
    for (size_t i = 0; i < b->n_pollers; i++)
        pthread_join(b->pollers[i], NULL);
    deliver_all(b);
    ev_ref(b->loop);
    ev_async_stop(b->loop, &b->wakeup);
    grpc_completion_queue_destroy(b->cq);
    pthread_cond_destroy(&b->changed);
    pthread_mutex_destroy(&b->lock);
    free(b);
}
