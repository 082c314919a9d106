/* Unit tests for the MCP transport (src/api/mcp.c) and the tool table (src/api/mcptools.c):
 * JSON-RPC framing, sessions, version negotiation and tool errors, without a manager (nothing
 * here reaches a sandbox: a tool's arguments are checked before the manager is called). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/mcp.h"
#include "util/sync.h"
#include "api/mcptools.h"

static struct mcp_server *server_new(unsigned idle_s)
{
	struct mcp_server *s = NULL;
	struct ember_error *err = NULL;

	if (mcp_server_new(NULL, idle_s, &s, &err) < 0)
		fail_msg("mcp_server_new: %s", err->message);
	return s;
}

/* One POST; the response's body is returned (the caller decrefs), status in *status. */
static json_t *post(struct mcp_server *s, const char *session, const char *version,
		    const char *body, unsigned *status, char *session_out)
{
	struct mcp_http_request req = { .method = "POST", .session_id = session,
					.protocol_version = version, .body = body,
					.body_len = strlen(body) };
	struct api_response resp;
	json_t *out;

	memset(&resp, 0, sizeof(resp));
	mcp_handle(s, &req, &resp);
	*status = resp.status;
	if (session_out != NULL)
		strcpy(session_out, resp.mcp_session_id);
	out = resp.body;
	resp.body = NULL;
	api_response_release(&resp);
	return out;
}

static void initialize(struct mcp_server *s, const char *version, char *session)
{
	char body[256];
	unsigned status;
	json_t *r;

	snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
		 "\"params\":{\"protocolVersion\":\"%s\",\"capabilities\":{}}}", version);
	r = post(s, NULL, NULL, body, &status, session);
	assert_int_equal(status, 200);
	assert_non_null(json_object_get(r, "result"));
	json_decref(r);
}

static int error_code(json_t *r)
{
	return (int)json_integer_value(json_object_get(json_object_get(r, "error"), "code"));
}

static void initialize_negotiates_and_issues_a_session(void **state)
{
	struct mcp_server *s = server_new(0);
	const char *asked[] = { "2025-06-18", "2025-11-25", "2024-11-05" };
	const char *got[] = { "2025-06-18", "2025-11-25", "2025-11-25" };
	char session[64], body[256];
	unsigned status;
	size_t i;
	json_t *r;

	(void)state;
	for (i = 0; i < 3; i++) {
		snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":"
			 "\"initialize\",\"params\":{\"protocolVersion\":\"%s\"}}", asked[i]);
		r = post(s, NULL, NULL, body, &status, session);
		assert_int_equal(status, 200);
		assert_string_equal(json_string_value(json_object_get(r, "id")), "a");
		assert_string_equal(json_string_value(json_object_get(
					    json_object_get(r, "result"), "protocolVersion")),
				    got[i]);
		assert_int_equal(strlen(session), 4 + 32);
		assert_memory_equal(session, "mcp_", 4);
		json_decref(r);
	}
	r = post(s, NULL, NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}",
		 &status, NULL);
	assert_int_equal(error_code(r), -32602);
	json_decref(r);
	mcp_server_free(s);
}

static void framing_errors_have_the_standard_codes(void **state)
{
	struct mcp_server *s = server_new(0);
	char session[64];
	unsigned status;
	json_t *r;

	(void)state;
	initialize(s, "2025-06-18", session);
	r = post(s, session, NULL, "{\"jsonrpc\":", &status, NULL);
	assert_int_equal(status, 400);
	assert_int_equal(error_code(r), -32700);
	json_decref(r);
	r = post(s, session, NULL, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", &status,
		 NULL);
	assert_int_equal(status, 400);
	assert_int_equal(error_code(r), -32600);
	json_decref(r);
	r = post(s, session, NULL, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", &status,
		 NULL);
	assert_int_equal(error_code(r), -32600);
	json_decref(r);
	r = post(s, session, NULL, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"nope\"}", &status,
		 NULL);
	assert_int_equal(status, 200);
	assert_int_equal(error_code(r), -32601);
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 4);
	json_decref(r);
	r = post(s, session, NULL, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
		 &status, NULL);
	assert_int_equal(status, 202);
	assert_null(r);
	mcp_server_free(s);
}

static void sessions_are_required_known_and_versioned(void **state)
{
	struct mcp_server *s = server_new(0);
	const char *ping = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
	struct mcp_http_request del = { .method = "DELETE" };
	struct api_response resp;
	char session[64];
	unsigned status;
	json_t *r;

	(void)state;
	initialize(s, "2025-11-25", session);
	r = post(s, NULL, NULL, ping, &status, NULL);
	assert_int_equal(status, 400);
	json_decref(r);
	r = post(s, "mcp_00000000000000000000000000000000", NULL, ping, &status, NULL);
	assert_int_equal(status, 404);
	assert_int_equal(error_code(r), -32001);
	json_decref(r);
	r = post(s, session, "2099-01-01", ping, &status, NULL);
	assert_int_equal(status, 400);
	json_decref(r);
	r = post(s, session, "2025-06-18", ping, &status, NULL);
	assert_int_equal(status, 200);
	json_decref(r);
	del.session_id = session;
	memset(&resp, 0, sizeof(resp));
	mcp_handle(s, &del, &resp);
	assert_int_equal(resp.status, 204);
	r = post(s, session, NULL, ping, &status, NULL);
	assert_int_equal(status, 404);
	json_decref(r);
	mcp_server_free(s);
}

static void idle_sessions_end(void **state)
{
	struct mcp_server *s = server_new(1);
	const char *ping = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
	char session[64];
	unsigned status = 200;
	int tries;
	json_t *r;

	(void)state;
	initialize(s, "2025-11-25", session);
	/* The reaper looks once a second: gone after 1 s idle, well within 30 s however slow. */
	for (tries = 0; tries < 300 && status != 404; tries++) {
		usleep(100 * 1000);
		if (tries % 20 == 19) {
			r = post(s, session, NULL, ping, &status, NULL);
			json_decref(r);
		}
	}
	assert_int_equal(status, 404);
	mcp_server_free(s);
}

static void sessions_are_bounded_and_refused_once_stopped(void **state)
{
	const char *init = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
			   "\"params\":{\"protocolVersion\":\"2025-11-25\"}}";
	struct mcp_http_request req = { .method = "POST", .body = init, .body_len = strlen(init) };
	struct mcp_server *s = server_new(0);
	struct api_response resp;
	char session[64];
	int i;

	(void)state;
	for (i = 0; i < MCP_SESSIONS_MAX; i++)
		initialize(s, "2025-11-25", session);
	memset(&resp, 0, sizeof(resp));
	mcp_handle(s, &req, &resp);
	assert_int_equal(resp.status, 429);
	assert_true(resp.retry_after_s > 0);
	assert_string_equal(resp.mcp_session_id, "");
	api_response_release(&resp);
	mcp_server_stop(s);
	memset(&resp, 0, sizeof(resp));
	mcp_handle(s, &req, &resp);
	assert_int_equal(resp.status, 503);
	api_response_release(&resp);
	mcp_server_free(s);
}

/* A full table evicts the least recently used session nobody used for half the idle timeout
 * (sessions here own no sandbox): a client that never ends its sessions cannot lock the others
 * out until they idle out. */
static void a_full_table_evicts_the_oldest_unused_session(void **state)
{
	struct mcp_server *s = server_new(10); /* evicts after 5 s, idles out after 10 s */
	char oldest[64], session[64];
	unsigned status;
	json_t *r;
	int i;

	(void)state;
	initialize(s, "2025-11-25", oldest);
	for (i = 1; i < MCP_SESSIONS_MAX; i++)
		initialize(s, "2025-11-25", session);
	sleep_ms(5200);
	r = post(s, session, NULL, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}", &status,
		 NULL); /* the newest is used again: not the one to go */
	assert_int_equal(status, 200);
	json_decref(r);
	initialize(s, "2025-11-25", session); /* 200: the oldest was evicted */
	r = post(s, oldest, NULL, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}", &status,
		 NULL);
	assert_int_equal(status, 404);
	json_decref(r);
	mcp_server_free(s);
}

static void tools_have_schemas_and_errors_are_results(void **state)
{
	json_t *tools = mcp_tools_list(), *tool, *result, *args;
	struct mcp_workspace ws;
	size_t i;

	(void)state;
	assert_non_null(tools);
	assert_int_equal(json_array_size(tools), 10);
	json_array_foreach(tools, i, tool) {
		assert_string_equal(json_string_value(json_object_get(
					    json_object_get(tool, "inputSchema"), "type")), "object");
		assert_string_equal(json_string_value(json_object_get(
					    json_object_get(tool, "outputSchema"), "type")), "object");
		assert_true(mcp_tool_exists(json_string_value(json_object_get(tool, "name"))));
	}
	json_decref(tools);
	assert_false(mcp_tool_exists("nope"));
	mcp_workspace_init(&ws, "mcp_test");
	args = json_pack("{s:s, s:s}", "language", "cobol", "code", "1");
	result = mcp_tools_call(NULL, &ws, "run_code", args);
	json_decref(args);
	assert_true(json_is_true(json_object_get(result, "isError")));
	assert_null(json_object_get(result, "structuredContent"));
	json_decref(result);
	mcp_workspace_end(&ws, NULL);
	mcp_workspace_destroy(&ws);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(initialize_negotiates_and_issues_a_session),
		cmocka_unit_test(framing_errors_have_the_standard_codes),
		cmocka_unit_test(sessions_are_required_known_and_versioned),
		cmocka_unit_test(idle_sessions_end),
		cmocka_unit_test(sessions_are_bounded_and_refused_once_stopped),
		cmocka_unit_test(a_full_table_evicts_the_oldest_unused_session),
		cmocka_unit_test(tools_have_schemas_and_errors_are_results),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
