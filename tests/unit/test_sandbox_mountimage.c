/* Unit tests for a read-only mount's squashfs image (src/sandbox/mountimage.c): what the image
 * holds, the size bound and the deadline. Needs squashfs-tools (scripts/install-deps.sh). */
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

#include "sandbox/mountimage.h"
#include "tmpdir.h"
#include "util/cleanup.h"
#include "util/timeutil.h"

/* A fresh directory tmpdir/name (removed first if a test left it). */
static void make_dir(const char *name, char *out, size_t size)
{
	char cmd[512];

	snprintf(out, size, "%s/%s", tmpdir_path, name);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", out);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(mkdir(out, 0755), 0);
}

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* The first size-1 bytes of a shell command's stdout. */
static void command_output(const char *cmd, char *out, size_t size)
{
	FILE *p = popen(cmd, "r");
	size_t n;

	assert_non_null(p);
	n = fread(out, 1, size - 1, p);
	out[n] = '\0';
	assert_int_equal(pclose(p), 0);
}

static void image_keeps_files_directories_and_symlinks_as_links(void **state)
{
	char dir[256], image[300], cmd[700], out[4096];
	_cleanup_close_ int fd = -1;
	struct ember_error *err = NULL;
	struct stat st;

	(void)state;
	make_dir("tree", dir, sizeof(dir));
	write_file(dir, "file.txt", "hello from the host\n", 20);
	snprintf(cmd, sizeof(cmd), "%s/sub", dir);
	assert_int_equal(mkdir(cmd, 0755), 0);
	write_file(cmd, "inner", "x", 1);
	snprintf(cmd, sizeof(cmd), "%s/etc", dir);
	assert_int_equal(symlink("/etc", cmd), 0);
	snprintf(image, sizeof(image), "%s/tree.squashfs", tmpdir_path);
	/* The manager's descriptor: O_PATH, as sandbox_mount_open() gives it. */
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);

	if (mount_image_build(fd, image, 65534, 65534, 1 << 20, time_mono_ms() + 30000, &err) < 0)
		fail_msg("%s", err->message);
	assert_int_equal(stat(image, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0444);

	snprintf(cmd, sizeof(cmd), "unsquashfs -lls '%s'", image);
	command_output(cmd, out, sizeof(out));
	assert_non_null(strstr(out, "squashfs-root/etc -> /etc"));
	assert_non_null(strstr(out, "squashfs-root/sub/inner"));
	assert_non_null(strstr(out, "squashfs-root/file.txt"));
	/* Nothing of the link's target came along. */
	assert_null(strstr(out, "passwd"));
	snprintf(cmd, sizeof(cmd), "unsquashfs -cat '%s' file.txt", image);
	command_output(cmd, out, sizeof(out));
	assert_string_equal(out, "hello from the host\n");
	assert_int_equal(unlink(image), 0);
}

static void tree_over_max_bytes_is_refused_without_an_image(void **state)
{
	char dir[256], image[300], path[300];
	_cleanup_close_ int fd = -1;
	struct ember_error *err = NULL;
	int file;

	(void)state;
	make_dir("big", dir, sizeof(dir));
	/* 2 MiB that cost no disk: the bound counts file sizes, not blocks. */
	snprintf(path, sizeof(path), "%s/sparse", dir);
	file = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(file >= 0);
	assert_int_equal(ftruncate(file, 2 << 20), 0);
	close(file);
	snprintf(image, sizeof(image), "%s/big.squashfs", tmpdir_path);
	/* A stale file at the path is not left either. */
	write_file(tmpdir_path, "big.squashfs", "stale", 5);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);

	assert_int_equal(mount_image_build(fd, image, 65534, 65534, 1 << 20, time_mono_ms() + 30000, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->kind, EMBER_E_INVALID);
	assert_non_null(strstr(err->message, "more than 1 MiB"));
	assert_non_null(strstr(err->message, "--max-mount-image-mib"));
	ember_error_free(&err);
	assert_int_equal(access(image, F_OK), -1);
	assert_int_equal(errno, ENOENT);
}

static void passed_deadline_kills_mksquashfs_and_leaves_nothing(void **state)
{
	char dir[256], image[300], cmd[600];
	_cleanup_close_ int fd = -1;
	struct ember_error *err = NULL;
	int64_t started;

	(void)state;
	make_dir("slow", dir, sizeof(dir));
	/* 64 MiB that do not compress: seconds of zstd on this class of host. */
	snprintf(cmd, sizeof(cmd), "head -c 64M /dev/urandom > '%s/random'", dir);
	assert_int_equal(system(cmd), 0);
	snprintf(image, sizeof(image), "%s/slow.squashfs", tmpdir_path);
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);

	started = time_mono_ms();
	assert_int_equal(mount_image_build(fd, image, 65534, 65534, 128 << 20, started + 50, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->kind, EMBER_E_INTERNAL);
	assert_int_equal(err->errno_value, ETIMEDOUT);
	assert_non_null(strstr(err->message, "did not finish"));
	ember_error_free(&err);
	/* Killed and reaped at the deadline, not run to its end. */
	assert_true(time_mono_ms() - started < 2000);
	assert_int_equal(access(image, F_OK), -1);
	assert_int_equal(errno, ENOENT);
}

static void tree_deeper_than_the_bound_is_refused(void **state)
{
	char dir[256], image[300], path[1024];
	_cleanup_close_ int fd = -1;
	struct ember_error *err = NULL;
	size_t len;

	(void)state;
	make_dir("deep", dir, sizeof(dir));
	len = (size_t)snprintf(path, sizeof(path), "%s", dir);
	for (int i = 0; i < MOUNT_IMAGE_DEPTH_MAX + 1; i++) {
		len += (size_t)snprintf(path + len, sizeof(path) - len, "/d");
		assert_int_equal(mkdir(path, 0755), 0);
	}
	snprintf(image, sizeof(image), "%s/deep.squashfs", tmpdir_path);
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);

	assert_int_equal(mount_image_build(fd, image, 65534, 65534, 1 << 20, time_mono_ms() + 30000, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->kind, EMBER_E_INVALID);
	assert_non_null(strstr(err->message, "levels deep"));
	ember_error_free(&err);
	assert_int_equal(access(image, F_OK), -1);
}

/* A root daemon builds a user's directory as that user: a file only root may read is in the
 * image empty, not with root's bytes; every file is the guest user's; the image is the
 * daemon's. */
static void owners_tree_is_read_as_its_owner(void **state)
{
	char dir[256], image[300], path[300], cmd[700], out[4096];
	_cleanup_close_ int fd = -1;
	struct ember_error *err = NULL;
	struct stat st;

	(void)state;
	if (geteuid() != 0)
		skip();
	make_dir("owned", dir, sizeof(dir));
	write_file(dir, "mine", "user data\n", 10);
	write_file(dir, "roots", "root only\n", 10);
	snprintf(path, sizeof(path), "%s/mine", dir);
	assert_int_equal(chown(path, 65534, 65534), 0);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(chown(dir, 65534, 65534), 0);
	snprintf(path, sizeof(path), "%s/roots", dir);
	assert_int_equal(chmod(path, 0600), 0);
	snprintf(image, sizeof(image), "%s/owned.squashfs", tmpdir_path);
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);

	if (mount_image_build(fd, image, 65534, 65534, 1 << 20, time_mono_ms() + 30000, &err) < 0)
		fail_msg("%s", err->message);
	assert_int_equal(stat(image, &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_mode & 07777, 0444);
	snprintf(cmd, sizeof(cmd), "unsquashfs -lln '%s'", image);
	command_output(cmd, out, sizeof(out));
	assert_non_null(strstr(out, "-rw------- " MOUNT_IMAGE_GUEST_ID "/" MOUNT_IMAGE_GUEST_ID
				    "                 0 "));
	assert_null(strstr(out, " 0/0 "));
	snprintf(cmd, sizeof(cmd), "unsquashfs -cat '%s' mine roots", image);
	command_output(cmd, out, sizeof(out));
	assert_string_equal(out, "user data\n");
	assert_int_equal(unlink(image), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(image_keeps_files_directories_and_symlinks_as_links),
		cmocka_unit_test(tree_over_max_bytes_is_refused_without_an_image),
		cmocka_unit_test(passed_deadline_kills_mksquashfs_and_leaves_nothing),
		cmocka_unit_test(tree_deeper_than_the_bound_is_refused),
		cmocka_unit_test(owners_tree_is_read_as_its_owner),
	};

	return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
