/*
 * Time zones (core/tz.c) and cron in a named zone (core/cron.c): the machine's zone files
 * (/usr/share/zoneinfo, Debian's tzdata) against libc's reading of the same files, the footer's
 * TZ string for instants after the last transition, the DST gap and fold of Europe/Berlin and
 * America/New_York for a `30 2 * * *` schedule, and hand-built TZif bytes: a version 1 file and
 * malformed ones (bad magic, truncated, counts larger than the file, a bad footer).
 */
#define _DEFAULT_SOURCE
#include "check_main.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cron.h"
#include "core/tz.h"

static int64_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm);
}

/* The zone file of name from /usr/share/zoneinfo (the test reads; core/tz.c does not). */
static struct tz_zone *zone(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f, "%s: install tzdata (scripts/debian-packages.txt)", path);
    static uint8_t buf[TZ_FILE_MAX];
    size_t len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    struct tz_zone *z = NULL;
    const char *why = "";
    int rc = tz_parse(buf, len, &z, &why);
    ck_assert_msg(rc == 0, "%s: %s", name, why);
    return z;
}

START_TEST(offsets_agree_with_libc_from_1900_to_2100)
{
    static const char *const names[] = {"Europe/Berlin",  "America/New_York", "Australia/Sydney",
                                        "Asia/Kolkata",   "Pacific/Apia",     "America/Sao_Paulo",
                                        "Europe/London",  "Asia/Tehran",      "Africa/Casablanca",
                                        "Pacific/Chatham"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct tz_zone *z = zone(names[i]);
        setenv("TZ", names[i], 1);
        tzset();
        /* every 123 hours and 13 minutes: all hours of the day, every day of the week in turn */
        for (int64_t t = utc(1900, 1, 1, 0, 0); t < utc(2100, 1, 1, 0, 0); t += 123 * 3600 + 780) {
            time_t tt = (time_t)t;
            struct tm tm;
            localtime_r(&tt, &tm);
            int64_t next;
            int32_t off = tz_lookup(z, t, &next);
            ck_assert_msg(off == tm.tm_gmtoff, "%s at %lld: %d, libc %ld", names[i], (long long)t,
                          off, tm.tm_gmtoff);
            ck_assert(next > t);
            ck_assert_int_le(off, tz_offset_max(z));
        }
        tz_free(z);
    }
    unsetenv("TZ");
}
END_TEST

START_TEST(the_footer_rule_gives_far_future_offsets)
{
    struct tz_zone *z = zone("Europe/Berlin");
    int64_t next;
    ck_assert_int_eq(tz_lookup(z, utc(2040, 1, 15, 12, 0), &next), 3600);
    ck_assert_int_eq(next, utc(2040, 3, 25, 1, 0)); /* last Sunday of March, 02:00 CET */
    ck_assert_int_eq(tz_lookup(z, utc(2040, 3, 25, 1, 0), &next), 7200);
    ck_assert_int_eq(next, utc(2040, 10, 28, 1, 0)); /* last Sunday of October, 03:00 CEST */
    ck_assert_int_eq(tz_lookup(z, utc(2040, 10, 28, 1, 0) - 1, NULL), 7200);
    ck_assert_int_eq(tz_lookup(z, utc(2040, 10, 28, 1, 0), NULL), 3600);
    tz_free(z);

    /* southern hemisphere: summer time spans the new year */
    z = zone("Australia/Sydney");
    ck_assert_int_eq(tz_lookup(z, utc(2040, 1, 1, 0, 0), NULL), 11 * 3600);
    ck_assert_int_eq(tz_lookup(z, utc(2040, 3, 31, 16, 0) - 1, &next), 11 * 3600);
    ck_assert_int_eq(next, utc(2040, 3, 31, 16, 0));
    ck_assert_int_eq(tz_lookup(z, utc(2040, 7, 1, 0, 0), NULL), 10 * 3600);
    ck_assert_int_eq(tz_lookup(z, utc(2040, 12, 31, 23, 0), NULL), 11 * 3600);
    tz_free(z);
}
END_TEST

START_TEST(local_times_map_to_their_first_instant)
{
    struct tz_zone *z = zone("Europe/Berlin");
    /* an ordinary time */
    ck_assert_int_eq(tz_local_first(z, utc(2026, 7, 1, 12, 0)), utc(2026, 7, 1, 10, 0));
    /* the gap of 2026-03-29, 02:00-03:00 local: the instant the clocks jumped */
    ck_assert_int_eq(tz_local_first(z, utc(2026, 3, 29, 2, 30)), utc(2026, 3, 29, 1, 0));
    ck_assert_int_eq(tz_local_first(z, utc(2026, 3, 29, 3, 0)), utc(2026, 3, 29, 1, 0));
    ck_assert_int_eq(tz_local_first(z, utc(2026, 3, 29, 1, 59)), utc(2026, 3, 29, 0, 59));
    /* the fold of 2026-10-25, 02:00-03:00 local twice: the first (summer time) */
    ck_assert_int_eq(tz_local_first(z, utc(2026, 10, 25, 2, 30)), utc(2026, 10, 25, 0, 30));
    ck_assert_int_eq(tz_local_first(z, utc(2026, 10, 25, 3, 0)), utc(2026, 10, 25, 2, 0));
    tz_free(z);
}
END_TEST

static struct cron_expr in_zone(const char *text, const struct tz_zone *z)
{
    struct cron_expr e;
    ck_assert_int_eq(cron_parse(text, 0, &e, NULL), 0);
    e.zone = z;
    return e;
}

START_TEST(berlin_gap_and_fold)
{
    struct tz_zone *z = zone("Europe/Berlin");
    struct cron_expr e = in_zone("30 2 * * *", z);
    /* winter: 02:30 CET is 01:30 UTC */
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 27, 12, 0)), utc(2026, 3, 28, 1, 30));
    /* 2026-03-29 has no 02:30: it fires when the clocks jump to 03:00 CEST, once */
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 28, 1, 30)), utc(2026, 3, 29, 1, 0));
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 29, 1, 0)), utc(2026, 3, 30, 0, 30));
    /* 2026-10-25 has 02:30 twice: the first, 02:30 CEST (00:30 UTC), only */
    ck_assert_int_eq(cron_next(&e, utc(2026, 10, 24, 0, 30)), utc(2026, 10, 25, 0, 30));
    ck_assert_int_eq(cron_next(&e, utc(2026, 10, 25, 0, 30)), utc(2026, 10, 26, 1, 30));
    /* from inside the second pass, 02:10 CET: not again that day */
    ck_assert_int_eq(cron_next(&e, utc(2026, 10, 25, 1, 10)), utc(2026, 10, 26, 1, 30));
    /* the last fire up to a time in the second pass is the first 02:30, once */
    ck_assert_int_eq(cron_last_between(&e, 0, utc(2026, 10, 25, 1, 45)), utc(2026, 10, 25, 0, 30));
    ck_assert_int_eq(cron_last_between(&e, utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 45)), -1);
    ck_assert_int_eq(cron_last_between(&e, 0, utc(2026, 3, 29, 1, 5)), utc(2026, 3, 29, 1, 0));

    /* every half hour across the gap: 01:30, then 03:00 once (02:00 and 02:30 skipped into it) */
    e = in_zone("*/30 * * * *", z);
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 29, 0, 30)), utc(2026, 3, 29, 1, 0));
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 29, 1, 0)), utc(2026, 3, 29, 1, 30));
    /* and across the fold: 02:00 and 02:30 CEST, then 03:00 CET (the second pass fires nothing) */
    ck_assert_int_eq(cron_next(&e, utc(2026, 10, 25, 0, 0)), utc(2026, 10, 25, 0, 30));
    ck_assert_int_eq(cron_next(&e, utc(2026, 10, 25, 0, 30)), utc(2026, 10, 25, 2, 0));

    /* 2040 is past the file's transitions: the footer's rule decides */
    e = in_zone("30 2 * * *", z);
    ck_assert_int_eq(cron_next(&e, utc(2040, 3, 24, 1, 30)), utc(2040, 3, 25, 1, 0));
    ck_assert_int_eq(cron_next(&e, utc(2040, 10, 27, 0, 30)), utc(2040, 10, 28, 0, 30));
    ck_assert_int_eq(cron_next(&e, utc(2040, 10, 28, 0, 30)), utc(2040, 10, 29, 1, 30));
    tz_free(z);
}
END_TEST

START_TEST(new_york_gap_and_fold)
{
    struct tz_zone *z = zone("America/New_York");
    struct cron_expr e = in_zone("30 2 * * *", z);
    /* 2026-03-08 has no 02:30 EST: 03:00 EDT, 07:00 UTC */
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 7, 7, 30)), utc(2026, 3, 8, 7, 0));
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 8, 7, 0)), utc(2026, 3, 9, 6, 30));
    /* 2026-11-01: the fold is 01:00-02:00, so 02:30 happens once, in EST */
    ck_assert_int_eq(cron_next(&e, utc(2026, 10, 31, 6, 30)), utc(2026, 11, 1, 7, 30));
    e = in_zone("30 1 * * *", z);
    ck_assert_int_eq(cron_next(&e, utc(2026, 10, 31, 5, 30)), utc(2026, 11, 1, 5, 30));
    ck_assert_int_eq(cron_next(&e, utc(2026, 11, 1, 5, 30)), utc(2026, 11, 2, 6, 30));
    /* 2040, by the footer: second Sunday of March, first of November */
    e = in_zone("30 2 * * *", z);
    ck_assert_int_eq(cron_next(&e, utc(2040, 3, 10, 7, 30)), utc(2040, 3, 11, 7, 0));
    ck_assert_int_eq(cron_next(&e, utc(2040, 11, 3, 6, 30)), utc(2040, 11, 4, 7, 30));
    tz_free(z);
}
END_TEST

START_TEST(month_ends_and_leap_days_in_a_zone)
{
    struct tz_zone *z = zone("America/New_York");
    struct cron_expr e = in_zone("0 12 31 * *", z);
    ck_assert_int_eq(cron_next(&e, utc(2026, 4, 1, 0, 0)), utc(2026, 5, 31, 16, 0));
    e = in_zone("0 0 29 2 *", z);
    ck_assert_int_eq(cron_next(&e, utc(2026, 1, 1, 0, 0)), utc(2028, 2, 29, 5, 0));
    ck_assert_int_eq(cron_next(&e, utc(2028, 2, 29, 5, 0)), utc(2032, 2, 29, 5, 0));
    /* @every ignores the zone */
    e = in_zone("@every 1h", z);
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 8, 6, 30)), utc(2026, 3, 8, 7, 0));
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 8, 7, 0)), utc(2026, 3, 8, 8, 0));
    tz_free(z);
}
END_TEST

/* ---- hand-built files ---- */

struct tzif {
    uint8_t b[512];
    size_t n;
};

static void put32(struct tzif *f, uint32_t v)
{
    for (int i = 3; i >= 0; i--)
        f->b[f->n++] = (uint8_t)(v >> (8 * i));
}

static void put64(struct tzif *f, int64_t v)
{
    put32(f, (uint32_t)((uint64_t)v >> 32));
    put32(f, (uint32_t)v);
}

static void header(struct tzif *f, char version, uint32_t timecnt, uint32_t typecnt,
                   uint32_t charcnt, uint32_t leapcnt)
{
    memcpy(f->b + f->n, "TZif", 4);
    f->b[f->n + 4] = (uint8_t)version;
    memset(f->b + f->n + 5, 0, 15);
    f->n += 20;
    put32(f, 0); /* isutcnt */
    put32(f, 0); /* isstdcnt */
    put32(f, leapcnt);
    put32(f, timecnt);
    put32(f, typecnt);
    put32(f, charcnt);
}

/* Local time types "AAA" at +1:00 and "BBB" at +2:00. */
static void types(struct tzif *f)
{
    put32(f, 3600);
    f->b[f->n++] = 0;
    f->b[f->n++] = 0;
    put32(f, 7200);
    f->b[f->n++] = 1;
    f->b[f->n++] = 4;
    memcpy(f->b + f->n, "AAA\0BBB\0", 8);
    f->n += 8;
}

/* A version 2 file: one transition to +2:00 at 1000000000, then the footer. */
static struct tzif v2(const char *footer)
{
    struct tzif f = {0};
    header(&f, '2', 0, 1, 4, 0);
    put32(&f, 3600);
    f.b[f.n++] = 0;
    f.b[f.n++] = 0;
    memcpy(f.b + f.n, "AAA", 4);
    f.n += 4;
    header(&f, '2', 1, 2, 8, 0);
    put64(&f, 1000000000);
    f.b[f.n++] = 1;
    types(&f);
    f.n += (size_t)snprintf((char *)f.b + f.n, sizeof(f.b) - f.n, "\n%s\n", footer);
    return f;
}

static void refused(const struct tzif *f, size_t len, const char *why_part)
{
    struct tz_zone *z = NULL;
    const char *why = "";
    ck_assert_int_eq(tz_parse(f->b, len, &z, &why), -EINVAL);
    ck_assert_msg(strstr(why, why_part), "want '%s', got '%s'", why_part, why);
    ck_assert_ptr_null(z);
}

START_TEST(hand_built_files)
{
    /* version 1: 32-bit times, no footer; the last type holds after the last transition */
    struct tzif f = {0};
    header(&f, '\0', 1, 2, 8, 0);
    put32(&f, 1000000000);
    f.b[f.n++] = 1;
    types(&f);
    struct tz_zone *z;
    ck_assert_int_eq(tz_parse(f.b, f.n, &z, NULL), 0);
    ck_assert_int_eq(tz_lookup(z, 999999999, NULL), 3600);
    ck_assert_int_eq(tz_lookup(z, 1000000000, NULL), 7200);
    ck_assert_int_eq(tz_lookup(z, utc(2100, 1, 1, 0, 0), NULL), 7200);
    tz_free(z);

    /* version 2 with a footer rule: Jn dates, a change at 25:00, quoted names */
    f = v2("<+01>-1<+02>,J60/25,300");
    ck_assert_int_eq(tz_parse(f.b, f.n, &z, NULL), 0);
    /* J60 is March 1st (Feb 29 not counted); the change is March 2nd 01:00 standard time */
    ck_assert_int_eq(tz_lookup(z, utc(2028, 3, 2, 0, 0) - 1, NULL), 3600);
    ck_assert_int_eq(tz_lookup(z, utc(2028, 3, 2, 0, 0), NULL), 7200);
    /* n is zero-based and counts Feb 29: 300 is 2028-10-27, 02:00 summer time */
    ck_assert_int_eq(tz_lookup(z, utc(2028, 10, 27, 0, 0) - 1, NULL), 7200);
    ck_assert_int_eq(tz_lookup(z, utc(2028, 10, 27, 0, 0), NULL), 3600);
    tz_free(z);

    /* an empty footer: the last transition's type holds */
    f = v2("");
    ck_assert_int_eq(tz_parse(f.b, f.n, &z, NULL), 0);
    ck_assert_int_eq(tz_lookup(z, utc(2100, 1, 1, 0, 0), NULL), 7200);
    tz_free(z);

    struct tzif ok = v2("AAA-1");
    f = ok;
    f.b[0] = 'X';
    refused(&f, f.n, "bad magic");
    refused(&ok, 40, "truncated header");
    refused(&ok, ok.n - 1, "footer");
    refused(&ok, 100, "truncated data block");
    f = ok;
    f.b[35] = 0xff; /* the v1 block's timecnt: far more than the file holds */
    f.b[34] = 0x0f;
    refused(&f, f.n, "truncated data block");
    f = ok;
    memset(f.b + 32, 0xff, 4);
    refused(&f, f.n, "counts out of range");
    f = ok;
    memset(f.b + 36, 0, 4); /* no local time type */
    refused(&f, f.n, "counts out of range");
    f = ok;
    f.b[4] = '1';
    refused(&f, f.n, "version");
    f = v2("AAA-1BBB,M13.1.0,M10.5.0");
    refused(&f, f.n, "TZ string");
    f = v2("A-1");
    refused(&f, f.n, "TZ string");
    f = ok;
    f.b[ok.n - 1] = 'x'; /* no closing newline */
    refused(&f, f.n, "footer");
    f = ok;
    f.b[44 + 6 + 4 + 44 + 8] = 5; /* the transition's type index */
    refused(&f, f.n, "type index");
    f = ok;
    put64(&f, 0); /* extra bytes after the footer are fine; a leap second record is not */
    ck_assert_int_eq(tz_parse(f.b, f.n, &z, NULL), 0);
    tz_free(z);
    f = (struct tzif){0};
    header(&f, '\0', 0, 1, 4, 1);
    put32(&f, 3600);
    f.n += 2 + 4 + 8;
    refused(&f, f.n, "leap");
}
END_TEST

START_TEST(zone_names)
{
    ck_assert(tz_name_valid("Europe/Berlin"));
    ck_assert(tz_name_valid("America/Argentina/Buenos_Aires"));
    ck_assert(tz_name_valid("Etc/GMT+5"));
    ck_assert(tz_name_valid("EST5EDT"));
    ck_assert(!tz_name_valid(""));
    ck_assert(!tz_name_valid("/etc/passwd"));
    ck_assert(!tz_name_valid("../etc/passwd"));
    ck_assert(!tz_name_valid("Europe/../../etc"));
    ck_assert(!tz_name_valid("Europe/./Berlin"));
    ck_assert(!tz_name_valid("Europe//Berlin"));
    ck_assert(!tz_name_valid("Europe/"));
    ck_assert(!tz_name_valid("Europe/Berlin\n"));
    ck_assert(!tz_name_valid("Europe Berlin"));
    char longname[TZ_NAME_MAX + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[TZ_NAME_MAX + 1] = '\0';
    ck_assert(!tz_name_valid(longname));
    longname[TZ_NAME_MAX] = '\0';
    ck_assert(tz_name_valid(longname));
}
END_TEST

static Suite *tz_suite(void)
{
    Suite *s = suite_create("tz");
    TCase *tc = tcase_create("tz");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, offsets_agree_with_libc_from_1900_to_2100);
    tcase_add_test(tc, the_footer_rule_gives_far_future_offsets);
    tcase_add_test(tc, local_times_map_to_their_first_instant);
    tcase_add_test(tc, berlin_gap_and_fold);
    tcase_add_test(tc, new_york_gap_and_fold);
    tcase_add_test(tc, month_ends_and_leap_days_in_a_zone);
    tcase_add_test(tc, hand_built_files);
    tcase_add_test(tc, zone_names);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = tz_suite};
