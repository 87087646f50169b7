/* test_bus.c -- field predicates (bus/predicate.c: operators, paths, limits, compile errors) and
 * the in-process event bus (bus/bus.c: pattern index, where filters, order, unsubscribing). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "bus/pattern.h"
#include "bus/predicate.h"

/* ---- predicates ----------------------------------------------------------------------------- */

static const char *const DATA =
    "{\"status\": \"paid\", \"amount\": 150, \"price\": 9.5, \"vip\": true, \"note\": null,"
    " \"customer\": {\"tier\": \"gold\", \"name\": \"Ada Lovelace\", \"tags\": [\"a\", \"b\"]},"
    " \"items\": [{\"sku\": \"SKU-1\", \"qty\": 2}, {\"sku\": \"X-2\", \"qty\": 1.0}],"
    " \"codes\": [1, 2, 3], \"0\": \"zero\", \"obj\": {\"x\": 1, \"y\": [1, 2]}}";

static json_t *load(const char *text) {
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (v == NULL) {
        fail_msg("bad test JSON '%s': %s", text, jerr.text);
    }
    return v;
}

/* Compiles spec (JSON text) and evaluates it on data. */
static int holds(const char *spec, const json_t *data) {
    json_t *s = load(spec);
    af_predicate_t *p = NULL;
    af_error_t err = {0};
    if (af_predicate_compile(s, &p, &err) != 0) {
        fail_msg("'%s' does not compile: %s", spec, err.msg);
    }
    json_decref(s); /* the predicate must not depend on the spec */
    int r = af_predicate_eval(p, data);
    af_predicate_free(p);
    return r;
}

static void test_predicate_operators(void **state) {
    (void)state;
    static const struct {
        const char *spec;
        int expect;
    } cases[] = {
        {"{}", 1},
        /* equality shorthand, numbers by value */
        {"{\"status\": \"paid\"}", 1},
        {"{\"status\": \"open\"}", 0},
        {"{\"status\": \"pai\"}", 0},
        {"{\"vip\": true}", 1},
        {"{\"vip\": false}", 0},
        {"{\"vip\": 1}", 0},
        {"{\"amount\": 150}", 1},
        {"{\"amount\": 150.0}", 1},
        {"{\"amount\": 150.5}", 0},
        {"{\"amount\": \"150\"}", 0},
        {"{\"price\": 9.5}", 1},
        {"{\"items.1.qty\": 1}", 1},
        {"{\"note\": null}", 1},
        {"{\"missing\": null}", 0},
        {"{\"codes\": [1, 2, 3.0]}", 1},
        {"{\"codes\": [1, 2]}", 0},
        {"{\"codes\": [1, 3, 2]}", 0},
        {"{\"obj\": {\"eq\": {\"y\": [1.0, 2], \"x\": 1}}}", 1},
        {"{\"obj\": {\"eq\": {\"x\": 1}}}", 0},
        {"{\"obj\": {\"eq\": {\"x\": 1, \"z\": [1, 2]}}}", 0},
        {"{\"obj\": {\"eq\": {\"x\": 1, \"y\": [1, 2, 3]}}}", 0},
        {"{\"customer\": {\"eq\": {\"tags\": [\"a\", \"b\"], \"name\": \"Ada Lovelace\", "
         "\"tier\": \"gold\"}}}",
         1},
        {"{\"customer\": {\"eq\": {\"tags\": [\"a\", \"b\"], \"name\": \"Ada Lovelace\", "
         "\"tier\": \"gold\", \"extra\": 1}}}",
         0},
        /* paths */
        {"{\"customer.tier\": \"gold\"}", 1},
        {"{\"customer.tier.x\": \"gold\"}", 0},
        {"{\"customer.missing\": {\"exists\": false}}", 1},
        {"{\"items.0.sku\": \"SKU-1\"}", 1},
        {"{\"items.1.sku\": \"X-2\"}", 1},
        {"{\"items.2.sku\": {\"exists\": true}}", 0},
        {"{\"items.x\": {\"exists\": true}}", 0},
        {"{\"items.01.sku\": \"X-2\"}", 1},
        {"{\"0\": \"zero\"}", 1},
        {"{\"customer.tags.1\": \"b\"}", 1},
        {"{\"status.0\": {\"exists\": true}}", 0},
        /* eq, ne */
        {"{\"status\": {\"eq\": \"paid\"}}", 1},
        {"{\"customer\": {\"eq\": \"gold\"}}", 0},
        {"{\"status\": {\"ne\": \"open\"}}", 1},
        {"{\"status\": {\"ne\": \"paid\"}}", 0},
        {"{\"amount\": {\"ne\": 150.0}}", 0},
        {"{\"missing\": {\"ne\": 1}}", 1},
        {"{\"missing\": {\"eq\": null}}", 0},
        /* ordering: numbers */
        {"{\"amount\": {\"gt\": 100}}", 1},
        {"{\"amount\": {\"gt\": 150}}", 0},
        {"{\"amount\": {\"gte\": 150}}", 1},
        {"{\"amount\": {\"gte\": 150.1}}", 0},
        {"{\"amount\": {\"lt\": 150}}", 0},
        {"{\"amount\": {\"lt\": 150.5}}", 1},
        {"{\"amount\": {\"lte\": 150}}", 1},
        {"{\"amount\": {\"lte\": 149.9}}", 0},
        {"{\"price\": {\"gt\": 9}}", 1},
        {"{\"price\": {\"lt\": 9.5}}", 0},
        {"{\"price\": {\"gt\": -10}}", 1},
        /* ordering: strings by bytes */
        {"{\"status\": {\"gt\": \"open\"}}", 1},
        {"{\"status\": {\"lt\": \"paid\"}}", 0},
        {"{\"status\": {\"lte\": \"paid\"}}", 1},
        {"{\"status\": {\"gte\": \"paid\"}}", 1},
        {"{\"status\": {\"gt\": \"paid\"}}", 0},
        {"{\"status\": {\"gt\": \"Z\"}}", 1},
        {"{\"customer.name\": {\"gt\": \"Ada\"}}", 1},
        {"{\"customer.name\": {\"lt\": \"Ada\"}}", 0},
        {"{\"customer.name\": {\"lt\": \"Ada Lovelaces\"}}", 1},
        /* ordering: other types never */
        {"{\"status\": {\"gt\": 1}}", 0},
        {"{\"status\": {\"lt\": 1}}", 0},
        {"{\"amount\": {\"gt\": \"1\"}}", 0},
        {"{\"vip\": {\"gte\": 0}}", 0},
        {"{\"note\": {\"lte\": 0}}", 0},
        {"{\"codes\": {\"gt\": 0}}", 0},
        {"{\"missing\": {\"lt\": 1000}}", 0},
        /* in, nin */
        {"{\"status\": {\"in\": [\"open\", \"paid\"]}}", 1},
        {"{\"status\": {\"in\": [\"open\"]}}", 0},
        {"{\"status\": {\"in\": []}}", 0},
        {"{\"amount\": {\"in\": [1, 150.0]}}", 1},
        {"{\"codes\": {\"in\": [[1, 2, 3], 4]}}", 1},
        {"{\"missing\": {\"in\": [null]}}", 0},
        {"{\"status\": {\"nin\": [\"open\"]}}", 1},
        {"{\"status\": {\"nin\": [\"open\", \"paid\"]}}", 0},
        {"{\"amount\": {\"nin\": [150.0]}}", 0},
        {"{\"missing\": {\"nin\": [\"x\"]}}", 1},
        /* exists */
        {"{\"note\": {\"exists\": true}}", 1},
        {"{\"status\": {\"exists\": true}}", 1},
        {"{\"status\": {\"exists\": false}}", 0},
        {"{\"missing\": {\"exists\": true}}", 0},
        {"{\"missing\": {\"exists\": false}}", 1},
        /* prefix, suffix */
        {"{\"items.0.sku\": {\"prefix\": \"SKU-\"}}", 1},
        {"{\"items.1.sku\": {\"prefix\": \"SKU-\"}}", 0},
        {"{\"status\": {\"prefix\": \"\"}}", 1},
        {"{\"status\": {\"prefix\": \"paid!\"}}", 0},
        {"{\"amount\": {\"prefix\": \"1\"}}", 0},
        {"{\"missing\": {\"prefix\": \"\"}}", 0},
        {"{\"customer.name\": {\"suffix\": \"lace\"}}", 1},
        {"{\"customer.name\": {\"suffix\": \"Ada\"}}", 0},
        {"{\"status\": {\"suffix\": \"xpaid\"}}", 0},
        {"{\"status\": {\"suffix\": \"paid\"}}", 1},
        {"{\"codes\": {\"suffix\": \"3\"}}", 0},
        /* contains: substring or array element */
        {"{\"customer.name\": {\"contains\": \"Love\"}}", 1},
        {"{\"customer.name\": {\"contains\": \"love\"}}", 0},
        {"{\"customer.name\": {\"contains\": \"lace\"}}", 1},
        {"{\"customer.name\": {\"contains\": \"laces\"}}", 0},
        {"{\"customer.name\": {\"contains\": \"\"}}", 1},
        {"{\"customer.name\": {\"contains\": 1}}", 0},
        {"{\"customer.tags\": {\"contains\": \"b\"}}", 1},
        {"{\"customer.tags\": {\"contains\": \"c\"}}", 0},
        {"{\"codes\": {\"contains\": 2.0}}", 1},
        {"{\"codes\": {\"contains\": \"2\"}}", 0},
        {"{\"amount\": {\"contains\": 150}}", 0},
        {"{\"missing\": {\"contains\": \"x\"}}", 0},
        /* AND of operators and of keys */
        {"{\"amount\": {\"gte\": 100, \"lt\": 200}}", 1},
        {"{\"amount\": {\"gte\": 100, \"lt\": 150}}", 0},
        {"{\"status\": \"paid\", \"vip\": true, \"customer.tier\": \"gold\"}", 1},
        {"{\"status\": \"paid\", \"vip\": false}", 0},
        /* $or, $not */
        {"{\"$or\": [{\"status\": \"open\"}, {\"vip\": true}]}", 1},
        {"{\"$or\": [{\"status\": \"open\"}, {\"vip\": false}]}", 0},
        {"{\"$or\": [{}]}", 1},
        {"{\"$not\": {\"status\": \"open\"}}", 1},
        {"{\"$not\": {\"status\": \"paid\"}}", 0},
        {"{\"$not\": {}}", 0},
        {"{\"$not\": {\"$not\": {\"vip\": true}}}", 1},
        {"{\"$or\": [{\"$not\": {\"amount\": {\"lt\": 100}}}], \"customer.tier\": {\"in\": "
         "[\"gold\"]}}",
         1},
        {"{\"$or\": [{\"status\": \"open\"}, {\"$or\": [{\"x\": 1}, {\"items.0.qty\": 2}]}], "
         "\"$not\": {\"vip\": false}}",
         1},
        {"{\"$or\": [{\"status\": \"paid\"}], \"$not\": {\"vip\": true}}", 0},
    };
    json_t *data = load(DATA);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (holds(cases[i].spec, data) != cases[i].expect) {
            fail_msg("%s: expected %d", cases[i].spec, cases[i].expect);
        }
    }
    json_decref(data);
}

static void test_predicate_data_shapes(void **state) {
    (void)state;
    af_predicate_t *p = NULL;
    assert_int_equal(af_predicate_compile(NULL, &p, NULL), 0);
    assert_non_null(p);
    assert_int_equal(af_predicate_eval(p, NULL), 1);
    af_predicate_free(p);
    assert_int_equal(af_predicate_eval(NULL, NULL), 1);
    af_predicate_free(NULL);

    /* data that is not an object, or NULL: every field is missing */
    json_t *arr = load("[1, 2]"), *num = load("3"), *nul = json_null();
    const json_t *shapes[] = {arr, num, nul, NULL};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(holds("{\"x\": 1}", shapes[i]), 0);
        assert_int_equal(holds("{\"x\": {\"exists\": false}}", shapes[i]), 1);
        assert_int_equal(holds("{\"x\": {\"ne\": 1}}", shapes[i]), 1);
        assert_int_equal(holds("{}", shapes[i]), 1);
    }
    assert_int_equal(holds("{\"0\": 1}", arr), 1); /* a digit segment indexes the top array */
    assert_int_equal(holds("{\"1\": {\"gt\": 1}}", arr), 1);
    json_decref(arr);
    json_decref(num);

    /* strings with NUL bytes compare by length, not as C strings */
    json_t *d = json_pack("{s:o}", "s", json_stringn("a\0bc", 4));
    json_t *spec = json_pack("{s:o}", "s", json_stringn("a\0bc", 4));
    assert_int_equal(af_predicate_compile(spec, &p, NULL), 0);
    assert_int_equal(af_predicate_eval(p, d), 1);
    af_predicate_free(p);
    json_decref(spec);
    assert_int_equal(holds("{\"s\": \"a\"}", d), 0);
    assert_int_equal(holds("{\"s\": {\"contains\": \"bc\"}}", d), 1);
    assert_int_equal(holds("{\"s\": {\"suffix\": \"c\"}}", d), 1);
    assert_int_equal(holds("{\"s\": {\"gt\": \"a\"}}", d), 1);
    json_decref(d);

    /* big integers compare exactly, not through doubles */
    json_t *big = json_pack("{s:I}", "n", (json_int_t)9007199254740993LL);
    assert_int_equal(holds("{\"n\": 9007199254740992}", big), 0);
    assert_int_equal(holds("{\"n\": {\"gt\": 9007199254740992}}", big), 1);
    assert_int_equal(holds("{\"n\": 9007199254740993}", big), 1);
    json_decref(big);

    /* a path of 16 segments works */
    json_t *deep = load("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":{\"j\":"
                        "{\"k\":{\"l\":{\"m\":{\"n\":{\"o\":{\"p\":7}}}}}}}}}}}}}}}}");
    assert_int_equal(holds("{\"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p\": 7}", deep), 1);
    assert_int_equal(holds("{\"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p\": 8}", deep), 0);
    json_decref(deep);
}

/* The spec is copied: changing it after compiling changes nothing. */
static void test_predicate_owns_its_values(void **state) {
    (void)state;
    json_t *spec = load("{\"tags\": {\"in\": [[\"a\"]]}, \"name\": {\"prefix\": \"Ad\"}}");
    af_predicate_t *p = NULL;
    assert_int_equal(af_predicate_compile(spec, &p, NULL), 0);
    json_array_append_new(json_array_get(json_object_get(json_object_get(spec, "tags"), "in"), 0),
                          json_string("z"));
    json_object_set_new(json_object_get(spec, "name"), "prefix", json_string("Zz"));
    json_decref(spec);
    json_t *data = load("{\"tags\": [\"a\"], \"name\": \"Ada\"}");
    assert_int_equal(af_predicate_eval(p, data), 1);
    af_predicate_free(p);
    json_decref(data);
}

static void expect_compile_error(const char *spec, const char *needle) {
    json_t *s = load(spec);
    af_predicate_t *p = (af_predicate_t *)&p; /* must be reset to NULL */
    af_error_t err = {0};
    int rc = af_predicate_compile(s, &p, &err);
    json_decref(s);
    if (rc != AF_EINVAL) {
        fail_msg("'%s': expected AF_EINVAL, got %d", spec, rc);
    }
    assert_null(p);
    assert_int_equal(err.code, AF_EINVAL);
    if (strstr(err.msg, needle) == NULL) {
        fail_msg("'%s': '%s' does not say '%s'", spec, err.msg, needle);
    }
}

/* {"$not": {"$not": ... {"a": 1}}} with n $not. */
static char *nested_nots(int n) {
    char *s = malloc((size_t)n * 12 + 16);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        len += (size_t)sprintf(s + len, "{\"$not\": ");
    }
    len += (size_t)sprintf(s + len, "{\"a\": 1}");
    for (int i = 0; i < n; i++) {
        s[len++] = '}';
    }
    s[len] = '\0';
    return s;
}

/* An object of n fields "f0": 0, ... followed by extra (JSON members text, may be ""). */
static char *many_fields(int n, const char *extra) {
    char *s = malloc((size_t)n * 16 + strlen(extra) + 8);
    size_t len = (size_t)sprintf(s, "{");
    for (int i = 0; i < n; i++) {
        len += (size_t)sprintf(s + len, "%s\"f%d\": %d", i ? ", " : "", i, i);
    }
    sprintf(s + len, "%s%s}", n && *extra ? ", " : "", extra);
    return s;
}

static void test_predicate_errors(void **state) {
    (void)state;
    expect_compile_error("[1]", "where: a where spec is an object of field conditions, not an "
                                "array");
    expect_compile_error("\"x\"", "where: a where spec is an object");
    expect_compile_error("{\"amount\": {\"gtt\": 1}}", "where.amount: unknown operator 'gtt'");
    expect_compile_error("{\"amount\": {\"gt\": true}}",
                         "where.amount: operator 'gt' takes a number or a string");
    expect_compile_error("{\"a\": {\"gte\": null}}", "where.a: operator 'gte' takes a number");
    expect_compile_error("{\"a\": {\"lt\": []}}", "where.a: operator 'lt' takes a number");
    expect_compile_error("{\"a\": {\"lte\": {}}}", "where.a: operator 'lte' takes a number");
    expect_compile_error("{\"x\": {\"in\": 1}}", "where.x: operator 'in' takes an array of values");
    expect_compile_error("{\"x\": {\"nin\": \"ab\"}}", "where.x: operator 'nin' takes an array");
    expect_compile_error("{\"x\": {\"exists\": 1}}", "where.x: operator 'exists' takes true or "
                                                     "false");
    expect_compile_error("{\"x\": {\"prefix\": 1}}", "where.x: operator 'prefix' takes a string");
    expect_compile_error("{\"x\": {\"suffix\": [\"a\"]}}", "where.x: operator 'suffix' takes a "
                                                           "string");
    expect_compile_error("{\"x\": {\"eq\": 1, \"matches\": \"^a\"}}",
                         "where.x: unknown operator 'matches'");
    expect_compile_error("{\"x\": {}}", "where.x: an object of operators needs at least one");
    expect_compile_error("{\"$and\": []}", "where: unknown key '$and'");
    expect_compile_error("{\"$or\": []}", "where.$or: $or takes an array of 1 to 16 specs");
    expect_compile_error("{\"$or\": {\"a\": 1}}", "where.$or: $or takes an array");
    expect_compile_error("{\"$or\": [{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, "
                         "{}, {}]}",
                         "where.$or: $or takes an array of 1 to 16 specs");
    expect_compile_error("{\"$or\": [{\"a\": 1}, {\"b\": {\"zz\": 1}}]}",
                         "where.$or[1].b: unknown operator 'zz'");
    expect_compile_error("{\"$or\": [1]}", "where.$or[0]: a where spec is an object");
    expect_compile_error("{\"$or\": [{\"$x\": 1}]}", "where.$or[0]: unknown key '$x'");
    expect_compile_error("{\"$not\": {\"c\": {\"lt\": []}}}",
                         "where.$not.c: operator 'lt' takes a number or a string");
    expect_compile_error("{\"$not\": \"x\"}", "where.$not: a where spec is an object of field "
                                              "conditions, not a string");
    expect_compile_error("{\"$not\": [{\"a\": 1}]}", "where.$not: a where spec is an object");
    expect_compile_error("{\"\": 1}", "where.: a field path may not be empty");
    expect_compile_error("{\"a..b\": 1}", "where.a..b: field path has an empty segment");
    expect_compile_error("{\".a\": 1}", "where..a: field path has an empty segment");
    expect_compile_error("{\"a.\": {\"eq\": 1}}", "where.a.: field path has an empty segment");
    expect_compile_error("{\"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q\": 1}",
                         "where.a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q: field path has more than 16 "
                         "segments");

    /* nesting: the top spec and 7 $not are 8 levels; one more is refused */
    char *ok = nested_nots(7), *deep = nested_nots(8);
    assert_int_equal(holds(ok, NULL), 1); /* an odd number of nots over a failing test */
    expect_compile_error(deep, "where.$not.$not.$not.$not.$not.$not.$not.$not: specs nest "
                               "deeper than 8");
    free(ok);
    free(deep);
    expect_compile_error("{\"$or\": [{\"$or\": [{\"$or\": [{\"$or\": [{\"$not\": {\"$not\": "
                         "{\"$or\": [{\"$or\": [{\"a\": 1}]}]}}}]}]}]}]}",
                         "where.$or[0].$or[0].$or[0].$or[0].$not.$not.$or[0].$or[0]: specs nest "
                         "deeper than 8");

    /* clauses: 64 are fine, the 65th is refused; $or and $not count */
    char *s64 = many_fields(64, ""), *s65 = many_fields(65, "");
    char *or64 = many_fields(63, "\"$or\": [{}]"), *or65 = many_fields(63, "\"$or\": [{\"z\": 1}]");
    char *not65 = many_fields(62, "\"$not\": {\"z\": {\"gt\": 1, \"lt\": 2}}");
    json_t *d = load("{\"f0\": 0, \"f63\": 63}");
    assert_int_equal(holds(s64, d), 0); /* compiles; f1 is missing */
    assert_int_equal(holds(or64, d), 0);
    expect_compile_error(s65, "where.f64: more than 64 clauses in one where");
    expect_compile_error(or65, "where.$or[0].z: more than 64 clauses");
    expect_compile_error(not65, "where.$not.z: more than 64 clauses");
    json_decref(d);
    free(s64);
    free(s65);
    free(or64);
    free(or65);
    free(not65);

    /* err may be NULL */
    json_t *bad = load("{\"a\": {\"bogus\": 1}}");
    af_predicate_t *p = NULL;
    assert_int_equal(af_predicate_compile(bad, &p, NULL), AF_EINVAL);
    assert_null(p);
    json_decref(bad);
}

/* ---- the bus -------------------------------------------------------------------------------- */

#define LOG_MAX 256

/* What deliveries a test saw: the tag of each subscription called, in order. */
typedef struct {
    int tags[LOG_MAX];
    size_t n;
    char last_id[32];
    int64_t last_at;
} log_t;

typedef struct sub_ctx_s {
    log_t *log;
    int tag;
    af_bus_t *bus;
    uint64_t id;           /* this subscription's id */
    uint64_t unsub;        /* an id to unsubscribe when called (0: none) */
    int unsub_rc;          /* what that returned */
    const char *publish;   /* a type to publish from the callback (once) */
    int publish_rc;        /* what that returned */
    const char *subscribe; /* a pattern to subscribe from the callback (once) */
    struct sub_ctx_s *new_ctx;
} sub_ctx_t;

static void deliver(void *ud, const af_bus_event_t *ev) {
    sub_ctx_t *c = ud;
    if (c->log->n < LOG_MAX) {
        c->log->tags[c->log->n++] = c->tag;
    }
    snprintf(c->log->last_id, sizeof c->log->last_id, "%s", ev->id);
    c->log->last_at = ev->at;
    if (c->unsub != 0) {
        c->unsub_rc = af_bus_unsubscribe(c->bus, c->unsub);
        c->unsub = 0;
    }
    if (c->publish != NULL) {
        af_bus_event_t nested = {.id = "nested", .type = c->publish, .data = ev->data};
        c->publish = NULL;
        c->publish_rc = af_bus_publish(c->bus, &nested);
    }
    if (c->subscribe != NULL) {
        uint64_t id;
        assert_int_equal(
            af_bus_subscribe(c->bus, c->subscribe, NULL, deliver, c->new_ctx, &id, NULL), 0);
        c->new_ctx->id = id;
        c->subscribe = NULL;
    }
}

static uint64_t sub(af_bus_t *b, sub_ctx_t *c, const char *pattern, const char *where) {
    json_t *w = where ? load(where) : NULL;
    af_error_t err = {0};
    c->bus = b;
    if (af_bus_subscribe(b, pattern, w, deliver, c, &c->id, &err) != 0) {
        fail_msg("subscribe '%s': %s", pattern, err.msg);
    }
    json_decref(w);
    return c->id;
}

static int publish(af_bus_t *b, const char *type, const char *data) {
    json_t *d = data ? load(data) : json_object();
    af_bus_event_t ev = {.id = "ev-1", .type = type, .data = d, .at = 1700000000000};
    int n = af_bus_publish(b, &ev);
    json_decref(d);
    return n;
}

/* Asserts the log holds exactly the tags given (a -1 terminated list), then empties it. */
static void expect_log(log_t *log, ...) {
    va_list ap;
    va_start(ap, log);
    size_t i = 0;
    for (int tag = va_arg(ap, int); tag != -1; tag = va_arg(ap, int), i++) {
        if (i >= log->n || log->tags[i] != tag) {
            fail_msg("delivery %zu: expected tag %d, got %d (%zu deliveries)", i, tag,
                     i < log->n ? log->tags[i] : -1, log->n);
        }
    }
    va_end(ap);
    if (i != log->n) {
        fail_msg("expected %zu deliveries, got %zu", i, log->n);
    }
    log->n = 0;
}

static void test_bus_patterns(void **state) {
    (void)state;
    af_bus_t *b = af_bus_inproc_new();
    log_t log = {0};
    sub_ctx_t c[12];
    memset(c, 0, sizeof c);
    static const char *const patterns[] = {"order.created", "order.*", "order.#", "*.failed",
                                           "#.failed",      "#",       "*.*",     "a.#.z",
                                           "*.b.#",         "order",   "#.b.#",   "order.created"};
    for (int i = 0; i < 12; i++) {
        c[i].log = &log;
        c[i].tag = i;
        assert_int_equal(sub(b, &c[i], patterns[i], NULL), (uint64_t)i + 1);
    }
    assert_int_equal(af_bus_count(b), 12);
    assert_int_equal(publish(b, "order.created", NULL), 6);
    expect_log(&log, 0, 1, 2, 5, 6, 11, -1);
    assert_int_equal(publish(b, "order", NULL), 3);
    expect_log(&log, 2, 5, 9, -1);
    assert_int_equal(publish(b, "order.item.added", NULL), 2);
    expect_log(&log, 2, 5, -1);
    assert_int_equal(publish(b, "payment.failed", NULL), 4);
    expect_log(&log, 3, 4, 5, 6, -1);
    assert_int_equal(publish(b, "payment.card.failed", NULL), 2);
    expect_log(&log, 4, 5, -1);
    assert_int_equal(publish(b, "failed", NULL), 2);
    expect_log(&log, 4, 5, -1);
    assert_int_equal(publish(b, "a.b.c.z", NULL), 4);
    expect_log(&log, 5, 7, 8, 10, -1);
    assert_int_equal(publish(b, "x.b", NULL), 4);
    expect_log(&log, 5, 6, 8, 10, -1);
    assert_int_equal(publish(b, "orders.created", NULL), 2);
    expect_log(&log, 5, 6, -1);
    af_bus_free(b);
}

/* Delivery follows subscription ids even when matches come from different index places. */
static void test_bus_order(void **state) {
    (void)state;
    af_bus_t *b = af_bus_inproc_new();
    log_t log = {0};
    sub_ctx_t c[6];
    memset(c, 0, sizeof c);
    static const char *const patterns[] = {"#",       "order.created", "*.created",
                                           "order.*", "order.created", "#.created"};
    for (int i = 0; i < 6; i++) {
        c[i].log = &log;
        c[i].tag = i;
        sub(b, &c[i], patterns[i], NULL);
    }
    assert_int_equal(publish(b, "order.created", NULL), 6);
    expect_log(&log, 0, 1, 2, 3, 4, 5, -1);
    assert_string_equal(log.last_id, "ev-1");
    assert_int_equal(log.last_at, 1700000000000);
    af_bus_free(b);
}

/* More matches than fit on the publish's stack, from three index places, still in id order. */
static void test_bus_many_matches(void **state) {
    (void)state;
    af_bus_t *b = af_bus_inproc_new();
    log_t log = {0};
    static sub_ctx_t c[200];
    static const char *const patterns[] = {"#", "order.created", "order.#", "*.created"};
    for (int i = 0; i < 200; i++) {
        c[i] = (sub_ctx_t){.log = &log, .tag = i};
        sub(b, &c[i], patterns[i % 4], NULL);
    }
    assert_int_equal(publish(b, "order.created", NULL), 200);
    assert_int_equal(log.n, 200);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(log.tags[i], i);
    }
    log.n = 0;
    assert_int_equal(publish(b, "order.updated", NULL), 100);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(log.tags[i], (i / 2) * 4 + (i % 2) * 2);
    }
    af_bus_free(b);
}

static void test_bus_where(void **state) {
    (void)state;
    af_bus_t *b = af_bus_inproc_new();
    log_t log = {0};
    sub_ctx_t c[4];
    memset(c, 0, sizeof c);
    for (int i = 0; i < 4; i++) {
        c[i].log = &log;
        c[i].tag = i;
    }
    sub(b, &c[0], "order.created", "{\"amount\": {\"gte\": 100}}");
    sub(b, &c[1], "order.created", "{\"customer.tier\": {\"in\": [\"gold\", \"platinum\"]}}");
    sub(b, &c[2], "order.*", "{\"$or\": [{\"vip\": true}, {\"amount\": {\"lt\": 10}}]}");
    sub(b, &c[3], "order.created", "{}");
    assert_int_equal(publish(b, "order.created", "{\"amount\": 150}"), 2);
    expect_log(&log, 0, 3, -1);
    assert_int_equal(publish(b, "order.created",
                             "{\"amount\": 50, \"customer\": {\"tier\": "
                             "\"gold\"}, \"vip\": true}"),
                     3);
    expect_log(&log, 1, 2, 3, -1);
    assert_int_equal(publish(b, "order.updated", "{\"amount\": 5}"), 1);
    expect_log(&log, 2, -1);
    assert_int_equal(publish(b, "order.updated", "{\"amount\": 500}"), 0);
    expect_log(&log, -1);
    af_bus_event_t nodata = {.id = "e", .type = "order.created", .data = NULL};
    assert_int_equal(af_bus_publish(b, &nodata), 1);
    expect_log(&log, 3, -1);
    af_bus_free(b);
}

static void test_bus_rejects(void **state) {
    (void)state;
    af_bus_t *b = af_bus_inproc_new();
    log_t log = {0};
    sub_ctx_t c = {.log = &log};
    sub(b, &c, "#", NULL);
    static const char *const bad_types[] = {"order.*", "#", "", "a..b", "order created", ".a"};
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
        assert_int_equal(publish(b, bad_types[i], NULL), AF_EINVAL);
    }
    af_bus_event_t notype = {.id = "e", .type = NULL};
    assert_int_equal(af_bus_publish(b, &notype), AF_EINVAL);
    assert_int_equal(af_bus_publish(b, NULL), AF_EINVAL);
    expect_log(&log, -1);

    uint64_t id = 99;
    af_error_t err = {0};
    assert_int_equal(af_bus_subscribe(b, "order.cre*", NULL, deliver, &c, &id, &err), AF_EINVAL);
    assert_non_null(strstr(err.msg, "or be a lone * or #"));
    assert_int_equal(af_bus_subscribe(b, NULL, NULL, deliver, &c, &id, &err), AF_EINVAL);
    assert_int_equal(af_bus_subscribe(b, "#.#.#", NULL, deliver, &c, &id, &err), AF_EINVAL);
    assert_non_null(strstr(err.msg, "more than two #"));
    json_t *w = load("{\"amount\": {\"gtt\": 1}}");
    assert_int_equal(af_bus_subscribe(b, "order.*", w, deliver, &c, &id, &err), AF_EINVAL);
    assert_string_equal(err.msg, "where.amount: unknown operator 'gtt' (eq, ne, gt, gte, lt, lte, "
                                 "in, nin, exists, prefix, suffix, contains)");
    json_decref(w);
    assert_int_equal(af_bus_subscribe(b, "order.*", NULL, NULL, &c, &id, &err), AF_EINVAL);
    assert_int_equal(id, 99);
    assert_int_equal(af_bus_count(b), 1);
    assert_int_equal(af_bus_unsubscribe(b, 0), AF_ENOTFOUND);
    assert_int_equal(af_bus_unsubscribe(b, 2), AF_ENOTFOUND);
    assert_int_equal(af_bus_unsubscribe(b, 1), 0);
    assert_int_equal(af_bus_unsubscribe(b, 1), AF_ENOTFOUND);
    assert_int_equal(af_bus_count(b), 0);
    assert_int_equal(publish(b, "order.created", NULL), 0);
    /* ids keep growing after removals */
    assert_int_equal(sub(b, &c, "#", NULL), 2);
    af_bus_free(b);
    af_bus_free(NULL);
}

static void test_bus_unsubscribe_in_callback(void **state) {
    (void)state;
    af_bus_t *b = af_bus_inproc_new();
    log_t log = {0};
    sub_ctx_t c[5];
    memset(c, 0, sizeof c);
    for (int i = 0; i < 5; i++) {
        c[i].log = &log;
        c[i].tag = i;
        sub(b, &c[i], i % 2 ? "order.*" : "order.created", NULL);
    }
    c[1].unsub = c[3].id; /* a later one: it must not get this event */
    c[2].unsub = c[2].id; /* itself */
    c[4].unsub = c[0].id; /* an earlier one, already delivered */
    assert_int_equal(publish(b, "order.created", NULL), 4);
    expect_log(&log, 0, 1, 2, 4, -1);
    assert_int_equal(c[1].unsub_rc, 0);
    assert_int_equal(c[2].unsub_rc, 0);
    assert_int_equal(c[4].unsub_rc, 0);
    assert_int_equal(af_bus_count(b), 2);
    assert_int_equal(af_bus_unsubscribe(b, c[3].id), AF_ENOTFOUND);
    assert_int_equal(publish(b, "order.created", NULL), 2);
    expect_log(&log, 1, 4, -1);

    /* the last subscription of a pattern goes from inside a callback, the other one's outside;
     * both patterns can come back afterwards */
    c[1].unsub = c[4].id;
    c[4].unsub = c[1].id;
    assert_int_equal(publish(b, "order.created", NULL), 1);
    expect_log(&log, 1, -1);
    assert_int_equal(c[1].unsub, 0);       /* called */
    assert_int_equal(c[4].unsub, c[1].id); /* never called */
    c[4].unsub = 0;
    assert_int_equal(af_bus_count(b), 1);
    assert_int_equal(af_bus_unsubscribe(b, c[4].id), AF_ENOTFOUND);
    assert_int_equal(af_bus_unsubscribe(b, c[1].id), 0);
    assert_int_equal(af_bus_count(b), 0);
    assert_int_equal(publish(b, "order.created", NULL), 0);
    sub(b, &c[0], "order.created", NULL);
    sub(b, &c[1], "order.*", NULL);
    assert_int_equal(publish(b, "order.created", NULL), 2);
    expect_log(&log, 0, 1, -1);
    af_bus_free(b);
}

/* Callbacks that subscribe and publish: a new subscription does not see the event under way;
 * a nested publish delivers at once, and its unsubscriptions hold for the outer one. */
static void test_bus_reentrant(void **state) {
    (void)state;
    af_bus_t *b = af_bus_inproc_new();
    log_t log = {0};
    sub_ctx_t c[4], fresh = {.log = &log, .tag = 9};
    memset(c, 0, sizeof c);
    for (int i = 0; i < 4; i++) {
        c[i].log = &log;
        c[i].tag = i;
    }
    sub(b, &c[0], "order.created", NULL);
    sub(b, &c[1], "audit.#", NULL);
    sub(b, &c[2], "order.#", NULL);
    sub(b, &c[3], "order.created", NULL);
    c[0].subscribe = "order.created";
    c[0].new_ctx = &fresh;
    fresh.bus = b;
    c[0].publish = "audit.order";
    c[1].unsub = c[3].id; /* in the nested publish */
    assert_int_equal(publish(b, "order.created", NULL), 2);
    expect_log(&log, 0, 1, 2, -1);
    assert_int_equal(c[0].publish_rc, 1);
    assert_int_equal(c[1].unsub_rc, 0);
    assert_int_equal(af_bus_count(b), 4);
    assert_int_equal(publish(b, "order.created", NULL), 3);
    expect_log(&log, 0, 2, 9, -1);
    af_bus_free(b);
}

/* The index against brute force: random patterns (with repeats) and types over a small
 * alphabet, random unsubscriptions and new subscriptions; the bus must deliver to exactly the
 * live subscriptions whose pattern af_event_type_match accepts, in id order. */
#define RSUBS 600
#define RMAX  1200

typedef struct {
    int hits[RMAX];
    size_t n;
} hits_t;

typedef struct {
    hits_t *hits;
    int index;
} rctx_t;

static void record(void *ud, const af_bus_event_t *ev) {
    rctx_t *r = ud;
    (void)ev;
    r->hits->hits[r->hits->n++] = r->index;
}

static void random_name(char *buf, int pattern) {
    static const char *const segs[] = {"a", "b", "c", "order", "*", "#"};
    int n = 1 + rand() % 4, hashes = 0;
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        const char *s = segs[rand() % (pattern ? 6 : 4)];
        if (*s == '#' && ++hashes > 2) {
            s = "a";
        }
        len += (size_t)sprintf(buf + len, "%s%s", i ? "." : "", s);
    }
}

static void test_bus_index_vs_brute_force(void **state) {
    (void)state;
    srand(7);
    af_bus_t *b = af_bus_inproc_new();
    static char pats[RMAX][64];
    static rctx_t ctx[RMAX];
    static uint64_t ids[RMAX];
    static int live[RMAX];
    hits_t hits = {{0}, 0};
    int n = 0; /* subscriptions made; index order is id order */
    size_t nlive = 0;
    for (int round = 0; round < 1000; round++) {
        if (n < RMAX && (n < RSUBS || rand() % 2 == 0)) {
            int fill = n < RSUBS ? RSUBS - n : 1;
            for (int j = 0; j < fill; j++, n++) {
                random_name(pats[n], 1);
                ctx[n] = (rctx_t){&hits, n};
                assert_int_equal(af_event_type_check(pats[n], 1, NULL), 0);
                assert_int_equal(af_bus_subscribe(b, pats[n], NULL, record, &ctx[n], &ids[n], NULL),
                                 0);
                assert_true(n == 0 || ids[n] > ids[n - 1]);
                live[n] = 1;
                nlive++;
            }
        }
        char type[64];
        random_name(type, 0);
        hits.n = 0;
        int got = publish(b, type, NULL);
        size_t k = 0;
        for (int i = 0; i < n; i++) {
            if (live[i] && af_event_type_match(pats[i], type)) {
                if (k >= hits.n || hits.hits[k] != i) {
                    fail_msg("type '%s': delivery %zu should go to '%s' (#%d)", type, k, pats[i],
                             i);
                }
                k++;
            }
        }
        assert_int_equal(k, hits.n);
        assert_int_equal(got, (int)k);
        for (int j = 0; j < 2; j++) {
            int i = rand() % n;
            assert_int_equal(af_bus_unsubscribe(b, ids[i]), live[i] ? 0 : AF_ENOTFOUND);
            nlive -= (size_t)live[i];
            live[i] = 0;
        }
        assert_int_equal(af_bus_count(b), nlive);
    }
    af_bus_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_predicate_operators),
        cmocka_unit_test(test_predicate_data_shapes),
        cmocka_unit_test(test_predicate_owns_its_values),
        cmocka_unit_test(test_predicate_errors),
        cmocka_unit_test(test_bus_patterns),
        cmocka_unit_test(test_bus_order),
        cmocka_unit_test(test_bus_many_matches),
        cmocka_unit_test(test_bus_where),
        cmocka_unit_test(test_bus_rejects),
        cmocka_unit_test(test_bus_unsubscribe_in_callback),
        cmocka_unit_test(test_bus_reentrant),
        cmocka_unit_test(test_bus_index_vs_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
