#include "runtime/utf8.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        enum utf8_result res;
        i += utf8_next(p + i, n - i, &res);
        if (res != UTF8_OK)
            return false;
    }
    return true;
}

/*
 * One character of output as the sanitiser sees it: utf8_next's verdict, except that NUL counts
 * as invalid too, since a log line is text and C strings end at a NUL on the way to the reader.
 */
static inline size_t next_char(const unsigned char *p, size_t n, bool *valid)
{
    enum utf8_result res;
    size_t span = utf8_next(p, n, &res);
    *valid = res == UTF8_OK && p[0] != 0;
    return span;
}

int utf8_sanitize(const char *in, size_t n, char **out, size_t *out_len)
{
    const unsigned char *p = (const unsigned char *)in;
    bool valid = true;
    size_t first_bad = 0;

    *out = NULL;
    while (first_bad < n) {
        /* ASCII without NUL, eight bytes at a time: nearly all output is that. */
        while (first_bad + 8 <= n) {
            uint64_t w;
            memcpy(&w, p + first_bad, 8);
            if ((w & UINT64_C(0x8080808080808080)) ||
                ((w - UINT64_C(0x0101010101010101)) & ~w & UINT64_C(0x8080808080808080)))
                break;
            first_bad += 8;
        }
        if (first_bad == n)
            break;
        if (p[first_bad] >= 0x01 && p[first_bad] < 0x80) {
            first_bad++;
            continue;
        }
        size_t span = next_char(p + first_bad, n - first_bad, &valid);
        if (!valid)
            break;
        first_bad += span;
    }
    if (first_bad == n) {
        *out_len = n;
        return 0;
    }

    /* First pass sizes the copy exactly; the second writes it. */
    size_t total = first_bad;
    for (size_t i = first_bad; i < n;) {
        size_t span = next_char(p + i, n - i, &valid);
        /* Each replacement costs 3 bytes for at least 1 consumed: total <= 3n. */
        if (total > SIZE_MAX - 4)
            return -ENOMEM;
        total += valid ? span : UTF8_REPLACEMENT_LEN;
        i += span;
    }
    char *buf = malloc(total + 1);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, in, first_bad);
    size_t o = first_bad;
    for (size_t i = first_bad; i < n;) {
        size_t span = next_char(p + i, n - i, &valid);
        if (valid) {
            memcpy(buf + o, in + i, span);
            o += span;
        } else {
            memcpy(buf + o, UTF8_REPLACEMENT, UTF8_REPLACEMENT_LEN);
            o += UTF8_REPLACEMENT_LEN;
        }
        i += span;
    }
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    return 0;
}
