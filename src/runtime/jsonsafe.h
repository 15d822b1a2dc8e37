/*
 * The common case of JSON string text, found sixteen bytes at a time (SSE2) or eight (any 64-bit
 * CPU): printable ASCII without a quote or a backslash needs neither escaping (writing) nor
 * unescaping or UTF-8 checks (reading). Log lines are nearly all such bytes, so the byte-by-byte
 * paths only run around the rest.
 */
#ifndef CRAWLAB_JSONSAFE_H
#define CRAWLAB_JSONSAFE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define JSONSAFE_ONES  UINT64_C(0x0101010101010101)
#define JSONSAFE_HIGHS UINT64_C(0x8080808080808080)

/* Nonzero when some byte of w is zero. */
static inline uint64_t jsonsafe_has_zero(uint64_t w)
{
    return (w - JSONSAFE_ONES) & ~w & JSONSAFE_HIGHS;
}

/* How many leading bytes of p[0..n) are plain: 0x20..0x7f, neither '"' nor '\\'. */
static inline size_t jsonsafe_plain_prefix(const char *p, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    /* As signed bytes, both the controls and the bytes from 0x80 up are below 0x20. The mask has
     * a bit per byte, so the first special byte's place is its lowest set bit. */
    const __m128i space = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        __m128i special =
            _mm_or_si128(_mm_cmplt_epi8(v, space),
                         _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)));
        unsigned mask = (unsigned)_mm_movemask_epi8(special);
        if (mask)
            return i + (size_t)__builtin_ctz(mask);
    }
#endif
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        uint64_t special = (w & JSONSAFE_HIGHS) |                               /* >= 0x80 */
                           ((w - JSONSAFE_ONES * 0x20) & ~w & JSONSAFE_HIGHS) | /* < 0x20 */
                           jsonsafe_has_zero(w ^ (JSONSAFE_ONES * '"')) |
                           jsonsafe_has_zero(w ^ (JSONSAFE_ONES * '\\'));
        if (special)
            break;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
            break;
    }
    return i;
}

#endif
