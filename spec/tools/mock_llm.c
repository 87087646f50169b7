/* mock_llm.c -- af-mockserver routes for a mock LLM that speaks the real wire formats of the
 * OpenAI Chat Completions API (POST /v1/chat/completions) and the Anthropic Messages API
 * (POST /v1/messages), streamed (SSE) or not, scripted by directives in the last user message:
 *
 *   (none)                 answer "echo: " + the user text
 *   #answer TEXT           answer TEXT (several lines: joined with '\n')
 *   #tool NAME {json}      call NAME with those arguments (several lines: parallel calls); once
 *                          the results came back, answer "done: " + the results joined " | "
 *   #rounds N              with #tool: call the tools in N successive turns, then answer
 *   #say TEXT              with #tool: text sent along with the tool calls
 *   #json {json}           answer exactly that text
 *   #badjson-then {json}   answer '{"not valid' while the conversation has no assistant message,
 *                          then the JSON (a repair turn: a last user message without directives
 *                          after the one with #badjson-then keeps it in force)
 *   #status CODE [retry-after S] [times N] [key K]
 *                          that HTTP status with the provider's error JSON (and Retry-After);
 *                          with times: only the first N requests with key K (default: the line)
 *                          fail, the later ones answer as usual ("recovered" when nothing else)
 *   #malformed             200 with a truncated JSON body (streaming: the second event's data)
 *   #delay MS              answer after MS (a timer)
 *   #cut-stream            streaming: close the connection after the second event
 *
 * Tokens are whitespace-separated words. GET /llm/requests: the last 100 requests to these routes;
 * POST /llm/reset clears them and the #status counters. */
#include "mock_server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LLM_LOG_MAX     100
#define LLM_MAX_DELAY   3600000L
#define LLM_MAX_ROUNDS  1000L
#define LLM_EVENT_GAP   2 /* ms between streamed events */
#define LLM_TEXT_PIECES 3

enum { P_OPENAI, P_ANTHROPIC };

static json_t *g_log;   /* [{path, headers, body}], oldest first */
static json_t *g_times; /* #status key -> requests that got the error */
static unsigned long g_seq;

/* ---- small helpers --------------------------------------------------------------------------- */

typedef mock_buf_t buf_t;

static void *xmalloc(size_t n) {
    return mock_xrealloc(NULL, n != 0 ? n : 1);
}

static void buf_str(buf_t *b, const char *s) {
    mock_buf_add(b, s, strlen(s));
}

/* The text so far ("" when nothing was added); stays owned by b. */
static const char *buf_cstr(buf_t *b) {
    if (b->p == NULL) {
        mock_buf_add(b, "", 0);
    }
    return b->p;
}

static char *xstrndup(const char *s, size_t n) {
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Cuts s at its first byte that does not start a whole UTF-8 character (after a truncation). */
static void utf8_cut(char *s) {
    unsigned char *p = (unsigned char *)s;
    while (*p != '\0') {
        int n = *p < 0x80             ? 1
                : (*p & 0xE0) == 0xC0 ? 2
                : (*p & 0xF0) == 0xE0 ? 3
                : (*p & 0xF8) == 0xF0 ? 4
                                      : 0;
        int k = 1;
        while (k < n && (p[k] & 0xC0) == 0x80) {
            k++;
        }
        if (n == 0 || k < n) {
            *p = '\0';
            return;
        }
        p += n;
    }
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static long count_words(const char *s) {
    long n = 0;
    for (int in = 0; s != NULL && *s != '\0'; s++) {
        if (is_space(*s)) {
            in = 0;
        } else if (!in) {
            in = 1;
            n++;
        }
    }
    return n;
}

/* Cuts s after its limit-th word; returns 1 when something was cut. */
static int truncate_words(char *s, long limit) {
    long n = 0;
    for (char *p = s; *p != '\0'; p++) {
        if (!is_space(*p) && (p == s || is_space(p[-1]))) {
            if (n == limit) {
                while (p > s && is_space(p[-1])) {
                    p--;
                }
                *p = '\0';
                return 1;
            }
            n++;
        }
    }
    return 0;
}

/* A whole decimal number in [min, max], else -1. */
static long parse_long(const char *s, long min, long max) {
    long v = 0;
    if (s == NULL || *s == '\0') {
        return -1;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return -1;
        }
        v = v * 10 + (*s - '0');
        if (v > max) {
            return -1;
        }
    }
    return v < min ? -1 : v;
}

static const char *str_of(json_t *obj, const char *key) {
    return json_string_value(json_object_get(obj, key));
}

static int str_is(json_t *obj, const char *key, const char *want) {
    const char *s = str_of(obj, key);
    return s != NULL && strcmp(s, want) == 0;
}

static char *dump(json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s == NULL) {
        fprintf(stderr, "af-mockserver: out of memory\n");
        abort();
    }
    return s;
}

/* Appends the text of a content: a string, or an array of parts/blocks whose text ones
 * ({"type":"text","text":...}) count, separated by '\n'. Returns how many texts were added. */
static int content_text(json_t *content, buf_t *b) {
    if (json_is_string(content)) {
        mock_buf_add(b, json_string_value(content), json_string_length(content));
        return 1;
    }
    int n = 0;
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part) {
        json_t *text = json_object_get(part, "text");
        if (str_is(part, "type", "text") && json_is_string(text)) {
            if (n++ > 0) {
                mock_buf_add(b, "\n", 1);
            }
            mock_buf_add(b, json_string_value(text), json_string_length(text));
        }
    }
    return n;
}

/* ---- errors ---------------------------------------------------------------------------------- */

/* The provider's error body for a status (message copied). */
static json_t *error_json(int provider, int status, const char *message) {
    if (provider == P_ANTHROPIC) {
        const char *type = status == 401   ? "authentication_error"
                           : status == 403 ? "permission_error"
                           : status == 404 ? "not_found_error"
                           : status == 413 ? "request_too_large"
                           : status == 429 ? "rate_limit_error"
                           : status == 529 ? "overloaded_error"
                           : status >= 500 ? "api_error"
                                           : "invalid_request_error";
        char rid[48];
        snprintf(rid, sizeof rid, "req_mock%lu", ++g_seq);
        return json_pack("{ss s{ss ss} ss}", "type", "error", "error", "type", type, "message",
                         message, "request_id", rid);
    }
    const char *type = status == 429   ? "requests"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    const char *code = status == 401   ? "invalid_api_key"
                       : status == 404 ? "model_not_found"
                       : status == 429 ? "rate_limit_exceeded"
                                       : NULL;
    return json_pack("{s{ss ss sn ss?}}", "error", "message", message, "type", type, "param",
                     "code", code);
}

static void reply_error(mock_req_t *req, int provider, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply_error(mock_req_t *req, int provider, int status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    utf8_cut(msg); /* JSON strings must be UTF-8 */
    mock_reply_json(req, status, error_json(provider, status, msg));
}

/* ---- the request log ------------------------------------------------------------------------- */

static void log_request(mock_req_t *req, json_t *body) {
    json_t *headers = json_object();
    size_t n = mock_req_header_count(req);
    for (size_t i = 0; i < n; i++) {
        const char *name, *value;
        mock_req_header_at(req, i, &name, &value);
        char lower[256];
        size_t k = 0;
        for (; name[k] != '\0' && k < sizeof lower - 1; k++) {
            char c = name[k];
            lower[k] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        lower[k] = '\0';
        const char *prev = str_of(headers, lower);
        if (prev != NULL) { /* repeated: one value, comma-separated */
            buf_t b = {0};
            buf_str(&b, prev);
            buf_str(&b, ", ");
            buf_str(&b, value);
            json_object_set_new(headers, lower, json_string(b.p));
            free(b.p);
        } else {
            json_object_set_new(headers, lower, json_string(value));
        }
    }
    json_t *entry = json_pack("{ss so sO*}", "path", mock_req_path(req), "headers", headers, "body",
                              body != NULL ? body : json_null());
    if (body == NULL) {
        size_t len;
        const char *raw = mock_req_body(req, &len);
        json_object_set_new(entry, "raw", json_stringn(raw, len)); /* NULL (skipped): not UTF-8 */
    }
    if (json_array_size(g_log) >= LLM_LOG_MAX) {
        json_array_remove(g_log, 0);
    }
    json_array_append_new(g_log, entry);
}

static void route_requests(mock_req_t *req, const char *rest) {
    (void)rest;
    mock_reply_json(req, 200, json_incref(g_log));
}

static void route_reset(mock_req_t *req, const char *rest) {
    (void)rest;
    json_array_clear(g_log);
    json_object_clear(g_times);
    mock_reply_pack(req, 200, "{sb}", "reset", 1);
}

/* ---- validating requests --------------------------------------------------------------------- */

/* Checks an OpenAI request the way the API does (the parts that matter to a client); returns
 * NULL or a message in msg. */
static const char *check_openai(json_t *body, char *msg, size_t size) {
    json_t *msgs = json_object_get(body, "messages");
    const char *model = str_of(body, "model");
    if (model == NULL || *model == '\0') {
        return "you must provide a model parameter";
    }
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        return "'messages' must be a non-empty array";
    }
    json_t *stream = json_object_get(body, "stream");
    if (stream != NULL && !json_is_boolean(stream) && !json_is_null(stream)) {
        return "'stream' must be a boolean";
    }
    if (json_object_get(body, "stream_options") != NULL &&
        !json_is_null(json_object_get(body, "stream_options")) && !json_is_true(stream)) {
        return "The 'stream_options' parameter is only allowed when 'stream' is enabled.";
    }
    json_t *rf = json_object_get(body, "response_format");
    if (rf != NULL && !json_is_null(rf) && !str_is(rf, "type", "text") &&
        !str_is(rf, "type", "json_object") && !str_is(rf, "type", "json_schema")) {
        return "Invalid value for 'response_format.type': expected one of 'text', "
               "'json_object', 'json_schema'";
    }
    if (str_is(rf, "type", "json_schema") &&
        !json_is_string(json_object_get(json_object_get(rf, "json_schema"), "name"))) {
        return "Missing required parameter: 'response_format.json_schema.name'.";
    }
    json_t *tools = json_object_get(body, "tools");
    if (tools != NULL && !json_is_array(tools)) {
        return "'tools' must be an array";
    }
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        if (!str_is(t, "type", "function") ||
            !json_is_string(json_object_get(json_object_get(t, "function"), "name"))) {
            snprintf(msg, size,
                     "Missing required parameter: 'tools[%zu].function.name' (and "
                     "type must be 'function').",
                     i);
            return msg;
        }
    }
    json_t *pending = json_array(); /* tool_call ids still to be answered */
    json_t *m;
    const char *err = NULL;
    json_array_foreach(msgs, i, m) {
        const char *role = str_of(m, "role");
        json_t *content = json_object_get(m, "content");
        int content_ok = json_is_string(content) || json_is_array(content);
        if (role == NULL || (strcmp(role, "system") != 0 && strcmp(role, "developer") != 0 &&
                             strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0 &&
                             strcmp(role, "tool") != 0)) {
            snprintf(msg, size,
                     "Invalid value for 'messages[%zu].role': expected one of "
                     "'system', 'developer', 'user', 'assistant', 'tool'.",
                     i);
            err = msg;
            break;
        }
        if (strcmp(role, "tool") == 0) {
            const char *id = str_of(m, "tool_call_id");
            size_t k;
            json_t *p;
            int found = 0;
            json_array_foreach(pending, k, p) {
                if (id != NULL && strcmp(json_string_value(p), id) == 0) {
                    json_array_remove(pending, k);
                    found = 1;
                    break;
                }
            }
            if (!found || !content_ok) {
                snprintf(msg, size,
                         "Invalid parameter: messages with role 'tool' must be a "
                         "response to a preceeding message with 'tool_calls' (messages[%zu]).",
                         i);
                err = msg;
                break;
            }
            continue;
        }
        if (json_array_size(pending) > 0) {
            buf_t ids = {0};
            size_t k;
            json_t *p;
            json_array_foreach(pending, k, p) {
                buf_str(&ids, k > 0 ? ", " : "");
                buf_str(&ids, json_string_value(p));
            }
            snprintf(msg, size,
                     "An assistant message with 'tool_calls' must be followed by tool "
                     "messages responding to each 'tool_call_id'. The following tool_call_ids did "
                     "not have response messages: %s",
                     ids.p);
            free(ids.p);
            err = msg;
            break;
        }
        json_t *calls = json_object_get(m, "tool_calls");
        if (strcmp(role, "assistant") == 0) {
            if (calls != NULL && !json_is_array(calls) && !json_is_null(calls)) {
                snprintf(msg, size, "'messages[%zu].tool_calls' must be an array", i);
                err = msg;
                break;
            }
            if (!content_ok && !json_is_null(content) && content != NULL) {
                snprintf(msg, size, "Invalid type for 'messages[%zu].content'.", i);
                err = msg;
                break;
            }
            if (!content_ok && json_array_size(calls) == 0) {
                snprintf(msg, size, "Missing required parameter: 'messages[%zu].content'.", i);
                err = msg;
                break;
            }
            size_t k;
            json_t *c;
            json_array_foreach(calls, k, c) {
                json_t *fn = json_object_get(c, "function");
                if (!json_is_string(json_object_get(c, "id")) || !str_is(c, "type", "function") ||
                    !json_is_string(json_object_get(fn, "name")) ||
                    !json_is_string(json_object_get(fn, "arguments"))) {
                    snprintf(msg, size,
                             "Invalid 'messages[%zu].tool_calls[%zu]': needs id, "
                             "type 'function', function.name and function.arguments (a string).",
                             i, k);
                    err = msg;
                    break;
                }
                json_array_append(pending, json_object_get(c, "id"));
            }
            if (err != NULL) {
                break;
            }
        } else if (!content_ok) {
            snprintf(msg, size, "Missing required parameter: 'messages[%zu].content'.", i);
            err = msg;
            break;
        }
    }
    if (err == NULL && json_array_size(pending) > 0) {
        snprintf(msg, size,
                 "An assistant message with 'tool_calls' must be followed by tool "
                 "messages responding to each 'tool_call_id'. The following tool_call_ids did "
                 "not have response messages: %s",
                 json_string_value(json_array_get(pending, 0)));
        err = msg;
    }
    json_decref(pending);
    return err;
}

/* Same for an Anthropic request. */
static const char *check_anthropic(json_t *body, char *msg, size_t size) {
    json_t *msgs = json_object_get(body, "messages");
    const char *model = str_of(body, "model");
    if (model == NULL || *model == '\0') {
        return "model: Field required";
    }
    json_t *max = json_object_get(body, "max_tokens");
    if (!json_is_integer(max) || json_integer_value(max) < 1) {
        return "max_tokens: Field required (an integer >= 1)";
    }
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        return "messages: Field required (a non-empty array)";
    }
    json_t *stream = json_object_get(body, "stream");
    if (stream != NULL && !json_is_boolean(stream)) {
        return "stream: Input should be a valid boolean";
    }
    json_t *system = json_object_get(body, "system");
    if (system != NULL && !json_is_string(system) && !json_is_array(system)) {
        return "system: Input should be a valid string or a list of text blocks";
    }
    json_t *tools = json_object_get(body, "tools");
    if (tools != NULL && !json_is_array(tools)) {
        return "tools: Input should be a valid list";
    }
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        if (!json_is_string(json_object_get(t, "name")) ||
            (json_object_get(t, "type") == NULL &&
             !json_is_object(json_object_get(t, "input_schema")))) {
            snprintf(msg, size, "tools.%zu: name and input_schema: Field required", i);
            return msg;
        }
    }
    json_t *pending = json_array(); /* tool_use ids of the previous assistant message */
    json_t *m;
    const char *err = NULL;
    json_array_foreach(msgs, i, m) {
        const char *role = str_of(m, "role");
        json_t *content = json_object_get(m, "content");
        if (role == NULL || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0)) {
            snprintf(msg, size, "messages.%zu.role: Input should be 'user' or 'assistant'", i);
            err = msg;
            break;
        }
        if (!json_is_string(content) && !json_is_array(content)) {
            snprintf(msg, size, "messages.%zu.content: Input should be a valid string or list", i);
            err = msg;
            break;
        }
        int user = strcmp(role, "user") == 0;
        json_t *answered = json_array();
        json_t *uses = json_array();
        size_t k;
        json_t *b;
        json_array_foreach(content, k, b) {
            const char *type = str_of(b, "type");
            if (type == NULL) {
                snprintf(msg, size, "messages.%zu.content.%zu.type: Field required", i, k);
                err = msg;
            } else if (strcmp(type, "text") == 0 && !json_is_string(json_object_get(b, "text"))) {
                snprintf(msg, size, "messages.%zu.content.%zu.text: Field required", i, k);
                err = msg;
            } else if (strcmp(type, "tool_use") == 0) {
                if (user || !json_is_string(json_object_get(b, "id")) ||
                    !json_is_string(json_object_get(b, "name")) ||
                    !json_is_object(json_object_get(b, "input"))) {
                    snprintf(msg, size,
                             "messages.%zu.content.%zu: tool_use blocks need id, name "
                             "and input (an object), in assistant messages",
                             i, k);
                    err = msg;
                } else {
                    json_array_append(uses, json_object_get(b, "id"));
                }
            } else if (strcmp(type, "tool_result") == 0) {
                const char *id = str_of(b, "tool_use_id");
                json_t *rc = json_object_get(b, "content");
                size_t j;
                json_t *p;
                int found = 0;
                json_array_foreach(pending, j, p) {
                    if (id != NULL && strcmp(json_string_value(p), id) == 0) {
                        found = 1;
                    }
                }
                if (!user || !found || (rc != NULL && !json_is_string(rc) && !json_is_array(rc))) {
                    snprintf(msg, size,
                             "messages.%zu.content.%zu: unexpected `tool_use_id` found "
                             "in `tool_result` blocks: %s. Each `tool_result` block must have a "
                             "corresponding `tool_use` block in the previous message.",
                             i, k, id != NULL ? id : "(none)");
                    err = msg;
                } else {
                    json_array_append_new(answered, json_string(id));
                }
            }
            if (err != NULL) {
                break;
            }
        }
        if (err == NULL && json_array_size(pending) > 0) {
            size_t j;
            json_t *p;
            json_array_foreach(pending, j, p) {
                size_t a;
                json_t *q;
                int found = 0;
                json_array_foreach(answered, a, q) {
                    found |= json_equal(p, q);
                }
                if (!found) {
                    snprintf(msg, size,
                             "messages.%zu: `tool_use` ids were found without "
                             "`tool_result` blocks immediately after: %s. Each `tool_use` block "
                             "must have a corresponding `tool_result` block in the next message.",
                             i - 1, json_string_value(p));
                    err = msg;
                    break;
                }
            }
        }
        json_decref(answered);
        json_decref(pending);
        pending = uses;
        if (err != NULL) {
            break;
        }
    }
    if (err == NULL && json_array_size(pending) > 0) {
        snprintf(msg, size,
                 "messages.%zu: `tool_use` ids were found without `tool_result` "
                 "blocks immediately after: %s. Each `tool_use` block must have a corresponding "
                 "`tool_result` block in the next message.",
                 json_array_size(msgs) - 1, json_string_value(json_array_get(pending, 0)));
        err = msg;
    }
    json_decref(pending);
    return err;
}

/* ---- the conversation ------------------------------------------------------------------------ */

/* A user message that can carry directives: OpenAI, any user message; Anthropic, a user message
 * with text and no tool_result blocks. */
static int is_directive_msg(int provider, json_t *m) {
    if (!str_is(m, "role", "user")) {
        return 0;
    }
    json_t *content = json_object_get(m, "content");
    if (provider == P_OPENAI || json_is_string(content)) {
        return 1;
    }
    int text = 0;
    size_t i;
    json_t *b;
    json_array_foreach(content, i, b) {
        if (str_is(b, "type", "tool_result")) {
            return 0;
        }
        text |= str_is(b, "type", "text");
    }
    return text;
}

/* Tool calls the message makes. */
static size_t msg_calls(int provider, json_t *m) {
    if (!str_is(m, "role", "assistant")) {
        return 0;
    }
    if (provider == P_OPENAI) {
        return json_array_size(json_object_get(m, "tool_calls"));
    }
    size_t n = 0, i;
    json_t *b;
    json_array_foreach(json_object_get(m, "content"), i, b) {
        n += str_is(b, "type", "tool_use");
    }
    return n;
}

/* Appends the tool results the message carries (strings) to out. */
static void msg_results(int provider, json_t *m, json_t *out) {
    if (provider == P_OPENAI) {
        if (str_is(m, "role", "tool")) {
            buf_t b = {0};
            content_text(json_object_get(m, "content"), &b);
            json_array_append_new(out, json_string(buf_cstr(&b)));
            free(b.p);
        }
        return;
    }
    if (!str_is(m, "role", "user")) {
        return;
    }
    size_t i;
    json_t *blk;
    json_array_foreach(json_object_get(m, "content"), i, blk) {
        if (str_is(blk, "type", "tool_result")) {
            buf_t b = {0};
            content_text(json_object_get(blk, "content"), &b);
            json_array_append_new(out, json_string(buf_cstr(&b)));
            free(b.p);
        }
    }
}

/* The message's own text (not tool results). */
static void msg_text(int provider, json_t *m, buf_t *b) {
    if (provider == P_OPENAI && str_is(m, "role", "tool")) {
        return;
    }
    content_text(json_object_get(m, "content"), b);
}

/* ---- directives ------------------------------------------------------------------------------ */

typedef struct dirs_s {
    int any;      /* some directive line */
    buf_t plain;  /* the other lines, joined with '\n' */
    buf_t answer; /* #answer lines */
    int has_answer;
    buf_t say;
    int has_say;
    json_t *tools; /* [{name, args}] */
    long rounds;
    char *json, *badjson;
    int status;
    long retry_after, times;
    char *key;
    int malformed, cut;
    long delay;
    char error[512]; /* a bad directive */
} dirs_t;

static void dirs_free(dirs_t *d) {
    free(d->plain.p);
    free(d->answer.p);
    free(d->say.p);
    json_decref(d->tools);
    free(d->json);
    free(d->badjson);
    free(d->key);
}

/* Next whitespace-separated token of *s (moved past it) into tok; 0 when none. */
static int next_token(const char **s, char *tok, size_t size) {
    const char *p = *s;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    size_t n = 0;
    while (*p != '\0' && *p != ' ' && *p != '\t') {
        if (n + 1 < size) {
            tok[n++] = *p;
        }
        p++;
    }
    tok[n] = '\0';
    utf8_cut(tok);
    *s = p;
    return n > 0;
}

static void parse_status(dirs_t *d, const char *args, const char *line) {
    char tok[256];
    const char *p = args;
    long code = next_token(&p, tok, sizeof tok) ? parse_long(tok, 400, 599) : -1;
    if (code < 0) {
        snprintf(d->error, sizeof d->error, "#status needs a code 400-599: %s", line);
        return;
    }
    d->status = (int)code;
    while (next_token(&p, tok, sizeof tok)) {
        char val[256];
        int has = next_token(&p, val, sizeof val);
        if (strcmp(tok, "retry-after") == 0 && has) {
            d->retry_after = parse_long(val, 0, 86400);
        } else if (strcmp(tok, "times") == 0 && has) {
            d->times = parse_long(val, 0, 1000000000L);
        } else if (strcmp(tok, "key") == 0 && has) {
            free(d->key);
            d->key = xstrndup(val, strlen(val));
            continue;
        } else {
            snprintf(d->error, sizeof d->error, "bad #status option '%.64s': %.200s", tok, line);
            return;
        }
        if ((strcmp(tok, "retry-after") == 0 && d->retry_after < 0) ||
            (strcmp(tok, "times") == 0 && d->times < 0)) {
            snprintf(d->error, sizeof d->error, "bad #status %s value: %.200s", tok, line);
            return;
        }
    }
    if (d->key == NULL) {
        d->key = xstrndup(line, strlen(line));
    }
}

/* One directive line (without leading blanks, starting with '#'); 0 when it is not one. */
static int parse_directive(dirs_t *d, const char *line) {
    static const char *const names[] = {"answer",       "tool",   "rounds",    "json",
                                        "badjson-then", "status", "malformed", "delay",
                                        "cut-stream",   "say"};
    size_t n = strcspn(line + 1, " \t");
    const char *name = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i]) == n && strncmp(line + 1, names[i], n) == 0) {
            name = names[i];
        }
    }
    if (name == NULL) {
        return 0;
    }
    const char *args = line + 1 + n;
    while (*args == ' ' || *args == '\t') {
        args++;
    }
    size_t alen = strlen(args);
    while (alen > 0 && is_space(args[alen - 1])) {
        alen--;
    }
    char *arg = xstrndup(args, alen);
    d->any = 1;
    if (strcmp(name, "answer") == 0 || strcmp(name, "say") == 0) {
        buf_t *b = name[0] == 'a' ? &d->answer : &d->say;
        int *has = name[0] == 'a' ? &d->has_answer : &d->has_say;
        if (*has) {
            mock_buf_add(b, "\n", 1);
        }
        buf_str(b, arg);
        buf_cstr(b);
        *has = 1;
    } else if (strcmp(name, "tool") == 0) {
        const char *p = arg;
        char tname[256];
        json_t *targs = NULL;
        if (!next_token(&p, tname, sizeof tname)) {
            snprintf(d->error, sizeof d->error, "#tool needs a name: %s", line);
        } else {
            while (*p == ' ' || *p == '\t') {
                p++;
            }
            targs = *p == '\0' ? json_object() : json_loads(p, 0, NULL);
            if (!json_is_object(targs)) {
                snprintf(d->error, sizeof d->error, "#tool arguments must be a JSON object: %s",
                         line);
                json_decref(targs);
            } else {
                if (d->tools == NULL) {
                    d->tools = json_array();
                }
                json_array_append_new(d->tools, json_pack("{ss so}", "name", tname, "args", targs));
            }
        }
    } else if (strcmp(name, "rounds") == 0) {
        d->rounds = parse_long(arg, 1, LLM_MAX_ROUNDS);
        if (d->rounds < 0) {
            snprintf(d->error, sizeof d->error, "#rounds needs 1-%ld: %s", LLM_MAX_ROUNDS, line);
        }
    } else if (strcmp(name, "json") == 0) {
        free(d->json);
        d->json = arg;
        arg = NULL;
    } else if (strcmp(name, "badjson-then") == 0) {
        free(d->badjson);
        d->badjson = arg;
        arg = NULL;
    } else if (strcmp(name, "status") == 0) {
        parse_status(d, arg, line);
    } else if (strcmp(name, "malformed") == 0) {
        d->malformed = 1;
    } else if (strcmp(name, "cut-stream") == 0) {
        d->cut = 1;
    } else if (strcmp(name, "delay") == 0) {
        d->delay = parse_long(arg, 0, LLM_MAX_DELAY);
        if (d->delay < 0) {
            snprintf(d->error, sizeof d->error, "#delay needs 0-%ld ms: %s", LLM_MAX_DELAY, line);
        }
    }
    free(arg);
    return 1;
}

static void parse_directives(dirs_t *d, const char *text) {
    memset(d, 0, sizeof *d);
    d->rounds = 1;
    d->retry_after = -1;
    d->times = -1;
    int plain_lines = 0;
    for (const char *p = text; *p != '\0';) {
        size_t n = strcspn(p, "\n");
        char *line = xstrndup(p, n);
        if (n > 0 && line[n - 1] == '\r') {
            line[n - 1] = '\0';
        }
        const char *s = line;
        while (*s == ' ' || *s == '\t') {
            s++;
        }
        if (*s != '#' || !parse_directive(d, s)) {
            if (plain_lines++ > 0) {
                mock_buf_add(&d->plain, "\n", 1);
            }
            buf_str(&d->plain, line);
        }
        free(line);
        p += n;
        if (*p == '\n') {
            p++;
        }
    }
    buf_cstr(&d->plain);
}

/* ---- what to answer -------------------------------------------------------------------------- */

typedef struct answer_s {
    int provider;
    const char *model;
    char *text;    /* owned; NULL: none */
    json_t *calls; /* [{id, name, args, args_text}], or NULL */
    const char *finish;
    long prompt, completion;
    int stream, include_usage, malformed, cut;
} answer_t;

/* One request's response, kept while it is delayed or streamed. */
typedef struct plan_s {
    int provider;
    int status;
    long retry_after;
    char request_id[40];
    char *body; /* the whole body, or the events one after the other */
    size_t body_len;
    size_t *ends; /* streaming: where each event ends in body */
    size_t nevents, next;
    int stream, cut;
} plan_t;

static void plan_free(void *data) {
    plan_t *p = data;
    free(p->body);
    free(p->ends);
    free(p);
}

/* Splits s (valid UTF-8) into up to n (<= 8) pieces and appends them to out: with words and at
 * least n words, at word boundaries (a piece but the first starts with the blank before its word,
 * like a model's tokens); else by size, never inside a character. */
static void split_pieces(const char *s, size_t n, int words, json_t *out) {
    size_t len = strlen(s), cuts[8], ncuts = 0;
    long w = words ? count_words(s) : 0;
    n = n > 8 ? 8 : n;
    for (size_t k = 1; k < n; k++) {
        size_t pos = 0;
        if (words && w >= (long)n) {
            long want = w * (long)k / (long)n, seen = -1; /* the cut ends word want - 1 */
            for (size_t i = 0; i < len; i++) {
                if (!is_space(s[i]) && (i == 0 || is_space(s[i - 1])) && ++seen == want) {
                    pos = i;
                    break;
                }
            }
            while (pos > 0 && is_space(s[pos - 1])) {
                pos--;
            }
        } else {
            pos = len * k / n;
            while (pos < len && ((unsigned char)s[pos] & 0xC0) == 0x80) {
                pos++;
            }
        }
        if (pos > (ncuts > 0 ? cuts[ncuts - 1] : 0) && pos < len) {
            cuts[ncuts++] = pos;
        }
    }
    size_t prev = 0;
    for (size_t i = 0; i <= ncuts && len > 0; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        json_array_append_new(out, json_stringn(s + prev, end - prev));
        prev = end;
    }
}

static void add_event(plan_t *p, buf_t *b, const char *event, json_t *data, int truncate) {
    char *text = dump(data);
    json_decref(data);
    if (event != NULL) {
        buf_str(b, "event: ");
        buf_str(b, event);
        buf_str(b, "\n");
    }
    buf_str(b, "data: ");
    mock_buf_add(b, text, truncate ? strlen(text) / 2 : strlen(text));
    buf_str(b, "\n\n");
    free(text);
    p->ends = realloc(p->ends, (p->nevents + 1) * sizeof *p->ends);
    if (p->ends == NULL) {
        abort();
    }
    p->ends[p->nevents++] = b->len;
}

static json_t *usage_openai(const answer_t *a) {
    return json_pack("{sI sI sI}", "prompt_tokens", (json_int_t)a->prompt, "completion_tokens",
                     (json_int_t)a->completion, "total_tokens",
                     (json_int_t)(a->prompt + a->completion));
}

static json_t *openai_message(const answer_t *a) {
    json_t *msg = json_pack("{ss so sn}", "role", "assistant", "content",
                            a->text != NULL ? json_string(a->text) : json_null(), "refusal");
    if (a->calls != NULL) {
        json_t *calls = json_array();
        size_t i;
        json_t *c;
        json_array_foreach(a->calls, i, c) {
            json_array_append_new(calls, json_pack("{sO ss s{sO sO}}", "id",
                                                   json_object_get(c, "id"), "type", "function",
                                                   "function", "name", json_object_get(c, "name"),
                                                   "arguments", json_object_get(c, "args_text")));
        }
        json_object_set_new(msg, "tool_calls", calls);
    }
    return msg;
}

static json_t *openai_chunk(const answer_t *a, const char *id, long created, json_t *delta,
                            const char *finish) {
    json_t *chunk =
        json_pack("{ss ss sI ss ss s[{sI so sn so}]}", "id", id, "object", "chat.completion.chunk",
                  "created", (json_int_t)created, "model", a->model, "system_fingerprint",
                  "fp_mock", "choices", "index", (json_int_t)0, "delta", delta, "logprobs",
                  "finish_reason", finish != NULL ? json_string(finish) : json_null());
    if (a->include_usage) {
        json_object_set_new(chunk, "usage", json_null());
    }
    return chunk;
}

static void build_openai(plan_t *p, const answer_t *a) {
    char id[48];
    long created = (long)time(NULL);
    snprintf(id, sizeof id, "chatcmpl-mock%lu", ++g_seq);
    if (!a->stream) {
        json_t *res =
            json_pack("{ss ss sI ss ss s[{sI so sn ss}] so}", "id", id, "object", "chat.completion",
                      "created", (json_int_t)created, "model", a->model, "system_fingerprint",
                      "fp_mock", "choices", "index", (json_int_t)0, "message", openai_message(a),
                      "logprobs", "finish_reason", a->finish, "usage", usage_openai(a));
        p->body = dump(res);
        json_decref(res);
        p->body_len = strlen(p->body);
        return;
    }
    buf_t b = {0};
    int n = 0; /* events so far: #malformed truncates the second */
    json_t *pieces = json_array();
    if (a->text != NULL || a->calls == NULL) { /* with calls only, the first call has the role */
        add_event(p, &b, NULL,
                  openai_chunk(a, id, created,
                               json_pack("{ss ss}", "role", "assistant", "content", ""), NULL),
                  a->malformed && ++n == 2);
    }
    if (a->text != NULL) {
        split_pieces(a->text, LLM_TEXT_PIECES, 1, pieces);
        size_t i;
        json_t *piece;
        json_array_foreach(pieces, i, piece) {
            add_event(p, &b, NULL,
                      openai_chunk(a, id, created, json_pack("{sO}", "content", piece), NULL),
                      a->malformed && ++n == 2);
        }
    }
    size_t i;
    json_t *c;
    json_array_foreach(a->calls, i, c) {
        json_t *head = json_pack("{s[{sI sO ss s{sO ss}}]}", "tool_calls", "index", (json_int_t)i,
                                 "id", json_object_get(c, "id"), "type", "function", "function",
                                 "name", json_object_get(c, "name"), "arguments", "");
        if (i == 0 && a->text == NULL) { /* like the API: the first call comes with the role */
            json_object_set_new(head, "role", json_string("assistant"));
            json_object_set_new(head, "content", json_null());
        }
        add_event(p, &b, NULL, openai_chunk(a, id, created, head, NULL), a->malformed && ++n == 2);
        json_array_clear(pieces);
        split_pieces(json_string_value(json_object_get(c, "args_text")), LLM_TEXT_PIECES, 0,
                     pieces);
        size_t k;
        json_t *frag;
        json_array_foreach(pieces, k, frag) {
            add_event(p, &b, NULL,
                      openai_chunk(a, id, created,
                                   json_pack("{s[{sI s{sO}}]}", "tool_calls", "index",
                                             (json_int_t)i, "function", "arguments", frag),
                                   NULL),
                      a->malformed && ++n == 2);
        }
    }
    json_decref(pieces);
    add_event(p, &b, NULL, openai_chunk(a, id, created, json_object(), a->finish),
              a->malformed && ++n == 2);
    if (a->include_usage) {
        json_t *chunk =
            json_pack("{ss ss sI ss ss s[] so}", "id", id, "object", "chat.completion.chunk",
                      "created", (json_int_t)created, "model", a->model, "system_fingerprint",
                      "fp_mock", "choices", "usage", usage_openai(a));
        add_event(p, &b, NULL, chunk, 0);
    }
    buf_str(&b, "data: [DONE]\n\n");
    p->ends = realloc(p->ends, (p->nevents + 1) * sizeof *p->ends);
    if (p->ends == NULL) {
        abort();
    }
    p->ends[p->nevents++] = b.len;
    p->body = b.p;
    p->body_len = b.len;
}

static void build_anthropic(plan_t *p, const answer_t *a) {
    char id[48];
    snprintf(id, sizeof id, "msg_mock%lu", ++g_seq);
    json_t *content = json_array();
    if (a->text != NULL) {
        json_array_append_new(content, json_pack("{ss ss}", "type", "text", "text", a->text));
    }
    size_t i;
    json_t *c;
    json_array_foreach(a->calls, i, c) {
        json_array_append_new(content, json_pack("{ss sO sO sO}", "type", "tool_use", "id",
                                                 json_object_get(c, "id"), "name",
                                                 json_object_get(c, "name"), "input",
                                                 json_object_get(c, "args")));
    }
    if (!a->stream) {
        json_t *res = json_pack("{ss ss ss ss so ss sn s{sI sI}}", "id", id, "type", "message",
                                "role", "assistant", "model", a->model, "content", content,
                                "stop_reason", a->finish, "stop_sequence", "usage", "input_tokens",
                                (json_int_t)a->prompt, "output_tokens", (json_int_t)a->completion);
        p->body = dump(res);
        json_decref(res);
        p->body_len = strlen(p->body);
        return;
    }
    buf_t b = {0};
    int n = 0;
    add_event(p, &b, "message_start",
              json_pack("{ss s{ss ss ss ss s[] sn sn s{sI sI}}}", "type", "message_start",
                        "message", "id", id, "type", "message", "role", "assistant", "model",
                        a->model, "content", "stop_reason", "stop_sequence", "usage",
                        "input_tokens", (json_int_t)a->prompt, "output_tokens", (json_int_t)1),
              a->malformed && ++n == 2);
    json_t *pieces = json_array();
    json_t *blk;
    json_array_foreach(content, i, blk) {
        int text = str_is(blk, "type", "text");
        json_t *start =
            text ? json_pack("{ss ss}", "type", "text", "text", "")
                 : json_pack("{ss sO sO s{}}", "type", "tool_use", "id", json_object_get(blk, "id"),
                             "name", json_object_get(blk, "name"), "input");
        add_event(p, &b, "content_block_start",
                  json_pack("{ss sI so}", "type", "content_block_start", "index", (json_int_t)i,
                            "content_block", start),
                  a->malformed && ++n == 2);
        if (i == 0) {
            add_event(p, &b, "ping", json_pack("{ss}", "type", "ping"), 0);
        }
        json_array_clear(pieces);
        if (text) {
            split_pieces(a->text, LLM_TEXT_PIECES, 1, pieces);
        } else {
            json_array_append_new(pieces, json_string("")); /* the API starts with an empty one */
            char *args = dump(json_object_get(blk, "input"));
            split_pieces(args, LLM_TEXT_PIECES, 0, pieces);
            free(args);
        }
        size_t k;
        json_t *piece;
        json_array_foreach(pieces, k, piece) {
            json_t *delta =
                text ? json_pack("{ss sO}", "type", "text_delta", "text", piece)
                     : json_pack("{ss sO}", "type", "input_json_delta", "partial_json", piece);
            add_event(p, &b, "content_block_delta",
                      json_pack("{ss sI so}", "type", "content_block_delta", "index", (json_int_t)i,
                                "delta", delta),
                      a->malformed && ++n == 2);
        }
        add_event(p, &b, "content_block_stop",
                  json_pack("{ss sI}", "type", "content_block_stop", "index", (json_int_t)i), 0);
    }
    json_decref(pieces);
    json_decref(content);
    add_event(p, &b, "message_delta",
              json_pack("{ss s{ss sn} s{sI}}", "type", "message_delta", "delta", "stop_reason",
                        a->finish, "stop_sequence", "usage", "output_tokens",
                        (json_int_t)a->completion),
              0);
    add_event(p, &b, "message_stop", json_pack("{ss}", "type", "message_stop"), 0);
    p->body = b.p;
    p->body_len = b.len;
}

/* ---- sending --------------------------------------------------------------------------------- */

static void stream_tick(mock_req_t *req) {
    plan_t *p = mock_req_data(req);
    if (mock_req_gone(req) || p->next >= p->nevents) {
        mock_stream_end(req);
        return;
    }
    size_t from = p->next > 0 ? p->ends[p->next - 1] : 0;
    mock_stream_write(req, p->body + from, p->ends[p->next] - from);
    p->next++;
    if (p->cut && p->next == 2) {
        mock_stream_abort(req);
    } else if (p->next >= p->nevents) {
        mock_stream_end(req);
    } else {
        mock_req_after(req, LLM_EVENT_GAP, stream_tick);
    }
}

static void plan_send(mock_req_t *req) {
    plan_t *p = mock_req_data(req);
    mock_res_header(req, p->provider == P_OPENAI ? "x-request-id" : "request-id", "%s",
                    p->request_id);
    if (p->retry_after >= 0) {
        mock_res_header(req, "Retry-After", "%ld", p->retry_after);
    }
    if (!p->stream) {
        mock_reply(req, p->status, "application/json", p->body, p->body_len);
        return;
    }
    mock_res_header(req, "Cache-Control", "no-cache");
    mock_stream_begin(req, 200, "text/event-stream; charset=utf-8", -1);
    stream_tick(req);
}

/* ---- the routes ------------------------------------------------------------------------------ */

static void handle(mock_req_t *req, int provider) {
    json_t *body = mock_req_json(req);
    log_request(req, body);

    if (provider == P_OPENAI) {
        const char *auth = mock_req_header(req, "Authorization");
        const char *key = auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0 ? auth + 7 : "";
        while (*key == ' ') {
            key++;
        }
        if (*key == '\0') {
            json_decref(body);
            reply_error(req, provider, 401,
                        "You didn't provide an API key. You need to provide your API key in an "
                        "Authorization header using Bearer auth (i.e. Authorization: Bearer "
                        "YOUR_KEY).");
            return;
        }
    } else {
        const char *key = mock_req_header(req, "x-api-key");
        const char *version = mock_req_header(req, "anthropic-version");
        if (key == NULL || *key == '\0' || version == NULL || *version == '\0') {
            json_decref(body);
            reply_error(req, provider, 401, "%s",
                        key == NULL || *key == '\0' ? "x-api-key header is required"
                                                    : "anthropic-version: header is required");
            return;
        }
    }
    if (!json_is_object(body)) {
        json_decref(body);
        reply_error(req, provider, 400, "%s",
                    provider == P_OPENAI
                        ? "We could not parse the JSON body of your request. (HINT: This likely "
                          "means you aren't using your HTTP library correctly. The OpenAI API "
                          "expects a JSON payload, but what was sent was not valid JSON.)"
                        : "There was an error parsing the body of your request: not a JSON object");
        return;
    }
    char msg[512];
    const char *bad = provider == P_OPENAI ? check_openai(body, msg, sizeof msg)
                                           : check_anthropic(body, msg, sizeof msg);
    if (bad != NULL) {
        reply_error(req, provider, 400, "%s", bad);
        json_decref(body);
        return;
    }

    /* the conversation: which user message directs, what happened after it */
    json_t *msgs = json_object_get(body, "messages");
    size_t nmsgs = json_array_size(msgs);
    long last = -1, prev = -1, total_calls = 0, prompt = 0;
    int has_assistant = 0;
    json_t *all_results = json_array();
    if (provider == P_ANTHROPIC) {
        buf_t sys = {0};
        content_text(json_object_get(body, "system"), &sys);
        prompt += count_words(sys.p);
        free(sys.p);
    }
    for (size_t i = 0; i < nmsgs; i++) {
        json_t *m = json_array_get(msgs, i);
        buf_t t = {0};
        msg_text(provider, m, &t);
        prompt += count_words(t.p);
        free(t.p);
        json_array_clear(all_results);
        msg_results(provider, m, all_results);
        size_t k;
        json_t *r;
        json_array_foreach(all_results, k, r) {
            prompt += count_words(json_string_value(r));
        }
        total_calls += (long)msg_calls(provider, m);
        has_assistant |= str_is(m, "role", "assistant");
        if (is_directive_msg(provider, m)) {
            prev = last;
            last = (long)i;
        }
    }
    json_decref(all_results);

    dirs_t d;
    long dmsg = last;
    {
        buf_t t = {0};
        if (last >= 0) {
            msg_text(provider, json_array_get(msgs, (size_t)last), &t);
        }
        parse_directives(&d, buf_cstr(&t));
        free(t.p);
    }
    if (!d.any && prev >= 0) { /* a repair turn after #badjson-then keeps it in force */
        buf_t t = {0};
        msg_text(provider, json_array_get(msgs, (size_t)prev), &t);
        dirs_t pd;
        parse_directives(&pd, buf_cstr(&t));
        free(t.p);
        if (pd.badjson != NULL && pd.error[0] == '\0') {
            dirs_free(&d);
            d = pd;
            dmsg = prev;
        } else {
            dirs_free(&pd);
        }
    }
    if (d.error[0] != '\0') {
        reply_error(req, provider, 400, "af-mockserver: bad directive: %s", d.error);
        dirs_free(&d);
        json_decref(body);
        return;
    }
    long rounds_done = 0;
    json_t *results = json_array();
    for (size_t i = (size_t)(dmsg + 1); dmsg >= 0 && i < nmsgs; i++) {
        json_t *m = json_array_get(msgs, i);
        rounds_done += msg_calls(provider, m) > 0;
        msg_results(provider, m, results);
    }

    plan_t *p = xmalloc(sizeof *p);
    memset(p, 0, sizeof *p);
    p->provider = provider;
    p->status = 200;
    p->retry_after = -1;
    snprintf(p->request_id, sizeof p->request_id, "req_mock%lu", ++g_seq);
    mock_req_set_data(req, p, plan_free);

    int failing = 0;
    if (d.status != 0) {
        json_t *count = json_object_get(g_times, d.key);
        json_int_t done = count != NULL ? json_integer_value(count) : 0;
        failing = d.times < 0 || done < d.times;
        if (failing && d.times >= 0) {
            json_object_set_new(g_times, d.key, json_integer(done + 1));
        }
    }
    if (failing) {
        char text[128];
        snprintf(text, sizeof text, "af-mockserver: scripted error %d", d.status);
        p->status = d.status;
        p->retry_after = d.retry_after;
        json_t *err = error_json(provider, d.status, text);
        p->body = dump(err);
        p->body_len = strlen(p->body);
        json_decref(err);
    } else {
        answer_t a = {0};
        a.provider = provider;
        a.model = str_of(body, "model");
        a.stream = json_is_true(json_object_get(body, "stream"));
        a.include_usage =
            provider == P_OPENAI &&
            json_is_true(json_object_get(json_object_get(body, "stream_options"), "include_usage"));
        a.malformed = d.malformed;
        a.prompt = prompt;
        int calling = d.tools != NULL && rounds_done < d.rounds;
        if (calling) {
            a.calls = json_array();
            size_t i;
            json_t *t;
            json_array_foreach(d.tools, i, t) {
                char cid[48];
                snprintf(cid, sizeof cid, "%s%ld", provider == P_OPENAI ? "call_" : "toolu_",
                         total_calls + (long)i + 1);
                char *args_text = dump(json_object_get(t, "args"));
                json_array_append_new(a.calls, json_pack("{ss sO sO ss}", "id", cid, "name",
                                                         json_object_get(t, "name"), "args",
                                                         json_object_get(t, "args"), "args_text",
                                                         args_text));
                a.completion += count_words(args_text);
                free(args_text);
            }
            if (d.has_say) {
                a.text = xstrndup(d.say.p, d.say.len);
            }
            a.finish = provider == P_OPENAI ? "tool_calls" : "tool_use";
        } else {
            buf_t t = {0};
            if (d.tools != NULL) {
                buf_str(&t, "done: ");
                size_t i;
                json_t *r;
                json_array_foreach(results, i, r) {
                    buf_str(&t, i > 0 ? " | " : "");
                    buf_str(&t, json_string_value(r));
                }
            } else if (d.json != NULL) {
                buf_str(&t, d.json);
            } else if (d.badjson != NULL) {
                buf_str(&t, has_assistant ? d.badjson : "{\"not valid");
            } else if (d.has_answer) {
                buf_str(&t, buf_cstr(&d.answer));
            } else if (d.status != 0) {
                buf_str(&t, "recovered");
            } else {
                buf_str(&t, "echo: ");
                buf_str(&t, buf_cstr(&d.plain));
            }
            a.text = xstrndup(buf_cstr(&t), t.len);
            free(t.p);
            a.finish = provider == P_OPENAI ? "stop" : "end_turn";
            json_t *limit = json_object_get(body, "max_tokens");
            if (provider == P_OPENAI && json_object_get(body, "max_completion_tokens") != NULL) {
                limit = json_object_get(body, "max_completion_tokens");
            }
            if (json_is_integer(limit) && json_integer_value(limit) >= 0 &&
                truncate_words(a.text, (long)json_integer_value(limit))) {
                a.finish = provider == P_OPENAI ? "length" : "max_tokens";
            }
        }
        a.completion += count_words(a.text);
        p->stream = a.stream;
        p->cut = d.cut && a.stream;
        if (provider == P_OPENAI) {
            build_openai(p, &a);
        } else {
            build_anthropic(p, &a);
        }
        if (d.malformed && !a.stream) {
            p->body_len /= 2;
        }
        free(a.text);
        json_decref(a.calls);
    }
    long delay = d.delay;
    json_decref(results);
    dirs_free(&d);
    json_decref(body);
    if (delay > 0) {
        mock_req_after(req, (uint64_t)delay, plan_send);
    } else {
        plan_send(req);
    }
}

static void route_openai(mock_req_t *req, const char *rest) {
    (void)rest;
    handle(req, P_OPENAI);
}

static void route_anthropic(mock_req_t *req, const char *rest) {
    (void)rest;
    handle(req, P_ANTHROPIC);
}

static void llm_cleanup(void) {
    json_decref(g_log);
    json_decref(g_times);
    g_log = g_times = NULL;
}

void mock_llm_routes(void);
void mock_llm_routes(void) {
    g_log = json_array();
    g_times = json_object();
    atexit(llm_cleanup);
    mock_route_add("POST", "/v1/chat/completions", route_openai);
    mock_route_add("POST", "/v1/messages", route_anthropic);
    mock_route_add("GET", "/llm/requests", route_requests);
    mock_route_add("POST", "/llm/reset", route_reset);
}
