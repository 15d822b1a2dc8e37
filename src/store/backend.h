/*
 * The store's backends, internal to src/store/: what store.c dispatches to and what the backends
 * share. store.h is the interface the master sees; each backend implements its functions as one
 * table of operations, chosen by store_open from the store's location (store.c), the way one
 * loop chooses its poller at run time.
 *
 * A backend's handle begins with struct store, so that the store.h pointer is its own:
 *
 *     struct sqlite_store { struct store base; sqlite3 *db; ... };
 *
 * Every operation has the contract of its store_ function in store.h (same arguments, errors,
 * threading and blocking), with its arguments already checked against that contract by store.c
 * (the counts an append or a purge returns are there too, and 0): a backend checks only what
 * its own engine limits.
 * What else the backends share lives here, once.
 */
#ifndef CRAWLAB_STORE_BACKEND_H
#define CRAWLAB_STORE_BACKEND_H

#include "store/store.h"

struct store_ops {
    void (*close)(struct store *s);
    int (*begin)(struct store *s);
    int (*commit)(struct store *s);
    int (*rollback)(struct store *s);
    int (*node_upsert)(struct store *s, const char *key, const char *name, int max_runners,
                       const char *version, const char *labels, int64_t now_ms);
    int (*node_set_state)(struct store *s, const char *key, const char *state);
    int (*node_delete)(struct store *s, const char *key);
    int (*node_set_status)(struct store *s, const char *key, const char *status, int64_t now_ms);
    int (*node_touch)(struct store *s, const char *key, int64_t now_ms);
    int (*node_get)(struct store *s, const char *key, struct node_row *out);
    int (*node_list)(struct store *s, int (*cb)(void *ctx, const struct node_row *r), void *ctx);
    int (*node_page)(struct store *s, const char *after_key, unsigned limit,
                     int (*cb)(void *ctx, const struct node_row *r), void *ctx);
    int (*node_named)(struct store *s, const char *given,
                      int (*cb)(void *ctx, const struct node_row *r), void *ctx);
    int (*task_create)(struct store *s, const struct task_new *t, int64_t now_ms,
                       char id_out[TASK_ID_LEN + 1]);
    int (*task_restart)(struct store *s, const char *id, int64_t now_ms,
                        char id_out[TASK_ID_LEN + 1]);
    int (*task_retry)(struct store *s, const char *id, enum task_status to, int exit_code,
                      const char *error, int64_t eligible_ms, int64_t now_ms,
                      char id_out[TASK_ID_LEN + 1]);
    int (*task_next_eligible)(struct store *s, int64_t after_ms, int64_t *at_ms);
    int (*task_eligible_nodes)(struct store *s, int64_t after_ms, int64_t until_ms,
                               int (*cb)(void *ctx, const char *node_key, const char *labels),
                               void *ctx);
    int (*task_fetch)(struct store *s, const char *node_key, const char *node_labels,
                      int64_t now_ms, struct task_row *out);
    int (*task_assign)(struct store *s, const char *id, const char *node_key, int64_t now_ms,
                       bool pushed);
    int (*task_get)(struct store *s, const char *id, struct task_row *out);
    int (*task_set_status)(struct store *s, const char *id, enum task_status to, int pid,
                           int exit_code, const char *error, int64_t now_ms);
    int (*task_epoch)(struct store *s, const char *id, uint64_t *out);
    int (*task_request_cancel)(struct store *s, const char *id, bool force, int64_t now_ms,
                               enum task_status *status_out);
    int (*task_list)(struct store *s, const char *status, const char *node_key, unsigned limit,
                     int (*cb)(void *ctx, const struct task_row *r), void *ctx);
    int (*task_count_by_status)(struct store *s, const char *node_key,
                                uint64_t counts[TASK_STATUS_COUNT]);
    int (*task_page)(struct store *s, const char *status, const char *node_key,
                     const struct task_pos *after, unsigned limit,
                     int (*cb)(void *ctx, const struct task_row *r, const struct task_pos *pos),
                     void *ctx);
    int (*task_pos)(struct store *s, const char *id, struct task_pos *out);
    int (*task_find_prefix)(struct store *s, const char *prefix, char (*ids)[TASK_ID_LEN + 1],
                            size_t max);
    int (*task_purge)(struct store *s, int64_t before_ms, unsigned budget, size_t *purged,
                      bool *more);
    int (*purge_logs)(struct store *s, size_t max, size_t *left);
    int (*task_count_purgeable)(struct store *s, int64_t before_ms, uint64_t *out);
    int (*task_list_by_node)(struct store *s, const char *node_key, enum task_status status,
                             int (*cb)(void *ctx, const struct task_row *r), void *ctx);
    int (*task_history)(struct store *s, const char *id,
                        int (*cb)(void *ctx, const struct task_history_row *h), void *ctx);
    int (*log_append)(struct store *s, const char *task_id, const char *const *lines,
                      const size_t *lens, size_t n, uint64_t first_seq, size_t *accepted);
    int (*items_append)(struct store *s, const char *task_id, const char *const *items,
                        const size_t *lens, size_t n, uint64_t first_seq, size_t *accepted);
    int (*log_read)(struct store *s, const char *task_id, uint64_t from_seq,
                    int (*cb)(void *ctx, uint64_t seq, const char *line, size_t len), void *ctx);
    int (*items_read)(struct store *s, const char *task_id, uint64_t from_seq,
                      int (*cb)(void *ctx, uint64_t seq, const char *data, size_t len), void *ctx);
    int (*schedule_create)(struct store *s, const struct schedule_new *n, int64_t now_ms,
                           int64_t *id_out);
    int (*schedule_get)(struct store *s, int64_t id, struct schedule_row *out);
    int (*schedule_list)(struct store *s, int (*cb)(void *ctx, const struct schedule_row *r),
                         void *ctx);
    int (*schedule_set_paused)(struct store *s, int64_t id, bool paused, int64_t now_s);
    int (*schedule_delete)(struct store *s, int64_t id);
    int (*schedule_fire)(struct store *s, int64_t id, int64_t fire_s, const struct task_new *t,
                         size_t n, bool per_node, int64_t now_ms, char (*ids_out)[TASK_ID_LEN + 1]);
    int (*schedule_last_tasks)(struct store *s, int64_t id,
                               int (*cb)(void *ctx, const char *task_id), void *ctx);
    int (*schedule_skip)(struct store *s, int64_t id, int64_t fire_s);
    int (*schedule_fires)(struct store *s, int64_t id,
                          int (*cb)(void *ctx, int64_t fire_s, const char *task_id), void *ctx);
    int (*event_add)(struct store *s, int64_t at_ms, const char *kind, const char *node_key,
                     const char *task_id, const char *data, int64_t *id_out);
    int (*event_page)(struct store *s, int64_t after, int64_t upto, unsigned limit,
                      int (*cb)(void *ctx, const struct event_row *e), void *ctx);
    int (*event_last)(struct store *s, int64_t *out);
    int (*event_count)(struct store *s, int64_t after, int64_t upto, uint64_t *out);
    int (*event_purge)(struct store *s, int64_t before_ms, unsigned budget, size_t *purged,
                       bool *more);
    int (*event_cursor_get)(struct store *s, const char *hook, int64_t *out);
    int (*event_cursor_set)(struct store *s, const char *hook, int64_t delivered);
    int (*spider_add)(struct store *s, const struct spider_row *r, int64_t now_ms,
                      uint32_t *version_out);
    int (*spider_get)(struct store *s, const char *name, uint32_t version, struct spider_row *out);
    int (*spider_list)(struct store *s, const char *name, uint32_t version,
                       int (*cb)(void *ctx, const struct spider_row *r), void *ctx);
    int (*spider_remove)(struct store *s, const char *name, uint32_t version);
    int (*spider_sha_used)(struct store *s, const char *sha256, bool *used);
    int (*spider_task_using)(struct store *s, const char *name, uint32_t version,
                             char id[TASK_ID_LEN + 1], enum task_status *status);
    /* NULL on a backend that is not shared (store.h). */
    int (*spider_archive_put)(struct store *s, const char *sha256, const char *path);
    int (*spider_archive_get)(struct store *s, const char *sha256, const char *path);
    int (*spider_archive_drop)(struct store *s, const char *sha256);

    /* Several masters (store.h): NULL on a backend that is not shared. */
    int (*master_renew)(struct store *s, const char *master_id, int64_t for_ms);
    int (*node_hold)(struct store *s, const char *key, const char *master_id);
    int (*master_reap)(struct store *s, int (*cb)(void *ctx, const char *node_key), void *ctx);
    int (*hooks_hold)(struct store *s);
    int (*news_fd)(struct store *s);
    int (*news)(struct store *s, const struct store_news_handlers *h, bool read);
};

struct store {
    const struct store_ops *ops;
    bool changed; /* store_changed(); kept by store.c */
};

/* SQLite in data_dir (store_sqlite.c). */
int sqlite_store_open(const char *data_dir, struct store **out);

#ifdef HAVE_LIBPQ
/* PostgreSQL at conninfo, a libpq connection string (store_pg.c). */
int pg_store_open(const char *conninfo, struct store **out);
#endif

/* ---- Shared by the backends ---- */

/* An optional text line (a name, a version): NULL and "" stand for "" and are valid. */
bool store_optional_line(const char *v, size_t max);

/* What store_task_create and store_schedule_fire accept as a new task. */
bool store_task_new_valid(const struct task_new *t);

/*
 * A task made from a stored one (store_task_restart, store_task_retry): the spec it copies (strings
 * borrowed from the row, which never change) and its link to the old task. A restart is a task of
 * its own, attempt 1, whose restart_of names the task restarted; a retry is the next attempt of the
 * first one (retry_of names it, whichever attempt failed), pending but not eligible before
 * eligible_ms (0: at once).
 */
struct task_link {
    const char *restart_of, *retry_of; /* NULL = "" */
    int attempt;
    int64_t eligible_ms;
};
struct task_copy {
    struct task_new spec;
    struct task_link link;
};
struct task_copy store_task_restart_of(const struct task_row *r);
struct task_copy store_task_retry_of(const struct task_row *r, int64_t eligible_ms);

/* An event's kind: a non-empty text line of at most STORE_EVENT_KIND_MAX bytes. */
bool store_event_kind_valid(const char *kind);

/*
 * Task ids, ObjectID-like (store.h, store_task_create): 4 bytes of the time in seconds, 5 random
 * bytes drawn once per open (so that two stores, or two masters on one database, draw apart), a
 * 3-byte counter that starts at a random point.
 */
struct store_ids {
    uint8_t random[5];
    uint32_t counter;
};

/* Draws the random part and the counter's start. 0 or -errno (getrandom, logged). */
int store_ids_init(struct store_ids *ids);

/* The next id for now_ms into out. */
void store_ids_next(struct store_ids *ids, int64_t now_ms, char out[TASK_ID_LEN + 1]);

#endif
