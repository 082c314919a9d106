/* Unit tests for the guest's mount points (src/guest/mounts.c): made without following a
 * symlink. mount(2) itself needs root and a VM's devices: the e2e mount tests cover it. */
#include <errno.h>
#include <fcntl.h>
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

#include "guest/mounts.h"
#include "tmpdir.h"
#include "util/cleanup.h"

/* A fresh directory under the scratch dir, opened as the walk's root. */
static int scratch_root(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", tmpdir_path, name);
	assert_int_equal(mkdir(path, 0755), 0);
	return open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

static void mount_point_is_made_with_every_missing_directory(void **state)
{
	_cleanup_close_ int root = scratch_root("made");
	_cleanup_close_ int fd = -1;
	struct stat st, via_path;
	mode_t old = umask(022);

	(void)state;
	assert_true(root >= 0);
	assert_int_equal(mkdirat(root, "mnt", 0700), 0); /* an existing one is kept as it is */
	fd = guest_mounts_open_point(root, "/mnt/a/b", NULL);
	umask(old);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(fstatat(root, "mnt/a/b", &via_path, 0), 0);
	assert_true(st.st_ino == via_path.st_ino && st.st_dev == via_path.st_dev);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(fstatat(root, "mnt", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	close(fd);
	/* again: everything exists */
	fd = guest_mounts_open_point(root, "/mnt/a/b", NULL);
	assert_true(fd >= 0);
}

static void mount_point_refuses_a_symlink_on_the_way(void **state)
{
	_cleanup_close_ int root = scratch_root("links");
	struct ember_error *err = NULL;
	struct stat st;

	(void)state;
	assert_true(root >= 0);
	assert_int_equal(mkdirat(root, "elsewhere", 0755), 0);
	assert_int_equal(symlinkat("elsewhere", root, "link"), 0);
	assert_int_equal(symlinkat("/etc", root, "etc-link"), 0);
	assert_int_equal(guest_mounts_open_point(root, "/link/x", &err), -1);
	assert_non_null(strstr(err->message, "`/link` is a symbolic link"));
	ember_error_free(&err);
	/* nothing was made through the link */
	assert_int_equal(fstatat(root, "elsewhere/x", &st, AT_SYMLINK_NOFOLLOW), -1);
	assert_int_equal(errno, ENOENT);
	/* the last component too */
	assert_int_equal(guest_mounts_open_point(root, "/etc-link", &err), -1);
	assert_non_null(strstr(err->message, "`/etc-link` is a symbolic link"));
	ember_error_free(&err);
}

static void mount_point_refuses_a_file_on_the_way(void **state)
{
	_cleanup_close_ int root = scratch_root("files");
	_cleanup_close_ int file = -1;
	struct ember_error *err = NULL;

	(void)state;
	assert_true(root >= 0);
	file = openat(root, "data", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(file >= 0);
	assert_int_equal(guest_mounts_open_point(root, "/data", &err), -1);
	assert_non_null(strstr(err->message, "`/data` is not a directory"));
	ember_error_free(&err);
	assert_int_equal(guest_mounts_open_point(root, "/data/x", &err), -1);
	assert_non_null(strstr(err->message, "`/data` is not a directory"));
	ember_error_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(mount_point_is_made_with_every_missing_directory),
		cmocka_unit_test(mount_point_refuses_a_symlink_on_the_way),
		cmocka_unit_test(mount_point_refuses_a_file_on_the_way),
	};

	return cmocka_run_group_tests_name("guest_mounts", tests, tmpdir_group_setup,
					   tmpdir_group_teardown);
}
