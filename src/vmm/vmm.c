/* vmm.c - driver selection and the lifecycle every driver shares (spawned process, pidfd,
 * stop-then-kill, reaping). */
#include "vmm/vmm.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/timeutil.h"
#include "vmm/accel.h"
#include "vmm/cgroup.h"
#include "vmm/driver.h"
#include "vmm/proc.h"

/* Every guest's base command line; each argument's reason is in docs/images.md ("How the VMM
 * drivers boot it"). The TCG-only arguments are added in vmm_kernel_cmdline(). */
#define CMDLINE_BASE "console=ttyS0 panic=-1 reboot=t quiet"

int vmm_parse_accel(const char *text, enum vmm_accel *out)
{
	if (strcmp(text, "auto") == 0)
		*out = VMM_ACCEL_AUTO;
	else if (strcmp(text, "kvm") == 0)
		*out = VMM_ACCEL_KVM;
	else if (strcmp(text, "tcg") == 0)
		*out = VMM_ACCEL_TCG;
	else
		return -1;
	return 0;
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

static void resolve_accel(struct vmm_driver *drv, enum vmm_accel requested)
{
	switch (requested) {
	case VMM_ACCEL_KVM:
		drv->accel = VMM_ACCEL_KVM;
		snprintf(drv->accel_reason, sizeof(drv->accel_reason), "requested");
		break;
	case VMM_ACCEL_TCG:
		drv->accel = VMM_ACCEL_TCG;
		snprintf(drv->accel_reason, sizeof(drv->accel_reason), "requested");
		break;
	case VMM_ACCEL_AUTO:
		drv->accel = accel_kvm_usable(drv->accel_reason, sizeof(drv->accel_reason))
				     ? VMM_ACCEL_KVM
				     : VMM_ACCEL_TCG;
		break;
	}
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
	resolve_accel(drv, cfg->accel);
	probe_cgroups(drv, cfg->cgroup_root);
	if (ops->init(drv, cfg, err) < 0) {
		ember_error_wrap(err, "%s driver", ops->name);
		vmm_driver_free(drv);
		return -1;
	}
	*out = drv;
	return 0;
}

void vmm_driver_free(struct vmm_driver *drv)
{
	if (drv == NULL)
		return;
	if (drv->ops->free_driver != NULL)
		drv->ops->free_driver(drv);
	console_reader_free(drv->consoles);
	free(drv);
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

/* Moves the freshly spawned VMM into its own cgroup. The VMM runs unconstrained only for the
 * moment between fork and this write; it spawns no children of its own (QEMU runs with
 * -sandbox spawn=deny), so migrating the one process is enough. */
static int join_cgroup(struct vmm_instance *vm, const struct vmm_boot_config *cfg,
		       struct ember_error **err)
{
	struct cgroup_limits limits = {
		.memory_bytes = ((uint64_t)cfg->memory_mib + CGROUP_VMM_OVERHEAD_MIB) << 20,
		.vcpus = cfg->vcpus,
		.pids = CGROUP_VMM_PIDS_MAX,
	};
	_cleanup_close_ int fd = -1;
	char pid[32];
	int n;

	if (cgroup_create(vm->drv->cgroup_root, vm->sandbox_id, &limits, &fd, err) < 0)
		return -1;
	vm->in_cgroup = true;
	n = snprintf(pid, sizeof(pid), "%d", (int)vm->pid);
	if (write(fd, pid, (size_t)n) != n)
		return ember_error_sys(err, "move VMM %d into its cgroup", (int)vm->pid);
	return 0;
}

/* Whether vmm.c gives each of drv's VMMs a host cgroup of its own. */
static bool makes_cgroup(const struct vmm_driver *drv)
{
	return drv->cgroups && (drv->ops->own_cgroup == NULL || !drv->ops->own_cgroup(drv));
}

/* The phases of vmm_start() after the handle exists: spawn (the driver), confine, restore.
 * On failure the caller stops whatever was spawned. */
static int start_vm(struct vmm_instance *vm, const struct vmm_boot_config *cfg,
		    struct ember_error **err)
{
	const struct vmm_driver_ops *ops = vm->drv->ops;

	if (ops->start(vm, cfg, err) < 0)
		return -1;
	if (proc_start_ticks(vm->pid, &vm->start_ticks) < 0)
		vm->start_ticks = 0; /* it died already: the boot will notice */
	if (makes_cgroup(vm->drv) && join_cgroup(vm, cfg, err) < 0)
		return -1;
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

	if (vm == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	vm->drv = drv;
	vm->pid = -1;
	vm->pidfd = -1;
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
	if (start_vm(vm, cfg, err) < 0) {
		/* The driver may have spawned before failing: make sure nothing is left. */
		vmm_stop(vm, time_mono_ms() + 2000, NULL);
		vmm_instance_free(vm);
		return -1;
	}
	*out = vm;
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
	vm->pid = pid;
	vm->start_ticks = start_ticks;
	vm->attached = true;
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
	if (proc_start_ticks(pid, &ticks) < 0 || ticks != start_ticks ||
	    drv->ops->attach(vm, err) < 0) {
		ember_error_set(err, EMBER_E_GUEST, ESRCH, "VMM process %d changed while attaching",
				(int)pid);
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
	const pid_t *keep;
	size_t nkeep;
	unsigned killed;
};

static void kill_stray(pid_t pid, void *arg)
{
	struct stray_ctx *ctx = arg;
	size_t i;

	for (i = 0; i < ctx->nkeep; i++) {
		if (ctx->keep[i] == pid)
			return;
	}
	if (kill(pid, SIGKILL) == 0)
		ctx->killed++;
}

unsigned vmm_kill_strays(const char *run_dir, const pid_t *keep, size_t nkeep)
{
	struct stray_ctx ctx = { .keep = keep, .nkeep = nkeep };
	char needle[4200];

	snprintf(needle, sizeof(needle), "%s/sb_", run_dir);
	proc_for_each_mentioning(needle, kill_stray, &ctx);
	/* A template VM being built when the daemon died: its template is rebuilt anyway. */
	snprintf(needle, sizeof(needle), "%s/templates/", run_dir);
	proc_for_each_mentioning(needle, kill_stray, &ctx);
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
	console_free(vm->console);
	free(vm);
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
