/* files.c - streamed uploads and downloads of the file routes, and directory entries in JSON. */
#include "api/files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/encode.h"
#include "api/fsrequests.h"
#include "api/server.h"
#include "util/log.h"
#include "util/timeutil.h"

json_t *api_encode_fs_entry(const struct proto_fs_entry *entry)
{
	/* The guest's mtime is whatever a program set (touch -d): kept where nanoseconds fit. */
	const int64_t max_s = INT64_MAX / 1000000000;
	int64_t mtime_s = entry->mtime_s > max_s ? max_s : entry->mtime_s < -max_s ? -max_s
										    : entry->mtime_s;
	char mode[8], mtime[40];

	snprintf(mode, sizeof(mode), "%04o", (unsigned)(entry->mode & PROTO_FS_MODE_MAX));
	time_format_rfc3339(mtime_s * 1000000000, mtime, sizeof(mtime));
	return json_pack("{s:s, s:s, s:I, s:s, s:s}", "name", entry->name, "type",
			 proto_fs_type_name(entry->type), "size", (json_int_t)entry->size, "mode",
			 mode, "mtime", mtime);
}

struct api_upload {
	struct manager_transfer *t;   /* NULL once failed or finished */
	struct ember_error *error;    /* the answer, once a step failed */
	uint64_t received;
	uint64_t dropped;             /* body bytes dropped after a failure */
	char id[SANDBOX_ID_LEN + 1];
	int64_t started_ms;
};

struct api_upload *api_upload_begin(struct manager *m, const char *id,
				    const struct api_query *query)
{
	struct api_upload *u = calloc(1, sizeof(*u));
	struct proto_fs_request *req = malloc(sizeof(*req));

	if (u == NULL || req == NULL) {
		free(u);
		free(req);
		return NULL;
	}
	snprintf(u->id, sizeof(u->id), "%s", id != NULL ? id : "");
	u->started_ms = time_mono_ms();
	if (id == NULL)
		ember_error_set(&u->error, EMBER_E_NOT_FOUND, 0, "no such sandbox");
	else if (api_parse_fs_query(query, API_FS_QUERY_UPLOAD, req, &u->error) == 0) {
		req->op = PROTO_FS_WRITE;
		manager_upload_open(m, id, req, &u->t, &u->error);
	}
	free(req);
	return u;
}

/* A failed step: the transfer ends now (the guest drops its temporary file). */
static void upload_fail(struct api_upload *u)
{
	manager_transfer_close(u->t);
	u->t = NULL;
}

bool api_upload_data(struct api_upload *u, const void *data, size_t len)
{
	u->received += len;
	if (u->t == NULL) {
		/* failed: the body is dropped, up to a bound (a client may send forever) */
		u->dropped += len;
		return u->dropped <= API_BODY_DISCARD_MAX;
	}
	if (manager_upload_write(u->t, data, len, &u->error) < 0)
		upload_fail(u);
	return true;
}

void api_upload_finish(struct api_upload *u, unsigned *status, json_t **body)
{
	struct proto_fs_reply reply;

	if (u->t != NULL && manager_upload_finish(u->t, &reply, &u->error) == 0) {
		*status = 201;
		*body = json_pack("{s:s, s:I, s:s}", "path", reply.path, "size",
				  (json_int_t)reply.size, "sha256", reply.sha256);
		proto_fs_reply_release(&reply);
		log_event(LOG_INFO, u->id, "sandbox.upload", time_mono_ms() - u->started_ms,
			  "bytes=%llu", (unsigned long long)u->received);
	} else {
		if (u->error == NULL)
			ember_error_oom(&u->error);
		*status = api_status_for(u->error->kind);
		*body = api_encode_error(ember_error_kind_name(u->error->kind), u->error->message);
	}
	upload_fail(u);
}

void api_upload_free(struct api_upload *u)
{
	if (u == NULL)
		return;
	manager_transfer_close(u->t);
	ember_error_free(&u->error);
	free(u);
}

struct api_download {
	struct manager_transfer *t;
	uint64_t size, sent;
	bool failed;
	char id[SANDBOX_ID_LEN + 1];
};

int api_download_open(struct manager *m, const char *id, const struct api_query *query,
		      struct api_download **out, struct ember_error **err)
{
	struct proto_fs_request *req = malloc(sizeof(*req));
	struct api_download *d = calloc(1, sizeof(*d));
	struct proto_fs_entry entry;
	int ret = -1;

	if (req == NULL || d == NULL) {
		ember_error_oom(err);
		goto out;
	}
	snprintf(d->id, sizeof(d->id), "%s", id);
	if (api_parse_fs_query(query, API_FS_QUERY_PATH, req, err) < 0 ||
	    manager_download_open(m, id, req->path, &d->t, &entry, err) < 0)
		goto out;
	d->size = entry.size;
	*out = d;
	d = NULL;
	ret = 0;
out:
	free(req);
	free(d);
	return ret;
}

uint64_t api_download_size(const struct api_download *d)
{
	return d->size;
}

ssize_t api_download_read(struct api_download *d, void *buf, size_t max)
{
	struct ember_error *err = NULL;
	ssize_t n;

	if (d->failed)
		return -1;
	n = manager_download_read(d->t, buf, max, &err);
	if (n < 0) {
		log_event(LOG_WARN, d->id, "sandbox.download_failed", -1,
			  "after %llu of %llu bytes: %s", (unsigned long long)d->sent,
			  (unsigned long long)d->size, err != NULL ? err->message : "");
		ember_error_free(&err);
		d->failed = true;
		return -1;
	}
	d->sent += (uint64_t)n;
	return n;
}

void api_download_free(struct api_download *d)
{
	if (d == NULL)
		return;
	manager_transfer_close(d->t);
	free(d);
}
