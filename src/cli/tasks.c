#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/commands.h"
#include "cli/conn.h"
#include "cli/term.h"
#include "core/limits.h"
#include "entity/response.pb-c.h"
#include "services/admin_service.pb-c.h"
#include "runtime/jsontext.h"

/* An exit code means something only once the task's process has ended. */
static bool has_exit_code(const char *status)
{
    return !strcmp(status, "finished") || !strcmp(status, "error") || !strcmp(status, "cancelled");
}

/* Table cells are one line each: an error message may carry newlines or tabs. */
static void print_cell(const char *s, int width, const char *sep)
{
    if (!*s)
        s = "-";
    int n = 0;
    for (; *s; s++, n++)
        putchar((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s);
    printf("%*s%s", n < width ? width - n : 0, "", sep);
}

static void print_header(void)
{
    printf("%-24s %-20s %-17s %-34s %8s %9s %9s %-20s %4s %-24s %s\n", "ID", "NAME", "STATUS",
           "NODE", "PRIORITY", "LOG LINES", "ITEMS", "CREATED", "EXIT", "FROM", "ERROR");
}

/* Where a task comes from, in the FROM column: "restart of ID8" or "attempt N of ID8" (ID8: the
 * first 8 digits of the linked task's id, a prefix the commands accept); "-" for a submitted or
 * scheduled task. */
static void format_link(const Grpc__AdminTask *t, char *out, size_t cap)
{
    if (*t->retry_of)
        snprintf(out, cap, "attempt %u of %.8s", t->attempt, t->retry_of);
    else if (*t->restart_of)
        snprintf(out, cap, "restart of %.8s", t->restart_of);
    else
        snprintf(out, cap, "-");
}

static void print_row(const Grpc__AdminTask *t)
{
    char created[32], exit_code[16] = "-", link[48];
    format_link(t, link, sizeof(link));
    cli_format_time(t->created_ms, created, sizeof(created));
    if (has_exit_code(t->status))
        snprintf(exit_code, sizeof(exit_code), "%d", t->exit_code);
    printf("%-24s ", t->id);
    print_cell(t->name, 20, " ");
    printf("%-17s ", t->status);
    print_cell(t->assigned_node, 34, " ");
    printf("%8d %9llu %9llu %-20s %4s %-24s ", t->priority, (unsigned long long)t->log_lines,
           (unsigned long long)t->data_items, created, exit_code, link);
    print_cell(t->error, 0, "\n");
}

static json_t *task_json(const Grpc__AdminTask *t)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", jsontext_string(t->id));
    json_object_set_new(o, "name", jsontext_string(t->name));
    json_object_set_new(o, "cmd", jsontext_string(t->cmd));
    json_object_set_new(o, "param", jsontext_string(t->param));
    json_object_set_new(o, "status", jsontext_string(t->status));
    json_object_set_new(o, "node_key", jsontext_string(t->node_key));
    json_object_set_new(o, "assigned_node", jsontext_string(t->assigned_node));
    json_object_set_new(o, "labels", cli_labels_json(t->labels, t->n_labels));
    json_object_set_new(o, "priority", json_integer(t->priority));
    json_object_set_new(o, "timeout_ms", json_integer((json_int_t)t->timeout_ms));
    json_object_set_new(o, "pid", json_integer(t->pid));
    json_object_set_new(o, "exit_code", json_integer(t->exit_code));
    json_object_set_new(o, "error", jsontext_string(t->error));
    json_object_set_new(o, "spider", jsontext_string(t->spider));
    json_object_set_new(o, "log_lines", json_integer((json_int_t)t->log_lines));
    json_object_set_new(o, "data_items", json_integer((json_int_t)t->data_items));
    json_object_set_new(o, "created_ms", json_integer((json_int_t)t->created_ms));
    json_object_set_new(o, "started_ms", json_integer((json_int_t)t->started_ms));
    json_object_set_new(o, "ended_ms", json_integer((json_int_t)t->ended_ms));
    json_object_set_new(o, "restart_of", jsontext_string(t->restart_of));
    json_object_set_new(o, "retry_of", jsontext_string(t->retry_of));
    json_object_set_new(o, "attempt", json_integer(t->attempt));
    json_object_set_new(o, "retries", json_integer(t->retries));
    json_object_set_new(o, "retry_delay_ms", json_integer((json_int_t)t->retry_delay_ms));
    json_object_set_new(o, "eligible_ms", json_integer((json_int_t)t->eligible_ms));
    return o;
}

/* One task of the JSON array that --json prints, written as it arrives. */
static void print_json_task(const Grpc__AdminTask *t)
{
    json_t *o = task_json(t);
    char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    fputs(text ? text : "null", stdout);
    free(text);
    json_decref(o);
}

static size_t task_entries(const ProtobufCMessage *page, const char **next)
{
    const Grpc__AdminListTasksResponse *r = (const void *)page;
    *next = r->next_page_token;
    return r->n_tasks;
}

/* Prints task i of a page and keeps its id in ctx (char[TASK_ID_LEN + 1]): the hint after the
 * last task shown names it. */
static void print_task(void *ctx, const ProtobufCMessage *page, size_t i, bool json)
{
    const Grpc__AdminListTasksResponse *r = (const void *)page;
    char *last_id = ctx;
    if (json)
        print_json_task(r->tasks[i]);
    else
        print_row(r->tasks[i]);
    snprintf(last_id, TASK_ID_LEN + 1, "%s", r->tasks[i]->id);
}

/* The tasks a listing shows when --limit is not given: a screenful on a terminal, all of them
 * into a pipe or with --json (which then holds every task, page after page). */
#define TERMINAL_LIMIT 100

/*
 * Walks the master's pages, newest first, printing each task as it comes: the table's header
 * first, or the JSON array's brackets around them. Stops after `want` tasks (0: none left out)
 * and then says on stderr how to see the next ones.
 */
int cli_tasks(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    unsigned want = cfg->limit_given                      ? cfg->limit
                    : cfg->json || !isatty(STDOUT_FILENO) ? 0
                                                          : TERMINAL_LIMIT;
    Grpc__AdminListTasksRequest req = GRPC__ADMIN_LIST_TASKS_REQUEST__INIT;
    if (cfg->status_filter)
        req.status = cfg->status_filter;
    if (cfg->before_id)
        req.before = cfg->before_id;
    char last_id[TASK_ID_LEN + 1] = "";
    struct cli_listing l = {
        .method = "/grpc.AdminService/ListTasks",
        .req = &req.base,
        .limit = &req.limit,
        .page_token = &req.page_token,
        .resp_desc = &grpc__admin_list_tasks_response__descriptor,
        .entries = task_entries,
        .header = print_header,
        .print = print_task,
        .ctx = last_id,
        .json = cfg->json,
    };
    unsigned shown;
    bool more;
    int status = cli_list(cfg, tls, auth_key, &l, want, &shown, &more);
    if (status)
        return status;
    if (more && want && shown >= want)
        fprintf(stderr,
                "crawlab-node: %u tasks shown, more are older: crawlab-node tasks --before=%s\n",
                shown, last_id);
    return 0;
}

/* tasks purge: the master purges in the background and answers how many tasks match. */
int cli_tasks_purge(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    int64_t before = cfg->purge_before_ms;
    if (cfg->purge_age_ms) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        before = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - (int64_t)cfg->purge_age_ms;
    }
    if (before <= 0) {
        fprintf(stderr, "crawlab-node: tasks purge: --before is before 1970\n");
        return 2;
    }
    Grpc__AdminPurgeTasksRequest req = GRPC__ADMIN_PURGE_TASKS_REQUEST__INIT;
    req.before_ms = before;
    ProtobufCMessage *m = NULL;
    int status = cli_call(cfg, tls, auth_key, "/grpc.AdminService/PurgeTasks", &req.base,
                          &grpc__admin_purge_tasks_response__descriptor, &m);
    if (status)
        return status;
    const Grpc__AdminPurgeTasksResponse *r = (const void *)m;
    char when[32];
    cli_format_time(before, when, sizeof(when));
    printf("%llu tasks ended before %s: the master purges them in the background\n",
           (unsigned long long)r->tasks, when);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

struct print_ctx {
    bool escape; /* stdout is a terminal: control characters are shown, not obeyed */
    bool write_failed;
    uint64_t printed; /* lines (or items) written so far */
};

/* Writes a chunk's lines one per line, exactly as stored unless they go to a terminal
 * (cli/term.h), and flushes so a pipe sees them at once. A failed write (the reader went away)
 * stops the stream. */
static int print_chunk(void *ctx, const ProtobufCMessage *m)
{
    struct print_ctx *p = ctx;
    const Grpc__AdminChunk *chunk = (const void *)m;
    for (size_t i = 0; i < chunk->n_lines; i++) {
        if (term_write(stdout, chunk->lines[i], strlen(chunk->lines[i]), p->escape) < 0)
            break;
        putchar('\n');
        p->printed++;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        p->write_failed = true;
        return -1;
    }
    return 0;
}

/* Another master goes on from the line (or item) after the last one written, numbered from 1. */
static bool resume_lines(void *ctx, ProtobufCMessage *m)
{
    ((Grpc__AdminTaskRequest *)m)->from = ((struct print_ctx *)ctx)->printed + 1;
    return true;
}

static int stream_lines(const struct config *cfg, struct tls_client *tls, const char *auth_key,
                        const char *method, bool follow)
{
    struct cli_conn c;
    if (cli_conn_open(&c, cfg, tls, auth_key) < 0)
        return 3;
    Grpc__AdminTaskRequest req = GRPC__ADMIN_TASK_REQUEST__INIT;
    req.task_id = cfg->task_id;
    req.follow = follow;
    struct print_ctx ctx = {.escape = isatty(STDOUT_FILENO) == 1};
    grpc_status_code st = cli_conn_read(&c, method, &req.base, &grpc__admin_chunk__descriptor,
                                        print_chunk, resume_lines, &ctx);
    cli_conn_close(&c);
    if (st != GRPC_STATUS_OK)
        return cli_exit_status(st);
    return ctx.write_failed ? 1 : 0;
}

int cli_logs(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    return stream_lines(cfg, tls, auth_key, "/grpc.AdminService/ReadLogs", cfg->follow);
}

int cli_results(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    return stream_lines(cfg, tls, auth_key, "/grpc.AdminService/ReadResults", false);
}

int cli_cancel(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    Grpc__AdminTaskRequest req = GRPC__ADMIN_TASK_REQUEST__INIT;
    req.task_id = cfg->task_id;
    req.force = cfg->force;
    ProtobufCMessage *m = NULL;
    int status = cli_call(cfg, tls, auth_key, "/grpc.AdminService/CancelTask", &req.base,
                          &grpc__response__descriptor, &m);
    if (status)
        return status;
    const Grpc__Response *r = (const void *)m;
    if (r->code != GRPC__RESPONSE_CODE__OK) {
        fprintf(stderr, "crawlab-node: cancel %s: %s\n", cfg->task_id,
                *r->error     ? r->error
                : *r->message ? r->message
                              : "refused");
        status = 1;
    } else if (*r->message) {
        puts(r->message);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return status;
}

int cli_task_restart(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    Grpc__AdminTaskRequest req = GRPC__ADMIN_TASK_REQUEST__INIT;
    req.task_id = cfg->task_id;
    ProtobufCMessage *m = NULL;
    int status = cli_call(cfg, tls, auth_key, "/grpc.AdminService/RestartTask", &req.base,
                          &grpc__admin_submit_task_response__descriptor, &m);
    if (status)
        return status;
    const Grpc__AdminSubmitTaskResponse *r = (const void *)m;
    for (size_t i = 0; i < r->n_task_ids; i++)
        puts(r->task_ids[i]);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
