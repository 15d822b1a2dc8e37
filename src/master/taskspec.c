#include "master/taskspec.h"

#include <stdlib.h>

/* TaskSpec.env from the stored JSON object; entries live in the caller's arrays. */
static size_t spec_env(json_t *env, Grpc__TaskSpec__EnvEntry *entries,
                       Grpc__TaskSpec__EnvEntry **ptrs, size_t cap)
{
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v)
    {
        if (n == cap || !json_is_string(v))
            continue;
        grpc__task_spec__env_entry__init(&entries[n]);
        entries[n].key = (char *)k;
        entries[n].value = (char *)json_string_value(v);
        ptrs[n] = &entries[n];
        n++;
    }
    return n;
}

void taskspec_init(struct taskspec *ts, const struct task_row *row)
{
    grpc__task_spec__init(&ts->spec);
    ts->spec.id = (char *)row->id;
    ts->spec.cmd = row->cmd;
    ts->spec.param = row->param;
    ts->spec.name = (char *)row->name;
    ts->spec.timeout_ms = row->timeout_ms;
    ts->spec.priority = row->priority;
    ts->spec.spider = (char *)row->spider;
    ts->spec.spider_sha256 = (char *)row->spider_sha256;
    ts->env = json_loads(row->env_json, 0, NULL);
    size_t cap = json_is_object(ts->env) ? json_object_size(ts->env) : 0;
    ts->entries = cap ? calloc(cap, sizeof(*ts->entries)) : NULL;
    ts->ptrs = cap ? calloc(cap, sizeof(*ts->ptrs)) : NULL;
    if (ts->entries && ts->ptrs) {
        ts->spec.n_env = spec_env(ts->env, ts->entries, ts->ptrs, cap);
        ts->spec.env = ts->ptrs;
    }
}

void taskspec_free(struct taskspec *ts)
{
    free(ts->entries);
    free(ts->ptrs);
    json_decref(ts->env);
}
