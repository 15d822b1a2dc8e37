/*
 * The store's PostgreSQL backend, begun: the connection and the versioned schema (store_pg.h).
 * The tables are SQLite's (store_sqlite.c, its schema version 9) in PostgreSQL's types; task
 * logs are not among them yet (docs/postgres.md: where they go is the next step's decision).
 */
#include "store/store_pg.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"

struct pg_store {
    PGconn *conn;
};

/*
 * Version 1: SQLite's schema 10. Integers are BIGINT (SQLite's are 64-bit). Ties in the dispatch
 * order are broken by seq, the order of insertion (SQLite's rowid); ids that SQLite numbers
 * (task_history.seq, schedules.id, events.id) are identities, never given twice.
 */
static const char pg_schema_1_sql[] =
    "CREATE TABLE nodes ("
    " key TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL,"
    " max_runners BIGINT NOT NULL, version TEXT NOT NULL, created_ms BIGINT NOT NULL,"
    " last_seen_ms BIGINT NOT NULL, labels TEXT NOT NULL DEFAULT '',"
    " state TEXT NOT NULL DEFAULT 'enabled');"
    "CREATE TABLE tasks ("
    " id TEXT PRIMARY KEY, seq BIGINT GENERATED ALWAYS AS IDENTITY, name TEXT NOT NULL,"
    " cmd TEXT NOT NULL, param TEXT NOT NULL, env_json TEXT NOT NULL, priority BIGINT NOT NULL,"
    " timeout_ms BIGINT NOT NULL, node_key TEXT NOT NULL,"
    " assigned_node TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,"
    " pid BIGINT NOT NULL DEFAULT 0, exit_code BIGINT, error TEXT NOT NULL DEFAULT '',"
    " log_lines BIGINT NOT NULL DEFAULT 0, data_items BIGINT NOT NULL DEFAULT 0,"
    " log_bytes BIGINT NOT NULL DEFAULT 0, cancel_requested BIGINT NOT NULL DEFAULT 0,"
    " cancel_force BIGINT NOT NULL DEFAULT 0, created_ms BIGINT NOT NULL,"
    " updated_ms BIGINT NOT NULL, started_ms BIGINT NOT NULL DEFAULT 0,"
    " ended_ms BIGINT NOT NULL DEFAULT 0, epoch BIGINT NOT NULL DEFAULT 0,"
    " labels TEXT NOT NULL DEFAULT '', restart_of TEXT NOT NULL DEFAULT '',"
    " retry_of TEXT NOT NULL DEFAULT '', attempt BIGINT NOT NULL DEFAULT 1,"
    " retries BIGINT NOT NULL DEFAULT 0, retry_delay_ms BIGINT NOT NULL DEFAULT 0,"
    " eligible_ms BIGINT NOT NULL DEFAULT 0, spider TEXT NOT NULL DEFAULT '',"
    " spider_sha256 TEXT NOT NULL DEFAULT '', pushed BOOLEAN NOT NULL DEFAULT FALSE);"
    "CREATE INDEX tasks_pending ON tasks(node_key, priority, created_ms, seq)"
    " WHERE status = 'pending';"
    "CREATE INDEX tasks_waiting ON tasks(eligible_ms) WHERE status = 'pending' AND eligible_ms > 0;"
    "CREATE INDEX tasks_by_node ON tasks(assigned_node, status);"
    "CREATE INDEX tasks_by_created ON tasks(created_ms);"
    "CREATE INDEX tasks_ended ON tasks(ended_ms) WHERE ended_ms > 0;"
    "CREATE INDEX tasks_by_spider ON tasks(spider, status) WHERE spider != '';"
    "CREATE TABLE task_history ("
    " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, task_id TEXT NOT NULL,"
    " from_status TEXT NOT NULL, to_status TEXT NOT NULL, at_ms BIGINT NOT NULL);"
    "CREATE INDEX task_history_by_task ON task_history(task_id, seq);"
    "CREATE TABLE items ("
    " task_id TEXT NOT NULL, seq BIGINT NOT NULL, data TEXT NOT NULL,"
    " PRIMARY KEY (task_id, seq));"
    "CREATE TABLE schedules ("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name TEXT NOT NULL,"
    " expr TEXT NOT NULL, tz_offset BIGINT NOT NULL, tz_name TEXT NOT NULL DEFAULT '',"
    " cmd TEXT NOT NULL, env_json TEXT NOT NULL, priority BIGINT NOT NULL,"
    " timeout_ms BIGINT NOT NULL, node_key TEXT NOT NULL, labels TEXT NOT NULL DEFAULT '',"
    " all_nodes BIGINT NOT NULL DEFAULT 0, overlap BIGINT NOT NULL, missed BIGINT NOT NULL,"
    " paused BIGINT NOT NULL DEFAULT 0, retries BIGINT NOT NULL DEFAULT 0,"
    " retry_delay_ms BIGINT NOT NULL DEFAULT 0, spider TEXT NOT NULL DEFAULT '',"
    " created_ms BIGINT NOT NULL, last_fire_s BIGINT NOT NULL DEFAULT 0,"
    " last_task TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE schedule_fires ("
    " schedule_id BIGINT NOT NULL, fire_s BIGINT NOT NULL, node_key TEXT NOT NULL,"
    " task_id TEXT NOT NULL, PRIMARY KEY (schedule_id, fire_s, node_key));"
    "CREATE TABLE events ("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at_ms BIGINT NOT NULL,"
    " kind TEXT NOT NULL, node_key TEXT NOT NULL, task_id TEXT NOT NULL, data TEXT NOT NULL);"
    "CREATE INDEX events_at ON events(at_ms);"
    "CREATE TABLE event_cursors (hook TEXT PRIMARY KEY, delivered BIGINT NOT NULL);"
    "CREATE TABLE spiders ("
    " name TEXT NOT NULL, version BIGINT NOT NULL, sha256 TEXT NOT NULL, size BIGINT NOT NULL,"
    " files BIGINT NOT NULL, unpacked BIGINT NOT NULL, created_ms BIGINT NOT NULL,"
    " PRIMARY KEY (name, version));";

/* pg_schema_steps[v] brings a database from version v to v + 1 (version 0: an empty one). */
static const char *const pg_schema_steps[PG_SCHEMA_VERSION] = {pg_schema_1_sql};

/* The advisory lock that one master at a time migrates under: any fixed number ("crwl"). */
#define PG_MIGRATE_LOCK "1668446060"

/* The length of a libpq message without the newline it ends in (a log line leaves it out). */
static int message_len(const char *m)
{
    size_t len = strlen(m);
    while (len > 0 && (m[len - 1] == '\n' || m[len - 1] == ' '))
        len--;
    return (int)len;
}

/* The server, as log lines name it: never the connection string, which may hold a password. */
static void log_pg_error(struct pg_store *p, const char *what, const char *detail)
{
    log_error("store: PostgreSQL %s:%s database %s: %s failed: %.*s", PQhost(p->conn),
              PQport(p->conn), PQdb(p->conn), what, message_len(detail), detail);
}

/* The server's notices ("relation already exists, skipping") go to the log at debug level,
 * instead of libpq's default, a raw line on stderr. */
static void log_notice(void *arg, const char *message)
{
    log_debug("store: PostgreSQL: %.*s", message_len(message), message);
}

/* Runs sql (one or several statements, no parameters, no rows wanted). */
static int exec_sql(struct pg_store *p, const char *what, const char *sql)
{
    PGresult *res = PQexec(p->conn, sql);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_pg_error(p, what, PQresultErrorMessage(res));
        rc = -EIO;
    }
    PQclear(res);
    return rc;
}

/* The version recorded in crawlab_schema, 0 when it has no row yet. */
static int read_version(struct pg_store *p, int *out)
{
    PGresult *res = PQexec(p->conn, "SELECT version FROM crawlab_schema");
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_pg_error(p, "reading the schema version", PQresultErrorMessage(res));
        rc = -EIO;
    } else {
        *out = PQntuples(res) > 0 ? atoi(PQgetvalue(res, 0, 0)) : 0;
    }
    PQclear(res);
    return rc;
}

/* Under the lock, in one transaction (PostgreSQL's DDL is transactional): the version is read,
 * the missing steps run, and the new version is written; a failure leaves the old schema. */
static int migrate_locked(struct pg_store *p)
{
    int version = 0;
    int rc = exec_sql(p, "locking the schema", "SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK ")");
    if (rc == 0)
        rc = exec_sql(p, "creating the schema version table",
                      "CREATE TABLE IF NOT EXISTS crawlab_schema (version INTEGER NOT NULL)");
    if (rc == 0)
        rc = read_version(p, &version);
    if (rc < 0)
        return rc;
    if (version > PG_SCHEMA_VERSION) {
        log_error("store: PostgreSQL %s:%s database %s has schema version %d, newer than this "
                  "build's %d",
                  PQhost(p->conn), PQport(p->conn), PQdb(p->conn), version, PG_SCHEMA_VERSION);
        return -EPROTO;
    }
    if (version == PG_SCHEMA_VERSION)
        return 0;
    for (int v = version; v < PG_SCHEMA_VERSION && rc == 0; v++)
        rc = exec_sql(p, "migrating the schema", pg_schema_steps[v]);
    char sql[96];
    snprintf(sql, sizeof(sql), "DELETE FROM crawlab_schema; INSERT INTO crawlab_schema VALUES (%d)",
             PG_SCHEMA_VERSION);
    if (rc == 0)
        rc = exec_sql(p, "recording the schema version", sql);
    if (rc == 0)
        log_info("store: PostgreSQL %s:%s database %s: schema version %d (was %d)", PQhost(p->conn),
                 PQport(p->conn), PQdb(p->conn), PG_SCHEMA_VERSION, version);
    return rc;
}

static int migrate(struct pg_store *p)
{
    int rc = exec_sql(p, "beginning the migration", "BEGIN");
    if (rc < 0)
        return rc;
    rc = migrate_locked(p);
    int end = exec_sql(p, rc == 0 ? "committing the migration" : "rolling the migration back",
                       rc == 0 ? "COMMIT" : "ROLLBACK");
    return rc < 0 ? rc : end;
}

static int connect_pg(struct pg_store *p, const char *conninfo)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    PQfreemem(err);
    if (!opts)
        return -EINVAL;
    PQconninfoFree(opts);
    p->conn = PQconnectdb(conninfo);
    if (!p->conn)
        return -ENOMEM;
    if (PQstatus(p->conn) != CONNECTION_OK) {
        log_pg_error(p, "connecting", PQerrorMessage(p->conn));
        return -ECONNREFUSED;
    }
    PQsetNoticeProcessor(p->conn, log_notice, NULL);
    if (PQsetClientEncoding(p->conn, "UTF8") != 0) {
        log_pg_error(p, "setting the client encoding", PQerrorMessage(p->conn));
        return -EIO;
    }
    return 0;
}

int pg_store_open(const char *conninfo, struct pg_store **out)
{
    if (!conninfo || !out)
        return -EINVAL;
    struct pg_store *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    int rc = connect_pg(p, conninfo);
    if (rc == 0)
        rc = migrate(p);
    if (rc < 0) {
        pg_store_close(p);
        return rc;
    }
    *out = p;
    return 0;
}

void pg_store_close(struct pg_store *p)
{
    if (!p)
        return;
    PQfinish(p->conn);
    free(p);
}

int pg_store_schema_version(struct pg_store *p)
{
    int version = 0;
    int rc = read_version(p, &version);
    return rc < 0 ? rc : version;
}
