/* libFuzzer target: the first byte picks a message decoder, the rest is its JSON payload. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/messages.h"

static bool same_mounts(const struct proto_hello_mounts *a, const struct proto_hello_mounts *b)
{
	size_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (a->m[i].fs != b->m[i].fs || a->m[i].readonly != b->m[i].readonly ||
		    strcmp(a->m[i].source, b->m[i].source) != 0 ||
		    strcmp(a->m[i].path, b->m[i].path) != 0)
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 7) {
	case 0: {
		struct proto_hello m;

		if (proto_hello_decode(data + 1, size - 1, &m, NULL) == 0) {
			/* What was accepted (`net` and `mounts` too) must encode and decode to the same. */
			size_t len;
			char *text = proto_hello_encode(&m, &len, NULL);
			struct proto_hello again;

			if (text == NULL || proto_hello_decode((uint8_t *)text, len, &again, NULL) < 0 ||
			    again.net.present != m.net.present ||
			    (m.net.present && (again.net.address != m.net.address ||
					       again.net.prefix != m.net.prefix ||
					       again.net.gateway != m.net.gateway ||
					       again.net.dns != m.net.dns ||
					       memcmp(again.net.mac, m.net.mac, 6) != 0)) ||
			    !same_mounts(&again.mounts, &m.mounts))
				abort();
			free(text);
		}
		break;
	}
	case 1: {
		struct proto_ready m;

		proto_ready_decode(data + 1, size - 1, &m, NULL);
		break;
	}
	case 2: {
		struct proto_exec m;

		if (proto_exec_decode(data + 1, size - 1, &m, NULL) == 0) {
			/* Re-encoding what was accepted must work and decode to the same. */
			size_t len;
			char *text = proto_exec_encode(&m, &len, NULL);
			struct proto_exec again;

			if (text == NULL || proto_exec_decode((uint8_t *)text, len, &again, NULL) < 0)
				abort();
			proto_exec_release(&again);
			free(text);
			proto_exec_release(&m);
		}
		break;
	}
	case 3: {
		struct proto_exit m;

		if (proto_exit_decode(data + 1, size - 1, &m, NULL) == 0)
			proto_exit_release(&m);
		break;
	}
	case 4: {
		struct proto_error_msg m;

		proto_error_decode(data + 1, size - 1, &m, NULL);
		break;
	}
	case 5: {
		struct proto_started m;

		proto_started_decode(data + 1, size - 1, &m, NULL);
		break;
	}
	default: {
		struct proto_process *procs = NULL;
		size_t count;

		if (proto_ps_decode(data + 1, size - 1, &procs, &count, NULL) == 0)
			free(procs);
		break;
	}
	}
	return 0;
}
