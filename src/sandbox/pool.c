/* pool.c - the warm pool: ready clones per pack (default shape), refilled by one background
 * thread, handed out by manager_create_sandbox() in about a millisecond. See docs/snapshots.md.
 * Never blocks a client's create: refills take a boot slot only when one is free, and a
 * handed-out sandbox's record is written here, off the request path. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/manager_internal.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/timeutil.h"

static bool is_default_shape(const struct sandbox *sb)
{
	return sb->vcpus == sb->pack->defaults.vcpus &&
	       sb->memory_mib == sb->pack->defaults.memory_mib &&
	       sb->overlay_mib == sb->pack->defaults.overlay_mib;
}

static unsigned pooled_for(struct manager *m, const struct pack *pack)
{
	struct sandbox *sb;
	unsigned n = 0;

	for (sb = m->pool; sb != NULL; sb = sb->next)
		n += sb->pack == pack;
	return n;
}

/* The pack that most needs a pooled clone, or NULL when every pool is full. */
static const struct pack *pool_wanted_locked(struct manager *m)
{
	size_t i;

	for (i = 0; i < m->catalog->count; i++) {
		const struct pack *pack = &m->catalog->packs[i];

		if (pooled_for(m, pack) < m->cfg.pool_size)
			return pack;
	}
	return NULL;
}

/* Restores one clone for the pool (default shape, fresh id and identity via its HELLO).
 * Returns NULL without side effects while the pack's template is not ready yet. */
static struct sandbox *pool_fill_one(struct manager *m, const struct pack *pack)
{
	struct template_shape shape = { .pack = pack, .vcpus = pack->defaults.vcpus,
					.memory_mib = pack->defaults.memory_mib,
					.overlay_mib = pack->defaults.overlay_mib };
	struct template *tpl = template_acquire(m->templates, &shape);
	struct sandbox *sb;
	struct ember_error *err = NULL;

	if (tpl == NULL)
		return NULL; /* template_acquire started its build */
	sb = calloc(1, sizeof(*sb));
	if (sb == NULL) {
		template_release(tpl);
		return NULL;
	}
	sb->pack = pack;
	sb->vcpus = shape.vcpus;
	sb->memory_mib = shape.memory_mib;
	sb->overlay_mib = shape.overlay_mib;
	sb->state = SANDBOX_BOOTING;
	sb->tpl = tpl;
	if (id_generate(SANDBOX_ID_PREFIX, sb->id, sizeof(sb->id), &err) == 0 &&
	    manager_boot(m, sb, true, &err) == 0) {
		sb->boot_mode = "pool";
		return sb;
	}
	if (err != NULL && err->kind != EMBER_E_UNAVAILABLE)
		log_event(LOG_WARN, sb->id, "pool.fill_failed", -1, "%s", err->message);
	ember_error_free(&err);
	manager_teardown(m, sb);
	free(sb);
	return NULL;
}

/* Keeps each pack's pool at its size, one restore at a time and only with a boot slot free,
 * so refills never hold up a client's create for long. */
/* Writes the records of sandboxes just handed out of the pool (each holds a reference until
 * its record is on disk), so a pooled create never waits for file I/O. Lock held. */
static void write_pending_records_locked(struct manager *m)
{
	struct sandbox *sb;

	for (;;) {
		for (sb = m->list; sb != NULL; sb = sb->next) {
			if (sb->record_pending)
				break;
		}
		if (sb == NULL)
			return;
		sb->record_pending = false;
		pthread_mutex_unlock(&m->lock);
		manager_save_record(sb);
		pthread_mutex_lock(&m->lock);
		sb->refs--;
		pthread_cond_broadcast(&m->cond);
	}
}

void *manager_pool_main(void *arg)
{
	struct manager *m = arg;

	pthread_mutex_lock(&m->lock);
	for (;;) {
		const struct pack *pack;
		struct sandbox *sb;

		write_pending_records_locked(m);
		if (m->stop_reaper || m->shutting_down)
			break;
		pack = pool_wanted_locked(m);

		if (pack == NULL || m->booting >= m->cfg.max_concurrent_boots) {
			manager_cond_wait_ms(&m->cond, &m->lock, 500);
			continue;
		}
		m->booting++;
		m->pool_filling++;
		pthread_mutex_unlock(&m->lock);
		sb = pool_fill_one(m, pack);
		pthread_mutex_lock(&m->lock);
		m->booting--;
		m->pool_filling--;
		pthread_cond_broadcast(&m->cond);
		if (sb != NULL) {
			sb->next = m->pool;
			m->pool = sb;
			m->pool_count++;
		} else {
			/* No template yet (its build was just started) or a failure: try later. */
			manager_cond_wait_ms(&m->cond, &m->lock, 500);
		}
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* Hands out a pooled clone matching sb's pack and default shape (filling info while it is
 * certainly alive), or returns NULL. The caller's validated request (sb) supplies the lifetime. */
struct sandbox *manager_pool_take(struct manager *m, const struct sandbox *want,
				 struct sandbox_info *info)
{
	struct sandbox **p, *sb = NULL;

	if (m->cfg.pool_size == 0 || !is_default_shape(want))
		return NULL;
	pthread_mutex_lock(&m->lock);
	if (!m->shutting_down && m->count < m->cfg.max_sandboxes) {
		for (p = &m->pool; *p != NULL; p = &(*p)->next) {
			if ((*p)->pack == want->pack && vmm_alive((*p)->vm) &&
			    !channel_broken((*p)->ch, NULL, 0)) {
				sb = *p;
				*p = sb->next;
				m->pool_count--;
				break;
			}
		}
	}
	if (sb != NULL) {
		int64_t now = time_mono_ms();

		sb->state = SANDBOX_READY;
		sb->timeout_s = want->timeout_s;
		sb->created_wall_ns = time_wall_ns();
		sb->created_mono_ms = now;
		sb->expires_mono_ms = now + (int64_t)sb->timeout_s * 1000;
		sb->boot_ms = 0;
		sb->next = m->list;
		m->list = sb;
		m->count++;
		m->created_total++;
		m->pool_handouts_total++;
		sb->record_pending = true;
		sb->refs++; /* until the filler wrote its record */
		manager_fill_info_locked(sb, info);
		pthread_cond_broadcast(&m->cond); /* the filler refills and writes the record */
	}
	pthread_mutex_unlock(&m->lock);
	return sb;
}
