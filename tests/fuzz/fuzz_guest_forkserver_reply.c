/* Fuzz target: the agent's parser of the fork server's reply (guest_forkserver_parse_reply). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "guest/forkserver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guest_forkserver_reply reply;
	struct ember_error *err = NULL;

	if (guest_forkserver_parse_reply((const char *)data, size, &reply, &err) == 0) {
		if (reply.errnum < 0 || reply.errnum > 4095 || reply.pid < 0 ||
		    strlen(reply.step) == 0 || strlen(reply.step) >= sizeof(reply.step))
			__builtin_trap();
	} else {
		ember_error_free(&err);
	}
	return 0;
}
