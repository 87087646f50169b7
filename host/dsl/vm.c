/* vm.c -- the sandboxed LuaJIT VM of one execution: allocator with a memory budget, an
 * instruction budget, the embedded agentflow modules, the agentflow.host module, and the calls
 * the engine makes into the VM (execution state, config resolution, the workflow's output). */
#include "dsl/vm_internal.h"

#include <lualib.h>
#include <luajit.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/lua_json.h"
#include "core/jsonschema.h"
#include "plugin/plugin.h"

struct af_embedded_lua {
    const char *name, *chunk, *src;
    size_t len;
};
extern const struct af_embedded_lua af_embedded_lua[];

#define HOOK_EVERY 1000

/* ---- runs and budgets ---- */

af_vm_run_t *af__vm_cur(af_vm_t *vm) {
    return vm->cur ? vm->cur : &vm->load;
}

void *af__vm_owner(af_vm_t *vm) {
    return vm->cur ? vm->cur->owner : vm->opts.ud;
}

static void hook_rate(af_vm_t *vm);

af_vm_run_t *af__vm_enter(af_vm_t *vm, af_vm_run_t *run) {
    af_vm_run_t *prev = vm->cur;
    vm->cur = run;
    hook_rate(vm);
    return prev;
}

void af__vm_leave(af_vm_t *vm, af_vm_run_t *prev) {
    vm->cur = prev;
    hook_rate(vm);
}

static void run_kill(af_vm_run_t *run, const char *fmt, long long amount) {
    if (!run->killed) {
        run->killed = 1;
        snprintf(run->kill_reason, sizeof run->kill_reason, fmt, amount);
    }
}

/* Counts and bounds what the VM holds, around LuaJIT's own allocator (much faster than the C
 * library's for the many small objects a VM makes). The VM may hold what the workflow needs
 * plus each live run's share; an allocation past that stops the run that asked for it. */
static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    af_vm_t *vm = ud;
    if (nsize == 0) {
        vm->base_alloc(vm->base_ud, ptr, osize, 0);
        vm->mem_used -= osize;
        return NULL;
    }
    /* Outside protected calls the host itself allocates (results, ctx): refusing there would
     * be an unprotected error, so the budget is enforced only while Lua code runs. */
    if (nsize > osize && vm->enforce > 0) {
        af_vm_run_t *run = af__vm_cur(vm);
        size_t limit = vm->cur ? vm->mem_base + vm->runs_mem : run->mem_limit;
        if (vm->mem_used - osize + nsize > limit) {
            run_kill(run, "memory budget of %lld bytes exceeded", (long long)run->mem_limit);
            return NULL;
        }
    }
    void *p = vm->base_alloc(vm->base_ud, ptr, osize, nsize);
    if (p != NULL) {
        vm->mem_used = vm->mem_used - osize + nsize;
    }
    return p;
}

static af_vm_t *vm_of(lua_State *L) {
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

static void where_now(lua_State *L, char *buf, size_t size) {
    lua_Debug ar;
    buf[0] = '\0';
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        /* the user's line, not one inside our own modules */
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0 &&
            strncmp(ar.source, "@lua/agentflow/", 15) != 0) {
            const char *src =
                ar.source[0] == '@' || ar.source[0] == '=' ? ar.source + 1 : ar.source;
            snprintf(buf, size, "%s:%d: ", src, ar.currentline);
            return;
        }
    }
}

static void budget_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    af_vm_t *vm = vm_of(L);
    af_vm_run_t *run = af__vm_cur(vm);
    run->instr_used += HOOK_EVERY;
    if (run->instr_used <= run->instr_limit && !run->killed) {
        return;
    }
    run_kill(run, "instruction budget of %lld exceeded (a loop that does not end?)",
             (long long)run->instr_limit);
    /* While a stopped run is on the stack every instruction raises, so a pcall in the script
     * cannot keep it alive (af__vm_enter of a live run sets the normal rate again). */
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    char where[300];
    where_now(L, where, sizeof where);
    lua_pushfstring(L, "%s%s", where, run->kill_reason);
    lua_error(L);
}

/* Back to one check per HOOK_EVERY instructions once no stopped run is executing. */
static void hook_rate(af_vm_t *vm) {
    if (!af__vm_cur(vm)->killed) {
        lua_sethook(vm->L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
    }
}

void af_vm_usage(const af_vm_t *vm, const af_vm_run_t *run, int64_t *instructions, size_t *memory) {
    if (instructions) {
        *instructions = run ? run->instr_used : vm->load.instr_used;
    }
    if (memory) {
        *memory = vm->mem_used;
    }
}

/* ---- errors ---- */

void af__vm_fault_from(af_vm_t *vm, lua_State *L, af_fault_t *fault) {
    af_vm_run_t *run = af__vm_cur(vm);
    if (run->killed) {
        const char *msg = lua_isstring(L, -1) ? lua_tostring(L, -1) : run->kill_reason;
        af_fault_set(fault, 0, "BUDGET", "%s",
                     strstr(msg, run->kill_reason) ? msg : run->kill_reason);
        return;
    }
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "__af_error");
        int ours = lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (ours) {
            lua_getfield(L, -1, "code");
            lua_getfield(L, -2, "message");
            lua_getfield(L, -3, "retryable");
            af_fault_set(fault, lua_toboolean(L, -1),
                         lua_isstring(L, -3) ? lua_tostring(L, -3) : "ERROR", "%s",
                         lua_isstring(L, -2) ? lua_tostring(L, -2) : "error");
            lua_getfield(L, -4, "retry_after_ms");
            fault->retry_after_ms = (int64_t)lua_tonumber(L, -1);
            lua_pop(L, 4);
            return;
        }
    }
    const char *msg = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
    if (msg == NULL) {
        lua_getglobal(L, "tostring");
        lua_pushvalue(L, -2);
        lua_pcall(L, 1, 1, 0);
        msg = lua_isstring(L, -1) ? lua_tostring(L, -1) : "(error object is not a string)";
        af_fault_set(fault, 1, "LUA_ERROR", "%s", msg);
        lua_pop(L, 1);
        return;
    }
    int nomem = strcmp(msg, "not enough memory") == 0;
    af_fault_set(fault, !nomem, nomem ? "MEMORY" : "LUA_ERROR", "%s", msg);
}

int af__vm_pcall(af_vm_t *vm, af_vm_run_t *run, int nargs, int nresults, af_fault_t *fault) {
    af_vm_run_t *prev = af__vm_enter(vm, run);
    af_vm_run_t *cur = af__vm_cur(vm);
    int rc = 0;
    if (cur->killed) {
        lua_pop(vm->L, nargs + 1);
        af_fault_set(fault, 0, "BUDGET", "%s", cur->kill_reason);
        rc = AF_EBUDGET;
    } else {
        vm->enforce++;
        rc = lua_pcall(vm->L, nargs, nresults, 0);
        vm->enforce--;
        if (rc != 0) {
            af__vm_fault_from(vm, vm->L, fault);
            lua_pop(vm->L, 1);
            rc = cur->killed ? AF_EBUDGET : AF_ERUNTIME;
        }
    }
    af__vm_leave(vm, prev);
    return rc;
}

void af__vm_push_runtime(af_vm_t *vm, const char *name) {
    lua_rawgeti(vm->L, LUA_REGISTRYINDEX, vm->ref_runtime);
    lua_getfield(vm->L, -1, name);
    lua_remove(vm->L, -2);
}

/* ---- agentflow.host: the functions step code reaches through the agentflow module ---- */

static int host_now(lua_State *L) {
    lua_pushnumber(L, (lua_Number)af_wall_ms());
    return 1;
}

static int host_log(lua_State *L) {
    af_vm_t *vm = vm_of(L);
    const char *line = luaL_checkstring(L, 1);
    if (vm->opts.log) {
        vm->opts.log(af__vm_owner(vm), af__task_step(L), line);
    }
    return 0;
}

static int host_secret(lua_State *L) {
    af_vm_t *vm = vm_of(L);
    const char *name = luaL_checkstring(L, 1);
    if (af__task_step(L) == NULL && vm->resolving == 0) {
        return luaL_error(L, "secret '%s': secrets are only available when a step runs", name);
    }
    const char *value = vm->opts.secret ? vm->opts.secret(af__vm_owner(vm), name) : NULL;
    if (value == NULL) {
        lua_newtable(L);
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "__af_error");
        lua_pushliteral(L, "SECRET_MISSING");
        lua_setfield(L, -2, "code");
        lua_pushfstring(L, "secret '%s' is not set", name);
        lua_setfield(L, -2, "message");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "retryable");
        return lua_error(L);
    }
    lua_pushstring(L, value);
    return 1;
}

/* A call record for host services used from step code: ids, log, trace, secrets. */
static int step_call(lua_State *L, af_node_call_t *call, const char *what) {
    af_vm_t *vm = vm_of(L);
    memset(call, 0, sizeof *call);
    call->step = af__task_step(L);
    if (call->step == NULL || vm->opts.prepare_call == NULL) {
        return luaL_error(L, "%s is only available when a step runs", what);
    }
    call->attempt = af__task_attempt(L);
    call->loop = vm->loop;
    call->vm = vm;
    vm->opts.prepare_call(af__vm_owner(vm), call);
    return 0;
}

static json_t *arg_json(lua_State *L, int idx, const char *what) {
    json_t *j;
    af_error_t err;
    if (lua_isnoneornil(L, idx)) {
        return json_object();
    }
    if (af_lua_to_json(L, idx, AF_JSON_MAX_DEPTH, &j, &err) != 0) {
        luaL_error(L, "%s: %s", what, err.msg);
    }
    return j;
}

static int host_trace(lua_State *L) {
    af_node_call_t call;
    const char *kind = luaL_checkstring(L, 1);
    step_call(L, &call, "af.trace");
    json_t *data = arg_json(L, 2, "af.trace");
    if (call.trace) {
        call.trace(&call, kind, data);
    } else {
        json_decref(data);
    }
    return 0;
}

static int host_emit(lua_State *L) {
    af_node_call_t call;
    const char *type = luaL_checkstring(L, 1);
    step_call(L, &call, "af.emit");
    json_t *data = arg_json(L, 2, "af.emit");
    int rc = af_event_emit(&call, type, data);
    json_decref(data);
    if (rc == AF_ELIMIT) {
        return luaL_error(L,
                          "af.emit: '%s' not published: the chain of events that started this "
                          "execution is at the depth limit (events.max_depth)",
                          type);
    }
    if (rc == AF_EINVAL) {
        return luaL_error(L, "af.emit: '%s' is not an event type (dot-separated names)", type);
    }
    lua_pushboolean(L, rc == 0);
    return 1;
}

static int host_state_get(lua_State *L) {
    af_node_call_t call;
    const char *key = luaL_checkstring(L, 1);
    step_call(L, &call, "af.state.get");
    char *value = NULL;
    if (af_state_get(AF_SCOPE_WORKFLOW, call.workflow, key, &value) != 0) {
        lua_pushnil(L);
        return 1;
    }
    af_error_t err;
    json_t *j = af_json_loads(value, strlen(value), AF_JSON_MAX_DEPTH, &err);
    free(value);
    if (j == NULL || af_lua_push_json(L, j, AF_JSON_MAX_DEPTH) != 0) {
        lua_pushnil(L);
    }
    json_decref(j);
    return 1;
}

static int host_state_set(lua_State *L) {
    af_node_call_t call;
    const char *key = luaL_checkstring(L, 1);
    double ttl = luaL_optnumber(L, 3, 0);
    step_call(L, &call, "af.state.set");
    char *text = NULL;
    if (!lua_isnil(L, 2)) {
        json_t *j = arg_json(L, 2, "af.state.set");
        text = af_json_dumps(j, 0);
        json_decref(j);
    }
    int rc = af_state_set(AF_SCOPE_WORKFLOW, call.workflow, key, text, ttl > 0 ? (uint64_t)ttl : 0);
    free(text);
    if (rc != 0) {
        return luaL_error(L, "af.state.set: the state service is not available");
    }
    return 0;
}

static int host_usage(lua_State *L) {
    af_vm_t *vm = vm_of(L);
    double tokens = luaL_optnumber(L, 1, 0), cost = luaL_optnumber(L, 2, 0), tt = 0, tc = 0;
    if (vm->opts.usage) {
        vm->opts.usage(af__vm_owner(vm), tokens, cost, &tt, &tc);
    }
    lua_pushnumber(L, tt);
    lua_pushnumber(L, tc);
    return 2;
}

static int host_schema_validate(lua_State *L) {
    json_t *schema = arg_json(L, 1, "af.schema.validate (schema)");
    json_t *value = arg_json(L, 2, "af.schema.validate (value)");
    af_error_t err;
    af_schema_t *s = af_schema_compile(schema, &err);
    int ok = s && af_schema_validate(s, value, 3, &err) == 0;
    af_schema_free(s);
    json_decref(schema);
    json_decref(value);
    lua_pushboolean(L, ok);
    if (ok) {
        return 1;
    }
    lua_pushstring(L, err.msg);
    return 2;
}

/* host.node_ports(type): the ports a registered node type declares (a list), or nil. */
static int host_node_ports(lua_State *L) {
    const af_nodedef_t *def = af_registry_find(luaL_checkstring(L, 1));
    if (def == NULL || def->ports == NULL) {
        return 0;
    }
    lua_newtable(L);
    for (int i = 0; def->ports[i]; i++) {
        lua_pushstring(L, def->ports[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int host_in_step(lua_State *L) {
    lua_pushboolean(L, af__task_step(L) != NULL);
    return 1;
}

static int host_setting(lua_State *L) {
    af_vm_t *vm = vm_of(L);
    const char *name = luaL_checkstring(L, 1);
    const char *value = vm->opts.setting ? vm->opts.setting(af__vm_owner(vm), name) : NULL;
    if (value == NULL) {
        return 0;
    }
    lua_pushstring(L, value);
    return 1;
}

static int host_killed(lua_State *L) {
    lua_pushboolean(L, af__vm_cur(vm_of(L))->killed);
    return 1;
}

static int host_json_encode(lua_State *L) {
    json_t *j;
    af_error_t err;
    luaL_checkany(L, 1);
    if (af_lua_to_json(L, 1, AF_JSON_MAX_DEPTH, &j, &err) != 0) {
        return luaL_error(L, "af.json.encode: %s", err.msg);
    }
    char *text = af_json_dumps(j, lua_toboolean(L, 2) ? AF_JSON_PRETTY : 0);
    json_decref(j);
    if (text == NULL) {
        return luaL_error(L, "af.json.encode: out of memory");
    }
    lua_pushstring(L, text);
    free(text);
    return 1;
}

static int host_json_decode(lua_State *L) {
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    af_error_t err;
    json_t *j = af_json_loads(text, len, AF_JSON_MAX_DEPTH, &err);
    if (j == NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "invalid JSON: %s", err.msg);
        return 2;
    }
    int rc = af_lua_push_json(L, j, AF_JSON_MAX_DEPTH);
    json_decref(j);
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushstring(L, "JSON nested too deeply");
        return 2;
    }
    return 1;
}

static int open_host(lua_State *L) {
    af_vm_t *vm = vm_of(L);
    static const luaL_Reg fns[] = {{"now", host_now},
                                   {"log", host_log},
                                   {"secret", host_secret},
                                   {"killed", host_killed},
                                   {"setting", host_setting},
                                   {"in_step", host_in_step},
                                   {"node_ports", host_node_ports},
                                   {"raw_plugin", af__host_raw_plugin},
                                   {"trace", host_trace},
                                   {"usage", host_usage},
                                   {"schema_validate", host_schema_validate},
                                   {"emit", host_emit},
                                   {"state_get", host_state_get},
                                   {"state_set", host_state_set},
                                   {"json_encode", host_json_encode},
                                   {"json_decode", host_json_decode},
                                   {NULL, NULL}};
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    luaL_getmetatable(L, AF_LUA_ARRAY_MT);
    lua_setfield(L, -2, "array_mt");
    luaL_getmetatable(L, AF_LUA_OBJECT_MT);
    lua_setfield(L, -2, "object_mt");
    af__task_register(vm, L);
    return 1;
}

/* Bytecode of the embedded modules, compiled by the first VM of the process: every later VM
 * loads it instead of parsing the source again (most of what making a VM costs). */
#define MAX_MODULES 32
static struct {
    const struct af_embedded_lua *module;
    af_buf_t bytecode;
} compiled[MAX_MODULES];
static int ncompiled;
static pthread_mutex_t compiled_lock = PTHREAD_MUTEX_INITIALIZER;

static int dump_writer(lua_State *L, const void *p, size_t size, void *ud) {
    (void)L;
    return af_buf_add(ud, p, size);
}

static int load_module(lua_State *L, const struct af_embedded_lua *m) {
    pthread_mutex_lock(&compiled_lock);
    for (int i = 0; i < ncompiled; i++) {
        if (compiled[i].module == m) {
            af_buf_t *bc = &compiled[i].bytecode;
            pthread_mutex_unlock(&compiled_lock);
            return luaL_loadbuffer(L, bc->data, bc->len, m->chunk);
        }
    }
    int rc = luaL_loadbuffer(L, m->src, m->len, m->chunk);
    if (rc == 0 && ncompiled < MAX_MODULES) {
        af_buf_t bc = {0};
        if (lua_dump(L, dump_writer, &bc) == 0 && bc.len > 0) {
            compiled[ncompiled].module = m;
            compiled[ncompiled++].bytecode = bc;
        } else {
            af_buf_free(&bc);
        }
    }
    pthread_mutex_unlock(&compiled_lock);
    return rc;
}

static int load_embedded(lua_State *L) {
    const struct af_embedded_lua *m = lua_touserdata(L, lua_upvalueindex(1));
    if (load_module(L, m) != 0) {
        return lua_error(L);
    }
    lua_pushstring(L, m->name);
    lua_call(L, 1, 1);
    return 1;
}

static void preload_modules(lua_State *L) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    for (const struct af_embedded_lua *m = af_embedded_lua; m->name; m++) {
        lua_pushlightuserdata(L, (void *)m);
        lua_pushcclosure(L, load_embedded, 1);
        lua_setfield(L, -2, m->name);
    }
    lua_pushcfunction(L, open_host);
    lua_setfield(L, -2, "agentflow.host");
    lua_pop(L, 2);
}

static int require_ref(af_vm_t *vm, const char *name, af_error_t *err) {
    lua_State *L = vm->L;
    lua_getglobal(L, "require");
    lua_pushstring(L, name);
    if (lua_pcall(L, 1, 1, 0) != 0) {
        af_error_set(err, AF_ERUNTIME, "loading %s: %s", name, lua_tostring(L, -1));
        lua_pop(L, 1);
        return LUA_NOREF;
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

static int setup(af_vm_t *vm, af_error_t *err) {
    lua_State *L = vm->L;
    luaL_openlibs(L);
    /* Compiled traces do not run hooks; the interpreter keeps the budget exact. */
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    af_lua_json_init(L);
    lua_newtable(L);
    vm->ref_tasks = luaL_ref(L, LUA_REGISTRYINDEX);
    preload_modules(L);
    vm->ref_runtime = require_ref(vm, "agentflow.runtime", err);
    int sandbox = require_ref(vm, "agentflow.sandbox", err);
    if (vm->ref_runtime == LUA_NOREF || sandbox == LUA_NOREF) {
        return AF_ERUNTIME;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, sandbox);
    lua_getfield(L, -1, "harden");
    lua_call(L, 0, 0);
    lua_getfield(L, -1, "new");
    lua_call(L, 0, 1);
    vm->ref_sandbox = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, sandbox);
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
    return 0;
}

af_vm_t *af_vm_new(const af_vm_opts_t *opts, af_error_t *err) {
    af_vm_t *vm = calloc(1, sizeof *vm);
    if (vm == NULL) {
        af_error_set(err, AF_ENOMEM, "out of memory");
        return NULL;
    }
    vm->opts = *opts;
    vm->loop = opts->loop;
    /* loading a script has the budgets of one execution */
    vm->load.instr_limit =
        opts->max_instructions > 0 ? opts->max_instructions : AF_DEFAULT_MAX_INSTRUCTIONS;
    vm->load.mem_limit = opts->max_memory > 0 ? opts->max_memory : AF_DEFAULT_MAX_MEMORY;
    vm->load.owner = opts->ud;
    vm->load.state_ref = LUA_NOREF;
    vm->ref_wf = LUA_NOREF;
    vm->L = luaL_newstate();
    if (vm->L == NULL) {
        af_error_set(err, AF_ENOMEM, "cannot create a Lua state");
        free(vm);
        return NULL;
    }
    vm->base_alloc = lua_getallocf(vm->L, &vm->base_ud);
    vm->mem_used =
        (size_t)lua_gc(vm->L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(vm->L, LUA_GCCOUNTB, 0);
    lua_setallocf(vm->L, vm_alloc, vm);
    if (setup(vm, err) != 0) {
        af_vm_free(vm);
        return NULL;
    }
    return vm;
}

void af_vm_free(af_vm_t *vm) {
    if (vm == NULL) {
        return;
    }
    af__task_cancel_all(vm);
    lua_close(vm->L);
    free(vm->file);
    free(vm->dir);
    free(vm);
}

/* ---- execution state ---- */

static int push_json_or_nil(lua_State *L, json_t *j) {
    if (j == NULL) {
        lua_pushnil(L);
        return 0;
    }
    return af_lua_push_json(L, j, AF_JSON_MAX_DEPTH);
}

/* The workflow's limits, capped by the operator's (the VM's options). */
static void run_limits(af_vm_t *vm, af_vm_run_t *run, const af_graph_t *g) {
    int64_t ins = g->max_instructions;
    size_t mem = g->max_memory;
    if (vm->opts.max_instructions > 0 && (ins == 0 || ins > vm->opts.max_instructions)) {
        ins = vm->opts.max_instructions;
    }
    if (vm->opts.max_memory > 0 && (mem == 0 || mem > vm->opts.max_memory)) {
        mem = vm->opts.max_memory;
    }
    run->instr_limit = ins > 0 ? ins : AF_DEFAULT_MAX_INSTRUCTIONS;
    run->mem_limit = mem > 0 ? mem : AF_DEFAULT_MAX_MEMORY;
}

int af_vm_begin(af_vm_t *vm, af_vm_run_t *run, const af_graph_t *g, json_t *input,
                const char *execution_id, const char *started_at, af_error_t *err) {
    lua_State *L = vm->L;
    run->instr_used = 0;
    run->killed = 0;
    run->state_ref = LUA_NOREF;
    run_limits(vm, run, g);
    if (vm->mem_base == 0) {
        vm->mem_base = vm->mem_used; /* what the loaded workflow holds, shared by its runs */
    }
    lua_newtable(L);
    if (push_json_or_nil(L, input) != 0) {
        lua_pop(L, 1);
        return af_error_set(err, AF_ELIMIT, "input is nested too deeply");
    }
    lua_setfield(L, -2, "trigger");
    lua_newtable(L);
    lua_setfield(L, -2, "steps");
    if (g->vars) {
        if (af_lua_push_json(L, g->vars, AF_JSON_MAX_DEPTH) != 0) {
            lua_pop(L, 1);
            return af_error_set(err, AF_ELIMIT, "vars are nested too deeply");
        }
    } else {
        lua_newtable(L);
    }
    lua_setfield(L, -2, "vars");
    lua_newtable(L);
    lua_pushstring(L, execution_id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, g->name);
    lua_setfield(L, -2, "workflow");
    lua_pushstring(L, started_at);
    lua_setfield(L, -2, "started_at");
    lua_setfield(L, -2, "execution");
    run->state_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    run->prev = NULL;
    run->next = vm->runs;
    if (vm->runs) {
        vm->runs->prev = run;
    }
    vm->runs = run;
    vm->runs_mem += run->mem_limit;
    return 0;
}

void af_vm_end(af_vm_t *vm, af_vm_run_t *run) {
    if (run->state_ref == LUA_NOREF) {
        return;
    }
    af__task_cancel_run(vm, run);
    luaL_unref(vm->L, LUA_REGISTRYINDEX, run->state_ref);
    run->state_ref = LUA_NOREF;
    if (run->prev) {
        run->prev->next = run->next;
    } else {
        vm->runs = run->next;
    }
    if (run->next) {
        run->next->prev = run->prev;
    }
    vm->runs_mem -= run->mem_limit;
    if (vm->cur == run) {
        vm->cur = NULL;
    }
}

int af_vm_set_output(af_vm_t *vm, af_vm_run_t *run, const char *step, json_t *output,
                     af_error_t *err) {
    lua_State *L = vm->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, run->state_ref);
    lua_getfield(L, -1, "steps");
    if (push_json_or_nil(L, output) != 0) {
        lua_pop(L, 2);
        return af_error_set(err, AF_ELIMIT, "output of step '%s' is nested too deeply", step);
    }
    lua_setfield(L, -2, step);
    lua_pop(L, 2);
    return 0;
}

/* Pushes runtime.ctx(state, attempt, error_info). */
int af__vm_push_ctx(af_vm_t *vm, lua_State *L, af_vm_run_t *run, int attempt, json_t *error_info) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_runtime);
    lua_getfield(L, -1, "ctx");
    lua_remove(L, -2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, run->state_ref);
    lua_pushinteger(L, attempt);
    push_json_or_nil(L, error_info);
    lua_call(L, 3, 1);
    return 0;
}

/* Calls the function under nargs arguments on the stack to the end (it cannot wait) and converts
 * its one result to JSON (*out, new). A result that does not convert is a fault with `code`,
 * "<what> cannot be converted to JSON: ...". Returns 0 or a negative code with fault. */
static int call_to_json(af_vm_t *vm, af_vm_run_t *run, int nargs, const char *code,
                        const char *what, json_t **out, af_fault_t *fault) {
    vm->resolving++;
    int rc = af__vm_pcall(vm, run, nargs, 1, fault);
    vm->resolving--;
    if (rc != 0) {
        return rc;
    }
    af_error_t err;
    rc = af_lua_to_json(vm->L, -1, AF_JSON_MAX_DEPTH, out, &err);
    lua_pop(vm->L, 1);
    if (rc != 0) {
        af_fault_set(fault, 0, code, "%s cannot be converted to JSON: %s", what, err.msg);
    }
    return rc;
}

int af_vm_resolve(af_vm_t *vm, af_vm_run_t *run, int spec_ref, int attempt, json_t *error_info,
                  json_t **config, af_fault_t *fault) {
    lua_State *L = vm->L;
    *config = NULL;
    af__vm_push_runtime(vm, "resolve");
    lua_rawgeti(L, LUA_REGISTRYINDEX, spec_ref);
    lua_getfield(L, -1, "config");
    lua_remove(L, -2);
    af__vm_push_ctx(vm, L, run, attempt, error_info);
    return call_to_json(vm, run, 2, "CONFIG", "config", config, fault);
}

int af_vm_call_trigger(af_vm_t *vm, const af_graph_t *g, int trigger, const char *field,
                       json_t *arg, json_t **out, af_fault_t *fault) {
    lua_State *L = vm->L;
    *out = NULL;
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_wf);
    lua_getfield(L, -1, "triggers");
    lua_rawgeti(L, -1, trigger + 1);
    lua_getfield(L, -1, "config");
    const char *dot = strchr(field, '.');
    if (dot) { /* "response.fn": one table level */
        lua_pushlstring(L, field, (size_t)(dot - field));
        lua_gettable(L, -2);
        lua_replace(L, -2);
        field = dot + 1;
        if (!lua_istable(L, -1)) {
            lua_pop(L, 4);
            return 0;
        }
    }
    lua_getfield(L, -1, field);
    lua_replace(L, -5);
    lua_pop(L, 3);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    if (push_json_or_nil(L, arg) != 0) {
        lua_pop(L, 1);
        af_fault_set(fault, 0, "INPUT", "the request is nested too deeply");
        return AF_ELIMIT;
    }
    af_vm_run_t run = {.state_ref = LUA_NOREF};
    run_limits(vm, &run, g);
    vm->runs_mem += run.mem_limit; /* its share of the VM's memory while it runs */
    int rc = call_to_json(vm, &run, 1, "OUTPUT", "the function's result", out, fault);
    vm->runs_mem -= run.mem_limit;
    return rc != 0 ? rc : 1;
}

int af_vm_output(af_vm_t *vm, af_vm_run_t *run, json_t **out, af_fault_t *fault) {
    lua_State *L = vm->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_wf);
    lua_getfield(L, -1, "options");
    lua_getfield(L, -1, "output");
    lua_remove(L, -2);
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    af__vm_push_ctx(vm, L, run, 1, NULL);
    int rc = call_to_json(vm, run, 1, "OUTPUT", "workflow output", out, fault);
    return rc != 0 ? rc : 1;
}

/* ---- masking ---- */

char *af_mask_text(const char *text, const char *const *secrets, int n) {
    af_buf_t b = {0};
    const char *p = text;
    while (*p) {
        int hit = -1;
        size_t hitlen = 0;
        for (int i = 0; i < n; i++) {
            size_t len = strlen(secrets[i]);
            if (len > 0 && len > hitlen && strncmp(p, secrets[i], len) == 0) {
                hit = i;
                hitlen = len;
            }
        }
        if (hit >= 0) {
            af_buf_add(&b, "***", 3);
            p += hitlen;
        } else {
            af_buf_add(&b, p, 1);
            p++;
        }
    }
    if (b.data == NULL) {
        af_buf_add(&b, "", 0);
    }
    return b.data;
}
