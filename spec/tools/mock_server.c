/* mock_server.c -- af-mockserver: an HTTP/1.1 server on 127.0.0.1 for the tests, one libuv loop,
 * keep-alive, a route table (mock_server.h) and the built-in routes (echo, status, delays...). */
#include "mock_server.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <http_parser.h>
#include <uv.h>

#define MOCK_MAX_BODY   ((size_t)64 << 20) /* larger request bodies get 413 */
#define MOCK_MAX_BIG    ((uint64_t)256 << 20)
#define MOCK_MAX_DELAY  3600000u
#define MOCK_READ_BYTES 65536

/* ---- types ----------------------------------------------------------------------------------- */

typedef struct conn_s conn_t;

typedef struct header_s {
    char *name;
    char *value;
} header_t;

enum { REQ_PARSING, REQ_HANDLING, REQ_STREAMING, REQ_FINISHED };

struct mock_req_s {
    conn_t *conn; /* NULL once the connection is gone */
    const char *method;
    char *url; /* the target as received; split into path and query when complete */
    size_t url_len;
    const char *query;
    header_t *headers;
    size_t nheaders, headers_cap;
    char *body;
    size_t body_len, body_cap;
    char *res_headers; /* extra response header lines, "Name: value\r\n"... */
    size_t res_len;
    int state;
    int keep_alive;
    int head;    /* HEAD: no body in the response */
    int chunked; /* streaming with chunked encoding */
    int http10;
    int released;
    uv_timer_t timer;
    void (*timer_cb)(mock_req_t *req);
    void *data;
    void (*data_free)(void *data);
    mock_req_t *prev, *next; /* every request not yet released */
};

struct conn_s {
    uv_tcp_t tcp;
    http_parser parser;
    mock_req_t *cur;    /* being parsed */
    mock_req_t *active; /* parsed and not yet answered: parsing waits for it */
    char *pending;      /* bytes received after the active request */
    size_t pending_len;
    int reading;
    int in_parse;
    int closing;
    int shutting;
    int body_too_large;
    int last_was_value;
    conn_t *prev, *next;
};

typedef struct route_s {
    const char *method;
    const char *prefix;
    size_t prefix_len;
    mock_handler_fn handler;
} route_t;

static struct {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_signal_t sigterm, sigint;
    uv_timer_t stop_timer;
    http_parser_settings settings;
    route_t *routes;
    size_t nroutes, routes_cap;
    conn_t *conns;
    mock_req_t *reqs;
    json_t *counts; /* path -> requests served */
    json_t *flaky;  /* key -> attempts */
    int stop_requested;
    int stopping;
} g;

/* ---- small helpers --------------------------------------------------------------------------- */

void *mock_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (q == NULL && n != 0) {
        fprintf(stderr, "af-mockserver: out of memory\n");
        abort();
    }
    return q;
}

void mock_buf_add(mock_buf_t *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap < 256 ? 256 : b->cap;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        b->p = mock_xrealloc(b->p, cap);
        b->cap = cap;
    }
    if (n > 0) {
        memcpy(b->p + b->len, s, n);
    }
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_vprintf(mock_buf_t *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n <= 0) {
        return;
    }
    char small[256];
    char *tmp = (size_t)n < sizeof small ? small : mock_xrealloc(NULL, (size_t)n + 1);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    mock_buf_add(b, tmp, (size_t)n);
    if (tmp != small) {
        free(tmp);
    }
}

static void sb_printf(mock_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(mock_buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(b, fmt, ap);
    va_end(ap);
}

static void append(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = *cap < 64 ? 64 : *cap;
        while (c < *len + n + 1) {
            c *= 2;
        }
        *buf = mock_xrealloc(*buf, c);
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* A whole non-negative decimal number up to max; -1 otherwise. */
static int64_t parse_num(const char *s, int64_t max) {
    int64_t v = 0;
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
    return v;
}

/* ---- connections: writing -------------------------------------------------------------------- */

typedef struct wbuf_s {
    uv_write_t w;
    size_t len;
    char data[];
} wbuf_t;

static void conn_close(conn_t *conn);

static void on_written(uv_write_t *w, int status) {
    conn_t *conn = w->handle->data;
    free(w);
    if (status < 0) {
        conn_close(conn);
    }
}

/* Queues bytes (copied) on the connection; dropped when it is gone or closing. */
static void conn_write2(conn_t *conn, const char *a, size_t alen, const char *b, size_t blen) {
    if (conn == NULL || conn->closing) {
        return;
    }
    wbuf_t *wb = mock_xrealloc(NULL, sizeof *wb + alen + blen);
    memcpy(wb->data, a, alen);
    if (blen > 0) {
        memcpy(wb->data + alen, b, blen);
    }
    wb->len = alen + blen;
    uv_buf_t buf = uv_buf_init(wb->data, (unsigned)wb->len);
    if (uv_write(&wb->w, (uv_stream_t *)&conn->tcp, &buf, 1, on_written) != 0) {
        free(wb);
        conn_close(conn);
    }
}

static void conn_write(conn_t *conn, const char *data, size_t len) {
    conn_write2(conn, data, len, NULL, 0);
}

/* ---- requests -------------------------------------------------------------------------------- */

static void on_req_timer_closed(uv_handle_t *h) {
    mock_req_t *req = h->data;
    if (req->data_free != NULL) {
        req->data_free(req->data);
    }
    for (size_t i = 0; i < req->nheaders; i++) {
        free(req->headers[i].name);
        free(req->headers[i].value);
    }
    free(req->headers);
    free(req->url);
    free(req->body);
    free(req->res_headers);
    free(req);
}

static mock_req_t *req_new(conn_t *conn) {
    mock_req_t *req = mock_xrealloc(NULL, sizeof *req);
    memset(req, 0, sizeof *req);
    req->conn = conn;
    req->query = "";
    uv_timer_init(g.loop, &req->timer);
    req->timer.data = req;
    req->next = g.reqs;
    if (g.reqs != NULL) {
        g.reqs->prev = req;
    }
    g.reqs = req;
    return req;
}

/* Frees the request once its timer handle is closed. Idempotent. */
static void req_release(mock_req_t *req) {
    if (req->released) {
        return;
    }
    req->released = 1;
    if (req->prev != NULL) {
        req->prev->next = req->next;
    } else {
        g.reqs = req->next;
    }
    if (req->next != NULL) {
        req->next->prev = req->prev;
    }
    uv_close((uv_handle_t *)&req->timer, on_req_timer_closed);
}

static void conn_resume(conn_t *conn);
static void conn_shutdown(conn_t *conn);

/* The response is complete: free the request and let the connection go on (or close). */
static void req_finish(mock_req_t *req) {
    conn_t *conn = req->conn;
    int keep_alive = req->keep_alive;
    req->state = REQ_FINISHED;
    uv_timer_stop(&req->timer);
    req_release(req);
    if (conn == NULL) {
        return;
    }
    req->conn = NULL;
    conn->active = NULL;
    if (!keep_alive) {
        conn_shutdown(conn);
    } else if (!conn->in_parse) {
        conn_resume(conn);
    }
}

/* The status line and headers. length < 0: chunked (or, for HTTP/1.0, until close). */
static void res_head(mock_req_t *req, int status, const char *content_type, int64_t length) {
    mock_buf_t b = {0};
    int bodiless = status < 200 || status == 204 || status == 304;
    if (g.stop_requested) {
        req->keep_alive = 0;
    }
    sb_printf(&b, "HTTP/1.1 %d %s\r\n", status, http_status_str((enum http_status)status));
    if (content_type != NULL && !bodiless) {
        sb_printf(&b, "Content-Type: %s\r\n", content_type);
    }
    if (!bodiless) {
        if (length >= 0) {
            sb_printf(&b, "Content-Length: %lld\r\n", (long long)length);
        } else if (req->http10) {
            req->keep_alive = 0; /* the body ends when the connection does */
        } else {
            mock_buf_add(&b, "Transfer-Encoding: chunked\r\n", 28);
            req->chunked = !req->head;
        }
    }
    if (!req->keep_alive) {
        mock_buf_add(&b, "Connection: close\r\n", 19);
    } else if (req->http10) {
        mock_buf_add(&b, "Connection: keep-alive\r\n", 24);
    }
    if (req->res_len > 0) {
        mock_buf_add(&b, req->res_headers, req->res_len);
    }
    mock_buf_add(&b, "\r\n", 2);
    conn_write(req->conn, b.p, b.len);
    free(b.p);
}

/* ---- the route API (mock_server.h) ----------------------------------------------------------- */

int mock_route_add(const char *method, const char *prefix, mock_handler_fn handler) {
    if (g.nroutes == g.routes_cap) {
        size_t cap = g.routes_cap ? g.routes_cap * 2 : 32;
        route_t *r = realloc(g.routes, cap * sizeof *r);
        if (r == NULL) {
            return -1;
        }
        g.routes = r;
        g.routes_cap = cap;
    }
    g.routes[g.nroutes++] = (route_t){method, prefix, strlen(prefix), handler};
    return 0;
}

const char *mock_req_method(const mock_req_t *req) {
    return req->method;
}

const char *mock_req_path(const mock_req_t *req) {
    return req->url != NULL ? req->url : "/";
}

const char *mock_req_query(const mock_req_t *req) {
    return req->query;
}

const char *mock_req_header(const mock_req_t *req, const char *name) {
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->headers[i].name, name) == 0) {
            return req->headers[i].value;
        }
    }
    return NULL;
}

size_t mock_req_header_count(const mock_req_t *req) {
    return req->nheaders;
}

int mock_req_header_at(const mock_req_t *req, size_t i, const char **name, const char **value) {
    if (i >= req->nheaders) {
        return -1;
    }
    *name = req->headers[i].name;
    *value = req->headers[i].value;
    return 0;
}

const char *mock_req_body(const mock_req_t *req, size_t *len) {
    if (len != NULL) {
        *len = req->body_len;
    }
    return req->body != NULL ? req->body : "";
}

json_t *mock_req_json(const mock_req_t *req) {
    return json_loadb(mock_req_body(req, NULL), req->body_len, 0, NULL);
}

void mock_req_set_data(mock_req_t *req, void *data, void (*free_fn)(void *data)) {
    req->data = data;
    req->data_free = free_fn;
}

void *mock_req_data(const mock_req_t *req) {
    return req->data;
}

static void on_req_timer(uv_timer_t *t) {
    mock_req_t *req = t->data;
    req->timer_cb(req);
}

void mock_req_after(mock_req_t *req, uint64_t ms, void (*cb)(mock_req_t *req)) {
    req->timer_cb = cb;
    uv_timer_start(&req->timer, on_req_timer, ms, 0);
}

int mock_req_gone(const mock_req_t *req) {
    return req->conn == NULL;
}

void mock_res_header(mock_req_t *req, const char *name, const char *fmt, ...) {
    mock_buf_t b = {req->res_headers, req->res_len, req->res_len};
    va_list ap;
    sb_printf(&b, "%s: ", name);
    va_start(ap, fmt);
    sb_vprintf(&b, fmt, ap);
    va_end(ap);
    mock_buf_add(&b, "\r\n", 2);
    req->res_headers = b.p;
    req->res_len = b.len;
}

void mock_reply(mock_req_t *req, int status, const char *content_type, const char *body,
                size_t len) {
    if (req->state != REQ_HANDLING) {
        return;
    }
    int bodiless = status < 200 || status == 204 || status == 304;
    res_head(req, status, content_type, bodiless ? -1 : (int64_t)len);
    if (!bodiless && !req->head && len > 0) {
        conn_write(req->conn, body, len);
    }
    req_finish(req);
}

void mock_reply_json(mock_req_t *req, int status, json_t *body) {
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    mock_reply(req, status, "application/json", text != NULL ? text : "null",
               text != NULL ? strlen(text) : 4);
    free(text);
}

void mock_reply_pack(mock_req_t *req, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    json_t *body = json_vpack_ex(NULL, 0, fmt, ap);
    va_end(ap);
    mock_reply_json(req, status, body);
}

void mock_stream_begin(mock_req_t *req, int status, const char *content_type, int64_t length) {
    if (req->state != REQ_HANDLING) {
        return;
    }
    res_head(req, status, content_type, length);
    req->state = REQ_STREAMING;
}

void mock_stream_write(mock_req_t *req, const char *data, size_t len) {
    if (req->state != REQ_STREAMING || req->head || len == 0) {
        return;
    }
    if (req->chunked) {
        char size[24];
        int n = snprintf(size, sizeof size, "%zx\r\n", len);
        mock_buf_t b = {0};
        mock_buf_add(&b, size, (size_t)n);
        mock_buf_add(&b, data, len);
        mock_buf_add(&b, "\r\n", 2);
        conn_write(req->conn, b.p, b.len);
        free(b.p);
    } else {
        conn_write(req->conn, data, len);
    }
}

void mock_stream_printf(mock_req_t *req, const char *fmt, ...) {
    mock_buf_t b = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&b, fmt, ap);
    va_end(ap);
    mock_stream_write(req, b.p, b.len);
    free(b.p);
}

void mock_stream_end(mock_req_t *req) {
    if (req->state != REQ_STREAMING) {
        return;
    }
    if (req->chunked) {
        conn_write(req->conn, "0\r\n\r\n", 5);
    }
    req_finish(req);
}

void mock_stream_abort(mock_req_t *req) {
    if (req->state != REQ_STREAMING) {
        return;
    }
    req->keep_alive = 0; /* req_finish shuts the connection down after the queued writes */
    req_finish(req);
}

static void server_stop(void);

static void on_stop_timer(uv_timer_t *t) {
    (void)t;
    server_stop();
}

void mock_server_stop(void) {
    if (g.stop_requested) {
        return;
    }
    g.stop_requested = 1;
    /* Normally the connection's shutdown stops the server; this is in case it never comes. */
    uv_timer_start(&g.stop_timer, on_stop_timer, 1000, 0);
}

/* ---- dispatch -------------------------------------------------------------------------------- */

static const route_t *route_find(const char *method, const char *path, const char **rest) {
    const route_t *best = NULL;
    for (size_t i = 0; i < g.nroutes; i++) {
        const route_t *r = &g.routes[i];
        if (r->method != NULL && strcmp(r->method, method) != 0) {
            continue;
        }
        if (strncmp(path, r->prefix, r->prefix_len) != 0) {
            continue;
        }
        char next = path[r->prefix_len];
        if (next != '\0' && next != '/' && r->prefix[r->prefix_len - 1] != '/') {
            continue;
        }
        if (best == NULL || r->prefix_len > best->prefix_len) {
            best = r;
        }
    }
    if (best != NULL) {
        *rest = path + best->prefix_len;
        if (**rest == '/') {
            (*rest)++;
        }
    }
    return best;
}

static void dispatch(mock_req_t *req) {
    const char *path = mock_req_path(req);
    json_t *n = json_object_get(g.counts, path);
    json_object_set_new(g.counts, path, json_integer(n != NULL ? json_integer_value(n) + 1 : 1));
    req->state = REQ_HANDLING;
    const char *rest = "";
    const route_t *r = route_find(req->method, path, &rest);
    if (r == NULL) {
        mock_reply_pack(req, 404, "{ssss}", "error", "not found", "path", path);
        return;
    }
    r->handler(req, rest);
}

/* ---- connections: parsing -------------------------------------------------------------------- */

static int on_message_begin(http_parser *p) {
    conn_t *conn = p->data;
    conn->cur = req_new(conn);
    conn->last_was_value = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
    conn_t *conn = p->data;
    size_t cap = conn->cur->url_len + 1;
    append(&conn->cur->url, &conn->cur->url_len, &cap, at, len);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
    conn_t *conn = p->data;
    mock_req_t *req = conn->cur;
    if (req->nheaders == 0 || conn->last_was_value) {
        if (req->nheaders == req->headers_cap) {
            req->headers_cap = req->headers_cap ? req->headers_cap * 2 : 8;
            req->headers = mock_xrealloc(req->headers, req->headers_cap * sizeof *req->headers);
        }
        req->headers[req->nheaders++] = (header_t){NULL, NULL};
        conn->last_was_value = 0;
    }
    header_t *h = &req->headers[req->nheaders - 1];
    size_t hlen = h->name != NULL ? strlen(h->name) : 0, cap = hlen + 1;
    append(&h->name, &hlen, &cap, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
    conn_t *conn = p->data;
    mock_req_t *req = conn->cur;
    if (req->nheaders == 0) {
        return 0;
    }
    header_t *h = &req->headers[req->nheaders - 1];
    size_t vlen = h->value != NULL ? strlen(h->value) : 0, cap = vlen + 1;
    append(&h->value, &vlen, &cap, at, len);
    conn->last_was_value = 1;
    return 0;
}

static int on_headers_complete(http_parser *p) {
    conn_t *conn = p->data;
    mock_req_t *req = conn->cur;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (req->headers[i].value == NULL) {
            req->headers[i].value = mock_xrealloc(NULL, 1);
            req->headers[i].value[0] = '\0';
        }
    }
    req->method = http_method_str((enum http_method)p->method);
    req->head = p->method == HTTP_HEAD;
    req->http10 = p->http_major == 1 && p->http_minor == 0;
    if (req->url == NULL) {
        req->url = mock_xrealloc(NULL, 2);
        strcpy(req->url, "/");
    }
    char *q = strchr(req->url, '?');
    if (q != NULL) {
        *q = '\0';
        req->query = q + 1;
    }
    const char *expect = mock_req_header(req, "Expect");
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0) {
        conn_write(conn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
    conn_t *conn = p->data;
    mock_req_t *req = conn->cur;
    if (req->body_len + len > MOCK_MAX_BODY) {
        conn->body_too_large = 1;
        return -1;
    }
    append(&req->body, &req->body_len, &req->body_cap, at, len);
    return 0;
}

static int on_message_complete(http_parser *p) {
    conn_t *conn = p->data;
    conn->active = conn->cur;
    conn->cur = NULL;
    conn->active->keep_alive = http_should_keep_alive(p);
    /* One request at a time: the rest waits until this one is answered (responses in order). */
    http_parser_pause(p, 1);
    return 0;
}

/* Parses what arrived; runs each complete request's handler outside the parser. Stops at a
 * request that is not answered yet, keeping the bytes after it for conn_resume. */
static void conn_process(conn_t *conn, const char *data, size_t len) {
    conn->in_parse = 1;
    while (!conn->closing && !conn->shutting && conn->active == NULL) {
        size_t n = http_parser_execute(&conn->parser, &g.settings, data, len);
        enum http_errno err = HTTP_PARSER_ERRNO(&conn->parser);
        if (err == HPE_PAUSED) {
            http_parser_pause(&conn->parser, 0);
            data += n;
            len -= n;
            dispatch(conn->active);
            continue;
        }
        if (err != HPE_OK) {
            const char *msg = conn->body_too_large
                                  ? "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n"
                                    "Connection: close\r\n\r\n"
                                  : "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                    "Connection: close\r\n\r\n";
            conn_write(conn, msg, strlen(msg));
            conn_shutdown(conn);
        }
        len = 0;
        break;
    }
    conn->in_parse = 0;
    if (conn->closing || conn->shutting) {
        return;
    }
    if (conn->active != NULL) {
        if (len > 0) {
            /* conn->pending is empty here: reading stops while a request is active */
            conn->pending = mock_xrealloc(NULL, len);
            memcpy(conn->pending, data, len);
            conn->pending_len = len;
        }
        if (conn->reading) {
            uv_read_stop((uv_stream_t *)&conn->tcp);
            conn->reading = 0;
        }
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    /* One buffer for every connection: read_cb consumes it before the next read. */
    static char shared[MOCK_READ_BYTES];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(shared, sizeof shared);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    conn_t *conn = stream->data;
    if (nread < 0) {
        conn_close(conn);
        return;
    }
    if (nread > 0) {
        conn_process(conn, buf->base, (size_t)nread);
    }
}

static void conn_resume(conn_t *conn) {
    if (conn->closing || conn->shutting) {
        return;
    }
    char *pending = conn->pending;
    size_t len = conn->pending_len;
    conn->pending = NULL;
    conn->pending_len = 0;
    if (len > 0) {
        conn_process(conn, pending, len);
    }
    free(pending);
    if (!conn->closing && !conn->shutting && conn->active == NULL && !conn->reading) {
        uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
        conn->reading = 1;
    }
}

static void on_conn_closed(uv_handle_t *h) {
    conn_t *conn = h->data;
    if (conn->prev != NULL) {
        conn->prev->next = conn->next;
    } else {
        g.conns = conn->next;
    }
    if (conn->next != NULL) {
        conn->next->prev = conn->prev;
    }
    free(conn);
}

static void conn_close(conn_t *conn) {
    if (conn->closing) {
        return;
    }
    conn->closing = 1;
    if (conn->cur != NULL) {
        req_release(conn->cur);
        conn->cur = NULL;
    }
    if (conn->active != NULL) {
        conn->active->conn = NULL; /* its handler finishes on its own; writes are dropped */
        conn->active = NULL;
    }
    free(conn->pending);
    conn->pending = NULL;
    uv_close((uv_handle_t *)&conn->tcp, on_conn_closed);
}

static void on_shutdown(uv_shutdown_t *sr, int status) {
    conn_t *conn = sr->handle->data;
    (void)status;
    free(sr);
    conn_close(conn);
    if (g.stop_requested) {
        server_stop();
    }
}

/* Closes after what was written is sent. */
static void conn_shutdown(conn_t *conn) {
    if (conn->closing || conn->shutting) {
        return;
    }
    conn->shutting = 1;
    if (conn->reading) {
        uv_read_stop((uv_stream_t *)&conn->tcp);
        conn->reading = 0;
    }
    uv_shutdown_t *sr = mock_xrealloc(NULL, sizeof *sr);
    if (uv_shutdown(sr, (uv_stream_t *)&conn->tcp, on_shutdown) != 0) {
        free(sr);
        conn_close(conn);
    }
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0 || g.stopping) {
        return;
    }
    conn_t *conn = mock_xrealloc(NULL, sizeof *conn);
    memset(conn, 0, sizeof *conn);
    uv_tcp_init(g.loop, &conn->tcp);
    conn->tcp.data = conn;
    conn->next = g.conns;
    if (g.conns != NULL) {
        g.conns->prev = conn;
    }
    g.conns = conn;
    if (uv_accept(server, (uv_stream_t *)&conn->tcp) != 0) {
        conn_close(conn);
        return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    http_parser_init(&conn->parser, HTTP_REQUEST);
    conn->parser.data = conn;
    uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
    conn->reading = 1;
}

/* ---- the built-in routes --------------------------------------------------------------------- */

static void route_echo(mock_req_t *req, const char *rest) {
    (void)rest;
    json_t *headers = json_object();
    for (size_t i = 0; i < req->nheaders; i++) {
        char name[256];
        size_t n = strlen(req->headers[i].name);
        n = n < sizeof name - 1 ? n : sizeof name - 1;
        for (size_t k = 0; k < n; k++) {
            char ch = req->headers[i].name[k];
            name[k] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
        }
        name[n] = '\0';
        json_t *prev = json_object_get(headers, name);
        if (prev != NULL) { /* repeated: one value, comma-separated as HTTP allows */
            mock_buf_t b = {0};
            sb_printf(&b, "%s, %s", json_string_value(prev), req->headers[i].value);
            json_object_set_new(headers, name, json_string(b.p));
            free(b.p);
        } else {
            json_object_set_new(headers, name, json_string(req->headers[i].value));
        }
    }
    size_t len;
    const char *body = mock_req_body(req, &len);
    json_t *jbody = json_stringn(body, len); /* NULL (null) when not UTF-8 */
    mock_reply_json(req, 200,
                    json_pack("{ss ss ss so so* sI}", "method", req->method, "path",
                              mock_req_path(req), "query", req->query, "headers", headers, "body",
                              jbody, "body_len", (json_int_t)len));
}

static void route_status(mock_req_t *req, const char *rest) {
    int64_t code = parse_num(rest, 599);
    if (code < 200) {
        mock_reply_pack(req, 400, "{ss}", "error", "status must be 200-599");
        return;
    }
    mock_reply_pack(req, (int)code, "{sI}", "status", (json_int_t)code);
}

static void delay_done(mock_req_t *req) {
    mock_reply_pack(req, 200, "{sI}", "delayed_ms", (json_int_t)(intptr_t)mock_req_data(req));
}

static void route_delay(mock_req_t *req, const char *rest) {
    int64_t ms = parse_num(rest, MOCK_MAX_DELAY);
    if (ms < 0) {
        mock_reply_pack(req, 400, "{ss}", "error", "delay must be 0-3600000 ms");
        return;
    }
    mock_req_set_data(req, (void *)(intptr_t)ms, NULL);
    mock_req_after(req, (uint64_t)ms, delay_done);
}

static void route_redirect(mock_req_t *req, const char *rest) {
    int64_t n = parse_num(rest, 1000000);
    if (n < 0) {
        mock_reply_pack(req, 400, "{ss}", "error", "bad redirect count");
    } else if (n == 0) {
        mock_reply_pack(req, 200, "{sb}", "redirected", 1);
    } else {
        mock_res_header(req, "Location", "/redirect/%lld", (long long)(n - 1));
        mock_reply_pack(req, 302, "{sI}", "redirect", (json_int_t)(n - 1));
    }
}

static void route_retry_after(mock_req_t *req, const char *rest) {
    int64_t secs = parse_num(rest, 86400);
    if (secs < 0) {
        mock_reply_pack(req, 400, "{ss}", "error", "bad seconds");
        return;
    }
    mock_res_header(req, "Retry-After", "%lld", (long long)secs);
    mock_reply_pack(req, 429, "{s{ss ss sI}}", "error", "message", "rate limited", "type",
                    "rate_limit_error", "retry_after", (json_int_t)secs);
}

static void route_flaky(mock_req_t *req, const char *rest) {
    const char *slash = strrchr(rest, '/');
    int64_t n = slash != NULL ? parse_num(slash + 1, 1000000) : -1;
    if (n < 0 || slash == rest) {
        mock_reply_pack(req, 400, "{ss}", "error", "use /flaky/KEY/N");
        return;
    }
    char key[256];
    size_t klen = (size_t)(slash - rest) < sizeof key - 1 ? (size_t)(slash - rest) : sizeof key - 1;
    memcpy(key, rest, klen);
    key[klen] = '\0';
    json_t *prev = json_object_get(g.flaky, key);
    json_int_t attempts = (prev != NULL ? json_integer_value(prev) : 0) + 1;
    json_object_set_new(g.flaky, key, json_integer(attempts));
    if (attempts <= n) {
        mock_reply_pack(req, 503, "{ss sI}", "error", "unavailable", "attempts", attempts);
    } else {
        mock_reply_pack(req, 200, "{sI}", "attempts", attempts);
    }
}

static void route_big(mock_req_t *req, const char *rest) {
    static char xs[65536];
    int64_t bytes = parse_num(rest, (int64_t)MOCK_MAX_BIG);
    if (bytes < 0) {
        mock_reply_pack(req, 400, "{ss}", "error", "bytes must be 0-268435456");
        return;
    }
    if (xs[0] != 'x') {
        memset(xs, 'x', sizeof xs);
    }
    mock_stream_begin(req, 200, "application/octet-stream", bytes);
    for (int64_t left = bytes; left > 0; left -= (int64_t)sizeof xs) {
        mock_stream_write(req, xs, left < (int64_t)sizeof xs ? (size_t)left : sizeof xs);
    }
    mock_stream_end(req);
}

typedef struct sse_s {
    int64_t i, n;
} sse_t;

static void sse_tick(mock_req_t *req) {
    sse_t *s = mock_req_data(req);
    if (s->i < s->n && !mock_req_gone(req)) {
        mock_stream_printf(req, "data: {\"i\": %lld}\n\n", (long long)s->i);
        s->i++;
        mock_req_after(req, 10, sse_tick);
        return;
    }
    mock_stream_printf(req, "data: [DONE]\n\n");
    mock_stream_end(req);
}

static void route_sse(mock_req_t *req, const char *rest) {
    int64_t n = parse_num(rest, 100000);
    if (n < 0) {
        mock_reply_pack(req, 400, "{ss}", "error", "bad event count");
        return;
    }
    sse_t *s = mock_xrealloc(NULL, sizeof *s);
    s->i = 0;
    s->n = n;
    mock_req_set_data(req, s, free);
    mock_res_header(req, "Cache-Control", "no-cache");
    mock_stream_begin(req, 200, "text/event-stream", -1);
    sse_tick(req);
}

static void route_bad_json(mock_req_t *req, const char *rest) {
    (void)rest;
    mock_reply(req, 200, "application/json", "{\"truncated\": ", 14);
}

static void route_requests(mock_req_t *req, const char *rest) {
    (void)rest;
    mock_reply_json(req, 200, json_deep_copy(g.counts));
}

static void route_shutdown(mock_req_t *req, const char *rest) {
    (void)rest;
    mock_server_stop();
    mock_reply_pack(req, 200, "{sb}", "shutdown", 1);
}

static void mock_builtin_routes(void) {
    mock_route_add(NULL, "/echo", route_echo);
    mock_route_add(NULL, "/status", route_status);
    mock_route_add(NULL, "/delay", route_delay);
    mock_route_add(NULL, "/redirect", route_redirect);
    mock_route_add(NULL, "/retry-after", route_retry_after);
    mock_route_add(NULL, "/flaky", route_flaky);
    mock_route_add(NULL, "/big", route_big);
    mock_route_add(NULL, "/sse", route_sse);
    mock_route_add(NULL, "/bad-json", route_bad_json);
    mock_route_add("GET", "/requests", route_requests);
    mock_route_add("GET", "/shutdown", route_shutdown);
}

/* Every route set; a new file of routes adds its function here (and to CMakeLists.txt). */
void mock_llm_routes(void);  /* mock_llm.c */
void mock_feed_routes(void); /* mock_feed.c */
static void (*const route_sets[])(void) = {
    mock_builtin_routes,
    mock_llm_routes,
    mock_feed_routes,
};

/* ---- the server ------------------------------------------------------------------------------ */

static void server_stop(void) {
    if (g.stopping) {
        return;
    }
    g.stopping = 1;
    uv_close((uv_handle_t *)&g.listener, NULL);
    uv_close((uv_handle_t *)&g.sigterm, NULL);
    uv_close((uv_handle_t *)&g.sigint, NULL);
    uv_close((uv_handle_t *)&g.stop_timer, NULL);
    for (conn_t *c = g.conns; c != NULL; c = c->next) {
        conn_close(c);
    }
    while (g.reqs != NULL) {
        req_release(g.reqs);
    }
}

static void on_signal(uv_signal_t *s, int signum) {
    (void)s;
    (void)signum;
    server_stop();
}

static void usage(void) {
    fprintf(stderr, "usage: af-mockserver [--port N]   (N = 0: any free port)\n");
}

int main(int argc, char **argv) {
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            int64_t p = parse_num(argv[++i], 65535);
            if (p < 0) {
                usage();
                return 2;
            }
            port = (int)p;
        } else {
            usage();
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    /* Thousands of concurrent connections need as many descriptors as the hard limit allows. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    g.loop = uv_default_loop();
    g.counts = json_object();
    g.flaky = json_object();
    http_parser_settings_init(&g.settings);
    g.settings.on_message_begin = on_message_begin;
    g.settings.on_url = on_url;
    g.settings.on_header_field = on_header_field;
    g.settings.on_header_value = on_header_value;
    g.settings.on_headers_complete = on_headers_complete;
    g.settings.on_body = on_body;
    g.settings.on_message_complete = on_message_complete;
    for (size_t i = 0; i < sizeof route_sets / sizeof route_sets[0]; i++) {
        route_sets[i]();
    }

    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_init(g.loop, &g.listener);
    int rc = uv_tcp_bind(&g.listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&g.listener, 8192, on_connection);
    }
    if (rc != 0) {
        fprintf(stderr, "af-mockserver: cannot listen on 127.0.0.1:%d: %s\n", port,
                uv_strerror(rc));
        return 1;
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&g.listener, (struct sockaddr *)&bound, &blen);
    printf("port=%d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
    fflush(stdout);

    uv_signal_init(g.loop, &g.sigterm);
    uv_signal_start(&g.sigterm, on_signal, SIGTERM);
    uv_signal_init(g.loop, &g.sigint);
    uv_signal_start(&g.sigint, on_signal, SIGINT);
    uv_timer_init(g.loop, &g.stop_timer);
    uv_unref((uv_handle_t *)&g.stop_timer);

    uv_run(g.loop, UV_RUN_DEFAULT);

    json_decref(g.counts);
    json_decref(g.flaky);
    free(g.routes);
    rc = uv_loop_close(g.loop);
    return rc == 0 ? 0 : 1;
}
