/*
 * The store's front: store_open picks the backend by the store's location, and every other
 * function of store.h forwards to the backend's table (store/backend.h). Also what the backends
 * share: the rows' release functions, the checks of new rows, task ids.
 */
#include "store/store.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/cron.h"
#include "core/rules.h"
#include "core/spider.h"
#include "core/tz.h"
#include "runtime/log.h"
#include "store/backend.h"

int store_open(const char *location, struct store **out)
{
    if (!location || !*location || !out)
        return -EINVAL;
    if (!store_location_is_pg(location))
        return sqlite_store_open(location, out);
#ifdef HAVE_LIBPQ
    return pg_store_open(location, out);
#else
    log_error("store: this build has no PostgreSQL client (libpq was not built in: meson -Dlibpq)");
    return -ENOTSUP;
#endif
}

void store_task_row_free(struct task_row *r)
{
    if (!r)
        return;
    free(r->cmd);
    free(r->param);
    free(r->env_json);
    free(r->error);
    free(r->labels);
    memset(r, 0, sizeof(*r));
}

void store_schedule_row_free(struct schedule_row *r)
{
    if (!r)
        return;
    free(r->expr);
    free(r->cmd);
    free(r->env_json);
    free(r->labels);
    memset(r, 0, sizeof(*r));
}

bool store_optional_line(const char *v, size_t max)
{
    return !v || text_line_valid(v, max);
}

bool store_task_new_valid(const struct task_new *t)
{
    return t && t->cmd && *t->cmd && store_optional_line(t->name, LIMIT_NAME_MAX) &&
           (!t->node_key || !*t->node_key || node_key_valid(t->node_key)) && t->timeout_ms >= 0 &&
           retries_valid(t->retries) && retry_delay_valid(t->retry_delay_ms) &&
           (!t->labels || labels_text_valid(t->labels)) &&
           (!t->spider_sha256 || !*t->spider_sha256 || spider_sha256_valid(t->spider_sha256));
}

static struct task_new spec_of(const struct task_row *r)
{
    return (struct task_new){
        .name = r->name,
        .cmd = r->cmd,
        .param = r->param,
        .env_json = r->env_json,
        .priority = r->priority,
        .timeout_ms = r->timeout_ms,
        .node_key = r->node_key,
        .labels = r->labels,
        .retries = r->retries,
        .retry_delay_ms = r->retry_delay_ms,
        .spider = r->spider,
        .spider_sha256 = r->spider_sha256,
    };
}

struct task_copy store_task_restart_of(const struct task_row *r)
{
    return (struct task_copy){
        .spec = spec_of(r),
        .link = {.restart_of = r->id, .attempt = 1},
    };
}

struct task_copy store_task_retry_of(const struct task_row *r, int64_t eligible_ms)
{
    return (struct task_copy){
        .spec = spec_of(r),
        .link =
            {
                .retry_of = r->retry_of[0] ? r->retry_of : r->id,
                .attempt = r->attempt + 1,
                .eligible_ms = eligible_ms,
            },
    };
}

bool store_event_kind_valid(const char *kind)
{
    return kind && text_line_valid(kind, STORE_EVENT_KIND_MAX) && *kind;
}

int store_ids_init(struct store_ids *ids)
{
    uint8_t rnd[8];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        int rc = -errno;
        log_error("store: getrandom failed: %s", strerror(-rc));
        return rc;
    }
    memcpy(ids->random, rnd, sizeof(ids->random));
    ids->counter = ((uint32_t)rnd[5] << 16) | ((uint32_t)rnd[6] << 8) | rnd[7];
    return 0;
}

void store_ids_next(struct store_ids *ids, int64_t now_ms, char out[TASK_ID_LEN + 1])
{
    uint32_t secs = (uint32_t)(now_ms / 1000);
    uint32_t counter = ids->counter++ & 0xffffff;
    uint8_t b[12] = {(uint8_t)(secs >> 24), (uint8_t)(secs >> 16), (uint8_t)(secs >> 8),
                     (uint8_t)secs};
    memcpy(b + 4, ids->random, sizeof(ids->random));
    b[9] = (uint8_t)(counter >> 16);
    b[10] = (uint8_t)(counter >> 8);
    b[11] = (uint8_t)counter;
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 12; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 0xf];
    }
    out[TASK_ID_LEN] = '\0';
}

/* What store_schedule_create accepts. */
static bool schedule_new_valid(const struct schedule_new *n)
{
    char spider[LIMIT_SPIDER_NAME_MAX + 1];
    uint32_t version;
    return n && n->cmd && *n->cmd && n->expr && *n->expr && strlen(n->expr) <= CRON_EXPR_MAX &&
           store_optional_line(n->name, LIMIT_NAME_MAX) &&
           (!n->node_key || !*n->node_key || node_key_valid(n->node_key)) && n->timeout_ms >= 0 &&
           (!n->labels || labels_text_valid(n->labels)) && retries_valid(n->retries) &&
           retry_delay_valid(n->retry_delay_ms) &&
           (!n->spider || !*n->spider || spider_ref_parse(n->spider, spider, &version)) &&
           (!n->tz_name || !*n->tz_name || tz_name_valid(n->tz_name)) &&
           !(n->all_nodes && n->node_key && *n->node_key);
}

/* A task status by its name, as store_task_list and store_task_page take it. */
static bool status_name_valid(const char *status)
{
    enum task_status parsed;
    return task_status_parse(status, &parsed) == 0;
}

/* A master's name in the leases (store_master_renew): a non-empty text line of at most
 * LIMIT_NODE_KEY_MAX bytes. */
static bool master_id_valid(const char *id)
{
    return id && *id && text_line_valid(id, LIMIT_NODE_KEY_MAX);
}

/* What store_schedule_fire accepts: n new tasks, each with its node when a task is per node. */
static bool fire_tasks_valid(const struct task_new *t, size_t n, bool per_node)
{
    if (n == 0 || !t)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!store_task_new_valid(&t[i]) || (per_node && (!t[i].node_key || !*t[i].node_key)))
            return false;
    return true;
}

/* ---- Forwarding to the backend ----
 *
 * The arguments are checked here, once for both backends, against the contract of store.h (valid
 * ids, keys and names, outputs and callbacks not NULL): a backend sees only arguments that pass,
 * and checks only the limits of its own engine. */

void store_close(struct store *s)
{
    if (s)
        s->ops->close(s);
}

int store_begin(struct store *s)
{
    int rc = s->ops->begin(s);
    if (rc == 0)
        s->changed = false;
    return rc;
}

int store_commit(struct store *s)
{
    s->changed = false;
    return s->ops->commit(s);
}

int store_rollback(struct store *s)
{
    s->changed = false;
    return s->ops->rollback(s);
}

bool store_changed(const struct store *s)
{
    return s->changed;
}

/* The backend's operations, for one that changes the store: the open transaction is marked
 * changed before it runs, whether it then changes a row or not. */
static const struct store_ops *changing(struct store *s)
{
    s->changed = true;
    return s->ops;
}

int store_node_upsert(struct store *s, const char *key, const char *name, int max_runners,
                      const char *version, const char *labels, int64_t now_ms)
{
    if (!node_key_valid(key) || !store_optional_line(name, LIMIT_NAME_MAX) ||
        !store_optional_line(version, LIMIT_VERSION_MAX) || max_runners < 0 ||
        (labels && !labels_text_valid(labels)))
        return -EINVAL;
    return changing(s)->node_upsert(s, key, name, max_runners, version, labels, now_ms);
}

int store_node_set_state(struct store *s, const char *key, const char *state)
{
    if (!node_key_valid(key) || !state ||
        (strcmp(state, STORE_NODE_ENABLED) != 0 && strcmp(state, STORE_NODE_DISABLED) != 0 &&
         strcmp(state, STORE_NODE_DRAINING) != 0))
        return -EINVAL;
    return changing(s)->node_set_state(s, key, state);
}

int store_node_delete(struct store *s, const char *key)
{
    if (!node_key_valid(key))
        return -EINVAL;
    return changing(s)->node_delete(s, key);
}

int store_node_set_status(struct store *s, const char *key, const char *status, int64_t now_ms)
{
    if (!node_key_valid(key) || !status ||
        (strcmp(status, STORE_NODE_ONLINE) != 0 && strcmp(status, STORE_NODE_OFFLINE) != 0))
        return -EINVAL;
    return changing(s)->node_set_status(s, key, status, now_ms);
}

int store_node_touch(struct store *s, const char *key, int64_t now_ms)
{
    if (!node_key_valid(key))
        return -EINVAL;
    return changing(s)->node_touch(s, key, now_ms);
}

int store_node_get(struct store *s, const char *key, struct node_row *out)
{
    if (!node_key_valid(key) || !out)
        return -EINVAL;
    return s->ops->node_get(s, key, out);
}

int store_node_list(struct store *s, int (*cb)(void *ctx, const struct node_row *r), void *ctx)
{
    if (!cb)
        return -EINVAL;
    return s->ops->node_list(s, cb, ctx);
}

int store_node_page(struct store *s, const char *after_key, unsigned limit,
                    int (*cb)(void *ctx, const struct node_row *r), void *ctx)
{
    if (!cb)
        return -EINVAL;
    return s->ops->node_page(s, after_key, limit, cb, ctx);
}

int store_node_named(struct store *s, const char *given,
                     int (*cb)(void *ctx, const struct node_row *r), void *ctx)
{
    /* A key or a name: a text line of at most the longer of the two. */
    size_t max = LIMIT_NAME_MAX > LIMIT_NODE_KEY_MAX ? LIMIT_NAME_MAX : LIMIT_NODE_KEY_MAX;
    if (!given || !*given || !text_line_valid(given, max) || !cb)
        return -EINVAL;
    return s->ops->node_named(s, given, cb, ctx);
}

int store_task_create(struct store *s, const struct task_new *t, int64_t now_ms,
                      char id_out[TASK_ID_LEN + 1])
{
    if (!store_task_new_valid(t) || !id_out)
        return -EINVAL;
    return changing(s)->task_create(s, t, now_ms, id_out);
}

int store_task_restart(struct store *s, const char *id, int64_t now_ms,
                       char id_out[TASK_ID_LEN + 1])
{
    if (!task_id_valid(id) || !id_out)
        return -EINVAL;
    return changing(s)->task_restart(s, id, now_ms, id_out);
}

int store_task_retry(struct store *s, const char *id, enum task_status to, int exit_code,
                     const char *error, int64_t eligible_ms, int64_t now_ms,
                     char id_out[TASK_ID_LEN + 1])
{
    if (!task_id_valid(id) || (to != TASK_ERROR && to != TASK_ABNORMAL) || !id_out)
        return -EINVAL;
    return changing(s)->task_retry(s, id, to, exit_code, error, eligible_ms, now_ms, id_out);
}

int store_task_next_eligible(struct store *s, int64_t after_ms, int64_t *at_ms)
{
    if (!at_ms)
        return -EINVAL;
    return s->ops->task_next_eligible(s, after_ms, at_ms);
}

int store_task_eligible_nodes(struct store *s, int64_t after_ms, int64_t until_ms,
                              int (*cb)(void *ctx, const char *node_key, const char *labels),
                              void *ctx)
{
    if (!cb)
        return -EINVAL;
    return s->ops->task_eligible_nodes(s, after_ms, until_ms, cb, ctx);
}

int store_task_fetch(struct store *s, const char *node_key, const char *node_labels, int64_t now_ms,
                     struct task_row *out)
{
    if (!node_key_valid(node_key) || !out)
        return -EINVAL;
    return changing(s)->task_fetch(s, node_key, node_labels, now_ms, out);
}

int store_task_assign(struct store *s, const char *id, const char *node_key, int64_t now_ms,
                      bool pushed)
{
    if (!task_id_valid(id) || !node_key_valid(node_key))
        return -EINVAL;
    return changing(s)->task_assign(s, id, node_key, now_ms, pushed);
}

int store_task_get(struct store *s, const char *id, struct task_row *out)
{
    if (!task_id_valid(id) || !out)
        return -EINVAL;
    return s->ops->task_get(s, id, out);
}

int store_task_set_status(struct store *s, const char *id, enum task_status to, int pid,
                          int exit_code, const char *error, int64_t now_ms)
{
    if (!task_id_valid(id) || (unsigned)to >= TASK_STATUS_COUNT)
        return -EINVAL;
    return changing(s)->task_set_status(s, id, to, pid, exit_code, error, now_ms);
}

void store_task_row_after_move(const struct task_row *r, enum task_status to, int pid,
                               int exit_code, const char *error, int64_t now_ms,
                               struct task_row *after)
{
    *after = *r;
    bool back = to == TASK_PENDING;
    after->status = to;
    after->updated_ms = now_ms;
    if (back) {
        after->pid = 0;
        after->assigned_node[0] = '\0';
        after->pushed = false;
        after->epoch++;
    } else if (pid > 0) {
        after->pid = pid;
    }
    if (exit_code != STORE_NO_EXIT_CODE)
        after->exit_code = exit_code;
    if (error)
        after->error = (char *)error; /* shallow, as the comment in store.h says: never freed */
    if (to == TASK_RUNNING && after->started_ms == 0)
        after->started_ms = now_ms;
    if (task_status_terminal(to))
        after->ended_ms = now_ms;
}

int store_task_epoch(struct store *s, const char *id, uint64_t *out)
{
    if (!task_id_valid(id) || !out)
        return -EINVAL;
    return s->ops->task_epoch(s, id, out);
}

int store_task_request_cancel(struct store *s, const char *id, bool force, int64_t now_ms,
                              enum task_status *status_out)
{
    if (!task_id_valid(id))
        return -EINVAL;
    return changing(s)->task_request_cancel(s, id, force, now_ms, status_out);
}

int store_task_list(struct store *s, const char *status, const char *node_key, unsigned limit,
                    int (*cb)(void *ctx, const struct task_row *r), void *ctx)
{
    if ((status && !status_name_valid(status)) || !cb)
        return -EINVAL;
    return s->ops->task_list(s, status, node_key, limit, cb, ctx);
}

int store_task_count_by_status(struct store *s, const char *node_key,
                               uint64_t counts[TASK_STATUS_COUNT])
{
    if ((node_key && !node_key_valid(node_key)) || !counts)
        return -EINVAL;
    return s->ops->task_count_by_status(s, node_key, counts);
}

int store_task_page(struct store *s, const char *status, const char *node_key,
                    const struct task_pos *after, unsigned limit,
                    int (*cb)(void *ctx, const struct task_row *r, const struct task_pos *pos),
                    void *ctx)
{
    if ((status && !status_name_valid(status)) || !cb)
        return -EINVAL;
    return s->ops->task_page(s, status, node_key, after, limit, cb, ctx);
}

int store_task_pos(struct store *s, const char *id, struct task_pos *out)
{
    if (!task_id_valid(id) || !out)
        return -EINVAL;
    return s->ops->task_pos(s, id, out);
}

int store_task_find_prefix(struct store *s, const char *prefix, char (*ids)[TASK_ID_LEN + 1],
                           size_t max)
{
    if (!task_id_prefix_valid(prefix) || (max && !ids) || max > INT_MAX - 1)
        return -EINVAL;
    return s->ops->task_find_prefix(s, prefix, ids, max);
}

int store_task_purge(struct store *s, int64_t before_ms, unsigned budget, size_t *purged,
                     bool *more)
{
    size_t none_purged;
    bool none_more;
    if (!purged)
        purged = &none_purged;
    if (!more)
        more = &none_more;
    *purged = 0;
    *more = false;
    if (budget == 0)
        return -EINVAL;
    return changing(s)->task_purge(s, before_ms, budget, purged, more);
}

int store_purge_logs(struct store *s, size_t max, size_t *left)
{
    return changing(s)->purge_logs(s, max, left);
}

int store_task_count_purgeable(struct store *s, int64_t before_ms, uint64_t *out)
{
    if (!out)
        return -EINVAL;
    return s->ops->task_count_purgeable(s, before_ms, out);
}

int store_task_list_by_node(struct store *s, const char *node_key, enum task_status status,
                            int (*cb)(void *ctx, const struct task_row *r), void *ctx)
{
    if (!node_key_valid(node_key) || (unsigned)status >= TASK_STATUS_COUNT || !cb)
        return -EINVAL;
    return s->ops->task_list_by_node(s, node_key, status, cb, ctx);
}

int store_task_history(struct store *s, const char *id,
                       int (*cb)(void *ctx, const struct task_history_row *h), void *ctx)
{
    if (!task_id_valid(id) || !cb)
        return -EINVAL;
    return s->ops->task_history(s, id, cb, ctx);
}

int store_log_append(struct store *s, const char *task_id, const char *const *lines,
                     const size_t *lens, size_t n, uint64_t first_seq, size_t *accepted)
{
    size_t none;
    if (!accepted)
        accepted = &none;
    *accepted = 0;
    if (!task_id_valid(task_id) || (n && (!lines || !lens)))
        return -EINVAL;
    return changing(s)->log_append(s, task_id, lines, lens, n, first_seq, accepted);
}

int store_items_append(struct store *s, const char *task_id, const char *const *items,
                       const size_t *lens, size_t n, uint64_t first_seq, size_t *accepted)
{
    size_t none;
    if (!accepted)
        accepted = &none;
    *accepted = 0;
    if (!task_id_valid(task_id) || (n && (!items || !lens)))
        return -EINVAL;
    return changing(s)->items_append(s, task_id, items, lens, n, first_seq, accepted);
}

int store_log_read(struct store *s, const char *task_id, uint64_t from_seq,
                   int (*cb)(void *ctx, uint64_t seq, const char *line, size_t len), void *ctx)
{
    if (!task_id_valid(task_id) || !cb)
        return -EINVAL;
    return s->ops->log_read(s, task_id, from_seq, cb, ctx);
}

int store_items_read(struct store *s, const char *task_id, uint64_t from_seq,
                     int (*cb)(void *ctx, uint64_t seq, const char *data, size_t len), void *ctx)
{
    if (!task_id_valid(task_id) || !cb)
        return -EINVAL;
    return s->ops->items_read(s, task_id, from_seq, cb, ctx);
}

int store_schedule_create(struct store *s, const struct schedule_new *n, int64_t now_ms,
                          int64_t *id_out)
{
    if (!schedule_new_valid(n) || !id_out)
        return -EINVAL;
    return changing(s)->schedule_create(s, n, now_ms, id_out);
}

int store_schedule_get(struct store *s, int64_t id, struct schedule_row *out)
{
    if (!out)
        return -EINVAL;
    return s->ops->schedule_get(s, id, out);
}

int store_schedule_list(struct store *s, int (*cb)(void *ctx, const struct schedule_row *r),
                        void *ctx)
{
    if (!cb)
        return -EINVAL;
    return s->ops->schedule_list(s, cb, ctx);
}

int store_schedule_set_paused(struct store *s, int64_t id, bool paused, int64_t now_s)
{
    return changing(s)->schedule_set_paused(s, id, paused, now_s);
}

int store_schedule_delete(struct store *s, int64_t id)
{
    return changing(s)->schedule_delete(s, id);
}

int store_schedule_fire(struct store *s, int64_t id, int64_t fire_s, const struct task_new *t,
                        size_t n, bool per_node, int64_t now_ms, char (*ids_out)[TASK_ID_LEN + 1])
{
    if (!fire_tasks_valid(t, n, per_node) || !ids_out)
        return -EINVAL;
    return changing(s)->schedule_fire(s, id, fire_s, t, n, per_node, now_ms, ids_out);
}

int store_schedule_last_tasks(struct store *s, int64_t id,
                              int (*cb)(void *ctx, const char *task_id), void *ctx)
{
    if (!cb)
        return -EINVAL;
    return s->ops->schedule_last_tasks(s, id, cb, ctx);
}

int store_schedule_skip(struct store *s, int64_t id, int64_t fire_s)
{
    return changing(s)->schedule_skip(s, id, fire_s);
}

int store_schedule_fires(struct store *s, int64_t id,
                         int (*cb)(void *ctx, int64_t fire_s, const char *task_id), void *ctx)
{
    if (!cb)
        return -EINVAL;
    return s->ops->schedule_fires(s, id, cb, ctx);
}

int store_event_add(struct store *s, int64_t at_ms, const char *kind, const char *node_key,
                    const char *task_id, const char *data, int64_t *id_out)
{
    if (!store_event_kind_valid(kind) || (node_key && *node_key && !node_key_valid(node_key)) ||
        (task_id && *task_id && !task_id_valid(task_id)) ||
        (data && strlen(data) > STORE_EVENT_DATA_MAX))
        return -EINVAL;
    return changing(s)->event_add(s, at_ms, kind, node_key, task_id, data, id_out);
}

int store_event_page(struct store *s, int64_t after, int64_t upto, unsigned limit,
                     int (*cb)(void *ctx, const struct event_row *e), void *ctx)
{
    if (!cb)
        return -EINVAL;
    return s->ops->event_page(s, after, upto, limit, cb, ctx);
}

int store_event_last(struct store *s, int64_t *out)
{
    if (!out)
        return -EINVAL;
    return s->ops->event_last(s, out);
}

int store_event_count(struct store *s, int64_t after, int64_t upto, uint64_t *out)
{
    if (!out)
        return -EINVAL;
    return s->ops->event_count(s, after, upto, out);
}

int store_event_purge(struct store *s, int64_t before_ms, unsigned budget, size_t *purged,
                      bool *more)
{
    if (budget == 0 || !purged || !more)
        return -EINVAL;
    return changing(s)->event_purge(s, before_ms, budget, purged, more);
}

int store_event_cursor_get(struct store *s, const char *hook, int64_t *out)
{
    if (!hook || !out)
        return -EINVAL;
    return s->ops->event_cursor_get(s, hook, out);
}

int store_event_cursor_set(struct store *s, const char *hook, int64_t delivered)
{
    if (!hook)
        return -EINVAL;
    return changing(s)->event_cursor_set(s, hook, delivered);
}

int store_spider_add(struct store *s, const struct spider_row *r, int64_t now_ms,
                     uint32_t *version_out)
{
    if (!r || !spider_name_valid(r->name) || !spider_sha256_valid(r->sha256) || !version_out)
        return -EINVAL;
    return changing(s)->spider_add(s, r, now_ms, version_out);
}

int store_spider_get(struct store *s, const char *name, uint32_t version, struct spider_row *out)
{
    if (!spider_name_valid(name) || !out)
        return -EINVAL;
    return s->ops->spider_get(s, name, version, out);
}

int store_spider_list(struct store *s, const char *name, uint32_t version,
                      int (*cb)(void *ctx, const struct spider_row *r), void *ctx)
{
    if (name && !spider_name_valid(name))
        return -EINVAL;
    return s->ops->spider_list(s, name, version, cb, ctx);
}

int store_spider_remove(struct store *s, const char *name, uint32_t version)
{
    if (!spider_name_valid(name))
        return -EINVAL;
    return changing(s)->spider_remove(s, name, version);
}

int store_spider_sha_used(struct store *s, const char *sha256, bool *used)
{
    if (!spider_sha256_valid(sha256) || !used)
        return -EINVAL;
    return s->ops->spider_sha_used(s, sha256, used);
}

int store_spider_task_using(struct store *s, const char *name, uint32_t version,
                            char id[TASK_ID_LEN + 1], enum task_status *status)
{
    if (!spider_name_valid(name) || version == 0 || !id || !status)
        return -EINVAL;
    return s->ops->spider_task_using(s, name, version, id, status);
}

int store_spider_archive_put(struct store *s, const char *sha256, const char *path)
{
    if (!spider_sha256_valid(sha256) || !path || !*path)
        return -EINVAL;
    return s->ops->spider_archive_put ? changing(s)->spider_archive_put(s, sha256, path) : -ENOTSUP;
}

int store_spider_archive_get(struct store *s, const char *sha256, const char *path)
{
    if (!spider_sha256_valid(sha256) || !path || !*path)
        return -EINVAL;
    return s->ops->spider_archive_get ? s->ops->spider_archive_get(s, sha256, path) : -ENOTSUP;
}

int store_spider_archive_drop(struct store *s, const char *sha256)
{
    if (!spider_sha256_valid(sha256))
        return -EINVAL;
    return s->ops->spider_archive_drop ? changing(s)->spider_archive_drop(s, sha256) : -ENOTSUP;
}

/* ---- Several masters: optional operations ---- */

bool store_shared(struct store *s)
{
    return s->ops->master_renew != NULL;
}

int store_master_renew(struct store *s, const char *master_id, int64_t for_ms)
{
    if (!s->ops->master_renew)
        return -ENOTSUP;
    if (!master_id_valid(master_id))
        return -EINVAL;
    return changing(s)->master_renew(s, master_id, for_ms);
}

int store_node_hold(struct store *s, const char *key, const char *master_id)
{
    if (!s->ops->node_hold)
        return -ENOTSUP;
    if (!key || !node_key_valid(key) || !master_id_valid(master_id))
        return -EINVAL;
    return changing(s)->node_hold(s, key, master_id);
}

int store_master_reap(struct store *s, int (*cb)(void *ctx, const char *node_key), void *ctx)
{
    return s->ops->master_reap ? changing(s)->master_reap(s, cb, ctx) : -ENOTSUP;
}

int store_hooks_hold(struct store *s)
{
    return s->ops->hooks_hold ? changing(s)->hooks_hold(s) : -ENOTSUP;
}

int store_news_fd(struct store *s)
{
    return s->ops->news_fd ? s->ops->news_fd(s) : -ENOTSUP;
}

int store_news(struct store *s, const struct store_news_handlers *h, bool read)
{
    return s->ops->news ? s->ops->news(s, h, read) : -ENOTSUP;
}
