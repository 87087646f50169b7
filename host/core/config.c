/* config.c -- the settings of `agentflow serve`: one table of settings, a parser for the TOML
 * subset of config files, the AGENTFLOW_* environment, flags, and the effective config as JSON.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

#define CFG_FIELD(f) offsetof(af_config_t, f), sizeof(((af_config_t *)0)->f)

/* X(key, env, type, field, default, choices, min, max, description). min and max bound integers,
 * sizes (bytes) and durations (ms). Order: the order of the file and of --print-config. */
#define AF_CONFIG_MAP(X)                                                                           \
    X("listen", "AGENTFLOW_LISTEN", AF_CONFIG_STRING, listen, "127.0.0.1:8080", NULL, 0, 0,        \
      "address to listen on, HOST:PORT (port 0 picks a free one)")                                 \
    X("data", "AGENTFLOW_DATA", AF_CONFIG_STRING, data, "agentflow-data", NULL, 0, 0,              \
      "data directory (the store is DATA/agentflow.db)")                                           \
    X("durability", "AGENTFLOW_DURABILITY", AF_CONFIG_ENUM, durability, "normal", "normal|strict", \
      0, 0, "normal survives process crashes, strict also power loss")                             \
    X("http.max_body", "AGENTFLOW_HTTP_MAX_BODY", AF_CONFIG_SIZE, http.max_body, "1MB", NULL, 1,   \
      INT64_MAX, "largest request body (413 beyond)")                                              \
    X("http.max_header", "AGENTFLOW_HTTP_MAX_HEADER", AF_CONFIG_SIZE, http.max_header, "16KB",     \
      NULL, 1, INT64_MAX, "largest size of a request's headers (431 beyond)")                      \
    X("http.max_headers", "AGENTFLOW_HTTP_MAX_HEADERS", AF_CONFIG_INT, http.max_headers, "100",    \
      NULL, 1, INT_MAX, "most header lines in a request (431 beyond)")                             \
    X("http.read_timeout", "AGENTFLOW_HTTP_READ_TIMEOUT", AF_CONFIG_DURATION,                      \
      http.read_timeout_ms, "30s", NULL, 1, INT64_MAX, "time to receive a whole request")          \
    X("http.idle_timeout", "AGENTFLOW_HTTP_IDLE_TIMEOUT", AF_CONFIG_DURATION,                      \
      http.idle_timeout_ms, "60s", NULL, 1, INT64_MAX, "an idle keep-alive connection is closed")  \
    X("worker.concurrency", "AGENTFLOW_WORKER_CONCURRENCY", AF_CONFIG_INT, worker.concurrency,     \
      "1000", NULL, 1, INT_MAX, "executions running at once in this process")                      \
    X("worker.lease", "AGENTFLOW_WORKER_LEASE", AF_CONFIG_DURATION, worker.lease_ms, "30s", NULL,  \
      1, INT64_MAX, "a claimed job whose lease is not renewed for this long is claimed again")     \
    X("worker.heartbeat", "AGENTFLOW_WORKER_HEARTBEAT", AF_CONFIG_DURATION, worker.heartbeat_ms,   \
      "10s", NULL, 1, INT64_MAX, "how often a running job's lease is renewed")                     \
    X("worker.park_after", "AGENTFLOW_WORKER_PARK_AFTER", AF_CONFIG_DURATION,                      \
      worker.park_after_ms, "2s", NULL, 0, INT64_MAX,                                              \
      "delays and retry waits at least this long park the execution in storage")                   \
    X("retention.max_age", "AGENTFLOW_RETENTION_MAX_AGE", AF_CONFIG_DURATION,                      \
      retention.max_age_ms, "30d", NULL, 0, INT64_MAX,                                             \
      "finished executions older than this are deleted (0: no age bound)")                         \
    X("retention.max_count", "AGENTFLOW_RETENTION_MAX_COUNT", AF_CONFIG_INT, retention.max_count,  \
      "-1", NULL, -1, INT64_MAX, "finished executions kept at most (-1: no count bound)")          \
    X("retention.interval", "AGENTFLOW_RETENTION_INTERVAL", AF_CONFIG_DURATION,                    \
      retention.interval_ms, "1m", NULL, 1, INT64_MAX, "how often retention runs")                 \
    X("webhooks.max_wait", "AGENTFLOW_WEBHOOKS_MAX_WAIT", AF_CONFIG_DURATION,                      \
      webhooks.max_wait_ms, "30s", NULL, 0, INT64_MAX, "upper bound of wait-mode responses")       \
    X("webhooks.seen_ttl", "AGENTFLOW_WEBHOOKS_SEEN_TTL", AF_CONFIG_DURATION,                      \
      webhooks.seen_ttl_ms, "24h", NULL, 0, INT64_MAX,                                             \
      "how long Standard Webhooks message ids are remembered")                                     \
    X("webhooks.tolerance", "AGENTFLOW_WEBHOOKS_TOLERANCE", AF_CONFIG_DURATION,                    \
      webhooks.tolerance_ms, "5m", NULL, 1, INT64_MAX,                                             \
      "accepted clock skew of signed webhook timestamps")                                          \
    X("store.batch", "AGENTFLOW_STORE_BATCH", AF_CONFIG_INT, store.batch, "1024", NULL, 1,         \
      INT_MAX, "operations per group commit")                                                      \
    X("events.retention", "AGENTFLOW_EVENTS_RETENTION", AF_CONFIG_DURATION, events.retention_ms,   \
      "7d", NULL, 1, INT64_MAX, "stored events (for replay) older than this are deleted")          \
    X("events.max_depth", "AGENTFLOW_EVENTS_MAX_DEPTH", AF_CONFIG_INT, events.max_depth, "8",      \
      NULL, 1, 1000, "events a chain of workflows may emit in a row (loops stop there)")           \
    X("polls.max_per_host", "AGENTFLOW_POLLS_MAX_PER_HOST", AF_CONFIG_INT, polls.max_per_host,     \
      "60", NULL, 1, 1000, "polls of one target host per polls.host_period, all workflows")        \
    X("polls.host_period", "AGENTFLOW_POLLS_HOST_PERIOD", AF_CONFIG_DURATION,                      \
      polls.host_period_ms, "1m", NULL, 1, INT64_MAX, "the period of polls.max_per_host")          \
    X("clock", "AGENTFLOW_CLOCK", AF_CONFIG_STRING, clock, "system", NULL, 0, 0,                   \
      "system, or manual[@EPOCH_MS] for tests: time moves by POST /api/clock only")

static const af_config_setting_t SETTINGS[] = {
#define AF__SETTING(key, env, type, field, def, choices, min, max, doc)                            \
    {key, env, type, def, choices, doc},
    AF_CONFIG_MAP(AF__SETTING)
#undef AF__SETTING
};

static const struct {
    size_t offset, size;
    int64_t min, max;
} FIELDS[] = {
#define AF__FIELD(key, env, type, field, def, choices, min, max, doc) {CFG_FIELD(field), min, max},
    AF_CONFIG_MAP(AF__FIELD)
#undef AF__FIELD
};

_Static_assert(sizeof SETTINGS / sizeof SETTINGS[0] == AF_CONFIG_SETTINGS,
               "AF_CONFIG_SETTINGS is the number of entries of AF_CONFIG_MAP");

const af_config_setting_t *af_config_settings(size_t *n) {
    if (n) {
        *n = AF_CONFIG_SETTINGS;
    }
    return SETTINGS;
}

static int find_setting(const char *key, size_t len) {
    for (int i = 0; i < AF_CONFIG_SETTINGS; i++) {
        if (strlen(SETTINGS[i].key) == len && memcmp(SETTINGS[i].key, key, len) == 0) {
            return i;
        }
    }
    return -1;
}

/* ---- values ---- */

/* A setting's value, parsed and checked but not yet stored. */
typedef struct value_s {
    int64_t num;
    const char *text;
} value_t;

static int parse_int(const char *text, int64_t *out) {
    const char *p = text;
    if (*p == '-' || *p == '+') {
        p++;
    }
    if (!isdigit((unsigned char)*p)) {
        return AF_EINVAL;
    }
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p)) {
            return AF_EINVAL;
        }
    }
    errno = 0;
    long long v = strtoll(text, NULL, 10);
    if (errno == ERANGE) {
        return AF_EINVAL;
    }
    *out = v;
    return 0;
}

/* Parses a setting's text form; on error writes the reason (without the key) into msg. */
static int parse_value(int i, const char *text, value_t *v, char *msg, size_t size) {
    const af_config_setting_t *s = &SETTINGS[i];
    v->text = text;
    v->num = 0;
    switch (s->type) {
    case AF_CONFIG_STRING:
        if (*text == '\0') {
            snprintf(msg, size, "must not be empty");
            return AF_EINVAL;
        }
        if (strlen(text) >= FIELDS[i].size) {
            snprintf(msg, size, "too long (at most %zu bytes)", FIELDS[i].size - 1);
            return AF_EINVAL;
        }
        if (strcmp(s->key, "listen") == 0) {
            const char *colon = strrchr(text, ':');
            int64_t port;
            if (colon == NULL || colon == text || parse_int(colon + 1, &port) != 0 ||
                colon[1] == '-' || colon[1] == '+' || port > 65535) {
                snprintf(msg, size, "'%.200s' is not HOST:PORT (e.g. \"127.0.0.1:8080\")", text);
                return AF_EINVAL;
            }
        }
        return 0;
    case AF_CONFIG_ENUM: {
        size_t n = strlen(text);
        for (const char *c = s->choices; *c;) {
            const char *bar = strchr(c, '|');
            size_t len = bar ? (size_t)(bar - c) : strlen(c);
            if (len == n && memcmp(c, text, n) == 0) {
                int idx = 0; /* the index of the choice */
                for (const char *q = s->choices; q < c; q++) {
                    idx += *q == '|';
                }
                v->num = idx;
                return 0;
            }
            c = bar ? bar + 1 : c + len;
        }
        char list[128];
        snprintf(list, sizeof list, "%s", s->choices);
        for (char *q = list; *q; q++) {
            if (*q == '|') {
                *q = '/';
            }
        }
        snprintf(msg, size, "invalid value '%.200s' (one of %s)", text, list);
        return AF_EINVAL;
    }
    case AF_CONFIG_INT:
        if (parse_int(text, &v->num) != 0) {
            snprintf(msg, size, "invalid integer '%.200s'", text);
            return AF_EINVAL;
        }
        break;
    case AF_CONFIG_SIZE: {
        size_t bytes;
        if (af_bytes_parse(text, &bytes) != 0 || bytes > (size_t)INT64_MAX) {
            snprintf(msg, size, "invalid size '%.200s' (use e.g. \"%s\")", text, s->fallback);
            return AF_EINVAL;
        }
        v->num = (int64_t)bytes;
        break;
    }
    case AF_CONFIG_DURATION:
        if (af_duration_parse(text, &v->num) != 0) {
            snprintf(msg, size, "invalid duration '%.200s' (use e.g. \"%s\")", text, s->fallback);
            return AF_EINVAL;
        }
        break;
    }
    if (v->num < FIELDS[i].min || v->num > FIELDS[i].max) {
        if (v->num > FIELDS[i].max) {
            snprintf(msg, size, "'%.200s' is too large", text);
        } else if (s->type == AF_CONFIG_DURATION) {
            snprintf(msg, size, "must be longer than 0 (got '%.200s')", text);
        } else {
            snprintf(msg, size, "must be at least %" PRId64 " (got '%.200s')", FIELDS[i].min, text);
        }
        return AF_EINVAL;
    }
    return 0;
}

static void store_value(af_config_t *cfg, int i, const value_t *v) {
    char *field = (char *)cfg + FIELDS[i].offset;
    switch (SETTINGS[i].type) {
    case AF_CONFIG_STRING:
        snprintf(field, FIELDS[i].size, "%s", v->text);
        break;
    case AF_CONFIG_ENUM: {
        af_config_durability_t d = (af_config_durability_t)v->num;
        memcpy(field, &d, sizeof d);
        break;
    }
    case AF_CONFIG_SIZE: {
        size_t n = (size_t)v->num;
        memcpy(field, &n, sizeof n);
        break;
    }
    case AF_CONFIG_INT:
    case AF_CONFIG_DURATION:
        if (FIELDS[i].size == sizeof(int)) {
            int n = (int)v->num;
            memcpy(field, &n, sizeof n);
        } else {
            memcpy(field, &v->num, sizeof v->num);
        }
        break;
    }
}

static int64_t load_number(const af_config_t *cfg, int i) {
    const char *field = (const char *)cfg + FIELDS[i].offset;
    switch (SETTINGS[i].type) {
    case AF_CONFIG_ENUM: {
        af_config_durability_t d;
        memcpy(&d, field, sizeof d);
        return (int64_t)d;
    }
    case AF_CONFIG_SIZE: {
        size_t n;
        memcpy(&n, field, sizeof n);
        return (int64_t)n;
    }
    case AF_CONFIG_INT:
    case AF_CONFIG_DURATION:
        if (FIELDS[i].size == sizeof(int)) {
            int n;
            memcpy(&n, field, sizeof n);
            return n;
        } else {
            int64_t n;
            memcpy(&n, field, sizeof n);
            return n;
        }
    default:
        return 0;
    }
}

static const char *rank_name(int rank) {
    static const char *names[] = {"default", "file", "env", "flag"};
    return rank >= 0 && rank <= AF_CONFIG_FROM_FLAG ? names[rank] : "flag";
}

/* Durations and sizes are shown as they were written ("24h" stays "24h", not "1d"). */
static void remember_text(af_config_t *cfg, int i, const char *text) {
    af_config_type_t t = SETTINGS[i].type;
    size_t n = strlen(text);
    char *keep = cfg->af__origin[i].text;
    if ((t == AF_CONFIG_DURATION || t == AF_CONFIG_SIZE) && n < sizeof cfg->af__origin[i].text) {
        memcpy(keep, text, n + 1);
    } else {
        keep[0] = '\0';
    }
}

/* Parses text for setting i and stores it unless a value of a higher rank is there. Errors are
 * "where: [key: ]reason". */
static int apply(af_config_t *cfg, int i, const char *text, int rank, const char *where,
                 const char *source, int name_key, af_error_t *err) {
    value_t v;
    char msg[600];
    if (parse_value(i, text, &v, msg, sizeof msg) != 0) {
        if (name_key) {
            return af_error_at(err, AF_EINVAL, where, "%s: %s", SETTINGS[i].key, msg);
        }
        return af_error_at(err, AF_EINVAL, where, "%s", msg);
    }
    if (rank >= cfg->af__origin[i].rank) {
        store_value(cfg, i, &v);
        cfg->af__origin[i].rank = rank;
        snprintf(cfg->af__origin[i].source, sizeof cfg->af__origin[i].source, "%s", source);
        remember_text(cfg, i, text);
    }
    return 0;
}

void af_config_defaults(af_config_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < AF_CONFIG_SETTINGS; i++) {
        value_t v;
        char msg[600];
        if (parse_value(i, SETTINGS[i].fallback, &v, msg, sizeof msg) == 0) {
            store_value(cfg, i, &v);
            remember_text(cfg, i, SETTINGS[i].fallback);
        }
        cfg->af__origin[i].rank = AF_CONFIG_FROM_DEFAULT;
        snprintf(cfg->af__origin[i].source, sizeof cfg->af__origin[i].source, "default");
    }
}

int af_config_set_from(af_config_t *cfg, const char *key, const char *value, int rank,
                       const char *origin, af_error_t *err) {
    int i = key ? find_setting(key, strlen(key)) : -1;
    if (i < 0) {
        return af_error_at(err, AF_ENOTFOUND, origin, "unknown setting '%.200s'",
                           key ? key : "(null)");
    }
    if (value == NULL) {
        return af_error_at(err, AF_EINVAL, origin, "%s: needs a value", SETTINGS[i].key);
    }
    char source[300];
    if (origin && *origin) {
        snprintf(source, sizeof source, "%s %.280s", rank_name(rank), origin);
    } else {
        snprintf(source, sizeof source, "%s", rank_name(rank));
    }
    return apply(cfg, i, value, rank, origin, source, 1, err);
}

int af_config_set(af_config_t *cfg, const char *key, const char *value, af_error_t *err) {
    return af_config_set_from(cfg, key, value, AF_CONFIG_FROM_FLAG, NULL, err);
}

/* ---- the environment ---- */

int af_config_load_env(af_config_t *cfg, const char *const *envp, af_error_t *err) {
    if (envp == NULL) {
        envp = (const char *const *)environ;
    }
    for (size_t k = 0; envp && envp[k]; k++) {
        const char *e = envp[k];
        const char *eq = strchr(e, '=');
        if (strncmp(e, "AGENTFLOW_", 10) != 0 || eq == NULL || eq[1] == '\0') {
            continue;
        }
        size_t len = (size_t)(eq - e);
        for (int i = 0; i < AF_CONFIG_SETTINGS; i++) {
            if (strlen(SETTINGS[i].env) == len && memcmp(SETTINGS[i].env, e, len) == 0) {
                char source[64];
                snprintf(source, sizeof source, "env %s", SETTINGS[i].env);
                int rc = apply(cfg, i, eq + 1, AF_CONFIG_FROM_ENV, SETTINGS[i].env, source, 0, err);
                if (rc != 0) {
                    return rc;
                }
                break;
            }
        }
    }
    return 0;
}

/* ---- the file: a TOML subset ---- */

typedef enum { TOK_STRING, TOK_INT, TOK_BOOL } tok_kind_t;

static const char *kind_name(tok_kind_t k) {
    return k == TOK_STRING ? "a string" : k == TOK_INT ? "an integer" : "a boolean";
}

static int is_bare(int c) {
    return isalnum(c) || c == '_' || c == '-';
}

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }
    return p;
}

/* Reads a value at p into out (a string's unescaped text, an integer without '_', "true" or
 * "false"). Returns the position after it, or NULL with the reason in msg. */
static const char *read_value(const char *p, const char *end, tok_kind_t *kind, af_buf_t *out,
                              char *msg, size_t size) {
    out->len = 0;
    if (p == end || *p == '#') {
        snprintf(msg, size, "missing value after '='");
        return NULL;
    }
    if (*p == '"' || *p == '\'') {
        char quote = *p++;
        if (end - p >= 2 && p[0] == quote && p[1] == quote) {
            snprintf(msg, size, "multi-line strings are not supported");
            return NULL;
        }
        *kind = TOK_STRING;
        while (p < end && *p != quote) {
            char c = *p++;
            if ((unsigned char)c < 0x20 && c != '\t') {
                snprintf(msg, size, "control character in a string");
                return NULL;
            }
            if (c == '\\' && quote == '"') {
                if (p == end) {
                    break;
                }
                char e = *p++;
                c = e == '"' ? '"' : e == '\\' ? '\\' : e == 'n' ? '\n' : e == 't' ? '\t' : 0;
                if (c == 0) {
                    snprintf(msg, size, "unknown escape '\\%c' (use \\\" \\\\ \\n or \\t)", e);
                    return NULL;
                }
            }
            if (af_buf_add(out, &c, 1) != 0) {
                snprintf(msg, size, "out of memory");
                return NULL;
            }
        }
        if (p == end) {
            snprintf(msg, size, "unterminated string");
            return NULL;
        }
        return p + 1;
    }
    const char *start = p;
    while (p < end && (is_bare((unsigned char)*p) || *p == '+' || *p == '.' || *p == ':')) {
        p++;
    }
    size_t n = (size_t)(p - start);
    if ((n == 4 && memcmp(start, "true", 4) == 0) || (n == 5 && memcmp(start, "false", 5) == 0)) {
        *kind = TOK_BOOL;
        af_buf_add(out, start, n);
        return p;
    }
    const char *q = start;
    if (q < p && (*q == '-' || *q == '+')) {
        q++;
    }
    int ok = q < p && isdigit((unsigned char)*q);
    for (const char *r = q; ok && r < p; r++) {
        if (*r == '_') { /* TOML: an underscore sits between two digits */
            ok =
                r > q && isdigit((unsigned char)r[-1]) && r + 1 < p && isdigit((unsigned char)r[1]);
        } else if (!isdigit((unsigned char)*r)) {
            ok = 0;
        } else if (r == q && *r == '0' && r + 1 < p) {
            ok = 0; /* leading zeros are not TOML */
        }
    }
    if (!ok) {
        snprintf(msg, size,
                 "unsupported value '%.*s' (a value is a \"string\", an integer, true or false)",
                 (int)(n ? (n > 100 ? 100 : n) : 1), n ? start : p);
        return NULL;
    }
    *kind = TOK_INT;
    for (const char *r = start; r < p; r++) {
        if (*r != '_' && *r != '+') {
            af_buf_add(out, r, 1);
        }
    }
    return p;
}

/* The rest of a line after a header or a value: blanks, then a comment or nothing. */
static int line_ends(const char *p, const char *end) {
    p = skip_ws(p, end);
    return p == end || *p == '#';
}

static int section_known(const char *name, size_t len) {
    for (int i = 0; i < AF_CONFIG_SETTINGS; i++) {
        const char *dot = strchr(SETTINGS[i].key, '.');
        if (dot && (size_t)(dot - SETTINGS[i].key) == len &&
            memcmp(SETTINGS[i].key, name, len) == 0) {
            return 1;
        }
    }
    return 0;
}

int af_config_load_text(af_config_t *cfg, const char *name, const char *text, size_t len,
                        af_error_t *err) {
    char where[300], section[64] = "", msg[600];
    uint32_t seen = 0;
    af_buf_t val = {0};
    int line = 0, rc = 0;
    size_t bad;
    if (!af_utf8_valid(text, len, &bad)) {
        int l = 1;
        for (size_t k = 0; k < bad; k++) {
            l += text[k] == '\n';
        }
        snprintf(where, sizeof where, "%s:%d", name, l);
        return af_error_at(err, AF_ESYNTAX, where, "invalid UTF-8");
    }
    for (const char *p = text, *stop = text + len; p < stop && rc == 0;) {
        const char *nl = memchr(p, '\n', (size_t)(stop - p));
        const char *end = nl ? nl : stop;
        const char *next = nl ? nl + 1 : stop;
        line++;
        snprintf(where, sizeof where, "%s:%d", name, line);
        if (end > p && end[-1] == '\r') {
            end--;
        }
        if (end > p && memchr(p, '\0', (size_t)(end - p))) {
            rc = af_error_at(err, AF_ESYNTAX, where, "NUL byte");
            break;
        }
        p = skip_ws(p, end);
        if (p == end || *p == '#') {
            p = next;
            continue;
        }
        if (*p == '[') {
            const char *q = skip_ws(p + 1, end), *s = q;
            while (q < end && is_bare((unsigned char)*q)) {
                q++;
            }
            size_t n = (size_t)(q - s);
            q = skip_ws(q, end);
            if (p + 1 < end && p[1] == '[') {
                rc = af_error_at(err, AF_ESYNTAX, where, "arrays of tables are not supported");
            } else if (n == 0 || q == end || *q != ']' || !line_ends(q + 1, end)) {
                rc = af_error_at(err, AF_ESYNTAX, where,
                                 "a section header is [name] alone on its line");
            } else if (!section_known(s, n)) {
                rc = af_error_at(err, AF_EINVAL, where, "unknown section [%.*s]", (int)n, s);
            } else {
                snprintf(section, sizeof section, "%.*s", (int)n, s);
            }
            p = next;
            continue;
        }
        const char *k = p;
        while (p < end && (is_bare((unsigned char)*p) || *p == '.')) {
            p++;
        }
        size_t klen = (size_t)(p - k);
        p = skip_ws(p, end);
        if (klen == 0 || p == end || *p != '=') {
            rc = af_error_at(err, AF_ESYNTAX, where, "expected key = value");
            break;
        }
        char key[256];
        if (klen > 128) {
            rc = af_error_at(err, AF_EINVAL, where, "unknown key '%.128s...'", k);
            break;
        }
        snprintf(key, sizeof key, "%s%s%.*s", section, *section ? "." : "", (int)klen, k);
        tok_kind_t kind = TOK_STRING;
        p = read_value(skip_ws(p + 1, end), end, &kind, &val, msg, sizeof msg);
        int i = find_setting(key, strlen(key));
        if (p == NULL) {
            rc = af_error_at(err, AF_ESYNTAX, where, "%s: %s", key, msg);
        } else if (!line_ends(p, end)) {
            rc = af_error_at(err, AF_ESYNTAX, where, "%s: unexpected text after the value", key);
        } else if (i < 0) {
            rc = af_error_at(err, AF_EINVAL, where, "unknown key '%s'", key);
        } else if (seen & (1u << i)) {
            rc = af_error_at(err, AF_EINVAL, where, "%s: given twice", key);
        } else {
            af_config_type_t t = SETTINGS[i].type;
            int fits = kind == TOK_STRING
                           ? t != AF_CONFIG_INT
                           : kind == TOK_INT && (t == AF_CONFIG_INT || t == AF_CONFIG_SIZE);
            if (!fits) {
                const char *want = t == AF_CONFIG_INT    ? "an integer"
                                   : t == AF_CONFIG_SIZE ? "a size (\"1MB\" or a number of bytes)"
                                   : t == AF_CONFIG_DURATION ? "a duration string (e.g. \"30s\")"
                                                             : "a string";
                rc = af_error_at(err, AF_EINVAL, where, "%s: expected %s, got %s", key, want,
                                 kind_name(kind));
            } else if (memchr(val.data ? val.data : "", '\0', val.len)) {
                rc = af_error_at(err, AF_EINVAL, where, "%s: NUL byte in a string", key);
            } else {
                seen |= 1u << i;
                char source[320];
                snprintf(source, sizeof source, "file %s", where);
                af_buf_add(&val, "", 1); /* NUL-terminated */
                rc = apply(cfg, i, val.data, AF_CONFIG_FROM_FILE, where, source, 1, err);
            }
        }
        p = next;
    }
    af_buf_free(&val);
    return rc;
}

int af_config_load_file(af_config_t *cfg, const char *path, af_error_t *err) {
    char *text = NULL;
    size_t len = 0;
    int rc = af_read_file(path, 1u << 20, &text, &len, err);
    if (rc != 0) {
        return rc;
    }
    rc = af_config_load_text(cfg, path, text, len, err);
    free(text);
    return rc;
}

/* ---- checks and output ---- */

int af_config_check(const af_config_t *cfg, af_error_t *err) {
    if (cfg->worker.heartbeat_ms >= cfg->worker.lease_ms) {
        char h[32], l[32];
        int ih = find_setting("worker.heartbeat", 16), il = find_setting("worker.lease", 12);
        return af_error_set(err, AF_EINVAL,
                            "worker.heartbeat (%s, %s) must be shorter than worker.lease (%s, %s)",
                            af_duration_format((double)cfg->worker.heartbeat_ms, h, sizeof h),
                            cfg->af__origin[ih].source,
                            af_duration_format((double)cfg->worker.lease_ms, l, sizeof l),
                            cfg->af__origin[il].source);
    }
    if (af_config_clock_start(cfg) < 0) {
        int ic = find_setting("clock", 5);
        return af_error_set(err, AF_EINVAL,
                            "clock (%s): '%s' is not system, manual or manual@EPOCH_MS",
                            cfg->af__origin[ic].source, cfg->clock);
    }
    return 0;
}

int64_t af_config_clock_start(const af_config_t *cfg) {
    const char *c = cfg->clock;
    char *end;
    if (strcmp(c, "system") == 0 || strcmp(c, "manual") == 0) {
        return c[0] == 's' ? 0 : af_wall_ms();
    }
    long long v = strncmp(c, "manual@", 7) == 0 ? strtoll(c + 7, &end, 10) : -1;
    return v > 0 && *end == '\0' ? v : -1;
}

/* Milliseconds in the largest unit that writes them exactly: "30s", "1m", "1500ms". */
static void duration_text(int64_t ms, char *buf, size_t size) {
    static const struct {
        int64_t ms;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    if (ms == 0) {
        snprintf(buf, size, "0");
        return;
    }
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        if (ms % units[u].ms == 0) {
            snprintf(buf, size, "%" PRId64 "%s", ms / units[u].ms, units[u].unit);
            return;
        }
    }
    snprintf(buf, size, "%" PRId64 "ms", ms);
}

static void size_text(int64_t bytes, char *buf, size_t size) {
    static const struct {
        int64_t n;
        const char *unit;
    } units[] = {{1 << 30, "GB"}, {1 << 20, "MB"}, {1 << 10, "KB"}};
    for (size_t u = 0; bytes > 0 && u < sizeof units / sizeof units[0]; u++) {
        if (bytes % units[u].n == 0) {
            snprintf(buf, size, "%" PRId64 "%s", bytes / units[u].n, units[u].unit);
            return;
        }
    }
    snprintf(buf, size, "%" PRId64, bytes);
}

static json_t *value_json(const af_config_t *cfg, int i) {
    char buf[64];
    int64_t n = load_number(cfg, i);
    if (cfg->af__origin[i].text[0]) {
        return json_string(cfg->af__origin[i].text);
    }
    switch (SETTINGS[i].type) {
    case AF_CONFIG_STRING:
        return json_string((const char *)cfg + FIELDS[i].offset);
    case AF_CONFIG_ENUM: {
        const char *c = SETTINGS[i].choices;
        for (int64_t k = 0; k < n && strchr(c, '|'); k++) {
            c = strchr(c, '|') + 1;
        }
        const char *bar = strchr(c, '|');
        return json_stringn(c, bar ? (size_t)(bar - c) : strlen(c));
    }
    case AF_CONFIG_INT:
        return json_integer((json_int_t)n);
    case AF_CONFIG_SIZE:
        size_text(n, buf, sizeof buf);
        return json_string(buf);
    case AF_CONFIG_DURATION:
        duration_text(n, buf, sizeof buf);
        return json_string(buf);
    }
    return json_null();
}

json_t *af_config_to_json(const af_config_t *cfg) {
    json_t *out = json_object();
    if (out == NULL) {
        return NULL;
    }
    for (int i = 0; i < AF_CONFIG_SETTINGS; i++) {
        const char *key = SETTINGS[i].key, *dot = strchr(key, '.');
        json_t *parent = out;
        if (dot) {
            char section[64];
            snprintf(section, sizeof section, "%.*s", (int)(dot - key), key);
            parent = json_object_get(out, section);
            if (parent == NULL) {
                parent = json_object();
                if (json_object_set_new(out, section, parent) != 0) {
                    json_decref(out);
                    return NULL;
                }
            }
            key = dot + 1;
        }
        json_t *entry = json_pack("{s:o, s:s}", "value", value_json(cfg, i), "source",
                                  cfg->af__origin[i].source);
        if (entry == NULL || json_object_set_new(parent, key, entry) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

const char *af_config_source(const af_config_t *cfg, const char *key) {
    int i = key ? find_setting(key, strlen(key)) : -1;
    return i < 0 ? NULL : cfg->af__origin[i].source;
}
