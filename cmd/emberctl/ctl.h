/* ctl.h - one emberctl invocation: what the flags set, and its requests to the daemon.
 * Used by every emberctl file; the one place that talks HTTP to emberd (through src/client).
 * Never prints a reply's content: output.c does. */
#ifndef EMBERCTL_CTL_H
#define EMBERCTL_CTL_H

#include <jansson.h>
#include <stdbool.h>

#include "client/http.h"

/* The global flags, then what the command's flags set. */
struct ctl {
	struct http_client *http;
	bool json;
	const char *addr;
	const char *token_file;   /* bearer token for a daemon started with --auth-token-file */
	json_t *body;             /* the request body a command's flags build (create, exec) */
	json_t *env;              /* exec --env */
	const char *stdin_file;   /* exec --stdin-file */
	bool no_stream;           /* exec --no-stream: one buffered answer */
	bool follow;              /* logs -f */
	const char *pack;         /* test --pack */
	json_t *query;            /* ls --label/--state: [name, value] pairs, in order */
};

/* Performs a request; on failure or a status other than expect prints the API's error (and,
 * with --json, the reply) and returns -1. *reply (when reply is not NULL) is the reply's body. */
int ctl_call(struct ctl *c, const char *method, const char *path, json_t *body, long expect,
	     json_t **reply);

/* Prints "emberctl: " fmt (with arg) on stderr; returns 1, the failure exit status. */
int ctl_fail(const char *fmt, const char *arg);

#endif
