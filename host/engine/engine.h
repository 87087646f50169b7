/* engine.h -- the orchestrator: runs executions of compiled workflows on one libuv loop, with a
 * ready set, concurrent branches, retries with backoff, timeouts, cancellation, error routing,
 * checkpoints per step and sub-workflow calls. */
#ifndef AF_ENGINE_H
#define AF_ENGINE_H

#include <jansson.h>
#include <uv.h>
#include "core/core.h"
#include "graph/graph.h"
#include "plugin/registry.h"

typedef struct af_engine_s af_engine_t;
typedef struct af_exec_s af_exec_t;

typedef enum {
    AF_EXEC_RUNNING,
    AF_EXEC_SUCCEEDED,
    AF_EXEC_FAILED,
    AF_EXEC_CANCELLED
} af_exec_status_t;

typedef enum {
    AF_STEP_PENDING,
    AF_STEP_RUNNING,
    AF_STEP_WAITING, /* a retry wait */
    AF_STEP_SUCCEEDED,
    AF_STEP_FAILED,
    AF_STEP_SKIPPED,
    AF_STEP_CANCELLED
} af_step_status_t;

const char *af_exec_status_name(af_exec_status_t s);
const char *af_step_status_name(af_step_status_t s);

typedef enum {
    AF_EV_EXEC_START,
    AF_EV_STEP_START,
    AF_EV_STEP_END, /* succeeded, failed, skipped or cancelled: see status */
    AF_EV_STEP_RETRY,
    AF_EV_LOG,
    AF_EV_EXEC_END
} af_event_kind_t;

/* What happened, for progress logs and status updates. Strings are borrowed for the call and
 * already masked (no secret values). */
typedef struct af_event_s {
    af_event_kind_t kind;
    const char *workflow, *execution_id;
    int depth; /* 0 for a top execution, 1 for its sub-workflows, ... */
    const char *step;
    af_step_status_t status;
    int attempt;
    double duration_ms;
    const char *port;
    const char *error; /* code: message */
    int64_t retry_in_ms;
    const char *text; /* AF_EV_LOG */
} af_event_t;

typedef struct af_engine_opts_s {
    uv_loop_t *loop;
    int64_t max_instructions; /* Lua budgets per execution; 0: defaults */
    size_t max_memory;
    int max_call_depth;  /* sub-workflow nesting; 0: 8 */
    int keep_loaded;     /* workflow versions kept loaded while no execution runs them */
    int immutable_files; /* a script file never changes once written (the server's versions):
                          * a loaded one is used without checking the file again */
    /* Secret values by name (run mode: the environment). Borrowed, or NULL if unknown. */
    const char *(*secret)(void *ud, const char *name);
    void (*on_event)(void *ud, const af_event_t *ev);
    /* Called with each settled step of a top execution (succeeded, or failed and routed to an
     * error port or continued: see af_exec_step_status/_port/_error) before its dependents
     * start: the storage seam. Returns 0 when saved, AF_CHECKPOINT_PENDING when it is being
     * saved and the engine must wait for af_exec_checkpoint_done, or a negative code, which
     * fails the execution. May be NULL. */
    int (*checkpoint)(void *ud, const af_exec_t *x, int step, const json_t *output);
    /* A step of a top execution began a durable wait (a delay step or a retry wait) ending at
     * wake_at (wall ms). Record it so a resumed execution wakes at the same time. May be NULL. */
    void (*on_wait)(void *ud, const af_exec_t *x, int step, int64_t wake_at);
    /* A top execution is quiet: every step in flight is a durable wait, the earliest ending at
     * wake_at. It may be parked (af_exec_park) -- later, not from inside this call. May be NULL. */
    void (*on_quiet)(void *ud, af_exec_t *x, int64_t wake_at);
    void *ud;
} af_engine_opts_t;

#define AF_CHECKPOINT_PENDING 1 /* a checkpoint callback's "the answer comes later" */

af_engine_t *af_engine_new(const af_engine_opts_t *opts);
void af_engine_free(af_engine_t *e);

/* Loads `file`, compiles it and starts an execution with `input` (borrowed; NULL uses the
 * workflow's sample_input). on_done is called once, on a later loop turn. Definition errors
 * return AF_EDEFINITION/AF_ESYNTAX/... with err (file:line) and start nothing. */
int af_exec_start_file(af_engine_t *e, const char *file, json_t *input,
                       void (*on_done)(af_exec_t *x, void *ud), void *ud, af_exec_t **out,
                       af_error_t *err);
/* As af_exec_start_file, with the execution's id given (a stored execution's); id NULL: a new
 * UUID. */
int af_exec_start_file_as(af_engine_t *e, const char *file, json_t *input, const char *id,
                          void (*on_done)(af_exec_t *x, void *ud), void *ud, af_exec_t **out,
                          af_error_t *err);
/* How to start an execution. Everything is borrowed for the call. */
typedef struct af_exec_start_s {
    const char *file;   /* the workflow script */
    json_t *input;      /* NULL: the workflow's sample_input */
    const char *id;     /* NULL: a new UUID */
    json_t *resume;     /* NULL, or checkpoints to go on from: {step: {"status": "succeeded" |
                         * "failed" | "waiting", "output", "port", "error", "attempts",
                         * "wake_at"}} -- settled steps are not run again, waits end at their
                         * recorded wall-clock time */
    int64_t started_at; /* wall ms of the first start when resuming; 0: now */
    int event_depth;    /* the depth of the event that started it: what it emits is deeper */
    void (*on_done)(af_exec_t *x, void *ud);
    void *ud;
} af_exec_start_t;

/* Starts an execution as described; on_done is called once, on a later loop turn. Definition
 * errors return AF_EDEFINITION/AF_ESYNTAX/... with err (file:line) and start nothing. */
int af_exec_start(af_engine_t *e, const af_exec_start_t *start, af_exec_t **out, af_error_t *err);

/* The answer to a checkpoint callback that returned AF_CHECKPOINT_PENDING: rc 0 (saved: the
 * step's dependents start) or a negative code (the execution fails). Call it on the loop. */
void af_exec_checkpoint_done(af_exec_t *x, int step, int rc);

/* 1 when the execution is quiet (every step in flight is a durable wait, nothing is ready or
 * being saved), with the earliest wake-up in *wake_at; else 0. */
int af_exec_quiet(const af_exec_t *x, int64_t *wake_at);

/* Parks a quiet execution (see on_quiet): its timers stop and x is freed without on_done; the
 * store holds what is needed to resume it at its wake-up time. Returns 0, or AF_ESTATE (x is
 * untouched) when it is not quiet any more. */
int af_exec_park(af_exec_t *x);

/* Calls a function of a trigger declared by the workflow in file (af_vm_call_trigger): e.g. a
 * webhook's "input" (request -> execution input) or "response.fn". Returns 1 with *out (new), 0
 * when the trigger has no such function, or a negative code with fault. */
int af_engine_trigger_call(af_engine_t *e, const char *file, int trigger, const char *field,
                           json_t *arg, json_t **out, af_fault_t *fault);

/* 0 for a top execution, 1 for its sub-workflows, ... */
int af_exec_depth(const af_exec_t *x);
/* A step's status, and the port it took (borrowed, NULL for none). */
af_step_status_t af_exec_step_status(const af_exec_t *x, int step);
const char *af_exec_step_port(const af_exec_t *x, int step);
/* Why a step failed, "CODE: message", masked (new string; NULL when it did not fail). */
char *af_exec_step_error(const af_exec_t *x, int step);
/* Wall-clock ms of the execution's first start. */
int64_t af_exec_started_at(const af_exec_t *x);

/* The execution's id (borrowed, 36 characters). */
const char *af_exec_id(const af_exec_t *x);
/* How many attempts a step (by index) has made so far. */
int af_exec_step_attempts(const af_exec_t *x, int step);
/* Cancels a running execution: running node calls are cancelled, on_done follows. */
void af_exec_cancel(af_exec_t *x, const char *reason);
void af_exec_free(af_exec_t *x);

af_exec_status_t af_exec_status(const af_exec_t *x);
const af_graph_t *af_exec_graph(const af_exec_t *x);
/* Why it failed (NULL unless failed or cancelled). */
const af_fault_t *af_exec_fault(const af_exec_t *x);
/* The result with secrets masked (new reference; JSON null when there is none). */
json_t *af_exec_result(const af_exec_t *x);
/* The whole record, masked (new): id, workflow, status, timings, result, error, steps. */
json_t *af_exec_to_json(const af_exec_t *x);
/* Masks every secret value the engine has handed out (new malloc'd string). */
char *af_engine_mask(af_engine_t *e, const char *text);

#endif
