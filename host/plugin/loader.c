/* loader.c -- shared-object plugins: dlopen with RTLD_NOW|RTLD_LOCAL, the checks that refuse a
 * plugin (not ELF, no entry symbol, another ABI, bad descriptor, duplicates, failing init), the
 * registrar init writes into, the node type adapter, plugin records and trigger types. */
#include "plugin/plugin_internal.h"

#include "core/jsonschema.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PLUGINS  256
#define MAX_TRIGGERS 256

struct loaded_s {
    void *dl;
    const af_plugin_t *desc;
    char *file;
    plugin_type_t *types;
    int ntypes;
    af_triggerdef_t *triggers;
    const af_trigger_type_t **trigger_src;
    int ntriggers;
};

typedef struct record_s {
    char *name, *version, *description, *file, *kind;
    json_t *nodes, *triggers;
} record_t;

static loaded_t *loaded[MAX_PLUGINS];
static int nloaded;
static record_t records[MAX_PLUGINS];
static int nrecords;
static const af_triggerdef_t *trigger_defs[MAX_TRIGGERS];
static int ntrigger_defs;
static af_host_t host_table;

/* ---- records ---- */

int af_plugin_record(const char *name, const char *version, const char *description,
                     const char *file, const char *kind, af_error_t *err) {
    for (int i = 0; i < nrecords; i++) {
        if (strcmp(records[i].name, name) == 0) {
            return af_error_set(err, AF_EEXISTS, "%s: a plugin named '%s' is already loaded (%s)",
                                file, name, records[i].file);
        }
    }
    if (nrecords == MAX_PLUGINS) {
        return af_error_set(err, AF_ELIMIT, "%s: too many plugins (limit %d)", file, MAX_PLUGINS);
    }
    record_t *r = &records[nrecords++];
    r->name = strdup(name);
    r->version = strdup(version);
    r->description = strdup(description ? description : "");
    r->file = strdup(file);
    r->kind = strdup(kind);
    r->nodes = json_array();
    r->triggers = json_array();
    return 0;
}

void af_plugin_record_type(const char *name, int is_trigger) {
    if (nrecords > 0) {
        record_t *r = &records[nrecords - 1];
        json_array_append_new(is_trigger ? r->triggers : r->nodes, json_string(name));
    }
}

static void records_pop(void) {
    record_t *r = &records[--nrecords];
    free(r->name);
    free(r->version);
    free(r->description);
    free(r->file);
    free(r->kind);
    json_decref(r->nodes);
    json_decref(r->triggers);
}

json_t *af_plugins_to_json(void) {
    json_t *out = json_array();
    for (int i = 0; i < nrecords; i++) {
        record_t *r = &records[i];
        json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:O}", "name", r->name,
                                             "version", r->version, "description", r->description,
                                             "file", r->file, "kind", r->kind, "nodes", r->nodes,
                                             "triggers", r->triggers));
    }
    return out;
}

static json_t *schema_json(const char *text) {
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    return j ? j : json_pack("{s:s}", "type", "object");
}

json_t *af_plugin_type_info(const char *name) {
    const af_nodedef_t *d = af_registry_find(name);
    if (d) {
        return json_pack("{s:s, s:s, s:s, s:s, s:o}", "name", d->name, "kind", "node", "plugin",
                         d->plugin ? d->plugin : "(engine)", "description",
                         d->description ? d->description : "", "config_schema",
                         schema_json(d->schema));
    }
    const af_triggerdef_t *t = af_trigger_find(name);
    if (t) {
        return json_pack("{s:s, s:s, s:s, s:s, s:o}", "name", t->name, "kind", "trigger", "plugin",
                         t->plugin ? t->plugin : "(engine)", "description",
                         t->description ? t->description : "", "config_schema",
                         schema_json(t->schema));
    }
    return NULL;
}

/* ---- trigger types ---- */

int af_trigger_register(const af_triggerdef_t *def, af_error_t *err) {
    if (af_trigger_find(def->name)) {
        return af_error_set(err, AF_EEXISTS, "trigger type '%s' is already registered", def->name);
    }
    if (ntrigger_defs == MAX_TRIGGERS) {
        return af_error_set(err, AF_ELIMIT, "too many trigger types");
    }
    trigger_defs[ntrigger_defs++] = def;
    return 0;
}

const af_triggerdef_t *af_trigger_find(const char *name) {
    for (int i = 0; i < ntrigger_defs; i++) {
        if (strcmp(trigger_defs[i]->name, name) == 0) {
            return trigger_defs[i];
        }
    }
    return NULL;
}

static void trigger_unregister(const af_triggerdef_t *def) {
    for (int i = 0; i < ntrigger_defs; i++) {
        if (trigger_defs[i] == def) {
            trigger_defs[i] = trigger_defs[--ntrigger_defs];
            return;
        }
    }
}

/* ---- the node type adapter ---- */

static int pt_execute_now(af_node_call_t *call, struct af_call *tok) {
    const plugin_type_t *pt = tok->pt;
    tok->refs++; /* the completion may come inside execute: keep tok while we look at it */
    int rc = pt->t.execute(call->instance, tok, tok->config);
    int result = rc == AF_PENDING ? AF_NODE_PENDING : AF_NODE_DONE;
    if (rc == AF_DONE && !tok->completed) {
        af__token_complete(tok, 1, 0, NULL, NULL, "PLUGIN",
                           "execute returned AF_DONE without completing the call");
    } else if (rc < 0 && !tok->completed) { /* an error: no completion will come */
        char msg[160];
        snprintf(msg, sizeof msg, "node type '%s' failed to start (code %d)", pt->def.name, rc);
        af__token_complete(tok, 1, 0, NULL, NULL, "PLUGIN", msg);
    }
    if (rc == AF_PENDING && tok->completed && tok->call == NULL) {
        result = AF_NODE_DONE; /* completed before returning: the engine already knows */
    }
    af__token_release(tok);
    return result;
}

static void blocking_work(uv_work_t *w) {
    struct af_call *tok = w->data;
    tok->exec_rc = tok->pt->t.execute(tok->call ? tok->call->instance : NULL, tok, tok->config);
}

static void blocking_after(uv_work_t *w, int status) {
    struct af_call *tok = w->data;
    if (tok->exec_rc < 0 || status == UV_ECANCELED) {
        if (!tok->completed) {
            af__token_complete(tok, 1, 1, NULL, NULL, status ? "CANCELLED" : "PLUGIN",
                               "blocking node did not complete");
        }
    } else if (tok->exec_rc == AF_DONE && !tok->completed) {
        af__token_complete(tok, 1, 0, NULL, NULL, "PLUGIN",
                           "execute returned AF_DONE without completing the call");
    }
    af__token_release(tok); /* the worker's hold */
}

static int pt_execute(af_node_call_t *call) {
    const plugin_type_t *pt = (const plugin_type_t *)call->type;
    struct af_call *tok = calloc(1, sizeof *tok);
    if (tok == NULL) {
        return AF_ENOMEM;
    }
    tok->call = call;
    tok->pt = pt;
    tok->refs = 2; /* the engine's side and the plugin's completion */
    tok->config = af_json_dumps(call->config, 0);
    call->node_data = tok;
    if (pt->t.flags & AF_NODE_BLOCKING) {
        tok->refs++;
        tok->work.data = tok;
        if (uv_queue_work(call->loop, &tok->work, blocking_work, blocking_after) != 0) {
            tok->refs--;
            af__token_complete(tok, 1, 1, NULL, NULL, "PLUGIN", "cannot queue blocking work");
            return AF_NODE_DONE;
        }
        return AF_NODE_PENDING;
    }
    return pt_execute_now(call, tok);
}

static void pt_cancel(af_node_call_t *call) {
    struct af_call *tok = call->node_data;
    if (tok == NULL || tok->call == NULL) {
        return;
    }
    tok->refs++; /* the plugin may complete inside cancel: keep tok while we look at it */
    if (tok->pt->t.cancel) {
        tok->pt->t.cancel(call->instance, tok); /* a completion now is dropped by the engine */
    }
    if (tok->call) { /* not completed inside cancel: later completions are dropped here */
        tok->call = NULL;
        call->node_data = NULL;
        af__token_release(tok); /* the engine's side */
    }
    af__token_release(tok);
}

static int pt_create(const af_nodedef_t *def, json_t *config, void **instance, char *errbuf,
                     size_t errlen) {
    const plugin_type_t *pt = (const plugin_type_t *)def;
    char *text = af_json_dumps(config, 0);
    int rc = pt->t.create(text ? text : "{}", instance, errbuf, errlen);
    free(text);
    return rc;
}

static void pt_destroy(const af_nodedef_t *def, void *instance) {
    ((const plugin_type_t *)def)->t.destroy(instance);
}

/* ---- the registrar ---- */

struct af_registrar {
    loaded_t *p;
    af_error_t *err;
    int failed;
};

static int valid_type_name(const char *s) {
    if (s == NULL || !isalpha((unsigned char)*s)) {
        return 0;
    }
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-') {
            return 0;
        }
    }
    return 1;
}

static int type_taken(const loaded_t *p, const char *name) {
    if (af_registry_find(name) || af_trigger_find(name)) {
        return 1;
    }
    for (int i = 0; i < p->ntypes; i++) {
        if (strcmp(p->types[i].t.name, name) == 0) {
            return 1;
        }
    }
    for (int i = 0; i < p->ntriggers; i++) {
        if (strcmp(p->triggers[i].name, name) == 0) {
            return 1;
        }
    }
    return 0;
}

static int refuse_type(af_registrar_t *reg, const char *fmt, const char *name) {
    if (!reg->failed) {
        char msg[300];
        snprintf(msg, sizeof msg, fmt, name ? name : "(null)");
        af_error_set(reg->err, AF_EINVAL, "%s: %s", reg->p->file, msg);
        reg->failed = 1;
    }
    return AF_ERR;
}

#define MIN_NODE_SIZE (offsetof(af_node_type_t, destroy) + sizeof(void *))

static int refuse_size(af_registrar_t *reg, const char *what, uint32_t size, size_t min) {
    if (!reg->failed) {
        af_error_set(reg->err, AF_EINVAL,
                     "%s: %s type struct too small (%u bytes; ABI 1.0 has %zu): set .size = "
                     "sizeof(af_%s_type_t)",
                     reg->p->file, what, size, min, what);
        reg->failed = 1;
    }
    return AF_ERR;
}

/* A config schema must be a JSON Schema the host can use, or the type is refused now. */
static int schema_ok(af_registrar_t *reg, const char *name, const char *schema) {
    af_error_t serr;
    af_schema_t *s = schema ? af_schema_compile_text(schema, &serr) : NULL;
    if (schema && s == NULL) {
        if (!reg->failed) {
            af_error_set(reg->err, AF_EINVAL, "%s: type '%s' has an invalid config schema: %s",
                         reg->p->file, name, serr.msg);
            reg->failed = 1;
        }
        return 0;
    }
    af_schema_free(s);
    return 1;
}

static int reg_node(af_registrar_t *reg, const af_node_type_t *t) {
    loaded_t *p = reg->p;
    if (reg->failed) {
        return AF_ERR;
    }
    if (t == NULL || t->size < MIN_NODE_SIZE) {
        return refuse_size(reg, "node", t ? t->size : 0, MIN_NODE_SIZE);
    }
    if (!valid_type_name(t->name)) {
        return refuse_type(reg, "invalid node type name '%s'", t->name);
    }
    if (t->execute == NULL) {
        return refuse_type(reg, "node type '%s' has no execute function", t->name);
    }
    if (type_taken(p, t->name)) {
        return refuse_type(reg, "duplicate type name '%s' (already registered)", t->name);
    }
    if (!schema_ok(reg, t->name, t->config_schema)) {
        return AF_ERR;
    }
    plugin_type_t *more = realloc(p->types, sizeof *more * (size_t)(p->ntypes + 1));
    if (more == NULL) {
        return refuse_type(reg, "out of memory registering '%s'", t->name);
    }
    p->types = more;
    plugin_type_t *pt = &p->types[p->ntypes++];
    memset(pt, 0, sizeof *pt);
    memcpy(&pt->t, t, t->size < sizeof pt->t ? t->size : sizeof pt->t);
    pt->t.size = sizeof pt->t;
    pt->plugin = p;
    return 0;
}

#define MIN_TRIGGER_SIZE (offsetof(af_trigger_type_t, stop) + sizeof(void *))

typedef struct trigger_fire_s {
    int (*fire)(void *ud, json_t *input);
    void *ud;
} trigger_fire_t;

struct af_trigger_sink {
    trigger_fire_t f;
};

static int reg_trigger(af_registrar_t *reg, const af_trigger_type_t *t) {
    loaded_t *p = reg->p;
    if (reg->failed) {
        return AF_ERR;
    }
    if (t == NULL || t->size < MIN_TRIGGER_SIZE) {
        return refuse_size(reg, "trigger", t ? t->size : 0, MIN_TRIGGER_SIZE);
    }
    if (!valid_type_name(t->name) || t->start == NULL || t->stop == NULL) {
        return refuse_type(reg, "invalid trigger type '%s' (name, start and stop are required)",
                           t->name);
    }
    if (type_taken(p, t->name)) {
        return refuse_type(reg, "duplicate type name '%s' (already registered)", t->name);
    }
    af_triggerdef_t *more = realloc(p->triggers, sizeof *more * (size_t)(p->ntriggers + 1));
    const af_trigger_type_t **src =
        realloc(p->trigger_src, sizeof *src * (size_t)(p->ntriggers + 1));
    if (more) {
        p->triggers = more;
    }
    if (src) {
        p->trigger_src = src;
    }
    if (more == NULL || src == NULL) {
        return refuse_type(reg, "out of memory registering '%s'", t->name);
    }
    p->trigger_src[p->ntriggers] = t;
    memset(&p->triggers[p->ntriggers], 0, sizeof p->triggers[0]);
    p->triggers[p->ntriggers].name = t->name;
    p->ntriggers++;
    return 0;
}

/* ---- triggers of shared-object plugins ---- */

static const af_trigger_type_t *trigger_src_of(const af_triggerdef_t *def) {
    for (int i = 0; i < nloaded; i++) {
        for (int k = 0; k < loaded[i]->ntriggers; k++) {
            if (&loaded[i]->triggers[k] == def) {
                return loaded[i]->trigger_src[k];
            }
        }
    }
    return NULL;
}

typedef struct trigger_inst_s {
    struct af_trigger_sink sink;
    void *instance;
} trigger_inst_t;

static int tt_start(const af_triggerdef_t *def, json_t *config, int (*fire)(void *, json_t *),
                    void *ud, void **instance, char *errbuf, size_t errlen) {
    const af_trigger_type_t *t = trigger_src_of(def);
    trigger_inst_t *ti = calloc(1, sizeof *ti);
    if (t == NULL || ti == NULL) {
        free(ti);
        snprintf(errbuf, errlen, "trigger type is gone");
        return AF_ERR;
    }
    ti->sink.f.fire = fire;
    ti->sink.f.ud = ud;
    char *text = af_json_dumps(config, 0);
    int rc = t->start(text ? text : "{}", &ti->sink, &ti->instance, errbuf, errlen);
    free(text);
    if (rc != 0) {
        free(ti);
        return rc;
    }
    *instance = ti;
    return 0;
}

static void tt_stop(const af_triggerdef_t *def, void *instance) {
    const af_trigger_type_t *t = trigger_src_of(def);
    trigger_inst_t *ti = instance;
    if (t) {
        t->stop(ti->instance);
    }
    free(ti);
}

int af__sink_fire(af_trigger_sink_t *sink, const char *input_json) {
    json_t *input = json_loads(input_json ? input_json : "{}", JSON_DECODE_ANY, NULL);
    if (input == NULL) {
        return AF_EARG;
    }
    int rc = sink->f.fire(sink->f.ud, input);
    json_decref(input);
    return rc == 0 ? 0 : AF_ERR;
}

/* ---- loading ---- */

static int valid_semver(const char *v) {
    int parts = 0;
    const char *p = v;
    while (parts < 3) {
        if (!isdigit((unsigned char)*p)) {
            return 0;
        }
        while (isdigit((unsigned char)*p)) {
            p++;
        }
        parts++;
        if (parts < 3 && *p++ != '.') {
            return 0;
        }
    }
    return *p == '\0' || *p == '-' || *p == '+';
}

static int check_elf(const char *path, af_error_t *err) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return af_error_set(err, AF_EIO, "%s: cannot open", path);
    }
    unsigned char magic[4] = {0};
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    if (n < 4 || memcmp(magic, "\177ELF", 4) != 0) {
        return af_error_set(err, AF_EINVAL, "%s: not an ELF shared object", path);
    }
    return 0;
}

static int check_descriptor(const char *path, const af_plugin_t *d, af_error_t *err) {
    if (d == NULL) {
        return af_error_set(err, AF_EINVAL, "%s: af_plugin_entry returned NULL", path);
    }
    if (d->abi_major != AF_ABI_MAJOR) {
        return af_error_set(err, AF_EINVAL,
                            "%s: built for plugin ABI %u.%u; this host speaks ABI %d.%d (major "
                            "versions must match)",
                            path, d->abi_major, d->abi_minor, AF_ABI_MAJOR, AF_ABI_MINOR);
    }
    if (d->abi_minor > AF_ABI_MINOR) {
        return af_error_set(err, AF_EINVAL,
                            "%s: needs plugin ABI %u.%u; this host has %d.%d (upgrade agentflow)",
                            path, d->abi_major, d->abi_minor, AF_ABI_MAJOR, AF_ABI_MINOR);
    }
    if (d->size < offsetof(af_plugin_t, shutdown) + sizeof(void *)) {
        return af_error_set(err, AF_EINVAL, "%s: plugin descriptor too small (%u bytes)", path,
                            d->size);
    }
    if (d->name == NULL || !valid_type_name(d->name) || strchr(d->name, '.') != NULL) {
        return af_error_set(err, AF_EINVAL, "%s: invalid plugin name", path);
    }
    if (d->version == NULL || !valid_semver(d->version)) {
        return af_error_set(err, AF_EINVAL, "%s: version '%s' is not semver (MAJOR.MINOR.PATCH)",
                            path, d->version ? d->version : "(null)");
    }
    if (d->init == NULL) {
        return af_error_set(err, AF_EINVAL, "%s: plugin has no init function", path);
    }
    return 0;
}

static void loaded_free(loaded_t *p) {
    if (p->dl) {
        dlclose(p->dl);
    }
    free(p->types);
    free(p->triggers);
    free(p->trigger_src);
    free(p->file);
    free(p);
}

static int commit(loaded_t *p, af_error_t *err) {
    const af_plugin_t *d = p->desc;
    int rc = af_plugin_record(d->name, d->version, d->description, p->file, "c", err);
    if (rc != 0) {
        return rc;
    }
    for (int i = 0; i < p->ntypes; i++) {
        plugin_type_t *pt = &p->types[i];
        pt->def.name = pt->t.name;
        pt->def.description = pt->t.description;
        pt->def.schema = pt->t.config_schema;
        pt->def.execute = pt_execute;
        pt->def.cancel = pt_cancel;
        pt->def.create = pt->t.create ? pt_create : NULL;
        pt->def.destroy = pt->t.destroy ? pt_destroy : NULL;
        pt->def.plugin = d->name;
        pt->def.ports = pt->t.ports; /* zero when the plugin's struct predates 1.1 */
        af_registry_add(&pt->def, NULL);
        af_plugin_record_type(pt->def.name, 0);
    }
    for (int i = 0; i < p->ntriggers; i++) {
        af_triggerdef_t *td = &p->triggers[i];
        const af_trigger_type_t *t = p->trigger_src[i];
        td->description = t->description;
        td->schema = t->config_schema;
        td->plugin = d->name;
        td->start = tt_start;
        td->stop = tt_stop;
        af_trigger_register(td, NULL);
        af_plugin_record_type(td->name, 1);
    }
    loaded[nloaded++] = p;
    return 0;
}

static int load_so(const char *path, af_error_t *err) {
    if (nloaded == MAX_PLUGINS) {
        return af_error_set(err, AF_ELIMIT, "%s: too many plugins", path);
    }
    int rc = check_elf(path, err);
    if (rc != 0) {
        return rc;
    }
    loaded_t *p = calloc(1, sizeof *p);
    p->file = strdup(path);
    p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (p->dl == NULL) {
        rc = af_error_set(err, AF_EINVAL, "%s: cannot load: %s", path, dlerror());
        loaded_free(p);
        return rc;
    }
    af_plugin_entry_fn entry;
    *(void **)&entry = dlsym(p->dl, AF_PLUGIN_ENTRY_SYMBOL);
    if (entry == NULL) {
        rc = af_error_set(err, AF_EINVAL,
                          "%s: no %s symbol (not an agentflow plugin, or not exported)", path,
                          AF_PLUGIN_ENTRY_SYMBOL);
        loaded_free(p);
        return rc;
    }
    p->desc = entry();
    if ((rc = check_descriptor(path, p->desc, err)) != 0) {
        loaded_free(p);
        return rc;
    }
    for (int i = 0; i < nrecords; i++) {
        if (strcmp(records[i].name, p->desc->name) == 0) {
            rc = af_error_set(err, AF_EEXISTS, "%s: a plugin named '%s' is already loaded (%s)",
                              path, p->desc->name, records[i].file);
            loaded_free(p);
            return rc;
        }
    }
    af_registrar_t reg = {.p = p, .err = err};
    int irc = p->desc->init(&host_table, &reg);
    if (irc != 0 || reg.failed) {
        if (!reg.failed) {
            af_error_set(err, AF_EINVAL, "%s: plugin '%s' init failed (returned %d)", path,
                         p->desc->name, irc);
        }
        loaded_free(p);
        return err ? err->code : AF_EINVAL;
    }
    if ((rc = commit(p, err)) != 0) {
        if (p->desc->shutdown) {
            p->desc->shutdown();
        }
        loaded_free(p);
    }
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int af_plugin_load(const char *path, af_error_t *err) {
    if (!af__svc.ready) {
        return af_error_set(err, AF_ESTATE, "plugins are not initialised");
    }
    if (ends_with(path, ".lua")) {
        if (af__svc.opts.load_lua == NULL) {
            return af_error_set(err, AF_EINVAL, "%s: Lua plugins are not supported here", path);
        }
        return af__svc.opts.load_lua(path, err);
    }
    return load_so(path, err);
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int af_plugins_load_dir(const char *dir, void (*on_refused)(const af_error_t *err, void *ud),
                        void *ud) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        return AF_EIO;
    }
    char **names = NULL;
    int n = 0, loaded_count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if ((ends_with(e->d_name, ".so") || ends_with(e->d_name, ".lua")) && e->d_name[0] != '.') {
            char **more = realloc(names, sizeof *names * (size_t)(n + 1));
            if (more == NULL) {
                break;
            }
            names = more;
            names[n++] = strdup(e->d_name);
        }
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, name_cmp);
    for (int i = 0; i < n; i++) {
        char path[4096];
        af_error_t err = {0};
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (af_plugin_load(path, &err) == 0) {
            loaded_count++;
        } else if (on_refused) {
            on_refused(&err, ud);
        }
        free(names[i]);
    }
    free(names);
    return loaded_count;
}

int af_plugins_default_dirs(const char **dirs, int max) {
    static char buf[8][4096];
    int n = 0;
    const char *env = getenv("AGENTFLOW_PLUGIN_PATH");
    if (env && *env) {
        const char *p = env;
        while (*p && n < max && n < 8) {
            size_t len = strcspn(p, ":");
            if (len > 0 && len < sizeof buf[n]) {
                memcpy(buf[n], p, len);
                buf[n][len] = '\0';
                dirs[n] = buf[n];
                n++;
            }
            p += len + (p[len] == ':');
        }
        return n;
    }
    char exe[3000];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) {
        return 0;
    }
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) {
        *slash = '\0';
    }
    if (n < max) {
        snprintf(buf[n], sizeof buf[n], "%s/plugins", exe);
        dirs[n] = buf[n];
        n++;
    }
    if (n < max) {
        snprintf(buf[n], sizeof buf[n], "%s/../lib/agentflow/plugins", exe);
        dirs[n] = buf[n];
        n++;
    }
    return n;
}

const af_host_t *af_plugin_host(void) {
    return &host_table;
}

int af_plugins_init(const af_plugins_opts_t *opts, af_error_t *err) {
    if (af__svc.ready) {
        return 0;
    }
    af__services_fill(&host_table);
    host_table.register_node = reg_node;
    host_table.register_trigger = reg_trigger;
    return af__services_init(opts, err);
}

void af_plugins_shutdown(void) {
    for (int i = nloaded - 1; i >= 0; i--) {
        loaded_t *p = loaded[i];
        for (int k = 0; k < p->ntypes; k++) {
            af_registry_remove(&p->types[k].def);
        }
        for (int k = 0; k < p->ntriggers; k++) {
            trigger_unregister(&p->triggers[k]);
        }
        if (p->desc->shutdown) {
            p->desc->shutdown();
        }
        loaded_free(p);
    }
    nloaded = 0;
    while (nrecords > 0) {
        records_pop();
    }
    af__services_shutdown();
}
