#include "worker/contain.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/limits.h"
#include "runtime/log.h"

/* Kill rounds before giving up on a task that forks faster than it is killed. */
#define KILL_ROUNDS 100
/* Task cgroups whose killed processes had not all exited yet, removed at a later call. */
#define STALE_MAX 64

struct contain {
    enum contain_mode mode;
    char *dir;    /* cgroup mode: the worker's cgroup directory for its tasks */
    int max_pids; /* > 0: every task cgroup's pids.max */
    char stale[STALE_MAX][TASK_ID_LEN + 1];
    size_t n_stale;
};

/* ---- small file helpers ---- */

/* Reads the whole file at path into a malloc'd, NUL-terminated buffer. -errno. */
static int read_file(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            close(fd);
            return -ENOMEM;
        }
        if (n + 1 == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown)
                free(buf);
            buf = grown;
            continue;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int err = r < 0 ? -errno : 0;
            close(fd);
            if (err) {
                free(buf);
                return err;
            }
            buf[n] = '\0';
            *out = buf;
            if (len)
                *len = n;
            return 0;
        }
        n += (size_t)r;
    }
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    int rc = write(fd, text, len) == (ssize_t)len ? 0 : -errno;
    close(fd);
    return rc;
}

/* ---- finding our cgroup ---- */

/* Where the cgroup v2 hierarchy is mounted, and the hierarchy path its mount shows as its root. */
static int cgroup2_mount(char *mnt, size_t mnt_len, char *root, size_t root_len)
{
    char *text;
    int rc = read_file("/proc/self/mountinfo", &text, NULL);
    if (rc < 0)
        return rc;
    rc = -ENOENT;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *sep = strstr(line, " - ");
        if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0)
            continue;
        char r[PATH_MAX], m[PATH_MAX];
        if (sscanf(line, "%*s %*s %*s %4095s %4095s", r, m) != 2 || strchr(m, '\\'))
            continue;
        snprintf(mnt, mnt_len, "%s", m);
        snprintf(root, root_len, "%s", r);
        rc = 0;
        break;
    }
    free(text);
    return rc;
}

/* Our own cgroup v2 path, as /proc/self/cgroup gives it ("0::/path"). */
static int own_cgroup(char *path, size_t len)
{
    char *text;
    int rc = read_file("/proc/self/cgroup", &text, NULL);
    if (rc < 0)
        return rc;
    rc = -ENOENT;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "0::", 3) == 0) {
            snprintf(path, len, "%s", line + 3);
            rc = 0;
            break;
        }
    }
    free(text);
    return rc;
}

/* The directory of the worker's cgroup for its tasks: <mount>/<our cgroup>/<scope>, made. */
static int cgroup_dir(const char *scope, char **out, const char **why)
{
    char mnt[PATH_MAX], root[PATH_MAX], own[PATH_MAX];
    if (cgroup2_mount(mnt, sizeof(mnt), root, sizeof(root)) < 0) {
        *why = "no cgroup v2 hierarchy is mounted";
        return -ENOENT;
    }
    if (own_cgroup(own, sizeof(own)) < 0) {
        *why = "this process is in no cgroup v2";
        return -ENOENT;
    }
    /* A mount of a subtree (a container's) shows paths below its root only. */
    const char *rel = own;
    size_t root_n = strlen(root);
    if (strcmp(root, "/") != 0) {
        if (strncmp(own, root, root_n) != 0 || (own[root_n] && own[root_n] != '/')) {
            *why = "our cgroup is outside the mounted cgroup v2 tree";
            return -ENOENT;
        }
        rel = own + root_n;
    }
    char dir[PATH_MAX];
    while (*rel == '/')
        rel++;
    int n = snprintf(dir, sizeof(dir), "%s/%s%s%s", mnt, rel, *rel ? "/" : "", scope);
    if (n < 0 || (size_t)n >= sizeof(dir)) {
        *why = "the cgroup path is too long";
        return -ENAMETOOLONG;
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        *why = errno == EACCES || errno == EPERM || errno == EROFS
                   ? "the cgroup tree is not writable (delegate it, or run as root)"
                   : "cannot make a cgroup";
        return -errno;
    }
    return (*out = strdup(dir)) ? 0 : -ENOMEM;
}

/* ---- cgroup mode ---- */

/* Whether the controller list file at path (cgroup.controllers, cgroup.subtree_control) names
 * the controller. */
static bool lists_controller(const char *path, const char *name)
{
    char *text;
    if (read_file(path, &text, NULL) < 0)
        return false;
    bool found = false;
    for (char *w = strtok(text, " \n"); w && !found; w = strtok(NULL, " \n"))
        found = strcmp(w, name) == 0;
    free(text);
    return found;
}

/*
 * Makes the pids controller available to the task cgroups under dir: it must be enabled in dir's
 * parent (our own cgroup; the kernel allows that only where no process lives, or at the root, so
 * a service manager has to delegate it, as systemd's Delegate=yes does) and then in dir.
 */
static int enable_pids(const char *dir, const char **why)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/cgroup.controllers", dir);
    if (!lists_controller(path, "pids")) {
        snprintf(path, sizeof(path), "%s/../cgroup.subtree_control", dir);
        if (write_file(path, "+pids") < 0) {
            *why = "the pids controller is not available to the worker's cgroup (cgroup v2 with "
                   "the pids controller delegated to the worker is needed)";
            return -ENOTSUP;
        }
    }
    snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
    if (!lists_controller(path, "pids") && write_file(path, "+pids") < 0) {
        *why = "cannot enable the pids controller for the tasks' cgroups";
        return -ENOTSUP;
    }
    return 0;
}

static int task_path(const struct contain *c, const char *task_id, const char *file, char *buf,
                     size_t len)
{
    int n = snprintf(buf, len, "%s/%s%s%s", c->dir, task_id, file ? "/" : "", file ? file : "");
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* SIGKILLs what cgroup.procs lists, until it lists nothing (kernels before cgroup.kill). */
static void cgroup_kill_listed(const char *procs)
{
    for (int round = 0; round < KILL_ROUNDS; round++) {
        char *text;
        if (read_file(procs, &text, NULL) < 0)
            return;
        bool any = false;
        for (char *p = strtok(text, "\n"); p; p = strtok(NULL, "\n")) {
            pid_t pid = (pid_t)atoi(p);
            if (pid > 1 && kill(pid, SIGKILL) == 0)
                any = true;
        }
        free(text);
        if (!any)
            return;
    }
}

static void cgroup_kill(struct contain *c, const char *task_id)
{
    char path[PATH_MAX];
    if (task_path(c, task_id, "cgroup.kill", path, sizeof(path)) < 0)
        return;
    int rc = write_file(path, "1");
    if (rc == 0 || rc == -ENODEV)
        return; /* killed; or (ENODEV) nothing there to kill */
    if (rc != -ENOENT || task_path(c, task_id, "cgroup.procs", path, sizeof(path)) < 0) {
        if (rc != -ENOENT)
            log_warn("task %s: cannot kill its cgroup: %s", task_id, strerror(-rc));
        return;
    }
    cgroup_kill_listed(path);
}

/* rmdir of a task cgroup: 0, -EBUSY while killed processes are still exiting, -errno. */
static int remove_task_cgroup(struct contain *c, const char *task_id)
{
    char path[PATH_MAX];
    int rc = task_path(c, task_id, NULL, path, sizeof(path));
    if (rc == 0 && rmdir(path) < 0 && errno != ENOENT)
        rc = -errno;
    if (rc < 0 && rc != -EBUSY)
        log_warn("task %s: cannot remove its cgroup %s: %s", task_id, path, strerror(-rc));
    return rc;
}

/* Tries again to remove the cgroups that were busy. */
static void remove_stale(struct contain *c)
{
    size_t kept = 0;
    for (size_t i = 0; i < c->n_stale; i++)
        if (remove_task_cgroup(c, c->stale[i]) == -EBUSY)
            memmove(c->stale[kept++], c->stale[i], sizeof(c->stale[i]));
    c->n_stale = kept;
}

/* ---- subreaper mode ---- */

/* Whether the environment of pid holds exactly entry ("CRAWLAB_TASK_ID=<id>"). */
static bool environ_has(pid_t pid, const char *entry)
{
    char path[64], *env;
    size_t len;
    snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
    if (read_file(path, &env, &len) < 0)
        return false;
    bool found = false;
    size_t want = strlen(entry) + 1;
    for (size_t i = 0; i < len && !found; i += strlen(env + i) + 1)
        found = len - i >= want && memcmp(env + i, entry, want) == 0;
    free(env);
    return found;
}

/* Kills every process below pid (any of its threads' children, recursively) whose environment
 * holds entry. Returns how many were signalled. */
static int kill_descendants(pid_t pid, const char *entry, int depth)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d || depth > 64) {
        if (d)
            closedir(d);
        return 0;
    }
    int killed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char file[96], *kids;
        snprintf(file, sizeof(file), "/proc/%d/task/%d/children", (int)pid, atoi(de->d_name));
        if (read_file(file, &kids, NULL) < 0)
            continue;
        for (char *save, *p = strtok_r(kids, " \n", &save); p; p = strtok_r(NULL, " \n", &save)) {
            pid_t kid = (pid_t)atoi(p);
            if (kid <= 1)
                continue;
            killed += kill_descendants(kid, entry, depth + 1);
            if (environ_has(kid, entry) && kill(kid, SIGKILL) == 0)
                killed++;
        }
        free(kids);
    }
    closedir(d);
    return killed;
}

/* Kills every process on the machine whose environment holds entry (what we may read). */
static int kill_everywhere(const char *entry)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    int killed = 0;
    pid_t self = getpid();
    struct dirent *de;
    while ((de = readdir(d))) {
        pid_t pid = (pid_t)atoi(de->d_name);
        if (pid > 1 && pid != self && environ_has(pid, entry) && kill(pid, SIGKILL) == 0)
            killed++;
    }
    closedir(d);
    return killed;
}

static void marker(const char *task_id, char *buf, size_t len)
{
    snprintf(buf, len, "CRAWLAB_TASK_ID=%s", task_id);
}

/* ---- the interface ---- */

int contain_create(const char *scope, enum contain_mode want, int max_pids, struct contain **out)
{
    struct contain *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->max_pids = max_pids;
    if (max_pids > 0 && want == CONTAIN_SUBREAPER) {
        log_error("a task's process limit (--task-max-pids) needs cgroup containment");
        free(c);
        return -ENOTSUP;
    }
    const char *why = "not asked for";
    int rc = want == CONTAIN_SUBREAPER ? -ENOTSUP : cgroup_dir(scope, &c->dir, &why);
    if (rc == 0 && max_pids > 0)
        rc = enable_pids(c->dir, &why);
    if (rc == 0) {
        c->mode = CONTAIN_CGROUP;
        if (max_pids > 0)
            log_info("tasks run in cgroups under %s, at most %d processes each", c->dir, max_pids);
        else
            log_info("tasks run in cgroups under %s", c->dir);
    } else if (want == CONTAIN_CGROUP || max_pids > 0) {
        log_error("cannot contain tasks in cgroups%s: %s",
                  max_pids > 0 ? " with a process limit (--task-max-pids)" : "", why);
        if (c->dir)
            rmdir(c->dir);
        free(c->dir);
        free(c);
        return rc;
    } else {
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
            rc = -errno;
            log_error("cannot become the subreaper of the tasks: %s", strerror(errno));
            free(c);
            return rc;
        }
        c->mode = CONTAIN_SUBREAPER;
        if (want == CONTAIN_AUTO)
            log_info("no cgroup for tasks (%s): tasks are contained as the subreaper", why);
    }
    *out = c;
    return 0;
}

void contain_destroy(struct contain *c)
{
    if (!c)
        return;
    if (c->dir) {
        remove_stale(c);
        rmdir(c->dir); /* only when no task cgroup is left in it */
    }
    free(c->dir);
    free(c);
}

enum contain_mode contain_mode(const struct contain *c)
{
    return c->mode;
}

const char *contain_mode_name(enum contain_mode m)
{
    return m == CONTAIN_CGROUP ? "cgroup" : m == CONTAIN_SUBREAPER ? "subreaper" : "auto";
}

bool contain_per_task_cgroup(const struct contain *c)
{
    return c->mode == CONTAIN_CGROUP;
}

int contain_prepare(struct contain *c, const char *task_id)
{
    char path[PATH_MAX];
    if (c->mode != CONTAIN_CGROUP)
        return 0;
    remove_stale(c);
    int rc = task_path(c, task_id, NULL, path, sizeof(path));
    if (rc == 0 && mkdir(path, 0755) < 0 && errno != EEXIST)
        rc = -errno;
    if (rc < 0) {
        log_error("task %s: cannot make its cgroup %s: %s", task_id, path, strerror(-rc));
        return rc;
    }
    if (c->max_pids > 0) {
        char num[24];
        snprintf(num, sizeof(num), "%d", c->max_pids);
        if ((rc = task_path(c, task_id, "pids.max", path, sizeof(path))) == 0)
            rc = write_file(path, num);
        if (rc < 0) {
            log_error("task %s: cannot set its process limit: %s", task_id, strerror(-rc));
            remove_task_cgroup(c, task_id);
        }
    }
    return rc;
}

int contain_open_cgroup(struct contain *c, const char *task_id)
{
    char path[PATH_MAX];
    int rc = task_path(c, task_id, NULL, path, sizeof(path));
    if (rc == 0 && (rc = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = -errno;
        log_error("task %s: cannot open its cgroup %s: %s", task_id, path, strerror(errno));
    }
    return rc;
}

int contain_adopt(struct contain *c, const char *task_id, pid_t pid)
{
    char path[PATH_MAX], num[24];
    if (c->mode != CONTAIN_CGROUP)
        return 0;
    snprintf(num, sizeof(num), "%d", (int)pid);
    int rc = task_path(c, task_id, "cgroup.procs", path, sizeof(path));
    if (rc == 0)
        rc = write_file(path, num);
    if (rc < 0)
        log_error("task %s: cannot move pid %d into its cgroup: %s", task_id, (int)pid,
                  strerror(-rc));
    return rc;
}

void contain_kill(struct contain *c, const char *task_id)
{
    if (c->mode == CONTAIN_CGROUP) {
        cgroup_kill(c, task_id);
        return;
    }
    char entry[64];
    marker(task_id, entry, sizeof(entry));
    for (int round = 0; round < KILL_ROUNDS; round++)
        if (kill_descendants(getpid(), entry, 0) == 0)
            return;
}

void contain_release(struct contain *c, const char *task_id)
{
    if (c->mode != CONTAIN_CGROUP)
        return;
    remove_stale(c);
    /* Killed processes leave their cgroup as they exit: a busy one is removed later (or, when
     * the list is full, stays empty and harmless until the worker's next start). */
    if (remove_task_cgroup(c, task_id) == -EBUSY && c->n_stale < STALE_MAX)
        snprintf(c->stale[c->n_stale++], sizeof(c->stale[0]), "%s", task_id);
}

void contain_sweep(struct contain *c, const char *task_id)
{
    if (c->mode == CONTAIN_CGROUP) {
        cgroup_kill(c, task_id);
        contain_release(c, task_id);
    }
    /* A process can also have escaped while no worker watched: look everywhere. */
    char entry[64];
    marker(task_id, entry, sizeof(entry));
    int killed = 0;
    for (int round = 0, n; round < KILL_ROUNDS && (n = kill_everywhere(entry)) > 0; round++)
        killed += n;
    if (killed)
        log_warn("task %s: killed %d process(es) left by the previous run", task_id, killed);
}
