/* test_mock_llm.c -- af-mockserver's mock LLM (spec/tools/mock_llm.c), run as a child process and
 * reached with the host's HTTP client: the OpenAI Chat Completions and Anthropic Messages wire
 * formats, every directive in both, streamed event sequences parsed line by line, auth and request
 * errors, and the /llm/requests log. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <jansson.h>

#include "net/http.h"
#include "mockserver.h"

enum { OA, AN }; /* OpenAI, Anthropic */

/* ---- the mock server and the client ---------------------------------------------------------- */

static pid_t server_pid;
static char base_url[64];
static uv_loop_t loop;
static af_http_client_t *client;

static int group_setup(void **state) {
    (void)state;
    server_pid = mockserver_start(base_url, sizeof base_url);
    if (server_pid < 0 || uv_loop_init(&loop) != 0) {
        return -1;
    }
    client = af_http_client_new(&loop);
    return client != NULL ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    af_http_client_free(client);
    uv_run(&loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&loop) == 0 ? 0 : -1;
    return mockserver_stop(server_pid) == 0 ? rc : -1;
}

/* ---- requests -------------------------------------------------------------------------------- */

typedef struct resp_s {
    int done;
    int status;
    int has_error;
    char error[256];
    char headers[4096]; /* "Name: value\n"... */
    char *body;         /* what came, streamed or not; NUL-terminated */
    size_t len;
    uint64_t done_at; /* uv_now when done */
} resp_t;

static void resp_clear(resp_t *r) {
    free(r->body);
    memset(r, 0, sizeof *r);
}

static void on_data(void *ud, const char *chunk, size_t len) {
    resp_t *r = ud;
    r->body = realloc(r->body, r->len + len + 1);
    memcpy(r->body + r->len, chunk, len);
    r->len += len;
    r->body[r->len] = '\0';
}

static void on_done(void *ud, const af_http_response_t *res) {
    resp_t *r = ud;
    r->done = 1;
    r->status = res->status;
    r->has_error = res->error != NULL;
    snprintf(r->error, sizeof r->error, "%s", res->error != NULL ? res->error : "");
    size_t off = 0;
    for (const char *const *h = res->headers; h != NULL && *h != NULL; h++) {
        int n = snprintf(r->headers + off, sizeof r->headers - off, "%s\n", *h);
        if (n > 0 && off + (size_t)n < sizeof r->headers) {
            off += (size_t)n;
        }
    }
    if (r->body == NULL) {
        r->body = calloc(1, 1);
    }
    r->done_at = uv_now(&loop);
}

static const char *const oa_headers[] = {"Authorization: Bearer sk-test",
                                         "Content-Type: application/json", NULL};
static const char *const an_headers[] = {"x-api-key: test-key", "anthropic-version: 2023-06-01",
                                         "Content-Type: application/json", NULL};

static const char *path_of(int api) {
    return api == OA ? "/v1/chat/completions" : "/v1/messages";
}

/* Starts a request; headers NULL: the format's auth headers. */
static void start(int api, const char *method, const char *path, const char *const *headers,
                  const char *body, resp_t *r) {
    char url[256];
    snprintf(url, sizeof url, "%s%s", base_url, path);
    af_http_request_t req = {.size = sizeof req,
                             .method = method,
                             .url = url,
                             .headers = headers != NULL ? headers
                                        : api == OA     ? oa_headers
                                                        : an_headers,
                             .body = body,
                             .body_len = body != NULL ? strlen(body) : 0,
                             .timeout_ms = 10000,
                             .on_data = on_data};
    assert_int_equal(af_http_client_request(client, &req, on_done, r, NULL), 0);
}

static void on_guard(uv_timer_t *t) {
    (void)t;
}

/* Runs the loop until the n responses are done (10 s at most). */
static void wait_all(resp_t *rs, int n) {
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, on_guard, 10, 10);
    uv_update_time(&loop);
    uint64_t deadline = uv_now(&loop) + 10000;
    for (int i = 0; i < n && uv_now(&loop) < deadline;) {
        if (rs[i].done) {
            i++;
        } else {
            uv_run(&loop, UV_RUN_ONCE);
        }
    }
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    for (int i = 0; i < n; i++) {
        assert_true(rs[i].done);
    }
}

static json_t *parse(const char *text) {
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (j == NULL) {
        fail_msg("not JSON (%s): %.300s", err.text, text);
    }
    return j;
}

/* POSTs body (stolen) to the format's route; returns the response parsed (r keeps the rest). */
static json_t *post(int api, json_t *body, const char *const *headers, resp_t *r) {
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    start(api, "POST", path_of(api), headers, text, r);
    free(text);
    wait_all(r, 1);
    return parse(r->body);
}

static json_t *user(const char *text) {
    return json_pack("{ss ss}", "role", "user", "content", text);
}

/* A request with these messages (stolen). */
static json_t *request(int api, json_t *messages) {
    if (api == OA) {
        return json_pack("{ss so}", "model", "gpt-mock", "messages", messages);
    }
    return json_pack("{ss sI so}", "model", "claude-mock", "max_tokens", (json_int_t)1024,
                     "messages", messages);
}

/* The answer's text (NULL when none); borrowed from res. */
static const char *text_of(int api, json_t *res) {
    if (api == OA) {
        json_t *msg =
            json_object_get(json_array_get(json_object_get(res, "choices"), 0), "message");
        return json_string_value(json_object_get(msg, "content"));
    }
    json_t *blk = json_array_get(json_object_get(res, "content"), 0);
    return json_is_string(json_object_get(blk, "type")) &&
                   strcmp(json_string_value(json_object_get(blk, "type")), "text") == 0
               ? json_string_value(json_object_get(blk, "text"))
               : NULL;
}

static const char *stop_of(int api, json_t *res) {
    if (api == OA) {
        return json_string_value(
            json_object_get(json_array_get(json_object_get(res, "choices"), 0), "finish_reason"));
    }
    return json_string_value(json_object_get(res, "stop_reason"));
}

static json_int_t usage_of(int api, json_t *res, int completion) {
    json_t *u = json_object_get(res, "usage");
    const char *key = api == OA ? (completion ? "completion_tokens" : "prompt_tokens")
                                : (completion ? "output_tokens" : "input_tokens");
    return json_integer_value(json_object_get(u, key));
}

/* One user message, not streamed: the response parsed, its status in *status. */
static json_t *ask(int api, const char *text, int *status) {
    resp_t r = {0};
    json_t *res = post(api, request(api, json_pack("[o]", user(text))), NULL, &r);
    if (status != NULL) {
        *status = r.status;
    }
    resp_clear(&r);
    return res;
}

static void assert_answer(int api, const char *text, const char *want) {
    int status;
    json_t *res = ask(api, text, &status);
    assert_int_equal(status, 200);
    assert_non_null(text_of(api, res));
    assert_string_equal(text_of(api, res), want);
    assert_string_equal(stop_of(api, res), api == OA ? "stop" : "end_turn");
    json_decref(res);
}

static int has_header(const resp_t *r, const char *line) {
    char needle[512];
    snprintf(needle, sizeof needle, "%s\n", line);
    for (const char *p = r->headers; (p = strcasestr(p, needle)) != NULL; p++) {
        if (p == r->headers || p[-1] == '\n') {
            return 1;
        }
    }
    return 0;
}

static void assert_error_shape(int api, json_t *res, const char *type) {
    if (api == OA) {
        json_t *e = json_object_get(res, "error");
        assert_true(json_is_object(e));
        assert_true(json_is_string(json_object_get(e, "message")));
        assert_string_equal(json_string_value(json_object_get(e, "type")), type);
        assert_non_null(json_object_get(e, "code")); /* present, a string or null */
    } else {
        assert_string_equal(json_string_value(json_object_get(res, "type")), "error");
        json_t *e = json_object_get(res, "error");
        assert_string_equal(json_string_value(json_object_get(e, "type")), type);
        assert_true(json_is_string(json_object_get(e, "message")));
    }
}

/* ---- server-sent events ---------------------------------------------------------------------- */

/* Parses a streamed body line by line into [{"event": name or null, "data": json or "[DONE]"}]:
 * OpenAI "data: X" + blank line; Anthropic "event: NAME" + "data: X" + blank line. A truncated
 * JSON data line is kept as {"bad": text}. Fails on any other line. */
static json_t *parse_sse(int api, const char *body) {
    json_t *events = json_array();
    const char *p = body;
    while (*p != '\0') {
        char event[64] = "";
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        if (api == AN) {
            assert_true(strncmp(p, "event: ", 7) == 0);
            snprintf(event, sizeof event, "%.*s", (int)(nl - p - 7), p + 7);
            p = nl + 1;
            nl = strchr(p, '\n');
            assert_non_null(nl);
        }
        assert_true(strncmp(p, "data: ", 6) == 0);
        char *data = strndup(p + 6, (size_t)(nl - p - 6));
        assert_int_equal(nl[1], '\n'); /* a blank line ends the event */
        p = nl + 2;
        json_t *j = strcmp(data, "[DONE]") == 0 ? json_string(data) : json_loads(data, 0, NULL);
        if (j == NULL) {
            j = json_pack("{ss}", "bad", data);
        }
        free(data);
        json_array_append_new(
            events,
            json_pack("{so so}", "event", event[0] ? json_string(event) : json_null(), "data", j));
    }
    return events;
}

static json_t *ev_data(json_t *events, size_t i) {
    return json_object_get(json_array_get(events, i), "data");
}

static const char *ev_name(json_t *events, size_t i) {
    return json_string_value(json_object_get(json_array_get(events, i), "event"));
}

/* Streams a request (stolen, "stream": true added): the events, checks on the response. */
static json_t *stream(int api, json_t *body, resp_t *r) {
    json_object_set_new(body, "stream", json_true());
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    start(api, "POST", path_of(api), NULL, text, r);
    free(text);
    wait_all(r, 1);
    assert_int_equal(r->status, 200);
    assert_true(has_header(r, "Content-Type: text/event-stream; charset=utf-8"));
    assert_true(has_header(r, "Transfer-Encoding: chunked"));
    return parse_sse(api, r->body);
}

/* Folds OpenAI chunks back into a chat.completion (message, finish_reason, usage), checking the
 * rules on the way; *pieces: content deltas, *frags: argument fragments of each call. */
static json_t *oa_fold(json_t *events, int *pieces, int *frags) {
    size_t n = json_array_size(events);
    assert_true(n >= 3);
    assert_string_equal(json_string_value(ev_data(events, n - 1)), "[DONE]");
    json_t *first = ev_data(events, 0);
    const char *id = json_string_value(json_object_get(first, "id"));
    assert_non_null(id);
    json_t *msg = json_pack("{ss sn}", "role", "assistant", "content");
    json_t *calls = json_array();
    json_t *out = json_pack("{so}", "message", msg);
    char content[4096] = "";
    int has_content = 0, finished = 0;
    *pieces = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        json_t *c = ev_data(events, i);
        assert_string_equal(json_string_value(json_object_get(c, "object")),
                            "chat.completion.chunk");
        assert_string_equal(json_string_value(json_object_get(c, "id")), id);
        assert_string_equal(json_string_value(json_object_get(c, "model")), "gpt-mock");
        json_t *choices = json_object_get(c, "choices");
        if (json_array_size(choices) == 0) { /* the usage chunk: after the finish, last */
            assert_true(finished);
            assert_int_equal(i, n - 2);
            json_object_set(out, "usage", json_object_get(c, "usage"));
            continue;
        }
        assert_false(finished);
        json_t *ch = json_array_get(choices, 0);
        json_t *delta = json_object_get(ch, "delta");
        assert_true(json_is_object(delta));
        if (i == 0) {
            assert_string_equal(json_string_value(json_object_get(delta, "role")), "assistant");
        } else {
            assert_null(json_object_get(delta, "role"));
        }
        json_t *piece = json_object_get(delta, "content");
        if (json_is_string(piece) && json_string_length(piece) > 0) {
            strcat(content, json_string_value(piece));
            has_content = 1;
            (*pieces)++;
        }
        size_t k;
        json_t *tc;
        json_array_foreach(json_object_get(delta, "tool_calls"), k, tc) {
            size_t idx = (size_t)json_integer_value(json_object_get(tc, "index"));
            json_t *fn = json_object_get(tc, "function");
            if (idx == json_array_size(calls)) { /* a new call: id, type and name first */
                assert_true(json_is_string(json_object_get(tc, "id")));
                assert_string_equal(json_string_value(json_object_get(tc, "type")), "function");
                json_array_append_new(calls,
                                      json_pack("{sO ss s{sO ss}}", "id", json_object_get(tc, "id"),
                                                "type", "function", "function", "name",
                                                json_object_get(fn, "name"), "arguments", ""));
                frags[idx] = 0;
            } else {
                assert_true(idx + 1 == json_array_size(calls)); /* one call after the other */
                assert_null(json_object_get(tc, "id"));
            }
            const char *arg = json_string_value(json_object_get(fn, "arguments"));
            if (arg != NULL && *arg != '\0') {
                json_t *cf = json_object_get(json_array_get(calls, idx), "function");
                char *all = NULL;
                assert_true(asprintf(&all, "%s%s",
                                     json_string_value(json_object_get(cf, "arguments")), arg) > 0);
                json_object_set_new(cf, "arguments", json_string(all));
                free(all);
                frags[idx]++;
            }
        }
        json_t *fin = json_object_get(ch, "finish_reason");
        if (json_is_string(fin)) {
            json_object_set(out, "finish_reason", fin);
            assert_int_equal(json_object_size(delta), 0);
            finished = 1;
        } else {
            assert_true(json_is_null(fin));
        }
    }
    assert_true(finished);
    if (has_content) {
        json_object_set_new(msg, "content", json_string(content));
    }
    if (json_array_size(calls) > 0) {
        json_object_set(msg, "tool_calls", calls);
    }
    json_decref(calls);
    return out;
}

/* Folds Anthropic events back into a message, checking the event sequence; *deltas counts the
 * content_block_delta events of each block. */
static json_t *an_fold(json_t *events, int *deltas) {
    size_t n = json_array_size(events);
    assert_true(n >= 5);
    assert_string_equal(ev_name(events, 0), "message_start");
    json_t *start = json_object_get(ev_data(events, 0), "message");
    assert_string_equal(json_string_value(json_object_get(start, "type")), "message");
    assert_string_equal(json_string_value(json_object_get(start, "role")), "assistant");
    assert_int_equal(json_array_size(json_object_get(start, "content")), 0);
    assert_true(json_is_null(json_object_get(start, "stop_reason")));
    json_t *out = json_deep_copy(start);
    json_t *content = json_object_get(out, "content");
    char buf[4096];
    int open = -1, stopped = 0;
    for (size_t i = 1; i < n; i++) {
        const char *name = ev_name(events, i);
        json_t *d = ev_data(events, i);
        assert_string_equal(json_string_value(json_object_get(d, "type")), name);
        int idx = (int)json_integer_value(json_object_get(d, "index"));
        if (strcmp(name, "ping") == 0) {
            continue;
        }
        assert_false(stopped);
        if (strcmp(name, "content_block_start") == 0) {
            assert_int_equal(open, -1);
            assert_int_equal(idx, (int)json_array_size(content));
            json_array_append(content, json_object_get(d, "content_block"));
            open = idx;
            deltas[idx] = 0;
            buf[0] = '\0';
        } else if (strcmp(name, "content_block_delta") == 0) {
            assert_int_equal(idx, open);
            json_t *delta = json_object_get(d, "delta");
            const char *type = json_string_value(json_object_get(delta, "type"));
            json_t *blk = json_array_get(content, (size_t)idx);
            const char *btype = json_string_value(json_object_get(blk, "type"));
            if (strcmp(btype, "text") == 0) {
                assert_string_equal(type, "text_delta");
                strcat(buf, json_string_value(json_object_get(delta, "text")));
            } else {
                assert_string_equal(type, "input_json_delta");
                strcat(buf, json_string_value(json_object_get(delta, "partial_json")));
            }
            deltas[idx]++;
        } else if (strcmp(name, "content_block_stop") == 0) {
            assert_int_equal(idx, open);
            json_t *blk = json_array_get(content, (size_t)idx);
            if (strcmp(json_string_value(json_object_get(blk, "type")), "text") == 0) {
                json_object_set_new(blk, "text", json_string(buf));
            } else {
                json_object_set_new(blk, "input", parse(buf));
            }
            open = -1;
        } else if (strcmp(name, "message_delta") == 0) {
            assert_int_equal(open, -1);
            json_object_set(out, "stop_reason",
                            json_object_get(json_object_get(d, "delta"), "stop_reason"));
            json_object_set(json_object_get(out, "usage"), "output_tokens",
                            json_object_get(json_object_get(d, "usage"), "output_tokens"));
        } else {
            assert_string_equal(name, "message_stop");
            assert_int_equal(i, n - 1);
            stopped = 1;
        }
    }
    assert_true(stopped);
    return out;
}

/* ---- tests: plain answers -------------------------------------------------------------------- */

static void test_openai_response(void **state) {
    (void)state;
    resp_t r = {0};
    json_t *msgs = json_pack("[{ss ss} o]", "role", "system", "content", "be very brief",
                             user("hello there world"));
    json_t *res = post(OA, request(OA, msgs), NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type: application/json"));
    assert_non_null(strcasestr(r.headers, "x-request-id: req_mock"));
    assert_true(strncmp(json_string_value(json_object_get(res, "id")), "chatcmpl-", 9) == 0);
    assert_string_equal(json_string_value(json_object_get(res, "object")), "chat.completion");
    assert_true(json_integer_value(json_object_get(res, "created")) > 1600000000);
    assert_string_equal(json_string_value(json_object_get(res, "model")), "gpt-mock");
    json_t *choice = json_array_get(json_object_get(res, "choices"), 0);
    assert_int_equal(json_integer_value(json_object_get(choice, "index")), 0);
    json_t *msg = json_object_get(choice, "message");
    assert_string_equal(json_string_value(json_object_get(msg, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(msg, "content")),
                        "echo: hello there world");
    assert_null(json_object_get(msg, "tool_calls"));
    assert_string_equal(stop_of(OA, res), "stop");
    assert_int_equal(usage_of(OA, res, 0), 3 + 3);
    assert_int_equal(usage_of(OA, res, 1), 4);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(res, "usage"), "total_tokens")), 10);
    json_decref(res);
    resp_clear(&r);

    /* content as parts, max_tokens cutting the answer */
    json_t *body =
        request(OA, json_pack("[{ss s[{ss ss}{ss ss}]}]", "role", "user", "content", "type", "text",
                              "text", "one two", "type", "text", "text", "three"));
    json_object_set_new(body, "max_completion_tokens", json_integer(2));
    res = post(OA, body, NULL, &r);
    assert_string_equal(text_of(OA, res), "echo: one");
    assert_string_equal(stop_of(OA, res), "length");
    assert_int_equal(usage_of(OA, res, 0), 3);
    json_decref(res);
    resp_clear(&r);
}

static void test_anthropic_response(void **state) {
    (void)state;
    resp_t r = {0};
    json_t *body = request(AN, json_pack("[o]", user("hello there world")));
    json_object_set_new(body, "system", json_string("be very brief"));
    json_t *res = post(AN, body, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strcasestr(r.headers, "request-id: req_mock"));
    assert_true(strncmp(json_string_value(json_object_get(res, "id")), "msg_", 4) == 0);
    assert_string_equal(json_string_value(json_object_get(res, "type")), "message");
    assert_string_equal(json_string_value(json_object_get(res, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(res, "model")), "claude-mock");
    json_t *content = json_object_get(res, "content");
    assert_int_equal(json_array_size(content), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(content, 0), "type")),
                        "text");
    assert_string_equal(text_of(AN, res), "echo: hello there world");
    assert_string_equal(stop_of(AN, res), "end_turn");
    assert_true(json_is_null(json_object_get(res, "stop_sequence")));
    assert_int_equal(usage_of(AN, res, 0), 6);
    assert_int_equal(usage_of(AN, res, 1), 4);
    json_decref(res);
    resp_clear(&r);

    /* system and content as text blocks; max_tokens */
    body = json_pack("{ss sI s[{ss ss}] s[{ss s[{ss ss}{ss ss}]}]}", "model", "claude-mock",
                     "max_tokens", (json_int_t)2, "system", "type", "text", "text", "sys words",
                     "messages", "role", "user", "content", "type", "text", "text", "one two",
                     "type", "text", "text", "three");
    res = post(AN, body, NULL, &r);
    assert_string_equal(text_of(AN, res), "echo: one");
    assert_string_equal(stop_of(AN, res), "max_tokens");
    assert_int_equal(usage_of(AN, res, 0), 5);
    json_decref(res);
    resp_clear(&r);
}

static void test_answer_and_json(void **state) {
    (void)state;
    for (int api = OA; api <= AN; api++) {
        assert_answer(api, "#answer The sky is blue.", "The sky is blue.");
        assert_answer(api, "some text\n  #answer line one\n#answer line two", "line one\nline two");
        assert_answer(api, "#json {\"a\": [1, 2], \"b\": \"x\"}", "{\"a\": [1, 2], \"b\": \"x\"}");
        assert_answer(api, "#delay 1\nplain words", "echo: plain words");
        assert_answer(api, "# not a directive\n#hashtag", "echo: # not a directive\n#hashtag");
        int status;
        json_t *res = ask(api, "#json {\"n\": 1}", &status);
        json_t *answer = parse(text_of(api, res));
        assert_int_equal(json_integer_value(json_object_get(answer, "n")), 1);
        json_decref(answer);
        json_decref(res);
    }
}

/* ---- tests: tools ---------------------------------------------------------------------------- */

static void test_tools_openai(void **state) {
    (void)state;
    const char *text = "#tool get_weather {\"city\": \"Paris\"}\n#tool get_time {}";
    resp_t r = {0};
    json_t *body = request(OA, json_pack("[o]", user(text)));
    json_object_set_new(body, "tools",
                        json_pack("[{ss s{ss ss s{ss}}}]", "type", "function", "function", "name",
                                  "get_weather", "description", "weather", "parameters", "type",
                                  "object"));
    json_t *res = post(OA, body, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(stop_of(OA, res), "tool_calls");
    json_t *msg = json_object_get(json_array_get(json_object_get(res, "choices"), 0), "message");
    assert_true(json_is_null(json_object_get(msg, "content")));
    json_t *calls = json_object_get(msg, "tool_calls");
    assert_int_equal(json_array_size(calls), 2);
    json_t *c0 = json_array_get(calls, 0), *c1 = json_array_get(calls, 1);
    assert_string_equal(json_string_value(json_object_get(c0, "id")), "call_1");
    assert_string_equal(json_string_value(json_object_get(c1, "id")), "call_2");
    assert_string_equal(json_string_value(json_object_get(c0, "type")), "function");
    json_t *fn = json_object_get(c0, "function");
    assert_string_equal(json_string_value(json_object_get(fn, "name")), "get_weather");
    json_t *args = parse(json_string_value(json_object_get(fn, "arguments")));
    assert_string_equal(json_string_value(json_object_get(args, "city")), "Paris");
    json_decref(args);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(c1, "function"), "arguments")), "{}");
    assert_int_equal(usage_of(OA, res, 1), 2); /* {"city":"Paris"} and {} */
    resp_clear(&r);

    /* the results come back: the final answer */
    json_t *msgs = json_pack("[o O {ss ss ss} {ss ss ss}]", user(text), msg, "role", "tool",
                             "tool_call_id", "call_1", "content", "sunny 20C", "role", "tool",
                             "tool_call_id", "call_2", "content", "noon");
    json_t *res2 = post(OA, request(OA, json_deep_copy(msgs)), NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(text_of(OA, res2), "done: sunny 20C | noon");
    assert_string_equal(stop_of(OA, res2), "stop");
    assert_int_equal(usage_of(OA, res2, 0), 7 + 2 + 1); /* words of texts and results */
    json_decref(res2);
    resp_clear(&r);

    /* a missing tool result is refused like the API does */
    json_array_remove(msgs, 3);
    res2 = post(OA, request(OA, json_deep_copy(msgs)), NULL, &r);
    assert_int_equal(r.status, 400);
    assert_error_shape(OA, res2, "invalid_request_error");
    assert_non_null(strstr(
        json_string_value(json_object_get(json_object_get(res2, "error"), "message")), "call_2"));
    json_decref(res2);
    resp_clear(&r);
    /* so is a result for an unknown call */
    json_array_append_new(
        msgs, json_pack("{ss ss ss}", "role", "tool", "tool_call_id", "call_9", "content", "x"));
    res2 = post(OA, request(OA, msgs), NULL, &r);
    assert_int_equal(r.status, 400);
    json_decref(res2);
    resp_clear(&r);
    json_decref(res);
}

static void test_tools_anthropic(void **state) {
    (void)state;
    const char *text = "#say Let me look.\n#tool get_weather {\"city\": \"Paris\"}\n"
                       "#tool get_time {}";
    resp_t r = {0};
    json_t *body = request(AN, json_pack("[o]", user(text)));
    json_object_set_new(body, "tools",
                        json_pack("[{ss ss s{ss}}]", "name", "get_weather", "description",
                                  "weather", "input_schema", "type", "object"));
    json_t *res = post(AN, body, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(stop_of(AN, res), "tool_use");
    json_t *content = json_object_get(res, "content");
    assert_int_equal(json_array_size(content), 3);
    assert_string_equal(text_of(AN, res), "Let me look.");
    json_t *u0 = json_array_get(content, 1), *u1 = json_array_get(content, 2);
    assert_string_equal(json_string_value(json_object_get(u0, "type")), "tool_use");
    assert_string_equal(json_string_value(json_object_get(u0, "id")), "toolu_1");
    assert_string_equal(json_string_value(json_object_get(u1, "id")), "toolu_2");
    assert_string_equal(json_string_value(json_object_get(u0, "name")), "get_weather");
    assert_string_equal(json_string_value(json_object_get(json_object_get(u0, "input"), "city")),
                        "Paris");
    assert_int_equal(json_object_size(json_object_get(u1, "input")), 0);
    assert_int_equal(usage_of(AN, res, 1), 3 + 2);
    resp_clear(&r);

    /* results: one a string, one text blocks */
    json_t *msgs =
        json_pack("[o {ss sO} {ss s[{ss ss ss} {ss ss s[{ss ss}]}]}]", user(text), "role",
                  "assistant", "content", content, "role", "user", "content", "type", "tool_result",
                  "tool_use_id", "toolu_1", "content", "sunny 20C", "type", "tool_result",
                  "tool_use_id", "toolu_2", "content", "type", "text", "text", "noon");
    json_t *res2 = post(AN, request(AN, json_deep_copy(msgs)), NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(text_of(AN, res2), "done: sunny 20C | noon");
    assert_string_equal(stop_of(AN, res2), "end_turn");
    json_decref(res2);
    resp_clear(&r);

    /* a tool_use without its tool_result is refused */
    json_array_remove(json_object_get(json_array_get(msgs, 2), "content"), 1);
    res2 = post(AN, request(AN, json_deep_copy(msgs)), NULL, &r);
    assert_int_equal(r.status, 400);
    assert_error_shape(AN, res2, "invalid_request_error");
    assert_non_null(strstr(
        json_string_value(json_object_get(json_object_get(res2, "error"), "message")), "toolu_2"));
    json_decref(res2);
    resp_clear(&r);
    json_decref(msgs);
    json_decref(res);
}

/* #rounds N: N assistant turns of tool calls, ids unique in the conversation, then the answer. */
static void test_rounds(void **state) {
    (void)state;
    for (int api = OA; api <= AN; api++) {
        const char *text = "#rounds 3\n#tool step {\"n\": 1}";
        json_t *msgs = json_pack("[o]", user(text));
        int turns = 0;
        for (;;) {
            resp_t r = {0};
            json_t *res = post(api, request(api, json_deep_copy(msgs)), NULL, &r);
            assert_int_equal(r.status, 200);
            resp_clear(&r);
            const char *stop = stop_of(api, res);
            if (strcmp(stop, api == OA ? "stop" : "end_turn") == 0) {
                assert_string_equal(text_of(api, res), "done: r1 | r2 | r3");
                json_decref(res);
                break;
            }
            turns++;
            assert_true(turns <= 3);
            char id[32], result[16];
            snprintf(id, sizeof id, api == OA ? "call_%d" : "toolu_%d", turns);
            snprintf(result, sizeof result, "r%d", turns);
            if (api == OA) {
                json_t *msg =
                    json_object_get(json_array_get(json_object_get(res, "choices"), 0), "message");
                json_t *call = json_array_get(json_object_get(msg, "tool_calls"), 0);
                assert_string_equal(json_string_value(json_object_get(call, "id")), id);
                json_array_append(msgs, msg);
                json_array_append_new(msgs, json_pack("{ss ss ss}", "role", "tool", "tool_call_id",
                                                      id, "content", result));
            } else {
                json_t *use = json_array_get(json_object_get(res, "content"), 0);
                assert_string_equal(json_string_value(json_object_get(use, "id")), id);
                json_array_append_new(msgs, json_pack("{ss sO}", "role", "assistant", "content",
                                                      json_object_get(res, "content")));
                json_array_append_new(msgs, json_pack("{ss s[{ss ss ss}]}", "role", "user",
                                                      "content", "type", "tool_result",
                                                      "tool_use_id", id, "content", result));
            }
            json_decref(res);
        }
        assert_int_equal(turns, 3);
        json_decref(msgs);
    }
}

/* #badjson-then: bad JSON first; after an assistant answer (a repair turn), the JSON. */
static void test_badjson_then(void **state) {
    (void)state;
    const char *text = "#badjson-then {\"ok\": true}";
    for (int api = OA; api <= AN; api++) {
        int status;
        json_t *res = ask(api, text, &status);
        assert_int_equal(status, 200);
        assert_string_equal(text_of(api, res), "{\"not valid");
        json_decref(res);
        json_t *msgs = json_pack("[o {ss ss} o]", user(text), "role", "assistant", "content",
                                 "{\"not valid", user("That was not valid JSON. Fix it."));
        resp_t r = {0};
        res = post(api, request(api, msgs), NULL, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(text_of(api, res), "{\"ok\": true}");
        json_decref(res);
        resp_clear(&r);
        /* a later ordinary turn is not a repair: echo */
        msgs = json_pack("[o {ss ss} o {ss ss} o]", user(text), "role", "assistant", "content", "x",
                         user("fix"), "role", "assistant", "content", "{}", user("next"));
        res = post(api, request(api, msgs), NULL, &r);
        assert_string_equal(text_of(api, res), "echo: next");
        json_decref(res);
        resp_clear(&r);
    }
}

/* ---- tests: errors --------------------------------------------------------------------------- */

static void test_status(void **state) {
    (void)state;
    resp_t r = {0};
    start(OA, "POST", "/llm/reset", NULL, "", &r);
    wait_all(&r, 1);
    resp_clear(&r);
    for (int api = OA; api <= AN; api++) {
        const char *text = api == OA ? "#status 429 retry-after 2 times 2 key oa-429\nhi"
                                     : "#status 429 retry-after 2 times 2 key an-429\nhi";
        for (int i = 0; i < 3; i++) {
            json_t *res = post(api, request(api, json_pack("[o]", user(text))), NULL, &r);
            if (i < 2) {
                assert_int_equal(r.status, 429);
                assert_true(has_header(&r, "Retry-After: 2"));
                assert_error_shape(api, res, api == OA ? "requests" : "rate_limit_error");
                if (api == OA) {
                    assert_string_equal(
                        json_string_value(json_object_get(json_object_get(res, "error"), "code")),
                        "rate_limit_exceeded");
                }
            } else {
                assert_int_equal(r.status, 200);
                assert_false(has_header(&r, "Retry-After: 2"));
                assert_string_equal(text_of(api, res), "recovered");
            }
            json_decref(res);
            resp_clear(&r);
        }
        /* with another answer directive, recovering answers that */
        const char *text2 = api == OA ? "#status 503 times 1 key oa503\n#answer fine"
                                      : "#status 503 times 1 key an503\n#answer fine";
        int status;
        json_t *res = ask(api, text2, &status);
        assert_int_equal(status, 503);
        assert_error_shape(api, res, api == OA ? "server_error" : "api_error");
        json_decref(res);
        res = ask(api, text2, &status);
        assert_int_equal(status, 200);
        assert_string_equal(text_of(api, res), "fine");
        json_decref(res);
        /* without times: always */
        for (int i = 0; i < 2; i++) {
            res = ask(api, api == OA ? "#status 500" : "#status 529", &status);
            assert_int_equal(status, api == OA ? 500 : 529);
            assert_error_shape(api, res, api == OA ? "server_error" : "overloaded_error");
            json_decref(res);
        }
    }
    /* /llm/reset starts the counts again */
    start(OA, "POST", "/llm/reset", NULL, "", &r);
    wait_all(&r, 1);
    resp_clear(&r);
    int status;
    json_t *res = ask(OA, "#status 503 times 1 key oa503\n#answer fine", &status);
    assert_int_equal(status, 503);
    json_decref(res);
    /* the default key is the directive line */
    for (int i = 0; i < 3; i++) {
        res = ask(i < 2 ? OA : AN, "#status 502 times 2", &status);
        assert_int_equal(status, i < 2 ? 502 : 200);
        json_decref(res);
    }
}

static void test_auth(void **state) {
    (void)state;
    const char *body = "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
                       "\"content\":\"hi\"}]}";
    const char *const none[] = {"Content-Type: application/json", NULL};
    const char *const empty_bearer[] = {"Authorization: Bearer ", NULL};
    const char *const basic[] = {"Authorization: Basic abc", NULL};
    const char *const no_version[] = {"x-api-key: k", NULL};
    const char *const no_key[] = {"anthropic-version: 2023-06-01", NULL};
    struct {
        int api;
        const char *const *headers;
    } cases[] = {{OA, none},       {OA, empty_bearer}, {OA, basic},     {AN, none},
                 {AN, no_version}, {AN, no_key},       {AN, oa_headers}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        resp_t r = {0};
        start(cases[i].api, "POST", path_of(cases[i].api), cases[i].headers, body, &r);
        wait_all(&r, 1);
        assert_int_equal(r.status, 401);
        json_t *res = parse(r.body);
        assert_error_shape(cases[i].api, res,
                           cases[i].api == OA ? "invalid_request_error" : "authentication_error");
        json_decref(res);
        resp_clear(&r);
    }
}

/* Invalid JSON and requests the APIs refuse: 400 in the format's shape; the server lives on. */
static void test_bad_requests(void **state) {
    (void)state;
    static const char *const bodies[] = {
        "",
        "{\"model\": ",
        "[1, 2]",
        "\"text\"",
        "{}",
        "{\"model\":\"m\",\"max_tokens\":5}",
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[]}",
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":7}",
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[7]}",
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\"}]}",
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}",
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":5}]}",
        "{\"model\":7,\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
        "{\"model\":\"m\",\"max_tokens\":5,\"tools\":{},\"messages\":[{\"role\":\"user\","
        "\"content\":\"x\"}]}",
        "{\"model\":\"m\",\"max_tokens\":5,\"tools\":[{}],\"messages\":[{\"role\":\"user\","
        "\"content\":\"x\"}]}",
        "{\"model\":\"m\",\"max_tokens\":5,\"stream\":\"yes\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"x\"}]}",
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"#status "
        "99\"}]}",
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"#tool\"}]"
        "}",
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"#tool f "
        "[1]\"}]}",
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"#delay "
        "-1\"}]}",
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"#rounds "
        "0\\n#tool f\"}]}",
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"#status "
        "429 times x\"}]}",
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"assistant\",\"content\":[{"
        "\"type\":\"tool_use\",\"id\":\"a\",\"name\":\"f\",\"input\":{}}],\"tool_calls\":[{\"id\":"
        "\"a\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}]}",
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"tool\",\"tool_call_id\":\"a\","
        "\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"a\"}]}]}",
    };
    for (int api = OA; api <= AN; api++) {
        for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
            resp_t r = {0};
            start(api, "POST", path_of(api), NULL, bodies[i], &r);
            wait_all(&r, 1);
            if (r.status != 400) {
                fail_msg("%s body %zu: status %d: %s", path_of(api), i, r.status, r.body);
            }
            json_t *res = parse(r.body);
            assert_error_shape(api, res, "invalid_request_error");
            json_decref(res);
            resp_clear(&r);
        }
        /* OpenAI-only rules */
        resp_t r = {0};
        start(OA, "POST", path_of(OA), NULL,
              "{\"model\":\"m\",\"stream_options\":{\"include_usage\":true},\"messages\":[{"
              "\"role\":\"user\",\"content\":\"x\"}]}",
              &r);
        wait_all(&r, 1);
        assert_int_equal(r.status, 400);
        resp_clear(&r);
        start(OA, "POST", path_of(OA), NULL,
              "{\"model\":\"m\",\"response_format\":{\"type\":\"yaml\"},\"messages\":[{"
              "\"role\":\"user\",\"content\":\"x\"}]}",
              &r);
        wait_all(&r, 1);
        assert_int_equal(r.status, 400);
        resp_clear(&r);
        /* Anthropic-only: max_tokens, no system role in messages */
        start(AN, "POST", path_of(AN), NULL,
              "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r);
        wait_all(&r, 1);
        assert_int_equal(r.status, 400);
        resp_clear(&r);
        start(AN, "POST", path_of(AN), NULL,
              "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"system\",\"content\":"
              "\"x\"},{\"role\":\"user\",\"content\":\"x\"}]}",
              &r);
        wait_all(&r, 1);
        assert_int_equal(r.status, 400);
        resp_clear(&r);
        assert_answer(api, "still alive", "echo: still alive");
    }
}

static void test_malformed(void **state) {
    (void)state;
    for (int api = OA; api <= AN; api++) {
        resp_t r = {0};
        json_t *body = request(api, json_pack("[o]", user("#malformed\nhello")));
        char *text = json_dumps(body, JSON_COMPACT);
        start(api, "POST", path_of(api), NULL, text, &r);
        free(text);
        wait_all(&r, 1);
        assert_int_equal(r.status, 200);
        assert_true(has_header(&r, "Content-Type: application/json"));
        assert_true(r.len > 10);
        assert_int_equal(r.body[0], '{');
        assert_null(json_loads(r.body, 0, NULL));
        resp_clear(&r);
        /* streamed: the second event's data is cut short */
        json_t *events = stream(api, body, &r);
        assert_non_null(json_object_get(ev_data(events, 1), "bad"));
        assert_null(json_object_get(ev_data(events, 0), "bad"));
        json_decref(events);
        resp_clear(&r);
    }
}

/* ---- tests: delays and concurrency ----------------------------------------------------------- */

static void test_delay(void **state) {
    (void)state;
    enum { MANY = 200 };
    static resp_t rs[MANY + 2];
    char *slow = NULL, *fast = NULL, *many = NULL;
    json_t *b = request(OA, json_pack("[o]", user("#delay 400\nslow")));
    slow = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    b = request(AN, json_pack("[o]", user("fast")));
    fast = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    start(OA, "POST", path_of(OA), NULL, slow, &rs[0]);
    start(AN, "POST", path_of(AN), NULL, fast, &rs[1]);
    wait_all(rs, 2);
    assert_int_equal(rs[0].status, 200);
    assert_int_equal(rs[1].status, 200);
    assert_true(rs[1].done_at < rs[0].done_at); /* served while the other waits */
    assert_true(rs[0].done_at - t0 >= 390);
    json_t *res = parse(rs[0].body);
    assert_string_equal(text_of(OA, res), "echo: slow");
    json_decref(res);
    resp_clear(&rs[0]);
    resp_clear(&rs[1]);

    /* many at once: all done in about one delay */
    uv_update_time(&loop);
    t0 = uv_now(&loop);
    for (int i = 0; i < MANY; i++) {
        int api = i % 2;
        b = request(api, json_pack("[o]", user("#delay 200\n#answer waited")));
        if (i % 4 < 2) {
            json_object_set_new(b, "stream", json_true());
        }
        many = json_dumps(b, JSON_COMPACT);
        json_decref(b);
        start(api, "POST", path_of(api), NULL, many, &rs[i]);
        free(many);
    }
    wait_all(rs, MANY);
    uint64_t took = uv_now(&loop) - t0;
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(rs[i].status, 200);
        assert_non_null(strstr(rs[i].body, i % 4 >= 2   ? "waited"
                                           : i % 2 == 0 ? "data: [DONE]\n\n"
                                                        : "event: message_stop\n"));
        assert_true(rs[i].done_at - t0 >= 195);
        resp_clear(&rs[i]);
    }
    assert_true(took < 2000);
    free(slow);
    free(fast);
}

/* ---- tests: streaming ------------------------------------------------------------------------ */

/* The same request streamed and not: the folded stream must equal the response. */
static void test_stream_openai(void **state) {
    (void)state;
    resp_t r = {0};
    /* text, no usage chunk */
    json_t *events =
        stream(OA, request(OA, json_pack("[o]", user("#answer one two three four"))), &r);
    int pieces, frags[4];
    json_t *folded = oa_fold(events, &pieces, frags);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(folded, "message"), "content")),
        "one two three four");
    assert_true(pieces >= 3);
    assert_string_equal(json_string_value(json_object_get(folded, "finish_reason")), "stop");
    assert_null(json_object_get(folded, "usage"));
    assert_null(json_object_get(ev_data(events, 0), "usage"));
    json_decref(folded);
    json_decref(events);
    resp_clear(&r);

    /* parallel tool calls, with include_usage */
    const char *text =
        "#tool get_weather {\"city\": \"Paris\", \"unit\": \"C\"}\n#tool get_time {}";
    json_t *body = request(OA, json_pack("[o]", user(text)));
    json_object_set_new(body, "stream_options", json_pack("{sb}", "include_usage", 1));
    events = stream(OA, json_deep_copy(body), &r);
    folded = oa_fold(events, &pieces, frags);
    assert_int_equal(pieces, 0);
    assert_true(frags[0] >= 2);
    assert_true(frags[1] >= 2);
    assert_true(json_is_null(json_object_get(ev_data(events, 0), "usage"))); /* null till the end */
    json_object_del(body, "stream_options");
    resp_t r2 = {0};
    json_t *res = post(OA, body, NULL, &r2);
    json_t *choice = json_array_get(json_object_get(res, "choices"), 0);
    json_t *msg = json_object_get(choice, "message");
    json_object_del(msg, "refusal");
    assert_true(json_equal(json_object_get(folded, "message"), msg));
    assert_true(json_equal(json_object_get(folded, "finish_reason"),
                           json_object_get(choice, "finish_reason")));
    assert_true(json_equal(json_object_get(folded, "usage"), json_object_get(res, "usage")));
    json_decref(res);
    json_decref(folded);
    json_decref(events);
    resp_clear(&r);
    resp_clear(&r2);
}

static void test_stream_anthropic(void **state) {
    (void)state;
    resp_t r = {0}, r2 = {0};
    const char *texts[] = {"#answer one two three four", "#say Checking now.\n#tool get_weather "
                                                         "{\"city\": \"Paris\", \"unit\": \"C\"}\n"
                                                         "#tool get_time {}"};
    static const char *const want[][16] = {
        {"message_start", "content_block_start", "ping", "content_block_delta",
         "content_block_delta", "content_block_delta", "content_block_stop", "message_delta",
         "message_stop", NULL},
        {"message_start", "content_block_start", "ping", "content_block_delta",
         "content_block_delta", "content_block_delta", "content_block_stop", "content_block_start",
         "content_block_delta", "content_block_delta", "content_block_delta", "content_block_delta",
         "content_block_stop", "content_block_start", NULL}};
    for (int t = 0; t < 2; t++) {
        json_t *body = request(AN, json_pack("[o]", user(texts[t])));
        json_t *events = stream(AN, json_deep_copy(body), &r);
        for (size_t i = 0; want[t][i] != NULL; i++) {
            assert_string_equal(ev_name(events, i), want[t][i]);
        }
        int deltas[8];
        json_t *folded = an_fold(events, deltas);
        json_t *res = post(AN, body, NULL, &r2);
        json_object_del(folded, "id"); /* each response has its own */
        json_object_del(res, "id");
        assert_true(json_equal(folded, res));
        assert_true(deltas[0] >= 3);
        if (t == 1) {
            assert_true(deltas[1] >= 2);
            assert_true(deltas[2] >= 2);
            assert_string_equal(json_string_value(json_object_get(folded, "stop_reason")),
                                "tool_use");
        }
        json_decref(res);
        json_decref(folded);
        json_decref(events);
        resp_clear(&r);
        resp_clear(&r2);
    }
}

/* #cut-stream: two events, then the connection closes: the client sees a transfer error. */
static void test_cut_stream(void **state) {
    (void)state;
    for (int api = OA; api <= AN; api++) {
        resp_t r = {0};
        json_t *body = request(api, json_pack("[o]", user("#cut-stream\n#answer a b c d e f")));
        json_object_set_new(body, "stream", json_true());
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        start(api, "POST", path_of(api), NULL, text, &r);
        free(text);
        wait_all(&r, 1);
        assert_true(r.has_error);
        json_t *events = parse_sse(api, r.body);
        assert_int_equal(json_array_size(events), 2);
        json_decref(events);
        resp_clear(&r);
        /* not streamed: a whole answer */
        assert_answer(api, "#cut-stream\n#answer whole", "whole");
    }
}

/* ---- tests: the request log ------------------------------------------------------------------ */

static json_t *get_log(void) {
    resp_t r = {0};
    start(OA, "GET", "/llm/requests", NULL, NULL, &r);
    wait_all(&r, 1);
    assert_int_equal(r.status, 200);
    json_t *log = parse(r.body);
    resp_clear(&r);
    assert_true(json_is_array(log));
    return log;
}

static void test_requests_log(void **state) {
    (void)state;
    resp_t r = {0};
    start(OA, "POST", "/llm/reset", NULL, "", &r);
    wait_all(&r, 1);
    assert_int_equal(r.status, 200);
    resp_clear(&r);
    json_t *log = get_log();
    assert_int_equal(json_array_size(log), 0);
    json_decref(log);

    json_t *oa_body = request(OA, json_pack("[o]", user("first")));
    json_t *an_body = request(AN, json_pack("[o]", user("second")));
    json_decref(post(OA, json_incref(oa_body), NULL, &r));
    resp_clear(&r);
    json_decref(post(AN, json_incref(an_body), NULL, &r));
    resp_clear(&r);
    start(AN, "POST", path_of(AN), NULL, "not json", &r);
    wait_all(&r, 1);
    resp_clear(&r);
    log = get_log();
    assert_int_equal(json_array_size(log), 3);
    json_t *e0 = json_array_get(log, 0), *e1 = json_array_get(log, 1), *e2 = json_array_get(log, 2);
    assert_string_equal(json_string_value(json_object_get(e0, "path")), "/v1/chat/completions");
    assert_string_equal(json_string_value(json_object_get(e1, "path")), "/v1/messages");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(e0, "headers"), "authorization")),
        "Bearer sk-test");
    json_t *h1 = json_object_get(e1, "headers");
    assert_string_equal(json_string_value(json_object_get(h1, "x-api-key")), "test-key");
    assert_string_equal(json_string_value(json_object_get(h1, "anthropic-version")), "2023-06-01");
    assert_string_equal(json_string_value(json_object_get(h1, "content-type")), "application/json");
    assert_true(json_equal(json_object_get(e0, "body"), oa_body));
    assert_true(json_equal(json_object_get(e1, "body"), an_body));
    assert_true(json_is_null(json_object_get(e2, "body")));
    assert_string_equal(json_string_value(json_object_get(e2, "raw")), "not json");
    json_decref(log);
    json_decref(oa_body);
    json_decref(an_body);

    /* the last 100 only */
    for (int i = 0; i < 105; i++) {
        char text[32];
        snprintf(text, sizeof text, "n%d", i);
        json_decref(post(OA, request(OA, json_pack("[o]", user(text))), NULL, &r));
        resp_clear(&r);
    }
    log = get_log();
    assert_int_equal(json_array_size(log), 100);
    json_t *first = json_object_get(json_array_get(log, 0), "body");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(first, "messages"), 0), "content")),
                        "n5");
    json_decref(log);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_response),
        cmocka_unit_test(test_anthropic_response),
        cmocka_unit_test(test_answer_and_json),
        cmocka_unit_test(test_tools_openai),
        cmocka_unit_test(test_tools_anthropic),
        cmocka_unit_test(test_rounds),
        cmocka_unit_test(test_badjson_then),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_delay),
        cmocka_unit_test(test_stream_openai),
        cmocka_unit_test(test_stream_anthropic),
        cmocka_unit_test(test_cut_stream),
        cmocka_unit_test(test_requests_log),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
