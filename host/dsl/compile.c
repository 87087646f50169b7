/* compile.c -- evaluating a workflow script in the sandbox and compiling what it returns into
 * a graph. Every definition error carries file:line and the name at fault. */
#include "dsl/vm_internal.h"

#include <ctype.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/lua_json.h"
#include "bus/pattern.h"
#include "bus/predicate.h"
#include "plugin/plugin.h"
#include "triggers/schedule.h"

/* Splits a Lua message "file:12: text" into where and text. */
static int error_from_lua(af_error_t *err, int code, const char *msg) {
    const char *p = msg;
    while ((p = strchr(p, ':')) != NULL) {
        const char *q = p + 1;
        if (isdigit((unsigned char)*q)) {
            while (isdigit((unsigned char)*q)) {
                q++;
            }
            if (q[0] == ':' && q[1] == ' ') {
                char where[256];
                snprintf(where, sizeof where, "%.*s", (int)(q - msg), msg);
                return af_error_at(err, code, where, "%s", q + 2);
            }
        }
        p++;
    }
    return af_error_set(err, code, "%s", msg);
}

static const char *jstr(json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

/* A duration field: a string ("5s") or a number of milliseconds. 0 when absent. */
static int duration_of(json_t *v, const char *what, const char *where, int64_t *ms,
                       af_error_t *err) {
    *ms = 0;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (json_is_number(v) && json_number_value(v) >= 0) {
        *ms = (int64_t)json_number_value(v);
        return 0;
    }
    if (json_is_string(v) && af_duration_parse(json_string_value(v), ms) == 0) {
        return 0;
    }
    char *text = json_dumps(v, JSON_ENCODE_ANY);
    af_error_at(err, AF_EDEFINITION, where, "%s: invalid duration %s (use e.g. \"500ms\", \"5s\")",
                what, text ? text : "?");
    free(text);
    return AF_EDEFINITION;
}

static int retry_of(json_t *r, af_retry_t *out, const char *what, const char *where,
                    af_error_t *err) {
    const char *key;
    json_t *v;
    json_object_foreach(r, key, v) {
        if (strcmp(key, "attempts") && strcmp(key, "backoff") && strcmp(key, "initial") &&
            strcmp(key, "max") && strcmp(key, "non_retryable")) {
            return af_error_at(err, AF_EDEFINITION, where, "%s: unknown retry option '%s'", what,
                               key);
        }
    }
    json_t *a = json_object_get(r, "attempts");
    if (a) {
        if (!json_is_integer(a) || json_integer_value(a) < 1 || json_integer_value(a) > 100) {
            return af_error_at(err, AF_EDEFINITION, where,
                               "%s: retry.attempts must be an integer from 1 to 100", what);
        }
        out->attempts = (int)json_integer_value(a);
    }
    const char *b = jstr(r, "backoff");
    if (json_object_get(r, "backoff")) {
        if (b && strcmp(b, "exponential") == 0) {
            out->backoff = AF_BACKOFF_EXPONENTIAL;
        } else if (b && strcmp(b, "fixed") == 0) {
            out->backoff = AF_BACKOFF_FIXED;
        } else {
            return af_error_at(err, AF_EDEFINITION, where,
                               "%s: retry.backoff must be \"exponential\" or \"fixed\"", what);
        }
    }
    int64_t ms;
    if (duration_of(json_object_get(r, "initial"), what, where, &ms, err) != 0) {
        return AF_EDEFINITION;
    }
    if (ms > 0) {
        out->initial_ms = ms;
    }
    if (duration_of(json_object_get(r, "max"), what, where, &ms, err) != 0) {
        return AF_EDEFINITION;
    }
    if (ms > 0) {
        out->max_ms = ms;
    }
    json_t *nr = json_object_get(r, "non_retryable");
    if (nr) {
        if (!json_is_array(nr)) {
            return af_error_at(err, AF_EDEFINITION, where,
                               "%s: retry.non_retryable must be a list of error codes", what);
        }
        size_t n = json_array_size(nr);
        const char **codes = calloc(n + 1, sizeof *codes);
        for (size_t i = 0; i < n; i++) {
            codes[i] = json_string_value(json_array_get(nr, i));
            if (codes[i] == NULL) {
                free(codes);
                return af_error_at(err, AF_EDEFINITION, where,
                                   "%s: retry.non_retryable must hold strings", what);
            }
        }
        af_retry_set_non_retryable(out, codes, (int)n);
        free(codes);
    }
    return 0;
}

/* A schedule's config loads as the scheduler will load it (cron, time zone, window). */
static int check_schedule(json_t *c, const char *where, af_error_t *err) {
    int64_t ms;
    int rc = duration_of(json_object_get(c, "every"), "af.schedule: every", where, &ms, err);
    af_error_t e = {0};
    if (rc == 0 && af_schedule_check(c, &e) != 0) {
        rc = af_error_at(err, AF_EDEFINITION, where, "af.schedule: %s", e.msg);
    }
    return rc;
}

/* A poll's interval, jitter and limits are durations and counts the poller can use. */
static int check_poll(json_t *c, const char *where, af_error_t *err) {
    int64_t ms;
    json_t *max = json_object_get(c, "max_per");
    int rc = duration_of(json_object_get(c, "interval"), "af.poll: interval", where, &ms, err);
    if (rc == 0 && ms < 1000) {
        rc = af_error_at(err, AF_EDEFINITION, where, "af.poll: interval is at least 1s");
    }
    if (rc == 0 && json_object_get(c, "jitter")) {
        rc = duration_of(json_object_get(c, "jitter"), "af.poll: jitter", where, &ms, err);
    }
    if (rc == 0 && max &&
        (!json_is_object(max) || json_integer_value(json_object_get(max, "polls")) < 1 ||
         json_integer_value(json_object_get(max, "polls")) > 1000 ||
         duration_of(json_object_get(max, "period"), "af.poll: max_per.period", where, &ms, err))) {
        rc = af_error_at(err, AF_EDEFINITION, where,
                         "af.poll: max_per is { polls = 1..1000, period = DURATION }");
    }
    const char *key = jstr(c, "key"), *node = jstr(c, "node");
    if (rc == 0 && json_object_get(c, "key") && (key == NULL || *key == '\0')) {
        rc = af_error_at(err, AF_EDEFINITION, where, "af.poll: key is the name of an item field");
    }
    const af_nodedef_t *def = node ? af_registry_find(node) : NULL;
    af_error_t e = {0};
    if (rc == 0 && node && def == NULL) {
        rc = af_error_at(err, AF_EDEFINITION, where, "af.poll: unknown node type '%s'", node);
    } else if (rc == 0 && def && (def->flags & (AF_NODE_LUA | AF_NODE_RAW))) {
        rc = af_error_at(err, AF_EDEFINITION, where,
                         "af.poll: node type '%s' runs inside executions only", node);
    } else if (rc == 0 && def && af_node_check_config(def, json_object_get(c, "config"), &e)) {
        rc = af_error_at(err, AF_EDEFINITION, where, "af.poll: %s", e.msg);
    }
    return rc;
}

static int check_trigger(json_t *t, af_error_t *err) {
    const char *type = jstr(t, "type"), *where = jstr(t, "where");
    json_t *c = json_object_get(t, "config");
    if (strcmp(type, "schedule") == 0) {
        return check_schedule(c, where, err);
    }
    if (strcmp(type, "poll") == 0) {
        return check_poll(c, where, err);
    }
    if (strcmp(type, "plugin") == 0 && af_trigger_find(jstr(c, "type")) == NULL) {
        return af_error_at(err, AF_EDEFINITION, where,
                           "af.trigger: no trigger type '%s' is loaded (see agentflow plugin list)",
                           jstr(c, "type"));
    }
    af_error_t e = {0};
    if (strcmp(type, "event") == 0 && af_event_type_check(jstr(c, "type"), 1, &e) != 0) {
        return af_error_at(err, AF_EDEFINITION, where, "af.event: %s", e.msg);
    }
    af_predicate_t *p = NULL;
    if (strcmp(type, "event") == 0 &&
        af_predicate_compile(json_object_get(c, "where"), &p, &e) != 0) {
        return af_error_at(err, AF_EDEFINITION, where, "af.event: %s", e.msg);
    }
    af_predicate_free(p);
    return 0;
}

static int json_depth(const json_t *v) {
    int deepest = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            int n = json_depth(x);
            deepest = n > deepest ? n : deepest;
        }
        return deepest + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            int n = json_depth(x);
            deepest = n > deepest ? n : deepest;
        }
        return deepest + 1;
    }
    return 0;
}

/* Values that become Lua tables at run time obey the same depth limit as any JSON input. */
static int check_depth(json_t *v, const char *what, const char *where, af_error_t *err) {
    if (v && json_depth(v) > AF_JSON_MAX_DEPTH) {
        return af_error_at(err, AF_EDEFINITION, where, "%s is nested deeper than %d levels", what,
                           AF_JSON_MAX_DEPTH);
    }
    return 0;
}

static int options_of(af_graph_t *g, json_t *d, af_error_t *err) {
    const char *where = jstr(d, "where");
    if (jstr(d, "description")) {
        g->description = strdup(jstr(d, "description"));
    }
    json_t *r = json_object_get(d, "retry");
    if (r && retry_of(r, &g->retry, "workflow", where, err) != 0) {
        return AF_EDEFINITION;
    }
    if (duration_of(json_object_get(d, "timeout"), "workflow timeout", where, &g->timeout_ms,
                    err) != 0 ||
        duration_of(json_object_get(d, "step_timeout"), "workflow step_timeout", where,
                    &g->step_timeout_ms, err) != 0) {
        return AF_EDEFINITION;
    }
    json_t *lim = json_object_get(d, "limits");
    if (lim) {
        json_t *ins = json_object_get(lim, "instructions");
        if (ins && (!json_is_number(ins) || json_number_value(ins) < 1e5)) {
            return af_error_at(err, AF_EDEFINITION, where,
                               "limits.instructions must be a number >= 100000");
        }
        g->max_instructions = ins ? (int64_t)json_number_value(ins) : 0;
        const char *mem = jstr(lim, "memory");
        if (json_object_get(lim, "memory") &&
            (mem == NULL || af_bytes_parse(mem, &g->max_memory) || g->max_memory < (4u << 20))) {
            return af_error_at(err, AF_EDEFINITION, where,
                               "limits.memory must be a size such as \"64MB\", at least 4MB");
        }
    }
    g->concurrency = (int)json_integer_value(json_object_get(d, "concurrency"));
    g->vars = json_incref(json_object_get(d, "vars"));
    g->sample_input = json_incref(json_object_get(d, "sample_input"));
    if (check_depth(g->vars, "vars", where, err) ||
        check_depth(g->sample_input, "sample_input", where, err)) {
        return AF_EDEFINITION;
    }
    json_t *t;
    size_t i;
    json_array_foreach(json_object_get(d, "triggers"), i, t) {
        if (check_trigger(t, err) != 0) {
            return AF_EDEFINITION;
        }
        af_graph_add_trigger(g, jstr(t, "type"), jstr(t, "where"),
                             json_incref(json_object_get(t, "config")));
    }
    return 0;
}

/* Checks a C node type's static config where we can (durations, sub-workflow files). */
static int check_node_config(af_vm_t *vm, af_step_t *s, json_t *d, af_error_t *err) {
    const char *where = jstr(d, "node_where") ? jstr(d, "node_where") : s->where;
    int64_t ms;
    json_t *c = json_object_get(d, "config");
    if (strcmp(s->type, "delay") == 0) {
        json_t *dur = json_object_get(c, "duration");
        if (!(json_is_string(dur) && strcmp(json_string_value(dur), "<function>") == 0)) {
            return duration_of(dur, "af.delay", where, &ms, err);
        }
    }
    if (strcmp(s->type, "call") == 0 && vm->dir) {
        const char *wf = jstr(c, "workflow");
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", wf[0] == '/' ? "" : vm->dir, wf);
        if (stat(path, &st) != 0) {
            return af_error_at(err, AF_EDEFINITION, where,
                               "af.call: workflow file '%s' not found (looked at %s)", wf, path);
        }
    }
    return 0;
}

/* A config without run-time values is checked against the type's schema once, here. */
static int check_static_config(af_step_t *s, json_t *d, af_error_t *err) {
    const af_nodedef_t *def = af_registry_find(s->type);
    af_error_t verr;
    if (def == NULL || (def->flags & AF_NODE_RAW) ||
        af_node_check_config(def, s->config, &verr) == 0) {
        return 0;
    }
    return af_error_at(err, AF_EDEFINITION,
                       jstr(d, "node_where") ? jstr(d, "node_where") : s->where,
                       "step '%s': invalid config for '%s': %s", s->name, s->type, verr.msg);
}

static void instance_free(const void *owner, void *instance) {
    const af_nodedef_t *def = owner;
    def->destroy(def, instance);
}

/* A node type may prepare per step (a plugin's create): its refusal is a definition error. */
static int create_instance(af_step_t *s, json_t *d, af_error_t *err) {
    const af_nodedef_t *def = af_registry_find(s->type);
    if (def == NULL || def->create == NULL) {
        return 0;
    }
    char msg[512] = "";
    if (def->create(def, s->config, &s->instance, msg, sizeof msg) != 0) {
        return af_error_at(err, AF_EDEFINITION,
                           jstr(d, "node_where") ? jstr(d, "node_where") : s->where,
                           "step '%s': node type '%s' refused its config: %s", s->name, s->type,
                           msg[0] ? msg : "no reason given");
    }
    if (def->destroy) {
        s->instance_free = instance_free;
        s->instance_owner = def;
    }
    return 0;
}

static int step_of(af_vm_t *vm, af_graph_t *g, json_t *d, int index, af_error_t *err) {
    const char *name = jstr(d, "name"), *type = jstr(d, "type"), *where = jstr(d, "where");
    int lua_kind = json_is_true(json_object_get(d, "lua"));
    if (!lua_kind) {
        const af_nodedef_t *t = af_registry_find(type);
        if (t == NULL || (t->flags & AF_NODE_LUA)) {
            return af_error_at(err, AF_EDEFINITION,
                               jstr(d, "node_where") ? jstr(d, "node_where") : where,
                               "step '%s': unknown node type '%s'", name, type);
        }
    }
    af_step_t *s = af_graph_add_step(g, name, type, where, err);
    if (s == NULL) {
        return AF_EDEFINITION;
    }
    json_t *v;
    size_t i;
    json_array_foreach(json_object_get(d, "after"), i, v) {
        af_step_add_dep(s, jstr(v, "step"), jstr(v, "port"));
    }
    json_array_foreach(json_object_get(d, "ports"), i, v) {
        af_step_add_port(s, json_string_value(v));
    }
    json_t *r = json_object_get(d, "retry");
    if (r) {
        s->retry = g->retry; /* a step's retry starts from the workflow's, codes included */
        s->retry.non_retryable = NULL;
        s->retry.n_non_retryable = 0;
        af_retry_set_non_retryable(&s->retry, (const char *const *)g->retry.non_retryable,
                                   g->retry.n_non_retryable);
        char what[300];
        snprintf(what, sizeof what, "step '%s'", name);
        if (retry_of(r, &s->retry, what, where, err) != 0) {
            return AF_EDEFINITION;
        }
        s->has_retry = 1;
    }
    if (duration_of(json_object_get(d, "timeout"), "step timeout", where, &s->timeout_ms, err)) {
        return AF_EDEFINITION;
    }
    const char *join = jstr(d, "join");
    s->join = join && strcmp(join, "all") == 0 ? AF_JOIN_ALL : AF_JOIN_ANY;
    s->config = json_incref(json_object_get(d, "config"));
    if (check_depth(s->config, "config", jstr(d, "node_where") ? jstr(d, "node_where") : where,
                    err)) {
        return AF_EDEFINITION;
    }
    s->config_dynamic = json_is_true(json_object_get(d, "dynamic"));
    if (!lua_kind && check_node_config(vm, s, d, err) != 0) {
        return AF_EDEFINITION;
    }
    if (!lua_kind && !s->config_dynamic && check_static_config(s, d, err) != 0) {
        return AF_EDEFINITION;
    }
    if (!lua_kind && create_instance(s, d, err) != 0) {
        return AF_EDEFINITION;
    }
    /* keep the node spec for run time */
    lua_State *L = vm->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_wf);
    lua_getfield(L, -1, "steps");
    lua_rawgeti(L, -1, index + 1);
    lua_getfield(L, -1, "node");
    s->spec_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 3);
    return 0;
}

/* on_error = "handler": the handler runs after the failing step, on its error port. */
static int wire_on_error(af_graph_t *g, json_t *steps, af_error_t *err) {
    json_t *d;
    size_t i;
    json_array_foreach(steps, i, d) {
        const char *h = jstr(d, "on_error");
        if (h == NULL) {
            continue;
        }
        if (strcmp(h, "continue") == 0) {
            g->steps[i].on_error_continue = 1;
            continue;
        }
        int k = af_graph_find(g, h);
        if (k < 0) {
            return af_error_at(err, AF_EDEFINITION, jstr(d, "where"),
                               "step '%s': on_error names unknown step '%s'", jstr(d, "name"), h);
        }
        af_step_add_dep(&g->steps[k], jstr(d, "name"), AF_PORT_ERROR);
    }
    return 0;
}

/* A conversion error's path "$.steps[3]..." points at the step declared there. */
static void where_of_path(af_vm_t *vm, const char *msg, char *buf, size_t n) {
    lua_State *L = vm->L;
    const char *p = strstr(msg, "$.steps[");
    snprintf(buf, n, "%s", vm->file);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_wf);
    if (p != NULL) {
        lua_getfield(L, -1, "steps");
        lua_rawgeti(L, -1, atoi(p + 8) + 1);
        lua_getfield(L, -1, "where");
        if (lua_isstring(L, -1)) {
            snprintf(buf, n, "%s", lua_tostring(L, -1));
        }
        lua_pop(L, 3);
    } else {
        lua_getfield(L, -1, "where");
        if (lua_isstring(L, -1)) {
            snprintf(buf, n, "%s", lua_tostring(L, -1));
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static int compile(af_vm_t *vm, af_graph_t **out, af_error_t *err) {
    lua_State *L = vm->L;
    af_fault_t fault;
    af__vm_push_runtime(vm, "describe_workflow");
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_wf);
    if (af__vm_pcall(vm, NULL, 1, 1, &fault) != 0) {
        return error_from_lua(err, AF_EDEFINITION, fault.message);
    }
    json_t *d;
    af_error_t jerr;
    if (af_lua_to_json(L, -1, AF_JSON_MAX_DEPTH + 4, &d, &jerr) != 0) {
        lua_pop(L, 1);
        char where[300];
        where_of_path(vm, jerr.msg, where, sizeof where);
        return af_error_at(err, AF_EDEFINITION, where, "workflow definition: %s", jerr.msg);
    }
    lua_pop(L, 1);
    af_graph_t *g = af_graph_new(jstr(d, "name"));
    int rc = g ? 0 : af_error_set(err, AF_ENOMEM, "out of memory");
    if (rc == 0) {
        g->file = strdup(vm->file);
        rc = options_of(g, d, err);
    }
    json_t *steps = json_object_get(d, "steps");
    json_t *s;
    size_t i;
    json_array_foreach(steps, i, s) {
        if (rc == 0) {
            rc = step_of(vm, g, s, (int)i, err);
        }
    }
    if (rc == 0) {
        rc = wire_on_error(g, steps, err);
    }
    if (rc == 0 && g->nsteps == 0) {
        rc = af_error_at(err, AF_EDEFINITION, jstr(d, "where"),
                         "workflow '%s' has no steps (add one with wf:step)", g->name);
    }
    if (rc == 0) {
        rc = af_graph_validate(g, err);
    }
    json_decref(d);
    if (rc != 0) {
        af_graph_free(g);
        return rc ? rc : AF_EDEFINITION;
    }
    *out = g;
    return 0;
}

static int check_source(const char *file, const char *source, size_t len, af_error_t *err) {
    size_t bad;
    if (len > AF_MAX_SCRIPT_BYTES) {
        return af_error_at(err, AF_ELIMIT, file, "script is %zu bytes, over the limit of %u", len,
                           AF_MAX_SCRIPT_BYTES);
    }
    if (!af_utf8_valid(source, len, &bad)) {
        int line = 1;
        for (size_t i = 0; i < bad; i++) {
            line += source[i] == '\n';
        }
        char where[300];
        snprintf(where, sizeof where, "%s:%d", file, line);
        return af_error_at(err, AF_EUTF8, where, "invalid UTF-8 in the script (byte %zu)", bad);
    }
    return 0;
}

int af_dsl_load(af_vm_t *vm, const char *file, const char *source, size_t len, af_graph_t **graph,
                af_error_t *err) {
    lua_State *L = vm->L;
    *graph = NULL;
    int rc = check_source(file, source, len, err);
    if (rc != 0) {
        return rc;
    }
    free(vm->file);
    free(vm->dir);
    vm->file = strdup(file);
    char *copy = strdup(file);
    vm->dir = strdup(dirname(copy));
    free(copy);
    char chunk[1024];
    snprintf(chunk, sizeof chunk, "@%s", file);
    if (luaL_loadbuffer(L, source, len, chunk) != 0) {
        rc = error_from_lua(err, AF_ESYNTAX, lua_tostring(L, -1));
        lua_pop(L, 1);
        return rc;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_sandbox);
    lua_setfenv(L, -2);
    af_fault_t fault;
    if (af__vm_pcall(vm, NULL, 0, 1, &fault) != 0) {
        return error_from_lua(err, AF_EDEFINITION, fault.message);
    }
    lua_getglobal(L, "require");
    lua_pushliteral(L, "agentflow");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "is_workflow");
    lua_pushvalue(L, -3);
    lua_call(L, 1, 1);
    int ok = lua_toboolean(L, -1);
    lua_pop(L, 2);
    if (!ok) {
        const char *tn = luaL_typename(L, -1);
        lua_pop(L, 1);
        return af_error_at(err, AF_EDEFINITION, file,
                           "the script must return a workflow (return wf), it returned %s", tn);
    }
    luaL_unref(L, LUA_REGISTRYINDEX, vm->ref_wf);
    vm->ref_wf = luaL_ref(L, LUA_REGISTRYINDEX);
    rc = compile(vm, graph, err);
    return rc;
}

int af_dsl_load_file(af_vm_t *vm, const char *file, af_graph_t **graph, af_error_t *err) {
    char *src;
    size_t len;
    int rc = af_read_file(file, AF_MAX_SCRIPT_BYTES, &src, &len, err);
    if (rc != 0) {
        return rc;
    }
    rc = af_dsl_load(vm, file, src, len, graph, err);
    free(src);
    return rc;
}
