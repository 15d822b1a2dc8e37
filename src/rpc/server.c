#include "rpc/server.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/string_util.h>
#include <grpc/support/time.h>

#include "rpc/auth.h"
#include "rpc/codec.h"
#include "rpc/validate.h"
#include "runtime/log.h"
#include "runtime/ratelimit.h"

/*
 * Generic requests kept outstanding, so a burst of new calls never waits for a re-arm. Enough: a
 * call gRPC cannot match with a request waits in its own queue, unbounded and unseen, where the
 * bridge's backpressure cannot count it; a matched one is a completion, which it does. Not more:
 * Debian's gRPC is built with its debug checks, and every completion scans the queue's list of
 * outstanding tags, slots included (measured: 1024 slots cost 8 % of the master's instructions
 * per task; the rapid-reset floods of test_floods grew the master by 2 and 22 MB with 256, by 6
 * and 39 MB with 1024).
 */
#define REQUEST_SLOTS 256
/*
 * Requests kept outstanding for each of the workers' unary methods. gRPC matches those calls to
 * their method's requests and reads the request message with the call, so a heartbeat or a fetch
 * comes out of the queue as one completion instead of two (the call, then its message).
 */
#define METHOD_SLOTS 32
#define MAX_METHODS  32
/* How often first-call deadlines are checked, and records of closed connections dropped: those not
 * authenticated on every sweep, the others (most of them, and many) on every
 * SWEEP_TRUSTED_EVERY-th, each connection on its own turn, so that a large fleet costs no fstat()
 * per connection a second.
 */
#define SWEEP_INTERVAL_S    1.0
#define SWEEP_TRUSTED_EVERY 16
/* The request headers gRPC takes per call, in bytes. */
#define RPC_MAX_METADATA (8 * 1024)
/*
 * A connection's receive buffer (SO_RCVBUF, which the kernel doubles) until its first authenticated
 * call, and from then on. gRPC reads a TCP socket until the kernel says it is empty: from a peer
 * not trusted yet it gets this little per turn, and its pollers come back to the bridge between
 * turns, where they wait while the loop is behind (runtime/bridge.h).
 */
#define RCVBUF_UNTRUSTED (16 * 1024)
#define RCVBUF_TRUSTED   (4 * 1024 * 1024)
/* A shutdown looks this often whether its calls are over and their answers delivered (see
 * rpc_server_shutdown), and waits for the delivery this long at most. */
#define QUIET_POLL_S    0.005
#define DELIVERY_WAIT_S 5.0

enum method_kind { METHOD_UNARY, METHOD_STREAM };

struct method {
    const char *path;
    size_t path_len;
    enum method_kind kind;
    const ProtobufCMessageDescriptor *req;
    validate_fn validate; /* of req, run before the method */
    void *registered;     /* gRPC's handle when its calls come with their request (METHOD_SLOTS) */
    srv_unary_fn unary;
    srv_stream_fn stream;
    void *ctx;
    enum role role; /* who may call it */
};

/*
 * A connection handed to the server. gRPC names a call's connection only as "fd:N", so records
 * are found by fd in the server's table; the socket's identity (device and inode) tells whether
 * the fd still is that connection's socket, since gRPC closes it on its own.
 */
struct srv_conn {
    struct rpc_server *server;
    int fd;
    dev_t dev;
    ino_t ino;
    char *addr, *cert_cn;
    enum cert_role cert_role;
    int refs;             /* the server's table, and each call tied to the connection */
    bool closing;         /* shut down by us: its calls are dropped unanswered */
    bool authenticated;   /* a call passed the auth check */
    double added_at;      /* loop time */
    struct tokens budget; /* of wasted calls (loop time) */
    unsigned long started, wasted;
};

/*
 * The thread that hands sockets to gRPC. grpc_server_add_channel_from_fd() starts reading the
 * socket on the thread that calls it and goes on while the peer keeps it full: on the loop, a
 * flooding peer held the loop there for seconds, where it could not see the flood's calls and
 * close the connection (a worker went offline). The loop queues, this thread makes the call.
 */
struct adder {
    pthread_t thread;
    bool started;
    grpc_server *server;
    grpc_server_credentials *creds;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int *fds; /* guarded by lock, like the three below */
    size_t len, cap;
    bool stop;
};

struct request_slot {
    struct bridge_tag tag;
    struct rpc_server *server;
    const struct method *method; /* a registered method's slot; NULL: any method */
    grpc_call *call;
    grpc_call_details details; /* any method's slot */
    gpr_timespec deadline;     /* a registered method's slot, like the two below */
    grpc_byte_buffer *payload; /* the request, or NULL when the call came without one */
    grpc_metadata_array metadata;
};

struct rpc_server {
    grpc_server *server;
    grpc_server_credentials *creds;
    struct bridge *bridge;
    char *auth_key, *admin_key; /* both NULL: no authentication */
    struct method methods[MAX_METHODS];
    size_t n_methods;
    struct request_slot slots[REQUEST_SLOTS];
    struct request_slot *method_slots; /* METHOD_SLOTS per registered method */
    size_t n_method_slots;
    bool shutting_down;

    struct ev_loop *loop;

    /* Shutdown state. */
    struct bridge_tag shutdown_tag;
    ev_timer shutdown_timer;
    ev_timer quiet_timer;    /* until gRPC's shutdown begins */
    bool calls_over;         /* no call was open at the last check, nor since */
    double calls_over_at;    /* loop time of that check */
    size_t delivery_scan;    /* connections below this fd had everything at that time */
    bool grpc_shutting_down; /* grpc_server_shutdown_and_notify() was called */
    unsigned slots_armed;
    bool shutdown_notified;
    void (*shutdown_done)(void *ctx);
    void *shutdown_ctx;

    struct rpc_server_hooks hooks;
    size_t live_calls;  /* srv_call objects not yet freed */
    size_t turned_away; /* of those, the ones refused because the server is shutting down */
    bool destroyed;     /* the gRPC server is gone; the last call frees this struct */
    struct srv_call *held_head, *held_tail; /* finished calls whose replies wait */

    struct adder adder;
    struct srv_conn **conns; /* by the fd handed to gRPC */
    size_t conns_cap;
    ev_timer sweep;
    unsigned long sweeps;   /* run so far */
    double auth_deadline_s; /* 0: none */
    bool peer_certs;        /* see rpc_server_options */

    /* Refusals and closed connections are logged at most once a second per kind, with the
     * number suppressed. */
    struct ratelimit refusals, over_budget, no_auth;
    uint64_t auth_refused; /* calls refused for their secret or role, for metrics */
};

struct call_op {
    struct bridge_tag tag;
    struct srv_call *call;
};

struct srv_call {
    struct rpc_server *server;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array metadata;
    const struct method *method;

    struct call_op close_op, recv_op, send_op, status_op;
    grpc_byte_buffer *request; /* read with the call (a registered method), until dispatched */
    grpc_byte_buffer *recv_buf;
    grpc_byte_buffer *send_buf;
    grpc_byte_buffer *status_buf;
    grpc_slice status_details;
    grpc_status_code status;
    int close_cancelled;
    int refs;
    bool recv_pending, send_pending;
    bool headers_sent;     /* initial metadata went out, and the wait for the call's end began */
    bool finished;         /* the handler has called finish */
    bool unheld;           /* its reply goes at once, held replies or not (srv_call_reply_now) */
    bool status_queued;    /* finish waits for a pending write */
    bool wasted;           /* charged to its connection's budget already */
    bool turned_away;      /* refused because the server is shutting down */
    struct srv_conn *conn; /* NULL when gRPC did not say which */

    const struct srv_handler *handler;
    void *user;
    struct srv_call *held_next;
};

static void arm_slot(struct request_slot *slot);
static void finish_shutdown(struct rpc_server *s);

/* ---- handing sockets to gRPC ---- */

static void *adder_main(void *arg)
{
    struct adder *a = arg;
    pthread_mutex_lock(&a->lock);
    while (!a->stop) {
        if (a->len == 0) {
            pthread_cond_wait(&a->wake, &a->lock);
            continue;
        }
        int fd = a->fds[0];
        memmove(a->fds, a->fds + 1, --a->len * sizeof(*a->fds));
        pthread_mutex_unlock(&a->lock);
        grpc_server_add_channel_from_fd(a->server, fd, a->creds);
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

static int adder_start(struct adder *a, grpc_server *server, grpc_server_credentials *creds)
{
    a->server = server;
    a->creds = creds;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->wake, NULL);
    int rc = pthread_create(&a->thread, NULL, adder_main, a);
    a->started = rc == 0;
    if (rc != 0) {
        pthread_cond_destroy(&a->wake);
        pthread_mutex_destroy(&a->lock);
    }
    return -rc;
}

/* Queues fd for gRPC. 0, or -ENOMEM (fd stays the caller's). */
static int adder_push(struct adder *a, int fd)
{
    int rc = 0;
    pthread_mutex_lock(&a->lock);
    if (a->len == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 16;
        int *fds = realloc(a->fds, cap * sizeof(*fds));
        if (fds) {
            a->fds = fds;
            a->cap = cap;
        }
    }
    if (a->len < a->cap) {
        a->fds[a->len++] = fd;
        pthread_cond_signal(&a->wake);
    } else {
        rc = -ENOMEM;
    }
    pthread_mutex_unlock(&a->lock);
    return rc;
}

/* Stops the thread once its current call returned; sockets still queued are closed. */
static void adder_stop(struct adder *a)
{
    if (!a->started)
        return;
    pthread_mutex_lock(&a->lock);
    a->stop = true;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->lock);
    pthread_join(a->thread, NULL);
    a->started = false;
    for (size_t i = 0; i < a->len; i++)
        close(a->fds[i]);
    free(a->fds);
    a->fds = NULL;
    a->len = a->cap = 0;
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->lock);
}

/* ---- connections ---- */

static void conn_free(struct srv_conn *k)
{
    free(k->addr);
    free(k->cert_cn);
    free(k);
}

static void conn_unref(struct srv_conn *k)
{
    if (--k->refs == 0)
        conn_free(k);
}

/* Whether k->fd still is the connection's socket: gRPC closes it without telling us. */
static bool conn_open(const struct srv_conn *k)
{
    struct stat st;
    return fstat(k->fd, &st) == 0 && st.st_dev == k->dev && st.st_ino == k->ino;
}

/* Whether the connection ends anyway: the peer closed its side, or the socket failed. */
static bool conn_ending(const struct srv_conn *k)
{
    struct pollfd p = {.fd = k->fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static void conn_set_rcvbuf(const struct srv_conn *k, int bytes)
{
    setsockopt(k->fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}

/* The first call with the key (or any call without authentication): the peer is trusted. */
static void conn_authenticated(struct srv_conn *k)
{
    if (k->authenticated)
        return;
    k->authenticated = true;
    conn_set_rcvbuf(k, RCVBUF_TRUSTED);
}

/* Drops the table's reference to the record of fd. */
static void conn_forget(struct rpc_server *s, size_t fd)
{
    struct srv_conn *k = s->conns[fd];
    s->conns[fd] = NULL;
    conn_unref(k);
}

/*
 * Shuts the connection down (gRPC sees its socket end and tears the transport down); its calls
 * still queued are dropped unanswered. One line names the peer and why, at most once a second
 * per kind. A connection already ending or closed gets neither: it is not worth a line.
 */
static void conn_shut(struct srv_conn *k, struct ratelimit *rl, const char *why)
{
    k->closing = true;
    if (!conn_open(k) || conn_ending(k))
        return;
    shutdown(k->fd, SHUT_RDWR);
    unsigned held;
    if (!ratelimit_pass(rl, ev_now(k->server->loop), &held))
        return;
    if (held)
        log_warn("closed the connection from %s after %lu calls: %s (%u more closed for this "
                 "since the last such line)",
                 k->addr, k->started, why, held);
    else
        log_warn("closed the connection from %s after %lu calls: %s", k->addr, k->started, why);
}

/* Charges one wasted call to the connection's token bucket; overdrawing it closes the
 * connection. */
static void conn_charge(struct srv_conn *k)
{
    struct rpc_server *s = k->server;
    bool within =
        tokens_take(&k->budget, ev_now(s->loop), RPC_CONN_WASTE_BURST, RPC_CONN_WASTE_PER_S);
    k->wasted++;
    if (!within && !k->closing) {
        char why[160];
        snprintf(why, sizeof(why),
                 "%lu of them refused or cancelled before an answer, over the budget (%d at "
                 "once, %.0f a second)",
                 k->wasted, RPC_CONN_WASTE_BURST, RPC_CONN_WASTE_PER_S);
        conn_shut(k, &s->over_budget, why);
    }
}

/* Forgets connections that gRPC closed; closes those past their first-call deadline. */
static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct rpc_server *s = w->data;
    double now = ev_now(loop);
    s->sweeps++;
    for (size_t fd = 0; fd < s->conns_cap; fd++) {
        struct srv_conn *k = s->conns[fd];
        if (!k || (k->authenticated && (fd + s->sweeps) % SWEEP_TRUSTED_EVERY != 0))
            continue;
        if (!conn_open(k)) {
            conn_forget(s, fd);
        } else if (s->auth_deadline_s > 0 && !k->authenticated && !k->closing &&
                   now - k->added_at >= s->auth_deadline_s) {
            char why[96];
            snprintf(why, sizeof(why), "no authenticated call within %.1f s", s->auth_deadline_s);
            conn_shut(k, &s->no_auth, why);
        }
    }
}

/* The record of the connection a new call came on, from gRPC's name for it ("fd:N"); NULL when
 * there is none. Read at once: gRPC forgets the name when the call is cancelled. */
static struct srv_conn *conn_of_call(struct rpc_server *s, grpc_call *call)
{
    char *peer = grpc_call_get_peer(call);
    char *end = NULL;
    long fd = peer && strncmp(peer, "fd:", 3) == 0 ? strtol(peer + 3, &end, 10) : -1;
    bool known = end && *end == '\0' && fd >= 0 && (size_t)fd < s->conns_cap;
    gpr_free(peer);
    return known ? s->conns[fd] : NULL;
}

/* Makes room in the table for fd. 0 or -ENOMEM. */
static int table_fit(struct rpc_server *s, int fd)
{
    if ((size_t)fd < s->conns_cap)
        return 0;
    size_t cap = s->conns_cap ? s->conns_cap : 64;
    while (cap <= (size_t)fd)
        cap *= 2;
    struct srv_conn **conns = realloc(s->conns, cap * sizeof(*conns));
    if (!conns)
        return -ENOMEM;
    memset(conns + s->conns_cap, 0, (cap - s->conns_cap) * sizeof(*conns));
    s->conns = conns;
    s->conns_cap = cap;
    return 0;
}

static struct srv_conn *conn_new(struct rpc_server *s, int fd, const struct stat *st,
                                 const struct rpc_peer *peer)
{
    struct srv_conn *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    k->addr = strdup(peer->addr ? peer->addr : "?");
    k->cert_cn = peer->cert_cn ? strdup(peer->cert_cn) : NULL;
    k->cert_role = peer->cert_role;
    if (!k->addr || (peer->cert_cn && !k->cert_cn)) {
        conn_free(k);
        return NULL;
    }
    k->server = s;
    k->fd = fd;
    k->dev = st->st_dev;
    k->ino = st->st_ino;
    k->refs = 1;
    k->added_at = ev_now(s->loop);
    return k;
}

int rpc_server_add_conn(struct rpc_server *s, int fd, const struct rpc_peer *peer)
{
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : table_fit(s, fd);
    struct srv_conn *k = rc == 0 ? conn_new(s, fd, &st, peer) : NULL;
    if (!k) {
        close(fd);
        return rc < 0 ? rc : -ENOMEM;
    }
    /* A record left for this fd belongs to a connection gRPC closed since. */
    if (s->conns[fd])
        conn_forget(s, (size_t)fd);
    conn_set_rcvbuf(k, RCVBUF_UNTRUSTED);
    if ((rc = adder_push(&s->adder, fd)) < 0) {
        conn_free(k);
        close(fd);
        return rc;
    }
    s->conns[fd] = k;
    return 0;
}

/* ---- calls ---- */

static void call_unref(struct srv_call *c)
{
    if (--c->refs > 0)
        return;
    if (c->handler && c->handler->on_free)
        c->handler->on_free(c);
    grpc_call_unref(c->call);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->metadata);
    if (c->status_buf)
        grpc_byte_buffer_destroy(c->status_buf);
    if (c->request)
        grpc_byte_buffer_destroy(c->request);
    grpc_slice_unref(c->status_details);
    if (c->conn)
        conn_unref(c->conn);
    struct rpc_server *s = c->server;
    if (c->turned_away)
        s->turned_away--;
    free(c);
    /* Handlers may finish their calls after the gRPC server is gone (at shutdown); our struct
     * lives until the last of them. */
    if (--s->live_calls == 0 && s->destroyed)
        free(s);
}

static void start_batch(struct srv_call *c, const grpc_op *ops, size_t n, struct call_op *op)
{
    c->refs++;
    grpc_call_error err = grpc_call_start_batch(c->call, ops, n, &op->tag, NULL);
    if (err != GRPC_CALL_OK) {
        /* Only a programming error gets here (an op already pending, a bad flag). */
        log_error("grpc_call_start_batch failed (%d) on %s", (int)err, srv_call_method(c));
        abort();
    }
}

/* The call cost work and served nothing: it draws on its connection's budget, once. */
static void call_waste(struct srv_call *c)
{
    if (c->wasted)
        return;
    c->wasted = true;
    if (c->conn)
        conn_charge(c->conn);
}

static void on_close(struct bridge_tag *tag, bool ok)
{
    struct srv_call *c = ((struct call_op *)tag)->call;
    if (c->close_cancelled)
        call_waste(c);
    if (!c->finished && c->handler && c->handler->on_done)
        c->handler->on_done(c, c->close_cancelled != 0);
    call_unref(c);
}

static void on_recv(struct bridge_tag *tag, bool ok)
{
    struct srv_call *c = ((struct call_op *)tag)->call;
    /* Taken out first: the handler may start the next read, which gRPC can fill in at once from
     * another thread, into the same field. */
    grpc_byte_buffer *msg = c->recv_buf;
    c->recv_buf = NULL;
    c->recv_pending = false;
    if (!c->finished && c->handler && c->handler->on_message)
        c->handler->on_message(c, ok ? msg : NULL);
    if (msg)
        grpc_byte_buffer_destroy(msg);
    call_unref(c);
}

/*
 * The last batch of a call. A stream sent its initial metadata when it began; a unary call sends
 * it here, with the answer and the wait for the call's end: one write and one completion for the
 * whole reply.
 */
static void send_status(struct srv_call *c)
{
    grpc_op ops[4];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    struct call_op *tag = &c->status_op;
    if (!c->headers_sent) {
        c->headers_sent = true;
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n++].data.recv_close_on_server.cancelled = &c->close_cancelled;
        tag = &c->close_op;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = c->status;
    ops[n].data.send_status_from_server.status_details = &c->status_details;
    n++;
    if (c->status_buf) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->status_buf;
        n++;
    }
    start_batch(c, ops, n, tag);
}

static void on_sent(struct bridge_tag *tag, bool ok)
{
    struct srv_call *c = ((struct call_op *)tag)->call;
    c->send_pending = false;
    grpc_byte_buffer_destroy(c->send_buf);
    c->send_buf = NULL;
    if (c->status_queued) {
        c->status_queued = false;
        send_status(c);
    } else if (!c->finished && c->handler && c->handler->on_sent) {
        c->handler->on_sent(c, ok);
    }
    call_unref(c);
}

static void on_status_sent(struct bridge_tag *tag, bool ok)
{
    call_unref(((struct call_op *)tag)->call);
}

void srv_call_bind(struct srv_call *c, const struct srv_handler *h, void *user)
{
    c->handler = h;
    c->user = user;
}

void *srv_call_user(const struct srv_call *c)
{
    return c->user;
}

const char *srv_call_peer(const struct srv_call *c)
{
    return c->conn ? c->conn->addr : "?";
}

const char *srv_call_cert_cn(const struct srv_call *c)
{
    return c->conn ? c->conn->cert_cn : NULL;
}

const char *srv_call_method(const struct srv_call *c)
{
    return c->method ? c->method->path : "(unknown method)";
}

int srv_call_read(struct srv_call *c)
{
    if (c->finished)
        return -ESHUTDOWN;
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

int srv_call_write(struct srv_call *c, grpc_byte_buffer *msg)
{
    if (c->finished || c->send_pending) {
        grpc_byte_buffer_destroy(msg);
        return c->finished ? -ESHUTDOWN : -EBUSY;
    }
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = msg;
    c->send_buf = msg;
    c->send_pending = true;
    start_batch(c, &op, 1, &c->send_op);
    return 0;
}

bool srv_call_write_pending(const struct srv_call *c)
{
    return c->send_pending;
}

/* Sends the status (after a pending write, which it may not overtake) and drops the handler's
 * reference. */
static void deliver_status(struct srv_call *c)
{
    if (c->send_pending)
        c->status_queued = true;
    else
        send_status(c);
    call_unref(c);
}

void srv_call_finish(struct srv_call *c, grpc_status_code status, const char *details,
                     grpc_byte_buffer *msg)
{
    if (c->finished) {
        if (msg)
            grpc_byte_buffer_destroy(msg);
        return;
    }
    c->finished = true;
    c->status = status;
    c->status_buf = msg;
    grpc_slice_unref(c->status_details);
    c->status_details = grpc_slice_from_copied_string(details ? details : "");
    struct rpc_server *s = c->server;
    if (!c->unheld && !s->destroyed && s->hooks.hold && s->hooks.hold(s->hooks.ctx)) {
        /* What the reply confirms is not durable yet: it waits for rpc_server_release_replies. */
        c->held_next = NULL;
        if (s->held_tail)
            s->held_tail->held_next = c;
        else
            s->held_head = c;
        s->held_tail = c;
        return;
    }
    deliver_status(c);
}

void rpc_server_set_hooks(struct rpc_server *s, const struct rpc_server_hooks *h)
{
    s->hooks = *h;
}

bool rpc_server_holding(const struct rpc_server *s)
{
    return s->held_head != NULL;
}

struct srv_call *rpc_server_take_replies(struct rpc_server *s)
{
    struct srv_call *c = s->held_head;
    s->held_head = s->held_tail = NULL;
    return c;
}

void rpc_server_release_replies(struct rpc_server *s, bool durable)
{
    rpc_server_send_replies(rpc_server_take_replies(s), durable);
}

void rpc_server_send_replies(struct srv_call *c, bool durable)
{
    while (c) {
        struct srv_call *next = c->held_next;
        if (!durable && c->status == GRPC_STATUS_OK) {
            /* The change it confirms was rolled back: the caller must try again. */
            c->status = GRPC_STATUS_UNAVAILABLE;
            grpc_slice_unref(c->status_details);
            c->status_details = grpc_slice_from_static_string("could not store the change; retry");
            if (c->status_buf)
                grpc_byte_buffer_destroy(c->status_buf);
            c->status_buf = NULL;
        }
        deliver_status(c);
        c = next;
    }
}

void srv_call_reply(struct srv_call *c, const ProtobufCMessage *resp)
{
    grpc_byte_buffer *bb = codec_pack(resp);
    if (!bb) {
        srv_call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
        return;
    }
    srv_call_finish(c, GRPC_STATUS_OK, NULL, bb);
}

void srv_call_reply_now(struct srv_call *c, const ProtobufCMessage *resp)
{
    c->unheld = true;
    srv_call_reply(c, resp);
}

void srv_call_fail(struct srv_call *c, grpc_status_code status, const char *details)
{
    srv_call_finish(c, status, details, NULL);
}

/* A refused call: charged to its connection, and logged with its peer at most once a second. */
static void note_refusal(struct srv_call *c, const char *what)
{
    call_waste(c);
    unsigned held;
    if (!ratelimit_pass(&c->server->refusals, ev_now(c->server->loop), &held))
        return;
    if (held)
        log_warn("%s: %s from %s (%u similar refusals held back since the last such line)",
                 srv_call_method(c), what, srv_call_peer(c), held);
    else
        log_warn("%s: %s from %s", srv_call_method(c), what, srv_call_peer(c));
}

/* Decodes and validates one request; a refusal is logged here, the caller finishes the call. */
static int decode(struct srv_call *c, grpc_byte_buffer *msg, const ProtobufCMessageDescriptor *d,
                  validate_fn validate, ProtobufCMessage **out, const char **why)
{
    if (!msg) {
        /* The peer half-closed without a request, or went away: nothing worth a log line. */
        *why = "request message missing";
        return -EINVAL;
    }
    ProtobufCMessage *req = NULL;
    int rc = codec_unpack(msg, d, &req);
    if (rc < 0) {
        note_refusal(c, rc == -EMSGSIZE ? "oversized request" : "malformed request");
        *why = rc == -EMSGSIZE ? "request too large" : "malformed request";
        return rc;
    }
    rc = validate(req, why);
    if (rc < 0) {
        char what[192];
        snprintf(what, sizeof(what), "invalid request (%s)", *why);
        note_refusal(c, what);
        protobuf_c_message_free_unpacked(req, NULL);
        return rc;
    }
    *out = req;
    return 0;
}

int srv_call_decode(struct srv_call *c, grpc_byte_buffer *msg, const ProtobufCMessageDescriptor *d,
                    ProtobufCMessage **out, const char **why)
{
    validate_fn validate = validate_lookup(d);
    if (!validate) {
        log_error("%s: no validator for %s", srv_call_method(c), d->name);
        *why = "request type not implemented";
        return -ENOSYS;
    }
    return decode(c, msg, d, validate, out, why);
}

/* The unary framework: read the one request, decode and validate it, hand it to the method. */
static void unary_on_message(struct srv_call *c, grpc_byte_buffer *msg)
{
    ProtobufCMessage *req = NULL;
    const char *why = NULL;
    int rc = decode(c, msg, c->method->req, c->method->validate, &req, &why);
    if (rc < 0) {
        srv_call_fail(c, codec_status_from_errno(rc), why);
        return;
    }
    c->handler = NULL; /* from here on the method owns the call */
    struct rpc_server *s = c->server;
    if (s->hooks.before_unary)
        s->hooks.before_unary(s->hooks.ctx);
    c->method->unary(c, c->method->ctx, req);
    protobuf_c_message_free_unpacked(req, NULL);
}

/* No on_done: a unary call waits for its end only in its last batch, when it has answered. */
static const struct srv_handler unary_handler = {
    .on_message = unary_on_message,
};

static const struct method *find_method(struct rpc_server *s, grpc_slice path)
{
    size_t len = GRPC_SLICE_LENGTH(path);
    const uint8_t *p = GRPC_SLICE_START_PTR(path);
    for (size_t i = 0; i < s->n_methods; i++) {
        if (s->methods[i].path_len == len && memcmp(s->methods[i].path, p, len) == 0)
            return &s->methods[i];
    }
    return NULL;
}

/*
 * Answers a call that goes no further (unknown method, wrong key, shutting down) with the one last
 * batch of send_status(). Refusals are what a flood is made of, so they cost one completion and
 * nothing is held for the group commit.
 */
static void refuse(struct srv_call *c, grpc_status_code status, const char *details)
{
    c->finished = true;
    c->status = status;
    grpc_slice_unref(c->status_details);
    c->status_details = grpc_slice_from_static_string(details);
    send_status(c);
    call_unref(c); /* the handler's reference: there is no handler */
}

static void dispatch(struct srv_call *c)
{
    struct rpc_server *s = c->server;
    if (!c->method)
        c->method = find_method(s, c->details.method);
    if (!c->method) {
        if (log_enabled(LOG_DEBUG)) {
            char *name = grpc_slice_to_c_string(c->details.method);
            log_debug("unimplemented method %s from %s", name, srv_call_peer(c));
            gpr_free(name);
        }
        call_waste(c);
        refuse(c, GRPC_STATUS_UNIMPLEMENTED, "method not implemented");
        return;
    }
    /* Without keys (--insecure-no-auth) every secret passes; a certificate is still judged. */
    unsigned secret = s->auth_key ? auth_metadata_roles(&c->metadata, s->auth_key, s->admin_key)
                                  : (unsigned)ROLE_ALL;
    /* A call not tied to its connection has no known certificate: with certificates about, it
     * is judged as one whose role cannot be read. */
    enum cert_role cert = c->conn         ? c->conn->cert_role
                          : s->peer_certs ? CERT_ROLE_INVALID
                                          : CERT_ROLE_ABSENT;
    enum role_verdict v = role_check(c->method->role, secret, cert);
    if (v != ROLE_OK) {
        const char *why = role_verdict_reason(v, c->method->role);
        note_refusal(c, why);
        s->auth_refused++;
        refuse(c, v == ROLE_NO_SECRET ? GRPC_STATUS_UNAUTHENTICATED : GRPC_STATUS_PERMISSION_DENIED,
               why);
        return;
    }
    if (c->conn)
        conn_authenticated(c->conn);
    if (s->shutting_down) {
        c->turned_away = true;
        s->turned_away++;
        refuse(c, GRPC_STATUS_UNAVAILABLE, "master is shutting down");
        return;
    }
    if (c->method->kind == METHOD_UNARY) {
        /* Its headers go with the answer (send_status). */
        srv_call_bind(c, &unary_handler, NULL);
        if (c->method->registered) {
            grpc_byte_buffer *req = c->request;
            c->request = NULL;
            unary_on_message(c, req);
            if (req)
                grpc_byte_buffer_destroy(req);
        } else {
            srv_call_read(c);
        }
        return;
    }
    /* A stream's initial metadata goes out at once: a client keeping a stream open notices a
     * dead connection immediately only once the server has answered its headers. */
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[1].data.recv_close_on_server.cancelled = &c->close_cancelled;
    c->headers_sent = true;
    start_batch(c, ops, 2, &c->close_op);
    c->method->stream(c, c->method->ctx);
}

/* Lets go of a new call without answering it: no batch at all. */
static void drop_request(struct request_slot *slot)
{
    grpc_call_cancel(slot->call, NULL);
    grpc_call_unref(slot->call);
    grpc_call_details_destroy(&slot->details);
    grpc_metadata_array_destroy(&slot->metadata);
    if (slot->payload)
        grpc_byte_buffer_destroy(slot->payload);
}

static void on_request(struct bridge_tag *tag, bool ok)
{
    struct request_slot *slot = (struct request_slot *)tag;
    struct rpc_server *s = slot->server;
    s->slots_armed--;
    if (!ok) {
        /* The server is shutting down; the slot is not armed again. */
        grpc_call_details_destroy(&slot->details);
        grpc_metadata_array_destroy(&slot->metadata);
        if (s->shutdown_notified && s->slots_armed == 0)
            finish_shutdown(s);
        return;
    }
    struct srv_conn *k = conn_of_call(s, slot->call);
    struct srv_call *c = NULL;
    if (k && k->closing) {
        /* Queued before its connection was closed: nobody waits for an answer. */
        drop_request(slot);
    } else if (!(c = calloc(1, sizeof(*c)))) {
        log_error("out of memory accepting a call");
        drop_request(slot);
    } else {
        c->server = s;
        c->conn = k;
        if (k) {
            k->refs++;
            k->started++;
        }
        c->call = slot->call;
        c->method = slot->method;
        c->details = slot->details;
        c->metadata = slot->metadata;
        c->request = slot->payload;
        c->refs = 1;
        s->live_calls++;
        c->status_details = grpc_empty_slice();
        c->close_op = (struct call_op){{on_close}, c};
        c->recv_op = (struct call_op){{on_recv}, c};
        c->send_op = (struct call_op){{on_sent}, c};
        c->status_op = (struct call_op){{on_status_sent}, c};
    }
    if (!s->shutting_down)
        arm_slot(slot);
    if (c)
        dispatch(c);
}

static void arm_slot(struct request_slot *slot)
{
    struct rpc_server *s = slot->server;
    slot->call = NULL;
    slot->payload = NULL;
    grpc_call_details_init(&slot->details);
    grpc_metadata_array_init(&slot->metadata);
    grpc_completion_queue *cq = bridge_cq(s->bridge);
    grpc_call_error err =
        slot->method
            ? grpc_server_request_registered_call(s->server, slot->method->registered, &slot->call,
                                                  &slot->deadline, &slot->metadata, &slot->payload,
                                                  cq, cq, &slot->tag)
            : grpc_server_request_call(s->server, &slot->call, &slot->details, &slot->metadata, cq,
                                       cq, &slot->tag);
    if (err != GRPC_CALL_OK) {
        log_error("requesting a call from gRPC failed (%d)", (int)err);
        grpc_call_details_destroy(&slot->details);
        grpc_metadata_array_destroy(&slot->metadata);
        return;
    }
    s->slots_armed++;
}

int rpc_server_create(struct bridge *br, const struct rpc_server_options *opt,
                      struct rpc_server **out)
{
    struct rpc_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->bridge = br;
    s->loop = bridge_loop(br);
    s->auth_deadline_s = (double)opt->auth_deadline_ms / 1000.0;
    s->peer_certs = opt->peer_certs;
    ev_timer_init(&s->sweep, on_sweep, SWEEP_INTERVAL_S, SWEEP_INTERVAL_S);
    s->sweep.data = s;
    if ((opt->auth_key && !(s->auth_key = strdup(opt->auth_key))) ||
        (opt->admin_key && !(s->admin_key = strdup(opt->admin_key)))) {
        free(s->auth_key);
        free(s);
        return -ENOMEM;
    }
    grpc_arg args[] = {
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = opt->keepalive_time_ms}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIMEOUT_MS, {.integer = opt->keepalive_timeout_ms}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, {.integer = 1}},
        {GRPC_ARG_INTEGER,
         GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
         {.integer = opt->min_client_ping_ms}},
        /* A client pinging more often than that (ours ping every 20 s) gets GOAWAY at the third
         * ping too early: a ping flood ends the connection instead of costing a write each. */
        {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_MAX_PING_STRIKES, {.integer = 2}},
        /* Request headers are small (path, auth key, a few more): what a peer can make the
         * server decode and keep per call stays small too. */
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_METADATA_SIZE, {.integer = RPC_MAX_METADATA}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = RPC_MAX_MESSAGE}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, {.integer = RPC_MAX_MESSAGE}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_CONCURRENT_STREAMS, {.integer = opt->max_streams_per_conn}},
        /* A worker's log stream should not stall on HTTP/2 flow control between messages: let
         * a few whole messages be in flight before the next read is posted. */
        {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, {.integer = 4 * RPC_MAX_MESSAGE}},
    };
    grpc_channel_args chargs = {sizeof(args) / sizeof(args[0]), args};
    s->server = grpc_server_create(&chargs, NULL);
    s->creds = grpc_insecure_server_credentials_create();
    grpc_server_register_completion_queue(s->server, bridge_cq(br), NULL);
    *out = s;
    return 0;
}

static void add_method(struct rpc_server *s, const struct method *m)
{
    if (s->n_methods == MAX_METHODS) {
        log_error("too many methods registered");
        abort();
    }
    if (m->role != ROLE_NODE && m->role != ROLE_ADMIN) {
        /* A programming error: every method says who may call it. */
        log_error("%s: no role", m->path);
        abort();
    }
    s->methods[s->n_methods] = *m;
    s->methods[s->n_methods].path_len = strlen(m->path);
    s->n_methods++;
}

void rpc_server_add_unary(struct rpc_server *s, const char *path, enum role role,
                          const ProtobufCMessageDescriptor *req, srv_unary_fn fn, void *ctx)
{
    validate_fn validate = validate_lookup(req);
    if (!validate) {
        /* A programming error: every request type the server takes has its validator. */
        log_error("%s: no validator for %s", path, req->name);
        abort();
    }
    /* The workers' methods are the ones called all the time: their requests come with the call.
     * Registering is only possible before the server starts, which is when methods are added. */
    void *registered =
        role == ROLE_NODE ? grpc_server_register_method(
                                s->server, path, NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0)
                          : NULL;
    add_method(s, &(struct method){.path = path,
                                   .kind = METHOD_UNARY,
                                   .req = req,
                                   .validate = validate,
                                   .registered = registered,
                                   .unary = fn,
                                   .ctx = ctx,
                                   .role = role});
}

void rpc_server_add_stream(struct rpc_server *s, const char *path, enum role role, srv_stream_fn fn,
                           void *ctx)
{
    add_method(s, &(struct method){
                      .path = path, .kind = METHOD_STREAM, .stream = fn, .ctx = ctx, .role = role});
}

/* METHOD_SLOTS slots for each registered method. 0 or -ENOMEM. */
static int make_method_slots(struct rpc_server *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_methods; i++)
        n += s->methods[i].registered ? METHOD_SLOTS : 0;
    if (n && !(s->method_slots = calloc(n, sizeof(*s->method_slots))))
        return -ENOMEM;
    for (size_t i = 0; i < s->n_methods; i++) {
        for (size_t k = 0; s->methods[i].registered && k < METHOD_SLOTS; k++)
            s->method_slots[s->n_method_slots++].method = &s->methods[i];
    }
    return 0;
}

static void arm_all(struct rpc_server *s, struct request_slot *slots, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        slots[i].tag.done = on_request;
        slots[i].server = s;
        arm_slot(&slots[i]);
    }
}

int rpc_server_start(struct rpc_server *s)
{
    if (make_method_slots(s) < 0)
        return -ENOMEM;
    grpc_server_start(s->server);
    if (adder_start(&s->adder, s->server, s->creds) < 0)
        return -EIO;
    ev_timer_start(s->loop, &s->sweep);
    arm_all(s, s->slots, REQUEST_SLOTS);
    arm_all(s, s->method_slots, s->n_method_slots);
    return s->slots_armed ? 0 : -EIO;
}

static void finish_shutdown(struct rpc_server *s)
{
    adder_stop(&s->adder);
    ev_timer_stop(s->loop, &s->quiet_timer);
    ev_timer_stop(s->loop, &s->shutdown_timer);
    ev_timer_stop(s->loop, &s->sweep);
    /* Calls that finished in this loop iteration may still wait for their commit, which the
     * iteration's end would have done: do it now, so that no reply confirms what is not stored. */
    if (s->held_head && s->hooks.flush)
        s->hooks.flush(s->hooks.ctx);
    if (s->held_head) {
        log_warn("shutting down with replies that wait for a commit nobody makes: they are sent as "
                 "failed, and their callers will retry");
        rpc_server_release_replies(s, false);
    }
    grpc_server_destroy(s->server);
    grpc_server_credentials_release(s->creds);
    free(s->method_slots);
    s->method_slots = NULL;
    s->n_method_slots = 0;
    void (*done)(void *) = s->shutdown_done;
    void *ctx = s->shutdown_ctx;
    free(s->auth_key);
    s->auth_key = NULL;
    free(s->admin_key);
    s->admin_key = NULL;
    /* Calls still open keep their connection's record until they are freed. */
    for (size_t fd = 0; fd < s->conns_cap; fd++) {
        if (s->conns[fd])
            conn_forget(s, fd);
    }
    free(s->conns);
    s->conns = NULL;
    s->conns_cap = 0;
    s->destroyed = true;
    if (s->live_calls == 0)
        free(s);
    if (done)
        done(ctx);
}

static void on_shutdown(struct bridge_tag *tag, bool ok)
{
    struct rpc_server *s =
        (struct rpc_server *)((char *)tag - offsetof(struct rpc_server, shutdown_tag));
    s->shutdown_notified = true;
    /* The failed requests of the slots may still be on their way: their tags point here. */
    if (s->slots_armed == 0)
        finish_shutdown(s);
}

/* gRPC's own shutdown: GOAWAY on every connection, which it closes once its streams are over. */
static void begin_grpc_shutdown(struct rpc_server *s)
{
    if (s->grpc_shutting_down)
        return;
    s->grpc_shutting_down = true;
    ev_timer_stop(s->loop, &s->quiet_timer);
    grpc_server_shutdown_and_notify(s->server, bridge_cq(s->bridge), &s->shutdown_tag);
}

static void on_shutdown_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct rpc_server *s = w->data;
    begin_grpc_shutdown(s);
    log_warn("calls still open after the shutdown grace; cancelling them");
    grpc_server_cancel_all_calls(s->server);
}

/* The bytes sent on socket fd that its peer has not acknowledged (TCP) or not read (the
 * socketpair of a TLS connection); 0 once the connection is over. */
static int unacked(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_state == TCP_CLOSE)
        return 0; /* reset: what was not acknowledged is dropped already */
    int n = 0;
    return ioctl(fd, SIOCOUTQ, &n) == 0 ? n : 0;
}

/* Whether every open connection's peer has acknowledged all it was sent. Each check goes on
 * from the connection the last one stopped at, so that a fleet's sockets are looked at once. */
static bool delivered(struct rpc_server *s)
{
    for (; s->delivery_scan < s->conns_cap; s->delivery_scan++) {
        struct srv_conn *k = s->conns[s->delivery_scan];
        if (k && conn_open(k) && unacked((int)s->delivery_scan) > 0)
            return false;
    }
    return true;
}

static void on_quiet_check(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct rpc_server *s = w->data;
    /* A call in progress may still answer, on any connection. Those turned away do not hold the
     * shutdown: a client calling without pause would hold it for the whole grace. */
    if (s->live_calls > s->turned_away) {
        s->calls_over = false;
        return;
    }
    if (!s->calls_over) {
        s->calls_over = true;
        s->calls_over_at = ev_now(loop);
        s->delivery_scan = 0;
    }
    if (delivered(s) || ev_now(loop) - s->calls_over_at >= DELIVERY_WAIT_S)
        begin_grpc_shutdown(s);
}

/*
 * Our own layer refuses new calls from now on, and gRPC's shutdown waits until the calls in
 * progress are over and what they answered has reached the peers (DELIVERY_WAIT_S at most), or
 * the grace is over. GOAWAY sooner would have gRPC end each connection as its last stream ends,
 * with shutdown(2) of both directions: a long answer still in the kernel's send queue is then
 * dropped by the first bytes the peer sends after it (a window update, a ping's answer), which
 * make the kernel reset a socket shut for reading.
 */
void rpc_server_shutdown(struct rpc_server *s, uint64_t grace_ms, void (*done)(void *ctx),
                         void *ctx)
{
    struct ev_loop *loop = s->loop;
    s->shutting_down = true;
    s->shutdown_done = done;
    s->shutdown_ctx = ctx;
    s->shutdown_tag.done = on_shutdown;
    ev_timer_init(&s->shutdown_timer, on_shutdown_timeout, (double)grace_ms / 1000.0, 0.0);
    s->shutdown_timer.data = s;
    ev_timer_start(loop, &s->shutdown_timer);
    ev_timer_init(&s->quiet_timer, on_quiet_check, 0.0, QUIET_POLL_S);
    s->quiet_timer.data = s;
    ev_timer_start(loop, &s->quiet_timer);
}

uint64_t rpc_server_auth_refused(const struct rpc_server *s)
{
    return s->auth_refused;
}
