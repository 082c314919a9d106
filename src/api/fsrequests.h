/* fsrequests.h - decoding of the file routes' input (docs/api.md "Files"): the query of
 * /files and /fs (path, mode, mkdir) and the JSON bodies of /fs/mkdir, /fs/move, /fs/remove.
 * Used by routes.c and the upload path; pure functions over bytes, fuzzed by
 * tests/fuzz/fuzz_api_fsrequests.c. Strict like requests.h; never interprets a path beyond its
 * bounds (non-empty, at most PROTO_PATH_MAX bytes, no NUL): the guest resolves it. */
#ifndef EMBER_API_FSREQUESTS_H
#define EMBER_API_FSREQUESTS_H

#include <stdbool.h>
#include <stddef.h>

#include "api/requests.h"
#include "proto/fsmsg.h"
#include "util/error.h"

/* Which query a route takes: GET /files and GET /fs only `path`; PUT /files also `mode` (octal
 * text, at most 07777) and `mkdir` (1/0, true/false). */
enum api_fs_query_kind { API_FS_QUERY_PATH, API_FS_QUERY_UPLOAD };

/* Fills out->path (and, for an upload, parents / has_mode / mode); out->op is left to the
 * caller. */
int api_parse_fs_query(const struct api_query *query, enum api_fs_query_kind kind,
		       struct proto_fs_request *out, struct ember_error **err);

/* The body of POST /fs/mkdir ({"path","parents"?,"mode"?}), /fs/move ({"from","to"}) or
 * /fs/remove ({"path","recursive"?}), by op (PROTO_FS_MKDIR / MOVE / REMOVE). */
int api_parse_fs_body(enum proto_fs_op op, const char *body, size_t len,
		      struct proto_fs_request *out, struct ember_error **err);

/* "0644": a mode as 4 octal digits (the form of the API's entries, and what `mode` takes). */
int api_parse_octal_mode(const char *text, uint32_t *mode, struct ember_error **err);

#endif
