/* Unit tests for the file-system request/reply JSON (src/proto/fsmsg.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/frame.h"
#include "proto/fsmsg.h"

#define REQ(text, req) proto_fs_request_decode((const uint8_t *)(text), strlen(text), (req), NULL)
#define REPLY(text, r) proto_fs_reply_decode((const uint8_t *)(text), strlen(text), (r), NULL)

static void request_roundtrips_for_every_op(void **state)
{
	static const enum proto_fs_op ops[] = { PROTO_FS_STAT,   PROTO_FS_LIST, PROTO_FS_MKDIR,
						PROTO_FS_MOVE,   PROTO_FS_REMOVE, PROTO_FS_READ,
						PROTO_FS_WRITE };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		struct proto_fs_request in = { .op = ops[i] }, out;
		size_t len;
		char *text;

		strcpy(in.path, "dir/\xc3\xa9t\xc3\xa9.txt");
		strcpy(in.to, "/tmp/x");
		in.recursive = ops[i] == PROTO_FS_REMOVE;
		in.parents = ops[i] == PROTO_FS_WRITE;
		in.has_mode = ops[i] == PROTO_FS_MKDIR || ops[i] == PROTO_FS_WRITE;
		in.mode = in.has_mode ? 0750 : 0;
		text = proto_fs_request_encode(&in, &len, NULL);
		assert_non_null(text);
		assert_int_equal(proto_fs_request_decode((uint8_t *)text, len, &out, NULL), 0);
		free(text);
		assert_int_equal(out.op, ops[i]);
		assert_string_equal(out.path, in.path);
		assert_string_equal(out.to, ops[i] == PROTO_FS_MOVE ? "/tmp/x" : "");
		assert_int_equal(out.recursive, in.recursive);
		assert_int_equal(out.parents, in.parents);
		assert_int_equal(out.has_mode, in.has_mode);
		assert_int_equal(out.mode, in.mode);
		assert_string_equal(proto_fs_op_name(ops[i]),
				    ops[i] == PROTO_FS_STAT ? "stat" : proto_fs_op_name(out.op));
	}
}

static void request_defaults_optional_fields(void **state)
{
	struct proto_fs_request r;

	(void)state;
	assert_int_equal(REQ("{\"op\":\"mkdir\",\"path\":\"a\"}", &r), 0);
	assert_false(r.parents);
	assert_false(r.has_mode);
	assert_int_equal(REQ("{\"op\":\"remove\",\"path\":\"/a\"}", &r), 0);
	assert_false(r.recursive);
	assert_int_equal(REQ("{\"op\":\"write\",\"path\":\"a\",\"mode\":0}", &r), 0);
	assert_true(r.has_mode);
	assert_int_equal(r.mode, 0);
	assert_int_equal(REQ("{\"op\":\"write\",\"path\":\"a\",\"mode\":4095}", &r), 0);
	assert_int_equal(r.mode, 07777);
}

static void request_rejects_fields_on_the_wrong_op(void **state)
{
	struct proto_fs_request r;

	(void)state;
	assert_int_equal(REQ("{\"op\":\"stat\",\"path\":\"a\",\"recursive\":true}", &r), -1);
	assert_int_equal(REQ("{\"op\":\"read\",\"path\":\"a\",\"mode\":420}", &r), -1);
	assert_int_equal(REQ("{\"op\":\"list\",\"path\":\"a\",\"parents\":true}", &r), -1);
	assert_int_equal(REQ("{\"op\":\"remove\",\"path\":\"a\",\"to\":\"b\"}", &r), -1);
	assert_int_equal(REQ("{\"op\":\"mkdir\",\"path\":\"a\",\"recursive\":false}", &r), -1);
	assert_int_equal(REQ("{\"op\":\"stat\",\"path\":\"a\",\"x\":1}", &r), -1);
	/* move needs its destination */
	assert_int_equal(REQ("{\"op\":\"move\",\"path\":\"a\"}", &r), -1);
	assert_int_equal(REQ("{\"op\":\"move\",\"path\":\"a\",\"to\":\"\"}", &r), -1);
}

static void request_rejects_bad_values(void **state)
{
	struct proto_fs_request r;
	char *big;
	size_t n;

	(void)state;
	assert_int_equal(REQ("{\"op\":\"chmod\",\"path\":\"a\"}", &r), -1);
	assert_int_equal(REQ("{\"op\":\"STAT\",\"path\":\"a\"}", &r), -1);
	assert_int_equal(REQ("{\"op\":1,\"path\":\"a\"}", &r), -1);
	assert_int_equal(REQ("{\"path\":\"a\"}", &r), -1);
	assert_int_equal(REQ("{\"op\":\"stat\"}", &r), -1);
	assert_int_equal(REQ("{\"op\":\"stat\",\"path\":\"\"}", &r), -1);
	assert_int_equal(REQ("{\"op\":\"stat\",\"path\":\"a\\u0000b\"}", &r), -1);
	assert_int_equal(REQ("{\"op\":\"stat\",\"path\":7}", &r), -1);
	assert_int_equal(REQ("{\"op\":\"stat\",\"path\":\"a\",\"path\":\"b\"}", &r), -1);
	assert_int_equal(REQ("{\"op\":\"write\",\"path\":\"a\",\"mode\":4096}", &r), -1);
	assert_int_equal(REQ("{\"op\":\"write\",\"path\":\"a\",\"mode\":-1}", &r), -1);
	assert_int_equal(REQ("{\"op\":\"write\",\"path\":\"a\",\"mode\":\"644\"}", &r), -1);
	assert_int_equal(REQ("{\"op\":\"write\",\"path\":\"a\",\"parents\":1}", &r), -1);
	assert_int_equal(REQ("{\"op\":\"remove\",\"path\":\"a\",\"recursive\":\"yes\"}", &r), -1);
	assert_int_equal(REQ("[\"stat\"]", &r), -1);
	assert_int_equal(REQ("{\"op\":\"stat\",\"path\":\"a\"} x", &r), -1);

	/* 4096 bytes of path are fine, 4097 are not */
	big = malloc(PROTO_PATH_MAX + 64);
	assert_non_null(big);
	n = (size_t)sprintf(big, "{\"op\":\"stat\",\"path\":\"");
	memset(big + n, 'a', PROTO_PATH_MAX);
	strcpy(big + n + PROTO_PATH_MAX, "\"}");
	assert_int_equal(REQ(big, &r), 0);
	assert_int_equal(strlen(r.path), PROTO_PATH_MAX);
	memset(big + n, 'a', PROTO_PATH_MAX + 1);
	strcpy(big + n + PROTO_PATH_MAX + 1, "\"}");
	assert_int_equal(REQ(big, &r), -1);
	free(big);
}

static void request_encoder_refuses_what_the_decoder_would(void **state)
{
	struct proto_fs_request in = { .op = PROTO_FS_STAT };
	struct ember_error *err = NULL;
	size_t len;

	(void)state;
	assert_null(proto_fs_request_encode(&in, &len, &err)); /* empty path */
	assert_non_null(err);
	assert_int_equal(err->kind, EMBER_E_INVALID);
	ember_error_free(&err);
	err = NULL;
	strcpy(in.path, "bad\xff");
	assert_null(proto_fs_request_encode(&in, &len, &err));
	assert_int_equal(err->kind, EMBER_E_INVALID);
	ember_error_free(&err);
	err = NULL;
	strcpy(in.path, "ok");
	in.op = PROTO_FS_MOVE; /* empty destination */
	assert_null(proto_fs_request_encode(&in, &len, NULL));
	in.op = PROTO_FS_MKDIR;
	in.has_mode = true;
	in.mode = 010000;
	assert_null(proto_fs_request_encode(&in, &len, NULL));
	in.op = (enum proto_fs_op)42;
	assert_null(proto_fs_request_encode(&in, &len, NULL));
}

static void reply_none_and_entry_roundtrip(void **state)
{
	struct proto_fs_reply in = { .kind = PROTO_FS_REPLY_NONE }, out;
	size_t len;
	char *text;

	(void)state;
	text = proto_fs_reply_encode(&in, &len, NULL);
	assert_string_equal(text, "{}");
	assert_int_equal(proto_fs_reply_decode((uint8_t *)text, len, &out, NULL), 0);
	assert_int_equal(out.kind, PROTO_FS_REPLY_NONE);
	free(text);

	in.kind = PROTO_FS_REPLY_ENTRY;
	strcpy(in.entry.name, "notes.txt");
	in.entry.type = PROTO_FS_TYPE_FILE;
	in.entry.size = UINT64_C(1) << 40;
	in.entry.mode = 0640;
	in.entry.mtime_s = -5;
	text = proto_fs_reply_encode(&in, &len, NULL);
	assert_non_null(text);
	assert_int_equal(proto_fs_reply_decode((uint8_t *)text, len, &out, NULL), 0);
	free(text);
	assert_int_equal(out.kind, PROTO_FS_REPLY_ENTRY);
	assert_string_equal(out.entry.name, "notes.txt");
	assert_int_equal(out.entry.type, PROTO_FS_TYPE_FILE);
	assert_true(out.entry.size == UINT64_C(1) << 40);
	assert_int_equal(out.entry.mode, 0640);
	assert_true(out.entry.mtime_s == -5);
	assert_null(out.entries);

	/* the root directory's name is "/" */
	assert_int_equal(REPLY("{\"entry\":{\"name\":\"/\",\"type\":\"dir\",\"size\":0,"
			       "\"mode\":493,\"mtime\":1}}", &out), 0);
	assert_string_equal(out.entry.name, "/");
	assert_int_equal(out.entry.type, PROTO_FS_TYPE_DIR);
}

static void reply_list_roundtrips_and_is_bounded(void **state)
{
	struct proto_fs_reply in = { .kind = PROTO_FS_REPLY_LIST, .truncated = true }, out;
	static const enum proto_fs_type types[] = { PROTO_FS_TYPE_FILE, PROTO_FS_TYPE_DIR,
						    PROTO_FS_TYPE_SYMLINK, PROTO_FS_TYPE_OTHER };
	size_t len, i;
	char *text;

	(void)state;
	in.entries = calloc(PROTO_FS_LIST_MAX + 1, sizeof(*in.entries));
	assert_non_null(in.entries);
	for (i = 0; i < PROTO_FS_LIST_MAX; i++) {
		snprintf(in.entries[i].name, sizeof(in.entries[i].name), "f%zu", i);
		in.entries[i].type = types[i % 4];
		in.entries[i].size = i;
		in.entries[i].mode = 0644;
		in.entries[i].mtime_s = 1700000000;
	}
	in.count = PROTO_FS_LIST_MAX;
	text = proto_fs_reply_encode(&in, &len, NULL);
	assert_non_null(text);
	assert_true(len <= PROTO_MAX_PAYLOAD);
	assert_int_equal(proto_fs_reply_decode((uint8_t *)text, len, &out, NULL), 0);
	free(text);
	assert_int_equal(out.kind, PROTO_FS_REPLY_LIST);
	assert_int_equal(out.count, PROTO_FS_LIST_MAX);
	assert_true(out.truncated);
	assert_string_equal(out.entries[2047].name, "f2047");
	assert_int_equal(out.entries[2].type, PROTO_FS_TYPE_SYMLINK);
	assert_int_equal(out.entries[3].type, PROTO_FS_TYPE_OTHER);
	proto_fs_reply_release(&out);
	assert_null(out.entries);

	in.count = PROTO_FS_LIST_MAX + 1; /* one too many */
	assert_null(proto_fs_reply_encode(&in, &len, NULL));
	free(in.entries);

	assert_int_equal(REPLY("{\"entries\":[],\"truncated\":false}", &out), 0);
	assert_int_equal(out.count, 0);
	proto_fs_reply_release(&out);
}

static void reply_written_roundtrips(void **state)
{
	struct proto_fs_reply in = { .kind = PROTO_FS_REPLY_WRITTEN, .size = 3 }, out;
	size_t len;
	char *text;

	(void)state;
	strcpy(in.path, "/home/sandbox/a.txt");
	strcpy(in.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	text = proto_fs_reply_encode(&in, &len, NULL);
	assert_non_null(text);
	assert_int_equal(proto_fs_reply_decode((uint8_t *)text, len, &out, NULL), 0);
	free(text);
	assert_int_equal(out.kind, PROTO_FS_REPLY_WRITTEN);
	assert_string_equal(out.path, in.path);
	assert_int_equal(out.size, 3);
	assert_string_equal(out.sha256, in.sha256);

	in.sha256[0] = '\0';
	assert_null(proto_fs_reply_encode(&in, &len, NULL));
}

static void reply_rejects_bad_shapes(void **state)
{
	struct proto_fs_reply r;
	const char *good_entry = "{\"name\":\"a\",\"type\":\"file\",\"size\":1,\"mode\":420,"
				 "\"mtime\":0}";
	char buf[512];

	(void)state;
	snprintf(buf, sizeof(buf), "{\"entry\":%s}", good_entry);
	assert_int_equal(REPLY(buf, &r), 0);
	/* two shapes at once, unknown keys, half a list */
	snprintf(buf, sizeof(buf), "{\"entry\":%s,\"written\":{}}", good_entry);
	assert_int_equal(REPLY(buf, &r), -1);
	assert_int_equal(REPLY("{\"x\":1}", &r), -1);
	assert_int_equal(REPLY("{\"entries\":[]}", &r), -1);
	assert_int_equal(REPLY("{\"truncated\":true,\"x\":1}", &r), -1);
	assert_int_equal(REPLY("{\"entries\":{},\"truncated\":false}", &r), -1);
	assert_int_equal(REPLY("{\"entries\":[],\"truncated\":0}", &r), -1);
	snprintf(buf, sizeof(buf), "{\"entries\":[%s,1],\"truncated\":false}", good_entry);
	assert_int_equal(REPLY(buf, &r), -1);
	assert_null(r.entries); /* released on failure */
	/* bad entries */
	assert_int_equal(REPLY("{\"entry\":{\"name\":\"a/b\",\"type\":\"file\",\"size\":1,"
			       "\"mode\":420,\"mtime\":0}}", &r), -1);
	assert_int_equal(REPLY("{\"entry\":{\"name\":\"\",\"type\":\"file\",\"size\":1,"
			       "\"mode\":420,\"mtime\":0}}", &r), -1);
	assert_int_equal(REPLY("{\"entry\":{\"name\":\"a\",\"type\":\"fifo\",\"size\":1,"
			       "\"mode\":420,\"mtime\":0}}", &r), -1);
	assert_int_equal(REPLY("{\"entry\":{\"name\":\"a\",\"type\":\"file\",\"size\":-1,"
			       "\"mode\":420,\"mtime\":0}}", &r), -1);
	assert_int_equal(REPLY("{\"entry\":{\"name\":\"a\",\"type\":\"file\",\"size\":1,"
			       "\"mode\":4096,\"mtime\":0}}", &r), -1);
	assert_int_equal(REPLY("{\"entry\":{\"name\":\"a\",\"type\":\"file\",\"size\":1,"
			       "\"mode\":420}}", &r), -1);
	assert_int_equal(REPLY("{\"entry\":{\"name\":\"a\",\"type\":\"file\",\"size\":1,"
			       "\"mode\":420,\"mtime\":0,\"uid\":0}}", &r), -1);
	assert_int_equal(REPLY("{\"entry\":[]}", &r), -1);
	/* bad written */
	assert_int_equal(REPLY("{\"written\":{\"path\":\"/a\",\"size\":1,\"sha256\":\"ab\"}}", &r),
			 -1);
	assert_int_equal(REPLY("{\"written\":{\"path\":\"/a\",\"size\":1,\"sha256\":"
			       "\"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD\"}}",
			       &r), -1);
	assert_int_equal(REPLY("{\"written\":{\"path\":\"\",\"size\":1,\"sha256\":"
			       "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}}",
			       &r), -1);
	assert_int_equal(REPLY("{\"written\":{\"path\":\"/a\",\"size\":1}}", &r), -1);
	assert_int_equal(REPLY("[]", &r), -1);
}

static void names_of_ops_and_types(void **state)
{
	(void)state;
	assert_string_equal(proto_fs_op_name(PROTO_FS_WRITE), "write");
	assert_string_equal(proto_fs_op_name((enum proto_fs_op)0), "unknown");
	assert_string_equal(proto_fs_op_name((enum proto_fs_op)99), "unknown");
	assert_string_equal(proto_fs_type_name(PROTO_FS_TYPE_SYMLINK), "symlink");
	assert_string_equal(proto_fs_type_name((enum proto_fs_type)9), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(request_roundtrips_for_every_op),
		cmocka_unit_test(request_defaults_optional_fields),
		cmocka_unit_test(request_rejects_fields_on_the_wrong_op),
		cmocka_unit_test(request_rejects_bad_values),
		cmocka_unit_test(request_encoder_refuses_what_the_decoder_would),
		cmocka_unit_test(reply_none_and_entry_roundtrip),
		cmocka_unit_test(reply_list_roundtrips_and_is_bounded),
		cmocka_unit_test(reply_written_roundtrips),
		cmocka_unit_test(reply_rejects_bad_shapes),
		cmocka_unit_test(names_of_ops_and_types),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
