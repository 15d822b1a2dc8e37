/*
 * events: the master's events after a cursor (AdminService.ReadEvents), one line each, as they
 * arrive; with --follow, new ones too until interrupted.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/conn.h"
#include "cli/term.h"
#include "core/event.h"
#include "services/admin_service.pb-c.h"

struct event_print {
    bool json;
    bool escape; /* stdout is a terminal: control characters are shown, not obeyed */
    bool write_failed;
    uint64_t last_id; /* of the last event written, 0 before the first */
    uint64_t shown;   /* events written */
};

/* ID TIME KIND [node=KEY] [task=ID] DATA */
static void print_text(const struct event_print *p, const Grpc__AdminEvent *e)
{
    char when[32];
    cli_format_time(e->at_ms, when, sizeof(when));
    printf("%llu %s %s", (unsigned long long)e->id, when, e->kind);
    if (*e->node_key)
        printf(" node=%s", e->node_key);
    if (*e->task_id)
        printf(" task=%s", e->task_id);
    putchar(' ');
    term_write(stdout, e->data, strlen(e->data), p->escape);
    putchar('\n');
}

/* The same JSON as a hook reads on its stdin (core/event.h), one object per line. */
static int print_json(const Grpc__AdminEvent *e)
{
    char *line = event_json((int64_t)e->id, e->at_ms, e->kind, e->node_key, e->task_id, e->data);
    if (!line)
        return -1;
    puts(line);
    free(line);
    return 0;
}

static int print_chunk(void *ctx, const ProtobufCMessage *m)
{
    struct event_print *p = ctx;
    const Grpc__AdminEventsChunk *chunk = (const void *)m;
    for (size_t i = 0; i < chunk->n_events; i++) {
        if (p->json) {
            if (print_json(chunk->events[i]) < 0)
                return -1;
        } else {
            print_text(p, chunk->events[i]);
        }
        p->last_id = chunk->events[i]->id;
        p->shown++;
    }
    /* A follower's reader sees each event at once; a reader gone away stops the stream. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        p->write_failed = true;
        return -1;
    }
    return 0;
}

/* Another master goes on after the last event written, for what is left of --limit. */
static bool resume_events(void *ctx, ProtobufCMessage *m)
{
    const struct event_print *p = ctx;
    Grpc__AdminEventsRequest *req = (void *)m;
    if (p->last_id)
        req->after = p->last_id;
    if (req->limit) {
        if (p->shown >= req->limit)
            return false;
        req->limit -= (uint32_t)p->shown;
    }
    return true;
}

int cli_events(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    struct cli_conn c;
    if (cli_conn_open(&c, cfg, tls, auth_key) < 0)
        return 3;
    Grpc__AdminEventsRequest req = GRPC__ADMIN_EVENTS_REQUEST__INIT;
    req.after = cfg->after_event;
    req.limit = cfg->limit;
    req.follow = cfg->follow;
    struct event_print p = {.json = cfg->json, .escape = isatty(STDOUT_FILENO) == 1};
    grpc_status_code st =
        cli_conn_read(&c, "/grpc.AdminService/ReadEvents", &req.base,
                      &grpc__admin_events_chunk__descriptor, print_chunk, resume_events, &p);
    cli_conn_close(&c);
    if (p.write_failed)
        return 1;
    return st == GRPC_STATUS_OK ? 0 : cli_exit_status(st);
}
