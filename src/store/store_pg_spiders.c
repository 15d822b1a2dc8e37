/*
 * The store's spiders on PostgreSQL (store/store_pg.h).
 *
 * Several masters: a new version is one more than its name's latest. Two masters adding a version
 * of one name at once would both read the same latest; so an add first takes a transaction-level
 * advisory lock on the name, and only then, in a statement of its own (whose snapshot, at READ
 * COMMITTED, sees what the other master committed before it let the lock go), reads the latest and
 * inserts. The other operations are single statements.
 *
 * Names sort byte by byte (COLLATE "C"), as SQLite does, whatever the database's collation.
 */
#include "store/store_pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/spider.h"

#define SPIDER_COLS "name, version, sha256, size, files, unpacked, created_ms"

/* The advisory locks of spider names: this class with the name's hash ("spdr"; the two-key space
 * is apart from the schema's one-key lock). Two names with one hash only wait for each other. */
static const char sql_lock_name[] = "SELECT pg_advisory_xact_lock(1936745586, hashtext($1))";
static const char sql_add[] =
    "INSERT INTO spiders (" SPIDER_COLS ")"
    " SELECT $1::text, COALESCE(max(version), 0) + 1, $2::text, $3::bigint, $4::bigint,"
    " $5::bigint, $6::bigint FROM spiders WHERE name = $1 RETURNING version";
static const char sql_get[] = "SELECT " SPIDER_COLS " FROM spiders WHERE name = $1"
                              " AND ($2::bigint = 0 OR version = $2) ORDER BY version DESC LIMIT 1";
static const char sql_versions[] = "SELECT " SPIDER_COLS " FROM spiders WHERE name = $1"
                                   " AND ($2::bigint = 0 OR version = $2) ORDER BY version";
static const char sql_latest[] =
    "SELECT " SPIDER_COLS " FROM spiders AS a WHERE version ="
    " (SELECT max(version) FROM spiders WHERE name = a.name) ORDER BY name COLLATE \"C\"";
static const char sql_remove[] =
    "DELETE FROM spiders WHERE name = $1 AND ($2::bigint = 0 OR version = $2)";
static const char sql_sha_used[] = "SELECT 1 FROM spiders WHERE sha256 = $1 LIMIT 1";
static const char sql_task_using[] =
    "SELECT id, status FROM tasks WHERE spider = $1"
    " AND status NOT IN ('finished', 'error', 'cancelled', 'abnormal') LIMIT 1";

static void spider_from_result(const PGresult *res, int i, struct spider_row *r)
{
    memset(r, 0, sizeof(*r));
    pg_copy(r->name, sizeof(r->name), res, i, 0);
    r->version = (uint32_t)pg_int(res, i, 1);
    pg_copy(r->sha256, sizeof(r->sha256), res, i, 2);
    r->size = (uint64_t)pg_int(res, i, 3);
    r->files = (uint64_t)pg_int(res, i, 4);
    r->unpacked = (uint64_t)pg_int(res, i, 5);
    r->created_ms = pg_int(res, i, 6);
}

/* Runs a SELECT of SPIDER_COLS and calls cb (may be NULL) for each row until it returns
 * non-zero. Collects first. Returns the number of rows, or a negative errno (cb's too). */
static int spider_rows(struct pg_store *p, const char *ctx, const char *sql,
                       const struct pg_params *pp, int (*cb)(void *ctx, const struct spider_row *r),
                       void *cb_ctx)
{
    int rc = 0;
    PGresult *res = pg_query(p, "listing spiders", ctx, sql, pp, &rc);
    if (!res)
        return rc;
    int n = PQntuples(res);
    for (int i = 0; rc == 0 && cb && i < n; i++) {
        struct spider_row r;
        spider_from_result(res, i, &r);
        rc = cb(cb_ctx, &r);
    }
    PQclear(res);
    return rc == 0 ? n : rc;
}

static void name_version_params(struct pg_params *pp, const char *name, uint32_t version)
{
    pg_params_init(pp);
    pg_param_text(pp, name);
    pg_param_int(pp, version);
}

/* Two masters adding a version of one name: the name's lock makes the second wait until the
 * first commits; its insert, a statement after the wait, counts on from the first one's version. */
int pg_spider_add(struct store *s, const struct spider_row *r, int64_t now_ms,
                  uint32_t *version_out)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, r->name);
    rc = pg_op_begin(p);
    if (rc < 0)
        return rc;
    int64_t locked = pg_exec(p, "locking a spider's name", r->name, sql_lock_name, &pp);
    if (locked < 0)
        return pg_op_end(p, (int)locked);
    pg_param_text(&pp, r->sha256);
    pg_param_int(&pp, (int64_t)r->size);
    pg_param_int(&pp, (int64_t)r->files);
    pg_param_int(&pp, (int64_t)r->unpacked);
    pg_param_int(&pp, now_ms);
    PGresult *res = pg_query(p, "adding a spider version", r->name, sql_add, &pp, &rc);
    if (res) {
        *version_out = (uint32_t)pg_int(res, 0, 0);
        PQclear(res);
    }
    return pg_op_end(p, rc);
}

static int copy_spider(void *ctx, const struct spider_row *r)
{
    *(struct spider_row *)ctx = *r;
    return 0;
}

int pg_spider_get(struct store *s, const char *name, uint32_t version, struct spider_row *out)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    name_version_params(&pp, name, version);
    rc = spider_rows(p, name, sql_get, &pp, copy_spider, out);
    return rc < 0 ? rc : rc == 0 ? -ENOENT : 0;
}

int pg_spider_list(struct store *s, const char *name, uint32_t version,
                   int (*cb)(void *ctx, const struct spider_row *r), void *ctx)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    if (!name)
        return spider_rows(p, "spiders", sql_latest, NULL, cb, ctx);
    struct pg_params pp;
    name_version_params(&pp, name, version);
    return spider_rows(p, name, sql_versions, &pp, cb, ctx);
}

int pg_spider_remove(struct store *s, const char *name, uint32_t version)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    name_version_params(&pp, name, version);
    int64_t n = pg_exec(p, "removing a spider", name, sql_remove, &pp);
    return n < 0 ? (int)n : n == 0 ? -ENOENT : 0;
}

int pg_spider_sha_used(struct store *s, const char *sha256, bool *used)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, sha256);
    int64_t n = pg_exec(p, "looking a spider up", sha256, sql_sha_used, &pp);
    if (n < 0)
        return (int)n;
    *used = n > 0;
    return 0;
}

int pg_spider_task_using(struct store *s, const char *name, uint32_t version,
                         char id[TASK_ID_LEN + 1], enum task_status *status)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    char ref[LIMIT_SPIDER_NAME_MAX + 12];
    snprintf(ref, sizeof(ref), "%s@%u", name, version);
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, ref);
    PGresult *res = pg_query(p, "looking for the tasks of a spider", ref, sql_task_using, &pp, &rc);
    if (!res)
        return rc;
    if (PQntuples(res) > 0) {
        pg_copy(id, TASK_ID_LEN + 1, res, 0, 0);
        rc = task_status_parse(PQgetvalue(res, 0, 1), status) == 0 ? 1 : -EIO;
    }
    PQclear(res);
    return rc;
}

/* ---- Archives ---- */

/* An archive is stored once per SHA-256 however many versions (or masters) name it. Two masters
 * storing one at once: the second's insert waits for the first's row, finds it, and drops its
 * own large object in the same transaction. */
static const char sql_archive_oid[] = "SELECT loid FROM spider_archives WHERE sha256 = $1";
static const char sql_archive_add[] =
    "INSERT INTO spider_archives (sha256, loid) VALUES ($1, $2) ON CONFLICT DO NOTHING";
static const char sql_archive_drop[] = "WITH gone AS (DELETE FROM spider_archives"
                                       " WHERE sha256 = $1 RETURNING loid)"
                                       " SELECT lo_unlink(loid) FROM gone";

/* What each archive operation starts with: the connection, sha256 as $1, a transaction of its
 * own (or the open group's). */
static int archive_begin(struct pg_store *p, const char *fn, const char *sha256,
                         struct pg_params *pp)
{
    int rc = pg_enter(p, fn);
    if (rc < 0)
        return rc;
    pg_params_init(pp);
    pg_param_text(pp, sha256);
    return pg_op_begin(p);
}

int pg_spider_archive_put(struct store *s, const char *sha256, const char *path)
{
    struct pg_store *p = pg_of(s);
    struct pg_params pp;
    int rc = archive_begin(p, __func__, sha256, &pp);
    if (rc < 0)
        return rc;
    int64_t n = pg_exec(p, "looking a spider archive up", sha256, sql_archive_oid, &pp);
    if (n != 0)
        return pg_op_end(p, n < 0 ? (int)n : 0);
    Oid oid = lo_import(p->conn, path);
    if (oid == InvalidOid)
        return pg_op_end(p, pg_call_failed(p, "storing a spider archive", sha256));
    char oid_text[16];
    snprintf(oid_text, sizeof(oid_text), "%u", oid);
    pg_param_text(&pp, oid_text);
    n = pg_exec(p, "recording a spider archive", sha256, sql_archive_add, &pp);
    if (n == 0 && lo_unlink(p->conn, oid) < 0) /* another master's came first */
        n = pg_call_failed(p, "dropping a second copy of a spider archive", sha256);
    return pg_op_end(p, n < 0 ? (int)n : 0);
}

int pg_spider_archive_get(struct store *s, const char *sha256, const char *path)
{
    struct pg_store *p = pg_of(s);
    struct pg_params pp;
    int rc = archive_begin(p, __func__, sha256, &pp);
    if (rc < 0)
        return rc;
    PGresult *res =
        pg_query_row(p, "looking a spider archive up", sha256, sql_archive_oid, &pp, &rc);
    if (res) {
        Oid oid = (Oid)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        if (lo_export(p->conn, oid, path) != 1)
            rc = pg_call_failed(p, "reading a spider archive", sha256);
    }
    return pg_op_end(p, rc);
}

int pg_spider_archive_drop(struct store *s, const char *sha256)
{
    struct pg_store *p = pg_of(s);
    struct pg_params pp;
    int rc = archive_begin(p, __func__, sha256, &pp);
    if (rc < 0)
        return rc;
    int64_t n = pg_exec(p, "dropping a spider archive", sha256, sql_archive_drop, &pp);
    return pg_op_end(p, n < 0 ? (int)n : 0);
}
