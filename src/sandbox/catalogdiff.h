/* catalogdiff.h - what a catalog reload changes: which packs of a newly read catalog are new,
 * gone, changed or unchanged against the one in force, and whether the reload may happen at all.
 * Called by the manager's reload (manager_reload) and by the pool, to carry its clones of an
 * unchanged pack over to the new generation. Pure: reads two catalogs, never touches files,
 * locks or sandboxes. */
#ifndef EMBER_SANDBOX_CATALOGDIFF_H
#define EMBER_SANDBOX_CATALOGDIFF_H

#include <stdbool.h>
#include <stddef.h>

#include "sandbox/catalog.h"
#include "util/error.h"

enum catalog_change {
	CATALOG_ADDED,
	CATALOG_REMOVED,
	CATALOG_CHANGED,
	CATALOG_UNCHANGED,
};

/* Every pack name of both catalogs once, with what happened to it: the new catalog's packs in
 * its order, then the removed ones in the old order. */
struct catalog_diff {
	struct {
		char name[CATALOG_NAME_MAX + 1];
		enum catalog_change change;
	} packs[2 * CATALOG_PACKS_MAX];
	size_t count;
	size_t changes; /* entries that are not CATALOG_UNCHANGED */
};

/* Whether two packs describe the same thing (name, image path and sha256, interpreter,
 * defaults, description): a pooled clone or a template of one serves the other. */
bool catalog_pack_equal(const struct pack *a, const struct pack *b);
/* A pack of cat equal to pack (which may belong to another catalog), or NULL. */
const struct pack *catalog_find_equal(const struct catalog *cat, const struct pack *pack);
/* Whether a catalog may replace old without a restart: its kernel and initramfs are the ones
 * every template and running VM was made from, so they must be the same files. */
int catalog_diff_check(const struct catalog *old, const struct catalog *next,
		       struct ember_error **err);
void catalog_diff(const struct catalog *old, const struct catalog *next,
		  struct catalog_diff *out);
const char *catalog_change_name(enum catalog_change change);

#endif
