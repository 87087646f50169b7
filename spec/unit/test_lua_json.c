/* test_lua_json.c -- Lua <-> JSON values (core/lua_json.c): round trips, markers, big integers,
 * every refusal with its path, and a balanced Lua stack after each call. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "core/core.h"
#include "core/lua_json.h"

static int setup(void **state) {
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        return -1;
    }
    luaL_openlibs(L);
    af_lua_json_init(L);
    luaL_getmetatable(L, AF_LUA_ARRAY_MT);
    lua_setglobal(L, "ARRAY_MT");
    luaL_getmetatable(L, AF_LUA_OBJECT_MT);
    lua_setglobal(L, "OBJECT_MT");
    luaL_getmetatable(L, AF_LUA_BIGINT_MT);
    lua_setglobal(L, "BIGINT_MT");
    lua_pushlightuserdata(L, NULL);
    lua_setglobal(L, "null");
    *state = L;
    return 0;
}

static int teardown(void **state) {
    lua_close(*state);
    return 0;
}

/* JSON text -> Lua -> JSON text, compared with `want` (NULL: the same text). */
static void round_trip(lua_State *L, const char *text, const char *want) {
    af_error_t err = {0};
    json_t *v = af_json_loads(text, strlen(text), AF_JSON_MAX_DEPTH, &err);
    if (v == NULL) {
        fail_msg("loading %s: %s", text, err.msg);
    }
    int top = lua_gettop(L);
    assert_int_equal(af_lua_push_json(L, v, AF_JSON_MAX_DEPTH), 0);
    assert_int_equal(lua_gettop(L), top + 1);
    json_t *back = NULL;
    if (af_lua_to_json(L, -1, AF_JSON_MAX_DEPTH, &back, &err) != 0) {
        fail_msg("converting %s back: %s", text, err.msg);
    }
    assert_int_equal(lua_gettop(L), top + 1);
    lua_pop(L, 1);
    /* keys come back in Lua's table order: compare sorted */
    char *out = af_json_dumps(back, AF_JSON_SORT);
    assert_non_null(out);
    json_t *expect = v;
    if (want != NULL) {
        expect = af_json_loads(want, strlen(want), AF_JSON_MAX_DEPTH, NULL);
        assert_non_null(expect);
    }
    char *expect_text = af_json_dumps(expect, AF_JSON_SORT);
    assert_string_equal(out, expect_text);
    if (expect != v) {
        json_decref(expect);
    }
    free(expect_text);
    free(out);
    json_decref(back);
    json_decref(v);
}

/* Runs Lua code returning one value and pushes that value. */
static void eval(lua_State *L, const char *code) {
    if (luaL_dostring(L, code) != 0) {
        fail_msg("lua: %s", lua_tostring(L, -1));
    }
}

/* Converts the value of `code` to JSON text and compares with `want`. */
static void check_lua(lua_State *L, const char *code, const char *want) {
    int top = lua_gettop(L);
    eval(L, code);
    json_t *v = NULL;
    af_error_t err = {0};
    if (af_lua_to_json(L, -1, AF_JSON_MAX_DEPTH, &v, &err) != 0) {
        fail_msg("%s: %s", code, err.msg);
    }
    lua_pop(L, 1);
    assert_int_equal(lua_gettop(L), top);
    char *out = af_json_dumps(v, 0);
    assert_string_equal(out, want);
    free(out);
    json_decref(v);
}

/* Converts the value of `code` with `max_depth`, expecting `code_want` and message `msg`. */
static void check_refused(lua_State *L, const char *code, int max_depth, int code_want,
                          const char *msg) {
    int top = lua_gettop(L);
    eval(L, code);
    json_t *v = (json_t *)1;
    af_error_t err = {0};
    int rc = af_lua_to_json(L, -1, max_depth, &v, &err);
    assert_int_equal(lua_gettop(L), top + 1);
    lua_pop(L, 1);
    assert_null(v);
    assert_int_equal(rc, code_want);
    assert_int_equal(err.code, code_want);
    assert_string_equal(err.msg, msg);
}

static void test_round_trips(void **state) {
    lua_State *L = *state;
    round_trip(L, "null", NULL);
    round_trip(L, "[]", NULL);
    round_trip(L, "{}", NULL);
    round_trip(L, "[null,[],{},[[]],{\"a\":{}}]", NULL);
    round_trip(L, "{\"steps\":{\"a\":[1,2,{\"x\":null}]},\"ok\":true,\"no\":false}", NULL);
    round_trip(L, "[3,2.5,1e+300,-0.125,0]", NULL);
    round_trip(L, "[3.0,1e2]", "[3,100]"); /* Lua has one number type */
    round_trip(L, "[9007199254740992,-9007199254740992]", NULL);
    round_trip(L, "9007199254740993", NULL);
    round_trip(L, "[-9223372036854775808,9223372036854775807,-9007199254740993]", NULL);
    round_trip(L, "\"h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80\"", NULL);
    round_trip(L, "{\"\xc3\xa9\":\"\\u0000\\n\"}", NULL);
    round_trip(L, "{\"1\":\"string key that looks like an index\"}", NULL);
    round_trip(L, "[[[[[[[[[[1]]]]]]]]]]", NULL);
    assert_int_equal(lua_gettop(L), 0);
}

static void test_pushed_values(void **state) {
    lua_State *L = *state;
    const char *text = "[null,3,2.5,\"s\",{},[],9007199254740993,true]";
    json_t *v = af_json_loads(text, strlen(text), 128, NULL);
    assert_non_null(v);
    assert_int_equal(af_lua_push_json(L, v, 128), 0);
    lua_setglobal(L, "v");
    json_decref(v);
    eval(L, "return v[1] == null and type(v[1]) == 'userdata' and v[2] == 3 and v[3] == 2.5 and "
            "v[4] == 's' and getmetatable(v) == ARRAY_MT and getmetatable(v[5]) == OBJECT_MT and "
            "getmetatable(v[6]) == ARRAY_MT and #v == 8 and v[8] == true and "
            "getmetatable(v[7]) == BIGINT_MT and v[7].digits == '9007199254740993' and "
            "tostring(v[7]) == '9007199254740993'");
    assert_true(lua_toboolean(L, -1));
    lua_pop(L, 1);
    assert_int_equal(lua_gettop(L), 0);
}

static void test_lua_values(void **state) {
    lua_State *L = *state;
    check_lua(L, "return {}", "{}");
    check_lua(L, "return setmetatable({}, ARRAY_MT)", "[]");
    check_lua(L, "return setmetatable({}, OBJECT_MT)", "{}");
    check_lua(L, "return {1, 'two', true, null}", "[1,\"two\",true,null]");
    check_lua(L, "return {a = {b = {1, 2.5, 1e300}}}", "{\"a\":{\"b\":[1,2.5,1e+300]}}");
    check_lua(L, "return nil", "null");
    check_lua(L, "return 2^53", "9007199254740992");
    check_lua(L, "return -2^53", "-9007199254740992");
    check_lua(L, "return 2^53 + 2", "9007199254740994.0");
    check_lua(L, "return -0.5", "-0.5");
    check_lua(L, "return setmetatable({digits = '-9223372036854775808'}, BIGINT_MT)",
              "-9223372036854775808");
    /* integer keys that live in the hash part, out of order */
    check_lua(L, "local t = {} t[3] = 'c' t[2] = 'b' t[1] = 'a' return t", "[\"a\",\"b\",\"c\"]");
    check_lua(L, "local t = {} for i = 40, 1, -1 do t[i] = {i} end return t[40] and t",
              "[[1],[2],[3],[4],[5],[6],[7],[8],[9],[10],[11],[12],[13],[14],[15],[16],[17],[18],"
              "[19],[20],[21],[22],[23],[24],[25],[26],[27],[28],[29],[30],[31],[32],[33],[34],"
              "[35],[36],[37],[38],[39],[40]]");
    /* a table with a foreign metatable is judged by its keys */
    check_lua(L, "return setmetatable({x = 1}, {__index = function() error('no') end})",
              "{\"x\":1}");
    check_lua(L, "local s = {} s.a = 1 return s", "{\"a\":1}");
    assert_int_equal(lua_gettop(L), 0);
}

static void test_refusals(void **state) {
    lua_State *L = *state;
    check_refused(L, "return {steps = {a = {1, 2, 3, {x = 0/0}}}}", 128, AF_EINVAL,
                  "number is not finite at $.steps.a[3].x");
    check_refused(L, "return {1/0}", 128, AF_EINVAL, "number is not finite at $[0]");
    check_refused(L, "return -1/0", 128, AF_EINVAL, "number is not finite at $");
    check_refused(L, "return {s = {'ok', 'a\\255b'}}", 128, AF_EUTF8,
                  "invalid UTF-8 in string at $.s[1] (byte 1)");
    check_refused(L, "return {['\\255'] = 1}", 128, AF_EUTF8, "invalid UTF-8 in key at $ (byte 0)");
    check_refused(L, "return {x = {['a\\255'] = {print}}}", 128, AF_EUTF8,
                  "invalid UTF-8 in key at $.x (byte 1)");
    check_refused(L, "return {x = {1, 2, y = 3}}", 128, AF_EINVAL,
                  "table mixes array and object keys at $.x");
    check_refused(L, "return {[1] = 1, a = 2, b = 3, c = 4}", 128, AF_EINVAL,
                  "table mixes array and object keys at $");
    check_refused(L, "return {x = {1, nil, 3}}", 128, AF_EINVAL, "sparse array at $.x");
    check_refused(L, "return {[2] = 'b'}", 128, AF_EINVAL, "sparse array at $");
    check_refused(L, "return {[true] = 1}", 128, AF_EINVAL,
                  "table key of type boolean is not a string or a positive integer at $");
    check_refused(L, "return {[1.5] = 1}", 128, AF_EINVAL,
                  "table key 1.5 is not a string or a positive integer at $");
    check_refused(L, "return {a = {[0] = 'zero', 'one'}}", 128, AF_EINVAL,
                  "table key 0 is not a string or a positive integer at $.a");
    check_refused(L, "return {[{}] = 1}", 128, AF_EINVAL,
                  "table key of type table is not a string or a positive integer at $");
    check_refused(L, "return setmetatable({a = 1}, ARRAY_MT)", 128, AF_EINVAL,
                  "array has a string key at $");
    check_refused(L, "return setmetatable({1}, OBJECT_MT)", 128, AF_EINVAL,
                  "object has a number key at $");
    check_refused(L, "return {f = print}", 128, AF_EINVAL,
                  "cannot convert a function to JSON at $.f");
    check_refused(L, "return {list = {coroutine.create(print)}}", 128, AF_EINVAL,
                  "cannot convert a thread to JSON at $.list[0]");
    check_refused(L, "return {io.stdout}", 128, AF_EINVAL,
                  "cannot convert a userdata to JSON at $[0]");
    check_refused(L, "return {['a b'] = {['x\"y'] = {['\\1'] = print}}}", 128, AF_EINVAL,
                  "cannot convert a function to JSON at $[\"a b\"][\"x\\\"y\"][\"\\x01\"]");
    check_refused(L, "return {[string.rep('k', 70)] = print}", 128, AF_EINVAL,
                  "cannot convert a function to JSON at "
                  "$.kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...");
    check_refused(L, "return setmetatable({digits = '12x'}, BIGINT_MT)", 128, AF_EINVAL,
                  "big integer without valid digits at $");
    check_refused(L, "return {n = setmetatable({digits = '99999999999999999999'}, BIGINT_MT)}", 128,
                  AF_EINVAL, "big integer 99999999999999999999 out of the 64-bit range at $.n");
    assert_int_equal(lua_gettop(L), 0);
}

static void test_depth_limits(void **state) {
    lua_State *L = *state;
    check_refused(L, "return {{{1}}}", 2, AF_ELIMIT, "nested deeper than 2 levels at $[0][0]");
    check_refused(L, "return {a = {}}", 0, AF_ELIMIT, "nested deeper than 0 levels at $");

    /* a table holding itself is caught by the depth limit */
    char want[512] = "nested deeper than 128 levels at $";
    for (int i = 0; i < 128; i++) {
        strcat(want, ".t");
    }
    check_refused(L, "local t = {} t.t = t return t", 128, AF_ELIMIT, want);

    /* a path longer than the path buffer is cut at the front */
    int top = lua_gettop(L);
    eval(L, "local t = {} t.abcdefgh = t return t");
    json_t *v = NULL;
    af_error_t err = {0};
    assert_int_equal(af_lua_to_json(L, -1, 200, &v, &err), AF_ELIMIT);
    assert_memory_equal(err.msg, "nested deeper than 200 levels at $....abcdefgh.", 47);
    assert_true(strlen(err.msg) < sizeof err.msg - 1);
    lua_pop(L, 1);
    assert_int_equal(lua_gettop(L), top);

    /* JSON -> Lua: too deep means nothing pushed */
    json_t *deep = af_json_loads("{\"a\":[[1]]}", 11, 128, NULL);
    assert_non_null(deep);
    lua_pushinteger(L, 7);
    assert_int_equal(af_lua_push_json(L, deep, 2), AF_ELIMIT);
    assert_int_equal(lua_gettop(L), top + 1);
    assert_int_equal(lua_tointeger(L, -1), 7);
    assert_int_equal(af_lua_push_json(L, deep, 3), 0);
    assert_int_equal(lua_gettop(L), top + 2);
    lua_pop(L, 2);
    json_decref(deep);
    assert_int_equal(af_lua_push_json(L, NULL, 3), AF_EINVAL);
    assert_int_equal(lua_gettop(L), top);
}

static void test_negative_index_and_stack(void **state) {
    lua_State *L = *state;
    eval(L, "return {a = 1}");
    lua_pushinteger(L, 1);
    lua_pushinteger(L, 2);
    json_t *v = NULL;
    assert_int_equal(af_lua_to_json(L, -3, 128, &v, NULL), 0);
    assert_int_equal(lua_gettop(L), 3);
    char *out = af_json_dumps(v, 0);
    assert_string_equal(out, "{\"a\":1}");
    free(out);
    json_decref(v);
    assert_int_equal(af_lua_to_json(L, -1, 128, &v, NULL), 0);
    assert_int_equal(json_integer_value(v), 2);
    json_decref(v);
    lua_settop(L, 0);
}

/* A fresh state without af_lua_json_init: pushing creates the markers. */
static void test_lazy_init(void **state) {
    (void)state;
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    json_t *v = af_json_loads("[{\"n\":9223372036854775807}]", 27, 128, NULL);
    assert_int_equal(af_lua_push_json(L, v, 128), 0);
    luaL_getmetatable(L, AF_LUA_ARRAY_MT);
    assert_true(lua_istable(L, -1));
    lua_getmetatable(L, -2);
    assert_true(lua_rawequal(L, -1, -2));
    lua_pop(L, 2);
    json_t *back = NULL;
    assert_int_equal(af_lua_to_json(L, 1, 128, &back, NULL), 0);
    assert_true(json_equal(v, back));
    json_decref(back);
    json_decref(v);
    lua_close(L);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pushed_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lua_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negative_index_and_stack, setup, teardown),
        cmocka_unit_test(test_lazy_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
