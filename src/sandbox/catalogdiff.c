/* catalogdiff.c - comparing two catalog generations (interface: catalogdiff.h). */
#include "sandbox/catalogdiff.h"

#include <string.h>

bool catalog_pack_equal(const struct pack *a, const struct pack *b)
{
	size_t i;

	const struct pack_defaults *da = &a->defaults, *db = &b->defaults;

	if (strcmp(a->name, b->name) != 0 || strcmp(a->image, b->image) != 0 ||
	    strcmp(a->sha256, b->sha256) != 0 || strcmp(a->description, b->description) != 0 ||
	    da->exec_timeout_ms != db->exec_timeout_ms ||
	    da->output_limit_bytes != db->output_limit_bytes || da->memory_mib != db->memory_mib ||
	    da->vcpus != db->vcpus || da->overlay_mib != db->overlay_mib ||
	    a->code_argument != b->code_argument || a->interpreter_argc != b->interpreter_argc)
		return false;
	for (i = 0; i < a->interpreter_argc; i++) {
		if (strcmp(a->interpreter[i], b->interpreter[i]) != 0)
			return false;
	}
	if (a->envc != b->envc || (a->cwd == NULL) != (b->cwd == NULL) ||
	    (a->cwd != NULL && strcmp(a->cwd, b->cwd) != 0))
		return false;
	for (i = 0; i < a->envc; i++) {
		if (strcmp(a->env[i], b->env[i]) != 0)
			return false;
	}
	return true;
}

const struct pack *catalog_find_equal(const struct catalog *cat, const struct pack *pack)
{
	const struct pack *same = catalog_find(cat, pack->name);

	return same != NULL && catalog_pack_equal(same, pack) ? same : NULL;
}

int catalog_diff_check(const struct catalog *old, const struct catalog *next,
		       struct ember_error **err)
{
	if (strcmp(old->bzimage, next->bzimage) != 0 || strcmp(old->vmlinux, next->vmlinux) != 0 ||
	    strcmp(old->initramfs, next->initramfs) != 0 ||
	    strcmp(old->kernel_release, next->kernel_release) != 0)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "the kernel or initramfs changed: a reload only changes "
				       "packs, restart the daemon to use a new kernel");
	return 0;
}

static void add(struct catalog_diff *out, const char *name, enum catalog_change change)
{
	memcpy(out->packs[out->count].name, name, sizeof(out->packs[0].name));
	out->packs[out->count].change = change;
	out->count++;
	out->changes += change != CATALOG_UNCHANGED;
}

void catalog_diff(const struct catalog *old, const struct catalog *next,
		  struct catalog_diff *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < next->count; i++) {
		const struct pack *before = catalog_find(old, next->packs[i].name);

		add(out, next->packs[i].name,
		    before == NULL ? CATALOG_ADDED
		    : catalog_pack_equal(before, &next->packs[i]) ? CATALOG_UNCHANGED
								    : CATALOG_CHANGED);
	}
	for (i = 0; i < old->count; i++) {
		if (catalog_find(next, old->packs[i].name) == NULL)
			add(out, old->packs[i].name, CATALOG_REMOVED);
	}
}

const char *catalog_change_name(enum catalog_change change)
{
	switch (change) {
	case CATALOG_ADDED: return "added";
	case CATALOG_REMOVED: return "removed";
	case CATALOG_CHANGED: return "changed";
	case CATALOG_UNCHANGED: return "unchanged";
	}
	return "unknown";
}
