/* libFuzzer target: the meminfo parser behind --meminfo (src/sandbox/headroom.c); whatever it
 * accepts has MemAvailable <= MemTotal. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "sandbox/headroom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct headroom_sample s;

	if (headroom_parse_meminfo((const char *)data, size, &s, NULL) == 0 &&
	    s.available_mib > s.total_mib)
		abort();
	return 0;
}
