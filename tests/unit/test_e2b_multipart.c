/* Unit tests for the streaming multipart/form-data decoder of POST /files on the E2B listener
 * (src/e2b/multipart.c): parts and their content whatever the piece boundaries, delimiter
 * look-alikes kept as content, the Content-Type boundary, and every bound and malformation
 * refused (EMBER_E_INVALID, and failed for good). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2b/multipart.h"

struct seen {
	char log[8192]; /* "begin(name,filename)" "data" "end" as they came */
	size_t log_len;
	char content[8192];
	size_t content_len;
	int fail_at_begin; /* > 0: the nth part_begin fails */
	int begins;
};

static void add(struct seen *s, const char *text)
{
	size_t n = strlen(text);

	assert_true(s->log_len + n < sizeof(s->log));
	memcpy(s->log + s->log_len, text, n + 1);
	s->log_len += n;
}

static int on_begin(void *ctx, const char *name, const char *filename, struct ember_error **err)
{
	struct seen *s = ctx;
	char line[512];

	if (++s->begins == s->fail_at_begin)
		return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "refused by the test");
	snprintf(line, sizeof(line), "[%s|%s]", name ? name : "-", filename ? filename : "-");
	add(s, line);
	return 0;
}

static int on_data(void *ctx, const char *data, size_t len, struct ember_error **err)
{
	struct seen *s = ctx;

	(void)err;
	assert_true(s->content_len + len < sizeof(s->content));
	memcpy(s->content + s->content_len, data, len);
	s->content_len += len;
	return 0;
}

static int on_end(void *ctx, struct ember_error **err)
{
	struct seen *s = ctx;

	(void)err;
	s->content[s->content_len] = '\0';
	add(s, "{");
	add(s, s->content);
	add(s, "}");
	s->content_len = 0;
	return 0;
}

static const struct e2b_multipart_ops ops = { on_begin, on_data, on_end };

/* Feeds body in pieces of `piece` bytes (0: all at once); returns feed+finish's result. */
static int decode(const char *body, size_t len, size_t piece, struct seen *s,
		  struct ember_error **err)
{
	struct e2b_multipart *mp = e2b_multipart_new("XyZ", &ops, s, err);
	size_t off = 0;
	int ret = 0;

	assert_non_null(mp);
	if (piece == 0)
		piece = len;
	while (ret == 0 && off < len) {
		size_t n = len - off < piece ? len - off : piece;

		ret = e2b_multipart_feed(mp, body + off, n, err);
		off += n;
	}
	if (ret == 0)
		ret = e2b_multipart_finish(mp, err);
	e2b_multipart_free(mp);
	return ret;
}

static const char two_parts[] =
	"--XyZ\r\n"
	"Content-Disposition: form-data; name=\"file\"; filename=\"/home/user/a b.txt\"\r\n"
	"Content-Type: application/octet-stream\r\n"
	"\r\n"
	"line one\r\n--XyYnot a delimiter--XyZ\r\n-XyZ\r\n--Xy"
	"\r\n--XyZ\r\n"
	"content-disposition: FORM-DATA; NAME=file; filename=\"q\\\"uote\"\r\n"
	"\r\n"
	"\r\n--XyZ--\r\n";

static void parts_decode_whatever_the_pieces(void **state)
{
	static const char want[] =
		"[file|/home/user/a b.txt]{line one\r\n--XyYnot a delimiter--XyZ\r\n-XyZ\r\n--Xy}"
		"[file|q\"uote]{}";
	size_t pieces[] = { 0, 1, 2, 3, 7, 64 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		struct seen s = { .log_len = 0 };

		assert_int_equal(decode(two_parts, sizeof(two_parts) - 1, pieces[i], &s, NULL), 0);
		assert_string_equal(s.log, want);
	}
}

static void preamble_padding_epilogue_and_other_fields(void **state)
{
	static const char body[] = "ignored preamble\r\n--XyZ  \t\r\n"
				   "Content-Disposition: form-data; name=\"note\"\r\n\r\n"
				   "hi\r\n--XyZ\r\n"
				   "\r\n"
				   "no headers\r\n--XyZ--\r\nepilogue";
	struct seen s = { .log_len = 0 };

	(void)state;
	assert_int_equal(decode(body, sizeof(body) - 1, 5, &s, NULL), 0);
	assert_string_equal(s.log, "[note|-]{hi}[-|-]{no headers}");
}

static void refused(const char *body, size_t len, const char *what)
{
	struct ember_error *err = NULL;
	struct seen s = { .log_len = 0 };

	assert_int_equal(decode(body, len, 0, &s, &err), -1);
	assert_int_equal(err->kind, EMBER_E_INVALID);
	if (strstr(err->message, what) == NULL)
		fail_msg("`%s` does not say `%s`", err->message, what);
	ember_error_free(&err);
}

static void malformed_bodies_are_refused(void **state)
{
	static const struct {
		const char *body, *what;
	} bad[] = {
		{ "--XyZ\r\n\r\nno end", "before its closing" },
		{ "", "before its closing" },
		{ "--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ", "before its closing" },
		{ "--XyZ junk\r\n", "not followed by" },
		{ "--XyZ\r\n\r\nx\r\n--XyZnot a delimiter", "not followed by" },
		{ "--XyZ\r\nno colon here\r\n\r\n", "malformed header" },
		{ "--XyZ\r\n folded: x\r\n\r\n", "malformed header" },
		{ "--XyZ\r\nContent-Disposition: attachment\r\n\r\n", "not form-data" },
		{ "--XyZ\r\nContent-Disposition: form-data; name=a; name=b\r\n\r\n", "twice" },
		{ "--XyZ\r\nContent-Disposition: form-data; filename=\"open\r\n\r\n", "unterminated" },
		{ "--XyZ\r\nContent-Disposition: form-data\r\nContent-Disposition: form-data\r\n\r\n",
		  "twice" },
		{ "--XyZ\r\nContent-Disposition: form-data; name\r\n\r\n", "key=value" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused(bad[i].body, strlen(bad[i].body), bad[i].what);
}

static void bounds_are_enforced(void **state)
{
	size_t n = E2B_MULTIPART_HEADERS_MAX + 64;
	char *body = malloc(n + 64);

	(void)state;
	assert_non_null(body);
	/* a preamble past its bound */
	memset(body, 'p', E2B_MULTIPART_PREAMBLE_MAX + 8);
	refused(body, E2B_MULTIPART_PREAMBLE_MAX + 8, "no boundary within");
	/* one part's headers past theirs */
	memcpy(body, "--XyZ\r\nX: ", 10);
	memset(body + 10, 'h', n - 10);
	refused(body, n, "headers exceed");
	/* an epilogue past its bound */
	memcpy(body, "--XyZ--", 7);
	memset(body + 7, 'e', E2B_MULTIPART_EPILOGUE_MAX + 8);
	refused(body, 7 + E2B_MULTIPART_EPILOGUE_MAX + 8, "after the closing");
	free(body);
}

static void a_failed_callback_stops_for_good(void **state)
{
	struct seen s = { .fail_at_begin = 1 };
	struct ember_error *err = NULL;
	struct e2b_multipart *mp = e2b_multipart_new("XyZ", &ops, &s, &err);

	(void)state;
	assert_int_equal(e2b_multipart_feed(mp, two_parts, sizeof(two_parts) - 1, &err), -1);
	assert_int_equal(err->kind, EMBER_E_NOT_FOUND);
	ember_error_free(&err);
	assert_int_equal(e2b_multipart_feed(mp, "x", 1, &err), -1);
	ember_error_free(&err);
	assert_int_equal(e2b_multipart_finish(mp, &err), -1);
	ember_error_free(&err);
	e2b_multipart_free(mp);
	assert_string_equal(s.log, "");
}

static void boundary_from_content_type(void **state)
{
	static const char *const bad[] = {
		NULL,
		"application/json",
		"multipart/form-data",
		"multipart/form-data; charset=utf-8",
		"multipart/form-data; boundary=",
		"multipart/form-data; boundary=\"\"",
		"multipart/form-data; boundary=a; boundary=b",
		"multipart/form-data; boundary=\"ends in space \"",
		"multipart/form-data; boundary=\"bad\\\\char\"",
		"multipart/form-data; boundary="
		"12345678901234567890123456789012345678901234567890123456789012345678901",
	};
	char out[E2B_MULTIPART_BOUNDARY_MAX + 1];
	struct ember_error *err = NULL;
	size_t i;

	(void)state;
	assert_int_equal(e2b_multipart_boundary("multipart/form-data; boundary=----formdata-"
						"undici-0123456789",
						out, NULL),
			 0);
	assert_string_equal(out, "----formdata-undici-0123456789");
	assert_int_equal(e2b_multipart_boundary("Multipart/Form-Data;charset=x;BOUNDARY=\"a b\"",
						out, NULL),
			 0);
	assert_string_equal(out, "a b");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(e2b_multipart_boundary(bad[i], out, &err), -1);
		assert_int_equal(err->kind, EMBER_E_INVALID);
		ember_error_free(&err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parts_decode_whatever_the_pieces),
		cmocka_unit_test(preamble_padding_epilogue_and_other_fields),
		cmocka_unit_test(malformed_bodies_are_refused),
		cmocka_unit_test(bounds_are_enforced),
		cmocka_unit_test(a_failed_callback_stops_for_good),
		cmocka_unit_test(boundary_from_content_type),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
