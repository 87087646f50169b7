/* test_scheduler.c -- many schedules under a clock the test moves (triggers/scheduler.c): due
 * order, catch-up of missed runs by policy, replacing and removing, and 10,000 schedules each
 * firing once a minute. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tz.h"
#include "triggers/scheduler.h"

typedef struct {
    char id[32];
    int64_t due;
    int catchup;
} fire_t;

typedef struct {
    fire_t *fires;
    size_t n, cap;
} log_t;

static void record(void *ud, const char *id, int64_t due, int catchup) {
    log_t *l = ud;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->fires = realloc(l->fires, l->cap * sizeof *l->fires);
    }
    fire_t *f = &l->fires[l->n++];
    snprintf(f->id, sizeof f->id, "%s", id);
    f->due = due;
    f->catchup = catchup;
}

static int64_t utc(int y, int mo, int d, int h, int mi, int s) {
    af_civil_t c = {y, mo, d, h, mi, s};
    return af_civil_to_unix(&c) * 1000;
}

static void put(af_scheduler_t *s, const char *id, const char *json, int64_t last, int64_t now) {
    json_t *c = json_loads(json, 0, NULL);
    af_error_t err = {0};
    if (c == NULL || af_scheduler_put(s, id, c, last, now, &err) != 0) {
        fail_msg("put %s: %s", id, err.msg);
    }
    json_decref(c);
}

static void test_due_order(void **state) {
    (void)state;
    af_scheduler_t *s = af_scheduler_new();
    int64_t t0 = utc(2026, 11, 26, 10, 0, 30);
    put(s, "hourly", "{\"cron\": \"0 * * * *\"}", 0, t0);
    put(s, "quarter", "{\"cron\": \"*/15 * * * *\"}", 0, t0);
    put(s, "berlin", "{\"cron\": \"0 12 * * *\", \"timezone\": \"Europe/Berlin\"}", 0, t0);
    assert_int_equal(af_scheduler_count(s), 3);
    assert_int_equal(af_scheduler_next_due(s), utc(2026, 11, 26, 10, 15, 0));
    assert_int_equal(af_scheduler_due_of(s, "berlin"), utc(2026, 11, 26, 11, 0, 0));
    log_t l = {0};
    assert_int_equal(af_scheduler_run(s, t0 + 1000, record, &l), 0); /* nothing due yet */
    /* the clock moves two hours in one step: everything due fires, in due order */
    /* quarter: 10:15 .. 12:00 (8), hourly: 11:00, 12:00, berlin: 11:00 UTC */
    assert_int_equal(af_scheduler_run(s, utc(2026, 11, 26, 12, 0, 0), record, &l), 11);
    assert_string_equal(l.fires[0].id, "quarter");
    assert_int_equal(l.fires[0].due, utc(2026, 11, 26, 10, 15, 0));
    for (size_t i = 1; i < l.n; i++) {
        assert_true(l.fires[i - 1].due <= l.fires[i].due);
        assert_int_equal(l.fires[i].catchup, 0);
    }
    int berlin = 0, hourly = 0;
    for (size_t i = 0; i < l.n; i++) {
        berlin += strcmp(l.fires[i].id, "berlin") == 0;
        hourly += strcmp(l.fires[i].id, "hourly") == 0;
    }
    assert_int_equal(berlin, 1); /* 12:00 Berlin is 11:00 UTC */
    assert_int_equal(hourly, 2); /* 11:00 and 12:00 */
    assert_int_equal(af_scheduler_due_of(s, "hourly"), utc(2026, 11, 26, 13, 0, 0));
    free(l.fires);
    af_scheduler_free(s);
}

/* Restarted with the last fire time: missed runs per policy, then the schedule goes on. */
static void test_catchup(void **state) {
    (void)state;
    af_scheduler_t *s = af_scheduler_new();
    int64_t last = utc(2026, 11, 26, 6, 0, 0), now = utc(2026, 11, 26, 10, 30, 0);
    put(s, "all", "{\"cron\": \"0 * * * *\", \"missed\": \"run_all\"}", last, now);
    put(s, "once", "{\"cron\": \"0 * * * *\", \"missed\": \"run_once\"}", last, now);
    put(s, "skip", "{\"cron\": \"0 * * * *\"}", last, now);
    log_t l = {0};
    assert_int_equal(af_scheduler_run(s, now, record, &l), 5); /* 07..10 for all, 10 for once */
    for (size_t i = 0; i < l.n; i++) {
        assert_int_equal(l.fires[i].catchup, 1);
        assert_true(strcmp(l.fires[i].id, "skip") != 0);
    }
    assert_int_equal(l.fires[0].due, utc(2026, 11, 26, 7, 0, 0));
    l.n = 0;
    assert_int_equal(af_scheduler_run(s, utc(2026, 11, 26, 11, 0, 0), record, &l), 3);
    for (size_t i = 0; i < l.n; i++) {
        assert_int_equal(l.fires[i].catchup, 0);
        assert_int_equal(l.fires[i].due, utc(2026, 11, 26, 11, 0, 0));
    }
    free(l.fires);
    af_scheduler_free(s);
}

static void test_replace_remove_refuse(void **state) {
    (void)state;
    af_scheduler_t *s = af_scheduler_new();
    int64_t t0 = utc(2026, 1, 1, 0, 0, 0);
    put(s, "a", "{\"cron\": \"0 0 * * *\"}", 0, t0);
    put(s, "a", "{\"cron\": \"0 6 * * *\"}", 0, t0); /* replaced, not added */
    assert_int_equal(af_scheduler_count(s), 1);
    assert_int_equal(af_scheduler_due_of(s, "a"), utc(2026, 1, 1, 6, 0, 0));
    put(s, "never", "{\"cron\": \"0 0 30 2 *\"}", 0, t0);
    assert_int_equal(af_scheduler_due_of(s, "never"), 0);
    json_t *bad = json_pack("{s:s}", "cron", "61 * * * *");
    af_error_t err = {0};
    assert_int_equal(af_scheduler_put(s, "b", bad, 0, t0, &err), AF_EINVAL);
    assert_non_null(strstr(err.msg, "minute '61'"));
    json_decref(bad);
    assert_int_equal(af_scheduler_count(s), 2);
    assert_int_equal(af_scheduler_remove(s, "a"), 0);
    assert_int_equal(af_scheduler_remove(s, "a"), AF_ENOTFOUND);
    assert_int_equal(af_scheduler_next_due(s), INT64_MAX); /* only "never" is left */
    af_scheduler_free(s);
}

/* 10,000 schedules, each once a minute at its own second; some removed: each of the others
 * fires exactly once per minute, in due order. */
static void test_many(void **state) {
    (void)state;
    enum { N = 10000 };
    af_scheduler_t *s = af_scheduler_new();
    int64_t t0 = utc(2026, 11, 26, 0, 0, 0);
    char id[32], json[64];
    srand(7);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "t%d", i);
        snprintf(json, sizeof json, "{\"cron\": \"%d * * * * *\"}", rand() % 60);
        put(s, id, json, 0, t0);
    }
    for (int i = 0; i < N; i += 10) {
        snprintf(id, sizeof id, "t%d", i);
        assert_int_equal(af_scheduler_remove(s, id), 0);
    }
    log_t l = {0};
    for (int64_t now = t0; now <= t0 + 120000; now += 250) { /* two minutes, a tick every 250 ms */
        af_scheduler_run(s, now, record, &l);
    }
    assert_int_equal(l.n, 2 * (N - N / 10));
    for (size_t i = 1; i < l.n; i++) {
        assert_true(l.fires[i - 1].due <= l.fires[i].due);
    }
    free(l.fires);
    af_scheduler_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_due_order),
        cmocka_unit_test(test_catchup),
        cmocka_unit_test(test_replace_remove_refuse),
        cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
