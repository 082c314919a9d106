/* sandbox.h - one sandbox's state as the manager keeps it in its table.
 * Used by the manager (manager.c, which owns every sandbox and its table) and by restart
 * recovery (recover.c, which builds a sandbox and hands it to the manager). Never seen by the
 * API, the daemon or the warm pool (pool.h treats it as opaque).
 *
 * Who may touch what: the fields marked [lock] are read and written under the manager's lock
 * only. While a sandbox is BOOTING, vm, ch, tpl, run_dir and boot_mode belong to the thread
 * booting it; once it is READY, vm and ch change only under the lock (teardown detaches them
 * there and frees them outside), and requests use ch while they hold a reference (refs). */
#ifndef EMBER_SANDBOX_SANDBOX_H
#define EMBER_SANDBOX_SANDBOX_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "channel/channel.h"
#include "net/egress.h"
#include "sandbox/catalog.h"
#include "sandbox/labels.h"
#include "sandbox/sandboxenv.h"
#include "sandbox/manager.h"
#include "sandbox/procs.h"
#include "sandbox/template.h"
#include "vmm/vmm.h"

struct sandbox {
	char id[SANDBOX_ID_LEN + 1];
	const struct pack *pack;
	enum sandbox_state state;     /* [lock] */
	unsigned vcpus;
	unsigned memory_mib;
	unsigned timeout_s;           /* [lock] the lifetime last set (create or POST .../timeout) */
	unsigned overlay_mib;
	unsigned idle_timeout_s;      /* 0: none; set before the sandbox is in the table */
	unsigned cpu_weight;          /* share of the CPU against other sandboxes (vmm.h) */
	int64_t created_wall_ns;
	int64_t created_mono_ms;
	int64_t expires_mono_ms;      /* [lock] */
	int64_t last_activity_mono_ms; /* [lock] see sandbox_touch_locked() in manager.c */
	struct sandbox_labels labels; /* set before the sandbox is in the table, then constant */
	struct sandbox_env env;       /* its own environment (sandboxenv.h); set like labels */
	struct sandbox_mounts mounts; /* host directories (mounts.h), resolved; set like labels */
	int64_t boot_ms;
	uint64_t execs_run;           /* [lock] */
	unsigned execs_running;       /* [lock] */
	unsigned refs;                /* [lock] requests using ch, and a record not yet written */
	/* [lock] file transfers holding a ref (manager.c): a destroy detaches them, since their
	 * HTTP side may not come back for as long as its client reads slowly. */
	struct manager_transfer *transfers;
	char run_dir[PATH_MAX];
	struct vmm_instance *vm;
	struct channel *ch;
	struct template *tpl;         /* the template a clone maps (reference held) */
	struct procs *procs;          /* [lock] background processes; NULL until the first */
	struct sandbox_contexts contexts; /* [lock] code contexts (their interpreters: the guest) */
	const char *boot_mode;        /* "cold", "clone", "pool" */
	/* Its network (net/egress.h): NULL for mode none. Made by the boot (or adopted by the
	 * recovery), removed by the teardown; the egress guards what changes in it. */
	struct egress_link *link;
	const struct net_policy *want_network; /* during a create: the request's policy */
	char failure[512];            /* [lock] */
	/* Pause (manager_pause): the saved VM (set while PAUSING..RESUMING, the file exists while
	 * PAUSED) and the lifetime left when it paused. */
	char paused_state[PATH_MAX];
	int64_t paused_mono_ms;       /* [lock] */
	int64_t lifetime_left_ms;     /* [lock] */
	const char *birth_state;      /* a fork or a snapshot's saved VM, during its create */
	int birth_memory_fd;          /* > 0: birth_state is device state only, restored over
				       * this sealed RAM (a fork base's; the caller's) */
	/* [lock] failure says the channel broke while the VMM still ran: the VMM may have been
	 * on its way out (a guest kernel panic closes the channel before the process is gone),
	 * so its exit, once seen, may give the real reason (mark_failed_if_broken_locked). */
	bool failure_refinable;
	struct sandbox *next;         /* [lock] the table's link */
};

/* How long a VMM gets to stop on request before SIGKILL. */
#define STOP_GRACE_MS 2000

/* Closes ch and stops and frees vm (either may be NULL), which nobody else can reach any more:
 * the caller detached them from their sandbox (under the manager's lock if it is in the table).
 * Defined in manager.c. */
void sandbox_release_vm(struct vmm_instance *vm, struct channel *ch);

#endif
