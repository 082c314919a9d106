/* stream.h - a JSON response body produced while it is sent, for responses that carry large
 * guest output: the bytes are kept once, raw, and escaped (or base64-encoded) chunk by chunk as
 * the client reads, so 16 MiB of control characters (96 MiB escaped) never exists in memory as
 * text. The body's length is known up front (Content-Length).
 * Built by routes.c, read by server.c through the HTTP library's content callback. Owns the
 * byte buffers handed to it; never produces text that differs from what jansson would print for
 * the same object. */
#ifndef EMBER_API_STREAM_H
#define EMBER_API_STREAM_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

struct api_stream;

/* An object of the given small members (taken; may be empty) preceded by byte members, each
 * written as "<key>": <string> and "<key>_encoding": "utf-8" | "base64" by json_set_bytes's
 * rule (valid UTF-8 without NUL: a JSON string; else base64). data[i] are malloc'd buffers the
 * stream takes and frees. */
struct api_stream_bytes {
	const char *key;           /* a short constant */
	uint8_t *data;
	size_t len;
};
struct api_stream *api_stream_object(json_t *members, struct api_stream_bytes *bytes,
				     size_t nbytes, struct ember_error **err);

/* Exact length of the whole body in bytes. */
uint64_t api_stream_length(const struct api_stream *s);

/* Writes up to max bytes of the body from position pos (which must be where the previous read
 * ended: the body is produced in order) into buf; returns the count (0 at the end). */
size_t api_stream_read(struct api_stream *s, uint64_t pos, char *buf, size_t max);

void api_stream_free(struct api_stream *s);

#endif
