/* http.c -- the http plugin: the `http.request` node (the seed's "webhook nodes"). Methods,
 * headers, query, JSON / form / raw bodies, bearer/basic/header auth, timeouts, bounded
 * redirects, a response size limit, TLS verification on by default, JSON responses parsed.
 * 429 and 5xx are retryable and honour Retry-After; a circuit breaker per host fails fast after
 * repeated failures, then lets one probe through. Built against sdk/ only. */
#include <agentflow/plugin.h>
#include <jansson.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const af_host_t *host;

/* ---- the circuit breaker, per scheme://host:port ---- */

#define BREAKERS 256

typedef struct breaker_s {
    char key[256];
    int failures;
    double open_until; /* ms, monotonic; 0 closed */
    int probing;       /* half-open: one call is trying */
} breaker_t;

static breaker_t breakers[BREAKERS];
static int nbreakers;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static breaker_t *breaker_for(const char *url) {
    char key[256];
    const char *scheme_end = strstr(url, "://");
    size_t start = scheme_end ? (size_t)(scheme_end - url) + 3 : 0;
    size_t len = start + strcspn(url + start, "/?#"); /* scheme://host:port */
    snprintf(key, sizeof key, "%.*s", (int)len, url);
    for (int i = 0; i < nbreakers; i++) {
        if (strcmp(breakers[i].key, key) == 0) {
            return &breakers[i];
        }
    }
    breaker_t *b = &breakers[nbreakers < BREAKERS ? nbreakers++ : (int)(now_ms()) % BREAKERS];
    memset(b, 0, sizeof *b);
    snprintf(b->key, sizeof b->key, "%s", key);
    return b;
}

/* ---- config helpers ---- */

static int64_t duration_ms(json_t *v, int64_t fallback) {
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        return json_integer_value(v);
    }
    if (json_is_real(v) && json_real_value(v) >= 0) {
        return (int64_t)json_real_value(v);
    }
    const char *s = json_string_value(v);
    if (s == NULL) {
        return fallback;
    }
    char *end;
    double n = strtod(s, &end);
    if (end == s || n < 0) {
        return -1;
    }
    if (*end == '\0' || strcmp(end, "ms") == 0) {
        return (int64_t)n;
    }
    if (strcmp(end, "s") == 0) {
        return (int64_t)(n * 1e3);
    }
    if (strcmp(end, "m") == 0) {
        return (int64_t)(n * 60e3);
    }
    if (strcmp(end, "h") == 0) {
        return (int64_t)(n * 3600e3);
    }
    if (strcmp(end, "d") == 0) {
        return (int64_t)(n * 86400e3);
    }
    return -1;
}

static void url_encode(char **out, size_t *len, size_t *cap, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        if (*len + 4 >= *cap) {
            *cap = *cap * 2 + 64;
            *out = realloc(*out, *cap);
        }
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            (*out)[(*len)++] = (char)c;
        } else {
            (*out)[(*len)++] = '%';
            (*out)[(*len)++] = hex[c >> 4];
            (*out)[(*len)++] = hex[c & 15];
        }
    }
    (*out)[*len] = '\0';
}

static void append(char **out, size_t *len, size_t *cap, const char *s) {
    size_t n = strlen(s);
    if (*len + n + 1 >= *cap) {
        *cap = (*len + n + 1) * 2;
        *out = realloc(*out, *cap);
    }
    memcpy(*out + *len, s, n + 1);
    *len += n;
}

static char *scalar_text(json_t *v) {
    if (json_is_string(v)) {
        return strdup(json_string_value(v));
    }
    return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

/* key=value&... from an object, percent-encoded. */
static void encode_pairs(char **out, size_t *len, size_t *cap, json_t *obj, int first) {
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        append(out, len, cap, first ? "" : "&");
        first = 0;
        url_encode(out, len, cap, k);
        append(out, len, cap, "=");
        char *text = scalar_text(v);
        url_encode(out, len, cap, text ? text : "");
        free(text);
    }
}

static char *build_url(const char *url, json_t *query) {
    size_t cap = strlen(url) + 64, len = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    append(&out, &len, &cap, url);
    if (json_object_size(query) > 0) {
        append(&out, &len, &cap, strchr(url, '?') ? "&" : "?");
        encode_pairs(&out, &len, &cap, query, 1);
    }
    return out;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64(const char *in) {
    size_t n = strlen(in), o = 0;
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)in[i] << 16;
        v |= i + 1 < n ? (unsigned char)in[i + 1] << 8 : 0;
        v |= i + 2 < n ? (unsigned char)in[i + 2] : 0;
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* ---- a request in flight ---- */

typedef struct req_s {
    af_call_t *call;
    af_http_t *handle;
    breaker_t *breaker;
    int threshold;
    int64_t cooldown_ms;
    int fail_on_status;
    char response[8];
    char **headers;
    int nheaders;
    char *url, *body;
    /* stream = "sse": events parsed as the body arrives */
    int sse;
    char *pending;
    size_t pending_len;
    json_t *events;
    double started_ms, first_event_ms;
} req_t;

static void req_free(req_t *r) {
    free(r->pending);
    json_decref(r->events);
    for (int i = 0; i < r->nheaders; i++) {
        free(r->headers[i]);
    }
    free(r->headers);
    free(r->url);
    free(r->body);
    free(r);
}

static int bad_header(const char *name, const char *value) {
    return strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL || *name == '\0';
}

static void add_header(req_t *r, const char *name, const char *value) {
    r->headers = realloc(r->headers, sizeof *r->headers * (size_t)(r->nheaders + 2));
    size_t n = strlen(name) + strlen(value) + 3;
    r->headers[r->nheaders] = malloc(n);
    snprintf(r->headers[r->nheaders], n, "%s: %s", name, value);
    r->headers[++r->nheaders] = NULL;
}

static int has_header(req_t *r, const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < r->nheaders; i++) {
        if (strncasecmp(r->headers[i], name, n) == 0 && r->headers[i][n] == ':') {
            return 1;
        }
    }
    return 0;
}

static const char *header_value(const af_http_response_t *res, const char *name) {
    size_t n = strlen(name);
    for (const char *const *h = res->headers; h && *h; h++) {
        if (strncasecmp(*h, name, n) == 0 && (*h)[n] == ':') {
            const char *v = *h + n + 1;
            while (*v == ' ') {
                v++;
            }
            return v;
        }
    }
    return NULL;
}

/* Retry-After: seconds, or an HTTP date. */
static uint64_t retry_after_ms(const af_http_response_t *res) {
    const char *v = header_value(res, "Retry-After");
    if (v == NULL) {
        return 0;
    }
    if (isdigit((unsigned char)*v)) {
        return (uint64_t)(atof(v) * 1000);
    }
    struct tm tm = {0};
    if (strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm)) {
        time_t at = timegm(&tm), now = time(NULL);
        return at > now ? (uint64_t)(at - now) * 1000 : 0;
    }
    return 0;
}

static json_t *response_json(req_t *r, const af_http_response_t *res) {
    json_t *headers = json_object();
    for (const char *const *h = res->headers; h && *h; h++) {
        const char *colon = strchr(*h, ':');
        if (colon == NULL) {
            continue;
        }
        char name[256];
        size_t n = (size_t)(colon - *h) < sizeof name - 1 ? (size_t)(colon - *h) : sizeof name - 1;
        for (size_t i = 0; i < n; i++) {
            name[i] = (char)tolower((unsigned char)(*h)[i]);
        }
        name[n] = '\0';
        const char *v = colon + 1;
        while (*v == ' ') {
            v++;
        }
        json_object_set_new(headers, name, json_string(v));
    }
    const char *type = json_string_value(json_object_get(headers, "content-type"));
    int want_json = strcmp(r->response, "json") == 0 ||
                    (strcmp(r->response, "auto") == 0 && type && strstr(type, "json"));
    json_t *body = NULL;
    if (want_json && res->body_len > 0) {
        json_error_t jerr;
        body = json_loadb(res->body, res->body_len, JSON_DECODE_ANY, &jerr);
        if (body == NULL && strcmp(r->response, "json") == 0) {
            json_decref(headers);
            return NULL;
        }
    }
    if (body == NULL) {
        body = res->body ? json_stringn(res->body, res->body_len) : json_null();
        if (body == NULL) { /* not UTF-8: say so rather than fail */
            body = json_pack("{s:s, s:I}", "binary", "not UTF-8 text", "bytes",
                             (json_int_t)res->body_len);
        }
    }
    return json_pack("{s:i, s:b, s:o, s:o, s:s, s:f}", "status", res->status, "ok",
                     res->status >= 200 && res->status < 300, "headers", headers, "body", body,
                     "url", res->effective_url ? res->effective_url : r->url, "elapsed_ms",
                     res->elapsed_ms);
}

static void breaker_result(req_t *r, int failed) {
    breaker_t *b = r->breaker;
    b->probing = 0;
    if (!failed) {
        b->failures = 0;
        b->open_until = 0;
        return;
    }
    if (++b->failures >= r->threshold) {
        b->open_until = now_ms() + (double)r->cooldown_ms;
    }
}

static void sse_event(req_t *r, char *block);

static void on_response(void *ud, const af_http_response_t *res) {
    req_t *r = ud;
    char msg[512];
    if (res->status == 0) {
        breaker_result(r, 1);
        const char *e = res->error ? res->error : "transfer failed";
        const char *code = strstr(e, "timeout")                                 ? "HTTP_TIMEOUT"
                           : strstr(e, "larger than") || strstr(e, "redirects") ? "HTTP_LIMIT"
                                                                                : "HTTP_CONNECT";
        snprintf(msg, sizeof msg, "%s: %s", r->url, e);
        host->call_fail(r->call, strcmp(code, "HTTP_LIMIT") ? AF_RETRYABLE : AF_FATAL, code, msg);
        req_free(r);
        return;
    }
    int transient = res->status == 429 || res->status >= 500;
    breaker_result(r, transient);
    if (r->fail_on_status && res->status >= 400) {
        char code[16];
        snprintf(code, sizeof code, "HTTP_%d", res->status);
        snprintf(msg, sizeof msg, "%s answered %d: %.200s", r->url, res->status,
                 res->body ? res->body : "");
        if (transient) {
            host->call_fail_after(r->call, code, msg, retry_after_ms(res));
        } else {
            host->call_fail(r->call, AF_FATAL, code, msg);
        }
        req_free(r);
        return;
    }
    if (r->sse && res->status >= 300 && json_array_size(r->events) == 0 && r->pending_len > 0) {
        /* an error answer to a streamed request: plain JSON, not events; keep it as the body */
        af_http_response_t copy = *res;
        copy.body = r->pending;
        copy.body_len = r->pending_len;
        r->sse = 0;
        on_response(ud, &copy);
        return;
    }
    if (r->sse && r->pending_len > 0) { /* a last event without its blank line */
        sse_event(r, r->pending);
        r->pending_len = 0;
    }
    json_t *out = response_json(r, res);
    if (out && r->sse) {
        json_object_set(out, "events", r->events);
        json_object_set_new(out, "first_event_ms", json_real(r->first_event_ms));
    }
    if (out == NULL) {
        snprintf(msg, sizeof msg, "%s: the response is not valid JSON", r->url);
        host->call_fail(r->call, AF_RETRYABLE, "HTTP_BAD_JSON", msg);
    } else {
        char *text = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
        host->call_succeed(r->call, text, NULL);
        free(text);
        json_decref(out);
    }
    req_free(r);
}

/* ---- server-sent events, parsed incrementally ---- */

/* One event block ("event: x\ndata: ...\n"): appended as {"event", "data"} (data parsed as JSON
 * when it is JSON). */
static void sse_event(req_t *r, char *block) {
    char *event = NULL;
    size_t cap = 256, len = 0;
    char *data = calloc(1, cap);
    int has_data = 0;
    for (char *line = strtok(block, "\n"); line; line = strtok(NULL, "\n")) {
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\r') {
            line[--n] = '\0';
        }
        if (strncmp(line, "event:", 6) == 0) {
            event = line + 6 + (line[6] == ' ');
        } else if (strncmp(line, "data:", 5) == 0) {
            const char *d = line + 5 + (line[5] == ' ');
            if (has_data) {
                append(&data, &len, &cap, "\n");
            }
            append(&data, &len, &cap, d);
            has_data = 1;
        }
    }
    if (has_data || event) {
        json_t *parsed = has_data ? json_loads(data, JSON_DECODE_ANY, NULL) : json_null();
        json_t *e = json_object();
        if (event) {
            json_object_set_new(e, "event", json_string(event));
        }
        json_object_set_new(e, "data", parsed ? parsed : json_string(data));
        json_array_append_new(r->events, e);
        if (r->first_event_ms == 0) {
            r->first_event_ms = now_ms() - r->started_ms;
        }
    }
    free(data);
}

static void sse_data(void *ud, const char *chunk, size_t n) {
    req_t *r = ud;
    r->pending = realloc(r->pending, r->pending_len + n + 1);
    for (size_t i = 0; i < n; i++) { /* CRLF and LF framing alike (the standard allows both) */
        if (chunk[i] != '\r') {
            r->pending[r->pending_len++] = chunk[i];
        }
    }
    r->pending[r->pending_len] = '\0';
    char *start = r->pending, *end;
    while ((end = strstr(start, "\n\n")) != NULL) {
        *end = '\0';
        sse_event(r, start);
        start = end + 2;
    }
    r->pending_len = strlen(start);
    memmove(r->pending, start, r->pending_len + 1);
}

/* ---- the node ---- */

static int refuse(af_call_t *call, const char *msg) {
    host->call_fail(call, AF_FATAL, "HTTP_CONFIG", msg);
    return AF_DONE;
}

static int set_body(req_t *r, json_t *c) {
    json_t *j = json_object_get(c, "json"), *form = json_object_get(c, "form");
    const char *raw = json_string_value(json_object_get(c, "body"));
    if ((j != NULL) + (form != NULL) + (raw != NULL) > 1) {
        return -1;
    }
    if (j) {
        r->body = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!has_header(r, "Content-Type")) {
            add_header(r, "Content-Type", "application/json");
        }
    } else if (form) {
        size_t cap = 64, len = 0;
        r->body = calloc(1, cap);
        encode_pairs(&r->body, &len, &cap, form, 1);
        if (!has_header(r, "Content-Type")) {
            add_header(r, "Content-Type", "application/x-www-form-urlencoded");
        }
    } else if (raw) {
        r->body = strdup(raw);
    }
    return 0;
}

static void set_auth(req_t *r, json_t *auth) {
    const char *bearer = json_string_value(json_object_get(auth, "bearer"));
    json_t *basic = json_object_get(auth, "basic"), *header = json_object_get(auth, "header");
    if (bearer) {
        char v[4096];
        snprintf(v, sizeof v, "Bearer %s", bearer);
        add_header(r, "Authorization", v);
    }
    if (basic) {
        char pair[2048], v[4096];
        snprintf(pair, sizeof pair, "%s:%s",
                 json_string_value(json_object_get(basic, "user")) ?: "",
                 json_string_value(json_object_get(basic, "password")) ?: "");
        char *enc = base64(pair);
        snprintf(v, sizeof v, "Basic %s", enc);
        free(enc);
        add_header(r, "Authorization", v);
    }
    if (header) {
        const char *name = json_string_value(json_object_get(header, "name"));
        const char *value = json_string_value(json_object_get(header, "value"));
        if (name && value) {
            add_header(r, name, value);
        }
    }
}

static int execute(void *instance, af_call_t *call, const char *config_json) {
    (void)instance;
    json_t *c = json_loads(config_json, 0, NULL);
    const char *url = json_string_value(json_object_get(c, "url"));
    if (url == NULL || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) {
        json_decref(c);
        return refuse(call, "'url' must be an http:// or https:// URL");
    }
    req_t *r = calloc(1, sizeof *r);
    r->call = call;
    r->url = build_url(url, json_object_get(c, "query"));
    r->breaker = breaker_for(url);
    json_t *br = json_object_get(c, "breaker");
    r->threshold = json_is_integer(json_object_get(br, "threshold"))
                       ? (int)json_integer_value(json_object_get(br, "threshold"))
                       : 5;
    r->cooldown_ms = duration_ms(json_object_get(br, "cooldown"), 30000);
    r->fail_on_status = !json_is_false(json_object_get(c, "fail_on_status"));
    const char *resp = json_string_value(json_object_get(c, "response"));
    snprintf(r->response, sizeof r->response, "%s", resp ? resp : "auto");
    const char *k;
    json_t *v;
    int header_ok = 1;
    json_object_foreach(json_object_get(c, "headers"), k, v) {
        char *text = scalar_text(v);
        header_ok = header_ok && !bad_header(k, text ? text : "");
        add_header(r, k, text ? text : "");
        free(text);
    }
    if (!header_ok) {
        json_decref(c);
        req_free(r);
        return refuse(call,
                      "invalid config: a header name or value holds CR, LF or (in a name) ':'");
    }
    set_auth(r, json_object_get(c, "auth"));
    int64_t timeout = duration_ms(json_object_get(c, "timeout"), 30000);
    if (set_body(r, c) != 0 || timeout < 0 || r->cooldown_ms < 0) {
        json_decref(c);
        req_free(r);
        return refuse(call, "invalid config: give at most one of 'json', 'form' and 'body'; "
                            "durations like \"500ms\", \"10s\", \"2m\", \"1h\"");
    }
    breaker_t *b = r->breaker;
    double now = now_ms();
    if (b->open_until > 0 && (now < b->open_until || b->probing)) {
        char msg[400];
        snprintf(msg, sizeof msg, "circuit open for %s after %d failures", b->key, b->failures);
        uint64_t wait = now < b->open_until ? (uint64_t)(b->open_until - now) : 1000;
        host->call_fail_after(call, "CIRCUIT_OPEN", msg, wait);
        json_decref(c);
        req_free(r);
        return AF_DONE;
    }
    if (b->open_until > 0) {
        b->probing = 1; /* half-open: this call is the probe */
    }
    const char *method = json_string_value(json_object_get(c, "method"));
    const char *stream = json_string_value(json_object_get(c, "stream"));
    r->sse = stream && strcmp(stream, "sse") == 0;
    r->events = json_array();
    r->started_ms = now_ms();
    af_http_request_t req = {
        .size = sizeof req,
        .method = method ? method : (r->body ? "POST" : "GET"),
        .url = r->url,
        .headers = (const char *const *)r->headers,
        .body = r->body,
        .body_len = r->body ? strlen(r->body) : 0,
        .timeout_ms = (uint64_t)timeout,
        .max_redirects = json_is_integer(json_object_get(c, "max_redirects"))
                             ? (uint32_t)json_integer_value(json_object_get(c, "max_redirects"))
                             : 5,
        .max_response_bytes = (size_t)json_integer_value(json_object_get(c, "max_response_bytes")),
        .flags = json_is_true(json_object_get(c, "insecure")) ? AF_HTTP_INSECURE : 0,
        .on_data = r->sse ? sse_data : NULL,
    };
    int rc = host->http_request(&req, on_response, r, &r->handle); /* copies what it needs */
    json_decref(c);
    if (rc != 0) {
        b->probing = 0;
        char why[96];
        snprintf(why, sizeof why, "could not start the request (code %d)", rc);
        host->call_fail(call, AF_RETRYABLE, "HTTP_CONNECT", why);
        req_free(r);
        return AF_DONE;
    }
    host->call_set_data(call, r);
    return AF_PENDING;
}

static void cancel(void *instance, af_call_t *call) {
    (void)instance;
    req_t *r = host->call_get_data(call);
    if (r) {
        host->http_cancel(r->handle);
        r->breaker->probing = 0;
        host->call_fail(call, AF_RETRYABLE, "CANCELLED", "request cancelled");
        req_free(r);
    }
}

static const af_node_type_t request = {
    .size = sizeof(af_node_type_t),
    .name = "http.request",
    .description = "An HTTP request; JSON responses are parsed",
    .config_schema =
        "{\"type\":\"object\",\"required\":[\"url\"],\"additionalProperties\":false,"
        "\"properties\":{"
        "\"method\":{\"type\":\"string\"},\"url\":{\"type\":\"string\"},"
        "\"headers\":{\"type\":\"object\"},\"query\":{\"type\":\"object\"},\"json\":{},"
        "\"form\":{\"type\":\"object\"},\"body\":{\"type\":\"string\"},"
        "\"auth\":{\"type\":\"object\",\"properties\":{\"bearer\":{\"type\":\"string\"},"
        "\"basic\":{\"type\":\"object\"},\"header\":{\"type\":\"object\"}}},"
        "\"timeout\":{\"type\":[\"string\",\"integer\"]},"
        "\"max_redirects\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":50},"
        "\"max_response_bytes\":{\"type\":\"integer\",\"minimum\":0},"
        "\"insecure\":{\"type\":\"boolean\"},\"fail_on_status\":{\"type\":\"boolean\"},"
        "\"response\":{\"enum\":[\"auto\",\"json\",\"text\"]},"
        "\"stream\":{\"enum\":[\"sse\"]},"
        "\"breaker\":{\"type\":\"object\",\"properties\":{\"threshold\":{\"type\":\"integer\","
        "\"minimum\":1},\"cooldown\":{\"type\":[\"string\",\"integer\"]}}}}}",
    .execute = execute,
    .cancel = cancel,
};

static int init(const af_host_t *h, af_registrar_t *reg) {
    host = h;
    if (!AF_HOST_HAS(h, call_fail_after)) {
        return AF_ERR; /* needs ABI 1.1 */
    }
    return h->register_node(reg, &request);
}

static const af_plugin_t plugin = {
    .size = sizeof(af_plugin_t),
    .abi_major = AF_ABI_MAJOR,
    .abi_minor = 1,
    .name = "http",
    .version = "0.1.0",
    .description = "HTTP requests as a step kind and from Lua (af.http)",
    .init = init,
};

AF_PLUGIN_DECLARE(plugin)
