/* libFuzzer target: bytes as emberd's config file (cmd/emberd/config.c, libinih underneath),
 * applied through emberd's own option table (cmd/emberd/options.c) to a scratch options struct.
 * Whatever it accepts leaves settings inside their flags' bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "../../cmd/emberd/options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ember_error *err = NULL;
	struct options o;

	if (size > CONFIG_MAX_BYTES)
		return 0;
	if (options_load_config_text(&o, (const char *)data, size, &err) == 0) {
		if (o.api.nallow_origins > API_ALLOW_ORIGINS_MAX || o.manager.max_vcpus < 1 ||
		    o.manager.max_vcpus > 64 || o.config.nkeys > CONFIG_MAX_KEYS ||
		    o.config.nvalues > o.config.nkeys)
			abort();
	} else if (err == NULL || err->message[0] == '\0') {
		abort(); /* a failure always says why */
	}
	ember_error_free(&err);
	options_release(&o);
	return 0;
}
