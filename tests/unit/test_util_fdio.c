/* Unit tests for file_link_or_copy (src/util/fdio.c): a hard link on one filesystem, a byte-exact
 * copy across filesystems (where link() says EXDEV), and no half-made file on failure; and for
 * dir_check_trusted (what the root daemon accepts as its run and images directories). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/error.h"
#include "util/fdio.h"

/* More than one copy chunk (1 MiB) and not a multiple of it. */
#define CONTENT_LEN ((3u << 20) + 12345u)

static char *make_dir(const char *parent)
{
	char *dir = malloc(PATH_MAX);

	assert_non_null(dir);
	snprintf(dir, PATH_MAX, "%s/ember-fdio-XXXXXX", parent);
	assert_non_null(mkdtemp(dir));
	return dir;
}

static uint8_t *write_content(const char *path)
{
	uint8_t *data = malloc(CONTENT_LEN);
	FILE *f;
	size_t i;

	assert_non_null(data);
	for (i = 0; i < CONTENT_LEN; i++)
		data[i] = (uint8_t)(i * 131 + (i >> 11));
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, CONTENT_LEN, f), CONTENT_LEN);
	assert_int_equal(fclose(f), 0);
	return data;
}

static void assert_content(const char *path, const uint8_t *want)
{
	uint8_t *got = malloc(CONTENT_LEN + 1);
	FILE *f = fopen(path, "rb");

	assert_non_null(got);
	assert_non_null(f);
	assert_int_equal(fread(got, 1, CONTENT_LEN + 1, f), CONTENT_LEN);
	fclose(f);
	assert_memory_equal(got, want, CONTENT_LEN);
	free(got);
}

static void same_filesystem_is_a_hard_link(void **state)
{
	char *dir = make_dir("/tmp");
	char src[PATH_MAX], dst[PATH_MAX];
	struct ember_error *err = NULL;
	struct stat a, b;
	uint8_t *data;

	(void)state;
	snprintf(src, sizeof(src), "%s/src", dir);
	snprintf(dst, sizeof(dst), "%s/dst", dir);
	data = write_content(src);
	assert_int_equal(file_link_or_copy(src, dst, NULL), 0);
	assert_int_equal(stat(src, &a), 0);
	assert_int_equal(stat(dst, &b), 0);
	assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	/* an existing destination is an error, never overwritten */
	assert_int_equal(file_link_or_copy(src, dst, &err), -1);
	assert_non_null(err);
	ember_error_free(&err);
	unlink(src);
	unlink(dst);
	rmdir(dir);
	free(dir);
	free(data);
}

static void across_filesystems_is_an_exact_copy(void **state)
{
	/* /dev/shm is a tmpfs on every Linux this runs on; /tmp of the build is not the same
	 * filesystem (checked, so the test cannot pass by linking). */
	char *from = make_dir("/dev/shm"), *to = make_dir("/tmp");
	char src[PATH_MAX], dst[PATH_MAX];
	struct stat a, b;
	uint8_t *data;

	(void)state;
	snprintf(src, sizeof(src), "%s/src", from);
	snprintf(dst, sizeof(dst), "%s/dst", to);
	data = write_content(src);
	assert_int_equal(stat(src, &a), 0);
	assert_int_equal(stat(to, &b), 0);
	assert_true(a.st_dev != b.st_dev);
	assert_int_equal(file_link_or_copy(src, dst, NULL), 0);
	assert_int_equal(stat(dst, &b), 0);
	assert_int_equal(b.st_size, CONTENT_LEN);
	assert_content(dst, data);
	unlink(src);
	unlink(dst);
	rmdir(from);
	rmdir(to);
	free(from);
	free(to);
	free(data);
}

static void a_missing_source_leaves_nothing(void **state)
{
	char *dir = make_dir("/tmp");
	char dst[PATH_MAX];
	struct ember_error *err = NULL;

	(void)state;
	snprintf(dst, sizeof(dst), "%s/dst", dir);
	assert_int_equal(file_link_or_copy("/dev/shm/ember-no-such-file", dst, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err->message, "ember-no-such-file"));
	ember_error_free(&err);
	assert_int_equal(access(dst, F_OK), -1);
	rmdir(dir);
	free(dir);
}

static void check_trusted(const char *path, const char *mentions)
{
	struct ember_error *err = NULL;
	int ret = dir_check_trusted(path, "--run-dir", &err);

	if (mentions == NULL) {
		if (ret != 0)
			fail_msg("`%s` refused: %s", path, err->message);
		return;
	}
	assert_int_equal(ret, -1);
	assert_int_equal(err->kind, EMBER_E_INVALID);
	assert_non_null(strstr(err->message, "--run-dir"));
	if (strstr(err->message, mentions) == NULL)
		fail_msg("`%s`: expected `%s` in: %s", path, mentions, err->message);
	ember_error_free(&err);
}

static void trusted_dirs_are_root_owned_unwritable_and_real(void **state)
{
	char *top = make_dir("/tmp"); /* 0700 under sticky /tmp: trusted */
	char sub[PATH_MAX], deeper[PATH_MAX], link[PATH_MAX];

	(void)state;
	check_trusted(top, NULL);
	snprintf(sub, sizeof(sub), "%s/open", top);
	snprintf(deeper, sizeof(deeper), "%s/open/run", top);
	snprintf(link, sizeof(link), "%s/link", top);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(mkdir(deeper, 0700), 0);
	check_trusted(deeper, NULL);
	assert_int_equal(chmod(sub, 0777), 0); /* a writable parent lets others swap `run` */
	check_trusted(deeper, "writable by group or others");
	check_trusted(sub, "mode 0777");
	assert_int_equal(chmod(sub, 01777), 0); /* sticky parent: fine; the dir itself: not */
	check_trusted(deeper, NULL);
	check_trusted(sub, "writable by group or others");
	assert_int_equal(chmod(sub, 0755), 0);
	assert_int_equal(chown(deeper, 1000, 1000), 0);
	check_trusted(deeper, "owned by uid 1000");
	assert_int_equal(chown(deeper, 0, 0), 0);
	assert_int_equal(symlink(deeper, link), 0);
	check_trusted(link, "is a symlink");
	check_trusted("/nonexistent-emberd-dir", "No such file");
	unlink(link);
	rmdir(deeper);
	rmdir(sub);
	rmdir(top);
	free(top);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(same_filesystem_is_a_hard_link),
		cmocka_unit_test(across_filesystems_is_an_exact_copy),
		cmocka_unit_test(a_missing_source_leaves_nothing),
		cmocka_unit_test(trusted_dirs_are_root_owned_unwritable_and_real),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
