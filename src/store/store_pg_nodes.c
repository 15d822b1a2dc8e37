/*
 * The store's nodes on PostgreSQL (store/store_pg.h). Each operation is one statement.
 *
 * Several masters: a node connects to one master at a time, but two masters may both write its
 * row (a reconnect to the other one, a liveness sweep). Every write is one statement on the row,
 * so the row's lock orders them; the registration is an INSERT ... ON CONFLICT, which never fails
 * when two masters register the same node at once.
 *
 * Keys are compared and sorted byte by byte (COLLATE "C"), as SQLite does, whatever the
 * database's collation: the listing's order and its "after this key" are the same on both.
 */
#include "store/store_pg.h"

#include <errno.h>
#include <string.h>

#include "core/rules.h"

#define NODE_COLS "key, name, status, max_runners, created_ms, last_seen_ms, version, labels, state"

static const char sql_upsert[] =
    "INSERT INTO nodes (key, name, status, max_runners, version, created_ms, last_seen_ms,"
    " labels) VALUES ($1, $2, 'online', $3, $4, $5, $5, $6)"
    " ON CONFLICT (key) DO UPDATE SET name = excluded.name, status = 'online',"
    " max_runners = excluded.max_runners, version = excluded.version,"
    " last_seen_ms = excluded.last_seen_ms, labels = excluded.labels";
static const char sql_set_state[] = "UPDATE nodes SET state = $2 WHERE key = $1";
static const char sql_delete[] = "DELETE FROM nodes WHERE key = $1";
static const char sql_set_status[] =
    "UPDATE nodes SET status = $2,"
    " last_seen_ms = CASE WHEN $2 = 'online' THEN $3::bigint ELSE last_seen_ms END"
    " WHERE key = $1";
static const char sql_touch[] = "UPDATE nodes SET last_seen_ms = $2 WHERE key = $1";
static const char sql_get[] = "SELECT " NODE_COLS " FROM nodes WHERE key = $1";
/* $2 NULL: no limit. */
static const char sql_page[] = "SELECT " NODE_COLS " FROM nodes WHERE key > $1 COLLATE \"C\""
                               " ORDER BY key COLLATE \"C\" LIMIT $2";
static const char sql_named[] = "SELECT " NODE_COLS " FROM nodes WHERE key = $1 OR name = $1"
                                " ORDER BY key COLLATE \"C\"";

static void node_from_result(const PGresult *res, int i, struct node_row *r)
{
    pg_copy(r->key, sizeof(r->key), res, i, 0);
    pg_copy(r->name, sizeof(r->name), res, i, 1);
    pg_copy(r->status, sizeof(r->status), res, i, 2);
    r->max_runners = (int)pg_int(res, i, 3);
    r->created_ms = pg_int(res, i, 4);
    r->last_seen_ms = pg_int(res, i, 5);
    pg_copy(r->version, sizeof(r->version), res, i, 6);
    pg_copy(r->labels, sizeof(r->labels), res, i, 7);
    pg_copy(r->state, sizeof(r->state), res, i, 8);
}

/* Runs one write of a node's row; -ENOENT when no row matched. */
static int node_write(struct pg_store *p, const char *what, const char *key, const char *sql,
                      const struct pg_params *pp)
{
    int64_t n = pg_exec(p, what, key, sql, pp);
    return n < 0 ? (int)n : n == 0 ? -ENOENT : 0;
}

int pg_node_upsert(struct store *s, const char *key, const char *name, int max_runners,
                   const char *version, const char *labels, int64_t now_ms)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, key);
    pg_param_text(&pp, name ? name : "");
    pg_param_int(&pp, max_runners);
    pg_param_text(&pp, version ? version : "");
    pg_param_int(&pp, now_ms);
    pg_param_text(&pp, labels ? labels : "");
    return node_write(p, "registering node", key, sql_upsert, &pp);
}

int pg_node_set_state(struct store *s, const char *key, const char *state)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, key);
    pg_param_text(&pp, state);
    return node_write(p, "setting node state", key, sql_set_state, &pp);
}

int pg_node_delete(struct store *s, const char *key)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, key);
    return node_write(p, "removing node", key, sql_delete, &pp);
}

int pg_node_set_status(struct store *s, const char *key, const char *status, int64_t now_ms)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, key);
    pg_param_text(&pp, status);
    pg_param_int(&pp, now_ms);
    return node_write(p, "setting node status", key, sql_set_status, &pp);
}

int pg_node_touch(struct store *s, const char *key, int64_t now_ms)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, key);
    pg_param_int(&pp, now_ms);
    return node_write(p, "touching node", key, sql_touch, &pp);
}

int pg_node_get(struct store *s, const char *key, struct node_row *out)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, key);
    PGresult *res = pg_query_row(p, "reading node", key, sql_get, &pp, &rc);
    if (!res)
        return rc;
    node_from_result(res, 0, out);
    PQclear(res);
    return 0;
}

/* Collects first: the rows are all in the result, which stays valid while the callback calls
 * into the store on the same connection. */
static int node_rows(struct pg_store *p, const char *subject, const char *sql,
                     const struct pg_params *pp, int (*cb)(void *ctx, const struct node_row *r),
                     void *ctx)
{
    int rc = 0;
    PGresult *res = pg_query(p, "listing nodes", subject, sql, pp, &rc);
    if (!res)
        return rc;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        struct node_row r;
        node_from_result(res, i, &r);
        rc = cb(ctx, &r);
    }
    PQclear(res);
    return rc;
}

int pg_node_page(struct store *s, const char *after_key, unsigned limit,
                 int (*cb)(void *ctx, const struct node_row *r), void *ctx)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, after_key ? after_key : "");
    if (limit)
        pg_param_int(&pp, limit);
    else
        pg_param_text(&pp, NULL);
    return node_rows(p, after_key, sql_page, &pp, cb, ctx);
}

int pg_node_named(struct store *s, const char *given,
                  int (*cb)(void *ctx, const struct node_row *r), void *ctx)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, given);
    return node_rows(p, given, sql_named, &pp, cb, ctx);
}

int pg_node_list(struct store *s, int (*cb)(void *ctx, const struct node_row *r), void *ctx)
{
    return pg_node_page(s, NULL, 0, cb, ctx);
}
