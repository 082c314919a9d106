/* mounts.c - HELLO's mounts: mount points made without following symlinks, then mount(2). */
#include "guest/mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest/boot.h"
#include "guest/log.h"
#include "util/cleanup.h"

static bool same_mounts(const struct proto_hello_mounts *a, const struct proto_hello_mounts *b)
{
	size_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++) {
		const struct proto_hello_mount *x = &a->m[i], *y = &b->m[i];

		if (x->fs != y->fs || x->readonly != y->readonly ||
		    strcmp(x->source, y->source) != 0 || strcmp(x->path, y->path) != 0)
			return false;
	}
	return true;
}

int guest_mounts_open_point(int root_fd, const char *path, struct ember_error **err)
{
	_cleanup_close_ int dir = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char name[PROTO_MOUNT_PATH_MAX + 1];
	const char *p = path, *end;
	struct stat st;
	int next;

	if (dir < 0)
		return ember_error_sys(err, "open the root directory");
	while (*p == '/') {
		p++;
		for (end = p; *end != '\0' && *end != '/'; end++)
			;
		memcpy(name, p, (size_t)(end - p));
		name[end - p] = '\0';
		if (mkdirat(dir, name, 0755) < 0 && errno != EEXIST)
			return ember_error_sys(err, "mkdir `%.*s`", (int)(end - path), path);
		next = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode))
				return ember_error_set(err, EMBER_E_INVALID, ENOTDIR, "`%.*s` is %s",
						       (int)(end - path), path,
						       S_ISLNK(st.st_mode) ? "a symbolic link"
									   : "not a directory");
			return ember_error_sys(err, "open `%.*s`", (int)(end - path), path);
		}
		close(dir);
		dir = next;
		p = end;
	}
	return steal_fd(&dir);
}

/* What to add to a mount's errno text so the error says what to do about it. */
static const char *mount_hint(enum proto_mount_fs fs, int e)
{
	if (fs == PROTO_MOUNT_9P && (e == ENODEV || e == EPROTONOSUPPORT))
		return " (this guest kernel has no 9p: use the minimal kernel)";
	if (fs == PROTO_MOUNT_9P && e == ENOENT)
		return " (the VM has no 9p share with this tag)";
	if (fs == PROTO_MOUNT_SQUASHFS && e == EINVAL)
		return " (the disk holds no squashfs image, or one not compressed with zstd)";
	return "";
}

static int mount_one(const struct proto_hello_mount *m, struct ember_error **err)
{
	unsigned long flags = MS_NOSUID | MS_NODEV | (m->readonly ? MS_RDONLY : 0);
	char device[32], target[32];
	_cleanup_close_ int root = -1;
	_cleanup_close_ int fd = -1;
	const char *source = m->source, *type = "9p", *data = GUEST_MOUNT_9P_OPTIONS;
	int e;

	if (m->fs == PROTO_MOUNT_SQUASHFS) {
		snprintf(device, sizeof(device), "/dev/%s", m->source);
		if (guest_wait_for_disk(device, err) < 0)
			return ember_error_wrap(err, "mount %s on %s", m->source, m->path);
		source = device;
		type = "squashfs";
		data = NULL;
	}
	root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return ember_error_sys(err, "open /");
	fd = guest_mounts_open_point(root, m->path, err);
	if (fd < 0)
		return ember_error_wrap(err, "mount %s on %s", m->source, m->path);
	/* Through the fd: the directory just checked, whatever its path names by now. */
	snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
	if (mount(source, target, type, flags, data) < 0) {
		e = errno;
		return ember_error_set(err, EMBER_E_INTERNAL, e, "mount %s on %s: %s%s", m->source,
				       m->path, strerror(e), mount_hint(m->fs, e));
	}
	guest_log("mounted %s %s on %s (%s)", type, m->source, m->path,
		  m->readonly ? "read-only" : "read-write");
	return 0;
}

int guest_mounts_apply(struct proto_hello_mounts *applied, const struct proto_hello_mounts *want,
		       struct ember_error **err)
{
	size_t i;

	if (applied->n > 0) {
		if (same_mounts(applied, want))
			return 0;
		return ember_error_set(err, EMBER_E_INTERNAL, EBUSY, "this guest already has "
				       "other mounts (they are made once, at the first HELLO)");
	}
	if (proto_hello_mounts_check(want, err) < 0)
		return -1;
	for (i = 0; i < want->n; i++) {
		if (mount_one(&want->m[i], err) < 0)
			goto undo;
	}
	*applied = *want;
	return 0;
undo:
	/* Leave no half of the set behind: a retried HELLO mounts the whole set again. The
	 * directories made stay (empty, harmless). */
	while (i-- > 0) {
		if (umount2(want->m[i].path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
			guest_log("detach %s after a failed mount: %s", want->m[i].path,
				  strerror(errno));
	}
	return -1;
}
