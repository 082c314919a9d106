/* sync.h - the one way emberd waits: condition variables on the monotonic clock, and a bounded
 * sleep for the few places that have no event to wait on.
 * Used by every host thread that waits for another (channel, manager, pool, templates).
 * Never used with a realtime-clock condition variable: a deadline computed on one clock and
 * waited on with another returns at once and spins (it made every exec spin a CPU core). */
#ifndef EMBER_UTIL_SYNC_H
#define EMBER_UTIL_SYNC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Initialises cond to measure timeouts on CLOCK_MONOTONIC, the clock of time_mono_ms(). */
void cond_init_monotonic(pthread_cond_t *cond);

/* Waits on cond (lock held) until signalled or until deadline_ms (absolute monotonic ms; <0:
 * no deadline). Returns false when the deadline has passed, true otherwise (which may be a
 * spurious wake-up: callers re-check their predicate in a loop). */
bool cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t deadline_ms);

/* Sleeps ms milliseconds (restarted on EINTR). Only for polling what offers no event to wait
 * on (a socket file that does not exist yet, a cgroup that is still busy); anything with an fd
 * or a condition waits on that instead. */
void sleep_ms(unsigned ms);

#endif
