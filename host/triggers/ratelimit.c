/* ratelimit.c -- per-key sliding windows of poll start times, in a small hash table. */
#include "triggers/ratelimit.h"

#include <stdlib.h>
#include <string.h>

typedef struct bucket_s {
    char *key;
    int max, next; /* ring of the last max start times; next: the oldest slot */
    int64_t period;
    int64_t *starts; /* 0: unused */
    struct bucket_s *hash_next;
} bucket_t;

struct af_ratelimit_s {
    bucket_t *table[256];
};

af_ratelimit_t *af_ratelimit_new(void) {
    return calloc(1, sizeof(af_ratelimit_t));
}

void af_ratelimit_free(af_ratelimit_t *r) {
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < 256; i++) {
        for (bucket_t *b = r->table[i], *next; b; b = next) {
            next = b->hash_next;
            free(b->key);
            free(b->starts);
            free(b);
        }
    }
    free(r);
}

static bucket_t *bucket_for(af_ratelimit_t *r, const char *key, int max, int64_t period) {
    bucket_t **head = &r->table[af_hash_str(key) & 255];
    for (bucket_t *b = *head; b; b = b->hash_next) {
        if (strcmp(b->key, key) == 0) {
            return b;
        }
    }
    bucket_t *b = calloc(1, sizeof *b);
    if (b == NULL || (b->key = strdup(key)) == NULL ||
        (b->starts = calloc((size_t)max, sizeof *b->starts)) == NULL) {
        if (b) {
            free(b->key);
        }
        free(b);
        return NULL;
    }
    b->max = max;
    b->period = period;
    b->hash_next = *head;
    *head = b;
    return b;
}

int af_ratelimit_take(af_ratelimit_t *r, const char *key, int64_t now_ms, int max,
                      int64_t period_ms, int64_t *retry_ms) {
    max = max < 1 ? 1 : max > 1000 ? 1000 : max;
    bucket_t *b = bucket_for(r, key, max, period_ms > 0 ? period_ms : 1);
    if (b == NULL) {
        return -1;
    }
    int64_t oldest = b->starts[b->next];
    if (oldest != 0 && now_ms - oldest < b->period) {
        if (retry_ms) {
            *retry_ms = oldest + b->period;
        }
        return 0;
    }
    b->starts[b->next] = now_ms;
    b->next = (b->next + 1) % b->max;
    return 1;
}

int64_t af_backoff_ms(int failures, int64_t base_ms, int64_t max_ms) {
    int64_t wait = base_ms > 0 ? base_ms : 1;
    for (int i = 1; i < failures && wait < max_ms; i++) {
        wait *= 2;
    }
    return wait < max_ms ? wait : max_ms;
}
