#include "rpc/client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "rpc/auth.h"
#include "rpc/codec.h"
#include "runtime/log.h"

struct call_op {
    struct bridge_tag tag;
    struct rpc_call *call;
};

struct rpc_call {
    grpc_call *call;
    int refs;
    bool released, ended, closed_send, send_pending, recv_pending;
    bool status_waits; /* the status came while a read was pending: told after that read */
    struct call_op start_op, status_op, send_op, recv_op;
    grpc_metadata auth;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
    grpc_byte_buffer *send_buf, *recv_buf;
    const struct rpc_call_handler *h;
    void *user;
};

static gpr_timespec deadline_after(uint64_t timeout_ms)
{
    if (timeout_ms == 0)
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_millis((int64_t)timeout_ms, GPR_TIMESPAN));
}

grpc_channel_args *rpc_channel_args(void)
{
    /* The worker pings every 20 s and gives a silent master 5 s; the master permits pings from
     * 10 s on (see server options), so the two never disagree into a GOAWAY. */
    static grpc_arg args[] = {
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = 20000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIMEOUT_MS, {.integer = 5000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, {.integer = 1}},
        {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, {.integer = 0}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = RPC_MAX_MESSAGE}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, {.integer = RPC_MAX_MESSAGE}},
    };
    static grpc_channel_args chargs = {sizeof(args) / sizeof(args[0]), args};
    return &chargs;
}

/* Drops n references: one for each op that ended, or the caller's. */
static void call_unref(struct rpc_call *c, int n)
{
    c->refs -= n;
    if (c->refs > 0)
        return;
    if (c->h->on_free)
        c->h->on_free(c);
    grpc_call_unref(c->call);
    grpc_slice_unref(c->auth.key);
    grpc_slice_unref(c->auth.value);
    grpc_metadata_array_destroy(&c->initial_md);
    grpc_metadata_array_destroy(&c->trailing_md);
    grpc_slice_unref(c->details);
    free(c);
}

static void start_batch(struct rpc_call *c, const grpc_op *ops, size_t n, struct call_op *op)
{
    c->refs++;
    grpc_call_error err = grpc_call_start_batch(c->call, ops, n, &op->tag, NULL);
    if (err != GRPC_CALL_OK) {
        log_error("grpc_call_start_batch failed (%d)", (int)err);
        abort();
    }
}

static void on_start_done(struct bridge_tag *tag, bool ok)
{
    call_unref(((struct call_op *)tag)->call, 1);
}

/* Tells the handler the call's status. The status op's reference is the caller's to drop. */
static void deliver_status(struct rpc_call *c)
{
    if (!c->released && c->h->on_status) {
        char *details = grpc_slice_to_c_string(c->details);
        c->h->on_status(c, c->status, details);
        gpr_free(details);
    }
}

/* The completion queue may hand over the status before a pending read that gRPC answers with
 * the call's last message: the handler gets every message first, then the status. */
static void on_status(struct bridge_tag *tag, bool ok)
{
    struct rpc_call *c = ((struct call_op *)tag)->call;
    c->ended = true;
    if (c->recv_pending) {
        c->status_waits = true;
        return;
    }
    deliver_status(c);
    call_unref(c, 1);
}

static void on_sent(struct bridge_tag *tag, bool ok)
{
    struct rpc_call *c = ((struct call_op *)tag)->call;
    c->send_pending = false;
    if (c->send_buf)
        grpc_byte_buffer_destroy(c->send_buf);
    c->send_buf = NULL;
    if (!c->released && c->h->on_sent)
        c->h->on_sent(c, ok);
    call_unref(c, 1);
}

static void on_recv(struct bridge_tag *tag, bool ok)
{
    struct rpc_call *c = ((struct call_op *)tag)->call;
    /* Taken out first: the handler may start the next read into the same field. */
    grpc_byte_buffer *msg = c->recv_buf;
    c->recv_buf = NULL;
    c->recv_pending = false;
    if (!c->released && c->h->on_message)
        c->h->on_message(c, ok ? msg : NULL);
    if (msg)
        grpc_byte_buffer_destroy(msg);
    int ended = 1; /* the read; and the status op, when its status waited for this read */
    if (c->status_waits && !c->recv_pending) { /* the handler read no further */
        c->status_waits = false;
        deliver_status(c);
        ended = 2;
    }
    call_unref(c, ended);
}

struct rpc_call *rpc_call_start(struct bridge *br, grpc_channel *ch, const char *method,
                                const char *auth_key, uint64_t timeout_ms,
                                const struct rpc_call_handler *h, void *user)
{
    struct rpc_call *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->h = h;
    c->user = user;
    c->refs = 1;
    c->start_op = (struct call_op){{on_start_done}, c};
    c->status_op = (struct call_op){{on_status}, c};
    c->send_op = (struct call_op){{on_sent}, c};
    c->recv_op = (struct call_op){{on_recv}, c};
    c->details = grpc_empty_slice();
    grpc_metadata_array_init(&c->initial_md);
    grpc_metadata_array_init(&c->trailing_md);
    c->auth.key = grpc_slice_from_static_string(AUTH_METADATA_KEY);
    c->auth.value = grpc_slice_from_copied_string(auth_key ? auth_key : "");

    grpc_slice path = grpc_slice_from_static_string(method);
    c->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, bridge_cq(br), path, NULL,
                                       deadline_after(timeout_ms), NULL);

    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_INITIAL_METADATA;
    op.data.send_initial_metadata.count = auth_key ? 1 : 0;
    op.data.send_initial_metadata.metadata = &c->auth;
    start_batch(c, &op, 1, &c->start_op);

    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[0].data.recv_initial_metadata.recv_initial_metadata = &c->initial_md;
    ops[1].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[1].data.recv_status_on_client.trailing_metadata = &c->trailing_md;
    ops[1].data.recv_status_on_client.status = &c->status;
    ops[1].data.recv_status_on_client.status_details = &c->details;
    start_batch(c, ops, 2, &c->status_op);
    return c;
}

void *rpc_call_user(const struct rpc_call *c)
{
    return c->user;
}

static int write_message(struct rpc_call *c, grpc_byte_buffer *msg, bool last)
{
    if (c->ended || c->closed_send || c->send_pending) {
        grpc_byte_buffer_destroy(msg);
        return c->send_pending ? -EBUSY : -ESHUTDOWN;
    }
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_MESSAGE;
    ops[0].data.send_message.send_message = msg;
    ops[1].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    c->send_buf = msg;
    c->send_pending = true;
    c->closed_send = last;
    start_batch(c, ops, last ? 2 : 1, &c->send_op);
    return 0;
}

int rpc_call_write(struct rpc_call *c, grpc_byte_buffer *msg)
{
    return write_message(c, msg, false);
}

int rpc_call_write_last(struct rpc_call *c, grpc_byte_buffer *msg)
{
    return write_message(c, msg, true);
}

int rpc_call_close_send(struct rpc_call *c)
{
    if (c->closed_send || c->ended)
        return -ESHUTDOWN;
    if (c->send_pending)
        return -EBUSY;
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    c->closed_send = true;
    c->send_pending = true;
    start_batch(c, &op, 1, &c->send_op);
    return 0;
}

int rpc_call_read(struct rpc_call *c)
{
    if (c->recv_pending)
        return -EBUSY;
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv_buf;
    c->recv_pending = true;
    start_batch(c, &op, 1, &c->recv_op);
    return 0;
}

bool rpc_call_write_pending(const struct rpc_call *c)
{
    return c->send_pending;
}

void rpc_call_cancel(struct rpc_call *c)
{
    if (!c->ended)
        grpc_call_cancel(c->call, NULL);
}

void rpc_call_release(struct rpc_call *c)
{
    c->released = true;
    rpc_call_cancel(c);
    call_unref(c, 1);
}

struct rpc_unary {
    struct bridge_tag tag;
    grpc_call *call;
    grpc_metadata auth;
    grpc_byte_buffer *req, *resp;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
    rpc_unary_cb cb;
    void *user;
};

static void on_unary_done(struct bridge_tag *tag, bool ok)
{
    struct rpc_unary *u = (struct rpc_unary *)tag;
    char *details = grpc_slice_to_c_string(u->details);
    grpc_status_code st = ok ? u->status : GRPC_STATUS_UNAVAILABLE;
    /* A server may end a call OK without a message; a unary caller can use none of that. */
    if (st == GRPC_STATUS_OK && !u->resp)
        st = GRPC_STATUS_INTERNAL;
    u->cb(u->user, st, details, st == GRPC_STATUS_OK ? u->resp : NULL);
    gpr_free(details);
    grpc_call_unref(u->call);
    grpc_byte_buffer_destroy(u->req);
    if (u->resp)
        grpc_byte_buffer_destroy(u->resp);
    grpc_slice_unref(u->auth.value);
    grpc_metadata_array_destroy(&u->initial_md);
    grpc_metadata_array_destroy(&u->trailing_md);
    grpc_slice_unref(u->details);
    free(u);
}

struct rpc_unary *rpc_unary(struct bridge *br, grpc_channel *ch, const char *method,
                            const char *auth_key, uint64_t timeout_ms, const ProtobufCMessage *req,
                            rpc_unary_cb cb, void *user)
{
    struct rpc_unary *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    if (!(u->req = codec_pack(req))) {
        free(u);
        return NULL;
    }
    u->tag.done = on_unary_done;
    u->cb = cb;
    u->user = user;
    u->details = grpc_empty_slice();
    u->auth.key = grpc_slice_from_static_string(AUTH_METADATA_KEY);
    u->auth.value = grpc_slice_from_copied_string(auth_key ? auth_key : "");
    grpc_metadata_array_init(&u->initial_md);
    grpc_metadata_array_init(&u->trailing_md);
    grpc_slice path = grpc_slice_from_static_string(method);
    u->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, bridge_cq(br), path, NULL,
                                       deadline_after(timeout_ms), NULL);
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = auth_key ? 1 : 0;
    ops[0].data.send_initial_metadata.metadata = &u->auth;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = u->req;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &u->initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &u->resp;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &u->trailing_md;
    ops[5].data.recv_status_on_client.status = &u->status;
    ops[5].data.recv_status_on_client.status_details = &u->details;
    grpc_call_error err = grpc_call_start_batch(u->call, ops, 6, &u->tag, NULL);
    if (err != GRPC_CALL_OK) {
        log_error("grpc_call_start_batch failed (%d) on %s", (int)err, method);
        abort();
    }
    return u;
}

void rpc_unary_cancel(struct rpc_unary *u)
{
    grpc_call_cancel(u->call, NULL);
}
