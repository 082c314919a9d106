/* watchers.c - envd's polling watcher (CreateWatcher, GetWatcherEvents, RemoveWatcher: the
 * Python SDK's sync watch_dir) without file events in the guest: a watcher keeps a snapshot of
 * its directory's listing (recursive: the whole tree, within fsplane.h's walk bounds) and each
 * GetWatcherEvents lists again and answers the difference: a new path is CREATE, a vanished one
 * REMOVE, a changed size or mtime WRITE, changed permission bits CHMOD. What happened between
 * two polls and was undone (a file made and removed) is not seen, and a rename is a REMOVE and
 * a CREATE: the cost of polling, which costs one listing per poll (one per directory when
 * recursive) and no guest state.
 * The registry is the one piece of global state here: a fixed table behind one mutex, never
 * held across a guest call (a poll marks its watcher busy, lists unlocked, then stores). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "e2b/fsplane.h"
#include "e2b/fspath.h"
#include "util/cleanup.h"
#include "util/jsonutil.h"
#include "util/timeutil.h"

/* Watchers across every sandbox, at most E2B_WATCHERS_PER_SANDBOX (fsplane.h) of one
 * sandbox; a new one takes a free slot, else drops its own sandbox's least recently polled
 * one (see e2b_watch_pick), never another sandbox's unless that sandbox is gone (clients of a
 * sandbox that is gone never remove theirs).
 * Memory: a snapshot is at most 10000 compact entries (the array grows to 16384 × 32 B =
 * 512 KiB) plus 1 MiB of relative names (one malloc each: about 16 B of overhead, 160 KB),
 * about 1.7 MiB; a poll holds its watcher's old and new snapshot. So at most 32 × 2 × 1.7 ≈
 * 110 MiB when every watcher watches a full-sized tree and all are polled at once (one
 * sandbox: 8 × 2 × 1.7 ≈ 27 MiB). */
#define E2B_WATCHERS_MAX 32u
/* Bytes of relative path names one snapshot keeps. */
#define E2B_WATCH_NAMES_MAX (1u << 20)

/* What a poll compares; the proto_fs_entry is rebuilt only for an includeEntry event. */
struct snap_entry {
	char *rel;       /* the path relative to the watched directory */
	uint64_t size;
	int64_t mtime_s;
	uint32_t mode;
	uint8_t type;    /* enum proto_fs_type */
};
_Static_assert(sizeof(struct snap_entry) <= 32, "a snapshot entry stays compact");

struct snapshot {
	struct snap_entry *v;
	size_t n, cap, name_bytes;
	size_t dir_len;              /* strlen of the watched path, to cut the relative part */
};

struct watcher {
	bool used, busy;
	char id[20];                 /* "w" + 16 hex digits */
	char sandbox[SANDBOX_ID_LEN + 1];
	char *path;                  /* resolved */
	bool recursive, include_entry;
	struct snapshot snap;
	int64_t polled_ms;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct watcher table[E2B_WATCHERS_MAX];

static void snapshot_release(struct snapshot *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->v[i].rel);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static int snapshot_add(void *ctx, const char *path, const struct proto_fs_entry *e,
			struct ember_error **err)
{
	struct snapshot *s = ctx;
	const char *rel = path + s->dir_len + (path[s->dir_len] == '/' ? 1 : 0);
	size_t len = strlen(rel);

	if (s->name_bytes + len > E2B_WATCH_NAMES_MAX)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "the watched tree's names exceed %u bytes: watch a smaller "
				       "directory",
				       E2B_WATCH_NAMES_MAX);
	if (s->n == s->cap) {
		size_t cap = s->cap != 0 ? s->cap * 2 : 64;
		struct snap_entry *v = realloc(s->v, cap * sizeof(*v));

		if (v == NULL)
			return ember_error_oom(err);
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n].rel = strdup(rel);
	if (s->v[s->n].rel == NULL)
		return ember_error_oom(err);
	s->v[s->n].size = e->size;
	s->v[s->n].mtime_s = e->mtime_s;
	s->v[s->n].mode = e->mode;
	s->v[s->n].type = (uint8_t)e->type;
	s->n++;
	s->name_bytes += len;
	return 0;
}

static int by_rel(const void *a, const void *b)
{
	return strcmp(((const struct snap_entry *)a)->rel, ((const struct snap_entry *)b)->rel);
}

/* The directory's listing now, sorted by relative path. */
static int snapshot_take(const struct e2b_context *ctx, const char *sandbox_id, const char *path,
			 bool recursive, struct snapshot *out, struct ember_error **err)
{
	memset(out, 0, sizeof(*out));
	out->dir_len = strcmp(path, "/") == 0 ? 0 : strlen(path);
	if (e2b_fs_walk(ctx, sandbox_id, path, recursive ? UINT32_MAX : 1, snapshot_add, out,
			err) < 0) {
		snapshot_release(out);
		return -1;
	}
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(out->v[0]), by_rel);
	return 0;
}

static int add_event(json_t *events, const char *type, const struct snap_entry *e,
		     const char *dir, bool include_entry)
{
	json_t *ev = json_pack("{s:s, s:s}", "name", e->rel, "type", type);
	size_t n = strlen(dir) + 1 + strlen(e->rel) + 1;
	_cleanup_free_ char *path = include_entry ? malloc(n) : NULL;

	if (ev == NULL)
		return -1;
	if (path != NULL) {
		const char *slash = strrchr(e->rel, '/');
		struct proto_fs_entry entry = { .type = (enum proto_fs_type)e->type,
						.size = e->size, .mode = e->mode,
						.mtime_s = e->mtime_s };

		snprintf(entry.name, sizeof(entry.name), "%s", slash != NULL ? slash + 1 : e->rel);
		snprintf(path, n, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", e->rel);
		json_object_set_new(ev, "entry", e2b_fs_encode_entry(&entry, path));
	}
	return json_array_append_new(events, ev);
}

/* The events that turn old into new (both sorted by relative path). */
static json_t *diff(const struct snapshot *old, const struct snapshot *new, const char *dir,
		    bool include_entry)
{
	json_t *events = json_array();
	size_t i = 0, j = 0;
	int ret = 0;

	while (events != NULL && ret == 0 && (i < old->n || j < new->n)) {
		int cmp = i == old->n ? 1 : j == new->n ? -1 : strcmp(old->v[i].rel, new->v[j].rel);
		const struct snap_entry *a = cmp == 0 ? &old->v[i] : NULL;
		const struct snap_entry *b = cmp == 0 ? &new->v[j] : NULL;

		if (cmp < 0) {
			ret = add_event(events, "EVENT_TYPE_REMOVE", &old->v[i++], dir, false);
			continue;
		}
		if (cmp > 0) {
			ret = add_event(events, "EVENT_TYPE_CREATE", &new->v[j++], dir,
					include_entry);
			continue;
		}
		if (a->type != b->type) {
			ret = add_event(events, "EVENT_TYPE_REMOVE", &old->v[i], dir, false);
			if (ret == 0)
				ret = add_event(events, "EVENT_TYPE_CREATE", &new->v[j], dir,
						include_entry);
		} else {
			/* a directory's own size and mtime follow its entries: not a write */
			if (a->type != PROTO_FS_TYPE_DIR &&
			    (a->size != b->size || a->mtime_s != b->mtime_s))
				ret = add_event(events, "EVENT_TYPE_WRITE", &new->v[j], dir,
						include_entry);
			if (ret == 0 && a->mode != b->mode)
				ret = add_event(events, "EVENT_TYPE_CHMOD", &new->v[j], dir,
						include_entry);
		}
		i++;
		j++;
	}
	if (ret < 0) {
		json_decref(events);
		return NULL;
	}
	return events;
}

/* --- the registry --- */

int e2b_watch_pick(const struct e2b_watch_slot *slots, size_t n, const char *sandbox,
		   bool swept)
{
	size_t i, own = 0;
	int free_slot = -1, lru = -1;

	for (i = 0; i < n; i++) {
		if (!slots[i].used) {
			if (free_slot < 0)
				free_slot = (int)i;
			continue;
		}
		if (strcmp(slots[i].sandbox, sandbox) != 0)
			continue;
		own++;
		if (!slots[i].busy && (lru < 0 || slots[i].polled_ms < slots[lru].polled_ms))
			lru = (int)i;
	}
	if (own < E2B_WATCHERS_PER_SANDBOX && free_slot >= 0)
		return free_slot;
	if (own < E2B_WATCHERS_PER_SANDBOX && !swept)
		return E2B_WATCH_SWEEP;
	return lru >= 0 ? lru : E2B_WATCH_EXHAUSTED;
}

/* The slot a new watcher of sandbox_id takes (e2b_watch_pick), emptied (a dropped watcher's
 * snapshot and path handed back to free), or a negative E2B_WATCH_*. Locked. */
static int slot_take(const char *sandbox_id, bool swept, struct snapshot *evicted,
		     char **evicted_path)
{
	struct e2b_watch_slot view[E2B_WATCHERS_MAX];
	size_t i;
	int pick;

	for (i = 0; i < E2B_WATCHERS_MAX; i++)
		view[i] = (struct e2b_watch_slot){ .used = table[i].used, .busy = table[i].busy,
						   .sandbox = table[i].sandbox,
						   .polled_ms = table[i].polled_ms };
	pick = e2b_watch_pick(view, E2B_WATCHERS_MAX, sandbox_id, swept);
	if (pick >= 0 && table[pick].used) {
		*evicted = table[pick].snap;
		*evicted_path = table[pick].path;
		memset(&table[pick], 0, sizeof(table[pick]));
	}
	return pick;
}

/* Drops every idle watcher whose sandbox no longer exists. Takes the lock itself, never
 * across the manager's lookups. */
static void sweep_gone(const struct e2b_context *ctx)
{
	char ids[E2B_WATCHERS_MAX][SANDBOX_ID_LEN + 1];
	bool gone[E2B_WATCHERS_MAX] = { false };
	struct snapshot snaps[E2B_WATCHERS_MAX];
	char *paths[E2B_WATCHERS_MAX];
	size_t i, j, n = 0, dropped = 0;

	pthread_mutex_lock(&lock);
	for (i = 0; i < E2B_WATCHERS_MAX; i++) {
		if (table[i].used)
			snprintf(ids[n++], sizeof(ids[0]), "%s", table[i].sandbox);
	}
	pthread_mutex_unlock(&lock);
	for (j = 0; j < n; j++)
		gone[j] = !e2b_fs_sandbox_exists(ctx, ids[j]);
	pthread_mutex_lock(&lock);
	for (i = 0; i < E2B_WATCHERS_MAX; i++) {
		for (j = 0; table[i].used && !table[i].busy && j < n; j++) {
			if (gone[j] && strcmp(table[i].sandbox, ids[j]) == 0) {
				snaps[dropped] = table[i].snap;
				paths[dropped++] = table[i].path;
				memset(&table[i], 0, sizeof(table[i]));
			}
		}
	}
	pthread_mutex_unlock(&lock);
	for (i = 0; i < dropped; i++) {
		snapshot_release(&snaps[i]);
		free(paths[i]);
	}
}

/* The watcher of this sandbox with that id. Locked. */
static struct watcher *find(const char *sandbox_id, const char *id)
{
	size_t i;

	for (i = 0; i < E2B_WATCHERS_MAX; i++) {
		if (table[i].used && strcmp(table[i].id, id) == 0 &&
		    strcmp(table[i].sandbox, sandbox_id) == 0)
			return &table[i];
	}
	return NULL;
}

static void fail(const struct e2b_context *ctx, const char *sandbox_id,
		 struct api_response *resp, struct ember_error **err)
{
	char msg[160];

	if ((*err)->kind == EMBER_E_NOT_FOUND && !e2b_fs_sandbox_exists(ctx, sandbox_id)) {
		snprintf(msg, sizeof(msg), "sandbox %.40s is not running", sandbox_id);
		e2b_error_connect_msg(resp, "unavailable", msg);
	} else if ((*err)->kind == EMBER_E_CONFLICT) {
		e2b_error_connect_msg(resp, "invalid_argument", "the path is not a directory");
	} else {
		e2b_error_connect(resp, *err);
	}
	ember_error_free(err);
}

void e2b_watcher_create(const struct e2b_context *ctx, const char *sandbox_id, json_t *body,
			struct api_response *resp)
{
	_cleanup_free_ char *path = malloc(PROTO_PATH_MAX + 1);
	struct snapshot snap, evicted = { 0 };
	char *evicted_path = NULL, id[20], msg[128];
	struct ember_error *err = NULL;
	bool recursive = false, include_entry = false, include_entry2 = false, net = false;
	bool swept;
	int pick;
	const char *raw = "";
	struct watcher *w;
	uint8_t rnd[8];
	size_t len, i;

	if (path == NULL) {
		e2b_error_connect(resp, NULL);
		return;
	}
	if (json_get_string(body, "path", false, PROTO_PATH_MAX, &raw, &len, EMBER_E_INVALID,
			    &err) < 0 ||
	    json_get_bool(body, "recursive", false, &recursive, EMBER_E_INVALID, &err) < 0 ||
	    json_get_bool(body, "includeEntry", false, &include_entry, EMBER_E_INVALID, &err) < 0 ||
	    json_get_bool(body, "include_entry", false, &include_entry2, EMBER_E_INVALID, &err) < 0 ||
	    json_get_bool(body, "allowNetworkMounts", false, &net, EMBER_E_INVALID, &err) < 0 ||
	    e2b_path_resolve(raw, path, &err) < 0 ||
	    snapshot_take(ctx, sandbox_id, path, recursive, &snap, &err) < 0) {
		fail(ctx, sandbox_id, resp, &err);
		return;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		snapshot_release(&snap);
		e2b_error_connect_msg(resp, "internal", "no random bytes for a watcher id");
		return;
	}
	id[0] = 'w';
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(id + 1 + 2 * i, 3, "%02x", rnd[i]);
	for (swept = false;; swept = true) {
		pthread_mutex_lock(&lock);
		pick = slot_take(sandbox_id, swept, &evicted, &evicted_path);
		if (pick >= 0)
			break; /* locked */
		pthread_mutex_unlock(&lock);
		if (pick == E2B_WATCH_EXHAUSTED)
			break;
		sweep_gone(ctx);
	}
	w = pick >= 0 ? &table[pick] : NULL;
	if (w != NULL) {
		*w = (struct watcher){ .used = true, .recursive = recursive,
				       .include_entry = include_entry || include_entry2,
				       .snap = snap, .path = path, .polled_ms = time_mono_ms() };
		path = NULL; /* the watcher's now */
		snprintf(w->id, sizeof(w->id), "%s", id);
		snprintf(w->sandbox, sizeof(w->sandbox), "%s", sandbox_id);
		pthread_mutex_unlock(&lock);
	}
	snapshot_release(&evicted);
	free(evicted_path);
	if (w == NULL) {
		snapshot_release(&snap);
		snprintf(msg, sizeof(msg),
			 "no watcher slot free (at most %u per sandbox, %u in all, none of them "
			 "idle)",
			 E2B_WATCHERS_PER_SANDBOX, E2B_WATCHERS_MAX);
		e2b_error_connect_msg(resp, "resource_exhausted", msg);
		return;
	}
	resp->status = 200;
	resp->body = json_pack("{s:s}", "watcherId", id);
	if (resp->body == NULL)
		e2b_error_connect(resp, NULL);
}

static int get_id(json_t *body, const char **id, struct ember_error **err)
{
	size_t len;

	*id = "";
	if (json_get_string(body, "watcherId", false, 64, id, &len, EMBER_E_INVALID, err) < 0)
		return -1;
	if ((*id)[0] == '\0' &&
	    json_get_string(body, "watcher_id", false, 64, id, &len, EMBER_E_INVALID, err) < 0)
		return -1;
	return 0;
}

static void not_found(struct api_response *resp, const char *id)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "watcher with id %.64s not found", id);
	e2b_error_connect_msg(resp, "not_found", msg);
}

void e2b_watcher_events(const struct e2b_context *ctx, const char *sandbox_id, json_t *body,
			struct api_response *resp)
{
	struct snapshot now, old = { 0 };
	struct ember_error *err = NULL;
	char *path = NULL;
	bool recursive = false, include_entry = false, busy = false;
	const char *id;
	struct watcher *w;
	json_t *events = NULL;

	if (get_id(body, &id, &err) < 0) {
		fail(ctx, sandbox_id, resp, &err);
		return;
	}
	pthread_mutex_lock(&lock);
	w = find(sandbox_id, id);
	busy = w != NULL && w->busy;
	if (w != NULL && !busy) {
		path = strdup(w->path);
		w->busy = path != NULL;
		w->polled_ms = time_mono_ms();
		recursive = w->recursive;
		include_entry = w->include_entry;
	}
	pthread_mutex_unlock(&lock);
	if (w == NULL) {
		not_found(resp, id);
		return;
	}
	if (busy) {
		e2b_error_connect_msg(resp, "failed_precondition",
				      "another GetWatcherEvents of this watcher is running");
		return;
	}
	if (path == NULL) {
		e2b_error_connect(resp, NULL);
		return;
	}
	if (snapshot_take(ctx, sandbox_id, path, recursive, &now, &err) < 0) {
		fail(ctx, sandbox_id, resp, &err);
	} else {
		/* the slot stays this watcher's while busy (slot_take skips busy ones) */
		pthread_mutex_lock(&lock);
		old = w->snap;
		pthread_mutex_unlock(&lock);
		events = diff(&old, &now, path, include_entry);
		pthread_mutex_lock(&lock);
		w->snap = now;
		pthread_mutex_unlock(&lock);
		snapshot_release(&old);
		resp->status = 200;
		resp->body = events != NULL ? json_pack("{s:o}", "events", events) : NULL;
		if (resp->body == NULL)
			e2b_error_connect(resp, NULL);
	}
	pthread_mutex_lock(&lock);
	w->busy = false;
	pthread_mutex_unlock(&lock);
	free(path);
}

void e2b_watcher_remove(const struct e2b_context *ctx, const char *sandbox_id, json_t *body,
			struct api_response *resp)
{
	struct ember_error *err = NULL;
	struct snapshot snap = { 0 };
	char *path = NULL;
	const char *id;
	struct watcher *w;
	bool busy = false;

	if (get_id(body, &id, &err) < 0) {
		fail(ctx, sandbox_id, resp, &err);
		return;
	}
	pthread_mutex_lock(&lock);
	w = find(sandbox_id, id);
	if (w != NULL && w->busy) {
		busy = true;
	} else if (w != NULL) {
		snap = w->snap;
		path = w->path;
		memset(w, 0, sizeof(*w));
	}
	pthread_mutex_unlock(&lock);
	snapshot_release(&snap);
	free(path);
	if (w == NULL) {
		not_found(resp, id);
		return;
	}
	if (busy) {
		e2b_error_connect_msg(resp, "failed_precondition",
				      "a GetWatcherEvents of this watcher is running");
		return;
	}
	resp->status = 200;
	resp->body = json_object();
}
