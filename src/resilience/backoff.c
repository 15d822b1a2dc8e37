#include "resilience/backoff.h"

#include <stdbool.h>

#include "resilience/rng.h"

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

uint64_t backoff_draw_ms(struct backoff *b)
{
    return rng_upto(&b->rng, backoff_window_ms(b));
}

uint64_t backoff_next_ms(struct backoff *b)
{
    uint64_t window = backoff_window_ms(b);
    uint64_t delay = backoff_draw_ms(b);
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

uint64_t backoff_nth_ms(uint64_t base_ms, uint64_t cap_ms, unsigned n, uint64_t seed)
{
    struct backoff b;
    backoff_init(&b, base_ms, cap_ms, seed);
    for (unsigned i = 1; i < n && backoff_window_ms(&b) < cap_ms; i++)
        backoff_next_ms(&b);
    uint64_t window = backoff_window_ms(&b);
    /* backoff_next_ms draws from [0, window]: half of it, taken from the top. */
    return window - backoff_next_ms(&b) / 2;
}
