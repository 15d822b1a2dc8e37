/*
 * The reconnect policy of the worker's dialer: exponential backoff inside a circuit breaker.
 *
 * The numbers, and why:
 * - Backoff base 100 ms, cap 1000 ms, full jitter. A short outage, typically a master restart,
 *   is retried with windows of 100, 200, 400 and 800 ms, so no gap between two attempts exceeds
 *   1 s and the worker is back within about 1 s of the master. Full jitter spreads thousands of
 *   workers over each window, so the restarted master is not hit by all of them at once.
 * - After 5 consecutive failures the breaker opens. Its cool-downs are 1, 2, 4, 8, 16, then 30 s
 *   for every later failed probe (the cap: retry_init_capped, the worker's --reconnect-max), each
 *   jittered uniformly down to half its length. The fifth failure therefore still waits at most
 *   1 s, and a long outage costs one probe every 15 to 30 s per worker and, since the caller
 *   sleeps on a timer in between, no CPU.
 * - Any success closes the breaker and restarts the backoff at 100 ms, so the next outage is
 *   again treated as a short one.
 *
 * Several targets (the masters of --master=A,B,C), tried in turn. Each failure, of a dial or of a
 * session that was up, moves to the next target in the list, wrapping around. A round is one
 * failure of each target in a row: the first n - 1 failures of a round wait a delay drawn from
 * the current backoff window without growing it and are not counted by the breaker; the n-th
 * failure is what a failure is with a single target (the backoff grows, the breaker counts one).
 * So a worker whose master dies tries the next one within the current window (100 ms after a
 * session that was up), and windows, breaker threshold and cool-downs above all count rounds.
 * While the breaker is open no round starts; the probe it lets through is a whole round. A
 * success ends the round: the target that answered stays the current one. One target is the
 * policy above unchanged.
 *
 * Usage: before dialling, ask retry_allow(); after a failed dial, retry_on_failure() says when to
 * try next; after a good one, call retry_on_success(). Pure logic: times are milliseconds of any
 * monotonic clock passed in by the caller; jitter comes from generators seeded at init. The struct
 * is owned by its caller and is not thread-safe (the loop thread uses it). Nothing here blocks.
 */
#ifndef CRAWLAB_RETRY_H
#define CRAWLAB_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "resilience/backoff.h"
#include "resilience/breaker.h"

#define RETRY_BACKOFF_BASE_MS 100u
#define RETRY_BACKOFF_CAP_MS  1000u

struct retry_policy_state {
    struct backoff backoff;
    struct breaker breaker;
    unsigned n_targets; /* at least 1 */
    unsigned target;    /* the one to try next, or connected to */
    unsigned failed;    /* failures in the round under way, 0 .. n_targets - 1 */
};

/*
 * Sets up the documented defaults: backoff 100 ms .. 1 s, breaker threshold 5, cool-downs 1 s ..
 * 30 s. Give each worker a different seed (for instance from its node key or getrandom) so that
 * their jitter differs; the same seed gives the same schedule, which tests rely on.
 */
void retry_init(struct retry_policy_state *r, uint64_t seed);

/* The same, with the breaker's cool-downs capped at cooldown_max_ms instead of 30 s (0: 30 s; below
 * the first cool-down of 1 s: 1 s). */
void retry_init_capped(struct retry_policy_state *r, uint64_t seed, uint64_t cooldown_max_ms);

/* Sets the number of targets (0 is taken as 1), starting over at target 0 with a fresh round. */
void retry_set_targets(struct retry_policy_state *r, unsigned n_targets);

/* The index of the target to dial next (or connected to), 0 .. n_targets - 1. */
unsigned retry_target(const struct retry_policy_state *r);

/*
 * An attempt failed at now_ms; the next target becomes the current one. Returns the absolute time
 * (ms) at which to try it: within a round, now_ms plus a delay from the current window; at the end
 * of a round, the end of the breaker's cool-down if the breaker is open, else now_ms plus the next
 * backoff delay (either saturating at UINT64_MAX).
 */
uint64_t retry_on_failure(struct retry_policy_state *r, uint64_t now_ms);

/* An attempt succeeded: the breaker closes and the backoff starts again from its base. */
void retry_on_success(struct retry_policy_state *r, uint64_t now_ms);

/*
 * May an attempt start at now_ms? Within a round, yes; at the start of one, the breaker's answer:
 * while it is open, no; once its cool-down is over, yes exactly once (the probe, a round), whose
 * outcome must then be reported.
 */
bool retry_allow(struct retry_policy_state *r, uint64_t now_ms);

#endif
