/*
 * The PostgreSQL backend of the store (docs/postgres.md), internal to src/store/: what its files
 * (store_pg.c: the connection, the schema, transactions; store_pg_*.c: the rows) share. Built only
 * with libpq (HAVE_LIBPQ, meson's -Dlibpq).
 *
 * Several masters share one database: the schema is created and brought up to date by whichever
 * opens it first, under a transaction-scoped advisory lock, so that two masters starting together
 * migrate it once. A database whose schema is newer than this binary's is refused. Row operations
 * that must not be done twice by two masters (claims) lock the rows they take
 * (FOR UPDATE SKIP LOCKED) inside their transaction.
 *
 * Threading and blocking: like store.h, one thread; every call blocks on the network for its
 * statements' round trips, and opening blocks for as long as libpq's connect_timeout.
 *
 * Errors: 0 or a negative errno, as store.h. A connection string that libpq cannot parse is
 * -EINVAL, not logged (the caller reports its input). Server failures are logged once, naming the
 * server's host, port and database, never the connection string (it may hold a password).
 *
 * Groups: store_begin opens a transaction and each operation runs in it without a savepoint of
 * its own, so an operation checks its input (and reads what it needs) before it writes; a
 * statement that fails inside a group aborts the transaction, later operations of the group fail
 * with -EIO and store_commit rolls it back and returns -EIO (store.h's "the database aborted the
 * transaction on its own"). Outside a group, each operation is its own transaction.
 *
 * A lost connection is reset at the next operation outside a group (one attempt per operation):
 * while the server is away every operation fails with -EIO, and the store serves again once it
 * is back, with nothing committed lost.
 */
#ifndef CRAWLAB_STORE_PG_H
#define CRAWLAB_STORE_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/backend.h"

/* The schema version this binary writes (pg_schema_steps in store_pg.c). */
#define PG_SCHEMA_VERSION 2

/* How many distinct statements the backend prepares, at most (store_pg.c's cache). */
#define PG_STATEMENTS_MAX 160

/* Parameters of one statement, as text (NULL: SQL NULL). */
#define PG_PARAMS_MAX 40
struct pg_params {
    int n;
    const char *values[PG_PARAMS_MAX];
    int lengths[PG_PARAMS_MAX];   /* 0 = NUL-terminated text */
    int formats[PG_PARAMS_MAX];   /* 0 = text, 1 = binary (BYTEA) */
    char ints[PG_PARAMS_MAX][24]; /* storage of the integers' text */
};

struct pg_store {
    struct store base; /* first: the store.h handle is this struct */
    PGconn *conn;
    struct store_ids ids;
    bool in_group;
    /* The group's BEGIN was sent. It goes with the group's first statement, so a group that
     * touched nothing (a loop iteration of heartbeats) costs no round trip to the server. */
    bool group_begun;
    bool group_broken; /* a statement failed inside the group: it can only roll back */
    bool streaming;    /* a streaming callback runs: the store must not be re-entered */
    bool lost;         /* the connection is down (logged once) */
    bool listening;    /* LISTENs to the other masters' news (store_news_fd) */
    bool news_moved;   /* reconnected since store_news_fd gave its descriptor */
    bool hooks_held;   /* this connection holds the hooks' lock (store_hooks_hold) */
    /* Statements prepared on this connection, by the address of their SQL text (the backend's
     * statements are string constants): statement i is named "s<i>". Cleared on a reset. */
    const char *prepared[PG_STATEMENTS_MAX];
    unsigned n_prepared;
};

static inline struct pg_store *pg_of(struct store *base)
{
    return (struct pg_store *)base;
}

/* ---- Parameters ---- */

static inline void pg_params_init(struct pg_params *pp)
{
    pp->n = 0;
}

/* Adds v, a NUL-terminated text (NULL: SQL NULL). */
void pg_param_text(struct pg_params *pp, const char *v);
/* Adds len bytes of v as text (need not be NUL-terminated). */
void pg_param_textn(struct pg_params *pp, const char *v, size_t len);
/* Adds len bytes of v as a BYTEA value (binary: any bytes). */
void pg_param_bytes(struct pg_params *pp, const void *v, size_t len);
void pg_param_int(struct pg_params *pp, int64_t v);
void pg_param_bool(struct pg_params *pp, bool v);

/* ---- Statements ---- */

/*
 * Every operation starts with pg_enter (refuses re-entry from a streaming callback with -EBUSY,
 * resets a lost connection outside a group). An operation of several statements puts
 * pg_op_begin ... pg_op_end around them (BEGIN/COMMIT outside a group, nothing inside one;
 * rc < 0 rolls back); pg_op_end returns rc unless committing fails. An operation of one statement
 * runs it alone: outside a group the statement is its own transaction, which PostgreSQL commits
 * (or undoes) by itself, without the two round trips of BEGIN and COMMIT; inside one it is part
 * of the group, as every statement is.
 */
int pg_enter(struct pg_store *p, const char *fn);
int pg_op_begin(struct pg_store *p);
int pg_op_end(struct pg_store *p, int rc);

/*
 * Runs sql (a string constant: it is prepared once per connection by its address) with pp's
 * parameters (NULL: none). Returns the result when the statement succeeded (PGRES_COMMAND_OK or
 * PGRES_TUPLES_OK), the caller PQclear()s it; NULL when it failed: logged with what and ctx (a
 * task id, a node key; may be NULL), and inside a group the group is marked broken. *err (may be
 * NULL) receives the errno: -EEXIST for a unique violation, -EIO otherwise, -ENOMEM. In a broken
 * group nothing is sent: -EIO, until the group rolls back.
 */
PGresult *pg_query(struct pg_store *p, const char *what, const char *ctx, const char *sql,
                   const struct pg_params *pp, int *err);

/* A libpq call other than a statement (a large object's import or export) failed: logged as a
 * statement is, the group marked broken when one is open. Returns -EIO. */
int pg_call_failed(struct pg_store *p, const char *what, const char *ctx);

/* pg_query for a statement that reads one row: NULL with *err = -ENOENT when it found none. */
PGresult *pg_query_row(struct pg_store *p, const char *what, const char *ctx, const char *sql,
                       const struct pg_params *pp, int *err);

/* pg_query for a statement whose rows are not wanted: the number of rows it changed or returned,
 * or a negative errno. */
int64_t pg_exec(struct pg_store *p, const char *what, const char *ctx, const char *sql,
                const struct pg_params *pp);

/* Runs a statement without parameters or preparation (BEGIN, COMMIT, several statements). */
int pg_exec_simple(struct pg_store *p, const char *what, const char *sql);

/* Resets the connection if it was lost (outside a group only: pg_enter does it), listening
 * again if it was. 0, or -EIO while the server is away. */
int pg_reconnect(struct pg_store *p);

/* What a master runs to hear the others' news (store_pg_masters.c). */
#define PG_LISTEN_SQL "LISTEN crawlab_tasks; LISTEN crawlab_cancels"

/* ---- Columns ---- */

int64_t pg_int(const PGresult *res, int row, int col); /* NULL: 0 */
bool pg_bool(const PGresult *res, int row, int col);   /* 't' */
bool pg_is_null(const PGresult *res, int row, int col);
/* Copies the text into dst (cap bytes, truncated, NUL-terminated). */
void pg_copy(char *dst, size_t cap, const PGresult *res, int row, int col);
/* A heap copy of the text ("" for NULL); NULL when out of memory. */
char *pg_dup(const PGresult *res, int row, int col);

/* ---- Shared between the rows' files ---- */

/* Inserts a new pending task (t passed store_task_new_valid) inside an open operation and writes
 * its id into id; link NULL: a submitted task, its first attempt (store_pg_tasks.c; also made by
 * store_pg_schedules.c's fires). */
int pg_task_insert(struct pg_store *p, const struct task_new *t, const struct task_link *link,
                   int64_t now_ms, char id[TASK_ID_LEN + 1]);

/* ---- Opening (store_pg.c) ---- */

/* pg_store_open is declared in store/backend.h. The database's schema version (PG_SCHEMA_VERSION
 * once opened), or a negative errno. */
int pg_store_schema_version(struct store *s);

/* ---- The operations (store/backend.h), each with the contract of its store_ function ---- */

/* store_pg.c: the connection and transactions */
void pg_close(struct store *s);
int pg_begin(struct store *s);
int pg_commit(struct store *s);
int pg_rollback(struct store *s);

/* store_pg_masters.c: several masters */
int pg_master_renew(struct store *s, const char *master_id, int64_t for_ms);
int pg_node_hold(struct store *s, const char *key, const char *master_id);
int pg_master_reap(struct store *s, int (*cb)(void *ctx, const char *node_key), void *ctx);
int pg_hooks_hold(struct store *s);
int pg_news_fd(struct store *s);
int pg_news(struct store *s, const struct store_news_handlers *h, bool read);

/* store_pg_nodes.c */
int pg_node_upsert(struct store *s, const char *key, const char *name, int max_runners,
                   const char *version, const char *labels, int64_t now_ms);
int pg_node_set_state(struct store *s, const char *key, const char *state);
int pg_node_delete(struct store *s, const char *key);
int pg_node_set_status(struct store *s, const char *key, const char *status, int64_t now_ms);
int pg_node_touch(struct store *s, const char *key, int64_t now_ms);
int pg_node_get(struct store *s, const char *key, struct node_row *out);
int pg_node_list(struct store *s, int (*cb)(void *ctx, const struct node_row *r), void *ctx);
int pg_node_named(struct store *s, const char *given,
                  int (*cb)(void *ctx, const struct node_row *r), void *ctx);
int pg_node_page(struct store *s, const char *after_key, unsigned limit,
                 int (*cb)(void *ctx, const struct node_row *r), void *ctx);

/* store_pg_tasks.c (and retention) */
int pg_task_create(struct store *s, const struct task_new *t, int64_t now_ms,
                   char id_out[TASK_ID_LEN + 1]);
int pg_task_restart(struct store *s, const char *id, int64_t now_ms, char id_out[TASK_ID_LEN + 1]);
int pg_task_retry(struct store *s, const char *id, enum task_status to, int exit_code,
                  const char *error, int64_t eligible_ms, int64_t now_ms,
                  char id_out[TASK_ID_LEN + 1]);
int pg_task_next_eligible(struct store *s, int64_t after_ms, int64_t *at_ms);
int pg_task_eligible_nodes(struct store *s, int64_t after_ms, int64_t until_ms,
                           int (*cb)(void *ctx, const char *node_key, const char *labels),
                           void *ctx);
int pg_task_fetch(struct store *s, const char *node_key, const char *node_labels, int64_t now_ms,
                  struct task_row *out);
int pg_task_assign(struct store *s, const char *id, const char *node_key, int64_t now_ms,
                   bool pushed);
int pg_task_get(struct store *s, const char *id, struct task_row *out);
int pg_task_set_status(struct store *s, const char *id, enum task_status to, int pid, int exit_code,
                       const char *error, int64_t now_ms);
int pg_task_epoch(struct store *s, const char *id, uint64_t *out);
int pg_task_request_cancel(struct store *s, const char *id, bool force, int64_t now_ms,
                           enum task_status *status_out);
int pg_task_list(struct store *s, const char *status, const char *node_key, unsigned limit,
                 int (*cb)(void *ctx, const struct task_row *r), void *ctx);
int pg_task_count_by_status(struct store *s, const char *node_key,
                            uint64_t counts[TASK_STATUS_COUNT]);
int pg_task_page(struct store *s, const char *status, const char *node_key,
                 const struct task_pos *after, unsigned limit,
                 int (*cb)(void *ctx, const struct task_row *r, const struct task_pos *pos),
                 void *ctx);
int pg_task_pos(struct store *s, const char *id, struct task_pos *out);
int pg_task_find_prefix(struct store *s, const char *prefix, char (*ids)[TASK_ID_LEN + 1],
                        size_t max);
int pg_task_purge(struct store *s, int64_t before_ms, unsigned budget, size_t *purged, bool *more);
int pg_purge_logs(struct store *s, size_t max, size_t *left);
int pg_task_count_purgeable(struct store *s, int64_t before_ms, uint64_t *out);
int pg_task_list_by_node(struct store *s, const char *node_key, enum task_status status,
                         int (*cb)(void *ctx, const struct task_row *r), void *ctx);
int pg_task_history(struct store *s, const char *id,
                    int (*cb)(void *ctx, const struct task_history_row *h), void *ctx);

/* store_pg_logs.c: task logs and result items */
int pg_log_append(struct store *s, const char *task_id, const char *const *lines,
                  const size_t *lens, size_t n, uint64_t first_seq, size_t *accepted);
int pg_items_append(struct store *s, const char *task_id, const char *const *items,
                    const size_t *lens, size_t n, uint64_t first_seq, size_t *accepted);
int pg_log_read(struct store *s, const char *task_id, uint64_t from_seq,
                int (*cb)(void *ctx, uint64_t seq, const char *line, size_t len), void *ctx);
int pg_items_read(struct store *s, const char *task_id, uint64_t from_seq,
                  int (*cb)(void *ctx, uint64_t seq, const char *data, size_t len), void *ctx);

/* store_pg_schedules.c */
int pg_schedule_create(struct store *s, const struct schedule_new *n, int64_t now_ms,
                       int64_t *id_out);
int pg_schedule_get(struct store *s, int64_t id, struct schedule_row *out);
int pg_schedule_list(struct store *s, int (*cb)(void *ctx, const struct schedule_row *r),
                     void *ctx);
int pg_schedule_set_paused(struct store *s, int64_t id, bool paused, int64_t now_s);
int pg_schedule_delete(struct store *s, int64_t id);
int pg_schedule_fire(struct store *s, int64_t id, int64_t fire_s, const struct task_new *t,
                     size_t n, bool per_node, int64_t now_ms, char (*ids_out)[TASK_ID_LEN + 1]);
int pg_schedule_last_tasks(struct store *s, int64_t id, int (*cb)(void *ctx, const char *task_id),
                           void *ctx);
int pg_schedule_skip(struct store *s, int64_t id, int64_t fire_s);
int pg_schedule_fires(struct store *s, int64_t id,
                      int (*cb)(void *ctx, int64_t fire_s, const char *task_id), void *ctx);

/* store_pg_events.c */
int pg_event_add(struct store *s, int64_t at_ms, const char *kind, const char *node_key,
                 const char *task_id, const char *data, int64_t *id_out);
int pg_event_page(struct store *s, int64_t after, int64_t upto, unsigned limit,
                  int (*cb)(void *ctx, const struct event_row *e), void *ctx);
int pg_event_last(struct store *s, int64_t *out);
int pg_event_count(struct store *s, int64_t after, int64_t upto, uint64_t *out);
int pg_event_purge(struct store *s, int64_t before_ms, unsigned budget, size_t *purged, bool *more);
int pg_event_cursor_get(struct store *s, const char *hook, int64_t *out);
int pg_event_cursor_set(struct store *s, const char *hook, int64_t delivered);

/* store_pg_spiders.c */
int pg_spider_add(struct store *s, const struct spider_row *r, int64_t now_ms,
                  uint32_t *version_out);
int pg_spider_get(struct store *s, const char *name, uint32_t version, struct spider_row *out);
int pg_spider_list(struct store *s, const char *name, uint32_t version,
                   int (*cb)(void *ctx, const struct spider_row *r), void *ctx);
int pg_spider_remove(struct store *s, const char *name, uint32_t version);
int pg_spider_sha_used(struct store *s, const char *sha256, bool *used);
int pg_spider_task_using(struct store *s, const char *name, uint32_t version,
                         char id[TASK_ID_LEN + 1], enum task_status *status);
int pg_spider_archive_put(struct store *s, const char *sha256, const char *path);
int pg_spider_archive_get(struct store *s, const char *sha256, const char *path);
int pg_spider_archive_drop(struct store *s, const char *sha256);

#endif
