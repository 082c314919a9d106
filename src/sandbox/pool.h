/* pool.h - the warm pool: ready clones of each pack's default shape, kept topped up by one
 * background thread and handed out to creates in about a millisecond (docs/snapshots.md).
 * Called by the sandbox manager (manager.c) only. Never touches the manager's table, lock or
 * struct: it boots, checks, discards and records sandboxes through the pool_ops the manager
 * hands it, and treats `struct sandbox` as opaque.
 *
 * Ownership: a clone in the pool belongs to the pool alone; pool_take() hands it to the caller
 * (the manager), which from then on owns it. The pool's lock is innermost: callers may hold their
 * own lock when calling pool_*, and the pool never calls an op with its lock held, except
 * usable(), which only looks. */
#ifndef EMBER_SANDBOX_POOL_H
#define EMBER_SANDBOX_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox/catalog.h"
#include "util/error.h"

struct sandbox;
struct pool;

/* What boot_clone reports besides success. */
enum pool_boot_result {
	POOL_BOOTED = 0,
	POOL_NO_SLOT,     /* every boot slot is taken: retry once pool_wake() says one freed */
	POOL_NOT_NOW,     /* no template ready yet (its build was started) or the boot failed */
};

enum pool_memory {
	POOL_MEMORY_ROOM,
	POOL_MEMORY_FULL,
	POOL_MEMORY_PRESSURE,
};

struct pool_ops {
	/* Restores one clone of pack's default shape, fresh id and identity, taking and giving back
	 * one of the manager's boot slots; never boots cold. Logs its own failures. */
	enum pool_boot_result (*boot_clone)(void *ctx, const struct pack *pack,
					    struct sandbox **out);
	/* Whether a pooled clone can still be handed out (VMM alive, channel intact). Called with
	 * the pool's lock held: must not block or take the manager's lock. */
	bool (*usable)(void *ctx, struct sandbox *sb);
	/* Stops and frees a clone that was never handed out; why (or NULL: quietly, at a stop) is
	 * logged with its id. */
	void (*discard)(void *ctx, struct sandbox *sb, const char *why);
	/* Writes a handed-out sandbox's re-attach record, then drops the reference its handout
	 * took (see pool_write_record_later). */
	void (*write_record)(void *ctx, struct sandbox *sb);
	/* Host memory for one more clone of pack (sandbox/headroom.h): POOL_MEMORY_ROOM, _FULL
	 * (no room beyond the reserve: do not refill) or _PRESSURE (below the reserve itself: give
	 * clones back). Called without the pool's lock; reads one small file. */
	enum pool_memory (*memory)(void *ctx, const struct pack *pack);
	/* A pooled clone's VMM process (metrics). Called with the pool's lock held: only looks. */
	pid_t (*vmm_pid)(void *ctx, struct sandbox *sb);
};

/* size: clones kept per pooled pack (>0); packs: the pooled packs' names, comma-separated
 * (catalog.h pack_list_check), NULL for every pack. The pool borrows catalog, packs and ops
 * (they outlive it). */
int pool_create(const struct catalog *catalog, unsigned size, const char *packs,
		const struct pool_ops *ops,
		void *ctx, struct pool **out, struct ember_error **err);
/* Starts the filler thread (once; later calls do nothing). */
void pool_start(struct pool *p);
/* Wakes the filler: a boot slot was freed. */
void pool_wake(struct pool *p);
/* Hands out a usable clone of pack, or NULL when there is none (the filler refills). */
struct sandbox *pool_take(struct pool *p, const struct pack *pack);
/* Has the filler thread write sb's record off the caller's path, or writes it at once when the
 * pool is stopped. sb must hold a reference that write_record drops. */
void pool_write_record_later(struct pool *p, struct sandbox *sb);
/* Makes catalog the generation in force (a reload; the old one stays alive, see manager.h):
 * pooled clones of packs it has unchanged stay, the others are discarded before it returns, and
 * the filler fills the new and changed packs. */
void pool_set_catalog(struct pool *p, const struct catalog *catalog);
/* Stops the filler (waiting for a fill in progress), writes pending records and discards every
 * pooled clone. The pool stays usable for pool_take (which then finds nothing) and stats. */
void pool_stop(struct pool *p);
/* pool_stop() if not done yet, then frees. */
void pool_free(struct pool *p);

struct pool_stats {
	unsigned ready;                                  /* clones waiting, all packs */
	const struct catalog *catalog;                   /* the generation counted against */
	unsigned ready_by_pack[CATALOG_PACKS_MAX];       /* in that catalog's order */
	uint64_t handouts_total;
	uint64_t refills_deferred_total;                 /* refill pauses for create bursts */
	uint64_t shed_total;                             /* clones given back under memory pressure */
	bool memory_low;                                 /* refills wait for host memory */
};
void pool_stats(struct pool *p, struct pool_stats *stats);
/* The VMM pids of at most max waiting clones into out; returns how many. */
size_t pool_vmm_pids(struct pool *p, pid_t *out, size_t max);

/* Refills back off while creates arrive: a handout pauses refilling until POOL_BACKOFF_MS after
 * the latest one, so a burst of creates is served before restores compete with it for CPU (on
 * a small host a restore takes a core for a while; a create from the pool takes a millisecond).
 * 250 ms is several times the gap between the creates of one burst even on a loaded host, and
 * short enough that the pool starts refilling soon after. A steady stream of creates (one every
 * < 250 ms) would pause refills forever and empty the pool: so a burst pauses them for
 * POOL_BACKOFF_MAX_MS at most, after which they run alongside the creates. */
#define POOL_BACKOFF_MS 250
#define POOL_BACKOFF_MAX_MS 2000

/* When refilling may resume (monotonic ms), or 0 when it may now. last_take_ms: the latest
 * handout (<= 0: none yet); burst_start_ms: the first handout of the burst it belongs to (the
 * handouts less than POOL_BACKOFF_MS apart). Pure: the filler's decision, unit-tested. */
int64_t pool_refill_resume_at(int64_t now_ms, int64_t last_take_ms, int64_t burst_start_ms);

#endif
