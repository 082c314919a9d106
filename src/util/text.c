/* text.c - UTF-8 checking and base64. */
#include "util/text.h"

#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (1-4; 1 for ASCII including NUL), or 0 when the
 * bytes there are not one (truncated, overlong, surrogate, > U+10FFFF); *cp gets its value. */
static size_t utf8_sequence(const uint8_t *s, size_t len, uint32_t *cp)
{
	uint8_t c = s[0];
	size_t n, k;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if ((c & 0xe0) == 0xc0) {
		n = 1;
		*cp = c & 0x1f;
	} else if ((c & 0xf0) == 0xe0) {
		n = 2;
		*cp = c & 0x0f;
	} else if ((c & 0xf8) == 0xf0) {
		n = 3;
		*cp = c & 0x07;
	} else {
		return 0;
	}
	if (len - 1 < n)
		return 0;
	for (k = 1; k <= n; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		*cp = (*cp << 6) | (s[k] & 0x3f);
	}
	if ((n == 1 && *cp < 0x80) || (n == 2 && *cp < 0x800) || (n == 3 && *cp < 0x10000) ||
	    *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
		return 0;
	return n + 1;
}

bool utf8_valid_text(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint32_t cp;
		size_t n = utf8_sequence(s + i, len - i, &cp);

		if (n == 0 || cp == 0)
			return false;
		i += n;
	}
	return true;
}

/* Code points a terminal may act on: C0 and C1 controls, DEL, and the line and paragraph
 * separators (which some JSON and log readers take as line ends). */
static bool is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029;
}

size_t text_escape_log(const char *in, char *out, size_t out_size)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *s = (const uint8_t *)in;
	size_t len = strlen(in), i = 0, o = 0;

	if (out_size == 0)
		return 0;
	while (i < len) {
		uint32_t cp;
		size_t n = utf8_sequence(s + i, len - i, &cp), k;
		bool escape = n == 0 || is_control(cp) || cp == '\\' || cp == '"';

		if (n == 0)
			n = 1; /* one byte of an invalid sequence at a time */
		if (o + (escape ? 4 * n : n) >= out_size)
			break; /* whole characters only: never half an escape or a sequence */
		for (k = 0; k < n; k++) {
			if (!escape) {
				out[o++] = (char)s[i + k];
			} else if (cp == '\\' || cp == '"') {
				out[o++] = '\\';
				out[o++] = (char)cp;
			} else {
				out[o++] = '\\';
				out[o++] = 'x';
				out[o++] = hex[s[i + k] >> 4];
				out[o++] = hex[s[i + k] & 15];
			}
		}
		i += n;
	}
	out[o] = '\0';
	return o;
}

size_t utf8_truncate(char *s, size_t max)
{
	const uint8_t *u = (const uint8_t *)s;
	size_t len = strlen(s), i = 0;

	while (i < len) {
		uint32_t cp;
		size_t n = utf8_sequence(u + i, len - i, &cp);

		if (n == 0)
			n = 1;
		if (i + n > max)
			break;
		i += n;
	}
	s[i] = '\0';
	return i;
}

size_t utf8_trim_cut(const uint8_t *s, size_t len)
{
	size_t k;

	if (utf8_valid_text(s, len))
		return len;
	for (k = 1; k <= 3 && k <= len; k++) {
		uint8_t lead = s[len - k];
		size_t need = lead >= 0xc2 && lead <= 0xdf   ? 2
			      : lead >= 0xe0 && lead <= 0xef ? 3
			      : lead >= 0xf0 && lead <= 0xf4 ? 4
							     : 0;

		if (lead >= 0x80 && lead < 0xc0)
			continue; /* a continuation byte: the lead is further back */
		if (need > k && utf8_valid_text(s, len - k))
			return len - k;
		break;
	}
	return len;
}

char *utf8_lossy(const char *in, size_t len)
{
	const uint8_t *s = (const uint8_t *)in;
	char *out = malloc(len * 3 + 1); /* each bad byte becomes U+FFFD (3 bytes) at most */
	size_t i = 0, o = 0;

	if (out == NULL)
		return NULL;
	while (i < len) {
		uint32_t cp;
		size_t n = utf8_sequence(s + i, len - i, &cp);

		if (n == 0 || cp == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, s + i, n);
		o += n;
		i += n;
	}
	out[o] = '\0';
	return out;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const uint8_t *in, size_t len)
{
	size_t out_len = 4 * ((len + 2) / 3);
	char *out = malloc(out_len + 1);
	size_t i, o = 0;

	if (out == NULL)
		return NULL;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return out;
}

static int b64_value(char c)
{
	const char *p = c != '\0' ? strchr(b64, c) : NULL;

	return p != NULL ? (int)(p - b64) : -1;
}

int base64_decode(const char *in, size_t len, uint8_t **out, size_t *out_len)
{
	uint8_t *buf;
	size_t i, o = 0;

	if (len % 4 != 0)
		return -1;
	buf = malloc(len / 4 * 3 + 1);
	if (buf == NULL)
		return -1;
	for (i = 0; i < len; i += 4) {
		int a = b64_value(in[i]), b = b64_value(in[i + 1]);
		int c = in[i + 2] == '=' ? -2 : b64_value(in[i + 2]);
		int d = in[i + 3] == '=' ? -2 : b64_value(in[i + 3]);
		bool last = i + 4 == len;

		if (a < 0 || b < 0 || c == -1 || d == -1 || (c == -2 && d != -2) ||
		    ((c == -2 || d == -2) && !last))
			goto bad;
		buf[o++] = (uint8_t)((a << 2) | (b >> 4));
		if (c >= 0)
			buf[o++] = (uint8_t)(((b & 15) << 4) | (c >> 2));
		if (d >= 0)
			buf[o++] = (uint8_t)(((c & 3) << 6) | d);
	}
	*out = buf;
	*out_len = o;
	return 0;
bad:
	free(buf);
	return -1;
}
