/* idmap.c - one-id user namespaces (a helper child holds one open while the daemon writes its
 * maps and takes an fd on it) and idmapped detached trees (open_tree + mount_setattr).
 *
 * The daemon is multi-threaded: the helper child is made with clone3 and runs raw system calls
 * only (no lock another thread may hold, no sanitizer interceptor), like the jail's. */
#include "vmm/idmap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"

/* One map file: "inside outside 1\n" in a single write (the kernel takes one write only). */
static int write_map(pid_t pid, const char *file, unsigned inside, unsigned outside,
		     struct ember_error **err)
{
	char path[64], line[64];
	_cleanup_close_ int fd = -1;
	int len;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	len = snprintf(line, sizeof(line), "%u %u 1\n", inside, outside);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, line, (size_t)len) != len)
		return ember_error_sys(err, "write `%.*s` to `%s`", len - 1, line, path);
	return 0;
}

int idmap_write(pid_t pid, const struct idmap *map, struct ember_error **err)
{
	if (write_map(pid, "uid_map", map->uid_inside, map->uid_outside, err) < 0 ||
	    write_map(pid, "gid_map", map->gid_inside, map->gid_outside, err) < 0)
		return -1;
	return 0;
}

/* The helper child: holds its new user namespace until the daemon closes the pipe (or kills
 * it). It drops its copy of the write end first, so a daemon that dies lets it go too. */
__attribute__((noreturn)) static void holder_main(int wait_fd, int write_fd)
{
	char c;

	syscall(SYS_close, write_fd);
	syscall(SYS_read, wait_fd, &c, 1);
	syscall(SYS_exit_group, 0);
	__builtin_unreachable();
}

static void reap(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

int idmap_userns_fd(const struct idmap *map, struct ember_error **err)
{
	struct clone_args args = { .flags = CLONE_NEWUSER, .exit_signal = SIGCHLD };
	_cleanup_close_ int wait_fd = -1, write_fd = -1;
	int pipefd[2], ns_fd = -1;
	char path[64];
	long pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return ember_error_sys(err, "pipe");
	wait_fd = pipefd[0];
	write_fd = pipefd[1];
	pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0)
		return ember_error_sys(err, "clone3 a user namespace");
	if (pid == 0)
		holder_main(wait_fd, write_fd);
	if (idmap_write((pid_t)pid, map, err) == 0) {
		snprintf(path, sizeof(path), "/proc/%ld/ns/user", pid);
		ns_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (ns_fd < 0)
			ember_error_sys(err, "open `%s`", path);
	}
	/* The fd keeps the namespace; the child is done either way. Not yet reaped, its pid
	 * cannot have been reused. */
	kill((pid_t)pid, SIGKILL);
	reap((pid_t)pid);
	return ns_fd;
}

int idmap_tree(int dir_fd, int userns_fd, bool rw, struct ember_error **err)
{
	struct mount_attr attr = {
		.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
			    MOUNT_ATTR_NOEXEC | (rw ? 0 : MOUNT_ATTR_RDONLY),
		.userns_fd = (uint64_t)userns_fd,
		/* Nothing the jail mounts or unmounts under it reaches the host, nor back. */
		.propagation = MS_PRIVATE,
	};
	/* Without AT_RECURSIVE: only the directory's own mount, none mounted below it. */
	_cleanup_close_ int tree = (int)syscall(SYS_open_tree, dir_fd, "",
						OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
						AT_EMPTY_PATH);

	if (tree < 0)
		return ember_error_sys(err, "open_tree a copy of the directory's mount");
	if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0) {
		if (errno == EINVAL)
			return ember_error_set(err, EMBER_E_INVALID, errno,
					       "its file system cannot be idmapped (ext4, xfs, "
					       "btrfs and tmpfs can; network file systems cannot)");
		return ember_error_sys(err, "idmap the directory's mount");
	}
	return steal_fd(&tree);
}
