/* Unit tests for the error type (src/util/error.c) and the monotonic waits (src/util/sync.c). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/error.h"
#include "util/sync.h"
#include "util/timeutil.h"

static void first_error_wins_and_wrap_adds_context(void **state)
{
	struct ember_error *err = NULL;

	(void)state;
	assert_int_equal(ember_error_set(&err, EMBER_E_NOT_FOUND, 0, "no %s", "sandbox"), -1);
	assert_int_equal(ember_error_set(&err, EMBER_E_INVALID, 0, "later"), -1);
	assert_int_equal(err->kind, EMBER_E_NOT_FOUND);
	ember_error_wrap(&err, "get %s", "sb_1");
	assert_string_equal(err->message, "get sb_1: no sandbox");
	ember_error_free(&err);
	assert_null(err);
}

static void out_of_memory_error_is_readable_unwrapped_and_never_freed(void **state)
{
	struct ember_error *err = NULL, *other = NULL;

	(void)state;
	assert_int_equal(ember_error_oom(&err), -1);
	assert_non_null(err);
	assert_true(ember_error_is_static(err));
	assert_int_equal(err->kind, EMBER_E_INTERNAL);
	assert_int_equal(err->errno_value, ENOMEM);
	/* Shared and read-only: context is not written into it. */
	ember_error_wrap(&err, "create sandbox");
	assert_null(strstr(err->message, "create sandbox"));
	assert_non_null(strstr(err->message, "out of memory"));
	/* Moved, propagated and freed like any other error (ASan catches a free of it). */
	ember_error_propagate(&other, err);
	assert_ptr_equal(other, err);
	ember_error_free(&err);
	ember_error_free(&other);
	assert_null(other);
	/* A second one, while another thread may hold the first. */
	ember_error_oom(&err);
	ember_error_propagate(&other, err); /* other is empty again: takes it */
	ember_error_oom(&err);
	ember_error_propagate(&other, err); /* already set: dropped, not freed */
	ember_error_free(&other);
}

static void cond_wait_until_times_out_on_the_monotonic_clock(void **state)
{
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cond;
	int64_t t0 = time_mono_ms();
	unsigned wakeups = 0;

	(void)state;
	cond_init_monotonic(&cond);
	pthread_mutex_lock(&lock);
	/* Nobody signals: the loop must sleep until the deadline, not return at once and spin. */
	while (cond_wait_until(&cond, &lock, t0 + 200))
		wakeups++;
	pthread_mutex_unlock(&lock);
	assert_true(time_mono_ms() - t0 >= 200);
	assert_true(wakeups < 5); /* spurious wake-ups happen, a spin gives thousands */
	assert_false(cond_wait_until(&cond, &lock, t0)); /* a passed deadline returns at once */
	pthread_cond_destroy(&cond);
}

struct signaller {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool flag;
};

static void *set_flag_later(void *arg)
{
	struct signaller *s = arg;

	sleep_ms(50);
	pthread_mutex_lock(&s->lock);
	s->flag = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void cond_wait_until_wakes_on_signal(void **state)
{
	struct signaller s = { .lock = PTHREAD_MUTEX_INITIALIZER };
	pthread_t t;
	int64_t t0 = time_mono_ms();

	(void)state;
	cond_init_monotonic(&s.cond);
	assert_int_equal(pthread_create(&t, NULL, set_flag_later, &s), 0);
	pthread_mutex_lock(&s.lock);
	while (!s.flag && cond_wait_until(&s.cond, &s.lock, t0 + 60000))
		;
	pthread_mutex_unlock(&s.lock);
	pthread_join(t, NULL);
	assert_true(s.flag);
	assert_true(time_mono_ms() - t0 < 30000);
	pthread_cond_destroy(&s.cond);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(first_error_wins_and_wrap_adds_context),
		cmocka_unit_test(out_of_memory_error_is_readable_unwrapped_and_never_freed),
		cmocka_unit_test(cond_wait_until_times_out_on_the_monotonic_clock),
		cmocka_unit_test(cond_wait_until_wakes_on_signal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
