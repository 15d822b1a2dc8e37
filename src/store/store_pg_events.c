/*
 * The store's events and the hooks' cursors on PostgreSQL (store/store_pg.h).
 *
 * Event ids are not a sequence: a sequence gives its numbers outside transactions, so with two
 * masters inserting, event 8 could commit before event 7, and a reader (a hook, `events
 * --follow`) that had read up to 8 would never see 7. Instead the one row of event_ids holds the
 * last id given, and an insert takes the next one by updating that row: the row stays locked until
 * the inserting transaction ends, so the next id is only given once the event before it is
 * committed (or rolled back, and then its id is given again, as SQLite does). Ids are therefore
 * committed in order, and a reader that saw id n has seen every id below n that will ever exist.
 * The cost: event inserts of the masters are serialised, each one for as long as its transaction
 * (its group) stays open. Two groups can then wait for each other (one holds the row and wants a
 * task row the other holds before adding its own event): PostgreSQL's deadlock check aborts one
 * of them, whose store_commit fails with -EIO as store.h says of a transaction the database
 * aborted; its master sees its changes undone, not half done.
 *
 * The same row answers store_event_last: the highest id ever given, purged or not; outside a group
 * the highest committed one.
 */
#include "store/store_pg.h"

#include <errno.h>
#include <string.h>

#include "core/rules.h"

/* The counter's update and the insert are one statement; the counter's row lock is what orders
 * two masters' events (above). */
static const char sql_add[] =
    "WITH n AS (UPDATE event_ids SET last = last + 1 RETURNING last)"
    " INSERT INTO events (id, at_ms, kind, node_key, task_id, data)"
    " SELECT last, $1::bigint, $2::text, $3::text, $4::text, $5::text FROM n RETURNING id";
/* $3 NULL: no limit. */
static const char sql_page[] = "SELECT id, at_ms, kind, node_key, task_id, data FROM events"
                               " WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3";
static const char sql_last[] = "SELECT last FROM event_ids";
static const char sql_count[] = "SELECT count(*) FROM events WHERE id > $1 AND id <= $2";
/* Two masters purging at once each take rows the other has not locked. */
static const char sql_purge[] =
    "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at_ms < $1"
    " ORDER BY at_ms LIMIT $2 FOR UPDATE SKIP LOCKED)";
static const char sql_cursor_get[] = "SELECT delivered FROM event_cursors WHERE hook = $1";
static const char sql_cursor_set[] =
    "INSERT INTO event_cursors (hook, delivered) VALUES ($1, $2)"
    " ON CONFLICT (hook) DO UPDATE SET delivered = excluded.delivered";

int pg_event_add(struct store *s, int64_t at_ms, const char *kind, const char *node_key,
                 const char *task_id, const char *data, int64_t *id_out)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_int(&pp, at_ms);
    pg_param_text(&pp, kind);
    pg_param_text(&pp, node_key ? node_key : "");
    pg_param_text(&pp, task_id ? task_id : "");
    pg_param_text(&pp, data && *data ? data : "{}");
    /* A failure inside a group breaks it (pg_query): the change this event records is not
     * committed without it. */
    PGresult *res = pg_query(p, "recording an event", kind, sql_add, &pp, &rc);
    if (!res)
        return rc;
    if (id_out)
        *id_out = pg_int(res, 0, 0);
    PQclear(res);
    return 0;
}

/* Streams, as SQLite's does: the callback must not call into the store (-EBUSY), so that a
 * caller written against either backend behaves the same. */
int pg_event_page(struct store *s, int64_t after, int64_t upto, unsigned limit,
                  int (*cb)(void *ctx, const struct event_row *e), void *ctx)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_int(&pp, after);
    pg_param_int(&pp, upto);
    if (limit)
        pg_param_int(&pp, limit);
    else
        pg_param_text(&pp, NULL);
    PGresult *res = pg_query(p, "reading events", NULL, sql_page, &pp, &rc);
    if (!res)
        return rc;
    p->streaming = true;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        struct event_row e = {.id = pg_int(res, i, 0), .at_ms = pg_int(res, i, 1)};
        pg_copy(e.kind, sizeof(e.kind), res, i, 2);
        pg_copy(e.node_key, sizeof(e.node_key), res, i, 3);
        pg_copy(e.task_id, sizeof(e.task_id), res, i, 4);
        e.data = PQgetvalue(res, i, 5);
        rc = cb(ctx, &e);
    }
    p->streaming = false;
    PQclear(res);
    return rc;
}

/* Runs a statement whose answer is one integer into *out; -ENOENT when it returns no row. */
static int query_int(struct pg_store *p, const char *what, const char *ctx, const char *sql,
                     const struct pg_params *pp, int64_t *out)
{
    int rc = 0;
    PGresult *res = pg_query_row(p, what, ctx, sql, pp, &rc);
    if (!res)
        return rc;
    *out = pg_int(res, 0, 0);
    PQclear(res);
    return 0;
}

int pg_event_last(struct store *s, int64_t *out)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    return query_int(p, "reading the last event id", NULL, sql_last, NULL, out);
}

int pg_event_count(struct store *s, int64_t after, int64_t upto, uint64_t *out)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_int(&pp, after);
    pg_param_int(&pp, upto);
    int64_t n = 0;
    rc = query_int(p, "counting events", NULL, sql_count, &pp, &n);
    if (rc == 0)
        *out = n < 0 ? 0 : (uint64_t)n;
    return rc;
}

int pg_event_purge(struct store *s, int64_t before_ms, unsigned budget, size_t *purged, bool *more)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    *purged = 0;
    *more = false;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_int(&pp, before_ms);
    pg_param_int(&pp, budget);
    int64_t n = pg_exec(p, "purging events", NULL, sql_purge, &pp);
    if (n < 0)
        return (int)n;
    *purged = (size_t)n;
    *more = (uint64_t)n == budget;
    return 0;
}

int pg_event_cursor_get(struct store *s, const char *hook, int64_t *out)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, hook);
    return query_int(p, "reading a hook's cursor", hook, sql_cursor_get, &pp, out);
}

/* Two masters delivering to one hook store the cursor one after the other (the upsert's row
 * lock); the last to commit wins, as with SQLite's two writes in turn. */
int pg_event_cursor_set(struct store *s, const char *hook, int64_t delivered)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, hook);
    pg_param_int(&pp, delivered);
    int64_t n = pg_exec(p, "storing a hook's cursor", hook, sql_cursor_set, &pp);
    return n < 0 ? (int)n : 0;
}
