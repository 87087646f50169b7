/* test_http_client.c -- the HTTP client (host/net) against af-mockserver run as a child process:
 * methods, headers, bodies, limits, redirects, errors, streaming, cancellation, concurrency. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <jansson.h>

#include "net/http.h"
#include "mockserver.h"

/* ---- the mock server ------------------------------------------------------------------------- */

static pid_t server_pid;
static char base_url[64];

/* Waits up to ms for the process to exit; returns its wait status, or -1. */
static int wait_exit(pid_t pid, int ms) {
    for (int i = 0; i < ms / 10; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            return st;
        }
        usleep(10000);
    }
    return -1;
}

static int group_setup(void **state) {
    (void)state;
    server_pid = mockserver_start(base_url, sizeof base_url);
    return server_pid < 0 ? -1 : 0;
}

static int group_teardown(void **state) {
    (void)state;
    return mockserver_stop(server_pid);
}

/* ---- fixture: a loop and a client ------------------------------------------------------------ */

typedef struct fix_s {
    uv_loop_t loop;
    af_http_client_t *client;
} fix_t;

static int setup(void **state) {
    fix_t *f = calloc(1, sizeof *f);
    if (f == NULL || uv_loop_init(&f->loop) != 0) {
        return -1;
    }
    f->client = af_http_client_new(&f->loop);
    *state = f;
    return f->client != NULL ? 0 : -1;
}

static int teardown(void **state) {
    fix_t *f = *state;
    af_http_client_free(f->client);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&f->loop);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void on_guard(uv_timer_t *t) {
    (void)t;
}

/* Runs the loop until *counter reaches target or max_ms pass. */
static void run_until(uv_loop_t *loop, const int *counter, int target, uint64_t max_ms) {
    uv_timer_t guard;
    uv_timer_init(loop, &guard);
    uv_timer_start(&guard, on_guard, 10, 10);
    uv_update_time(loop);
    uint64_t deadline = uv_now(loop) + max_ms;
    while ((counter == NULL || *counter < target) && uv_now(loop) < deadline) {
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* ---- requests and what came back ------------------------------------------------------------- */

static int in_request_call; /* set around af_http_client_request: done must never run inside */
static int done_inside_call;

typedef struct result_s {
    int done;
    int status;
    char error[128];
    int has_error;
    char *body; /* copied; NULL when the response had none (streamed) */
    size_t body_len;
    char headers[4096]; /* "Name: value\n"... */
    int nheaders;
    char url[256];
    double elapsed_ms;
    /* streaming */
    int chunks;
    char *streamed;
    size_t streamed_len;
    int chunks_at_done;
    /* hooks */
    af_http_t *cancel_on_done;        /* cancelled from inside this request's done */
    af_http_client_t *free_on_done;   /* freed from inside this request's done */
    int at_chunk;                     /* on this chunk, on_data does what follows */
    af_http_t *cancel_at_chunk;       /* this request (itself or another) is cancelled */
    af_http_client_t *free_at_chunk;  /* this client is freed */
    af_http_client_t *chain_at_chunk; /* a request to chain is started on this client */
    af_http_client_t *chain_client;   /* done starts another request on it */
    struct result_s *chain;
} result_t;

static void result_clear(result_t *r) {
    free(r->body);
    free(r->streamed);
    memset(r, 0, sizeof *r);
}

static int start(af_http_client_t *c, const af_http_request_t *req, result_t *r, af_http_t **h);

static void on_done(void *ud, const af_http_response_t *res) {
    result_t *r = ud;
    if (in_request_call) {
        done_inside_call++;
    }
    r->done++;
    r->status = res->status;
    r->has_error = res->error != NULL;
    snprintf(r->error, sizeof r->error, "%s", res->error != NULL ? res->error : "");
    if (res->body != NULL) {
        r->body = malloc(res->body_len + 1);
        memcpy(r->body, res->body, res->body_len + 1); /* includes the promised NUL */
    }
    r->body_len = res->body_len;
    size_t off = 0;
    for (const char *const *h = res->headers; h != NULL && *h != NULL; h++) {
        int n = snprintf(r->headers + off, sizeof r->headers - off, "%s\n", *h);
        if (n > 0 && off + (size_t)n < sizeof r->headers) {
            off += (size_t)n;
        }
        r->nheaders++;
    }
    snprintf(r->url, sizeof r->url, "%s", res->effective_url != NULL ? res->effective_url : "");
    r->elapsed_ms = res->elapsed_ms;
    r->chunks_at_done = r->chunks;
    if (r->cancel_on_done != NULL) {
        af_http_client_cancel(r->cancel_on_done);
    }
    if (r->free_on_done != NULL) {
        af_http_client_free(r->free_on_done);
    }
    if (r->chain_client != NULL) {
        char url[128];
        snprintf(url, sizeof url, "%s/echo?chained=1", base_url);
        af_http_request_t req = {.size = sizeof req, .url = url};
        start(r->chain_client, &req, r->chain, NULL);
    }
}

static void on_data(void *ud, const char *chunk, size_t len) {
    result_t *r = ud;
    r->chunks++;
    r->streamed = realloc(r->streamed, r->streamed_len + len + 1);
    memcpy(r->streamed + r->streamed_len, chunk, len);
    r->streamed_len += len;
    r->streamed[r->streamed_len] = '\0';
    if (r->at_chunk > 0 && r->chunks == r->at_chunk) {
        if (r->cancel_at_chunk != NULL) {
            af_http_client_cancel(r->cancel_at_chunk);
        }
        if (r->chain_at_chunk != NULL) {
            char url[128];
            snprintf(url, sizeof url, "%s/echo?from=on_data", base_url);
            af_http_request_t req = {.size = sizeof req, .url = url};
            start(r->chain_at_chunk, &req, r->chain, NULL);
        }
        if (r->free_at_chunk != NULL) {
            af_http_client_free(r->free_at_chunk);
        }
    }
}

static int start(af_http_client_t *c, const af_http_request_t *req, result_t *r, af_http_t **h) {
    in_request_call = 1;
    int rc = af_http_client_request(c, req, on_done, r, h);
    in_request_call = 0;
    return rc;
}

static const char *url_of(const char *path) {
    static char urls[8][256];
    static int next;
    char *u = urls[next++ % 8];
    snprintf(u, 256, "%s%s", base_url, path);
    return u;
}

/* One request, run to completion. */
static void fetch(fix_t *f, af_http_request_t *req, result_t *r) {
    assert_int_equal(start(f->client, req, r, NULL), 0);
    run_until(&f->loop, &r->done, 1, 10000);
    assert_int_equal(r->done, 1);
    assert_int_equal(done_inside_call, 0);
}

static int has_header_line(const result_t *r, const char *line) {
    char needle[512];
    snprintf(needle, sizeof needle, "%s\n", line);
    for (const char *p = r->headers; (p = strcasestr(p, needle)) != NULL; p++) {
        if (p == r->headers || p[-1] == '\n') {
            return 1;
        }
    }
    return 0;
}

static json_t *body_json(const result_t *r) {
    json_error_t err;
    json_t *j = json_loadb(r->body, r->body_len, JSON_ALLOW_NUL, &err);
    if (j == NULL) {
        fail_msg("body is not JSON (%s): %.200s", err.text, r->body ? r->body : "(null)");
    }
    return j;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_get_echo(void **state) {
    fix_t *f = *state;
    result_t r = {0};
    const char *headers[] = {"X-Test: hello", "Accept: application/json", NULL};
    af_http_request_t req = {
        .size = sizeof req, .url = url_of("/echo?x=1&y=two"), .headers = headers};
    fetch(f, &req, &r);
    assert_int_equal(r.status, 200);
    assert_false(r.has_error);
    assert_true(has_header_line(&r, "Content-Type: application/json"));
    assert_string_equal(r.url, url_of("/echo?x=1&y=two"));
    assert_true(r.elapsed_ms > 0);
    assert_int_equal(r.body[r.body_len], '\0');
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/echo");
    assert_string_equal(json_string_value(json_object_get(j, "query")), "x=1&y=two");
    json_t *h = json_object_get(j, "headers");
    assert_string_equal(json_string_value(json_object_get(h, "x-test")), "hello");
    assert_string_equal(json_string_value(json_object_get(h, "accept")), "application/json");
    assert_null(json_object_get(h, "expect"));
    assert_string_equal(json_string_value(json_object_get(j, "body")), "");
    json_decref(j);
    result_clear(&r);
    assert_int_equal(af_http_client_active(f->client), 0);
}

static void test_post_and_methods(void **state) {
    fix_t *f = *state;
    result_t r = {0};
    const char *headers[] = {"Content-Type: application/json", NULL};
    const char *body = "{\"a\": 1}";
    af_http_request_t req = {.size = sizeof req,
                             .method = "POST",
                             .url = url_of("/echo"),
                             .headers = headers,
                             .body = body,
                             .body_len = strlen(body)};
    fetch(f, &req, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(j, "body")), body);
    json_t *h = json_object_get(j, "headers");
    assert_string_equal(json_string_value(json_object_get(h, "content-type")), "application/json");
    assert_string_equal(json_string_value(json_object_get(h, "content-length")), "8");
    json_decref(j);
    result_clear(&r);

    /* body_len is honoured: bytes past it (and embedded NULs) as given */
    req.body = "a\0bcdef";
    req.body_len = 3;
    fetch(f, &req, &r);
    j = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "body_len")), 3);
    json_decref(j);
    result_clear(&r);

    /* a large body goes without waiting for "100 Continue" */
    size_t big = 3 << 20;
    char *large = malloc(big);
    memset(large, 'b', big);
    req.body = large;
    req.body_len = big;
    fetch(f, &req, &r);
    free(large);
    assert_int_equal(r.status, 200);
    assert_true(r.elapsed_ms < 900);
    j = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "body_len")), (json_int_t)big);
    json_decref(j);
    result_clear(&r);

    const char *methods[] = {"PUT", "PATCH", "DELETE", "PURGE"};
    for (size_t i = 0; i < 4; i++) {
        af_http_request_t m = {.size = sizeof m, .method = methods[i], .url = url_of("/echo")};
        if (i == 0) {
            m.body = "put-body";
            m.body_len = 8;
        }
        fetch(f, &m, &r);
        assert_int_equal(r.status, 200);
        j = body_json(&r);
        assert_string_equal(json_string_value(json_object_get(j, "method")), methods[i]);
        if (i == 0) {
            assert_string_equal(json_string_value(json_object_get(j, "body")), "put-body");
        }
        if (i == 1) { /* PATCH without a body still says how long it is */
            json_t *ch = json_object_get(json_object_get(j, "headers"), "content-length");
            assert_string_equal(json_string_value(ch), "0");
        }
        json_decref(j);
        result_clear(&r);
    }

    af_http_request_t head = {.size = sizeof head, .method = "HEAD", .url = url_of("/echo")};
    fetch(f, &head, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(r.body, "");
    assert_non_null(strcasestr(r.headers, "Content-Length: "));
    result_clear(&r);
}

static void test_status_codes(void **state) {
    fix_t *f = *state;
    int codes[] = {201, 204, 400, 404, 418, 500, 503};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        result_t r = {0};
        char path[32];
        snprintf(path, sizeof path, "/status/%d", codes[i]);
        af_http_request_t req = {.size = sizeof req, .url = url_of(path)};
        fetch(f, &req, &r);
        assert_int_equal(r.status, codes[i]);
        assert_false(r.has_error); /* an HTTP error status is not a transfer error */
        if (codes[i] == 204) {
            assert_int_equal(r.body_len, 0);
        } else {
            json_t *j = body_json(&r);
            assert_int_equal(json_integer_value(json_object_get(j, "status")), codes[i]);
            json_decref(j);
        }
        result_clear(&r);
    }
    result_t r = {0};
    af_http_request_t req = {.size = sizeof req, .url = url_of("/no/such/route")};
    fetch(f, &req, &r);
    assert_int_equal(r.status, 404);
    result_clear(&r);
}

static void test_timeout(void **state) {
    fix_t *f = *state;
    result_t r = {0};
    af_http_request_t req = {.size = sizeof req, .url = url_of("/delay/3000"), .timeout_ms = 200};
    fetch(f, &req, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.error, "timeout");
    assert_true(r.elapsed_ms >= 150 && r.elapsed_ms < 2000);
    result_clear(&r);

    /* within the timeout */
    req.url = url_of("/delay/50");
    req.timeout_ms = 2000;
    fetch(f, &req, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "delayed_ms")), 50);
    json_decref(j);
    result_clear(&r);
}

static void test_redirects(void **state) {
    fix_t *f = *state;
    result_t r = {0};
    af_http_request_t req = {.size = sizeof req, .url = url_of("/redirect/3"), .max_redirects = 5};
    fetch(f, &req, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.url, url_of("/redirect/0"));
    assert_null(strcasestr(r.headers, "Location:")); /* headers of the final response only */
    json_t *j = body_json(&r);
    assert_true(json_is_true(json_object_get(j, "redirected")));
    json_decref(j);
    result_clear(&r);

    req.max_redirects = 2;
    fetch(f, &req, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.error, "too many redirects");
    result_clear(&r);

    req.max_redirects = 0; /* not followed: the redirect is the response */
    fetch(f, &req, &r);
    assert_int_equal(r.status, 302);
    assert_true(has_header_line(&r, "Location: /redirect/2"));
    assert_string_equal(r.url, url_of("/redirect/3"));
    result_clear(&r);
}

static void test_size_limit(void **state) {
    fix_t *f = *state;
    result_t r = {0};
    /* announced by Content-Length */
    af_http_request_t req = {
        .size = sizeof req, .url = url_of("/big/2000000"), .max_response_bytes = 1000000};
    fetch(f, &req, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.error, "response larger than 1000000 bytes");
    result_clear(&r);

    /* chunked: found while receiving */
    req.url = url_of("/sse/30");
    req.max_response_bytes = 100;
    fetch(f, &req, &r);
    assert_string_equal(r.error, "response larger than 100 bytes");
    result_clear(&r);

    /* the default: 16 MiB */
    req.url = url_of("/big/17000000");
    req.max_response_bytes = 0;
    fetch(f, &req, &r);
    assert_string_equal(r.error, "response larger than 16777216 bytes");
    result_clear(&r);

    /* at the limit is fine */
    req.url = url_of("/big/100000");
    req.max_response_bytes = 100000;
    fetch(f, &req, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 100000);
    assert_int_equal(strspn(r.body, "x"), 100000);
    result_clear(&r);
}

static void test_connection_refused(void **state) {
    fix_t *f = *state;
    /* a port that was free a moment ago */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &alen), 0);
    close(s);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", ntohs(a.sin_port));
    result_t r = {0};
    af_http_request_t req = {.size = sizeof req, .url = url};
    fetch(f, &req, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.error, "connection refused");
    assert_string_equal(r.body, "");
    result_clear(&r);
}

static void test_bad_arguments(void **state) {
    fix_t *f = *state;
    result_t r = {0};
    const char *bad_header[] = {"X-A: 1\r\nX-Injected: 2", NULL};
    af_http_request_t cases[] = {
        {.size = sizeof(af_http_request_t), .url = "ftp://127.0.0.1/"},
        {.size = sizeof(af_http_request_t), .url = "127.0.0.1/echo"},
        {.size = sizeof(af_http_request_t), .url = NULL},
        {.size = sizeof(af_http_request_t), .url = "http://127.0.0.1/a b"},
        {.size = sizeof(af_http_request_t), .method = "GE T", .url = url_of("/echo")},
        {.size = sizeof(af_http_request_t), .method = "", .url = url_of("/echo")},
        {.size = sizeof(af_http_request_t), .method = "G(T", .url = url_of("/echo")},
        {.size = sizeof(af_http_request_t), .url = url_of("/echo"), .headers = bad_header},
        {.size = 4, .url = url_of("/echo")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        af_http_t *h = NULL;
        assert_int_equal(start(f->client, &cases[i], &r, &h), AF_EARG);
        assert_null(h);
    }
    assert_int_equal(af_http_client_request(f->client, &cases[0], NULL, &r, NULL), AF_EARG);
    assert_int_equal(af_http_client_active(f->client), 0);
    run_until(&f->loop, NULL, 0, 100);
    assert_int_equal(r.done, 0);

    /* a caller built against a shorter request struct: the fields past its size are defaults */
    af_http_request_t old = {.size = offsetof(af_http_request_t, timeout_ms),
                             .url = url_of("/delay/30"),
                             .timeout_ms = 1,
                             .max_response_bytes = 1};
    fetch(f, &old, &r);
    assert_int_equal(r.status, 200);
    result_clear(&r);

    /* HTTPS with a bad peer fails as a transfer error, not at the call */
    af_http_request_t tls = {.size = sizeof tls, .url = "https://127.0.0.1:1/"};
    fetch(f, &tls, &r);
    assert_int_equal(r.status, 0);
    assert_true(r.has_error);
    result_clear(&r);
}

static void test_streaming_sse(void **state) {
    fix_t *f = *state;
    result_t r = {0};
    af_http_request_t req = {.size = sizeof req, .url = url_of("/sse/5"), .on_data = on_data};
    fetch(f, &req, &r);
    assert_int_equal(r.status, 200);
    assert_null(r.body); /* streamed, not kept */
    assert_true(has_header_line(&r, "Content-Type: text/event-stream"));
    assert_true(r.chunks >= 3);
    assert_int_equal(r.chunks_at_done, r.chunks); /* all chunks came before done */
    const char *expected = "data: {\"i\": 0}\n\ndata: {\"i\": 1}\n\ndata: {\"i\": 2}\n\n"
                           "data: {\"i\": 3}\n\ndata: {\"i\": 4}\n\ndata: [DONE]\n\n";
    assert_string_equal(r.streamed, expected);
    result_clear(&r);
}

static void test_cancel(void **state) {
    fix_t *f = *state;
    result_t slow = {0}, other = {0};
    af_http_t *h = NULL;
    af_http_request_t req = {.size = sizeof req, .url = url_of("/delay/300")};
    assert_int_equal(start(f->client, &req, &slow, &h), 0);
    assert_non_null(h);
    assert_int_equal(af_http_client_active(f->client), 1);
    run_until(&f->loop, NULL, 0, 50);
    af_http_client_cancel(h);
    assert_int_equal(af_http_client_active(f->client), 0);
    run_until(&f->loop, NULL, 0, 400);
    assert_int_equal(slow.done, 0);

    /* cancelled at once, before the loop ran */
    assert_int_equal(start(f->client, &req, &slow, &h), 0);
    af_http_client_cancel(h);
    run_until(&f->loop, NULL, 0, 50);
    assert_int_equal(slow.done, 0);

    /* the server is still fine */
    af_http_request_t echo = {.size = sizeof echo, .url = url_of("/echo")};
    fetch(f, &echo, &other);
    assert_int_equal(other.status, 200);
    result_clear(&other);

    /* cancelled from inside another request's done */
    result_t first = {0};
    af_http_request_t quick = {.size = sizeof quick, .url = url_of("/delay/10")};
    assert_int_equal(start(f->client, &req, &slow, &h), 0);
    first.cancel_on_done = h;
    assert_int_equal(start(f->client, &quick, &first, NULL), 0);
    run_until(&f->loop, &first.done, 1, 2000);
    assert_int_equal(first.done, 1);
    run_until(&f->loop, NULL, 0, 400);
    assert_int_equal(slow.done, 0);
    assert_int_equal(af_http_client_active(f->client), 0);
    result_clear(&first);

    /* a stream cancelled from inside its own on_data */
    result_t stream = {0};
    af_http_request_t sse = {.size = sizeof sse, .url = url_of("/sse/20"), .on_data = on_data};
    assert_int_equal(start(f->client, &sse, &stream, &stream.cancel_at_chunk), 0);
    stream.at_chunk = 2;
    run_until(&f->loop, NULL, 0, 400);
    assert_int_equal(stream.chunks, 2);
    assert_int_equal(stream.done, 0);
    assert_int_equal(af_http_client_active(f->client), 0);
    result_clear(&stream);

    /* a request started from inside a done completes */
    result_t a = {0}, b = {0};
    a.chain_client = f->client;
    a.chain = &b;
    assert_int_equal(start(f->client, &echo, &a, NULL), 0);
    run_until(&f->loop, &b.done, 1, 2000);
    assert_int_equal(a.done, 1);
    assert_int_equal(b.done, 1);
    assert_int_equal(b.status, 200);
    assert_int_equal(done_inside_call, 0);
    result_clear(&a);
    result_clear(&b);

    /* from inside on_data: cancel another request, start one */
    result_t chained = {0};
    assert_int_equal(start(f->client, &req, &slow, &stream.cancel_at_chunk), 0);
    stream.at_chunk = 1;
    stream.chain_at_chunk = f->client;
    stream.chain = &chained;
    sse.url = url_of("/sse/3");
    assert_int_equal(start(f->client, &sse, &stream, NULL), 0);
    run_until(&f->loop, &stream.done, 1, 2000);
    run_until(&f->loop, &chained.done, 1, 2000);
    assert_int_equal(stream.done, 1);
    assert_int_equal(stream.status, 200);
    assert_int_equal(chained.done, 1);
    assert_int_equal(chained.status, 200);
    run_until(&f->loop, NULL, 0, 400);
    assert_int_equal(slow.done, 0);
    assert_int_equal(af_http_client_active(f->client), 0);
    result_clear(&stream);
    result_clear(&chained);
}

#define CONCURRENT 1000

static void test_concurrent(void **state) {
    fix_t *f = *state;
    static result_t results[CONCURRENT];
    af_http_request_t req = {.size = sizeof req, .url = url_of("/delay/50"), .timeout_ms = 30000};
    uint64_t t0 = uv_hrtime();
    for (int i = 0; i < CONCURRENT; i++) {
        memset(&results[i], 0, sizeof results[i]);
        assert_int_equal(start(f->client, &req, &results[i], NULL), 0);
    }
    assert_int_equal(af_http_client_active(f->client), CONCURRENT);
    /* count completions as they come */
    int finished = 0;
    uv_update_time(&f->loop);
    uint64_t deadline = uv_now(&f->loop) + 30000;
    while (finished < CONCURRENT && uv_now(&f->loop) < deadline) {
        run_until(&f->loop, NULL, 0, 20);
        finished = 0;
        for (int i = 0; i < CONCURRENT; i++) {
            finished += results[i].done;
        }
    }
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    int ok = 0;
    for (int i = 0; i < CONCURRENT; i++) {
        ok += results[i].done == 1 && results[i].status == 200;
        if (results[i].done && results[i].status != 200 && ok < 5) {
            print_message("request %d: status %d error %s\n", i, results[i].status,
                          results[i].error);
        }
        result_clear(&results[i]);
    }
    print_message("%d concurrent /delay/50: %.2f s\n", CONCURRENT, secs);
    assert_int_equal(ok, CONCURRENT);
    assert_int_equal(af_http_client_active(f->client), 0);
    assert_true(secs < 20);
}

static void test_free_in_flight(void **state) {
    fix_t *f = *state;
    static result_t results[40];
    af_http_request_t delay = {.size = sizeof delay, .url = url_of("/delay/2000")};
    af_http_request_t sse = {.size = sizeof sse, .url = url_of("/sse/200"), .on_data = on_data};
    af_http_request_t post = {.size = sizeof post,
                              .method = "POST",
                              .url = url_of("/delay/2000"),
                              .body = "some body",
                              .body_len = 9};
    for (int i = 0; i < 40; i++) {
        memset(&results[i], 0, sizeof results[i]);
        af_http_request_t *req = i % 4 == 0 ? &sse : i % 4 == 1 ? &post : &delay;
        assert_int_equal(start(f->client, req, &results[i], NULL), 0);
    }
    run_until(&f->loop, NULL, 0, 150); /* connected, some streams flowing */
    int chunks = 0;
    for (int i = 0; i < 40; i += 4) {
        chunks += results[i].chunks;
    }
    assert_true(chunks > 0);
    af_http_client_free(f->client);
    f->client = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT); /* returns once every handle is closed */
    for (int i = 0; i < 40; i++) {
        assert_int_equal(results[i].done, 0);
        result_clear(&results[i]);
    }

    /* freed from inside a done, with others in flight */
    f->client = af_http_client_new(&f->loop);
    assert_non_null(f->client);
    result_t first = {0}, slow = {0};
    af_http_request_t quick = {.size = sizeof quick, .url = url_of("/delay/10")};
    assert_int_equal(start(f->client, &delay, &slow, NULL), 0);
    first.free_on_done = f->client;
    assert_int_equal(start(f->client, &quick, &first, NULL), 0);
    run_until(&f->loop, &first.done, 1, 2000);
    assert_int_equal(first.done, 1);
    f->client = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(slow.done, 0);
    result_clear(&first);
    result_clear(&slow);

    /* freed from inside an on_data */
    f->client = af_http_client_new(&f->loop);
    assert_non_null(f->client);
    result_t stream = {0};
    assert_int_equal(start(f->client, &delay, &slow, NULL), 0);
    stream.at_chunk = 2;
    stream.free_at_chunk = f->client;
    assert_int_equal(start(f->client, &sse, &stream, NULL), 0);
    f->client = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(stream.chunks, 2);
    assert_int_equal(stream.done, 0);
    assert_int_equal(slow.done, 0);
    result_clear(&stream);
}

static void test_mock_routes(void **state) {
    fix_t *f = *state;
    result_t r = {0};
    af_http_request_t req = {.size = sizeof req, .url = url_of("/flaky/t1/2")};
    for (int i = 1; i <= 3; i++) {
        fetch(f, &req, &r);
        assert_int_equal(r.status, i <= 2 ? 503 : 200);
        json_t *j = body_json(&r);
        assert_int_equal(json_integer_value(json_object_get(j, "attempts")), i);
        json_decref(j);
        result_clear(&r);
    }
    req.url = url_of("/retry-after/3");
    fetch(f, &req, &r);
    assert_int_equal(r.status, 429);
    assert_true(has_header_line(&r, "Retry-After: 3"));
    json_decref(body_json(&r));
    result_clear(&r);

    req.url = url_of("/bad-json");
    fetch(f, &req, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"truncated\": ");
    assert_null(json_loadb(r.body, r.body_len, 0, NULL));
    result_clear(&r);

    req.url = url_of("/requests");
    fetch(f, &req, &r);
    json_t *j = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "/flaky/t1/2")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "/bad-json")), 1);
    assert_true(json_integer_value(json_object_get(j, "/delay/50")) >= CONCURRENT);
    json_decref(j);
    result_clear(&r);
}

static void test_mock_shutdown(void **state) {
    fix_t *f = *state;
    int port = 0;
    pid_t pid = spawn_server(&port);
    assert_true(pid > 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/shutdown", port);
    result_t r = {0};
    af_http_request_t req = {.size = sizeof req, .url = url};
    fetch(f, &req, &r);
    assert_int_equal(r.status, 200);
    result_clear(&r);
    int st = wait_exit(pid, 5000);
    if (st < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        fail_msg("af-mockserver did not stop on GET /shutdown");
    }
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_and_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_streaming_sse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mock_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mock_shutdown, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
