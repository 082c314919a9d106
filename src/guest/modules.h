/* modules.h - parse the image's modules.dep and load its modules in dependency order.
 * Called once by boot.c in PID 1 mode; the parser is also driven by unit tests and a fuzzer.
 * Never trusts the file: bounded size, lines and counts; strict grammar; no path leaves the
 * modules directory; a cycle or a dependency on an unlisted module is an error, not a hang. */
#ifndef EMBER_GUEST_MODULES_H
#define EMBER_GUEST_MODULES_H

#include <stddef.h>

#include "util/error.h"

struct guest_module {
	char *path;    /* relative to the modules directory, e.g. "kernel/fs/overlayfs/overlay.ko" */
	size_t *deps;  /* indices into guest_modules.mods */
	size_t ndeps;
};

struct guest_modules {
	struct guest_module *mods;
	size_t count;
};

/* Parses modules.dep text (`path: dep dep ...` per line). On failure *out is left empty. */
int guest_modules_parse(const char *text, size_t len, struct guest_modules *out,
			struct ember_error **err);
void guest_modules_release(struct guest_modules *mods);

/* Fills order[0..count) with module indices such that every module comes after all of its
 * dependencies (file order otherwise). Fails on a dependency cycle. */
int guest_modules_order(const struct guest_modules *mods, size_t *order,
			struct ember_error **err);

/* Loads every module listed in <dir>/modules.dep with finit_module, in dependency order.
 * A missing modules.dep means a kernel with everything built in: *loaded = 0, success.
 * A module that is already loaded counts as loaded. Tries every module whose dependencies
 * loaded and reports the failures together at the end. */
int guest_modules_load(const char *dir, unsigned *loaded, struct ember_error **err);

#endif
