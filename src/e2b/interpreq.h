/* interpreq.h - decoding of the E2B code interpreter's request bodies (POST /execute and POST
 * /contexts, as @e2b/code-interpreter sends them) and its language names.
 * Used by interp.c; pure functions over bytes, fuzzed by tests/fuzz/fuzz_e2b_interpreq.c.
 * Strict and bounded: exact types (null counts as absent: the Python SDK sends it), unknown
 * fields rejected, every error names its field. */
#ifndef EMBER_E2B_INTERPREQ_H
#define EMBER_E2B_INTERPREQ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "proto/ctxmsg.h"
#include "proto/messages.h"
#include "util/error.h"

/* A cell's code: the native exec's bound (docs/api.md, 256 KiB). */
#define E2B_CODE_MAX (256u * 1024u)
/* The E2B context ids we hand out are native ones; anything longer is no context of ours. */
#define E2B_CONTEXT_ID_MAX PROTO_CONTEXT_ID_MAX
/* env_vars: names as the native exec's, at most as many as an exec may add. */
#define E2B_ENV_VARS_MAX 64

struct e2b_execute_body {
	json_t *root;                 /* owns every string below */
	const char *code;
	size_t code_len;
	const char *context_id;       /* NULL: absent */
	enum proto_context_language language; /* PROTO_LANG_NONE: absent (python) */
	const char *language_name;    /* as sent, NULL when absent */
	json_t *env_vars;             /* borrowed from root: a checked object of strings, or NULL
				       * (absent or empty) */
};

/* {code, context_id?, language?, env_vars?}. A language emberd has no context for is
 * EMBER_E_INVALID naming the ones it has. */
int e2b_parse_execute(const char *body, size_t len, struct e2b_execute_body *out,
		      struct ember_error **err);
void e2b_execute_body_release(struct e2b_execute_body *body);

struct e2b_context_body {
	json_t *root;                 /* owns cwd */
	enum proto_context_language language;
	const char *cwd;              /* NULL: absent */
};

/* {language?, cwd?}; an empty body means both defaults. */
int e2b_parse_context_create(const char *body, size_t len, struct e2b_context_body *out,
			     struct ember_error **err);
void e2b_context_body_release(struct e2b_context_body *body);

/* An E2B language name (trimmed, any case): python; javascript, js → node; bash, sh, shell →
 * shell; "" → python. PROTO_LANG_NONE for every other (typescript, r, java, deno, ...). */
enum proto_context_language e2b_language_parse(const char *name, size_t len);
/* The E2B name of a native language: python, javascript, bash. */
const char *e2b_language_name(enum proto_context_language language);

#endif
