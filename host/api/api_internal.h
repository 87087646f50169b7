/* api_internal.h -- what the REST handler files share: the API's state and small helpers. */
#ifndef AF_API_INTERNAL_H
#define AF_API_INTERNAL_H

#include <jansson.h>
#include "api/api.h"
#include "engine/outcome.h"
#include "graph/graph.h"

typedef struct af__hook_cache_s af__hook_cache_t;
typedef struct af__lives_s af__lives_t;
typedef struct af__events_s af__events_t;

struct af_api_s {
    af_api_opts_t o;
    uint64_t generation;     /* bumped by every definition change: cached lookups are stale */
    af__hook_cache_t *hooks; /* webhook lookups by path (api_webhooks.c) */
    af__lives_t *lives;      /* schedules, subscriptions and polls running (api_live.c) */
    af__events_t *events;    /* the bus and event bookkeeping (api_events.c) */
};

/* Definitions (workflows, versions, triggers) of a workflow (NULL: of any) changed: forget what
 * was cached about them. */
void af__api_changed(af_api_t *api, const char *workflow_id);
void af__api_hooks_free(af_api_t *api);

/* ISO-8601 text of a time in ms, or JSON null for 0 (new reference). */
json_t *af__api_iso(int64_t ms);
/* A store/engine error code as an HTTP status. */
int af__api_status(int code);
/* Sends the error for code with err's message. */
void af__api_fail(af_http_res_t *res, int code, const af_error_t *err);
/* ?limit (1..200, default 50); sends 400 and returns -1 when malformed. */
int af__api_limit(af_http_req_t *req, af_http_res_t *res);
/* Sends 200 {"items": items} (stolen); with paged also "next_cursor": next, null when next is
 * NULL or empty (the last page). */
void af__api_send_items(af_http_res_t *res, json_t *items, const char *next, int paged);
/* Parses a JSON request body (must be application/json); sends 415/400 and returns NULL. */
json_t *af__api_json_body(af_http_req_t *req, af_http_res_t *res);
/* Compiles a script in a scratch VM; on failure sends 422 with file:line and returns NULL. */
af_graph_t *af__api_compile(af_api_t *api, af_http_res_t *res, const char *src, size_t len);

/* The execution record with its steps (new): from outcome when given (what the worker wrote, kept
 * in memory), else read from the store; or NULL with *rc and err. */
json_t *af__api_execution_json(af_api_t *api, const char *id, const af_outcome_t *outcome,
                               af_error_t *err, int *rc);

/* Creating executions: rows and queue jobs in one group transaction, answered after the commit;
 * then the worker gets them. A webhook's message id (scope + msg_id) is recorded in the same
 * transaction, and a repeat creates nothing (duplicate = 1, first_id = the first execution). */
typedef struct af_create_s af_create_t;
struct af_create_s {
    af_api_t *api;
    char workflow_id[AF_STORE_ID_MAX];
    int version;
    size_t n;
    json_t **inputs;              /* n inputs, owned */
    char (*ids)[AF_STORE_ID_MAX]; /* n ids, made before the write */
    size_t nstarted;              /* the first nstarted got a worker slot: created running */
#define AF__CREATED_STATUS(c, i) ((i) < (c)->nstarted ? "running" : "queued")
    int64_t created_at;         /* the rows' creation time */
    int waited;                 /* someone waits for the end: the worker keeps what it writes */
    int event_depth;            /* started by an event of this depth */
    char *seen_scope, *seen_id; /* optional */
    /* optional: the state of this trigger is written in the same transaction, its
     * last_execution_id set to the last execution created */
    char state_trigger[AF_STORE_ID_MAX];
    af_trigger_state_t state; /* owned */
    int duplicate;
    char first_id[AF_STORE_ID_MAX];
    void (*done)(af_create_t *c, int rc); /* on the loop, after the commit; then c is freed */
    void *ud;
};
/* A creation for n inputs (stolen array of new references) of the workflow's version. */
af_create_t *af__api_create_new(af_api_t *api, const char *workflow_id, int version,
                                json_t **inputs, size_t n);
/* The same for one input (stolen, may be NULL). NULL on out of memory (input released). */
af_create_t *af__api_create_one(af_api_t *api, const char *workflow_id, int version, json_t *input);
/* Records the creation under message id msg_id of scope prefix+scope (copied), so the same id
 * creates nothing again (c->duplicate). Returns 0 or AF_ENOMEM. */
int af__api_create_seen(af_create_t *c, const char *prefix, const char *scope, const char *msg_id);
/* Submits it; done follows (also on failure to submit). */
void af__api_create_submit(af_create_t *c);
/* What a submission runs on the writer (the rows, jobs, seen id and state) and, on the loop after
 * the commit, hands over and finishes (done, then free): for callers that write several
 * creations, or more, in one operation of their own. Reserve slots with af__api_create_reserve
 * before the submission. */
int af__api_create_write(af_store_t *s, af_create_t *c);
void af__api_create_written(af_create_t *c, int rc);
void af__api_create_reserve(af_create_t *c);

/* The current version of a workflow and its script file; sends 404/500 and returns -1. */
int af__api_current(af_api_t *api, af_http_res_t *res, const char *workflow_id, int *version,
                    char *path, size_t size, char *status_out);

/* Waits (at most ms) for an execution the worker holds to end, then answers res with the
 * execution (200), or 202 with {"id","status"} when time runs out. */
typedef void (*af__api_answer_fn)(af_api_t *api, af_http_res_t *res, const char *id, int done,
                                  const af_outcome_t *outcome, void *ud);
void af__api_wait(af_api_t *api, af_http_res_t *res, const char *id, int64_t ms,
                  af__api_answer_fn answer, void *ud);

/* Registers the triggers the script declares (replacing the script's earlier ones), within an
 * open store transaction on api's connection. AF_EEXISTS when a webhook path is taken. */
int af__api_sync_triggers(af_api_t *api, const char *workflow_id, const af_graph_t *g,
                          af_error_t *err);

int af__api_routes_workflows(af_api_t *api, af_error_t *err);
int af__api_routes_executions(af_api_t *api, af_error_t *err);
int af__api_routes_webhooks(af_api_t *api, af_error_t *err);
/* Live triggers: started once the worker has loaded, rebuilt after definition changes. */
int af__api_live_new(af_api_t *api, af_error_t *err);
void af__api_live_refresh(af_api_t *api);
/* Definitions of a workflow (NULL: of any) changed: its live triggers are rebuilt on the next
 * loop turn. */
void af__api_live_changed(af_api_t *api, const char *workflow_id);
/* When schedule trigger id fires next (0: never); *live = 0 when it is not running (paused,
 * inactive, not a schedule) and then 0 is returned. */
int64_t af__api_live_next_run(af_api_t *api, const char *id, int *live);
void af__api_live_free(af_api_t *api);
int af__api_route(af_api_t *api, const char *method, const char *pattern, af_http_handler_fn fn,
                  af_error_t *err);

#endif
