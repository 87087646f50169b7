/* test_poll_diff.c -- change detection of polling triggers (triggers/poll_diff.c): by key, by
 * key and content hash, by content alone; baseline or emit-all first polls; bad items. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "triggers/poll_diff.h"

/* One poll: items as JSON text; returns the emitted items' "id" fields joined by ',' (static). */
static const char *poll(json_t **state, const char *items, const af_poll_opts_t *o) {
    static char ids[256];
    json_t *list = json_loads(items, 0, NULL), *emit = NULL, *next = NULL;
    af_error_t err = {0};
    if (list == NULL || af_poll_diff(*state, list, o, &emit, &next, &err) != 0) {
        fail_msg("poll %s: %s", items, err.msg);
    }
    json_decref(list);
    json_decref(*state);
    *state = next;
    ids[0] = '\0';
    size_t i;
    json_t *item;
    json_array_foreach(emit, i, item) {
        json_t *id = json_object_get(item, "id");
        char one[32];
        if (json_is_integer(id)) {
            snprintf(one, sizeof one, "%lld", (long long)json_integer_value(id));
        } else {
            snprintf(one, sizeof one, "%s", json_is_string(id) ? json_string_value(id) : "?");
        }
        strcat(ids, i ? "," : "");
        strcat(ids, one);
    }
    json_decref(emit);
    return ids;
}

static void test_by_key(void **state) {
    (void)state;
    af_poll_opts_t o = {.key = "id", .baseline = 1};
    json_t *st = NULL;
    assert_string_equal(poll(&st, "[{\"id\": 1, \"v\": 1}, {\"id\": 2}]", &o), ""); /* baseline */
    assert_string_equal(poll(&st, "[{\"id\": 1, \"v\": 2}, {\"id\": 2}, {\"id\": 3}]", &o), "3");
    assert_string_equal(poll(&st, "[{\"id\": 1, \"v\": 3}, {\"id\": 2}, {\"id\": 3}]", &o), "");
    assert_string_equal(poll(&st, "[{\"id\": 3}]", &o), ""); /* 1 and 2 are gone ... */
    assert_string_equal(poll(&st, "[{\"id\": 2}, {\"id\": 3}]", &o), "2"); /* ... and 2 is back */
    json_decref(st);
}

static void test_by_key_and_hash(void **state) {
    (void)state;
    af_poll_opts_t o = {.key = "id", .hash = 1, .baseline = 0};
    json_t *st = NULL;
    assert_string_equal(poll(&st, "[{\"id\": \"a\", \"v\": 1}, {\"id\": \"b\"}]", &o), "a,b");
    assert_string_equal(poll(&st, "[{\"v\": 2, \"id\": \"a\"}, {\"id\": \"b\"}]", &o), "a");
    /* the same content with its keys in another order is no change */
    assert_string_equal(poll(&st, "[{\"id\": \"a\", \"v\": 2}, {\"id\": \"b\"}]", &o), "");
    json_decref(st);
}

static void test_by_content(void **state) {
    (void)state;
    af_poll_opts_t o = {.baseline = 1};
    json_t *st = NULL;
    assert_string_equal(poll(&st, "[{\"id\": 1}, {\"id\": 2}, {\"id\": 2}]", &o), "");
    assert_string_equal(poll(&st, "[{\"id\": 1}, {\"id\": 2, \"x\": 1}]", &o), "2");
    assert_string_equal(
        poll(&st, "[{\"id\": 1}, {\"id\": 2, \"x\": 1}, {\"id\": 9}, {\"id\": 9}]", &o),
        "9"); /* one item however often it is returned */
    json_decref(st);
}

static void expect_refused(const char *items, const char *key, const char *needle) {
    af_poll_opts_t o = {.key = key};
    json_t *list = json_loads(items, JSON_DECODE_ANY, NULL), *emit = NULL, *next = NULL;
    af_error_t err = {0};
    assert_int_equal(af_poll_diff(NULL, list, &o, &emit, &next, &err), AF_EINVAL);
    assert_null(emit);
    assert_null(next);
    if (strstr(err.msg, needle) == NULL) {
        fail_msg("%s: '%s' does not say '%s'", items, err.msg, needle);
    }
    json_decref(list);
}

static void test_bad_items(void **state) {
    (void)state;
    expect_refused("{\"id\": 1}", "id", "must return a list");
    expect_refused("[{\"id\": 1}, {\"name\": \"x\"}]", "id", "every item needs 'id'");
    expect_refused("[{\"id\": 1.5}]", "id", "a string");
    expect_refused("[3]", "id", "every item needs 'id'");
    expect_refused("[{\"id\": \"a\"}, {\"id\": \"a\"}]", "id", "two items have id 'a'");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_by_key),
        cmocka_unit_test(test_by_key_and_hash),
        cmocka_unit_test(test_by_content),
        cmocka_unit_test(test_bad_items),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
