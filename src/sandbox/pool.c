/* pool.c - the warm pool's state, its filler thread and its handouts (interface: pool.h).
 *
 * Locking: p->lock guards every field of struct pool below it. It is innermost (the manager may
 * hold its own lock when calling in) and is never held across an op except usable(). One thread
 * fills, one restore at a time and only with a boot slot free, so refills never hold up a
 * client's create for long; the same thread writes the records of handed-out clones, so a pooled
 * create never waits for file I/O. Its clones start at idle CPU priority (vmm.h), and it pauses
 * while creates arrive (pool_refill_resume_at): the pool alone decides when refills run. It
 * refills only while the host has memory for another clone beyond the manager's reserve, and
 * under pressure (below the reserve) gives back one clone per check: a pool never pushes the
 * host into swap or its OOM killer. */
#include "sandbox/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/catalogdiff.h"
#include "util/log.h"
#include "util/sync.h"
#include "util/timeutil.h"
#include "vmm/vmm.h"

/* How often pooled clones are checked for a VM that died while waiting (as often as the
 * manager's reaper checks sandboxes in use). */
#define POOL_CHECK_MS 500
/* How long a fill that found no template ready (its build takes seconds) or failed waits before
 * the next try; a stop still wakes the filler at once. */
#define POOL_RETRY_MS 500

struct pool_entry {
	struct sandbox *sb;
	const struct pack *pack;
	struct pool_entry *next;
};

struct pool {
	const struct catalog *catalog;  /* the generation in force (pool_set_catalog) */
	unsigned size;
	const char *packs;              /* the pooled packs (NULL: all), borrowed */
	const struct pool_ops *ops;
	void *ctx;
	pthread_mutex_t lock;
	pthread_cond_t cond;            /* stop, wake, take and record requests */
	struct pool_entry *ready;       /* clones waiting to be handed out */
	unsigned ready_count;
	struct pool_entry *records;     /* handed out, record not written yet */
	uint64_t handouts_total;
	int64_t last_take_ms;           /* latest handout (0: none), for the refill backoff */
	int64_t burst_start_ms;         /* first handout of the current burst */
	int64_t paused_at_ms;           /* refills paused for a burst since (0: not paused) */
	uint64_t refills_deferred_total;
	uint64_t shed_total;            /* clones discarded under memory pressure */
	bool memory_low;                /* the latest memory check said no room (logged once) */
	bool slot_freed;                /* pool_wake() since the filler last asked for a slot */
	bool running;                   /* the filler thread exists and is not joined */
	bool stopping;
	pthread_t thread;
};

int pool_create(const struct catalog *catalog, unsigned size, const char *packs,
		const struct pool_ops *ops,
		void *ctx, struct pool **out, struct ember_error **err)
{
	struct pool *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	p->catalog = catalog;
	p->size = size;
	p->packs = packs;
	p->ops = ops;
	p->ctx = ctx;
	pthread_mutex_init(&p->lock, NULL);
	cond_init_monotonic(&p->cond);
	*out = p;
	return 0;
}

static unsigned ready_for(const struct pool *p, const struct pack *pack)
{
	const struct pool_entry *e;
	unsigned n = 0;

	for (e = p->ready; e != NULL; e = e->next)
		n += e->pack == pack;
	return n;
}

/* The pack that most needs a pooled clone, or NULL when every pack's pool is full. Lock held. */
static const struct pack *wanted_locked(const struct pool *p)
{
	size_t i;

	for (i = 0; i < p->catalog->count; i++) {
		const struct pack *pack = &p->catalog->packs[i];

		if (pack_list_has(p->packs, pack->name) && ready_for(p, pack) < p->size)
			return pack;
	}
	return NULL;
}

/* Discards a list of entries taken out of the pool (no lock). */
static void discard_all(struct pool *p, struct pool_entry *list, const char *why)
{
	while (list != NULL) {
		struct pool_entry *e = list;

		list = e->next;
		p->ops->discard(p->ctx, e->sb, why);
		free(e);
	}
}

/* Drops pooled clones whose VM died or whose channel broke; the filler replaces them. */
static void drop_dead_locked(struct pool *p)
{
	struct pool_entry **pp = &p->ready, *e, *dead = NULL;

	while ((e = *pp) != NULL) {
		if (p->ops->usable(p->ctx, e->sb)) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		p->ready_count--;
		e->next = dead;
		dead = e;
	}
	if (dead == NULL)
		return;
	pthread_mutex_unlock(&p->lock);
	discard_all(p, dead, "a pooled clone died before it was handed out");
	pthread_mutex_lock(&p->lock);
}

/* Writes the records of clones handed out since the last call (lock held, dropped per write). */
static void write_records_locked(struct pool *p)
{
	struct pool_entry *e;

	while ((e = p->records) != NULL) {
		p->records = e->next;
		pthread_mutex_unlock(&p->lock);
		p->ops->write_record(p->ctx, e->sb);
		free(e);
		pthread_mutex_lock(&p->lock);
	}
}

/* Boots one clone of pack (without the lock) and adds it to the pool. Lock held. */
static enum pool_boot_result fill_one_locked(struct pool *p, const struct pack *pack)
{
	struct pool_entry *e = calloc(1, sizeof(*e));
	enum pool_boot_result r;
	int64_t t0 = time_mono_ms();

	if (e == NULL)
		return POOL_NOT_NOW;
	p->slot_freed = false;
	pthread_mutex_unlock(&p->lock);
	r = p->ops->boot_clone(p->ctx, pack, &e->sb);
	if (r == POOL_BOOTED)
		log_event(LOG_INFO, NULL, "pool.filled", time_mono_ms() - t0, "pack=%s", pack->name);
	pthread_mutex_lock(&p->lock);
	if (r != POOL_BOOTED) {
		free(e);
		return r;
	}
	/* A reload while it booted: kept when the new catalog has the same pack. */
	e->pack = catalog_find_equal(p->catalog, pack);
	if (e->pack == NULL) {
		pthread_mutex_unlock(&p->lock);
		discard_all(p, e, "its pack was removed or changed by a catalog reload");
		pthread_mutex_lock(&p->lock);
		return POOL_BOOTED;
	}
	/* Even when stopping: pool_stop() discards what is here once the filler is joined. */
	e->next = p->ready;
	p->ready = e;
	p->ready_count++;
	return POOL_BOOTED;
}

/* The memory check for pack (lock held, dropped around the op): logs when refills start and
 * stop waiting for memory. */
static enum pool_memory memory_locked(struct pool *p, const struct pack *pack)
{
	enum pool_memory verdict;
	bool was_low = p->memory_low;

	pthread_mutex_unlock(&p->lock);
	verdict = p->ops->memory(p->ctx, pack);
	if (verdict != POOL_MEMORY_ROOM && !was_low)
		log_event(LOG_WARN, NULL, "pool.memory_low", -1,
			  "the host has no memory for another %s clone beyond the reserve: refills "
			  "wait%s", pack->name,
			  verdict == POOL_MEMORY_PRESSURE ? ", pooled clones are given back" : "");
	else if (verdict == POOL_MEMORY_ROOM && was_low)
		log_event(LOG_INFO, NULL, "pool.memory_ok", -1, "host memory is back: refills run");
	pthread_mutex_lock(&p->lock);
	p->memory_low = verdict != POOL_MEMORY_ROOM;
	return verdict;
}

/* Under memory pressure, discards one waiting clone (the newest). Lock held, dropped to
 * discard. */
static void shed_one_locked(struct pool *p)
{
	struct pool_entry *e;

	if (p->ready == NULL || memory_locked(p, p->ready->pack) != POOL_MEMORY_PRESSURE ||
	    (e = p->ready) == NULL) /* a take may have emptied it meanwhile */
		return;
	p->ready = e->next;
	p->ready_count--;
	p->shed_total++;
	pthread_mutex_unlock(&p->lock);
	p->ops->discard(p->ctx, e->sb, "host memory is below the reserve: pooled clone given back");
	free(e);
	pthread_mutex_lock(&p->lock);
}

int64_t pool_refill_resume_at(int64_t now_ms, int64_t last_take_ms, int64_t burst_start_ms)
{
	int64_t resume_at, cap_at;

	if (last_take_ms <= 0)
		return 0;
	resume_at = last_take_ms + POOL_BACKOFF_MS;
	cap_at = burst_start_ms + POOL_BACKOFF_MAX_MS;
	if (cap_at < resume_at)
		resume_at = cap_at;
	return resume_at > now_ms ? resume_at : 0;
}

/* Whether refills wait for a create burst, logging when a pause starts and ends; *resume_at
 * is when to look again. Lock held, dropped to log. */
static bool backing_off_locked(struct pool *p, int64_t *resume_at)
{
	int64_t now = time_mono_ms();

	*resume_at = pool_refill_resume_at(now, p->last_take_ms, p->burst_start_ms);
	if (*resume_at != 0 && p->paused_at_ms == 0) {
		p->paused_at_ms = now;
		p->refills_deferred_total++;
		pthread_mutex_unlock(&p->lock);
		log_event(LOG_INFO, NULL, "pool.refill_paused", -1,
			  "creates are arriving: refills wait until %d ms after the latest",
			  POOL_BACKOFF_MS);
		pthread_mutex_lock(&p->lock);
	} else if (*resume_at == 0 && p->paused_at_ms != 0) {
		int64_t paused_ms = now - p->paused_at_ms;

		p->paused_at_ms = 0;
		pthread_mutex_unlock(&p->lock);
		log_event(LOG_INFO, NULL, "pool.refill_resumed", paused_ms, "refills run again");
		pthread_mutex_lock(&p->lock);
	}
	return *resume_at != 0;
}

/* Keeps each pack's pool at its size and writes handed-out clones' records until stopped. */
static void *pool_main(void *arg)
{
	struct pool *p = arg;
	int64_t next_check = time_mono_ms() + POOL_CHECK_MS, retry_at = 0;

	/* Clones wait at idle priority until their handout raises them (the manager). */
	vmm_set_spawn_priority(VMM_PRIO_IDLE);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		const struct pack *pack;
		int64_t wake_at = next_check, resume_at;

		write_records_locked(p);
		if (p->stopping)
			break;
		if (time_mono_ms() >= next_check) {
			drop_dead_locked(p);
			shed_one_locked(p);
			next_check = time_mono_ms() + POOL_CHECK_MS;
			continue;
		}
		pack = wanted_locked(p);
		if (pack != NULL && backing_off_locked(p, &resume_at)) {
			if (resume_at < wake_at)
				wake_at = resume_at;
			pack = NULL; /* neither fill nor retry until the burst is over */
		}
		if (pack != NULL && time_mono_ms() >= retry_at &&
		    memory_locked(p, pack) != POOL_MEMORY_ROOM)
			pack = NULL; /* looked at again at the next check */
		if (pack != NULL && time_mono_ms() >= retry_at) {
			enum pool_boot_result r = fill_one_locked(p, pack);

			if (r == POOL_BOOTED || (r == POOL_NO_SLOT && p->slot_freed))
				continue;
			if (r == POOL_NOT_NOW)
				retry_at = time_mono_ms() + POOL_RETRY_MS;
		}
		if (pack != NULL && retry_at > time_mono_ms() && retry_at < wake_at)
			wake_at = retry_at;
		if (!p->stopping && p->records == NULL)
			cond_wait_until(&p->cond, &p->lock, wake_at);
	}
	/* Records queued before `stopping` was set are written above; later ones by their caller. */
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

void pool_start(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	if (!p->running && !p->stopping)
		p->running = pthread_create(&p->thread, NULL, pool_main, p) == 0;
	pthread_mutex_unlock(&p->lock);
}

void pool_wake(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->slot_freed = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

struct sandbox *pool_take(struct pool *p, const struct pack *pack)
{
	struct pool_entry **pp, *e;
	struct sandbox *sb = NULL;
	int64_t now;

	pthread_mutex_lock(&p->lock);
	for (pp = &p->ready; (e = *pp) != NULL; pp = &e->next) {
		if (e->pack == pack && p->ops->usable(p->ctx, e->sb)) {
			*pp = e->next;
			p->ready_count--;
			p->handouts_total++;
			sb = e->sb;
			now = time_mono_ms();
			if (now - p->last_take_ms >= POOL_BACKOFF_MS)
				p->burst_start_ms = now;
			p->last_take_ms = now;
			free(e);
			pthread_cond_broadcast(&p->cond); /* the filler refills */
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return sb;
}

void pool_write_record_later(struct pool *p, struct sandbox *sb)
{
	struct pool_entry *e = calloc(1, sizeof(*e));

	pthread_mutex_lock(&p->lock);
	if (e != NULL && p->running && !p->stopping) {
		e->sb = sb;
		e->next = p->records;
		p->records = e;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		return;
	}
	pthread_mutex_unlock(&p->lock);
	free(e);
	p->ops->write_record(p->ctx, sb);
}

void pool_set_catalog(struct pool *p, const struct catalog *catalog)
{
	struct pool_entry **pp, *e, *gone = NULL;

	pthread_mutex_lock(&p->lock);
	p->catalog = catalog;
	for (pp = &p->ready; (e = *pp) != NULL;) {
		e->pack = catalog_find_equal(catalog, e->pack);
		if (e->pack != NULL) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		p->ready_count--;
		e->next = gone;
		gone = e;
	}
	pthread_cond_broadcast(&p->cond); /* new and changed packs want clones */
	pthread_mutex_unlock(&p->lock);
	discard_all(p, gone, "its pack was removed or changed by a catalog reload");
}

void pool_stop(struct pool *p)
{
	struct pool_entry *ready;
	bool join;

	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	join = p->running;
	p->running = false;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (join)
		pthread_join(p->thread, NULL);
	pthread_mutex_lock(&p->lock);
	ready = p->ready;
	p->ready = NULL;
	p->ready_count = 0;
	pthread_mutex_unlock(&p->lock);
	/* Pooled clones were never handed out: nothing to keep for a later daemon. */
	discard_all(p, ready, NULL);
}

void pool_free(struct pool *p)
{
	if (p == NULL)
		return;
	pool_stop(p);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

size_t pool_vmm_pids(struct pool *p, pid_t *out, size_t max)
{
	const struct pool_entry *e;
	size_t n = 0;

	pthread_mutex_lock(&p->lock);
	for (e = p->ready; e != NULL && n < max; e = e->next)
		out[n++] = p->ops->vmm_pid(p->ctx, e->sb);
	pthread_mutex_unlock(&p->lock);
	return n;
}

void pool_stats(struct pool *p, struct pool_stats *stats)
{
	const struct pool_entry *e;

	memset(stats, 0, sizeof(*stats));
	pthread_mutex_lock(&p->lock);
	stats->catalog = p->catalog;
	stats->ready = p->ready_count;
	for (e = p->ready; e != NULL; e = e->next)
		stats->ready_by_pack[e->pack - p->catalog->packs]++;
	stats->handouts_total = p->handouts_total;
	stats->refills_deferred_total = p->refills_deferred_total;
	stats->shed_total = p->shed_total;
	stats->memory_low = p->memory_low;
	pthread_mutex_unlock(&p->lock);
}
