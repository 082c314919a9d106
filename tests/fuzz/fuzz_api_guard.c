/* libFuzzer target: the API guard's header checks (Host, Origin, Sec-Fetch-Site,
 * Authorization) and the log escaper that prints what it refused. The input is split at NUL
 * bytes into the four header values; an empty part is an absent header. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/guard.h"
#include "util/text.h"

#define FUZZ_TOKEN "fuzz-token-0123456789"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct api_guard guard;
	static int ready;
	const char *parts[4] = { NULL, NULL, NULL, NULL };
	struct ember_error *err = NULL;
	char *copy, *p, escaped[1024];
	size_t i, n = 0;

	if (!ready) {
		const char *origins[] = { "http://localhost:3000" };

		if (api_guard_init(&guard, "127.0.0.1:7777", origins, 1, NULL) < 0)
			abort();
		memcpy(guard.token, FUZZ_TOKEN, sizeof(FUZZ_TOKEN));
		ready = 1;
	}
	copy = malloc(size + 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	for (p = copy, i = 0; i < 4 && p <= copy + size; i++) {
		parts[i] = *p != '\0' ? p : NULL;
		n = strlen(p);
		p += n + 1;
	}
	struct api_guard_request req = { .host = parts[0], .origin = parts[1],
					 .sec_fetch_site = parts[2], .authorization = parts[3] };
	if (api_guard_check(&guard, &req, &err) == 0) {
		/* Allowed: then the token was right and no browser signal was foreign. */
		if (req.authorization == NULL || strstr(req.authorization, FUZZ_TOKEN) == NULL)
			abort();
	} else {
		text_escape_log(err->message, escaped, sizeof(escaped));
		for (i = 0; escaped[i] != '\0'; i++) {
			if ((unsigned char)escaped[i] < 0x20 || escaped[i] == 0x7f)
				abort(); /* nothing a terminal acts on reaches a log line */
		}
		ember_error_free(&err);
	}
	free(copy);
	return 0;
}
