/* events.c - streamed exec events as ndjson or SSE text. */
#include "api/events.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "e2b/streamfmt.h"
#include "util/cleanup.h"
#include "util/jsonutil.h"
#include "util/text.h"

size_t api_utf8_incomplete_tail(const uint8_t *data, size_t len)
{
	size_t i, back, need;

	for (back = 1; back <= 3 && back <= len; back++) {
		uint8_t c = data[len - back];

		if ((c & 0xC0) == 0x80)
			continue; /* a continuation byte: look further back */
		i = len - back;
		if (c >= 0xF0 && c <= 0xF4)
			need = 4;
		else if (c >= 0xE0)
			need = c <= 0xEF ? 3 : 0;
		else if (c >= 0xC2)
			need = 2;
		else
			need = 0; /* ASCII or not a lead byte */
		return need > len - i ? len - i : 0;
	}
	return 0;
}

static int append_event(struct buf *out, enum api_events_format fmt, const char *type,
			json_t *obj, struct ember_error **err)
{
	_cleanup_free_ char *text = json_dumps(obj, JSON_COMPACT);
	int ret = 0;

	if (text == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	if (fmt == API_EVENTS_SSE)
		ret |= buf_append(out, "event: ", 7) | buf_append(out, type, strlen(type)) |
		       buf_append(out, "\ndata: ", 7);
	ret |= buf_append(out, text, strlen(text));
	ret |= buf_append(out, fmt == API_EVENTS_SSE ? "\n\n" : "\n",
			  fmt == API_EVENTS_SSE ? 2 : 1);
	if (ret != 0)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	return 0;
}

const char *api_events_content_type(enum api_events_format fmt)
{
	switch (fmt) {
	case API_EVENTS_SSE: return "text/event-stream";
	case API_EVENTS_CONNECT: return "application/connect+json";
	case API_EVENTS_NDJSON:
	case API_EVENTS_E2B_EXECUTE: break;
	}
	return "application/x-ndjson";
}

int api_events_object(struct buf *out, enum api_events_format fmt, const char *type,
		      json_t *members, struct ember_error **err)
{
	_cleanup_json_ json_t *obj = NULL;

	if (fmt == API_EVENTS_CONNECT)
		return e2b_connect_events_object(out, type, members, err);
	if (fmt == API_EVENTS_E2B_EXECUTE)
		return e2b_execute_events_object(out, type, members, err);
	obj = json_pack("{s:s}", "type", type);

	if (obj == NULL || (members != NULL && json_object_update(obj, members) < 0))
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	return append_event(out, fmt, type, obj, err);
}

/* One output event for exactly these bytes, by the text-or-base64 rule. */
static int output_event(struct buf *out, enum api_events_format fmt, const char *type,
			const uint8_t *data, size_t len, struct ember_error **err)
{
	_cleanup_json_ json_t *obj = NULL;
	_cleanup_free_ char *b64 = NULL;

	if (fmt == API_EVENTS_CONNECT)
		return e2b_connect_events_output(out, type, data, len, err);
	if (fmt == API_EVENTS_E2B_EXECUTE)
		return e2b_execute_events_output(out, type, data, len, err);
	if (utf8_valid_text(data, len)) {
		obj = json_pack("{s:s, s:s%}", "type", type, "data", (const char *)data, len);
	} else {
		b64 = base64_encode(data, len);
		obj = b64 == NULL ? NULL
				  : json_pack("{s:s, s:s, s:s}", "type", type, "data", b64,
					      "encoding", "base64");
	}
	if (obj == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	return append_event(out, fmt, type, obj, err);
}

int api_events_output(struct buf *out, enum api_events_format fmt, const char *type,
		      struct api_utf8_carry *carry, const uint8_t *data, size_t len, bool final,
		      struct ember_error **err)
{
	_cleanup_free_ uint8_t *all = malloc(carry->len + len + 1);
	size_t n = carry->len + len, tail;

	if (all == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	memcpy(all, carry->bytes, carry->len);
	if (len > 0)
		memcpy(all + carry->len, data, len);
	carry->len = 0;
	tail = final ? 0 : api_utf8_incomplete_tail(all, n);
	/* A held-back tail only makes sense after text: after invalid bytes all goes as base64. */
	if (tail > 0 && !utf8_valid_text(all, n - tail))
		tail = 0;
	memcpy(carry->bytes, all + n - tail, tail);
	carry->len = tail;
	if (n - tail == 0)
		return 0;
	return output_event(out, fmt, type, all, n - tail, err);
}
