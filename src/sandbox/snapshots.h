/* snapshots.h - named snapshots of sandboxes (POST /sandboxes/{id}/snapshots, docs/api.md
 * "Snapshots and forks"): their table, their files and what pins them.
 * A snapshot is two files in the store's directory (the daemon's, 0700): `<id>.vmstate`, a VM's
 * whole saved state (vmm_save), and `<id>.json`, what it was made from, written last, so that a
 * snapshot without its JSON is unfinished and removed at the next open. Snapshots outlive their
 * sandboxes and the daemon.
 * Ownership: the store (its own lock) owns the table and the files; callers get copies. Used by
 * the manager only. */
#ifndef EMBER_SANDBOX_SNAPSHOTS_H
#define EMBER_SANDBOX_SNAPSHOTS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox/catalog.h"
#include "sandbox/digest.h"
#include "sandbox/labels.h"
#include "util/error.h"

#define SNAPSHOT_ID_PREFIX "snap_"
#define SNAPSHOT_ID_LEN (5 + 32)
#define SNAPSHOTS_MAX_DEFAULT 16u
#define SNAPSHOTS_MAX 1024u

/* One snapshot, as the API shows it and as its JSON file keeps it. */
struct snapshot_info {
	char id[SNAPSHOT_ID_LEN + 1];
	char sandbox_id[64];                  /* the sandbox it was made of (may be gone) */
	char language_pack[CATALOG_NAME_MAX + 1];
	/* Pins: the pack image's digest (the catalog's sha256) and the digest of the kernel,
	 * initramfs and VMM binary the daemon ran (snapshot_store_open's base_digest). */
	char pack_digest[DIGEST_HEX_LEN + 1];
	char base_digest[DIGEST_HEX_LEN + 1];
	unsigned vcpus;
	unsigned memory_mib;
	unsigned overlay_mib;
	int64_t created_wall_ns;
	uint64_t size_bytes;                  /* of the saved state (both files) */
	struct sandbox_labels labels;
};

struct snapshot_store;

/* Opens (making it if needed) dir, loads every finished snapshot and removes unfinished or
 * unreadable ones. base_digest: what this daemon's snapshots are pinned to. max: at most so many
 * snapshots at once. */
int snapshot_store_open(const char *dir, unsigned max, const char *base_digest,
			struct snapshot_store **out, struct ember_error **err);
void snapshot_store_free(struct snapshot_store *st);
const char *snapshot_store_base_digest(const struct snapshot_store *st);

/* Reserves a new snapshot (EMBER_E_CAPACITY when max are kept or reserved): info->id is made
 * here, *state_path is where its saved state is to be written. Then commit (which fills
 * size_bytes and created_wall_ns and writes the JSON) or abort (which removes the files). */
int snapshot_store_reserve(struct snapshot_store *st, struct snapshot_info *info,
			   char state_path[PATH_MAX], struct ember_error **err);
int snapshot_store_commit(struct snapshot_store *st, struct snapshot_info *info,
			  struct ember_error **err);
void snapshot_store_abort(struct snapshot_store *st, const char *id);

/* Every finished snapshot, oldest first; *infos is malloc'd. */
int snapshot_store_list(struct snapshot_store *st, struct snapshot_info **infos, size_t *count,
			struct ember_error **err);
/* One snapshot and (state_path != NULL) its saved state's path. EMBER_E_NOT_FOUND. */
int snapshot_store_get(struct snapshot_store *st, const char *id, struct snapshot_info *info,
		       char state_path[PATH_MAX], struct ember_error **err);
/* Removes a snapshot and its files. EMBER_E_NOT_FOUND. A create already loading it keeps
 * its open file. */
int snapshot_store_delete(struct snapshot_store *st, const char *id, struct ember_error **err);

/* The JSON file's text for info (malloc'd) and back; the parser is strict and bounded (fuzzed:
 * a state directory is the daemon's, but a damaged file must not crash it). */
char *snapshot_info_encode(const struct snapshot_info *info, size_t *len,
			   struct ember_error **err);
int snapshot_info_decode(const char *text, size_t len, struct snapshot_info *info,
			 struct ember_error **err);

#endif
