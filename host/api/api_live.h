/* api_live.h -- the triggers that start executions by themselves while the server runs
 * (schedules, event subscriptions, polls): what api_live.c, api_events.c and api_polls.c share. */
#ifndef AF_API_LIVE_H
#define AF_API_LIVE_H

#include "api/api_internal.h"
#include "bus/bus.h"

#define AF__LIVE_QUEUE_MAX 100 /* fires an `overlap = "queue"` schedule holds at most */

typedef struct af__live_s af__live_t;
struct af__live_s {
    af_api_t *api;
    af__live_t *next; /* in its hash bucket */
    char id[AF_STORE_ID_MAX], workflow_id[AF_STORE_ID_MAX];
    enum { AF__LIVE_SCHEDULE, AF__LIVE_EVENT, AF__LIVE_POLL, AF__LIVE_PLUGIN } kind;
    int version, position; /* the workflow's current version; -1: an API trigger */
    int64_t updated_at;    /* of the trigger row: another value means a new config */
    json_t *config;
    char *file;      /* the version's script: the trigger's functions live there (owned) */
    int seen;        /* refresh: still declared */
    uint64_t serial; /* this copy of the trigger (a rebuild makes another): late writes of an
                      * earlier copy are told apart */
    /* schedule */
    int overlap;
    int64_t last_fire_at;
    char last_execution_id[AF_STORE_ID_MAX];
    int64_t *queued; /* fires waiting (owned; NULL when none waited yet) */
    int nqueued;
    char creating[AF_STORE_ID_MAX]; /* the execution a fire is creating now ("" for none) */
    int carried;                    /* its memory came from the copy it replaced */
    af_watch_t *watch;              /* the previous execution, while fires queue behind it */
    /* event */
    uint64_t sub;
    /* poll */
    uv_timer_t *poll_timer;
    json_t *poll_state;                 /* known items (af_poll_diff); NULL before the first poll */
    void *http;                         /* the poll's request in flight (af_http_t) */
    const af_triggerdef_t *plugin_type; /* a plugin trigger: its type and instance, running */
    void *plugin_instance;
    af_node_call_t *node_call; /* a poll by a node type: its call (reused), and its instance */
    void *node_instance;
    int polling, failures;
    int writing; /* the executions and state of a poll are being written */
    /* its config, read once: the interval, jitter, limit per workflow, and the target */
    int64_t interval_ms, jitter_ms, max_period_ms;
    int max_polls;
    char host[256]; /* "host:HOST[:PORT]" of the request's or the node's url; "" for none */
};

/* Calls the trigger's function `field` ("input", "filter", "fn") with arg (borrowed): 1 with
 * *out (new), 0 when the trigger has none (its workflow's VM is not asked then), or a negative
 * code with fault. */
int af__live_call(af__live_t *l, const char *field, json_t *arg, json_t **out, af_fault_t *fault);
/* The running trigger of id, or NULL. */
af__live_t *af__live_find(af_api_t *api, const char *id);
/* The same, when it is still the copy with this serial (a write it started came back). */
af__live_t *af__live_find_copy(af_api_t *api, const char *id, uint64_t serial);
/* The trigger's input for an execution from what fired it (arg, stolen): its `input` function's
 * result, a constant `input`, or arg itself. NULL (arg released) with fault on failure. */
json_t *af__live_input(af__live_t *l, json_t *arg, af_fault_t *fault);

/* Events: POST /api/events, /api/events/replay, GET /api/events; delivery to subscriptions. */
int af__api_routes_events(af_api_t *api, af_error_t *err);
int af__events_start(af_api_t *api);
void af__events_stop(af_api_t *api);
int af__events_subscribe(af__live_t *l, af_error_t *err);
void af__events_unsubscribe(af__live_t *l);

/* Polls: a timer per poll trigger. */
int af__polls_start(af__live_t *l, af_error_t *err);
void af__polls_stop(af__live_t *l);

#endif
