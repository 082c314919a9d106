/* Unit tests for SHA-256 (src/util/sha256.c): the FIPS 180-4 example vectors (NIST CSRC "SHA-256"
 * examples and the FIPS 180-2 appendix), fed whole and in awkward pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/sha256.h"

static void digest_of(const void *data, size_t len, size_t piece, char out[65])
{
	struct sha256_ctx ctx;
	const uint8_t *p = data;
	size_t done = 0;

	sha256_init(&ctx);
	while (done < len) {
		size_t n = len - done < piece ? len - done : piece;

		sha256_update(&ctx, p + done, n);
		done += n;
	}
	sha256_final_hex(&ctx, out);
}

static void fips_180_vectors(void **state)
{
	static const char two_blocks[] =
		"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	char hex[65];
	size_t piece;

	(void)state;
	digest_of("", 0, 1, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	for (piece = 1; piece <= 3; piece++) {
		digest_of("abc", 3, piece, hex);
		assert_string_equal(hex,
				    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	}
	for (piece = 1; piece <= 64; piece += 7) {
		digest_of(two_blocks, strlen(two_blocks), piece, hex);
		assert_string_equal(hex,
				    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	}
}

static void one_million_a(void **state)
{
	size_t len = 1000000;
	char *a = malloc(len);
	char hex[65];

	(void)state;
	assert_non_null(a);
	memset(a, 'a', len);
	digest_of(a, len, 65536, hex);
	assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	digest_of(a, len, 999, hex);
	assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(a);
}

static void lengths_around_the_padding_boundary(void **state)
{
	/* 55, 56 and 64 bytes put the length in the same block, force a second one, or fill one:
	 * checked against sha256sum. */
	char buf[64], hex[65];

	(void)state;
	memset(buf, 'x', sizeof(buf));
	digest_of(buf, 55, 55, hex);
	assert_string_equal(hex, "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072");
	digest_of(buf, 56, 13, hex);
	assert_string_equal(hex, "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e");
	digest_of(buf, 64, 64, hex);
	assert_string_equal(hex, "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fips_180_vectors),
		cmocka_unit_test(one_million_a),
		cmocka_unit_test(lengths_around_the_padding_boundary),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
