/* routes.h - API v1 routing: (method, path, body) -> (status, JSON body).
 * Called by server.c for every complete request; independent of the HTTP library so it can be
 * tested directly. Always produces a response: failures become JSON errors here. */
#ifndef EMBER_API_ROUTES_H
#define EMBER_API_ROUTES_H

#include <jansson.h>
#include <stddef.h>

#include "api/server.h"

struct api_response {
	unsigned status;
	json_t *body;        /* NULL for 204 */
	const char *allow;   /* Allow header for 405, else NULL */
	const char *sandbox_id; /* for logs, may be NULL (points into static or path storage) */
};

void api_route(struct api_context *ctx, const char *method, const char *path, const char *body,
	       size_t body_len, struct api_response *resp);

/* Fills resp with the JSON error for err (and frees nothing). */
void api_response_error(struct api_response *resp, const struct ember_error *err);

#endif
