/* libFuzzer target: the E2B face's Connect request decoding (src/e2b/connect.c) and envd's
 * process.Process messages on top of it (src/e2b/processreq.c). The first byte picks a unary
 * body or a stream envelope and the message decoder; the rest is the HTTP body. Whatever is
 * accepted is within the guest protocol's bounds; the Connect-Timeout-Ms and
 * Keepalive-Ping-Interval readers get the same bytes as a header value. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "e2b/connect.h"
#include "e2b/processreq.h"

static void check_start(const struct e2b_start_request *req)
{
	size_t i;

	if (req->argc < 1 || req->argc > PROTO_ARGV_MAX || req->argv[req->argc] != NULL ||
	    req->envc > PROTO_ENV_MAX)
		abort();
	for (i = 0; i < req->argc; i++) {
		if (req->argv[i][0] == '\0' || strlen(req->argv[i]) > PROTO_STRING_MAX)
			abort();
	}
	for (i = 0; i < req->envc; i++) {
		if (strchr(req->env[i], '=') == NULL || strlen(req->env[i]) > PROTO_STRING_MAX)
			abort();
	}
	if ((req->cwd != NULL && (req->cwd[0] == '\0' || strlen(req->cwd) > PROTO_STRING_MAX)) ||
	    (req->tag != NULL && strlen(req->tag) > PROCS_TAG_MAX))
		abort();
}

static void decode(json_t *msg, unsigned which)
{
	struct e2b_start_request start;
	struct e2b_process_selector sel;
	uint8_t *data = NULL;
	size_t len = 0;
	bool pty;
	int sig;

	switch (which % 4) {
	case 0:
		if (e2b_parse_start(msg, &start, NULL) == 0) {
			check_start(&start);
			e2b_start_request_release(&start);
		}
		break;
	case 1:
		if (e2b_parse_selector_of(msg, &sel, NULL) == 0 &&
		    strlen(sel.tag) > PROCS_TAG_MAX)
			abort();
		break;
	case 2:
		if (e2b_parse_send_input(msg, &sel, &data, &len, &pty, NULL) == 0 &&
		    (data == NULL || len > E2B_STDIN_MAX))
			abort();
		free(data);
		break;
	default:
		if (e2b_parse_send_signal(msg, &sel, &sig, NULL) == 0 && sig != 9 && sig != 15)
			abort();
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char header[16];
	json_t *msg = NULL;
	uint32_t ms;

	if (size < 1)
		return 0;
	if (e2b_connect_request(data + 1, size - 1, data[0] & 1, &msg, NULL) == 0) {
		if (!json_is_object(msg))
			abort();
		decode(msg, data[0] >> 1);
		json_decref(msg);
	}
	if (size - 1 < sizeof(header)) {
		memcpy(header, data + 1, size - 1);
		header[size - 1] = '\0';
		if (e2b_connect_timeout(header, &ms, NULL) == 0 && strlen(header) > 10)
			abort();
		if (e2b_connect_keepalive_s(header) > E2B_CONNECT_KEEPALIVE_MAX_S)
			abort();
	}
	return 0;
}
