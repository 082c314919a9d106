/* credit.h - the protocol's per-id data credit (CREDIT frames, protocol version 2): how many
 * payload bytes of data frames a peer may still send for one request id.
 * Used by the host's channel (grants as its consumer drains) and the guest (spends as it sends).
 * Never lets a count wrap: a grant that would overflow is clamped, a spend beyond the credit is
 * refused so the receiver can treat it as a protocol violation. */
#ifndef EMBER_PROTO_CREDIT_H
#define EMBER_PROTO_CREDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Bytes every request id may send before its first CREDIT (the implicit initial window). */
#define PROTO_CREDIT_WINDOW (256u * 1024u)
/* The CREDIT payload: one big-endian uint32, the bytes added (>= 1). */
#define PROTO_CREDIT_PAYLOAD 4u
/* Available credit never exceeds this (a larger sum is clamped, not an error). */
#define PROTO_CREDIT_MAX (UINT64_C(1) << 40)

void proto_credit_encode(uint8_t out[PROTO_CREDIT_PAYLOAD], uint32_t bytes);
/* EMBER_E_PROTOCOL unless the payload is exactly 4 bytes holding a non-zero count. */
int proto_credit_decode(const uint8_t *payload, size_t len, uint32_t *bytes,
			struct ember_error **err);

/* The receiving side's account of one id's window: what it granted, what arrived, and what it
 * still holds unconsumed. Its invariant: (granted - received) + buffered <= window, so the
 * memory it needs for this id is bounded by window whatever the sender does. */
struct proto_credit_window {
	uint64_t window;   /* bound on in flight + buffered */
	uint64_t granted;  /* total, the initial window included */
	uint64_t received; /* data payload bytes that arrived */
	uint64_t buffered; /* received and not yet consumed */
};

void proto_credit_window_init(struct proto_credit_window *w, uint64_t window);
/* n bytes arrived: -1 (EMBER_E_PROTOCOL) when the sender went beyond its credit. */
int proto_credit_window_received(struct proto_credit_window *w, size_t n,
				 struct ember_error **err);
/* n buffered bytes were consumed (handed on). */
void proto_credit_window_consumed(struct proto_credit_window *w, size_t n);
/* The CREDIT to send now (0: none yet): granted once at least half the window is free again, so
 * CREDIT frames stay few; adds it to granted. */
uint32_t proto_credit_window_grant(struct proto_credit_window *w);

#endif
