/* fc_jail.c - the Firecracker jailer's layout, links and cleanup (docs/firecracker.md). */
#include "vmm/fc_jail.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fdio.h"
#include "vmm/guestmem.h"

#define JAIL_DEFAULT_BASE "/srv/jailer" /* the jailer's own default */
/* A pid file holds a decimal pid: a few bytes. */
#define JAIL_PID_FILE_MAX 16

/* The jailer finds cgroup v2 the same way: the first cgroup2 entry in the mount table. */
static void find_cgroup2(char *out, size_t size)
{
	_cleanup_free_ char *text = NULL;
	char *line, *save = NULL;

	out[0] = '\0';
	if (file_read_all("/proc/self/mounts", 1 << 20, &text, NULL, NULL) < 0)
		return;
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char dev[256], dir[PATH_MAX], type[64];

		if (sscanf(line, "%255s %4095s %63s", dev, dir, type) == 3 &&
		    strcmp(type, "cgroup2") == 0 && strchr(dir, '\\') == NULL) {
			snprintf(out, size, "%s", dir);
			return;
		}
	}
}

int fc_jail_settings_load(struct fc_jail_settings *s, struct ember_error **err)
{
	const char *base = getenv("EMBERD_JAILER_CHROOT_BASE");
	const char *shared[] = { "EMBERD_JAILER_UID", "EMBERD_JAILER_GID" };
	size_t i;

	/* One uid for every jail would let one compromised VMM reach the others' sockets and
	 * files; each VM now gets its own from --vmm-uid-base's range. */
	for (i = 0; i < ARRAY_SIZE(shared); i++) {
		if (getenv(shared[i]) != NULL)
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "%s is no longer used: each Firecracker runs as its "
					       "own uid from the range at --vmm-uid-base; unset it",
					       shared[i]);
	}
	if (base == NULL || base[0] == '\0')
		base = JAIL_DEFAULT_BASE;
	if (base[0] != '/')
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "EMBERD_JAILER_CHROOT_BASE must be an absolute path (got `%s`)",
				       base);
	if (snprintf(s->chroot_base, sizeof(s->chroot_base), "%s", base) >=
	    (int)sizeof(s->chroot_base))
		return ember_error_set(err, EMBER_E_INVALID, ENAMETOOLONG,
				       "EMBERD_JAILER_CHROOT_BASE is too long");
	find_cgroup2(s->cgroup2_root, sizeof(s->cgroup2_root));
	return 0;
}

int fc_instance_id(const char *sandbox_id, char *out, size_t size, struct ember_error **err)
{
	size_t i, len = strlen(sandbox_id);

	if (len == 0 || len > FC_ID_MAX || len >= size)
		return ember_error_set(err, EMBER_E_INTERNAL, 0,
				       "sandbox id `%s` does not fit a Firecracker id", sandbox_id);
	for (i = 0; i < len; i++) {
		char c = sandbox_id[i] == '_' ? '-' : sandbox_id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return ember_error_set(err, EMBER_E_INTERNAL, 0,
					       "sandbox id `%s` does not fit a Firecracker id",
					       sandbox_id);
		out[i] = c;
	}
	out[len] = '\0';
	return 0;
}

/* mkdir -p, for the directories above the jail root (shared by every VM: never removed). */
static int make_dirs(const char *path, mode_t mode, struct ember_error **err)
{
	char buf[PATH_MAX];
	char *p;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "path too long");
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return ember_error_sys(err, "create `%s`", buf);
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return ember_error_sys(err, "create `%s`", buf);
	return 0;
}

int fc_jail_layout(struct fc_jail *j, const struct fc_jail_settings *s, const char *exec_file,
		   const char *sandbox_id, struct ember_error **err)
{
	const char *exec_name = strrchr(exec_file, '/');

	memset(j, 0, sizeof(*j));
	exec_name = exec_name != NULL ? exec_name + 1 : exec_file;
	if (fc_instance_id(sandbox_id, j->id, sizeof(j->id), err) < 0)
		return -1;
	if (snprintf(j->exec_name, sizeof(j->exec_name), "%s", exec_name) >=
	    (int)sizeof(j->exec_name))
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "exec file name too long");
	if (snprintf(j->instance_dir, sizeof(j->instance_dir), "%s/%s/%s", s->chroot_base,
		     exec_name, j->id) >= (int)sizeof(j->instance_dir) ||
	    snprintf(j->root, sizeof(j->root), "%s/root", j->instance_dir) >=
		    (int)sizeof(j->root) ||
	    (s->cgroup2_root[0] != '\0' &&
	     snprintf(j->cgroup_dir, sizeof(j->cgroup_dir), "%s/%s/%s", s->cgroup2_root,
		      exec_name, j->id) >= (int)sizeof(j->cgroup_dir))) {
		j->instance_dir[0] = '\0';
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "jail path too long");
	}
	return 0;
}

int fc_jail_prepare(struct fc_jail *j, const struct fc_jail_settings *s, const char *exec_file,
		    const char *sandbox_id, struct ember_error **err)
{
	if (fc_jail_layout(j, s, exec_file, sandbox_id, err) < 0)
		return -1;
	/* A jail an earlier VM of this id left (a crash) may hold anything its uid put there. */
	if (dir_remove_tree(j->instance_dir, err) < 0 || make_dirs(j->root, 0700, err) < 0)
		return ember_error_wrap(err, "jail for %s", sandbox_id);
	return 0;
}

int fc_jail_host_path(const struct fc_jail *j, const char *name, char *out, size_t size,
		      struct ember_error **err)
{
	int n = snprintf(out, size, "%s/%s", j->root, name);

	if (n < 0 || (size_t)n >= size)
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG,
				       "`%s/%s` exceeds %zu bytes: use a shorter "
				       "EMBERD_JAILER_CHROOT_BASE", j->root, name, size - 1);
	return 0;
}

/* The jail's root, opened without following a symlink. Its parent belongs to root, so the
 * name cannot be swapped; what is inside belongs to the jailed uid and is reached only through
 * this fd, one name at a time, never followed. */
static int open_root(const struct fc_jail *j, struct ember_error **err)
{
	int fd = open(j->root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return ember_error_sys(err, "open the jail `%s`", j->root);
	return fd;
}

int fc_jail_link(const struct fc_jail *j, const char *host_path, const char *name,
		 char *jail_path, size_t size, struct ember_error **err)
{
	_cleanup_close_ int root = -1;

	if (snprintf(jail_path, size, "/%s", name) >= (int)size)
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "jail path too long");
	root = open_root(j, err);
	if (root < 0)
		return -1;
	/* Whatever is at name (left over, or planted) is replaced, never written through. */
	if (unlinkat(root, name, 0) < 0 && errno != ENOENT)
		return ember_error_sys(err, "remove `%s/%s`", j->root, name);
	/* A symlinked image (an images directory of links) is linked as its target: a symlink
	 * would point outside the jail. */
	if (linkat(AT_FDCWD, host_path, root, name, AT_SYMLINK_FOLLOW) < 0) {
		if (errno == EXDEV)
			return ember_error_set(err, EMBER_E_INTERNAL, EXDEV,
					       "hard-link `%s` into the jail `%s`: different "
					       "filesystems; put the images directory and "
					       "EMBERD_JAILER_CHROOT_BASE on one filesystem",
					       host_path, j->root);
		return ember_error_sys(err, "hard-link `%s` to `%s/%s`", host_path, j->root, name);
	}
	return 0;
}

int fc_jail_copy_in(const struct fc_jail *j, int src_fd, uint64_t size, const char *name,
		    char *jail_path, size_t jail_path_size, struct ember_error **err)
{
	_cleanup_close_ int root = -1;
	_cleanup_close_ int fd = -1;

	if (snprintf(jail_path, jail_path_size, "/%s", name) >= (int)jail_path_size)
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "jail path too long");
	root = open_root(j, err);
	if (root < 0)
		return -1;
	if (unlinkat(root, name, 0) < 0 && errno != ENOENT)
		return ember_error_sys(err, "remove `%s/%s`", j->root, name);
	/* O_EXCL: a name the jailed uid re-created meanwhile fails instead of being written. */
	fd = openat(root, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (fd < 0)
		return ember_error_sys(err, "create `%s/%s`", j->root, name);
	if (ftruncate(fd, (off_t)size) < 0)
		return ember_error_sys(err, "size `%s/%s`", j->root, name);
	if (guestmem_copy(src_fd, fd, size, err) < 0)
		return ember_error_wrap(err, "copy into `%s/%s`", j->root, name);
	return 0;
}

int fc_jail_place(const struct fc_jail *j, const char *host_path, const char *name,
		  char *jail_path, size_t size, struct ember_error **err)
{
	_cleanup_close_ int fd = -1;
	struct stat file, jail;

	if (stat(j->root, &jail) < 0)
		return ember_error_sys(err, "stat the jail `%s`", j->root);
	fd = open(host_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ember_error_sys(err, "open `%s`", host_path);
	if (fstat(fd, &file) < 0)
		return ember_error_sys(err, "stat `%s`", host_path);
	if (file.st_dev == jail.st_dev)
		return fc_jail_link(j, host_path, name, jail_path, size, err);
	return fc_jail_copy_in(j, fd, (uint64_t)file.st_size, name, jail_path, size, err);
}

/* host_path, just moved out of a jail into a directory only root writes: made the daemon's
 * and read-only through an fd on what is really there, if it is what the VM should have
 * written. A symlink fails O_NOFOLLOW, a FIFO does not block (O_NONBLOCK), a hard link to a
 * host file shows more than one link or another owner. */
static int own_taken_file(const struct fc_jail *j, const char *host_path,
			  struct ember_error **err)
{
	_cleanup_close_ int fd = open(host_path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return ember_error_sys(err, "open `%s` (moved out of the jail)", host_path);
	if (fstat(fd, &st) < 0)
		return ember_error_sys(err, "stat `%s`", host_path);
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != j->uid)
		return ember_error_set(err, EMBER_E_INTERNAL, EPERM,
				       "`%s` from the jail is not a regular file with one link "
				       "owned by uid %u: refused", host_path, (unsigned)j->uid);
	if (fchown(fd, geteuid(), getegid()) < 0 || fchmod(fd, 0644) < 0)
		return ember_error_sys(err, "take ownership of `%s`", host_path);
	return 0;
}

int fc_jail_take(const struct fc_jail *j, const char *name, const char *host_path,
		 struct ember_error **err)
{
	_cleanup_close_ int root = open_root(j, err);

	if (root < 0)
		return -1;
	/* rename moves the name, never what a symlink points to; once out, the jailed uid can
	 * no longer swap it, and own_taken_file() checks what arrived. */
	if (renameat(root, name, AT_FDCWD, host_path) < 0) {
		if (errno == EXDEV)
			return ember_error_set(err, EMBER_E_INTERNAL, EXDEV,
					       "move `%s/%s` out of the jail to `%s`: different "
					       "filesystems; put the run directory and "
					       "EMBERD_JAILER_CHROOT_BASE on one filesystem",
					       j->root, name, host_path);
		return ember_error_sys(err, "move `%s/%s` out of the jail to `%s`", j->root, name,
				       host_path);
	}
	if (own_taken_file(j, host_path, err) < 0) {
		unlink(host_path);
		return -1;
	}
	return 0;
}

int fc_jail_read_pid(const struct fc_jail *j, pid_t *pid, struct ember_error **err)
{
	_cleanup_close_ int root = open_root(j, err);
	_cleanup_close_ int fd = -1;
	char name[NAME_MAX + 1], text[JAIL_PID_FILE_MAX + 1];
	unsigned long long v = 0;
	struct stat st;
	ssize_t n;
	ssize_t i;

	if (root < 0)
		return -1;
	if (snprintf(name, sizeof(name), "%s.pid", j->exec_name) >= (int)sizeof(name))
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "pid file name too long");
	fd = openat(root, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return ember_error_sys(err, "open the jailer's pid file `%s/%s`", j->root, name);
	/* The jailer writes it as root before Firecracker runs; the jailed uid cannot make a file
	 * root owns, so a planted one shows its uid. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 || st.st_nlink != 1)
		return ember_error_set(err, EMBER_E_INTERNAL, EPERM,
				       "`%s/%s` is not a regular file the jailer wrote", j->root,
				       name);
	n = read(fd, text, JAIL_PID_FILE_MAX + 1);
	if (n < 0)
		return ember_error_sys(err, "read `%s/%s`", j->root, name);
	/* Decimal digits only (the jailer writes no newline), no leading zero, a real pid. */
	for (i = 0; i < n && n <= JAIL_PID_FILE_MAX && text[i] >= '0' && text[i] <= '9'; i++)
		v = v * 10 + (unsigned long long)(text[i] - '0');
	if (n == 0 || n > JAIL_PID_FILE_MAX || i != n || text[0] == '0' || v > INT_MAX)
		return ember_error_set(err, EMBER_E_INTERNAL, EINVAL,
				       "`%s/%s` does not hold a pid", j->root, name);
	*pid = (pid_t)v;
	return 0;
}

void fc_jail_cleanup(const struct fc_jail *j)
{
	if (j->instance_dir[0] != '\0')
		dir_remove_tree(j->instance_dir, NULL);
	/* The kernel refuses while a process is still in the cgroup: the VMM must be gone. */
	if (j->cgroup_dir[0] != '\0')
		rmdir(j->cgroup_dir);
}
