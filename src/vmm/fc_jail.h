/* fc_jail.h - running Firecracker under its jailer: the jail's layout on the host, the files the
 * VM needs hard-linked into it, the pid file the jailer leaves there, and the cleanup the
 * jailer leaves to its caller.
 * Used by firecracker.c. Never deletes anything outside <chroot base>/<exec name>/<id> and the
 * VM's own cgroup directory, and never follows a name inside the jail's root: the jailed uid
 * owns that directory and may have put a symlink (or a FIFO, or a hard link) anywhere in it. */
#ifndef EMBER_VMM_FC_JAIL_H
#define EMBER_VMM_FC_JAIL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

/* Firecracker's and the jailer's --id: 1 to 64 characters from [A-Za-z0-9-]. */
#define FC_ID_MAX 64

/* Daemon-wide jailer settings, from the environment (docs/firecracker.md):
 * EMBERD_JAILER_CHROOT_BASE (default /srv/jailer). Each VM's uid and gid come from the daemon's
 * VMM uid range (vmm.h), one per VM; EMBERD_JAILER_UID/GID, which once set one shared uid, are
 * refused. */
struct fc_jail_settings {
	char chroot_base[PATH_MAX];
	char cgroup2_root[PATH_MAX]; /* where cgroup v2 is mounted; empty when it is not */
};

int fc_jail_settings_load(struct fc_jail_settings *s, struct ember_error **err);

/* A sandbox id ("sb_<hex>") as a Firecracker/jailer id ("sb-<hex>"). */
int fc_instance_id(const char *sandbox_id, char *out, size_t size, struct ember_error **err);

/* One VM's jail. */
struct fc_jail {
	char id[FC_ID_MAX + 1];
	char instance_dir[PATH_MAX]; /* <chroot base>/<exec name>/<id>: all of it is ours */
	char root[PATH_MAX];         /* <instance_dir>/root: the jailed Firecracker's "/" */
	char cgroup_dir[PATH_MAX];   /* <cgroup2 root>/<exec name>/<id>, or empty */
	char exec_name[NAME_MAX + 1];
	uid_t uid;                   /* the VM's own uid (= gid), which owns root; 0: unknown */
};

/* Computes the layout for exec_file and sandbox_id (no I/O). */
int fc_jail_layout(struct fc_jail *j, const struct fc_jail_settings *s, const char *exec_file,
		   const char *sandbox_id, struct ember_error **err);

/* fc_jail_layout(), then creates root afresh (what an earlier VM of that id left is removed
 * first: the jailer chowns root to uid:gid and leaves an existing directory as it is). */
int fc_jail_prepare(struct fc_jail *j, const struct fc_jail_settings *s, const char *exec_file,
		    const char *sandbox_id, struct ember_error **err);

/* Hard-links host_path to <root>/<name> (the same filesystem is required: the jailed process
 * sees nothing outside root) and gives the path as the jailed Firecracker sees it: "/<name>". */
int fc_jail_link(const struct fc_jail *j, const char *host_path, const char *name,
		 char *jail_path, size_t size, struct ember_error **err);

/* Puts host_path in the jail as "/<name>" for reading: fc_jail_link() when it lies on the
 * jail's filesystem, else fc_jail_copy_in() of it (a mount's image, which the manager builds in
 * the run directory, often a tmpfs: the copy then costs the image's size in time and disk). */
int fc_jail_place(const struct fc_jail *j, const char *host_path, const char *name,
		  char *jail_path, size_t size, struct ember_error **err);

/* Writes a new "/<name>" in the jail holding the data of src_fd (size bytes; holes stay holes),
 * root's and 0444: a file the jailed uid may read and not change, for what it could not read
 * through a hard link (a template's memory, which the template store keeps root's and 0400). */
int fc_jail_copy_in(const struct fc_jail *j, int src_fd, uint64_t size, const char *name,
		    char *jail_path, size_t jail_path_size, struct ember_error **err);

/* Moves "/<name>", a file the jailed Firecracker wrote (a snapshot), out of the jail to
 * host_path (rename: the same filesystem is required, as for fc_jail_link) and makes it the
 * daemon's and read-only for everyone else: clones of every jail open it, and no jailed process
 * may change it. Only a regular file with one link, owned by j->uid, is taken: anything else
 * (a symlink to a host file, a hard link) is removed and the call fails, untouched. */
int fc_jail_take(const struct fc_jail *j, const char *name, const char *host_path,
		 struct ember_error **err);

/* The pid the jailer wrote to "/<exec name>.pid" with --new-pid-ns: Firecracker's, in the
 * daemon's PID namespace. Only a regular file the jailer (root) created is believed. */
int fc_jail_read_pid(const struct fc_jail *j, pid_t *pid, struct ember_error **err);

/* Host path of "/<name>" inside the jail (sockets Firecracker creates there). */
int fc_jail_host_path(const struct fc_jail *j, const char *name, char *out, size_t size,
		      struct ember_error **err);

/* Removes instance_dir (the chroot with its links, device nodes and the copied binary) and the
 * cgroup directory. Best effort; the VMM process must be gone. */
void fc_jail_cleanup(const struct fc_jail *j);

#endif
