/* idmap.h - one-id user namespaces and the idmapped trees made with them: how a jailed VMM (its
 * own uid J) reads and writes a host directory as the directory's owner U without being U.
 * Used by the QEMU driver (a tree per mount, handed to jail_spawn) and by jail.c (the map of
 * a jailed VMM's own user namespace). Never maps more than one id each way, and never leaves
 * a process behind: the helper child is reaped. */
#ifndef EMBER_VMM_IDMAP_H
#define EMBER_VMM_IDMAP_H

#include <stdbool.h>
#include <sys/types.h>

#include "util/error.h"

/* One id each way: `inside` (in the namespace) stands for `outside` (in the daemon's). */
struct idmap {
	uid_t uid_inside, uid_outside;
	gid_t gid_inside, gid_outside;
};

/* Writes uid_map "uid_inside uid_outside 1" and gid_map likewise for the user namespace pid
 * is in (a new one, no map yet). The caller is root in the daemon's namespace, so setgroups
 * stays allowed in it (a gid_map written with privilege needs no "deny"). */
int idmap_write(pid_t pid, const struct idmap *map, struct ember_error **err);

/* A user namespace with map as its only ids, as an fd (O_CLOEXEC; the caller closes it). Made
 * by a short-lived child that is killed and reaped before this returns. */
int idmap_userns_fd(const struct idmap *map, struct ember_error **err);

/* A detached copy of the mount at dir_fd (an O_PATH directory; its submounts not included),
 * idmapped through userns_fd, nosuid, nodev, noexec and, unless rw, read-only. With the map
 * {U -> J}: files U owns on disk appear owned by J, files J creates land on disk owned by U,
 * every other owner appears as the overflow id (nobody), and root (unmapped) can create
 * nothing in it. The fd (O_CLOEXEC) is what move_mount() attaches; closed unattached, the
 * tree goes away. EMBER_E_INVALID when the directory's file system cannot be idmapped. */
int idmap_tree(int dir_fd, int userns_fd, bool rw, struct ember_error **err);

#endif
