/* bench-refs: the physical references of the machine bench/bench.py runs on, and the syscall
 * counter behind its per-unit figures (bench/README.md). Built by bench/meson.build, not installed.
 *
 *   bench-refs spawn SECONDS PROCS  PROCS processes each spawn and reap `sh -c true` in a loop
 *   bench-refs sh N                 p50 of N `sh -c :` spawned and reaped one after the other
 *   bench-refs tcp MIB SECONDS      one loopback TCP connection: MIB MiB in 1 MiB writes (fewer if
 *                                   SECONDS pass first), read by a second thread
 *   bench-refs fdatasync DIR N [GAP_MS]
 *                                   p50 of N fdatasync calls, each after a 4 KiB append, in DIR;
 *                                   with GAP_MS, the machine sleeps that long before each append,
 *                                   as before a lone commit (a dispatch on an idle master)
 *   bench-refs pagecache DIR MIB [SOURCE [KEEP_MIB]]
 *                                   appends MIB MiB to a new file in DIR the way the master stores
 *                                   a log: 1 MiB pwrites, each followed by sync_file_range (start
 *                                   the write-back), fdatasync every 4 MiB; the CPU and wall time
 *                                   per MB (10^6 bytes). SOURCE, what each pwrite copies from:
 *                                   "hot" (default), one 1 MiB buffer, in the caches after the
 *                                   first pass; "cold", the next MiB of a 256 MiB ring, beyond
 *                                   them; "fresh", a buffer allocated and filled just before (its
 *                                   filling reported apart, fill_ms_per_mb), as a received message.
 *                                   With KEEP_MIB, each fdatasync is followed by dropping all but
 *                                   the last KEEP_MIB MiB from the page cache, as the master's
 *                                   commits do (LOGFILE_CACHED_TAIL)
 *   bench-refs touch MIB            maps MIB MiB of memory, writes a byte in each page and unmaps
 *                                   it: the CPU per MiB of first touches (page faults, and on a
 *                                   virtual machine the host's, for memory it had taken back)
 *   bench-refs syscall SECONDS      CPU per getppid(), then again while counted as `count` does
 *   bench-refs count PID...         counts the syscalls of every thread of each PID, threads
 *                                   started later included, child processes not; prints "ready",
 *                                   counts until stdin ends, then prints "PID COUNT" lines
 *
 * Each command prints `NAME VALUE` lines on stdout and exits 0, or prints one line on stderr and
 * exits 1. Everything is blocking and single-purpose: a short-lived process per measure. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define CHUNK (1 << 20)

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench-refs: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank p50 of n values (sorts them), as bench.py's pct(). */
static double p50(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return v[(n + 1) / 2 - 1];
}

/* Spawns /bin/sh -c SCRIPT (as the worker does: posix_spawn, a vfork-style clone) and reaps it. */
static void run_sh(const char *script)
{
    char *argv[] = {"sh", "-c", (char *)script, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
    if (rc != 0)
        die("posix_spawn /bin/sh: %s", strerror(rc));
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("sh -c '%s' failed (status 0x%x)", script, status);
}

static int cmd_spawn(double seconds, int procs)
{
    int fds[2];
    if (pipe(fds) < 0)
        die("pipe: %s", strerror(errno));
    double t0 = now_s(CLOCK_MONOTONIC), deadline = t0 + seconds;
    for (int i = 0; i < procs; i++) {
        pid_t pid = fork();
        if (pid < 0)
            die("fork: %s", strerror(errno));
        if (pid == 0) {
            long n = 0;
            while (now_s(CLOCK_MONOTONIC) < deadline) {
                run_sh("true");
                n++;
            }
            _exit(write(fds[1], &n, sizeof(n)) == sizeof(n) ? 0 : 1);
        }
    }
    close(fds[1]);
    long total = 0, n;
    int got = 0;
    while (read(fds[0], &n, sizeof(n)) == sizeof(n)) {
        total += n;
        got++;
    }
    while (wait(NULL) > 0)
        ;
    double elapsed = now_s(CLOCK_MONOTONIC) - t0;
    if (got != procs)
        die("spawn: %d of %d processes reported", got, procs);
    printf("spawns %ld\nseconds %.3f\nspawns_per_s %.1f\n", total, elapsed, total / elapsed);
    return 0;
}

static int cmd_sh(int n)
{
    double *v = calloc((size_t)n, sizeof(*v));
    if (!v)
        die("out of memory");
    for (int i = 0; i < n; i++) {
        double t0 = now_s(CLOCK_MONOTONIC);
        run_sh(":");
        v[i] = (now_s(CLOCK_MONOTONIC) - t0) * 1e3;
    }
    printf("p50_ms %.3f\n", p50(v, n));
    free(v);
    return 0;
}

struct tcp_reader {
    int fd;
    long long bytes;
};

static void *tcp_read_all(void *arg)
{
    struct tcp_reader *r = arg;
    char *buf = malloc(CHUNK);
    if (!buf)
        die("out of memory");
    ssize_t k;
    while ((k = read(r->fd, buf, CHUNK)) > 0)
        r->bytes += k;
    if (k < 0)
        die("tcp read: %s", strerror(errno));
    free(buf);
    return NULL;
}

/* A connected pair of TCP sockets on 127.0.0.1: *out writes, *in reads. */
static void tcp_pair(int *out, int *in)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, len) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) < 0)
        die("tcp listen: %s", strerror(errno));
    *out = socket(AF_INET, SOCK_STREAM, 0);
    if (*out < 0 || connect(*out, (struct sockaddr *)&a, len) < 0)
        die("tcp connect: %s", strerror(errno));
    *in = accept(l, NULL, NULL);
    if (*in < 0)
        die("tcp accept: %s", strerror(errno));
    close(l);
}

static int cmd_tcp(long mib, double seconds)
{
    int out;
    struct tcp_reader r = {0};
    tcp_pair(&out, &r.fd);
    char *buf = calloc(1, CHUNK);
    if (!buf)
        die("out of memory");
    pthread_t th;
    double t0 = now_s(CLOCK_MONOTONIC), deadline = t0 + seconds;
    int rc = pthread_create(&th, NULL, tcp_read_all, &r);
    if (rc != 0)
        die("pthread_create: %s", strerror(rc));
    for (long i = 0; i < mib && now_s(CLOCK_MONOTONIC) < deadline; i++)
        for (size_t off = 0; off < CHUNK;) {
            ssize_t k = write(out, buf + off, CHUNK - off);
            if (k < 0)
                die("tcp write: %s", strerror(errno));
            off += (size_t)k;
        }
    shutdown(out, SHUT_WR);
    pthread_join(th, NULL);
    double elapsed = now_s(CLOCK_MONOTONIC) - t0;
    printf("bytes %lld\nseconds %.3f\nmb_per_s %.1f\n", r.bytes, elapsed,
           (double)r.bytes / 1e6 / elapsed);
    free(buf);
    close(out);
    close(r.fd);
    return 0;
}

/* A new file in dir, already unlinked: it goes when the descriptor is closed. */
static int scratch_file(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/bench-refs.XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0)
        die("mkstemp in %s: %s", dir, strerror(errno));
    unlink(path);
    return fd;
}

static int cmd_fdatasync(const char *dir, int n, int gap_ms)
{
    int fd = scratch_file(dir);
    double *v = calloc((size_t)n, sizeof(*v));
    char block[4096];
    memset(block, 'x', sizeof(block));
    if (!v)
        die("out of memory");
    const struct timespec gap = {gap_ms / 1000, (long)(gap_ms % 1000) * 1000000};
    for (int i = 0; i < n; i++) {
        if (gap_ms > 0)
            nanosleep(&gap, NULL);
        if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block))
            die("write in %s: %s", dir, strerror(errno));
        double t0 = now_s(CLOCK_MONOTONIC);
        if (fdatasync(fd) < 0)
            die("fdatasync in %s: %s", dir, strerror(errno));
        v[i] = (now_s(CLOCK_MONOTONIC) - t0) * 1e3;
    }
    printf("p50_ms %.3f\n", p50(v, n));
    free(v);
    close(fd);
    return 0;
}

/* What storing a MB costs the machine before any of our code runs: the copy into the page cache
 * and the write-back's submission are charged to the writer, and their cost moves from one
 * machine (and day) to another by several times. */
#define COLD_RING (256u << 20)

static int cmd_pagecache(const char *dir, long mib, const char *source, long keep_mib)
{
    bool cold = !strcmp(source, "cold"), fresh = !strcmp(source, "fresh");
    if (!cold && !fresh && strcmp(source, "hot") != 0)
        die("pagecache: SOURCE is hot, cold or fresh, not %s", source);
    int fd = scratch_file(dir);
    char *buf = malloc(cold ? COLD_RING : CHUNK);
    if (!buf)
        die("out of memory");
    memset(buf, 'x', cold ? COLD_RING : CHUNK);
    double fill = 0;
    long dropped = 0; /* MiB out of the page cache, with KEEP_MIB */
    double t0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    for (long i = 0; i < mib; i++) {
        off_t off = (off_t)i * CHUNK;
        const char *src = cold ? buf + ((size_t)i * CHUNK) % COLD_RING : buf;
        char *msg = NULL;
        if (fresh) {
            double f0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
            if (!(msg = malloc(CHUNK)))
                die("out of memory");
            memset(msg, 'y', CHUNK);
            fill += now_s(CLOCK_PROCESS_CPUTIME_ID) - f0;
            src = msg;
        }
        if (pwrite(fd, src, CHUNK, off) != CHUNK)
            die("pwrite in %s: %s", dir, strerror(errno));
        free(msg);
        sync_file_range(fd, off, CHUNK, SYNC_FILE_RANGE_WRITE);
        if (i % 4 != 3)
            continue;
        if (fdatasync(fd) < 0)
            die("fdatasync in %s: %s", dir, strerror(errno));
        if (keep_mib >= 0 && i + 1 - keep_mib > dropped) { /* from where the last drop ended */
            posix_fadvise(fd, (off_t)dropped * CHUNK, (off_t)(i + 1 - keep_mib - dropped) * CHUNK,
                          POSIX_FADV_DONTNEED);
            dropped = i + 1 - keep_mib;
        }
    }
    if (fdatasync(fd) < 0)
        die("fdatasync in %s: %s", dir, strerror(errno));
    double mb = (double)mib * CHUNK / 1e6;
    printf("cpu_ms_per_mb %.3f\nwall_ms_per_mb %.3f\n",
           (now_s(CLOCK_PROCESS_CPUTIME_ID) - c0) / mb * 1e3,
           (now_s(CLOCK_MONOTONIC) - t0) / mb * 1e3);
    if (fresh)
        printf("fill_ms_per_mb %.3f\n", fill / mb * 1e3);
    free(buf);
    close(fd);
    return 0;
}

/* What a page of memory costs the first time it is written after the kernel got it from its free
 * lists: a page fault, and where the machine is a virtual one that hands free memory back to its
 * host, the host's fault to take it again. */
static int cmd_touch(long mib)
{
    size_t len = (size_t)mib << 20, page = (size_t)sysconf(_SC_PAGESIZE);
    double c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap of %ld MiB: %s", mib, strerror(errno));
    for (size_t off = 0; off < len; off += page)
        p[off] = 1;
    munmap(p, len);
    printf("cpu_ms_per_mib %.3f\n", (now_s(CLOCK_PROCESS_CPUTIME_ID) - c0) / (double)mib * 1e3);
    return 0;
}

/* The id of the raw_syscalls:sys_enter tracepoint, from tracefs; -1 when there is none. */
static long syscall_tracepoint(void)
{
    static const char *paths[] = {"/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
                                  "/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        FILE *f = fopen(paths[i], "r");
        long id;
        if (!f)
            continue;
        int ok = fscanf(f, "%ld", &id) == 1;
        fclose(f);
        if (ok)
            return id;
    }
    return -1;
}

#define NO_TRACEPOINT "no raw_syscalls:sys_enter tracepoint (is tracefs mounted and readable?)"

/* A counter of the syscalls of thread tid and of the threads it starts later (inherit_thread:
 * not its child processes, so a worker's tasks are not counted as the worker's). Returns the
 * descriptor, or -1 with errno set. */
static int count_open(long tracepoint, pid_t tid)
{
    struct perf_event_attr attr = {
        .type = PERF_TYPE_TRACEPOINT,
        .size = sizeof(attr),
        .config = (uint64_t)tracepoint,
        .inherit = 1,
        .inherit_thread = 1,
    };
    return (int)syscall(SYS_perf_event_open, &attr, tid, -1, -1, 0);
}

static uint64_t count_read(int fd)
{
    uint64_t v = 0;
    if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
        die("read of a syscall counter: %s", strerror(errno));
    return v;
}

/* Prints the CPU per getppid() alone, then while counted (what `count` adds to each syscall of
 * the processes it counts), or why syscalls cannot be counted here. */
static int cmd_syscall(double seconds)
{
    double ns[2];
    for (int counted = 0; counted < 2; counted++) {
        int fd = -1;
        if (counted) {
            long tracepoint = syscall_tracepoint();
            fd = tracepoint < 0 ? -1 : count_open(tracepoint, 0);
            if (fd < 0) {
                printf("ns %.1f\ncount_unavailable %s\n", ns[0],
                       tracepoint < 0 ? NO_TRACEPOINT : strerror(errno));
                return 0;
            }
        }
        double wall_end = now_s(CLOCK_MONOTONIC) + seconds;
        double cpu0 = now_s(CLOCK_THREAD_CPUTIME_ID);
        long calls = 0;
        while (now_s(CLOCK_MONOTONIC) < wall_end) {
            for (int i = 0; i < 10000; i++)
                (void)getppid();
            calls += 10000;
        }
        ns[counted] = (now_s(CLOCK_THREAD_CPUTIME_ID) - cpu0) * 1e9 / (double)calls;
        if (counted && count_read(fd) < (uint64_t)calls)
            die("the counter saw fewer syscalls than were made");
        if (fd >= 0)
            close(fd);
    }
    printf("ns %.1f\nns_counted %.1f\n", ns[0], ns[1]);
    return 0;
}

struct counted_pid {
    pid_t pid;
    int *fds;
    pid_t *tids;
    size_t n, cap;
};

static int has_tid(const struct counted_pid *c, pid_t tid)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->tids[i] == tid)
            return 1;
    return 0;
}

/* Opens a counter on each thread of c->pid not counted yet; returns how many it opened. A thread
 * started by a counted one is counted through inheritance; the rescans catch the ones started by
 * a thread before its counter was open. */
static size_t count_scan(long tracepoint, struct counted_pid *c)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)c->pid);
    DIR *d = opendir(path);
    if (!d)
        die("%s: %s", path, strerror(errno));
    size_t opened = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        pid_t tid = (pid_t)atoi(e->d_name);
        if (tid <= 0 || has_tid(c, tid))
            continue;
        int fd = count_open(tracepoint, tid);
        if (fd < 0) {
            if (errno == ESRCH)
                continue; /* the thread ended in between */
            die("perf_event_open(raw_syscalls:sys_enter) on thread %d: %s", (int)tid,
                strerror(errno));
        }
        if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 16;
            c->fds = realloc(c->fds, c->cap * sizeof(*c->fds));
            c->tids = realloc(c->tids, c->cap * sizeof(*c->tids));
            if (!c->fds || !c->tids)
                die("out of memory");
        }
        c->fds[c->n] = fd;
        c->tids[c->n++] = tid;
        opened++;
    }
    closedir(d);
    return opened;
}

static int cmd_count(int n, char **pids)
{
    long tracepoint = syscall_tracepoint();
    if (tracepoint < 0)
        die(NO_TRACEPOINT);
    struct counted_pid *c = calloc((size_t)n, sizeof(*c));
    if (!c)
        die("out of memory");
    for (int i = 0; i < n; i++) {
        c[i].pid = (pid_t)atoi(pids[i]);
        while (count_scan(tracepoint, &c[i]) > 0)
            ;
    }
    printf("ready\n");
    fflush(stdout);
    char buf[256];
    while (read(STDIN_FILENO, buf, sizeof(buf)) > 0)
        ;
    for (int i = 0; i < n; i++) {
        uint64_t total = 0;
        for (size_t k = 0; k < c[i].n; k++)
            total += count_read(c[i].fds[k]);
        printf("%d %llu\n", (int)c[i].pid, (unsigned long long)total);
    }
    return 0;
}

static void usage(void)
{
    die("usage: bench-refs spawn SECONDS PROCS | sh N | tcp MIB SECONDS | "
        "fdatasync DIR N [GAP_MS] | pagecache DIR MIB [hot|cold|fresh [KEEP_MIB]] | touch MIB | "
        "syscall SECONDS | count PID...");
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *cmd = argv[1];
    if (!strcmp(cmd, "spawn") && argc == 4)
        return cmd_spawn(atof(argv[2]), atoi(argv[3]));
    if (!strcmp(cmd, "sh") && argc == 3 && atoi(argv[2]) > 0)
        return cmd_sh(atoi(argv[2]));
    if (!strcmp(cmd, "tcp") && argc == 4)
        return cmd_tcp(atol(argv[2]), atof(argv[3]));
    if (!strcmp(cmd, "fdatasync") && (argc == 4 || argc == 5) && atoi(argv[3]) > 0)
        return cmd_fdatasync(argv[2], atoi(argv[3]), argc == 5 ? atoi(argv[4]) : 0);
    if (!strcmp(cmd, "pagecache") && argc >= 4 && argc <= 6 && atol(argv[3]) > 0)
        return cmd_pagecache(argv[2], atol(argv[3]), argc >= 5 ? argv[4] : "hot",
                             argc == 6 ? atol(argv[5]) : -1);
    if (!strcmp(cmd, "touch") && argc == 3 && atol(argv[2]) > 0)
        return cmd_touch(atol(argv[2]));
    if (!strcmp(cmd, "syscall") && argc == 3)
        return cmd_syscall(atof(argv[2]));
    if (!strcmp(cmd, "count") && argc >= 3)
        return cmd_count(argc - 2, argv + 2);
    usage();
    return 1;
}
