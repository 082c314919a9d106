/* libFuzzer target: arbitrary bytes as the image's modules.dep, through the parser and, when
 * it parses, the dependency ordering; checks the order it returns really respects every edge. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "guest/modules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guest_modules mods;
	size_t *order, *pos, i, j;

	if (guest_modules_parse((const char *)data, size, &mods, NULL) < 0)
		return 0;
	order = calloc(mods.count + 1, sizeof(*order));
	pos = calloc(mods.count + 1, sizeof(*pos));
	if (order != NULL && pos != NULL && guest_modules_order(&mods, order, NULL) == 0) {
		for (i = 0; i < mods.count; i++)
			pos[order[i]] = i;
		for (i = 0; i < mods.count; i++) {
			for (j = 0; j < mods.mods[i].ndeps; j++) {
				if (pos[mods.mods[i].deps[j]] >= pos[i])
					abort(); /* a dependency placed after its user */
			}
		}
	}
	free(order);
	free(pos);
	guest_modules_release(&mods);
	return 0;
}
