/* vm_internal.h -- what vm.c, task.c and compile.c share about a VM. Not an interface. */
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
    size_t mem_used, mem_limit;
    int resolving; /* > 0 while the engine evaluates config or output functions */
    int enforce;   /* > 0 while Lua runs protected: only then may an allocation be refused */
    int64_t instr_used, instr_limit;
    int killed;
    char kill_reason[256];
    char *file, *dir; /* the workflow file and its directory */
    /* registry references */
    int ref_runtime;  /* agentflow.runtime */
    int ref_sandbox;  /* the environment of workflow code */
    int ref_wf;       /* the workflow object the script returned */
    int ref_state;    /* {trigger, steps, vars, execution} */
    int ref_tasks;    /* thread -> light userdata task */
    af_task_t *tasks; /* every live task (roots and children) */
};

/* Pushes runtime[name] (a function). */
void af__vm_push_runtime(af_vm_t *vm, const char *name);
/* pcall with a traceback-free message; on failure fills fault from the error value. */
int af__vm_pcall(af_vm_t *vm, int nargs, int nresults, af_fault_t *fault);
/* Pushes runtime.ctx(state, attempt, error_info): the ctx a step attempt sees. */
int af__vm_push_ctx(af_vm_t *vm, lua_State *L, int attempt, json_t *error_info);
/* Fills fault from the error value at the top of L's stack (does not pop). */
void af__vm_fault_from(af_vm_t *vm, lua_State *L, af_fault_t *fault);
/* Registers agentflow.host's task functions (spawn, join, cancel, exec_node, sleep) into the
 * table at the top of the stack. */
void af__task_register(af_vm_t *vm, lua_State *L);
/* The step whose task is running L, or NULL outside step code. */
const char *af__task_step(lua_State *L);
int af__task_attempt(lua_State *L);
/* Starts a root task running the function and nargs arguments on top of vm->L (popped). */
int af__task_start(af_vm_t *vm, int nargs, const char *step, int attempt, af_task_done_fn done,
                   void *ud, af_task_t **task, af_fault_t *fault);
/* host.raw_plugin (lua_plugin.c). */
int af__host_raw_plugin(lua_State *L);
/* Cancels every task (VM shutdown). */
void af__task_cancel_all(af_vm_t *vm);

#endif
