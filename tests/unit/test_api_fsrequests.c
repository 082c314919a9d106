/* Unit tests for the file routes' input decoding (src/api/fsrequests.c): query path/mode/mkdir,
 * the mkdir/move/remove bodies, octal modes; every refusal is EMBER_E_INVALID (400). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "api/fsrequests.h"
#include "api/server.h"

static struct api_query query1(const char *k1, const char *v1, const char *k2, const char *v2,
			       const char *k3, const char *v3)
{
	struct api_query q = { .count = 0 };
	const char *keys[] = { k1, k2, k3 }, *values[] = { v1, v2, v3 };
	size_t i;

	for (i = 0; i < 3 && keys[i] != NULL; i++) {
		q.pairs[q.count].key = keys[i];
		q.pairs[q.count++].value = values[i];
	}
	return q;
}

static void refused(const struct api_query *q, enum api_fs_query_kind kind, const char *what)
{
	struct proto_fs_request req;
	struct ember_error *err = NULL;

	assert_int_equal(api_parse_fs_query(q, kind, &req, &err), -1);
	assert_int_equal(err->kind, EMBER_E_INVALID);
	assert_non_null(strstr(err->message, what));
	ember_error_free(&err);
}

static void query_takes_path_mode_and_mkdir(void **state)
{
	struct proto_fs_request req;
	struct api_query q = query1("path", "a/../b c", "mode", "0755", "mkdir", "1");

	(void)state;
	assert_int_equal(api_parse_fs_query(&q, API_FS_QUERY_UPLOAD, &req, NULL), 0);
	assert_string_equal(req.path, "a/../b c");
	assert_true(req.has_mode);
	assert_int_equal(req.mode, 0755);
	assert_true(req.parents);
	q = query1("path", "/etc/hosts", NULL, NULL, NULL, NULL);
	assert_int_equal(api_parse_fs_query(&q, API_FS_QUERY_PATH, &req, NULL), 0);
	assert_string_equal(req.path, "/etc/hosts");
	assert_false(req.has_mode);
	assert_false(req.parents);
}

static void query_refuses_bad_input_naming_it(void **state)
{
	char *longpath = malloc(PROTO_PATH_MAX + 2);
	struct api_query q;

	(void)state;
	assert_non_null(longpath);
	memset(longpath, 'a', PROTO_PATH_MAX + 1);
	longpath[PROTO_PATH_MAX + 1] = '\0';
	q = query1(NULL, NULL, NULL, NULL, NULL, NULL);
	refused(&q, API_FS_QUERY_PATH, "`path` is required");
	q = query1("path", "", NULL, NULL, NULL, NULL);
	refused(&q, API_FS_QUERY_PATH, "must not be empty");
	q = query1("path", NULL, NULL, NULL, NULL, NULL);
	refused(&q, API_FS_QUERY_PATH, "needs a value");
	q = query1("path", longpath, NULL, NULL, NULL, NULL);
	refused(&q, API_FS_QUERY_PATH, "longer than 4096");
	q = query1("path", "a", "path", "b", NULL, NULL);
	refused(&q, API_FS_QUERY_PATH, "given twice");
	q = query1("path", "a", "mode", "0644", NULL, NULL);
	refused(&q, API_FS_QUERY_PATH, "unknown query parameter `mode`");
	q = query1("path", "a", "mode", "0888", NULL, NULL);
	refused(&q, API_FS_QUERY_UPLOAD, "octal");
	q = query1("path", "a", "mode", "17777", NULL, NULL);
	refused(&q, API_FS_QUERY_UPLOAD, "at most 07777");
	q = query1("path", "a", "mkdir", "yes", NULL, NULL);
	refused(&q, API_FS_QUERY_UPLOAD, "1 or 0");
	q = query1("path", "a", NULL, NULL, NULL, NULL);
	q.has_nul = true;
	refused(&q, API_FS_QUERY_PATH, "NUL");
	q.has_nul = false;
	q.too_many = true;
	refused(&q, API_FS_QUERY_PATH, "query parameters");
	memset(longpath, 'a', PROTO_PATH_MAX);
	longpath[PROTO_PATH_MAX] = '\0';
	q = query1("path", longpath, NULL, NULL, NULL, NULL);
	{
		struct proto_fs_request req;

		assert_int_equal(api_parse_fs_query(&q, API_FS_QUERY_PATH, &req, NULL), 0);
		assert_int_equal(strlen(req.path), PROTO_PATH_MAX);
	}
	free(longpath);
}

static void bodies_decode_per_op(void **state)
{
	struct proto_fs_request req;
	const char *mk = "{\"path\":\"d/e\",\"parents\":true,\"mode\":\"0700\"}";
	const char *mv = "{\"from\":\"a\",\"to\":\"b\"}";
	const char *rm = "{\"path\":\"d\",\"recursive\":true}";

	(void)state;
	assert_int_equal(api_parse_fs_body(PROTO_FS_MKDIR, mk, strlen(mk), &req, NULL), 0);
	assert_int_equal(req.op, PROTO_FS_MKDIR);
	assert_string_equal(req.path, "d/e");
	assert_true(req.parents);
	assert_true(req.has_mode);
	assert_int_equal(req.mode, 0700);
	assert_int_equal(api_parse_fs_body(PROTO_FS_MOVE, mv, strlen(mv), &req, NULL), 0);
	assert_string_equal(req.path, "a");
	assert_string_equal(req.to, "b");
	assert_int_equal(api_parse_fs_body(PROTO_FS_REMOVE, rm, strlen(rm), &req, NULL), 0);
	assert_true(req.recursive);
}

static void bodies_refuse_wrong_fields(void **state)
{
	static const struct {
		enum proto_fs_op op;
		const char *body;
	} bad[] = {
		{ PROTO_FS_MKDIR, "{}" },
		{ PROTO_FS_MKDIR, "{\"path\":\"\"}" },
		{ PROTO_FS_MKDIR, "{\"path\":\"a\",\"recursive\":true}" },
		{ PROTO_FS_MKDIR, "{\"path\":\"a\",\"mode\":644}" },
		{ PROTO_FS_MKDIR, "{\"path\":\"a\\u0000b\"}" },
		{ PROTO_FS_MOVE, "{\"from\":\"a\"}" },
		{ PROTO_FS_MOVE, "{\"from\":\"a\",\"to\":7}" },
		{ PROTO_FS_REMOVE, "{\"path\":\"a\",\"recursive\":1}" },
		{ PROTO_FS_REMOVE, "[\"a\"]" },
		{ PROTO_FS_REMOVE, "" },
	};
	struct ember_error *err = NULL;
	struct proto_fs_request req;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(api_parse_fs_body(bad[i].op, bad[i].body, strlen(bad[i].body),
						   &req, &err), -1);
		assert_int_equal(err->kind, EMBER_E_INVALID);
		ember_error_free(&err);
	}
}

static void no_space_is_507(void **state)
{
	(void)state;
	assert_int_equal(api_status_for(EMBER_E_NO_SPACE), 507);
	assert_string_equal(ember_error_kind_name(EMBER_E_NO_SPACE), "insufficient_storage");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(query_takes_path_mode_and_mkdir),
		cmocka_unit_test(query_refuses_bad_input_naming_it),
		cmocka_unit_test(bodies_decode_per_op),
		cmocka_unit_test(bodies_refuse_wrong_fields),
		cmocka_unit_test(no_space_is_507),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
