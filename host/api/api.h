/* api.h -- the REST API of `agentflow serve`: routes on the HTTP server's router, backed by the
 * store. This release serves health, readiness and workflow definitions with their versions. */
#ifndef AF_API_H
#define AF_API_H

#include <uv.h>
#include "core/core.h"
#include "engine/engine.h"
#include "net/http_server.h"
#include "store/store.h"

typedef struct af_api_s af_api_t;

/* Registers the routes on router (borrowed, like store and loop, for the API's life). Workflow
 * scripts are compiled (in a scratch VM on loop) before anything is stored. NULL on out of
 * memory or a route clash, with err. */
af_api_t *af_api_new(uv_loop_t *loop, af_store_t *store, af_http_router_t *router, af_error_t *err);
/* Runs executions on engine; scripts of stored versions are written under data_dir/versions
 * (one immutable file per version). The engine's checkpoint callback must be
 * af_api_checkpoint with the API as its ud. */
void af_api_set_engine(af_api_t *api, af_engine_t *engine, const char *data_dir);
/* Appends the engine's events to the executions' logs in the store (af_engine_opts_t.on_event). */
void af_api_on_event(void *api, const af_event_t *ev);
/* Saves a finished step of an execution in the store (af_engine_opts_t.checkpoint). */
int af_api_checkpoint(void *api, const af_exec_t *x, int step, const json_t *output);
void af_api_free(af_api_t *api);

#endif
