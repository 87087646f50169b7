/* lua_nodes.c -- node types whose work is Lua in the execution's VM: each attempt runs as a
 * coroutine task (see dsl/task.c); the completion of the task completes the call. */
#include <stddef.h>

#include "dsl/dsl.h"
#include "nodes/nodes_internal.h"

static int lua_execute(af_node_call_t *call) {
    af_task_t *task;
    af_fault_t fault;
    int rc = af_vm_run_step(call->vm, call->vm_run, call->spec_ref, call->step, call->attempt,
                            call->error_info, af_task_complete_call, call, &task, &fault);
    return af_task_bind_call(call, rc, task, &fault);
}

#define LUA_TYPE(id, desc)                                                                         \
    {                                                                                              \
        .name = id, .description = desc, .schema = NULL, .flags = AF_NODE_LUA,                     \
        .execute = lua_execute, .cancel = af_task_cancel_call                                      \
    }

const af_nodedef_t af__lua_node_types[] = {
    LUA_TYPE("lua", "Transform: a Lua function of ctx"),
    LUA_TYPE("condition", "If/else: yes and no ports"),
    LUA_TYPE("switch", "Named cases and a default"),
    LUA_TYPE("foreach", "A body per item, bounded concurrency, results in order"),
    LUA_TYPE("loop", "While loop with a required bound"),
    LUA_TYPE("parallel", "Named branches run concurrently and joined"),
    {.name = NULL},
};
