/* Unit tests for the streamed JSON body (src/api/stream.c): the same JSON as jansson for any
 * bytes, read in any piece sizes, with the exact length announced up front. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/stream.h"
#include "util/jsonutil.h"

/* Reads the whole stream in pieces of the given sizes (cycled). */
static char *read_all(struct api_stream *s, const size_t *pieces, size_t npieces, size_t *len)
{
	uint64_t total = api_stream_length(s);
	char *out = malloc(total + 1);
	size_t i = 0, n;

	assert_non_null(out);
	*len = 0;
	while ((n = api_stream_read(s, *len, out + *len, pieces[i++ % npieces])) > 0) {
		*len += n;
		assert_true(*len <= total);
	}
	assert_int_equal(*len, total);
	out[*len] = '\0';
	return out;
}

static void check(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	static const size_t pieces[][3] = { { 65536, 65536, 65536 }, { 1, 2, 3 }, { 5, 7, 4096 } };
	size_t p;

	for (p = 0; p < 3; p++) {
		json_t *expected = json_pack("{s:i, s:b}", "exit_code", 3, "timed_out", 0);
		json_t *members = json_deep_copy(expected), *got;
		struct api_stream_bytes bytes[2] = { { "stdout", malloc(alen + 1), alen },
						     { "stderr", malloc(blen + 1), blen } };
		struct api_stream *s;
		char *text;
		size_t len;

		memcpy(bytes[0].data, a, alen);
		memcpy(bytes[1].data, b, blen);
		assert_int_equal(json_set_bytes(expected, "stdout", a, alen, NULL), 0);
		assert_int_equal(json_set_bytes(expected, "stderr", b, blen, NULL), 0);
		s = api_stream_object(members, bytes, 2, NULL);
		assert_non_null(s);
		assert_null(bytes[0].data); /* taken */
		text = read_all(s, pieces[p], 3, &len);
		got = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
		if (got == NULL || !json_equal(got, expected))
			fail_msg("stream differs from jansson: %.300s", text);
		json_decref(got);
		json_decref(expected);
		free(text);
		api_stream_free(s);
	}
}

static void same_json_as_jansson_for_text_controls_and_binary(void **state)
{
	static const uint8_t tricky[] =
		"\"q\" \\ \b\f\n\r\t \x01\x1f\x7f \xc3\xa9 \xe2\x82\xac";
	uint8_t all[256];
	size_t i;

	(void)state;
	for (i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	check((const uint8_t *)"hello\n", 6, (const uint8_t *)"", 0);
	check(tricky, sizeof(tricky) - 1, (const uint8_t *)"x", 1);
	check(all + 1, 127, all, 256);                /* text with every control; binary */
	check((const uint8_t *)"a\0b", 3, (const uint8_t *)"\xff\xfe", 2); /* base64 both */
	check((const uint8_t *)"ab", 2, (const uint8_t *)"abc\x80", 4);   /* padding 1 and 0 */
}

static void a_large_control_stream_is_never_held_as_text(void **state)
{
	size_t len = 4u << 20, got = 0, n;
	uint8_t *ones = malloc(len);
	struct api_stream_bytes bytes[2] = { { "stdout", ones, len }, { "stderr", NULL, 0 } };
	struct api_stream *s;
	char buf[65536];

	(void)state;
	memset(ones, 1, len);
	s = api_stream_object(json_object(), bytes, 2, NULL);
	assert_non_null(s);
	/* {"stdout":"\u0001…","stdout_encoding":"utf-8","stderr":"","stderr_encoding":"utf-8"} */
	assert_int_equal(api_stream_length(s), 6 * (uint64_t)len + 11 +
			 strlen("\",\"stdout_encoding\":\"utf-8\",\"stderr\":\"") +
			 strlen("\",\"stderr_encoding\":\"utf-8\"}"));
	while ((n = api_stream_read(s, got, buf, sizeof(buf))) > 0)
		got += n;
	assert_int_equal(got, api_stream_length(s));
	/* an out-of-order read ends the body instead of producing wrong bytes */
	assert_int_equal(api_stream_read(s, 0, buf, sizeof(buf)), 0);
	api_stream_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(same_json_as_jansson_for_text_controls_and_binary),
		cmocka_unit_test(a_large_control_stream_is_never_held_as_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
