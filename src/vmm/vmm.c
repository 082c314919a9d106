/* vmm.c - driver selection and the lifecycle every driver shares (spawned process, pidfd,
 * stop-then-kill, reaping), and what a jailed VMM is owed: its uid, its cgroup at spawn, and
 * an identity the stray sweep checks.
 *
 * Registry: the drivers alive in this process, in a locked list, because the stray sweep
 * (vmm_kill_strays) is handed only a run directory and must ask each driver whether a process
 * is one of its VMMs. A daemon has one driver; tools may have none. */
#include "vmm/vmm.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "vmm/accel.h"
#include "vmm/cgroup.h"
#include "vmm/driver.h"
#include "vmm/guestmem.h"
#include "vmm/jail.h"
#include "vmm/priority.h"
#include "vmm/proc.h"
#include "vmm/uidrange.h"

/* Every guest's base command line; each argument's reason is in docs/images.md ("How the VMM
 * drivers boot it"). The TCG-only arguments are added in vmm_kernel_cmdline(). */
#define CMDLINE_BASE "console=ttyS0 panic=-1 reboot=t quiet"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vmm_driver *registry; /* guarded by registry_lock */

enum opt_result vmm_opt_set_accel(const struct opt_spec *spec, const char *arg, void *target,
				  struct ember_error **err)
{
	static const char *const names[] = { [VMM_ACCEL_AUTO] = "auto", [VMM_ACCEL_KVM] = "kvm",
					     [VMM_ACCEL_TCG] = "tcg" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(arg, names[i]) == 0) {
			*OPT_FIELD(target, spec, enum vmm_accel) = (enum vmm_accel)i;
			return OPT_OK;
		}
	}
	ember_error_set(err, EMBER_E_INVALID, 0, "--%s must be auto, kvm or tcg (got `%.100s`)",
			spec->name, arg);
	return OPT_BAD_VALUE;
}

int vmm_driver_create(const struct vmm_driver_config *cfg, struct vmm_driver **out,
		      struct ember_error **err)
{
	if (strcmp(cfg->name, "qemu") == 0)
		return vmm_driver_create_with_ops(&vmm_qemu_ops, cfg, out, err);
	if (strcmp(cfg->name, "firecracker") == 0)
		return vmm_driver_create_with_ops(&vmm_firecracker_ops, cfg, out, err);
	return ember_error_set(err, EMBER_E_INVALID, 0,
			       "unknown VMM `%s` (expected qemu or firecracker)", cfg->name);
}

/* KVM asked for is probed like auto's: a daemon that cannot use it refuses to start rather than
 * fail every boot (or, on a nested /dev/kvm, run guests ~1000x slower than TCG). */
static int resolve_accel(struct vmm_driver *drv, enum vmm_accel requested,
			 struct ember_error **err)
{
	bool usable;

	if (requested == VMM_ACCEL_TCG) {
		drv->accel = VMM_ACCEL_TCG;
		snprintf(drv->accel_reason, sizeof(drv->accel_reason), "requested");
		return 0;
	}
	usable = accel_kvm_usable(drv->accel_reason, sizeof(drv->accel_reason));
	if (requested == VMM_ACCEL_KVM && !usable)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "--accel kvm: KVM is not usable here: %s", drv->accel_reason);
	if (requested == VMM_ACCEL_KVM)
		snprintf(drv->accel_reason, sizeof(drv->accel_reason), "requested");
	drv->accel = usable ? VMM_ACCEL_KVM : VMM_ACCEL_TCG;
	return 0;
}

static void probe_cgroups(struct vmm_driver *drv, const char *cgroup_root)
{
	if (cgroup_root != NULL && strcmp(cgroup_root, "none") == 0) {
		snprintf(drv->cgroup_status, sizeof(drv->cgroup_status), "disabled (--cgroup-root none)");
		return;
	}
	snprintf(drv->cgroup_root, sizeof(drv->cgroup_root), "%s",
		 cgroup_root != NULL ? cgroup_root : "/sys/fs/cgroup");
	drv->cgroups = cgroup_probe(drv->cgroup_root, drv->cgroup_status,
				    sizeof(drv->cgroup_status));
}

/* The jail's mount point: an empty root-owned directory, never a symlink. */
static int make_jail_root(struct ember_error **err)
{
	struct stat st;

	if (mkdir(VMM_JAIL_ROOT, 0755) < 0 && errno != EEXIST)
		return ember_error_sys(err, "create `%s`", VMM_JAIL_ROOT);
	if (lstat(VMM_JAIL_ROOT, &st) < 0)
		return ember_error_sys(err, "`%s`", VMM_JAIL_ROOT);
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) != 0)
		return ember_error_set(err, EMBER_E_INTERNAL, EPERM,
				       "`%s` must be a directory owned by root, writable by root only",
				       VMM_JAIL_ROOT);
	return 0;
}

/* Decides whether drv jails its VMMs: always when it can and the daemon is root, unless
 * --no-jail. A root daemon on a kernel that cannot jail refuses to start instead of quietly
 * running every VMM as root. The outcome goes into the driver's description (/healthz). */
static int set_up_jail(struct vmm_driver *drv, const struct vmm_driver_config *cfg,
		       struct ember_error **err)
{
	uid_t base = cfg->vmm_uid_base != 0 ? cfg->vmm_uid_base : VMM_UID_BASE_DEFAULT;
	char why[256];
	size_t len = strlen(drv->description);
	char *tail = drv->description + len;
	size_t room = sizeof(drv->description) - len;

	/* A driver with a jailer of its own (Firecracker) decided in its init whether it jails,
	 * and handles --no-jail itself; it gets its VMMs' uids from the same range. */
	if (!drv->ops->jails) {
		if (!drv->jailed)
			return 0;
		if (uid_range_create(base, VMM_UID_RANGE_SIZE, &drv->uids, err) < 0)
			return ember_error_wrap(err, "VMM jail");
		snprintf(tail, room, "; jailed: uid/gid %u-%u, one per VM", (unsigned)base,
			 (unsigned)(base + VMM_UID_RANGE_SIZE - 1));
		return 0;
	}
	if (cfg->no_jail) {
		snprintf(tail, room, "; NOT JAILED (--no-jail): every VMM runs as %s",
			 geteuid() == 0 ? "root" : "the daemon's user");
		return 0;
	}
	if (!jail_supported(why, sizeof(why))) {
		if (geteuid() == 0)
			return ember_error_set(err, EMBER_E_INTERNAL, 0,
					       "cannot jail VMMs: %s (--no-jail runs them unjailed, "
					       "as root)", why);
		snprintf(tail, room, "; not jailed: %s", why);
		return 0;
	}
	if (make_jail_root(err) < 0 ||
	    uid_range_create(base, VMM_UID_RANGE_SIZE, &drv->uids, err) < 0)
		return ember_error_wrap(err, "VMM jail");
	drv->jailed = true;
	snprintf(tail, room, "; jailed: uid/gid %u-%u, no capabilities, own namespaces",
		 (unsigned)base, (unsigned)(base + VMM_UID_RANGE_SIZE - 1));
	return 0;
}

int vmm_driver_create_with_ops(const struct vmm_driver_ops *ops,
			       const struct vmm_driver_config *cfg, struct vmm_driver **out,
			       struct ember_error **err)
{
	struct vmm_driver *drv;

	if (cfg->kernel_args != NULL && vmm_check_kernel_args(cfg->kernel_args, err) < 0)
		return -1;
	drv = calloc(1, sizeof(*drv));
	if (drv == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	drv->ops = ops;
	if (console_reader_create(&drv->consoles, err) < 0) {
		free(drv);
		return -1;
	}
	drv->host_tsc_khz = accel_host_tsc_khz();
	snprintf(drv->kernel_args, sizeof(drv->kernel_args), "%s",
		 cfg->kernel_args != NULL ? cfg->kernel_args : "");
	if (resolve_accel(drv, cfg->accel, err) < 0) {
		vmm_driver_free(drv);
		return -1;
	}
	probe_cgroups(drv, cfg->cgroup_root);
	if (ops->init(drv, cfg, err) < 0 || set_up_jail(drv, cfg, err) < 0) {
		ember_error_wrap(err, "%s driver", ops->name);
		vmm_driver_free(drv);
		return -1;
	}
	pthread_mutex_lock(&registry_lock);
	drv->next = registry;
	registry = drv;
	pthread_mutex_unlock(&registry_lock);
	*out = drv;
	return 0;
}

void vmm_driver_free(struct vmm_driver *drv)
{
	struct vmm_driver **p;

	if (drv == NULL)
		return;
	pthread_mutex_lock(&registry_lock);
	for (p = &registry; *p != NULL; p = &(*p)->next) {
		if (*p == drv) {
			*p = drv->next;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	if (drv->ops->free_driver != NULL)
		drv->ops->free_driver(drv);
	console_reader_free(drv->consoles);
	uid_range_free(drv->uids);
	free(drv);
}

bool vmm_driver_jailed(const struct vmm_driver *drv)
{
	return drv->jailed;
}

bool vmm_driver_tap_by_name(const struct vmm_driver *drv)
{
	return drv->ops->tap_by_name;
}

enum vmm_mount_kind vmm_driver_mount_kind(const struct vmm_driver *drv)
{
	return drv->ops->mount_kind;
}

const char *vmm_driver_name(const struct vmm_driver *drv)
{
	return drv->ops->name;
}

const char *vmm_driver_binary(const struct vmm_driver *drv)
{
	return drv->vmm_path;
}

const char *vmm_driver_description(const struct vmm_driver *drv)
{
	return drv->description;
}

const char *vmm_driver_cgroup_status(const struct vmm_driver *drv)
{
	return drv->cgroup_status;
}

const char *vmm_driver_accel_name(const struct vmm_driver *drv)
{
	return drv->accel == VMM_ACCEL_KVM ? "kvm" : "tcg";
}

int vmm_check_kernel_args(const char *args, struct ember_error **err)
{
	const char *p;

	if (strlen(args) > VMM_KERNEL_ARGS_MAX)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "--kernel-args is longer than %d bytes", VMM_KERNEL_ARGS_MAX);
	/* Plain words only: no quotes (the kernel would parse them, Firecracker's JSON too), no
	 * control characters, and nothing that reaches the guest agent's own options. */
	for (p = args; *p != '\0'; p++) {
		if (!isalnum((unsigned char)*p) && strchr(" _-.,=:/+", *p) == NULL)
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "--kernel-args may hold only letters, digits, "
					       "spaces and _-.,=:/+ (found `%c`)", *p);
	}
	if (strstr(args, "emberd.") != NULL || strstr(args, "init=") != NULL) /* rdinit= too */
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "--kernel-args must not set init=, rdinit= or emberd.* "
				       "(the daemon owns them)");
	return 0;
}

const char *vmm_driver_kernel_args(const struct vmm_driver *drv)
{
	return drv->kernel_args;
}

int vmm_kernel_cmdline(const struct vmm_driver *drv, const struct vmm_boot_config *cfg, char *out,
		       size_t size, struct ember_error **err)
{
	char tcg[128] = "";
	int n;

	if (drv->accel == VMM_ACCEL_TCG)
		snprintf(tcg, sizeof(tcg), " lpj=2000000 no_timer_check tsc=reliable tsc_early_khz=%lu",
			 drv->host_tsc_khz != 0 ? drv->host_tsc_khz : 2000000UL);
	/* The operator's arguments come after ours (the kernel takes the last of a repeated
	 * one) and before emberd.*, which they may not set. */
	n = snprintf(out, size, "%s%s%s%s%s%s", CMDLINE_BASE, tcg,
		     drv->kernel_args[0] != '\0' ? " " : "", drv->kernel_args,
		     cfg->cmdline_extra != NULL ? " " : "",
		     cfg->cmdline_extra != NULL ? cfg->cmdline_extra : "");
	if (n < 0 || (size_t)n >= size)
		return ember_error_set(err, EMBER_E_INTERNAL, 0, "kernel command line too long");
	return 0;
}

/* Makes the VM's cgroup before its VMM exists: a jailed VMM is spawned into it
 * (CLONE_INTO_CGROUP), so it never runs unconstrained. */
static int make_cgroup(struct vmm_instance *vm, const struct vmm_boot_config *cfg, int *dir_fd,
		       struct ember_error **err)
{
	struct cgroup_limits limits = {
		.memory_bytes = ((uint64_t)cfg->memory_mib + CGROUP_VMM_OVERHEAD_MIB) << 20,
		.vcpus = cfg->vcpus,
		.pids = CGROUP_VMM_PIDS_MAX,
		.idle = prio_spawn() == VMM_PRIO_IDLE,
	};

	if (cgroup_create(vm->drv->cgroup_root, vm->sandbox_id, &limits, dir_fd, err) < 0)
		return -1;
	vm->in_cgroup = true;
	return 0;
}

/* Whether vmm.c gives each of drv's VMMs a host cgroup of its own. */
static bool makes_cgroup(const struct vmm_driver *drv)
{
	return drv->cgroups && (drv->ops->own_cgroup == NULL || !drv->ops->own_cgroup(drv));
}

/* A VM loaded from a whole saved state by a driver whose loads copy the RAM into the VM (QEMU)
 * gets a memfd of its own as RAM: loaded while the VM is stopped, its zero pages freed, then
 * run. Loaded into plain RAM instead, the guest's whole RAM stays resident (~1.1x memory_mib,
 * also with transparent huge pages disabled: measured, cause unknown), against about what the
 * guest had touched. */
static bool loads_into_own_memory(const struct vmm_driver *drv, const struct vmm_boot_config *cfg)
{
	return cfg->resume_state != NULL && !cfg->resume_stopped && cfg->memory_fd <= 0 &&
	       cfg->memory_file == NULL && !drv->ops->load_maps_ram && drv->ops->run != NULL;
}

/* Loads cfg->resume_state; own_memfd >= 0: it is the VM's RAM (loads_into_own_memory). */
static int load_vm(struct vmm_instance *vm, const struct vmm_boot_config *cfg, int own_memfd,
		   struct ember_error **err)
{
	const struct vmm_driver_ops *ops = vm->drv->ops;
	uint64_t kept;

	vm->load_stopped = cfg->resume_stopped || own_memfd >= 0;
	if (ops->load == NULL)
		ember_error_set(err, EMBER_E_UNAVAILABLE, 0, "the %s driver cannot resume",
				ops->name);
	if (ops->load == NULL || ops->load(vm, cfg->resume_state, cfg->deadline_ms, err) < 0)
		return ember_error_wrap(err, "resume from `%s`", cfg->resume_state);
	if (own_memfd < 0)
		return 0;
	if (guestmem_drop_zero_pages(own_memfd, &kept, err) < 0 ||
	    ops->run(vm, cfg->deadline_ms, err) < 0)
		return ember_error_wrap(err, "resume from `%s`", cfg->resume_state);
	return 0;
}

/* The phases of vmm_start() after the handle exists: spawn (the driver), confine, restore.
 * On failure the caller stops whatever was spawned. */
static int start_vm(struct vmm_instance *vm, const struct vmm_boot_config *cfg, int own_memfd,
		    struct ember_error **err)
{
	const struct vmm_driver_ops *ops = vm->drv->ops;
	_cleanup_close_ int cgroup_dir = -1;
	int ret;

	if (vm->drv->jailed && uid_range_alloc(vm->drv->uids, &vm->uid, err) < 0)
		return -1;
	if (makes_cgroup(vm->drv) && make_cgroup(vm, cfg, &cgroup_dir, err) < 0)
		return -1;
	/* A jailed VMM is spawned into its cgroup; a test's stand-in tree cannot take that. */
	vm->cgroup_fd = cgroup_dir >= 0 && cgroup_is_cgroupfs(cgroup_dir) ? cgroup_dir : -1;
	ret = ops->start(vm, cfg, err);
	vm->cgroup_fd = -1;
	if (ret < 0)
		return -1;
	if (proc_start_ticks(vm->pid, &vm->start_ticks) < 0)
		vm->start_ticks = 0; /* it died already: the boot will notice */
	/* Otherwise it joins after the fork: it runs unconstrained for that moment only, and
	 * spawns no children of its own (QEMU runs with -sandbox spawn=deny). */
	if (cgroup_dir >= 0 && !vm->cgroup_joined && cgroup_join(cgroup_dir, vm->pid, err) < 0)
		return -1;
	if (cfg->resume_state != NULL)
		return load_vm(vm, cfg, own_memfd, err);
	if (cfg->restore_state == NULL)
		return 0;
	if (ops->restore == NULL)
		ember_error_set(err, EMBER_E_UNAVAILABLE, 0, "the %s driver cannot restore", ops->name);
	if (ops->restore == NULL || ops->restore(vm, cfg->restore_state, cfg->deadline_ms, err) < 0)
		return ember_error_wrap(err, "restore from `%s`", cfg->restore_state);
	return 0;
}

int vmm_start(struct vmm_driver *drv, const struct vmm_boot_config *cfg,
	      struct vmm_instance **out, struct ember_error **err)
{
	struct vmm_instance *vm = calloc(1, sizeof(*vm));
	struct vmm_boot_config own;
	_cleanup_close_ int memfd = -1;
	int ret = 0;

	if (vm == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	vm->drv = drv;
	vm->serving_nice = VMM_PRIO_SERVING_NICE;
	vm->pid = -1;
	vm->pidfd = -1;
	vm->cgroup_fd = -1;
	vm->ram_fd = -1;
	snprintf(vm->sandbox_id, sizeof(vm->sandbox_id), "%s", cfg->sandbox_id);
	if (snprintf(vm->run_dir, sizeof(vm->run_dir), "%s", cfg->run_dir) >=
	    (int)sizeof(vm->run_dir)) {
		free(vm);
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "run dir path too long");
	}
	if (console_create(drv->consoles, cfg->run_dir, &vm->console, err) < 0) {
		free(vm);
		return -1;
	}
	if (loads_into_own_memory(drv, cfg)) {
		/* The VMM keeps its own descriptor of it: this one goes when the start is over. */
		own = *cfg;
		ret = guestmem_create((uint64_t)cfg->memory_mib << 20, "emberd-ram", &memfd, err);
		own.memory_fd = memfd;
		own.memory_shared = true;
		cfg = &own;
	}
	if (ret == 0)
		ret = start_vm(vm, cfg, memfd, err);
	if (ret < 0) {
		/* The driver may have spawned before failing: make sure nothing is left. */
		vmm_stop(vm, time_mono_ms() + 2000, NULL);
		vmm_instance_free(vm);
		return -1;
	}
	vm->ram_fd = steal_fd(&memfd);
	*out = vm;
	return 0;
}

static bool all_uids_in_range(const struct uid_range *r, const uid_t uids[4])
{
	size_t i;

	for (i = 0; i < 4; i++) {
		if (!uid_range_contains(r, uids[i]))
			return false;
	}
	return true;
}

/* A jailed driver re-attaches only a VMM that runs as one of its uids, not yet taken (by
 * another re-attached VMM: two records naming one process). */
static int claim_uid(struct vmm_instance *vm, struct ember_error **err)
{
	uid_t uids[4];

	if (!vm->drv->jailed)
		return 0;
	if (proc_uids(vm->pid, uids) < 0)
		return ember_error_set(err, EMBER_E_GUEST, ESRCH, "VMM process %d is gone",
				       (int)vm->pid);
	if (!all_uids_in_range(vm->drv->uids, uids) || uids[0] != uids[1] ||
	    uid_range_claim(vm->drv->uids, uids[0]) < 0)
		return ember_error_set(err, EMBER_E_GUEST, EPERM,
				       "VMM process %d runs as uid %u, not a free one of this "
				       "daemon's VMM uids (%u-%u): not re-attached", (int)vm->pid,
				       (unsigned)uids[0], (unsigned)uid_range_base(vm->drv->uids),
				       (unsigned)(uid_range_base(vm->drv->uids) +
						  uid_range_size(vm->drv->uids) - 1));
	vm->uid = uids[0];
	return 0;
}

int vmm_attach(struct vmm_driver *drv, const char *sandbox_id, const char *run_dir, pid_t pid,
	       uint64_t start_ticks, struct vmm_instance **out, struct ember_error **err)
{
	struct vmm_instance *vm;
	uint64_t ticks;

	if (drv->ops->attach == NULL)
		return ember_error_set(err, EMBER_E_UNAVAILABLE, 0,
				       "the %s driver cannot re-attach to running VMs",
				       drv->ops->name);
	if (proc_start_ticks(pid, &ticks) < 0)
		return ember_error_set(err, EMBER_E_GUEST, ESRCH, "VMM process %d is gone",
				       (int)pid);
	if (ticks != start_ticks)
		return ember_error_set(err, EMBER_E_GUEST, ESRCH,
				       "pid %d now belongs to another process", (int)pid);
	vm = calloc(1, sizeof(*vm));
	if (vm == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	vm->drv = drv;
	vm->serving_nice = VMM_PRIO_SERVING_NICE;
	vm->pid = pid;
	vm->start_ticks = start_ticks;
	vm->attached = true;
	vm->ram_fd = -1;
	/* Not our child: the pidfd is how we learn it exited; waitpid() will say ECHILD. */
	vm->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	snprintf(vm->sandbox_id, sizeof(vm->sandbox_id), "%s", sandbox_id);
	snprintf(vm->run_dir, sizeof(vm->run_dir), "%s", run_dir);
	if (vm->pidfd < 0) {
		ember_error_sys(err, "pidfd_open(%d)", (int)pid);
		free(vm);
		return -1;
	}
	/* The console keeps flowing: the VMM writes into the FIFO the earlier daemon made. */
	if (console_reopen(drv->consoles, run_dir, &vm->console, err) < 0) {
		vmm_instance_free(vm);
		return -1;
	}
	/* Re-check after opening the pidfd: the pid cannot be recycled while we hold it. */
	if (proc_start_ticks(pid, &ticks) < 0 || ticks != start_ticks) {
		ember_error_set(err, EMBER_E_GUEST, ESRCH, "VMM process %d changed while attaching",
				(int)pid);
		vmm_instance_free(vm);
		return -1;
	}
	if (claim_uid(vm, err) < 0 || drv->ops->attach(vm, err) < 0) {
		if (vm->uid != 0)
			uid_range_release(drv->uids, vm->uid);
		vmm_instance_free(vm);
		return -1;
	}
	*out = vm;
	return 0;
}

void vmm_detach(struct vmm_instance *vm)
{
	if (vm == NULL)
		return;
	if (vm->drv->ops->detach != NULL)
		vm->drv->ops->detach(vm);
	else
		free(vm->priv);
	vm->priv = NULL;
	vmm_instance_free(vm);
}

uint64_t vmm_start_ticks(const struct vmm_instance *vm)
{
	return vm->start_ticks;
}

struct stray_ctx {
	const struct vmm_driver *drv;
	struct stat exe;          /* drv's VMM binary */
	char sandboxes[PATH_MAX]; /* "<run_dir>/sb_" */
	char templates[PATH_MAX]; /* "<run_dir>/templates/" */
	const pid_t *keep;
	size_t nkeep;
	unsigned killed;
};

static bool names_this_run_dir(const struct stray_ctx *ctx, pid_t pid)
{
	return proc_cmdline_contains(pid, ctx->sandboxes) ||
	       proc_cmdline_contains(pid, ctx->templates);
}

/* Whether pid is a VMM of ctx->drv serving this run directory. For a driver that jails
 * (QEMU), by identity: its binary, and one of the driver's uids (or root: a VMM of an earlier,
 * unjailed daemon, or --no-jail), and a command line naming one of this run directory's VMs:
 * another daemon's VMMs (another run directory, perhaps the same uid range) are never touched,
 * nor anyone else's process that merely names the directory. A driver that does not jail
 * (Firecracker, which has its own jailer) keeps the command-line rule. */
static bool is_stray_vmm(const struct stray_ctx *ctx, pid_t pid)
{
	const struct vmm_driver *drv = ctx->drv;
	uid_t uids[4];

	if (!drv->ops->jails)
		return names_this_run_dir(ctx, pid);
	if (!proc_exe_is(pid, &ctx->exe) || proc_uids(pid, uids) < 0)
		return false;
	if (!(drv->jailed && all_uids_in_range(drv->uids, uids)) &&
	    !(uids[0] == 0 && uids[1] == 0))
		return false;
	return names_this_run_dir(ctx, pid);
}

static void kill_stray(pid_t pid, void *arg)
{
	struct stray_ctx *ctx = arg;
	int pidfd;
	size_t i;

	for (i = 0; i < ctx->nkeep; i++) {
		if (ctx->keep[i] == pid)
			return;
	}
	if (!is_stray_vmm(ctx, pid))
		return;
	/* Checked again through a pidfd, which the pid cannot be recycled under. */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return;
	if (is_stray_vmm(ctx, pid) && syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) == 0)
		ctx->killed++;
	close(pidfd);
}

unsigned vmm_kill_strays(const char *run_dir, const pid_t *keep, size_t nkeep)
{
	struct stray_ctx ctx = { .keep = keep, .nkeep = nkeep };
	const struct vmm_driver *drv;

	snprintf(ctx.sandboxes, sizeof(ctx.sandboxes), "%s/sb_", run_dir);
	/* A template VM being built when the daemon died: its template is rebuilt anyway. */
	snprintf(ctx.templates, sizeof(ctx.templates), "%s/templates/", run_dir);
	pthread_mutex_lock(&registry_lock);
	for (drv = registry; drv != NULL; drv = drv->next) {
		ctx.drv = drv;
		if (drv->ops->jails && stat(drv->vmm_path, &ctx.exe) < 0)
			continue;
		proc_for_each(kill_stray, &ctx);
	}
	pthread_mutex_unlock(&registry_lock);
	return ctx.killed;
}

unsigned vmm_driver_cleanup_stray(struct vmm_driver *drv, const char *sandbox_id)
{
	return drv->ops->cleanup_stray != NULL ? drv->ops->cleanup_stray(drv, sandbox_id) : 0;
}

int vmm_snapshot(struct vmm_instance *vm, const char *state_path, int64_t deadline_ms,
		 struct ember_error **err)
{
	if (vm->drv->ops->snapshot == NULL)
		return ember_error_set(err, EMBER_E_UNAVAILABLE, 0, "the %s driver cannot snapshot",
				       vm->drv->ops->name);
	return vm->drv->ops->snapshot(vm, state_path, deadline_ms, err);
}

int vmm_save(struct vmm_instance *vm, const char *state_path, bool keep_running,
	     int64_t deadline_ms, struct ember_error **err)
{
	const struct vmm_driver_ops *ops = vm->drv->ops;
	uint64_t kept;

	if (ops->save == NULL)
		return ember_error_set(err, EMBER_E_CONFLICT, 0,
				       "the %s driver cannot pause sandboxes yet", ops->name);
	if (!keep_running || vm->ram_fd < 0)
		return ops->save(vm, state_path, keep_running, deadline_ms, err);
	/* Reading the whole RAM for the save gave every hole of the VM's own memfd a page: free
	 * the zero ones again while it is still stopped, then run it on. */
	if (ops->save(vm, state_path, false, deadline_ms, err) < 0)
		return -1;
	if (guestmem_drop_zero_pages(vm->ram_fd, &kept, err) < 0 ||
	    ops->run(vm, deadline_ms, err) < 0) {
		vmm_saved_state_remove(state_path);
		return ember_error_wrap(err, "run on after the save");
	}
	return 0;
}

bool vmm_driver_can_save(const struct vmm_driver *drv)
{
	return drv->ops->save != NULL && drv->ops->load != NULL;
}

int vmm_agent_after_save(struct vmm_instance *vm, int64_t deadline_ms, int *fd,
			 struct ember_error **err)
{
	*fd = -1;
	if (!vm->drv->ops->save_resets_agent)
		return 0;
	*fd = vmm_connect_agent(vm, deadline_ms, err);
	return *fd < 0 ? ember_error_wrap(err, "reconnect to the agent after the save") : 0;
}

int vmm_saved_state_path_mem(const char *state_path, char *out, size_t size,
			     struct ember_error **err)
{
	if (snprintf(out, size, "%s" VMM_SAVED_MEM_SUFFIX, state_path) >= (int)size)
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG,
				       "path `%s" VMM_SAVED_MEM_SUFFIX "` too long", state_path);
	return 0;
}

bool vmm_saved_state_is_mem(const char *name, const char *state_name)
{
	size_t n = strlen(state_name);

	return strncmp(name, state_name, n) == 0 && strcmp(name + n, VMM_SAVED_MEM_SUFFIX) == 0;
}

void vmm_saved_state_remove(const char *state_path)
{
	char mem[PATH_MAX];

	unlink(state_path);
	if (vmm_saved_state_path_mem(state_path, mem, sizeof(mem), NULL) == 0)
		unlink(mem);
}

int vmm_saved_state_size(const struct vmm_driver *drv, const char *state_path, uint64_t *bytes)
{
	char mem[PATH_MAX];
	struct stat st;

	if (lstat(state_path, &st) < 0)
		return -1;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return -1;
	}
	*bytes = (uint64_t)st.st_size;
	if (vmm_saved_state_path_mem(state_path, mem, sizeof(mem), NULL) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (lstat(mem, &st) == 0 && S_ISREG(st.st_mode)) {
		*bytes += (uint64_t)st.st_size;
		return 0;
	}
	if (drv != NULL && vmm_driver_saves_memory_apart(drv)) {
		errno = ENOENT;
		return -1;
	}
	return 0;
}

bool vmm_driver_saves_memory_apart(const struct vmm_driver *drv)
{
	return drv->ops->saves_memory_apart;
}

bool vmm_driver_loads_ram_copy_on_write(const struct vmm_driver *drv)
{
	return drv->ops->load_maps_ram;
}

bool vmm_driver_can_snapshot(const struct vmm_driver *drv)
{
	return drv->ops->snapshot != NULL && drv->ops->restore != NULL;
}

int vmm_connect_agent(struct vmm_instance *vm, int64_t deadline_ms, struct ember_error **err)
{
	return vm->drv->ops->connect_agent(vm, deadline_ms, err);
}

static void reap(struct vmm_instance *vm)
{
	if (vm->reaped || vm->pid <= 0)
		return;
	/* Not our child (re-attached after a daemon restart): ECHILD, the pidfd said it exited. */
	while (waitpid(vm->pid, NULL, 0) < 0 && errno == EINTR)
		;
	vm->reaped = true;
}

bool vmm_wait_exit(struct vmm_instance *vm, int64_t deadline_ms)
{
	struct pollfd pfd = { .fd = vm->pidfd, .events = POLLIN };

	if (vm->pidfd < 0)
		return true;
	for (;;) {
		int ret = poll(&pfd, 1, time_ms_until(deadline_ms));

		if (ret > 0)
			return true;
		if (ret == 0)
			return false;
		if (errno != EINTR)
			return false;
	}
}

int vmm_stop(struct vmm_instance *vm, int64_t deadline_ms, struct ember_error **err)
{
	(void)err;
	if (vm->pid > 0 && !vm->reaped) {
		/* An idle VMM (a pooled clone, a template VM) on a busy host might not get the CPU to
		 * act on the stop request, or even to exit once killed: it stops at the serving
		 * priority. */
		vmm_set_priority(vm, VMM_PRIO_SERVING);
		if (vm->drv->ops->request_stop != NULL && vmm_alive(vm))
			vm->drv->ops->request_stop(vm, deadline_ms);
		if (!vmm_wait_exit(vm, deadline_ms)) {
			syscall(SYS_pidfd_send_signal, vm->pidfd, SIGKILL, NULL, 0);
			vmm_wait_exit(vm, time_mono_ms() + 5000);
		}
		reap(vm);
	}
	/* After the exit: what the VMM wrote last (a panic) is read in before the fds close. */
	if (vm->console != NULL)
		console_stop(vm->console, true);
	/* Its uid is free again once nothing runs as it. */
	if (vm->uid != 0 && (vm->reaped || vm->pid <= 0 || !vmm_alive(vm))) {
		uid_range_release(vm->drv->uids, vm->uid);
		vm->uid = 0;
	}
	if (vm->drv->ops->release != NULL)
		vm->drv->ops->release(vm);
	/* A re-attached VM's cgroup was made by the earlier daemon: remove it as ours. */
	if (vm->in_cgroup || (vm->attached && makes_cgroup(vm->drv))) {
		cgroup_remove(vm->drv->cgroup_root, vm->sandbox_id);
		vm->in_cgroup = false;
	}
	return 0;
}

void vmm_instance_free(struct vmm_instance *vm)
{
	if (vm == NULL)
		return;
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	if (vm->ram_fd >= 0)
		close(vm->ram_fd);
	console_free(vm->console);
	free(vm);
}

void vmm_set_spawn_priority(enum vmm_priority prio)
{
	prio_set_spawn(prio);
}

void vmm_set_priority(struct vmm_instance *vm, enum vmm_priority prio)
{
	struct ember_error *err = NULL;

	if (vm->in_cgroup)
		cgroup_set_idle(vm->drv->cgroup_root, vm->sandbox_id, prio == VMM_PRIO_IDLE);
	if (vm->pid <= 0 || prio_apply_threads(vm->pid, prio, vm->serving_nice, &err) == 0)
		return;
	/* A VMM that died meanwhile has no threads left to change: its reaper tells. */
	if (err->errno_value != ENOENT)
		log_event(LOG_WARN, vm->sandbox_id, "vmm.priority_failed", -1, "%s", err->message);
	ember_error_free(&err);
}

void vmm_set_cpu_weight(struct vmm_instance *vm, unsigned cpu_weight)
{
	vm->serving_nice = prio_nice_for_weight(cpu_weight);
	if (vm->in_cgroup || (vm->attached && makes_cgroup(vm->drv)))
		cgroup_set_weight(vm->drv->cgroup_root, vm->sandbox_id, cpu_weight);
}

pid_t vmm_pid(const struct vmm_instance *vm)
{
	return vm->pid;
}

struct vmm_driver *vmm_instance_driver(const struct vmm_instance *vm)
{
	return vm->drv;
}

int vmm_exit_fd(const struct vmm_instance *vm)
{
	return vm->pidfd;
}

bool vmm_alive(struct vmm_instance *vm)
{
	struct pollfd pfd = { .fd = vm->pidfd, .events = POLLIN };

	if (vm->pidfd < 0 || vm->reaped)
		return false;
	return poll(&pfd, 1, 0) == 0;
}

bool vmm_alive_ctx(void *vm)
{
	return vmm_alive(vm);
}

size_t vmm_console_tail(struct vmm_instance *vm, void *out, size_t size, uint64_t *total)
{
	if (vm->console == NULL) {
		if (total != NULL)
			*total = 0;
		return 0;
	}
	return console_tail(vm->console, out, size, total);
}
