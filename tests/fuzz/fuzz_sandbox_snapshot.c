/* libFuzzer target: a snapshot's JSON file (snapshots.h); anything it accepts must encode and
 * parse back to the same snapshot. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/snapshots.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snapshot_info *info = calloc(2, sizeof(*info));
	size_t len;
	char *text;

	if (info == NULL || snapshot_info_decode((const char *)data, size, &info[0], NULL) < 0) {
		free(info);
		return 0;
	}
	text = snapshot_info_encode(&info[0], &len, NULL);
	if (text == NULL || snapshot_info_decode(text, len, &info[1], NULL) < 0 ||
	    memcmp(&info[0], &info[1], sizeof(info[0])) != 0)
		abort();
	free(text);
	free(info);
	return 0;
}
