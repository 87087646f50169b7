/* cron.h -- cron expressions and their fire times in a time zone.
 *
 * Five fields (minute hour day-of-month month day-of-week) or six (seconds first); in each field
 * `*`, numbers, names (JAN-DEC, SUN-SAT, any case), ranges `a-b`, steps `*\/n`, `a-b/n` and `a/n`
 * (from a to the field's end), and lists of those; day-of-week 7 is Sunday too; `?` means `*` in
 * the two day fields. Macros: @yearly (@annually), @monthly, @weekly, @daily (@midnight),
 * @hourly. When both day fields are restricted (neither starts with `*`), a day matches when
 * EITHER matches (the standard cron rule: "0 0 13 * FRI" fires on the 13th and on Fridays).
 *
 * Daylight saving: fire times are local wall-clock times of the zone. A local time skipped in
 * spring fires once, at the first valid instant after it (the transition: 02:30 on a day Berlin
 * jumps from 02:00 to 03:00 fires at 03:00 CEST; several skipped times collapse into that one
 * fire); a local time repeated in autumn fires once, at its first occurrence. */
#ifndef AF_CRON_H
#define AF_CRON_H

#include <stdint.h>
#include "core/core.h"
#include "core/tz.h"

typedef struct af_cron_s {
    uint64_t second, minute; /* bit n: n matches */
    uint32_t hour;
    uint32_t dom;   /* bits 1-31 */
    uint16_t month; /* bits 1-12 */
    uint8_t dow;    /* bits 0-6, Sunday = 0 */
    int dom_restricted, dow_restricted;
} af_cron_t;

/* Parses expr into *out. Returns 0, or AF_EINVAL with a message that names the field and the
 * part that is wrong ("cron '0 25 * * *': hour '25' is out of range 0-23"). */
int af_cron_parse(const char *expr, af_cron_t *out, af_error_t *err);

/* The first fire time strictly after after_ms (Unix ms), in zone tz (NULL: UTC), into *next_ms
 * (whole seconds). Returns 0, or AF_ENOTFOUND when the expression never fires (within 8 years:
 * "0 0 30 2 *"). */
int af_cron_next(const af_cron_t *c, const af_tz_t *tz, int64_t after_ms, int64_t *next_ms);

#endif
