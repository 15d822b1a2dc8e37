/*
 * The jitter source of the retry policy: splitmix64, seeded by the caller so that tests replay
 * exactly. One addition and a few multiply-xor-shift rounds per draw; any seed (0 included)
 * gives a full-period sequence. Not for secrets.
 */
#ifndef CRAWLAB_RNG_H
#define CRAWLAB_RNG_H

#include <stdint.h>

static inline uint64_t rng_next(uint64_t *state)
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
static inline uint64_t rng_upto(uint64_t *state, uint64_t max)
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

#endif
