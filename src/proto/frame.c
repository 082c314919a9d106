/* frame.c - header codec and the bounded streaming frame decoder. */
#include "proto/frame.h"

#include <stdlib.h>
#include <string.h>

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void proto_header_encode(uint8_t *out, const struct proto_header *header)
{
	put_be32(out, header->length);
	put_be32(out + 4, header->id);
	out[8] = header->type;
	out[9] = header->flags;
	out[10] = 0;
	out[11] = 0;
}

const char *proto_type_name(uint8_t type)
{
	static const char *const names[] = {
		[PROTO_HELLO] = "HELLO", [PROTO_READY] = "READY", [PROTO_EXEC] = "EXEC",
		[PROTO_STDIN] = "STDIN", [PROTO_STDOUT] = "STDOUT", [PROTO_STDERR] = "STDERR",
		[PROTO_EXIT] = "EXIT", [PROTO_CANCEL] = "CANCEL", [PROTO_PS] = "PS",
		[PROTO_PS_REPLY] = "PS_REPLY", [PROTO_ERROR] = "ERROR", [PROTO_PING] = "PING",
		[PROTO_PONG] = "PONG", [PROTO_CREDIT] = "CREDIT", [PROTO_FS] = "FS",
		[PROTO_FS_REPLY] = "FS_REPLY", [PROTO_DATA] = "DATA", [PROTO_STARTED] = "STARTED",
		[PROTO_SIGNAL] = "SIGNAL", [PROTO_CONTEXT] = "CONTEXT",
		[PROTO_CONTEXT_REPLY] = "CONTEXT_REPLY", [PROTO_SUSPEND] = "SUSPEND",
		[PROTO_SUSPENDED] = "SUSPENDED", [PROTO_RESUME] = "RESUME",
	};

	if (type == 0 || type > PROTO_TYPE_MAX)
		return "UNKNOWN";
	return names[type];
}

/* The largest payload each type may carry: data and control frames get what they need, no more. */
static uint32_t type_max_payload(uint8_t type)
{
	switch (type) {
	case PROTO_STDIN:
	case PROTO_STDOUT:
	case PROTO_STDERR:
	case PROTO_DATA:
		return PROTO_MAX_DATA_CHUNK;
	case PROTO_CANCEL:
	case PROTO_PS:
	case PROTO_SUSPEND:
	case PROTO_SUSPENDED:
		return 0;
	case PROTO_PING:
	case PROTO_PONG:
		return 64;
	case PROTO_CREDIT:
	case PROTO_SIGNAL:
		return 4;
	case PROTO_STARTED:
	case PROTO_CONTEXT_REPLY:
		return 64;
	case PROTO_HELLO:
	case PROTO_RESUME:
	case PROTO_READY:
	case PROTO_ERROR:
		return 4096;
	case PROTO_EXIT: /* a context's outcome: result, exception, rich results (ctxmsg.h) */
		return PROTO_MAX_PAYLOAD;
	default:
		return PROTO_MAX_PAYLOAD;
	}
}

int proto_header_decode(const uint8_t *in, struct proto_header *header, struct ember_error **err)
{
	struct proto_header h = {
		.length = get_be32(in),
		.id = get_be32(in + 4),
		.type = in[8],
		.flags = in[9],
	};

	if (in[10] != 0 || in[11] != 0)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0,
				       "frame header has non-zero reserved bytes");
	if (h.type == 0 || h.type > PROTO_TYPE_MAX)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "unknown frame type %u", h.type);
	if (h.flags != 0 && !((h.type == PROTO_STDIN || h.type == PROTO_DATA) && h.flags == PROTO_FLAG_FIN))
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "flags 0x%x not allowed on %s",
				       h.flags, proto_type_name(h.type));
	if (h.length > type_max_payload(h.type))
		return ember_error_set(err, EMBER_E_PROTOCOL, 0,
				       "%s frame of %u bytes exceeds its limit of %u",
				       proto_type_name(h.type), h.length, type_max_payload(h.type));
	if ((h.type == PROTO_HELLO || h.type == PROTO_READY || h.type == PROTO_SUSPEND ||
	     h.type == PROTO_SUSPENDED || h.type == PROTO_RESUME) && h.id != 0)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "%s frame must have id 0",
				       proto_type_name(h.type));
	*header = h;
	return 0;
}

void proto_decoder_init(struct proto_decoder *dec)
{
	memset(dec, 0, sizeof(*dec));
}

void proto_decoder_release(struct proto_decoder *dec)
{
	free(dec->buf);
	memset(dec, 0, sizeof(*dec));
}

size_t proto_decoder_pending(const struct proto_decoder *dec)
{
	return dec->len - dec->start;
}

/* How many bytes the frame now at dec->start needs in total, as far as is known. */
static size_t needed_bytes(const struct proto_decoder *dec)
{
	struct proto_header h;

	if (dec->len - dec->start < PROTO_HEADER_SIZE)
		return PROTO_HEADER_SIZE;
	if (proto_header_decode(dec->buf + dec->start, &h, NULL) < 0)
		return PROTO_HEADER_SIZE; /* next() reports it */
	return PROTO_HEADER_SIZE + h.length;
}

uint8_t *proto_decoder_space(struct proto_decoder *dec, size_t *avail, struct ember_error **err)
{
	size_t want = needed_bytes(dec);
	size_t have = dec->len - dec->start;
	size_t cap;
	uint8_t *nbuf;

	/* Slide unconsumed bytes to the front so the buffer never exceeds one frame's worth. */
	if (dec->start > 0) {
		memmove(dec->buf, dec->buf + dec->start, have);
		dec->start = 0;
		dec->len = have;
	}
	if (want <= have)
		want = have + 4096; /* a whole frame is buffered: room for what follows it */
	if (want < 4096)
		want = 4096; /* read in reasonable chunks even when frames are tiny */
	if (want > PROTO_HEADER_SIZE + PROTO_MAX_PAYLOAD)
		want = PROTO_HEADER_SIZE + PROTO_MAX_PAYLOAD;
	if (dec->cap < want) {
		cap = want;
		nbuf = realloc(dec->buf, cap);
		if (nbuf == NULL) {
			ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory for a frame");
			return NULL;
		}
		dec->buf = nbuf;
		dec->cap = cap;
	}
	if (dec->cap == dec->len) {
		/* Callers drain next() before reading more, so this only happens to a misuse. */
		ember_error_set(err, EMBER_E_INTERNAL, 0, "frame decoder is full");
		return NULL;
	}
	*avail = dec->cap - dec->len;
	return dec->buf + dec->len;
}

void proto_decoder_commit(struct proto_decoder *dec, size_t n)
{
	dec->len += n;
}

int proto_decoder_feed(struct proto_decoder *dec, const uint8_t *data, size_t n,
		       struct ember_error **err)
{
	while (n > 0) {
		size_t avail, chunk;
		uint8_t *space = proto_decoder_space(dec, &avail, err);

		if (space == NULL)
			return -1;
		chunk = n < avail ? n : avail;
		memcpy(space, data, chunk);
		proto_decoder_commit(dec, chunk);
		data += chunk;
		n -= chunk;
	}
	return 0;
}

int proto_decoder_next(struct proto_decoder *dec, struct proto_frame *frame,
		       struct ember_error **err)
{
	struct proto_header h;
	size_t have = dec->len - dec->start;

	if (dec->failed)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "stream already malformed");
	if (have < PROTO_HEADER_SIZE)
		return 0;
	if (proto_header_decode(dec->buf + dec->start, &h, err) < 0) {
		dec->failed = 1;
		return -1;
	}
	if (have - PROTO_HEADER_SIZE < h.length)
		return 0;
	frame->header = h;
	frame->payload = dec->buf + dec->start + PROTO_HEADER_SIZE;
	dec->start += PROTO_HEADER_SIZE + h.length;
	return 1;
}
