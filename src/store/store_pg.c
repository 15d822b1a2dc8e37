/*
 * The store's PostgreSQL backend (store/store_pg.h): the connection, the versioned schema, the
 * transactions and the statement helpers the rows' files (store_pg_*.c) share.
 */
#include "store/store_pg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"

/*
 * Version 1: SQLite's schema 10. Integers are BIGINT (SQLite's are 64-bit). Ties in the dispatch
 * order are broken by seq, the order of insertion (SQLite's rowid); ids that SQLite numbers
 * (task_history.seq, schedules.id) are identities, never given twice. Event ids are counted in
 * event_ids' one row instead, so that they commit in order (store_pg_events.c).
 */
static const char pg_schema_1_sql[] =
    "CREATE TABLE nodes ("
    " key TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL,"
    " max_runners BIGINT NOT NULL, version TEXT NOT NULL, created_ms BIGINT NOT NULL,"
    " last_seen_ms BIGINT NOT NULL, labels TEXT NOT NULL DEFAULT '',"
    " state TEXT NOT NULL DEFAULT 'enabled', master TEXT NOT NULL DEFAULT '');"
    /* Several masters (store_pg_masters.c): each one's lease; each node names its holder. */
    "CREATE TABLE masters (id TEXT PRIMARY KEY, lease_ms BIGINT NOT NULL);"
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
    "CREATE TABLE task_logs ("
    " task_id TEXT NOT NULL, first_seq BIGINT NOT NULL, n_lines BIGINT NOT NULL,"
    " data BYTEA NOT NULL, PRIMARY KEY (task_id, first_seq));"
    /* Logs compress well and are written at the rate workers print: lz4 compresses and skips
     * incompressible text fast where the default (pglz) costs most of the time of an append.
     * A server built without lz4 keeps the default. */
    "DO $$ BEGIN"
    " EXECUTE 'ALTER TABLE task_logs ALTER COLUMN data SET COMPRESSION lz4';"
    " EXCEPTION WHEN feature_not_supported OR syntax_error THEN NULL; END $$;"
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
    " id BIGINT PRIMARY KEY, at_ms BIGINT NOT NULL,"
    " kind TEXT NOT NULL, node_key TEXT NOT NULL, task_id TEXT NOT NULL, data TEXT NOT NULL);"
    "CREATE INDEX events_at ON events(at_ms);"
    "CREATE TABLE event_ids (last BIGINT NOT NULL);"
    "INSERT INTO event_ids VALUES (0);"
    "CREATE TABLE event_cursors (hook TEXT PRIMARY KEY, delivered BIGINT NOT NULL);"
    "CREATE TABLE spiders ("
    " name TEXT NOT NULL, version BIGINT NOT NULL, sha256 TEXT NOT NULL, size BIGINT NOT NULL,"
    " files BIGINT NOT NULL, unpacked BIGINT NOT NULL, created_ms BIGINT NOT NULL,"
    " PRIMARY KEY (name, version));"
    /* A task still pending when its transaction commits is news for the other masters: a
     * deferred trigger looks at the row as committed (one made and assigned in one transaction
     * is not news). Payload: id, node key, selector, eligible_ms, tab-separated. */
    "CREATE FUNCTION crawlab_task_news() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  IF EXISTS (SELECT 1 FROM tasks WHERE id = NEW.id AND status = 'pending') THEN"
    "   PERFORM pg_notify('crawlab_tasks', NEW.id || E'\\t' || NEW.node_key || E'\\t' ||"
    "    NEW.labels || E'\\t' || NEW.eligible_ms);"
    "  END IF;"
    "  RETURN NULL;"
    " END $$;"
    "CREATE CONSTRAINT TRIGGER tasks_news AFTER INSERT OR UPDATE OF status ON tasks"
    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.status = 'pending')"
    " EXECUTE FUNCTION crawlab_task_news();";

/* Version 2: the spiders' archives, so that every master serves every version. Each is a large
 * object (libpq streams it from and to a file; up to the 4 GiB a spider may have), named by the
 * SHA-256 of its bytes. */
static const char pg_schema_2_sql[] =
    "CREATE TABLE spider_archives (sha256 TEXT PRIMARY KEY, loid OID NOT NULL);";

/* pg_schema_steps[v] brings a database from version v to v + 1 (version 0: an empty one). */
static const char *const pg_schema_steps[PG_SCHEMA_VERSION] = {pg_schema_1_sql, pg_schema_2_sql};

/* The advisory lock that one master at a time migrates under: any fixed number ("crwl"). */
#define PG_MIGRATE_LOCK "1668446060"

/* ---- Errors ---- */

/* The length of a libpq message without the newline it ends in (a log line leaves it out). */
static int message_len(const char *m)
{
    size_t len = strlen(m);
    while (len > 0 && (m[len - 1] == '\n' || m[len - 1] == ' '))
        len--;
    return (int)len;
}

/* The server, as log lines name it: never the connection string, which may hold a password. */
static void log_pg_error(struct pg_store *p, const char *what, const char *ctx, const char *detail)
{
    log_error("store: PostgreSQL %s:%s database %s: %s%s%s failed: %.*s", PQhost(p->conn),
              PQport(p->conn), PQdb(p->conn), what, ctx ? " for " : "", ctx ? ctx : "",
              message_len(detail), detail);
}

/* The server's notices ("relation already exists, skipping") go to the log at debug level,
 * instead of libpq's default, a raw line on stderr. */
static void log_notice(void *arg, const char *message)
{
    (void)arg;
    log_debug("store: PostgreSQL: %.*s", message_len(message), message);
}

/* A failed statement: logged; inside a group, the group can only roll back from now on. */
static int statement_failed(struct pg_store *p, const char *what, const char *ctx,
                            const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    log_pg_error(p, what, ctx, res ? PQresultErrorMessage(res) : PQerrorMessage(p->conn));
    if (p->in_group && !p->group_broken) {
        log_error("store: PostgreSQL aborted the open group after an error; the group will be "
                  "rolled back");
        p->group_broken = true;
    }
    if (!res)
        return -ENOMEM;
    return state && strcmp(state, "23505") == 0 ? -EEXIST : -EIO;
}

int pg_call_failed(struct pg_store *p, const char *what, const char *ctx)
{
    statement_failed(p, what, ctx, NULL);
    return -EIO;
}

/* ---- Parameters ---- */

static void add_param(struct pg_params *pp, const char *v, size_t len, int format)
{
    pp->values[pp->n] = v;
    pp->lengths[pp->n] = (int)len;
    pp->formats[pp->n] = format;
    pp->n++;
}

void pg_param_text(struct pg_params *pp, const char *v)
{
    add_param(pp, v, 0, 0);
}

void pg_param_textn(struct pg_params *pp, const char *v, size_t len)
{
    add_param(pp, v, len, 0);
}

void pg_param_bytes(struct pg_params *pp, const void *v, size_t len)
{
    add_param(pp, v, len, 1);
}

void pg_param_int(struct pg_params *pp, int64_t v)
{
    snprintf(pp->ints[pp->n], sizeof(pp->ints[pp->n]), "%" PRId64, v);
    pg_param_text(pp, pp->ints[pp->n]);
}

void pg_param_bool(struct pg_params *pp, bool v)
{
    pg_param_text(pp, v ? "t" : "f");
}

/* ---- Statements ---- */

static int exec_text(struct pg_store *p, const char *what, const char *sql)
{
    PGresult *res = PQexec(p->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = statement_failed(p, what, NULL, res);
    PQclear(res);
    return rc;
}

/* Before any statement: an open group whose BEGIN was not sent yet sends it now. */
static int group_statement(struct pg_store *p)
{
    if (!p->in_group || p->group_begun)
        return 0;
    p->group_begun = true;
    return exec_text(p, "beginning a group", "BEGIN");
}

int pg_exec_simple(struct pg_store *p, const char *what, const char *sql)
{
    int rc = group_statement(p);
    return rc < 0 ? rc : exec_text(p, what, sql);
}

/* The name of sql's prepared statement into name, preparing it on first use. */
static int prepared_name(struct pg_store *p, const char *sql, int nparams, char name[16])
{
    unsigned i = 0;
    while (i < p->n_prepared && p->prepared[i] != sql)
        i++;
    snprintf(name, 16, "s%u", i);
    if (i < p->n_prepared)
        return 0;
    if (i == PG_STATEMENTS_MAX) {
        log_error("store: PostgreSQL: more than %d statements to prepare", PG_STATEMENTS_MAX);
        return -ENOSPC;
    }
    PGresult *res = PQprepare(p->conn, name, sql, nparams, NULL);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = statement_failed(p, "preparing a statement", sql, res);
    else
        p->prepared[p->n_prepared++] = sql;
    PQclear(res);
    return rc;
}

PGresult *pg_query(struct pg_store *p, const char *what, const char *ctx, const char *sql,
                   const struct pg_params *pp, int *err)
{
    static const struct pg_params none = {0};
    if (!pp)
        pp = &none;
    char name[16];
    int rc = p->in_group && p->group_broken ? -EIO : group_statement(p);
    if (rc == 0)
        rc = prepared_name(p, sql, pp->n, name);
    if (rc < 0) {
        if (err)
            *err = rc;
        return NULL;
    }
    PGresult *res = PQexecPrepared(p->conn, name, pp->n, pp->values, pp->lengths, pp->formats, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    rc = statement_failed(p, what, ctx, res);
    PQclear(res);
    if (err)
        *err = rc;
    return NULL;
}

PGresult *pg_query_row(struct pg_store *p, const char *what, const char *ctx, const char *sql,
                       const struct pg_params *pp, int *err)
{
    PGresult *res = pg_query(p, what, ctx, sql, pp, err);
    if (res && PQntuples(res) == 0) {
        PQclear(res);
        *err = -ENOENT;
        return NULL;
    }
    return res;
}

int64_t pg_exec(struct pg_store *p, const char *what, const char *ctx, const char *sql,
                const struct pg_params *pp)
{
    int err = 0;
    PGresult *res = pg_query(p, what, ctx, sql, pp, &err);
    if (!res)
        return err;
    int64_t n = PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res)
                                                       : strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return n;
}

/* ---- Columns ---- */

int64_t pg_int(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

bool pg_bool(const PGresult *res, int row, int col)
{
    return PQgetvalue(res, row, col)[0] == 't';
}

bool pg_is_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) != 0;
}

void pg_copy(char *dst, size_t cap, const PGresult *res, int row, int col)
{
    size_t n = (size_t)PQgetlength(res, row, col);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, PQgetvalue(res, row, col), n);
    dst[n] = '\0';
}

char *pg_dup(const PGresult *res, int row, int col)
{
    size_t n = (size_t)PQgetlength(res, row, col);
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    memcpy(out, PQgetvalue(res, row, col), n);
    out[n] = '\0';
    return out;
}

/* ---- Transactions ---- */

/* A connection the server or the network dropped is reset; its prepared statements went with it. */
int pg_reconnect(struct pg_store *p)
{
    if (!p->conn)
        return -EIO;
    if (PQstatus(p->conn) == CONNECTION_OK)
        return 0;
    PQreset(p->conn);
    if (PQstatus(p->conn) != CONNECTION_OK) {
        if (!p->lost) /* once, not once per operation while the server is away */
            log_pg_error(p, "reconnecting", NULL, PQerrorMessage(p->conn));
        p->lost = true;
        return -EIO;
    }
    log_info("store: PostgreSQL %s:%s database %s: connected again", PQhost(p->conn),
             PQport(p->conn), PQdb(p->conn));
    p->lost = false;
    p->n_prepared = 0;
    p->hooks_held = false; /* a session's lock goes with it */
    p->news_moved = p->listening;
    return p->listening ? pg_exec_simple(p, "listening again", PG_LISTEN_SQL) : 0;
}

int pg_enter(struct pg_store *p, const char *fn)
{
    if (p->streaming) {
        log_error("store: %s called from a streaming callback; refused", fn);
        return -EBUSY;
    }
    return p->in_group ? 0 : pg_reconnect(p);
}

int pg_op_begin(struct pg_store *p)
{
    if (p->in_group)
        return p->group_broken ? -EIO : 0;
    return pg_exec_simple(p, "beginning a transaction", "BEGIN");
}

int pg_op_end(struct pg_store *p, int rc)
{
    if (p->in_group)
        return rc;
    if (rc < 0) {
        pg_exec_simple(p, "rolling back", "ROLLBACK");
        return rc;
    }
    int c = pg_exec_simple(p, "committing", "COMMIT");
    return c < 0 ? c : rc;
}

int pg_begin(struct store *s)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    if (p->in_group)
        return -EALREADY;
    p->in_group = true;
    p->group_begun = false; /* BEGIN goes with the first statement (group_statement) */
    p->group_broken = false;
    return 0;
}

int pg_commit(struct store *s)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    if (!p->in_group)
        return -EINVAL;
    p->in_group = false;
    if (p->group_broken) {
        p->group_broken = false;
        if (p->group_begun)
            pg_exec_simple(p, "rolling back a broken group", "ROLLBACK");
        return -EIO;
    }
    return p->group_begun ? pg_exec_simple(p, "committing a group", "COMMIT") : 0;
}

int pg_rollback(struct store *s)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    if (!p->in_group)
        return -EINVAL;
    p->in_group = false;
    p->group_broken = false;
    return p->group_begun ? pg_exec_simple(p, "rolling back a group", "ROLLBACK") : 0;
}

/* ---- The schema ---- */

/* The version recorded in crawlab_schema, 0 when it has no row yet. */
static int read_version(struct pg_store *p, int *out)
{
    PGresult *res = PQexec(p->conn, "SELECT version FROM crawlab_schema");
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = statement_failed(p, "reading the schema version", NULL, res);
    else
        *out = PQntuples(res) > 0 ? atoi(PQgetvalue(res, 0, 0)) : 0;
    PQclear(res);
    return rc;
}

/* Under the lock, in one transaction (PostgreSQL's DDL is transactional): the version is read,
 * the missing steps run, and the new version is written; a failure leaves the old schema. */
static int migrate_locked(struct pg_store *p)
{
    int version = 0;
    int rc = pg_exec_simple(p, "locking the schema",
                            "SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK ")");
    if (rc == 0)
        rc = pg_exec_simple(p, "creating the schema version table",
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
        rc = pg_exec_simple(p, "migrating the schema", pg_schema_steps[v]);
    char sql[96];
    snprintf(sql, sizeof(sql), "DELETE FROM crawlab_schema; INSERT INTO crawlab_schema VALUES (%d)",
             PG_SCHEMA_VERSION);
    if (rc == 0)
        rc = pg_exec_simple(p, "recording the schema version", sql);
    if (rc == 0)
        log_info("store: PostgreSQL %s:%s database %s: schema version %d (was %d)", PQhost(p->conn),
                 PQport(p->conn), PQdb(p->conn), PG_SCHEMA_VERSION, version);
    return rc;
}

static int migrate(struct pg_store *p)
{
    int rc = pg_exec_simple(p, "beginning the migration", "BEGIN");
    if (rc < 0)
        return rc;
    rc = migrate_locked(p);
    int end = pg_exec_simple(p, rc == 0 ? "committing the migration" : "rolling the migration back",
                             rc == 0 ? "COMMIT" : "ROLLBACK");
    return rc < 0 ? rc : end;
}

int pg_store_schema_version(struct store *s)
{
    int version = 0;
    int rc = read_version(pg_of(s), &version);
    return rc < 0 ? rc : version;
}

/* ---- Opening ---- */

static int connect_pg(struct pg_store *p, const char *conninfo)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    PQfreemem(err);
    if (!opts)
        return -EINVAL;
    PQconninfoFree(opts);
    /* Defaults the location's own parameters override (they come after, in dbname): a server
     * that stops answering fails the master's calls within seconds instead of holding its loop
     * (a connection attempt within 10 s; unacknowledged data within 10 s; a silent peer found by
     * keepalives within 11 s). */
    static const char *const keys[] = {
        "connect_timeout",  "tcp_user_timeout", "keepalives_idle", "keepalives_interval",
        "keepalives_count", "application_name", "dbname",          NULL};
    const char *values[] = {"10", "10000", "5", "2", "3", "crawlab-node", conninfo, NULL};
    p->conn = PQconnectdbParams(keys, values, 1);
    if (!p->conn)
        return -ENOMEM;
    if (PQstatus(p->conn) != CONNECTION_OK) {
        log_pg_error(p, "connecting", NULL, PQerrorMessage(p->conn));
        return -ECONNREFUSED;
    }
    PQsetNoticeProcessor(p->conn, log_notice, NULL);
    if (PQsetClientEncoding(p->conn, "UTF8") != 0) {
        log_pg_error(p, "setting the client encoding", NULL, PQerrorMessage(p->conn));
        return -EIO;
    }
    return 0;
}

static const struct store_ops pg_ops;

int pg_store_open(const char *conninfo, struct store **out)
{
    if (!conninfo || !out)
        return -EINVAL;
    struct pg_store *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->base.ops = &pg_ops;
    int rc = connect_pg(p, conninfo);
    if (rc == 0)
        rc = migrate(p);
    if (rc == 0)
        rc = store_ids_init(&p->ids);
    if (rc < 0) {
        pg_close(&p->base);
        return rc;
    }
    *out = &p->base;
    return 0;
}

void pg_close(struct store *s)
{
    struct pg_store *p = pg_of(s);
    if (!p)
        return;
    if (p->conn && p->in_group)
        log_warn("store: closing with an open group; its changes are rolled back");
    PQfinish(p->conn);
    free(p);
}

/* The backend's table: the rows' functions are in store_pg_*.c. */
static const struct store_ops pg_ops = {
    .close = pg_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .node_upsert = pg_node_upsert,
    .node_set_state = pg_node_set_state,
    .node_delete = pg_node_delete,
    .node_set_status = pg_node_set_status,
    .node_touch = pg_node_touch,
    .node_get = pg_node_get,
    .node_list = pg_node_list,
    .node_page = pg_node_page,
    .node_named = pg_node_named,
    .task_create = pg_task_create,
    .task_restart = pg_task_restart,
    .task_retry = pg_task_retry,
    .task_next_eligible = pg_task_next_eligible,
    .task_eligible_nodes = pg_task_eligible_nodes,
    .task_fetch = pg_task_fetch,
    .task_assign = pg_task_assign,
    .task_get = pg_task_get,
    .task_set_status = pg_task_set_status,
    .task_epoch = pg_task_epoch,
    .task_request_cancel = pg_task_request_cancel,
    .task_list = pg_task_list,
    .task_count_by_status = pg_task_count_by_status,
    .task_page = pg_task_page,
    .task_pos = pg_task_pos,
    .task_find_prefix = pg_task_find_prefix,
    .task_purge = pg_task_purge,
    .purge_logs = pg_purge_logs,
    .task_count_purgeable = pg_task_count_purgeable,
    .task_list_by_node = pg_task_list_by_node,
    .task_history = pg_task_history,
    .log_append = pg_log_append,
    .items_append = pg_items_append,
    .log_read = pg_log_read,
    .items_read = pg_items_read,
    .schedule_create = pg_schedule_create,
    .schedule_get = pg_schedule_get,
    .schedule_list = pg_schedule_list,
    .schedule_set_paused = pg_schedule_set_paused,
    .schedule_delete = pg_schedule_delete,
    .schedule_fire = pg_schedule_fire,
    .schedule_last_tasks = pg_schedule_last_tasks,
    .schedule_skip = pg_schedule_skip,
    .schedule_fires = pg_schedule_fires,
    .event_add = pg_event_add,
    .event_page = pg_event_page,
    .event_last = pg_event_last,
    .event_count = pg_event_count,
    .event_purge = pg_event_purge,
    .event_cursor_get = pg_event_cursor_get,
    .event_cursor_set = pg_event_cursor_set,
    .spider_add = pg_spider_add,
    .spider_get = pg_spider_get,
    .spider_list = pg_spider_list,
    .spider_remove = pg_spider_remove,
    .spider_sha_used = pg_spider_sha_used,
    .spider_task_using = pg_spider_task_using,
    .spider_archive_put = pg_spider_archive_put,
    .spider_archive_get = pg_spider_archive_get,
    .spider_archive_drop = pg_spider_archive_drop,
    .master_renew = pg_master_renew,
    .node_hold = pg_node_hold,
    .master_reap = pg_master_reap,
    .hooks_hold = pg_hooks_hold,
    .news_fd = pg_news_fd,
    .news = pg_news,
};
