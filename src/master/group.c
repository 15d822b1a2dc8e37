#include "master/group.h"

#include <errno.h>
#include <stdlib.h>

#include "master/clock.h"
#include "master/metrics.h"
#include "store/store.h"
#include "rpc/server.h"
#include "runtime/log.h"

/* An open group nobody waits for (log lines streaming in) is committed at the latest after this
 * long, so that many messages share one sync. */
#define MAX_AGE_S 0.05

struct group {
    struct ev_loop *loop;
    struct store *store;
    struct rpc_server *server; /* or NULL */
    ev_prepare commit_point;
    ev_timer max_age;
    bool open;
    bool wanted; /* someone waits for this group to be durable */
    uint64_t number;
    group_commit_fn on_commit;
    void *on_commit_ctx;
    struct metrics *metrics; /* NULL: none kept */
};

int group_join(struct group *g)
{
    if (g->open)
        return 0;
    int rc = store_begin(g->store);
    if (rc < 0)
        return rc;
    g->open = true;
    g->wanted = false;
    ev_prepare_start(g->loop, &g->commit_point);
    ev_timer_set(&g->max_age, MAX_AGE_S, 0.0);
    ev_timer_start(g->loop, &g->max_age);
    return 0;
}

uint64_t group_number(const struct group *g)
{
    return g->number;
}

bool group_is_open(const struct group *g)
{
    return g->open;
}

void group_commit(struct group *g)
{
    if (!g->open)
        return;
    ev_prepare_stop(g->loop, &g->commit_point);
    ev_timer_stop(g->loop, &g->max_age);
    g->open = false;
    uint64_t n = g->number++;
    int64_t started = g->metrics ? clock_mono_us() : 0;
    int rc = store_commit(g->store);
    if (g->metrics) {
        metrics_observe(&g->metrics->commit_seconds, (double)(clock_mono_us() - started) / 1e6);
        if (rc == 0)
            g->metrics->commits++;
        else
            g->metrics->commit_failures++;
    }
    if (rc < 0)
        log_error("a group of changes could not be stored (%d); their callers are told to retry",
                  rc);
    /* The listener first (tasks pushed to their nodes, streams answered), then the replies held
     * for this group: a task's push does not wait behind its submitter's answer. Replies held by
     * what the listener does belong to the next group. */
    struct srv_call *replies = g->server ? rpc_server_take_replies(g->server) : NULL;
    if (g->on_commit)
        g->on_commit(g->on_commit_ctx, n, rc == 0);
    rpc_server_send_replies(replies, rc == 0);
}

void group_on_commit(struct group *g, group_commit_fn fn, void *ctx)
{
    g->on_commit = fn;
    g->on_commit_ctx = ctx;
}

void group_want_commit(struct group *g)
{
    g->wanted = true;
}

/*
 * Runs once per loop iteration, after every event of the iteration was handled: the group is
 * committed now if a reply or a stream waits for it, else it keeps gathering until MAX_AGE_S.
 */
static void on_commit_point(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct group *g = w->data;
    if (g->wanted || (g->server && rpc_server_holding(g->server)))
        group_commit(g);
}

static void on_max_age(struct ev_loop *loop, ev_timer *w, int revents)
{
    group_commit(w->data);
}

/* Every unary method runs inside a group, so its store changes share the iteration's commit. */
static void before_unary(void *ctx)
{
    struct group *g = ctx;
    if (group_join(g) < 0)
        log_warn("cannot open a group of store changes; this call commits on its own");
}

bool group_holds_replies(const struct group *g)
{
    return g->open && store_changed(g->store);
}

static bool hold_replies(void *ctx)
{
    return group_holds_replies(ctx);
}

static void flush_replies(void *ctx)
{
    group_commit(ctx);
}

int group_create(struct ev_loop *loop, struct store *store, struct rpc_server *server,
                 struct group **out)
{
    struct group *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->loop = loop;
    g->store = store;
    g->server = server;
    g->number = 1;
    ev_prepare_init(&g->commit_point, on_commit_point);
    g->commit_point.data = g;
    ev_init(&g->max_age, on_max_age);
    g->max_age.data = g;
    if (server) {
        struct rpc_server_hooks hooks = {
            .before_unary = before_unary, .hold = hold_replies, .flush = flush_replies, .ctx = g};
        rpc_server_set_hooks(server, &hooks);
    }
    *out = g;
    return 0;
}

void group_server_gone(struct group *g)
{
    g->server = NULL;
}

void group_destroy(struct group *g)
{
    if (!g)
        return;
    group_commit(g);
    free(g);
}

void group_set_metrics(struct group *g, struct metrics *m)
{
    g->metrics = m;
}
