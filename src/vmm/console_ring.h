/* console_ring.h - the newest bytes of one VM's console in a fixed-size buffer, and a count of
 * every byte that ever went in. Used by console.c (which fills it straight from the VMM's fds);
 * not locked: its owner serialises access. Never allocates after init, never grows. */
#ifndef EMBER_VMM_CONSOLE_RING_H
#define EMBER_VMM_CONSOLE_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct console_ring {
	uint8_t *data;
	size_t size;
	uint64_t total;   /* bytes appended since init; the newest min(total, size) are kept */
};

/* 0, or -1 when size is 0 or memory is short. */
int console_ring_init(struct console_ring *ring, size_t size);
void console_ring_release(struct console_ring *ring);

/* Appends len bytes; when more than size come, only the newest size stay. */
void console_ring_append(struct console_ring *ring, const void *buf, size_t len);

/* The free-or-oldest space the next `max` bytes go to (max <= size), as 1 or 2 iovecs in
 * order, for a readv() straight into the ring; console_ring_commit() then says how many
 * arrived. Returns the number of iovecs. */
int console_ring_space(struct console_ring *ring, size_t max, struct iovec iov[2]);
void console_ring_commit(struct console_ring *ring, size_t n);

/* Copies the newest min(size, kept) bytes, oldest first, into out; returns how many. */
size_t console_ring_tail(const struct console_ring *ring, void *out, size_t size);

#endif
