/* bus.c -- the event bus front (argument checks, then the backend's ops) and the in-process
 * backend: deduplicated patterns indexed by exact type, first or last literal segment. */
#include "bus/bus.h"

#include <stdlib.h>
#include <string.h>

#include "bus/pattern.h"
#include "bus/predicate.h"

/* ---- the front ------------------------------------------------------------------------------ */

void af_bus_free(af_bus_t *b) {
    if (b != NULL) {
        b->ops->destroy(b);
    }
}

int af_bus_subscribe(af_bus_t *b, const char *pattern, const json_t *where, af_bus_deliver_fn fn,
                     void *sub_ud, uint64_t *id, af_error_t *err) {
    if (b == NULL || fn == NULL || id == NULL) {
        return af_error_set(err, AF_EINVAL, "subscribe needs a bus, a callback and an id");
    }
    int rc = af_event_type_check(pattern, 1, err);
    if (rc != 0) {
        return rc;
    }
    return b->ops->subscribe(b, pattern, where, fn, sub_ud, id, err);
}

int af_bus_unsubscribe(af_bus_t *b, uint64_t id) {
    return b == NULL ? AF_ENOTFOUND : b->ops->unsubscribe(b, id);
}

int af_bus_publish(af_bus_t *b, const af_bus_event_t *ev) {
    if (b == NULL || ev == NULL || af_event_type_check(ev->type, 0, NULL) != 0) {
        return AF_EINVAL;
    }
    return b->ops->publish(b, ev);
}

size_t af_bus_count(const af_bus_t *b) {
    return b == NULL ? 0 : b->ops->count(b);
}

/* ---- a string-keyed hash table (open addressing, linear probing; keys not owned) ------------ */

typedef struct {
    const char *key; /* NULL: free slot */
    size_t len;
    uint64_t hash;
    void *val;
} slot_t;

typedef struct {
    slot_t *slots;
    size_t cap, n; /* cap: 0 or a power of two */
} table_t;

static void *table_get(const table_t *t, const char *key, size_t len, uint64_t hash) {
    if (t->n == 0) {
        return NULL;
    }
    size_t mask = t->cap - 1;
    for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
        const slot_t *s = &t->slots[i];
        if (s->key == NULL) {
            return NULL;
        }
        if (s->hash == hash && s->len == len && memcmp(s->key, key, len) == 0) {
            return s->val;
        }
    }
}

/* Places an entry known to be absent, with room known to be there. */
static void table_place(slot_t *slots, size_t cap, const slot_t *e) {
    size_t i = (size_t)e->hash & (cap - 1);
    while (slots[i].key != NULL) {
        i = (i + 1) & (cap - 1);
    }
    slots[i] = *e;
}

/* Makes room for one more entry so that the next table_put cannot fail. */
static int table_reserve(table_t *t) {
    if ((t->n + 1) * 4 <= t->cap * 3) {
        return 0;
    }
    size_t cap = t->cap ? t->cap * 2 : 16;
    slot_t *slots = calloc(cap, sizeof *slots);
    if (slots == NULL) {
        return AF_ENOMEM;
    }
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].key != NULL) {
            table_place(slots, cap, &t->slots[i]);
        }
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

/* Adds an absent key (after table_reserve). */
static void table_put(table_t *t, const char *key, size_t len, uint64_t hash, void *val) {
    slot_t e = {key, len, hash, val};
    table_place(t->slots, t->cap, &e);
    t->n++;
}

/* Removes a present key, shifting later entries of its probe run back. */
static void table_del(table_t *t, const char *key, size_t len, uint64_t hash) {
    size_t mask = t->cap - 1, i = (size_t)hash & mask;
    while (!(t->slots[i].key != NULL && t->slots[i].hash == hash && t->slots[i].len == len &&
             memcmp(t->slots[i].key, key, len) == 0)) {
        i = (i + 1) & mask;
    }
    for (size_t j = (i + 1) & mask; t->slots[j].key != NULL; j = (j + 1) & mask) {
        size_t home = (size_t)t->slots[j].hash & mask;
        /* the entry at j may move to i unless its home lies cyclically in (i, j] */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i].key = NULL;
    t->n--;
}

/* ---- the in-process backend ----------------------------------------------------------------- */

typedef struct pattern_s pattern_t;

typedef struct {
    uint64_t id;
    pattern_t *pat;
    af_predicate_t *where; /* NULL: every event of the pattern */
    af_bus_deliver_fn fn;
    void *ud;
    int dead; /* unsubscribed during a publish; freed when it ends */
} sub_t;

/* A growable array of pointers. */
typedef struct {
    void **v;
    size_t n, cap;
} vec_t;

static int vec_reserve(vec_t *a) {
    return af_grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v);
}

/* Removes the element x, keeping the order of the others. */
static void vec_remove(vec_t *a, const void *x) {
    for (size_t i = 0; i < a->n; i++) {
        if (a->v[i] == x) {
            memmove(&a->v[i], &a->v[i + 1], (a->n - i - 1) * sizeof *a->v);
            a->n--;
            return;
        }
    }
}

/* Patterns whose first (or last) segment is the same literal. */
typedef struct {
    char *key;
    size_t len;
    uint64_t hash;
    vec_t pats;
} bucket_t;

typedef enum { IDX_EXACT, IDX_FIRST, IDX_LAST, IDX_REST } idx_kind_t;

/* A distinct pattern text and its subscriptions, in id order. */
struct pattern_s {
    char *text;
    size_t len;
    uint64_t hash;
    idx_kind_t idx;
    bucket_t *bucket; /* IDX_FIRST, IDX_LAST */
    vec_t subs;
};

typedef struct {
    af_bus_t base;
    uint64_t next_id;
    vec_t all;        /* every sub_t, in id order (dead ones until swept) */
    size_t live;      /* subscriptions not unsubscribed */
    table_t patterns; /* text -> pattern_t (exact patterns are found by the event type) */
    table_t first;    /* first segment -> bucket_t of IDX_FIRST patterns */
    table_t last;     /* last segment -> bucket_t of IDX_LAST patterns */
    vec_t rest;       /* IDX_REST patterns: first and last segments are wildcards */
    int depth;        /* publishes under way (nested through callbacks) */
    int has_dead;     /* some sub_t is dead and waits for the sweep */
} inproc_t;

/* The length of the segment at s (up to a dot or the end of s[0..len)). */
static size_t seg_len(const char *s, size_t len) {
    const char *dot = memchr(s, '.', len);
    return dot ? (size_t)(dot - s) : len;
}

/* The start of the last segment of s[0..len). */
static const char *last_seg(const char *s, size_t len) {
    const char *p = s + len;
    while (p > s && p[-1] != '.') {
        p--;
    }
    return p;
}

static int is_wild(const char *seg, size_t n) {
    return n == 1 && (*seg == '*' || *seg == '#');
}

static void bucket_free(bucket_t *k) {
    if (k != NULL) {
        free(k->key);
        free(k->pats.v);
        free(k);
    }
}

static void pattern_free(pattern_t *p) {
    if (p != NULL) {
        free(p->text);
        free(p->subs.v);
        free(p);
    }
}

/* Where pattern p goes in the index, and the segment it is indexed by. */
static idx_kind_t classify(const pattern_t *p, const char **seg, size_t *n) {
    if (memchr(p->text, '*', p->len) == NULL && memchr(p->text, '#', p->len) == NULL) {
        return IDX_EXACT;
    }
    *seg = p->text;
    *n = seg_len(p->text, p->len);
    if (!is_wild(*seg, *n)) {
        return IDX_FIRST;
    }
    *seg = last_seg(p->text, p->len);
    *n = (size_t)(p->text + p->len - *seg);
    return is_wild(*seg, *n) ? IDX_REST : IDX_LAST;
}

/* A new pattern for text, put in the table and the index, with room for one subscription. */
static pattern_t *pattern_add(inproc_t *s, const char *text, size_t len, uint64_t hash) {
    pattern_t *p = calloc(1, sizeof *p);
    bucket_t *fresh = NULL;
    if (p == NULL || (p->text = malloc(len + 1)) == NULL || vec_reserve(&p->subs) != 0 ||
        table_reserve(&s->patterns) != 0) {
        pattern_free(p);
        return NULL;
    }
    memcpy(p->text, text, len + 1);
    p->len = len;
    p->hash = hash;
    const char *seg = NULL;
    size_t n = 0;
    p->idx = classify(p, &seg, &n);
    vec_t *list = p->idx == IDX_REST ? &s->rest : NULL;
    table_t *t = p->idx == IDX_FIRST ? &s->first : p->idx == IDX_LAST ? &s->last : NULL;
    if (t != NULL) {
        uint64_t h = af_hash_bytes(seg, n);
        p->bucket = table_get(t, seg, n, h);
        if (p->bucket == NULL) {
            fresh = calloc(1, sizeof *fresh);
            if (fresh == NULL || (fresh->key = malloc(n + 1)) == NULL || table_reserve(t) != 0) {
                bucket_free(fresh);
                pattern_free(p);
                return NULL;
            }
            memcpy(fresh->key, seg, n);
            fresh->key[n] = '\0';
            fresh->len = n;
            fresh->hash = h;
            p->bucket = fresh;
        }
        list = &p->bucket->pats;
    }
    if (list != NULL && vec_reserve(list) != 0) {
        bucket_free(fresh);
        pattern_free(p);
        return NULL;
    }
    if (fresh != NULL) {
        table_put(t, fresh->key, fresh->len, fresh->hash, fresh);
    }
    if (list != NULL) {
        list->v[list->n++] = p;
    }
    table_put(&s->patterns, p->text, p->len, p->hash, p);
    return p;
}

/* Takes an empty pattern out of the table and the index and frees it. */
static void pattern_remove(inproc_t *s, pattern_t *p) {
    table_del(&s->patterns, p->text, p->len, p->hash);
    if (p->idx == IDX_REST) {
        vec_remove(&s->rest, p);
    } else if (p->bucket != NULL) {
        bucket_t *k = p->bucket;
        vec_remove(&k->pats, p);
        if (k->pats.n == 0) {
            table_del(p->idx == IDX_FIRST ? &s->first : &s->last, k->key, k->len, k->hash);
            bucket_free(k);
        }
    }
    pattern_free(p);
}

/* Takes a subscription out of its pattern (removing the pattern when it empties) and frees it;
 * the caller takes it out of s->all. */
static void sub_destroy(inproc_t *s, sub_t *sub) {
    pattern_t *p = sub->pat;
    vec_remove(&p->subs, sub);
    if (p->subs.n == 0) {
        pattern_remove(s, p);
    }
    af_predicate_free(sub->where);
    free(sub);
}

static int inproc_subscribe(af_bus_t *b, const char *pattern, const json_t *where,
                            af_bus_deliver_fn fn, void *sub_ud, uint64_t *id, af_error_t *err) {
    inproc_t *s = (inproc_t *)b;
    af_predicate_t *pred = NULL;
    int rc = where != NULL ? af_predicate_compile(where, &pred, err) : 0;
    if (rc != 0) {
        return rc;
    }
    sub_t *sub = calloc(1, sizeof *sub);
    size_t len = strlen(pattern);
    uint64_t hash = af_hash_bytes(pattern, len);
    pattern_t *p = table_get(&s->patterns, pattern, len, hash);
    if (sub == NULL || vec_reserve(&s->all) != 0 || (p != NULL && vec_reserve(&p->subs) != 0) ||
        (p == NULL && (p = pattern_add(s, pattern, len, hash)) == NULL)) {
        af_predicate_free(pred);
        free(sub);
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    sub->id = s->next_id++;
    sub->pat = p;
    sub->where = pred;
    sub->fn = fn;
    sub->ud = sub_ud;
    p->subs.v[p->subs.n++] = sub;
    s->all.v[s->all.n++] = sub;
    s->live++;
    *id = sub->id;
    return 0;
}

/* Frees the subscriptions unsubscribed during publishes, once none is under way. */
static void sweep(inproc_t *s) {
    size_t keep = 0;
    for (size_t i = 0; i < s->all.n; i++) {
        sub_t *sub = s->all.v[i];
        if (sub->dead) {
            sub_destroy(s, sub);
        } else {
            s->all.v[keep++] = sub;
        }
    }
    s->all.n = keep;
    s->has_dead = 0;
}

static int inproc_unsubscribe(af_bus_t *b, uint64_t id) {
    inproc_t *s = (inproc_t *)b;
    size_t lo = 0, hi = s->all.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (((sub_t *)s->all.v[mid])->id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    sub_t *sub = lo < s->all.n ? s->all.v[lo] : NULL;
    if (sub == NULL || sub->id != id || sub->dead) {
        return AF_ENOTFOUND;
    }
    s->live--;
    if (s->depth > 0) {
        sub->dead = 1;
        s->has_dead = 1;
        return 0;
    }
    memmove(&s->all.v[lo], &s->all.v[lo + 1], (s->all.n - lo - 1) * sizeof *s->all.v);
    s->all.n--;
    sub_destroy(s, sub);
    return 0;
}

/* The subscriptions one publish delivers to: on the stack unless there are many. */
typedef struct {
    sub_t **v;
    size_t n, cap;
    int sorted;
    sub_t *local[64];
} matches_t;

/* Adds the live subscriptions of a matching pattern whose where holds. */
static int collect(matches_t *m, const pattern_t *p, const json_t *data) {
    for (size_t i = 0; i < p->subs.n; i++) {
        sub_t *sub = p->subs.v[i];
        if (sub->dead || !af_predicate_eval(sub->where, data)) {
            continue;
        }
        if (m->n == m->cap) {
            size_t cap = m->cap * 2;
            sub_t **v = m->v == m->local ? malloc(cap * sizeof *v) : realloc(m->v, cap * sizeof *v);
            if (v == NULL) {
                return AF_ENOMEM;
            }
            if (m->v == m->local) {
                memcpy(v, m->local, sizeof m->local);
            }
            m->v = v;
            m->cap = cap;
        }
        if (m->n > 0 && m->v[m->n - 1]->id > sub->id) {
            m->sorted = 0;
        }
        m->v[m->n++] = sub;
    }
    return 0;
}

/* Adds the matching patterns of a list (a bucket, or the rest). */
static int collect_list(matches_t *m, const vec_t *list, const af_bus_event_t *ev) {
    for (size_t i = 0; i < list->n; i++) {
        const pattern_t *p = list->v[i];
        if (af_event_type_match(p->text, ev->type)) {
            int rc = collect(m, p, ev->data);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

static int by_id(const void *a, const void *b) {
    uint64_t x = (*(sub_t *const *)a)->id, y = (*(sub_t *const *)b)->id;
    return (x > y) - (x < y);
}

static void sort_matches(matches_t *m) {
    if (m->sorted) {
        return;
    }
    if (m->n > 32) {
        qsort(m->v, m->n, sizeof *m->v, by_id);
        return;
    }
    for (size_t i = 1; i < m->n; i++) {
        sub_t *x = m->v[i];
        size_t j = i;
        for (; j > 0 && m->v[j - 1]->id > x->id; j--) {
            m->v[j] = m->v[j - 1];
        }
        m->v[j] = x;
    }
}

/* Finds what matches ev: the exact pattern, the buckets of its first and last segments, and
 * the patterns that start and end with wildcards. */
static int find_matches(const inproc_t *s, const af_bus_event_t *ev, matches_t *m) {
    const char *type = ev->type;
    size_t len = strlen(type);
    const pattern_t *exact = table_get(&s->patterns, type, len, af_hash_bytes(type, len));
    int rc = exact != NULL ? collect(m, exact, ev->data) : 0;
    size_t fn = seg_len(type, len);
    const bucket_t *k = s->first.n ? table_get(&s->first, type, fn, af_hash_bytes(type, fn)) : NULL;
    if (rc == 0 && k != NULL) {
        rc = collect_list(m, &k->pats, ev);
    }
    const char *ls = last_seg(type, len);
    size_t ln = (size_t)(type + len - ls);
    k = s->last.n ? table_get(&s->last, ls, ln, af_hash_bytes(ls, ln)) : NULL;
    if (rc == 0 && k != NULL) {
        rc = collect_list(m, &k->pats, ev);
    }
    return rc == 0 ? collect_list(m, &s->rest, ev) : rc;
}

static int inproc_publish(af_bus_t *b, const af_bus_event_t *ev) {
    inproc_t *s = (inproc_t *)b;
    matches_t m;
    m.v = m.local;
    m.n = 0;
    m.cap = sizeof m.local / sizeof m.local[0];
    m.sorted = 1;
    int rc = find_matches(s, ev, &m);
    int delivered = 0;
    if (rc == 0) {
        sort_matches(&m);
        s->depth++;
        for (size_t i = 0; i < m.n; i++) {
            if (!m.v[i]->dead) {
                m.v[i]->fn(m.v[i]->ud, ev);
                delivered++;
            }
        }
        s->depth--;
    }
    if (m.v != m.local) {
        free(m.v);
    }
    if (s->depth == 0 && s->has_dead) {
        sweep(s);
    }
    return rc != 0 ? rc : delivered;
}

static size_t inproc_count(const af_bus_t *b) {
    return ((const inproc_t *)b)->live;
}

static void inproc_destroy(af_bus_t *b) {
    inproc_t *s = (inproc_t *)b;
    for (size_t i = 0; i < s->all.n; i++) {
        sub_t *sub = s->all.v[i];
        af_predicate_free(sub->where);
        free(sub);
    }
    for (size_t i = 0; i < s->patterns.cap; i++) {
        pattern_free(s->patterns.slots[i].key ? s->patterns.slots[i].val : NULL);
    }
    for (size_t i = 0; i < s->first.cap; i++) {
        bucket_free(s->first.slots[i].key ? s->first.slots[i].val : NULL);
    }
    for (size_t i = 0; i < s->last.cap; i++) {
        bucket_free(s->last.slots[i].key ? s->last.slots[i].val : NULL);
    }
    free(s->patterns.slots);
    free(s->first.slots);
    free(s->last.slots);
    free(s->rest.v);
    free(s->all.v);
    free(s);
}

static const af_bus_ops_t inproc_ops = {
    .name = "inproc",
    .subscribe = inproc_subscribe,
    .unsubscribe = inproc_unsubscribe,
    .publish = inproc_publish,
    .count = inproc_count,
    .destroy = inproc_destroy,
};

af_bus_t *af_bus_inproc_new(void) {
    inproc_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->base.ops = &inproc_ops;
    s->next_id = 1;
    return &s->base;
}
