/* outcome.c -- an execution's row and checkpoints as written, kept in memory. */
#include "engine/outcome.h"

#include <stdlib.h>
#include <string.h>

#include "core/core.h"

af_outcome_t *af_outcome_new(void) {
    return calloc(1, sizeof(af_outcome_t));
}

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

static void step_clear(af_checkpoint_t *c) {
    free(c->step);
    json_decref(c->output);
    free(c->error);
    free(c->port);
}

/* The slot of step: the existing one (cleared) or a new one at the end; NULL when out of memory. */
static af_checkpoint_t *slot_for(af_outcome_t *o, const char *step) {
    for (size_t i = 0; i < o->nsteps; i++) {
        if (strcmp(o->steps[i].step, step) == 0) {
            step_clear(&o->steps[i]);
            return &o->steps[i];
        }
    }
    if (af_grow((void **)&o->steps, &o->cap, o->nsteps + 1, sizeof *o->steps) != 0) {
        return NULL;
    }
    return &o->steps[o->nsteps++];
}

int af_outcome_step(af_outcome_t *o, const af_checkpoint_t *c) {
    if (c->step == NULL) {
        return AF_ENOMEM; /* its name could not be copied either */
    }
    af_checkpoint_t copy = *c;
    copy.step = strdup(c->step);
    copy.output = c->output ? json_incref(c->output) : NULL;
    copy.error = dup_or_null(c->error);
    copy.port = dup_or_null(c->port);
    af_checkpoint_t *slot = NULL;
    if (copy.step && (copy.error || !c->error) && (copy.port || !c->port)) {
        slot = slot_for(o, c->step);
    }
    if (slot == NULL) {
        step_clear(&copy);
        return AF_ENOMEM;
    }
    *slot = copy;
    return 0;
}

static int by_step(const void *a, const void *b) {
    return strcmp(((const af_checkpoint_t *)a)->step, ((const af_checkpoint_t *)b)->step);
}

void af_outcome_sort(af_outcome_t *o) {
    if (o->nsteps > 1) {
        qsort(o->steps, o->nsteps, sizeof *o->steps, by_step);
    }
}

void af_outcome_free(af_outcome_t *o) {
    if (o == NULL) {
        return;
    }
    af_execution_clear(&o->execution);
    af_checkpoints_free(o->steps, o->nsteps);
    free(o);
}
