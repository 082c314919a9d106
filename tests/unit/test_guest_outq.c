/* Unit tests for the bounded outgoing frame queue (src/guest/outq.c). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest/outq.h"
#include "proto/frame.h"

static void frames_come_out_whole_and_in_order(void **state)
{
	struct guest_outq q;
	struct proto_decoder dec;
	struct proto_frame f;
	uint8_t buf[4096];
	int fds[2];
	ssize_t n;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	guest_outq_init(&q, 1 << 20);
	assert_int_equal(guest_outq_push(&q, PROTO_STDOUT, 0, 7, "hello", 5, NULL), 0);
	assert_int_equal(guest_outq_push(&q, PROTO_EXIT, 0, 7, "{}", 2, NULL), 0);
	assert_int_equal(guest_outq_push(&q, PROTO_PONG, 0, 8, NULL, 0, NULL), 0);
	assert_int_equal(guest_outq_bytes(&q), 3 * PROTO_HEADER_SIZE + 7);
	assert_int_equal(guest_outq_flush(&q, fds[1], NULL), 0);
	assert_int_equal(guest_outq_bytes(&q), 0);
	n = read(fds[0], buf, sizeof(buf));
	assert_int_equal(n, 3 * PROTO_HEADER_SIZE + 7);
	proto_decoder_init(&dec);
	assert_int_equal(proto_decoder_feed(&dec, buf, (size_t)n, NULL), 0);
	assert_int_equal(proto_decoder_next(&dec, &f, NULL), 1);
	assert_int_equal(f.header.type, PROTO_STDOUT);
	assert_int_equal(f.header.id, 7);
	assert_memory_equal(f.payload, "hello", 5);
	assert_int_equal(proto_decoder_next(&dec, &f, NULL), 1);
	assert_int_equal(f.header.type, PROTO_EXIT);
	assert_int_equal(proto_decoder_next(&dec, &f, NULL), 1);
	assert_int_equal(f.header.type, PROTO_PONG);
	assert_int_equal(f.header.length, 0);
	assert_int_equal(proto_decoder_next(&dec, &f, NULL), 0);
	proto_decoder_release(&dec);
	guest_outq_release(&q);
	close(fds[0]);
	close(fds[1]);
}

static void push_beyond_cap_fails_without_queueing(void **state)
{
	struct ember_error *err = NULL;
	struct guest_outq q;
	uint8_t data[100] = { 0 };

	(void)state;
	guest_outq_init(&q, 2 * (PROTO_HEADER_SIZE + 100));
	assert_int_equal(guest_outq_push(&q, PROTO_STDOUT, 0, 1, data, 100, NULL), 0);
	assert_int_equal(guest_outq_push(&q, PROTO_STDOUT, 0, 1, data, 100, NULL), 0);
	assert_int_equal(guest_outq_push(&q, PROTO_STDOUT, 0, 1, data, 1, &err), -1);
	assert_int_equal(err->kind, EMBER_E_CAPACITY);
	assert_int_equal(guest_outq_bytes(&q), 2 * (PROTO_HEADER_SIZE + 100));
	ember_error_free(&err);
	guest_outq_release(&q);
}

static void flush_to_a_full_pipe_keeps_the_rest_and_resumes_mid_frame(void **state)
{
	struct guest_outq q;
	size_t total = 0, size = 60000, frames = 8, got = 0;
	uint8_t *chunk = malloc(size), *all = malloc(frames * (size + PROTO_HEADER_SIZE));
	int fds[2];
	size_t i;

	(void)state;
	assert_int_equal(pipe2(fds, O_NONBLOCK), 0);
	guest_outq_init(&q, 1 << 20);
	for (i = 0; i < frames; i++) {
		memset(chunk, 'a' + (int)i, size);
		assert_int_equal(guest_outq_push(&q, PROTO_STDOUT, 0, 1, chunk, size, NULL), 0);
		total += size + PROTO_HEADER_SIZE;
	}
	/* The pipe (64 KiB) takes only part: no error, the rest stays queued. */
	assert_int_equal(guest_outq_flush(&q, fds[1], NULL), 0);
	assert_true(guest_outq_bytes(&q) > 0);
	while (got < total) {
		ssize_t n = read(fds[0], all + got, total - got);

		if (n > 0)
			got += (size_t)n;
		assert_int_equal(guest_outq_flush(&q, fds[1], NULL), 0);
	}
	assert_int_equal(guest_outq_bytes(&q), 0);
	for (i = 0; i < frames; i++) {
		uint8_t *frame = all + i * (size + PROTO_HEADER_SIZE);

		assert_int_equal(frame[8], PROTO_STDOUT);
		assert_int_equal(frame[PROTO_HEADER_SIZE], 'a' + (int)i);
		assert_int_equal(frame[PROTO_HEADER_SIZE + size - 1], 'a' + (int)i);
	}
	guest_outq_release(&q);
	free(chunk);
	free(all);
	close(fds[0]);
	close(fds[1]);
}

static void flush_to_a_closed_peer_fails(void **state)
{
	struct ember_error *err = NULL;
	struct guest_outq q;
	int fds[2];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	close(fds[0]);
	guest_outq_init(&q, 1 << 20);
	assert_int_equal(guest_outq_push(&q, PROTO_PONG, 0, 1, "x", 1, NULL), 0);
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(guest_outq_flush(&q, fds[1], &err), -1);
	assert_int_equal(err->errno_value, EPIPE);
	ember_error_free(&err);
	guest_outq_release(&q);
	close(fds[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(frames_come_out_whole_and_in_order),
		cmocka_unit_test(push_beyond_cap_fails_without_queueing),
		cmocka_unit_test(flush_to_a_full_pipe_keeps_the_rest_and_resumes_mid_frame),
		cmocka_unit_test(flush_to_a_closed_peer_fails),
	};

	return cmocka_run_group_tests_name("guest_outq", tests, NULL, NULL);
}
