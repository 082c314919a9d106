/* libFuzzer target: the sandbox.json re-attach record parser; anything it accepts must encode
 * and parse back to the same record. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sandbox_record rec, again;
	size_t len;
	char *text;

	if (sandbox_record_parse((const char *)data, size, &rec, NULL) < 0)
		return 0;
	text = sandbox_record_encode(&rec, &len, NULL);
	if (text == NULL || sandbox_record_parse(text, len, &again, NULL) < 0 ||
	    memcmp(&rec, &again, sizeof(rec)) != 0)
		abort();
	free(text);
	return 0;
}
