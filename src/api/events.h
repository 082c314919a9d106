/* events.h - the events of a streamed exec as response text: one JSON object per line
 * (application/x-ndjson) or per SSE message (text/event-stream).
 * Used by execstream.c; pure functions, unit-tested. Never splits a UTF-8 character across two
 * output events: an incomplete sequence at a chunk's end waits for the next chunk. */
#ifndef EMBER_API_EVENTS_H
#define EMBER_API_EVENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/error.h"

enum api_events_format {
	API_EVENTS_NDJSON, /* {json}\n */
	API_EVENTS_SSE,    /* event: <type>\ndata: {json}\n\n */
	API_EVENTS_CONNECT,     /* envd process stream: Connect frames (e2b/streamfmt.h) */
	API_EVENTS_E2B_EXECUTE, /* the E2B code interpreter's NDJSON (e2b/streamfmt.h) */
};

/* The Content-Type of a stream of that format. */
const char *api_events_content_type(enum api_events_format fmt);

/* Up to 3 bytes of a UTF-8 sequence that a chunk ended in the middle of. */
struct api_utf8_carry {
	uint8_t bytes[4];
	size_t len;
};

/* The length of the incomplete UTF-8 sequence that data ends with (0-3; 0 when it ends on a
 * character boundary or in bytes that are not UTF-8 anyway). */
size_t api_utf8_incomplete_tail(const uint8_t *data, size_t len);

/* Appends the event for carry + data of one stream (type "stdout" or "stderr") to out:
 * {"type":T,"data":S} when the bytes are valid UTF-8 without NUL, else
 * {"type":T,"data":B64,"encoding":"base64"}. Unless final, an incomplete sequence at the end is
 * kept in carry instead (no event when nothing else is left). */
int api_events_output(struct buf *out, enum api_events_format fmt, const char *type,
		      struct api_utf8_carry *carry, const uint8_t *data, size_t len, bool final,
		      struct ember_error **err);

/* Appends {"type":T, ...members} (members borrowed, may be NULL). */
int api_events_object(struct buf *out, enum api_events_format fmt, const char *type,
		      json_t *members, struct ember_error **err);

#endif
