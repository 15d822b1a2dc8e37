/*
 * The PostgreSQL backend's tasks (store/store_pg.h): creation, the claim, status changes with
 * their history, listings and retention. Each function mirrors its SQLite twin (store_sqlite.c)
 * and says how it stays right when several masters share the database.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rules.h"
#include "runtime/log.h"
#include "store/store_pg.h"

#define TASK_COLS                                                                                  \
    "id, name, cmd, param, env_json, priority, timeout_ms, node_key, assigned_node, status, pid, " \
    "exit_code, error, log_lines, data_items, log_bytes, cancel_requested, cancel_force, "         \
    "created_ms, updated_ms, started_ms, ended_ms, epoch, labels, restart_of, retry_of, attempt, " \
    "retries, retry_delay_ms, eligible_ms, spider, spider_sha256, pushed"

/* ---- Rows ---- */

/* Reads row `row` of res (TASK_COLS first) into *r, owned by the caller. */
static int task_from_res(const PGresult *res, int row, struct task_row *r)
{
    memset(r, 0, sizeof(*r));
    pg_copy(r->id, sizeof(r->id), res, row, 0);
    pg_copy(r->name, sizeof(r->name), res, row, 1);
    r->cmd = pg_dup(res, row, 2);
    r->param = pg_dup(res, row, 3);
    r->env_json = pg_dup(res, row, 4);
    r->priority = (int)pg_int(res, row, 5);
    r->timeout_ms = pg_int(res, row, 6);
    pg_copy(r->node_key, sizeof(r->node_key), res, row, 7);
    pg_copy(r->assigned_node, sizeof(r->assigned_node), res, row, 8);
    const char *status = PQgetvalue(res, row, 9);
    r->pid = (int)pg_int(res, row, 10);
    r->exit_code = pg_is_null(res, row, 11) ? STORE_NO_EXIT_CODE : (int)pg_int(res, row, 11);
    r->error = pg_dup(res, row, 12);
    r->log_lines = (uint64_t)pg_int(res, row, 13);
    r->data_items = (uint64_t)pg_int(res, row, 14);
    r->log_bytes = (uint64_t)pg_int(res, row, 15);
    r->cancel_requested = pg_int(res, row, 16) != 0;
    r->cancel_force = pg_int(res, row, 17) != 0;
    r->created_ms = pg_int(res, row, 18);
    r->updated_ms = pg_int(res, row, 19);
    r->started_ms = pg_int(res, row, 20);
    r->ended_ms = pg_int(res, row, 21);
    r->epoch = (uint64_t)pg_int(res, row, 22);
    r->labels = pg_dup(res, row, 23);
    pg_copy(r->restart_of, sizeof(r->restart_of), res, row, 24);
    pg_copy(r->retry_of, sizeof(r->retry_of), res, row, 25);
    r->attempt = (int)pg_int(res, row, 26);
    r->retries = (int)pg_int(res, row, 27);
    r->retry_delay_ms = pg_int(res, row, 28);
    r->eligible_ms = pg_int(res, row, 29);
    pg_copy(r->spider, sizeof(r->spider), res, row, 30);
    pg_copy(r->spider_sha256, sizeof(r->spider_sha256), res, row, 31);
    r->pushed = pg_bool(res, row, 32);
    if (!r->cmd || !r->param || !r->env_json || !r->error || !r->labels) {
        store_task_row_free(r);
        log_error("store: out of memory reading task");
        return -ENOMEM;
    }
    if (task_status_parse(status, &r->status) < 0) {
        log_error("store: task %s has an unknown status '%s' in the database", r->id, status);
        store_task_row_free(r);
        return -EIO;
    }
    return 0;
}

static const char sql_task_get[] = "SELECT " TASK_COLS " FROM tasks WHERE id = $1";

/* Reads task id into *out (owned by the caller) with sql: sql_task_get, or sql_task_get_locked
 * (the row then stays locked until the transaction ends); -ENOENT. */
static int task_load_sql(struct pg_store *p, const char *sql, const char *id, struct task_row *out)
{
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, id);
    int rc = 0;
    PGresult *res = pg_query(p, "reading task", id, sql, &pp, &rc);
    if (!res)
        return rc;
    rc = PQntuples(res) == 1 ? task_from_res(res, 0, out) : -ENOENT;
    PQclear(res);
    return rc;
}

/* ---- Creation ---- */

static const char sql_task_insert[] =
    "INSERT INTO tasks (id, name, cmd, param, env_json, priority, timeout_ms, node_key, status,"
    " created_ms, updated_ms, labels, retries, retry_delay_ms, restart_of, retry_of, attempt,"
    " eligible_ms, spider, spider_sha256)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $9, $10, $11, $12, $13, $14, $15,"
    " $16, $17, $18) ON CONFLICT (id) DO NOTHING";

static const char *or_empty(const char *v)
{
    return v ? v : "";
}

/*
 * Two masters draw their random parts apart (store_ids_init), so their ids do not meet; a
 * duplicate needs this store's own counter to wrap within one second. ON CONFLICT DO NOTHING keeps
 * the transaction alive (a unique violation would break an open group), and the next counter value
 * is tried.
 */
int pg_task_insert(struct pg_store *p, const struct task_new *t, const struct task_link *link,
                   int64_t now_ms, char id[TASK_ID_LEN + 1])
{
    static const struct task_link first = {.attempt = 1};
    if (!link)
        link = &first;
    for (int attempt = 0; attempt < 3; attempt++) {
        store_ids_next(&p->ids, now_ms, id);
        struct pg_params pp;
        pg_params_init(&pp);
        pg_param_text(&pp, id);
        pg_param_text(&pp, or_empty(t->name));
        pg_param_text(&pp, t->cmd);
        pg_param_text(&pp, or_empty(t->param));
        pg_param_text(&pp, t->env_json ? t->env_json : "{}");
        pg_param_int(&pp, t->priority);
        pg_param_int(&pp, t->timeout_ms);
        pg_param_text(&pp, or_empty(t->node_key));
        pg_param_int(&pp, now_ms);
        pg_param_text(&pp, or_empty(t->labels));
        pg_param_int(&pp, t->retries);
        pg_param_int(&pp, t->retry_delay_ms);
        pg_param_text(&pp, or_empty(link->restart_of));
        pg_param_text(&pp, or_empty(link->retry_of));
        pg_param_int(&pp, link->attempt);
        pg_param_int(&pp, link->eligible_ms);
        pg_param_text(&pp, or_empty(t->spider));
        pg_param_text(&pp, or_empty(t->spider_sha256));
        int64_t n = pg_exec(p, "creating task", id, sql_task_insert, &pp);
        if (n != 0)
            return n < 0 ? (int)n : 0;
    }
    log_error("store: could not find a free task id at %" PRId64 " ms", now_ms);
    return -EEXIST;
}

int pg_task_create(struct store *s, const struct task_new *t, int64_t now_ms,
                   char id_out[TASK_ID_LEN + 1])
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    /* Each statement pg_task_insert runs either inserts the task or changes nothing. */
    char id[TASK_ID_LEN + 1];
    rc = pg_task_insert(p, t, NULL, now_ms, id);
    if (rc == 0)
        memcpy(id_out, id, sizeof(id));
    return rc;
}

int pg_task_get(struct store *s, const char *id, struct task_row *out)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    return task_load_sql(p, sql_task_get, id, out);
}

/* ---- Status changes ---- */

/*
 * A move and its history row in one statement. The task's row is locked (cur) and the move is
 * decided on the status read under that lock: $10 lists the statuses it may move from, so that a
 * master reporting on a task another master is changing waits, then moves from that one's result
 * or not at all. $7: back to pending (the assignment is taken back: node and pid cleared, a new
 * epoch), $8: to running, $9: to a terminal status. A 'running' report on a running task that has
 * no pid yet (a claim stores none) brings it (pid_kept; never together with a move). Returns the
 * status the task had and whether it moved; no row for an unknown task.
 */
static const char sql_task_move[] =
    "WITH cur AS (SELECT id, status FROM tasks WHERE id = $1 FOR UPDATE),"
    " moved AS ("
    " UPDATE tasks t SET status = $2, updated_ms = $3,"
    " pid = CASE WHEN $7 THEN 0 ELSE coalesce($4, pid) END,"
    " exit_code = coalesce($5, exit_code), error = coalesce($6, error),"
    " assigned_node = CASE WHEN $7 THEN '' ELSE assigned_node END,"
    " pushed = CASE WHEN $7 THEN FALSE ELSE pushed END,"
    " epoch = CASE WHEN $7 THEN epoch + 1 ELSE epoch END,"
    " started_ms = CASE WHEN $8 AND started_ms = 0 THEN $3 ELSE started_ms END,"
    " ended_ms = CASE WHEN $9 THEN $3 ELSE ended_ms END"
    " FROM cur WHERE t.id = cur.id AND cur.status = ANY ($10::text[])"
    " RETURNING cur.status AS from_status),"
    " recorded AS (INSERT INTO task_history (task_id, from_status, to_status, at_ms)"
    " SELECT $1, from_status, $2, $3 FROM moved),"
    " pid_kept AS (UPDATE tasks t SET pid = $4 FROM cur WHERE t.id = cur.id AND $8"
    " AND cur.status = 'running' AND NOT cur.status = ANY ($10::text[])"
    " AND $4::bigint IS NOT NULL AND t.pid = 0)"
    " SELECT cur.status, EXISTS (SELECT 1 FROM moved) FROM cur";

/* The statuses task_transition_allowed lets move to `to`, as an array literal into out. */
static void statuses_from(enum task_status to, char out[256])
{
    size_t n = 0;
    out[n++] = '{';
    for (int from = 0; from < TASK_STATUS_COUNT; from++)
        if (task_transition_allowed((enum task_status)from, to))
            n += (size_t)snprintf(out + n, 256 - n, "%s%s", n > 1 ? "," : "",
                                  task_status_name((enum task_status)from));
    snprintf(out + n, 256 - n, "}");
}

/*
 * Moves task id to `to` if its current status is in the array literal `from` (statuses_from or
 * a single one), inside an open operation. Returns 0 when it moved, 1 when not (nothing changes
 * but a missing pid), -ENOENT; *was (may be NULL) receives the status it had.
 */
static int task_move(struct pg_store *p, const char *id, const char *from, enum task_status to,
                     int pid, int exit_code, const char *error, int64_t now_ms,
                     enum task_status *was)
{
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, id);
    pg_param_text(&pp, task_status_name(to));
    pg_param_int(&pp, now_ms);
    if (pid > 0)
        pg_param_int(&pp, pid);
    else
        pg_param_text(&pp, NULL);
    if (exit_code != STORE_NO_EXIT_CODE)
        pg_param_int(&pp, exit_code);
    else
        pg_param_text(&pp, NULL);
    pg_param_text(&pp, error);
    pg_param_bool(&pp, to == TASK_PENDING);
    pg_param_bool(&pp, to == TASK_RUNNING);
    pg_param_bool(&pp, task_status_terminal(to));
    pg_param_text(&pp, from);
    int rc = 0;
    PGresult *res = pg_query(p, "changing task status", id, sql_task_move, &pp, &rc);
    if (!res)
        return rc;
    enum task_status status = TASK_PENDING;
    if (PQntuples(res) != 1) {
        rc = -ENOENT;
    } else if (task_status_parse(PQgetvalue(res, 0, 0), &status) < 0) {
        log_error("store: task %s has an unknown status '%s' in the database", id,
                  PQgetvalue(res, 0, 0));
        rc = -EIO;
    } else {
        rc = pg_bool(res, 0, 1) ? 0 : 1;
    }
    PQclear(res);
    if (rc >= 0 && was)
        *was = status;
    return rc;
}

int pg_task_set_status(struct store *s, const char *id, enum task_status to, int pid, int exit_code,
                       const char *error, int64_t now_ms)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    char from[256];
    statuses_from(to, from);
    return task_move(p, id, from, to, pid, exit_code, error, now_ms, NULL);
}

/* ---- Restarts and retries ---- */

/* The row of task id, locked until the transaction ends (a retry decides on its status). */
static const char sql_task_get_locked[] =
    "SELECT " TASK_COLS " FROM tasks WHERE id = $1 FOR UPDATE";

/* A restart only reads the old task's spec (which never changes): two masters restarting one task
 * make two new tasks, as two restarts on one master do. */
int pg_task_restart(struct store *s, const char *id, int64_t now_ms, char id_out[TASK_ID_LEN + 1])
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    rc = pg_op_begin(p);
    if (rc < 0)
        return rc;
    struct task_row row;
    char nid[TASK_ID_LEN + 1];
    rc = task_load_sql(p, sql_task_get, id, &row);
    if (rc == 0) {
        struct task_copy c = store_task_restart_of(&row);
        rc = pg_task_insert(p, &c.spec, &c.link, now_ms, nid);
        store_task_row_free(&row);
    }
    rc = pg_op_end(p, rc);
    if (rc == 0)
        memcpy(id_out, nid, sizeof(nid));
    return rc;
}

/* The task's row is locked before its status is judged: of two masters ending one task with a
 * retry, the second sees it ended and makes no second attempt (1). */
int pg_task_retry(struct store *s, const char *id, enum task_status to, int exit_code,
                  const char *error, int64_t eligible_ms, int64_t now_ms,
                  char id_out[TASK_ID_LEN + 1])
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    rc = pg_op_begin(p);
    if (rc < 0)
        return rc;
    struct task_row row;
    char nid[TASK_ID_LEN + 1];
    rc = task_load_sql(p, sql_task_get_locked, id, &row);
    if (rc < 0)
        return pg_op_end(p, rc);
    if (!task_transition_allowed(row.status, to)) {
        rc = 1;
    } else {
        char from[32];
        snprintf(from, sizeof(from), "{%s}", task_status_name(row.status));
        rc = task_move(p, id, from, to, 0, exit_code, error, now_ms, NULL);
        struct task_copy c = store_task_retry_of(&row, eligible_ms);
        if (rc == 0)
            rc = pg_task_insert(p, &c.spec, &c.link, now_ms, nid);
    }
    store_task_row_free(&row);
    rc = pg_op_end(p, rc);
    if (rc == 0)
        memcpy(id_out, nid, sizeof(nid));
    return rc;
}

/* ---- Waiting retries ---- */

/* Both walk tasks_waiting (the "eligible_ms > 0" lets the planner use the partial index). Reads
 * only: any master may ask, each wakes its own nodes. */
static const char sql_task_wake_next[] =
    "SELECT coalesce(min(eligible_ms), 0) FROM tasks"
    " WHERE status = 'pending' AND eligible_ms > 0 AND eligible_ms > $1";
static const char sql_task_wake_nodes[] =
    "SELECT DISTINCT node_key, labels FROM tasks WHERE status = 'pending'"
    " AND eligible_ms > 0 AND eligible_ms > $1 AND eligible_ms <= $2";

int pg_task_next_eligible(struct store *s, int64_t after_ms, int64_t *at_ms)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_int(&pp, after_ms);
    PGresult *res =
        pg_query(p, "finding the next retry's time", "tasks", sql_task_wake_next, &pp, &rc);
    if (!res)
        return rc;
    *at_ms = pg_int(res, 0, 0);
    PQclear(res);
    return 0;
}

/* Collects first: the result is read whole before the first callback. */
int pg_task_eligible_nodes(struct store *s, int64_t after_ms, int64_t until_ms,
                           int (*cb)(void *ctx, const char *node_key, const char *labels),
                           void *ctx)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_int(&pp, after_ms);
    pg_param_int(&pp, until_ms);
    PGresult *res =
        pg_query(p, "listing the nodes of retries due", "tasks", sql_task_wake_nodes, &pp, &rc);
    if (!res)
        return rc;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++)
        rc = cb(ctx, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
    PQclear(res);
    return rc;
}

/* ---- The claim ---- */

/*
 * Picks and assigns in one statement. Each candidate query walks tasks_pending in the dispatch
 * order (priority, then age: created_ms, seq) and takes the first row that is not locked and
 * still matches once locked: a task another master is claiming is skipped, not waited for, and a
 * task another master claimed and committed no longer matches (READ COMMITTED re-checks a locked
 * row's new version), so no task is handed out twice. coalesce evaluates its second argument (the
 * unaddressed tasks) only when the first (those addressed to the node) found none, so only the
 * task taken is locked.
 * The label selector is tested in SQL, as labels_match does (every label of the task's selector
 * is one of the node's: array containment of the '\n'-joined forms), so that the skip-locked walk
 * passes over non-matching tasks without a round trip per candidate. ($2 '' is the empty array.)
 */
#define PICK_FROM(target)                                                                          \
    "(SELECT id FROM tasks WHERE status = 'pending' AND node_key = " target                        \
    " AND eligible_ms <= $3"                                                                       \
    " AND (labels = '' OR string_to_array(labels, E'\\n') <@ string_to_array($2, E'\\n'))"         \
    " ORDER BY priority, created_ms, seq LIMIT 1 FOR UPDATE SKIP LOCKED)"

static const char sql_task_fetch[] =
    "WITH picked AS (SELECT coalesce(" PICK_FROM("$1") ", " PICK_FROM(
        "''") ") AS id),"
              " assigned AS ("
              " UPDATE tasks t SET status = 'assigned', assigned_node = $1, updated_ms = $4,"
              " epoch = epoch + 1, pushed = FALSE FROM picked WHERE t.id = picked.id"
              " RETURNING t.*),"
              " recorded AS (INSERT INTO task_history (task_id, from_status, to_status, at_ms)"
              " SELECT id, 'pending', 'assigned', $4 FROM assigned)"
              " SELECT " TASK_COLS " FROM assigned";

int pg_task_fetch(struct store *s, const char *node_key, const char *node_labels, int64_t now_ms,
                  struct task_row *out)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    /* One statement, but a transaction of its own: a row that cannot be read undoes the claim. */
    rc = pg_op_begin(p);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, node_key);
    pg_param_text(&pp, node_labels ? node_labels : "");
    pg_param_int(&pp, now_ms);
    pg_param_int(&pp, now_ms);
    PGresult *res =
        pg_query(p, "picking a pending task for node", node_key, sql_task_fetch, &pp, &rc);
    bool loaded = false;
    if (res && PQntuples(res) == 1) {
        rc = task_from_res(res, 0, out);
        loaded = rc == 0;
        rc = loaded ? 1 : rc;
    }
    PQclear(res);
    rc = pg_op_end(p, rc);
    if (rc < 0 && loaded)
        store_task_row_free(out);
    return rc;
}

/* The row lock of the UPDATE decides between two masters assigning one task: the second waits,
 * then finds it no longer pending (1). */
static const char sql_task_assign[] =
    "WITH assigned AS ("
    " UPDATE tasks SET status = 'assigned', assigned_node = $2, updated_ms = $3,"
    " epoch = epoch + 1, pushed = $4 WHERE id = $1 AND status = 'pending' RETURNING id)"
    " INSERT INTO task_history (task_id, from_status, to_status, at_ms)"
    " SELECT id, 'pending', 'assigned', $3 FROM assigned";

int pg_task_assign(struct store *s, const char *id, const char *node_key, int64_t now_ms,
                   bool pushed)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, id);
    pg_param_text(&pp, node_key);
    pg_param_int(&pp, now_ms);
    pg_param_bool(&pp, pushed);
    int64_t n = pg_exec(p, "assigning task", id, sql_task_assign, &pp);
    return n < 0 ? (int)n : n == 1 ? 0 : 1;
}

/* ---- Reading one task ---- */

static const char sql_task_epoch[] = "SELECT epoch FROM tasks WHERE id = $1";

int pg_task_epoch(struct store *s, const char *id, uint64_t *out)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, id);
    PGresult *res = pg_query_row(p, "reading task epoch", id, sql_task_epoch, &pp, &rc);
    if (!res)
        return rc;
    *out = (uint64_t)pg_int(res, 0, 0);
    PQclear(res);
    return 0;
}

static const char sql_task_cancel[] =
    "UPDATE tasks SET cancel_requested = 1,"
    " cancel_force = CASE WHEN $2 THEN 1 ELSE cancel_force END, updated_ms = $3 WHERE id = $1";

/* The cancel as news for the master that holds the task's node, delivered at the commit (NOTIFY
 * is transactional). Payload: id, node key, 1 or 0 for force, tab-separated (pg_news). */
static const char sql_task_cancel_news[] =
    "SELECT pg_notify('crawlab_cancels', id || E'\\t' || assigned_node || E'\\t' || cancel_force)"
    " FROM tasks WHERE id = $1";

/* Decided on the status read under the row lock (task_move): a pending task another master is
 * fetching is either cancelled before the fetch sees it or fetched before the cancel, then
 * flagged while the lock is still held. */
int pg_task_request_cancel(struct store *s, const char *id, bool force, int64_t now_ms,
                           enum task_status *status_out)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    rc = pg_op_begin(p);
    if (rc < 0)
        return rc;
    enum task_status status;
    rc =
        task_move(p, id, "{pending}", TASK_CANCELLED, 0, STORE_NO_EXIT_CODE, NULL, now_ms, &status);
    if (rc == 0) {
        status = TASK_CANCELLED;
    } else if (rc == 1 && task_status_terminal(status)) {
        rc = 0;
    } else if (rc == 1) {
        struct pg_params pp;
        pg_params_init(&pp);
        pg_param_text(&pp, id);
        pg_param_bool(&pp, force);
        pg_param_int(&pp, now_ms);
        int64_t n = pg_exec(p, "requesting cancel of task", id, sql_task_cancel, &pp);
        rc = n < 0 ? (int)n : 0;
        if (rc == 0) {
            pg_params_init(&pp);
            pg_param_text(&pp, id);
            n = pg_exec(p, "announcing the cancel of task", id, sql_task_cancel_news, &pp);
            rc = n < 0 ? (int)n : 0;
        }
    }
    rc = pg_op_end(p, rc);
    if (rc == 0 && status_out)
        *status_out = status;
    return rc;
}

/* ---- Listings ---- */

/* Calls cb for each row of res (TASK_COLS first; pos_col >= 0: the row's seq, the page position,
 * in that column). The rows are in memory already, but the contract says these functions stream:
 * re-entering the store from cb is refused the same way on both backends. */
static int stream_tasks(struct pg_store *p, const PGresult *res, int pos_col,
                        int (*cb)(void *ctx, const struct task_row *r),
                        int (*page_cb)(void *ctx, const struct task_row *r,
                                       const struct task_pos *pos),
                        void *ctx)
{
    int rc = 0;
    p->streaming = true;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        struct task_row r;
        rc = task_from_res(res, i, &r);
        if (rc < 0)
            break;
        if (page_cb) {
            struct task_pos pos = {r.created_ms, pg_int(res, i, pos_col)};
            rc = page_cb(ctx, &r, &pos);
        } else {
            rc = cb(ctx, &r);
        }
        store_task_row_free(&r);
    }
    p->streaming = false;
    return rc;
}

/* Filters as store_task_list: $1 status, $2 node (assigned or addressed), NULL: any; $3 limit,
 * NULL: none. The position of a task is (created_ms, seq), seq the insertion order. */
#define TASK_FILTER                                                                                \
    " ($1::text IS NULL OR status = $1)"                                                           \
    " AND ($2::text IS NULL OR assigned_node = $2 OR node_key = $2)"

static const char sql_task_page_first[] = "SELECT " TASK_COLS ", seq FROM tasks WHERE" TASK_FILTER
                                          " ORDER BY created_ms DESC, seq DESC LIMIT $3";
static const char sql_task_page_after[] = "SELECT " TASK_COLS ", seq FROM tasks WHERE" TASK_FILTER
                                          " AND created_ms <= $4 AND (created_ms < $4 OR seq < $5)"
                                          " ORDER BY created_ms DESC, seq DESC LIMIT $3";

/* Both read committed rows only, in one statement: a listing by one master sees the tasks every
 * master committed before it. */
static int list_tasks(
    struct pg_store *p, const char *status, const char *node_key, const struct task_pos *after,
    unsigned limit, int (*cb)(void *ctx, const struct task_row *r),
    int (*page_cb)(void *ctx, const struct task_row *r, const struct task_pos *pos), void *ctx)
{
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, status);
    pg_param_text(&pp, node_key);
    if (limit)
        pg_param_int(&pp, limit);
    else
        pg_param_text(&pp, NULL);
    if (after) {
        pg_param_int(&pp, after->created_ms);
        pg_param_int(&pp, after->rowid);
    }
    int rc = 0;
    PGresult *res = pg_query(p, "listing tasks", status,
                             after ? sql_task_page_after : sql_task_page_first, &pp, &rc);
    if (!res)
        return rc;
    rc = stream_tasks(p, res, PQnfields(res) - 1, cb, page_cb, ctx);
    PQclear(res);
    return rc;
}

int pg_task_list(struct store *s, const char *status, const char *node_key, unsigned limit,
                 int (*cb)(void *ctx, const struct task_row *r), void *ctx)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    return list_tasks(p, status, node_key, NULL, limit, cb, NULL, ctx);
}

int pg_task_page(struct store *s, const char *status, const char *node_key,
                 const struct task_pos *after, unsigned limit,
                 int (*cb)(void *ctx, const struct task_row *r, const struct task_pos *pos),
                 void *ctx)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    return list_tasks(p, status, node_key, after, limit, NULL, cb, ctx);
}

static const char sql_task_pos[] = "SELECT created_ms, seq FROM tasks WHERE id = $1";

int pg_task_pos(struct store *s, const char *id, struct task_pos *out)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, id);
    PGresult *res = pg_query_row(p, "reading the position of task", id, sql_task_pos, &pp, &rc);
    if (!res)
        return rc;
    out->created_ms = pg_int(res, 0, 0);
    out->rowid = pg_int(res, 0, 1);
    PQclear(res);
    return rc;
}

static const char sql_task_counts[] = "SELECT status, count(*) FROM tasks GROUP BY status";
static const char sql_task_counts_of_node[] =
    "SELECT status, count(*) FROM tasks WHERE assigned_node = $1 GROUP BY status";

int pg_task_count_by_status(struct store *s, const char *node_key,
                            uint64_t counts[TASK_STATUS_COUNT])
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    PGresult *res;
    if (node_key) {
        pg_param_text(&pp, node_key);
        res = pg_query(p, "counting tasks by status of node", node_key, sql_task_counts_of_node,
                       &pp, &rc);
    } else {
        res = pg_query(p, "counting tasks by status", "tasks", sql_task_counts, NULL, &rc);
    }
    if (!res)
        return rc;
    memset(counts, 0, sizeof(uint64_t) * TASK_STATUS_COUNT);
    for (int i = 0; i < PQntuples(res); i++) {
        enum task_status st;
        if (task_status_parse(PQgetvalue(res, i, 0), &st) < 0) {
            log_error("store: tasks have an unknown status '%s' in the database",
                      PQgetvalue(res, i, 0));
            rc = -EIO;
            break;
        }
        counts[st] = (uint64_t)pg_int(res, i, 1);
    }
    PQclear(res);
    return rc;
}

/* Ids are lowercase hex, so every id starting with the prefix sorts before prefix + "g" (in C
 * order and in every collation that orders digits before letters, as the common ones do). */
static const char sql_task_prefix[] =
    "SELECT id FROM tasks WHERE id >= $1 AND id < $1 || 'g' ORDER BY id LIMIT $2";

int pg_task_find_prefix(struct store *s, const char *prefix, char (*ids)[TASK_ID_LEN + 1],
                        size_t max)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, prefix);
    pg_param_int(&pp, (int64_t)max + 1);
    PGresult *res = pg_query(p, "looking up task id prefix", prefix, sql_task_prefix, &pp, &rc);
    if (!res)
        return rc;
    int n = PQntuples(res);
    for (int i = 0; i < n && (size_t)i < max; i++)
        pg_copy(ids[i], TASK_ID_LEN + 1, res, i, 0);
    PQclear(res);
    return n;
}

/* Collects first: the rows are read whole before the first callback. */
static const char sql_task_list_by_node[] = "SELECT " TASK_COLS " FROM tasks"
                                            " WHERE assigned_node = $1 AND status = $2"
                                            " ORDER BY created_ms, seq";

int pg_task_list_by_node(struct store *s, const char *node_key, enum task_status status,
                         int (*cb)(void *ctx, const struct task_row *r), void *ctx)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, node_key);
    pg_param_text(&pp, task_status_name(status));
    PGresult *res = pg_query(p, "listing tasks of node", node_key, sql_task_list_by_node, &pp, &rc);
    if (!res)
        return rc;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        struct task_row r;
        rc = task_from_res(res, i, &r);
        if (rc == 0) {
            rc = cb(ctx, &r);
            store_task_row_free(&r);
        }
    }
    PQclear(res);
    return rc;
}

/* The task's row joined to its history: no row at all is an unknown task, one row with NULLs a
 * task without history (it has at least its creation, so only in theory). */
static const char sql_task_history[] =
    "SELECT h.from_status, h.to_status, h.at_ms FROM tasks t"
    " LEFT JOIN task_history h ON h.task_id = t.id WHERE t.id = $1 ORDER BY h.seq";

int pg_task_history(struct store *s, const char *id,
                    int (*cb)(void *ctx, const struct task_history_row *h), void *ctx)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, id);
    PGresult *res = pg_query(p, "reading status history of task", id, sql_task_history, &pp, &rc);
    if (!res)
        return rc;
    rc = PQntuples(res) == 0 ? -ENOENT : 0;
    p->streaming = true;
    for (int i = 0; rc == 0 && i < PQntuples(res) && !pg_is_null(res, i, 0); i++) {
        struct task_history_row h;
        if (task_status_parse(PQgetvalue(res, i, 0), &h.from) < 0 ||
            task_status_parse(PQgetvalue(res, i, 1), &h.to) < 0) {
            log_error("store: task %s has an unknown status in its history", id);
            rc = -EIO;
            break;
        }
        h.at_ms = pg_int(res, i, 2);
        rc = cb(ctx, &h);
    }
    p->streaming = false;
    PQclear(res);
    return rc;
}

/* ---- Retention ---- */

/* The terminal statuses (task_status_terminal), as the purge's queries name them. */
#define ENDED_STATUSES "('finished', 'error', 'cancelled', 'abnormal')"

/* SKIP LOCKED: two masters purging at once take different tasks, and a task whose row another
 * master holds (a log append, a late report) is left for a later purge. */
static const char sql_purge_pick[] =
    "SELECT id FROM tasks"
    " WHERE ended_ms > 0 AND ended_ms < $1 AND status IN " ENDED_STATUSES
    " ORDER BY ended_ms LIMIT $2"
    " FOR UPDATE SKIP LOCKED";
static const char sql_purge_count[] =
    "SELECT count(*) FROM tasks"
    " WHERE ended_ms > 0 AND ended_ms < $1 AND status IN " ENDED_STATUSES;

/* Deletes up to $2 of the task's items, lowest seq first, then its log batches with what is left
 * of $2. Returns how many rows went, and how many items and batches there were (each counted up
 * to $2 + 1): more than went means some are left. */
static const char sql_purge_rows[] =
    "WITH items_gone AS (DELETE FROM items WHERE task_id = $1 AND seq IN"
    " (SELECT seq FROM items WHERE task_id = $1 ORDER BY seq LIMIT $2) RETURNING 1),"
    " logs_gone AS (DELETE FROM task_logs WHERE task_id = $1 AND first_seq IN"
    " (SELECT first_seq FROM task_logs WHERE task_id = $1 ORDER BY first_seq"
    " LIMIT greatest($2 - (SELECT count(*) FROM items_gone), 0)) RETURNING 1)"
    " SELECT (SELECT count(*) FROM items_gone) + (SELECT count(*) FROM logs_gone),"
    " (SELECT count(*) FROM (SELECT 1 FROM items WHERE task_id = $1 LIMIT $2 + 1) i)"
    " + (SELECT count(*) FROM (SELECT 1 FROM task_logs WHERE task_id = $1 LIMIT $2 + 1) l)";

/* The task's history and row; returns how many history rows went. */
static const char sql_purge_task[] =
    "WITH history_gone AS (DELETE FROM task_history WHERE task_id = $1 RETURNING 1),"
    " task_gone AS (DELETE FROM tasks WHERE id = $1)"
    " SELECT count(*) FROM history_gone";

/* Deletes what is left of one task within budget rows: items, then log batches, then history
 * and row. Returns 1 when the task is gone, 0 when the budget ran out first, or -errno. *used
 * counts the rows spent. Inside an operation. */
static int purge_one(struct pg_store *p, const char *id, unsigned budget, unsigned *used)
{
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, id);
    pg_param_int(&pp, budget > *used ? budget - *used : 0);
    int rc = 0;
    PGresult *res = pg_query(p, "purging items and logs of task", id, sql_purge_rows, &pp, &rc);
    if (!res)
        return rc;
    int64_t gone = pg_int(res, 0, 0), seen = pg_int(res, 0, 1);
    PQclear(res);
    *used += (unsigned)gone;
    if (seen > gone)
        return 0;
    pg_params_init(&pp);
    pg_param_text(&pp, id);
    res = pg_query(p, "purging task", id, sql_purge_task, &pp, &rc);
    if (!res)
        return rc;
    *used += (unsigned)pg_int(res, 0, 0) + 1;
    PQclear(res);
    return 1;
}

static int purge_op(struct pg_store *p, int64_t before_ms, unsigned budget, size_t *purged,
                    bool *more)
{
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_int(&pp, before_ms);
    pg_param_int(&pp, (int64_t)budget + 1);
    int rc = 0;
    PGresult *res = pg_query(p, "picking tasks to purge", NULL, sql_purge_pick, &pp, &rc);
    if (!res)
        return rc;
    int n = PQntuples(res), i = 0;
    unsigned used = 0;
    for (; rc == 0 && i < n && (unsigned)i < budget && used < budget; i++) {
        rc = purge_one(p, PQgetvalue(res, i, 0), budget, &used);
        if (rc == 1) {
            (*purged)++;
            rc = 0;
        } else if (rc == 0) {
            break; /* budget spent in the middle of this task */
        }
    }
    PQclear(res);
    if (rc == 0)
        *more = i < n;
    return rc;
}

/* Logs are rows here: a task's log goes with it, in the same transaction. */
int pg_task_purge(struct store *s, int64_t before_ms, unsigned budget, size_t *purged, bool *more)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    rc = pg_op_begin(p);
    if (rc < 0)
        return rc;
    rc = pg_op_end(p, purge_op(p, before_ms, budget, purged, more));
    if (rc < 0) {
        *purged = 0;
        *more = true;
    }
    return rc;
}

/* No log files on PostgreSQL: store_task_purge deleted the logs with their tasks. */
int pg_purge_logs(struct store *s, size_t max, size_t *left)
{
    (void)max;
    int rc = pg_enter(pg_of(s), __func__);
    if (rc == 0 && left)
        *left = 0;
    return rc;
}

int pg_task_count_purgeable(struct store *s, int64_t before_ms, uint64_t *out)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_int(&pp, before_ms);
    PGresult *res = pg_query(p, "counting tasks to purge", NULL, sql_purge_count, &pp, &rc);
    if (!res)
        return rc;
    *out = (uint64_t)pg_int(res, 0, 0);
    PQclear(res);
    return 0;
}
