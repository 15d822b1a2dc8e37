/*
 * Time zones from TZif data (RFC 8536, versions 1 to 4), as pure functions: the caller reads the
 * file (config/ at `schedule add`, master/sched.c when it loads a schedule) and hands its bytes
 * to tz_parse; nothing here does I/O or looks at the process's TZ.
 *
 * A zone is its transitions (the 64-bit block of a version 2+ file, the 32-bit one of a version 1
 * file), the UTC offset of each local time type, and the footer's POSIX TZ string, which gives
 * the offset after the last transition (e.g. "CET-1CEST,M3.5.0,M10.5.0/3": standard time one hour
 * east of UTC, summer time from the last Sunday of March 02:00 to the last Sunday of October
 * 03:00). Before the first transition the first local time type applies. Leap-second ("right/")
 * files are refused.
 *
 * A zone is immutable once parsed: any thread may read it. tz_parse allocates it; tz_free frees.
 */
#ifndef CRAWLAB_CORE_TZ_H
#define CRAWLAB_CORE_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of a zone name ("America/Argentina/ComodRivadavia" is 32). */
#define TZ_NAME_MAX 64
/* Bytes of a TZif file read for a zone (the largest real ones are a few KiB). */
#define TZ_FILE_MAX  (256 * 1024)
#define TZ_NO_CHANGE INT64_MAX /* tz_lookup: no transition follows */

struct tz_zone;

/* What a zone name may be, in words for errors. */
#define RULE_TZ_NAME                                                                               \
    "a zone name such as Europe/Berlin: letters, digits, '_', '-', '+', '/'-separated, at most "   \
    "64 bytes, no '.' or '..' component"

/* Whether name is a zone name: a relative path of [A-Za-z0-9_+-.] components, none "." or ".."
 * or empty, at most TZ_NAME_MAX bytes. Says nothing of whether the zone exists. */
bool tz_name_valid(const char *name);

/* Parses the len bytes of a TZif file into *out. Returns 0, or -EINVAL with *why (a static
 * string: "bad magic", "truncated", ...) set when why is not NULL; -ENOMEM. */
int tz_parse(const uint8_t *data, size_t len, struct tz_zone **out, const char **why);

/* NULL is accepted. */
void tz_free(struct tz_zone *z);

/* The UTC offset (seconds east) at instant t (Unix seconds); when next is not NULL, the first
 * instant after t at which the offset or the kind of time changes, or TZ_NO_CHANGE. */
int32_t tz_lookup(const struct tz_zone *z, int64_t t, int64_t *next);

/* The largest UTC offset the zone ever has (its local times are at most that far ahead). */
int32_t tz_offset_max(const struct tz_zone *z);

/*
 * The instant of local wall-clock time `local` (seconds since 1970-01-01 00:00 of local time):
 * the first instant whose local time it is (a time that occurs twice, when clocks go back, is its
 * earlier occurrence); for a time that does not exist (skipped when clocks go forward), the
 * instant the clocks went forward, the first instant after the gap. Non-decreasing in local.
 */
int64_t tz_local_first(const struct tz_zone *z, int64_t local);

/* The civil date (proleptic Gregorian) of a count of days since 1970-01-01. */
void tz_civil(int64_t days, int64_t *y, int *m, int *d);

#endif
