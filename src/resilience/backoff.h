/*
 * Exponential backoff with full jitter.
 *
 * The delay before retry number n is drawn uniformly from [0, min(cap, base * 2^n)]. Drawing from
 * the whole window, rather than adding a little noise to a fixed delay, spreads the retries of many
 * clients that failed at the same instant (a master restart seen by thousands of workers) over the
 * window, so they do not come back in one burst.
 *
 * Pure logic: no clock, no I/O, no allocation. The pseudo-random generator lives in the struct and
 * is seeded by the caller, so a test gets the same sequence for the same seed. A struct backoff is
 * owned by its caller and is not thread-safe; it is meant to be used from the loop thread. No
 * function here blocks.
 */
#ifndef CRAWLAB_BACKOFF_H
#define CRAWLAB_BACKOFF_H

#include <stdint.h>

struct backoff {
    uint64_t base_ms; /* window of the first retry */
    uint64_t cap_ms;  /* the window never grows beyond this */
    unsigned attempt; /* retries since the last reset; stops growing once the window is capped */
    uint64_t rng;     /* generator state */
};

/*
 * Sets up b for a fresh series of attempts. base_ms may be 0 (every delay is then 0); a base above
 * the cap is treated as the cap. Any seed is valid, 0 included.
 */
void backoff_init(struct backoff *b, uint64_t base_ms, uint64_t cap_ms, uint64_t seed);

/*
 * Returns the delay before the next attempt, uniform in [0, backoff_window_ms(b)], and advances to
 * the next attempt. Never overflows however many times it is called: the window saturates at the
 * cap and the attempt counter stops once the cap is reached.
 */
uint64_t backoff_next_ms(struct backoff *b);

/* A delay uniform in [0, backoff_window_ms(b)] without moving to the next attempt: the window
 * stays as it is. */
uint64_t backoff_draw_ms(struct backoff *b);

/* Starts again from the base window; call it after a success. The generator keeps its state. */
void backoff_reset(struct backoff *b);

/* The upper bound of the next delay, min(cap, base * 2^attempt), for logs and tests. */
uint64_t backoff_window_ms(const struct backoff *b);

/*
 * The delay before retry number n (1, 2, ...) of a series that was asked to wait base_ms: its
 * window is min(cap, base * 2^(n-1)) as above, and the delay is drawn uniformly from the upper half
 * of it, [window / 2, window], so that a retry never comes much sooner than asked while retries
 * of many tasks that failed together still spread out. n = 0 is taken as 1. Same seed, same delay.
 */
uint64_t backoff_nth_ms(uint64_t base_ms, uint64_t cap_ms, unsigned n, uint64_t seed);

#endif
