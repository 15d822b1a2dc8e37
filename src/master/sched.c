#include "master/sched.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/cron.h"
#include "core/tz.h"
#include "master/clock.h"
#include "master/group.h"
#include "master/tasks.h"
#include "runtime/hmap.h"
#include "runtime/log.h"

/* After a store failure the schedules are read again this much later. */
#define SCHED_RETRY_S 5

/* A zone read once and kept for the master's life, shared by the schedules that name it. */
struct sched_zone {
    struct hmap_entry link; /* keyed by name */
    char name[TZ_NAME_MAX + 1];
    struct tz_zone *zone;
};

struct sched {
    struct ev_loop *loop;
    char *zoneinfo_dir;
    struct hmap zones; /* struct sched_zone */
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

int sched_zone(struct sched *sc, const char *name, const struct tz_zone **out, char *why,
               size_t why_len)
{
    struct hmap_entry *e = hmap_get(&sc->zones, name);
    if (e) {
        *out = hmap_item(e, struct sched_zone, link)->zone;
        return 0;
    }
    struct sched_zone *z = calloc(1, sizeof(*z));
    if (!z) {
        snprintf(why, why_len, "out of memory");
        return -ENOMEM;
    }
    int rc = config_zone_load(sc->zoneinfo_dir, name, &z->zone, why, why_len);
    if (rc == 0) {
        snprintf(z->name, sizeof(z->name), "%s", name);
        z->link.key = z->name;
        rc = hmap_put(&sc->zones, &z->link);
        if (rc < 0)
            snprintf(why, why_len, "out of memory");
    }
    if (rc < 0) {
        tz_free(z->zone);
        free(z);
        return rc;
    }
    log_info("scheduler: zone %s read from %s", name, sc->zoneinfo_dir);
    *out = z->zone;
    return 0;
}

/* The schedule's expression with its zone. -EINVAL: the stored expression does not parse; else
 * what sched_zone says. */
static int sched_expr(struct sched *sc, const struct schedule_row *r, struct cron_expr *e,
                      char *why, size_t why_len)
{
    if (cron_parse(r->expr, r->tz_offset, e, NULL) < 0) {
        snprintf(why, why_len, "stored expression '%s' does not parse", r->expr);
        return -EINVAL;
    }
    return r->tz_name[0] ? sched_zone(sc, r->tz_name, &e->zone, why, why_len) : 0;
}

int64_t sched_next_fire(struct sched *sc, const struct schedule_row *r, int64_t now_s,
                        int32_t *offset)
{
    struct cron_expr e;
    char why[512];
    *offset = r->tz_offset;
    if (r->paused || sched_expr(sc, r, &e, why, sizeof(why)) < 0)
        return 0;
    int64_t next = cron_next(&e, now_s);
    if (next <= 0)
        return 0;
    if (e.zone)
        *offset = tz_lookup(e.zone, next, NULL);
    return next;
}

struct sched_busy {
    struct sched *sc;
    const struct schedule_row *r;
    bool busy, cancel;
};

static int sched_busy_task(void *ctx, const char *task_id)
{
    struct sched_busy *b = ctx;
    struct task_row t;
    if (store_task_get(b->sc->store, task_id, &t) < 0)
        return 0;
    bool busy = !task_status_terminal(t.status);
    store_task_row_free(&t);
    b->busy |= busy;
    if (busy && b->cancel) {
        enum task_status after;
        int rc = tasks_cancel(b->sc->tasks, task_id, false, &after);
        if (rc < 0)
            log_warn("schedule %" PRId64 ": cancelling task %s failed: %s", b->r->id, task_id,
                     strerror(-rc));
    }
    return 0;
}

/* Whether a task of the schedule's last fire that made tasks still occupies it (the overlap
 * policy applies to the fire as a whole: for an all-nodes schedule, any of its tasks); with
 * cancel, those tasks are cancelled (tasks_cancel). */
static bool sched_busy(struct sched *sc, const struct schedule_row *r, bool cancel)
{
    struct sched_busy b = {.sc = sc, .r = r, .cancel = cancel};
    if (store_schedule_last_tasks(sc->store, r->id, sched_busy_task, &b) < 0)
        return false;
    return b.busy;
}

static void sched_skip(struct sched *sc, const struct schedule_row *r, int64_t fire_s,
                       const char *why)
{
    int rc = store_schedule_skip(sc->store, r->id, fire_s);
    if (rc < 0)
        log_error("schedule %" PRId64 ": recording the skipped fire at %" PRId64 " failed: %s",
                  r->id, fire_s, strerror(-rc));
    else
        log_info("schedule %" PRId64 ": no task for the fire at %" PRId64 ": %s", r->id, fire_s,
                 why);
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
    if (fire_s <= sc->started_s && r->missed == CRON_MISSED_SKIP) {
        sched_skip(sc, r, fire_s, "missed while the master was down (--missed=skip)");
        return;
    }
    bool busy = r->overlap != CRON_OVERLAP_ALLOW &&
                sched_busy(sc, r, r->overlap == CRON_OVERLAP_CANCEL_PREVIOUS);
    if (busy && r->overlap == CRON_OVERLAP_SKIP) {
        sched_skip(sc, r, fire_s, "the previous task has not ended (--overlap=skip)");
        return;
    }
    char spider[LIMIT_SPIDER_NAME_MAX + 12] = "";
    struct spider_row sr = {.sha256 = ""};
    if (!sched_spider(sc, r, spider, &sr)) {
        sched_skip(sc, r, fire_s, "its spider is not there any more");
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
    int rc = tasks_fire(sc->tasks, r->id, fire_s, &tn, r->all_nodes);
    if (rc == -ENODEV)
        sched_skip(sc, r, fire_s, "no node is online and enabled (--all-nodes)");
    else if (rc < 0)
        log_error("schedule %" PRId64 ": making the task of the fire at %" PRId64 " failed: %s",
                  r->id, fire_s, strerror(-rc));
}

/* A schedule whose zone cannot be read is paused, never run in another zone. */
static void sched_pause(struct sched *sc, const struct schedule_row *r, const char *why)
{
    int rc = store_schedule_set_paused(sc->store, r->id, true, sc->now_s);
    log_error("schedule %" PRId64 ": %s; %s", r->id, why,
              rc == 0 ? "paused (resume it once the zone can be read)" : "it does not fire");
}

static int sched_visit(void *ctx, const struct schedule_row *r)
{
    struct sched *sc = ctx;
    if (r->paused)
        return 0;
    struct cron_expr e;
    char why[512];
    int rc = sched_expr(sc, r, &e, why, sizeof(why));
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0) {
        if (r->tz_name[0])
            sched_pause(sc, r, why);
        else
            log_error("schedule %" PRId64 ": %s; it never fires", r->id, why);
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
                 struct group *group, const char *zoneinfo_dir, struct sched **out)
{
    struct sched *sc = calloc(1, sizeof(*sc));
    if (!sc || !(sc->zoneinfo_dir = strdup(zoneinfo_dir)) || hmap_init(&sc->zones) < 0) {
        if (sc)
            free(sc->zoneinfo_dir);
        free(sc);
        return -ENOMEM;
    }
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
    struct hmap_entry *e, *tmp;
    hmap_foreach(&sc->zones, e, tmp)
    {
        struct sched_zone *z = hmap_item(e, struct sched_zone, link);
        tz_free(z->zone);
        free(z);
    }
    hmap_destroy(&sc->zones);
    free(sc->zoneinfo_dir);
    free(sc);
}

void sched_changed(struct sched *sc)
{
    sched_run(sc);
}
