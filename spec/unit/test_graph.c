/* test_graph.c -- unit tests of host/graph: building graphs, validation errors and messages,
 * topological order, dependents, large graphs, and the JSON, text and Graphviz forms. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "graph/graph.h"

/* ---- helpers ---- */

static af_step_t *step(af_graph_t *g, const char *name, const char *type, const char *where) {
    af_error_t err = {0};
    af_step_t *s = af_graph_add_step(g, name, type, where, &err);
    if (s == NULL) {
        fail_msg("add_step %s: %s", name, err.msg);
    }
    return s;
}

/* Adds a step with the given dependencies, "from" or "from.port". */
static af_step_t *stepv(af_graph_t *g, const char *name, const char *where, int ndeps, ...) {
    af_step_t *s = step(g, name, "lua", where);
    va_list ap;
    va_start(ap, ndeps);
    for (int i = 0; i < ndeps; i++) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s", va_arg(ap, const char *));
        char *dot = strchr(buf, '.');
        if (dot != NULL) {
            *dot = '\0';
        }
        assert_int_equal(af_step_add_dep(s, buf, dot ? dot + 1 : NULL), 0);
    }
    va_end(ap);
    return s;
}

static int starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int idx(const af_graph_t *g, const char *name) {
    int i = af_graph_find(g, name);
    assert_true(i >= 0);
    return i;
}

/* Validation must fail with code, at where, with exactly msg. */
static void expect_invalid(af_graph_t *g, int code, const char *where, const char *msg) {
    af_error_t err = {0};
    assert_int_equal(af_graph_validate(g, &err), code);
    assert_int_equal(err.code, code);
    assert_string_equal(err.where, where);
    assert_string_equal(err.msg, msg);
    assert_null(g->order);
}

static void expect_valid(af_graph_t *g) {
    af_error_t err = {0};
    int rc = af_graph_validate(g, &err);
    if (rc != 0) {
        fail_msg("validate: %s: %s", err.where, err.msg);
    }
    assert_non_null(g->order);
}

/* Runs a printer into memory; returns a malloc'd NUL-terminated text. */
static char *print_to_string(void (*print)(const af_graph_t *, FILE *), const af_graph_t *g) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    print(g, f);
    assert_int_equal(fclose(f), 0);
    assert_non_null(text);
    return text;
}

/* A small but complete workflow: a condition with two branches, an error handler, triggers. */
static af_graph_t *triage_graph(void) {
    af_graph_t *g = af_graph_new("triage");
    g->description = strdup("Route tickets");
    g->file = strdup("triage.lua");
    assert_int_equal(
        af_graph_add_trigger(g, "webhook", "triage.lua:3", json_pack("{s:s}", "path", "/triage")),
        0);
    assert_int_equal(af_graph_add_trigger(g, "manual", "triage.lua:4", NULL), 0);
    af_step_t *s = stepv(g, "fetch", "triage.lua:6", 0);
    s->timeout_ms = 2500;
    s = step(g, "check", "condition", "triage.lua:8");
    assert_int_equal(af_step_add_dep(s, "fetch", NULL), 0);
    assert_int_equal(af_step_add_port(s, "yes"), 0);
    assert_int_equal(af_step_add_port(s, "no"), 0);
    s = step(g, "classify", "agent", "triage.lua:10");
    assert_int_equal(af_step_add_dep(s, "check", "yes"), 0);
    s->has_retry = 1;
    s->retry.attempts = 3;
    s->retry.backoff = AF_BACKOFF_FIXED;
    const char *codes[] = {"INVALID_INPUT"};
    assert_int_equal(af_retry_set_non_retryable(&s->retry, codes, 1), 0);
    s->config = json_pack("{s:s}", "model", "small");
    s = stepv(g, "drop", "triage.lua:14", 1, "check.no");
    s->on_error_continue = 1;
    s = stepv(g, "alert \"ops\"\\", "triage.lua:16", 1, "fetch.error");
    s = stepv(g, "done", "triage.lua:18", 2, "classify", "drop");
    s->join = AF_JOIN_ALL;
    return g;
}

/* ---- construction ---- */

static void test_new_defaults(void **state) {
    af_graph_t *g = af_graph_new("w");
    assert_non_null(g);
    assert_string_equal(g->name, "w");
    assert_int_equal(g->retry.attempts, 1);
    assert_int_equal(g->retry.backoff, AF_BACKOFF_EXPONENTIAL);
    assert_int_equal(g->retry.initial_ms, 1000);
    assert_int_equal(g->retry.max_ms, 60000);
    assert_int_equal(g->nsteps, 0);
    assert_null(g->order);
    af_step_t *s = step(g, "a", "lua", "w.lua:1");
    assert_string_equal(s->type, "lua");
    assert_string_equal(s->where, "w.lua:1");
    assert_int_equal(s->spec_ref, -1);
    assert_int_equal(s->has_retry, 0);
    assert_int_equal(s->join, AF_JOIN_ANY);
    assert_int_equal(af_graph_find(g, "a"), 0);
    assert_int_equal(af_graph_find(g, "b"), -1);
    af_graph_free(g);
    af_graph_free(NULL);
}

static void test_duplicate_name(void **state) {
    af_graph_t *g = af_graph_new("w");
    step(g, "a", "lua", "w.lua:1");
    step(g, "b", "lua", "w.lua:2");
    af_error_t err = {0};
    assert_null(af_graph_add_step(g, "a", "lua", "w.lua:9", &err));
    assert_int_equal(err.code, AF_EEXISTS);
    assert_string_equal(err.where, "w.lua:9");
    assert_string_equal(err.msg, "duplicate step name 'a' (first declared at w.lua:1)");
    assert_int_equal(g->nsteps, 2);

    memset(&err, 0, sizeof err);
    assert_null(af_graph_add_step(g, "", "lua", "w.lua:10", &err));
    assert_int_not_equal(err.code, 0);
    assert_string_equal(err.where, "w.lua:10");
    assert_null(af_graph_add_step(g, NULL, "lua", "w.lua:11", NULL));
    assert_int_equal(g->nsteps, 2);
    af_graph_free(g);
}

static void test_find_many(void **state) {
    af_graph_t *g = af_graph_new("w");
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "step-%d", i);
        step(g, name, "lua", "w.lua:1");
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "step-%d", i);
        assert_int_equal(af_graph_find(g, name), i);
    }
    assert_int_equal(af_graph_find(g, "step-5000"), -1);
    assert_int_equal(af_graph_find(g, NULL), -1);
    af_graph_free(g);
}

static void test_ports_and_retry_lists(void **state) {
    af_graph_t *g = af_graph_new("w");
    af_step_t *s = step(g, "sw", "switch", "w.lua:1");
    assert_int_equal(af_step_add_port(s, "a"), 0);
    assert_int_equal(af_step_add_port(s, "b"), 0);
    assert_int_equal(af_step_add_port(s, "a"), 0);           /* same port */
    assert_int_equal(af_step_add_port(s, AF_PORT_ERROR), 0); /* implicit */
    assert_int_equal(af_step_add_port(s, ""), AF_EINVAL);
    assert_int_equal(s->nports, 2);
    assert_string_equal(s->ports[1], "b");
    assert_int_equal(af_step_add_dep(s, "", NULL), AF_EINVAL);

    const char *codes[] = {"X", "Y", "Z"};
    assert_int_equal(af_retry_set_non_retryable(&g->retry, codes, 3), 0);
    assert_int_equal(g->retry.n_non_retryable, 3);
    assert_int_equal(af_retry_set_non_retryable(&g->retry, codes + 2, 1), 0);
    assert_int_equal(g->retry.n_non_retryable, 1);
    assert_string_equal(g->retry.non_retryable[0], "Z");
    assert_int_equal(af_retry_set_non_retryable(&s->retry, codes, 2), 0);
    assert_int_equal(af_retry_set_non_retryable(&s->retry, NULL, 0), 0);
    assert_int_equal(s->retry.n_non_retryable, 0);
    assert_int_equal(af_retry_set_non_retryable(&s->retry, codes, 2), 0); /* freed with g */

    assert_int_equal(af_graph_add_trigger(g, "", "w.lua:3", json_object()), AF_EINVAL);
    assert_int_equal(g->ntriggers, 0);
    for (int i = 0; i < 9; i++) {
        assert_int_equal(af_graph_add_trigger(g, "event", "w.lua:4", json_object()), 0);
    }
    assert_int_equal(g->ntriggers, 9);
    af_graph_free(g);
}

/* ---- validation errors ---- */

static void test_no_steps(void **state) {
    af_graph_t *g = af_graph_new("w");
    expect_invalid(g, AF_EDEFINITION, "", "workflow has no steps");
    g->file = strdup("empty.lua");
    expect_invalid(g, AF_EDEFINITION, "empty.lua", "workflow has no steps");
    af_graph_free(g);
}

static void test_unknown_dep(void **state) {
    af_graph_t *g = af_graph_new("w");
    stepv(g, "a", "w.lua:1", 0);
    stepv(g, "b", "w.lua:2", 2, "a", "zz");
    expect_invalid(g, AF_EDEFINITION, "w.lua:2", "step 'b' depends on unknown step 'zz'");
    /* the missing step declared later makes it valid: validation starts over */
    stepv(g, "zz", "w.lua:3", 0);
    expect_valid(g);
    assert_int_equal(g->steps[1].deps[1].index, 2);
    af_graph_free(g);
}

static void test_bad_port(void **state) {
    af_graph_t *g = af_graph_new("w");
    af_step_t *a = step(g, "a", "condition", "w.lua:1");
    af_step_add_port(a, "yes");
    af_step_add_port(a, "no");
    stepv(g, "ok1", "w.lua:2", 1, "a.yes");
    stepv(g, "ok2", "w.lua:3", 1, "a.error");
    stepv(g, "b", "w.lua:4", 1, "a.maybe");
    expect_invalid(g, AF_EDEFINITION, "w.lua:4",
                   "step 'b' depends on port 'maybe' of step 'a', which has ports yes, no");
    af_graph_free(g);

    g = af_graph_new("w");
    stepv(g, "a", "w.lua:1", 0);
    stepv(g, "b", "w.lua:2", 1, "a.yes");
    expect_invalid(g, AF_EDEFINITION, "w.lua:2",
                   "step 'b' depends on port 'yes' of step 'a', which has no ports (only success "
                   "and error)");
    af_graph_free(g);
}

static void test_self_dep(void **state) {
    af_graph_t *g = af_graph_new("w");
    stepv(g, "a", "w.lua:1", 0);
    stepv(g, "b", "w.lua:2", 2, "a", "b.error");
    expect_invalid(g, AF_EDEFINITION, "w.lua:2", "step 'b' depends on itself");
    af_graph_free(g);
}

static void test_cycle_two(void **state) {
    af_graph_t *g = af_graph_new("w");
    stepv(g, "root", "w.lua:1", 0);
    stepv(g, "a", "w.lua:2", 2, "root", "b");
    stepv(g, "b", "w.lua:3", 1, "a");
    expect_invalid(g, AF_EDEFINITION, "w.lua:2", "cycle: a -> b -> a");
    for (int i = 0; i < g->nsteps; i++) {
        assert_null(g->steps[i].dependents);
        assert_int_equal(g->steps[i].ndependents, 0);
    }
    af_graph_free(g);
}

static void test_cycle_three(void **state) {
    af_graph_t *g = af_graph_new("w");
    /* d hangs below the cycle and is declared first; the cycle's first declared step is b */
    stepv(g, "d", "w.lua:1", 1, "a");
    stepv(g, "b", "w.lua:2", 1, "a");
    stepv(g, "c", "w.lua:3", 1, "b");
    stepv(g, "a", "w.lua:4", 1, "c.error");
    expect_invalid(g, AF_EDEFINITION, "w.lua:2", "cycle: b -> c -> a -> b");
    af_graph_free(g);
}

/* ---- order, dependents ---- */

static void test_order_stable(void **state) {
    af_graph_t *g = af_graph_new("w");
    /* declared out of order: c after b after a; x and y are independent */
    stepv(g, "c", "w.lua:1", 1, "b");
    stepv(g, "x", "w.lua:2", 0);
    stepv(g, "b", "w.lua:3", 1, "a");
    stepv(g, "a", "w.lua:4", 0);
    stepv(g, "y", "w.lua:5", 0);
    expect_valid(g);
    /* among ready steps the first declared goes first */
    const char *want[] = {"x", "a", "b", "c", "y"};
    for (int i = 0; i < 5; i++) {
        assert_string_equal(g->steps[g->order[i]].name, want[i]);
    }
    af_graph_free(g);

    /* a graph declared in a valid order keeps its declaration order */
    g = af_graph_new("w");
    stepv(g, "a", "w.lua:1", 0);
    stepv(g, "b", "w.lua:2", 0);
    stepv(g, "c", "w.lua:3", 1, "a");
    stepv(g, "d", "w.lua:4", 1, "b");
    stepv(g, "e", "w.lua:5", 2, "d", "c");
    expect_valid(g);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(g->order[i], i);
    }
    af_graph_free(g);
}

static void test_dependents(void **state) {
    af_graph_t *g = af_graph_new("w");
    af_step_t *a = step(g, "a", "condition", "w.lua:1");
    af_step_add_port(a, "yes");
    stepv(g, "c", "w.lua:2", 1, "a");
    stepv(g, "b", "w.lua:3", 3, "a", "a.error", "a.yes"); /* three edges, one dependent */
    stepv(g, "d", "w.lua:4", 2, "b", "c");
    expect_valid(g);
    int ia = idx(g, "a"), ib = idx(g, "b"), ic = idx(g, "c"), id = idx(g, "d");
    assert_int_equal(g->steps[ia].ndependents, 2);
    assert_int_equal(g->steps[ia].dependents[0], ic);
    assert_int_equal(g->steps[ia].dependents[1], ib);
    assert_int_equal(g->steps[ib].ndependents, 1);
    assert_int_equal(g->steps[ib].dependents[0], id);
    assert_int_equal(g->steps[id].ndependents, 0);
    assert_null(g->steps[id].dependents);
    for (int j = 0; j < 3; j++) {
        assert_int_equal(g->steps[ib].deps[j].index, ia);
    }

    /* validating again gives the same, without leaking the first result */
    expect_valid(g);
    assert_int_equal(g->steps[ia].ndependents, 2);
    assert_int_equal(g->steps[ib].ndependents, 1);
    af_graph_free(g);
}

static void test_diamond(void **state) {
    af_graph_t *g = af_graph_new("diamond");
    stepv(g, "top", "d.lua:1", 0);
    stepv(g, "left", "d.lua:2", 1, "top");
    stepv(g, "right", "d.lua:3", 1, "top");
    af_step_t *s = stepv(g, "bottom", "d.lua:4", 2, "left", "right");
    s->join = AF_JOIN_ALL;
    expect_valid(g);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(g->order[i], i);
    }
    const af_step_t *top = &g->steps[0], *bottom = &g->steps[3];
    assert_int_equal(top->ndependents, 2);
    assert_int_equal(top->dependents[0], 1);
    assert_int_equal(top->dependents[1], 2);
    assert_int_equal(g->steps[1].dependents[0], 3);
    assert_int_equal(g->steps[2].dependents[0], 3);
    assert_int_equal(bottom->deps[0].index, 1);
    assert_int_equal(bottom->deps[1].index, 2);
    af_graph_free(g);
}

/* ---- large graphs ---- */

#define BIG 100000

static void test_big_chain(void **state) {
    char name[32], prev[32];
    af_graph_t *g = af_graph_new("chain");
    for (int i = 0; i < BIG; i++) {
        snprintf(name, sizeof name, "s%d", i);
        af_step_t *s = step(g, name, "lua", "chain.lua:1");
        if (i > 0) {
            assert_int_equal(af_step_add_dep(s, prev, NULL), 0);
        }
        memcpy(prev, name, sizeof name);
    }
    expect_valid(g);
    for (int i = 0; i < BIG; i++) {
        assert_int_equal(g->order[i], i);
    }
    assert_int_equal(g->steps[BIG - 1].ndependents, 0);
    assert_int_equal(g->steps[0].dependents[0], 1);

    /* closing the chain makes one long cycle; the message stays readable and bounded */
    assert_int_equal(af_step_add_dep(&g->steps[0], "s99999", NULL), 0);
    af_error_t err = {0};
    assert_int_equal(af_graph_validate(g, &err), AF_EDEFINITION);
    assert_string_equal(err.where, "chain.lua:1");
    assert_true(starts_with(err.msg, "cycle: s0 -> s1 -> s2 -> "));
    const char *tail = " -> s99999 -> s0";
    assert_true(strlen(err.msg) < sizeof err.msg - 1);
    assert_string_equal(err.msg + strlen(err.msg) - strlen(tail), tail);
    assert_non_null(strstr(err.msg, "more)"));
    af_graph_free(g);
}

static void test_big_reverse_and_fan(void **state) {
    char name[32], next[32];
    /* declared from the end: every step depends on the one declared after it */
    af_graph_t *g = af_graph_new("reverse");
    for (int i = 0; i < BIG; i++) {
        snprintf(name, sizeof name, "r%d", i);
        snprintf(next, sizeof next, "r%d", i + 1);
        af_step_t *s = step(g, name, "lua", "r.lua:1");
        if (i < BIG - 1) {
            assert_int_equal(af_step_add_dep(s, next, NULL), 0);
        }
    }
    expect_valid(g);
    for (int i = 0; i < BIG; i++) {
        assert_int_equal(g->order[i], BIG - 1 - i);
    }
    af_graph_free(g);

    /* one root with 100,000 dependents, all joined by a last step */
    g = af_graph_new("fan");
    step(g, "root", "lua", "f.lua:1");
    for (int i = 0; i < BIG; i++) {
        snprintf(name, sizeof name, "f%d", i);
        assert_int_equal(af_step_add_dep(step(g, name, "lua", "f.lua:2"), "root", NULL), 0);
    }
    af_step_t *join = step(g, "join", "lua", "f.lua:3");
    for (int i = 0; i < BIG; i++) {
        snprintf(name, sizeof name, "f%d", i);
        assert_int_equal(af_step_add_dep(join, name, NULL), 0);
    }
    expect_valid(g);
    assert_int_equal(g->steps[0].ndependents, BIG);
    assert_int_equal(g->order[0], 0);
    assert_int_equal(g->order[BIG + 1], BIG + 1);
    af_graph_free(g);
}

/* ---- printing ---- */

static void test_to_json(void **state) {
    af_graph_t *g = triage_graph();
    expect_valid(g);
    json_t *j = af_graph_to_json(g);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "triage");
    assert_string_equal(json_string_value(json_object_get(j, "description")), "Route tickets");
    assert_string_equal(json_string_value(json_object_get(j, "file")), "triage.lua");

    json_t *steps = json_object_get(j, "steps");
    assert_int_equal(json_array_size(steps), 6);
    json_t *fetch = json_array_get(steps, 0);
    assert_string_equal(json_string_value(json_object_get(fetch, "name")), "fetch");
    assert_string_equal(json_string_value(json_object_get(fetch, "type")), "lua");
    assert_string_equal(json_string_value(json_object_get(fetch, "where")), "triage.lua:6");
    assert_int_equal(json_array_size(json_object_get(fetch, "after")), 0);
    assert_int_equal(json_integer_value(json_object_get(fetch, "timeout_ms")), 2500);
    assert_null(json_object_get(fetch, "retry"));
    assert_null(json_object_get(fetch, "join"));
    assert_null(json_object_get(fetch, "on_error"));
    assert_true(json_is_null(json_object_get(fetch, "config")));

    json_t *check = json_array_get(steps, 1);
    json_t *ports = json_object_get(check, "ports");
    assert_int_equal(json_array_size(ports), 2);
    assert_string_equal(json_string_value(json_array_get(ports, 0)), "yes");
    json_t *after = json_array_get(json_object_get(check, "after"), 0);
    assert_string_equal(json_string_value(json_object_get(after, "step")), "fetch");
    assert_true(json_is_null(json_object_get(after, "port")));
    assert_null(json_object_get(check, "timeout_ms"));

    json_t *classify = json_array_get(steps, 2);
    after = json_array_get(json_object_get(classify, "after"), 0);
    assert_string_equal(json_string_value(json_object_get(after, "port")), "yes");
    json_t *retry = json_object_get(classify, "retry");
    assert_non_null(retry);
    assert_int_equal(json_integer_value(json_object_get(retry, "attempts")), 3);
    assert_string_equal(json_string_value(json_object_get(retry, "backoff")), "fixed");
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(retry, "non_retryable"), 0)),
        "INVALID_INPUT");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(classify, "config"), "model")), "small");

    assert_string_equal(json_string_value(json_object_get(json_array_get(steps, 3), "on_error")),
                        "continue");
    assert_string_equal(json_string_value(json_object_get(json_array_get(steps, 5), "join")),
                        "all");

    json_t *triggers = json_object_get(j, "triggers");
    assert_int_equal(json_array_size(triggers), 2);
    json_t *hook = json_array_get(triggers, 0);
    assert_string_equal(json_string_value(json_object_get(hook, "type")), "webhook");
    assert_string_equal(json_string_value(json_object_get(hook, "where")), "triage.lua:3");
    assert_string_equal(json_string_value(json_object_get(json_object_get(hook, "config"), "path")),
                        "/triage");
    assert_true(json_is_null(json_object_get(json_array_get(triggers, 1), "config")));
    json_decref(j);

    /* names that are not UTF-8 still give a document */
    af_graph_t *bad = af_graph_new("w\xff");
    step(bad, "a\xc3", "lua", "w.lua:1");
    j = af_graph_to_json(bad);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "w?");
    json_t *a = json_array_get(json_object_get(j, "steps"), 0);
    assert_string_equal(json_string_value(json_object_get(a, "name")), "a?");
    assert_true(json_is_null(json_object_get(j, "description")));
    json_decref(j);
    af_graph_free(bad);
    af_graph_free(g);
}

static void test_print_text(void **state) {
    af_graph_t *g = triage_graph();
    expect_valid(g);
    char *text = print_to_string(af_graph_print_text, g);
    assert_true(starts_with(text, "workflow triage: Route tickets\n"));
    assert_non_null(strstr(text, "  file: triage.lua\n"));
    assert_non_null(strstr(text, "triggers:\n  webhook  {\"path\":\"/triage\"}  (triage.lua:3)\n"));
    assert_non_null(strstr(text, "steps (6, in order):\n"));
    assert_non_null(strstr(text, "  classify      agent      after: check.yes  retry: 3 "
                                 "attempts, fixed 1.00s..1m00s, never on INVALID_INPUT  "
                                 "(triage.lua:10)\n"));
    assert_non_null(strstr(text, "after: check.no  on error: continue"));
    assert_non_null(strstr(text, "after: fetch.error"));
    assert_non_null(strstr(text, "after: classify, drop  join: all  (triage.lua:18)"));
    assert_non_null(strstr(text, "ports: yes, no"));
    assert_non_null(strstr(text, "timeout: 2.50s"));
    /* steps come in topological order */
    char *fetch = strstr(text, "\n  fetch "), *check = strstr(text, "\n  check ");
    char *done = strstr(text, "\n  done ");
    assert_true(fetch != NULL && check != NULL && done != NULL);
    assert_true(fetch < check && check < done);
    free(text);

    /* an unvalidated graph prints in declaration order */
    af_graph_t *u = af_graph_new("u");
    stepv(u, "b", "u.lua:1", 1, "a");
    stepv(u, "a", "u.lua:2", 0);
    text = print_to_string(af_graph_print_text, u);
    assert_non_null(strstr(text, "triggers: none\n"));
    assert_non_null(strstr(text, "steps (2, not validated):\n  b  lua  after: a  (u.lua:1)\n"
                                 "  a  lua  (u.lua:2)\n"));
    free(text);
    af_graph_free(u);
    af_graph_free(g);
}

static void test_print_dot(void **state) {
    af_graph_t *g = triage_graph();
    expect_valid(g);
    char *dot = print_to_string(af_graph_print_dot, g);
    assert_true(starts_with(dot, "digraph \"triage\" {\n"));
    assert_non_null(strstr(dot, "\"check\" [shape=diamond, label=\"check\\ncondition\""));
    assert_non_null(strstr(dot, "\"fetch\" [shape=box, "));
    assert_non_null(strstr(dot, "\"check\" -> \"classify\" [label=\"yes\"];"));
    assert_non_null(strstr(dot, "\"fetch\" -> \"check\";"));
    assert_non_null(strstr(dot, "\"fetch\" -> \"alert \\\"ops\\\"\\\\\" [label=\"error\", "
                                "style=dashed, color=red, fontcolor=red];"));
    assert_non_null(strstr(dot, "\"trigger:0\" [shape=note, "));
    assert_non_null(strstr(dot, "label=\"webhook\\n/triage\""));
    assert_non_null(strstr(dot, "\"trigger:0\" -> \"fetch\" [style=dotted];"));
    assert_non_null(strstr(dot, "\"trigger:1\" -> \"fetch\" [style=dotted];"));
    assert_null(strstr(dot, "\"trigger:0\" -> \"check\""));
    assert_true(strcmp(dot + strlen(dot) - 2, "}\n") == 0);
    free(dot);

    /* a step named like a trigger id does not capture the trigger's edges */
    af_graph_t *c = af_graph_new("c");
    stepv(c, "trigger:0", "c.lua:1", 0);
    af_graph_add_trigger(c, "manual", "c.lua:2", NULL);
    dot = print_to_string(af_graph_print_dot, c);
    assert_non_null(strstr(dot, "\"#trigger:0\" -> \"trigger:0\" [style=dotted];"));
    free(dot);
    af_graph_free(c);
    af_graph_free(g);
}

/* The DOT text must be accepted by Graphviz itself, when it is installed. */
static void test_dot_renders(void **state) {
    if (access("/usr/bin/dot", X_OK) != 0) {
        skip();
    }
    af_graph_t *g = triage_graph();
    stepv(g, "odd\nname\t{x}", "triage.lua:20", 1, "done");
    stepv(g, "ünïcode → step", "triage.lua:21", 1, "odd\nname\t{x}");
    stepv(g, "ends in backslash\\", "triage.lua:22", 1, "ünïcode → step");
    expect_valid(g);
    char path[] = "/tmp/test_graph_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    af_graph_print_dot(g, f);
    assert_int_equal(fclose(f), 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "/usr/bin/dot -Tsvg '%s' >/dev/null", path);
    int status = system(cmd);
    unlink(path);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    af_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_defaults),
        cmocka_unit_test(test_duplicate_name),
        cmocka_unit_test(test_find_many),
        cmocka_unit_test(test_ports_and_retry_lists),
        cmocka_unit_test(test_no_steps),
        cmocka_unit_test(test_unknown_dep),
        cmocka_unit_test(test_bad_port),
        cmocka_unit_test(test_self_dep),
        cmocka_unit_test(test_cycle_two),
        cmocka_unit_test(test_cycle_three),
        cmocka_unit_test(test_order_stable),
        cmocka_unit_test(test_dependents),
        cmocka_unit_test(test_diamond),
        cmocka_unit_test(test_big_chain),
        cmocka_unit_test(test_big_reverse_and_fan),
        cmocka_unit_test(test_to_json),
        cmocka_unit_test(test_print_text),
        cmocka_unit_test(test_print_dot),
        cmocka_unit_test(test_dot_renders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
