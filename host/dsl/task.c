/* task.c -- step code as coroutines on the loop, in the manner of OpenResty: a host function
 * that must wait arms an event and yields; the event's callback resumes the coroutine with the
 * results. A step runs as a root task; foreach and parallel spawn child tasks under it. A whole
 * tree is freed together, never while one of its coroutines is on the C stack. */
#include "dsl/vm_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/lua_json.h"

typedef enum { T_NEW, T_RUNNING, T_WAIT_TIMER, T_WAIT_JOIN, T_WAIT_NODE, T_DONE } task_state_t;

struct af_task_s {
    af_vm_t *vm;
    lua_State *co;
    int co_ref;
    af_task_t *root;
    af_task_t *next_member; /* the root's list of every task in its tree, itself first */
    af_task_t *next_live, *prev_live;
    task_state_t state;
    int cancelled;
    uv_timer_t *timer;
    af_node_call_t *call;
    json_t *call_config;
    void *call_instance; /* the type's create() for a node run from Lua */
    int call_sync;       /* completion arrives while exec_node is still on the stack */
    int call_result_ref; /* a {ok, value} table from a synchronous completion */
    af_task_t *joiner;
    af_task_t *spawner;  /* children: the task that spawned this one */
    af_task_t *awaiting; /* the child this task is joining */
    af_task_t *failed;   /* a child that failed while this task was not joining */
    int result_ref;      /* children: {ok, ...} once done */
    /* roots only */
    af_vm_run_t *run; /* the execution the tree belongs to */
    int busy, dead;
    af_task_done_fn done;
    void *ud;
    char *step;
    int attempt;
};

static void task_resume(af_task_t *t, int nargs);
static void end_call(af_task_t *t);

/* ---- bookkeeping ---- */

static af_task_t *task_new(af_vm_t *vm, af_task_t *root) {
    lua_State *L = vm->L;
    af_task_t *t = calloc(1, sizeof *t);
    if (t == NULL) {
        return NULL;
    }
    t->vm = vm;
    t->co_ref = t->result_ref = t->call_result_ref = LUA_NOREF;
    t->co = lua_newthread(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_tasks);
    lua_pushvalue(L, -2);
    lua_pushlightuserdata(L, t);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    t->root = root ? root : t;
    if (root) {
        t->next_member = root->next_member;
        root->next_member = t;
    }
    t->next_live = vm->tasks;
    if (vm->tasks) {
        vm->tasks->prev_live = t;
    }
    vm->tasks = t;
    return t;
}

static af_task_t *task_current(lua_State *L) {
    af_vm_t *vm;
    lua_getallocf(L, (void **)&vm);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_tasks);
    lua_pushthread(L);
    lua_rawget(L, -2);
    af_task_t *t = lua_touserdata(L, -1);
    lua_pop(L, 2);
    return t;
}

const char *af__task_step(lua_State *L) {
    af_task_t *t = task_current(L);
    return t ? t->root->step : NULL;
}

int af__task_attempt(lua_State *L) {
    af_task_t *t = task_current(L);
    return t ? t->root->attempt : 0;
}

static void timer_closed(uv_handle_t *h) {
    free(h);
}

/* Stops whatever the task waits for; its coroutine is never resumed again. */
static void task_stop(af_task_t *t) {
    t->cancelled = 1;
    if (t->timer) {
        af_clock_timer_stop(t->timer);
        uv_close((uv_handle_t *)t->timer, timer_closed);
        t->timer = NULL;
    }
    if (t->call) {
        af_node_cancel(t->call);
        end_call(t);
    }
}

static void task_release(af_task_t *t) {
    af_vm_t *vm = t->vm;
    lua_State *L = vm->L;
    task_stop(t);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_tasks);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->co_ref);
    lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, t->co_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, t->result_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, t->call_result_ref);
    if (t->prev_live) {
        t->prev_live->next_live = t->next_live;
    } else {
        vm->tasks = t->next_live;
    }
    if (t->next_live) {
        t->next_live->prev_live = t->prev_live;
    }
    free(t->step);
    free(t);
}

static void tree_free(af_task_t *root) {
    af_task_t *t = root->next_member;
    while (t) {
        af_task_t *next = t->next_member;
        task_release(t);
        t = next;
    }
    task_release(root);
}

static void tree_stop(af_task_t *root) {
    for (af_task_t *t = root; t; t = t->next_member) {
        task_stop(t);
    }
}

void af_task_cancel(af_task_t *task) {
    af_task_t *root = task->root;
    if (task != root) { /* a child: stop its own waits only; the tree is freed with its root */
        task_stop(task);
        task->state = T_DONE;
        return;
    }
    tree_stop(root);
    root->dead = 1;
    if (root->busy == 0) {
        tree_free(root);
    }
}

void af__task_cancel_run(af_vm_t *vm, af_vm_run_t *run) {
    for (;;) { /* a cancel frees tasks: look again from the start each time */
        af_task_t *t = vm->tasks;
        while (t && !(t->root == t && t->run == run && !t->dead)) {
            t = t->next_live;
        }
        if (t == NULL) {
            return;
        }
        af_task_cancel(t); /* freed now, or (on the C stack) marked dead and skipped */
    }
}

void af__task_cancel_all(af_vm_t *vm) {
    while (vm->tasks) {
        af_task_t *root = vm->tasks->root;
        root->busy = 0;
        tree_stop(root);
        tree_free(root);
    }
}

/* ---- finishing ---- */

static void finish_root(af_task_t *t, int ok) {
    lua_State *co = t->co;
    af_fault_t fault;
    json_t *output = NULL;
    const char *port = NULL;
    if (ok) {
        af_error_t err;
        if (lua_gettop(co) >= 2 && lua_type(co, 2) == LUA_TSTRING) {
            port = lua_tostring(co, 2);
        }
        if (lua_gettop(co) == 0) {
            lua_pushnil(co);
        }
        if (af_lua_to_json(co, 1, AF_JSON_MAX_DEPTH, &output, &err) != 0) {
            af_fault_set(&fault, 0, "OUTPUT", "step output cannot be converted to JSON: %s",
                         err.msg);
            ok = 0;
        }
    } else {
        af__vm_fault_from(t->vm, co, &fault);
    }
    t->state = T_DONE;
    t->dead = 1;
    if (!t->cancelled) {
        t->done(t->ud, output, ok ? port : NULL, ok ? NULL : &fault);
    } else {
        json_decref(output);
    }
}

/* Pushes the values of a {ok, ..., n = N} result table onto L; returns N. */
static int push_result(lua_State *L, int ref) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_getfield(L, -1, "n");
    int n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, n + 1, "too many results");
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -i, i);
    }
    lua_remove(L, -n - 1);
    return n;
}

/* Packs the values on top of `from` (n of them) with the ok flag into a registry table. */
static int pack_result(lua_State *L, lua_State *from, int ok, int n) {
    lua_createtable(L, n + 1, 1);
    lua_pushboolean(L, ok);
    lua_rawseti(L, -2, 1);
    lua_xmove(from, L, n);
    for (int i = n; i >= 1; i--) {
        lua_rawseti(L, -(i + 1), i + 1);
    }
    lua_pushinteger(L, n + 1);
    lua_setfield(L, -2, "n");
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* A child that fails wakes its spawner even while that one joins another child (fail fast):
 * the spawner's join returns this failure and it cancels the rest. */
static void finish_child(af_task_t *t, int ok) {
    int n = ok ? lua_gettop(t->co) : 1;
    t->result_ref = pack_result(t->vm->L, t->co, ok, n);
    t->state = T_DONE;
    af_task_t *j = t->joiner;
    t->joiner = NULL;
    if (j == NULL && !ok && t->spawner) {
        if (t->spawner->state == T_WAIT_JOIN) {
            j = t->spawner;
            j->awaiting->joiner = NULL;
        } else if (t->spawner->failed == NULL) {
            t->spawner->failed = t; /* its next join reports it */
        }
    }
    if (j && j->state == T_WAIT_JOIN && !j->cancelled) {
        j->awaiting = NULL;
        task_resume(j, push_result(j->co, t->result_ref));
    }
}

static void task_resume(af_task_t *t, int nargs) {
    af_task_t *root = t->root;
    root->busy++;
    t->state = T_RUNNING;
    af_vm_run_t *prev = af__vm_enter(t->vm, root->run);
    t->vm->enforce++;
    int rc = lua_resume(t->co, nargs);
    t->vm->enforce--;
    if (!t->cancelled && rc != LUA_YIELD) { /* still in the run: its budget state explains */
        if (t == root) {
            finish_root(t, rc == 0);
        } else {
            finish_child(t, rc == 0);
        }
    }
    af__vm_leave(t->vm, prev);
    root->busy--;
    if (root->busy == 0 && root->dead) {
        tree_free(root);
    }
}

/* ---- host functions that wait ---- */

static af_task_t *must_wait_here(lua_State *L, const char *what) {
    af_task_t *t = task_current(L);
    if (t == NULL || t->cancelled) {
        luaL_error(L, "%s: cannot wait here (only step code running in the engine can wait)", what);
    }
    return t;
}

static void on_timer(uv_timer_t *h) {
    af_task_t *t = h->data;
    task_resume(t, 0);
}

static int host_sleep(lua_State *L) {
    int64_t ms;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        double v = lua_tonumber(L, 1);
        if (!(v >= 0 && v < 9e15)) {
            return luaL_error(L, "af.sleep: expected milliseconds >= 0");
        }
        ms = (int64_t)v;
    } else if (lua_type(L, 1) != LUA_TSTRING || af_duration_parse(lua_tostring(L, 1), &ms) != 0) {
        return luaL_error(L, "af.sleep: expected milliseconds or a duration such as \"200ms\"");
    }
    af_task_t *t = must_wait_here(L, "af.sleep");
    if (t->timer == NULL) {
        t->timer = malloc(sizeof *t->timer);
        if (t->timer == NULL) {
            return luaL_error(L, "af.sleep: out of memory");
        }
        uv_timer_init(t->vm->loop, t->timer);
        t->timer->data = t;
    }
    uv_update_time(t->vm->loop); /* Lua may have run for a while since the loop woke */
    af_clock_timer_start(t->timer, on_timer, af_wall_ms() + ms); /* a manual clock too */
    t->state = T_WAIT_TIMER;
    return lua_yield(L, 0);
}

static int host_spawn(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    af_task_t *parent = must_wait_here(L, "spawn");
    af_vm_t *vm = parent->vm;
    int nargs = lua_gettop(L);
    af_task_t *c = task_new(vm, parent->root);
    if (c) {
        c->spawner = parent;
    }
    if (c == NULL) {
        return luaL_error(L, "spawn: out of memory");
    }
    lua_xmove(L, c->co, nargs); /* the function and its arguments */
    task_resume(c, nargs - 1);
    lua_pushlightuserdata(L, c);
    return 1;
}

static af_task_t *check_child(lua_State *L, af_task_t *self) {
    af_task_t *c = lua_touserdata(L, 1);
    if (c == NULL || !lua_islightuserdata(L, 1)) {
        luaL_error(L, "expected a task handle");
    }
    for (af_task_t *m = self->root; m; m = m->next_member) {
        if (m == c && c != self->root) {
            return c;
        }
    }
    luaL_error(L, "not a task of this step");
    return NULL;
}

static int host_join(lua_State *L) {
    af_task_t *self = must_wait_here(L, "join");
    af_task_t *c = check_child(L, self);
    if (self->failed && self->failed->result_ref != LUA_NOREF) {
        af_task_t *f = self->failed;
        self->failed = NULL;
        return push_result(L, f->result_ref);
    }
    if (c->state == T_DONE) {
        if (c->result_ref == LUA_NOREF) {
            lua_pushboolean(L, 0);
            lua_pushliteral(L, "task was cancelled");
            return 2;
        }
        return push_result(L, c->result_ref);
    }
    if (c->joiner) {
        return luaL_error(L, "join: task already has a waiter");
    }
    c->joiner = self;
    self->awaiting = c;
    self->state = T_WAIT_JOIN;
    return lua_yield(L, 0);
}

static int host_cancel(lua_State *L) {
    af_task_t *self = must_wait_here(L, "cancel");
    af_task_t *c = check_child(L, self);
    if (c->state != T_DONE) {
        af_task_cancel(c);
    }
    return 0;
}

/* Pushes (true, output) or (false, error table) for a node call's outcome. */
static int push_node_result(lua_State *L, json_t *output, const af_fault_t *fault) {
    if (fault == NULL) {
        lua_pushboolean(L, 1);
        if (af_lua_push_json(L, output, AF_JSON_MAX_DEPTH) != 0) {
            lua_pushnil(L);
        }
        return 2;
    }
    lua_pushboolean(L, 0);
    lua_newtable(L);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "__af_error");
    lua_pushstring(L, fault->code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, fault->message);
    lua_setfield(L, -2, "message");
    lua_pushboolean(L, fault->retryable);
    lua_setfield(L, -2, "retryable");
    if (fault->retry_after_ms > 0) {
        lua_pushnumber(L, (lua_Number)fault->retry_after_ms);
        lua_setfield(L, -2, "retry_after_ms");
    }
    return 2;
}

static void end_call(af_task_t *t) {
    if (t->call_instance && t->call && t->call->type->destroy) {
        t->call->type->destroy(t->call->type, t->call_instance);
    }
    t->call_instance = NULL;
    json_decref(t->call_config);
    free(t->call);
    t->call = NULL;
    t->call_config = NULL;
}

static void on_node_done(af_node_call_t *call, json_t *output, const char *port,
                         const af_fault_t *fault) {
    (void)port;
    af_task_t *t = call->owner;
    if (t->call_sync) { /* still inside exec_node: hand the result over there */
        lua_State *L = t->vm->L;
        lua_createtable(L, 2, 0);
        push_node_result(L, output, fault);
        lua_rawseti(L, -3, 2);
        lua_rawseti(L, -2, 1);
        t->call_result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        json_decref(output);
        return;
    }
    int n = push_node_result(t->co, output, fault);
    json_decref(output);
    end_call(t);
    task_resume(t, n);
}

static int host_exec_node(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    af_task_t *t = must_wait_here(L, "node call");
    const af_nodedef_t *type = af_registry_find(name);
    if (type == NULL || (type->flags & AF_NODE_LUA)) {
        return luaL_error(L, "unknown node type '%s'", name);
    }
    json_t *config;
    af_error_t err;
    if (af_lua_to_json(L, 2, AF_JSON_MAX_DEPTH, &config, &err) != 0) {
        return luaL_error(L, "node '%s': config cannot be converted to JSON: %s", name, err.msg);
    }
    af_error_t verr;
    if (af_node_check_config(type, config, &verr) != 0) {
        json_decref(config);
        af_fault_t f;
        af_fault_set(&f, 0, "CONFIG", "invalid config for '%s': %s", name, verr.msg);
        return push_node_result(L, NULL, &f);
    }
    void *instance = NULL;
    char why[512] = "";
    if (type->create && type->create(type, config, &instance, why, sizeof why) != 0) {
        json_decref(config);
        af_fault_t f;
        af_fault_set(&f, 0, "CONFIG", "node type '%s' refused its config: %s", name, why);
        return push_node_result(L, NULL, &f);
    }
    af_node_call_t *call = calloc(1, sizeof *call);
    if (call == NULL) {
        if (instance && type->destroy) {
            type->destroy(type, instance);
        }
        json_decref(config);
        return luaL_error(L, "out of memory");
    }
    call->instance = instance;
    t->call_instance = instance;
    af_vm_t *vm = t->vm;
    call->type = type;
    call->loop = vm->loop;
    call->config = config;
    call->step = t->root->step;
    call->attempt = t->root->attempt;
    call->vm = vm;
    call->vm_run = t->root->run;
    call->spec_ref = LUA_NOREF;
    call->done = on_node_done;
    call->owner = t;
    if (vm->opts.prepare_call) {
        vm->opts.prepare_call(t->root->run->owner, call);
    }
    t->call = call;
    t->call_config = config;
    t->call_sync = 1;
    af_fault_t fault;
    int rc = af_node_execute(call, &fault);
    t->call_sync = 0;
    if (t->call_result_ref != LUA_NOREF) {
        int ref = t->call_result_ref;
        t->call_result_ref = LUA_NOREF;
        end_call(t);
        lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        lua_remove(L, -3);
        return 2;
    }
    if (rc < 0) {
        end_call(t);
        return push_node_result(L, NULL, &fault);
    }
    t->state = T_WAIT_NODE;
    return lua_yield(L, 0);
}

void af__task_register(af_vm_t *vm, lua_State *L) {
    (void)vm;
    static const luaL_Reg fns[] = {{"sleep", host_sleep},         {"spawn", host_spawn},
                                   {"join", host_join},           {"cancel", host_cancel},
                                   {"exec_node", host_exec_node}, {NULL, NULL}};
    luaL_register(L, NULL, fns);
}

/* ---- steps ---- */

/* Starts a root task running the function and nargs arguments on top of L's stack (popped). */
int af__task_start(af_vm_t *vm, af_vm_run_t *run, int nargs, const char *step, int attempt,
                   af_task_done_fn done, void *ud, af_task_t **task, af_fault_t *fault) {
    lua_State *L = vm->L;
    *task = NULL;
    if (run->killed) {
        lua_pop(L, nargs + 1);
        af_fault_set(fault, 0, "BUDGET", "%s", run->kill_reason);
        return AF_EBUDGET;
    }
    af_task_t *t = task_new(vm, NULL);
    if (t == NULL || (t->step = strdup(step ? step : "")) == NULL) {
        if (t) {
            task_release(t);
        }
        lua_pop(L, nargs + 1);
        af_fault_set(fault, 1, "NOMEM", "out of memory starting step '%s'", step);
        return AF_ENOMEM;
    }
    t->attempt = attempt;
    t->done = done;
    t->ud = ud;
    t->run = run;
    lua_xmove(L, t->co, nargs + 1);
    t->busy++; /* keep the tree while we look at it */
    task_resume(t, nargs);
    t->busy--;
    if (t->dead) {
        tree_free(t);
        return AF_NODE_DONE;
    }
    *task = t;
    return AF_NODE_PENDING;
}

void af_task_complete_call(void *ud, json_t *output, const char *port, const af_fault_t *fault) {
    af_node_call_t *call = ud;
    call->node_data = NULL;
    if (fault) {
        af_node_fail(call, fault);
    } else {
        af_node_succeed(call, output, port);
    }
}

int af_task_bind_call(af_node_call_t *call, int rc, af_task_t *task, const af_fault_t *fault) {
    if (rc < 0) {
        af_node_fail(call, fault);
        return AF_NODE_DONE;
    }
    if (rc == AF_NODE_PENDING) {
        call->node_data = task;
    }
    return rc;
}

void af_task_cancel_call(af_node_call_t *call) {
    if (call->node_data) {
        af_task_cancel(call->node_data);
        call->node_data = NULL;
    }
}

int af_vm_run_step(af_vm_t *vm, af_vm_run_t *run, int spec_ref, const char *step, int attempt,
                   json_t *error_info, af_task_done_fn done, void *ud, af_task_t **task,
                   af_fault_t *fault) {
    lua_State *L = vm->L;
    af__vm_push_runtime(vm, "run");
    lua_rawgeti(L, LUA_REGISTRYINDEX, spec_ref);
    af__vm_push_ctx(vm, L, run, attempt, error_info);
    return af__task_start(vm, run, 2, step, attempt, done, ud, task, fault);
}
