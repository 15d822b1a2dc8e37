/*
 * The store's schedules and their fires on PostgreSQL (store/store_pg.h).
 *
 * Several masters may fire one schedule at the same fire time. A fire locks the schedule's row
 * (SELECT ... FOR UPDATE) before it looks for the fire's records: the second master waits there
 * until the first one's transaction ends, then, in a statement that sees what the first one
 * committed, finds the records and answers 1 without making a task. The fire's unique key
 * (schedule, fire time, node) stays the backstop. The other writes are single statements on the
 * schedule's row, ordered by its lock.
 */
#include "store/store_pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cron.h"
#include "core/rules.h"
#include "core/spider.h"
#include "core/tz.h"
#include "runtime/log.h"

#define SCHED_COLS                                                                                 \
    "id, name, expr, tz_offset, cmd, env_json, priority, timeout_ms, node_key, overlap, missed, "  \
    "paused, created_ms, last_fire_s, last_task, labels, retries, retry_delay_ms, spider, "        \
    "tz_name, all_nodes"

static const char sql_create[] =
    "INSERT INTO schedules (name, expr, tz_offset, cmd, env_json, priority, timeout_ms,"
    " node_key, overlap, missed, created_ms, labels, retries, retry_delay_ms, spider, tz_name,"
    " all_nodes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,"
    " $17) RETURNING id";
static const char sql_get[] = "SELECT " SCHED_COLS " FROM schedules WHERE id = $1";
static const char sql_list[] = "SELECT " SCHED_COLS " FROM schedules ORDER BY id";
static const char sql_pause[] = "UPDATE schedules SET paused = 1 WHERE id = $1";
/* The fire times that passed while it was paused count as handled. */
static const char sql_resume[] =
    "UPDATE schedules SET last_fire_s = CASE WHEN paused != 0 THEN"
    " GREATEST(last_fire_s, $2) ELSE last_fire_s END, paused = 0 WHERE id = $1";
/* The fires go only with their schedule: an unknown id changes nothing. */
static const char sql_delete[] =
    "WITH s AS (DELETE FROM schedules WHERE id = $1 RETURNING id),"
    " f AS (DELETE FROM schedule_fires WHERE schedule_id IN (SELECT id FROM s))"
    " SELECT count(*) FROM s";
static const char sql_skip[] =
    "UPDATE schedules SET last_fire_s = GREATEST(last_fire_s, $2) WHERE id = $1";
static const char sql_lock[] = "SELECT 1 FROM schedules WHERE id = $1 FOR UPDATE";
static const char sql_fire_lookup[] =
    "SELECT task_id FROM schedule_fires WHERE schedule_id = $1 AND fire_s = $2 LIMIT 1";
/* The fire's records (node keys $3 and task ids $4, as arrays) and the schedule's advance. */
static const char sql_fire_record[] =
    "WITH f AS (INSERT INTO schedule_fires (schedule_id, fire_s, node_key, task_id)"
    " SELECT $1::bigint, $2::bigint, u.node_key, u.task_id FROM unnest($3::text[], $4::text[])"
    " AS u(node_key, task_id))"
    " UPDATE schedules SET last_fire_s = GREATEST(last_fire_s, $2), last_task = $5"
    " WHERE id = $1";
static const char sql_last_tasks[] =
    "SELECT task_id FROM schedule_fires WHERE schedule_id = $1 AND fire_s ="
    " (SELECT max(fire_s) FROM schedule_fires WHERE schedule_id = $1)";
static const char sql_fires[] = "SELECT fire_s, task_id FROM schedule_fires WHERE schedule_id = $1"
                                " ORDER BY fire_s, node_key COLLATE \"C\"";

static int sched_from_result(const PGresult *res, int i, struct schedule_row *r)
{
    memset(r, 0, sizeof(*r));
    r->id = pg_int(res, i, 0);
    pg_copy(r->name, sizeof(r->name), res, i, 1);
    r->expr = pg_dup(res, i, 2);
    r->tz_offset = (int32_t)pg_int(res, i, 3);
    r->cmd = pg_dup(res, i, 4);
    r->env_json = pg_dup(res, i, 5);
    r->priority = (int)pg_int(res, i, 6);
    r->timeout_ms = pg_int(res, i, 7);
    pg_copy(r->node_key, sizeof(r->node_key), res, i, 8);
    r->overlap = (int)pg_int(res, i, 9);
    r->missed = (int)pg_int(res, i, 10);
    r->paused = pg_int(res, i, 11) != 0;
    r->created_ms = pg_int(res, i, 12);
    r->last_fire_s = pg_int(res, i, 13);
    pg_copy(r->last_task, sizeof(r->last_task), res, i, 14);
    r->labels = pg_dup(res, i, 15);
    r->retries = (int)pg_int(res, i, 16);
    r->retry_delay_ms = pg_int(res, i, 17);
    pg_copy(r->spider, sizeof(r->spider), res, i, 18);
    pg_copy(r->tz_name, sizeof(r->tz_name), res, i, 19);
    r->all_nodes = pg_int(res, i, 20) != 0;
    if (!r->expr || !r->cmd || !r->env_json || !r->labels) {
        store_schedule_row_free(r);
        log_error("store: out of memory reading a schedule");
        return -ENOMEM;
    }
    return 0;
}

static void schedule_params(struct pg_params *pp, const struct schedule_new *n, int64_t now_ms)
{
    pg_params_init(pp);
    pg_param_text(pp, n->name ? n->name : "");
    pg_param_text(pp, n->expr);
    pg_param_int(pp, n->tz_offset);
    pg_param_text(pp, n->cmd);
    pg_param_text(pp, n->env_json ? n->env_json : "{}");
    pg_param_int(pp, n->priority);
    pg_param_int(pp, n->timeout_ms);
    pg_param_text(pp, n->node_key ? n->node_key : "");
    pg_param_int(pp, n->overlap);
    pg_param_int(pp, n->missed);
    pg_param_int(pp, now_ms);
    pg_param_text(pp, n->labels ? n->labels : "");
    pg_param_int(pp, n->retries);
    pg_param_int(pp, n->retry_delay_ms);
    pg_param_text(pp, n->spider ? n->spider : "");
    pg_param_text(pp, n->tz_name ? n->tz_name : "");
    pg_param_int(pp, n->all_nodes);
}

/* The id is an identity: two masters creating schedules at once get two ids. */
int pg_schedule_create(struct store *s, const struct schedule_new *n, int64_t now_ms,
                       int64_t *id_out)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    schedule_params(&pp, n, now_ms);
    PGresult *res = pg_query(p, "creating schedule", n->name, sql_create, &pp, &rc);
    if (!res)
        return rc;
    *id_out = pg_int(res, 0, 0);
    PQclear(res);
    return 0;
}

int pg_schedule_get(struct store *s, int64_t id, struct schedule_row *out)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_int(&pp, id);
    PGresult *res = pg_query(p, "reading schedule", "schedule", sql_get, &pp, &rc);
    if (!res)
        return rc;
    rc = PQntuples(res) > 0 ? sched_from_result(res, 0, out) : -ENOENT;
    PQclear(res);
    return rc;
}

/* Collects first: the rows are all in the result while the callback calls into the store. */
int pg_schedule_list(struct store *s, int (*cb)(void *ctx, const struct schedule_row *r), void *ctx)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    PGresult *res = pg_query(p, "listing schedules", "all schedules", sql_list, NULL, &rc);
    if (!res)
        return rc;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        struct schedule_row r;
        rc = sched_from_result(res, i, &r);
        if (rc == 0) {
            rc = cb(ctx, &r);
            store_schedule_row_free(&r);
        }
    }
    PQclear(res);
    return rc;
}

/* Runs one statement on a schedule as its own operation; -ENOENT when it changed no row. */
static int sched_write(struct pg_store *p, const char *what, const char *sql,
                       const struct pg_params *pp)
{
    int64_t n = pg_exec(p, what, "schedule", sql, pp);
    return n < 0 ? (int)n : n == 0 ? -ENOENT : 0;
}

int pg_schedule_set_paused(struct store *s, int64_t id, bool paused, int64_t now_s)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_int(&pp, id);
    if (paused)
        return sched_write(p, "pausing schedule", sql_pause, &pp);
    pg_param_int(&pp, now_s);
    return sched_write(p, "resuming schedule", sql_resume, &pp);
}

int pg_schedule_delete(struct store *s, int64_t id)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_int(&pp, id);
    PGresult *res = pg_query(p, "removing schedule", "schedule", sql_delete, &pp, &rc);
    if (!res)
        return rc;
    rc = pg_int(res, 0, 0) == 0 ? -ENOENT : 0;
    PQclear(res);
    return rc;
}

int pg_schedule_skip(struct store *s, int64_t id, int64_t fire_s)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_int(&pp, id);
    pg_param_int(&pp, fire_s);
    return sched_write(p, "skipping a schedule's fire", sql_skip, &pp);
}

/* Inside the fire's operation: locks schedule id's row (-ENOENT when there is none), then looks
 * for the fire's records. 1 with one of its tasks in id_out when the fire has them, 0 if not. */
static int fire_lock_lookup(struct pg_store *p, int64_t id, int64_t fire_s,
                            char id_out[TASK_ID_LEN + 1])
{
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_int(&pp, id);
    int64_t n = pg_exec(p, "locking a schedule", "schedule", sql_lock, &pp);
    if (n <= 0)
        return n < 0 ? (int)n : -ENOENT;
    pg_param_int(&pp, fire_s);
    int rc = 0;
    PGresult *res = pg_query(p, "reading a schedule's fire", "schedule", sql_fire_lookup, &pp, &rc);
    if (!res)
        return rc;
    if (PQntuples(res) > 0) {
        pg_copy(id_out, TASK_ID_LEN + 1, res, 0, 0);
        rc = 1;
    }
    PQclear(res);
    return rc;
}

/* Appends v to the array literal being written in out (cap bytes, room made by the caller):
 * node keys and task ids, whose characters (node_key_valid, hex) need no escaping. */
static size_t array_add(char *out, size_t at, size_t cap, const char *v)
{
    return at + (size_t)snprintf(out + at, cap - at, "%s\"%s\"", at > 1 ? "," : "", v);
}

/* Records the fire's n tasks ids[] and advances the schedule, in one statement: the node keys and
 * task ids go as two array literals ({"a","b"}). */
static int fire_record(struct pg_store *p, int64_t id, int64_t fire_s, const struct task_new *t,
                       size_t n, bool per_node, char (*ids)[TASK_ID_LEN + 1])
{
    size_t node_cap = n * (LIMIT_NODE_KEY_MAX + 3) + 2, id_cap = n * (TASK_ID_LEN + 3) + 2;
    char *nodes = malloc(node_cap), *tasks = malloc(id_cap);
    int rc = -ENOMEM;
    if (!nodes || !tasks) {
        log_error("store: out of memory recording a schedule's fire");
        goto out;
    }
    size_t node_at = 1, id_at = 1;
    nodes[0] = tasks[0] = '{';
    for (size_t i = 0; i < n; i++) {
        node_at = array_add(nodes, node_at, node_cap, per_node ? t[i].node_key : "");
        id_at = array_add(tasks, id_at, id_cap, ids[i]);
    }
    snprintf(nodes + node_at, node_cap - node_at, "}");
    snprintf(tasks + id_at, id_cap - id_at, "}");
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_int(&pp, id);
    pg_param_int(&pp, fire_s);
    pg_param_text(&pp, nodes);
    pg_param_text(&pp, tasks);
    pg_param_text(&pp, ids[n - 1]);
    int64_t changed = pg_exec(p, "recording a schedule's fire", "schedule", sql_fire_record, &pp);
    rc = changed < 0 ? (int)changed : changed == 0 ? -ENOENT : 0;
out:
    free(nodes);
    free(tasks);
    return rc;
}

/* Two masters firing (id, fire_s) at once: the schedule's row lock makes the second wait, and its
 * lookup, a statement after the wait, finds the first one's records: 1, no second task. */
int pg_schedule_fire(struct store *s, int64_t id, int64_t fire_s, const struct task_new *t,
                     size_t n, bool per_node, int64_t now_ms, char (*ids_out)[TASK_ID_LEN + 1])
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    rc = pg_op_begin(p);
    if (rc < 0)
        return rc;
    /* Reads first (the lock and the lookup): once a task is written, nothing is refused. */
    rc = fire_lock_lookup(p, id, fire_s, ids_out[0]);
    if (rc != 0)
        return pg_op_end(p, rc);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = pg_task_insert(p, &t[i], NULL, now_ms, ids_out[i]);
    if (rc == 0)
        rc = fire_record(p, id, fire_s, t, n, per_node, ids_out);
    return pg_op_end(p, rc);
}

/* Collects first (the result holds every row while the callback runs). */
int pg_schedule_last_tasks(struct store *s, int64_t id, int (*cb)(void *ctx, const char *task_id),
                           void *ctx)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_int(&pp, id);
    PGresult *res =
        pg_query(p, "reading a schedule's last tasks", "schedule", sql_last_tasks, &pp, &rc);
    if (!res)
        return rc;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++)
        rc = cb(ctx, PQgetvalue(res, i, 0));
    PQclear(res);
    return rc;
}

/* Collects first, as pg_schedule_last_tasks. */
int pg_schedule_fires(struct store *s, int64_t id,
                      int (*cb)(void *ctx, int64_t fire_s, const char *task_id), void *ctx)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_int(&pp, id);
    PGresult *res = pg_query(p, "listing a schedule's fires", "schedule", sql_fires, &pp, &rc);
    if (!res)
        return rc;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++)
        rc = cb(ctx, pg_int(res, i, 0), PQgetvalue(res, i, 1));
    PQclear(res);
    return rc;
}
