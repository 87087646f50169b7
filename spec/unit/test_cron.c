/* test_cron.c -- cron expressions (triggers/cron.c): fields, names, ranges, lists, steps, macros,
 * the day-of-month / day-of-week OR rule, errors that name the field, and next fire times in real
 * zones across their 2026 daylight-saving transitions. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "triggers/cron.h"
#include "triggers/schedule.h"
#include "triggers/window.h"

/* Unix ms of a UTC civil time. */
static int64_t utc(int y, int mo, int d, int h, int mi, int s) {
    af_civil_t c = {y, mo, d, h, mi, s};
    return af_civil_to_unix(&c) * 1000;
}

static af_cron_t parse_ok(const char *expr) {
    af_cron_t c;
    af_error_t err = {0};
    if (af_cron_parse(expr, &c, &err) != 0) {
        fail_msg("'%s': %s", expr, err.msg);
    }
    return c;
}

/* The n fire times after `from` (UTC ms) of expr in zone (NULL: UTC). */
static void fires(const char *expr, const char *zone, int64_t from, int64_t *out, int n) {
    af_cron_t c = parse_ok(expr);
    af_error_t err = {0};
    af_tz_t *tz = zone ? af_tz_load(zone, &err) : NULL;
    if (zone && tz == NULL) {
        fail_msg("zone %s: %s", zone, err.msg);
    }
    for (int i = 0; i < n; i++) {
        assert_int_equal(af_cron_next(&c, tz, from, &out[i]), 0);
        from = out[i];
    }
    af_tz_free(tz);
}

static void test_fields(void **state) {
    (void)state;
    af_cron_t c = parse_ok("*/15 9-17 * JAN,jul mon-FRI");
    assert_int_equal(c.second, 1); /* five fields: second 0 */
    assert_int_equal(c.minute, (1ULL << 0) | (1ULL << 15) | (1ULL << 30) | (1ULL << 45));
    assert_int_equal(c.hour, 0x3fe00); /* 9..17 */
    assert_int_equal(c.month, (1 << 1) | (1 << 7));
    assert_int_equal(c.dow, 0x3e);
    assert_false(c.dom_restricted);
    assert_true(c.dow_restricted);
    c = parse_ok("30 5/20 0 1-10/3 * 7");
    assert_int_equal(c.second, 1ULL << 30);
    assert_int_equal(c.minute, (1ULL << 5) | (1ULL << 25) | (1ULL << 45));
    assert_int_equal(c.hour, 1);
    assert_int_equal(c.dom, (1 << 1) | (1 << 4) | (1 << 7) | (1 << 10));
    assert_int_equal(c.dow, 1); /* 7 is Sunday */
    c = parse_ok("  @Daily ");
    assert_int_equal(c.minute, 1);
    assert_int_equal(c.hour, 1);
    assert_int_equal(c.dow, 0x7f);
    c = parse_ok("@weekly");
    assert_int_equal(c.dow, 1);
    c = parse_ok("0 0 ? * 1,3");
    assert_false(c.dom_restricted);
    assert_int_equal(c.dow, (1 << 1) | (1 << 3));
}

static void expect_error(const char *expr, const char *needle) {
    af_cron_t c;
    af_error_t err = {0};
    assert_int_equal(af_cron_parse(expr, &c, &err), AF_EINVAL);
    if (strstr(err.msg, needle) == NULL) {
        fail_msg("'%s': '%s' does not say '%s'", expr, err.msg, needle);
    }
}

static void test_errors_name_the_field(void **state) {
    (void)state;
    expect_error("0 25 * * *", "hour '25' is out of range 0-23");
    expect_error("61 * * * * *", "second '61' is out of range 0-59");
    expect_error("* * 0 * *", "day-of-month '0' is out of range 1-31");
    expect_error("* * * 13 *", "month '13' is out of range 1-12");
    expect_error("* * * * 8", "day-of-week '8' is out of range 0-7");
    expect_error("* * * FOO *", "month 'FOO' is not a number");
    expect_error("*/0 * * * *", "minute '*/0' has a step that is not a positive number");
    expect_error("5-1 * * * *", "minute '5-1' is a range that runs backwards");
    expect_error("1,,2 * * * *", "minute");
    expect_error("1, * * * *", "has an empty list item");
    expect_error("1x * * * *", "unexpected characters");
    expect_error("? * * * *", "minute '?'");
    expect_error("* * * *", "too few fields");
    expect_error("* * * * * * *", "too many fields");
    expect_error("", "empty expression");
    expect_error("@often", "unknown macro");
}

static void test_next_utc(void **state) {
    (void)state;
    int64_t t[4];
    fires("*/15 9-17 * * mon-fri", NULL, utc(2026, 11, 26, 17, 40, 0), t, 3); /* a Thursday */
    assert_int_equal(t[0], utc(2026, 11, 26, 17, 45, 0));
    assert_int_equal(t[1], utc(2026, 11, 27, 9, 0, 0));
    assert_int_equal(t[2], utc(2026, 11, 27, 9, 15, 0));
    fires("0 0 29 2 *", NULL, utc(2026, 1, 1, 0, 0, 0), t, 2); /* leap days only */
    assert_int_equal(t[0], utc(2028, 2, 29, 0, 0, 0));
    assert_int_equal(t[1], utc(2032, 2, 29, 0, 0, 0));
    fires("@yearly", NULL, utc(2026, 12, 31, 23, 59, 59), t, 1);
    assert_int_equal(t[0], utc(2027, 1, 1, 0, 0, 0));
    fires("*/20 * * * * *", NULL, utc(2026, 1, 1, 0, 0, 0) + 500, t, 2); /* seconds; after ms */
    assert_int_equal(t[0], utc(2026, 1, 1, 0, 0, 20));
    assert_int_equal(t[1], utc(2026, 1, 1, 0, 0, 40));
}

/* Both day fields restricted: either matches. One restricted: only it counts. */
static void test_day_or_rule(void **state) {
    (void)state;
    int64_t t[3];
    fires("0 0 13 * FRI", NULL, utc(2026, 11, 1, 0, 0, 0), t, 3);
    assert_int_equal(t[0], utc(2026, 11, 6, 0, 0, 0));  /* a Friday */
    assert_int_equal(t[1], utc(2026, 11, 13, 0, 0, 0)); /* the 13th (a Friday too) */
    assert_int_equal(t[2], utc(2026, 11, 20, 0, 0, 0));
    fires("0 0 1 * *", NULL, utc(2026, 11, 1, 0, 0, 0), t, 1);
    assert_int_equal(t[0], utc(2026, 12, 1, 0, 0, 0));
    /* "*" starts the day-of-month field: both must match (days 1, 11, 21, 31 that are Mondays) */
    fires("0 0 */10 * 1", NULL, utc(2026, 11, 1, 0, 0, 0), t, 3);
    assert_int_equal(t[0], utc(2026, 12, 21, 0, 0, 0));
    assert_int_equal(t[1], utc(2027, 1, 11, 0, 0, 0));
    assert_int_equal(t[2], utc(2027, 2, 1, 0, 0, 0));
}

static void test_never_fires(void **state) {
    (void)state;
    af_cron_t c = parse_ok("0 0 30 2 *");
    int64_t next;
    assert_int_equal(af_cron_next(&c, NULL, utc(2026, 1, 1, 0, 0, 0), &next), AF_ENOTFOUND);
}

/* Europe/Berlin 2026: 03-29 02:00 CET -> 03:00 CEST (01:00 UTC); 10-25 03:00 CEST -> 02:00 CET
 * (01:00 UTC). */
static void test_dst_berlin(void **state) {
    (void)state;
    int64_t t[4];
    fires("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12, 0, 0), t, 2);
    assert_int_equal(t[0], utc(2026, 3, 29, 1, 0, 0)); /* skipped: 03:00 CEST, once */
    assert_int_equal(t[1], utc(2026, 3, 30, 0, 30, 0));
    fires("*/20 * * * *", "Europe/Berlin", utc(2026, 3, 29, 0, 30, 0), t, 4);
    assert_int_equal(t[0], utc(2026, 3, 29, 0, 40, 0)); /* 01:40 CET */
    assert_int_equal(t[1], utc(2026, 3, 29, 1, 0, 0));  /* 02:00-02:40 skipped: once, 03:00 */
    assert_int_equal(t[2], utc(2026, 3, 29, 1, 20, 0)); /* 03:20 CEST */
    fires("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12, 0, 0), t, 2);
    assert_int_equal(t[0], utc(2026, 10, 25, 0, 30, 0)); /* repeated: the first, CEST */
    assert_int_equal(t[1], utc(2026, 10, 26, 1, 30, 0)); /* CET from now on */
    fires("0,30 * * * *", "Europe/Berlin", utc(2026, 10, 24, 23, 45, 0), t, 4);
    assert_int_equal(t[0], utc(2026, 10, 25, 0, 0, 0));  /* 02:00 CEST */
    assert_int_equal(t[1], utc(2026, 10, 25, 0, 30, 0)); /* 02:30 CEST */
    assert_int_equal(t[2], utc(2026, 10, 25, 2, 0, 0));  /* 02:xx CET not again: 03:00 CET */
    assert_int_equal(t[3], utc(2026, 10, 25, 2, 30, 0));
}

/* America/New_York 2026: 03-08 02:00 EST -> 03:00 EDT (07:00 UTC); 11-01 02:00 EDT -> 01:00 EST
 * (06:00 UTC). */
static void test_dst_new_york(void **state) {
    (void)state;
    int64_t t[3];
    fires("15 2 * * *", "America/New_York", utc(2026, 3, 7, 12, 0, 0), t, 2);
    assert_int_equal(t[0], utc(2026, 3, 8, 7, 0, 0));
    assert_int_equal(t[1], utc(2026, 3, 9, 6, 15, 0));
    fires("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12, 0, 0), t, 2);
    assert_int_equal(t[0], utc(2026, 11, 1, 5, 30, 0)); /* 01:30 EDT; not 01:30 EST too */
    assert_int_equal(t[1], utc(2026, 11, 2, 6, 30, 0));
    /* From inside the repeated hour's second pass, the next fire is after it. */
    fires("*/30 * * * *", "America/New_York", utc(2026, 11, 1, 6, 10, 0), t, 1);
    assert_int_equal(t[0], utc(2026, 11, 1, 7, 0, 0)); /* 02:00 EST */
}

static void test_zone_without_dst_and_utc(void **state) {
    (void)state;
    int64_t t[2];
    fires("0 9 * * *", "Asia/Tokyo", utc(2026, 3, 28, 0, 0, 0), t, 2);
    assert_int_equal(t[0], utc(2026, 3, 29, 0, 0, 0));
    assert_int_equal(t[1], utc(2026, 3, 30, 0, 0, 0));
    fires("0 9 * * *", "UTC", utc(2026, 10, 25, 0, 0, 0), t, 1);
    assert_int_equal(t[0], utc(2026, 10, 25, 9, 0, 0));
}

/* A schedule trigger's config: cron in its zone, or every; errors for a bad zone or duration. */
static void test_schedule_config(void **state) {
    (void)state;
    af_error_t err = {0};
    int64_t at[3];
    json_t *c = json_pack("{s:s, s:s}", "cron", "0 9 * * *", "timezone", "Asia/Tokyo");
    assert_int_equal(af_schedule_next_runs(c, utc(2026, 3, 28, 0, 0, 0), at, 2, &err), 2);
    assert_int_equal(at[0], utc(2026, 3, 29, 0, 0, 0));
    assert_int_equal(at[1], utc(2026, 3, 30, 0, 0, 0));
    json_t *iso = af_schedule_next_runs_json(c, utc(2026, 3, 28, 0, 0, 0), 1, &err);
    assert_string_equal(json_string_value(json_array_get(iso, 0)), "2026-03-29T00:00:00.000Z");
    json_decref(iso);
    json_decref(c);
    c = json_pack("{s:s}", "every", "15m");
    assert_int_equal(af_schedule_next_runs(c, 1000, at, 3, &err), 3);
    assert_int_equal(at[2], 1000 + 3 * 900000);
    json_decref(c);
    c = json_pack("{s:s}", "every", "soon");
    assert_true(af_schedule_next_runs(c, 0, at, 1, &err) < 0);
    json_decref(c);
    c = json_pack("{s:s, s:s}", "cron", "0 9 * * *", "timezone", "Nowhere/Town");
    assert_int_equal(af_schedule_next_runs(c, 0, at, 1, &err), AF_ENOTFOUND);
    assert_null(af_schedule_next_runs_json(c, 0, 1, &err));
    json_decref(c);
    c = json_pack("{s:s}", "cron", "0 0 30 2 *"); /* never: none found */
    assert_int_equal(af_schedule_next_runs(c, 0, at, 3, &err), 0);
    json_decref(c);
}

static void expect_window_error(const char *json, const char *needle) {
    json_t *c = json_loads(json, 0, NULL);
    assert_non_null(c);
    af_window_t w;
    af_error_t err = {0};
    assert_int_equal(af_window_parse(c, &w, &err), AF_EINVAL);
    if (strstr(err.msg, needle) == NULL) {
        fail_msg("%s: '%s' does not say '%s'", json, err.msg, needle);
    }
    json_decref(c);
}

static void test_window(void **state) {
    (void)state;
    af_window_t w;
    af_error_t err = {0};
    json_t *c = json_pack("{s:s, s:s, s:s, s:[s, s]}", "from", "22:00", "to", "06:00", "days",
                          "MON-FRI", "dates", "2026-12-01..2026-12-23", "2026-12-31");
    assert_int_equal(af_window_parse(c, &w, &err), 0);
    json_decref(c);
    af_civil_t t = {2026, 12, 1, 23, 30, 0}; /* a Tuesday night: in */
    assert_true(af_window_allows(&w, &t));
    t.hour = 5; /* past midnight: still in (the window wraps) */
    assert_true(af_window_allows(&w, &t));
    t.hour = 6; /* the end is exclusive */
    assert_false(af_window_allows(&w, &t));
    t = (af_civil_t){2026, 12, 5, 23, 0, 0}; /* a Saturday */
    assert_false(af_window_allows(&w, &t));
    t = (af_civil_t){2026, 12, 24, 23, 0, 0}; /* a Thursday outside the dates */
    assert_false(af_window_allows(&w, &t));
    t = (af_civil_t){2026, 12, 31, 23, 0, 0}; /* a Thursday on a listed date */
    assert_true(af_window_allows(&w, &t));
    af_window_clear(&w);
    assert_int_equal(af_window_parse(NULL, &w, &err), 0); /* none: always */
    assert_true(af_window_allows(&w, &t));
    expect_window_error("{\"from\": \"08:00\"}", "window.from and window.to");
    expect_window_error("{\"from\": \"8:00\", \"to\": \"09:00\"}", "HH:MM");
    expect_window_error("{\"from\": \"08:00\", \"to\": \"08:00\"}", "two different times");
    expect_window_error("{\"days\": \"MON-FUN\"}", "window.days 'MON-FUN'");
    expect_window_error("{\"dates\": [\"2026-02-30\"]}", "window.dates '2026-02-30'");
    /* strictly two-digit fields: no signs, spaces or short forms slip through */
    expect_window_error("{\"from\": \"+8:00\", \"to\": \"09:00\"}", "HH:MM");
    expect_window_error("{\"from\": \" 8:00\", \"to\": \"09:00\"}", "HH:MM");
    expect_window_error("{\"dates\": [\"+202-01-01\"]}", "window.dates '+202-01-01'");
    expect_window_error("{\"dates\": [\"2026-01- 1\"]}", "window.dates '2026-01- 1'");
    expect_window_error("{\"dates\": [\"2026-12-31..2026-12-01\"]}", "first day first");
    expect_window_error("{\"dates\": []}", "window.dates is a list");
    expect_window_error("{\"hours\": 3}", "unknown field 'hours'");
    expect_window_error("[1]", "window is a table");
}

/* Fire times outside the window are skipped, in the schedule's zone. */
static void test_schedule_window(void **state) {
    (void)state;
    af_error_t err = {0};
    int64_t at[4];
    json_t *c =
        json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "cron", "0 * * * *", "timezone", "Europe/Berlin",
                  "window", "from", "09:00", "to", "11:00", "days", "MON-FRI");
    /* Friday 2026-11-27 10:30 Berlin (09:30 UTC): 11:00 is out; next Monday 09:00, 10:00 */
    assert_int_equal(af_schedule_next_runs(c, utc(2026, 11, 27, 9, 30, 0), at, 3, &err), 3);
    assert_int_equal(at[0], utc(2026, 11, 30, 8, 0, 0));
    assert_int_equal(at[1], utc(2026, 11, 30, 9, 0, 0));
    assert_int_equal(at[2], utc(2026, 12, 1, 8, 0, 0));
    json_decref(c);
    c = json_pack("{s:s, s:{s:[s]}}", "every", "1h", "window", "dates", "2026-01-01");
    assert_int_equal(af_schedule_next_runs(c, utc(2026, 1, 1, 22, 30, 0), at, 3, &err), 1);
    assert_int_equal(at[0], utc(2026, 1, 1, 23, 30, 0)); /* then the window is over for good */
    json_decref(c);
    /* a closed stretch is skipped, not searched fire by fire: every second of a weekend */
    c = json_pack("{s:s, s:{s:s, s:s, s:s}}", "cron", "* * * * * *", "window", "from", "08:00",
                  "to", "18:00", "days", "MON-FRI");
    assert_int_equal(af_schedule_next_runs(c, utc(2026, 11, 27, 18, 0, 0), at, 2, &err), 2);
    assert_int_equal(at[0], utc(2026, 11, 30, 8, 0, 0));
    assert_int_equal(at[1], utc(2026, 11, 30, 8, 0, 1));
    json_decref(c);
    c = json_pack("{s:s, s:{s:[s]}}", "cron", "* * * * *", "window", "dates", "2026-04-20");
    assert_int_equal(af_schedule_next_runs(c, utc(2026, 1, 29, 0, 0, 0), at, 1, &err), 1);
    assert_int_equal(at[0], utc(2026, 4, 20, 0, 0, 0)); /* 81 days later */
    json_decref(c);
    /* an interval keeps its steps: every 25 minutes from 07:50, inside 09:00-10:00 */
    c = json_pack("{s:s, s:{s:s, s:s}}", "every", "25m", "window", "from", "09:00", "to", "10:00");
    assert_int_equal(af_schedule_next_runs(c, utc(2026, 1, 1, 7, 50, 0), at, 4, &err), 4);
    assert_int_equal(at[0], utc(2026, 1, 1, 9, 5, 0));
    assert_int_equal(at[1], utc(2026, 1, 1, 9, 30, 0));
    assert_int_equal(at[2], utc(2026, 1, 1, 9, 55, 0));
    assert_int_equal(at[3], utc(2026, 1, 2, 9, 15, 0)); /* 07:50 + 61 steps of 25 minutes */
    json_decref(c);
    c = json_pack("{s:s, s:{s:s}}", "cron", "* * * * *", "window", "from", "nine");
    assert_int_equal(af_schedule_check(c, &err), AF_EINVAL);
    json_decref(c);
}

/* Missed fire times (the server was down from last to now): skip, run_once, run_all with its
 * bound; an invalid policy is refused. */
static void test_missed(void **state) {
    (void)state;
    af_error_t err = {0};
    int64_t at[8];
    int n = -1;
    int64_t last = utc(2026, 11, 26, 9, 59, 0), now = utc(2026, 11, 26, 15, 30, 0);
    json_t *c = json_pack("{s:s}", "cron", "0 * * * *"); /* due 10:00 .. 15:00: six missed */
    assert_int_equal(af_schedule_missed(c, last, now, at, 8, &n, &err), 0);
    assert_int_equal(n, 0); /* skip by default */
    json_object_set_new(c, "missed", json_string("run_once"));
    assert_int_equal(af_schedule_missed(c, last, now, at, 8, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(at[0], utc(2026, 11, 26, 15, 0, 0)); /* the latest */
    json_object_set_new(c, "missed", json_string("run_all"));
    assert_int_equal(af_schedule_missed(c, last, now, at, 8, &n, &err), 0);
    assert_int_equal(n, 6);
    assert_int_equal(at[0], utc(2026, 11, 26, 10, 0, 0));
    assert_int_equal(at[5], utc(2026, 11, 26, 15, 0, 0));
    json_object_set_new(c, "max_catchup", json_integer(4));
    assert_int_equal(af_schedule_missed(c, last, now, at, 8, &n, &err), 0);
    assert_int_equal(n, 4); /* the latest four, oldest first */
    assert_int_equal(at[0], utc(2026, 11, 26, 12, 0, 0));
    assert_int_equal(at[3], utc(2026, 11, 26, 15, 0, 0));
    assert_int_equal(af_schedule_missed(c, now, now, at, 8, &n, &err), 0);
    assert_int_equal(n, 0); /* nothing missed */
    json_object_set_new(c, "max_catchup", json_integer(0));
    assert_int_equal(af_schedule_missed(c, last, now, at, 8, &n, &err), AF_EINVAL);
    assert_true(strstr(err.msg, "max_catchup") != NULL);
    json_object_set_new(c, "max_catchup", json_integer(4));
    json_object_set_new(c, "missed", json_string("sometimes"));
    assert_int_equal(af_schedule_check(c, &err), AF_EINVAL);
    json_decref(c);
    /* every second, down for two years: bounded work, the latest kept */
    c = json_pack("{s:s, s:s, s:i}", "cron", "* * * * * *", "missed", "run_all", "max_catchup", 3);
    assert_int_equal(af_schedule_missed(c, 0, utc(2026, 11, 26, 0, 0, 0), at, 8, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_true(at[0] < at[1] && at[1] < at[2]);
    json_decref(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),          cmocka_unit_test(test_errors_name_the_field),
        cmocka_unit_test(test_next_utc),        cmocka_unit_test(test_day_or_rule),
        cmocka_unit_test(test_never_fires),     cmocka_unit_test(test_dst_berlin),
        cmocka_unit_test(test_dst_new_york),    cmocka_unit_test(test_zone_without_dst_and_utc),
        cmocka_unit_test(test_schedule_config), cmocka_unit_test(test_window),
        cmocka_unit_test(test_schedule_window), cmocka_unit_test(test_missed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
