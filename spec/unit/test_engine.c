/* test_engine.c -- the orchestrator end to end inside one process: concurrency, the join rule,
 * retries, timeouts, error routing, budgets, cancellation, secrets, sub-workflows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "engine/engine.h"
#include "nodes/nodes.h"

typedef struct events_s {
    char log[64][96];
    int n;
} events_t;

static void on_event(void *ud, const af_event_t *ev) {
    events_t *e = ud;
    if (e->n >= 64) {
        return;
    }
    if (ev->kind == AF_EV_STEP_START) {
        snprintf(e->log[e->n++], 96, "start %s", ev->step);
    } else if (ev->kind == AF_EV_STEP_END) {
        snprintf(e->log[e->n++], 96, "%s %s", af_step_status_name(ev->status), ev->step);
    } else if (ev->kind == AF_EV_STEP_RETRY) {
        snprintf(e->log[e->n++], 96, "retry %s", ev->step);
    } else if (ev->kind == AF_EV_LOG) {
        snprintf(e->log[e->n++], 96, "log %s", ev->text);
    }
}

static int find_event(const events_t *e, const char *what) {
    for (int i = 0; i < e->n; i++) {
        if (strcmp(e->log[i], what) == 0) {
            return i;
        }
    }
    return -1;
}

static char dir[] = "/tmp/af-test-engine-XXXXXX";

static const char *write_wf(const char *name, const char *src) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(src, f);
    fclose(f);
    return path;
}

static const char *test_secret(void *ud, const char *name) {
    (void)ud;
    return strcmp(name, "TOKEN") == 0 ? "s3cr3t-value" : NULL;
}

typedef struct run_s {
    uv_loop_t loop;
    af_engine_t *e;
    events_t ev;
    int done;
} run_t;

static void done_cb(af_exec_t *x, void *ud) {
    (void)x;
    ((run_t *)ud)->done++;
}

static void run_init(run_t *r, int64_t max_instructions, size_t max_memory) {
    memset(r, 0, sizeof *r);
    uv_loop_init(&r->loop);
    af_engine_opts_t o = {.loop = &r->loop,
                          .max_instructions = max_instructions,
                          .max_memory = max_memory,
                          .secret = test_secret,
                          .on_event = on_event,
                          .ud = &r->ev};
    r->e = af_engine_new(&o);
}

static void run_close(run_t *r) {
    af_engine_free(r->e);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r->loop), 0); /* every handle was closed */
}

static af_exec_t *start(run_t *r, const char *name, const char *src, const char *input) {
    af_exec_t *x = NULL;
    af_error_t err = {0};
    json_t *in = input ? json_loads(input, 0, NULL) : NULL;
    int rc = af_exec_start_file(r->e, write_wf(name, src), in, done_cb, r, &x, &err);
    json_decref(in);
    if (rc != 0) {
        fail_msg("start failed: %s %s", err.where, err.msg);
    }
    return x;
}

static af_exec_t *run_one(run_t *r, const char *src, const char *input) {
    af_exec_t *x = start(r, "wf.lua", src, input);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(r->done, 1);
    return x;
}

static json_t *step_json(af_exec_t *x, const char *step) {
    json_t *rec = af_exec_to_json(x);
    json_t *s = json_incref(json_object_get(json_object_get(rec, "steps"), step));
    json_decref(rec);
    return s;
}

static const char *HEAD = "local af = require 'agentflow'\n";

static char *src(const char *body) {
    static char buf[8192];
    snprintf(buf, sizeof buf, "%s%s", HEAD, body);
    return buf;
}

/* ---- tests ---- */

static void test_concurrent_branches_overlap(void **state) {
    (void)state;
    run_t r;
    run_init(&r, 0, 0);
    af_exec_t *x = run_one(&r,
                           src("local wf = af.workflow 'par' {}\n"
                               "local a = wf:step('a', function() return 1 end)\n"
                               "wf:step('d1', af.delay '100ms', { after = a })\n"
                               "wf:step('d2', function() af.sleep(100) return 2 end,"
                               " { after = a })\n"
                               "return wf\n"),
                           NULL);
    assert_int_equal(af_exec_status(x), AF_EXEC_SUCCEEDED);
    int s1 = find_event(&r.ev, "start d1"), s2 = find_event(&r.ev, "start d2");
    int e1 = find_event(&r.ev, "succeeded d1"), e2 = find_event(&r.ev, "succeeded d2");
    assert_true(s1 >= 0 && s2 >= 0 && e1 >= 0 && e2 >= 0);
    assert_true(s1 < e2 && s2 < e1); /* both were running at once */
    json_t *res = af_exec_result(x);
    assert_int_equal(json_integer_value(json_object_get(res, "d2")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "d1"), "delayed_ms")),
                     100);
    json_decref(res);
    af_exec_free(x);
    run_close(&r);
}

static void test_condition_and_skip_propagation(void **state) {
    (void)state;
    run_t r;
    run_init(&r, 0, 0);
    af_exec_t *x =
        run_one(&r,
                src("local wf = af.workflow 'cond' {}\n"
                    "local c = wf:step('c', af.condition(function(ctx) return ctx.trigger.n > 1"
                    " end))\n"
                    "local y = wf:step('y', function() return 'yes' end, { after = c.yes })\n"
                    "local n = wf:step('n', function() return 'no' end, { after = c.no })\n"
                    "local n2 = wf:step('n2', function() return 'no2' end, { after = n })\n"
                    "wf:step('any', function(ctx) return ctx.steps.y or ctx.steps.n2 end,"
                    " { after = { y, n2 } })\n"
                    "wf:step('all', function() return 'all' end, { after = { y, n2 },"
                    " join = 'all' })\n"
                    "return wf\n"),
                "{\"n\": 5}");
    assert_int_equal(af_exec_status(x), AF_EXEC_SUCCEEDED);
    assert_true(find_event(&r.ev, "skipped n") >= 0);
    assert_true(find_event(&r.ev, "skipped n2") >= 0); /* all its dependencies skipped */
    assert_true(find_event(&r.ev, "skipped all") >= 0);
    json_t *any = step_json(x, "any");
    assert_string_equal(json_string_value(json_object_get(any, "output")), "yes");
    json_decref(any);
    json_t *c = step_json(x, "c");
    assert_string_equal(json_string_value(json_object_get(c, "port")), "yes");
    json_decref(c);
    af_exec_free(x);
    run_close(&r);
}

static void test_retry_until_success(void **state) {
    (void)state;
    run_t r;
    run_init(&r, 0, 0);
    af_exec_t *x = run_one(
        &r,
        src("local wf = af.workflow 'retry' { retry = { attempts = 3, initial = '5ms' } }\n"
            "wf:step('flaky', af.node 'core.fail' { message = 'boom', until_attempt = 3 })\n"
            "return wf\n"),
        NULL);
    assert_int_equal(af_exec_status(x), AF_EXEC_SUCCEEDED);
    json_t *s = step_json(x, "flaky");
    assert_int_equal(json_integer_value(json_object_get(s, "attempts")), 3);
    json_decref(s);
    assert_true(find_event(&r.ev, "retry flaky") >= 0);
    af_exec_free(x);
    run_close(&r);
}

static void test_non_retryable_errors(void **state) {
    (void)state;
    run_t r;
    run_init(&r, 0, 0);
    af_exec_t *x =
        run_one(&r,
                src("local wf = af.workflow 'nr' { retry = { attempts = 5, initial = '1ms',"
                    " non_retryable = { 'BAD_INPUT' } } }\n"
                    "local a = wf:step('a', af.node 'core.fail' { code = 'BAD_INPUT' })\n"
                    "wf:step('b', function() error(af.fatal('no point retrying')) end)\n"
                    "return wf\n"),
                NULL);
    assert_int_equal(af_exec_status(x), AF_EXEC_FAILED);
    json_t *a = step_json(x, "a");
    json_t *b = step_json(x, "b");
    /* one of them failed first and cancelled the other; the failing one ran once */
    int failed_attempts = strcmp(json_string_value(json_object_get(a, "status")), "failed") == 0
                              ? (int)json_integer_value(json_object_get(a, "attempts"))
                              : (int)json_integer_value(json_object_get(b, "attempts"));
    assert_int_equal(failed_attempts, 1);
    json_decref(a);
    json_decref(b);
    af_exec_free(x);
    run_close(&r);
}

static void test_step_timeout_cancels(void **state) {
    (void)state;
    run_t r;
    run_init(&r, 0, 0);
    af_exec_t *x = run_one(&r,
                           src("local wf = af.workflow 'to' {}\n"
                               "wf:step('slow', function() af.sleep(5000) return 1 end,"
                               " { timeout = '30ms', retry = { attempts = 2, initial = '1ms' } })\n"
                               "return wf\n"),
                           NULL);
    assert_int_equal(af_exec_status(x), AF_EXEC_FAILED);
    assert_string_equal(af_exec_fault(x)->code, "TIMEOUT");
    json_t *s = step_json(x, "slow");
    assert_int_equal(json_integer_value(json_object_get(s, "attempts")), 2);
    json_decref(s);
    af_exec_free(x);
    run_close(&r);
}

static void test_execution_timeout(void **state) {
    (void)state;
    run_t r;
    run_init(&r, 0, 0);
    af_exec_t *x = run_one(&r,
                           src("local wf = af.workflow 'xt' { timeout = '40ms' }\n"
                               "local a = wf:step('a', af.delay '10s')\n"
                               "wf:step('b', function() af.sleep(10000) end)\n"
                               "return wf\n"),
                           NULL);
    assert_int_equal(af_exec_status(x), AF_EXEC_FAILED);
    assert_non_null(strstr(af_exec_fault(x)->message, "execution timed out"));
    assert_true(find_event(&r.ev, "cancelled a") >= 0);
    assert_true(find_event(&r.ev, "cancelled b") >= 0);
    af_exec_free(x);
    run_close(&r);
}

static void test_on_error_routes_and_continue(void **state) {
    (void)state;
    run_t r;
    run_init(&r, 0, 0);
    af_exec_t *x = run_one(
        &r,
        src("local wf = af.workflow 'oe' {}\n"
            "local a = wf:step('a', function() error('disk full') end, { on_error = 'h' })\n"
            "wf:step('after_a', function() return 'never' end, { after = a })\n"
            "wf:step('h', function(ctx) return ctx.error.step .. ': ' .. ctx.error.message end)\n"
            "local c = wf:step('c', af.node 'core.fail' { retryable = false },"
            " { on_error = 'continue' })\n"
            "wf:step('after_c', function(ctx) return ctx.steps.c == af.null end, { after = c })\n"
            "return wf\n"),
        NULL);
    assert_int_equal(af_exec_status(x), AF_EXEC_SUCCEEDED);
    json_t *h = step_json(x, "h");
    assert_non_null(strstr(json_string_value(json_object_get(h, "output")), "a: "));
    assert_non_null(strstr(json_string_value(json_object_get(h, "output")), "disk full"));
    json_decref(h);
    assert_true(find_event(&r.ev, "skipped after_a") >= 0);
    json_t *ac = step_json(x, "after_c");
    assert_true(json_is_true(json_object_get(ac, "output")));
    json_decref(ac);
    af_exec_free(x);
    run_close(&r);
}

static void test_runaway_step_stopped_others_go_on(void **state) {
    (void)state;
    run_t r;
    run_init(&r, 2000000, 0);
    af_exec_t *bad = start(&r, "bad.lua",
                           src("local wf = af.workflow 'spin' {}\n"
                               "wf:step('spin', function() af.sleep(5) while true do end end)\n"
                               "return wf\n"),
                           NULL);
    af_exec_t *good = start(&r, "good.lua",
                            src("local wf = af.workflow 'calm' {}\n"
                                "wf:step('wait', function() af.sleep(30) return 'fine' end)\n"
                                "return wf\n"),
                            NULL);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    assert_int_equal(r.done, 2);
    assert_int_equal(af_exec_status(bad), AF_EXEC_FAILED);
    assert_string_equal(af_exec_fault(bad)->code, "BUDGET");
    assert_non_null(strstr(af_exec_fault(bad)->message, "instruction budget"));
    assert_int_equal(af_exec_status(good), AF_EXEC_SUCCEEDED);
    af_exec_free(bad);
    af_exec_free(good);
    run_close(&r);
}

/* Executions of the same workflow share its VM: each keeps its own ctx, and a runaway one is
 * stopped alone. */
static void test_shared_vm_isolation(void **state) {
    (void)state;
    run_t r;
    run_init(&r, 2000000, 0);
    const char *wf = "local af = require 'agentflow'\n"
                     "local wf = af.workflow 'shared' {}\n"
                     "local a = wf:step('a', function(ctx) af.sleep(5)\n"
                     "  if ctx.trigger.spin then while true do end end\n"
                     "  return ctx.trigger.n end)\n"
                     "wf:step('b', function(ctx) af.sleep(10) return ctx.steps.a * 10 end,"
                     " { after = a })\n"
                     "return wf\n";
    af_exec_t *x[3];
    const char *inputs[3] = {"{\"n\": 1}", "{\"spin\": true}", "{\"n\": 2}"};
    const char *path = write_wf("shared.lua", wf); /* once: one version, one VM for all three */
    for (int i = 0; i < 3; i++) {
        af_error_t err = {0};
        json_t *in = json_loads(inputs[i], 0, NULL);
        assert_int_equal(af_exec_start_file(r.e, path, in, done_cb, &r, &x[i], &err), 0);
        json_decref(in);
    }
    /* one loaded version: the same graph (and VM) serves all three */
    assert_ptr_equal(af_exec_graph(x[0]), af_exec_graph(x[1]));
    assert_ptr_equal(af_exec_graph(x[0]), af_exec_graph(x[2]));
    uv_run(&r.loop, UV_RUN_DEFAULT);
    assert_int_equal(r.done, 3);
    assert_int_equal(af_exec_status(x[0]), AF_EXEC_SUCCEEDED);
    assert_int_equal(af_exec_status(x[1]), AF_EXEC_FAILED);
    assert_string_equal(af_exec_fault(x[1])->code, "BUDGET");
    assert_int_equal(af_exec_status(x[2]), AF_EXEC_SUCCEEDED);
    json_t *b0 = step_json(x[0], "b"), *b2 = step_json(x[2], "b");
    assert_int_equal(json_integer_value(json_object_get(b0, "output")), 10);
    assert_int_equal(json_integer_value(json_object_get(b2, "output")), 20);
    json_decref(b0);
    json_decref(b2);
    for (int i = 0; i < 3; i++) {
        af_exec_free(x[i]);
    }
    run_close(&r);
}

static void test_budget_not_swallowed_by_pcall(void **state) {
    (void)state;
    run_t r;
    run_init(&r, 1000000, 0);
    af_exec_t *x = run_one(&r,
                           src("local wf = af.workflow 'sneaky' {}\n"
                               "wf:step('s', function()\n"
                               "  while true do pcall(function() while true do end end) end\n"
                               "end)\n"
                               "return wf\n"),
                           NULL);
    assert_int_equal(af_exec_status(x), AF_EXEC_FAILED);
    assert_string_equal(af_exec_fault(x)->code, "BUDGET");
    af_exec_free(x);
    run_close(&r);
}

static void test_memory_budget(void **state) {
    (void)state;
    run_t r;
    run_init(&r, 0, 8u << 20);
    af_exec_t *x = run_one(&r,
                           src("local wf = af.workflow 'hog' {}\n"
                               "wf:step('hog', function()\n"
                               "  local t = {}\n"
                               "  while true do t[#t + 1] = ('x'):rep(4096) .. #t end\n"
                               "end)\n"
                               "return wf\n"),
                           NULL);
    assert_int_equal(af_exec_status(x), AF_EXEC_FAILED);
    assert_non_null(strstr(af_exec_fault(x)->message, "memory budget"));
    af_exec_free(x);
    run_close(&r);
}

/* Host-side copies of a big result happen outside the budget check: no unprotected error. */
static void test_big_output_near_memory_budget(void **state) {
    (void)state;
    run_t r;
    run_init(&r, 0, 8u << 20);
    af_exec_t *x = run_one(&r,
                           src("local wf = af.workflow 'big' {}\n"
                               "local a = wf:step('a', function()\n"
                               "  local t = {} for i = 1, 2500 do t[i] = ('y'):rep(1000) .. i end\n"
                               "  return t end)\n"
                               "wf:step('b', function(ctx) local t = {} for i = 1, 9000 do"
                               " t[i] = ctx.steps.a[i % 2500 + 1] .. i end return #t end,"
                               " { after = a })\n"
                               "return wf\n"),
                           NULL);
    assert_int_equal(af_exec_status(x), AF_EXEC_FAILED);
    assert_non_null(strstr(af_exec_fault(x)->message, "memory budget"));
    af_exec_free(x);
    run_close(&r);
}

static void test_cancel_stops_waits(void **state) {
    (void)state;
    run_t r;
    run_init(&r, 0, 0);
    af_exec_t *x = start(&r, "wf.lua",
                         src("local wf = af.workflow 'long' {}\n"
                             "wf:step('d', af.delay '1h')\n"
                             "wf:step('s', function() af.sleep(3600000) end)\n"
                             "wf:step('f', af.foreach { items = {1, 2, 3}, concurrency = 3,"
                             " body = function(i) af.sleep(3600000) end })\n"
                             "return wf\n"),
                         NULL);
    uv_run(&r.loop, UV_RUN_NOWAIT);
    af_exec_cancel(x, "by test");
    uv_run(&r.loop, UV_RUN_DEFAULT); /* returns because nothing is left waiting */
    assert_int_equal(r.done, 1);
    assert_int_equal(af_exec_status(x), AF_EXEC_CANCELLED);
    af_exec_free(x);
    run_close(&r);
}

static void test_foreach_loop_parallel(void **state) {
    (void)state;
    run_t r;
    run_init(&r, 0, 0);
    af_exec_t *x = run_one(
        &r,
        src("local wf = af.workflow 'flow' {}\n"
            "wf:step('fe', af.foreach { items = function(ctx) return ctx.trigger.xs end,"
            " concurrency = 2, body = function(v, i) af.sleep(10 - v) return v * 10 + i end })\n"
            "wf:step('lp', af.loop { init = 0, max = 10, condition = function(s) return s < 5 end,"
            " body = function(s) return s + 1 end })\n"
            "wf:step('pg', af.parallel { a = function() af.sleep(5) return 'A' end,"
            " b = af.node 'core.echo' { v = function(ctx) return #ctx.trigger.xs end } })\n"
            "wf:step('bound', af.loop { init = 0, max = 3, condition = function() return true end,"
            " body = function(s) return s end }, { on_error = 'continue' })\n"
            "return wf\n"),
        "{\"xs\": [3, 1, 2]}");
    assert_int_equal(af_exec_status(x), AF_EXEC_SUCCEEDED);
    json_t *res = af_exec_result(x);
    char *text = json_dumps(res, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(text, "{\"fe\":[31,12,23],\"lp\":5,\"pg\":{\"a\":\"A\",\"b\":{\"v\":3}}}");
    free(text);
    json_decref(res);
    json_t *b = step_json(x, "bound");
    assert_non_null(strstr(
        json_string_value(json_object_get(json_object_get(b, "error"), "message")), "bound of 3"));
    json_decref(b);
    af_exec_free(x);
    run_close(&r);
}

/* A failing branch stops the group at once: the other branch would sleep for an hour. */
static void test_parallel_fails_fast(void **state) {
    (void)state;
    run_t r;
    run_init(&r, 0, 0);
    af_exec_t *x = run_one(&r,
                           src("local wf = af.workflow 'ff' {}\n"
                               "wf:step('p', af.parallel {\n"
                               "  a = function() af.sleep(3600000) return 1 end,\n"
                               "  b = function() af.sleep(5) error('b broke') end },"
                               " { on_error = 'continue' })\n"
                               "wf:step('f', af.foreach { items = {1, 2, 3}, concurrency = 3,\n"
                               "  body = function(i) if i == 3 then error('item 3') end\n"
                               "    af.sleep(3600000) end }, { on_error = 'continue' })\n"
                               "return wf\n"),
                           NULL);
    assert_int_equal(af_exec_status(x), AF_EXEC_SUCCEEDED);
    json_t *p = step_json(x, "p"), *f = step_json(x, "f");
    assert_non_null(strstr(
        json_string_value(json_object_get(json_object_get(p, "error"), "message")), "b broke"));
    assert_non_null(strstr(
        json_string_value(json_object_get(json_object_get(f, "error"), "message")), "item 3"));
    json_decref(p);
    json_decref(f);
    af_exec_free(x);
    run_close(&r);
}

static void test_secrets_masked(void **state) {
    (void)state;
    run_t r;
    run_init(&r, 0, 0);
    af_exec_t *x = run_one(
        &r,
        src("local wf = af.workflow 'sec' {}\n"
            "wf:step('a', function() local v = af.secret('TOKEN'):get() af.log('token ' .. v)"
            " return { t = v, len = #v } end)\n"
            "wf:step('b', af.node 'core.echo' { auth = af.secret 'TOKEN' })\n"
            "return wf\n"),
        NULL);
    assert_int_equal(af_exec_status(x), AF_EXEC_SUCCEEDED);
    json_t *rec = af_exec_to_json(x);
    char *text = json_dumps(rec, 0);
    assert_null(strstr(text, "s3cr3t-value"));
    assert_non_null(strstr(text, "***"));
    assert_non_null(strstr(text, "\"len\": 12"));
    free(text);
    json_decref(rec);
    assert_true(find_event(&r.ev, "log token ***") >= 0);
    af_exec_free(x);
    run_close(&r);
}

static void test_sub_workflow_and_depth(void **state) {
    (void)state;
    run_t r;
    run_init(&r, 0, 0);
    write_wf("child.lua", src("local wf = af.workflow 'child' { sample_input = { n = 5 } }\n"
                              "wf:step('double', function(ctx) return ctx.trigger.n * 2 end)\n"
                              "return wf\n"));
    write_wf("self.lua", src("local wf = af.workflow 'self' {}\n"
                             "wf:step('again', af.call 'self.lua')\n"
                             "return wf\n"));
    af_exec_t *x = run_one(&r,
                           src("local wf = af.workflow 'parent' {}\n"
                               "wf:step('c', af.call 'child.lua' { input = function(ctx)"
                               " return { n = 21 } end })\n"
                               "wf:step('s', af.call 'self.lua', { on_error = 'continue' })\n"
                               "wf:step('each', af.foreach { items = {1, 2}, concurrency = 2,"
                               " body = af.call 'child.lua' { input = function(ctx)"
                               " return { n = ctx.item * ctx.index } end } })\n"
                               "wf:step('run', function() return af.run(af.node 'core.echo'"
                               " { v = 7 }).v + af.run(af.call 'child.lua').double end)\n"
                               "return wf\n"),
                           NULL);
    assert_int_equal(af_exec_status(x), AF_EXEC_SUCCEEDED);
    json_t *c = step_json(x, "c");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(c, "output"), "double")),
                     42);
    json_decref(c);
    json_t *s = step_json(x, "s");
    assert_string_equal(json_string_value(json_object_get(json_object_get(s, "error"), "code")),
                        "CALL_DEPTH");
    json_decref(s);
    json_t *each = step_json(x, "each"), *run = step_json(x, "run");
    char *text = json_dumps(json_object_get(each, "output"), JSON_COMPACT);
    assert_string_equal(text, "[{\"double\":2},{\"double\":8}]");
    free(text);
    /* child.lua without input runs on its sample_input {n = 5} */
    assert_int_equal(json_integer_value(json_object_get(run, "output")), 17);
    json_decref(each);
    json_decref(run);
    af_exec_free(x);
    run_close(&r);
}

static void test_definition_errors_have_location(void **state) {
    (void)state;
    run_t r;
    run_init(&r, 0, 0);
    af_exec_t *x = NULL;
    af_error_t err = {0};
    const char *path = write_wf("bad.lua", src("local wf = af.workflow 'bad' {}\n"
                                               "wf:step('a', function() return 1 end,"
                                               " { after = 'ghost' })\n"
                                               "return wf\n"));
    int rc = af_exec_start_file(r.e, path, NULL, done_cb, &r, &x, &err);
    assert_int_equal(rc, AF_EDEFINITION);
    assert_non_null(strstr(err.where, "bad.lua:3"));
    assert_non_null(strstr(err.msg, "ghost"));
    assert_int_equal(r.done, 0);
    run_close(&r);
}

/* ---- the storage seam: checkpoints answered later, resuming, parking ---- */

typedef struct seam_s {
    run_t r;
    uv_timer_t answer; /* answers the pending checkpoints, one loop turn later */
    af_exec_t *x;
    int pending[8], npending;
    int saved;
    char order[256]; /* "save:a start:b ..." */
    int64_t wake_at;
    int waits, quiet;
    af_exec_t *quiet_x;
} seam_t;

static void seam_answer(uv_timer_t *t) {
    seam_t *s = t->data;
    int n = s->npending;
    s->npending = 0;
    for (int i = 0; i < n; i++) {
        s->saved++;
        af_exec_checkpoint_done(s->x, s->pending[i], 0);
    }
}

static int seam_checkpoint(void *ud, const af_exec_t *x, int step, const json_t *output) {
    seam_t *s = ud;
    (void)output;
    s->x = (af_exec_t *)x;
    s->pending[s->npending++] = step;
    size_t len = strlen(s->order);
    snprintf(s->order + len, sizeof s->order - len, "save:%s ", af_exec_graph(x)->steps[step].name);
    uv_timer_start(&s->answer, seam_answer, 1, 0);
    return AF_CHECKPOINT_PENDING;
}

static void seam_event(void *ud, const af_event_t *ev) {
    seam_t *s = ud;
    on_event(&s->r.ev, ev);
    if (ev->kind == AF_EV_STEP_START) {
        size_t len = strlen(s->order);
        snprintf(s->order + len, sizeof s->order - len, "start:%s ", ev->step);
    }
}

static void seam_wait(void *ud, const af_exec_t *x, int step, int64_t wake_at) {
    seam_t *s = ud;
    (void)x;
    (void)step;
    s->waits++;
    s->wake_at = wake_at;
}

static void seam_quiet(void *ud, af_exec_t *x, int64_t wake_at) {
    seam_t *s = ud;
    s->quiet++;
    s->quiet_x = x;
    s->wake_at = wake_at;
    uv_stop(&s->r.loop); /* park from outside the engine's call */
}

static void seam_init(seam_t *s) {
    memset(s, 0, sizeof *s);
    uv_loop_init(&s->r.loop);
    af_engine_opts_t o = {.loop = &s->r.loop,
                          .on_event = seam_event,
                          .checkpoint = seam_checkpoint,
                          .on_wait = seam_wait,
                          .on_quiet = seam_quiet,
                          .ud = s};
    s->r.e = af_engine_new(&o);
    uv_timer_init(&s->r.loop, &s->answer);
    s->answer.data = s;
}

static void seam_close(seam_t *s) {
    uv_close((uv_handle_t *)&s->answer, NULL);
    run_close(&s->r);
}

static const char *SEAM_WF = "local wf = af.workflow 'seam' {}\n"
                             "local a = wf:step('a', function(ctx) return 5 end)\n"
                             "local c = wf:step('c', af.condition(function(ctx) return ctx.steps.a > 1 end), { after = a })\n"
                             "wf:step('b', function(ctx) return ctx.steps.a * 2 end, { after = c.yes })\n"
                             "wf:step('n', function(ctx) return 0 end, { after = c.no })\n"
                             "return wf\n";

static void test_checkpoints_answered_later(void **state) {
    (void)state;
    seam_t s;
    seam_init(&s);
    af_exec_t *x = NULL;
    af_error_t err = {0};
    assert_int_equal(af_exec_start_file(s.r.e, write_wf("seam.lua", src(SEAM_WF)), NULL, done_cb,
                                        &s.r, &x, &err),
                     0);
    uv_run(&s.r.loop, UV_RUN_DEFAULT);
    assert_int_equal(s.r.done, 1);
    assert_int_equal(af_exec_status(x), AF_EXEC_SUCCEEDED);
    assert_int_equal(s.saved, 3); /* a, c, b -- n was skipped */
    /* each step starts only once the one before it is saved */
    assert_string_equal(s.order, "start:a save:a start:c save:c start:b save:b ");
    assert_string_equal(af_exec_step_port(x, af_graph_find(af_exec_graph(x), "c")), "yes");
    af_exec_free(x);
    seam_close(&s);
}

static void test_resume_from_checkpoints(void **state) {
    (void)state;
    seam_t s;
    seam_init(&s);
    /* a and c settled before: a's output is 7 (its function would return 5), c took "no" */
    json_t *resume = json_loads("{\"a\": {\"status\": \"succeeded\", \"output\": 7, \"attempts\": 1},"
                                " \"c\": {\"status\": \"succeeded\", \"output\": false,"
                                " \"port\": \"no\", \"attempts\": 1}}",
                                0, NULL);
    af_exec_start_t st = {.file = write_wf("seam.lua", src(SEAM_WF)),
                          .resume = resume,
                          .on_done = done_cb,
                          .ud = &s.r};
    af_exec_t *x = NULL;
    af_error_t err = {0};
    assert_int_equal(af_exec_start(s.r.e, &st, &x, &err), 0);
    json_decref(resume);
    uv_run(&s.r.loop, UV_RUN_DEFAULT);
    assert_int_equal(af_exec_status(x), AF_EXEC_SUCCEEDED);
    assert_string_equal(s.order, "start:n save:n "); /* a and c were not run again */
    json_t *result = af_exec_result(x);
    assert_int_equal(json_integer_value(json_object_get(result, "n")), 0);
    assert_null(json_object_get(result, "b")); /* the stored port decided */
    json_decref(result);
    af_exec_free(x);
    seam_close(&s);
}

static void test_delay_is_durable_and_parks(void **state) {
    (void)state;
    seam_t s;
    seam_init(&s);
    const char *wf = "local wf = af.workflow 'nap' {}\n"
                     "local d = wf:step('d', af.delay '10s')\n"
                     "wf:step('after', function() return 1 end, { after = d })\n"
                     "return wf\n";
    af_exec_t *x = NULL;
    af_error_t err = {0};
    int64_t before = af_wall_ms();
    assert_int_equal(
        af_exec_start_file(s.r.e, write_wf("nap.lua", src(wf)), NULL, done_cb, &s.r, &x, &err), 0);
    uv_run(&s.r.loop, UV_RUN_DEFAULT); /* stops when it is quiet */
    assert_int_equal(s.waits, 1);
    assert_true(s.wake_at >= before + 10000 && s.wake_at < before + 11000);
    assert_int_equal(s.quiet, 1);
    assert_ptr_equal(s.quiet_x, x);
    assert_int_equal(af_exec_park(x), 0); /* freed; on_done never comes */
    uv_run(&s.r.loop, UV_RUN_DEFAULT);
    assert_int_equal(s.r.done, 0);
    /* resumed later with the recorded wake-up time (already past): the delay ends at once */
    json_t *resume = json_pack("{s:{s:s, s:i, s:I}}", "d", "status", "waiting", "attempts", 1,
                               "wake_at", (json_int_t)(af_wall_ms() - 5));
    af_exec_start_t st = {
        .file = write_wf("nap.lua", src(wf)), .resume = resume, .on_done = done_cb, .ud = &s.r};
    int64_t t0 = af_wall_ms();
    assert_int_equal(af_exec_start(s.r.e, &st, &x, &err), 0);
    json_decref(resume);
    for (int i = 0; i < 10 && s.r.done == 0; i++) { /* quiet again for a moment: not parked */
        uv_run(&s.r.loop, UV_RUN_DEFAULT);
    }
    assert_int_equal(s.r.done, 1);
    assert_int_equal(af_exec_status(x), AF_EXEC_SUCCEEDED);
    assert_true(af_wall_ms() - t0 < 2000);
    assert_int_equal(s.waits, 1); /* the resumed wait was not stored a second time */
    af_exec_free(x);
    seam_close(&s);
}

int main(void) {
    af_error_t err;
    assert_non_null(mkdtemp(dir));
    if (af_nodes_register(&err) != 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_branches_overlap),
        cmocka_unit_test(test_condition_and_skip_propagation),
        cmocka_unit_test(test_retry_until_success),
        cmocka_unit_test(test_non_retryable_errors),
        cmocka_unit_test(test_step_timeout_cancels),
        cmocka_unit_test(test_execution_timeout),
        cmocka_unit_test(test_on_error_routes_and_continue),
        cmocka_unit_test(test_runaway_step_stopped_others_go_on),
        cmocka_unit_test(test_shared_vm_isolation),
        cmocka_unit_test(test_budget_not_swallowed_by_pcall),
        cmocka_unit_test(test_memory_budget),
        cmocka_unit_test(test_big_output_near_memory_budget),
        cmocka_unit_test(test_cancel_stops_waits),
        cmocka_unit_test(test_foreach_loop_parallel),
        cmocka_unit_test(test_parallel_fails_fast),
        cmocka_unit_test(test_secrets_masked),
        cmocka_unit_test(test_sub_workflow_and_depth),
        cmocka_unit_test(test_definition_errors_have_location),
        cmocka_unit_test(test_checkpoints_answered_later),
        cmocka_unit_test(test_resume_from_checkpoints),
        cmocka_unit_test(test_delay_is_durable_and_parks),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) {
        return 1;
    }
    return failed;
}
