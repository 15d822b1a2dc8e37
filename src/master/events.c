#include "master/events.h"

#include <errno.h>
#include <stdlib.h>

#include <jansson.h>

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

/* Emits kind with the JSON object o as its data; o is released. */
static void emit_object(struct events *ev, enum event_kind kind, const char *node_key,
                        const char *task_id, json_t *o)
{
    char *data = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!data) {
        log_error("cannot record the event %s: out of memory", event_kind_name(kind));
        return;
    }
    events_emit(ev, kind, node_key, task_id, data);
    free(data);
}

/* Strings from the store and the wire are valid UTF-8 (rpc/validate.c); NULL counts as "". */
static void set_text(json_t *o, const char *key, const char *value)
{
    json_object_set_new(o, key, json_string(value ? value : ""));
}

void events_node(struct events *ev, enum event_kind kind, const char *key, const char *name,
                 const char *why)
{
    if (!ev)
        return;
    json_t *o = json_object();
    if (o) {
        set_text(o, "name", name);
        if (why)
            set_text(o, "reason", why);
    }
    emit_object(ev, kind, key, NULL, o);
}

void events_task(struct events *ev, enum event_kind kind, const char *task_id,
                 const struct task_row *r, const char *node_key)
{
    if (!ev)
        return;
    if (!node_key && r)
        node_key = *r->assigned_node ? r->assigned_node : r->node_key;
    json_t *o = json_object();
    if (o && r) {
        set_text(o, "name", r->name);
        set_text(o, "status", task_status_name(r->status));
        if (r->exit_code != STORE_NO_EXIT_CODE)
            json_object_set_new(o, "exit_code", json_integer(r->exit_code));
        if (*r->error)
            set_text(o, "error", r->error);
        json_object_set_new(o, "log_lines", json_integer((json_int_t)r->log_lines));
        json_object_set_new(o, "data_items", json_integer((json_int_t)r->data_items));
        json_object_set_new(o, "created_ms", json_integer((json_int_t)r->created_ms));
        if (*r->retry_of) {
            set_text(o, "retry_of", r->retry_of);
            json_object_set_new(o, "attempt", json_integer(r->attempt));
        }
        if (r->started_ms)
            json_object_set_new(o, "started_ms", json_integer((json_int_t)r->started_ms));
        if (r->ended_ms)
            json_object_set_new(o, "ended_ms", json_integer((json_int_t)r->ended_ms));
    }
    emit_object(ev, kind, node_key, task_id, o);
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
