/* test_ratelimit.c -- poll limits under a clock the test moves (triggers/ratelimit.c): at most
 * max starts per sliding period per key, keys apart, and the backoff after failures. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "triggers/ratelimit.h"

static void test_window(void **state) {
    (void)state;
    af_ratelimit_t *r = af_ratelimit_new();
    int64_t retry = 0;
    /* three polls a minute for workflow w */
    assert_int_equal(af_ratelimit_take(r, "workflow:w", 1000, 3, 60000, &retry), 1);
    assert_int_equal(af_ratelimit_take(r, "workflow:w", 2000, 3, 60000, &retry), 1);
    assert_int_equal(af_ratelimit_take(r, "workflow:w", 3000, 3, 60000, &retry), 1);
    assert_int_equal(af_ratelimit_take(r, "workflow:w", 4000, 3, 60000, &retry), 0);
    assert_int_equal(retry, 61000); /* when the first start leaves the window */
    assert_int_equal(af_ratelimit_take(r, "host:api.example.com", 4000, 1, 10000, &retry), 1);
    assert_int_equal(af_ratelimit_take(r, "host:api.example.com", 5000, 1, 10000, &retry), 0);
    assert_int_equal(retry, 14000);
    assert_int_equal(af_ratelimit_take(r, "workflow:w", 60999, 3, 60000, NULL), 0);
    assert_int_equal(af_ratelimit_take(r, "workflow:w", 61000, 3, 60000, &retry), 1);
    assert_int_equal(af_ratelimit_take(r, "workflow:w", 61500, 3, 60000, &retry), 0);
    assert_int_equal(retry, 62000);
    /* a key's first limits stay */
    assert_int_equal(af_ratelimit_take(r, "workflow:w", 61500, 100, 1, &retry), 0);
    af_ratelimit_free(r);
}

static void test_many_keys(void **state) {
    (void)state;
    af_ratelimit_t *r = af_ratelimit_new();
    char key[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(af_ratelimit_take(r, key, 5, 1, 1000, NULL), 1);
    }
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(af_ratelimit_take(r, key, 6, 1, 1000, NULL), 0);
    }
    af_ratelimit_free(r);
}

static void test_backoff(void **state) {
    (void)state;
    assert_int_equal(af_backoff_ms(1, 1000, 300000), 1000);
    assert_int_equal(af_backoff_ms(2, 1000, 300000), 2000);
    assert_int_equal(af_backoff_ms(5, 1000, 300000), 16000);
    assert_int_equal(af_backoff_ms(20, 1000, 300000), 300000);
    assert_int_equal(af_backoff_ms(1000000, 1000, 300000), 300000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
