/* pattern.h -- event type patterns of event subscriptions: dot-separated segments
 * ("order.created"); in a pattern `*` stands for exactly one segment and `#` for any number of
 * segments, none included (AMQP topic style): "order.*" matches "order.created" but not
 * "order" or "order.item.added"; "*.failed" matches "payment.failed"; "order.#" matches
 * "order", "order.created" and "order.item.added". */
#ifndef AF_BUS_PATTERN_H
#define AF_BUS_PATTERN_H

#include "core/core.h"

#define AF_EVENT_TYPE_MAX 255

/* Checks a pattern (pattern = 1) or an event type (pattern = 0, no wildcards): segments of
 * letters, digits, '_' and '-', separated by single dots, at most AF_EVENT_TYPE_MAX bytes; a
 * pattern's segments may also be a lone `*`, or `#` (two at most, which bounds matching work).
 * Returns 0 or AF_EINVAL with a message that says what is wrong. */
int af_event_type_check(const char *text, int pattern, af_error_t *err);

/* 1 when the event type matches the pattern (both valid), else 0. */
int af_event_type_match(const char *pattern, const char *type);

#endif
