/* core.h -- the host's base layer: error codes, error detail, logging, durations, time, ids,
 * and JSON text output. Everything above may use it; it uses nothing of the host. */
#ifndef AF_CORE_H
#define AF_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* ---- errors ---------------------------------------------------------------------------------
 * Functions return 0 or a negative AF_E* code. Codes are never renumbered. */
#define AF_ERRNO_MAP(X)                                                                            \
    X(INVAL, -1, "invalid argument")                                                               \
    X(NOMEM, -2, "out of memory")                                                                  \
    X(IO, -3, "input/output error")                                                                \
    X(SYNTAX, -4, "syntax error")                                                                  \
    X(DEFINITION, -5, "invalid workflow definition")                                               \
    X(NOTFOUND, -6, "not found")                                                                   \
    X(EXISTS, -7, "already exists")                                                                \
    X(LIMIT, -8, "limit exceeded")                                                                 \
    X(RUNTIME, -9, "runtime error")                                                                \
    X(TIMEOUT, -10, "timed out")                                                                   \
    X(CANCELLED, -11, "cancelled")                                                                 \
    X(BUDGET, -12, "budget exceeded")                                                              \
    X(UTF8, -13, "invalid UTF-8")                                                                  \
    X(STATE, -14, "invalid state")

typedef enum {
    AF_OK = 0,
#define AF__ERR_ENUM(name, code, text) AF_E##name = (code),
    AF_ERRNO_MAP(AF__ERR_ENUM)
#undef AF__ERR_ENUM
} af_errno_t;

/* FNV-1a hash of s[0..len), and of a NUL-terminated string, for in-memory hash tables. */
uint64_t af_hash_bytes(const char *s, size_t len);
size_t af_hash_str(const char *s);

/* Copies src into dst of size bytes (size > 0), cut short if need be, always terminated; returns
 * strlen(src). For fixed-size id and name fields on hot paths, where snprintf costs more. */
size_t af_strlcpy(char *dst, const char *src, size_t size);

/* A short text for an AF_E* code ("unknown error" for others). Never NULL. */
const char *af_strerror(int code);
/* The code's name without prefix, e.g. "TIMEOUT". Never NULL. */
const char *af_err_name(int code);

/* Detail for people, filled by a failing function when the caller passes one (may be NULL).
 * `where` is "file:line" when the error has a source location, else empty. */
typedef struct af_error_s {
    int code;
    char where[256];
    char msg[1024];
} af_error_t;

/* Sets code and message (printf-style); returns code so callers can `return af_error_set(...)`. */
int af_error_set(af_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* As af_error_set, with a source location ("file.lua:12"; NULL or "" for none). */
int af_error_at(af_error_t *err, int code, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Writes "where: msg" (or "msg") into buf. Returns buf. */
const char *af_error_text(const af_error_t *err, char *buf, size_t size);

/* ---- logging -------------------------------------------------------------------------------- */
typedef enum {
    AF_LEVEL_DEBUG,
    AF_LEVEL_INFO,
    AF_LEVEL_WARN,
    AF_LEVEL_ERROR,
    AF_LEVEL_OFF
} af_log_level_t;

void af_log_set_level(af_log_level_t level);
af_log_level_t af_log_get_level(void);
/* Writes one line "agentflow: level: message" to stderr when level is enabled. */
void af_log(af_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- time ----------------------------------------------------------------------------------- */
/* Monotonic milliseconds (fractional), for measuring. */
double af_mono_ms(void);
/* Wall-clock milliseconds since the Unix epoch: the system's, or the manual clock's (clock.h). */
int64_t af_wall_ms(void);
/* Formats wall-clock milliseconds as RFC 3339 UTC with milliseconds into buf (>= 32 bytes). */
const char *af_time_iso(int64_t wall_ms, char *buf, size_t size);

/* Parses a duration: a number with unit ms, s, m, h or d ("200ms", "1.5s", "2m"), or a bare
 * number of milliseconds. Returns 0 and sets *ms, or AF_EINVAL for anything else (negative,
 * empty, unknown unit, overflow). */
int af_duration_parse(const char *text, int64_t *ms);
/* Formats milliseconds for people: "850ms", "1.50s", "2m03s". Returns buf. */
const char *af_duration_format(double ms, char *buf, size_t size);

/* Parses a byte size: "64MB", "512KB", "1GB" (powers of 1024), "1048576". */
int af_bytes_parse(const char *text, size_t *bytes);

/* ---- ids ------------------------------------------------------------------------------------ */
/* Writes a random (v4) UUID, 36 characters + NUL, into buf (>= 37 bytes). Returns buf. */
const char *af_uuid_v4(char *buf);
/* Writes a time-ordered UUID (version 7: milliseconds first, then a counter, then random bits)
 * into buf (37 bytes); ids made later by the same thread sort after. Returns buf. */
const char *af_uuid_v7(char *buf);

/* ---- JSON text ------------------------------------------------------------------------------
 * jansson prints reals with 17 significant digits (0.1 -> 0.10000000000000001); we print the
 * shortest text that reads back to the same double, and integers as integers. */
#define AF_JSON_PRETTY 0x1 /* indent by 2 spaces, one member per line */
#define AF_JSON_SORT   0x2 /* object keys sorted */

/* Returns a new malloc'd NUL-terminated string (caller frees), or NULL on out of memory. */
char *af_json_dumps(const json_t *value, int flags);
/* Loads JSON text with limits: at most max_depth nesting; invalid UTF-8 and trailing garbage
 * rejected. Returns a new reference, or NULL with err set (message has line and column). */
json_t *af_json_loads(const char *text, size_t len, int max_depth, af_error_t *err);

/* ---- small string buffer -------------------------------------------------------------------- */
typedef struct af_buf_s {
    char *data;
    size_t len, cap;
} af_buf_t;

/* Appends; on out of memory the buffer keeps what it had and returns AF_ENOMEM. */
int af_buf_add(af_buf_t *b, const char *s, size_t n);
int af_buf_addf(af_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void af_buf_free(af_buf_t *b);

/* Makes room in *arr (of elem-byte items, *cap of them) for need items: doubles the capacity
 * (16 at first) until it is enough, zeroing what is new. Returns 0 or AF_ENOMEM (then *arr and
 * *cap are unchanged). */
int af_grow(void **arr, size_t *cap, size_t need, size_t elem);

/* Reads a whole file (at most max bytes) into a new malloc'd NUL-terminated buffer. */
int af_read_file(const char *path, size_t max, char **out, size_t *len, af_error_t *err);

/* 1 when s[0..len) is an ASCII identifier (letters, digits, '_', not starting with a digit):
 * such keys print as ".key" in JSON paths, others as ["key"]. */
int af_is_identifier(const char *s, size_t len);

/* Checks that s[0..len) is valid UTF-8. Returns 1 if valid; else 0 and the byte offset of the
 * first bad sequence in *bad_at (may be NULL). */
int af_utf8_valid(const char *s, size_t len, size_t *bad_at);

#endif
