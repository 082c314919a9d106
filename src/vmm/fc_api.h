/* fc_api.h - Firecracker's HTTP API on its Unix socket, as the driver uses it: PUT or PATCH a
 * JSON body, succeed on 2xx, otherwise fail with Firecracker's own `fault_message`.
 * Used by firecracker.c. Never waits past the deadline it is given and never retries a request:
 * a PUT Firecracker refused is reported, not guessed around. */
#ifndef EMBER_VMM_FC_API_H
#define EMBER_VMM_FC_API_H

#include <jansson.h>
#include <stdint.h>

#include "util/error.h"

/* Firecracker's fault messages can quote whole request bodies; the API error keeps this much. */
#define FC_API_FAULT_MAX 480

struct fc_api;

/* No I/O yet: the first request connects (and later ones reuse the connection). */
int fc_api_open(const char *sock_path, struct fc_api **out, struct ember_error **err);
void fc_api_close(struct fc_api *api);

static inline void fc_api_closep(struct fc_api **api)
{
	fc_api_close(*api);
}
/* Closes an API connection at the end of its scope (NULL-safe). */
#define _cleanup_fc_api_ __attribute__((cleanup(fc_api_closep)))

/* Sends method ("PUT" or "PATCH") on path with body (borrowed). A non-2xx answer is
 * EMBER_E_GUEST "firecracker <method> <path>: <fault_message>" ("HTTP <status>" without one); a
 * deadline that passes is EMBER_E_GUEST_TIMEOUT; a connection that fails or breaks is
 * EMBER_E_GUEST. */
int fc_api_request(struct fc_api *api, const char *method, const char *path, json_t *body,
		   int64_t deadline_ms, struct ember_error **err);

/* fc_api_request() with "PUT". */
int fc_api_put(struct fc_api *api, const char *path, json_t *body, int64_t deadline_ms,
	       struct ember_error **err);

#endif
