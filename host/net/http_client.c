/* http_client.c -- the HTTP client: libcurl's multi interface driven by the libuv loop (each
 * socket curl watches is a uv_poll_t, curl's one timeout a uv_timer_t), one af_http_t a request. */
#include "net/http.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>

#define HTTP_DEFAULT_TIMEOUT_MS 30000u
#define HTTP_DEFAULT_MAX_BYTES  ((size_t)16 << 20)
/* Headers are kept in memory whatever the body limit: a server may not send more than this. */
#define HTTP_MAX_HEADER_BYTES ((size_t)256 << 10)

/* Does the caller's request struct (built against some minor of the ABI) reach this field? */
#define REQ_HAS(req, field)                                                                        \
    ((req)->size >= offsetof(af_http_request_t, field) + sizeof((req)->field))

typedef struct http_socket_s http_socket_t;

struct af_http_client_s {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;    /* curl's timeout */
    af_http_t *requests; /* every request not yet freed, doubly linked */
    af_http_t *deferred; /* to add to / remove from the multi once curl returns (see drive) */
    http_socket_t *sockets;
    int active;         /* started, neither done nor cancelled */
    int in_curl;        /* inside curl_multi_socket_action: no add/remove allowed */
    int dispatching;    /* inside check_done, i.e. maybe inside a done callback */
    int free_requested; /* af_http_client_free was called from inside a callback */
    int tearing_down;   /* curl is being cleaned up: ignore its socket callbacks */
    int handles;        /* uv handles not yet closed; the client is freed at 0 when tearing down */
};

struct http_socket_s {
    uv_poll_t poll;
    curl_socket_t fd;
    af_http_client_t *client;
    http_socket_t *prev, *next;
};

/* Per-request memory stays small: curl copies the URL, method, headers and body, and the response
 * is kept only as its body and its header lines (NUL-separated in one buffer). */
struct af_http {
    af_http_client_t *client;
    CURL *easy;
    struct curl_slist *req_headers;
    af_http_done_fn done;
    void *ud;
    void (*on_data)(void *ud, const char *chunk, size_t len);
    size_t max_bytes;
    size_t received; /* body bytes so far (kept or streamed) */
    char *body;
    size_t body_cap;
    char *hdr;
    size_t hdr_len, hdr_cap;
    uint32_t hdr_count;
    uint64_t start_ns;
    unsigned added : 1;     /* in the multi handle */
    unsigned queued : 1;    /* in client->deferred */
    unsigned cancelled : 1; /* done will not be called */
    unsigned reported : 1;  /* curl finished it; check_done calls done and frees it */
    unsigned finished : 1;  /* done is running or ran */
    unsigned too_big : 1;
    unsigned hdr_too_big : 1;
    unsigned no_memory : 1;
    af_http_t *prev, *next;
    af_http_t *queue_next; /* in client->deferred, or in check_done's batch */
    CURLcode result;
};

static uv_once_t curl_once = UV_ONCE_INIT;
static int curl_init_rc = -1;

static void curl_init_once(void) {
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

/* ---- requests: lifetime ---------------------------------------------------------------------- */

static void request_link(af_http_client_t *c, af_http_t *h) {
    h->prev = NULL;
    h->next = c->requests;
    if (c->requests != NULL) {
        c->requests->prev = h;
    }
    c->requests = h;
}

static void request_unlink(af_http_client_t *c, af_http_t *h) {
    if (h->prev != NULL) {
        h->prev->next = h->next;
    } else {
        c->requests = h->next;
    }
    if (h->next != NULL) {
        h->next->prev = h->prev;
    }
    h->prev = h->next = NULL;
}

/* Removes from the multi (when added) and the client, and frees. Never inside curl. */
static void request_free(af_http_t *h) {
    af_http_client_t *c = h->client;
    if (h->added) {
        curl_multi_remove_handle(c->multi, h->easy);
        h->added = 0;
    }
    request_unlink(c, h);
    curl_easy_cleanup(h->easy);
    curl_slist_free_all(h->req_headers);
    free(h->body);
    free(h->hdr);
    free(h);
}

static void request_defer(af_http_t *h) {
    af_http_client_t *c = h->client;
    if (!h->queued) {
        h->queued = 1;
        h->queue_next = c->deferred;
        c->deferred = h;
    }
}

/* ---- curl callbacks for one request ---------------------------------------------------------- */

static int buf_reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) {
        return 0;
    }
    size_t n = *cap < 256 ? 256 : *cap;
    while (n < need) {
        n *= 2;
    }
    char *p = realloc(*buf, n);
    if (p == NULL) {
        return -1;
    }
    *buf = p;
    *cap = n;
    return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud) {
    af_http_t *h = ud;
    size_t len = size * nmemb;
    if (h->cancelled || h->client->free_requested) {
        return 0; /* aborts the transfer; it is freed once curl returns */
    }
    if (len > h->max_bytes - h->received) {
        h->too_big = 1;
        return 0;
    }
    if (len == 0) {
        return 0;
    }
    if (h->on_data != NULL) {
        h->received += len;
        h->on_data(h->ud, ptr, len);
        return h->cancelled || h->client->free_requested ? 0 : len;
    }
    if (h->body == NULL) {
        /* Size the buffer once when the server announced the length. */
        curl_off_t announced = -1;
        curl_easy_getinfo(h->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
        if (announced > 0 && (uint64_t)announced < h->max_bytes) {
            if (buf_reserve(&h->body, &h->body_cap, (size_t)announced + 1) != 0) {
                h->no_memory = 1;
                return 0;
            }
        }
    }
    if (buf_reserve(&h->body, &h->body_cap, h->received + len + 1) != 0) {
        h->no_memory = 1;
        return 0;
    }
    memcpy(h->body + h->received, ptr, len);
    h->received += len;
    return len;
}

/* Keeps the header lines of the last response only: every status line (a redirect, a 100
 * Continue, a proxy's CONNECT reply) starts the list again. */
static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud) {
    af_http_t *h = ud;
    size_t total = size * nmemb;
    size_t len = total;
    if (h->cancelled || h->client->free_requested) {
        return 0;
    }
    while (len > 0 && (ptr[len - 1] == '\n' || ptr[len - 1] == '\r')) {
        len--;
    }
    if (len >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        h->hdr_len = 0;
        h->hdr_count = 0;
        return total;
    }
    if (len == 0) {
        return total;
    }
    if (h->hdr_len + len + 2 > HTTP_MAX_HEADER_BYTES) {
        h->hdr_too_big = 1;
        return 0;
    }
    if (buf_reserve(&h->hdr, &h->hdr_cap, h->hdr_len + len + 2) != 0) {
        h->no_memory = 1;
        return 0;
    }
    if ((ptr[0] == ' ' || ptr[0] == '\t') && h->hdr_count > 0) {
        /* obs-fold: a continuation of the previous header's value */
        while (len > 0 && (*ptr == ' ' || *ptr == '\t')) {
            ptr++;
            len--;
        }
        h->hdr[h->hdr_len - 1] = ' ';
    } else {
        h->hdr_count++;
    }
    memcpy(h->hdr + h->hdr_len, ptr, len);
    h->hdr_len += len;
    h->hdr[h->hdr_len++] = '\0';
    return total;
}

/* ---- completion ------------------------------------------------------------------------------ */

static const char *error_text(af_http_t *h, CURLcode rc, char *buf, size_t size) {
    long os_errno = 0;
    if (h->no_memory) {
        return "out of memory";
    }
    if (h->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(buf, size, "response larger than %zu bytes", h->max_bytes);
        return buf;
    }
    if (h->hdr_too_big) {
        snprintf(buf, size, "response headers larger than %zu bytes", HTTP_MAX_HEADER_BYTES);
        return buf;
    }
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_COULDNT_RESOLVE_HOST:
        return "could not resolve host";
    case CURLE_TOO_MANY_REDIRECTS:
        return "too many redirects";
    case CURLE_COULDNT_CONNECT:
        curl_easy_getinfo(h->easy, CURLINFO_OS_ERRNO, &os_errno);
        if (os_errno == 0 || os_errno == ECONNREFUSED) {
            return "connection refused";
        }
        snprintf(buf, size, "could not connect: %s", strerror((int)os_errno));
        return buf;
    default:
        return curl_easy_strerror(rc);
    }
}

/* Builds the response (everything in it borrowed from h and curl) and calls done. */
static void request_finish(af_http_t *h, CURLcode rc) {
    static const char *const no_headers[] = {NULL};
    char errbuf[96];
    af_http_response_t res;
    memset(&res, 0, sizeof res);
    res.size = sizeof res;
    res.elapsed_ms = (double)(uv_hrtime() - h->start_ns) / 1e6;
    char *url = NULL;
    curl_easy_getinfo(h->easy, CURLINFO_EFFECTIVE_URL, &url);
    res.effective_url = url;

    const char **headers = NULL;
    if (rc == CURLE_OK && !h->too_big && !h->hdr_too_big && !h->no_memory) {
        long status = 0;
        curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
        res.status = (int)status;
        headers = malloc(((size_t)h->hdr_count + 1) * sizeof *headers);
        if (headers != NULL) {
            const char *p = h->hdr;
            for (uint32_t i = 0; i < h->hdr_count; i++) {
                headers[i] = p;
                p += strlen(p) + 1;
            }
            headers[h->hdr_count] = NULL;
        } else {
            res.status = 0;
            res.error = "out of memory";
        }
        if (h->on_data == NULL) {
            res.body = h->body != NULL ? h->body : "";
            res.body_len = h->received;
            if (h->body != NULL) {
                h->body[h->received] = '\0';
            }
        }
    } else {
        res.error = error_text(h, rc, errbuf, sizeof errbuf);
        if (h->on_data == NULL) {
            res.body = "";
        }
    }
    res.headers = headers != NULL ? headers : no_headers;
    h->done(h->ud, &res);
    free(headers);
}

/* Calls done for each transfer curl finished; stops early if a done callback frees the client.
 * curl's messages are all read first: removing a handle scans the messages still queued, so
 * removing each as it is read costs O(n^2) when thousands of transfers finish together. */
static void check_done(af_http_client_t *c) {
    af_http_t *batch = NULL, **tail = &batch;
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        af_http_t *h = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&h);
        h->result = msg->data.result;
        h->reported = 1;
        h->queue_next = NULL;
        *tail = h;
        tail = &h->queue_next;
    }
    c->dispatching++;
    while (batch != NULL && !c->free_requested) {
        af_http_t *h = batch;
        batch = h->queue_next;
        if (!h->cancelled) {
            h->finished = 1;
            c->active--;
            request_finish(h, h->result);
        }
        request_free(h);
    }
    c->dispatching--;
}

static void client_teardown(af_http_client_t *c);

/* What was asked while curl was running: add new requests, drop cancelled ones. */
static void run_deferred(af_http_client_t *c) {
    while (c->deferred != NULL) {
        af_http_t *h = c->deferred;
        c->deferred = h->queue_next;
        h->queued = 0;
        if (h->cancelled || h->finished) {
            request_free(h);
        } else if (curl_multi_add_handle(c->multi, h->easy) == CURLM_OK) {
            h->added = 1;
        } else {
            /* It was promised a completion: report the failure as one. */
            h->finished = 1;
            c->active--;
            c->dispatching++;
            request_finish(h, CURLE_FAILED_INIT);
            c->dispatching--;
            request_free(h);
            if (c->free_requested) {
                return;
            }
        }
    }
}

/* Lets curl act on a socket (or on its timeout), then does what could not be done inside it. */
static void drive(af_http_client_t *c, curl_socket_t fd, int flags) {
    int running;
    c->in_curl++;
    curl_multi_socket_action(c->multi, fd, flags, &running);
    c->in_curl--;
    if (c->in_curl == 0 && c->dispatching == 0) {
        if (!c->free_requested) {
            run_deferred(c);
            check_done(c);
        }
        if (c->free_requested) {
            client_teardown(c);
        }
    }
}

/* ---- curl <-> libuv -------------------------------------------------------------------------- */

static void client_handle_closed(af_http_client_t *c) {
    c->handles--;
    if (c->tearing_down && c->handles == 0) {
        free(c);
    }
}

static void on_socket_closed(uv_handle_t *handle) {
    http_socket_t *s = handle->data;
    af_http_client_t *c = s->client;
    free(s);
    client_handle_closed(c);
}

static void socket_close(af_http_client_t *c, http_socket_t *s) {
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        c->sockets = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    uv_close((uv_handle_t *)&s->poll, on_socket_closed);
}

static void on_poll(uv_poll_t *poll, int status, int events) {
    http_socket_t *s = poll->data;
    int flags = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        flags |= (events & UV_READABLE) ? CURL_CSELECT_IN : 0;
        flags |= (events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0;
    }
    drive(s->client, s->fd, flags);
}

static void on_timeout(uv_timer_t *timer) {
    drive(timer->data, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching one socket. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
    af_http_client_t *c = userp;
    http_socket_t *s = socketp;
    (void)easy;
    if (c->tearing_down) {
        return 0;
    }
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            curl_multi_assign(c->multi, fd, NULL);
            socket_close(c, s);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s == NULL) {
            return -1;
        }
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        c->handles++;
        s->poll.data = s;
        s->fd = fd;
        s->client = c;
        s->next = c->sockets;
        if (c->sockets != NULL) {
            c->sockets->prev = s;
        }
        c->sockets = s;
        curl_multi_assign(c->multi, fd, s);
    }
    int events = 0;
    events |= (what & CURL_POLL_IN) ? UV_READABLE : 0;
    events |= (what & CURL_POLL_OUT) ? UV_WRITABLE : 0;
    return uv_poll_start(&s->poll, events, on_poll) == 0 ? 0 : -1;
}

/* CURLMOPT_TIMERFUNCTION: curl wants to be called after timeout_ms (-1: never). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
    af_http_client_t *c = userp;
    (void)multi;
    if (c->tearing_down) {
        return 0;
    }
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
    } else {
        /* 0 too goes through the loop: curl must not be re-entered from here, and done must
         * never run inside af_http_client_request. */
        uv_timer_start(&c->timer, on_timeout, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

/* ---- the client ------------------------------------------------------------------------------ */

static void on_timer_closed(uv_handle_t *handle) {
    client_handle_closed(handle->data);
}

af_http_client_t *af_http_client_new(uv_loop_t *loop) {
    if (loop == NULL) {
        return NULL;
    }
    uv_once(&curl_once, curl_init_once);
    if (curl_init_rc != 0) {
        return NULL;
    }
    af_http_client_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->loop = loop;
    c->multi = curl_multi_init();
    if (c->multi == NULL || uv_timer_init(loop, &c->timer) != 0) {
        if (c->multi != NULL) {
            curl_multi_cleanup(c->multi);
        }
        free(c);
        return NULL;
    }
    c->timer.data = c;
    c->handles = 1;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
    return c;
}

static void client_teardown(af_http_client_t *c) {
    while (c->requests != NULL) {
        request_free(c->requests);
    }
    c->deferred = NULL;
    c->active = 0;
    c->tearing_down = 1;
    /* Stop watching before curl closes the sockets, so no poll handle outlives its descriptor. */
    while (c->sockets != NULL) {
        http_socket_t *s = c->sockets;
        curl_multi_assign(c->multi, s->fd, NULL);
        socket_close(c, s);
    }
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

void af_http_client_free(af_http_client_t *c) {
    if (c == NULL || c->free_requested || c->tearing_down) {
        return;
    }
    if (c->in_curl > 0 || c->dispatching > 0) {
        c->free_requested = 1; /* drive() tears down once the callback returns */
        return;
    }
    client_teardown(c);
}

int af_http_client_active(const af_http_client_t *c) {
    return c != NULL ? c->active : 0;
}

void af_http_client_cancel(af_http_t *h) {
    if (h == NULL || h->cancelled || h->finished) {
        return;
    }
    af_http_client_t *c = h->client;
    h->cancelled = 1;
    c->active--;
    if (h->queued || h->reported) {
        return; /* run_deferred or check_done frees it */
    }
    if (c->in_curl > 0 && h->added) {
        request_defer(h); /* curl is running: remove it once curl returns */
        return;
    }
    request_free(h);
}

/* ---- starting a request ---------------------------------------------------------------------- */

/* RFC 9110 token: what a method may be made of. */
static int is_token(const char *s) {
    if (s == NULL || *s == '\0') {
        return 0;
    }
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr("!#$%&'*+-.^_`|~", ch) != NULL)) {
            return 0;
        }
    }
    return 1;
}

static int has_header(const char *const *headers, const char *name) {
    size_t n = strlen(name);
    for (; headers != NULL && *headers != NULL; headers++) {
        if (strncasecmp(*headers, name, n) == 0 && ((*headers)[n] == ':' || (*headers)[n] == ';')) {
            return 1;
        }
    }
    return 0;
}

static int set_method(CURL *e, const char *method, const char *body, size_t body_len) {
    int send_body = body != NULL;
    if (strcmp(method, "HEAD") == 0) {
        return curl_easy_setopt(e, CURLOPT_NOBODY, 1L) == CURLE_OK ? 0 : -1;
    }
    if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0) {
        send_body = 1; /* with Content-Length: 0 rather than none, which servers may refuse */
    }
    if (strcmp(method, "GET") == 0 && !send_body) {
        return curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK ? 0 : -1;
    }
    if (strcmp(method, "POST") != 0 && curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method)) {
        return -1;
    }
    if (send_body) {
        if (curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len) ||
            curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body != NULL ? body : "")) {
            return -1;
        }
    }
    return 0;
}

static int valid_url(const char *url) {
    if (url == NULL) {
        return 0;
    }
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
        return 0;
    }
    for (const char *p = url; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            return 0; /* no spaces or controls: they would be sent as they are */
        }
    }
    return 1;
}

/* Sets the easy handle up from the request; AF_EARG or AF_ERR. */
static int request_setup(af_http_t *h, const af_http_request_t *req) {
    CURL *e = h->easy;
    const char *method = REQ_HAS(req, method) && req->method != NULL ? req->method : "GET";
    const char *const *headers = REQ_HAS(req, headers) ? req->headers : NULL;
    const char *body = REQ_HAS(req, body) ? req->body : NULL;
    size_t body_len = REQ_HAS(req, body_len) && body != NULL ? req->body_len : 0;
    uint64_t timeout_ms = REQ_HAS(req, timeout_ms) ? req->timeout_ms : 0;
    uint32_t max_redirects = REQ_HAS(req, max_redirects) ? req->max_redirects : 0;
    size_t max_bytes = REQ_HAS(req, max_response_bytes) ? req->max_response_bytes : 0;
    uint32_t flags = REQ_HAS(req, flags) ? req->flags : 0;
    h->on_data = REQ_HAS(req, on_data) ? req->on_data : NULL;

    if (!is_token(method) || !valid_url(req->url)) {
        return AF_EARG;
    }
    for (const char *const *hp = headers; hp != NULL && *hp != NULL; hp++) {
        if (strpbrk(*hp, "\r\n") != NULL) {
            return AF_EARG;
        }
        struct curl_slist *l = curl_slist_append(h->req_headers, *hp);
        if (l == NULL) {
            return AF_ERR;
        }
        h->req_headers = l;
    }
    if (!has_header(headers, "Expect")) {
        /* curl would wait up to a second for "100 Continue" before sending a large body */
        struct curl_slist *l = curl_slist_append(h->req_headers, "Expect:");
        if (l == NULL) {
            return AF_ERR;
        }
        h->req_headers = l;
    }
    if (timeout_ms == 0) {
        timeout_ms = HTTP_DEFAULT_TIMEOUT_MS;
    } else if (timeout_ms > LONG_MAX) {
        timeout_ms = LONG_MAX;
    }
    h->max_bytes = max_bytes != 0 ? max_bytes : HTTP_DEFAULT_MAX_BYTES;

    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
    if (rc == CURLE_OK) {                                                                          \
        rc = curl_easy_setopt(e, opt, val);                                                        \
    }
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_PRIVATE, (void *)h);
    SET(CURLOPT_NOSIGNAL, 1L);
    /* curl copies each request into an upload buffer over TLS with HTTP/1.1, at most 16 KiB at a
     * time: its 64 KiB default would be idle memory in every request. */
    SET(CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    SET(CURLOPT_HTTPHEADER, h->req_headers);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)h);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)h);
#ifdef AF_VERSION
    SET(CURLOPT_USERAGENT, "agentflow/" AF_VERSION);
#endif
    if (max_redirects > 0) {
        SET(CURLOPT_FOLLOWLOCATION, 1L);
        SET(CURLOPT_MAXREDIRS, (long)max_redirects);
    }
    if (strcmp(method, "HEAD") != 0) {
        /* fails at once when Content-Length announces too much; on_body checks the rest */
        curl_off_t limit = h->max_bytes > INT64_MAX ? INT64_MAX : (curl_off_t)h->max_bytes;
        SET(CURLOPT_MAXFILESIZE_LARGE, limit);
    }
    if (flags & AF_HTTP_INSECURE) {
        SET(CURLOPT_SSL_VERIFYPEER, 0L);
        SET(CURLOPT_SSL_VERIFYHOST, 0L);
    }
#undef SET
    if (rc != CURLE_OK) {
        return rc == CURLE_OUT_OF_MEMORY ? AF_ERR : AF_EARG;
    }
    return set_method(e, method, body, body_len) == 0 ? 0 : AF_ERR;
}

int af_http_client_request(af_http_client_t *c, const af_http_request_t *req, af_http_done_fn done,
                           void *ud, af_http_t **handle) {
    if (c == NULL || req == NULL || done == NULL || !REQ_HAS(req, url)) {
        return AF_EARG;
    }
    if (c->free_requested || c->tearing_down) {
        return AF_ERR;
    }
    af_http_t *h = calloc(1, sizeof *h);
    if (h == NULL) {
        return AF_ERR;
    }
    h->client = c;
    h->done = done;
    h->ud = ud;
    h->start_ns = uv_hrtime();
    h->easy = curl_easy_init();
    int rc = h->easy != NULL ? request_setup(h, req) : AF_ERR;
    if (rc != 0) {
        curl_easy_cleanup(h->easy);
        curl_slist_free_all(h->req_headers);
        free(h);
        return rc;
    }
    request_link(c, h);
    if (c->in_curl > 0) {
        request_defer(h); /* curl is running (an on_data callback): add it once curl returns */
    } else if (curl_multi_add_handle(c->multi, h->easy) == CURLM_OK) {
        h->added = 1;
    } else {
        request_free(h);
        return AF_ERR;
    }
    c->active++;
    if (handle != NULL) {
        *handle = h;
    }
    return 0;
}
