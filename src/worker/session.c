#include "worker/session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>

#include "net/dialer.h"
#include "resilience/retry.h"
#include "rpc/client.h"
#include "rpc/codec.h"
#include "runtime/log.h"
#include "services/node_service.pb-c.h"
#include "version.h"

#define DIAL_TIMEOUT_MS  5000
#define UNARY_TIMEOUT_MS 5000

enum state { S_IDLE, S_WAITING, S_DIALING, S_REGISTERING, S_DATA_DIALING, S_ONLINE, S_STOPPED };

static const char *const state_names[] = {
    "idle",   "waiting to retry", "dialing", "registering", "dialing the data connection",
    "online", "stopped"};

struct session {
    struct ev_loop *loop;
    struct bridge *bridge;
    const struct config *cfg;
    struct session_identity id;
    struct session_hooks hooks;
    void *ctx;
    /* Per master of cfg->masters: its address as gRPC names it, and the last failure logged. */
    struct master_slot {
        char target[300];
        char last_error[256];
    } masters[LIMIT_MASTERS_MAX];
    int registered_with; /* the index of the master we were last online with, -1 before that */

    enum state state;
    struct retry_policy_state retry;
    ev_timer retry_timer;
    ev_timer heartbeat_timer;
    ev_timer watchdog; /* the master writes on Subscribe every interval; silence means trouble */
    struct dial *dial;

    /* The control connection (register, heartbeat, subscribe, fetch, status) and the data
     * connection (log and result streams), so that a log flood never delays a heartbeat. */
    grpc_channel *channel, *data_channel;
    grpc_channel_credentials *creds;
    /* Our duplicates of the channels' sockets: shutdown(2) on them kills a connection at once. */
    int shadow_fd, data_shadow_fd;
    unsigned gen;
    struct rpc_call *subscribe;
    bool heartbeat_pending;
};

/* Per-call context: which session and which connection the call belongs to. */
struct call_ctx {
    struct session *s;
    unsigned gen;
};

static uint64_t now_ms(struct session *s)
{
    return (uint64_t)(ev_now(s->loop) * 1000.0);
}

static void set_state(struct session *s, enum state st)
{
    if (s->state == st)
        return;
    log_debug("session: %s -> %s", state_names[s->state], state_names[st]);
    s->state = st;
}

/* The master the retry policy says to dial, or the one we are connected to. */
static const struct config_master *master(const struct session *s)
{
    return &s->cfg->masters[retry_target(&s->retry)];
}

static struct master_slot *slot(struct session *s)
{
    return &s->masters[retry_target(&s->retry)];
}

/* Failures are logged when they change, per master, so a long outage is a few lines, not
 * thousands. */
static void note_failure(struct session *s, const char *what)
{
    struct master_slot *m = slot(s);
    /* Kept and compared as far as last_error holds: a longer message that repeats is a repeat. */
    int keep = (int)sizeof(m->last_error) - 1;
    if (strncmp(m->last_error, what, (size_t)keep) != 0) {
        log_warn("master %s: %s", m->target, what);
        snprintf(m->last_error, sizeof(m->last_error), "%.*s", keep, what);
    } else {
        log_debug("master %s: %s", m->target, what);
    }
}

static void try_connect(struct session *s);

static void schedule_retry(struct session *s)
{
    uint64_t now = now_ms(s);
    uint64_t at = retry_on_failure(&s->retry, now);
    double delay = (double)(at - now) / 1000.0;
    if (s->retry.breaker.state == BREAKER_OPEN && delay >= 1.0)
        log_debug("breaker open: next attempt in %.1f s", delay);
    if (s->cfg->n_masters > 1)
        log_debug("next attempt: the master %s in %.3f s", slot(s)->target, delay);
    set_state(s, S_WAITING);
    ev_timer_set(&s->retry_timer, delay, 0.0);
    ev_timer_start(s->loop, &s->retry_timer);
}

static void kill_channel(grpc_channel **ch, int *shadow_fd)
{
    if (*shadow_fd >= 0) {
        shutdown(*shadow_fd, SHUT_RDWR);
        close(*shadow_fd);
        *shadow_fd = -1;
    }
    if (*ch) {
        grpc_channel_destroy(*ch);
        *ch = NULL;
    }
}

/* Drops the channels: every call on them fails at once, and their completions are ignored. */
static void teardown(struct session *s)
{
    bool was_online = s->state == S_ONLINE;
    ev_timer_stop(s->loop, &s->heartbeat_timer);
    ev_timer_stop(s->loop, &s->watchdog);
    if (s->dial) {
        dial_cancel(s->dial);
        s->dial = NULL;
    }
    s->gen++;
    if (s->subscribe) {
        rpc_call_release(s->subscribe);
        s->subscribe = NULL;
    }
    kill_channel(&s->channel, &s->shadow_fd);
    kill_channel(&s->data_channel, &s->data_shadow_fd);
    s->heartbeat_pending = false;
    if (was_online && s->hooks.on_offline)
        s->hooks.on_offline(s->ctx);
}

static void connection_lost(struct session *s, const char *why)
{
    if (s->state == S_STOPPED)
        return;
    bool was_online = s->state == S_ONLINE;
    if (was_online)
        log_warn("lost the connection to the master %s: %s", slot(s)->target, why);
    else
        note_failure(s, why);
    teardown(s);
    schedule_retry(s);
    if (was_online && s->cfg->n_masters > 1)
        log_info("moving to the master %s", slot(s)->target);
}

void session_connection_failed(struct session *s, unsigned generation, const char *why)
{
    if (generation == s->gen)
        connection_lost(s, why);
}

static struct call_ctx *call_ctx_new(struct session *s)
{
    struct call_ctx *c = malloc(sizeof(*c));
    if (c)
        *c = (struct call_ctx){s, s->gen};
    return c;
}

/* ---- heartbeats ---- */

static void on_heartbeat_done(void *user, grpc_status_code st, const char *details,
                              grpc_byte_buffer *resp)
{
    struct call_ctx *c = user;
    struct session *s = c->s;
    bool current = c->gen == s->gen;
    free(c);
    if (!current)
        return;
    s->heartbeat_pending = false;
    if (st != GRPC_STATUS_OK) {
        char why[300];
        snprintf(why, sizeof(why), "heartbeat failed: %s (status %d)", details, (int)st);
        connection_lost(s, why);
    }
}

static void send_heartbeat(struct session *s, grpc_channel *channel)
{
    if (s->heartbeat_pending)
        return; /* the previous one is still out; its deadline decides */
    Grpc__NodeServiceSendHeartbeatRequest req = GRPC__NODE_SERVICE_SEND_HEARTBEAT_REQUEST__INIT;
    req.node_key = (char *)s->id.node_key;
    req.running = s->hooks.running ? s->hooks.running(s->ctx) : 0;
    struct call_ctx *c = call_ctx_new(s);
    if (!c)
        return;
    s->heartbeat_pending = true;
    rpc_unary(s->bridge, channel, "/grpc.NodeService/SendHeartbeat", s->id.auth_key,
              UNARY_TIMEOUT_MS, &req.base, on_heartbeat_done, c);
}

static void on_heartbeat_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct session *s = w->data;
    send_heartbeat(s, s->channel);
}

static void on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    connection_lost(w->data, "no message from the master for 3 heartbeat intervals");
}

/* ---- Subscribe ---- */

static void sub_on_message(struct rpc_call *call, grpc_byte_buffer *msg)
{
    struct call_ctx *c = rpc_call_user(call);
    struct session *s = c->s;
    if (c->gen != s->gen)
        return;
    if (!msg)
        return; /* the stream ended; on_status follows and decides */
    ProtobufCMessage *m = NULL;
    if (codec_unpack(msg, &grpc__node_service_subscribe_response__descriptor, &m) < 0) {
        connection_lost(s, "malformed message on the node stream");
        return;
    }
    Grpc__NodeServiceSubscribeResponse *r = (Grpc__NodeServiceSubscribeResponse *)m;
    int code = r->code;
    ev_timer_again(s->loop, &s->watchdog);
    rpc_call_read(call);
    if (code == GRPC__NODE_SERVICE_SUBSCRIBE_CODE__TASK_AVAILABLE && r->task && r->epoch &&
        s->hooks.on_task_pushed) {
        s->hooks.on_task_pushed(s->ctx, r); /* takes m */
        return;
    }
    if (code == GRPC__NODE_SERVICE_SUBSCRIBE_CODE__CANCEL && s->hooks.on_cancel)
        s->hooks.on_cancel(s->ctx, r->task_id, r->force);
    protobuf_c_message_free_unpacked(m, NULL);
    switch (code) {
    case GRPC__NODE_SERVICE_SUBSCRIBE_CODE__CANCEL:
        break;
    case GRPC__NODE_SERVICE_SUBSCRIBE_CODE__HEARTBEAT:
        break;
    case GRPC__NODE_SERVICE_SUBSCRIBE_CODE__TASK_AVAILABLE:
        if (s->hooks.on_task_available)
            s->hooks.on_task_available(s->ctx);
        break;
    case GRPC__NODE_SERVICE_SUBSCRIBE_CODE__DRAIN:
        log_info("master asked to drain: no new tasks until it comes back");
        if (s->hooks.on_drain)
            s->hooks.on_drain(s->ctx);
        break;
    default:
        log_debug("ignoring unknown node stream code %d", code);
    }
}

static void sub_on_status(struct rpc_call *call, grpc_status_code st, const char *details)
{
    struct call_ctx *c = rpc_call_user(call);
    struct session *s = c->s;
    if (c->gen != s->gen)
        return;
    char why[300];
    snprintf(why, sizeof(why), "node stream ended: %s (status %d)", details, (int)st);
    connection_lost(s, why);
}

static void sub_on_free(struct rpc_call *call)
{
    free(rpc_call_user(call));
}

static const struct rpc_call_handler subscribe_handler = {
    .on_message = sub_on_message,
    .on_status = sub_on_status,
    .on_free = sub_on_free,
};

static int start_subscribe(struct session *s)
{
    struct call_ctx *c = call_ctx_new(s);
    if (!c)
        return -ENOMEM;
    s->subscribe = rpc_call_start(s->bridge, s->channel, "/grpc.NodeService/Subscribe",
                                  s->id.auth_key, 0, &subscribe_handler, c);
    if (!s->subscribe) {
        free(c);
        return -ENOMEM;
    }
    Grpc__NodeServiceSubscribeRequest req = GRPC__NODE_SERVICE_SUBSCRIBE_REQUEST__INIT;
    req.node_key = (char *)s->id.node_key;
    rpc_call_write_last(s->subscribe, codec_pack(&req.base));
    rpc_call_read(s->subscribe);
    return 0;
}

/* ---- Register ---- */

static void on_data_dialed(void *ctx, int fd, int err, const char *errmsg);

static void on_registered(void *user, grpc_status_code st, const char *details,
                          grpc_byte_buffer *resp)
{
    struct call_ctx *c = user;
    struct session *s = c->s;
    bool current = c->gen == s->gen;
    free(c);
    if (!current)
        return;
    if (st != GRPC_STATUS_OK) {
        char why[300];
        if (st == GRPC_STATUS_UNAUTHENTICATED)
            snprintf(why, sizeof(why),
                     "registration refused: UNAUTHENTICATED (wrong or missing auth key)");
        else if (st == GRPC_STATUS_PERMISSION_DENIED)
            snprintf(why, sizeof(why), "registration refused: PERMISSION_DENIED: %s (status %d)",
                     details, (int)st);
        else if (st == GRPC_STATUS_ALREADY_EXISTS)
            snprintf(why, sizeof(why),
                     "registration refused: ALREADY_EXISTS (node key %s is connected from "
                     "another machine)",
                     s->id.node_key);
        else
            snprintf(why, sizeof(why), "registration failed: %s (status %d)", details, (int)st);
        connection_lost(s, why);
        return;
    }
    if (start_subscribe(s) < 0) {
        connection_lost(s, "out of memory");
        return;
    }
    set_state(s, S_DATA_DIALING);
    if (dial_start(s->loop, s->id.tls, master(s)->host, master(s)->port, DIAL_TIMEOUT_MS,
                   on_data_dialed, s, &s->dial) < 0)
        connection_lost(s, "cannot start dialing: out of memory");
}

static void on_data_dialed(void *ctx, int fd, int err, const char *errmsg)
{
    struct session *s = ctx;
    s->dial = NULL;
    if (fd < 0) {
        char why[300];
        snprintf(why, sizeof(why), "cannot open the data connection: %s",
                 errmsg ? errmsg : strerror(-err));
        connection_lost(s, why);
        return;
    }
    s->data_shadow_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    struct master_slot *m = slot(s);
    s->data_channel = grpc_channel_create_from_fd(m->target, fd, s->creds, rpc_channel_args());
    retry_on_success(&s->retry, now_ms(s));
    m->last_error[0] = '\0';
    set_state(s, S_ONLINE);
    int was = s->registered_with;
    s->registered_with = (int)retry_target(&s->retry);
    if (was >= 0 && was != s->registered_with)
        log_info("registered with the master %s as node %s (%s), moved from the master %s",
                 m->target, s->id.node_key, s->id.node_name, s->masters[was].target);
    else
        log_info("registered with the master %s as node %s (%s)", m->target, s->id.node_key,
                 s->id.node_name);
    double every = (double)s->cfg->heartbeat_interval_ms / 1000.0;
    ev_timer_set(&s->heartbeat_timer, every, every);
    ev_timer_start(s->loop, &s->heartbeat_timer);
    s->watchdog.repeat = 3 * every + (double)UNARY_TIMEOUT_MS / 1000.0;
    ev_timer_again(s->loop, &s->watchdog);
    /* The master closes a connection that makes no call with the key in time (--auth-timeout),
     * and the data connection may carry no stream for long: a first heartbeat goes over it. */
    send_heartbeat(s, s->data_channel);
    if (s->hooks.on_online)
        s->hooks.on_online(s->ctx);
}

static void on_dialed(void *ctx, int fd, int err, const char *errmsg)
{
    struct session *s = ctx;
    s->dial = NULL;
    if (fd < 0) {
        char why[300];
        snprintf(why, sizeof(why), "cannot connect: %s", errmsg ? errmsg : strerror(-err));
        note_failure(s, why);
        schedule_retry(s);
        return;
    }
    s->shadow_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    s->channel = grpc_channel_create_from_fd(slot(s)->target, fd, s->creds, rpc_channel_args());
    set_state(s, S_REGISTERING);

    Grpc__NodeServiceRegisterRequest req = GRPC__NODE_SERVICE_REGISTER_REQUEST__INIT;
    req.node_key = (char *)s->id.node_key;
    req.node_name = (char *)s->id.node_name;
    req.max_runners = s->id.max_runners;
    req.version = (char *)CRAWLAB_VERSION;
    req.machine_id = (char *)s->id.machine_id;
    req.containment = (char *)(s->id.containment ? s->id.containment : "");
    req.claims = true;               /* worker/jobs.c claims every task it fetches (core/fence.h) */
    req.takes_pushed_tasks = true;   /* and starts a pushed one at once (jobs_on_task_pushed) */
    req.takes_pushed_cancels = true; /* its cancel then comes here too (jobs_on_cancel) */
    req.labels = s->cfg->labels;
    req.n_labels = s->cfg->n_labels;
    struct call_ctx *c = call_ctx_new(s);
    if (!c) {
        connection_lost(s, "out of memory");
        return;
    }
    rpc_unary(s->bridge, s->channel, "/grpc.NodeService/Register", s->id.auth_key, UNARY_TIMEOUT_MS,
              &req.base, on_registered, c);
}

static void try_connect(struct session *s)
{
    uint64_t now = now_ms(s);
    if (!retry_allow(&s->retry, now)) {
        /* Only the breaker says no; wait until it lets a probe through. */
        uint64_t at = breaker_open_until(&s->retry.breaker);
        set_state(s, S_WAITING);
        ev_timer_set(&s->retry_timer, at > now ? (double)(at - now) / 1000.0 : 0.01, 0.0);
        ev_timer_start(s->loop, &s->retry_timer);
        return;
    }
    set_state(s, S_DIALING);
    int rc = dial_start(s->loop, s->id.tls, master(s)->host, master(s)->port, DIAL_TIMEOUT_MS,
                        on_dialed, s, &s->dial);
    if (rc < 0) {
        note_failure(s, "cannot start dialing: out of memory");
        schedule_retry(s);
    }
}

static void on_retry_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    try_connect(w->data);
}

int session_create(struct ev_loop *loop, struct bridge *br, const struct config *cfg,
                   const struct session_identity *id, const struct session_hooks *hooks, void *ctx,
                   struct session **out)
{
    struct session *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->loop = loop;
    s->bridge = br;
    s->cfg = cfg;
    s->id = *id;
    s->hooks = *hooks;
    s->ctx = ctx;
    s->shadow_fd = s->data_shadow_fd = -1;
    s->creds = grpc_insecure_credentials_create();
    for (size_t i = 0; i < cfg->n_masters; i++) {
        const struct config_master *m = &cfg->masters[i];
        snprintf(s->masters[i].target, sizeof(s->masters[i].target),
                 strchr(m->host, ':') ? "[%s]:%d" : "%s:%d", m->host, m->port);
    }
    s->registered_with = -1;
    uint64_t seed = (uint64_t)getpid() ^ ((uint64_t)(ev_time() * 1e6) << 16);
    retry_init_capped(&s->retry, seed, cfg->reconnect_max_ms);
    retry_set_targets(&s->retry, (unsigned)cfg->n_masters);
    ev_timer_init(&s->retry_timer, on_retry_timer, 0.0, 0.0);
    s->retry_timer.data = s;
    ev_timer_init(&s->heartbeat_timer, on_heartbeat_timer, 0.0, 0.0);
    s->heartbeat_timer.data = s;
    ev_init(&s->watchdog, on_watchdog);
    s->watchdog.data = s;
    *out = s;
    return 0;
}

void session_start(struct session *s)
{
    if (s->cfg->n_masters > 1)
        log_info("connecting to the master %s (first of %zu, tried in turn)", slot(s)->target,
                 s->cfg->n_masters);
    else
        log_info("connecting to the master %s", slot(s)->target);
    try_connect(s);
}

void session_stop(struct session *s)
{
    if (s->state == S_STOPPED)
        return;
    ev_timer_stop(s->loop, &s->retry_timer);
    s->hooks.on_offline = NULL;
    teardown(s);
    set_state(s, S_STOPPED);
}

void session_destroy(struct session *s)
{
    if (!s)
        return;
    session_stop(s);
    grpc_channel_credentials_release(s->creds);
    free(s);
}

bool session_online(const struct session *s)
{
    return s->state == S_ONLINE;
}

grpc_channel *session_channel(const struct session *s)
{
    return s->state == S_ONLINE ? s->channel : NULL;
}

grpc_channel *session_data_channel(const struct session *s)
{
    return s->state == S_ONLINE ? s->data_channel : NULL;
}

bool session_data_ready(const struct session *s)
{
    /* gRPC keeps no connectivity state for a channel made from a descriptor: the socket itself
     * tells (a peer that closed or reset it, a pump that ended its end of the pair). */
    if (s->state != S_ONLINE || s->data_shadow_fd < 0)
        return false;
    struct pollfd p = {.fd = s->data_shadow_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) >= 0 && !(p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

struct bridge *session_bridge(const struct session *s)
{
    return s->bridge;
}

const char *session_auth_key(const struct session *s)
{
    return s->id.auth_key;
}

unsigned session_generation(const struct session *s)
{
    return s->gen;
}
