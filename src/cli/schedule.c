/*
 * schedule add|list|show|pause|resume|rm: AdminService.CreateSchedule, ListSchedules and
 * ChangeSchedule (docs/protocol.md, "Schedules"). The expression was checked by the
 * configuration already (config/checks.c), so a bad one never reaches the master.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/commands.h"
#include "cli/conn.h"
#include "core/cron.h"
#include "services/admin_service.pb-c.h"

static void schedule_time(int64_t s, char *buf, size_t len)
{
    if (s <= 0)
        snprintf(buf, len, "-");
    else
        cli_format_time(s * 1000, buf, len);
}

/* The next fire in the schedule's zone, "2026-03-29T03:00:00+02:00", or "-". */
static void schedule_local_time(const Grpc__AdminSchedule *s, char *buf, size_t len)
{
    if (s->next_fire_s <= 0) {
        snprintf(buf, len, "-");
        return;
    }
    time_t t = (time_t)(s->next_fire_s + s->next_fire_utc_offset);
    struct tm tm;
    char when[32], off[8];
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    cron_offset_text(s->next_fire_utc_offset, off);
    snprintf(buf, len, "%s%s", when, s->next_fire_utc_offset ? off : "+00:00");
}

static void schedule_table(const Grpc__AdminListSchedulesResponse *r)
{
    printf("%-6s %-20s %-24s %-20s %-25s %-24s %s\n", "ID", "NAME", "EXPRESSION", "NEXT FIRE",
           "NEXT FIRE (ZONE)", "LAST TASK", "PAUSED");
    for (size_t i = 0; i < r->n_schedules; i++) {
        const Grpc__AdminSchedule *s = r->schedules[i];
        char next[32], local[40], expr[96];
        schedule_time(s->next_fire_s, next, sizeof(next));
        schedule_local_time(s, local, sizeof(local));
        if (strcmp(s->tz, "Z") == 0)
            snprintf(expr, sizeof(expr), "%s", s->expr);
        else
            snprintf(expr, sizeof(expr), "%s (%s)", s->expr, s->tz);
        printf("%-6lld %-20s %-24s %-20s %-25s %-24s %s\n", (long long)s->id,
               *s->name ? s->name : "-", expr, next, local, *s->last_task ? s->last_task : "-",
               s->paused ? "yes" : "no");
    }
}

static void schedule_details(const Grpc__AdminSchedule *s)
{
    char next[32], local[40], last[32], created[32];
    schedule_time(s->next_fire_s, next, sizeof(next));
    schedule_local_time(s, local, sizeof(local));
    schedule_time(s->last_fire_s, last, sizeof(last));
    cli_format_time(s->created_ms, created, sizeof(created));
    printf("id:         %lld\n", (long long)s->id);
    printf("name:       %s\n", *s->name ? s->name : "-");
    printf("expression: %s\n", s->expr);
    printf("zone:       %s\n", s->tz);
    printf("command:    %s\n", s->cmd);
    char labels[256];
    cli_format_labels(s->labels, s->n_labels, labels, sizeof(labels));
    printf("node:       %s\n", s->all_nodes   ? "all (one task each)"
                               : *s->node_key ? s->node_key
                                              : "any");
    printf("labels:     %s\n", labels);
    printf("priority:   %d\n", s->priority);
    printf("timeout:    %lld ms\n", (long long)s->timeout_ms);
    printf("retries:    %u, first after %lld ms\n", s->retries, (long long)s->retry_delay_ms);
    printf("overlap:    %s\n", s->overlap);
    printf("missed:     %s\n", s->missed);
    printf("paused:     %s\n", s->paused ? "yes" : "no");
    printf("next fire:  %s (%s in %s)\n", next, local, s->tz);
    printf("last fire:  %s\n", last);
    printf("last task:  %s\n", *s->last_task ? s->last_task : "-");
    printf("spider:     %s\n", *s->spider ? s->spider : "-");
    printf("created:    %s\n", created);
}

static json_t *schedule_json(const Grpc__AdminSchedule *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)s->id));
    json_object_set_new(o, "name", json_string(s->name));
    json_object_set_new(o, "expr", json_string(s->expr));
    json_object_set_new(o, "tz", json_string(s->tz));
    json_object_set_new(o, "cmd", json_string(s->cmd));
    json_object_set_new(o, "node_key", json_string(s->node_key));
    json_object_set_new(o, "all_nodes", json_boolean(s->all_nodes));
    json_object_set_new(o, "labels", cli_labels_json(s->labels, s->n_labels));
    json_object_set_new(o, "priority", json_integer(s->priority));
    json_object_set_new(o, "timeout_ms", json_integer((json_int_t)s->timeout_ms));
    json_object_set_new(o, "retries", json_integer(s->retries));
    json_object_set_new(o, "retry_delay_ms", json_integer((json_int_t)s->retry_delay_ms));
    json_object_set_new(o, "overlap", json_string(s->overlap));
    json_object_set_new(o, "missed", json_string(s->missed));
    json_object_set_new(o, "paused", json_boolean(s->paused));
    json_object_set_new(o, "next_fire_s", json_integer((json_int_t)s->next_fire_s));
    json_object_set_new(o, "next_fire_utc_offset", json_integer(s->next_fire_utc_offset));
    json_object_set_new(o, "last_fire_s", json_integer((json_int_t)s->last_fire_s));
    json_object_set_new(o, "last_task", json_string(s->last_task));
    json_object_set_new(o, "created_ms", json_integer((json_int_t)s->created_ms));
    json_object_set_new(o, "spider", json_string(s->spider));
    return o;
}

static void schedule_print(const struct config *cfg, const Grpc__AdminListSchedulesResponse *r,
                           bool one)
{
    if (cfg->json) {
        json_t *j;
        if (one && r->n_schedules == 1) {
            j = schedule_json(r->schedules[0]);
        } else {
            j = json_array();
            for (size_t i = 0; i < r->n_schedules; i++)
                json_array_append_new(j, schedule_json(r->schedules[i]));
        }
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s)
            puts(s);
        free(s);
        json_decref(j);
    } else if (one && r->n_schedules == 1) {
        schedule_details(r->schedules[0]);
    } else {
        schedule_table(r);
    }
}

/* One call; prints its answer. Returns the exit status. */
static int schedule_call(const struct config *cfg, struct tls_client *tls, const char *auth_key,
                         const char *method, const ProtobufCMessage *req, bool one)
{
    ProtobufCMessage *m = NULL;
    int status = cli_call(cfg, tls, auth_key, method, req,
                          &grpc__admin_list_schedules_response__descriptor, &m);
    if (status)
        return status;
    const Grpc__AdminListSchedulesResponse *r = (const void *)m;
    if (strcmp(cfg->sched_action, "add") == 0 && r->n_schedules == 1 && !cfg->json)
        printf("%lld\n", (long long)r->schedules[0]->id);
    else if (strcmp(cfg->sched_action, "rm") != 0)
        schedule_print(cfg, r, one);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

static int schedule_add(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    Grpc__TaskSpec spec = GRPC__TASK_SPEC__INIT;
    void *env_block = NULL;
    if (cli_task_spec(cfg, &spec, &env_block) < 0) {
        fprintf(stderr, "crawlab-node: %s\n", strerror(ENOMEM));
        return 1;
    }
    Grpc__AdminCreateScheduleRequest req = GRPC__ADMIN_CREATE_SCHEDULE_REQUEST__INIT;
    req.spec = &spec;
    req.expr = cfg->sched_expr;
    req.retries = (uint32_t)cfg->retries;
    req.retry_delay_ms = (int64_t)cfg->retry_delay_ms;
    if (cfg->sched_tz)
        req.tz = cfg->sched_tz;
    if (cfg->n_nodes)
        req.node_key = cfg->nodes[0];
    req.all_nodes = cfg->all_nodes;
    if (cfg->sched_overlap)
        req.overlap = cfg->sched_overlap;
    if (cfg->sched_missed)
        req.missed = cfg->sched_missed;
    req.labels = cfg->labels;
    req.n_labels = cfg->n_labels;
    int status =
        schedule_call(cfg, tls, auth_key, "/grpc.AdminService/CreateSchedule", &req.base, true);
    cli_task_spec_free(&spec, env_block);
    return status;
}

/* schedule list: every page, printed as one list. Returns the exit status. */
static int schedule_list(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    struct cli_conn c;
    if (cli_conn_open(&c, cfg, tls, auth_key) < 0)
        return 3;
    ProtobufCMessage **pages = NULL;
    Grpc__AdminSchedule **all = NULL;
    size_t n_pages = 0, n = 0;
    grpc_status_code st = GRPC_STATUS_OK;
    const char *token = "";
    do {
        Grpc__AdminScheduleRequest req = GRPC__ADMIN_SCHEDULE_REQUEST__INIT;
        req.page_token = (char *)token;
        ProtobufCMessage *m = NULL;
        st = cli_conn_unary(&c, "/grpc.AdminService/ListSchedules", &req.base,
                            &grpc__admin_list_schedules_response__descriptor, &m);
        if (st != GRPC_STATUS_OK)
            break;
        const Grpc__AdminListSchedulesResponse *r = (const void *)m;
        void *grown_pages = realloc(pages, (n_pages + 1) * sizeof(*pages));
        void *grown_all =
            grown_pages ? realloc(all, (n + r->n_schedules + 1) * sizeof(*all)) : NULL;
        if (grown_pages)
            pages = grown_pages;
        if (!grown_all) {
            protobuf_c_message_free_unpacked(m, NULL);
            st = GRPC_STATUS_RESOURCE_EXHAUSTED;
            fprintf(stderr, "crawlab-node: %s\n", strerror(ENOMEM));
            break;
        }
        all = grown_all;
        pages[n_pages++] = m;
        for (size_t i = 0; i < r->n_schedules; i++)
            all[n++] = r->schedules[i];
        token = r->next_page_token; /* lives in its page until the end */
    } while (*token);
    cli_conn_close(&c);
    if (st == GRPC_STATUS_OK) {
        Grpc__AdminListSchedulesResponse merged = GRPC__ADMIN_LIST_SCHEDULES_RESPONSE__INIT;
        merged.schedules = all;
        merged.n_schedules = n;
        schedule_print(cfg, &merged, false);
    }
    for (size_t i = 0; i < n_pages; i++)
        protobuf_c_message_free_unpacked(pages[i], NULL);
    free(pages);
    free(all);
    return st == GRPC_STATUS_OK ? 0 : cli_exit_status(st);
}

int cli_schedule(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    const char *action = cfg->sched_action;
    if (strcmp(action, "add") == 0)
        return schedule_add(cfg, tls, auth_key);
    Grpc__AdminScheduleRequest req = GRPC__ADMIN_SCHEDULE_REQUEST__INIT;
    req.id = cfg->sched_id;
    if (strcmp(action, "list") == 0)
        return schedule_list(cfg, tls, auth_key);
    if (strcmp(action, "show") == 0)
        return schedule_call(cfg, tls, auth_key, "/grpc.AdminService/ListSchedules", &req.base,
                             true);
    req.action = (char *)(strcmp(action, "rm") == 0 ? "remove" : action);
    return schedule_call(cfg, tls, auth_key, "/grpc.AdminService/ChangeSchedule", &req.base, true);
}
