/*
 * The store's rows on SQLite: nodes, tasks, status history and result items, and the
 * transactions around them. Task logs go to the log engine (store/logfile.h): each task row's
 * log_bytes is its log's committed size, updated in the same transaction as the lines are
 * appended; the engine's files are synced before every COMMIT, cut back after every ROLLBACK, and
 * read up to log_bytes only.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cron.h"
#include "core/rules.h"
#include "core/spider.h"
#include "core/tz.h"
#include "store/backend.h"
#include "store/logfile.h"
#include "runtime/log.h"
#include "runtime/array.h"

/*
 * Schema versions, each brought by one step of schema_steps: 1 the first schema (schema_sql),
 * 2 tasks.epoch (the fenced claim, core/fence.h), 3 retention and paging (migrate_3_sql),
 * 4 schedules and their fires (migrate_4_sql), 5 node labels and states, task selectors
 * (migrate_5_sql), 6 retries, restarts and Crawlab's priority order (migrate_6_sql), 7 events and
 * the hooks' cursors (migrate_7_sql), 8 spiders (migrate_8_sql), 9 named zones and all-nodes
 * schedules (migrate_9_sql).
 */
#define SCHEMA_VERSION 10

static const char schema_sql[] =
    "CREATE TABLE nodes ("
    " key TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL,"
    " max_runners INTEGER NOT NULL, version TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL);"
    "CREATE TABLE tasks ("
    " id TEXT PRIMARY KEY, name TEXT NOT NULL, cmd TEXT NOT NULL, param TEXT NOT NULL,"
    " env_json TEXT NOT NULL, priority INTEGER NOT NULL, timeout_ms INTEGER NOT NULL,"
    " node_key TEXT NOT NULL, assigned_node TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,"
    " pid INTEGER NOT NULL DEFAULT 0, exit_code INTEGER, error TEXT NOT NULL DEFAULT '',"
    " log_lines INTEGER NOT NULL DEFAULT 0, data_items INTEGER NOT NULL DEFAULT 0,"
    " log_bytes INTEGER NOT NULL DEFAULT 0, cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " cancel_force INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL, started_ms INTEGER NOT NULL DEFAULT 0,"
    " ended_ms INTEGER NOT NULL DEFAULT 0);"
    /* The dispatch query walks this partial index in order, so FetchTask costs the same with a
     * million finished tasks as with none. The implicit rowid at its end breaks ties by age. */
    "CREATE INDEX tasks_pending ON tasks(node_key, priority DESC, created_ms)"
    " WHERE status = 'pending';"
    "CREATE INDEX tasks_by_node ON tasks(assigned_node, status);"
    "CREATE INDEX tasks_by_created ON tasks(created_ms);"
    "CREATE TABLE task_history ("
    " seq INTEGER PRIMARY KEY, task_id TEXT NOT NULL, from_status TEXT NOT NULL,"
    " to_status TEXT NOT NULL, at_ms INTEGER NOT NULL);"
    "CREATE INDEX task_history_by_task ON task_history(task_id, seq);"
    "CREATE TABLE items ("
    " task_id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,"
    " PRIMARY KEY (task_id, seq)) WITHOUT ROWID;";

/* Version 2 (the fenced claim): each task's assignment epoch; existing tasks get 0, "none". */
static const char migrate_2_sql[] =
    "ALTER TABLE tasks ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;";

/*
 * Version 3 (retention and paging): the index the purge walks, oldest end first (only ended tasks
 * have an ended_ms), and the journal of deleted tasks whose log files are still to be removed.
 */
static const char migrate_3_sql[] =
    "CREATE INDEX tasks_ended ON tasks(ended_ms) WHERE ended_ms > 0;"
    "CREATE TABLE purged_logs (task_id TEXT PRIMARY KEY) WITHOUT ROWID;";

/*
 * Version 4 (schedules). schedule_fires is the idempotency key of a scheduled task: one row per
 * (schedule, fire time), made in the same transaction as the task.
 */
static const char migrate_4_sql[] =
    "CREATE TABLE schedules ("
    " id INTEGER PRIMARY KEY, name TEXT NOT NULL, expr TEXT NOT NULL,"
    " tz_offset INTEGER NOT NULL, cmd TEXT NOT NULL, env_json TEXT NOT NULL,"
    " priority INTEGER NOT NULL, timeout_ms INTEGER NOT NULL, node_key TEXT NOT NULL,"
    " overlap INTEGER NOT NULL, missed INTEGER NOT NULL, paused INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL, last_fire_s INTEGER NOT NULL DEFAULT 0,"
    " last_task TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE schedule_fires ("
    " schedule_id INTEGER NOT NULL, fire_s INTEGER NOT NULL, task_id TEXT NOT NULL,"
    " PRIMARY KEY (schedule_id, fire_s)) WITHOUT ROWID;";

/*
 * Version 5 (labels and node lifecycle): a node's labels and state (enabled, disabled, draining),
 * the label selector of a task and of a schedule's tasks; labels in their joined form
 * (core/rules.h), "" for none.
 */
static const char migrate_5_sql[] =
    "ALTER TABLE nodes ADD COLUMN labels TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE nodes ADD COLUMN state TEXT NOT NULL DEFAULT 'enabled';"
    "ALTER TABLE tasks ADD COLUMN labels TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE schedules ADD COLUMN labels TEXT NOT NULL DEFAULT '';";

/*
 * Version 6 (retries, restarts, priority as Crawlab has it). A task's links: restart_of, the task
 * it restarts; retry_of, the first attempt of a retried task (and attempt, its number); retries
 * and retry_delay_ms, what it was submitted with (so do schedules); eligible_ms, when a retry may
 * be fetched (0: at once), with the index the wake-up walks. tasks_pending is rebuilt ascending:
 * lower priority numbers run first. Stored tasks keep their numbers.
 */
static const char migrate_6_sql[] =
    "ALTER TABLE tasks ADD COLUMN restart_of TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE tasks ADD COLUMN retry_of TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE tasks ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE tasks ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE tasks ADD COLUMN retry_delay_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE tasks ADD COLUMN eligible_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE schedules ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE schedules ADD COLUMN retry_delay_ms INTEGER NOT NULL DEFAULT 0;"
    "DROP INDEX tasks_pending;"
    "CREATE INDEX tasks_pending ON tasks(node_key, priority, created_ms) WHERE status = 'pending';"
    "CREATE INDEX tasks_waiting ON tasks(eligible_ms) WHERE status = 'pending' AND eligible_ms > "
    "0;";

/*
 * Version 7 (events). AUTOINCREMENT: an id is never given twice, even once the newest events are
 * purged, so that it is a cursor a reader can come back with. event_cursors holds each hook's last
 * delivered event, by the hook's command.
 */
static const char migrate_7_sql[] =
    "CREATE TABLE events ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, kind TEXT NOT NULL,"
    " node_key TEXT NOT NULL, task_id TEXT NOT NULL, data TEXT NOT NULL);"
    "CREATE INDEX events_at ON events(at_ms);"
    "CREATE TABLE event_cursors (hook TEXT PRIMARY KEY, delivered INTEGER NOT NULL)"
    " WITHOUT ROWID;";

/*
 * Version 8 (spiders): the versions of each spider, and the spider each task runs in (its
 * NAME@VERSION as resolved at submit, and the archive's SHA-256; "" for none). The index finds
 * the tasks of a version that a removal must not leave without it. A schedule keeps the spider as
 * it was named (NAME: the latest version at each fire).
 */
static const char migrate_8_sql[] =
    "CREATE TABLE spiders ("
    " name TEXT NOT NULL, version INTEGER NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,"
    " files INTEGER NOT NULL, unpacked INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " PRIMARY KEY (name, version)) WITHOUT ROWID;"
    "ALTER TABLE tasks ADD COLUMN spider TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE tasks ADD COLUMN spider_sha256 TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX tasks_by_spider ON tasks(spider, status) WHERE spider != '';"
    "ALTER TABLE schedules ADD COLUMN spider TEXT NOT NULL DEFAULT '';";

/*
 * Version 9 (named zones, all-nodes schedules): a schedule's zone name ("" = its fixed tz_offset)
 * and whether each fire makes a task on every node; a fire record per (schedule, fire time,
 * node), node_key "" for the one task of other schedules, so that all the tasks of one fire are
 * its records (the table is rebuilt: a primary key cannot be altered).
 */
static const char migrate_9_sql[] =
    "ALTER TABLE schedules ADD COLUMN tz_name TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE schedules ADD COLUMN all_nodes INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE schedule_fires_9 ("
    " schedule_id INTEGER NOT NULL, fire_s INTEGER NOT NULL, node_key TEXT NOT NULL,"
    " task_id TEXT NOT NULL, PRIMARY KEY (schedule_id, fire_s, node_key)) WITHOUT ROWID;"
    "INSERT INTO schedule_fires_9 SELECT schedule_id, fire_s, '', task_id FROM schedule_fires;"
    "DROP TABLE schedule_fires;"
    "ALTER TABLE schedule_fires_9 RENAME TO schedule_fires;";

/*
 * Version 10 (tasks pushed with their spec): whether a task's assignment was pushed to its node,
 * which may then start it before any report reaches the master; kept with the assignment, so that
 * a master restarted meanwhile still treats the task as possibly started.
 */
static const char migrate_10_sql[] =
    "ALTER TABLE tasks ADD COLUMN pushed INTEGER NOT NULL DEFAULT 0;";

/* schema_steps[v] brings a database from version v to v + 1 (version 0: an empty one). */
static const char *const schema_steps[SCHEMA_VERSION] = {
    schema_sql,    migrate_2_sql, migrate_3_sql, migrate_4_sql, migrate_5_sql,
    migrate_6_sql, migrate_7_sql, migrate_8_sql, migrate_9_sql, migrate_10_sql};

/* The terminal statuses (task_status_terminal), as the purge's queries name them. */
#define ENDED_STATUSES "('finished', 'error', 'cancelled', 'abnormal')"

#define TASK_COLS                                                                                  \
    "id, name, cmd, param, env_json, priority, timeout_ms, node_key, assigned_node, status, pid, " \
    "exit_code, error, log_lines, data_items, log_bytes, cancel_requested, cancel_force, "         \
    "created_ms, updated_ms, started_ms, ended_ms, epoch, labels, restart_of, retry_of, attempt, " \
    "retries, retry_delay_ms, eligible_ms, spider, spider_sha256, pushed"

#define NODE_COLS "key, name, status, max_runners, created_ms, last_seen_ms, version, labels, state"

enum stmt_id {
    ST_BEGIN,
    ST_BEGIN_GROUP,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_NODE_UPSERT,
    ST_NODE_SET_STATUS,
    ST_NODE_TOUCH,
    ST_NODE_GET,
    ST_NODE_SET_STATE,
    ST_NODE_DELETE,
    ST_TASK_INSERT,
    ST_TASK_GET,
    ST_TASK_WAKE_NEXT,
    ST_TASK_WAKE_NODES,
    ST_TASK_PICK,
    ST_TASK_ASSIGN,
    ST_TASK_STATUS,
    ST_TASK_SET_STATUS,
    ST_TASK_SET_PID,
    ST_TASK_EPOCH,
    ST_TASK_CANCEL,
    ST_TASK_LIST_BY_NODE,
    ST_TASK_COUNTS,
    ST_TASK_SET_LOG,
    ST_TASK_SET_ITEMS,
    ST_HISTORY_INSERT,
    ST_HISTORY_LIST,
    ST_ITEM_INSERT,
    ST_ITEMS_READ,
    ST_NODE_PAGE,
    ST_NODE_NAMED,
    ST_TASK_PAGE_FIRST,
    ST_TASK_PAGE_AFTER,
    ST_TASK_POS,
    ST_TASK_PREFIX,
    ST_PURGE_PICK,
    ST_PURGE_COUNT,
    ST_ITEMS_MIN,
    ST_ITEMS_DELETE,
    ST_HISTORY_DELETE,
    ST_TASK_DELETE,
    ST_JOURNAL_ADD,
    ST_JOURNAL_DEL,
    ST_EVENT_ADD,
    ST_EVENT_PAGE,
    ST_EVENT_LAST,
    ST_EVENT_COUNT,
    ST_EVENT_PURGE,
    ST_CURSOR_GET,
    ST_CURSOR_SET,
    ST_COUNT
};

/* Every statement is prepared once at open. Values from the wire only ever reach SQLite as bound
 * parameters; the status names written literally here are our own constants. */
static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    /* A group's transaction takes SQLite's locks at its first read or write, not at its start: a
     * group in which no call touched the store (a loop iteration of heartbeats) then costs no lock
     * and no system call. Its upgrade to the write lock cannot meet another writer: this process
     * is the only one (the data directory's lock). */
    [ST_BEGIN_GROUP] = "BEGIN DEFERRED",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT op",
    [ST_RELEASE] = "RELEASE op",
    [ST_ROLLBACK_TO] = "ROLLBACK TO op",
    [ST_NODE_UPSERT] =
        "INSERT INTO nodes (key, name, status, max_runners, version, created_ms, last_seen_ms,"
        " labels) VALUES (?1, ?2, 'online', ?3, ?4, ?5, ?5, ?6)"
        " ON CONFLICT (key) DO UPDATE SET name = excluded.name, status = 'online',"
        " max_runners = excluded.max_runners, version = excluded.version,"
        " last_seen_ms = excluded.last_seen_ms, labels = excluded.labels",
    [ST_NODE_SET_STATUS] = "UPDATE nodes SET status = ?2,"
                           " last_seen_ms = CASE WHEN ?2 = 'online' THEN ?3 ELSE last_seen_ms END"
                           " WHERE key = ?1",
    [ST_NODE_TOUCH] = "UPDATE nodes SET last_seen_ms = ?2 WHERE key = ?1",
    [ST_NODE_GET] = "SELECT " NODE_COLS " FROM nodes WHERE key = ?1",
    [ST_NODE_SET_STATE] = "UPDATE nodes SET state = ?2 WHERE key = ?1",
    [ST_NODE_DELETE] = "DELETE FROM nodes WHERE key = ?1",
    [ST_TASK_INSERT] = "INSERT INTO tasks (id, name, cmd, param, env_json, priority, timeout_ms,"
                       " node_key, status, created_ms, updated_ms, labels, retries, retry_delay_ms,"
                       " restart_of, retry_of, attempt, eligible_ms, spider, spider_sha256)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?9, ?10, ?11, ?12,"
                       " ?13, ?14, ?15, ?16, ?17, ?18)",
    [ST_TASK_GET] = "SELECT " TASK_COLS " FROM tasks WHERE id = ?1",
    /* Both walk tasks_waiting (the "eligible_ms > 0" lets the planner use the partial index). */
    [ST_TASK_WAKE_NEXT] = "SELECT min(eligible_ms) FROM tasks"
                          " WHERE status = 'pending' AND eligible_ms > 0 AND eligible_ms > ?1",
    [ST_TASK_WAKE_NODES] = "SELECT DISTINCT node_key, labels FROM tasks WHERE status = 'pending'"
                           " AND eligible_ms > 0 AND eligible_ms > ?1 AND eligible_ms <= ?2",
    /* Lower priority numbers first (Crawlab's order); a retry waits for its eligible_ms (?3); a
     * task with a label selector goes only to a node that has all its labels (?2). */
    [ST_TASK_PICK] = "SELECT id FROM tasks WHERE status = 'pending' AND node_key = ?1"
                     " AND eligible_ms <= ?3 AND (labels = '' OR labels_match(labels, ?2))"
                     " ORDER BY priority, created_ms, rowid LIMIT 1",
    /* Every assignment is a new epoch; so is every return to pending (ST_TASK_SET_STATUS). */
    [ST_TASK_ASSIGN] = "UPDATE tasks SET status = 'assigned', assigned_node = ?2, updated_ms = ?3,"
                       " epoch = epoch + 1, pushed = ?4 WHERE id = ?1 AND status = 'pending'",
    [ST_TASK_STATUS] = "SELECT status FROM tasks WHERE id = ?1",
    [ST_TASK_SET_STATUS] =
        "UPDATE tasks SET status = ?2, updated_ms = ?3,"
        " pid = CASE WHEN ?7 THEN 0 ELSE coalesce(?4, pid) END,"
        " exit_code = coalesce(?5, exit_code), error = coalesce(?6, error),"
        " assigned_node = CASE WHEN ?7 THEN '' ELSE assigned_node END,"
        " pushed = CASE WHEN ?7 THEN 0 ELSE pushed END,"
        " epoch = CASE WHEN ?7 THEN epoch + 1 ELSE epoch END,"
        " started_ms = CASE WHEN ?8 AND started_ms = 0 THEN ?3 ELSE started_ms END,"
        " ended_ms = CASE WHEN ?9 THEN ?3 ELSE ended_ms END"
        " WHERE id = ?1",
    [ST_TASK_SET_PID] = "UPDATE tasks SET pid = ?2 WHERE id = ?1 AND pid = 0",
    [ST_TASK_EPOCH] = "SELECT epoch FROM tasks WHERE id = ?1",
    [ST_TASK_CANCEL] = "UPDATE tasks SET cancel_requested = 1, cancel_force = (cancel_force OR ?2),"
                       " updated_ms = ?3 WHERE id = ?1",
    [ST_TASK_LIST_BY_NODE] = "SELECT " TASK_COLS " FROM tasks"
                             " WHERE assigned_node = ?1 AND status = ?2"
                             " ORDER BY created_ms, rowid",
    [ST_TASK_COUNTS] = "SELECT log_lines, log_bytes, data_items FROM tasks WHERE id = ?1",
    [ST_TASK_SET_LOG] = "UPDATE tasks SET log_lines = ?2, log_bytes = ?3 WHERE id = ?1",
    [ST_TASK_SET_ITEMS] = "UPDATE tasks SET data_items = ?2 WHERE id = ?1",
    [ST_HISTORY_INSERT] = "INSERT INTO task_history (task_id, from_status, to_status, at_ms)"
                          " VALUES (?1, ?2, ?3, ?4)",
    [ST_HISTORY_LIST] = "SELECT from_status, to_status, at_ms FROM task_history"
                        " WHERE task_id = ?1 ORDER BY seq",
    [ST_ITEM_INSERT] = "INSERT INTO items (task_id, seq, data) VALUES (?1, ?2, ?3)",
    [ST_ITEMS_READ] = "SELECT seq, data FROM items WHERE task_id = ?1 AND seq >= ?2 ORDER BY seq",
    [ST_NODE_PAGE] = "SELECT " NODE_COLS " FROM nodes WHERE key > ?1 ORDER BY key LIMIT ?2",
    [ST_NODE_NAMED] = "SELECT " NODE_COLS " FROM nodes WHERE key = ?1 OR name = ?1 ORDER BY key",
    /* The page queries walk tasks_by_created backwards (its entries end with the rowid); the
     * position's rowid is read after the row's columns, whatever their number. A list is a first
     * page. */
    [ST_TASK_PAGE_FIRST] = "SELECT " TASK_COLS ", rowid FROM tasks"
                           " WHERE (?1 IS NULL OR status = ?1)"
                           " AND (?2 IS NULL OR assigned_node = ?2 OR node_key = ?2)"
                           " ORDER BY created_ms DESC, rowid DESC LIMIT ?3",
    [ST_TASK_PAGE_AFTER] = "SELECT " TASK_COLS ", rowid FROM tasks"
                           " WHERE created_ms <= ?4 AND (created_ms < ?4 OR rowid < ?5)"
                           " AND (?1 IS NULL OR status = ?1)"
                           " AND (?2 IS NULL OR assigned_node = ?2 OR node_key = ?2)"
                           " ORDER BY created_ms DESC, rowid DESC LIMIT ?3",
    [ST_TASK_POS] = "SELECT created_ms, rowid FROM tasks WHERE id = ?1",
    /* Ids are lowercase hex, so every id starting with the prefix sorts before prefix + "g". */
    [ST_TASK_PREFIX] =
        "SELECT id FROM tasks WHERE id >= ?1 AND id < ?1 || 'g' ORDER BY id LIMIT ?2",
    [ST_PURGE_PICK] = "SELECT id, data_items FROM tasks"
                      " WHERE ended_ms > 0 AND ended_ms < ?1 AND status IN " ENDED_STATUSES
                      " ORDER BY ended_ms LIMIT ?2",
    [ST_PURGE_COUNT] = "SELECT count(*) FROM tasks"
                       " WHERE ended_ms > 0 AND ended_ms < ?1 AND status IN " ENDED_STATUSES,
    [ST_ITEMS_MIN] = "SELECT min(seq) FROM items WHERE task_id = ?1",
    [ST_ITEMS_DELETE] = "DELETE FROM items WHERE task_id = ?1 AND seq <= ?2",
    [ST_HISTORY_DELETE] = "DELETE FROM task_history WHERE task_id = ?1",
    [ST_TASK_DELETE] = "DELETE FROM tasks WHERE id = ?1",
    [ST_JOURNAL_ADD] = "INSERT OR IGNORE INTO purged_logs (task_id) VALUES (?1)",
    [ST_JOURNAL_DEL] = "DELETE FROM purged_logs WHERE task_id = ?1",
    [ST_EVENT_ADD] = "INSERT INTO events (at_ms, kind, node_key, task_id, data)"
                     " VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_EVENT_PAGE] = "SELECT id, at_ms, kind, node_key, task_id, data FROM events"
                      " WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
    /* The highest id ever given, also when those events are purged since. */
    [ST_EVENT_LAST] = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
    [ST_EVENT_COUNT] = "SELECT count(*) FROM events WHERE id > ?1 AND id <= ?2",
    [ST_EVENT_PURGE] = "DELETE FROM events WHERE id IN"
                       " (SELECT id FROM events WHERE at_ms < ?1 ORDER BY at_ms LIMIT ?2)",
    [ST_CURSOR_GET] = "SELECT delivered FROM event_cursors WHERE hook = ?1",
    [ST_CURSOR_SET] = "INSERT INTO event_cursors (hook, delivered) VALUES (?1, ?2)"
                      " ON CONFLICT (hook) DO UPDATE SET delivered = excluded.delivered",
};

struct sqlite_store {
    struct store base; /* first: the store.h handle is this struct */
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    struct logfile *logs;
    int dir_fd;
    int lock_fd;
    char *data_dir;

    bool in_group;
    /* SQLite aborted the group's transaction by itself (disk full, I/O error). */
    bool group_broken;
    /* A callback of a streaming function is running: the store must not be re-entered. */
    bool streaming;

    struct store_ids ids;

    /* Retention: tasks deleted in the open transaction (their logs may go once it commits);
     * tasks whose deletion is committed and whose logs store_purge_logs removes; tasks whose
     * logs are gone for good, whose journal entries the next purge drops. */
    struct id_set {
        char (*ids)[TASK_ID_LEN + 1];
        size_t n, cap;
    } purged_uncommitted, purged_committed, journal_done;
};

static struct sqlite_store *sqlite_of(struct store *base)
{
    return (struct sqlite_store *)base;
}

static const struct store_ops sqlite_ops;

/* ---- Error helpers ---- */

static int errno_of_sqlite(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_CONSTRAINT:
        return -EEXIST;
    case SQLITE_READONLY:
    case SQLITE_PERM:
        return -EACCES;
    default:
        return -EIO;
    }
}

/* Logs a database failure with its context and maps it to a negative errno. */
static int db_fail(struct sqlite_store *s, int rc, const char *what, const char *ctx)
{
    log_error("store: %s failed for %s: %s (sqlite %d)", what, ctx ? ctx : "-",
              sqlite3_errmsg(s->db), rc);
    return errno_of_sqlite(rc);
}

/* Every public function starts here: re-entering the store from a streaming callback would reset
 * the statement that is being stepped, so it is refused loudly instead. */
static int enter(struct sqlite_store *s, const char *fn)
{
    if (s->streaming) {
        log_error("store: %s called from a streaming callback; refused", fn);
        return -EBUSY;
    }
    return 0;
}

/* ---- Statement helpers ---- */

static void finish(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static void bind_text(sqlite3_stmt *st, int idx, const char *v)
{
    if (v)
        sqlite3_bind_text(st, idx, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, idx);
}

/* Runs a statement that returns no rows. */
static int step_done(struct sqlite_store *s, sqlite3_stmt *st, const char *what, const char *ctx)
{
    int rc = sqlite3_step(st);
    int ret = 0;
    if (rc != SQLITE_DONE)
        ret = db_fail(s, rc, what, ctx);
    finish(st);
    return ret;
}

static int exec_simple(struct sqlite_store *s, enum stmt_id id, const char *ctx)
{
    return step_done(s, s->st[id], stmt_sql[id], ctx);
}

static void copy_column(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, t, n);
    dst[n] = '\0';
}

static char *dup_column(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, t, n);
    p[n] = '\0';
    return p;
}

static uint64_t column_u64(sqlite3_stmt *st, int col)
{
    sqlite3_int64 v = sqlite3_column_int64(st, col);
    return v < 0 ? 0 : (uint64_t)v;
}

/*
 * Steps a bound query to its end, collecting its rows, and resets it: the callbacks that are given
 * the rows afterwards may call into the store. copy fills one element of size bytes from the
 * current row: 0, or -errno with nothing left in the element to free. *rows and *n receive what
 * was collected, also on an error; the caller frees it. 0 or -errno (logged, but for copy's).
 */
static int collect_rows(struct sqlite_store *s, sqlite3_stmt *st, size_t size,
                        int (*copy)(sqlite3_stmt *st, void *row), void **rows, size_t *n,
                        const char *what, const char *ctx)
{
    char *at = NULL;
    size_t cap = 0;
    int src, rc = 0;
    *n = 0;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        char *grown = array_grow(at, *n, &cap, size, 16);
        if (!grown) {
            log_error("store: out of memory collecting rows");
            rc = -ENOMEM;
            break;
        }
        at = grown;
        if ((rc = copy(st, at + *n * size)) < 0)
            break;
        (*n)++;
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = db_fail(s, src, what, ctx);
    finish(st);
    *rows = at;
    return rc;
}

/* ---- Transactions ---- */

static void rollback_all(struct sqlite_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        exec_simple(s, ST_ROLLBACK, "rollback");
    logfile_rollback(s->logs);
    s->purged_uncommitted.n = 0;
}

static int id_set_add(struct id_set *set, const char *id)
{
    char(*ids)[TASK_ID_LEN + 1] = array_grow(set->ids, set->n, &set->cap, sizeof(*ids), 64);
    if (!ids)
        return -ENOMEM;
    set->ids = ids;
    memcpy(set->ids[set->n++], id, TASK_ID_LEN + 1);
    return 0;
}

/* At open and close: removes the logs of every task whose deletion is committed, here and now,
 * and syncs the directory; then their journal entries may go (the next purge drops them). If a
 * removal or the sync fails, the entries stay and the next store_open tries again. Returns how
 * many files were removed. */
static size_t remove_purged_logs_now(struct sqlite_store *s)
{
    struct id_set *c = &s->purged_committed;
    bool all = true;
    size_t removed = 0;
    for (size_t i = 0; i < c->n; i++) {
        int rc = logfile_remove(s->logs, c->ids[i]);
        if (rc < 0)
            all = false;
        else
            removed += (size_t)rc;
    }
    if (all && c->n && logfile_sync_dir(s->logs) == 0)
        for (size_t i = 0; i < c->n; i++)
            if (id_set_add(&s->journal_done, c->ids[i]) < 0)
                break;
    c->n = 0;
    return removed;
}

/* While the master runs: hands up to max logs of tasks whose deletion is committed to the log
 * engine's remover thread, and takes back those whose removal is durable, whose journal entries
 * the next purge drops. *pending receives how many handed over are not back yet. */
static void discard_purged_logs(struct sqlite_store *s, size_t max, size_t *pending)
{
    struct id_set *c = &s->purged_committed;
    size_t n = c->n < max ? c->n : max;
    size_t handed = 0;
    while (handed < n && logfile_discard(s->logs, c->ids[c->n - 1 - handed]) >= 0)
        handed++;
    c->n -= handed;
    char ids[64][TASK_ID_LEN + 1];
    size_t got;
    while ((got = logfile_discarded(s->logs, ids, 64, pending)) > 0)
        for (size_t i = 0; i < got; i++)
            if (id_set_add(&s->journal_done, ids[i]) < 0)
                return; /* their entries stay in the journal until the next open */
}

/* The deletions of the transaction are committed: their logs may go. One that cannot be
 * remembered (out of memory) stays in the journal for the next open. */
static void purged_now_committed(struct sqlite_store *s)
{
    struct id_set *u = &s->purged_uncommitted;
    for (size_t i = 0; i < u->n; i++)
        if (id_set_add(&s->purged_committed, u->ids[i]) < 0)
            break;
    u->n = 0;
}

/* Log files first, then COMMIT: a crash in between leaves bytes beyond the committed size, which
 * the next open cuts away. The other order could count bytes that never reached the disk. */
static int commit_all(struct sqlite_store *s)
{
    int rc = logfile_sync(s->logs);
    if (rc == 0)
        rc = exec_simple(s, ST_COMMIT, "commit");
    if (rc < 0) {
        rollback_all(s);
        return rc;
    }
    logfile_commit(s->logs);
    purged_now_committed(s);
    return 0;
}

/* Every mutating call runs between op_begin and op_end: its own transaction outside a group, a
 * savepoint inside one, so that a failed call never leaves half of itself behind. */
static int op_begin(struct sqlite_store *s)
{
    if (!s->in_group)
        return exec_simple(s, ST_BEGIN, "begin");
    if (s->group_broken)
        return -EIO;
    return exec_simple(s, ST_SAVEPOINT, "savepoint");
}

/* Ends the call started by op_begin. rc < 0 undoes it; otherwise rc (0 or a positive result) is
 * returned unless committing fails. */
static int op_end(struct sqlite_store *s, int rc)
{
    if (!s->in_group) {
        if (rc < 0) {
            rollback_all(s);
            return rc;
        }
        int c = commit_all(s);
        return c < 0 ? c : rc;
    }
    if (rc < 0) {
        if (sqlite3_get_autocommit(s->db)) {
            log_error("store: the database aborted the open group after an error; the group "
                      "will be rolled back");
            s->group_broken = true;
            logfile_rollback(s->logs);
            return rc;
        }
        exec_simple(s, ST_ROLLBACK_TO, "rollback to savepoint");
        exec_simple(s, ST_RELEASE, "release savepoint");
        return rc;
    }
    int r = exec_simple(s, ST_RELEASE, "release savepoint");
    return r < 0 ? r : rc;
}

/* The start of a public call that changes the store: enter, then op_begin. */
static int enter_op(struct sqlite_store *s, const char *fn)
{
    int rc = enter(s, fn);
    return rc < 0 ? rc : op_begin(s);
}

static int sqlite_begin(struct store *base)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    if (s->in_group)
        return -EALREADY;
    rc = exec_simple(s, ST_BEGIN_GROUP, "begin");
    if (rc < 0)
        return rc;
    s->in_group = true;
    s->group_broken = false;
    return 0;
}

static int sqlite_commit(struct store *base)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    if (!s->in_group)
        return -EINVAL;
    s->in_group = false;
    if (s->group_broken) {
        s->group_broken = false;
        rollback_all(s);
        return -EIO;
    }
    return commit_all(s);
}

static int sqlite_rollback(struct store *base)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    if (!s->in_group)
        return -EINVAL;
    s->in_group = false;
    s->group_broken = false;
    rollback_all(s);
    return 0;
}

/* ---- Open and close ---- */

/* Creates path and its missing parents, like mkdir -p. */
static int make_dirs(const char *path, mode_t mode)
{
    char *p = strdup(path);
    if (!p)
        return -ENOMEM;
    int rc = 0;
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char saved = *c;
        *c = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        *c = saved;
        if (saved == '\0')
            break;
    }
    free(p);
    return rc;
}

static int read_user_version(struct sqlite_store *s, int *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_fail(s, rc, "reading the schema version", s->data_dir);
    rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int(st, 0);
    else
        ret = db_fail(s, rc, "reading the schema version", s->data_dir);
    sqlite3_finalize(st);
    return ret;
}

/*
 * The database holds every task's command and environment, secrets among them: it and its -wal
 * and -shm files (which SQLite creates with the database's mode) are the owner's alone, also in a
 * data directory that was made readable by others beforehand, and also when an older version
 * created them 0644.
 */
static int make_db_private(struct sqlite_store *s)
{
    int fd = openat(s->dir_fd, "crawlab.db", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || fchmod(fd, 0600) < 0) {
        int err = -errno;
        log_error("cannot make %s/crawlab.db private: %s", s->data_dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return err;
    }
    close(fd);
    static const char *const companions[] = {"crawlab.db-wal", "crawlab.db-shm"};
    for (size_t i = 0; i < sizeof(companions) / sizeof(companions[0]); i++)
        if (fchmodat(s->dir_fd, companions[i], 0600, 0) < 0 && errno != ENOENT)
            log_warn("cannot make %s/%s private: %s", s->data_dir, companions[i], strerror(errno));
    return 0;
}

/* labels_match(want, have) in SQL: core's labels_match on the stored joined forms. */
static void sql_labels_match(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const char *want = (const char *)sqlite3_value_text(argv[0]);
    const char *have = (const char *)sqlite3_value_text(argv[1]);
    sqlite3_result_int(ctx, labels_match(want, have));
}

static int setup_db(struct sqlite_store *s)
{
    int prc = make_db_private(s);
    if (prc < 0)
        return prc;
    char *path = malloc(strlen(s->data_dir) + sizeof("/crawlab.db"));
    if (!path)
        return -ENOMEM;
    sprintf(path, "%s/crawlab.db", s->data_dir);
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    free(path);
    if (rc != SQLITE_OK) {
        if (!s->db)
            return -ENOMEM;
        return db_fail(s, rc, "opening crawlab.db", s->data_dir);
    }
    sqlite3_extended_result_codes(s->db, 1);

    sqlite3_stmt *st;
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_fail(s, rc, "setting WAL mode", s->data_dir);
    rc = sqlite3_step(st);
    bool wal =
        rc == SQLITE_ROW && sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    sqlite3_finalize(st);
    if (!wal) {
        log_error("store: %s/crawlab.db could not be switched to WAL mode", s->data_dir);
        return -EIO;
    }
    char *err = NULL;
    rc = sqlite3_exec(s->db, "PRAGMA synchronous = FULL", NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        log_error("store: setting synchronous=FULL on %s failed: %s", s->data_dir, err);
        sqlite3_free(err);
        return errno_of_sqlite(rc);
    }

    int version = 0;
    rc = read_user_version(s, &version);
    if (rc < 0)
        return rc;
    if (version > SCHEMA_VERSION) {
        log_error("store: %s/crawlab.db has schema version %d, newer than this build's %d",
                  s->data_dir, version, SCHEMA_VERSION);
        return -EPROTO;
    }
    /* Each step and its new version number commit together, so a crash leaves a version. */
    for (int v = version; v < SCHEMA_VERSION; v++) {
        size_t len = strlen(schema_steps[v]) + 64;
        char *sql = malloc(len);
        if (!sql)
            return -ENOMEM;
        snprintf(sql, len, "BEGIN; %s PRAGMA user_version = %d; COMMIT;", schema_steps[v], v + 1);
        rc = sqlite3_exec(s->db, sql, NULL, NULL, &err);
        free(sql);
        if (rc != SQLITE_OK) {
            log_error("store: bringing the schema in %s to version %d failed: %s", s->data_dir,
                      v + 1, err);
            sqlite3_free(err);
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return errno_of_sqlite(rc);
        }
    }

    rc = sqlite3_create_function(s->db, "labels_match", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                                 sql_labels_match, NULL, NULL);
    if (rc != SQLITE_OK)
        return db_fail(s, rc, "adding labels_match", s->data_dir);
    for (int i = 0; i < ST_COUNT; i++) {
        rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
        if (rc != SQLITE_OK)
            return db_fail(s, rc, "preparing a statement", stmt_sql[i]);
    }
    return 0;
}

static int open_dirs(struct sqlite_store *s)
{
    int rc = make_dirs(s->data_dir, 0750);
    if (rc < 0) {
        log_error("store: creating data dir %s failed: %s", s->data_dir, strerror(-rc));
        return rc;
    }
    s->dir_fd = open(s->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dir_fd < 0) {
        rc = -errno;
        log_error("store: opening data dir %s failed: %s", s->data_dir, strerror(-rc));
        return rc;
    }
    s->lock_fd = openat(s->dir_fd, "crawlab.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        rc = -errno;
        log_error("store: creating %s/crawlab.lock failed: %s", s->data_dir, strerror(-rc));
        return rc;
    }
    /* Two masters on one data dir would each cut the other's uncommitted log bytes away. */
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        rc = -errno;
        if (rc == -EWOULDBLOCK) {
            log_error("store: data dir %s is in use by another master", s->data_dir);
            return -EBUSY;
        }
        log_error("store: locking data dir %s failed: %s", s->data_dir, strerror(-rc));
        return rc;
    }
    return logfile_open(s->data_dir, "logs", STORE_LOG_FD_CACHE, &s->logs);
}

static int collect_journal(void *ctx, int n, char **values, char **names)
{
    struct sqlite_store *s = ctx;
    if (n < 1 || !values[0] || !task_id_valid(values[0]))
        return 0;
    return id_set_add(&s->purged_committed, values[0]) < 0 ? 1 : 0;
}

/* A crash between a purge's commit and the removal of its logs leaves journal entries: their
 * tasks are gone, so their logs go now, and then the entries. */
static int recover_purged_logs(struct sqlite_store *s)
{
    char *err = NULL;
    int rc = sqlite3_exec(s->db, "SELECT task_id FROM purged_logs", collect_journal, s, &err);
    if (rc != SQLITE_OK) {
        log_error("store: reading the purge journal in %s failed: %s", s->data_dir,
                  err ? err : sqlite3_errmsg(s->db));
        sqlite3_free(err);
        s->purged_committed.n = 0;
        return rc == SQLITE_ABORT ? -ENOMEM : errno_of_sqlite(rc);
    }
    size_t n = s->purged_committed.n;
    if (n == 0)
        return 0;
    size_t removed = remove_purged_logs_now(s);
    if (s->journal_done.n < n)
        return 0; /* some log could not be removed: the entries stay for the next open */
    s->journal_done.n = 0;
    rc = sqlite3_exec(s->db, "DELETE FROM purged_logs", NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        log_warn("store: emptying the purge journal in %s failed: %s", s->data_dir, err);
        sqlite3_free(err);
    }
    if (removed)
        log_info("store: removed %zu log files of purged tasks, left by an interrupted purge",
                 removed);
    return 0;
}

static void sqlite_close(struct store *base);

int sqlite_store_open(const char *data_dir, struct store **out)
{
    if (!data_dir || !*data_dir || !out)
        return -EINVAL;
    struct sqlite_store *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->base.ops = &sqlite_ops;
    s->dir_fd = s->lock_fd = -1;
    s->data_dir = strdup(data_dir);
    int rc = s->data_dir ? 0 : -ENOMEM;
    if (rc == 0)
        rc = open_dirs(s);
    if (rc == 0)
        rc = setup_db(s);
    if (rc == 0)
        rc = recover_purged_logs(s);
    if (rc == 0)
        rc = store_ids_init(&s->ids);
    if (rc < 0) {
        sqlite_close(&s->base);
        return rc;
    }
    /* The database file may be new: make its directory entry durable before anything counts on
     * it. */
    if (fsync(s->dir_fd) < 0)
        log_warn("store: fsync of data dir %s failed: %s", s->data_dir, strerror(errno));
    *out = &s->base;
    return 0;
}

static void sqlite_close(struct store *base)
{
    struct sqlite_store *s = sqlite_of(base);
    if (!s)
        return;
    if (s->db && s->in_group) {
        log_warn("store: closing with an open group; its changes are rolled back");
        s->in_group = false;
        rollback_all(s);
    }
    if (s->logs)
        remove_purged_logs_now(s);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        log_error("store: closing crawlab.db in %s failed: %s", s->data_dir, sqlite3_errmsg(s->db));
    logfile_close(s->logs);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    if (s->dir_fd >= 0)
        close(s->dir_fd);
    free(s->data_dir);
    free(s->purged_uncommitted.ids);
    free(s->purged_committed.ids);
    free(s->journal_done.ids);
    free(s);
}

/* ---- Nodes ---- */

/* The current row of a NODE_COLS query into row, a struct node_row. Always 0 (collect_rows). */
static int node_from_stmt(sqlite3_stmt *st, void *row)
{
    struct node_row *r = row;
    copy_column(r->key, sizeof(r->key), st, 0);
    copy_column(r->name, sizeof(r->name), st, 1);
    copy_column(r->status, sizeof(r->status), st, 2);
    r->max_runners = sqlite3_column_int(st, 3);
    r->created_ms = sqlite3_column_int64(st, 4);
    r->last_seen_ms = sqlite3_column_int64(st, 5);
    copy_column(r->version, sizeof(r->version), st, 6);
    copy_column(r->labels, sizeof(r->labels), st, 7);
    copy_column(r->state, sizeof(r->state), st, 8);
    return 0;
}

/* Runs a one-row UPDATE of a node and ends the op its caller began; -ENOENT when no row matched. */
static int node_update(struct sqlite_store *s, sqlite3_stmt *st, const char *what, const char *key)
{
    int rc = step_done(s, st, what, key);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = -ENOENT;
    return op_end(s, rc);
}

static int sqlite_node_upsert(struct store *base, const char *key, const char *name,
                              int max_runners, const char *version, const char *labels,
                              int64_t now_ms)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter_op(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_NODE_UPSERT];
    bind_text(st, 1, key);
    bind_text(st, 2, name ? name : "");
    sqlite3_bind_int(st, 3, max_runners);
    bind_text(st, 4, version ? version : "");
    sqlite3_bind_int64(st, 5, now_ms);
    bind_text(st, 6, labels ? labels : "");
    return op_end(s, step_done(s, st, "registering node", key));
}

static int sqlite_node_set_state(struct store *base, const char *key, const char *state)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter_op(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_NODE_SET_STATE];
    bind_text(st, 1, key);
    bind_text(st, 2, state);
    return node_update(s, st, "setting node state", key);
}

static int sqlite_node_delete(struct store *base, const char *key)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter_op(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_NODE_DELETE];
    bind_text(st, 1, key);
    return node_update(s, st, "removing node", key);
}

static int sqlite_node_set_status(struct store *base, const char *key, const char *status,
                                  int64_t now_ms)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter_op(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_NODE_SET_STATUS];
    bind_text(st, 1, key);
    bind_text(st, 2, status);
    sqlite3_bind_int64(st, 3, now_ms);
    return node_update(s, st, "setting node status", key);
}

static int sqlite_node_touch(struct store *base, const char *key, int64_t now_ms)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter_op(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_NODE_TOUCH];
    bind_text(st, 1, key);
    sqlite3_bind_int64(st, 2, now_ms);
    return node_update(s, st, "touching node", key);
}

static int sqlite_node_get(struct store *base, const char *key, struct node_row *out)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_NODE_GET];
    bind_text(st, 1, key);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rc = node_from_stmt(st, out);
    else if (rc == SQLITE_DONE)
        rc = -ENOENT;
    else
        rc = db_fail(s, rc, "reading node", key);
    finish(st);
    return rc;
}

/* The rows of a bound node query, collected first: cb may call into the store. */
static int node_rows(struct sqlite_store *s, sqlite3_stmt *st, const char *subject,
                     int (*cb)(void *ctx, const struct node_row *r), void *ctx)
{
    struct node_row *rows;
    size_t n;
    int rc = collect_rows(s, st, sizeof(*rows), node_from_stmt, (void **)&rows, &n, "listing nodes",
                          subject);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = cb(ctx, &rows[i]);
    free(rows);
    return rc;
}

static int sqlite_node_page(struct store *base, const char *after_key, unsigned limit,
                            int (*cb)(void *ctx, const struct node_row *r), void *ctx)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_NODE_PAGE];
    bind_text(st, 1, after_key ? after_key : "");
    sqlite3_bind_int64(st, 2, limit ? (sqlite3_int64)limit : -1);
    return node_rows(s, st, after_key ? after_key : "", cb, ctx);
}

static int sqlite_node_named(struct store *base, const char *given,
                             int (*cb)(void *ctx, const struct node_row *r), void *ctx)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_NODE_NAMED];
    bind_text(st, 1, given);
    return node_rows(s, st, given, cb, ctx);
}

static int sqlite_node_list(struct store *base, int (*cb)(void *ctx, const struct node_row *r),
                            void *ctx)
{
    struct sqlite_store *s = sqlite_of(base);
    return sqlite_node_page(&s->base, NULL, 0, cb, ctx);
}

/* ---- Tasks ---- */

/* The current row of a TASK_COLS query into row, a struct task_row (owned by the caller when 0). */
static int task_from_stmt(sqlite3_stmt *st, void *row)
{
    struct task_row *r = row;
    memset(r, 0, sizeof(*r));
    copy_column(r->id, sizeof(r->id), st, 0);
    copy_column(r->name, sizeof(r->name), st, 1);
    r->cmd = dup_column(st, 2);
    r->param = dup_column(st, 3);
    r->env_json = dup_column(st, 4);
    r->priority = sqlite3_column_int(st, 5);
    r->timeout_ms = sqlite3_column_int64(st, 6);
    copy_column(r->node_key, sizeof(r->node_key), st, 7);
    copy_column(r->assigned_node, sizeof(r->assigned_node), st, 8);
    const char *status = (const char *)sqlite3_column_text(st, 9);
    r->pid = sqlite3_column_int(st, 10);
    r->exit_code = sqlite3_column_type(st, 11) == SQLITE_NULL ? STORE_NO_EXIT_CODE
                                                              : sqlite3_column_int(st, 11);
    r->error = dup_column(st, 12);
    r->log_lines = column_u64(st, 13);
    r->data_items = column_u64(st, 14);
    r->log_bytes = column_u64(st, 15);
    r->cancel_requested = sqlite3_column_int(st, 16) != 0;
    r->cancel_force = sqlite3_column_int(st, 17) != 0;
    r->created_ms = sqlite3_column_int64(st, 18);
    r->updated_ms = sqlite3_column_int64(st, 19);
    r->started_ms = sqlite3_column_int64(st, 20);
    r->ended_ms = sqlite3_column_int64(st, 21);
    r->epoch = column_u64(st, 22);
    r->labels = dup_column(st, 23);
    copy_column(r->restart_of, sizeof(r->restart_of), st, 24);
    copy_column(r->retry_of, sizeof(r->retry_of), st, 25);
    r->attempt = sqlite3_column_int(st, 26);
    r->retries = sqlite3_column_int(st, 27);
    r->retry_delay_ms = sqlite3_column_int64(st, 28);
    r->eligible_ms = sqlite3_column_int64(st, 29);
    copy_column(r->spider, sizeof(r->spider), st, 30);
    copy_column(r->spider_sha256, sizeof(r->spider_sha256), st, 31);
    r->pushed = sqlite3_column_int(st, 32) != 0;
    if (!r->cmd || !r->param || !r->env_json || !r->error || !r->labels) {
        store_task_row_free(r);
        log_error("store: out of memory reading task");
        return -ENOMEM;
    }
    if (task_status_parse(status, &r->status) < 0) {
        log_error("store: task %s has an unknown status '%s' in the database", r->id,
                  status ? status : "(null)");
        store_task_row_free(r);
        return -EIO;
    }
    return 0;
}

/* Reads one task by id into *out (owned by the caller). */
static int task_load(struct sqlite_store *s, const char *id, struct task_row *out)
{
    sqlite3_stmt *st = s->st[ST_TASK_GET];
    bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rc = task_from_stmt(st, out);
    else if (rc == SQLITE_DONE)
        rc = -ENOENT;
    else
        rc = db_fail(s, rc, "reading task", id);
    finish(st);
    return rc;
}

static int task_status_load(struct sqlite_store *s, const char *id, enum task_status *out)
{
    sqlite3_stmt *st = s->st[ST_TASK_STATUS];
    bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        rc = task_status_parse(name, out);
        if (rc < 0) {
            log_error("store: task %s has an unknown status '%s' in the database", id,
                      name ? name : "(null)");
            rc = -EIO;
        }
    } else if (rc == SQLITE_DONE) {
        rc = -ENOENT;
    } else {
        rc = db_fail(s, rc, "reading task status", id);
    }
    finish(st);
    return rc;
}

/* Inserts a new pending task; link: what links it to the task it was made from (a restart's, a
 * retry's: backend.h), NULL for a submitted task. */
static int task_insert(struct sqlite_store *s, const struct task_new *t,
                       const struct task_link *link, int64_t now_ms, char id[TASK_ID_LEN + 1]);

static int sqlite_task_create(struct store *base, const struct task_new *t, int64_t now_ms,
                              char id_out[TASK_ID_LEN + 1])
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter_op(s, __func__);
    if (rc < 0)
        return rc;
    char id[TASK_ID_LEN + 1];
    rc = task_insert(s, t, NULL, now_ms, id);
    rc = op_end(s, rc);
    if (rc == 0)
        memcpy(id_out, id, sizeof(id));
    return rc;
}

/* Inserts a new pending task inside an open op; writes its id into id. link may be NULL. */
static int task_insert(struct sqlite_store *s, const struct task_new *t,
                       const struct task_link *link, int64_t now_ms, char id[TASK_ID_LEN + 1])
{
    static const struct task_link first = {.attempt = 1};
    if (!link)
        link = &first;
    int rc = 0;
    /* A duplicate id needs the same second, random part and counter value: only a wrapped
     * counter can produce one, and the next counter value resolves it. */
    for (int attempt = 0; attempt < 3; attempt++) {
        store_ids_next(&s->ids, now_ms, id);
        sqlite3_stmt *st = s->st[ST_TASK_INSERT];
        bind_text(st, 1, id);
        bind_text(st, 2, t->name ? t->name : "");
        bind_text(st, 3, t->cmd);
        bind_text(st, 4, t->param ? t->param : "");
        bind_text(st, 5, t->env_json ? t->env_json : "{}");
        sqlite3_bind_int(st, 6, t->priority);
        sqlite3_bind_int64(st, 7, t->timeout_ms);
        bind_text(st, 8, t->node_key ? t->node_key : "");
        sqlite3_bind_int64(st, 9, now_ms);
        bind_text(st, 10, t->labels ? t->labels : "");
        sqlite3_bind_int(st, 11, t->retries);
        sqlite3_bind_int64(st, 12, t->retry_delay_ms);
        bind_text(st, 13, link->restart_of ? link->restart_of : "");
        bind_text(st, 14, link->retry_of ? link->retry_of : "");
        sqlite3_bind_int(st, 15, link->attempt);
        sqlite3_bind_int64(st, 16, link->eligible_ms);
        bind_text(st, 17, t->spider ? t->spider : "");
        bind_text(st, 18, t->spider_sha256 ? t->spider_sha256 : "");
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE) {
            rc = 0;
        } else if ((src & 0xff) == SQLITE_CONSTRAINT) {
            rc = -EEXIST;
        } else {
            rc = db_fail(s, src, "creating task", id);
        }
        finish(st);
        if (rc != -EEXIST)
            break;
    }
    if (rc == -EEXIST)
        log_error("store: could not find a free task id at %" PRId64 " ms", now_ms);
    return rc;
}

static int history_add(struct sqlite_store *s, const char *id, enum task_status from,
                       enum task_status to, int64_t now_ms)
{
    sqlite3_stmt *st = s->st[ST_HISTORY_INSERT];
    bind_text(st, 1, id);
    bind_text(st, 2, task_status_name(from));
    bind_text(st, 3, task_status_name(to));
    sqlite3_bind_int64(st, 4, now_ms);
    return step_done(s, st, "recording status history", id);
}

/* Applies an allowed status change inside an open op. */
static int status_apply(struct sqlite_store *s, const char *id, enum task_status from,
                        enum task_status to, int pid, int exit_code, const char *error,
                        int64_t now_ms)
{
    sqlite3_stmt *st = s->st[ST_TASK_SET_STATUS];
    bind_text(st, 1, id);
    bind_text(st, 2, task_status_name(to));
    sqlite3_bind_int64(st, 3, now_ms);
    if (pid > 0)
        sqlite3_bind_int(st, 4, pid);
    if (exit_code != STORE_NO_EXIT_CODE)
        sqlite3_bind_int(st, 5, exit_code);
    bind_text(st, 6, error);
    sqlite3_bind_int(st, 7, to == TASK_PENDING);
    sqlite3_bind_int(st, 8, to == TASK_RUNNING);
    sqlite3_bind_int(st, 9, task_status_terminal(to));
    int rc = step_done(s, st, "changing task status", id);
    if (rc == 0)
        rc = history_add(s, id, from, to, now_ms);
    return rc;
}

/* Assigns task id to node_key if it is pending, and records that in its history. 0, 1 when the
 * task was not pending (nothing changed), or -errno. Inside an operation. */
static int assign_pending(struct sqlite_store *s, const char *id, const char *node_key,
                          int64_t now_ms, bool pushed)
{
    sqlite3_stmt *st = s->st[ST_TASK_ASSIGN];
    bind_text(st, 1, id);
    bind_text(st, 2, node_key);
    sqlite3_bind_int64(st, 3, now_ms);
    sqlite3_bind_int(st, 4, pushed);
    int rc = step_done(s, st, "assigning task", id);
    if (rc == 0)
        rc = sqlite3_changes(s->db) == 1 ? history_add(s, id, TASK_PENDING, TASK_ASSIGNED, now_ms)
                                         : 1;
    return rc;
}

static int sqlite_task_assign(struct store *base, const char *id, const char *node_key,
                              int64_t now_ms, bool pushed)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter_op(s, __func__);
    if (rc < 0)
        return rc;
    return op_end(s, assign_pending(s, id, node_key, now_ms, pushed));
}

static int sqlite_task_fetch(struct store *base, const char *node_key, const char *node_labels,
                             int64_t now_ms, struct task_row *out)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter_op(s, __func__);
    if (rc < 0)
        return rc;
    char id[TASK_ID_LEN + 1] = "";
    bool loaded = false;
    /* Addressed to this node first, then unaddressed (node_key ""). */
    const char *targets[2] = {node_key, ""};
    sqlite3_stmt *pick = s->st[ST_TASK_PICK];
    for (int i = 0; i < 2 && rc == 0 && !id[0]; i++) {
        bind_text(pick, 1, targets[i]);
        bind_text(pick, 2, node_labels ? node_labels : "");
        sqlite3_bind_int64(pick, 3, now_ms);
        int src = sqlite3_step(pick);
        if (src == SQLITE_ROW)
            copy_column(id, sizeof(id), pick, 0);
        else if (src != SQLITE_DONE)
            rc = db_fail(s, src, "picking a pending task for node", node_key);
        finish(pick);
    }
    if (rc == 0 && id[0]) {
        /* Picked as pending in this same transaction, so it is still pending. */
        rc = assign_pending(s, id, node_key, now_ms, false);
        if (rc == 1)
            rc = -EIO;
        if (rc == 0)
            rc = task_load(s, id, out);
        if (rc == 0) {
            loaded = true;
            rc = 1;
        }
    }
    rc = op_end(s, rc);
    if (rc < 0 && loaded)
        store_task_row_free(out);
    return rc;
}

static int sqlite_task_get(struct store *base, const char *id, struct task_row *out)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    return task_load(s, id, out);
}

static int sqlite_task_set_status(struct store *base, const char *id, enum task_status to, int pid,
                                  int exit_code, const char *error, int64_t now_ms)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter_op(s, __func__);
    if (rc < 0)
        return rc;
    enum task_status from;
    rc = task_status_load(s, id, &from);
    if (rc == 0) {
        if (task_transition_allowed(from, to)) {
            rc = status_apply(s, id, from, to, pid, exit_code, error, now_ms);
        } else {
            rc = 1;
            /* A claim stores 'running' without a pid; the report after the spawn brings it. */
            if (from == TASK_RUNNING && to == TASK_RUNNING && pid > 0) {
                sqlite3_stmt *st = s->st[ST_TASK_SET_PID];
                bind_text(st, 1, id);
                sqlite3_bind_int(st, 2, pid);
                int prc = step_done(s, st, "storing task pid", id);
                if (prc < 0)
                    rc = prc;
            }
        }
    }
    return op_end(s, rc);
}

static int sqlite_task_restart(struct store *base, const char *id, int64_t now_ms,
                               char id_out[TASK_ID_LEN + 1])
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter_op(s, __func__);
    if (rc < 0)
        return rc;
    struct task_row row;
    char nid[TASK_ID_LEN + 1];
    rc = task_load(s, id, &row);
    if (rc == 0) {
        struct task_copy c = store_task_restart_of(&row);
        rc = task_insert(s, &c.spec, &c.link, now_ms, nid);
        store_task_row_free(&row);
    }
    rc = op_end(s, rc);
    if (rc == 0)
        memcpy(id_out, nid, sizeof(nid));
    return rc;
}

static int sqlite_task_retry(struct store *base, const char *id, enum task_status to, int exit_code,
                             const char *error, int64_t eligible_ms, int64_t now_ms,
                             char id_out[TASK_ID_LEN + 1])
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter_op(s, __func__);
    if (rc < 0)
        return rc;
    struct task_row row;
    char nid[TASK_ID_LEN + 1];
    rc = task_load(s, id, &row);
    if (rc < 0)
        return op_end(s, rc);
    if (!task_transition_allowed(row.status, to)) {
        rc = 1;
    } else {
        rc = status_apply(s, id, row.status, to, 0, exit_code, error, now_ms);
        struct task_copy c = store_task_retry_of(&row, eligible_ms);
        if (rc == 0)
            rc = task_insert(s, &c.spec, &c.link, now_ms, nid);
    }
    store_task_row_free(&row);
    rc = op_end(s, rc);
    if (rc == 0)
        memcpy(id_out, nid, sizeof(nid));
    return rc;
}

static int sqlite_task_next_eligible(struct store *base, int64_t after_ms, int64_t *at_ms)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_TASK_WAKE_NEXT];
    sqlite3_bind_int64(st, 1, after_ms);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *at_ms = sqlite3_column_int64(st, 0); /* NULL, no task waits: 0 */
    else
        rc = db_fail(s, src, "finding the next retry's time", "tasks");
    finish(st);
    return rc;
}

/* A node with retries due, as ST_TASK_WAKE_NODES lists it. */
struct due_node {
    char key[LIMIT_NODE_KEY_MAX + 1];
    char *labels;
};

static int due_from_stmt(sqlite3_stmt *st, void *row)
{
    struct due_node *d = row;
    copy_column(d->key, sizeof(d->key), st, 0);
    d->labels = dup_column(st, 1);
    return d->labels ? 0 : -ENOMEM;
}

static int sqlite_task_eligible_nodes(struct store *base, int64_t after_ms, int64_t until_ms,
                                      int (*cb)(void *ctx, const char *node_key,
                                                const char *labels),
                                      void *ctx)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_TASK_WAKE_NODES];
    sqlite3_bind_int64(st, 1, after_ms);
    sqlite3_bind_int64(st, 2, until_ms);
    struct due_node *due;
    size_t n;
    rc = collect_rows(s, st, sizeof(*due), due_from_stmt, (void **)&due, &n,
                      "listing the nodes of retries due", "tasks");
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = cb(ctx, due[i].key, due[i].labels);
    for (size_t i = 0; i < n; i++)
        free(due[i].labels);
    free(due);
    return rc;
}

static int sqlite_task_epoch(struct store *base, const char *id, uint64_t *out)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_TASK_EPOCH];
    bind_text(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = column_u64(st, 0);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = -ENOENT;
    } else {
        rc = db_fail(s, rc, "reading task epoch", id);
    }
    finish(st);
    return rc;
}

static int sqlite_task_request_cancel(struct store *base, const char *id, bool force,
                                      int64_t now_ms, enum task_status *status_out)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter_op(s, __func__);
    if (rc < 0)
        return rc;
    enum task_status status;
    rc = task_status_load(s, id, &status);
    if (rc == 0) {
        if (status == TASK_PENDING) {
            rc = status_apply(s, id, status, TASK_CANCELLED, 0, STORE_NO_EXIT_CODE, NULL, now_ms);
            status = TASK_CANCELLED;
        } else if (!task_status_terminal(status)) {
            sqlite3_stmt *st = s->st[ST_TASK_CANCEL];
            bind_text(st, 1, id);
            sqlite3_bind_int(st, 2, force);
            sqlite3_bind_int64(st, 3, now_ms);
            rc = step_done(s, st, "requesting cancel of task", id);
        }
    }
    rc = op_end(s, rc);
    if (rc == 0 && status_out)
        *status_out = status;
    return rc;
}

/* Streams the newest tasks first, of status and node_key (NULL: any), from after the position after
 * (NULL: the newest), at most limit (0: no limit): each row to cb, or with its position to page_cb,
 * while the statement is open. */
static int stream_tasks(
    struct sqlite_store *s, const char *status, const char *node_key, const struct task_pos *after,
    unsigned limit, int (*cb)(void *ctx, const struct task_row *r),
    int (*page_cb)(void *ctx, const struct task_row *r, const struct task_pos *pos), void *ctx)
{
    sqlite3_stmt *st = s->st[after ? ST_TASK_PAGE_AFTER : ST_TASK_PAGE_FIRST];
    bind_text(st, 1, status);
    bind_text(st, 2, node_key);
    sqlite3_bind_int64(st, 3, limit ? (sqlite3_int64)limit : -1);
    if (after) {
        sqlite3_bind_int64(st, 4, after->created_ms);
        sqlite3_bind_int64(st, 5, after->rowid);
    }
    int pos_col = sqlite3_column_count(st) - 1;
    int src, rc = 0;
    s->streaming = true;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct task_row r;
        rc = task_from_stmt(st, &r);
        if (rc == 0) {
            struct task_pos pos = {r.created_ms, sqlite3_column_int64(st, pos_col)};
            rc = page_cb ? page_cb(ctx, &r, &pos) : cb(ctx, &r);
            store_task_row_free(&r);
        }
        if (rc != 0)
            break;
    }
    s->streaming = false;
    if (rc == 0 && src != SQLITE_DONE)
        rc = db_fail(s, src, "listing tasks", page_cb ? "a page" : "tasks");
    finish(st);
    return rc;
}

static int sqlite_task_list(struct store *base, const char *status, const char *node_key,
                            unsigned limit, int (*cb)(void *ctx, const struct task_row *r),
                            void *ctx)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    return stream_tasks(s, status, node_key, NULL, limit, cb, NULL, ctx);
}

static int sqlite_task_page(struct store *base, const char *status, const char *node_key,
                            const struct task_pos *after, unsigned limit,
                            int (*cb)(void *ctx, const struct task_row *r,
                                      const struct task_pos *pos),
                            void *ctx)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    return stream_tasks(s, status, node_key, after, limit, NULL, cb, ctx);
}

static int sqlite_task_pos(struct store *base, const char *id, struct task_pos *out)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_TASK_POS];
    bind_text(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->created_ms = sqlite3_column_int64(st, 0);
        out->rowid = sqlite3_column_int64(st, 1);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = -ENOENT;
    } else {
        rc = db_fail(s, rc, "reading the position of task", id);
    }
    finish(st);
    return rc;
}

static int sqlite_task_find_prefix(struct store *base, const char *prefix,
                                   char (*ids)[TASK_ID_LEN + 1], size_t max)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_TASK_PREFIX];
    bind_text(st, 1, prefix);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max + 1);
    size_t n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n < max)
            copy_column(ids[n], TASK_ID_LEN + 1, st, 0);
        n++;
    }
    rc = rc == SQLITE_DONE ? (int)n : db_fail(s, rc, "looking up task id prefix", prefix);
    finish(st);
    return rc;
}

/* Deletes what is left of one task, within budget rows: items first (lowest seq first), then its
 * history, row and journal entry. Returns 1 when the task is gone, 0 when the budget ran out
 * first, or -errno. *used counts the rows spent. Inside an operation. */
static int purge_one(struct sqlite_store *s, const char *id, unsigned budget, unsigned *used)
{
    sqlite3_stmt *st = s->st[ST_ITEMS_MIN];
    bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    bool has_items = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
    sqlite3_int64 low = has_items ? sqlite3_column_int64(st, 0) : 0;
    rc = rc == SQLITE_ROW ? 0 : db_fail(s, rc, "reading items of task", id);
    finish(st);
    if (rc < 0)
        return rc;
    if (has_items) {
        /* Seqs are dense from 1: the rows up to low + room - 1 are at most room rows. */
        unsigned room = budget > *used ? budget - *used : 0;
        if (room == 0)
            return 0;
        st = s->st[ST_ITEMS_DELETE];
        bind_text(st, 1, id);
        sqlite3_bind_int64(st, 2, low + room - 1);
        rc = step_done(s, st, "purging items of task", id);
        if (rc < 0)
            return rc;
        *used += (unsigned)sqlite3_changes(s->db);
        /* Another look: any left means the budget is spent. */
        st = s->st[ST_ITEMS_MIN];
        bind_text(st, 1, id);
        rc = sqlite3_step(st);
        has_items = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
        rc = rc == SQLITE_ROW ? 0 : db_fail(s, rc, "reading items of task", id);
        finish(st);
        if (rc < 0)
            return rc;
        if (has_items)
            return 0;
    }
    st = s->st[ST_HISTORY_DELETE];
    bind_text(st, 1, id);
    rc = step_done(s, st, "purging history of task", id);
    if (rc == 0) {
        *used += (unsigned)sqlite3_changes(s->db);
        st = s->st[ST_TASK_DELETE];
        bind_text(st, 1, id);
        rc = step_done(s, st, "purging task", id);
    }
    if (rc == 0) {
        st = s->st[ST_JOURNAL_ADD];
        bind_text(st, 1, id);
        rc = step_done(s, st, "journaling the log of purged task", id);
    }
    if (rc == 0)
        rc = id_set_add(&s->purged_uncommitted, id);
    if (rc < 0)
        return rc;
    *used += 1;
    return 1;
}

/* Picks the candidates (collected first: the deletions use other statements), then deletes them
 * in order while the budget lasts. Inside an operation. */
static int purge_op(struct sqlite_store *s, int64_t before_ms, unsigned budget, size_t *purged,
                    bool *more)
{
    /* Journal entries of logs removed for good, from earlier commits. */
    struct id_set *done = &s->journal_done;
    for (size_t i = 0; i < done->n; i++) {
        sqlite3_stmt *st = s->st[ST_JOURNAL_DEL];
        bind_text(st, 1, done->ids[i]);
        int rc = step_done(s, st, "dropping a purge journal entry", done->ids[i]);
        if (rc < 0)
            return rc;
    }
    done->n = 0;

    unsigned max_tasks = budget;
    char(*ids)[TASK_ID_LEN + 1] = calloc(max_tasks + 1, sizeof(*ids));
    if (!ids)
        return -ENOMEM;
    sqlite3_stmt *st = s->st[ST_PURGE_PICK];
    sqlite3_bind_int64(st, 1, before_ms);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max_tasks + 1);
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n <= max_tasks)
        copy_column(ids[n++], TASK_ID_LEN + 1, st, 0);
    rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_fail(s, rc, "picking tasks to purge", "-");
    finish(st);
    unsigned used = 0;
    size_t i = 0;
    for (; rc == 0 && i < n && i < max_tasks && used < budget; i++) {
        rc = purge_one(s, ids[i], budget, &used);
        if (rc == 1) {
            (*purged)++;
            rc = 0;
        } else if (rc == 0) {
            break; /* budget spent in the middle of this task */
        }
    }
    if (rc == 0)
        *more = i < n;
    free(ids);
    return rc;
}

static int sqlite_task_purge(struct store *base, int64_t before_ms, unsigned budget, size_t *purged,
                             bool *more)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter_op(s, __func__);
    if (rc < 0)
        return rc;
    size_t before_n = s->purged_uncommitted.n;
    rc = op_end(s, purge_op(s, before_ms, budget, purged, more));
    if (rc < 0) {
        /* Undone: those tasks are back, their logs must stay. (A failed commit outside a group
         * has emptied the set already.) */
        if (s->purged_uncommitted.n > before_n)
            s->purged_uncommitted.n = before_n;
        *purged = 0;
        *more = true;
    }
    return rc;
}

static int sqlite_purge_logs(struct store *base, size_t max, size_t *left)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    size_t pending = 0;
    discard_purged_logs(s, max, &pending);
    if (left)
        *left = s->purged_committed.n + s->purged_uncommitted.n + pending;
    return 0;
}

static int sqlite_task_count_purgeable(struct store *base, int64_t before_ms, uint64_t *out)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_PURGE_COUNT];
    sqlite3_bind_int64(st, 1, before_ms);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = column_u64(st, 0);
        rc = 0;
    } else {
        rc = db_fail(s, rc, "counting tasks to purge", "-");
    }
    finish(st);
    return rc;
}

static int sqlite_task_list_by_node(struct store *base, const char *node_key,
                                    enum task_status status,
                                    int (*cb)(void *ctx, const struct task_row *r), void *ctx)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_TASK_LIST_BY_NODE];
    bind_text(st, 1, node_key);
    bind_text(st, 2, task_status_name(status));
    struct task_row *rows;
    size_t n;
    rc = collect_rows(s, st, sizeof(*rows), task_from_stmt, (void **)&rows, &n,
                      "listing tasks of node", node_key);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = cb(ctx, &rows[i]);
    for (size_t i = 0; i < n; i++)
        store_task_row_free(&rows[i]);
    free(rows);
    return rc;
}

static int sqlite_task_history(struct store *base, const char *id,
                               int (*cb)(void *ctx, const struct task_history_row *h), void *ctx)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    enum task_status current;
    rc = task_status_load(s, id, &current);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_HISTORY_LIST];
    bind_text(st, 1, id);
    int src;
    s->streaming = true;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct task_history_row h;
        if (task_status_parse((const char *)sqlite3_column_text(st, 0), &h.from) < 0 ||
            task_status_parse((const char *)sqlite3_column_text(st, 1), &h.to) < 0) {
            log_error("store: task %s has an unknown status in its history", id);
            rc = -EIO;
            break;
        }
        h.at_ms = sqlite3_column_int64(st, 2);
        rc = cb(ctx, &h);
        if (rc != 0)
            break;
    }
    s->streaming = false;
    if (rc == 0 && src != SQLITE_DONE)
        rc = db_fail(s, src, "reading status history of task", id);
    finish(st);
    return rc;
}

/* ---- Logs and items ---- */

struct counts {
    uint64_t log_lines, log_bytes, data_items;
};

static int counts_load(struct sqlite_store *s, const char *id, struct counts *c)
{
    sqlite3_stmt *st = s->st[ST_TASK_COUNTS];
    bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        c->log_lines = column_u64(st, 0);
        c->log_bytes = column_u64(st, 1);
        c->data_items = column_u64(st, 2);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = -ENOENT;
    } else {
        rc = db_fail(s, rc, "reading counters of task", id);
    }
    finish(st);
    return rc;
}

static int log_append_op(struct sqlite_store *s, const char *id, const char *const *lines,
                         const size_t *lens, size_t n, uint64_t first_seq, size_t *accepted)
{
    struct counts c;
    int rc = counts_load(s, id, &c);
    if (rc < 0)
        return rc;
    size_t skip;
    rc = task_seq_window(c.log_lines, first_seq, n, &skip);
    if (rc < 0)
        return rc;
    if (skip == n)
        return 0;

    uint64_t size;
    rc = logfile_append(s->logs, id, c.log_bytes, lines + skip, lens + skip, n - skip, &size);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_TASK_SET_LOG];
    bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)(c.log_lines + (n - skip)));
    sqlite3_bind_int64(st, 3, (sqlite3_int64)size);
    rc = step_done(s, st, "counting log lines of task", id);
    if (rc < 0) {
        logfile_undo(s->logs, id, c.log_bytes);
        return rc;
    }
    *accepted = n - skip;
    return 0;
}

static int sqlite_log_append(struct store *base, const char *task_id, const char *const *lines,
                             const size_t *lens, size_t n, uint64_t first_seq, size_t *accepted)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter_op(s, __func__);
    if (rc < 0)
        return rc;
    rc = op_end(s, log_append_op(s, task_id, lines, lens, n, first_seq, accepted));
    if (rc < 0)
        *accepted = 0;
    return rc;
}

static int items_append_op(struct sqlite_store *s, const char *id, const char *const *items,
                           const size_t *lens, size_t n, uint64_t first_seq, size_t *accepted)
{
    struct counts c;
    int rc = counts_load(s, id, &c);
    if (rc < 0)
        return rc;
    size_t skip;
    rc = task_seq_window(c.data_items, first_seq, n, &skip);
    if (rc < 0 || skip == n)
        return rc;
    for (size_t i = skip; i < n; i++)
        if (lens[i] > INT_MAX)
            return -EINVAL;
    uint64_t seq = c.data_items;
    sqlite3_stmt *st = s->st[ST_ITEM_INSERT];
    for (size_t i = skip; i < n; i++) {
        bind_text(st, 1, id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)++seq);
        sqlite3_bind_text(st, 3, items[i] ? items[i] : "", (int)lens[i], SQLITE_STATIC);
        rc = step_done(s, st, "storing item of task", id);
        if (rc < 0)
            return rc;
    }
    st = s->st[ST_TASK_SET_ITEMS];
    bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    rc = step_done(s, st, "counting items of task", id);
    if (rc == 0)
        *accepted = n - skip;
    return rc;
}

static int sqlite_items_append(struct store *base, const char *task_id, const char *const *items,
                               const size_t *lens, size_t n, uint64_t first_seq, size_t *accepted)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter_op(s, __func__);
    if (rc < 0)
        return rc;
    rc = op_end(s, items_append_op(s, task_id, items, lens, n, first_seq, accepted));
    if (rc < 0)
        *accepted = 0;
    return rc;
}

static int sqlite_log_read(struct store *base, const char *task_id, uint64_t from_seq,
                           int (*cb)(void *ctx, uint64_t seq, const char *line, size_t len),
                           void *ctx)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    struct counts c = {0}; /* gcc -O3 cannot see counts_load fill it when it returns 0 */
    rc = counts_load(s, task_id, &c);
    if (rc < 0)
        return rc;
    if (from_seq == 0)
        from_seq = 1;
    if (from_seq > c.log_lines)
        return 0;
    s->streaming = true;
    rc = logfile_read(s->logs, task_id, c.log_bytes, from_seq, cb, ctx);
    s->streaming = false;
    return rc;
}

static int sqlite_items_read(struct store *base, const char *task_id, uint64_t from_seq,
                             int (*cb)(void *ctx, uint64_t seq, const char *data, size_t len),
                             void *ctx)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    struct counts c;
    rc = counts_load(s, task_id, &c);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_ITEMS_READ];
    bind_text(st, 1, task_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)(from_seq > INT64_MAX ? INT64_MAX : from_seq));
    int src;
    s->streaming = true;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *data = (const char *)sqlite3_column_text(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        rc = cb(ctx, column_u64(st, 0), data ? data : "", len);
        if (rc != 0)
            break;
    }
    s->streaming = false;
    if (rc == 0 && src != SQLITE_DONE)
        rc = db_fail(s, src, "reading items of task", task_id);
    finish(st);
    return rc;
}

/* ---- Schedules ---- */

/* Schedule statements are rare (a fire, an admin command): each is prepared when it runs. */
static int sched_prepare(struct sqlite_store *s, const char *sql, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? 0 : db_fail(s, rc, "preparing a statement", sql);
}

/* Prepares sql into *st (sched_prepare), then begins the call's op: *st is finalized when that
 * fails. */
static int sched_begin(struct sqlite_store *s, const char *sql, sqlite3_stmt **st)
{
    int rc = sched_prepare(s, sql, st);
    if (rc == 0 && (rc = op_begin(s)) < 0)
        sqlite3_finalize(*st);
    return rc;
}

/* Runs a prepared schedule statement that returns no rows and finalizes it. Returns the number of
 * rows changed, or a negative errno (-EEXIST for a constraint). */
static int sched_run(struct sqlite_store *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    int ret = sqlite3_changes(s->db);
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        ret = -EEXIST;
    else if (rc != SQLITE_DONE)
        ret = db_fail(s, rc, what, "schedule");
    sqlite3_finalize(st);
    return ret;
}

#define SCHED_COLS                                                                                 \
    "id, name, expr, tz_offset, cmd, env_json, priority, timeout_ms, node_key, overlap, missed, "  \
    "paused, created_ms, last_fire_s, last_task, labels, retries, retry_delay_ms, spider, "        \
    "tz_name, all_nodes"

/* The current row of a SCHED_COLS query into row, a struct schedule_row (owned by the caller when
 * 0). */
static int sched_from_stmt(sqlite3_stmt *st, void *row)
{
    struct schedule_row *r = row;
    memset(r, 0, sizeof(*r));
    r->id = sqlite3_column_int64(st, 0);
    copy_column(r->name, sizeof(r->name), st, 1);
    r->expr = dup_column(st, 2);
    r->tz_offset = sqlite3_column_int(st, 3);
    r->cmd = dup_column(st, 4);
    r->env_json = dup_column(st, 5);
    r->priority = sqlite3_column_int(st, 6);
    r->timeout_ms = sqlite3_column_int64(st, 7);
    copy_column(r->node_key, sizeof(r->node_key), st, 8);
    r->overlap = sqlite3_column_int(st, 9);
    r->missed = sqlite3_column_int(st, 10);
    r->paused = sqlite3_column_int(st, 11) != 0;
    r->created_ms = sqlite3_column_int64(st, 12);
    r->last_fire_s = sqlite3_column_int64(st, 13);
    copy_column(r->last_task, sizeof(r->last_task), st, 14);
    r->labels = dup_column(st, 15);
    r->retries = sqlite3_column_int(st, 16);
    r->retry_delay_ms = sqlite3_column_int64(st, 17);
    copy_column(r->spider, sizeof(r->spider), st, 18);
    copy_column(r->tz_name, sizeof(r->tz_name), st, 19);
    r->all_nodes = sqlite3_column_int(st, 20) != 0;
    if (!r->expr || !r->cmd || !r->env_json || !r->labels) {
        store_schedule_row_free(r);
        log_error("store: out of memory reading a schedule");
        return -ENOMEM;
    }
    return 0;
}

static int sqlite_schedule_create(struct store *base, const struct schedule_new *n, int64_t now_ms,
                                  int64_t *id_out)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    rc = sched_begin(s,
                     "INSERT INTO schedules (name, expr, tz_offset, cmd, env_json, priority,"
                     " timeout_ms, node_key, overlap, missed, created_ms, labels, retries,"
                     " retry_delay_ms, spider, tz_name, all_nodes)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
                     " ?15, ?16, ?17)",
                     &st);
    if (rc < 0)
        return rc;
    bind_text(st, 1, n->name ? n->name : "");
    bind_text(st, 2, n->expr);
    sqlite3_bind_int(st, 3, n->tz_offset);
    bind_text(st, 4, n->cmd);
    bind_text(st, 5, n->env_json ? n->env_json : "{}");
    sqlite3_bind_int(st, 6, n->priority);
    sqlite3_bind_int64(st, 7, n->timeout_ms);
    bind_text(st, 8, n->node_key ? n->node_key : "");
    sqlite3_bind_int(st, 9, n->overlap);
    sqlite3_bind_int(st, 10, n->missed);
    sqlite3_bind_int64(st, 11, now_ms);
    bind_text(st, 12, n->labels ? n->labels : "");
    sqlite3_bind_int(st, 13, n->retries);
    sqlite3_bind_int64(st, 14, n->retry_delay_ms);
    bind_text(st, 15, n->spider ? n->spider : "");
    bind_text(st, 16, n->tz_name ? n->tz_name : "");
    sqlite3_bind_int(st, 17, n->all_nodes);
    rc = sched_run(s, st, "creating schedule");
    int64_t id = sqlite3_last_insert_rowid(s->db);
    rc = op_end(s, rc < 0 ? rc : 0);
    if (rc == 0)
        *id_out = id;
    return rc;
}

static int sqlite_schedule_get(struct store *base, int64_t id, struct schedule_row *out)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    rc = sched_prepare(s, "SELECT " SCHED_COLS " FROM schedules WHERE id = ?1", &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rc = sched_from_stmt(st, out);
    else if (rc == SQLITE_DONE)
        rc = -ENOENT;
    else
        rc = db_fail(s, rc, "reading schedule", "schedule");
    sqlite3_finalize(st);
    return rc;
}

static int sqlite_schedule_list(struct store *base,
                                int (*cb)(void *ctx, const struct schedule_row *r), void *ctx)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    rc = sched_prepare(s, "SELECT " SCHED_COLS " FROM schedules ORDER BY id", &st);
    if (rc < 0)
        return rc;
    struct schedule_row *rows;
    size_t n;
    rc = collect_rows(s, st, sizeof(*rows), sched_from_stmt, (void **)&rows, &n,
                      "listing schedules", "all schedules");
    sqlite3_finalize(st);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = cb(ctx, &rows[i]);
    for (size_t i = 0; i < n; i++)
        store_schedule_row_free(&rows[i]);
    free(rows);
    return rc;
}

/* Runs one UPDATE or DELETE on a schedule in its own op; -ENOENT when no row changed. */
static int sched_change(struct sqlite_store *s, const char *sql, int64_t id, int64_t arg,
                        const char *what)
{
    sqlite3_stmt *st;
    int rc = sched_begin(s, sql, &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int64(st, 2, arg);
    rc = sched_run(s, st, what);
    return op_end(s, rc < 0 ? rc : rc == 0 ? -ENOENT : 0);
}

static int sqlite_schedule_set_paused(struct store *base, int64_t id, bool paused, int64_t now_s)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    if (paused)
        return sched_change(s, "UPDATE schedules SET paused = 1 WHERE id = ?1", id, 0,
                            "pausing schedule");
    /* The fire times that passed while it was paused count as handled. */
    return sched_change(s,
                        "UPDATE schedules SET last_fire_s = CASE WHEN paused THEN"
                        " MAX(last_fire_s, ?2) ELSE last_fire_s END, paused = 0 WHERE id = ?1",
                        id, now_s, "resuming schedule");
}

static int sqlite_schedule_delete(struct store *base, int64_t id)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    rc = sched_begin(s, "DELETE FROM schedule_fires WHERE schedule_id = ?1", &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    rc = sched_run(s, st, "removing schedule fires");
    if (rc >= 0) {
        rc = sched_prepare(s, "DELETE FROM schedules WHERE id = ?1", &st);
        if (rc == 0) {
            sqlite3_bind_int64(st, 1, id);
            rc = sched_run(s, st, "removing schedule");
            rc = rc < 0 ? rc : rc == 0 ? -ENOENT : 0;
        }
    }
    return op_end(s, rc < 0 ? rc : 0);
}

static int sqlite_schedule_skip(struct store *base, int64_t id, int64_t fire_s)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    return sched_change(s, "UPDATE schedules SET last_fire_s = MAX(last_fire_s, ?2) WHERE id = ?1",
                        id, fire_s, "skipping a schedule's fire");
}

/* The task of a fire already recorded, into id_out: 1, or 0 when there is none. */
static int fire_lookup(struct sqlite_store *s, int64_t id, int64_t fire_s,
                       char id_out[TASK_ID_LEN + 1])
{
    sqlite3_stmt *st;
    int rc = sched_prepare(
        s, "SELECT task_id FROM schedule_fires WHERE schedule_id = ?1 AND fire_s = ?2 LIMIT 1",
        &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, fire_s);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        copy_column(id_out, TASK_ID_LEN + 1, st, 0);
        rc = 1;
    } else {
        rc = rc == SQLITE_DONE ? 0 : db_fail(s, rc, "reading a schedule's fire", "schedule");
    }
    sqlite3_finalize(st);
    return rc;
}

/* Inserts the task t of schedule id's fire at fire_s and its fire record, inside an open op. */
static int fire_one(struct sqlite_store *s, int64_t id, int64_t fire_s, const char *node_key,
                    const struct task_new *t, int64_t now_ms, char tid[TASK_ID_LEN + 1])
{
    int rc = task_insert(s, t, NULL, now_ms, tid);
    sqlite3_stmt *st;
    if (rc == 0)
        rc = sched_prepare(s,
                           "INSERT INTO schedule_fires (schedule_id, fire_s, node_key, task_id)"
                           " VALUES (?1, ?2, ?3, ?4)",
                           &st);
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, fire_s);
        bind_text(st, 3, node_key);
        bind_text(st, 4, tid);
        rc = sched_run(s, st, "recording a schedule's fire");
    }
    return rc < 0 ? rc : 0;
}

static int sqlite_schedule_fire(struct store *base, int64_t id, int64_t fire_s,
                                const struct task_new *t, size_t n, bool per_node, int64_t now_ms,
                                char (*ids_out)[TASK_ID_LEN + 1])
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    rc = fire_lookup(s, id, fire_s, ids_out[0]);
    if (rc != 0)
        return rc;
    rc = op_begin(s);
    if (rc < 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = fire_one(s, id, fire_s, per_node ? t[i].node_key : "", &t[i], now_ms, ids_out[i]);
    sqlite3_stmt *st;
    if (rc == 0)
        rc = sched_prepare(s,
                           "UPDATE schedules SET last_fire_s = MAX(last_fire_s, ?2),"
                           " last_task = ?3 WHERE id = ?1",
                           &st);
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, fire_s);
        bind_text(st, 3, ids_out[n - 1]);
        rc = sched_run(s, st, "advancing a schedule");
        rc = rc < 0 ? rc : rc == 0 ? -ENOENT : 0;
    }
    return op_end(s, rc);
}

/* A row's first column, a task id, into row, a char[TASK_ID_LEN + 1]. Always 0. */
static int id_from_stmt(sqlite3_stmt *st, void *row)
{
    copy_column(row, TASK_ID_LEN + 1, st, 0);
    return 0;
}

static int sqlite_schedule_last_tasks(struct store *base, int64_t id,
                                      int (*cb)(void *ctx, const char *task_id), void *ctx)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    rc = sched_prepare(s,
                       "SELECT task_id FROM schedule_fires WHERE schedule_id = ?1 AND fire_s ="
                       " (SELECT MAX(fire_s) FROM schedule_fires WHERE schedule_id = ?1)",
                       &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    char(*ids)[TASK_ID_LEN + 1];
    size_t n;
    rc = collect_rows(s, st, sizeof(*ids), id_from_stmt, (void **)&ids, &n,
                      "reading a schedule's last tasks", "schedule");
    sqlite3_finalize(st);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = cb(ctx, ids[i]);
    free(ids);
    return rc;
}

/* A recorded fire: its time and its task. */
struct fire {
    int64_t at;
    char task[TASK_ID_LEN + 1];
};

static int fire_from_stmt(sqlite3_stmt *st, void *row)
{
    struct fire *f = row;
    f->at = sqlite3_column_int64(st, 0);
    copy_column(f->task, sizeof(f->task), st, 1);
    return 0;
}

static int sqlite_schedule_fires(struct store *base, int64_t id,
                                 int (*cb)(void *ctx, int64_t fire_s, const char *task_id),
                                 void *ctx)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    rc = sched_prepare(s,
                       "SELECT fire_s, task_id FROM schedule_fires WHERE schedule_id = ?1"
                       " ORDER BY fire_s",
                       &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    struct fire *rows;
    size_t n;
    rc = collect_rows(s, st, sizeof(*rows), fire_from_stmt, (void **)&rows, &n,
                      "listing a schedule's fires", "schedule");
    sqlite3_finalize(st);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = cb(ctx, rows[i].at, rows[i].task);
    free(rows);
    return rc;
}

static int sqlite_task_count_by_status(struct store *base, const char *node_key,
                                       uint64_t counts[TASK_STATUS_COUNT])
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    memset(counts, 0, sizeof(uint64_t) * TASK_STATUS_COUNT);
    /* Asked once a scrape, or once a node registers with one of several masters: not worth a
     * persistent statement. */
    const char *sql = node_key ? "SELECT status, COUNT(*) FROM tasks WHERE assigned_node = ?1"
                                 " GROUP BY status"
                               : "SELECT status, COUNT(*) FROM tasks GROUP BY status";
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (src != SQLITE_OK)
        return db_fail(s, src, "counting tasks", node_key);
    if (node_key)
        bind_text(st, 1, node_key);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        enum task_status status;
        if (task_status_parse((const char *)sqlite3_column_text(st, 0), &status) == 0)
            counts[status] = column_u64(st, 1);
    }
    if (src != SQLITE_DONE)
        rc = db_fail(s, src, "counting tasks", NULL);
    sqlite3_finalize(st);
    return rc;
}

/* ---- Events ---- */

static int sqlite_event_add(struct store *base, int64_t at_ms, const char *kind,
                            const char *node_key, const char *task_id, const char *data,
                            int64_t *id_out)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter_op(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_EVENT_ADD];
    sqlite3_bind_int64(st, 1, at_ms);
    bind_text(st, 2, kind);
    bind_text(st, 3, node_key ? node_key : "");
    bind_text(st, 4, task_id ? task_id : "");
    bind_text(st, 5, data && *data ? data : "{}");
    rc = step_done(s, st, "recording an event", kind);
    int64_t id = sqlite3_last_insert_rowid(s->db);
    rc = op_end(s, rc);
    if (rc < 0 && s->in_group && !s->group_broken) {
        /* The change this event records is in the group already: neither may be committed. */
        log_error("store: an event could not be recorded; the open group will be rolled back");
        s->group_broken = true;
        logfile_rollback(s->logs);
    }
    if (rc == 0 && id_out)
        *id_out = id;
    return rc;
}

static int sqlite_event_page(struct store *base, int64_t after, int64_t upto, unsigned limit,
                             int (*cb)(void *ctx, const struct event_row *e), void *ctx)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_EVENT_PAGE];
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, upto);
    sqlite3_bind_int64(st, 3, limit ? (sqlite3_int64)limit : -1);
    int src;
    s->streaming = true;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct event_row e = {.id = sqlite3_column_int64(st, 0),
                              .at_ms = sqlite3_column_int64(st, 1)};
        copy_column(e.kind, sizeof(e.kind), st, 2);
        copy_column(e.node_key, sizeof(e.node_key), st, 3);
        copy_column(e.task_id, sizeof(e.task_id), st, 4);
        const char *data = (const char *)sqlite3_column_text(st, 5);
        e.data = data ? data : "{}";
        rc = cb(ctx, &e);
        if (rc != 0)
            break;
    }
    s->streaming = false;
    if (rc == 0 && src != SQLITE_DONE)
        rc = db_fail(s, src, "reading events", "-");
    finish(st);
    return rc;
}

/* Runs a statement that returns one integer into *out. */
static int step_int(struct sqlite_store *s, sqlite3_stmt *st, const char *what, int64_t *out)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? -ENOENT : db_fail(s, rc, what, "-");
    }
    finish(st);
    return rc;
}

static int sqlite_event_last(struct store *base, int64_t *out)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    return step_int(s, s->st[ST_EVENT_LAST], "reading the last event id", out);
}

static int sqlite_event_count(struct store *base, int64_t after, int64_t upto, uint64_t *out)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_EVENT_COUNT];
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, upto);
    int64_t n = 0;
    rc = step_int(s, st, "counting events", &n);
    if (rc == 0)
        *out = n < 0 ? 0 : (uint64_t)n;
    return rc;
}

static int sqlite_event_purge(struct store *base, int64_t before_ms, unsigned budget,
                              size_t *purged, bool *more)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    *purged = 0;
    *more = false;
    rc = op_begin(s);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_EVENT_PURGE];
    sqlite3_bind_int64(st, 1, before_ms);
    sqlite3_bind_int64(st, 2, budget);
    rc = step_done(s, st, "purging events", "-");
    int n = rc == 0 ? sqlite3_changes(s->db) : 0;
    rc = op_end(s, rc);
    if (rc == 0) {
        *purged = (size_t)n;
        *more = (unsigned)n == budget;
    }
    return rc;
}

static int sqlite_event_cursor_get(struct store *base, const char *hook, int64_t *out)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_CURSOR_GET];
    bind_text(st, 1, hook);
    return step_int(s, st, "reading a hook's cursor", out);
}

static int sqlite_event_cursor_set(struct store *base, const char *hook, int64_t delivered)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter_op(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_CURSOR_SET];
    bind_text(st, 1, hook);
    sqlite3_bind_int64(st, 2, delivered);
    return op_end(s, step_done(s, st, "storing a hook's cursor", hook));
}

/* ---- Spiders ---- */

#define SPIDER_COLS "name, version, sha256, size, files, unpacked, created_ms"

/* The current row of a SPIDER_COLS query into row, a struct spider_row. Always 0. */
static int spider_from_stmt(sqlite3_stmt *st, void *row)
{
    struct spider_row *r = row;
    memset(r, 0, sizeof(*r));
    copy_column(r->name, sizeof(r->name), st, 0);
    r->version = (uint32_t)sqlite3_column_int64(st, 1);
    copy_column(r->sha256, sizeof(r->sha256), st, 2);
    r->size = column_u64(st, 3);
    r->files = column_u64(st, 4);
    r->unpacked = column_u64(st, 5);
    r->created_ms = sqlite3_column_int64(st, 6);
    return 0;
}

/* Collects the rows of a prepared SELECT of SPIDER_COLS (finalized here), then calls cb for each
 * until it returns non-zero. Returns the number of rows, or a negative errno (cb's too). */
static int spider_rows(struct sqlite_store *s, sqlite3_stmt *st,
                       int (*cb)(void *ctx, const struct spider_row *r), void *ctx)
{
    struct spider_row *rows;
    size_t n;
    int rc = collect_rows(s, st, sizeof(*rows), spider_from_stmt, (void **)&rows, &n,
                          "listing spiders", "spiders");
    sqlite3_finalize(st);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = cb ? cb(ctx, &rows[i]) : 0;
    free(rows);
    return rc == 0 ? (int)(n > INT32_MAX ? INT32_MAX : n) : rc;
}

static int sqlite_spider_list(struct store *base, const char *name, uint32_t version,
                              int (*cb)(void *ctx, const struct spider_row *r), void *ctx)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    /* Every spider's latest version, or the versions of one (all, or the one named). */
    rc = sched_prepare(s,
                       name ? "SELECT " SPIDER_COLS " FROM spiders WHERE name = ?1"
                              " AND (?2 = 0 OR version = ?2) ORDER BY version"
                            : "SELECT " SPIDER_COLS " FROM spiders AS a WHERE version ="
                              " (SELECT MAX(version) FROM spiders WHERE name = a.name)"
                              " ORDER BY name",
                       &st);
    if (rc < 0)
        return rc;
    if (name) {
        bind_text(st, 1, name);
        sqlite3_bind_int64(st, 2, version);
    }
    return spider_rows(s, st, cb, ctx);
}

static int copy_spider(void *ctx, const struct spider_row *r)
{
    *(struct spider_row *)ctx = *r;
    return 0;
}

static int sqlite_spider_get(struct store *base, const char *name, uint32_t version,
                             struct spider_row *out)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    rc = sched_prepare(s,
                       "SELECT " SPIDER_COLS " FROM spiders WHERE name = ?1"
                       " AND (?2 = 0 OR version = ?2) ORDER BY version DESC LIMIT 1",
                       &st);
    if (rc < 0)
        return rc;
    bind_text(st, 1, name);
    sqlite3_bind_int64(st, 2, version);
    rc = spider_rows(s, st, copy_spider, out);
    return rc < 0 ? rc : rc == 0 ? -ENOENT : 0;
}

static int sqlite_spider_add(struct store *base, const struct spider_row *r, int64_t now_ms,
                             uint32_t *version_out)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    rc = sched_begin(s,
                     "INSERT INTO spiders (" SPIDER_COLS ")"
                     " SELECT ?1, COALESCE(MAX(version), 0) + 1, ?2, ?3, ?4, ?5, ?6"
                     " FROM spiders WHERE name = ?1 RETURNING version",
                     &st);
    if (rc < 0)
        return rc;
    bind_text(st, 1, r->name);
    bind_text(st, 2, r->sha256);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)r->size);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)r->files);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)r->unpacked);
    sqlite3_bind_int64(st, 6, now_ms);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *version_out = (uint32_t)sqlite3_column_int64(st, 0);
        src = sqlite3_step(st);
    }
    rc = src == SQLITE_DONE ? 0 : db_fail(s, src, "adding a spider version", r->name);
    sqlite3_finalize(st);
    return op_end(s, rc);
}

static int sqlite_spider_task_using(struct store *base, const char *name, uint32_t version,
                                    char id[TASK_ID_LEN + 1], enum task_status *status)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    char ref[LIMIT_SPIDER_NAME_MAX + 12];
    snprintf(ref, sizeof(ref), "%s@%u", name, version);
    sqlite3_stmt *st;
    rc = sched_prepare(s,
                       "SELECT id, status FROM tasks WHERE spider = ?1"
                       " AND status NOT IN " ENDED_STATUSES " LIMIT 1",
                       &st);
    if (rc < 0)
        return rc;
    bind_text(st, 1, ref);
    int src = sqlite3_step(st);
    rc = 0;
    if (src == SQLITE_ROW) {
        copy_column(id, TASK_ID_LEN + 1, st, 0);
        rc = task_status_parse((const char *)sqlite3_column_text(st, 1), status) == 0 ? 1 : -EIO;
    } else if (src != SQLITE_DONE) {
        rc = db_fail(s, src, "looking for the tasks of a spider", ref);
    }
    sqlite3_finalize(st);
    return rc;
}

static int sqlite_spider_remove(struct store *base, const char *name, uint32_t version)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    rc = sched_begin(s, "DELETE FROM spiders WHERE name = ?1 AND (?2 = 0 OR version = ?2)", &st);
    if (rc < 0)
        return rc;
    bind_text(st, 1, name);
    sqlite3_bind_int64(st, 2, version);
    rc = sched_run(s, st, "removing a spider");
    return op_end(s, rc < 0 ? rc : rc == 0 ? -ENOENT : 0);
}

static int sqlite_spider_sha_used(struct store *base, const char *sha256, bool *used)
{
    struct sqlite_store *s = sqlite_of(base);
    int rc = enter(s, __func__);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    rc = sched_prepare(s, "SELECT 1 FROM spiders WHERE sha256 = ?1 LIMIT 1", &st);
    if (rc < 0)
        return rc;
    bind_text(st, 1, sha256);
    int src = sqlite3_step(st);
    *used = src == SQLITE_ROW;
    rc = src == SQLITE_ROW || src == SQLITE_DONE ? 0
                                                 : db_fail(s, src, "looking a spider up", sha256);
    sqlite3_finalize(st);
    return rc;
}

static const struct store_ops sqlite_ops = {
    .close = sqlite_close,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .node_upsert = sqlite_node_upsert,
    .node_set_state = sqlite_node_set_state,
    .node_delete = sqlite_node_delete,
    .node_set_status = sqlite_node_set_status,
    .node_touch = sqlite_node_touch,
    .node_get = sqlite_node_get,
    .node_list = sqlite_node_list,
    .node_page = sqlite_node_page,
    .node_named = sqlite_node_named,
    .task_create = sqlite_task_create,
    .task_restart = sqlite_task_restart,
    .task_retry = sqlite_task_retry,
    .task_next_eligible = sqlite_task_next_eligible,
    .task_eligible_nodes = sqlite_task_eligible_nodes,
    .task_fetch = sqlite_task_fetch,
    .task_assign = sqlite_task_assign,
    .task_get = sqlite_task_get,
    .task_set_status = sqlite_task_set_status,
    .task_epoch = sqlite_task_epoch,
    .task_request_cancel = sqlite_task_request_cancel,
    .task_list = sqlite_task_list,
    .task_count_by_status = sqlite_task_count_by_status,
    .task_page = sqlite_task_page,
    .task_pos = sqlite_task_pos,
    .task_find_prefix = sqlite_task_find_prefix,
    .task_purge = sqlite_task_purge,
    .purge_logs = sqlite_purge_logs,
    .task_count_purgeable = sqlite_task_count_purgeable,
    .task_list_by_node = sqlite_task_list_by_node,
    .task_history = sqlite_task_history,
    .log_append = sqlite_log_append,
    .items_append = sqlite_items_append,
    .log_read = sqlite_log_read,
    .items_read = sqlite_items_read,
    .schedule_create = sqlite_schedule_create,
    .schedule_get = sqlite_schedule_get,
    .schedule_list = sqlite_schedule_list,
    .schedule_set_paused = sqlite_schedule_set_paused,
    .schedule_delete = sqlite_schedule_delete,
    .schedule_fire = sqlite_schedule_fire,
    .schedule_last_tasks = sqlite_schedule_last_tasks,
    .schedule_skip = sqlite_schedule_skip,
    .schedule_fires = sqlite_schedule_fires,
    .event_add = sqlite_event_add,
    .event_page = sqlite_event_page,
    .event_last = sqlite_event_last,
    .event_count = sqlite_event_count,
    .event_purge = sqlite_event_purge,
    .event_cursor_get = sqlite_event_cursor_get,
    .event_cursor_set = sqlite_event_cursor_set,
    .spider_add = sqlite_spider_add,
    .spider_get = sqlite_spider_get,
    .spider_list = sqlite_spider_list,
    .spider_remove = sqlite_spider_remove,
    .spider_sha_used = sqlite_spider_sha_used,
    .spider_task_using = sqlite_spider_task_using,
};
