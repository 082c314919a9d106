/* Unit tests for the E2B code interpreter's pure parts: the /execute NDJSON lines made from a
 * context exec's events (src/e2b/execevents.c) and the request decoders and language names
 * (src/e2b/interpreq.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "api/events.h"
#include "e2b/interpreq.h"
#include "e2b/streamfmt.h"

/* The lines of out as JSON values; out is emptied. */
static json_t *lines(struct buf *out)
{
	json_t *arr = json_array();
	char *text, *save = NULL, *line;

	assert_int_equal(buf_terminate(out), 0);
	text = (char *)out->data;
	assert_true(out->len > 0 && text[out->len - 1] == '\n');
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		json_t *v = json_loads(line, 0, NULL);

		assert_non_null(v);
		json_array_append_new(arr, v);
	}
	out->len = 0;
	return arr;
}

static const char *member(json_t *arr, size_t i, const char *key)
{
	return json_string_value(json_object_get(json_array_get(arr, i), key));
}

static void output_is_text_with_a_timestamp_and_bad_bytes_replaced(void **state)
{
	struct buf out = { 0 };
	json_t *arr;

	(void)state;
	assert_int_equal(e2b_execute_events_output(&out, "stdout", (const uint8_t *)"hi\n", 3, NULL),
			 0);
	assert_int_equal(e2b_execute_events_output(&out, "stderr", (const uint8_t *)"a\xff", 2, NULL),
			 0);
	arr = lines(&out);
	assert_int_equal(json_array_size(arr), 2);
	assert_string_equal(member(arr, 0, "type"), "stdout");
	assert_string_equal(member(arr, 0, "text"), "hi\n");
	assert_non_null(member(arr, 0, "timestamp"));
	assert_string_equal(member(arr, 1, "type"), "stderr");
	assert_string_equal(member(arr, 1, "text"), "a\xef\xbf\xbd");
	json_decref(arr);
	/* Through events.c, as execstream.c calls it. */
	struct api_utf8_carry carry = { .len = 0 };

	assert_int_equal(api_events_output(&out, API_EVENTS_E2B_EXECUTE, "stdout", &carry,
					   (const uint8_t *)"x", 1, false, NULL),
			 0);
	arr = lines(&out);
	assert_string_equal(member(arr, 0, "text"), "x");
	json_decref(arr);
	buf_release(&out);
}

static void exit_becomes_main_result_figures_error_and_end(void **state)
{
	struct buf out = { 0 };
	json_t *exit = json_loads(
		"{\"exit_code\":1,\"result\":\"'ab'\",\"results\":["
		"{\"mime\":\"text/html\",\"data\":\"<b>\"},"
		"{\"mime\":\"application/json\",\"data\":\"{\\\"a\\\": 1}\"},"
		"{\"mime\":\"text/x-odd\",\"data\":\"odd\"},"
		"{\"mime\":\"image/png\",\"data\":\"iVBO\"}],"
		"\"error\":{\"name\":\"ValueError\",\"value\":\"bad\",\"traceback\":\"tb\"},"
		"\"context_restarted\":false}",
		0, NULL);
	json_t *arr, *first;

	(void)state;
	assert_non_null(exit);
	assert_int_equal(api_events_object(&out, API_EVENTS_E2B_EXECUTE, "exit", exit, NULL), 0);
	arr = lines(&out);
	assert_int_equal(json_array_size(arr), 4);
	first = json_array_get(arr, 0);
	assert_string_equal(member(arr, 0, "type"), "result");
	assert_string_equal(member(arr, 0, "text"), "ab"); /* a str's quotes go, as E2B's */
	assert_true(json_is_true(json_object_get(first, "is_main_result")));
	assert_string_equal(member(arr, 0, "html"), "<b>");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(first, "json"), "a")), 1);
	assert_string_equal(member(arr, 0, "text/x-odd"), "odd");
	assert_null(json_object_get(first, "png"));
	assert_string_equal(member(arr, 1, "type"), "result");
	assert_string_equal(member(arr, 1, "png"), "iVBO");
	assert_true(json_is_false(json_object_get(json_array_get(arr, 1), "is_main_result")));
	assert_string_equal(member(arr, 2, "type"), "error");
	assert_string_equal(member(arr, 2, "name"), "ValueError");
	assert_string_equal(member(arr, 2, "value"), "bad");
	assert_string_equal(member(arr, 2, "traceback"), "tb");
	assert_string_equal(member(arr, 3, "type"), "end_of_execution");
	json_decref(arr);
	json_decref(exit);
	buf_release(&out);
}

static void a_run_without_value_is_only_its_end_and_a_restart_is_an_error(void **state)
{
	struct buf out = { 0 };
	json_t *plain = json_loads("{\"exit_code\":0,\"result\":null,\"results\":[],\"error\":null}",
				   0, NULL);
	json_t *restarted = json_loads("{\"exit_code\":-1,\"result\":null,\"results\":[],"
				       "\"error\":null,\"context_restarted\":true,"
				       "\"oom_killed\":true}",
				       0, NULL);
	json_t *broke = json_loads("{\"error\":{\"code\":\"guest_failed\",\"message\":\"gone\"}}", 0,
				   NULL);
	json_t *arr;

	(void)state;
	assert_int_equal(e2b_execute_events_object(&out, "exit", plain, NULL), 0);
	arr = lines(&out);
	assert_int_equal(json_array_size(arr), 1);
	assert_string_equal(member(arr, 0, "type"), "end_of_execution");
	json_decref(arr);
	assert_int_equal(e2b_execute_events_object(&out, "exit", restarted, NULL), 0);
	arr = lines(&out);
	assert_int_equal(json_array_size(arr), 2);
	assert_string_equal(member(arr, 0, "name"), "ContextRestarting");
	assert_non_null(strstr(member(arr, 0, "value"), "memory"));
	json_decref(arr);
	/* The exec broke off: an error line, no end_of_execution (as E2B's server). */
	assert_int_equal(e2b_execute_events_object(&out, "error", broke, NULL), 0);
	arr = lines(&out);
	assert_int_equal(json_array_size(arr), 1);
	assert_string_equal(member(arr, 0, "name"), "UnexpectedEndOfExecution");
	assert_string_equal(member(arr, 0, "value"), "gone");
	json_decref(arr);
	json_decref(plain);
	json_decref(restarted);
	json_decref(broke);
	buf_release(&out);
}

static void execute_body_is_strict(void **state)
{
	struct e2b_execute_body b;
	struct ember_error *err = NULL;
	const char *ok = "{\"code\":\"x\",\"context_id\":null,\"language\":\" JS \","
			 "\"env_vars\":{\"A_1\":\"v\"}}";

	(void)state;
	assert_int_equal(e2b_parse_execute(ok, strlen(ok), &b, &err), 0);
	assert_string_equal(b.code, "x");
	assert_null(b.context_id);
	assert_int_equal(b.language, PROTO_LANG_NODE);
	assert_non_null(b.env_vars);
	e2b_execute_body_release(&b);
	assert_int_equal(e2b_parse_execute("{\"code\":\"x\"}", 12, &b, &err), 0);
	assert_int_equal(b.language, PROTO_LANG_NONE);
	assert_null(b.env_vars);
	e2b_execute_body_release(&b);
	static const char *const bad[] = {
		"{}",
		"{\"code\":1}",
		"{\"code\":\"x\",\"other\":1}",
		"{\"code\":\"x\",\"language\":\"r\"}",
		"{\"code\":\"x\",\"language\":\"python\",\"context_id\":\"ctx_1\"}",
		"{\"code\":\"x\",\"env_vars\":{\"1A\":\"v\"}}",
		"{\"code\":\"x\",\"env_vars\":{\"A\":2}}",
		"{\"code\":\"x\",\"env_vars\":[]}",
		"[1]",
		"{\"code\":\"x\"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(e2b_parse_execute(bad[i], strlen(bad[i]), &b, &err), -1);
		assert_int_equal(err->kind, EMBER_E_INVALID);
		ember_error_free(&err);
	}
	/* An id longer than any of ours: no such context (the SDK's NotFound). */
	const char *long_id = "{\"code\":\"x\",\"context_id\":\"ctx_0123456789012345678901234567890123456789\"}";

	assert_int_equal(e2b_parse_execute(long_id, strlen(long_id), &b, &err), -1);
	assert_int_equal(err->kind, EMBER_E_NOT_FOUND);
	ember_error_free(&err);
}

static void context_body_and_language_names(void **state)
{
	struct e2b_context_body b;
	struct ember_error *err = NULL;

	(void)state;
	assert_int_equal(e2b_parse_context_create("", 0, &b, &err), 0);
	assert_int_equal(b.language, PROTO_LANG_NONE);
	assert_null(b.cwd);
	e2b_context_body_release(&b);
	const char *bash = "{\"language\":\"bash\",\"cwd\":\"/tmp\"}";

	assert_int_equal(e2b_parse_context_create(bash, strlen(bash), &b, &err), 0);
	assert_int_equal(b.language, PROTO_LANG_SHELL);
	assert_string_equal(b.cwd, "/tmp");
	e2b_context_body_release(&b);
	assert_int_equal(e2b_parse_context_create("{\"language\":\"java\"}", 19, &b, &err), -1);
	ember_error_free(&err);
	assert_int_equal(e2b_language_parse("Python", 6), PROTO_LANG_PYTHON);
	assert_int_equal(e2b_language_parse("", 0), PROTO_LANG_PYTHON);
	assert_int_equal(e2b_language_parse("typescript", 10), PROTO_LANG_NONE);
	assert_string_equal(e2b_language_name(PROTO_LANG_NODE), "javascript");
	assert_string_equal(e2b_language_name(PROTO_LANG_SHELL), "bash");
	assert_string_equal(e2b_language_name(PROTO_LANG_PYTHON), "python");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(output_is_text_with_a_timestamp_and_bad_bytes_replaced),
		cmocka_unit_test(exit_becomes_main_result_figures_error_and_end),
		cmocka_unit_test(a_run_without_value_is_only_its_end_and_a_restart_is_an_error),
		cmocka_unit_test(execute_body_is_strict),
		cmocka_unit_test(context_body_and_language_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
