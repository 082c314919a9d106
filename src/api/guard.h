/* guard.h - who may talk to the API over TCP: the checks that keep web pages (DNS rebinding,
 * cross-site requests) and, with a token, other local users out.
 * Called by server.c once per request, before routing, from the request's headers alone; pure
 * (no I/O), so it is unit-tested and fuzzed directly. Never looks at Content-Type (curl's
 * form-encoded bodies are fine), never emits CORS headers, and never applies to the Unix
 * socket (mode 0600: its owner is trusted). */
#ifndef EMBER_API_GUARD_H
#define EMBER_API_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

/* Longest bearer token accepted in --auth-token-file, and the shortest. */
#define API_TOKEN_MAX 512
#define API_TOKEN_MIN 16
/* Most --allow-origin values. */
#define API_ALLOW_ORIGINS_MAX 16

struct api_guard {
	char bind_host[256];          /* the host part of --addr, without brackets */
	bool bind_is_loopback;        /* Host must then name a loopback host */
	bool bind_is_wildcard;        /* 0.0.0.0 / :: : any Host (the token protects) */
	const char *allow_origins[API_ALLOW_ORIGINS_MAX];
	size_t nallow_origins;
	char token[API_TOKEN_MAX + 1];/* "" : no token required */
};

/* The headers that matter, NULL when absent. */
struct api_guard_request {
	const char *host;
	const char *origin;
	const char *sec_fetch_site;
	const char *authorization;
	bool token_checked_elsewhere; /* the E2B listener: its router checks X-API-KEY */
};

/* Fills g from --addr (HOST:PORT) and the origins; the token is set by api_guard_load_token. */
int api_guard_init(struct api_guard *g, const char *addr, const char *const *origins,
		   size_t norigins, struct ember_error **err);

/* Reads the token file: one line (a final newline is dropped), API_TOKEN_MIN..API_TOKEN_MAX
 * printable ASCII characters, the file owned by root and not readable by group or others. */
int api_guard_load_token(struct api_guard *g, const char *path, struct ember_error **err);

/* Whether this listener may serve at all: a non-loopback bind needs a token. */
int api_guard_check_config(const struct api_guard *g, struct ember_error **err);

/* 0 when the request may proceed; otherwise -1 with EMBER_E_MISDIRECTED (421: a Host that is
 * not this daemon's, as a DNS-rebound page sends), EMBER_E_FORBIDDEN (403: a cross-origin
 * request from a browser) or EMBER_E_UNAUTHORIZED (401: no or a wrong bearer token). */
int api_guard_check(const struct api_guard *g, const struct api_guard_request *req,
		    struct ember_error **err);

/* Whether got is the token want, compared in time that does not depend on where they differ. */
bool api_guard_token_matches(const char *want, const char *got);

#endif
