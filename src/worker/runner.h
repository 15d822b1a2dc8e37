/*
 * Runs one task as a process group and turns its output into lines and items.
 *
 * Everything here runs on the loop thread, on libev's default loop (the only
 * one that can watch children). No function blocks: the child is started with
 * posix_spawn (never fork, because gRPC is initialised in this process), its
 * stdout and stderr are non-blocking pipes read by ev_io watchers, and its end
 * is seen by an ev_child watcher.
 */
#ifndef CRAWLAB_WORKER_RUNNER_H
#define CRAWLAB_WORKER_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>
#include <jansson.h>

/* Delay between SIGTERM and SIGKILL when runner_spec.cancel_grace_ms is 0. */
#define RUNNER_DEFAULT_CANCEL_GRACE_MS 15000
/* How long output may stay open after the shell exited when runner_spec.eof_wait_ms is 0. */
#define RUNNER_DEFAULT_EOF_WAIT_MS 5000

/*
 * What to run. Every pointer is borrowed for the duration of runner_start
 * only; the runner keeps its own copies of what it needs later.
 */
struct runner_spec {
    const char *task_id;  /* For CRAWLAB_TASK_ID and log messages. */
    const char *node_key; /* For CRAWLAB_NODE_KEY. */
    const char *cmd;      /* Runs /bin/sh -c "cmd param". */
    const char *param;    /* May be NULL or "" (then just "cmd"). */
    const char *workdir;  /* Created if missing (mkdir -p); NULL keeps our cwd. */
    /* NULL-terminated "K=V" entries from the TaskSpec, may be NULL. */
    const char *const *env;
    uint64_t timeout_ms;      /* 0 = none. */
    uint64_t cancel_grace_ms; /* SIGTERM -> SIGKILL delay; 0 = RUNNER_DEFAULT_CANCEL_GRACE_MS. */
    size_t max_line;          /* Longest line delivered whole; 0 = 1 MiB. */
    /* Wait for EOF after the shell exited; 0 = RUNNER_DEFAULT_EOF_WAIT_MS. */
    uint64_t eof_wait_ms;
    /* Finds the processes that leave the group (worker/contain.h); NULL: the group only. Borrowed
     * until runner_free. */
    struct contain *contain;
};

enum runner_end { RUNNER_END_EXITED, RUNNER_END_SIGNALED };

struct runner_result {
    enum runner_end how;
    int code;       /* Exit status (EXITED) or signal number (SIGNALED) of the shell. */
    bool cancelled; /* runner_cancel was called before the end. */
    bool timed_out; /* timeout_ms elapsed and the runner cancelled the task itself. */
};

struct runner_proc;

/*
 * Called on the loop thread. on_log and on_items may call runner_cancel and
 * runner_pause on the same runner but never runner_free. Lines already read
 * from a pipe may still be delivered after runner_pause(p, true) returns.
 */
struct runner_callbacks {
    /*
     * One line of stdout or stderr (or one piece of a line longer than
     * max_line): valid UTF-8 without NUL, no '\n', borrowed for the call.
     * Lines of each stream arrive in order; the two streams interleave as
     * their pipes are read.
     */
    void (*on_log)(void *ctx, struct runner_proc *p, const char *line, size_t len);
    /*
     * A Crawlab SDK result line on stdout: a non-empty JSON array of objects,
     * borrowed for the call (json_incref it to keep it).
     */
    void (*on_items)(void *ctx, struct runner_proc *p, json_t *items);
    /*
     * Called exactly once, after both pipes reached EOF (every line was
     * delivered) and the shell was reaped. r is borrowed for the call. The
     * callee may call runner_free(p).
     */
    void (*on_exit)(void *ctx, struct runner_proc *p, const struct runner_result *r);
};

/*
 * Spawns the task: /bin/sh -c "cmd param" in a new process group whose id is
 * the shell's pid (with spec->contain, in the task's cgroup or under the
 * worker as subreaper, before the command runs), working directory spec->workdir (created with mode
 * 0755 when missing), stdin from /dev/null, signal mask empty and every signal at its default
 * disposition. Environment: ours minus every CRAWLAB_* name, plus CRAWLAB_TASK_ID and
 * CRAWLAB_NODE_KEY, then spec->env; a later entry replaces an earlier one of the same name.
 *
 * stdout lines that are SDK result lines go to on_items, all other stdout and
 * stderr lines to on_log, each sanitised to valid UTF-8 first. If the shell
 * exits while something else in its group keeps the pipes open, the runner
 * waits eof_wait_ms for EOF, then SIGKILLs the group and reads what is left.
 *
 * loop must be the default loop (ev_default_loop). cb and ctx are borrowed
 * until on_exit. Returns 0 and sets *out (owned by the caller, released with
 * runner_free after on_exit), or a negative errno: -EINVAL for a bad argument
 * (non-default loop, NULL cmd, env entry without '='), the error of mkdir or
 * pipe, or the error posix_spawn reports (chdir or exec failure included).
 * Failures other than -EINVAL for a NULL argument and -ENOMEM are logged here
 * with the task id, so the caller need not log them again.
 */
int runner_start(struct ev_loop *loop, const struct runner_spec *spec,
                 const struct runner_callbacks *cb, void *ctx, struct runner_proc **out);

/* The shell's pid, which is also the process group id. */
pid_t runner_pid(const struct runner_proc *p);

/*
 * Cancels the task: SIGTERM to the whole process group, then SIGKILL to the
 * group after cancel_grace_ms; force sends SIGKILL at once (also after an
 * earlier graceful cancel). Idempotent, and a no-op after on_exit. The result
 * then has cancelled=true. A timeout does the same by itself and sets
 * timed_out instead. Every SIGKILL also reaches the task's processes outside
 * the group (spec->contain). When a run ends, whatever is left of the task is
 * SIGKILLed (with spec->contain; without it, what is left of the group of a
 * cancelled or timed-out run), so no process of a task outlives it.
 */
void runner_cancel(struct runner_proc *p, bool force);

/*
 * Back-pressure: stops (true) or resumes (false) reading the pipes; a child
 * writing to a full pipe blocks. The timeout keeps running while paused, the
 * wait for EOF after the shell exited does not. Idempotent.
 */
void runner_pause(struct runner_proc *p, bool paused);

/*
 * Releases the runner. Call only after on_exit (from inside on_exit is fine).
 * Called earlier by mistake, it SIGKILLs the group and stops every watcher so
 * that no callback follows.
 */
void runner_free(struct runner_proc *p);

#endif
