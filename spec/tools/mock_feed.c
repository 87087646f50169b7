/* mock_feed.c -- af-mockserver routes for a feed that polling triggers read: the test sets what
 * the feed answers, the server counts how often it was asked.
 *
 *   PUT /feed/NAME[?status=CODE]  NAME answers the request's body (JSON) from now on, with
 *                                 status CODE (default 200)
 *   GET /feed/NAME                that answer (404 {"error"} before a PUT); counted
 *   GET /feed-count/NAME          {"count": the GETs of NAME so far} */
#include "mock_server.h"

#include <stdlib.h>
#include <string.h>

static json_t *g_feeds; /* name -> {"status", "body", "count"} */

static json_t *feed(const char *name) {
    if (g_feeds == NULL) {
        g_feeds = json_object();
    }
    json_t *f = json_object_get(g_feeds, name);
    if (f == NULL) {
        f = json_pack("{s:i, s:n, s:i, s:b}", "status", 404, "body", "count", 0, "set", 0);
        json_object_set_new(g_feeds, name, f);
    }
    return f;
}

static void route_feed(mock_req_t *req, const char *rest) {
    json_t *f = feed(rest);
    if (strcmp(mock_req_method(req), "PUT") == 0) {
        const char *q = mock_req_query(req);
        int status = strncmp(q, "status=", 7) == 0 ? atoi(q + 7) : 200;
        json_t *body = mock_req_json(req);
        json_object_set_new(f, "status", json_integer(status >= 100 ? status : 200));
        json_object_set_new(f, "body", body ? body : json_null());
        json_object_set_new(f, "set", json_true());
        mock_reply_pack(req, 200, "{s:s}", "feed", rest);
        return;
    }
    json_object_set_new(f, "count",
                        json_integer(json_integer_value(json_object_get(f, "count")) + 1));
    if (!json_is_true(json_object_get(f, "set"))) {
        mock_reply_pack(req, 404, "{s:s}", "error", "no such feed");
        return;
    }
    mock_reply_json(req, (int)json_integer_value(json_object_get(f, "status")),
                    json_incref(json_object_get(f, "body")));
}

static void route_count(mock_req_t *req, const char *rest) {
    mock_reply_pack(req, 200, "{s:O}", "count", json_object_get(feed(rest), "count"));
}

void mock_feed_routes(void) {
    mock_route_add(NULL, "/feed", route_feed);
    mock_route_add("GET", "/feed-count", route_count);
}
