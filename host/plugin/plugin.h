/* plugin.h -- loading plugins: shared objects through the SDK's ABI (dlopen, checks, init with the
 * host services table), the records `agentflow plugin list` shows, and trigger types. Lua plugins
 * are loaded by the DSL layer (dsl/lua_plugin.c) and recorded here through af_plugin_record. */
#ifndef AF_PLUGIN_H
#define AF_PLUGIN_H

#include <jansson.h>
#include <uv.h>
#include <agentflow/plugin.h>

#include "core/core.h"
#include "plugin/registry.h"

/* What the host gives plugins that the plugin layer cannot make itself. */
typedef struct af_plugins_opts_s {
    uv_loop_t *loop;
    /* HTTP for host->http_request (NULL: AF_ENOTSUP). */
    int (*http_request)(void *ud, const af_http_request_t *req, af_http_done_fn done, void *cb_ud,
                        af_http_t **handle);
    void (*http_cancel)(void *ud, af_http_t *handle);
    /* An event emitted by a node (host->emit_event); may be NULL. */
    int (*emit_event)(void *ud, af_node_call_t *call, const char *type, json_t *data);
    /* Loads a .lua plugin (the DSL layer's af_lua_plugin_load); NULL: .lua files are refused. */
    int (*load_lua)(const char *path, af_error_t *err);
    void *ud;
} af_plugins_opts_t;

/* Sets up the services table and the worker hand-off on the loop. Call once, before loading. */
int af_plugins_init(const af_plugins_opts_t *opts, af_error_t *err);
/* Calls every plugin's shutdown, unloads them, closes handles (run the loop after). */
void af_plugins_shutdown(void);

/* Loads one plugin file (.so or .lua). Refusals (not ELF, missing entry symbol, another ABI
 * major, newer minor, bad descriptor, duplicate type or plugin name, failing init) return
 * AF_EINVAL/AF_EEXISTS/... with a message naming the file and the reason; nothing of the plugin
 * stays registered. */
int af_plugin_load(const char *path, af_error_t *err);
/* Loads every *.so and *.lua in dir (sorted by name). Each refusal is passed to on_refused (may
 * be NULL); returns how many loaded, or a negative code when dir cannot be read. */
int af_plugins_load_dir(const char *dir, void (*on_refused)(const af_error_t *err, void *ud),
                        void *ud);

/* The directories searched by default: $AGENTFLOW_PLUGIN_PATH (colon-separated), else
 * <exe dir>/plugins and <exe dir>/../lib/agentflow/plugins. Writes up to max paths; returns
 * how many (strings are static). */
int af_plugins_default_dirs(const char **dirs, int max);

/* A record of a loaded plugin, for listing. Used by loaders of every kind. */
int af_plugin_record(const char *name, const char *version, const char *description,
                     const char *file, const char *kind, af_error_t *err);
/* Adds a node type name to the most recent record (for listing). */
void af_plugin_record_type(const char *name, int is_trigger);
/* [{name, version, description, file, kind, nodes: [..], triggers: [..]}] (new). */
json_t *af_plugins_to_json(void);
/* One node or trigger type: {name, kind, plugin, description, config_schema} (new) or NULL. */
json_t *af_plugin_type_info(const char *name);

/* Key-value state and events for callers that are not plugins (Lua code through af.state and
 * af.emit). owner: the workflow (scope AF_SCOPE_WORKFLOW) or plugin name. Values are JSON text;
 * get sets *value (new, free()) or returns AF_ENOKEY. */
int af_state_get(int scope, const char *owner, const char *key, char **value);
int af_state_set(int scope, const char *owner, const char *key, const char *value, uint64_t ttl_ms);
int af_event_emit(af_node_call_t *call, const char *type, json_t *data);

/* The services table plugins receive (tests use it to act as a plugin). */
const af_host_t *af_plugin_host(void);

/* ---- trigger types ---- */

typedef struct af_triggerdef_s {
    const char *name, *description, *schema, *plugin;
    /* Starts a trigger: fire(ud, input) is called on the loop thread for each event. */
    int (*start)(const struct af_triggerdef_s *def, json_t *config,
                 int (*fire)(void *ud, json_t *input), void *ud, void **instance, char *errbuf,
                 size_t errlen);
    void (*stop)(const struct af_triggerdef_s *def, void *instance);
} af_triggerdef_t;

int af_trigger_register(const af_triggerdef_t *def, af_error_t *err);
const af_triggerdef_t *af_trigger_find(const char *name);

#endif
