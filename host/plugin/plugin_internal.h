/* plugin_internal.h -- what loader.c and services.c share: the call token plugins hold, the
 * loaded plugin's types, and the hand-off of completions from worker threads to the loop. */
#ifndef AF_PLUGIN_INTERNAL_H
#define AF_PLUGIN_INTERNAL_H

#include <pthread.h>

#include "plugin/plugin.h"

typedef struct loaded_s loaded_t;

/* A node type of a shared-object plugin, adapted to the registry. def comes first. */
typedef struct plugin_type_s {
    af_nodedef_t def;
    af_node_type_t t; /* the plugin's struct, copied up to its size, zero beyond */
    loaded_t *plugin;
} plugin_type_t;

/* What a plugin holds as af_call_t: one attempt. It outlives the engine's call when the plugin
 * completes late (after a cancel): both sides hold a reference. */
struct af_call {
    af_node_call_t *call; /* NULL once the engine let go (completed or cancelled) */
    const plugin_type_t *pt;
    int refs;
    void *data;
    char *config;
    int exec_rc; /* blocking types: what execute returned on the worker */
    uv_work_t work;
    /* a completion from another thread, waiting for the loop */
    int completed;
    int failed, retryable;
    uint64_t retry_after_ms;
    char *output, *port, *code, *message;
    struct af_call *next_done;
};

typedef struct af_services_s {
    af_plugins_opts_t opts;
    uv_thread_t loop_thread;
    uv_async_t async;
    pthread_mutex_t lock;
    struct af_call *done_head, *done_tail; /* completions from workers, under lock */
    json_t *state;                         /* "scope\x1fowner\x1fkey" -> {"v": text, "exp": ms} */
    json_t *metrics;                       /* "name{labels}" -> {"kind", "value", "count", "sum"} */
    int ready;
} af_services_t;

extern af_services_t af__svc;

int af__on_loop_thread(void);
/* Completes the engine's call from a token, on the loop thread; drops it if the engine let go. */
void af__token_complete(struct af_call *tok, int failed, int retryable, const char *output,
                        const char *port, const char *code, const char *message);
/* The retry-after a failing completion carries (set before af__token_complete). */
void af__token_release(struct af_call *tok);
/* host->fire: hands a trigger's input to whoever started it. */
int af__sink_fire(af_trigger_sink_t *sink, const char *input_json);
/* Fills the services table. */
void af__services_fill(af_host_t *host);
int af__services_init(const af_plugins_opts_t *opts, af_error_t *err);
void af__services_shutdown(void);

#endif
