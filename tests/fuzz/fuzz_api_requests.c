/* libFuzzer target: the API request decoders (create, exec) and the sandbox id check. The first
 * byte picks the decoder. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/requests.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] % 3 == 0) {
		struct api_create_body body;

		api_parse_create((const char *)data + 1, size - 1, &body, NULL);
	} else if (data[0] % 3 == 1) {
		struct api_exec_body body;

		if (api_parse_exec((const char *)data + 1, size - 1, &body, NULL) == 0) {
			size_t i;

			/* Every accepted env entry is NAME=value with a non-empty name. */
			for (i = 0; i < body.envc; i++) {
				if (strchr(body.env[i], '=') == NULL || body.env[i][0] == '=')
					abort();
			}
			if (body.code == NULL || strlen(body.code) != body.code_len)
				abort();
			api_exec_body_release(&body);
		}
	} else {
		char id[64];
		size_t n = size - 1 < sizeof(id) - 1 ? size - 1 : sizeof(id) - 1;

		memcpy(id, data + 1, n);
		id[n] = '\0';
		api_valid_sandbox_id(id);
	}
	return 0;
}
