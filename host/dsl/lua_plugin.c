/* lua_plugin.c -- plugins written in Lua: checked at load in a scratch VM (agentflow.plugin),
 * recorded and registered like shared-object plugins; each node call runs the plugin's execute
 * as a coroutine task in the execution's VM, where it waits through the same host functions. */
#include "dsl/vm_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/jsonschema.h"
#include "core/lua_json.h"
#include "plugin/plugin.h"

#define PLUGINS_KEY "agentflow.loaded_plugins"

typedef struct luaplug_s {
    char *name, *file, *source;
    size_t len;
    af_buf_t bytecode; /* compiled by the first VM that loads it: later ones skip the parser */
} luaplug_t;

static int dump_writer(lua_State *L, const void *p, size_t size, void *ud) {
    (void)L;
    return af_buf_add(ud, p, size);
}

typedef struct luaplug_type_s {
    af_nodedef_t def; /* first: the registry hands it back as the call's type */
    luaplug_t *plugin;
    char *name, *description, *schema;
    char **ports;
} luaplug_type_t;

static int luaplug_execute(af_node_call_t *call);

/* Pushes the plugin's table in this VM, loading the plugin on first use. */
static int push_plugin(af_vm_t *vm, lua_State *L, luaplug_t *p, af_fault_t *fault) {
    lua_getfield(L, LUA_REGISTRYINDEX, PLUGINS_KEY);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, PLUGINS_KEY);
    }
    lua_getfield(L, -1, p->name);
    if (!lua_isnil(L, -1)) {
        lua_remove(L, -2);
        return 0;
    }
    lua_pop(L, 1);
    char chunk[1100];
    snprintf(chunk, sizeof chunk, "@%s", p->file);
    int rc = p->bytecode.len > 0 ? luaL_loadbuffer(L, p->bytecode.data, p->bytecode.len, chunk)
                                 : luaL_loadbuffer(L, p->source, p->len, chunk);
    if (rc == 0 && p->bytecode.len == 0 && lua_dump(L, dump_writer, &p->bytecode) != 0) {
        af_buf_free(&p->bytecode);
    }
    if (rc != 0) {
        af_fault_set(fault, 0, "PLUGIN", "%s", lua_tostring(L, -1));
        lua_pop(L, 2);
        return AF_EINVAL;
    }
    lua_getglobal(L, "require"); /* a fresh sandbox per plugin: its globals are its own */
    lua_pushliteral(L, "agentflow.sandbox");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "new");
    lua_call(L, 0, 1);
    lua_remove(L, -2);
    lua_setfenv(L, -2);
    vm->enforce++;
    rc = lua_pcall(L, 0, 1, 0);
    vm->enforce--;
    if (rc != 0) {
        af__vm_fault_from(vm, L, fault);
        lua_pop(L, 2);
        return AF_EINVAL;
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, p->name);
    lua_remove(L, -2);
    return 0;
}

/* host.raw_plugin(type): the plugin table of a raw-config Lua node type (loaded into this VM),
 * or nil; lets step code run such a type in its own coroutine (af.run, foreach bodies). */
int af__host_raw_plugin(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    const af_nodedef_t *def = af_registry_find(name);
    if (def == NULL || def->execute != luaplug_execute || !(def->flags & AF_NODE_RAW)) {
        lua_pushnil(L);
        return 1;
    }
    void *ud;
    lua_getallocf(L, &ud);
    af_fault_t fault;
    if (push_plugin(ud, L, ((const luaplug_type_t *)def)->plugin, &fault) != 0) {
        return luaL_error(L, "%s", fault.message);
    }
    return 1;
}

static int luaplug_execute(af_node_call_t *call) {
    const luaplug_type_t *t = (const luaplug_type_t *)call->type;
    af_vm_t *vm = call->vm;
    af_fault_t fault;
    if (vm == NULL || call->vm_run == NULL) {
        af_node_failf(call, 0, "PLUGIN", "Lua node type '%s' needs an execution", t->name);
        return AF_NODE_DONE;
    }
    lua_State *L = vm->L;
    af__vm_push_runtime(vm, "run_plugin_node");
    if (push_plugin(vm, L, t->plugin, &fault) != 0) {
        lua_pop(L, 1);
        af_node_fail(call, &fault);
        return AF_NODE_DONE;
    }
    lua_pushstring(L, t->name);
    if (t->def.flags & AF_NODE_RAW) { /* the step's config as declared: functions kept */
        if (call->spec_ref == LUA_NOREF || call->spec_ref == 0) {
            lua_pop(L, 3);
            af_node_failf(call, 0, "PLUGIN", "'%s' runs only as a step (not through af.run)",
                          t->name);
            return AF_NODE_DONE;
        }
        lua_rawgeti(L, LUA_REGISTRYINDEX, call->spec_ref);
        lua_getfield(L, -1, "config");
        lua_remove(L, -2);
    } else if (af_lua_push_json(L, call->config, AF_JSON_MAX_DEPTH) != 0) {
        lua_pushnil(L);
    }
    af_vm_run_t *run = call->vm_run;
    af__vm_push_ctx(vm, L, run, call->attempt, call->error_info);
    af_task_t *task;
    int rc = af__task_start(vm, run, 4, call->step, call->attempt, af_task_complete_call, call,
                            &task, &fault);
    return af_task_bind_call(call, rc, task, &fault);
}

/* ---- loading ---- */

static const char *jstr(json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* A refusal names the file once (Lua's own messages may already start with it). */
static void refuse(af_error_t *err, const char *path, const char *msg) {
    if (strncmp(msg, path, strlen(path)) == 0) {
        af_error_set(err, AF_EINVAL, "%s", msg);
    } else {
        af_error_set(err, AF_EINVAL, "%s: %s", path, msg);
    }
}

/* Evaluates the file in a scratch VM and returns the checked description (new) or NULL. */
static json_t *describe(const char *path, const char *src, size_t len, af_error_t *err) {
    af_vm_opts_t vo = {0};
    af_vm_t *vm = af_vm_new(&vo, err);
    if (vm == NULL) {
        return NULL;
    }
    luaplug_t tmp = {.name = "(checking)", .file = (char *)path, .source = (char *)src, .len = len};
    af_fault_t fault;
    json_t *d = NULL;
    lua_State *L = vm->L;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "agentflow.plugin");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "check");
    lua_remove(L, -2);
    if (push_plugin(vm, L, &tmp, &fault) != 0) {
        lua_pop(L, 1);
        refuse(err, path, fault.message);
    } else if (af__vm_pcall(vm, NULL, 1, 1, &fault) != 0) {
        refuse(err, path, fault.message);
    } else {
        af_error_t jerr;
        if (af_lua_to_json(L, -1, AF_JSON_MAX_DEPTH, &d, &jerr) != 0) {
            af_error_set(err, AF_EINVAL, "%s: %s", path, jerr.msg);
        }
        lua_pop(L, 1);
    }
    af_vm_free(vm);
    af_buf_free(&tmp.bytecode);
    return d;
}

static int refuse_duplicates(const char *path, json_t *nodes, af_error_t *err) {
    size_t i, k;
    json_t *n, *m;
    json_array_foreach(nodes, i, n) {
        json_t *schema = json_object_get(n, "schema");
        af_error_t serr;
        af_schema_t *compiled = schema ? af_schema_compile(schema, &serr) : NULL;
        if (schema && compiled == NULL) {
            return af_error_set(err, AF_EINVAL, "%s: node type '%s' has an invalid schema: %s",
                                path, jstr(n, "name"), serr.msg);
        }
        af_schema_free(compiled);
        if (af_registry_find(jstr(n, "name")) || af_trigger_find(jstr(n, "name"))) {
            return af_error_set(err, AF_EEXISTS,
                                "%s: duplicate type name '%s' (already registered)", path,
                                jstr(n, "name"));
        }
        json_array_foreach(nodes, k, m) {
            if (k < i && strcmp(jstr(n, "name"), jstr(m, "name")) == 0) {
                return af_error_set(err, AF_EEXISTS, "%s: duplicate type name '%s'", path,
                                    jstr(n, "name"));
            }
        }
    }
    return 0;
}

static void register_nodes(luaplug_t *p, json_t *nodes) {
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n) {
        luaplug_type_t *t = calloc(1, sizeof *t);
        t->plugin = p;
        t->name = strdup(jstr(n, "name"));
        t->description = strdup(jstr(n, "description"));
        json_t *schema = json_object_get(n, "schema");
        t->schema = schema ? af_json_dumps(schema, 0) : NULL;
        t->def.name = t->name;
        t->def.description = t->description;
        t->def.schema = t->schema;
        t->def.execute = luaplug_execute;
        t->def.cancel = af_task_cancel_call;
        t->def.plugin = p->name;
        t->def.flags = json_is_true(json_object_get(n, "raw_config")) ? AF_NODE_RAW : 0;
        json_t *ports = json_object_get(n, "ports");
        if (json_array_size(ports) > 0) {
            t->ports = calloc(json_array_size(ports) + 1, sizeof *t->ports);
            size_t k;
            json_t *pv;
            json_array_foreach(ports, k, pv) {
                t->ports[k] = strdup(json_string_value(pv) ? json_string_value(pv) : "");
            }
            t->def.ports = (const char *const *)t->ports;
        }
        af_registry_add(&t->def, NULL);
        af_plugin_record_type(t->name, 0);
    }
}

/* ---- trigger types: start(config, fire) runs as a task in a VM of the trigger's own ---- */

static uv_loop_t *trigger_loop;

void af_lua_plugins_set_loop(uv_loop_t *loop) {
    trigger_loop = loop;
}

typedef struct luatrig_s {
    af_triggerdef_t def; /* first */
    luaplug_t *plugin;
    char *name, *description, *schema;
} luatrig_t;

typedef struct luatrig_inst_s {
    af_vm_t *vm;
    af_vm_run_t run;
    af_graph_t *g;
    int (*fire)(void *ud, json_t *input);
    void *ud;
} luatrig_inst_t;

static int trig_fire(lua_State *L) {
    luatrig_inst_t *inst = lua_touserdata(L, lua_upvalueindex(1));
    json_t *input;
    af_error_t err;
    if (af_lua_to_json(L, 1, AF_JSON_MAX_DEPTH, &input, &err) != 0) {
        return luaL_error(L, "fire: %s", err.msg);
    }
    int rc = inst->fire(inst->ud, input);
    json_decref(input);
    lua_pushboolean(L, rc == 0);
    return 1;
}

static void trig_ended(void *ud, json_t *output, const char *port, const af_fault_t *fault) {
    luatrig_inst_t *inst = ud;
    (void)port;
    json_decref(output);
    if (fault) {
        af_log(AF_LEVEL_WARN, "trigger '%s' stopped: %s: %s", inst->g->name, fault->code,
               fault->message);
    }
}

static int luatrig_start(const af_triggerdef_t *def, json_t *config,
                         int (*fire)(void *ud, json_t *input), void *ud, void **instance,
                         char *errbuf, size_t errlen) {
    const luatrig_t *t = (const luatrig_t *)def;
    af_error_t err;
    af_fault_t fault;
    luatrig_inst_t *inst = calloc(1, sizeof *inst);
    af_vm_opts_t vo = {.loop = trigger_loop};
    if (inst == NULL || trigger_loop == NULL || (inst->vm = af_vm_new(&vo, &err)) == NULL) {
        snprintf(errbuf, errlen, "cannot start a VM for trigger '%s'", t->name);
        free(inst);
        return AF_EINVAL;
    }
    inst->fire = fire;
    inst->ud = ud;
    inst->g = af_graph_new(t->name);
    inst->run.owner = NULL;
    lua_State *L = inst->vm->L;
    af_vm_begin(inst->vm, &inst->run, inst->g, NULL, "trigger", "", &err);
    af__vm_push_runtime(inst->vm, "run_plugin_trigger");
    if (push_plugin(inst->vm, L, t->plugin, &fault) != 0) {
        snprintf(errbuf, errlen, "%s", fault.message);
        lua_pop(L, 1);
        af_vm_end(inst->vm, &inst->run);
        af_vm_free(inst->vm);
        af_graph_free(inst->g);
        free(inst);
        return AF_EINVAL;
    }
    lua_pushstring(L, t->name);
    if (af_lua_push_json(L, config, AF_JSON_MAX_DEPTH) != 0) {
        lua_pushnil(L);
    }
    lua_pushlightuserdata(L, inst);
    lua_pushcclosure(L, trig_fire, 1);
    af_task_t *task;
    if (af__task_start(inst->vm, &inst->run, 4, t->name, 1, trig_ended, inst, &task, &fault) < 0) {
        snprintf(errbuf, errlen, "%s", fault.message);
    }
    *instance = inst;
    return 0;
}

static void luatrig_stop(const af_triggerdef_t *def, void *instance) {
    (void)def;
    luatrig_inst_t *inst = instance;
    af_vm_end(inst->vm, &inst->run); /* cancels the start task: no fire after this */
    af_vm_free(inst->vm);
    af_graph_free(inst->g);
    free(inst);
}

static void register_trigger(luaplug_t *p, json_t *d) {
    luatrig_t *t = calloc(1, sizeof *t);
    t->plugin = p;
    t->name = strdup(jstr(d, "name"));
    t->description = strdup(jstr(d, "description"));
    json_t *schema = json_object_get(d, "schema");
    t->schema = schema ? af_json_dumps(schema, 0) : NULL;
    t->def.name = t->name;
    t->def.description = t->description;
    t->def.schema = t->schema;
    t->def.plugin = p->name;
    t->def.start = luatrig_start;
    t->def.stop = luatrig_stop;
    af_trigger_register(&t->def, NULL);
    af_plugin_record_type(t->name, 1);
}

int af_lua_plugin_load(const char *path, af_error_t *err) {
    char *src;
    size_t len;
    int rc = af_read_file(path, AF_MAX_SCRIPT_BYTES, &src, &len, err);
    if (rc != 0) {
        return rc;
    }
    json_t *d = describe(path, src, len, err);
    if (d == NULL) {
        free(src);
        return err ? err->code : AF_EINVAL;
    }
    json_t *nodes = json_object_get(d, "nodes");
    rc = refuse_duplicates(path, nodes, err);
    if (rc == 0) {
        rc = refuse_duplicates(path, json_object_get(d, "triggers"), err);
    }
    if (rc == 0) {
        rc = af_plugin_record(jstr(d, "name"), jstr(d, "version"), jstr(d, "description"), path,
                              "lua", err);
    }
    if (rc != 0) {
        json_decref(d);
        free(src);
        return rc;
    }
    luaplug_t *p = calloc(1, sizeof *p);
    p->name = strdup(jstr(d, "name"));
    p->file = strdup(path);
    p->source = src;
    p->len = len;
    register_nodes(p, nodes);
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(d, "triggers"), i, t) {
        register_trigger(p, t);
    }
    json_decref(d);
    return 0;
}
