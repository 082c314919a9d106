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

/* The query of GET and POST /files: `path` (*path: NULL when absent or empty; not yet
 * resolved) and `username` (checked, e2b_username); a signed URL's parameters, unknown and
 * repeated ones are refused (EMBER_E_INVALID). */
int e2b_files_query(const struct e2b_request *req, const char **path, struct ember_error **err);

/* Whether the sandbox still exists (a NOT_FOUND is then about a path, not the sandbox). */
bool e2b_fs_sandbox_exists(const struct e2b_context *ctx, const char *sandbox_id);

/* EntryInfo (filesystem.proto, proto3 JSON) of an entry at path. owner/group are not known
 * to the host (the guest protocol carries none) and left out, which proto3 JSON reads as "". */
json_t *e2b_fs_encode_entry(const struct proto_fs_entry *e, const char *path);

/* Walks dir (resolved; a symlink to a directory is followed for dir itself) to max_depth
 * levels, pre-order, entries in name order within a directory, symlinks below dir not
 * followed; fn gets each entry's path (under dir as given) and entry. Within the bounds
 * above, each listing charged to the entry bound when it arrives (so the listings held along
 * the recursion stay under E2B_LIST_ENTRIES_MAX entries, about 2.9 MB); a dir that is not a
 * directory is EMBER_E_CONFLICT. */
typedef int (*e2b_fs_walk_fn)(void *ctx, const char *path, const struct proto_fs_entry *e,
			      struct ember_error **err);
int e2b_fs_walk(const struct e2b_context *ctx, const char *sandbox_id, const char *dir,
		unsigned max_depth, e2b_fs_walk_fn fn, void *fn_ctx, struct ember_error **err);

/* The walk over any lister (the unit tests' fake guest): list fills reply (zeroed by the
 * caller, who releases it with proto_fs_reply_release) with dir's LIST answer. */
typedef int (*e2b_fs_list_fn)(void *ctx, const char *dir, struct proto_fs_reply *reply,
			      struct ember_error **err);
int e2b_fs_walk_with(e2b_fs_list_fn list, void *list_ctx, const char *dir, unsigned max_depth,
		     e2b_fs_walk_fn fn, void *fn_ctx, struct ember_error **err);

/* The polling watcher's table (watchers.c): at most this many watchers of one sandbox. */
#define E2B_WATCHERS_PER_SANDBOX 8u

/* One slot of the table as e2b_watch_pick sees it. */
struct e2b_watch_slot {
	bool used, busy;    /* busy: a GetWatcherEvents of it is running */
	const char *sandbox;
	int64_t polled_ms;  /* created or last polled */
};
#define E2B_WATCH_SWEEP (-1)     /* drop the watchers of sandboxes that are gone, then ask again */
#define E2B_WATCH_EXHAUSTED (-2) /* no slot: resource_exhausted */

/* Which of the n slots a new watcher of sandbox takes: a free one while the sandbox has fewer
 * than E2B_WATCHERS_PER_SANDBOX, else its own sandbox's idle one polled least recently (the
 * caller drops it first); never another sandbox's. When the table is full of other
 * sandboxes' watchers and !swept, E2B_WATCH_SWEEP. Pure: the caller holds the table's lock. */
int e2b_watch_pick(const struct e2b_watch_slot *slots, size_t n, const char *sandbox,
		   bool swept);

/* The polling watcher's unary methods (watchers.c), each with its request's parsed JSON
 * (keys already checked) and filling resp: CreateWatcher, GetWatcherEvents, RemoveWatcher. */
void e2b_watcher_create(const struct e2b_context *ctx, const char *sandbox_id, json_t *body,
			struct api_response *resp);
void e2b_watcher_events(const struct e2b_context *ctx, const char *sandbox_id, json_t *body,
			struct api_response *resp);
void e2b_watcher_remove(const struct e2b_context *ctx, const char *sandbox_id, json_t *body,
			struct api_response *resp);

#endif
