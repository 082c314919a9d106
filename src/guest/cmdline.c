/* cmdline.c - kernel command line options for the guest. */
#include "guest/cmdline.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "guest/limits.h"

void guest_cmdline_defaults(struct guest_cmdline *opts)
{
	opts->overlay_mib = GUEST_OVERLAY_MIB_DEFAULT;
}

/* Strict decimal: digits only, no sign, no leading zeros, within [min, max]. */
static bool parse_uint(const char *s, size_t len, unsigned min, unsigned max, unsigned *out)
{
	unsigned long v = 0;
	size_t i;

	if (len == 0 || len > 10 || (len > 1 && s[0] == '0'))
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < min || v > max)
		return false;
	*out = (unsigned)v;
	return true;
}

static int apply_option(const char *tok, size_t len, struct guest_cmdline *opts,
			struct ember_error **err)
{
	const char *eq = memchr(tok, '=', len);
	size_t key_len = eq != NULL ? (size_t)(eq - tok) : len;
	const char *val = eq != NULL ? eq + 1 : NULL;
	size_t val_len = eq != NULL ? len - key_len - 1 : 0;

	/* Quotes only group; they are not part of the value. */
	if (val != NULL && val_len >= 2 && val[0] == '"' && val[val_len - 1] == '"') {
		val++;
		val_len -= 2;
	}
	if (key_len == strlen("emberd.overlay_mib") &&
	    memcmp(tok, "emberd.overlay_mib", key_len) == 0) {
		if (val == NULL || !parse_uint(val, val_len, GUEST_OVERLAY_MIB_MIN,
					       GUEST_OVERLAY_MIB_MAX, &opts->overlay_mib))
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "emberd.overlay_mib must be a number of MiB from %u "
					       "to %u", GUEST_OVERLAY_MIB_MIN, GUEST_OVERLAY_MIB_MAX);
		return 0;
	}
	return ember_error_set(err, EMBER_E_INVALID, 0, "unknown option `%.*s`",
			       (int)(key_len > 64 ? 64 : key_len), tok);
}

int guest_cmdline_parse(const char *text, size_t len, struct guest_cmdline *opts,
			struct ember_error **err)
{
	size_t i = 0;
	int ret = 0;

	while (i < len) {
		size_t start;
		bool quoted = false;

		while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n'))
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && (quoted || (text[i] != ' ' && text[i] != '\t' && text[i] != '\n'))) {
			if (text[i] == '"')
				quoted = !quoted;
			i++;
		}
		if (i - start > strlen("emberd.") && memcmp(text + start, "emberd.", 7) == 0) {
			if (apply_option(text + start, i - start, opts, err) < 0)
				ret = -1;
		}
	}
	return ret;
}
