/* fdio.c - deadline-bounded descriptor I/O. */
#include "util/fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/sync.h"
#include "util/timeutil.h"

int fd_set_nonblock(int fd, int on)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0)
		return -1;
	flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, flags);
}

int fd_set_cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);

	if (flags < 0)
		return -1;
	return fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

int fd_wait(int fd, short events, int64_t deadline_ms, struct ember_error **err)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int ret;

	for (;;) {
		ret = poll(&pfd, 1, time_ms_until(deadline_ms));
		if (ret > 0)
			return 1; /* POLLERR/POLLHUP count as ready: the next read/write says why */
		if (ret == 0)
			return 0;
		if (errno != EINTR)
			return ember_error_sys(err, "poll");
	}
}

int fd_writev_all(int fd, struct iovec *iov, int iovcnt, int64_t deadline_ms,
		  struct ember_error **err)
{
	while (iovcnt > 0) {
		ssize_t n = writev(fd, iov, iovcnt);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				int ready = fd_wait(fd, POLLOUT, deadline_ms, err);

				if (ready < 0)
					return -1;
				if (ready == 0)
					return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
							       "peer stopped reading (write timed out)");
				continue;
			}
			if (errno == EPIPE || errno == ECONNRESET)
				return ember_error_set(err, EMBER_E_GUEST, errno,
						       "peer closed the connection");
			return ember_error_sys(err, "write");
		}
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int fd_write_all(int fd, const void *buf, size_t len, int64_t deadline_ms,
		 struct ember_error **err)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return fd_writev_all(fd, &iov, 1, deadline_ms, err);
}

int unix_connect(const char *path, struct ember_error **err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;

	if (strlen(path) >= sizeof(addr.sun_path))
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG,
				       "socket path `%s` is longer than %zu bytes", path,
				       sizeof(addr.sun_path) - 1);
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ember_error_sys(err, "socket");
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return ember_error_sys(err, "connect to `%s`", path);
	if (fd_set_nonblock(fd, 1) < 0)
		return ember_error_sys(err, "set `%s` non-blocking", path);
	return steal_fd(&fd);
}

int unix_connect_until(const char *path, int64_t deadline_ms, bool (*alive)(void *ctx), void *ctx,
		       struct ember_error **err)
{
	unsigned pause_ms = 1;

	for (;;) {
		struct ember_error *connect_err = NULL;
		int fd = unix_connect(path, &connect_err);

		if (fd >= 0)
			return fd;
		if (connect_err->errno_value != ENOENT && connect_err->errno_value != ECONNREFUSED)
			return ember_error_propagate(err, connect_err);
		ember_error_free(&connect_err);
		if (alive != NULL && !alive(ctx))
			return ember_error_set(err, EMBER_E_GUEST, 0,
					       "the process that serves `%s` exited", path);
		if (time_ms_until(deadline_ms) == 0)
			return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
					       "`%s` accepted no connection before the deadline",
					       path);
		/* A socket file that does not exist yet has no event to wait on: back off from
		 * 1 ms (a restore connects within a few ms) to 10 ms, never past the deadline. */
		sleep_ms(deadline_ms < 0 ? pause_ms
					 : (unsigned)(time_ms_until(deadline_ms) < (int)pause_ms
							      ? time_ms_until(deadline_ms)
							      : (int)pause_ms));
		if (pause_ms < 10)
			pause_ms *= 2;
	}
}

static int check_trusted_component(const char *path, const char *what, bool is_target,
				   struct ember_error **err)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return ember_error_set(err, EMBER_E_INVALID, errno, "%s: `%s`: %s", what, path,
				       strerror(errno));
	if (S_ISLNK(st.st_mode))
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "%s `%s` is a symlink: give the real directory", what, path);
	if (!S_ISDIR(st.st_mode))
		return ember_error_set(err, EMBER_E_INVALID, ENOTDIR, "%s: `%s` is not a directory",
				       what, path);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "%s: `%s` is owned by uid %u, not root: another user could "
				       "change what the daemon runs", what, path, (unsigned)st.st_uid);
	if ((st.st_mode & 022) != 0 && (is_target || (st.st_mode & S_ISVTX) == 0))
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "%s: `%s` is writable by group or others (mode %04o): "
				       "chmod go-w it", what, path, (unsigned)(st.st_mode & 07777));
	return 0;
}

int dir_check_trusted(const char *path, const char *what, struct ember_error **err)
{
	char resolved[PATH_MAX];
	char *slash;

	if (check_trusted_component(path, what, true, err) < 0)
		return -1;
	if (realpath(path, resolved) == NULL)
		return ember_error_set(err, EMBER_E_INVALID, errno, "%s: resolve `%s`: %s", what,
				       path, strerror(errno));
	/* Every directory above it, from the nearest up to / (resolved, so no symlink is left). */
	while ((slash = strrchr(resolved, '/')) != NULL) {
		if (slash == resolved) {
			resolved[1] = '\0';
			return check_trusted_component(resolved, what, false, err);
		}
		*slash = '\0';
		if (check_trusted_component(resolved, what, false, err) < 0)
			return -1;
	}
	return 0;
}

int file_read_all(const char *path, size_t max, char **out, size_t *len, struct ember_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	size_t used = 0;

	if (fd < 0)
		return ember_error_sys(err, "open `%s`", path);
	buf = malloc(max + 1);
	if (buf == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory reading `%s`",
				       path);
	for (;;) {
		ssize_t n = read(fd, buf + used, max + 1 - used);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return ember_error_sys(err, "read `%s`", path);
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > max)
			return ember_error_set(err, EMBER_E_TOO_LARGE, EFBIG,
					       "`%s` is larger than %zu bytes", path, max);
	}
	buf[used] = '\0';
	*out = steal_pointer(&buf);
	if (len != NULL)
		*len = used;
	return 0;
}

/* A new file next to path with a random name: O_EXCL|O_NOFOLLOW, so nothing planted at a
 * predictable name (a symlink, a file of another owner) is ever opened or truncated. */
static int create_temp_beside(const char *path, mode_t mode, char **tmp_out,
			      struct ember_error **err)
{
	unsigned attempt;

	for (attempt = 0; attempt < 8; attempt++) {
		uint64_t r;
		char *tmp;
		int fd;

		if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
			return ember_error_sys(err, "getrandom");
		if (asprintf(&tmp, "%s.tmp.%016llx", path, (unsigned long long)r) < 0)
			return ember_error_oom(err);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
		if (fd >= 0) {
			*tmp_out = tmp;
			return fd;
		}
		if (errno != EEXIST) {
			ember_error_sys(err, "create `%s`", tmp);
			free(tmp);
			return -1;
		}
		free(tmp);
	}
	return ember_error_set(err, EMBER_E_INTERNAL, EEXIST, "no free temporary name beside `%s`",
			       path);
}

int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, bool durable,
		      struct ember_error **err)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_free_ char *dircopy = NULL;
	_cleanup_close_ int fd = -1;
	_cleanup_close_ int dirfd = -1;

	fd = create_temp_beside(path, mode, &tmp, err);
	if (fd < 0)
		return -1;
	if (fd_write_all(fd, data, len, -1, err) < 0 || (durable && fsync(fd) < 0)) {
		ember_error_sys(err, "write `%s`", tmp);
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) < 0) {
		ember_error_sys(err, "rename `%s` to `%s`", tmp, path);
		unlink(tmp);
		return -1;
	}
	dircopy = durable ? strdup(path) : NULL;
	if (dircopy != NULL) {
		dirfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dirfd >= 0)
			fsync(dirfd); /* make the rename itself durable */
	}
	return 0;
}

#define COPY_CHUNK (1 << 20)

int fd_copy(int in, int out, int64_t deadline_ms, struct ember_error **err)
{
	_cleanup_free_ char *buf = malloc(COPY_CHUNK);

	if (buf == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	for (;;) {
		ssize_t n = read(in, buf, COPY_CHUNK);

		if (n == 0)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ember_error_sys(err, "read");
		if (fd_write_all(out, buf, (size_t)n, deadline_ms, err) < 0)
			return -1;
	}
}

int file_link_or_copy(const char *src, const char *dst, struct ember_error **err)
{
	_cleanup_close_ int in = -1;
	_cleanup_close_ int out = -1;

	if (link(src, dst) == 0)
		return 0;
	if (errno != EXDEV && errno != EPERM)
		return ember_error_sys(err, "link `%s` to `%s`", dst, src);
	/* A plain copy: copy_file_range refuses some cross-filesystem pairs (EXDEV) depending on
	 * the kernel, and this runs once per template. */
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return ember_error_sys(err, "open `%s`", src);
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0)
		return ember_error_sys(err, "create `%s`", dst);
	if (fd_copy(in, out, -1, err) < 0) {
		unlink(dst);
		return ember_error_wrap(err, "copy `%s` to `%s`", src, dst);
	}
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int dir_remove_tree(const char *path, struct ember_error **err)
{
	/* FTW_PHYS: never follow a symlink out of the tree; FTW_MOUNT: never cross into a mount. */
	if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 && errno != ENOENT)
		return ember_error_sys(err, "remove `%s`", path);
	return 0;
}
