/* manager_internal.h - what the sandbox manager's files share: the sandbox and manager structs
 * and the lifecycle steps the warm pool (pool.c) and restart recovery (recover.c) reuse.
 * Private to src/sandbox: the API and the daemon see only manager.h. Locking rules are in
 * manager.c's header comment; every function here says whether it wants the lock held. */
#ifndef EMBER_SANDBOX_MANAGER_INTERNAL_H
#define EMBER_SANDBOX_MANAGER_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "channel/channel.h"
#include "sandbox/manager.h"
#include "sandbox/template.h"
#include "vmm/vmm.h"

/* How long a VMM gets to stop on request before SIGKILL. */
#define STOP_GRACE_MS 2000

struct sandbox {
	char id[SANDBOX_ID_LEN + 1];
	const struct pack *pack;
	enum sandbox_state state;
	unsigned vcpus;
	unsigned memory_mib;
	unsigned timeout_s;
	unsigned overlay_mib;
	int64_t created_wall_ns;
	int64_t created_mono_ms;
	int64_t expires_mono_ms;
	int64_t boot_ms;
	uint64_t execs_run;
	unsigned execs_running;
	unsigned refs;
	char run_dir[PATH_MAX];
	struct vmm_instance *vm;
	struct channel *ch;
	struct template *tpl;         /* the template a clone maps (reference held) */
	bool record_pending;          /* handed out from the pool: the filler writes the record */
	const char *boot_mode;        /* "cold", "clone", "pool" */
	char failure[512];
	struct sandbox *next;
};

struct manager {
	struct manager_config cfg;
	char run_dir[PATH_MAX];
	const struct catalog *catalog;
	struct vmm_driver *driver;
	pthread_mutex_t lock;
	pthread_cond_t cond;          /* booting/refs/count changes */
	struct sandbox *list;
	unsigned count;
	unsigned booting;
	bool shutting_down;
	bool stop_reaper;
	pthread_t reaper;
	struct template_store *templates; /* NULL: no snapshots (disabled or unsupported) */
	struct sandbox *pool;             /* ready clones waiting to be handed out */
	unsigned pool_count;
	unsigned pool_filling;
	pthread_t pool_thread;
	bool pool_started;
	uint64_t pool_handouts_total;
	bool keep_templates;
	uint64_t created_total;
	uint64_t create_failures_total;
	uint64_t execs_total;
};

/* Waits on m->cond for at most ms (lock held). */
void manager_cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t ms);
/* Copies sb's public state into info (lock held). */
void manager_fill_info_locked(const struct sandbox *sb, struct sandbox_info *info);
/* Closes the channel and stops the VM of a sandbox nobody else uses (no lock). */
void manager_stop_vm(struct sandbox *sb);
/* Stops everything a sandbox owns once no request uses it (no lock). */
void manager_teardown(struct manager *m, struct sandbox *sb);
/* Writes sb's re-attach record; failures are logged (no lock). */
void manager_save_record(struct sandbox *sb);
/* Starts sb's VM (clone when a template is ready, else cold unless clone_only) and completes
 * the agent handshake (no lock). */
int manager_boot(struct manager *m, struct sandbox *sb, bool clone_only, struct ember_error **err);

/* pool.c: the warm pool's filler thread, and a handout for a create (or NULL). */
void *manager_pool_main(void *arg);
struct sandbox *manager_pool_take(struct manager *m, const struct sandbox *want,
				  struct sandbox_info *info);

#endif
