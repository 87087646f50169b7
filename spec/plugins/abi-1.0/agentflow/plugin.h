/* A frozen copy of agentflow/plugin.h as released with ABI 1.0 -- do not edit. The fixture built
 * with it proves that a plugin built for an older minor still loads. */
/* agentflow/plugin.h -- the whole plugin ABI of agentflow: what a plugin exports, the types it
 * registers, and the table of host services it receives. A plugin never links against the host.
 *
 * Versioning. AF_ABI_MAJOR changes only when something here changes incompatibly; the host
 * refuses a plugin built for another major. AF_ABI_MINOR grows when entries are appended: the
 * host services table only ever grows at its end (an entry's position never changes), and every
 * struct a plugin hands over starts with its own size, so the host reads only the fields the
 * plugin was built with. A plugin built against an older minor loads in a newer host. A plugin
 * that needs an entry newer than the host's tests `AF_HOST_HAS(host, entry)` first.
 *
 * Ownership, in jansson's words: "borrowed" pointers are valid for the duration of the call only
 * (copy what you keep); "new" results are the caller's and are released with host->free.
 * JSON crosses the ABI as UTF-8 text, never as library objects, so a plugin may use any JSON
 * library (or none) and the host may change its own.
 *
 * Threading. Every host service is for the loop thread (the thread that called init, execute,
 * cancel, start, or a callback from the host), except those marked "any thread": call_succeed,
 * call_fail, log and the metric functions. An AF_NODE_BLOCKING type's execute runs on a worker
 * thread; it may only use the "any thread" services. */
#ifndef AGENTFLOW_PLUGIN_H
#define AGENTFLOW_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AF_ABI_MAJOR 1
#define AF_ABI_MINOR 0

#if defined(__GNUC__)
#define AF_PLUGIN_EXPORT __attribute__((visibility("default")))
#define AF_PRINTF(f, a)  __attribute__((format(printf, f, a)))
#else
#define AF_PLUGIN_EXPORT
#define AF_PRINTF(f, a)
#endif

/* Results of execute and of host services. */
#define AF_DONE    0  /* execute: the call was completed inside execute */
#define AF_PENDING 1  /* execute: exactly one call_succeed or call_fail follows */
#define AF_ERR     -1 /* generic failure; a message was logged or set */
#define AF_ENOTSUP -2 /* not available in this host or mode */
#define AF_EARG    -3 /* invalid argument */
#define AF_ENOKEY  -4 /* no such key / secret */

/* call_fail: may the engine retry the step? */
#define AF_FATAL     0
#define AF_RETRYABLE 1

/* Log levels. */
#define AF_LOG_DEBUG 0
#define AF_LOG_INFO  1
#define AF_LOG_WARN  2
#define AF_LOG_ERROR 3

/* State scopes. */
#define AF_SCOPE_WORKFLOW 0 /* shared by the executions of one workflow */
#define AF_SCOPE_PLUGIN   1 /* shared by everything the plugin does */

/* Node type flags. */
#define AF_NODE_BLOCKING 0x1 /* execute blocks (CPU, blocking I/O): run it on a worker thread */

/* HTTP request flags. */
#define AF_HTTP_INSECURE 0x1 /* do not verify the TLS peer (verification is on by default) */

typedef struct af_host af_host_t;                 /* the services table */
typedef struct af_registrar af_registrar_t;       /* opaque: where init registers types */
typedef struct af_call af_call_t;                 /* opaque: one execution of a node */
typedef struct af_trigger_sink af_trigger_sink_t; /* opaque: where a trigger fires */
typedef struct af_http af_http_t;                 /* opaque: an HTTP request in flight */
typedef struct af_timer af_timer_t;               /* opaque: a timer */

/* ---- what a plugin registers ------------------------------------------------------------- */

/* A node type. All strings are borrowed by the host for the life of the plugin (use literals). */
typedef struct af_node_type {
    uint32_t size;             /* sizeof(af_node_type_t) when the plugin was built */
    const char *name;          /* "plugin.action": letters, digits, '.', '_', '-' */
    const char *description;   /* one line for `agentflow plugin list` */
    const char *config_schema; /* JSON Schema (text) of the step's config; NULL: any object */
    uint32_t flags;            /* AF_NODE_* */
    /* Once per workflow version using the type, with the step's config as declared (JSON text,
     * values computed at run time shown as "<function>"). Sets *instance (may stay NULL).
     * Returns 0, or AF_ERR with a message in errbuf: the workflow is then refused. May be NULL. */
    int (*create)(const char *config_json, void **instance, char *errbuf, size_t errlen);
    /* One attempt of one step. config_json (borrowed) is the config resolved for this attempt.
     * Returns AF_DONE (completed inside), AF_PENDING (one completion follows, from any thread),
     * or a negative AF_E* code (no completion; the attempt fails with a generic error). */
    int (*execute)(void *instance, af_call_t *call, const char *config_json);
    /* The engine gave up on a pending call (timeout, cancellation). Stop the work; a completion
     * after this returns is dropped. May be NULL. */
    void (*cancel)(void *instance, af_call_t *call);
    /* Frees what create made. May be NULL. */
    void (*destroy)(void *instance);
} af_node_type_t;

/* A trigger type: starts executions from outside events (a queue, a poll, a socket...). */
typedef struct af_trigger_type {
    uint32_t size;
    const char *name;
    const char *description;
    const char *config_schema;
    uint32_t flags;
    /* Starts watching, with the trigger's config; fires executions through host->fire(sink, ..).
     * Sets *instance. Returns 0 or AF_ERR with a message in errbuf. */
    int (*start)(const char *config_json, af_trigger_sink_t *sink, void **instance, char *errbuf,
                 size_t errlen);
    /* Stops watching; no fire after this returns. */
    void (*stop)(void *instance);
} af_trigger_type_t;

/* ---- HTTP -------------------------------------------------------------------------------- */

typedef struct af_http_request {
    uint32_t size;              /* sizeof(af_http_request_t) */
    const char *method;         /* "GET" when NULL */
    const char *url;            /* http:// or https:// */
    const char *const *headers; /* "Name: value" strings, NULL-terminated; may be NULL */
    const char *body;           /* may be NULL */
    size_t body_len;
    uint64_t timeout_ms;       /* whole request; 0: 30 s */
    uint32_t max_redirects;    /* followed redirects; 0: none */
    size_t max_response_bytes; /* larger bodies fail the request; 0: 16 MiB */
    uint32_t flags;            /* AF_HTTP_* */
    /* Streaming: when set, the body is delivered in pieces as it arrives (and not kept). */
    void (*on_data)(void *ud, const char *chunk, size_t len);
} af_http_request_t;

typedef struct af_http_response {
    uint32_t size;
    int status;                 /* HTTP status; 0 when the transfer failed */
    const char *error;          /* transfer error ("timeout", "connection refused", ...) or NULL */
    const char *const *headers; /* "Name: value", NULL-terminated, of the final response */
    const char *body;           /* NUL-terminated (for convenience); NULL when streamed */
    size_t body_len;
    double elapsed_ms;
    const char *effective_url; /* after redirects */
} af_http_response_t;

/* Called once on the loop thread; res and everything in it are borrowed. Not called after
 * http_cancel. */
typedef void (*af_http_done_fn)(void *ud, const af_http_response_t *res);

/* ---- the host services table --------------------------------------------------------------- */

struct af_host {
    uint32_t size;      /* sizeof(af_host_t) in the host: entries past it are absent */
    uint16_t abi_major; /* the host's ABI */
    uint16_t abi_minor;

    /* == ABI 1.0 == */

    /* Registration, during init only. Returns 0, or AF_ERR (duplicate name, bad struct); the
     * host then refuses the whole plugin. */
    int (*register_node)(af_registrar_t *reg, const af_node_type_t *type);
    int (*register_trigger)(af_registrar_t *reg, const af_trigger_type_t *type);

    /* Logging, any thread. call may be NULL; with a call the line goes to that execution's log. */
    void (*log)(af_call_t *call, int level, const char *fmt, ...) AF_PRINTF(3, 4);

    /* About a call (borrowed strings, valid until the call completes). */
    const char *(*call_execution_id)(af_call_t *call);
    const char *(*call_workflow)(af_call_t *call);
    const char *(*call_step)(af_call_t *call);
    int (*call_attempt)(af_call_t *call);
    /* Pass it to external services so a retried attempt is not done twice. */
    const char *(*call_idempotency_key)(af_call_t *call);

    /* Completing a call, any thread, exactly once after AF_PENDING (or inside execute before
     * returning AF_DONE). output_json: the step's output (JSON text, borrowed; NULL is null);
     * port: the output port taken, NULL for the default. */
    void (*call_succeed)(af_call_t *call, const char *output_json, const char *port);
    /* retryable: AF_RETRYABLE or AF_FATAL; code: a short upper-case word ("HTTP_503"). */
    void (*call_fail)(af_call_t *call, int retryable, const char *code, const char *message);

    /* HTTP, loop thread: starts a request (copied; pointers borrowed for this call only). done
     * is called once unless the request is cancelled first. Returns 0 and sets *handle (may be
     * NULL if you do not need to cancel), or a negative code (done is never called). */
    int (*http_request)(const af_http_request_t *req, af_http_done_fn done, void *ud,
                        af_http_t **handle);
    void (*http_cancel)(af_http_t *handle);

    /* Timers, loop thread: cb runs once after ms unless stopped. */
    int (*timer_start)(uint64_t ms, void (*cb)(void *ud), void *ud, af_timer_t **timer);
    void (*timer_stop)(af_timer_t *timer);

    /* Key-value state, loop thread. Values are JSON text. get sets *value_json (new) or returns
     * AF_ENOKEY. set with value_json NULL deletes; ttl_ms 0 keeps it forever. */
    int (*state_get)(af_call_t *call, int scope, const char *key, char **value_json);
    int (*state_set)(af_call_t *call, int scope, const char *key, const char *value_json,
                     uint64_t ttl_ms);

    /* A secret's value by name (new), for the call's workflow; AF_ENOKEY when unknown. The host
     * masks the value wherever it would be shown. */
    int (*secret)(af_call_t *call, const char *name, char **value);

    /* Emits an event (type like "order.created", data JSON text) for event triggers. */
    int (*emit_event)(af_call_t *call, const char *type, const char *data_json);

    /* Fires an execution from a trigger with input_json (the execution's ctx.trigger). */
    int (*fire)(af_trigger_sink_t *sink, const char *input_json);

    /* Metrics, any thread. labels: "k=v,k2=v2" or NULL. */
    void (*metric_add)(const char *name, const char *labels, double value);
    void (*metric_observe)(const char *name, const char *labels, double value);

    /* Blocking work, loop thread: work(ud) runs on a worker thread, then after(ud, cancelled)
     * on the loop thread. */
    int (*run_blocking)(void (*work)(void *ud), void (*after)(void *ud, int cancelled), void *ud);

    /* Frees what the host returned as new. */
    void (*free)(void *ptr);

    /* Per-call data for the plugin (what execute started, for cancel). */
    void (*call_set_data)(af_call_t *call, void *data);
    void *(*call_get_data)(af_call_t *call);

    /* == entries added by later minors go here, only here == */
};

/* Non-zero when the host's table has `entry` (use before calling anything newer than 1.0). */
#define AF_HOST_HAS(host, entry)                                                                   \
    ((host)->size >= offsetof(af_host_t, entry) + sizeof((host)->entry) && (host)->entry != NULL)

/* ---- the plugin ---------------------------------------------------------------------------- */

typedef struct af_plugin {
    uint32_t size;       /* sizeof(af_plugin_t) */
    uint16_t abi_major;  /* AF_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor;  /* AF_ABI_MINOR the plugin needs at least */
    const char *name;    /* unique: letters, digits, '-', '_' */
    const char *version; /* semver: "1.2.3" */
    const char *description;
    /* Registers the plugin's types. host stays valid until shutdown returns. Returns 0, or
     * AF_ERR: the host then unloads the plugin (shutdown is not called). */
    int (*init)(const af_host_t *host, af_registrar_t *reg);
    /* Before unloading; may be NULL. */
    void (*shutdown)(void);
} af_plugin_t;

/* The one symbol a plugin exports: returns its static descriptor. */
#define AF_PLUGIN_ENTRY_SYMBOL "af_plugin_entry"
typedef const af_plugin_t *(*af_plugin_entry_fn)(void);

/* Declares the entry: AF_PLUGIN_DECLARE(descriptor) in one .c file of the plugin. */
#define AF_PLUGIN_DECLARE(desc)                                                                    \
    AF_PLUGIN_EXPORT const af_plugin_t *af_plugin_entry(void);                                     \
    AF_PLUGIN_EXPORT const af_plugin_t *af_plugin_entry(void) {                                    \
        return &(desc);                                                                            \
    }

#ifdef __cplusplus
}
#endif

#endif
