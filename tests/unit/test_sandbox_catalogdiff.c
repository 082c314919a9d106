/* Unit tests for comparing catalog generations (src/sandbox/catalogdiff.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sandbox/catalogdiff.h"

#define SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SHA_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define DEFAULTS "{\"exec_timeout_ms\":30000,\"output_limit_bytes\":1048576,\"memory_mib\":256," \
		 "\"vcpus\":1,\"overlay_mib\":128}"
#define PACK(name, sha) \
	"{\"name\":\"" name "\",\"image\":\"packs/" name ".squashfs\",\"sha256\":\"" sha "\"," \
	"\"interpreter\":[\"/bin/sh\"],\"description\":\"d\",\"defaults\":" DEFAULTS "}"
#define MANIFEST_K(kernel, packs) \
	"{\"version\":1,\"kernel\":{\"bzimage\":\"" kernel "\",\"vmlinux\":\"kernel/vmlinux\"," \
	"\"release\":\"6.1\"},\"initramfs\":\"initramfs.cpio.gz\",\"packs\":[" packs "]}"
#define MANIFEST(packs) MANIFEST_K("kernel/vmlinuz", packs)

static void parse(const char *text, struct catalog *cat)
{
	assert_int_equal(catalog_parse("/img", text, strlen(text), cat, NULL), 0);
}

static enum catalog_change change_of(const struct catalog_diff *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->count; i++) {
		if (strcmp(d->packs[i].name, name) == 0)
			return d->packs[i].change;
	}
	fail_msg("%s not in the diff", name);
	return CATALOG_UNCHANGED;
}

static void diff_names_added_removed_changed_and_unchanged_packs(void **state)
{
	struct catalog old, next;
	struct catalog_diff d;

	(void)state;
	parse(MANIFEST(PACK("shell", SHA_A) "," PACK("python", SHA_A) "," PACK("gone", SHA_A)),
	      &old);
	parse(MANIFEST(PACK("python", SHA_B) "," PACK("shell", SHA_A) "," PACK("node", SHA_A)),
	      &next);
	catalog_diff(&old, &next, &d);
	assert_int_equal(d.count, 4);
	assert_int_equal(d.changes, 3);
	assert_int_equal(change_of(&d, "python"), CATALOG_CHANGED);
	assert_int_equal(change_of(&d, "shell"), CATALOG_UNCHANGED);
	assert_int_equal(change_of(&d, "node"), CATALOG_ADDED);
	assert_int_equal(change_of(&d, "gone"), CATALOG_REMOVED);
	/* The new catalog's packs in its order, then the removed ones. */
	assert_string_equal(d.packs[0].name, "python");
	assert_string_equal(d.packs[3].name, "gone");
	assert_string_equal(catalog_change_name(CATALOG_REMOVED), "removed");
	catalog_release(&old);
	catalog_release(&next);
}

static void the_same_catalog_read_twice_changes_nothing(void **state)
{
	struct catalog old, next;
	struct catalog_diff d;

	(void)state;
	parse(MANIFEST(PACK("shell", SHA_A) "," PACK("python", SHA_A)), &old);
	parse(MANIFEST(PACK("shell", SHA_A) "," PACK("python", SHA_A)), &next);
	catalog_diff(&old, &next, &d);
	assert_int_equal(d.count, 2);
	assert_int_equal(d.changes, 0);
	assert_int_equal(catalog_diff_check(&old, &next, NULL), 0);
	catalog_release(&old);
	catalog_release(&next);
}

static void equal_packs_are_found_across_generations(void **state)
{
	struct catalog old, next;

	(void)state;
	parse(MANIFEST(PACK("shell", SHA_A) "," PACK("python", SHA_A)), &old);
	parse(MANIFEST(PACK("python", SHA_B) "," PACK("shell", SHA_A)), &next);
	/* Another struct with the same content: a pooled shell clone carries over. */
	assert_ptr_equal(catalog_find_equal(&next, catalog_find(&old, "shell")),
			 catalog_find(&next, "shell"));
	/* A new sha256 is another pack: the old clone is not handed out for it. */
	assert_null(catalog_find_equal(&next, catalog_find(&old, "python")));
	assert_ptr_equal(catalog_find_equal(&old, catalog_find(&old, "python")),
			 catalog_find(&old, "python"));
	catalog_release(&old);
	catalog_release(&next);
}

static void how_code_is_passed_is_part_of_a_pack(void **state)
{
	struct catalog old, next;
	struct catalog_diff d;

	(void)state;
	parse(MANIFEST(PACK("shell", SHA_A)), &old);
	parse(MANIFEST("{\"name\":\"shell\",\"image\":\"packs/shell.squashfs\",\"sha256\":\"" SHA_A
		       "\",\"interpreter\":[\"/bin/sh\"],\"code\":\"argument\",\"description\":\"d\","
		       "\"defaults\":" DEFAULTS "}"), &next);
	assert_null(catalog_find_equal(&next, catalog_find(&old, "shell")));
	catalog_diff(&old, &next, &d);
	assert_int_equal(change_of(&d, "shell"), CATALOG_CHANGED);
	catalog_release(&old);
	catalog_release(&next);
}

static void a_new_kernel_is_refused(void **state)
{
	struct catalog old, next;
	struct ember_error *err = NULL;

	(void)state;
	parse(MANIFEST(PACK("shell", SHA_A)), &old);
	parse(MANIFEST_K("kernel/other", PACK("shell", SHA_A)), &next);
	assert_int_equal(catalog_diff_check(&old, &next, &err), -1);
	assert_non_null(strstr(err->message, "restart the daemon"));
	ember_error_free(&err);
	catalog_release(&old);
	catalog_release(&next);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(diff_names_added_removed_changed_and_unchanged_packs),
		cmocka_unit_test(the_same_catalog_read_twice_changes_nothing),
		cmocka_unit_test(equal_packs_are_found_across_generations),
		cmocka_unit_test(how_code_is_passed_is_part_of_a_pack),
		cmocka_unit_test(a_new_kernel_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
