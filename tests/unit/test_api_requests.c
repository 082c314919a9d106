/* Unit tests for API request decoding (src/api/requests.c) and error status mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/requests.h"
#include "api/routes.h"
#include "api/server.h"

#define PARSE_CREATE(text, out, err) api_parse_create(text, strlen(text), out, err)
#define PARSE_EXEC(text, out, err) api_parse_exec(text, strlen(text), out, err)

static void create_parses_the_network_policy(void **state)
{
	struct api_create_body b;
	struct ember_error *err = NULL;

	(void)state;
	assert_int_equal(PARSE_CREATE("{}", &b, NULL), 0);
	assert_int_equal(b.network.mode, NET_MODE_NONE);
	api_create_body_release(&b);
	assert_int_equal(PARSE_CREATE("{\"network\":{\"mode\":\"allowlist\",\"allow\":"
				      "[\"pypi.org\",\"203.0.113.0/24:443\"]}}", &b, NULL), 0);
	assert_int_equal(b.network.mode, NET_MODE_ALLOWLIST);
	assert_int_equal(b.network.nallow, 2);
	api_create_body_release(&b);
	assert_int_equal(PARSE_CREATE("{\"network\":{\"mode\":\"sometimes\"}}", &b, &err), -1);
	assert_non_null(strstr(err->message, "network.mode"));
	ember_error_free(&err);
	api_create_body_release(&b);
	assert_int_equal(PARSE_CREATE("{\"network\":[]}", &b, &err), -1);
	assert_non_null(strstr(err->message, "network"));
	ember_error_free(&err);
	api_create_body_release(&b);
}

static void create_accepts_empty_body_and_full_body(void **state)
{
	struct api_create_body b;

	(void)state;
	assert_int_equal(PARSE_CREATE("", &b, NULL), 0);
	assert_string_equal(b.language_pack, "");
	assert_int_equal(b.vcpus, 0);
	assert_int_equal(PARSE_CREATE("  \n", &b, NULL), 0);
	assert_int_equal(PARSE_CREATE("{\"language_pack\":\"shell\",\"vcpus\":2,\"memory_mib\":512,"
				      "\"timeout_s\":60}", &b, NULL), 0);
	assert_string_equal(b.language_pack, "shell");
	assert_int_equal(b.vcpus, 2);
	assert_int_equal(b.memory_mib, 512);
	assert_int_equal(b.timeout_s, 60);
}

static void create_rejects_bad_fields_naming_them(void **state)
{
	static const struct {
		const char *body;
		const char *field;
	} cases[] = {
		{ "{\"vcpus\":0}", "vcpus" },
		{ "{\"vcpus\":1.5}", "vcpus" },
		{ "{\"vcpus\":\"1\"}", "vcpus" },
		{ "{\"memory_mib\":99999999999999}", "memory_mib" },
		{ "{\"timeout_s\":-1}", "timeout_s" },
		{ "{\"language_pack\":5}", "language_pack" },
		{ "{\"language_pack\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", "language_pack" },
		{ "{\"shape\":\"big\"}", "shape" },
		{ "{\"vcpus\":1,\"vcpus\":2}", "JSON" },
		{ "[]", "object" },
		{ "{", "JSON" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct api_create_body b;
		struct ember_error *err = NULL;

		assert_int_equal(PARSE_CREATE(cases[i].body, &b, &err), -1);
		assert_non_null(err);
		assert_int_equal(err->kind, EMBER_E_INVALID);
		if (strstr(err->message, cases[i].field) == NULL)
			fail_msg("case %zu: `%s` does not name `%s`", i, err->message,
				 cases[i].field);
		ember_error_free(&err);
	}
}

static void exec_decodes_code_stdin_timeout_and_env(void **state)
{
	struct api_exec_body b;

	(void)state;
	assert_int_equal(PARSE_EXEC("{\"code\":\"print(1)\",\"stdin\":\"in\",\"timeout_ms\":50,"
				    "\"env\":{\"A\":\"1\",\"_b2\":\"x=y\"}}", &b, NULL), 0);
	assert_string_equal(b.code, "print(1)");
	assert_true(b.has_stdin);
	assert_int_equal(b.stdin_len, 2);
	assert_int_equal(b.timeout_ms, 50);
	assert_int_equal(b.envc, 2);
	assert_string_equal(b.env[0], "A=1");
	assert_string_equal(b.env[1], "_b2=x=y");
	api_exec_body_release(&b);
	assert_int_equal(PARSE_EXEC("{\"code\":\"\"}", &b, NULL), 0);
	assert_false(b.has_stdin);
	assert_int_equal(b.timeout_ms, 0);
	api_exec_body_release(&b);
}

static void exec_rejects_bad_env_and_oversized_code(void **state)
{
	struct api_exec_body b;
	struct ember_error *err = NULL;
	size_t n = 300 * 1024;
	char *big = malloc(n + 32);

	(void)state;
	assert_int_equal(PARSE_EXEC("{\"code\":\"x\",\"env\":{\"A-B\":\"1\"}}", &b, NULL), -1);
	assert_int_equal(PARSE_EXEC("{\"code\":\"x\",\"env\":{\"A\":1}}", &b, NULL), -1);
	assert_int_equal(PARSE_EXEC("{\"code\":\"x\",\"env\":{\"A\":\"a\\u0000b\"}}", &b, NULL), -1);
	assert_int_equal(PARSE_EXEC("{\"code\":\"x\",\"timeout_ms\":0}", &b, NULL), -1);
	assert_int_equal(PARSE_EXEC("{\"stdin\":\"x\"}", &b, NULL), -1);
	strcpy(big, "{\"code\":\"");
	memset(big + 9, 'a', n);
	strcpy(big + 9 + n, "\"}");
	assert_int_equal(PARSE_EXEC(big, &b, &err), -1);
	assert_int_equal(err->kind, EMBER_E_TOO_LARGE);
	ember_error_free(&err);
	free(big);
}

static void sandbox_id_shape_is_exact(void **state)
{
	(void)state;
	assert_true(api_valid_sandbox_id("sb_0123456789abcdef0123456789abcdef"));
	assert_false(api_valid_sandbox_id("sb_0123456789abcdef0123456789abcde"));
	assert_false(api_valid_sandbox_id("sb_0123456789ABCDEF0123456789abcdef"));
	assert_false(api_valid_sandbox_id("sb_../../../../../../../../etc/pass"));
	assert_false(api_valid_sandbox_id("xx_0123456789abcdef0123456789abcdef"));
	assert_false(api_valid_sandbox_id(""));
}

static void error_kinds_map_to_statuses(void **state)
{
	(void)state;
	assert_int_equal(api_status_for(EMBER_E_INVALID), 400);
	assert_int_equal(api_status_for(EMBER_E_NOT_FOUND), 404);
	assert_int_equal(api_status_for(EMBER_E_METHOD), 405);
	assert_int_equal(api_status_for(EMBER_E_CONFLICT), 409);
	assert_int_equal(api_status_for(EMBER_E_TOO_LARGE), 413);
	assert_int_equal(api_status_for(EMBER_E_CAPACITY), 429);
	assert_int_equal(api_status_for(EMBER_E_INTERNAL), 500);
	assert_int_equal(api_status_for(EMBER_E_GUEST), 502);
	assert_int_equal(api_status_for(EMBER_E_PROTOCOL), 502);
	assert_int_equal(api_status_for(EMBER_E_UNAVAILABLE), 503);
	assert_int_equal(api_status_for(EMBER_E_GUEST_TIMEOUT), 504);
}

#define VALID_ID "sb_0123456789abcdef0123456789abcdef"

/* Routes answered before any handler runs (no manager needed): 404s and 405s, byte for byte. */
static void route_answers_unknown_paths_and_wrong_methods_exactly(void **state)
{
	static const struct {
		const char *method, *path;
		unsigned status;
		const char *allow, *body;
	} cases[] = {
		{ "GET", "/", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"unknown route (see docs/api.md)\"}}" },
		{ "GET", "/healthz/", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"unknown route (see docs/api.md)\"}}" },
		{ "GET", "/sandboxesX", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"unknown route (see docs/api.md)\"}}" },
		{ "POST", "/healthz", 405, "GET",
		  "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"method POST is not "
		  "allowed here (allowed: GET)\"}}" },
		{ "DELETE", "/packs", 405, "GET",
		  "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"method DELETE is not "
		  "allowed here (allowed: GET)\"}}" },
		{ "PUT", "/sandboxes", 405, "GET, POST",
		  "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"method PUT is not "
		  "allowed here (allowed: GET, POST)\"}}" },
		{ "PATCH", "/sandboxes/" VALID_ID, 405, "GET, DELETE",
		  "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"method PATCH is not "
		  "allowed here (allowed: GET, DELETE)\"}}" },
		{ "GET", "/sandboxes/" VALID_ID "/exec", 405, "POST",
		  "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"method GET is not "
		  "allowed here (allowed: POST)\"}}" },
		{ "POST", "/sandboxes/" VALID_ID "/console", 405, "GET",
		  "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"method POST is not "
		  "allowed here (allowed: GET)\"}}" },
		{ "DELETE", "/sandboxes/" VALID_ID "/processes", 405, "GET, POST",
		  "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"method DELETE is not "
		  "allowed here (allowed: GET, POST)\"}}" },
		{ "GET", "/sandboxes/" VALID_ID "/contexts/ctx_XYZ", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"no context `ctx_XYZ` "
		  "in this sandbox\"}}" },
		{ "POST", "/sandboxes/" VALID_ID "/contexts/..%2f/restart", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"no context `..%2f` in "
		  "this sandbox\"}}" },
		{ "PUT", "/sandboxes/" VALID_ID "/contexts/ctx_1", 405, "GET, DELETE",
		  "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"method PUT is not "
		  "allowed here (allowed: GET, DELETE)\"}}" },
		{ "GET", "/sandboxes/" VALID_ID "/processes/0", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"no background process "
		  "`0`\"}}" },
		{ "GET", "/sandboxes/" VALID_ID "/processes/12x/output", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"no background process "
		  "`12x`\"}}" },
		{ "GET", "/sandboxes/" VALID_ID "/processes/99999999999999999999/output", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"no background process "
		  "`99999999999999999999`\"}}" },
		{ "POST", "/sandboxes/" VALID_ID "/processes/7/signal", 400, NULL,
		  "{\"error\":{\"code\":\"invalid_argument\",\"message\":\"malformed JSON at byte 0: "
		  "'[' or '{' expected near end of file\"}}" },
		{ "GET", "/sandboxes/" VALID_ID "/processes/7/signal", 405, "POST",
		  "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"method GET is not "
		  "allowed here (allowed: POST)\"}}" },
		{ "AVERYLONGMETHODNAMEXX", "/healthz", 405, "GET",
		  "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"method AVERYLONGMETHODN "
		  "is not allowed here (allowed: GET)\"}}" },
		{ "GET", "/sandboxes/" VALID_ID "/nope", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"unknown route\"}}" },
		{ "GET", "/sandboxes/" VALID_ID "/", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"unknown route\"}}" },
		{ "POST", "/sandboxes/" VALID_ID "/exec/more", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"unknown route\"}}" },
		{ "GET", "/sandboxes/bad", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"no sandbox `bad`\"}}" },
		{ "PATCH", "/sandboxes/bad", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"no sandbox `bad`\"}}" },
		{ "GET", "/sandboxes/bad/exec", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"no sandbox `bad`\"}}" },
		{ "GET", "/sandboxes/bad/nope/more", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"no sandbox `bad`\"}}" },
		{ "GET", "/sandboxes/", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"no sandbox ``\"}}" },
		{ "POST", "/sandboxes//exec", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"no sandbox ``\"}}" },
		{ "GET", "/sandboxes/" VALID_ID "0", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"no such sandbox\"}}" },
		{ "POST", "/sandboxes/" VALID_ID "0/exec", 404, NULL,
		  "{\"error\":{\"code\":\"not_found\",\"message\":\"no such sandbox\"}}" },
	};
	struct api_context ctx = { 0 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct api_response resp;
		char *text;

		api_route(&ctx, cases[i].method, cases[i].path, NULL, "", 0, &resp);
		text = json_dumps(resp.body, JSON_COMPACT);
		if (resp.status != cases[i].status || strcmp(text, cases[i].body) != 0)
			fail_msg("case %zu %s %s: got %u %s", i, cases[i].method, cases[i].path,
				 resp.status, text);
		assert_string_equal(resp.allow, cases[i].allow != NULL ? cases[i].allow : "");
		free(text);
		json_decref(resp.body);
	}
}

static void create_decodes_labels_and_idle_timeout(void **state)
{
	struct api_create_body b;
	struct ember_error *err = NULL;

	(void)state;
	assert_int_equal(PARSE_CREATE("{\"labels\":{\"team\":\"red\",\"x/y.z\":\"\"},"
				      "\"idle_timeout_s\":30}", &b, NULL), 0);
	assert_int_equal(b.labels.count, 2);
	assert_string_equal(sandbox_labels_get(&b.labels, "team"), "red");
	assert_string_equal(sandbox_labels_get(&b.labels, "x/y.z"), "");
	assert_int_equal(b.idle_timeout_s, 30);
	assert_int_equal(PARSE_CREATE("{\"labels\":null,\"idle_timeout_s\":null}", &b, NULL), 0);
	assert_int_equal(b.labels.count, 0);
	assert_int_equal(b.idle_timeout_s, 0);
	assert_int_equal(PARSE_CREATE("{\"idle_timeout_s\":0}", &b, &err), -1);
	assert_non_null(strstr(err->message, "idle_timeout_s"));
	ember_error_free(&err);
	assert_int_equal(PARSE_CREATE("{\"labels\":{\"a b\":\"v\"}}", &b, &err), -1);
	assert_non_null(strstr(err->message, "field `labels`: label key `a b`"));
	ember_error_free(&err);
}

static void timeout_body_is_one_bounded_field(void **state)
{
	static const char *const bad[] = { "", "{}", "{\"timeout_s\":0}", "{\"timeout_s\":-5}",
					   "{\"timeout_s\":2592001}", "{\"timeout_s\":\"60\"}",
					   "{\"timeout_s\":60,\"x\":1}", "[60]", NULL };
	unsigned t = 0;
	size_t i;

	(void)state;
	assert_int_equal(api_parse_timeout("{\"timeout_s\":60}", 16, &t, NULL), 0);
	assert_int_equal(t, 60);
	for (i = 0; bad[i] != NULL; i++) {
		if (api_parse_timeout(bad[i], strlen(bad[i]), &t, NULL) != -1)
			fail_msg("accepted `%s`", bad[i]);
	}
}

/* A query from "k=v&k&..." split like the HTTP layer does (first `=`; none: NULL value). */
static void split_query(char *text, struct api_query *q)
{
	char *save = NULL, *part;

	memset(q, 0, sizeof(*q));
	for (part = strtok_r(text, "&", &save); part != NULL; part = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(part, '=');

		if (q->count == API_QUERY_PAIRS_MAX) {
			q->too_many = true;
			return;
		}
		if (eq != NULL)
			*eq = '\0';
		q->pairs[q->count].key = part;
		q->pairs[q->count++].value = eq != NULL ? eq + 1 : NULL;
	}
}

static void list_query_takes_label_terms_and_one_state(void **state)
{
	struct api_list_filter f;
	struct api_query q;
	char text[] = "label=team=red&state=ready&label=tier&label=e=";

	(void)state;
	split_query(text, &q);
	assert_int_equal(api_parse_list_query(&q, &f, NULL), 0);
	assert_true(f.has_state);
	assert_int_equal(f.state, SANDBOX_READY);
	assert_int_equal(f.nterms, 3);
	assert_string_equal(f.terms[0].key, "team");
	assert_string_equal(f.terms[0].value, "red");
	assert_string_equal(f.terms[1].key, "tier");
	assert_null(f.terms[1].value);
	assert_string_equal(f.terms[2].key, "e");
	assert_string_equal(f.terms[2].value, "");
	memset(&q, 0, sizeof(q));
	assert_int_equal(api_parse_list_query(&q, &f, NULL), 0);
	assert_false(f.has_state);
	assert_int_equal(f.nterms, 0);
}

static void list_query_refuses_anything_else_naming_it(void **state)
{
	static const struct {
		const char *query;
		const char *words;
	} cases[] = {
		{ "foo=1", "unknown query parameter `foo`" },
		{ "Label=a", "unknown query parameter `Label`" },
		{ "state=Ready", "must be one of" },
		{ "state=gone", "must be one of" },
		{ "state=ready&state=ready", "given twice" },
		{ "state", "`state` needs a value" },
		{ "label", "`label` needs a value" },
		{ "label=", "KEY or KEY=VALUE" },
		{ "label==v", "KEY or KEY=VALUE" },
		{ "label=-k", "query parameter `label`: label key `-k` must start" },
		{ "label=k=a\x01", "without control characters" },
		{ "label=k=\xc3", "UTF-8" },
	};
	char text[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct api_list_filter f;
		struct api_query q;
		struct ember_error *err = NULL;

		snprintf(text, sizeof(text), "%s", cases[i].query);
		split_query(text, &q);
		assert_int_equal(api_parse_list_query(&q, &f, &err), -1);
		if (strstr(err->message, cases[i].words) == NULL)
			fail_msg("`%s`: %s", cases[i].query, err->message);
		ember_error_free(&err);
	}
}

static void list_query_is_bounded(void **state)
{
	struct api_list_filter f;
	struct api_query q;
	struct ember_error *err = NULL;
	char text[1024];
	size_t used = 0;
	int i;

	(void)state;
	for (i = 0; i < SANDBOX_LABELS_MAX + 1; i++)
		used += (size_t)snprintf(text + used, sizeof(text) - used, "%slabel=k%d",
					 i > 0 ? "&" : "", i);
	split_query(text, &q);
	assert_int_equal(api_parse_list_query(&q, &f, &err), -1);
	assert_non_null(strstr(err->message, "at most 32"));
	ember_error_free(&err);
	memset(&q, 0, sizeof(q));
	q.too_many = true;
	assert_int_equal(api_parse_list_query(&q, &f, &err), -1);
	assert_non_null(strstr(err->message, "more than 40 query parameters"));
	ember_error_free(&err);
	memset(&q, 0, sizeof(q));
	q.has_nul = true;
	assert_int_equal(api_parse_list_query(&q, &f, &err), -1);
	assert_non_null(strstr(err->message, "contains NUL"));
	ember_error_free(&err);
}

static void list_filter_matches_state_and_labels(void **state)
{
	struct sandbox_info info = { .state = SANDBOX_READY };
	struct api_list_filter f;
	struct api_query q;
	char a[] = "label=team=red&state=ready", b[] = "state=failed", c[] = "label=team=blue";

	(void)state;
	assert_int_equal(sandbox_labels_add(&info.labels, "team", "red", 3, NULL), 0);
	split_query(a, &q);
	assert_int_equal(api_parse_list_query(&q, &f, NULL), 0);
	assert_true(api_list_filter_match(&f, &info));
	split_query(b, &q);
	assert_int_equal(api_parse_list_query(&q, &f, NULL), 0);
	assert_false(api_list_filter_match(&f, &info));
	split_query(c, &q);
	assert_int_equal(api_parse_list_query(&q, &f, NULL), 0);
	assert_false(api_list_filter_match(&f, &info));
}

static void process_body_takes_code_or_cmd(void **state)
{
	static const char *const bad[] = {
		"{}", "{\"code\":\"x\",\"cmd\":[\"ls\"]}", "{\"cmd\":[]}", "{\"cmd\":[\"\"]}",
		"{\"cmd\":\"ls\"}", "{\"cmd\":[1]}", "{\"code\":\"x\",\"cwd\":\"\"}",
		"{\"code\":\"x\",\"stdin\":\"yes\"}", "{\"code\":\"x\",\"timeout_ms\":5}",
		"{\"code\":\"x\",\"tag\":\"" "0123456789012345678901234567890123456789"
		"0123456789012345678901234\"}",
		"{\"cmd\":[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
		"\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]}", NULL };
	const char *ok = "{\"cmd\":[\"python3\",\"-m\",\"http.server\"],\"cwd\":\"www\","
			 "\"env\":{\"A\":\"1\"},\"stdin\":true,\"tag\":\"web\",\"code\":null}";
	struct api_process_body b;
	size_t i;

	(void)state;
	assert_int_equal(api_parse_process(ok, strlen(ok), &b, NULL), 0);
	assert_int_equal(b.cmdc, 3);
	assert_string_equal(b.cmd[2], "http.server");
	assert_null(b.cmd[3]);
	assert_null(b.code);
	assert_string_equal(b.cwd, "www");
	assert_string_equal(b.env[0], "A=1");
	assert_true(b.has_stdin);
	assert_string_equal(b.tag, "web");
	api_process_body_release(&b);
	assert_int_equal(api_parse_process("{\"code\":\"print(1)\"}", 19, &b, NULL), 0);
	assert_int_equal(b.cmdc, 0);
	assert_int_equal(b.code_len, 8);
	api_process_body_release(&b);
	for (i = 0; bad[i] != NULL; i++) {
		if (api_parse_process(bad[i], strlen(bad[i]), &b, NULL) != -1)
			fail_msg("accepted `%s`", bad[i]);
	}
}

static void signal_body_takes_names_and_numbers(void **state)
{
	static const char *const bad[] = { "{}", "{\"signal\":\"TERMX\"}", "{\"signal\":0}",
					   "{\"signal\":65}", "{\"signal\":\"\"}",
					   "{\"signal\":15,\"x\":1}", "{\"signal\":true}", NULL };
	int sig = 0;
	size_t i;

	(void)state;
	assert_int_equal(api_parse_signal("{\"signal\":\"TERM\"}", 17, &sig, NULL), 0);
	assert_int_equal(sig, 15);
	assert_int_equal(api_parse_signal("{\"signal\":\"SIGKILL\"}", 20, &sig, NULL), 0);
	assert_int_equal(sig, 9);
	assert_int_equal(api_parse_signal("{\"signal\":34}", 13, &sig, NULL), 0);
	assert_int_equal(sig, 34);
	for (i = 0; bad[i] != NULL; i++) {
		if (api_parse_signal(bad[i], strlen(bad[i]), &sig, NULL) != -1)
			fail_msg("accepted `%s`", bad[i]);
	}
}

static void pid_segment_is_a_plain_positive_number(void **state)
{
	static const char *const bad[] = { "", "0", "01", "-1", "+1", "1x", "2147483648",
					   "99999999999", " 1", NULL };
	int32_t pid = 0;
	size_t i;

	(void)state;
	assert_int_equal(api_parse_pid("1", &pid, NULL), 0);
	assert_int_equal(pid, 1);
	assert_int_equal(api_parse_pid("2147483647", &pid, NULL), 0);
	assert_int_equal(pid, INT32_MAX);
	for (i = 0; bad[i] != NULL; i++) {
		if (api_parse_pid(bad[i], &pid, NULL) != -1)
			fail_msg("accepted `%s`", bad[i]);
	}
}

static void context_body_names_a_language_or_leaves_it_to_the_pack(void **state)
{
	static const struct {
		const char *body;
		enum proto_context_language language;
	} good[] = {
		{ "", PROTO_LANG_NONE },
		{ "{}", PROTO_LANG_NONE },
		{ "{\"language\":\"python\"}", PROTO_LANG_PYTHON },
		{ "{\"language\":\"node\"}", PROTO_LANG_NODE },
		{ "{\"language\":\"shell\",\"cwd\":\"/tmp\"}", PROTO_LANG_SHELL },
	};
	static const char *const bad[] = { "{\"language\":\"ruby\"}", "{\"language\":\"Node\"}",
					   "{\"language\":\"\"}", "{\"language\":1}", NULL };
	struct api_context_body b;
	struct ember_error *err = NULL;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(api_parse_context(good[i].body, strlen(good[i].body), &b, NULL), 0);
		assert_int_equal(b.language, good[i].language);
		api_context_body_release(&b);
	}
	for (i = 0; bad[i] != NULL; i++) {
		if (api_parse_context(bad[i], strlen(bad[i]), &b, &err) != -1)
			fail_msg("accepted %s", bad[i]);
		assert_non_null(strstr(err->message, "language"));
		ember_error_free(&err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(create_accepts_empty_body_and_full_body),
		cmocka_unit_test(create_parses_the_network_policy),
		cmocka_unit_test(create_rejects_bad_fields_naming_them),
		cmocka_unit_test(exec_decodes_code_stdin_timeout_and_env),
		cmocka_unit_test(exec_rejects_bad_env_and_oversized_code),
		cmocka_unit_test(sandbox_id_shape_is_exact),
		cmocka_unit_test(error_kinds_map_to_statuses),
		cmocka_unit_test(route_answers_unknown_paths_and_wrong_methods_exactly),
		cmocka_unit_test(create_decodes_labels_and_idle_timeout),
		cmocka_unit_test(timeout_body_is_one_bounded_field),
		cmocka_unit_test(process_body_takes_code_or_cmd),
		cmocka_unit_test(signal_body_takes_names_and_numbers),
		cmocka_unit_test(pid_segment_is_a_plain_positive_number),
		cmocka_unit_test(list_query_takes_label_terms_and_one_state),
		cmocka_unit_test(list_query_refuses_anything_else_naming_it),
		cmocka_unit_test(list_query_is_bounded),
		cmocka_unit_test(list_filter_matches_state_and_labels),
		cmocka_unit_test(context_body_names_a_language_or_leaves_it_to_the_pack),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
