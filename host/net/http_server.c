/* http_server.c -- the HTTP/1.1 server: libuv TCP, http_parser, one request answered at a time per
 * connection (pipelined ones wait their turn), limits, timeouts, graceful stop; and the router. */
#include "net/http_server.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <http_parser.h>

#define READ_BUF_BYTES  65536u /* one per server: every read lands here and is parsed at once */
#define LINGER_MS       2000u  /* after our FIN, unread input is drained this long (no RST) */
#define SPARE_MAX_BYTES 8192u  /* buffers up to this size are kept for the connection's next one */
#define ROUTE_MAX_SEGS  31     /* pattern segments: the match score has 2 bits per segment */
/* A client that pipelines but does not read: past this many unsent answer bytes the connection
 * parses no more requests (they wait in its input, then in the socket) until the bytes drain. */
#define WRITE_BACKLOG_BYTES ((size_t)256 << 10)

typedef struct conn_s conn_t;
typedef struct exch_s exch_t;

enum { EX_PARSING, EX_HANDLER, EX_DETACHED, EX_INTERNAL };
enum { TIMER_NONE, TIMER_IDLE, TIMER_READ, TIMER_LINGER };
enum { HDR_NONE, HDR_FIELD, HDR_VALUE };

struct af_http_req_s {
    const char *method; /* static (http_method_str) */
    const char *path;   /* into exch_t.hbuf */
    const char *query;  /* into exch_t.hbuf, or "" */
    const char *body;   /* exch_t.body or "" */
    size_t body_len;
    int http_minor;
    int remote_port;
    char remote[INET6_ADDRSTRLEN];
    const char **qpairs; /* decoded query parameters: name, value, ... then their text; lazy */
    size_t nq;
    int q_parsed;
    const char **ppairs; /* route parameters: name, value, ... then their text */
    size_t np;
    const char *wildcard;
};

struct af_http_res_s {
    int status;
    int force_close;
    int cancelled;
    af_buf_t hdrs; /* "Name: value\r\n" lines */
    char *body;
    size_t body_len;
    void (*on_cancel)(af_http_res_t *res, void *ud);
    void *cancel_ud;
};

/* One request and its answer. Allocated when a request begins, handed to the handler when it is
 * complete, written, then kept as the connection's spare or freed. */
struct exch_s {
    struct af_http_req_s req;
    struct af_http_res_s res;
    conn_t *conn; /* NULL once detached (the connection went away first) */
    int state;
    int keep_alive;
    int is_head;
    int headers_done;
    int hdr_state;
    size_t url_len;
    af_buf_t hbuf;  /* url NUL (name NUL value NUL)* path NUL query NUL */
    uint32_t *hoff; /* name and value offsets into hbuf, two per header */
    size_t nheaders, hoff_cap;
    char *body;
    size_t body_cap;
    uv_write_t write;
    char head[256]; /* status line and the headers the server writes */
};

struct conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    http_parser parser;
    af_http_server_t *srv;
    conn_t *prev, *next;
    exch_t *ex;      /* being parsed */
    exch_t *ready;   /* just completed by the parser, to dispatch */
    exch_t *current; /* with the handler */
    exch_t *spare;
    char *pending; /* input received while a request is with the handler */
    size_t pending_off, pending_len, pending_cap;
    uint32_t writes; /* uv_write requests in flight */
    int fail_status; /* set by a parser callback that refuses the request */
    int timer_mode;
    int handles; /* open uv handles: tcp and timer */
    unsigned closed : 1, done_reading : 1, close_after_write : 1, lingering : 1, reading : 1,
        eof : 1, rejected : 1, in_process : 1;
    char remote[INET6_ADDRSTRLEN];
    int remote_port;
};

struct af_http_server_s {
    uv_loop_t *loop;
    af_http_server_config_t cfg;
    af_http_handler_fn handler;
    void *ud;
    uv_tcp_t listener;
    uv_timer_t drain;
    int listening;      /* listener initialised and not yet closed */
    int drain_inited;   /* drain timer initialised and not yet closed */
    int stopping;       /* af_http_server_stop was called */
    int stop_done;      /* its callback ran (or is running) */
    int in_stop_cb;     /* inside it: af_http_server_free defers */
    int free_requested; /* af_http_server_free waits for handles to close */
    int port;
    void (*stop_cb)(af_http_server_t *s, void *ud);
    void *stop_ud;
    conn_t *conns; /* every connection not yet closed, doubly linked */
    af_http_server_stats_t stats;
    time_t date_sec;
    char date[40];
    char *rbuf; /* READ_BUF_BYTES */
};

#define EX_OF_REQ(r) ((exch_t *)((char *)(r)-offsetof(exch_t, req)))
#define EX_OF_RES(r) ((exch_t *)((char *)(r)-offsetof(exch_t, res)))

static void conn_close(conn_t *c);
static void conn_fail(conn_t *c, int status, const char *msg);
static void conn_continue(conn_t *c);
static void conn_arm_timer(conn_t *c);
static void server_check_stopped(af_http_server_t *s);
static int exch_write(conn_t *c, exch_t *ex);

/* ---- small helpers -------------------------------------------------------------------------- */

const char *af_http_error_code(int status) {
    switch (status) {
    case 400:
        return "bad_request";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 408:
        return "request_timeout";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 409:
        return "conflict";
    case 413:
        return "payload_too_large";
    case 414:
        return "uri_too_long";
    case 415:
        return "unsupported_media_type";
    case 417:
        return "expectation_failed";
    case 422:
        return "unprocessable";
    case 431:
        return "headers_too_large";
    case 500:
        return "internal";
    case 503:
        return "unavailable";
    default:
        return "error";
    }
}

static const char *reason_phrase(int status) {
    const char *r = http_status_str((enum http_status)status);
    return (r == NULL || r[0] == '<') ? "Status" : r;
}

static int hexval(int ch) {
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* Percent-decodes src[0..len) into dst (room for len + 1), '+' as space when plus is set; a bad
 * escape is kept as it is. Returns the decoded length; dst is NUL-terminated. */
static size_t pct_decode(char *dst, const char *src, size_t len, int plus) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (src[i] == '%' && i + 2 < len && (hi = hexval((unsigned char)src[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)src[i + 2])) >= 0) {
            dst[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (plus && src[i] == '+') {
            dst[o++] = ' ';
        } else {
            dst[o++] = src[i];
        }
    }
    dst[o] = '\0';
    return o;
}

static int is_token_char(unsigned char ch) {
    return ch > 32 && ch < 127 && strchr("()<>@,;:\\\"/[]?={}", ch) == NULL;
}

static const char *server_date(af_http_server_t *s) {
    time_t now = time(NULL);
    if (now != s->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(s->date, sizeof s->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_sec = now;
    }
    return s->date;
}

/* ---- exchanges ------------------------------------------------------------------------------ */

/* Frees what one request used but the buffers worth keeping; empties the exchange. */
static void exch_reset(exch_t *ex) {
    free(ex->req.qpairs);
    free(ex->req.ppairs);
    free(ex->res.body);
    if (ex->body_cap > SPARE_MAX_BYTES) {
        free(ex->body);
        ex->body = NULL;
        ex->body_cap = 0;
    }
    if (ex->hbuf.cap > SPARE_MAX_BYTES) {
        af_buf_free(&ex->hbuf);
    }
    if (ex->res.hdrs.cap > SPARE_MAX_BYTES) {
        af_buf_free(&ex->res.hdrs);
    }
    if (ex->hoff_cap > 256) {
        free(ex->hoff);
        ex->hoff = NULL;
        ex->hoff_cap = 0;
    }
    ex->hbuf.len = 0;
    ex->res.hdrs.len = 0;
    memset(&ex->req, 0, sizeof ex->req);
    af_buf_t hdrs = ex->res.hdrs;
    memset(&ex->res, 0, sizeof ex->res);
    ex->res.hdrs = hdrs;
    ex->res.status = 200;
    ex->conn = NULL;
    ex->state = EX_PARSING;
    ex->keep_alive = ex->is_head = ex->headers_done = 0;
    ex->hdr_state = HDR_NONE;
    ex->url_len = 0;
    ex->nheaders = 0;
}

static void exch_free(exch_t *ex) {
    if (ex == NULL) {
        return;
    }
    exch_reset(ex);
    free(ex->body);
    free(ex->hoff);
    af_buf_free(&ex->hbuf);
    af_buf_free(&ex->res.hdrs);
    free(ex);
}

static exch_t *exch_new(conn_t *c) {
    exch_t *ex = c->spare;
    if (ex != NULL) {
        c->spare = NULL;
    } else {
        ex = calloc(1, sizeof *ex);
        if (ex == NULL) {
            return NULL;
        }
        ex->res.status = 200;
    }
    ex->conn = c;
    ex->state = EX_PARSING;
    return ex;
}

/* An exchange is finished with (written or dropped): keep it as the connection's spare. */
static void exch_release(conn_t *c, exch_t *ex) {
    if (c != NULL && !c->closed && c->spare == NULL) {
        exch_reset(ex);
        c->spare = ex;
    } else {
        exch_free(ex);
    }
}

/* ---- parser callbacks ----------------------------------------------------------------------- */

static int refuse(conn_t *c, int status) {
    c->fail_status = status;
    return -1;
}

static int hbuf_add(conn_t *c, exch_t *ex, const char *at, size_t len, int too_big_status) {
    if (ex->hbuf.len + len > c->srv->cfg.max_header_bytes) {
        return refuse(c, too_big_status);
    }
    if (af_buf_add(&ex->hbuf, at, len) != 0) {
        return refuse(c, 500);
    }
    return 0;
}

static void on_idle_or_read_timeout(uv_timer_t *t);

static int on_message_begin(http_parser *p) {
    conn_t *c = p->data;
    c->ex = exch_new(c);
    if (c->ex == NULL) {
        return refuse(c, 500);
    }
    if (c->timer_mode != TIMER_READ) { /* the whole request must come within the timeout */
        c->timer_mode = TIMER_READ;
        uv_timer_start(&c->timer, on_idle_or_read_timeout, c->srv->cfg.read_timeout_ms, 0);
    }
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
    conn_t *c = p->data;
    c->ex->url_len += len;
    return hbuf_add(c, c->ex, at, len, 414);
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
    conn_t *c = p->data;
    exch_t *ex = c->ex;
    if (ex->headers_done) { /* chunked trailers are not kept */
        return 0;
    }
    if (ex->hdr_state != HDR_FIELD) {
        if (ex->nheaders >= c->srv->cfg.max_headers) {
            return refuse(c, 431);
        }
        /* terminate the url or the previous value */
        if (hbuf_add(c, ex, "", 1, 431) != 0) {
            return -1;
        }
        if (2 * (ex->nheaders + 1) > ex->hoff_cap) {
            size_t cap = ex->hoff_cap ? ex->hoff_cap * 2 : 32;
            uint32_t *n = realloc(ex->hoff, cap * sizeof *n);
            if (n == NULL) {
                return refuse(c, 500);
            }
            ex->hoff = n;
            ex->hoff_cap = cap;
        }
        ex->hoff[2 * ex->nheaders] = (uint32_t)ex->hbuf.len;
        ex->hoff[2 * ex->nheaders + 1] = (uint32_t)ex->hbuf.len; /* until a value comes */
        ex->nheaders++;
        ex->hdr_state = HDR_FIELD;
    }
    return hbuf_add(c, ex, at, len, 431);
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
    conn_t *c = p->data;
    exch_t *ex = c->ex;
    if (ex->headers_done) {
        return 0;
    }
    if (ex->hdr_state == HDR_FIELD) {
        if (hbuf_add(c, ex, "", 1, 431) != 0) {
            return -1;
        }
        ex->hoff[2 * ex->nheaders - 1] = (uint32_t)ex->hbuf.len;
        ex->hdr_state = HDR_VALUE;
    }
    return hbuf_add(c, ex, at, len, 431);
}

static const char *exch_header(const exch_t *ex, const char *name) {
    for (size_t i = 0; i < ex->nheaders; i++) {
        if (strcasecmp(ex->hbuf.data + ex->hoff[2 * i], name) == 0) {
            return ex->hbuf.data + ex->hoff[2 * i + 1];
        }
    }
    return NULL;
}

static void conn_write_raw(conn_t *c, const char *data, size_t len);

static int on_headers_complete(http_parser *p) {
    conn_t *c = p->data;
    exch_t *ex = c->ex;
    af_http_server_t *s = c->srv;
    /* terminate the url (no headers) or the last name/value */
    if (hbuf_add(c, ex, "", 1, 431) != 0) {
        return -1;
    }
    if (ex->hdr_state == HDR_FIELD) { /* a name with no value: make the value "" */
        ex->hoff[2 * ex->nheaders - 1] = (uint32_t)ex->hbuf.len - 1;
    }
    ex->headers_done = 1;
    for (size_t i = 0; i < ex->nheaders; i++) { /* trailing whitespace is not part of a value */
        char *v = ex->hbuf.data + ex->hoff[2 * i + 1];
        size_t n = strlen(v);
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) {
            v[--n] = '\0';
        }
    }
    /* path and query, NUL-terminated, appended to hbuf (it does not move after this) */
    const char *url = ex->hbuf.data;
    size_t path_off = 0, path_len = 0, query_off = 0, query_len = 0;
    if (ex->url_len == 1 && url[0] == '*') {
        path_len = 1;
    } else {
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (http_parser_parse_url(url, ex->url_len, p->method == HTTP_CONNECT, &u) != 0) {
            return refuse(c, 400);
        }
        if (u.field_set & (1 << UF_PATH)) {
            path_off = u.field_data[UF_PATH].off;
            path_len = u.field_data[UF_PATH].len;
        }
        if (u.field_set & (1 << UF_QUERY)) {
            query_off = u.field_data[UF_QUERY].off;
            query_len = u.field_data[UF_QUERY].len;
        }
    }
    /* copies within hbuf: make room first so that the source does not move */
    size_t need = ex->hbuf.len + path_len + query_len + 4;
    if (need > ex->hbuf.cap) {
        char *nb = realloc(ex->hbuf.data, need);
        if (nb == NULL) {
            return refuse(c, 500);
        }
        ex->hbuf.data = nb;
        ex->hbuf.cap = need;
    }
    char *h = ex->hbuf.data;
    size_t pstart = ex->hbuf.len;
    if (path_len == 0) {
        h[pstart] = '/';
        path_len = 1;
    } else {
        memcpy(h + pstart, h + path_off, path_len);
    }
    h[pstart + path_len] = '\0';
    size_t qstart = pstart + path_len + 1;
    memcpy(h + qstart, h + query_off, query_len);
    h[qstart + query_len] = '\0';
    ex->hbuf.len = qstart + query_len + 1;
    ex->req.path = h + pstart;
    ex->req.query = h + qstart;
    ex->req.method = http_method_str((enum http_method)p->method);
    ex->req.http_minor = p->http_major > 1 ? 1 : p->http_minor;
    ex->is_head = p->method == HTTP_HEAD;

    /* the body: refuse a declared one that is too large before it comes */
    int chunked = (p->flags & F_CHUNKED) != 0;
    if (!chunked && (p->flags & F_CONTENTLENGTH) && p->content_length > 0) {
        if (p->content_length > s->cfg.max_body_bytes) {
            return refuse(c, 413);
        }
        size_t body_need = (size_t)p->content_length + 1;
        if (body_need > ex->body_cap) { /* a spare exchange may have room already */
            char *b = realloc(ex->body, body_need);
            if (b == NULL) {
                return refuse(c, 500);
            }
            ex->body = b;
            ex->body_cap = body_need;
        }
    }
    const char *expect = exch_header(ex, "expect");
    if (expect != NULL) {
        if (strcasecmp(expect, "100-continue") != 0) {
            return refuse(c, 417);
        }
        int has_body = chunked || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
        if (p->http_major == 1 && p->http_minor >= 1 && has_body) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            conn_write_raw(c, cont, sizeof cont - 1);
            if (c->closed) {
                return -1;
            }
        }
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
    conn_t *c = p->data;
    exch_t *ex = c->ex;
    size_t max = c->srv->cfg.max_body_bytes;
    if (len > max || ex->req.body_len > max - len) {
        return refuse(c, 413);
    }
    size_t need = ex->req.body_len + len + 1;
    if (need > ex->body_cap) {
        size_t cap = ex->body_cap ? ex->body_cap : 1024;
        while (cap < need) {
            cap *= 2;
        }
        if (cap > max + 1) {
            cap = max + 1;
        }
        char *b = realloc(ex->body, cap);
        if (b == NULL) {
            return refuse(c, 500);
        }
        ex->body = b;
        ex->body_cap = cap;
    }
    memcpy(ex->body + ex->req.body_len, at, len);
    ex->req.body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p) {
    conn_t *c = p->data;
    exch_t *ex = c->ex;
    if (ex->body != NULL) {
        ex->body[ex->req.body_len] = '\0';
        ex->req.body = ex->body;
    } else {
        ex->req.body = "";
    }
    ex->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    c->ready = ex;
    c->ex = NULL;
    http_parser_pause(p, 1); /* one request at a time: the rest waits in the input */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_status = NULL, /* responses only */
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = NULL, /* chunks arrive through on_body */
    .on_chunk_complete = NULL,
};

/* ---- connections ---------------------------------------------------------------------------- */

static void on_conn_handle_closed(uv_handle_t *h) {
    conn_t *c = h->data;
    if (--c->handles > 0) {
        return;
    }
    af_http_server_t *s = c->srv;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    if (!c->rejected) {
        s->stats.open--;
    }
    free(c);
    server_check_stopped(s);
}

/* Closes the connection now: writes in flight are cancelled, a request with the handler is
 * detached (its cancel callback runs last, when everything here is consistent). */
static void conn_close(conn_t *c) {
    if (c->closed) {
        return;
    }
    c->closed = 1;
    c->done_reading = 1;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    exch_free(c->ex);
    exch_free(c->ready);
    exch_free(c->spare);
    c->ex = c->ready = c->spare = NULL;
    free(c->pending);
    c->pending = NULL;
    c->pending_len = c->pending_off = c->pending_cap = 0;
    exch_t *cur = c->current;
    if (cur != NULL) {
        c->current = NULL;
        c->srv->stats.answering--;
        cur->conn = NULL;
        cur->state = EX_DETACHED;
        cur->res.cancelled = 1;
        if (cur->res.on_cancel != NULL) {
            cur->res.on_cancel(&cur->res, cur->res.cancel_ud);
        }
    }
}

static void on_linger_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static void on_shutdown(uv_shutdown_t *req, int status) {
    conn_t *c = req->data;
    free(req);
    if (status < 0) {
        conn_close(c);
    }
}

/* The last answer is written: send FIN, then drain what the client still sends for a moment
 * before closing, so that unread input does not turn our close into a reset that could destroy
 * the answer on the client's side. */
static void conn_finish(conn_t *c) {
    if (c->closed || c->lingering) {
        return;
    }
    c->done_reading = 1;
    if (c->eof) {
        conn_close(c);
        return;
    }
    uv_shutdown_t *req = malloc(sizeof *req);
    if (req == NULL) {
        conn_close(c);
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        conn_close(c);
        return;
    }
    c->lingering = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_linger_read);
    c->reading = 1;
    conn_arm_timer(c);
}

static void conn_write_done(conn_t *c, int status) {
    c->writes--;
    if (c->closed) {
        return;
    }
    if (status < 0) {
        conn_close(c);
    } else if (c->writes == 0 && c->close_after_write) {
        conn_finish(c);
    }
}

typedef struct raw_write_s {
    uv_write_t req;
    conn_t *conn;
} raw_write_t;

static void on_raw_written(uv_write_t *req, int status) {
    raw_write_t *w = (raw_write_t *)req;
    conn_t *c = w->conn;
    free(w);
    conn_write_done(c, status);
}

/* Writes static bytes (100 Continue, canned answers) in order with the rest. */
static void conn_write_raw(conn_t *c, const char *data, size_t len) {
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    if (c->writes == 0) {
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n == (int)len) {
            return;
        }
        if (n > 0) {
            b.base += n;
            b.len -= (size_t)n;
        }
    }
    raw_write_t *w = malloc(sizeof *w);
    if (w == NULL) {
        conn_close(c);
        return;
    }
    w->conn = c;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_raw_written) != 0) {
        free(w);
        conn_close(c);
        return;
    }
    c->writes++;
}

static int write_backlogged(conn_t *c) {
    return uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > WRITE_BACKLOG_BYTES;
}

static void on_exch_written(uv_write_t *req, int status) {
    exch_t *ex = (exch_t *)((char *)req - offsetof(exch_t, write));
    conn_t *c = req->data;
    exch_release(c, ex);
    conn_write_done(c, status);
    if (!c->closed && c->current == NULL && c->pending_len > 0 && !write_backlogged(c)) {
        conn_continue(c); /* the client reads again: parse what waited */
    }
}

/* Writes ex's answer after whatever is in flight; ex is released once written. Returns 0, or
 * AF_EIO when the connection had to be closed. Decides whether the connection stays open. */
static int exch_write(conn_t *c, exch_t *ex) {
    af_http_server_t *s = c->srv;
    struct af_http_res_s *res = &ex->res;
    int keep = ex->keep_alive && !res->force_close && !s->stopping;
    int status = res->status;
    int no_body = status < 200 || status == 204 || status == 304;
    size_t n = (size_t)snprintf(ex->head, sizeof ex->head, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status,
                                reason_phrase(status), server_date(s));
    if (!no_body) {
        n += (size_t)snprintf(ex->head + n, sizeof ex->head - n, "Content-Length: %zu\r\n",
                              res->body_len);
    }
    if (!keep) {
        n += (size_t)snprintf(ex->head + n, sizeof ex->head - n, "Connection: close\r\n");
    } else if (ex->req.http_minor == 0) {
        n += (size_t)snprintf(ex->head + n, sizeof ex->head - n, "Connection: keep-alive\r\n");
    }
    uv_buf_t bufs[3];
    unsigned nb = 0;
    if (res->hdrs.len > 0) {
        if (af_buf_add(&res->hdrs, "\r\n", 2) != 0) {
            exch_release(c, ex);
            conn_close(c);
            return AF_EIO;
        }
    } else {
        n += (size_t)snprintf(ex->head + n, sizeof ex->head - n, "\r\n");
    }
    bufs[nb++] = uv_buf_init(ex->head, (unsigned)n);
    if (res->hdrs.len > 0) {
        bufs[nb++] = uv_buf_init(res->hdrs.data, (unsigned)res->hdrs.len);
    }
    if (!no_body && !ex->is_head && res->body_len > 0) {
        bufs[nb++] = uv_buf_init(res->body, (unsigned)res->body_len);
    }
    if (!keep) {
        c->close_after_write = 1;
        c->done_reading = 1;
    }
    ex->state = EX_INTERNAL;
    unsigned first = 0;
    if (c->writes == 0) { /* usually the whole answer goes out here, with no write request */
        size_t total = 0;
        for (unsigned i = 0; i < nb; i++) {
            total += bufs[i].len;
        }
        int w = uv_try_write((uv_stream_t *)&c->tcp, bufs, nb);
        if (w > 0 && (size_t)w == total) {
            exch_release(c, ex);
            if (c->close_after_write) {
                conn_finish(c);
            }
            return 0;
        }
        size_t done = w > 0 ? (size_t)w : 0;
        while (first < nb && done >= bufs[first].len) {
            done -= bufs[first].len;
            first++;
        }
        bufs[first].base += done;
        bufs[first].len -= done;
    }
    ex->write.data = c;
    if (uv_write(&ex->write, (uv_stream_t *)&c->tcp, bufs + first, nb - first, on_exch_written) !=
        0) {
        exch_release(c, ex);
        conn_close(c);
        return AF_EIO;
    }
    c->writes++;
    return 0;
}

static void set_error_body(exch_t *ex, int status, const char *msg) {
    struct af_http_res_s *res = &ex->res;
    res->status = status;
    res->hdrs.len = 0;
    free(res->body);
    res->body = NULL;
    res->body_len = 0;
    const char *code = af_http_error_code(status);
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg ? msg : "");
    if (j == NULL) { /* the message was not UTF-8 */
        j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", "(not UTF-8)");
    }
    char *text = j != NULL ? af_json_dumps(j, 0) : NULL;
    json_decref(j);
    if (text != NULL) {
        res->body = text;
        res->body_len = strlen(text);
        af_buf_addf(&res->hdrs, "Content-Type: application/json\r\n");
    }
}

/* Refuses the request being read (or the connection): answers status with the error JSON and
 * closes once it is written. Input after this is ignored. */
static void conn_fail(conn_t *c, int status, const char *msg) {
    if (c->closed || c->done_reading) {
        return;
    }
    exch_t *ex = c->ex != NULL ? c->ex : exch_new(c);
    c->ex = NULL;
    if (ex == NULL) {
        conn_close(c);
        return;
    }
    if (!ex->headers_done) {
        ex->is_head = 0;
    }
    ex->state = EX_INTERNAL;
    ex->keep_alive = 0;
    set_error_body(ex, status, msg);
    c->done_reading = 1;
    exch_write(c, ex);
}

static void conn_dispatch(conn_t *c, exch_t *ex) {
    af_http_server_t *s = c->srv;
    ex->state = EX_HANDLER;
    c->current = ex;
    s->stats.requests++;
    s->stats.answering++;
    memcpy(ex->req.remote, c->remote, sizeof ex->req.remote);
    ex->req.remote_port = c->remote_port;
    if (c->timer_mode != TIMER_NONE) {
        c->timer_mode = TIMER_NONE;
        uv_timer_stop(&c->timer);
    }
    s->handler(&ex->req, &ex->res, s->ud);
}

/* Parses data until it is used up, a request is with the handler, or the connection stops
 * reading; dispatches each complete request. Returns the bytes consumed. */
static size_t conn_parse(conn_t *c, const char *data, size_t len) {
    size_t off = 0;
    while (off < len && !c->done_reading && c->current == NULL && !write_backlogged(c)) {
        size_t n = http_parser_execute(&c->parser, &parser_settings, data + off, len - off);
        off += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            exch_t *ex = c->ready;
            c->ready = NULL;
            if (c->parser.upgrade) { /* no protocol switch here: answer, then close */
                off = len;
                ex->keep_alive = 0;
            }
            conn_dispatch(c, ex);
            continue;
        }
        if (e != HPE_OK) {
            int status = c->fail_status;
            const char *msg = NULL;
            char text[128];
            if (status == 0) {
                status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
            }
            switch (status) {
            case 413:
                snprintf(text, sizeof text, "request body larger than %zu bytes",
                         c->srv->cfg.max_body_bytes);
                msg = text;
                break;
            case 414:
            case 431:
                snprintf(text, sizeof text,
                         "request head larger than %zu bytes or more than %u headers",
                         c->srv->cfg.max_header_bytes, (unsigned)c->srv->cfg.max_headers);
                msg = text;
                break;
            case 417:
                msg = "only Expect: 100-continue is supported";
                break;
            case 500:
                msg = "out of memory";
                break;
            default:
                snprintf(text, sizeof text, "malformed request: %s", http_errno_description(e));
                msg = text;
            }
            conn_fail(c, status, msg);
            return len;
        }
        if (n == 0) {
            break;
        }
    }
    return off;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    conn_t *c = h->data;
    buf->base = c->srv->rbuf;
    buf->len = READ_BUF_BYTES;
}

static size_t pending_limit(const conn_t *c) {
    size_t lim = 2 * c->srv->cfg.max_header_bytes;
    return lim < READ_BUF_BYTES ? READ_BUF_BYTES : lim;
}

static int pending_add(conn_t *c, const char *data, size_t len) {
    if (c->pending_off > 0 && c->pending_len > 0) {
        memmove(c->pending, c->pending + c->pending_off, c->pending_len);
    }
    c->pending_off = 0;
    if (c->pending_len + len > c->pending_cap) {
        size_t cap = c->pending_cap ? c->pending_cap : 4096;
        while (cap < c->pending_len + len) {
            cap *= 2;
        }
        char *p = realloc(c->pending, cap);
        if (p == NULL) {
            return AF_ENOMEM;
        }
        c->pending = p;
        c->pending_cap = cap;
    }
    memcpy(c->pending + c->pending_len, data, len);
    c->pending_len += len;
    if (c->pending_len >= pending_limit(c) && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp); /* the client waits until we catch up */
        c->reading = 0;
    }
    return 0;
}

static void on_idle_or_read_timeout(uv_timer_t *t) {
    conn_t *c = t->data;
    int mode = c->timer_mode;
    c->timer_mode = TIMER_NONE;
    if (mode == TIMER_READ && !c->done_reading) {
        char text[96];
        snprintf(text, sizeof text, "request not received within %llu ms",
                 (unsigned long long)c->srv->cfg.read_timeout_ms);
        conn_fail(c, 408, text);
    } else {
        conn_close(c);
    }
}

/* Sets the connection's one timer for the state it is in. */
static void conn_arm_timer(conn_t *c) {
    if (c->closed) {
        return;
    }
    af_http_server_t *s = c->srv;
    if (c->lingering) {
        c->timer_mode = TIMER_LINGER;
        uv_timer_start(&c->timer, on_idle_or_read_timeout, LINGER_MS, 0);
    } else if (c->current != NULL) { /* the handler takes the time it needs */
        if (c->timer_mode != TIMER_NONE) {
            c->timer_mode = TIMER_NONE;
            uv_timer_stop(&c->timer);
        }
    } else if (c->done_reading) { /* a last answer being written: as long as an idle wait */
        if (c->timer_mode != TIMER_IDLE) {
            c->timer_mode = TIMER_IDLE;
            uv_timer_start(&c->timer, on_idle_or_read_timeout, s->cfg.idle_timeout_ms, 0);
        }
    } else if (c->ex != NULL) {
        if (c->timer_mode != TIMER_READ) {
            c->timer_mode = TIMER_READ;
            uv_timer_start(&c->timer, on_idle_or_read_timeout, s->cfg.read_timeout_ms, 0);
        }
    } else if (s->stopping && c->writes == 0) {
        conn_close(c); /* idle while the server stops */
    } else {
        c->timer_mode = TIMER_IDLE;
        uv_timer_start(&c->timer, on_idle_or_read_timeout, s->cfg.idle_timeout_ms, 0);
    }
}

static void on_linger_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    conn_t *c = st->data;
    if (nread < 0) {
        conn_close(c);
    }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    conn_t *c = st->data;
    if (nread == 0 || c->closed) {
        return;
    }
    if (nread < 0) {
        c->eof = 1;
        if (c->current == NULL && c->writes > 0) { /* finish writing the answers, then close */
            c->close_after_write = 1;
            c->done_reading = 1;
            uv_read_stop(st);
            c->reading = 0;
            conn_arm_timer(c);
        } else {
            conn_close(c); /* the client is gone: a request with the handler is cancelled */
        }
        return;
    }
    if (c->done_reading) {
        return; /* an answer that closes is being written: the rest is ignored */
    }
    c->in_process = 1;
    size_t used = 0;
    if (c->pending_len == 0 && c->current == NULL) {
        used = conn_parse(c, buf->base, (size_t)nread);
    }
    if (used < (size_t)nread && !c->done_reading && !c->closed &&
        pending_add(c, buf->base + used, (size_t)nread - used) != 0) {
        c->in_process = 0;
        conn_close(c);
        return;
    }
    c->in_process = 0;
    if (c->current == NULL && c->pending_len > 0) {
        conn_continue(c);
    } else {
        conn_arm_timer(c);
    }
}

/* The request with the handler was answered outside the parsing loop: parse what waited. */
static void conn_continue(conn_t *c) {
    if (c->in_process || c->closed) {
        return;
    }
    c->in_process = 1;
    while (c->pending_len > 0 && !c->done_reading && !c->closed && c->current == NULL &&
           !write_backlogged(c)) {
        size_t used = conn_parse(c, c->pending + c->pending_off, c->pending_len);
        if (c->pending == NULL) {
            break; /* closed meanwhile */
        }
        c->pending_off += used;
        c->pending_len -= used;
        if (used == 0) {
            break;
        }
    }
    if (c->pending_len == 0) {
        c->pending_off = 0;
        if (c->pending_cap > 4 * 4096) { /* a burst is over: idle connections stay small */
            free(c->pending);
            c->pending = NULL;
            c->pending_cap = 0;
        }
    }
    c->in_process = 0;
    if (!c->closed && !c->done_reading && !c->reading && c->pending_len < pending_limit(c)) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) {
            c->reading = 1;
        }
    }
    conn_arm_timer(c);
}

static void on_connection(uv_stream_t *server, int status) {
    af_http_server_t *s = server->data;
    if (status < 0 || s->stopping) {
        return;
    }
    conn_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return;
    }
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    c->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->stats.accepted++;
    int over = s->stats.open >= s->cfg.max_connections;
    if (over) {
        c->rejected = 1;
        s->stats.rejected++;
    } else {
        s->stats.open++;
    }
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, c->remote, sizeof c->remote);
            c->remote_port = ntohs(a->sin6_port);
        } else if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            uv_ip4_name(a, c->remote, sizeof c->remote);
            c->remote_port = ntohs(a->sin_port);
        }
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    c->reading = 1;
    if (over) {
        conn_fail(c, 503, "too many connections");
        return;
    }
    conn_arm_timer(c);
}

/* ---- the server ----------------------------------------------------------------------------- */

af_http_server_t *af_http_server_new(uv_loop_t *loop, const af_http_server_config_t *config,
                                     af_http_handler_fn handler, void *ud) {
    if (loop == NULL || handler == NULL) {
        return NULL;
    }
    af_http_server_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->rbuf = malloc(READ_BUF_BYTES);
    if (s->rbuf == NULL) {
        free(s);
        return NULL;
    }
    s->loop = loop;
    s->handler = handler;
    s->ud = ud;
    if (config != NULL) {
        s->cfg = *config;
    }
    af_http_server_config_t *c = &s->cfg;
    c->max_header_bytes =
        c->max_header_bytes ? c->max_header_bytes : AF_HTTP_DEFAULT_MAX_HEADER_BYTES;
    c->max_headers = c->max_headers ? c->max_headers : AF_HTTP_DEFAULT_MAX_HEADERS;
    c->max_body_bytes = c->max_body_bytes ? c->max_body_bytes : AF_HTTP_DEFAULT_MAX_BODY_BYTES;
    c->read_timeout_ms = c->read_timeout_ms ? c->read_timeout_ms : AF_HTTP_DEFAULT_READ_TIMEOUT_MS;
    c->idle_timeout_ms = c->idle_timeout_ms ? c->idle_timeout_ms : AF_HTTP_DEFAULT_IDLE_TIMEOUT_MS;
    c->max_connections = c->max_connections ? c->max_connections : AF_HTTP_DEFAULT_MAX_CONNECTIONS;
    c->drain_timeout_ms =
        c->drain_timeout_ms ? c->drain_timeout_ms : AF_HTTP_DEFAULT_DRAIN_TIMEOUT_MS;
    if (c->max_header_bytes > UINT32_MAX / 2) {
        c->max_header_bytes = UINT32_MAX / 2; /* header offsets are 32-bit */
    }
    /* http_parser's own (process-wide) limit must not cut in before ours */
    static uint32_t parser_limit = HTTP_MAX_HEADER_SIZE;
    if (c->max_header_bytes + 4096 > parser_limit) {
        parser_limit = (uint32_t)c->max_header_bytes + 4096;
        http_parser_set_max_header_size(parser_limit);
    }
    return s;
}

int af_http_server_listen(af_http_server_t *s, const char *host, int port, af_error_t *err) {
    if (s == NULL || host == NULL || port < 0 || port > 65535) {
        return af_error_set(err, AF_EINVAL, "invalid listen address");
    }
    if (s->listening || s->stopping) {
        return af_error_set(err, AF_EINVAL, "the server is already listening or stopped");
    }
    struct sockaddr_storage ss;
    int rc = strchr(host, ':') != NULL ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss)
                                       : uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
    if (rc != 0) {
        return af_error_set(err, AF_EINVAL, "invalid listen address %s", host);
    }
    uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    s->listening = 1;
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
    }
    if (rc != 0) {
        af_error_set(err, AF_EIO, "cannot listen on %s port %d: %s", host, port, uv_strerror(rc));
        af_http_server_stop(s, NULL, NULL); /* closes the listener; the server stays stopped */
        return AF_EIO;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len) == 0) {
        s->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                              : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    }
    return 0;
}

int af_http_server_port(const af_http_server_t *s) {
    return s != NULL ? s->port : 0;
}

void af_http_server_stats(const af_http_server_t *s, af_http_server_stats_t *stats) {
    *stats = s->stats;
}

static void server_free_now(af_http_server_t *s) {
    free(s->rbuf);
    free(s);
}

static void on_drain_closed(uv_handle_t *h) {
    af_http_server_t *s = h->data;
    s->drain_inited = 0;
    s->stop_done = 1;
    if (s->stop_cb != NULL) {
        s->in_stop_cb = 1;
        s->stop_cb(s, s->stop_ud);
        s->in_stop_cb = 0;
    }
    if (s->free_requested) {
        server_free_now(s);
    }
}

static void on_listener_closed(uv_handle_t *h) {
    af_http_server_t *s = h->data;
    s->listening = 0;
    server_check_stopped(s);
}

/* Once the listener and every connection are closed, the drain timer goes too; its close callback
 * reports the stop. */
static void server_check_stopped(af_http_server_t *s) {
    if (!s->stopping || s->listening || s->conns != NULL || !s->drain_inited ||
        uv_is_closing((uv_handle_t *)&s->drain)) {
        return;
    }
    uv_close((uv_handle_t *)&s->drain, on_drain_closed);
}

static void on_drain_timeout(uv_timer_t *t) {
    af_http_server_t *s = t->data;
    for (conn_t *c = s->conns; c != NULL; c = c->next) {
        conn_close(c); /* unlinks only in its close callback */
    }
    server_check_stopped(s);
}

int af_http_server_stop(af_http_server_t *s, void (*cb)(af_http_server_t *s, void *ud), void *ud) {
    if (s == NULL || s->stopping) {
        return AF_ESTATE;
    }
    s->stopping = 1;
    s->stop_cb = cb;
    s->stop_ud = ud;
    uv_timer_init(s->loop, &s->drain);
    s->drain.data = s;
    s->drain_inited = 1;
    uv_timer_start(&s->drain, on_drain_timeout, s->cfg.drain_timeout_ms, 0);
    if (s->listening && !uv_is_closing((uv_handle_t *)&s->listener)) {
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    }
    for (conn_t *c = s->conns; c != NULL; c = c->next) {
        if (c->closed) {
            continue;
        }
        if (c->ex == NULL && c->current == NULL && c->ready == NULL && !c->lingering) {
            if (c->writes == 0) {
                conn_close(c);
            } else {
                c->close_after_write = 1;
                c->done_reading = 1;
            }
        }
    }
    if (!s->listening && s->conns == NULL) {
        /* nothing to wait for, but cb must not run inside this call: let the timer fire */
        uv_timer_start(&s->drain, on_drain_timeout, 0, 0);
    }
    return 0;
}

void af_http_server_free(af_http_server_t *s) {
    if (s == NULL) {
        return;
    }
    if (s->in_stop_cb) {
        s->free_requested = 1;
        return;
    }
    if (!s->listening && !s->drain_inited && s->conns == NULL) {
        server_free_now(s);
        return;
    }
    s->free_requested = 1;
    if (!s->stopping) {
        af_http_server_stop(s, NULL, NULL);
    }
    if (s->drain_inited && !uv_is_closing((uv_handle_t *)&s->drain)) {
        uv_timer_start(&s->drain, on_drain_timeout, 0, 0);
    }
}

/* ---- the request ---------------------------------------------------------------------------- */

const char *af_http_req_method(const af_http_req_t *req) {
    return req->method;
}

const char *af_http_req_path(const af_http_req_t *req) {
    return req->path;
}

const char *af_http_req_query(const af_http_req_t *req) {
    return req->query;
}

static int query_parse(af_http_req_t *req) {
    const char *q = req->query;
    size_t qlen = strlen(q);
    size_t n = 0;
    for (const char *p = q; *p != '\0';) {
        const char *amp = strchr(p, '&');
        size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
        if (len > 0) {
            n++;
        }
        p += len + (amp != NULL);
    }
    req->q_parsed = 1;
    if (n == 0) {
        return 0;
    }
    const char **pairs = malloc(2 * n * sizeof *pairs + qlen + 2 * n);
    if (pairs == NULL) {
        req->q_parsed = 0;
        return AF_ENOMEM;
    }
    char *text = (char *)(pairs + 2 * n);
    size_t i = 0;
    for (const char *p = q; *p != '\0';) {
        const char *amp = strchr(p, '&');
        size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            size_t klen = eq != NULL ? (size_t)(eq - p) : len;
            pairs[2 * i] = text;
            text += pct_decode(text, p, klen, 1) + 1;
            pairs[2 * i + 1] = text;
            if (eq != NULL) {
                text += pct_decode(text, eq + 1, len - klen - 1, 1) + 1;
            } else {
                *text++ = '\0';
            }
            i++;
        }
        p += len + (amp != NULL);
    }
    req->qpairs = pairs;
    req->nq = n;
    return 0;
}

const char *af_http_req_query_param(af_http_req_t *req, const char *name) {
    if (!req->q_parsed && query_parse(req) != 0) {
        return NULL;
    }
    for (size_t i = 0; i < req->nq; i++) {
        if (strcmp(req->qpairs[2 * i], name) == 0) {
            return req->qpairs[2 * i + 1];
        }
    }
    return NULL;
}

const char *af_http_req_header(const af_http_req_t *req, const char *name) {
    return exch_header(EX_OF_REQ(req), name);
}

size_t af_http_req_header_count(const af_http_req_t *req) {
    return EX_OF_REQ(req)->nheaders;
}

int af_http_req_header_at(const af_http_req_t *req, size_t i, const char **name,
                          const char **value) {
    const exch_t *ex = EX_OF_REQ(req);
    if (i >= ex->nheaders) {
        return AF_EINVAL;
    }
    if (name != NULL) {
        *name = ex->hbuf.data + ex->hoff[2 * i];
    }
    if (value != NULL) {
        *value = ex->hbuf.data + ex->hoff[2 * i + 1];
    }
    return 0;
}

const char *af_http_req_body(const af_http_req_t *req, size_t *len) {
    if (len != NULL) {
        *len = req->body_len;
    }
    return req->body;
}

const char *af_http_req_remote_addr(const af_http_req_t *req) {
    return req->remote;
}

int af_http_req_remote_port(const af_http_req_t *req) {
    return req->remote_port;
}

int af_http_req_http_minor(const af_http_req_t *req) {
    return req->http_minor;
}

const char *af_http_req_param(const af_http_req_t *req, const char *name) {
    for (size_t i = 0; i < req->np; i++) {
        if (strcmp(req->ppairs[2 * i], name) == 0) {
            return req->ppairs[2 * i + 1];
        }
    }
    return NULL;
}

const char *af_http_req_wildcard(const af_http_req_t *req) {
    return req->wildcard;
}

/* ---- the response --------------------------------------------------------------------------- */

af_http_req_t *af_http_res_request(af_http_res_t *res) {
    return &EX_OF_RES(res)->req;
}

int af_http_res_set_status(af_http_res_t *res, int status) {
    if (status < 200 || status > 999) {
        return AF_EINVAL;
    }
    res->status = status;
    return 0;
}

int af_http_res_add_header(af_http_res_t *res, const char *name, const char *value) {
    if (name == NULL || value == NULL || name[0] == '\0') {
        return AF_EINVAL;
    }
    for (const char *p = name; *p != '\0'; p++) {
        if (!is_token_char((unsigned char)*p)) {
            return AF_EINVAL;
        }
    }
    if (strpbrk(value, "\r\n") != NULL) {
        return AF_EINVAL;
    }
    if (strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0) {
        return AF_EINVAL;
    }
    if (strcasecmp(name, "connection") == 0) {
        if (strcasecmp(value, "close") == 0) {
            res->force_close = 1;
        }
        return 0;
    }
    return af_buf_addf(&res->hdrs, "%s: %s\r\n", name, value);
}

int af_http_res_set_body(af_http_res_t *res, const void *data, size_t len) {
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        return AF_ENOMEM;
    }
    if (len > 0) {
        memcpy(copy, data, len);
    }
    copy[len] = '\0';
    af_http_res_steal_body(res, copy, len);
    return 0;
}

void af_http_res_steal_body(af_http_res_t *res, char *data, size_t len) {
    free(res->body);
    res->body = data;
    res->body_len = data != NULL ? len : 0;
}

int af_http_res_send(af_http_res_t *res) {
    exch_t *ex = EX_OF_RES(res);
    if (ex->state == EX_DETACHED) {
        exch_free(ex);
        return AF_ECANCELLED;
    }
    if (ex->state != EX_HANDLER) {
        return AF_ESTATE; /* sent twice: a bug in the handler */
    }
    conn_t *c = ex->conn;
    c->current = NULL;
    c->srv->stats.answering--;
    int rc = exch_write(c, ex);
    if (rc == 0) {
        conn_continue(c);
    }
    return rc;
}

int af_http_res_send_json(af_http_res_t *res, int status, const json_t *value) {
    char *text = value != NULL ? af_json_dumps(value, 0) : NULL;
    if (text == NULL) {
        af_http_res_set_status(res, 500);
        af_http_res_steal_body(res, NULL, 0);
        af_http_res_send(res);
        return AF_ENOMEM;
    }
    if (af_http_res_set_status(res, status) != 0) {
        res->status = 500;
    }
    af_http_res_steal_body(res, text, strlen(text));
    af_http_res_add_header(res, "Content-Type", "application/json");
    return af_http_res_send(res);
}

int af_http_res_send_error(af_http_res_t *res, int status, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (status < 200 || status > 999) {
        status = 500;
    }
    af_buf_t keep = res->hdrs; /* headers the handler set (e.g. Allow) stay */
    res->hdrs = (af_buf_t){0};
    set_error_body(EX_OF_RES(res), status, msg);
    if (keep.len > 0) {
        af_buf_add(&keep, res->hdrs.data, res->hdrs.len);
        af_buf_free(&res->hdrs);
        res->hdrs = keep;
    } else {
        af_buf_free(&keep);
    }
    return af_http_res_send(res);
}

int af_http_res_cancelled(const af_http_res_t *res) {
    return res->cancelled;
}

void af_http_res_on_cancel(af_http_res_t *res, void (*cb)(af_http_res_t *res, void *ud), void *ud) {
    res->on_cancel = cb;
    res->cancel_ud = ud;
}

/* ---- the router ----------------------------------------------------------------------------- */

enum { SEG_LITERAL = 3, SEG_PARAM = 2, SEG_WILD = 1 };

typedef struct route_s {
    char *method;  /* NULL: any */
    char *pattern; /* as given */
    char *segs;    /* the segments, NUL-separated */
    const char **seg;
    uint8_t *kind;
    size_t nseg; /* without the wildcard */
    int wildcard;
    uint64_t score; /* 2 bits a segment, first segment highest */
    af_http_handler_fn fn;
    void *ud;
} route_t;

struct af_http_router_s {
    route_t *routes;
    size_t n, cap;
};

af_http_router_t *af_http_router_new(void) {
    return calloc(1, sizeof(af_http_router_t));
}

static void route_free(route_t *r) {
    free(r->method);
    free(r->pattern);
    free(r->segs);
    free(r->seg);
    free(r->kind);
}

void af_http_router_free(af_http_router_t *r) {
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        route_free(&r->routes[i]);
    }
    free(r->routes);
    free(r);
}

int af_http_router_add(af_http_router_t *r, const char *method, const char *pattern,
                       af_http_handler_fn fn, void *ud) {
    if (r == NULL || pattern == NULL || pattern[0] != '/' || fn == NULL) {
        return AF_EINVAL;
    }
    if (method != NULL && strcmp(method, "*") == 0) {
        method = NULL;
    }
    for (size_t i = 0; i < r->n; i++) {
        const route_t *o = &r->routes[i];
        if (strcmp(o->pattern, pattern) == 0 &&
            ((o->method == NULL && method == NULL) ||
             (o->method != NULL && method != NULL && strcmp(o->method, method) == 0))) {
            return AF_EEXISTS;
        }
    }
    route_t rt = {0};
    rt.fn = fn;
    rt.ud = ud;
    rt.pattern = strdup(pattern);
    rt.segs = strdup(pattern + 1);
    rt.method = method != NULL ? strdup(method) : NULL;
    size_t maxseg = 1;
    for (const char *p = pattern + 1; *p != '\0'; p++) {
        maxseg += *p == '/';
    }
    rt.seg = calloc(maxseg, sizeof *rt.seg);
    rt.kind = calloc(maxseg, 1);
    if (rt.pattern == NULL || rt.segs == NULL || (method != NULL && rt.method == NULL) ||
        rt.seg == NULL || rt.kind == NULL) {
        route_free(&rt);
        return AF_ENOMEM;
    }
    char *p = rt.segs;
    for (size_t i = 0; i < maxseg; i++) {
        char *slash = strchr(p, '/');
        if (slash != NULL) {
            *slash = '\0';
        }
        if (strcmp(p, "*") == 0) {
            if (slash != NULL) {
                route_free(&rt);
                return AF_EINVAL; /* '*' only last */
            }
            rt.wildcard = 1;
            break;
        }
        if (p[0] == ':' && p[1] == '\0') {
            route_free(&rt);
            return AF_EINVAL;
        }
        rt.kind[rt.nseg] = p[0] == ':' ? SEG_PARAM : SEG_LITERAL;
        rt.seg[rt.nseg++] = p[0] == ':' ? p + 1 : p;
        if (slash == NULL) {
            break;
        }
        p = slash + 1;
    }
    if (rt.nseg + (size_t)rt.wildcard > ROUTE_MAX_SEGS) {
        route_free(&rt);
        return AF_EINVAL;
    }
    for (size_t i = 0; i < rt.nseg; i++) {
        rt.score |= (uint64_t)rt.kind[i] << (2 * (ROUTE_MAX_SEGS - 1 - i));
    }
    if (rt.wildcard) {
        rt.score |= (uint64_t)SEG_WILD << (2 * (ROUTE_MAX_SEGS - 1 - rt.nseg));
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        route_t *n = realloc(r->routes, cap * sizeof *n);
        if (n == NULL) {
            route_free(&rt);
            return AF_ENOMEM;
        }
        r->routes = n;
        r->cap = cap;
    }
    r->routes[r->n++] = rt;
    return 0;
}

/* Does path match the route? When caps is not NULL, records each `:param` segment's start and
 * length (caps[2i], caps[2i+1]) and where the wildcard's rest begins (*rest). */
static int route_match(const route_t *rt, const char *path, size_t *caps, const char **rest) {
    if (path[0] != '/') {
        return 0;
    }
    const char *p = path + 1;
    size_t np = 0;
    for (size_t i = 0; i < rt->nseg; i++) {
        if (p == NULL) {
            return 0;
        }
        const char *end = strchr(p, '/');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (rt->kind[i] == SEG_LITERAL) {
            if (strlen(rt->seg[i]) != len || memcmp(rt->seg[i], p, len) != 0) {
                return 0;
            }
        } else {
            if (len == 0) {
                return 0;
            }
            if (caps != NULL) {
                caps[2 * np] = (size_t)(p - path);
                caps[2 * np + 1] = len;
            }
            np++;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    if (rt->wildcard) {
        if (rest != NULL) {
            *rest = p != NULL ? p : path + strlen(path);
        }
        return 1;
    }
    return p == NULL;
}

static int method_fits(const route_t *rt, const char *method) {
    return rt->method == NULL || strcmp(rt->method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0);
}

/* Copies the route's parameters, decoded, into the request (one block). */
static int route_bind(const route_t *rt, af_http_req_t *req) {
    const char *path = req->path;
    size_t caps[2 * ROUTE_MAX_SEGS];
    const char *rest = NULL;
    route_match(rt, path, caps, &rest);
    size_t np = 0, text = 0;
    for (size_t i = 0; i < rt->nseg; i++) {
        if (rt->kind[i] == SEG_PARAM) {
            text += strlen(rt->seg[i]) + 1 + caps[2 * np + 1] + 1;
            np++;
        }
    }
    size_t rest_len = rest != NULL ? strlen(rest) : 0;
    text += rest_len + 1;
    const char **pairs = malloc(2 * np * sizeof *pairs + text);
    if (pairs == NULL) {
        return AF_ENOMEM;
    }
    char *t = (char *)(pairs + 2 * np);
    np = 0;
    for (size_t i = 0; i < rt->nseg; i++) {
        if (rt->kind[i] == SEG_PARAM) {
            size_t nl = strlen(rt->seg[i]);
            memcpy(t, rt->seg[i], nl + 1);
            pairs[2 * np] = t;
            t += nl + 1;
            pairs[2 * np + 1] = t;
            t += pct_decode(t, path + caps[2 * np], caps[2 * np + 1], 0) + 1;
            np++;
        }
    }
    req->wildcard = NULL;
    if (rest != NULL) {
        req->wildcard = t;
        pct_decode(t, rest, rest_len, 0);
    }
    free(req->ppairs);
    req->ppairs = pairs;
    req->np = np;
    return 0;
}

void af_http_router_handle(af_http_req_t *req, af_http_res_t *res, void *router) {
    af_http_router_t *r = router;
    const char *method = req->method;
    const route_t *best = NULL;
    int path_matched = 0;
    for (size_t i = 0; i < r->n; i++) {
        const route_t *rt = &r->routes[i];
        if (!route_match(rt, req->path, NULL, NULL)) {
            continue;
        }
        path_matched = 1;
        if (!method_fits(rt, method)) {
            continue;
        }
        if (best == NULL || rt->score > best->score ||
            (rt->score == best->score && best->method != NULL &&
             strcmp(best->method, method) != 0 && rt->method != NULL &&
             strcmp(rt->method, method) == 0)) {
            best = rt; /* more specific, or the same with the exact method (HEAD over GET) */
        }
    }
    if (best != NULL) {
        if (route_bind(best, req) != 0) {
            af_http_res_send_error(res, 500, "out of memory");
            return;
        }
        best->fn(req, res, best->ud);
        return;
    }
    if (!path_matched) {
        af_http_res_send_error(res, 404, "no route for %s", req->path);
        return;
    }
    /* the path exists with other methods: 405 with the ones that would do */
    af_buf_t allow = {0};
    for (size_t i = 0; i < r->n; i++) {
        const route_t *rt = &r->routes[i];
        if (rt->method == NULL || !route_match(rt, req->path, NULL, NULL)) {
            continue;
        }
        for (int pass = 0; pass < 2; pass++) {
            const char *m = pass == 0 ? rt->method : "HEAD";
            if (pass == 1 && strcmp(rt->method, "GET") != 0) {
                break;
            }
            int seen = 0;
            for (const char *a = allow.data; a != NULL && *a != '\0';) {
                size_t len = strcspn(a, ",");
                if (len == strlen(m) && memcmp(a, m, len) == 0) {
                    seen = 1;
                }
                a += len;
                a += strspn(a, ", ");
            }
            if (!seen) {
                af_buf_addf(&allow, "%s%s", allow.len > 0 ? ", " : "", m);
            }
        }
    }
    af_http_res_add_header(res, "Allow", allow.data != NULL ? allow.data : "");
    af_buf_free(&allow);
    af_http_res_send_error(res, 405, "method %s not allowed on %s", method, req->path);
}
