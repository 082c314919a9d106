/* libFuzzer target: the E2B code interpreter's request decoders (POST /execute, POST /contexts)
 * and its /execute lines made from an exec's last event. The first byte picks which. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "e2b/interpreq.h"
#include "e2b/streamfmt.h"

static void fuzz_execute(const uint8_t *data, size_t size)
{
	struct e2b_execute_body body;

	if (e2b_parse_execute((const char *)data, size, &body, NULL) < 0)
		return;
	/* What is accepted is what interp.c relies on. */
	if (body.code == NULL || strlen(body.code) != body.code_len || body.code_len > E2B_CODE_MAX)
		abort();
	if (body.context_id != NULL && body.language != PROTO_LANG_NONE)
		abort();
	if (body.env_vars != NULL && (!json_is_object(body.env_vars) ||
				      json_object_size(body.env_vars) > E2B_ENV_VARS_MAX))
		abort();
	e2b_execute_body_release(&body);
}

static void fuzz_context(const uint8_t *data, size_t size)
{
	struct e2b_context_body body;

	if (e2b_parse_context_create((const char *)data, size, &body, NULL) < 0)
		return;
	if (body.cwd != NULL && body.cwd[0] == '\0')
		abort();
	e2b_context_body_release(&body);
}

/* Any object as an exit or error event's members: lines or an error, never a crash, and
 * every line it makes is one JSON object. */
static void fuzz_exit(const uint8_t *data, size_t size, const char *type)
{
	json_t *members = json_loadb((const char *)data, size, 0, NULL);
	struct buf out = { 0 };
	size_t start = 0, i;

	if (members == NULL)
		return;
	if (e2b_execute_events_object(&out, type, members, NULL) == 0) {
		for (i = 0; i < out.len; i++) {
			json_t *line;

			if (out.data[i] != '\n')
				continue;
			line = json_loadb((const char *)out.data + start, i - start, 0, NULL);
			if (!json_is_object(line))
				abort();
			json_decref(line);
			start = i + 1;
		}
		if (start != out.len)
			abort();
	}
	buf_release(&out);
	json_decref(members);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	switch (data[0] % 4) {
	case 0: fuzz_execute(data + 1, size - 1); break;
	case 1: fuzz_context(data + 1, size - 1); break;
	case 2: fuzz_exit(data + 1, size - 1, "exit"); break;
	default: fuzz_exit(data + 1, size - 1, "error"); break;
	}
	return 0;
}
