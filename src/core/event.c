#include "core/event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "runtime/jsontext.h"

static const char *const kind_names[EVENT_KIND_COUNT] = {
    [EVENT_NODE_ONLINE] = "node.online",
    [EVENT_NODE_OFFLINE] = "node.offline",
    [EVENT_NODE_DISABLED] = "node.disabled",
    [EVENT_NODE_REMOVED] = "node.removed",
    [EVENT_TASK_STARTED] = "task.started",
    [EVENT_TASK_FINISHED] = "task.finished",
    [EVENT_TASK_FINISHED_EMPTY] = "task.finished_empty",
    [EVENT_TASK_ERROR] = "task.error",
    [EVENT_TASK_ABNORMAL] = "task.abnormal",
    [EVENT_TASK_CANCELLED] = "task.cancelled",
    [EVENT_TASK_RETRIED] = "task.retried",
    [EVENT_TASK_NOTIFICATION] = "task.notification",
    [EVENT_HOOK_OVERFLOW] = "hook.overflow",
};

const char *event_kind_name(enum event_kind k)
{
    return (unsigned)k < EVENT_KIND_COUNT ? kind_names[k] : NULL;
}

bool event_of_task_status(enum task_status to, uint64_t data_items, enum event_kind *out)
{
    switch (to) {
    case TASK_RUNNING:
        *out = EVENT_TASK_STARTED;
        return true;
    case TASK_FINISHED:
        *out = data_items ? EVENT_TASK_FINISHED : EVENT_TASK_FINISHED_EMPTY;
        return true;
    case TASK_ERROR:
        *out = EVENT_TASK_ERROR;
        return true;
    case TASK_ABNORMAL:
        *out = EVENT_TASK_ABNORMAL;
        return true;
    case TASK_CANCELLED:
        *out = EVENT_TASK_CANCELLED;
        return true;
    default:
        return false;
    }
}

char *event_json(int64_t id, int64_t at_ms, const char *kind, const char *node_key,
                 const char *task_id, const char *data)
{
    char when[64] = "";
    time_t secs = (time_t)(at_ms / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm))
        snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(at_ms % 1000 + 1000) % 1000);
    json_t *d = json_loads(data ? data : "{}", JSON_DECODE_ANY, NULL);
    if (!json_is_object(d)) {
        json_decref(d);
        d = jsontext_string(data);
    }
    json_t *o = json_object();
    if (o) {
        json_object_set_new(o, "id", json_integer((json_int_t)id));
        json_object_set_new(o, "time", json_string(when));
        json_object_set_new(o, "time_ms", json_integer((json_int_t)at_ms));
        json_object_set_new(o, "kind", jsontext_string(kind));
        json_object_set_new(o, "node_key", jsontext_string(node_key));
        json_object_set_new(o, "task_id", jsontext_string(task_id));
        json_object_set_new(o, "data", d);
        d = NULL;
    }
    json_decref(d);
    char *out = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return out;
}
