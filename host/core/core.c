/* core.c -- error codes and detail, logging, time, durations, ids, buffers, files, UTF-8.
 * The JSON text functions live in json.c. */
#include "core/core.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ---- errors ---- */

uint64_t af_hash_bytes(const char *s, size_t len) {
    uint64_t h = 14695981039346656037u; /* the FNV offset basis */
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    }
    return h;
}

size_t af_hash_str(const char *s) {
    return (size_t)af_hash_bytes(s, strlen(s));
}

size_t af_strlcpy(char *dst, const char *src, size_t size) {
    size_t n = strlen(src);
    size_t m = n < size ? n : size - 1;
    memcpy(dst, src, m);
    dst[m] = '\0';
    return n;
}

const char *af_strerror(int code) {
    switch (code) {
    case 0:
        return "success";
#define AF__ERR_TEXT(name, c, text)                                                                \
    case c:                                                                                        \
        return text;
        AF_ERRNO_MAP(AF__ERR_TEXT)
#undef AF__ERR_TEXT
    }
    return "unknown error";
}

const char *af_err_name(int code) {
    switch (code) {
    case 0:
        return "OK";
#define AF__ERR_NAME(name, c, text)                                                                \
    case c:                                                                                        \
        return #name;
        AF_ERRNO_MAP(AF__ERR_NAME)
#undef AF__ERR_NAME
    }
    return "UNKNOWN";
}

static int error_vset(af_error_t *err, int code, const char *where, const char *fmt, va_list ap) {
    if (err == NULL) {
        return code;
    }
    err->code = code;
    snprintf(err->where, sizeof err->where, "%s", where ? where : "");
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return code;
}

int af_error_set(af_error_t *err, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, code, NULL, fmt, ap);
    va_end(ap);
    return code;
}

int af_error_at(af_error_t *err, int code, const char *where, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, code, where, fmt, ap);
    va_end(ap);
    return code;
}

const char *af_error_text(const af_error_t *err, char *buf, size_t size) {
    if (err->where[0] != '\0' && strncmp(err->msg, err->where, strlen(err->where)) != 0) {
        snprintf(buf, size, "%s: %s", err->where, err->msg);
    } else {
        snprintf(buf, size, "%s", err->msg);
    }
    return buf;
}

/* ---- logging ---- */

static af_log_level_t log_level = AF_LEVEL_INFO;

void af_log_set_level(af_log_level_t level) {
    log_level = level;
}

af_log_level_t af_log_get_level(void) {
    return log_level;
}

void af_log(af_log_level_t level, const char *fmt, ...) {
    static const char *names[] = {"debug", "info", "warning", "error"};
    if (level < log_level || level >= AF_LEVEL_OFF) {
        return;
    }
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "agentflow: %s: %s\n", names[level], line);
}

/* ---- time ---- */

double af_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int64_t af__clock_manual_now(void); /* clock.c */

int64_t af_wall_ms(void) {
    int64_t manual = af__clock_manual_now();
    if (manual != 0) {
        return manual;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *af_time_iso(int64_t wall_ms, char *buf, size_t size) {
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03dZ", base, (int)(wall_ms % 1000));
    return buf;
}

/* Digits with at most one '.', then letters only: no hex, exponents or signs. */
static int plain_decimal(const char *s) {
    int dots = 0, digits = 0;
    for (; *s && !isalpha((unsigned char)*s); s++) {
        if (*s == '.') {
            dots++;
        } else if (isdigit((unsigned char)*s)) {
            digits++;
        } else {
            return 0;
        }
    }
    return digits > 0 && dots <= 1 && (s[0] != 'x' && s[0] != 'X' && s[0] != 'e' && s[0] != 'E');
}

int af_duration_parse(const char *text, int64_t *ms) {
    if (text == NULL || *text == '\0' || isspace((unsigned char)*text) || *text == '-' ||
        *text == '+') {
        return AF_EINVAL;
    }
    if (!plain_decimal(text)) {
        return AF_EINVAL;
    }
    errno = 0;
    char *end;
    double v = strtod(text, &end);
    if (end == text || errno != 0 || !isfinite(v) || v < 0) {
        return AF_EINVAL;
    }
    double scale;
    if (*end == '\0' || strcmp(end, "ms") == 0) {
        scale = 1;
    } else if (strcmp(end, "s") == 0) {
        scale = 1e3;
    } else if (strcmp(end, "m") == 0) {
        scale = 60e3;
    } else if (strcmp(end, "h") == 0) {
        scale = 3600e3;
    } else if (strcmp(end, "d") == 0) {
        scale = 86400e3;
    } else {
        return AF_EINVAL;
    }
    double total = v * scale;
    if (total > 9.0e15) {
        return AF_EINVAL;
    }
    *ms = (int64_t)llround(total);
    return 0;
}

const char *af_duration_format(double ms, char *buf, size_t size) {
    if (ms < 1) {
        snprintf(buf, size, "%.2fms", ms);
    } else if (ms < 1000) {
        snprintf(buf, size, "%.0fms", ms);
    } else if (ms < 60000) {
        snprintf(buf, size, "%.2fs", ms / 1000);
    } else {
        long s = (long)(ms / 1000);
        snprintf(buf, size, "%ldm%02lds", s / 60, s % 60);
    }
    return buf;
}

int af_bytes_parse(const char *text, size_t *bytes) {
    if (text == NULL || !isdigit((unsigned char)*text) || !plain_decimal(text)) {
        return AF_EINVAL;
    }
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || !isfinite(v) || v < 0) {
        return AF_EINVAL;
    }
    double scale = 1;
    if (*end == '\0' || strcmp(end, "B") == 0) {
        scale = 1;
    } else if (strcmp(end, "KB") == 0 || strcmp(end, "K") == 0) {
        scale = 1024.0;
    } else if (strcmp(end, "MB") == 0 || strcmp(end, "M") == 0) {
        scale = 1024.0 * 1024;
    } else if (strcmp(end, "GB") == 0 || strcmp(end, "G") == 0) {
        scale = 1024.0 * 1024 * 1024;
    } else {
        return AF_EINVAL;
    }
    double total = v * scale;
    if (total > 1e15) {
        return AF_EINVAL;
    }
    *bytes = (size_t)total;
    return 0;
}

/* ---- ids ---- */

/* 16 random bytes, from a per-thread pool refilled by getrandom (one call per 16 ids). */
static void random16(unsigned char b[16]) {
    static _Thread_local unsigned char pool[256];
    static _Thread_local size_t left;
    if (left < 16) {
        if (getrandom(pool, sizeof pool, 0) != (ssize_t)sizeof pool) {
            uint64_t seed = (uint64_t)(af_mono_ms() * 1000) ^ (uint64_t)af_wall_ms();
            for (size_t i = 0; i < sizeof pool; i++) { /* no entropy source: unique per process */
                seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                pool[i] = (unsigned char)(seed >> 56);
            }
        }
        left = sizeof pool;
    }
    left -= 16;
    memcpy(b, pool + left, 16);
    memset(pool + left, 0, 16); /* used bytes do not stay behind */
}

/* The 16 bytes as 8-4-4-4-12 lowercase hex with its NUL (37 bytes). */
static void uuid_format(const unsigned char b[16], char *buf) {
    static const char HEX[] = "0123456789abcdef";
    char *o = buf;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *o++ = '-';
        }
        *o++ = HEX[b[i] >> 4];
        *o++ = HEX[b[i] & 0xf];
    }
    *o = '\0';
}

const char *af_uuid_v4(char *buf) {
    unsigned char b[16];
    random16(b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    uuid_format(b, buf);
    return buf;
}

const char *af_uuid_v7(char *buf) {
    /* RFC 9562 UUIDv7: 48-bit Unix milliseconds, then 12 bits that count up within the same
     * millisecond (so ids made by one thread sort by creation), then 62 random bits. Ids that
     * grow with time keep B-tree inserts at the right edge of the index. */
    static _Thread_local int64_t last_ms;
    static _Thread_local unsigned seq;
    int64_t ms = af_wall_ms();
    if (ms <= last_ms) {
        ms = last_ms;
        if (++seq > 0xfff) { /* 4096 in one millisecond: borrow the next one */
            ms = ++last_ms;
            seq = 0;
        }
    } else {
        last_ms = ms;
        seq = 0;
    }
    unsigned char b[16];
    random16(b);
    for (int i = 0; i < 6; i++) {
        b[i] = (unsigned char)((uint64_t)ms >> (40 - 8 * i));
    }
    b[6] = (unsigned char)(0x70 | ((seq >> 8) & 0x0f));
    b[7] = (unsigned char)(seq & 0xff);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    uuid_format(b, buf);
    return buf;
}

/* ---- buffers and files ---- */

int af_buf_add(af_buf_t *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *p = realloc(b->data, cap);
        if (p == NULL) {
            return AF_ENOMEM;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int af_buf_addf(af_buf_t *b, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return AF_EINVAL;
    }
    if ((size_t)n < sizeof small) {
        return af_buf_add(b, small, (size_t)n);
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        return AF_ENOMEM;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = af_buf_add(b, big, (size_t)n);
    free(big);
    return rc;
}

void af_buf_free(af_buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int af_grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) {
        return 0;
    }
    size_t ncap = *cap ? *cap * 2 : 16;
    while (ncap < need) {
        ncap *= 2;
    }
    void *p = realloc(*arr, ncap * elem);
    if (p == NULL) {
        return AF_ENOMEM;
    }
    memset((char *)p + *cap * elem, 0, (ncap - *cap) * elem);
    *arr = p;
    *cap = ncap;
    return 0;
}

int af_read_file(const char *path, size_t max, char **out, size_t *len, af_error_t *err) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return af_error_set(err, AF_EIO, "cannot open %s: %s", path, strerror(errno));
    }
    af_buf_t b = {0};
    char chunk[16384];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > max) {
            rc =
                af_error_set(err, AF_ELIMIT, "%s is larger than the limit of %zu bytes", path, max);
            break;
        }
        if (af_buf_add(&b, chunk, n) != 0) {
            rc = af_error_set(err, AF_ENOMEM, "out of memory reading %s", path);
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        rc = af_error_set(err, AF_EIO, "cannot read %s: %s", path, strerror(errno));
    }
    fclose(f);
    if (rc != 0) {
        af_buf_free(&b);
        return rc;
    }
    if (b.data == NULL && af_buf_add(&b, "", 0) != 0) {
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    *out = b.data;
    if (len) {
        *len = b.len;
    }
    return 0;
}

int af_is_identifier(const char *s, size_t len) {
    if (len == 0 || isdigit((unsigned char)s[0])) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '_') {
            return 0;
        }
    }
    return 1;
}

/* ---- UTF-8 ---- */

int af_utf8_valid(const char *str, size_t len, size_t *bad_at) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            goto bad;
        }
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (s[i + k] & 0xc0) != 0x80) {
                goto bad;
            }
            c = (c << 6) | (s[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            goto bad;
        }
        i += n + 1;
    }
    return 1;
bad:
    if (bad_at) {
        *bad_at = i;
    }
    return 0;
}
