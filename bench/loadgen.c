/*
 * loadgen: a fleet of simulated workers against one master, to measure what the master spends per
 * worker and per call (bench/README.md, "Load generator").
 *
 * Each simulated worker has its own TCP connection, dialled by net/dialer.h and wrapped by
 * grpc_channel_create_from_fd() as the real worker's session does. It Registers as node lg-<i>,
 * holds NodeService.Subscribe open (counting the HEARTBEAT and TASK_AVAILABLE pushes) and sends
 * SendHeartbeat every --heartbeat-interval, the first one at a random offset in the interval.
 * On top of that, by --mode:
 *   fleet      nothing more;
 *   heartbeat  --callers closed loops of SendHeartbeat per worker, or --rate calls/s in all;
 *   dispatch   FetchTask until the queue is empty (on TASK_AVAILABLE and every second), then
 *              ReportStatus running (the claim) and finished, running nothing;
 *   logs       one task per worker, then Connect segments of INSERT_LOGS (4 MiB each, sequenced
 *              as worker/uploader.c does) until the window ends, each half-closed and answered.
 * All workers share one libev loop; gRPC completions reach it through runtime/bridge.h. A worker
 * whose connection fails reconnects under resilience/retry.h, the real worker's policy.
 *
 * How it measures: the fleet connects first (at most --connecting workers being set up at once),
 * then a window of --duration seconds is timed. "calls" are the unary calls of well-behaved
 * workers completed inside the window; each one's latency (µs, from rpc_unary() to its callback)
 * is kept, all samples, sorted at the end for exact percentiles. Errors count every status other
 * than OK that a well-behaved worker saw during the whole run, set-up included. With --master-pid
 * the master's utime+stime over the window, and its VmHWM and VmRSS, come from /proc. One JSON
 * line on stdout; progress on stderr.
 *
 * --misbehave=F makes the last F*N workers misbehave (--misbehave-kind): an idle TCP connection,
 * garbage bytes now and then, Register then drop in a tight loop, or a Subscribe never read. They
 * are counted apart; every other figure is the well-behaved workers'.
 *
 * --reconnect-storm: once the fleet is up ("ready" on stderr) the tool waits for the master to
 * fail and come back, and reports, per worker, the time from the first failure any worker saw to
 * that worker being registered again with its Subscribe request sent (the stream open on the
 * wire; the master has no message to confirm it).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>

#include "core/task.h"
#include "net/dialer.h"
#include "resilience/retry.h"
#include "resilience/rng.h"
#include "rpc/auth.h"
#include "rpc/client.h"
#include "rpc/codec.h"
#include "runtime/bridge.h"
#include "runtime/hmap.h"
#include "runtime/log.h"
#include "services/node_service.pb-c.h"
#include "services/task_service.pb-c.h"

#define DIAL_TIMEOUT_MS   5000
#define CALL_TIMEOUT_MS   5000
#define FD_RESERVE        128 /* beyond one per worker: gRPC's own, the loop's, stdio */
#define TICK_S            0.01
#define PROGRESS_S        5.0
#define FETCH_POLL_S      1.0
#define DRAIN_TIMEOUT_S   15.0
#define LOG_LINE_LEN      100
#define LOG_LINES_PER_MSG 2048
#define SEGMENT_BYTES     (4u << 20)
#define N_CODES           (GRPC_STATUS_UNAUTHENTICATED + 1)

enum mode { MODE_FLEET, MODE_HEARTBEAT, MODE_DISPATCH, MODE_LOGS };
enum kind { KIND_GOOD, KIND_IDLE, KIND_GARBAGE, KIND_RECONNECT, KIND_SILENT };
enum phase { P_CONNECT, P_WINDOW, P_STORM, P_DRAIN, P_DONE };

static const char *const mode_names[] = {"fleet", "heartbeat", "dispatch", "logs", NULL};
static const char *const kind_names[] = {"good", "idle", "garbage", "reconnect", "silent", NULL};
static const char *const code_names[N_CODES] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

struct opts {
    char host[256];
    int port;
    char *auth_key;
    int workers, callers, connecting, master_pid;
    double duration, interval, rate, misbehave;
    enum mode mode;
    enum kind bad_kind;
    bool storm;
};

struct worker {
    int index;
    enum kind kind;
    char key[32], name[40], machine_id[40];
    unsigned gen; /* bumped at every teardown: a completion of an older connection is ignored */
    bool in_setup, up, went_down, registered, hb_pending, fetching;
    double back_at; /* storm: when it was up again */
    struct retry_policy_state retry;
    ev_timer retry_timer, hb_timer, poll_timer, junk_timer;
    struct dial *dial;
    grpc_channel *ch;
    struct rpc_call *sub, *stream;
    /* The task in hand (dispatch, logs): one at a time. */
    char task[TASK_ID_LEN + 1];
    uint64_t epoch, seq, seg_first;
    size_t seg_bytes;
    bool closing;
    /* idle and garbage: the raw socket */
    int fd;
    ev_io io;
};

struct stats {
    uint64_t calls, errors[N_CODES], lost, failed_attempts;
    uint64_t pushes_hb, pushes_task, tasks, duplicates, abandoned, acked_bytes;
    uint32_t *lat; /* every call's latency in µs */
    size_t n_lat, cap_lat;
};

struct bad_stats {
    uint64_t connects, closed, junk_bytes, registers;
};

struct proc_sample {
    bool ok;
    double cpu_s;
    long hwm_kib, rss_kib;
};

struct seen_task {
    struct hmap_entry e;
    char id[TASK_ID_LEN + 1];
};

static struct {
    struct opts o;
    struct ev_loop *loop;
    struct bridge *br;
    grpc_channel_credentials *creds;
    char target[300];
    struct worker *w;
    int n_good; /* workers [0, n_good) behave */
    enum phase phase;
    double t_start, t_end, t_last_ack, storm_fail_at, deadline, next_progress;
    int started, in_setup, online, busy, live_calls, down_seen;
    uint64_t rng, paced;
    int rr;
    struct stats st;
    struct bad_stats bad;
    struct hmap seen;
    struct proc_sample m_base, m_start, m_end;
    char *log_json;
    size_t log_json_len;
    ev_timer tick, pace;
    ev_signal sigint;
} lg;

static void die(const char *what)
{
    fprintf(stderr, "loadgen: %s\n", what);
    exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p)
        die("out of memory");
    return p;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t mono_ms(void)
{
    return (uint64_t)(mono_s() * 1000.0);
}

static double uniform(double max)
{
    return (double)rng_upto(&lg.rng, 1000000) / 1e6 * max;
}

static bool good(const struct worker *w)
{
    return w->kind == KIND_GOOD;
}

/* ---- the master's figures, from /proc ---- */

static long status_kib(const char *text, const char *field)
{
    const char *p = strstr(text, field);
    return p ? strtol(p + strlen(field), NULL, 10) : -1;
}

static struct proc_sample proc_sample(int pid)
{
    struct proc_sample s = {0};
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return s;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* After the command's closing parenthesis: field 3 (state) on; utime and stime are 14, 15. */
    const char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &ut, &st) != 2)
        return s;
    s.cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if (!(f = fopen(path, "r")))
        return s;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    s.hwm_kib = status_kib(buf, "VmHWM:");
    s.rss_kib = status_kib(buf, "VmRSS:");
    s.ok = true;
    return s;
}

static struct proc_sample master_sample(void)
{
    return lg.o.master_pid > 0 ? proc_sample(lg.o.master_pid) : (struct proc_sample){0};
}

/* ---- what calls count ---- */

static void record(const struct worker *w, grpc_status_code st, double t0)
{
    if (!good(w))
        return;
    if (st != GRPC_STATUS_OK) {
        lg.st.errors[(unsigned)st < N_CODES ? st : GRPC_STATUS_UNKNOWN]++;
        return;
    }
    if (lg.phase != P_WINDOW)
        return;
    lg.st.calls++;
    if (lg.st.n_lat == lg.st.cap_lat) {
        lg.st.cap_lat = lg.st.cap_lat ? 2 * lg.st.cap_lat : 65536;
        lg.st.lat = realloc(lg.st.lat, lg.st.cap_lat * sizeof(*lg.st.lat));
        if (!lg.st.lat)
            die("out of memory");
    }
    lg.st.lat[lg.st.n_lat++] = (uint32_t)((mono_s() - t0) * 1e6);
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
    struct call *c = xcalloc(1, sizeof(*c));
    *c = (struct call){w, w->gen, mono_s(), then};
    if (!rpc_unary(lg.br, w->ch, method, lg.o.auth_key, CALL_TIMEOUT_MS, req, on_unary, c))
        die("out of memory");
    lg.live_calls++;
}

/* ---- connection life ---- */

static void connect_worker(struct worker *w);
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
                lg.storm_fail_at = mono_s();
            w->went_down = true;
            lg.down_seen++;
        }
    }
    teardown(w);
    schedule_retry(w);
}

static void on_retry_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    connect_worker(t->data);
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
    ev_timer_set(t, 0.1 + uniform(0.9), 0.0);
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
        ev_timer_set(&w->junk_timer, uniform(1.0), 0.0);
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
        lg.st.errors[GRPC_STATUS_INTERNAL] += good(w);
        lost(w);
        return;
    }
    int code = ((Grpc__NodeServiceSubscribeResponse *)m)->code;
    protobuf_c_message_free_unpacked(m, NULL);
    rpc_call_read(call);
    if (!good(w))
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
        lg.st.errors[(unsigned)st < N_CODES ? st : GRPC_STATUS_UNKNOWN]++;
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
        die("out of memory");
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
    if (st != GRPC_STATUS_OK) {
        attempt_failed(w);
        return;
    }
    w->registered = true;
    if (w->kind == KIND_RECONNECT) {
        lg.bad.registers++;
        teardown(w);
        connect_worker(w);
        return;
    }
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

static void connect_worker(struct worker *w)
{
    uint64_t now = mono_ms();
    if (!retry_allow(&w->retry, now)) {
        uint64_t at = breaker_open_until(&w->retry.breaker);
        ev_timer_set(&w->retry_timer, at > now ? (double)(at - now) / 1000.0 : 0.01, 0.0);
        ev_timer_start(lg.loop, &w->retry_timer);
        return;
    }
    if (dial_start(lg.loop, NULL, lg.o.host, lg.o.port, DIAL_TIMEOUT_MS, on_dialed, w, &w->dial) <
        0)
        die("out of memory");
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
static void on_pace(struct ev_loop *loop, ev_timer *t, int revents)
{
    uint64_t due = (uint64_t)(lg.o.rate * (mono_s() - lg.t_start));
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
    struct seen_task *t = xcalloc(1, sizeof(*t));
    snprintf(t->id, sizeof(t->id), "%s", id);
    t->e.key = t->id;
    if (hmap_put(&lg.seen, &t->e) < 0)
        die("out of memory");
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

/* The JSON array of LOG_LINES_PER_MSG lines every INSERT_LOGS message carries. */
static void make_log_json(void)
{
    size_t cap = 2 + (size_t)LOG_LINES_PER_MSG * (LOG_LINE_LEN + 3);
    char *p = lg.log_json = xcalloc(1, cap + 1);
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
    lg.log_json_len = (size_t)(p - lg.log_json);
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
    req.data.data = (uint8_t *)lg.log_json;
    req.data.len = lg.log_json_len;
    req.seq = w->seq + 1;
    req.epoch = w->epoch;
    w->seq += LOG_LINES_PER_MSG;
    w->seg_bytes += lg.log_json_len;
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
        lg.st.errors[(unsigned)st < N_CODES ? st : GRPC_STATUS_UNKNOWN]++;
        lost(w);
        return;
    }
    lg.st.acked_bytes += w->seg_bytes;
    lg.t_last_ack = mono_s();
    if (lg.phase == P_WINDOW)
        start_segment(w);
    else
        report(w, TASK_FINISHED, on_finished);
}

static void stream_on_message(struct rpc_call *call, grpc_byte_buffer *msg)
{
}

static const struct rpc_call_handler stream_handler = {
    .on_message = stream_on_message,
    .on_sent = stream_on_sent,
    .on_status = stream_on_status,
    .on_free = on_call_free,
};

static void start_segment(struct worker *w)
{
    w->stream = start_call(w, "/grpc.TaskService/Connect", &stream_handler);
    w->seg_first = w->seq;
    w->seg_bytes = 0;
    w->closing = false;
    send_logs(w);
}

/* ---- a worker up: registered, Subscribe open ---- */

/* What the mode adds to a worker that is up once the window is open. */
static void start_work(struct worker *w)
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
    ev_timer_set(&w->hb_timer, uniform(every), every);
    ev_timer_start(lg.loop, &w->hb_timer);
    if (!good(w))
        return;
    lg.online++;
    if (lg.phase == P_STORM && w->went_down)
        w->back_at = mono_s();
    if (lg.phase == P_WINDOW)
        start_work(w);
}

/* ---- phases ---- */

static void start_workers(void)
{
    while (lg.started < lg.o.workers && lg.in_setup < lg.o.connecting) {
        struct worker *w = &lg.w[lg.started++];
        w->in_setup = true;
        lg.in_setup++;
        connect_worker(w);
    }
}

static void begin_window(void)
{
    lg.phase = lg.o.storm ? P_STORM : P_WINDOW;
    lg.t_start = mono_s();
    lg.m_start = master_sample();
    if (lg.o.storm) {
        fprintf(stderr, "loadgen: ready: %d workers online; waiting for the master to fail\n",
                lg.online);
        lg.deadline = lg.t_start + lg.o.duration;
        return;
    }
    fprintf(stderr, "loadgen: %d workers online; timing %.0f s of %s\n", lg.online, lg.o.duration,
            mode_names[lg.o.mode]);
    lg.deadline = lg.t_start + lg.o.duration;
    for (int i = 0; i < lg.n_good; i++)
        if (lg.w[i].up)
            start_work(&lg.w[i]);
    if (lg.o.mode == MODE_HEARTBEAT && lg.o.rate > 0)
        ev_timer_start(lg.loop, &lg.pace);
}

static void finish(void)
{
    lg.phase = P_DONE;
    ev_break(lg.loop, EVBREAK_ALL);
}

static void begin_drain(void)
{
    lg.t_end = mono_s();
    lg.m_end = master_sample();
    ev_timer_stop(lg.loop, &lg.pace);
    lg.phase = P_DRAIN;
    lg.deadline = lg.t_end + DRAIN_TIMEOUT_S;
    /* Open segments half-close at their next write; an idle one has nothing in flight. */
}

static void progress(double now)
{
    if (now < lg.next_progress)
        return;
    lg.next_progress = now + PROGRESS_S;
    uint64_t errors = 0;
    for (int c = 1; c < N_CODES; c++)
        errors += lg.st.errors[c];
    fprintf(stderr,
            "loadgen: online %d/%d, started %d, calls %" PRIu64 ", errors %" PRIu64
            ", tasks %" PRIu64 ", acked %.1f MB\n",
            lg.online, lg.n_good, lg.started, lg.st.calls, errors, lg.st.tasks,
            (double)lg.st.acked_bytes / 1e6);
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    double now = mono_s();
    progress(now);
    switch (lg.phase) {
    case P_CONNECT:
        start_workers();
        if (lg.started == lg.o.workers && lg.online == lg.n_good && lg.in_setup == 0)
            begin_window();
        else if (now > lg.deadline)
            begin_window(); /* not all up: the summary says how many are */
        break;
    case P_WINDOW:
        if (now >= lg.deadline)
            begin_drain();
        break;
    case P_STORM:
        if ((lg.down_seen == lg.n_good && lg.online == lg.n_good) || now >= lg.deadline) {
            lg.t_end = now;
            finish();
        }
        break;
    case P_DRAIN:
        if (lg.busy == 0 || now >= lg.deadline)
            finish();
        break;
    case P_DONE:
        break;
    }
}

static void on_sigint(struct ev_loop *loop, ev_signal *s, int revents)
{
    if (lg.phase == P_WINDOW)
        begin_drain();
    else
        finish();
}

/* ---- the summary ---- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t percentile(double p)
{
    if (!lg.st.n_lat)
        return 0;
    size_t i = (size_t)(p * (double)(lg.st.n_lat - 1) + 0.5);
    return lg.st.lat[i];
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void print_storm(void)
{
    double *t = xcalloc((size_t)lg.n_good + 1, sizeof(*t));
    int n = 0;
    for (int i = 0; i < lg.n_good; i++)
        if (lg.w[i].went_down && lg.w[i].up)
            t[n++] = (lg.w[i].back_at - lg.storm_fail_at) * 1000.0;
    qsort(t, (size_t)n, sizeof(*t), cmp_double);
    printf(",\"storm\":{\"failed\":%s,\"went_down\":%d,\"recovered\":%d,\"p50_ms\":%.0f,"
           "\"p100_ms\":%.0f}",
           lg.storm_fail_at > 0 ? "true" : "false", lg.down_seen, n, n ? t[(n - 1) / 2] : 0.0,
           n ? t[n - 1] : 0.0);
    free(t);
}

static void print_master(double window)
{
    if (!lg.m_start.ok || !lg.m_end.ok)
        return;
    double cpu = lg.m_end.cpu_s - lg.m_start.cpu_s;
    printf(",\"master\":{\"pid\":%d,\"cpu_s\":%.3f,\"cpu_pct\":%.1f,\"vmhwm_kib\":%ld,"
           "\"vmrss_kib\":%ld,\"rss_kib_per_worker\":%.1f,\"cpu_us_per_call\":%.1f}",
           lg.o.master_pid, cpu, window > 0 ? 100.0 * cpu / window : 0.0, lg.m_end.hwm_kib,
           lg.m_end.rss_kib, (double)(lg.m_end.rss_kib - lg.m_base.rss_kib) / lg.o.workers,
           lg.st.calls ? cpu * 1e6 / (double)lg.st.calls : 0.0);
}

static void print_summary(void)
{
    double window = lg.t_end - lg.t_start;
    int registered = 0;
    for (int i = 0; i < lg.n_good; i++)
        registered += lg.w[i].registered;
    qsort(lg.st.lat, lg.st.n_lat, sizeof(*lg.st.lat), cmp_u32);
    double acked_window = lg.t_last_ack > lg.t_start ? lg.t_last_ack - lg.t_start : window;
    printf("{\"workers\":%d,\"well_behaved\":%d,\"mode\":\"%s\",\"duration_s\":%.3f,"
           "\"calls\":%" PRIu64 ",\"calls_per_s\":%.1f,"
           "\"latency_us\":{\"p50\":%u,\"p99\":%u,\"max\":%u,\"samples\":\"all\"},",
           lg.o.workers, lg.n_good, lg.o.storm ? "reconnect-storm" : mode_names[lg.o.mode], window,
           lg.st.calls, window > 0 ? (double)lg.st.calls / window : 0.0, percentile(0.5),
           percentile(0.99), percentile(1.0));
    printf("\"errors\":{");
    const char *sep = "";
    for (int c = 1; c < N_CODES; c++) {
        if (lg.st.errors[c]) {
            printf("%s\"%s\":%" PRIu64, sep, code_names[c], lg.st.errors[c]);
            sep = ",";
        }
    }
    printf("},\"lost\":%" PRIu64 ",\"failed_attempts\":%" PRIu64 ",\"tasks\":%" PRIu64
           ",\"duplicates\":%" PRIu64 ",\"abandoned\":%" PRIu64 ",\"acked_mb\":%.1f,"
           "\"mb_per_s\":%.1f,\"registered\":%d,\"online\":%d,"
           "\"pushes\":{\"heartbeat\":%" PRIu64 ",\"task_available\":%" PRIu64 "}",
           lg.st.lost, lg.st.failed_attempts, lg.st.tasks, lg.st.duplicates, lg.st.abandoned,
           (double)lg.st.acked_bytes / 1e6,
           acked_window > 0 ? (double)lg.st.acked_bytes / 1e6 / acked_window : 0.0, registered,
           lg.online, lg.st.pushes_hb, lg.st.pushes_task);
    print_master(window);
    if (lg.n_good < lg.o.workers)
        printf(",\"misbehaving\":{\"kind\":\"%s\",\"workers\":%d,\"connects\":%" PRIu64
               ",\"closed\":%" PRIu64 ",\"garbage_bytes\":%" PRIu64 ",\"registers\":%" PRIu64 "}",
               kind_names[lg.o.bad_kind], lg.o.workers - lg.n_good, lg.bad.connects, lg.bad.closed,
               lg.bad.junk_bytes, lg.bad.registers);
    if (lg.o.storm)
        print_storm();
    printf("}\n");
    fflush(stdout);
}

/* ---- set-up ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen --master=HOST:PORT (--auth-key=KEY | --auth-key-file=FILE)\n"
               "  [--workers=N] [--mode=fleet|heartbeat|dispatch|logs] [--duration=S]\n"
               "  [--heartbeat-interval=S] [--callers=N] [--rate=CALLS_PER_S] [--connecting=N]\n"
               "  [--misbehave=FRACTION --misbehave-kind=idle|garbage|reconnect|silent]\n"
               "  [--reconnect-storm] [--master-pid=PID]\n");
}

/* Exits 2 with one line naming the flag. */
static void bad_flag(const char *flag, const char *why)
{
    fprintf(stderr, "loadgen: %s: %s\n", flag, why);
    exit(2);
}

static double parse_num(const char *flag, const char *s, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max))
        bad_flag(flag, "out of range or not a number");
    return v;
}

static int parse_word(const char *flag, const char *s, const char *const *words)
{
    for (int i = 0; words[i]; i++)
        if (strcmp(s, words[i]) == 0)
            return i;
    bad_flag(flag, "unknown word");
    return -1;
}

static void parse_master(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        bad_flag("--master", "HOST:PORT expected");
    size_t n = (size_t)(colon - s);
    if (s[0] == '[' && n >= 2 && s[n - 1] == ']')
        s++, n -= 2;
    if (n >= sizeof(lg.o.host))
        bad_flag("--master", "host name too long");
    memcpy(lg.o.host, s, n);
    lg.o.host[n] = '\0';
    lg.o.port = (int)parse_num("--master", colon + 1, 1, 65535);
}

static void read_key_file(const char *path)
{
    int rc = auth_key_read_file(path, &lg.o.auth_key);
    if (rc < 0)
        bad_flag("--auth-key-file", auth_key_file_error(rc));
}

static void parse_options(int argc, char **argv)
{
    enum {
        O_MASTER = 256,
        O_KEY,
        O_KEYFILE,
        O_WORKERS,
        O_MODE,
        O_DURATION,
        O_INTERVAL,
        O_CALLERS,
        O_RATE,
        O_CONNECTING,
        O_MISBEHAVE,
        O_KIND,
        O_STORM,
        O_PID,
        O_HELP
    };
    static const struct option longopts[] = {{"master", 1, NULL, O_MASTER},
                                             {"auth-key", 1, NULL, O_KEY},
                                             {"auth-key-file", 1, NULL, O_KEYFILE},
                                             {"workers", 1, NULL, O_WORKERS},
                                             {"mode", 1, NULL, O_MODE},
                                             {"duration", 1, NULL, O_DURATION},
                                             {"heartbeat-interval", 1, NULL, O_INTERVAL},
                                             {"callers", 1, NULL, O_CALLERS},
                                             {"rate", 1, NULL, O_RATE},
                                             {"connecting", 1, NULL, O_CONNECTING},
                                             {"misbehave", 1, NULL, O_MISBEHAVE},
                                             {"misbehave-kind", 1, NULL, O_KIND},
                                             {"reconnect-storm", 0, NULL, O_STORM},
                                             {"master-pid", 1, NULL, O_PID},
                                             {"help", 0, NULL, O_HELP},
                                             {NULL, 0, NULL, 0}};
    struct opts *o = &lg.o;
    *o = (struct opts){.workers = 100,
                       .duration = 60,
                       .interval = 5,
                       .callers = 1,
                       .connecting = 256,
                       .bad_kind = KIND_IDLE};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_MASTER:
            parse_master(optarg);
            break;
        case O_KEY:
            free(o->auth_key);
            o->auth_key = strdup(optarg);
            break;
        case O_KEYFILE:
            free(o->auth_key);
            read_key_file(optarg);
            break;
        case O_WORKERS:
            o->workers = (int)parse_num("--workers", optarg, 1, 1000000);
            break;
        case O_MODE:
            o->mode = parse_word("--mode", optarg, mode_names);
            break;
        case O_DURATION:
            o->duration = parse_num("--duration", optarg, 0.1, 86400);
            break;
        case O_INTERVAL:
            o->interval = parse_num("--heartbeat-interval", optarg, 0.01, 3600);
            break;
        case O_CALLERS:
            o->callers = (int)parse_num("--callers", optarg, 1, 1000);
            break;
        case O_RATE:
            o->rate = parse_num("--rate", optarg, 0, 1e7);
            break;
        case O_CONNECTING:
            o->connecting = (int)parse_num("--connecting", optarg, 1, 100000);
            break;
        case O_MISBEHAVE:
            o->misbehave = parse_num("--misbehave", optarg, 0, 1);
            break;
        case O_KIND:
            o->bad_kind = parse_word("--misbehave-kind", optarg, kind_names);
            if (o->bad_kind == KIND_GOOD)
                bad_flag("--misbehave-kind", "idle, garbage, reconnect or silent");
            break;
        case O_STORM:
            o->storm = true;
            break;
        case O_PID:
            o->master_pid = (int)parse_num("--master-pid", optarg, 1, 1 << 22);
            break;
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc)
        bad_flag(argv[optind], "unexpected argument");
    if (!o->port)
        bad_flag("--master", "required");
    if (!o->auth_key)
        bad_flag("--auth-key", "required (or --auth-key-file)");
}

/* One descriptor per worker and a reserve: raised to the hard limit; exits 2 when short. */
static void ensure_fds(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit failed");
    rlim_t need = (rlim_t)lg.o.workers + FD_RESERVE;
    if (need > rl.rlim_max) {
        fprintf(stderr,
                "loadgen: %d workers need %llu descriptors; the hard limit is %llu "
                "(raise it: ulimit -Hn, LimitNOFILE)\n",
                lg.o.workers, (unsigned long long)need, (unsigned long long)rl.rlim_max);
        exit(2);
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("setrlimit failed");
}

static void init_workers(void)
{
    int n_bad = (int)(lg.o.misbehave * lg.o.workers + 0.5);
    lg.n_good = lg.o.workers - n_bad;
    lg.w = xcalloc((size_t)lg.o.workers, sizeof(*lg.w));
    uint64_t tag = rng_next(&lg.rng);
    for (int i = 0; i < lg.o.workers; i++) {
        struct worker *w = &lg.w[i];
        w->index = i;
        w->kind = i < lg.n_good ? KIND_GOOD : lg.o.bad_kind;
        w->fd = -1;
        snprintf(w->key, sizeof(w->key), "lg-%d", i);
        snprintf(w->name, sizeof(w->name), "loadgen-%d", i);
        snprintf(w->machine_id, sizeof(w->machine_id), "lg-%016" PRIx64 "-%d", tag, i);
        retry_init(&w->retry, rng_next(&lg.rng));
        ev_timer_init(&w->retry_timer, on_retry_timer, 0, 0);
        ev_timer_init(&w->hb_timer, on_hb_timer, 0, 0);
        ev_timer_init(&w->poll_timer, on_poll_timer, 0, 0);
        ev_timer_init(&w->junk_timer, on_junk_timer, 0, 0);
        w->retry_timer.data = w->hb_timer.data = w->poll_timer.data = w->junk_timer.data = w;
    }
}

/* Ends every connection and lets the calls' last completions through before the bridge goes. */
static void shut_down(void)
{
    for (int i = 0; i < lg.o.workers; i++) {
        ev_timer_stop(lg.loop, &lg.w[i].retry_timer);
        teardown(&lg.w[i]);
    }
    ev_timer_stop(lg.loop, &lg.tick);
    ev_signal_stop(lg.loop, &lg.sigint);
    double until = mono_s() + 10.0;
    while (lg.live_calls > 0 && mono_s() < until)
        ev_run(lg.loop, EVRUN_ONCE);
    bridge_destroy(lg.br);
    grpc_channel_credentials_release(lg.creds);
    struct hmap_entry *e, *tmp;
    hmap_foreach(&lg.seen, e, tmp) free(hmap_item(e, struct seen_task, e));
    hmap_destroy(&lg.seen);
    free(lg.w);
    free(lg.st.lat);
    free(lg.log_json);
    free(lg.o.auth_key);
    dial_global_cleanup();
    grpc_shutdown();
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    ensure_fds();
    signal(SIGPIPE, SIG_IGN);
    log_setup(LOG_WARN, LOG_FORMAT_TEXT, "loadgen");
    if (getrandom(&lg.rng, sizeof(lg.rng), 0) != sizeof(lg.rng))
        lg.rng = (uint64_t)getpid() ^ (uint64_t)(mono_s() * 1e9);
    grpc_init();
    if (dial_global_init() < 0)
        die("c-ares initialisation failed");
    lg.loop = EV_DEFAULT;
    if (bridge_create(lg.loop, &lg.br) < 0)
        die("cannot start the completion queue bridge");
    lg.creds = grpc_insecure_credentials_create();
    snprintf(lg.target, sizeof(lg.target), strchr(lg.o.host, ':') ? "[%s]:%d" : "%s:%d", lg.o.host,
             lg.o.port);
    if (hmap_init(&lg.seen) < 0)
        die("out of memory");
    make_log_json();
    init_workers();
    lg.m_base = master_sample();

    lg.phase = P_CONNECT;
    lg.t_start = mono_s();
    lg.deadline = mono_s() + 30.0 + lg.o.workers / 100.0;
    ev_timer_init(&lg.tick, on_tick, TICK_S, TICK_S);
    ev_timer_start(lg.loop, &lg.tick);
    ev_timer_init(&lg.pace, on_pace, 0.002, 0.002);
    ev_signal_init(&lg.sigint, on_sigint, SIGINT);
    ev_signal_start(lg.loop, &lg.sigint);
    fprintf(stderr, "loadgen: %d workers (%d misbehaving) to %s, mode %s\n", lg.o.workers,
            lg.o.workers - lg.n_good, lg.target,
            lg.o.storm ? "reconnect-storm" : mode_names[lg.o.mode]);
    ev_run(lg.loop, 0);

    if (!lg.o.storm && lg.t_end == 0)
        lg.t_end = mono_s();
    if (!lg.m_end.ok)
        lg.m_end = master_sample();
    print_summary();
    shut_down();
    return 0;
}
