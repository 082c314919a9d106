/* process.c - (stub until written; see e2b.h). */
#include "e2b/e2b.h"

void e2b_process_route(const struct e2b_context *ctx, const struct e2b_request *req,
	 struct api_response *resp)
{
	(void)ctx, (void)req;
	e2b_error_rest_msg(resp, 501, "not implemented yet");
}
