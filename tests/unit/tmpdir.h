/* tmpdir.h - a scratch directory for a unit-test binary: made by the group setup, removed with
 * everything in it by the group teardown. Pass tmpdir_group_setup/teardown to
 * cmocka_run_group_tests; tests use tmpdir_path. */
#ifndef EMBER_TESTS_UNIT_TMPDIR_H
#define EMBER_TESTS_UNIT_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>

static char tmpdir_path[] = "/tmp/emberd-unit.XXXXXX";

static inline int tmpdir_group_setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir_path) == NULL ? -1 : 0;
}

static inline int tmpdir_group_teardown(void **state)
{
	char cmd[256];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir_path);
	return system(cmd) == 0 ? 0 : -1;
}

#endif
