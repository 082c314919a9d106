/* filesystem.c - envd's filesystem plane on the E2B listener: the Connect service
 * filesystem.Filesystem (Stat, MakeDir, Move, ListDir, Remove, the polling watcher of
 * watchers.c; WatchDir's stream answers `unimplemented`), GET /files (a file's bytes, streamed
 * like the native GET /sandboxes/{id}/files) and GET /health, each mapped onto the manager's
 * file operations.
 * Shapes follow the SDK's embedded filesystem.proto (proto3 JSON: camelCase names, int64 as a
 * string, enums by name, Timestamp as RFC 3339) and envd's answers (see docs/e2b.md "Files").
 * The Connect pieces here are minimal static helpers of this file's own; the process plane's
 * src/e2b/connect.h has the shared ones (the lead dedups at merge). */
#include "e2b/e2b.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/files.h"
#include "e2b/connect.h"
#include "e2b/fsplane.h"
#include "e2b/fspath.h"
#include "util/cleanup.h"
#include "util/jsonutil.h"
#include "util/timeutil.h"

#define KIND EMBER_E_INVALID

/* --- answers --- */

/* A failure of the manager: a sandbox that is gone is `unavailable` (the SDK's
 * TimeoutError, as when E2B's proxy finds no sandbox), anything else by its kind. */
static void connect_fail(const struct e2b_context *ctx, const struct e2b_request *req,
			 struct api_response *resp, struct ember_error **err)
{
	char msg[160];

	if (*err != NULL && (*err)->kind == EMBER_E_NOT_FOUND &&
	    !e2b_fs_sandbox_exists(ctx, req->sandbox_id)) {
		snprintf(msg, sizeof(msg), "sandbox %.40s is not running", req->sandbox_id);
		e2b_error_connect_msg(resp, "unavailable", msg);
	} else {
		e2b_error_connect(resp, *err);
	}
	ember_error_free(err);
}

static void reply_json(struct api_response *resp, json_t *body)
{
	if (body == NULL) {
		e2b_error_connect(resp, NULL);
		return;
	}
	resp->status = 200;
	resp->body = body;
}

/* Go's os.FileMode.String() of a type and permission bits ("drwxr-xr-x", "Lrwxrwxrwx"),
 * which envd sends as `permissions`. */
static void permissions_text(enum proto_fs_type type, uint32_t mode, char out[16])
{
	static const char rwx[] = "rwxrwxrwx";
	size_t w = 0, i;

	if (type == PROTO_FS_TYPE_DIR)
		out[w++] = 'd';
	else if (type == PROTO_FS_TYPE_SYMLINK)
		out[w++] = 'L';
	if (mode & 04000)
		out[w++] = 'u';
	if (mode & 02000)
		out[w++] = 'g';
	if (mode & 01000)
		out[w++] = 't';
	if (type == PROTO_FS_TYPE_OTHER)
		out[w++] = '?';
	if (w == 0)
		out[w++] = '-';
	for (i = 0; i < 9; i++)
		out[w++] = (mode & (1u << (8 - i))) ? rwx[i] : '-';
	out[w] = '\0';
}

static const char *file_type_name(enum proto_fs_type type)
{
	switch (type) {
	case PROTO_FS_TYPE_FILE: return "FILE_TYPE_FILE";
	case PROTO_FS_TYPE_DIR: return "FILE_TYPE_DIRECTORY";
	case PROTO_FS_TYPE_SYMLINK: return "FILE_TYPE_SYMLINK";
	case PROTO_FS_TYPE_OTHER: break;
	}
	return "FILE_TYPE_UNSPECIFIED";
}

json_t *e2b_fs_encode_entry(const struct proto_fs_entry *e, const char *path)
{
	/* Timestamp's JSON covers years 1 to 9999; the guest's mtime is whatever was set. */
	int64_t mtime_s = e->mtime_s < 0 ? 0 : e->mtime_s > 253402300799 ? 253402300799
									: e->mtime_s;
	char perms[16], size[24], mtime[40];

	permissions_text(e->type, e->mode, perms);
	snprintf(size, sizeof(size), "%llu", (unsigned long long)e->size);
	time_format_rfc3339(mtime_s * 1000000000, mtime, sizeof(mtime));
	return json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s}", "name", e->name, "type",
			 file_type_name(e->type), "path", path, "size", size, "mode",
			 (int)e->mode, "permissions", perms, "modifiedTime", mtime);
}

/* --- requests --- */

/* The body as one JSON object of only the allowed keys. */
static int parse_body(const struct e2b_request *req, const char *const *keys, json_t **out,
		      struct ember_error **err)
{
	if (req->content_type == NULL ||
	    strncasecmp(req->content_type, "application/json", 16) != 0)
		return ember_error_set(err, KIND, 0,
				       "emberd speaks Connect's JSON codec only (Content-Type "
				       "application/json)");
	if (json_parse_object(req->body, req->body_len, out, KIND, err) < 0)
		return -1;
	return json_check_keys(*out, keys, KIND, err);
}

/* A path field, resolved as envd resolves one; absent means "" (proto3 omits it): the home. */
static int get_path(json_t *root, const char *key, char *out, struct ember_error **err)
{
	const char *value = "";
	size_t len;

	if (json_get_string(root, key, false, PROTO_PATH_MAX, &value, &len, KIND, err) < 0)
		return -1;
	return e2b_path_resolve(value, out, err);
}

static int fs_op(const struct e2b_context *ctx, const struct e2b_request *req,
		 struct proto_fs_request *fs, struct proto_fs_reply *reply,
		 struct ember_error **err)
{
	memset(reply, 0, sizeof(*reply));
	return manager_fs(ctx->api->manager, req->sandbox_id, fs, reply, err);
}

/* STAT of a resolved path into *entry; 0 ok, -1 with err. */
static int stat_path(const struct e2b_context *ctx, const struct e2b_request *req,
		     struct proto_fs_request *fs, const char *path, struct proto_fs_entry *entry,
		     struct ember_error **err)
{
	struct proto_fs_reply reply;

	memset(fs, 0, sizeof(*fs));
	fs->op = PROTO_FS_STAT;
	snprintf(fs->path, sizeof(fs->path), "%s", path);
	if (fs_op(ctx, req, fs, &reply, err) < 0)
		return -1;
	if (reply.kind != PROTO_FS_REPLY_ENTRY) {
		proto_fs_reply_release(&reply);
		return ember_error_set(err, EMBER_E_GUEST, 0, "the guest answered a stat without "
							      "an entry");
	}
	*entry = reply.entry;
	proto_fs_reply_release(&reply);
	return 0;
}

/* --- the unary methods; each fills resp --- */

struct fs_call {
	const struct e2b_context *ctx;
	const struct e2b_request *req;
	struct api_response *resp;
	struct proto_fs_request *fs;  /* scratch, one per call */
	char path[PROTO_PATH_MAX + 1];
	char path2[PROTO_PATH_MAX + 1];
};

static void fs_stat(struct fs_call *c, json_t *root)
{
	struct proto_fs_entry entry;
	struct ember_error *err = NULL;

	if (get_path(root, "path", c->path, &err) < 0 ||
	    stat_path(c->ctx, c->req, c->fs, c->path, &entry, &err) < 0) {
		connect_fail(c->ctx, c->req, c->resp, &err);
		return;
	}
	reply_json(c->resp, json_pack("{s:o}", "entry", e2b_fs_encode_entry(&entry, c->path)));
}

/* envd: an existing directory is already_exists (the SDK's makeDir → false), an existing
 * other file invalid_argument; else the directory and its parents are made. */
static void fs_make_dir(struct fs_call *c, json_t *root)
{
	struct proto_fs_entry entry;
	struct proto_fs_reply reply;
	struct ember_error *err = NULL;
	char msg[PROTO_PATH_MAX + 64];

	if (get_path(root, "path", c->path, &err) < 0)
		goto fail;
	if (stat_path(c->ctx, c->req, c->fs, c->path, &entry, &err) == 0) {
		snprintf(msg, sizeof(msg), "%s: %s",
			 entry.type == PROTO_FS_TYPE_DIR ? "directory already exists"
							 : "path already exists but it is not a "
							   "directory",
			 c->path);
		e2b_error_connect_msg(c->resp, entry.type == PROTO_FS_TYPE_DIR ? "already_exists"
										: "invalid_argument",
				      msg);
		return;
	}
	if (err->kind != EMBER_E_NOT_FOUND)
		goto fail;
	ember_error_free(&err);
	memset(c->fs, 0, sizeof(*c->fs));
	c->fs->op = PROTO_FS_MKDIR;
	c->fs->parents = true;
	snprintf(c->fs->path, sizeof(c->fs->path), "%s", c->path);
	if (fs_op(c->ctx, c->req, c->fs, &reply, &err) < 0)
		goto fail;
	proto_fs_reply_release(&reply);
	reply_json(c->resp, json_pack("{s:{s:s, s:s, s:s}}", "entry", "name",
				      e2b_path_base(c->path), "type", "FILE_TYPE_DIRECTORY", "path",
				      c->path));
	return;
fail:
	connect_fail(c->ctx, c->req, c->resp, &err);
}

/* envd: the destination's parents are made, then rename(2); the answer is the moved entry. */
static void fs_move(struct fs_call *c, json_t *root)
{
	struct proto_fs_entry entry;
	struct proto_fs_reply reply;
	struct ember_error *err = NULL;

	if (get_path(root, "source", c->path, &err) < 0 ||
	    get_path(root, "destination", c->path2, &err) < 0)
		goto fail;
	memset(c->fs, 0, sizeof(*c->fs));
	c->fs->op = PROTO_FS_MKDIR;
	c->fs->parents = true;
	e2b_path_dir(c->path2, c->fs->path);
	if (strcmp(c->fs->path, "/") != 0) {
		if (fs_op(c->ctx, c->req, c->fs, &reply, &err) < 0)
			goto fail;
		proto_fs_reply_release(&reply);
	}
	memset(c->fs, 0, sizeof(*c->fs));
	c->fs->op = PROTO_FS_MOVE;
	snprintf(c->fs->path, sizeof(c->fs->path), "%s", c->path);
	snprintf(c->fs->to, sizeof(c->fs->to), "%s", c->path2);
	if (fs_op(c->ctx, c->req, c->fs, &reply, &err) < 0)
		goto fail;
	proto_fs_reply_release(&reply);
	if (stat_path(c->ctx, c->req, c->fs, c->path2, &entry, &err) < 0)
		goto fail;
	reply_json(c->resp, json_pack("{s:o}", "entry", e2b_fs_encode_entry(&entry, c->path2)));
	return;
fail:
	connect_fail(c->ctx, c->req, c->resp, &err);
}

/* envd removes with os.RemoveAll: recursive, and a missing path is no error. */
static void fs_remove(struct fs_call *c, json_t *root)
{
	struct proto_fs_reply reply;
	struct ember_error *err = NULL;

	if (get_path(root, "path", c->path, &err) < 0)
		goto fail;
	memset(c->fs, 0, sizeof(*c->fs));
	c->fs->op = PROTO_FS_REMOVE;
	c->fs->recursive = true;
	snprintf(c->fs->path, sizeof(c->fs->path), "%s", c->path);
	if (fs_op(c->ctx, c->req, c->fs, &reply, &err) < 0) {
		if (err->kind != EMBER_E_NOT_FOUND)
			goto fail;
		/* gone already, unless the sandbox itself is */
		if (!e2b_fs_sandbox_exists(c->ctx, c->req->sandbox_id))
			goto fail;
		ember_error_free(&err);
	} else {
		proto_fs_reply_release(&reply);
	}
	reply_json(c->resp, json_object());
	return;
fail:
	connect_fail(c->ctx, c->req, c->resp, &err);
}

/* One directory level of a walk (fsplane.h e2b_fs_walk_with), pre-order as envd's
 * filepath.WalkDir: an entry, then what is under it. */
struct walk {
	e2b_fs_list_fn list;
	void *list_ctx;
	unsigned dirs_listed;
	unsigned entries;            /* charged per listing as it arrives */
	unsigned max_depth;
	e2b_fs_walk_fn fn;
	void *fn_ctx;
};

/* Each level's listing is on the heap (a struct proto_fs_reply is about 4.5 KB, mostly its
 * path), so a 1000-level walk keeps only small frames on the connection thread's stack. A
 * listing is charged to the entry bound when it arrives, before anything under it is listed:
 * the listings held at once along the recursion never exceed E2B_LIST_ENTRIES_MAX entries. */
static int walk_level(struct walk *w, const char *dir, unsigned depth, struct ember_error **err)
{
	struct proto_fs_reply *reply;
	size_t i;
	int ret = -1;

	if (++w->dirs_listed > E2B_LIST_DIRS_MAX)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "more than %u directories under the path: use a smaller "
				       "depth",
				       E2B_LIST_DIRS_MAX);
	reply = calloc(1, sizeof(*reply));
	if (reply == NULL)
		return ember_error_oom(err);
	if (w->list(w->list_ctx, dir, reply, err) < 0)
		goto out;
	if (reply->truncated) {
		ember_error_set(err, EMBER_E_INVALID, 0,
				"`%.200s` has more entries than one listing holds (%u)", dir,
				PROTO_FS_LIST_MAX);
		goto out;
	}
	if (reply->count > E2B_LIST_ENTRIES_MAX - w->entries) {
		ember_error_set(err, EMBER_E_INVALID, 0,
				"more than %u entries under the path: use a smaller depth",
				E2B_LIST_ENTRIES_MAX);
		goto out;
	}
	w->entries += (unsigned)reply->count;
	for (i = 0; i < reply->count; i++) {
		const struct proto_fs_entry *e = &reply->entries[i];
		size_t n = strlen(dir) + 1 + strlen(e->name) + 1;
		_cleanup_free_ char *path = malloc(n);

		if (path == NULL) {
			ember_error_oom(err);
			goto out;
		}
		snprintf(path, n, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", e->name);
		if (w->fn(w->fn_ctx, path, e, err) < 0)
			goto out;
		if (e->type == PROTO_FS_TYPE_DIR && depth < w->max_depth &&
		    strlen(path) <= PROTO_PATH_MAX && walk_level(w, path, depth + 1, err) < 0)
			goto out;
	}
	ret = 0;
out:
	proto_fs_reply_release(reply);
	free(reply);
	return ret;
}

int e2b_fs_walk_with(e2b_fs_list_fn list, void *list_ctx, const char *dir, unsigned max_depth,
		     e2b_fs_walk_fn fn, void *fn_ctx, struct ember_error **err)
{
	struct walk w = { .list = list, .list_ctx = list_ctx, .max_depth = max_depth, .fn = fn,
			  .fn_ctx = fn_ctx };

	return walk_level(&w, dir, 1, err);
}

struct guest_lister {
	const struct e2b_context *ctx;
	const char *sandbox_id;
	struct proto_fs_request fs; /* scratch */
};

/* e2b_fs_list_fn over the manager: one guest LIST. */
static int guest_list(void *ctx, const char *dir, struct proto_fs_reply *reply,
		      struct ember_error **err)
{
	struct guest_lister *l = ctx;

	memset(&l->fs, 0, sizeof(l->fs));
	l->fs.op = PROTO_FS_LIST;
	snprintf(l->fs.path, sizeof(l->fs.path), "%s", dir);
	return manager_fs(l->ctx->api->manager, l->sandbox_id, &l->fs, reply, err);
}

int e2b_fs_walk(const struct e2b_context *ctx, const char *sandbox_id, const char *dir,
		unsigned max_depth, e2b_fs_walk_fn fn, void *fn_ctx, struct ember_error **err)
{
	struct guest_lister *l = calloc(1, sizeof(*l));
	int ret;

	if (l == NULL)
		return ember_error_oom(err);
	l->ctx = ctx;
	l->sandbox_id = sandbox_id;
	ret = e2b_fs_walk_with(guest_list, l, dir, max_depth, fn, fn_ctx, err);
	free(l);
	return ret;
}

static int list_append(void *ctx, const char *path, const struct proto_fs_entry *e,
		       struct ember_error **err)
{
	if (json_array_append_new(ctx, e2b_fs_encode_entry(e, path)) < 0)
		return ember_error_oom(err);
	return 0;
}

/* envd: the path (symlinks followed) must be a directory; entries to `depth` levels (0: 1),
 * not following symlinks below it; every entry's path under the path as asked. */
static void fs_list_dir(struct fs_call *c, json_t *root)
{
	json_t *entries = json_array();
	struct ember_error *err = NULL;
	uint64_t depth = 1;
	char msg[PROTO_PATH_MAX + 64];

	if (entries == NULL) {
		ember_error_oom(&err);
		goto fail;
	}
	if (get_path(root, "path", c->path, &err) < 0 ||
	    json_get_uint(root, "depth", false, 0, UINT32_MAX, &depth, KIND, &err) < 0)
		goto fail;
	if (e2b_fs_walk(c->ctx, c->req->sandbox_id, c->path, depth == 0 ? 1 : (unsigned)depth,
			list_append, entries, &err) < 0) {
		if (err->kind == EMBER_E_CONFLICT) { /* not a directory */
			snprintf(msg, sizeof(msg), "path is not a directory: %s", c->path);
			e2b_error_connect_msg(c->resp, "invalid_argument", msg);
			ember_error_free(&err);
			json_decref(entries);
			return;
		}
		goto fail;
	}
	reply_json(c->resp, json_pack("{s:o}", "entries", entries));
	return;
fail:
	json_decref(entries);
	connect_fail(c->ctx, c->req, c->resp, &err);
}

static void fs_create_watcher(struct fs_call *c, json_t *root)
{
	e2b_watcher_create(c->ctx, c->req->sandbox_id, root, c->resp);
}

static void fs_get_watcher_events(struct fs_call *c, json_t *root)
{
	e2b_watcher_events(c->ctx, c->req->sandbox_id, root, c->resp);
}

static void fs_remove_watcher(struct fs_call *c, json_t *root)
{
	e2b_watcher_remove(c->ctx, c->req->sandbox_id, root, c->resp);
}

static const char *const path_keys[] = { "path", NULL };
static const char *const move_keys[] = { "source", "destination", NULL };
static const char *const list_keys[] = { "path", "depth", NULL };
/* proto3 JSON readers take both the camelCase and the proto field names */
static const char *const create_watcher_keys[] = { "path", "recursive", "includeEntry",
						   "include_entry", "allowNetworkMounts",
						   "allow_network_mounts", NULL };
static const char *const watcher_keys[] = { "watcherId", "watcher_id", NULL };

static const struct {
	const char *method;
	const char *const *keys;
	void (*handle)(struct fs_call *c, json_t *root);
} unary_methods[] = {
	{ "Stat", path_keys, fs_stat },
	{ "MakeDir", path_keys, fs_make_dir },
	{ "Move", move_keys, fs_move },
	{ "ListDir", list_keys, fs_list_dir },
	{ "Remove", path_keys, fs_remove },
	{ "CreateWatcher", create_watcher_keys, fs_create_watcher },
	{ "GetWatcherEvents", watcher_keys, fs_get_watcher_events },
	{ "RemoveWatcher", watcher_keys, fs_remove_watcher },
};

#define WATCH_UNSUPPORTED                                                                      \
	"emberd does not stream directory events (the guest agent has no file events): use "  \
	"the polling watcher (CreateWatcher/GetWatcherEvents, the Python SDK's sync "         \
	"watch_dir) or poll with files.list()"

/* WatchDir is a server stream: its error is the stream's end frame (flag 0x02), which the
 * Connect client reads with the message (a non-200 status would lose it). */
static void watch_dir_unsupported(struct api_response *resp)
{
	struct buf frame = { 0 };
	struct ember_error *err = NULL;

	if (e2b_connect_end(&frame, "unimplemented", WATCH_UNSUPPORTED, &err) < 0) {
		buf_release(&frame);
		e2b_error_connect(resp, err);
		ember_error_free(&err);
		return;
	}
	resp->status = 200;
	resp->text = (char *)frame.data; /* the response owns it now */
	resp->text_len = frame.len;
	resp->content_type = "application/connect+json";
}

static void route_rpc(const struct e2b_context *ctx, const struct e2b_request *req,
		      const char *method, struct api_response *resp)
{
	_cleanup_free_ struct fs_call *c = calloc(1, sizeof(*c));
	_cleanup_free_ struct proto_fs_request *fs = malloc(sizeof(*fs));
	_cleanup_json_ json_t *root = NULL;
	struct ember_error *err = NULL;
	size_t i;

	if (strcmp(method, "WatchDir") == 0) {
		watch_dir_unsupported(resp);
		return;
	}
	for (i = 0; i < sizeof(unary_methods) / sizeof(unary_methods[0]); i++) {
		if (strcmp(method, unary_methods[i].method) == 0)
			break;
	}
	if (i == sizeof(unary_methods) / sizeof(unary_methods[0])) {
		e2b_error_connect_msg(resp, "unimplemented",
				      "no such method of filesystem.Filesystem");
		return;
	}
	if (strcmp(req->method, "POST") != 0) {
		e2b_error_connect_msg(resp, "unimplemented", "Connect unary calls are POSTs");
		return;
	}
	if (c == NULL || fs == NULL) {
		e2b_error_connect(resp, NULL);
		return;
	}
	if (e2b_username(req->authorization, NULL, &err) < 0 ||
	    parse_body(req, unary_methods[i].keys, &root, &err) < 0) {
		e2b_error_connect(resp, err);
		ember_error_free(&err);
		return;
	}
	*c = (struct fs_call){ .ctx = ctx, .req = req, .resp = resp, .fs = fs };
	unary_methods[i].handle(c, root);
}

/* --- GET /files --- */

int e2b_files_query(const struct e2b_request *req, const char **path, struct ember_error **err)
{
	const char *raw = NULL, *username = NULL;
	size_t i;

	*path = NULL;
	if (req->query->too_many || req->query->has_nul)
		return ember_error_set(err, KIND, 0, "malformed query");
	for (i = 0; i < req->query->count; i++) {
		const char *key = req->query->pairs[i].key, *value = req->query->pairs[i].value;
		const char **slot = strcmp(key, "path") == 0 ? &raw
				    : strcmp(key, "username") == 0 ? &username
								   : NULL;

		if (strcmp(key, "signature") == 0 || strcmp(key, "signature_expiration") == 0)
			return ember_error_set(err, KIND, 0,
					       "signed file URLs are not supported by emberd: send "
					       "the X-Access-Token header");
		if (slot == NULL)
			return ember_error_set(err, KIND, 0, "unknown query parameter `%.64s`", key);
		if (*slot != NULL)
			return ember_error_set(err, KIND, 0, "query parameter `%s` is given twice",
					       key);
		*slot = value != NULL ? value : "";
	}
	if (e2b_username(req->authorization, username, err) < 0)
		return -1;
	*path = raw != NULL && raw[0] != '\0' ? raw : NULL;
	return 0;
}

/* The query of GET /files: path (required) resolved into path. */
static int parse_files_query(const struct e2b_request *req, char *path, struct ember_error **err)
{
	const char *raw;

	if (e2b_files_query(req, &raw, err) < 0)
		return -1;
	if (raw == NULL)
		return ember_error_set(err, KIND, 0, "query parameter `path` is required");
	return e2b_path_resolve(raw, path, err);
}

bool e2b_fs_sandbox_exists(const struct e2b_context *ctx, const char *sandbox_id)
{
	_cleanup_free_ struct sandbox_info *info = malloc(sizeof(*info));
	struct ember_error *err = NULL;
	bool exists = info == NULL || manager_get(ctx->api->manager, sandbox_id, info, &err) == 0;

	ember_error_free(&err);
	return exists;
}

void e2b_fs_rest_error(const struct e2b_context *ctx, const char *sandbox_id,
		       struct api_response *resp, struct ember_error **err)
{
	char msg[160];

	if (*err != NULL && (*err)->kind == EMBER_E_NOT_FOUND &&
	    !e2b_fs_sandbox_exists(ctx, sandbox_id)) {
		snprintf(msg, sizeof(msg), "sandbox %.40s is not running", sandbox_id);
		e2b_error_rest_msg(resp, 502, msg);
	} else if (*err != NULL && (*err)->kind == EMBER_E_CONFLICT) {
		e2b_error_rest_msg(resp, 400, (*err)->message); /* a directory: envd's 400 */
	} else {
		e2b_error_rest(resp, *err);
	}
	ember_error_free(err);
}

static void files_get(const struct e2b_context *ctx, const struct e2b_request *req,
		      struct api_response *resp)
{
	_cleanup_free_ char *path = malloc(PROTO_PATH_MAX + 1);
	struct api_query query = { .count = 1 };
	struct ember_error *err = NULL;

	if (path == NULL) {
		e2b_error_rest(resp, NULL);
		return;
	}
	if (parse_files_query(req, path, &err) < 0) {
		e2b_error_rest(resp, err);
		ember_error_free(&err);
		return;
	}
	query.pairs[0].key = "path";
	query.pairs[0].value = path;
	if (api_download_open(ctx->api->manager, req->sandbox_id, &query, &resp->download,
			      &err) < 0) {
		e2b_fs_rest_error(ctx, req->sandbox_id, resp, &err);
		return;
	}
	resp->status = 200;
}

void e2b_fs_route(const struct e2b_context *ctx, const struct e2b_request *req,
		  struct api_response *resp)
{
	static const char prefix[] = "/filesystem.Filesystem/";

	if (strlen(req->sandbox_id) > SANDBOX_ID_LEN) {
		e2b_error_rest_msg(resp, 502, "no such sandbox");
		return;
	}
	if (strncmp(req->path, prefix, sizeof(prefix) - 1) == 0) {
		route_rpc(ctx, req, req->path + sizeof(prefix) - 1, resp);
		return;
	}
	if (strcmp(req->path, "/health") == 0 && strcmp(req->method, "GET") == 0) {
		/* the SDK reads 502 as "the sandbox is gone" */
		if (e2b_fs_sandbox_exists(ctx, req->sandbox_id))
			resp->status = 204;
		else
			e2b_error_rest_msg(resp, 502, "the sandbox is not running");
		return;
	}
	if (strcmp(req->path, "/files") == 0 && strcmp(req->method, "GET") == 0) {
		files_get(ctx, req, resp);
		return;
	}
	if (strcmp(req->path, "/files") == 0 && strcmp(req->method, "POST") == 0) {
		/* e2b_route_upload() takes every POST /files; here only when it could not */
		e2b_error_rest_msg(resp, 500, "the upload could not be started (out of memory)");
		return;
	}
	e2b_error_rest_msg(resp, 404, "no such envd route on emberd");
}
