#include "master/events.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "master/clock.h"
#include "master/group.h"
#include "master/metrics.h"
#include "runtime/log.h"

struct events {
    struct ev_loop *loop;
    struct store *store;
    struct group *group;
    struct metrics *metrics; /* NULL: none kept */
    int64_t committed;       /* the last committed event */
    int64_t pending;         /* the last event of the open group; == committed when none */
    struct events_watcher *watchers;
};

int events_create(struct ev_loop *loop, struct store *store, struct group *group,
                  struct events **out)
{
    struct events *ev = calloc(1, sizeof(*ev));
    if (!ev)
        return -ENOMEM;
    ev->loop = loop;
    ev->store = store;
    ev->group = group;
    int rc = store_event_last(store, &ev->committed);
    if (rc < 0) {
        free(ev);
        return rc;
    }
    ev->pending = ev->committed;
    *out = ev;
    return 0;
}

void events_destroy(struct events *ev)
{
    free(ev);
}

void events_set_metrics(struct events *ev, struct metrics *m)
{
    ev->metrics = m;
}

void events_join(struct events *ev)
{
    if (ev && group_join(ev->group) < 0)
        log_warn("cannot open a group of store changes; a change and its event commit apart");
}

int64_t events_last(const struct events *ev)
{
    return ev ? ev->committed : 0;
}

static void tell_watchers(struct events *ev)
{
    /* A watcher may unwatch itself from its callback. */
    struct events_watcher *w = ev->watchers;
    while (w) {
        struct events_watcher *next = w->next;
        w->on_new(w);
        w = next;
    }
}

void events_refresh(struct events *ev)
{
    int64_t last;
    /* Our own open group's events hold the store's counter: none of another master's can have
     * been committed meanwhile. */
    if (!ev || !ev->watchers || ev->pending != ev->committed ||
        store_event_last(ev->store, &last) < 0 || last <= ev->committed)
        return;
    ev->committed = ev->pending = last;
    tell_watchers(ev);
}

void events_committed(struct events *ev, bool ok)
{
    if (!ev)
        return;
    if (!ok || ev->pending == ev->committed) {
        ev->pending = ev->committed;
        return;
    }
    ev->committed = ev->pending;
    tell_watchers(ev);
}

int64_t events_emit(struct events *ev, enum event_kind kind, const char *node_key,
                    const char *task_id, const char *data)
{
    if (!ev)
        return 0;
    int64_t id = 0;
    int rc = store_event_add(ev->store, clock_now_ms(ev->loop), event_kind_name(kind), node_key,
                             task_id, data, &id);
    if (rc < 0) {
        log_error("cannot record the event %s (%d)", event_kind_name(kind), rc);
        return rc;
    }
    if (ev->metrics)
        ev->metrics->events[kind]++;
    ev->pending = id;
    /* Outside a group the event is committed already. */
    if (!group_is_open(ev->group))
        events_committed(ev, true);
    return id;
}

/*
 * An event's data: a JSON object written straight into a buffer member by member. A task records
 * two or three events, and building a jansson tree and dumping it cost more than the insert
 * itself. Strings come from the store and the wire, which hold valid UTF-8 (rpc/validate.c), so
 * only '"', '\\' and control characters need escaping here. The bound is the store's: room for
 * a task's name and error however they are escaped, so `over` means a limit changed, not input.
 */
struct data {
    size_t len;
    bool over;
    char text[STORE_EVENT_DATA_MAX + 1];
};

/* Not zeroed whole: only what is written is ever read. */
static void data_start(struct data *d)
{
    d->len = 0;
    d->over = false;
}

static void put(struct data *d, const char *s, size_t n)
{
    if (d->over || n > STORE_EVENT_DATA_MAX - d->len) {
        d->over = true;
        return;
    }
    memcpy(d->text + d->len, s, n);
    d->len += n;
}

static void put_key(struct data *d, const char *key)
{
    if (d->len == 0)
        put(d, "{\"", 2);
    else
        put(d, ",\"", 2);
    put(d, key, strlen(key));
    put(d, "\":", 2);
}

/* key: value as a JSON string; NULL counts as "". */
static void put_text(struct data *d, const char *key, const char *value)
{
    put_key(d, key);
    put(d, "\"", 1);
    const char *run = value ? value : "";
    for (const char *c = run;; c++) {
        unsigned char b = (unsigned char)*c;
        if (b >= 0x20 && b != '"' && b != '\\')
            continue;
        put(d, run, (size_t)(c - run));
        if (b == 0)
            break;
        char esc[8];
        int n = b == '"' || b == '\\' ? snprintf(esc, sizeof(esc), "\\%c", b)
                                      : snprintf(esc, sizeof(esc), "\\u%04x", b);
        put(d, esc, (size_t)n);
        run = c + 1;
    }
    put(d, "\"", 1);
}

static void put_int(struct data *d, const char *key, int64_t value)
{
    put_key(d, key);
    char num[24];
    put(d, num, (size_t)snprintf(num, sizeof(num), "%" PRId64, value));
}

/* Closes d's object and records it as kind's data. */
static void emit_data(struct events *ev, enum event_kind kind, const char *node_key,
                      const char *task_id, struct data *d)
{
    put(d, d->len ? "}" : "{}", d->len ? 1 : 2);
    if (d->over) {
        log_error("cannot record the event %s: its data is over %d bytes", event_kind_name(kind),
                  STORE_EVENT_DATA_MAX);
        return;
    }
    d->text[d->len] = '\0';
    events_emit(ev, kind, node_key, task_id, d->text);
}

void events_node(struct events *ev, enum event_kind kind, const char *key, const char *name,
                 const char *why)
{
    if (!ev)
        return;
    struct data d;
    data_start(&d);
    put_text(&d, "name", name);
    if (why)
        put_text(&d, "reason", why);
    emit_data(ev, kind, key, NULL, &d);
}

void events_task(struct events *ev, enum event_kind kind, const char *task_id,
                 const struct task_row *r, const char *node_key)
{
    if (!ev)
        return;
    if (!node_key && r)
        node_key = *r->assigned_node ? r->assigned_node : r->node_key;
    struct data d;
    data_start(&d);
    if (r) {
        put_text(&d, "name", r->name);
        put_text(&d, "status", task_status_name(r->status));
        if (r->exit_code != STORE_NO_EXIT_CODE)
            put_int(&d, "exit_code", r->exit_code);
        if (*r->error)
            put_text(&d, "error", r->error);
        put_int(&d, "log_lines", (int64_t)r->log_lines);
        put_int(&d, "data_items", (int64_t)r->data_items);
        put_int(&d, "created_ms", r->created_ms);
        if (*r->retry_of) {
            put_text(&d, "retry_of", r->retry_of);
            put_int(&d, "attempt", r->attempt);
        }
        if (r->started_ms)
            put_int(&d, "started_ms", r->started_ms);
        if (r->ended_ms)
            put_int(&d, "ended_ms", r->ended_ms);
    }
    emit_data(ev, kind, node_key, task_id, &d);
}

void events_watch(struct events *ev, struct events_watcher *w)
{
    w->next = ev->watchers;
    ev->watchers = w;
}

void events_unwatch(struct events *ev, struct events_watcher *w)
{
    for (struct events_watcher **p = &ev->watchers; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            return;
        }
    }
}
