/* fsrequests.c - strict decoding of the file routes' query and bodies. */
#include "api/fsrequests.h"

#include <string.h>

#include "util/cleanup.h"
#include "util/jsonutil.h"

#define KIND EMBER_E_INVALID

/* A path's bounds; the guest decides what it means. */
static int copy_path(const char *field, const char *value, size_t len, char *out,
		     struct ember_error **err)
{
	if (len == 0)
		return ember_error_set(err, KIND, 0, "`%s` must not be empty", field);
	if (len > PROTO_PATH_MAX)
		return ember_error_set(err, KIND, 0, "`%s` is longer than %u bytes", field,
				       PROTO_PATH_MAX);
	if (memchr(value, '\0', len) != NULL)
		return ember_error_set(err, KIND, 0, "`%s` contains NUL", field);
	memcpy(out, value, len);
	out[len] = '\0';
	return 0;
}

int api_parse_octal_mode(const char *text, uint32_t *mode, struct ember_error **err)
{
	size_t i, len = strlen(text);
	uint32_t v = 0;

	if (len == 0 || len > 5)
		return ember_error_set(err, KIND, 0,
				       "`mode` must be octal digits, at most 07777 (like 0644)");
	for (i = 0; i < len; i++) {
		if (text[i] < '0' || text[i] > '7')
			return ember_error_set(err, KIND, 0,
					       "`mode` must be octal digits, at most 07777 "
					       "(like 0644)");
		v = v * 8 + (uint32_t)(text[i] - '0');
	}
	if (v > PROTO_FS_MODE_MAX)
		return ember_error_set(err, KIND, 0, "`mode` must be at most 07777");
	*mode = v;
	return 0;
}

static int parse_flag(const char *key, const char *value, bool *out, struct ember_error **err)
{
	if (strcmp(value, "1") == 0 || strcmp(value, "true") == 0) {
		*out = true;
		return 0;
	}
	if (strcmp(value, "0") == 0 || strcmp(value, "false") == 0) {
		*out = false;
		return 0;
	}
	return ember_error_set(err, KIND, 0, "query parameter `%s` must be 1 or 0", key);
}

/* One query parameter into out; seen[] catches repeats (path, mode, mkdir). */
static int parse_fs_param(const char *key, const char *value, enum api_fs_query_kind kind,
			  bool seen[3], struct proto_fs_request *out, struct ember_error **err)
{
	static const char *const names[] = { "path", "mode", "mkdir" };
	size_t which;

	for (which = 0; which < 3; which++) {
		if (strcmp(key, names[which]) == 0)
			break;
	}
	if (which == 3 || (which > 0 && kind != API_FS_QUERY_UPLOAD))
		return ember_error_set(err, KIND, 0, "unknown query parameter `%.64s` (%s)", key,
				       kind == API_FS_QUERY_UPLOAD ? "this route takes path, mode "
								     "and mkdir"
								   : "this route takes path");
	if (seen[which])
		return ember_error_set(err, KIND, 0, "query parameter `%s` is given twice", key);
	seen[which] = true;
	if (value == NULL)
		return ember_error_set(err, KIND, 0, "query parameter `%s` needs a value", key);
	if (which == 0)
		return copy_path("path", value, strlen(value), out->path, err);
	if (which == 1) {
		out->has_mode = true;
		return api_parse_octal_mode(value, &out->mode, err);
	}
	return parse_flag(key, value, &out->parents, err);
}

int api_parse_fs_query(const struct api_query *query, enum api_fs_query_kind kind,
		       struct proto_fs_request *out, struct ember_error **err)
{
	bool seen[3] = { false, false, false };
	size_t i;

	memset(out, 0, sizeof(*out));
	if (query->too_many)
		return ember_error_set(err, KIND, 0, "more than %d query parameters",
				       API_QUERY_PAIRS_MAX);
	if (query->has_nul)
		return ember_error_set(err, KIND, 0, "a query parameter contains NUL (%%00)");
	for (i = 0; i < query->count; i++) {
		if (parse_fs_param(query->pairs[i].key, query->pairs[i].value, kind, seen, out,
				   err) < 0)
			return -1;
	}
	if (!seen[0])
		return ember_error_set(err, KIND, 0, "query parameter `path` is required");
	return 0;
}

static int get_path(json_t *root, const char *key, char *out, struct ember_error **err)
{
	const char *value;
	size_t len;

	/* One byte more than allowed, so a longer path is told apart from a wrong type. */
	if (json_get_string(root, key, true, PROTO_PATH_MAX + 1, &value, &len, KIND, err) < 0)
		return -1;
	return copy_path(key, value, len, out, err);
}

int api_parse_fs_body(enum proto_fs_op op, const char *body, size_t len,
		      struct proto_fs_request *out, struct ember_error **err)
{
	static const char *const mkdir_keys[] = { "path", "parents", "mode", NULL };
	static const char *const move_keys[] = { "from", "to", NULL };
	static const char *const remove_keys[] = { "path", "recursive", NULL };
	_cleanup_json_ json_t *root = NULL;
	const char *mode_text;
	size_t mode_len;
	int got;

	memset(out, 0, sizeof(*out));
	out->op = op;
	if (json_parse_object(body, len, &root, KIND, err) < 0)
		return -1;
	switch (op) {
	case PROTO_FS_MKDIR:
		if (json_check_keys(root, mkdir_keys, KIND, err) < 0 ||
		    get_path(root, "path", out->path, err) < 0 ||
		    json_get_bool(root, "parents", false, &out->parents, KIND, err) < 0)
			return -1;
		got = json_get_string(root, "mode", false, 8, &mode_text, &mode_len, KIND, err);
		if (got < 0)
			return -1;
		out->has_mode = got == 1;
		return got == 1 ? api_parse_octal_mode(mode_text, &out->mode, err) : 0;
	case PROTO_FS_MOVE:
		if (json_check_keys(root, move_keys, KIND, err) < 0 ||
		    get_path(root, "from", out->path, err) < 0 ||
		    get_path(root, "to", out->to, err) < 0)
			return -1;
		return 0;
	case PROTO_FS_REMOVE:
		if (json_check_keys(root, remove_keys, KIND, err) < 0 ||
		    get_path(root, "path", out->path, err) < 0 ||
		    json_get_bool(root, "recursive", false, &out->recursive, KIND, err) < 0)
			return -1;
		return 0;
	default:
		break;
	}
	return ember_error_set(err, EMBER_E_INTERNAL, 0, "api_parse_fs_body: op %d has no body",
			       (int)op);
}
