/* Unit tests for a sandbox's own environment (src/sandbox/sandboxenv.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sandbox/sandboxenv.h"
#include "util/jsonutil.h"

static void entries_keep_their_order_and_read_back(void **state)
{
	struct sandbox_env env = { 0 };
	char *out[SANDBOX_ENV_MAX];
	json_t *obj;

	(void)state;
	assert_int_equal(sandbox_env_add(&env, "B", "2", 1, NULL), 0);
	assert_int_equal(sandbox_env_add(&env, "_a1", "x=y z", 5, NULL), 0);
	assert_int_equal(sandbox_env_add(&env, "EMPTY", "", 0, NULL), 0);
	assert_int_equal(sandbox_env_entries(&env, out, SANDBOX_ENV_MAX), 3);
	assert_string_equal(out[0], "B=2");
	assert_string_equal(out[1], "_a1=x=y z");
	assert_string_equal(out[2], "EMPTY=");
	obj = sandbox_env_to_json(&env);
	assert_non_null(obj);
	assert_string_equal(json_string_value(json_object_get(obj, "_a1")), "x=y z");
	json_decref(obj);
}

static void bad_names_values_and_overflow_are_refused(void **state)
{
	struct sandbox_env env = { 0 };
	char big[SANDBOX_ENV_BYTES];
	int i;

	(void)state;
	assert_int_equal(sandbox_env_add(&env, "", "v", 1, NULL), -1);
	assert_int_equal(sandbox_env_add(&env, "1A", "v", 1, NULL), -1);
	assert_int_equal(sandbox_env_add(&env, "A-B", "v", 1, NULL), -1);
	assert_int_equal(sandbox_env_add(&env, "A", "a\0b", 3, NULL), -1);
	assert_int_equal(sandbox_env_add(&env, "A", "\xff", 1, NULL), -1);
	assert_int_equal(sandbox_env_add(&env, "A", "v", 1, NULL), 0);
	assert_int_equal(sandbox_env_add(&env, "A", "w", 1, NULL), -1); /* twice */
	memset(big, 'v', sizeof(big));
	assert_int_equal(sandbox_env_add(&env, "BIG", big, sizeof(big) - 8, NULL), -1);
	for (i = 1; i < SANDBOX_ENV_MAX; i++) {
		char name[8];

		snprintf(name, sizeof(name), "N%d", i);
		assert_int_equal(sandbox_env_add(&env, name, "v", 1, NULL), 0);
	}
	assert_int_equal(sandbox_env_add(&env, "ONE_MORE", "v", 1, NULL), -1);
	assert_int_equal(env.count, SANDBOX_ENV_MAX);
}

static void json_objects_are_checked_entry_by_entry(void **state)
{
	struct sandbox_env env = { 0 };
	json_t *root = json_loads("{\"e\":{\"A\":\"1\",\"B\":\"2\"},\"bad\":{\"A\":1},"
				  "\"list\":[\"A=1\"],\"none\":null}", 0, NULL);

	(void)state;
	assert_non_null(root);
	assert_int_equal(sandbox_env_from_json(root, "e", &env, NULL), 0);
	assert_int_equal(env.count, 2);
	assert_int_equal(sandbox_env_from_json(root, "none", &env, NULL), 0);
	assert_int_equal(env.count, 0);
	assert_int_equal(sandbox_env_from_json(root, "missing", &env, NULL), 0);
	assert_int_equal(sandbox_env_from_json(root, "bad", &env, NULL), -1);
	assert_int_equal(sandbox_env_from_json(root, "list", &env, NULL), -1);
	json_decref(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(entries_keep_their_order_and_read_back),
		cmocka_unit_test(bad_names_values_and_overflow_are_refused),
		cmocka_unit_test(json_objects_are_checked_entry_by_entry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
