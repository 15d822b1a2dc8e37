#include "cli/term.h"

/* Length of the C1 control at s (the two bytes C2 80..C2 9F), or 0. */
static size_t c1_len(const unsigned char *s, size_t n)
{
    return n >= 2 && s[0] == 0xC2 && s[1] >= 0x80 && s[1] <= 0x9F ? 2 : 0;
}

static bool is_control(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7F;
}

int term_write(FILE *out, const char *s, size_t n, bool escape)
{
    if (!escape)
        return fwrite(s, 1, n, out) == n ? 0 : -1;
    const unsigned char *p = (const unsigned char *)s;
    size_t plain = 0; /* bytes before i that are written as they are */
    for (size_t i = 0; i < n;) {
        size_t c1 = c1_len(p + i, n - i);
        if (!c1 && !is_control(p[i])) {
            i++;
            continue;
        }
        if (fwrite(p + plain, 1, i - plain, out) != i - plain)
            return -1;
        int rc = c1             ? fprintf(out, "\\u%04x", p[i + 1])
                 : p[i] == 0x7F ? fputs("^?", out)
                                : fprintf(out, "^%c", p[i] + '@');
        if (rc < 0)
            return -1;
        i += c1 ? c1 : 1;
        plain = i;
    }
    return fwrite(p + plain, 1, n - plain, out) == n - plain ? 0 : -1;
}
