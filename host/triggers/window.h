/* window.h -- a schedule's execution window: it fires only between given local times of day, on
 * given weekdays and/or on given dates (each part optional; all given parts must hold).
 *
 *   window = { from = "08:00", to = "18:00", days = "MON-FRI",
 *              dates = { "2026-12-01..2026-12-23", "2026-12-31" } }
 *
 * from/to are local "HH:MM" times, from inclusive and to exclusive; to before from wraps past
 * midnight ("22:00" to "06:00"). days takes cron day-of-week syntax (names, numbers, ranges,
 * lists). dates are "YYYY-MM-DD" days or "YYYY-MM-DD..YYYY-MM-DD" ranges, inclusive. */
#ifndef AF_WINDOW_H
#define AF_WINDOW_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "core/core.h"
#include "core/tz.h"

typedef struct af_window_s {
    int from_min, to_min; /* minutes after midnight; -1: no time of day */
    uint8_t days;         /* bits 0-6, Sunday = 0; 0x7f when not given */
    struct {
        int64_t first, last; /* days since 1970-01-01 */
    } * dates;
    size_t ndates;
} af_window_t;

/* Parses a window config (a JSON object; NULL means always). Returns 0 or AF_EINVAL with a
 * message naming the part ("window.from '25:00' is not a time HH:MM"). */
int af_window_parse(const json_t *config, af_window_t *w, af_error_t *err);
void af_window_clear(af_window_t *w);

/* 1 when local civil time t is inside the window. */
int af_window_allows(const af_window_t *w, const af_civil_t *t);

/* For a local time t outside the window: the next local time that may be inside it (its day's
 * opening, or the next day's), so a search skips the closed stretch at once instead of trying
 * every fire time in it. Later than t. Returns 0, or -1 when the window never opens again (its
 * dates are all past). */
int af_window_next_open(const af_window_t *w, const af_civil_t *t, af_civil_t *out);

#endif
