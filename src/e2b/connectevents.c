/* connectevents.c - envd's process stream as Connect frames (stub until written). */
#include "e2b/streamfmt.h"

int e2b_connect_events_output(struct buf *out, const char *type, const uint8_t *data, size_t len,
			      struct ember_error **err)
{
	(void)out, (void)type, (void)data, (void)len;
	return ember_error_set(err, EMBER_E_INTERNAL, 0, "Connect process streams: not yet");
}

int e2b_connect_events_object(struct buf *out, const char *type, json_t *members,
			      struct ember_error **err)
{
	(void)out, (void)type, (void)members;
	return ember_error_set(err, EMBER_E_INTERNAL, 0, "Connect process streams: not yet");
}
