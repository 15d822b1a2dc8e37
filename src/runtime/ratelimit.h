/*
 * Rate limits. struct ratelimit is for log lines about refusals: however many peers are refused,
 * at most one line a second per kind of refusal. The line that goes out names the peer of that
 * moment and says how many refusals were held back since the previous line, so that a flood is
 * visible in the log without being able to fill it. struct tokens is a token bucket: a burst at
 * once, then a steady rate.
 */
#ifndef CRAWLAB_RATELIMIT_H
#define CRAWLAB_RATELIMIT_H

#include <stdbool.h>

#define RATELIMIT_INTERVAL_S 1.0

struct ratelimit {
    double last;   /* when the last line went out (loop time, seconds); 0: never */
    unsigned held; /* events since then that were not logged */
};

/* Counts one event at now. True when it is to be logged; *held is then the number of events held
 * back before it, and counting starts again. */
static inline bool ratelimit_pass(struct ratelimit *r, double now, unsigned *held)
{
    if (r->last > 0 && now - r->last < RATELIMIT_INTERVAL_S) {
        r->held++;
        return false;
    }
    *held = r->held;
    r->held = 0;
    r->last = now;
    return true;
}

struct tokens {
    double left;        /* as of refilled_at */
    double refilled_at; /* seconds, any clock the caller keeps to; 0: never (a full bucket) */
};

/* Takes one token at now, from a bucket of burst tokens refilled at per_s a second. False when
 * there was none: the bucket then stays below zero by that much, so that a caller who keeps
 * trying waits longer (the debt is repaid before the next token). */
static inline bool tokens_take(struct tokens *t, double now, double burst, double per_s)
{
    t->left = t->refilled_at > 0 ? t->left + (now - t->refilled_at) * per_s : burst;
    if (t->left > burst)
        t->left = burst;
    t->refilled_at = now;
    t->left -= 1.0;
    return t->left >= 0;
}

#endif
