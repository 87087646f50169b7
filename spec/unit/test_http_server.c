/* test_http_server.c -- the HTTP server and router (host/net) on one loop with the host's HTTP
 * client and raw sockets: routing, errors, limits, pipelining, async answers, timeouts, stop. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>
#include <jansson.h>

#include "net/http.h"
#include "net/http_server.h"

/* ---- handlers -------------------------------------------------------------------------------- */

static int g_cancel_calls;    /* on_cancel callbacks seen */
static int g_late_rc = 1;     /* what the late af_http_res_send returned (1: not yet) */
static int g_late_sent;       /* late answers sent */
static af_http_res_t *g_held; /* /hang's response, answered by the test */

static void h_versions(af_http_req_t *req, af_http_res_t *res, void *ud) {
    json_t *j = json_pack("{s:s?,s:s}", "id", af_http_req_param(req, "id"), "route", (char *)ud);
    af_http_res_send_json(res, 200, j);
    json_decref(j);
}

static void h_wildcard(af_http_req_t *req, af_http_res_t *res, void *ud) {
    json_t *j = json_pack("{s:s,s:s}", "rest", af_http_req_wildcard(req), "method",
                          af_http_req_method(req));
    af_http_res_send_json(res, 200, j);
    json_decref(j);
}

static void h_create(af_http_req_t *req, af_http_res_t *res, void *ud) {
    size_t len;
    const char *body = af_http_req_body(req, &len);
    af_error_t err = {0};
    json_t *in = af_json_loads(body, len, 32, &err);
    if (in == NULL) {
        af_http_res_send_error(res, 400, "invalid JSON: %s", err.msg);
        return;
    }
    json_t *out = json_pack("{s:o}", "got", in);
    af_http_res_add_header(res, "Location", "/api/workflows/1");
    af_http_res_send_json(res, 201, out);
    json_decref(out);
}

static void h_query(af_http_req_t *req, af_http_res_t *res, void *ud) {
    const char *a = af_http_req_query_param(req, "a");
    const char *b = af_http_req_query_param(req, "b");
    const char *c = af_http_req_query_param(req, "c");
    const char *x = af_http_req_header(req, "x-test");
    json_t *j = json_pack("{s:s?,s:s?,s:s?,s:s?,s:s,s:s,s:s,s:b,s:i}", "a", a, "b", b, "c", c, "x",
                          x, "raw", af_http_req_query(req), "path", af_http_req_path(req), "remote",
                          af_http_req_remote_addr(req), "missing",
                          af_http_req_query_param(req, "zz") == NULL, "nheaders",
                          (int)af_http_req_header_count(req));
    af_http_res_send_json(res, 200, j);
    json_decref(j);
}

static void h_echo(af_http_req_t *req, af_http_res_t *res, void *ud) {
    size_t len;
    const char *body = af_http_req_body(req, &len);
    af_http_res_add_header(res, "Content-Type", "text/plain");
    assert_int_equal(af_http_res_set_body(res, body, len), 0);
    af_http_res_send(res);
}

typedef struct slow_s {
    uv_timer_t timer;
    af_http_res_t *res;
} slow_t;

static void on_slow_closed(uv_handle_t *h) {
    free(h->data);
}

static void on_slow_timer(uv_timer_t *t) {
    slow_t *sl = t->data;
    if (af_http_res_cancelled(sl->res)) {
        g_late_rc = af_http_res_send(sl->res);
    } else {
        char *text = strdup("slow answer");
        af_http_res_steal_body(sl->res, text, strlen(text));
        g_late_rc = af_http_res_send(sl->res);
    }
    g_late_sent++;
    uv_close((uv_handle_t *)&sl->timer, on_slow_closed);
}

static void on_cancel_count(af_http_res_t *res, void *ud) {
    g_cancel_calls++;
}

static void h_slow(af_http_req_t *req, af_http_res_t *res, void *ud) {
    uv_loop_t *loop = ud;
    const char *ms = af_http_req_query_param(req, "ms");
    slow_t *sl = calloc(1, sizeof *sl);
    sl->res = res;
    uv_timer_init(loop, &sl->timer);
    sl->timer.data = sl;
    uv_timer_start(&sl->timer, on_slow_timer, ms != NULL ? strtoull(ms, NULL, 10) : 50, 0);
    af_http_res_on_cancel(res, on_cancel_count, NULL);
}

static void h_hang(af_http_req_t *req, af_http_res_t *res, void *ud) {
    g_held = res;
    af_http_res_on_cancel(res, on_cancel_count, NULL);
}

static void h_close(af_http_req_t *req, af_http_res_t *res, void *ud) {
    assert_int_equal(af_http_res_add_header(res, "Connection", "close"), 0);
    assert_int_equal(af_http_res_add_header(res, "Content-Length", "3"), AF_EINVAL);
    assert_int_equal(af_http_res_add_header(res, "Bad Name", "x"), AF_EINVAL);
    assert_int_equal(af_http_res_add_header(res, "X-Inject", "a\r\nb: c"), AF_EINVAL);
    af_http_res_set_body(res, "bye", 3);
    af_http_res_send(res);
}

static void h_big(af_http_req_t *req, af_http_res_t *res, void *ud) {
    size_t len = (size_t)64 << 10;
    char *body = malloc(len);
    memset(body, 'b', len);
    af_http_res_steal_body(res, body, len);
    af_http_res_send(res);
}

static void h_nocontent(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_http_res_set_status(res, 204);
    af_http_res_send(res);
}

/* ---- fixture --------------------------------------------------------------------------------- */

typedef struct fix_s {
    uv_loop_t loop;
    af_http_client_t *client;
    af_http_router_t *router;
    af_http_server_t *server;
    int port;
    int stopped;
} fix_t;

static void on_stopped(af_http_server_t *s, void *ud) {
    fix_t *f = ud;
    f->stopped++;
}

static af_http_router_t *make_router(uv_loop_t *loop) {
    af_http_router_t *r = af_http_router_new();
    assert_non_null(r);
    assert_int_equal(
        af_http_router_add(r, "GET", "/api/workflows/:id/versions", h_versions, "versions"), 0);
    assert_int_equal(af_http_router_add(r, "GET", "/api/workflows/:id", h_versions, "one"), 0);
    assert_int_equal(af_http_router_add(r, "GET", "/api/workflows/special", h_versions, "special"),
                     0);
    assert_int_equal(af_http_router_add(r, "POST", "/api/workflows", h_create, NULL), 0);
    assert_int_equal(af_http_router_add(r, NULL, "/webhooks/*", h_wildcard, NULL), 0);
    assert_int_equal(af_http_router_add(r, "GET", "/query", h_query, NULL), 0);
    assert_int_equal(af_http_router_add(r, "POST", "/echo", h_echo, NULL), 0);
    assert_int_equal(af_http_router_add(r, "GET", "/slow", h_slow, loop), 0);
    assert_int_equal(af_http_router_add(r, "GET", "/hang", h_hang, NULL), 0);
    assert_int_equal(af_http_router_add(r, "GET", "/close", h_close, NULL), 0);
    assert_int_equal(af_http_router_add(r, "DELETE", "/nocontent", h_nocontent, NULL), 0);
    assert_int_equal(af_http_router_add(r, "GET", "/big", h_big, NULL), 0);
    return r;
}

static void start_server(fix_t *f, const af_http_server_config_t *cfg) {
    f->server = af_http_server_new(&f->loop, cfg, af_http_router_handle, f->router);
    assert_non_null(f->server);
    af_error_t err = {0};
    assert_int_equal(af_http_server_listen(f->server, "127.0.0.1", 0, &err), 0);
    f->port = af_http_server_port(f->server);
    assert_true(f->port > 0);
}

static int setup(void **state) {
    fix_t *f = calloc(1, sizeof *f);
    if (f == NULL || uv_loop_init(&f->loop) != 0) {
        return -1;
    }
    f->client = af_http_client_new(&f->loop);
    f->router = make_router(&f->loop);
    g_cancel_calls = 0;
    g_late_rc = 1;
    g_late_sent = 0;
    g_held = NULL;
    *state = f;
    return f->client != NULL ? 0 : -1;
}

static void on_guard(uv_timer_t *t) {
    (void)t;
}

/* Runs the loop until *counter reaches target or max_ms pass. */
static void run_until(fix_t *f, const int *counter, int target, uint64_t max_ms) {
    uv_timer_t guard;
    uv_timer_init(&f->loop, &guard);
    uv_timer_start(&guard, on_guard, 5, 5);
    uv_update_time(&f->loop);
    uint64_t deadline = uv_now(&f->loop) + max_ms;
    while ((counter == NULL || *counter < target) && uv_now(&f->loop) < deadline) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static int teardown(void **state) {
    fix_t *f = *state;
    if (f->server != NULL) {
        if (af_http_server_stop(f->server, on_stopped, f) == 0) {
            run_until(f, &f->stopped, 1, 5000);
        }
        af_http_server_free(f->server);
    }
    af_http_client_free(f->client);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    af_http_router_free(f->router);
    int rc = uv_loop_close(&f->loop);
    if (rc != 0) {
        fprintf(stderr, "loop still has handles\n");
    }
    free(f);
    return rc == 0 ? 0 : -1;
}

/* ---- the client side ------------------------------------------------------------------------- */

typedef struct result_s {
    int done;
    int status;
    char *body;
    size_t body_len;
    char headers[4096];
} result_t;

static void on_done(void *ud, const af_http_response_t *res) {
    result_t *r = ud;
    r->done++;
    r->status = res->status;
    if (res->body != NULL) {
        r->body = malloc(res->body_len + 1);
        memcpy(r->body, res->body, res->body_len + 1);
    }
    r->body_len = res->body_len;
    size_t off = 0;
    for (const char *const *h = res->headers; h != NULL && *h != NULL; h++) {
        int n = snprintf(r->headers + off, sizeof r->headers - off, "%s\n", *h);
        if (n > 0 && off + (size_t)n < sizeof r->headers) {
            off += (size_t)n;
        }
    }
}

static void result_clear(result_t *r) {
    free(r->body);
    memset(r, 0, sizeof *r);
}

static void start_req(fix_t *f, const char *method, const char *path, const char *body,
                      const char *const *headers, result_t *r) {
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", f->port, path);
    af_http_request_t req = {.size = sizeof req,
                             .method = method,
                             .url = url,
                             .headers = headers,
                             .body = body,
                             .body_len = body != NULL ? strlen(body) : 0};
    assert_int_equal(af_http_client_request(f->client, &req, on_done, r, NULL), 0);
}

static void fetch(fix_t *f, const char *method, const char *path, const char *body,
                  const char *const *headers, result_t *r) {
    start_req(f, method, path, body, headers, r);
    run_until(f, &r->done, 1, 5000);
    assert_int_equal(r->done, 1);
}

static json_t *body_json(const result_t *r) {
    assert_non_null(r->body);
    json_error_t e;
    json_t *j = json_loadb(r->body, r->body_len, 0, &e);
    if (j == NULL) {
        fail_msg("not JSON: %s", r->body);
    }
    return j;
}

static const char *jstr(json_t *j, const char *path1, const char *path2) {
    json_t *v = json_object_get(j, path1);
    if (path2 != NULL) {
        v = json_object_get(v, path2);
    }
    return json_string_value(v);
}

static int has_header(const result_t *r, const char *line) {
    char want[256];
    snprintf(want, sizeof want, "%s\n", line);
    for (const char *p = r->headers; (p = strcasestr(p, want)) != NULL; p++) {
        if (p == r->headers || p[-1] == '\n') {
            return 1;
        }
    }
    return 0;
}

/* ---- raw sockets ----------------------------------------------------------------------------- */

typedef struct raw_s {
    int fd;
    char data[1 << 20];
    size_t len;
    int closed; /* the server closed (recv returned 0 or an error) */
} raw_t;

static raw_t *raw_open(fix_t *f) {
    raw_t *r = calloc(1, sizeof *r);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(r->fd, (struct sockaddr *)&a, sizeof a), 0);
    return r;
}

static void raw_close(raw_t *r) {
    if (r != NULL) {
        close(r->fd);
        free(r);
    }
}

static void raw_pump(fix_t *f, raw_t *r) {
    uv_run(&f->loop, UV_RUN_NOWAIT);
    while (!r->closed && r->len < sizeof r->data - 1) {
        ssize_t n = recv(r->fd, r->data + r->len, sizeof r->data - 1 - r->len, MSG_DONTWAIT);
        if (n > 0) {
            r->len += (size_t)n;
            r->data[r->len] = '\0';
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            r->closed = 1;
        } else {
            break;
        }
    }
}

/* Sends everything, running the loop meanwhile (the server reads on this same thread). */
static void raw_send(fix_t *f, raw_t *r, const char *data, size_t len) {
    size_t off = 0;
    for (int spins = 0; off < len && spins < 100000; spins++) {
        ssize_t n = send(r->fd, data + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            break; /* the server closed: what it answered is still readable */
        }
        raw_pump(f, r);
        if (n <= 0) {
            usleep(200);
        }
    }
}

static void raw_sends(fix_t *f, raw_t *r, const char *text) {
    raw_send(f, r, text, strlen(text));
}

typedef struct resp_s {
    int status;
    const char *head; /* status line and headers, not NUL-terminated */
    size_t head_len;
    const char *body;
    size_t body_len;
} resp_t;

/* Splits what was received into complete responses (HEAD ones when head_first: no body). */
static int raw_responses(const raw_t *r, resp_t *out, int max, int head_first) {
    size_t off = 0;
    int n = 0;
    while (off < r->len && n < max) {
        const char *start = r->data + off;
        const char *end = strstr(start, "\r\n\r\n");
        if (end == NULL) {
            break;
        }
        size_t hlen = (size_t)(end + 4 - start);
        int status = strncmp(start, "HTTP/1.1 ", 9) == 0 ? atoi(start + 9) : 0;
        size_t cl = 0; /* bounded searches: the buffer can hold thousands of responses */
        const char *p = memmem(start, hlen, "\r\nContent-Length: ", 18);
        if (p != NULL) {
            cl = strtoul(p + 18, NULL, 10);
        }
        if (status < 200 || (head_first && n == 0)) {
            cl = 0;
        }
        if (off + hlen + cl > r->len) {
            break;
        }
        out[n] = (resp_t){status, start, hlen, start + hlen, cl};
        n++;
        off += hlen + cl;
    }
    return n;
}

/* Pumps until n responses came (or the server closed, with close_too), or ms pass. */
static int raw_wait(fix_t *f, raw_t *r, int n, int close_too, int ms) {
    resp_t tmp[16];
    for (int i = 0; i < ms; i++) {
        raw_pump(f, r);
        int got = raw_responses(r, tmp, 16, 0);
        if (got >= n && (!close_too || r->closed)) {
            return got;
        }
        if (r->closed && got < n) {
            return got;
        }
        usleep(1000);
    }
    return raw_responses(r, tmp, 16, 0);
}

static int head_has(const resp_t *rs, const char *line) {
    char want[256];
    snprintf(want, sizeof want, "\r\n%s\r\n", line);
    const char *p = strcasestr(rs->head, want);
    return p != NULL && (size_t)(p - rs->head) < rs->head_len;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_routing(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    struct {
        const char *method, *path, *key, *want, *route;
    } cases[] = {
        {"GET", "/api/workflows/42/versions", "id", "42", "versions"},
        {"GET", "/api/workflows/special", "route", "special", NULL},
        {"GET", "/api/workflows/a%20b", "id", "a b", "one"},
        {"GET", "/api/workflows/7?x=1", "id", "7", "one"},
        {"GET", "/webhooks/github/push", "rest", "github/push", NULL},
        {"POST", "/webhooks/", "rest", "", NULL},
        {"PUT", "/webhooks", "rest", "", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        result_t r = {0};
        fetch(f, cases[i].method, cases[i].path, NULL, NULL, &r);
        assert_int_equal(r.status, 200);
        assert_true(has_header(&r, "Content-Type: application/json"));
        json_t *j = body_json(&r);
        assert_string_equal(jstr(j, cases[i].key, NULL), cases[i].want);
        if (cases[i].route != NULL) {
            assert_string_equal(jstr(j, "route", NULL), cases[i].route);
        }
        json_decref(j);
        result_clear(&r);
    }
}

static void test_not_found_and_method(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    result_t r = {0};
    fetch(f, "GET", "/nope", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    json_t *j = body_json(&r);
    assert_string_equal(jstr(j, "error", "code"), "not_found");
    assert_non_null(jstr(j, "error", "message"));
    json_decref(j);
    result_clear(&r);

    fetch(f, "DELETE", "/api/workflows/42", NULL, NULL, &r);
    assert_int_equal(r.status, 405);
    assert_true(has_header(&r, "Allow: GET, HEAD"));
    j = body_json(&r);
    assert_string_equal(jstr(j, "error", "code"), "method_not_allowed");
    json_decref(j);
    result_clear(&r);

    fetch(f, "PUT", "/api/workflows", "{}", NULL, &r);
    assert_int_equal(r.status, 405);
    assert_true(has_header(&r, "Allow: POST"));
    result_clear(&r);

    fetch(f, "GET", "/api/workflows/1/versions/extra", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    result_clear(&r);

    fetch(f, "DELETE", "/nocontent", NULL, NULL, &r);
    assert_int_equal(r.status, 204);
    result_clear(&r);
}

static void test_json_bodies(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    result_t r = {0};
    fetch(f, "POST", "/api/workflows", "{\"name\":\"wf\",\"n\":1.5,\"tags\":[\"a\"]}", hdrs, &r);
    assert_int_equal(r.status, 201);
    assert_true(has_header(&r, "Location: /api/workflows/1"));
    json_t *j = body_json(&r);
    assert_string_equal(jstr(j, "got", "name"), "wf");
    assert_true(json_real_value(json_object_get(json_object_get(j, "got"), "n")) == 1.5);
    json_decref(j);
    result_clear(&r);

    fetch(f, "POST", "/api/workflows", "{nope", hdrs, &r);
    assert_int_equal(r.status, 400);
    j = body_json(&r);
    assert_string_equal(jstr(j, "error", "code"), "bad_request");
    json_decref(j);
    result_clear(&r);
}

static void test_query_and_headers(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    const char *hdrs[] = {"X-Test: Hello  ", "X-Empty:", NULL};
    result_t r = {0};
    fetch(f, "GET", "/query?a=1%202&b=x+y&c&a=second", NULL, hdrs, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(jstr(j, "a", NULL), "1 2");
    assert_string_equal(jstr(j, "b", NULL), "x y");
    assert_string_equal(jstr(j, "c", NULL), "");
    assert_string_equal(jstr(j, "x", NULL), "Hello");
    assert_string_equal(jstr(j, "raw", NULL), "a=1%202&b=x+y&c&a=second");
    assert_string_equal(jstr(j, "path", NULL), "/query");
    assert_string_equal(jstr(j, "remote", NULL), "127.0.0.1");
    assert_true(json_is_true(json_object_get(j, "missing")));
    json_decref(j);
    result_clear(&r);
}

static void test_keep_alive(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    for (int i = 0; i < 50; i++) {
        result_t r = {0};
        char path[64];
        snprintf(path, sizeof path, "/api/workflows/%d", i);
        fetch(f, "GET", path, NULL, NULL, &r);
        assert_int_equal(r.status, 200);
        result_clear(&r);
    }
    af_http_server_stats_t st;
    af_http_server_stats(f->server, &st);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.requests, 50);
    assert_int_equal(st.open, 1);
}

static void test_async_answer(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    result_t r = {0}, fast = {0};
    uv_update_time(&f->loop);
    uint64_t t0 = uv_now(&f->loop);
    start_req(f, "GET", "/slow?ms=120", NULL, NULL, &r);
    run_until(f, &r.done, 1, 5000);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "slow answer");
    assert_true(uv_now(&f->loop) - t0 >= 100);
    assert_int_equal(g_late_rc, 0);
    /* other connections are served while one waits */
    result_clear(&r);
    start_req(f, "GET", "/slow?ms=300", NULL, NULL, &r);
    start_req(f, "GET", "/api/workflows/1", NULL, NULL, &fast);
    run_until(f, &fast.done, 1, 5000);
    assert_int_equal(fast.status, 200);
    assert_int_equal(r.done, 0);
    run_until(f, &r.done, 1, 5000);
    assert_int_equal(r.status, 200);
    result_clear(&r);
    result_clear(&fast);
}

static void test_pipelining(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    raw_t *r = raw_open(f);
    raw_sends(f, r,
              "GET /slow?ms=60 HTTP/1.1\r\nHost: x\r\n\r\n"
              "GET /api/workflows/1 HTTP/1.1\r\nHost: x\r\n\r\n"
              "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
              "GET /api/workflows/2 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(raw_wait(f, r, 4, 0, 3000), 4);
    resp_t rs[4];
    assert_int_equal(raw_responses(r, rs, 4, 0), 4);
    assert_true(rs[0].body_len == 11 && memcmp(rs[0].body, "slow answer", 11) == 0);
    assert_non_null(strstr(rs[1].body, "\"id\":\"1\""));
    assert_true(rs[2].body_len == 5 && memcmp(rs[2].body, "hello", 5) == 0);
    assert_non_null(strstr(rs[3].body, "\"id\":\"2\""));
    assert_false(r->closed);
    raw_close(r);
}

/* More pipelined input than the server buffers while a handler waits: it stops reading, then
 * catches up once the answer is sent; every answer comes, in order. */
static void test_pipelining_backpressure(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    enum { N = 3000 };
    size_t cap = (size_t)N * 64 + 128, n = 0;
    char *all = malloc(cap);
    n += (size_t)sprintf(all + n, "GET /slow?ms=50 HTTP/1.1\r\n\r\n");
    for (int i = 0; i < N; i++) {
        n += (size_t)sprintf(all + n, "GET /api/workflows/%d HTTP/1.1\r\n\r\n", i);
    }
    raw_t *r = raw_open(f);
    raw_send(f, r, all, n);
    free(all);
    resp_t *rs = malloc((N + 1) * sizeof *rs);
    int got = 0;
    for (int i = 0; i < 5000 && got < N + 1; i++) {
        raw_pump(f, r);
        got = raw_responses(r, rs, N + 1, 0);
        usleep(got < N + 1 ? 500 : 0);
    }
    assert_int_equal(got, N + 1);
    assert_true(rs[0].body_len == 11 && memcmp(rs[0].body, "slow answer", 11) == 0);
    char want[64];
    snprintf(want, sizeof want, "\"id\":\"%d\"", N - 1);
    assert_non_null(strstr(rs[N].body, want));
    free(rs);
    raw_close(r);
}

/* A client that pipelines and does not read: the server stops taking requests instead of queueing
 * answers without bound, and goes on once the client reads. */
static void test_write_backpressure(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    enum { N = 200 };
    raw_t *r = raw_open(f);
    const char *one = "GET /big HTTP/1.1\r\n\r\n";
    size_t sent = 0, total = N * strlen(one);
    for (int i = 0; i < 500; i++) { /* send, never read */
        while (sent < total) {
            ssize_t n = send(r->fd, one + sent % strlen(one), strlen(one) - sent % strlen(one),
                             MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n <= 0) {
                break;
            }
            sent += (size_t)n;
        }
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(500);
    }
    assert_int_equal(sent, total);
    af_http_server_stats_t st;
    af_http_server_stats(f->server, &st);
    assert_true(st.requests < N);
    /* now read: every answer comes */
    size_t got = 0, need = (size_t)N * (64 << 10);
    for (int i = 0; i < 20000 && (got < need || st.requests < N); i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        char buf[65536];
        ssize_t n;
        while ((n = recv(r->fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
            got += (size_t)n;
        }
        if (n == 0) {
            break;
        }
        af_http_server_stats(f->server, &st);
        usleep(100);
    }
    af_http_server_stats(f->server, &st);
    assert_int_equal(st.requests, N);
    assert_true(got >= (size_t)N * (64 << 10));
    raw_close(r);
}

static void test_chunked_body(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    raw_t *r = raw_open(f);
    raw_sends(f, r,
              "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
    assert_int_equal(raw_wait(f, r, 1, 0, 3000), 1);
    /* the same in small pieces */
    const char *msg = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    for (const char *p = msg; *p != '\0'; p++) {
        raw_send(f, r, p, 1);
    }
    assert_int_equal(raw_wait(f, r, 2, 0, 3000), 2);
    resp_t rs[2];
    raw_responses(r, rs, 2, 0);
    assert_int_equal(rs[0].status, 200);
    assert_true(rs[0].body_len == 11 && memcmp(rs[0].body, "hello world", 11) == 0);
    assert_true(rs[1].body_len == 5 && memcmp(rs[1].body, "abcde", 5) == 0);
    raw_close(r);
}

static void expect_error(fix_t *f, const char *request, int status, const char *code) {
    raw_t *r = raw_open(f);
    raw_sends(f, r, request);
    raw_wait(f, r, 1, 1, 3000);
    resp_t rs[1];
    assert_int_equal(raw_responses(r, rs, 1, 0), 1);
    assert_int_equal(rs[0].status, status);
    assert_true(head_has(&rs[0], "Connection: close"));
    char want[64];
    snprintf(want, sizeof want, "\"code\":\"%s\"", code);
    assert_non_null(strstr(rs[0].body, want));
    assert_true(r->closed);
    raw_close(r);
}

static void test_malformed(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    expect_error(f, "GARBAGE\r\n\r\n", 400, "bad_request");
    expect_error(f, "GET / HTTP/1.1\r\nHost x\r\n\r\n", 400, "bad_request");
    expect_error(f, "GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400, "bad_request");
    expect_error(f, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
                 "bad_request");
    expect_error(f, "GET / HTTP/1.1\r\nExpect: something\r\n\r\n", 417, "expectation_failed");
}

static void test_header_limits(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    size_t big = 20 << 10;
    char *req = malloc(big + 128);
    int n = sprintf(req, "GET / HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'a', big);
    strcpy(req + n + big, "\r\n\r\n");
    expect_error(f, req, 431, "headers_too_large");
    /* too many headers */
    n = sprintf(req, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 101; i++) {
        n += sprintf(req + n, "X-H%d: v\r\n", i);
    }
    strcpy(req + n, "\r\n");
    expect_error(f, req, 431, "headers_too_large");
    /* 100 headers are fine */
    n = sprintf(req, "GET /query HTTP/1.1\r\n");
    for (int i = 0; i < 100; i++) {
        n += sprintf(req + n, "X-H%d: v\r\n", i);
    }
    strcpy(req + n, "\r\n");
    raw_t *r = raw_open(f);
    raw_sends(f, r, req);
    assert_int_equal(raw_wait(f, r, 1, 0, 3000), 1);
    assert_non_null(strstr(r->data, "\"nheaders\":100"));
    raw_close(r);
    free(req);
}

static void test_body_limits(void **state) {
    fix_t *f = *state;
    af_http_server_config_t cfg = {.max_body_bytes = 1000};
    start_server(f, &cfg);
    expect_error(f, "POST /echo HTTP/1.1\r\nContent-Length: 2000\r\n\r\n", 413,
                 "payload_too_large");
    /* chunked: found out while reading */
    char req[4096];
    int n = sprintf(req, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        n += sprintf(req + n, "190\r\n");
        memset(req + n, 'x', 400);
        n += 400;
        n += sprintf(req + n, "\r\n");
    }
    strcpy(req + n, "0\r\n\r\n");
    expect_error(f, req, 413, "payload_too_large");
    /* exactly the limit is fine */
    n = sprintf(req, "POST /echo HTTP/1.1\r\nContent-Length: 1000\r\n\r\n");
    memset(req + n, 'y', 1000);
    req[n + 1000] = '\0';
    raw_t *r = raw_open(f);
    raw_sends(f, r, req);
    assert_int_equal(raw_wait(f, r, 1, 0, 3000), 1);
    resp_t rs[1];
    raw_responses(r, rs, 1, 0);
    assert_int_equal(rs[0].status, 200);
    assert_int_equal(rs[0].body_len, 1000);
    raw_close(r);
}

static void test_default_body_limit(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    size_t len = (1 << 20) + 1;
    char *req = malloc(len + 128);
    int n = sprintf(req, "POST /echo HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", len);
    memset(req + n, 'z', len);
    raw_t *r = raw_open(f);
    raw_send(f, r, req, (size_t)n + len);
    raw_wait(f, r, 1, 1, 3000);
    resp_t rs[1];
    assert_int_equal(raw_responses(r, rs, 1, 0), 1);
    assert_int_equal(rs[0].status, 413);
    assert_true(r->closed);
    raw_close(r);
    free(req);
}

static void test_disconnect_before_answer(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    raw_t *r = raw_open(f);
    raw_sends(f, r, "GET /slow?ms=80 HTTP/1.1\r\nHost: x\r\n\r\n");
    af_http_server_stats_t st;
    for (int i = 0; i < 1000; i++) {
        raw_pump(f, r);
        af_http_server_stats(f->server, &st);
        if (st.answering == 1) {
            break;
        }
        usleep(1000);
    }
    assert_int_equal(st.answering, 1);
    raw_close(r);
    run_until(f, &g_cancel_calls, 1, 2000);
    assert_int_equal(g_cancel_calls, 1);
    run_until(f, &g_late_sent, 1, 2000);
    assert_int_equal(g_late_rc, AF_ECANCELLED);
    af_http_server_stats(f->server, &st);
    assert_int_equal(st.answering, 0);
    assert_int_equal(st.open, 0);
}

static void test_head(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    raw_t *r = raw_open(f);
    raw_sends(f, r, "HEAD /api/workflows/7 HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < 2000 && strstr(r->data, "\r\n\r\n") == NULL; i++) {
        raw_pump(f, r);
        usleep(1000);
    }
    resp_t rs[2];
    assert_int_equal(raw_responses(r, rs, 1, 1), 1);
    assert_int_equal(rs[0].status, 200);
    assert_non_null(strcasestr(r->data, "Content-Length: 2")); /* {"id":"7","route":"one"} */
    assert_true(rs[0].head_len == r->len);                     /* no body bytes */
    /* the connection is still in step */
    raw_sends(f, r, "GET /api/workflows/8 HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < 2000 && raw_responses(r, rs, 2, 1) < 2; i++) {
        raw_pump(f, r);
        usleep(1000);
    }
    assert_int_equal(raw_responses(r, rs, 2, 1), 2);
    assert_non_null(strstr(rs[1].body, "\"id\":\"8\""));
    raw_close(r);
}

static void test_expect_continue(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    raw_t *r = raw_open(f);
    raw_sends(
        f, r,
        "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    for (int i = 0; i < 2000 && strstr(r->data, "\r\n\r\n") == NULL; i++) {
        raw_pump(f, r);
        usleep(1000);
    }
    assert_string_equal(r->data, "HTTP/1.1 100 Continue\r\n\r\n");
    raw_sends(f, r, "12345");
    assert_int_equal(raw_wait(f, r, 2, 0, 3000), 2);
    resp_t rs[2];
    raw_responses(r, rs, 2, 0);
    assert_int_equal(rs[0].status, 100);
    assert_int_equal(rs[1].status, 200);
    assert_true(rs[1].body_len == 5 && memcmp(rs[1].body, "12345", 5) == 0);
    raw_close(r);
    /* too large: 413 and no 100 */
    expect_error(f,
                 "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n",
                 413, "payload_too_large");
    /* through the client (curl sends Expect for larger bodies) */
    char *body = malloc(200000);
    memset(body, 'q', 199999);
    body[199999] = '\0';
    const char *hdrs[] = {"Expect: 100-continue", NULL};
    result_t res = {0};
    fetch(f, "POST", "/echo", body, hdrs, &res);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.body_len, 199999);
    result_clear(&res);
    free(body);
}

static void test_idle_and_read_timeouts(void **state) {
    fix_t *f = *state;
    af_http_server_config_t cfg = {.idle_timeout_ms = 100, .read_timeout_ms = 150};
    start_server(f, &cfg);
    raw_t *r = raw_open(f);
    raw_sends(f, r, "GET /api/workflows/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(raw_wait(f, r, 1, 0, 3000), 1);
    assert_false(r->closed);
    raw_wait(f, r, 1, 1, 1000); /* until closed */
    assert_true(r->closed);
    raw_close(r);
    /* a connection that never sends anything is idle too */
    r = raw_open(f);
    raw_wait(f, r, 1, 1, 1000);
    assert_true(r->closed);
    assert_int_equal(r->len, 0);
    raw_close(r);
    /* a request that does not finish in time: 408 */
    expect_error(f, "GET /api/workflows/1 HTTP/1.1\r\nHost: x\r\n", 408, "request_timeout");
    af_http_server_stats_t st;
    af_http_server_stats(f->server, &st);
    run_until(f, NULL, 0, 50);
    af_http_server_stats(f->server, &st);
    assert_int_equal(st.open, 0);
}

static void test_http10_and_close(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    raw_t *r = raw_open(f);
    raw_sends(f, r, "GET /api/workflows/1 HTTP/1.0\r\n\r\n");
    raw_wait(f, r, 1, 1, 3000);
    resp_t rs[2];
    assert_int_equal(raw_responses(r, rs, 1, 0), 1);
    assert_int_equal(rs[0].status, 200);
    assert_true(head_has(&rs[0], "Connection: close"));
    assert_true(r->closed);
    raw_close(r);
    /* HTTP/1.0 keep-alive */
    r = raw_open(f);
    raw_sends(f, r, "GET /api/workflows/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(raw_wait(f, r, 1, 0, 3000), 1);
    raw_responses(r, rs, 1, 0);
    assert_true(head_has(&rs[0], "Connection: keep-alive"));
    raw_sends(f, r, "GET /api/workflows/2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(raw_wait(f, r, 2, 0, 3000), 2);
    assert_false(r->closed);
    raw_close(r);
    /* the handler asks to close; pipelined requests after it are not answered */
    r = raw_open(f);
    raw_sends(f, r,
              "GET /close HTTP/1.1\r\nHost: x\r\n\r\nGET /api/workflows/1 HTTP/1.1\r\nHost: "
              "x\r\n\r\n");
    raw_wait(f, r, 2, 1, 3000);
    assert_int_equal(raw_responses(r, rs, 2, 0), 1);
    assert_true(head_has(&rs[0], "Connection: close"));
    assert_true(rs[0].body_len == 3 && memcmp(rs[0].body, "bye", 3) == 0);
    assert_true(r->closed);
    raw_close(r);
    /* HTTP/1.1 client asking for close */
    r = raw_open(f);
    raw_sends(f, r, "GET /api/workflows/1 HTTP/1.1\r\nConnection: close\r\n\r\n");
    raw_wait(f, r, 1, 1, 3000);
    assert_int_equal(raw_responses(r, rs, 1, 0), 1);
    assert_true(r->closed);
    raw_close(r);
}

static void test_max_connections(void **state) {
    fix_t *f = *state;
    af_http_server_config_t cfg = {.max_connections = 2};
    start_server(f, &cfg);
    raw_t *a = raw_open(f), *b = raw_open(f);
    raw_sends(f, a, "GET /api/workflows/1 HTTP/1.1\r\n\r\n");
    raw_sends(f, b, "GET /api/workflows/1 HTTP/1.1\r\n\r\n");
    assert_int_equal(raw_wait(f, a, 1, 0, 3000), 1);
    assert_int_equal(raw_wait(f, b, 1, 0, 3000), 1);
    raw_t *c = raw_open(f);
    raw_wait(f, c, 1, 1, 3000);
    resp_t rs[1];
    assert_int_equal(raw_responses(c, rs, 1, 0), 1);
    assert_int_equal(rs[0].status, 503);
    assert_non_null(strstr(rs[0].body, "\"code\":\"unavailable\""));
    assert_true(c->closed);
    raw_close(c);
    af_http_server_stats_t st;
    af_http_server_stats(f->server, &st);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.open, 2);
    /* once one goes, a new one is served */
    raw_close(a);
    run_until(f, NULL, 0, 50);
    c = raw_open(f);
    raw_sends(f, c, "GET /api/workflows/1 HTTP/1.1\r\n\r\n");
    assert_int_equal(raw_wait(f, c, 1, 0, 3000), 1);
    raw_responses(c, rs, 1, 0);
    assert_int_equal(rs[0].status, 200);
    raw_close(c);
    raw_close(b);
}

static void test_graceful_stop(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    /* an idle keep-alive connection and a request in flight */
    raw_t *idle = raw_open(f);
    raw_sends(f, idle, "GET /api/workflows/1 HTTP/1.1\r\n\r\n");
    assert_int_equal(raw_wait(f, idle, 1, 0, 3000), 1);
    result_t r = {0};
    start_req(f, "GET", "/slow?ms=200", NULL, NULL, &r);
    af_http_server_stats_t st;
    for (int i = 0; i < 2000; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        af_http_server_stats(f->server, &st);
        if (st.answering == 1) {
            break;
        }
        usleep(1000);
    }
    assert_int_equal(st.answering, 1);
    assert_int_equal(af_http_server_stop(f->server, on_stopped, f), 0);
    assert_int_equal(af_http_server_stop(f->server, on_stopped, f), AF_ESTATE);
    assert_int_equal(f->stopped, 0);
    raw_wait(f, idle, 2, 1, 1000);
    assert_true(idle->closed); /* closed at once */
    assert_int_equal(f->stopped, 0);
    assert_int_equal(r.done, 0);
    run_until(f, &f->stopped, 1, 3000);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "slow answer");
    assert_int_equal(f->stopped, 1);
    assert_int_equal(g_cancel_calls, 0);
    raw_close(idle);
    /* no longer listening */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_not_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    close(fd);
    result_clear(&r);
    af_http_server_free(f->server);
    f->server = NULL;
}

static void test_drain_timeout(void **state) {
    fix_t *f = *state;
    af_http_server_config_t cfg = {.drain_timeout_ms = 100};
    start_server(f, &cfg);
    raw_t *r = raw_open(f);
    raw_sends(f, r, "GET /hang HTTP/1.1\r\n\r\n");
    for (int i = 0; i < 2000 && g_held == NULL; i++) {
        raw_pump(f, r);
        usleep(1000);
    }
    assert_non_null(g_held);
    assert_int_equal(af_http_server_stop(f->server, on_stopped, f), 0);
    run_until(f, &f->stopped, 1, 3000);
    assert_int_equal(f->stopped, 1);
    assert_int_equal(g_cancel_calls, 1);
    assert_true(af_http_res_cancelled(g_held));
    /* the server is gone; the held answer is dropped safely */
    af_http_server_free(f->server);
    f->server = NULL;
    assert_int_equal(af_http_res_send_error(g_held, 500, "late"), AF_ECANCELLED);
    raw_wait(f, r, 1, 1, 1000);
    assert_true(r->closed);
    assert_int_equal(r->len, 0);
    raw_close(r);
}

static void test_free_without_stop(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    raw_t *r = raw_open(f);
    raw_sends(f, r, "GET /hang HTTP/1.1\r\n\r\n");
    for (int i = 0; i < 2000 && g_held == NULL; i++) {
        raw_pump(f, r);
        usleep(1000);
    }
    assert_non_null(g_held);
    af_http_server_free(f->server); /* everything closes at once */
    f->server = NULL;
    run_until(f, &g_cancel_calls, 1, 2000);
    assert_int_equal(g_cancel_calls, 1);
    assert_int_equal(af_http_res_send(g_held), AF_ECANCELLED);
    raw_close(r);
    /* a server that never listened frees at once */
    af_http_server_free(af_http_server_new(&f->loop, NULL, af_http_router_handle, f->router));
}

static void test_router_errors(void **state) {
    (void)state;
    af_http_router_t *r = af_http_router_new();
    assert_int_equal(af_http_router_add(r, "GET", "nope", h_echo, NULL), AF_EINVAL);
    assert_int_equal(af_http_router_add(r, "GET", "/a/*/b", h_echo, NULL), AF_EINVAL);
    assert_int_equal(af_http_router_add(r, "GET", "/a/:/b", h_echo, NULL), AF_EINVAL);
    assert_int_equal(af_http_router_add(r, "GET", "/a/:id", h_echo, NULL), 0);
    assert_int_equal(af_http_router_add(r, "GET", "/a/:id", h_echo, NULL), AF_EEXISTS);
    assert_int_equal(af_http_router_add(r, "POST", "/a/:id", h_echo, NULL), 0);
    assert_int_equal(af_http_router_add(r, "*", "/a/:id", h_echo, NULL), 0);
    assert_int_equal(af_http_router_add(r, NULL, "/a/:id", h_echo, NULL), AF_EEXISTS);
    assert_string_equal(af_http_error_code(409), "conflict");
    assert_string_equal(af_http_error_code(415), "unsupported_media_type");
    assert_string_equal(af_http_error_code(422), "unprocessable");
    assert_string_equal(af_http_error_code(500), "internal");
    af_http_router_free(r);
}

static void test_listen_errors(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    af_http_server_t *other = af_http_server_new(&f->loop, NULL, af_http_router_handle, f->router);
    af_error_t err = {0};
    assert_int_equal(af_http_server_listen(other, "127.0.0.1", f->port, &err), AF_EIO);
    assert_non_null(strstr(err.msg, "cannot listen"));
    af_http_server_free(other);
    other = af_http_server_new(&f->loop, NULL, af_http_router_handle, f->router);
    assert_int_equal(af_http_server_listen(other, "not an address", 0, &err), AF_EINVAL);
    af_http_server_free(other);
    run_until(f, NULL, 0, 20);
}

/* Many connections, many requests each: counts stay exact. */
static void test_many_connections(void **state) {
    fix_t *f = *state;
    start_server(f, NULL);
    enum { NCONN = 40, NREQ = 5 };
    raw_t *rs[NCONN];
    char batch[4096] = "";
    for (int j = 0; j < NREQ; j++) {
        char one[128];
        snprintf(one, sizeof one, "GET /api/workflows/%d HTTP/1.1\r\nHost: x\r\n\r\n", j);
        strcat(batch, one);
    }
    for (int i = 0; i < NCONN; i++) {
        rs[i] = raw_open(f);
        raw_sends(f, rs[i], batch);
    }
    for (int i = 0; i < NCONN; i++) {
        assert_int_equal(raw_wait(f, rs[i], NREQ, 0, 5000), NREQ);
        raw_close(rs[i]);
    }
    af_http_server_stats_t st;
    af_http_server_stats(f->server, &st);
    assert_int_equal(st.requests, NCONN * NREQ);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    af_log_set_level(AF_LEVEL_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelining_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_body_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_before_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expect_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_and_read_timeouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http10_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graceful_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_without_stop, setup, teardown),
        cmocka_unit_test(test_router_errors),
        cmocka_unit_test_setup_teardown(test_listen_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_connections, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
