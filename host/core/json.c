/* json.c -- JSON text in and out: our own printer (shortest round-tripping reals, insertion or
 * sorted key order) and a loader over jansson that adds a nesting limit and clear error codes. */
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Values from af_json_loads are limited by max_depth; only values built in C can be deeper, and
 * only a cycle (which jansson cannot prevent) makes them unboundedly deep. Refuse rather than
 * overflow the C stack. */
#define DUMP_MAX_DEPTH 2048

/* Keys of a sorted object are collected here; most objects fit without a malloc. */
#define SORT_STACK_KEYS 32

/* ---- printing ---- */

typedef struct dumper_s {
    af_buf_t buf;
    int flags;
} dumper_t;

typedef struct member_s {
    const char *key;
    size_t len;
    json_t *value;
} member_t;

static int put(dumper_t *d, const char *s, size_t n) {
    return af_buf_add(&d->buf, s, n);
}

static int put_indent(dumper_t *d, int depth) {
    static const char spaces[] = "                                                                ";
    size_t n = (size_t)depth * 2;
    int rc = put(d, "\n", 1);
    while (rc == 0 && n > 0) {
        size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
        rc = put(d, spaces, k);
        n -= k;
    }
    return rc;
}

/* Copies runs of bytes that need no escape in one go; UTF-8 passes through unchanged. */
static int put_string(dumper_t *d, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    int rc = put(d, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; rc == 0 && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        rc = put(d, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            n = 6;
        }
        if (rc == 0) {
            rc = put(d, esc, n);
        }
    }
    if (rc == 0) {
        rc = put(d, s + run, len - run);
    }
    return rc == 0 ? put(d, "\"", 1) : rc;
}

/* The shortest of %.15g, %.16g and %.17g that reads back to the same double (17 digits always
 * do), with ".0" added when the text would otherwise read back as an integer. */
static int put_real(dumper_t *d, double v) {
    char text[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(text, sizeof text, "%.*g", prec, v);
        if (prec == 17 || strtod(text, NULL) == v) {
            break;
        }
    }
    /* printf and strtod agree on the locale's decimal point; JSON wants '.' */
    for (char *p = text; *p; p++) {
        if (*p == ',') {
            *p = '.';
        }
    }
    size_t n = strlen(text);
    if (strpbrk(text, ".e") == NULL) {
        memcpy(text + n, ".0", 3);
        n += 2;
    }
    return put(d, text, n);
}

static int compare_members(const void *a, const void *b) {
    const member_t *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, n);
    if (c != 0) {
        return c;
    }
    return x->len < y->len ? -1 : x->len > y->len;
}

static int put_value(dumper_t *d, const json_t *v, int depth);

static int put_member(dumper_t *d, int first, const char *key, size_t len, const json_t *value,
                      int depth) {
    int pretty = d->flags & AF_JSON_PRETTY;
    int rc = first ? 0 : put(d, ",", 1);
    if (rc == 0 && pretty) {
        rc = put_indent(d, depth + 1);
    }
    if (rc == 0) {
        rc = put_string(d, key, len);
    }
    if (rc == 0) {
        rc = pretty ? put(d, ": ", 2) : put(d, ":", 1);
    }
    return rc == 0 ? put_value(d, value, depth + 1) : rc;
}

/* Kept out of put_object so the key array is not on the stack of every nesting level. */
static __attribute__((noinline)) int put_members_sorted(dumper_t *d, json_t *obj, size_t size,
                                                        int depth) {
    member_t small[SORT_STACK_KEYS];
    member_t *m = size <= SORT_STACK_KEYS ? small : malloc(size * sizeof *m);
    if (m == NULL) {
        return AF_ENOMEM;
    }
    size_t n = 0;
    for (void *it = json_object_iter(obj); it && n < size; it = json_object_iter_next(obj, it)) {
        m[n].key = json_object_iter_key(it);
        m[n].len = json_object_iter_key_len(it);
        m[n].value = json_object_iter_value(it);
        n++;
    }
    qsort(m, n, sizeof *m, compare_members);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = put_member(d, i == 0, m[i].key, m[i].len, m[i].value, depth);
    }
    if (m != small) {
        free(m);
    }
    return rc;
}

static int put_object(dumper_t *d, const json_t *v, int depth) {
    json_t *obj = (json_t *)v; /* jansson's iterators take non-const */
    size_t size = json_object_size(obj);
    if (size == 0) {
        return put(d, "{}", 2);
    }
    int rc = put(d, "{", 1);
    if (rc == 0 && (d->flags & AF_JSON_SORT)) {
        rc = put_members_sorted(d, obj, size, depth);
    } else {
        int first = 1;
        for (void *it = json_object_iter(obj); rc == 0 && it; it = json_object_iter_next(obj, it)) {
            rc = put_member(d, first, json_object_iter_key(it), json_object_iter_key_len(it),
                            json_object_iter_value(it), depth);
            first = 0;
        }
    }
    if (rc == 0 && (d->flags & AF_JSON_PRETTY)) {
        rc = put_indent(d, depth);
    }
    return rc == 0 ? put(d, "}", 1) : rc;
}

static int put_array(dumper_t *d, const json_t *v, int depth) {
    size_t size = json_array_size(v);
    if (size == 0) {
        return put(d, "[]", 2);
    }
    int pretty = d->flags & AF_JSON_PRETTY;
    int rc = put(d, "[", 1);
    for (size_t i = 0; rc == 0 && i < size; i++) {
        if (i > 0) {
            rc = put(d, ",", 1);
        }
        if (rc == 0 && pretty) {
            rc = put_indent(d, depth + 1);
        }
        if (rc == 0) {
            rc = put_value(d, json_array_get(v, i), depth + 1);
        }
    }
    if (rc == 0 && pretty) {
        rc = put_indent(d, depth);
    }
    return rc == 0 ? put(d, "]", 1) : rc;
}

static int put_value(dumper_t *d, const json_t *v, int depth) {
    if (depth > DUMP_MAX_DEPTH) {
        return AF_ELIMIT;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return put_object(d, v, depth);
    case JSON_ARRAY:
        return put_array(d, v, depth);
    case JSON_STRING:
        return put_string(d, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: {
        char text[32];
        int n = snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return put(d, text, (size_t)n);
    }
    case JSON_REAL:
        return put_real(d, json_real_value(v));
    case JSON_TRUE:
        return put(d, "true", 4);
    case JSON_FALSE:
        return put(d, "false", 5);
    case JSON_NULL:
        return put(d, "null", 4);
    }
    return AF_EINVAL;
}

char *af_json_dumps(const json_t *value, int flags) {
    if (value == NULL) {
        return NULL;
    }
    dumper_t d = {.buf = {0}, .flags = flags};
    if (put_value(&d, value, 0) != 0 || af_buf_add(&d.buf, "", 0) != 0) {
        af_buf_free(&d.buf);
        return NULL;
    }
    return d.buf.data;
}

/* ---- loading ---- */

/* Finds where the text first nests deeper than max_depth, counting brackets outside strings.
 * Runs before parsing so a hostile document is refused before anything is allocated. Returns
 * 1 and the byte offset of the offending bracket, or 0. Malformed text is left to jansson. */
static int find_too_deep(const char *text, size_t len, int max_depth, size_t *at) {
    int depth = 0;
    for (size_t i = 0; i < len; i++) {
        switch (text[i]) {
        case '[':
        case '{':
            if (++depth > max_depth) {
                *at = i;
                return 1;
            }
            break;
        case ']':
        case '}':
            depth--;
            break;
        case '"':
            for (i++; i < len && text[i] != '"'; i++) {
                if (text[i] == '\\') {
                    i++;
                }
            }
            break;
        default:
            break;
        }
    }
    return 0;
}

/* Line and column of a byte offset, counted the way jansson counts them (columns in
 * characters, from 1). */
static void position_of(const char *text, size_t at, int *line, int *column) {
    *line = 1;
    *column = 0;
    for (size_t i = 0; i <= at; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n') {
            ++*line;
            *column = 0;
        } else if ((c & 0xc0) != 0x80) {
            ++*column;
        }
    }
}

static int load_error_code(const json_error_t *jerr) {
    switch (json_error_code(jerr)) {
    case json_error_out_of_memory:
        return AF_ENOMEM;
    case json_error_stack_overflow:
        return AF_ELIMIT;
    case json_error_invalid_utf8:
        return AF_EUTF8;
    default:
        return AF_ESYNTAX;
    }
}

json_t *af_json_loads(const char *text, size_t len, int max_depth, af_error_t *err) {
    if (text == NULL) {
        af_error_set(err, AF_EINVAL, "no JSON text");
        return NULL;
    }
    size_t at;
    if (find_too_deep(text, len, max_depth, &at)) {
        int line, column;
        position_of(text, at, &line, &column);
        af_error_set(err, AF_ELIMIT, "line %d, column %d: JSON nested deeper than %d levels", line,
                     column, max_depth);
        return NULL;
    }
    /* Any value may stand at the top (RFC 8259); "\u0000" is allowed so that every string we
     * print reads back. Duplicate keys: the last wins. Trailing text is an error. */
    json_error_t jerr;
    json_t *value = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (value == NULL) {
        af_error_set(err, load_error_code(&jerr), "line %d, column %d: %s", jerr.line, jerr.column,
                     jerr.text);
    }
    return value;
}
