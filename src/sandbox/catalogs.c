/* catalogs.c - catalog generations (interface: catalogs.h). */
#include "sandbox/catalogs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void catalogs_init(struct catalogs *c, const struct catalog *first)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->current = first;
	c->count = 1;
}

const struct catalog *catalogs_current(struct catalogs *c)
{
	const struct catalog *cat;

	pthread_mutex_lock(&c->lock);
	cat = c->current;
	pthread_mutex_unlock(&c->lock);
	return cat;
}

/* Parsed and checked, not in force yet. */
static int load_checked(const struct catalog *now, bool need_vmlinux, struct catalog *next,
			struct ember_error **err)
{
	if (catalog_load(now->images_dir, next, err) < 0)
		return -1;
	if (catalog_check_files(next, need_vmlinux, err) < 0 ||
	    catalog_diff_check(now, next, err) < 0) {
		catalog_release(next);
		return ember_error_wrap(err, "image catalog");
	}
	return 0;
}

int catalogs_reload(struct catalogs *c, bool need_vmlinux, struct catalog_diff *diff,
		    const struct catalog **next, struct ember_error **err)
{
	const struct catalog *now = catalogs_current(c);
	struct catalog *loaded;

	*next = now;
	loaded = calloc(1, sizeof(*loaded));
	if (loaded == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	if (load_checked(now, need_vmlinux, loaded, err) < 0) {
		free(loaded);
		return -1;
	}
	catalog_diff(now, loaded, diff);
	if (diff->changes > 0 && c->count >= CATALOG_GENERATIONS_MAX) {
		catalog_release(loaded);
		free(loaded);
		return ember_error_set(err, EMBER_E_CONFLICT, 0,
				       "the catalog was reloaded with changes %d times since the "
				       "daemon started: restart it to reload again",
				       CATALOG_GENERATIONS_MAX - 1);
	}
	if (diff->changes == 0) {
		catalog_release(loaded);
		free(loaded);
		return 0;
	}
	pthread_mutex_lock(&c->lock);
	c->owned[c->count++] = loaded;
	c->current = loaded;
	pthread_mutex_unlock(&c->lock);
	*next = loaded;
	return 0;
}

void catalogs_release(struct catalogs *c)
{
	unsigned i;

	for (i = 1; i < c->count; i++) {
		catalog_release(c->owned[i]);
		free(c->owned[i]);
	}
	pthread_mutex_destroy(&c->lock);
	memset(c, 0, sizeof(*c));
}
