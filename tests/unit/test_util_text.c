/* Unit tests for UTF-8 validation, base64 and hex (src/util/text.c, src/util/hex.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/hex.h"
#include "util/jsonutil.h"
#include "util/text.h"

static void utf8_accepts_text_and_rejects_invalid_sequences(void **state)
{
	(void)state;
	assert_true(utf8_valid_text((const uint8_t *)"hello \xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\xa5",
				    17));
	assert_false(utf8_valid_text((const uint8_t *)"\xff", 1));
	assert_false(utf8_valid_text((const uint8_t *)"\xc0\xaf", 2));         /* overlong */
	assert_false(utf8_valid_text((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
	assert_false(utf8_valid_text((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
	assert_false(utf8_valid_text((const uint8_t *)"\xe2\x82", 2));         /* truncated */
	assert_false(utf8_valid_text((const uint8_t *)"a\0b", 3));             /* NUL */
	assert_true(utf8_valid_text((const uint8_t *)"", 0));
}

static void log_escape_neutralises_controls_and_keeps_text(void **state)
{
	char out[256];

	(void)state;
	text_escape_log("a\x1b[2J\\b\"c\r\nd \xc3\xa9", out, sizeof(out));
	assert_string_equal(out, "a\\x1b[2J\\\\b\\\"c\\x0d\\x0ad \xc3\xa9");
	/* U+2028, a C1 control (U+009B, CSI) and bytes of invalid or split UTF-8 */
	text_escape_log("x\xe2\x80\xa8y\xc2\x9bz\xff\xe2\x82", out, sizeof(out));
	assert_string_equal(out, "x\\xe2\\x80\\xa8y\\xc2\\x9bz\\xff\\xe2\\x82");
	/* A full buffer ends before a whole escape, never inside one. */
	assert_int_equal(text_escape_log("ab\x01", out, 6), 2);
	assert_string_equal(out, "ab");
}

static void utf8_truncate_cuts_at_a_character_boundary(void **state)
{
	char s[] = "ab\xe2\x82\xac\xe2\x82\xac";
	char *lossy;

	(void)state;
	assert_int_equal(utf8_truncate(s, 6), 5); /* the second euro sign would not fit whole */
	assert_string_equal(s, "ab\xe2\x82\xac");
	assert_int_equal(utf8_truncate(s, 4), 2);
	assert_true(utf8_valid_text((const uint8_t *)s, strlen(s)));
	lossy = utf8_lossy("ok\xe2\x82 \xff!", 7);
	assert_string_equal(lossy, "ok\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd!");
	assert_true(utf8_valid_text((const uint8_t *)lossy, strlen(lossy)));
	free(lossy);
}

static void utf8_trim_cut_drops_a_split_sequence_only(void **state)
{
	const uint8_t *euros = (const uint8_t *)"ab\xe2\x82\xac\xe2\x82\xac";
	const uint8_t *emoji = (const uint8_t *)"a\xf0\x9f\x94\xa5";

	(void)state;
	assert_int_equal(utf8_trim_cut(euros, 8), 8); /* whole: kept */
	assert_int_equal(utf8_trim_cut(euros, 7), 5); /* "ab€" + 2 bytes of the next € */
	assert_int_equal(utf8_trim_cut(euros, 6), 5);
	assert_int_equal(utf8_trim_cut(euros, 5), 5);
	assert_int_equal(utf8_trim_cut(euros, 4), 2);
	assert_int_equal(utf8_trim_cut(emoji, 4), 1);
	assert_int_equal(utf8_trim_cut(emoji, 2), 1);
	assert_int_equal(utf8_trim_cut(emoji, 0), 0);
	/* Not text before the cut, or a byte that starts nothing: left alone (base64 follows). */
	assert_int_equal(utf8_trim_cut((const uint8_t *)"\xff\xe2\x82", 3), 3);
	assert_int_equal(utf8_trim_cut((const uint8_t *)"ab\xff", 3), 3);
	assert_int_equal(utf8_trim_cut((const uint8_t *)"ab\x82", 3), 3);
	assert_int_equal(utf8_trim_cut((const uint8_t *)"a\x00\xe2", 3), 3);
}

static void base64_roundtrips_all_lengths(void **state)
{
	uint8_t data[64];
	size_t n, i;

	(void)state;
	for (i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 37 + 1);
	for (n = 0; n <= sizeof(data); n++) {
		char *enc = base64_encode(data, n);
		uint8_t *dec = NULL;
		size_t dec_len = 0;

		assert_non_null(enc);
		assert_int_equal(strlen(enc), 4 * ((n + 2) / 3));
		assert_int_equal(base64_decode(enc, strlen(enc), &dec, &dec_len), 0);
		assert_int_equal(dec_len, n);
		assert_memory_equal(dec, data, n);
		free(enc);
		free(dec);
	}
	{
		char *enc = base64_encode((const uint8_t *)"foob", 4);

		assert_string_equal(enc, "Zm9vYg==");
		free(enc);
	}
}

static void base64_rejects_malformed(void **state)
{
	uint8_t *out = NULL;
	size_t len;

	(void)state;
	assert_int_equal(base64_decode("Zm9", 3, &out, &len), -1);
	assert_int_equal(base64_decode("Zm=v", 4, &out, &len), -1);
	assert_int_equal(base64_decode("Zg==Zg==", 8, &out, &len), -1);
	assert_int_equal(base64_decode("Z!==", 4, &out, &len), -1);
}

static void hex_decode_is_strict(void **state)
{
	uint8_t out[4];

	(void)state;
	assert_int_equal(hex_decode("00ff10", 6, out, sizeof(out)), 3);
	assert_int_equal(out[1], 0xff);
	assert_int_equal(hex_decode("0", 1, out, sizeof(out)), -1);
	assert_int_equal(hex_decode("FF", 2, out, sizeof(out)), -1);
	assert_int_equal(hex_decode("0011223344", 10, out, sizeof(out)), -1);
}

static void json_set_bytes_uses_base64_for_binary(void **state)
{
	json_t *obj = json_object();

	(void)state;
	assert_int_equal(json_set_bytes(obj, "stdout", (const uint8_t *)"hi\n", 3, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(obj, "stdout")), "hi\n");
	assert_string_equal(json_string_value(json_object_get(obj, "stdout_encoding")), "utf-8");
	assert_int_equal(json_set_bytes(obj, "stderr", (const uint8_t *)"\xff\x00", 2, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(obj, "stderr")), "/wA=");
	assert_string_equal(json_string_value(json_object_get(obj, "stderr_encoding")), "base64");
	json_decref(obj);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(utf8_accepts_text_and_rejects_invalid_sequences),
		cmocka_unit_test(base64_roundtrips_all_lengths),
		cmocka_unit_test(log_escape_neutralises_controls_and_keeps_text),
		cmocka_unit_test(utf8_truncate_cuts_at_a_character_boundary),
		cmocka_unit_test(utf8_trim_cut_drops_a_split_sequence_only),
		cmocka_unit_test(base64_rejects_malformed),
		cmocka_unit_test(hex_decode_is_strict),
		cmocka_unit_test(json_set_bytes_uses_base64_for_binary),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
