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
} af_api_opts_t;

/* Registers the routes. Workflow scripts are compiled (in a scratch VM on loop) before anything
 * is stored. NULL on out of memory or a route clash, with err. */
af_api_t *af_api_new(const af_api_opts_t *opts, af_error_t *err);
void af_api_free(af_api_t *api);

#endif
