#include "master/hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "core/event.h"
#include "master/events.h"
#include "master/group.h"
#include "resilience/backoff.h"
#include "runtime/log.h"
#include "runtime/spawn.h"
#include "store/store.h"

extern char **environ;

struct hook {
    struct events_watcher watcher; /* first: the watcher is the hook */
    struct hooks *owner;
    const char *cmd; /* borrowed from the options' strings, which outlive the hooks */
    int64_t cursor;  /* the last event delivered */
    struct backoff backoff;
    ev_child child;
    ev_timer timer; /* the running hook's timeout, or the wait before a retry */
    ev_io input;    /* the running hook's stdin, while its event is being written */
    pid_t pid;      /* 0: not running */
    bool waiting;   /* a retry is due when the timer fires */
    bool timed_out;
    int64_t event_id; /* the event being delivered */
    char *payload;    /* its JSON and a newline */
    size_t len, off;
};

struct hooks {
    struct ev_loop *loop;
    struct store *store;
    struct group *group;
    struct events *events;
    struct hooks_opts opts;
    struct hook *hooks;
    size_t n;
    bool running; /* this master runs the hooks: always on its own store (hooks_check) */
};

static void hook_next(struct hook *h);

static void close_input(struct hook *h)
{
    struct ev_loop *loop = h->owner->loop;
    if (h->input.fd < 0)
        return;
    ev_io_stop(loop, &h->input);
    close(h->input.fd);
    ev_io_set(&h->input, -1, EV_WRITE);
}

/* Writes what is left of the event; a hook that closed its stdin (or never reads it) gets what
 * fit, and its exit status alone tells. */
static void on_input(struct ev_loop *loop, ev_io *w, int revents)
{
    struct hook *h = w->data;
    while (h->off < h->len) {
        ssize_t n = write(w->fd, h->payload + h->off, h->len - h->off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0)
            break;
        h->off += (size_t)n;
    }
    close_input(h);
}

/* The environment of a hook: the master's without CRAWLAB_* (its keys among them), and the
 * event's id, kind, node and task. */
static char **hook_env(const struct event_row *e, char vars[4][96])
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **envp = calloc(n + 5, sizeof(*envp));
    if (!envp)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "CRAWLAB_", 8) != 0)
            envp[k++] = environ[i];
    snprintf(vars[0], 96, "CRAWLAB_EVENT_ID=%" PRId64, e->id);
    snprintf(vars[1], 96, "CRAWLAB_EVENT_KIND=%s", e->kind);
    snprintf(vars[2], 96, "CRAWLAB_EVENT_NODE_KEY=%s", e->node_key);
    snprintf(vars[3], 96, "CRAWLAB_EVENT_TASK_ID=%s", e->task_id);
    for (int i = 0; i < 4; i++)
        envp[k++] = vars[i];
    return envp;
}

/* sh -c CMD in a process group of its own (runtime/spawn.h), stdin from in_fd, stdout onto
 * stderr. 0 or a negative errno. */
static int spawn(const char *cmd, int in_fd, char **envp, pid_t *pid)
{
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    const int fds[4] = {in_fd, 2, SPAWN_INHERIT, SPAWN_INHERIT};
    return spawn_sh(argv, envp, NULL, fds, pid);
}

/* Retries the hook's event after the backoff's next delay. */
static void retry_later(struct hook *h, const char *what)
{
    struct ev_loop *loop = h->owner->loop;
    uint64_t delay = backoff_next_ms(&h->backoff);
    log_warn("hook '%s': event %" PRId64 " %s; again in %" PRIu64 " ms", h->cmd, h->event_id, what,
             delay);
    h->waiting = true;
    ev_timer_set(&h->timer, (double)delay / 1000.0, 0.0);
    ev_timer_start(loop, &h->timer);
}

static int copy_event(void *ctx, const struct event_row *e)
{
    struct hook *h = ctx;
    char *json = event_json(e->id, e->at_ms, e->kind, e->node_key, e->task_id, e->data);
    size_t len = json ? strlen(json) : 0;
    char *payload = json ? realloc(json, len + 2) : NULL;
    if (!payload) {
        free(json);
        return -ENOMEM;
    }
    memcpy(payload + len, "\n", 2);
    h->payload = payload;
    h->len = len + 1;
    h->off = 0;
    h->event_id = e->id;
    return 1;
}

/* Starts the hook on its event (h->payload). */
static void start(struct hook *h, const struct event_row *e)
{
    struct ev_loop *loop = h->owner->loop;
    int fds[2];
    char vars[4][96];
    char **envp = NULL;
    int rc = pipe2(fds, O_CLOEXEC) < 0 ? -errno : 0;
    if (rc == 0) {
        fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
        envp = hook_env(e, vars);
        rc = envp ? spawn(h->cmd, fds[0], envp, &h->pid) : -ENOMEM;
        close(fds[0]);
        if (rc < 0)
            close(fds[1]);
    }
    free(envp);
    if (rc < 0) {
        h->pid = 0;
        retry_later(h, rc == -ENOMEM ? "could not start: out of memory" : "could not start");
        return;
    }
    log_debug("hook '%s': event %" PRId64 " (%s), pid %d", h->cmd, e->id, e->kind, (int)h->pid);
    h->timed_out = false;
    ev_child_set(&h->child, h->pid, 0);
    ev_child_start(loop, &h->child);
    ev_timer_set(&h->timer, (double)h->owner->opts.timeout_ms / 1000.0, 0.0);
    ev_timer_start(loop, &h->timer);
    ev_io_set(&h->input, fds[1], EV_WRITE);
    ev_io_start(loop, &h->input);
}

static int start_cb(void *ctx, const struct event_row *e)
{
    struct hook *h = ctx;
    int rc = copy_event(h, e);
    if (rc == 1)
        start(h, e);
    return rc;
}

/* The hook's cursor moves to id, stored with the group this loop iteration commits: a master that
 * dies then sees again, after its restart (or another master, which takes the hooks over), only
 * the event it delivered last, not every one a group gathered in its 50 ms. */
static void advance(struct hook *h, int64_t id)
{
    struct hooks *hs = h->owner;
    h->cursor = id;
    if (group_join(hs->group) < 0 || store_event_cursor_set(hs->store, h->cmd, id) < 0) {
        log_warn("hook '%s': cannot store its cursor (event %" PRId64 "); after a restart it may "
                 "see events again",
                 h->cmd, id);
        return;
    }
    group_want_commit(hs->group);
}

/* Too far behind: skip to the newest committed event and record by how much. */
static void overflow(struct hook *h, int64_t last)
{
    struct hooks *hs = h->owner;
    uint64_t skipped = 0;
    store_event_count(hs->store, h->cursor, last, &skipped);
    log_warn("hook '%s': %" PRIu64 " events behind, more than %" PRIu64 "; skipping them", h->cmd,
             skipped, hs->opts.backlog_max);
    int64_t from = h->cursor;
    advance(h, last);
    json_t *o = json_pack("{s:s, s:I, s:I, s:I}", "hook", h->cmd, "skipped", (json_int_t)skipped,
                          "after", (json_int_t)from, "through", (json_int_t)last);
    char *data = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    events_emit(hs->events, EVENT_HOOK_OVERFLOW, NULL, NULL, data);
    free(data);
}

/* Delivers the next committed event after the cursor, if the hook is free and this master runs
 * the hooks. */
static void hook_next(struct hook *h)
{
    struct hooks *hs = h->owner;
    if (h->pid || h->waiting || !hs->running)
        return;
    int64_t last = events_last(hs->events);
    if (last <= h->cursor)
        return;
    if ((uint64_t)(last - h->cursor) > hs->opts.backlog_max) {
        overflow(h, last);
        return;
    }
    int rc = store_event_page(hs->store, h->cursor, last, 1, start_cb, h);
    if (rc == 0) /* none stored in between: purged by retention */
        advance(h, last);
    else if (rc < 0)
        retry_later(h, "could not be read");
}

static void on_new(struct events_watcher *w)
{
    hook_next((struct hook *)w);
}

static void on_hook_exit(struct ev_loop *loop, ev_child *w, int revents)
{
    struct hook *h = w->data;
    ev_child_stop(loop, w);
    ev_timer_stop(loop, &h->timer);
    close_input(h);
    h->pid = 0;
    int st = w->rstatus;
    char what[64];
    if (h->timed_out)
        snprintf(what, sizeof(what), "took longer than %" PRIu64 " ms: killed",
                 h->owner->opts.timeout_ms);
    else if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
        snprintf(what, sizeof(what), "failed: exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(what, sizeof(what), "failed: killed by signal %d", WTERMSIG(st));
    else
        what[0] = '\0';
    if (what[0]) {
        retry_later(h, what);
        return;
    }
    free(h->payload);
    h->payload = NULL;
    backoff_reset(&h->backoff);
    advance(h, h->event_id);
    hook_next(h);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct hook *h = w->data;
    if (h->pid) {
        /* The timeout: the whole process group goes, and on_hook_exit retries. */
        h->timed_out = true;
        kill(-h->pid, SIGKILL);
        return;
    }
    h->waiting = false;
    free(h->payload);
    h->payload = NULL;
    hook_next(h);
}

static int hook_init(struct hooks *hs, struct hook *h, const char *cmd, uint64_t seed)
{
    h->owner = hs;
    h->cmd = cmd;
    h->watcher.on_new = on_new;
    backoff_init(&h->backoff, HOOKS_RETRY_BASE_MS, HOOKS_RETRY_CAP_MS, seed);
    ev_child_init(&h->child, on_hook_exit, 0, 0);
    h->child.data = h;
    ev_init(&h->timer, on_timer);
    h->timer.data = h;
    ev_io_init(&h->input, on_input, -1, EV_WRITE);
    h->input.data = h;
    int rc = store_event_cursor_get(hs->store, cmd, &h->cursor);
    if (rc == -ENOENT) {
        /* A new hook: the events from now on. */
        h->cursor = events_last(hs->events);
        rc = store_event_cursor_set(hs->store, cmd, h->cursor);
    }
    if (rc < 0)
        return rc;
    log_info("hook '%s': events after %" PRId64, cmd, h->cursor);
    return 0;
}

/*
 * Whether this master runs the hooks. On a store several masters share, one at a time does
 * (store_hooks_hold): one that starts to reads every cursor again, as the master that ran them
 * until then moved them; a running hook of one that stops finishes, and its event may be
 * delivered twice (the hooks' at-least-once).
 */
static void hooks_check(struct hooks *hs)
{
    int rc = store_hooks_hold(hs->store);
    bool was = hs->running;
    hs->running = rc == -ENOTSUP || rc > 0;
    for (size_t i = 0; rc == 2 && i < hs->n; i++) {
        struct hook *h = &hs->hooks[i];
        if (!h->pid && store_event_cursor_get(hs->store, h->cmd, &h->cursor) < 0)
            log_warn("hook '%s': cannot read its cursor; it goes on after event %" PRId64, h->cmd,
                     h->cursor);
    }
    if (hs->running != was && rc != -ENOTSUP)
        log_info(hs->running ? "hooks: this master runs them now, each after its stored cursor"
                             : "hooks: another master runs them; this one stands by");
}

void hooks_poke(struct hooks *hs)
{
    if (!hs)
        return;
    hooks_check(hs);
    for (size_t i = 0; i < hs->n; i++)
        hook_next(&hs->hooks[i]);
}

int hooks_create(struct ev_loop *loop, struct store *store, struct group *group, struct events *ev,
                 const struct hooks_opts *opts, struct hooks **out)
{
    struct hooks *hs = calloc(1, sizeof(*hs));
    if (!hs)
        return -ENOMEM;
    hs->loop = loop;
    hs->store = store;
    hs->group = group;
    hs->events = ev;
    hs->opts = *opts;
    hs->hooks = opts->n_cmds ? calloc(opts->n_cmds, sizeof(*hs->hooks)) : NULL;
    if (opts->n_cmds && !hs->hooks) {
        free(hs);
        return -ENOMEM;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    for (size_t i = 0; i < opts->n_cmds; i++) {
        uint64_t seed = (uint64_t)now.tv_nsec ^ ((uint64_t)getpid() << 32) ^ i;
        int rc = hook_init(hs, &hs->hooks[i], opts->cmds[i], seed);
        if (rc < 0) {
            hooks_destroy(hs);
            return rc;
        }
        hs->n++;
        events_watch(ev, &hs->hooks[i].watcher);
    }
    hooks_poke(hs);
    *out = hs;
    return 0;
}

void hooks_destroy(struct hooks *hs)
{
    if (!hs)
        return;
    for (size_t i = 0; i < hs->n; i++) {
        struct hook *h = &hs->hooks[i];
        events_unwatch(hs->events, &h->watcher);
        ev_timer_stop(hs->loop, &h->timer);
        close_input(h);
        if (h->pid) {
            ev_child_stop(hs->loop, &h->child);
            kill(-h->pid, SIGKILL);
            waitpid(h->pid, NULL, 0);
            log_info("hook '%s': stopped on event %" PRId64 ", which it gets again at the next "
                     "start",
                     h->cmd, h->event_id);
        }
        free(h->payload);
    }
    free(hs->hooks);
    free(hs);
}
