#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/conn.h"
#include "services/admin_service.pb-c.h"

/* Characters a POSIX shell never treats specially, so a word made only of them needs no quotes. */
static bool is_safe_word(const char *w)
{
    if (!*w)
        return false;
    for (const char *p = w; *p; p++) {
        char ch = *p;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              strchr("_@%+=:,./-", ch)))
            return false;
    }
    return true;
}

char *cli_shell_join(char *const *words, size_t n)
{
    /* Worst case every byte is a quote, which becomes four: '\'' */
    size_t cap = 1;
    for (size_t i = 0; i < n; i++)
        cap += 4 * strlen(words[i]) + 3;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    char *o = out;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            *o++ = ' ';
        const char *w = words[i];
        if (is_safe_word(w)) {
            size_t len = strlen(w);
            memcpy(o, w, len);
            o += len;
            continue;
        }
        *o++ = '\'';
        for (const char *p = w; *p; p++) {
            if (*p == '\'') {
                memcpy(o, "'\\''", 4);
                o += 4;
            } else {
                *o++ = *p;
            }
        }
        *o++ = '\'';
    }
    *o = '\0';
    return out;
}

static Grpc__TaskSpec__EnvEntry **env_entries(char *const *env, size_t n, void **block)
{
    size_t size = n * (sizeof(Grpc__TaskSpec__EnvEntry *) + sizeof(Grpc__TaskSpec__EnvEntry));
    for (size_t i = 0; i < n; i++)
        size += strlen(env[i]) + 1;
    char *mem = malloc(size ? size : 1);
    if (!mem)
        return NULL;
    Grpc__TaskSpec__EnvEntry **ptrs = (void *)mem;
    Grpc__TaskSpec__EnvEntry *entries = (void *)(mem + n * sizeof(*ptrs));
    char *text = (char *)(entries + n);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(env[i]);
        memcpy(text, env[i], len + 1);
        char *eq = strchr(text, '=');
        Grpc__TaskSpec__EnvEntry e = GRPC__TASK_SPEC__ENV_ENTRY__INIT;
        e.key = text;
        if (eq) {
            *eq = '\0';
            e.value = eq + 1;
        }
        entries[i] = e;
        ptrs[i] = &entries[i];
        text += len + 1;
    }
    *block = mem;
    return ptrs;
}

int cli_task_spec(const struct config *cfg, Grpc__TaskSpec *spec, void **block)
{
    char *cmd = cli_shell_join(cfg->argv_cmd, cfg->n_argv_cmd);
    Grpc__TaskSpec__EnvEntry **env = env_entries(cfg->env, cfg->n_env, block);
    if (!cmd || !env) {
        free(cmd);
        free(*block);
        *block = NULL;
        return -ENOMEM;
    }
    spec->cmd = cmd;
    spec->env = env;
    spec->n_env = cfg->n_env;
    spec->timeout_ms = cfg->timeout_ms > INT64_MAX ? INT64_MAX : (int64_t)cfg->timeout_ms;
    spec->priority = cfg->priority;
    if (cfg->task_name)
        spec->name = cfg->task_name;
    if (cfg->spider_ref)
        spec->spider = cfg->spider_ref;
    return 0;
}

void cli_task_spec_free(Grpc__TaskSpec *spec, void *block)
{
    free(spec->cmd);
    free(block);
}

int cli_submit(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    Grpc__TaskSpec spec = GRPC__TASK_SPEC__INIT;
    void *env_block = NULL;
    if (cli_task_spec(cfg, &spec, &env_block) < 0) {
        fprintf(stderr, "crawlab-node: %s\n", strerror(ENOMEM));
        return 1;
    }

    Grpc__AdminSubmitTaskRequest req = GRPC__ADMIN_SUBMIT_TASK_REQUEST__INIT;
    req.spec = &spec;
    req.node_keys = cfg->nodes;
    req.n_node_keys = cfg->n_nodes;
    req.all_nodes = cfg->all_nodes;
    req.labels = cfg->labels;
    req.n_labels = cfg->n_labels;
    req.retries = (uint32_t)cfg->retries;
    req.retry_delay_ms = (int64_t)cfg->retry_delay_ms;

    ProtobufCMessage *m = NULL;
    int status = cli_call(cfg, tls, auth_key, "/grpc.AdminService/SubmitTask", &req.base,
                          &grpc__admin_submit_task_response__descriptor, &m);
    if (status == 0) {
        const Grpc__AdminSubmitTaskResponse *r = (const void *)m;
        for (size_t i = 0; i < r->n_task_ids; i++)
            puts(r->task_ids[i]);
        if (*r->warning)
            fprintf(stderr, "crawlab-node: %s\n", r->warning);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    cli_task_spec_free(&spec, env_block);
    return status;
}
