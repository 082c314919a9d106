/* libFuzzer target: the MCP server's JSON-RPC handling (mcp_handle: sessions, the version
 * header, requests, tools/list and tools/call's argument checks and result encoding), on a stub
 * manager (stub_manager.c: no VMs). The input is
 *   one selector byte: bits 0-1 the Mcp-Session-Id (0 none, 1 and 3 a live session made at
 *     startup, 2 fuzzed), bits 2-3 the MCP-Protocol-Version (0 none, 1 the latest, 2 fuzzed,
 *     3 an older known one), bit 4 DELETE instead of POST;
 *   the fuzzed session id, then the fuzzed version, each ended by a NUL (only when chosen);
 *   the body (the rest).
 * Every answer must be a status the transport allows and, with a body, one JSON-RPC 2.0
 * response (jsonrpc "2.0", the request's id, result xor error). Sessions an input makes are
 * ended after it, and the live one is made again when an input ended it, so the table never
 * fills and each input sees the same server. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/mcp.h"
#include "stub_manager.h"
#include "util/log.h"

static struct mcp_server *server;
static char live_id[MCP_SESSION_ID_MAX + 1];

static void check(bool ok)
{
	if (!ok)
		abort();
}

static bool status_allowed(unsigned status)
{
	static const unsigned allowed[] = { 200, 202, 204, 400, 404, 429 };
	size_t i;

	for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		if (status == allowed[i])
			return true;
	}
	return false;
}

static bool is_string(json_t *v, const char *text)
{
	return json_is_string(v) && strcmp(json_string_value(v), text) == 0;
}

static bool valid_id(json_t *id)
{
	return json_is_string(id) || json_is_integer(id) || json_is_real(id);
}

/* A tools/call result: text content, isError, and structured content when it did not fail. */
static void check_call_result(json_t *result)
{
	json_t *content = json_object_get(result, "content"), *item;
	size_t i;

	check(json_is_array(content) && json_array_size(content) > 0);
	json_array_foreach(content, i, item) {
		check(is_string(json_object_get(item, "type"), "text"));
		check(json_is_string(json_object_get(item, "text")));
	}
	check(json_is_boolean(json_object_get(result, "isError")));
	if (json_is_false(json_object_get(result, "isError")))
		check(json_is_object(json_object_get(result, "structuredContent")));
}

/* request: the body as the server parsed it (NULL when it is not JSON). */
static void check_response(const struct api_response *resp, json_t *request, bool del)
{
	json_t *body = resp->body, *id, *result, *error, *again;
	const char *method = json_string_value(json_object_get(request, "method"));
	char *text;

	check(status_allowed(resp->status));
	check(resp->stream == NULL && resp->events == NULL && resp->download == NULL);
	check(resp->mcp_session_id[0] == '\0' || (resp->status == 200 && !del));
	check((resp->status == 429) == (resp->retry_after_s > 0));
	if (resp->status == 202 || resp->status == 204) {
		check(body == NULL && resp->status == (del ? 204 : 202));
		return;
	}
	check(json_is_object(body));
	check(is_string(json_object_get(body, "jsonrpc"), "2.0"));
	id = json_object_get(body, "id");
	result = json_object_get(body, "result");
	error = json_object_get(body, "error");
	check(id != NULL && (json_is_null(id) || valid_id(id)));
	/* An id answered is the request's own. */
	check(json_is_null(id) || json_equal(id, json_object_get(request, "id")));
	check((result == NULL) != (error == NULL));
	if (error != NULL) {
		check(json_is_integer(json_object_get(error, "code")));
		check(json_is_string(json_object_get(error, "message")));
	} else {
		check(resp->status == 200 && json_is_object(result) && !json_is_null(id));
		if (method != NULL && strcmp(method, "tools/call") == 0)
			check_call_result(result);
		if (method != NULL && strcmp(method, "tools/list") == 0)
			check(json_is_array(json_object_get(result, "tools")));
	}
	check(resp->mcp_session_id[0] == '\0' || result != NULL);
	/* What goes on the wire parses back. */
	text = json_dumps(body, JSON_COMPACT);
	check(text != NULL);
	again = json_loads(text, 0, NULL);
	check(again != NULL && json_equal(again, body));
	json_decref(again);
	free(text);
}

static void handle(const char *method, const char *session_id, const char *version,
		   const char *body, size_t body_len, struct api_response *resp)
{
	struct mcp_http_request req = { .method = method, .session_id = session_id,
					.protocol_version = version, .body = body,
					.body_len = body_len };

	memset(resp, 0, sizeof(*resp));
	mcp_handle(server, &req, resp);
}

static void end_session(const char *id)
{
	struct api_response resp;

	handle("DELETE", id, NULL, NULL, 0, &resp);
	check(resp.status == 204 && resp.body == NULL);
}

static void start_live_session(void)
{
	static const char init[] = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\","
				   "\"params\":{\"protocolVersion\":\"" MCP_PROTOCOL_LATEST "\"}}";
	struct api_response resp;

	handle("POST", NULL, NULL, init, sizeof(init) - 1, &resp);
	check(resp.status == 200 && resp.mcp_session_id[0] != '\0');
	check(strlen(resp.mcp_session_id) <= MCP_SESSION_ID_MAX);
	strcpy(live_id, resp.mcp_session_id);
	json_decref(resp.body);
}

/* The live session still answers a ping; else (an input ended it) a new one. */
static void keep_live_session(void)
{
	static const char ping[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
	struct api_response resp;

	handle("POST", live_id, NULL, ping, sizeof(ping) - 1, &resp);
	json_decref(resp.body);
	if (resp.status == 404)
		start_live_session();
	else
		check(resp.status == 200);
}

/* The next NUL-ended string of the input (a copy), advancing *p; NULL when there is no NUL. */
static char *take_string(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nul = memchr(*p, '\0', (size_t)(end - *p));
	char *s;

	if (nul == NULL)
		return NULL;
	s = strdup((const char *)*p);
	*p = nul + 1;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const versions[] = { NULL, MCP_PROTOCOL_LATEST, NULL, "2024-11-05" };
	const uint8_t *p = data, *end = data + size;
	char *fuzzed_id = NULL, *fuzzed_version = NULL, *body;
	const char *session_id = NULL, *version;
	struct api_response resp;
	json_t *request;
	uint8_t sel;
	bool del;

	if (server == NULL) {
		log_set_level(LOG_ERROR);
		check(mcp_server_new(NULL, 0, &server, NULL) == 0);
		start_live_session();
	}
	if (size == 0)
		return 0;
	sel = *p++;
	del = (sel & 0x10) != 0;
	if ((sel & 3) == 2 && (fuzzed_id = take_string(&p, end)) == NULL)
		return 0;
	if (((sel >> 2) & 3) == 2 && (fuzzed_version = take_string(&p, end)) == NULL) {
		free(fuzzed_id);
		return 0;
	}
	if ((sel & 3) == 1 || (sel & 3) == 3)
		session_id = live_id;
	else if ((sel & 3) == 2)
		session_id = fuzzed_id;
	version = ((sel >> 2) & 3) == 2 ? fuzzed_version : versions[(sel >> 2) & 3];
	/* An exact-size copy (no NUL after it), so ASan sees a read past the body. */
	body = malloc(end > p ? (size_t)(end - p) : 1);
	check(body != NULL);
	memcpy(body, p, (size_t)(end - p));

	handle(del ? "DELETE" : "POST", session_id, version, body, (size_t)(end - p), &resp);
	request = json_loadb(body, (size_t)(end - p), JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
			     NULL);
	check_response(&resp, del ? NULL : request, del);
	if (resp.mcp_session_id[0] != '\0')
		end_session(resp.mcp_session_id);
	if (del && resp.status == 204)
		keep_live_session();

	json_decref(request);
	json_decref(resp.body);
	free(body);
	free(fuzzed_id);
	free(fuzzed_version);
	return 0;
}
