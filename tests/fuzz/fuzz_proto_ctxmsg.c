/* libFuzzer target: the context messages (src/proto/ctxmsg.c). The first byte picks the
 * decoder: CONTEXT, CONTEXT_REPLY, or an outcome as an interpreter writes it (the text after
 * "done ", which the guest agent parses) and as EXIT carries it. What decodes must re-encode and
 * decode to the same. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/ctxmsg.h"
#include "util/jsonutil.h"

static void outcome(const uint8_t *data, size_t size, bool with_restarted)
{
	struct proto_outcome o, again;
	json_t *root = NULL, *back;

	if (json_parse_object(data, size, &root, EMBER_E_PROTOCOL, NULL) < 0)
		return;
	if (proto_outcome_from_json(root, with_restarted, &o, NULL) == 0) {
		back = proto_outcome_to_json(&o, NULL);
		if (back == NULL || proto_outcome_from_json(back, true, &again, NULL) < 0 ||
		    again.nresults != o.nresults || again.has_error != o.has_error ||
		    (o.result == NULL) != (again.result == NULL))
			abort();
		proto_outcome_release(&again);
		json_decref(back);
		proto_outcome_release(&o);
	}
	json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0: {
		struct proto_context m, again;

		if (proto_context_decode(data + 1, size - 1, &m, NULL) == 0) {
			size_t len;
			char *text = proto_context_encode(&m, &len, NULL);

			if (text == NULL ||
			    proto_context_decode((uint8_t *)text, len, &again, NULL) < 0 ||
			    again.op != m.op || strcmp(again.id, m.id) != 0)
				abort();
			proto_context_release(&again);
			free(text);
			proto_context_release(&m);
		}
		break;
	}
	case 1: {
		int32_t pid;

		proto_context_reply_decode(data + 1, size - 1, &pid, NULL);
		break;
	}
	case 2:
		outcome(data + 1, size - 1, false);
		break;
	default:
		outcome(data + 1, size - 1, true);
		break;
	}
	return 0;
}
