/* api.h -- the REST API of `agentflow serve`: routes on the HTTP server's router for workflows,
 * versions, triggers, executions, logs, dead letters and webhooks. Reads go to the loop thread's
 * store connection; execution writes go through the store's writer (group commit) and are
 * answered only after their commit; the worker runs what was accepted. */
#ifndef AF_API_H
#define AF_API_H

#include <uv.h>
#include "core/core.h"
#include "engine/worker.h"
#include "net/http_server.h"
#include "plugin/plugin.h"
#include "store/store.h"
#include "store/store_async.h"

typedef struct af_api_s af_api_t;

typedef struct af_api_opts_s {
    uv_loop_t *loop;
    af_store_t *store;        /* the loop thread's connection (borrowed) */
    af_store_async_t *writer; /* group-commit writes (borrowed) */
    af_worker_t *worker;      /* runs accepted executions (borrowed) */
    af_http_router_t *router; /* routes are added here (borrowed) */
    int64_t max_wait_ms;      /* bound of ?wait= and of webhook wait mode [30 s] */
    int64_t seen_ttl_ms;      /* Standard Webhooks ids are remembered this long [24 h] */
    int64_t tolerance_ms;     /* Standard Webhooks timestamp tolerance [5 min] */
    /* Secret values by name, for webhook signatures ("<secret NAME>" in a trigger's config). */
    const char *(*secret)(void *ud, const char *name);
    void *secret_ud;
    int event_max_depth;         /* events a chain of workflows may emit in a row [8] */
    int poll_max_per_host;       /* polls of one target host per period, all workflows [60] */
    int64_t poll_host_period_ms; /* [1 min] */
    /* HTTP for polls (borrowed functions; NULL: polls with a request fail) */
    int (*http_request)(void *ud, const af_http_request_t *req, af_http_done_fn done, void *cb_ud,
                        af_http_t **handle);
    void (*http_cancel)(void *ud, af_http_t *handle);
    void *http_ud;
} af_api_opts_t;

/* Registers the routes. Workflow scripts are compiled (in a scratch VM on loop) before anything
 * is stored. NULL on out of memory or a route clash, with err. */
af_api_t *af_api_new(const af_api_opts_t *opts, af_error_t *err);
/* Starts the triggers that fire by themselves (schedules, event subscriptions, polls) from what
 * the store declares; call it once the worker has loaded. Returns 0 or a negative code. */
int af_api_start_triggers(af_api_t *api, af_error_t *err);
/* Stops them (nothing fires after this); the API goes on answering. */
void af_api_stop_triggers(af_api_t *api);
/* Publishes an event a workflow emits (af.emit, the core.emit step): one level deeper than
 * depth, the depth of the event that started root_execution_id (may be NULL), matched and
 * delivered like one from POST /api/events. data is borrowed. Returns 0, AF_EINVAL (not an event
 * type) or AF_ELIMIT (the chain is at events.max_depth: nothing is published). */
int af_api_emit(af_api_t *api, const char *root_execution_id, int depth, const char *type,
                json_t *data);
void af_api_free(af_api_t *api);

#endif
