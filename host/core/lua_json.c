/* lua_json.c -- conversion between Lua values and jansson values, run on every step's input and
 * output; the rules are in lua_json.h. */
#include "core/lua_json.h"

#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2^53: beyond it a double no longer holds every integer. */
#define SAFE_INT_MAX 9007199254740992.0

/* Bytes of a key shown in an error path; longer keys are cut with "...". */
#define PATH_KEY_SHOWN 64

/* ---- metatables ---- */

/* __tostring of a boxed big integer: its digits. */
static int bigint_tostring(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushliteral(L, "digits");
    lua_rawget(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pushliteral(L, "bigint(?)");
    }
    return 1;
}

void af_lua_json_init(lua_State *L) {
    luaL_newmetatable(L, AF_LUA_ARRAY_MT);
    luaL_newmetatable(L, AF_LUA_OBJECT_MT);
    if (luaL_newmetatable(L, AF_LUA_BIGINT_MT)) {
        lua_pushcfunction(L, bigint_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 3);
}

/* Pushes the marker metatable `name`, creating the markers if this state has none yet. */
static void push_marker(lua_State *L, const char *name) {
    lua_getfield(L, LUA_REGISTRYINDEX, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        af_lua_json_init(L);
        lua_getfield(L, LUA_REGISTRYINDEX, name);
    }
}

/* ---- JSON -> Lua ---- */

typedef struct pusher_s {
    lua_State *L;
    int max_depth;
    int array_mt, object_mt; /* stack slots of the marker metatables */
} pusher_t;

static void push_bigint(lua_State *L, json_int_t v) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%" JSON_INTEGER_FORMAT, v);
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, digits, (size_t)n);
    lua_setfield(L, -2, "digits");
    push_marker(L, AF_LUA_BIGINT_MT);
    lua_setmetatable(L, -2);
}

/* Pushes a scalar; returns 0, or 1 if `v` is a container. */
static int push_scalar(lua_State *L, const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(v);
        if (i >= -(json_int_t)SAFE_INT_MAX && i <= (json_int_t)SAFE_INT_MAX) {
            lua_pushnumber(L, (lua_Number)i);
        } else {
            push_bigint(L, i);
        }
        return 0;
    }
    case JSON_REAL:
        lua_pushnumber(L, json_real_value(v));
        return 0;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        return 0;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        return 0;
    case JSON_NULL:
        lua_pushlightuserdata(L, NULL);
        return 0;
    default:
        return 1;
    }
}

/* Pushes `v`, a value inside `depth` containers. On error the caller resets the stack. */
static int push_value(pusher_t *p, const json_t *v, int depth) {
    lua_State *L = p->L;
    if (push_scalar(L, v) == 0) {
        return 0;
    }
    if (depth + 1 > p->max_depth) {
        return AF_ELIMIT;
    }
    if (!lua_checkstack(L, 4)) {
        return AF_ENOMEM;
    }
    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        lua_createtable(L, n < INT32_MAX ? (int)n : 0, 0);
        for (size_t i = 0; i < n; i++) {
            int rc = push_value(p, json_array_get(v, i), depth + 1);
            if (rc != 0) {
                return rc;
            }
            lua_rawseti(L, -2, (int)(i + 1));
        }
        lua_pushvalue(L, p->array_mt);
    } else {
        json_t *obj = (json_t *)v; /* jansson's iterators take non-const */
        size_t n = json_object_size(obj);
        lua_createtable(L, 0, n < INT32_MAX ? (int)n : 0);
        for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
            lua_pushlstring(L, json_object_iter_key(it), json_object_iter_key_len(it));
            int rc = push_value(p, json_object_iter_value(it), depth + 1);
            if (rc != 0) {
                return rc;
            }
            lua_rawset(L, -3);
        }
        lua_pushvalue(L, p->object_mt);
    }
    lua_setmetatable(L, -2);
    return 0;
}

/* No protected call here: completions push results onto suspended coroutines, where pcall is
 * not allowed. A Lua allocation failure therefore raises a memory error, as any lua_push* does;
 * AF_ENOMEM means the Lua stack could not grow. */
int af_lua_push_json(lua_State *L, const json_t *value, int max_depth) {
    if (value == NULL) {
        return AF_EINVAL;
    }
    if (!lua_checkstack(L, 6)) {
        return AF_ENOMEM;
    }
    if (push_scalar(L, value) == 0) {
        return 0;
    }
    int base = lua_gettop(L);
    pusher_t p = {.L = L, .max_depth = max_depth, .array_mt = base + 1, .object_mt = base + 2};
    push_marker(L, AF_LUA_ARRAY_MT);
    push_marker(L, AF_LUA_OBJECT_MT);
    int rc = push_value(&p, value, 0);
    if (rc != 0) {
        lua_settop(L, base);
        return rc;
    }
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
    return 0;
}

/* ---- Lua -> JSON ---- */

typedef enum { KIND_ANY, KIND_ARRAY, KIND_OBJECT } table_kind_t;

/* The path of a refused value is built only on failure: each level prepends its own segment
 * while the error travels up, so converting costs nothing for paths when all goes well. */
typedef struct converter_s {
    lua_State *L;
    int max_depth;
    int array_mt, object_mt, bigint_mt; /* stack slots of the markers (nil when never created) */
    int code;
    char what[160]; /* "sparse array" */
    char after[40]; /* " (byte 3)" */
    size_t path_at; /* the path so far is path[path_at..] */
    int path_cut;   /* segments were dropped for lack of room */
    char path[512];
} converter_t;

static json_t *fail(converter_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static json_t *fail(converter_t *c, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->what, sizeof c->what, fmt, ap);
    va_end(ap);
    c->code = code;
    return NULL;
}

static void prepend(converter_t *c, const char *s, size_t n) {
    if (c->path_cut || n > c->path_at) {
        c->path_cut = 1;
        return;
    }
    c->path_at -= n;
    memcpy(c->path + c->path_at, s, n);
}

static void prepend_index(converter_t *c, size_t i) {
    char seg[32];
    int n = snprintf(seg, sizeof seg, "[%zu]", i);
    prepend(c, seg, (size_t)n);
}

/* ".name" for identifier keys, else ["key"] with quotes, backslashes, control characters and
 * invalid UTF-8 escaped, so the message stays valid UTF-8 text. */
static void prepend_key(converter_t *c, const char *key, size_t len) {
    char seg[PATH_KEY_SHOWN * 4 + 16];
    size_t n = 0;
    int utf8 = af_utf8_valid(key, len, NULL);
    size_t shown = len;
    if (shown > PATH_KEY_SHOWN) {
        shown = PATH_KEY_SHOWN;
        while (utf8 && shown > 0 && ((unsigned char)key[shown] & 0xc0) == 0x80) {
            shown--; /* do not cut a character in two */
        }
    }
    if (af_is_identifier(key, len)) {
        seg[n++] = '.';
        memcpy(seg + n, key, shown);
        n += shown;
    } else {
        seg[n++] = '[';
        seg[n++] = '"';
        for (size_t i = 0; i < shown; i++) {
            unsigned char ch = (unsigned char)key[i];
            if (ch == '"' || ch == '\\') {
                seg[n++] = '\\';
                seg[n++] = (char)ch;
            } else if (ch < 0x20 || ch == 0x7f || (ch >= 0x80 && !utf8)) {
                n += (size_t)snprintf(seg + n, sizeof seg - n, "\\x%02x", ch);
            } else {
                seg[n++] = (char)ch;
            }
        }
    }
    if (shown < len) {
        memcpy(seg + n, "...", 3);
        n += 3;
    }
    if (seg[0] == '[') {
        seg[n++] = '"';
        seg[n++] = ']';
    }
    prepend(c, seg, n);
}

static json_t *nomem(converter_t *c) {
    return fail(c, AF_ENOMEM, "out of memory");
}

static json_t *to_json(converter_t *c, int idx, int depth);

/* A boxed big integer back to the exact integer its digits spell. */
static json_t *bigint_to_json(converter_t *c, int t) {
    lua_State *L = c->L;
    lua_pushliteral(L, "digits");
    lua_rawget(L, t);
    size_t len = 0;
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    size_t i = s && s[0] == '-' ? 1 : 0;
    int ok = s != NULL && i < len;
    for (; ok && i < len; i++) {
        ok = s[i] >= '0' && s[i] <= '9';
    }
    if (!ok) {
        return fail(c, AF_EINVAL, "big integer without valid digits");
    }
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno != 0) {
        return fail(c, AF_EINVAL, "big integer %s out of the 64-bit range", s);
    }
    lua_pop(L, 1);
    json_t *out = json_integer((json_int_t)v);
    return out ? out : nomem(c);
}

static int key_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Lua's table order changes from run to run; objects built from tables get their keys sorted
 * so results, checkpoints and printed output are the same every time. Steals o. */
static json_t *sorted(json_t *o) {
    size_t n = json_object_size(o), i = 0;
    const char **keys = malloc(n * sizeof *keys);
    json_t *out = json_object();
    if (keys == NULL || out == NULL) {
        free(keys);
        json_decref(out);
        json_decref(o);
        return NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        keys[i++] = k;
    }
    qsort(keys, n, sizeof *keys, key_cmp);
    for (i = 0; i < n; i++) {
        json_object_set_nocheck(out, keys[i], json_object_get(o, keys[i]));
    }
    free(keys);
    json_decref(o);
    return out;
}

/* One pass over the keys decides array or object and converts as it goes; an array whose
 * integer keys do not come in order 1, 2, 3... is rebuilt with lua_rawgeti afterwards. */
static json_t *table_to_json(converter_t *c, int t, int depth) {
    lua_State *L = c->L;
    if (depth > c->max_depth) {
        return fail(c, AF_ELIMIT, "nested deeper than %d levels", c->max_depth);
    }
    if (!lua_checkstack(L, 4)) {
        return fail(c, AF_ELIMIT, "nested too deeply for the Lua stack");
    }
    table_kind_t kind = KIND_ANY;
    int marked = 0;
    if (lua_getmetatable(L, t)) {
        if (lua_rawequal(L, -1, c->array_mt)) {
            kind = KIND_ARRAY;
            marked = 1;
        } else if (lua_rawequal(L, -1, c->object_mt)) {
            kind = KIND_OBJECT;
            marked = 1;
        } else if (lua_rawequal(L, -1, c->bigint_mt)) {
            lua_pop(L, 1);
            return bigint_to_json(c, t);
        }
        lua_pop(L, 1);
    }

    json_t *out = NULL, *child;
    size_t count = 0;
    double max_key = 0;
    int in_order = 1;
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        int key_type = lua_type(L, -2);
        if (key_type == LUA_TSTRING) {
            if (kind == KIND_ARRAY) {
                fail(c, AF_EINVAL,
                     marked ? "array has a string key" : "table mixes array and object keys");
                goto failed;
            }
            kind = KIND_OBJECT;
            if (out == NULL && (out = json_object()) == NULL) {
                nomem(c);
                goto failed;
            }
            size_t len, bad;
            const char *key = lua_tolstring(L, -2, &len);
            if (!af_utf8_valid(key, len, &bad)) {
                fail(c, AF_EUTF8, "invalid UTF-8 in key");
                snprintf(c->after, sizeof c->after, " (byte %zu)", bad);
                goto failed;
            }
            if ((child = to_json(c, lua_gettop(L), depth)) == NULL) {
                prepend_key(c, key, len);
                goto failed;
            }
            if (json_object_setn_new_nocheck(out, key, len, child) != 0) {
                nomem(c);
                goto failed;
            }
        } else if (key_type == LUA_TNUMBER) {
            double k = lua_tonumber(L, -2);
            if (!(k >= 1 && k == floor(k))) {
                fail(c, AF_EINVAL, "table key %.17g is not a string or a positive integer", k);
                goto failed;
            }
            if (kind == KIND_OBJECT) {
                fail(c, AF_EINVAL,
                     marked ? "object has a number key" : "table mixes array and object keys");
                goto failed;
            }
            kind = KIND_ARRAY;
            if (out == NULL && (out = json_array()) == NULL) {
                nomem(c);
                goto failed;
            }
            count++;
            max_key = k > max_key ? k : max_key;
            in_order = in_order && k == (double)count;
            if (in_order) {
                if ((child = to_json(c, lua_gettop(L), depth)) == NULL) {
                    prepend_index(c, count - 1);
                    goto failed;
                }
                if (json_array_append_new(out, child) != 0) {
                    nomem(c);
                    goto failed;
                }
            }
        } else {
            fail(c, AF_EINVAL, "table key of type %s is not a string or a positive integer",
                 lua_typename(L, key_type));
            goto failed;
        }
        lua_pop(L, 1);
    }

    if (kind == KIND_ARRAY) {
        if (out == NULL && (out = json_array()) == NULL) {
            return nomem(c);
        }
        if (max_key != (double)count) {
            fail(c, AF_EINVAL, "sparse array");
            goto failed;
        }
        if (!in_order) {
            json_array_clear(out);
            for (size_t i = 1; i <= count; i++) {
                lua_rawgeti(L, t, (int)i);
                if ((child = to_json(c, lua_gettop(L), depth)) == NULL) {
                    prepend_index(c, i - 1);
                    goto failed;
                }
                if (json_array_append_new(out, child) != 0) {
                    nomem(c);
                    goto failed;
                }
                lua_pop(L, 1);
            }
        }
    } else if (out == NULL && (out = json_object()) == NULL) {
        return nomem(c);
    } else if (json_object_size(out) > 1 && (out = sorted(out)) == NULL) {
        return nomem(c);
    }
    return out;

failed: /* the caller resets the Lua stack */
    json_decref(out);
    return NULL;
}

/* Converts the value at absolute index `idx`, found inside `depth` tables. */
static json_t *to_json(converter_t *c, int idx, int depth) {
    lua_State *L = c->L;
    int type = lua_type(L, idx);
    json_t *out;
    switch (type) {
    case LUA_TNIL:
        return json_null();
    case LUA_TBOOLEAN:
        return lua_toboolean(L, idx) ? json_true() : json_false();
    case LUA_TNUMBER: {
        double d = lua_tonumber(L, idx);
        if (!isfinite(d)) {
            return fail(c, AF_EINVAL, "number is not finite");
        }
        out = d == floor(d) && fabs(d) <= SAFE_INT_MAX ? json_integer((json_int_t)d) : json_real(d);
        return out ? out : nomem(c);
    }
    case LUA_TSTRING: {
        size_t len, bad;
        const char *s = lua_tolstring(L, idx, &len);
        if (!af_utf8_valid(s, len, &bad)) {
            snprintf(c->after, sizeof c->after, " (byte %zu)", bad);
            return fail(c, AF_EUTF8, "invalid UTF-8 in string");
        }
        out = json_stringn_nocheck(s, len);
        return out ? out : nomem(c);
    }
    case LUA_TTABLE:
        return table_to_json(c, idx, depth + 1);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            return json_null();
        }
        break;
    default:
        break;
    }
    return fail(c, AF_EINVAL, "cannot convert a %s to JSON", lua_typename(L, type));
}

int af_lua_to_json(lua_State *L, int idx, int max_depth, json_t **out, af_error_t *err) {
    *out = NULL;
    if (idx < 0 && idx > LUA_REGISTRYINDEX) {
        idx = lua_gettop(L) + idx + 1;
    }
    int base = lua_gettop(L);
    converter_t c;
    c.L = L;
    c.max_depth = max_depth;
    c.code = 0;
    c.after[0] = '\0';
    c.path_cut = 0;
    c.path_at = sizeof c.path - 1;
    c.path[c.path_at] = '\0';
    if (lua_type(L, idx) == LUA_TTABLE) {
        if (!lua_checkstack(L, 8)) {
            return af_error_set(err, AF_ENOMEM, "no Lua stack space to convert a value to JSON");
        }
        /* Marker lookups once per conversion, not once per table. */
        lua_getfield(L, LUA_REGISTRYINDEX, AF_LUA_ARRAY_MT);
        lua_getfield(L, LUA_REGISTRYINDEX, AF_LUA_OBJECT_MT);
        lua_getfield(L, LUA_REGISTRYINDEX, AF_LUA_BIGINT_MT);
        c.array_mt = base + 1;
        c.object_mt = base + 2;
        c.bigint_mt = base + 3;
    }
    json_t *value = to_json(&c, idx, 0);
    lua_settop(L, base);
    if (value == NULL) {
        return af_error_set(err, c.code, "%s at $%s%s%s", c.what, c.path_cut ? "..." : "",
                            c.path + c.path_at, c.after);
    }
    *out = value;
    return 0;
}
