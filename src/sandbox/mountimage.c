/* mountimage.c - the squashfs image of a read-only mount for the Firecracker driver
 * (interface: mountimage.h; the cost in docs/firecracker.md "Mounts"). */
#include "sandbox/mountimage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/hostcmd.h"
#include "util/cleanup.h"
#include "util/timeutil.h"

#define MIB (UINT64_C(1) << 20)

struct walk {
	dev_t dev;            /* the directory's file system: nothing mounted below is walked */
	uint64_t bytes;       /* regular files' sizes so far */
	uint64_t max_bytes;
	unsigned entries;
	int64_t deadline_ms;  /* looked at every 1024 entries: a cold disk makes fstatat slow */
	char path[PATH_MAX];  /* of the directory being read, relative ("./a/b"), for messages;
			       * one buffer for every level, not PATH_MAX of stack per level */
	size_t len;
};

static inline void cleanup_closedirp(DIR **dir)
{
	if (*dir != NULL)
		closedir(*dir);
}
#define _cleanup_closedir_ __attribute__((cleanup(cleanup_closedirp)))

static int too_large(const struct walk *w, struct ember_error **err)
{
	if (w->max_bytes % MIB == 0)
		return ember_error_set(err, EMBER_E_INVALID, 0, "the directory holds more than "
				       "%" PRIu64 " MiB of files (--max-mount-image-mib)",
				       w->max_bytes / MIB);
	return ember_error_set(err, EMBER_E_INVALID, 0, "the directory holds more than %" PRIu64
			       " bytes of files (--max-mount-image-mib)", w->max_bytes);
}

/* Sums the regular files under dir_fd (which it takes over; w->path names it), depth levels
 * below the mount. Only lstat-like looks (AT_SYMLINK_NOFOLLOW) and O_NOFOLLOW opens: a symlink
 * is an entry, never a way elsewhere, and a directory swapped for one meanwhile fails the open.
 * O(entries) fstatat calls, with at most MOUNT_IMAGE_DEPTH_MAX directories open at once. */
static int walk_dir(int dir_fd, unsigned depth, struct walk *w, struct ember_error **err)
{
	_cleanup_closedir_ DIR *dir = fdopendir(dir_fd);
	const char *rel = w->path;
	struct dirent *entry;

	if (dir == NULL) {
		close(dir_fd);
		return ember_error_sys(err, "read the directory `%s`", rel);
	}
	for (;;) {
		size_t len = w->len;
		struct stat st;
		int fd, n;

		errno = 0;
		entry = readdir(dir);
		if (entry == NULL) {
			if (errno != 0)
				return ember_error_sys(err, "read the directory `%s`", rel);
			return 0;
		}
		if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
			continue;
		if (++w->entries > MOUNT_IMAGE_ENTRIES_MAX)
			return ember_error_set(err, EMBER_E_INVALID, 0, "the directory holds more "
					       "than %u entries", MOUNT_IMAGE_ENTRIES_MAX);
		if (w->entries % 1024 == 0 && w->deadline_ms >= 0 && time_mono_ms() > w->deadline_ms)
			return ember_error_set(err, EMBER_E_INTERNAL, ETIMEDOUT, "sizing the "
					       "directory did not finish in time (%u entries)",
					       w->entries);
		if (fstatat(dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return ember_error_sys(err, "stat `%s/%s`", rel, entry->d_name);
		if (S_ISREG(st.st_mode)) {
			w->bytes += (uint64_t)st.st_size;
			if (w->bytes > w->max_bytes)
				return too_large(w, err);
			continue;
		}
		if (!S_ISDIR(st.st_mode) || st.st_dev != w->dev)
			continue;
		if (depth + 1 > MOUNT_IMAGE_DEPTH_MAX)
			return ember_error_set(err, EMBER_E_INVALID, 0, "the directory is more than "
					       "%d levels deep", MOUNT_IMAGE_DEPTH_MAX);
		n = snprintf(w->path + len, sizeof(w->path) - len, "/%s", entry->d_name);
		if (n < 0 || (size_t)n >= sizeof(w->path) - len)
			return ember_error_set(err, EMBER_E_INVALID, ENAMETOOLONG, "a path in the "
					       "directory is longer than %d bytes", PATH_MAX - 1);
		fd = openat(dirfd(dir), entry->d_name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return ember_error_sys(err, "open the directory `%s`", w->path);
		w->len = len + (size_t)n;
		if (walk_dir(fd, depth + 1, w, err) < 0)
			return -1;
		w->len = len;
		w->path[len] = '\0';
	}
}

/* The whole tree, within the bounds. */
static int measure_tree(int dir_fd, uint64_t max_bytes, int64_t deadline_ms,
			struct ember_error **err)
{
	_cleanup_free_ struct walk *w = calloc(1, sizeof(*w));
	struct stat st;
	int fd;

	if (w == NULL)
		return ember_error_oom(err);
	*w = (struct walk){ .max_bytes = max_bytes, .deadline_ms = deadline_ms, .path = ".",
			    .len = 1 };
	fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ember_error_sys(err, "open the directory");
	if (fstat(fd, &st) < 0) {
		close(fd);
		return ember_error_sys(err, "stat the directory");
	}
	w->dev = st.st_dev;
	return walk_dir(fd, 0, w, err);
}

/* Who mksquashfs runs as: the directory's owner (when the daemon is root and the owner is
 * not). mksquashfs looks each path up again while it reads, so as root a directory swapped
 * for a symlink mid-build (by whoever may write in the tree) would let it read any host file
 * into the image; as the owner it reads only what the owner could anyway. A root-owned
 * directory is read as root: its writers are trusted with root's files. */
struct builder {
	bool drop;
	uid_t uid;
	gid_t gid;
};

/* mksquashfs writes the image through descriptor 3 (/proc/self/fd/3: a path it can open as
 * the owner, whatever the run directory's permissions), capped by RLIMIT_FSIZE through
 * util-linux's prlimit, set before mksquashfs runs (a prlimit(2) after the spawn would race
 * its first writes), as the builder (setpriv, no new privileges). zstd is what the guest
 * kernels decompress (rootfs/kernel/minimal.config, the packs); level 3 instead of
 * mksquashfs's 15 builds 15-25 times faster for ~15 % more bytes, for an image that lives
 * only as long as its sandbox. Every file is the guest's sandbox user's (-force-uid/gid): the
 * image holds only what the owner could read, which is what the sandbox may see as the
 * owner (docs/api.md "Mounts"); a file the owner cannot read is stored empty (mksquashfs
 * warns and goes on), as over 9p it could not be read either. */
static int run_mksquashfs(int dir_fd, int image_fd, const struct builder *b, uint64_t cap,
			  int64_t deadline_ms, struct ember_error **err)
{
	char fsize[48], reuid[32], regid[32];
	char *argv[32];
	size_t n = 0;

	snprintf(fsize, sizeof(fsize), "--fsize=%" PRIu64, cap);
	snprintf(reuid, sizeof(reuid), "--reuid=%u", (unsigned)b->uid);
	snprintf(regid, sizeof(regid), "--regid=%u", (unsigned)b->gid);
	argv[n++] = "prlimit";
	argv[n++] = fsize;
	if (b->drop) {
		argv[n++] = "setpriv";
		argv[n++] = reuid;
		argv[n++] = regid;
		argv[n++] = "--clear-groups";
		argv[n++] = "--no-new-privs";
	}
	for (const char *const *a = (const char *const[]){ "mksquashfs", ".", "/proc/self/fd/3",
		     "-noappend", "-quiet", "-no-progress", "-no-xattrs", "-one-file-system",
		     "-force-uid",
		     MOUNT_IMAGE_GUEST_ID, "-force-gid", MOUNT_IMAGE_GUEST_ID, "-comp", "zstd",
		     "-Xcompression-level", "3", NULL }; *a != NULL; a++)
		argv[n++] = (char *)*a;
	argv[n] = NULL;
	return hostcmd_run_in(argv, &(struct hostcmd_options){ .cwd_fd = dir_fd, .fd3 = image_fd,
		.deadline_ms = deadline_ms, .name = "mksquashfs" }, err);
}

/* A failed build's end: nothing stays at image_path. Returns -1. */
static int remove_image(const char *image_path)
{
	int saved = errno;

	unlink(image_path);
	errno = saved;
	return -1;
}

/* The image file, empty, the builder's to write (0600) until the build is done. */
static int create_image(const char *image_path, const struct builder *b, struct ember_error **err)
{
	int fd;

	if (unlink(image_path) < 0 && errno != ENOENT)
		return ember_error_sys(err, "remove `%s`", image_path);
	fd = open(image_path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return ember_error_sys(err, "create `%s`", image_path);
	if (b->drop && fchown(fd, b->uid, b->gid) < 0) {
		ember_error_sys(err, "chown `%s`", image_path);
		close(fd);
		return remove_image(image_path);
	}
	return fd;
}

/* Copies the builder's scratch image into image_path, a new file the daemon owns (0444): the
 * image a VMM gets is never an inode the builder had open (its user could keep a descriptor
 * to it through /proc/<pid>/fd and write on). */
static int take_image(int scratch_fd, const char *image_path, struct ember_error **err)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	off_t in = 0;

	if (fstat(scratch_fd, &st) < 0)
		return ember_error_sys(err, "stat the built image");
	fd = open(image_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (fd < 0)
		return ember_error_sys(err, "create `%s`", image_path);
	while (in < st.st_size) {
		ssize_t n = copy_file_range(scratch_fd, &in, fd, NULL, (size_t)(st.st_size - in), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return ember_error_sys(err, "copy the built image to `%s`", image_path);
	}
	return 0;
}

int mount_image_build(int dir_fd, const char *image_path, uid_t uid, gid_t gid,
		      uint64_t max_bytes, int64_t deadline_ms, struct ember_error **err)
{
	_cleanup_close_ int scratch_fd = -1;
	struct builder b = { .drop = false };
	char scratch[PATH_MAX];
	int ret;

	/* Other names of this path would resolve against the mounted directory. */
	if (image_path[0] != '/')
		return ember_error_set(err, EMBER_E_INTERNAL, EINVAL, "mount image path `%s` is "
				       "not absolute", image_path);
	if (snprintf(scratch, sizeof(scratch), "%s.build", image_path) >= (int)sizeof(scratch))
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "image path too long");
	if (geteuid() == 0) {
		if (uid == 0 || gid == 0)
			return ember_error_set(err, EMBER_E_INVALID, 0, "an image is never built as "
					       "root: give a uid and gid other than 0");
		b = (struct builder){ .drop = true, .uid = uid, .gid = gid };
	}
	if (measure_tree(dir_fd, max_bytes, deadline_ms, err) < 0)
		return remove_image(image_path);
	scratch_fd = create_image(scratch, &b, err);
	if (scratch_fd < 0)
		return remove_image(image_path);
	ret = run_mksquashfs(dir_fd, scratch_fd, &b, max_bytes + max_bytes / 16 +
			     MOUNT_IMAGE_SLACK_BYTES, deadline_ms, err);
	unlink(scratch);
	if (ret < 0)
		return remove_image(image_path);
	if (unlink(image_path) < 0 && errno != ENOENT)
		return ember_error_sys(err, "remove `%s`", image_path);
	if (take_image(scratch_fd, image_path, err) < 0)
		return remove_image(image_path);
	return 0;
}
