/* outq.h - a session's bounded queue of outgoing frames, flushed without ever blocking.
 * Used by session.c for every frame the guest sends (exec output arrives through the session).
 * Never grows past its cap: a push that would exceed it fails and the session ends. */
#ifndef EMBER_GUEST_OUTQ_H
#define EMBER_GUEST_OUTQ_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct guest_outq_chunk;

struct guest_outq {
	struct guest_outq_chunk *head;
	struct guest_outq_chunk *tail;
	size_t bytes; /* queued and not yet written, headers included */
	size_t max;
};

void guest_outq_init(struct guest_outq *q, size_t max);
void guest_outq_release(struct guest_outq *q);

/* Queues one whole frame (header + payload copy). EMBER_E_CAPACITY when over the cap. */
int guest_outq_push(struct guest_outq *q, uint8_t type, uint8_t flags, uint32_t id,
		    const void *payload, size_t len, struct ember_error **err);

/* Moves every frame of src behind dst's, in order, and leaves src empty. dst's cap is not
 * checked: the frames were bounded by src's cap when they were queued, so dst may hold up to
 * both caps until it drains (then its own pushes fail until it is back under its cap). */
void guest_outq_append(struct guest_outq *dst, struct guest_outq *src);

/* Writes as much as fd takes now (EAGAIN is not an error). -1 when the peer is gone or the
 * write fails otherwise. */
int guest_outq_flush(struct guest_outq *q, int fd, struct ember_error **err);

static inline size_t guest_outq_bytes(const struct guest_outq *q)
{
	return q->bytes;
}

#endif
