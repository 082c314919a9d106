/* processreq.h - decoding of envd's process.Process request messages (the SDK's
 * process/process.proto, proto3 JSON: camelCase names, bytes as base64, enums by name or number,
 * null as absent) into bounded C values.
 * Used by process.c after connect.c took the message off the wire; pure functions, unit-tested
 * and fuzzed (tests/fuzz/fuzz_e2b_connect.c). Strict on the fields it knows (types, ranges, the
 * guest protocol's bounds, every error naming its field); fields it does not know are ignored,
 * as envd's own decoder (connect-go's, DiscardUnknown) ignores them, so a newer SDK's extra
 * field does not break a call. Errors are EMBER_E_INVALID (invalid_argument). */
#ifndef EMBER_E2B_PROCESSREQ_H
#define EMBER_E2B_PROCESSREQ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/messages.h"
#include "sandbox/procs.h"
#include "util/error.h"

/* stdin bytes of one SendInput, as the native stdin route's cap (api/requests.h). */
#define E2B_STDIN_MAX (1024u * 1024u)

/* ProcessSelector: a pid or a tag. */
struct e2b_process_selector {
	bool by_tag;
	uint32_t pid;
	char tag[PROCS_TAG_MAX + 1];
};

/* StartRequest: ProcessConfig {cmd, args, envs, cwd}, pty, tag, stdin. */
struct e2b_start_request {
	char *argv[PROTO_ARGV_MAX + 1]; /* cmd then args, malloc'd, NULL-terminated */
	size_t argc;
	char *env[PROTO_ENV_MAX + 1];   /* malloc'd "NAME=value" */
	size_t envc;
	char *cwd;                      /* malloc'd; NULL: the default directory */
	char *tag;                      /* malloc'd; NULL: none */
	bool has_pty;                   /* a PTY was asked for (emberd has none) */
	bool has_stdin;
};

int e2b_parse_start(json_t *msg, struct e2b_start_request *out, struct ember_error **err);
void e2b_start_request_release(struct e2b_start_request *req);

/* A message whose one field that matters is `process` (a ProcessSelector, required):
 * ConnectRequest, CloseStdinRequest, UpdateRequest. */
int e2b_parse_selector_of(json_t *msg, struct e2b_process_selector *sel,
			  struct ember_error **err);

/* SendInputRequest {process, input: {stdin | pty}}: *data malloc'd (*len bytes, may be 0);
 * *pty says the input was for a PTY. */
int e2b_parse_send_input(json_t *msg, struct e2b_process_selector *sel, uint8_t **data,
			 size_t *len, bool *pty, struct ember_error **err);

/* SendSignalRequest {process, signal}: SIGNAL_SIGKILL (9) or SIGNAL_SIGTERM (15), by name or
 * number; anything else (SIGNAL_UNSPECIFIED included) is refused. */
int e2b_parse_send_signal(json_t *msg, struct e2b_process_selector *sel, int *sig,
			  struct ember_error **err);

/* Base64 as proto3 JSON allows it (standard or URL-safe alphabet, padding optional), at most
 * max decoded bytes; *out malloc'd (also for 0 bytes). */
int e2b_base64_decode_lenient(const char *in, size_t len, size_t max, uint8_t **out,
			      size_t *out_len, struct ember_error **err);

#endif
