/* jail.h - starts a VMM process the way Firecracker's jailer does, for QEMU too: as its own
 * unprivileged uid/gid, with no capabilities and no_new_privs, in new mount, PID, network, IPC
 * and UTS namespaces, on a root that holds only the system's read-only /usr (for the binary and
 * its libraries), a minimal /dev and the paths its sandbox needs.
 * Used by the QEMU driver for every VMM it starts; the daemon stays the only root process.
 * Never lets the jailed process see a host path that is not listed, the host network, other
 * processes, or keep a capability; paths keep their host names inside, so command lines do not
 * change. */
#ifndef EMBER_VMM_JAIL_H
#define EMBER_VMM_JAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

/* A host path the jailed process sees at the same path: a directory or a file (device nodes are
 * refused); read-only unless writable. The path is resolved by the parent before the child
 * starts, and the bind is made on what it resolved to (no symlink is followed in the child). */
struct jail_bind {
	const char *path;
	bool writable;
};

/* A detached mount (idmap.h idmap_tree()) the jailed process sees at path, its host path: the
 * child attaches it there with move_mount(), so it keeps its idmapping and flags. path is
 * absolute and resolved; it may not be, contain or lie under a system path, /dev, /proc, a
 * bind or another tree (EMBER_E_INVALID): nothing is ever created inside a tree. The caller
 * keeps fd open until jail_spawn() returned, then closes it. */
struct jail_tree {
	int fd;
	const char *path;
};

struct jail_config {
	uid_t uid;                       /* not 0 */
	gid_t gid;                       /* not 0 */
	const char *root;                /* an existing, empty directory (the same one can serve
					  * every jail: each mounts its own tmpfs on it, in its
					  * own mount namespace) */
	const struct jail_bind *binds;
	size_t nbinds;
	const struct jail_tree *trees;
	size_t ntrees;
	/* 0: none. Else the process ends up in a user namespace of its own (made last, after
	 * every mount and device) as this uid and gid, which stand for uid and gid outside it
	 * (the maps' only ids, written by the caller's process): what the process reports as the
	 * owner of files uid owns. The namespace gives it nothing: the mount namespace stays the
	 * daemon's user namespace's, and no capability survives. */
	uid_t userns_id;
	bool kvm;                        /* expose /dev/kvm */
	int cgroup_fd;                   /* a cgroup v2 directory to start in, or -1 */
	const int *keep_fds;             /* fds the child keeps at the same numbers (>= 3) */
	size_t nkeep_fds;
};

/* Most binds a jail takes (system directories not counted), and most trees (VMM_MOUNTS_MAX). */
#define JAIL_MAX_BINDS 16
#define JAIL_MAX_TREES 8

/* Starts argv[0] (an absolute path under /usr) in the jail with stdin /dev/null and stdout and
 * stderr on log_fd; *pid is its pid in the daemon's namespace, *pidfd a pidfd on it. The
 * child's set-up failures make it exit with status 125 after writing one line to log_fd. With
 * userns_id, returns once the child runs in its namespace (its maps written), or fails with
 * the child killed and reaped. */
int jail_spawn(const struct jail_config *jail, char *const argv[], int log_fd, pid_t *pid,
	       int *pidfd, struct ember_error **err);

/* Whether this host can run jails: root, and the kernel has clone3 with the namespaces above.
 * *why says what is missing otherwise. */
bool jail_supported(char *why, size_t why_size);

#endif
