/* connect.c - Connect protocol pieces: request message, envelopes, headers (see connect.h). */
#include "e2b/connect.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "util/cleanup.h"
#include "util/jsonutil.h"
#include "util/text.h"

bool e2b_connect_content_type_ok(const char *content_type, bool stream)
{
	const char *want = stream ? E2B_CONNECT_TYPE_STREAM : E2B_CONNECT_TYPE_UNARY;
	size_t n = strlen(want);
	const char *rest;

	if (content_type == NULL || strncasecmp(content_type, want, n) != 0)
		return false;
	rest = content_type + n;
	if (*rest == '\0')
		return true;
	if (*rest++ != ';')
		return false;
	while (*rest == ' ')
		rest++;
	return strcasecmp(rest, "charset=utf-8") == 0 || strcasecmp(rest, "charset=utf8") == 0;
}

int e2b_connect_request(const uint8_t *body, size_t len, bool stream, json_t **out,
			struct ember_error **err)
{
	uint32_t declared;

	*out = NULL;
	if (!stream) {
		if (len > E2B_CONNECT_MESSAGE_MAX)
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "request message of %zu bytes: at most %u", len,
					       E2B_CONNECT_MESSAGE_MAX);
		if (len == 0) {
			*out = json_object();
			return *out != NULL ? 0 : ember_error_oom(err);
		}
		return json_parse_object(body, len, out, EMBER_E_INVALID, err);
	}
	if (len < E2B_CONNECT_ENVELOPE_HEADER)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "a streaming call's body is one enveloped message "
				       "(5-byte header), got %zu bytes", len);
	if (body[0] & E2B_CONNECT_FLAG_COMPRESSED)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "compressed request messages are not supported");
	if (body[0] != 0)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "request envelope has flags 0x%02x: want 0", body[0]);
	declared = (uint32_t)body[1] << 24 | (uint32_t)body[2] << 16 | (uint32_t)body[3] << 8 |
		   (uint32_t)body[4];
	if (declared > E2B_CONNECT_MESSAGE_MAX)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "request message of %u bytes: at most %u", declared,
				       E2B_CONNECT_MESSAGE_MAX);
	if (declared != len - E2B_CONNECT_ENVELOPE_HEADER)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "request envelope declares %u bytes but %zu follow (a "
				       "server-streaming call sends exactly one message)",
				       declared, len - E2B_CONNECT_ENVELOPE_HEADER);
	if (declared == 0) {
		*out = json_object();
		return *out != NULL ? 0 : ember_error_oom(err);
	}
	return json_parse_object(body + E2B_CONNECT_ENVELOPE_HEADER, declared, out,
				 EMBER_E_INVALID, err);
}

int e2b_connect_frame(struct buf *out, uint8_t flags, json_t *msg, struct ember_error **err)
{
	_cleanup_free_ char *text = NULL;
	uint8_t header[E2B_CONNECT_ENVELOPE_HEADER];
	size_t len = 0;

	text = json_dump_compact(msg, &len, err);
	if (text == NULL)
		return -1;
	if (len > UINT32_MAX)
		return ember_error_set(err, EMBER_E_INTERNAL, 0, "response message too large");
	header[0] = flags;
	header[1] = (uint8_t)(len >> 24);
	header[2] = (uint8_t)(len >> 16);
	header[3] = (uint8_t)(len >> 8);
	header[4] = (uint8_t)len;
	if (buf_append(out, header, sizeof(header)) < 0 || buf_append(out, text, len) < 0)
		return ember_error_oom(err);
	return 0;
}

int e2b_connect_end(struct buf *out, const char *code, const char *message,
		    struct ember_error **err)
{
	_cleanup_json_ json_t *msg = NULL;
	_cleanup_free_ char *text = NULL;

	if (code == NULL) {
		msg = json_object();
	} else {
		text = utf8_lossy(message != NULL ? message : "", message != NULL ? strlen(message)
										    : 0);
		msg = text == NULL ? NULL
				   : json_pack("{s:{s:s, s:s}}", "error", "code", code, "message",
					       text);
	}
	if (msg == NULL)
		return ember_error_oom(err);
	return e2b_connect_frame(out, E2B_CONNECT_FLAG_END, msg, err);
}

int e2b_connect_timeout(const char *header, uint32_t *ms, struct ember_error **err)
{
	uint64_t v = 0;
	size_t i;

	*ms = 0;
	if (header == NULL)
		return 0;
	for (i = 0; header[i] != '\0'; i++) {
		if (header[i] < '0' || header[i] > '9' || i == 10)
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "Connect-Timeout-Ms must be 1 to 10 digits");
		v = v * 10 + (uint64_t)(header[i] - '0');
	}
	if (i == 0)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "Connect-Timeout-Ms must be 1 to 10 digits");
	*ms = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
	return 0;
}

unsigned e2b_connect_keepalive_s(const char *header)
{
	unsigned v = 0;
	size_t i;

	if (header == NULL)
		return 0;
	for (i = 0; header[i] != '\0'; i++) {
		if (header[i] < '0' || header[i] > '9' || i == 9)
			return 0;
		v = v * 10 + (unsigned)(header[i] - '0');
	}
	return v > E2B_CONNECT_KEEPALIVE_MAX_S ? E2B_CONNECT_KEEPALIVE_MAX_S : v;
}
