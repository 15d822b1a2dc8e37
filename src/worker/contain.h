/*
 * Task containment: every process a task starts is found and killed when the task is cancelled,
 * times out or ends, and when its worker restarts -- also those that left the task's process group
 * (setsid, a double fork, a daemon). The process group alone cannot promise that.
 *
 * The worker picks one mechanism at start (contain_create):
 *   cgroup     each task runs in a cgroup v2 of its own, <scope>/<n> under the worker's cgroup,
 *              and is ended with cgroup.kill (or, on kernels without it, by killing what
 *              cgroup.procs lists until it is empty). A process cannot leave its cgroup without
 *              write access to the cgroup tree. The cgroups are made as needed and kept: a task
 *              gets one no process is left in. Needs a writable cgroup v2 hierarchy (root, or a
 *              delegated subtree such as systemd's Delegate=yes).
 *   subreaper  the worker is the child subreaper of everything it starts (PR_SET_CHILD_SUBREAPER),
 *              so escaped processes are re-parented to it rather than to init, and a walk of its
 *              descendants finds a task's processes by the CRAWLAB_TASK_ID in their environment.
 *              A process that clears its environment and escapes is missed; so is one that
 *              escapes while its worker is down.
 * A task started in cgroup mode is born in its cgroup (clone3 with CLONE_INTO_CGROUP), or, on a
 * kernel without that, waits before running its command until the worker has moved it there: so
 * nothing it forks can start outside.
 *
 * Loop thread of the worker; functions block briefly on /proc and cgroupfs I/O. Errors are logged
 * here with the task id; the functions that return int give 0 or a negative errno.
 */
#ifndef CRAWLAB_WORKER_CONTAIN_H
#define CRAWLAB_WORKER_CONTAIN_H

#include <stdbool.h>
#include <sys/types.h>

enum contain_mode {
    CONTAIN_AUTO, /* for contain_create: cgroup where it works, else subreaper */
    CONTAIN_CGROUP,
    CONTAIN_SUBREAPER,
};

struct contain;

/*
 * Sets up containment for a worker: scope names the worker's cgroup directory, which must be this
 * worker's alone and the same after a restart (its node key and machine id make it so): in cgroup
 * mode, whatever still runs in a cgroup under it is killed here. want CONTAIN_CGROUP fails with the
 * reason when cgroups cannot be used; CONTAIN_AUTO falls back to subreaper and logs why. max_pids >
 * 0 caps every task's processes and threads (its cgroup's pids.max): that needs cgroups with the
 * pids controller, and fails with the reason (-ENOTSUP) otherwise, whatever want says. *out is
 * released by contain_destroy.
 */
int contain_create(const char *scope, enum contain_mode want, int max_pids, struct contain **out);
void contain_destroy(struct contain *c);

/* The mechanism in use (never CONTAIN_AUTO) and its name ("cgroup" or "subreaper"). */
enum contain_mode contain_mode(const struct contain *c);
const char *contain_mode_name(enum contain_mode m);

/* Whether a new task starts in a cgroup of its own: cloned into it (contain_cgroup_fd), or
 * else waiting for contain_adopt before it runs its command. */
bool contain_per_task_cgroup(const struct contain *c);

/* Before the task's process starts: gives it a cgroup, an empty one or a new one (cgroup mode;
 * nothing otherwise). 0 or -errno (logged). */
int contain_prepare(struct contain *c, const char *task_id);

/* The task's cgroup directory, open (O_CLOEXEC) for clone3's CLONE_INTO_CGROUP, or -errno
 * (logged). cgroup mode only, after contain_prepare; the descriptor stays c's: not to be
 * closed. */
int contain_cgroup_fd(struct contain *c, const char *task_id);

/* Moves the task's first process into its cgroup (cgroup mode; nothing otherwise). */
int contain_adopt(struct contain *c, const char *task_id, pid_t pid);

/* SIGKILLs every process of the task: its cgroup, or (subreaper) the worker's descendants whose
 * environment names the task. The task's own process group is the caller's. */
void contain_kill(struct contain *c, const char *task_id);

/* After the task ended and was killed: its cgroup is free for another task once no process is
 * left in it (cgroup mode). */
void contain_release(struct contain *c, const char *task_id);

/* At start, for a task a previous run of this worker left behind: kills whatever of it still
 * runs anywhere on the machine with its CRAWLAB_TASK_ID (in cgroup mode its cgroup was emptied
 * by contain_create). */
void contain_sweep(struct contain *c, const char *task_id);

#endif
