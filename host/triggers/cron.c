/* cron.c -- cron expressions: parsing into bit sets, and the next fire time found field by field
 * in local civil time, then placed on the time line by the zone (tz.c decides gaps and
 * overlaps). */
#include "triggers/cron.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    const char *name;
    int lo, hi;
    const char *const *names; /* names for lo, lo + 1, ... or NULL */
} field_t;

static const char *const MONTHS[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                     "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const DAYS[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

enum { F_SECOND, F_MINUTE, F_HOUR, F_DOM, F_MONTH, F_DOW, NFIELDS };

static const field_t FIELDS[NFIELDS] = {
    {"second", 0, 59, NULL},       {"minute", 0, 59, NULL},  {"hour", 0, 23, NULL},
    {"day-of-month", 1, 31, NULL}, {"month", 1, 12, MONTHS}, {"day-of-week", 0, 7, DAYS},
};

static const struct {
    const char *name, *expr;
} MACROS[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

typedef struct {
    const char *expr; /* for messages */
    af_error_t *err;
} ctx_t;

static int fail(ctx_t *cx, const field_t *f, const char *text, size_t len, const char *why) {
    return af_error_set(cx->err, AF_EINVAL, "cron '%s': %s '%.*s' %s", cx->expr, f->name, (int)len,
                        text, why);
}

/* A number or a name at *p; advances *p. Returns 0, or -1 when there is none. */
static int value_at(const field_t *f, const char **p, const char *end, int *v) {
    const char *s = *p;
    if (s < end && isdigit((unsigned char)*s)) {
        long n = 0;
        while (s < end && isdigit((unsigned char)*s) && n < 1000) {
            n = n * 10 + (*s++ - '0');
        }
        *v = (int)n;
        *p = s;
        return 0;
    }
    for (int i = 0; f->names && f->names[i]; i++) {
        if (end - s >= 3 && strncasecmp(s, f->names[i], 3) == 0 &&
            (end - s == 3 || !isalpha((unsigned char)s[3]))) {
            *v = f->lo + i;
            *p = s + 3;
            return 0;
        }
    }
    return -1;
}

/* One list item: `*`, `?` (day fields), a, a-b, with /step. Sets its bits in *bits. */
static int parse_item(ctx_t *cx, const field_t *f, const char *s, const char *end, uint64_t *bits) {
    const char *p = s;
    int lo = f->lo, hi = f->hi, step = 1, single = 0;
    int top = f == &FIELDS[F_DOW] ? 6 : f->hi; /* `*` in day-of-week: 0-6 (7 is Sunday again) */
    if (p < end && (*p == '*' || (*p == '?' && (f == &FIELDS[F_DOM] || f == &FIELDS[F_DOW])))) {
        p++;
        hi = top;
    } else if (value_at(f, &p, end, &lo) == 0) {
        hi = lo;
        single = 1;
        if (p < end && *p == '-') {
            single = 0;
            p++;
            if (value_at(f, &p, end, &hi) != 0) {
                return fail(cx, f, s, (size_t)(end - s), "has a range without an end");
            }
        }
    } else {
        return fail(cx, f, s, (size_t)(end - s), "is not a number, name, range or *");
    }
    if (p < end && *p == '/') {
        p++;
        const char *q = p;
        long n = 0;
        while (p < end && isdigit((unsigned char)*p) && n < 1000) {
            n = n * 10 + (*p++ - '0');
        }
        if (p == q || n <= 0) {
            return fail(cx, f, s, (size_t)(end - s), "has a step that is not a positive number");
        }
        step = (int)n;
        if (single) { /* a/n: from a to the field's end */
            hi = top;
        }
    }
    if (p != end) {
        return fail(cx, f, s, (size_t)(end - s), "has unexpected characters");
    }
    if (lo < f->lo || hi > f->hi || lo > f->hi) {
        char why[64];
        snprintf(why, sizeof why, "is out of range %d-%d", f->lo, f->hi);
        return fail(cx, f, s, (size_t)(end - s), why);
    }
    if (lo > hi) {
        return fail(cx, f, s, (size_t)(end - s), "is a range that runs backwards");
    }
    for (int v = lo; v <= hi; v += step) {
        *bits |= 1ULL << (f == &FIELDS[F_DOW] && v == 7 ? 0 : v);
    }
    return 0;
}

static int parse_field(ctx_t *cx, const field_t *f, const char *s, const char *end,
                       uint64_t *bits) {
    *bits = 0;
    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *item_end = comma ? comma : end;
        if (item_end == s) {
            return fail(cx, f, s, 0, "has an empty list item");
        }
        int rc = parse_item(cx, f, s, item_end, bits);
        if (rc != 0) {
            return rc;
        }
        if (comma == NULL) {
            break;
        }
        s = comma + 1;
        if (s == end) {
            return fail(cx, f, s, 0, "has an empty list item");
        }
    }
    return 0;
}

static const char *expand_macro(ctx_t *cx, const char *expr) {
    if (expr[0] != '@') {
        return expr;
    }
    for (size_t i = 0; i < sizeof MACROS / sizeof MACROS[0]; i++) {
        if (strcasecmp(expr, MACROS[i].name) == 0) {
            return MACROS[i].expr;
        }
    }
    af_error_set(cx->err, AF_EINVAL,
                 "cron '%s': unknown macro (use @yearly, @annually, @monthly, @weekly, @daily, "
                 "@midnight or @hourly)",
                 cx->expr);
    return NULL;
}

int af_cron_parse(const char *expr, af_cron_t *out, af_error_t *err) {
    ctx_t cx = {.expr = expr ? expr : "", .err = err};
    memset(out, 0, sizeof *out);
    char trimmed[256];
    size_t n = expr ? strlen(expr) : 0;
    while (n > 0 && isspace((unsigned char)expr[n - 1])) {
        n--;
    }
    const char *start = expr ? expr : "";
    while (n > 0 && isspace((unsigned char)*start)) {
        start++;
        n--;
    }
    if (n == 0 || n >= sizeof trimmed) {
        return af_error_set(err, AF_EINVAL, "cron '%.40s': %s", cx.expr,
                            n == 0 ? "empty expression" : "expression too long");
    }
    memcpy(trimmed, start, n);
    trimmed[n] = '\0';
    const char *text = expand_macro(&cx, trimmed);
    if (text == NULL) {
        return AF_EINVAL;
    }
    const char *parts[NFIELDS + 1], *ends[NFIELDS + 1];
    int count = 0;
    for (const char *p = text; *p;) {
        while (*p && isspace((unsigned char)*p)) {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        if (count == NFIELDS) {
            count++;
            break;
        }
        parts[count] = p;
        while (*p && !isspace((unsigned char)*p)) {
            p++;
        }
        ends[count++] = p;
    }
    if (count != 5 && count != 6) {
        return af_error_set(err, AF_EINVAL,
                            "cron '%s': %s fields; use five (minute hour day-of-month month "
                            "day-of-week) or six (second first)",
                            cx.expr, count > 6 ? "too many" : "too few");
    }
    int first = count == 5 ? F_MINUTE : F_SECOND;
    uint64_t bits[NFIELDS] = {1}; /* five fields: second 0 */
    for (int i = 0; i < count; i++) {
        int rc = parse_field(&cx, &FIELDS[first + i], parts[i], ends[i], &bits[first + i]);
        if (rc != 0) {
            return rc;
        }
    }
    out->second = bits[F_SECOND];
    out->minute = bits[F_MINUTE];
    out->hour = (uint32_t)bits[F_HOUR];
    out->dom = (uint32_t)bits[F_DOM];
    out->month = (uint16_t)bits[F_MONTH];
    out->dow = (uint8_t)bits[F_DOW];
    out->dom_restricted = parts[F_DOM - first][0] != '*' && parts[F_DOM - first][0] != '?';
    out->dow_restricted = parts[F_DOW - first][0] != '*' && parts[F_DOW - first][0] != '?';
    return 0;
}

/* ---- next fire time ------------------------------------------------------------------------ */

static int day_matches(const af_cron_t *c, const af_civil_t *t) {
    int dom = (c->dom >> t->day) & 1;
    int dow = (c->dow >> af_civil_weekday(t->year, t->month, t->day)) & 1;
    if (c->dom_restricted && c->dow_restricted) {
        return dom || dow;
    }
    return dom && dow;
}

/* Moves t to the start of the next unit: 0 day, 1 hour, 2 minute, 3 second. */
static void advance(af_civil_t *t, int unit) {
    switch (unit) {
    case 3:
        if (++t->second < 60) {
            return;
        }
        t->second = 0;
        /* fall through */
    case 2:
        t->second = 0;
        if (++t->minute < 60) {
            return;
        }
        t->minute = 0;
        /* fall through */
    case 1:
        t->second = t->minute = 0;
        if (++t->hour < 24) {
            return;
        }
        t->hour = 0;
        /* fall through */
    default:
        t->second = t->minute = t->hour = 0;
        if (++t->day <= af_days_in_month(t->year, t->month)) {
            return;
        }
        t->day = 1;
        if (++t->month > 12) {
            t->month = 1;
            t->year++;
        }
    }
}

static void next_month(af_civil_t *t) {
    t->day = af_days_in_month(t->year, t->month); /* its last day: the next day is the 1st */
    advance(t, 0);
}

/* The first civil time at or after *t that matches every field; 0, or -1 past the year limit. */
static int next_match(const af_cron_t *c, af_civil_t *t, int year_limit) {
    while (t->year <= year_limit) {
        if (!((c->month >> t->month) & 1)) {
            next_month(t);
        } else if (!day_matches(c, t)) {
            advance(t, 0);
        } else if (!((c->hour >> t->hour) & 1)) {
            advance(t, 1);
        } else if (!((c->minute >> t->minute) & 1)) {
            advance(t, 2);
        } else if (!((c->second >> t->second) & 1)) {
            advance(t, 3);
        } else {
            return 0;
        }
    }
    return -1;
}

int af_cron_next(const af_cron_t *c, const af_tz_t *tz, int64_t after_ms, int64_t *next_ms) {
    int64_t after = after_ms >= 0 ? after_ms / 1000 : -((-after_ms + 999) / 1000);
    af_civil_t t;
    af_tz_to_civil(tz, after, &t); /* NULL: UTC */
    int year_limit = t.year + 8;
    for (;;) {
        advance(&t, 3); /* strictly after */
        if (next_match(c, &t, year_limit) != 0) {
            return AF_ENOTFOUND;
        }
        int64_t at;
        af_tz_from_civil(tz, &t, &at);
        /* A repeated or skipped local time can map to an instant already past: the next one. */
        if (at > after) {
            *next_ms = at * 1000;
            return 0;
        }
    }
}
