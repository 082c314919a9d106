/* outq.c - bounded frame queue. */
#include "guest/outq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "proto/frame.h"

struct guest_outq_chunk {
	struct guest_outq_chunk *next;
	size_t len; /* header + payload */
	size_t off; /* bytes already written */
	uint8_t data[];
};

#define OUTQ_IOV 16

void guest_outq_init(struct guest_outq *q, size_t max)
{
	q->head = NULL;
	q->tail = NULL;
	q->bytes = 0;
	q->max = max;
}

void guest_outq_release(struct guest_outq *q)
{
	while (q->head != NULL) {
		struct guest_outq_chunk *c = q->head;

		q->head = c->next;
		free(c);
	}
	q->tail = NULL;
	q->bytes = 0;
}

int guest_outq_push(struct guest_outq *q, uint8_t type, uint8_t flags, uint32_t id,
		    const void *payload, size_t len, struct ember_error **err)
{
	struct proto_header h = { .length = (uint32_t)len, .id = id, .type = type, .flags = flags };
	struct guest_outq_chunk *c;

	if (len > PROTO_MAX_PAYLOAD)
		return ember_error_set(err, EMBER_E_INTERNAL, 0, "%s frame of %zu bytes is too large",
				       proto_type_name(type), len);
	if (q->bytes + PROTO_HEADER_SIZE + len > q->max)
		return ember_error_set(err, EMBER_E_CAPACITY, 0,
				       "outgoing queue full (%zu bytes queued, peer not reading)",
				       q->bytes);
	c = malloc(sizeof(*c) + PROTO_HEADER_SIZE + len);
	if (c == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory queueing a frame");
	c->next = NULL;
	c->len = PROTO_HEADER_SIZE + len;
	c->off = 0;
	proto_header_encode(c->data, &h);
	if (len > 0)
		memcpy(c->data + PROTO_HEADER_SIZE, payload, len);
	if (q->tail != NULL)
		q->tail->next = c;
	else
		q->head = c;
	q->tail = c;
	q->bytes += c->len;
	return 0;
}

void guest_outq_append(struct guest_outq *dst, struct guest_outq *src)
{
	if (src->head == NULL)
		return;
	if (dst->tail != NULL)
		dst->tail->next = src->head;
	else
		dst->head = src->head;
	dst->tail = src->tail;
	dst->bytes += src->bytes;
	src->head = NULL;
	src->tail = NULL;
	src->bytes = 0;
}

int guest_outq_flush(struct guest_outq *q, int fd, struct ember_error **err)
{
	while (q->head != NULL) {
		struct iovec iov[OUTQ_IOV];
		struct guest_outq_chunk *c;
		ssize_t n;
		int cnt = 0;

		for (c = q->head; c != NULL && cnt < OUTQ_IOV; c = c->next, cnt++) {
			iov[cnt].iov_base = c->data + c->off;
			iov[cnt].iov_len = c->len - c->off;
		}
		n = writev(fd, iov, cnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return ember_error_sys(err, "write to the host");
		}
		q->bytes -= (size_t)n;
		while (n > 0) {
			c = q->head;
			if ((size_t)n >= c->len - c->off) {
				n -= (ssize_t)(c->len - c->off);
				q->head = c->next;
				free(c);
			} else {
				c->off += (size_t)n;
				n = 0;
			}
		}
		if (q->head == NULL)
			q->tail = NULL;
	}
	return 0;
}
