#include "cli/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "net/dialer.h"
#include "rpc/auth.h"
#include "rpc/client.h"
#include "rpc/codec.h"

#define CONNECT_TIMEOUT_MS 5000
#define CALL_TIMEOUT_MS    10000

static const char *const status_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

static const char *status_name(grpc_status_code st)
{
    if ((unsigned)st < sizeof(status_names) / sizeof(status_names[0]))
        return status_names[st];
    return "UNKNOWN";
}

int cli_exit_status(grpc_status_code st)
{
    return st == GRPC_STATUS_UNAVAILABLE || st == GRPC_STATUS_UNAUTHENTICATED ||
                   st == GRPC_STATUS_PERMISSION_DENIED || st == GRPC_STATUS_DEADLINE_EXCEEDED
               ? 3
               : 1;
}

/* Connects to the first of count masters from cfg->masters[first] on (wrapping around the list)
 * that can be reached, saying on stderr why each one before it could not. 0, or the last dial's
 * negative errno. */
static int connect_from(struct cli_conn *c, size_t first, size_t count)
{
    int rc = -EHOSTUNREACH;
    for (size_t k = 0; k < count; k++) {
        size_t i = (first + k) % c->cfg->n_masters;
        const struct config_master *m = &c->cfg->masters[i];
        snprintf(c->target, sizeof(c->target), strchr(m->host, ':') ? "[%s]:%d" : "%s:%d", m->host,
                 m->port);
        char err[400];
        int fd = -1;
        rc = dial_blocking(c->tls_ctx, m->host, m->port, CONNECT_TIMEOUT_MS, &fd, &c->tunnel, err,
                           sizeof(err));
        if (rc < 0) {
            fprintf(stderr, "crawlab-node: cannot connect to the master %s: %s\n", c->target, err);
            continue;
        }
        c->master = i;
        /* gRPC owns fd; our duplicate only watches it (cli_conn_upload). */
        c->watch_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        grpc_channel_credentials *creds = grpc_insecure_credentials_create();
        c->channel = grpc_channel_create_from_fd(c->target, fd, creds, rpc_channel_args());
        grpc_channel_credentials_release(creds);
        return 0;
    }
    return rc;
}

/* Closes the connection to the current master; the queue stays for the next one. */
static void disconnect(struct cli_conn *c)
{
    if (c->channel)
        grpc_channel_destroy(c->channel);
    c->channel = NULL;
    if (c->watch_fd > 0)
        close(c->watch_fd);
    c->watch_fd = -1;
    /* After the channel: the pump outlives the plaintext end it serves. */
    dial_tunnel_close(c->tunnel);
    c->tunnel = NULL;
}

int cli_conn_open(struct cli_conn *c, const struct config *cfg, struct tls_client *tls,
                  const char *auth_key)
{
    memset(c, 0, sizeof(*c));
    c->watch_fd = -1;
    c->cfg = cfg;
    c->tls_ctx = tls;
    c->tls = tls != NULL;
    if (auth_key && !(c->auth_key = strdup(auth_key)))
        return -ENOMEM;
    int rc = connect_from(c, 0, cfg->n_masters);
    if (rc < 0) {
        free(c->auth_key);
        c->auth_key = NULL;
        return rc;
    }
    c->cq = grpc_completion_queue_create_for_pluck(NULL);
    return 0;
}

void cli_conn_close(struct cli_conn *c)
{
    disconnect(c);
    if (c->cq) {
        grpc_completion_queue_shutdown(c->cq);
        grpc_completion_queue_destroy(c->cq);
    }
    free(c->auth_key);
    memset(c, 0, sizeof(*c));
    c->watch_fd = -1;
}

/* Calls that change nothing on the master (their names say so), which may be sent twice. */
static bool reads_only(const char *method)
{
    const char *name = strrchr(method, '/');
    name = name ? name + 1 : method;
    return strncmp(name, "List", 4) == 0 || strncmp(name, "Read", 4) == 0 ||
           strcmp(name, "Metrics") == 0;
}

/*
 * After a call ended with st: whether to send it again, to the next master now connected. Only
 * an UNAVAILABLE call that changes nothing, before this master ever answered (on this call or an
 * earlier one of the connection), moves on: an answer of the master, an error included, is
 * final, and a call that changes something may have been applied before the master went away.
 */
static bool move_on(struct cli_conn *c, grpc_status_code st, const char *method, bool got_message)
{
    if (st != GRPC_STATUS_UNAVAILABLE || got_message) {
        c->answered = true;
        return false;
    }
    if (c->answered || !reads_only(method) || c->master + 1 >= c->cfg->n_masters)
        return false;
    disconnect(c);
    return connect_from(c, c->master + 1, c->cfg->n_masters - c->master - 1) == 0;
}

/*
 * After a resumable stream ended with st: whether to go on with another master. Only when the
 * master went away (UNAVAILABLE) and another one can be reached: each of the others is tried
 * once, in order from the next one, wrapping around. *quiet counts the masters in a row that sent
 * nothing before they went away: when every one did so, the stream gives up.
 */
static bool move_on_resuming(struct cli_conn *c, grpc_status_code st, bool got_message,
                             size_t *quiet)
{
    *quiet = got_message ? 0 : *quiet + 1;
    if (st != GRPC_STATUS_UNAVAILABLE || c->cfg->n_masters < 2 || *quiet >= c->cfg->n_masters)
        return false;
    disconnect(c);
    if (connect_from(c, c->master + 1, c->cfg->n_masters - 1) < 0)
        return false;
    fprintf(stderr, "crawlab-node: going on with the master %s\n", c->target);
    return true;
}

/* Runs one batch and waits for it. */
static bool run_batch(struct cli_conn *c, grpc_call *call, const grpc_op *ops, size_t n)
{
    int tag;
    if (grpc_call_start_batch(call, ops, n, &tag, NULL) != GRPC_CALL_OK)
        return false;
    grpc_event ev =
        grpc_completion_queue_pluck(c->cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    return ev.type == GRPC_OP_COMPLETE && ev.success;
}

struct call_state {
    grpc_call *call;
    grpc_metadata auth;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
};

static void call_begin(struct cli_conn *c, struct call_state *s, const char *method,
                       uint64_t timeout_ms)
{
    memset(s, 0, sizeof(*s));
    s->details = grpc_empty_slice();
    grpc_metadata_array_init(&s->initial_md);
    grpc_metadata_array_init(&s->trailing_md);
    s->auth.key = grpc_slice_from_static_string(AUTH_METADATA_KEY);
    s->auth.value = grpc_slice_from_copied_string(c->auth_key ? c->auth_key : "");
    gpr_timespec deadline =
        timeout_ms ? gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                  gpr_time_from_millis((int64_t)timeout_ms, GPR_TIMESPAN))
                   : gpr_inf_future(GPR_CLOCK_MONOTONIC);
    s->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq,
                                       grpc_slice_from_static_string(method), NULL, deadline, NULL);
}

static void call_free(struct call_state *s)
{
    grpc_call_unref(s->call);
    grpc_slice_unref(s->auth.value);
    grpc_metadata_array_destroy(&s->initial_md);
    grpc_metadata_array_destroy(&s->trailing_md);
    grpc_slice_unref(s->details);
}

/* Decodes the answer of a call that ended OK into *resp; one missing or not decodable turns the
 * status into INTERNAL ("malformed response"). msg (may be NULL) is released. */
static void take_response(struct call_state *s, grpc_byte_buffer *msg,
                          const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp)
{
    if (s->status == GRPC_STATUS_OK && (!msg || codec_unpack(msg, resp_desc, resp) < 0)) {
        s->status = GRPC_STATUS_INTERNAL;
        grpc_slice_unref(s->details);
        s->details = grpc_slice_from_static_string("malformed response");
    }
    if (msg)
        grpc_byte_buffer_destroy(msg);
}

/* Reports a failed call once, in words, and frees the call. heard: the master sent something on
 * this call or an earlier one, so it was running and took our certificate (UNAVAILABLE is then
 * the master going away, and it says why). */
static grpc_status_code call_end(struct cli_conn *c, struct call_state *s, const char *method,
                                 bool heard)
{
    grpc_status_code st = s->status;
    if (st != GRPC_STATUS_OK) {
        char *details = grpc_slice_to_c_string(s->details);
        const char *hint = "";
        if (st == GRPC_STATUS_UNAUTHENTICATED)
            hint = " (pass the master's admin key with --admin-key-file or CRAWLAB_ADMIN_KEY)";
        else if (st == GRPC_STATUS_PERMISSION_DENIED)
            hint = " (client commands need the master's admin.key and, with client certificates, "
                   "one of `cert issue --role=admin`)";
        else if (st == GRPC_STATUS_UNAVAILABLE && !heard)
            hint = c->tls ? " (is the master running, and does it accept our certificate?)"
                          : " (is the master running? if it uses TLS, give --tls-ca)";
        fprintf(stderr, "crawlab-node: %s: %s: %s%s\n", c->target, status_name(st), details, hint);
        gpr_free(details);
    }
    call_free(s);
    (void)method;
    return st;
}

static void recv_status(struct cli_conn *c, struct call_state *s)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.trailing_metadata = &s->trailing_md;
    op.data.recv_status_on_client.status = &s->status;
    op.data.recv_status_on_client.status_details = &s->details;
    if (!run_batch(c, s->call, &op, 1))
        s->status = GRPC_STATUS_UNAVAILABLE;
}

/* Sends the request and half-closes; the first response message (or none) comes back. */
static bool send_request(struct cli_conn *c, struct call_state *s, const ProtobufCMessage *req,
                         grpc_byte_buffer **first)
{
    grpc_byte_buffer *bb = codec_pack(req);
    grpc_op ops[5];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = 1;
    ops[0].data.send_initial_metadata.metadata = &s->auth;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = first;
    bool ok = run_batch(c, s->call, ops, 5);
    grpc_byte_buffer_destroy(bb);
    return ok;
}

/* One unary call on the current master. */
static grpc_status_code unary_once(struct cli_conn *c, const char *method,
                                   const ProtobufCMessage *req,
                                   const ProtobufCMessageDescriptor *resp_desc,
                                   ProtobufCMessage **resp)
{
    struct call_state s;
    call_begin(c, &s, method, CALL_TIMEOUT_MS);
    grpc_byte_buffer *msg = NULL;
    send_request(c, &s, req, &msg);
    recv_status(c, &s);
    take_response(&s, msg, resp_desc, resp);
    return call_end(c, &s, method, c->answered);
}

grpc_status_code cli_conn_unary(struct cli_conn *c, const char *method, const ProtobufCMessage *req,
                                const ProtobufCMessageDescriptor *resp_desc,
                                ProtobufCMessage **resp)
{
    grpc_status_code st;
    do
        st = unary_once(c, method, req, resp_desc, resp);
    while (move_on(c, st, method, false));
    return st;
}

/* One server-streaming call on the current master; *got_message says whether any came. */
static grpc_status_code stream_once(struct cli_conn *c, const char *method,
                                    const ProtobufCMessage *req,
                                    const ProtobufCMessageDescriptor *resp_desc,
                                    int (*on_message)(void *ctx, const ProtobufCMessage *m),
                                    void *ctx, bool *got_message)
{
    struct call_state s;
    call_begin(c, &s, method, 0);
    grpc_byte_buffer *msg = NULL;
    bool ok = send_request(c, &s, req, &msg);
    bool stopped = false;
    *got_message = false;
    while (ok && msg) {
        *got_message = true;
        ProtobufCMessage *m = NULL;
        int rc = codec_unpack(msg, resp_desc, &m);
        grpc_byte_buffer_destroy(msg);
        msg = NULL;
        if (rc < 0 || on_message(ctx, m) != 0) {
            if (m)
                protobuf_c_message_free_unpacked(m, NULL);
            grpc_call_cancel(s.call, NULL);
            stopped = true;
            break;
        }
        protobuf_c_message_free_unpacked(m, NULL);
        grpc_op op;
        memset(&op, 0, sizeof(op));
        op.op = GRPC_OP_RECV_MESSAGE;
        op.data.recv_message.recv_message = &msg;
        ok = run_batch(c, s.call, &op, 1);
    }
    if (msg)
        grpc_byte_buffer_destroy(msg);
    recv_status(c, &s);
    if (stopped)
        s.status = GRPC_STATUS_OK;
    return call_end(c, &s, method, *got_message || c->answered);
}

grpc_status_code cli_conn_stream(struct cli_conn *c, const char *method,
                                 const ProtobufCMessage *req,
                                 const ProtobufCMessageDescriptor *resp_desc,
                                 int (*on_message)(void *ctx, const ProtobufCMessage *m), void *ctx)
{
    grpc_status_code st;
    bool got_message;
    do
        st = stream_once(c, method, req, resp_desc, on_message, ctx, &got_message);
    while (move_on(c, st, method, got_message));
    return st;
}

grpc_status_code cli_conn_read(struct cli_conn *c, const char *method, ProtobufCMessage *req,
                               const ProtobufCMessageDescriptor *resp_desc,
                               int (*on_message)(void *ctx, const ProtobufCMessage *m),
                               bool (*resume)(void *ctx, ProtobufCMessage *req), void *ctx)
{
    grpc_status_code st;
    bool got_message;
    size_t quiet = 0;
    for (;;) {
        st = stream_once(c, method, req, resp_desc, on_message, ctx, &got_message);
        if (!move_on_resuming(c, st, got_message, &quiet))
            break;
        if (!resume(ctx, req)) {
            st = GRPC_STATUS_OK; /* the master went away after the last of it */
            break;
        }
    }
    c->answered = true;
    return st;
}

json_t *cli_labels_json(char *const *labels, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(labels[i]));
    return a;
}

void cli_format_labels(char *const *labels, size_t n, char *buf, size_t len)
{
    snprintf(buf, len, "%s", n ? "" : "-");
    size_t at = strlen(buf);
    for (size_t i = 0; i < n && at < len; i++) {
        int w = snprintf(buf + at, len - at, "%s%s", i ? "," : "", labels[i]);
        if (w < 0)
            break;
        at += (size_t)w;
    }
}

/* Whether the connection was reset or closed under gRPC. */
static bool conn_lost(const struct cli_conn *c)
{
    struct pollfd p = {.fd = c->watch_fd, .events = POLLRDHUP};
    return c->watch_fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP | POLLRDHUP));
}

/* Waits for the batch of tag; false when it failed, or when the call ended first (the batch of
 * status_tag, which receives the status, completed: *ended is set). gRPC does not always fail a
 * send pending on a connection that was reset: such a call is cancelled here. */
static bool wait_batch(struct cli_conn *c, grpc_call *call, void *tag, void *status_tag,
                       bool *ended)
{
    for (;;) {
        gpr_timespec soon =
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(200, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_pluck(c->cq, tag, soon, NULL);
        if (ev.type == GRPC_OP_COMPLETE)
            return ev.success;
        if (!*ended) {
            ev = grpc_completion_queue_pluck(c->cq, status_tag, gpr_inf_past(GPR_CLOCK_MONOTONIC),
                                             NULL);
            *ended = ev.type == GRPC_OP_COMPLETE;
        }
        if (*ended)
            return false;
        if (conn_lost(c))
            grpc_call_cancel_with_status(call, GRPC_STATUS_UNAVAILABLE,
                                         "the connection to the master was lost", NULL);
    }
}

grpc_status_code cli_conn_upload(struct cli_conn *c, const char *method,
                                 int (*next)(void *ctx, ProtobufCMessage **req), void *ctx,
                                 const ProtobufCMessageDescriptor *resp_desc,
                                 ProtobufCMessage **resp)
{
    struct call_state s;
    call_begin(c, &s, method, 0);
    int send_tag, status_tag;
    bool ended = false;
    grpc_op ops[3];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = 1;
    ops[0].data.send_initial_metadata.metadata = &s.auth;
    ops[1].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[1].data.recv_status_on_client.trailing_metadata = &s.trailing_md;
    ops[1].data.recv_status_on_client.status = &s.status;
    ops[1].data.recv_status_on_client.status_details = &s.details;
    bool ok = grpc_call_start_batch(s.call, ops, 1, &send_tag, NULL) == GRPC_CALL_OK &&
              grpc_call_start_batch(s.call, ops + 1, 1, &status_tag, NULL) == GRPC_CALL_OK &&
              wait_batch(c, s.call, &send_tag, &status_tag, &ended);
    int rc = 0;
    /* A send fails once the master has ended the call (a refusal): its status says why. */
    while (ok) {
        ProtobufCMessage *req = NULL;
        if ((rc = next(ctx, &req)) <= 0)
            break;
        grpc_byte_buffer *bb = codec_pack(req);
        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_SEND_MESSAGE;
        ops[0].data.send_message.send_message = bb;
        ok = grpc_call_start_batch(s.call, ops, 1, &send_tag, NULL) == GRPC_CALL_OK &&
             wait_batch(c, s.call, &send_tag, &status_tag, &ended);
        grpc_byte_buffer_destroy(bb);
    }
    grpc_byte_buffer *msg = NULL;
    if (rc < 0) {
        grpc_call_cancel(s.call, NULL);
    } else if (ok) {
        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[1].data.recv_initial_metadata.recv_initial_metadata = &s.initial_md;
        ops[2].op = GRPC_OP_RECV_MESSAGE;
        ops[2].data.recv_message.recv_message = &msg;
        if (grpc_call_start_batch(s.call, ops, 3, &send_tag, NULL) == GRPC_CALL_OK)
            wait_batch(c, s.call, &send_tag, &status_tag, &ended);
    }
    /* The status: the master's, or, when a send failed and none comes, ours. */
    for (int waited = 0; !ended; waited++) {
        gpr_timespec soon =
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(200, GPR_TIMESPAN));
        ended =
            grpc_completion_queue_pluck(c->cq, &status_tag, soon, NULL).type == GRPC_OP_COMPLETE;
        if (!ended && (conn_lost(c) || (!ok && waited == 25)))
            grpc_call_cancel_with_status(s.call, GRPC_STATUS_UNAVAILABLE,
                                         "the connection to the master was lost", NULL);
    }
    if (rc < 0) {
        call_free(&s); /* next() said why */
        return GRPC_STATUS_CANCELLED;
    }
    take_response(&s, msg, resp_desc, resp);
    c->answered = true;
    return call_end(c, &s, method, true);
}

int cli_call(const struct config *cfg, struct tls_client *tls, const char *auth_key,
             const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp)
{
    struct cli_conn c;
    if (cli_conn_open(&c, cfg, tls, auth_key) < 0)
        return 3;
    grpc_status_code st = cli_conn_unary(&c, method, req, resp_desc, resp);
    cli_conn_close(&c);
    return st == GRPC_STATUS_OK ? 0 : cli_exit_status(st);
}

/* cli_list's walk on c: OK, or the status of the call that failed. */
static grpc_status_code list_pages(struct cli_conn *c, const struct cli_listing *l, unsigned want,
                                   unsigned *shown, bool *more)
{
    char *token = NULL;
    unsigned n_shown = 0;
    bool more_left = false;
    grpc_status_code st;
    for (bool first_page = true;; first_page = false) {
        *l->limit = want ? want - n_shown : 0;
        *l->page_token = token ? token : "";
        ProtobufCMessage *m = NULL;
        st = cli_conn_unary(c, l->method, l->req, l->resp_desc, &m);
        if (st != GRPC_STATUS_OK)
            break;
        const char *next;
        size_t n = l->entries(m, &next);
        if (first_page && !l->json)
            l->header();
        size_t i = 0;
        for (; i < n && (!want || n_shown < want); i++, n_shown++) {
            if (l->json)
                fputs(n_shown == 0 ? "[\n" : ",\n", stdout);
            l->print(l->ctx, m, i, l->json);
        }
        more_left = i < n || *next;
        free(token);
        token = *next ? strdup(next) : NULL;
        protobuf_c_message_free_unpacked(m, NULL);
        if (!more_left || (want && n_shown >= want) || !token)
            break;
    }
    free(token);
    if (l->json && st == GRPC_STATUS_OK)
        puts(n_shown ? "\n]" : "[]");
    *shown = n_shown;
    *more = more_left;
    return st;
}

int cli_list(const struct config *cfg, struct tls_client *tls, const char *auth_key,
             const struct cli_listing *l, unsigned want, unsigned *shown, bool *more)
{
    struct cli_conn c;
    if (cli_conn_open(&c, cfg, tls, auth_key) < 0)
        return 3;
    grpc_status_code st = list_pages(&c, l, want, shown, more);
    cli_conn_close(&c);
    if (fflush(stdout) != 0 || ferror(stdout))
        return 1;
    return st == GRPC_STATUS_OK ? 0 : cli_exit_status(st);
}

void cli_format_time(int64_t ms, char *buf, size_t len)
{
    if (ms <= 0) {
        snprintf(buf, len, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
