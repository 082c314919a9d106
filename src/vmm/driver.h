/* driver.h - what a VMM driver implements; private to src/vmm (the manager sees only vmm.h).
 * Used by vmm.c (generic lifecycle) and each driver file (qemu.c, firecracker.c).
 * A driver's ops never reap or kill the VMM process themselves: vmm.c owns that. And vmm.c never
 * names what is one driver's business (a jailer, QMP, a socket): that stays in drv->priv and
 * vm->priv, and vmm.c asks through an op. */
#ifndef EMBER_VMM_DRIVER_H
#define EMBER_VMM_DRIVER_H

#include <limits.h>

#include "vmm/console.h"
#include "vmm/vmm.h"

struct vmm_driver_ops {
	const char *name;
	/* Resolves binaries and probes the host; fills drv->description. */
	int (*init)(struct vmm_driver *drv, const struct vmm_driver_config *cfg,
		    struct ember_error **err);
	/* Spawns the VMM for cfg and fills vm->pid/pidfd (via vmm_spawn) and vm->priv. */
	int (*start)(struct vmm_instance *vm, const struct vmm_boot_config *cfg,
		     struct ember_error **err);
	int (*connect_agent)(struct vmm_instance *vm, int64_t deadline_ms,
			     struct ember_error **err);
	/* Asks the VMM to shut down (QMP quit, SendCtrlAltDel); best effort, bounded. */
	void (*request_stop)(struct vmm_instance *vm, int64_t deadline_ms);
	/* Removes the files the driver created in run_dir and frees vm->priv. */
	void (*release)(struct vmm_instance *vm);
	/* Rebuilds vm->priv for a VMM started by an earlier daemon (pid and run_dir are set).
	 * NULL: the driver cannot re-attach. */
	int (*attach)(struct vmm_instance *vm, struct ember_error **err);
	/* Frees vm->priv without touching the VM or its files. NULL: free(vm->priv). */
	void (*detach)(struct vmm_instance *vm);
	/* Snapshots (NULL: unsupported). snapshot pauses and writes device state; restore loads
	 * the state given to a VM started with cfg->restore_state and resumes it. */
	int (*snapshot)(struct vmm_instance *vm, const char *state_path, int64_t deadline_ms,
			struct ember_error **err);
	int (*restore)(struct vmm_instance *vm, const char *state_path, int64_t deadline_ms,
		       struct ember_error **err);
	/* Pause to disk (NULL: unsupported). save stops the VM and writes its whole state, RAM
	 * included; load loads such a state into a VM started with cfg->resume_state and
	 * resumes it. */
	int (*save)(struct vmm_instance *vm, const char *state_path, bool keep_running,
		    int64_t deadline_ms, struct ember_error **err);
	int (*load)(struct vmm_instance *vm, const char *state_path, int64_t deadline_ms,
		    struct ember_error **err);
	/* load maps the saved RAM file privately (copy-on-write: Firecracker's File backend)
	 * instead of copying it into the VM (QEMU's migration stream). */
	bool load_maps_ram;
	/* Runs a VM that load left stopped (vm->load_stopped). NULL: none can be. */
	int (*run)(struct vmm_instance *vm, int64_t deadline_ms, struct ember_error **err);
	void (*free_driver)(struct vmm_driver *drv);
	/* After a restart, for a VM of an earlier daemon that is not re-attached: kills what the
	 * run-directory sweep cannot find and removes what the driver keeps elsewhere (a jail).
	 * Returns how many processes it killed. NULL: nothing outside the run directory. */
	unsigned (*cleanup_stray)(struct vmm_driver *drv, const char *sandbox_id);
	/* Whether the driver places its VMM in a host cgroup by its own means (a jailer does, with
	 * its own limits). NULL or false: vmm.c makes one per VM when host cgroups are in use. */
	bool (*own_cgroup)(const struct vmm_driver *drv);
	/* The driver starts its VMMs with jail_spawn() (as vm->uid, in vm->cgroup_fd) when
	 * drv->jailed; vmm.c decides drv->jailed and owns the uids. */
	bool jails;
	/* A save ends every connection to the agent (vmm.h vmm_agent_after_save()) and writes
	 * guest RAM to the companion file (vmm.h VMM_SAVED_MEM_SUFFIX). */
	bool save_resets_agent;
	bool saves_memory_apart;
	/* The VMM opens its TAP by name (vmm.h vmm_driver_tap_by_name()). */
	bool tap_by_name;
	/* How its VMMs show host directories (vmm.h vmm_driver_mount_kind()). */
	enum vmm_mount_kind mount_kind;
};

struct vmm_driver {
	const struct vmm_driver_ops *ops;
	enum vmm_accel accel;          /* resolved: KVM or TCG */
	char accel_reason[160];
	char description[320];
	char vmm_path[PATH_MAX];       /* absolute path of the VMM binary */
	unsigned long host_tsc_khz;    /* for the TCG kernel command line */
	char kernel_args[VMM_KERNEL_ARGS_MAX + 1]; /* --kernel-args, validated; may be empty */
	bool cgroups;                  /* per-VMM cgroup v2 limits in use */
	char cgroup_root[PATH_MAX];
	char cgroup_status[320];
	struct console_reader *consoles; /* reads every VM's console (console.h) */
	bool jailed;                   /* every VMM through jail_spawn() */
	struct uid_range *uids;        /* the VMMs' uids (jailed only) */
	struct vmm_driver *next;       /* vmm.c's registry of drivers (the stray sweep) */
	void *priv;                    /* the driver's own settings (a jailer, its paths) */
};

struct vmm_instance {
	struct vmm_driver *drv;
	pid_t pid;
	int pidfd;
	uint64_t start_ticks;
	bool reaped;
	bool in_cgroup;                /* a host cgroup was made for this VM: remove it at stop */
	int serving_nice;              /* the nice of VMM_PRIO_SERVING (its cpu_weight's) */
	bool attached;                 /* started by an earlier daemon */
	bool load_stopped;             /* ops->load leaves the VM stopped (cfg->resume_stopped) */
	int ram_fd;                    /* the VM's own memfd RAM (loaded from a saved state:
					* vmm.c loads_into_own_memory), or -1 */
	uid_t uid;                     /* jailed: its own uid (= gid), from drv->uids; else 0 */
	int cgroup_fd;                 /* during ops->start: a cgroup v2 directory to spawn the
					* VMM into (CLONE_INTO_CGROUP), or -1 */
	bool cgroup_joined;            /* the driver spawned it into cgroup_fd (CLONE_INTO_CGROUP) */
	char sandbox_id[72];
	char run_dir[PATH_MAX];
	/* The guest console (console.h): made by vmm.c before ops->start, whose VMM gets
	 * console_vmm_fd() as stdout and stderr. */
	struct console *console;
	void *priv;
};

/* Shared by drivers: the kernel command line for a boot config and the driver's accelerator. */
int vmm_kernel_cmdline(const struct vmm_driver *drv, const struct vmm_boot_config *cfg, char *out,
		       size_t size, struct ember_error **err);

/* vmm_alive() for callbacks that take a void *ctx (unix_connect_until): ctx is the instance. */
bool vmm_alive_ctx(void *vm);

/* Waits on the VMM's pidfd until the process exits (true; also when there is no pidfd) or
 * deadline_ms passes (false). Never reaps: vmm.c does that in vmm_stop(). */
bool vmm_wait_exit(struct vmm_instance *vm, int64_t deadline_ms);

/* Creates a driver from explicit ops: how vmm_driver_create() picks a real driver, and how unit
 * tests plug in a fake one (production code never passes its own ops). */
int vmm_driver_create_with_ops(const struct vmm_driver_ops *ops,
			       const struct vmm_driver_config *cfg, struct vmm_driver **out,
			       struct ember_error **err);

extern const struct vmm_driver_ops vmm_qemu_ops;
extern const struct vmm_driver_ops vmm_firecracker_ops;

#endif
