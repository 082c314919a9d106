/* hex.c - strict lowercase hex. */
#include "util/hex.h"

void hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

long hex_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap)
{
	size_t i;

	if (in_len % 2 != 0 || in_len / 2 > out_cap)
		return -1;
	for (i = 0; i < in_len / 2; i++) {
		int hi = nibble(in[2 * i]);
		int lo = nibble(in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)((hi << 4) | lo);
	}
	return (long)(in_len / 2);
}
