/* libFuzzer target: arbitrary bytes through the streaming frame decoder, in chunks whose sizes
 * come from the input, and every decoded frame's payload through its message decoder. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/credit.h"
#include "proto/frame.h"
#include "proto/messages.h"

static void decode_payload(const struct proto_frame *f)
{
	const uint8_t *p = f->payload;
	size_t n = f->header.length;

	switch (f->header.type) {
	case PROTO_HELLO: {
		struct proto_hello m;

		proto_hello_decode(p, n, &m, NULL);
		break;
	}
	case PROTO_READY: {
		struct proto_ready m;

		proto_ready_decode(p, n, &m, NULL);
		break;
	}
	case PROTO_EXEC: {
		struct proto_exec m;

		if (proto_exec_decode(p, n, &m, NULL) == 0)
			proto_exec_release(&m);
		break;
	}
	case PROTO_EXIT: {
		struct proto_exit m;

		if (proto_exit_decode(p, n, &m, NULL) == 0)
			proto_exit_release(&m);
		break;
	}
	case PROTO_ERROR: {
		struct proto_error_msg m;

		proto_error_decode(p, n, &m, NULL);
		break;
	}
	case PROTO_CREDIT: {
		uint32_t bytes;

		proto_credit_decode(p, n, &bytes, NULL);
		break;
	}
	case PROTO_PS_REPLY: {
		struct proto_process *procs = NULL;
		size_t count;

		if (proto_ps_decode(p, n, &procs, &count, NULL) == 0)
			free(procs);
		break;
	}
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_decoder dec;
	struct proto_frame f;
	size_t off = 0;

	proto_decoder_init(&dec);
	while (off < size) {
		/* First byte of each round picks a chunk length: exercises every split point. */
		size_t chunk = (size_t)data[off] + 1;
		int ret;

		off++;
		if (chunk > size - off)
			chunk = size - off;
		if (proto_decoder_feed(&dec, data + off, chunk, NULL) < 0)
			break;
		off += chunk;
		while ((ret = proto_decoder_next(&dec, &f, NULL)) == 1) {
			if (f.header.length > PROTO_MAX_PAYLOAD)
				abort(); /* the decoder must never hand out an oversized frame */
			decode_payload(&f);
		}
		if (ret < 0)
			break;
	}
	proto_decoder_release(&dec);
	return 0;
}
