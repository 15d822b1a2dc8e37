/*
 * Text -> value, with no knowledge of options: the public config_parse_duration_ms, _size and
 * _hostport, and the integer, host and boolean readers the option setters share.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/internal.h"

#define MAX_HOSTNAME_LEN 253
#define MAX_IPV6_LEN     63

/* Strict decimal integer: optional '-', then digits only; no spaces, no '+', no trailing text. */
int config_parse_int(const char *s, long min, long max, long *out)
{
    const char *d = s[0] == '-' ? s + 1 : s;
    if (!isdigit((unsigned char)*d))
        return -EINVAL;
    long long v = 0;
    for (; *d; d++) {
        if (!isdigit((unsigned char)*d))
            return -EINVAL;
        /* Saturate instead of overflowing: LLONG_MAX is out of any range a caller can give. */
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *d - '0', &v))
            v = LLONG_MAX;
    }
    if (s[0] == '-')
        v = -v;
    if (v < min || v > max)
        return -ERANGE;
    *out = (long)v;
    return 0;
}

static bool valid_hostname(const char *s, size_t len)
{
    if (len == 0 || len > MAX_HOSTNAME_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '.' && ch != '-' && ch != '_')
            return false;
    }
    return true;
}

/* Hex digits, ':' and '.' (embedded IPv4), then an optional "%zone" of name characters. */
static bool valid_ipv6(const char *s, size_t len)
{
    if (len < 2 || len > MAX_IPV6_LEN || !memchr(s, ':', len))
        return false;
    size_t i = 0;
    for (; i < len && s[i] != '%'; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isxdigit(ch) && ch != ':' && ch != '.')
            return false;
    }
    if (i < len)
        return valid_hostname(s + i + 1, len - i - 1);
    return true;
}

int config_parse_host(const char *s, char **host)
{
    size_t len = strlen(s);
    const char *h = s;
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        h = s + 1;
        len -= 2;
        if (!valid_ipv6(h, len))
            return -EINVAL;
    } else if (!valid_hostname(h, len) && !valid_ipv6(h, len)) {
        return -EINVAL;
    }
    char *copy = strndup(h, len);
    if (!copy)
        return -ENOMEM;
    *host = copy;
    return 0;
}

int config_parse_hostport(const char *s, char **host, int *port)
{
    const char *h;
    size_t hlen;
    const char *port_text = NULL;

    if (!s)
        return -EINVAL;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return -EINVAL;
        h = s + 1;
        hlen = (size_t)(close - h);
        if (!valid_ipv6(h, hlen))
            return -EINVAL;
        if (close[1] == ':')
            port_text = close + 2;
        else if (close[1] != '\0')
            return -EINVAL;
    } else {
        const char *colon = strchr(s, ':');
        h = s;
        hlen = colon ? (size_t)(colon - s) : strlen(s);
        /* A second colon means an unbracketed IPv6 address, whose port cannot be told apart. */
        if (colon && strchr(colon + 1, ':'))
            return -EINVAL;
        if (colon)
            port_text = colon + 1;
        if (!valid_hostname(h, hlen))
            return -EINVAL;
    }

    int port_value = *port;
    if (port_text) {
        long v;
        if (config_parse_int(port_text, 1, 65535, &v) != 0)
            return -EINVAL;
        port_value = (int)v;
    }
    char *copy = strndup(h, hlen);
    if (!copy)
        return -ENOMEM;
    *host = copy;
    *port = port_value;
    return 0;
}

int config_parse_duration_ms(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return -EINVAL;

    const char *p = s;
    uint64_t total = 0;
    bool overflow = false;
    bool first = true;

    while (*p) {
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        uint64_t whole = 0;
        for (; isdigit((unsigned char)*p); p++) {
            if (__builtin_mul_overflow(whole, 10, &whole) ||
                __builtin_add_overflow(whole, (uint64_t)(*p - '0'), &whole))
                overflow = true;
        }
        /* Nine fractional digits are far below a millisecond for every unit; later ones are
         * checked for syntax and otherwise ignored. */
        uint64_t frac = 0, frac_scale = 1;
        if (*p == '.') {
            p++;
            if (!isdigit((unsigned char)*p))
                return -EINVAL;
            for (; isdigit((unsigned char)*p); p++) {
                if (frac_scale < 1000000000) {
                    frac = frac * 10 + (uint64_t)(*p - '0');
                    frac_scale *= 10;
                }
            }
        }

        uint64_t unit;
        if (strncmp(p, "ms", 2) == 0) {
            unit = 1;
            p += 2;
        } else if (*p == 's') {
            unit = 1000;
            p++;
        } else if (*p == 'm') {
            unit = 60 * 1000;
            p++;
        } else if (*p == 'h') {
            unit = 60 * 60 * 1000;
            p++;
        } else if (*p == 'd') {
            unit = 24 * 60 * 60 * 1000;
            p++;
        } else if (*p == '\0' && first) {
            /* A bare number means seconds, as in Crawlab's own settings. */
            unit = 1000;
        } else {
            return -EINVAL;
        }

        uint64_t part;
        if (__builtin_mul_overflow(whole, unit, &part) ||
            __builtin_add_overflow(part, frac * unit / frac_scale, &part) ||
            __builtin_add_overflow(total, part, &total))
            overflow = true;
        first = false;
    }
    if (overflow)
        return -ERANGE;
    *out = total;
    return 0;
}

int config_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        unsigned shift;
    } suffixes[] = {
        {"", 0},     {"b", 0},  {"k", 10},  {"kb", 10},  {"kib", 10}, {"m", 20},  {"mb", 20},
        {"mib", 20}, {"g", 30}, {"gb", 30}, {"gib", 30}, {"t", 40},   {"tb", 40}, {"tib", 40},
    };

    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    const char *p = s;
    uint64_t v = 0;
    bool overflow = false;
    for (; isdigit((unsigned char)*p); p++) {
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
            overflow = true;
    }
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        if (strcasecmp(p, suffixes[i].suffix) != 0)
            continue;
        unsigned shift = suffixes[i].shift;
        if (overflow || (shift > 0 && v > (UINT64_MAX >> shift)))
            return -ERANGE;
        *out = v << shift;
        return 0;
    }
    return -EINVAL;
}

int config_parse_cert_host(const char *s, size_t len)
{
    char buf[MAX_HOSTNAME_LEN + 1];
    unsigned char addr[16];
    if (len == 0 || len > MAX_HOSTNAME_LEN)
        return -EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET6, buf, addr) == 1)
        return 0;
    return valid_hostname(s, len) ? 0 : -EINVAL;
}

int config_parse_yes_no(const char *s, bool *out)
{
    static const char *const yes[] = {"y", "yes", "true", "1"};
    static const char *const no[] = {"n", "no", "false", "0"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

/* Exactly n digits at s, as a number within [min, max]. */
static bool date_field(const char *s, int n, int min, int max, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int config_parse_date_ms(const char *s, int64_t *out)
{
    static const int month_days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h = 0, mi = 0, sec = 0;
    if (!s || strlen(s) < 10 || !date_field(s, 4, 1970, 9999, &y) || s[4] != '-' ||
        !date_field(s + 5, 2, 1, 12, &mo) || s[7] != '-' ||
        !date_field(s + 8, 2, 1, month_days[mo - 1], &d))
        return -EINVAL;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return -EINVAL;
    const char *p = s + 10;
    if (*p == 'T') {
        if (!date_field(p + 1, 2, 0, 23, &h) || p[3] != ':' || !date_field(p + 4, 2, 0, 59, &mi))
            return -EINVAL;
        p += 6;
        if (*p == ':') {
            if (!date_field(p + 1, 2, 0, 59, &sec))
                return -EINVAL;
            p += 3;
        }
        if (*p == 'Z')
            p++;
    }
    if (*p)
        return -EINVAL;
    *out = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + (int64_t)sec * 1000;
    return 0;
}
