/* upload.c - POST /files (stub until written: no request is an upload yet). */
#include "e2b/e2b.h"

bool e2b_route_upload(const struct e2b_context *ctx, const struct e2b_request *req,
		      struct e2b_upload **out)
{
	(void)ctx, (void)req;
	*out = NULL;
	return false;
}

bool e2b_upload_data(struct e2b_upload *u, const char *data, size_t len)
{
	(void)u, (void)data, (void)len;
	return false;
}

void e2b_upload_finish(struct e2b_upload *u, struct api_response *resp)
{
	(void)u;
	e2b_error_rest_msg(resp, 501, "uploads: not implemented yet");
}

void e2b_upload_free(struct e2b_upload *u)
{
	(void)u;
}
