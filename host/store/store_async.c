/* store_async.c -- group-commit writes for the loop thread: operations run on the writer thread,
 * their answers are queued under a mutex and handed back to the loop with one uv_async wake-up
 * (coalesced), as Redis modules hand back blocked clients. */
#include "store/store_async.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct answer_s {
    af_store_async_t *a;
    af_store_op_fn op;
    af_store_async_done_fn done;
    void *ud;
    int rc;
    struct answer_s *next;
} answer_t;

struct af_store_async_s {
    af_store_group_t *group;
    uv_async_t *wake;
    pthread_mutex_t mu;
    answer_t *answered; /* newest first, filled by the writer thread */
    int64_t pending;    /* loop thread only */
    uint64_t submitted; /* loop thread only */
};

static int run_op(af_store_t *s, void *ud) {
    answer_t *an = ud;
    return an->op(s, an->ud);
}

/* On the writer thread, after the commit. */
static void op_done(void *ud, int rc) {
    answer_t *an = ud;
    af_store_async_t *a = an->a;
    an->rc = rc;
    pthread_mutex_lock(&a->mu);
    an->next = a->answered;
    a->answered = an;
    pthread_mutex_unlock(&a->mu);
    uv_async_send(a->wake);
}

static void deliver(af_store_async_t *a) {
    pthread_mutex_lock(&a->mu);
    answer_t *list = a->answered;
    a->answered = NULL;
    pthread_mutex_unlock(&a->mu);
    answer_t *fifo = NULL; /* answer in the order the operations were submitted */
    while (list) {
        answer_t *next = list->next;
        list->next = fifo;
        fifo = list;
        list = next;
    }
    while (fifo) {
        answer_t *next = fifo->next;
        a->pending--;
        if (fifo->done) {
            fifo->done(fifo->ud, fifo->rc);
        }
        free(fifo);
        fifo = next;
    }
}

static void on_wake(uv_async_t *h) {
    deliver(h->data);
}

static void wake_closed(uv_handle_t *h) {
    free(h);
}

af_store_async_t *af_store_async_new(uv_loop_t *loop, af_store_t *s, int max_batch,
                                     af_error_t *err) {
    af_store_async_t *a = calloc(1, sizeof *a);
    uv_async_t *wake = malloc(sizeof *wake);
    af_store_group_t *g = a && wake ? af_store_group_new(s, max_batch) : NULL;
    if (g == NULL) {
        free(a);
        free(wake);
        af_error_set(err, AF_ENOMEM, "out of memory");
        return NULL;
    }
    a->group = g;
    a->wake = wake;
    pthread_mutex_init(&a->mu, NULL);
    uv_async_init(loop, wake, on_wake);
    wake->data = a;
    if (af_store_group_start(g) != 0) {
        af_store_group_free(g);
        uv_close((uv_handle_t *)wake, wake_closed);
        pthread_mutex_destroy(&a->mu);
        free(a);
        af_error_set(err, AF_ENOMEM, "cannot start the store's writer thread");
        return NULL;
    }
    return a;
}

int af_store_async_submit(af_store_async_t *a, af_store_op_fn op, af_store_async_done_fn done,
                          void *ud) {
    if (a->group == NULL) {
        return AF_ESTATE; /* closed */
    }
    answer_t *an = malloc(sizeof *an);
    if (an == NULL) {
        return AF_ENOMEM;
    }
    *an = (answer_t){.a = a, .op = op, .done = done, .ud = ud};
    int rc = af_store_group_submit(a->group, run_op, op_done, an);
    if (rc != 0) {
        free(an);
        return rc;
    }
    a->pending++;
    a->submitted++;
    return 0;
}

int64_t af_store_async_pending(const af_store_async_t *a) {
    return a->pending;
}

uint64_t af_store_async_submitted(const af_store_async_t *a) {
    return a->submitted;
}

void af_store_async_close(af_store_async_t *a) {
    if (a == NULL || a->group == NULL) {
        return;
    }
    af_store_group_t *g = a->group;
    a->group = NULL;        /* what the answers below submit is refused */
    af_store_group_free(g); /* flushes everything submitted */
    deliver(a);
    uv_close((uv_handle_t *)a->wake, wake_closed);
}

void af_store_async_free(af_store_async_t *a) {
    if (a == NULL) {
        return;
    }
    af_store_async_close(a);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
