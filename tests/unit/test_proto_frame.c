/* Unit tests for the frame codec and streaming decoder (src/proto/frame.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/frame.h"

static size_t put_frame(uint8_t *out, uint8_t type, uint8_t flags, uint32_t id,
			const void *payload, uint32_t len)
{
	struct proto_header h = { .length = len, .id = id, .type = type, .flags = flags };

	proto_header_encode(out, &h);
	if (len > 0)
		memcpy(out + PROTO_HEADER_SIZE, payload, len);
	return PROTO_HEADER_SIZE + len;
}

static void header_roundtrips_big_endian(void **state)
{
	uint8_t raw[PROTO_HEADER_SIZE];
	struct proto_header in = { .length = 0x0102, .id = 0x0a0b0c0d, .type = PROTO_STDIN,
				   .flags = PROTO_FLAG_FIN };
	struct proto_header out;

	(void)state;
	proto_header_encode(raw, &in);
	assert_int_equal(raw[0], 0);
	assert_int_equal(raw[2], 0x01);
	assert_int_equal(raw[3], 0x02);
	assert_int_equal(raw[4], 0x0a);
	assert_int_equal(raw[7], 0x0d);
	assert_int_equal(proto_header_decode(raw, &out, NULL), 0);
	assert_int_equal(out.length, in.length);
	assert_int_equal(out.id, in.id);
	assert_int_equal(out.type, in.type);
	assert_int_equal(out.flags, in.flags);
}

static void header_rejects_unknown_type_flags_reserved_and_oversize(void **state)
{
	uint8_t raw[PROTO_HEADER_SIZE];
	struct proto_header h = { .length = 4, .id = 1, .type = PROTO_EXEC };
	struct proto_header out;
	struct ember_error *err = NULL;

	(void)state;
	proto_header_encode(raw, &h);
	raw[8] = 0;
	assert_int_equal(proto_header_decode(raw, &out, &err), -1);
	assert_int_equal(err->kind, EMBER_E_PROTOCOL);
	ember_error_free(&err);
	raw[8] = PROTO_TYPE_MAX + 1;
	assert_int_equal(proto_header_decode(raw, &out, NULL), -1);

	proto_header_encode(raw, &h);
	raw[9] = PROTO_FLAG_FIN; /* FIN only on STDIN */
	assert_int_equal(proto_header_decode(raw, &out, NULL), -1);

	proto_header_encode(raw, &h);
	raw[11] = 1;
	assert_int_equal(proto_header_decode(raw, &out, NULL), -1);

	h.length = PROTO_MAX_PAYLOAD + 1;
	proto_header_encode(raw, &h);
	assert_int_equal(proto_header_decode(raw, &out, NULL), -1);

	h.type = PROTO_STDOUT;
	h.length = PROTO_MAX_DATA_CHUNK + 1;
	proto_header_encode(raw, &h);
	assert_int_equal(proto_header_decode(raw, &out, NULL), -1);

	h.type = PROTO_CANCEL;
	h.length = 1;
	proto_header_encode(raw, &h);
	assert_int_equal(proto_header_decode(raw, &out, NULL), -1);

	h.type = PROTO_HELLO;
	h.length = 2;
	h.id = 5; /* session frames carry id 0 */
	proto_header_encode(raw, &h);
	assert_int_equal(proto_header_decode(raw, &out, NULL), -1);
}

static void decoder_yields_frames_split_at_every_byte(void **state)
{
	uint8_t stream[256];
	size_t len = 0, i, frames = 0;
	struct proto_decoder dec;
	struct proto_frame f;

	(void)state;
	len += put_frame(stream + len, PROTO_STDOUT, 0, 7, "hello", 5);
	len += put_frame(stream + len, PROTO_CANCEL, 0, 7, NULL, 0);
	len += put_frame(stream + len, PROTO_STDIN, PROTO_FLAG_FIN, 9, "xy", 2);
	proto_decoder_init(&dec);
	for (i = 0; i < len; i++) {
		int ret;

		assert_int_equal(proto_decoder_feed(&dec, stream + i, 1, NULL), 0);
		while ((ret = proto_decoder_next(&dec, &f, NULL)) == 1) {
			frames++;
			if (frames == 1) {
				assert_int_equal(f.header.type, PROTO_STDOUT);
				assert_int_equal(f.header.id, 7);
				assert_memory_equal(f.payload, "hello", 5);
			} else if (frames == 2) {
				assert_int_equal(f.header.type, PROTO_CANCEL);
				assert_int_equal(f.header.length, 0);
			} else {
				assert_int_equal(f.header.flags, PROTO_FLAG_FIN);
				assert_memory_equal(f.payload, "xy", 2);
			}
		}
		assert_int_equal(ret, 0);
	}
	assert_int_equal(frames, 3);
	assert_int_equal(proto_decoder_pending(&dec), 0);
	proto_decoder_release(&dec);
}

static void decoder_reports_truncated_frame_as_pending(void **state)
{
	uint8_t stream[64];
	size_t len = put_frame(stream, PROTO_STDERR, 0, 3, "abcdef", 6);
	struct proto_decoder dec;
	struct proto_frame f;

	(void)state;
	proto_decoder_init(&dec);
	assert_int_equal(proto_decoder_feed(&dec, stream, len - 2, NULL), 0);
	assert_int_equal(proto_decoder_next(&dec, &f, NULL), 0);
	assert_int_equal(proto_decoder_pending(&dec), len - 2);
	proto_decoder_release(&dec);
}

static void decoder_rejects_garbage_and_stays_failed(void **state)
{
	uint8_t garbage[PROTO_HEADER_SIZE];
	uint8_t good[64];
	size_t good_len = put_frame(good, PROTO_PING, 0, 1, "x", 1);
	struct proto_decoder dec;
	struct proto_frame f;
	struct ember_error *err = NULL;

	(void)state;
	memset(garbage, 0xff, sizeof(garbage));
	proto_decoder_init(&dec);
	assert_int_equal(proto_decoder_feed(&dec, garbage, sizeof(garbage), NULL), 0);
	assert_int_equal(proto_decoder_next(&dec, &f, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->kind, EMBER_E_PROTOCOL);
	ember_error_free(&err);
	/* No resynchronisation: a later good frame does not revive the stream. */
	assert_int_equal(proto_decoder_feed(&dec, good, good_len, NULL), 0);
	assert_int_equal(proto_decoder_next(&dec, &f, NULL), -1);
	proto_decoder_release(&dec);
}

static void decoder_rejects_oversized_length_before_buffering(void **state)
{
	struct proto_header h = { .length = 0x7fffffff, .id = 1, .type = PROTO_EXEC };
	uint8_t raw[PROTO_HEADER_SIZE];
	struct proto_decoder dec;
	struct proto_frame f;

	(void)state;
	proto_header_encode(raw, &h);
	proto_decoder_init(&dec);
	assert_int_equal(proto_decoder_feed(&dec, raw, sizeof(raw), NULL), 0);
	assert_int_equal(proto_decoder_next(&dec, &f, NULL), -1);
	/* The decoder never grew towards the announced length. */
	assert_true(dec.cap <= PROTO_HEADER_SIZE + 8192);
	proto_decoder_release(&dec);
}

static void decoder_handles_maximal_frame(void **state)
{
	size_t len = PROTO_HEADER_SIZE + PROTO_MAX_PAYLOAD;
	uint8_t *stream = malloc(len);
	struct proto_decoder dec;
	struct proto_frame f;

	(void)state;
	assert_non_null(stream);
	memset(stream + PROTO_HEADER_SIZE, 'a', PROTO_MAX_PAYLOAD);
	put_frame(stream, PROTO_EXEC, 0, 2, stream + PROTO_HEADER_SIZE, PROTO_MAX_PAYLOAD);
	proto_decoder_init(&dec);
	assert_int_equal(proto_decoder_feed(&dec, stream, len, NULL), 0);
	assert_int_equal(proto_decoder_next(&dec, &f, NULL), 1);
	assert_int_equal(f.header.length, PROTO_MAX_PAYLOAD);
	assert_int_equal(f.payload[PROTO_MAX_PAYLOAD - 1], 'a');
	proto_decoder_release(&dec);
	free(stream);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(header_roundtrips_big_endian),
		cmocka_unit_test(header_rejects_unknown_type_flags_reserved_and_oversize),
		cmocka_unit_test(decoder_yields_frames_split_at_every_byte),
		cmocka_unit_test(decoder_reports_truncated_frame_as_pending),
		cmocka_unit_test(decoder_rejects_garbage_and_stays_failed),
		cmocka_unit_test(decoder_rejects_oversized_length_before_buffering),
		cmocka_unit_test(decoder_handles_maximal_frame),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
