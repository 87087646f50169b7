/* test_bus_pattern.c -- event type patterns (bus/pattern.c): `*` one segment, `#` any number,
 * and what is refused as a type or a pattern. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "bus/pattern.h"

static void test_match(void **state) {
    (void)state;
    static const struct {
        const char *pattern, *type;
        int match;
    } cases[] = {
        {"order.created", "order.created", 1},
        {"order.created", "order.create", 0},
        {"order.created", "order.created.v2", 0},
        {"order.*", "order.created", 1},
        {"order.*", "order", 0},
        {"order.*", "order.item.added", 0},
        {"*.failed", "payment.failed", 1},
        {"*.failed", "payment.card.failed", 0},
        {"*.failed", "failed", 0},
        {"order.#", "order", 1},
        {"order.#", "order.created", 1},
        {"order.#", "order.item.added", 1},
        {"order.#", "orders.created", 0},
        {"#.failed", "failed", 1},
        {"#.failed", "payment.card.failed", 1},
        {"#.failed", "payment.failed.retry", 0},
        {"#", "anything.at.all", 1},
        {"*.*", "a.b", 1},
        {"*.*", "a", 0},
        {"a.#.z", "a.z", 1},
        {"a.#.z", "a.b.c.z", 1},
        {"a.#.z", "a.b.c", 0},
        {"#.b.#", "a.b.c", 1},
        {"#.b.#", "a.c", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (af_event_type_match(cases[i].pattern, cases[i].type) != cases[i].match) {
            fail_msg("'%s' vs '%s': expected %d", cases[i].pattern, cases[i].type, cases[i].match);
        }
    }
    assert_false(af_event_type_match(NULL, "a"));
}

static void expect_refused(const char *text, int pattern, const char *needle) {
    af_error_t err = {0};
    assert_int_equal(af_event_type_check(text, pattern, &err), AF_EINVAL);
    if (strstr(err.msg, needle) == NULL) {
        fail_msg("'%s': '%s' does not say '%s'", text, err.msg, needle);
    }
}

static void test_check(void **state) {
    (void)state;
    af_error_t err = {0};
    assert_int_equal(af_event_type_check("order.created", 0, &err), 0);
    assert_int_equal(af_event_type_check("user_v2.sign-up", 0, &err), 0);
    assert_int_equal(af_event_type_check("order.*", 1, &err), 0);
    assert_int_equal(af_event_type_check("#.failed", 1, &err), 0);
    expect_refused("order.*", 0, "only subscriptions use * and #");
    expect_refused("", 1, "1 to 255 characters");
    expect_refused("order..created", 0, "empty segment");
    expect_refused(".order", 1, "empty segment");
    expect_refused("order.", 1, "empty segment");
    expect_refused("order created", 0, "segment 'order created'");
    expect_refused("order.cre*", 1, "or be a lone * or #");
    expect_refused("#.#.#", 1, "more than two #");
    char big[300];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    expect_refused(big, 0, "1 to 255 characters");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
