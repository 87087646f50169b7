/* vm_internal.h -- what vm.c, task.c, compile.c and lua_plugin.c share about a VM. Not an
 * interface. */
#ifndef AF_VM_INTERNAL_H
#define AF_VM_INTERNAL_H

#include <lua.h>
#include <lauxlib.h>
#include "dsl/dsl.h"

struct af_vm_s {
    lua_State *L;
    uv_loop_t *loop;
    lua_Alloc base_alloc; /* LuaJIT's own allocator, which vm_alloc wraps */
    void *base_ud;
    af_vm_opts_t opts;
    size_t mem_used;   /* bytes the VM holds */
    size_t mem_base;   /* bytes it held once the workflow was loaded */
    size_t runs_mem;   /* the live runs' memory shares, added up */
    int resolving;     /* > 0 while the engine evaluates config or output functions */
    int enforce;       /* > 0 while Lua runs protected: only then may an allocation be refused */
    af_vm_run_t load;  /* the budgets while the script loads (and outside any run) */
    af_vm_run_t *cur;  /* the run whose code executes now; NULL: load */
    af_vm_run_t *runs; /* live runs */
    char *file, *dir;  /* the workflow file and its directory */
    /* registry references */
    int ref_runtime;  /* agentflow.runtime */
    int ref_sandbox;  /* the environment of workflow code */
    int ref_wf;       /* the workflow object the script returned */
    int ref_tasks;    /* thread -> light userdata task */
    af_task_t *tasks; /* every live task (roots and children) */
};

/* Pushes runtime[name] (a function). */
void af__vm_push_runtime(af_vm_t *vm, const char *name);
/* pcall in run (NULL: the load run); on failure fills fault from the error value. */
int af__vm_pcall(af_vm_t *vm, af_vm_run_t *run, int nargs, int nresults, af_fault_t *fault);
/* Pushes runtime.ctx(state, attempt, error_info): the ctx a step attempt sees. */
int af__vm_push_ctx(af_vm_t *vm, lua_State *L, af_vm_run_t *run, int attempt, json_t *error_info);
/* Fills fault from the error value at the top of L's stack (does not pop). */
void af__vm_fault_from(af_vm_t *vm, lua_State *L, af_fault_t *fault);
/* The run whose code executes now (the load run outside executions), and its owner. */
af_vm_run_t *af__vm_cur(af_vm_t *vm);
void *af__vm_owner(af_vm_t *vm);
/* Makes run current; returns the previous one, to restore with af__vm_leave. */
af_vm_run_t *af__vm_enter(af_vm_t *vm, af_vm_run_t *run);
void af__vm_leave(af_vm_t *vm, af_vm_run_t *prev);
/* Registers agentflow.host's task functions (spawn, join, cancel, exec_node, sleep) into the
 * table at the top of the stack. */
void af__task_register(af_vm_t *vm, lua_State *L);
/* The step whose task is running L, or NULL outside step code. */
const char *af__task_step(lua_State *L);
int af__task_attempt(lua_State *L);
/* Starts a root task of run, running the function and nargs arguments on top of vm->L (popped). */
int af__task_start(af_vm_t *vm, af_vm_run_t *run, int nargs, const char *step, int attempt,
                   af_task_done_fn done, void *ud, af_task_t **task, af_fault_t *fault);
/* host.raw_plugin (lua_plugin.c). */
int af__host_raw_plugin(lua_State *L);
/* Cancels every task of run; af__task_cancel_all every task (VM shutdown). */
void af__task_cancel_run(af_vm_t *vm, af_vm_run_t *run);
void af__task_cancel_all(af_vm_t *vm);

#endif
