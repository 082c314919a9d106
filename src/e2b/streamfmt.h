/* streamfmt.h - the E2B formats of a streamed exec's events (api/events.h API_EVENTS_CONNECT and
 * API_EVENTS_E2B_EXECUTE): events.c calls these for those formats, with the same arguments its
 * own ndjson/SSE encoders take. Pure functions.
 *   connectevents.c  envd's process stream as Connect frames (flag byte, 4-byte BE length,
 *                    JSON); the stream's last event also writes the end-of-stream frame.
 *   execevents.c     the code interpreter's /execute NDJSON lines. */
#ifndef EMBER_E2B_STREAMFMT_H
#define EMBER_E2B_STREAMFMT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/error.h"

/* type "stdout" or "stderr": one output event for exactly these bytes. */
int e2b_connect_events_output(struct buf *out, const char *type, const uint8_t *data, size_t len,
			      struct ember_error **err);
/* Any other event (members borrowed, may be NULL), as execstream.c produces them. */
int e2b_connect_events_object(struct buf *out, const char *type, json_t *members,
			      struct ember_error **err);

int e2b_execute_events_output(struct buf *out, const char *type, const uint8_t *data, size_t len,
			      struct ember_error **err);
int e2b_execute_events_object(struct buf *out, const char *type, json_t *members,
			      struct ember_error **err);

#endif
