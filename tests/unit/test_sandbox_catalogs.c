/* Unit tests for catalog generations and their reload (src/sandbox/catalogs.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox/catalogs.h"
#include "util/fdio.h"

#define DEFAULTS "{\"exec_timeout_ms\":30000,\"output_limit_bytes\":1048576,\"memory_mib\":256," \
		 "\"vcpus\":1,\"overlay_mib\":128}"
#define MANIFEST_HEAD \
	"{\"version\":1,\"kernel\":{\"bzimage\":\"vmlinuz\",\"vmlinux\":\"vmlinux\"," \
	"\"release\":\"6.1\"},\"initramfs\":\"initramfs\",\"packs\":["

struct images {
	char dir[64];
};

static void write_file(const struct images *im, const char *name, const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", im->dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* packs.json naming each of names (comma-separated) with a sha256 of digit sha. */
static void write_manifest(const struct images *im, const char *names, char sha)
{
	char text[4096], shas[65], copy[256], *name, *save = NULL;
	size_t used;

	memset(shas, sha, 64);
	shas[64] = '\0';
	used = (size_t)snprintf(text, sizeof(text), "%s", MANIFEST_HEAD);
	snprintf(copy, sizeof(copy), "%s", names);
	for (name = strtok_r(copy, ",", &save); name != NULL; name = strtok_r(NULL, ",", &save))
		used += (size_t)snprintf(text + used, sizeof(text) - used,
					 "%s{\"name\":\"%s\",\"image\":\"%s.img\",\"sha256\":\"%s\","
					 "\"interpreter\":[\"/bin/sh\"],\"description\":\"d\","
					 "\"defaults\":" DEFAULTS "}",
					 text[used - 1] == '[' ? "" : ",", name, name, shas);
	snprintf(text + used, sizeof(text) - used, "]}");
	write_file(im, "packs.json", text);
}

static int setup(void **state)
{
	static struct images im;

	snprintf(im.dir, sizeof(im.dir), "/tmp/ember-catalogs-XXXXXX");
	assert_non_null(mkdtemp(im.dir));
	write_file(&im, "vmlinuz", "k");
	write_file(&im, "vmlinux", "k");
	write_file(&im, "initramfs", "i");
	write_file(&im, "shell.img", "s");
	write_file(&im, "python.img", "p");
	*state = &im;
	return 0;
}

static int teardown(void **state)
{
	struct images *im = *state;

	dir_remove_tree(im->dir, NULL);
	return 0;
}

static void load_first(const struct images *im, struct catalog *first, struct catalogs *c)
{
	write_manifest(im, "shell", '1');
	assert_int_equal(catalog_load(im->dir, first, NULL), 0);
	catalogs_init(c, first);
}

static void a_reload_adds_packs_and_keeps_the_old_generation(void **state)
{
	struct images *im = *state;
	struct catalog first;
	struct catalogs c;
	struct catalog_diff d;
	const struct catalog *next;
	const struct pack *shell;

	load_first(im, &first, &c);
	shell = catalog_find(catalogs_current(&c), "shell");
	write_manifest(im, "python", '1');
	assert_int_equal(catalogs_reload(&c, false, &d, &next, NULL), 0);
	assert_int_equal(d.changes, 2);
	assert_ptr_equal(catalogs_current(&c), next);
	assert_non_null(catalog_find(next, "python"));
	assert_null(catalog_find(next, "shell"));
	/* A live sandbox's pack of the replaced generation is still there. */
	assert_string_equal(shell->name, "shell");
	catalogs_release(&c);
	catalog_release(&first);
}

static void a_reload_without_changes_makes_no_generation(void **state)
{
	struct images *im = *state;
	struct catalog first;
	struct catalogs c;
	struct catalog_diff d;
	const struct catalog *next;

	load_first(im, &first, &c);
	assert_int_equal(catalogs_reload(&c, false, &d, &next, NULL), 0);
	assert_int_equal(d.changes, 0);
	assert_ptr_equal(next, &first);
	assert_int_equal(c.count, 1);
	catalogs_release(&c);
	catalog_release(&first);
}

static void a_failed_reload_changes_nothing(void **state)
{
	struct images *im = *state;
	struct catalog first;
	struct catalogs c;
	struct catalog_diff d;
	const struct catalog *next;
	struct ember_error *err = NULL;

	load_first(im, &first, &c);
	write_file(im, "packs.json", "{\"version\":1,");
	assert_int_equal(catalogs_reload(&c, false, &d, &next, &err), -1);
	assert_int_equal(err->kind, EMBER_E_INVALID);
	ember_error_free(&err);
	/* A pack whose image is missing. */
	write_manifest(im, "shell,node", '1');
	assert_int_equal(catalogs_reload(&c, false, &d, &next, &err), -1);
	assert_non_null(strstr(err->message, "node"));
	ember_error_free(&err);
	assert_ptr_equal(catalogs_current(&c), &first);
	assert_int_equal(c.count, 1);
	catalogs_release(&c);
	catalog_release(&first);
}

static void reloads_stop_at_the_generation_cap(void **state)
{
	struct images *im = *state;
	struct catalog first;
	struct catalogs c;
	struct catalog_diff d;
	const struct catalog *next;
	struct ember_error *err = NULL;
	unsigned i;

	load_first(im, &first, &c);
	for (i = 1; i < CATALOG_GENERATIONS_MAX; i++) {
		write_manifest(im, "shell", (char)('1' + i % 2));
		assert_int_equal(catalogs_reload(&c, false, &d, &next, NULL), 0);
		assert_int_equal(d.changes, 1);
	}
	write_manifest(im, "shell", (char)('1' + i % 2));
	assert_int_equal(catalogs_reload(&c, false, &d, &next, &err), -1);
	assert_int_equal(err->kind, EMBER_E_CONFLICT);
	assert_non_null(strstr(err->message, "restart"));
	ember_error_free(&err);
	assert_ptr_equal(catalogs_current(&c), c.owned[CATALOG_GENERATIONS_MAX - 1]);
	catalogs_release(&c);
	catalog_release(&first);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(a_reload_adds_packs_and_keeps_the_old_generation,
						setup, teardown),
		cmocka_unit_test_setup_teardown(a_reload_without_changes_makes_no_generation, setup,
						teardown),
		cmocka_unit_test_setup_teardown(a_failed_reload_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(reloads_stop_at_the_generation_cap, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
