/* tz.h -- IANA time zones read from the system's zoneinfo (TZif files, with the POSIX TZ footer
 * rule for instants after the last transition): the UTC offset at an instant, and the instant of
 * a local wall-clock time with defined daylight-saving behaviour. Thread-safe. */
#ifndef AF_TZ_H
#define AF_TZ_H

#include <stdint.h>
#include "core/core.h"

typedef struct af_tz_s af_tz_t;

/* Local civil time without a zone: year (e.g. 2026), month 1-12, day 1-31, hour 0-23, minute
 * 0-59, second 0-59. */
typedef struct af_civil_s {
    int year, month, day, hour, minute, second;
} af_civil_t;

/* Loads zone `name` ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC", "Etc/UTC") from
 * the directory in $AF_ZONEINFO if set, else /usr/share/zoneinfo. "UTC" and "Etc/UTC" work even
 * without files. A name that is empty, longer than 200 bytes, starts with '/', contains "..", or
 * has characters other than [A-Za-z0-9_+-/] is refused with AF_EINVAL. Returns the zone (read once
 * per file while anyone holds it, then shared: release it with af_tz_free), or NULL
 * with err: AF_ENOTFOUND (no such zone), AF_EINVAL (bad name; not a TZif file; truncated or
 * corrupt data, e.g. counts that exceed the file size; a footer rule that does not parse),
 * AF_ENOMEM. Messages name the zone. */
af_tz_t *af_tz_load(const char *name, af_error_t *err);
/* Releases a zone; loaded zones are shared (one load per file while held). NULL is fine. */
void af_tz_free(af_tz_t *tz);
const char *af_tz_name(const af_tz_t *tz);

/* The UTC offset in seconds (east positive: 3600 for CET) in effect at Unix time t (seconds);
 * *is_dst (may be NULL) tells whether it is daylight-saving time. */
int32_t af_tz_offset(const af_tz_t *tz, int64_t t, int *is_dst);

/* The local civil time at Unix time t. */
void af_tz_to_civil(const af_tz_t *tz, int64_t t, af_civil_t *out);

typedef enum {
    AF_TZ_UNIQUE,  /* the local time happens once */
    AF_TZ_GAP,     /* skipped (clocks jump forward): *t is the first valid instant after it */
    AF_TZ_OVERLAP, /* happens twice (clocks go back): *t is the earlier instant */
} af_tz_kind_t;

/* The Unix time of local civil time c (fields in range, day valid for the month). */
af_tz_kind_t af_tz_from_civil(const af_tz_t *tz, const af_civil_t *c, int64_t *t);

/* Proleptic Gregorian helpers, no zone (UTC). */
int64_t af_civil_to_unix(const af_civil_t *c); /* c read as UTC, in seconds */
void af_unix_to_civil(int64_t t, af_civil_t *out);
int af_civil_weekday(int year, int month, int day); /* 0 = Sunday ... 6 = Saturday */
int af_days_in_month(int year, int month);

/* Parses an RFC 3339 timestamp ("2026-03-29T01:30:00Z", "2026-03-29T03:30:00.250+02:00";
 * fractions beyond milliseconds are cut, a leap second 60 is taken as the next second) into
 * epoch milliseconds. Returns 0, or AF_EINVAL for anything else (no zone, one-digit fields,
 * out-of-range parts, trailing text). */
int af_time_parse(const char *text, int64_t *ms);
/* "YYYY-MM-DD" exactly (a valid day) into out's date (time 00:00:00). 0 or AF_EINVAL. */
int af_date_parse(const char *text, af_civil_t *out);
/* "HH:MM" exactly (00:00 to 23:59) into minutes after midnight. 0 or AF_EINVAL. */
int af_hhmm_parse(const char *text, int *minutes);

#endif
