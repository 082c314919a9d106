/* libFuzzer target: packs.json parser. */
#include <stddef.h>
#include <stdint.h>

#include "sandbox/catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct catalog cat;

	if (catalog_parse("/images", (const char *)data, size, &cat, NULL) == 0)
		catalog_release(&cat);
	return 0;
}
