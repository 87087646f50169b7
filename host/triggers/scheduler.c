/* scheduler.c -- a min-heap of schedules by next due time, with an index by trigger id. */
#include "triggers/scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "triggers/schedule.h"

#define ID_MAX 64

typedef struct entry_s {
    char id[ID_MAX];
    af_schedule_t *schedule;
    int64_t due;      /* next due time, INT64_MAX: never again */
    int64_t *catchup; /* missed due times, oldest first: those from catchup_next on still fire */
    int ncatchup, catchup_next;
    size_t heap_index;
    struct entry_s *hash_next;
} entry_t;

struct af_scheduler_s {
    entry_t **heap;
    size_t n, cap;
    entry_t **buckets;
    size_t nbuckets;
};

/* The time an entry is ordered by: its oldest catch-up, else its next due time. */
static int64_t key_of(const entry_t *e) {
    return e->catchup_next < e->ncatchup ? e->catchup[e->catchup_next] : e->due;
}

static void heap_set(af_scheduler_t *s, size_t i, entry_t *e) {
    s->heap[i] = e;
    e->heap_index = i;
}

static void sift_up(af_scheduler_t *s, size_t i) {
    entry_t *e = s->heap[i];
    while (i > 0 && key_of(s->heap[(i - 1) / 2]) > key_of(e)) {
        heap_set(s, i, s->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(s, i, e);
}

static void sift_down(af_scheduler_t *s, size_t i) {
    entry_t *e = s->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->n) {
            break;
        }
        if (c + 1 < s->n && key_of(s->heap[c + 1]) < key_of(s->heap[c])) {
            c++;
        }
        if (key_of(s->heap[c]) >= key_of(e)) {
            break;
        }
        heap_set(s, i, s->heap[c]);
        i = c;
    }
    heap_set(s, i, e);
}

/* The entry at i changed place in the order: up if it must, else down. */
static void heap_fix(af_scheduler_t *s, size_t i) {
    entry_t *e = s->heap[i];
    sift_up(s, i);
    if (e->heap_index == i) {
        sift_down(s, i);
    }
}

af_scheduler_t *af_scheduler_new(void) {
    af_scheduler_t *s = calloc(1, sizeof *s);
    if (s) {
        s->nbuckets = 1024;
        s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
        if (s->buckets == NULL) {
            free(s);
            return NULL;
        }
    }
    return s;
}

static void entry_free(entry_t *e) {
    af_schedule_free(e->schedule);
    free(e->catchup);
    free(e);
}

void af_scheduler_free(af_scheduler_t *s) {
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        entry_free(s->heap[i]);
    }
    free(s->heap);
    free(s->buckets);
    free(s);
}

static entry_t **slot_of(const af_scheduler_t *s, const char *id) {
    entry_t **pp = &s->buckets[af_hash_str(id) & (s->nbuckets - 1)];
    while (*pp && strcmp((*pp)->id, id) != 0) {
        pp = &(*pp)->hash_next;
    }
    return pp;
}

static int grow(af_scheduler_t *s) {
    if (af_grow((void **)&s->heap, &s->cap, s->n + 1, sizeof *s->heap) != 0) {
        return AF_ENOMEM;
    }
    if (s->n >= s->nbuckets) { /* keep chains short: rehash into twice the buckets */
        size_t nb = s->nbuckets * 2;
        entry_t **b = calloc(nb, sizeof *b);
        if (b == NULL) {
            return AF_ENOMEM;
        }
        for (size_t i = 0; i < s->n; i++) {
            entry_t *e = s->heap[i];
            size_t k = af_hash_str(e->id) & (nb - 1);
            e->hash_next = b[k];
            b[k] = e;
        }
        free(s->buckets);
        s->buckets = b;
        s->nbuckets = nb;
    }
    return 0;
}

/* A new entry for id: its schedule, its missed due times and its next one. */
static entry_t *entry_new(const char *id, const json_t *config, int64_t last_ms, int64_t now_ms,
                          af_error_t *err) {
    entry_t *e = calloc(1, sizeof *e);
    if (e == NULL) {
        af_error_set(err, AF_ENOMEM, "out of memory");
        return NULL;
    }
    af_strlcpy(e->id, id, sizeof e->id);
    if ((e->schedule = af_schedule_new(config, err)) == NULL) {
        free(e);
        return NULL;
    }
    int keep = af_schedule_max_catchup(e->schedule);
    if (keep > 0 && last_ms > 0 && last_ms < now_ms &&
        (e->catchup = malloc((size_t)keep * sizeof *e->catchup)) != NULL) {
        af_schedule_catchup(e->schedule, last_ms, now_ms, e->catchup, keep, &e->ncatchup);
    }
    if (af_schedule_next(e->schedule, now_ms, &e->due) != 0) {
        e->due = INT64_MAX;
    }
    return e;
}

int af_scheduler_put(af_scheduler_t *s, const char *id, const json_t *config, int64_t last_ms,
                     int64_t now_ms, af_error_t *err) {
    if (strlen(id) >= ID_MAX) {
        return af_error_set(err, AF_EINVAL, "trigger id too long");
    }
    if (grow(s) != 0) {
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    entry_t *e = entry_new(id, config, last_ms, now_ms, err);
    if (e == NULL) {
        return err && err->code ? err->code : AF_EINVAL;
    }
    af_scheduler_remove(s, id);
    entry_t **slot = slot_of(s, id);
    *slot = e;
    heap_set(s, s->n++, e);
    sift_up(s, e->heap_index);
    return 0;
}

int af_scheduler_remove(af_scheduler_t *s, const char *id) {
    entry_t **slot = slot_of(s, id);
    entry_t *e = *slot;
    if (e == NULL) {
        return AF_ENOTFOUND;
    }
    *slot = e->hash_next;
    size_t i = e->heap_index;
    entry_t *last = s->heap[--s->n];
    if (i < s->n) {
        heap_set(s, i, last);
        heap_fix(s, i);
    }
    entry_free(e);
    return 0;
}

size_t af_scheduler_run(af_scheduler_t *s, int64_t now_ms, af_scheduler_fire_fn fire, void *ud) {
    size_t fired = 0;
    while (s->n > 0 && key_of(s->heap[0]) <= now_ms) {
        entry_t *e = s->heap[0];
        if (e->catchup_next < e->ncatchup) {
            fire(ud, e->id, e->catchup[e->catchup_next++], 1);
        } else {
            int64_t at = e->due;
            if (af_schedule_next(e->schedule, at, &e->due) != 0) {
                e->due = INT64_MAX;
            }
            fire(ud, e->id, at, 0);
        }
        fired++;
        sift_down(s, 0);
    }
    return fired;
}

int64_t af_scheduler_next_due(const af_scheduler_t *s) {
    return s->n > 0 ? key_of(s->heap[0]) : INT64_MAX;
}

int64_t af_scheduler_due_of(const af_scheduler_t *s, const char *id) {
    entry_t *e = *slot_of(s, id);
    return e == NULL || e->due == INT64_MAX ? 0 : e->due;
}

size_t af_scheduler_count(const af_scheduler_t *s) {
    return s->n;
}
