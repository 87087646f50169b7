/* bus.h -- the event bus: subscriptions (an event type pattern and a `where` predicate over the
 * event's data) and publishing to them; an interface over backends, in-process being the first.
 *
 * A backend is an af_bus_ops_t vtable plus its state: it embeds af_bus_t as its first member and
 * sets `ops`. The af_bus_* functions check their arguments (event types, patterns) and then call
 * the backend, so backends see only valid input. */
#ifndef AF_BUS_BUS_H
#define AF_BUS_BUS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

typedef struct af_bus_event_s {
    const char *id;   /* the event's id */
    const char *type; /* e.g. "order.created" (a valid event type, see bus/pattern.h) */
    json_t *data;     /* borrowed */
    json_t *meta;     /* borrowed, may be NULL (e.g. {"depth": 1, "source": ...}) */
    int64_t at;       /* ms since epoch */
    void *ud;         /* the publisher's, handed to each delivery with the event */
} af_bus_event_t;

/* Called for each subscription an event matches, during af_bus_publish, in subscription order
 * (by id ascending). ev and everything it points to are borrowed for the call. The callback may
 * subscribe, unsubscribe (itself or others) and publish; a subscription made during a publish
 * does not receive that publish's event. */
typedef void (*af_bus_deliver_fn)(void *sub_ud, const af_bus_event_t *ev);

typedef struct af_bus_s af_bus_t;

/* A backend's operations; arguments are checked by the af_bus_* wrappers before these run. */
typedef struct af_bus_ops_s {
    const char *name; /* "inproc", ... */
    int (*subscribe)(af_bus_t *b, const char *pattern, const json_t *where, af_bus_deliver_fn fn,
                     void *sub_ud, uint64_t *id, af_error_t *err);
    int (*unsubscribe)(af_bus_t *b, uint64_t id);
    int (*publish)(af_bus_t *b, const af_bus_event_t *ev);
    size_t (*count)(const af_bus_t *b);
    void (*destroy)(af_bus_t *b); /* frees the backend, b included */
} af_bus_ops_t;

/* The part every backend starts with. */
struct af_bus_s {
    const af_bus_ops_t *ops;
};

/* A new in-process bus (free with af_bus_free): subscriptions are indexed by pattern (exact
 * types hashed, others by their first or last literal segment, identical patterns matched once
 * per event), so publishing costs little more than the subscriptions that could match. Returns
 * NULL on out of memory. Not thread-safe: use it from one thread. */
af_bus_t *af_bus_inproc_new(void);

/* Frees b (owned; NULL is fine) and all its subscriptions. Not from inside a deliver callback. */
void af_bus_free(af_bus_t *b);

/* Subscribes fn(sub_ud, ev) to events whose type matches pattern (borrowed; an event type
 * pattern, see bus/pattern.h) and whose data satisfies where (borrowed; a predicate spec, see
 * bus/predicate.h; NULL for all events). sub_ud is borrowed and passed back as is. Sets *id to
 * a positive id, larger than any given before. Returns 0, AF_EINVAL with err (bad pattern, bad
 * where, fn NULL) or AF_ENOMEM. */
int af_bus_subscribe(af_bus_t *b, const char *pattern, const json_t *where, af_bus_deliver_fn fn,
                     void *sub_ud, uint64_t *id, af_error_t *err);

/* Removes a subscription. Returns 0 or AF_ENOTFOUND. Safe inside a deliver callback: the
 * subscription gets nothing more from the publish under way and is freed when it ends. */
int af_bus_unsubscribe(af_bus_t *b, uint64_t id);

/* Delivers ev (borrowed) to every subscription whose pattern and where match, in id order.
 * Returns how many it was delivered to (>= 0; those matched, less any unsubscribed by an earlier
 * callback of this publish), AF_EINVAL when ev's type is not a valid event type (nothing is
 * delivered) or AF_ENOMEM (nothing is delivered). May be called from inside a callback. */
int af_bus_publish(af_bus_t *b, const af_bus_event_t *ev);

/* The number of live subscriptions. */
size_t af_bus_count(const af_bus_t *b);

#endif
