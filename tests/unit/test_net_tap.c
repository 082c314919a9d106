/* Unit tests for the persistent-TAP helpers of src/net/tap.c (tap_set_persist,
 * tap_delete_by_name): what the firecracker driver and egress do for a VMM that opens its TAP by
 * name. Each test makes its own TAP `embut<N>` (kernel-numbered) and removes it; skipped without
 * root or /dev/net/tun. No other interface is touched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <unistd.h>

#include "net/tap.h"

/* A fresh TAP of ours, or a skip. */
static int make_tap(char name[IFNAMSIZ])
{
	struct ember_error *err = NULL;
	int fd;

	if (geteuid() != 0 || access("/dev/net/tun", R_OK | W_OK) < 0)
		skip();
	snprintf(name, IFNAMSIZ, "embut%%d");
	fd = tap_create(name, &err);
	if (fd < 0) {
		fprintf(stderr, "no TAP: %s\n", err->message);
		ember_error_free(&err);
		skip();
	}
	assert_true(tap_exists(name));
	return fd;
}

static void a_persistent_tap_outlives_its_descriptor_until_deleted_by_name(void **state)
{
	struct ember_error *err = NULL;
	char name[IFNAMSIZ];
	int fd = make_tap(name);

	(void)state;
	assert_int_equal(tap_set_persist(fd, true, 4242, &err), 0);
	close(fd);
	assert_true(tap_exists(name));
	assert_int_equal(tap_delete_by_name(name, &err), 0);
	assert_null(err);
	assert_false(tap_exists(name));
	/* Gone: a second delete says so (and makes nothing). */
	assert_int_equal(tap_delete_by_name(name, &err), -1);
	assert_int_equal(err->kind, EMBER_E_NOT_FOUND);
	ember_error_free(&err);
	assert_false(tap_exists(name));
}

static void a_held_tap_is_not_deleted(void **state)
{
	struct ember_error *err = NULL;
	char name[IFNAMSIZ];
	int fd = make_tap(name);

	(void)state;
	assert_int_equal(tap_set_persist(fd, true, 0, &err), 0);
	/* Someone (a VMM) is attached: TUNSETIFF by name fails, the TAP stays. */
	assert_int_equal(tap_delete_by_name(name, &err), -1);
	assert_int_equal(err->errno_value, EBUSY);
	ember_error_free(&err);
	assert_true(tap_exists(name));
	/* Undone, the TAP goes with its last descriptor again. */
	assert_int_equal(tap_set_persist(fd, false, 0, &err), 0);
	close(fd);
	assert_false(tap_exists(name));
}

static void bad_names_are_refused(void **state)
{
	struct ember_error *err = NULL;

	(void)state;
	assert_int_equal(tap_delete_by_name("a-name-longer-than-ifnamsiz", &err), -1);
	assert_int_equal(err->kind, EMBER_E_INVALID);
	ember_error_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_persistent_tap_outlives_its_descriptor_until_deleted_by_name),
		cmocka_unit_test(a_held_tap_is_not_deleted),
		cmocka_unit_test(bad_names_are_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
