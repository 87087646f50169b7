/* test_plugins.c -- the loader refuses what it must and keeps running; a good plugin's node types
 * run through the engine with every host service; a plugin built for ABI 1.0 still loads; late
 * completions after a cancel are dropped; Lua plugins load and run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dsl/dsl.h"
#include "engine/engine.h"
#include "nodes/nodes.h"
#include "plugin/plugin.h"

static uv_loop_t loop;
static char dir[] = "/tmp/af-test-plugins-XXXXXX";
static char fixtures[1024];

static const char *fixture(const char *name) {
    static char path[1200];
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    return path;
}

static const char *write_file(const char *name, const char *text, size_t len) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(text, 1, len, f);
    fclose(f);
    return path;
}

static void expect_refused(const char *path, const char *says) {
    af_error_t err = {0};
    json_t *list = af_plugins_to_json();
    int before = (int)json_array_size(list);
    json_decref(list);
    assert_true(af_plugin_load(path, &err) < 0);
    if (strstr(err.msg, says) == NULL || strstr(err.msg, path) == NULL) {
        fail_msg("refusal of %s says '%s', expected '%s'", path, err.msg, says);
    }
    json_t *after = af_plugins_to_json();
    assert_int_equal((int)json_array_size(after), before);
    json_decref(after);
}

static void test_refusals(void **state) {
    (void)state;
    expect_refused(write_file("notelf.so", "hello, I am text\n", 17), "not an ELF shared object");
    char buf[200];
    FILE *f = fopen(fixture("fixture-good.so"), "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    expect_refused(write_file("truncated.so", buf, n), "cannot load");
    expect_refused(fixture("fixture-no-entry.so"), "no af_plugin_entry symbol");
    expect_refused(fixture("fixture-other-major.so"), "major versions must match");
    expect_refused(fixture("fixture-newer-minor.so"), "upgrade agentflow");
    expect_refused(fixture("fixture-init-fails.so"), "init failed");
    expect_refused(fixture("fixture-dup-type.so"), "duplicate type name 'core.echo'");
    expect_refused(fixture("fixture-bad-version.so"), "is not semver");
    const char *bad = "return { name = 'x', version = '1.0.0', nodes = 5 }";
    expect_refused(write_file("bad.lua", bad, strlen(bad)), "field 'nodes' must be a table");
    expect_refused(write_file("syntax.lua", "return {", 8), "syntax.lua:1:");
    const char *bad_schema = "return { name = 'bs', version = '1.0.0', nodes = { { name = 'bs.x',"
                             " schema = { type = 5 }, execute = function() end } } }";
    expect_refused(write_file("bad_schema.lua", bad_schema, strlen(bad_schema)),
                   "node type 'bs.x' has an invalid schema");
    const char *bad_version = "return { name = 'bv', version = '1.2.3.4', nodes = { { name = "
                              "'bv.x', execute = function() end } } }";
    expect_refused(write_file("bad_version.lua", bad_version, strlen(bad_version)),
                   "'version' must be semver");
    /* the engine's own types are untouched, and a refused plugin left nothing behind */
    assert_non_null(af_registry_find("core.echo"));
    assert_null(af_registry_find("refusal.echo"));
}

static void test_good_and_old_minor_load(void **state) {
    (void)state;
    af_error_t err = {0};
    if (af_plugin_load(fixture("fixture-good.so"), &err) != 0) {
        fail_msg("%s", err.msg);
    }
    if (af_plugin_load(fixture("fixture-abi-1-0.so"), &err) != 0) {
        fail_msg("%s", err.msg);
    }
    /* a second plugin with the same name is refused */
    assert_true(af_plugin_load(fixture("fixture-good.so"), &err) < 0);
    assert_non_null(strstr(err.msg, "already loaded"));
    json_t *all = af_plugins_to_json();
    char *text = json_dumps(all, JSON_COMPACT);
    assert_non_null(strstr(text, "\"name\":\"fixture-good\",\"version\":\"1.2.3\""));
    assert_non_null(strstr(text, "\"triggers\":[\"fixture.ticks\"]"));
    assert_non_null(strstr(text, "\"old.hello\""));
    free(text);
    json_decref(all);
    json_t *info = af_plugin_type_info("fixture.prefix");
    assert_string_equal(json_string_value(json_object_get(info, "plugin")), "fixture-good");
    assert_non_null(json_object_get(json_object_get(info, "config_schema"), "properties"));
    json_decref(info);
}

/* ---- running plugin nodes through the engine ---- */

static const char *test_secret(void *ud, const char *name) {
    (void)ud;
    return strcmp(name, "API_KEY") == 0 ? "k-123456" : NULL;
}

static void done_cb(af_exec_t *x, void *ud) {
    (void)x;
    (*(int *)ud)++;
}

static af_exec_t *run(af_engine_t *e, const char *src) {
    af_exec_t *x = NULL;
    af_error_t err = {0};
    int done = 0;
    const char *path = write_file("wf.lua", src, strlen(src));
    if (af_exec_start_file(e, path, NULL, done_cb, &done, &x, &err) != 0) {
        fail_msg("%s: %s", err.where, err.msg);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done, 1);
    return x;
}

static json_t *output_of(af_exec_t *x, const char *step) {
    json_t *rec = af_exec_to_json(x);
    json_t *o = json_incref(
        json_object_get(json_object_get(json_object_get(rec, "steps"), step), "output"));
    json_decref(rec);
    return o;
}

static void test_plugin_nodes_run(void **state) {
    (void)state;
    af_engine_opts_t eo = {.loop = &loop, .secret = test_secret};
    af_engine_t *e = af_engine_new(&eo);
    af_exec_t *x = run(
        e,
        "local af = require 'agentflow'\n"
        "local wf = af.workflow 'plugins' { retry = { attempts = 2, initial = '1ms' } }\n"
        "wf:step('echo', af.node 'fixture.echo' { a = 1, b = function() return 'two' end })\n"
        "wf:step('async', af.node 'fixture.async' { ms = 20 })\n"
        "wf:step('blocking', af.node 'fixture.blocking' { n = 100 })\n"
        "local s1 = wf:step('set', af.node 'fixture.state' { key = 'k', value = { v = 7 } })\n"
        "wf:step('get', af.node 'fixture.state' { key = 'k' }, { after = s1 })\n"
        "wf:step('secret', af.node 'fixture.secret' { name = 'API_KEY' })\n"
        "wf:step('info', af.node 'fixture.info' {})\n"
        "wf:step('prefix', af.node 'fixture.prefix' { prefix = '>> ', text = 'hi' })\n"
        "wf:step('old', af.node 'old.hello' {})\n"
        "wf:step('failing', af.node 'fixture.fail' { code = 'NOPE' }, { on_error = 'continue' })\n"
        "wf:step('from_lua', function() return af.run(af.node 'fixture.async' { ms = 5 }) end)\n"
        "return wf\n");
    assert_int_equal(af_exec_status(x), AF_EXEC_SUCCEEDED);
    json_t *rec = af_exec_to_json(x);
    char *text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
    const char *expect[] = {"\"echo\":{\"attempts\":1",
                            "{\"a\":1,\"b\":\"two\"}",
                            "{\"waited\":20}",
                            "{\"sum\":5050}",
                            "{\"value\":{\"v\":7}}",
                            "\"length\":8",
                            "\"value\":\"***\"",
                            "\">> hi\"",
                            "{\"built_for\":\"1.0\"}",
                            "\"code\":\"NOPE\"",
                            "\"emitted\":false",
                            "\"kind\":\"fixture\"",
                            "{\"waited\":5}"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        if (strstr(text, expect[i]) == NULL) {
            fail_msg("record lacks %s: %s", expect[i], text);
        }
    }
    assert_null(strstr(text, "k-123456")); /* the secret never shows */
    json_t *info = output_of(x, "info");
    assert_string_equal(json_string_value(json_object_get(info, "step")), "info");
    const char *key = json_string_value(json_object_get(info, "key"));
    assert_int_equal(strlen(key), 36 + strlen(":info")); /* execution id + step, no attempt */
    assert_string_equal(key + 36, ":info");
    json_decref(info);
    json_t *failing = json_object_get(json_object_get(rec, "steps"), "failing");
    assert_int_equal(json_integer_value(json_object_get(failing, "attempts")), 2); /* retried */
    free(text);
    json_decref(rec);
    af_exec_free(x);
    af_engine_free(e);
}

static void test_cancel_drops_late_completion(void **state) {
    (void)state;
    af_engine_opts_t eo = {.loop = &loop};
    af_engine_t *e = af_engine_new(&eo);
    af_exec_t *x = run(e, "local af = require 'agentflow'\n"
                          "local wf = af.workflow 'late' {}\n"
                          "local a = wf:step('slow', af.node 'fixture.async' { ms = 5000 },"
                          " { timeout = '10ms', on_error = 'continue' })\n"
                          "local b = wf:step('late', af.node 'fixture.late' { ms = 40 },"
                          " { timeout = '10ms', on_error = 'continue' })\n"
                          "wf:step('count', af.node 'fixture.state' { key = 'none' },"
                          " { after = { a, b } })\n"
                          "return wf\n");
    assert_int_equal(af_exec_status(x), AF_EXEC_SUCCEEDED);
    json_t *count = output_of(x, "count");
    assert_true(json_integer_value(json_object_get(count, "cancels")) >= 2);
    json_decref(count);
    af_exec_free(x);
    uv_run(&loop, UV_RUN_DEFAULT); /* the late timer fires now: its completion is dropped */
    af_engine_free(e);
}

static void test_create_refuses_definition(void **state) {
    (void)state;
    af_vm_opts_t vo = {.loop = &loop};
    af_error_t err = {0};
    af_vm_t *vm = af_vm_new(&vo, &err);
    const char *src = "local af = require 'agentflow'\n"
                      "local wf = af.workflow 'p' {}\n"
                      "wf:step('p', af.node 'fixture.prefix' { text = 'x' })\n"
                      "return wf\n";
    af_graph_t *g = NULL;
    assert_int_equal(af_dsl_load(vm, "p.lua", src, strlen(src), &g, &err), AF_EDEFINITION);
    assert_string_equal(err.where, "p.lua:3");
    assert_non_null(strstr(err.msg, "'prefix' (a string) is required"));
    /* the type's JSON Schema is checked first, with the path of the bad value */
    const char *typed = "local af = require 'agentflow'\n"
                        "local wf = af.workflow 'p' {}\n"
                        "wf:step('p', af.node 'fixture.prefix' { prefix = 5 })\n"
                        "return wf\n";
    assert_int_equal(af_dsl_load(vm, "q.lua", typed, strlen(typed), &g, &err), AF_EDEFINITION);
    assert_non_null(strstr(err.msg, "$.prefix: must be string"));
    af_vm_free(vm);
}

static int fired;
static int on_fire(void *ud, json_t *input) {
    (void)ud;
    fired += (int)json_integer_value(json_object_get(input, "tick")) > 0;
    return 0;
}

static void test_trigger_type_fires(void **state) {
    (void)state;
    const af_triggerdef_t *t = af_trigger_find("fixture.ticks");
    assert_non_null(t);
    json_t *config = json_pack("{s:i}", "count", 3);
    void *inst = NULL;
    char err[128];
    assert_int_equal(t->start(t, config, on_fire, NULL, &inst, err, sizeof err), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(fired, 3);
    t->stop(t, inst);
    json_decref(config);
}

static void test_lua_plugin(void **state) {
    (void)state;
    const char *plugin = "local af = require 'agentflow'\n"
                         "return { name = 'lp', version = '0.2.0', nodes = {\n"
                         "  { name = 'lp.twice', schema = { type = 'object' }, ports = { 'big' },\n"
                         "    execute = function(config, ctx) af.sleep(5)\n"
                         "      if config.fail then error(af.fatal('asked to fail')) end\n"
                         "      return config.n * 2, config.n > 2 and 'big' or nil end } } }\n";
    af_error_t err = {0};
    if (af_plugin_load(write_file("lp.lua", plugin, strlen(plugin)), &err) != 0) {
        fail_msg("%s", err.msg);
    }
    assert_true(af_plugin_load(write_file("lp2.lua", plugin, strlen(plugin)), &err) < 0);
    assert_non_null(strstr(err.msg, "duplicate type name 'lp.twice'"));
    af_engine_opts_t eo = {.loop = &loop};
    af_engine_t *e = af_engine_new(&eo);
    af_exec_t *x = run(e, "local af = require 'agentflow'\n"
                          "local wf = af.workflow 'lp' {}\n"
                          "wf:step('a', af.node 'lp.twice' { n = 21 })\n"
                          "wf:step('b', af.node 'lp.twice' { fail = true, n = 1 },"
                          " { on_error = 'continue' })\n"
                          "local big = wf:step('c', af.node 'lp.twice' { n = 5 })\n"
                          "wf:step('on_big', function(ctx) return ctx.steps.c end,"
                          " { after = big.big })\n"
                          "wf:step('bad_run', function()\n"
                          "  local ok, e = pcall(af.run, af.node 'fixture.prefix' { prefix = 5 })\n"
                          "  return e.code .. ': ' .. e.message end)\n"
                          "return wf\n");
    assert_int_equal(af_exec_status(x), AF_EXEC_SUCCEEDED);
    json_t *rec = af_exec_to_json(x);
    json_t *a = json_object_get(json_object_get(rec, "steps"), "a");
    assert_int_equal(json_integer_value(json_object_get(a, "output")), 42);
    assert_string_equal(json_string_value(json_object_get(a, "port")), "big");
    json_t *b = json_object_get(json_object_get(rec, "steps"), "b");
    assert_string_equal(json_string_value(json_object_get(json_object_get(b, "error"), "message")),
                        "asked to fail");
    assert_int_equal(json_integer_value(json_object_get(b, "attempts")), 1);
    json_t *on_big = json_object_get(json_object_get(rec, "steps"), "on_big");
    assert_int_equal(json_integer_value(json_object_get(on_big, "output")), 10);
    json_t *bad_run = json_object_get(json_object_get(rec, "steps"), "bad_run");
    assert_non_null(
        strstr(json_string_value(json_object_get(bad_run, "output")),
               "CONFIG: invalid config for 'fixture.prefix': $.prefix: must be string"));
    json_decref(rec);
    af_exec_free(x);
    af_engine_free(e);
}

static int lua_fired, lua_fired_n;
static int on_lua_fire(void *ud, json_t *input) {
    (void)ud;
    lua_fired++;
    lua_fired_n += (int)json_integer_value(json_object_get(input, "n"));
    return 0;
}

/* A Lua plugin's trigger type: start(config, fire) polls with af.sleep until stopped. */
static void test_lua_trigger(void **state) {
    (void)state;
    const char *plugin = "local af = require 'agentflow'\n"
                         "return { name = 'lt', version = '1.0.0', triggers = {\n"
                         "  { name = 'lt.ticks', start = function(config, fire)\n"
                         "      for i = 1, config.count do af.sleep(1) fire({ n = i }) end\n"
                         "      while true do af.sleep(1000) end end } } }\n";
    af_error_t err = {0};
    if (af_plugin_load(write_file("lt.lua", plugin, strlen(plugin)), &err) != 0) {
        fail_msg("%s", err.msg);
    }
    const af_triggerdef_t *t = af_trigger_find("lt.ticks");
    assert_non_null(t);
    json_t *config = json_pack("{s:i}", "count", 3);
    void *inst = NULL;
    char why[256];
    assert_int_equal(t->start(t, config, on_lua_fire, NULL, &inst, why, sizeof why), 0);
    while (lua_fired < 3) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    t->stop(t, inst); /* the polling loop is cancelled: the loop empties */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(lua_fired, 3);
    assert_int_equal(lua_fired_n, 6);
    json_decref(config);
    json_t *info = af_plugin_type_info("lt.ticks");
    assert_string_equal(json_string_value(json_object_get(info, "kind")), "trigger");
    json_decref(info);
}

/* The same services from Lua step code: state, trace, events. */
static void test_lua_services(void **state) {
    (void)state;
    af_engine_opts_t eo = {.loop = &loop};
    af_engine_t *e = af_engine_new(&eo);
    af_exec_t *x =
        run(e, "local af = require 'agentflow'\n"
               "local wf = af.workflow 'lua-services' {}\n"
               "local a = wf:step('a', function()\n"
               "  af.state.set('memory', { turns = af.array { 'hi' } })\n"
               "  af.state.set('short', 1, { ttl = 1 })\n"
               "  af.trace('llm', { tokens = 12 })\n"
               "  return af.emit('thing.done', { id = 7 }) end)\n"
               "wf:step('b', function() af.sleep(5)\n"
               "  return { memory = af.state.get('memory'), short = af.state.get('short'),\n"
               "           none = af.state.get('none') } end, { after = a })\n"
               "return wf\n");
    assert_int_equal(af_exec_status(x), AF_EXEC_SUCCEEDED);
    json_t *rec = af_exec_to_json(x);
    char *text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(strstr(text, "\"b\":{\"memory\":{\"turns\":[\"hi\"]}}")); /* short expired */
    assert_non_null(strstr(text, "\"kind\":\"llm\""));
    assert_non_null(strstr(text, "\"data\":{\"tokens\":12}"));
    free(text);
    json_decref(rec);
    af_exec_free(x);
    af_engine_free(e);
}

int main(void) {
    af_error_t err = {0};
    const char *bin = getenv("AF_BINARY_DIR");
    snprintf(fixtures, sizeof fixtures, "%s/spec/plugins", bin ? bin : "build");
    assert_non_null(mkdtemp(dir));
    uv_loop_init(&loop);
    af_plugins_opts_t po = {.loop = &loop, .load_lua = af_lua_plugin_load};
    af_lua_plugins_set_loop(&loop);
    if (af_nodes_register(&err) != 0 || af_plugins_init(&po, &err) != 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_good_and_old_minor_load),
        cmocka_unit_test(test_plugin_nodes_run),
        cmocka_unit_test(test_cancel_drops_late_completion),
        cmocka_unit_test(test_create_refuses_definition),
        cmocka_unit_test(test_trigger_type_fires),
        cmocka_unit_test(test_lua_plugin),
        cmocka_unit_test(test_lua_services),
        cmocka_unit_test(test_lua_trigger),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    af_plugins_shutdown();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return failed + (system(cmd) != 0);
}
