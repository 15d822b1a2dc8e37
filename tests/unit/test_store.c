#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBPQ
#include <libpq-fe.h>
#endif

#include "check_main.h"
#include "scratch.h"
#include "store/store.h"

/*
 * The store's contract (store.h), on either backend. Every test gets a fresh data dir; the store
 * lives one level below it so that store_open has to create the directory itself. With
 * CRAWLAB_TEST_PG_URI set ("postgres://USER@127.0.0.1:PORT", tests/integration/test_pg.py sets it
 * against a server of its own), the same tests run on PostgreSQL, each in a database of its own
 * made and dropped here; those marked SQLITE_ONLY look at SQLite's files and schemas and are left
 * out there.
 */
static char tmp_root[64];
static char data_dir[128];
static char location[256]; /* what store_open is given: data_dir, or the test's database */
static struct store *st;

#define T0 1700000000000LL

static const char *pg_server(void)
{
    return getenv("CRAWLAB_TEST_PG_URI");
}

#define SQLITE_ONLY(tc, test)                                                                      \
    do {                                                                                           \
        if (!pg_server())                                                                          \
            tcase_add_test(tc, test);                                                              \
    } while (0)

#ifdef HAVE_LIBPQ
/* Runs sql on the server's "postgres" database; fails the test on an error. Returns the first
 * column of the first row as a number, 0 when sql returns no row. */
static long pg_admin(const char *sql)
{
    char uri[256];
    snprintf(uri, sizeof(uri), "%s/postgres", pg_server());
    PGconn *conn = PQconnectdb(uri);
    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "connecting: %s", PQerrorMessage(conn));
    PGresult *res = PQexec(conn, sql);
    ExecStatusType status = PQresultStatus(res);
    ck_assert_msg(status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQresultErrorMessage(res));
    long value = status == PGRES_TUPLES_OK && PQntuples(res) > 0 ? atol(PQgetvalue(res, 0, 0)) : 0;
    PQclear(res);
    PQfinish(conn);
    return value;
}
#endif

static void setup(void)
{
    scratch_make(tmp_root, sizeof(tmp_root), "store");
    snprintf(data_dir, sizeof(data_dir), "%s/data", tmp_root);
    snprintf(location, sizeof(location), "%s", data_dir);
    if (pg_server()) {
#ifdef HAVE_LIBPQ
        char sql[96];
        /* One left by a test that crashed in a process of the same pid goes first. */
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS crawlab_store_%d WITH (FORCE)",
                 (int)getpid());
        pg_admin(sql);
        snprintf(sql, sizeof(sql), "CREATE DATABASE crawlab_store_%d", (int)getpid());
        pg_admin(sql);
        snprintf(location, sizeof(location), "%s/crawlab_store_%d", pg_server(), (int)getpid());
#else
        ck_abort_msg("CRAWLAB_TEST_PG_URI is set but this build has no libpq");
#endif
    }
    ck_assert_int_eq(store_open(location, &st), 0);
}

static void teardown(void)
{
    store_close(st);
    st = NULL;
    scratch_remove(tmp_root);
#ifdef HAVE_LIBPQ
    if (pg_server()) {
        char sql[96];
        snprintf(sql, sizeof(sql), "DROP DATABASE crawlab_store_%d WITH (FORCE)", (int)getpid());
        pg_admin(sql);
    }
#endif
}

static void reopen(void)
{
    store_close(st);
    st = NULL;
    ck_assert_int_eq(store_open(location, &st), 0);
}

/* What version 6 added: the links and retry columns, the wake-up index, and tasks_pending in
 * ascending priority (version 5 had it descending). */
#define UNDO_6                                                                                     \
    "DROP INDEX tasks_waiting; DROP INDEX tasks_pending;"                                          \
    " ALTER TABLE tasks DROP COLUMN restart_of; ALTER TABLE tasks DROP COLUMN retry_of;"           \
    " ALTER TABLE tasks DROP COLUMN attempt; ALTER TABLE tasks DROP COLUMN retries;"               \
    " ALTER TABLE tasks DROP COLUMN retry_delay_ms; ALTER TABLE tasks DROP COLUMN eligible_ms;"    \
    " ALTER TABLE schedules DROP COLUMN retries; ALTER TABLE schedules DROP COLUMN "               \
    "retry_delay_ms;"                                                                              \
    " CREATE INDEX tasks_pending ON tasks(node_key, priority DESC, created_ms)"                    \
    " WHERE status = 'pending';"

/* What version 9 added: schedule zones and all-nodes, the node in a fire's key. */
#define UNDO_9                                                                                     \
    "ALTER TABLE schedules DROP COLUMN tz_name; ALTER TABLE schedules DROP COLUMN all_nodes;"      \
    " CREATE TABLE sf6 (schedule_id INTEGER NOT NULL, fire_s INTEGER NOT NULL,"                    \
    " task_id TEXT NOT NULL, PRIMARY KEY (schedule_id, fire_s)) WITHOUT ROWID;"                    \
    " INSERT INTO sf6 SELECT schedule_id, fire_s, task_id FROM schedule_fires;"                    \
    " DROP TABLE schedule_fires; ALTER TABLE sf6 RENAME TO schedule_fires;"

/* What version 5 added: node labels and states, task and schedule selectors. */
#define UNDO_5                                                                                     \
    " ALTER TABLE nodes DROP COLUMN labels; ALTER TABLE nodes DROP COLUMN state;"                  \
    " ALTER TABLE tasks DROP COLUMN labels; ALTER TABLE schedules DROP COLUMN labels;"

/*
 * Closes the store and makes its database what schema `version` left: drops what each later
 * version added (10: tasks.pushed; 9: schedule zones, all-nodes fires; 8: the spiders table and the
 * tasks' spider columns; 7: the event tables; 6: retries, links and the ascending priority index;
 * 5: labels and node states; 4: the schedule tables; 3: the purge index and journal; 2:
 * tasks.epoch).
 */
static void make_schema(int version)
{
    store_close(st);
    st = NULL;
    char path[256], sql[2048];
    snprintf(path, sizeof(path), "%s/crawlab.db", data_dir);
    snprintf(sql, sizeof(sql), "%s%s%s%s%s%s%s%s%s PRAGMA user_version = %d;",
             version < 10 ? " ALTER TABLE tasks DROP COLUMN pushed;" : "",
             version < 9 ? UNDO_9 : "",
             version < 8 ? " DROP TABLE spiders; DROP INDEX tasks_by_spider;"
                           " ALTER TABLE schedules DROP COLUMN spider;"
                           " ALTER TABLE tasks DROP COLUMN spider;"
                           " ALTER TABLE tasks DROP COLUMN spider_sha256;"
                         : "",
             version < 7 ? " DROP TABLE events; DROP TABLE event_cursors;" : "",
             version < 6 ? UNDO_6 : "", version < 5 ? UNDO_5 : "",
             version < 4 ? "DROP TABLE schedule_fires; DROP TABLE schedules;" : "",
             version < 3 ? " DROP INDEX tasks_ended; DROP TABLE purged_logs;" : "",
             version < 2 ? " ALTER TABLE tasks DROP COLUMN epoch;" : "", version);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

static void log_path(const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/logs/%s.log", data_dir, id);
}

static long long file_size(const char *id)
{
    char path[256];
    log_path(id, path, sizeof(path));
    struct stat sb;
    if (stat(path, &sb) < 0)
        return -1;
    return (long long)sb.st_size;
}

#ifdef HAVE_LIBPQ
/* Runs sql on the test's PostgreSQL database: the first column of its first row ("" for none). */
static long long pg_run(const char *sql)
{
    PGconn *conn = PQconnectdb(location);
    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "connecting: %s", PQerrorMessage(conn));
    PGresult *res = PQexec(conn, sql);
    ExecStatusType rs = PQresultStatus(res);
    ck_assert_msg(rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQresultErrorMessage(res));
    long long n = rs == PGRES_TUPLES_OK && PQntuples(res) ? atoll(PQgetvalue(res, 0, 0)) : 0;
    PQclear(res);
    PQfinish(conn);
    return n;
}
#endif

/* Runs sql, a query of one number (or a change: 0), on the store's database, either backend. */
static long long count_rows(const char *sql)
{
    if (pg_server()) {
#ifdef HAVE_LIBPQ
        return pg_run(sql);
#endif
    }
    sqlite3 *db;
    char path[256];
    snprintf(path, sizeof(path), "%s/crawlab.db", data_dir);
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    int rc = sqlite3_step(q);
    ck_assert(rc == SQLITE_ROW || rc == SQLITE_DONE);
    long long n = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

/* Whether task id's log is stored: its file on SQLite, its rows on PostgreSQL. */
static bool has_log(const char *id)
{
    if (!pg_server())
        return file_size(id) > 0;
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM task_logs WHERE task_id = '%s'", id);
    return count_rows(sql) > 0;
}

static void new_task(const char *name, int priority, const char *node_key, int64_t now_ms,
                     char id[TASK_ID_LEN + 1])
{
    struct task_new t = {.name = name, .cmd = "echo", .priority = priority, .node_key = node_key};
    ck_assert_int_eq(store_task_create(st, &t, now_ms, id), 0);
}

static void get_task(const char *id, struct task_row *r)
{
    ck_assert_int_eq(store_task_get(st, id, r), 0);
}

/* Appends NUL-terminated lines; returns store_log_append's result. */
static int append_lines(const char *id, uint64_t first_seq, size_t n, const char *const *lines,
                        size_t *accepted)
{
    size_t lens[64];
    ck_assert_uint_le(n, 64);
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(lines[i]);
    return store_log_append(st, id, lines, lens, n, first_seq, accepted);
}

struct got_lines {
    size_t n;
    uint64_t seq[512];
    char *text[512];
    size_t len[512];
    size_t stop_after; /* 0 = never stop */
};

static int collect_line(void *ctx, uint64_t seq, const char *line, size_t len)
{
    struct got_lines *g = ctx;
    ck_assert_uint_lt(g->n, 512);
    g->seq[g->n] = seq;
    g->text[g->n] = malloc(len + 1);
    memcpy(g->text[g->n], line, len);
    g->text[g->n][len] = '\0';
    g->len[g->n] = len;
    g->n++;
    return g->stop_after && g->n == g->stop_after ? 7 : 0;
}

static void got_free(struct got_lines *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->text[i]);
    g->n = 0;
}

static void read_all_lines(const char *id, uint64_t from, struct got_lines *g)
{
    memset(g, 0, sizeof(*g));
    ck_assert_int_eq(store_log_read(st, id, from, collect_line, g), 0);
}

/* Reads the whole log back and checks it is exactly `want`, numbered from 1. */
static void assert_log_is(const char *id, size_t n, const char *const *want)
{
    struct got_lines g;
    read_all_lines(id, 1, &g);
    ck_assert_uint_eq(g.n, n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(g.seq[i], i + 1);
        ck_assert_str_eq(g.text[i], want[i]);
    }
    got_free(&g);
    struct task_row r;
    get_task(id, &r);
    ck_assert_uint_eq(r.log_lines, n);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += strlen(want[i]) + 1;
    ck_assert_uint_eq(r.log_bytes, bytes);
    store_task_row_free(&r);
}

/* ---- Open ---- */

START_TEST(test_open_creates_data_dir_logs_dir_and_database)
{
    char path[256];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/logs", data_dir);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert(S_ISDIR(sb.st_mode));
    snprintf(path, sizeof(path), "%s/crawlab.db", data_dir);
    ck_assert_int_eq(stat(path, &sb), 0);
}
END_TEST

START_TEST(test_second_open_of_the_same_data_dir_is_refused)
{
    struct store *other = NULL;
    ck_assert_int_eq(store_open(location, &other), -EBUSY);
    ck_assert_ptr_null(other);
}
END_TEST

START_TEST(test_begin_twice_and_commit_without_begin_are_refused)
{
    ck_assert_int_eq(store_commit(st), -EINVAL);
    ck_assert_int_eq(store_rollback(st), -EINVAL);
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(store_begin(st), -EALREADY);
    ck_assert_int_eq(store_commit(st), 0);
}
END_TEST

/* Whether the store holds a transaction open at this moment: on SQLite, another connection
 * cannot take the write lock; on PostgreSQL, a session of the test's database is idle in one. */
static bool store_holds_a_transaction(void)
{
    if (pg_server()) {
#ifdef HAVE_LIBPQ
        char sql[160];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM pg_stat_activity WHERE datname = 'crawlab_store_%d' AND "
                 "state = 'idle in transaction'",
                 (int)getpid());
        return pg_admin(sql) > 0;
#endif
    }
    char path[256];
    snprintf(path, sizeof(path), "%s/crawlab.db", data_dir);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    else
        ck_assert_int_eq(rc, SQLITE_BUSY);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    return rc != SQLITE_OK;
}

/* A group in which nothing changed (a loop iteration of heartbeats) costs nothing: its
 * transaction begins with its first statement and lasts to its commit. */
START_TEST(test_a_group_begins_its_transaction_with_its_first_change)
{
    char id[25];
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert(!store_holds_a_transaction());
    ck_assert_int_eq(store_commit(st), 0);

    ck_assert_int_eq(store_begin(st), 0);
    new_task("t", 0, NULL, T0, id);
    ck_assert(store_holds_a_transaction());
    ck_assert_int_eq(store_commit(st), 0);
    ck_assert(!store_holds_a_transaction());
    struct task_row r;
    get_task(id, &r);
    store_task_row_free(&r);

    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(store_rollback(st), 0);
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(store_task_request_cancel(st, id, false, T0 + 1, NULL), 0);
    ck_assert(store_holds_a_transaction());
    ck_assert_int_eq(store_rollback(st), 0);
    ck_assert(!store_holds_a_transaction());
    get_task(id, &r);
    ck_assert_int_eq(r.status, TASK_PENDING);
    store_task_row_free(&r);
}
END_TEST

/* store_changed: a group is changed by the first call that may change a row, not by reads, and
 * is unchanged again once committed or rolled back. */
START_TEST(test_a_group_is_changed_by_a_write_not_by_a_read)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert(!store_changed(st));
    struct task_row r;
    get_task(id, &r);
    store_task_row_free(&r);
    struct node_row n;
    ck_assert_int_eq(store_node_get(st, "node-a", &n), -ENOENT);
    ck_assert(!store_changed(st));
    /* A change that finds no row still counts: the rule asks nothing of the engine. */
    ck_assert_int_eq(store_node_touch(st, "node-a", T0), -ENOENT);
    ck_assert(store_changed(st));
    ck_assert_int_eq(store_commit(st), 0);
    ck_assert(!store_changed(st));

    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(store_task_request_cancel(st, id, false, T0 + 1, NULL), 0);
    ck_assert(store_changed(st));
    ck_assert_int_eq(store_rollback(st), 0);
    ck_assert(!store_changed(st));
}
END_TEST

/* ---- Nodes ---- */

START_TEST(test_node_upsert_creates_then_updates_and_marks_online)
{
    struct node_row n;
    ck_assert_int_eq(store_node_get(st, "node-a", &n), -ENOENT);
    ck_assert_int_eq(store_node_upsert(st, "node-a", "alpha", 4, "0.1.0", NULL, T0), 0);
    ck_assert_int_eq(store_node_get(st, "node-a", &n), 0);
    ck_assert_str_eq(n.key, "node-a");
    ck_assert_str_eq(n.name, "alpha");
    ck_assert_str_eq(n.status, "online");
    ck_assert_int_eq(n.max_runners, 4);
    ck_assert_str_eq(n.version, "0.1.0");
    ck_assert_int_eq(n.created_ms, T0);
    ck_assert_int_eq(n.last_seen_ms, T0);

    ck_assert_int_eq(store_node_set_status(st, "node-a", STORE_NODE_OFFLINE, T0 + 5), 0);
    ck_assert_int_eq(store_node_upsert(st, "node-a", "alpha2", 8, NULL, NULL, T0 + 10), 0);
    ck_assert_int_eq(store_node_get(st, "node-a", &n), 0);
    ck_assert_str_eq(n.name, "alpha2");
    ck_assert_str_eq(n.status, "online");
    ck_assert_int_eq(n.max_runners, 8);
    ck_assert_str_eq(n.version, "");
    ck_assert_int_eq(n.created_ms, T0);
    ck_assert_int_eq(n.last_seen_ms, T0 + 10);
}
END_TEST

START_TEST(test_node_status_and_touch_change_known_nodes_only)
{
    struct node_row n;
    ck_assert_int_eq(store_node_touch(st, "ghost", T0), -ENOENT);
    ck_assert_int_eq(store_node_set_status(st, "ghost", "offline", T0), -ENOENT);
    ck_assert_int_eq(store_node_upsert(st, "node-a", "a", 1, "v", NULL, T0), 0);
    ck_assert_int_eq(store_node_set_status(st, "node-a", "sleeping", T0), -EINVAL);
    ck_assert_int_eq(store_node_touch(st, "node-a", T0 + 100), 0);
    ck_assert_int_eq(store_node_set_status(st, "node-a", "offline", T0 + 200), 0);
    ck_assert_int_eq(store_node_get(st, "node-a", &n), 0);
    ck_assert_str_eq(n.status, "offline");
    /* Going offline is noticed later than the node was last seen: last_seen stays. */
    ck_assert_int_eq(n.last_seen_ms, T0 + 100);
}
END_TEST

START_TEST(test_node_upsert_rejects_empty_key_and_oversized_fields)
{
    char big[200];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(store_node_upsert(st, "", "a", 1, "v", NULL, T0), -EINVAL);
    ck_assert_int_eq(store_node_upsert(st, NULL, "a", 1, "v", NULL, T0), -EINVAL);
    ck_assert_int_eq(store_node_upsert(st, big, "a", 1, "v", NULL, T0), -EINVAL);
    ck_assert_int_eq(store_node_upsert(st, "k", big, 1, "v", NULL, T0), -EINVAL);
    ck_assert_int_eq(store_node_upsert(st, "k", "a", 1, big, NULL, T0), -EINVAL);
    ck_assert_int_eq(store_node_upsert(st, "k", "a", -1, "v", NULL, T0), -EINVAL);
    big[LIMIT_NODE_KEY_MAX] = '\0';
    ck_assert_int_eq(store_node_upsert(st, big, "a", 1, "v", NULL, T0), 0);
}
END_TEST

struct node_walk {
    char keys[8][LIMIT_NODE_KEY_MAX + 1];
    size_t n;
};

/* Marks each listed node offline from inside the callback, as a liveness sweep would. */
static int take_node_offline(void *ctx, const struct node_row *r)
{
    struct node_walk *w = ctx;
    strcpy(w->keys[w->n++], r->key);
    return store_node_set_status(st, r->key, STORE_NODE_OFFLINE, T0 + 1);
}

START_TEST(test_node_list_is_ordered_by_key_and_its_callback_may_change_nodes)
{
    ck_assert_int_eq(store_node_upsert(st, "node-c", "c", 1, "", NULL, T0), 0);
    ck_assert_int_eq(store_node_upsert(st, "node-a", "a", 1, "", NULL, T0), 0);
    ck_assert_int_eq(store_node_upsert(st, "node-b", "b", 1, "", NULL, T0), 0);
    struct node_walk w = {0};
    ck_assert_int_eq(store_node_list(st, take_node_offline, &w), 0);
    ck_assert_uint_eq(w.n, 3);
    ck_assert_str_eq(w.keys[0], "node-a");
    ck_assert_str_eq(w.keys[1], "node-b");
    ck_assert_str_eq(w.keys[2], "node-c");
    struct node_row n;
    ck_assert_int_eq(store_node_get(st, "node-b", &n), 0);
    ck_assert_str_eq(n.status, "offline");
}
END_TEST

/* ---- Tasks ---- */

START_TEST(test_task_create_round_trips_every_field)
{
    struct task_new t = {.name = "crawl books",
                         .cmd = "python3 spider.py",
                         .param = "--pages 3",
                         .env_json = "{\"A\":\"1\"}",
                         .priority = 7,
                         .timeout_ms = 60000,
                         .node_key = "node-a"};
    char id[TASK_ID_LEN + 1];
    ck_assert_int_eq(store_task_create(st, &t, T0, id), 0);
    ck_assert(task_id_valid(id));
    struct task_row r;
    get_task(id, &r);
    ck_assert_str_eq(r.id, id);
    ck_assert_str_eq(r.name, "crawl books");
    ck_assert_str_eq(r.cmd, "python3 spider.py");
    ck_assert_str_eq(r.param, "--pages 3");
    ck_assert_str_eq(r.env_json, "{\"A\":\"1\"}");
    ck_assert_int_eq(r.priority, 7);
    ck_assert_int_eq(r.timeout_ms, 60000);
    ck_assert_str_eq(r.node_key, "node-a");
    ck_assert_str_eq(r.assigned_node, "");
    ck_assert_int_eq(r.status, TASK_PENDING);
    ck_assert_int_eq(r.pid, 0);
    ck_assert_int_eq(r.exit_code, STORE_NO_EXIT_CODE);
    ck_assert_str_eq(r.error, "");
    ck_assert_uint_eq(r.log_lines, 0);
    ck_assert_uint_eq(r.data_items, 0);
    ck_assert_uint_eq(r.log_bytes, 0);
    ck_assert(!r.cancel_requested);
    ck_assert(!r.cancel_force);
    ck_assert_int_eq(r.created_ms, T0);
    ck_assert_int_eq(r.updated_ms, T0);
    ck_assert_int_eq(r.started_ms, 0);
    ck_assert_int_eq(r.ended_ms, 0);
    store_task_row_free(&r);
    ck_assert_ptr_null(r.cmd);
}
END_TEST

START_TEST(test_task_create_fills_defaults_for_missing_optional_fields)
{
    struct task_new t = {.cmd = "true"};
    char id[TASK_ID_LEN + 1];
    ck_assert_int_eq(store_task_create(st, &t, T0, id), 0);
    struct task_row r;
    get_task(id, &r);
    ck_assert_str_eq(r.name, "");
    ck_assert_str_eq(r.param, "");
    ck_assert_str_eq(r.env_json, "{}");
    ck_assert_str_eq(r.node_key, "");
    store_task_row_free(&r);
}
END_TEST

START_TEST(test_task_create_rejects_missing_cmd_and_oversized_name)
{
    char id[TASK_ID_LEN + 1];
    char big[200];
    memset(big, 'n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct task_new t = {.cmd = NULL};
    ck_assert_int_eq(store_task_create(st, &t, T0, id), -EINVAL);
    t.cmd = "";
    ck_assert_int_eq(store_task_create(st, &t, T0, id), -EINVAL);
    t.cmd = "true";
    t.name = big;
    ck_assert_int_eq(store_task_create(st, &t, T0, id), -EINVAL);
    t.name = NULL;
    t.timeout_ms = -1;
    ck_assert_int_eq(store_task_create(st, &t, T0, id), -EINVAL);
}
END_TEST

START_TEST(test_task_ids_are_unique_and_carry_the_creation_second)
{
    char ids[50][TASK_ID_LEN + 1];
    for (int i = 0; i < 50; i++)
        new_task("t", 0, NULL, T0, ids[i]);
    for (int i = 0; i < 50; i++) {
        ck_assert(task_id_valid(ids[i]));
        /* T0 / 1000 = 1700000000 = 0x6553f100 */
        ck_assert_int_eq(strncmp(ids[i], "6553f100", 8), 0);
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(ids[i], ids[j]);
    }
}
END_TEST

START_TEST(test_task_get_refuses_malformed_and_unknown_ids)
{
    struct task_row r;
    ck_assert_int_eq(store_task_get(st, "nope", &r), -EINVAL);
    ck_assert_int_eq(store_task_get(st, "0123456789abcdef01234567", &r), -ENOENT);
}
END_TEST

struct history {
    size_t n;
    struct task_history_row h[16];
};

static int collect_history(void *ctx, const struct task_history_row *h)
{
    struct history *hist = ctx;
    ck_assert_uint_lt(hist->n, 16);
    hist->h[hist->n++] = *h;
    return 0;
}

/* Fetches for node and returns the id, or "" when nothing was assigned. */
static void fetch_id(const char *node, int64_t now_ms, char id[TASK_ID_LEN + 1])
{
    struct task_row r;
    int rc = store_task_fetch(st, node, NULL, now_ms, &r);
    ck_assert_int_ge(rc, 0);
    if (rc == 0) {
        id[0] = '\0';
        return;
    }
    ck_assert_int_eq(r.status, TASK_ASSIGNED);
    ck_assert_str_eq(r.assigned_node, node);
    strcpy(id, r.id);
    store_task_row_free(&r);
}

START_TEST(test_fetch_prefers_tasks_addressed_to_the_node)
{
    char any_high[25], mine_low[25], got[25];
    new_task("any", 100, NULL, T0, any_high);
    new_task("mine", -5, "node-a", T0 + 1, mine_low);
    fetch_id("node-a", T0 + 2, got);
    ck_assert_str_eq(got, mine_low);
    fetch_id("node-a", T0 + 3, got);
    ck_assert_str_eq(got, any_high);
}
END_TEST

START_TEST(test_count_by_status_counts_every_status_zero_included)
{
    uint64_t counts[TASK_STATUS_COUNT];
    ck_assert_int_eq(store_task_count_by_status(st, NULL, counts), 0);
    for (int i = 0; i < TASK_STATUS_COUNT; i++)
        ck_assert_uint_eq(counts[i], 0);
    char a[25], b[25], c[25], got[25];
    new_task("a", 0, NULL, T0, a);
    new_task("b", 0, NULL, T0 + 1, b);
    new_task("c", 0, NULL, T0 + 2, c);
    fetch_id("node-a", T0 + 3, got);
    ck_assert_int_eq(
        store_task_set_status(st, got, TASK_RUNNING, 42, STORE_NO_EXIT_CODE, NULL, T0 + 4), 0);
    ck_assert_int_eq(store_task_set_status(st, got, TASK_FINISHED, 0, 0, NULL, T0 + 5), 0);
    fetch_id("node-a", T0 + 6, got);
    ck_assert_int_eq(store_task_count_by_status(st, NULL, counts), 0);
    ck_assert_uint_eq(counts[TASK_PENDING], 1);
    ck_assert_uint_eq(counts[TASK_ASSIGNED], 1);
    ck_assert_uint_eq(counts[TASK_FINISHED], 1);
    ck_assert_uint_eq(counts[TASK_RUNNING], 0);
    ck_assert_uint_eq(counts[TASK_CANCELLED], 0);
    /* One node's: the pending task is nobody's yet. */
    ck_assert_int_eq(store_task_count_by_status(st, "node-a", counts), 0);
    ck_assert_uint_eq(counts[TASK_PENDING], 0);
    ck_assert_uint_eq(counts[TASK_ASSIGNED], 1);
    ck_assert_uint_eq(counts[TASK_FINISHED], 1);
    ck_assert_int_eq(store_task_count_by_status(st, "node-b", counts), 0);
    for (int i = 0; i < TASK_STATUS_COUNT; i++)
        ck_assert_uint_eq(counts[i], 0);
    ck_assert_int_eq(store_task_count_by_status(st, "", counts), -EINVAL);
}
END_TEST

START_TEST(test_fetch_orders_by_priority_then_age)
{
    char old_first[25], new_later[25], old_later[25], same_ms_second[25], got[25];
    /* Lower numbers first, as Crawlab's queue has it. Age is the creation time, not the
     * insertion order: "new later" is stored first. */
    new_task("new later", 5, NULL, T0 + 2, new_later);
    new_task("old first", 1, NULL, T0, old_first);
    new_task("old later", 5, NULL, T0 + 1, old_later);
    new_task("same ms", 1, NULL, T0, same_ms_second);
    fetch_id("node-a", T0 + 10, got);
    ck_assert_str_eq(got, old_first);
    fetch_id("node-a", T0 + 10, got);
    ck_assert_str_eq(got, same_ms_second);
    fetch_id("node-a", T0 + 10, got);
    ck_assert_str_eq(got, old_later);
    fetch_id("node-a", T0 + 10, got);
    ck_assert_str_eq(got, new_later);
}
END_TEST

START_TEST(test_fetch_never_returns_another_nodes_task)
{
    char theirs[25], got[25];
    new_task("for b", 100, "node-b", T0, theirs);
    fetch_id("node-a", T0 + 1, got);
    ck_assert_str_eq(got, "");
    fetch_id("node-b", T0 + 2, got);
    ck_assert_str_eq(got, theirs);
}
END_TEST

START_TEST(test_fetch_never_returns_a_task_twice)
{
    char ids[5][25], got[25];
    for (int i = 0; i < 5; i++)
        new_task("t", 0, NULL, T0 + i, ids[i]);
    const char *nodes[] = {"node-a", "node-b", "node-c"};
    for (int i = 0; i < 5; i++) {
        fetch_id(nodes[i % 3], T0 + 10, got);
        ck_assert_str_eq(got, ids[i]);
    }
    for (int i = 0; i < 3; i++) {
        fetch_id(nodes[i], T0 + 20, got);
        ck_assert_str_eq(got, "");
    }
}
END_TEST

START_TEST(test_fetch_records_the_assignment_in_history)
{
    char id[25], got[25];
    new_task("t", 0, NULL, T0, id);
    fetch_id("node-a", T0 + 5, got);
    struct task_row r;
    get_task(id, &r);
    ck_assert_int_eq(r.updated_ms, T0 + 5);
    store_task_row_free(&r);
    struct history h = {0};
    ck_assert_int_eq(store_task_history(st, id, collect_history, &h), 0);
    ck_assert_uint_eq(h.n, 1);
    ck_assert_int_eq(h.h[0].from, TASK_PENDING);
    ck_assert_int_eq(h.h[0].to, TASK_ASSIGNED);
    ck_assert_int_eq(h.h[0].at_ms, T0 + 5);
}
END_TEST

START_TEST(test_fetch_rejects_an_empty_node_key)
{
    struct task_row r;
    ck_assert_int_eq(store_task_fetch(st, "", NULL, T0, &r), -EINVAL);
}
END_TEST

START_TEST(test_status_changes_apply_allowed_moves_and_record_history)
{
    char id[25], got[25];
    new_task("t", 0, NULL, T0, id);
    fetch_id("node-a", T0 + 1, got);
    ck_assert_int_eq(
        store_task_set_status(st, id, TASK_RUNNING, 4242, STORE_NO_EXIT_CODE, NULL, T0 + 2), 0);
    ck_assert_int_eq(store_task_set_status(st, id, TASK_FINISHED, 0, 0, NULL, T0 + 3), 0);

    struct task_row r;
    get_task(id, &r);
    ck_assert_int_eq(r.status, TASK_FINISHED);
    ck_assert_int_eq(r.pid, 4242);
    ck_assert_int_eq(r.exit_code, 0);
    ck_assert_int_eq(r.started_ms, T0 + 2);
    ck_assert_int_eq(r.ended_ms, T0 + 3);
    ck_assert_int_eq(r.updated_ms, T0 + 3);
    store_task_row_free(&r);

    struct history h = {0};
    ck_assert_int_eq(store_task_history(st, id, collect_history, &h), 0);
    ck_assert_uint_eq(h.n, 3);
    ck_assert_int_eq(h.h[0].from, TASK_PENDING);
    ck_assert_int_eq(h.h[0].to, TASK_ASSIGNED);
    ck_assert_int_eq(h.h[0].at_ms, T0 + 1);
    ck_assert_int_eq(h.h[1].from, TASK_ASSIGNED);
    ck_assert_int_eq(h.h[1].to, TASK_RUNNING);
    ck_assert_int_eq(h.h[1].at_ms, T0 + 2);
    ck_assert_int_eq(h.h[2].from, TASK_RUNNING);
    ck_assert_int_eq(h.h[2].to, TASK_FINISHED);
    ck_assert_int_eq(h.h[2].at_ms, T0 + 3);
}
END_TEST

START_TEST(test_status_reports_are_idempotent_and_backward_moves_are_ignored)
{
    char id[25], got[25];
    new_task("t", 0, NULL, T0, id);
    fetch_id("node-a", T0 + 1, got);
    ck_assert_int_eq(
        store_task_set_status(st, id, TASK_RUNNING, 10, STORE_NO_EXIT_CODE, NULL, T0 + 2), 0);
    /* The same report again changes nothing, not even the pid. */
    ck_assert_int_eq(
        store_task_set_status(st, id, TASK_RUNNING, 11, STORE_NO_EXIT_CODE, NULL, T0 + 3), 1);
    ck_assert_int_eq(store_task_set_status(st, id, TASK_ERROR, 0, 2, "exit 2", T0 + 4), 0);
    ck_assert_int_eq(store_task_set_status(st, id, TASK_ERROR, 0, 3, "again", T0 + 5), 1);
    ck_assert_int_eq(
        store_task_set_status(st, id, TASK_RUNNING, 12, STORE_NO_EXIT_CODE, NULL, T0 + 6), 1);
    ck_assert_int_eq(store_task_set_status(st, id, TASK_FINISHED, 0, 0, NULL, T0 + 7), 1);

    struct task_row r;
    get_task(id, &r);
    ck_assert_int_eq(r.status, TASK_ERROR);
    ck_assert_int_eq(r.pid, 10);
    ck_assert_int_eq(r.exit_code, 2);
    ck_assert_str_eq(r.error, "exit 2");
    ck_assert_int_eq(r.ended_ms, T0 + 4);
    ck_assert_int_eq(r.updated_ms, T0 + 4);
    store_task_row_free(&r);

    struct history h = {0};
    ck_assert_int_eq(store_task_history(st, id, collect_history, &h), 0);
    ck_assert_uint_eq(h.n, 3);
}
END_TEST

START_TEST(test_pending_task_cannot_jump_to_running)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    ck_assert_int_eq(
        store_task_set_status(st, id, TASK_RUNNING, 1, STORE_NO_EXIT_CODE, NULL, T0 + 1), 1);
    struct task_row r;
    get_task(id, &r);
    ck_assert_int_eq(r.status, TASK_PENDING);
    store_task_row_free(&r);
}
END_TEST

START_TEST(test_status_change_of_unknown_or_malformed_task_is_refused)
{
    ck_assert_int_eq(store_task_set_status(st, "0123456789abcdef01234567", TASK_RUNNING, 1,
                                           STORE_NO_EXIT_CODE, NULL, T0),
                     -ENOENT);
    ck_assert_int_eq(
        store_task_set_status(st, "bad", TASK_RUNNING, 1, STORE_NO_EXIT_CODE, NULL, T0), -EINVAL);
    char id[25];
    new_task("t", 0, NULL, T0, id);
    ck_assert_int_eq(
        store_task_set_status(st, id, TASK_STATUS_COUNT, 1, STORE_NO_EXIT_CODE, NULL, T0), -EINVAL);
}
END_TEST

START_TEST(test_assigned_task_returned_to_pending_can_be_fetched_by_another_node)
{
    char id[25], got[25];
    new_task("t", 0, NULL, T0, id);
    fetch_id("node-a", T0 + 1, got);
    ck_assert_int_eq(
        store_task_set_status(st, id, TASK_PENDING, 0, STORE_NO_EXIT_CODE, NULL, T0 + 2), 0);
    struct task_row r;
    get_task(id, &r);
    ck_assert_str_eq(r.assigned_node, "");
    store_task_row_free(&r);
    fetch_id("node-b", T0 + 3, got);
    ck_assert_str_eq(got, id);
}
END_TEST

static uint64_t epoch_of(const char *id)
{
    struct task_row r;
    get_task(id, &r);
    uint64_t e = r.epoch;
    store_task_row_free(&r);
    uint64_t alone;
    ck_assert_int_eq(store_task_epoch(st, id, &alone), 0);
    ck_assert_uint_eq(alone, e);
    return e;
}

START_TEST(test_epoch_counts_every_assignment_and_every_return_to_pending)
{
    char id[25], got[25];
    new_task("t", 0, NULL, T0, id);
    ck_assert_uint_eq(epoch_of(id), 0);
    fetch_id("node-a", T0 + 1, got);
    ck_assert_uint_eq(epoch_of(id), 1);
    /* reports of the assignment leave it alone */
    ck_assert_int_eq(
        store_task_set_status(st, id, TASK_NODE_DISCONNECTED, 0, STORE_NO_EXIT_CODE, NULL, T0 + 2),
        0);
    ck_assert_uint_eq(epoch_of(id), 1);
    ck_assert_int_eq(
        store_task_set_status(st, id, TASK_PENDING, 0, STORE_NO_EXIT_CODE, NULL, T0 + 3), 0);
    ck_assert_uint_eq(epoch_of(id), 2);
    ck_assert_int_eq(store_task_assign(st, id, "node-a", T0 + 4, false), 0);
    ck_assert_uint_eq(epoch_of(id), 3);
    /* an assignment that does not happen counts nothing */
    ck_assert_int_eq(store_task_assign(st, id, "node-b", T0 + 5, false), 1);
    ck_assert_uint_eq(epoch_of(id), 3);
    reopen();
    ck_assert_uint_eq(epoch_of(id), 3);
    uint64_t e;
    ck_assert_int_eq(store_task_epoch(st, "0123456789abcdef01234567", &e), -ENOENT);
    ck_assert_int_eq(store_task_epoch(st, "bad", &e), -EINVAL);
}
END_TEST

START_TEST(test_running_without_a_pid_takes_the_pid_of_the_next_running_report)
{
    char id[25], got[25];
    new_task("t", 0, NULL, T0, id);
    fetch_id("node-a", T0 + 1, got);
    ck_assert_int_eq(
        store_task_set_status(st, id, TASK_RUNNING, 0, STORE_NO_EXIT_CODE, NULL, T0 + 2), 0);
    ck_assert_int_eq(
        store_task_set_status(st, id, TASK_RUNNING, 31, STORE_NO_EXIT_CODE, NULL, T0 + 3), 1);
    ck_assert_int_eq(
        store_task_set_status(st, id, TASK_RUNNING, 32, STORE_NO_EXIT_CODE, NULL, T0 + 4), 1);
    struct task_row r;
    get_task(id, &r);
    ck_assert_int_eq(r.pid, 31);
    ck_assert_int_eq(r.started_ms, T0 + 2);
    store_task_row_free(&r);
}
END_TEST

static void running_task_with_retries(int retries, char id[25]);

/* Moves task id as store_task_set_status(to, pid, exit_code, error, now) (or, with retry, as
 * store_task_retry ends it) and checks that the row read back is the one
 * store_task_row_after_move makes from the row read before. */
static void move_matches_after_move(const char *id, bool retry, enum task_status to, int pid,
                                    int exit_code, const char *error, int64_t now)
{
    struct task_row before, read, made;
    get_task(id, &before);
    char next[25];
    if (retry)
        ck_assert_int_eq(store_task_retry(st, id, to, exit_code, error, now, now, next), 0);
    else
        ck_assert_int_eq(store_task_set_status(st, id, to, pid, exit_code, error, now), 0);
    get_task(id, &read);
    store_task_row_after_move(&before, to, pid, exit_code, error, now, &made);
    ck_assert_str_eq(made.id, read.id);
    ck_assert_str_eq(made.name, read.name);
    ck_assert_int_eq(made.status, read.status);
    ck_assert_int_eq(made.pid, read.pid);
    ck_assert_int_eq(made.exit_code, read.exit_code);
    ck_assert_str_eq(made.error, read.error);
    ck_assert_str_eq(made.assigned_node, read.assigned_node);
    ck_assert_int_eq(made.pushed, read.pushed);
    ck_assert_uint_eq(made.epoch, read.epoch);
    ck_assert_int_eq(made.created_ms, read.created_ms);
    ck_assert_int_eq(made.updated_ms, read.updated_ms);
    ck_assert_int_eq(made.started_ms, read.started_ms);
    ck_assert_int_eq(made.ended_ms, read.ended_ms);
    ck_assert_uint_eq(made.log_lines, read.log_lines);
    ck_assert_uint_eq(made.data_items, read.data_items);
    ck_assert_int_eq(made.attempt, read.attempt);
    ck_assert_str_eq(made.retry_of, read.retry_of);
    store_task_row_free(&before);
    store_task_row_free(&read);
}

START_TEST(test_the_row_after_a_move_is_the_row_the_store_leaves)
{
    char a[25], b[25], c[25], got[25];
    new_task("a", 0, "node-a", T0, a);
    fetch_id("node-a", T0 + 1, got);
    move_matches_after_move(a, false, TASK_RUNNING, 0, STORE_NO_EXIT_CODE, NULL,
                            T0 + 2); /* claim */
    move_matches_after_move(a, false, TASK_NODE_DISCONNECTED, 0, STORE_NO_EXIT_CODE, NULL, T0 + 3);
    move_matches_after_move(a, false, TASK_RUNNING, 77, STORE_NO_EXIT_CODE, NULL, T0 + 4);
    move_matches_after_move(a, false, TASK_ERROR, 0, 3, "boom", T0 + 5);

    new_task("b", 0, "node-b", T0, b);
    fetch_id("node-b", T0 + 1, got);
    move_matches_after_move(b, false, TASK_PENDING, 0, STORE_NO_EXIT_CODE, NULL, T0 + 2); /* back */
    fetch_id("node-b", T0 + 3, got);
    move_matches_after_move(b, false, TASK_RUNNING, 5, STORE_NO_EXIT_CODE, NULL, T0 + 4);
    move_matches_after_move(b, false, TASK_FINISHED, 0, 0, NULL, T0 + 5);

    running_task_with_retries(1, c);
    move_matches_after_move(c, true, TASK_ERROR, 0, 1, "failed", T0 + 6);
}
END_TEST

START_TEST(test_a_schema_1_database_is_upgraded_and_its_tasks_have_epoch_0)
{
    char id[25], got[25];
    new_task("t", 0, NULL, T0, id);
    make_schema(1);
    ck_assert_int_eq(store_open(location, &st), 0);
    ck_assert_uint_eq(epoch_of(id), 0);
    fetch_id("node-a", T0 + 1, got);
    ck_assert_str_eq(got, id);
    ck_assert_uint_eq(epoch_of(id), 1);
    reopen(); /* the latest schema now: opened as is */
    ck_assert_uint_eq(epoch_of(id), 1);
}
END_TEST

START_TEST(test_node_disconnected_task_can_resume_running)
{
    char id[25], got[25];
    new_task("t", 0, NULL, T0, id);
    fetch_id("node-a", T0 + 1, got);
    ck_assert_int_eq(
        store_task_set_status(st, id, TASK_RUNNING, 9, STORE_NO_EXIT_CODE, NULL, T0 + 2), 0);
    ck_assert_int_eq(
        store_task_set_status(st, id, TASK_NODE_DISCONNECTED, 0, STORE_NO_EXIT_CODE, NULL, T0 + 3),
        0);
    ck_assert_int_eq(
        store_task_set_status(st, id, TASK_RUNNING, 9, STORE_NO_EXIT_CODE, NULL, T0 + 4), 0);
    struct task_row r;
    get_task(id, &r);
    ck_assert_int_eq(r.status, TASK_RUNNING);
    ck_assert_int_eq(r.started_ms, T0 + 2);
    ck_assert_str_eq(r.assigned_node, "node-a");
    store_task_row_free(&r);
}
END_TEST

START_TEST(test_cancel_of_pending_task_cancels_it_at_once)
{
    char id[25], got[25];
    new_task("t", 0, NULL, T0, id);
    enum task_status after = TASK_STATUS_COUNT;
    ck_assert_int_eq(store_task_request_cancel(st, id, false, T0 + 1, &after), 0);
    ck_assert_int_eq(after, TASK_CANCELLED);
    struct task_row r;
    get_task(id, &r);
    ck_assert_int_eq(r.status, TASK_CANCELLED);
    ck_assert_int_eq(r.ended_ms, T0 + 1);
    store_task_row_free(&r);
    fetch_id("node-a", T0 + 2, got);
    ck_assert_str_eq(got, "");
}
END_TEST

START_TEST(test_cancel_of_running_task_is_recorded_and_force_sticks)
{
    char id[25], got[25];
    new_task("t", 0, NULL, T0, id);
    fetch_id("node-a", T0 + 1, got);
    ck_assert_int_eq(
        store_task_set_status(st, id, TASK_RUNNING, 5, STORE_NO_EXIT_CODE, NULL, T0 + 2), 0);
    enum task_status after;
    ck_assert_int_eq(store_task_request_cancel(st, id, true, T0 + 3, &after), 0);
    ck_assert_int_eq(after, TASK_RUNNING);
    ck_assert_int_eq(store_task_request_cancel(st, id, false, T0 + 4, &after), 0);
    struct task_row r;
    get_task(id, &r);
    ck_assert_int_eq(r.status, TASK_RUNNING);
    ck_assert(r.cancel_requested);
    ck_assert(r.cancel_force);
    store_task_row_free(&r);
}
END_TEST

START_TEST(test_cancel_of_finished_task_changes_nothing)
{
    char id[25], got[25];
    new_task("t", 0, NULL, T0, id);
    fetch_id("node-a", T0 + 1, got);
    ck_assert_int_eq(store_task_set_status(st, id, TASK_FINISHED, 0, 0, NULL, T0 + 2), 0);
    enum task_status after;
    ck_assert_int_eq(store_task_request_cancel(st, id, true, T0 + 3, &after), 0);
    ck_assert_int_eq(after, TASK_FINISHED);
    struct task_row r;
    get_task(id, &r);
    ck_assert(!r.cancel_requested);
    ck_assert_int_eq(r.updated_ms, T0 + 2);
    store_task_row_free(&r);
    ck_assert_int_eq(store_task_request_cancel(st, "0123456789abcdef01234567", false, T0, NULL),
                     -ENOENT);
}
END_TEST

struct id_list {
    size_t n;
    char ids[16][TASK_ID_LEN + 1];
};

static int collect_id(void *ctx, const struct task_row *r)
{
    struct id_list *l = ctx;
    ck_assert_uint_lt(l->n, 16);
    strcpy(l->ids[l->n++], r->id);
    return 0;
}

START_TEST(test_list_is_newest_first_with_filters_and_limit)
{
    char a[25], b[25], c[25], d[25], got[25];
    new_task("a", 0, NULL, T0, a);
    new_task("b", 9, "node-b", T0 + 1, b);
    new_task("c", 0, NULL, T0 + 2, c);
    new_task("d", 0, NULL, T0 + 3, d);
    fetch_id("node-a", T0 + 4, got); /* a */
    ck_assert_str_eq(got, a);

    struct id_list l = {0};
    ck_assert_int_eq(store_task_list(st, NULL, NULL, 0, collect_id, &l), 0);
    ck_assert_uint_eq(l.n, 4);
    ck_assert_str_eq(l.ids[0], d);
    ck_assert_str_eq(l.ids[3], a);

    memset(&l, 0, sizeof(l));
    ck_assert_int_eq(store_task_list(st, "pending", NULL, 2, collect_id, &l), 0);
    ck_assert_uint_eq(l.n, 2);
    ck_assert_str_eq(l.ids[0], d);
    ck_assert_str_eq(l.ids[1], c);

    memset(&l, 0, sizeof(l));
    ck_assert_int_eq(store_task_list(st, NULL, "node-a", 0, collect_id, &l), 0);
    ck_assert_uint_eq(l.n, 1);
    ck_assert_str_eq(l.ids[0], a);

    memset(&l, 0, sizeof(l));
    ck_assert_int_eq(store_task_list(st, NULL, "node-b", 0, collect_id, &l), 0);
    ck_assert_uint_eq(l.n, 1);
    ck_assert_str_eq(l.ids[0], b);

    ck_assert_int_eq(store_task_list(st, "sleeping", NULL, 0, collect_id, &l), -EINVAL);
}
END_TEST

static int stop_at_first(void *ctx, const struct task_row *r)
{
    (*(int *)ctx)++;
    return 42;
}

START_TEST(test_list_stops_when_the_callback_says_so)
{
    char id[25];
    for (int i = 0; i < 3; i++)
        new_task("t", 0, NULL, T0 + i, id);
    int calls = 0;
    ck_assert_int_eq(store_task_list(st, NULL, NULL, 0, stop_at_first, &calls), 42);
    ck_assert_int_eq(calls, 1);
    /* The statement was reset: the store is usable again. */
    ck_assert_int_eq(store_task_list(st, NULL, NULL, 0, collect_id, &(struct id_list){0}), 0);
}
END_TEST

static int disconnect_task(void *ctx, const struct task_row *r)
{
    (*(int *)ctx)++;
    return store_task_set_status(st, r->id, TASK_NODE_DISCONNECTED, 0, STORE_NO_EXIT_CODE, NULL,
                                 T0 + 100);
}

START_TEST(test_list_by_node_lets_the_callback_change_each_task)
{
    char a[25], b[25], c[25], got[25];
    new_task("a", 0, NULL, T0, a);
    new_task("b", 0, NULL, T0 + 1, b);
    new_task("c", 0, NULL, T0 + 2, c);
    fetch_id("node-a", T0 + 3, got);
    fetch_id("node-a", T0 + 3, got);
    fetch_id("node-b", T0 + 3, got);
    ck_assert_int_eq(
        store_task_set_status(st, a, TASK_RUNNING, 1, STORE_NO_EXIT_CODE, NULL, T0 + 4), 0);
    ck_assert_int_eq(
        store_task_set_status(st, b, TASK_RUNNING, 2, STORE_NO_EXIT_CODE, NULL, T0 + 4), 0);
    ck_assert_int_eq(
        store_task_set_status(st, c, TASK_RUNNING, 3, STORE_NO_EXIT_CODE, NULL, T0 + 4), 0);

    int calls = 0;
    ck_assert_int_eq(store_task_list_by_node(st, "node-a", TASK_RUNNING, disconnect_task, &calls),
                     0);
    ck_assert_int_eq(calls, 2);
    struct task_row r;
    get_task(a, &r);
    ck_assert_int_eq(r.status, TASK_NODE_DISCONNECTED);
    store_task_row_free(&r);
    get_task(c, &r);
    ck_assert_int_eq(r.status, TASK_RUNNING);
    store_task_row_free(&r);
}
END_TEST

static int reenter_store(void *ctx, const struct task_row *r)
{
    *(int *)ctx = store_task_set_status(st, r->id, TASK_CANCELLED, 0, STORE_NO_EXIT_CODE, NULL, T0);
    return 0;
}

START_TEST(test_streaming_callback_cannot_reenter_the_store)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    int inner = 0;
    ck_assert_int_eq(store_task_list(st, NULL, NULL, 0, reenter_store, &inner), 0);
    ck_assert_int_eq(inner, -EBUSY);
    struct task_row r;
    get_task(id, &r);
    ck_assert_int_eq(r.status, TASK_PENDING);
    store_task_row_free(&r);
}
END_TEST

/* ---- Logs ---- */

START_TEST(test_log_resent_prefix_is_skipped)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    const char *first[] = {"one", "two", "three"};
    const char *resend[] = {"two", "three", "four", "five"};
    size_t acc;
    ck_assert_int_eq(append_lines(id, 1, 3, first, &acc), 0);
    ck_assert_uint_eq(acc, 3);
    ck_assert_int_eq(append_lines(id, 2, 4, resend, &acc), 0);
    ck_assert_uint_eq(acc, 2);
    ck_assert_int_eq(append_lines(id, 1, 3, first, &acc), 0);
    ck_assert_uint_eq(acc, 0);
    const char *want[] = {"one", "two", "three", "four", "five"};
    assert_log_is(id, 5, want);
}
END_TEST

START_TEST(test_log_gap_is_refused_and_stores_nothing)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    const char *first[] = {"one", "two"};
    const char *later[] = {"four", "five"};
    size_t acc = 99;
    ck_assert_int_eq(append_lines(id, 1, 2, first, &acc), 0);
    long long size = file_size(id);
    ck_assert_int_eq(append_lines(id, 4, 2, later, &acc), -ERANGE);
    ck_assert_uint_eq(acc, 0);
    ck_assert_int_eq(file_size(id), size);
    assert_log_is(id, 2, first);
    /* Inside a group, the refused batch leaves the group going. */
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(append_lines(id, 4, 2, later, &acc), -ERANGE);
    ck_assert_int_eq(append_lines(id, 3, 2, later, &acc), 0);
    ck_assert_int_eq(store_commit(st), 0);
    const char *all[] = {"one", "two", "four", "five"};
    assert_log_is(id, 4, all);
}
END_TEST

START_TEST(test_log_unsequenced_lines_append_after_what_is_stored)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    const char *a[] = {"a1", "a2"};
    const char *b[] = {"b1"};
    const char *c[] = {"c3", "c4"};
    size_t acc;
    ck_assert_int_eq(append_lines(id, 0, 2, a, &acc), 0);
    ck_assert_uint_eq(acc, 2);
    ck_assert_int_eq(append_lines(id, 0, 1, b, &acc), 0);
    ck_assert_int_eq(append_lines(id, 4, 2, c, &acc), 0);
    ck_assert_uint_eq(acc, 2);
    const char *want[] = {"a1", "a2", "b1", "c3", "c4"};
    assert_log_is(id, 5, want);
}
END_TEST

START_TEST(test_log_read_back_is_byte_exact_across_chunk_boundaries)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    /* A line longer than the 64 KiB read chunk, an empty line, bytes that are not UTF-8 and a NUL
     * inside a line must all come back as they went in. */
    size_t big_len = 200 * 1024 + 17;
    char *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)('a' + i % 26);
    const char nul_line[] = {'x', '\0', 'y'};
    const char *lines[] = {"first", "", big, "\xff\xfe bytes", nul_line, "last"};
    size_t lens[] = {5, 0, big_len, 8, 3, 4};
    size_t acc;
    ck_assert_int_eq(store_log_append(st, id, lines, lens, 6, 1, &acc), 0);
    ck_assert_uint_eq(acc, 6);

    struct got_lines *g = calloc(1, sizeof(*g));
    ck_assert_int_eq(store_log_read(st, id, 0, collect_line, g), 0);
    ck_assert_uint_eq(g->n, 6);
    for (size_t i = 0; i < 6; i++) {
        ck_assert_uint_eq(g->seq[i], i + 1);
        ck_assert_uint_eq(g->len[i], lens[i]);
        ck_assert_int_eq(memcmp(g->text[i], lines[i], lens[i]), 0);
    }
    got_free(g);

    ck_assert_int_eq(store_log_read(st, id, 4, collect_line, g), 0);
    ck_assert_uint_eq(g->n, 3);
    ck_assert_uint_eq(g->seq[0], 4);
    ck_assert_str_eq(g->text[0], "\xff\xfe bytes");
    got_free(g);

    ck_assert_int_eq(store_log_read(st, id, 7, collect_line, g), 0);
    ck_assert_uint_eq(g->n, 0);

    g->stop_after = 2;
    ck_assert_int_eq(store_log_read(st, id, 1, collect_line, g), 7);
    ck_assert_uint_eq(g->n, 2);
    got_free(g);
    free(g);
    free(big);
}
END_TEST

/* Appends lines first..last as "<tag><seq>" padded with pad dots, 64 to a call. */
static void append_numbered(const char *id, uint64_t first, uint64_t last, char tag, size_t pad)
{
    static char bufs[64][320];
    const char *lines[64];
    size_t lens[64];
    ck_assert_uint_lt(pad, 300);
    for (uint64_t seq = first; seq <= last;) {
        size_t n = 0;
        for (; n < 64 && seq <= last; n++, seq++) {
            int head = snprintf(bufs[n], 20, "%c%llu", tag, (unsigned long long)seq);
            memset(bufs[n] + head, '.', pad);
            lines[n] = bufs[n];
            lens[n] = (size_t)head + pad;
        }
        size_t acc;
        ck_assert_int_eq(store_log_append(st, id, lines, lens, n, seq - n, &acc), 0);
        ck_assert_uint_eq(acc, n);
    }
}

/* Reads lines from..last in chunks of at most 500, each chunk a new store_log_read from where the
 * previous one stopped (as a ReadLogs reader does), and checks each is what append_numbered made.
 */
static void check_numbered(const char *id, uint64_t from, uint64_t last, char tag, size_t pad)
{
    struct got_lines *g = calloc(1, sizeof(*g));
    while (from <= last) {
        g->stop_after = last - from + 1 < 500 ? (size_t)(last - from + 1) : 500;
        ck_assert_int_eq(store_log_read(st, id, from, collect_line, g), 7);
        ck_assert_uint_eq(g->n, g->stop_after);
        for (size_t i = 0; i < g->n; i++) {
            char want[320];
            int head = snprintf(want, 20, "%c%llu", tag, (unsigned long long)(from + i));
            memset(want + head, '.', pad);
            want[(size_t)head + pad] = '\0';
            ck_assert_uint_eq(g->seq[i], from + i);
            ck_assert_str_eq(g->text[i], want);
        }
        from += g->n;
        got_free(g);
    }
    free(g);
}

/* Line seq of test_log_read_starts_at_any_line_of_a_long_log: its number, then filler
 * (lines 61..100 are long, so that one append spans more than one stored chunk on either backend).
 */
static size_t long_log_line(uint64_t seq, char *out)
{
    size_t len = seq > 60 && seq <= 100 ? 20000 : 12;
    char number[24];
    int n = snprintf(number, sizeof(number), "%llu:", (unsigned long long)seq);
    memset(out, (int)('a' + seq % 26), len);
    memcpy(out, number, (size_t)n);
    return len;
}

static int check_long_line(void *ctx, uint64_t seq, const char *line, size_t len)
{
    uint64_t *next = ctx;
    static char want[20000];
    ck_assert_uint_eq(seq, *next);
    ck_assert_uint_eq(len, long_log_line(seq, want));
    ck_assert_int_eq(memcmp(line, want, len), 0);
    (*next)++;
    return 0;
}

START_TEST(test_log_read_starts_at_any_line_of_a_long_log)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    /* 30 appends of 2 short lines, one of 40 long ones, 10 of one short line. */
    static char text[40][20000];
    const char *ptrs[40];
    size_t lens[40];
    uint64_t seq = 1;
    for (int a = 0; a < 41; a++) {
        size_t n = a < 30 ? 2 : a == 30 ? 40 : 1;
        for (size_t i = 0; i < n; i++) {
            lens[i] = long_log_line(seq + i, text[i]);
            ptrs[i] = text[i];
        }
        size_t acc;
        ck_assert_int_eq(store_log_append(st, id, ptrs, lens, n, seq, &acc), 0);
        ck_assert_uint_eq(acc, n);
        seq += n;
    }
    ck_assert_uint_eq(seq, 111);
    const uint64_t starts[] = {0, 1, 2, 17, 60, 61, 62, 75, 100, 101, 110, 111, 500};
    for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
        uint64_t next = starts[i] ? starts[i] : 1;
        ck_assert_int_eq(store_log_read(st, id, starts[i], check_long_line, &next), 0);
        ck_assert_uint_eq(next, starts[i] > 111 ? starts[i] : 111);
    }
}
END_TEST

START_TEST(test_log_read_in_chunks_resumes_right_across_commits_and_rollbacks)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    append_numbered(id, 1, 3000, 'a', 90);
    check_numbered(id, 1, 3000, 'a', 90);

    /* Lines read inside a group and then rolled back are replaced by longer ones: where the
     * rolled-back lines started is now in the middle of other lines. */
    ck_assert_int_eq(store_begin(st), 0);
    append_numbered(id, 3001, 8000, 'x', 20);
    check_numbered(id, 2990, 3000, 'a', 90);
    check_numbered(id, 3001, 8000, 'x', 20);
    ck_assert_int_eq(store_rollback(st), 0);
    append_numbered(id, 3001, 8000, 'b', 100);
    check_numbered(id, 5000, 5010, 'b', 100); /* a jump into where they were */
    check_numbered(id, 2001, 3000, 'a', 90);
    check_numbered(id, 3001, 8000, 'b', 100);
    check_numbered(id, 7990, 8000, 'b', 100);
}
END_TEST

START_TEST(test_log_newline_inside_a_line_is_stored_as_a_space)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    const char *lines[] = {"a\nb", "c"};
    size_t acc;
    ck_assert_int_eq(append_lines(id, 1, 2, lines, &acc), 0);
    const char *want[] = {"a b", "c"};
    assert_log_is(id, 2, want);
}
END_TEST

START_TEST(test_log_of_task_without_lines_reads_empty)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    struct got_lines g;
    read_all_lines(id, 1, &g);
    ck_assert_uint_eq(g.n, 0);
    ck_assert(!has_log(id));
    ck_assert_int_eq(store_log_read(st, "0123456789abcdef01234567", 1, collect_line, &g), -ENOENT);
}
END_TEST

START_TEST(test_log_append_refuses_bad_ids_without_touching_files)
{
    const char *lines[] = {"x"};
    size_t acc;
    ck_assert_int_eq(append_lines("../../../../tmp/evil.txt", 0, 1, lines, &acc), -EINVAL);
    ck_assert_int_eq(append_lines("0123456789ABCDEF01234567", 0, 1, lines, &acc), -EINVAL);
    ck_assert_int_eq(append_lines("0123456789abcdef01234567", 0, 1, lines, &acc), -ENOENT);
    char path[256];
    snprintf(path, sizeof(path), "%s/logs", data_dir);
    int entries = 0;
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            entries++;
    closedir(d);
    ck_assert_int_eq(entries, 0);
}
END_TEST

/* ---- Items ---- */

struct got_items {
    size_t n;
    uint64_t seq[32];
    char text[32][64];
};

static int collect_item(void *ctx, uint64_t seq, const char *data, size_t len)
{
    struct got_items *g = ctx;
    ck_assert_uint_lt(g->n, 32);
    ck_assert_uint_lt(len, 64);
    g->seq[g->n] = seq;
    memcpy(g->text[g->n], data, len);
    g->text[g->n][len] = '\0';
    g->n++;
    return 0;
}

static int append_items(const char *id, uint64_t first_seq, size_t n, const char *const *items,
                        size_t *acc)
{
    size_t lens[16];
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(items[i]);
    return store_items_append(st, id, items, lens, n, first_seq, acc);
}

START_TEST(test_items_are_deduplicated_by_seq_and_read_back_in_order)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    const char *a[] = {"{\"n\":1}", "{\"n\":2}"};
    const char *b[] = {"{\"n\":2}", "{\"n\":3}"};
    const char *c[] = {"{\"n\":4}"};
    size_t acc;
    ck_assert_int_eq(append_items(id, 1, 2, a, &acc), 0);
    ck_assert_uint_eq(acc, 2);
    ck_assert_int_eq(append_items(id, 2, 2, b, &acc), 0);
    ck_assert_uint_eq(acc, 1);
    ck_assert_int_eq(append_items(id, 0, 1, c, &acc), 0);
    ck_assert_uint_eq(acc, 1);

    struct got_items g = {0};
    ck_assert_int_eq(store_items_read(st, id, 0, collect_item, &g), 0);
    ck_assert_uint_eq(g.n, 4);
    for (size_t i = 0; i < 4; i++) {
        char want[16];
        snprintf(want, sizeof(want), "{\"n\":%zu}", i + 1);
        ck_assert_uint_eq(g.seq[i], i + 1);
        ck_assert_str_eq(g.text[i], want);
    }
    memset(&g, 0, sizeof(g));
    ck_assert_int_eq(store_items_read(st, id, 3, collect_item, &g), 0);
    ck_assert_uint_eq(g.n, 2);
    ck_assert_uint_eq(g.seq[0], 3);

    struct task_row r;
    get_task(id, &r);
    ck_assert_uint_eq(r.data_items, 4);
    store_task_row_free(&r);
}
END_TEST

START_TEST(test_items_gap_is_refused_and_stores_nothing)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    const char *a[] = {"{}"};
    size_t acc = 5;
    ck_assert_int_eq(append_items(id, 3, 1, a, &acc), -ERANGE);
    ck_assert_uint_eq(acc, 0);
    struct got_items g = {0};
    ck_assert_int_eq(store_items_read(st, id, 1, collect_item, &g), 0);
    ck_assert_uint_eq(g.n, 0);
    ck_assert_int_eq(store_items_read(st, "0123456789abcdef01234567", 1, collect_item, &g),
                     -ENOENT);
}
END_TEST

/* ---- Groups, durability and crashes ---- */

START_TEST(test_group_commit_makes_every_change_durable)
{
    char a[25], b[25], got[25];
    new_task("a", 0, NULL, T0, a);
    new_task("b", 0, NULL, T0, b);
    ck_assert_int_eq(store_begin(st), 0);
    fetch_id("node-a", T0 + 1, got);
    const char *la[] = {"a1", "a2"};
    const char *lb[] = {"b1"};
    const char *items[] = {"{\"k\":1}"};
    size_t acc;
    ck_assert_int_eq(append_lines(a, 1, 2, la, &acc), 0);
    ck_assert_int_eq(append_lines(b, 1, 1, lb, &acc), 0);
    ck_assert_int_eq(append_items(a, 1, 1, items, &acc), 0);
    ck_assert_int_eq(
        store_task_set_status(st, a, TASK_RUNNING, 3, STORE_NO_EXIT_CODE, NULL, T0 + 2), 0);
    ck_assert_int_eq(store_commit(st), 0);

    reopen();
    assert_log_is(a, 2, la);
    assert_log_is(b, 1, lb);
    struct task_row r;
    get_task(a, &r);
    ck_assert_int_eq(r.status, TASK_RUNNING);
    ck_assert_uint_eq(r.data_items, 1);
    store_task_row_free(&r);
}
END_TEST

START_TEST(test_group_rollback_discards_rows_and_log_bytes)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    const char *kept[] = {"kept"};
    const char *dropped[] = {"dropped1", "dropped2"};
    const char *next[] = {"next"};
    size_t acc;
    ck_assert_int_eq(append_lines(id, 1, 1, kept, &acc), 0);
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(append_lines(id, 2, 2, dropped, &acc), 0);
    ck_assert_int_eq(store_task_request_cancel(st, id, false, T0 + 1, NULL), 0);
    ck_assert_int_eq(store_rollback(st), 0);

    assert_log_is(id, 1, kept);
    /* The next append starts right after the committed bytes. */
    ck_assert_int_eq(append_lines(id, 2, 1, next, &acc), 0);
    const char *want[] = {"kept", "next"};
    assert_log_is(id, 2, want);
    if (!pg_server())
        ck_assert_int_eq(file_size(id), 10);
    struct task_row r;
    get_task(id, &r);
    ck_assert_int_eq(r.status, TASK_PENDING);
    store_task_row_free(&r);
}
END_TEST

START_TEST(test_failed_call_inside_a_group_leaves_no_trace_and_the_group_goes_on)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    const char *one[] = {"one"};
    const char *gap[] = {"gap"};
    const char *two[] = {"two"};
    size_t acc;
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(append_lines(id, 1, 1, one, &acc), 0);
    ck_assert_int_eq(append_lines(id, 5, 1, gap, &acc), -ERANGE);
    ck_assert_int_eq(store_task_set_status(st, "0123456789abcdef01234567", TASK_RUNNING, 1,
                                           STORE_NO_EXIT_CODE, NULL, T0),
                     -ENOENT);
    ck_assert_int_eq(append_lines(id, 2, 1, two, &acc), 0);
    ck_assert_int_eq(store_commit(st), 0);
    const char *want[] = {"one", "two"};
    assert_log_is(id, 2, want);
}
END_TEST

/* Plants an item row behind the store's back, so that storing that seq later fails midway. */
static void plant_item_row(const char *id, int seq)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/crawlab.db", data_dir);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *ins;
    ck_assert_int_eq(sqlite3_prepare_v2(db,
                                        "INSERT INTO items (task_id, seq, data) VALUES (?1, ?2, "
                                        "'{\"planted\":true}')",
                                        -1, &ins, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(ins, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(ins, 2, seq);
    ck_assert_int_eq(sqlite3_step(ins), SQLITE_DONE);
    sqlite3_finalize(ins);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

START_TEST(test_call_failing_midway_inside_a_group_is_undone_entirely)
{
    char id[25], other[25];
    new_task("t", 0, NULL, T0, id);
    new_task("other", 0, NULL, T0, other);
    store_close(st);
    st = NULL;
    plant_item_row(id, 2);
    ck_assert_int_eq(store_open(location, &st), 0);

    const char *items[] = {"{\"n\":1}", "{\"n\":2}"};
    const char *line[] = {"kept"};
    size_t acc;
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(append_lines(other, 1, 1, line, &acc), 0);
    /* Item 1 is stored, item 2 collides with the planted row: the whole call must vanish. */
    ck_assert_int_eq(append_items(id, 1, 2, items, &acc), -EEXIST);
    ck_assert_uint_eq(acc, 0);
    ck_assert_int_eq(store_commit(st), 0);

    struct got_items g = {0};
    ck_assert_int_eq(store_items_read(st, id, 1, collect_item, &g), 0);
    ck_assert_uint_eq(g.n, 1);
    ck_assert_uint_eq(g.seq[0], 2);
    struct task_row r;
    get_task(id, &r);
    ck_assert_uint_eq(r.data_items, 0);
    store_task_row_free(&r);
    assert_log_is(other, 1, line);

    /* Outside a group the same failure rolls back its own transaction. */
    ck_assert_int_eq(append_items(id, 1, 2, items, &acc), -EEXIST);
    memset(&g, 0, sizeof(g));
    ck_assert_int_eq(store_items_read(st, id, 1, collect_item, &g), 0);
    ck_assert_uint_eq(g.n, 1);
}
END_TEST

START_TEST(test_group_spanning_more_tasks_than_open_files_commits_all)
{
    enum { N = STORE_LOG_FD_CACHE + 44 };
    static char ids[N][TASK_ID_LEN + 1];
    for (int i = 0; i < N; i++)
        new_task("t", 0, NULL, T0, ids[i]);
    size_t acc;
    ck_assert_int_eq(store_begin(st), 0);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            char line[32];
            snprintf(line, sizeof(line), "task %d round %d", i, round);
            const char *l[] = {line};
            ck_assert_int_eq(append_lines(ids[i], (uint64_t)round + 1, 1, l, &acc), 0);
            ck_assert_uint_eq(acc, 1);
        }
    }
    ck_assert_int_eq(store_commit(st), 0);
    reopen();
    for (int i = 0; i < N; i += 37) {
        char l0[32], l1[32];
        snprintf(l0, sizeof(l0), "task %d round 0", i);
        snprintf(l1, sizeof(l1), "task %d round 1", i);
        const char *want[] = {l0, l1};
        assert_log_is(ids[i], 2, want);
    }
}
END_TEST

START_TEST(test_close_with_an_open_group_rolls_it_back)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    const char *l[] = {"lost"};
    size_t acc;
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(append_lines(id, 1, 1, l, &acc), 0);
    reopen();
    struct got_lines g;
    read_all_lines(id, 1, &g);
    ck_assert_uint_eq(g.n, 0);
}
END_TEST

START_TEST(test_reopen_after_close_keeps_nodes_tasks_logs_and_items)
{
    char id[25], got[25];
    ck_assert_int_eq(store_node_upsert(st, "node-a", "a", 2, "v1", NULL, T0), 0);
    new_task("persist", 3, "node-a", T0, id);
    fetch_id("node-a", T0 + 1, got);
    ck_assert_int_eq(
        store_task_set_status(st, id, TASK_RUNNING, 77, STORE_NO_EXIT_CODE, NULL, T0 + 2), 0);
    const char *lines[] = {"l1", "l2", "l3"};
    const char *items[] = {"{\"a\":1}"};
    size_t acc;
    ck_assert_int_eq(append_lines(id, 1, 3, lines, &acc), 0);
    ck_assert_int_eq(append_items(id, 1, 1, items, &acc), 0);
    reopen();

    struct node_row n;
    ck_assert_int_eq(store_node_get(st, "node-a", &n), 0);
    ck_assert_int_eq(n.max_runners, 2);
    struct task_row r;
    get_task(id, &r);
    ck_assert_int_eq(r.status, TASK_RUNNING);
    ck_assert_int_eq(r.pid, 77);
    ck_assert_str_eq(r.assigned_node, "node-a");
    ck_assert_uint_eq(r.data_items, 1);
    store_task_row_free(&r);
    assert_log_is(id, 3, lines);
    /* Ids made after a reopen never collide with earlier ones. */
    char id2[25];
    new_task("after", 0, NULL, T0, id2);
    ck_assert_str_ne(id, id2);
}
END_TEST

START_TEST(test_crash_leftover_log_bytes_are_cut_back_on_reopen)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    const char *l[] = {"committed 1", "committed 2"};
    size_t acc;
    ck_assert_int_eq(append_lines(id, 1, 2, l, &acc), 0);
    store_close(st);
    st = NULL;

    /* What a crash between write() and COMMIT leaves: bytes, even half a line, past log_bytes. */
    char path[256];
    log_path(id, path, sizeof(path));
    FILE *f = fopen(path, "a");
    ck_assert_ptr_nonnull(f);
    fputs("uncommitted 3\nhalf a li", f);
    fclose(f);

    ck_assert_int_eq(store_open(location, &st), 0);
    assert_log_is(id, 2, l);
    /* A resend from the worker's cursor (line 3) is stored exactly once, after the committed
     * lines, with nothing of the leftover in between. */
    const char *resend[] = {"committed 2", "line 3", "line 4"};
    ck_assert_int_eq(append_lines(id, 2, 3, resend, &acc), 0);
    ck_assert_uint_eq(acc, 2);
    const char *want[] = {"committed 1", "committed 2", "line 3", "line 4"};
    assert_log_is(id, 4, want);
    struct task_row r;
    get_task(id, &r);
    ck_assert_int_eq(file_size(id), (long long)r.log_bytes);
    store_task_row_free(&r);
}
END_TEST

START_TEST(test_crash_inside_an_uncommitted_group_loses_only_the_group)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    store_close(st);
    st = NULL;

    /* The child process stores some lines, then is killed (kill -9) in the middle of a group: its
     * log bytes are in the file, its transaction never committed, nothing was closed. */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct store *cs;
        if (store_open(location, &cs) != 0)
            _exit(10);
        const char *ok[] = {"durable 1", "durable 2"};
        size_t lens[] = {9, 9};
        size_t acc;
        if (store_log_append(cs, id, ok, lens, 2, 1, &acc) != 0)
            _exit(11);
        if (store_begin(cs) != 0)
            _exit(12);
        const char *lost[] = {"lost 3", "lost 4"};
        size_t lost_lens[] = {6, 6};
        if (store_log_append(cs, id, lost, lost_lens, 2, 3, &acc) != 0)
            _exit(13);
        if (store_task_request_cancel(cs, id, false, T0 + 1, NULL) != 0)
            _exit(14);
        kill(getpid(), SIGKILL);
        _exit(15);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "child did not die by SIGKILL (status %#x)", status);

    ck_assert_int_eq(store_open(location, &st), 0);
    ck_assert_int_eq(file_size(id), 20 + 14);
    const char *durable[] = {"durable 1", "durable 2"};
    assert_log_is(id, 2, durable);
    struct task_row r;
    get_task(id, &r);
    ck_assert_int_eq(r.status, TASK_PENDING);
    store_task_row_free(&r);

    /* The resent lines are shorter than the lost ones: nothing of those may remain after them. */
    const char *resend[] = {"l3", "l4"};
    size_t acc;
    ck_assert_int_eq(append_lines(id, 3, 2, resend, &acc), 0);
    ck_assert_uint_eq(acc, 2);
    const char *want[] = {"durable 1", "durable 2", "l3", "l4"};
    assert_log_is(id, 4, want);
    ck_assert_int_eq(file_size(id), 20 + 6);
}
END_TEST

START_TEST(test_log_file_missing_committed_bytes_is_reported_not_papered_over)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    const char *l[] = {"one", "two"};
    size_t acc;
    ck_assert_int_eq(append_lines(id, 1, 2, l, &acc), 0);
    store_close(st);
    st = NULL;
    char path[256];
    log_path(id, path, sizeof(path));
    ck_assert_int_eq(truncate(path, 4), 0);
    ck_assert_int_eq(store_open(location, &st), 0);
    struct got_lines g = {0};
    ck_assert_int_eq(store_log_read(st, id, 1, collect_line, &g), -EIO);
    got_free(&g);
    ck_assert_int_eq(append_lines(id, 3, 1, l, &acc), -EIO);
}
END_TEST

/* ---- Schedules ---- */

static int64_t new_schedule(const char *name, const char *expr)
{
    struct schedule_new n = {.name = name,
                             .expr = expr,
                             .cmd = "echo hi",
                             .tz_offset = 3600,
                             .priority = 5,
                             .overlap = 1,
                             .missed = 1};
    int64_t id = 0;
    ck_assert_int_eq(store_schedule_create(st, &n, T0, &id), 0);
    ck_assert_int_gt(id, 0);
    return id;
}

struct sched_seen {
    int n;
    int64_t ids[8];
    bool paused[8];
};

static int sched_seen_cb(void *ctx, const struct schedule_row *r)
{
    struct sched_seen *seen = ctx;
    seen->ids[seen->n] = r->id;
    seen->paused[seen->n++] = r->paused;
    return 0;
}

START_TEST(test_schedules_are_stored_listed_paused_and_removed)
{
    int64_t a = new_schedule("a", "*/5 * * * *");
    int64_t b = new_schedule("b", "@every 1s");
    ck_assert_int_ne(a, b);
    struct schedule_row r;
    ck_assert_int_eq(store_schedule_get(st, a, &r), 0);
    ck_assert_str_eq(r.name, "a");
    ck_assert_str_eq(r.expr, "*/5 * * * *");
    ck_assert_str_eq(r.cmd, "echo hi");
    ck_assert_str_eq(r.env_json, "{}");
    ck_assert_int_eq(r.tz_offset, 3600);
    ck_assert_int_eq(r.priority, 5);
    ck_assert_int_eq(r.overlap, 1);
    ck_assert_int_eq(r.missed, 1);
    ck_assert(!r.paused);
    ck_assert_int_eq(r.last_fire_s, 0);
    ck_assert_str_eq(r.last_task, "");
    store_schedule_row_free(&r);

    ck_assert_int_eq(store_schedule_set_paused(st, b, true, 0), 0);
    reopen();
    struct sched_seen seen = {0};
    ck_assert_int_eq(store_schedule_list(st, sched_seen_cb, &seen), 0);
    ck_assert_int_eq(seen.n, 2);
    ck_assert_int_eq(seen.ids[0], a);
    ck_assert(!seen.paused[0]);
    ck_assert_int_eq(seen.ids[1], b);
    ck_assert(seen.paused[1]);

    ck_assert_int_eq(store_schedule_delete(st, a), 0);
    ck_assert_int_eq(store_schedule_delete(st, a), -ENOENT);
    ck_assert_int_eq(store_schedule_get(st, a, &r), -ENOENT);
    ck_assert_int_eq(store_schedule_set_paused(st, a, false, 0), -ENOENT);

    /* resuming marks what passed while paused as handled; resuming a running one changes none */
    ck_assert_int_eq(store_schedule_set_paused(st, b, false, 5000), 0);
    ck_assert_int_eq(store_schedule_get(st, b, &r), 0);
    ck_assert(!r.paused);
    ck_assert_int_eq(r.last_fire_s, 5000);
    store_schedule_row_free(&r);
    ck_assert_int_eq(store_schedule_set_paused(st, b, false, 6000), 0);
    ck_assert_int_eq(store_schedule_get(st, b, &r), 0);
    ck_assert_int_eq(r.last_fire_s, 5000);
    store_schedule_row_free(&r);
    struct schedule_new bad = {.expr = "@daily", .cmd = ""};
    int64_t id;
    ck_assert_int_eq(store_schedule_create(st, &bad, T0, &id), -EINVAL);
}
END_TEST

static int count_fires_cb(void *ctx, int64_t fire_s, const char *task_id)
{
    (void)fire_s;
    ck_assert_int_eq(strlen(task_id), 24);
    (*(int *)ctx)++;
    return 0;
}

START_TEST(test_a_fire_makes_one_task_and_repeating_it_makes_none)
{
    int64_t sid = new_schedule("s", "@every 1s");
    struct task_new t = {.name = "s", .cmd = "echo hi"};
    char id1[25], id2[25];
    ck_assert_int_eq(store_schedule_fire(st, sid, 1000, &t, 1, false, T0, &id1), 0);
    ck_assert_int_eq(store_schedule_fire(st, sid, 1000, &t, 1, false, T0 + 1, &id2), 1);
    ck_assert_str_eq(id1, id2);
    struct task_row tr;
    get_task(id1, &tr);
    ck_assert_int_eq(tr.status, TASK_PENDING);
    store_task_row_free(&tr);
    struct schedule_row r;
    ck_assert_int_eq(store_schedule_get(st, sid, &r), 0);
    ck_assert_int_eq(r.last_fire_s, 1000);
    ck_assert_str_eq(r.last_task, id1);
    store_schedule_row_free(&r);

    /* a skipped fire advances the schedule but makes no task */
    ck_assert_int_eq(store_schedule_skip(st, sid, 1001), 0);
    ck_assert_int_eq(store_schedule_get(st, sid, &r), 0);
    ck_assert_int_eq(r.last_fire_s, 1001);
    ck_assert_str_eq(r.last_task, id1);
    store_schedule_row_free(&r);

    int n = 0;
    ck_assert_int_eq(store_schedule_fires(st, sid, count_fires_cb, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(store_schedule_fire(st, sid + 100, 1000, &t, 1, false, T0, &id2), -ENOENT);
}
END_TEST

START_TEST(test_a_fire_in_a_rolled_back_group_leaves_neither_task_nor_fire)
{
    int64_t sid = new_schedule("s", "@every 1s");
    struct task_new t = {.name = "s", .cmd = "echo hi"};
    char id[25];
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(store_schedule_fire(st, sid, 1000, &t, 1, false, T0, &id), 0);
    ck_assert_int_eq(store_rollback(st), 0);
    struct task_row tr;
    ck_assert_int_eq(store_task_get(st, id, &tr), -ENOENT);
    int n = 0;
    ck_assert_int_eq(store_schedule_fires(st, sid, count_fires_cb, &n), 0);
    ck_assert_int_eq(n, 0);
    struct schedule_row r;
    ck_assert_int_eq(store_schedule_get(st, sid, &r), 0);
    ck_assert_int_eq(r.last_fire_s, 0);
    store_schedule_row_free(&r);
    /* and the fire can happen again, once */
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(store_schedule_fire(st, sid, 1000, &t, 1, false, T0, &id), 0);
    ck_assert_int_eq(store_commit(st), 0);
    ck_assert_int_eq(store_task_get(st, id, &tr), 0);
    store_task_row_free(&tr);
}
END_TEST

static int user_version(void);

static int collect_task_id(void *ctx, const char *task_id)
{
    char(*ids)[25] = ctx;
    for (int i = 0; i < 4; i++)
        if (!ids[i][0]) {
            snprintf(ids[i], 25, "%s", task_id);
            return 0;
        }
    ck_abort_msg("more tasks than expected");
    return 0;
}

/* An all-nodes fire: its tasks (one per node) and their records in one transaction; the fire
 * again makes none; the last fire's tasks are all of them. */
START_TEST(test_an_all_nodes_fire_makes_its_tasks_at_once_and_once)
{
    struct schedule_new n = {
        .expr = "@every 1s", .cmd = "true", .all_nodes = true, .tz_name = "Europe/Berlin"};
    int64_t sid;
    ck_assert_int_eq(store_schedule_create(st, &n, T0, &sid), 0);
    struct task_new t[2] = {{.cmd = "true", .node_key = "node-a"},
                            {.cmd = "true", .node_key = "node-b"}};
    char ids[2][25], again[2][25], last[4][25] = {{0}};
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(store_schedule_fire(st, sid, 1000, t, 2, true, T0, ids), 0);
    ck_assert_int_eq(store_rollback(st), 0);
    int fires = 0;
    ck_assert_int_eq(store_schedule_fires(st, sid, count_fires_cb, &fires), 0);
    ck_assert_int_eq(fires, 0);
    ck_assert_int_eq(store_schedule_fire(st, sid, 1000, t, 2, true, T0, ids), 0);
    ck_assert_int_eq(store_schedule_fire(st, sid, 1000, t, 2, true, T0, again), 1);
    ck_assert_int_eq(store_schedule_fires(st, sid, count_fires_cb, &fires), 0);
    ck_assert_int_eq(fires, 2);
    ck_assert_int_eq(store_schedule_last_tasks(st, sid, collect_task_id, last), 0);
    ck_assert(strcmp(last[0], ids[0]) == 0 || strcmp(last[0], ids[1]) == 0);
    ck_assert(strcmp(last[1], ids[0]) == 0 || strcmp(last[1], ids[1]) == 0);
    ck_assert_str_eq(last[2], "");
    struct task_row tr;
    get_task(ids[1], &tr);
    ck_assert_str_eq(tr.node_key, "node-b");
    store_task_row_free(&tr);
    struct schedule_row r;
    ck_assert_int_eq(store_schedule_get(st, sid, &r), 0);
    ck_assert(r.all_nodes);
    ck_assert_str_eq(r.tz_name, "Europe/Berlin");
    store_schedule_row_free(&r);
    /* a per-node fire needs each task's node; a zone name must be one */
    t[1].node_key = NULL;
    ck_assert_int_eq(store_schedule_fire(st, sid, 1001, t, 2, true, T0, ids), -EINVAL);
    n.tz_name = "../etc/passwd";
    ck_assert_int_eq(store_schedule_create(st, &n, T0, &sid), -EINVAL);
}
END_TEST

/* Version 9: a version 8 schedule has no zone name and is not all-nodes; its fires keep their
 * tasks and stay idempotent. */
START_TEST(test_a_schema_8_database_keeps_its_fires)
{
    int64_t sid = new_schedule("s", "@daily");
    struct task_new t = {.cmd = "true"};
    char id[25], again[25];
    ck_assert_int_eq(store_schedule_fire(st, sid, 86400, &t, 1, false, T0, &id), 0);
    make_schema(8);
    ck_assert_int_eq(store_open(location, &st), 0);
    ck_assert_int_eq(user_version(), 10);
    struct schedule_row r;
    ck_assert_int_eq(store_schedule_get(st, sid, &r), 0);
    ck_assert_str_eq(r.tz_name, "");
    ck_assert(!r.all_nodes);
    ck_assert_int_eq(r.tz_offset, 3600);
    store_schedule_row_free(&r);
    ck_assert_int_eq(store_schedule_fire(st, sid, 86400, &t, 1, false, T0, &again), 1);
    ck_assert_str_eq(again, id);
}
END_TEST

/* Version 10: a task assigned before it (by a fetch) is not pushed; one assigned by a push
 * after it is, until it goes back to the queue. */
START_TEST(test_a_schema_9_database_has_no_pushed_task)
{
    char id[25], got[25];
    new_task("t", 0, NULL, T0, id);
    fetch_id("node-a", T0 + 1, got);
    make_schema(9);
    ck_assert_int_eq(store_open(location, &st), 0);
    ck_assert_int_eq(user_version(), 10);
    struct task_row r;
    get_task(id, &r);
    ck_assert(!r.pushed);
    ck_assert_str_eq(r.assigned_node, "node-a");
    store_task_row_free(&r);
    char pushed_id[25];
    new_task("p", 0, NULL, T0 + 2, pushed_id);
    ck_assert_int_eq(store_task_assign(st, pushed_id, "node-a", T0 + 3, true), 0);
    get_task(pushed_id, &r);
    ck_assert(r.pushed);
    store_task_row_free(&r);
    ck_assert_int_eq(
        store_task_set_status(st, pushed_id, TASK_PENDING, 0, STORE_NO_EXIT_CODE, NULL, T0 + 4), 0);
    get_task(pushed_id, &r);
    ck_assert(!r.pushed);
    ck_assert_str_eq(r.assigned_node, "");
    store_task_row_free(&r);
}
END_TEST

static int user_version(void)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/crawlab.db", data_dir);
    sqlite3 *db;
    sqlite3_stmt *q;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    int v = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

START_TEST(test_a_schema_2_or_3_database_is_brought_to_the_latest)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    ck_assert_int_eq(user_version(), 10);
    for (int v = 2; v <= 3; v++) {
        make_schema(v);
        ck_assert_int_eq(store_open(location, &st), 0);
        ck_assert_int_eq(user_version(), 10);
        int64_t sid = new_schedule("s", "@daily");
        struct task_new t = {.cmd = "true"};
        char tid[25];
        ck_assert_int_eq(store_schedule_fire(st, sid, 86400, &t, 1, false, T0, &tid), 0);
        struct task_row tr;
        get_task(id, &tr); /* the old task is still there */
        store_task_row_free(&tr);
    }
}
END_TEST

/* Version 5: the nodes, tasks and schedules of a version 4 database have no labels, and every
 * node is enabled; labels and states are kept from then on. */
START_TEST(test_a_schema_4_database_gets_labels_and_node_states)
{
    char id[25];
    ck_assert_int_eq(store_node_upsert(st, "node-a", "a", 1, "", NULL, T0), 0);
    new_task("t", 0, NULL, T0, id);
    int64_t sid = new_schedule("s", "@daily");
    make_schema(4);
    ck_assert_int_eq(store_open(location, &st), 0);
    ck_assert_int_eq(user_version(), 10);
    struct node_row n;
    ck_assert_int_eq(store_node_get(st, "node-a", &n), 0);
    ck_assert_str_eq(n.labels, "");
    ck_assert_str_eq(n.state, STORE_NODE_ENABLED);
    struct task_row tr;
    get_task(id, &tr);
    ck_assert_str_eq(tr.labels, "");
    store_task_row_free(&tr);
    struct schedule_row sr;
    ck_assert_int_eq(store_schedule_get(st, sid, &sr), 0);
    ck_assert_str_eq(sr.labels, "");
    store_schedule_row_free(&sr);

    ck_assert_int_eq(store_node_upsert(st, "node-a", "a", 1, "", "gpu=1\nzone=eu", T0), 0);
    ck_assert_int_eq(store_node_set_state(st, "node-a", STORE_NODE_DRAINING), 0);
    ck_assert_int_eq(store_node_set_state(st, "node-a", "sleeping"), -EINVAL);
    ck_assert_int_eq(store_node_upsert(st, "node-a", "a", 2, "", "gpu=1", T0 + 1), 0);
    ck_assert_int_eq(store_node_get(st, "node-a", &n), 0);
    ck_assert_str_eq(n.labels, "gpu=1");
    ck_assert_str_eq(n.state, STORE_NODE_DRAINING); /* a registration keeps the state */
    ck_assert_int_eq(store_node_upsert(st, "node-a", "a", 1, "", "gpu=1\ngpu=2", T0), -EINVAL);
    ck_assert_int_eq(store_node_delete(st, "node-a"), 0);
    ck_assert_int_eq(store_node_get(st, "node-a", &n), -ENOENT);
    ck_assert_int_eq(store_node_delete(st, "node-a"), -ENOENT);
}
END_TEST

/* A task with a selector goes only to a node that has all its labels; one without goes anywhere,
 * in the usual order. */
START_TEST(test_fetch_skips_tasks_whose_selector_the_node_does_not_match)
{
    char gpu[25], plain[25], both[25];
    struct task_new t = {.cmd = "echo", .priority = 5, .labels = "gpu=1"};
    ck_assert_int_eq(store_task_create(st, &t, T0, gpu), 0);
    new_task("plain", 0, NULL, T0 + 1, plain);
    t.labels = "gpu=1\nzone=eu";
    ck_assert_int_eq(store_task_create(st, &t, T0 + 2, both), 0);
    t.labels = "gpu";
    ck_assert_int_eq(store_task_create(st, &t, T0, gpu), -EINVAL);

    struct task_row r;
    ck_assert_int_eq(store_task_fetch(st, "cpu", "zone=eu", T0 + 5, &r), 1);
    ck_assert_str_eq(r.id, plain);
    ck_assert_str_eq(r.labels, "");
    store_task_row_free(&r);
    ck_assert_int_eq(store_task_fetch(st, "cpu", NULL, T0 + 5, &r), 0);
    ck_assert_int_eq(store_task_fetch(st, "g1", "gpu=1", T0 + 5, &r), 1);
    ck_assert_str_eq(r.id, gpu);
    ck_assert_str_eq(r.labels, "gpu=1");
    store_task_row_free(&r);
    ck_assert_int_eq(store_task_fetch(st, "g1", "gpu=1", T0 + 5, &r), 0);
    ck_assert_int_eq(store_task_fetch(st, "g2", "zone=eu\ngpu=1\nos=linux", T0 + 5, &r), 1);
    ck_assert_str_eq(r.id, both);
    store_task_row_free(&r);
}
END_TEST

/* ---- Retries and restarts ---- */

static int count_tasks(void)
{
    uint64_t counts[TASK_STATUS_COUNT];
    ck_assert_int_eq(store_task_count_by_status(st, NULL, counts), 0);
    int n = 0;
    for (int i = 0; i < TASK_STATUS_COUNT; i++)
        n += (int)counts[i];
    return n;
}

/* A task with retries, fetched by node-a and running. */
static void running_task_with_retries(int retries, char id[25])
{
    struct task_new t = {.name = "r",
                         .cmd = "false",
                         .priority = 3,
                         .node_key = "node-a",
                         .retries = retries,
                         .retry_delay_ms = 100};
    ck_assert_int_eq(store_task_create(st, &t, T0, id), 0);
    char got[25];
    fetch_id("node-a", T0 + 1, got);
    ck_assert_str_eq(got, id);
    ck_assert_int_eq(
        store_task_set_status(st, id, TASK_RUNNING, 9, STORE_NO_EXIT_CODE, NULL, T0 + 2), 0);
}

static int collect_key(void *ctx, const char *node_key, const char *labels)
{
    strcpy(ctx, node_key);
    return 0;
}

START_TEST(test_retry_ends_the_task_and_makes_the_next_attempt)
{
    char first[25], second[25], third[25], got[25];
    running_task_with_retries(2, first);
    ck_assert_int_eq(store_task_retry(st, first, TASK_ERROR, 1, "boom", T0 + 500, T0 + 10, second),
                     0);
    struct task_row r;
    get_task(first, &r);
    ck_assert_int_eq(r.status, TASK_ERROR);
    ck_assert_int_eq(r.exit_code, 1);
    ck_assert_str_eq(r.error, "boom");
    store_task_row_free(&r);
    get_task(second, &r);
    ck_assert_int_eq(r.status, TASK_PENDING);
    ck_assert_str_eq(r.retry_of, first);
    ck_assert_str_eq(r.restart_of, "");
    ck_assert_int_eq(r.attempt, 2);
    ck_assert_int_eq(r.retries, 2);
    ck_assert_int_eq(r.retry_delay_ms, 100);
    ck_assert_int_eq(r.eligible_ms, T0 + 500);
    ck_assert_int_eq(r.priority, 3);
    ck_assert_str_eq(r.node_key, "node-a");
    ck_assert_str_eq(r.cmd, "false");
    store_task_row_free(&r);
    /* Not before its time; the wake-up finds it and its node. */
    fetch_id("node-a", T0 + 499, got);
    ck_assert_str_eq(got, "");
    int64_t at = 0;
    ck_assert_int_eq(store_task_next_eligible(st, 0, &at), 0);
    ck_assert_int_eq(at, T0 + 500);
    ck_assert_int_eq(store_task_next_eligible(st, T0 + 500, &at), 0);
    ck_assert_int_eq(at, 0);
    char key[LIMIT_NODE_KEY_MAX + 1] = "";
    ck_assert_int_eq(store_task_eligible_nodes(st, T0, T0 + 499, collect_key, key), 0);
    ck_assert_str_eq(key, "");
    ck_assert_int_eq(store_task_eligible_nodes(st, T0, T0 + 500, collect_key, key), 0);
    ck_assert_str_eq(key, "node-a");
    fetch_id("node-a", T0 + 500, got);
    ck_assert_str_eq(got, second);
    /* Every later attempt links to the first; an abnormal end retries too. */
    ck_assert_int_eq(
        store_task_set_status(st, second, TASK_RUNNING, 9, STORE_NO_EXIT_CODE, NULL, T0 + 501), 0);
    ck_assert_int_eq(store_task_set_status(st, second, TASK_NODE_DISCONNECTED, 0,
                                           STORE_NO_EXIT_CODE, NULL, T0 + 502),
                     0);
    ck_assert_int_eq(store_task_retry(st, second, TASK_ABNORMAL, STORE_NO_EXIT_CODE, "lost",
                                      T0 + 600, T0 + 510, third),
                     0);
    get_task(third, &r);
    ck_assert_str_eq(r.retry_of, first);
    ck_assert_int_eq(r.attempt, 3);
    store_task_row_free(&r);
    ck_assert_int_eq(count_tasks(), 3);
}
END_TEST

START_TEST(test_retry_of_an_ended_task_changes_nothing)
{
    char id[25], next[25];
    running_task_with_retries(1, id);
    ck_assert_int_eq(store_task_set_status(st, id, TASK_FINISHED, 0, 0, NULL, T0 + 3), 0);
    ck_assert_int_eq(store_task_retry(st, id, TASK_ERROR, 1, NULL, T0 + 5, T0 + 4, next), 1);
    ck_assert_int_eq(store_task_retry(st, id, TASK_FINISHED, 0, NULL, T0 + 5, T0 + 4, next),
                     -EINVAL);
    ck_assert_int_eq(count_tasks(), 1);
    struct task_row r;
    get_task(id, &r);
    ck_assert_int_eq(r.status, TASK_FINISHED);
    store_task_row_free(&r);
}
END_TEST

/* The end and the next attempt are one change: a group rolled back (a crash before its commit)
 * keeps neither. */
START_TEST(test_retry_and_end_commit_or_roll_back_together)
{
    char id[25], next[25];
    running_task_with_retries(1, id);
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(store_task_retry(st, id, TASK_ERROR, 1, NULL, T0 + 5, T0 + 4, next), 0);
    ck_assert_int_eq(store_rollback(st), 0);
    struct task_row r;
    get_task(id, &r);
    ck_assert_int_eq(r.status, TASK_RUNNING);
    store_task_row_free(&r);
    ck_assert_int_eq(count_tasks(), 1);
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(store_task_retry(st, id, TASK_ERROR, 1, NULL, T0 + 5, T0 + 4, next), 0);
    ck_assert_int_eq(store_commit(st), 0);
    reopen();
    get_task(next, &r);
    ck_assert_str_eq(r.retry_of, id);
    store_task_row_free(&r);
    ck_assert_int_eq(count_tasks(), 2);
}
END_TEST

START_TEST(test_restart_copies_the_spec_and_links_the_old_task)
{
    struct task_new t = {.name = "n",
                         .cmd = "echo hi",
                         .param = "-v",
                         .env_json = "{\"A\":\"1\"}",
                         .priority = 2,
                         .timeout_ms = 5000,
                         .node_key = "node-b",
                         .labels = "gpu=1",
                         .retries = 3,
                         .retry_delay_ms = 250};
    char id[25], again[25];
    ck_assert_int_eq(store_task_create(st, &t, T0, id), 0);
    ck_assert_int_eq(store_task_restart(st, id, T0 + 7, again), 0);
    ck_assert_str_ne(again, id);
    struct task_row r;
    get_task(again, &r);
    ck_assert_int_eq(r.status, TASK_PENDING);
    ck_assert_str_eq(r.restart_of, id);
    ck_assert_str_eq(r.retry_of, "");
    ck_assert_int_eq(r.attempt, 1);
    ck_assert_str_eq(r.name, "n");
    ck_assert_str_eq(r.cmd, "echo hi");
    ck_assert_str_eq(r.param, "-v");
    ck_assert_str_eq(r.env_json, "{\"A\":\"1\"}");
    ck_assert_int_eq(r.priority, 2);
    ck_assert_int_eq(r.timeout_ms, 5000);
    ck_assert_str_eq(r.node_key, "node-b");
    ck_assert_str_eq(r.labels, "gpu=1");
    ck_assert_int_eq(r.retries, 3);
    ck_assert_int_eq(r.retry_delay_ms, 250);
    ck_assert_int_eq(r.eligible_ms, 0);
    ck_assert_int_eq(r.created_ms, T0 + 7);
    store_task_row_free(&r);
    ck_assert_int_eq(store_task_restart(st, "0123456789abcdef01234567", T0, again), -ENOENT);
}
END_TEST

START_TEST(test_bad_retries_are_refused)
{
    char id[25];
    struct task_new t = {.cmd = "true", .retries = LIMIT_RETRIES_MAX + 1};
    ck_assert_int_eq(store_task_create(st, &t, T0, id), -EINVAL);
    t.retries = 1;
    t.retry_delay_ms = LIMIT_RETRY_DELAY_MAX_MS + 1;
    ck_assert_int_eq(store_task_create(st, &t, T0, id), -EINVAL);
    t.retry_delay_ms = -1;
    ck_assert_int_eq(store_task_create(st, &t, T0, id), -EINVAL);
    ck_assert_int_eq(count_tasks(), 0);
}
END_TEST

/* ---- Spiders ---- */

static const char SHA_A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char SHA_B[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static uint32_t add_spider(const char *name, const char *sha)
{
    struct spider_row r = {.size = 10, .files = 2, .unpacked = 20};
    snprintf(r.name, sizeof(r.name), "%s", name);
    snprintf(r.sha256, sizeof(r.sha256), "%s", sha);
    uint32_t v = 0;
    ck_assert_int_eq(store_spider_add(st, &r, T0, &v), 0);
    return v;
}

START_TEST(test_spider_versions_count_up_per_name)
{
    ck_assert_uint_eq(add_spider("news", SHA_A), 1);
    ck_assert_uint_eq(add_spider("news", SHA_B), 2);
    ck_assert_uint_eq(add_spider("shop", SHA_A), 1);
    struct spider_row r;
    ck_assert_int_eq(store_spider_get(st, "news", 0, &r), 0);
    ck_assert_uint_eq(r.version, 2);
    ck_assert_str_eq(r.sha256, SHA_B);
    ck_assert_int_eq(store_spider_get(st, "news", 1, &r), 0);
    ck_assert_str_eq(r.sha256, SHA_A);
    ck_assert_uint_eq(r.unpacked, 20);
    ck_assert_int_eq(store_spider_get(st, "news", 3, &r), -ENOENT);
    ck_assert_int_eq(store_spider_get(st, "nope", 0, &r), -ENOENT);
    ck_assert_int_eq(store_spider_list(st, NULL, 0, NULL, NULL), 2);   /* latest of each */
    ck_assert_int_eq(store_spider_list(st, "news", 0, NULL, NULL), 2); /* every version */
    ck_assert_int_eq(store_spider_list(st, "news", 2, NULL, NULL), 1);

    /* removing version 1 keeps the numbering: the next is 3 */
    ck_assert_int_eq(store_spider_remove(st, "news", 1), 0);
    ck_assert_int_eq(store_spider_remove(st, "news", 1), -ENOENT);
    bool used;
    ck_assert_int_eq(store_spider_sha_used(st, SHA_A, &used), 0);
    ck_assert(used); /* shop@1 */
    ck_assert_uint_eq(add_spider("news", SHA_A), 3);
    ck_assert_int_eq(store_spider_remove(st, "news", 0), 0);
    ck_assert_int_eq(store_spider_sha_used(st, SHA_B, &used), 0);
    ck_assert(!used);
    reopen();
    ck_assert_int_eq(store_spider_list(st, NULL, 0, NULL, NULL), 1);
}
END_TEST

/* An archive file of n bytes (every byte value, NULs too) at path. */
static void write_archive(const char *path, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < n; i++)
        fputc((int)((i * 7 + i / 251) & 0xff), f);
    ck_assert_int_eq(fclose(f), 0);
}

/* The whole content of the file at path (free it); its length into *n. */
static char *read_whole(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    ck_assert_int_ge(len, 0);
    rewind(f);
    char *buf = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

/* A store several masters share keeps the archives themselves; SQLite's, one master's, does not
 * (the file in the data dir is the archive there). */
START_TEST(test_spider_archives_are_kept_by_a_shared_store_only)
{
    char in[256], out[256];
    snprintf(in, sizeof(in), "%s/in.tgz", tmp_root);
    snprintf(out, sizeof(out), "%s/out.tgz", tmp_root);
    write_archive(in, 300 * 1024 + 17);
    ck_assert_int_eq(store_spider_archive_put(st, "not-a-sha", in), -EINVAL);
    ck_assert_int_eq(store_spider_archive_get(st, SHA_A, ""), -EINVAL);
    ck_assert_int_eq(store_spider_archive_drop(st, "not-a-sha"), -EINVAL);
    if (!store_shared(st)) {
        ck_assert_int_eq(store_spider_archive_put(st, SHA_A, in), -ENOTSUP);
        ck_assert_int_eq(store_spider_archive_get(st, SHA_A, out), -ENOTSUP);
        ck_assert_int_eq(store_spider_archive_drop(st, SHA_A), -ENOTSUP);
        return;
    }
    ck_assert_int_eq(store_spider_archive_get(st, SHA_A, out), -ENOENT);
    ck_assert_int_eq(store_spider_archive_put(st, SHA_A, in), 0);
    ck_assert_int_eq(store_spider_archive_put(st, SHA_A, in), 0); /* once is enough */
    ck_assert_int_eq(store_spider_archive_get(st, SHA_A, out), 0);
    size_t n_in, n_out;
    char *a = read_whole(in, &n_in), *b = read_whole(out, &n_out);
    ck_assert_uint_eq(n_out, n_in);
    ck_assert(memcmp(a, b, n_in) == 0);
    free(a);
    free(b);
    ck_assert_int_eq(store_spider_archive_drop(st, SHA_A), 0);
    ck_assert_int_eq(store_spider_archive_get(st, SHA_A, out), -ENOENT);
    ck_assert_int_eq(store_spider_archive_drop(st, SHA_A), 0);
}
END_TEST

static int note_reaped(void *ctx, const char *key)
{
    snprintf(ctx, LIMIT_NODE_KEY_MAX + 1, "%s", key);
    return 0;
}

/* Leases run on the store's clock: a master's lease for a minute keeps its nodes online; one
 * released (0) lets the next reap take them offline, once. */
START_TEST(test_a_released_lease_takes_its_masters_nodes_offline_once)
{
    char reaped[LIMIT_NODE_KEY_MAX + 1] = "";
    if (!store_shared(st)) {
        ck_assert_int_eq(store_master_renew(st, "m1", 60000), -ENOTSUP);
        ck_assert_int_eq(store_master_reap(st, note_reaped, reaped), -ENOTSUP);
        return;
    }
    ck_assert_int_eq(store_master_renew(st, "m1", 60000), 1); /* a new lease */
    ck_assert_int_eq(store_master_renew(st, "m1", 60000), 0);
    ck_assert_int_eq(store_node_upsert(st, "node-a", "a", 1, "1", NULL, T0), 0);
    ck_assert_int_eq(store_node_hold(st, "node-a", "m1"), 0);
    ck_assert_int_eq(store_master_reap(st, note_reaped, reaped), 0);
    ck_assert_str_eq(reaped, "");
    ck_assert_int_eq(store_master_renew(st, "m1", 0), 0);
    ck_assert_int_eq(store_master_reap(st, note_reaped, reaped), 0);
    ck_assert_str_eq(reaped, "node-a");
    struct node_row r;
    ck_assert_int_eq(store_node_get(st, "node-a", &r), 0);
    ck_assert_str_eq(r.status, STORE_NODE_OFFLINE);
    reaped[0] = '\0';
    ck_assert_int_eq(store_master_reap(st, note_reaped, reaped), 0);
    ck_assert_str_eq(reaped, "");
}
END_TEST

/* One master at a time runs the hooks on a shared store; the hold goes with its connection. */
START_TEST(test_the_hooks_are_held_by_one_store_at_a_time)
{
    if (!store_shared(st)) {
        ck_assert_int_eq(store_hooks_hold(st), -ENOTSUP);
        return;
    }
    ck_assert_int_eq(store_hooks_hold(st), 2);
    ck_assert_int_eq(store_hooks_hold(st), 1);
    struct store *other;
    ck_assert_int_eq(store_open(location, &other), 0);
    ck_assert_int_eq(store_hooks_hold(other), 0);
    ck_assert_int_eq(store_hooks_hold(other), 0);
    store_close(st);
    st = other;
    /* The server lets the lock go when the first session's backend has ended: polled, with a
     * deadline, until the second store gets it. */
    int rc = 0;
    for (int i = 0; i < 2000 && rc == 0; i++) {
        rc = store_hooks_hold(st);
        if (rc == 0)
            nanosleep(&(struct timespec){.tv_nsec = 5000000}, NULL);
    }
    ck_assert_int_eq(rc, 2);
    ck_assert_int_eq(store_hooks_hold(st), 1);
}
END_TEST

START_TEST(test_a_task_keeps_its_spider_and_is_found_by_it)
{
    struct task_new t = {.cmd = "ls", .spider = "news@2", .spider_sha256 = SHA_A};
    char id[TASK_ID_LEN + 1], found[TASK_ID_LEN + 1];
    ck_assert_int_eq(store_task_create(st, &t, T0, id), 0);
    struct task_row r;
    get_task(id, &r);
    ck_assert_str_eq(r.spider, "news@2");
    ck_assert_str_eq(r.spider_sha256, SHA_A);
    store_task_row_free(&r);
    enum task_status status;
    ck_assert_int_eq(store_spider_task_using(st, "news", 2, found, &status), 1);
    ck_assert_str_eq(found, id);
    ck_assert_int_eq(status, TASK_PENDING);
    ck_assert_int_eq(store_spider_task_using(st, "news", 1, found, &status), 0);
    ck_assert_int_eq(store_task_set_status(st, id, TASK_CANCELLED, 0, STORE_NO_EXIT_CODE, NULL, T0),
                     0);
    ck_assert_int_eq(store_spider_task_using(st, "news", 2, found, &status), 0);
    t.spider_sha256 = "not-a-hash";
    ck_assert_int_eq(store_task_create(st, &t, T0, id), -EINVAL);
}
END_TEST

START_TEST(test_a_schema_7_database_is_brought_to_8)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    make_schema(7);
    ck_assert_int_eq(store_open(location, &st), 0);
    ck_assert_int_eq(user_version(), 10);
    struct task_row r;
    get_task(id, &r); /* the old task is there, in no spider */
    ck_assert_str_eq(r.spider, "");
    ck_assert_str_eq(r.spider_sha256, "");
    store_task_row_free(&r);
    ck_assert_uint_eq(add_spider("news", SHA_A), 1);
}
END_TEST

/* ---- Paging, prefixes and retention ---- */

struct page_list {
    size_t n;
    char ids[64][TASK_ID_LEN + 1];
    struct task_pos last;
};

static int collect_page(void *ctx, const struct task_row *r, const struct task_pos *pos)
{
    struct page_list *l = ctx;
    ck_assert_uint_lt(l->n, 64);
    strcpy(l->ids[l->n++], r->id);
    l->last = *pos;
    return 0;
}

/* Every task, newest first, through pages of `limit`: into all (at most 64). */
static size_t walk_pages(const char *status, unsigned limit, char all[64][TASK_ID_LEN + 1])
{
    size_t n = 0;
    struct task_pos pos;
    bool started = false;
    for (int guard = 0; guard < 100; guard++) {
        struct page_list l = {0};
        ck_assert_int_eq(
            store_task_page(st, status, NULL, started ? &pos : NULL, limit, collect_page, &l), 0);
        for (size_t i = 0; i < l.n; i++)
            strcpy(all[n++], l.ids[i]);
        if (l.n < limit)
            return n;
        pos = l.last;
        started = true;
    }
    ck_abort_msg("the walk does not end");
    return n;
}

static void end_task(const char *id, enum task_status status, int64_t at)
{
    struct task_row row;
    if (store_task_fetch(st, "node-a", NULL, at - 2, &row) == 1)
        store_task_row_free(&row);
    ck_assert_int_eq(store_task_set_status(st, id, status, 0, 0, NULL, at), 0);
}

START_TEST(test_pages_see_every_task_once_newest_first)
{
    char ids[30][25];
    /* Ties on created_ms are broken by insertion order, as in store_task_list. */
    for (int i = 0; i < 30; i++)
        new_task("t", 0, NULL, T0 + i / 3, ids[i]);
    char all[64][TASK_ID_LEN + 1];
    for (unsigned limit = 1; limit <= 31; limit += 3) {
        size_t n = walk_pages(NULL, limit, all);
        ck_assert_uint_eq(n, 30);
        for (int i = 0; i < 30; i++)
            ck_assert_str_eq(all[i], ids[29 - i]);
    }
    /* A page starting after a task that has been deleted meanwhile still starts in place. */
    struct page_list first = {0};
    ck_assert_int_eq(store_task_page(st, NULL, NULL, NULL, 5, collect_page, &first), 0);
    ck_assert_uint_eq(first.n, 5);
    ck_assert_str_eq(first.ids[4], ids[25]);
    char sql[128];
    snprintf(sql, sizeof(sql), "DELETE FROM tasks WHERE id = '%s'", ids[25]);
    count_rows(sql);
    struct page_list next = {0};
    ck_assert_int_eq(store_task_page(st, NULL, NULL, &first.last, 2, collect_page, &next), 0);
    ck_assert_uint_eq(next.n, 2);
    ck_assert_str_eq(next.ids[0], ids[24]);
    ck_assert_str_eq(next.ids[1], ids[23]);
    /* The position of a task starts a page after it; filters apply to pages. */
    struct task_pos pos;
    ck_assert_int_eq(store_task_pos(st, ids[10], &pos), 0);
    memset(&next, 0, sizeof(next));
    ck_assert_int_eq(store_task_page(st, "pending", NULL, &pos, 0, collect_page, &next), 0);
    ck_assert_uint_eq(next.n, 10);
    ck_assert_str_eq(next.ids[0], ids[9]);
    ck_assert_int_eq(store_task_pos(st, ids[25], &pos), -ENOENT);
    ck_assert_int_eq(store_task_pos(st, "nope", &pos), -EINVAL);
    ck_assert_int_eq(store_task_page(st, "sleeping", NULL, NULL, 0, collect_page, &next), -EINVAL);
    memset(&next, 0, sizeof(next));
    ck_assert_int_eq(store_task_page(st, "running", NULL, NULL, 0, collect_page, &next), 0);
    ck_assert_uint_eq(next.n, 0);
}
END_TEST

START_TEST(test_prefix_lookup_tells_none_one_and_several)
{
    char a[25], b[25];
    new_task("a", 0, NULL, T0, a);
    new_task("b", 0, NULL, T0, b);
    char found[3][TASK_ID_LEN + 1];
    /* Two ids of one second share their first 18 digits. */
    ck_assert_int_eq(strncmp(a, b, 18), 0);
    ck_assert_int_eq(store_task_find_prefix(st, a, found, 3), 1);
    ck_assert_str_eq(found[0], a);
    ck_assert_int_eq(store_task_find_prefix(st, b, found, 3), 1);
    ck_assert_str_eq(found[0], b);
    char common[19];
    memcpy(common, a, 18);
    common[18] = '\0';
    ck_assert_int_eq(store_task_find_prefix(st, common, found, 3), 2);
    ck_assert_str_eq(found[0], strcmp(a, b) < 0 ? a : b);
    ck_assert_str_eq(found[1], strcmp(a, b) < 0 ? b : a);
    /* max + 1 at most: "more than max" */
    ck_assert_int_eq(store_task_find_prefix(st, common, found, 1), 2);
    ck_assert_int_eq(store_task_find_prefix(st, common, NULL, 0), 1);
    char other[25];
    snprintf(other, sizeof(other), "%s", a);
    other[0] = a[0] == 'f' ? '0' : 'f';
    ck_assert_int_eq(store_task_find_prefix(st, other, found, 3), 0);
    ck_assert_int_eq(store_task_find_prefix(st, "abcde", found, 3), -EINVAL);
    ck_assert_int_eq(store_task_find_prefix(st, "ABCDEF", found, 3), -EINVAL);
}
END_TEST

static int collect_node_key(void *ctx, const struct node_row *r)
{
    struct page_list *l = ctx;
    strcpy(l->ids[l->n++], r->key);
    return 0;
}

START_TEST(test_node_pages_follow_the_key_order)
{
    const char *keys[] = {"n1", "n2", "n3", "n4", "n5"};
    for (int i = 4; i >= 0; i--)
        ck_assert_int_eq(store_node_upsert(st, keys[i], "x", 1, NULL, NULL, T0), 0);
    struct page_list l = {0};
    ck_assert_int_eq(store_node_page(st, NULL, 2, collect_node_key, &l), 0);
    ck_assert_uint_eq(l.n, 2);
    ck_assert_str_eq(l.ids[1], "n2");
    ck_assert_int_eq(store_node_page(st, "n2", 2, collect_node_key, &l), 0);
    ck_assert_int_eq(store_node_page(st, "n4", 2, collect_node_key, &l), 0);
    ck_assert_uint_eq(l.n, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_str_eq(l.ids[i], keys[i]);
    l.n = 0;
    ck_assert_int_eq(store_node_page(st, "n5", 0, collect_node_key, &l), 0);
    ck_assert_uint_eq(l.n, 0);
}
END_TEST

START_TEST(test_node_named_finds_a_key_and_every_node_of_a_name)
{
    ck_assert_int_eq(store_node_upsert(st, "k2", "crawler", 1, NULL, NULL, T0), 0);
    ck_assert_int_eq(store_node_upsert(st, "k1", "crawler", 1, NULL, NULL, T0), 0);
    ck_assert_int_eq(store_node_upsert(st, "k3", "k1", 1, NULL, NULL, T0), 0);
    ck_assert_int_eq(store_node_upsert(st, "k4", "other", 1, NULL, NULL, T0), 0);
    struct page_list l = {0};
    ck_assert_int_eq(store_node_named(st, "crawler", collect_node_key, &l), 0);
    ck_assert_uint_eq(l.n, 2);
    ck_assert_str_eq(l.ids[0], "k1");
    ck_assert_str_eq(l.ids[1], "k2");
    /* "k1" is one node's key and another's name: both. */
    l.n = 0;
    ck_assert_int_eq(store_node_named(st, "k1", collect_node_key, &l), 0);
    ck_assert_uint_eq(l.n, 2);
    ck_assert_str_eq(l.ids[0], "k1");
    ck_assert_str_eq(l.ids[1], "k3");
    l.n = 0;
    ck_assert_int_eq(store_node_named(st, "nobody", collect_node_key, &l), 0);
    ck_assert_uint_eq(l.n, 0);
    ck_assert_int_eq(store_node_named(st, "", collect_node_key, &l), -EINVAL);
}
END_TEST

/* A task with `lines` log lines and `items` items, ended with status at `at`. */
static void ended_task(char id[25], int64_t created, int64_t at, enum task_status status,
                       size_t lines, size_t items)
{
    new_task("e", 0, "node-a", created, id);
    for (size_t i = 0; i < lines; i++)
        ck_assert_int_eq(append_lines(id, 0, 1, (const char *[]){"a line"}, NULL), 0);
    for (size_t i = 0; i < items; i++)
        ck_assert_int_eq(
            store_items_append(st, id, (const char *[]){"{}"}, (size_t[]){2}, 1, 0, NULL), 0);
    if (status == TASK_CANCELLED) {
        ck_assert_int_eq(store_task_request_cancel(st, id, false, at, NULL), 0);
        return;
    }
    end_task(id, status, at);
}

/* Has the logs of committed purges removed and waits (bounded) until their removal is durable. */
static void drain_purged_logs(void)
{
    size_t left = 1;
    for (int i = 0; i < 2000 && left; i++) {
        ck_assert_int_eq(store_purge_logs(st, 1000, &left), 0);
        if (left)
            usleep(1000);
    }
    ck_assert_uint_eq(left, 0);
}

static bool task_exists(const char *id)
{
    struct task_row r;
    int rc = store_task_get(st, id, &r);
    if (rc == 0)
        store_task_row_free(&r);
    ck_assert(rc == 0 || rc == -ENOENT);
    return rc == 0;
}

START_TEST(test_purge_takes_ended_tasks_with_logs_items_and_history_only)
{
    char fin[25], err[25], can[25], late[25], pend[25], run[25];
    ended_task(fin, T0, T0 + 10, TASK_FINISHED, 3, 2);
    ended_task(err, T0 + 1, T0 + 11, TASK_ERROR, 1, 0);
    ended_task(can, T0 + 2, T0 + 12, TASK_CANCELLED, 0, 0);
    ended_task(late, T0 + 3, T0 + 500, TASK_FINISHED, 1, 1);
    new_task("p", 0, "node-z", T0 + 4, pend);
    new_task("r", 0, "node-a", T0 + 5, run);
    struct task_row row;
    ck_assert_int_eq(store_task_fetch(st, "node-a", NULL, T0 + 6, &row), 1);
    ck_assert_str_eq(row.id, run);
    store_task_row_free(&row);
    ck_assert_int_eq(append_lines(run, 0, 1, (const char *[]){"running"}, NULL), 0);
    ck_assert_int_eq(
        store_task_set_status(st, run, TASK_RUNNING, 1, STORE_NO_EXIT_CODE, NULL, T0 + 7), 0);

    uint64_t n;
    ck_assert_int_eq(store_task_count_purgeable(st, T0 + 100, &n), 0);
    ck_assert_uint_eq(n, 3);
    size_t purged;
    bool more;
    ck_assert_int_eq(store_task_purge(st, T0 + 100, 256, &purged, &more), 0);
    ck_assert_uint_eq(purged, 3);
    ck_assert(!more);
    ck_assert(!task_exists(fin) && !task_exists(err) && !task_exists(can));
    ck_assert(task_exists(late) && task_exists(pend) && task_exists(run));
    /* The rows are gone; the log files go when asked, now that the deletion is committed (log
     * rows on PostgreSQL went with their tasks). */
    ck_assert(has_log(fin) == !pg_server());
    drain_purged_logs();
    ck_assert(!has_log(fin));
    ck_assert(!has_log(err));
    ck_assert(has_log(late));
    ck_assert(has_log(run));
    ck_assert_int_eq(count_rows("SELECT count(*) FROM items"), 1);
    ck_assert_int_eq(count_rows("SELECT count(*) FROM task_history WHERE task_id NOT IN"
                                " (SELECT id FROM tasks)"),
                     0);
    const char *running[] = {"running"};
    assert_log_is(run, 1, running);
    /* Nothing older is left; a later cutoff takes the late one, never the live ones. */
    ck_assert_int_eq(store_task_purge(st, T0 + 100, 256, &purged, &more), 0);
    ck_assert_uint_eq(purged, 0);
    ck_assert_int_eq(store_task_purge(st, INT64_MAX, 256, &purged, &more), 0);
    ck_assert_uint_eq(purged, 1);
    ck_assert(task_exists(pend) && task_exists(run));
    ck_assert_int_eq(store_task_count_purgeable(st, INT64_MAX, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(store_task_purge(st, INT64_MAX, 0, &purged, &more), -EINVAL);
    ck_assert_int_eq(store_task_purge(st, INT64_MAX, 256, NULL, NULL), 0); /* counts not wanted */
}
END_TEST

START_TEST(test_purge_budget_splits_a_task_with_many_items)
{
    char big[25], small[25];
    ended_task(big, T0, T0 + 10, TASK_FINISHED, 2, 25);
    ended_task(small, T0 + 1, T0 + 11, TASK_FINISHED, 1, 0);
    size_t purged;
    bool more;
    int calls = 0;
    do {
        ck_assert_int_eq(store_task_purge(st, T0 + 100, 10, &purged, &more), 0);
        calls++;
        /* The row and its log go last, in the call that deletes the last items. */
        if (task_exists(big))
            ck_assert(has_log(big));
    } while (more && calls < 20);
    ck_assert(!more);
    ck_assert_int_ge(calls, 3);
    ck_assert(!task_exists(big) && !task_exists(small));
    ck_assert_int_eq(count_rows("SELECT count(*) FROM items"), 0);
    drain_purged_logs();
    ck_assert(!has_log(big));
}
END_TEST

START_TEST(test_purge_in_a_group_removes_logs_only_once_committed)
{
    char a[25], b[25];
    ended_task(a, T0, T0 + 10, TASK_FINISHED, 2, 1);
    ended_task(b, T0 + 1, T0 + 11, TASK_FINISHED, 2, 1);
    size_t purged;
    bool more;
    /* Rolled back: the tasks are back, with their logs. */
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(store_task_purge(st, T0 + 100, 256, &purged, &more), 0);
    ck_assert_uint_eq(purged, 2);
    ck_assert(has_log(a));
    ck_assert_int_eq(store_rollback(st), 0);
    ck_assert(task_exists(a) && task_exists(b));
    ck_assert(has_log(a));
    const char *two[] = {"a line", "a line"};
    assert_log_is(a, 2, two);
    /* Committed: the logs go after the commit, never before (log files once asked to, log rows
     * with the commit). */
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(store_task_purge(st, T0 + 100, 256, &purged, &more), 0);
    ck_assert(has_log(a));
    ck_assert(has_log(b));
    size_t left;
    if (!pg_server()) {
        ck_assert_int_eq(count_rows("SELECT count(*) FROM purged_logs"), 0); /* not committed */
        ck_assert_int_eq(store_purge_logs(st, 100, &left), 0);
        ck_assert_uint_eq(left, 2); /* not committed: nothing removed */
        ck_assert(has_log(a));
    }
    ck_assert_int_eq(store_commit(st), 0);
    ck_assert(has_log(a) == !pg_server());
    ck_assert(has_log(b) == !pg_server());
    drain_purged_logs();
    ck_assert(!has_log(a));
    ck_assert(!has_log(b));
    if (pg_server())
        return;
    /* The journal entries go with the next purge. */
    ck_assert_int_eq(count_rows("SELECT count(*) FROM purged_logs"), 2);
    ck_assert_int_eq(store_task_purge(st, T0 + 100, 256, &purged, &more), 0);
    ck_assert_int_eq(count_rows("SELECT count(*) FROM purged_logs"), 0);
}
END_TEST

/* The state a crash between a purge's commit and the removal of its logs leaves: the rows are
 * gone and the journal names them, the files are still there. The next open removes them. */
START_TEST(test_logs_of_a_purge_interrupted_after_its_commit_go_at_open)
{
    char a[25], b[25], keep[25];
    ended_task(a, T0, T0 + 10, TASK_FINISHED, 2, 1);
    ended_task(b, T0 + 1, T0 + 11, TASK_FINISHED, 2, 1);
    ended_task(keep, T0 + 2, T0 + 12, TASK_FINISHED, 2, 1);
    store_close(st);
    st = NULL;
    sqlite3 *db;
    char path[256], sql[512];
    snprintf(path, sizeof(path), "%s/crawlab.db", data_dir);
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(sql, sizeof(sql),
             "BEGIN; DELETE FROM items WHERE task_id IN ('%s', '%s');"
             " DELETE FROM tasks WHERE id IN ('%s', '%s');"
             " INSERT INTO purged_logs VALUES ('%s'), ('%s'), ('%s'); COMMIT;",
             a, b, a, b, a, b, "0123456789abcdef01234567");
    ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_gt(file_size(a), 0);

    ck_assert_int_eq(store_open(location, &st), 0);
    ck_assert_int_eq(file_size(a), -1);
    ck_assert_int_eq(file_size(b), -1);
    ck_assert_int_gt(file_size(keep), 0);
    ck_assert_int_eq(count_rows("SELECT count(*) FROM purged_logs"), 0);
    const char *two[] = {"a line", "a line"};
    assert_log_is(keep, 2, two);
}
END_TEST

/* Killed in the middle of a purge's group, before its commit: every task is still there with its
 * log, and the log files of the tasks deleted in the group were never touched. */
START_TEST(test_purge_killed_before_its_commit_loses_nothing)
{
    char ids[5][25];
    for (int i = 0; i < 5; i++)
        ended_task(ids[i], T0 + i, T0 + 10 + i, TASK_FINISHED, 2, 1);
    store_close(st);
    st = NULL;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct store *cs;
        size_t purged;
        bool more;
        if (store_open(location, &cs) != 0 || store_begin(cs) != 0)
            _exit(10);
        if (store_task_purge(cs, T0 + 100, 256, &purged, &more) != 0 || purged != 5)
            _exit(11);
        kill(getpid(), SIGKILL);
        _exit(12);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %#x", status);
    ck_assert_int_eq(store_open(location, &st), 0);
    const char *two[] = {"a line", "a line"};
    for (int i = 0; i < 5; i++) {
        ck_assert(task_exists(ids[i]));
        assert_log_is(ids[i], 2, two);
    }
    ck_assert_int_eq(count_rows("SELECT count(*) FROM purged_logs"), 0);
}
END_TEST

START_TEST(test_a_schema_2_database_gets_the_purge_index_and_journal)
{
    char id[25];
    ended_task(id, T0, T0 + 10, TASK_FINISHED, 1, 0);
    make_schema(2);
    ck_assert_int_eq(store_open(location, &st), 0);
    ck_assert_int_eq(count_rows("PRAGMA user_version"), 10);
    ck_assert(task_exists(id));
    size_t purged;
    bool more;
    ck_assert_int_eq(store_task_purge(st, T0 + 100, 256, &purged, &more), 0);
    ck_assert_uint_eq(purged, 1);
}
END_TEST

/* Version 6: stored tasks keep their numbers (an old default 0 now sorts first, an old high 100
 * last), get the link columns' defaults, and the pending index is ascending. */
START_TEST(test_a_schema_5_database_is_brought_to_6_and_keeps_its_priorities)
{
    char hundred[25], zero[25], three[25], got[25];
    new_task("p100", 100, NULL, T0, hundred);
    new_task("p0", 0, NULL, T0 + 1, zero);
    new_task("p3", 3, NULL, T0 + 2, three);
    int64_t sid = new_schedule("s", "@daily");
    make_schema(5);
    ck_assert_int_eq(count_rows("SELECT count(*) FROM sqlite_master WHERE name = 'tasks_pending'"
                                " AND sql LIKE '%priority DESC%'"),
                     1);
    ck_assert_int_eq(store_open(location, &st), 0);
    ck_assert_int_eq(count_rows("PRAGMA user_version"), 10);
    ck_assert_int_eq(count_rows("SELECT count(*) FROM sqlite_master WHERE name = 'tasks_pending'"
                                " AND sql LIKE '%priority DESC%'"),
                     0);
    struct task_row r;
    get_task(hundred, &r);
    ck_assert_int_eq(r.priority, 100);
    ck_assert_int_eq(r.attempt, 1);
    ck_assert_str_eq(r.retry_of, "");
    ck_assert_str_eq(r.restart_of, "");
    ck_assert_int_eq(r.retries, 0);
    ck_assert_int_eq(r.eligible_ms, 0);
    store_task_row_free(&r);
    struct schedule_row sr;
    ck_assert_int_eq(store_schedule_get(st, sid, &sr), 0);
    ck_assert_int_eq(sr.priority, 5);
    ck_assert_int_eq(sr.retries, 0);
    store_schedule_row_free(&sr);
    fetch_id("node-a", T0 + 10, got);
    ck_assert_str_eq(got, zero);
    fetch_id("node-a", T0 + 10, got);
    ck_assert_str_eq(got, three);
    fetch_id("node-a", T0 + 10, got);
    ck_assert_str_eq(got, hundred);
}
END_TEST

/* ---- Events ---- */

struct event_list {
    size_t n;
    int64_t ids[16];
    char kinds[16][STORE_EVENT_KIND_MAX + 1];
    char data[16][64];
};

static int collect_event(void *ctx, const struct event_row *e)
{
    struct event_list *l = ctx;
    ck_assert_uint_lt(l->n, 16);
    l->ids[l->n] = e->id;
    snprintf(l->kinds[l->n], sizeof(l->kinds[0]), "%s", e->kind);
    snprintf(l->data[l->n], sizeof(l->data[0]), "%s", e->data);
    l->n++;
    return 0;
}

START_TEST(test_events_get_increasing_ids_and_are_read_from_a_cursor)
{
    int64_t a, b, c, last;
    ck_assert_int_eq(store_event_last(st, &last), 0);
    ck_assert_int_eq(last, 0);
    ck_assert_int_eq(store_event_add(st, T0, "node.online", "w1", NULL, NULL, &a), 0);
    ck_assert_int_eq(store_event_add(st, T0, "task.error", "w1", "0123456789abcdef01234567",
                                     "{\"error\":\"x\"}", &b),
                     0);
    ck_assert_int_eq(store_event_add(st, T0 + 1, "node.offline", "w1", "", NULL, &c), 0);
    ck_assert_int_lt(a, b);
    ck_assert_int_lt(b, c);
    struct event_list l = {0};
    ck_assert_int_eq(store_event_page(st, a, c, 0, collect_event, &l), 0);
    ck_assert_uint_eq(l.n, 2);
    ck_assert_int_eq(l.ids[0], b);
    ck_assert_str_eq(l.kinds[0], "task.error");
    ck_assert_str_eq(l.data[0], "{\"error\":\"x\"}");
    ck_assert_str_eq(l.data[1], "{}");
    /* upto bounds the read, limit too */
    memset(&l, 0, sizeof(l));
    ck_assert_int_eq(store_event_page(st, 0, b, 0, collect_event, &l), 0);
    ck_assert_uint_eq(l.n, 2);
    memset(&l, 0, sizeof(l));
    ck_assert_int_eq(store_event_page(st, 0, c, 1, collect_event, &l), 0);
    ck_assert_uint_eq(l.n, 1);
    uint64_t n;
    ck_assert_int_eq(store_event_count(st, a, c, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(store_event_add(st, T0, "", NULL, NULL, NULL, NULL), -EINVAL);
    ck_assert_int_eq(store_event_add(st, T0, "x", "bad key!", NULL, NULL, NULL), -EINVAL);
    ck_assert_int_eq(store_event_add(st, T0, "x", NULL, "nothex", NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(test_a_purged_event_id_is_never_given_again)
{
    int64_t a, b, last;
    ck_assert_int_eq(store_event_add(st, T0, "node.online", "w1", NULL, NULL, &a), 0);
    size_t purged;
    bool more;
    ck_assert_int_eq(store_event_purge(st, T0 + 1, 10, &purged, &more), 0);
    ck_assert_uint_eq(purged, 1);
    ck_assert(!more);
    reopen();
    ck_assert_int_eq(store_event_last(st, &last), 0);
    ck_assert_int_eq(last, a);
    ck_assert_int_eq(store_event_add(st, T0 + 2, "node.online", "w1", NULL, NULL, &b), 0);
    ck_assert_int_gt(b, a);
    /* Only older events go. */
    ck_assert_int_eq(store_event_purge(st, T0 + 2, 10, &purged, &more), 0);
    ck_assert_uint_eq(purged, 0);
}
END_TEST

START_TEST(test_an_event_whose_group_rolls_back_is_gone_with_its_change)
{
    int64_t a, last;
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(store_node_upsert(st, "w1", "n", 1, "v", NULL, T0), 0);
    ck_assert_int_eq(store_event_add(st, T0, "node.online", "w1", NULL, NULL, &a), 0);
    ck_assert_int_eq(store_rollback(st), 0);
    struct event_list l = {0};
    ck_assert_int_eq(store_event_page(st, 0, a, 0, collect_event, &l), 0);
    ck_assert_uint_eq(l.n, 0);
    ck_assert_int_eq(store_event_last(st, &last), 0);
    ck_assert_int_eq(last, 0);
}
END_TEST

START_TEST(test_hook_cursors_survive_a_reopen)
{
    int64_t v;
    ck_assert_int_eq(store_event_cursor_get(st, "sh hook.sh", &v), -ENOENT);
    ck_assert_int_eq(store_event_cursor_set(st, "sh hook.sh", 7), 0);
    ck_assert_int_eq(store_event_cursor_set(st, "sh hook.sh", 9), 0);
    ck_assert_int_eq(store_event_cursor_set(st, "other", 3), 0);
    reopen();
    ck_assert_int_eq(store_event_cursor_get(st, "sh hook.sh", &v), 0);
    ck_assert_int_eq(v, 9);
    ck_assert_int_eq(store_event_cursor_get(st, "other", &v), 0);
    ck_assert_int_eq(v, 3);
}
END_TEST

START_TEST(test_a_schema_6_database_gets_the_event_tables)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    make_schema(6);
    ck_assert_int_eq(store_open(location, &st), 0);
    ck_assert_int_eq(count_rows("PRAGMA user_version"), 10);
    ck_assert(task_exists(id));
    int64_t a;
    ck_assert_int_eq(store_event_add(st, T0, "task.finished", NULL, id, NULL, &a), 0);
    ck_assert_int_eq(a, 1);
    ck_assert_int_eq(store_event_cursor_set(st, "h", a), 0);
}
END_TEST

/* ---- Two masters on one PostgreSQL database ---- */

/* One master of a race: a store handle of its own on the test's database, in a thread, doing
 * work once both are open. Checks run in the test's thread, on what the masters recorded. */
struct master {
    pthread_t thread;
    pthread_barrier_t *start;
    int (*work)(struct store *s, struct master *m);
    const char *node_key;
    const char *task_id;
    int rc; /* the first failure, 0 if none */
    char (*ids)[TASK_ID_LEN + 1];
    size_t n;
    size_t accepted_lines, accepted_items;
};

static void *run_master(void *arg)
{
    struct master *m = arg;
    struct store *s = NULL;
    m->rc = store_open(location, &s);
    pthread_barrier_wait(m->start);
    if (m->rc == 0)
        m->rc = m->work(s, m);
    store_close(s);
    return NULL;
}

/* Runs both masters' work at once and checks that neither failed. */
static void race(struct master m[2])
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    for (int i = 0; i < 2; i++) {
        m[i].start = &start;
        ck_assert_int_eq(pthread_create(&m[i].thread, NULL, run_master, &m[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(m[i].thread, NULL);
    pthread_barrier_destroy(&start);
    ck_assert_int_eq(m[0].rc, 0);
    ck_assert_int_eq(m[1].rc, 0);
}

/* Fetches for its node until no task is left for it. */
static int fetch_all(struct store *s, struct master *m)
{
    for (;;) {
        struct task_row r;
        int got = store_task_fetch(s, m->node_key, NULL, T0 + 1, &r);
        if (got != 1)
            return got;
        memcpy(m->ids[m->n++], r.id, TASK_ID_LEN + 1);
        store_task_row_free(&r);
    }
}

#define RACE_TASKS 200

START_TEST(test_two_masters_fetching_at_once_never_get_one_task_twice)
{
    static char made[RACE_TASKS][TASK_ID_LEN + 1];
    static char got[2][RACE_TASKS][TASK_ID_LEN + 1];
    for (int i = 0; i < RACE_TASKS; i++)
        new_task("race", i % 3, NULL, T0 - RACE_TASKS + i, made[i]);
    struct master m[2] = {{.work = fetch_all, .node_key = "node-a", .ids = got[0]},
                          {.work = fetch_all, .node_key = "node-b", .ids = got[1]}};
    race(m);
    /* Every task was handed out once: to one of the two, never to both, none left over. */
    ck_assert_uint_eq(m[0].n + m[1].n, RACE_TASKS);
    for (int i = 0; i < RACE_TASKS; i++) {
        int seen = 0;
        for (int k = 0; k < 2; k++)
            for (size_t j = 0; j < m[k].n; j++)
                seen += strcmp(got[k][j], made[i]) == 0;
        ck_assert_int_eq(seen, 1);
        struct task_row r;
        get_task(made[i], &r);
        ck_assert_int_eq(r.status, TASK_ASSIGNED);
        ck_assert_uint_eq(r.epoch, 1);
        store_task_row_free(&r);
    }
    struct task_row r;
    ck_assert_int_eq(store_task_fetch(st, "node-c", NULL, T0 + 2, &r), 0);
}
END_TEST

#define RACE_BATCHES 40
#define RACE_BATCH   10

/* Appends the same numbered batches of lines and items as the other master does. */
static int append_all(struct store *s, struct master *m)
{
    char text[RACE_BATCH][32];
    const char *ptrs[RACE_BATCH];
    size_t lens[RACE_BATCH];
    int rc = 0;
    for (int b = 0; rc == 0 && b < RACE_BATCHES; b++) {
        uint64_t first = (uint64_t)b * RACE_BATCH + 1;
        for (int i = 0; i < RACE_BATCH; i++) {
            lens[i] = (size_t)snprintf(text[i], sizeof(text[i]), "{\"n\":%d}", (int)first + i);
            ptrs[i] = text[i];
        }
        size_t acc = 0;
        rc = store_log_append(s, m->task_id, ptrs, lens, RACE_BATCH, first, &acc);
        m->accepted_lines += acc;
        if (rc == 0)
            rc = store_items_append(s, m->task_id, ptrs, lens, RACE_BATCH, first, &acc);
        m->accepted_items += acc;
    }
    return rc;
}

static int check_item(void *ctx, uint64_t seq, const char *data, size_t len)
{
    uint64_t *next = ctx;
    char want[32];
    int n = snprintf(want, sizeof(want), "{\"n\":%d}", (int)seq);
    ck_assert_uint_eq(seq, *next);
    ck_assert_uint_eq(len, (size_t)n);
    ck_assert_int_eq(memcmp(data, want, len), 0);
    (*next)++;
    return 0;
}

START_TEST(test_two_masters_appending_one_batch_store_it_once)
{
    char id[25];
    new_task("t", 0, NULL, T0, id);
    struct master m[2] = {{.work = append_all, .task_id = id}, {.work = append_all, .task_id = id}};
    race(m);
    /* Each line and item was stored by exactly one of the two. */
    ck_assert_uint_eq(m[0].accepted_lines + m[1].accepted_lines, RACE_BATCHES * RACE_BATCH);
    ck_assert_uint_eq(m[0].accepted_items + m[1].accepted_items, RACE_BATCHES * RACE_BATCH);
    struct got_lines g;
    read_all_lines(id, 1, &g);
    ck_assert_uint_eq(g.n, RACE_BATCHES * RACE_BATCH);
    for (size_t i = 0; i < g.n; i++) {
        char want[32];
        snprintf(want, sizeof(want), "{\"n\":%d}", (int)i + 1);
        ck_assert_uint_eq(g.seq[i], i + 1);
        ck_assert_str_eq(g.text[i], want);
    }
    got_free(&g);
    uint64_t next = 1;
    ck_assert_int_eq(store_items_read(st, id, 1, check_item, &next), 0);
    ck_assert_uint_eq(next, RACE_BATCHES * RACE_BATCH + 1);
    struct task_row r;
    get_task(id, &r);
    ck_assert_uint_eq(r.log_lines, RACE_BATCHES * RACE_BATCH);
    ck_assert_uint_eq(r.data_items, RACE_BATCHES * RACE_BATCH);
    store_task_row_free(&r);
}
END_TEST

#define RACE_RETRIED 20

/* Ends each of the tasks in m->ids with a retry; counts in m->n the retries it made. */
static int retry_all(struct store *s, struct master *m)
{
    for (int i = 0; i < RACE_RETRIED; i++) {
        char next[TASK_ID_LEN + 1];
        int rc = store_task_retry(s, m->ids[i], TASK_ERROR, 1, "failed", T0 + 100, T0 + 50, next);
        if (rc < 0)
            return rc;
        m->n += rc == 0;
    }
    return 0;
}

static int count_attempts(void *ctx, const struct task_row *r)
{
    int *n = ctx;
    *n += r->attempt == 2;
    return 0;
}

START_TEST(test_two_masters_retrying_one_task_make_one_next_attempt)
{
    static char ids[RACE_RETRIED][TASK_ID_LEN + 1];
    for (int i = 0; i < RACE_RETRIED; i++) {
        struct task_new t = {.cmd = "false", .node_key = "node-a", .retries = 1};
        ck_assert_int_eq(store_task_create(st, &t, T0, ids[i]), 0);
    }
    struct task_row r;
    for (int i = 0; i < RACE_RETRIED; i++) {
        ck_assert_int_eq(store_task_fetch(st, "node-a", NULL, T0 + 1, &r), 1);
        store_task_row_free(&r);
    }
    struct master m[2] = {{.work = retry_all, .ids = ids}, {.work = retry_all, .ids = ids}};
    race(m);
    /* One of the two ended each task and made its next attempt; the other's was refused. */
    ck_assert_uint_eq(m[0].n + m[1].n, RACE_RETRIED);
    int attempts = 0;
    ck_assert_int_eq(store_task_list(st, "pending", NULL, 0, count_attempts, &attempts), 0);
    ck_assert_int_eq(attempts, RACE_RETRIED);
}
END_TEST

/* Purges in small calls until nothing is left; counts in m->n the tasks it deleted. */
static int purge_all(struct store *s, struct master *m)
{
    bool more = true;
    while (more) {
        size_t purged;
        int rc = store_task_purge(s, T0 + 100, 7, &purged, &more);
        if (rc < 0)
            return rc;
        m->n += purged;
    }
    return 0;
}

START_TEST(test_two_masters_purging_at_once_delete_each_task_once)
{
    char id[25];
    for (int i = 0; i < RACE_TASKS / 4; i++)
        ended_task(id, T0, T0 + 10, TASK_FINISHED, 1, 2);
    struct master m[2] = {{.work = purge_all}, {.work = purge_all}};
    race(m);
    ck_assert_uint_eq(m[0].n + m[1].n, RACE_TASKS / 4);
    ck_assert_int_eq(count_rows("SELECT count(*) FROM tasks"), 0);
    ck_assert_int_eq(count_rows("SELECT count(*) FROM items"), 0);
    ck_assert_int_eq(count_rows("SELECT count(*) FROM task_logs"), 0);
}
END_TEST

#ifdef HAVE_LIBPQ
/*
 * Each race: the first store (st) holds a change in an open group; a second store on the same
 * database, in a thread of its own, makes the competing change; the test waits until the server
 * shows that second connection waiting for a lock (so it did reach the conflict), commits the
 * group, and checks what the second one got.
 */
struct racer {
    struct store *s;
    int (*op)(struct racer *r);
    int rc;
    int64_t id;
    uint32_t version;
    char task[TASK_ID_LEN + 1];
};

static void *race_thread(void *arg)
{
    struct racer *r = arg;
    r->rc = r->op(r);
    return NULL;
}

static void race_start(struct racer *r, pthread_t *th)
{
    ck_assert_int_eq(store_open(location, &r->s), 0);
    ck_assert_int_eq(pthread_create(th, NULL, race_thread, r), 0);
}

static void race_join(struct racer *r, pthread_t th)
{
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    store_close(r->s);
}

/* Polls the server (a deadline, no fixed sleep) until a session of the test's database waits
 * for a lock. */
static void wait_for_a_lock_waiter(void)
{
    PGconn *conn = PQconnectdb(location);
    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "connecting: %s", PQerrorMessage(conn));
    bool waiting = false;
    for (int i = 0; i < 2000 && !waiting; i++) {
        PGresult *res = PQexec(conn, "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                                     " current_database() AND wait_event_type = 'Lock'");
        ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
        waiting = atoi(PQgetvalue(res, 0, 0)) > 0;
        PQclear(res);
        if (!waiting)
            nanosleep(&(struct timespec){.tv_nsec = 5000000}, NULL);
    }
    PQfinish(conn);
    ck_assert_msg(waiting, "the second store never waited for the first one's lock");
}

/* The race itself: the other store runs its change while st's open group holds the conflicting
 * one, and is seen waiting for that group's lock before the group commits. */
static void race_against(struct racer *other)
{
    pthread_t th;
    race_start(other, &th);
    wait_for_a_lock_waiter();
    ck_assert_int_eq(store_commit(st), 0);
    race_join(other, th);
}

static int add_news(struct racer *r)
{
    struct spider_row row = {0};
    snprintf(row.name, sizeof(row.name), "news");
    snprintf(row.sha256, sizeof(row.sha256), "%s", SHA_B);
    return store_spider_add(r->s, &row, T0, &r->version);
}

/* Without the name's lock, both would read version 1 as the latest and the second would fail on
 * the key; with it, the second waits for the first's commit and takes the next version. */
START_TEST(test_pg_two_masters_adding_a_spider_get_two_versions)
{
    ck_assert_uint_eq(add_spider("news", SHA_A), 1);
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_uint_eq(add_spider("news", SHA_A), 2);
    struct racer other = {.op = add_news};
    race_against(&other);
    ck_assert_int_eq(other.rc, 0);
    ck_assert_uint_eq(other.version, 3);
    ck_assert_int_eq(store_spider_list(st, "news", 0, NULL, NULL), 3);
}
END_TEST

static char race_archive[256];

static int put_archive(struct racer *r)
{
    return store_spider_archive_put(r->s, SHA_B, race_archive);
}

/* Two masters storing one archive at once: the second waits for the first's row, finds it, and
 * drops its own copy; one large object is left. */
START_TEST(test_pg_two_masters_storing_one_archive_keep_one_copy)
{
    snprintf(race_archive, sizeof(race_archive), "%s/race.tgz", tmp_root);
    write_archive(race_archive, 4096);
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(store_spider_archive_put(st, SHA_B, race_archive), 0);
    struct racer other = {.op = put_archive};
    race_against(&other);
    ck_assert_int_eq(other.rc, 0);
    PGconn *conn = PQconnectdb(location);
    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "connecting: %s", PQerrorMessage(conn));
    PGresult *res = PQexec(conn, "SELECT (SELECT count(*) FROM spider_archives),"
                                 " (SELECT count(*) FROM pg_largeobject_metadata)");
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    ck_assert_str_eq(PQgetvalue(res, 0, 0), "1");
    ck_assert_str_eq(PQgetvalue(res, 0, 1), "1");
    PQclear(res);
    PQfinish(conn);
}
END_TEST

static int64_t race_schedule;

static int fire_1000(struct racer *r)
{
    struct task_new t = {.name = "s", .cmd = "echo hi"};
    char ids[1][TASK_ID_LEN + 1];
    int rc = store_schedule_fire(r->s, race_schedule, 1000, &t, 1, false, T0, ids);
    snprintf(r->task, sizeof(r->task), "%s", ids[0]);
    return rc;
}

/* The second master's fire at the same time waits for the first one's, then finds its task:
 * the fire has one task, made once. */
START_TEST(test_pg_two_masters_firing_a_schedule_at_one_time_make_one_task)
{
    race_schedule = new_schedule("s", "@every 1s");
    struct racer first = {.s = st}, other = {.op = fire_1000};
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(fire_1000(&first), 0);
    race_against(&other);
    ck_assert_int_eq(other.rc, 1);
    ck_assert_str_eq(other.task, first.task);
    int fires = 0;
    ck_assert_int_eq(store_schedule_fires(st, race_schedule, count_fires_cb, &fires), 0);
    ck_assert_int_eq(fires, 1);
}
END_TEST

static int add_event(struct racer *r)
{
    return store_event_add(r->s, T0, "node.online", "w2", NULL, NULL, &r->id);
}

/* Event ids commit in their order: the second master's event is only given its id once the
 * first one's is committed, so a reader that has seen id 2 has seen id 1. */
START_TEST(test_pg_an_event_id_is_given_only_once_the_one_before_is_committed)
{
    int64_t first, last;
    ck_assert_int_eq(store_begin(st), 0);
    ck_assert_int_eq(store_event_add(st, T0, "node.online", "w1", NULL, NULL, &first), 0);
    struct racer other = {.op = add_event};
    race_against(&other);
    ck_assert_int_eq(other.rc, 0);
    ck_assert_int_eq(other.id, first + 1);
    ck_assert_int_eq(store_event_last(st, &last), 0);
    ck_assert_int_eq(last, other.id);
    uint64_t n;
    ck_assert_int_eq(store_event_count(st, 0, last, &n), 0);
    ck_assert_uint_eq(n, 2);
}
END_TEST
#endif

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("open");
    tcase_add_checked_fixture(tc, setup, teardown);
    SQLITE_ONLY(tc, test_open_creates_data_dir_logs_dir_and_database);
    SQLITE_ONLY(tc, test_second_open_of_the_same_data_dir_is_refused);
    tcase_add_test(tc, test_begin_twice_and_commit_without_begin_are_refused);
    tcase_add_test(tc, test_a_group_begins_its_transaction_with_its_first_change);
    tcase_add_test(tc, test_a_group_is_changed_by_a_write_not_by_a_read);
    suite_add_tcase(s, tc);

    tc = tcase_create("events");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_events_get_increasing_ids_and_are_read_from_a_cursor);
    tcase_add_test(tc, test_a_purged_event_id_is_never_given_again);
    tcase_add_test(tc, test_an_event_whose_group_rolls_back_is_gone_with_its_change);
    tcase_add_test(tc, test_hook_cursors_survive_a_reopen);
    suite_add_tcase(s, tc);

    tc = tcase_create("nodes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_node_upsert_creates_then_updates_and_marks_online);
    tcase_add_test(tc, test_node_status_and_touch_change_known_nodes_only);
    tcase_add_test(tc, test_node_upsert_rejects_empty_key_and_oversized_fields);
    tcase_add_test(tc, test_node_list_is_ordered_by_key_and_its_callback_may_change_nodes);
    suite_add_tcase(s, tc);

    tc = tcase_create("tasks");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_task_create_round_trips_every_field);
    tcase_add_test(tc, test_task_create_fills_defaults_for_missing_optional_fields);
    tcase_add_test(tc, test_task_create_rejects_missing_cmd_and_oversized_name);
    tcase_add_test(tc, test_task_ids_are_unique_and_carry_the_creation_second);
    tcase_add_test(tc, test_task_get_refuses_malformed_and_unknown_ids);
    tcase_add_test(tc, test_fetch_prefers_tasks_addressed_to_the_node);
    tcase_add_test(tc, test_count_by_status_counts_every_status_zero_included);
    tcase_add_test(tc, test_fetch_orders_by_priority_then_age);
    tcase_add_test(tc, test_retry_ends_the_task_and_makes_the_next_attempt);
    tcase_add_test(tc, test_retry_of_an_ended_task_changes_nothing);
    tcase_add_test(tc, test_restart_copies_the_spec_and_links_the_old_task);
    tcase_add_test(tc, test_bad_retries_are_refused);
    tcase_add_test(tc, test_fetch_never_returns_another_nodes_task);
    tcase_add_test(tc, test_fetch_never_returns_a_task_twice);
    tcase_add_test(tc, test_fetch_records_the_assignment_in_history);
    tcase_add_test(tc, test_fetch_rejects_an_empty_node_key);
    tcase_add_test(tc, test_status_changes_apply_allowed_moves_and_record_history);
    tcase_add_test(tc, test_status_reports_are_idempotent_and_backward_moves_are_ignored);
    tcase_add_test(tc, test_pending_task_cannot_jump_to_running);
    tcase_add_test(tc, test_status_change_of_unknown_or_malformed_task_is_refused);
    tcase_add_test(tc, test_assigned_task_returned_to_pending_can_be_fetched_by_another_node);
    tcase_add_test(tc, test_epoch_counts_every_assignment_and_every_return_to_pending);
    tcase_add_test(tc, test_running_without_a_pid_takes_the_pid_of_the_next_running_report);
    tcase_add_test(tc, test_the_row_after_a_move_is_the_row_the_store_leaves);
    SQLITE_ONLY(tc, test_a_schema_1_database_is_upgraded_and_its_tasks_have_epoch_0);
    tcase_add_test(tc, test_node_disconnected_task_can_resume_running);
    tcase_add_test(tc, test_cancel_of_pending_task_cancels_it_at_once);
    tcase_add_test(tc, test_cancel_of_running_task_is_recorded_and_force_sticks);
    tcase_add_test(tc, test_cancel_of_finished_task_changes_nothing);
    tcase_add_test(tc, test_list_is_newest_first_with_filters_and_limit);
    tcase_add_test(tc, test_list_stops_when_the_callback_says_so);
    tcase_add_test(tc, test_list_by_node_lets_the_callback_change_each_task);
    tcase_add_test(tc, test_streaming_callback_cannot_reenter_the_store);
    suite_add_tcase(s, tc);

    tc = tcase_create("logs and items");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_log_resent_prefix_is_skipped);
    tcase_add_test(tc, test_log_gap_is_refused_and_stores_nothing);
    tcase_add_test(tc, test_log_unsequenced_lines_append_after_what_is_stored);
    tcase_add_test(tc, test_log_read_back_is_byte_exact_across_chunk_boundaries);
    tcase_add_test(tc, test_log_read_in_chunks_resumes_right_across_commits_and_rollbacks);
    tcase_add_test(tc, test_log_read_starts_at_any_line_of_a_long_log);
    tcase_add_test(tc, test_log_newline_inside_a_line_is_stored_as_a_space);
    tcase_add_test(tc, test_log_of_task_without_lines_reads_empty);
    SQLITE_ONLY(tc, test_log_append_refuses_bad_ids_without_touching_files);
    tcase_add_test(tc, test_items_are_deduplicated_by_seq_and_read_back_in_order);
    tcase_add_test(tc, test_items_gap_is_refused_and_stores_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("durability");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_group_commit_makes_every_change_durable);
    tcase_add_test(tc, test_group_rollback_discards_rows_and_log_bytes);
    tcase_add_test(tc, test_failed_call_inside_a_group_leaves_no_trace_and_the_group_goes_on);
    SQLITE_ONLY(tc, test_call_failing_midway_inside_a_group_is_undone_entirely);
    tcase_add_test(tc, test_group_spanning_more_tasks_than_open_files_commits_all);
    tcase_add_test(tc, test_close_with_an_open_group_rolls_it_back);
    tcase_add_test(tc, test_reopen_after_close_keeps_nodes_tasks_logs_and_items);
    SQLITE_ONLY(tc, test_crash_leftover_log_bytes_are_cut_back_on_reopen);
    SQLITE_ONLY(tc, test_crash_inside_an_uncommitted_group_loses_only_the_group);
    SQLITE_ONLY(tc, test_log_file_missing_committed_bytes_is_reported_not_papered_over);
    tcase_add_test(tc, test_schedules_are_stored_listed_paused_and_removed);
    tcase_add_test(tc, test_a_fire_makes_one_task_and_repeating_it_makes_none);
    tcase_add_test(tc, test_a_fire_in_a_rolled_back_group_leaves_neither_task_nor_fire);
    tcase_add_test(tc, test_an_all_nodes_fire_makes_its_tasks_at_once_and_once);
    SQLITE_ONLY(tc, test_a_schema_2_or_3_database_is_brought_to_the_latest);
    SQLITE_ONLY(tc, test_a_schema_4_database_gets_labels_and_node_states);
    tcase_add_test(tc, test_fetch_skips_tasks_whose_selector_the_node_does_not_match);
    SQLITE_ONLY(tc, test_a_schema_7_database_is_brought_to_8);
    tcase_add_test(tc, test_spider_versions_count_up_per_name);
    tcase_add_test(tc, test_a_task_keeps_its_spider_and_is_found_by_it);
    tcase_add_test(tc, test_spider_archives_are_kept_by_a_shared_store_only);
    tcase_add_test(tc, test_the_hooks_are_held_by_one_store_at_a_time);
    tcase_add_test(tc, test_a_released_lease_takes_its_masters_nodes_offline_once);
    tcase_add_test(tc, test_pages_see_every_task_once_newest_first);
    tcase_add_test(tc, test_prefix_lookup_tells_none_one_and_several);
    tcase_add_test(tc, test_node_pages_follow_the_key_order);
    tcase_add_test(tc, test_node_named_finds_a_key_and_every_node_of_a_name);
    tcase_add_test(tc, test_purge_takes_ended_tasks_with_logs_items_and_history_only);
    tcase_add_test(tc, test_purge_budget_splits_a_task_with_many_items);
    tcase_add_test(tc, test_purge_in_a_group_removes_logs_only_once_committed);
    SQLITE_ONLY(tc, test_logs_of_a_purge_interrupted_after_its_commit_go_at_open);
    SQLITE_ONLY(tc, test_purge_killed_before_its_commit_loses_nothing);
    SQLITE_ONLY(tc, test_a_schema_2_database_gets_the_purge_index_and_journal);
    SQLITE_ONLY(tc, test_a_schema_5_database_is_brought_to_6_and_keeps_its_priorities);
    SQLITE_ONLY(tc, test_a_schema_9_database_has_no_pushed_task);
    SQLITE_ONLY(tc, test_a_schema_8_database_keeps_its_fires);
    tcase_add_test(tc, test_retry_and_end_commit_or_roll_back_together);
    SQLITE_ONLY(tc, test_a_schema_6_database_gets_the_event_tables);
    suite_add_tcase(s, tc);

    if (pg_server()) {
        tc = tcase_create("postgres races");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_two_masters_fetching_at_once_never_get_one_task_twice);
        tcase_add_test(tc, test_two_masters_appending_one_batch_store_it_once);
        tcase_add_test(tc, test_two_masters_retrying_one_task_make_one_next_attempt);
        tcase_add_test(tc, test_two_masters_purging_at_once_delete_each_task_once);
#ifdef HAVE_LIBPQ
        tcase_add_test(tc, test_pg_two_masters_adding_a_spider_get_two_versions);
        tcase_add_test(tc, test_pg_two_masters_storing_one_archive_keep_one_copy);
        tcase_add_test(tc, test_pg_two_masters_firing_a_schedule_at_one_time_make_one_task);
        tcase_add_test(tc, test_pg_an_event_id_is_given_only_once_the_one_before_is_committed);
#endif
        suite_add_tcase(s, tc);
    }
    return s;
}

const struct unit_tests unit_tests = {.suite = store_suite};
