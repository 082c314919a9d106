/* Unit tests for the sweep of empty exec cgroups (src/guest/cgroup.c), on a plain directory
 * tree: an empty directory stands for an empty cgroup, one holding a file for a populated one
 * (rmdir refuses both alike). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"

#include "guest/cgroup.h"

static void make_dir(const char *name, bool populated)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", tmpdir_path, name);
	assert_int_equal(mkdir(path, 0755), 0);
	if (populated) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s/cgroup.procs", tmpdir_path, name);
		f = fopen(path, "w");
		assert_non_null(f);
		fclose(f);
	}
}

static bool exists(const char *name)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", tmpdir_path, name);
	return stat(path, &st) == 0;
}

/* Claims the cgroup named in ctx, as the agent does for an exec it has not reaped yet. */
static bool keep_named(const char *path, void *ctx)
{
	const char *slash = strrchr(path, '/');

	return slash != NULL && strcmp(slash + 1, ctx) == 0;
}

static void sweep_removes_empty_keeps_claimed_and_populated(void **state)
{
	(void)state;
	make_dir("1-done", false);
	make_dir("2-exited-not-reaped", false);
	make_dir("3-background-left", true);
	make_dir("4-done", false);
	guest_cgroup_sweep(tmpdir_path, keep_named, "2-exited-not-reaped");
	assert_false(exists("1-done"));
	assert_false(exists("4-done"));
	/* empty, but its exec's memory.events is still to be read */
	assert_true(exists("2-exited-not-reaped"));
	assert_true(exists("3-background-left"));
	/* once reaped (no longer claimed), the next sweep takes it */
	guest_cgroup_sweep(tmpdir_path, NULL, NULL);
	assert_false(exists("2-exited-not-reaped"));
	assert_true(exists("3-background-left"));
}

static void sweep_of_a_missing_root_does_nothing(void **state)
{
	(void)state;
	guest_cgroup_sweep("/nonexistent/cgroup/tmpdir_path", NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sweep_removes_empty_keeps_claimed_and_populated),
		cmocka_unit_test(sweep_of_a_missing_root_does_nothing),
	};

	return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
