/* mountimage.h - a read-only mount as a disk: the squashfs image of a host directory that a
 * Firecracker sandbox sees as /dev/vd<'b'+i> (Firecracker has no shared file system device).
 * Called by the manager at create, for a driver whose mount kind is VMM_MOUNT_BLOCK. Never
 * follows a symlink of the tree (links are stored as links) and never leaves a partial image.
 */
#ifndef EMBER_SANDBOX_MOUNTIMAGE_H
#define EMBER_SANDBOX_MOUNTIMAGE_H

#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

/* The walk that sizes a directory before it is built stops here: deeper or larger trees are
 * refused (EMBER_E_INVALID) rather than walked for long. 64 levels hold any checkout or data
 * set (PATH_MAX allows ~2000 one-letter levels, which only an attack makes); 200000 entries
 * are a large monorepo (linux.git has ~90000 files), and walking them costs ~0.3 s of
 * fstatat on a warm cache. */
#define MOUNT_IMAGE_DEPTH_MAX 64
#define MOUNT_IMAGE_ENTRIES_MAX 200000u
/* What the image may hold beyond the counted file bytes (squashfs inodes, directories and
 * tables, and the zstd frames of incompressible data): the image file is capped at
 * max_bytes + this + 1/16 of max_bytes, so a tree that grows between the walk and the build
 * cannot fill the host's disk (SIGXFSZ then kills mksquashfs: "`mksquashfs` failed: killed by
 * signal 25"). */
#define MOUNT_IMAGE_SLACK_BYTES (64u << 20)

/* The uid and gid every file of an image has: the guest's sandbox user, who runs the execs
 * (docs/guest.md), as the files of a mount's owner appear over 9p (docs/api.md "Mounts"). */
#define MOUNT_IMAGE_GUEST_ID "1000"

/* Builds image_path (absolute; whatever is there is replaced) as a squashfs (zstd, no xattrs,
 * modes as on the host, every file the guest user's, symlinks as symlinks, nothing mounted
 * below the directory) of the tree dir_fd names (a directory fd, O_PATH too). First a bounded
 * walk sums the regular files' sizes: over max_bytes is EMBER_E_INVALID "... holds more than
 * N MiB (--max-mount-image-mib)" (the caller prefixes the field), as are a tree deeper than
 * MOUNT_IMAGE_DEPTH_MAX or with more than MOUNT_IMAGE_ENTRIES_MAX entries. Then `mksquashfs`
 * runs in the directory as uid/gid (the mount's: a root daemon never builds as root, and uid
 * or gid 0 is EMBER_E_INVALID), so the image holds what they may read (a file they cannot
 * read is stored empty), writing a scratch file beside image_path; killed at deadline_ms
 * (time_mono_ms() clock): EMBER_E_INTERNAL with errno ETIMEDOUT. The image is then copied
 * into a new file the daemon owns (0444), which the builder never had open. On any failure
 * no file is left at image_path. Blocks the calling thread for the build
 * (docs/firecracker.md "Mounts": 0.1-1 s per 100 MB on this class of host). */
int mount_image_build(int dir_fd, const char *image_path, uid_t uid, gid_t gid,
		      uint64_t max_bytes, int64_t deadline_ms, struct ember_error **err);

#endif
