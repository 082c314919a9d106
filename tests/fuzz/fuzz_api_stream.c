/* libFuzzer target: the streamed JSON body (src/api/stream.c) must print exactly the object
 * jansson prints for the same bytes, whatever the bytes and the read sizes. Input: byte 0 picks
 * the split between the two members, byte 1 the read-size pattern, the rest is the data. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/stream.h"
#include "util/jsonutil.h"

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n + 1);

	if (d != NULL)
		memcpy(d, p, n);
	return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t split, got = 0, n, step;
	struct api_stream *s;
	json_t *expected, *parsed;
	char *text;

	if (size < 2)
		return 0;
	split = size > 2 ? data[0] % (size - 1) : 0;
	step = 1 + data[1] % 97;
	data += 2;
	size -= 2;
	if (split > size)
		split = size;
	expected = json_pack("{s:i}", "exit_code", (int)step);
	struct api_stream_bytes bytes[2] = {
		{ "stdout", dup_bytes(data, split), split },
		{ "stderr", dup_bytes(data + split, size - split), size - split },
	};
	if (expected == NULL || bytes[0].data == NULL || bytes[1].data == NULL ||
	    json_set_bytes(expected, "stdout", data, split, NULL) < 0 ||
	    json_set_bytes(expected, "stderr", data + split, size - split, NULL) < 0)
		abort();
	s = api_stream_object(json_pack("{s:i}", "exit_code", (int)step), bytes, 2, NULL);
	if (s == NULL)
		abort();
	text = malloc(api_stream_length(s) + 1);
	if (text == NULL)
		abort();
	while ((n = api_stream_read(s, got, text + got, step)) > 0)
		got += n;
	if (got != api_stream_length(s))
		abort(); /* the announced Content-Length must be exact */
	parsed = json_loadb(text, got, JSON_REJECT_DUPLICATES, NULL);
	if (parsed == NULL || !json_equal(parsed, expected))
		abort();
	json_decref(parsed);
	json_decref(expected);
	free(text);
	api_stream_free(s);
	return 0;
}
