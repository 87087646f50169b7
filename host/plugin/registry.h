/* registry.h -- node types by name, and the call through which the engine runs one.
 * The engine's own types (host/nodes) and, later, plugins register here. A call follows libuv's
 * rule: execute returns AF_NODE_DONE (completed inside), AF_NODE_PENDING (exactly one completion
 * follows, on the loop thread) or a negative AF_E* code (no completion; the fault says why). */
#ifndef AF_REGISTRY_H
#define AF_REGISTRY_H

#include <jansson.h>
#include <uv.h>
#include "core/core.h"

/* Why a step attempt failed. `retryable` 0 marks errors that retrying cannot fix. */
typedef struct af_fault_s {
    char code[64];
    char message[1024];
    int retryable;
    int64_t retry_after_ms; /* the earliest retry the failing side asked for; 0: none */
} af_fault_t;

void af_fault_set(af_fault_t *f, int retryable, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define AF_NODE_DONE    0
#define AF_NODE_PENDING 1

#define AF_NODE_LUA 0x1 /* runs as Lua in the execution's VM (engine types only) */
#define AF_NODE_RAW 0x2 /* a Lua plugin type that takes its config unresolved (functions kept) */

typedef struct af_node_call_s af_node_call_t;

typedef struct af_nodedef_s {
    const char *name;
    const char *description;
    const char *schema; /* JSON Schema of the config, as text; may be NULL */
    int flags;
    int (*execute)(af_node_call_t *call);
    void (*cancel)(af_node_call_t *call); /* may be NULL when execute never returns PENDING */
    /* Per step of a workflow version, at definition time, with the declared config; sets
     * *instance. Non-zero refuses the workflow (message in errbuf). May be NULL. */
    int (*create)(const struct af_nodedef_s *def, json_t *config, void **instance, char *errbuf,
                  size_t errlen);
    void (*destroy)(const struct af_nodedef_s *def, void *instance);
    const char *plugin;       /* the plugin that registered it; NULL for the engine's own types */
    const char *const *ports; /* output ports besides success and "error"; NULL-terminated */
} af_nodedef_t;

/* How a call reports back to whoever started it (the engine, or a Lua task). */
typedef void (*af_node_done_fn)(af_node_call_t *call, json_t *output, const char *port,
                                const af_fault_t *fault);

struct af_node_call_s {
    const af_nodedef_t *type;
    uv_loop_t *loop;
    json_t *config; /* resolved config, borrowed for the call's life */
    const char *execution_id, *workflow, *step;
    const char *root_execution_id; /* the top execution's id, for a sub-workflow's call */
    int event_depth;               /* of the event that started the top execution */
    int attempt;
    char idempotency_key[192]; /* execution id + step + attempt family */
    void *vm;                  /* the execution's VM (AF_NODE_LUA types) */
    void *vm_run;              /* the execution's run in that VM (af_vm_run_t) */
    int spec_ref;              /* the step's node spec in the VM (AF_NODE_LUA types) */
    json_t *error_info;        /* for error handlers: what failed (borrowed, may be NULL) */
    /* sub-workflow calls: provided by the engine; completes `call` itself later */
    int (*run_child)(af_node_call_t *call, const char *file, json_t *input, af_fault_t *fault);
    void (*cancel_child)(af_node_call_t *call);
    void *engine;
    void *instance; /* what the type's create made for this step */
    /* A secret's value for this call's execution (borrowed; the engine masks it), or NULL. */
    const char *(*get_secret)(af_node_call_t *call, const char *name);
    /* A line for this execution's log. */
    void (*log)(af_node_call_t *call, const char *line);
    /* An entry for the execution's trace (steals data). */
    void (*trace)(af_node_call_t *call, const char *kind, json_t *data);
    /* Durable waits (the delay type): when a resumed wait ends (wall ms), else 0; and the hook
     * that tells the engine when the wait will end (NULL outside the engine). */
    int64_t wake_at;
    void (*waiting)(af_node_call_t *call, int64_t wake_at);
    void *node_data; /* the type's own per-call state */
    af_node_done_fn done;
    void *owner;
    int finished, cancelled;
};

/* Completes a call with success: steals output (NULL means JSON null); port may be NULL.
 * Late completions of a cancelled call are dropped (output released). */
void af_node_succeed(af_node_call_t *call, json_t *output, const char *port);
/* Completes a call with a fault. */
void af_node_fail(af_node_call_t *call, const af_fault_t *fault);
void af_node_failf(af_node_call_t *call, int retryable, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Starts a call: fills nothing, runs type->execute. Returns its result; on a negative result the
 * fault is filled (from the type, or generic). */
int af_node_execute(af_node_call_t *call, af_fault_t *fault);
/* Cancels a pending call: calls the type's cancel and marks it so a late completion is dropped. */
void af_node_cancel(af_node_call_t *call);

/* Checks a config against the type's JSON Schema (compiled once per type). Returns 0 (also when
 * the type has no schema) or AF_EINVAL with err->msg naming the path ("$.url: must be string");
 * a schema that does not compile is reported the same way. */
int af_node_check_config(const af_nodedef_t *type, const json_t *config, af_error_t *err);

/* Registers a type (the struct must outlive the registry). AF_EEXISTS on a duplicate name. */
int af_registry_add(const af_nodedef_t *type, af_error_t *err);
/* The type called name, or NULL. */
const af_nodedef_t *af_registry_find(const char *name);
/* Iterates: returns the i-th type or NULL past the end. */
const af_nodedef_t *af_registry_at(int i);
/* Removes one type (a plugin being unloaded). */
void af_registry_remove(const af_nodedef_t *type);
/* Removes every type (tests). */
void af_registry_clear(void);

#endif
