/* graph.h -- a compiled workflow: steps, their dependency edges and ports, triggers, policies.
 * No Lua and no I/O here: the DSL fills a graph, validation checks it, the engine runs it. */
#ifndef AF_GRAPH_H
#define AF_GRAPH_H

#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include "core/core.h"

#define AF_PORT_ERROR "error" /* every step has it: taken when the step fails */

typedef enum { AF_BACKOFF_EXPONENTIAL, AF_BACKOFF_FIXED } af_backoff_t;
typedef enum { AF_JOIN_ANY, AF_JOIN_ALL } af_join_t;

/* Retry policy. attempts counts the first try: 1 means no retry. */
typedef struct af_retry_s {
    int attempts;
    af_backoff_t backoff;
    int64_t initial_ms, max_ms;
    char **non_retryable; /* error codes that are never retried */
    int n_non_retryable;
} af_retry_t;

/* An incoming edge: this step runs after `step`, on its `port` (NULL: on success). */
typedef struct af_dep_s {
    char *step;
    char *port;
    int index; /* index of `step` in the graph, set by af_graph_validate */
} af_dep_t;

typedef struct af_step_s {
    char *name;
    char *type;  /* node type name: "lua", "condition", "delay", "core.echo", ... */
    char *where; /* "file.lua:12" where the step was declared */
    af_dep_t *deps;
    int ndeps;
    char **ports; /* output ports besides success and "error": "yes"/"no", switch cases */
    int nports;
    af_retry_t retry; /* when has_retry is 0 the workflow's default applies */
    int has_retry;
    int64_t timeout_ms;    /* 0: the workflow's default step timeout */
    int on_error_continue; /* on failure: record it, output null, dependents run */
    af_join_t join;
    json_t *config;     /* config for display and for C node types (owned) */
    int config_dynamic; /* config holds functions of ctx or secrets: resolved per attempt */
    int spec_ref;       /* opaque handle kept for the DSL (a Lua reference); -1 for none */
    void *instance;     /* the node type's per-step instance, freed by instance_free */
    void (*instance_free)(const void *owner, void *instance);
    const void *instance_owner;
    /* set by af_graph_validate: */
    int *dependents; /* indexes of steps with an edge from this one */
    int ndependents;
} af_step_t;

typedef struct af_trigger_s {
    char *type; /* webhook, schedule, event, poll, manual */
    char *where;
    json_t *config; /* owned */
} af_trigger_t;

typedef struct af_graph_s {
    char *name, *description, *file;
    af_retry_t retry;         /* workflow default; attempts 1 when not given */
    int64_t timeout_ms;       /* whole execution; 0 none */
    int64_t step_timeout_ms;  /* default per step; 0 none */
    int64_t max_instructions; /* Lua instruction budget per execution */
    size_t max_memory;        /* Lua memory budget per execution, bytes */
    int concurrency;          /* executions of this workflow running at once; 0: no limit */
    json_t *vars;             /* owned, may be NULL */
    json_t *sample_input;     /* owned, may be NULL */
    af_step_t *steps;
    int nsteps, capsteps;
    af_trigger_t *triggers;
    int ntriggers;
    int *order; /* a topological order of step indexes, set by af_graph_validate */
    /* private to graph.c: open-addressing index of steps by name (slot holds index + 1, 0 is
     * empty), kept by af_graph_add_step so duplicate checks and af_graph_find are O(1) */
    int *name_slots;
    int name_cap;
} af_graph_t;

/* New empty graph (copies name). NULL on out of memory. Defaults: retry attempts 1, exponential,
 * initial 1 s, max 60 s; budgets 0 (the caller's defaults apply). */
af_graph_t *af_graph_new(const char *name);
void af_graph_free(af_graph_t *g);

/* Appends a step (copies strings). Returns NULL and sets err (AF_EEXISTS, at `where`) when the
 * name is taken or empty. The pointer is valid until the next add. */
af_step_t *af_graph_add_step(af_graph_t *g, const char *name, const char *type, const char *where,
                             af_error_t *err);
/* Index of the step called name, or -1. */
int af_graph_find(const af_graph_t *g, const char *name);
/* Adds an edge into `s` from step `from` on `port` (NULL for success). Copies strings. */
int af_step_add_dep(af_step_t *s, const char *from, const char *port);
/* Declares an output port of the step ("yes", a switch case...). Copies. */
int af_step_add_port(af_step_t *s, const char *port);
/* Sets the non-retryable codes of a retry policy (copies). */
int af_retry_set_non_retryable(af_retry_t *r, const char *const *codes, int n);
/* Appends a trigger; steals config. */
int af_graph_add_trigger(af_graph_t *g, const char *type, const char *where, json_t *config);

/* Checks the graph and computes indexes, dependents and the topological order. Errors, with the
 * `where` of the step concerned and its name in the message: no steps; a dependency on an unknown
 * step; on a port the step does not have; a step depending on itself; a cycle (the message lists
 * it, "a -> b -> a"). Returns 0 or AF_EDEFINITION. */
int af_graph_validate(af_graph_t *g, af_error_t *err);

/* Printing, for `agentflow check`. The JSON form is a new reference:
 * {"name", "description", "file", "steps": [{"name","type","where","after":[{"step","port"}],
 *  "ports", "retry", "timeout_ms", "config"}], "triggers": [{"type","where","config"}]} */
json_t *af_graph_to_json(const af_graph_t *g);
void af_graph_print_text(const af_graph_t *g, FILE *out);
/* Graphviz: one node per step (shape by type), edges labelled with their port. */
void af_graph_print_dot(const af_graph_t *g, FILE *out);

#endif
