/* dsl.h -- the Lua side of executions: a sandboxed LuaJIT VM per workflow version, loading the
 * script and compiling it into a graph, and running step code as coroutine tasks on the loop.
 * The executions of one workflow version share its VM, as OpenResty's requests share a worker's:
 * each has its own ctx and its own budgets (af_vm_run_t). A VM stays on one thread. */
#ifndef AF_DSL_H
#define AF_DSL_H

#include <jansson.h>
#include <uv.h>
#include "core/core.h"
#include "graph/graph.h"
#include "plugin/registry.h"

typedef struct af_vm_s af_vm_t;
typedef struct af_task_s af_task_t;

/* One execution inside a VM: its ctx, its budgets, and the owner handed to the callbacks.
 * Owned by the caller (the engine embeds it); valid from af_vm_begin to af_vm_end. */
typedef struct af_vm_run_s {
    void *owner;
    int state_ref;
    int64_t instr_used, instr_limit;
    size_t mem_limit; /* this execution's share of the VM's memory budget */
    int killed;
    char kill_reason[256];
    struct af_vm_run_s *next, *prev; /* the VM's live runs */
} af_vm_run_t;

#define AF_DEFAULT_MAX_INSTRUCTIONS 200000000LL /* ~0.5 s of interpreted Lua */
#define AF_DEFAULT_MAX_MEMORY       (64u << 20)
#define AF_MAX_SCRIPT_BYTES         (1u << 20)

typedef struct af_vm_opts_s {
    uv_loop_t *loop;
    int64_t max_instructions; /* 0: AF_DEFAULT_MAX_INSTRUCTIONS */
    size_t max_memory;        /* 0: AF_DEFAULT_MAX_MEMORY */
    /* The callbacks get the owner of the execution whose code runs (af_vm_run_t.owner), or ud
     * outside executions. */
    /* Looks a secret up by name; returns a borrowed value or NULL when unknown. */
    const char *(*secret)(void *ud, const char *name);
    /* A non-secret setting by name from the same source (not masked), e.g. a base URL. */
    const char *(*setting)(void *ud, const char *name);
    /* A line written by af.log/print from step code. */
    void (*log)(void *ud, const char *step, const char *line);
    /* Fills in what a node call started from Lua (host.exec_node) needs from the engine:
     * ids, run_child. */
    void (*prepare_call)(void *ud, af_node_call_t *call);
    /* Adds LLM usage to the execution's totals and returns them (af.usage). */
    void (*usage)(void *ud, double tokens, double cost, double *total_tokens, double *total_cost);
    void *ud;
} af_vm_opts_t;

/* A new VM with the sandbox and the agentflow modules loaded. NULL with err on failure. */
af_vm_t *af_vm_new(const af_vm_opts_t *opts, af_error_t *err);
/* Closes the VM; cancels its tasks first. */
void af_vm_free(af_vm_t *vm);
/* Instructions the run used, and bytes the whole VM holds. */
void af_vm_usage(const af_vm_t *vm, const af_vm_run_t *run, int64_t *instructions, size_t *memory);

/* Evaluates a workflow script (file is used for messages and for relative sub-workflow paths)
 * and compiles what it returns into *graph (new). Definition errors carry file:line. */
int af_dsl_load(af_vm_t *vm, const char *file, const char *source, size_t len, af_graph_t **graph,
                af_error_t *err);
/* Reads the file (at most AF_MAX_SCRIPT_BYTES) and calls af_dsl_load. */
int af_dsl_load_file(af_vm_t *vm, const char *file, af_graph_t **graph, af_error_t *err);

/* Starts a run: ctx.trigger (borrowed input), ctx.vars, ctx.execution, and the budgets: the
 * workflow's limits capped by the VM's options. run->owner must be set. */
int af_vm_begin(af_vm_t *vm, af_vm_run_t *run, const af_graph_t *g, json_t *input,
                const char *execution_id, const char *started_at, af_error_t *err);
/* Ends a run: cancels its tasks and drops its state. */
void af_vm_end(af_vm_t *vm, af_vm_run_t *run);
/* Records a finished step's output so later ctx.steps sees it (borrowed). */
int af_vm_set_output(af_vm_t *vm, af_vm_run_t *run, const char *step, json_t *output,
                     af_error_t *err);
/* Resolves a step's config (functions of ctx, secrets) into *config (new). */
int af_vm_resolve(af_vm_t *vm, af_vm_run_t *run, int spec_ref, int attempt, json_t *error_info,
                  json_t **config, af_fault_t *fault);
/* Runs the workflow's `output` function if it has one: returns 1 and *out (new), 0 when there is
 * none, or a negative code with fault. */
int af_vm_output(af_vm_t *vm, af_vm_run_t *run, json_t **out, af_fault_t *fault);
/* Calls the function at `field` ("input", or one level down: "response.fn") of trigger number
 * `trigger` (0-based, in the script's order) of the workflow loaded in vm with arg (borrowed),
 * to the end (it cannot wait), within g's budgets. Returns 1 with *out (new), 0 when there is no
 * such function, or a negative code with fault. */
int af_vm_call_trigger(af_vm_t *vm, const af_graph_t *g, int trigger, const char *field,
                       json_t *arg, json_t **out, af_fault_t *fault);

/* How a step task ends: output is new (or NULL on fault); port may be NULL. */
typedef void (*af_task_done_fn)(void *ud, json_t *output, const char *port,
                                const af_fault_t *fault);

/* Runs a Lua-kind step (the node spec at spec_ref) as a coroutine task. Returns AF_NODE_DONE when
 * it finished at once (done was called), AF_NODE_PENDING with *task set (done follows later,
 * unless the task is cancelled), or a negative code with fault filled and done not called. */
int af_vm_run_step(af_vm_t *vm, af_vm_run_t *run, int spec_ref, const char *step, int attempt,
                   json_t *error_info, af_task_done_fn done, void *ud, af_task_t **task,
                   af_fault_t *fault);
/* For node types whose attempt is a task: an af_task_done_fn completing the af_node_call_t
 * passed as ud, and a cancel that stops the task kept in call->node_data. */
void af_task_complete_call(void *ud, json_t *output, const char *port, const af_fault_t *fault);
void af_task_cancel_call(af_node_call_t *call);
/* What execute returns for a call whose attempt is a task started with af_task_complete_call:
 * fails the call on a negative rc, keeps the task for cancel when it is pending. */
int af_task_bind_call(af_node_call_t *call, int rc, af_task_t *task, const af_fault_t *fault);
/* Stops a task and every task it spawned: timers stop, node calls are cancelled, done is not
 * called. Safe on a task that is running further up the C stack (it stops when it yields). */
void af_task_cancel(af_task_t *task);

/* Loads a .lua plugin: checks it in a scratch VM, records it and registers its node types (run
 * in each execution's VM). Refusals name the file and the reason; nothing stays registered. */
int af_lua_plugin_load(const char *path, af_error_t *err);
/* The loop Lua plugins' trigger types run on (set before starting one). */
void af_lua_plugins_set_loop(uv_loop_t *loop);

/* Replaces every known secret value inside strings of `value` by "***" (in place), and in text.
 * The engine keeps the values; this is the helper both use. */
char *af_mask_text(const char *text, const char *const *secrets, int n);

#endif
