/* libFuzzer target: the E2B listener's router and every plane behind it (e2b_route: auth,
 * control plane, envd's Connect process and filesystem services, /files uploads and downloads,
 * the code interpreter), on a stub manager (stub_manager.c: no VMs, one known sandbox). The
 * input is
 *   one selector byte: bits 0-1 the plane (0 control: no E2b-Sandbox-Id; 1 envd Process,
 *     2 envd other paths, both port 49983; 3 the code interpreter, 49999), bits 2-3 the
 *     method (POST, GET, DELETE, PUT), bit 4 the known sandbox's id (else a fuzzed one),
 *     bit 5 an Authorization header, bit 6 Content-Type application/connect+json (else
 *     multipart/form-data; boundary=b when bit 7, else application/json);
 *   the path (for plane 1 the part after /process.Process/), the sandbox id (when fuzzed) and
 *   the Authorization value (when chosen), each ended by a NUL;
 *   the body (the rest); a POST the router calls an upload gets it through the upload calls
 *   in pieces of at most 7 bytes.
 * A `?` in the path starts its query: `&`-separated key=value pairs (bytes as they are, as
 * the HTTP library hands them over decoded).
 * Every answer must have an HTTP status, 429 must say when to retry, a JSON body must be an
 * object or an array, and an error's body must carry its message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "e2b/e2b.h"
#include "stub_manager.h"
#include "util/log.h"

static struct api_context api;
static struct e2b_context ctx;

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* The next NUL-ended piece of the input, or NULL when none is left. */
static const char *take(const uint8_t **data, size_t *size)
{
	const uint8_t *nul = memchr(*data, '\0', *size);
	const char *s = (const char *)*data;

	if (nul == NULL)
		return NULL;
	*size -= (size_t)(nul - *data) + 1;
	*data = nul + 1;
	return s;
}

static void check_response(const struct api_response *resp)
{
	json_t *message;

	check(resp->status >= 100 && resp->status <= 599);
	/* an error always says what went wrong (a body-less 500 is what a message jansson
	 * refused used to become) */
	check(resp->status < 400 || resp->body != NULL || resp->text != NULL);
	check((resp->status == 429) == (resp->retry_after_s > 0));
	if (resp->body != NULL)
		check(json_is_object(resp->body) || json_is_array(resp->body));
	if (resp->status >= 400 && resp->body != NULL && json_is_object(resp->body)) {
		message = json_object_get(resp->body, "message");
		if (message == NULL)
			message = json_object_get(json_object_get(resp->body, "error"), "message");
		if (message == NULL)
			message = json_object_get(resp->body, "value");
		check(json_is_string(message));
	}
}

static void upload(const struct e2b_request *req, const uint8_t *body, size_t len)
{
	_cleanup_response_ struct api_response resp = { 0 };
	struct e2b_upload *u = NULL;
	bool ok = true;
	size_t off, n;

	if (!e2b_route_upload(&ctx, req, &u))
		return;
	for (off = 0; ok && off < len; off += n) {
		n = len - off < 7 ? len - off : 7;
		ok = e2b_upload_data(u, (const char *)body + off, n);
	}
	if (ok) {
		e2b_upload_finish(u, &resp);
		check_response(&resp);
	}
	e2b_upload_free(u);
}

/* Splits full at its `?` into query's pairs (pointing into full). */
static void split_query(char *full, struct api_query *query)
{
	char *q = strchr(full, '?'), *pair, *save = NULL, *eq;

	if (q == NULL)
		return;
	*q++ = '\0';
	for (pair = strtok_r(q, "&", &save); pair != NULL; pair = strtok_r(NULL, "&", &save)) {
		if (query->count >= API_QUERY_PAIRS_MAX) {
			query->too_many = true;
			return;
		}
		eq = strchr(pair, '=');
		if (eq != NULL)
			*eq++ = '\0';
		query->pairs[query->count].key = pair;
		query->pairs[query->count].value = eq;
		query->count++;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	api.manager = NULL; /* the stub ignores it */
	ctx.api = &api;
	ctx.auth_token = NULL;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = { "POST", "GET", "DELETE", "PUT" };
	_cleanup_response_ struct api_response resp = { 0 };
	struct api_query query = { .count = 0 };
	struct e2b_request req = { .client_fd = -1, .query = &query };
	const char *path, *id = STUB_SANDBOX_ID, *auth = NULL;
	char full[320], *body;
	uint8_t sel;

	if (size < 1)
		return 0;
	sel = data[0];
	data++, size--;
	if ((path = take(&data, &size)) == NULL || strlen(path) > 256)
		return 0;
	if (!(sel & 0x10) && (id = take(&data, &size)) == NULL)
		return 0;
	if ((sel & 0x20) && (auth = take(&data, &size)) == NULL)
		return 0;
	switch (sel & 3) {
	case 0: snprintf(full, sizeof(full), "%s", path); break;
	case 1: snprintf(full, sizeof(full), "/process.Process/%s", path); break;
	default: snprintf(full, sizeof(full), "%s", path); break;
	}
	split_query(full, &query);
	req.method = methods[(sel >> 2) & 3];
	req.path = full;
	req.sandbox_id = (sel & 3) == 0 ? NULL : id;
	req.sandbox_port = (sel & 3) == 3 ? "49999" : (sel & 3) != 0 ? "49983" : NULL;
	req.authorization = auth;
	req.content_type = (sel & 0x40)   ? "application/connect+json"
			   : (sel & 0x80) ? "multipart/form-data; boundary=b"
					  : "application/json";
	if (strcmp(req.method, "POST") == 0 && req.sandbox_id != NULL) {
		upload(&req, data, size);
	}
	body = malloc(size + 1);
	if (body == NULL)
		return 0;
	memcpy(body, data, size);
	body[size] = '\0';
	req.body = body;
	req.body_len = size;
	e2b_route(&ctx, &req, &resp);
	check_response(&resp);
	free(body);
	return 0;
}
