/* tz.c -- IANA time zones from TZif files (RFC 8536, versions 1-4) and the POSIX TZ rule in
 * their footer. Nothing here reads or writes process-wide time state (no TZ variable, no
 * localtime), and a loaded zone is never modified, so one zone may be shared by threads. */
#include "core/tz.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"
#define TZ_NAME_MAX    200
#define TZ_FILE_MAX    (1 << 20) /* real TZif files are a few KB; more means a wrong file */
#define TZ_HEADER_SIZE 44
#define TZ_FOOTER_MAX  256
#define TZ_TYPES_MAX   256 /* transition type indices are one octet */
/* RFC 8536 bounds UT offsets to [-89999, 93599] seconds (-25h..+26h); the POSIX footer stays
 * within +-24:59:59. With this bound every candidate instant of a local time lies within
 * TZ_SPAN seconds of that local time read as UTC. */
#define TZ_OFF_MIN -89999
#define TZ_OFF_MAX 93599
#define TZ_SPAN    93600
/* Instants are clamped to +-2^55 s (about a billion years) so that adding offsets never
 * overflows and every year still fits the int of af_civil_t. */
#define TZ_T_LIMIT ((int64_t)1 << 55)
#define TZ_NO_NEXT INT64_MAX /* "no later change" */
/* A local time's candidates span two days; a sane zone changes offset at most a few times in
 * that window, so the walk stops after this many segments even for a hostile file. */
#define TZ_MAX_SEGMENTS 64

typedef struct {
    int32_t utoff; /* seconds east of UTC */
    int is_dst;
} tz_type_t;

typedef enum { RULE_JULIAN, RULE_ZERO_BASED, RULE_MONTH } tz_rule_kind_t;

/* One date of a POSIX rule: Jn (1-365, February 29 never counted), n (0-365, counted) or
 * Mm.w.d (day d of week w of month m, w = 5 meaning the last), plus the local time of day. */
typedef struct {
    tz_rule_kind_t kind;
    int day, week, month;
    int32_t time; /* seconds after local midnight: -167h..167h since TZif version 3 */
} tz_rule_t;

typedef struct {
    int32_t std_off, dst_off; /* seconds east of UTC */
    int has_dst;
    tz_rule_t start, end; /* start is given in standard time, end in daylight-saving time */
} tz_posix_t;

struct af_tz_s {
    char *name;
    char *path;          /* the file it was read from: the key of the cache of loaded zones */
    int refs;            /* holders of this loaded zone (under cache_lock) */
    af_tz_t *next;       /* in the cache */
    int64_t *trans;      /* transition instants, strictly ascending */
    uint8_t *trans_type; /* index into types for each transition */
    size_t n_trans;
    tz_type_t *types;
    size_t n_types;
    int has_footer; /* the footer rule governs instants from the last transition on */
    tz_posix_t footer;
};

/* ---- calendar ------------------------------------------------------------------------------ */

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b) {
    return a - floor_div(a, b) * b;
}

static int64_t clamp_t(int64_t t) {
    return t < -TZ_T_LIMIT ? -TZ_T_LIMIT : t > TZ_T_LIMIT ? TZ_T_LIMIT : t;
}

static int is_leap(int64_t y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Howard Hinnant's days_from_civil: days since 1970-01-01 of y-m-d (m 1-12), valid for any year
 * because eras of 400 years repeat exactly. */
static int64_t days_from_civil(int64_t y, int m, int64_t d) {
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse, civil_from_days. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int weekday_of_days(int64_t days) {
    return (int)floor_mod(days + 4, 7); /* 1970-01-01 was a Thursday */
}

static int days_in_month64(int64_t year, int month) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12) {
        return 0;
    }
    return days[month - 1] + (month == 2 && is_leap(year));
}

int af_days_in_month(int year, int month) {
    return days_in_month64(year, month);
}

int af_civil_weekday(int year, int month, int day) {
    af_civil_t c = {year, month, day, 0, 0, 0};
    return weekday_of_days(floor_div(af_civil_to_unix(&c), 86400));
}

int64_t af_civil_to_unix(const af_civil_t *c) {
    /* Months outside 1-12 carry into the year, so callers may step months by adding to them. */
    int64_t m0 = (int64_t)c->month - 1;
    int64_t year = c->year + floor_div(m0, 12);
    int month = (int)floor_mod(m0, 12) + 1;
    int64_t days = days_from_civil(year, month, 1) + c->day - 1;
    return days * 86400 + (int64_t)c->hour * 3600 + (int64_t)c->minute * 60 + c->second;
}

void af_unix_to_civil(int64_t t, af_civil_t *out) {
    t = clamp_t(t);
    int64_t days = floor_div(t, 86400);
    int64_t secs = t - days * 86400;
    int64_t year;
    civil_from_days(days, &year, &out->month, &out->day);
    out->year = (int)year;
    out->hour = (int)(secs / 3600);
    out->minute = (int)(secs / 60 % 60);
    out->second = (int)(secs % 60);
}

/* ---- the POSIX footer rule ----------------------------------------------------------------- */

/* The day (days since the epoch) on which rule date r falls in year. */
static int64_t rule_day(const tz_rule_t *r, int64_t year) {
    int64_t jan1 = days_from_civil(year, 1, 1);
    switch (r->kind) {
    case RULE_JULIAN:
        return jan1 + r->day - 1 + (is_leap(year) && r->day >= 60);
    case RULE_ZERO_BASED:
        return jan1 + r->day;
    case RULE_MONTH:
        break;
    }
    int64_t first = days_from_civil(year, r->month, 1);
    int64_t day = first + (r->day - weekday_of_days(first) + 7) % 7 + 7 * (r->week - 1);
    if (day >= first + days_in_month64(year, r->month)) {
        day -= 7; /* week 5 means the last such weekday, which may be the fourth */
    }
    return day;
}

typedef struct {
    int64_t at;
    int dst_after;
} tz_event_t;

/* The footer's changes in years y-2..y+2, sorted. Rule times may push a change up to a week
 * into a neighbouring year, so the years around y always hold the last change at or before any
 * instant of year y and the first one after it. At equal instants the end of daylight saving
 * sorts first, so a rule whose end meets the next start (all-year DST) stays in DST. */
static size_t footer_events(const tz_posix_t *p, int64_t year, tz_event_t ev[10]) {
    size_t n = 0;
    for (int64_t y = year - 2; y <= year + 2; y++) {
        ev[n++] = (tz_event_t){rule_day(&p->start, y) * 86400 + p->start.time - p->std_off, 1};
        ev[n++] = (tz_event_t){rule_day(&p->end, y) * 86400 + p->end.time - p->dst_off, 0};
    }
    for (size_t i = 1; i < n; i++) { /* insertion sort: ten nearly sorted items */
        tz_event_t e = ev[i];
        size_t j = i;
        while (j > 0 && (ev[j - 1].at > e.at ||
                         (ev[j - 1].at == e.at && ev[j - 1].dst_after && !e.dst_after))) {
            ev[j] = ev[j - 1];
            j--;
        }
        ev[j] = e;
    }
    return n;
}

static void footer_lookup(const tz_posix_t *p, int64_t t, tz_type_t *type, int64_t *next) {
    type->utoff = p->std_off;
    type->is_dst = 0;
    *next = TZ_NO_NEXT;
    if (!p->has_dst) {
        return;
    }
    tz_event_t ev[10];
    int64_t year;
    int m, d;
    civil_from_days(floor_div(t, 86400), &year, &m, &d);
    size_t n = footer_events(p, year, ev);
    for (size_t i = 0; i < n; i++) {
        if (ev[i].at <= t) {
            type->is_dst = ev[i].dst_after;
        } else {
            *next = ev[i].at;
            break;
        }
    }
    type->utoff = type->is_dst ? p->dst_off : p->std_off;
}

/* ---- lookup -------------------------------------------------------------------------------- */

static const tz_type_t utc_type = {0, 0};

/* The type in effect at t and the instant of the next change after t (TZ_NO_NEXT if none).
 * Before the first transition type 0 rules (RFC 8536 3.2); from the last one on, the footer. */
static void zone_lookup(const af_tz_t *tz, int64_t t, tz_type_t *type, int64_t *next) {
    if (tz == NULL) { /* no zone: UTC, which is what the scheduler means by it */
        *type = utc_type;
        *next = TZ_NO_NEXT;
        return;
    }
    size_t n = tz->n_trans;
    if (tz->has_footer && (n == 0 || t >= tz->trans[n - 1])) {
        footer_lookup(&tz->footer, t, type, next);
        return;
    }
    if (n == 0 || t < tz->trans[0]) {
        *type = tz->types[0];
        *next = n > 0 ? tz->trans[0] : TZ_NO_NEXT;
        return;
    }
    size_t lo = 0, hi = n; /* invariant: trans[lo] <= t, and t < trans[hi] when hi < n */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= t) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    *type = tz->types[tz->trans_type[lo]];
    *next = lo + 1 < n ? tz->trans[lo + 1] : TZ_NO_NEXT;
}

const char *af_tz_name(const af_tz_t *tz) {
    return tz != NULL ? tz->name : "UTC";
}

int32_t af_tz_offset(const af_tz_t *tz, int64_t t, int *is_dst) {
    tz_type_t type;
    int64_t next;
    zone_lookup(tz, clamp_t(t), &type, &next);
    if (is_dst != NULL) {
        *is_dst = type.is_dst;
    }
    return type.utoff;
}

void af_tz_to_civil(const af_tz_t *tz, int64_t t, af_civil_t *out) {
    t = clamp_t(t);
    af_unix_to_civil(t + af_tz_offset(tz, t, NULL), out);
}

/* Walks the stretches of constant type that cover every instant local time `local` (read as
 * UTC) could be: a stretch with offset o holds the candidate local - o if that falls inside it.
 * No candidate means the local time was skipped, and the skip is the change where the
 * candidate of the stretch before lies at or after it and that of the stretch after lies before
 * it. */
af_tz_kind_t af_tz_from_civil(const af_tz_t *tz, const af_civil_t *c, int64_t *t) {
    int64_t local = clamp_t(af_civil_to_unix(c));
    int64_t at = local - TZ_SPAN, end = local + TZ_SPAN;
    int64_t first = 0, gap = 0, prev_cand = 0;
    int found = 0, have_gap = 0;
    for (int seg = 0; seg < TZ_MAX_SEGMENTS; seg++) {
        tz_type_t type;
        int64_t next;
        zone_lookup(tz, at, &type, &next);
        int64_t cand = local - type.utoff;
        if (cand >= at && cand < next) {
            if (found == 0 || cand < first) {
                first = cand;
            }
            found++;
        } else if (seg > 0 && !have_gap && cand < at && prev_cand >= at) {
            gap = at;
            have_gap = 1;
        }
        prev_cand = cand;
        if (next > end) {
            break;
        }
        at = next;
    }
    if (found > 0) {
        *t = first;
        return found > 1 ? AF_TZ_OVERLAP : AF_TZ_UNIQUE;
    }
    if (have_gap) {
        *t = gap;
        return AF_TZ_GAP;
    }
    /* Only a file with more changes in two days than TZ_MAX_SEGMENTS gets here. */
    *t = local - af_tz_offset(tz, local, NULL);
    return AF_TZ_UNIQUE;
}

/* ---- footer parsing ------------------------------------------------------------------------ */

static int is_digit(char ch) {
    return ch >= '0' && ch <= '9';
}

static int is_alpha(char ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

/* Reads decimal digits into *out, refusing none or a value above max. */
static int parse_num(const char **s, int max, int *out) {
    const char *p = *s;
    int v = 0;
    if (!is_digit(*p)) {
        return -1;
    }
    while (is_digit(*p)) {
        v = v * 10 + (*p++ - '0');
        if (v > max) {
            return -1;
        }
    }
    *s = p;
    *out = v;
    return 0;
}

/* [+-]hh[:mm[:ss]] in seconds. Offsets allow 24 hours; rule times 167 (TZif version 3). */
static int parse_hms(const char **s, int max_hours, int32_t *out) {
    const char *p = *s;
    int sign = 1, h, m = 0, sec = 0;
    if (*p == '+' || *p == '-') {
        sign = *p++ == '-' ? -1 : 1;
    }
    if (parse_num(&p, max_hours, &h) != 0) {
        return -1;
    }
    if (*p == ':') {
        p++;
        if (parse_num(&p, 59, &m) != 0) {
            return -1;
        }
        if (*p == ':') {
            p++;
            if (parse_num(&p, 60, &sec) != 0) { /* 60: POSIX allows a leap second here */
                return -1;
            }
        }
    }
    *s = p;
    *out = sign * (h * 3600 + m * 60 + sec);
    return 0;
}

/* A zone abbreviation: three or more letters, or <...> quoting letters, digits, '+' and '-'
 * (as in "<+09>", for zones with no customary name). Only its syntax matters here. */
static int parse_abbr(const char **s) {
    const char *p = *s;
    size_t n = 0;
    if (*p == '<') {
        p++;
        while (is_alpha(*p) || is_digit(*p) || *p == '+' || *p == '-') {
            p++, n++;
        }
        if (*p++ != '>') {
            return -1;
        }
    } else {
        while (is_alpha(*p)) {
            p++, n++;
        }
    }
    if (n < 3) {
        return -1;
    }
    *s = p;
    return 0;
}

static int parse_rule_date(const char **s, tz_rule_t *r) {
    const char *p = *s;
    r->week = r->month = 0;
    if (*p == 'J') {
        p++;
        r->kind = RULE_JULIAN;
        if (parse_num(&p, 365, &r->day) != 0 || r->day < 1) {
            return -1;
        }
    } else if (*p == 'M') {
        p++;
        r->kind = RULE_MONTH;
        if (parse_num(&p, 12, &r->month) != 0 || r->month < 1 || *p++ != '.' ||
            parse_num(&p, 5, &r->week) != 0 || r->week < 1 || *p++ != '.' ||
            parse_num(&p, 6, &r->day) != 0) {
            return -1;
        }
    } else {
        r->kind = RULE_ZERO_BASED;
        if (parse_num(&p, 365, &r->day) != 0) {
            return -1;
        }
    }
    r->time = 2 * 3600; /* POSIX default: 02:00 local */
    if (*p == '/') {
        p++;
        if (parse_hms(&p, 167, &r->time) != 0) {
            return -1;
        }
    }
    *s = p;
    return 0;
}

/* The part after the standard time: "CEST" or "<+10>" or "EDT4", then ",start[/time],end[/time]"
 * or nothing. POSIX leaves the dates to the implementation when they are missing; tzcode uses the
 * US rule, and so do we. */
static int parse_dst(const char *s, tz_posix_t *p) {
    int32_t v;
    if (parse_abbr(&s) != 0) {
        return -1;
    }
    p->has_dst = 1;
    p->dst_off = p->std_off + 3600; /* the default: one hour ahead of standard time */
    if (*s != ',' && *s != '\0') {
        if (parse_hms(&s, 24, &v) != 0) {
            return -1;
        }
        p->dst_off = -v;
    }
    if (*s != ',' && *s != '\0') {
        return -1;
    }
    const char *dates = *s == ',' ? s : ",M3.2.0,M11.1.0";
    if (*dates++ != ',' || parse_rule_date(&dates, &p->start) != 0 || *dates++ != ',' ||
        parse_rule_date(&dates, &p->end) != 0 || *dates != '\0') {
        return -1;
    }
    return 0;
}

static int offset_ok(int32_t off) {
    return off >= TZ_OFF_MIN && off <= TZ_OFF_MAX;
}

/* Parses a POSIX TZ string such as "CET-1CEST,M3.5.0,M10.5.0/3". POSIX offsets count hours
 * west of Greenwich, hence the negations. */
static int parse_posix(const char *s, tz_posix_t *out) {
    tz_posix_t p;
    memset(&p, 0, sizeof p);
    int32_t v;
    if (parse_abbr(&s) != 0 || parse_hms(&s, 24, &v) != 0) {
        return -1;
    }
    p.std_off = -v;
    if (*s != '\0' && parse_dst(s, &p) != 0) {
        return -1;
    }
    if (!offset_ok(p.std_off) || !offset_ok(p.dst_off)) {
        return -1;
    }
    *out = p;
    return 0;
}

/* ---- TZif parsing -------------------------------------------------------------------------- */

typedef struct {
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} tzif_counts_t;

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int64_t be_time(const unsigned char *p, int size) {
    if (size == 4) {
        return (int32_t)be32(p);
    }
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* Reads the 44-byte header at data[off]; 0, or -1 if it is missing or not a TZif header. */
static int read_header(const unsigned char *data, size_t len, size_t off, tzif_counts_t *c) {
    if (off > len || len - off < TZ_HEADER_SIZE || memcmp(data + off, "TZif", 4) != 0) {
        return -1;
    }
    const unsigned char *p = data + off + 20;
    c->isutcnt = be32(p);
    c->isstdcnt = be32(p + 4);
    c->leapcnt = be32(p + 8);
    c->timecnt = be32(p + 12);
    c->typecnt = be32(p + 16);
    c->charcnt = be32(p + 20);
    return 0;
}

/* The byte size of the data block after a header, in 64 bits so 32-bit counts cannot wrap. */
static uint64_t block_size(const tzif_counts_t *c, int time_size) {
    return (uint64_t)c->timecnt * (uint64_t)(time_size + 1) + (uint64_t)c->typecnt * 6 +
           c->charcnt + (uint64_t)c->leapcnt * (uint64_t)(time_size + 4) + c->isstdcnt + c->isutcnt;
}

static int corrupt(af_error_t *err, const char *name, const char *what) {
    return af_error_set(err, AF_EINVAL, "time zone \"%s\": %s", name, what);
}

/* Fills the zone's tables from one data block (whose size the caller has checked). Leap-second
 * records and the standard/UT indicators are not needed and are skipped. */
static int parse_block(af_tz_t *tz, const unsigned char *p, const tzif_counts_t *c, int time_size,
                       af_error_t *err) {
    if (c->typecnt == 0 || c->typecnt > TZ_TYPES_MAX) {
        return corrupt(err, tz->name, "bad number of local time types");
    }
    if ((c->isstdcnt != 0 && c->isstdcnt != c->typecnt) ||
        (c->isutcnt != 0 && c->isutcnt != c->typecnt)) {
        return corrupt(err, tz->name, "bad number of indicators");
    }
    tz->n_trans = c->timecnt;
    tz->n_types = c->typecnt;
    tz->trans = malloc(c->timecnt ? c->timecnt * sizeof *tz->trans : 1);
    tz->trans_type = malloc(c->timecnt ? c->timecnt : 1);
    tz->types = malloc(c->typecnt * sizeof *tz->types);
    if (tz->trans == NULL || tz->trans_type == NULL || tz->types == NULL) {
        return af_error_set(err, AF_ENOMEM, "time zone \"%s\": out of memory", tz->name);
    }
    const unsigned char *idx = p + (size_t)c->timecnt * (size_t)time_size;
    for (size_t i = 0; i < c->timecnt; i++) {
        tz->trans[i] = be_time(p + i * (size_t)time_size, time_size);
        if (i > 0 && tz->trans[i] <= tz->trans[i - 1]) {
            return corrupt(err, tz->name, "transitions out of order");
        }
        if (idx[i] >= c->typecnt) {
            return corrupt(err, tz->name, "transition with an unknown type");
        }
        tz->trans_type[i] = idx[i];
    }
    const unsigned char *types = idx + c->timecnt;
    for (size_t i = 0; i < c->typecnt; i++) {
        const unsigned char *ty = types + i * 6;
        int32_t utoff = (int32_t)be32(ty);
        if (utoff < TZ_OFF_MIN || utoff > TZ_OFF_MAX || ty[4] > 1) {
            return corrupt(err, tz->name, "bad local time type");
        }
        tz->types[i] = (tz_type_t){utoff, ty[4]};
    }
    return 0;
}

/* The footer of a version 2+ file: "\n", a POSIX TZ string (possibly empty), "\n". */
static int parse_footer(af_tz_t *tz, const unsigned char *data, size_t len, size_t off,
                        af_error_t *err) {
    if (off >= len || data[off] != '\n') {
        return corrupt(err, tz->name, "truncated data (no footer)");
    }
    const unsigned char *start = data + off + 1;
    const unsigned char *nl = memchr(start, '\n', len - off - 1);
    if (nl == NULL) {
        return corrupt(err, tz->name, "truncated footer");
    }
    size_t n = (size_t)(nl - start);
    if (n >= TZ_FOOTER_MAX) {
        return corrupt(err, tz->name, "footer too long");
    }
    if (n == 0) {
        return 0; /* no rule: the last transition's type stays in effect */
    }
    char text[TZ_FOOTER_MAX];
    memcpy(text, start, n);
    text[n] = '\0';
    if (memchr(text, '\0', n) != NULL || parse_posix(text, &tz->footer) != 0) {
        return af_error_set(err, AF_EINVAL, "time zone \"%s\": footer rule \"%s\" does not parse",
                            tz->name, text);
    }
    tz->has_footer = 1;
    return 0;
}

/* Parses a whole TZif file. Version 1 has 32-bit times only; version 2+ repeats the data with
 * 64-bit times after the version 1 block, then the footer, and that second part is what counts. */
static int parse_tzif(af_tz_t *tz, const unsigned char *data, size_t len, af_error_t *err) {
    tzif_counts_t c;
    if (read_header(data, len, 0, &c) != 0) {
        return corrupt(err, tz->name, "not a TZif file");
    }
    unsigned char version = data[4];
    if (version != 0 && version < '2') {
        return corrupt(err, tz->name, "unknown TZif version");
    }
    uint64_t size = block_size(&c, 4);
    if (size > len - TZ_HEADER_SIZE) {
        return corrupt(err, tz->name, "truncated data (counts exceed the file size)");
    }
    if (version == 0) {
        return parse_block(tz, data + TZ_HEADER_SIZE, &c, 4, err);
    }
    size_t off = TZ_HEADER_SIZE + (size_t)size;
    if (read_header(data, len, off, &c) != 0) {
        return corrupt(err, tz->name, "truncated or corrupt data (no second header)");
    }
    off += TZ_HEADER_SIZE;
    size = block_size(&c, 8);
    if (size > len - off) {
        return corrupt(err, tz->name, "truncated data (counts exceed the file size)");
    }
    int rc = parse_block(tz, data + off, &c, 8, err);
    return rc != 0 ? rc : parse_footer(tz, data, len, off + (size_t)size, err);
}

/* ---- loading ------------------------------------------------------------------------------- */

/* Refuses names that could leave the zoneinfo directory or are not IANA-like. */
static const char *name_problem(const char *name) {
    size_t n = strlen(name);
    if (n == 0) {
        return "empty";
    }
    if (n > TZ_NAME_MAX) {
        return "longer than 200 bytes";
    }
    if (name[0] == '/') {
        return "starts with '/'";
    }
    if (strstr(name, "..") != NULL) {
        return "contains \"..\"";
    }
    for (const char *p = name; *p; p++) {
        if (!is_alpha(*p) && !is_digit(*p) && *p != '_' && *p != '+' && *p != '-' && *p != '/') {
            return "has characters other than letters, digits, '_', '+', '-' and '/'";
        }
    }
    return NULL;
}

static const char *zone_dir(void) {
    const char *dir = getenv("AF_ZONEINFO");
    return dir == NULL || dir[0] == '\0' ? TZ_DEFAULT_DIR : dir;
}

/* Reads the zone file into a new buffer. A missing file, a directory ("America") or an
 * unreadable one all mean there is no such zone for us. */
static int read_zone_file(const char *name, const char *path, unsigned char **out, size_t *out_len,
                          af_error_t *err) {
    const char *dir = zone_dir();
    af_error_t read_err;
    int rc = af_read_file(path, TZ_FILE_MAX, (char **)out, out_len, &read_err);
    if (rc == AF_ELIMIT) {
        return af_error_set(err, AF_EINVAL, "time zone \"%s\": %s is too large for a TZif file",
                            name, path);
    }
    if (rc == AF_ENOMEM) {
        return af_error_set(err, rc, "time zone \"%s\": out of memory", name);
    }
    if (rc != 0) { /* the directory, not the host's full path or errno text */
        return af_error_set(err, AF_ENOTFOUND, "time zone \"%s\": no such zone in %s", name, dir);
    }
    return 0;
}

static int is_utc_name(const char *name) {
    return strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0;
}

/* UTC for systems without zoneinfo files: one type, offset 0, no transitions. */
static int make_utc(af_tz_t *tz, af_error_t *err) {
    tz->types = malloc(sizeof *tz->types);
    if (tz->types == NULL) {
        return af_error_set(err, AF_ENOMEM, "time zone \"%s\": out of memory", tz->name);
    }
    tz->types[0] = utc_type;
    tz->n_types = 1;
    return 0;
}

static void zone_free(af_tz_t *tz) {
    free(tz->name);
    free(tz->path);
    free(tz->trans);
    free(tz->trans_type);
    free(tz->types);
    free(tz);
}

/* Zones are loaded once while someone holds them: a thousand schedules in one zone share it. */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static af_tz_t *cache;

static af_tz_t *cache_take(const char *path) {
    pthread_mutex_lock(&cache_lock);
    af_tz_t *tz = cache;
    while (tz && strcmp(tz->path, path) != 0) {
        tz = tz->next;
    }
    if (tz) {
        tz->refs++;
    }
    pthread_mutex_unlock(&cache_lock);
    return tz;
}

/* Adds a freshly loaded zone, or takes the one another thread added meanwhile (tz goes). */
static af_tz_t *cache_put(af_tz_t *tz) {
    af_tz_t *had = cache_take(tz->path);
    if (had) {
        zone_free(tz);
        return had;
    }
    pthread_mutex_lock(&cache_lock);
    tz->refs = 1;
    tz->next = cache;
    cache = tz;
    pthread_mutex_unlock(&cache_lock);
    return tz;
}

af_tz_t *af_tz_load(const char *name, af_error_t *err) {
    if (name == NULL) {
        af_error_set(err, AF_EINVAL, "time zone name is missing");
        return NULL;
    }
    const char *problem = name_problem(name);
    if (problem != NULL) {
        af_error_set(err, AF_EINVAL, "time zone name \"%.*s\" is not valid: %s", TZ_NAME_MAX, name,
                     problem);
        return NULL;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", zone_dir(), name);
    af_tz_t *tz = cache_take(path);
    if (tz) {
        return tz;
    }
    if ((tz = calloc(1, sizeof *tz)) != NULL) {
        tz->name = strdup(name);
        tz->path = strdup(path);
    }
    if (tz == NULL || tz->name == NULL || tz->path == NULL) {
        if (tz) {
            zone_free(tz);
        }
        af_error_set(err, AF_ENOMEM, "time zone \"%s\": out of memory", name);
        return NULL;
    }
    unsigned char *data = NULL;
    size_t len = 0;
    af_error_t local_err;
    int rc = read_zone_file(name, path, &data, &len, &local_err);
    if (rc == 0) {
        rc = parse_tzif(tz, data, len, &local_err);
        free(data);
    } else if (rc == AF_ENOTFOUND && is_utc_name(name)) {
        rc = make_utc(tz, &local_err);
    }
    if (rc != 0) {
        if (err != NULL) {
            *err = local_err;
        }
        zone_free(tz);
        return NULL;
    }
    return cache_put(tz);
}

void af_tz_free(af_tz_t *tz) {
    if (tz == NULL) {
        return;
    }
    pthread_mutex_lock(&cache_lock);
    int last = --tz->refs == 0;
    if (last) {
        af_tz_t **p = &cache;
        while (*p && *p != tz) {
            p = &(*p)->next;
        }
        if (*p) {
            *p = tz->next;
        }
    }
    pthread_mutex_unlock(&cache_lock);
    if (last) {
        zone_free(tz);
    }
}

/* ---- RFC 3339 timestamps ---- */

/* n digits at s into *v; 0, or -1 when any is not a digit. */
static int digits(const char *s, int n, int *v) {
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        *v = *v * 10 + (s[i] - '0');
    }
    return 0;
}

/* "YYYY-MM-DD" at the start of s into c's date; 0 or -1. */
static int date_at(const char *s, af_civil_t *c) {
    return digits(s, 4, &c->year) || s[4] != '-' || digits(s + 5, 2, &c->month) || s[7] != '-' ||
                   digits(s + 8, 2, &c->day) || c->month < 1 || c->month > 12 || c->day < 1 ||
                   c->day > af_days_in_month(c->year, c->month)
               ? -1
               : 0;
}

/* "HH:MM" at the start of s into c's time; 0 or -1. */
static int hhmm_at(const char *s, af_civil_t *c) {
    return digits(s, 2, &c->hour) || s[2] != ':' || digits(s + 3, 2, &c->minute) || c->hour > 23 ||
                   c->minute > 59
               ? -1
               : 0;
}

int af_date_parse(const char *s, af_civil_t *out) {
    af_civil_t c = {0};
    if (s == NULL || strlen(s) != 10 || date_at(s, &c) != 0) {
        return AF_EINVAL;
    }
    *out = c;
    return 0;
}

int af_hhmm_parse(const char *s, int *minutes) {
    af_civil_t c = {0};
    if (s == NULL || strlen(s) != 5 || hhmm_at(s, &c) != 0) {
        return AF_EINVAL;
    }
    *minutes = c.hour * 60 + c.minute;
    return 0;
}

int af_time_parse(const char *s, int64_t *ms) {
    af_civil_t c = {0};
    int frac = 0, oh = 0, om = 0, sign = 1;
    if (s == NULL || strlen(s) < 19 || date_at(s, &c) || (s[10] != 'T' && s[10] != 't') ||
        hhmm_at(s + 11, &c) || s[16] != ':' || digits(s + 17, 2, &c.second)) {
        return AF_EINVAL;
    }
    s += 19;
    if (*s == '.') {
        int n = 0;
        for (s++; *s >= '0' && *s <= '9'; s++, n++) {
            frac = n < 3 ? frac * 10 + (*s - '0') : frac;
        }
        if (n == 0) {
            return AF_EINVAL;
        }
        for (; n < 3; n++) {
            frac *= 10;
        }
    }
    if ((*s == 'Z' || *s == 'z') && s[1] == '\0') {
        s++;
    } else if ((*s == '+' || *s == '-') && !digits(s + 1, 2, &oh) && s[3] == ':' &&
               !digits(s + 4, 2, &om) && s[6] == '\0' && oh < 24 && om < 60) {
        sign = *s == '-' ? -1 : 1;
    } else {
        return AF_EINVAL;
    }
    if (c.second > 60) {
        return AF_EINVAL;
    }
    *ms = (af_civil_to_unix(&c) - sign * (int64_t)(oh * 60 + om) * 60) * 1000 + frac;
    return 0;
}
