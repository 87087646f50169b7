/* jsonschema.c -- JSON Schema compiled to a graph of nodes (one per subschema, $ref an edge, so
 * recursive schemas are cycles), validation with paths and messages, and default filling. */
#include "core/jsonschema.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH AF_SCHEMA_MAX_DEPTH

/* Subschemas applied to one value (through $ref, allOf, ...) nest without bound in a schema whose
 * $refs chain many definitions; cycles are refused at compile time, long chains here. */
#define EVAL_MAX_DEPTH (8 * AF_SCHEMA_MAX_DEPTH)

/* Schema documents and values copied by apply_defaults may nest this deep (whole JSON, not
 * subschemas: "default" and "const" values and annotations count too). */
#define DOC_MAX_DEPTH 512

/* Bytes of a value or key quoted in a message, and of one branch's reason in an anyOf/oneOf
 * message; longer ones are cut with "...". */
#define BRIEF_MAX      80
#define PATH_KEY_SHOWN 64
#define BRANCH_MSG_MAX 300

/* Arrays longer than this find duplicates for uniqueItems by hashing instead of comparing all
 * pairs. */
#define UNIQUE_PAIRWISE_MAX 16

enum {
    T_NULL = 1 << 0,
    T_BOOLEAN = 1 << 1,
    T_OBJECT = 1 << 2,
    T_ARRAY = 1 << 3,
    T_NUMBER = 1 << 4,
    T_STRING = 1 << 5,
    T_INTEGER = 1 << 6,
};

static const char *const type_names[] = {"null",   "boolean", "object", "array",
                                         "number", "string",  "integer"};

typedef struct node_s node_t;

typedef struct list_s {
    node_t **v;
    size_t n;
} list_t;

typedef struct prop_s {
    const char *key; /* borrowed from the document */
    node_t *schema;
} prop_t;

/* One compiled subschema. json_t pointers are borrowed from the schema's own document. */
struct node_s {
    int boolean;  /* 1 true, 0 false, -1 an object schema */
    int compiled; /* 0 while it is only the target of a $ref */
    int color;    /* cycle search: 0 unseen, 1 on the path, 2 done */
    const json_t *json;
    char *where; /* JSON pointer of the subschema, "#/properties/a" */
    unsigned types;
    char *type_text; /* "string or null" */
    const json_t *const_value, *enum_values, *default_value;
    const json_t *minimum, *maximum, *exclusive_minimum, *exclusive_maximum, *multiple_of;
    int64_t min_length, max_length, min_items, max_items, min_props, max_props; /* -1: none */
    int unique_items;
    regex_t *pattern;
    const char *pattern_text;
    list_t prefix_items;
    node_t *items;
    const json_t *properties; /* for membership tests of additionalProperties */
    prop_t *props;
    size_t nprops;
    const json_t *required;
    node_t *additional;
    node_t *ref;
    list_t all_of, any_of, one_of;
    node_t *not_schema;
};

typedef struct memo_s {
    const json_t *key;
    node_t *node;
} memo_t;

struct af_schema_s {
    json_t *doc;
    node_t *root;
    node_t **nodes; /* all of them, for freeing and the cycle search */
    size_t nnodes, cap_nodes;
    memo_t *memo; /* object subschema -> node, so a $ref target is compiled once */
    size_t memo_len, memo_cap;
};

/* ---- small helpers ---- */

static const char *value_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "value";
}

/* The type bits a value matches: an integer is also a number, an integral real also an integer. */
static unsigned value_types(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return T_OBJECT;
    case JSON_ARRAY:
        return T_ARRAY;
    case JSON_STRING:
        return T_STRING;
    case JSON_INTEGER:
        return T_INTEGER | T_NUMBER;
    case JSON_REAL: {
        double d = json_real_value(v);
        return isfinite(d) && floor(d) == d ? T_INTEGER | T_NUMBER : T_NUMBER;
    }
    case JSON_TRUE:
    case JSON_FALSE:
        return T_BOOLEAN;
    case JSON_NULL:
        return T_NULL;
    }
    return 0;
}

/* Cuts buf (holding len bytes) to at most max bytes without splitting a UTF-8 character, and
 * marks the cut with "...". buf must have room for max + 4 bytes. */
static void cut_text(char *buf, size_t len, size_t max) {
    if (len <= max) {
        buf[len] = '\0';
        return;
    }
    size_t n = max;
    while (n > 0 && ((unsigned char)buf[n] & 0xc0) == 0x80) {
        n--;
    }
    memcpy(buf + n, "...", 4);
}

/* Appends v as compact JSON, stopping once b holds more than `room` bytes: a value of any size
 * or depth costs only what is shown. */
static void brief_put(af_buf_t *b, const json_t *v, size_t room) {
    if (b->len > room) {
        return;
    }
    if (json_is_array(v)) {
        af_buf_add(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v) && b->len <= room; i++) {
            if (i > 0) {
                af_buf_add(b, ",", 1);
            }
            brief_put(b, json_array_get(v, i), room);
        }
        af_buf_add(b, "]", 1);
        return;
    }
    if (json_is_object(v)) {
        af_buf_add(b, "{", 1);
        int first = 1;
        for (void *it = json_object_iter((json_t *)v); it && b->len <= room;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first) {
                af_buf_add(b, ",", 1);
            }
            first = 0;
            json_t *key = json_string(json_object_iter_key(it));
            if (key != NULL) {
                brief_put(b, key, room);
                json_decref(key);
            }
            af_buf_add(b, ":", 1);
            brief_put(b, json_object_iter_value(it), room);
        }
        af_buf_add(b, "}", 1);
        return;
    }
    char *text = af_json_dumps(v, 0);
    if (text != NULL) {
        af_buf_add(b, text, strlen(text));
        free(text);
    }
}

/* A value as compact JSON text for a message, cut to BRIEF_MAX bytes. buf: BRIEF_MAX + 4. */
static const char *brief(const json_t *v, char *buf) {
    af_buf_t b = {0};
    brief_put(&b, v, BRIEF_MAX);
    if (b.data == NULL) {
        af_buf_free(&b);
        return "(value)";
    }
    size_t take = b.len > BRIEF_MAX ? BRIEF_MAX + 1 : b.len;
    memcpy(buf, b.data, take);
    af_buf_free(&b);
    cut_text(buf, take, BRIEF_MAX);
    return buf;
}

/* Sets err to text, cut at a character boundary to fit err->msg: a message must stay valid UTF-8
 * (jansson refuses to make a string of anything else). */
static int set_error(af_error_t *err, int code, char *text) {
    size_t max = sizeof err->msg - 4; /* room for "..." and NUL */
    size_t len = strlen(text);
    if (len > max) {
        cut_text(text, len, max);
    }
    return af_error_set(err, code, "%s", text);
}

/* A key in double quotes with quotes, backslashes, control characters and invalid UTF-8 escaped,
 * cut to PATH_KEY_SHOWN bytes, appended to b. */
static int add_quoted(af_buf_t *b, const char *key, size_t len) {
    int utf8 = af_utf8_valid(key, len, NULL);
    size_t shown = len;
    if (shown > PATH_KEY_SHOWN) {
        shown = PATH_KEY_SHOWN;
        while (utf8 && shown > 0 && ((unsigned char)key[shown] & 0xc0) == 0x80) {
            shown--;
        }
    }
    int rc = af_buf_add(b, "\"", 1);
    for (size_t i = 0; i < shown && rc == 0; i++) {
        unsigned char ch = (unsigned char)key[i];
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            rc = af_buf_add(b, esc, 2);
        } else if (ch < 0x20 || ch == 0x7f || (ch >= 0x80 && !utf8)) {
            rc = af_buf_addf(b, "\\x%02x", ch);
        } else {
            rc = af_buf_add(b, key + i, 1);
        }
    }
    if (rc == 0 && shown < len) {
        rc = af_buf_add(b, "...", 3);
    }
    return rc == 0 ? af_buf_add(b, "\"", 1) : rc;
}

/* Compares two numbers exactly (long double holds every int64 and every double). */
static int num_cmp(const json_t *a, const json_t *b) {
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return (x > y) - (x < y);
    }
    long double x = json_is_integer(a) ? (long double)json_integer_value(a) : json_real_value(a);
    long double y = json_is_integer(b) ? (long double)json_integer_value(b) : json_real_value(b);
    return (x > y) - (x < y);
}

static double num_value(const json_t *v) {
    return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
}

/* JSON Schema equality: numbers by value (1 == 1.0), objects regardless of key order. Returns 1
 * or 0, or -1 when both go on nesting deeper than `left` more levels. */
static int values_equal(const json_t *a, const json_t *b, int left) {
    if (json_is_number(a) && json_is_number(b)) {
        return num_cmp(a, b) == 0;
    }
    if (json_typeof(a) != json_typeof(b)) {
        return 0;
    }
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY: {
        size_t n = json_array_size(a);
        if (n != json_array_size(b)) {
            return 0;
        }
        if (n > 0 && left <= 0) {
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            int eq = values_equal(json_array_get(a, i), json_array_get(b, i), left - 1);
            if (eq != 1) {
                return eq;
            }
        }
        return 1;
    }
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b)) {
            return 0;
        }
        if (json_object_size(a) > 0 && left <= 0) {
            return -1;
        }
        for (void *it = json_object_iter((json_t *)a); it;
             it = json_object_iter_next((json_t *)a, it)) {
            const json_t *other = json_object_get(b, json_object_iter_key(it));
            if (other == NULL) {
                return 0;
            }
            int eq = values_equal(json_object_iter_value(it), other, left - 1);
            if (eq != 1) {
                return eq;
            }
        }
        return 1;
    }
    default:
        return 1; /* null, true, false: same type is the same value */
    }
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    }
    return mix(h);
}

/* A hash consistent with values_equal. Returns 0, or -1 when v nests deeper than `left`. */
static int hash_value(const json_t *v, int left, uint64_t *out) {
    uint64_t h = 0;
    switch (json_typeof(v)) {
    case JSON_NULL:
        h = 1;
        break;
    case JSON_TRUE:
        h = 2;
        break;
    case JSON_FALSE:
        h = 3;
        break;
    case JSON_INTEGER:
    case JSON_REAL: {
        double d = num_value(v);
        if (d == 0) {
            d = 0; /* -0.0 == 0 */
        }
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        h = mix(bits ^ 4);
        break;
    }
    case JSON_STRING:
        h = hash_bytes(json_string_value(v), json_string_length(v));
        break;
    case JSON_ARRAY: {
        if (json_array_size(v) > 0 && left <= 0) {
            return -1;
        }
        h = 5;
        for (size_t i = 0; i < json_array_size(v); i++) {
            uint64_t e;
            if (hash_value(json_array_get(v, i), left - 1, &e) != 0) {
                return -1;
            }
            h = mix(h * 31 + e);
        }
        break;
    }
    case JSON_OBJECT: {
        if (json_object_size(v) > 0 && left <= 0) {
            return -1;
        }
        h = 6; /* members summed: the order of keys does not matter */
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            uint64_t e;
            if (hash_value(json_object_iter_value(it), left - 1, &e) != 0) {
                return -1;
            }
            const char *key = json_object_iter_key(it);
            h += mix(hash_bytes(key, strlen(key)) ^ e);
        }
        h = mix(h);
        break;
    }
    }
    *out = h;
    return 0;
}

/* Returns 1 when v nests no deeper than `left` levels of arrays and objects. */
static int depth_within(const json_t *v, int left) {
    if (json_is_array(v)) {
        if (left <= 0 && json_array_size(v) > 0) {
            return 0;
        }
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (!depth_within(json_array_get(v, i), left - 1)) {
                return 0;
            }
        }
    } else if (json_is_object(v)) {
        if (left <= 0 && json_object_size(v) > 0) {
            return 0;
        }
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!depth_within(json_object_iter_value(it), left - 1)) {
                return 0;
            }
        }
    }
    return 1;
}

/* ---- compiling ---- */

typedef struct compiler_s {
    af_schema_t *s;
    af_buf_t ptr; /* JSON pointer of the subschema being compiled */
    af_error_t *err;
} compiler_t;

static int oom(compiler_t *c) {
    return af_error_set(c->err, AF_ENOMEM, "out of memory compiling a schema");
}

/* Fails with "<pointer>[/<keyword>]: <message>". */
static int bad(compiler_t *c, const char *keyword, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(compiler_t *c, const char *keyword, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof msg) {
        cut_text(msg, sizeof msg - 1, sizeof msg - 4);
    }
    af_buf_t text = {0};
    if (af_buf_addf(&text, "%s%s%s: %s", c->ptr.data, keyword ? "/" : "", keyword ? keyword : "",
                    msg) != 0) {
        af_buf_free(&text);
        return oom(c);
    }
    set_error(c->err, AF_EINVAL, text.data);
    af_buf_free(&text);
    return AF_EINVAL;
}

/* Appends "/segment" (escaped: ~ as ~0, / as ~1) to the pointer; returns the length to restore. */
static int ptr_push(compiler_t *c, const char *seg, size_t *mark) {
    *mark = c->ptr.len;
    int rc = af_buf_add(&c->ptr, "/", 1);
    for (const char *p = seg; *p && rc == 0; p++) {
        rc = *p == '~'   ? af_buf_add(&c->ptr, "~0", 2)
             : *p == '/' ? af_buf_add(&c->ptr, "~1", 2)
                         : af_buf_add(&c->ptr, p, 1);
    }
    return rc == 0 ? 0 : oom(c);
}

static int ptr_push_index(compiler_t *c, size_t i, size_t *mark) {
    *mark = c->ptr.len;
    return af_buf_addf(&c->ptr, "/%zu", i) == 0 ? 0 : oom(c);
}

static void ptr_pop(compiler_t *c, size_t mark) {
    c->ptr.len = mark;
    c->ptr.data[mark] = '\0';
}

static node_t *new_node(compiler_t *c, int boolean) {
    af_schema_t *s = c->s;
    if (s->nnodes == s->cap_nodes) {
        size_t cap = s->cap_nodes ? s->cap_nodes * 2 : 16;
        node_t **nodes = realloc(s->nodes, cap * sizeof *nodes);
        if (nodes == NULL) {
            return NULL;
        }
        s->nodes = nodes;
        s->cap_nodes = cap;
    }
    node_t *n = calloc(1, sizeof *n);
    if (n == NULL) {
        return NULL;
    }
    n->boolean = boolean;
    n->compiled = boolean >= 0;
    n->min_length = n->max_length = n->min_items = n->max_items = -1;
    n->min_props = n->max_props = -1;
    s->nodes[s->nnodes++] = n;
    return n;
}

static void free_node(node_t *n) {
    free(n->where);
    free(n->type_text);
    if (n->pattern) {
        regfree(n->pattern);
        free(n->pattern);
    }
    free(n->prefix_items.v);
    free(n->props);
    free(n->all_of.v);
    free(n->any_of.v);
    free(n->one_of.v);
    free(n);
}

static size_t memo_slot(const af_schema_t *s, const json_t *key) {
    size_t i = (size_t)mix((uint64_t)(uintptr_t)key) & (s->memo_cap - 1);
    while (s->memo[i].key != NULL && s->memo[i].key != key) {
        i = (i + 1) & (s->memo_cap - 1);
    }
    return i;
}

static node_t *memo_get(const af_schema_t *s, const json_t *key) {
    return s->memo_cap ? s->memo[memo_slot(s, key)].node : NULL;
}

static int memo_put(af_schema_t *s, const json_t *key, node_t *node) {
    if ((s->memo_len + 1) * 2 > s->memo_cap) {
        size_t cap = s->memo_cap ? s->memo_cap * 2 : 64;
        memo_t *old = s->memo;
        size_t old_cap = s->memo_cap;
        s->memo = calloc(cap, sizeof *s->memo);
        if (s->memo == NULL) {
            s->memo = old;
            return AF_ENOMEM;
        }
        s->memo_cap = cap;
        for (size_t i = 0; i < old_cap; i++) {
            if (old[i].key) {
                s->memo[memo_slot(s, old[i].key)] = old[i];
            }
        }
        free(old);
    }
    size_t i = memo_slot(s, key);
    s->memo[i].key = key;
    s->memo[i].node = node;
    s->memo_len++;
    return 0;
}

static int compile_into(compiler_t *c, node_t *n, const json_t *js, int depth);

/* Compiles the subschema at the current pointer into *out. */
static int compile_schema(compiler_t *c, const json_t *js, int depth, node_t **out) {
    if (json_is_boolean(js)) {
        *out = new_node(c, json_is_true(js));
        return *out ? 0 : oom(c);
    }
    if (!json_is_object(js)) {
        return bad(c, NULL, "a schema must be an object or a boolean (got %s)",
                   value_type_name(js));
    }
    if (depth > MAX_DEPTH) {
        return bad(c, NULL, "schema nested deeper than %d levels", MAX_DEPTH);
    }
    node_t *n = memo_get(c->s, js);
    if (n == NULL) {
        n = new_node(c, -1);
        if (n == NULL || memo_put(c->s, js, n) != 0) {
            return oom(c);
        }
    }
    *out = n;
    return n->compiled ? 0 : compile_into(c, n, js, depth);
}

/* The subschema under keyword `kw` of js, or NULL for none. */
static int compile_keyword(compiler_t *c, const json_t *js, const char *kw, int depth,
                           node_t **out) {
    const json_t *sub = json_object_get(js, kw);
    *out = NULL;
    if (sub == NULL) {
        return 0;
    }
    size_t mark;
    int rc = ptr_push(c, kw, &mark);
    if (rc == 0) {
        rc = compile_schema(c, sub, depth + 1, out);
    }
    if (rc == 0) {
        ptr_pop(c, mark);
    }
    return rc;
}

/* A non-empty array of subschemas (allOf, anyOf, oneOf, prefixItems). */
static int compile_list(compiler_t *c, const json_t *js, const char *kw, int depth, list_t *out) {
    const json_t *arr = json_object_get(js, kw);
    if (arr == NULL) {
        return 0;
    }
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        return bad(c, kw, "must be a non-empty array of schemas");
    }
    out->v = calloc(json_array_size(arr), sizeof *out->v);
    if (out->v == NULL) {
        return oom(c);
    }
    size_t kw_mark;
    int rc = ptr_push(c, kw, &kw_mark);
    for (size_t i = 0; rc == 0 && i < json_array_size(arr); i++) {
        size_t mark;
        rc = ptr_push_index(c, i, &mark);
        if (rc == 0) {
            rc = compile_schema(c, json_array_get(arr, i), depth + 1, &out->v[i]);
        }
        if (rc == 0) {
            out->n++;
            ptr_pop(c, mark);
        }
    }
    if (rc == 0) {
        ptr_pop(c, kw_mark);
    }
    return rc;
}

/* An object of subschemas (properties, $defs, definitions); props may be NULL to only compile. */
static int compile_map(compiler_t *c, const json_t *js, const char *kw, int depth, prop_t **props,
                       size_t *nprops) {
    const json_t *map = json_object_get(js, kw);
    if (map == NULL) {
        return 0;
    }
    if (!json_is_object(map)) {
        return bad(c, kw, "must be an object of schemas");
    }
    if (props && json_object_size(map) > 0) {
        *props = calloc(json_object_size(map), sizeof **props);
        if (*props == NULL) {
            return oom(c);
        }
    }
    size_t kw_mark;
    int rc = ptr_push(c, kw, &kw_mark);
    for (void *it = json_object_iter((json_t *)map); rc == 0 && it;
         it = json_object_iter_next((json_t *)map, it)) {
        const char *key = json_object_iter_key(it);
        size_t mark;
        node_t *sub = NULL;
        rc = ptr_push(c, key, &mark);
        if (rc == 0) {
            rc = compile_schema(c, json_object_iter_value(it), depth + 1, &sub);
        }
        if (rc == 0) {
            if (props) {
                (*props)[*nprops].key = key;
                (*props)[(*nprops)++].schema = sub;
            }
            ptr_pop(c, mark);
        }
    }
    if (rc == 0) {
        ptr_pop(c, kw_mark);
    }
    return rc;
}

/* A non-negative integer (an integral real such as 2.0 too); -1 in *out when absent. */
static int get_count(compiler_t *c, const json_t *js, const char *kw, int64_t *out) {
    const json_t *v = json_object_get(js, kw);
    if (v == NULL) {
        return 0;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v) && json_real_value(v) >= 0 &&
        floor(json_real_value(v)) == json_real_value(v)) {
        double d = json_real_value(v);
        *out = d >= 9223372036854775807.0 ? INT64_MAX : (int64_t)d;
        return 0;
    }
    char q[BRIEF_MAX + 4];
    return bad(c, kw, "must be a non-negative integer (got %s)", brief(v, q));
}

static int get_number(compiler_t *c, const json_t *js, const char *kw, const json_t **out) {
    const json_t *v = json_object_get(js, kw);
    if (v == NULL || json_is_number(v)) {
        *out = v;
        return 0;
    }
    if (json_is_boolean(v) && strncmp(kw, "exclusive", 9) == 0) {
        return bad(c, kw, "must be a number (the draft-04 boolean form is not supported)");
    }
    return bad(c, kw, "must be a number (got %s)", value_type_name(v));
}

static int compile_type(compiler_t *c, node_t *n, const json_t *type) {
    size_t count = json_is_array(type) ? json_array_size(type) : 1;
    if (!json_is_string(type) && !json_is_array(type)) {
        return bad(c, "type", "must be a type name or an array of them (got %s)",
                   value_type_name(type));
    }
    if (count == 0) {
        return bad(c, "type", "must not be an empty array");
    }
    af_buf_t text = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        const json_t *name = json_is_array(type) ? json_array_get(type, i) : type;
        if (!json_is_string(name)) {
            rc = bad(c, "type", "must contain only type names (got %s)", value_type_name(name));
            break;
        }
        unsigned bit = 0;
        for (size_t k = 0; k < sizeof type_names / sizeof type_names[0]; k++) {
            if (strcmp(json_string_value(name), type_names[k]) == 0) {
                bit = 1u << k;
            }
        }
        if (bit == 0) {
            char q[BRIEF_MAX + 4];
            rc = bad(c, "type", "unknown type %s", brief(name, q));
        } else if (n->types & bit) {
            rc = bad(c, "type", "names \"%s\" twice", json_string_value(name));
        } else {
            n->types |= bit;
            const char *sep = i == 0 ? "" : i + 1 == count ? " or " : ", ";
            if (af_buf_addf(&text, "%s%s", sep, json_string_value(name)) != 0) {
                rc = oom(c);
            }
        }
    }
    if (rc != 0) {
        af_buf_free(&text);
        return rc;
    }
    n->type_text = text.data;
    return 0;
}

/* Rewrites the ECMA-262 escapes that POSIX lacks (\d \D \s \S \w \W, also inside [...] where it
 * can) and (?:...) groups; refuses other escapes of letters, which POSIX would take literally.
 * Returns a new string, or NULL with *why set (or NULL *why: out of memory). */
static char *ecma_to_posix(const char *src, const char **why) {
    af_buf_t b = {0};
    int in_class = 0, rc = 0;
    *why = NULL;
    for (const char *p = src; *p && rc == 0; p++) {
        if (*p == '\\' && p[1] != '\0') {
            char e = *++p;
            char pass[3] = {'\\', e, '\0'}; /* an escape POSIX reads the same way */
            char lit[2] = {e, '\0'};
            int letter = (e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z');
            int digit = e >= '0' && e <= '9';
            const char *out = NULL;
            switch (e) {
            case 'd':
                out = in_class ? "0-9" : "[0-9]";
                break;
            case 's':
                out = in_class ? "[:space:]" : "[[:space:]]";
                break;
            case 'w':
                out = in_class ? "[:alnum:]_" : "[[:alnum:]_]";
                break;
            case 'D':
                out = in_class ? NULL : "[^0-9]";
                break;
            case 'S':
                out = in_class ? NULL : "[^[:space:]]";
                break;
            case 'W':
                out = in_class ? NULL : "[^[:alnum:]_]";
                break;
            case 'n':
                out = "\n";
                break;
            case 't':
                out = "\t";
                break;
            case 'r':
                out = "\r";
                break;
            case 'b':
            case 'B':
                out = in_class ? NULL : pass; /* GNU regex: word boundaries too */
                break;
            default:
                if (in_class) {
                    /* a backslash is literal inside a POSIX bracket: drop it, and write the
                     * characters that would mean something there as collating elements */
                    out = e == ']'          ? "[.].]"
                          : e == '-'        ? "[.-.]"
                          : e == '^'        ? "[.^.]"
                          : e == '['        ? "[.[.]"
                          : letter || digit ? NULL
                                            : lit;
                } else {
                    out = letter || e == '0' ? NULL : pass; /* \1..\9: back-references */
                }
            }
            if (out == NULL) {
                *why = in_class && (e == 'D' || e == 'S' || e == 'W')
                           ? "uses \\D, \\S or \\W inside [...], which POSIX regular "
                             "expressions cannot express"
                           : "uses an escape that POSIX regular expressions do not support";
                break;
            }
            rc = af_buf_add(&b, out, strlen(out));
            continue;
        }
        if (!in_class && p[0] == '(' && p[1] == '?') {
            if (p[2] != ':') {
                *why = "uses (?...) groups other than (?:...), which POSIX regular expressions "
                       "do not support";
                break;
            }
            rc = af_buf_add(&b, "(", 1);
            p += 2;
            continue;
        }
        if (!in_class && *p == '[') {
            in_class = 1;
            rc = af_buf_add(&b, "[", 1);
            if (p[1] == '^') {
                rc = rc == 0 ? af_buf_add(&b, "^", 1) : rc;
                p++;
            }
            continue;
        }
        if (in_class && *p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
            rc = af_buf_add(&b, "[.[.]", 5);
            continue;
        }
        if (in_class && *p == ']') {
            in_class = 0;
        }
        rc = af_buf_add(&b, p, 1);
    }
    if (*why == NULL && rc == 0 && b.data == NULL) {
        rc = af_buf_add(&b, "", 0);
    }
    if (*why != NULL || rc != 0) {
        af_buf_free(&b);
        return NULL;
    }
    return b.data;
}

static int compile_pattern(compiler_t *c, node_t *n, const json_t *pattern) {
    if (!json_is_string(pattern)) {
        return bad(c, "pattern", "must be a string (got %s)", value_type_name(pattern));
    }
    const char *text = json_string_value(pattern);
    if (strlen(text) != json_string_length(pattern)) {
        return bad(c, "pattern", "must not contain NUL characters");
    }
    const char *why;
    char *posix = ecma_to_posix(text, &why);
    if (posix == NULL) {
        return why ? bad(c, "pattern", "\"%s\" %s", text, why) : oom(c);
    }
    n->pattern = malloc(sizeof *n->pattern);
    if (n->pattern == NULL) {
        free(posix);
        return oom(c);
    }
    int rc = regcomp(n->pattern, posix, REG_EXTENDED | REG_NOSUB);
    free(posix);
    if (rc != 0) {
        char reason[200];
        regerror(rc, n->pattern, reason, sizeof reason);
        free(n->pattern); /* regcomp frees what it allocated when it fails */
        n->pattern = NULL;
        return bad(c, "pattern", "invalid regular expression \"%s\" (%s)", text, reason);
    }
    n->pattern_text = text;
    return 0;
}

/* Finds the target of a local $ref ("#", "#/a/b~1c/0", percent-escapes decoded). */
static int resolve_ref(compiler_t *c, const char *ref, const json_t **out) {
    if (ref[0] != '#') {
        return bad(c, "$ref",
                   "only local references (\"#\" or \"#/...\") are supported (got \"%s\")", ref);
    }
    if (ref[1] != '\0' && ref[1] != '/') {
        return bad(c, "$ref", "only JSON pointer references (\"#/...\") are supported (got \"%s\")",
                   ref);
    }
    size_t len = strlen(ref);
    char *seg = malloc(len + 1);
    if (seg == NULL) {
        return oom(c);
    }
    const json_t *at = c->s->doc;
    const char *p = ref + 1;
    int rc = 0;
    while (*p == '/' && rc == 0) {
        size_t n = 0;
        for (p++; *p && *p != '/'; p++) {
            char ch = *p;
            if (ch == '%' && p[1] && p[2]) {
                char hex[3] = {p[1], p[2], '\0'};
                char *end;
                long v = strtol(hex, &end, 16);
                if (*end == '\0' && v > 0) {
                    ch = (char)v;
                    p += 2;
                }
            }
            if (ch == '~') {
                /* decoded before ~ escapes: "%7E0" is "~0" */
                char next = p[1];
                if (next == '0' || next == '1') {
                    ch = next == '0' ? '~' : '/';
                    p++;
                } else {
                    rc = bad(c, "$ref",
                             "\"%s\" is not a valid JSON pointer (~ must be followed by 0 "
                             "or 1)",
                             ref);
                    break;
                }
            }
            seg[n++] = ch;
        }
        seg[n] = '\0';
        if (rc != 0) {
            break;
        }
        if (json_is_object(at)) {
            at = json_object_get(at, seg);
        } else if (json_is_array(at)) {
            char *end;
            unsigned long i = strtoul(seg, &end, 10);
            int valid = n > 0 && *end == '\0' && seg[0] >= '0' && seg[0] <= '9' &&
                        (seg[0] != '0' || n == 1);
            at = valid ? json_array_get(at, i) : NULL;
        } else {
            at = NULL;
        }
        if (at == NULL) {
            rc = bad(c, "$ref", "\"%s\" does not resolve to anything in the schema", ref);
        }
    }
    free(seg);
    if (rc == 0) {
        *out = at;
    }
    return rc;
}

static int compile_ref(compiler_t *c, node_t *n, const json_t *ref) {
    if (!json_is_string(ref)) {
        return bad(c, "$ref", "must be a string (got %s)", value_type_name(ref));
    }
    const json_t *target = NULL;
    int rc = resolve_ref(c, json_string_value(ref), &target);
    if (rc != 0) {
        return rc;
    }
    if (json_is_boolean(target)) {
        n->ref = new_node(c, json_is_true(target));
        return n->ref ? 0 : oom(c);
    }
    if (!json_is_object(target)) {
        return bad(c, "$ref", "\"%s\" does not name a schema (found %s)", json_string_value(ref),
                   value_type_name(target));
    }
    /* Compiled later (af_schema_compile walks all nodes still uncompiled), so that chains of
     * references do not recurse. */
    n->ref = memo_get(c->s, target);
    if (n->ref == NULL) {
        n->ref = new_node(c, -1);
        if (n->ref == NULL || memo_put(c->s, target, n->ref) != 0) {
            return oom(c);
        }
        n->ref->json = target;
        n->ref->where = strdup(json_string_value(ref));
        if (n->ref->where == NULL) {
            return oom(c);
        }
    }
    return 0;
}

static int compile_into(compiler_t *c, node_t *n, const json_t *js, int depth) {
    n->compiled = 1;
    n->json = js;
    free(n->where);
    n->where = strdup(c->ptr.data);
    if (n->where == NULL) {
        return oom(c);
    }
    const json_t *v;
    int rc = 0;
    if ((v = json_object_get(js, "type")) != NULL) {
        rc = compile_type(c, n, v);
    }
    n->const_value = json_object_get(js, "const");
    n->default_value = json_object_get(js, "default");
    if (rc == 0 && (v = json_object_get(js, "enum")) != NULL) {
        if (!json_is_array(v)) {
            rc = bad(c, "enum", "must be an array (got %s)", value_type_name(v));
        }
        n->enum_values = v;
    }
    if (rc == 0) {
        rc = get_number(c, js, "minimum", &n->minimum);
    }
    if (rc == 0) {
        rc = get_number(c, js, "maximum", &n->maximum);
    }
    if (rc == 0) {
        rc = get_number(c, js, "exclusiveMinimum", &n->exclusive_minimum);
    }
    if (rc == 0) {
        rc = get_number(c, js, "exclusiveMaximum", &n->exclusive_maximum);
    }
    if (rc == 0) {
        rc = get_number(c, js, "multipleOf", &n->multiple_of);
        if (rc == 0 && n->multiple_of && num_value(n->multiple_of) <= 0) {
            char q[BRIEF_MAX + 4];
            rc = bad(c, "multipleOf", "must be greater than 0 (got %s)", brief(n->multiple_of, q));
        }
    }
    if (rc == 0) {
        rc = get_count(c, js, "minLength", &n->min_length);
    }
    if (rc == 0) {
        rc = get_count(c, js, "maxLength", &n->max_length);
    }
    if (rc == 0 && (v = json_object_get(js, "pattern")) != NULL) {
        rc = compile_pattern(c, n, v);
    }
    if (rc == 0) {
        rc = get_count(c, js, "minItems", &n->min_items);
    }
    if (rc == 0) {
        rc = get_count(c, js, "maxItems", &n->max_items);
    }
    if (rc == 0 && (v = json_object_get(js, "uniqueItems")) != NULL) {
        if (!json_is_boolean(v)) {
            rc = bad(c, "uniqueItems", "must be a boolean (got %s)", value_type_name(v));
        }
        n->unique_items = json_is_true(v);
    }
    if (rc == 0) {
        rc = compile_list(c, js, "prefixItems", depth, &n->prefix_items);
    }
    if (rc == 0 && json_is_array(json_object_get(js, "items"))) {
        rc = bad(c, "items", "must be a schema (for tuples use prefixItems)");
    }
    if (rc == 0) {
        rc = compile_keyword(c, js, "items", depth, &n->items);
    }
    if (rc == 0) {
        rc = get_count(c, js, "minProperties", &n->min_props);
    }
    if (rc == 0) {
        rc = get_count(c, js, "maxProperties", &n->max_props);
    }
    if (rc == 0 && (v = json_object_get(js, "required")) != NULL) {
        if (!json_is_array(v)) {
            rc = bad(c, "required", "must be an array of property names (got %s)",
                     value_type_name(v));
        }
        for (size_t i = 0; rc == 0 && i < json_array_size(v); i++) {
            const json_t *name = json_array_get(v, i);
            if (!json_is_string(name)) {
                rc = bad(c, "required", "must contain only property names (got %s)",
                         value_type_name(name));
            }
            for (size_t k = 0; rc == 0 && k < i; k++) {
                if (json_equal(name, json_array_get(v, k))) {
                    rc = bad(c, "required", "names \"%s\" twice", json_string_value(name));
                }
            }
        }
        n->required = v;
    }
    if (rc == 0) {
        rc = compile_map(c, js, "properties", depth, &n->props, &n->nprops);
        n->properties = json_object_get(js, "properties");
    }
    if (rc == 0) {
        rc = compile_keyword(c, js, "additionalProperties", depth, &n->additional);
    }
    if (rc == 0) {
        rc = compile_list(c, js, "allOf", depth, &n->all_of);
    }
    if (rc == 0) {
        rc = compile_list(c, js, "anyOf", depth, &n->any_of);
    }
    if (rc == 0) {
        rc = compile_list(c, js, "oneOf", depth, &n->one_of);
    }
    if (rc == 0) {
        rc = compile_keyword(c, js, "not", depth, &n->not_schema);
    }
    /* definitions before $ref, so that an error in a definition names the definition */
    if (rc == 0) {
        rc = compile_map(c, js, "$defs", depth, NULL, NULL);
    }
    if (rc == 0) {
        rc = compile_map(c, js, "definitions", depth, NULL, NULL);
    }
    if (rc == 0 && (v = json_object_get(js, "$ref")) != NULL) {
        rc = compile_ref(c, n, v);
    }
    return rc;
}

/* The subschemas applied to the same value as n (not to a part of it), one by one. */
static node_t *same_value_edge(const node_t *n, size_t i) {
    if (n->ref) {
        if (i == 0) {
            return n->ref;
        }
        i--;
    }
    const list_t *lists[] = {&n->all_of, &n->any_of, &n->one_of};
    for (size_t k = 0; k < 3; k++) {
        if (i < lists[k]->n) {
            return lists[k]->v[i];
        }
        i -= lists[k]->n;
    }
    return i == 0 ? n->not_schema : NULL;
}

/* A cycle of same-value edges would validate forever; refuse it (depth-first search with an
 * explicit stack, as chains of $ref can be long). */
static int find_cycles(compiler_t *c) {
    af_schema_t *s = c->s;
    struct frame {
        node_t *n;
        size_t next;
    } *stack = malloc(s->nnodes * sizeof *stack);
    if (stack == NULL) {
        return oom(c);
    }
    for (size_t i = 0; i < s->nnodes; i++) {
        s->nodes[i]->color = 0;
    }
    int rc = 0;
    for (size_t i = 0; i < s->nnodes && rc == 0; i++) {
        if (s->nodes[i]->color != 0) {
            continue;
        }
        size_t sp = 0;
        stack[sp++] = (struct frame){s->nodes[i], 0};
        s->nodes[i]->color = 1;
        while (sp > 0) {
            struct frame *top = &stack[sp - 1];
            node_t *next = same_value_edge(top->n, top->next++);
            if (next == NULL) {
                top->n->color = 2;
                sp--;
            } else if (next->color == 1) {
                rc = top->n == next
                         ? af_error_set(c->err, AF_EINVAL,
                                        "%s: applies itself to the same value (a $ref cycle that "
                                        "would never end)",
                                        next->where)
                         : af_error_set(c->err, AF_EINVAL,
                                        "%s: applies %s to the same value, which leads back here "
                                        "(a $ref cycle that would never end)",
                                        top->n->where, next->where);
                break;
            } else if (next->color == 0) {
                next->color = 1;
                stack[sp++] = (struct frame){next, 0};
            }
        }
    }
    free(stack);
    return rc;
}

static af_schema_t *compile_doc(json_t *doc, af_error_t *err) {
    af_schema_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        json_decref(doc);
        af_error_set(err, AF_ENOMEM, "out of memory compiling a schema");
        return NULL;
    }
    s->doc = doc;
    compiler_t c = {.s = s, .err = err};
    int rc = af_buf_add(&c.ptr, "#", 1) == 0 ? 0 : oom(&c);
    if (rc == 0) {
        rc = compile_schema(&c, doc, 0, &s->root);
    }
    /* $ref targets outside the walked tree; compiling one may add more */
    for (size_t i = 0; rc == 0 && i < s->nnodes; i++) {
        node_t *n = s->nodes[i];
        if (!n->compiled) {
            c.ptr.len = 0;
            rc = af_buf_add(&c.ptr, n->where, strlen(n->where)) == 0 ? 0 : oom(&c);
            if (rc == 0) {
                rc = compile_into(&c, n, n->json, 0);
            }
        }
    }
    if (rc == 0) {
        rc = find_cycles(&c);
    }
    af_buf_free(&c.ptr);
    free(s->memo);
    s->memo = NULL;
    s->memo_len = s->memo_cap = 0;
    if (rc != 0) {
        af_schema_free(s);
        return NULL;
    }
    return s;
}

af_schema_t *af_schema_compile(const json_t *schema, af_error_t *err) {
    if (schema == NULL) {
        af_error_set(err, AF_EINVAL, "#: no schema");
        return NULL;
    }
    if (!depth_within(schema, DOC_MAX_DEPTH)) {
        af_error_set(err, AF_EINVAL, "#: schema nested deeper than %d levels", DOC_MAX_DEPTH);
        return NULL;
    }
    json_t *doc = json_deep_copy(schema);
    if (doc == NULL) {
        af_error_set(err, AF_ENOMEM, "out of memory compiling a schema");
        return NULL;
    }
    return compile_doc(doc, err);
}

af_schema_t *af_schema_compile_text(const char *text, af_error_t *err) {
    if (text == NULL) {
        af_error_set(err, AF_EINVAL, "#: no schema");
        return NULL;
    }
    json_t *doc = af_json_loads(text, strlen(text), DOC_MAX_DEPTH, err);
    return doc ? compile_doc(doc, err) : NULL;
}

void af_schema_free(af_schema_t *s) {
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->nnodes; i++) {
        free_node(s->nodes[i]);
    }
    free(s->nodes);
    free(s->memo);
    json_decref(s->doc);
    free(s);
}

const json_t *af_schema_json(const af_schema_t *s) {
    return s ? s->doc : NULL;
}

/* ---- validating ---- */

/* Problems are collected in a context. anyOf, oneOf and not try their branches in a context of
 * their own that stops at the first problem; a problem that must fail the whole validation
 * whatever the branch (too deep, out of memory) goes to the root and aborts everything. */
typedef struct vctx_s vctx_t;
struct vctx_s {
    vctx_t *root;
    af_buf_t *path; /* "$.a[3]" of the value being checked, shared by all contexts */
    af_buf_t out;   /* "path: message; ..." */
    size_t base;    /* messages at this path length leave out the path; SIZE_MAX: never */
    int count, max;
    int quiet; /* count problems without writing them */
    int abort, nomem;
};

static int full(const vctx_t *c) {
    return c->count >= c->max || c->root->abort;
}

static void add_problem(vctx_t *c, const char *msg) {
    vctx_t *r = c->root;
    int rc = c->out.len > 0 ? af_buf_add(&c->out, "; ", 2) : 0;
    if (rc == 0 && c->path->len != c->base) {
        rc = af_buf_addf(&c->out, "%s: ", c->path->data);
    }
    if (rc == 0) {
        rc = af_buf_add(&c->out, msg, strlen(msg));
    }
    if (rc != 0) {
        r->nomem = r->abort = 1;
    }
}

static void report(vctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(vctx_t *c, const char *fmt, ...) {
    if (c->count >= c->max) {
        return;
    }
    c->count++;
    if (c->quiet) {
        return;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof msg) {
        cut_text(msg, sizeof msg - 1, sizeof msg - 4);
    }
    add_problem(c, msg);
}

/* A problem that fails the validation whatever branch it was found in. */
static void fatal(vctx_t *c, const char *msg) {
    vctx_t *r = c->root;
    r->abort = 1;
    if (r->count < r->max) {
        r->count++;
        if (!r->quiet) {
            add_problem(r, msg);
        }
    }
}

static void too_deep(vctx_t *c) {
    char msg[64];
    snprintf(msg, sizeof msg, "nested deeper than %d levels", MAX_DEPTH);
    fatal(c, msg);
}

static void path_pop(vctx_t *c, size_t mark) {
    if (!c->root->quiet) {
        c->path->len = mark;
        c->path->data[mark] = '\0';
    }
}

static size_t path_push_key(vctx_t *c, const char *key) {
    size_t mark = c->path->len;
    if (!c->root->quiet) {
        size_t len = strlen(key);
        int rc;
        if (af_is_identifier(key, len)) {
            rc = af_buf_add(c->path, ".", 1);
            rc = rc == 0 ? af_buf_add(c->path, key, len) : rc;
        } else {
            rc = af_buf_add(c->path, "[", 1);
            rc = rc == 0 ? add_quoted(c->path, key, len) : rc;
            rc = rc == 0 ? af_buf_add(c->path, "]", 1) : rc;
        }
        if (rc != 0) {
            c->root->nomem = c->root->abort = 1;
        }
    }
    return mark;
}

static size_t path_push_index(vctx_t *c, size_t i) {
    size_t mark = c->path->len;
    if (!c->root->quiet && af_buf_addf(c->path, "[%zu]", i) != 0) {
        c->root->nomem = c->root->abort = 1;
    }
    return mark;
}

static vctx_t branch_of(vctx_t *c, int quiet) {
    vctx_t b = {.root = c->root, .path = c->path, .base = c->path->len, .max = 1};
    b.quiet = quiet || c->quiet;
    return b;
}

static void check(const node_t *n, const json_t *v, vctx_t *c, int vdepth, int edepth);

/* Checks a part of the value (its path already pushed) one level deeper. */
static void check_part(const node_t *n, const json_t *part, vctx_t *c, int vdepth, int edepth) {
    if (n->boolean == 1 || c->root->abort) {
        return;
    }
    if (vdepth + 1 > MAX_DEPTH) {
        too_deep(c);
        return;
    }
    check(n, part, c, vdepth + 1, edepth + 1);
}

static __attribute__((noinline)) void check_number(const node_t *n, const json_t *v, vctx_t *c) {
    char a[BRIEF_MAX + 4], b[BRIEF_MAX + 4];
    if (n->minimum && num_cmp(v, n->minimum) < 0) {
        report(c, "must be >= %s (got %s)", brief(n->minimum, a), brief(v, b));
    }
    if (n->exclusive_minimum && num_cmp(v, n->exclusive_minimum) <= 0) {
        report(c, "must be > %s (got %s)", brief(n->exclusive_minimum, a), brief(v, b));
    }
    if (n->maximum && num_cmp(v, n->maximum) > 0) {
        report(c, "must be <= %s (got %s)", brief(n->maximum, a), brief(v, b));
    }
    if (n->exclusive_maximum && num_cmp(v, n->exclusive_maximum) >= 0) {
        report(c, "must be < %s (got %s)", brief(n->exclusive_maximum, a), brief(v, b));
    }
    if (n->multiple_of) {
        int ok;
        if (json_is_integer(v) && json_is_integer(n->multiple_of)) {
            ok = json_integer_value(v) % json_integer_value(n->multiple_of) == 0;
        } else {
            /* In doubles 0.3 / 0.1 is 2.9999999999999996: accept when the nearest multiple is
             * within rounding error. Beyond 2^53 every double is integral. */
            double x = num_value(v), m = num_value(n->multiple_of);
            double q = x / m;
            if (!isfinite(q) || fabs(q) >= 9007199254740992.0) {
                ok = 1;
            } else {
                double r = nearbyint(q);
                ok = fabs(r * m - x) <= 4 * DBL_EPSILON * fabs(x);
            }
        }
        if (!ok) {
            report(c, "must be a multiple of %s (got %s)", brief(n->multiple_of, a), brief(v, b));
        }
    }
}

static __attribute__((noinline)) void check_string(const node_t *n, const json_t *v, vctx_t *c) {
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (n->min_length >= 0 || n->max_length >= 0) {
        int64_t chars = 0;
        for (size_t i = 0; i < len; i++) {
            chars += ((unsigned char)s[i] & 0xc0) != 0x80;
        }
        if (n->min_length >= 0 && chars < n->min_length) {
            report(c, "must be at least %" PRId64 " character%s long (got %" PRId64 ")",
                   n->min_length, n->min_length == 1 ? "" : "s", chars);
        }
        if (n->max_length >= 0 && chars > n->max_length) {
            report(c, "must be at most %" PRId64 " character%s long (got %" PRId64 ")",
                   n->max_length, n->max_length == 1 ? "" : "s", chars);
        }
    }
    if (n->pattern) {
        /* REG_STARTEND: a NUL inside the string is matched, not taken as its end */
        regmatch_t range[1] = {{.rm_so = 0, .rm_eo = (regoff_t)len}};
        if (regexec(n->pattern, s, 1, range, REG_STARTEND) != 0) {
            report(c, "must match pattern \"%s\"", n->pattern_text);
        }
    }
}

typedef struct hashed_s {
    uint64_t hash;
    size_t index;
} hashed_t;

static int compare_hashed(const void *a, const void *b) {
    const hashed_t *x = a, *y = b;
    if (x->hash != y->hash) {
        return x->hash < y->hash ? -1 : 1;
    }
    return (x->index > y->index) - (x->index < y->index);
}

/* Finds the first item equal to an earlier one: the smallest such j, and the first i < j equal
 * to it. Returns 1 found, 0 none, -1 too deep, -2 out of memory. */
static int find_duplicate(const json_t *arr, int left, size_t *di, size_t *dj) {
    size_t n = json_array_size(arr);
    if (n <= UNIQUE_PAIRWISE_MAX) {
        for (size_t j = 1; j < n; j++) {
            for (size_t i = 0; i < j; i++) {
                int eq = values_equal(json_array_get(arr, i), json_array_get(arr, j), left);
                if (eq != 0) {
                    *di = i;
                    *dj = j;
                    return eq;
                }
            }
        }
        return 0;
    }
    hashed_t *h = malloc(n * sizeof *h);
    if (h == NULL) {
        return -2;
    }
    for (size_t i = 0; i < n; i++) {
        h[i].index = i;
        if (hash_value(json_array_get(arr, i), left, &h[i].hash) != 0) {
            free(h);
            return -1;
        }
    }
    qsort(h, n, sizeof *h, compare_hashed);
    int found = 0;
    for (size_t g = 0; g < n;) {
        size_t end = g + 1;
        while (end < n && h[end].hash == h[g].hash) {
            end++;
        }
        for (size_t k = g + 1; k < end; k++) {
            if (found && h[k].index > *dj) {
                break;
            }
            int eq = 0;
            size_t l;
            for (l = g; l < k && eq == 0; l++) {
                eq = values_equal(json_array_get(arr, h[l].index), json_array_get(arr, h[k].index),
                                  left);
            }
            if (eq < 0) {
                free(h);
                return -1;
            }
            if (eq == 1) {
                *di = h[l - 1].index;
                *dj = h[k].index;
                found = 1;
                break; /* later members of the group have larger indexes */
            }
        }
        g = end;
    }
    free(h);
    return found;
}

static void check_array(const node_t *n, const json_t *v, vctx_t *c, int vdepth, int edepth) {
    size_t size = json_array_size(v);
    if (n->min_items >= 0 && (int64_t)size < n->min_items) {
        report(c, "must have at least %" PRId64 " item%s (got %zu)", n->min_items,
               n->min_items == 1 ? "" : "s", size);
    }
    if (n->max_items >= 0 && (int64_t)size > n->max_items) {
        report(c, "must have at most %" PRId64 " item%s (got %zu)", n->max_items,
               n->max_items == 1 ? "" : "s", size);
    }
    if (n->unique_items && size > 1 && !full(c)) {
        size_t i = 0, j = 0;
        int dup = find_duplicate(v, MAX_DEPTH - vdepth, &i, &j);
        if (dup == 1) {
            report(c, "must not contain duplicates (items %zu and %zu are equal)", i, j);
        } else if (dup == -1) {
            too_deep(c);
        } else if (dup == -2) {
            c->root->nomem = c->root->abort = 1;
        }
    }
    for (size_t i = 0; i < size && !full(c); i++) {
        const node_t *sub = i < n->prefix_items.n ? n->prefix_items.v[i] : n->items;
        if (sub == NULL) {
            break; /* no items schema: the rest is not checked */
        }
        size_t mark = path_push_index(c, i);
        check_part(sub, json_array_get(v, i), c, vdepth, edepth);
        path_pop(c, mark);
    }
}

/* Keyword checks with message buffers are kept out of check()'s recursive frames. */
static __attribute__((noinline)) void check_required(const node_t *n, const json_t *v, vctx_t *c) {
    char q[BRIEF_MAX + 4];
    for (size_t i = 0; i < json_array_size(n->required) && !full(c); i++) {
        const json_t *name = json_array_get(n->required, i);
        if (json_object_get(v, json_string_value(name)) == NULL) {
            report(c, "missing required property %s", brief(name, q));
        }
    }
}

static void check_object(const node_t *n, const json_t *v, vctx_t *c, int vdepth, int edepth) {
    if (n->required) {
        check_required(n, v, c);
    }
    for (size_t i = 0; i < n->nprops && !full(c); i++) {
        const json_t *part = json_object_get(v, n->props[i].key);
        if (part != NULL) {
            size_t mark = path_push_key(c, n->props[i].key);
            check_part(n->props[i].schema, part, c, vdepth, edepth);
            path_pop(c, mark);
        }
    }
    if (n->additional && n->additional->boolean != 1) {
        for (void *it = json_object_iter((json_t *)v); it && !full(c);
             it = json_object_iter_next((json_t *)v, it)) {
            const char *key = json_object_iter_key(it);
            if (n->properties && json_object_get(n->properties, key)) {
                continue;
            }
            if (n->additional->boolean == 0) {
                af_buf_t k = {0};
                int rc = add_quoted(&k, key, strlen(key));
                report(c, "unexpected property %s", rc == 0 ? k.data : "(key)");
                af_buf_free(&k);
                continue;
            }
            size_t mark = path_push_key(c, key);
            check_part(n->additional, json_object_iter_value(it), c, vdepth, edepth);
            path_pop(c, mark);
        }
    }
    size_t size = json_object_size(v);
    if (n->min_props >= 0 && (int64_t)size < n->min_props) {
        report(c, "must have at least %" PRId64 " propert%s (got %zu)", n->min_props,
               n->min_props == 1 ? "y" : "ies", size);
    }
    if (n->max_props >= 0 && (int64_t)size > n->max_props) {
        report(c, "must have at most %" PRId64 " propert%s (got %zu)", n->max_props,
               n->max_props == 1 ? "y" : "ies", size);
    }
}

/* Appends "#i: reason" of a failed branch to why, cut to BRANCH_MSG_MAX bytes. */
static void add_reason(vctx_t *c, af_buf_t *why, size_t i, const vctx_t *b) {
    if (c->quiet) {
        return;
    }
    char reason[BRANCH_MSG_MAX + 4];
    size_t len = b->out.len;
    size_t take = len > BRANCH_MSG_MAX ? BRANCH_MSG_MAX + 1 : len;
    if (take > 0) {
        memcpy(reason, b->out.data, take);
    }
    cut_text(reason, take, BRANCH_MSG_MAX);
    if (af_buf_addf(why, "%s#%zu: %s", why->len ? "; " : "", i, reason) != 0) {
        c->root->nomem = c->root->abort = 1;
    }
}

static void check_any_of(const node_t *n, const json_t *v, vctx_t *c, int vdepth, int edepth) {
    af_buf_t why = {0};
    for (size_t i = 0; i < n->any_of.n; i++) {
        vctx_t b = branch_of(c, 0);
        check(n->any_of.v[i], v, &b, vdepth, edepth + 1);
        int matched = b.count == 0;
        if (!matched) {
            add_reason(c, &why, i, &b);
        }
        af_buf_free(&b.out);
        if (matched || c->root->abort) {
            af_buf_free(&why);
            return;
        }
    }
    report(c, "must match at least one schema in anyOf (%s)", why.data ? why.data : "");
    af_buf_free(&why);
}

static void check_one_of(const node_t *n, const json_t *v, vctx_t *c, int vdepth, int edepth) {
    af_buf_t why = {0};
    size_t first = SIZE_MAX, second = SIZE_MAX;
    for (size_t i = 0; i < n->one_of.n && second == SIZE_MAX; i++) {
        /* once one branch matched, the reasons of the others are no longer needed */
        vctx_t b = branch_of(c, first != SIZE_MAX);
        check(n->one_of.v[i], v, &b, vdepth, edepth + 1);
        if (b.count == 0) {
            *(first == SIZE_MAX ? &first : &second) = i;
        } else if (first == SIZE_MAX) {
            add_reason(c, &why, i, &b);
        }
        af_buf_free(&b.out);
        if (c->root->abort) {
            af_buf_free(&why);
            return;
        }
    }
    if (second != SIZE_MAX) {
        report(c, "must match exactly one schema in oneOf (#%zu and #%zu both match)", first,
               second);
    } else if (first == SIZE_MAX) {
        report(c, "must match exactly one schema in oneOf (%s)", why.data ? why.data : "");
    }
    af_buf_free(&why);
}

/* const and enum. Returns -1 when comparing went too deep (reported). */
static __attribute__((noinline)) int check_values(const node_t *n, const json_t *v, vctx_t *c,
                                                  int vdepth) {
    char a[BRIEF_MAX + 4], b[BRIEF_MAX + 4];
    if (n->const_value) {
        int eq = values_equal(n->const_value, v, MAX_DEPTH - vdepth);
        if (eq < 0) {
            too_deep(c);
            return -1;
        }
        if (eq == 0) {
            report(c, "must equal %s (got %s)", brief(n->const_value, a), brief(v, b));
        }
    }
    if (n->enum_values) {
        int eq = 0;
        for (size_t i = 0; i < json_array_size(n->enum_values) && eq == 0; i++) {
            eq = values_equal(json_array_get(n->enum_values, i), v, MAX_DEPTH - vdepth);
        }
        if (eq < 0) {
            too_deep(c);
            return -1;
        }
        if (eq == 0) {
            report(c, "must be one of %s (got %s)", brief(n->enum_values, a), brief(v, b));
        }
    }
    return 0;
}

static void check(const node_t *n, const json_t *v, vctx_t *c, int vdepth, int edepth) {
    if (edepth > EVAL_MAX_DEPTH) {
        char msg[96];
        snprintf(msg, sizeof msg, "schema applies subschemas deeper than %d levels",
                 EVAL_MAX_DEPTH);
        fatal(c, msg);
        return;
    }
    if (n->boolean >= 0) {
        if (n->boolean == 0) {
            report(c, "is not allowed");
        }
        return;
    }
    if (n->types && !(n->types & value_types(v))) {
        report(c, "must be %s (got %s)", n->type_text, value_type_name(v));
        return; /* the other keywords would only repeat that the type is wrong */
    }
    if ((n->const_value || n->enum_values) && check_values(n, v, c, vdepth) != 0) {
        return;
    }
    if (full(c)) {
        return;
    }
    switch (json_typeof(v)) {
    case JSON_INTEGER:
    case JSON_REAL:
        check_number(n, v, c);
        break;
    case JSON_STRING:
        check_string(n, v, c);
        break;
    case JSON_ARRAY:
        check_array(n, v, c, vdepth, edepth);
        break;
    case JSON_OBJECT:
        check_object(n, v, c, vdepth, edepth);
        break;
    default:
        break;
    }
    if (n->ref && !full(c)) {
        check(n->ref, v, c, vdepth, edepth + 1);
    }
    for (size_t i = 0; i < n->all_of.n && !full(c); i++) {
        check(n->all_of.v[i], v, c, vdepth, edepth + 1);
    }
    if (n->any_of.n && !full(c)) {
        check_any_of(n, v, c, vdepth, edepth);
    }
    if (n->one_of.n && !full(c)) {
        check_one_of(n, v, c, vdepth, edepth);
    }
    if (n->not_schema && !full(c)) {
        vctx_t br = branch_of(c, 1);
        check(n->not_schema, v, &br, vdepth, edepth + 1);
        if (br.count == 0 && !c->root->abort) {
            report(c, "must not match the schema in not");
        }
    }
}

int af_schema_validate(const af_schema_t *s, const json_t *value, int max_errors, af_error_t *err) {
    if (s == NULL) {
        return af_error_set(err, AF_EINVAL, "no schema");
    }
    if (value == NULL) {
        return af_error_set(err, AF_EINVAL, "$: no value");
    }
    af_buf_t path = {0};
    if (af_buf_add(&path, "$", 1) != 0) {
        return af_error_set(err, AF_ENOMEM, "out of memory validating a value");
    }
    vctx_t c = {.path = &path, .base = SIZE_MAX, .max = max_errors > 0 ? max_errors : 1};
    c.root = &c;
    c.quiet = err == NULL;
    check(s->root, value, &c, 0, 0);
    int rc = 0;
    if (c.nomem) {
        rc = af_error_set(err, AF_ENOMEM, "out of memory validating a value");
    } else if (c.count > 0) {
        rc = c.out.data ? set_error(err, AF_EINVAL, c.out.data) : AF_EINVAL;
    }
    af_buf_free(&c.out);
    af_buf_free(&path);
    return rc;
}

/* ---- defaults ---- */

/* The default of n, or of the schema its $ref names (and so on). */
static const json_t *default_of(const node_t *n) {
    for (int i = 0; n && i <= MAX_DEPTH; i++, n = n->ref) {
        if (n->default_value) {
            return n->default_value;
        }
    }
    return NULL;
}

static int matches(const node_t *n, const json_t *v, int vdepth, int edepth) {
    af_buf_t path = {0};
    vctx_t c = {.path = &path, .base = SIZE_MAX, .max = 1, .quiet = 1};
    c.root = &c;
    check(n, v, &c, vdepth, edepth);
    return c.count == 0;
}

static int fill(const node_t *n, json_t *v, int vdepth, int edepth);

static int fill_part(const node_t *n, json_t *part, int vdepth, int edepth) {
    return vdepth + 1 > MAX_DEPTH ? 0 : fill(n, part, vdepth + 1, edepth + 1);
}

static int fill(const node_t *n, json_t *v, int vdepth, int edepth) {
    if (n->boolean >= 0 || edepth > EVAL_MAX_DEPTH) {
        return 0;
    }
    int rc = 0;
    if (json_is_object(v)) {
        for (size_t i = 0; i < n->nprops && rc == 0; i++) {
            json_t *part = json_object_get(v, n->props[i].key);
            const json_t *def;
            if (part == NULL && (def = default_of(n->props[i].schema)) != NULL) {
                part = json_deep_copy(def);
                if (part == NULL || json_object_set_new(v, n->props[i].key, part) != 0) {
                    return AF_ENOMEM;
                }
            }
            if (part != NULL) {
                rc = fill_part(n->props[i].schema, part, vdepth, edepth);
            }
        }
        if (n->additional && n->additional->boolean < 0) {
            for (void *it = json_object_iter(v); it && rc == 0; it = json_object_iter_next(v, it)) {
                if (!n->properties || !json_object_get(n->properties, json_object_iter_key(it))) {
                    rc = fill_part(n->additional, json_object_iter_value(it), vdepth, edepth);
                }
            }
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v) && rc == 0; i++) {
            const node_t *sub = i < n->prefix_items.n ? n->prefix_items.v[i] : n->items;
            if (sub != NULL) {
                rc = fill_part(sub, json_array_get(v, i), vdepth, edepth);
            }
        }
    }
    if (rc == 0 && n->ref) {
        rc = fill(n->ref, v, vdepth, edepth + 1);
    }
    for (size_t i = 0; i < n->all_of.n && rc == 0; i++) {
        rc = fill(n->all_of.v[i], v, vdepth, edepth + 1);
    }
    for (size_t i = 0; i < n->any_of.n && rc == 0; i++) {
        if (matches(n->any_of.v[i], v, vdepth, edepth + 1)) {
            rc = fill(n->any_of.v[i], v, vdepth, edepth + 1);
            break;
        }
    }
    if (n->one_of.n && rc == 0) {
        size_t only = SIZE_MAX, count = 0;
        for (size_t i = 0; i < n->one_of.n && count < 2; i++) {
            if (matches(n->one_of.v[i], v, vdepth, edepth + 1)) {
                only = i;
                count++;
            }
        }
        if (count == 1) {
            rc = fill(n->one_of.v[only], v, vdepth, edepth + 1);
        }
    }
    return rc;
}

json_t *af_schema_apply_defaults(const af_schema_t *s, const json_t *value) {
    if (s == NULL) {
        return NULL;
    }
    if (value == NULL) {
        value = default_of(s->root);
        if (value == NULL) {
            return NULL;
        }
    } else if (!depth_within(value, DOC_MAX_DEPTH)) {
        return NULL;
    }
    json_t *out = json_deep_copy(value);
    if (out != NULL && fill(s->root, out, 0, 0) != 0) {
        json_decref(out);
        out = NULL;
    }
    return out;
}
