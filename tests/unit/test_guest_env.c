/* Unit tests for exec environment assembly (src/guest/env.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guest/env.h"

static const char *const base[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/sandbox",
				    "LANG=C.UTF-8", "USER=sandbox", NULL };

static void base_only_when_request_is_empty(void **state)
{
	const char *const req[] = { NULL };
	char **env = NULL;
	size_t i;

	(void)state;
	assert_int_equal(guest_env_build(base, req, &env, NULL), 0);
	for (i = 0; base[i] != NULL; i++)
		assert_string_equal(env[i], base[i]);
	assert_null(env[i]);
	free(env);
}

static void request_adds_and_overrides_by_name(void **state)
{
	const char *const req[] = { "FOO=bar", "LANG=C", "PATHX=1", "FOO=baz", "EMPTY=", NULL };
	char **env = NULL;

	(void)state;
	assert_int_equal(guest_env_build(base, req, &env, NULL), 0);
	assert_string_equal(env[0], "PATH=/usr/local/bin:/usr/bin:/bin");
	assert_string_equal(env[1], "HOME=/home/sandbox");
	assert_string_equal(env[2], "LANG=C");
	assert_string_equal(env[3], "USER=sandbox");
	assert_string_equal(env[4], "FOO=baz"); /* last duplicate wins, first position kept */
	assert_string_equal(env[5], "PATHX=1"); /* a prefix is not the same name */
	assert_string_equal(env[6], "EMPTY=");
	assert_null(env[7]);
	free(env);
}

static void request_may_override_path(void **state)
{
	const char *const req[] = { "PATH=/opt/bin", NULL };
	char **env = NULL;

	(void)state;
	assert_int_equal(guest_env_build(base, req, &env, NULL), 0);
	assert_string_equal(env[0], "PATH=/opt/bin");
	assert_null(env[4]);
	free(env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(base_only_when_request_is_empty),
		cmocka_unit_test(request_adds_and_overrides_by_name),
		cmocka_unit_test(request_may_override_path),
	};

	return cmocka_run_group_tests_name("guest_env", tests, NULL, NULL);
}
