/* libFuzzer target: the file routes' input decoders (src/api/fsrequests.c). The first byte
 * picks the decoder: a query (split like the HTTP layer splits one, at `&` then the first `=`)
 * for GET or PUT, or a mkdir/move/remove body. Whatever is accepted holds bounded paths. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/fsrequests.h"

static void check(const struct proto_fs_request *req)
{
	size_t len = strlen(req->path);

	if (len == 0 || len > PROTO_PATH_MAX || strlen(req->to) > PROTO_PATH_MAX ||
	    req->mode > PROTO_FS_MODE_MAX)
		abort();
}

static void fuzz_query(const uint8_t *data, size_t size, enum api_fs_query_kind kind)
{
	struct api_query q = { .count = 0 };
	struct proto_fs_request *req = malloc(sizeof(*req));
	char *text = malloc(size + 1), *save = NULL, *part;

	if (text == NULL || req == NULL)
		goto out;
	memcpy(text, data, size);
	text[size] = '\0';
	for (part = strtok_r(text, "&", &save); part != NULL; part = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(part, '=');

		if (q.count == API_QUERY_PAIRS_MAX) {
			q.too_many = true;
			break;
		}
		if (eq != NULL)
			*eq = '\0';
		q.pairs[q.count].key = part;
		q.pairs[q.count++].value = eq != NULL ? eq + 1 : NULL;
	}
	if (api_parse_fs_query(&q, kind, req, NULL) == 0) {
		check(req);
		if (kind == API_FS_QUERY_PATH && (req->has_mode || req->parents))
			abort();
	}
out:
	free(text);
	free(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum proto_fs_op ops[] = { PROTO_FS_MKDIR, PROTO_FS_MOVE, PROTO_FS_REMOVE };
	struct proto_fs_request *req;

	if (size < 1)
		return 0;
	if (data[0] % 5 < 2) {
		fuzz_query(data + 1, size - 1, data[0] % 5 == 0 ? API_FS_QUERY_PATH
								: API_FS_QUERY_UPLOAD);
		return 0;
	}
	req = malloc(sizeof(*req));
	if (req == NULL)
		return 0;
	if (api_parse_fs_body(ops[data[0] % 5 - 2], (const char *)data + 1, size - 1, req,
			      NULL) == 0)
		check(req);
	free(req);
	return 0;
}
