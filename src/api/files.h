/* files.h - the byte-moving half of the file routes (docs/api.md "Files"): an upload fed from
 * the HTTP request body as it arrives, a download read by the HTTP response as it is sent, and
 * the JSON of directory entries.
 * Used by server.c (the upload's body, the download's response callback) and routes.c. Holds
 * at most one body piece (the HTTP library's 64 KiB) plus the channel's credit window per
 * transfer: blocking in the guest's pace is the backpressure. Never interprets a path. */
#ifndef EMBER_API_FILES_H
#define EMBER_API_FILES_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "api/requests.h"
#include "proto/fsmsg.h"
#include "sandbox/manager.h"
#include "util/error.h"

/* {"name","type","size","mode":"0644","mtime":"RFC 3339 UTC"} */
json_t *api_encode_fs_entry(const struct proto_fs_entry *entry);

/* PUT /sandboxes/{id}/files: started when the request's headers are in, fed every body piece,
 * answered at the body's end. A step that fails records its error: the rest of the body is
 * read and dropped, and the answer is that error (the library takes no answer mid-body). */
struct api_upload;

/* Never NULL except out of memory. id: a well-formed sandbox id, or NULL for one that is not
 * (the answer is then 404). */
struct api_upload *api_upload_begin(struct manager *m, const char *id,
				    const struct api_query *query);
/* One piece of body; blocks while the guest has no room (backpressure). false once more than
 * API_BODY_DISCARD_MAX bytes were dropped after a failure: the caller then closes the
 * connection without an answer, as for any oversized body. */
bool api_upload_data(struct api_upload *u, const void *data, size_t len);
/* The body is all in: 201 {"path","size","sha256"} or the recorded error. */
void api_upload_finish(struct api_upload *u, unsigned *status, json_t **body);
/* Frees; an upload not finished is cancelled (the guest removes its temporary file). NULL is
 * fine. */
void api_upload_free(struct api_upload *u);

/* GET /sandboxes/{id}/files: the file's size is known before the first byte goes out. */
struct api_download;

int api_download_open(struct manager *m, const char *id, const struct api_query *query,
		      struct api_download **out, struct ember_error **err);
uint64_t api_download_size(const struct api_download *d);
/* Up to max bytes; 0 at the end; -1 when the transfer failed (the connection is cut: a status
 * is already out). */
ssize_t api_download_read(struct api_download *d, void *buf, size_t max);
/* NULL is fine; a download not read to its end is cancelled. */
void api_download_free(struct api_download *d);

#endif
