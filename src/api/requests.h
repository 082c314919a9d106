/* requests.h - decoding and validation of API request bodies (create, exec, timeout) and of the
 * list's query parameters.
 * Used by the HTTP routes; pure functions over bytes, fuzzed by tests/fuzz/fuzz_api_requests.c.
 * Strict: exact types, hard ranges, unknown fields rejected, every error names its field. */
#ifndef EMBER_API_REQUESTS_H
#define EMBER_API_REQUESTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/policy.h"
#include "proto/messages.h"
#include "sandbox/labels.h"
#include "sandbox/manager.h"
#include "sandbox/mounts.h"
#include "util/error.h"

#define API_STDIN_MAX (1024u * 1024u)
#define API_ENV_NAME_MAX 128

struct api_create_body {
	char language_pack[33];   /* "" when absent */
	unsigned vcpus;           /* 0 when absent */
	unsigned memory_mib;
	unsigned timeout_s;
	unsigned overlay_mib;
	unsigned idle_timeout_s;  /* 0 when absent */
	unsigned cpu_weight;      /* 0 when absent */
	struct sandbox_labels labels;
	struct net_policy network;  /* mode none when absent; api_create_body_release() frees it */
	struct sandbox_mounts mounts; /* n == 0 when absent (syntax checked; policy is the
				       * manager's) */
	char from_snapshot[64];   /* "" when absent; a snapshot id's shape is the manager's */
};

/* POST /sandboxes/{id}/fork: {"count"?: 1..64, "labels"?, "timeout_s"?} (an empty body: one
 * fork with the source's labels and lifetime). --max-fork is the manager's to check. */
struct api_fork_body {
	unsigned count;           /* 1 when absent */
	bool has_labels;
	struct sandbox_labels labels;
	unsigned timeout_s;       /* 0 when absent */
};
int api_parse_fork(const char *body, size_t len, struct api_fork_body *out,
		   struct ember_error **err);
/* POST /sandboxes/{id}/snapshots: {"labels"?} (or an empty body). */
int api_parse_snapshot(const char *body, size_t len, struct sandbox_labels *labels,
		       struct ember_error **err);

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
	bool stream;              /* "stream": true: answer with events as output arrives */
	const char *context_id;   /* NULL when absent (syntax checked, existence is not) */
	bool fresh_interpreter;
};

/* An empty body means all defaults. The `network` object is parsed for every mode; which
 * modes this daemon allows is the manager's to say (net/egress.h). */
int api_parse_create(const char *body, size_t len, struct api_create_body *out,
		     struct ember_error **err);
void api_create_body_release(struct api_create_body *body);
/* PATCH /sandboxes/{id}/network: {"allow": [..], "deny"?: [..]} (net_policy_parse_patch). */
int api_parse_network_patch(const char *body, size_t len, struct net_policy *out,
			    bool *has_deny, struct ember_error **err);
int api_parse_exec(const char *body, size_t len, struct api_exec_body *out,
		   struct ember_error **err);
void api_exec_body_release(struct api_exec_body *body);
/* Releases a body at the end of its scope (a zeroed or failed-to-parse body is fine). */
#define _cleanup_exec_body_ __attribute__((cleanup(api_exec_body_release)))

/* A request's query parameters as the HTTP layer split and percent-decoded them, in order;
 * value is NULL for a parameter without `=`. Strings are borrowed from the request. */
#define API_QUERY_PAIRS_MAX 40
struct api_query {
	struct {
		const char *key;
		const char *value;
	} pairs[API_QUERY_PAIRS_MAX];
	size_t count;
	bool too_many;            /* more than API_QUERY_PAIRS_MAX were sent */
	const char *accept;       /* the request's Accept header (NULL: none); not a parameter,
				   * but the one header a route looks at */
	bool has_nul;             /* a key or value held a NUL (%00) */
	const char *mcp_session_id;      /* /mcp's headers: Mcp-Session-Id and */
	const char *mcp_protocol_version; /* MCP-Protocol-Version (NULL: none) */
};

/* GET /sandboxes's filter: every label term (AND) and, when has_state, the state. terms[] point
 * into term_keys[]: use it where it was parsed, do not copy it. */
struct api_list_filter {
	struct sandbox_label_term terms[SANDBOX_LABELS_MAX];
	char term_keys[SANDBOX_LABELS_MAX][SANDBOX_LABEL_KEY_MAX + 1];
	size_t nterms;
	bool has_state;
	enum sandbox_state state;
};

/* `label=KEY` (present) or `label=KEY=VALUE` (equal), repeatable; `state=S` once. Anything else
 * (an unknown parameter, a value-less one, a bad key or value, an unknown state) fails naming
 * it. The terms' values point into query's strings. */
int api_parse_list_query(const struct api_query *query, struct api_list_filter *out,
			 struct ember_error **err);
/* Whether a sandbox passes the filter. */
bool api_list_filter_match(const struct api_list_filter *filter, const struct sandbox_info *info);

/* {"timeout_s": N}, N between 1 and 30 days (the daemon's --max-timeout-s is the manager's). */
int api_parse_timeout(const char *body, size_t len, unsigned *timeout_s,
		      struct ember_error **err);

/* POST /sandboxes/{id}/processes: exactly one of "code" (the pack's interpreter runs it) and
 * "cmd" (argv), optional "cwd", "env" (as exec's), "stdin" (bool) and "tag". */
#define API_TAG_MAX 64
struct api_process_body {
	json_t *root;             /* owns the borrowed strings below */
	const char *code;         /* NULL with cmd */
	size_t code_len;
	char *cmd[PROTO_ARGV_MAX + 1]; /* borrowed from root, NULL-terminated; cmdc 0 with code */
	size_t cmdc;
	char *env[PROTO_ENV_MAX + 1]; /* malloc'd "NAME=value" */
	size_t envc;
	const char *cwd;          /* NULL: the home directory */
	bool has_stdin;
	const char *tag;          /* NULL: none */
};
int api_parse_process(const char *body, size_t len, struct api_process_body *out,
		      struct ember_error **err);
void api_process_body_release(struct api_process_body *body);
#define _cleanup_process_body_ __attribute__((cleanup(api_process_body_release)))

/* POST /sandboxes/{id}/contexts: {"language": "python"|"node"|"shell" (default: the pack's),
 * "cwd", "env"}; an empty body means all defaults. */
struct api_context_body {
	json_t *root;             /* owns cwd */
	enum proto_context_language language; /* PROTO_LANG_NONE: not given */
	const char *cwd;          /* NULL: the home directory */
	char *env[PROTO_ENV_MAX + 1]; /* malloc'd "NAME=value" */
	size_t envc;
};
int api_parse_context(const char *body, size_t len, struct api_context_body *out,
		      struct ember_error **err);
void api_context_body_release(struct api_context_body *body);
#define _cleanup_context_body_ __attribute__((cleanup(api_context_body_release)))

/* {"signal": NAME} (TERM KILL INT HUP QUIT USR1 USR2 STOP CONT, "SIG" prefix allowed) or a
 * number 1..64. */
int api_parse_signal(const char *body, size_t len, int *sig, struct ember_error **err);

/* A {pid} path segment: decimal 1..2^31-1, nothing else. */
int api_parse_pid(const char *text, int32_t *pid, struct ember_error **err);

/* true when id has the exact shape of a sandbox id ("sb_" + 32 lowercase hex). */
bool api_valid_sandbox_id(const char *id);

#endif
