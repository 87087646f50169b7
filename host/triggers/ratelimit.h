/* ratelimit.h -- limits of polling triggers: at most `max` polls per `period` for a key (a
 * workflow, a target host), with the time given by the caller (tests move it at will); and the
 * wait after consecutive failures. A sliding window of the last `max` start times per key: a poll
 * may start when the oldest of them is at least `period` ago. */
#ifndef AF_RATELIMIT_H
#define AF_RATELIMIT_H

#include <stdint.h>
#include "core/core.h"

typedef struct af_ratelimit_s af_ratelimit_t;

af_ratelimit_t *af_ratelimit_new(void);
void af_ratelimit_free(af_ratelimit_t *r);

/* Takes one start for key at now_ms if fewer than max (1..1000) started in the period before:
 * returns 1. Else returns 0 and sets *retry_ms (may be NULL) to when one may start. A key's first
 * max or period given wins (the limits of a key do not change while it is known). Returns -1 when
 * out of memory. */
int af_ratelimit_take(af_ratelimit_t *r, const char *key, int64_t now_ms, int max,
                      int64_t period_ms, int64_t *retry_ms);

/* The wait after the n-th consecutive failure (n >= 1): base * 2^(n-1), capped at max_ms. */
int64_t af_backoff_ms(int failures, int64_t base_ms, int64_t max_ms);

#endif
