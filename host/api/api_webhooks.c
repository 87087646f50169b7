/* api_webhooks.c -- webhook triggers: /webhooks/<path> checks the registration, the method, the
 * body size, the signature (GitHub style or Standard Webhooks, with replayed ids run once) and
 * the header rules, maps the request to the execution's input (a Lua function of the trigger or
 * the request itself), and answers at once (202) or with the finished execution (wait mode,
 * bounded, shaped by a Lua function). GET /api/webhooks lists the registrations. */
#include "api/api_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "triggers/webhook_verify.h"

#define WEBHOOK_MAX_BODY ((size_t)1 << 20) /* per trigger unless its max_body says otherwise */

/* A request being answered: what outlives the handler (wait mode) is copied here. */
typedef struct hook_s {
    af_api_t *api;
    af_http_res_t *res;
    int position; /* the trigger's index in the script, -1 for an API trigger */
    char file[4096];
    int64_t wait_ms; /* 0: immediate mode */
} hook_t;

/* ---- lookups by path, cached until a definition changes ---- */

#define HOOK_SLOTS 256

/* A webhook with what its config says worked out once: limits, response mode, header rules. */
typedef struct {
    uint64_t generation; /* 0: empty */
    char *path;
    af_webhook_rec_t reg;
    af_trigger_rec_t trigger;
    char status[AF_STORE_STATUS_MAX];
    int version;
    char file[4096];
    size_t max_body;
    int64_t wait_ms;           /* 0: immediate mode */
    int standard;              /* Standard Webhooks signatures: webhook-id is deduplicated */
    af_webhook_rules_t *rules; /* NULL: no header rules, or rules_error */
    char rules_error[256];     /* rules that do not compile: every request gets a 500 */
} hook_entry_t;

struct af__hook_cache_s {
    hook_entry_t slots[HOOK_SLOTS];
};

static size_t path_slot(const char *path) {
    size_t h = 5381;
    while (*path) {
        h = h * 33 + (unsigned char)*path++;
    }
    return h & (HOOK_SLOTS - 1);
}

static void entry_clear(hook_entry_t *e) {
    free(e->path);
    af_webhook_rec_clear(&e->reg);
    af_trigger_rec_clear(&e->trigger);
    af_webhook_rules_free(e->rules);
    memset(e, 0, sizeof *e);
}

void af__api_hooks_free(af_api_t *api) {
    if (api->hooks) {
        for (size_t i = 0; i < HOOK_SLOTS; i++) {
            entry_clear(&api->hooks->slots[i]);
        }
        free(api->hooks);
        api->hooks = NULL;
    }
}

static const char *req_header(void *ud, const char *name) {
    return af_http_req_header(ud, name);
}

/* A secret in a trigger's config: "<secret NAME>" is looked up, anything else is the value. */
static const char *secret_value(af_api_t *api, const json_t *v) {
    const char *text = json_string_value(v);
    char name[256];
    if (text && sscanf(text, "<secret %255[^>]>", name) == 1) {
        return api->o.secret ? api->o.secret(api->o.secret_ud, name) : NULL;
    }
    return text;
}

/* Checks the signature the trigger asks for: 0, or sends 401 (500 for a missing secret). */
static int check_signature(hook_t *h, const hook_entry_t *e, af_http_req_t *req, const char *body,
                           size_t len) {
    const json_t *sig = json_object_get(e->trigger.config, "signature");
    const json_t *hmac = json_object_get(e->trigger.config, "hmac");
    const json_t *cfg = sig ? sig : hmac;
    if (cfg == NULL) {
        return 0;
    }
    const char *type = hmac && !sig ? "github" : json_string_value(json_object_get(cfg, "type"));
    const char *secrets[8];
    size_t n = 0;
    const json_t *list = json_object_get(cfg, "secrets");
    if (json_object_get(cfg, "secret")) {
        secrets[n++] = secret_value(h->api, json_object_get(cfg, "secret"));
    }
    for (size_t i = 0; i < json_array_size(list) && n < 8; i++) {
        secrets[n++] = secret_value(h->api, json_array_get(list, i));
    }
    for (size_t i = 0; i < n; i++) {
        if (secrets[i] == NULL || secrets[i][0] == '\0') {
            af_http_res_send_error(h->res, 500, "the webhook's signing secret is not set");
            return -1;
        }
    }
    af_error_t err = {0};
    int rc;
    if (type && strcmp(type, "standard") == 0) {
        af_webhook_std_t s = {.secrets = secrets,
                              .nsecrets = n,
                              .now = af_wall_ms() / 1000,
                              .tolerance = h->api->o.tolerance_ms / 1000};
        rc = af_webhook_std_verify(&s, req_header, req, body, len, &err);
    } else if (type == NULL || strcmp(type, "github") == 0) {
        af_webhook_hmac_t g = {.header = json_string_value(json_object_get(cfg, "header")),
                               .prefix = json_string_value(json_object_get(cfg, "prefix")),
                               .secrets = secrets,
                               .nsecrets = n};
        rc = af_webhook_hmac_verify(&g, req_header, req, body, len, &err);
    } else {
        af_http_res_send_error(h->res, 500, "unknown signature type '%s'", type);
        return -1;
    }
    if (rc != 0) {
        af_http_res_send_error(h->res, rc == AF_EDEFINITION ? 500 : 401, "%s", err.msg);
        return -1;
    }
    return 0;
}

static int check_headers(hook_t *h, const hook_entry_t *e, af_http_req_t *req) {
    af_error_t err = {0};
    if (e->rules_error[0]) {
        af_http_res_send_error(h->res, 500, "%s", e->rules_error);
        return -1;
    }
    if (e->rules && af_webhook_rules_check(e->rules, req_header, req, &err) != 0) {
        af_http_res_send_error(h->res, 403, "%s", err.msg);
        return -1;
    }
    return 0;
}

/* The request as the workflow sees it (new), or NULL after sending 400. */
static json_t *request_json(hook_t *h, af_http_req_t *req, const char *body, size_t len) {
    size_t nh = af_http_req_header_count(req);
    const char **names = calloc(nh ? nh : 1, sizeof *names);
    const char **values = calloc(nh ? nh : 1, sizeof *values);
    for (size_t i = 0; names && values && i < nh; i++) {
        af_http_req_header_at(req, i, &names[i], &values[i]);
    }
    af_webhook_request_t r = {.method = af_http_req_method(req),
                              .path = af_http_req_path(req),
                              .query = af_http_req_query(req),
                              .headers = {.names = names, .values = values, .count = nh},
                              .body = body,
                              .body_len = len};
    af_error_t err = {0};
    json_t *out = names && values ? af_webhook_request_json(&r, &err) : NULL;
    free(names);
    free(values);
    if (out == NULL) {
        af_http_res_send_error(h->res, err.code == AF_ENOMEM ? 500 : 400, "%s",
                               err.msg[0] ? err.msg : "out of memory");
    }
    return out;
}

static void answer_webhook(af_api_t *api, af_http_res_t *res, const char *id, int done,
                           const af_outcome_t *outcome, void *ud) {
    hook_t *h = ud;
    af_error_t err;
    int rc;
    json_t *x = af__api_execution_json(api, id, outcome, &err, &rc);
    if (x == NULL) {
        af__api_fail(res, rc, &err);
        free(h);
        return;
    }
    if (!done) { /* not finished in time: the caller polls the execution */
        json_t *out =
            json_pack("{s:s, s:O}", "execution_id", id, "status", json_object_get(x, "status"));
        af_http_res_send_json(res, 202, out);
        json_decref(out);
        json_decref(x);
        free(h);
        return;
    }
    json_t *shaped = NULL;
    af_fault_t fault;
    rc = h->position >= 0 ? af_engine_trigger_call(af_worker_engine(api->o.worker), h->file,
                                                   h->position, "response.fn", x, &shaped, &fault)
                          : 0;
    if (rc < 0) {
        af_http_res_send_error(res, 500, "the webhook's response function failed: %s",
                               fault.message);
    } else if (rc == 1 && json_is_object(shaped)) { /* {status, headers, body} */
        json_t *status = json_object_get(shaped, "status");
        json_t *body = json_object_get(shaped, "body");
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(shaped, "headers"), key, v) {
            if (json_is_string(v)) {
                af_http_res_add_header(res, key, json_string_value(v));
            }
        }
        int code = json_is_integer(status) ? (int)json_integer_value(status) : 200;
        if (json_is_string(body)) {
            if (!json_object_get(json_object_get(shaped, "headers"), "Content-Type")) {
                af_http_res_add_header(res, "Content-Type", "text/plain; charset=utf-8");
            }
            af_http_res_set_body(res, json_string_value(body), strlen(json_string_value(body)));
            af_http_res_set_status(res, code >= 200 && code <= 599 ? code : 500);
            af_http_res_send(res);
        } else {
            af_http_res_send_json(res, code >= 200 && code <= 599 ? code : 500,
                                  body ? body : json_null());
        }
    } else {
        af_http_res_send_json(res, 200, x);
    }
    json_decref(shaped);
    json_decref(x);
    free(h);
}

static void hook_created(af_create_t *c, int rc) {
    hook_t *h = c->ud;
    if (rc != 0) {
        af_http_res_send_error(h->res, 500, "could not store the execution: %s", af_strerror(rc));
    } else if (c->duplicate) {
        json_t *out = json_pack("{s:s, s:s}", "status", "duplicate", "execution_id", c->first_id);
        af_http_res_send_json(h->res, 200, out);
        json_decref(out);
    } else if (h->wait_ms > 0) {
        af__api_wait(h->api, h->res, c->ids[0], h->wait_ms, answer_webhook, h);
        return;
    } else {
        json_t *out =
            json_pack("{s:s, s:s}", "execution_id", c->ids[0], "status", AF__CREATED_STATUS(c, 0));
        af_http_res_send_json(h->res, 202, out);
        json_decref(out);
    }
    free(h);
}

/* The response mode: 0 for immediate, else how long to wait (bounded by max_wait_ms). */
static int64_t wait_of(af_api_t *api, const json_t *config) {
    const json_t *r = json_object_get(config, "response");
    const char *mode =
        json_is_string(r) ? json_string_value(r) : json_string_value(json_object_get(r, "mode"));
    if (mode == NULL || strcmp(mode, "wait") != 0) {
        return 0;
    }
    int64_t ms = api->o.max_wait_ms;
    const char *timeout = json_string_value(json_object_get(r, "timeout"));
    if (timeout && af_duration_parse(timeout, &ms) == 0 && ms > api->o.max_wait_ms) {
        ms = api->o.max_wait_ms;
    }
    return ms > 0 ? ms : 1;
}

/* Works out once what the trigger's config says for every request. */
static void entry_settle(af_api_t *api, hook_entry_t *e) {
    const json_t *config = e->trigger.config;
    json_t *limit = json_object_get(config, "max_body");
    e->max_body = WEBHOOK_MAX_BODY;
    if (json_is_string(limit)) {
        af_bytes_parse(json_string_value(limit), &e->max_body);
    } else if (json_is_integer(limit)) {
        e->max_body = (size_t)json_integer_value(limit);
    }
    e->wait_ms = wait_of(api, config);
    const char *type =
        json_string_value(json_object_get(json_object_get(config, "signature"), "type"));
    e->standard = type && strcmp(type, "standard") == 0;
    const json_t *rules = json_object_get(config, "headers");
    af_error_t err = {0};
    if (rules && (e->rules = af_webhook_rules_compile(rules, &err)) == NULL) {
        snprintf(e->rules_error, sizeof e->rules_error, "%.250s", err.msg);
    }
}

/* The registration of path with its trigger and workflow, from the cache or the store (then
 * cached). Returns the entry, or NULL when there is no active webhook there. */
static hook_entry_t *hook_lookup(af_api_t *api, af_http_res_t *res, const char *path) {
    if (api->hooks == NULL && (api->hooks = calloc(1, sizeof *api->hooks)) == NULL) {
        return NULL;
    }
    hook_entry_t *e = &api->hooks->slots[path_slot(path)];
    if (e->generation == api->generation + 1 && strcmp(e->path, path) == 0) {
        return e;
    }
    entry_clear(e);
    af_error_t err;
    if (af_store_webhook_find(api->o.store, path, &e->reg, &err) != 0 ||
        af_store_trigger_get(api->o.store, e->reg.trigger_id, &e->trigger, &err) != 0 ||
        !e->trigger.is_active) {
        entry_clear(e);
        af_http_res_send_error(res, 404, "no active webhook at /webhooks/%s", path);
        return NULL;
    }
    if (af__api_current(api, res, e->reg.workflow_id, &e->version, e->file, sizeof e->file,
                        e->status) != 0) {
        entry_clear(e);
        return NULL;
    }
    entry_settle(api, e);
    e->path = strdup(path);
    e->generation = api->generation + 1;
    return e;
}

/* The webhook for this request, after its method, body size and workflow status are checked;
 * NULL after sending 404/405/413. The entry is borrowed until the handler returns. */
static const hook_entry_t *hook_find(hook_t *h, af_http_req_t *req, size_t len) {
    const char *path = af_http_req_wildcard(req);
    hook_entry_t *e = path ? hook_lookup(h->api, h->res, path) : NULL;
    if (e == NULL) {
        if (path == NULL) {
            af_http_res_send_error(h->res, 404, "no active webhook at /webhooks/");
        }
        return NULL;
    }
    const char *methods = e->reg.methods ? e->reg.methods : "POST";
    const char *m = af_http_req_method(req);
    size_t mlen = strlen(m);
    const char *hit = strstr(methods, m);
    if (hit == NULL || (hit != methods && hit[-1] != ',') || (hit[mlen] && hit[mlen] != ',')) {
        af_http_res_add_header(h->res, "Allow", methods);
        af_http_res_send_error(h->res, 405, "this webhook takes %s", methods);
        return NULL;
    }
    if (len > e->max_body) {
        af_http_res_send_error(h->res, 413, "the body is larger than this webhook's %zu bytes",
                               e->max_body);
        return NULL;
    }
    if (strcmp(e->status, "active") != 0) {
        af_http_res_send_error(h->res, 404, "the workflow of /webhooks/%s is paused", path);
        return NULL;
    }
    h->position = e->trigger.position;
    h->wait_ms = e->wait_ms;
    af_strlcpy(h->file, e->file, sizeof h->file);
    return e;
}

static void webhook(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    size_t len;
    const char *body = af_http_req_body(req, &len);
    hook_t *h = calloc(1, sizeof *h);
    if (h == NULL) {
        af_http_res_send_error(res, 500, "out of memory");
        return;
    }
    h->api = api;
    h->res = res;
    const hook_entry_t *e = hook_find(h, req, len);
    json_t *request = NULL, *input = NULL;
    if (e == NULL || check_signature(h, e, req, body, len) != 0 || check_headers(h, e, req) != 0 ||
        (request = request_json(h, req, body, len)) == NULL) {
        free(h);
        return;
    }
    af_fault_t fault;
    int rc = h->position >= 0
                 ? af_engine_trigger_call(af_worker_engine(api->o.worker), h->file, h->position,
                                          "input", request, &input, &fault)
                 : 0;
    if (rc < 0) {
        json_decref(request);
        af_http_res_send_error(res, 500, "the webhook's input function failed: %s", fault.message);
        free(h);
        return;
    }
    af_create_t *c = af__api_create_one(api, e->reg.workflow_id, e->version,
                                        rc == 1 ? input : json_incref(request));
    json_decref(request);
    if (c == NULL) {
        af_http_res_send_error(res, 500, "out of memory");
        free(h);
        return;
    }
    const char *msg_id = af_http_req_header(req, "webhook-id");
    if (msg_id && e->standard && af__api_create_seen(c, "", e->trigger.id, msg_id) != 0) {
        af__api_create_written(c, AF_ENOMEM); /* a replay runs nothing: it must be recorded */
        af_http_res_send_error(res, 500, "out of memory");
        free(h);
        return;
    }
    c->done = hook_created;
    c->ud = h;
    c->waited = h->wait_ms > 0;
    af__api_create_submit(c);
}

static void webhook_list(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    int limit = af__api_limit(req, res);
    if (limit < 0) {
        return;
    }
    af_webhook_rec_t *ws = NULL;
    size_t n = 0;
    char next[AF_STORE_CURSOR_MAX] = "";
    af_error_t err;
    int rc = af_store_webhook_list(api->o.store, af_http_req_query_param(req, "cursor"), limit, &ws,
                                   &n, next, &err);
    if (rc != 0) {
        af__api_fail(res, rc, &err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        char url[1200];
        snprintf(url, sizeof url, "/webhooks/%s", ws[i].path);
        json_array_append_new(items, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:o}", "id",
                                               ws[i].id, "workflow_id", ws[i].workflow_id,
                                               "trigger_id", ws[i].trigger_id, "path", ws[i].path,
                                               "url", url, "methods", ws[i].methods, "created_at",
                                               af__api_iso(ws[i].created_at)));
    }
    af_webhook_recs_free(ws, n);
    af__api_send_items(res, items, next, 1);
}

int af__api_routes_webhooks(af_api_t *api, af_error_t *err) {
    static const char *const methods[] = {"POST", "GET", "PUT", "PATCH", "DELETE"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (af__api_route(api, methods[i], "/webhooks/*", webhook, err) != 0) {
            return err->code;
        }
    }
    return af__api_route(api, "GET", "/api/webhooks", webhook_list, err);
}
