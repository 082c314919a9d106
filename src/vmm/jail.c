/* jail.c - the jailed spawn: a plan of mount steps computed by the parent, run by a clone3()
 * child that makes only raw system calls.
 *
 * The daemon is multi-threaded, so the child may not take a lock another thread held at clone
 * time: no malloc, no stdio, and no libc wrapper a sanitizer intercepts. Everything it needs
 * (every path with the jail root prefixed, every flag) is in the plan, laid out by the parent;
 * the child walks it with syscall(2) and execs. A failed step writes one line to the log and
 * exits 125.
 *
 * A jail with a user namespace of its own (userns_id) needs the parent once more: the child
 * makes the namespace last and cannot map another id than its own in it, so it tells the
 * parent over a socket pair, the parent writes the maps, and answers. */
#include "vmm/jail.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fdio.h"
#include "util/timeutil.h"
#include "vmm/idmap.h"
#include "vmm/priority.h"

/* The system directories the VMM binary and its libraries live in: bound read-only when they
 * are directories, recreated when they are symlinks (merged /usr). */
static const char *const system_paths[] = { "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
					    "/libx32", "/etc/ld.so.cache" };

/* The device nodes a VMM opens, made afresh in the jail's /dev (not bound: a bind keeps the
 * host's owner and mode, and /dev/kvm must be usable by this uid alone). */
static const struct {
	const char *name;
	unsigned major, minor;
	mode_t mode;
	bool kvm;
} devices[] = {
	{ "/dev/null", 1, 3, 0666, false },    { "/dev/zero", 1, 5, 0666, false },
	{ "/dev/random", 1, 8, 0444, false },  { "/dev/urandom", 1, 9, 0444, false },
	{ "/dev/kvm", 10, 232, 0600, true },
};

enum step_op {
	STEP_MKDIR,     /* path */
	STEP_MKFILE,    /* path: an empty regular file, a bind target */
	STEP_SYMLINK,   /* path -> source */
	STEP_MOUNT,     /* mount(source, path, fstype, flags, data) */
	STEP_MKNOD,     /* path, mode, dev; owned by the jail's uid when chown */
	STEP_MOVE_MOUNT, /* the detached tree fd onto path */
};

/* Paths in a plan: the jail root (short, under the run dir) plus a host path. */
#define JAIL_PATH_MAX 1024

struct step {
	enum step_op op;
	char path[JAIL_PATH_MAX];
	char source[JAIL_PATH_MAX];
	const char *fstype;
	const char *data;
	unsigned long flags;
	mode_t mode;
	dev_t dev;
	bool chown;
	int fd;
};

/* ~3 per system path, a bind's or a tree's parents (a dozen at most in practice) and 3 more
 * per bind (2 per tree), 11 for /dev, /proc and /tmp. A plan is ~2 KiB a step, allocated for
 * the spawn only. */
#define JAIL_MAX_STEPS 256

struct plan {
	struct step steps[JAIL_MAX_STEPS];
	size_t n;
	char root[JAIL_PATH_MAX];
	uid_t uid;
	gid_t gid;
	uid_t userns_id;      /* 0: none */
	int sync_fd;          /* with userns_id: the child's end of the socket pair */
	int parent_sync_fd;   /* the parent's end, which the child closes */
	int log_fd;
	const int *keep_fds;
	size_t nkeep_fds;
	char *const *argv;
};

/* ---- the parent: building the plan ---- */

static struct step *plan_add(struct plan *p, enum step_op op, const char *inside,
			     struct ember_error **err)
{
	struct step *s;

	if (p->n == JAIL_MAX_STEPS) {
		ember_error_set(err, EMBER_E_INTERNAL, E2BIG, "jail plan too long");
		return NULL;
	}
	s = &p->steps[p->n];
	memset(s, 0, sizeof(*s));
	s->op = op;
	if (snprintf(s->path, sizeof(s->path), "%s%s", p->root, inside) >= (int)sizeof(s->path)) {
		ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "jail path `%s%s` too long",
				p->root, inside);
		return NULL;
	}
	p->n++;
	return s;
}

/* mkdir for every proper prefix of an absolute path ("/a/b/c": /a, /a/b). */
static int plan_parents(struct plan *p, const char *path, struct ember_error **err)
{
	char prefix[JAIL_PATH_MAX];
	const char *slash;

	for (slash = strchr(path + 1, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
		size_t len = (size_t)(slash - path);

		if (len >= sizeof(prefix))
			return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "path too long");
		memcpy(prefix, path, len);
		prefix[len] = '\0';
		if (plan_add(p, STEP_MKDIR, prefix, err) == NULL)
			return -1;
	}
	return 0;
}

/* A bind of host path (already resolved) onto the same path inside, then its remount with the
 * restricting flags (a bind ignores them on the first mount). */
static int plan_bind(struct plan *p, const char *path, bool is_dir, unsigned long flags,
		     struct ember_error **err)
{
	struct step *s;

	if (plan_parents(p, path, err) < 0 ||
	    plan_add(p, is_dir ? STEP_MKDIR : STEP_MKFILE, path, err) == NULL)
		return -1;
	s = plan_add(p, STEP_MOUNT, path, err);
	if (s == NULL)
		return -1;
	snprintf(s->source, sizeof(s->source), "%s", path);
	s->flags = MS_BIND | MS_REC;
	s = plan_add(p, STEP_MOUNT, path, err);
	if (s == NULL)
		return -1;
	s->flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | flags;
	return 0;
}

static int plan_system(struct plan *p, struct ember_error **err)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(system_paths); i++) {
		const char *path = system_paths[i];
		struct stat st;
		struct step *s;
		ssize_t n;

		if (lstat(path, &st) < 0)
			continue; /* absent on this host */
		if (!S_ISLNK(st.st_mode)) {
			if (plan_bind(p, path, S_ISDIR(st.st_mode), MS_RDONLY, err) < 0)
				return -1;
			continue;
		}
		if (plan_parents(p, path, err) < 0)
			return -1;
		s = plan_add(p, STEP_SYMLINK, path, err);
		if (s == NULL)
			return -1;
		n = readlink(path, s->source, sizeof(s->source) - 1);
		if (n < 0)
			return ember_error_sys(err, "readlink `%s`", path);
		s->source[n] = '\0';
	}
	return 0;
}

static int plan_binds(struct plan *p, const struct jail_config *jail, struct ember_error **err)
{
	size_t i;

	if (jail->nbinds > JAIL_MAX_BINDS)
		return ember_error_set(err, EMBER_E_INTERNAL, E2BIG, "%zu jail binds, at most %d",
				       jail->nbinds, JAIL_MAX_BINDS);
	for (i = 0; i < jail->nbinds; i++) {
		char resolved[PATH_MAX];
		struct stat st;

		if (realpath(jail->binds[i].path, resolved) == NULL)
			return ember_error_sys(err, "jail bind `%s`", jail->binds[i].path);
		if (stat(resolved, &st) < 0)
			return ember_error_sys(err, "jail bind `%s`", resolved);
		if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
			return ember_error_set(err, EMBER_E_INTERNAL, EINVAL,
					       "jail bind `%s` is neither a file nor a directory",
					       resolved);
		/* /dev/shm is an ordinary tmpfs (a run directory may live there); the rest of /dev
		 * and /proc are the jail's own. */
		if ((strncmp(resolved, "/dev/", 5) == 0 && strncmp(resolved, "/dev/shm/", 9) != 0) ||
		    strncmp(resolved, "/proc/", 6) == 0 || strcmp(resolved, "/") == 0)
			return ember_error_set(err, EMBER_E_INTERNAL, EINVAL,
					       "jail bind `%s` is a system path", resolved);
		if (plan_bind(p, resolved, S_ISDIR(st.st_mode),
			      MS_NOEXEC | (jail->binds[i].writable ? 0 : MS_RDONLY), err) < 0)
			return -1;
	}
	return 0;
}

/* Whether one of two absolute paths is the other or lies under it. */
static bool paths_overlap(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), n = la < lb ? la : lb;

	return strncmp(a, b, n) == 0 && (la == lb || (la < lb ? b[n] : a[n]) == '/');
}

/* Absolute, not "/", and every component a name: no "", "." or ".." (the overlap checks
 * compare strings). */
static bool path_is_plain(const char *path)
{
	const char *c = path;

	if (path[0] != '/' || path[1] == '\0')
		return false;
	while (*c == '/') {
		size_t len = strcspn(c + 1, "/");

		if (len == 0 || (len == 1 && c[1] == '.') ||
		    (len == 2 && c[1] == '.' && c[2] == '.'))
			return false;
		c += 1 + len;
	}
	return true;
}

/* A tree goes where nothing else of the jail is, above or below: its parents are then the
 * jail's own tmpfs directories, never a bind's (or a symlink's) on the host, and no step ever
 * creates anything inside a tree. */
static int plan_trees(struct plan *p, const struct jail_config *jail, struct ember_error **err)
{
	size_t root_len = strlen(p->root), i, j;

	if (jail->ntrees > JAIL_MAX_TREES)
		return ember_error_set(err, EMBER_E_INTERNAL, E2BIG, "%zu jail trees, at most %d",
				       jail->ntrees, JAIL_MAX_TREES);
	for (i = 0; i < jail->ntrees; i++) {
		const char *path = jail->trees[i].path;
		struct step *s;

		if (!path_is_plain(path))
			return ember_error_set(err, EMBER_E_INVALID, EINVAL,
					       "jail mount `%s` is not a plain absolute path", path);
		for (j = 0; j < p->n; j++) {
			const char *inside = p->steps[j].path + root_len;

			if (p->steps[j].op == STEP_MKDIR || inside[0] == '\0' ||
			    !paths_overlap(path, inside))
				continue;
			return ember_error_set(err, EMBER_E_INVALID, EINVAL,
					       "host directory `%s` overlaps `%s`, which the VMM's "
					       "jail holds already", path, inside);
		}
		if (plan_parents(p, path, err) < 0 || plan_add(p, STEP_MKDIR, path, err) == NULL)
			return -1;
		s = plan_add(p, STEP_MOVE_MOUNT, path, err);
		if (s == NULL)
			return -1;
		s->fd = jail->trees[i].fd;
	}
	return 0;
}

static int plan_mount(struct plan *p, const char *inside, const char *fstype, unsigned long flags,
		      const char *data, struct ember_error **err)
{
	struct step *s;

	if (plan_add(p, STEP_MKDIR, inside, err) == NULL)
		return -1;
	s = plan_add(p, STEP_MOUNT, inside, err);
	if (s == NULL)
		return -1;
	snprintf(s->source, sizeof(s->source), "%s", fstype);
	s->fstype = fstype;
	s->flags = flags;
	s->data = data;
	return 0;
}

/* /dev with fresh nodes and the jail's own /proc (its PID namespace only). No /tmp: a VMM
 * writes only where its binds say. */
static int plan_pseudo(struct plan *p, bool kvm, struct ember_error **err)
{
	size_t i;

	if (plan_mount(p, "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k", err) < 0)
		return -1;
	for (i = 0; i < ARRAY_SIZE(devices); i++) {
		struct step *s;

		if (devices[i].kvm && !kvm)
			continue;
		s = plan_add(p, STEP_MKNOD, devices[i].name, err);
		if (s == NULL)
			return -1;
		s->mode = S_IFCHR | devices[i].mode;
		s->dev = makedev(devices[i].major, devices[i].minor);
		s->chown = devices[i].kvm;
	}
	return plan_mount(p, "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err);
}

static int plan_build(struct plan *p, const struct jail_config *jail, struct ember_error **err)
{
	char root[PATH_MAX];
	struct step *s;

	if (jail->uid == 0 || jail->gid == 0)
		return ember_error_set(err, EMBER_E_INTERNAL, EINVAL, "a jail never runs as root");

	if (realpath(jail->root, root) == NULL)
		return ember_error_sys(err, "jail root `%s`", jail->root);
	if (snprintf(p->root, sizeof(p->root), "%s", root) >= (int)sizeof(p->root))
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "jail root too long");
	p->uid = jail->uid;
	p->gid = jail->gid;
	p->userns_id = jail->userns_id;
	s = plan_add(p, STEP_MOUNT, "", err);
	if (s == NULL)
		return -1;
	snprintf(s->source, sizeof(s->source), "tmpfs");
	s->fstype = "tmpfs";
	s->flags = MS_NOSUID | MS_NODEV;
	s->data = "mode=0755,size=1m";
	/* /dev before the binds: a bind under /dev/shm goes onto the jail's own /dev. Trees
	 * last: they are checked against everything else. */
	if (plan_system(p, err) < 0 || plan_pseudo(p, jail->kvm, err) < 0 ||
	    plan_binds(p, jail, err) < 0 || plan_trees(p, jail, err) < 0)
		return -1;
	return 0;
}

/* ---- the child: raw system calls only ---- */

static size_t child_strlen(const char *s)
{
	size_t n = 0;

	while (s[n] != '\0')
		n++;
	return n;
}

static void child_write(int fd, const char *s)
{
	syscall(SYS_write, fd, s, child_strlen(s));
}

__attribute__((noreturn)) static void child_fail(const struct plan *p, const char *what,
						 const char *path)
{
	char num[16];
	int e = errno, i = (int)sizeof(num) - 1;

	num[i] = '\0';
	do {
		num[--i] = (char)('0' + e % 10);
		e /= 10;
	} while (e > 0 && i > 0);
	child_write(p->log_fd, "emberd jail: ");
	child_write(p->log_fd, what);
	child_write(p->log_fd, " `");
	child_write(p->log_fd, path);
	child_write(p->log_fd, "`: errno ");
	child_write(p->log_fd, num + i);
	child_write(p->log_fd, "\n");
	syscall(SYS_exit_group, 125);
	__builtin_unreachable();
}

static void child_step(const struct plan *p, const struct step *s)
{
	long ret = 0;

	switch (s->op) {
	case STEP_MKDIR:
		ret = syscall(SYS_mkdirat, AT_FDCWD, s->path, 0755);
		break;
	case STEP_MKFILE:
		ret = syscall(SYS_mknodat, AT_FDCWD, s->path, S_IFREG | 0644, 0);
		break;
	case STEP_SYMLINK:
		ret = syscall(SYS_symlinkat, s->source, AT_FDCWD, s->path);
		break;
	case STEP_MKNOD:
		ret = syscall(SYS_mknodat, AT_FDCWD, s->path, s->mode, s->dev);
		if (ret == 0) /* mknod applied the umask */
			ret = syscall(SYS_fchmodat, AT_FDCWD, s->path, s->mode & 07777);
		if (ret == 0 && s->chown)
			ret = syscall(SYS_fchownat, AT_FDCWD, s->path, p->uid, p->gid,
				      AT_SYMLINK_NOFOLLOW);
		break;
	case STEP_MOUNT:
		ret = syscall(SYS_mount, s->source[0] != '\0' ? s->source : NULL, s->path,
			      s->fstype, s->flags, s->data);
		break;
	case STEP_MOVE_MOUNT:
		ret = syscall(SYS_move_mount, s->fd, "", AT_FDCWD, s->path,
			      MOVE_MOUNT_F_EMPTY_PATH);
		break;
	}
	/* A directory a system bind already brought in (a bind under /usr) is fine. */
	if (ret < 0 && !(errno == EEXIST && (s->op == STEP_MKDIR || s->op == STEP_MKFILE ||
					     s->op == STEP_SYMLINK)))
		child_fail(p, "set up", s->path);
}

/* Onto the plan's root: pivot, drop the old root, and make the root itself read-only. */
static void child_enter_root(const struct plan *p)
{
	if (syscall(SYS_chdir, p->root) < 0)
		child_fail(p, "chdir", p->root);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		child_fail(p, "pivot_root", p->root);
	if (syscall(SYS_umount2, ".", MNT_DETACH) < 0)
		child_fail(p, "detach the host root under", p->root);
	if (syscall(SYS_chdir, "/") < 0)
		child_fail(p, "chdir", "/");
	if (syscall(SYS_mount, NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID |
		    MS_NODEV, NULL) < 0)
		child_fail(p, "remount read-only", "/");
}

/* The user namespace, made by the child (the last thing it does as root), mapped by the
 * parent: the child says it is in, the parent answers once the maps are written (or closes
 * its end: then the child gives up). Supplementary groups go first: in the namespace they
 * would be unmapped ids the process keeps. */
static void child_enter_userns(const struct plan *p)
{
	char c = 0;

	if (syscall(SYS_setgroups, 0, NULL) < 0)
		child_fail(p, "set ids", "supplementary groups");
	if (syscall(SYS_unshare, CLONE_NEWUSER) < 0)
		child_fail(p, "unshare", "user namespace");
	if (syscall(SYS_write, p->sync_fd, &c, 1) != 1 || syscall(SYS_read, p->sync_fd, &c, 1) != 1)
		child_fail(p, "wait for the parent to map", "user namespace");
	syscall(SYS_close, p->sync_fd);
}

/* Every capability gone from every set, then the unprivileged ids, then no way back up. In a
 * user namespace (whose uid 0 is unmapped) setresuid() clears no capability by itself, and
 * the namespace gave the process a full bounding set: all of them are dropped here. */
static void child_drop_privileges(const struct plan *p)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = { { 0 } };
	uid_t uid = p->userns_id != 0 ? p->userns_id : p->uid;
	gid_t gid = p->userns_id != 0 ? (gid_t)p->userns_id : p->gid;
	unsigned long cap;

	for (cap = 0; cap <= 63; cap++) {
		if (syscall(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			child_fail(p, "drop capability", "bounding set");
	}
	if (syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 &&
	    errno != EINVAL)
		child_fail(p, "clear", "ambient capabilities");
	if (syscall(SYS_setgroups, 0, NULL) < 0 ||
	    syscall(SYS_setresgid, gid, gid, gid) < 0 ||
	    syscall(SYS_setresuid, uid, uid, uid) < 0)
		child_fail(p, "set ids", "uid/gid");
	if (syscall(SYS_capset, &hdr, none) < 0)
		child_fail(p, "clear", "capabilities");
	if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(p, "set", "no_new_privs");
}

/* stdin /dev/null, stdout and stderr the log, the kept fds, and nothing else. */
static void child_fds(const struct plan *p)
{
	long null_fd = syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC);
	size_t i;

	if (null_fd < 0)
		child_fail(p, "open", "/dev/null");
	if (syscall(SYS_dup3, (int)null_fd, 0, 0) < 0 || syscall(SYS_dup3, p->log_fd, 1, 0) < 0 ||
	    syscall(SYS_dup3, p->log_fd, 2, 0) < 0)
		child_fail(p, "set up", "stdio");
	if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		child_fail(p, "close_range", "fds");
	for (i = 0; i < p->nkeep_fds; i++) {
		if (syscall(SYS_fcntl, p->keep_fds[i], F_SETFD, 0) < 0)
			child_fail(p, "keep", "fd");
	}
}

__attribute__((noreturn)) static void child_main(const struct plan *p)
{
	static const char *const envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	sigset_t none;
	size_t i;

	sigemptyset(&none);
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(long));
	if (p->parent_sync_fd >= 0)
		syscall(SYS_close, p->parent_sync_fd);
	if (syscall(SYS_mount, NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail(p, "make private", "/");
	for (i = 0; i < p->n; i++)
		child_step(p, &p->steps[i]);
	child_enter_root(p);
	syscall(SYS_sethostname, "emberd-vmm", 10);
	child_fds(p);
	/* Before the ids change: the priority is the spawning thread's (priority.h). */
	prio_enter_child();
	if (p->userns_id != 0)
		child_enter_userns(p);
	child_drop_privileges(p);
	syscall(SYS_setsid);
	syscall(SYS_execve, p->argv[0], p->argv, envp);
	child_fail(p, "execve", p->argv[0]);
}

/* ---- spawning ---- */

#define JAIL_NAMESPACES \
	(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP)

static long clone3_raw(struct clone_args *args)
{
	return syscall(SYS_clone3, args, sizeof(*args));
}

/* How long the parent waits for the child to reach its user namespace: the child has a few
 * hundred system calls to make before, which take milliseconds even on a loaded host. */
#define JAIL_USERNS_WAIT_MS 10000

/* The parent's side of child_enter_userns(). child_sync_fd is the child's end, closed here so
 * that a child that dies first shows as end of file. */
static int map_child_userns(const struct plan *p, pid_t pid, int sync_fd, int *child_sync_fd,
			    struct ember_error **err)
{
	struct idmap map = { .uid_inside = p->userns_id, .uid_outside = p->uid,
			     .gid_inside = (gid_t)p->userns_id, .gid_outside = p->gid };
	char c = 0;
	int ready;

	close(steal_fd(child_sync_fd));
	ready = fd_wait(sync_fd, POLLIN, time_mono_ms() + JAIL_USERNS_WAIT_MS, err);
	if (ready < 0)
		return -1;
	if (ready == 0)
		return ember_error_set(err, EMBER_E_INTERNAL, ETIMEDOUT,
				       "the jailed process did not reach its user namespace in "
				       "%d ms", JAIL_USERNS_WAIT_MS);
	if (read(sync_fd, &c, 1) != 1)
		return ember_error_set(err, EMBER_E_INTERNAL, ECHILD,
				       "the jailed process failed before its user namespace (its "
				       "log says why)");
	if (idmap_write(pid, &map, err) < 0)
		return ember_error_wrap(err, "map the jailed process's user namespace");
	if (write(sync_fd, &c, 1) != 1)
		return ember_error_sys(err, "resume the jailed process");
	return 0;
}

int jail_spawn(const struct jail_config *jail, char *const argv[], int log_fd, pid_t *pid_out,
	       int *pidfd_out, struct ember_error **err)
{
	_cleanup_free_ struct plan *p = calloc(1, sizeof(*p));
	_cleanup_close_ int sync_fd = -1, child_sync_fd = -1;
	struct clone_args args = { .exit_signal = SIGCHLD };
	int pidfd = -1, status;
	long pid;

	if (p == NULL)
		return ember_error_oom(err);
	if (argv[0] == NULL || argv[0][0] != '/')
		return ember_error_set(err, EMBER_E_INTERNAL, EINVAL, "jail: argv[0] not absolute");
	if (plan_build(p, jail, err) < 0)
		return ember_error_wrap(err, "jail for `%s`", argv[0]);
	p->log_fd = log_fd;
	p->keep_fds = jail->keep_fds;
	p->nkeep_fds = jail->nkeep_fds;
	p->argv = argv;
	p->sync_fd = -1;
	p->parent_sync_fd = -1;
	if (jail->userns_id != 0) {
		int pair[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
			return ember_error_sys(err, "socketpair");
		sync_fd = p->parent_sync_fd = pair[0];
		child_sync_fd = p->sync_fd = pair[1];
	}
	args.flags = CLONE_PIDFD | JAIL_NAMESPACES;
	args.pidfd = (uint64_t)(uintptr_t)&pidfd;
	if (jail->cgroup_fd >= 0) {
		args.flags |= CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t)jail->cgroup_fd;
	}
	pid = clone3_raw(&args);
	if (pid < 0)
		return ember_error_sys(err, "clone3 a jailed `%s`", argv[0]);
	if (pid == 0)
		child_main(p);
	if (jail->userns_id != 0 && map_child_userns(p, (pid_t)pid, sync_fd, &child_sync_fd,
						     err) < 0) {
		/* Not reaped yet: the pid is still this child's. */
		kill((pid_t)pid, SIGKILL);
		while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR)
			;
		close(pidfd);
		return ember_error_wrap(err, "jail for `%s`", argv[0]);
	}
	*pid_out = (pid_t)pid;
	*pidfd_out = pidfd;
	return 0;
}

bool jail_supported(char *why, size_t why_size)
{
	struct clone_args args = { .flags = JAIL_NAMESPACES, .exit_signal = SIGCHLD };
	int status;
	long pid;

	if (geteuid() != 0) {
		snprintf(why, why_size, "the daemon does not run as root");
		return false;
	}
	pid = clone3_raw(&args);
	if (pid < 0) {
		snprintf(why, why_size, "clone3 with new mount, PID, network, IPC, UTS and cgroup "
			 "namespaces failed: %s", strerror(errno));
		return false;
	}
	if (pid == 0)
		syscall(SYS_exit_group, 0);
	while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR)
		;
	snprintf(why, why_size, "ok");
	return true;
}
