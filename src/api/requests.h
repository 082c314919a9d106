/* requests.h - decoding and validation of API request bodies (create, exec).
 * Used by the HTTP routes; pure functions over bytes, fuzzed by tests/fuzz/fuzz_api_requests.c.
 * Strict: exact types, hard ranges, unknown fields rejected, every error names its field. */
#ifndef EMBER_API_REQUESTS_H
#define EMBER_API_REQUESTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/messages.h"
#include "util/error.h"

#define API_STDIN_MAX (1024u * 1024u)
#define API_ENV_NAME_MAX 128

struct api_create_body {
	char language_pack[33];   /* "" when absent */
	unsigned vcpus;           /* 0 when absent */
	unsigned memory_mib;
	unsigned timeout_s;
	unsigned overlay_mib;
};

struct api_exec_body {
	json_t *root;             /* owns the strings below */
	const char *code;
	size_t code_len;
	const char *stdin_text;
	size_t stdin_len;
	bool has_stdin;
	uint32_t timeout_ms;      /* 0 when absent */
	char *env[PROTO_ENV_MAX + 1]; /* malloc'd "NAME=value" */
	size_t envc;
	bool has_max_output;
	uint64_t max_output_bytes;
};

/* An empty body means all defaults. */
int api_parse_create(const char *body, size_t len, struct api_create_body *out,
		     struct ember_error **err);
int api_parse_exec(const char *body, size_t len, struct api_exec_body *out,
		   struct ember_error **err);
void api_exec_body_release(struct api_exec_body *body);
/* Releases a body at the end of its scope (a zeroed or failed-to-parse body is fine). */
#define _cleanup_exec_body_ __attribute__((cleanup(api_exec_body_release)))

/* true when id has the exact shape of a sandbox id ("sb_" + 32 lowercase hex). */
bool api_valid_sandbox_id(const char *id);

#endif
