#include "core/rules.h"

#include <string.h>

#include "runtime/utf8.h"

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool node_key_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = strnlen(s, LIMIT_NODE_KEY_MAX + 1);
    if (n == 0 || n > LIMIT_NODE_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(is_alpha(c) || is_digit(c) || c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

bool text_line_valid(const char *s, size_t max)
{
    if (!s)
        return false;
    size_t n = strnlen(s, max + 1);
    if (n > max || !utf8_valid(s, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F)
            return false;
    return true;
}

bool name_valid(const char *s)
{
    return s && *s && text_line_valid(s, LIMIT_NAME_MAX);
}

bool env_name_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > LIMIT_ENV_NAME_MAX || is_digit(s[0]))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!(is_alpha(s[i]) || is_digit(s[i]) || s[i] == '_'))
            return false;
    return true;
}

bool auth_key_valid(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7E)
            return false;
    return true;
}

bool priority_valid(long long p)
{
    return p >= LIMIT_PRIORITY_MIN && p <= LIMIT_PRIORITY_MAX;
}

bool retries_valid(long long n)
{
    return n >= 0 && n <= LIMIT_RETRIES_MAX;
}

bool retry_delay_valid(long long ms)
{
    return ms >= 0 && ms <= LIMIT_RETRY_DELAY_MAX_MS;
}
