#include "retry.h"

#include <stddef.h>

/*
 * Backoff and breaker draw from separate generators. Deriving the breaker's seed with an arbitrary
 * odd constant keeps one seed per worker while making the two sequences unrelated.
 */
#define BREAKER_SEED_SALT UINT64_C(0xd6e8feb86659fd93)

void retry_init(struct retry_policy_state *r, uint64_t seed)
{
    backoff_init(&r->backoff, RETRY_BACKOFF_BASE_MS, RETRY_BACKOFF_CAP_MS, seed);
    breaker_init(&r->breaker, NULL, seed ^ BREAKER_SEED_SALT);
}

uint64_t retry_on_failure(struct retry_policy_state *r, uint64_t now_ms)
{
    breaker_failure(&r->breaker, now_ms);
    if (r->breaker.state == BREAKER_OPEN)
        return breaker_open_until(&r->breaker);
    uint64_t delay = backoff_next_ms(&r->backoff);
    return now_ms > UINT64_MAX - delay ? UINT64_MAX : now_ms + delay;
}

void retry_on_success(struct retry_policy_state *r, uint64_t now_ms)
{
    breaker_success(&r->breaker, now_ms);
    backoff_reset(&r->backoff);
}

bool retry_allow(struct retry_policy_state *r, uint64_t now_ms)
{
    return breaker_allow(&r->breaker, now_ms);
}
