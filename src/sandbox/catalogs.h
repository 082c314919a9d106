/* catalogs.h - the catalog generations of a running daemon: the one in force, and every one a
 * reload replaced, kept until the daemon exits. Called by the manager only (manager_reload,
 * manager_catalog). Never frees a generation while the daemon runs: sandboxes, pooled clones
 * and templates keep `struct pack *` pointers into the generation they were made from, so a
 * pointer any thread got from catalogs_current() stays valid without a reference count.
 *
 * Cost: a generation is a few KiB (64 packs at most), so keeping them is cheaper and simpler
 * than counting their users; CATALOG_GENERATIONS_MAX bounds it, and a reload that changes
 * nothing makes no generation. */
#ifndef EMBER_SANDBOX_CATALOGS_H
#define EMBER_SANDBOX_CATALOGS_H

#include <pthread.h>
#include <stdbool.h>

#include "sandbox/catalog.h"
#include "sandbox/catalogdiff.h"
#include "util/error.h"

/* Generations one daemon may load, the startup one included: 63 reloads that change something.
 * Past that a reload is refused (restart the daemon); a pack catalog is edited by hand or by
 * `emberctl pack import`, so this many changes between restarts is far more than a host sees. */
#define CATALOG_GENERATIONS_MAX 64

struct catalogs {
	pthread_mutex_t lock;  /* guards current and the array; held only to read or swap */
	const struct catalog *current;
	struct catalog *owned[CATALOG_GENERATIONS_MAX]; /* loaded by reloads; [0] unused */
	unsigned count;        /* generations, the borrowed startup one included */
};

/* first: the startup catalog, borrowed (its owner frees it after catalogs_release). */
void catalogs_init(struct catalogs *c, const struct catalog *first);
const struct catalog *catalogs_current(struct catalogs *c);
/* Reads the manifest again from the current catalog's images directory, checks it (parse,
 * files present, same kernel and initramfs) and, when it differs, makes it the current one.
 * On any failure nothing changes. *diff says what changed; *next the generation now in force.
 * Callers serialise reloads (the manager's reload lock). */
int catalogs_reload(struct catalogs *c, bool need_vmlinux, struct catalog_diff *diff,
		    const struct catalog **next, struct ember_error **err);
/* Frees the generations reloads made. */
void catalogs_release(struct catalogs *c);

#endif
