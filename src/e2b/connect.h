/* connect.h - the pieces of the Connect protocol (connectrpc.com/docs/protocol) that envd's
 * services speak with the JSON codec over HTTP/1.1: a call's one request message (a unary body,
 * or a server stream's single envelope), the response envelopes and end-of-stream message, and
 * the Connect-Timeout-Ms / Keepalive-Ping-Interval headers.
 * Used by the e2b sandbox-plane routes (process.c) and connectevents.c; pure functions over
 * bytes, unit-tested (tests/unit/test_e2b_connect.c) and fuzzed (tests/fuzz/fuzz_e2b_connect.c).
 * Never trusts a declared length, never accepts a compressed message or one past the cap. */
#ifndef EMBER_E2B_CONNECT_H
#define EMBER_E2B_CONNECT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/error.h"

/* A request message, as JSON: the SDK's largest is a SendInput of stdin bytes (base64), which
 * the HTTP layer's body cap (4 MiB) bounds first; this is the decoder's own bound. */
#define E2B_CONNECT_MESSAGE_MAX (4u * 1024u * 1024u)
/* Envelope flags (the protocol's): a compressed message, the end-of-stream message. */
#define E2B_CONNECT_FLAG_COMPRESSED 0x01u
#define E2B_CONNECT_FLAG_END 0x02u
#define E2B_CONNECT_ENVELOPE_HEADER 5u
/* Keepalive-Ping-Interval is in seconds; beyond this bound (an hour) a ping is pointless. */
#define E2B_CONNECT_KEEPALIVE_MAX_S 3600u

/* Content types: a unary call's (and its answer's) and a stream's. */
#define E2B_CONNECT_TYPE_UNARY "application/json"
#define E2B_CONNECT_TYPE_STREAM "application/connect+json"

/* Whether a Content-Type header is the JSON codec's for a unary call (stream false:
 * application/json) or a stream (application/connect+json), an optional `; charset=utf-8`
 * allowed, case-insensitively. NULL is neither. */
bool e2b_connect_content_type_ok(const char *content_type, bool stream);

/* The call's one request message as a JSON object (*out, a new reference): a unary call's
 * whole body, or a server-streaming call's single envelope (flags 0 and a length that is exactly
 * the rest of the body). An empty unary body is the empty message {}. Errors are
 * EMBER_E_INVALID (the SDK's invalid_argument) and name what is wrong. */
int e2b_connect_request(const uint8_t *body, size_t len, bool stream, json_t **out,
			struct ember_error **err);

/* Appends one envelope: flags, the 4-byte big-endian length, the compact JSON of msg. */
int e2b_connect_frame(struct buf *out, uint8_t flags, json_t *msg, struct ember_error **err);

/* Appends the end-of-stream envelope: {} for code NULL, else {"error": {"code": code,
 * "message": message}} (message made valid UTF-8 if it is not). */
int e2b_connect_end(struct buf *out, const char *code, const char *message,
		    struct ember_error **err);

/* Connect-Timeout-Ms (NULL: none): 1 to 10 ASCII digits (the protocol's bound), kept to
 * UINT32_MAX ms (49 days; the process's own cap applies anyway). *ms 0 without a header. */
int e2b_connect_timeout(const char *header, uint32_t *ms, struct ember_error **err);

/* Keepalive-Ping-Interval in seconds (NULL: none → 0); a bad value is ignored like an absent
 * one (pings are a courtesy), a large one is kept to E2B_CONNECT_KEEPALIVE_MAX_S. */
unsigned e2b_connect_keepalive_s(const char *header);

#endif
