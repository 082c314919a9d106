/* Unit tests for the code interpreter's per-(sandbox, context) turns (src/e2b/interpturn.c):
 * one holder at a time per pair, pairs independent, a waiter wakes when the turn comes back
 * (no polling) or gives up at its deadline or when abandoned, and nothing stays behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>

#include "e2b/interpturn.h"
#include "util/timeutil.h"

#define SB_A "sb_0123456789abcdef0123456789abcdef"
#define SB_B "sb_fedcba9876543210fedcba9876543210"

static bool never(void *arg)
{
	(void)arg;
	return false;
}

static bool always(void *arg)
{
	int *calls = arg;

	(*calls)++;
	return true;
}

static void pairs_are_independent_and_nothing_stays(void **state)
{
	struct e2b_turn *a = NULL, *b = NULL, *c = NULL;
	struct ember_error *err = NULL;

	(void)state;
	assert_int_equal(e2b_turn_take(SB_A, "ctx_1", -1, NULL, NULL, &a, &err), 0);
	assert_int_equal(e2b_turn_take(SB_A, "ctx_2", -1, NULL, NULL, &b, &err), 0);
	assert_int_equal(e2b_turn_take(SB_B, "ctx_1", -1, NULL, NULL, &c, &err), 0);
	assert_int_equal(e2b_turn_count(), 3);
	e2b_turn_release(a);
	e2b_turn_release(b);
	e2b_turn_release(c);
	e2b_turn_release(NULL);
	assert_int_equal(e2b_turn_count(), 0);
}

static void a_held_turn_times_out_or_is_abandoned(void **state)
{
	struct e2b_turn *a = NULL, *b = NULL;
	struct ember_error *err = NULL;
	int64_t t0;
	int calls = 0;

	(void)state;
	assert_int_equal(e2b_turn_take(SB_A, "ctx_1", -1, NULL, NULL, &a, &err), 0);
	t0 = time_mono_ms();
	assert_int_equal(e2b_turn_take(SB_A, "ctx_1", t0 + 100, never, NULL, &b, &err), -1);
	assert_true(time_mono_ms() >= t0 + 100);
	assert_int_equal(err->kind, EMBER_E_CONFLICT);
	ember_error_free(&err);
	assert_int_equal(e2b_turn_take(SB_A, "ctx_1", -1, always, &calls, &b, &err), -1);
	assert_int_equal(calls, 1);
	assert_int_equal(err->kind, EMBER_E_CONFLICT);
	ember_error_free(&err);
	assert_int_equal(e2b_turn_count(), 1);
	e2b_turn_release(a);
	assert_int_equal(e2b_turn_count(), 0);
}

struct waiter {
	struct e2b_turn *turn;
	int ret;
	int *inside; /* how many hold the turn, under lock */
	int most;
	pthread_mutex_t *lock;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	struct ember_error *err = NULL;
	int i;

	for (i = 0; i < 50; i++) {
		w->ret = e2b_turn_take(SB_A, "ctx_9", -1, never, NULL, &w->turn, &err);
		if (w->ret < 0)
			return NULL;
		pthread_mutex_lock(w->lock);
		(*w->inside)++;
		if (*w->inside > w->most)
			w->most = *w->inside;
		pthread_mutex_unlock(w->lock);
		pthread_mutex_lock(w->lock);
		(*w->inside)--;
		pthread_mutex_unlock(w->lock);
		e2b_turn_release(w->turn);
	}
	return NULL;
}

static void waiters_take_the_turn_one_at_a_time(void **state)
{
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_t threads[4];
	struct waiter w[4];
	int inside = 0, i;

	(void)state;
	for (i = 0; i < 4; i++) {
		w[i] = (struct waiter){ .inside = &inside, .lock = &lock };
		assert_int_equal(pthread_create(&threads[i], NULL, waiter_main, &w[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(threads[i], NULL), 0);
		assert_int_equal(w[i].ret, 0);
		assert_int_equal(w[i].most, 1);
	}
	assert_int_equal(e2b_turn_count(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pairs_are_independent_and_nothing_stays),
		cmocka_unit_test(a_held_turn_times_out_or_is_abandoned),
		cmocka_unit_test(waiters_take_the_turn_one_at_a_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
