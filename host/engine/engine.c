/* engine.c -- executions: the ready set, step attempts through node calls, retries with
 * exponential backoff and full jitter, timeouts, failure propagation, error routing, the join
 * rule for skipped branches, results, and sub-workflows. */
#include "engine/engine.h"

#include <errno.h>
#include <stddef.h>
#include <libgen.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/clock.h"
#include "dsl/dsl.h"

#define MAX_SECRETS 256

/* A loaded workflow version: its VM and graph, shared by the executions that run it. */
typedef struct loaded_s {
    char *file;
    struct timespec mtime;
    off_t size;
    af_vm_t *vm;
    af_graph_t *g;
    int refs;
    uint64_t used; /* when it was last released (a counter), for evicting idle versions */
    struct loaded_s *next;
} loaded_t;

struct af_engine_s {
    af_engine_opts_t opts;
    loaded_t *loaded;
    uint64_t releases;
    char *secrets[MAX_SECRETS]; /* values handed out, masked in everything we show */
    int nsecrets;
};

typedef struct step_run_s {
    af_exec_t *x; /* back pointers for timer callbacks */
    int index;
    af_step_status_t status;
    int attempt;
    int pending_edges;    /* incoming edges whose source has not settled */
    int taken, not_taken; /* settled incoming edges */
    int failed_handled;   /* failed, and routed to an error port or continued */
    json_t *output;
    char *port;
    af_fault_t fault;
    int has_fault;
    double started_ms, ended_ms, attempt_started_ms;
    af_node_call_t call;
    json_t *config;     /* resolved config of the running attempt */
    json_t *error_info; /* for error handlers: what failed */
    uv_timer_t *timer;  /* retry wait or step timeout */
    int in_flight;
    int saving;      /* its checkpoint is being written: dependents wait */
    int durable;     /* in a durable wait (a delay or a retry wait) until wake_at */
    int64_t wake_at; /* wall ms; restored from a checkpoint before the step starts again */
} step_run_t;

struct af_exec_s {
    af_engine_t *e;
    loaded_t *wf; /* the workflow version it runs (vm and graph are wf's) */
    af_graph_t *g;
    af_vm_t *vm;
    af_vm_run_t run; /* this execution inside the shared VM */
    char id[37];
    char *file, *dir;
    int depth;
    int event_depth; /* of the event that started it (a top execution's) */
    af_exec_status_t status;
    af_fault_t fault;
    step_run_t *runs;
    int *ready;
    int nready, ready_head;
    int settled, in_flight;
    int draining, finishing;
    json_t *input, *result;
    json_t *trace;               /* entries recorded by nodes (LLM calls, tool calls) */
    double llm_tokens, llm_cost; /* totals reported through af.usage */
    int64_t started_wall;
    double started_ms, ended_ms;
    uv_timer_t *exec_timer, *finish_timer;
    void (*on_done)(af_exec_t *x, void *ud);
    void *ud;
    af_node_call_t *parent_call; /* when this is a sub-workflow */
    json_t *resume;              /* checkpoints to go on from, by step name (owned) */
    int saving;                  /* checkpoints being written */
    int durable_waits;           /* steps in a durable wait */
    int done_deferred;           /* finished while checkpoints were still being written */
};

static void drain(af_exec_t *x);
static void unload(af_engine_t *e, loaded_t *l);
static void settle(af_exec_t *x, int i);
static void fail_exec(af_exec_t *x, const af_fault_t *fault, af_exec_status_t status);
static void maybe_finish(af_exec_t *x);

const char *af_exec_status_name(af_exec_status_t s) {
    static const char *n[] = {"running", "succeeded", "failed", "cancelled"};
    return n[s];
}

const char *af_step_status_name(af_step_status_t s) {
    static const char *n[] = {"pending", "running", "waiting",  "succeeded",
                              "failed",  "skipped", "cancelled"};
    return n[s];
}

/* ---- engine ---- */

af_engine_t *af_engine_new(const af_engine_opts_t *opts) {
    af_engine_t *e = calloc(1, sizeof *e);
    if (e) {
        e->opts = *opts;
        if (e->opts.max_call_depth <= 0) {
            e->opts.max_call_depth = 8;
        }
    }
    return e;
}

void af_engine_free(af_engine_t *e) {
    if (e) {
        for (loaded_t *l = e->loaded, *next; l; l = next) {
            next = l->next;
            if (l->refs == 0) {
                unload(e, l);
            }
        }
        for (int i = 0; i < e->nsecrets; i++) {
            free(e->secrets[i]);
        }
        free(e);
    }
}

static const char *engine_secret(void *ud, const char *name) {
    if (ud == NULL) { /* outside an execution (a script loading): no secrets */
        return NULL;
    }
    af_engine_t *e = ((af_exec_t *)ud)->e;
    const char *v = e->opts.secret ? e->opts.secret(e->opts.ud, name) : NULL;
    if (v == NULL || strlen(v) < 4) { /* masking 1-3 characters would mangle every output */
        return v;
    }
    for (int i = 0; i < e->nsecrets; i++) {
        if (strcmp(e->secrets[i], v) == 0) {
            return v;
        }
    }
    if (e->nsecrets < MAX_SECRETS) {
        e->secrets[e->nsecrets++] = strdup(v);
    }
    return v;
}

static const char *engine_setting(void *ud, const char *name) {
    if (ud == NULL) {
        return NULL;
    }
    af_engine_t *e = ((af_exec_t *)ud)->e;
    return e->opts.secret ? e->opts.secret(e->opts.ud, name) : NULL;
}

char *af_engine_mask(af_engine_t *e, const char *text) {
    return af_mask_text(text, (const char *const *)e->secrets, e->nsecrets);
}

static json_t *mask_json(af_engine_t *e, const json_t *v) {
    if (e->nsecrets == 0 || v == NULL) {
        return v ? json_deep_copy(v) : json_null();
    }
    if (json_is_string(v)) {
        char *m = af_engine_mask(e, json_string_value(v));
        json_t *out = json_string(m);
        free(m);
        return out;
    }
    if (json_is_array(v)) {
        json_t *out = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            json_array_append_new(out, mask_json(e, x));
        }
        return out;
    }
    if (json_is_object(v)) {
        json_t *out = json_object();
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            json_object_set_new(out, k, mask_json(e, x));
        }
        return out;
    }
    return json_deep_copy(v);
}

/* ---- events ---- */

static void emit(af_exec_t *x, af_event_t *ev) {
    af_engine_t *e = x->e;
    if (e->opts.on_event == NULL) {
        return;
    }
    ev->workflow = x->g ? x->g->name : "";
    ev->execution_id = x->id;
    ev->depth = x->depth;
    e->opts.on_event(e->opts.ud, ev);
}

static void emit_step(af_exec_t *x, af_event_kind_t kind, int i) {
    step_run_t *r = &x->runs[i];
    char error[1200] = "";
    char *masked = NULL;
    if (r->has_fault && (kind == AF_EV_STEP_END || kind == AF_EV_STEP_RETRY)) {
        snprintf(error, sizeof error, "%s: %s", r->fault.code, r->fault.message);
        masked = af_engine_mask(x->e, error);
    }
    af_event_t ev = {.kind = kind,
                     .step = x->g->steps[i].name,
                     .status = r->status,
                     .attempt = r->attempt,
                     .duration_ms = r->ended_ms - r->attempt_started_ms,
                     .port = r->port,
                     .error = masked && masked[0] ? masked : NULL};
    emit(x, &ev);
    free(masked);
}

static void vm_usage(void *ud, double tokens, double cost, double *total_tokens,
                     double *total_cost) {
    af_exec_t *x = ud;
    if (x == NULL) {
        *total_tokens = *total_cost = 0;
        return;
    }
    x->llm_tokens += tokens;
    x->llm_cost += cost;
    *total_tokens = x->llm_tokens;
    *total_cost = x->llm_cost;
}

static void vm_log(void *ud, const char *step, const char *line) {
    af_exec_t *x = ud;
    if (x == NULL) { /* print() at a script's top level, while it loads */
        af_log(AF_LEVEL_INFO, "%s", line);
        return;
    }
    char *masked = af_engine_mask(x->e, line);
    af_event_t ev = {.kind = AF_EV_LOG, .step = step, .text = masked};
    emit(x, &ev);
    free(masked);
}

/* ---- timers ---- */

static void timer_closed(uv_handle_t *h) {
    free(h);
}

static uv_timer_t *timer_new(af_exec_t *x, void *data) {
    uv_timer_t *t = malloc(sizeof *t);
    uv_update_time(x->e->opts.loop); /* waits count from now, not from the loop's last wake */
    if (t) {
        uv_timer_init(x->e->opts.loop, t);
        t->data = data;
    }
    return t;
}

static void timer_drop(uv_timer_t **t) {
    if (*t) {
        af_clock_timer_stop(*t);
        uv_close((uv_handle_t *)*t, timer_closed);
        *t = NULL;
    }
}

/* ---- durable waits ----
 * A delay step or a retry wait ends at a wall-clock time that is told to the storage seam
 * (on_wait), so an execution resumed after a crash or parked in storage wakes at the original
 * time; when every step still in flight is such a wait, the execution is quiet and may be parked.
 */

static void wait_begin(af_exec_t *x, step_run_t *r, int64_t wake_at) {
    af_engine_t *e = x->e;
    if (!r->durable) {
        r->durable = 1;
        x->durable_waits++;
    }
    r->wake_at = wake_at;
    json_t *rec = x->resume ? json_object_get(x->resume, x->g->steps[r->index].name) : NULL;
    int recorded = json_integer_value(json_object_get(rec, "wake_at")) == wake_at;
    if (x->depth == 0 && e->opts.on_wait && !recorded) { /* a resumed wait is stored already */
        e->opts.on_wait(e->opts.ud, x, r->index, wake_at);
    }
}

static void wait_end(af_exec_t *x, step_run_t *r) {
    if (r->durable) {
        r->durable = 0;
        x->durable_waits--;
    }
    r->wake_at = 0;
}

static void call_waiting(af_node_call_t *call, int64_t wake_at);

int af_exec_quiet(const af_exec_t *x, int64_t *wake_at) {
    if (x->status != AF_EXEC_RUNNING || x->in_flight == 0 || x->in_flight != x->durable_waits ||
        x->saving > 0 || x->ready_head < x->nready || x->draining) {
        return 0;
    }
    int64_t wake = INT64_MAX;
    for (int i = 0; i < x->g->nsteps; i++) {
        if (x->runs[i].durable && x->runs[i].wake_at < wake) {
            wake = x->runs[i].wake_at;
        }
    }
    *wake_at = wake;
    return 1;
}

static void maybe_quiet(af_exec_t *x) {
    af_engine_t *e = x->e;
    int64_t wake;
    if (x->depth == 0 && e->opts.on_quiet && af_exec_quiet(x, &wake)) {
        e->opts.on_quiet(e->opts.ud, x, wake);
    }
}

/* ---- step attempts ---- */

/* The step run a call is embedded in. */
static step_run_t *run_of(af_node_call_t *call) {
    return (step_run_t *)((char *)call - offsetof(step_run_t, call));
}

static int64_t backoff_ms(const af_retry_t *p, int attempt) {
    if (p->backoff == AF_BACKOFF_FIXED) {
        return p->initial_ms;
    }
    double cap = (double)p->initial_ms;
    for (int k = 1; k < attempt && cap < (double)p->max_ms; k++) {
        cap *= 2;
    }
    if (cap > (double)p->max_ms) {
        cap = (double)p->max_ms;
    }
    uint32_t r;
    if (getrandom(&r, sizeof r, 0) != sizeof r) {
        r = (uint32_t)rand();
    }
    return (int64_t)(cap * ((double)r / 4294967296.0)); /* full jitter: uniform in [0, cap) */
}

static const af_retry_t *retry_of(af_exec_t *x, int i) {
    return x->g->steps[i].has_retry ? &x->g->steps[i].retry : &x->g->retry;
}

static int retry_allowed(const af_retry_t *p, const af_fault_t *f, int attempt) {
    if (!f->retryable || attempt >= p->attempts) {
        return 0;
    }
    for (int k = 0; k < p->n_non_retryable; k++) {
        if (strcmp(p->non_retryable[k], f->code) == 0) {
            return 0;
        }
    }
    return 1;
}

static void start_attempt(af_exec_t *x, int i);
static void save_step(af_exec_t *x, int i);

static void on_retry_timer(uv_timer_t *t) {
    step_run_t *run = t->data;
    af_exec_t *x = run->x;
    int i = run->index;
    timer_drop(&x->runs[i].timer);
    x->in_flight--;
    x->runs[i].in_flight = 0;
    wait_end(x, &x->runs[i]);
    start_attempt(x, i);
    drain(x);
}

static int has_error_route(af_exec_t *x, int i) {
    af_step_t *s = &x->g->steps[i];
    for (int k = 0; k < s->ndependents; k++) {
        af_step_t *d = &x->g->steps[s->dependents[k]];
        for (int j = 0; j < d->ndeps; j++) {
            if (d->deps[j].index == i && d->deps[j].port &&
                strcmp(d->deps[j].port, AF_PORT_ERROR) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

static void step_end(af_exec_t *x, int i, af_step_status_t status) {
    step_run_t *r = &x->runs[i];
    r->status = status;
    r->ended_ms = af_mono_ms();
    emit_step(x, AF_EV_STEP_END, i);
}

static void attempt_failed(af_exec_t *x, int i, const af_fault_t *f) {
    step_run_t *r = &x->runs[i];
    af_step_t *s = &x->g->steps[i];
    r->fault = *f;
    r->has_fault = 1;
    r->ended_ms = af_mono_ms();
    if (x->run.killed) { /* this execution's VM is spent: nothing else can run */
        step_end(x, i, AF_STEP_FAILED);
        fail_exec(x, f, AF_EXEC_FAILED);
        return;
    }
    const af_retry_t *p = retry_of(x, i);
    if (retry_allowed(p, f, r->attempt)) {
        int64_t wait = backoff_ms(p, r->attempt);
        if (f->retry_after_ms > wait) { /* the service said when (Retry-After) */
            wait = f->retry_after_ms;
        }
        r->timer = timer_new(x, r);
        if (r->timer) {
            r->status = AF_STEP_WAITING;
            r->in_flight = 1;
            x->in_flight++;
            wait_begin(x, r, af_wall_ms() + wait);
            af_event_t ev = {.kind = AF_EV_STEP_RETRY,
                             .step = s->name,
                             .attempt = r->attempt,
                             .status = AF_STEP_WAITING,
                             .retry_in_ms = wait,
                             .duration_ms = r->ended_ms - r->attempt_started_ms};
            char error[1200];
            snprintf(error, sizeof error, "%s: %s", f->code, f->message);
            char *masked = af_engine_mask(x->e, error);
            ev.error = masked;
            emit(x, &ev);
            free(masked);
            af_clock_timer_start(r->timer, on_retry_timer, af_wall_ms() + wait);
            return;
        }
    }
    if (s->on_error_continue || has_error_route(x, i)) {
        r->failed_handled = 1;
        r->output = s->on_error_continue ? json_null() : NULL;
        r->status = AF_STEP_FAILED;
        save_step(x, i);
        return;
    }
    step_end(x, i, AF_STEP_FAILED);
    af_fault_t ef = *f;
    if (x->depth == 0 || strcmp(f->code, "CALL_DEPTH") != 0) { /* name the step once, at the top */
        snprintf(ef.message, sizeof ef.message, "step '%.100s' failed: %.900s", s->name,
                 f->message);
    }
    fail_exec(x, &ef, AF_EXEC_FAILED);
}

/* A settled step (succeeded, or failed and handled) is made visible to its dependents. */
static void step_settled(af_exec_t *x, int i) {
    step_run_t *r = &x->runs[i];
    af_step_t *s = &x->g->steps[i];
    af_error_t err;
    if (r->status == AF_STEP_SUCCEEDED || s->on_error_continue) {
        if (af_vm_set_output(x->vm, &x->run, s->name, r->output, &err) != 0) {
            af_fault_t f;
            af_fault_set(&f, 0, "OUTPUT", "%s", err.msg);
            step_end(x, i, AF_STEP_FAILED);
            fail_exec(x, &f, AF_EXEC_FAILED);
            return;
        }
    }
    step_end(x, i, r->status);
    settle(x, i);
}

/* Checkpoints a settled step before its dependents start: at once, or when the storage seam
 * says it is written (af_exec_checkpoint_done). */
static void save_step(af_exec_t *x, int i) {
    step_run_t *r = &x->runs[i];
    af_engine_t *e = x->e;
    int rc =
        x->depth == 0 && e->opts.checkpoint ? e->opts.checkpoint(e->opts.ud, x, i, r->output) : 0;
    if (rc == AF_CHECKPOINT_PENDING) {
        r->saving = 1;
        x->saving++;
        x->in_flight++;
        return;
    }
    if (rc != 0) {
        af_fault_t f;
        af_fault_set(&f, 0, "CHECKPOINT", "could not checkpoint step '%s'", x->g->steps[i].name);
        step_end(x, i, AF_STEP_FAILED);
        fail_exec(x, &f, AF_EXEC_FAILED);
        return;
    }
    step_settled(x, i);
}

void af_exec_checkpoint_done(af_exec_t *x, int step, int rc) {
    step_run_t *r = &x->runs[step];
    if (!r->saving) {
        return;
    }
    r->saving = 0;
    x->saving--;
    x->in_flight--;
    if (x->status != AF_EXEC_RUNNING) { /* cancelled or failed meanwhile */
        if (x->saving == 0 && x->done_deferred) {
            x->done_deferred = 0;
            if (x->on_done) {
                x->on_done(x, x->ud);
            }
        }
        return;
    }
    if (rc != 0) {
        af_fault_t f;
        af_fault_set(&f, 0, "CHECKPOINT", "could not checkpoint step '%s': %s",
                     x->g->steps[step].name, af_strerror(rc));
        step_end(x, step, AF_STEP_FAILED);
        fail_exec(x, &f, AF_EXEC_FAILED);
        return;
    }
    step_settled(x, step);
    drain(x);
}

static void attempt_succeeded(af_exec_t *x, int i, json_t *output, const char *port) {
    step_run_t *r = &x->runs[i];
    r->output = output;
    r->port = port ? strdup(port) : NULL;
    r->has_fault = 0;
    r->ended_ms = af_mono_ms();
    r->status = AF_STEP_SUCCEEDED;
    save_step(x, i);
}

static void on_call_done(af_node_call_t *call, json_t *output, const char *port,
                         const af_fault_t *fault) {
    af_exec_t *x = call->owner;
    step_run_t *r = run_of(call);
    int i = r->index;
    timer_drop(&r->timer);
    json_decref(r->config);
    r->config = NULL;
    r->in_flight = 0;
    x->in_flight--;
    wait_end(x, r);
    if (fault) {
        attempt_failed(x, i, fault);
    } else {
        attempt_succeeded(x, i, output, port);
    }
    drain(x);
}

static int64_t step_timeout_ms(const af_exec_t *x, int i) {
    return x->g->steps[i].timeout_ms ? x->g->steps[i].timeout_ms : x->g->step_timeout_ms;
}

static void on_step_timeout(uv_timer_t *t) {
    step_run_t *r = t->data;
    af_exec_t *x = r->x;
    int i = r->index;
    timer_drop(&r->timer);
    af_node_cancel(&r->call);
    json_decref(r->config);
    r->config = NULL;
    r->in_flight = 0;
    x->in_flight--;
    wait_end(x, r);
    af_fault_t f;
    char d[32];
    af_fault_set(&f, 1, "TIMEOUT", "timed out after %s",
                 af_duration_format((double)step_timeout_ms(x, i), d, sizeof d));
    attempt_failed(x, i, &f);
    drain(x);
}

static int run_child(af_node_call_t *call, const char *file, json_t *input, af_fault_t *fault);
static void cancel_child(af_node_call_t *call);

static const char *call_secret(af_node_call_t *call, const char *name) {
    return engine_secret(call->engine, name);
}

static void call_log(af_node_call_t *call, const char *line) {
    vm_log(call->engine, call->step, line);
}

static void call_trace(af_node_call_t *call, const char *kind, json_t *data) {
    af_exec_t *x = call->engine;
    char at[40];
    if (x->trace == NULL) {
        x->trace = json_array();
    }
    json_array_append_new(x->trace,
                          json_pack("{s:s, s:s, s:i, s:s, s:o}", "kind", kind, "step",
                                    call->step ? call->step : "", "attempt", call->attempt, "at",
                                    af_time_iso(af_wall_ms(), at, sizeof at), "data", data));
}

static void prepare_call(void *ud, af_node_call_t *call) {
    af_exec_t *x = ud;
    call->vm_run = &x->run;
    call->trace = call_trace;
    call->get_secret = call_secret;
    call->log = call_log;
    call->execution_id = x->id;
    call->root_execution_id = x->parent_call ? x->parent_call->root_execution_id : x->id;
    call->event_depth = x->parent_call ? x->parent_call->event_depth : x->event_depth;
    call->workflow = x->g->name;
    call->engine = x;
    call->run_child = run_child;
    call->cancel_child = cancel_child;
    /* the same for every attempt of a step, so a retried attempt is not done twice */
    snprintf(call->idempotency_key, sizeof call->idempotency_key, "%s:%s", x->id,
             call->step ? call->step : "");
}

static void call_waiting(af_node_call_t *call, int64_t wake_at) {
    wait_begin(call->owner, run_of(call), wake_at);
}

static json_t *error_info_for(af_exec_t *x, int i) {
    af_step_t *s = &x->g->steps[i];
    for (int k = 0; k < s->ndeps; k++) {
        af_dep_t *d = &s->deps[k];
        step_run_t *src = &x->runs[d->index];
        if (d->port && strcmp(d->port, AF_PORT_ERROR) == 0 && src->has_fault) {
            return json_pack("{s:s, s:s, s:s}", "step", x->g->steps[d->index].name, "code",
                             src->fault.code, "message", src->fault.message);
        }
    }
    return NULL;
}

/* Goes on from a step's checkpoint instead of running it: a settled step is settled again with
 * its stored output and port; a retry wait is re-armed for what is left of it; a delay that was
 * waiting starts again with its original wake-up time. Returns 1 when the step needs no attempt
 * now. */
static int restore_step(af_exec_t *x, int i) {
    step_run_t *r = &x->runs[i];
    af_step_t *s = &x->g->steps[i];
    json_t *rec = json_object_get(x->resume, s->name);
    const char *status = json_string_value(json_object_get(rec, "status"));
    if (status == NULL) {
        return 0;
    }
    int attempts = (int)json_integer_value(json_object_get(rec, "attempts"));
    int64_t wake_at = json_integer_value(json_object_get(rec, "wake_at"));
    const char *port = json_string_value(json_object_get(rec, "port"));
    r->started_ms = r->attempt_started_ms = r->ended_ms = af_mono_ms();
    if (strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0) {
        r->attempt = attempts;
        r->output = json_incref(json_object_get(rec, "output"));
        r->port = port ? strdup(port) : NULL;
        r->status = strcmp(status, "succeeded") == 0 ? AF_STEP_SUCCEEDED : AF_STEP_FAILED;
        if (r->status == AF_STEP_FAILED) {
            const char *error = json_string_value(json_object_get(rec, "error"));
            af_fault_set(&r->fault, 0, "FAILED", "%s", error ? error : "failed");
            r->has_fault = r->failed_handled = 1;
            if (s->on_error_continue && r->output == NULL) {
                r->output = json_null();
            }
        }
        af_event_t ev = {
            .kind = AF_EV_LOG, .step = s->name, .text = "restored from its checkpoint"};
        emit(x, &ev);
        step_settled(x, i);
        return 1;
    }
    if (strcmp(status, "waiting") != 0) {
        return 0;
    }
    if (strcmp(s->type, "delay") == 0) { /* runs again, ending at the original time */
        r->wake_at = wake_at;
        return 0;
    }
    r->attempt = attempts; /* a retry wait: the next attempt starts when it ends */
    r->timer = timer_new(x, r);
    if (r->timer == NULL) {
        return 0;
    }
    r->status = AF_STEP_WAITING;
    r->in_flight = 1;
    x->in_flight++;
    wait_begin(x, r, wake_at);
    af_clock_timer_start(r->timer, on_retry_timer, wake_at);
    return 1;
}

static void start_attempt(af_exec_t *x, int i) {
    step_run_t *r = &x->runs[i];
    af_step_t *s = &x->g->steps[i];
    af_fault_t fault;
    if (r->attempt == 0 && x->resume && restore_step(x, i)) {
        return;
    }
    r->attempt++;
    r->status = AF_STEP_RUNNING;
    r->attempt_started_ms = af_mono_ms();
    if (r->attempt == 1) {
        r->started_ms = r->attempt_started_ms;
        r->error_info = error_info_for(x, i);
    }
    emit_step(x, AF_EV_STEP_START, i);
    const af_nodedef_t *type = af_registry_find(s->type);
    json_t *config = s->config;
    if (type == NULL) {
        af_fault_set(&fault, 0, "UNKNOWN_TYPE", "node type '%s' is not registered", s->type);
        attempt_failed(x, i, &fault);
        return;
    }
    if (!(type->flags & (AF_NODE_LUA | AF_NODE_RAW)) && s->config_dynamic) {
        if (af_vm_resolve(x->vm, &x->run, s->spec_ref, r->attempt, r->error_info, &r->config,
                          &fault)) {
            attempt_failed(x, i, &fault);
            return;
        }
        config = r->config;
        af_error_t verr;
        if (af_node_check_config(type, config, &verr) != 0) {
            af_fault_set(&fault, 0, "CONFIG", "invalid config for '%s': %s", s->type, verr.msg);
            attempt_failed(x, i, &fault);
            return;
        }
    }
    af_node_call_t *call = &r->call;
    memset(call, 0, sizeof *call);
    call->type = type;
    call->loop = x->e->opts.loop;
    call->config = config;
    call->step = s->name;
    call->attempt = r->attempt;
    call->vm = x->vm;
    call->vm_run = &x->run;
    call->spec_ref = s->spec_ref;
    call->error_info = r->error_info;
    call->instance = s->instance;
    call->done = on_call_done;
    call->owner = x;
    call->wake_at = r->wake_at;
    call->waiting = call_waiting;
    r->wake_at = 0;
    prepare_call(x, call);
    r->in_flight = 1;
    x->in_flight++;
    int64_t timeout = step_timeout_ms(x, i);
    if (timeout > 0 && (r->timer = timer_new(x, r)) != NULL) {
        uv_timer_start(r->timer, on_step_timeout, (uint64_t)timeout, 0);
    }
    int rc = af_node_execute(call, &fault);
    if (rc < 0 && !call->finished) {
        call->finished = 1;
        timer_drop(&r->timer);
        r->in_flight = 0;
        x->in_flight--;
        attempt_failed(x, i, &fault);
    }
}

/* ---- the join rule ---- */

static int edge_taken(af_exec_t *x, const af_dep_t *d) {
    step_run_t *src = &x->runs[d->index];
    int error_port = d->port && strcmp(d->port, AF_PORT_ERROR) == 0;
    if (src->status == AF_STEP_SUCCEEDED) {
        return !error_port && (d->port == NULL || (src->port && strcmp(src->port, d->port) == 0));
    }
    if (src->status == AF_STEP_FAILED && src->failed_handled) {
        return x->g->steps[d->index].on_error_continue ? d->port == NULL : error_port;
    }
    return 0;
}

static void push_ready(af_exec_t *x, int i) {
    x->ready[x->nready++] = i;
}

/* A step whose incoming edges have all settled runs if one of them was taken (join "any") or
 * all of them were (join "all"); otherwise it is skipped, and that settles its own edges. */
static void settle(af_exec_t *x, int first) {
    int *stack = x->ready + x->g->nsteps; /* second half of the buffer: skips to propagate */
    int top = 0;
    stack[top++] = first;
    while (top > 0) {
        int i = stack[--top];
        x->settled++;
        af_step_t *s = &x->g->steps[i];
        for (int k = 0; k < s->ndependents; k++) {
            int j = s->dependents[k];
            af_step_t *d = &x->g->steps[j];
            step_run_t *rj = &x->runs[j];
            for (int e = 0; e < d->ndeps; e++) {
                if (d->deps[e].index != i) {
                    continue;
                }
                rj->pending_edges--;
                if (edge_taken(x, &d->deps[e])) {
                    rj->taken++;
                } else {
                    rj->not_taken++;
                }
            }
            if (rj->pending_edges > 0 || rj->status != AF_STEP_PENDING) {
                continue;
            }
            int run = d->join == AF_JOIN_ALL ? rj->not_taken == 0 : rj->taken > 0;
            if (run) {
                push_ready(x, j);
            } else {
                rj->attempt_started_ms = rj->ended_ms = af_mono_ms();
                step_end(x, j, AF_STEP_SKIPPED);
                stack[top++] = j;
            }
        }
    }
}

static void drain(af_exec_t *x) {
    if (x->draining) {
        return;
    }
    x->draining = 1;
    while (x->ready_head < x->nready && x->status == AF_EXEC_RUNNING) {
        start_attempt(x, x->ready[x->ready_head++]);
    }
    if (x->ready_head == x->nready) {
        x->ready_head = x->nready = 0;
    }
    x->draining = 0;
    maybe_finish(x);
    maybe_quiet(x);
}

/* ---- finishing ---- */

static json_t *default_result(af_exec_t *x) {
    json_t *out = json_object();
    for (int i = 0; i < x->g->nsteps; i++) {
        if (x->g->steps[i].ndependents == 0 && x->runs[i].status == AF_STEP_SUCCEEDED) {
            json_object_set(out, x->g->steps[i].name, x->runs[i].output);
        }
    }
    return out;
}

static void finished(uv_timer_t *t) {
    af_exec_t *x = t->data;
    timer_drop(&x->finish_timer);
    if (x->saving > 0) { /* on_done once the checkpoints being written are answered */
        x->done_deferred = 1;
        return;
    }
    if (x->on_done) {
        x->on_done(x, x->ud);
    }
}

static void schedule_finish(af_exec_t *x) {
    if (x->finishing) {
        return;
    }
    x->finishing = 1;
    x->ended_ms = af_mono_ms();
    timer_drop(&x->exec_timer);
    af_event_t ev = {
        .kind = AF_EV_EXEC_END, .duration_ms = x->ended_ms - x->started_ms, .error = NULL};
    char error[1200];
    char *masked = NULL;
    if (x->status != AF_EXEC_SUCCEEDED) {
        snprintf(error, sizeof error, "%s: %s", x->fault.code, x->fault.message);
        masked = af_engine_mask(x->e, error);
        ev.error = masked;
    }
    ev.attempt = (int)x->status;
    emit(x, &ev);
    free(masked);
    x->finish_timer = timer_new(x, x);
    uv_timer_start(x->finish_timer, finished, 0, 0);
}

static void maybe_finish(af_exec_t *x) {
    if (x->status != AF_EXEC_RUNNING || x->in_flight > 0 || x->settled < x->g->nsteps ||
        x->draining) {
        return;
    }
    af_fault_t f;
    json_t *out = NULL;
    int rc = af_vm_output(x->vm, &x->run, &out, &f);
    if (rc < 0) {
        x->status = AF_EXEC_FAILED;
        x->fault = f;
    } else {
        x->result = rc == 1 ? out : default_result(x);
        x->status = AF_EXEC_SUCCEEDED;
    }
    schedule_finish(x);
}

static void fail_exec(af_exec_t *x, const af_fault_t *fault, af_exec_status_t status) {
    if (x->status != AF_EXEC_RUNNING) {
        return;
    }
    x->status = status;
    x->fault = *fault;
    for (int i = 0; i < x->g->nsteps; i++) {
        step_run_t *r = &x->runs[i];
        if (r->in_flight) {
            timer_drop(&r->timer);
            if (r->status == AF_STEP_RUNNING) {
                af_node_cancel(&r->call);
            }
            r->in_flight = 0;
            x->in_flight--;
            wait_end(x, r);
            step_end(x, i, AF_STEP_CANCELLED);
        } else if (r->status == AF_STEP_PENDING) {
            r->status = AF_STEP_CANCELLED;
        }
    }
    schedule_finish(x);
}

static void on_exec_timeout(uv_timer_t *t) {
    af_exec_t *x = t->data;
    af_fault_t f;
    char d[32];
    af_fault_set(&f, 0, "TIMEOUT", "execution timed out after %s",
                 af_duration_format((double)x->g->timeout_ms, d, sizeof d));
    fail_exec(x, &f, AF_EXEC_FAILED);
}

void af_exec_cancel(af_exec_t *x, const char *reason) {
    af_fault_t f;
    af_fault_set(&f, 0, "CANCELLED", "%s", reason ? reason : "cancelled");
    fail_exec(x, &f, AF_EXEC_CANCELLED);
}

/* ---- starting ---- */

/* The workflow version in file, loaded once and shared while executions run it; a changed file
 * (mtime or size) is loaded again as a new version. */
static loaded_t *acquire(af_engine_t *e, const char *file, af_error_t *err) {
    struct stat st;
    for (loaded_t *l = e->loaded; e->opts.immutable_files && l; l = l->next) {
        if (strcmp(l->file, file) == 0) {
            l->refs++;
            return l;
        }
    }
    if (stat(file, &st) != 0) {
        af_error_set(err, AF_EIO, "cannot open %s: %s", file, strerror(errno));
        return NULL;
    }
    for (loaded_t *l = e->loaded; l; l = l->next) {
        if (strcmp(l->file, file) == 0 && l->size == st.st_size &&
            l->mtime.tv_sec == st.st_mtim.tv_sec && l->mtime.tv_nsec == st.st_mtim.tv_nsec) {
            l->refs++;
            return l;
        }
    }
    af_vm_opts_t vo = {.loop = e->opts.loop,
                       .max_instructions = e->opts.max_instructions,
                       .max_memory = e->opts.max_memory,
                       .secret = engine_secret,
                       .setting = engine_setting,
                       .log = vm_log,
                       .prepare_call = prepare_call,
                       .usage = vm_usage,
                       .ud = NULL};
    loaded_t *l = calloc(1, sizeof *l);
    if (l == NULL || (l->vm = af_vm_new(&vo, err)) == NULL) {
        free(l);
        return NULL;
    }
    if (af_dsl_load_file(l->vm, file, &l->g, err) != 0) {
        af_vm_free(l->vm);
        free(l);
        return NULL;
    }
    l->file = strdup(file);
    l->mtime = st.st_mtim;
    l->size = st.st_size;
    l->refs = 1;
    l->next = e->loaded;
    e->loaded = l;
    return l;
}

static void unload(af_engine_t *e, loaded_t *l) {
    for (loaded_t **p = &e->loaded; *p; p = &(*p)->next) {
        if (*p == l) {
            *p = l->next;
            break;
        }
    }
    af_graph_free(l->g);
    af_vm_free(l->vm);
    free(l->file);
    free(l);
}

/* A version nobody runs stays loaded while it is among the opts.keep_loaded most recently used
 * idle ones, so the next execution does not compile it again. */
static void release(af_engine_t *e, loaded_t *l) {
    if (l == NULL || --l->refs > 0) {
        return;
    }
    l->used = ++e->releases;
    int idle = 0;
    loaded_t *oldest = NULL;
    for (loaded_t *c = e->loaded; c; c = c->next) {
        if (c->refs == 0) {
            idle++;
            if (oldest == NULL || c->used < oldest->used) {
                oldest = c;
            }
        }
    }
    if (idle > e->opts.keep_loaded) {
        unload(e, oldest);
    }
}

static af_exec_t *exec_new(af_engine_t *e, const char *file, af_error_t *err) {
    af_exec_t *x = calloc(1, sizeof *x);
    if (x == NULL) {
        af_error_set(err, AF_ENOMEM, "out of memory");
        return NULL;
    }
    x->e = e;
    x->file = strdup(file);
    char *copy = strdup(file);
    x->dir = strdup(dirname(copy));
    free(copy);
    af_uuid_v4(x->id);
    x->run.owner = x;
    x->run.state_ref = -2; /* LUA_NOREF until af_vm_begin */
    x->wf = acquire(e, file, err);
    if (x->wf == NULL) {
        af_exec_free(x);
        return NULL;
    }
    x->vm = x->wf->vm;
    x->g = x->wf->g;
    return x;
}

static int exec_begin(af_exec_t *x, json_t *input, int64_t started_at, af_error_t *err) {
    af_graph_t *g = x->g;
    x->runs = calloc((size_t)g->nsteps, sizeof *x->runs);
    x->ready = malloc(sizeof(int) * 2 * (size_t)g->nsteps);
    if (x->runs == NULL || x->ready == NULL) {
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    x->input = input             ? json_incref(input)
               : g->sample_input ? json_incref(g->sample_input)
                                 : json_object();
    x->started_wall = started_at > 0 ? started_at : af_wall_ms();
    x->started_ms = af_mono_ms();
    char iso[40];
    af_time_iso(x->started_wall, iso, sizeof iso);
    int rc = af_vm_begin(x->vm, &x->run, g, x->input, x->id, iso, err);
    if (rc != 0) {
        return rc;
    }
    x->status = AF_EXEC_RUNNING;
    af_event_t ev = {.kind = AF_EV_EXEC_START};
    emit(x, &ev);
    if (g->timeout_ms > 0 && (x->exec_timer = timer_new(x, x)) != NULL) {
        uv_timer_start(x->exec_timer, on_exec_timeout, (uint64_t)g->timeout_ms, 0);
    }
    for (int i = 0; i < g->nsteps; i++) {
        x->runs[i].x = x;
        x->runs[i].index = i;
        x->runs[i].pending_edges = g->steps[i].ndeps;
    }
    for (int k = 0; k < g->nsteps; k++) {
        int i = g->order[k];
        if (g->steps[i].ndeps == 0) {
            push_ready(x, i);
        }
    }
    drain(x);
    return 0;
}

static int start(af_engine_t *e, const af_exec_start_t *st, int depth, af_exec_t **out,
                 af_error_t *err) {
    af_exec_t *x = exec_new(e, st->file, err);
    if (x == NULL) {
        return err ? err->code : AF_ENOMEM;
    }
    if (st->id) {
        snprintf(x->id, sizeof x->id, "%s", st->id);
    }
    x->depth = depth;
    x->event_depth = st->event_depth;
    x->on_done = st->on_done;
    x->ud = st->ud;
    x->resume = st->resume && json_object_size(st->resume) ? json_incref(st->resume) : NULL;
    int rc = exec_begin(x, st->input, st->started_at, err);
    if (rc != 0) {
        af_exec_free(x);
        return rc;
    }
    *out = x;
    return 0;
}

int af_exec_start(af_engine_t *e, const af_exec_start_t *st, af_exec_t **out, af_error_t *err) {
    return start(e, st, 0, out, err);
}

int af_exec_start_file(af_engine_t *e, const char *file, json_t *input,
                       void (*on_done)(af_exec_t *x, void *ud), void *ud, af_exec_t **out,
                       af_error_t *err) {
    af_exec_start_t st = {.file = file, .input = input, .on_done = on_done, .ud = ud};
    return start(e, &st, 0, out, err);
}

int af_exec_start_file_as(af_engine_t *e, const char *file, json_t *input, const char *id,
                          void (*on_done)(af_exec_t *x, void *ud), void *ud, af_exec_t **out,
                          af_error_t *err) {
    af_exec_start_t st = {.file = file, .input = input, .id = id, .on_done = on_done, .ud = ud};
    return start(e, &st, 0, out, err);
}

int af_engine_trigger_call(af_engine_t *e, const char *file, int trigger, const char *field,
                           json_t *arg, json_t **out, af_fault_t *fault) {
    af_error_t err;
    loaded_t *l = acquire(e, file, &err);
    if (l == NULL) {
        af_fault_set(fault, 0, "DEFINITION", "%s", err.msg);
        return err.code ? err.code : AF_EIO;
    }
    int rc = trigger >= 0 && trigger < l->g->ntriggers
                 ? af_vm_call_trigger(l->vm, l->g, trigger, field, arg, out, fault)
                 : 0;
    release(e, l);
    return rc;
}

int af_exec_depth(const af_exec_t *x) {
    return x->depth;
}

af_step_status_t af_exec_step_status(const af_exec_t *x, int step) {
    return x->runs[step].status;
}

const char *af_exec_step_port(const af_exec_t *x, int step) {
    return x->runs[step].port;
}

char *af_exec_step_error(const af_exec_t *x, int step) {
    const step_run_t *r = &x->runs[step];
    if (!r->has_fault) {
        return NULL;
    }
    char text[1200];
    snprintf(text, sizeof text, "%s: %s", r->fault.code, r->fault.message);
    return af_engine_mask(x->e, text);
}

int64_t af_exec_started_at(const af_exec_t *x) {
    return x->started_wall;
}

int af_exec_park(af_exec_t *x) {
    int64_t wake;
    if (!af_exec_quiet(x, &wake)) {
        return AF_ESTATE;
    }
    af_exec_free(x); /* timers stopped, delays cancelled quietly: the store holds the rest */
    return 0;
}

const char *af_exec_id(const af_exec_t *x) {
    return x->id;
}

int af_exec_step_attempts(const af_exec_t *x, int step) {
    return x->runs[step].attempt;
}

/* ---- sub-workflows ---- */

/* A sub-workflow's LLM usage and trace count in its caller's record and budget. */
static void roll_up(af_exec_t *parent, af_exec_t *child) {
    parent->llm_tokens += child->llm_tokens;
    parent->llm_cost += child->llm_cost;
    if (child->trace == NULL) {
        return;
    }
    if (parent->trace == NULL) {
        parent->trace = json_array();
    }
    size_t i;
    json_t *entry;
    json_array_foreach(child->trace, i, entry) {
        json_t *copy = json_deep_copy(entry);
        json_object_set_new(copy, "workflow", json_string(child->g->name));
        json_array_append_new(parent->trace, copy);
    }
}

static void child_done(af_exec_t *child, void *ud) {
    af_node_call_t *call = ud;
    roll_up(call->engine, child);
    if (child->status == AF_EXEC_SUCCEEDED) {
        af_node_succeed(call, json_incref(child->result), NULL);
    } else if (strcmp(child->fault.code, "CALL_DEPTH") == 0) {
        af_node_fail(call, &child->fault); /* one message, not one prefix per level */
    } else {
        af_fault_t f;
        af_fault_set(&f, child->fault.retryable, child->fault.code, "sub-workflow %.100s: %.900s",
                     child->g->name, child->fault.message);
        af_node_fail(call, &f);
    }
    af_exec_free(child);
}

static void orphan_done(af_exec_t *child, void *ud) {
    (void)ud;
    af_exec_free(child);
}

static void cancel_child(af_node_call_t *call) {
    af_exec_t *child = call->node_data;
    if (child) {
        call->node_data = NULL;
        child->on_done = orphan_done; /* freed on its finish turn, the call is not touched */
        af_exec_cancel(child, "parent step cancelled");
    }
}

static int run_child(af_node_call_t *call, const char *file, json_t *input, af_fault_t *fault) {
    af_exec_t *x = call->engine;
    if (x->depth + 1 > x->e->opts.max_call_depth) {
        af_fault_set(fault, 0, "CALL_DEPTH", "sub-workflows nested deeper than %d (recursion?)",
                     x->e->opts.max_call_depth);
        return AF_ELIMIT;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", file[0] == '/' ? "" : x->dir, file[0] == '/' ? "" : "/",
             file);
    af_exec_t *child = NULL;
    af_error_t err;
    af_exec_start_t st = {.file = path, .input = input, .on_done = child_done, .ud = call};
    int rc = start(x->e, &st, x->depth + 1, &child, &err);
    if (rc != 0) {
        char text[1400];
        af_fault_set(fault, 0, "CALL", "sub-workflow %s: %s", file,
                     af_error_text(&err, text, sizeof text));
        return rc;
    }
    child->parent_call = call;
    call->node_data = child;
    return 0;
}

/* ---- accessors ---- */

void af_exec_free(af_exec_t *x) {
    if (x == NULL) {
        return;
    }
    timer_drop(&x->exec_timer);
    timer_drop(&x->finish_timer);
    if (x->runs) {
        for (int i = 0; i < x->g->nsteps; i++) {
            step_run_t *r = &x->runs[i];
            if (r->in_flight && r->status == AF_STEP_RUNNING) {
                af_node_cancel(&r->call);
            }
            timer_drop(&r->timer);
            json_decref(r->output);
            json_decref(r->config);
            json_decref(r->error_info);
            free(r->port);
        }
    }
    if (x->vm) {
        af_vm_end(x->vm, &x->run);
    }
    release(x->e, x->wf);
    json_decref(x->input);
    json_decref(x->resume);
    json_decref(x->result);
    json_decref(x->trace);
    free(x->runs);
    free(x->ready);
    free(x->file);
    free(x->dir);
    free(x);
}

af_exec_status_t af_exec_status(const af_exec_t *x) {
    return x->status;
}

const af_graph_t *af_exec_graph(const af_exec_t *x) {
    return x->g;
}

const af_fault_t *af_exec_fault(const af_exec_t *x) {
    return x->status == AF_EXEC_FAILED || x->status == AF_EXEC_CANCELLED ? &x->fault : NULL;
}

json_t *af_exec_result(const af_exec_t *x) {
    return mask_json(x->e, x->result ? x->result : json_null());
}

json_t *af_exec_to_json(const af_exec_t *x) {
    char iso[40];
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(x->id));
    json_object_set_new(o, "workflow", json_string(x->g->name));
    json_object_set_new(o, "status", json_string(af_exec_status_name(x->status)));
    json_object_set_new(o, "started_at",
                        json_string(af_time_iso(x->started_wall, iso, sizeof iso)));
    json_object_set_new(o, "duration_ms", json_real(x->ended_ms - x->started_ms));
    json_object_set_new(o, "result", af_exec_result(x));
    int64_t instructions;
    size_t memory;
    af_vm_usage(x->vm, &x->run, &instructions, &memory);
    json_object_set_new(o, "usage",
                        json_pack("{s:I, s:I, s:I, s:f}", "lua_instructions",
                                  (json_int_t)instructions, "lua_memory_bytes", (json_int_t)memory,
                                  "llm_tokens", (json_int_t)x->llm_tokens, "llm_cost_usd",
                                  x->llm_cost));
    if (af_exec_fault(x)) {
        char *m = af_engine_mask(x->e, x->fault.message);
        json_object_set_new(o, "error",
                            json_pack("{s:s, s:s}", "code", x->fault.code, "message", m));
        free(m);
    } else {
        json_object_set_new(o, "error", json_null());
    }
    json_t *steps = json_object();
    for (int k = 0; k < x->g->nsteps; k++) {
        int i = x->g->order[k];
        step_run_t *r = &x->runs[i];
        json_t *s = json_object();
        json_object_set_new(s, "status", json_string(af_step_status_name(r->status)));
        json_object_set_new(s, "attempts", json_integer(r->attempt));
        if (r->attempt > 0) {
            json_object_set_new(s, "duration_ms", json_real(r->ended_ms - r->started_ms));
        }
        if (r->port) {
            json_object_set_new(s, "port", json_string(r->port));
        }
        if (r->status == AF_STEP_SUCCEEDED || (r->status == AF_STEP_FAILED && r->output)) {
            json_object_set_new(s, "output", mask_json(x->e, r->output));
        }
        if (r->has_fault && r->status == AF_STEP_FAILED) {
            char *m = af_engine_mask(x->e, r->fault.message);
            json_object_set_new(s, "error",
                                json_pack("{s:s, s:s}", "code", r->fault.code, "message", m));
            free(m);
        }
        json_object_set_new(steps, x->g->steps[i].name, s);
    }
    json_object_set_new(o, "steps", steps);
    json_object_set_new(o, "trace", x->trace ? mask_json(x->e, x->trace) : json_array());
    return o;
}
