/* scheduler.h -- many schedules, one clock given by the caller: a min-heap of next due times.
 * Nothing here reads the time: every call takes `now`, so the server drives it from its timer
 * and tests move time forward at will (the controlled clock of the trigger system). */
#ifndef AF_SCHEDULER_H
#define AF_SCHEDULER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "core/core.h"

typedef struct af_scheduler_s af_scheduler_t;

/* A fire: the trigger, the due time it is for, and whether it catches up a missed one. */
typedef void (*af_scheduler_fire_fn)(void *ud, const char *trigger_id, int64_t due_ms, int catchup);

af_scheduler_t *af_scheduler_new(void);
void af_scheduler_free(af_scheduler_t *s);

/* Adds trigger id (or replaces its schedule) from its config (borrowed). last_ms is when it
 * last fired (0: never, then it starts from now): the due times it missed up to now are fired,
 * as its missed policy says, by the next af_scheduler_run. Returns 0 or a negative code with err
 * (an invalid config, AF_EINVAL; an id of 64 bytes or more). */
int af_scheduler_put(af_scheduler_t *s, const char *id, const json_t *config, int64_t last_ms,
                     int64_t now_ms, af_error_t *err);
/* Removes trigger id; 0, or AF_ENOTFOUND. */
int af_scheduler_remove(af_scheduler_t *s, const char *id);

/* Fires, in due order, everything due at or before now_ms (catch-ups first for a trigger), and
 * moves each fired trigger to its next due time. fire must not call back into s. Returns how
 * many fired. */
size_t af_scheduler_run(af_scheduler_t *s, int64_t now_ms, af_scheduler_fire_fn fire, void *ud);

/* The earliest due time of all (for the caller's timer), or INT64_MAX when nothing is due ever. */
int64_t af_scheduler_next_due(const af_scheduler_t *s);
/* Trigger id's next due time, or 0 when it has none (unknown, or it never fires again). */
int64_t af_scheduler_due_of(const af_scheduler_t *s, const char *id);
size_t af_scheduler_count(const af_scheduler_t *s);

#endif
