/* clock.c -- the manual clock's time and its pending timers. Timers live on one loop thread;
 * the time itself is read from any thread (the store's writer stamps rows with it). */
#include "core/clock.h"

#include <stdatomic.h>
#include <stdlib.h>
#include "core/core.h"

static _Atomic int64_t manual_now; /* 0: the system's clock */

typedef struct {
    uv_timer_t *t;
    uv_timer_cb cb;
    int64_t wake_at;
} pending_t;

static pending_t *pending; /* manual clock only: the timers waiting for their time */
static size_t npending, cap;

int64_t af__clock_manual_now(void) {
    return atomic_load_explicit(&manual_now, memory_order_relaxed);
}

void af_clock_set_manual(int64_t start_ms) {
    atomic_store(&manual_now, start_ms > 0 ? start_ms : 0);
    if (start_ms <= 0) {
        free(pending);
        pending = NULL;
        npending = cap = 0;
    }
}

int af_clock_is_manual(void) {
    return af__clock_manual_now() != 0;
}

static void forget(uv_timer_t *t) {
    for (size_t i = 0; i < npending; i++) {
        if (pending[i].t == t) {
            pending[i] = pending[--npending];
            return;
        }
    }
}

void af_clock_timer_start(uv_timer_t *t, uv_timer_cb cb, int64_t wake_at_ms) {
    int64_t left = wake_at_ms - af_wall_ms();
    if (!af_clock_is_manual() || left <= 0) {
        forget(t);
        uv_timer_start(t, cb, (uint64_t)(left > 0 ? left : 0), 0);
        return;
    }
    uv_timer_stop(t);
    forget(t);
    if (af_grow((void **)&pending, &cap, npending + 1, sizeof *pending) != 0) {
        uv_timer_start(t, cb, 0, 0); /* cannot wait for the clock: fire now rather than never */
        return;
    }
    pending[npending++] = (pending_t){t, cb, wake_at_ms};
}

void af_clock_timer_stop(uv_timer_t *t) {
    forget(t);
    uv_timer_stop(t);
}

int64_t af_clock_advance(int64_t ms) {
    if (!af_clock_is_manual()) {
        return -1;
    }
    int64_t now = atomic_fetch_add(&manual_now, ms > 0 ? ms : 0) + (ms > 0 ? ms : 0);
    for (;;) { /* earliest first, so callbacks see the order real time would give */
        size_t best = npending;
        for (size_t i = 0; i < npending; i++) {
            if (pending[i].wake_at <= now &&
                (best == npending || pending[i].wake_at < pending[best].wake_at)) {
                best = i;
            }
        }
        if (best == npending) {
            return now;
        }
        pending_t p = pending[best];
        pending[best] = pending[--npending];
        uv_timer_start(p.t, p.cb, 0, 0);
    }
}
