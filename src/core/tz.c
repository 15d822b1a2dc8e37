#include "core/tz.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Bounds on what a file may declare, far above any real zone's, so sizes cannot overflow. */
#define TZ_TIMECNT_MAX (1u << 20)
#define TZ_CHARCNT_MAX (1u << 16)
#define TZ_UTOFF_MAX   (26 * 3600)
#define TZ_FOOTER_MAX  256
#define TZ_HEADER_LEN  44

/* A date of a POSIX TZ rule: Jn (1..365, Feb 29 never counted), n (0..365), Mm.w.d. */
struct tz_when {
    char kind; /* 'J', 'n', 'M' */
    int m, w, d;
    int32_t secs; /* local time of day of the change, may be negative or past 24 h */
};

/* The footer's rule: standard time, and summer time between start and end when has_dst. */
struct tz_rule {
    int32_t std, dst; /* seconds east of UTC */
    bool has_dst;
    struct tz_when start, end;
};

struct tz_zone {
    size_t n;            /* transitions */
    int64_t *at;         /* ascending instants */
    int32_t *off;        /* off[i]: the offset from at[i] on */
    int32_t first_off;   /* before at[0] (the first local time type) */
    int32_t off_max;     /* tz_offset_max */
    bool has_rule;       /* the footer gives the offset after at[n - 1] */
    struct tz_rule rule; /* when has_rule */
};

bool tz_name_valid(const char *name)
{
    size_t len = strnlen(name, TZ_NAME_MAX + 1);
    if (len == 0 || len > TZ_NAME_MAX)
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = name[i];
        if (c == '/' || c == '\0') {
            size_t n = i - start;
            if (n == 0 || (n == 1 && name[start] == '.') ||
                (n == 2 && name[start] == '.' && name[start + 1] == '.'))
                return false;
            start = i + 1;
            continue;
        }
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '+' || c == '.'))
            return false;
    }
    return true;
}

/* ---- civil dates (proleptic Gregorian) ---- */

static int64_t tz_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

void tz_civil(int64_t days, int64_t *y, int *m, int *d)
{
    int64_t z = days + 719468; /* days since 0000-03-01 */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                      /* 0..146096 */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* 0..399 */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* from March 1 */
    int64_t mp = (5 * doy + 2) / 153;                                    /* 0 = March */
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Days since 1970-01-01 of y-m-d (the inverse of tz_civil). */
static int64_t tz_days(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool tz_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* ---- the footer's POSIX TZ string ---- */

static bool tz_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* An unsigned number of at most `digits` digits at *s. */
static bool tz_number(const char **s, int digits, int *out)
{
    int n = 0, i = 0;
    while (i < digits && tz_digit((*s)[i])) {
        n = n * 10 + ((*s)[i] - '0');
        i++;
    }
    if (i == 0)
        return false;
    *s += i;
    *out = n;
    return true;
}

/* A zone abbreviation: three or more letters, or <...> of letters, digits, '+' and '-'. */
static bool tz_abbr(const char **s)
{
    const char *p = *s, *b;
    if (*p == '<') {
        b = ++p;
        while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || tz_digit(*p) || *p == '+' ||
               *p == '-')
            p++;
        if (*p != '>' || p - b < 3)
            return false;
        p++;
    } else {
        b = p;
        while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
            p++;
        if (p - b < 3)
            return false;
    }
    *s = p;
    return true;
}

/* [+-]hh[:mm[:ss]], hh at most max_h: seconds, signed. */
static bool tz_hms(const char **s, int max_h, int32_t *out)
{
    int sign = 1, h, m = 0, sec = 0;
    if (**s == '+' || **s == '-')
        sign = *(*s)++ == '-' ? -1 : 1;
    if (!tz_number(s, 3, &h) || h > max_h)
        return false;
    if (**s == ':') {
        (*s)++;
        if (!tz_number(s, 2, &m) || m > 59)
            return false;
        if (**s == ':') {
            (*s)++;
            if (!tz_number(s, 2, &sec) || sec > 59)
                return false;
        }
    }
    *out = sign * (h * 3600 + m * 60 + sec);
    return true;
}

static bool tz_when_parse(const char **s, struct tz_when *w)
{
    const char *p = *s;
    w->secs = 2 * 3600;
    if (*p == 'J') {
        p++;
        w->kind = 'J';
        if (!tz_number(&p, 3, &w->d) || w->d < 1 || w->d > 365)
            return false;
    } else if (*p == 'M') {
        p++;
        w->kind = 'M';
        if (!tz_number(&p, 2, &w->m) || w->m < 1 || w->m > 12 || *p++ != '.' ||
            !tz_number(&p, 1, &w->w) || w->w < 1 || w->w > 5 || *p++ != '.' ||
            !tz_number(&p, 1, &w->d) || w->d > 6)
            return false;
    } else {
        w->kind = 'n';
        if (!tz_number(&p, 3, &w->d) || w->d > 365)
            return false;
    }
    if (*p == '/') {
        p++;
        if (!tz_hms(&p, 167, &w->secs))
            return false;
    }
    *s = p;
    return true;
}

/* Parses a TZ string ("" is none: *has = false). POSIX offsets are west of UTC, ours east. */
static bool tz_rule_parse(const char *s, struct tz_rule *r, bool *has)
{
    memset(r, 0, sizeof(*r));
    *has = *s != '\0';
    if (!*has)
        return true;
    int32_t west;
    if (!tz_abbr(&s) || !tz_hms(&s, 24, &west))
        return false;
    r->std = -west;
    if (*s == '\0')
        return true;
    if (!tz_abbr(&s))
        return false;
    r->has_dst = true;
    r->dst = r->std + 3600;
    if (*s && *s != ',') {
        if (!tz_hms(&s, 24, &west))
            return false;
        r->dst = -west;
    }
    if (*s == '\0') { /* no rule given: the United States' since 2007, as tzcode does */
        r->start = (struct tz_when){'M', 3, 2, 0, 2 * 3600};
        r->end = (struct tz_when){'M', 11, 1, 0, 2 * 3600};
        return true;
    }
    return *s++ == ',' && tz_when_parse(&s, &r->start) && *s++ == ',' &&
           tz_when_parse(&s, &r->end) && *s == '\0';
}

/* The local time (seconds since 1970-01-01 local) that w names in year y. */
static int64_t tz_when_local(const struct tz_when *w, int64_t y)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t day;
    if (w->kind == 'J') {
        day = tz_days(y, 1, 1) + w->d - 1 + (tz_leap(y) && w->d >= 60);
    } else if (w->kind == 'n') {
        day = tz_days(y, 1, 1) + w->d;
    } else {
        int64_t first = tz_days(y, w->m, 1);
        int wd = (int)(((first % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
        int len = mdays[w->m - 1] + (w->m == 2 && tz_leap(y));
        day = first + (w->d - wd + 7) % 7 + (w->w - 1) * 7;
        while (day >= first + len)
            day -= 7;
    }
    return day * 86400 + w->secs;
}

static int32_t tz_rule_lookup(const struct tz_rule *r, int64_t t, int64_t *next)
{
    if (!r->has_dst) {
        *next = TZ_NO_CHANGE;
        return r->std;
    }
    int64_t y;
    int m, d;
    tz_civil(tz_floor_div(t + r->std, 86400), &y, &m, &d);
    /* The changes of the years around t: the last one at or before t says which time it is. */
    int64_t last = INT64_MIN, first_after = TZ_NO_CHANGE;
    bool dst = false;
    for (int64_t yy = y - 1; yy <= y + 1; yy++) {
        int64_t change[2] = {tz_when_local(&r->start, yy) - r->std,
                             tz_when_local(&r->end, yy) - r->dst};
        for (int k = 0; k < 2; k++) {
            if (change[k] <= t && change[k] > last) {
                last = change[k];
                dst = k == 0;
            } else if (change[k] > t && change[k] < first_after) {
                first_after = change[k];
            }
        }
    }
    *next = first_after;
    return dst ? r->dst : r->std;
}

/* ---- TZif ---- */

struct tz_header {
    char version;
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

static uint32_t tz_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t tz_be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)tz_be32(p) << 32 | tz_be32(p + 4));
}

static int tz_fail(const char **why, const char *what)
{
    if (why)
        *why = what;
    return -EINVAL;
}

/* Reads the header at data[0..len) and the size of the data block after it (times of tsize
 * bytes). */
static int tz_header_read(const uint8_t *data, size_t len, size_t tsize, struct tz_header *h,
                          size_t *block, const char **why)
{
    if (len < TZ_HEADER_LEN)
        return tz_fail(why, "truncated header");
    if (memcmp(data, "TZif", 4) != 0)
        return tz_fail(why, "not a TZif file (bad magic)");
    h->version = (char)data[4];
    if (h->version != '\0' && (h->version < '2' || h->version > '9'))
        return tz_fail(why, "unknown TZif version");
    h->isutcnt = tz_be32(data + 20);
    h->isstdcnt = tz_be32(data + 24);
    h->leapcnt = tz_be32(data + 28);
    h->timecnt = tz_be32(data + 32);
    h->typecnt = tz_be32(data + 36);
    h->charcnt = tz_be32(data + 40);
    if (h->typecnt == 0 || h->typecnt > 256 || h->charcnt == 0 || h->charcnt > TZ_CHARCNT_MAX ||
        h->timecnt > TZ_TIMECNT_MAX || h->leapcnt > TZ_TIMECNT_MAX ||
        (h->isutcnt != 0 && h->isutcnt != h->typecnt) ||
        (h->isstdcnt != 0 && h->isstdcnt != h->typecnt))
        return tz_fail(why, "counts out of range");
    *block = (size_t)h->timecnt * (tsize + 1) + (size_t)h->typecnt * 6 + h->charcnt +
             (size_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
    if (len - TZ_HEADER_LEN < *block)
        return tz_fail(why, "truncated data block (counts larger than the file)");
    if (h->leapcnt)
        return tz_fail(why, "leap-second zones (right/) are not supported");
    return 0;
}

/* Builds the zone from the data block b (times of tsize bytes) described by h. */
static int tz_block_read(const struct tz_header *h, const uint8_t *b, size_t tsize,
                         struct tz_zone **out, const char **why)
{
    size_t n = h->timecnt;
    const uint8_t *times = b, *idx = b + n * tsize, *types = idx + n;
    for (uint32_t i = 0; i < h->typecnt; i++) {
        int32_t off = (int32_t)tz_be32(types + 6 * i);
        if (off < -TZ_UTOFF_MAX || off > TZ_UTOFF_MAX || types[6 * i + 4] > 1 ||
            types[6 * i + 5] >= h->charcnt)
            return tz_fail(why, "bad local time type");
    }
    struct tz_zone *z = calloc(1, sizeof(*z) + n * (sizeof(int64_t) + sizeof(int32_t)));
    if (!z)
        return -ENOMEM;
    z->n = n;
    z->at = (int64_t *)(z + 1);
    z->off = (int32_t *)(z->at + n);
    z->first_off = (int32_t)tz_be32(types);
    z->off_max = z->first_off;
    for (size_t i = 0; i < n; i++) {
        z->at[i] = tsize == 8 ? tz_be64(times + 8 * i) : (int32_t)tz_be32(times + 4 * i);
        if (idx[i] >= h->typecnt || (i > 0 && z->at[i] <= z->at[i - 1])) {
            free(z);
            return tz_fail(why, idx[i] >= h->typecnt ? "bad local time type index"
                                                     : "transitions out of order");
        }
        z->off[i] = (int32_t)tz_be32(types + 6 * idx[i]);
        if (z->off[i] > z->off_max)
            z->off_max = z->off[i];
    }
    *out = z;
    return 0;
}

/* The footer of a version 2+ file at f[0..len): "\n" TZ string "\n". */
static int tz_footer_read(struct tz_zone *z, const uint8_t *f, size_t len, const char **why)
{
    if (len < 2 || f[0] != '\n')
        return tz_fail(why, "truncated footer");
    const uint8_t *end = memchr(f + 1, '\n', len - 1);
    if (!end || end - f - 1 > TZ_FOOTER_MAX)
        return tz_fail(why, "truncated footer");
    char text[TZ_FOOTER_MAX + 1];
    size_t n = (size_t)(end - f - 1);
    memcpy(text, f + 1, n);
    text[n] = '\0';
    if (!tz_rule_parse(text, &z->rule, &z->has_rule))
        return tz_fail(why, "bad TZ string in the footer");
    if (z->has_rule) {
        if (z->rule.std > z->off_max)
            z->off_max = z->rule.std;
        if (z->rule.has_dst && z->rule.dst > z->off_max)
            z->off_max = z->rule.dst;
    }
    return 0;
}

int tz_parse(const uint8_t *data, size_t len, struct tz_zone **out, const char **why)
{
    struct tz_header h;
    size_t block;
    int rc = tz_header_read(data, len, 4, &h, &block, why);
    if (rc < 0)
        return rc;
    if (h.version == '\0')
        return tz_block_read(&h, data + TZ_HEADER_LEN, 4, out, why);
    /* Version 2+: the 32-bit block is skipped for the second header and its 64-bit block. */
    size_t skip = TZ_HEADER_LEN + block;
    struct tz_header h2;
    rc = tz_header_read(data + skip, len - skip, 8, &h2, &block, why);
    if (rc < 0)
        return rc;
    struct tz_zone *z;
    rc = tz_block_read(&h2, data + skip + TZ_HEADER_LEN, 8, &z, why);
    if (rc < 0)
        return rc;
    size_t footer = skip + TZ_HEADER_LEN + block;
    rc = tz_footer_read(z, data + footer, len - footer, why);
    if (rc < 0) {
        free(z);
        return rc;
    }
    *out = z;
    return 0;
}

void tz_free(struct tz_zone *z)
{
    free(z);
}

int32_t tz_lookup(const struct tz_zone *z, int64_t t, int64_t *next)
{
    int64_t ignored;
    if (!next)
        next = &ignored;
    if (z->n == 0 || t >= z->at[z->n - 1]) {
        if (z->has_rule)
            return tz_rule_lookup(&z->rule, t, next);
        *next = TZ_NO_CHANGE;
        return z->n ? z->off[z->n - 1] : z->first_off;
    }
    if (t < z->at[0]) {
        *next = z->at[0];
        return z->first_off;
    }
    /* the last transition at or before t: at[lo] <= t < at[hi] */
    size_t lo = 0, hi = z->n - 1;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->at[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    *next = z->at[hi];
    return z->off[lo];
}

int32_t tz_offset_max(const struct tz_zone *z)
{
    return z->off_max;
}

int64_t tz_local_first(const struct tz_zone *z, int64_t local)
{
    /* Walk the spans of constant offset from the earliest instant that can have this local time:
     * the first span whose local times reach it has its first occurrence; a span that starts
     * past it means the clocks skipped it. */
    int64_t t = local - z->off_max;
    for (int span = 0; span < 64; span++) {
        int64_t next;
        int32_t off = tz_lookup(z, t, &next);
        int64_t at = local - off;
        if (at < t)
            return t;
        if (at < next)
            return at;
        t = next;
    }
    return local - tz_lookup(z, local, NULL);
}
