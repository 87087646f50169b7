/* http.h -- the host's HTTP client: requests as the plugin ABI describes them (af_http_request_t),
 * run on one libuv loop by libcurl's multi interface, any number at once, connections reused. */
#ifndef AF_HTTP_H
#define AF_HTTP_H

#include <uv.h>
#include <agentflow/plugin.h>

typedef struct af_http_client_s af_http_client_t;

/* A client on the loop (libcurl multi driven by libuv: CURLMOPT_SOCKETFUNCTION -> uv_poll_t,
 * CURLMOPT_TIMERFUNCTION -> uv_timer_t, curl_multi_socket_action). The loop is borrowed and must
 * outlive the client. Connections to a host are kept alive and reused between requests, with no
 * limit on how many are open at once. Returns a new client, or NULL on failure. */
af_http_client_t *af_http_client_new(uv_loop_t *loop);

/* Cancels every request in flight (their done callbacks are not called) and frees the client once
 * its handles are closed (uv_close callbacks; run the loop after). May be called from inside a
 * done or on_data callback: the client then goes away when that callback returns. c may be NULL. */
void af_http_client_free(af_http_client_t *c);

/* Starts a request. Copies everything it needs from req, whose pointers are borrowed for this call
 * only (honours req->size: reads only the fields the caller was built with, defaults for the
 * rest). Defaults: GET, 30 s for the whole request, no redirects followed, responses up to 16 MiB,
 * TLS peer verified. HEAD sends no body; every other method sends req->body when it is set (POST,
 * PUT and PATCH send an empty one when it is not). done is called exactly once on the loop
 * thread, never from inside this call, unless the request is cancelled first. Returns 0 and sets
 * *handle when handle is not NULL, or AF_EARG (method not an HTTP token, URL not http:// or
 * https://, a header with CR or LF, req->size too small) or AF_ERR (out of memory, curl failure);
 * done is then never called. May be called from inside done and on_data callbacks. */
int af_http_client_request(af_http_client_t *c, const af_http_request_t *req, af_http_done_fn done,
                           void *ud, af_http_t **handle);

/* Cancels a request in flight: its done is not called (nor on_data again). Safe to call from
 * inside any done or on_data callback, including the request's own on_data. A handle is invalid
 * after its done ran; calling this from inside the request's own done does nothing. */
void af_http_client_cancel(af_http_t *handle);

/* Requests started and neither done nor cancelled (tests, metrics). */
int af_http_client_active(const af_http_client_t *c);

#endif
