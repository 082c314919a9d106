/* sync.c - monotonic condition-variable waits and the bounded sleep. */
#include "util/sync.h"

#include <errno.h>
#include <time.h>

#include "util/timeutil.h"

void cond_init_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

bool cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t deadline_ms)
{
	struct timespec ts;

	if (deadline_ms < 0) {
		pthread_cond_wait(cond, lock);
		return true;
	}
	if (time_mono_ms() >= deadline_ms)
		return false;
	ts.tv_sec = deadline_ms / 1000;
	ts.tv_nsec = (deadline_ms % 1000) * 1000000;
	return pthread_cond_timedwait(cond, lock, &ts) != ETIMEDOUT;
}

void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}
