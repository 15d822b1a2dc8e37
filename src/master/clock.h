/*
 * The master's clocks: wall-clock milliseconds as of the loop's current iteration (ev_now), for
 * the times it stores and shows, so that every change handled in one iteration carries one time;
 * and the monotonic clock, for deciding when something is overdue. Header only; loop thread; never
 * blocks.
 */
#ifndef CRAWLAB_CLOCK_H
#define CRAWLAB_CLOCK_H

#include <stdint.h>
#include <time.h>

#include <ev.h>

static inline int64_t clock_now_ms(struct ev_loop *loop)
{
    return (int64_t)(ev_now(loop) * 1000.0);
}

/* Milliseconds of CLOCK_MONOTONIC: for deadlines and liveness, which a step of the wall clock
 * (NTP, an operator's `date -s`) must neither trigger nor suspend. */
static inline int64_t clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Microseconds of CLOCK_MONOTONIC: for measuring how long something took. */
static inline int64_t clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif
