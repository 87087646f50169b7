/* predicate.c -- field predicates (a subscription's `where`): a JSON spec compiled into a tree of
 * AND / OR / NOT nodes and field tests with pre-split paths, evaluated without allocating. */
#include "bus/predicate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { N_AND, N_OR, N_NOT, N_FIELD } node_kind_t;

typedef enum {
    OP_EQ,
    OP_NE,
    OP_GT,
    OP_GTE,
    OP_LT,
    OP_LTE,
    OP_IN,
    OP_NIN,
    OP_EXISTS,
    OP_PREFIX,
    OP_SUFFIX,
    OP_CONTAINS
} op_t;

static const char *const op_names[] = {"eq", "ne",  "gt",     "gte",    "lt",     "lte",
                                       "in", "nin", "exists", "prefix", "suffix", "contains"};
#define OP_COUNT (sizeof op_names / sizeof op_names[0])

/* One segment of a field path: an object key, and an array index when it is all digits. */
typedef struct {
    const char *key; /* into the node's path copy */
    size_t len;
    size_t index;
    int is_index;
} seg_t;

/* One operator test of a field: the operand is an owned copy of the spec's value. */
typedef struct {
    op_t op;
    json_t *value;
    const char *str; /* value's bytes when it is a string */
    size_t len;
} test_t;

typedef struct node_s {
    node_kind_t kind;
    struct node_s *kids; /* N_AND, N_OR: nkids; N_NOT: one */
    size_t nkids;
    char *path; /* N_FIELD: the path, split into segs */
    seg_t segs[AF_PREDICATE_MAX_SEGS];
    size_t nsegs;
    test_t *tests;
    size_t ntests;
} node_t;

struct af_predicate_s {
    node_t root;
};

/* ---- evaluation ----------------------------------------------------------------------------- */

/* 1 when a and b are equal JSON values; numbers compare by value. Recursion is bounded by the
 * depth of the shallower value. */
static int json_eq(const json_t *a, const json_t *b) {
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b)) {
            return json_integer_value(a) == json_integer_value(b);
        }
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b)) {
        return 0;
    }
    switch (json_typeof(a)) {
    case JSON_STRING: {
        size_t n = json_string_length(a);
        return n == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), n) == 0;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(a);
        if (n != json_array_size(b)) {
            return 0;
        }
        for (size_t i = 0; i < n; i++) {
            if (!json_eq(json_array_get(a, i), json_array_get(b, i))) {
                return 0;
            }
        }
        return 1;
    }
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b)) {
            return 0;
        }
        json_t *ma = (json_t *)a;
        for (void *it = json_object_iter(ma); it; it = json_object_iter_next(ma, it)) {
            const json_t *vb =
                json_object_getn(b, json_object_iter_key(it), json_object_iter_key_len(it));
            if (vb == NULL || !json_eq(json_object_iter_value(it), vb)) {
                return 0;
            }
        }
        return 1;
    }
    default: /* true, false, null */
        return 1;
    }
}

/* Orders field against the operand: 1 with *cmp (<0, 0, >0) when both are numbers or both
 * strings, else 0. */
static int order(const json_t *field, const test_t *t, int *cmp) {
    const json_t *v = t->value;
    if (json_is_number(field) && json_is_number(v)) {
        if (json_is_integer(field) && json_is_integer(v)) {
            json_int_t x = json_integer_value(field), y = json_integer_value(v);
            *cmp = (x > y) - (x < y);
        } else {
            double x = json_number_value(field), y = json_number_value(v);
            *cmp = (x > y) - (x < y);
        }
        return 1;
    }
    if (json_is_string(field) && t->str != NULL) {
        size_t n = json_string_length(field);
        int c = memcmp(json_string_value(field), t->str, n < t->len ? n : t->len);
        *cmp = c != 0 ? c : (n > t->len) - (n < t->len);
        return 1;
    }
    return 0;
}

/* 1 when any element of the array equals v. */
static int array_has(const json_t *array, const json_t *v) {
    size_t n = json_array_size(array);
    for (size_t i = 0; i < n; i++) {
        if (json_eq(json_array_get(array, i), v)) {
            return 1;
        }
    }
    return 0;
}

/* 1 when hay[0..n) holds needle[0..m). */
static int has_substring(const char *hay, size_t n, const char *needle, size_t m) {
    if (m == 0) {
        return 1;
    }
    for (const char *end = hay + n, *p = hay; (size_t)(end - p) >= m; p++) {
        p = memchr(p, needle[0], (size_t)(end - p) - m + 1);
        if (p == NULL) {
            return 0;
        }
        if (memcmp(p, needle, m) == 0) {
            return 1;
        }
    }
    return 0;
}

/* One operator test of a field value (NULL when the field is missing). */
static int test_holds(const test_t *t, const json_t *v) {
    int cmp;
    switch (t->op) {
    case OP_EQ:
        return v != NULL && json_eq(v, t->value);
    case OP_NE:
        return v == NULL || !json_eq(v, t->value);
    case OP_GT:
        return v != NULL && order(v, t, &cmp) && cmp > 0;
    case OP_GTE:
        return v != NULL && order(v, t, &cmp) && cmp >= 0;
    case OP_LT:
        return v != NULL && order(v, t, &cmp) && cmp < 0;
    case OP_LTE:
        return v != NULL && order(v, t, &cmp) && cmp <= 0;
    case OP_IN:
        return v != NULL && array_has(t->value, v);
    case OP_NIN:
        return v == NULL || !array_has(t->value, v);
    case OP_EXISTS:
        return (v != NULL) == json_is_true(t->value);
    case OP_PREFIX:
        return json_is_string(v) && json_string_length(v) >= t->len &&
               memcmp(json_string_value(v), t->str, t->len) == 0;
    case OP_SUFFIX: {
        size_t n = json_string_length(v);
        return json_is_string(v) && n >= t->len &&
               memcmp(json_string_value(v) + n - t->len, t->str, t->len) == 0;
    }
    case OP_CONTAINS:
        if (json_is_string(v)) {
            return t->str != NULL &&
                   has_substring(json_string_value(v), json_string_length(v), t->str, t->len);
        }
        return json_is_array(v) && array_has(v, t->value);
    }
    return 0;
}

/* The value at the node's path in data, or NULL when some segment is missing. */
static const json_t *resolve(const node_t *n, const json_t *v) {
    for (size_t i = 0; i < n->nsegs && v != NULL; i++) {
        const seg_t *s = &n->segs[i];
        if (json_is_object(v)) {
            v = json_object_getn(v, s->key, s->len);
        } else if (json_is_array(v) && s->is_index) {
            v = json_array_get(v, s->index);
        } else {
            return NULL;
        }
    }
    return v;
}

static int eval_node(const node_t *n, const json_t *data) {
    switch (n->kind) {
    case N_AND:
        for (size_t i = 0; i < n->nkids; i++) {
            if (!eval_node(&n->kids[i], data)) {
                return 0;
            }
        }
        return 1;
    case N_OR:
        for (size_t i = 0; i < n->nkids; i++) {
            if (eval_node(&n->kids[i], data)) {
                return 1;
            }
        }
        return 0;
    case N_NOT:
        return !eval_node(&n->kids[0], data);
    case N_FIELD: {
        const json_t *v = resolve(n, data);
        for (size_t i = 0; i < n->ntests; i++) {
            if (!test_holds(&n->tests[i], v)) {
                return 0;
            }
        }
        return 1;
    }
    }
    return 0;
}

int af_predicate_eval(const af_predicate_t *p, const json_t *data) {
    return p == NULL || eval_node(&p->root, data);
}

/* ---- freeing -------------------------------------------------------------------------------- */

static void node_clear(node_t *n) {
    for (size_t i = 0; i < n->nkids; i++) {
        node_clear(&n->kids[i]);
    }
    free(n->kids);
    for (size_t i = 0; i < n->ntests; i++) {
        json_decref(n->tests[i].value);
    }
    free(n->tests);
    free(n->path);
}

void af_predicate_free(af_predicate_t *p) {
    if (p != NULL) {
        node_clear(&p->root);
        free(p);
    }
}

/* ---- compiling ------------------------------------------------------------------------------ */

typedef struct {
    af_error_t *err;
    int clauses;
    char where[512]; /* "where.$or[1].amount": the place being compiled, for messages */
    size_t wlen;
} compiler_t;

/* Appends ".key" or "[i]" (key NULL) to c->where, cut short if need be; returns the length to
 * restore afterwards with where_pop. */
static size_t where_push(compiler_t *c, const char *key, size_t i) {
    size_t old = c->wlen, room = sizeof c->where - c->wlen;
    int n = key ? snprintf(c->where + c->wlen, room, ".%s", key)
                : snprintf(c->where + c->wlen, room, "[%zu]", i);
    c->wlen += n < 0 ? 0 : (size_t)n < room ? (size_t)n : room - 1;
    return old;
}

static void where_pop(compiler_t *c, size_t len) {
    c->wlen = len;
    c->where[len] = '\0';
}

/* Counts one clause against the limit. */
static int count_clause(compiler_t *c) {
    if (++c->clauses > AF_PREDICATE_MAX_CLAUSES) {
        return af_error_set(c->err, AF_EINVAL, "%s: more than %d clauses in one where", c->where,
                            AF_PREDICATE_MAX_CLAUSES);
    }
    return 0;
}

static int compile_spec(compiler_t *c, const json_t *spec, node_t *n, int depth);

/* Splits the field path key[0..len) into n->segs. */
static int compile_path(compiler_t *c, const char *key, size_t len, node_t *n) {
    if (len == 0) {
        return af_error_set(c->err, AF_EINVAL, "%s: a field path may not be empty", c->where);
    }
    n->path = malloc(len + 1);
    if (n->path == NULL) {
        return af_error_set(c->err, AF_ENOMEM, "out of memory");
    }
    memcpy(n->path, key, len);
    n->path[len] = '\0';
    const char *seg = n->path, *end = n->path + len;
    for (const char *p = n->path;; p++) {
        if (p < end && *p != '.') {
            continue;
        }
        size_t sn = (size_t)(p - seg);
        if (sn == 0) {
            return af_error_set(c->err, AF_EINVAL, "%s: field path has an empty segment", c->where);
        }
        if (n->nsegs == AF_PREDICATE_MAX_SEGS) {
            return af_error_set(c->err, AF_EINVAL, "%s: field path has more than %d segments",
                                c->where, AF_PREDICATE_MAX_SEGS);
        }
        seg_t *s = &n->segs[n->nsegs++];
        s->key = seg;
        s->len = sn;
        s->is_index = sn <= 9;
        s->index = 0;
        for (size_t i = 0; i < sn && s->is_index; i++) {
            s->is_index = seg[i] >= '0' && seg[i] <= '9';
            s->index = s->index * 10 + (size_t)(seg[i] - '0');
        }
        if (p == end) {
            return 0;
        }
        seg = p + 1;
    }
}

/* Compiles operator `name` with operand v into t. */
static int compile_test(compiler_t *c, const char *name, const json_t *v, test_t *t) {
    size_t op = 0;
    while (op < OP_COUNT && strcmp(op_names[op], name) != 0) {
        op++;
    }
    if (op == OP_COUNT) {
        return af_error_set(c->err, AF_EINVAL,
                            "%s: unknown operator '%s' (eq, ne, gt, gte, lt, lte, in, nin, "
                            "exists, prefix, suffix, contains)",
                            c->where, name);
    }
    t->op = (op_t)op;
    const char *want = NULL;
    switch (t->op) {
    case OP_GT:
    case OP_GTE:
    case OP_LT:
    case OP_LTE:
        want = json_is_number(v) || json_is_string(v) ? NULL : "a number or a string";
        break;
    case OP_IN:
    case OP_NIN:
        want = json_is_array(v) ? NULL : "an array of values";
        break;
    case OP_EXISTS:
        want = json_is_boolean(v) ? NULL : "true or false";
        break;
    case OP_PREFIX:
    case OP_SUFFIX:
        want = json_is_string(v) ? NULL : "a string";
        break;
    default:
        break;
    }
    if (want != NULL) {
        return af_error_set(c->err, AF_EINVAL, "%s: operator '%s' takes %s", c->where, name, want);
    }
    int rc = count_clause(c);
    if (rc != 0) {
        return rc;
    }
    t->value = json_deep_copy(v);
    if (t->value == NULL) {
        return af_error_set(c->err, AF_ENOMEM, "out of memory");
    }
    if (json_is_string(t->value)) {
        t->str = json_string_value(t->value);
        t->len = json_string_length(t->value);
    }
    return 0;
}

/* Compiles one field: its path and either an object of operators or a value to equal. */
static int compile_field(compiler_t *c, const char *key, size_t klen, const json_t *v, node_t *n) {
    n->kind = N_FIELD;
    int rc = compile_path(c, key, klen, n);
    if (rc != 0) {
        return rc;
    }
    if (!json_is_object(v)) {
        n->tests = calloc(1, sizeof *n->tests);
        if (n->tests == NULL) {
            return af_error_set(c->err, AF_ENOMEM, "out of memory");
        }
        n->ntests = 1;
        return compile_test(c, "eq", v, &n->tests[0]);
    }
    size_t count = json_object_size(v);
    if (count == 0) {
        return af_error_set(c->err, AF_EINVAL,
                            "%s: an object of operators needs at least one (use {\"eq\": {}} to "
                            "compare with an empty object)",
                            c->where);
    }
    n->tests = calloc(count, sizeof *n->tests);
    if (n->tests == NULL) {
        return af_error_set(c->err, AF_ENOMEM, "out of memory");
    }
    json_t *ops = (json_t *)v;
    for (void *it = json_object_iter(ops); it; it = json_object_iter_next(ops, it)) {
        rc = compile_test(c, json_object_iter_key(it), json_object_iter_value(it),
                          &n->tests[n->ntests++]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Compiles "$or": an array of 1..16 specs. */
static int compile_or(compiler_t *c, const json_t *v, node_t *n, int depth) {
    n->kind = N_OR;
    size_t count = json_array_size(v);
    if (!json_is_array(v) || count == 0 || count > AF_PREDICATE_MAX_OR) {
        return af_error_set(c->err, AF_EINVAL, "%s: $or takes an array of 1 to %d specs", c->where,
                            AF_PREDICATE_MAX_OR);
    }
    int rc = count_clause(c);
    if (rc != 0) {
        return rc;
    }
    n->kids = calloc(count, sizeof *n->kids);
    if (n->kids == NULL) {
        return af_error_set(c->err, AF_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < count; i++) {
        size_t old = where_push(c, NULL, i);
        n->nkids++;
        rc = compile_spec(c, json_array_get(v, i), &n->kids[i], depth + 1);
        if (rc != 0) {
            return rc;
        }
        where_pop(c, old);
    }
    return 0;
}

/* Compiles "$not": one spec. */
static int compile_not(compiler_t *c, const json_t *v, node_t *n, int depth) {
    n->kind = N_NOT;
    int rc = count_clause(c);
    if (rc != 0) {
        return rc;
    }
    n->kids = calloc(1, sizeof *n->kids);
    if (n->kids == NULL) {
        return af_error_set(c->err, AF_ENOMEM, "out of memory");
    }
    n->nkids = 1;
    return compile_spec(c, v, &n->kids[0], depth + 1);
}

/* Compiles one spec object (all keys ANDed) into n, at nesting depth (1 for the top). */
static int compile_spec(compiler_t *c, const json_t *spec, node_t *n, int depth) {
    n->kind = N_AND;
    if (!json_is_object(spec)) {
        return af_error_set(c->err, AF_EINVAL,
                            "%s: a where spec is an object of field conditions, not %s", c->where,
                            json_is_array(spec)    ? "an array"
                            : json_is_string(spec) ? "a string"
                            : json_is_number(spec) ? "a number"
                                                   : "true, false or null");
    }
    if (depth > AF_PREDICATE_MAX_DEPTH) {
        return af_error_set(c->err, AF_EINVAL, "%s: specs nest deeper than %d", c->where,
                            AF_PREDICATE_MAX_DEPTH);
    }
    size_t count = json_object_size(spec);
    if (count == 0) {
        return 0;
    }
    n->kids = calloc(count, sizeof *n->kids);
    if (n->kids == NULL) {
        return af_error_set(c->err, AF_ENOMEM, "out of memory");
    }
    json_t *obj = (json_t *)spec;
    for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        const json_t *v = json_object_iter_value(it);
        node_t *kid = &n->kids[n->nkids++];
        size_t old = where_push(c, key, 0);
        int rc;
        if (strcmp(key, "$or") == 0) {
            rc = compile_or(c, v, kid, depth);
        } else if (strcmp(key, "$not") == 0) {
            rc = compile_not(c, v, kid, depth);
        } else if (key[0] == '$') {
            where_pop(c, old);
            rc = af_error_set(c->err, AF_EINVAL,
                              "%s: unknown key '%s' (field paths do not start with $; the "
                              "special keys are $or and $not)",
                              c->where, key);
        } else {
            rc = compile_field(c, key, klen, v, kid);
        }
        if (rc != 0) {
            return rc;
        }
        where_pop(c, old);
    }
    return 0;
}

int af_predicate_compile(const json_t *spec, af_predicate_t **out, af_error_t *err) {
    *out = NULL;
    af_predicate_t *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    p->root.kind = N_AND;
    if (spec == NULL || json_is_null(spec)) {
        *out = p;
        return 0;
    }
    compiler_t c = {.err = err, .where = "where", .wlen = 5};
    int rc = compile_spec(&c, spec, &p->root, 1);
    if (rc != 0) {
        af_predicate_free(p);
        return rc;
    }
    *out = p;
    return 0;
}
