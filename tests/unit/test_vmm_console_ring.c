/* Unit tests for the console ring (src/vmm/console_ring.c): the newest bytes survive any
 * sequence of appends, every tail size comes out in order, and the counter counts it all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/console_ring.h"

#define RING 64

/* Byte i of the stream every test writes: a pattern with no period shorter than 251. */
static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i % 251);
}

static void append_pattern(struct console_ring *ring, uint64_t *written, size_t len)
{
	uint8_t buf[4 * RING];
	size_t i;

	assert_true(len <= sizeof(buf));
	for (i = 0; i < len; i++)
		buf[i] = pattern(*written + i);
	console_ring_append(ring, buf, len);
	*written += len;
}

/* Every tail size 0..RING+1 holds exactly the newest bytes of the stream, oldest first. */
static void assert_tails(const struct console_ring *ring, uint64_t written)
{
	uint64_t kept = written < RING ? written : RING;
	uint8_t out[RING + 2];
	size_t size, i, n;

	for (size = 0; size <= RING + 1; size++) {
		memset(out, 0xee, sizeof(out));
		n = console_ring_tail(ring, out, size);
		assert_int_equal(n, size < kept ? size : kept);
		for (i = 0; i < n; i++)
			assert_int_equal(out[i], pattern(written - n + i));
		assert_int_equal(out[n], 0xee); /* nothing past what it said */
	}
	assert_true(ring->total == written);
}

static void empty_ring_has_no_tail(void **state)
{
	struct console_ring ring;

	(void)state;
	assert_int_equal(console_ring_init(&ring, RING), 0);
	assert_tails(&ring, 0);
	console_ring_release(&ring);
	assert_int_equal(console_ring_init(&ring, 0), -1);
}

static void newest_bytes_survive_wrap_around_at_every_offset(void **state)
{
	struct console_ring ring;
	uint64_t written = 0;
	size_t step;

	(void)state;
	/* Appends of every length from 1 to 3 rings, so writes start and end at every offset and
	 * wrap zero, one or more times. */
	assert_int_equal(console_ring_init(&ring, RING), 0);
	for (step = 1; step <= 3 * RING; step++) {
		append_pattern(&ring, &written, step);
		assert_tails(&ring, written);
	}
	console_ring_release(&ring);
}

static void partial_fill_keeps_everything(void **state)
{
	struct console_ring ring;
	uint64_t written = 0;

	(void)state;
	assert_int_equal(console_ring_init(&ring, RING), 0);
	append_pattern(&ring, &written, 10);
	assert_tails(&ring, written);
	append_pattern(&ring, &written, RING - 10);   /* exactly full */
	assert_tails(&ring, written);
	append_pattern(&ring, &written, 1);           /* one over */
	assert_tails(&ring, written);
	console_ring_release(&ring);
}

static void space_and_commit_write_in_place(void **state)
{
	struct console_ring ring;
	struct iovec iov[2];
	uint64_t written = 0;
	size_t k, i;
	int n;

	(void)state;
	assert_int_equal(console_ring_init(&ring, RING), 0);
	append_pattern(&ring, &written, RING - 5);
	/* 12 bytes from offset RING-5: 5 at the end, 7 at the start. */
	n = console_ring_space(&ring, 12, iov);
	assert_int_equal(n, 2);
	assert_int_equal(iov[0].iov_len, 5);
	assert_int_equal(iov[1].iov_len, 7);
	for (k = 0, i = 0; i < (size_t)n; i++) {
		uint8_t *p = iov[i].iov_base;
		size_t j;

		for (j = 0; j < iov[i].iov_len; j++)
			p[j] = pattern(written + k++);
	}
	console_ring_commit(&ring, 12);
	written += 12;
	assert_tails(&ring, written);
	/* A request larger than the ring is clamped to it. */
	n = console_ring_space(&ring, 10 * RING, iov);
	assert_int_equal(iov[0].iov_len + (n == 2 ? iov[1].iov_len : 0), RING);
	console_ring_release(&ring);
}

static void counter_counts_bytes_the_ring_dropped(void **state)
{
	struct console_ring ring;
	uint8_t big[1000];
	uint64_t written = 0;
	size_t i;

	(void)state;
	assert_int_equal(console_ring_init(&ring, RING), 0);
	for (i = 0; i < 1000; i++) {
		uint64_t before = written;

		append_pattern(&ring, &written, 100);
		assert_true(ring.total == before + 100);
	}
	assert_tails(&ring, written);
	/* One append much larger than the ring keeps only its end. */
	for (i = 0; i < sizeof(big); i++)
		big[i] = pattern(written + i);
	console_ring_append(&ring, big, sizeof(big));
	written += sizeof(big);
	assert_tails(&ring, written);
	console_ring_release(&ring);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(empty_ring_has_no_tail),
		cmocka_unit_test(newest_bytes_survive_wrap_around_at_every_offset),
		cmocka_unit_test(partial_fill_keeps_everything),
		cmocka_unit_test(space_and_commit_write_in_place),
		cmocka_unit_test(counter_counts_bytes_the_ring_dropped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
