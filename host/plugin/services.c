/* services.c -- the host services table plugins receive: logging, call info and completion (from
 * any thread, handed to the loop through one uv_async), HTTP, timers, key-value state, secrets,
 * events, triggers, metrics and blocking work. */
#include "plugin/plugin_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

af_services_t af__svc;

int af__on_loop_thread(void) {
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &af__svc.loop_thread);
}

/* ---- call tokens ---- */

void af__token_release(struct af_call *tok) {
    if (--tok->refs > 0) {
        return;
    }
    free(tok->config);
    free(tok->output);
    free(tok->port);
    free(tok->code);
    free(tok->message);
    free(tok);
}

void af__token_complete(struct af_call *tok, int failed, int retryable, const char *output,
                        const char *port, const char *code, const char *message) {
    if (tok->completed) {
        return; /* a second completion is a plugin bug: ignore it */
    }
    tok->completed = 1;
    af_node_call_t *call = tok->call;
    if (call != NULL) {
        tok->call = NULL;
        call->node_data = NULL;
        if (failed) {
            af_fault_t f;
            af_fault_set(&f, retryable, code ? code : "PLUGIN", "%s",
                         message ? message : "plugin call failed");
            f.retry_after_ms = (int64_t)tok->retry_after_ms;
            af_node_fail(call, &f);
        } else {
            json_error_t jerr;
            json_t *out = output ? json_loads(output, JSON_DECODE_ANY, &jerr) : json_null();
            if (out == NULL) {
                af_node_failf(call, 0, "PLUGIN_OUTPUT", "node type '%s' returned invalid JSON: %s",
                              tok->pt->def.name, jerr.text);
            } else {
                af_node_succeed(call, out, port);
            }
        }
        af__token_release(tok); /* the engine's side */
    }
    af__token_release(tok); /* the plugin's completion */
}

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

static void queue_done(struct af_call *tok) {
    pthread_mutex_lock(&af__svc.lock);
    tok->next_done = NULL;
    if (af__svc.done_tail) {
        af__svc.done_tail->next_done = tok;
    } else {
        af__svc.done_head = tok;
    }
    af__svc.done_tail = tok;
    pthread_mutex_unlock(&af__svc.lock);
    uv_async_send(&af__svc.async);
}

static void drain_done(uv_async_t *a) {
    (void)a;
    pthread_mutex_lock(&af__svc.lock);
    struct af_call *tok = af__svc.done_head;
    af__svc.done_head = af__svc.done_tail = NULL;
    pthread_mutex_unlock(&af__svc.lock);
    while (tok) {
        struct af_call *next = tok->next_done;
        tok->completed = 0; /* marked while queued so a second call was refused */
        af__token_complete(tok, tok->failed, tok->retryable, tok->output, tok->port, tok->code,
                           tok->message);
        tok = next;
    }
}

static void svc_call_succeed(af_call_t *tok, const char *output_json, const char *port) {
    if (af__on_loop_thread()) {
        af__token_complete(tok, 0, 0, output_json, port, NULL, NULL);
        return;
    }
    if (tok->completed) {
        return;
    }
    tok->completed = 1;
    tok->output = dup_or_null(output_json);
    tok->port = dup_or_null(port);
    queue_done(tok);
}

static void svc_call_fail(af_call_t *tok, int retryable, const char *code, const char *message) {
    if (af__on_loop_thread()) {
        af__token_complete(tok, 1, retryable, NULL, NULL, code, message);
        return;
    }
    if (tok->completed) {
        return;
    }
    tok->completed = 1;
    tok->failed = 1;
    tok->retryable = retryable;
    tok->code = dup_or_null(code);
    tok->message = dup_or_null(message);
    queue_done(tok);
}

static void svc_call_fail_after(af_call_t *tok, const char *code, const char *message,
                                uint64_t retry_after_ms) {
    tok->retry_after_ms = retry_after_ms;
    svc_call_fail(tok, AF_RETRYABLE, code, message);
}

static const char *svc_call_execution_id(af_call_t *tok) {
    return tok->call ? tok->call->execution_id : "";
}

static const char *svc_call_workflow(af_call_t *tok) {
    return tok->call ? tok->call->workflow : "";
}

static const char *svc_call_step(af_call_t *tok) {
    return tok->call ? tok->call->step : "";
}

static int svc_call_attempt(af_call_t *tok) {
    return tok->call ? tok->call->attempt : 0;
}

static const char *svc_call_idempotency_key(af_call_t *tok) {
    return tok->call ? tok->call->idempotency_key : "";
}

static void svc_call_set_data(af_call_t *tok, void *data) {
    tok->data = data;
}

static void *svc_call_get_data(af_call_t *tok) {
    return tok->data;
}

/* ---- logging ---- */

static void svc_log(af_call_t *tok, int level, const char *fmt, ...) {
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (tok && tok->call && tok->call->log && af__on_loop_thread()) {
        tok->call->log(tok->call, line);
        return;
    }
    af_log_level_t l = level <= AF_LOG_DEBUG  ? AF_LEVEL_DEBUG
                       : level == AF_LOG_INFO ? AF_LEVEL_INFO
                       : level == AF_LOG_WARN ? AF_LEVEL_WARN
                                              : AF_LEVEL_ERROR;
    af_log(l, "plugin: %s", line);
}

/* ---- HTTP and timers ---- */

static int svc_http_request(const af_http_request_t *req, af_http_done_fn done, void *ud,
                            af_http_t **handle) {
    if (af__svc.opts.http_request == NULL) {
        return AF_ENOTSUP;
    }
    return af__svc.opts.http_request(af__svc.opts.ud, req, done, ud, handle);
}

static void svc_http_cancel(af_http_t *h) {
    if (af__svc.opts.http_cancel && h) {
        af__svc.opts.http_cancel(af__svc.opts.ud, h);
    }
}

struct af_timer {
    uv_timer_t handle;
    void (*cb)(void *ud);
    void *ud;
};

static void timer_closed(uv_handle_t *h) {
    free(h->data);
}

static void timer_fired(uv_timer_t *h) {
    struct af_timer *t = h->data;
    void (*cb)(void *) = t->cb;
    void *ud = t->ud;
    uv_close((uv_handle_t *)&t->handle, timer_closed);
    cb(ud);
}

static int svc_timer_start(uint64_t ms, void (*cb)(void *ud), void *ud, af_timer_t **out) {
    struct af_timer *t = calloc(1, sizeof *t);
    if (t == NULL || cb == NULL) {
        free(t);
        return AF_EARG;
    }
    t->cb = cb;
    t->ud = ud;
    uv_timer_init(af__svc.opts.loop, &t->handle);
    t->handle.data = t;
    uv_update_time(af__svc.opts.loop);
    uv_timer_start(&t->handle, timer_fired, ms, 0);
    if (out) {
        *out = t;
    }
    return 0;
}

static void svc_timer_stop(af_timer_t *t) {
    if (t && !uv_is_closing((uv_handle_t *)&t->handle)) {
        uv_timer_stop(&t->handle);
        uv_close((uv_handle_t *)&t->handle, timer_closed);
    }
}

/* ---- state ---- */

static void state_key(int scope, const char *owner, const char *key, char *buf, size_t size) {
    snprintf(buf, size, "%d\x1f%s\x1f%s", scope, owner ? owner : "", key);
}

int af_state_get(int scope, const char *owner, const char *key, char **value) {
    char k[1024];
    if (!af__svc.ready || key == NULL || value == NULL) {
        return AF_EARG;
    }
    state_key(scope, owner, key, k, sizeof k);
    json_t *e = json_object_get(af__svc.state, k);
    json_int_t exp = json_integer_value(json_object_get(e, "exp"));
    if (e == NULL || (exp > 0 && exp <= af_wall_ms())) {
        json_object_del(af__svc.state, k);
        return AF_ENOKEY;
    }
    *value = strdup(json_string_value(json_object_get(e, "v")));
    return *value ? 0 : AF_ERR;
}

int af_state_set(int scope, const char *owner, const char *key, const char *value,
                 uint64_t ttl_ms) {
    char k[1024];
    if (!af__svc.ready || key == NULL) {
        return AF_EARG;
    }
    state_key(scope, owner, key, k, sizeof k);
    if (value == NULL) {
        json_object_del(af__svc.state, k);
        return 0;
    }
    json_t *check = json_loads(value, JSON_DECODE_ANY, NULL);
    if (check == NULL) {
        return AF_EARG;
    }
    json_decref(check);
    json_int_t exp = ttl_ms ? (json_int_t)(af_wall_ms() + (int64_t)ttl_ms) : 0;
    json_object_set_new(af__svc.state, k, json_pack("{s:s, s:I}", "v", value, "exp", exp));
    return 0;
}

static const char *owner_of(af_call_t *tok, int scope) {
    if (tok == NULL || tok->call == NULL) {
        return NULL;
    }
    return scope == AF_SCOPE_WORKFLOW ? tok->call->workflow : tok->pt->def.plugin;
}

static int svc_state_get(af_call_t *tok, int scope, const char *key, char **value) {
    const char *owner = owner_of(tok, scope);
    return owner ? af_state_get(scope, owner, key, value) : AF_EARG;
}

static int svc_state_set(af_call_t *tok, int scope, const char *key, const char *value,
                         uint64_t ttl_ms) {
    const char *owner = owner_of(tok, scope);
    return owner ? af_state_set(scope, owner, key, value, ttl_ms) : AF_EARG;
}

/* ---- secrets, events, triggers ---- */

static int svc_secret(af_call_t *tok, const char *name, char **value) {
    if (tok == NULL || tok->call == NULL || tok->call->get_secret == NULL || value == NULL) {
        return AF_EARG;
    }
    const char *v = tok->call->get_secret(tok->call, name);
    if (v == NULL) {
        return AF_ENOKEY;
    }
    *value = strdup(v);
    return *value ? 0 : AF_ERR;
}

int af_event_emit(af_node_call_t *call, const char *type, json_t *data) {
    if (type == NULL || *type == '\0' || data == NULL) {
        return AF_EARG;
    }
    return af__svc.ready && af__svc.opts.emit_event
               ? af__svc.opts.emit_event(af__svc.opts.ud, call, type, data)
               : AF_ENOTSUP;
}

static int svc_emit_event(af_call_t *tok, const char *type, const char *data_json) {
    json_t *data = json_loads(data_json ? data_json : "null", JSON_DECODE_ANY, NULL);
    int rc = af_event_emit(tok ? tok->call : NULL, type, data);
    json_decref(data);
    return rc;
}

static int svc_fire(af_trigger_sink_t *sink, const char *input_json) {
    return sink ? af__sink_fire(sink, input_json) : AF_EARG;
}

/* ---- metrics ---- */

static void metric(const char *name, const char *labels, double value, int observe) {
    if (name == NULL) {
        return;
    }
    char key[512];
    snprintf(key, sizeof key, "%s{%s}", name, labels ? labels : "");
    pthread_mutex_lock(&af__svc.lock);
    json_t *m = json_object_get(af__svc.metrics, key);
    if (m == NULL) {
        m = json_pack("{s:s, s:f, s:I, s:f}", "kind", observe ? "histogram" : "counter", "value",
                      0.0, "count", (json_int_t)0, "sum", 0.0);
        json_object_set_new(af__svc.metrics, key, m);
    }
    json_object_set_new(m, "value",
                        json_real(json_number_value(json_object_get(m, "value")) + value));
    json_object_set_new(m, "count",
                        json_integer(json_integer_value(json_object_get(m, "count")) + 1));
    json_object_set_new(m, "sum", json_real(json_number_value(json_object_get(m, "sum")) + value));
    pthread_mutex_unlock(&af__svc.lock);
}

static void svc_metric_add(const char *name, const char *labels, double value) {
    metric(name, labels, value, 0);
}

static void svc_metric_observe(const char *name, const char *labels, double value) {
    metric(name, labels, value, 1);
}

/* ---- blocking work ---- */

typedef struct blocking_s {
    uv_work_t req;
    void (*work)(void *);
    void (*after)(void *, int);
    void *ud;
} blocking_t;

static void blocking_run(uv_work_t *w) {
    blocking_t *b = w->data;
    b->work(b->ud);
}

static void blocking_done(uv_work_t *w, int status) {
    blocking_t *b = w->data;
    if (b->after) {
        b->after(b->ud, status == UV_ECANCELED);
    }
    free(b);
}

static int svc_run_blocking(void (*work)(void *), void (*after)(void *, int), void *ud) {
    blocking_t *b = calloc(1, sizeof *b);
    if (b == NULL || work == NULL) {
        free(b);
        return AF_EARG;
    }
    b->work = work;
    b->after = after;
    b->ud = ud;
    b->req.data = b;
    if (uv_queue_work(af__svc.opts.loop, &b->req, blocking_run, blocking_done) != 0) {
        free(b);
        return AF_ERR;
    }
    return 0;
}

static void svc_trace(af_call_t *tok, const char *kind, const char *data_json) {
    if (tok == NULL || tok->call == NULL || tok->call->trace == NULL || kind == NULL) {
        return;
    }
    json_t *data = json_loads(data_json ? data_json : "{}", JSON_DECODE_ANY, NULL);
    if (data) {
        tok->call->trace(tok->call, kind, data);
    }
}

static void svc_free(void *p) {
    free(p);
}

/* ---- set-up ---- */

void af__services_fill(af_host_t *h) {
    memset(h, 0, sizeof *h);
    h->size = sizeof *h;
    h->abi_major = AF_ABI_MAJOR;
    h->abi_minor = AF_ABI_MINOR;
    h->log = svc_log;
    h->call_execution_id = svc_call_execution_id;
    h->call_workflow = svc_call_workflow;
    h->call_step = svc_call_step;
    h->call_attempt = svc_call_attempt;
    h->call_idempotency_key = svc_call_idempotency_key;
    h->call_succeed = svc_call_succeed;
    h->call_fail = svc_call_fail;
    h->http_request = svc_http_request;
    h->http_cancel = svc_http_cancel;
    h->timer_start = svc_timer_start;
    h->timer_stop = svc_timer_stop;
    h->state_get = svc_state_get;
    h->state_set = svc_state_set;
    h->secret = svc_secret;
    h->emit_event = svc_emit_event;
    h->fire = svc_fire;
    h->metric_add = svc_metric_add;
    h->metric_observe = svc_metric_observe;
    h->run_blocking = svc_run_blocking;
    h->free = svc_free;
    h->call_set_data = svc_call_set_data;
    h->call_get_data = svc_call_get_data;
    h->trace = svc_trace;
    h->call_fail_after = svc_call_fail_after;
}

int af__services_init(const af_plugins_opts_t *opts, af_error_t *err) {
    af__svc.opts = *opts;
    af__svc.loop_thread = uv_thread_self();
    if (pthread_mutex_init(&af__svc.lock, NULL) != 0 ||
        uv_async_init(opts->loop, &af__svc.async, drain_done) != 0) {
        return af_error_set(err, AF_EIO, "cannot set up the plugin services");
    }
    uv_unref((uv_handle_t *)&af__svc.async); /* pending work keeps the loop alive, not this */
    af__svc.state = json_object();
    af__svc.metrics = json_object();
    af__svc.ready = 1;
    return 0;
}

void af__services_shutdown(void) {
    if (!af__svc.ready) {
        return;
    }
    uv_close((uv_handle_t *)&af__svc.async, NULL);
    json_decref(af__svc.state);
    json_decref(af__svc.metrics);
    pthread_mutex_destroy(&af__svc.lock);
    af__svc.ready = 0;
}
