/* Unit tests for the E2B face's Connect pieces: the protocol (src/e2b/connect.c), envd's
 * process.Process request messages (src/e2b/processreq.c) and the process stream's frames
 * (src/e2b/connectevents.c), against the shapes the pinned SDK sends and reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "e2b/connect.h"
#include "e2b/processreq.h"
#include "e2b/streamfmt.h"

static json_t *parse(const char *text)
{
	json_t *v = json_loads(text, JSON_ALLOW_NUL, NULL);

	assert_non_null(v);
	return v;
}

/* The envelopes of out, one JSON text each (flags in flags[]), checked to fill it exactly. */
static size_t envelopes(const struct buf *out, uint8_t flags[], char *texts[], size_t max)
{
	size_t off = 0, n = 0;

	while (off < out->len) {
		uint32_t len;

		assert_true(n < max);
		assert_true(out->len - off >= 5);
		len = (uint32_t)out->data[off + 1] << 24 | (uint32_t)out->data[off + 2] << 16 |
		      (uint32_t)out->data[off + 3] << 8 | out->data[off + 4];
		assert_true(out->len - off - 5 >= len);
		flags[n] = out->data[off];
		texts[n] = strndup((const char *)out->data + off + 5, len);
		off += 5 + len;
		n++;
	}
	return n;
}

static void free_texts(char *texts[], size_t n)
{
	while (n > 0)
		free(texts[--n]);
}

static void a_stream_request_is_exactly_one_uncompressed_envelope(void **state)
{
	static const uint8_t good[] = "\x00\x00\x00\x00\x0b{\"a\":\"b\"}  ";
	struct ember_error *err = NULL;
	uint8_t body[64];
	json_t *msg = NULL;

	(void)state;
	/* 11 bytes declared: the JSON and the two spaces after it */
	assert_int_equal(e2b_connect_request(good, 16, true, &msg, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(msg, "a")), "b");
	json_decref(msg);
	/* an empty message is {} */
	assert_int_equal(e2b_connect_request((const uint8_t *)"\0\0\0\0\0", 5, true, &msg, NULL),
			 0);
	assert_int_equal(json_object_size(msg), 0);
	json_decref(msg);
	/* declared length past or short of the body, compressed, other flags, too short */
	memcpy(body, good, 16);
	body[4] = 12;
	assert_int_equal(e2b_connect_request(body, 16, true, &msg, &err), -1);
	assert_int_equal(err->kind, EMBER_E_INVALID);
	ember_error_free(&err);
	assert_int_equal(e2b_connect_request(good, 17, true, &msg, NULL), -1);
	body[4] = 11;
	body[0] = 1;
	assert_int_equal(e2b_connect_request(body, 16, true, &msg, &err), -1);
	assert_non_null(strstr(err->message, "compressed"));
	ember_error_free(&err);
	body[0] = 2;
	assert_int_equal(e2b_connect_request(body, 16, true, &msg, NULL), -1);
	assert_int_equal(e2b_connect_request(good, 4, true, &msg, NULL), -1);
	/* a length past the cap is refused before anything is read */
	memcpy(body, "\x00\x7f\xff\xff\xff", 5);
	assert_int_equal(e2b_connect_request(body, 5, true, &msg, NULL), -1);
	/* not an object */
	assert_int_equal(e2b_connect_request((const uint8_t *)"\0\0\0\0\x02[]", 7, true, &msg,
					     NULL), -1);
	assert_null(msg);
}

static void a_unary_request_is_the_body_and_empty_is_the_empty_message(void **state)
{
	json_t *msg = NULL;

	(void)state;
	assert_int_equal(e2b_connect_request((const uint8_t *)"{}", 2, false, &msg, NULL), 0);
	json_decref(msg);
	assert_int_equal(e2b_connect_request((const uint8_t *)"", 0, false, &msg, NULL), 0);
	assert_true(json_is_object(msg));
	json_decref(msg);
	assert_int_equal(e2b_connect_request((const uint8_t *)"{\"a\":1,\"a\":2}", 13, false, &msg,
					     NULL), -1);
	assert_int_equal(e2b_connect_request((const uint8_t *)"{} x", 4, false, &msg, NULL), -1);
	assert_int_equal(e2b_connect_request((const uint8_t *)"7", 1, false, &msg, NULL), -1);
}

static void content_types_and_headers_are_read_strictly(void **state)
{
	uint32_t ms = 7;
	struct ember_error *err = NULL;

	(void)state;
	assert_true(e2b_connect_content_type_ok("application/json", false));
	assert_true(e2b_connect_content_type_ok("Application/JSON; charset=utf-8", false));
	assert_true(e2b_connect_content_type_ok("application/connect+json", true));
	assert_false(e2b_connect_content_type_ok("application/connect+json", false));
	assert_false(e2b_connect_content_type_ok("application/json", true));
	assert_false(e2b_connect_content_type_ok("application/jsonx", false));
	assert_false(e2b_connect_content_type_ok("application/json; charset=latin1", false));
	assert_false(e2b_connect_content_type_ok("application/connect+proto", true));
	assert_false(e2b_connect_content_type_ok(NULL, true));
	assert_int_equal(e2b_connect_timeout(NULL, &ms, NULL), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(e2b_connect_timeout("60000", &ms, NULL), 0);
	assert_int_equal(ms, 60000);
	assert_int_equal(e2b_connect_timeout("9999999999", &ms, NULL), 0);
	assert_int_equal(ms, UINT32_MAX);
	assert_int_equal(e2b_connect_timeout("12345678901", &ms, &err), -1);
	ember_error_free(&err);
	assert_int_equal(e2b_connect_timeout("", &ms, NULL), -1);
	assert_int_equal(e2b_connect_timeout("-1", &ms, NULL), -1);
	assert_int_equal(e2b_connect_timeout("1e3", &ms, NULL), -1);
	assert_int_equal(e2b_connect_keepalive_s("50"), 50);
	assert_int_equal(e2b_connect_keepalive_s(NULL), 0);
	assert_int_equal(e2b_connect_keepalive_s("x"), 0);
	assert_int_equal(e2b_connect_keepalive_s("99999999"), E2B_CONNECT_KEEPALIVE_MAX_S);
	assert_int_equal(e2b_connect_keepalive_s("9999999999999"), 0);
}

static void end_of_stream_is_flagged_and_carries_the_error(void **state)
{
	struct buf out = { 0 };
	uint8_t flags[4];
	char *texts[4];
	size_t n;

	(void)state;
	assert_int_equal(e2b_connect_end(&out, NULL, NULL, NULL), 0);
	assert_int_equal(e2b_connect_end(&out, "not_found", "no \xff here", NULL), 0);
	n = envelopes(&out, flags, texts, 4);
	assert_int_equal(n, 2);
	assert_int_equal(flags[0], E2B_CONNECT_FLAG_END);
	assert_string_equal(texts[0], "{}");
	assert_int_equal(flags[1], E2B_CONNECT_FLAG_END);
	assert_string_equal(texts[1], "{\"error\":{\"code\":\"not_found\",\"message\":\"no "
				      "\xef\xbf\xbd here\"}}");
	free_texts(texts, n);
	buf_release(&out);
}

/* What commands.run('ls -la', {envs, cwd, stdin}) sends. */
static void start_request_takes_the_sdks_shape(void **state)
{
	json_t *msg = parse("{\"process\":{\"cmd\":\"/bin/bash\",\"args\":[\"-l\",\"-c\",\"ls -la\"],"
			    "\"envs\":{\"FOO\":\"bar\"},\"cwd\":\"/tmp\"},\"stdin\":true,"
			    "\"tag\":\"t1\",\"unknownField\":1}");
	struct e2b_start_request req;

	(void)state;
	assert_int_equal(e2b_parse_start(msg, &req, NULL), 0);
	assert_int_equal(req.argc, 4);
	assert_string_equal(req.argv[0], "/bin/bash");
	assert_string_equal(req.argv[3], "ls -la");
	assert_null(req.argv[4]);
	assert_int_equal(req.envc, 1);
	assert_string_equal(req.env[0], "FOO=bar");
	assert_string_equal(req.cwd, "/tmp");
	assert_string_equal(req.tag, "t1");
	assert_true(req.has_stdin);
	assert_false(req.has_pty);
	e2b_start_request_release(&req);
	json_decref(msg);
	/* the minimum; null is absent; a pty is noticed */
	msg = parse("{\"process\":{\"cmd\":\"/bin/true\",\"args\":null,\"cwd\":\"\"},"
		    "\"pty\":{\"size\":{\"cols\":80,\"rows\":24}}}");
	assert_int_equal(e2b_parse_start(msg, &req, NULL), 0);
	assert_int_equal(req.argc, 1);
	assert_null(req.cwd);
	assert_null(req.tag);
	assert_true(req.has_pty);
	assert_false(req.has_stdin);
	e2b_start_request_release(&req);
	json_decref(msg);
}

static void start_request_refuses_what_the_guest_cannot_carry(void **state)
{
	static const char *const bad[] = {
		"{}",
		"{\"process\":{}}",
		"{\"process\":{\"cmd\":\"\"}}",
		"{\"process\":{\"cmd\":3}}",
		"{\"process\":{\"cmd\":\"a\",\"args\":\"-c\"}}",
		"{\"process\":{\"cmd\":\"a\",\"args\":[\"\"]}}",
		"{\"process\":{\"cmd\":\"a\",\"args\":[\"x\\u0000y\"]}}",
		"{\"process\":{\"cmd\":\"a\",\"args\":[1]}}",
		"{\"process\":{\"cmd\":\"a\",\"args\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\","
		"\"8\",\"9\",\"10\",\"11\",\"12\",\"13\",\"14\",\"15\",\"16\"]}}",
		"{\"process\":{\"cmd\":\"a\",\"envs\":{\"1X\":\"v\"}}}",
		"{\"process\":{\"cmd\":\"a\",\"envs\":{\"X\":1}}}",
		"{\"process\":{\"cmd\":\"a\",\"envs\":[]}}",
		"{\"process\":{\"cmd\":\"a\"},\"stdin\":\"yes\"}",
		"{\"process\":{\"cmd\":\"a\"},\"pty\":1}",
		"{\"process\":{\"cmd\":\"a\"},\"tag\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
		"{\"process\":\"a\"}",
	};
	struct e2b_start_request req;
	struct ember_error *err = NULL;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *msg = parse(bad[i]);

		assert_int_equal(e2b_parse_start(msg, &req, &err), -1);
		assert_int_equal(err->kind, EMBER_E_INVALID);
		ember_error_free(&err);
		assert_int_equal(req.argc, 0); /* released */
		json_decref(msg);
	}
}

static void selectors_inputs_and_signals_take_proto3_json(void **state)
{
	struct e2b_process_selector sel;
	uint8_t *data = NULL;
	size_t len = 0;
	bool pty = true;
	json_t *msg;
	int sig = 0;

	(void)state;
	msg = parse("{\"process\":{\"pid\":42}}");
	assert_int_equal(e2b_parse_selector_of(msg, &sel, NULL), 0);
	assert_false(sel.by_tag);
	assert_int_equal(sel.pid, 42);
	json_decref(msg);
	msg = parse("{\"process\":{\"pid\":\"4294967295\"}}"); /* 64-bit style string */
	assert_int_equal(e2b_parse_selector_of(msg, &sel, NULL), 0);
	assert_int_equal(sel.pid, UINT32_MAX);
	json_decref(msg);
	msg = parse("{\"process\":{\"tag\":\"web\"}}");
	assert_int_equal(e2b_parse_selector_of(msg, &sel, NULL), 0);
	assert_true(sel.by_tag);
	assert_string_equal(sel.tag, "web");
	json_decref(msg);
	/* the SDK's sendStdin: bytes as base64 */
	msg = parse("{\"process\":{\"pid\":7},\"input\":{\"stdin\":\"aGVsbG8K\"}}");
	assert_int_equal(e2b_parse_send_input(msg, &sel, &data, &len, &pty, NULL), 0);
	assert_false(pty);
	assert_int_equal(len, 6);
	assert_memory_equal(data, "hello\n", 6);
	free(data);
	json_decref(msg);
	/* URL-safe and unpadded base64 too (proto3 JSON), and an empty input */
	msg = parse("{\"process\":{\"pid\":7},\"input\":{\"pty\":\"-_8\"}}");
	assert_int_equal(e2b_parse_send_input(msg, &sel, &data, &len, &pty, NULL), 0);
	assert_true(pty);
	assert_int_equal(len, 2);
	assert_memory_equal(data, "\xfb\xff", 2);
	free(data);
	json_decref(msg);
	msg = parse("{\"process\":{\"pid\":7},\"input\":{\"stdin\":\"\"}}");
	assert_int_equal(e2b_parse_send_input(msg, &sel, &data, &len, &pty, NULL), 0);
	assert_int_equal(len, 0);
	free(data);
	json_decref(msg);
	/* signals by name (the JSON codec's) or number */
	msg = parse("{\"process\":{\"pid\":7},\"signal\":\"SIGNAL_SIGKILL\"}");
	assert_int_equal(e2b_parse_send_signal(msg, &sel, &sig, NULL), 0);
	assert_int_equal(sig, SIGKILL);
	json_decref(msg);
	msg = parse("{\"process\":{\"pid\":7},\"signal\":15}");
	assert_int_equal(e2b_parse_send_signal(msg, &sel, &sig, NULL), 0);
	assert_int_equal(sig, SIGTERM);
	json_decref(msg);
}

static void bad_selectors_inputs_and_signals_are_refused(void **state)
{
	static const char *const bad_selector[] = {
		"{}", "{\"process\":{}}", "{\"process\":{\"pid\":1,\"tag\":\"a\"}}",
		"{\"process\":{\"pid\":-1}}", "{\"process\":{\"pid\":4294967296}}",
		"{\"process\":{\"pid\":\"12a\"}}", "{\"process\":{\"pid\":1.5}}",
		"{\"process\":{\"pid\":\"\"}}", "{\"process\":[]}",
	};
	static const char *const bad_input[] = {
		"{\"process\":{\"pid\":7}}",
		"{\"process\":{\"pid\":7},\"input\":{}}",
		"{\"process\":{\"pid\":7},\"input\":{\"stdin\":\"YQ==\",\"pty\":\"YQ==\"}}",
		"{\"process\":{\"pid\":7},\"input\":{\"stdin\":\"Y\"}}",
		"{\"process\":{\"pid\":7},\"input\":{\"stdin\":\"Y===\"}}",
		"{\"process\":{\"pid\":7},\"input\":{\"stdin\":\"Y Q==\"}}",
		"{\"process\":{\"pid\":7},\"input\":{\"stdin\":7}}",
	};
	static const char *const bad_signal[] = {
		"{\"process\":{\"pid\":7}}", "{\"process\":{\"pid\":7},\"signal\":2}",
		"{\"process\":{\"pid\":7},\"signal\":\"SIGNAL_UNSPECIFIED\"}",
		"{\"process\":{\"pid\":7},\"signal\":\"SIGKILL\"}",
	};
	struct e2b_process_selector sel;
	uint8_t *data = NULL;
	size_t i, len;
	bool pty;
	int sig;

	(void)state;
	for (i = 0; i < sizeof(bad_selector) / sizeof(bad_selector[0]); i++) {
		json_t *msg = parse(bad_selector[i]);

		assert_int_equal(e2b_parse_selector_of(msg, &sel, NULL), -1);
		json_decref(msg);
	}
	for (i = 0; i < sizeof(bad_input) / sizeof(bad_input[0]); i++) {
		json_t *msg = parse(bad_input[i]);

		assert_int_equal(e2b_parse_send_input(msg, &sel, &data, &len, &pty, NULL), -1);
		assert_null(data);
		json_decref(msg);
	}
	for (i = 0; i < sizeof(bad_signal) / sizeof(bad_signal[0]); i++) {
		json_t *msg = parse(bad_signal[i]);

		assert_int_equal(e2b_parse_send_signal(msg, &sel, &sig, NULL), -1);
		json_decref(msg);
	}
}

/* The frames a Start stream carries, as the SDK's CommandHandle reads them. */
static void process_events_are_envds_frames(void **state)
{
	json_t *start = parse("{\"pid\":36}");
	json_t *exit3 = parse("{\"pid\":36,\"state\":\"exited\",\"exit_code\":3,\"signal\":0}");
	json_t *killed = parse("{\"exit_code\":-1,\"signal\":9,\"timed_out\":false}");
	json_t *timed_out = parse("{\"exit_code\":-1,\"signal\":9,\"timed_out\":true}");
	json_t *exit0 = parse("{\"exit_code\":0,\"signal\":0}");
	json_t *lost = parse("{\"pid\":36,\"state\":\"exited\",\"error\":\"the sandbox went\"}");
	json_t *error = parse("{\"error\":{\"code\":\"not_found\",\"message\":\"gone\"}}");
	struct buf out = { 0 };
	uint8_t flags[16];
	char *texts[16];
	size_t n;

	(void)state;
	assert_int_equal(e2b_connect_events_object(&out, "start", start, NULL), 0);
	assert_int_equal(e2b_connect_events_output(&out, "stdout", (const uint8_t *)"hi\n", 3,
						   NULL), 0);
	assert_int_equal(e2b_connect_events_output(&out, "stderr", (const uint8_t *)"\xff", 1,
						   NULL), 0);
	assert_int_equal(e2b_connect_events_object(&out, "keepalive", NULL, NULL), 0);
	assert_int_equal(e2b_connect_events_object(&out, "exit", exit3, NULL), 0);
	n = envelopes(&out, flags, texts, 16);
	assert_int_equal(n, 6);
	assert_string_equal(texts[0], "{\"event\":{\"start\":{\"pid\":36}}}");
	assert_string_equal(texts[1], "{\"event\":{\"data\":{\"stdout\":\"aGkK\"}}}");
	assert_string_equal(texts[2], "{\"event\":{\"data\":{\"stderr\":\"/w==\"}}}");
	assert_string_equal(texts[3], "{\"event\":{\"keepalive\":{}}}");
	assert_string_equal(texts[4], "{\"event\":{\"end\":{\"exitCode\":3,\"exited\":true,"
				      "\"status\":\"exit status 3\",\"error\":\"exit status 3\"}}}");
	assert_int_equal(flags[4], 0);
	assert_string_equal(texts[5], "{}");
	assert_int_equal(flags[5], E2B_CONNECT_FLAG_END);
	free_texts(texts, n);
	out.len = 0;
	assert_int_equal(e2b_connect_events_object(&out, "exit", killed, NULL), 0);
	assert_int_equal(e2b_connect_events_object(&out, "exit", timed_out, NULL), 0);
	assert_int_equal(e2b_connect_events_object(&out, "exit", exit0, NULL), 0);
	assert_int_equal(e2b_connect_events_object(&out, "exit", lost, NULL), 0);
	assert_int_equal(e2b_connect_events_object(&out, "error", error, NULL), 0);
	n = envelopes(&out, flags, texts, 16);
	assert_int_equal(n, 7);
	assert_string_equal(texts[0], "{\"event\":{\"end\":{\"exitCode\":-1,\"exited\":false,"
				      "\"status\":\"signal: killed\",\"error\":\"signal: killed\"}}}");
	/* killed at its Connect-Timeout-Ms: no end event, envd's deadline_exceeded */
	assert_string_equal(texts[2], "{\"error\":{\"code\":\"deadline_exceeded\",\"message\":"
				      "\"the command ran past its timeoutMs and was killed\"}}");
	assert_int_equal(flags[2], E2B_CONNECT_FLAG_END);
	assert_string_equal(texts[3], "{\"event\":{\"end\":{\"exitCode\":0,\"exited\":true,"
				      "\"status\":\"exit status 0\"}}}");
	assert_string_equal(texts[5], "{\"error\":{\"code\":\"unavailable\",\"message\":"
				      "\"the sandbox went\"}}");
	assert_int_equal(flags[5], E2B_CONNECT_FLAG_END);
	assert_string_equal(texts[6], "{\"error\":{\"code\":\"not_found\",\"message\":\"gone\"}}");
	free_texts(texts, n);
	buf_release(&out);
	json_decref(start);
	json_decref(exit3);
	json_decref(killed);
	json_decref(timed_out);
	json_decref(exit0);
	json_decref(lost);
	json_decref(error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_stream_request_is_exactly_one_uncompressed_envelope),
		cmocka_unit_test(a_unary_request_is_the_body_and_empty_is_the_empty_message),
		cmocka_unit_test(content_types_and_headers_are_read_strictly),
		cmocka_unit_test(end_of_stream_is_flagged_and_carries_the_error),
		cmocka_unit_test(start_request_takes_the_sdks_shape),
		cmocka_unit_test(start_request_refuses_what_the_guest_cannot_carry),
		cmocka_unit_test(selectors_inputs_and_signals_take_proto3_json),
		cmocka_unit_test(bad_selectors_inputs_and_signals_are_refused),
		cmocka_unit_test(process_events_are_envds_frames),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
