/* Unit tests for the pure parts of the E2B file plane: the walk's bounds (src/e2b/filesystem.c
 * e2b_fs_walk_with, over a fake guest) and the polling watcher table's choice of slot
 * (src/e2b/watchers.c e2b_watch_pick). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2b/fsplane.h"
#include "util/error.h"

/* A fake guest: every directory down to `levels` holds one subdirectory "0" (sorting first),
 * the rest of its `width` entries files. */
struct fake_tree {
	unsigned width, levels;
	unsigned listings;     /* LIST answers handed out */
	size_t received;       /* entries in them */
	unsigned visited;      /* entries the walk's callback got */
};

static int fake_list(void *ctx, const char *dir, struct proto_fs_reply *reply,
		     struct ember_error **err)
{
	struct fake_tree *t = ctx;
	unsigned level = 0, i;
	const char *p;

	(void)err;
	for (p = dir; *p != '\0'; p++)
		level += *p == '/';
	t->listings++;
	reply->kind = PROTO_FS_REPLY_LIST;
	reply->entries = calloc(t->width, sizeof(reply->entries[0]));
	assert_non_null(reply->entries);
	reply->count = t->width;
	for (i = 0; i < t->width; i++) {
		struct proto_fs_entry *e = &reply->entries[i];

		if (i == 0 && level < t->levels) {
			snprintf(e->name, sizeof(e->name), "0");
			e->type = PROTO_FS_TYPE_DIR;
		} else {
			snprintf(e->name, sizeof(e->name), "f%04u", i);
			e->type = PROTO_FS_TYPE_FILE;
		}
	}
	t->received += t->width;
	return 0;
}

static int count_entry(void *ctx, const char *path, const struct proto_fs_entry *e,
		       struct ember_error **err)
{
	struct fake_tree *t = ctx;

	(void)path;
	(void)e;
	(void)err;
	t->visited++;
	return 0;
}

/* The review's trigger: 1000 levels of 2048 entries each, subdirectory first. Every level's
 * listing is held while the walk goes down, so the walk must refuse as soon as the listings
 * received pass 10000 entries (at the 5th), not after 1000 levels (about 590 MB held; the
 * per-entry count of the old walk had then reached only 1000). */
static void a_listing_is_charged_when_it_arrives(void **state)
{
	struct fake_tree t = { .width = PROTO_FS_LIST_MAX, .levels = 1000 };
	struct ember_error *err = NULL;

	(void)state;
	assert_int_equal(e2b_fs_walk_with(fake_list, &t, "/d", UINT32_MAX, count_entry, &t,
					  &err),
			 -1);
	assert_non_null(err);
	assert_non_null(strstr(err->message, "entries under the path"));
	assert_int_equal(t.listings, E2B_LIST_ENTRIES_MAX / PROTO_FS_LIST_MAX + 1);
	assert_true(t.received <= E2B_LIST_ENTRIES_MAX + PROTO_FS_LIST_MAX);
	/* each charged level's "0", then down; nothing of the refused listing */
	assert_int_equal(t.visited, E2B_LIST_ENTRIES_MAX / PROTO_FS_LIST_MAX);
	ember_error_free(&err);
}

/* A tree within the bounds is walked whole. */
static void a_tree_within_the_bounds_is_walked(void **state)
{
	struct fake_tree t = { .width = 10, .levels = 50 };
	struct ember_error *err = NULL;

	(void)state;
	assert_int_equal(e2b_fs_walk_with(fake_list, &t, "/d", UINT32_MAX, count_entry, &t,
					  &err),
			 0);
	assert_null(err);
	assert_int_equal(t.listings, 50);
	assert_int_equal(t.visited, 50 * 10);
}

/* The directory bound still holds for a narrow, deep tree. */
static void too_many_directories_are_refused(void **state)
{
	struct fake_tree t = { .width = 1, .levels = 5000 };
	struct ember_error *err = NULL;

	(void)state;
	assert_int_equal(e2b_fs_walk_with(fake_list, &t, "/d", UINT32_MAX, count_entry, &t,
					  &err),
			 -1);
	assert_non_null(strstr(err->message, "directories under the path"));
	assert_int_equal(t.listings, E2B_LIST_DIRS_MAX);
	ember_error_free(&err);
}

/* --- the watcher table --- */

static struct e2b_watch_slot slot(const char *sandbox, int64_t polled_ms, bool busy)
{
	return (struct e2b_watch_slot){ .used = true, .busy = busy, .sandbox = sandbox,
					.polled_ms = polled_ms };
}

/* The review's trigger: A creates watcher after watcher; B's, polled long ago, stay. */
static void a_sandbox_never_evicts_another(void **state)
{
	struct e2b_watch_slot s[32];
	size_t i;

	(void)state;
	memset(s, 0, sizeof(s));
	for (i = 0; i < 4; i++)
		s[i] = slot("B", 1, false);
	/* A gets free slots up to its cap */
	for (i = 4; i < 4 + E2B_WATCHERS_PER_SANDBOX; i++) {
		int pick = e2b_watch_pick(s, 32, "A", false);

		assert_int_equal(pick, (int)i);
		s[pick] = slot("A", 100 + (int64_t)i, false);
	}
	/* past its cap A drops its own least recently polled, not B's older ones */
	assert_int_equal(e2b_watch_pick(s, 32, "A", false), 4);
	s[4].polled_ms = 1000;
	assert_int_equal(e2b_watch_pick(s, 32, "A", false), 5);
	/* every one of A's being polled: refused */
	for (i = 4; i < 4 + E2B_WATCHERS_PER_SANDBOX; i++)
		s[i].busy = true;
	assert_int_equal(e2b_watch_pick(s, 32, "A", false), E2B_WATCH_EXHAUSTED);
	assert_int_equal(e2b_watch_pick(s, 32, "A", true), E2B_WATCH_EXHAUSTED);
	/* B still has room */
	assert_int_equal(e2b_watch_pick(s, 32, "B", false), 4 + E2B_WATCHERS_PER_SANDBOX);
}

/* A table full of other sandboxes' watchers: sweep the gone ones first, then refuse. */
static void a_full_table_sweeps_then_refuses(void **state)
{
	static const char *const ids[] = { "S0", "S1", "S2", "S3" };
	struct e2b_watch_slot s[32];
	size_t i;

	(void)state;
	for (i = 0; i < 32; i++)
		s[i] = slot(ids[i / 8], (int64_t)i, false);
	assert_int_equal(e2b_watch_pick(s, 32, "N", false), E2B_WATCH_SWEEP);
	assert_int_equal(e2b_watch_pick(s, 32, "N", true), E2B_WATCH_EXHAUSTED);
	/* with a watcher of its own in a full table, after the sweep, it drops its own */
	s[31] = slot("N", 50, false);
	assert_int_equal(e2b_watch_pick(s, 32, "N", false), E2B_WATCH_SWEEP);
	assert_int_equal(e2b_watch_pick(s, 32, "N", true), 31);
	/* a swept slot is free again */
	s[3].used = false;
	assert_int_equal(e2b_watch_pick(s, 32, "N", false), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_listing_is_charged_when_it_arrives),
		cmocka_unit_test(a_tree_within_the_bounds_is_walked),
		cmocka_unit_test(too_many_directories_are_refused),
		cmocka_unit_test(a_sandbox_never_evicts_another),
		cmocka_unit_test(a_full_table_sweeps_then_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
