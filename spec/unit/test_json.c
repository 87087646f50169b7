/* test_json.c -- JSON text in and out (core/json.c): shortest reals, escapes, pretty and sorted
 * output, and the loader's limits and error messages. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* Dumps `v` (stolen) with `flags` and compares with `want`. */
static void check_dump(json_t *v, int flags, const char *want) {
    assert_non_null(v);
    char *text = af_json_dumps(v, flags);
    assert_non_null(text);
    assert_string_equal(text, want);
    free(text);
    json_decref(v);
}

static json_t *load_ok(const char *text) {
    af_error_t err = {0};
    json_t *v = af_json_loads(text, strlen(text), 128, &err);
    if (v == NULL) {
        fail_msg("loading %s: %s", text, err.msg);
    }
    return v;
}

/* Loads `text`, expecting failure with `code` and `part` in the message. */
static void check_load_error(const char *text, size_t len, int max_depth, int code,
                             const char *part) {
    af_error_t err = {0};
    json_t *v = af_json_loads(text, len, max_depth, &err);
    assert_null(v);
    assert_int_equal(err.code, code);
    if (strstr(err.msg, part) == NULL) {
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, part);
    }
}

static void test_reals_shortest(void **state) {
    (void)state;
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},
        {2.5, "2.5"},
        {1e300, "1e+300"},
        {1.0, "1.0"},
        {100.0, "100.0"},
        {-0.0, "-0.0"},
        {-1.25, "-1.25"},
        {1e22, "1e+22"},
        {1e-7, "1e-07"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1.0 / 3.0, "0.3333333333333333"},
        {9007199254740994.0, "9007199254740994.0"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_dump(json_real(cases[i].v), 0, cases[i].text);
    }
}

static void test_reals_read_back(void **state) {
    (void)state;
    srand(7);
    for (int i = 0; i < 2000; i++) {
        uint64_t bits = 0;
        for (int k = 0; k < 4; k++) {
            bits = (bits << 16) ^ (uint64_t)(rand() & 0xffff);
        }
        double d;
        memcpy(&d, &bits, sizeof d);
        if (!isfinite(d)) {
            continue;
        }
        json_t *v = json_real(d);
        char *text = af_json_dumps(v, 0);
        assert_non_null(text);
        assert_true(strpbrk(text, ".e") != NULL);
        json_t *back = load_ok(text);
        assert_true(json_is_real(back));
        assert_true(json_real_value(back) == d);
        free(text);
        json_decref(back);
        json_decref(v);
    }
}

static void test_integers(void **state) {
    (void)state;
    check_dump(json_integer(42), 0, "42");
    check_dump(json_integer(-7), 0, "-7");
    check_dump(json_integer(0), 0, "0");
    check_dump(json_integer(INT64_MAX), 0, "9223372036854775807");
    check_dump(json_integer(INT64_MIN), 0, "-9223372036854775808");
    json_t *v = load_ok("[3, 3.0, -9223372036854775808]");
    assert_true(json_is_integer(json_array_get(v, 0)));
    assert_true(json_is_real(json_array_get(v, 1)));
    check_dump(v, 0, "[3,3.0,-9223372036854775808]");
}

static void test_literals(void **state) {
    (void)state;
    check_dump(json_true(), 0, "true");
    check_dump(json_false(), 0, "false");
    check_dump(json_null(), 0, "null");
    assert_null(af_json_dumps(NULL, 0));
}

static void test_string_escapes(void **state) {
    (void)state;
    check_dump(json_string("a\"b\\c/d\ne\rf\tg\bh\fi\x01j\x1fk\x7f"), 0,
               "\"a\\\"b\\\\c/d\\ne\\rf\\tg\\bh\\fi\\u0001j\\u001fk\x7f\"");
    check_dump(json_string(""), 0, "\"\"");
    /* UTF-8 passes through, including U+2028 */
    check_dump(json_string("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8"), 0,
               "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8\"");
    check_dump(json_stringn("a\0b", 3), 0, "\"a\\u0000b\"");
    json_t *obj = json_object();
    json_object_set_new(obj, "k\"ey\n", json_integer(1));
    check_dump(obj, 0, "{\"k\\\"ey\\n\":1}");
}

static void test_compact_keeps_order(void **state) {
    (void)state;
    json_t *v = load_ok("{ \"b\" : 1 , \"a\" : [ 1 , 2 , { } , [ ] ] , \"c\" : { \"z\" : null , "
                        "\"y\" : true } }");
    check_dump(v, 0, "{\"b\":1,\"a\":[1,2,{},[]],\"c\":{\"z\":null,\"y\":true}}");
}

static void test_sort(void **state) {
    (void)state;
    json_t *v = load_ok("{\"b\":1,\"ab\":2,\"a\":{\"y\":1,\"x\":2},\"\":3}");
    check_dump(json_incref(v), AF_JSON_SORT, "{\"\":3,\"a\":{\"x\":2,\"y\":1},\"ab\":2,\"b\":1}");
    check_dump(v, 0, "{\"b\":1,\"ab\":2,\"a\":{\"y\":1,\"x\":2},\"\":3}");

    /* more keys than fit the sorter's stack array */
    json_t *big = json_object();
    char key[16];
    for (int i = 99; i >= 0; i--) {
        snprintf(key, sizeof key, "k%02d", i);
        json_object_set_new(big, key, json_integer(i));
    }
    char *text = af_json_dumps(big, AF_JSON_SORT);
    assert_non_null(text);
    assert_memory_equal(text, "{\"k00\":0,\"k01\":1,", 17);
    assert_non_null(strstr(text, "\"k98\":98,\"k99\":99}"));
    free(text);
    json_decref(big);
}

static void test_pretty(void **state) {
    (void)state;
    json_t *v = load_ok("{\"b\":[1,{\"c\":\"x\"},[]],\"a\":{},\"d\":2.5}");
    check_dump(json_incref(v), AF_JSON_PRETTY,
               "{\n"
               "  \"b\": [\n"
               "    1,\n"
               "    {\n"
               "      \"c\": \"x\"\n"
               "    },\n"
               "    []\n"
               "  ],\n"
               "  \"a\": {},\n"
               "  \"d\": 2.5\n"
               "}");
    check_dump(v, AF_JSON_PRETTY | AF_JSON_SORT,
               "{\n"
               "  \"a\": {},\n"
               "  \"b\": [\n"
               "    1,\n"
               "    {\n"
               "      \"c\": \"x\"\n"
               "    },\n"
               "    []\n"
               "  ],\n"
               "  \"d\": 2.5\n"
               "}");
    check_dump(json_integer(1), AF_JSON_PRETTY, "1");
}

static void test_pretty_deep_indent(void **state) {
    (void)state;
    /* 40 levels: indentation longer than one copy of the spaces string */
    char text[128] = "";
    for (int i = 0; i < 40; i++) {
        strcat(text, "[");
    }
    for (int i = 0; i < 40; i++) {
        strcat(text, "]");
    }
    json_t *v = load_ok(text);
    char *out = af_json_dumps(v, AF_JSON_PRETTY);
    assert_non_null(out);
    char want[128];
    memset(want, ' ', 78);
    want[78] = '\0';
    assert_non_null(strstr(out, want)); /* the innermost [] at depth 39 */
    json_t *back = load_ok(out);
    assert_true(json_equal(v, back));
    free(out);
    json_decref(back);
    json_decref(v);
}

static void test_round_trip(void **state) {
    (void)state;
    const char *text = "{\"name\":\"agent \xe2\x98\x83\",\"n\":[1,-2,3.25,1e-300,true,false,null],"
                       "\"o\":{\"deep\":{\"er\":[[{}]]}},\"esc\":\"\\u0001\\\"\\\\\"}";
    json_t *v = load_ok(text);
    for (int flags = 0; flags < 4; flags++) {
        char *out = af_json_dumps(v, flags);
        assert_non_null(out);
        json_t *back = load_ok(out);
        assert_true(json_equal(v, back));
        if (flags == 0) {
            assert_string_equal(out, text);
        }
        free(out);
        json_decref(back);
    }
    json_decref(v);
}

static void test_loads_scalars_and_nul(void **state) {
    (void)state;
    json_t *v = load_ok("42");
    assert_int_equal(json_integer_value(v), 42);
    json_decref(v);
    v = load_ok("  \"a\\u0000b\"\n");
    assert_int_equal(json_string_length(v), 3);
    check_dump(v, 0, "\"a\\u0000b\"");
    v = load_ok("{\"a\":1,\"a\":2}"); /* the last duplicate wins */
    check_dump(v, 0, "{\"a\":2}");
}

static void test_depth_limit(void **state) {
    (void)state;
    char text[600];
    size_t n = 0;
    for (int i = 0; i < 128; i++) {
        text[n++] = '[';
    }
    for (int i = 0; i < 128; i++) {
        text[n++] = ']';
    }
    json_t *v = af_json_loads(text, n, 128, NULL);
    assert_non_null(v);
    json_decref(v);
    check_load_error(text, n, 127, AF_ELIMIT, "line 1, column 128: JSON nested deeper than 127");

    /* brackets inside strings do not count */
    const char *quoted = "[\"[[[[\\\"[[[[\",{\"{{{{\":[1]}]";
    v = af_json_loads(quoted, strlen(quoted), 3, NULL);
    assert_non_null(v);
    json_decref(v);
    check_load_error(quoted, strlen(quoted), 2, AF_ELIMIT, "column 23: JSON nested deeper than 2");

    const char *multi = "{\n  \"\xc3\xa9\": {\n    \"b\": [1]\n  }\n}";
    check_load_error(multi, strlen(multi), 2, AF_ELIMIT, "line 3, column 10:");
    check_load_error("[]", 2, 0, AF_ELIMIT, "JSON nested deeper than 0 levels");
    v = af_json_loads("7", 1, 0, NULL);
    assert_non_null(v);
    json_decref(v);
}

static void test_syntax_errors(void **state) {
    (void)state;
    const char *bad = "{\n  \"a\": tru\n}";
    check_load_error(bad, strlen(bad), 128, AF_ESYNTAX, "line 2, column ");
    af_error_t err = {0};
    assert_null(af_json_loads(bad, strlen(bad), 128, &err));
    assert_memory_equal(err.msg, "line 2, column ", 15);
    assert_string_equal(err.where, "");

    check_load_error("{} x", 4, 128, AF_ESYNTAX, "line 1, column ");
    check_load_error("[1] [2]", 7, 128, AF_ESYNTAX, "end of file expected");
    check_load_error("", 0, 128, AF_ESYNTAX, "line 1");
    check_load_error("[1,]", 4, 128, AF_ESYNTAX, "line 1");
    check_load_error("{\"a\":1", 6, 128, AF_ESYNTAX, "line 1");
    check_load_error("[123456789012345678901234567890]", 32, 128, AF_ESYNTAX, "too big");
    check_load_error("[1e400]", 7, 128, AF_ESYNTAX, "overflow");
    check_load_error("[1]\0", 4, 128, AF_ESYNTAX, "line 1");
    /* len, not the NUL, ends the text */
    json_t *v = af_json_loads("[1] garbage", 3, 128, NULL);
    assert_non_null(v);
    json_decref(v);
    assert_null(af_json_loads(NULL, 0, 128, NULL));
}

static void test_invalid_utf8(void **state) {
    (void)state;
    check_load_error("[\"a\xff\"]", 6, 128, AF_EUTF8, "line 1, column ");
    check_load_error("[\"\xc0\xaf\"]", 6, 128, AF_EUTF8, "unable to decode byte");
    check_load_error("[\"\xed\xa0\x80\"]", 7, 128, AF_EUTF8, "line 1");
    check_load_error("{\"\xe2\x82\":1}", 8, 128, AF_EUTF8, "line 1");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reals_shortest),
        cmocka_unit_test(test_reals_read_back),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_string_escapes),
        cmocka_unit_test(test_compact_keeps_order),
        cmocka_unit_test(test_sort),
        cmocka_unit_test(test_pretty),
        cmocka_unit_test(test_pretty_deep_indent),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_loads_scalars_and_nul),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
