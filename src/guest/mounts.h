/* mounts.h - mounts the host directories of a HELLO's `mounts` (protocol version 7): virtio-9p
 * shares and read-only squashfs disks, each on a directory it creates (docs/protocol.md "Mounts").
 * Called by session.c on HELLO, in PID 1 mode only, before READY. Mounts once per boot and never
 * unmounts what READY was sent for; never follows a symlink on the way to a mount point, and
 * mounts nothing proto_hello_mounts_check refuses. */
#ifndef EMBER_GUEST_MOUNTS_H
#define EMBER_GUEST_MOUNTS_H

#include "proto/messages.h"
#include "util/error.h"

/* virtio-9p's options. msize 512000 is the most the Linux virtio transport takes
 * (PAGE_SIZE * (VIRTQUEUE_NUM - 3)): each 9p message carries up to that much file data, so a
 * large read or write needs the fewest round trips through the VMM (64 MiB with dd bs=1M under
 * TCG: read 1.2 -> 2.1 GB/s, write ~400 -> 525 MB/s against 6.1's default 128 KiB; 300 small
 * files cost the same, ~1.3 ms to write and ~3 ms to read each, round trips not size). cache=mmap: reads and
 * writes go to the host every time and no dentry or attribute is cached, so a change made on
 * the host is seen at once (cache=loose would serve stale data and names); unlike cache=none
 * it allows shared writable mmap (sqlite, numpy.memmap). Cost: mmap'd pages themselves are not
 * refreshed when the host file changes, and every read is a round trip. access=user: the guest
 * kernel attaches once per guest uid, so the host learns who created a file (a mapped security
 * model can keep it; with security_model=none the VMM's own uid owns everything anyway). */
#define GUEST_MOUNT_9P_OPTIONS "trans=virtio,version=9p2000.L,msize=512000,cache=mmap,access=user"

/* Applies want (n > 0) unless applied (what this boot mounted, owned by the caller, zeroed
 * before the first call) already holds exactly the same mounts (then does nothing). Mounts that
 * differ from those already applied are refused: a guest's mounts are fixed at its first
 * HELLO. For each mount in order: creates the path's missing directories (root, 0755) walking
 * from / without following a symlink (an existing symlink or non-directory on the way fails),
 * then mounts 9p (source: the mount tag) or squashfs (source: /dev/<source>, waited for up to
 * GUEST_DISK_WAIT_MS) on it, nosuid, nodev, read-only when asked. On failure the mounts made
 * by this call are detached again, *applied stays as it was, and the error names the mount
 * ("mount emberd0 on /mnt/data: No such device (...)"). */
int guest_mounts_apply(struct proto_hello_mounts *applied, const struct proto_hello_mounts *want,
		       struct ember_error **err);

/* The mount point's directory, for mount(2) through /proc/self/fd: path (valid per
 * proto_mount_path_valid) below root_fd, each missing directory made (0755 under PID 1's umask
 * 022, so root's and 0755) one component at a time, each opened with O_NOFOLLOW, so a symlink
 * in the pack (or left by a program in a template's earlier life) cannot redirect the mount;
 * an existing symlink or non-directory on the way is an error naming it. Returns the fd.
 * Exposed for the unit tests. */
int guest_mounts_open_point(int root_fd, const char *path, struct ember_error **err);

#endif
