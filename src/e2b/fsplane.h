/* fsplane.h - what the envd file plane's two files share: filesystem.c (Connect service, GET
 * /files, /health) and upload.c (POST /files).
 * Never used outside src/e2b. */
#ifndef EMBER_E2B_FSPLANE_H
#define EMBER_E2B_FSPLANE_H

#include "e2b/e2b.h"

/* A file operation's failure as envd's REST answer: a sandbox that is gone is 502 (the SDK's
 * TimeoutError, as E2B's proxy answers), a directory where a file was meant 400, the rest by
 * kind. Frees *err. */
void e2b_fs_rest_error(const struct e2b_context *ctx, const char *sandbox_id,
		       struct api_response *resp, struct ember_error **err);

/* Whether the sandbox still exists (a NOT_FOUND is then about a path, not the sandbox). */
bool e2b_fs_sandbox_exists(const struct e2b_context *ctx, const char *sandbox_id);

#endif
