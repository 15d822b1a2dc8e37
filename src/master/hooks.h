/*
 * --on-event: runs a command for every event (master/events.h), with the event's JSON
 * (core/event.h, event_json) on its stdin -- how a user wires mail, chat or webhooks
 * (examples/hook-*.sh).
 *
 * Each hook is `sh -c CMD` in its own process group, stdout and stderr on the master's stderr,
 * with CRAWLAB_EVENT_ID, _KIND, _NODE_KEY and _TASK_ID set (and the master's CRAWLAB_* variables,
 * its secrets, left out). Per hook, and independently of the others:
 * - in order, one event at a time, read from the store by the hook's cursor, so that a hook far
 *   behind holds one event in memory, not its backlog;
 * - at least once: the cursor (the last event the hook exited 0 for) is stored in the group of
 *   changes, so a master that restarts goes on after it, and a hook may see an event again after
 *   a crash; a hook seen for the first time starts with the events after its start;
 * - a hook that exits non-zero, or that runs longer than the timeout (then its process group is
 *   killed), gets the same event again after a backoff (src/resilience/backoff.h, from
 *   HOOKS_RETRY_BASE_MS up to HOOKS_RETRY_CAP_MS); a hook that always fails holds back only itself;
 * - bounded: a hook more than backlog_max events behind skips to the newest committed event, and
 *   the event hook.overflow records the hook and how many events it skipped (it is then the next
 *   event that hook gets).
 *
 * Never blocks the loop: the hook is spawned (posix_spawn), its stdin written without blocking,
 * its end seen by an ev_child watcher (so the loop must be the default loop).
 *
 * One master at a time: on a store several masters share, the master holding the store's hooks
 * lock runs them and the others stand by (hooks_poke, which the master calls every poll).
 *
 * Ownership: the master creates it after the events and destroys it before them; destroying it
 * kills the hooks that run (their events are delivered again at the next start). Loop thread only.
 * Errors: 0 or a negative errno; a failing hook is logged here.
 */
#ifndef CRAWLAB_HOOKS_H
#define CRAWLAB_HOOKS_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

struct events;
struct group;
struct hooks;
struct store;

#define HOOKS_BACKLOG_MAX   10000
#define HOOKS_RETRY_BASE_MS 500
#define HOOKS_RETRY_CAP_MS  (5 * 60 * 1000)

struct hooks_opts {
    char *const *cmds; /* the commands, no two alike (each names its cursor) */
    size_t n_cmds;
    uint64_t timeout_ms;  /* > 0: a hook running longer is killed, and its event retried */
    uint64_t backlog_max; /* > 0: how far behind a hook may fall before it skips */
};

/* Loads each hook's cursor (or starts it at the newest event) and starts delivering. */
int hooks_create(struct ev_loop *loop, struct store *store, struct group *group, struct events *ev,
                 const struct hooks_opts *opts, struct hooks **out);
/* On a store several masters share: takes the hooks over when the master that ran them is gone
 * (its lock with its connection), or stands by when another has them, and delivers what is due.
 * NULL is accepted. */
void hooks_poke(struct hooks *hs);
/* Kills the hooks that run and frees. NULL is accepted. */
void hooks_destroy(struct hooks *h);

#endif
