/* Unit tests for file_link_or_copy (src/util/fdio.c): a hard link on one filesystem, a byte-exact
 * copy across filesystems (where link() says EXDEV), and no half-made file on failure. */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(same_filesystem_is_a_hard_link),
		cmocka_unit_test(across_filesystems_is_an_exact_copy),
		cmocka_unit_test(a_missing_source_leaves_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
