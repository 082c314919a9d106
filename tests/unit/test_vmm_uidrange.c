/* Unit tests for the VMM uid allocator (src/vmm/uidrange.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vmm/uidrange.h"

#define BASE 1900000000u

static void ids_are_distinct_in_range_and_not_reused_at_once(void **state)
{
	struct uid_range *r = NULL;
	uid_t a, b, c;

	(void)state;
	assert_int_equal(uid_range_create(BASE, 4, &r, NULL), 0);
	assert_int_equal(uid_range_alloc(r, &a, NULL), 0);
	assert_int_equal(uid_range_alloc(r, &b, NULL), 0);
	assert_true(a != b);
	assert_true(uid_range_contains(r, a) && uid_range_contains(r, b));
	uid_range_release(r, a);
	/* The next one is a fresh id, not the one just released. */
	assert_int_equal(uid_range_alloc(r, &c, NULL), 0);
	assert_true(c != a && c != b);
	assert_int_equal(uid_range_in_use(r), 2);
	uid_range_free(r);
}

static void exhaustion_is_an_error_and_release_makes_room(void **state)
{
	struct uid_range *r = NULL;
	struct ember_error *err = NULL;
	uid_t ids[3], extra;
	int i;

	(void)state;
	assert_int_equal(uid_range_create(BASE, 3, &r, NULL), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(uid_range_alloc(r, &ids[i], NULL), 0);
	assert_int_equal(uid_range_alloc(r, &extra, &err), -1);
	assert_int_equal(err->kind, EMBER_E_UNAVAILABLE);
	ember_error_free(&err);
	uid_range_release(r, ids[1]);
	assert_int_equal(uid_range_alloc(r, &extra, NULL), 0);
	assert_int_equal(extra, ids[1]);
	uid_range_free(r);
}

static void claim_takes_a_free_id_of_the_range_only(void **state)
{
	struct uid_range *r = NULL;
	uid_t next;

	(void)state;
	assert_int_equal(uid_range_create(BASE, 8, &r, NULL), 0);
	assert_int_equal(uid_range_claim(r, BASE + 5), 0);
	assert_int_equal(uid_range_claim(r, BASE + 5), -1);     /* taken */
	assert_int_equal(uid_range_claim(r, BASE + 8), -1);     /* past the end */
	assert_int_equal(uid_range_claim(r, BASE - 1), -1);     /* before it */
	assert_int_equal(uid_range_claim(r, 0), -1);
	assert_false(uid_range_contains(r, 0));
	/* alloc never hands out a claimed id */
	for (next = 0; uid_range_in_use(r) < 8;) {
		assert_int_equal(uid_range_alloc(r, &next, NULL), 0);
		assert_true(next != BASE + 5);
	}
	uid_range_free(r);
}

static void a_range_reaching_past_uid_max_or_at_zero_is_refused(void **state)
{
	struct uid_range *r = NULL;
	struct ember_error *err = NULL;

	(void)state;
	assert_int_equal(uid_range_create(0, 8, &r, &err), -1);
	ember_error_free(&err);
	assert_int_equal(uid_range_create(4294967290u, 8, &r, &err), -1);
	ember_error_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ids_are_distinct_in_range_and_not_reused_at_once),
		cmocka_unit_test(exhaustion_is_an_error_and_release_makes_room),
		cmocka_unit_test(claim_takes_a_free_id_of_the_range_only),
		cmocka_unit_test(a_range_reaching_past_uid_max_or_at_zero_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
