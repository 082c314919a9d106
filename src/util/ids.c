/* ids.c - random identifiers. */
#include "util/ids.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "util/hex.h"

int id_generate(const char *prefix, char *out, size_t size, struct ember_error **err)
{
	uint8_t raw[ID_RANDOM_BYTES];
	char hex[2 * ID_RANDOM_BYTES + 1];
	size_t got = 0;

	while (got < sizeof(raw)) {
		ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return ember_error_sys(err, "getrandom");
		}
		got += (size_t)n;
	}
	hex_encode(raw, sizeof(raw), hex);
	if ((size_t)snprintf(out, size, "%s%s", prefix, hex) >= size)
		return ember_error_set(err, EMBER_E_INTERNAL, 0, "id buffer too small");
	return 0;
}
