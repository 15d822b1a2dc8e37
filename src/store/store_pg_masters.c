/*
 * Several masters on one PostgreSQL store (store.h, "Several masters on one store"): the masters'
 * leases, which master holds each node, and the news of pending tasks and of cancels
 * (LISTEN/NOTIFY; the schema's tasks_news trigger sends the first, pg_task_request_cancel the
 * second).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/task.h"
#include "store/store_pg.h"

/* Leases are kept on the database's clock, the one clock every master reads alike: the masters'
 * own may disagree by any amount. clock_timestamp(), not now(): a group's transaction may be old.
 */
#define DB_NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

/* Returns 1 when the lease had run out (or never was): another master may have reaped this
 * master's nodes, which the master then hears of as if its streams had ended. */
static const char renew_sql[] =
    "INSERT INTO masters (id, lease_ms) VALUES ($1, " DB_NOW_MS " + $2)"
    " ON CONFLICT (id) DO UPDATE SET lease_ms = EXCLUDED.lease_ms RETURNING (xmax = 0)";

int pg_master_renew(struct store *s, const char *master_id, int64_t for_ms)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, master_id);
    pg_param_int(&pp, for_ms);
    PGresult *res = pg_query(p, "renewing the lease", master_id, renew_sql, &pp, &rc);
    if (!res)
        return rc;
    rc = PQntuples(res) == 1 && pg_bool(res, 0, 0) ? 1 : 0;
    PQclear(res);
    return rc;
}

static const char hold_sql[] = "UPDATE nodes SET master = $2 WHERE key = $1";

int pg_node_hold(struct store *s, const char *key, const char *master_id)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, key);
    pg_param_text(&pp, master_id);
    int64_t n = pg_exec(p, "recording the node's master", key, hold_sql, &pp);
    return n < 0 ? (int)n : n == 0 ? -ENOENT : 0;
}

/*
 * Reaping, in one transaction: the leases that ran out go, then every online node whose master
 * has no lease goes offline (a node of a master that died, or of a database every master left).
 * Two masters reaping at once: the second one's UPDATE waits for the first one's row locks and
 * then finds those nodes offline already, so each node is reaped once. Inside a group the reap
 * commits with it (a busy master may always have one open); a group that rolls back takes the
 * reap with it, and the next reap finds those nodes again.
 */
static const char expire_sql[] = "DELETE FROM masters WHERE lease_ms <= " DB_NOW_MS;
static const char orphans_sql[] =
    "UPDATE nodes SET status = 'offline' WHERE status = 'online'"
    " AND NOT EXISTS (SELECT 1 FROM masters m WHERE m.id = nodes.master) RETURNING key";

int pg_master_reap(struct store *s, int (*cb)(void *ctx, const char *node_key), void *ctx)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    if ((rc = pg_op_begin(p)) < 0)
        return rc;
    PGresult *res = NULL;
    int64_t n = pg_exec(p, "ending leases", NULL, expire_sql, NULL);
    if (n >= 0)
        res = pg_query(p, "taking the nodes of ended leases offline", NULL, orphans_sql, NULL, &rc);
    else
        rc = (int)n;
    rc = pg_op_end(p, res ? 0 : rc);
    for (int i = 0; rc == 0 && res && i < PQntuples(res); i++)
        rc = cb(ctx, PQgetvalue(res, i, 0));
    PQclear(res);
    return rc;
}

/* The hooks' lock: a session-level advisory lock ("hook"), so that it is let go when the master's
 * connection ends, by a crash too, and another master's next try takes it. */
static const char sql_hooks_lock[] = "SELECT pg_try_advisory_lock(1752133483, 0)";

int pg_hooks_hold(struct store *s)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    if (p->hooks_held)
        return 1;
    PGresult *res = pg_query_row(p, "trying the hooks' lock", NULL, sql_hooks_lock, NULL, &rc);
    if (!res)
        return rc;
    p->hooks_held = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return p->hooks_held ? 2 : 0;
}

int pg_news_fd(struct store *s)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    if (!p->listening) {
        if ((rc = pg_exec_simple(p, "listening for news", PG_LISTEN_SQL)) < 0)
            return rc;
        p->listening = true;
    }
    p->news_moved = false;
    int fd = PQsocket(p->conn);
    return fd >= 0 ? fd : -EIO;
}

/* Splits a payload of n tab-separated fields, the first a task id, in place; false when the
 * payload is not one. */
static bool parse_news(char *payload, char **fields, int n)
{
    for (int i = 0; i < n; i++) {
        fields[i] = payload;
        char *tab = strchr(payload, '\t');
        if ((tab != NULL) != (i < n - 1)) /* n - 1 tabs, no more */
            return false;
        if (tab) {
            *tab = '\0';
            payload = tab + 1;
        }
    }
    return task_id_valid(fields[0]);
}

/* One notification of another master: a pending task ("id\tnode\tlabels\teligible_ms" on
 * crawlab_tasks) or a cancel ("id\tnode\tforce" on crawlab_cancels). */
static int dispatch_news(const struct store_news_handlers *h, PGnotify *n)
{
    char *f[4];
    if (strcmp(n->relname, "crawlab_tasks") == 0 && parse_news(n->extra, f, 4))
        return h->task(h->ctx, f[0], f[1], f[2], strtoll(f[3], NULL, 10));
    if (strcmp(n->relname, "crawlab_cancels") == 0 && parse_news(n->extra, f, 3))
        return h->cancel(h->ctx, f[0], f[1], strcmp(f[2], "0") != 0);
    return 0;
}

int pg_news(struct store *s, const struct store_news_handlers *h, bool read)
{
    struct pg_store *p = pg_of(s);
    if (p->streaming)
        return -EBUSY;
    if (read && !PQconsumeInput(p->conn)) {
        /* The connection is gone: made again now unless a group is open (its operations must
         * fail until it rolls back). News sent meanwhile are lost; what they announced is found
         * by the workers' fetches and the masters' own timers. */
        int rc = p->in_group ? -EIO : pg_reconnect(p);
        if (rc < 0)
            return rc;
    }
    int own = PQbackendPID(p->conn);
    PGnotify *n;
    int rc = 0;
    while (rc == 0 && (n = PQnotifies(p->conn))) {
        if (n->be_pid != own)
            rc = dispatch_news(h, n);
        PQfreemem(n);
    }
    if (rc < 0)
        return rc;
    if (PQstatus(p->conn) != CONNECTION_OK)
        return -EIO;
    return p->news_moved ? 1 : 0;
}
