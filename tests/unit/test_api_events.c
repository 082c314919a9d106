/* Unit tests for the streamed exec's event text (src/api/events.c): ndjson and SSE framing, the
 * text-or-base64 rule per event, and UTF-8 characters kept whole across chunks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "api/events.h"

static void reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

static void assert_text(struct buf *b, const char *want)
{
	assert_int_equal(buf_terminate(b), 0);
	assert_string_equal((const char *)b->data, want);
	reset(b);
}

static void incomplete_tail_finds_cut_sequences_only(void **state)
{
	(void)state;
	assert_int_equal(api_utf8_incomplete_tail((const uint8_t *)"ab", 2), 0);
	assert_int_equal(api_utf8_incomplete_tail((const uint8_t *)"a\xc3", 2), 1);
	assert_int_equal(api_utf8_incomplete_tail((const uint8_t *)"a\xc3\xa9", 3), 0);
	assert_int_equal(api_utf8_incomplete_tail((const uint8_t *)"\xe2\x82", 2), 2);
	assert_int_equal(api_utf8_incomplete_tail((const uint8_t *)"\xf0\x9f\x98", 3), 3);
	assert_int_equal(api_utf8_incomplete_tail((const uint8_t *)"\xf0\x9f\x98\x80", 4), 0);
	assert_int_equal(api_utf8_incomplete_tail((const uint8_t *)"\xff", 1), 0);
	assert_int_equal(api_utf8_incomplete_tail((const uint8_t *)"\x80\x80\x80", 3), 0);
	assert_int_equal(api_utf8_incomplete_tail(NULL, 0), 0);
}

static void a_character_cut_between_chunks_arrives_whole(void **state)
{
	struct api_utf8_carry carry = { .len = 0 };
	struct buf out = { 0 };

	(void)state;
	assert_int_equal(api_events_output(&out, API_EVENTS_NDJSON, "stdout", &carry,
					   (const uint8_t *)"a\xc3", 2, false, NULL), 0);
	assert_text(&out, "{\"type\":\"stdout\",\"data\":\"a\"}\n");
	assert_int_equal(carry.len, 1);
	assert_int_equal(api_events_output(&out, API_EVENTS_NDJSON, "stdout", &carry,
					   (const uint8_t *)"\xa9\n", 2, false, NULL), 0);
	assert_text(&out, "{\"type\":\"stdout\",\"data\":\"\xc3\xa9\\n\"}\n");
	assert_int_equal(carry.len, 0);
	/* only a partial character: no event yet */
	assert_int_equal(api_events_output(&out, API_EVENTS_NDJSON, "stdout", &carry,
					   (const uint8_t *)"\xe2\x82", 2, false, NULL), 0);
	assert_int_equal(out.len, 0);
	/* the end with the character still cut: its bytes, as base64 */
	assert_int_equal(api_events_output(&out, API_EVENTS_NDJSON, "stdout", &carry, NULL, 0, true,
					   NULL), 0);
	assert_text(&out, "{\"type\":\"stdout\",\"data\":\"4oI=\",\"encoding\":\"base64\"}\n");
	buf_release(&out);
}

static void binary_and_nul_are_base64_and_sse_names_the_event(void **state)
{
	struct api_utf8_carry carry = { .len = 0 };
	struct buf out = { 0 };
	json_t *exit = json_pack("{s:i}", "exit_code", 3);

	(void)state;
	assert_int_equal(api_events_output(&out, API_EVENTS_SSE, "stderr", &carry,
					   (const uint8_t *)"\x00\xff", 2, false, NULL), 0);
	assert_text(&out, "event: stderr\ndata: {\"type\":\"stderr\",\"data\":\"AP8=\","
			  "\"encoding\":\"base64\"}\n\n");
	/* invalid bytes before a cut character: all of it goes now, as base64 */
	assert_int_equal(api_events_output(&out, API_EVENTS_NDJSON, "stdout", &carry,
					   (const uint8_t *)"\xff\xc3", 2, false, NULL), 0);
	assert_text(&out, "{\"type\":\"stdout\",\"data\":\"/8M=\",\"encoding\":\"base64\"}\n");
	assert_int_equal(carry.len, 0);
	assert_int_equal(api_events_object(&out, API_EVENTS_NDJSON, "exit", exit, NULL), 0);
	assert_text(&out, "{\"type\":\"exit\",\"exit_code\":3}\n");
	assert_int_equal(api_events_object(&out, API_EVENTS_SSE, "exit", exit, NULL), 0);
	assert_text(&out, "event: exit\ndata: {\"type\":\"exit\",\"exit_code\":3}\n\n");
	json_decref(exit);
	buf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(incomplete_tail_finds_cut_sequences_only),
		cmocka_unit_test(a_character_cut_between_chunks_arrives_whole),
		cmocka_unit_test(binary_and_nul_are_base64_and_sse_names_the_event),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
