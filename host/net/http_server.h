/* http_server.h -- the host's HTTP/1.1 server on one libuv loop (keep-alive, pipelining, limits,
 * asynchronous answers, graceful stop) and a method + path router for `agentflow serve`. */
#ifndef AF_HTTP_SERVER_H
#define AF_HTTP_SERVER_H

/* Everything here runs on the loop's thread. Per connection one request is with the handler at a
 * time; requests pipelined behind it wait (unparsed) and are answered in order. Answers carry
 * Content-Length (no chunked responses). A client that closes or half-closes its side while its
 * request is with the handler is taken as gone: the request is cancelled. */

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <jansson.h>

#include "core/core.h"

/* The server side's request and response. These are not the client's af_http_request_t and
 * af_http_response_t (agentflow/plugin.h): an af_http_req_t is a request that came in, an
 * af_http_res_t the answer the server is building for it. */
typedef struct af_http_server_s af_http_server_t;
typedef struct af_http_req_s af_http_req_t;
typedef struct af_http_res_s af_http_res_t;
typedef struct af_http_router_s af_http_router_t;

/* Called on the loop thread once per complete request. req and res stay valid until the handler
 * finishes res with af_http_res_send, af_http_res_send_json or af_http_res_send_error -- now,
 * from inside the handler, or later (after a timer, a database call...). The connection waits:
 * requests pipelined behind this one are answered after it, in order. */
typedef void (*af_http_handler_fn)(af_http_req_t *req, af_http_res_t *res, void *ud);

/* Limits and timeouts. A field left 0 takes the default in brackets. */
typedef struct af_http_server_config_s {
    size_t max_header_bytes;   /* request line + headers [16 KiB]; beyond: 431 and close */
    uint32_t max_headers;      /* header lines [100]; beyond: 431 and close */
    size_t max_body_bytes;     /* request body, after de-chunking [1 MiB]; beyond: 413, close */
    uint64_t read_timeout_ms;  /* first byte to last byte of one request [30 s]; then 408, close */
    uint64_t idle_timeout_ms;  /* keep-alive connection with no request [60 s]; then closed */
    uint32_t max_connections;  /* open at once [1024]; beyond: the new one gets 503 and close */
    uint64_t drain_timeout_ms; /* af_http_server_stop waits this long for answers [10 s] */
} af_http_server_config_t;

#define AF_HTTP_DEFAULT_MAX_HEADER_BYTES ((size_t)16 << 10)
#define AF_HTTP_DEFAULT_MAX_HEADERS      100u
#define AF_HTTP_DEFAULT_MAX_BODY_BYTES   ((size_t)1 << 20)
#define AF_HTTP_DEFAULT_READ_TIMEOUT_MS  30000u
#define AF_HTTP_DEFAULT_IDLE_TIMEOUT_MS  60000u
#define AF_HTTP_DEFAULT_MAX_CONNECTIONS  1024u
#define AF_HTTP_DEFAULT_DRAIN_TIMEOUT_MS 10000u

/* Counters, for tests and metrics. */
typedef struct af_http_server_stats_s {
    uint64_t accepted;  /* connections accepted, rejected ones included */
    uint64_t rejected;  /* connections answered 503 because max_connections were open */
    uint64_t requests;  /* requests handed to the handler */
    uint32_t open;      /* connections open now (not counting rejected ones being closed) */
    uint32_t answering; /* requests handed to the handler and not yet answered */
} af_http_server_stats_t;

/* ---- the server ----------------------------------------------------------------------------- */

/* A server on the loop (borrowed; it must outlive the server) that hands every request to
 * handler with ud. config is copied and may be NULL for the defaults. Nothing listens until
 * af_http_server_listen. Returns a new server (free with af_http_server_free), or NULL on out of
 * memory. */
af_http_server_t *af_http_server_new(uv_loop_t *loop, const af_http_server_config_t *config,
                                     af_http_handler_fn handler, void *ud);

/* Binds host ("127.0.0.1", "0.0.0.0", "::1"...) and port (0: the system picks a free one, see
 * af_http_server_port) and starts accepting. Returns 0, or AF_EINVAL (bad address, already
 * listening or stopped) or AF_EIO (bind/listen failed, e.g. the port is taken) with err set. */
int af_http_server_listen(af_http_server_t *s, const char *host, int port, af_error_t *err);

/* The port the server is bound to (the chosen one when listen was given 0), or 0 before listen. */
int af_http_server_port(const af_http_server_t *s);

/* Fills *stats with the server's counters. */
void af_http_server_stats(const af_http_server_t *s, af_http_server_stats_t *stats);

/* Graceful stop: closes the listening socket, closes idle keep-alive connections now, lets
 * requests in progress be read and answered (answers then carry `Connection: close`), and
 * closes each connection once its answer is written. After drain_timeout_ms the connections left
 * are closed (handlers still answering get their cancel callback). cb(s, ud) is then called once,
 * on the loop, never from inside this call; cb may be NULL. Returns 0, or AF_ESTATE when the
 * server is already stopping (cb is then never called). */
int af_http_server_stop(af_http_server_t *s, void (*cb)(af_http_server_t *s, void *ud), void *ud);

/* Frees the server. Meant for after stop's callback (or a server that never listened); when
 * handles are still open it first closes everything at once (no drain) and the memory goes once
 * their close callbacks ran (run the loop). Responses a handler still holds stay valid until it
 * sends them (they are then dropped). Not from inside a handler or callback of this server. s may
 * be NULL. */
void af_http_server_free(af_http_server_t *s);

/* ---- the request (borrowed by the handler until its response is sent) ----------------------- */

/* The method, e.g. "GET". Never NULL. */
const char *af_http_req_method(const af_http_req_t *req);
/* The path as sent, without the query ("/api/x%20y"). Never NULL. */
const char *af_http_req_path(const af_http_req_t *req);
/* The raw query after '?', without it; "" when there is none. Never NULL. */
const char *af_http_req_query(const af_http_req_t *req);
/* The first query parameter called name, decoded (%XX and '+' for space); "" for a parameter
 * with no '=', NULL when absent (or out of memory). Borrowed from req. */
const char *af_http_req_query_param(af_http_req_t *req, const char *name);
/* The value of the first header called name (compared ignoring case), trailing spaces removed;
 * NULL when absent. Borrowed from req. */
const char *af_http_req_header(const af_http_req_t *req, const char *name);
/* The number of header lines, and the i-th (0-based) name and value; returns AF_EINVAL when i is
 * out of range. Borrowed from req. */
size_t af_http_req_header_count(const af_http_req_t *req);
int af_http_req_header_at(const af_http_req_t *req, size_t i, const char **name,
                          const char **value);
/* The body (de-chunked), NUL-terminated for convenience ("" when there is none); *len set when
 * len is not NULL. Borrowed from req. */
const char *af_http_req_body(const af_http_req_t *req, size_t *len);
/* The peer's address as text ("127.0.0.1", "::1") and port. Never NULL ("" when unknown). */
const char *af_http_req_remote_addr(const af_http_req_t *req);
int af_http_req_remote_port(const af_http_req_t *req);
/* HTTP minor version of the request: 0 for HTTP/1.0, 1 for HTTP/1.1. */
int af_http_req_http_minor(const af_http_req_t *req);
/* The value of the route's `:name` segment, percent-decoded; NULL when the route has none (or
 * the request did not go through a router). Borrowed from req. */
const char *af_http_req_param(const af_http_req_t *req, const char *name);
/* What the route's trailing `*` matched, percent-decoded, without the leading '/' ("" when it
 * matched nothing); NULL when the route has no wildcard. Borrowed from req. */
const char *af_http_req_wildcard(const af_http_req_t *req);

/* ---- the response ----------------------------------------------------------------------------
 * Every handler must finish its res exactly once with one of the send functions, even after the
 * client went away (the answer is then dropped). res and its req are invalid once it is sent. */

/* The request this response answers (borrowed, same lifetime as res). */
af_http_req_t *af_http_res_request(af_http_res_t *res);
/* Sets the status, 200..999 (default 200; 1xx answers are the server's own business). Returns 0
 * or AF_EINVAL. */
int af_http_res_set_status(af_http_res_t *res, int status);
/* Adds a header (both strings copied). The server writes Content-Length, Date and Connection
 * itself: Content-Length and Transfer-Encoding are refused, `Connection: close` closes the
 * connection after this answer. Returns 0, AF_EINVAL (a name that is not a token, CR or LF in
 * the value, a refused name) or AF_ENOMEM. */
int af_http_res_add_header(af_http_res_t *res, const char *name, const char *value);
/* Sets the body to a copy of data[0..len) (replacing any earlier one). Returns 0 or AF_ENOMEM. */
int af_http_res_set_body(af_http_res_t *res, const void *data, size_t len);
/* Sets the body to data[0..len), stolen: a malloc'd block the server frees (also on failure).
 * data may be NULL when len is 0. */
void af_http_res_steal_body(af_http_res_t *res, char *data, size_t len);
/* Sends the answer (with Content-Length; HEAD gets the headers without the body) and finishes
 * res. Returns 0, or AF_ECANCELLED when the client went away (the answer is dropped; res is
 * finished all the same) or AF_ENOMEM (the connection is closed). Either way res is gone. */
int af_http_res_send(af_http_res_t *res);
/* Sets status and a JSON body (value borrowed, written by af_json_dumps) with
 * `Content-Type: application/json`, then sends as af_http_res_send. */
int af_http_res_send_json(af_http_res_t *res, int status, const json_t *value);
/* Sends the error JSON {"error": {"code": ..., "message": ...}} with status, its code being
 * af_http_error_code(status); message is printf-style. Returns as af_http_res_send. */
int af_http_res_send_error(af_http_res_t *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 1 when the client disconnected (or the server closed the connection) before the answer. */
int af_http_res_cancelled(const af_http_res_t *res);
/* Calls cb(res, ud) once if the connection goes away before res is sent, so the handler can stop
 * its work early. res stays valid: the handler must still send it (inside cb or later). */
void af_http_res_on_cancel(af_http_res_t *res, void (*cb)(af_http_res_t *res, void *ud), void *ud);

/* The error code for a status: bad_request (400), not_found (404), method_not_allowed (405),
 * request_timeout (408), conflict (409), payload_too_large (413), unsupported_media_type (415),
 * unprocessable (422), headers_too_large (431), internal (500), unavailable (503); "error" for
 * other statuses. Never NULL. */
const char *af_http_error_code(int status);

/* ---- the router ------------------------------------------------------------------------------
 * Patterns are paths whose segments are literals, `:name` (one non-empty segment) or, as the
 * last segment only, `*` (the rest of the path, possibly empty). Among the routes matching a
 * path, literal segments win over `:name` over `*`, from left to right. No path match: 404; a
 * path match without the method: 405 with `Allow`. A GET route also answers HEAD. */

/* A new empty router, or NULL on out of memory. */
af_http_router_t *af_http_router_new(void);
/* Frees the router. It must outlive every server it is the handler of. r may be NULL. */
void af_http_router_free(af_http_router_t *r);
/* Adds a route: method ("GET"...; NULL or "*" for any method), pattern (copied). Returns 0,
 * AF_EINVAL (pattern not starting with '/', empty `:` name, `*` not last, too many segments),
 * AF_EEXISTS (same method and pattern already) or AF_ENOMEM. */
int af_http_router_add(af_http_router_t *r, const char *method, const char *pattern,
                       af_http_handler_fn fn, void *ud);
/* The router as a server handler: pass it to af_http_server_new with the router as ud. */
void af_http_router_handle(af_http_req_t *req, af_http_res_t *res, void *router);

#endif
