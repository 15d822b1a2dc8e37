#include "runtime/utf8.h"

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
