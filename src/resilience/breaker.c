#include "resilience/breaker.h"

#include <limits.h>

#include "resilience/rng.h"

/* Moves to OPEN for the current cool-down, jittered down by at most half. */
static void trip(struct breaker *b, uint64_t now_ms)
{
    uint64_t wait = (b->cooldown_ms - b->cooldown_ms / 2) + rng_upto(&b->rng, b->cooldown_ms / 2);
    b->state = BREAKER_OPEN;
    b->open_until_ms = now_ms > UINT64_MAX - wait ? UINT64_MAX : now_ms + wait;
}

void breaker_init(struct breaker *b, const struct breaker_policy *p, uint64_t seed)
{
    struct breaker_policy pol = {0};
    if (p)
        pol = *p;
    if (pol.failure_threshold == 0)
        pol.failure_threshold = BREAKER_DEFAULT_FAILURE_THRESHOLD;
    if (pol.open_min_ms == 0)
        pol.open_min_ms = BREAKER_DEFAULT_OPEN_MIN_MS;
    if (pol.open_max_ms == 0)
        pol.open_max_ms = BREAKER_DEFAULT_OPEN_MAX_MS;
    if (pol.open_max_ms < pol.open_min_ms)
        pol.open_max_ms = pol.open_min_ms;

    b->policy = pol;
    b->state = BREAKER_CLOSED;
    b->failures = 0;
    b->cooldown_ms = pol.open_min_ms;
    b->open_until_ms = 0;
    b->rng = seed;
}

bool breaker_allow(struct breaker *b, uint64_t now_ms)
{
    switch (b->state) {
    case BREAKER_CLOSED:
        return true;
    case BREAKER_OPEN:
        if (now_ms < b->open_until_ms)
            return false;
        b->state = BREAKER_HALF_OPEN;
        return true;
    case BREAKER_HALF_OPEN:
        return false;
    }
    return false;
}

void breaker_success(struct breaker *b, uint64_t now_ms)
{
    b->state = BREAKER_CLOSED;
    b->failures = 0;
    b->cooldown_ms = b->policy.open_min_ms;
    b->open_until_ms = 0;
}

void breaker_failure(struct breaker *b, uint64_t now_ms)
{
    if (b->failures < UINT_MAX)
        b->failures++;

    switch (b->state) {
    case BREAKER_CLOSED:
        if (b->failures >= b->policy.failure_threshold) {
            b->cooldown_ms = b->policy.open_min_ms;
            trip(b, now_ms);
        }
        break;
    case BREAKER_HALF_OPEN:
        /* Compare before doubling so that a cap near UINT64_MAX cannot overflow. */
        if (b->cooldown_ms > b->policy.open_max_ms / 2)
            b->cooldown_ms = b->policy.open_max_ms;
        else
            b->cooldown_ms *= 2;
        trip(b, now_ms);
        break;
    case BREAKER_OPEN:
        break;
    }
}

uint64_t breaker_open_until(const struct breaker *b)
{
    return b->open_until_ms;
}

const char *breaker_state_name(enum breaker_state s)
{
    switch (s) {
    case BREAKER_CLOSED:
        return "closed";
    case BREAKER_OPEN:
        return "open";
    case BREAKER_HALF_OPEN:
        return "half-open";
    }
    return "unknown";
}
