/* route.c - the E2B listener's dispatch: which plane a request is for, its auth, and the error
 * shapes every plane answers with. */
#include "e2b/e2b.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/guard.h"
#include "util/cleanup.h"
#include "util/text.h"

/* Messages quote client and guest bytes (cut at a byte count, maybe not UTF-8 at all), which
 * jansson refuses: every message goes out as valid UTF-8, invalid bytes as U+FFFD. */
void e2b_error_rest_msg(struct api_response *resp, unsigned status, const char *message)
{
	_cleanup_free_ char *text = utf8_lossy(message, strlen(message));

	resp->status = status;
	resp->body = text == NULL ? NULL
				  : json_pack("{s:i, s:s}", "code", (int)status, "message", text);
	if (status == 429 && resp->retry_after_s == 0)
		resp->retry_after_s = 1;
	if (resp->body == NULL)
		resp->status = 500; /* out of memory: an empty 500 */
}

void e2b_error_rest(struct api_response *resp, const struct ember_error *err)
{
	if (err != NULL)
		resp->retry_after_s = err->retry_after_s;
	e2b_error_rest_msg(resp, api_status_for(err != NULL ? err->kind : EMBER_E_INTERNAL),
			   err != NULL ? err->message : "out of memory");
}

/* connectrpc.com/docs/protocol: error codes and the HTTP status of each. */
static const struct {
	const char *code;
	unsigned status;
} connect_codes[] = {
	{ "canceled", 499 },          { "unknown", 500 },
	{ "invalid_argument", 400 },  { "deadline_exceeded", 504 },
	{ "not_found", 404 },         { "already_exists", 409 },
	{ "permission_denied", 403 }, { "resource_exhausted", 429 },
	{ "failed_precondition", 400 },{ "aborted", 409 },
	{ "out_of_range", 400 },      { "unimplemented", 501 },
	{ "internal", 500 },          { "unavailable", 503 },
	{ "data_loss", 500 },         { "unauthenticated", 401 },
};

unsigned e2b_connect_status(const char *code)
{
	size_t i;

	for (i = 0; i < sizeof(connect_codes) / sizeof(connect_codes[0]); i++) {
		if (strcmp(connect_codes[i].code, code) == 0)
			return connect_codes[i].status;
	}
	return 500;
}

const char *e2b_connect_code(enum ember_error_kind kind)
{
	switch (kind) {
	case EMBER_E_INVALID: return "invalid_argument";
	case EMBER_E_NOT_FOUND: return "not_found";
	case EMBER_E_METHOD: return "unimplemented";
	case EMBER_E_CONFLICT: return "failed_precondition";
	case EMBER_E_TOO_LARGE: return "resource_exhausted";
	case EMBER_E_CAPACITY: return "resource_exhausted";
	case EMBER_E_UNAVAILABLE: return "unavailable";
	case EMBER_E_GUEST: return "unavailable";
	case EMBER_E_PROTOCOL: return "internal";
	case EMBER_E_GUEST_TIMEOUT: return "deadline_exceeded";
	case EMBER_E_UNAUTHORIZED: return "unauthenticated";
	case EMBER_E_FORBIDDEN: return "permission_denied";
	case EMBER_E_MISDIRECTED: return "permission_denied";
	case EMBER_E_NO_SPACE: return "resource_exhausted";
	case EMBER_E_INTERNAL: break;
	}
	return "internal";
}

void e2b_error_connect_msg(struct api_response *resp, const char *code, const char *message)
{
	_cleanup_free_ char *text = utf8_lossy(message, strlen(message));

	resp->status = e2b_connect_status(code);
	resp->body = text == NULL ? NULL : json_pack("{s:s, s:s}", "code", code, "message", text);
	if (resp->status == 429 && resp->retry_after_s == 0)
		resp->retry_after_s = 1; /* as e2b_error_rest_msg: every 429 says when */
	if (resp->body == NULL)
		resp->status = 500;
}

void e2b_error_connect(struct api_response *resp, const struct ember_error *err)
{
	e2b_error_connect_msg(resp, e2b_connect_code(err != NULL ? err->kind : EMBER_E_INTERNAL),
			      err != NULL ? err->message : "out of memory");
}

/* A user name: what the SDKs send (E2B's default is "user"). */
static int user_for_name(const char *name, size_t len, struct ember_error **err)
{
	if (len == 0 || (len == 4 && memcmp(name, "user", 4) == 0))
		return 0;
	if (len == 4 && memcmp(name, "root", 4) == 0)
		return ember_error_set(err, EMBER_E_FORBIDDEN, 0,
				       "emberd never runs guest code as root: use the default user "
				       "`user` (the sandbox's unprivileged account)");
	char shown[64], raw[32];

	snprintf(raw, sizeof(raw), "%.*s", (int)(len < sizeof(raw) ? len : sizeof(raw) - 1), name);
	text_escape_log(raw, shown, sizeof(shown));
	return ember_error_set(err, EMBER_E_INVALID, 0,
			       "unknown user `%s`: emberd sandboxes have one account, `user`",
			       shown);
}

int e2b_username(const char *authorization, const char *explicit_name, struct ember_error **err)
{
	_cleanup_free_ uint8_t *decoded = NULL;
	const uint8_t *colon;
	size_t n = 0;

	if (explicit_name != NULL)
		return user_for_name(explicit_name, strlen(explicit_name), err);
	if (authorization == NULL)
		return 0;
	if (strncasecmp(authorization, "Basic ", 6) != 0 || strlen(authorization) > 256 ||
	    base64_decode(authorization + 6, strlen(authorization + 6), &decoded, &n) < 0)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "Authorization must be `Basic base64(\"user:\")`");
	colon = memchr(decoded, ':', n);
	return user_for_name((const char *)decoded, colon != NULL ? (size_t)(colon - decoded) : n,
			     err);
}

static bool has_token(const struct e2b_context *ctx)
{
	return ctx->auth_token != NULL && ctx->auth_token[0] != '\0';
}

/* The control plane's key: the daemon's token, as X-API-KEY. */
static bool api_key_ok(const struct e2b_context *ctx, const struct e2b_request *req)
{
	return !has_token(ctx) ||
	       (req->api_key != NULL && api_guard_token_matches(ctx->auth_token, req->api_key));
}

static void route_sandbox_plane(const struct e2b_context *ctx, const struct e2b_request *req,
				struct api_response *resp)
{
	bool envd = req->sandbox_port == NULL ||
		    strcmp(req->sandbox_port, "49983") == 0;
	bool interp = req->sandbox_port != NULL && strcmp(req->sandbox_port, "49999") == 0;
	char msg[200], shown[40];
	/* @e2b/code-interpreter sends X-Access-Token with runCode only; its context calls carry
	 * the create's trafficAccessToken (control.c hands out the same token as both). */
	const char *token = req->access_token != NULL || !interp ? req->access_token
							       : req->traffic_token;

	if (has_token(ctx) &&
	    (token == NULL || !e2b_access_token_ok(ctx, req->sandbox_id, token))) {
		e2b_error_rest_msg(resp, 401, "missing or wrong X-Access-Token for this sandbox");
		return;
	}
	if (interp) {
		e2b_interp_route(ctx, req, resp);
		return;
	}
	if (!envd) {
		text_escape_log(req->sandbox_port, shown, sizeof(shown));
		snprintf(msg, sizeof(msg),
			 "port %s of a sandbox is not served: emberd answers the SDKs' envd "
			 "(49983) and code interpreter (49999) ports only",
			 shown);
		e2b_error_rest_msg(resp, 502, msg);
		return;
	}
	if (strncmp(req->path, "/process.Process/", 17) == 0)
		e2b_process_route(ctx, req, resp);
	else
		e2b_fs_route(ctx, req, resp);
}

void e2b_route(const struct e2b_context *ctx, const struct e2b_request *req,
	       struct api_response *resp)
{
	if (req->sandbox_id != NULL) {
		route_sandbox_plane(ctx, req, resp);
		return;
	}
	if (!api_key_ok(ctx, req)) {
		e2b_error_rest_msg(resp, 401, "Invalid API key: emberd wants the token of its "
					      "--auth-token-file as E2B_API_KEY");
		return;
	}
	e2b_control_route(ctx, req, resp);
}
