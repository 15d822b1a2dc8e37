/*
 * The master's clock: wall-clock milliseconds as of the loop's current iteration (ev_now), so that
 * every change handled in one iteration carries one time, and a test moves time by running the
 * loop. Header only; loop thread; never blocks.
 */
#ifndef CRAWLAB_CLOCK_H
#define CRAWLAB_CLOCK_H

#include <stdint.h>

#include <ev.h>

static inline int64_t clock_now_ms(struct ev_loop *loop)
{
    return (int64_t)(ev_now(loop) * 1000.0);
}

#endif
