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
#include "runtime/array.h"
#include "runtime/log.h"

/* Kill rounds before giving up on a task that forks faster than it is killed. */
#define KILL_ROUNDS 100

/*
 * A task cgroup (cgroup mode), <dir>/<n>, is made once and holds one task after another, as long
 * as no task leaves a process in it: making and removing a cgroup for each task cost the worker
 * about a tenth of its CPU per task (docs/benchmarks.md). A free one is taken again only when no
 * process is in it ("populated 0" in its cgroup.events).
 *
 * A cgroup that had to be killed (cgroup.kill) is retired: removed once its killed processes have
 * left it, and never given to another task. On the project's machine (Linux 6.18) a process
 * cloned into a cgroup (CLONE_INTO_CGROUP) that was ever killed through cgroup.kill is killed at
 * birth; and a task that left a process behind is not the common case to make cheap.
 */
struct slot {
    char name[16];              /* under dir */
    char task[TASK_ID_LEN + 1]; /* the task in it, "" when free */
    int fd;                     /* its directory, kept open (clone3, the files in it); -1 retired */
    bool killed;                /* retired when its task releases it */
};

struct contain {
    enum contain_mode mode;
    char *dir;    /* cgroup mode: the worker's cgroup directory for its tasks */
    int dir_fd;   /* ... open */
    int max_pids; /* > 0: every task cgroup's pids.max */
    struct slot *slots;
    size_t n_slots, cap_slots;
    size_t n_retired;   /* slots waiting to be removed */
    unsigned next_name; /* the name a new task cgroup tries first */
};

/* ---- small file helpers ---- */

/* Reads the whole file at path (relative to dir_fd) into a malloc'd, NUL-terminated buffer.
 * -errno. */
static int read_file_at(int dir_fd, const char *path, char **out, size_t *len)
{
    int fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC);
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

static int read_file(const char *path, char **out, size_t *len)
{
    return read_file_at(AT_FDCWD, path, out, len);
}

static int write_file_at(int dir_fd, const char *path, const char *text)
{
    int fd = openat(dir_fd, path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    int rc = write(fd, text, len) == (ssize_t)len ? 0 : -errno;
    close(fd);
    return rc;
}

static int write_file(const char *path, const char *text)
{
    return write_file_at(AT_FDCWD, path, text);
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

/* SIGKILLs what the cgroup's cgroup.procs lists, until it lists nothing (kernels before
 * cgroup.kill). */
static void cgroup_kill_listed(int cgroup_fd)
{
    for (int round = 0; round < KILL_ROUNDS; round++) {
        char *text;
        if (read_file_at(cgroup_fd, "cgroup.procs", &text, NULL) < 0)
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

/* SIGKILLs every process in the cgroup open at cgroup_fd. 0 or -errno. */
static int cgroup_kill(int cgroup_fd)
{
    int rc = write_file_at(cgroup_fd, "cgroup.kill", "1");
    if (rc == -ENOENT) {
        cgroup_kill_listed(cgroup_fd);
        return 0;
    }
    return rc == -ENODEV ? 0 : rc; /* ENODEV: nothing there to kill */
}

/* Whether no process is left in the cgroup open at cgroup_fd. */
static bool cgroup_empty(int cgroup_fd)
{
    char text[128];
    int fd = openat(cgroup_fd, "cgroup.events", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    return strstr(text, "populated 0") != NULL;
}

static struct slot *slot_of(struct contain *c, const char *task_id)
{
    if (!*task_id)
        return NULL; /* what a free slot holds */
    for (size_t i = 0; i < c->n_slots; i++)
        if (strcmp(c->slots[i].task, task_id) == 0)
            return &c->slots[i];
    return NULL;
}

/* Keeps the cgroup name (open at fd, or -1 for one retired) as a free slot; the slot takes fd.
 * NULL on ENOMEM. */
static struct slot *add_slot(struct contain *c, const char *name, int fd)
{
    struct slot *grown = array_grow(c->slots, c->n_slots, &c->cap_slots, sizeof(*c->slots), 16);
    if (!grown)
        return NULL;
    c->slots = grown;
    struct slot *s = &c->slots[c->n_slots++];
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->task[0] = '\0';
    s->fd = fd;
    s->killed = false;
    return s;
}

/* Removes the retired cgroups that no process is left in. */
static void remove_retired(struct contain *c)
{
    for (size_t i = 0; i < c->n_slots;) {
        struct slot *s = &c->slots[i];
        if (s->fd >= 0 || (unlinkat(c->dir_fd, s->name, AT_REMOVEDIR) < 0 && errno == EBUSY)) {
            i++;
            continue;
        }
        *s = c->slots[--c->n_slots];
        c->n_retired--;
    }
}

static void retire(struct contain *c, struct slot *s)
{
    close(s->fd);
    s->fd = -1;
    c->n_retired++;
    remove_retired(c);
}

/* Makes a new task cgroup, a free slot. 0 or -errno (*why says what failed). */
static int make_slot(struct contain *c, struct slot **out, const char **why)
{
    char name[16], max_pids[24];
    snprintf(max_pids, sizeof(max_pids), "%d", c->max_pids);
    for (;;) {
        snprintf(name, sizeof(name), "%u", c->next_name++);
        if (mkdirat(c->dir_fd, name, 0755) == 0)
            break;
        if (errno != EEXIST || c->next_name == 0) {
            *why = "mkdir";
            return -errno;
        }
    }
    int rc = 0, fd = openat(c->dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        *why = "open";
    } else if (c->max_pids > 0 && (rc = write_file_at(fd, "pids.max", max_pids)) < 0) {
        *why = "its process limit";
    } else if (!(*out = add_slot(c, name, fd))) {
        rc = -ENOMEM;
        *why = "memory";
    }
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        unlinkat(c->dir_fd, name, AT_REMOVEDIR);
    }
    return rc;
}

/*
 * At start: every cgroup under dir is a previous run's (dir is named after this worker's node key
 * and data directory, which the worker holds locked). Whatever still runs in one is killed, and
 * each is removed (retired, while killed processes are still leaving it): which of them were
 * killed before cannot be told.
 */
static int clear_previous_run(struct contain *c)
{
    int fd = dup(c->dir_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        int rc = -errno;
        if (fd >= 0)
            close(fd);
        return rc;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_type != DT_DIR || de->d_name[0] == '.')
            continue;
        int cg = openat(c->dir_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cg < 0)
            continue;
        if (!cgroup_empty(cg)) {
            log_warn("killing what the previous run left in cgroup %s/%s", c->dir, de->d_name);
            cgroup_kill(cg);
        }
        close(cg);
        if (unlinkat(c->dir_fd, de->d_name, AT_REMOVEDIR) < 0 && errno == EBUSY &&
            strlen(de->d_name) < sizeof(c->slots->name) && add_slot(c, de->d_name, -1))
            c->n_retired++;
    }
    closedir(d);
    return 0;
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
    c->dir_fd = -1;
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
    if (rc == 0 && (c->dir_fd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = -errno;
        why = "cannot open the worker's cgroup";
    }
    if (rc == 0 && (rc = clear_previous_run(c)) < 0)
        why = "cannot read the worker's cgroup";
    if (rc == 0) {
        c->mode = CONTAIN_CGROUP;
        if (max_pids > 0)
            log_info("tasks run in cgroups under %s, at most %d processes each", c->dir, max_pids);
        else
            log_info("tasks run in cgroups under %s", c->dir);
    } else if (want == CONTAIN_CGROUP || max_pids > 0) {
        log_error("cannot contain tasks in cgroups%s: %s",
                  max_pids > 0 ? " with a process limit (--task-max-pids)" : "", why);
        contain_destroy(c);
        return rc;
    } else {
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
            rc = -errno;
            log_error("cannot become the subreaper of the tasks: %s", strerror(errno));
            contain_destroy(c);
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
    /* A cgroup a killed process has not left yet stays, for the next start to remove. */
    for (size_t i = 0; i < c->n_slots; i++) {
        if (c->slots[i].fd >= 0)
            close(c->slots[i].fd);
        unlinkat(c->dir_fd, c->slots[i].name, AT_REMOVEDIR);
    }
    if (c->dir_fd >= 0)
        close(c->dir_fd);
    if (c->dir)
        rmdir(c->dir); /* only when no task cgroup is left in it */
    free(c->slots);
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
    if (c->mode != CONTAIN_CGROUP)
        return 0;
    const char *bad = !*task_id                                   ? "no task id"
                      : strlen(task_id) >= sizeof(c->slots->task) ? "a task id too long"
                      : slot_of(c, task_id)                       ? "it has one already"
                                                                  : NULL;
    if (bad) {
        log_error("task %s: cannot give it a cgroup: %s", task_id, bad);
        return -EINVAL;
    }
    if (c->n_retired)
        remove_retired(c);
    struct slot *s = NULL;
    for (size_t i = 0; i < c->n_slots && !s; i++)
        if (!c->slots[i].task[0] && c->slots[i].fd >= 0 && cgroup_empty(c->slots[i].fd))
            s = &c->slots[i];
    const char *why = NULL;
    int rc = s ? 0 : make_slot(c, &s, &why);
    if (rc < 0) {
        log_error("task %s: cannot make a cgroup under %s (%s): %s", task_id, c->dir, why,
                  strerror(-rc));
        return rc;
    }
    snprintf(s->task, sizeof(s->task), "%s", task_id);
    return 0;
}

int contain_cgroup_fd(struct contain *c, const char *task_id)
{
    const struct slot *s = c->mode == CONTAIN_CGROUP ? slot_of(c, task_id) : NULL;
    if (!s) {
        log_error("task %s: it has no cgroup", task_id);
        return -ENOENT;
    }
    return s->fd;
}

int contain_adopt(struct contain *c, const char *task_id, pid_t pid)
{
    if (c->mode != CONTAIN_CGROUP)
        return 0;
    const struct slot *s = slot_of(c, task_id);
    char num[24];
    snprintf(num, sizeof(num), "%d", (int)pid);
    int rc = s ? write_file_at(s->fd, "cgroup.procs", num) : -ENOENT;
    if (rc < 0)
        log_error("task %s: cannot move pid %d into its cgroup: %s", task_id, (int)pid,
                  strerror(-rc));
    return rc;
}

void contain_kill(struct contain *c, const char *task_id)
{
    if (c->mode == CONTAIN_CGROUP) {
        struct slot *s = slot_of(c, task_id);
        if (!s || cgroup_empty(s->fd))
            return; /* nothing to kill, and the cgroup stays fit for another task */
        s->killed = true;
        int rc = cgroup_kill(s->fd);
        if (rc < 0)
            log_warn("task %s: cannot kill its cgroup %s/%s: %s", task_id, c->dir, s->name,
                     strerror(-rc));
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
    struct slot *s = c->mode == CONTAIN_CGROUP ? slot_of(c, task_id) : NULL;
    if (!s)
        return;
    s->task[0] = '\0';
    if (s->killed)
        retire(c, s);
}

void contain_sweep(struct contain *c, const char *task_id)
{
    /* Its cgroup, if it had one, was emptied when this run started (clear_previous_run). A process
     * can also have escaped while no worker watched: look everywhere. */
    char entry[64];
    marker(task_id, entry, sizeof(entry));
    int killed = 0;
    for (int round = 0, n; round < KILL_ROUNDS && (n = kill_everywhere(entry)) > 0; round++)
        killed += n;
    if (killed)
        log_warn("task %s: killed %d process(es) left by the previous run", task_id, killed);
}
