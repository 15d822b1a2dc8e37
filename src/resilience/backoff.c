#include "backoff.h"

#include <stdbool.h>

/*
 * splitmix64: one addition and a few multiply-xor-shift rounds per draw, good statistical quality
 * for jitter, and any seed (0 included) gives a full-period sequence.
 */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/*
 * Uniform draw in [0, max]. A plain modulo would favour small values when max + 1 does not divide
 * 2^64, so draws below 2^64 mod (max + 1) are rejected; that happens with probability below one
 * half, so the loop ends quickly.
 */
static uint64_t rng_upto(uint64_t *state, uint64_t max)
{
    if (max == UINT64_MAX)
        return rng_next(state);
    uint64_t n = max + 1;
    uint64_t reject_below = (0 - n) % n;
    uint64_t r;
    do {
        r = rng_next(state);
    } while (r < reject_below);
    return r % n;
}

/* True when base * 2^attempt would exceed the cap (or 64 bits), so the window is the cap. */
static bool window_capped(const struct backoff *b)
{
    if (b->attempt >= 64)
        return true;
    return b->base_ms > (b->cap_ms >> b->attempt);
}

void backoff_init(struct backoff *b, uint64_t base_ms, uint64_t cap_ms, uint64_t seed)
{
    b->base_ms = base_ms;
    b->cap_ms = cap_ms;
    b->attempt = 0;
    b->rng = seed;
}

uint64_t backoff_window_ms(const struct backoff *b)
{
    if (b->base_ms == 0)
        return 0;
    if (window_capped(b))
        return b->cap_ms;
    /* Not capped means base <= cap >> attempt, so the shift cannot overflow. */
    return b->base_ms << b->attempt;
}

uint64_t backoff_next_ms(struct backoff *b)
{
    uint64_t window = backoff_window_ms(b);
    uint64_t delay = rng_upto(&b->rng, window);
    /*
     * Once the window has reached the cap (or is stuck at 0), counting further attempts would
     * change nothing but could eventually wrap the counter back to the base window.
     */
    if (window != 0 && window < b->cap_ms)
        b->attempt++;
    return delay;
}

void backoff_reset(struct backoff *b)
{
    b->attempt = 0;
}
