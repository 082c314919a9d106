/* upload.c - POST /files on the E2B listener: envd's upload, as application/octet-stream (one
 * file, at ?path=) or multipart/form-data (each `file` part one file, at ?path= when given, else
 * at the part's filename), streamed to the guest piece by piece like the native PUT
 * /sandboxes/{id}/files. Answers envd's 200 [{"path","name","type":"file"}].
 * A file is written to a temporary name and renamed at its end (the guest's write op), so a
 * cut-off upload leaves no partial file; files finished before a failure stay (as envd's). */
#include "e2b/e2b.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "e2b/fsplane.h"
#include "e2b/fspath.h"
#include "e2b/multipart.h"
#include "util/jsonutil.h"

/* Files in one multipart upload: the SDK's writeFiles sends them all in one request; each
 * costs a guest transfer (one at a time) and an entry of the answer. */
#define E2B_UPLOAD_FILES_MAX 1000u

struct e2b_upload {
	const struct e2b_context *ctx;
	char id[SANDBOX_ID_LEN + 1];
	struct ember_error *error;      /* the answer, once a step failed */
	uint64_t dropped;               /* body bytes dropped after a failure */
	struct e2b_multipart *mp;       /* NULL: an octet-stream body */
	bool has_query_path;
	char query_path[PROTO_PATH_MAX + 1]; /* ?path=, resolved */
	struct manager_transfer *t;     /* the file being written, or NULL */
	bool skipping;                  /* inside a part that is not a `file` */
	char current[PROTO_PATH_MAX + 1];    /* the path t writes, resolved */
	json_t *written;                /* the answer's entries */
	struct proto_fs_request fs;     /* scratch for opening a transfer */
};

/* --- one file --- */

static int file_open(struct e2b_upload *u, const char *path, struct ember_error **err)
{
	size_t i;

	for (i = 0; i < json_array_size(u->written); i++) {
		const char *done = json_string_value(
			json_object_get(json_array_get(u->written, i), "path"));

		if (done != NULL && strcmp(done, path) == 0)
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "you cannot upload multiple files to the same path "
					       "'%.300s' in one upload request, only the first "
					       "specified file was uploaded",
					       path);
	}
	if (json_array_size(u->written) >= E2B_UPLOAD_FILES_MAX)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "more than %u files in one upload", E2B_UPLOAD_FILES_MAX);
	memset(&u->fs, 0, sizeof(u->fs));
	u->fs.op = PROTO_FS_WRITE;
	u->fs.parents = true; /* envd makes the parents */
	snprintf(u->fs.path, sizeof(u->fs.path), "%s", path);
	snprintf(u->current, sizeof(u->current), "%s", path);
	return manager_upload_open(u->ctx->api->manager, u->id, &u->fs, &u->t, err);
}

static int file_write(struct e2b_upload *u, const char *data, size_t len,
		      struct ember_error **err)
{
	return manager_upload_write(u->t, data, len, err);
}

static int file_close(struct e2b_upload *u, struct ember_error **err)
{
	struct proto_fs_reply reply;
	json_t *entry;
	int ret;

	memset(&reply, 0, sizeof(reply));
	ret = manager_upload_finish(u->t, &reply, err);
	manager_transfer_close(u->t);
	u->t = NULL;
	if (ret < 0)
		return -1;
	proto_fs_reply_release(&reply);
	/* the path as asked (resolved like envd), not the guest's symlink-resolved one */
	entry = json_pack("{s:s, s:s, s:s}", "path", u->current, "name",
			  e2b_path_base(u->current), "type", "file");
	if (entry == NULL || json_array_append_new(u->written, entry) < 0)
		return ember_error_oom(err);
	return 0;
}

/* A step failed: the file being written is dropped (the guest unlinks its temporary file),
 * the rest of the body is read and dropped, and the answer is the error. */
static void fail(struct e2b_upload *u)
{
	manager_transfer_close(u->t);
	u->t = NULL;
	e2b_multipart_free(u->mp);
	u->mp = NULL;
}

/* --- the multipart decoder's callbacks --- */

static int part_begin(void *ctx, const char *name, const char *filename,
		      struct ember_error **err)
{
	struct e2b_upload *u = ctx;
	char *path;
	int ret;

	u->skipping = name == NULL || strcmp(name, "file") != 0; /* envd skips other fields */
	if (u->skipping)
		return 0;
	if (u->has_query_path)
		return file_open(u, u->query_path, err);
	if (filename == NULL || filename[0] == '\0')
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "a `file` part without a filename and no ?path=: nowhere "
				       "to write it");
	path = malloc(PROTO_PATH_MAX + 1);
	if (path == NULL)
		return ember_error_oom(err);
	ret = e2b_path_resolve(filename, path, err);
	if (ret == 0)
		ret = file_open(u, path, err);
	free(path);
	return ret;
}

static int part_data(void *ctx, const char *data, size_t len, struct ember_error **err)
{
	struct e2b_upload *u = ctx;

	return u->skipping ? 0 : file_write(u, data, len, err);
}

static int part_end(void *ctx, struct ember_error **err)
{
	struct e2b_upload *u = ctx;

	if (u->skipping) {
		u->skipping = false;
		return 0;
	}
	return file_close(u, err);
}

static const struct e2b_multipart_ops multipart_ops = {
	.part_begin = part_begin,
	.part_data = part_data,
	.part_end = part_end,
};

/* --- the request --- */

/* ?path= (optional: each part's filename names its file otherwise) and ?username=. */
static int parse_query(struct e2b_upload *u, const struct e2b_request *req,
		       struct ember_error **err)
{
	const char *raw;

	if (e2b_files_query(req, &raw, err) < 0)
		return -1;
	if (raw == NULL)
		return 0;
	u->has_query_path = true;
	return e2b_path_resolve(raw, u->query_path, err);
}

static int begin(struct e2b_upload *u, const struct e2b_request *req, struct ember_error **err)
{
	const char *ct = req->content_type;
	char boundary[E2B_MULTIPART_BOUNDARY_MAX + 1];

	if (u->ctx->auth_token != NULL && u->ctx->auth_token[0] != '\0' &&
	    (req->access_token == NULL ||
	     !e2b_access_token_ok(u->ctx, req->sandbox_id, req->access_token)))
		return ember_error_set(err, EMBER_E_UNAUTHORIZED, 0,
				       "missing or wrong X-Access-Token for this sandbox");
	if (strlen(req->sandbox_id) > SANDBOX_ID_LEN)
		return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no such sandbox");
	snprintf(u->id, sizeof(u->id), "%s", req->sandbox_id);
	if (req->content_encoding != NULL && strcasecmp(req->content_encoding, "identity") != 0)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "Content-Encoding `%.32s` is not supported by emberd: write "
				       "without gzip",
				       req->content_encoding);
	if (parse_query(u, req, err) < 0)
		return -1;
	if (ct != NULL && strncasecmp(ct, "application/octet-stream", 24) == 0 &&
	    (ct[24] == '\0' || ct[24] == ';' || ct[24] == ' ')) {
		if (!u->has_query_path)
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "path query parameter is required for raw body "
					       "upload");
		return file_open(u, u->query_path, err);
	}
	if (ct != NULL && strncasecmp(ct, "multipart/", 10) == 0) {
		if (e2b_multipart_boundary(ct, boundary, err) < 0)
			return -1;
		u->mp = e2b_multipart_new(boundary, &multipart_ops, u, err);
		return u->mp != NULL ? 0 : -1;
	}
	return ember_error_set(err, EMBER_E_INVALID, 0,
			       "unsupported content type: %.100s, expected multipart/form-data or "
			       "application/octet-stream",
			       ct != NULL ? ct : "(none)");
}

bool e2b_route_upload(const struct e2b_context *ctx, const struct e2b_request *req,
		      struct e2b_upload **out)
{
	struct e2b_upload *u;

	*out = NULL;
	if (req->sandbox_id == NULL || strcmp(req->method, "POST") != 0 ||
	    strcmp(req->path, "/files") != 0 ||
	    (req->sandbox_port != NULL && strcmp(req->sandbox_port, "49983") != 0))
		return false;
	u = calloc(1, sizeof(*u));
	if (u == NULL)
		return false; /* collected instead, and answered 500 by e2b_fs_route() */
	u->ctx = ctx;
	u->written = json_array();
	if (u->written == NULL)
		ember_error_oom(&u->error);
	else if (begin(u, req, &u->error) < 0)
		fail(u);
	*out = u;
	return true;
}

bool e2b_upload_data(struct e2b_upload *u, const char *data, size_t len)
{
	int ret;

	if (u->error != NULL) {
		/* failed: the body is dropped, up to a bound (a client may send forever) */
		u->dropped += len;
		return u->dropped <= API_BODY_DISCARD_MAX;
	}
	ret = u->mp != NULL ? e2b_multipart_feed(u->mp, data, len, &u->error)
			    : file_write(u, data, len, &u->error);
	if (ret < 0)
		fail(u);
	return true;
}

void e2b_upload_finish(struct e2b_upload *u, struct api_response *resp)
{
	if (u->error == NULL && u->mp != NULL)
		e2b_multipart_finish(u->mp, &u->error);
	else if (u->error == NULL)
		file_close(u, &u->error);
	if (u->error != NULL) {
		fail(u);
		e2b_fs_rest_error(u->ctx, u->id, resp, &u->error);
		return;
	}
	resp->status = 200;
	resp->body = u->written;
	u->written = NULL;
}

void e2b_upload_free(struct e2b_upload *u)
{
	if (u == NULL)
		return;
	fail(u);
	ember_error_free(&u->error);
	json_decref(u->written);
	free(u);
}
