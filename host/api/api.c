/* api.c -- the REST API's set-up and what its handler files share: errors, pagination limits,
 * JSON bodies, compiling scripts, execution records; /healthz, /readyz, /api/openapi.json. */
#include "api/api_live.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/openapi.h"
#include "core/clock.h"
#include "dsl/dsl.h"

json_t *af__api_iso(int64_t ms) {
    char buf[40];
    return ms > 0 ? json_string(af_time_iso(ms, buf, sizeof buf)) : json_null();
}

int af__api_status(int code) {
    switch (code) {
    case AF_ENOTFOUND:
        return 404;
    case AF_EEXISTS:
    case AF_ESTATE:
        return 409;
    case AF_EINVAL:
        return 400;
    case AF_EDEFINITION:
    case AF_ESYNTAX:
        return 422;
    default:
        return 500;
    }
}

void af__api_fail(af_http_res_t *res, int code, const af_error_t *err) {
    af_http_res_send_error(res, af__api_status(code), "%s",
                           err && err->msg[0] ? err->msg : af_strerror(code));
}

int af__api_limit(af_http_req_t *req, af_http_res_t *res) {
    const char *text = af_http_req_query_param(req, "limit");
    char *end = NULL;
    long limit = text ? strtol(text, &end, 10) : 50;
    if (text && (end == text || *end != '\0' || limit < 1 || limit > 200)) {
        af_http_res_send_error(res, 400, "limit is a number from 1 to 200");
        return -1;
    }
    return (int)limit;
}

void af__api_send_items(af_http_res_t *res, json_t *items, const char *next, int paged) {
    json_t *out = json_pack("{s:o}", "items", items);
    if (paged) {
        json_object_set_new(out, "next_cursor", next && next[0] ? json_string(next) : json_null());
    }
    af_http_res_send_json(res, 200, out);
    json_decref(out);
}

json_t *af__api_json_body(af_http_req_t *req, af_http_res_t *res) {
    size_t n;
    const char *body = af_http_req_body(req, &n);
    const char *type = af_http_req_header(req, "Content-Type");
    if (type == NULL || strncasecmp(type, "application/json", 16) != 0) {
        af_http_res_send_error(res, 415, "send application/json");
        return NULL;
    }
    af_error_t err;
    json_t *j = af_json_loads(body ? body : "", n, 128, &err);
    if (j == NULL) {
        af_http_res_send_error(res, 400, "malformed JSON: %s", err.msg);
    }
    return j;
}

af_graph_t *af__api_compile(af_api_t *api, af_http_res_t *res, const char *src, size_t len) {
    af_error_t err = {0};
    af_vm_opts_t vo = {.loop = api->o.loop};
    af_vm_t *vm = af_vm_new(&vo, &err);
    af_graph_t *g = NULL;
    if (vm == NULL || af_dsl_load(vm, "workflow.lua", src, len, &g, &err) != 0) {
        char text[1400];
        af_http_res_send_error(res, vm ? 422 : 500, "%s", af_error_text(&err, text, sizeof text));
        af_vm_free(vm);
        return NULL;
    }
    af_vm_free(vm);
    return g;
}

/* The execution record in the API's shape, from its row and its checkpoints. */
static json_t *execution_format(const af_execution_t *e, const af_checkpoint_t *cs, size_t n) {
    json_t *out = json_pack("{s:s, s:s, s:i, s:s, s:O?, s:O?, s:s?, s:i, s:o, s:o, s:o, s:o}", "id",
                            e->id, "workflow_id", e->workflow_id, "version", e->version, "status",
                            e->status, "input", e->input, "result", e->result, "error", e->error,
                            "attempt", e->attempt, "created_at", af__api_iso(e->created_at),
                            "started_at", af__api_iso(e->started_at), "completed_at",
                            af__api_iso(e->completed_at), "wake_at", af__api_iso(e->wake_at));
    json_t *steps = json_object();
    for (size_t i = 0; i < n; i++) {
        json_object_set_new(steps, cs[i].step,
                            json_pack("{s:s, s:i, s:O?, s:s?, s:s?, s:o, s:o}", "status",
                                      cs[i].status, "attempts", cs[i].attempts, "output",
                                      cs[i].output, "port", cs[i].port, "error", cs[i].error,
                                      "ended_at", af__api_iso(cs[i].ended_at), "wake_at",
                                      af__api_iso(cs[i].wake_at)));
    }
    json_object_set_new(out, "steps", steps);
    return out;
}

json_t *af__api_execution_json(af_api_t *api, const char *id, const af_outcome_t *outcome,
                               af_error_t *err, int *rc) {
    if (outcome) {
        *rc = 0;
        return execution_format(&outcome->execution, outcome->steps, outcome->nsteps);
    }
    af_execution_t e = {0};
    *rc = af_store_execution_get(api->o.store, id, &e, err);
    if (*rc != 0) {
        return NULL;
    }
    af_checkpoint_t *cs = NULL;
    size_t n = 0;
    if (af_store_checkpoints_load(api->o.store, id, &cs, &n, err) != 0) {
        n = 0;
    }
    json_t *out = execution_format(&e, cs, n);
    af_checkpoints_free(cs, n);
    af_execution_clear(&e);
    return out;
}

/* ---- health and the description ---- */

static void healthz(af_http_req_t *req, af_http_res_t *res, void *ud) {
    (void)req;
    (void)ud;
    json_t *ok = json_pack("{s:s}", "status", "ok");
    af_http_res_send_json(res, 200, ok);
    json_decref(ok);
}

static void readyz(af_http_req_t *req, af_http_res_t *res, void *ud) {
    (void)req;
    af_api_t *api = ud;
    af_store_info_t info;
    if (af_store_info(api->o.store, &info) != 0) {
        af_http_res_send_error(res, 503, "the store does not answer");
        return;
    }
    int running, waiting;
    int64_t ready = 0, leased = 0, dead = 0;
    af_error_t err;
    af_worker_counts(api->o.worker, &running, &waiting);
    af_queue_count(af_store_queue(api->o.store), AF_WORKER_QUEUE, &ready, &leased, &dead, &err);
    json_t *ok = json_pack(
        "{s:s, s:s, s:i, s:i, s:i, s:I, s:{s:I, s:I, s:I}}", "status", "ready", "store",
        info.backend, "schema_version", info.schema_version, "running", running, "waiting", waiting,
        "pending_writes", (json_int_t)af_store_async_pending(api->o.writer), "jobs", "ready",
        (json_int_t)ready, "leased", (json_int_t)leased, "dead", (json_int_t)dead);
    af_http_res_send_json(res, 200, ok);
    json_decref(ok);
}

static void openapi(af_http_req_t *req, af_http_res_t *res, void *ud) {
    (void)req;
    (void)ud;
    size_t len;
    const char *doc = af_openapi_json(&len);
    af_http_res_add_header(res, "Content-Type", "application/json");
    af_http_res_set_body(res, doc, len);
    af_http_res_send(res);
}

int af__api_route(af_api_t *api, const char *method, const char *pattern, af_http_handler_fn fn,
                  af_error_t *err) {
    int rc = af_http_router_add(api->o.router, method, pattern, fn, api);
    return rc == 0 ? 0 : af_error_set(err, rc, "cannot add route %s %s", method, pattern);
}

/* ---- the manual clock (serve --clock manual, for tests) ---- */

static json_t *clock_json(void) {
    return json_pack("{s:o, s:I}", "now", af__api_iso(af_wall_ms()), "now_ms",
                     (json_int_t)af_wall_ms());
}

static void clock_get(af_http_req_t *req, af_http_res_t *res, void *ud) {
    (void)req;
    (void)ud;
    json_t *out = clock_json();
    af_http_res_send_json(res, 200, out);
    json_decref(out);
}

/* {"advance": "90s" | ms} or {"to": epoch ms}: moves the clock forward; what became due fires
 * on the next loop turns, before the answer (which comes after them). */
static void clock_closed(uv_handle_t *h) {
    free(h);
}

static void clock_answer(uv_timer_t *t) {
    af_http_res_t *res = t->data;
    json_t *out = clock_json();
    af_http_res_send_json(res, 200, out);
    json_decref(out);
    uv_close((uv_handle_t *)t, clock_closed);
}

static void clock_post(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    json_t *body = af__api_json_body(req, res);
    if (body == NULL) {
        return;
    }
    json_t *adv = json_object_get(body, "advance"), *to = json_object_get(body, "to");
    int64_t ms = -1;
    if (json_is_integer(adv)) {
        ms = json_integer_value(adv);
    } else if (json_is_string(adv) && af_duration_parse(json_string_value(adv), &ms) != 0) {
        ms = -1;
    } else if (adv == NULL && json_is_integer(to)) {
        ms = json_integer_value(to) - af_wall_ms();
    }
    json_decref(body);
    uv_timer_t *t = ms >= 0 ? malloc(sizeof *t) : NULL;
    if (t == NULL) {
        af_http_res_send_error(res, 400,
                               "send {\"advance\": \"90s\"} or {\"to\": EPOCH_MS}, not backwards");
        return;
    }
    af_clock_advance(ms);
    uv_timer_init(api->o.loop, t);
    t->data = res;
    uv_timer_start(t, clock_answer, 1, 0); /* the due timers (started at 0) run first */
}

af_api_t *af_api_new(const af_api_opts_t *opts, af_error_t *err) {
    af_api_t *api = calloc(1, sizeof *api);
    if (api == NULL) {
        af_error_set(err, AF_ENOMEM, "out of memory");
        return NULL;
    }
    api->o = *opts;
    api->o.max_wait_ms = opts->max_wait_ms > 0 ? opts->max_wait_ms : 30000;
    api->o.seen_ttl_ms = opts->seen_ttl_ms > 0 ? opts->seen_ttl_ms : 24 * 3600 * 1000;
    api->o.tolerance_ms = opts->tolerance_ms > 0 ? opts->tolerance_ms : 300000;
    api->o.event_max_depth = opts->event_max_depth > 0 ? opts->event_max_depth : 8;
    api->o.poll_max_per_host = opts->poll_max_per_host > 0 ? opts->poll_max_per_host : 60;
    api->o.poll_host_period_ms = opts->poll_host_period_ms > 0 ? opts->poll_host_period_ms : 60000;
    if (af__api_route(api, "GET", "/healthz", healthz, err) != 0 ||
        af__api_route(api, "GET", "/readyz", readyz, err) != 0 ||
        af__api_route(api, "GET", "/api/openapi.json", openapi, err) != 0 ||
        af__api_routes_workflows(api, err) != 0 || af__api_routes_executions(api, err) != 0 ||
        af__api_routes_webhooks(api, err) != 0 || af__api_routes_events(api, err) != 0 ||
        (af_clock_is_manual() &&
         (af__api_route(api, "GET", "/api/clock", clock_get, err) != 0 ||
          af__api_route(api, "POST", "/api/clock", clock_post, err) != 0))) {
        free(api);
        return NULL;
    }
    return api;
}

void af__api_changed(af_api_t *api, const char *workflow_id) {
    api->generation++;
    af__api_live_changed(api, workflow_id);
}

int af_api_start_triggers(af_api_t *api, af_error_t *err) {
    int rc = api->lives ? 0 : af__api_live_new(api, err);
    if (rc == 0) {
        af__api_live_refresh(api);
    }
    return rc;
}

void af_api_stop_triggers(af_api_t *api) {
    af__api_live_free(api);
}

void af_api_free(af_api_t *api) {
    if (api) {
        af__api_live_free(api);
        af__api_hooks_free(api);
        free(api);
    }
}
