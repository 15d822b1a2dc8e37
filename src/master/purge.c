#include "master/purge.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>

#include "master/clock.h"
#include "master/group.h"
#include "store/store.h"
#include "runtime/log.h"

#define CHECK_MIN_MS 100
#define CHECK_MAX_MS (60 * 1000)

struct purge {
    struct ev_loop *loop;
    struct store *store;
    struct group *group;
    uint64_t retention_ms;
    uint64_t check_ms;    /* between two checks while there is nothing to do */
    int64_t requested_ms; /* purge_request's time; 0 once done */
    ev_timer timer;
    size_t round_purged; /* tasks purged since the work was last found done, for the log */
    size_t round_events; /* the same for events */
};

/* The time before which ended tasks go now: the later of retention's and the request's. */
static int64_t purge_cutoff(const struct purge *p)
{
    int64_t cutoff = p->requested_ms;
    if (p->retention_ms) {
        int64_t by_age = clock_now_ms(p->loop) - (int64_t)p->retention_ms;
        if (by_age > cutoff)
            cutoff = by_age;
    }
    return cutoff;
}

static void purge_schedule(struct purge *p, uint64_t after_ms)
{
    ev_timer_stop(p->loop, &p->timer);
    ev_timer_set(&p->timer, (double)after_ms / 1000.0, 0.0);
    ev_timer_start(p->loop, &p->timer);
}

/*
 * One tick: the logs of tasks whose deletion is committed are handed to the log engine's thread,
 * then one batch of rows is deleted in the open group. The tick asks for no commit of its own:
 * the batch shares the commit of whatever else the loop is doing (a dispatch, a report) or, when
 * nothing else commits, the group's commit at its maximum age (50 ms), so a purge adds at most
 * one commit every 50 ms. Ticks go on while rows remain or logs wait for removal.
 */
static void purge_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct purge *p = w->data;
    size_t logs_left = 0;
    int rc = store_purge_logs(p->store, PURGE_LOGS_PER_TICK, &logs_left);
    int64_t cutoff = rc == 0 ? purge_cutoff(p) : 0;
    size_t purged = 0;
    bool more = false;
    if (rc == 0 && cutoff > 0 && (rc = group_join(p->group)) == 0)
        rc = store_task_purge(p->store, cutoff, PURGE_BATCH_ROWS, &purged, &more);
    /* Events go by retention only (PurgeTasks is about tasks), in the same tick and group. */
    size_t events = 0;
    bool events_more = false;
    if (rc == 0 && p->retention_ms && (rc = group_join(p->group)) == 0)
        rc = store_event_purge(p->store, clock_now_ms(p->loop) - (int64_t)p->retention_ms,
                               PURGE_BATCH_ROWS, &events, &events_more);
    more = more || events_more;
    if (rc < 0) {
        log_warn("retention: purging ended tasks failed (%d); trying again later", rc);
        purge_schedule(p, p->check_ms ? p->check_ms : CHECK_MAX_MS);
        return;
    }
    p->round_purged += purged;
    p->round_events += events;
    if (more || logs_left || purged || events) {
        purge_schedule(p, PURGE_TICK_MS);
        return;
    }
    if (p->round_purged)
        log_info("retention: purged %zu ended tasks with their logs and results", p->round_purged);
    if (p->round_events)
        log_info("retention: purged %zu events", p->round_events);
    p->round_purged = p->round_events = 0;
    if (p->requested_ms && p->requested_ms <= cutoff)
        p->requested_ms = 0;
    if (p->retention_ms)
        purge_schedule(p, p->check_ms);
}

int purge_create(struct ev_loop *loop, struct store *store, struct group *group,
                 const struct purge_opts *opts, struct purge **out)
{
    struct purge *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->loop = loop;
    p->store = store;
    p->group = group;
    p->retention_ms = opts->retention_ms;
    if (p->retention_ms) {
        uint64_t check = p->retention_ms / 10;
        p->check_ms = check < CHECK_MIN_MS   ? CHECK_MIN_MS
                      : check > CHECK_MAX_MS ? CHECK_MAX_MS
                                             : check;
    }
    ev_init(&p->timer, purge_on_timer);
    p->timer.data = p;
    /* A first look soon after start: a master that was down may have a backlog. */
    if (p->retention_ms)
        purge_schedule(p, CHECK_MIN_MS);
    *out = p;
    return 0;
}

void purge_destroy(struct purge *p)
{
    if (!p)
        return;
    ev_timer_stop(p->loop, &p->timer);
    free(p);
}

void purge_request(struct purge *p, int64_t before_ms)
{
    if (before_ms <= p->requested_ms)
        return;
    p->requested_ms = before_ms;
    if (!ev_is_active(&p->timer) || ev_timer_remaining(p->loop, &p->timer) > 0.001)
        purge_schedule(p, 0);
}
