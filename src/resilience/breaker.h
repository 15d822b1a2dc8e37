/*
 * Circuit breaker: closed, open, half-open.
 *
 * CLOSED lets every attempt through and counts consecutive failures. When the count reaches the
 * policy's threshold the breaker OPENs: attempts are refused until a cool-down has passed. Then a
 * single probe is let through (HALF_OPEN); its success closes the breaker, its failure opens it
 * again with the cool-down doubled, up to a cap. A success resets everything.
 *
 * The point is that a long outage costs one probe per cool-down instead of a retry storm, while a
 * short one is not noticed at all. Each cool-down is jittered, uniform in [cooldown/2, cooldown],
 * so thousands of workers whose breakers opened together do not probe in lock-step.
 *
 * Pure logic: time comes in as now_ms arguments (any monotonic millisecond clock), randomness from
 * a generator inside the struct seeded by the caller, so tests are deterministic. A struct breaker
 * is owned by its caller and is not thread-safe; it is meant to be used from the loop thread. No
 * function here blocks.
 */
#ifndef CRAWLAB_BREAKER_H
#define CRAWLAB_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#define BREAKER_DEFAULT_FAILURE_THRESHOLD 5u
#define BREAKER_DEFAULT_OPEN_MIN_MS       1000u
#define BREAKER_DEFAULT_OPEN_MAX_MS       30000u

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

struct breaker_policy {
    unsigned failure_threshold; /* consecutive failures that open it (default 5) */
    uint64_t open_min_ms;       /* first cool-down (default 1000) */
    uint64_t open_max_ms;       /* cool-down cap (default 30000) */
};

struct breaker {
    struct breaker_policy policy;
    enum breaker_state state;
    unsigned failures;      /* consecutive failures, saturating */
    uint64_t cooldown_ms;   /* cool-down of the current or next opening, before jitter */
    uint64_t open_until_ms; /* while OPEN: the first instant a probe is allowed */
    uint64_t rng;           /* generator state */
};

/*
 * Starts b CLOSED. p is copied; NULL means the defaults above, and so does any zero field of p
 * (a threshold of 0 or a cool-down of 0 would make no sense). An open_max_ms below open_min_ms is
 * raised to open_min_ms. Any seed is valid, 0 included.
 */
void breaker_init(struct breaker *b, const struct breaker_policy *p, uint64_t seed);

/*
 * May an attempt start now? CLOSED: yes. OPEN: no until open_until, then the breaker moves to
 * HALF_OPEN and answers yes exactly once: that attempt is the probe. HALF_OPEN: no, a probe is
 * already out. The caller must report the probe's outcome with breaker_success() or
 * breaker_failure(); until it does, the breaker stays HALF_OPEN and refuses everything.
 */
bool breaker_allow(struct breaker *b, uint64_t now_ms);

/* An attempt succeeded: CLOSED, failure count 0, cool-down back to open_min_ms. */
void breaker_success(struct breaker *b, uint64_t now_ms);

/*
 * An attempt failed. CLOSED: the failure count grows and the breaker opens at the threshold with
 * the cool-down open_min_ms. HALF_OPEN (the probe failed): OPEN again with the cool-down doubled,
 * capped at open_max_ms. Opening sets open_until = now + a cool-down drawn uniformly from
 * [cooldown/2, cooldown] (saturating at UINT64_MAX). OPEN: only counted; such a failure comes from
 * an attempt started before the breaker opened and must not push the probe further away.
 */
void breaker_failure(struct breaker *b, uint64_t now_ms);

/* The instant from which breaker_allow() lets the probe through; meaningful while OPEN. */
uint64_t breaker_open_until(const struct breaker *b);

/* "closed", "open" or "half-open" (for logs); "unknown" for a value outside the enum. */
const char *breaker_state_name(enum breaker_state s);

#endif
