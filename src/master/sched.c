#include "master/sched.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cron.h"
#include "master/clock.h"
#include "master/group.h"
#include "master/tasks.h"
#include "runtime/log.h"

/* After a store failure the schedules are read again this much later. */
#define SCHED_RETRY_S 5

struct sched {
    struct ev_loop *loop;
    struct store *store;
    struct tasks *tasks;
    struct group *group;
    ev_periodic timer;
    int64_t started_s; /* a fire time at or before this was missed: the master was not up */
    int64_t next_s;    /* the earliest next fire time found by the last evaluation; -1 = none */
    int64_t now_s;     /* the evaluation's time */
};

static int64_t sched_floor_s(int64_t ms)
{
    return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}

/* Whether the schedule's last task still occupies it (the overlap policy applies). */
static bool sched_busy(struct sched *sc, const struct schedule_row *r)
{
    if (!r->last_task[0])
        return false;
    struct task_row t;
    if (store_task_get(sc->store, r->last_task, &t) < 0)
        return false;
    bool busy = !task_status_terminal(t.status);
    store_task_row_free(&t);
    return busy;
}

/* The spider version a fire of r runs in (the latest of its name, unless r names one) as
 * NAME@VERSION and its row; true with spider "" when r has none, false when it is gone. */
static bool sched_spider(struct sched *sc, const struct schedule_row *r,
                         char spider[LIMIT_SPIDER_NAME_MAX + 12], struct spider_row *sr)
{
    char name[LIMIT_SPIDER_NAME_MAX + 1];
    uint32_t version;
    if (!*r->spider)
        return true;
    if (!spider_ref_parse(r->spider, name, &version) ||
        store_spider_get(sc->store, name, version, sr) < 0)
        return false;
    snprintf(spider, LIMIT_SPIDER_NAME_MAX + 12, "%s@%u", sr->name, sr->version);
    return true;
}

/* Handles the fire of r at fire_s. */
static void sched_fire(struct sched *sc, const struct schedule_row *r, int64_t fire_s)
{
    const char *why = NULL;
    if (fire_s <= sc->started_s && r->missed == CRON_MISSED_SKIP)
        why = "missed while the master was down (--missed=skip)";
    else if (r->overlap != CRON_OVERLAP_ALLOW && sched_busy(sc, r)) {
        if (r->overlap == CRON_OVERLAP_SKIP) {
            why = "the previous task has not ended (--overlap=skip)";
        } else {
            enum task_status after;
            int rc = tasks_cancel(sc->tasks, r->last_task, false, &after);
            if (rc < 0)
                log_warn("schedule %" PRId64 ": cancelling task %s failed: %s", r->id, r->last_task,
                         strerror(-rc));
        }
    }
    char spider[LIMIT_SPIDER_NAME_MAX + 12] = "";
    struct spider_row sr = {.sha256 = ""};
    if (!why && !sched_spider(sc, r, spider, &sr))
        why = "its spider is not there any more";
    if (why) {
        int rc = store_schedule_skip(sc->store, r->id, fire_s);
        if (rc < 0)
            log_error("schedule %" PRId64 ": recording the skipped fire at %" PRId64 " failed: %s",
                      r->id, fire_s, strerror(-rc));
        else
            log_info("schedule %" PRId64 ": no task for the fire at %" PRId64 ": %s", r->id, fire_s,
                     why);
        return;
    }
    struct task_new tn = {
        .name = r->name,
        .cmd = r->cmd,
        .env_json = r->env_json,
        .priority = r->priority,
        .timeout_ms = r->timeout_ms,
        .node_key = r->node_key,
        .labels = r->labels,
        .retries = r->retries,
        .retry_delay_ms = r->retry_delay_ms,
        .spider = spider,
        .spider_sha256 = sr.sha256,
    };
    char id[TASK_ID_LEN + 1];
    int rc = tasks_fire(sc->tasks, r->id, fire_s, &tn, id);
    if (rc < 0)
        log_error("schedule %" PRId64 ": making the task of the fire at %" PRId64 " failed: %s",
                  r->id, fire_s, strerror(-rc));
}

static int sched_visit(void *ctx, const struct schedule_row *r)
{
    struct sched *sc = ctx;
    if (r->paused)
        return 0;
    struct cron_expr e;
    if (cron_parse(r->expr, r->tz_offset, &e, NULL) < 0) {
        log_error("schedule %" PRId64 ": stored expression '%s' does not parse; it never fires",
                  r->id, r->expr);
        return 0;
    }
    int64_t since = sched_floor_s(r->created_ms);
    if (r->last_fire_s > since)
        since = r->last_fire_s;
    int64_t due = cron_last_between(&e, since, sc->now_s);
    if (due > 0)
        sched_fire(sc, r, due);
    int64_t next = cron_next(&e, sc->now_s);
    if (next > 0 && (sc->next_s < 0 || next < sc->next_s))
        sc->next_s = next;
    return 0;
}

static void sched_run(struct sched *sc)
{
    sc->now_s = sched_floor_s(clock_now_ms(sc->loop));
    sc->next_s = -1;
    /* The fires join the open group; it is committed before the loop waits again. */
    int rc = group_join(sc->group);
    if (rc == 0)
        rc = store_schedule_list(sc->store, sched_visit, sc);
    if (rc < 0) {
        log_error("scheduler: reading the schedules failed: %s; trying again in %d s",
                  strerror(-rc), SCHED_RETRY_S);
        sc->next_s = sc->now_s + SCHED_RETRY_S;
    }
    group_want_commit(sc->group);
    ev_periodic_stop(sc->loop, &sc->timer);
    if (sc->next_s > 0) {
        ev_periodic_set(&sc->timer, (ev_tstamp)sc->next_s, 0, NULL);
        ev_periodic_start(sc->loop, &sc->timer);
    }
}

static void sched_on_timer(struct ev_loop *loop, ev_periodic *w, int revents)
{
    (void)loop;
    (void)revents;
    sched_run(w->data);
}

int sched_create(struct ev_loop *loop, struct store *store, struct tasks *tasks,
                 struct group *group, struct sched **out)
{
    struct sched *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return -ENOMEM;
    sc->loop = loop;
    sc->store = store;
    sc->tasks = tasks;
    sc->group = group;
    sc->started_s = sched_floor_s(clock_now_ms(loop));
    ev_periodic_init(&sc->timer, sched_on_timer, 0, 0, NULL);
    sc->timer.data = sc;
    sched_run(sc);
    *out = sc;
    return 0;
}

void sched_destroy(struct sched *sc)
{
    if (!sc)
        return;
    ev_periodic_stop(sc->loop, &sc->timer);
    free(sc);
}

void sched_changed(struct sched *sc)
{
    sched_run(sc);
}
