/* api_workflows.c -- workflow definitions over REST: create from a Lua script that must compile,
 * list, get with its source, new versions, versions, delete, activate and pause; and triggers:
 * those a script declares (registered when its workflow is created, changed or activated) and
 * those added through the API. Definition writes are rare and run on the loop's connection. */
#include "api/api_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>
#include <strings.h>

#include "triggers/schedule.h"
#include "triggers/webhook_verify.h"

static json_t *workflow_json(const af_workflow_t *w) {
    return json_pack("{s:s, s:s, s:o, s:s, s:i, s:o, s:o}", "id", w->id, "name",
                     w->name ? w->name : "", "description",
                     w->description ? json_string(w->description) : json_null(), "status",
                     w->status, "version", w->current_version, "created_at",
                     af__api_iso(w->created_at), "updated_at", af__api_iso(w->updated_at));
}

/* The script of a create or update request: a JSON body {"source": ..., "name": ...} or the
 * script itself as text/x-lua. Sends the error and returns NULL when the body is not usable. */
static char *script_of(af_http_req_t *req, af_http_res_t *res, size_t *len, char **name) {
    size_t n;
    const char *body = af_http_req_body(req, &n);
    const char *type = af_http_req_header(req, "Content-Type");
    *name = NULL;
    if (type && strncasecmp(type, "text/x-lua", 10) == 0) {
        char *src = malloc(n + 1);
        memcpy(src, body ? body : "", n);
        src[n] = '\0';
        *len = n;
        return src;
    }
    if (type == NULL || strncasecmp(type, "application/json", 16) != 0) {
        af_http_res_send_error(res, 415, "send application/json {\"source\": ...} or text/x-lua");
        return NULL;
    }
    json_t *j = af__api_json_body(req, res);
    if (j == NULL) {
        return NULL;
    }
    const char *src = json_string_value(json_object_get(j, "source"));
    const char *nm = json_string_value(json_object_get(j, "name"));
    if (src == NULL || (json_object_get(j, "name") && (nm == NULL || nm[0] == '\0'))) {
        json_decref(j);
        af_http_res_send_error(res, 422,
                               "'source' (the Lua script, a string) is required; "
                               "'name', when given, is a non-empty string");
        return NULL;
    }
    char *copy = strdup(src);
    *len = strlen(src);
    *name = nm ? strdup(nm) : NULL;
    json_decref(j);
    return copy;
}

static int send_workflow(af_api_t *api, af_http_res_t *res, int status, const char *id,
                         int with_source) {
    af_workflow_t w = {0};
    af_error_t err;
    int rc = af_store_workflow_get(api->o.store, id, &w, &err);
    if (rc != 0) {
        af__api_fail(res, rc, &err);
        return rc;
    }
    json_t *out = workflow_json(&w);
    if (with_source) {
        af_workflow_version_t v = {0};
        if (af_store_version_get(api->o.store, id, 0, &v, &err) == 0 && v.lua_source) {
            json_object_set_new(out, "source", json_string(v.lua_source));
        }
        af_workflow_version_clear(&v);
    }
    af_workflow_clear(&w);
    rc = af_http_res_send_json(res, status, out);
    json_decref(out);
    return rc;
}

/* Runs the writes of one request in a transaction: all or nothing. */
static int commit_or_rollback(af_api_t *api, int rc, af_error_t *err, const char *workflow_id) {
    af__api_changed(api, workflow_id);
    if (rc == 0) {
        return af_store_commit(api->o.store, err);
    }
    af_store_rollback(api->o.store);
    return rc;
}

/* 204 after a delete (cached definitions are dropped), or the error. */
static void answer_deleted(af_api_t *api, af_http_res_t *res, int rc, const af_error_t *err,
                           const char *workflow_id) {
    af__api_changed(api, workflow_id);
    if (rc != 0) {
        af__api_fail(res, rc, err);
        return;
    }
    af_http_res_set_status(res, 204);
    af_http_res_send(res);
}

/* ---- triggers ---- */

/* "POST,PUT" from a webhook config's method / methods; NULL when malformed. */
static char *methods_of(const json_t *config) {
    const json_t *m = json_object_get(config, "methods");
    const json_t *one = json_object_get(config, "method");
    af_buf_t b = {0};
    if (json_is_string(one)) {
        af_buf_add(&b, json_string_value(one), strlen(json_string_value(one)));
    } else if (json_is_array(m)) {
        size_t i;
        const json_t *v;
        json_array_foreach(m, i, v) {
            if (!json_is_string(v)) {
                free(b.data);
                return NULL;
            }
            if (i) {
                af_buf_add(&b, ",", 1);
            }
            af_buf_add(&b, json_string_value(v), strlen(json_string_value(v)));
        }
    } else if (m || one) {
        return NULL;
    }
    if (b.data == NULL) {
        af_buf_add(&b, "POST", 4);
    }
    for (char *p = b.data; *p; p++) {
        *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    }
    return b.data;
}

/* Registers trigger t (stored already) as a webhook when it is one. */
static int register_webhook(af_api_t *api, const af_trigger_rec_t *t, af_error_t *err) {
    if (strcmp(t->type, "webhook") != 0) {
        return 0;
    }
    const char *path = json_string_value(json_object_get(t->config, "path"));
    if (path == NULL || path[strspn(path, "/")] == '\0') {
        return af_error_set(err, AF_EINVAL, "a webhook trigger needs 'path'");
    }
    for (const char *p = path; *p; p++) {
        if (!(*p == '/' || *p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) {
            return af_error_set(err, AF_EINVAL, "webhook path '%s': use letters, digits, - _ . /",
                                path);
        }
    }
    char *methods = methods_of(t->config);
    if (methods == NULL) {
        return af_error_set(err, AF_EINVAL, "'methods' is a list of HTTP methods");
    }
    const json_t *rules = json_object_get(t->config, "headers");
    af_webhook_rules_t *compiled = rules ? af_webhook_rules_compile(rules, err) : NULL;
    if (rules && compiled == NULL) { /* refused when stored, not at every request */
        free(methods);
        return err->code;
    }
    af_webhook_rules_free(compiled);
    af_webhook_rec_t w = {
        .path = (char *)path + strspn(path, "/"), .methods = methods, .config = t->config};
    snprintf(w.workflow_id, sizeof w.workflow_id, "%s", t->workflow_id);
    snprintf(w.trigger_id, sizeof w.trigger_id, "%s", t->id);
    int rc = af_store_webhook_register(api->o.store, &w, NULL, err);
    free(methods);
    return rc;
}

/* A script trigger's id: a name-based UUID (RFC 9562 version 8) of its workflow, place and
 * type, so a new version's trigger in the same place keeps its id, and with it its state (a
 * schedule's last fire, a poll's seen items, an event trigger's deliveries). */
static void script_trigger_id(const char *workflow_id, int position, const char *type,
                              char out[AF_STORE_ID_MAX]) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    char name[AF_STORE_ID_MAX + 64];
    int n = snprintf(name, sizeof name, "%s:%d:%s", workflow_id, position, type);
    SHA256((const unsigned char *)name, (size_t)n, md);
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x80);
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    char *p = out;
    for (int i = 0; i < 16; i++) {
        p += sprintf(p, "%s%02x", i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "", md[i]);
    }
}

int af__api_sync_triggers(af_api_t *api, const char *workflow_id, const af_graph_t *g,
                          af_error_t *err) {
    int rc = af_store_trigger_delete_source(api->o.store, workflow_id, "script", err);
    for (int i = 0; rc == 0 && i < g->ntriggers; i++) {
        af_trigger_rec_t t = {.config = g->triggers[i].config, .is_active = 1, .position = i};
        script_trigger_id(workflow_id, i, g->triggers[i].type, t.id);
        snprintf(t.workflow_id, sizeof t.workflow_id, "%s", workflow_id);
        snprintf(t.type, sizeof t.type, "%s", g->triggers[i].type);
        snprintf(t.source, sizeof t.source, "script");
        rc = af_store_trigger_create(api->o.store, &t, t.id, err);
        if (rc == 0) {
            rc = register_webhook(api, &t, err);
        }
    }
    return rc;
}

static json_t *trigger_json(af_api_t *api, const af_trigger_rec_t *t) {
    json_t *out = json_pack("{s:s, s:s, s:s, s:O?, s:b, s:s, s:o, s:o}", "id", t->id, "workflow_id",
                            t->workflow_id, "type", t->type, "config", t->config, "active",
                            t->is_active, "source", t->source, "created_at",
                            af__api_iso(t->created_at), "updated_at", af__api_iso(t->updated_at));
    if (t->position >= 0) {
        json_object_set_new(out, "position", json_integer(t->position));
    }
    int live = 0;
    int64_t due = af__api_live_next_run(api, t->id, &live);
    if (live) { /* the running schedule's next fire (a catch-up, an `every` from its last) */
        json_object_set_new(out, "next_run_at", af__api_iso(due));
    } else if (strcmp(t->type, "schedule") == 0 && json_object_get(t->config, "cron")) {
        af_error_t err; /* not running (paused, inactive): when it would fire from now */
        json_t *next = af_schedule_next_runs_json(t->config, af_wall_ms(), 1, &err);
        json_object_set(out, "next_run_at",
                        next && json_array_size(next) ? json_array_get(next, 0) : json_null());
        json_decref(next);
    }
    const char *path = json_string_value(json_object_get(t->config, "path"));
    if (strcmp(t->type, "webhook") == 0 && path) {
        char url[1200];
        snprintf(url, sizeof url, "/webhooks/%s", path + strspn(path, "/"));
        json_object_set_new(out, "url", json_string(url));
    }
    return out;
}

static void send_trigger(af_api_t *api, af_http_res_t *res, int status, const char *id) {
    af_trigger_rec_t t = {0};
    af_error_t err;
    int rc = af_store_trigger_get(api->o.store, id, &t, &err);
    if (rc != 0) {
        af__api_fail(res, rc, &err);
        return;
    }
    json_t *out = trigger_json(api, &t);
    af_trigger_rec_clear(&t);
    af_http_res_send_json(res, status, out);
    json_decref(out);
}

static int valid_trigger_type(const char *type) {
    static const char *const ok[] = {"webhook", "schedule", "event", "poll", "manual", "plugin"};
    for (size_t i = 0; type && i < sizeof ok / sizeof ok[0]; i++) {
        if (strcmp(type, ok[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static void trigger_list(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    const char *id = af_http_req_param(req, "id");
    af_workflow_t w = {0};
    af_trigger_rec_t *ts = NULL;
    size_t n = 0;
    af_error_t err;
    int rc = af_store_workflow_get(api->o.store, id, &w, &err);
    af_workflow_clear(&w);
    if (rc == 0) {
        rc = af_store_trigger_list(api->o.store, id, &ts, &n, &err);
    }
    if (rc != 0) {
        af__api_fail(res, rc, &err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(items, trigger_json(api, &ts[i]));
    }
    af_trigger_recs_free(ts, n);
    af__api_send_items(res, items, NULL, 0);
}

/* {"type": ..., "config": {...}, "active": bool}; fills t (config borrowed from body). */
static int trigger_body(json_t *body, af_trigger_rec_t *t, int creating, af_error_t *err) {
    json_t *type = json_object_get(body, "type");
    json_t *config = json_object_get(body, "config");
    json_t *active = json_object_get(body, "active");
    if (!json_is_object(body)) {
        return af_error_set(err, AF_EDEFINITION, "the body is a JSON object");
    }
    if (creating && !valid_trigger_type(json_string_value(type))) {
        return af_error_set(err, AF_EDEFINITION,
                            "'type' is one of webhook, schedule, event, poll, manual, plugin");
    }
    if ((config && !json_is_object(config)) || (active && !json_is_boolean(active))) {
        return af_error_set(err, AF_EDEFINITION, "'config' is an object and 'active' a boolean");
    }
    if (creating) {
        snprintf(t->type, sizeof t->type, "%s", json_string_value(type));
    }
    if (config) {
        t->config = config;
    }
    if (active) {
        t->is_active = json_is_true(active);
    }
    af_error_t e = {0};
    if (strcmp(t->type, "schedule") == 0 && af_schedule_check(t->config, &e) != 0) {
        return af_error_set(err, AF_EDEFINITION, "config: %s", e.msg);
    }
    const char *ptype = json_string_value(json_object_get(t->config, "type"));
    if (strcmp(t->type, "plugin") == 0 && (ptype == NULL || af_trigger_find(ptype) == NULL)) {
        return af_error_set(
            err, AF_EDEFINITION,
            "config.type: no trigger type '%s' is loaded (see agentflow plugin list)",
            ptype ? ptype : "");
    }
    return 0;
}

static void trigger_create(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    json_t *body = af__api_json_body(req, res);
    if (body == NULL) {
        return;
    }
    af_trigger_rec_t t = {.is_active = 1, .position = -1};
    af_error_t err;
    snprintf(t.workflow_id, sizeof t.workflow_id, "%s", af_http_req_param(req, "id"));
    snprintf(t.source, sizeof t.source, "api");
    int rc = trigger_body(body, &t, 1, &err);
    if (rc == 0 && t.config == NULL) {
        t.config = json_object_get(body, "config"); /* NULL: no config */
    }
    if (rc == 0 && (rc = af_store_begin(api->o.store, &err)) == 0) {
        rc = af_store_trigger_create(api->o.store, &t, t.id, &err);
        if (rc == 0) {
            rc = register_webhook(api, &t, &err);
        }
        rc = commit_or_rollback(api, rc, &err, t.workflow_id);
    }
    json_decref(body);
    if (rc != 0) {
        af__api_fail(res, rc, &err);
        return;
    }
    send_trigger(api, res, 201, t.id);
}

static void trigger_update(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    const char *id = af_http_req_param(req, "id");
    af_trigger_rec_t t = {0};
    af_error_t err;
    int rc = af_store_trigger_get(api->o.store, id, &t, &err);
    if (rc != 0) {
        af__api_fail(res, rc, &err);
        return;
    }
    json_t *body = af__api_json_body(req, res);
    if (body == NULL) {
        af_trigger_rec_clear(&t);
        return;
    }
    json_t *old = t.config;
    rc = trigger_body(body, &t, 0, &err);
    if (rc == 0 && (rc = af_store_begin(api->o.store, &err)) == 0) {
        /* again under the same id, so a webhook's registration follows its new config */
        rc = af_store_trigger_delete(api->o.store, id, &err);
        if (rc == 0) {
            rc = af_store_trigger_create(api->o.store, &t, NULL, &err);
        }
        if (rc == 0) {
            rc = register_webhook(api, &t, &err);
        }
        rc = commit_or_rollback(api, rc, &err, t.workflow_id);
    }
    t.config = old;
    af_trigger_rec_clear(&t);
    json_decref(body);
    if (rc != 0) {
        af__api_fail(res, rc, &err);
        return;
    }
    send_trigger(api, res, 200, id);
}

static void trigger_delete(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    af_error_t err;
    int rc = af_store_trigger_delete(api->o.store, af_http_req_param(req, "id"), &err);
    answer_deleted(api, res, rc, &err, NULL);
}

/* ---- workflows ---- */

static void workflow_create(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    size_t len;
    char *name;
    char *src = script_of(req, res, &len, &name);
    af_graph_t *g = src ? af__api_compile(api, res, src, len) : NULL;
    if (g != NULL) {
        af_workflow_t w = {.name = name ? name : g->name, .description = g->description};
        char id[AF_STORE_ID_MAX] = "";
        af_error_t err;
        int rc = af_store_begin(api->o.store, &err);
        if (rc == 0) {
            rc = af_store_workflow_create(api->o.store, &w, id, &err);
            if (rc == 0) {
                rc = af_store_version_add(api->o.store, id, src, NULL, NULL, &err);
            }
            if (rc == 0) {
                rc = af__api_sync_triggers(api, id, g, &err);
            }
            rc = commit_or_rollback(api, rc, &err, id);
        }
        if (rc == 0) {
            send_workflow(api, res, 201, id, 0);
        } else {
            af__api_fail(res, rc, &err);
        }
        af_graph_free(g);
    }
    free(name);
    free(src);
}

static void workflow_list(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    int limit = af__api_limit(req, res);
    if (limit < 0) {
        return;
    }
    af_workflow_t *ws = NULL;
    size_t n = 0;
    char next[AF_STORE_CURSOR_MAX] = "";
    af_error_t err;
    int rc;
    const char *name = af_http_req_query_param(req, "name");
    if (name) { /* by name: the newest one called so, or none */
        ws = calloc(1, sizeof *ws);
        rc = ws ? af_store_workflow_find(api->o.store, name, ws, &err) : AF_ENOMEM;
        n = rc == 0 ? 1 : 0;
        rc = rc == AF_ENOTFOUND ? 0 : rc;
    } else {
        rc = af_store_workflow_list(api->o.store, NULL, af_http_req_query_param(req, "cursor"),
                                    limit, &ws, &n, next, &err);
    }
    if (rc != 0) {
        free(ws);
        af__api_fail(res, rc, &err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(items, workflow_json(&ws[i]));
    }
    af_workflows_free(ws, n); /* frees the array too, also when n is 0 */
    af__api_send_items(res, items, next, 1);
}

static void workflow_get(af_http_req_t *req, af_http_res_t *res, void *ud) {
    send_workflow(ud, res, 200, af_http_req_param(req, "id"), 1);
}

static void workflow_update(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    const char *id = af_http_req_param(req, "id");
    af_workflow_t w = {0};
    af_error_t err;
    int rc = af_store_workflow_get(api->o.store, id, &w, &err);
    if (rc != 0) {
        af__api_fail(res, rc, &err);
        return;
    }
    size_t len;
    char *name;
    char *src = script_of(req, res, &len, &name);
    af_graph_t *g = src ? af__api_compile(api, res, src, len) : NULL;
    if (g != NULL) { /* a new version; running executions keep the one they started with */
        free(w.name);
        free(w.description);
        w.name = strdup(name ? name : g->name);
        w.description = g->description ? strdup(g->description) : NULL;
        w.status[0] = '\0';
        rc = af_store_begin(api->o.store, &err);
        if (rc == 0) {
            rc = af_store_version_add(api->o.store, id, src, NULL, NULL, &err);
            if (rc == 0) {
                rc = af_store_workflow_update(api->o.store, &w, &err);
            }
            if (rc == 0) {
                rc = af__api_sync_triggers(api, id, g, &err);
            }
            rc = commit_or_rollback(api, rc, &err, id);
        }
        if (rc == 0) {
            send_workflow(api, res, 200, id, 0);
        } else {
            af__api_fail(res, rc, &err);
        }
        af_graph_free(g);
    }
    af_workflow_clear(&w);
    free(name);
    free(src);
}

static void workflow_delete(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    af_error_t err;
    const char *id = af_http_req_param(req, "id");
    int rc = af_store_workflow_delete(api->o.store, id, &err);
    answer_deleted(api, res, rc, &err, id);
}

static void workflow_versions(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    af_workflow_version_t *vs = NULL;
    size_t n = 0;
    af_error_t err;
    int rc = af_store_version_list(api->o.store, af_http_req_param(req, "id"), &vs, &n, &err);
    if (rc != 0) {
        af__api_fail(res, rc, &err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(items, json_pack("{s:i, s:s?, s:o}", "version", vs[i].version,
                                               "source", vs[i].lua_source, "created_at",
                                               af__api_iso(vs[i].created_at)));
    }
    af_workflow_versions_free(vs, n);
    af__api_send_items(res, items, NULL, 0);
}

/* How many executions of the workflow are in each status. */
static void workflow_stats(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    const char *id = af_http_req_param(req, "id");
    static const char *const statuses[] = {"queued",    "running", "waiting",
                                           "succeeded", "failed",  "cancelled"};
    af_workflow_t w = {0};
    af_error_t err;
    int rc = af_store_workflow_get(api->o.store, id, &w, &err);
    af_workflow_clear(&w);
    json_t *counts = json_object();
    for (size_t i = 0; rc == 0 && i < sizeof statuses / sizeof statuses[0]; i++) {
        int64_t n = 0;
        rc = af_store_execution_count(api->o.store, id, statuses[i], &n, &err);
        json_object_set_new(counts, statuses[i], json_integer(n));
    }
    if (rc != 0) {
        json_decref(counts);
        af__api_fail(res, rc, &err);
        return;
    }
    json_t *out = json_pack("{s:s, s:o}", "workflow_id", id, "executions", counts);
    af_http_res_send_json(res, 200, out);
    json_decref(out);
}

/* Activating registers the current version's triggers again (a path another workflow took
 * meanwhile is a 409); pausing keeps them, and the triggers of a paused workflow do not fire. */
static void workflow_set_status(af_http_req_t *req, af_http_res_t *res, const char *status,
                                af_api_t *api) {
    const char *id = af_http_req_param(req, "id");
    af_workflow_t w = {0};
    af_workflow_version_t v = {0};
    af_graph_t *g = NULL;
    af_error_t err;
    int rc = af_store_workflow_get(api->o.store, id, &w, &err);
    if (rc == 0 && strcmp(status, "active") == 0) {
        rc = af_store_version_get(api->o.store, id, 0, &v, &err);
        if (rc == 0 && v.lua_source) {
            g = af__api_compile(api, res, v.lua_source, strlen(v.lua_source));
            if (g == NULL) {
                af_workflow_clear(&w);
                af_workflow_version_clear(&v);
                return;
            }
        }
    }
    if (rc == 0 && (rc = af_store_begin(api->o.store, &err)) == 0) {
        snprintf(w.status, sizeof w.status, "%s", status);
        rc = af_store_workflow_update(api->o.store, &w, &err);
        if (rc == 0 && g) {
            rc = af__api_sync_triggers(api, id, g, &err);
        }
        rc = commit_or_rollback(api, rc, &err, id);
    }
    af_graph_free(g);
    af_workflow_clear(&w);
    af_workflow_version_clear(&v);
    if (rc != 0) {
        af__api_fail(res, rc, &err);
        return;
    }
    send_workflow(api, res, 200, id, 0);
}

static void workflow_activate(af_http_req_t *req, af_http_res_t *res, void *ud) {
    workflow_set_status(req, res, "active", ud);
}

static void workflow_pause(af_http_req_t *req, af_http_res_t *res, void *ud) {
    workflow_set_status(req, res, "paused", ud);
}

int af__api_routes_workflows(af_api_t *api, af_error_t *err) {
    static const struct {
        const char *method, *pattern;
        af_http_handler_fn fn;
    } routes[] = {
        {"POST", "/api/workflows", workflow_create},
        {"GET", "/api/workflows", workflow_list},
        {"GET", "/api/workflows/:id", workflow_get},
        {"PUT", "/api/workflows/:id", workflow_update},
        {"DELETE", "/api/workflows/:id", workflow_delete},
        {"GET", "/api/workflows/:id/versions", workflow_versions},
        {"GET", "/api/workflows/:id/stats", workflow_stats},
        {"POST", "/api/workflows/:id/activate", workflow_activate},
        {"POST", "/api/workflows/:id/pause", workflow_pause},
        {"GET", "/api/workflows/:id/triggers", trigger_list},
        {"POST", "/api/workflows/:id/triggers", trigger_create},
        {"PUT", "/api/triggers/:id", trigger_update},
        {"DELETE", "/api/triggers/:id", trigger_delete},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (af__api_route(api, routes[i].method, routes[i].pattern, routes[i].fn, err) != 0) {
            return err->code;
        }
    }
    return 0;
}
