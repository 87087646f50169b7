/* test_clock.c -- the clock (core/clock.c): the system's by default; a manual one that only
 * af_clock_advance moves, firing wall-clock timers in wake-up order as their times come. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/core.h"

#define NTIMERS 5

static uv_loop_t loop;
static uv_timer_t timers[NTIMERS];
static int order[16], nfired;

static void fired(uv_timer_t *t) {
    order[nfired++] = (int)(t - timers);
}

static int setup(void **state) {
    (void)state;
    uv_loop_init(&loop);
    for (int i = 0; i < NTIMERS; i++) {
        uv_timer_init(&loop, &timers[i]);
    }
    nfired = 0;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int i = 0; i < NTIMERS; i++) {
        af_clock_timer_stop(&timers[i]);
        uv_close((uv_handle_t *)&timers[i], NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    af_clock_set_manual(0);
    return 0;
}

/* Runs what is due now (timers armed at 0 ms) without waiting for anything else. */
static void turn(void) {
    uv_update_time(&loop);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void test_system_clock(void **state) {
    (void)state;
    assert_false(af_clock_is_manual());
    int64_t now = (int64_t)time(NULL) * 1000;
    assert_true(af_wall_ms() >= now - 1000 && af_wall_ms() <= now + 2000);
    assert_int_equal(af_clock_advance(1000), -1); /* the system's clock is not moved */
    af_clock_timer_start(&timers[0], fired, af_wall_ms() + 20);
    uv_run(&loop, UV_RUN_DEFAULT); /* a plain libuv timer: fires after ~20 ms */
    assert_int_equal(nfired, 1);
}

static void test_manual_clock_stands_still(void **state) {
    (void)state;
    af_clock_set_manual(1000000);
    assert_true(af_clock_is_manual());
    assert_int_equal(af_wall_ms(), 1000000);
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
    assert_int_equal(af_wall_ms(), 1000000);
    assert_int_equal(af_clock_advance(250), 1000250);
    assert_int_equal(af_wall_ms(), 1000250);
    assert_int_equal(af_clock_advance(-5), 1000250); /* never backwards */
}

static void test_timers_fire_in_order_as_time_moves(void **state) {
    (void)state;
    af_clock_set_manual(1000000);
    af_clock_timer_start(&timers[0], fired, 1000100);
    af_clock_timer_start(&timers[1], fired, 1000050);
    af_clock_timer_start(&timers[2], fired, 1000000 - 5); /* past: at once */
    af_clock_timer_start(&timers[3], fired, 1000070);
    af_clock_timer_start(&timers[4], fired, 1000060);
    af_clock_timer_stop(&timers[4]); /* stopped: never */
    turn();
    assert_int_equal(nfired, 1);
    assert_int_equal(order[0], 2);
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, NULL); /* real time passing moves nothing */
    turn();
    assert_int_equal(nfired, 1);
    af_clock_advance(75);
    turn();
    assert_int_equal(nfired, 3);
    assert_int_equal(order[1], 1); /* 50 before 70 */
    assert_int_equal(order[2], 3);
    af_clock_timer_start(&timers[0], fired, 1000200); /* restarting replaces its wake-up */
    af_clock_advance(50);
    turn();
    assert_int_equal(nfired, 3);
    af_clock_advance(75);
    turn();
    assert_int_equal(nfired, 4);
    assert_int_equal(order[3], 0);
    af_clock_advance(100000);
    turn();
    assert_int_equal(nfired, 4); /* nothing left */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_system_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manual_clock_stands_still, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timers_fire_in_order_as_time_moves, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
