/*
 * The simulated workers of bench/loadgen (see its header comment): each one's connection, its
 * Register, Subscribe and heartbeats, the work of its mode, the misbehaving kinds, and the
 * reconnects under resilience/retry.h. Loop thread only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/grpc_posix.h>

#include "bench/loadgen.h"
#include "core/task.h"
#include "net/dialer.h"
#include "resilience/rng.h"
#include "rpc/codec.h"
#include "services/node_service.pb-c.h"
#include "services/task_service.pb-c.h"

#define DIAL_TIMEOUT_MS   5000
#define CALL_TIMEOUT_MS   5000
#define FETCH_POLL_S      1.0
#define LOG_LINE_LEN      100
#define LOG_LINES_PER_MSG 2048
#define SEGMENT_BYTES     (4u << 20)

struct seen_task {
    struct hmap_entry e;
    char id[TASK_ID_LEN + 1];
};

/* The JSON array of LOG_LINES_PER_MSG lines every INSERT_LOGS message carries. */
static char *log_json;
static size_t log_json_len;

static uint64_t mono_ms(void)
{
    return (uint64_t)(lg_mono_s() * 1000.0);
}

static bool good(const struct worker *w)
{
    return w->kind == KIND_GOOD;
}

/* ---- what calls count ---- */

static void count_error(grpc_status_code st)
{
    lg.st.errors[(unsigned)st < N_CODES ? st : GRPC_STATUS_UNKNOWN]++;
}

/* A unary call's answer: an error, or a call of the window and its latency. */
static void record(const struct worker *w, grpc_status_code st, double t0)
{
    if (!good(w))
        return;
    if (st != GRPC_STATUS_OK) {
        count_error(st);
        return;
    }
    if (lg.phase != P_WINDOW)
        return;
    lg.st.calls++;
    if (lg.st.n_lat == lg.st.cap_lat) {
        lg.st.cap_lat = lg.st.cap_lat ? 2 * lg.st.cap_lat : 65536;
        lg.st.lat = realloc(lg.st.lat, lg.st.cap_lat * sizeof(*lg.st.lat));
        if (!lg.st.lat)
            lg_die("out of memory");
    }
    lg.st.lat[lg.st.n_lat++] = (uint32_t)((lg_mono_s() - t0) * 1e6);
}

/* ---- unary calls ---- */

typedef void (*then_fn)(struct worker *w, grpc_status_code st, grpc_byte_buffer *resp);

struct call {
    struct worker *w;
    unsigned gen;
    double t0;
    then_fn then;
};

static void on_unary(void *user, grpc_status_code st, const char *details, grpc_byte_buffer *resp)
{
    struct call c = *(struct call *)user;
    free(user);
    lg.live_calls--;
    if (c.gen != c.w->gen)
        return;
    record(c.w, st, c.t0);
    c.then(c.w, st, resp);
}

static void unary(struct worker *w, const char *method, const ProtobufCMessage *req, then_fn then)
{
    struct call *c = lg_calloc(1, sizeof(*c));
    *c = (struct call){w, w->gen, lg_mono_s(), then};
    if (!rpc_unary(lg.br, w->ch, method, lg.o.auth_key, CALL_TIMEOUT_MS, req, on_unary, c))
        lg_die("out of memory");
    lg.live_calls++;
}

/* ---- connection life ---- */

static void worker_up(struct worker *w);

static void setup_over(struct worker *w)
{
    if (w->in_setup) {
        w->in_setup = false;
        lg.in_setup--;
    }
}

static void drop_task(struct worker *w)
{
    if (!w->task[0])
        return;
    w->task[0] = '\0';
    lg.busy--;
}

/* Drops the connection: every call on it is cancelled and its completions are ignored. */
static void teardown(struct worker *w)
{
    w->gen++;
    ev_timer_stop(lg.loop, &w->hb_timer);
    ev_timer_stop(lg.loop, &w->poll_timer);
    ev_timer_stop(lg.loop, &w->junk_timer);
    if (w->dial) {
        dial_cancel(w->dial);
        w->dial = NULL;
    }
    if (w->sub) {
        rpc_call_release(w->sub);
        w->sub = NULL;
    }
    if (w->stream) {
        rpc_call_release(w->stream);
        w->stream = NULL;
    }
    if (w->ch) {
        grpc_channel_destroy(w->ch);
        w->ch = NULL;
    }
    if (w->fd >= 0) {
        ev_io_stop(lg.loop, &w->io);
        close(w->fd);
        w->fd = -1;
    }
    if (w->task[0])
        lg.st.abandoned++;
    drop_task(w);
    w->hb_pending = w->fetching = false;
    if (w->up && good(w))
        lg.online--;
    w->up = false;
}

static void schedule_retry(struct worker *w)
{
    if (lg.phase == P_DONE)
        return;
    uint64_t now = mono_ms();
    uint64_t at = retry_on_failure(&w->retry, now);
    ev_timer_set(&w->retry_timer, (double)(at - now) / 1000.0, 0.0);
    ev_timer_start(lg.loop, &w->retry_timer);
}

/* An attempt (dial, Register) failed: the next one under the retry policy. */
static void attempt_failed(struct worker *w)
{
    if (good(w))
        lg.st.failed_attempts++;
    setup_over(w);
    teardown(w);
    schedule_retry(w);
}

/* A live connection failed. The first failure of a storm starts its clock. */
static void lost(struct worker *w)
{
    if (good(w)) {
        lg.st.lost++;
        if (lg.phase == P_STORM && !w->went_down) {
            if (lg.storm_fail_at == 0)
                lg.storm_fail_at = lg_mono_s();
            w->went_down = true;
            lg.down_seen++;
        }
    }
    teardown(w);
    schedule_retry(w);
}

static void on_retry_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    fleet_connect(t->data);
}

/* ---- misbehaving: idle and garbage ---- */

static void raw_closed(struct worker *w)
{
    lg.bad.closed++;
    teardown(w);
    schedule_retry(w);
}

static void on_raw_readable(struct ev_loop *loop, ev_io *io, int revents)
{
    struct worker *w = io->data;
    char buf[4096];
    ssize_t n = read(w->fd, buf, sizeof(buf));
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
        return; /* what the master says (SETTINGS, GOAWAY) is ignored */
    raw_closed(w);
}

static void on_junk_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    uint8_t junk[512];
    size_t n = 16 + (size_t)rng_upto(&lg.rng, sizeof(junk) - 16);
    for (size_t i = 0; i < n; i++)
        junk[i] = (uint8_t)rng_next(&lg.rng);
    ssize_t sent = write(w->fd, junk, n);
    if (sent < 0 && errno != EAGAIN) {
        raw_closed(w);
        return;
    }
    if (sent > 0)
        lg.bad.junk_bytes += (uint64_t)sent;
    ev_timer_set(t, 0.1 + lg_uniform(0.9), 0.0);
    ev_timer_start(loop, t);
}

static void raw_connected(struct worker *w, int fd)
{
    w->fd = fd;
    lg.bad.connects++;
    retry_on_success(&w->retry, mono_ms());
    ev_io_init(&w->io, on_raw_readable, fd, EV_READ);
    w->io.data = w;
    ev_io_start(lg.loop, &w->io);
    if (w->kind == KIND_GARBAGE) {
        ev_timer_set(&w->junk_timer, lg_uniform(1.0), 0.0);
        ev_timer_start(lg.loop, &w->junk_timer);
    }
}

/* ---- Subscribe ---- */

static void fetch(struct worker *w);

static void sub_on_message(struct rpc_call *call, grpc_byte_buffer *msg)
{
    struct worker *w = rpc_call_user(call);
    if (!msg)
        return; /* on_status follows */
    ProtobufCMessage *m = NULL;
    if (codec_unpack(msg, &grpc__node_service_subscribe_response__descriptor, &m) < 0) {
        if (good(w))
            count_error(GRPC_STATUS_INTERNAL);
        lost(w);
        return;
    }
    int code = ((Grpc__NodeServiceSubscribeResponse *)m)->code;
    protobuf_c_message_free_unpacked(m, NULL);
    rpc_call_read(call);
    if (!good(w) || lg.phase != P_WINDOW)
        return;
    if (code == GRPC__NODE_SERVICE_SUBSCRIBE_CODE__TASK_AVAILABLE) {
        lg.st.pushes_task++;
        fetch(w);
    } else if (code == GRPC__NODE_SERVICE_SUBSCRIBE_CODE__HEARTBEAT) {
        lg.st.pushes_hb++;
    }
}

static void sub_on_sent(struct rpc_call *call, bool ok)
{
    if (ok)
        worker_up(rpc_call_user(call));
}

static void sub_on_status(struct rpc_call *call, grpc_status_code st, const char *details)
{
    struct worker *w = rpc_call_user(call);
    if (good(w))
        count_error(st);
    lost(w);
}

static void on_call_free(struct rpc_call *call)
{
    lg.live_calls--;
}

static const struct rpc_call_handler sub_handler = {
    .on_message = sub_on_message,
    .on_sent = sub_on_sent,
    .on_status = sub_on_status,
    .on_free = on_call_free,
};

static struct rpc_call *start_call(struct worker *w, const char *method,
                                   const struct rpc_call_handler *h)
{
    struct rpc_call *c = rpc_call_start(lg.br, w->ch, method, lg.o.auth_key, 0, h, w);
    if (!c)
        lg_die("out of memory");
    lg.live_calls++;
    return c;
}

/* A silent worker never reads its stream: the master's pushes pile up in flow control. */
static void start_subscribe(struct worker *w)
{
    w->sub = start_call(w, "/grpc.NodeService/Subscribe", &sub_handler);
    Grpc__NodeServiceSubscribeRequest req = GRPC__NODE_SERVICE_SUBSCRIBE_REQUEST__INIT;
    req.node_key = w->key;
    rpc_call_write_last(w->sub, codec_pack(&req.base));
    if (w->kind != KIND_SILENT)
        rpc_call_read(w->sub);
}

/* ---- Register ---- */

static void on_registered(struct worker *w, grpc_status_code st, grpc_byte_buffer *resp)
{
    if (w->kind == KIND_RECONNECT) {
        /* Answered or refused, it starts again at once: no backoff. */
        setup_over(w);
        if (st == GRPC_STATUS_OK)
            lg.bad.registers++;
        else
            lg.bad.refused++;
        teardown(w);
        fleet_connect(w);
        return;
    }
    if (st != GRPC_STATUS_OK) {
        attempt_failed(w);
        return;
    }
    w->registered = true;
    start_subscribe(w);
}

static void send_register(struct worker *w)
{
    Grpc__NodeServiceRegisterRequest req = GRPC__NODE_SERVICE_REGISTER_REQUEST__INIT;
    req.node_key = w->key;
    req.node_name = w->name;
    req.max_runners = 8;
    req.version = "loadgen";
    req.machine_id = w->machine_id;
    req.claims = true;
    unary(w, "/grpc.NodeService/Register", &req.base, on_registered);
}

static void on_dialed(void *ctx, int fd, int err, const char *errmsg)
{
    struct worker *w = ctx;
    w->dial = NULL;
    if (fd < 0) {
        attempt_failed(w);
        return;
    }
    if (w->kind == KIND_IDLE || w->kind == KIND_GARBAGE) {
        setup_over(w);
        raw_connected(w, fd);
        return;
    }
    w->ch = grpc_channel_create_from_fd(lg.target, fd, lg.creds, rpc_channel_args());
    send_register(w);
}

/* A connection from the worker's own source address (--misbehave-source), to a master on this
 * machine: the connect completes at once on loopback, or fails; its end is reported as a dial's. */
static void connect_from(struct worker *w)
{
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(w->source)};
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)lg.o.port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int err = fd < 0 ? errno : 0;
    if (!err && inet_pton(AF_INET, lg.o.host, &dst.sin_addr) != 1)
        err = EINVAL;
    if (!err && (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
                 connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0))
        err = errno;
    if (!err && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
        err = errno;
    if (err && fd >= 0)
        close(fd);
    on_dialed(w, err ? -1 : fd, err, err ? strerror(err) : NULL);
}

void fleet_connect(struct worker *w)
{
    uint64_t now = mono_ms();
    if (!retry_allow(&w->retry, now)) {
        uint64_t at = breaker_open_until(&w->retry.breaker);
        ev_timer_set(&w->retry_timer, at > now ? (double)(at - now) / 1000.0 : 0.01, 0.0);
        ev_timer_start(lg.loop, &w->retry_timer);
        return;
    }
    if (w->source) {
        connect_from(w);
        return;
    }
    if (dial_start(lg.loop, NULL, lg.o.host, lg.o.port, DIAL_TIMEOUT_MS, on_dialed, w, &w->dial) <
        0)
        lg_die("out of memory");
}

/* ---- heartbeats ---- */

static void on_heartbeat(struct worker *w, grpc_status_code st, grpc_byte_buffer *resp)
{
    w->hb_pending = false;
    if (st != GRPC_STATUS_OK)
        lost(w);
}

static void send_heartbeat(struct worker *w, then_fn then)
{
    Grpc__NodeServiceSendHeartbeatRequest req = GRPC__NODE_SERVICE_SEND_HEARTBEAT_REQUEST__INIT;
    req.node_key = w->key;
    req.running = w->task[0] != '\0';
    unary(w, "/grpc.NodeService/SendHeartbeat", &req.base, then);
}

static void on_hb_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    if (w->hb_pending)
        return; /* the previous one is still out; its deadline decides */
    w->hb_pending = true;
    send_heartbeat(w, on_heartbeat);
}

/* --mode=heartbeat, closed loop: each answer sends the next call. */
static void on_loop_heartbeat(struct worker *w, grpc_status_code st, grpc_byte_buffer *resp)
{
    if (st != GRPC_STATUS_OK)
        lost(w);
    else if (lg.phase == P_WINDOW)
        send_heartbeat(w, on_loop_heartbeat);
}

static void on_paced_heartbeat(struct worker *w, grpc_status_code st, grpc_byte_buffer *resp)
{
    if (st != GRPC_STATUS_OK)
        lost(w);
}

/* --rate: the calls due by now, open loop, round robin over the workers that are up. */
void fleet_on_pace(struct ev_loop *loop, ev_timer *t, int revents)
{
    uint64_t due = (uint64_t)(lg.o.rate * (lg_mono_s() - lg.t_start));
    for (; lg.paced < due; lg.paced++) {
        struct worker *w = NULL;
        for (int tries = 0; tries < lg.n_good && !w; tries++) {
            lg.rr = (lg.rr + 1) % lg.n_good;
            if (lg.w[lg.rr].up)
                w = &lg.w[lg.rr];
        }
        if (!w)
            return;
        send_heartbeat(w, on_paced_heartbeat);
    }
}

/* ---- dispatch and logs: one task at a time ---- */

static void start_segment(struct worker *w);

static void report(struct worker *w, enum task_status status, then_fn then)
{
    Grpc__TaskState state = GRPC__TASK_STATE__INIT;
    state.task_id = w->task;
    state.status = (char *)task_status_name(status);
    state.error = "";
    state.epoch = w->epoch;
    state.log_lines = w->seq;
    Grpc__TaskServiceReportStatusRequest req = GRPC__TASK_SERVICE_REPORT_STATUS_REQUEST__INIT;
    req.node_key = w->key;
    req.state = &state;
    unary(w, "/grpc.TaskService/ReportStatus", &req.base, then);
}

static void on_finished(struct worker *w, grpc_status_code st, grpc_byte_buffer *resp)
{
    if (st == GRPC_STATUS_OK)
        lg.st.tasks++;
    else
        lg.st.abandoned++;
    drop_task(w);
    fetch(w);
}

static void on_claimed(struct worker *w, grpc_status_code st, grpc_byte_buffer *resp)
{
    if (st != GRPC_STATUS_OK) {
        lg.st.abandoned++;
        drop_task(w);
        fetch(w);
    } else if (lg.o.mode == MODE_LOGS) {
        start_segment(w);
    } else {
        report(w, TASK_FINISHED, on_finished);
    }
}

/* A task id seen twice anywhere in the fleet is a duplicate dispatch. */
static void note_task(const char *id)
{
    if (hmap_get(&lg.seen, id)) {
        lg.st.duplicates++;
        return;
    }
    struct seen_task *t = lg_calloc(1, sizeof(*t));
    snprintf(t->id, sizeof(t->id), "%s", id);
    t->e.key = t->id;
    if (hmap_put(&lg.seen, &t->e) < 0)
        lg_die("out of memory");
}

static void on_fetched(struct worker *w, grpc_status_code st, grpc_byte_buffer *resp)
{
    w->fetching = false;
    ProtobufCMessage *m = NULL;
    if (st != GRPC_STATUS_OK ||
        codec_unpack(resp, &grpc__task_service_fetch_task_response__descriptor, &m) < 0) {
        lost(w);
        return;
    }
    const Grpc__TaskServiceFetchTaskResponse *r = (const void *)m;
    if (task_id_valid(r->task_id) && strcmp(r->task_id, "000000000000000000000000") != 0) {
        note_task(r->task_id);
        snprintf(w->task, sizeof(w->task), "%s", r->task_id);
        w->epoch = r->epoch;
        w->seq = 0;
        lg.busy++;
        report(w, TASK_RUNNING, on_claimed);
    }
    protobuf_c_message_free_unpacked(m, NULL);
}

static void fetch(struct worker *w)
{
    if (!w->up || w->fetching || w->task[0] || lg.phase != P_WINDOW ||
        (lg.o.mode != MODE_DISPATCH && lg.o.mode != MODE_LOGS))
        return;
    w->fetching = true;
    Grpc__TaskServiceFetchTaskRequest req = GRPC__TASK_SERVICE_FETCH_TASK_REQUEST__INIT;
    req.node_key = w->key;
    unary(w, "/grpc.TaskService/FetchTask", &req.base, on_fetched);
}

static void on_poll_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    fetch(t->data);
}

static int make_log_json(void)
{
    size_t cap = 2 + (size_t)LOG_LINES_PER_MSG * (LOG_LINE_LEN + 3);
    char *p = log_json = calloc(1, cap + 1);
    if (!p)
        return -ENOMEM;
    *p++ = '[';
    for (int i = 0; i < LOG_LINES_PER_MSG; i++) {
        if (i)
            *p++ = ',';
        *p++ = '"';
        int n = sprintf(p, "loadgen line %06d ", i);
        memset(p + n, 'x', (size_t)(LOG_LINE_LEN - n));
        p += LOG_LINE_LEN;
        *p++ = '"';
    }
    *p++ = ']';
    log_json_len = (size_t)(p - log_json);
    return 0;
}

/* The next message of the segment, or its half-close once it is full or the window is over. */
static void send_logs(struct worker *w)
{
    if (lg.phase != P_WINDOW || w->seg_bytes >= SEGMENT_BYTES) {
        w->closing = true;
        rpc_call_close_send(w->stream);
        rpc_call_read(w->stream);
        return;
    }
    Grpc__TaskServiceConnectRequest req = GRPC__TASK_SERVICE_CONNECT_REQUEST__INIT;
    req.code = GRPC__TASK_SERVICE_CONNECT_CODE__INSERT_LOGS;
    req.task_id = w->task;
    req.data.data = (uint8_t *)log_json;
    req.data.len = log_json_len;
    req.seq = w->seq + 1;
    req.epoch = w->epoch;
    w->seq += LOG_LINES_PER_MSG;
    w->seg_bytes += log_json_len;
    rpc_call_write(w->stream, codec_pack(&req.base));
}

static void stream_on_sent(struct rpc_call *call, bool ok)
{
    struct worker *w = rpc_call_user(call);
    if (ok && !w->closing)
        send_logs(w);
}

/* The segment's answer: OK means its lines are stored. */
static void stream_on_status(struct rpc_call *call, grpc_status_code st, const char *details)
{
    struct worker *w = rpc_call_user(call);
    rpc_call_release(call);
    w->stream = NULL;
    if (st != GRPC_STATUS_OK) {
        count_error(st);
        lost(w);
        return;
    }
    lg.st.acked_bytes += w->seg_bytes;
    lg.t_last_ack = lg_mono_s();
    if (lg.phase == P_WINDOW)
        start_segment(w);
    else
        report(w, TASK_FINISHED, on_finished);
}

static const struct rpc_call_handler stream_handler = {
    .on_sent = stream_on_sent,
    .on_status = stream_on_status,
    .on_free = on_call_free,
};

static void start_segment(struct worker *w)
{
    w->stream = start_call(w, "/grpc.TaskService/Connect", &stream_handler);
    w->seg_bytes = 0;
    w->closing = false;
    send_logs(w);
}

/* ---- a worker up: registered, Subscribe open ---- */

/* What the mode adds to a worker that is up once the window is open. */
void fleet_start_work(struct worker *w)
{
    if (lg.o.mode == MODE_HEARTBEAT && lg.o.rate == 0) {
        for (int k = 0; k < lg.o.callers; k++)
            send_heartbeat(w, on_loop_heartbeat);
    } else if (lg.o.mode == MODE_DISPATCH || lg.o.mode == MODE_LOGS) {
        ev_timer_set(&w->poll_timer, FETCH_POLL_S, FETCH_POLL_S);
        ev_timer_start(lg.loop, &w->poll_timer);
        fetch(w);
    }
}

static void worker_up(struct worker *w)
{
    w->up = true;
    setup_over(w);
    retry_on_success(&w->retry, mono_ms());
    double every = lg.o.interval;
    ev_timer_set(&w->hb_timer, lg_uniform(every), every);
    ev_timer_start(lg.loop, &w->hb_timer);
    if (!good(w))
        return;
    lg.online++;
    if (lg.phase == P_STORM && w->went_down)
        w->back_at = lg_mono_s();
    if (lg.phase == P_WINDOW)
        fleet_start_work(w);
}

/* ---- the fleet ---- */

static void init_worker(struct worker *w, int i, uint64_t tag)
{
    w->kind = i < lg.n_good ? KIND_GOOD : (enum kind)lg.o.bad_kind;
    w->fd = -1;
    if (w->kind != KIND_GOOD && lg.o.bad_source)
        w->source = lg.o.bad_source + (uint32_t)(i - lg.n_good);
    int n = lg.o.first + i;
    snprintf(w->key, sizeof(w->key), "lg-%d", n);
    snprintf(w->name, sizeof(w->name), "loadgen-%d", n);
    snprintf(w->machine_id, sizeof(w->machine_id), "lg-%016" PRIx64 "-%d", tag, n);
    retry_init(&w->retry, rng_next(&lg.rng));
    ev_timer_init(&w->retry_timer, on_retry_timer, 0, 0);
    ev_timer_init(&w->hb_timer, on_hb_timer, 0, 0);
    ev_timer_init(&w->poll_timer, on_poll_timer, 0, 0);
    ev_timer_init(&w->junk_timer, on_junk_timer, 0, 0);
    w->retry_timer.data = w->hb_timer.data = w->poll_timer.data = w->junk_timer.data = w;
}

int fleet_init(void)
{
    int n_bad = (int)(lg.o.misbehave * lg.o.workers + 0.5);
    lg.n_good = lg.o.workers - n_bad;
    if (!(lg.w = calloc((size_t)lg.o.workers, sizeof(*lg.w))) || hmap_init(&lg.seen) < 0)
        return -ENOMEM;
    uint64_t tag = rng_next(&lg.rng); /* this run's machine ids */
    for (int i = 0; i < lg.o.workers; i++)
        init_worker(&lg.w[i], i, tag);
    return make_log_json();
}

void fleet_stop(struct worker *w)
{
    ev_timer_stop(lg.loop, &w->retry_timer);
    teardown(w);
}

void fleet_free(void)
{
    struct hmap_entry *e, *tmp;
    hmap_foreach(&lg.seen, e, tmp) free(hmap_item(e, struct seen_task, e));
    hmap_destroy(&lg.seen);
    free(lg.w);
    free(log_json);
}
