/* api.c -- REST handlers of `agentflow serve`: /healthz, /readyz and /api/workflows (create from
 * a Lua script that must compile, list with a cursor, get with its source, new versions, delete).
 */
#include "api/api.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dsl/dsl.h"

struct af_api_s {
    uv_loop_t *loop;
    af_store_t *store;
};

/* ---- helpers ---- */

static json_t *iso(int64_t ms) {
    char buf[40];
    return ms > 0 ? json_string(af_time_iso(ms, buf, sizeof buf)) : json_null();
}

static json_t *workflow_json(const af_workflow_t *w) {
    return json_pack("{s:s, s:s, s:o, s:s, s:i, s:o, s:o}", "id", w->id, "name",
                     w->name ? w->name : "", "description",
                     w->description ? json_string(w->description) : json_null(), "status",
                     w->status, "version", w->current_version, "created_at", iso(w->created_at),
                     "updated_at", iso(w->updated_at));
}

/* The store's error as an HTTP status. */
static int status_of(int code) {
    return code == AF_ENOTFOUND ? 404 : code == AF_EEXISTS ? 409 : code == AF_EINVAL ? 400 : 500;
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
    af_error_t err;
    json_t *j = af_json_loads(body ? body : "", n, 64, &err);
    if (j == NULL) {
        af_http_res_send_error(res, 400, "malformed JSON: %s", err.msg);
        return NULL;
    }
    const char *src = json_string_value(json_object_get(j, "source"));
    const char *nm = json_string_value(json_object_get(j, "name"));
    if (src == NULL || (json_object_get(j, "name") && nm == NULL)) {
        json_decref(j);
        af_http_res_send_error(res, 422,
                               "'source' (the Lua script, a string) is required; "
                               "'name', when given, is a string");
        return NULL;
    }
    char *copy = strdup(src);
    *len = strlen(src);
    *name = nm ? strdup(nm) : NULL;
    json_decref(j);
    return copy;
}

/* Compiles the script in a scratch VM; on failure sends 422 with file:line and returns NULL. */
static af_graph_t *compile(af_api_t *api, af_http_res_t *res, const char *src, size_t len) {
    af_error_t err = {0};
    af_vm_opts_t vo = {.loop = api->loop};
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

static int send_workflow(af_api_t *api, af_http_res_t *res, int status, const char *id,
                         int with_source) {
    af_workflow_t w = {0};
    af_error_t err;
    int rc = af_store_workflow_get(api->store, id, &w, &err);
    if (rc != 0) {
        return af_http_res_send_error(res, status_of(rc), "%s", err.msg);
    }
    json_t *out = workflow_json(&w);
    if (with_source) {
        af_workflow_version_t v = {0};
        if (af_store_version_get(api->store, id, 0, &v, &err) == 0 && v.lua_source) {
            json_object_set_new(out, "source", json_string(v.lua_source));
        }
        af_workflow_version_clear(&v);
    }
    af_workflow_clear(&w);
    rc = af_http_res_send_json(res, status, out);
    json_decref(out);
    return rc;
}

/* ---- handlers ---- */

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
    if (af_store_info(api->store, &info) != 0) {
        af_http_res_send_error(res, 503, "the store does not answer");
        return;
    }
    json_t *ok = json_pack("{s:s, s:s, s:i}", "status", "ready", "store", info.backend,
                           "schema_version", info.schema_version);
    af_http_res_send_json(res, 200, ok);
    json_decref(ok);
}

static void workflow_create(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    size_t len;
    char *name;
    char *src = script_of(req, res, &len, &name);
    if (src == NULL) {
        return;
    }
    af_graph_t *g = compile(api, res, src, len);
    if (g != NULL) {
        af_workflow_t w = {.name = name ? name : g->name, .description = g->description};
        char id[AF_STORE_ID_MAX];
        af_error_t err;
        int rc = af_store_begin(api->store, &err);
        if (rc == 0) {
            rc = af_store_workflow_create(api->store, &w, id, &err);
        }
        if (rc == 0) {
            rc = af_store_version_add(api->store, id, src, NULL, NULL, &err);
        }
        if (rc == 0) {
            rc = af_store_commit(api->store, &err);
        } else {
            af_store_rollback(api->store);
        }
        if (rc == 0) {
            send_workflow(api, res, 201, id, 0);
        } else {
            af_http_res_send_error(res, status_of(rc), "%s", err.msg);
        }
        af_graph_free(g);
    }
    free(name);
    free(src);
}

static void workflow_list(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    const char *limit_text = af_http_req_query_param(req, "limit");
    int limit = limit_text ? atoi(limit_text) : 50;
    if (limit < 1 || limit > 200) {
        af_http_res_send_error(res, 400, "limit is a number from 1 to 200");
        return;
    }
    af_workflow_t *ws = NULL;
    size_t n = 0;
    char next[AF_STORE_CURSOR_MAX];
    af_error_t err;
    int rc = af_store_workflow_list(api->store, NULL, af_http_req_query_param(req, "cursor"), limit,
                                    &ws, &n, next, &err);
    if (rc != 0) {
        af_http_res_send_error(res, status_of(rc), "%s", err.msg);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(items, workflow_json(&ws[i]));
    }
    af_workflows_free(ws, n);
    json_t *out = json_pack("{s:o, s:o}", "items", items, "next_cursor",
                            next[0] ? json_string(next) : json_null());
    af_http_res_send_json(res, 200, out);
    json_decref(out);
}

static void workflow_get(af_http_req_t *req, af_http_res_t *res, void *ud) {
    send_workflow(ud, res, 200, af_http_req_param(req, "id"), 1);
}

static void workflow_update(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    const char *id = af_http_req_param(req, "id");
    af_workflow_t w = {0};
    af_error_t err;
    int rc = af_store_workflow_get(api->store, id, &w, &err);
    if (rc != 0) {
        af_http_res_send_error(res, status_of(rc), "%s", err.msg);
        return;
    }
    size_t len;
    char *name;
    char *src = script_of(req, res, &len, &name);
    af_graph_t *g = src ? compile(api, res, src, len) : NULL;
    if (g != NULL) { /* a new version; running executions keep the one they started with */
        free(w.name);
        free(w.description);
        w.name = strdup(name ? name : g->name);
        w.description = g->description ? strdup(g->description) : NULL;
        w.status[0] = '\0';
        rc = af_store_begin(api->store, &err);
        if (rc == 0) {
            rc = af_store_version_add(api->store, id, src, NULL, NULL, &err);
        }
        if (rc == 0) {
            rc = af_store_workflow_update(api->store, &w, &err);
        }
        if (rc == 0) {
            rc = af_store_commit(api->store, &err);
        } else {
            af_store_rollback(api->store);
        }
        if (rc == 0) {
            send_workflow(api, res, 200, id, 0);
        } else {
            af_http_res_send_error(res, status_of(rc), "%s", err.msg);
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
    int rc = af_store_workflow_delete(api->store, af_http_req_param(req, "id"), &err);
    if (rc != 0) {
        af_http_res_send_error(res, status_of(rc), "%s", err.msg);
        return;
    }
    af_http_res_set_status(res, 204);
    af_http_res_send(res);
}

/* ---- set-up ---- */

af_api_t *af_api_new(uv_loop_t *loop, af_store_t *store, af_http_router_t *router,
                     af_error_t *err) {
    af_api_t *api = calloc(1, sizeof *api);
    if (api == NULL) {
        af_error_set(err, AF_ENOMEM, "out of memory");
        return NULL;
    }
    api->loop = loop;
    api->store = store;
    static const struct {
        const char *method, *pattern;
        af_http_handler_fn fn;
    } routes[] = {
        {"GET", "/healthz", healthz},
        {"GET", "/readyz", readyz},
        {"POST", "/api/workflows", workflow_create},
        {"GET", "/api/workflows", workflow_list},
        {"GET", "/api/workflows/:id", workflow_get},
        {"PUT", "/api/workflows/:id", workflow_update},
        {"DELETE", "/api/workflows/:id", workflow_delete},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        int rc = af_http_router_add(router, routes[i].method, routes[i].pattern, routes[i].fn, api);
        if (rc != 0) {
            af_error_set(err, rc, "cannot add route %s %s", routes[i].method, routes[i].pattern);
            free(api);
            return NULL;
        }
    }
    return api;
}

void af_api_free(af_api_t *api) {
    free(api);
}
