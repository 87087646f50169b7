/* graph.c -- building a workflow graph (steps, edges, ports, triggers) and validating it:
 * name resolution, port checks, dependents, a stable topological order and cycle reports. */
#include "graph/graph.h"

#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---- */

static char *dup_str(const char *s) {
    return strdup(s ? s : "");
}

static void free_strv(char **v, int n) {
    for (int i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/* Grows *arr (of elem-sized items) so that it can hold need items; doubles to keep appends
 * amortised O(1) on graphs of 100,000 steps. */
static int grow(void **arr, int *cap, int need, size_t elem) {
    if (need <= *cap) {
        return 0;
    }
    int ncap = *cap ? *cap : 4;
    while (ncap < need) {
        ncap *= 2;
    }
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (p == NULL) {
        return AF_ENOMEM;
    }
    *arr = p;
    *cap = ncap;
    return 0;
}

/* The capacity grow() reached for an array of n items that keeps no capacity of its own. */
static int implied_cap(int n) {
    int cap = n > 0 ? 4 : 0;
    while (cap < n) {
        cap *= 2;
    }
    return cap;
}

static void retry_defaults(af_retry_t *r) {
    memset(r, 0, sizeof *r);
    r->attempts = 1;
    r->backoff = AF_BACKOFF_EXPONENTIAL;
    r->initial_ms = 1000;
    r->max_ms = 60000;
}

static void retry_clear(af_retry_t *r) {
    free_strv(r->non_retryable, r->n_non_retryable);
    r->non_retryable = NULL;
    r->n_non_retryable = 0;
}

/* ---- the name index ----
 * Open addressing with linear probing, at most half full. Kept in step with add_step so that
 * duplicate detection does not make building a graph quadratic. */

static uint32_t name_hash(const char *s) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h = (h ^ *p) * 16777619u;
    }
    return h;
}

/* Returns the slot holding name, or the empty slot where it would go. */
static int index_slot(const af_graph_t *g, const char *name) {
    uint32_t mask = (uint32_t)g->name_cap - 1;
    uint32_t i = name_hash(name) & mask;
    for (;;) {
        int v = g->name_slots[i];
        if (v == 0 || strcmp(g->steps[v - 1].name, name) == 0) {
            return (int)i;
        }
        i = (i + 1) & mask;
    }
}

/* Makes room for n steps in the index, rehashing the first `have` steps when it grows. */
static int index_reserve(af_graph_t *g, int n, int have) {
    if (g->name_cap > 0 && (int64_t)n * 2 <= g->name_cap) {
        return 0;
    }
    int cap = g->name_cap ? g->name_cap : 16;
    while ((int64_t)n * 2 > cap) {
        cap *= 2;
    }
    int *slots = calloc((size_t)cap, sizeof *slots);
    if (slots == NULL) {
        return AF_ENOMEM;
    }
    free(g->name_slots);
    g->name_slots = slots;
    g->name_cap = cap;
    for (int i = 0; i < have; i++) {
        g->name_slots[index_slot(g, g->steps[i].name)] = i + 1;
    }
    return 0;
}

/* ---- construction ---- */

af_graph_t *af_graph_new(const char *name) {
    af_graph_t *g = calloc(1, sizeof *g);
    if (g == NULL) {
        return NULL;
    }
    g->name = dup_str(name);
    if (g->name == NULL) {
        free(g);
        return NULL;
    }
    retry_defaults(&g->retry);
    return g;
}

static void step_free(af_step_t *s) {
    if (s->instance_free) {
        s->instance_free(s->instance_owner, s->instance);
    }
    free(s->name);
    free(s->type);
    free(s->where);
    for (int i = 0; i < s->ndeps; i++) {
        free(s->deps[i].step);
        free(s->deps[i].port);
    }
    free(s->deps);
    free_strv(s->ports, s->nports);
    retry_clear(&s->retry);
    json_decref(s->config);
    free(s->dependents);
}

void af_graph_free(af_graph_t *g) {
    if (g == NULL) {
        return;
    }
    for (int i = 0; i < g->nsteps; i++) {
        step_free(&g->steps[i]);
    }
    free(g->steps);
    for (int i = 0; i < g->ntriggers; i++) {
        free(g->triggers[i].type);
        free(g->triggers[i].where);
        json_decref(g->triggers[i].config);
    }
    free(g->triggers);
    free(g->name);
    free(g->description);
    free(g->file);
    retry_clear(&g->retry);
    json_decref(g->vars);
    json_decref(g->sample_input);
    free(g->order);
    free(g->name_slots);
    free(g);
}

af_step_t *af_graph_add_step(af_graph_t *g, const char *name, const char *type, const char *where,
                             af_error_t *err) {
    if (name == NULL || name[0] == '\0') {
        af_error_at(err, AF_EINVAL, where, "a step needs a non-empty name");
        return NULL;
    }
    int prev = af_graph_find(g, name);
    if (prev >= 0) {
        af_error_at(err, AF_EEXISTS, where, "duplicate step name '%s' (first declared at %s)", name,
                    g->steps[prev].where);
        return NULL;
    }
    if (g->nsteps >= INT32_MAX / 4 ||
        grow((void **)&g->steps, &g->capsteps, g->nsteps + 1, sizeof *g->steps) != 0 ||
        index_reserve(g, g->nsteps + 1, g->nsteps) != 0) {
        af_error_at(err, AF_ENOMEM, where, "out of memory adding step '%s'", name);
        return NULL;
    }
    af_step_t *s = &g->steps[g->nsteps];
    memset(s, 0, sizeof *s);
    s->name = dup_str(name);
    s->type = dup_str(type);
    s->where = dup_str(where);
    if (s->name == NULL || s->type == NULL || s->where == NULL) {
        step_free(s);
        af_error_at(err, AF_ENOMEM, where, "out of memory adding step '%s'", name);
        return NULL;
    }
    retry_defaults(&s->retry);
    s->join = AF_JOIN_ANY;
    s->spec_ref = -1;
    g->nsteps++;
    g->name_slots[index_slot(g, s->name)] = g->nsteps;
    return s;
}

int af_graph_find(const af_graph_t *g, const char *name) {
    if (g == NULL || name == NULL) {
        return -1;
    }
    if (g->name_cap == 0) {
        /* steps placed without af_graph_add_step: fall back to a scan */
        for (int i = 0; i < g->nsteps; i++) {
            if (strcmp(g->steps[i].name, name) == 0) {
                return i;
            }
        }
        return -1;
    }
    return g->name_slots[index_slot(g, name)] - 1;
}

int af_step_add_dep(af_step_t *s, const char *from, const char *port) {
    if (s == NULL || from == NULL || from[0] == '\0') {
        return AF_EINVAL;
    }
    int cap = implied_cap(s->ndeps);
    if (grow((void **)&s->deps, &cap, s->ndeps + 1, sizeof *s->deps) != 0) {
        return AF_ENOMEM;
    }
    af_dep_t *d = &s->deps[s->ndeps];
    d->step = strdup(from);
    d->port = port && port[0] ? strdup(port) : NULL;
    d->index = -1;
    if (d->step == NULL || (port && port[0] && d->port == NULL)) {
        free(d->step);
        free(d->port);
        return AF_ENOMEM;
    }
    s->ndeps++;
    return 0;
}

int af_step_add_port(af_step_t *s, const char *port) {
    if (s == NULL || port == NULL || port[0] == '\0') {
        return AF_EINVAL;
    }
    /* "error" is implicit on every step and a repeated port is the same port */
    if (strcmp(port, AF_PORT_ERROR) == 0) {
        return 0;
    }
    for (int i = 0; i < s->nports; i++) {
        if (strcmp(s->ports[i], port) == 0) {
            return 0;
        }
    }
    int cap = implied_cap(s->nports);
    if (grow((void **)&s->ports, &cap, s->nports + 1, sizeof *s->ports) != 0) {
        return AF_ENOMEM;
    }
    s->ports[s->nports] = strdup(port);
    if (s->ports[s->nports] == NULL) {
        return AF_ENOMEM;
    }
    s->nports++;
    return 0;
}

int af_retry_set_non_retryable(af_retry_t *r, const char *const *codes, int n) {
    if (r == NULL || n < 0 || (n > 0 && codes == NULL)) {
        return AF_EINVAL;
    }
    char **v = NULL;
    if (n > 0) {
        v = calloc((size_t)n, sizeof *v);
        if (v == NULL) {
            return AF_ENOMEM;
        }
        for (int i = 0; i < n; i++) {
            v[i] = dup_str(codes[i]);
            if (v[i] == NULL) {
                free_strv(v, i);
                return AF_ENOMEM;
            }
        }
    }
    retry_clear(r);
    r->non_retryable = v;
    r->n_non_retryable = n;
    return 0;
}

int af_graph_add_trigger(af_graph_t *g, const char *type, const char *where, json_t *config) {
    if (g == NULL || type == NULL || type[0] == '\0') {
        json_decref(config);
        return AF_EINVAL;
    }
    int cap = implied_cap(g->ntriggers);
    if (grow((void **)&g->triggers, &cap, g->ntriggers + 1, sizeof *g->triggers) != 0) {
        json_decref(config);
        return AF_ENOMEM;
    }
    af_trigger_t *t = &g->triggers[g->ntriggers];
    t->type = strdup(type);
    t->where = dup_str(where);
    t->config = config;
    if (t->type == NULL || t->where == NULL) {
        free(t->type);
        free(t->where);
        json_decref(config);
        return AF_ENOMEM;
    }
    g->ntriggers++;
    return 0;
}

/* ---- validation ---- */

/* Forgets what a previous validation computed, so a graph can be validated again. */
static void clear_computed(af_graph_t *g) {
    free(g->order);
    g->order = NULL;
    for (int i = 0; i < g->nsteps; i++) {
        af_step_t *s = &g->steps[i];
        free(s->dependents);
        s->dependents = NULL;
        s->ndependents = 0;
        for (int j = 0; j < s->ndeps; j++) {
            s->deps[j].index = -1;
        }
    }
}

/* Rebuilds the name index from scratch: the steps may have been placed or renamed by hand. */
static int rebuild_index(af_graph_t *g, af_error_t *err) {
    free(g->name_slots);
    g->name_slots = NULL;
    g->name_cap = 0;
    if (index_reserve(g, g->nsteps, 0) != 0) {
        return af_error_set(err, AF_ENOMEM, "out of memory validating the workflow");
    }
    for (int i = 0; i < g->nsteps; i++) {
        const af_step_t *s = &g->steps[i];
        int slot = index_slot(g, s->name);
        if (g->name_slots[slot] != 0) {
            return af_error_at(err, AF_EDEFINITION, s->where,
                               "duplicate step name '%s' (first declared at %s)", s->name,
                               g->steps[g->name_slots[slot] - 1].where);
        }
        g->name_slots[slot] = i + 1;
    }
    return 0;
}

static int has_port(const af_step_t *s, const char *port) {
    if (port == NULL || strcmp(port, AF_PORT_ERROR) == 0) {
        return 1;
    }
    for (int i = 0; i < s->nports; i++) {
        if (strcmp(s->ports[i], port) == 0) {
            return 1;
        }
    }
    return 0;
}

static int bad_port(af_error_t *err, const af_step_t *s, const af_dep_t *d, const af_step_t *from) {
    if (from->nports == 0) {
        return af_error_at(err, AF_EDEFINITION, s->where,
                           "step '%s' depends on port '%s' of step '%s', which has no ports "
                           "(only success and error)",
                           s->name, d->port, from->name);
    }
    af_buf_t b = {0};
    for (int i = 0; i < from->nports; i++) {
        af_buf_addf(&b, "%s%s", i ? ", " : "", from->ports[i]);
    }
    af_error_at(err, AF_EDEFINITION, s->where,
                "step '%s' depends on port '%s' of step '%s', which has ports %s", s->name, d->port,
                from->name, b.data ? b.data : "");
    af_buf_free(&b);
    return AF_EDEFINITION;
}

/* Resolves every edge: unknown steps, self edges and unknown ports are errors. */
static int resolve_deps(af_graph_t *g, af_error_t *err) {
    for (int i = 0; i < g->nsteps; i++) {
        af_step_t *s = &g->steps[i];
        for (int j = 0; j < s->ndeps; j++) {
            af_dep_t *d = &s->deps[j];
            int k = af_graph_find(g, d->step);
            if (k < 0) {
                return af_error_at(err, AF_EDEFINITION, s->where,
                                   "step '%s' depends on unknown step '%s'", s->name, d->step);
            }
            if (k == i) {
                return af_error_at(err, AF_EDEFINITION, s->where, "step '%s' depends on itself",
                                   s->name);
            }
            if (!has_port(&g->steps[k], d->port)) {
                return bad_port(err, s, d, &g->steps[k]);
            }
            d->index = k;
        }
    }
    return 0;
}

/* Fills each step's dependents: every step with at least one edge from it, once, in declaration
 * order. `mark` (nsteps ints) remembers the last dependent added to each step. */
static int fill_dependents(af_graph_t *g, int *mark) {
    for (int i = 0; i < g->nsteps; i++) {
        mark[i] = -1;
    }
    for (int i = 0; i < g->nsteps; i++) {
        const af_step_t *s = &g->steps[i];
        for (int j = 0; j < s->ndeps; j++) {
            int k = s->deps[j].index;
            if (mark[k] != i) {
                mark[k] = i;
                g->steps[k].ndependents++;
            }
        }
    }
    for (int i = 0; i < g->nsteps; i++) {
        af_step_t *s = &g->steps[i];
        if (s->ndependents > 0) {
            s->dependents = malloc((size_t)s->ndependents * sizeof *s->dependents);
            if (s->dependents == NULL) {
                return AF_ENOMEM;
            }
            s->ndependents = 0;
        }
        mark[i] = -1;
    }
    for (int i = 0; i < g->nsteps; i++) {
        const af_step_t *s = &g->steps[i];
        for (int j = 0; j < s->ndeps; j++) {
            int k = s->deps[j].index;
            if (mark[k] != i) {
                mark[k] = i;
                g->steps[k].dependents[g->steps[k].ndependents++] = i;
            }
        }
    }
    return 0;
}

/* A binary min-heap of step indexes: among the steps ready to run, the one declared first
 * comes out first, so a graph declared in a valid order keeps that order. */
static void heap_push(int *h, int *n, int v) {
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (h[p] <= v) {
            break;
        }
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static int heap_pop(int *h, int *n) {
    int top = h[0];
    int v = h[--*n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) {
            break;
        }
        if (c + 1 < *n && h[c + 1] < h[c]) {
            c++;
        }
        if (v <= h[c]) {
            break;
        }
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) {
        h[i] = v;
    }
    return top;
}

/* Reports a cycle among the steps Kahn's algorithm could not place (indeg > 0). Each of them has
 * an unplaced predecessor, so walking predecessors from any of them must come back to a step
 * already on the walk. `pos` (nsteps ints) is scratch. */
static int report_cycle(af_graph_t *g, const int *indeg, int *pos, af_error_t *err) {
    int start = 0;
    while (indeg[start] == 0) {
        start++;
    }
    for (int i = 0; i < g->nsteps; i++) {
        pos[i] = -1;
    }
    /* walk[] holds steps in backward order: walk[t+1] -> walk[t] is an edge */
    int *walk = malloc((size_t)g->nsteps * sizeof *walk);
    if (walk == NULL) {
        return af_error_set(err, AF_EDEFINITION, "workflow has a cycle (out of memory listing it)");
    }
    int len = 0, cur = start;
    while (pos[cur] < 0) {
        pos[cur] = len;
        walk[len++] = cur;
        const af_step_t *s = &g->steps[cur];
        int next = -1;
        for (int j = 0; j < s->ndeps && next < 0; j++) {
            if (indeg[s->deps[j].index] > 0) {
                next = s->deps[j].index;
            }
        }
        cur = next; /* never -1: an unplaced step has an unplaced predecessor */
    }
    /* the cycle is walk[pos[cur] .. len-1]; read backwards it runs along the edges */
    int first = pos[cur], n = len - first;
    int low = first;
    for (int t = first; t < len; t++) {
        if (walk[t] < walk[low]) {
            low = t;
        }
    }
    af_buf_t b = {0};
    af_buf_addf(&b, "cycle: ");
    for (int c = 0; c <= n; c++) {
        /* from the first-declared step, forwards along the edges (backwards in walk) */
        int t = first + ((low - first) - c % n + n) % n;
        if (c > 0 && c < n - 1 && b.len > 700) {
            af_buf_addf(&b, " -> ... (%d more)", n - 1 - c);
            c = n - 2; /* then the last step and back to the first */
            continue;
        }
        af_buf_addf(&b, "%s%s", c ? " -> " : "", g->steps[walk[t]].name);
    }
    af_error_at(err, AF_EDEFINITION, g->steps[walk[low]].where, "%s", b.data ? b.data : "cycle");
    af_buf_free(&b);
    free(walk);
    return AF_EDEFINITION;
}

/* Kahn's algorithm over the deduplicated dependents. */
static int compute_order(af_graph_t *g, int *indeg, int *heap, af_error_t *err) {
    for (int i = 0; i < g->nsteps; i++) {
        indeg[i] = 0;
    }
    for (int i = 0; i < g->nsteps; i++) {
        for (int j = 0; j < g->steps[i].ndependents; j++) {
            indeg[g->steps[i].dependents[j]]++;
        }
    }
    g->order = malloc((size_t)g->nsteps * sizeof *g->order);
    if (g->order == NULL) {
        return af_error_set(err, AF_ENOMEM, "out of memory validating the workflow");
    }
    int nheap = 0, placed = 0;
    for (int i = 0; i < g->nsteps; i++) {
        if (indeg[i] == 0) {
            heap_push(heap, &nheap, i);
        }
    }
    while (nheap > 0) {
        int i = heap_pop(heap, &nheap);
        g->order[placed++] = i;
        const af_step_t *s = &g->steps[i];
        for (int j = 0; j < s->ndependents; j++) {
            if (--indeg[s->dependents[j]] == 0) {
                heap_push(heap, &nheap, s->dependents[j]);
            }
        }
    }
    if (placed < g->nsteps) {
        return report_cycle(g, indeg, heap, err);
    }
    return 0;
}

int af_graph_validate(af_graph_t *g, af_error_t *err) {
    if (g == NULL) {
        return af_error_set(err, AF_EINVAL, "no workflow");
    }
    clear_computed(g);
    if (g->nsteps == 0) {
        return af_error_at(err, AF_EDEFINITION, g->file ? g->file : "", "workflow has no steps");
    }
    int rc = rebuild_index(g, err);
    if (rc == 0) {
        rc = resolve_deps(g, err);
    }
    int *scratch = NULL;
    if (rc == 0) {
        scratch = malloc((size_t)g->nsteps * 2 * sizeof *scratch);
        if (scratch == NULL || fill_dependents(g, scratch) != 0) {
            rc = af_error_set(err, AF_ENOMEM, "out of memory validating the workflow");
        }
    }
    if (rc == 0) {
        rc = compute_order(g, scratch, scratch + g->nsteps, err);
    }
    free(scratch);
    if (rc != 0) {
        /* leave no half-computed state behind: dependents and order exist only when valid */
        clear_computed(g);
    }
    return rc;
}
