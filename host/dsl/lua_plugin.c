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

static int (*luaplug_execute_ref(void))(af_node_call_t *);

/* Pushes the plugin's table in this VM, loading the plugin on first use. */
static int push_plugin(af_vm_t *vm, lua_State *L, const luaplug_t *p, af_fault_t *fault) {
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
    luaplug_t *mp = (luaplug_t *)p;
    int rc = mp->bytecode.len > 0 ? luaL_loadbuffer(L, mp->bytecode.data, mp->bytecode.len, chunk)
                                  : luaL_loadbuffer(L, p->source, p->len, chunk);
    if (rc == 0 && mp->bytecode.len == 0 && lua_dump(L, dump_writer, &mp->bytecode) != 0) {
        af_buf_free(&mp->bytecode);
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
    if (def == NULL || def->execute != luaplug_execute_ref() || !(def->flags & AF_NODE_RAW)) {
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

static void on_done(void *ud, json_t *output, const char *port, const af_fault_t *fault) {
    af_node_call_t *call = ud;
    call->node_data = NULL;
    if (fault) {
        af_node_fail(call, fault);
    } else {
        af_node_succeed(call, output, port);
    }
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
    int rc = af__task_start(vm, run, 4, call->step, call->attempt, on_done, call, &task, &fault);
    if (rc < 0) {
        af_node_fail(call, &fault);
        return AF_NODE_DONE;
    }
    if (rc == AF_NODE_PENDING) {
        call->node_data = task;
    }
    return rc;
}

static int (*luaplug_execute_ref(void))(af_node_call_t *) {
    return luaplug_execute;
}

static void luaplug_cancel(af_node_call_t *call) {
    if (call->node_data) {
        af_task_cancel(call->node_data);
        call->node_data = NULL;
    }
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
        t->def.cancel = luaplug_cancel;
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
        af_plugin_record_type(jstr(t, "name"), 1); /* served with the trigger system */
    }
    json_decref(d);
    return 0;
}
