/*
 * Schedule expressions (core/cron.c): what parses and what is refused with which field and
 * position, and the next fire time after a given instant: steps, ranges, lists, month ends, leap
 * days, the day-of-month/day-of-week rule, fixed offsets, @every and the @ words.
 */
#define _DEFAULT_SOURCE
#include "check_main.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "core/cron.h"

/* Unix seconds of a UTC civil time (the test may use libc; core/cron.c does not). */
static int64_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm);
}

static struct cron_expr parse_ok(const char *text, int32_t offset)
{
    struct cron_expr e;
    struct cron_error err = {0};
    int rc = cron_parse(text, offset, &e, &err);
    ck_assert_msg(rc == 0, "%s refused: %s at %d: %s", text, err.field ? err.field : "?", err.pos,
                  err.what);
    return e;
}

static void refused(const char *text, const char *field, int pos)
{
    struct cron_expr e;
    struct cron_error err = {0};
    ck_assert_int_eq(cron_parse(text, 0, &e, &err), -EINVAL);
    ck_assert_msg(strcmp(err.field, field) == 0 && err.pos == pos,
                  "%s: got %s at %d (%s), want %s at %d", text, err.field, err.pos, err.what, field,
                  pos);
}

START_TEST(every_minute_fires_at_the_next_whole_minute)
{
    struct cron_expr e = parse_ok("* * * * *", 0);
    int64_t t = utc(2026, 3, 4, 10, 20);
    ck_assert_int_eq(cron_next(&e, t), t + 60);
    ck_assert_int_eq(cron_next(&e, t + 1), t + 60);
    ck_assert_int_eq(cron_next(&e, t + 59), t + 60);
}
END_TEST

START_TEST(steps_ranges_and_lists)
{
    struct cron_expr e = parse_ok("*/15 9-17/4 * * *", 0);
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 4, 8, 0)), utc(2026, 3, 4, 9, 0));
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 4, 9, 0)), utc(2026, 3, 4, 9, 15));
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 4, 9, 45)), utc(2026, 3, 4, 13, 0));
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 4, 17, 45)), utc(2026, 3, 5, 9, 0));

    e = parse_ok("5,10,50-52 0 * * *", 0);
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 4, 0, 5)), utc(2026, 3, 4, 0, 10));
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 4, 0, 10)), utc(2026, 3, 4, 0, 50));
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 4, 0, 51)), utc(2026, 3, 4, 0, 52));
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 4, 0, 52)), utc(2026, 3, 5, 0, 5));

    /* N/S: from N to the end of the range */
    e = parse_ok("10/20 * * * *", 0);
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 4, 0, 31)), utc(2026, 3, 4, 0, 50));
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 4, 0, 50)), utc(2026, 3, 4, 1, 10));
}
END_TEST

START_TEST(the_31st_is_skipped_in_30_day_months)
{
    struct cron_expr e = parse_ok("0 12 31 * *", 0);
    /* after January 31st: March 31st (no Feb 31, no Apr 31) */
    ck_assert_int_eq(cron_next(&e, utc(2026, 1, 31, 12, 0)), utc(2026, 3, 31, 12, 0));
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 31, 12, 0)), utc(2026, 5, 31, 12, 0));
    ck_assert_int_eq(cron_next(&e, utc(2026, 8, 1, 0, 0)), utc(2026, 8, 31, 12, 0));
    /* a day no selected month has is refused: it would never fire */
    refused("0 0 31 4,6 *", "day-of-month", 5);
    refused("0 0 30 2 *", "day-of-month", 5);
}
END_TEST

START_TEST(feb_29_fires_only_in_leap_years)
{
    struct cron_expr e = parse_ok("0 0 29 2 *", 0);
    ck_assert_int_eq(cron_next(&e, utc(2025, 1, 1, 0, 0)), utc(2028, 2, 29, 0, 0));
    ck_assert_int_eq(cron_next(&e, utc(2028, 2, 29, 0, 0)), utc(2032, 2, 29, 0, 0));
    /* 2100 is not a leap year */
    ck_assert_int_eq(cron_next(&e, utc(2096, 3, 1, 0, 0)), utc(2104, 2, 29, 0, 0));
    /* and 2000 was */
    ck_assert_int_eq(cron_next(&e, utc(1999, 1, 1, 0, 0)), utc(2000, 2, 29, 0, 0));
}
END_TEST

START_TEST(both_day_fields_restricted_means_either)
{
    /* the 13th, or any Friday (2026-03-06 is a Friday; 2026-03-13 is one too) */
    struct cron_expr e = parse_ok("0 0 13 * 5", 0);
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 1, 0, 0)), utc(2026, 3, 6, 0, 0));
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 6, 0, 0)), utc(2026, 3, 13, 0, 0));
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 13, 0, 0)), utc(2026, 3, 20, 0, 0));
    /* the 1st, or Monday: 2026-04-01 is a Wednesday, between Mondays 03-30 and 04-06 */
    e = parse_ok("0 0 1 * 1", 0);
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 30, 0, 0)), utc(2026, 4, 1, 0, 0));
    ck_assert_int_eq(cron_next(&e, utc(2026, 4, 1, 0, 0)), utc(2026, 4, 6, 0, 0));
}
END_TEST

START_TEST(one_day_field_starred_means_both)
{
    /* day-of-month '*': only Sundays; 7 is Sunday too */
    struct cron_expr e = parse_ok("0 0 * * 7", 0);
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 2, 0, 0)), utc(2026, 3, 8, 0, 0));
    /* "*\/2" in day-of-month starts with '*': both must match (odd days that are Mondays) */
    e = parse_ok("0 0 */2 * 1", 0);
    /* Mondays of March 2026: 2 (even), 9, 16 (even), 23, 30 (even) -> the 9th */
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 1, 0, 0)), utc(2026, 3, 9, 0, 0));
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 9, 0, 0)), utc(2026, 3, 23, 0, 0));
}
END_TEST

START_TEST(month_and_year_roll_over)
{
    struct cron_expr e = parse_ok("30 23 31 12 *", 0);
    ck_assert_int_eq(cron_next(&e, utc(2026, 12, 31, 23, 30)), utc(2027, 12, 31, 23, 30));
    e = parse_ok("0 0 1 1-3 *", 0);
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 1, 0, 0)), utc(2027, 1, 1, 0, 0));
}
END_TEST

START_TEST(fixed_offsets_move_the_fields)
{
    /* 09:00 at +02:00 is 07:00 UTC */
    struct cron_expr e = parse_ok("0 9 * * *", 2 * 3600);
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 4, 6, 0)), utc(2026, 3, 4, 7, 0));
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 4, 7, 0)), utc(2026, 3, 5, 7, 0));
    /* midnight on the 1st at -05:30 is 05:30 UTC on the 1st */
    e = parse_ok("@monthly", -(5 * 3600 + 1800));
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 4, 0, 0)), utc(2026, 4, 1, 5, 30));
    /* the day of week is the local one: Monday 00:30 at +03:00 is Sunday 21:30 UTC */
    e = parse_ok("30 0 * * 1", 3 * 3600);
    ck_assert_int_eq(cron_next(&e, utc(2026, 3, 1, 0, 0)), utc(2026, 3, 1, 21, 30));

    int32_t off;
    ck_assert_int_eq(cron_parse_offset("+02:00", &off), 0);
    ck_assert_int_eq(off, 7200);
    ck_assert_int_eq(cron_parse_offset("-0530", &off), 0);
    ck_assert_int_eq(off, -19800);
    ck_assert_int_eq(cron_parse_offset("+05", &off), 0);
    ck_assert_int_eq(off, 18000);
    ck_assert_int_eq(cron_parse_offset("Z", &off), 0);
    ck_assert_int_eq(off, 0);
    ck_assert_int_eq(cron_parse_offset("+15:00", &off), -EINVAL);
    ck_assert_int_eq(cron_parse_offset("+02:60", &off), -EINVAL);
    ck_assert_int_eq(cron_parse_offset("02:00", &off), -EINVAL);
    ck_assert_int_eq(cron_parse_offset("Europe/Paris", &off), -EINVAL);
    char buf[8];
    ck_assert_str_eq(cron_offset_text(-19800, buf), "-05:30");
    ck_assert_str_eq(cron_offset_text(0, buf), "Z");
}
END_TEST

START_TEST(at_words)
{
    int64_t t = utc(2026, 3, 4, 10, 20); /* a Wednesday */
    struct cron_expr e = parse_ok("@hourly", 0);
    ck_assert_int_eq(cron_next(&e, t), utc(2026, 3, 4, 11, 0));
    e = parse_ok("@daily", 0);
    ck_assert_int_eq(cron_next(&e, t), utc(2026, 3, 5, 0, 0));
    e = parse_ok("@weekly", 0);
    ck_assert_int_eq(cron_next(&e, t), utc(2026, 3, 8, 0, 0));
    e = parse_ok("@monthly", 0);
    ck_assert_int_eq(cron_next(&e, t), utc(2026, 4, 1, 0, 0));
}
END_TEST

START_TEST(every_fires_at_multiples_of_its_period)
{
    struct cron_expr e = parse_ok("@every 30s", 0);
    ck_assert(e.every);
    ck_assert_int_eq(cron_next(&e, 1000), 1020);
    ck_assert_int_eq(cron_next(&e, 1020), 1050);
    e = parse_ok("@every 1h30m", 0);
    ck_assert_int_eq(e.period, 5400);
    ck_assert_int_eq(cron_next(&e, 0), 5400);
    e = parse_ok("@every 1s", 0);
    ck_assert_int_eq(cron_next(&e, 41), 42);

    int64_t d;
    ck_assert_int_eq(cron_parse_duration("5m", &d), 0);
    ck_assert_int_eq(d, 300);
    ck_assert_int_eq(cron_parse_duration("0s", &d), -EINVAL);
    ck_assert_int_eq(cron_parse_duration("5", &d), -EINVAL);
    ck_assert_int_eq(cron_parse_duration("5w", &d), -EINVAL);
    ck_assert_int_eq(cron_parse_duration("367d", &d), -EINVAL);
}
END_TEST

START_TEST(the_last_missed_fire)
{
    struct cron_expr e = parse_ok("@every 10s", 0);
    ck_assert_int_eq(cron_last_between(&e, 100, 135), 130);
    ck_assert_int_eq(cron_last_between(&e, 130, 135), -1);
    ck_assert_int_eq(cron_last_between(&e, 129, 130), 130);
    e = parse_ok("0 12 31 * *", 0);
    ck_assert_int_eq(cron_last_between(&e, utc(2026, 1, 1, 0, 0), utc(2026, 5, 1, 0, 0)),
                     utc(2026, 3, 31, 12, 0));
    ck_assert_int_eq(cron_last_between(&e, utc(2026, 4, 1, 0, 0), utc(2026, 5, 1, 0, 0)), -1);
}
END_TEST

START_TEST(bad_expressions_name_the_field_and_position)
{
    refused("60 * * * *", "minute", 1);
    refused("* 24 * * *", "hour", 3);
    refused("* * 0 * *", "day-of-month", 5);
    refused("* * * 13 *", "month", 7);
    refused("* * * * 8", "day-of-week", 9);
    refused("1-70 * * * *", "minute", 3);
    refused("5-1 * * * *", "minute", 1);
    refused("*/0 * * * *", "minute", 3);
    refused("1,x * * * *", "minute", 3);
    refused("1;2 * * * *", "minute", 2);
    refused("* * * *", "expression", 8);
    refused("* * * * * *", "expression", 11);
    refused("@yearly", "expression", 1);
    refused("@every", "expression", 1);
    refused("@every 5x", "duration", 8);
    refused("@daily now", "expression", 8);
    refused("", "expression", 1);

    struct cron_error err = {.field = "hour", .pos = 3};
    strcpy(err.what, "24 is out of range 0-23");
    char line[160];
    ck_assert_str_eq(cron_error_text(&err, line, sizeof line),
                     "schedule: hour at position 3: 24 is out of range 0-23");
}
END_TEST

static Suite *cron_suite(void)
{
    Suite *s = suite_create("cron");
    TCase *tc = tcase_create("cron");
    tcase_add_test(tc, every_minute_fires_at_the_next_whole_minute);
    tcase_add_test(tc, steps_ranges_and_lists);
    tcase_add_test(tc, the_31st_is_skipped_in_30_day_months);
    tcase_add_test(tc, feb_29_fires_only_in_leap_years);
    tcase_add_test(tc, both_day_fields_restricted_means_either);
    tcase_add_test(tc, one_day_field_starred_means_both);
    tcase_add_test(tc, month_and_year_roll_over);
    tcase_add_test(tc, fixed_offsets_move_the_fields);
    tcase_add_test(tc, at_words);
    tcase_add_test(tc, every_fires_at_multiples_of_its_period);
    tcase_add_test(tc, the_last_missed_fire);
    tcase_add_test(tc, bad_expressions_name_the_field_and_position);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = cron_suite};
