/* Unit tests for the warm pool's refill backoff (src/sandbox/pool.c pool_refill_resume_at):
 * the pure decision of when refills may run again after handouts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sandbox/pool.h"

static void refills_run_when_nothing_was_ever_taken(void **state)
{
	(void)state;
	assert_int_equal(pool_refill_resume_at(5000, 0, 0), 0);
}

static void a_handout_pauses_refills_for_the_window(void **state)
{
	(void)state;
	assert_int_equal(pool_refill_resume_at(10000, 10000, 10000), 10000 + POOL_BACKOFF_MS);
	assert_int_equal(pool_refill_resume_at(10000 + POOL_BACKOFF_MS - 1, 10000, 10000),
			 10000 + POOL_BACKOFF_MS);
}

static void refills_resume_once_the_window_has_passed(void **state)
{
	(void)state;
	assert_int_equal(pool_refill_resume_at(10000 + POOL_BACKOFF_MS, 10000, 10000), 0);
	assert_int_equal(pool_refill_resume_at(60000, 10000, 10000), 0);
}

static void each_create_of_a_burst_extends_the_pause(void **state)
{
	(void)state;
	/* Burst started at 10000, latest create at 10200: paused until 10200 + window. */
	assert_int_equal(pool_refill_resume_at(10300, 10200, 10000), 10200 + POOL_BACKOFF_MS);
}

static void an_endless_burst_pauses_refills_no_longer_than_the_cap(void **state)
{
	int64_t start = 10000, cap = start + POOL_BACKOFF_MAX_MS;

	(void)state;
	/* Near the cap, the pause ends at the cap, not a window after the latest create. */
	assert_int_equal(pool_refill_resume_at(cap - 10, cap - 20, start), cap);
	/* Past it, creates still arriving no longer pause refills. */
	assert_int_equal(pool_refill_resume_at(cap, cap - 1, start), 0);
	assert_int_equal(pool_refill_resume_at(cap + 500, cap + 499, start), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(refills_run_when_nothing_was_ever_taken),
		cmocka_unit_test(a_handout_pauses_refills_for_the_window),
		cmocka_unit_test(refills_resume_once_the_window_has_passed),
		cmocka_unit_test(each_create_of_a_burst_extends_the_pause),
		cmocka_unit_test(an_endless_burst_pauses_refills_no_longer_than_the_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
