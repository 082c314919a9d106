/* snapshots.c - the named snapshot store (snapshots.h). */
#include "sandbox/snapshots.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fdio.h"
#include "util/ids.h"
#include "util/jsonutil.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "vmm/vmm.h"

#define KIND EMBER_E_INVALID /* a damaged snapshot file */

/* A snapshot's JSON is small: labels are the bulk (32 x (63 + 256) bytes escaped). */
#define SNAPSHOT_JSON_MAX (64u << 10)

struct entry {
	struct snapshot_info info;
	bool committed;                   /* false: reserved, its state being written */
	struct entry *next;               /* oldest first */
};

struct snapshot_store {
	char dir[PATH_MAX];
	char base_digest[DIGEST_HEX_LEN + 1];
	unsigned max;
	pthread_mutex_t lock;             /* guards the list */
	struct entry *list;
	unsigned count;                   /* committed and reserved */
};

/* "snap_" + 32 lowercase hex: the only names that ever reach a path. */
static bool id_valid(const char *id)
{
	size_t i, n = strlen(SNAPSHOT_ID_PREFIX);

	if (strlen(id) != SNAPSHOT_ID_LEN || strncmp(id, SNAPSHOT_ID_PREFIX, n) != 0)
		return false;
	for (i = n; i < SNAPSHOT_ID_LEN; i++) {
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	}
	return true;
}

static void file_path(const struct snapshot_store *st, const char *id, const char *suffix,
		      char out[PATH_MAX])
{
	snprintf(out, PATH_MAX, "%s/%s%s", st->dir, id, suffix);
}

static void remove_files(const struct snapshot_store *st, const char *id)
{
	char path[PATH_MAX];

	file_path(st, id, ".json", path);
	unlink(path);
	file_path(st, id, ".vmstate", path);
	vmm_saved_state_remove(path);
	file_path(st, id, ".vmstate.part", path);
	unlink(path);
}

char *snapshot_info_encode(const struct snapshot_info *info, size_t *len,
			   struct ember_error **err)
{
	_cleanup_json_ json_t *obj = json_pack(
		"{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o}", "id", info->id,
		"sandbox_id", info->sandbox_id, "language_pack", info->language_pack,
		"pack_digest", info->pack_digest, "base_digest", info->base_digest,
		"vcpus", (json_int_t)info->vcpus, "memory_mib", (json_int_t)info->memory_mib,
		"overlay_mib", (json_int_t)info->overlay_mib,
		"created_wall_ns", (json_int_t)info->created_wall_ns,
		"size_bytes", (json_int_t)info->size_bytes,
		"labels", sandbox_labels_to_json(&info->labels));

	if (obj == NULL) {
		ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
		return NULL;
	}
	return json_dump_compact(obj, len, err);
}

static int copy_uint(json_t *obj, const char *key, uint64_t max, unsigned *out,
		     struct ember_error **err)
{
	uint64_t v;

	if (json_get_uint(obj, key, true, 1, max, &v, KIND, err) < 0)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int snapshot_info_decode(const char *text, size_t len, struct snapshot_info *info,
			 struct ember_error **err)
{
	static const char *const keys[] = { "id", "sandbox_id", "language_pack", "pack_digest",
					    "base_digest", "vcpus", "memory_mib", "overlay_mib",
					    "created_wall_ns", "size_bytes", "labels", NULL };
	_cleanup_json_ json_t *obj = NULL;
	uint64_t size;
	int64_t created;

	memset(info, 0, sizeof(*info));
	if (len > SNAPSHOT_JSON_MAX)
		return ember_error_set(err, KIND, 0, "snapshot file too large");
	if (json_parse_object(text, len, &obj, KIND, err) < 0 ||
	    json_check_keys(obj, keys, KIND, err) < 0 ||
	    json_copy_string(obj, "id", info->id, sizeof(info->id), KIND, err) < 0 ||
	    json_copy_string(obj, "sandbox_id", info->sandbox_id, sizeof(info->sandbox_id), KIND,
			     err) < 0 ||
	    json_copy_string(obj, "language_pack", info->language_pack,
			     sizeof(info->language_pack), KIND, err) < 0 ||
	    json_copy_string(obj, "pack_digest", info->pack_digest, sizeof(info->pack_digest),
			     KIND, err) < 0 ||
	    json_copy_string(obj, "base_digest", info->base_digest, sizeof(info->base_digest),
			     KIND, err) < 0 ||
	    copy_uint(obj, "vcpus", 1024, &info->vcpus, err) < 0 ||
	    copy_uint(obj, "memory_mib", 1u << 20, &info->memory_mib, err) < 0 ||
	    copy_uint(obj, "overlay_mib", 1u << 20, &info->overlay_mib, err) < 0 ||
	    json_get_int(obj, "created_wall_ns", true, 0, INT64_MAX, &created, KIND,
			 err) < 0 ||
	    json_get_uint(obj, "size_bytes", true, 0, UINT64_MAX / 2, &size, KIND,
			  err) < 0 ||
	    sandbox_labels_from_json(obj, "labels", &info->labels, err) < 0)
		return -1;
	if (!id_valid(info->id))
		return ember_error_set(err, KIND, 0, "`id` is not a snapshot id");
	info->created_wall_ns = created;
	info->size_bytes = size;
	return 0;
}

/* Loads `<id>.json` of a directory entry, checking it names itself. */
static int load_one(struct snapshot_store *st, const char *id, struct snapshot_info *info,
		    struct ember_error **err)
{
	_cleanup_free_ char *text = NULL;
	char path[PATH_MAX], state[PATH_MAX];
	size_t len;

	file_path(st, id, ".json", path);
	file_path(st, id, ".vmstate", state);
	if (file_read_all(path, SNAPSHOT_JSON_MAX, &text, &len, err) < 0 ||
	    snapshot_info_decode(text, len, info, err) < 0)
		return -1;
	if (strcmp(info->id, id) != 0)
		return ember_error_set(err, EMBER_E_INVALID, 0, "it names `%s`", info->id);
	if (vmm_saved_state_size(NULL, state, &info->size_bytes) < 0)
		return ember_error_set(err, EMBER_E_INVALID, 0, "its saved state is missing");
	return 0;
}

static int append(struct snapshot_store *st, const struct snapshot_info *info, bool committed)
{
	struct entry *e = calloc(1, sizeof(*e)), **p;

	if (e == NULL)
		return -1;
	e->info = *info;
	e->committed = committed;
	for (p = &st->list; *p != NULL; p = &(*p)->next)
		;
	*p = e;
	st->count++;
	return 0;
}

/* Every `<id>.json` becomes a snapshot; what is not whole is removed. */
static void load_all(struct snapshot_store *st)
{
	_cleanup_free_ struct snapshot_info *info = malloc(sizeof(*info));
	DIR *d = opendir(st->dir);
	struct dirent *de;

	if (d == NULL || info == NULL) {
		if (d != NULL)
			closedir(d);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		char id[SNAPSHOT_ID_LEN + 1];
		struct ember_error *err = NULL;
		const char *dot = strchr(de->d_name, '.');

		if (dot == NULL || (size_t)(dot - de->d_name) != SNAPSHOT_ID_LEN)
			continue;
		memcpy(id, de->d_name, SNAPSHOT_ID_LEN);
		id[SNAPSHOT_ID_LEN] = '\0';
		if (!id_valid(id) || strcmp(dot, ".json") != 0)
			continue;
		if (st->count >= SNAPSHOTS_MAX || load_one(st, id, info, &err) < 0 ||
		    append(st, info, true) < 0) {
			log_event(LOG_WARN, NULL, "snapshot.removed", -1, "%s: %s", id,
				  err != NULL ? err->message : "too many snapshots");
			ember_error_free(&err);
			remove_files(st, id);
		}
	}
	closedir(d);
}

/* A saved state whose JSON never came (the daemon died while making it). */
static void remove_unfinished(struct snapshot_store *st)
{
	DIR *d = opendir(st->dir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char id[SNAPSHOT_ID_LEN + 1], json[PATH_MAX];
		struct stat sb;

		if (strncmp(de->d_name, SNAPSHOT_ID_PREFIX, strlen(SNAPSHOT_ID_PREFIX)) != 0 ||
		    strlen(de->d_name) < SNAPSHOT_ID_LEN)
			continue;
		memcpy(id, de->d_name, SNAPSHOT_ID_LEN);
		id[SNAPSHOT_ID_LEN] = '\0';
		file_path(st, id, ".json", json);
		if (id_valid(id) && lstat(json, &sb) < 0 && errno == ENOENT)
			remove_files(st, id);
	}
	closedir(d);
}

int snapshot_store_open(const char *dir, unsigned max, const char *base_digest,
			struct snapshot_store **out, struct ember_error **err)
{
	struct snapshot_store *st = calloc(1, sizeof(*st));

	if (st == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	if (snprintf(st->dir, sizeof(st->dir), "%s", dir) >= (int)sizeof(st->dir) - 64) {
		free(st);
		return ember_error_set(err, EMBER_E_INVALID, ENAMETOOLONG, "`%s` is too long", dir);
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		free(st);
		return ember_error_sys(err, "create `%s`", dir);
	}
	snprintf(st->base_digest, sizeof(st->base_digest), "%s", base_digest);
	st->max = max;
	pthread_mutex_init(&st->lock, NULL);
	remove_unfinished(st);
	load_all(st);
	*out = st;
	return 0;
}

void snapshot_store_free(struct snapshot_store *st)
{
	if (st == NULL)
		return;
	while (st->list != NULL) {
		struct entry *e = st->list;

		st->list = e->next;
		if (!e->committed)
			remove_files(st, e->info.id);
		free(e);
	}
	pthread_mutex_destroy(&st->lock);
	free(st);
}

const char *snapshot_store_base_digest(const struct snapshot_store *st)
{
	return st->base_digest;
}

static struct entry *find_locked(struct snapshot_store *st, const char *id, bool committed)
{
	struct entry *e;

	for (e = st->list; e != NULL; e = e->next) {
		if (strcmp(e->info.id, id) == 0 && e->committed == committed)
			return e;
	}
	return NULL;
}

int snapshot_store_reserve(struct snapshot_store *st, struct snapshot_info *info,
			   char state_path[PATH_MAX], struct ember_error **err)
{
	int ret = 0;

	if (id_generate(SNAPSHOT_ID_PREFIX, info->id, sizeof(info->id), err) < 0)
		return -1;
	snprintf(info->base_digest, sizeof(info->base_digest), "%s", st->base_digest);
	pthread_mutex_lock(&st->lock);
	if (st->count >= st->max)
		ret = ember_error_set(err, EMBER_E_CAPACITY, 0,
				      "%u snapshots are kept already (--max-snapshots): delete one "
				      "first", st->max);
	else if (append(st, info, false) < 0)
		ret = ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	pthread_mutex_unlock(&st->lock);
	file_path(st, info->id, ".vmstate", state_path);
	return ret;
}

static void unlink_entry_locked(struct snapshot_store *st, struct entry *target)
{
	struct entry **p;

	for (p = &st->list; *p != NULL; p = &(*p)->next) {
		if (*p == target) {
			*p = target->next;
			st->count--;
			free(target);
			return;
		}
	}
}

int snapshot_store_commit(struct snapshot_store *st, struct snapshot_info *info,
			  struct ember_error **err)
{
	_cleanup_free_ char *text = NULL;
	char path[PATH_MAX];
	struct entry *e;
	size_t len;

	file_path(st, info->id, ".vmstate", path);
	if (vmm_saved_state_size(NULL, path, &info->size_bytes) < 0)
		return ember_error_sys(err, "snapshot `%s`", path);
	info->created_wall_ns = time_wall_ns();
	text = snapshot_info_encode(info, &len, err);
	file_path(st, info->id, ".json", path);
	if (text == NULL || file_write_atomic(path, text, len, 0600, true, err) < 0)
		return -1;
	pthread_mutex_lock(&st->lock);
	e = find_locked(st, info->id, false);
	if (e != NULL) {
		e->info = *info;
		e->committed = true;
	}
	pthread_mutex_unlock(&st->lock);
	return 0;
}

void snapshot_store_abort(struct snapshot_store *st, const char *id)
{
	struct entry *e;

	pthread_mutex_lock(&st->lock);
	e = find_locked(st, id, false);
	if (e != NULL)
		unlink_entry_locked(st, e);
	pthread_mutex_unlock(&st->lock);
	remove_files(st, id);
}

int snapshot_store_list(struct snapshot_store *st, struct snapshot_info **infos, size_t *count,
			struct ember_error **err)
{
	struct entry *e;
	size_t n = 0;

	pthread_mutex_lock(&st->lock);
	*infos = calloc(st->count + 1, sizeof(**infos));
	if (*infos != NULL) {
		for (e = st->list; e != NULL; e = e->next) {
			if (e->committed)
				(*infos)[n++] = e->info;
		}
	}
	pthread_mutex_unlock(&st->lock);
	if (*infos == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	*count = n;
	return 0;
}

int snapshot_store_get(struct snapshot_store *st, const char *id, struct snapshot_info *info,
		       char state_path[PATH_MAX], struct ember_error **err)
{
	struct entry *e = NULL;

	if (id_valid(id)) {
		pthread_mutex_lock(&st->lock);
		e = find_locked(st, id, true);
		if (e != NULL)
			*info = e->info;
		pthread_mutex_unlock(&st->lock);
	}
	if (e == NULL)
		return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no snapshot `%.64s`", id);
	if (state_path != NULL)
		file_path(st, id, ".vmstate", state_path);
	return 0;
}

int snapshot_store_delete(struct snapshot_store *st, const char *id, struct ember_error **err)
{
	struct entry *e = NULL;

	if (id_valid(id)) {
		pthread_mutex_lock(&st->lock);
		e = find_locked(st, id, true);
		if (e != NULL)
			unlink_entry_locked(st, e);
		pthread_mutex_unlock(&st->lock);
	}
	if (e == NULL)
		return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no snapshot `%.64s`", id);
	remove_files(st, id);
	log_event(LOG_INFO, NULL, "snapshot.deleted", -1, "%s", id);
	return 0;
}
