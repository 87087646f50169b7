/* api_polls.c -- polling triggers: on an interval (with jitter) a poll gets items (an HTTP
 * request and/or a Lua function), compares them with what it saw before, and starts one
 * execution per new or changed item; what it saw is written with those executions. Limited per
 * workflow and per target host; failures back off. */
#include "api/api_live.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "triggers/poll_diff.h"
#include "triggers/ratelimit.h"

#define BACKOFF_BASE_MS 1000
#define BACKOFF_MAX_MS  (5 * 60 * 1000)

static af_ratelimit_t *limits; /* per workflow and per host, for every poll of the process */
static int npolls;

static int64_t duration_of(const json_t *v, int64_t fallback) {
    int64_t ms;
    if (json_is_integer(v)) {
        return json_integer_value(v);
    }
    return json_is_string(v) && af_duration_parse(json_string_value(v), &ms) == 0 ? ms : fallback;
}

static int64_t jitter_of(const af__live_t *l) {
    int64_t j = l->jitter_ms;
    return j > 0 ? (int64_t)((uint64_t)af_mono_ms() * 2654435761u % (uint64_t)j) : 0;
}

static void poll_now(uv_timer_t *t);

static void arm_at(af__live_t *l, int64_t at) {
    af_clock_timer_start(l->poll_timer, poll_now, at);
}

/* After a poll: the next one an interval later, or sooner after a failure, backing off. */
static void poll_ended(af__live_t *l, int ok, const char *why) {
    int64_t now = af_wall_ms();
    l->polling = 0;
    l->http = NULL;
    if (ok) {
        l->failures = 0;
        arm_at(l, now + l->interval_ms + jitter_of(l));
        return;
    }
    int64_t wait = af_backoff_ms(++l->failures, BACKOFF_BASE_MS, BACKOFF_MAX_MS);
    af_log(AF_LEVEL_WARN, "poll %s of workflow %s failed (%d in a row): %s; next try in %lld ms",
           l->id, l->workflow_id, l->failures, why, (long long)wait);
    arm_at(l, now + wait);
}

static void polled(af_create_t *c, int rc) {
    af__live_t *l = af__live_find_copy(c->api, c->state_trigger, (uint64_t)(uintptr_t)c->ud);
    if (l == NULL) {
        return; /* stopped meanwhile */
    }
    l->writing = 0;
    if (rc == 0) {
        json_decref(l->poll_state);
        l->poll_state = json_incref(c->state.state);
        l->last_fire_at = c->state.last_fire_at;
    }
    poll_ended(l, rc == 0, rc == 0 ? NULL : af_strerror(rc));
}

/* The items of a poll: new and changed ones start executions; the state goes with them. */
static void poll_items(af__live_t *l, json_t *items) {
    json_t *b = json_object_get(l->config, "baseline");
    af_poll_opts_t o = {.key = json_string_value(json_object_get(l->config, "key")),
                        .hash = json_is_true(json_object_get(l->config, "hash")),
                        .baseline = b == NULL || json_is_true(b)};
    json_t *emit = NULL, *next = NULL;
    af_error_t err;
    if (af_poll_diff(l->poll_state, items, &o, &emit, &next, &err) != 0) {
        poll_ended(l, 0, err.msg);
        return;
    }
    size_t n = json_array_size(emit);
    json_t **inputs = calloc(n ? n : 1, sizeof *inputs);
    for (size_t i = 0; inputs && i < n; i++) {
        af_fault_t fault;
        inputs[i] = af__live_input(l, json_incref(json_array_get(emit, i)), &fault);
        if (inputs[i] == NULL) {
            af_log(AF_LEVEL_WARN, "poll %s: the input function failed: %s", l->id, fault.message);
            inputs[i] = json_incref(json_array_get(emit, i));
        }
    }
    json_decref(emit);
    af_create_t *c =
        inputs ? af__api_create_new(l->api, l->workflow_id, l->version, inputs, n) : NULL;
    if (c == NULL) {
        json_decref(next);
        poll_ended(l, 0, "out of memory");
        return;
    }
    af_strlcpy(c->state_trigger, l->id, sizeof c->state_trigger);
    c->state.last_fire_at = af_wall_ms();
    c->state.state = next;
    c->done = polled;
    c->ud = (void *)(uintptr_t)l->serial;
    l->writing = 1;
    af__api_create_submit(c);
}

/* A poll's Lua function: from what the poll got (a response, a node's output, or {} with
 * neither) to the items; without a function, items_default (borrowed from arg) are the items. */
static void items_from(af__live_t *l, json_t *arg, json_t *items_default) {
    json_t *items;
    af_fault_t fault;
    int rc = af__live_call(l, "fn", arg, &items, &fault);
    if (rc < 0) {
        poll_ended(l, 0, fault.message);
    } else if (rc == 0 && !json_is_array(items_default)) {
        poll_ended(l, 0, "what the poll got is not a JSON array of items (give the poll an fn)");
    } else {
        poll_items(l, rc == 1 ? items : items_default);
    }
    json_decref(items);
    json_decref(arg);
}

static void responded(void *ud, const af_http_response_t *r) {
    af__live_t *l = ud;
    char why[300];
    l->http = NULL;
    if (r->status == 0 || r->status >= 400) {
        snprintf(why, sizeof why, "%s: %s",
                 json_string_value(json_object_get(json_object_get(l->config, "request"), "url")),
                 r->error ? r->error : "");
        if (r->status) {
            snprintf(why + strlen(why), sizeof why - strlen(why), "HTTP %d", r->status);
        }
        poll_ended(l, 0, why);
        return;
    }
    json_t *body = r->body ? json_loadb(r->body, r->body_len, JSON_DECODE_ANY, NULL) : NULL;
    json_t *headers = json_object();
    for (size_t i = 0; r->headers && r->headers[i]; i++) {
        const char *colon = strchr(r->headers[i], ':');
        if (colon) {
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)(colon - r->headers[i]), r->headers[i]);
            for (char *p = name; *p; p++) {
                *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
            }
            json_object_set_new(headers, name, json_string(colon + 1 + strspn(colon + 1, " ")));
        }
    }
    if (body == NULL) {
        body = r->body ? json_stringn(r->body, r->body_len) : json_null();
    }
    json_t *arg = json_pack("{s:i, s:o, s:o}", "status", r->status, "headers", headers, "body",
                            body ? body : json_null());
    items_from(l, arg, json_object_get(arg, "body"));
}

/* ---- polls by a node type (a plugin's, e.g. http.request): its output is what was polled ---- */

static void node_done(af_node_call_t *call, json_t *output, const char *port,
                      const af_fault_t *fault) {
    af__live_t *l = call->owner;
    (void)port;
    if (fault) {
        char why[1200];
        snprintf(why, sizeof why, "%s: %s: %s", call->type->name, fault->code, fault->message);
        json_decref(output);
        poll_ended(l, 0, why);
        return;
    }
    items_from(l, output ? output : json_null(), output);
}

static void node_poll(af__live_t *l) {
    af_node_call_t *call = l->node_call;
    af_fault_t fault;
    const af_nodedef_t *def = call->type;
    memset(call, 0, sizeof *call);
    call->type = def;
    call->loop = l->api->o.loop;
    call->config = json_object_get(l->config, "config");
    call->execution_id = call->root_execution_id = l->id; /* per trigger, for keys and state */
    call->workflow = l->workflow_id;
    call->step = "poll";
    call->attempt = l->failures + 1;
    snprintf(call->idempotency_key, sizeof call->idempotency_key, "poll:%s:%lld", l->id,
             (long long)af_wall_ms());
    call->instance = l->node_instance;
    call->done = node_done;
    call->owner = l;
    if (af_node_execute(call, &fault) < 0 && !call->finished) { /* else node_done has run */
        char why[1200];
        snprintf(why, sizeof why, "%s: %s", def->name, fault.message);
        poll_ended(l, 0, why);
    }
}

/* The node type of a poll: loaded, runnable outside an execution, its config valid; created
 * once for the trigger. */
static int node_start(af__live_t *l, const char *name, af_error_t *err) {
    const af_nodedef_t *def = af_registry_find(name);
    json_t *config = json_object_get(l->config, "config");
    char msg[512] = "";
    if (def == NULL) {
        return af_error_set(err, AF_ENOTFOUND, "af.poll: no node type '%s' is loaded", name);
    }
    if (def->flags & (AF_NODE_LUA | AF_NODE_RAW)) {
        return af_error_set(err, AF_EINVAL, "af.poll: node type '%s' runs inside executions only",
                            name);
    }
    int rc = af_node_check_config(def, config, err);
    if (rc == 0 && (l->node_call = calloc(1, sizeof *l->node_call)) == NULL) {
        rc = af_error_set(err, AF_ENOMEM, "out of memory");
    }
    if (rc == 0 && def->create &&
        def->create(def, config, &l->node_instance, msg, sizeof msg) != 0) {
        rc = af_error_set(err, AF_EINVAL, "af.poll: node type '%s': %s", name, msg);
    }
    if (rc == 0) {
        l->node_call->type = def;
    }
    return rc;
}

static void node_stop(af__live_t *l) {
    if (l->node_call == NULL) {
        return;
    }
    if (l->polling && !l->node_call->finished) {
        af_node_cancel(l->node_call); /* no completion after this */
    }
    if (l->node_instance && l->node_call->type && l->node_call->type->destroy) {
        l->node_call->type->destroy(l->node_call->type, l->node_instance);
    }
    free(l->node_call);
    l->node_call = NULL;
}

/* The host of a URL ("http://user@host:port/path" -> "host:port"), for its rate limit. */
static void host_of(const char *url, char *host, size_t size) {
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/?#");
    const char *at = memchr(p, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    snprintf(host, size, "host:%.*s", (int)n, p);
}

/* The limits say whether a poll may start now; if not, *retry when. */
static int allowed(af__live_t *l, int64_t now, int64_t *retry) {
    char key[AF_STORE_ID_MAX + 8];
    if (l->max_polls > 0) {
        snprintf(key, sizeof key, "wf:%s", l->workflow_id);
        if (af_ratelimit_take(limits, key, now, l->max_polls, l->max_period_ms, retry) == 0) {
            return 0;
        }
    }
    return !l->host[0] || af_ratelimit_take(limits, l->host, now, l->api->o.poll_max_per_host,
                                            l->api->o.poll_host_period_ms, retry) != 0;
}

static int request(af__live_t *l, const json_t *req) {
    af_api_t *api = l->api;
    const char *hdrs[33] = {0};
    char lines[32][512];
    int nh = 0;
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(req, "headers"), key, v) {
        if (nh < 32 && json_is_string(v)) {
            snprintf(lines[nh], sizeof lines[nh], "%s: %s", key, json_string_value(v));
            hdrs[nh] = lines[nh];
            nh++;
        }
    }
    const char *body = json_string_value(json_object_get(req, "body"));
    af_http_request_t r = {.size = sizeof r,
                           .method = json_string_value(json_object_get(req, "method")),
                           .url = json_string_value(json_object_get(req, "url")),
                           .headers = hdrs,
                           .body = body,
                           .body_len = body ? strlen(body) : 0,
                           .timeout_ms =
                               (uint64_t)duration_of(json_object_get(req, "timeout"), 30000)};
    af_http_t *h = NULL;
    if (api->o.http_request == NULL) {
        return AF_ENOTSUP;
    }
    int rc = api->o.http_request(api->o.http_ud, &r, responded, l, &h);
    l->http = rc == 0 ? h : NULL;
    return rc;
}

static void poll_now(uv_timer_t *t) {
    af__live_t *l = t->data;
    json_t *req = json_object_get(l->config, "request");
    int64_t now = af_wall_ms(), retry = now;
    if (l->polling) {
        return;
    }
    if (!allowed(l, now, &retry)) {
        arm_at(l, retry > now ? retry : now + 1);
        return;
    }
    l->polling = 1;
    if (l->node_call) {
        node_poll(l);
        return;
    }
    if (req == NULL) {
        json_t *arg = json_object(); /* last_poll_at: absent before the first poll */
        if (l->last_fire_at > 0) {
            json_object_set_new(arg, "last_poll_at", af__api_iso(l->last_fire_at));
        }
        items_from(l, arg, NULL);
        return;
    }
    int rc = request(l, req);
    if (rc != 0) {
        poll_ended(l, 0, "the request could not start");
    }
}

int af__polls_start(af__live_t *l, af_error_t *err) {
    af_trigger_state_t st;
    af_error_t e;
    json_t *req = json_object_get(l->config, "request");
    if (req && !json_is_string(json_object_get(req, "url"))) {
        return af_error_set(err, AF_EINVAL, "af.poll: request.url is required");
    }
    const char *node = json_string_value(json_object_get(l->config, "node"));
    int rc = node ? node_start(l, node, err) : 0;
    if (rc != 0) {
        node_stop(l);
        return rc;
    }
    if (limits == NULL && (limits = af_ratelimit_new()) == NULL) {
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    if ((l->poll_timer = malloc(sizeof *l->poll_timer)) == NULL) {
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    npolls++;
    json_t *max = json_object_get(l->config, "max_per");
    const char *url = json_string_value(json_object_get(req, "url"));
    if (url == NULL) { /* a node's target counts against its host too (http.request's url) */
        url = json_string_value(json_object_get(json_object_get(l->config, "config"), "url"));
    }
    if (url) {
        host_of(url, l->host, sizeof l->host);
    }
    l->interval_ms = duration_of(json_object_get(l->config, "interval"), 60000);
    l->jitter_ms = duration_of(json_object_get(l->config, "jitter"), 0);
    l->max_polls = (int)json_integer_value(json_object_get(max, "polls"));
    l->max_period_ms = duration_of(json_object_get(max, "period"), 60000);
    uv_timer_init(l->api->o.loop, l->poll_timer);
    l->poll_timer->data = l;
    int64_t now = af_wall_ms(), at = now;
    if (!l->carried && af_store_trigger_state_get(l->api->o.store, l->id, &st, &e) == 0) {
        l->poll_state = st.state; /* what it saw before the restart */
        l->last_fire_at = st.last_fire_at;
    }
    if (l->writing) {
        return 0; /* the write of the copy it replaced comes here, and arms the next poll */
    }
    if (l->last_fire_at > 0) {
        int64_t next = l->last_fire_at + l->interval_ms;
        at = next > now ? next : now;
    }
    arm_at(l, at + jitter_of(l));
    return 0;
}

static void poll_closed(uv_handle_t *h) {
    af__live_t *l = h->data;
    free(h);
    free(l);
}

void af__polls_stop(af__live_t *l) {
    af_api_t *api = l->api;
    if (l->http && api->o.http_cancel) {
        api->o.http_cancel(api->o.http_ud, l->http);
    }
    node_stop(l);
    json_decref(l->poll_state);
    l->poll_state = NULL;
    if (l->poll_timer == NULL) {
        free(l);
        return;
    }
    af_clock_timer_stop(l->poll_timer);
    uv_close((uv_handle_t *)l->poll_timer, poll_closed);
    if (--npolls == 0) {
        af_ratelimit_free(limits);
        limits = NULL;
    }
}
