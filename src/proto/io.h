/* io.h - sending and receiving whole frames on a non-blocking stream fd, with deadlines.
 * Used by the host agent client and by simple peers (tests, the fake firecracker); the guest's
 * event loop uses the decoder directly. Never blocks past the deadline given. */
#ifndef EMBER_PROTO_IO_H
#define EMBER_PROTO_IO_H

#include <stddef.h>
#include <stdint.h>

#include "proto/frame.h"
#include "util/error.h"

int proto_send(int fd, uint8_t type, uint8_t flags, uint32_t id, const void *payload, size_t len,
	       int64_t deadline_ms, struct ember_error **err);

/* Reads until one whole frame is decoded (returns 1), the peer closes (EMBER_E_GUEST), the
 * stream is malformed (EMBER_E_PROTOCOL) or the deadline passes (EMBER_E_GUEST_TIMEOUT). */
int proto_recv(int fd, struct proto_decoder *dec, struct proto_frame *frame, int64_t deadline_ms,
	       struct ember_error **err);

/* Pulls whatever bytes are readable now into dec without blocking. Returns bytes read (>0),
 * 0 when nothing is readable, -1 on error or EOF (EMBER_E_GUEST "peer closed"). */
long proto_fill(int fd, struct proto_decoder *dec, struct ember_error **err);

#endif
