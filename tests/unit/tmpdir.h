/* tmpdir.h - a scratch directory per unit-test group: made by the group's setup, removed with
 * everything in it by its teardown. */
#ifndef EMBER_TESTS_UNIT_TMPDIR_H
#define EMBER_TESTS_UNIT_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>

/* path: a mkdtemp template ("/tmp/name.XXXXXX"), filled in by the setup. */
static inline int tmpdir_setup(char *path)
{
	return mkdtemp(path) == NULL ? -1 : 0;
}

static inline int tmpdir_teardown(const char *path)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	return system(cmd) == 0 ? 0 : -1;
}

#endif
