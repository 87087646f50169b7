/* mock_server.h -- what a route of af-mockserver sees: the request, and the response builder.
 * A route set is a function that calls mock_route_add; list it in route_sets in mock_server.c. */
#ifndef AF_MOCK_SERVER_H
#define AF_MOCK_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* One request. Valid from the handler call until its response is finished (mock_reply*,
 * mock_stream_end) or the server stops; keep it across timers, never after that. */
typedef struct mock_req_s mock_req_t;

/* Handles a request whose path matched the route. rest: what follows the route's prefix and one
 * '/' ("50" for "/delay/50" under "/delay"), borrowed like the request. The handler replies now
 * or later (mock_req_after), exactly once: mock_reply*, or mock_stream_begin ... mock_stream_end.
 */
typedef void (*mock_handler_fn)(mock_req_t *req, const char *rest);

/* A growing NUL-terminated text for handlers (p is NULL until something is added). */
typedef struct mock_buf_s {
    char *p;
    size_t len, cap;
} mock_buf_t;
/* Appends n bytes of s. Aborts the server when out of memory, as mock_xrealloc does. */
void mock_buf_add(mock_buf_t *b, const char *s, size_t n);
/* realloc that aborts the server (a test tool) when out of memory. */
void *mock_xrealloc(void *p, size_t n);

/* Adds a route: method ("POST"; NULL for any) and path prefix ("/v1/chat/completions"). A prefix
 * matches the same path or that path followed by '/'; the longest match wins. Strings are
 * borrowed for the life of the server (use literals). Returns 0, or -1 when out of memory. */
int mock_route_add(const char *method, const char *prefix, mock_handler_fn handler);

/* ---- the request (strings borrowed from req, NUL-terminated) --------------------------------- */

const char *mock_req_method(const mock_req_t *req);
/* The path as sent, without the query ("/echo"). */
const char *mock_req_path(const mock_req_t *req);
/* The query without '?', "" when there is none. */
const char *mock_req_query(const mock_req_t *req);
/* The first header with this name (any case), or NULL. */
const char *mock_req_header(const mock_req_t *req, const char *name);
/* How many headers came; mock_req_header_at gives the i-th (in the order received, the name as
 * sent, both borrowed) and returns 0, or -1 past the end. */
size_t mock_req_header_count(const mock_req_t *req);
int mock_req_header_at(const mock_req_t *req, size_t i, const char **name, const char **value);
/* The body (NUL-terminated, "" when none); *len set when len is not NULL. */
const char *mock_req_body(const mock_req_t *req, size_t *len);
/* The body parsed as JSON: a new reference, or NULL when it is not JSON. */
json_t *mock_req_json(const mock_req_t *req);

/* Data a handler keeps with the request (state between timers); free_fn (may be NULL) runs when
 * the request is freed, whether it was answered or the server stopped first. */
void mock_req_set_data(mock_req_t *req, void *data, void (*free_fn)(void *data));
void *mock_req_data(const mock_req_t *req);

/* Calls cb(req) once after ms on the loop (one timer per request; arming again replaces it). */
void mock_req_after(mock_req_t *req, uint64_t ms, void (*cb)(mock_req_t *req));

/* Non-zero when the client went away: what is still written is dropped (finish anyway). */
int mock_req_gone(const mock_req_t *req);

/* ---- the response ---------------------------------------------------------------------------- */

/* Adds a response header; before mock_reply* or mock_stream_begin. */
void mock_res_header(mock_req_t *req, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The whole response at once: status, Content-Type (NULL for none), body copied (may be NULL). */
void mock_reply(mock_req_t *req, int status, const char *content_type, const char *body,
                size_t len);
/* A JSON response; steals body. */
void mock_reply_json(mock_req_t *req, int status, json_t *body);
/* A JSON response built by json_pack(fmt, ...); e.g. mock_reply_pack(req, 200, "{si}", "n", 1). */
void mock_reply_pack(mock_req_t *req, int status, const char *fmt, ...);

/* A streamed response: headers now, then body pieces as they are written. length < 0: chunked
 * transfer encoding (any number of writes); else Content-Length and exactly length bytes. */
void mock_stream_begin(mock_req_t *req, int status, const char *content_type, int64_t length);
void mock_stream_write(mock_req_t *req, const char *data, size_t len);
void mock_stream_printf(mock_req_t *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Finishes the response; req is invalid after. */
void mock_stream_end(mock_req_t *req);
/* Ends the response unfinished (no final chunk) and closes the connection once what was written
 * is sent: a cut stream. req is invalid after. */
void mock_stream_abort(mock_req_t *req);

/* Stops the server once the response in progress is sent (for a /shutdown-like route). */
void mock_server_stop(void);

#endif
