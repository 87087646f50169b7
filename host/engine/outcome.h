/* outcome.h -- what an execution run in this process wrote to the store (its row and its step
 * checkpoints), kept in memory while it runs so that whoever waits for its end is answered
 * without reading the store back. */
#ifndef AF_OUTCOME_H
#define AF_OUTCOME_H

#include "store/store.h"

typedef struct af_outcome_s {
    af_execution_t execution; /* the row as written (owned) */
    af_checkpoint_t *steps;   /* the checkpoints as written, the latest per step (owned) */
    size_t nsteps, cap;
} af_outcome_t;

/* A new, empty outcome, or NULL when out of memory. */
af_outcome_t *af_outcome_new(void);
/* Records the checkpoint c (copied), replacing an earlier one of the same step. Returns 0 or
 * AF_ENOMEM. */
int af_outcome_step(af_outcome_t *o, const af_checkpoint_t *c);
/* Orders the steps by name, as af_store_checkpoints_load does. */
void af_outcome_sort(af_outcome_t *o);
void af_outcome_free(af_outcome_t *o);

#endif
