#include "retry.h"

#include <stddef.h>

/*
 * Backoff and breaker draw from separate generators. Deriving the breaker's seed with an arbitrary
 * odd constant keeps one seed per worker while making the two sequences unrelated.
 */
#define BREAKER_SEED_SALT UINT64_C(0xd6e8feb86659fd93)

void retry_init(struct retry_policy_state *r, uint64_t seed)
{
    retry_init_capped(r, seed, 0);
}

void retry_init_capped(struct retry_policy_state *r, uint64_t seed, uint64_t cooldown_max_ms)
{
    struct breaker_policy policy = {.open_max_ms = cooldown_max_ms};
    backoff_init(&r->backoff, RETRY_BACKOFF_BASE_MS, RETRY_BACKOFF_CAP_MS, seed);
    breaker_init(&r->breaker, &policy, seed ^ BREAKER_SEED_SALT);
    retry_set_targets(r, 1);
}

void retry_set_targets(struct retry_policy_state *r, unsigned n_targets)
{
    r->n_targets = n_targets ? n_targets : 1;
    r->target = 0;
    r->failed = 0;
}

unsigned retry_target(const struct retry_policy_state *r)
{
    return r->target;
}

static uint64_t after(uint64_t now_ms, uint64_t delay)
{
    return now_ms > UINT64_MAX - delay ? UINT64_MAX : now_ms + delay;
}

uint64_t retry_on_failure(struct retry_policy_state *r, uint64_t now_ms)
{
    r->target = (r->target + 1) % r->n_targets;
    if (++r->failed < r->n_targets)
        return after(now_ms, backoff_draw_ms(&r->backoff));
    r->failed = 0;
    breaker_failure(&r->breaker, now_ms);
    if (r->breaker.state == BREAKER_OPEN)
        return breaker_open_until(&r->breaker);
    return after(now_ms, backoff_next_ms(&r->backoff));
}

void retry_on_success(struct retry_policy_state *r, uint64_t now_ms)
{
    r->failed = 0;
    breaker_success(&r->breaker, now_ms);
    backoff_reset(&r->backoff);
}

bool retry_allow(struct retry_policy_state *r, uint64_t now_ms)
{
    return r->failed > 0 || breaker_allow(&r->breaker, now_ms);
}
