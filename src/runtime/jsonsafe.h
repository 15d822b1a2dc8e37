/*
 * The common case of JSON string text, found eight bytes at a time: printable ASCII without a
 * quote or a backslash needs neither escaping (writing) nor unescaping or UTF-8 checks (reading).
 * Log lines are nearly all such bytes, so the byte-by-byte paths only run around the rest.
 */
#ifndef CRAWLAB_JSONSAFE_H
#define CRAWLAB_JSONSAFE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
