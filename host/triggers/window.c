/* window.c -- execution windows of schedules. */
#include "triggers/window.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "triggers/cron.h"

/* "HH:MM" -> minutes after midnight, or -1. */
static int parse_hhmm(const char *s) {
    int m;
    return af_hhmm_parse(s, &m) == 0 ? m : -1;
}

/* "YYYY-MM-DD" -> days since 1970-01-01; 0 or -1. */
static int parse_date(const char *s, int64_t *days) {
    af_civil_t c;
    if (af_date_parse(s, &c) != 0) {
        return -1;
    }
    *days = af_civil_to_unix(&c) / 86400;
    return 0;
}

/* "YYYY-MM-DD" or "YYYY-MM-DD..YYYY-MM-DD" -> first and last day; 0 or -1. */
static int parse_day_or_range(const char *s, int64_t *first, int64_t *last) {
    char a[11];
    size_t len = s ? strlen(s) : 0;
    if (len == 10 && parse_date(s, first) == 0) {
        *last = *first;
        return 0;
    }
    if (len != 22 || strncmp(s + 10, "..", 2) != 0) {
        return -1;
    }
    af_strlcpy(a, s, sizeof a);
    return parse_date(a, first) == 0 && parse_date(s + 12, last) == 0 && *first <= *last ? 0 : -1;
}

static int parse_days(const json_t *v, af_window_t *w, af_error_t *err) {
    char expr[160];
    af_cron_t c;
    af_error_t e = {0};
    const char *days = json_string_value(v);
    if (days == NULL || strlen(days) > 100 ||
        (snprintf(expr, sizeof expr, "* * * * %s", days), af_cron_parse(expr, &c, &e) != 0)) {
        return af_error_set(err, AF_EINVAL,
                            "window.days '%s' is not a list of days such as \"MON-FRI\" or "
                            "\"SAT,SUN\"",
                            days ? days : "(not a string)");
    }
    w->days = c.dow;
    return 0;
}

static int parse_dates(const json_t *v, af_window_t *w, af_error_t *err) {
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n == 0) {
        return af_error_set(err, AF_EINVAL,
                            "window.dates is a list of \"YYYY-MM-DD\" days or "
                            "\"YYYY-MM-DD..YYYY-MM-DD\" ranges");
    }
    w->dates = calloc(n, sizeof *w->dates);
    if (w->dates == NULL) {
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(v, i));
        if (parse_day_or_range(s, &w->dates[i].first, &w->dates[i].last) != 0) {
            return af_error_set(err, AF_EINVAL,
                                "window.dates '%s' is not a day \"YYYY-MM-DD\" or a range "
                                "\"YYYY-MM-DD..YYYY-MM-DD\" (first day first)",
                                s ? s : "(not a string)");
        }
        w->ndates++;
    }
    return 0;
}

int af_window_parse(const json_t *config, af_window_t *w, af_error_t *err) {
    memset(w, 0, sizeof *w);
    w->from_min = w->to_min = -1;
    w->days = 0x7f;
    if (config == NULL || json_is_null(config)) {
        return 0;
    }
    if (!json_is_object(config)) {
        return af_error_set(err, AF_EINVAL, "window is a table { from, to, days, dates }");
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)config, key, v) {
        if (strcmp(key, "from") != 0 && strcmp(key, "to") != 0 && strcmp(key, "days") != 0 &&
            strcmp(key, "dates") != 0) {
            return af_error_set(err, AF_EINVAL,
                                "window: unknown field '%s' (from, to, days, dates)", key);
        }
    }
    const json_t *from = json_object_get(config, "from"), *to = json_object_get(config, "to");
    if (from || to) {
        w->from_min = parse_hhmm(json_string_value(from));
        w->to_min = parse_hhmm(json_string_value(to));
        if (w->from_min < 0 || w->to_min < 0 || w->from_min == w->to_min) {
            af_window_clear(w);
            return af_error_set(err, AF_EINVAL,
                                "window.from and window.to are two different times HH:MM");
        }
    }
    int rc = 0;
    if (json_object_get(config, "days")) {
        rc = parse_days(json_object_get(config, "days"), w, err);
    }
    if (rc == 0 && json_object_get(config, "dates")) {
        rc = parse_dates(json_object_get(config, "dates"), w, err);
    }
    if (rc != 0) {
        af_window_clear(w);
    }
    return rc;
}

void af_window_clear(af_window_t *w) {
    free(w->dates);
    w->dates = NULL;
    w->ndates = 0;
}

/* 1 when t's day is one of the window's weekdays and dates. */
static int day_allowed(const af_window_t *w, const af_civil_t *t) {
    if (!((w->days >> af_civil_weekday(t->year, t->month, t->day)) & 1)) {
        return 0;
    }
    af_civil_t day = {t->year, t->month, t->day, 0, 0, 0};
    int64_t d = af_civil_to_unix(&day) / 86400;
    for (size_t i = 0; i < w->ndates; i++) {
        if (d >= w->dates[i].first && d <= w->dates[i].last) {
            return 1;
        }
    }
    return w->ndates == 0;
}

/* 1 when t's time of day is between from and to. */
static int time_allowed(const af_window_t *w, const af_civil_t *t) {
    int m = t->hour * 60 + t->minute;
    return w->from_min < 0 || (w->from_min < w->to_min ? m >= w->from_min && m < w->to_min
                                                       : m >= w->from_min || m < w->to_min);
}

int af_window_allows(const af_window_t *w, const af_civil_t *t) {
    return day_allowed(w, t) && time_allowed(w, t);
}

int af_window_next_open(const af_window_t *w, const af_civil_t *t, af_civil_t *out) {
    int m = t->hour * 60 + t->minute;
    *out = (af_civil_t){t->year, t->month, t->day, 0, 0, 0};
    int64_t day = af_civil_to_unix(out) / 86400, last = w->ndates ? INT64_MIN : INT64_MAX;
    for (size_t i = 0; i < w->ndates; i++) {
        last = w->dates[i].last > last ? w->dates[i].last : last;
    }
    if (day_allowed(w, t) && w->from_min >= 0 && m < w->from_min) {
        out->hour = w->from_min / 60; /* later today, at its opening */
        out->minute = w->from_min % 60;
        return 0;
    }
    if (day >= last) {
        return -1;
    }
    af_unix_to_civil((day + 1) * 86400, out); /* the next day, at its opening */
    if (w->from_min >= 0 && w->from_min < w->to_min) {
        out->hour = w->from_min / 60;
        out->minute = w->from_min % 60;
    }
    return 0;
}
