/* e2b.h - the E2B-compatible listener (--e2b-addr, docs/e2b.md): the unmodified E2B SDKs'
 * control plane (REST, X-API-KEY) and sandbox planes (envd's Connect RPC and /files on port
 * 49983, the code interpreter on 49999, chosen by the E2b-Sandbox-Id / E2b-Sandbox-Port headers
 * that E2B_SANDBOX_URL makes the SDKs send) mapped onto the native manager.
 * server.c hands every request of that listener to e2b_route() (a file upload to the e2b
 * upload calls instead); route.c checks auth and dispatches to the plane's file:
 *   control.c      e2b_control_route()   create/get/list/delete/timeout/connect
 *   process.c      e2b_process_route()   /process.Process/... (commands)
 *   filesystem.c   e2b_fs_route()        /filesystem.Filesystem/..., GET /files, /health
 *   upload.c       e2b_*upload*()        POST /files (streamed to the guest)
 *   interp.c       e2b_interp_route()    /execute, /contexts (code interpreter)
 * Nothing here keeps state of its own beyond a request: sandboxes, processes and contexts are
 * the manager's. Every handler always fills the response (errors in the SDK's shapes). */
#ifndef EMBER_E2B_E2B_H
#define EMBER_E2B_E2B_H

#include <stdbool.h>
#include <stddef.h>

#include "api/requests.h"
#include "api/routes.h"
#include "api/server.h"
#include "util/error.h"

/* The ports the SDKs name in E2b-Sandbox-Port. */
#define E2B_PORT_ENVD 49983
#define E2B_PORT_INTERP 49999

/* Borrowed for the listener's lifetime. */
struct e2b_context {
	struct api_context *api;      /* the manager and driver, as the native routes have */
	const char *auth_token;       /* the daemon's token; NULL or "": none required */
};

/* One request as server.c hands it over; every pointer lives as long as the request. Headers
 * are NULL when absent. */
struct e2b_request {
	const char *method;
	const char *path;             /* the URL path (no query) */
	const struct api_query *query;/* decoded query parameters */
	const char *body;             /* NUL-terminated, body_len bytes (empty for uploads) */
	size_t body_len;
	const char *api_key;          /* X-API-KEY */
	const char *access_token;     /* X-Access-Token */
	const char *traffic_token;    /* E2B-Traffic-Access-Token: what @e2b/code-interpreter's
				       * context calls carry instead (they send no X-Access-Token) */
	const char *sandbox_id;       /* E2b-Sandbox-Id: set → a sandbox plane */
	const char *sandbox_port;     /* E2b-Sandbox-Port */
	const char *authorization;    /* Authorization (envd: Basic base64("user:")) */
	const char *content_type;     /* Content-Type */
	const char *content_encoding; /* Content-Encoding (an upload's gzip is refused) */
	const char *accept;           /* Accept */
	const char *keepalive_ping;   /* Keepalive-Ping-Interval (envd streams), seconds */
	const char *connect_timeout;  /* Connect-Timeout-Ms (a Connect call's deadline) */
	int client_fd;                /* the connection's socket (a stream polls it), or -1 */
};

/* Routes one complete request (the body is in req). */
void e2b_route(const struct e2b_context *ctx, const struct e2b_request *req,
	       struct api_response *resp);

/* --- the planes (each file's entry point; the request passed auth) --- */
void e2b_control_route(const struct e2b_context *ctx, const struct e2b_request *req,
		       struct api_response *resp);
void e2b_process_route(const struct e2b_context *ctx, const struct e2b_request *req,
		       struct api_response *resp);
void e2b_fs_route(const struct e2b_context *ctx, const struct e2b_request *req,
		  struct api_response *resp);
void e2b_interp_route(const struct e2b_context *ctx, const struct e2b_request *req,
		      struct api_response *resp);

/* Whether token is the X-Access-Token of sandbox_id (control.c, which hands it out at create).
 * Only asked when the daemon has a token. */
bool e2b_access_token_ok(const struct e2b_context *ctx, const char *sandbox_id,
			 const char *token);

/* --- uploads (upload.c): POST /files streams to the guest, never collected --- */
struct e2b_upload;
/* Whether req (its body not read yet: body NULL) is an upload; then *out is set (it may
 * already hold its error answer, and then takes and drops the body). */
bool e2b_route_upload(const struct e2b_context *ctx, const struct e2b_request *req,
		      struct e2b_upload **out);
/* A piece of the body; false drops the connection (the upload is then cancelled). May block
 * while the guest has no room. */
bool e2b_upload_data(struct e2b_upload *u, const char *data, size_t len);
/* The body is all in: the answer. */
void e2b_upload_finish(struct e2b_upload *u, struct api_response *resp);
/* An unfinished upload is cancelled (the guest removes the partial file). NULL is fine. */
void e2b_upload_free(struct e2b_upload *u);

/* --- helpers for every plane (route.c) --- */
/* E2B's REST error: status and {"code": status, "message": ...}; err NULL: a 500. */
void e2b_error_rest(struct api_response *resp, const struct ember_error *err);
void e2b_error_rest_msg(struct api_response *resp, unsigned status, const char *message);
/* A Connect unary error: {"code": "<connect code>", "message": ...} with the HTTP status the
 * Connect protocol gives that code; err NULL: internal. */
void e2b_error_connect(struct api_response *resp, const struct ember_error *err);
void e2b_error_connect_msg(struct api_response *resp, const char *code, const char *message);
/* The Connect code for an error kind ("not_found", "invalid_argument", ...) and the HTTP
 * status Connect gives a code. */
const char *e2b_connect_code(enum ember_error_kind kind);
unsigned e2b_connect_status(const char *code);

/* The guest user a sandbox-plane request acts as, from its Authorization header
 * (`Basic base64("name:")`) or an explicit name (a `username` query parameter; NULL: none):
 * none or "user" → 0 (the sandbox user, uid 1000, aliased `user` in our packs). "root" is
 * EMBER_E_FORBIDDEN (emberd never runs guest code as root) and any other name or a malformed
 * header EMBER_E_INVALID. */
int e2b_username(const char *authorization, const char *explicit_name, struct ember_error **err);

#endif
