/* Unit tests for idmapped trees (src/vmm/idmap.c): what a process of the VMM's uid reads and
 * writes through a tree idmapped from the directory owner's uid, as the jail will show it.
 * Needs root, as the daemon does (make test runs as root). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"
#include "util/error.h"
#include "util/fdio.h"
#include "vmm/idmap.h"

#define OWNER_UID 1234   /* the host directory's owner (U) */
#define OWNER_GID 1235
#define VMM_UID 5678     /* the jailed VMM's own id (J, = its gid) */

/* Exit codes of the child, one per thing it checks (0: all as expected). */
enum {
	CHILD_SETUP = 10, CHILD_READ, CHILD_OWNER, CHILD_OTHER_OWNER, CHILD_CREATE, CHILD_RO,
	CHILD_ROOT_CREATE,
};

static void make_tree_dir(const char *dir)
{
	char path[512];

	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(chown(dir, OWNER_UID, OWNER_GID), 0);
	snprintf(path, sizeof(path), "%s/secret", dir);
	assert_int_equal(file_write_atomic(path, "owner-only", 10, 0600, false, NULL), 0);
	assert_int_equal(chown(path, OWNER_UID, OWNER_GID), 0);
	snprintf(path, sizeof(path), "%s/roots", dir);
	assert_int_equal(file_write_atomic(path, "root's", 6, 0644, false, NULL), 0);
}

static int tree_of(const char *dir, bool rw)
{
	struct idmap map = { OWNER_UID, VMM_UID, OWNER_GID, VMM_UID };
	struct ember_error *err = NULL;
	int dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC), userns, tree;

	assert_true(dir_fd >= 0);
	userns = idmap_userns_fd(&map, &err);
	if (userns < 0)
		fail_msg("idmap_userns_fd: %s", err->message);
	tree = idmap_tree(dir_fd, userns, rw, &err);
	if (tree < 0)
		fail_msg("idmap_tree: %s", err->message);
	close(userns);
	close(dir_fd);
	return tree;
}

/* In a private mount namespace: the tree on mnt, a first try as root (unmapped: refused),
 * then as the VMM's uid. */
static int child_checks(int tree, const char *mnt, bool rw)
{
	char path[512], buf[32];
	struct stat st;
	int fd;
	ssize_t n;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    syscall(SYS_move_mount, tree, "", AT_FDCWD, mnt, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return CHILD_SETUP;
	snprintf(path, sizeof(path), "%s/by-root", mnt);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd >= 0 || (errno != EOVERFLOW && errno != EROFS))
		return CHILD_ROOT_CREATE;
	if (setgroups(0, NULL) < 0 || setresgid(VMM_UID, VMM_UID, VMM_UID) < 0 ||
	    setresuid(VMM_UID, VMM_UID, VMM_UID) < 0)
		return CHILD_SETUP;
	snprintf(path, sizeof(path), "%s/secret", mnt);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return CHILD_READ;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n != 10 || memcmp(buf, "owner-only", 10) != 0)
		return CHILD_READ;
	if (stat(path, &st) < 0 || st.st_uid != VMM_UID || st.st_gid != VMM_UID)
		return CHILD_OWNER;
	snprintf(path, sizeof(path), "%s/roots", mnt);
	if (stat(path, &st) < 0 || st.st_uid != 65534 || st.st_gid != 65534)
		return CHILD_OTHER_OWNER;
	snprintf(path, sizeof(path), "%s/created", mnt);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (!rw)
		return fd < 0 && errno == EROFS ? 0 : CHILD_RO;
	if (fd < 0 || write(fd, "new", 3) != 3)
		return CHILD_CREATE;
	close(fd);
	return 0;
}

static int run_child(int tree, const char *mnt, bool rw)
{
	int status;
	pid_t pid;

	assert_int_equal(mkdir(mnt, 0755), 0);
	/* The VMM's uid must reach the mount point (mkdtemp made the scratch directory 0700). */
	assert_int_equal(chmod(tmpdir_path, 0755), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_checks(tree, mnt, rw));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void vmm_uid_reads_and_writes_as_the_directory_owner(void **state)
{
	char dir[256], mnt[256], created[300];
	struct stat st;
	int tree;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/rw-share", tmpdir_path);
	snprintf(mnt, sizeof(mnt), "%s/rw-mnt", tmpdir_path);
	make_tree_dir(dir);
	tree = tree_of(dir, true);
	assert_int_equal(run_child(tree, mnt, true), 0);
	close(tree);
	/* What the VMM's uid created is the owner's on the host. */
	snprintf(created, sizeof(created), "%s/created", dir);
	assert_int_equal(stat(created, &st), 0);
	assert_int_equal(st.st_uid, OWNER_UID);
	assert_int_equal(st.st_gid, OWNER_GID);
	snprintf(created, sizeof(created), "%s/by-root", dir);
	assert_int_equal(access(created, F_OK), -1);
}

static void read_only_tree_refuses_writes(void **state)
{
	char dir[256], mnt[256], created[300];
	int tree;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/ro-share", tmpdir_path);
	snprintf(mnt, sizeof(mnt), "%s/ro-mnt", tmpdir_path);
	make_tree_dir(dir);
	tree = tree_of(dir, false);
	assert_int_equal(run_child(tree, mnt, false), 0);
	close(tree);
	snprintf(created, sizeof(created), "%s/created", dir);
	assert_int_equal(access(created, F_OK), -1);
}

/* An unattached tree is gone with its fd: nothing stays mounted in the daemon's namespace. */
static void closed_tree_leaves_no_mount(void **state)
{
	char dir[256], mounts_before[64], *before = NULL, *after = NULL;
	size_t len_before, len_after;
	int tree;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/gone-share", tmpdir_path);
	snprintf(mounts_before, sizeof(mounts_before), "/proc/self/mountinfo");
	make_tree_dir(dir);
	assert_int_equal(file_read_all(mounts_before, 1 << 20, &before, &len_before, NULL), 0);
	tree = tree_of(dir, true);
	close(tree);
	assert_int_equal(file_read_all(mounts_before, 1 << 20, &after, &len_after, NULL), 0);
	assert_int_equal(len_before, len_after);
	free(before);
	free(after);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(vmm_uid_reads_and_writes_as_the_directory_owner),
		cmocka_unit_test(read_only_tree_refuses_writes),
		cmocka_unit_test(closed_tree_leaves_no_mount),
	};

	if (geteuid() != 0) {
		fprintf(stderr, "test_vmm_idmap: needs root (idmapped mounts), as the daemon\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
