/* fsmsg.c - strict JSON encoders/decoders for file-system requests (FS) and replies (FS_REPLY). */
#include "proto/fsmsg.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonutil.h"

#define KIND EMBER_E_PROTOCOL

static const char *const op_names[] = {
	[PROTO_FS_STAT] = "stat",     [PROTO_FS_LIST] = "list",     [PROTO_FS_MKDIR] = "mkdir",
	[PROTO_FS_MOVE] = "move",     [PROTO_FS_REMOVE] = "remove", [PROTO_FS_READ] = "read",
	[PROTO_FS_WRITE] = "write",
};
#define OP_COUNT (sizeof(op_names) / sizeof(op_names[0]))

static const char *const type_names[] = {
	[PROTO_FS_TYPE_FILE] = "file",
	[PROTO_FS_TYPE_DIR] = "dir",
	[PROTO_FS_TYPE_SYMLINK] = "symlink",
	[PROTO_FS_TYPE_OTHER] = "other",
};
#define TYPE_COUNT (sizeof(type_names) / sizeof(type_names[0]))

const char *proto_fs_op_name(enum proto_fs_op op)
{
	if ((unsigned)op == 0 || (unsigned)op >= OP_COUNT)
		return "unknown";
	return op_names[op];
}

const char *proto_fs_type_name(enum proto_fs_type type)
{
	if ((unsigned)type >= TYPE_COUNT)
		return "unknown";
	return type_names[type];
}

/* Which optional fields each op accepts (the rest are "on the wrong op"). */
static bool op_takes_to(enum proto_fs_op op)
{
	return op == PROTO_FS_MOVE;
}

static bool op_takes_recursive(enum proto_fs_op op)
{
	return op == PROTO_FS_REMOVE;
}

static bool op_takes_parents_mode(enum proto_fs_op op)
{
	return op == PROTO_FS_MKDIR || op == PROTO_FS_WRITE;
}

static char *dump_and_free(json_t *obj, size_t *len, struct ember_error **err)
{
	char *text;

	if (obj == NULL) {
		ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory building a message");
		return NULL;
	}
	text = json_dump_compact(obj, len, err);
	json_decref(obj);
	return text;
}

/* The encoder refuses what the decoder would refuse, so a bad path fails on the host side with
 * EMBER_E_INVALID instead of reaching the guest. */
static json_t *path_string(const char *path, const char *field, struct ember_error **err)
{
	size_t len = strnlen(path, PROTO_PATH_MAX + 1);
	json_t *s;

	if (len == 0 || len > PROTO_PATH_MAX) {
		ember_error_set(err, EMBER_E_INVALID, 0, "`%s` must be 1 to %u bytes", field,
				PROTO_PATH_MAX);
		return NULL;
	}
	s = json_stringn(path, len);
	if (s == NULL)
		ember_error_set(err, EMBER_E_INVALID, 0, "`%s` is not valid UTF-8", field);
	return s;
}

static int set_new(json_t *obj, const char *key, json_t *value, struct ember_error **err)
{
	if (value == NULL || json_object_set_new(obj, key, value) < 0)
		return ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory building `%s`", key);
	return 0;
}

char *proto_fs_request_encode(const struct proto_fs_request *req, size_t *len,
			      struct ember_error **err)
{
	_cleanup_json_ json_t *obj = NULL;
	json_t *path, *to;

	if ((unsigned)req->op == 0 || (unsigned)req->op >= OP_COUNT) {
		ember_error_set(err, EMBER_E_INVALID, 0, "unknown file operation %d", (int)req->op);
		return NULL;
	}
	if (req->has_mode && req->mode > PROTO_FS_MODE_MAX) {
		ember_error_set(err, EMBER_E_INVALID, 0, "`mode` must be at most 07777");
		return NULL;
	}
	obj = json_object();
	if (obj == NULL) {
		ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory building a file request");
		return NULL;
	}
	if (set_new(obj, "op", json_string(op_names[req->op]), err) < 0)
		return NULL;
	path = path_string(req->path, "path", err);
	if (path == NULL)
		return NULL;
	if (set_new(obj, "path", path, err) < 0)
		return NULL;
	if (op_takes_to(req->op)) {
		to = path_string(req->to, "to", err);
		if (to == NULL || set_new(obj, "to", to, err) < 0)
			return NULL;
	}
	if (op_takes_recursive(req->op) &&
	    set_new(obj, "recursive", json_boolean(req->recursive), err) < 0)
		return NULL;
	if (op_takes_parents_mode(req->op)) {
		if (set_new(obj, "parents", json_boolean(req->parents), err) < 0)
			return NULL;
		if (req->has_mode &&
		    set_new(obj, "mode", json_integer((json_int_t)req->mode), err) < 0)
			return NULL;
	}
	return json_dump_compact(obj, len, err);
}

static int get_path(json_t *root, const char *key, char *out, struct ember_error **err)
{
	const char *s;
	size_t n;

	if (json_get_string(root, key, true, PROTO_PATH_MAX, &s, &n, KIND, err) < 0)
		return -1;
	if (n == 0)
		return ember_error_set(err, KIND, 0, "field `%s` must not be empty", key);
	memcpy(out, s, n + 1);
	return 0;
}

static int get_op(json_t *root, enum proto_fs_op *op, struct ember_error **err)
{
	const char *s;
	size_t n, i;

	if (json_get_string(root, "op", true, 16, &s, &n, KIND, err) < 0)
		return -1;
	for (i = 1; i < OP_COUNT; i++) {
		if (strcmp(s, op_names[i]) == 0) {
			*op = (enum proto_fs_op)i;
			return 0;
		}
	}
	return ember_error_set(err, KIND, 0, "field `op` is not a known file operation");
}

int proto_fs_request_decode(const uint8_t *buf, size_t len, struct proto_fs_request *req,
			    struct ember_error **err)
{
	const char *keys[7] = { "op", "path" };
	size_t nkeys = 2;
	_cleanup_json_ json_t *root = NULL;
	uint64_t mode;
	int has;

	memset(req, 0, sizeof(*req));
	if (json_parse_object(buf, len, &root, KIND, err) < 0 || get_op(root, &req->op, err) < 0)
		return -1;
	if (op_takes_to(req->op))
		keys[nkeys++] = "to";
	if (op_takes_recursive(req->op))
		keys[nkeys++] = "recursive";
	if (op_takes_parents_mode(req->op)) {
		keys[nkeys++] = "parents";
		keys[nkeys++] = "mode";
	}
	keys[nkeys] = NULL;
	if (json_check_keys(root, keys, KIND, err) < 0 || get_path(root, "path", req->path, err) < 0)
		return -1;
	if (op_takes_to(req->op) && get_path(root, "to", req->to, err) < 0)
		return -1;
	if (op_takes_recursive(req->op) &&
	    json_get_bool(root, "recursive", false, &req->recursive, KIND, err) < 0)
		return -1;
	if (op_takes_parents_mode(req->op)) {
		if (json_get_bool(root, "parents", false, &req->parents, KIND, err) < 0)
			return -1;
		has = json_get_uint(root, "mode", false, 0, PROTO_FS_MODE_MAX, &mode, KIND, err);
		if (has < 0)
			return -1;
		req->has_mode = has == 1;
		req->mode = has == 1 ? (uint32_t)mode : 0;
	}
	return 0;
}

static json_t *entry_json(const struct proto_fs_entry *e, struct ember_error **err)
{
	json_t *name = json_string(e->name), *obj;

	if (name == NULL) {
		ember_error_set(err, EMBER_E_INVALID, 0, "entry name is not valid UTF-8");
		return NULL;
	}
	if ((unsigned)e->type >= TYPE_COUNT || e->size > (uint64_t)INT64_MAX) {
		json_decref(name);
		ember_error_set(err, EMBER_E_INVALID, 0, "entry `%s` has a bad type or size",
				e->name);
		return NULL;
	}
	obj = json_pack("{s:o, s:s, s:I, s:I, s:I}", "name", name, "type", type_names[e->type],
			"size", (json_int_t)e->size, "mode", (json_int_t)(e->mode & PROTO_FS_MODE_MAX),
			"mtime", (json_int_t)e->mtime_s);
	if (obj == NULL)
		ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory building an entry");
	return obj;
}

static json_t *entries_json(const struct proto_fs_reply *reply, struct ember_error **err)
{
	json_t *arr;
	size_t i;

	if (reply->count > PROTO_FS_LIST_MAX) {
		ember_error_set(err, EMBER_E_INVALID, 0, "a list reply holds at most %d entries",
				PROTO_FS_LIST_MAX);
		return NULL;
	}
	arr = json_array();
	if (arr == NULL) {
		ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory building a list");
		return NULL;
	}
	for (i = 0; i < reply->count; i++) {
		json_t *e = entry_json(&reply->entries[i], err);

		if (e == NULL || json_array_append_new(arr, e) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

char *proto_fs_reply_encode(const struct proto_fs_reply *reply, size_t *len,
			    struct ember_error **err)
{
	json_t *inner;

	switch (reply->kind) {
	case PROTO_FS_REPLY_NONE:
		return dump_and_free(json_object(), len, err);
	case PROTO_FS_REPLY_ENTRY:
		inner = entry_json(&reply->entry, err);
		if (inner == NULL)
			return NULL;
		return dump_and_free(json_pack("{s:o}", "entry", inner), len, err);
	case PROTO_FS_REPLY_LIST:
		inner = entries_json(reply, err);
		if (inner == NULL)
			return NULL;
		return dump_and_free(json_pack("{s:o, s:b}", "entries", inner, "truncated",
					       reply->truncated),
				     len, err);
	case PROTO_FS_REPLY_WRITTEN:
		inner = path_string(reply->path, "path", err);
		if (inner == NULL)
			return NULL;
		if (strlen(reply->sha256) != 64 || reply->size > (uint64_t)INT64_MAX) {
			json_decref(inner);
			ember_error_set(err, EMBER_E_INVALID, 0, "written reply needs a sha256");
			return NULL;
		}
		return dump_and_free(json_pack("{s:{s:o, s:I, s:s}}", "written", "path", inner,
					       "size", (json_int_t)reply->size, "sha256",
					       reply->sha256),
				     len, err);
	}
	ember_error_set(err, EMBER_E_INVALID, 0, "unknown file reply kind %d", (int)reply->kind);
	return NULL;
}

/* A name is one path component ("/" alone is the name of the root directory in a stat). */
static int decode_name(json_t *obj, char *out, struct ember_error **err)
{
	const char *s;
	size_t n;

	if (json_get_string(obj, "name", true, PROTO_FS_NAME_MAX, &s, &n, KIND, err) < 0)
		return -1;
	if (n == 0 || (strchr(s, '/') != NULL && strcmp(s, "/") != 0))
		return ember_error_set(err, KIND, 0, "field `name` must be one path component");
	memcpy(out, s, n + 1);
	return 0;
}

static int decode_entry(json_t *obj, struct proto_fs_entry *e, struct ember_error **err)
{
	static const char *const keys[] = { "name", "type", "size", "mode", "mtime", NULL };
	const char *type;
	uint64_t size, mode;
	size_t i;

	if (!json_is_object(obj))
		return ember_error_set(err, KIND, 0, "an entry must be an object");
	memset(e, 0, sizeof(*e));
	if (json_check_keys(obj, keys, KIND, err) < 0 || decode_name(obj, e->name, err) < 0 ||
	    json_get_string(obj, "type", true, 16, &type, NULL, KIND, err) < 0 ||
	    json_get_uint(obj, "size", true, 0, INT64_MAX, &size, KIND, err) < 0 ||
	    json_get_uint(obj, "mode", true, 0, PROTO_FS_MODE_MAX, &mode, KIND, err) < 0 ||
	    json_get_int(obj, "mtime", true, INT64_MIN, INT64_MAX, &e->mtime_s, KIND, err) < 0)
		return -1;
	for (i = 0; i < TYPE_COUNT; i++) {
		if (strcmp(type, type_names[i]) == 0)
			break;
	}
	if (i == TYPE_COUNT)
		return ember_error_set(err, KIND, 0, "field `type` is not a known entry type");
	e->type = (enum proto_fs_type)i;
	e->size = size;
	e->mode = (uint32_t)mode;
	return 0;
}

static int decode_list(json_t *root, struct proto_fs_reply *reply, struct ember_error **err)
{
	json_t *arr = json_object_get(root, "entries");
	size_t i, n;

	if (!json_is_array(arr) || json_array_size(arr) > PROTO_FS_LIST_MAX)
		return ember_error_set(err, KIND, 0,
				       "field `entries` must be an array of at most %d entries",
				       PROTO_FS_LIST_MAX);
	if (json_get_bool(root, "truncated", true, &reply->truncated, KIND, err) < 0)
		return -1;
	n = json_array_size(arr);
	reply->entries = calloc(n + 1, sizeof(*reply->entries));
	if (reply->entries == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory");
	for (i = 0; i < n; i++) {
		if (decode_entry(json_array_get(arr, i), &reply->entries[i], err) < 0)
			return -1;
	}
	reply->count = n;
	reply->kind = PROTO_FS_REPLY_LIST;
	return 0;
}

static int decode_written(json_t *obj, struct proto_fs_reply *reply, struct ember_error **err)
{
	static const char *const keys[] = { "path", "size", "sha256", NULL };
	const char *sha;
	size_t sha_len, i;

	if (!json_is_object(obj))
		return ember_error_set(err, KIND, 0, "field `written` must be an object");
	if (json_check_keys(obj, keys, KIND, err) < 0 || get_path(obj, "path", reply->path, err) < 0 ||
	    json_get_uint(obj, "size", true, 0, INT64_MAX, &reply->size, KIND, err) < 0 ||
	    json_get_string(obj, "sha256", true, 64, &sha, &sha_len, KIND, err) < 0)
		return -1;
	for (i = 0; i < sha_len; i++) {
		if (!((sha[i] >= '0' && sha[i] <= '9') || (sha[i] >= 'a' && sha[i] <= 'f')))
			break;
	}
	if (sha_len != 64 || i != sha_len)
		return ember_error_set(err, KIND, 0, "field `sha256` must be 64 lowercase hex digits");
	memcpy(reply->sha256, sha, 65);
	reply->kind = PROTO_FS_REPLY_WRITTEN;
	return 0;
}

int proto_fs_reply_decode(const uint8_t *buf, size_t len, struct proto_fs_reply *reply,
			  struct ember_error **err)
{
	_cleanup_json_ json_t *root = NULL;
	size_t keys;
	int ret = -1;

	memset(reply, 0, sizeof(*reply));
	if (json_parse_object(buf, len, &root, KIND, err) < 0)
		return -1;
	keys = json_object_size(root);
	if (keys == 0) {
		reply->kind = PROTO_FS_REPLY_NONE;
		ret = 0;
	} else if (keys == 1 && json_object_get(root, "entry") != NULL) {
		ret = decode_entry(json_object_get(root, "entry"), &reply->entry, err);
		reply->kind = PROTO_FS_REPLY_ENTRY;
	} else if (keys == 2 && json_object_get(root, "entries") != NULL &&
		   json_object_get(root, "truncated") != NULL) {
		ret = decode_list(root, reply, err);
	} else if (keys == 1 && json_object_get(root, "written") != NULL) {
		ret = decode_written(json_object_get(root, "written"), reply, err);
	} else {
		ember_error_set(err, KIND, 0, "file reply is none of {}, entry, entries, written");
	}
	if (ret < 0)
		proto_fs_reply_release(reply);
	return ret;
}

void proto_fs_reply_release(struct proto_fs_reply *reply)
{
	free(reply->entries);
	memset(reply, 0, sizeof(*reply));
}
