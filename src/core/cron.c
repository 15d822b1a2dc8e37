#include "core/cron.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

enum { F_MINUTE, F_HOUR, F_MDAY, F_MONTH, F_WDAY, F_COUNT };

static const struct {
    const char *name;
    int lo, hi;
} cron_fields[F_COUNT] = {
    {"minute", 0, 59}, {"hour", 0, 23},       {"day-of-month", 1, 31},
    {"month", 1, 12},  {"day-of-week", 0, 7},
};

static int cron_fail(struct cron_error *err, const char *field, int pos, const char *what)
{
    if (err) {
        err->field = field;
        err->pos = pos;
        snprintf(err->what, sizeof err->what, "%s", what);
    }
    return -EINVAL;
}

const char *cron_error_text(const struct cron_error *err, char *buf, size_t len)
{
    snprintf(buf, len, "schedule: %s at position %d: %s", err->field, err->pos, err->what);
    return buf;
}

/* Reads a decimal number of at most 9 digits at text[*i]; -1 when there is none. */
static int cron_number(const char *text, size_t *i)
{
    int n = 0, digits = 0;
    while (text[*i] >= '0' && text[*i] <= '9') {
        if (++digits > 9)
            return -1;
        n = n * 10 + (text[*i] - '0');
        (*i)++;
    }
    return digits ? n : -1;
}

/* Parses the field text[start..end) into *bits. */
static int cron_field(const char *text, size_t start, size_t end, int f, uint64_t *bits,
                      struct cron_error *err)
{
    const char *name = cron_fields[f].name;
    int lo = cron_fields[f].lo, hi = cron_fields[f].hi;
    char what[96];
    size_t i = start;
    *bits = 0;
    for (;;) {
        size_t item = i;
        int a, b, step = 1;
        if (text[i] == '*') {
            a = lo;
            b = hi;
            i++;
        } else {
            a = cron_number(text, &i);
            if (a < 0)
                return cron_fail(err, name, (int)i + 1, "expected a number or '*'");
            if (a < lo || a > hi) {
                snprintf(what, sizeof what, "%d is out of range %d-%d", a, lo, hi);
                return cron_fail(err, name, (int)item + 1, what);
            }
            b = a;
            if (text[i] == '-') {
                i++;
                size_t at = i;
                b = cron_number(text, &i);
                if (b < 0)
                    return cron_fail(err, name, (int)i + 1, "expected a number after '-'");
                if (b < lo || b > hi) {
                    snprintf(what, sizeof what, "%d is out of range %d-%d", b, lo, hi);
                    return cron_fail(err, name, (int)at + 1, what);
                }
                if (b < a)
                    return cron_fail(err, name, (int)item + 1, "range ends before it starts");
            }
        }
        if (text[i] == '/') {
            i++;
            size_t at = i;
            step = cron_number(text, &i);
            if (step < 0)
                return cron_fail(err, name, (int)i + 1, "expected a step after '/'");
            if (step < 1 || step > hi)
                return cron_fail(err, name, (int)at + 1, "step out of range");
            /* "N/S" means N to the end of the range, every S, as in Vixie cron */
            if (text[item] != '*' && a == b)
                b = hi;
        }
        for (int v = a; v <= b; v += step)
            *bits |= UINT64_C(1) << v;
        if (i == end)
            return 0;
        if (text[i] != ',')
            return cron_fail(err, name, (int)i + 1, "unexpected character");
        i++;
    }
}

/* Days in month m (1..12) of a leap year or not. */
static int cron_month_days(int m, bool leap)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap ? 29 : days[m - 1];
}

static int cron_fields_parse(const char *text, struct cron_expr *out, struct cron_error *err)
{
    size_t starts[F_COUNT], ends[F_COUNT], i = 0;
    int n = 0;
    for (;;) {
        while (text[i] == ' ' || text[i] == '\t')
            i++;
        if (!text[i])
            break;
        if (n == F_COUNT)
            return cron_fail(err, "expression", (int)i + 1, "more than five fields");
        starts[n] = i;
        while (text[i] && text[i] != ' ' && text[i] != '\t')
            i++;
        ends[n++] = i;
    }
    if (n < F_COUNT) {
        char what[96];
        snprintf(what, sizeof what,
                 "%d field%s, expected five (minute hour day-of-month month "
                 "day-of-week) or an @ word",
                 n, n == 1 ? "" : "s");
        return cron_fail(err, "expression", (int)i + 1, what);
    }
    uint64_t bits[F_COUNT];
    for (int f = 0; f < F_COUNT; f++) {
        int rc = cron_field(text, starts[f], ends[f], f, &bits[f], err);
        if (rc < 0)
            return rc;
    }
    out->every = false;
    out->minutes = bits[F_MINUTE];
    out->hours = (uint32_t)bits[F_HOUR];
    out->mdays = (uint32_t)bits[F_MDAY];
    out->months = (uint16_t)bits[F_MONTH];
    /* 7 is Sunday too */
    out->wdays = (uint8_t)((bits[F_WDAY] | (bits[F_WDAY] >> 7)) & 0x7f);
    out->mday_star = text[starts[F_MDAY]] == '*';
    out->wday_star = text[starts[F_WDAY]] == '*';
    /* With the day of week free, some selected month must have a selected day. */
    if (out->wday_star) {
        int longest = 0;
        for (int m = 1; m <= 12; m++)
            if (out->months & (1u << m) && cron_month_days(m, true) > longest)
                longest = cron_month_days(m, true);
        int first = 1;
        while (!(out->mdays & (UINT32_C(1) << first)))
            first++;
        if (first > longest)
            return cron_fail(err, "day-of-month", (int)starts[F_MDAY] + 1,
                             "no month selected has that day: it would never fire");
    }
    return 0;
}

int cron_parse_duration(const char *text, int64_t *out)
{
    int64_t total = 0;
    size_t i = 0;
    if (!text[0])
        return -EINVAL;
    while (text[i]) {
        int n = cron_number(text, &i);
        if (n < 0)
            return -EINVAL;
        int64_t unit;
        switch (text[i]) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        default:
            return -EINVAL;
        }
        i++;
        total += (int64_t)n * unit;
        if (total > CRON_EVERY_MAX)
            return -EINVAL;
    }
    if (total < 1)
        return -EINVAL;
    *out = total;
    return 0;
}

int cron_parse(const char *text, int32_t offset, struct cron_expr *out, struct cron_error *err)
{
    static const struct {
        const char *word, *fields;
    } words[] = {
        {"@hourly", "0 * * * *"}, {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
        {"@weekly", "0 0 * * 0"}, {"@monthly", "0 0 1 * *"},
    };
    memset(out, 0, sizeof *out);
    if (offset < -CRON_OFFSET_MAX || offset > CRON_OFFSET_MAX)
        return cron_fail(err, "offset", 1, "more than 14 hours from UTC");
    size_t len = strnlen(text, CRON_EXPR_MAX + 1);
    if (len > CRON_EXPR_MAX)
        return cron_fail(err, "expression", CRON_EXPR_MAX + 1, "longer than 256 bytes");
    size_t i = 0;
    while (text[i] == ' ' || text[i] == '\t')
        i++;
    out->offset = offset;
    if (text[i] != '@')
        return cron_fields_parse(text, out, err);
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        size_t wl = strlen(words[w].word);
        if (strncmp(text + i, words[w].word, wl) == 0) {
            size_t j = i + wl;
            while (text[j] == ' ' || text[j] == '\t')
                j++;
            if (text[j])
                return cron_fail(err, "expression", (int)j + 1, "text after the @ word");
            int rc = cron_fields_parse(words[w].fields, out, NULL);
            out->offset = offset;
            return rc;
        }
    }
    if (strncmp(text + i, "@every", 6) == 0 && (text[i + 6] == ' ' || text[i + 6] == '\t')) {
        size_t j = i + 6;
        while (text[j] == ' ' || text[j] == '\t')
            j++;
        size_t k = j;
        while (text[k] && text[k] != ' ' && text[k] != '\t')
            k++;
        size_t t = k;
        while (text[t] == ' ' || text[t] == '\t')
            t++;
        if (text[t])
            return cron_fail(err, "expression", (int)t + 1, "text after the duration");
        char d[CRON_EXPR_MAX + 1];
        memcpy(d, text + j, k - j);
        d[k - j] = '\0';
        if (cron_parse_duration(d, &out->period) < 0)
            return cron_fail(err, "duration", (int)j + 1,
                             "expected NUMBER UNIT pairs (units s, m, h, d), 1s to 366d");
        out->every = true;
        return 0;
    }
    return cron_fail(err, "expression", (int)i + 1,
                     "unknown @ word (@every D, @hourly, @daily, @weekly, @monthly)");
}

static int64_t cron_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static bool cron_day_matches(const struct cron_expr *e, int64_t days)
{
    int64_t y;
    int m, d;
    tz_civil(days, &y, &m, &d);
    if (!(e->months & (1u << m)))
        return false;
    int wd = (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
    bool md = (e->mdays >> d) & 1, w = (e->wdays >> wd) & 1;
    if (e->mday_star || e->wday_star)
        return md && w;
    return md || w;
}

/* The first wall-clock time (local seconds, to the minute) strictly after `wall` that the cron
 * fields match, or -1. */
static int64_t cron_next_wall(const struct cron_expr *e, int64_t wall)
{
    int64_t local = cron_floor_div(wall, 60) * 60 + 60;
    int64_t day = cron_floor_div(local, 86400);
    int64_t sod = local - day * 86400;
    int h0 = (int)(sod / 3600), m0 = (int)(sod % 3600 / 60);
    for (int64_t n = 0; n < 30 * 366; n++, day++, h0 = 0, m0 = 0) {
        if (!cron_day_matches(e, day))
            continue;
        for (int h = h0; h < 24; h++) {
            if (!((e->hours >> h) & 1))
                continue;
            for (int mi = h == h0 ? m0 : 0; mi < 60; mi++)
                if ((e->minutes >> mi) & 1)
                    return day * 86400 + h * 3600 + mi * 60;
        }
    }
    return -1;
}

/* The latest wall-clock time at or before `wall` that the cron fields match, or -1. */
static int64_t cron_prev_wall(const struct cron_expr *e, int64_t wall)
{
    int64_t local = cron_floor_div(wall, 60) * 60;
    int64_t day = cron_floor_div(local, 86400);
    int64_t sod = local - day * 86400;
    int h0 = (int)(sod / 3600), m0 = (int)(sod % 3600 / 60);
    for (int64_t n = 0; n < 30 * 366; n++, day--, h0 = 23, m0 = 59) {
        if (!cron_day_matches(e, day))
            continue;
        for (int h = h0; h >= 0; h--) {
            if (!((e->hours >> h) & 1))
                continue;
            for (int mi = h == h0 ? m0 : 59; mi >= 0; mi--)
                if ((e->minutes >> mi) & 1)
                    return day * 86400 + h * 3600 + mi * 60;
        }
    }
    return -1;
}

/*
 * In a named zone a wall-clock time becomes its instant by tz_local_first: the earlier occurrence
 * of a time the clocks pass twice, the end of the gap for a time they skip. That map never goes
 * backwards, so the fire after `after` is the first matching wall time past the wall time at
 * `after` whose instant is later than `after` (only the second pass of a fold skips some).
 */
int64_t cron_next(const struct cron_expr *e, int64_t after)
{
    if (e->every)
        return (cron_floor_div(after, e->period) + 1) * e->period;
    if (!e->zone) {
        int64_t w = cron_next_wall(e, after + e->offset);
        return w < 0 ? -1 : w - e->offset;
    }
    int64_t w = after + tz_lookup(e->zone, after, NULL);
    for (;;) {
        w = cron_next_wall(e, w);
        if (w < 0)
            return -1;
        int64_t t = tz_local_first(e->zone, w);
        if (t > after)
            return t;
    }
}

/* The latest fire time at or before `at`, or -1 (the mirror of cron_next; in a zone, from the
 * latest wall time any instant up to `at` can have). */
static int64_t cron_prev(const struct cron_expr *e, int64_t at)
{
    if (e->every)
        return cron_floor_div(at, e->period) * e->period;
    if (!e->zone) {
        int64_t w = cron_prev_wall(e, at + e->offset);
        return w < 0 ? -1 : w - e->offset;
    }
    int64_t w = at + tz_offset_max(e->zone);
    for (;;) {
        w = cron_prev_wall(e, w);
        if (w < 0)
            return -1;
        int64_t t = tz_local_first(e->zone, w);
        if (t <= at)
            return t;
        w--;
    }
}

int64_t cron_last_between(const struct cron_expr *e, int64_t since, int64_t at)
{
    if (at <= since)
        return -1;
    int64_t last = cron_prev(e, at);
    return last > since ? last : -1;
}

int cron_parse_offset(const char *text, int32_t *out)
{
    if (strcmp(text, "Z") == 0 || strcmp(text, "UTC") == 0 || strcmp(text, "utc") == 0) {
        *out = 0;
        return 0;
    }
    if (text[0] != '+' && text[0] != '-')
        return -EINVAL;
    int sign = text[0] == '-' ? -1 : 1;
    const char *p = text + 1;
    int h, m = 0;
    if (!(p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9'))
        return -EINVAL;
    h = (p[0] - '0') * 10 + (p[1] - '0');
    p += 2;
    if (*p == ':')
        p++;
    if (*p) {
        if (!(p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9') || p[2])
            return -EINVAL;
        m = (p[0] - '0') * 10 + (p[1] - '0');
    } else if (p[-1] == ':') {
        return -EINVAL;
    }
    if (m > 59 || h * 3600 + m * 60 > CRON_OFFSET_MAX)
        return -EINVAL;
    *out = sign * (h * 3600 + m * 60);
    return 0;
}

const char *cron_offset_text(int32_t offset, char *buf)
{
    if (offset == 0) {
        strcpy(buf, "Z");
        return buf;
    }
    int32_t a = offset < 0 ? -offset : offset;
    snprintf(buf, 8, "%c%02d:%02d", offset < 0 ? '-' : '+', (int)(a / 3600 % 100),
             (int)(a % 3600 / 60));
    return buf;
}

static const char *const cron_overlap_names[] = {"skip", "allow", "cancel-previous"};
static const char *const cron_missed_names[] = {"run-once", "skip"};

const char *cron_overlap_name(enum cron_overlap o)
{
    return (unsigned)o < 3 ? cron_overlap_names[o] : "?";
}

int cron_overlap_parse(const char *s, enum cron_overlap *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, cron_overlap_names[i]) == 0) {
            *out = (enum cron_overlap)i;
            return 0;
        }
    return -EINVAL;
}

const char *cron_missed_name(enum cron_missed m)
{
    return (unsigned)m < 2 ? cron_missed_names[m] : "?";
}

int cron_missed_parse(const char *s, enum cron_missed *out)
{
    for (int i = 0; i < 2; i++)
        if (strcmp(s, cron_missed_names[i]) == 0) {
            *out = (enum cron_missed)i;
            return 0;
        }
    return -EINVAL;
}
