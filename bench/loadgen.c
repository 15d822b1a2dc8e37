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
 *              ReportStatus running (the claim) and finished, running nothing; the window also
 *              ends once --tasks tasks are finished;
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
 * wire; the master has no message to confirm it). It prints the summary then, and keeps the
 * fleet up until SIGINT or SIGTERM (or --duration), so that the master's own view can be read
 * (bench/storm.sh).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc_security.h>

#include "bench/loadgen.h"
#include "net/dialer.h"
#include "resilience/rng.h"
#include "rpc/auth.h"
#include "runtime/log.h"

#define FD_RESERVE      128 /* beyond one per worker: gRPC's own, the loop's, stdio */
#define TICK_S          0.01
#define PROGRESS_S      5.0
#define DRAIN_TIMEOUT_S 15.0

static const char *const mode_names[] = {"fleet", "heartbeat", "dispatch", "logs", NULL};
static const char *const kind_names[] = {"idle", "garbage", "reconnect", "silent", NULL};
static const char *const code_names[N_CODES] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

struct loadgen lg;

void lg_die(const char *what)
{
    fprintf(stderr, "loadgen: %s\n", what);
    exit(1);
}

void *lg_calloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p)
        lg_die("out of memory");
    return p;
}

double lg_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double lg_uniform(double max)
{
    return (double)rng_upto(&lg.rng, 1000000) / 1e6 * max;
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

/* ---- phases ---- */

static void print_summary(void);

static void start_workers(void)
{
    while (lg.started < lg.o.workers && lg.in_setup < lg.o.connecting) {
        struct worker *w = &lg.w[lg.started++];
        w->in_setup = true;
        lg.in_setup++;
        fleet_connect(w);
    }
}

static void begin_window(void)
{
    lg.phase = lg.o.storm ? P_STORM : P_WINDOW;
    lg.t_start = lg_mono_s();
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
            fleet_start_work(&lg.w[i]);
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
    lg.t_end = lg_mono_s();
    lg.m_end = master_sample();
    ev_timer_stop(lg.loop, &lg.pace);
    lg.phase = P_DRAIN;
    lg.deadline = lg.t_end + DRAIN_TIMEOUT_S;
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
    double now = lg_mono_s();
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
        if (now >= lg.deadline || (lg.o.tasks && lg.st.tasks >= (uint64_t)lg.o.tasks))
            begin_drain();
        break;
    case P_STORM:
        if ((lg.down_seen == lg.n_good && lg.online == lg.n_good) || now >= lg.deadline) {
            lg.t_end = now;
            print_summary();
            lg.phase = P_HOLD;
        }
        break;
    case P_HOLD:
        if (now >= lg.deadline)
            finish();
        break;
    case P_DRAIN:
        if (lg.busy == 0 || now >= lg.deadline)
            finish();
        break;
    case P_DONE:
        break;
    }
}

/* SIGINT, SIGTERM: the window ends early (what is in hand is drained), anything else at once. */
static void on_signal(struct ev_loop *loop, ev_signal *s, int revents)
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
    double *t = lg_calloc((size_t)lg.n_good + 1, sizeof(*t));
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
           "\"vmrss_kib\":%ld,\"rss_kib_per_worker\":%.1f,\"cpu_us_per_call\":%.1f,"
           "\"calls_per_cpu_s\":%.0f}",
           lg.o.master_pid, cpu, window > 0 ? 100.0 * cpu / window : 0.0, lg.m_end.hwm_kib,
           lg.m_end.rss_kib, (double)(lg.m_end.rss_kib - lg.m_base.rss_kib) / lg.o.workers,
           lg.st.calls ? cpu * 1e6 / (double)lg.st.calls : 0.0,
           cpu > 0 ? (double)lg.st.calls / cpu : 0.0);
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
               ",\"closed\":%" PRIu64 ",\"garbage_bytes\":%" PRIu64 ",\"registers\":%" PRIu64
               ",\"refused\":%" PRIu64 "}",
               kind_names[lg.o.bad_kind], lg.o.workers - lg.n_good, lg.bad.connects, lg.bad.closed,
               lg.bad.junk_bytes, lg.bad.registers, lg.bad.refused);
    if (lg.o.storm)
        print_storm();
    printf("}\n");
    fflush(stdout);
}

/* ---- options ---- */

enum flag_type { F_NUM, F_INT, F_WORD, F_BOOL, F_STR };

struct flag {
    const char *name;
    enum flag_type type;
    void *dst; /* double, int, int (the word's index), bool, char * */
    double min, max;
    const char *const *words;
    const char *help;
};

static char *master_arg, *key_file_arg, *bad_source_arg;

static const struct flag flags[] = {
    {"master", F_STR, &master_arg, 0, 0, NULL, "HOST:PORT of the master (required)"},
    {"auth-key", F_STR, &lg.o.auth_key, 0, 0, NULL, "the node key"},
    {"auth-key-file", F_STR, &key_file_arg, 0, 0, NULL, "a file holding the node key"},
    {"workers", F_INT, &lg.o.workers, 1, 1e6, NULL, "simulated workers (100)"},
    {"first-worker", F_INT, &lg.o.first, 0, 1e6, NULL,
     "the number of the first worker, whose node key is lg-N (0); two generators on one master "
     "need ranges that do not overlap"},
    {"mode", F_WORD, &lg.o.mode, 0, 0, mode_names, "fleet, heartbeat, dispatch or logs (fleet)"},
    {"duration", F_NUM, &lg.o.duration, 0.1, 86400, NULL,
     "seconds timed (60); --reconnect-storm: the longest wait for the failure and the recovery"},
    {"heartbeat-interval", F_NUM, &lg.o.interval, 0.01, 3600, NULL,
     "seconds between a worker's heartbeats (5)"},
    {"callers", F_INT, &lg.o.callers, 1, 1000, NULL,
     "heartbeat mode: closed loops of SendHeartbeat per worker (1)"},
    {"rate", F_NUM, &lg.o.rate, 0, 1e7, NULL,
     "heartbeat mode: that many calls/s in all, paced, instead of closed loops"},
    {"tasks", F_INT, &lg.o.tasks, 1, 1e9, NULL,
     "dispatch, logs: the window also ends once this many tasks are finished"},
    {"connecting", F_INT, &lg.o.connecting, 1, 1e6, NULL,
     "workers being connected and registered at once while the fleet comes up (256)"},
    {"misbehave", F_NUM, &lg.o.misbehave, 0, 1, NULL, "fraction of the workers that misbehave (0)"},
    {"misbehave-kind", F_WORD, &lg.o.bad_kind, 0, 0, kind_names,
     "idle, garbage, reconnect or silent (idle)"},
    {"misbehave-source", F_STR, &bad_source_arg, 0, 0, NULL,
     "IPv4 address the first misbehaving worker connects from, the next ones counting up (a "
     "master on this machine: 127.0.1.1 gives each its own loopback address)"},
    {"reconnect-storm", F_BOOL, &lg.o.storm, 0, 0, NULL,
     "once up, wait for the master to fail and come back; time each worker's return"},
    {"master-pid", F_INT, &lg.o.master_pid, 1, 1 << 22, NULL,
     "the master's pid: its CPU time and memory from /proc"},
};
#define N_FLAGS (sizeof(flags) / sizeof(flags[0]))

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen --master=HOST:PORT --auth-key-file=FILE [OPTION]...\n");
    for (size_t i = 0; i < N_FLAGS; i++)
        fprintf(f, "  --%s%s\n      %s\n", flags[i].name, flags[i].type == F_BOOL ? "" : "=VALUE",
                flags[i].help);
}

/* Bad input: one line naming the flag, exit 2. */
static void bad_flag(const char *flag, const char *why)
{
    fprintf(stderr, "loadgen: --%s: %s\n", flag, why);
    exit(2);
}

static void set_flag(const struct flag *f, const char *arg)
{
    char *end;
    double v = 0;
    if (f->type == F_NUM || f->type == F_INT) {
        errno = 0;
        v = strtod(arg, &end);
        if (errno || end == arg || *end || !(v >= f->min && v <= f->max))
            bad_flag(f->name, "not a number in its range");
        if (f->type == F_INT && v != (double)(int)v)
            bad_flag(f->name, "not a whole number");
    }
    switch (f->type) {
    case F_NUM:
        *(double *)f->dst = v;
        break;
    case F_INT:
        *(int *)f->dst = (int)v;
        break;
    case F_BOOL:
        *(bool *)f->dst = true;
        break;
    case F_STR:
        free(*(char **)f->dst);
        if (!(*(char **)f->dst = strdup(arg)))
            lg_die("out of memory");
        break;
    case F_WORD:
        for (int i = 0; f->words[i]; i++) {
            if (strcmp(arg, f->words[i]) == 0) {
                *(int *)f->dst = i;
                return;
            }
        }
        bad_flag(f->name, "not one of the words it takes");
    }
}

/* HOST:PORT, HOST possibly a bracketed IPv6 address. */
static void parse_master(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        bad_flag("master", "HOST:PORT expected");
    size_t n = (size_t)(colon - s);
    if (s[0] == '[' && n >= 2 && s[n - 1] == ']')
        s++, n -= 2;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (n >= sizeof(lg.o.host) || *end || end == colon + 1 || port < 1 || port > 65535)
        bad_flag("master", "HOST:PORT expected");
    memcpy(lg.o.host, s, n);
    lg.o.host[n] = '\0';
    lg.o.port = (int)port;
}

static void parse_options(int argc, char **argv)
{
    struct option longopts[N_FLAGS + 2];
    for (size_t i = 0; i < N_FLAGS; i++)
        longopts[i] = (struct option){
            flags[i].name, flags[i].type == F_BOOL ? no_argument : required_argument, NULL, (int)i};
    longopts[N_FLAGS] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[N_FLAGS + 1] = (struct option){0};
    lg.o = (struct opts){.workers = 100,
                         .duration = 60,
                         .interval = 5,
                         .callers = 1,
                         .connecting = 256,
                         .bad_kind = KIND_IDLE};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            exit(0);
        }
        if (c < 0 || c >= (int)N_FLAGS) {
            usage(stderr);
            exit(2);
        }
        set_flag(&flags[c], optarg);
    }
    if (optind < argc)
        bad_flag("", "unexpected argument");
    if (!master_arg)
        bad_flag("master", "required");
    parse_master(master_arg);
    free(master_arg);
    if (bad_source_arg) {
        struct in_addr a;
        if (inet_pton(AF_INET, bad_source_arg, &a) != 1)
            bad_flag("misbehave-source", "not an IPv4 address");
        lg.o.bad_source = ntohl(a.s_addr);
        free(bad_source_arg);
    }
    if (key_file_arg) {
        free(lg.o.auth_key);
        int rc = auth_key_read_file(key_file_arg, &lg.o.auth_key);
        if (rc < 0)
            bad_flag("auth-key-file", auth_key_file_error(rc));
        free(key_file_arg);
    }
    if (!lg.o.auth_key)
        bad_flag("auth-key", "required (or --auth-key-file)");
}

/* ---- set-up ---- */

/* One descriptor per worker and a reserve: raised to the hard limit; exits 2 when short. */
static void ensure_fds(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        lg_die("getrlimit failed");
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
        lg_die("setrlimit failed");
}

/* Ends every connection and lets the calls' last completions through before the bridge goes. */
static void shut_down(void)
{
    for (int i = 0; i < lg.o.workers; i++)
        fleet_stop(&lg.w[i]);
    ev_timer_stop(lg.loop, &lg.tick);
    ev_signal_stop(lg.loop, &lg.sigint);
    ev_signal_stop(lg.loop, &lg.sigterm);
    double until = lg_mono_s() + 10.0;
    while (lg.live_calls > 0 && lg_mono_s() < until)
        ev_run(lg.loop, EVRUN_ONCE);
    bridge_destroy(lg.br);
    grpc_channel_credentials_release(lg.creds);
    fleet_free();
    free(lg.st.lat);
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
        lg.rng = (uint64_t)getpid() ^ (uint64_t)(lg_mono_s() * 1e9);
    grpc_init();
    if (dial_global_init() < 0)
        lg_die("c-ares initialisation failed");
    lg.loop = EV_DEFAULT;
    if (bridge_create(lg.loop, &lg.br) < 0)
        lg_die("cannot start the completion queue bridge");
    lg.creds = grpc_insecure_credentials_create();
    snprintf(lg.target, sizeof(lg.target), strchr(lg.o.host, ':') ? "[%s]:%d" : "%s:%d", lg.o.host,
             lg.o.port);
    if (fleet_init() < 0)
        lg_die("out of memory");
    lg.m_base = master_sample();

    lg.phase = P_CONNECT;
    lg.t_start = lg_mono_s();
    lg.deadline = lg.t_start + 30.0 + lg.o.workers / 100.0;
    ev_timer_init(&lg.tick, on_tick, TICK_S, TICK_S);
    ev_timer_start(lg.loop, &lg.tick);
    ev_timer_init(&lg.pace, fleet_on_pace, 0.002, 0.002);
    ev_signal_init(&lg.sigint, on_signal, SIGINT);
    ev_signal_start(lg.loop, &lg.sigint);
    ev_signal_init(&lg.sigterm, on_signal, SIGTERM);
    ev_signal_start(lg.loop, &lg.sigterm);
    fprintf(stderr, "loadgen: %d workers (%d misbehaving) to %s, mode %s\n", lg.o.workers,
            lg.o.workers - lg.n_good, lg.target,
            lg.o.storm ? "reconnect-storm" : mode_names[lg.o.mode]);
    ev_run(lg.loop, 0);

    if (!lg.o.storm || lg.t_end == 0) { /* a storm's summary is printed once it is over */
        if (lg.t_end == 0)
            lg.t_end = lg_mono_s();
        if (!lg.m_end.ok)
            lg.m_end = master_sample();
        print_summary();
    }
    shut_down();
    return 0;
}
