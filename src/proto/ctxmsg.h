/* ctxmsg.h - the messages of code contexts (protocol version 4, docs/protocol.md "Contexts"):
 * the CONTEXT request and its CONTEXT_REPLY, and the outcome of an exec in a context, which
 * travels inside EXIT (its "context" member) and, in the guest, from the context's interpreter
 * to the agent. Used by the host's channel, the guest agent and its context module. Every
 * decoder is strict and bounded: the outcome is written by the interpreter that runs the
 * user's code, so neither the agent nor the host trusts a byte of it. */
#ifndef EMBER_PROTO_CTXMSG_H
#define EMBER_PROTO_CTXMSG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define PROTO_CONTEXT_ID_MAX 40          /* "ctx_" + 16 hex digits, well under this */
#define PROTO_RESULT_TEXT_MAX (64u * 1024u) /* the final expression's repr */
#define PROTO_ERROR_TEXT_MAX (64u * 1024u)  /* an exception's name, value or traceback */
#define PROTO_RESULTS_MAX 8                  /* rich results of one exec */
#define PROTO_RESULTS_BYTES_MAX (640u * 1024u) /* their data, together */
#define PROTO_MIME_MAX 64

enum proto_context_op {
	PROTO_CONTEXT_OPEN = 1,    /* start the interpreter; CONTEXT_REPLY once it is ready */
	PROTO_CONTEXT_CLOSE,       /* kill it; CONTEXT_REPLY once it is gone */
	PROTO_CONTEXT_RESTART,     /* kill it and start a fresh one, with the same settings */
};

enum proto_context_language {
	PROTO_LANG_NONE = 0, /* not named (an API request's default), never on the wire */
	PROTO_LANG_PYTHON,
	PROTO_LANG_SHELL,
	PROTO_LANG_NODE,
};

#define PROTO_CONTEXT_ARGV_MAX 16
#define PROTO_CONTEXT_ENV_MAX 64

/* CONTEXT. open carries everything; close and restart only op and id. */
struct proto_context {
	enum proto_context_op op;
	char id[PROTO_CONTEXT_ID_MAX + 1];
	enum proto_context_language language;
	char *argv[PROTO_CONTEXT_ARGV_MAX + 1]; /* python, node: the interpreter (the guest
						 * appends its driver); shell: unused (/bin/sh) */
	size_t argc;
	char *env[PROTO_CONTEXT_ENV_MAX + 1];   /* "NAME=value" */
	size_t envc;
	char *cwd;                              /* NULL: the home directory; relative: under it */
	uint32_t max_processes;
};

struct proto_rich_result {
	char mime[PROTO_MIME_MAX + 1];          /* "image/png", "text/html", ... */
	char *data;                             /* base64 for binary types, else the text */
};

/* What an exec in a context produced beyond its output. */
struct proto_outcome {
	bool present;                           /* the exec ran in a context */
	bool restarted;                         /* its interpreter was killed and started anew */
	char *result;                           /* repr of the final expression; NULL: none */
	bool has_error;
	char *error_name;                       /* an exception the code raised */
	char *error_value;
	char *error_traceback;
	struct proto_rich_result results[PROTO_RESULTS_MAX];
	size_t nresults;
};

char *proto_context_encode(const struct proto_context *msg, size_t *len,
			   struct ember_error **err);
/* On success msg owns heap strings: proto_context_release(). */
int proto_context_decode(const uint8_t *buf, size_t len, struct proto_context *msg,
			 struct ember_error **err);
void proto_context_release(struct proto_context *msg);
/* "python", "shell", "node". */
const char *proto_context_language_name(enum proto_context_language language);
/* The language named name, or PROTO_LANG_NONE for none of them. */
enum proto_context_language proto_context_language_parse(const char *name);

/* CONTEXT_REPLY: {"pid"}, the interpreter's guest pid (0 after a close). */
char *proto_context_reply_encode(int32_t pid, size_t *len, struct ember_error **err);
int proto_context_reply_decode(const uint8_t *buf, size_t len, int32_t *pid,
			       struct ember_error **err);

/* The outcome as a JSON object {"restarted","result","error","results"}; NULL (err) when a
 * string is not UTF-8 or memory ran out. */
json_t *proto_outcome_to_json(const struct proto_outcome *o, struct ember_error **err);
/* From such an object; with_restarted false refuses "restarted" (what an interpreter may not
 * claim). Sets o->present. On failure o holds nothing. */
int proto_outcome_from_json(json_t *obj, bool with_restarted, struct proto_outcome *o,
			    struct ember_error **err);
void proto_outcome_release(struct proto_outcome *o);

/* A context id as the host makes them: "ctx_" then 1 to 32 of [0-9a-f]. */
bool proto_context_id_valid(const char *id);

#endif
