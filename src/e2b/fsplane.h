/* fsplane.h - what the envd file plane's files share: filesystem.c (Connect service, GET
 * /files, /health, the walk), upload.c (POST /files) and watchers.c (the polling watcher).
 * Never used outside src/e2b. */
#ifndef EMBER_E2B_FSPLANE_H
#define EMBER_E2B_FSPLANE_H

#include <jansson.h>

#include "e2b/e2b.h"
#include "proto/fsmsg.h"

/* A walk (ListDir with depth > 1, a recursive watcher) lists each subdirectory with one guest
 * round trip: at most this many entries in all (a larger tree is refused, not cut, as envd
 * never cuts a listing) and this many directories, so one call cannot keep a guest busy long. */
#define E2B_LIST_ENTRIES_MAX 10000u
#define E2B_LIST_DIRS_MAX 1000u

/* A file operation's failure as envd's REST answer: a sandbox that is gone is 502 (the SDK's
 * TimeoutError, as E2B's proxy answers), a directory where a file was meant 400, the rest by
 * kind. Frees *err. */
void e2b_fs_rest_error(const struct e2b_context *ctx, const char *sandbox_id,
		       struct api_response *resp, struct ember_error **err);

/* Whether the sandbox still exists (a NOT_FOUND is then about a path, not the sandbox). */
bool e2b_fs_sandbox_exists(const struct e2b_context *ctx, const char *sandbox_id);

/* EntryInfo (filesystem.proto, proto3 JSON) of an entry at path. owner/group are not known
 * to the host (the guest protocol carries none) and left out, which proto3 JSON reads as "". */
json_t *e2b_fs_encode_entry(const struct proto_fs_entry *e, const char *path);

/* Walks dir (resolved; a symlink to a directory is followed for dir itself) to max_depth
 * levels, pre-order, entries in name order within a directory, symlinks below dir not
 * followed; fn gets each entry's path (under dir as given) and entry. Within the bounds
 * above; a dir that is not a directory is EMBER_E_CONFLICT. */
typedef int (*e2b_fs_walk_fn)(void *ctx, const char *path, const struct proto_fs_entry *e,
			      struct ember_error **err);
int e2b_fs_walk(const struct e2b_context *ctx, const char *sandbox_id, const char *dir,
		unsigned max_depth, e2b_fs_walk_fn fn, void *fn_ctx, struct ember_error **err);

/* The polling watcher's unary methods (watchers.c), each with its request's parsed JSON
 * (keys already checked) and filling resp: CreateWatcher, GetWatcherEvents, RemoveWatcher. */
void e2b_watcher_create(const struct e2b_context *ctx, const char *sandbox_id, json_t *body,
			struct api_response *resp);
void e2b_watcher_events(const struct e2b_context *ctx, const char *sandbox_id, json_t *body,
			struct api_response *resp);
void e2b_watcher_remove(const struct e2b_context *ctx, const char *sandbox_id, json_t *body,
			struct api_response *resp);

#endif
