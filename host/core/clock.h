/* clock.h -- the time the engine and the triggers read (af_wall_ms), and timers that fire at a
 * wall-clock time. Real by default; a manual clock moves only when told, so tests can check
 * cron, time zones, windows, delays and missed runs in milliseconds of real time. */
#ifndef AF_CLOCK_H
#define AF_CLOCK_H

#include <stdint.h>
#include <uv.h>

/* Switches the process to a manual clock that reads start_ms until moved (start_ms > 0), or
 * back to the system's clock (0). Call it before anything reads the time. */
void af_clock_set_manual(int64_t start_ms);
/* 1 when the clock is manual. */
int af_clock_is_manual(void);
/* Moves a manual clock forward by ms (>= 0) and fires, in wake-up order, the timers that became
 * due. Call it on the loop thread of the timers. Returns the new time, or -1 when the clock is
 * not manual (nothing moves). */
int64_t af_clock_advance(int64_t ms);

/* Starts t (initialised, borrowed until it fires or is stopped) to call cb once at wall-clock
 * time wake_at_ms: a plain libuv timer for the real clock; under a manual clock it fires when
 * af_clock_advance reaches wake_at_ms (at once when that time has passed). Restarting replaces
 * the earlier wake-up. */
void af_clock_timer_start(uv_timer_t *t, uv_timer_cb cb, int64_t wake_at_ms);
/* Stops t; call it before closing a timer started with af_clock_timer_start. */
void af_clock_timer_stop(uv_timer_t *t);

#endif
