/* stream.c - a JSON body as a list of parts (literal text, bytes escaped as a JSON string's
 * content, bytes as base64), read in order through a cursor. Escaping follows jansson's
 * json_dumps: `"` `\` and \b \f \n \r \t get two characters, other bytes below 0x20 \u00XX,
 * everything else (UTF-8 included) passes through. */
#include "api/stream.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/jsonutil.h"
#include "util/text.h"

enum part_kind { PART_TEXT, PART_ESCAPED, PART_BASE64 };

struct part {
	enum part_kind kind;
	const uint8_t *data;    /* TEXT: points into owned text; else the caller's bytes */
	size_t len;
};

/* Two parts per byte member, plus the literal text between and around them. */
#define STREAM_MAX_BYTES 4
#define STREAM_MAX_PARTS (2 * STREAM_MAX_BYTES + 1)

struct api_stream {
	struct part parts[STREAM_MAX_PARTS];
	size_t nparts;
	char *texts[STREAM_MAX_PARTS];       /* owned literal texts */
	uint8_t *owned[STREAM_MAX_BYTES];    /* owned byte buffers */
	uint64_t length;
	/* the cursor */
	uint64_t pos;
	size_t part;
	size_t offset;                       /* input bytes of the current part consumed */
	char carry[8];                       /* an encoded unit that did not fit the last read */
	size_t carry_len, carry_off;
};

static size_t escaped_unit(uint8_t c, char *out)
{
	static const char hex[] = "0123456789abcdef";

	switch (c) {
	case '"': memcpy(out, "\\\"", 2); return 2;
	case '\\': memcpy(out, "\\\\", 2); return 2;
	case '\b': memcpy(out, "\\b", 2); return 2;
	case '\f': memcpy(out, "\\f", 2); return 2;
	case '\n': memcpy(out, "\\n", 2); return 2;
	case '\r': memcpy(out, "\\r", 2); return 2;
	case '\t': memcpy(out, "\\t", 2); return 2;
	default:
		break;
	}
	if (c < 0x20) {
		memcpy(out, "\\u00", 4);
		out[4] = hex[c >> 4];
		out[5] = hex[c & 15];
		return 6;
	}
	out[0] = (char)c;
	return 1;
}

static uint64_t escaped_length(const uint8_t *data, size_t len)
{
	char unit[8];
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < len; i++)
		n += escaped_unit(data[i], unit);
	return n;
}

/* One base64 group of the input at off (3 bytes, or the 1-2 left, padded). */
static size_t base64_unit(const uint8_t *data, size_t len, size_t off, char *out, size_t *used)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = len - off < 3 ? len - off : 3;
	uint32_t v = (uint32_t)data[off] << 16;

	if (n > 1)
		v |= (uint32_t)data[off + 1] << 8;
	if (n > 2)
		v |= data[off + 2];
	out[0] = b64[(v >> 18) & 63];
	out[1] = b64[(v >> 12) & 63];
	out[2] = n > 1 ? b64[(v >> 6) & 63] : '=';
	out[3] = n > 2 ? b64[v & 63] : '=';
	*used = n;
	return 4;
}

static uint64_t part_length(const struct part *p)
{
	switch (p->kind) {
	case PART_TEXT: return p->len;
	case PART_ESCAPED: return escaped_length(p->data, p->len);
	case PART_BASE64: return 4 * (((uint64_t)p->len + 2) / 3);
	}
	return 0;
}

static int add_text(struct api_stream *s, char *text, struct ember_error **err)
{
	if (text == NULL)
		return ember_error_oom(err);
	s->texts[s->nparts] = text;
	s->parts[s->nparts++] = (struct part){ PART_TEXT, (const uint8_t *)text, strlen(text) };
	return 0;
}

/* "<sep>"<key>":"<bytes>","<key>_encoding":"<enc>" for one member. */
static int add_bytes(struct api_stream *s, const struct api_stream_bytes *b, bool first,
		     struct ember_error **err)
{
	bool text = utf8_valid_text(b->data, b->len);
	char *open = NULL;

	if (asprintf(&open, "%s\"%s\":\"", first ? "{" : "\",", b->key) < 0)
		open = NULL;
	if (add_text(s, open, err) < 0)
		return -1;
	s->parts[s->nparts++] = (struct part){ text ? PART_ESCAPED : PART_BASE64, b->data, b->len };
	if (asprintf(&open, "\",\"%s_encoding\":\"%s", b->key, text ? "utf-8" : "base64") < 0)
		open = NULL;
	return add_text(s, open, err);
}

/* The small members after the byte members: `","a":1,...}` (or `"}`). */
static int add_members(struct api_stream *s, json_t *members, struct ember_error **err)
{
	_cleanup_free_ char *dump = json_dumps(members, JSON_COMPACT);
	char *tail = NULL;

	if (dump == NULL)
		return ember_error_oom(err);
	/* dump is "{}" or "{...}": drop its brace and join it after the last byte member. */
	if (asprintf(&tail, "\"%s%s", strcmp(dump, "{}") == 0 ? "" : ",", dump + 1) < 0)
		tail = NULL;
	return add_text(s, tail, err);
}

struct api_stream *api_stream_object(json_t *members_taken, struct api_stream_bytes *bytes,
				     size_t nbytes, struct ember_error **err)
{
	_cleanup_json_ json_t *members = members_taken;
	struct api_stream *s = calloc(1, sizeof(*s));
	size_t i;

	if (s == NULL) {
		ember_error_oom(err);
		return NULL;
	}
	for (i = 0; i < nbytes && i < STREAM_MAX_BYTES; i++)
		s->owned[i] = steal_pointer(&bytes[i].data);
	if (nbytes == 0 || nbytes > STREAM_MAX_BYTES || members == NULL) {
		ember_error_set(err, EMBER_E_INTERNAL, 0, "stream: 1 to %d byte members",
				STREAM_MAX_BYTES);
		api_stream_free(s);
		return NULL;
	}
	for (i = 0; i < nbytes; i++) {
		struct api_stream_bytes b = { bytes[i].key, s->owned[i], bytes[i].len };

		if (add_bytes(s, &b, i == 0, err) < 0)
			break;
	}
	if (i < nbytes || add_members(s, members, err) < 0) {
		api_stream_free(s);
		return NULL;
	}
	for (i = 0; i < s->nparts; i++)
		s->length += part_length(&s->parts[i]);
	return s;
}

uint64_t api_stream_length(const struct api_stream *s)
{
	return s->length;
}

/* The next encoded unit of the current part into unit[] (advancing the cursor); 0 at the end
 * of the body. */
static size_t next_unit(struct api_stream *s, char *unit)
{
	while (s->part < s->nparts) {
		const struct part *p = &s->parts[s->part];
		size_t used = 1, n;

		if (s->offset == p->len) {
			s->part++;
			s->offset = 0;
			continue;
		}
		if (p->kind == PART_TEXT) {
			n = p->len - s->offset < 8 ? p->len - s->offset : 8;
			memcpy(unit, p->data + s->offset, n);
			used = n;
		} else if (p->kind == PART_ESCAPED) {
			n = escaped_unit(p->data[s->offset], unit);
		} else {
			n = base64_unit(p->data, p->len, s->offset, unit, &used);
		}
		s->offset += used;
		return n;
	}
	return 0;
}

/* Encodes straight into buf while whole units fit (the common case: no carry). */
static size_t fill_direct(struct api_stream *s, char *buf, size_t max)
{
	size_t out = 0, used;

	while (s->part < s->nparts && s->carry_off == s->carry_len) {
		const struct part *p = &s->parts[s->part];

		if (s->offset == p->len) {
			s->part++;
			s->offset = 0;
			continue;
		}
		if (p->kind == PART_TEXT) {
			size_t n = p->len - s->offset < max - out ? p->len - s->offset : max - out;

			memcpy(buf + out, p->data + s->offset, n);
			s->offset += n;
			out += n;
		} else if (p->kind == PART_ESCAPED) {
			while (s->offset < p->len && max - out >= 6)
				out += escaped_unit(p->data[s->offset++], buf + out);
		} else {
			while (s->offset < p->len && max - out >= 4) {
				out += base64_unit(p->data, p->len, s->offset, buf + out, &used);
				s->offset += used;
			}
		}
		if (s->offset < p->len)
			break; /* buf is (nearly) full: the rest goes through the carry */
	}
	return out;
}

size_t api_stream_read(struct api_stream *s, uint64_t pos, char *buf, size_t max)
{
	size_t out = 0, n;

	if (pos != s->pos)
		return 0; /* out of order: the library never does this; end the body */
	while (out < max) {
		if (s->carry_off < s->carry_len) {
			n = s->carry_len - s->carry_off < max - out ? s->carry_len - s->carry_off
								    : max - out;
			memcpy(buf + out, s->carry + s->carry_off, n);
			s->carry_off += n;
			out += n;
			continue;
		}
		out += fill_direct(s, buf + out, max - out);
		if (out == max)
			break;
		/* Less room than one unit: encode it aside and hand it out piece by piece. */
		s->carry_len = next_unit(s, s->carry);
		s->carry_off = 0;
		if (s->carry_len == 0)
			break;
	}
	s->pos += out;
	return out;
}

void api_stream_free(struct api_stream *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < STREAM_MAX_PARTS; i++)
		free(s->texts[i]);
	for (i = 0; i < STREAM_MAX_BYTES; i++)
		free(s->owned[i]);
	free(s);
}
