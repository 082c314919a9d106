/* Unit tests for the context messages (src/proto/ctxmsg.c) and the EXIT's "context" member. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/ctxmsg.h"
#include "proto/messages.h"
#include "util/jsonutil.h"

#define CTX(text, m) proto_context_decode((const uint8_t *)(text), strlen(text), (m), NULL)

static int outcome_of(const char *text, bool with_restarted, struct proto_outcome *o)
{
	json_t *root = NULL;
	int ret;

	if (json_parse_object(text, strlen(text), &root, EMBER_E_PROTOCOL, NULL) < 0)
		return -2;
	ret = proto_outcome_from_json(root, with_restarted, o, NULL);
	json_decref(root);
	return ret;
}

static void open_roundtrips(void **state)
{
	struct proto_context in = { .op = PROTO_CONTEXT_OPEN, .language = PROTO_LANG_PYTHON,
				    .argc = 1, .envc = 1, .max_processes = 256 }, out;
	char argv0[] = "/usr/bin/python3", env0[] = "A=b=c", cwd[] = "work";
	size_t len;
	char *text;

	(void)state;
	strcpy(in.id, "ctx_00ff");
	in.argv[0] = argv0;
	in.env[0] = env0;
	in.cwd = cwd;
	text = proto_context_encode(&in, &len, NULL);
	assert_non_null(text);
	assert_int_equal(proto_context_decode((uint8_t *)text, len, &out, NULL), 0);
	assert_int_equal(out.op, PROTO_CONTEXT_OPEN);
	assert_string_equal(out.id, "ctx_00ff");
	assert_int_equal(out.language, PROTO_LANG_PYTHON);
	assert_int_equal(out.argc, 1);
	assert_string_equal(out.argv[0], "/usr/bin/python3");
	assert_null(out.argv[1]);
	assert_string_equal(out.env[0], "A=b=c");
	assert_string_equal(out.cwd, "work");
	assert_int_equal(out.max_processes, 256);
	proto_context_release(&out);
	free(text);
}

static void node_open_roundtrips_and_needs_argv(void **state)
{
	struct proto_context in = { .op = PROTO_CONTEXT_OPEN, .language = PROTO_LANG_NODE,
				    .argc = 1, .max_processes = 1 }, out;
	char argv0[] = "/usr/bin/node";
	struct proto_context m;
	size_t len;
	char *text;

	(void)state;
	strcpy(in.id, "ctx_0a");
	in.argv[0] = argv0;
	text = proto_context_encode(&in, &len, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"language\":\"node\""));
	assert_int_equal(proto_context_decode((uint8_t *)text, len, &out, NULL), 0);
	assert_int_equal(out.language, PROTO_LANG_NODE);
	assert_string_equal(out.argv[0], "/usr/bin/node");
	proto_context_release(&out);
	free(text);
	assert_int_equal(CTX("{\"op\":\"open\",\"id\":\"ctx_1\",\"language\":\"node\","
			     "\"argv\":[],\"env\":[],\"max_processes\":1}", &m), -1);
}

static void language_names_parse_back(void **state)
{
	enum proto_context_language l;

	(void)state;
	for (l = PROTO_LANG_PYTHON; l <= PROTO_LANG_NODE; l++)
		assert_int_equal(proto_context_language_parse(proto_context_language_name(l)), l);
	assert_string_equal(proto_context_language_name(PROTO_LANG_NODE), "node");
	assert_int_equal(proto_context_language_parse("Node"), PROTO_LANG_NONE);
	assert_int_equal(proto_context_language_parse("nodejs"), PROTO_LANG_NONE);
	assert_int_equal(proto_context_language_parse(""), PROTO_LANG_NONE);
}

static void close_and_restart_carry_only_the_id(void **state)
{
	struct proto_context m;

	(void)state;
	assert_int_equal(CTX("{\"op\":\"close\",\"id\":\"ctx_1\"}", &m), 0);
	assert_int_equal(m.op, PROTO_CONTEXT_CLOSE);
	proto_context_release(&m);
	assert_int_equal(CTX("{\"op\":\"restart\",\"id\":\"ctx_1\"}", &m), 0);
	assert_int_equal(m.op, PROTO_CONTEXT_RESTART);
	proto_context_release(&m);
	/* open's fields on a close are unknown fields */
	assert_int_equal(CTX("{\"op\":\"close\",\"id\":\"ctx_1\",\"language\":\"shell\"}", &m), -1);
}

static void context_rejects_bad_values(void **state)
{
	static const char *const bad[] = {
		"{\"op\":\"open\",\"id\":\"ctx_1\",\"language\":\"ruby\",\"argv\":[],\"env\":[],"
		"\"max_processes\":1}",
		"{\"op\":\"open\",\"id\":\"ctx_1\",\"language\":\"python\",\"argv\":[],\"env\":[],"
		"\"max_processes\":1}", /* python without an interpreter */
		"{\"op\":\"open\",\"id\":\"ctx_1\",\"language\":\"shell\",\"argv\":[],\"env\":[\"=x\"],"
		"\"max_processes\":1}",
		"{\"op\":\"open\",\"id\":\"ctx_1\",\"language\":\"shell\",\"argv\":[],\"env\":[],"
		"\"max_processes\":0}",
		"{\"op\":\"open\",\"id\":\"ctx_1\",\"language\":\"shell\",\"argv\":[],\"env\":[],"
		"\"max_processes\":1,\"cwd\":\"\"}",
		"{\"op\":\"close\",\"id\":\"ctx_\"}",
		"{\"op\":\"close\",\"id\":\"ctx_XY\"}",
		"{\"op\":\"close\",\"id\":\"../etc\"}",
		"{\"op\":\"close\",\"id\":\"ctx_00000000000000000000000000000000f\"}",
		"{\"op\":\"kill\",\"id\":\"ctx_1\"}",
		"{\"id\":\"ctx_1\"}",
		"[]",
	};
	struct proto_context m;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (CTX(bad[i], &m) != -1)
			fail_msg("accepted: %s", bad[i]);
	}
}

static void reply_roundtrips(void **state)
{
	size_t len;
	char *text = proto_context_reply_encode(1234, &len, NULL);
	int32_t pid = -1;

	(void)state;
	assert_non_null(text);
	assert_int_equal(proto_context_reply_decode((uint8_t *)text, len, &pid, NULL), 0);
	assert_int_equal(pid, 1234);
	free(text);
	assert_int_equal(proto_context_reply_decode((const uint8_t *)"{\"pid\":0}", 9, &pid, NULL),
			 0);
	assert_int_equal(pid, 0);
	assert_int_equal(proto_context_reply_decode((const uint8_t *)"{\"pid\":-1}", 10, &pid,
						    NULL), -1);
	assert_int_equal(proto_context_reply_decode((const uint8_t *)"{\"pid\":1,\"x\":1}", 15,
						    &pid, NULL), -1);
}

static void outcome_from_an_interpreter(void **state)
{
	struct proto_outcome o;

	(void)state;
	assert_int_equal(outcome_of("{\"result\":\"42\",\"error\":null,\"results\":[{\"mime\":"
				    "\"image/png\",\"data\":\"iVBO\"}]}", false, &o), 0);
	assert_true(o.present);
	assert_string_equal(o.result, "42");
	assert_false(o.has_error);
	assert_int_equal(o.nresults, 1);
	assert_string_equal(o.results[0].mime, "image/png");
	proto_outcome_release(&o);
	assert_int_equal(outcome_of("{\"result\":null,\"error\":{\"name\":\"E\",\"value\":\"v\","
				    "\"traceback\":\"t\"}}", false, &o), 0);
	assert_null(o.result);
	assert_true(o.has_error);
	assert_string_equal(o.error_traceback, "t");
	proto_outcome_release(&o);
	/* an interpreter may not claim a restart: only the agent knows */
	assert_int_equal(outcome_of("{\"restarted\":true}", false, &o), -1);
	assert_int_equal(outcome_of("{\"restarted\":true}", true, &o), 0);
	proto_outcome_release(&o);
}

static void outcome_rejects_bad_shapes_and_sizes(void **state)
{
	static const char *const bad[] = {
		"{\"result\":1}",
		"{\"error\":{\"name\":\"E\",\"value\":\"v\"}}",
		"{\"error\":\"boom\"}",
		"{\"results\":[{\"mime\":\"image/png\"}]}",
		"{\"results\":[{\"mime\":\"not a mime\",\"data\":\"\"}]}",
		"{\"results\":[{\"mime\":\"image/\",\"data\":\"\"}]}",
		"{\"results\":[{\"mime\":\"a/b/c\",\"data\":\"\"}]}",
		"{\"results\":{}}",
		"{\"other\":1}",
	};
	struct proto_outcome o;
	char *big;
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (outcome_of(bad[i], true, &o) != -1)
			fail_msg("accepted: %s", bad[i]);
	}
	/* nine results, and data beyond the total */
	big = malloc(PROTO_RESULTS_BYTES_MAX + 256);
	assert_non_null(big);
	n = (size_t)sprintf(big, "{\"results\":[");
	for (i = 0; i < PROTO_RESULTS_MAX + 1; i++)
		n += (size_t)sprintf(big + n, "%s{\"mime\":\"text/plain\",\"data\":\"x\"}",
				     i > 0 ? "," : "");
	strcpy(big + n, "]}");
	assert_int_equal(outcome_of(big, true, &o), -1);
	n = (size_t)sprintf(big, "{\"result\":\"");
	memset(big + n, 'r', PROTO_RESULT_TEXT_MAX + 1);
	strcpy(big + n + PROTO_RESULT_TEXT_MAX + 1, "\"}");
	assert_int_equal(outcome_of(big, true, &o), -1);
	n = (size_t)sprintf(big, "{\"results\":[{\"mime\":\"text/html\",\"data\":\"");
	memset(big + n, 'h', PROTO_RESULTS_BYTES_MAX + 1);
	strcpy(big + n + PROTO_RESULTS_BYTES_MAX + 1, "\"}]}");
	assert_int_equal(outcome_of(big, true, &o), -1);
	free(big);
}

static void exit_carries_the_outcome(void **state)
{
	struct proto_exit in = { .exit_code = 1 }, out;
	char result[] = "'x'", name[] = "KeyboardInterrupt", value[] = "", tb[] = "Traceback\n";
	size_t len;
	char *text;

	(void)state;
	in.context.present = true;
	in.context.restarted = true;
	in.context.result = result;
	in.context.has_error = true;
	in.context.error_name = name;
	in.context.error_value = value;
	in.context.error_traceback = tb;
	text = proto_exit_encode(&in, &len, NULL);
	assert_non_null(text);
	assert_int_equal(proto_exit_decode((uint8_t *)text, len, &out, NULL), 0);
	assert_true(out.context.present);
	assert_true(out.context.restarted);
	assert_string_equal(out.context.result, "'x'");
	assert_string_equal(out.context.error_name, "KeyboardInterrupt");
	proto_exit_release(&out);
	free(text);
	/* a plain exec's EXIT has no member at all */
	in.context.present = false;
	text = proto_exit_encode(&in, &len, NULL);
	assert_null(strstr(text, "context"));
	assert_int_equal(proto_exit_decode((uint8_t *)text, len, &out, NULL), 0);
	assert_false(out.context.present);
	free(text);
}

static void ids(void **state)
{
	(void)state;
	assert_true(proto_context_id_valid("ctx_0"));
	assert_true(proto_context_id_valid("ctx_0123456789abcdef0123456789abcdef"));
	assert_false(proto_context_id_valid("ctx_0123456789abcdef0123456789abcdef0"));
	assert_false(proto_context_id_valid("ctx_"));
	assert_false(proto_context_id_valid("ctx_A"));
	assert_false(proto_context_id_valid("sb_00"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(open_roundtrips),
		cmocka_unit_test(node_open_roundtrips_and_needs_argv),
		cmocka_unit_test(language_names_parse_back),
		cmocka_unit_test(close_and_restart_carry_only_the_id),
		cmocka_unit_test(context_rejects_bad_values),
		cmocka_unit_test(reply_roundtrips),
		cmocka_unit_test(outcome_from_an_interpreter),
		cmocka_unit_test(outcome_rejects_bad_shapes_and_sizes),
		cmocka_unit_test(exit_carries_the_outcome),
		cmocka_unit_test(ids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
