/* routes.h - API v1 routing: one table of {method, pattern, handler} rows turns (method, path,
 * body) into (status, JSON body). Called by server.c for every complete request; independent of
 * the HTTP library so it can be tested directly. Always produces a response (failures become
 * JSON errors here) and never lets a malformed sandbox id reach the manager. */
#ifndef EMBER_API_ROUTES_H
#define EMBER_API_ROUTES_H

#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>

#include "api/execstream.h"
#include "api/files.h"
#include "api/requests.h"
#include "api/server.h"
#include "api/stream.h"

/* Room for every method of one pattern, ", "-joined ("GET, POST, PUT, PATCH, DELETE" fits). */
#define API_ALLOW_MAX 64

struct api_response {
	unsigned status;
	json_t *body;               /* NULL for 204 (or when stream is set) */
	struct api_stream *stream;  /* a body produced while it is sent (large guest output) */
	struct api_exec_stream *events; /* a streamed exec's events (chunked, length unknown) */
	enum api_events_format events_format;
	struct api_download *download; /* a file's bytes (GET /files): its size is known */
	char allow[API_ALLOW_MAX];  /* Allow header for 405, else "" */
	unsigned retry_after_s;     /* > 0: a Retry-After header (every 429 has one) */
	char mcp_session_id[48];    /* an Mcp-Session-Id header (POST /mcp initialize), else "" */
	char e2b_next_token[64];    /* an X-Next-Token header (E2B list pages), else "" */
	char *text;                 /* a text body (malloc'd, text_len bytes) of content_type */
	size_t text_len;
	const char *content_type;   /* static */
};

/* query: the request's query parameters (NULL: none); only routes that take some look. */
void api_route(struct api_context *ctx, const char *method, const char *path,
	       const struct api_query *query, const char *body, size_t body_len,
	       struct api_response *resp);

/* Whether method and path name a file upload (PUT /sandboxes/{id}/files), whose body is
 * streamed to the guest instead of collected: then *out is its upload (which may already
 * hold its error answer) and the body goes to api_upload_data(), not to api_route(). */
bool api_route_upload(struct api_context *ctx, const char *method, const char *path,
		      const struct api_query *query, struct api_upload **out);

/* Fills resp with the JSON error for err (and frees nothing). */
void api_response_error(struct api_response *resp, const struct ember_error *err);

/* Drops the body; for `_cleanup_response_` on a response that was routed. */
static inline void api_response_release(struct api_response *resp)
{
	json_decref(resp->body);
	resp->body = NULL;
	api_stream_free(resp->stream);
	resp->stream = NULL;
	api_exec_stream_release(resp->events);
	resp->events = NULL;
	api_download_free(resp->download);
	resp->download = NULL;
	free(resp->text);
	resp->text = NULL;
}
#define _cleanup_response_ __attribute__((cleanup(api_response_release)))

#endif
