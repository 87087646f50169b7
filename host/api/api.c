/* api.c -- REST handlers of `agentflow serve`: /healthz, /readyz and /api/workflows (create from
 * a Lua script that must compile, list with a cursor, get with its source, new versions, delete).
 */
#include "api/api.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sys/stat.h>

#include "dsl/dsl.h"

typedef struct waiter_s waiter_t;

struct af_api_s {
    uv_loop_t *loop;
    af_store_t *store;
    af_engine_t *engine;
    char *data_dir;
    waiter_t *running;
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

/* ---- executions ---- */

int af_api_checkpoint(void *ud, const af_exec_t *x, int step, const json_t *output) {
    af_api_t *api = ud;
    af_checkpoint_t c = {.step = af_exec_graph(x)->steps[step].name,
                         .attempts = af_exec_step_attempts(x, step),
                         .output = (json_t *)output,
                         .ended_at = af_wall_ms()};
    snprintf(c.execution_id, sizeof c.execution_id, "%s", af_exec_id(x));
    snprintf(c.status, sizeof c.status, "succeeded");
    af_error_t err;
    return af_store_checkpoint_save(api->store, &c, &err);
}

/* The script of a stored version as a file the engine loads (and caches) by path. */
static int version_file(af_api_t *api, const char *id, int version, char *path, size_t size,
                        af_error_t *err) {
    snprintf(path, size, "%s/versions", api->data_dir);
    mkdir(path, 0700);
    snprintf(path, size, "%s/versions/%s-v%d.lua", api->data_dir, id, version);
    struct stat st;
    if (stat(path, &st) == 0) {
        return 0;
    }
    af_workflow_version_t v = {0};
    int rc = af_store_version_get(api->store, id, version, &v, err);
    if (rc != 0) {
        return rc;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int ok = f != NULL && fputs(v.lua_source ? v.lua_source : "", f) >= 0;
    ok = f != NULL && fclose(f) == 0 && ok && rename(tmp, path) == 0;
    af_workflow_version_clear(&v);
    return ok ? 0 : af_error_set(err, AF_EIO, "cannot write %s", path);
}

/* A request waiting (?wait=S) for its execution, or just the execution's bookkeeping. */
typedef struct waiter_s {
    af_api_t *api;
    af_http_res_t *res; /* NULL once answered, or when nobody waits */
    uv_timer_t *timer;
    char id[AF_STORE_ID_MAX];
    af_exec_t *x;                 /* while it runs */
    struct waiter_s *next, *prev; /* the API's running executions */
} waiter_t;

static json_t *execution_json(af_api_t *api, const char *id, af_error_t *err, int *rc) {
    af_execution_t e = {0};
    *rc = af_store_execution_get(api->store, id, &e, err);
    if (*rc != 0) {
        return NULL;
    }
    json_t *out =
        json_pack("{s:s, s:s, s:i, s:s, s:O?, s:O?, s:s?, s:o, s:o, s:o}", "id", e.id,
                  "workflow_id", e.workflow_id, "version", e.version, "status", e.status, "input",
                  e.input, "result", e.result, "error", e.error, "created_at", iso(e.created_at),
                  "started_at", iso(e.started_at), "completed_at", iso(e.completed_at));
    af_execution_clear(&e);
    af_checkpoint_t *cs = NULL;
    size_t n = 0;
    json_t *steps = json_object();
    if (af_store_checkpoints_load(api->store, id, &cs, &n, err) == 0) {
        for (size_t i = 0; i < n; i++) {
            json_object_set_new(steps, cs[i].step,
                                json_pack("{s:s, s:i, s:O?, s:o}", "status", cs[i].status,
                                          "attempts", cs[i].attempts, "output", cs[i].output,
                                          "ended_at", iso(cs[i].ended_at)));
        }
        af_checkpoints_free(cs, n);
    }
    json_object_set_new(out, "steps", steps);
    return out;
}

static void waiter_answer(waiter_t *w, int status) {
    if (w->res == NULL) {
        return;
    }
    af_error_t err;
    int rc;
    json_t *out = execution_json(w->api, w->id, &err, &rc);
    if (out) {
        af_http_res_send_json(w->res, status, out);
        json_decref(out);
    } else {
        af_http_res_send_error(w->res, 500, "%s", err.msg);
    }
    w->res = NULL;
}

static void timer_closed(uv_handle_t *h) {
    free(h);
}

static void stop_timer(waiter_t *w) {
    if (w->timer) {
        uv_close((uv_handle_t *)w->timer, timer_closed);
        w->timer = NULL;
    }
}

static void wait_expired(uv_timer_t *t) {
    waiter_t *w = t->data;
    waiter_answer(w, 202); /* not finished in time: the client polls GET /api/executions/:id */
    stop_timer(w);
}

static void running_remove(waiter_t *w) {
    if (w->prev) {
        w->prev->next = w->next;
    } else if (w->api->running == w) {
        w->api->running = w->next;
    }
    if (w->next) {
        w->next->prev = w->prev;
    }
}

static void exec_done(af_exec_t *x, void *ud) {
    waiter_t *w = ud;
    running_remove(w);
    const af_fault_t *f = af_exec_fault(x);
    json_t *result = af_exec_result(x);
    char error[1200] = "";
    if (f) {
        snprintf(error, sizeof error, "%s: %s", f->code, f->message);
    }
    af_error_t err;
    af_store_execution_set_status(w->api->store, af_exec_id(x),
                                  af_exec_status_name(af_exec_status(x)), result, f ? error : NULL,
                                  0, &err);
    json_decref(result);
    af_exec_free(x);
    waiter_answer(w, 200);
    stop_timer(w);
    free(w);
}

/* The input of an execute request: {"input": ...} as JSON, or no body. NULL input is fine. */
static int input_of(af_http_req_t *req, af_http_res_t *res, json_t **input) {
    size_t n;
    const char *body = af_http_req_body(req, &n);
    const char *type = af_http_req_header(req, "Content-Type");
    af_error_t err;
    *input = NULL;
    if (n == 0) {
        return 0;
    }
    if (type == NULL || strncasecmp(type, "application/json", 16) != 0) {
        af_http_res_send_error(res, 415, "send application/json {\"input\": {...}}");
        return -1;
    }
    json_t *j = af_json_loads(body, n, 128, &err);
    if (j == NULL) {
        af_http_res_send_error(res, 400, "malformed JSON: %s", err.msg);
        return -1;
    }
    *input = json_incref(json_object_get(j, "input"));
    json_decref(j);
    return 0;
}

static void workflow_execute(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    const char *id = af_http_req_param(req, "id");
    const char *wait_text = af_http_req_query_param(req, "wait");
    double wait = wait_text ? atof(wait_text) : 0;
    json_t *input;
    if (input_of(req, res, &input) != 0) {
        return;
    }
    af_error_t err;
    af_workflow_t wf = {0};
    char path[4096];
    int rc = af_store_workflow_get(api->store, id, &wf, &err);
    if (rc == 0) {
        rc = version_file(api, id, wf.current_version, path, sizeof path, &err);
    }
    af_execution_t e = {.version = wf.current_version, .input = input};
    snprintf(e.workflow_id, sizeof e.workflow_id, "%s", id);
    snprintf(e.status, sizeof e.status, "running");
    af_workflow_clear(&wf);
    if (rc == 0) { /* stored before it starts: the id answered is already durable */
        rc = af_store_execution_create(api->store, &e, NULL, NULL, &err);
    }
    waiter_t *w = calloc(1, sizeof *w);
    if (rc == 0) {
        snprintf(w->id, sizeof w->id, "%s", e.id);
        w->api = api;
        if (wait > 0) {
            w->res = res;
        }
        rc = af_exec_start_file_as(api->engine, path, input, e.id, exec_done, w, &w->x, &err);
        if (rc == 0) {
            w->next = api->running;
            if (api->running) {
                api->running->prev = w;
            }
            api->running = w;
        } else {
            af_error_t ignored;
            af_store_execution_set_status(api->store, e.id, "failed", NULL, err.msg, 0, &ignored);
        }
    }
    json_decref(input);
    if (rc != 0) {
        free(w);
        af_http_res_send_error(res, rc == AF_EDEFINITION ? 422 : status_of(rc), "%s", err.msg);
        return;
    }
    if (wait > 0) { /* answered when it finishes, or with 202 after `wait` seconds */
        w->timer = malloc(sizeof *w->timer);
        uv_timer_init(api->loop, w->timer);
        w->timer->data = w;
        uv_timer_start(w->timer, wait_expired, (uint64_t)(wait * 1000), 0);
        return;
    }
    json_t *out = json_pack("{s:s, s:s}", "id", e.id, "status", "running");
    af_http_res_send_json(res, 202, out);
    json_decref(out);
}

static void execution_cancel(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    const char *id = af_http_req_param(req, "id");
    for (waiter_t *w = api->running; w; w = w->next) {
        if (strcmp(w->id, id) == 0) {
            af_exec_cancel(w->x, "cancelled through the API");
            json_t *out = json_pack("{s:s, s:s}", "id", id, "status", "cancelling");
            af_http_res_send_json(res, 202, out);
            json_decref(out);
            return;
        }
    }
    af_execution_t e = {0};
    af_error_t err;
    int rc = af_store_execution_get(api->store, id, &e, &err);
    if (rc != 0) {
        af_http_res_send_error(res, status_of(rc), "%s", err.msg);
    } else {
        af_http_res_send_error(res, 409, "execution %s is %s, not running", id, e.status);
    }
    af_execution_clear(&e);
}

static void execution_logs(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    const char *id = af_http_req_param(req, "id");
    const char *after = af_http_req_query_param(req, "after");
    af_execution_t e = {0};
    af_error_t err;
    int rc = af_store_execution_get(api->store, id, &e, &err);
    af_execution_clear(&e);
    af_log_entry_t *ls = NULL;
    size_t n = 0;
    if (rc == 0) {
        rc = af_store_logs_load(api->store, id, after ? atoll(after) : 0, 1000, &ls, &n, &err);
    }
    if (rc != 0) {
        af_http_res_send_error(res, status_of(rc), "%s", err.msg);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(items,
                              json_pack("{s:I, s:o, s:s?, s:s, s:s}", "seq", (json_int_t)ls[i].seq,
                                        "at", iso(ls[i].at), "step", ls[i].step, "level",
                                        ls[i].level, "message", ls[i].message));
    }
    af_log_entries_free(ls, n);
    json_t *out = json_pack("{s:o}", "items", items);
    af_http_res_send_json(res, 200, out);
    json_decref(out);
}

void af_api_on_event(void *ud, const af_event_t *ev) {
    af_api_t *api = ud;
    char line[1600];
    char d[32];
    switch (ev->kind) {
    case AF_EV_STEP_END:
        snprintf(line, sizeof line, "%s attempt %d %s%s%s", af_step_status_name(ev->status),
                 ev->attempt, af_duration_format(ev->duration_ms, d, sizeof d),
                 ev->error ? " " : "", ev->error ? ev->error : "");
        break;
    case AF_EV_STEP_RETRY:
        snprintf(line, sizeof line, "retry after attempt %d: %s", ev->attempt,
                 ev->error ? ev->error : "");
        break;
    case AF_EV_LOG:
        snprintf(line, sizeof line, "%s", ev->text ? ev->text : "");
        break;
    case AF_EV_EXEC_END:
        snprintf(line, sizeof line, "finished in %s%s%s",
                 af_duration_format(ev->duration_ms, d, sizeof d), ev->error ? ": " : "",
                 ev->error ? ev->error : "");
        break;
    default:
        return;
    }
    af_error_t err;
    const char *level = ev->error ? "error" : "info";
    af_store_log_append(api->store, ev->execution_id, af_wall_ms(), ev->step, level, line, NULL,
                        &err);
}

static void workflow_set_status(af_http_req_t *req, af_http_res_t *res, const char *status,
                                af_api_t *api) {
    const char *id = af_http_req_param(req, "id");
    af_workflow_t w = {0};
    af_error_t err;
    int rc = af_store_workflow_get(api->store, id, &w, &err);
    if (rc == 0) {
        snprintf(w.status, sizeof w.status, "%s", status);
        rc = af_store_workflow_update(api->store, &w, &err);
    }
    af_workflow_clear(&w);
    if (rc != 0) {
        af_http_res_send_error(res, status_of(rc), "%s", err.msg);
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

static void execution_get(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_error_t err;
    int rc;
    json_t *out = execution_json(ud, af_http_req_param(req, "id"), &err, &rc);
    if (out == NULL) {
        af_http_res_send_error(res, status_of(rc), "%s", err.msg);
        return;
    }
    af_http_res_send_json(res, 200, out);
    json_decref(out);
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
        {"POST", "/api/workflows/:id/execute", workflow_execute},
        {"GET", "/api/executions/:id", execution_get},
        {"POST", "/api/executions/:id/cancel", execution_cancel},
        {"GET", "/api/executions/:id/logs", execution_logs},
        {"POST", "/api/workflows/:id/activate", workflow_activate},
        {"POST", "/api/workflows/:id/pause", workflow_pause},
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

void af_api_set_engine(af_api_t *api, af_engine_t *engine, const char *data_dir) {
    api->engine = engine;
    free(api->data_dir);
    api->data_dir = strdup(data_dir);
}

void af_api_free(af_api_t *api) {
    if (api) {
        free(api->data_dir);
        free(api);
    }
}
