/* console_ring.c - a fixed-size byte ring that keeps the newest bytes (see console_ring.h). */
#include "vmm/console_ring.h"

#include <stdlib.h>
#include <string.h>

int console_ring_init(struct console_ring *ring, size_t size)
{
	ring->data = size > 0 ? malloc(size) : NULL;
	ring->size = size;
	ring->total = 0;
	return ring->data != NULL ? 0 : -1;
}

void console_ring_release(struct console_ring *ring)
{
	free(ring->data);
	ring->data = NULL;
	ring->size = 0;
}

int console_ring_space(struct console_ring *ring, size_t max, struct iovec iov[2])
{
	size_t pos = (size_t)(ring->total % ring->size);
	size_t first = ring->size - pos;

	if (max > ring->size)
		max = ring->size;
	iov[0].iov_base = ring->data + pos;
	iov[0].iov_len = first < max ? first : max;
	if (iov[0].iov_len == max)
		return 1;
	iov[1].iov_base = ring->data;
	iov[1].iov_len = max - iov[0].iov_len;
	return 2;
}

void console_ring_commit(struct console_ring *ring, size_t n)
{
	ring->total += n;
}

void console_ring_append(struct console_ring *ring, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	/* Only the last `size` bytes can survive: skip the rest without copying it. */
	if (len > ring->size) {
		ring->total += len - ring->size;
		p += len - ring->size;
		len = ring->size;
	}
	while (len > 0) {
		struct iovec iov[2];
		int n = console_ring_space(ring, len, iov), i;

		for (i = 0; i < n; i++) {
			memcpy(iov[i].iov_base, p, iov[i].iov_len);
			p += iov[i].iov_len;
			len -= iov[i].iov_len;
			ring->total += iov[i].iov_len;
		}
	}
}

size_t console_ring_tail(const struct console_ring *ring, void *out, size_t size)
{
	size_t kept = ring->total < ring->size ? (size_t)ring->total : ring->size;
	size_t n = size < kept ? size : kept;
	size_t end = (size_t)(ring->total % ring->size);
	size_t start = (end + ring->size - n) % ring->size;
	uint8_t *o = out;

	if (n == 0)
		return 0;
	if (start < end) {
		memcpy(o, ring->data + start, n);
	} else {
		memcpy(o, ring->data + start, ring->size - start);
		memcpy(o + (ring->size - start), ring->data, end);
	}
	return n;
}
