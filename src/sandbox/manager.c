/* manager.c - sandbox table, state machine, limits and lifecycle (interface: manager.h).
 *
 * Ownership: the manager owns its table and every sandbox in it (sandbox.h says which fields
 * need the lock); the warm pool owns its clones until pool_take() hands one over (pool.h); the
 * template store owns templates, sandboxes hold references (template.h).
 *
 * Locking: one mutex guards the table and the [lock] fields of every sandbox. It is taken only
 * for bookkeeping; booting, exec and teardown run outside it, and it may be held while calling
 * into the pool (whose lock is innermost), never the other way round. A sandbox stays allocated
 * while `refs` (requests using its channel, a record not yet written) is non-zero: teardown
 * aborts the channel, waits for refs to drain, detaches vm and ch under the lock and only then
 * stops and frees them, so a reader of the table never sees a freed VM. */
#include "sandbox/manager.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/messages.h"
#include "sandbox/catalogs.h"
#include "sandbox/headroom.h"
#include "sandbox/metrics.h"
#include "sandbox/mountimage.h"
#include "sandbox/pool.h"
#include "sandbox/snapshots.h"
#include "sandbox/record.h"
#include "sandbox/recover.h"
#include "sandbox/sandbox.h"
#include "sandbox/template.h"
#include "util/cleanup.h"
#include "util/sha256.h"
#include "util/fdio.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/sync.h"
#include "util/timeutil.h"
#include "vmm/guestmem.h"

#define REAPER_INTERVAL_MS 500
#define CONSOLE_TAIL_IN_ERRORS 600
/* How far back from the console's end a panic line is looked for: the kernel prints the
 * panic, then a backtrace and CPU state of a few KiB; a guest that wrote much after it is not
 * describing its own death any more. */
#define CONSOLE_PANIC_SEARCH_BYTES (64u << 10)
/* How far back from the console's end a failed cold boot's guest is looked for saying its
 * kernel has no timer: that line and "powering off" are the last the guest writes. */
#define CONSOLE_NO_TIMER_SEARCH_BYTES 2048
/* Cold boots of one create beyond the first, when the guest found no timer (docs/images.md). */
#define NO_TIMER_BOOT_RETRIES 2
/* A clone is ready in ~0.3 s under TCG (docs/snapshots.md "Boot times") and a few seconds
 * under heavy load. One that is not ready in this long is abandoned, and the create boots cold
 * in what is left of its boot deadline instead of finding none left. */
#define CLONE_DEADLINE_MS 10000

struct manager {
	struct manager_config cfg;
	char run_dir[PATH_MAX];
	/* Paused sandboxes' saved VMs and forks' passing ones: <state dir>/paused-<hash of
	 * run_dir>, this daemon's alone (two daemons need two run dirs); at startup, what no
	 * recovered paused sandbox names is removed. Empty: no state dir. */
	char paused_dir[PATH_MAX];
	struct snapshot_store *snapshots; /* NULL: no state dir */
	/* What saved VMs and templates of this daemon depend on besides their pack
	 * (template_fingerprint_base()); "" with neither a state dir nor templates. */
	char base_digest[DIGEST_HEX_LEN + 1];
	struct catalogs catalogs;         /* the generation in force: manager_catalog() */
	/* Serialises reloads (taken before lock, never inside it): the catalog swap, the pool's
	 * switch and the prewarms of one reload happen before the next reload reads anything. */
	pthread_mutex_t reload_lock;
	struct vmm_driver *driver;
	struct template_store *templates; /* NULL: no snapshots (disabled or unsupported) */
	struct pool *pool;                /* NULL: no warm pool; its state is its own */
	pthread_t reaper;
	/* Serialises record writes (taken before lock, never inside it): two writes of one record
	 * racing (a timeout change and the create's own write) must land in the order they read
	 * the sandbox, or the older one would win. Records are small and not fsynced. */
	pthread_mutex_t record_lock;
	pthread_mutex_t lock;
	/* Everything below is guarded by lock. */
	pthread_cond_t cond;              /* booting, refs, count changes; stop_reaper */
	struct sandbox *list;
	unsigned count;
	unsigned booting;                 /* boot slots taken, by creates and pool fills */
	bool shutting_down;
	bool stop_reaper;
	bool keep_templates;
	bool max_derived;                 /* cfg.max_sandboxes came from host memory */
	bool tcg;                         /* VMMs emulate: each carries a translation buffer */
	uint64_t memory_rejections_total;
	/* What creates admitted for host memory and still booting may take (memory_admit): their
	 * VMs are not in MemAvailable yet, so creates that arrive together count each other. */
	uint64_t memory_booting_mib;
	uint64_t created_total;
	uint64_t create_failures_total;
	uint64_t execs_total;
	struct metrics *metrics;          /* its own lock (taken inside lock, never around it) */
};

/* Forks and snapshots (defined with them, below). */
static int open_snapshots(struct manager *m, struct ember_error **err);
static int resolve_snapshot(struct manager *m, const struct sandbox_create_request *req,
			    struct sandbox_create_request *resolved, struct snapshot_info *info,
			    char state[PATH_MAX], struct ember_error **err);

/* ---- the table (lock held) ------------------------------------------------------------------ */

static struct sandbox *table_find_locked(struct manager *m, const char *id)
{
	struct sandbox *sb;

	for (sb = m->list; sb != NULL; sb = sb->next) {
		if (strcmp(sb->id, id) == 0)
			return sb;
	}
	return NULL;
}

static void table_insert_locked(struct manager *m, struct sandbox *sb)
{
	sb->next = m->list;
	m->list = sb;
	m->count++;
}

static void table_remove_locked(struct manager *m, struct sandbox *target)
{
	struct sandbox **p;

	for (p = &m->list; *p != NULL; p = &(*p)->next) {
		if (*p == target) {
			*p = target->next;
			m->count--;
			pthread_cond_broadcast(&m->cond);
			return;
		}
	}
}

/* Gives a boot slot back: creates queued in admit() and the pool's filler may take it. */
static void boot_slot_release_locked(struct manager *m)
{
	m->booting--;
	pthread_cond_broadcast(&m->cond);
	if (m->pool != NULL)
		pool_wake(m->pool);
}

/* Wall time of a moment on this daemon's monotonic clock (0 stays 0: "never"). */
static int64_t wall_ns_of(const struct sandbox *sb, int64_t mono_ms)
{
	return mono_ms > 0 ? sb->created_wall_ns + (mono_ms - sb->created_mono_ms) * 1000000 : 0;
}

/* Activity (docs/api.md "last_activity_at"): the sandbox was created or handed out, or a request
 * addressed to it started or ended. The idle clock in end_due_locked() reads it. Lock held. */
static void sandbox_touch_locked(struct sandbox *sb)
{
	sb->last_activity_mono_ms = time_mono_ms();
}

static void fill_info_locked(const struct sandbox *sb, struct sandbox_info *info)
{
	int64_t now = time_mono_ms();

	memset(info, 0, sizeof(*info));
	memcpy(info->id, sb->id, sizeof(info->id));
	snprintf(info->language_pack, sizeof(info->language_pack), "%s", sb->pack->name);
	info->state = sb->state;
	info->vcpus = sb->vcpus;
	info->memory_mib = sb->memory_mib;
	info->timeout_s = sb->timeout_s;
	info->overlay_mib = sb->overlay_mib;
	info->created_wall_ns = sb->created_wall_ns;
	info->expires_wall_ns = wall_ns_of(sb, sb->expires_mono_ms);
	info->last_activity_wall_ns = wall_ns_of(sb, sb->last_activity_mono_ms);
	info->idle_timeout_s = sb->idle_timeout_s;
	info->cpu_weight = sb->cpu_weight;
	info->labels = sb->labels;
	info->mounts = sb->mounts;
	info->age_ms = now - sb->created_mono_ms;
	info->execs_run = sb->execs_run;
	info->execs_running = sb->execs_running;
	info->boot_ms = sb->boot_ms;
	info->boot_mode = "cold";
	snprintf(info->failure, sizeof(info->failure), "%s", sb->failure);
	/* While booting, vm, ch and boot_mode belong to the booting thread alone. Afterwards they
	 * change only under the lock (teardown detaches them), so they are safe to read here. */
	if (sb->state == SANDBOX_BOOTING)
		return;
	if (sb->boot_mode != NULL)
		info->boot_mode = sb->boot_mode;
	info->vmm_pid = sb->vm != NULL ? vmm_pid(sb->vm) : 0;
}

/* ---- failure, references, teardown ---------------------------------------------------------- */

/* Appends the end of the guest console to an error, so boot failures explain themselves. */
static void wrap_with_console_tail(struct sandbox *sb, struct ember_error **err)
{
	char tail[CONSOLE_TAIL_IN_ERRORS + 1];
	size_t len, used, i;

	if (sb->vm == NULL || err == NULL || *err == NULL || ember_error_is_static(*err))
		return;
	len = vmm_console_tail(sb->vm, tail, CONSOLE_TAIL_IN_ERRORS, NULL);
	if (len == 0)
		return;
	for (i = 0; i < len; i++) {
		if ((unsigned char)tail[i] < 0x20)
			tail[i] = ' ';
	}
	tail[len] = '\0';
	used = strlen((*err)->message);
	snprintf((*err)->message + used, sizeof((*err)->message) - used,
		 " (guest console ends: ...%s)", tail);
}

/* Reads the last size - 1 bytes of sb's console into buf, NUL-terminated, and returns where
 * marker first appears in them (NULL: nowhere, or no VM). */
static char *console_tail_find(struct sandbox *sb, char *buf, size_t size, const char *marker)
{
	size_t len;

	buf[0] = '\0';
	if (sb->vm == NULL)
		return NULL;
	len = vmm_console_tail(sb->vm, buf, size - 1, NULL);
	buf[len] = '\0';
	return memmem(buf, len, marker, strlen(marker));
}

/* Why a VM process that should be running is gone: a guest kernel panic (with `panic=-1
 * reboot=t` the VM resets and the VMM exits) leaves its line on the console; say so. Returns
 * whether it was a panic. */
static bool describe_vm_exit(struct sandbox *sb, char *out, size_t size)
{
	static const char marker[] = "Kernel panic - not syncing: ";
	_cleanup_free_ char *text = NULL;
	char *line, *p;

	snprintf(out, size, "the VM process exited unexpectedly");
	if ((text = malloc(CONSOLE_PANIC_SEARCH_BYTES + 1)) == NULL)
		return false;
	line = console_tail_find(sb, text, CONSOLE_PANIC_SEARCH_BYTES + 1, marker);
	if (line == NULL)
		return false;
	line += sizeof(marker) - 1;
	/* The tail is NUL-terminated: the line ends there at the latest. */
	for (p = line; *p != '\0' && *p != '\n' && *p != '\r' && p - line < 160; p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	}
	*p = '\0';
	snprintf(out, size, "the VM process exited after a guest kernel panic (%s)", line);
	return true;
}

/* A failed sandbox whose channel broke while its VMM still ran, once the VMM is gone: the VMM's
 * end is the reason (a killed VMM or a guest kernel panic closes the channel a moment before
 * the process is seen gone; on a loaded machine that moment stretches). A panic replaces the
 * channel's reason; any other exit keeps it after the exit. Lock held. */
static void refine_failure_locked(struct sandbox *sb)
{
	char reason[sizeof(sb->failure)];
	size_t used;

	if (sb->vm != NULL && vmm_alive(sb->vm))
		return;
	sb->failure_refinable = false;
	if (!describe_vm_exit(sb, reason, sizeof(reason))) {
		used = strlen(reason);
		snprintf(reason + used, sizeof(reason) - used, " (first seen as: %s)", sb->failure);
	}
	snprintf(sb->failure, sizeof(sb->failure), "%s", reason);
	log_event(LOG_WARN, sb->id, "sandbox.failed", -1, "%s", sb->failure);
}

/* The one place a ready sandbox becomes FAILED: its VM died or its channel broke. Lock held. */
static void mark_failed_if_broken_locked(struct manager *m, struct sandbox *sb)
{
	const char *kind = "channel_broken";
	char reason[512];

	if (sb->state == SANDBOX_FAILED && sb->failure_refinable)
		refine_failure_locked(sb);
	if (sb->state != SANDBOX_READY)
		return;
	if (!vmm_alive(sb->vm))
		kind = describe_vm_exit(sb, sb->failure, sizeof(sb->failure)) ? "kernel_panic"
									    : "vm_exited";
	else if (channel_broken(sb->ch, reason, sizeof(reason))) {
		snprintf(sb->failure, sizeof(sb->failure), "%s", reason);
		sb->failure_refinable = true;
	} else {
		return;
	}
	sb->state = SANDBOX_FAILED;
	metrics_count(m->metrics, METRICS_GUEST_FAILURES, &kind, 1);
	log_event(LOG_WARN, sb->id, "sandbox.failed", -1, "%s", sb->failure);
}

/* Ends the requests running on sb (they fail with why) and waits until nothing uses it. The
 * sandbox must be out of reach of new requests (DESTROYING, or not in the table). */
static void detach_transfers_locked(struct manager *m, struct sandbox *sb);

static void wait_unused(struct manager *m, struct sandbox *sb, const char *why)
{
	struct channel *ch;

	/* A resume of a sandbox paused under an earlier daemon sets ch (under the lock). */
	pthread_mutex_lock(&m->lock);
	ch = sb->ch;
	pthread_mutex_unlock(&m->lock);
	if (ch != NULL)
		channel_abort(ch, why);
	pthread_mutex_lock(&m->lock);
	detach_transfers_locked(m, sb);
	while (sb->refs > 0)
		cond_wait_until(&m->cond, &m->lock, -1);
	pthread_mutex_unlock(&m->lock);
}

void sandbox_release_vm(struct vmm_instance *vm, struct channel *ch)
{
	channel_close(ch);
	if (vm != NULL) {
		vmm_stop(vm, time_mono_ms() + STOP_GRACE_MS, NULL);
		vmm_instance_free(vm);
	}
}

/* Detaches sb's VM and channel under the lock (the table's readers look at them), then stops
 * and frees them outside it. */
static void stop_vm(struct manager *m, struct sandbox *sb)
{
	struct vmm_instance *vm;
	struct channel *ch;

	pthread_mutex_lock(&m->lock);
	vm = steal_pointer(&sb->vm);
	ch = steal_pointer(&sb->ch);
	pthread_mutex_unlock(&m->lock);
	sandbox_release_vm(vm, ch);
}

/* After wait_unused() (the channel is aborted, so every background exec ends): joins the
 * process threads before the channel is closed, and drops the manager's table reference
 * (followers may hold theirs a little longer). */
static void close_procs(struct manager *m, struct sandbox *sb)
{
	struct procs *procs;

	pthread_mutex_lock(&m->lock);
	procs = steal_pointer(&sb->procs);
	pthread_mutex_unlock(&m->lock);
	procs_close(procs);
	procs_unref(procs);
}

/* After its VM stopped: the sandbox's TAP, table and resolver socket. */
static void release_network(struct manager *m, struct sandbox *sb)
{
	struct egress_link *link;

	/* Its state keeps new readers of the link away (acquire_link); wait for those before. */
	pthread_mutex_lock(&m->lock);
	while (sb->refs > 0)
		cond_wait_until(&m->cond, &m->lock, -1);
	link = steal_pointer(&sb->link);
	pthread_mutex_unlock(&m->lock);
	egress_detach(m->cfg.egress, link);
}

/* Stops everything a sandbox owns; the sandbox must be out of reach of new requests. */
static void teardown(struct manager *m, struct sandbox *sb)
{
	int64_t t0 = time_mono_ms();
	struct ember_error *err = NULL;

	wait_unused(m, sb, "the sandbox is being destroyed");
	close_procs(m, sb);
	stop_vm(m, sb);
	release_network(m, sb);
	template_release(sb->tpl);
	sb->tpl = NULL;
	if (sb->paused_state[0] != '\0')
		vmm_saved_state_remove(sb->paused_state);
	if (sb->run_dir[0] != '\0' && dir_remove_tree(sb->run_dir, &err) < 0) {
		log_event(LOG_WARN, sb->id, "sandbox.cleanup_failed", -1, "%s", err->message);
		ember_error_free(&err);
	}
	log_event(LOG_INFO, sb->id, "sandbox.destroyed", time_mono_ms() - t0,
		  "VM stopped, files removed");
}

static void destroy_and_free(struct manager *m, struct sandbox *sb)
{
	teardown(m, sb);
	pthread_mutex_lock(&m->lock);
	table_remove_locked(m, sb);
	pthread_mutex_unlock(&m->lock);
	free(sb);
}

/* Lets go of a sandbox without stopping its VM (its record stays for a later daemon). */
static void detach_and_free(struct manager *m, struct sandbox *sb)
{
	struct vmm_instance *vm;
	struct channel *ch;

	wait_unused(m, sb, "the daemon is exiting");
	close_procs(m, sb); /* the guest ends them with the session: they do not survive us */
	pthread_mutex_lock(&m->lock);
	vm = steal_pointer(&sb->vm);
	ch = steal_pointer(&sb->ch);
	table_remove_locked(m, sb);
	pthread_mutex_unlock(&m->lock);
	channel_close(ch);
	egress_forget(m->cfg.egress, steal_pointer(&sb->link));
	log_event(LOG_INFO, sb->id, "sandbox.detached", -1, "left running (vmm_pid=%d)",
		  vm != NULL ? (int)vmm_pid(vm) : 0);
	vmm_detach(vm);
	free(sb);
}

/* Whether sb's VM is saved (pausing once saved: the record is written before its VMM stops;
 * paused; resuming until the new VMM runs). Lock held. */
static bool vm_saved_locked(const struct sandbox *sb)
{
	return sb->paused_state[0] != '\0' &&
	       (sb->state == SANDBOX_PAUSING || sb->state == SANDBOX_PAUSED ||
		sb->state == SANDBOX_RESUMING);
}

/* What the record says about sb. Lock held (timeout_s and expires_mono_ms change under it). */
static void record_fill_locked(const struct manager *m, const struct sandbox *sb,
			       struct sandbox_record *rec)
{
	memset(rec, 0, sizeof(*rec));
	snprintf(rec->id, sizeof(rec->id), "%s", sb->id);
	snprintf(rec->language_pack, sizeof(rec->language_pack), "%s", sb->pack->name);
	snprintf(rec->vmm, sizeof(rec->vmm), "%s", vmm_driver_name(m->driver));
	if (vm_saved_locked(sb)) {
		rec->paused = true;
		rec->lifetime_left_ms = sb->lifetime_left_ms;
		snprintf(rec->pack_digest, sizeof(rec->pack_digest), "%s", sb->pack->sha256);
		snprintf(rec->base_digest, sizeof(rec->base_digest), "%s", m->base_digest);
	}
	rec->vcpus = sb->vcpus;
	rec->memory_mib = sb->memory_mib;
	rec->timeout_s = sb->timeout_s;
	rec->overlay_mib = sb->overlay_mib;
	rec->idle_timeout_s = sb->idle_timeout_s;
	rec->cpu_weight = sb->cpu_weight;
	rec->created_wall_ns = sb->created_wall_ns;
	rec->expires_wall_ns = wall_ns_of(sb, sb->expires_mono_ms);
	rec->boot_ms = sb->boot_ms;
	rec->pid = sb->vm != NULL ? vmm_pid(sb->vm) : 0;
	rec->pid_start_ticks = sb->vm != NULL ? vmm_start_ticks(sb->vm) : 0;
	rec->labels = sb->labels;
	rec->env = sb->env;
	rec->mounts = sb->mounts;
}

/* The record lets a restarted daemon take this sandbox over. Without it the sandbox still works
 * but does not survive a daemon crash, so a failure is logged rather than fatal. The caller holds
 * a reference (refs), so sb and its VM stay. */
static void save_record(struct manager *m, struct sandbox *sb)
{
	_cleanup_free_ struct sandbox_record *rec = malloc(sizeof(*rec));
	struct ember_error *err = NULL;

	if (rec == NULL)
		return;
	pthread_mutex_lock(&m->record_lock);
	pthread_mutex_lock(&m->lock);
	if (sb->vm == NULL && !vm_saved_locked(sb)) { /* failed: nothing to take over */
		pthread_mutex_unlock(&m->lock);
		pthread_mutex_unlock(&m->record_lock);
		return;
	}
	record_fill_locked(m, sb, rec);
	pthread_mutex_unlock(&m->lock);
	if ((!rec->paused && rec->pid_start_ticks == 0) ||
	    sandbox_record_save(sb->run_dir, rec, &err) < 0) {
		log_event(LOG_WARN, sb->id, "sandbox.record_failed", -1,
			  "cannot write the re-attach record: %s",
			  err != NULL ? err->message : "VMM start time unknown");
		ember_error_free(&err);
	}
	pthread_mutex_unlock(&m->record_lock);
}

/* Writes sb's record, then drops the reference its creator took so that nobody could free sb
 * while the record was written (a DELETE or a shutdown racing a create wait for it). */
static void record_and_release(struct manager *m, struct sandbox *sb)
{
	save_record(m, sb);
	pthread_mutex_lock(&m->lock);
	sb->refs--;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

/* ---- the reaper ----------------------------------------------------------------------------- */

enum end_reason { END_NONE, END_EXPIRED, END_IDLE, END_PAUSED_TOO_LONG };

/* The one clock that ends sandboxes: their lifetime, or their idle timeout once nothing used them
 * for that long. A request in progress (a running exec) holds a reference, so it keeps its
 * sandbox alive however long it runs. Lock held. */
static enum end_reason end_due_locked(const struct sandbox *sb, int64_t now)
{
	if (sb->state == SANDBOX_PAUSED)
		return now >= sb->expires_mono_ms ? END_PAUSED_TOO_LONG : END_NONE;
	if (sb->state != SANDBOX_READY && sb->state != SANDBOX_FAILED)
		return END_NONE;
	if (sb->expires_mono_ms > 0 && now >= sb->expires_mono_ms)
		return END_EXPIRED;
	if (sb->idle_timeout_s > 0 && sb->refs == 0 &&
	    now - sb->last_activity_mono_ms >= (int64_t)sb->idle_timeout_s * 1000)
		return END_IDLE;
	return END_NONE;
}

struct ending {
	struct sandbox *sb;
	enum end_reason why;
};

/* Marks sandboxes whose VM died or whose channel broke as failed and takes those whose time is
 * up out of service into out[] (at most max). Lock held. */
static size_t collect_expired_locked(struct manager *m, struct ending *out, size_t max)
{
	int64_t now = time_mono_ms();
	struct sandbox *sb;
	size_t n = 0;

	for (sb = m->list; sb != NULL && n < max; sb = sb->next) {
		enum end_reason why;

		mark_failed_if_broken_locked(m, sb);
		why = end_due_locked(sb, now);
		if (why != END_NONE) {
			sb->state = SANDBOX_DESTROYING;
			out[n].sb = sb;
			out[n++].why = why;
		}
	}
	return n;
}

static void *reaper_main(void *arg)
{
	struct manager *m = arg;

	pthread_mutex_lock(&m->lock);
	while (!m->stop_reaper) {
		struct ending expired[64];
		size_t n = collect_expired_locked(m, expired, ARRAY_SIZE(expired)), i;
		int64_t next = time_mono_ms() + REAPER_INTERVAL_MS;

		if (n == 0) {
			/* cond is broadcast on every table change; only a stop ends the interval. */
			while (!m->stop_reaper && cond_wait_until(&m->cond, &m->lock, next))
				;
			continue;
		}
		pthread_mutex_unlock(&m->lock);
		for (i = 0; i < n; i++) {
			struct sandbox *sb = expired[i].sb;

			if (expired[i].why == END_IDLE)
				log_event(LOG_INFO, sb->id, "sandbox.idle", -1,
					  "no activity for %u s (idle_timeout_s)", sb->idle_timeout_s);
			else if (expired[i].why == END_PAUSED_TOO_LONG)
				log_event(LOG_INFO, sb->id, "sandbox.expired", -1,
					  "paused for %u s (--max-paused-s)", m->cfg.max_paused_s);
			else
				log_event(LOG_INFO, sb->id, "sandbox.expired", -1,
					  "lifetime of %u s reached", sb->timeout_s);
			destroy_and_free(m, sb);
		}
		pthread_mutex_lock(&m->lock);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* ---- host memory (headroom.h) --------------------------------------------------------------- */

#define MANAGER_MEMINFO_DEFAULT "/proc/meminfo"
/* What a create refused for host memory is told to wait: memory comes back as sandboxes end or
 * the host's other work settles, which takes seconds, not milliseconds. */
#define MANAGER_MEMORY_RETRY_S 5

static const char *meminfo_path(const struct manager *m)
{
	return m->cfg.meminfo_path != NULL ? m->cfg.meminfo_path : MANAGER_MEMINFO_DEFAULT;
}

/* The host's memory now, and its reserve; -1 (logged) when meminfo cannot be read, and then
 * nothing is refused for memory: the limits of --max-sandboxes still hold. */
static int memory_sample(struct manager *m, struct headroom_sample *s, uint64_t *reserve_mib)
{
	struct ember_error *err = NULL;

	if (headroom_read(meminfo_path(m), s, &err) < 0) {
		log_event(LOG_WARN, NULL, "memory.unknown", -1, "%s", err->message);
		ember_error_free(&err);
		return -1;
	}
	*reserve_mib = headroom_reserve_mib(s->total_mib, m->cfg.memory_reserve_mib);
	return 0;
}

/* MemAvailable less what sandboxes still booting were promised (lock held). */
static uint64_t available_beyond_booting_locked(const struct manager *m,
						const struct headroom_sample *s)
{
	return headroom_unpromised_mib(s->available_mib, m->memory_booting_mib);
}

/* Refuses (429, Retry-After) a new VM of memory_mib when the host cannot give it what it may
 * take beyond the reserve and beyond what creates still booting were promised; otherwise
 * promises it that much until memory_release(*held_mib) (0 when nothing was promised: the
 * meminfo file is unreadable, or the daemon is stopping). */
static int memory_admit(struct manager *m, unsigned memory_mib, uint64_t *held_mib,
			struct ember_error **err)
{
	uint64_t cost = headroom_sandbox_cost_mib(memory_mib, m->tcg), reserve, booting;
	struct headroom_sample s;
	bool stopping, fits;

	*held_mib = 0;
	/* A shutdown is a 503 (admit says so), not a memory refusal. */
	pthread_mutex_lock(&m->lock);
	stopping = m->shutting_down;
	pthread_mutex_unlock(&m->lock);
	if (stopping || memory_sample(m, &s, &reserve) < 0)
		return 0;
	pthread_mutex_lock(&m->lock);
	booting = m->memory_booting_mib;
	fits = headroom_fit(available_beyond_booting_locked(m, &s), reserve, cost) > 0;
	if (fits) {
		m->memory_booting_mib += cost;
		*held_mib = cost;
	} else {
		m->memory_rejections_total++;
	}
	pthread_mutex_unlock(&m->lock);
	if (fits)
		return 0;
	ember_error_set(err, EMBER_E_CAPACITY, 0,
			"the host is low on memory: %llu MiB available (%llu MiB of it promised to "
			"sandboxes still booting), %llu MiB kept in reserve (--memory-reserve-mib), "
			"and a sandbox of %u MiB may take %llu MiB; retry later or delete a sandbox",
			(unsigned long long)s.available_mib, (unsigned long long)booting,
			(unsigned long long)reserve, memory_mib, (unsigned long long)cost);
	return ember_error_retry_after(err, MANAGER_MEMORY_RETRY_S);
}

/* Takes back what memory_admit() promised a create once its VM booted or failed to. */
static void memory_release(struct manager *m, uint64_t held_mib)
{
	if (held_mib == 0)
		return;
	pthread_mutex_lock(&m->lock);
	m->memory_booting_mib -= held_mib;
	pthread_mutex_unlock(&m->lock);
}

static const struct pack *default_pack(const struct catalog *catalog)
{
	const struct pack *pack = catalog_find(catalog, "python");

	return pack != NULL ? pack : catalog->count > 0 ? &catalog->packs[0] : NULL;
}

/* --max-sandboxes when not given: what fits in the host's memory now, beyond the reserve, at
 * the most a sandbox of the default pack's shape can take (logged; 16 when unknown). */
static void derive_max_sandboxes(struct manager *m)
{
	const struct pack *pack = default_pack(manager_catalog(m));
	struct headroom_sample s;
	uint64_t reserve, cost, fit;

	if (m->cfg.max_sandboxes != 0)
		return;
	m->max_derived = true;
	m->cfg.max_sandboxes = 16;
	if (pack == NULL || memory_sample(m, &s, &reserve) < 0)
		return;
	cost = headroom_sandbox_cost_mib(pack->defaults.memory_mib, m->tcg);
	fit = headroom_fit(s.available_mib, reserve, cost);
	m->cfg.max_sandboxes = fit < 1 ? 1 : fit > 4096 ? 4096 : (unsigned)fit;
	log_event(LOG_INFO, NULL, "manager.max_sandboxes", -1,
		  "max_sandboxes=%u from host memory: %llu MiB available, %llu MiB reserve, "
		  "%llu MiB at most per %s sandbox", m->cfg.max_sandboxes,
		  (unsigned long long)s.available_mib, (unsigned long long)reserve,
		  (unsigned long long)cost, pack->name);
}

/* ---- what the warm pool asks of the manager (pool_ops) -------------------------------------- */

/* Whether sb has (or, while it is created, asks for) a network. */
static bool sandbox_networked(const struct sandbox *sb)
{
	return sb->link != NULL ||
	       (sb->want_network != NULL && sb->want_network->mode != NET_MODE_NONE);
}

static bool is_default_shape(const struct sandbox *sb)
{
	return !sandbox_networked(sb) && sb->mounts.n == 0 && sb->vcpus == sb->pack->defaults.vcpus &&
	       sb->memory_mib == sb->pack->defaults.memory_mib &&
	       sb->overlay_mib == sb->pack->defaults.overlay_mib;
}

static int boot_vm(struct manager *m, struct sandbox *sb, bool clone_only,
		   struct ember_error **err);

/* Restores one clone of pack's default shape, fresh id and identity via its HELLO (a boot slot
 * held). Returns NULL without side effects while the pack's template is not ready yet. */
static struct sandbox *boot_pool_clone(struct manager *m, const struct pack *pack)
{
	struct template_shape shape = { .pack = pack, .vcpus = pack->defaults.vcpus,
					.memory_mib = pack->defaults.memory_mib,
					.overlay_mib = pack->defaults.overlay_mib };
	struct template *tpl = template_acquire(m->templates, &shape);
	struct ember_error *err = NULL;
	struct sandbox *sb;

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
	sb->cpu_weight = VMM_CPU_WEIGHT_DEFAULT;
	sb->state = SANDBOX_BOOTING;
	sb->tpl = tpl;
	if (id_generate(SANDBOX_ID_PREFIX, sb->id, sizeof(sb->id), &err) == 0 &&
	    boot_vm(m, sb, true, &err) == 0 && template_warm_up(sb->ch, pack, &err) == 0) {
		sb->boot_mode = "pool";
		return sb;
	}
	if (err->kind != EMBER_E_UNAVAILABLE)
		log_event(LOG_WARN, sb->id, "pool.fill_failed", -1, "%s", err->message);
	ember_error_free(&err);
	teardown(m, sb);
	free(sb);
	return NULL;
}

static enum pool_boot_result pool_boot_clone(void *ctx, const struct pack *pack,
					     struct sandbox **out)
{
	struct manager *m = ctx;

	pthread_mutex_lock(&m->lock);
	if (m->shutting_down || m->booting >= m->cfg.max_concurrent_boots) {
		pthread_mutex_unlock(&m->lock);
		return POOL_NO_SLOT;
	}
	m->booting++;
	pthread_mutex_unlock(&m->lock);
	*out = boot_pool_clone(m, pack);
	pthread_mutex_lock(&m->lock);
	boot_slot_release_locked(m);
	pthread_mutex_unlock(&m->lock);
	return *out != NULL ? POOL_BOOTED : POOL_NOT_NOW;
}

static bool pool_usable(void *ctx, struct sandbox *sb)
{
	(void)ctx;
	return vmm_alive(sb->vm) && !channel_broken(sb->ch, NULL, 0);
}

static pid_t pool_vmm_pid(void *ctx, struct sandbox *sb)
{
	(void)ctx;
	return sb->vm != NULL ? vmm_pid(sb->vm) : 0;
}

static void pool_discard(void *ctx, struct sandbox *sb, const char *why)
{
	if (why != NULL)
		log_event(LOG_WARN, sb->id, "pool.dropped", -1, "%s", why);
	teardown(ctx, sb);
	free(sb);
}

static void pool_write_record(void *ctx, struct sandbox *sb)
{
	record_and_release(ctx, sb);
}

static enum pool_memory pool_memory(void *ctx, const struct pack *pack)
{
	struct manager *m = ctx;
	struct headroom_sample s;
	uint64_t reserve;

	if (memory_sample(m, &s, &reserve) < 0)
		return POOL_MEMORY_ROOM;
	if (s.available_mib < reserve)
		return POOL_MEMORY_PRESSURE;
	pthread_mutex_lock(&m->lock);
	s.available_mib = available_beyond_booting_locked(m, &s);
	pthread_mutex_unlock(&m->lock);
	return headroom_fit(s.available_mib, reserve,
			    headroom_sandbox_cost_mib(pack->defaults.memory_mib, m->tcg)) > 0
		       ? POOL_MEMORY_ROOM
		       : POOL_MEMORY_FULL;
}

static const struct pool_ops manager_pool_ops = {
	.boot_clone = pool_boot_clone,
	.usable = pool_usable,
	.discard = pool_discard,
	.write_record = pool_write_record,
	.memory = pool_memory,
	.vmm_pid = pool_vmm_pid,
};

/* ---- creation, background work, shutdown ---------------------------------------------------- */

/* Templates when the driver can restore snapshots; without them every boot is cold. */
/* A template build boots a VM: it waits for one of the boot slots creates and pool fills use. */
static bool template_take_slot(void *ctx, int64_t deadline_ms)
{
	struct manager *m = ctx;
	bool taken;

	pthread_mutex_lock(&m->lock);
	while (!m->shutting_down && m->booting >= m->cfg.max_concurrent_boots &&
	       cond_wait_until(&m->cond, &m->lock, deadline_ms))
		;
	taken = !m->shutting_down && m->booting < m->cfg.max_concurrent_boots;
	if (taken)
		m->booting++;
	pthread_mutex_unlock(&m->lock);
	return taken;
}

static void template_give_slot(void *ctx)
{
	struct manager *m = ctx;

	pthread_mutex_lock(&m->lock);
	boot_slot_release_locked(m);
	pthread_mutex_unlock(&m->lock);
}

static int template_nic_fd(void *ctx, struct ember_error **err)
{
	struct manager *m = ctx;

	if (m->cfg.egress == NULL)
		return ember_error_set(err, EMBER_E_UNAVAILABLE, 0, "no networking");
	return egress_dummy_tap(m->cfg.egress, err);
}

static void open_templates(struct manager *m)
{
	const struct template_limits limits = {
		.max_templates = m->cfg.max_templates,
		.take_boot_slot = template_take_slot,
		.give_boot_slot = template_give_slot,
		.nic_fd = template_nic_fd,
		.ctx = m,
	};
	char dir[PATH_MAX];
	struct ember_error *err = NULL;

	if (!m->cfg.snapshots || !vmm_driver_can_snapshot(m->driver))
		return;
	snprintf(dir, sizeof(dir), "%s/templates", m->run_dir);
	/* Already made when there is a state dir (open_snapshots). */
	if ((m->base_digest[0] == '\0' &&
	     template_fingerprint_base(manager_catalog(m), m->driver, m->base_digest, &err) < 0) ||
	    template_store_create(dir, manager_catalog(m), m->driver, m->base_digest,
				  m->cfg.boot_timeout_ms, &limits, &m->templates, &err) < 0) {
		log_event(LOG_WARN, NULL, "template.unavailable", -1, "%s; cold boots only",
			  err->message);
		ember_error_free(&err);
	}
}

/* Every series a scrape should show from the start at 0 (so rate() sees the first increment):
 * creates by the startup packs and modes, every exec outcome and guest failure kind. A pack a
 * reload adds gets its series when first used. */
static void seed_metrics(struct metrics *metrics, const struct catalog *catalog)
{
	static const char *const modes[] = { "cold", "clone", "pool" };
	static const char *const outcomes[] = { "ok", "nonzero_exit", "signal", "timeout", "oom",
						"error" };
	static const char *const kinds[] = { "vm_exited", "kernel_panic", "channel_broken",
					     "boot_failed", "boot_timeout", "clone_failed" };
	size_t i, k;

	for (i = 0; i < catalog->count; i++) {
		for (k = 0; k < ARRAY_SIZE(modes); k++) {
			const char *labels[] = { catalog->packs[i].name, modes[k] };

			metrics_count(metrics, METRICS_SANDBOXES_CREATED, labels, 0);
			if (k < 2)
				metrics_count(metrics, METRICS_SANDBOXES_FAILED, labels, 0);
		}
	}
	for (k = 0; k < ARRAY_SIZE(outcomes); k++)
		metrics_count(metrics, METRICS_EXECS, &outcomes[k], 0);
	for (k = 0; k < ARRAY_SIZE(kinds); k++)
		metrics_count(metrics, METRICS_GUEST_FAILURES, &kinds[k], 0);
}

/* Makes m->paused_dir (see struct manager); what no recovered sandbox needs in it is removed
 * once the recovery ran (sweep_paused). */
static int prepare_paused_dir(struct manager *m, struct ember_error **err)
{
	struct sha256_ctx hash;
	char hex[2 * SHA256_DIGEST_SIZE + 1];

	if (m->cfg.state_dir == NULL)
		return 0;
	if (mkdir(m->cfg.state_dir, 0700) < 0 && errno != EEXIST)
		return ember_error_sys(err, "create state directory `%s`", m->cfg.state_dir);
	if (dir_check_trusted(m->cfg.state_dir, "--state-dir", err) < 0)
		return -1;
	sha256_init(&hash);
	sha256_update(&hash, m->run_dir, strlen(m->run_dir));
	sha256_final_hex(&hash, hex);
	if (snprintf(m->paused_dir, sizeof(m->paused_dir), "%s/paused-%.16s", m->cfg.state_dir,
		     hex) >= (int)sizeof(m->paused_dir) - SANDBOX_ID_LEN - 16)
		return ember_error_set(err, EMBER_E_INVALID, ENAMETOOLONG,
				       "--state-dir `%s` is too long", m->cfg.state_dir);
	if (mkdir(m->paused_dir, 0700) < 0 && errno != EEXIST)
		return ember_error_sys(err, "create `%s`", m->paused_dir);
	return 0;
}

int manager_create(const struct manager_config *cfg, const struct catalog *catalog,
		   struct vmm_driver *driver, struct manager **out, struct ember_error **err)
{
	_cleanup_free_ struct manager *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	m->cfg = *cfg;
	snprintf(m->run_dir, sizeof(m->run_dir), "%s", cfg->run_dir);
	m->cfg.run_dir = m->run_dir;
	catalogs_init(&m->catalogs, catalog);
	m->driver = driver;
	m->tcg = strcmp(vmm_driver_accel_name(driver), "tcg") == 0;
	derive_max_sandboxes(m);
	if (mkdir(m->run_dir, 0700) < 0 && errno != EEXIST)
		return ember_error_sys(err, "create run directory `%s`", m->run_dir);
	/* VMM sockets, records and templates live here: nobody else may swap or write it. */
	if (dir_check_trusted(m->run_dir, "--run-dir", err) < 0)
		return -1;
	/* Absolute, so VMM command lines name it the same way whatever the daemon's cwd was. */
	if (realpath(cfg->run_dir, m->run_dir) == NULL)
		return ember_error_sys(err, "resolve run directory `%s`", cfg->run_dir);
	if (prepare_paused_dir(m, err) < 0 || open_snapshots(m, err) < 0)
		return -1;
	if (metrics_create(&m->metrics, err) < 0) {
		catalogs_release(&m->catalogs);
		snapshot_store_free(m->snapshots);
		return -1;
	}
	seed_metrics(m->metrics, catalog);
	open_templates(m);
	if (m->templates != NULL && cfg->pool_size > 0 &&
	    pool_create(catalog, cfg->pool_size, cfg->pool_packs, &manager_pool_ops, m, &m->pool, err) < 0) {
		template_store_free(m->templates, true);
		metrics_free(m->metrics);
		catalogs_release(&m->catalogs);
		snapshot_store_free(m->snapshots);
		return -1;
	}
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->reload_lock, NULL);
	pthread_mutex_init(&m->record_lock, NULL);
	cond_init_monotonic(&m->cond);
	if (pthread_create(&m->reaper, NULL, reaper_main, m) != 0) {
		pool_free(m->pool);
		template_store_free(m->templates, true);
		pthread_mutex_destroy(&m->lock);
		pthread_mutex_destroy(&m->record_lock);
		pthread_mutex_destroy(&m->reload_lock);
		pthread_cond_destroy(&m->cond);
		metrics_free(m->metrics);
		catalogs_release(&m->catalogs);
		snapshot_store_free(m->snapshots);
		return ember_error_set(err, EMBER_E_INTERNAL, 0, "cannot start the expiry thread");
	}
	*out = steal_pointer(&m);
	return 0;
}

const struct catalog *manager_catalog(struct manager *m)
{
	return catalogs_current(&m->catalogs);
}

/* Builds (or loads) the template of pack's default shape in the background, with --prewarm. */
static void prewarm_pack(struct manager *m, const struct pack *pack)
{
	struct template_shape shape = {
		.pack = pack,
		.vcpus = pack->defaults.vcpus,
		.memory_mib = pack->defaults.memory_mib,
		.overlay_mib = pack->defaults.overlay_mib,
	};

	if (m->templates != NULL && m->cfg.prewarm)
		template_prewarm(m->templates, &shape);
}

void manager_start_background(struct manager *m)
{
	const struct catalog *catalog = manager_catalog(m);
	size_t i;

	if (m->templates == NULL)
		return;
	for (i = 0; i < catalog->count; i++)
		prewarm_pack(m, &catalog->packs[i]);
	if (m->pool != NULL)
		pool_start(m->pool);
}

int manager_reload(struct manager *m, struct catalog_diff *diff, struct ember_error **err)
{
	const struct catalog *next;
	size_t i;
	int ret;

	pthread_mutex_lock(&m->reload_lock);
	ret = catalogs_reload(&m->catalogs, strcmp(vmm_driver_name(m->driver), "firecracker") == 0,
			      diff, &next, err);
	if (ret == 0 && diff->changes > 0) {
		/* Sandboxes keep the pack of the generation they were made from; only the pool
		 * and new creates move to the new one. */
		if (m->pool != NULL)
			pool_set_catalog(m->pool, next);
		for (i = 0; i < diff->count; i++) {
			if (diff->packs[i].change == CATALOG_ADDED ||
			    diff->packs[i].change == CATALOG_CHANGED)
				prewarm_pack(m, catalog_find(next, diff->packs[i].name));
		}
	}
	pthread_mutex_unlock(&m->reload_lock);
	return ret;
}

static void adopt_recovered(void *ctx, struct sandbox *sb)
{
	struct manager *m = ctx;

	pthread_mutex_lock(&m->lock);
	table_insert_locked(m, sb);
	pthread_mutex_unlock(&m->lock);
}

/* Removes from the paused dir what no paused sandbox of the table names (an earlier daemon's
 * forks in passing, sandboxes its recovery could not take); a kept saved VM keeps its memory
 * companion (vmm.h VMM_SAVED_MEM_SUFFIX). */
static void sweep_paused(struct manager *m)
{
	DIR *d;
	struct dirent *de;

	if (m->paused_dir[0] == '\0' || (d = opendir(m->paused_dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX];
		struct sandbox *sb;
		bool kept = false;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", m->paused_dir, de->d_name);
		pthread_mutex_lock(&m->lock);
		for (sb = m->list; sb != NULL && !kept; sb = sb->next) {
			const char *name = strrchr(sb->paused_state, '/');

			kept = sb->state == SANDBOX_PAUSED && name != NULL &&
			       (strcmp(sb->paused_state, path) == 0 ||
				vmm_saved_state_is_mem(de->d_name, name + 1));
		}
		pthread_mutex_unlock(&m->lock);
		if (!kept && unlinkat(dirfd(d), de->d_name, 0) == 0)
			log_event(LOG_INFO, NULL, "recover.cleaned", -1, "removed `%s`", path);
	}
	closedir(d);
}

/* Removes the nftables tables of sandboxes an earlier daemon left and nobody re-attached. */
static void sweep_networks(struct manager *m)
{
	const char **keep;
	struct sandbox *sb;
	unsigned removed;
	size_t n = 0;

	if (m->cfg.egress == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	keep = calloc(m->count + 1, sizeof(*keep));
	for (sb = m->list; sb != NULL && keep != NULL; sb = sb->next)
		keep[n++] = sb->id;
	pthread_mutex_unlock(&m->lock);
	if (keep == NULL)
		return;
	/* Nothing else runs yet: the ids stay valid without the lock. */
	removed = egress_sweep(m->cfg.egress, keep, n);
	free(keep);
	if (removed > 0)
		log_event(LOG_INFO, NULL, "recover.networks", -1, "removed %u stray sandbox network "
			  "tables", removed);
}

void manager_recover(struct manager *m, struct manager_recovery *out)
{
	struct recover_env env = { .run_dir = m->run_dir, .catalog = manager_catalog(m),
				   .driver = m->driver, .egress = m->cfg.egress,
				   .paused_dir = m->paused_dir[0] != '\0' ? m->paused_dir : NULL,
				   .base_digest = m->base_digest,
				   .adopt = adopt_recovered, .ctx = m };

	recover_run_dir(&env, out);
	sweep_networks(m);
	sweep_paused(m);
}

/* Destroys (or with keep_vms lets go of) every sandbox no other thread is destroying, then waits
 * for those to finish too. Lock held, no boot in progress. */
static void empty_table_locked(struct manager *m, bool keep_vms)
{
	for (;;) {
		struct sandbox *sb;
		bool keep;

		for (sb = m->list; sb != NULL; sb = sb->next) {
			if (sb->state != SANDBOX_DESTROYING)
				break;
		}
		if (sb == NULL)
			break;
		/* Failed sandboxes are not worth keeping: nothing could re-attach to them. A paused
		 * one is its record and saved VM: both stay. */
		keep = keep_vms && (sb->state == SANDBOX_READY || sb->state == SANDBOX_PAUSED);
		m->keep_templates = m->keep_templates || keep_vms;
		sb->state = SANDBOX_DESTROYING;
		pthread_mutex_unlock(&m->lock);
		if (keep)
			detach_and_free(m, sb);
		else
			destroy_and_free(m, sb);
		pthread_mutex_lock(&m->lock);
	}
	/* DELETEs and expiries running on other threads finish their own teardown. */
	while (m->count > 0)
		cond_wait_until(&m->cond, &m->lock, -1);
}

void manager_shutdown(struct manager *m, bool keep_vms)
{
	pthread_mutex_lock(&m->lock);
	m->shutting_down = true;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	if (m->pool != NULL)
		pool_stop(m->pool);
	pthread_mutex_lock(&m->lock);
	/* Boots in progress finish (or hit their deadline) on their own threads. */
	while (m->booting > 0)
		cond_wait_until(&m->cond, &m->lock, -1);
	empty_table_locked(m, keep_vms);
	pthread_mutex_unlock(&m->lock);
}

void manager_free(struct manager *m)
{
	if (m == NULL)
		return;
	manager_shutdown(m, false);
	pthread_mutex_lock(&m->lock);
	m->stop_reaper = true;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->reaper, NULL);
	pool_free(m->pool);
	/* Templates are a cache of this daemon's; a daemon leaving VMs for re-attach
	 * (keep_templates) also leaves the templates, which the next one reuses. */
	template_store_free(m->templates, !m->keep_templates);
	snapshot_store_free(m->snapshots);
	pthread_mutex_destroy(&m->lock);
	pthread_mutex_destroy(&m->record_lock);
	pthread_mutex_destroy(&m->reload_lock);
	pthread_cond_destroy(&m->cond);
	metrics_free(m->metrics);
	catalogs_release(&m->catalogs);
	free(m);
}

/* ---- create ------------------------------------------------------------------------------- */

/* The request's mounts against what this daemon and its driver can do, resolved into sb. */
static int validate_mounts(struct manager *m, const struct sandbox_mounts *want,
			   struct sandbox *sb, struct ember_error **err)
{
	size_t i;

	if (want == NULL || want->n == 0)
		return 0;
	sb->mounts = *want;
	if (vmm_driver_mount_kind(m->driver) == VMM_MOUNT_SHARE && !vmm_driver_jailed(m->driver))
		return ember_error_set(err, EMBER_E_INVALID, 0, "field `mounts`: the VMMs of this "
				       "daemon are not jailed (--no-jail), and only a jailed VMM may "
				       "see host directories");
	for (i = 0; i < sb->mounts.n; i++)
		if (sb->mounts.m[i].rw && vmm_driver_mount_kind(m->driver) == VMM_MOUNT_BLOCK)
			return ember_error_set(err, EMBER_E_INVALID, 0, "field `mounts[%zu].mode`: "
					       "the %s driver has no shared file system device, so a "
					       "mount can only be \"ro\" (a read-only image of the "
					       "directory made at create); use --vmm qemu for \"rw\"",
					       i, vmm_driver_name(m->driver));
	if (mount_policy_apply(m->cfg.mounts, &sb->mounts, err) < 0)
		return -1;
	for (i = 0; i < sb->mounts.n; i++)
		if (vmm_driver_mount_kind(m->driver) == VMM_MOUNT_BLOCK &&
		    (sb->mounts.m[i].uid == 0 || sb->mounts.m[i].gid == 0))
			return ember_error_set(err, EMBER_E_INVALID, 0, "field `mounts[%zu]`: under "
					       "%s a mount is an image of the directory built as its "
					       "uid and gid, never as root, and `%s` belongs to root: "
					       "give `uid` and `gid`", i, vmm_driver_name(m->driver),
					       sb->mounts.m[i].host);
	return 0;
}

static int validate_create(struct manager *m, const struct sandbox_create_request *req,
			   struct sandbox *sb, struct ember_error **err)
{
	const char *name = req->language_pack != NULL ? req->language_pack : "python";
	const struct catalog *catalog = manager_catalog(m);
	const struct pack *pack = catalog_find(catalog, name);

	if (pack == NULL) {
		char names[512];

		catalog_names(catalog, names, sizeof(names));
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "unknown language_pack `%.64s`; available packs: %s", name,
				       names);
	}
	sb->vcpus = req->vcpus != 0 ? req->vcpus : pack->defaults.vcpus;
	sb->memory_mib = req->memory_mib != 0 ? req->memory_mib : pack->defaults.memory_mib;
	sb->timeout_s = req->timeout_s != 0 ? req->timeout_s : m->cfg.default_timeout_s;
	sb->overlay_mib = req->overlay_mib != 0 ? req->overlay_mib : pack->defaults.overlay_mib;
	if (sb->vcpus > m->cfg.max_vcpus)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "field `vcpus` must be between 1 and %u (daemon limit)",
				       m->cfg.max_vcpus);
	if (sb->memory_mib < 64 || sb->memory_mib > m->cfg.max_memory_mib)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "field `memory_mib` must be between 64 and %u (daemon limit)",
				       m->cfg.max_memory_mib);
	if (sb->timeout_s > m->cfg.max_timeout_s)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "field `timeout_s` must be between 1 and %u (daemon limit)",
				       m->cfg.max_timeout_s);
	if (req->idle_timeout_s > m->cfg.max_timeout_s)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "field `idle_timeout_s` must be between 1 and %u "
				       "(--max-timeout-s)", m->cfg.max_timeout_s);
	sb->idle_timeout_s = req->idle_timeout_s;
	sb->cpu_weight = req->cpu_weight != 0 ? req->cpu_weight : VMM_CPU_WEIGHT_DEFAULT;
	if (sb->cpu_weight > VMM_CPU_WEIGHT_MAX)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "field `cpu_weight` must be between 1 and %u",
				       VMM_CPU_WEIGHT_MAX);
	if (req->labels != NULL)
		sb->labels = *req->labels;
	if (req->env != NULL)
		sb->env = *req->env;
	if (req->network != NULL && req->network->mode != NET_MODE_NONE) {
		if (m->cfg.egress == NULL)
			return ember_error_set(err, EMBER_E_INVALID, 0, "field `network.mode`: this "
					       "daemon has no networking");
		if (egress_check(m->cfg.egress, req->network, err) < 0)
			return -1;
		sb->want_network = req->network;
	}
	if (validate_mounts(m, req->mounts, sb, err) < 0)
		return -1;
	if (req->from_state != NULL && req->from_pack_digest != NULL &&
	    strcmp(req->from_pack_digest, pack->sha256) != 0)
		return ember_error_set(err, EMBER_E_CONFLICT, 0,
				       "pack `%s` changed (a reload) since its state was saved",
				       pack->name);
	if (req->from_state != NULL && (sb->want_network != NULL || sb->mounts.n > 0))
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "a sandbox made from a snapshot or a fork has no network "
				       "and no mounts");
	sb->birth_state = req->from_state;
	sb->birth_memory_fd = req->from_memory_fd;
	if (req->from_state != NULL)
		sb->boot_mode = req->from_boot_mode;
	/* The writable layer is a tmpfs in guest RAM: it may not exceed the sandbox's memory. */
	if (sb->overlay_mib < 8 || sb->overlay_mib > m->cfg.max_overlay_mib ||
	    sb->overlay_mib > sb->memory_mib)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "field `overlay_mib` must be between 8 and %u (the smaller of "
				       "--max-overlay-mib and memory_mib)",
				       m->cfg.max_overlay_mib < sb->memory_mib ? m->cfg.max_overlay_mib
									       : sb->memory_mib);
	sb->pack = pack;
	return 0;
}

/* Admits a new sandbox into the table (state booting) with a boot slot, or says why not. */
static int admit(struct manager *m, struct sandbox *sb, struct ember_error **err)
{
	enum { ADMITTED, SHUTTING_DOWN, FULL, NO_SLOT } verdict = ADMITTED;
	int64_t deadline = time_mono_ms() + m->cfg.boot_timeout_ms;

	pthread_mutex_lock(&m->lock);
	if (m->shutting_down) {
		verdict = SHUTTING_DOWN;
	} else if (m->count >= m->cfg.max_sandboxes) {
		verdict = FULL;
	} else {
		/* Count the sandbox now, so concurrent creates cannot overshoot max_sandboxes while
		 * this one queues for a boot slot. */
		table_insert_locked(m, sb);
		while (m->booting >= m->cfg.max_concurrent_boots && !m->shutting_down &&
		       cond_wait_until(&m->cond, &m->lock, deadline))
			;
		verdict = m->shutting_down ? SHUTTING_DOWN
			  : m->booting >= m->cfg.max_concurrent_boots ? NO_SLOT : ADMITTED;
		if (verdict == ADMITTED)
			m->booting++;
		else
			table_remove_locked(m, sb);
	}
	pthread_mutex_unlock(&m->lock);
	switch (verdict) {
	case ADMITTED:
		return 0;
	case SHUTTING_DOWN:
		return ember_error_set(err, EMBER_E_UNAVAILABLE, 0, "the daemon is shutting down");
	case FULL:
		return ember_error_set(err, EMBER_E_CAPACITY, 0,
				       "the daemon already runs its maximum of %u sandboxes (%s); "
				       "delete one first", m->cfg.max_sandboxes,
				       m->max_derived ? "what fits in host memory; --max-sandboxes "
							"sets another"
						      : "--max-sandboxes");
	case NO_SLOT:
		break;
	}
	return ember_error_set(err, EMBER_E_UNAVAILABLE, 0,
			       "%u sandboxes are already booting (--max-concurrent-boots) and none "
			       "finished in %u ms; retry later", m->cfg.max_concurrent_boots,
			       m->cfg.boot_timeout_ms);
}

static int start_and_connect(struct manager *m, struct sandbox *sb, struct vmm_boot_config *bcfg,
			     const struct proto_hello_mounts *mounts, struct ember_error **err)
{
	struct proto_hello_net net;
	struct proto_ready ready;
	int fd;

	if (vmm_start(m->driver, bcfg, &sb->vm, err) < 0)
		return -1;
	/* A VMM that opens its TAP by name (Firecracker) does so in vmm_connect_agent(): the
	 * daemon's descriptor must be gone by then; the TAP persists until egress_detach(). */
	if (sb->link != NULL && vmm_driver_tap_by_name(m->driver) &&
	    egress_link_close_tap(m->cfg.egress, sb->link, err) < 0)
		return -1;
	fd = vmm_connect_agent(sb->vm, bcfg->deadline_ms, err);
	if (fd < 0)
		return -1;
	if (sb->link != NULL)
		egress_link_hello(sb->link, &net);
	/* For a clone this HELLO is where it stops being the template: its own id, the host's
	 * clock and fresh entropy, and its own network, applied before READY
	 * (docs/snapshots.md). */
	return channel_open(fd, sb->id, sb->link != NULL ? &net : NULL, mounts, vmm_exit_fd(sb->vm),
			    bcfg->deadline_ms, &sb->ch, &ready, err);
}

/* Restores sb from its template sb->tpl, in at most CLONE_DEADLINE_MS of bcfg's deadline.
 * Returns 0 when the clone runs, -1 (err set) when the create fails, and 1 when it is to boot
 * cold instead: a template that does not restore is discarded and not trusted again. */
static int boot_clone(struct manager *m, struct sandbox *sb, struct vmm_boot_config *bcfg,
		      bool clone_only, struct ember_error **err)
{
	struct vmm_boot_config clone_cfg = *bcfg;
	struct ember_error *clone_err = NULL;
	static const char *const kind = "clone_failed";
	const char *pack = sb->pack->name;
	int64_t t0;

	clone_cfg.memory_file = template_memory_path(sb->tpl);
	clone_cfg.memory_fd = template_memory_fd(sb->tpl);
	clone_cfg.memory_shared = false;
	clone_cfg.restore_state = template_state_path(sb->tpl);
	clone_cfg.pack_image = template_pack_image(sb->tpl);
	if (time_mono_ms() + CLONE_DEADLINE_MS < clone_cfg.deadline_ms)
		clone_cfg.deadline_ms = time_mono_ms() + CLONE_DEADLINE_MS;
	sb->boot_mode = "clone";
	t0 = time_mono_ms();
	if (start_and_connect(m, sb, &clone_cfg, NULL, &clone_err) == 0) {
		metrics_observe_ms(m->metrics, METRICS_CLONE_SECONDS, &pack, time_mono_ms() - t0);
		return 0;
	}
	metrics_count(m->metrics, METRICS_GUEST_FAILURES, &kind, 1);
	/* The clone's console says how far its guest got. */
	wrap_with_console_tail(sb, &clone_err);
	log_event(LOG_WARN, sb->id, "sandbox.clone_failed", -1, "%s; %s",
		  clone_err->message, clone_only ? "no cold boot (pool fill)"
		  : time_ms_until(bcfg->deadline_ms) > 0 ? "booting cold"
							  : "no time left to boot cold");
	template_discard(sb->tpl);
	template_release(sb->tpl);
	sb->tpl = NULL;
	stop_vm(m, sb);
	if (clone_only || time_ms_until(bcfg->deadline_ms) == 0)
		return ember_error_propagate(err, clone_err);
	ember_error_free(&clone_err);
	return 1;
}

/* Whether the guest of sb's failed boot said its kernel has no timer (src/guest/clock.h): its
 * own words at the end of its console. A guest can only ask for its own boot again this way,
 * at most NO_TIMER_BOOT_RETRIES times and within the create's deadline. */
static bool guest_had_no_timer(struct sandbox *sb)
{
	char tail[CONSOLE_NO_TIMER_SEARCH_BYTES + 1];

	return console_tail_find(sb, tail, sizeof(tail), PROTO_CONSOLE_NO_TIMER) != NULL;
}

/* A cold boot without host directories. A guest whose kernel came up without a timer (a TCG
 * fault a host stall causes at random: docs/images.md) powers itself off at once; it is booted
 * again while the deadline allows, instead of the create failing. A networked sandbox is not:
 * a VMM that opens its TAP by name has had the daemon's descriptor closed by then. */
static int boot_cold(struct manager *m, struct sandbox *sb, struct vmm_boot_config *bcfg,
		     struct ember_error **err)
{
	static const char *const kind = "boot_failed";
	const char *pack = sb->pack->name;
	struct ember_error *boot_err = NULL;
	int64_t t0 = time_mono_ms();
	unsigned retries = 0;

	sb->boot_mode = "cold";
	while (start_and_connect(m, sb, bcfg, NULL, &boot_err) < 0) {
		if (!guest_had_no_timer(sb))
			return ember_error_propagate(err, boot_err);
		if (retries == NO_TIMER_BOOT_RETRIES || sb->link != NULL ||
		    time_ms_until(bcfg->deadline_ms) == 0) {
			ember_error_free(&boot_err);
			return ember_error_set(err, EMBER_E_GUEST, 0,
					       "%s in %u boot(s) in a row (under software emulation "
					       "a host stall can disable the guest's timer: see "
					       "docs/images.md)", PROTO_CONSOLE_NO_TIMER, retries + 1);
		}
		retries++;
		metrics_count(m->metrics, METRICS_GUEST_FAILURES, &kind, 1);
		wrap_with_console_tail(sb, &boot_err);
		log_event(LOG_WARN, sb->id, "sandbox.boot_retry", time_mono_ms() - t0,
			  "%s; booting again (%u of %u)", boot_err->message, retries,
			  NO_TIMER_BOOT_RETRIES);
		ember_error_free(&boot_err);
		stop_vm(m, sb);
	}
	metrics_observe_ms(m->metrics, METRICS_BOOT_SECONDS, &pack, time_mono_ms() - t0);
	return 0;
}

/* What a cold boot with host directories hands its driver and its guest; the descriptors are
 * open while the VMM starts (-1 otherwise). */
struct boot_mounts {
	struct vmm_mount vmm[SANDBOX_MOUNTS_MAX];
	char images[SANDBOX_MOUNTS_MAX][PATH_MAX];
	struct proto_hello_mounts hello;
};

static void boot_mounts_close(struct boot_mounts *bm, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (bm->vmm[i].dir_fd >= 0) {
			close(bm->vmm[i].dir_fd);
			bm->vmm[i].dir_fd = -1;
		}
}

/* Checks each of sb's directories a last time (sandbox_mount_open) and, for a driver that
 * shows them as disks, makes their read-only images in the run dir (removed with it). Fills
 * bcfg's mounts and the HELLO's. On failure every descriptor is closed. */
static int prepare_mounts(struct manager *m, struct sandbox *sb, struct boot_mounts *bm,
			  struct vmm_boot_config *bcfg, struct ember_error **err)
{
	bool block = vmm_driver_mount_kind(m->driver) == VMM_MOUNT_BLOCK;
	size_t i;

	for (i = 0; i < sb->mounts.n; i++)
		bm->vmm[i].dir_fd = -1;
	for (i = 0; i < sb->mounts.n; i++) {
		const struct sandbox_mount *sm = &sb->mounts.m[i];
		struct vmm_mount *vm = &bm->vmm[i];
		struct proto_hello_mount *hm = &bm->hello.m[i];

		vm->dir_fd = sandbox_mount_open(sm, i, err);
		if (vm->dir_fd < 0)
			goto fail;
		vm->host = sm->host;
		vm->rw = sm->rw;
		vm->uid = sm->uid;
		vm->gid = sm->gid;
		hm->readonly = !sm->rw;
		snprintf(hm->path, sizeof(hm->path), "%s", sm->guest);
		if (!block) {
			hm->fs = PROTO_MOUNT_9P;
			snprintf(hm->source, sizeof(hm->source), "emberd%zu", i);
			continue;
		}
		hm->fs = PROTO_MOUNT_SQUASHFS;
		snprintf(hm->source, sizeof(hm->source), "vd%c", (char)('b' + i));
		snprintf(bm->images[i], sizeof(bm->images[i]), "%s/mount%zu.squashfs", sb->run_dir, i);
		if (mount_image_build(vm->dir_fd, bm->images[i], sm->uid, sm->gid,
				      (uint64_t)m->cfg.max_mount_image_mib << 20, bcfg->deadline_ms,
				      err) < 0) {
			ember_error_wrap(err, "field `mounts[%zu].host`", i);
			goto fail;
		}
		vm->image = bm->images[i];
	}
	bm->hello.n = sb->mounts.n;
	bcfg->mounts = bm->vmm;
	bcfg->nmounts = sb->mounts.n;
	return 0;
fail:
	boot_mounts_close(bm, i + 1);
	return -1;
}

/* A cold boot of a sandbox with host directories (never a clone, never pooled). */
static int boot_cold_with_mounts(struct manager *m, struct sandbox *sb,
				 struct vmm_boot_config *bcfg, struct ember_error **err)
{
	_cleanup_free_ struct boot_mounts *bm = calloc(1, sizeof(*bm));
	const char *pack = sb->pack->name;
	int64_t t0 = time_mono_ms();
	int ret;

	if (bm == NULL)
		return ember_error_oom(err);
	if (prepare_mounts(m, sb, bm, bcfg, err) < 0)
		return -1;
	sb->boot_mode = "cold";
	ret = start_and_connect(m, sb, bcfg, &bm->hello, err);
	boot_mounts_close(bm, sb->mounts.n);
	if (ret < 0) {
		/* The guest refused a mount point its tree cannot have: the request's. */
		if (err != NULL && *err != NULL && (*err)->kind == EMBER_E_INVALID)
			ember_error_wrap(err, "field `mounts`");
		return -1;
	}
	metrics_observe_ms(m->metrics, METRICS_BOOT_SECONDS, &pack, time_mono_ms() - t0);
	return 0;
}

/* Starts the VM: restored from its shape's template when there is one (a clone), else booted
 * cold, which also gets the template built in the background for the next create. With
 * clone_only (pool fills) there is no cold fallback. */
static int boot_vm(struct manager *m, struct sandbox *sb, bool clone_only,
		   struct ember_error **err)
{
	struct template_shape shape = { .pack = sb->pack, .vcpus = sb->vcpus,
					.memory_mib = sb->memory_mib,
					.overlay_mib = sb->overlay_mib, .nic = sandbox_networked(sb) };
	struct vmm_boot_config bcfg = { 0 };
	const char *pack = sb->pack->name;
	char cmdline_extra[128];
	int64_t t0;

	if (snprintf(sb->run_dir, sizeof(sb->run_dir), "%s/%s", m->run_dir, sb->id) >=
	    (int)sizeof(sb->run_dir))
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "run dir too long");
	if (mkdir(sb->run_dir, 0700) < 0) {
		sb->run_dir[0] = '\0';
		return ember_error_sys(err, "create sandbox directory");
	}
	template_boot_config(&shape, manager_catalog(m), &bcfg, cmdline_extra, sizeof(cmdline_extra));
	bcfg.sandbox_id = sb->id;
	bcfg.run_dir = sb->run_dir;
	bcfg.deadline_ms = time_mono_ms() + m->cfg.boot_timeout_ms;
	if (shape.nic) {
		struct egress_link *link;

		if (egress_attach(m->cfg.egress, sb->id, sb->run_dir, sb->want_network, &link,
				  err) < 0)
			return -1;
		pthread_mutex_lock(&m->lock);
		sb->link = link;
		pthread_mutex_unlock(&m->lock);
		bcfg.tap_fd = egress_link_tap_fd(link);
		bcfg.tap_name = egress_link_tap_name(link);
	}
	/* A fork's or a snapshot's: the saved VM goes on as this sandbox (a fork base's as a clone
	 * of it: its RAM shared copy-on-write with the other forks). */
	if (sb->birth_state != NULL) {
		if (sb->birth_memory_fd > 0) {
			bcfg.memory_fd = sb->birth_memory_fd;
			bcfg.restore_state = sb->birth_state;
		} else {
			bcfg.resume_state = sb->birth_state;
		}
		t0 = time_mono_ms();
		if (start_and_connect(m, sb, &bcfg, NULL, err) < 0)
			return -1;
		metrics_observe_ms(m->metrics, METRICS_BOOT_SECONDS, &pack, time_mono_ms() - t0);
		return 0;
	}
	/* With host directories it boots cold: a snapshot has no device for them. */
	if (sb->mounts.n > 0)
		return boot_cold_with_mounts(m, sb, &bcfg, err);
	/* A pool fill comes with its template already acquired. A VMM that opens its TAP by name
	 * would restore a snapshot naming the template's TAP: networked, it always boots cold. */
	if (sb->tpl == NULL && m->templates != NULL &&
	    !(shape.nic && vmm_driver_tap_by_name(m->driver)))
		sb->tpl = template_acquire(m->templates, &shape);
	if (sb->tpl != NULL) {
		int ret = boot_clone(m, sb, &bcfg, clone_only, err);

		if (ret <= 0)
			return ret;
	}
	if (clone_only)
		return ember_error_set(err, EMBER_E_UNAVAILABLE, 0, "no template ready yet");
	return boot_cold(m, sb, &bcfg, err);
}

/* Hands a pooled clone to a validated request (want) and puts it in the table, filling info
 * while it is certainly alive. Returns false when the pool has none to give. */
static bool create_from_pool(struct manager *m, const struct sandbox *want,
			     struct sandbox_info *info)
{
	struct sandbox *sb = NULL;

	if (m->pool == NULL || !is_default_shape(want))
		return false;
	pthread_mutex_lock(&m->lock);
	if (!m->shutting_down && m->count < m->cfg.max_sandboxes)
		sb = pool_take(m->pool, want->pack);
	if (sb != NULL) {
		sb->state = SANDBOX_READY;
		sb->timeout_s = want->timeout_s;
		sb->idle_timeout_s = want->idle_timeout_s;
		sb->cpu_weight = want->cpu_weight;
		sb->labels = want->labels;
		sb->env = want->env;
		sb->created_wall_ns = time_wall_ns();
		sb->created_mono_ms = time_mono_ms();
		sb->expires_mono_ms = sb->created_mono_ms + (int64_t)sb->timeout_s * 1000;
		sandbox_touch_locked(sb);
		sb->boot_ms = 0;
		sb->refs++; /* until the pool's thread wrote its record */
		table_insert_locked(m, sb);
		m->created_total++;
		fill_info_locked(sb, info);
	}
	pthread_mutex_unlock(&m->lock);
	if (sb != NULL) {
		/* It waited at idle priority (vmm.h); it serves a client from now on. */
		if (sb->cpu_weight != VMM_CPU_WEIGHT_DEFAULT)
			vmm_set_cpu_weight(sb->vm, sb->cpu_weight);
		vmm_set_priority(sb->vm, VMM_PRIO_SERVING);
		pool_write_record_later(m->pool, sb);
	}
	return sb != NULL;
}

/* A failed create's counters: by pack and the mode tried last, and, when the guest or its VMM
 * was the cause (not the host: a directory, a TAP), a guest failure of its kind. */
static void count_boot_failure(struct manager *m, const struct sandbox *sb,
			       const struct ember_error *err)
{
	const char *labels[] = { sb->pack->name, sb->boot_mode != NULL ? sb->boot_mode : "cold" };
	const char *kind = NULL;

	metrics_count(m->metrics, METRICS_SANDBOXES_FAILED, labels, 1);
	if (err != NULL && err->kind == EMBER_E_GUEST_TIMEOUT)
		kind = "boot_timeout";
	else if (err != NULL && err->kind == EMBER_E_GUEST)
		kind = "boot_failed";
	if (kind != NULL)
		metrics_count(m->metrics, METRICS_GUEST_FAILURES, &kind, 1);
}

/* After a failed boot: removes everything the sandbox left and its table entry. */
static int boot_failed(struct manager *m, struct sandbox *sb, int64_t t0,
		       struct ember_error **err)
{
	wrap_with_console_tail(sb, err);
	ember_error_wrap(err, "boot sandbox");
	log_event(LOG_ERROR, sb->id, "sandbox.boot_failed", time_mono_ms() - t0, "%s",
		  err != NULL && *err != NULL ? (*err)->message : "");
	teardown(m, sb);
	pthread_mutex_lock(&m->lock);
	boot_slot_release_locked(m);
	m->create_failures_total++;
	table_remove_locked(m, sb);
	pthread_mutex_unlock(&m->lock);
	/* A guest that never answered is a gateway timeout; the rest is a guest failure. */
	if (err != NULL && *err != NULL && (*err)->kind == EMBER_E_PROTOCOL)
		(*err)->kind = EMBER_E_GUEST;
	count_boot_failure(m, sb, err != NULL ? *err : NULL);
	free(sb);
	return -1;
}

static void count_created(struct manager *m, const struct sandbox_info *info, int64_t ms)
{
	const char *labels[] = { info->language_pack, info->boot_mode };

	metrics_count(m->metrics, METRICS_SANDBOXES_CREATED, labels, 1);
	metrics_observe_ms(m->metrics, METRICS_CREATE_SECONDS, labels, ms);
}

/* Boots an admitted sandbox (in the table, booting, a boot slot held) and makes it ready. */
static int boot_admitted(struct manager *m, struct sandbox *sb, int64_t t0,
			 struct sandbox_info *info, struct ember_error **err)
{
	log_event(LOG_INFO, sb->id, "sandbox.booting", -1, "pack=%s vcpus=%u memory_mib=%u",
		  sb->pack->name, sb->vcpus, sb->memory_mib);
	if (boot_vm(m, sb, false, err) < 0)
		return boot_failed(m, sb, t0, err);
	/* Spawned serving at the default weight (vmm.h); only another weight needs a change. */
	if (sb->cpu_weight != VMM_CPU_WEIGHT_DEFAULT) {
		vmm_set_cpu_weight(sb->vm, sb->cpu_weight);
		vmm_set_priority(sb->vm, VMM_PRIO_SERVING);
	}
	pthread_mutex_lock(&m->lock);
	boot_slot_release_locked(m);
	sb->want_network = NULL; /* the request's: the link holds the policy from now on */
	sb->state = SANDBOX_READY;
	sb->boot_ms = time_mono_ms() - t0;
	sb->expires_mono_ms = time_mono_ms() + (int64_t)sb->timeout_s * 1000;
	sandbox_touch_locked(sb);
	sb->refs++; /* until its record is written */
	m->created_total++;
	fill_info_locked(sb, info);
	pthread_mutex_unlock(&m->lock);
	record_and_release(m, sb);
	count_created(m, info, time_mono_ms() - t0);
	log_event(LOG_INFO, info->id, "sandbox.ready", info->boot_ms, "vmm_pid=%d",
		  (int)info->vmm_pid);
	return 0;
}

int manager_create_sandbox(struct manager *m, const struct sandbox_create_request *req,
			   struct sandbox_info *info, struct ember_error **err)
{
	_cleanup_free_ struct sandbox *sb = calloc(1, sizeof(*sb));
	_cleanup_free_ struct snapshot_info *snap = calloc(1, sizeof(*snap));
	struct sandbox_create_request resolved;
	char snap_state[PATH_MAX];
	int64_t t0 = time_mono_ms();
	uint64_t held_mib;
	int rc;

	if (sb == NULL || snap == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	if (req->from_snapshot != NULL) {
		if (resolve_snapshot(m, req, &resolved, snap, snap_state, err) < 0)
			return -1;
		req = &resolved;
	}
	if (validate_create(m, req, sb, err) < 0 ||
	    id_generate(SANDBOX_ID_PREFIX, sb->id, sizeof(sb->id), err) < 0)
		return -1;
	if (sb->birth_state == NULL && create_from_pool(m, sb, info)) {
		count_created(m, info, time_mono_ms() - t0);
		log_event(LOG_INFO, info->id, "sandbox.ready", time_mono_ms() - t0,
			  "from the warm pool, vmm_pid=%d", (int)info->vmm_pid);
		return 0;
	}
	sb->state = SANDBOX_BOOTING;
	sb->created_wall_ns = time_wall_ns();
	sb->created_mono_ms = t0;
	sb->last_activity_mono_ms = t0;
	/* A pooled clone's memory is already taken; a new VM's must still be there. */
	if (memory_admit(m, sb->memory_mib, &held_mib, err) < 0)
		return -1;
	if (admit(m, sb, err) < 0) {
		memory_release(m, held_mib);
		return -1;
	}
	/* In the table now: boot_admitted frees it or leaves it there. */
	rc = boot_admitted(m, steal_pointer(&sb), t0, info, err);
	memory_release(m, held_mib);
	return rc;
}

/* ---- reads and requests --------------------------------------------------------------------- */

/* A reference on a ready networked sandbox's link for a read or change of its network (no
 * activity: reading counters does not keep a sandbox alive). NULL otherwise: 404, or 409 with
 * *mode telling what network it has (none, or one not ready). */
static struct sandbox *acquire_link(struct manager *m, const char *id, enum net_mode *mode,
				    struct ember_error **err)
{
	struct sandbox *sb;

	*mode = NET_MODE_NONE;
	pthread_mutex_lock(&m->lock);
	sb = table_find_locked(m, id);
	if (sb == NULL) {
		ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no sandbox `%.64s`", id);
	} else if (sb->link == NULL ||
		   (sb->state != SANDBOX_READY && sb->state != SANDBOX_FAILED)) {
		/* No network, or one being made or removed: only its mode can be told. */
		*mode = sb->link != NULL ? egress_link_mode(sb->link)
			: sb->want_network != NULL ? sb->want_network->mode : NET_MODE_NONE;
		ember_error_set(err, EMBER_E_CONFLICT, 0, "sandbox `%s` %s", sb->id,
				*mode == NET_MODE_NONE ? "has no network (it was created with "
							 "network mode none)"
						       : "is not ready");
		sb = NULL;
	} else {
		sb->refs++;
	}
	pthread_mutex_unlock(&m->lock);
	return sb;
}

static void release_link(struct manager *m, struct sandbox *sb)
{
	pthread_mutex_lock(&m->lock);
	sb->refs--;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

json_t *manager_network_json(struct manager *m, const char *id, struct ember_error **err)
{
	struct ember_error *why = NULL;
	enum net_mode mode;
	struct sandbox *sb = acquire_link(m, id, &mode, &why);
	json_t *obj;

	if (sb == NULL) {
		if (why->kind == EMBER_E_NOT_FOUND) {
			ember_error_propagate(err, why);
			return NULL;
		}
		ember_error_free(&why);
		return json_pack("{s:s}", "mode", net_mode_name(mode));
	}
	obj = egress_link_json(m->cfg.egress, sb->link);
	release_link(m, sb);
	if (obj == NULL)
		ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	return obj;
}

int manager_network_update(struct manager *m, const char *id, const struct net_policy *patch,
			   bool has_deny, struct ember_error **err)
{
	enum net_mode mode;
	struct sandbox *sb = acquire_link(m, id, &mode, err);
	int ret;

	if (sb == NULL)
		return -1;
	ret = egress_update(m->cfg.egress, sb->link, patch, has_deny, err);
	release_link(m, sb);
	if (ret == 0)
		log_event(LOG_INFO, id, "sandbox.network_updated", -1, "allow=%zu entries",
			  patch->nallow);
	return ret;
}

int manager_get(struct manager *m, const char *id, struct sandbox_info *info,
		struct ember_error **err)
{
	struct sandbox *sb;

	pthread_mutex_lock(&m->lock);
	sb = table_find_locked(m, id);
	if (sb != NULL) {
		/* what is true now, not at the reaper's last round */
		mark_failed_if_broken_locked(m, sb);
		fill_info_locked(sb, info);
	}
	pthread_mutex_unlock(&m->lock);
	if (sb == NULL)
		return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no sandbox `%.64s`", id);
	return 0;
}

int manager_console(struct manager *m, const char *id, void *out, size_t size, size_t *len,
		    uint64_t *total, struct ember_error **err)
{
	struct sandbox *sb;

	*len = 0;
	*total = 0;
	pthread_mutex_lock(&m->lock);
	sb = table_find_locked(m, id);
	/* While booting, vm belongs to the booting thread alone (see fill_info_locked); after
	 * that it changes only under the lock. The copy never waits (vmm_console_tail). */
	if (sb != NULL && sb->state != SANDBOX_BOOTING && sb->vm != NULL)
		*len = vmm_console_tail(sb->vm, out, size, total);
	if (sb != NULL && sb->state == SANDBOX_READY)
		sandbox_touch_locked(sb);
	pthread_mutex_unlock(&m->lock);
	if (sb == NULL)
		return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no sandbox `%.64s`", id);
	return 0;
}

int manager_list(struct manager *m, struct sandbox_info **infos, size_t *count,
		 struct ember_error **err)
{
	struct sandbox *sb;
	size_t n = 0;

	pthread_mutex_lock(&m->lock);
	*infos = calloc(m->count + 1, sizeof(**infos));
	if (*infos == NULL) {
		pthread_mutex_unlock(&m->lock);
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	for (sb = m->list; sb != NULL; sb = sb->next)
		fill_info_locked(sb, &(*infos)[n++]);
	pthread_mutex_unlock(&m->lock);
	*count = n;
	return 0;
}

/* 409: a request the sandbox's state does not take (a paused one says how to go on). */
static int state_conflict(struct ember_error **err, const char *id, enum sandbox_state state)
{
	return ember_error_set(err, EMBER_E_CONFLICT, 0, "sandbox `%s` is %s%s", id,
			       sandbox_state_name(state),
			       state == SANDBOX_PAUSED ? ": POST /sandboxes/{id}/resume first" : "");
}

/* Takes a reference on a ready sandbox for a channel request, or says why it cannot. */
static struct sandbox *acquire_ready(struct manager *m, const char *id, struct ember_error **err)
{
	struct sandbox *sb;

	pthread_mutex_lock(&m->lock);
	sb = table_find_locked(m, id);
	if (sb == NULL) {
		ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no sandbox `%.64s`", id);
	} else if (sb->state == SANDBOX_FAILED) {
		ember_error_set(err, EMBER_E_GUEST, 0, "sandbox `%s` has failed: %s", sb->id,
				sb->failure);
		sb = NULL;
	} else if (sb->state != SANDBOX_READY) {
		state_conflict(err, sb->id, sb->state);
		sb = NULL;
	} else {
		sb->refs++;
		sandbox_touch_locked(sb);
	}
	pthread_mutex_unlock(&m->lock);
	return sb;
}

/* After a failed request (lock held): whether the sandbox itself failed, and what the caller
 * is told (409 when it was destroyed under the request, 502 when its guest broke). */
static void explain_failure_locked(struct manager *m, struct sandbox *sb,
				   struct ember_error **err)
{
	if (err != NULL && *err != NULL && !ember_error_is_static(*err)) {
		if (sb->state == SANDBOX_DESTROYING) {
			(*err)->kind = EMBER_E_CONFLICT;
			snprintf((*err)->message, sizeof((*err)->message),
				 "sandbox `%s` was destroyed while the request ran", sb->id);
		}
		mark_failed_if_broken_locked(m, sb);
		/* Whoever marked it failed (this request or, racing it, the reaper): the guest
		 * failed, whatever the channel said on the way. */
		if (sb->state == SANDBOX_FAILED && (*err)->kind == EMBER_E_PROTOCOL)
			(*err)->kind = EMBER_E_GUEST;
	}
}

/* Drops a reference; after a failed request, decides whether the sandbox itself failed. */
static void release_after(struct manager *m, struct sandbox *sb, struct ember_error **err,
			  bool failed)
{
	pthread_mutex_lock(&m->lock);
	if (failed)
		explain_failure_locked(m, sb, err);
	sb->refs--;
	sandbox_touch_locked(sb);
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

/* The environment a program of the sandbox starts with: its pack's own entries (an imported
 * image's Env) first, then the sandbox's (sandboxenv.h), then the request's, into out (max
 * entries + NULL); the guest keeps the later of two entries of one name, so the request's win.
 * The sandbox's entries point into sb, which the caller's reference keeps. */
static int pack_env(const struct sandbox *sb, char *const *env, size_t envc, size_t max,
		    char **out, size_t *outc, struct ember_error **err)
{
	const struct pack *pack = sb->pack;
	size_t i, n = 0, own = pack->envc + sb->env.count;

	if (own + envc > max)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "field `env` must have at most %zu entries in this sandbox "
				       "(pack `%s` sets %zu, the sandbox %zu)",
				       max - (own < max ? own : max), pack->name, pack->envc,
				       sb->env.count);
	for (i = 0; i < pack->envc; i++)
		out[n++] = pack->env[i];
	n += sandbox_env_entries(&sb->env, out + n, sb->env.count);
	for (i = 0; i < envc; i++)
		out[n++] = env[i];
	out[n] = NULL;
	*outc = n;
	return 0;
}

/* What the pack puts in a request running its interpreter on code: the interpreter and how it
 * takes code (catalog.h `code_argument`: then at most PROTO_CODE_ARG_MAX bytes; not for code run
 * in a context, whose own interpreter reads it), the pack's environment before the request's
 * (into env_buf, PROTO_ENV_MAX + 1 entries, which must outlive creq), and its directory when the
 * request names none. */
static int pack_request(const struct sandbox *sb, const char *code, size_t code_len,
			bool in_context, char *const *env, size_t envc, char **env_buf,
			struct channel_exec_request *creq, struct ember_error **err)
{
	const struct pack *pack = sb->pack;
	bool code_argument = pack->code_argument && !in_context;

	if (code_argument && code_len > PROTO_CODE_ARG_MAX)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "field `code` must be at most %u bytes in pack `%s` (it passes "
				       "code to its interpreter as an argument)", PROTO_CODE_ARG_MAX,
				       pack->name);
	if (pack_env(sb, env, envc, PROTO_ENV_MAX, env_buf, &creq->envc, err) < 0)
		return -1;
	creq->env = env_buf;
	creq->argv = pack->interpreter;
	creq->argc = pack->interpreter_argc;
	creq->code = code;
	creq->code_len = code_len;
	creq->code_argument = code_argument;
	if (creq->cwd == NULL)
		creq->cwd = pack->cwd;
	return 0;
}

/* The channel request for an exec: the pack's defaults, checked against the daemon's limits. */
static int exec_request(const struct manager *m, const struct sandbox *sb,
			const struct sandbox_exec_request *req, char **env_buf,
			struct channel_exec_request *creq, struct ember_error **err)
{
	memset(creq, 0, sizeof(*creq));
	creq->timeout_ms = req->timeout_ms != 0 ? req->timeout_ms
						: sb->pack->defaults.exec_timeout_ms;
	if (creq->timeout_ms > m->cfg.max_exec_timeout_ms)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "field `timeout_ms` must be between 1 and %u (daemon limit)",
				       m->cfg.max_exec_timeout_ms);
	creq->output_limit = req->has_max_output ? req->max_output_bytes
						 : sb->pack->defaults.output_limit_bytes;
	if (creq->output_limit > m->cfg.max_output_bytes) {
		if (req->has_max_output)
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "field `max_output_bytes` must be at most %llu "
					       "(--max-output-bytes)",
					       (unsigned long long)m->cfg.max_output_bytes);
		creq->output_limit = m->cfg.max_output_bytes;
	}
	if (pack_request(sb, req->code, req->code_len, req->context_id != NULL, req->env,
			 req->envc, env_buf, creq, err) < 0)
		return -1;
	creq->stdin_data = req->stdin_data;
	creq->stdin_len = req->stdin_len;
	creq->has_stdin = req->has_stdin;
	creq->max_processes = m->cfg.max_processes;
	creq->sink = req->sink;
	creq->fresh_interpreter = req->fresh_interpreter;
	return 0;
}

/* An exec that reached the guest: its outcome (the first that applies, in this order) and its
 * latency. */
static void count_exec(struct manager *m, const char *pack, int ret,
		       const struct channel_exec_result *res, int64_t ms)
{
	const char *outcome = ret < 0 ? "error"
			      : res->exit.oom_killed ? "oom"
			      : res->exit.timed_out ? "timeout"
			      : res->exit.signal != 0 ? "signal"
			      : res->exit.exit_code == 0 ? "ok" : "nonzero_exit";

	metrics_count(m->metrics, METRICS_EXECS, &outcome, 1);
	metrics_observe_ms(m->metrics, METRICS_EXEC_SECONDS, &pack, ms);
}

static void log_exec(const char *id, int64_t t0, int ret, const struct channel_exec_result *res,
		     struct ember_error **err)
{
	if (ret == 0)
		log_event(res->cancelled ? LOG_WARN : LOG_INFO, id, "sandbox.exec",
			  time_mono_ms() - t0, "exit_code=%d signal=%d timed_out=%d%s",
			  res->exit.exit_code, res->exit.signal, res->exit.timed_out,
			  res->cancelled ? " cancelled=1 (no exit report within the grace after "
					   "its timeout)" : "");
	else
		log_event(LOG_WARN, id, "sandbox.exec_failed", time_mono_ms() - t0, "%s",
			  err != NULL && *err != NULL ? (*err)->message : "");
}

unsigned manager_max_exec_timeout_ms(const struct manager *m)
{
	return m->cfg.max_exec_timeout_ms;
}

int manager_exec(struct manager *m, const char *id, const struct sandbox_exec_request *req,
		 struct channel_exec_result *res, struct ember_error **err)
{
	struct channel_exec_request creq;
	char *env_buf[PROTO_ENV_MAX + 1];
	struct sandbox *sb;
	int64_t t0 = time_mono_ms();
	int ret;

	struct sandbox_context held;

	sb = acquire_ready(m, id, err);
	if (sb == NULL)
		return -1;
	if (exec_request(m, sb, req, env_buf, &creq, err) < 0) {
		release_after(m, sb, err, false);
		return -1;
	}
	pthread_mutex_lock(&m->lock);
	ret = req->context_id == NULL ? 0 : contexts_acquire(&sb->contexts, req->context_id, &held,
							      err);
	if (ret == 0)
		sb->execs_running++;
	pthread_mutex_unlock(&m->lock);
	if (ret < 0) {
		release_after(m, sb, err, false);
		return -1;
	}
	creq.context = req->context_id;
	ret = channel_exec(sb->ch, &creq, res, err);
	pthread_mutex_lock(&m->lock);
	sb->execs_running--;
	if (ret == 0) {
		sb->execs_run++;
		m->execs_total++;
	}
	if (req->context_id != NULL)
		contexts_release(&sb->contexts, req->context_id, ret == 0,
				 ret == 0 && res->exit.context.restarted);
	pthread_mutex_unlock(&m->lock);
	count_exec(m, sb->pack->name, ret, res, time_mono_ms() - t0);
	release_after(m, sb, err, ret < 0);
	log_exec(id, t0, ret, res, err);
	return ret;
}

/* --- code contexts --- */

/* How long an interpreter may take to start (the guest gives it GUEST_CONTEXT_START_MS). */
#define CONTEXT_OPEN_MS 75000
#define CONTEXT_CLOSE_MS 10000

int manager_context_create(struct manager *m, const char *id,
			   const struct sandbox_context_request *req, struct sandbox_context *out,
			   struct ember_error **err)
{
	struct proto_context msg = { .op = PROTO_CONTEXT_OPEN };
	struct sandbox *sb = acquire_ready(m, id, err);
	enum proto_context_language own;
	size_t i;
	int ret;

	if (sb == NULL)
		return -1;
	/* An interpreter context runs the pack's own interpreter, so only in a pack of that
	 * language; a shell context runs the image's /bin/sh, which every pack has. */
	own = pack_language(sb->pack);
	msg.language = req->language != PROTO_LANG_NONE ? req->language
		       : own != PROTO_LANG_NONE ? own : PROTO_LANG_PYTHON;
	if (msg.language != PROTO_LANG_SHELL && msg.language != own) {
		bool other = own != PROTO_LANG_NONE && own != PROTO_LANG_SHELL;

		ember_error_set(err, EMBER_E_INVALID, 0, "pack `%s` has no %s: use \"language\": "
				"%s%s%s\"shell\", or a %s sandbox", sb->pack->name,
				proto_context_language_name(msg.language), other ? "\"" : "",
				other ? proto_context_language_name(own) : "", other ? "\" or " : "",
				proto_context_language_name(msg.language));
		release_after(m, sb, err, false);
		return -1;
	}
	if (pack_env(sb, req->env, req->envc, PROTO_CONTEXT_ENV_MAX, msg.env, &msg.envc,
		     err) < 0) {
		release_after(m, sb, err, false);
		return -1;
	}
	pthread_mutex_lock(&m->lock);
	ret = contexts_reserve(&sb->contexts, m->cfg.max_contexts, msg.language, out, err);
	pthread_mutex_unlock(&m->lock);
	if (ret < 0) {
		release_after(m, sb, err, false);
		return -1;
	}
	snprintf(msg.id, sizeof(msg.id), "%s", out->id);
	if (msg.language != PROTO_LANG_SHELL) {
		for (i = 0; i < sb->pack->interpreter_argc && i < PROTO_CONTEXT_ARGV_MAX; i++)
			msg.argv[i] = sb->pack->interpreter[i];
		msg.argc = i;
	}
	msg.cwd = (char *)(req->cwd != NULL ? req->cwd : sb->pack->cwd);
	msg.max_processes = m->cfg.max_processes;
	ret = channel_context(sb->ch, &msg, time_mono_ms() + CONTEXT_OPEN_MS, NULL, err);
	pthread_mutex_lock(&m->lock);
	contexts_opened(&sb->contexts, out->id, ret == 0);
	if (ret == 0)
		contexts_get(&sb->contexts, out->id, out);
	pthread_mutex_unlock(&m->lock);
	if (ret == 0)
		log_event(LOG_INFO, id, "context.created", -1, "%s %s", out->id,
			  proto_context_language_name(out->language));
	/* A context that could not start is the request's failure, not the sandbox's. */
	if (ret < 0 && err != NULL && *err != NULL && (*err)->kind == EMBER_E_GUEST)
		ember_error_wrap(err, "context did not start");
	release_after(m, sb, err, ret < 0 && err != NULL && *err != NULL &&
				      (*err)->kind != EMBER_E_GUEST);
	return ret;
}

int manager_context_get(struct manager *m, const char *id, const char *cid,
			struct sandbox_context *out, struct ember_error **err)
{
	struct sandbox *sb = acquire_ready(m, id, err);
	bool found;

	if (sb == NULL)
		return -1;
	pthread_mutex_lock(&m->lock);
	found = contexts_get(&sb->contexts, cid, out);
	pthread_mutex_unlock(&m->lock);
	release_after(m, sb, err, false);
	if (!found)
		return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no context `%.40s` in this "
				       "sandbox", cid);
	return 0;
}

int manager_context_list(struct manager *m, const char *id, struct sandbox_context *out,
			 size_t *count, struct ember_error **err)
{
	struct sandbox *sb = acquire_ready(m, id, err);

	if (sb == NULL)
		return -1;
	pthread_mutex_lock(&m->lock);
	*count = contexts_list(&sb->contexts, out, SANDBOX_CONTEXTS_MAX);
	pthread_mutex_unlock(&m->lock);
	release_after(m, sb, err, false);
	return 0;
}

int manager_context_delete(struct manager *m, const char *id, const char *cid,
			   struct ember_error **err)
{
	struct proto_context msg = { .op = PROTO_CONTEXT_CLOSE };
	struct sandbox *sb = acquire_ready(m, id, err);
	struct ember_error *gerr = NULL;
	struct sandbox_context entry;
	bool found, opening = false;
	int ret;

	if (sb == NULL)
		return -1;
	pthread_mutex_lock(&m->lock);
	found = contexts_get(&sb->contexts, cid, &entry);
	/* One still starting is its create's to finish: removed now, its guest interpreter would
	 * outlive the table. */
	opening = found && entry.opening;
	if (found && !opening)
		contexts_remove(&sb->contexts, cid);
	pthread_mutex_unlock(&m->lock);
	if (!found || opening) {
		if (opening)
			ember_error_set(err, EMBER_E_CONFLICT, 0, "context `%s` is starting: delete "
					"it once its create answered", cid);
		else
			ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no context `%.40s` in this sandbox",
					cid);
		release_after(m, sb, err, false);
		return -1;
	}
	snprintf(msg.id, sizeof(msg.id), "%s", cid);
	ret = channel_context(sb->ch, &msg, time_mono_ms() + CONTEXT_CLOSE_MS, NULL, &gerr);
	if (ret < 0 && gerr != NULL && gerr->kind == EMBER_E_NOT_FOUND)
		ret = 0; /* its interpreter never started: nothing to stop */
	if (ret < 0)
		ember_error_propagate(err, steal_pointer(&gerr));
	ember_error_free(&gerr);
	release_after(m, sb, err, ret < 0);
	return ret;
}

int manager_context_restart(struct manager *m, const char *id, const char *cid,
			    struct sandbox_context *out, struct ember_error **err)
{
	struct proto_context msg = { .op = PROTO_CONTEXT_RESTART };
	struct sandbox *sb = acquire_ready(m, id, err);
	int ret;

	if (sb == NULL)
		return -1;
	pthread_mutex_lock(&m->lock);
	ret = contexts_acquire(&sb->contexts, cid, out, err);
	pthread_mutex_unlock(&m->lock);
	if (ret < 0) {
		release_after(m, sb, err, false);
		return -1;
	}
	snprintf(msg.id, sizeof(msg.id), "%s", cid);
	ret = channel_context(sb->ch, &msg, time_mono_ms() + CONTEXT_OPEN_MS, NULL, err);
	pthread_mutex_lock(&m->lock);
	contexts_release(&sb->contexts, cid, 0, 1);
	contexts_get(&sb->contexts, cid, out);
	pthread_mutex_unlock(&m->lock);
	release_after(m, sb, err, ret < 0 && err != NULL && *err != NULL &&
				      (*err)->kind != EMBER_E_GUEST);
	return ret;
}

int manager_ps(struct manager *m, const char *id, struct proto_process **procs, size_t *count,
	       struct ember_error **err)
{
	struct sandbox *sb = acquire_ready(m, id, err);
	int ret;

	if (sb == NULL)
		return -1;
	ret = channel_ps(sb->ch, time_mono_ms() + 10000, procs, count, err);
	release_after(m, sb, err, ret < 0);
	return ret;
}

int manager_set_timeout(struct manager *m, const char *id, unsigned timeout_s,
			struct sandbox_info *info, struct ember_error **err)
{
	struct sandbox *sb;
	enum sandbox_state state = SANDBOX_GONE;

	if (timeout_s < 1 || timeout_s > m->cfg.max_timeout_s)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "field `timeout_s` must be between 1 and %u (--max-timeout-s)",
				       m->cfg.max_timeout_s);
	pthread_mutex_lock(&m->lock);
	sb = table_find_locked(m, id);
	if (sb != NULL)
		state = sb->state;
	if (state == SANDBOX_READY || state == SANDBOX_FAILED) {
		sb->timeout_s = timeout_s;
		sb->expires_mono_ms = time_mono_ms() + (int64_t)timeout_s * 1000;
		sandbox_touch_locked(sb);
		sb->refs++; /* until its record is rewritten */
		fill_info_locked(sb, info);
	}
	pthread_mutex_unlock(&m->lock);
	if (sb == NULL)
		return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no sandbox `%.64s`", id);
	if (state != SANDBOX_READY && state != SANDBOX_FAILED)
		return state_conflict(err, id, state);
	log_event(LOG_INFO, id, "sandbox.timeout_set", -1, "expires in %u s", timeout_s);
	record_and_release(m, sb);
	return 0;
}

/* ---- pause and resume ---------------------------------------------------------------------- */

/* How long the guest gets to confirm a pause (it only has to queue one frame). */
#define PAUSE_QUIESCE_MS 10000

/* Takes sb from `from` to `to` for a pause or resume (a reference held until
 * pause_or_resume_end), or says why it cannot. Lock held. */
static int pause_or_resume_begin_locked(struct manager *m, struct sandbox *sb, const char *id,
					enum sandbox_state from, enum sandbox_state to,
					struct ember_error **err)
{
	if (sb == NULL)
		return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no sandbox `%.64s`", id);
	mark_failed_if_broken_locked(m, sb);
	if (sb->state != from)
		return ember_error_set(err, EMBER_E_CONFLICT, 0, "sandbox `%s` is %s, not %s", sb->id,
				       sandbox_state_name(sb->state), sandbox_state_name(from));
	if (to == SANDBOX_PAUSING) {
		if (m->paused_dir[0] == '\0' || !vmm_driver_can_save(m->driver))
			return ember_error_set(err, EMBER_E_CONFLICT, 0,
					       "this daemon cannot pause sandboxes (%s)",
					       m->paused_dir[0] == '\0' ? "no --state-dir"
					       : "its VMM driver cannot save a VM");
		if (sb->mounts.n > 0)
			return ember_error_set(err, EMBER_E_CONFLICT, 0,
					       "sandbox `%s` has host directories (mounts): a "
					       "paused VM cannot keep them", sb->id);
		if (sb->link != NULL)
			return ember_error_set(err, EMBER_E_CONFLICT, 0,
					       "sandbox `%s` has a network: pausing networked "
					       "sandboxes is not supported yet", sb->id);
	}
	sb->state = to;
	sb->refs++;
	return 0;
}

/* Looks id up and begins its transition (pause_or_resume_begin_locked); NULL with err. */
static struct sandbox *begin_transition(struct manager *m, const char *id,
					enum sandbox_state from, enum sandbox_state to,
					struct ember_error **err)
{
	struct sandbox *sb;
	int ret;

	pthread_mutex_lock(&m->lock);
	sb = table_find_locked(m, id);
	ret = pause_or_resume_begin_locked(m, sb, id, from, to, err);
	pthread_mutex_unlock(&m->lock);
	return ret < 0 ? NULL : sb;
}

/* A paused sandbox's lifetime clock stops; --max-paused-s runs instead. */
static void stop_lifetime(struct manager *m, struct sandbox *sb)
{
	int64_t now = time_mono_ms();

	pthread_mutex_lock(&m->lock);
	sb->paused_mono_ms = now;
	sb->lifetime_left_ms = sb->expires_mono_ms - now;
	if (sb->lifetime_left_ms < 1000)
		sb->lifetime_left_ms = 1000;
	sb->expires_mono_ms = now + (int64_t)m->cfg.max_paused_s * 1000;
	pthread_mutex_unlock(&m->lock);
}

/* Saves sb's VM (the channel quiesced) into its state file and stops the VMM. On failure
 * *quiesced tells whether the guest was already asked to stop talking (then the sandbox
 * cannot go on). */
static int pause_vm(struct manager *m, struct sandbox *sb, bool *quiesced,
		    struct ember_error **err)
{
	int64_t deadline = time_mono_ms() + m->cfg.boot_timeout_ms;
	struct vmm_instance *vm;

	*quiesced = false;
	if (snprintf(sb->paused_state, sizeof(sb->paused_state), "%s/%s.vmstate",
		     m->paused_dir, sb->id) >= (int)sizeof(sb->paused_state))
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "state dir too long");
	if (channel_suspend(sb->ch, time_mono_ms() + PAUSE_QUIESCE_MS, err) < 0) {
		*quiesced = (*err)->kind != EMBER_E_CONFLICT;
		return -1;
	}
	*quiesced = true;
	if (vmm_save(sb->vm, sb->paused_state, false, deadline, err) < 0) {
		/* The driver ran the VM on: the sandbox goes on as it was, if its guest does. */
		int fd = -1;

		vmm_saved_state_remove(sb->paused_state);
		/* Without a new stream the old one is tried, and breaks the channel if it is gone. */
		vmm_agent_after_save(sb->vm, time_mono_ms() + PAUSE_QUIESCE_MS, &fd, NULL);
		*quiesced = channel_resume(sb->ch, fd, vmm_exit_fd(sb->vm),
					   time_mono_ms() + PAUSE_QUIESCE_MS, NULL) < 0;
		return -1;
	}
	stop_lifetime(m, sb);
	save_record(m, sb); /* paused, before the VMM goes: a crash now loses nothing */
	pthread_mutex_lock(&m->lock);
	vm = steal_pointer(&sb->vm);
	pthread_mutex_unlock(&m->lock);
	vmm_stop(vm, time_mono_ms() + STOP_GRACE_MS, NULL);
	vmm_instance_free(vm);
	/* A clone's RAM is in the state file now: its template is free to go. */
	template_release(sb->tpl);
	sb->tpl = NULL;
	return 0;
}

/* Ends a pause or resume begun by pause_or_resume_begin_locked: `to` on success, else back
 * to `back` when nothing changed (quiesced false) or FAILED. A DELETE racing it wins: then
 * -1 (409) even for a ret of 0. Returns what the caller returns. */
static int pause_or_resume_end(struct manager *m, struct sandbox *sb, enum sandbox_state during,
			       int ret, enum sandbox_state to, enum sandbox_state back,
			       bool changed, struct sandbox_info *info, struct ember_error **err)
{
	pthread_mutex_lock(&m->lock);
	if (sb->state == during && ret == 0) {
		sb->state = to;
	} else if (sb->state == during && !changed) {
		sb->state = back;
	} else if (sb->state == during) {
		sb->state = SANDBOX_FAILED;
		/* Writers waiting for the resume (channel.h) learn now that none comes. */
		if (sb->ch != NULL)
			channel_abort(sb->ch, "the sandbox failed while paused");
		snprintf(sb->failure, sizeof(sb->failure), "%s %s: %s",
			 to == SANDBOX_READY && during == SANDBOX_PAUSING ? "saving its state"
			 : during == SANDBOX_PAUSING ? "pause" : "resume", "failed",
			 err != NULL && *err != NULL ? (*err)->message : "unknown reason");
		log_event(LOG_WARN, sb->id, "sandbox.failed", -1, "%s", sb->failure);
	} else if (ret == 0) {
		ember_error_set(err, EMBER_E_CONFLICT, 0, "sandbox `%s` was destroyed meanwhile",
				sb->id);
		ret = -1;
	}
	sandbox_touch_locked(sb);
	if (ret == 0 && info != NULL)
		fill_info_locked(sb, info);
	sb->refs--;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	return ret;
}

int manager_pause(struct manager *m, const char *id, struct sandbox_info *info,
		  struct ember_error **err)
{
	int64_t t0 = time_mono_ms();
	struct sandbox *sb = begin_transition(m, id, SANDBOX_READY, SANDBOX_PAUSING, err);
	bool quiesced = false;
	int ret;

	if (sb == NULL)
		return -1;
	ret = pause_vm(m, sb, &quiesced, err);
	if (ret < 0 && !quiesced)
		sb->paused_state[0] = '\0';
	ret = pause_or_resume_end(m, sb, SANDBOX_PAUSING, ret, SANDBOX_PAUSED, SANDBOX_READY,
				  quiesced, info, err);
	if (ret < 0)
		return ember_error_wrap(err, "pause `%s`", id);
	log_event(LOG_INFO, id, "sandbox.paused", time_mono_ms() - t0, "VM saved, VMM stopped");
	return 0;
}

/* Starts a VMM from sb's saved state and hands the restored guest to its channel. */
static int resume_vm(struct manager *m, struct sandbox *sb, bool *touched,
		     struct ember_error **err)
{
	struct template_shape shape = { .pack = sb->pack, .vcpus = sb->vcpus,
					.memory_mib = sb->memory_mib,
					.overlay_mib = sb->overlay_mib, .nic = false };
	struct vmm_boot_config bcfg = { 0 };
	struct vmm_instance *vm = NULL;
	char cmdline_extra[128];
	int fd;

	template_boot_config(&shape, manager_catalog(m), &bcfg, cmdline_extra,
			     sizeof(cmdline_extra));
	bcfg.sandbox_id = sb->id;
	bcfg.run_dir = sb->run_dir;
	bcfg.resume_state = sb->paused_state;
	bcfg.deadline_ms = time_mono_ms() + m->cfg.boot_timeout_ms;
	if (vmm_start(m->driver, &bcfg, &vm, err) < 0)
		goto fail;
	fd = vmm_connect_agent(vm, bcfg.deadline_ms, err);
	if (fd < 0)
		goto fail;
	if (sb->ch == NULL) {
		/* Paused under an earlier daemon: this one never knew its processes and contexts.
		 * A HELLO makes the guest start over (it ends them); memory and files stay. */
		struct proto_ready ready;
		struct channel *ch;

		if (channel_open(fd, sb->id, NULL, NULL, vmm_exit_fd(vm), bcfg.deadline_ms, &ch,
				 &ready, err) < 0)
			goto fail;
		pthread_mutex_lock(&m->lock);
		sb->ch = ch;
		pthread_mutex_unlock(&m->lock);
	} else {
		*touched = true; /* from here a failure leaves the guest's session in doubt */
		if (channel_resume(sb->ch, fd, vmm_exit_fd(vm), bcfg.deadline_ms, err) < 0)
			goto fail;
	}
	if (sb->cpu_weight != VMM_CPU_WEIGHT_DEFAULT) {
		vmm_set_cpu_weight(vm, sb->cpu_weight);
		vmm_set_priority(vm, VMM_PRIO_SERVING);
	}
	pthread_mutex_lock(&m->lock);
	sb->vm = vm;
	pthread_mutex_unlock(&m->lock);
	return 0;
fail:
	if (vm != NULL) {
		vmm_stop(vm, time_mono_ms() + STOP_GRACE_MS, NULL);
		vmm_instance_free(vm);
	}
	return -1;
}

int manager_resume(struct manager *m, const char *id, struct sandbox_info *info,
		   struct ember_error **err)
{
	int64_t t0 = time_mono_ms();
	struct sandbox *sb = begin_transition(m, id, SANDBOX_PAUSED, SANDBOX_RESUMING, err);
	char spent[PATH_MAX];
	bool touched = false;
	int ret;

	if (sb == NULL)
		return -1;
	/* A failure before the guest was reached leaves it paused, its saved VM intact. */
	ret = resume_vm(m, sb, &touched, err);
	if (ret == 0) {
		pthread_mutex_lock(&m->lock);
		sb->expires_mono_ms = time_mono_ms() + sb->lifetime_left_ms;
		sb->paused_mono_ms = 0;
		memcpy(spent, sb->paused_state, sizeof(spent));
		sb->paused_state[0] = '\0';
		pthread_mutex_unlock(&m->lock);
		/* The record says it runs before its saved state (spent now) goes. */
		save_record(m, sb);
		vmm_saved_state_remove(spent);
	}
	ret = pause_or_resume_end(m, sb, SANDBOX_RESUMING, ret, SANDBOX_READY, SANDBOX_PAUSED,
				  touched, info, err);
	if (ret < 0)
		return ember_error_wrap(err, "resume `%s`", id);
	log_event(LOG_INFO, id, "sandbox.resumed", time_mono_ms() - t0, "vmm_pid=%d",
		  (int)info->vmm_pid);
	return 0;
}

/* ---- forks and snapshots -------------------------------------------------------------------- */

/* Saves a ready sandbox's VM to path while it runs on (stopped meanwhile): a fork's or a
 * snapshot's source. copy gets its pack and shape, labels and environment (the pack outlives
 * the call: a sandbox's catalog generation stays while any sandbox of it does, and forks
 * made from it are such sandboxes). */
static int capture(struct manager *m, const char *id, const char *path,
		   struct sandbox *copy, struct ember_error **err)
{
	struct sandbox *sb;
	bool quiesced = false;
	int64_t deadline;
	int ret;

	pthread_mutex_lock(&m->lock);
	sb = table_find_locked(m, id);
	ret = pause_or_resume_begin_locked(m, sb, id, SANDBOX_READY, SANDBOX_PAUSING, err);
	if (ret == 0) {
		/* What forks and snapshots take of it (constant while it lives). */
		copy->pack = sb->pack;
		copy->vcpus = sb->vcpus;
		copy->memory_mib = sb->memory_mib;
		copy->overlay_mib = sb->overlay_mib;
		copy->timeout_s = sb->timeout_s;
		copy->labels = sb->labels;
		copy->env = sb->env;
	}
	pthread_mutex_unlock(&m->lock);
	if (ret < 0)
		return -1;
	deadline = time_mono_ms() + m->cfg.boot_timeout_ms;
	ret = channel_suspend(sb->ch, time_mono_ms() + PAUSE_QUIESCE_MS, err);
	quiesced = ret == 0 || (*err)->kind != EMBER_E_CONFLICT;
	if (ret == 0) {
		struct ember_error *save_err = NULL;
		int fd = -1;

		ret = vmm_save(sb->vm, path, true, deadline, &save_err);
		/* Saved or not, the VM is to run on (a failed save leaves it stopped: then the
		 * guest does not answer and the channel breaks). */
		/* Without a new stream the old one is tried, and breaks the channel if it is
		 * gone (Firecracker's is, after every save). */
		vmm_agent_after_save(sb->vm, time_mono_ms() + PAUSE_QUIESCE_MS, &fd, NULL);
		if (channel_resume(sb->ch, fd, vmm_exit_fd(sb->vm),
				   time_mono_ms() + PAUSE_QUIESCE_MS, err) < 0) {
			ember_error_free(&save_err);
			ret = -1;
		} else if (ret < 0) {
			ember_error_propagate(err, steal_pointer(&save_err));
		}
		if (ret < 0)
			vmm_saved_state_remove(path);
		/* The sandbox runs on after a failed save whose resume worked. */
		quiesced = ret < 0 && channel_broken(sb->ch, NULL, 0);
	}
	return pause_or_resume_end(m, sb, SANDBOX_PAUSING, ret, SANDBOX_READY, SANDBOX_READY,
				   quiesced, NULL, err);
}

static int open_snapshots(struct manager *m, struct ember_error **err)
{
	char dir[PATH_MAX];

	if (m->cfg.state_dir == NULL)
		return 0;
	if (snprintf(dir, sizeof(dir), "%s/snapshots", m->cfg.state_dir) >= (int)sizeof(dir))
		return ember_error_set(err, EMBER_E_INVALID, ENAMETOOLONG, "--state-dir too long");
	if (template_fingerprint_base(manager_catalog(m), m->driver, m->base_digest, err) < 0)
		return -1;
	return snapshot_store_open(dir, m->cfg.max_snapshots > 0 ? m->cfg.max_snapshots
								  : SNAPSHOTS_MAX_DEFAULT,
				   m->base_digest, &m->snapshots, err);
}

static int require_snapshots(struct manager *m, struct ember_error **err)
{
	if (m->snapshots == NULL)
		return ember_error_set(err, EMBER_E_CONFLICT, 0,
				       "this daemon keeps no snapshots (no --state-dir)");
	return 0;
}

int manager_snapshot_create(struct manager *m, const char *id,
			    const struct sandbox_labels *labels, struct snapshot_info *info,
			    struct ember_error **err)
{
	_cleanup_free_ struct sandbox *copy = calloc(1, sizeof(*copy));
	char path[PATH_MAX];

	if (copy == NULL)
		return ember_error_oom(err);
	if (require_snapshots(m, err) < 0)
		return -1;
	memset(info, 0, sizeof(*info));
	snprintf(info->sandbox_id, sizeof(info->sandbox_id), "%s", id);
	if (labels != NULL)
		info->labels = *labels;
	if (snapshot_store_reserve(m->snapshots, info, path, err) < 0)
		return -1;
	if (capture(m, id, path, copy, err) < 0) {
		snapshot_store_abort(m->snapshots, info->id);
		return ember_error_wrap(err, "snapshot of `%s`", id);
	}
	snprintf(info->language_pack, sizeof(info->language_pack), "%s", copy->pack->name);
	snprintf(info->pack_digest, sizeof(info->pack_digest), "%s", copy->pack->sha256);
	info->vcpus = copy->vcpus;
	info->memory_mib = copy->memory_mib;
	info->overlay_mib = copy->overlay_mib;
	if (snapshot_store_commit(m->snapshots, info, err) < 0) {
		snapshot_store_abort(m->snapshots, info->id);
		return -1;
	}
	log_event(LOG_INFO, id, "snapshot.created", -1, "%s, %llu bytes", info->id,
		  (unsigned long long)info->size_bytes);
	return 0;
}

int manager_snapshot_list(struct manager *m, struct snapshot_info **infos, size_t *count,
			  struct ember_error **err)
{
	if (m->snapshots == NULL) {
		*infos = calloc(1, sizeof(**infos));
		*count = 0;
		return *infos != NULL ? 0 : ember_error_oom(err);
	}
	return snapshot_store_list(m->snapshots, infos, count, err);
}

int manager_snapshot_get(struct manager *m, const char *snap_id, struct snapshot_info *info,
			 struct ember_error **err)
{
	if (m->snapshots == NULL)
		return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no snapshot `%.64s`", snap_id);
	return snapshot_store_get(m->snapshots, snap_id, info, NULL, err);
}

int manager_snapshot_delete(struct manager *m, const char *snap_id, struct ember_error **err)
{
	if (m->snapshots == NULL)
		return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no snapshot `%.64s`", snap_id);
	return snapshot_store_delete(m->snapshots, snap_id, err);
}

/* A create from a snapshot: its pins must hold and the request may only repeat its shape;
 * resolved is req with the snapshot's pack and shape and its saved state (in state). */
static int resolve_snapshot(struct manager *m, const struct sandbox_create_request *req,
			    struct sandbox_create_request *resolved, struct snapshot_info *info,
			    char state[PATH_MAX], struct ember_error **err)
{
	const struct pack *pack;

	if (m->snapshots == NULL)
		return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no snapshot `%.64s`",
				       req->from_snapshot);
	if (snapshot_store_get(m->snapshots, req->from_snapshot, info, state, err) < 0)
		return -1;
	if ((req->language_pack != NULL && strcmp(req->language_pack, info->language_pack) != 0) ||
	    (req->vcpus != 0 && req->vcpus != info->vcpus) ||
	    (req->memory_mib != 0 && req->memory_mib != info->memory_mib) ||
	    (req->overlay_mib != 0 && req->overlay_mib != info->overlay_mib))
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "field `from_snapshot`: snapshot `%s` is a %s sandbox with "
				       "%u vcpus, %u MiB and a %u MiB overlay; leave language_pack, "
				       "vcpus, memory_mib and overlay_mib out or give those",
				       info->id, info->language_pack, info->vcpus, info->memory_mib,
				       info->overlay_mib);
	pack = catalog_find(manager_catalog(m), info->language_pack);
	if (pack == NULL || strcmp(pack->sha256, info->pack_digest) != 0)
		return ember_error_set(err, EMBER_E_CONFLICT, 0,
				       "snapshot `%s` was made with pack `%s` %.12s, and the "
				       "daemon's is %s%.12s now: it cannot be restored", info->id,
				       info->language_pack, info->pack_digest,
				       pack == NULL ? "gone" : "", pack == NULL ? "" : pack->sha256);
	if (strcmp(info->base_digest, snapshot_store_base_digest(m->snapshots)) != 0)
		return ember_error_set(err, EMBER_E_CONFLICT, 0,
				       "snapshot `%s` was made with another kernel, initramfs or "
				       "VMM than this daemon runs: it cannot be restored", info->id);
	*resolved = *req;
	resolved->language_pack = info->language_pack;
	resolved->vcpus = info->vcpus;
	resolved->memory_mib = info->memory_mib;
	resolved->overlay_mib = info->overlay_mib;
	resolved->from_snapshot = NULL;
	resolved->from_state = state;
	resolved->from_boot_mode = "snapshot";
	resolved->from_pack_digest = info->pack_digest;
	return 0;
}

/* Room for count more sandboxes now (a fork is refused before it stops its source). */
static int fork_room(struct manager *m, unsigned count, struct ember_error **err)
{
	unsigned have;

	if (count < 1 || count > m->cfg.max_fork)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "field `count` must be between 1 and %u (--max-fork)",
				       m->cfg.max_fork);
	pthread_mutex_lock(&m->lock);
	have = m->count;
	pthread_mutex_unlock(&m->lock);
	if (have + count > m->cfg.max_sandboxes)
		return ember_error_set(err, EMBER_E_CAPACITY, 0,
				       "%u sandboxes run and the daemon takes at most %u: no room "
				       "for %u more", have, m->cfg.max_sandboxes, count);
	return 0;
}

/* What forks start from: the source's saved VM, or (a driver whose loads copy RAM) a base made
 * of it that they restore as clones, sharing its RAM copy-on-write. */
struct fork_base {
	char state[PATH_MAX];
	int memory_fd;          /* sealed guest RAM, or -1: state is the whole saved VM */
};

/* Loads the source's saved VM (whole) once into a stopped VM whose RAM is a new memfd, keeps its
 * device state and seals the memfd: base then is a template of the source (template.h). */
static int make_fork_base(struct manager *m, const char *id, const struct sandbox *src,
			  const char *name, const char *whole, struct fork_base *base,
			  struct ember_error **err)
{
	struct template_shape shape = { .pack = src->pack, .vcpus = src->vcpus,
					.memory_mib = src->memory_mib,
					.overlay_mib = src->overlay_mib };
	struct vmm_boot_config bcfg = { 0 };
	char run_dir[PATH_MAX], cmdline_extra[128];
	uint64_t kept = 0;
	int64_t t0 = time_mono_ms();
	int ret;

	snprintf(base->state, sizeof(base->state), "%s/%s.base", m->paused_dir, name);
	if (snprintf(run_dir, sizeof(run_dir), "%s/%s", m->run_dir, name) >= (int)sizeof(run_dir))
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "run dir too long");
	if (mkdir(run_dir, 0700) < 0)
		return ember_error_sys(err, "create `%s`", run_dir);
	template_boot_config(&shape, manager_catalog(m), &bcfg, cmdline_extra,
			     sizeof(cmdline_extra));
	ret = guestmem_create((uint64_t)src->memory_mib << 20, name, &base->memory_fd, err);
	if (ret == 0)
		ret = template_rebase_vm(m->driver, &bcfg, run_dir, name, whole, base->memory_fd,
					 base->state, time_mono_ms() + m->cfg.boot_timeout_ms, err);
	dir_remove_tree(run_dir, NULL);
	if (ret == 0)
		ret = guestmem_seal(base->memory_fd, &kept, err);
	if (ret < 0) {
		unlink(base->state);
		return ember_error_wrap(err, "make the forks' base");
	}
	log_event(LOG_INFO, id, "fork.base", time_mono_ms() - t0, "%s: %llu MiB of RAM kept",
		  name, (unsigned long long)(kept >> 20));
	return 0;
}

/* The forks of one request, started by up to FORK_THREADS_MAX threads at once (each create
 * still waits for a boot slot). */
#define FORK_THREADS_MAX 8

struct fork_job {
	struct manager *m;
	const struct sandbox_create_request *req;
	struct sandbox_info *infos;
	bool *made;                  /* [lock] infos[i] is a sandbox to keep or undo */
	unsigned count;
	pthread_mutex_t lock;
	unsigned next;               /* [lock] the next fork to make */
	struct ember_error *err;     /* [lock] the first failure: the others stop taking work */
	unsigned failed;             /* [lock] its 1-based index */
};

static void *fork_worker(void *arg)
{
	struct fork_job *job = arg;

	for (;;) {
		struct ember_error *err = NULL;
		unsigned i;
		bool stop;
		int ret;

		pthread_mutex_lock(&job->lock);
		i = job->next;
		stop = job->err != NULL || i >= job->count;
		if (!stop)
			job->next++;
		pthread_mutex_unlock(&job->lock);
		if (stop)
			return NULL;
		ret = manager_create_sandbox(job->m, job->req, &job->infos[i], &err);
		pthread_mutex_lock(&job->lock);
		if (ret == 0) {
			job->made[i] = true;
		} else if (job->err == NULL) {
			job->err = steal_pointer(&err);
			job->failed = i + 1;
		}
		pthread_mutex_unlock(&job->lock);
		ember_error_free(&err);
	}
}

/* Runs the job on threads (or on this one when none can be made); 0 when every fork was made,
 * else -1 with each one made deleted. */
static int run_fork_job(struct fork_job *job, struct ember_error **err)
{
	pthread_t threads[FORK_THREADS_MAX];
	unsigned n = job->count < FORK_THREADS_MAX ? job->count : FORK_THREADS_MAX, started, i;

	for (started = 0; started < n; started++) {
		if (pthread_create(&threads[started], NULL, fork_worker, job) != 0)
			break;
	}
	if (started == 0)
		fork_worker(job);
	for (i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	if (job->err == NULL)
		return 0;
	for (i = 0; i < job->count; i++) {
		if (job->made[i])
			manager_destroy(job->m, job->infos[i].id, NULL);
	}
	ember_error_propagate(err, steal_pointer(&job->err));
	return ember_error_wrap(err, "fork %u of %u", job->failed, job->count);
}

static int fork_children(struct manager *m, const struct sandbox *src, const char *digest,
			 const struct fork_base *base, unsigned count,
			 const struct sandbox_labels *labels, unsigned timeout_s,
			 struct sandbox_info *infos, struct ember_error **err)
{
	struct sandbox_create_request req = {
		.language_pack = src->pack->name, .vcpus = src->vcpus, .memory_mib = src->memory_mib,
		.overlay_mib = src->overlay_mib,
		.timeout_s = timeout_s != 0 ? timeout_s : src->timeout_s,
		.labels = labels != NULL ? labels : &src->labels, .env = &src->env,
		.from_state = base->state, .from_memory_fd = base->memory_fd > 0 ? base->memory_fd : 0,
		.from_boot_mode = "fork", .from_pack_digest = digest,
	};
	_cleanup_free_ bool *made = calloc(count, sizeof(*made));
	struct fork_job job = { .m = m, .req = &req, .infos = infos, .made = made,
				.count = count };
	int ret;

	if (made == NULL)
		return ember_error_oom(err);
	pthread_mutex_init(&job.lock, NULL);
	ret = run_fork_job(&job, err);
	pthread_mutex_destroy(&job.lock);
	return ret;
}

int manager_fork(struct manager *m, const char *id, unsigned count,
		 const struct sandbox_labels *labels, unsigned timeout_s,
		 struct sandbox_info **infos, struct ember_error **err)
{
	_cleanup_free_ struct sandbox *src = calloc(1, sizeof(*src));
	char path[PATH_MAX], name[SANDBOX_ID_LEN + 8], digest[sizeof(src->pack->sha256)];
	struct fork_base base = { .memory_fd = -1 };
	int64_t t0 = time_mono_ms();
	int ret;

	*infos = NULL;
	if (src == NULL)
		return ember_error_oom(err);
	if (fork_room(m, count, err) < 0)
		return -1;
	if (m->paused_dir[0] == '\0')
		return ember_error_set(err, EMBER_E_CONFLICT, 0,
				       "this daemon cannot fork sandboxes (no --state-dir)");
	if (id_generate(FORK_BASE_PREFIX, name, sizeof(name), err) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/%s.vmstate", m->paused_dir, name);
	*infos = calloc(count, sizeof(**infos));
	if (*infos == NULL)
		return ember_error_oom(err);
	ret = capture(m, id, path, src, err);
	if (ret == 0 && vmm_driver_loads_ram_copy_on_write(m->driver))
		snprintf(base.state, sizeof(base.state), "%s", path);
	else if (ret == 0 && make_fork_base(m, id, src, name, path, &base, err) < 0)
		ret = -1;
	if (ret == 0) {
		snprintf(digest, sizeof(digest), "%s", src->pack->sha256);
		ret = fork_children(m, src, digest, &base, count, labels, timeout_s, *infos, err);
	}
	vmm_saved_state_remove(path);
	if (base.memory_fd >= 0) {
		close(base.memory_fd);
		unlink(base.state);
	}
	if (ret < 0) {
		free(steal_pointer(infos));
		return ember_error_wrap(err, "fork `%s`", id);
	}
	log_event(LOG_INFO, id, "sandbox.forked", time_mono_ms() - t0, "%u new", count);
	return 0;
}

int manager_destroy(struct manager *m, const char *id, struct ember_error **err)
{
	int64_t t0 = time_mono_ms();
	struct sandbox *sb;
	enum sandbox_state state;

	pthread_mutex_lock(&m->lock);
	sb = table_find_locked(m, id);
	state = sb != NULL ? sb->state : SANDBOX_GONE;
	if (sb != NULL && state != SANDBOX_BOOTING && state != SANDBOX_DESTROYING)
		sb->state = SANDBOX_DESTROYING;
	pthread_mutex_unlock(&m->lock);
	if (sb == NULL)
		return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no sandbox `%.64s`", id);
	if (state == SANDBOX_BOOTING || state == SANDBOX_DESTROYING)
		return ember_error_set(err, EMBER_E_CONFLICT, 0, "sandbox `%s` is %s", id,
				       state == SANDBOX_BOOTING ? "still booting"
								: "already being destroyed");
	destroy_and_free(m, sb);
	metrics_observe_ms(m->metrics, METRICS_DELETE_SECONDS, NULL, time_mono_ms() - t0);
	return 0;
}

int manager_vmms(struct manager *m, struct manager_vmm **out, size_t *count,
		 struct ember_error **err)
{
	_cleanup_free_ pid_t *pooled_pids = NULL;
	struct pool_stats ps = { 0 };
	struct manager_vmm *v;
	struct sandbox *sb;
	size_t n = 0, i, pooled = 0;

	pthread_mutex_lock(&m->lock);
	if (m->pool != NULL)
		pool_stats(m->pool, &ps);
	v = calloc(m->count + ps.ready + 1, sizeof(*v));
	pooled_pids = calloc(ps.ready + 1, sizeof(*pooled_pids));
	if (v == NULL || pooled_pids == NULL) {
		pthread_mutex_unlock(&m->lock);
		free(v);
		return ember_error_oom(err);
	}
	/* A booting sandbox's vm belongs to its booting thread (fill_info_locked). */
	for (sb = m->list; sb != NULL; sb = sb->next) {
		if (sb->state != SANDBOX_BOOTING && sb->vm != NULL)
			v[n++].pid = vmm_pid(sb->vm);
	}
	if (m->pool != NULL)
		pooled = pool_vmm_pids(m->pool, pooled_pids, ps.ready);
	pthread_mutex_unlock(&m->lock);
	for (i = 0; i < pooled; i++) {
		v[n].pid = pooled_pids[i];
		v[n++].pooled = true;
	}
	*out = v;
	*count = n;
	return 0;
}

struct metrics *manager_metrics(struct manager *m)
{
	return m->metrics;
}

static void memory_stats(struct manager *m, struct manager_stats *stats)
{
	const struct pack *pack = default_pack(manager_catalog(m));
	struct headroom_sample s;
	uint64_t reserve;

	if (memory_sample(m, &s, &reserve) < 0)
		return;
	stats->memory_known = true;
	stats->memory_total_mib = s.total_mib;
	stats->memory_available_mib = s.available_mib;
	stats->memory_reserve_mib = reserve;
	if (pack != NULL)
		stats->sandbox_cost_mib = headroom_sandbox_cost_mib(pack->defaults.memory_mib,
								    m->tcg);
	/* The same rule admission follows (memory_admit), on this sample. */
	stats->headroom_sandboxes =
		headroom_fit(headroom_unpromised_mib(s.available_mib, stats->memory_booting_mib),
			     reserve, stats->sandbox_cost_mib);
}

void manager_stats(struct manager *m, struct manager_stats *stats)
{
	struct sandbox *sb;

	memset(stats, 0, sizeof(*stats));
	pthread_mutex_lock(&m->lock);
	for (sb = m->list; sb != NULL; sb = sb->next) {
		stats->total++;
		switch (sb->state) {
		case SANDBOX_BOOTING: stats->booting++; break;
		case SANDBOX_READY: stats->ready++; break;
		case SANDBOX_FAILED: stats->failed++; break;
		case SANDBOX_DESTROYING: stats->destroying++; break;
		case SANDBOX_GONE: break;
		case SANDBOX_PAUSING:
		case SANDBOX_PAUSED:
		case SANDBOX_RESUMING: stats->paused++; break;
		}
	}
	stats->created_total = m->created_total;
	stats->create_failures_total = m->create_failures_total;
	stats->execs_total = m->execs_total;
	stats->memory_rejections_total = m->memory_rejections_total;
	stats->memory_booting_mib = m->memory_booting_mib;
	pthread_mutex_unlock(&m->lock);
	stats->max_sandboxes = m->cfg.max_sandboxes;
	stats->max_sandboxes_derived = m->max_derived;
	memory_stats(m, stats);
	stats->pool_size = m->cfg.pool_size;
	stats->pool_packs = m->cfg.pool_packs;
	stats->pool_catalog = manager_catalog(m); /* every pack at 0 without a pool */
	if (m->pool != NULL) {
		struct pool_stats ps;

		pool_stats(m->pool, &ps);
		stats->pool_ready = ps.ready;
		stats->pool_catalog = ps.catalog;
		memcpy(stats->pool_ready_by_pack, ps.ready_by_pack, sizeof(ps.ready_by_pack));
		stats->pool_handouts_total = ps.handouts_total;
		stats->pool_refills_deferred_total = ps.refills_deferred_total;
		stats->pool_shed_total = ps.shed_total;
		stats->pool_memory_low = ps.memory_low;
	}
	stats->snapshots = m->templates != NULL;
	if (m->templates != NULL) {
		struct template_stats ts;

		template_store_stats(m->templates, &ts);
		stats->templates_ready = ts.ready;
		stats->templates_building = ts.building;
		stats->templates_failed = ts.failed;
		stats->templates_evicted_total = ts.evicted_total;
	}
}

/* The sandbox's process table (created on first use), referenced (lock held). */
static int procs_of_locked(struct sandbox *sb, struct procs **out, struct ember_error **err)
{
	if (sb->procs == NULL && procs_new(&sb->procs, err) < 0)
		return -1;
	procs_ref(sb->procs);
	*out = sb->procs;
	return 0;
}

/* The channel request of a background process: the pack's interpreter and code, or a command. */
static int process_exec_request(const struct manager *m, const struct sandbox *sb,
				const struct sandbox_process_request *req, char **env_buf,
				struct channel_exec_request *creq, struct ember_error **err)
{
	memset(creq, 0, sizeof(*creq));
	creq->cwd = req->cwd;
	if (req->argc > 0) {
		/* A command gets the pack's environment and directory too, not its interpreter. */
		if (pack_env(sb, req->env, req->envc, PROTO_ENV_MAX, env_buf, &creq->envc,
			     err) < 0)
			return -1;
		creq->env = env_buf;
		creq->cwd = req->cwd != NULL ? req->cwd : sb->pack->cwd;
		creq->argv = req->argv;
		creq->argc = req->argc;
		creq->code = "";
		creq->command = true;
	} else if (pack_request(sb, req->code, req->code_len, false, req->env, req->envc,
				env_buf, creq, err) < 0) {
		return -1;
	}
	creq->has_stdin = req->has_stdin;
	/* Sent because the message needs them; the guest ignores both for a background exec. */
	creq->timeout_ms = sb->pack->defaults.exec_timeout_ms;
	creq->output_limit = 0;
	creq->max_processes = m->cfg.max_processes;
	creq->background = true;
	return 0;
}

int manager_process_start(struct manager *m, const char *id,
			  const struct sandbox_process_request *req, struct procs_info *info,
			  struct ember_error **err)
{
	struct channel_exec_request creq;
	char *env_buf[PROTO_ENV_MAX + 1];
	struct sandbox *sb = acquire_ready(m, id, err);
	struct procs *procs = NULL;
	int64_t t0 = time_mono_ms();
	int ret;

	if (sb == NULL)
		return -1;
	pthread_mutex_lock(&m->lock);
	ret = procs_of_locked(sb, &procs, err);
	pthread_mutex_unlock(&m->lock);
	if (ret == 0)
		ret = process_exec_request(m, sb, req, env_buf, &creq, err);
	if (ret == 0) {
		ret = procs_start(procs, sb->ch, &creq, req->tag, req->timeout_ms, info, err);
	}
	procs_unref(procs);
	release_after(m, sb, err, ret < 0);
	if (ret == 0)
		log_event(LOG_INFO, id, "sandbox.process_started", time_mono_ms() - t0, "pid=%d",
			  (int)info->pid);
	return ret;
}

int manager_procs(struct manager *m, const char *id, struct procs **out,
		  struct ember_error **err)
{
	struct sandbox *sb;
	int ret = -1;

	pthread_mutex_lock(&m->lock);
	sb = table_find_locked(m, id);
	if (sb == NULL)
		ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no sandbox `%.64s`", id);
	else if (sb->state != SANDBOX_READY && sb->state != SANDBOX_FAILED)
		state_conflict(err, sb->id, sb->state);
	else
		ret = procs_of_locked(sb, out, err);
	pthread_mutex_unlock(&m->lock);
	return ret;
}

/* A stdin write or a signal: the table, with the sandbox held ready around the channel I/O. */
static struct sandbox *acquire_procs(struct manager *m, const char *id, struct procs **procs,
				     struct ember_error **err)
{
	struct sandbox *sb = acquire_ready(m, id, err);

	if (sb == NULL)
		return NULL;
	pthread_mutex_lock(&m->lock);
	if (procs_of_locked(sb, procs, err) < 0) {
		pthread_mutex_unlock(&m->lock);
		release_after(m, sb, err, false);
		return NULL;
	}
	pthread_mutex_unlock(&m->lock);
	return sb;
}

int manager_process_stdin(struct manager *m, const char *id, int32_t pid, const uint8_t *data,
			  size_t len, bool fin, struct ember_error **err)
{
	struct procs *procs;
	struct sandbox *sb = acquire_procs(m, id, &procs, err);
	int ret;

	if (sb == NULL)
		return -1;
	ret = procs_stdin(procs, sb->ch, pid, data, len, fin, err);
	procs_unref(procs);
	release_after(m, sb, err, ret < 0 && (*err)->kind != EMBER_E_NOT_FOUND &&
				  (*err)->kind != EMBER_E_CONFLICT);
	return ret;
}

int manager_process_signal(struct manager *m, const char *id, int32_t pid, int sig,
			   struct ember_error **err)
{
	struct procs *procs;
	struct sandbox *sb = acquire_procs(m, id, &procs, err);
	int ret;

	if (sb == NULL)
		return -1;
	ret = procs_signal(procs, sb->ch, pid, sig, err);
	procs_unref(procs);
	release_after(m, sb, err, ret < 0 && (*err)->kind != EMBER_E_NOT_FOUND &&
				  (*err)->kind != EMBER_E_CONFLICT);
	return ret;
}

/* --- files (docs/api.md "Files"): thin pass-throughs to the channel, like exec --- */

/* How long a one-shot file operation (stat, list, mkdir, move, remove) may take in the guest. */
#define MANAGER_FS_TIMEOUT_MS 30000

/* A file transfer between an HTTP connection and a sandbox. Its HTTP side calls in when its
 * client sends or reads, which a slow client may not do for a long time: so a destroy does not
 * wait for it but detaches it (detach_transfers_locked), closing its channel side and dropping
 * its ref, and its later calls fail with 409. */
struct manager_transfer {
	struct manager *m;
	struct sandbox *sb;            /* [m->lock] NULL once detached */
	struct manager_transfer *next; /* [m->lock] sb->transfers */
	bool detaching;                /* [m->lock] a destroy is closing t right now */
	pthread_mutex_t mu;            /* held across every use of t (the HTTP side's calls) */
	struct channel_transfer *t;    /* [mu] NULL once closed */
	bool failed;
};

/* Closes every transfer of sb and drops their refs (m->lock held, dropped around each close:
 * a call in progress on the transfer ends promptly, its channel being aborted). */
static void detach_transfers_locked(struct manager *m, struct sandbox *sb)
{
	struct manager_transfer *t;

	while ((t = sb->transfers) != NULL) {
		sb->transfers = t->next;
		t->detaching = true;
		pthread_mutex_unlock(&m->lock);
		pthread_mutex_lock(&t->mu);
		channel_transfer_close(t->t);
		t->t = NULL;
		pthread_mutex_unlock(&t->mu);
		pthread_mutex_lock(&m->lock);
		t->sb = NULL;
		t->detaching = false;
		sb->refs--;
		pthread_cond_broadcast(&m->cond);
	}
}

int manager_fs(struct manager *m, const char *id, const struct proto_fs_request *req,
	       struct proto_fs_reply *reply, struct ember_error **err)
{
	struct sandbox *sb = acquire_ready(m, id, err);
	int ret;

	if (sb == NULL)
		return -1;
	ret = channel_fs(sb->ch, req, time_mono_ms() + MANAGER_FS_TIMEOUT_MS, reply, err);
	release_after(m, sb, err, ret < 0);
	return ret;
}

static struct manager_transfer *transfer_alloc(struct manager *m, const char *id,
					       struct ember_error **err)
{
	struct manager_transfer *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		ember_error_oom(err);
		return NULL;
	}
	t->m = m;
	pthread_mutex_init(&t->mu, NULL);
	t->sb = acquire_ready(m, id, err);
	if (t->sb == NULL) {
		pthread_mutex_destroy(&t->mu);
		free(t);
		return NULL;
	}
	pthread_mutex_lock(&m->lock);
	t->next = t->sb->transfers;
	t->sb->transfers = t;
	pthread_mutex_unlock(&m->lock);
	return t;
}

/* A transfer step failed: explains the error once (the sandbox's state decides it). */
static int transfer_failed(struct manager_transfer *t, struct ember_error **err)
{
	pthread_mutex_lock(&t->m->lock);
	if (t->sb != NULL)
		explain_failure_locked(t->m, t->sb, err);
	else if (err != NULL && *err != NULL && !ember_error_is_static(*err))
		(*err)->kind = EMBER_E_CONFLICT; /* destroyed under the transfer */
	pthread_mutex_unlock(&t->m->lock);
	t->failed = true;
	return -1;
}

/* The transfer's channel side, locked for one call; NULL (409, unlocked) once it was detached. */
static struct channel_transfer *transfer_enter(struct manager_transfer *t,
					       struct ember_error **err)
{
	pthread_mutex_lock(&t->mu);
	if (t->t != NULL)
		return t->t;
	pthread_mutex_unlock(&t->mu);
	ember_error_set(err, EMBER_E_CONFLICT, 0, "the sandbox was destroyed during the transfer");
	t->failed = true;
	return NULL;
}

int manager_download_open(struct manager *m, const char *id, const char *path,
			  struct manager_transfer **out, struct proto_fs_entry *entry,
			  struct ember_error **err)
{
	struct manager_transfer *t = transfer_alloc(m, id, err);
	int ret;

	if (t == NULL)
		return -1;
	pthread_mutex_lock(&t->mu);
	ret = channel_download_open(t->sb->ch, path, &t->t, entry, err);
	pthread_mutex_unlock(&t->mu);
	if (ret < 0) {
		transfer_failed(t, err);
		manager_transfer_close(t);
		return -1;
	}
	*out = t;
	return 0;
}

ssize_t manager_download_read(struct manager_transfer *t, void *buf, size_t max,
			      struct ember_error **err)
{
	struct channel_transfer *ct = transfer_enter(t, err);
	ssize_t n;

	if (ct == NULL)
		return -1;
	n = channel_download_read(ct, buf, max, err);
	pthread_mutex_unlock(&t->mu);
	if (n < 0)
		transfer_failed(t, err);
	return n;
}

int manager_upload_open(struct manager *m, const char *id, const struct proto_fs_request *req,
			struct manager_transfer **out, struct ember_error **err)
{
	struct manager_transfer *t = transfer_alloc(m, id, err);
	int ret;

	if (t == NULL)
		return -1;
	pthread_mutex_lock(&t->mu);
	ret = channel_upload_open(t->sb->ch, req, &t->t, err);
	pthread_mutex_unlock(&t->mu);
	if (ret < 0) {
		transfer_failed(t, err);
		manager_transfer_close(t);
		return -1;
	}
	*out = t;
	return 0;
}

int manager_upload_write(struct manager_transfer *t, const void *data, size_t len,
			 struct ember_error **err)
{
	struct channel_transfer *ct = transfer_enter(t, err);
	int ret;

	if (ct == NULL)
		return -1;
	ret = channel_upload_write(ct, data, len, err);
	pthread_mutex_unlock(&t->mu);
	return ret < 0 ? transfer_failed(t, err) : 0;
}

int manager_upload_finish(struct manager_transfer *t, struct proto_fs_reply *reply,
			  struct ember_error **err)
{
	struct channel_transfer *ct = transfer_enter(t, err);
	int ret;

	if (ct == NULL)
		return -1;
	ret = channel_upload_finish(ct, reply, err);
	pthread_mutex_unlock(&t->mu);
	return ret < 0 ? transfer_failed(t, err) : 0;
}

void manager_transfer_close(struct manager_transfer *t)
{
	struct manager_transfer **pp;
	struct sandbox *sb;

	if (t == NULL)
		return;
	pthread_mutex_lock(&t->m->lock);
	while (t->detaching)
		cond_wait_until(&t->m->cond, &t->m->lock, -1);
	sb = t->sb; /* NULL: a destroy detached it, closed it and dropped its ref */
	for (pp = sb != NULL ? &sb->transfers : NULL; pp != NULL && *pp != NULL;
	     pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	pthread_mutex_unlock(&t->m->lock);
	pthread_mutex_lock(&t->mu);
	channel_transfer_close(t->t);
	t->t = NULL;
	pthread_mutex_unlock(&t->mu);
	if (sb != NULL)
		release_after(t->m, sb, NULL, false);
	pthread_mutex_destroy(&t->mu);
	free(t);
}
