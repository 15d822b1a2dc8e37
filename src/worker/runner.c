#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2 */
#endif

#include "worker/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h> /* struct clone_args, CLONE_INTO_CGROUP */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/log.h"
#include "runtime/spawn.h"
#include "worker/contain.h"
#include "runtime/utf8.h"
#include "worker/ipc.h"
#include "worker/lines.h"

extern char **environ;

/* One read(2) at most; lines longer than this are assembled by the splitter. */
#define READ_CHUNK 65536
/* Reads per wakeup, so that one chatty task cannot starve the rest of the loop. */
#define READS_PER_WAKEUP 16

struct stream {
    ev_io io;
    struct runner_proc *p;
    struct line_splitter split;
    int fd; /* Our read end, -1 once EOF was handled. */
    bool is_stdout;
};

struct runner_proc {
    struct ev_loop *loop;
    struct runner_callbacks cb;
    void *ctx;
    char *task_id;
    pid_t pid;
    struct contain *contain; /* NULL: the process group is all there is */
    struct stream out;
    struct stream err;
    ev_child child_w;
    ev_timer timeout_w; /* timeout_ms after the start. */
    ev_timer grace_w;   /* SIGTERM -> SIGKILL. */
    ev_timer eof_w;     /* Shell exited, output still open. */
    uint64_t grace_ms;
    uint64_t eof_wait_ms;
    int status; /* From waitpid, valid once exited. */
    bool exited;
    bool paused;
    bool draining; /* Group SIGKILLed after eof_w: EAGAIN now counts as EOF. */
    bool term_sent;
    bool kill_sent;
    bool cancelled;
    bool timed_out;
    bool done; /* on_exit was called. */
};

/*
 * Every runner lives on the default loop's thread and a read's bytes are fed
 * to the splitter before the next read, so one buffer serves all of them.
 */
static char read_buf[READ_CHUNK];

static ev_tstamp ms_to_tstamp(uint64_t ms)
{
    return (ev_tstamp)ms / 1000.0;
}

static void signal_group(struct runner_proc *p, int sig)
{
    if (kill(-p->pid, sig) < 0 && errno != ESRCH)
        log_error("task %s: kill(-%d, %s) failed: %s", p->task_id, (int)p->pid, strsignal(sig),
                  strerror(errno));
}

/* SIGKILL to the group and to whatever of the task left it. */
static void kill_task(struct runner_proc *p)
{
    signal_group(p, SIGKILL);
    if (p->contain)
        contain_kill(p->contain, p->task_id);
}

/* Sanitises one line and hands it to on_items or on_log. */
static void deliver_line(void *ctx, const char *line, size_t len)
{
    struct stream *s = ctx;
    struct runner_proc *p = s->p;
    char *clean = NULL;
    size_t clean_len = len;

    if (utf8_sanitize(line, len, &clean, &clean_len) < 0) {
        log_error("task %s: out of memory sanitising a %zu-byte output line, line dropped",
                  p->task_id, len);
        return;
    }
    if (clean) {
        line = clean;
        len = clean_len;
    }
    json_t *items = NULL;
    if (s->is_stdout && ipc_parse_line(line, len, &items) == 1) {
        if (json_array_size(items) > 0 && p->cb.on_items)
            p->cb.on_items(p->ctx, p, items);
        json_decref(items);
    } else if (p->cb.on_log) {
        p->cb.on_log(p->ctx, p, line, len);
    }
    free(clean);
}

/*
 * Handles EOF: the watcher stops and the fd closes before the trailing
 * partial line goes out, so a callback resuming reads cannot touch them.
 */
static void close_stream(struct runner_proc *p, struct stream *s)
{
    ev_io_stop(p->loop, &s->io);
    close(s->fd);
    s->fd = -1;
    line_splitter_finish(&s->split, deliver_line, s);
}

static void read_stream(struct runner_proc *p, struct stream *s)
{
    for (int i = 0; i < READS_PER_WAKEUP; i++) {
        if (s->fd < 0 || p->paused)
            return;
        ssize_t n = read(s->fd, read_buf, sizeof(read_buf));
        if (n > 0) {
            line_splitter_feed(&s->split, read_buf, (size_t)n, deliver_line, s);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* After the SIGKILL of eof_w, an empty pipe may be held by an escaped process. */
            if (p->draining)
                close_stream(p, s);
            return;
        }
        if (n < 0)
            log_error("task %s: reading %s failed: %s", p->task_id,
                      s->is_stdout ? "stdout" : "stderr", strerror(errno));
        close_stream(p, s);
        return;
    }
    /* Draining must not wait for readiness that may never come: continue next iteration. */
    if (p->draining && s->fd >= 0 && !p->paused)
        ev_feed_event(p->loop, &s->io, EV_READ);
}

/*
 * Calls on_exit once the shell was reaped and both pipes reached EOF. It is
 * the last thing any watcher callback does, because on_exit may free p.
 */
static void maybe_finish(struct runner_proc *p)
{
    if (p->done || !p->exited || p->out.fd >= 0 || p->err.fd >= 0)
        return;
    p->done = true;
    ev_timer_stop(p->loop, &p->timeout_w);
    ev_timer_stop(p->loop, &p->grace_w);
    ev_timer_stop(p->loop, &p->eof_w);
    /* Processes of the task that closed their output must not outlive it. The group alone is
     * killed only for a cancelled task: after a normal end its id may already be reused. */
    if (p->contain)
        contain_kill(p->contain, p->task_id);
    else if (p->cancelled || p->timed_out)
        signal_group(p, SIGKILL);

    struct runner_result r = {
        .how = RUNNER_END_EXITED,
        .code = 0,
        .cancelled = p->cancelled,
        .timed_out = p->timed_out,
    };
    if (WIFSIGNALED(p->status)) {
        r.how = RUNNER_END_SIGNALED;
        r.code = WTERMSIG(p->status);
    } else {
        r.code = WEXITSTATUS(p->status);
    }
    log_debug("task %s: pid %d %s %d%s%s", p->task_id, (int)p->pid,
              r.how == RUNNER_END_SIGNALED ? "killed by signal" : "exited with", r.code,
              r.cancelled ? ", cancelled" : "", r.timed_out ? ", timed out" : "");
    if (p->cb.on_exit)
        p->cb.on_exit(p->ctx, p, &r);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct stream *s = w->data;
    struct runner_proc *p = s->p;
    read_stream(p, s);
    maybe_finish(p);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    struct runner_proc *p = w->data;
    ev_child_stop(loop, w);
    p->exited = true;
    p->status = w->rstatus;
    /* The shell's end decides the outcome; what lingers is handled by eof_w and cancel. */
    ev_timer_stop(loop, &p->timeout_w);
    if ((p->out.fd >= 0 || p->err.fd >= 0) && !p->paused) {
        ev_timer_set(&p->eof_w, ms_to_tstamp(p->eof_wait_ms), 0.);
        ev_timer_start(loop, &p->eof_w);
    }
    maybe_finish(p);
}

static void eof_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct runner_proc *p = w->data;
    log_warn("task %s: shell exited but its output stayed open for %llu ms, killing process "
             "group %d",
             p->task_id, (unsigned long long)p->eof_wait_ms, (int)p->pid);
    p->draining = true;
    kill_task(p);
    p->kill_sent = true;
    read_stream(p, &p->out);
    read_stream(p, &p->err);
    maybe_finish(p);
}

static void grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct runner_proc *p = w->data;
    log_info("task %s: still running %llu ms after SIGTERM, sending SIGKILL to group %d",
             p->task_id, (unsigned long long)p->grace_ms, (int)p->pid);
    kill_task(p);
    p->kill_sent = true;
}

/* SIGTERM now and SIGKILL after the grace period, or SIGKILL at once. */
static void terminate(struct runner_proc *p, bool force)
{
    if (p->kill_sent)
        return;
    if (force) {
        ev_timer_stop(p->loop, &p->grace_w);
        kill_task(p);
        p->kill_sent = true;
        p->term_sent = true;
        return;
    }
    if (p->term_sent)
        return;
    p->term_sent = true;
    signal_group(p, SIGTERM);
    /* A stopped process would hold SIGTERM pending until the SIGKILL. */
    signal_group(p, SIGCONT);
    ev_now_update(p->loop);
    ev_timer_set(&p->grace_w, ms_to_tstamp(p->grace_ms), 0.);
    ev_timer_start(p->loop, &p->grace_w);
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct runner_proc *p = w->data;
    log_info("task %s: timed out, terminating process group %d", p->task_id, (int)p->pid);
    p->timed_out = true;
    terminate(p, false);
}

void runner_cancel(struct runner_proc *p, bool force)
{
    if (p->done)
        return;
    p->cancelled = true;
    terminate(p, force);
}

void runner_pause(struct runner_proc *p, bool paused)
{
    if (p->done || p->paused == paused)
        return;
    p->paused = paused;
    struct stream *streams[] = {&p->out, &p->err};
    for (size_t i = 0; i < 2; i++) {
        struct stream *s = streams[i];
        if (s->fd < 0)
            continue;
        if (paused) {
            ev_io_stop(p->loop, &s->io);
        } else {
            ev_io_start(p->loop, &s->io);
            /* A drained, empty pipe never becomes readable again: look at it once more. */
            if (p->draining)
                ev_feed_event(p->loop, &s->io, EV_READ);
        }
    }
    if (p->exited && !p->draining) {
        /* The EOF wait measures a task that is not reading, not one we hold back. */
        if (paused) {
            ev_timer_stop(p->loop, &p->eof_w);
        } else {
            ev_now_update(p->loop);
            ev_timer_set(&p->eof_w, ms_to_tstamp(p->eof_wait_ms), 0.);
            ev_timer_start(p->loop, &p->eof_w);
        }
    }
}

pid_t runner_pid(const struct runner_proc *p)
{
    return p->pid;
}

void runner_free(struct runner_proc *p)
{
    if (!p)
        return;
    if (!p->done) {
        log_warn("task %s: runner freed before its end, killing process group %d", p->task_id,
                 (int)p->pid);
        kill_task(p);
    }
    if (p->contain)
        contain_release(p->contain, p->task_id);
    ev_child_stop(p->loop, &p->child_w);
    ev_timer_stop(p->loop, &p->timeout_w);
    ev_timer_stop(p->loop, &p->grace_w);
    ev_timer_stop(p->loop, &p->eof_w);
    struct stream *streams[] = {&p->out, &p->err};
    for (size_t i = 0; i < 2; i++) {
        ev_io_stop(p->loop, &streams[i]->io);
        if (streams[i]->fd >= 0)
            close(streams[i]->fd);
        line_splitter_free(&streams[i]->split);
    }
    free(p->task_id);
    free(p);
}

/* mkdir of each component of path in turn, from the root. */
static int mkdir_each(const char *path)
{
    char *buf = strdup(path);
    if (!buf)
        return -ENOMEM;
    for (char *c = buf + 1;; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char saved = *c;
        *c = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST) {
            int e = errno;
            free(buf);
            return -e;
        }
        if (saved == '\0')
            break;
        *c = saved;
    }
    free(buf);
    return 0;
}

/* Makes the directory path, and its parents when they are missing: one mkdir when only path is
 * (a task's directory under the worker's, the usual case). */
static int mkdir_p(const char *path)
{
    if (mkdir(path, 0755) == 0)
        return 0;
    if (errno == ENOENT) {
        int rc = mkdir_each(path);
        if (rc < 0)
            return rc;
    } else if (errno != EEXIST) {
        return -errno;
    }
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static size_t env_name_len(const char *kv)
{
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : strlen(kv);
}

/* Adds kv to envp, replacing an entry of the same name. envp has room for one more. */
static void env_put(const char **envp, size_t *n, const char *kv)
{
    size_t name = env_name_len(kv);
    for (size_t i = 0; i < *n; i++) {
        if (env_name_len(envp[i]) == name && strncmp(envp[i], kv, name) == 0) {
            envp[i] = kv;
            return;
        }
    }
    envp[(*n)++] = kv;
}

/*
 * The child's environment: ours without CRAWLAB_* (the worker's own settings,
 * the auth key among them, are none of the task's business), then the task's
 * identity, then the TaskSpec. The array is malloc'd; the strings are
 * borrowed from environ, ids and spec.
 */
static const char **build_env(const struct runner_spec *spec, const char *id_kv, const char *key_kv)
{
    size_t n_inherited = 0, n_spec = 0;
    while (environ && environ[n_inherited])
        n_inherited++;
    while (spec->env && spec->env[n_spec])
        n_spec++;

    const char **envp = calloc(n_inherited + 2 + n_spec + 1, sizeof(*envp));
    if (!envp)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < n_inherited; i++) {
        if (strncmp(environ[i], "CRAWLAB_", 8) != 0)
            envp[n++] = environ[i];
    }
    env_put(envp, &n, id_kv);
    env_put(envp, &n, key_kv);
    for (size_t i = 0; i < n_spec; i++)
        env_put(envp, &n, spec->env[i]);
    envp[n] = NULL;
    return envp;
}

static char *join3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = malloc(la + lb + lc + 1);
    if (!s)
        return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

/*
 * Moves an fd above 2 if needed: with our own stdio closed, a pipe end could
 * be 1 or 2, and the child's dup2 onto 1 and 2 would then clobber it.
 */
static int above_stdio(int *fd)
{
    if (*fd > 2)
        return 0;
    int nfd = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    if (nfd < 0)
        return -errno;
    close(*fd);
    *fd = nfd;
    return 0;
}

/* A pipe with both ends above stdio, close-on-exec; our end (fds[our]) non-blocking when
 * asked: the child's end always blocks. */
static int make_pipe_ends(int fds[2], int our, bool nonblock)
{
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    int rc = above_stdio(&fds[0]);
    if (rc == 0)
        rc = above_stdio(&fds[1]);
    if (rc == 0 && nonblock) {
        int fl = fcntl(fds[our], F_GETFL);
        if (fl < 0 || fcntl(fds[our], F_SETFL, fl | O_NONBLOCK) < 0)
            rc = -errno;
    }
    if (rc < 0) {
        close(fds[0]);
        close(fds[1]);
        fds[0] = fds[1] = -1;
    }
    return rc;
}

/* An output pipe: we read fds[0] without blocking; the child blocks on a full pipe
 * (back-pressure). */
static int make_pipe(int fds[2])
{
    return make_pipe_ends(fds, 0, true);
}

static void close_if_open(int fd)
{
    if (fd >= 0)
        close(fd);
}

/*
 * Starting a task's shell inside its cgroup from the first instruction: clone3 with
 * CLONE_INTO_CGROUP (Linux 5.7). Moving a running process into a cgroup instead (writing its pid
 * to cgroup.procs) makes the kernel wait for an RCU grace period, milliseconds on every task start;
 * a process born in the cgroup costs nothing of the kind. CLONE_VFORK holds the calling thread
 * until the child has exec'd or exited, as posix_spawn does.
 *
 * On x86-64 the child also shares the worker's memory (CLONE_VM), as posix_spawn's does: a child
 * with a copy of it (as after fork) costs the copy of the worker's page tables, then a
 * copy-on-write fault for every page the worker writes while the child lives. Sharing needs the
 * child to run on a stack of its own, which clone3 through syscall(2) cannot give (the child
 * would return through the wrapper's frame), hence the few instructions of clone3_run. Elsewhere
 * the child gets a copy.
 */

/* What the child of clone_shell needs; it lives in the parent, which waits. */
struct child_start {
    const char *workdir;
    char **argv;
    const char **envp;
    int out_w, err_w, report_w;
    uint64_t reset; /* the signals to set to their default: bit n - 1 for signal n */
};

/* The hexadecimal mask after "\n<name>:\t" in a /proc status text; false if it is not there. */
static bool status_mask(const char *text, const char *name, uint64_t *out)
{
    const char *at = strstr(text, name);
    if (!at)
        return false;
    char *end;
    errno = 0;
    *out = strtoull(at + strlen(name), &end, 16);
    return errno == 0 && end != at + strlen(name);
}

/*
 * The signals the child of clone_shell must set to their default before it unblocks them: those
 * this process ignores (an ignored signal stays ignored through execve) or catches (the child
 * shares our memory and must not run our handlers before its execve, which resets them). Read from
 * /proc/self/status, 8 µs here, where setting all 64 signals cost the child 57 µs while the
 * worker's loop waits for it (CLONE_VFORK). Every signal when the file cannot be read.
 */
static uint64_t signals_to_reset(void)
{
    char text[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
    if (fd >= 0)
        close(fd);
    text[n > 0 ? n : 0] = '\0';
    uint64_t ignored, caught;
    if (n <= 0 || !status_mask(text, "\nSigIgn:\t", &ignored) ||
        !status_mask(text, "\nSigCgt:\t", &caught))
        return UINT64_MAX;
    return ignored | caught;
}

/*
 * In the child of clone_shell, which may share the worker's memory with the worker's threads
 * running: system calls only (no locks, no allocation, no exit handlers) up to execve. On failure
 * the errno goes up report_w and the child returns its exit status. Not instrumented by ASan: its
 * frames are on a stack ASan does not know.
 */
__attribute__((no_sanitize_address)) static int clone_child(void *arg)
{
    const struct child_start *cs = arg;
    int e = 0;
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigset_t none;
    sigemptyset(&none);
    for (int sig = 1; sig < NSIG && sig <= 64; sig++)
        if ((cs->reset >> (sig - 1) & 1) && sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL); /* fails harmlessly for the signals glibc reserves */
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Close-on-exec, so that only its copy as fd 0 reaches the shell (fd 0 itself, when the
     * worker has no stdin, is made inheritable by hand). */
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || (null == 0 ? fcntl(0, F_SETFD, 0) : dup2(null, 0)) < 0 ||
        dup2(cs->out_w, 1) < 0 || dup2(cs->err_w, 2) < 0 || setpgid(0, 0) < 0 ||
        (cs->workdir && chdir(cs->workdir) < 0))
        e = errno;
    if (!e) {
        execve("/bin/sh", cs->argv, (char *const *)cs->envp);
        e = errno;
    }
    ssize_t n = write(cs->report_w, &e, sizeof(e));
    (void)n;
    return 127;
}

#if defined(__x86_64__)
#define CHILD_STACK_SIZE (256 * 1024)

/*
 * clone3(args) whose child runs fn(arg) on the stack args names and exits with its value (a raw
 * exit: nothing of the worker's runs in it). After the syscall instruction the child has every
 * register but rax, rcx and r11 as the parent had them, so fn and arg ride in r12 and r13.
 * Returns the child's pid, or -1 and errno.
 */
static long clone3_run(struct clone_args *args, int (*fn)(void *), void *arg)
{
    register long r12 __asm__("r12") = (long)fn;
    register long r13 __asm__("r13") = (long)arg;
    long ret = SYS_clone3;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "xor %%ebp, %%ebp\n\t"
                     "mov %%r13, %%rdi\n\t"
                     "call *%%r12\n\t"
                     "mov %%eax, %%edi\n\t"
                     "mov %[exit], %%eax\n\t"
                     "syscall\n\t"
                     "hlt\n"
                     "1:"
                     : "+a"(ret)
                     : "D"(args), "S"(sizeof(*args)), "r"(r12), "r"(r13), [exit] "i"(SYS_exit)
                     : "rcx", "r11", "memory");
    if (ret < 0) {
        errno = (int)-ret;
        return -1;
    }
    return ret;
}

/* The stack of the child that shares our memory. One is enough: only the loop thread starts
 * tasks, and CLONE_VFORK holds it until the child no longer runs on it. NULL if it cannot be had.
 */
static void *child_stack(void)
{
    static void *stack;
    if (!stack) {
        void *m = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        mprotect(m, 4096, PROT_NONE); /* a guard page below it */
        stack = m;
    }
    return stack;
}
#endif

/* Starts cs's child in the cgroup open as cgroup_fd; its pid, or -1 and errno. */
static long clone_into(int cgroup_fd, struct child_start *cs)
{
    struct clone_args args = {
        .flags = CLONE_VFORK | CLONE_INTO_CGROUP,
        .exit_signal = SIGCHLD,
        .cgroup = (uint64_t)cgroup_fd,
    };
#if defined(__x86_64__)
    void *stack = child_stack();
    if (stack) {
        /* No handler of ours may run in a child that shares our memory: it starts with every
         * signal blocked and sets its dispositions to default before it unblocks them. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        args.flags |= CLONE_VM;
        args.stack = (uint64_t)(uintptr_t)stack;
        args.stack_size = CHILD_STACK_SIZE;
        long child = clone3_run(&args, clone_child, cs);
        int e = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        errno = e;
        return child;
    }
#endif
    long child = syscall(SYS_clone3, &args, sizeof(args));
    if (child == 0)
        _exit(clone_child(cs));
    return child;
}

/*
 * Starts sh -c cmdline in the cgroup open as cgroup_fd, with the same file descriptors, process
 * group, signal mask and dispositions as spawn_shell gives. 0 and *pid, -ENOSYS when this kernel
 * cannot clone into a cgroup (the caller then moves the process in itself), or another -errno.
 */
static int clone_shell(pid_t *pid, int cgroup_fd, const char *workdir, const char *cmdline,
                       const char **envp, int out_w, int err_w)
{
    int report[2];
    if (pipe2(report, O_CLOEXEC) < 0)
        return -errno;
    char *argv[] = {"sh", "-c", (char *)cmdline, NULL};
    struct child_start cs = {workdir, argv, envp, out_w, err_w, report[1], signals_to_reset()};
    long child = clone_into(cgroup_fd, &cs);
    int rc = child < 0 ? -errno : 0;
    close(report[1]);
    if (rc == 0) {
        int e = 0;
        ssize_t n;
        do
            n = read(report[0], &e, sizeof(e));
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof(e)) {
            waitpid((pid_t)child, NULL, 0);
            rc = -e;
        } else {
            *pid = (pid_t)child;
        }
    }
    close(report[0]);
    /* Kernels before 5.3 have no clone3, before 5.7 no CLONE_INTO_CGROUP. */
    return rc == -E2BIG || rc == -EINVAL ? -ENOSYS : rc;
}

/* Set once clone_shell found that this kernel cannot clone into a cgroup (or by a test). */
static bool clone_into_cgroup_missing;

void runner_test_move_into_cgroup(bool on)
{
    clone_into_cgroup_missing = on;
}

/* clone_shell into the task's cgroup; -ENOSYS where that cannot be done (logged once). */
static int spawn_in_cgroup(struct contain *c, const char *task_id, pid_t *pid, const char *workdir,
                           const char *cmdline, const char **envp, int out_w, int err_w)
{
    if (clone_into_cgroup_missing)
        return -ENOSYS;
    int cgroup_fd = contain_cgroup_fd(c, task_id);
    if (cgroup_fd < 0)
        return cgroup_fd;
    int rc = clone_shell(pid, cgroup_fd, workdir, cmdline, envp, out_w, err_w);
    if (rc == -ENOSYS) {
        clone_into_cgroup_missing = true;
        log_info("this kernel cannot start a process in a cgroup: each task's shell is moved into "
                 "its cgroup before it runs its command");
    }
    return rc;
}

/*
 * Where clone_shell cannot be used, a contained task's shell waits on fd 3 until the worker has
 * moved it into its cgroup, then runs
 * the command in the same process (its pid stays the group's id), as sh -c would: $0 is "sh" and
 * there are no positional parameters. If the worker goes away first, it exits 125 unrun.
 */
#define GATED_SHELL "read -r _ <&3 || exit 125; exec 3<&-; eval \"set --; $1\""

/* The task's shell by posix_spawn (runtime/spawn.h): stdin /dev/null, stdout out_w, stderr err_w;
 * gate_r >= 0 becomes its fd 3 and the shell runs GATED_SHELL. 0 or a negative errno. */
static int spawn_shell(pid_t *pid, const char *workdir, const char *cmdline, const char **envp,
                       int out_w, int err_w, int gate_r)
{
    char *plain[] = {"sh", "-c", (char *)cmdline, NULL};
    char *gated[] = {"sh", "-c", GATED_SHELL, "sh", (char *)cmdline, NULL};
    const int fds[4] = {SPAWN_DEVNULL, out_w, err_w, gate_r >= 0 ? gate_r : SPAWN_INHERIT};
    return spawn_sh(gate_r >= 0 ? gated : plain, (char *const *)envp, workdir, fds, pid);
}

/*
 * Moves the waiting shell into the task's cgroup and lets it run (closes gate_w either way). When
 * it cannot be contained it is killed and reaped here, unrun.
 */
static int open_gate(struct contain *c, const char *task_id, pid_t pid, int gate_w)
{
    int rc = contain_adopt(c, task_id, pid);
    if (rc == 0 && write(gate_w, "\n", 1) != 1) {
        rc = -errno;
        log_error("task %s: cannot let its shell start: %s", task_id, strerror(errno));
    }
    close(gate_w);
    if (rc < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return rc;
}

static void stream_init(struct runner_proc *p, struct stream *s, int fd, bool is_stdout,
                        size_t max_line)
{
    s->p = p;
    s->fd = fd;
    s->is_stdout = is_stdout;
    line_splitter_init(&s->split, max_line);
    ev_io_init(&s->io, io_cb, fd, EV_READ);
    s->io.data = s;
}

int runner_start(struct ev_loop *loop, const struct runner_spec *spec,
                 const struct runner_callbacks *cb, void *ctx, struct runner_proc **out)
{
    *out = NULL;
    if (!loop || !ev_is_default_loop(loop) || !spec || !spec->cmd || !cb)
        return -EINVAL;
    const char *task_id = spec->task_id ? spec->task_id : "";
    for (size_t i = 0; spec->env && spec->env[i]; i++) {
        const char *eq = strchr(spec->env[i], '=');
        if (!eq || eq == spec->env[i]) {
            log_error("task %s: environment entry %zu is not NAME=VALUE", task_id, i);
            return -EINVAL;
        }
    }
    const char *workdir = spec->workdir && spec->workdir[0] ? spec->workdir : NULL;
    int rc;
    if (workdir && (rc = mkdir_p(workdir)) < 0) {
        log_error("task %s: cannot create working directory %s: %s", task_id, workdir,
                  strerror(-rc));
        return rc;
    }

    struct runner_proc *p = calloc(1, sizeof(*p));
    const char *param = spec->param ? spec->param : "";
    char *cmdline = join3(spec->cmd, param[0] ? " " : "", param);
    char *id_kv = join3("CRAWLAB_TASK_ID", "=", task_id);
    char *key_kv = join3("CRAWLAB_NODE_KEY", "=", spec->node_key ? spec->node_key : "");
    const char **envp = NULL;
    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, gate[2] = {-1, -1};

    rc = -ENOMEM;
    if (!p || !cmdline || !id_kv || !key_kv || !(p->task_id = strdup(task_id)))
        goto fail;
    if (!(envp = build_env(spec, id_kv, key_kv)))
        goto fail;
    if ((rc = make_pipe(out_pipe)) < 0 || (rc = make_pipe(err_pipe)) < 0) {
        log_error("task %s: cannot create output pipes: %s", task_id, strerror(-rc));
        goto fail;
    }
    if (spec->contain && (rc = contain_prepare(spec->contain, task_id)) < 0)
        goto fail;
    bool in_cgroup = spec->contain && contain_per_task_cgroup(spec->contain);
    rc = in_cgroup ? spawn_in_cgroup(spec->contain, task_id, &p->pid, workdir, cmdline, envp,
                                     out_pipe[1], err_pipe[1])
                   : -ENOSYS;
    if (rc == -ENOSYS) {
        if (in_cgroup && (rc = make_pipe_ends(gate, 1, false)) < 0) {
            log_error("task %s: cannot create its start pipe: %s", task_id, strerror(-rc));
            goto fail;
        }
        rc = spawn_shell(&p->pid, workdir, cmdline, envp, out_pipe[1], err_pipe[1], gate[0]);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    close_if_open(gate[0]);
    out_pipe[1] = err_pipe[1] = gate[0] = -1;
    if (rc < 0) {
        log_error("task %s: cannot start /bin/sh -c '%s' in %s: %s", task_id, cmdline,
                  workdir ? workdir : ".", strerror(-rc));
        goto fail;
    }
    if (gate[1] >= 0) {
        rc = open_gate(spec->contain, task_id, p->pid, gate[1]); /* closes gate[1] */
        gate[1] = -1;
        if (rc < 0)
            goto fail;
    }

    p->loop = loop;
    p->contain = spec->contain;
    p->cb = *cb;
    p->ctx = ctx;
    p->grace_ms = spec->cancel_grace_ms ? spec->cancel_grace_ms : RUNNER_DEFAULT_CANCEL_GRACE_MS;
    p->eof_wait_ms = spec->eof_wait_ms ? spec->eof_wait_ms : RUNNER_DEFAULT_EOF_WAIT_MS;
    stream_init(p, &p->out, out_pipe[0], true, spec->max_line);
    stream_init(p, &p->err, err_pipe[0], false, spec->max_line);
    ev_io_start(loop, &p->out.io);
    ev_io_start(loop, &p->err.io);
    /*
     * No race with an early exit: the child is reaped by libev's SIGCHLD
     * handling inside ev_run, which cannot run before this watcher is started.
     */
    ev_child_init(&p->child_w, child_cb, p->pid, 0);
    p->child_w.data = p;
    ev_child_start(loop, &p->child_w);
    ev_timer_init(&p->timeout_w, timeout_cb, 0., 0.);
    ev_timer_init(&p->grace_w, grace_cb, 0., 0.);
    ev_timer_init(&p->eof_w, eof_cb, 0., 0.);
    p->timeout_w.data = p->grace_w.data = p->eof_w.data = p;
    if (spec->timeout_ms) {
        ev_now_update(loop);
        ev_timer_set(&p->timeout_w, ms_to_tstamp(spec->timeout_ms), 0.);
        ev_timer_start(loop, &p->timeout_w);
    }
    log_debug("task %s: started pid %d: /bin/sh -c '%s'", task_id, (int)p->pid, cmdline);

    free(cmdline);
    free(id_kv);
    free(key_kv);
    free(envp);
    *out = p;
    return 0;

fail:
    close_if_open(gate[0]);
    close_if_open(gate[1]);
    close_if_open(out_pipe[0]);
    close_if_open(out_pipe[1]);
    close_if_open(err_pipe[0]);
    close_if_open(err_pipe[1]);
    free(cmdline);
    free(id_kv);
    free(key_kv);
    free(envp);
    if (p && spec->contain)
        contain_release(spec->contain, task_id);
    if (p)
        free(p->task_id);
    free(p);
    return rc;
}
