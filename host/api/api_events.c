/* api_events.c -- events: published through POST /api/events or by workflows (af.emit), stored
 * for replay, matched on the bus against event triggers (type pattern, `where`, `filter`) and
 * delivered as executions, once per event and trigger, in the event's own transaction. */
#include "api/api_live.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/pattern.h"
#include "core/tz.h"

#define REPLAY_MAX  100000 /* events one replay request looks at */
#define REPLAY_PAGE 500

struct af__events_s {
    af_bus_t *bus;
};

/* One publication: the event, where it is stored (not on replay), and an execution per trigger
 * it reaches; written in one operation, then answered. */
typedef struct batch_s {
    af_api_t *api;
    af_event_rec_t ev;
    int store;        /* write the event itself (new events, not replays) */
    int force;        /* replays: deliver again what was delivered before */
    const char *only; /* replays: to this workflow's triggers only (NULL: all) */
    af_create_t **c;
    size_t n, cap;
    int duplicate; /* the event's id was stored already: nothing is delivered */
    void (*done)(struct batch_s *b, int rc);
    void *ud;
} batch_t;

/* ---- matching ---- */

static json_t *event_json(const af_event_rec_t *e) {
    return json_pack("{s:s, s:s, s:O?, s:O?, s:o}", "id", e->id, "type", e->type, "data", e->data,
                     "meta", e->meta, "created_at", af__api_iso(e->created_at));
}

/* The trigger's `filter` function, when it has one, says whether it wants the event. */
static int wanted(af__live_t *l, json_t *event) {
    json_t *yes;
    af_fault_t fault;
    int rc = af__live_call(l, "filter", event, &yes, &fault);
    if (rc < 0) {
        af_log(AF_LEVEL_WARN, "event trigger %s: the filter failed, the event is not delivered: %s",
               l->id, fault.message);
        return 0;
    }
    int ok = rc == 0 || (yes && !json_is_false(yes) && !json_is_null(yes));
    json_decref(yes);
    return ok;
}

static int batch_add(batch_t *b, af_create_t *c) {
    if (af_grow((void **)&b->c, &b->cap, b->n + 1, sizeof *b->c) != 0) {
        return AF_ENOMEM;
    }
    b->c[b->n++] = c;
    return 0;
}

/* The bus found a subscription of the event: an execution of its workflow, unless its filter
 * says no; recorded as delivered (scope "event:<trigger>"), so a replay does not repeat it. */
static void deliver(void *sub_ud, const af_bus_event_t *bev) {
    af__live_t *l = sub_ud;
    batch_t *b = bev->ud;
    if (b->only && strcmp(b->only, l->workflow_id) != 0) {
        return;
    }
    json_t *event = event_json(&b->ev);
    if (!wanted(l, event)) {
        json_decref(event);
        return;
    }
    af_fault_t fault;
    json_t *input = af__live_input(l, event, &fault);
    if (input == NULL) {
        af_log(AF_LEVEL_WARN, "event trigger %s: the input function failed: %s", l->id,
               fault.message);
        return;
    }
    af_create_t *c = af__api_create_one(l->api, l->workflow_id, l->version, input);
    if (c) {
        c->event_depth = (int)json_integer_value(json_object_get(b->ev.meta, "depth"));
    }
    if (c == NULL || (!b->force && af__api_create_seen(c, "event:", l->id, b->ev.id) != 0) ||
        batch_add(b, c) != 0) {
        af_log(AF_LEVEL_ERROR, "event trigger %s: out of memory: event %s not delivered", l->id,
               b->ev.id);
        if (c) {
            af__api_create_written(c, AF_ENOMEM);
        }
    }
}

/* ---- writing a publication ---- */

static int write_batch(af_store_t *s, void *ud) {
    batch_t *b = ud;
    af_error_t err;
    int rc = 0;
    if (b->store &&
        ((rc = af_store_event_put(s, &b->ev, &b->duplicate, &err)) != 0 || b->duplicate)) {
        return rc;
    }
    for (size_t i = 0; rc == 0 && i < b->n; i++) {
        rc = af__api_create_write(s, b->c[i]);
    }
    return rc;
}

static void batch_written(void *ud, int rc) {
    batch_t *b = ud;
    for (size_t i = 0; i < b->n; i++) {
        b->c[i]->duplicate |= b->duplicate;
    }
    if (b->done) {
        b->done(b, rc);
    }
    for (size_t i = 0; i < b->n; i++) {
        af__api_create_written(b->c[i], rc); /* hands over, frees */
    }
    af_event_rec_clear(&b->ev);
    free(b->c);
    free(b);
}

/* Matches b's event against the subscriptions and submits the lot; done follows. */
static void batch_submit(batch_t *b) {
    af__events_t *ev = b->api->events;
    af_bus_event_t bev = {.id = b->ev.id,
                          .type = b->ev.type,
                          .data = b->ev.data,
                          .meta = b->ev.meta,
                          .at = b->ev.created_at,
                          .ud = b};
    if (ev) { /* else the triggers are stopped: the event is only stored */
        af_bus_publish(ev->bus, &bev);
    }
    for (size_t i = 0; i < b->n; i++) {
        af__api_create_reserve(b->c[i]);
    }
    int rc = af_store_async_submit(b->api->o.writer, write_batch, batch_written, b);
    if (rc != 0) {
        batch_written(b, rc);
    }
}

static batch_t *batch_new(af_api_t *api, const char *id, const char *type, json_t *data,
                          json_t *meta) {
    batch_t *b = calloc(1, sizeof *b);
    if (b == NULL) {
        json_decref(data);
        json_decref(meta);
        return NULL;
    }
    b->api = api;
    if (id) {
        af_strlcpy(b->ev.id, id, sizeof b->ev.id);
    } else {
        af_uuid_v7(b->ev.id);
    }
    af_strlcpy(b->ev.type, type, sizeof b->ev.type);
    b->ev.data = data;
    b->ev.meta = meta;
    b->ev.created_at = af_wall_ms();
    b->store = 1;
    return b;
}

/* How many executions a written batch started (deliveries not done before). */
static size_t started(const batch_t *b, json_t *ids) {
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (!b->c[i]->duplicate) {
            n++;
            if (ids) {
                json_array_append_new(ids, json_string(b->c[i]->ids[0]));
            }
        }
    }
    return n;
}

/* ---- from workflows: af.emit and the core.emit step ---- */

int af_api_emit(af_api_t *api, const char *root_execution_id, int depth, const char *type,
                json_t *data) {
    af_error_t err;
    if (af_event_type_check(type, 0, &err) != 0) {
        return AF_EINVAL;
    }
    if (depth + 1 > api->o.event_max_depth) {
        af_log(AF_LEVEL_WARN, "execution %s: event %s not published: depth limit %d reached",
               root_execution_id ? root_execution_id : "?", type, api->o.event_max_depth);
        return AF_ELIMIT;
    }
    json_t *meta = json_pack("{s:i, s:s?}", "depth", depth + 1, "execution_id", root_execution_id);
    batch_t *b = batch_new(api, NULL, type, json_incref(data), meta);
    if (b == NULL) {
        return AF_ENOMEM;
    }
    batch_submit(b);
    return 0;
}

/* ---- POST /api/events ---- */

static void published(batch_t *b, int rc) {
    af_http_res_t *res = b->ud;
    if (rc != 0) {
        af_http_res_send_error(res, 500, "the event was not stored: %s", af_strerror(rc));
        return;
    }
    json_t *ids = json_array();
    size_t n = started(b, ids);
    json_t *out =
        json_pack("{s:s, s:s, s:b, s:I, s:o}", "id", b->ev.id, "type", b->ev.type, "duplicate",
                  b->duplicate, "deliveries", (json_int_t)n, "executions", ids);
    af_http_res_send_json(res, b->duplicate ? 200 : 202, out);
    json_decref(out);
}

/* Sends status with the message; returns -1 (the request is answered). */
static int refuse(af_http_res_t *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(af_http_res_t *res, int status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    af_http_res_send_error(res, status, "%s", msg);
    return -1;
}

/* The event of a request body, checked: type, optional id and meta, data (any JSON). */
static int event_of(json_t *body, const char **id, const char **type, af_http_res_t *res) {
    af_error_t err;
    json_t *jid = json_object_get(body, "id"), *meta = json_object_get(body, "meta");
    const char *key;
    json_t *v;
    if (!json_is_object(body)) {
        return refuse(res, 400, "the body is a JSON object {type, id, data}");
    }
    json_object_foreach(body, key, v) {
        if (strcmp(key, "type") && strcmp(key, "id") && strcmp(key, "data") &&
            strcmp(key, "meta")) {
            return refuse(res, 400, "unknown field '%s' (type, id, data, meta)", key);
        }
    }
    *type = json_string_value(json_object_get(body, "type"));
    if (*type == NULL || af_event_type_check(*type, 0, &err) != 0) {
        return refuse(res, 400, "type: %s", *type ? err.msg : "a string such as \"order.created\"");
    }
    *id = json_string_value(jid);
    if (jid && (*id == NULL || **id == '\0' || strlen(*id) >= AF_STORE_ID_MAX)) {
        return refuse(res, 400, "id is a non-empty string of at most %d bytes",
                      AF_STORE_ID_MAX - 1);
    }
    if (meta && !json_is_object(meta)) {
        return refuse(res, 400, "meta is an object");
    }
    return 0;
}

static void event_post(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    json_t *body = af__api_json_body(req, res);
    const char *id, *type;
    if (body == NULL || event_of(body, &id, &type, res) != 0) {
        json_decref(body);
        return;
    }
    json_t *meta = json_deep_copy(json_object_get(body, "meta"));
    if (meta == NULL) {
        meta = json_object();
    }
    json_t *depth = json_object_get(meta, "depth"); /* a chain that came in from outside */
    if (depth && (!json_is_integer(depth) || json_integer_value(depth) < 0)) {
        json_decref(meta);
        json_decref(body);
        af_http_res_send_error(res, 400, "meta.depth is a whole number >= 0");
        return;
    }
    if (json_integer_value(depth) >= api->o.event_max_depth) {
        json_decref(meta);
        json_decref(body);
        af_http_res_send_error(res, 422,
                               "meta.depth %lld: the event chain is at its depth limit %d",
                               (long long)json_integer_value(depth), api->o.event_max_depth);
        return;
    }
    if (depth == NULL) {
        json_object_set_new(meta, "depth", json_integer(0));
    }
    json_t *data = json_object_get(body, "data");
    batch_t *b = batch_new(api, id, type, data ? json_incref(data) : json_null(), meta);
    json_decref(body);
    if (b == NULL) {
        af_http_res_send_error(res, 500, "out of memory");
        return;
    }
    b->done = published;
    b->ud = res;
    batch_submit(b);
}

/* ---- times in requests ---- */

/* RFC 3339 or whole milliseconds since the epoch. */
static int time_of(const json_t *v, int64_t *ms) {
    if (json_is_integer(v)) {
        *ms = json_integer_value(v);
        return *ms >= 0 ? 0 : -1;
    }
    return json_is_string(v) && af_time_parse(json_string_value(v), ms) == 0 ? 0 : -1;
}

/* ---- POST /api/events/replay ---- */

typedef struct {
    af_api_t *api;
    af_http_res_t *res;
    size_t scanned, events, matched, delivered, duplicates, pending;
    int failed, answered, read_failed;
    char next[AF_STORE_CURSOR_MAX]; /* where a replay that stopped at its limit goes on */
    char last[AF_STORE_CURSOR_MAX]; /* the last event looked at */
} replay_t;

static void replay_answer(replay_t *r) {
    if (r->pending > 0 || r->answered) {
        return;
    }
    r->answered = 1;
    if (r->read_failed) { /* what was submitted before is written: go on after it */
        af_http_res_send_error(r->res, 500,
                               "the store failed while reading events; %zu replayed before it "
                               "(go on with \"cursor\": \"%s\")",
                               r->events, r->last);
    } else if (r->failed) {
        af_http_res_send_error(r->res, 500, "the replay was not written: %s",
                               af_strerror(r->failed));
    } else {
        json_t *out = json_pack("{s:I, s:I, s:I, s:I, s:o}", "events", (json_int_t)r->events,
                                "matched", (json_int_t)r->matched, "deliveries",
                                (json_int_t)r->delivered, "duplicates", (json_int_t)r->duplicates,
                                "next_cursor", r->next[0] ? json_string(r->next) : json_null());
        af_http_res_send_json(r->res, 200, out);
        json_decref(out);
    }
    free(r);
}

static void replayed(batch_t *b, int rc) {
    replay_t *r = b->ud;
    size_t n = started(b, NULL);
    r->pending--;
    r->failed = rc != 0 ? rc : r->failed;
    r->matched += b->n;
    r->delivered += rc == 0 ? n : 0;
    r->duplicates += rc == 0 ? b->n - n : 0;
    replay_answer(r);
}

typedef struct {
    int64_t from, to;
    const char *type, *workflow, *cursor;
    int force;
    size_t limit;
} replay_args_t;

static int replay_args(json_t *body, replay_args_t *a, af_http_res_t *res) {
    const char *key;
    json_t *v;
    af_error_t err;
    json_object_foreach(body, key, v) {
        if (strcmp(key, "from") && strcmp(key, "to") && strcmp(key, "type") &&
            strcmp(key, "workflow_id") && strcmp(key, "force") && strcmp(key, "limit") &&
            strcmp(key, "cursor")) {
            return refuse(res, 400,
                          "unknown field '%s' (from, to, type, workflow_id, force, limit, cursor)",
                          key);
        }
    }
    a->to = af_wall_ms();
    if (time_of(json_object_get(body, "from"), &a->from) != 0 ||
        (json_object_get(body, "to") && time_of(json_object_get(body, "to"), &a->to) != 0)) {
        return refuse(res, 400, "from (required) and to are RFC 3339 times or epoch ms");
    }
    json_t *limit = json_object_get(body, "limit"), *cursor = json_object_get(body, "cursor");
    a->limit = REPLAY_MAX;
    if (limit && (!json_is_integer(limit) || json_integer_value(limit) < 1 ||
                  json_integer_value(limit) > REPLAY_MAX)) {
        return refuse(res, 400, "limit is a whole number from 1 to %d", REPLAY_MAX);
    }
    a->limit = limit ? (size_t)json_integer_value(limit) : a->limit;
    a->cursor = json_string_value(cursor);
    if (cursor && (a->cursor == NULL || strlen(a->cursor) >= AF_STORE_CURSOR_MAX)) {
        return refuse(res, 400, "cursor is the next_cursor of an earlier replay");
    }
    if (a->to < a->from) {
        return refuse(res, 400, "to is before from");
    }
    a->type = json_string_value(json_object_get(body, "type"));
    if (json_object_get(body, "type") &&
        (a->type == NULL || af_event_type_check(a->type, 1, &err))) {
        return refuse(res, 400, "type: %s", a->type ? err.msg : "an event type pattern");
    }
    a->workflow = json_string_value(json_object_get(body, "workflow_id"));
    json_t *force = json_object_get(body, "force");
    if ((json_object_get(body, "workflow_id") && a->workflow == NULL) ||
        (force && !json_is_boolean(force))) {
        return refuse(res, 400, "workflow_id is a string, force a boolean");
    }
    a->force = json_is_true(force);
    return 0;
}

/* Re-delivers the stored events of the range: page by page from the store, each event matched
 * against today's subscriptions and written as one batch without the event itself. */
static void replay_run(replay_t *r, const replay_args_t *a) {
    char cursor[AF_STORE_CURSOR_MAX] = "";
    af_error_t err;
    int rc = 0;
    af_strlcpy(cursor, a->cursor ? a->cursor : "", sizeof cursor);
    r->pending = 1; /* this loop's own count: nothing answers before it ends */
    do {
        af_event_rec_t *es = NULL;
        size_t n = 0;
        if ((rc = af_store_event_list(r->api->o.store, a->from, a->to, cursor, REPLAY_PAGE, &es, &n,
                                      cursor, &err)) != 0) {
            break;
        }
        for (size_t i = 0; i < n && !r->failed; i++) {
            if (r->scanned == a->limit) { /* more to go: the next replay starts after the last */
                snprintf(r->next, sizeof r->next, "%lld:%s", (long long)es[i - 1].created_at,
                         es[i - 1].id);
                break;
            }
            r->scanned++;
            snprintf(r->last, sizeof r->last, "%lld:%s", (long long)es[i].created_at, es[i].id);
            if (a->type && !af_event_type_match(a->type, es[i].type)) {
                continue;
            }
            batch_t *b = batch_new(r->api, es[i].id, es[i].type, json_incref(es[i].data),
                                   json_incref(es[i].meta));
            if (b == NULL) {
                r->failed = AF_ENOMEM;
                break;
            }
            b->ev.created_at = es[i].created_at;
            b->store = 0;
            b->force = a->force;
            b->only = a->workflow;
            b->done = replayed;
            b->ud = r;
            r->events++;
            r->pending++;
            batch_submit(b);
        }
        if (!r->next[0] && r->scanned == a->limit && cursor[0]) {
            snprintf(r->next, sizeof r->next, "%lld:%s", (long long)es[n - 1].created_at,
                     es[n - 1].id);
        }
        af_event_recs_free(es, n);
    } while (cursor[0] && !r->failed && !r->next[0]);
    if (rc != 0 && r->scanned == 0) { /* nothing submitted: a malformed cursor, or the store */
        refuse(r->res, rc == AF_EINVAL ? 400 : 500, "%s", err.msg);
        free(r);
        return;
    }
    if (rc != 0) {
        r->read_failed = 1;
        r->failed = AF_EIO;
    }
    r->pending--;
    replay_answer(r);
}

static void event_replay(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    json_t *body = af__api_json_body(req, res);
    replay_args_t a = {0};
    if (body == NULL || !json_is_object(body) || replay_args(body, &a, res) != 0) {
        if (body && !json_is_object(body)) {
            af_http_res_send_error(res, 400, "the body is a JSON object {from, to, type, ...}");
        }
        json_decref(body);
        return;
    }
    replay_t *r = calloc(1, sizeof *r);
    if (r == NULL) {
        json_decref(body);
        af_http_res_send_error(res, 500, "out of memory");
        return;
    }
    r->api = api;
    r->res = res;
    replay_run(r, &a); /* a's strings live in body until here */
    json_decref(body);
}

/* ---- GET /api/events ---- */

static void event_list(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    int limit = af__api_limit(req, res);
    const char *from = af_http_req_query_param(req, "from");
    const char *to = af_http_req_query_param(req, "to");
    const char *cursor = af_http_req_query_param(req, "cursor");
    int64_t f = 0, t = INT64_MAX;
    json_t *jf = from ? json_string(from) : NULL, *jt = to ? json_string(to) : NULL;
    int bad = (jf && time_of(jf, &f) != 0) || (jt && time_of(jt, &t) != 0);
    json_decref(jf);
    json_decref(jt);
    if (limit < 0) {
        return;
    }
    if (bad) {
        af_http_res_send_error(res, 400, "from and to are RFC 3339 times");
        return;
    }
    af_event_rec_t *es = NULL;
    size_t n = 0;
    char next[AF_STORE_CURSOR_MAX];
    af_error_t err;
    int rc = af_store_event_list(api->o.store, f, t, cursor, limit, &es, &n, next, &err);
    if (rc != 0) {
        af__api_fail(res, rc, &err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(items, event_json(&es[i]));
    }
    af_event_recs_free(es, n);
    af__api_send_items(res, items, next, 1);
}

/* ---- subscriptions ---- */

int af__events_subscribe(af__live_t *l, af_error_t *err) {
    const char *pattern = json_string_value(json_object_get(l->config, "type"));
    return af_bus_subscribe(l->api->events->bus, pattern ? pattern : "",
                            json_object_get(l->config, "where"), deliver, l, &l->sub, err);
}

void af__events_unsubscribe(af__live_t *l) {
    if (l->sub) {
        af_bus_unsubscribe(l->api->events->bus, l->sub);
        l->sub = 0;
    }
}

int af__events_start(af_api_t *api) {
    af__events_t *ev = calloc(1, sizeof *ev);
    if (ev == NULL || (ev->bus = af_bus_inproc_new()) == NULL) {
        free(ev);
        return AF_ENOMEM;
    }
    api->events = ev;
    return 0;
}

void af__events_stop(af_api_t *api) {
    if (api->events) {
        af_bus_free(api->events->bus);
        free(api->events);
        api->events = NULL;
    }
}

int af__api_routes_events(af_api_t *api, af_error_t *err) {
    if (af__api_route(api, "POST", "/api/events", event_post, err) != 0 ||
        af__api_route(api, "GET", "/api/events", event_list, err) != 0 ||
        af__api_route(api, "POST", "/api/events/replay", event_replay, err) != 0) {
        return -1;
    }
    return 0;
}
