/* poll_diff.h -- change detection of polling triggers: which of the items a poll returned are
 * new or changed since the polls before, so that each starts one execution.
 *
 * An item is known by its key (the value of its `key` field: a string or a number) or, without a
 * key, by a hash of its content. With `hash` on, a known key whose content changed counts as
 * changed. Items that are no longer returned are forgotten (if they come back, they are new). The
 * first poll either records a baseline (emits nothing) or emits everything. The state is plain
 * JSON, to be stored between polls and across restarts. */
#ifndef AF_POLL_DIFF_H
#define AF_POLL_DIFF_H

#include <jansson.h>
#include "core/core.h"

typedef struct af_poll_opts_s {
    const char *key; /* the field naming an item, or NULL: items are known by their content */
    int hash;        /* with key: a changed content counts as a change */
    int baseline;    /* the first poll (state NULL) emits nothing, it only records */
} af_poll_opts_t;

/* Compares items (a JSON array) with state (from the previous call, or NULL before the first
 * poll). *emit gets a new array of the new and changed items in their order; *next_state the
 * state to keep (new reference). Returns 0, or AF_EINVAL with err when items is not an array, an
 * item lacks the key or its key is not a string or a number, or two items share a key. */
int af_poll_diff(const json_t *state, const json_t *items, const af_poll_opts_t *o, json_t **emit,
                 json_t **next_state, af_error_t *err);

#endif
