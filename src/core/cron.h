/*
 * Schedule expressions and their fire times, as pure functions the master's scheduler, the wire
 * validator and the client share (README, "Schedules"; docs/protocol.md, CreateSchedule).
 *
 * An expression is one of
 *   - five cron fields, "minute hour day-of-month month day-of-week", each a comma-separated list
 *     of items; an item is '*', N or N-M, optionally followed by "/S" (a step). Ranges: minute
 *     0-59, hour 0-23, day-of-month 1-31, month 1-12, day-of-week 0-7 (0 and 7 are Sunday).
 *     As in Vixie cron, when both day fields are restricted (neither starts with '*') a day
 *     matches if either matches; otherwise both must match.
 *   - "@hourly" (0 * * * *), "@daily" (0 0 * * *), "@weekly" (0 0 * * 0), "@monthly" (0 0 1 * *);
 *   - "@every D", D a duration: one or more NUMBER UNIT pairs, units s, m, h, d ("90s", "1h30m"),
 *     1 second to 366 days. It fires at the instants that are whole multiples of D since the Unix
 *     epoch, so the fire times of one expression never depend on when it was added.
 *
 * Cron fields are evaluated to the minute in a fixed offset from UTC (seconds east, "+02:00" is
 * 7200) or in a named zone (core/tz.h); a day with no time that matches (the 31st in a 30-day
 * month, Feb 29 outside leap years) is skipped. Times are Unix seconds. In a zone, across a change
 * of its offset:
 *   - a wall-clock time the clocks skip (02:30 when they go from 02:00 to 03:00) fires at the
 *     first instant after the gap (03:00 new time), once however many matching times it skipped;
 *   - a wall-clock time the clocks pass twice (02:30 when they go back from 03:00 to 02:00) fires
 *     once, at its first occurrence.
 * "@every D" is real elapsed time: the zone plays no part.
 *
 * Everything here is pure and reentrant: any thread may call it, nothing blocks or allocates.
 */
#ifndef CRAWLAB_CORE_CRON_H
#define CRAWLAB_CORE_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tz.h"

#define CRON_EXPR_MAX   256           /* bytes of an expression */
#define CRON_EVERY_MAX  (366 * 86400) /* longest @every duration, seconds */
#define CRON_OFFSET_MAX (14 * 3600)   /* largest fixed offset either way, seconds */

struct cron_expr {
    bool every;       /* an @every expression: only period is used */
    int64_t period;   /* @every: seconds, 1..CRON_EVERY_MAX */
    uint64_t minutes; /* bit n: minute n matches (0..59) */
    uint32_t hours;   /* bit n: hour n (0..23) */
    uint32_t mdays;   /* bit n: day of month n (1..31) */
    uint16_t months;  /* bit n: month n (1..12) */
    uint8_t wdays;    /* bit n: weekday n (0..6, Sunday 0) */
    bool mday_star;   /* the day-of-month field starts with '*' */
    bool wday_star;   /* the day-of-week field starts with '*' */
    int32_t offset;   /* seconds east of UTC the fields are read in, when zone is NULL */
    /* the zone the fields are read in instead, or NULL: borrowed, set by the caller after
     * cron_parse, and it must outlive the expression's use */
    const struct tz_zone *zone;
};

/* Why an expression was refused: the field ("minute", "hour", "day-of-month", "month",
 * "day-of-week", "expression", "duration") and the 1-based character position in the text. */
struct cron_error {
    const char *field; /* static string */
    int pos;
    char what[96]; /* what is wrong there */
};

/*
 * Parses text into *out, evaluated at offset seconds east of UTC (|offset| <= CRON_OFFSET_MAX).
 * Returns 0, or -EINVAL with *err filled (err may be NULL). Refuses an expression that can never
 * fire (a day of month that none of the months selected has, with day-of-week '*').
 */
int cron_parse(const char *text, int32_t offset, struct cron_expr *out, struct cron_error *err);

/* One line for the user: "schedule: <field> at position <pos>: <what>", into buf (truncated to
 * len). Returns buf. */
const char *cron_error_text(const struct cron_error *err, char *buf, size_t len);

/* The first fire time strictly after `after`, or -1 when there is none within the next 30 years
 * (cannot happen for an expression cron_parse accepted, short of the end of time_t). */
int64_t cron_next(const struct cron_expr *e, int64_t after);

/* The latest fire time at or before `at` and strictly after `since`, or -1 when there is none:
 * the most recent of the fires missed between the two. */
int64_t cron_last_between(const struct cron_expr *e, int64_t since, int64_t at);

/* A fixed offset: "Z", "UTC", "+HH", "-HH", "+HH:MM", "-HH:MM", "+HHMM", "-HHMM", at most 14:00
 * either way. Returns 0 with *out in seconds east of UTC, or -EINVAL. */
int cron_parse_offset(const char *text, int32_t *out);

/* Writes offset as "+HH:MM" (or "Z" for 0) into buf, at least 8 bytes. Returns buf. */
const char *cron_offset_text(int32_t offset, char *buf);

/* A duration as @every takes it ("30s", "5m", "1h30m"), 1 s .. CRON_EVERY_MAX. Returns 0 with
 * *out in seconds, or -EINVAL. */
int cron_parse_duration(const char *text, int64_t *out);

/* What a schedule does when its previous task is still pending, assigned or running. */
enum cron_overlap {
    CRON_OVERLAP_SKIP,            /* no new task for this fire (the default) */
    CRON_OVERLAP_ALLOW,           /* a new task all the same */
    CRON_OVERLAP_CANCEL_PREVIOUS, /* cancel the previous task, then a new one */
};

/* What a schedule does with the fires missed while the master was down. */
enum cron_missed {
    CRON_MISSED_RUN_ONCE, /* one task for the most recent missed fire (the default) */
    CRON_MISSED_SKIP,     /* none */
};

/* "skip", "allow", "cancel-previous"; "run-once", "skip". The parsers return 0 or -EINVAL. */
const char *cron_overlap_name(enum cron_overlap o);
int cron_overlap_parse(const char *s, enum cron_overlap *out);
const char *cron_missed_name(enum cron_missed m);
int cron_missed_parse(const char *s, enum cron_missed *out);

#endif
