/* Unit tests for envd's path expansion on the E2B listener (src/e2b/fspath.c): `~` and
 * relative paths under /home/user, cleaned like Go's filepath.Clean, bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "e2b/fspath.h"

static void resolves_like_envd(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "/etc/hosts", "/etc/hosts" },
		{ "a.txt", "/home/user/a.txt" },
		{ "", "/home/user" },
		{ "~", "/home/user" },
		{ "~/x/y", "/home/user/x/y" },
		{ "~other", "/home/user/~other" },
		{ "./a//b/./c/", "/home/user/a/b/c" },
		{ "../../../..", "/" },
		{ "/a/b/../../../c", "/c" },
		{ "/", "/" },
		{ "//", "/" },
	};
	char out[PROTO_PATH_MAX + 1];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(e2b_path_resolve(cases[i].in, out, NULL), 0);
		assert_string_equal(out, cases[i].out);
	}
}

static void a_path_past_the_bound_is_refused(void **state)
{
	char *long_path = malloc(PROTO_PATH_MAX + 2), out[PROTO_PATH_MAX + 1];
	struct ember_error *err = NULL;

	(void)state;
	assert_non_null(long_path);
	memset(long_path, 'a', PROTO_PATH_MAX + 1);
	long_path[0] = '/';
	long_path[PROTO_PATH_MAX + 1] = '\0';
	assert_int_equal(e2b_path_resolve(long_path, out, &err), -1);
	assert_int_equal(err->kind, EMBER_E_INVALID);
	ember_error_free(&err);
	/* exactly the bound fits */
	long_path[PROTO_PATH_MAX] = '\0';
	assert_int_equal(e2b_path_resolve(long_path, out, NULL), 0);
	assert_int_equal(strlen(out), PROTO_PATH_MAX);
	free(long_path);
}

static void base_and_dir(void **state)
{
	char dir[PROTO_PATH_MAX + 1];

	(void)state;
	assert_string_equal(e2b_path_base("/home/user/a.txt"), "a.txt");
	assert_string_equal(e2b_path_base("/"), "/");
	e2b_path_dir("/home/user/a.txt", dir);
	assert_string_equal(dir, "/home/user");
	e2b_path_dir("/a", dir);
	assert_string_equal(dir, "/");
	e2b_path_dir("/", dir);
	assert_string_equal(dir, "/");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(resolves_like_envd),
		cmocka_unit_test(a_path_past_the_bound_is_refused),
		cmocka_unit_test(base_and_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
