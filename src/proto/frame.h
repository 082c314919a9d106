/* frame.h - the host<->guest wire format: 12-byte headers and bounded, strict frame decoding.
 * Used by both emberd (host) and emberd-init (guest); nothing else is shared between them.
 * Never trusts a length from the peer: every header is validated before a byte of payload is kept. */
#ifndef EMBER_PROTO_FRAME_H
#define EMBER_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* 2: per-id data credit (CREDIT frames, proto/credit.h); a version-1 peer has none.
 * 3: files (FS/FS_REPLY/DATA, CREDIT both ways) and background processes (STARTED/SIGNAL).
 * 4: code contexts (CONTEXT/CONTEXT_REPLY) and exec timing.
 * 5: HELLO `net` (the guest configures its NIC from it).
 * 6: EXEC `code_argument`.
 * 7: HELLO `mounts` (host directories the guest mounts before READY).
 * 8: SUSPEND/SUSPENDED/RESUME (a session kept across a pause of the VM, docs/protocol.md). */
#define PROTO_VERSION 8u
#define PROTO_HEADER_SIZE 12u
/* 1 MiB: large enough for a 256 KiB program escaped into JSON, small enough that each side may
 * hold one whole frame in memory per connection without caring who sent it. */
#define PROTO_MAX_PAYLOAD (1024u * 1024u)
/* Data frames (stdin/stdout/stderr) are cut at 64 KiB so one exec cannot starve the others. */
#define PROTO_MAX_DATA_CHUNK (64u * 1024u)

enum proto_type {
	PROTO_HELLO = 1,     /* host -> guest, id 0, JSON: version, identity, clock, entropy */
	PROTO_READY = 2,     /* guest -> host, id 0, JSON: agreed version, agent info */
	PROTO_EXEC = 3,      /* host -> guest, JSON exec spec; id names the exec from now on */
	PROTO_STDIN = 4,     /* host -> guest, raw bytes; FIN marks end of input */
	PROTO_STDOUT = 5,    /* guest -> host, raw bytes */
	PROTO_STDERR = 6,    /* guest -> host, raw bytes */
	PROTO_EXIT = 7,      /* guest -> host, JSON: the exec's outcome; the id is free afterwards */
	PROTO_CANCEL = 8,    /* host -> guest, empty: kill the exec's process group */
	PROTO_PS = 9,        /* host -> guest, empty: ask for the process table */
	PROTO_PS_REPLY = 10, /* guest -> host, JSON array of processes */
	PROTO_ERROR = 11,    /* either way, JSON {code, message}: the request with this id failed */
	PROTO_PING = 12,     /* host -> guest, any bytes (<= 64) echoed back */
	PROTO_PONG = 13,     /* guest -> host */
	PROTO_CREDIT = 14,   /* either way (version 2; guest -> host from 3): uint32 more data
			      * bytes for this id */
	PROTO_FS = 15,       /* host -> guest (version 3), JSON: one file-system operation */
	PROTO_FS_REPLY = 16, /* guest -> host (version 3), JSON: its outcome (or a read's header) */
	PROTO_DATA = 17,     /* either way (version 3), raw file bytes; FIN marks the last one */
	PROTO_STARTED = 18,  /* guest -> host (version 3), JSON {"pid"}: a background exec began */
	PROTO_SIGNAL = 19,   /* host -> guest (version 3): uint32 signal for the exec's group */
	PROTO_CONTEXT = 20,  /* host -> guest (version 4), JSON: open, close or restart a context */
	PROTO_CONTEXT_REPLY = 21, /* guest -> host (version 4), JSON {"pid"}: it is running */
	PROTO_SUSPEND = 22,  /* host -> guest (version 8), id 0, empty: quiesce for a pause */
	PROTO_SUSPENDED = 23, /* guest -> host (version 8), id 0, empty: its last frame until RESUME */
	PROTO_RESUME = 24,   /* host -> guest (version 8), id 0, HELLO's JSON (identity, clock,
			      * entropy): the VM was restored; answered with READY */
	PROTO_TYPE_MAX = 24,
};

#define PROTO_FLAG_FIN 0x01u /* only on PROTO_STDIN and PROTO_DATA: nothing more after it */

struct proto_header {
	uint32_t length; /* payload bytes that follow the header */
	uint32_t id;     /* request id; 0 for session-level frames (HELLO/READY) */
	uint8_t type;
	uint8_t flags;
};

struct proto_frame {
	struct proto_header header;
	const uint8_t *payload; /* points into the decoder's buffer; valid until the next call */
};

/* Serialises a header into out[PROTO_HEADER_SIZE] (big-endian fields, reserved bytes zero). */
void proto_header_encode(uint8_t *out, const struct proto_header *header);

/* Parses and validates a header: known type, allowed flags, zero reserved bytes, length within
 * the type's own bound. Returns 0 or -1 with an EMBER_E_PROTOCOL error. */
int proto_header_decode(const uint8_t *in, struct proto_header *header, struct ember_error **err);

const char *proto_type_name(uint8_t type);

/* A streaming decoder: bytes go in through proto_decoder_space()/commit(), whole frames come
 * out of proto_decoder_next(). Memory use is bounded by PROTO_HEADER_SIZE + PROTO_MAX_PAYLOAD. */
struct proto_decoder {
	uint8_t *buf;
	size_t start; /* first unconsumed byte */
	size_t len;   /* end of valid bytes */
	size_t cap;
	int failed;   /* once a stream is malformed it stays malformed: there is no resync */
};

void proto_decoder_init(struct proto_decoder *dec);
void proto_decoder_release(struct proto_decoder *dec);

/* Returns a writable region of *avail >= 1 bytes (growing the buffer only as far as the frame
 * being read needs), or NULL with an error when memory is short. */
uint8_t *proto_decoder_space(struct proto_decoder *dec, size_t *avail, struct ember_error **err);
void proto_decoder_commit(struct proto_decoder *dec, size_t n);

/* Convenience for tests and fuzzers: copies n bytes in (as many space/commit rounds as needed
 * would); fails if the bytes do not fit the current frame bound. */
int proto_decoder_feed(struct proto_decoder *dec, const uint8_t *data, size_t n,
		       struct ember_error **err);

/* 1: *frame holds a whole frame; 0: more bytes are needed; -1: the stream is malformed. */
int proto_decoder_next(struct proto_decoder *dec, struct proto_frame *frame,
		       struct ember_error **err);

/* Bytes buffered but not yet returned as frames (a partial frame when the peer went quiet). */
size_t proto_decoder_pending(const struct proto_decoder *dec);

#endif
