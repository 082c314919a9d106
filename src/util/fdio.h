/* fdio.h - descriptor helpers with deadlines: every blocking wait in emberd goes through here.
 * Used by the protocol I/O, the VMM drivers and the daemon; never blocks past a given deadline. */
#ifndef EMBER_UTIL_FDIO_H
#define EMBER_UTIL_FDIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "util/error.h"

int fd_set_nonblock(int fd, int on);
int fd_set_cloexec(int fd);

/* Writes every byte of iov[] to a non-blocking fd, polling until deadline_ms (absolute
 * monotonic ms; <0 = none). EMBER_E_GUEST_TIMEOUT when the deadline passes, EMBER_E_GUEST on
 * EPIPE/ECONNRESET, else internal. */
int fd_writev_all(int fd, struct iovec *iov, int iovcnt, int64_t deadline_ms,
		  struct ember_error **err);
int fd_write_all(int fd, const void *buf, size_t len, int64_t deadline_ms,
		 struct ember_error **err);

/* Waits until fd has `events` (POLLIN/POLLOUT); 1 ready, 0 deadline passed, -1 error. */
int fd_wait(int fd, short events, int64_t deadline_ms, struct ember_error **err);

/* Connects a Unix stream socket to path; the returned fd is non-blocking and close-on-exec. */
int unix_connect(const char *path, struct ember_error **err);

/* unix_connect(), retried while the socket does not exist yet or refuses (its server is still
 * starting), until deadline_ms or until alive(ctx) says the server process is gone (alive may
 * be NULL). The one connect-retry loop of emberd. Errors: EMBER_E_GUEST_TIMEOUT (ETIMEDOUT) at
 * the deadline, EMBER_E_GUEST when alive() said no, else what connect() said. */
int unix_connect_until(const char *path, int64_t deadline_ms, bool (*alive)(void *ctx), void *ctx,
		       struct ember_error **err);

/* Reads a whole small file (at most max bytes, NUL-terminated) into a new buffer. */
int file_read_all(const char *path, size_t max, char **out, size_t *len, struct ember_error **err);

/* Writes data to path atomically (temp file in the same directory, rename): readers see the old
 * or the new content, never a mix, even if the writer dies. With durable, also fsyncs the file
 * and the directory so the new content survives a power loss. */
int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, bool durable,
		      struct ember_error **err);

/* Reads in (a blocking descriptor, a file) to its end and writes it all to out, each write by
 * deadline_ms (<0: none). A failed read or write says which (err), nothing more. */
int fd_copy(int in, int out, int64_t deadline_ms, struct ember_error **err);

/* Makes dst a hard link to src, or (across filesystems) a copy of it; dst must not exist. */
int file_link_or_copy(const char *src, const char *dst, struct ember_error **err);

/* Checks that a directory the root daemon trusts (its run dir, its images) cannot be swapped
 * or written by anyone else: path itself is not a symlink, and it and every directory above it
 * is owned by root (or the daemon's own user) and not group- or world-writable (a sticky parent such as /tmp is fine: no
 * one else can rename root's entries in it). EMBER_E_INVALID naming `what` and the culprit. */
int dir_check_trusted(const char *path, const char *what, struct ember_error **err);

/* Removes a directory tree without following symlinks or crossing mounts; missing is fine. */
int dir_remove_tree(const char *path, struct ember_error **err);

#endif
