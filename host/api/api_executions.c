/* api_executions.c -- executions over REST: execute (one, or in bulk from a JSON array or
 * NDJSON), list, get with steps, cancel, retry from the last checkpoint, logs, dead letters. An
 * execution is answered only once its row and queue job are committed together. */
#include "api/api_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BULK_MAX 100000

/* ---- creating executions ---- */

af_create_t *af__api_create_new(af_api_t *api, const char *workflow_id, int version,
                                json_t **inputs, size_t n) {
    af_create_t *c = calloc(1, sizeof *c);
    char(*ids)[AF_STORE_ID_MAX] = c ? calloc(n ? n : 1, sizeof *ids) : NULL;
    if (ids == NULL) {
        free(c);
        for (size_t i = 0; i < n; i++) {
            json_decref(inputs[i]);
        }
        free(inputs);
        return NULL;
    }
    c->api = api;
    af_strlcpy(c->workflow_id, workflow_id, sizeof c->workflow_id);
    c->version = version;
    c->n = n;
    c->inputs = inputs;
    c->ids = ids;
    for (size_t i = 0; i < n; i++) {
        af_uuid_v7(c->ids[i]); /* time-ordered: inserts stay at the right edge of the indexes */
    }
    return c;
}

af_create_t *af__api_create_one(af_api_t *api, const char *workflow_id, int version,
                                json_t *input) {
    json_t **inputs = malloc(sizeof *inputs);
    if (inputs == NULL) {
        json_decref(input);
        return NULL;
    }
    inputs[0] = input;
    return af__api_create_new(api, workflow_id, version, inputs, 1);
}

static void create_free(af_create_t *c) {
    for (size_t i = 0; i < c->n; i++) {
        json_decref(c->inputs[i]);
    }
    free(c->inputs);
    free(c->ids);
    free(c->seen_scope);
    free(c->seen_id);
    json_decref(c->state.state);
    free(c);
}

static int write_create(af_store_t *s, void *ud) {
    return af__api_create_write(s, ud);
}

int af__api_create_write(af_store_t *s, af_create_t *c) {
    af_error_t err;
    int rc;
    if (c->seen_id) {
        rc = af_store_webhook_seen(s, c->seen_scope, c->seen_id, c->ids[0], &c->duplicate,
                                   c->first_id, &err);
        if (rc != 0 || c->duplicate) {
            return rc;
        }
    }
    af_worker_t *w = c->api->o.worker;
    int64_t lease_until = af_wall_ms() + af_worker_lease_ms(w);
    for (size_t i = 0; i < c->n; i++) {
        af_execution_t e = {.version = c->version,
                            .input = c->inputs[i],
                            .created_at = c->created_at,
                            .event_depth = c->event_depth};
        af_strlcpy(e.id, c->ids[i], sizeof e.id);
        af_strlcpy(e.workflow_id, c->workflow_id, sizeof e.workflow_id);
        af_strlcpy(e.status, AF__CREATED_STATUS(c, i), sizeof e.status);
        /* this process's worker holds the job from the start: no claim later */
        af_job_t job = {.lease_until = lease_until};
        af_strlcpy(job.id, c->ids[i], sizeof job.id);
        af_strlcpy(job.queue, AF_WORKER_QUEUE, sizeof job.queue);
        af_strlcpy(job.lease_owner, af_worker_id(w), sizeof job.lease_owner);
        if ((rc = af_store_execution_create(s, &e, &job, NULL, &err)) != 0) {
            return rc;
        }
    }
    if (c->state_trigger[0]) {
        if (c->n > 0) {
            af_strlcpy(c->state.last_execution_id, c->ids[c->n - 1],
                       sizeof c->state.last_execution_id);
        }
        return af_store_trigger_state_put(s, c->state_trigger, &c->state, &err);
    }
    return 0;
}

static void create_written(void *ud, int rc) {
    af__api_create_written(ud, rc);
}

void af__api_create_written(af_create_t *c, int rc) {
    af_worker_t *w = c->api->o.worker;
    for (size_t i = 0; i < c->n; i++) {
        int started = i < c->nstarted;
        if (rc != 0 || c->duplicate) {
            if (started) {
                af_worker_unreserve(w, c->workflow_id);
            }
            continue;
        }
        af_worker_job_t job = {.execution_id = c->ids[i],
                               .workflow_id = c->workflow_id,
                               .version = c->version,
                               .input = c->inputs[i],
                               .how = started ? AF_WORKER_STARTED : AF_WORKER_LEASED,
                               .created_at = c->waited ? c->created_at : 0,
                               .event_depth = c->event_depth};
        af_worker_enqueue(w, &job);
    }
    if (c->done) {
        c->done(c, rc);
    }
    create_free(c);
}

/* Executions that can start at once are created running, in slots reserved now: no second write
 * to record their start. */
int af__api_create_seen(af_create_t *c, const char *prefix, const char *scope, const char *msg_id) {
    size_t n = strlen(prefix) + strlen(scope) + 1;
    if ((c->seen_scope = malloc(n)) == NULL || (c->seen_id = strdup(msg_id)) == NULL) {
        return AF_ENOMEM;
    }
    snprintf(c->seen_scope, n, "%s%s", prefix, scope);
    return 0;
}

void af__api_create_reserve(af_create_t *c) {
    c->created_at = af_wall_ms();
    while (c->nstarted < c->n && af_worker_reserve(c->api->o.worker, c->workflow_id)) {
        c->nstarted++;
    }
}

void af__api_create_submit(af_create_t *c) {
    af__api_create_reserve(c);
    int rc = af_store_async_submit(c->api->o.writer, write_create, create_written, c);
    if (rc != 0) {
        create_written(c, rc);
    }
}

int af__api_current(af_api_t *api, af_http_res_t *res, const char *workflow_id, int *version,
                    char *path, size_t size, char *status_out) {
    af_workflow_t w = {0};
    af_error_t err;
    int rc = af_store_workflow_get(api->o.store, workflow_id, &w, &err);
    if (rc == 0) {
        *version = w.current_version;
        if (status_out) {
            snprintf(status_out, AF_STORE_STATUS_MAX, "%s", w.status);
        }
        rc =
            af_worker_version_file(api->o.worker, workflow_id, w.current_version, path, size, &err);
    }
    af_workflow_clear(&w);
    if (rc != 0) {
        af__api_fail(res, rc, &err);
        return -1;
    }
    return 0;
}

/* ---- waiting for an end ---- */

typedef struct waiter_s {
    af_api_t *api;
    af_http_res_t *res;
    af_watch_t *watch;
    uv_timer_t *timer;
    char id[AF_STORE_ID_MAX];
    af__api_answer_fn answer;
    void *ud;
} waiter_t;

static void timer_closed(uv_handle_t *h) {
    free(h);
}

static void waiter_finish(waiter_t *w, int done, const af_outcome_t *outcome) {
    uv_close((uv_handle_t *)w->timer, timer_closed);
    w->answer(w->api, w->res, w->id, done, outcome, w->ud);
    free(w);
}

static void wait_ended(void *ud, const char *status, const af_outcome_t *outcome) {
    waiter_t *w = ud;
    w->watch = NULL;
    waiter_finish(w, status != NULL, outcome);
}

static void wait_expired(uv_timer_t *t) {
    waiter_t *w = t->data;
    af_worker_unwatch(w->api->o.worker, w->watch);
    waiter_finish(w, 0, NULL);
}

void af__api_wait(af_api_t *api, af_http_res_t *res, const char *id, int64_t ms,
                  af__api_answer_fn answer, void *ud) {
    waiter_t *w = calloc(1, sizeof *w);
    uv_timer_t *t = w ? malloc(sizeof *t) : NULL;
    if (t == NULL) {
        free(w);
        answer(api, res, id, 0, NULL, ud);
        return;
    }
    *w = (waiter_t){.api = api, .res = res, .timer = t, .answer = answer, .ud = ud};
    af_strlcpy(w->id, id, sizeof w->id);
    w->watch = af_worker_watch(api->o.worker, id, wait_ended, w);
    if (w->watch == NULL) { /* the worker does not hold it (any more): answer what is stored */
        free(t);
        free(w);
        answer(api, res, id, 1, NULL, ud);
        return;
    }
    uv_timer_init(api->o.loop, t);
    t->data = w;
    uv_timer_start(t, wait_expired, (uint64_t)ms, 0);
}

/* ---- execute ---- */

static void answer_execution(af_api_t *api, af_http_res_t *res, const char *id, int done,
                             const af_outcome_t *outcome, void *ud) {
    (void)ud;
    af_error_t err;
    int rc;
    json_t *out = af__api_execution_json(api, id, outcome, &err, &rc);
    if (out == NULL) {
        af__api_fail(res, rc, &err);
        return;
    }
    const char *status = json_string_value(json_object_get(out, "status"));
    int terminal = status && (strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 ||
                              strcmp(status, "cancelled") == 0);
    af_http_res_send_json(res, done && terminal ? 200 : 202, out);
    json_decref(out);
}

typedef struct execute_s {
    af_http_res_t *res;
    int64_t wait_ms;
} execute_t;

static void executed(af_create_t *c, int rc) {
    execute_t *ex = c->ud;
    if (rc != 0) {
        af_http_res_send_error(ex->res, 500, "could not store the execution: %s", af_strerror(rc));
    } else if (ex->wait_ms > 0) {
        af__api_wait(c->api, ex->res, c->ids[0], ex->wait_ms, answer_execution, NULL);
    } else {
        json_t *out = json_pack("{s:s, s:s}", "id", c->ids[0], "status", AF__CREATED_STATUS(c, 0));
        af_http_res_send_json(ex->res, 202, out);
        json_decref(out);
    }
    free(ex);
}

/* ?wait=SECONDS, bounded by max_wait_ms; sends 400 and returns -1 when malformed. */
static int wait_of(af_api_t *api, af_http_req_t *req, af_http_res_t *res, int64_t *ms) {
    const char *text = af_http_req_query_param(req, "wait");
    char *end = NULL;
    double s = text ? strtod(text, &end) : 0;
    if (text && (end == text || *end != '\0' || !(s >= 0))) {
        af_http_res_send_error(res, 400, "wait is a number of seconds >= 0");
        return -1;
    }
    *ms = (int64_t)(s * 1000);
    if (*ms > api->o.max_wait_ms) {
        *ms = api->o.max_wait_ms;
    }
    return 0;
}

/* The input of an execute request: {"input": ...} as JSON, or no body (new or NULL). */
static int input_of(af_http_req_t *req, af_http_res_t *res, json_t **input) {
    size_t n;
    af_http_req_body(req, &n);
    *input = NULL;
    if (n == 0) {
        return 0;
    }
    json_t *j = af__api_json_body(req, res);
    if (j == NULL) {
        return -1;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        af_http_res_send_error(res, 422, "the body is an object: {\"input\": ...}");
        return -1;
    }
    *input = json_incref(json_object_get(j, "input"));
    json_decref(j);
    return 0;
}

static void workflow_execute(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    const char *id = af_http_req_param(req, "id");
    int64_t wait_ms;
    json_t *input;
    int version;
    char path[4096];
    if (wait_of(api, req, res, &wait_ms) != 0 || input_of(req, res, &input) != 0) {
        return;
    }
    if (af__api_current(api, res, id, &version, path, sizeof path, NULL) != 0) {
        json_decref(input);
        return;
    }
    execute_t *ex = malloc(sizeof *ex);
    af_create_t *c = ex ? af__api_create_one(api, id, version, input) : NULL;
    if (c == NULL) {
        if (ex == NULL) {
            json_decref(input);
        }
        free(ex);
        af_http_res_send_error(res, 500, "out of memory");
        return;
    }
    *ex = (execute_t){.res = res, .wait_ms = wait_ms};
    c->waited = wait_ms > 0;
    c->done = executed;
    c->ud = ex;
    af__api_create_submit(c);
}

/* ---- bulk ---- */

static void bulk_done(af_create_t *c, int rc) {
    af_http_res_t *res = c->ud;
    if (rc != 0) {
        af_http_res_send_error(res, 500, "could not store the executions: %s", af_strerror(rc));
        return;
    }
    af_buf_t b = {0}; /* written by hand: 100,000 ids as jansson objects cost more than this */
    char head[64];
    snprintf(head, sizeof head, "{\"count\":%zu,\"ids\":[", c->n);
    af_buf_add(&b, head, strlen(head));
    for (size_t i = 0; i < c->n; i++) {
        af_buf_add(&b, i ? ",\"" : "\"", i ? 2 : 1);
        af_buf_add(&b, c->ids[i], strlen(c->ids[i]));
        af_buf_add(&b, "\"", 1);
    }
    af_buf_add(&b, "]}", 2);
    af_http_res_add_header(res, "Content-Type", "application/json");
    af_http_res_steal_body(res, b.data, b.len);
    af_http_res_set_status(res, 202);
    af_http_res_send(res);
}

/* One JSON value per non-blank line; a bad line refuses the whole request, naming it. */
static json_t **ndjson_inputs(const char *body, size_t len, size_t *n, af_http_res_t *res) {
    size_t cap = 1024, count = 0, line = 0;
    json_t **inputs = malloc(cap * sizeof *inputs);
    const char *p = body, *end = body + len;
    while (inputs && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        line++;
        const char *q = p;
        while (q < stop && (*q == ' ' || *q == '\t' || *q == '\r')) {
            q++;
        }
        if (q < stop) {
            af_error_t err;
            json_t *v = count < BULK_MAX ? af_json_loads(q, (size_t)(stop - q), 128, &err) : NULL;
            if (v == NULL) {
                if (count >= BULK_MAX) {
                    af_http_res_send_error(res, 413, "at most %d inputs per request", BULK_MAX);
                } else {
                    af_http_res_send_error(res, 400, "line %zu: malformed JSON: %s", line, err.msg);
                }
                for (size_t i = 0; i < count; i++) {
                    json_decref(inputs[i]);
                }
                free(inputs);
                return NULL;
            }
            if (count == cap) {
                json_t **bigger = realloc(inputs, (cap *= 2) * sizeof *inputs);
                if (bigger == NULL) {
                    json_decref(v);
                    break;
                }
                inputs = bigger;
            }
            inputs[count++] = v;
        }
        p = stop + 1;
    }
    *n = count;
    return inputs;
}

static json_t **array_inputs(af_http_req_t *req, af_http_res_t *res, size_t *n) {
    json_t *j = af__api_json_body(req, res);
    if (j == NULL) {
        return NULL;
    }
    json_t *arr = json_object_get(j, "inputs");
    if (!json_is_array(arr)) {
        json_decref(j);
        af_http_res_send_error(res, 422, "the body is {\"inputs\": [...]}");
        return NULL;
    }
    *n = json_array_size(arr);
    if (*n > BULK_MAX) {
        json_decref(j);
        af_http_res_send_error(res, 413, "at most %d inputs per request", BULK_MAX);
        return NULL;
    }
    json_t **inputs = malloc((*n ? *n : 1) * sizeof *inputs);
    for (size_t i = 0; inputs && i < *n; i++) {
        inputs[i] = json_incref(json_array_get(arr, i));
    }
    json_decref(j);
    return inputs;
}

static void workflow_execute_bulk(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    const char *id = af_http_req_param(req, "id");
    const char *type = af_http_req_header(req, "Content-Type");
    size_t len, n = 0;
    const char *body = af_http_req_body(req, &len);
    int version;
    char path[4096];
    if (af__api_current(api, res, id, &version, path, sizeof path, NULL) != 0) {
        return;
    }
    json_t **inputs = type && (strncasecmp(type, "application/x-ndjson", 20) == 0 ||
                               strncasecmp(type, "application/jsonl", 17) == 0)
                          ? ndjson_inputs(body, len, &n, res)
                          : array_inputs(req, res, &n);
    if (inputs == NULL) {
        return;
    }
    if (n == 0) {
        free(inputs);
        af_http_res_send_error(res, 422, "no inputs");
        return;
    }
    af_create_t *c = af__api_create_new(api, id, version, inputs, n);
    if (c == NULL) {
        af_http_res_send_error(res, 500, "out of memory");
        return;
    }
    c->done = bulk_done;
    c->ud = res;
    af__api_create_submit(c);
}

/* ---- reading ---- */

static int valid_status(const char *s) {
    static const char *const ok[] = {"queued",    "running", "waiting",
                                     "succeeded", "failed",  "cancelled"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (strcmp(s, ok[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static void execution_list(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    int limit = af__api_limit(req, res);
    if (limit < 0) {
        return; /* answered: req is gone */
    }
    const char *status = af_http_req_query_param(req, "status");
    const char *workflow = af_http_req_query_param(req, "workflow_id");
    if (status && !valid_status(status)) {
        af_http_res_send_error(res, 400,
                               "status is one of queued, running, waiting, succeeded, failed, "
                               "cancelled");
        return;
    }
    af_execution_t *es = NULL;
    size_t n = 0;
    char next[AF_STORE_CURSOR_MAX];
    af_error_t err;
    int rc =
        af_store_execution_list(api->o.store, workflow, status,
                                af_http_req_query_param(req, "cursor"), limit, &es, &n, next, &err);
    if (rc != 0) {
        af__api_fail(res, rc, &err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(items,
                              json_pack("{s:s, s:s, s:i, s:s, s:s?, s:o, s:o, s:o}", "id", es[i].id,
                                        "workflow_id", es[i].workflow_id, "version", es[i].version,
                                        "status", es[i].status, "error", es[i].error, "created_at",
                                        af__api_iso(es[i].created_at), "started_at",
                                        af__api_iso(es[i].started_at), "completed_at",
                                        af__api_iso(es[i].completed_at)));
    }
    af_executions_free(es, n);
    af__api_send_items(res, items, next, 1);
}

static void execution_get(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_error_t err;
    int rc;
    json_t *out = af__api_execution_json(ud, af_http_req_param(req, "id"), NULL, &err, &rc);
    if (out == NULL) {
        af__api_fail(res, rc, &err);
        return;
    }
    af_http_res_send_json(res, 200, out);
    json_decref(out);
}

static void execution_logs(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    const char *id = af_http_req_param(req, "id");
    const char *after = af_http_req_query_param(req, "after");
    af_execution_t e = {0};
    af_error_t err;
    int rc = af_store_execution_get(api->o.store, id, &e, &err);
    af_execution_clear(&e);
    af_log_entry_t *ls = NULL;
    size_t n = 0;
    if (rc == 0) {
        rc = af_store_logs_load(api->o.store, id, after ? atoll(after) : 0, 1000, &ls, &n, &err);
    }
    if (rc != 0) {
        af__api_fail(res, rc, &err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(items,
                              json_pack("{s:I, s:o, s:s?, s:s, s:s}", "seq", (json_int_t)ls[i].seq,
                                        "at", af__api_iso(ls[i].at), "step", ls[i].step, "level",
                                        ls[i].level, "message", ls[i].message));
    }
    af_log_entries_free(ls, n);
    af__api_send_items(res, items, NULL, 0);
}

/* ---- cancel, retry ---- */

static void execution_cancel(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    const char *id = af_http_req_param(req, "id");
    if (af_worker_cancel(api->o.worker, id) == 0) {
        json_t *out = json_pack("{s:s, s:s}", "id", id, "status", "cancelling");
        af_http_res_send_json(res, 202, out);
        json_decref(out);
        return;
    }
    af_execution_t e = {0};
    af_error_t err;
    int rc = af_store_execution_get(api->o.store, id, &e, &err);
    if (rc != 0) {
        af__api_fail(res, rc, &err);
    } else {
        af_http_res_send_error(res, 409, "execution %s is %s, not running", id, e.status);
    }
    af_execution_clear(&e);
}

typedef struct retry_s {
    af_api_t *api;
    af_http_res_t *res;
    char id[AF_STORE_ID_MAX], workflow_id[AF_STORE_ID_MAX];
    int version;
} retry_t;

static int write_retry(af_store_t *s, void *ud) {
    retry_t *r = ud;
    af_error_t err;
    af_queue_t *q = af_store_queue(s);
    int rc = af_queue_dead_retry(q, r->id, &err);
    if (rc == AF_ENOTFOUND) {
        af_job_t job = {0};
        af_strlcpy(job.id, r->id, sizeof job.id);
        af_strlcpy(job.queue, AF_WORKER_QUEUE, sizeof job.queue);
        rc = af_queue_enqueue(q, &job, NULL, &err);
    }
    if (rc == 0) {
        rc = af_store_execution_set_status(s, r->id, "queued", NULL, NULL, 0, 0, &err);
    }
    return rc;
}

static void retry_written(void *ud, int rc) {
    retry_t *r = ud;
    if (rc != 0) {
        af_http_res_send_error(r->res, af__api_status(rc), "could not retry %s: %s", r->id,
                               af_strerror(rc));
    } else {
        af_worker_job_t job = {.execution_id = r->id,
                               .workflow_id = r->workflow_id,
                               .version = r->version,
                               .how = AF_WORKER_QUEUED};
        af_worker_enqueue(r->api->o.worker, &job);
        json_t *out = json_pack("{s:s, s:s}", "id", r->id, "status", "queued");
        af_http_res_send_json(r->res, 202, out);
        json_decref(out);
    }
    free(r);
}

static void execution_retry(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    const char *id = af_http_req_param(req, "id");
    af_execution_t e = {0};
    af_error_t err;
    int rc = af_store_execution_get(api->o.store, id, &e, &err);
    if (rc != 0) {
        af__api_fail(res, rc, &err);
        return;
    }
    if (strcmp(e.status, "failed") != 0 && strcmp(e.status, "cancelled") != 0) {
        af_http_res_send_error(res, 409,
                               "execution %s is %s: only a failed, cancelled or "
                               "dead-lettered execution is retried",
                               id, e.status);
        af_execution_clear(&e);
        return;
    }
    retry_t *r = calloc(1, sizeof *r);
    if (r == NULL) {
        af_execution_clear(&e);
        af_http_res_send_error(res, 500, "out of memory");
        return;
    }
    *r = (retry_t){.api = api, .res = res, .version = e.version};
    af_strlcpy(r->id, id, sizeof r->id);
    af_strlcpy(r->workflow_id, e.workflow_id, sizeof r->workflow_id);
    af_execution_clear(&e);
    rc = af_store_async_submit(api->o.writer, write_retry, retry_written, r);
    if (rc != 0) {
        retry_written(r, rc);
    }
}

static void dead_letters(af_http_req_t *req, af_http_res_t *res, void *ud) {
    af_api_t *api = ud;
    int limit = af__api_limit(req, res);
    if (limit < 0) {
        return;
    }
    af_job_t *jobs = NULL;
    size_t n = 0;
    af_error_t err;
    int rc = af_queue_dead_list(af_store_queue(api->o.store), NULL,
                                af_http_req_query_param(req, "cursor"), limit, &jobs, &n, &err);
    if (rc != 0) {
        af__api_fail(res, rc, &err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *exec = json_object_get(jobs[i].payload, "execution_id");
        json_array_append_new(items,
                              json_pack("{s:s, s:s, s:O?, s:i, s:s?, s:o, s:o}", "id", jobs[i].id,
                                        "queue", jobs[i].queue, "execution_id", exec, "attempts",
                                        jobs[i].attempts, "last_error", jobs[i].last_error,
                                        "created_at", af__api_iso(jobs[i].created_at), "failed_at",
                                        af__api_iso(jobs[i].failed_at)));
    }
    af__api_send_items(res, items, n == (size_t)limit ? jobs[n - 1].id : NULL, 1);
    af_jobs_free(jobs, n);
}

int af__api_routes_executions(af_api_t *api, af_error_t *err) {
    static const struct {
        const char *method, *pattern;
        af_http_handler_fn fn;
    } routes[] = {
        {"POST", "/api/workflows/:id/execute", workflow_execute},
        {"POST", "/api/workflows/:id/execute/bulk", workflow_execute_bulk},
        {"GET", "/api/executions", execution_list},
        {"GET", "/api/executions/:id", execution_get},
        {"POST", "/api/executions/:id/cancel", execution_cancel},
        {"POST", "/api/executions/:id/retry", execution_retry},
        {"GET", "/api/executions/:id/logs", execution_logs},
        {"GET", "/api/dead-letters", dead_letters},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (af__api_route(api, routes[i].method, routes[i].pattern, routes[i].fn, err) != 0) {
            return err->code;
        }
    }
    return 0;
}
