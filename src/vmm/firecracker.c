/* firecracker.c - the Firecracker driver: spawns `firecracker --api-sock` (optionally under the
 * jailer), configures the VM over its HTTP API once the socket appears, reaches the agent
 * through the hybrid vsock (`CONNECT 52`), and snapshots templates and restores clones.
 * Contract and real-host setup: docs/firecracker.md.
 *
 * A booted VM: vmm_start() only spawns; the configuration (which needs the boot deadline)
 * happens at the start of connect_agent: wait for the API socket, PUT machine-config,
 * boot-source, drives/pack, drives/mount<i> (a sandbox's read-only mounts as disks of their
 * squashfs images, docs/firecracker.md "Mounts"), vsock, entropy, network-interfaces/eth0 (a
 * networked sandbox: its persistent TAP by name, see fc_start), then InstanceStart.
 * A clone: vmm_start() spawns, then restore loads the snapshot and resumes (Firecracker refuses
 * a load after any configuration); connect_agent only connects.
 * A paused sandbox (vmm_save()): pause, then a Full snapshot of device state to the state file
 * and of every RAM page to its companion "<state>.mem" (vmm.h VMM_SAVED_MEM_SUFFIX); a resume
 * (cfg->resume_state) loads both exactly as a clone loads its template's. Firecracker maps the
 * memory file MAP_PRIVATE: a resumed VM (and every fork of one state) is a copy-on-write clone
 * of the file, which it never writes. Every save resets the vsock device: open connections end,
 * the agent's listening socket stays (vmm_agent_after_save()).
 *
 * Jailed (a root daemon's default, fc_init): the jailer forks Firecracker into a new PID
 * namespace as the VM's own uid from vmm.c's range and exits; the VMM is found through the pid
 * file it leaves in the jail. No name inside a jail is ever followed (fc_jail.h).
 *
 * Snapshots record the paths Firecracker was given. Every VM therefore runs with its own
 * directory as its working directory (the jail's "/" under the jailer) and gets the vsock
 * socket as the same relative name there: a clone binds its own socket where the template's
 * was, whichever directory it runs in. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/tap.h"
#include "util/cleanup.h"
#include "util/fdio.h"
#include "util/jsonutil.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "vmm/cgroup.h"
#include "vmm/driver.h"
#include "vmm/fc_api.h"
#include "vmm/fc_jail.h"
#include "vmm/fc_vsock.h"
#include "vmm/proc.h"
#include "vmm/spawn.h"
#include "vmm/uidrange.h"

/* The agent's vsock port (docs/protocol.md, "Transports"); emberd-init listens on it. */
#define FC_AGENT_VSOCK_PORT 52u
/* The lowest CID a guest may have (0-2 are reserved for the hypervisor, local and host). */
#define FC_GUEST_CID 3
/* Pause between vsock attempts while the agent is not listening yet: each attempt costs the
 * guest a refused connection request, and the agent needs ~1 s (KVM) to ~3 s (TCG) to boot. */
#define FC_VSOCK_RETRY_MS 10
/* One CONNECT waits at most this long for its answer, then a new connection is tried: a
 * Firecracker answers or closes at once, so a silent one is a stuck attempt, not a slow
 * guest, and must not use up the whole boot deadline. */
#define FC_VSOCK_ATTEMPT_MS 2000
/* How long SendCtrlAltDel may take to be answered during teardown. */
#define FC_STOP_REQUEST_MS 1000
/* How long a sweep after a restart waits for the stray processes it killed to exit. */
#define FC_STRAY_EXIT_MS 2000
/* At most this many stray processes of one jail are waited for (a VMM has a handful). */
#define FC_STRAY_MAX 64
#define FC_ARGV_MAX 32
/* The jailer builds the jail (copies the Firecracker binary, a few MiB, and makes a handful of
 * directories and nodes), forks Firecracker into its PID namespace and exits: milliseconds.
 * The bound only stops a hung jailer from holding a create forever. */
#define FC_JAILER_EXIT_MS 10000
/* The vsock socket, relative to the VM's working directory (see the top of this file). */
#define FC_VSOCK_NAME "v.sock"
/* A snapshot's files inside a jail: a template writes them there, a clone (or a resumed VM)
 * reads links. */
#define FC_JAIL_MEMORY "memory"
#define FC_JAIL_STATE "state"
/* What a save writes in the jail before it is moved out: never the names above, which a
 * resumed VM's RAM may still be mapped from (a write there would change its guest's memory). */
#define FC_JAIL_SAVED_MEMORY "saved-memory"
#define FC_JAIL_SAVED_STATE "saved-state"
/* How long a VM whose save failed may take to be resumed (it runs on, as QEMU's does). */
#define FC_RUN_ON_MS 5000
/* The guest's NIC: Firecracker's interface id, and the MAC it starts with (qemu.c's; the agent
 * sets the sandbox's own from HELLO, docs/guest.md). */
#define FC_NET_IFACE "eth0"
#define FC_NET_MAC "02:00:00:00:00:01"

/* drv->priv: the driver's settings. Only this file knows there is a jailer; drv->jailed says
 * whether it is used (decided in fc_init, the uids then come from vmm.c). */
struct fc_driver {
	char jailer_path[PATH_MAX];    /* absolute; empty when not jailed */
	struct fc_jail_settings jail;
};

struct fc_vm {
	char id[FC_ID_MAX + 1];
	/* Host paths of the sockets Firecracker creates. */
	char api_sock[108];
	char vsock_sock[108];
	/* The paths as Firecracker sees them (inside the chroot when jailed). */
	char kernel[PATH_MAX];
	char initramfs[PATH_MAX];
	char pack[PATH_MAX];
	/* The mounts' images, drives "mount<i>" after the pack (vmm.h struct vmm_mount). */
	char mounts[VMM_MOUNTS_MAX][PATH_MAX];
	size_t nmounts;
	char vsock_uds[PATH_MAX];
	char restore_state[PATH_MAX];   /* a clone's snapshot files, or a resumed VM's saved ones */
	char restore_memory[PATH_MAX];
	/* Host path a template's snapshot puts guest RAM in (cfg->memory_file; empty: none). */
	char memory_file[PATH_MAX];
	char cmdline[1024];
	char tap[IFNAMSIZ];  /* the host TAP Firecracker opens by name (empty: no NIC) */
	unsigned vcpus;
	unsigned memory_mib;
	bool configured;  /* every PUT and InstanceStart succeeded, or the snapshot loaded */
	bool paused;      /* PATCH /vm Paused succeeded (a snapshot or a save) and no Resumed since */
	bool jailed;
	struct fc_jail jail;
};

/* The jailer to use when none was named: `jailer` beside the Firecracker binary (a release
 * ships both in one directory), else on PATH. false when there is none. */
static bool find_jailer(const struct vmm_driver *drv, char *out, const char **where)
{
	struct ember_error *ignored = NULL;
	char beside[PATH_MAX];
	const char *slash = strrchr(drv->vmm_path, '/');
	struct stat st;

	if (slash != NULL &&
	    snprintf(beside, sizeof(beside), "%.*s/jailer", (int)(slash - drv->vmm_path),
		     drv->vmm_path) < (int)sizeof(beside) &&
	    stat(beside, &st) == 0 && S_ISREG(st.st_mode) && access(beside, X_OK) == 0 &&
	    vmm_find_binary(beside, out, &ignored) == 0) {
		*where = "beside the firecracker binary";
		return true;
	}
	ember_error_free(&ignored);
	if (vmm_find_binary("jailer", out, &ignored) == 0) {
		*where = "on PATH";
		return true;
	}
	ember_error_free(&ignored);
	return false;
}

/* Whether and with which jailer Firecracker runs; appends what was decided to out (the
 * driver's description). A root daemon jails unless --no-jail; it refuses to start when no
 * jailer can be found rather than run every Firecracker as root. */
static int init_jailer(struct vmm_driver *drv, struct fc_driver *fcd,
		       const struct vmm_driver_config *cfg, char *out, size_t size,
		       struct ember_error **err)
{
	const char *exec_name, *where = "--jailer";

	if (cfg->no_jail) {
		if (cfg->jailer_bin != NULL)
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "--jailer and --no-jail contradict each other");
		snprintf(out, size, "; NOT JAILED (--no-jail): every VMM runs as %s",
			 geteuid() == 0 ? "root" : "the daemon's user");
		return 0;
	}
	if (geteuid() != 0) {
		if (cfg->jailer_bin != NULL)
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "--jailer needs a daemon running as root (the jailer "
					       "chroots and changes uid)");
		snprintf(out, size, "; not jailed: the daemon does not run as root");
		return 0;
	}
	if (cfg->jailer_bin != NULL) {
		if (vmm_find_binary(cfg->jailer_bin, fcd->jailer_path, err) < 0)
			return ember_error_wrap(err, "jailer");
	} else if (!find_jailer(drv, fcd->jailer_path, &where)) {
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "no Firecracker jailer: --jailer not given, no `jailer` beside "
				       "`%s` nor on PATH; install the release's jailer "
				       "(docs/firecracker.md) or pass --no-jail to run every "
				       "Firecracker as root", drv->vmm_path);
	}
	/* The jailer refuses an --exec-file whose name lacks "firecracker". */
	exec_name = strrchr(drv->vmm_path, '/');
	exec_name = exec_name != NULL ? exec_name + 1 : drv->vmm_path;
	if (strstr(exec_name, "firecracker") == NULL)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "the jailer only runs a binary whose name contains "
				       "`firecracker` (got `%s`)", drv->vmm_path);
	if (fc_jail_settings_load(&fcd->jail, err) < 0)
		return -1;
	/* vmm.c gives a driver that jails its own way the uids of its range (one per VM). */
	drv->jailed = true;
	log_event(LOG_INFO, NULL, "firecracker.jailer", -1,
		  "using the jailer %s (%s); chroot base %s; each VM in its own mount and PID "
		  "namespaces", fcd->jailer_path, where, fcd->jail.chroot_base);
	/* Short: the description holds 320 bytes, and vmm.c appends the uid range. */
	snprintf(out, size, ", jailer %s", fcd->jailer_path);
	return 0;
}

static int fc_init(struct vmm_driver *drv, const struct vmm_driver_config *cfg,
		   struct ember_error **err)
{
	const char *bin = cfg->firecracker_bin != NULL ? cfg->firecracker_bin : "firecracker";
	struct fc_driver *fcd;
	char jailer[PATH_MAX + 160] = "";

	if (vmm_find_binary(bin, drv->vmm_path, err) < 0)
		return ember_error_wrap(err, "Firecracker (a release binary, see docs/firecracker.md)");
	fcd = calloc(1, sizeof(*fcd));
	if (fcd == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	drv->priv = fcd;
	if (init_jailer(drv, fcd, cfg, jailer, sizeof(jailer), err) < 0)
		return -1;
	if (drv->accel == VMM_ACCEL_KVM)
		snprintf(drv->description, sizeof(drv->description), "firecracker %s (kvm: %s)%s",
			 drv->vmm_path, drv->accel_reason, jailer);
	else
		/* Firecracker itself always needs KVM; only a test double boots guests here. */
		snprintf(drv->description, sizeof(drv->description),
			 "firecracker %s (KVM unusable: %s; guests get the TCG command line)%s",
			 drv->vmm_path, drv->accel_reason, jailer);
	return 0;
}

static void fc_free_driver(struct vmm_driver *drv)
{
	free(drv->priv);
	drv->priv = NULL;
}

/* The jailer puts Firecracker in a cgroup of its own, with the limits fc_start() passes. */
static bool fc_own_cgroup(const struct vmm_driver *drv)
{
	return drv->jailed;
}

/* Socket paths must fit sun_path (108 bytes): fail early with a clear message. */
static int sock_path(char *out, size_t size, const char *dir, const char *name,
		     struct ember_error **err)
{
	int n = snprintf(out, size, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= size)
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG,
				       "socket path `%s/%s` exceeds %zu bytes: use a shorter "
				       "--run-dir", dir, name, size - 1);
	return 0;
}

static int copy_path(char *out, size_t size, const char *path, struct ember_error **err)
{
	if (snprintf(out, size, "%s", path) >= (int)size)
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "path `%s` too long",
				       path);
	return 0;
}

/* How Firecracker is told about host_path: as it is, or hard-linked into the jail as
 * "/<jail_name>". */
static int vm_path(struct fc_vm *f, const char *host_path, const char *jail_name, char *out,
		   size_t size, struct ember_error **err)
{
	if (f->jailed)
		return fc_jail_link(&f->jail, host_path, jail_name, out, size, err);
	return copy_path(out, size, host_path, err);
}

/* A load's two files (a clone's template snapshot, or a resumed VM's saved state), as
 * Firecracker is told them: linked (or copied) into the jail, or named as they are. */
static int setup_load_paths(struct fc_vm *f, const struct vmm_boot_config *cfg,
			    struct ember_error **err)
{
	if (cfg->resume_state != NULL) {
		/* A paused sandbox's two files, linked like a clone's (the daemon's, 0644 when a
		 * jailed save moved them out: fc_jail_take): the saved VM reopens its pack at the
		 * path the save recorded, as a clone does. */
		char memory[PATH_MAX];

		if (vmm_saved_state_path_mem(cfg->resume_state, memory, sizeof(memory), err) < 0 ||
		    vm_path(f, cfg->resume_state, FC_JAIL_STATE, f->restore_state,
			    sizeof(f->restore_state), err) < 0)
			return -1;
		return vm_path(f, memory, FC_JAIL_MEMORY, f->restore_memory,
			       sizeof(f->restore_memory), err);
	}
	/* A clone reopens what the snapshot names (the pack, at the template's path) and
	 * reads the snapshot's two files; the kernel was the template's business. */
	if (vm_path(f, cfg->restore_state, FC_JAIL_STATE, f->restore_state,
		    sizeof(f->restore_state), err) < 0)
		return -1;
	/* The template's memory file is root's and 0400 once sealed (a jailed uid cannot
	 * read it through a link): a jailed clone gets a copy of the sealed memfd, readable
	 * and not writable by its uid. It costs the touched RAM once per clone on disk and
	 * in the page cache (no sharing between jailed clones); Firecracker takes no fd. */
	if (f->jailed && cfg->memory_fd > 0)
		return fc_jail_copy_in(&f->jail, cfg->memory_fd,
				       (uint64_t)cfg->memory_mib << 20, FC_JAIL_MEMORY,
				       f->restore_memory, sizeof(f->restore_memory), err);
	return vm_path(f, cfg->memory_file, FC_JAIL_MEMORY, f->restore_memory,
		       sizeof(f->restore_memory), err);
}

/* The sockets' host paths; with cfg (a new VM, not a re-attach) also the
 * paths Firecracker is told and, when jailed, the jail with the files linked into it. */
static int setup_paths(struct vmm_instance *vm, struct fc_vm *f, const struct vmm_boot_config *cfg,
		       struct ember_error **err)
{
	const struct fc_driver *fcd = vm->drv->priv;
	const char *exec_file = vm->drv->vmm_path;

	if (fc_instance_id(vm->sandbox_id, f->id, sizeof(f->id), err) < 0)
		return -1;

	if (!vm->drv->jailed) {
		if (sock_path(f->api_sock, sizeof(f->api_sock), vm->run_dir, "fc.sock", err) < 0 ||
		    sock_path(f->vsock_sock, sizeof(f->vsock_sock), vm->run_dir, FC_VSOCK_NAME,
			      err) < 0)
			return -1;
	} else {
		/* Jailed: Firecracker sees only the chroot, so every path it is told is inside it. */
		f->jailed = true;
		if (cfg == NULL) {
			if (fc_jail_layout(&f->jail, &fcd->jail, exec_file, vm->sandbox_id, err) < 0)
				return -1;
		} else if (fc_jail_prepare(&f->jail, &fcd->jail, exec_file, vm->sandbox_id,
					   err) < 0) {
			return -1;
		}
		f->jail.uid = vm->uid;
		if (fc_jail_host_path(&f->jail, "fc.sock", f->api_sock, sizeof(f->api_sock),
				      err) < 0 ||
		    fc_jail_host_path(&f->jail, FC_VSOCK_NAME, f->vsock_sock, sizeof(f->vsock_sock),
				      err) < 0)
			return -1;
	}
	if (cfg == NULL)
		return 0;
	/* Relative to the working directory (the VM's directory), or in the jail's "/". */
	snprintf(f->vsock_uds, sizeof(f->vsock_uds), "%s%s", f->jailed ? "/" : "", FC_VSOCK_NAME);
	if (vm_path(f, cfg->pack_image, "pack", f->pack, sizeof(f->pack), err) < 0)
		return -1;
	for (size_t i = 0; i < cfg->nmounts; i++) {
		char name[16];

		snprintf(name, sizeof(name), "mount%zu", i);
		if ((f->jailed ? fc_jail_place(&f->jail, cfg->mounts[i].image, name, f->mounts[i],
					       sizeof(f->mounts[i]), err)
			       : copy_path(f->mounts[i], sizeof(f->mounts[i]), cfg->mounts[i].image,
					   err)) < 0)
			return ember_error_wrap(err, "mounts[%zu]", i);
	}
	f->nmounts = cfg->nmounts;
	if (cfg->resume_state != NULL || cfg->restore_state != NULL)
		return setup_load_paths(f, cfg, err);
	if (cfg->memory_file != NULL &&
	    copy_path(f->memory_file, sizeof(f->memory_file), cfg->memory_file, err) < 0)
		return -1;
	if (vm_path(f, cfg->kernel_vmlinux, "vmlinux", f->kernel, sizeof(f->kernel), err) < 0 ||
	    vm_path(f, cfg->initramfs, "initramfs", f->initramfs, sizeof(f->initramfs), err) < 0)
		return -1;
	return 0;
}

/* Firecracker has no shared file system device: a mount is a read-only disk of the squashfs
 * image the manager built of the directory (vmm.h VMM_MOUNT_BLOCK), and a clone has none (its
 * template's snapshot fixes the device set). */
static int check_mounts(const struct vmm_boot_config *cfg, struct ember_error **err)
{
	struct stat st;

	if (cfg->nmounts > VMM_MOUNTS_MAX)
		return ember_error_set(err, EMBER_E_INVALID, 0, "field `mounts` may hold at most %d "
				       "mounts", VMM_MOUNTS_MAX);
	if (cfg->nmounts > 0 && (cfg->restore_state != NULL || cfg->resume_state != NULL))
		return ember_error_set(err, EMBER_E_INTERNAL, EINVAL, "a Firecracker clone or "
				       "resumed VM cannot have mounts: they need a cold boot");
	for (size_t i = 0; i < cfg->nmounts; i++) {
		const struct vmm_mount *m = &cfg->mounts[i];

		if (m->rw)
			return ember_error_set(err, EMBER_E_INVALID, 0, "field `mounts[%zu].mode`: "
					       "\"rw\" is not possible under the Firecracker driver, "
					       "which has no shared file system device (an \"ro\" "
					       "mount is served as a read-only disk image of the "
					       "directory)", i);
		if (m->image == NULL || stat(m->image, &st) < 0 || !S_ISREG(st.st_mode))
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "field `mounts[%zu]`: no disk image of `%s` to "
					       "attach%s%s", i, m->host != NULL ? m->host : "?",
					       m->image != NULL ? " at " : "",
					       m->image != NULL ? m->image : "");
	}
	return 0;
}

/* The VM's state: its size, paths and command line; stale sockets removed. Nothing runs yet. */
static int fc_prepare(struct vmm_instance *vm, const struct vmm_boot_config *cfg,
		      struct ember_error **err)
{
	struct fc_vm *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	vm->priv = f;
	f->vcpus = cfg->vcpus;
	f->memory_mib = cfg->memory_mib;
	if (cfg->restore_state != NULL && cfg->memory_file == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, EINVAL,
				       "a Firecracker restore needs the snapshot's memory file");
	if (cfg->resume_state != NULL &&
	    (cfg->restore_state != NULL || cfg->memory_file != NULL || cfg->memory_fd > 0))
		return ember_error_set(err, EMBER_E_INTERNAL, EINVAL,
				       "a resumed VM's memory is its saved state's");
	if (cfg->tap_fd > 0) {
		/* A snapshot names the host TAP it was taken with: no networked clones here. */
		if (cfg->restore_state != NULL || cfg->resume_state != NULL ||
		    cfg->tap_name == NULL ||
		    copy_path(f->tap, sizeof(f->tap), cfg->tap_name, err) < 0)
			return ember_error_set(err, EMBER_E_INTERNAL, EINVAL, "a Firecracker NIC "
					       "needs its TAP's name and a cold boot");
	}
	if (check_mounts(cfg, err) < 0 || setup_paths(vm, f, cfg, err) < 0 ||
	    vmm_kernel_cmdline(vm->drv, cfg, f->cmdline, sizeof(f->cmdline), err) < 0)
		return -1;
	/* Firecracker refuses to bind over an existing path. */
	unlink(f->api_sock);
	unlink(f->vsock_sock);
	return 0;
}

/* A command line and the strings it points to that are not borrowed from elsewhere. */
struct fc_argv {
	char *items[FC_ARGV_MAX + 1];
	size_t count;
	char uid[16], memory_max[48];
};

static void fc_argv_add(struct fc_argv *a, const char *arg)
{
	if (a->count < FC_ARGV_MAX)
		a->items[a->count++] = (char *)arg;
}

/* The jailer runs Firecracker chrooted as the VM's own uid (= gid) in a cgroup with
 * memory.max, as PID 1 of a new PID namespace. */
static void fc_argv_jailed(struct fc_argv *a, const struct vmm_instance *vm,
			   const struct fc_driver *fcd, unsigned memory_mib)
{
	const struct fc_vm *f = vm->priv;

	snprintf(a->uid, sizeof(a->uid), "%u", (unsigned)vm->uid);
	/* Guest memory plus room for Firecracker itself and the page cache of its reads. */
	snprintf(a->memory_max, sizeof(a->memory_max), "memory.max=%llu",
		 ((unsigned long long)memory_mib + 64ull) << 20);
	fc_argv_add(a, fcd->jailer_path);
	fc_argv_add(a, "--id");
	fc_argv_add(a, f->jail.id);
	fc_argv_add(a, "--exec-file");
	fc_argv_add(a, vm->drv->vmm_path);
	fc_argv_add(a, "--uid");
	fc_argv_add(a, a->uid);
	fc_argv_add(a, "--gid");
	fc_argv_add(a, a->uid);
	fc_argv_add(a, "--chroot-base-dir");
	fc_argv_add(a, fcd->jail.chroot_base);
	fc_argv_add(a, "--cgroup-version");
	fc_argv_add(a, "2");
	fc_argv_add(a, "--cgroup");
	fc_argv_add(a, a->memory_max);
	fc_argv_add(a, "--new-pid-ns");
	fc_argv_add(a, "--");
	/* The jailer passes --id itself; the socket path is inside the chroot. */
	fc_argv_add(a, "--api-sock");
	fc_argv_add(a, "/fc.sock");
}

static void fc_argv_plain(struct fc_argv *a, const struct vmm_instance *vm)
{
	const struct fc_vm *f = vm->priv;

	fc_argv_add(a, vm->drv->vmm_path);
	fc_argv_add(a, "--api-sock");
	fc_argv_add(a, f->api_sock);
	fc_argv_add(a, "--id");
	fc_argv_add(a, f->id);
}

static unsigned kill_jail(const struct vmm_driver *drv, const struct fc_jail *j);

/* Whether pid is PID 1 of a PID namespace of its own (the NSpid: line of its status ends in
 * 1, after its pid in ours): what --new-pid-ns makes of Firecracker. */
static bool is_pid_ns_init(pid_t pid)
{
	_cleanup_free_ char *status = NULL;
	char path[64];
	const char *line, *end, *last;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (file_read_all(path, 1 << 16, &status, NULL, NULL) < 0)
		return false;
	line = strstr(status, "\nNSpid:\t");
	if (line == NULL)
		return false;
	line += strlen("\nNSpid:\t");
	end = strchr(line, '\n');
	end = end != NULL ? end : line + strlen(line);
	last = end;
	while (last > line && last[-1] != '\t')
		last--;
	return last > line && end - last == 1 && *last == '1';
}

/* The jailer, with --new-pid-ns, forks Firecracker into a new PID namespace, writes its pid to
 * "/<exec name>.pid" in the jail and exits 0 (Firecracker's docs/jailer.md). So the process
 * vmm_spawn made is not the VMM: wait for it (bounded), reap it here (it never is a VM), then
 * take Firecracker by the pid file, through a pidfd. Firecracker is not our child: init reaps
 * it, vmm.c's waitpid() gets ECHILD and relies on the pidfd, as for a re-attached VM. */
static int find_jailed_vmm(struct vmm_instance *vm, pid_t jailer, int jailer_fd,
			   struct ember_error **err)
{
	struct fc_vm *f = vm->priv;
	int status = 0, ready = fd_wait(jailer_fd, POLLIN, time_mono_ms() + FC_JAILER_EXIT_MS, err);
	pid_t pid;

	if (ready <= 0)
		syscall(SYS_pidfd_send_signal, jailer_fd, SIGKILL, NULL, 0);
	while (waitpid(jailer, &status, 0) < 0 && errno == EINTR)
		;
	if (ready < 0)
		return -1;
	if (ready == 0)
		return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
				       "the jailer did not finish within %d ms", FC_JAILER_EXIT_MS);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return ember_error_set(err, EMBER_E_GUEST, 0,
				       "the jailer failed (%s %d; its output is in the console)",
				       WIFEXITED(status) ? "exit status" : "signal",
				       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	if (fc_jail_read_pid(&f->jail, &pid, err) < 0)
		return ember_error_wrap(err, "find the jailed firecracker");
	vm->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (vm->pidfd < 0)
		return ember_error_sys(err, "pidfd_open(%d) (the jailed firecracker)", (int)pid);
	/* Checked through the pidfd, which the pid cannot be recycled under. */
	if (!is_pid_ns_init(pid)) {
		close(vm->pidfd);
		vm->pidfd = -1;
		return ember_error_set(err, EMBER_E_INTERNAL, ESRCH,
				       "pid %d from the jailer's pid file is not the init of a new "
				       "PID namespace", (int)pid);
	}
	vm->pid = pid;
	return 0;
}

static int spawn_jailed(struct vmm_instance *vm, char *const argv[], struct ember_error **err)
{
	struct fc_vm *f = vm->priv;
	_cleanup_close_ int jailer_fd = -1;
	pid_t jailer;

	/* The jailer makes the jail's root the working directory itself. */
	if (vmm_spawn_in(argv, NULL, console_vmm_fd(vm->console), &jailer, &jailer_fd, err) < 0)
		return -1;
	if (find_jailed_vmm(vm, jailer, jailer_fd, err) == 0)
		return 0;
	/* A Firecracker the jailer forked before failing runs on in the jail's cgroup. */
	kill_jail(vm->drv, &f->jail);
	return ember_error_wrap(err, "start under `%s`", argv[0]);
}

/* Spawns Firecracker, under the jailer when jailed. */
static int fc_spawn(struct vmm_instance *vm, const struct vmm_boot_config *cfg,
		    struct ember_error **err)
{
	const struct fc_driver *fcd = vm->drv->priv;
	struct fc_argv a = { .count = 0 };

	if (vm->drv->jailed) {
		fc_argv_jailed(&a, vm, fcd, cfg->memory_mib);
		return spawn_jailed(vm, a.items, err);
	}
	fc_argv_plain(&a, vm);
	/* Firecracker writes the guest's serial console and its own log lines to stdout, which is
	 * the console FIFO: it makes stdout non-blocking and drops what a full pipe does not take
	 * (counted in its uart.error_count metric), so the guest never waits for the daemon. */
	return vmm_spawn_in(a.items, vm->run_dir, console_vmm_fd(vm->console), &vm->pid,
			    &vm->pidfd, err);
}

/* Firecracker opens its TAP by name (TUNSETIFF) when the NIC is configured: that works only
 * for a persistent TAP nobody is attached to, owned by the uid Firecracker runs as (it has no
 * CAP_NET_ADMIN jailed). The jailer gives it no network namespace of its own (we never pass
 * --netns), so it sees the host's TAP. The daemon closes its descriptor before configure()
 * (vmm.h vmm_driver_tap_by_name()) and deletes the TAP after the VM. */
static int fc_start(struct vmm_instance *vm, const struct vmm_boot_config *cfg,
		    struct ember_error **err)
{
	struct ember_error *undo = NULL;

	if (fc_prepare(vm, cfg, err) < 0)
		return -1;
	if (cfg->tap_fd > 0 && tap_set_persist(cfg->tap_fd, true, vm->uid, err) < 0)
		return ember_error_wrap(err, "TAP `%s` for firecracker", cfg->tap_name);
	if (fc_spawn(vm, cfg, err) == 0)
		return 0;
	/* Not started: the TAP goes with the caller's descriptor again. */
	if (cfg->tap_fd > 0 && tap_set_persist(cfg->tap_fd, false, 0, &undo) < 0)
		ember_error_free(&undo);
	return -1;
}

/* The socket appears once Firecracker is listening; a process that dies first fails at once. */
static int wait_api_socket(struct vmm_instance *vm, int64_t deadline_ms, struct ember_error **err)
{
	struct fc_vm *f = vm->priv;
	struct ember_error *connect_err = NULL;
	int64_t t0 = time_mono_ms();
	_cleanup_close_ int fd = unix_connect_until(f->api_sock, deadline_ms, vmm_alive_ctx, vm,
						    &connect_err);

	if (fd >= 0)
		return 0;
	if (connect_err->kind == EMBER_E_GUEST_TIMEOUT) {
		ember_error_free(&connect_err);
		return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
				       "firecracker did not create its API socket `%s` within %lld ms",
				       f->api_sock, (long long)(time_mono_ms() - t0));
	}
	if (!vmm_alive(vm)) {
		ember_error_free(&connect_err);
		return ember_error_set(err, EMBER_E_GUEST, 0,
				       "firecracker exited before creating its API socket `%s`",
				       f->api_sock);
	}
	ember_error_propagate(err, connect_err);
	return ember_error_wrap(err, "firecracker API socket");
}

/* A mount's drive, after the pack's: Firecracker attaches the drives (none of them a root
 * device) in the order they were first PUT, so mount i is the guest's /dev/vd<'b'+i>. */
#define FC_MOUNT_DRIVE(i)                                                                    \
	{ (i) < f->nmounts ? "/drives/mount" #i : NULL,                                      \
	  (i) < f->nmounts ? json_pack("{s:s,s:s,s:b,s:b}", "drive_id", "mount" #i,          \
				       "path_on_host", f->mounts[i], "is_root_device", 0,    \
				       "is_read_only", 1)                                    \
			   : NULL }
_Static_assert(VMM_MOUNTS_MAX == 8, "configure() has one FC_MOUNT_DRIVE per possible mount");

/* Each PUT, in the order Firecracker's own guides use; bodies carry only what we decide. */
static int configure(struct vmm_instance *vm, struct fc_api *api, int64_t deadline_ms,
		     struct ember_error **err)
{
	struct fc_vm *f = vm->priv;
	bool nic = f->tap[0] != '\0';
	struct {
		const char *path;
		json_t *body;
	} steps[] = {
		{ "/machine-config", json_pack("{s:I,s:I}", "vcpu_count", (json_int_t)f->vcpus,
					       "mem_size_mib", (json_int_t)f->memory_mib) },
		{ "/boot-source", json_pack("{s:s,s:s,s:s}", "kernel_image_path", f->kernel,
					    "initrd_path", f->initramfs, "boot_args", f->cmdline) },
		{ "/drives/pack", json_pack("{s:s,s:s,s:b,s:b}", "drive_id", "pack", "path_on_host",
					    f->pack, "is_root_device", 0, "is_read_only", 1) },
		/* (No such mount: a NULL path, skipped.) */
		FC_MOUNT_DRIVE(0), FC_MOUNT_DRIVE(1), FC_MOUNT_DRIVE(2), FC_MOUNT_DRIVE(3),
		FC_MOUNT_DRIVE(4), FC_MOUNT_DRIVE(5), FC_MOUNT_DRIVE(6), FC_MOUNT_DRIVE(7),
		{ "/vsock", json_pack("{s:i,s:s}", "guest_cid", FC_GUEST_CID, "uds_path",
				      f->vsock_uds) },
		/* virtio-rng: without it the guest's first python start waits ~1 s for entropy. */
		{ "/entropy", json_object() },
		/* Firecracker opens the TAP here, by name (fc_start). */
		/* (No NIC: a NULL path, skipped.) */
		{ nic ? "/network-interfaces/" FC_NET_IFACE : NULL,
		  nic ? json_pack("{s:s,s:s,s:s}", "iface_id", FC_NET_IFACE, "host_dev_name",
				  f->tap, "guest_mac", FC_NET_MAC) : NULL },
		{ "/actions", json_pack("{s:s}", "action_type", "InstanceStart") },
	};
	size_t i;
	int ret = 0;

	for (i = 0; i < ARRAY_SIZE(steps); i++) {
		if (steps[i].path == NULL)
			continue;
		if (ret == 0 && steps[i].body == NULL)
			ret = ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
		if (ret == 0 && fc_api_put(api, steps[i].path, steps[i].body, deadline_ms, err) < 0) {
			if (!vmm_alive(vm))
				ember_error_wrap(err, "firecracker exited");
			ret = -1;
		}
		json_decref(steps[i].body);
	}
	return ret;
}

static int vsock_exited(struct ember_error **err)
{
	return ember_error_set(err, EMBER_E_GUEST, 0,
			       "firecracker exited before the guest agent listened on vsock port %u",
			       FC_AGENT_VSOCK_PORT);
}

static int vsock_timed_out(struct ember_error **err)
{
	return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
			       "the guest agent did not listen on vsock port %u before the boot "
			       "deadline", FC_AGENT_VSOCK_PORT);
}

/* What try_vsock() found besides a connection. */
enum vsock_attempt {
	VSOCK_LISTENING = 1,  /* *fd carries the agent's stream */
	VSOCK_REFUSED = 0,    /* nothing listens on the port yet: pause, then try again */
	VSOCK_ABANDONED = 2,  /* CONNECT got no answer within FC_VSOCK_ATTEMPT_MS: try again now */
};

/* One connection to the vsock socket (retried while Firecracker has not created it) and one
 * `CONNECT` on it. Returns an enum vsock_attempt, or -1. */
static int try_vsock(struct vmm_instance *vm, int64_t deadline_ms, int *fd_out,
		     struct ember_error **err)
{
	struct fc_vm *f = vm->priv;
	struct ember_error *caught = NULL;
	_cleanup_close_ int fd = unix_connect_until(f->vsock_sock, deadline_ms, vmm_alive_ctx, vm,
						    &caught);
	int64_t attempt_ms = time_mono_ms() + FC_VSOCK_ATTEMPT_MS;
	int ret;

	if (fd < 0 && (caught->kind == EMBER_E_GUEST_TIMEOUT || !vmm_alive(vm))) {
		ret = caught->kind == EMBER_E_GUEST_TIMEOUT ? vsock_timed_out(err) : vsock_exited(err);
		ember_error_free(&caught);
		return ret;
	}
	if (fd < 0) {
		ember_error_propagate(err, caught);
		return ember_error_wrap(err, "firecracker vsock");
	}
	ret = fc_vsock_handshake(fd, FC_AGENT_VSOCK_PORT,
				 attempt_ms < deadline_ms || deadline_ms < 0 ? attempt_ms : deadline_ms,
				 &caught);
	if (ret == FC_VSOCK_CONNECTED) {
		*fd_out = steal_fd(&fd);
		return VSOCK_LISTENING;
	}
	if (ret == FC_VSOCK_REFUSED)
		return VSOCK_REFUSED;
	if (caught->kind == EMBER_E_GUEST_TIMEOUT && time_ms_until(deadline_ms) != 0) {
		log_event(LOG_WARN, vm->sandbox_id, "firecracker.vsock", -1,
			  "%s; trying a new connection", caught->message);
		ember_error_free(&caught);
		return VSOCK_ABANDONED;
	}
	ember_error_propagate(err, caught);
	return ember_error_wrap(err, "firecracker vsock `%s`", f->vsock_sock);
}

static int connect_vsock(struct vmm_instance *vm, int64_t deadline_ms, struct ember_error **err)
{
	for (;;) {
		int fd = -1, ret = try_vsock(vm, deadline_ms, &fd, err);
		int64_t pause_until;

		if (ret < 0)
			return -1;
		if (ret == VSOCK_LISTENING)
			return fd;
		if (ret == VSOCK_ABANDONED)
			continue;
		if (!vmm_alive(vm))
			return vsock_exited(err);
		if (time_ms_until(deadline_ms) == 0)
			return vsock_timed_out(err);
		/* No event says when the agent starts listening, so pause between attempts; the
		 * pause waits on the pidfd, so a Firecracker that dies meanwhile ends it at once. */
		pause_until = time_mono_ms() + FC_VSOCK_RETRY_MS;
		if (deadline_ms >= 0 && deadline_ms < pause_until)
			pause_until = deadline_ms;
		if (vmm_wait_exit(vm, pause_until))
			return vsock_exited(err);
	}
}

/* Waits for the API socket, configures the VM and starts it. */
static int boot_vm(struct vmm_instance *vm, int64_t deadline_ms, struct ember_error **err)
{
	struct fc_vm *f = vm->priv;
	/* Closed on return: teardown opens its own connection; no idle one stays open meanwhile. */
	_cleanup_fc_api_ struct fc_api *api = NULL;

	if (wait_api_socket(vm, deadline_ms, err) < 0 || fc_api_open(f->api_sock, &api, err) < 0 ||
	    configure(vm, api, deadline_ms, err) < 0)
		return -1;
	f->configured = true;
	return 0;
}

static int fc_connect_agent(struct vmm_instance *vm, int64_t deadline_ms,
			    struct ember_error **err)
{
	struct fc_vm *f = vm->priv;

	if (!f->configured && boot_vm(vm, deadline_ms, err) < 0)
		return -1;
	return connect_vsock(vm, deadline_ms, err);
}

/* A clone, or a paused sandbox's resume (ops.load): load the template's snapshot (the saved
 * VM) into this fresh Firecracker and resume it. The snapshot brings the whole configuration
 * (machine, drives at the recorded paths, vsock at the same relative socket name); Firecracker
 * refuses a load after any of it was configured. On resume the vsock device resets its
 * transport: the agent's listening socket survives, and connect_agent's CONNECT retries reach
 * it. state_path and its memory were linked or copied at start as f->restore_state and
 * f->restore_memory. */
static int fc_restore(struct vmm_instance *vm, const char *state_path, int64_t deadline_ms,
		      struct ember_error **err)
{
	struct fc_vm *f = vm->priv;
	_cleanup_fc_api_ struct fc_api *api = NULL;
	_cleanup_json_ json_t *body = NULL;

	(void)state_path;
	if (wait_api_socket(vm, deadline_ms, err) < 0 || fc_api_open(f->api_sock, &api, err) < 0)
		return -1;
	body = json_pack("{s:s,s:{s:s,s:s},s:b}", "snapshot_path", f->restore_state,
			 "mem_backend", "backend_type", "File", "backend_path", f->restore_memory,
			 "resume_vm", 1);
	if (body == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	if (fc_api_put(api, "/snapshot/load", body, deadline_ms, err) < 0)
		/* Firecracker ends itself after a failed load: say so if it already has. */
		return vmm_alive(vm) ? -1 : ember_error_wrap(err, "firecracker exited");
	f->configured = true;
	return 0;
}

/* Where a full snapshot's two files go: their host paths, the names a jailed Firecracker
 * writes them under in its jail, and the paths Firecracker is told (fc_snapshot_paths). */
struct fc_snapshot_files {
	const char *state;        /* host path of the device state */
	const char *memory;       /* host path of guest RAM */
	const char *jail_state;   /* jailed: names in the jail's "/" */
	const char *jail_memory;
	char fc_state[PATH_MAX];
	char fc_memory[PATH_MAX];
};

/* Unjailed Firecracker writes both where they belong, the state through a temporary name;
 * jailed it can only write inside the jail, and take_snapshot moves the files out. */
static int fc_snapshot_paths(const struct fc_vm *f, struct fc_snapshot_files *s,
			     struct ember_error **err)
{
	if (f->jailed) {
		snprintf(s->fc_state, sizeof(s->fc_state), "/%s", s->jail_state);
		snprintf(s->fc_memory, sizeof(s->fc_memory), "/%s", s->jail_memory);
		return 0;
	}
	if (snprintf(s->fc_state, sizeof(s->fc_state), "%s.part", s->state) >=
	    (int)sizeof(s->fc_state))
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG,
				       "snapshot: path `%s` too long", s->state);
	return copy_path(s->fc_memory, sizeof(s->fc_memory), s->memory, err);
}

/* Pause, snapshot to s->fc_state and s->fc_memory, move into place (jailed: out of the jail,
 * same filesystem, the daemon's and read-only for everyone else; the memory first, so that a
 * state file always has its memory). Unjailed a failure leaves the temporary state file. */
static int take_snapshot(struct vmm_instance *vm, const struct fc_snapshot_files *s,
			 int64_t deadline_ms, struct ember_error **err)
{
	struct fc_vm *f = vm->priv;
	_cleanup_fc_api_ struct fc_api *api = NULL;
	_cleanup_json_ json_t *pause = json_pack("{s:s}", "state", "Paused");
	_cleanup_json_ json_t *create = json_pack("{s:s,s:s,s:s}", "snapshot_type", "Full",
						  "snapshot_path", s->fc_state, "mem_file_path",
						  s->fc_memory);

	if (pause == NULL || create == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	if (fc_api_open(f->api_sock, &api, err) < 0 ||
	    fc_api_request(api, "PATCH", "/vm", pause, deadline_ms, err) < 0)
		return -1;
	f->paused = true;
	if (fc_api_put(api, "/snapshot/create", create, deadline_ms, err) < 0)
		return -1;
	if (f->jailed) {
		if (fc_jail_take(&f->jail, s->jail_memory, s->memory, err) < 0 ||
		    fc_jail_take(&f->jail, s->jail_state, s->state, err) < 0)
			return -1;
		return 0;
	}
	if (rename(s->fc_state, s->state) < 0)
		return ember_error_sys(err, "rename `%s` to `%s`", s->fc_state, s->state);
	return 0;
}

/* A template: pause, then a full snapshot. Firecracker writes guest RAM to the memory file (a
 * copy: the template could even run on) and its device state to the state file. */
static int fc_snapshot(struct vmm_instance *vm, const char *state_path, int64_t deadline_ms,
		       struct ember_error **err)
{
	struct fc_vm *f = vm->priv;
	struct fc_snapshot_files s = { .state = state_path, .memory = f->memory_file,
				       .jail_state = FC_JAIL_STATE,
				       .jail_memory = FC_JAIL_MEMORY };

	if (f->memory_file[0] == '\0')
		return ember_error_set(err, EMBER_E_INTERNAL, EINVAL,
				       "snapshot: the VM was started without a memory file");
	if (fc_snapshot_paths(f, &s, err) < 0)
		return -1;
	if (take_snapshot(vm, &s, deadline_ms, err) == 0)
		return 0;
	if (!f->jailed)
		unlink(s.fc_state);
	return ember_error_wrap(err, "snapshot%s", vmm_alive(vm) ? "" : " (firecracker exited)");
}

/* PATCH /vm Resumed of a VM take_snapshot paused. */
static int resume_paused(struct vmm_instance *vm, int64_t deadline_ms, struct ember_error **err)
{
	struct fc_vm *f = vm->priv;
	_cleanup_fc_api_ struct fc_api *api = NULL;
	_cleanup_json_ json_t *resume = json_pack("{s:s}", "state", "Resumed");

	if (resume == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	if (fc_api_open(f->api_sock, &api, err) < 0 ||
	    fc_api_request(api, "PATCH", "/vm", resume, deadline_ms, err) < 0)
		return -1;
	f->paused = false;
	return 0;
}

/* Unjailed Firecracker made the files with the daemon's umask: a saved VM holds the guest's
 * every secret, so they are the daemon's alone (vmm.h vmm_save). Jailed, fc_jail_take made
 * them 0644: a later resume's jailed uid reads them through hard links; the state dir is 0700. */
static int own_saved(const struct fc_snapshot_files *s, struct ember_error **err)
{
	if (chmod(s->memory, 0600) < 0)
		return ember_error_sys(err, "chmod `%s`", s->memory);
	if (chmod(s->state, 0600) < 0)
		return ember_error_sys(err, "chmod `%s`", s->state);
	return 0;
}

/* Pause to disk: a Full snapshot of the running VM, its RAM to "<state_path>.mem". A failed
 * save removes what it wrote and resumes the VM (it runs on, as QEMU's does); a VM that
 * keep_running is resumed after a good one. Costs the guest's whole RAM in disk writes: a
 * Diff snapshot would need dirty page tracking from boot (Firecracker's track_dirty_pages),
 * which every running VM would pay for. */
static int fc_save(struct vmm_instance *vm, const char *state_path, bool keep_running,
		   int64_t deadline_ms, struct ember_error **err)
{
	struct fc_vm *f = vm->priv;
	char memory[PATH_MAX];
	struct fc_snapshot_files s = { .state = state_path, .memory = memory,
				       .jail_state = FC_JAIL_SAVED_STATE,
				       .jail_memory = FC_JAIL_SAVED_MEMORY };

	if (vmm_saved_state_path_mem(state_path, memory, sizeof(memory), err) < 0 ||
	    fc_snapshot_paths(f, &s, err) < 0)
		return ember_error_wrap(err, "save the paused VM");
	/* A stale file there may be the very one a resumed VM maps its RAM from: Firecracker
	 * would write into it. A new inode instead. */
	unlink(memory);
	if (take_snapshot(vm, &s, deadline_ms, err) == 0 && (f->jailed || own_saved(&s, err) == 0)) {
		if (keep_running && resume_paused(vm, deadline_ms, err) < 0)
			return ember_error_wrap(err, "resume after the save");
		return 0;
	}
	if (!f->jailed)
		unlink(s.fc_state);
	vmm_saved_state_remove(state_path);
	if (f->paused)
		resume_paused(vm, time_mono_ms() + FC_RUN_ON_MS, NULL);
	return ember_error_wrap(err, "save the paused VM%s",
				vmm_alive(vm) ? "" : " (firecracker exited)");
}

/* Ctrl-Alt-Del reaches emberd-init as SIGINT; it stops cleanly and reboots, which ends
 * Firecracker. Before InstanceStart there is nothing to ask: vmm.c kills at the deadline.
 * A paused guest (after a snapshot or a save) would never see the keys and cost the whole
 * stop grace, so it is resumed first: harmless, its snapshot is a copy and it only shuts down. */
static void fc_request_stop(struct vmm_instance *vm, int64_t deadline_ms)
{
	struct fc_vm *f = vm->priv;
	_cleanup_fc_api_ struct fc_api *api = NULL;
	_cleanup_json_ json_t *body = NULL;
	int64_t deadline = time_mono_ms() + FC_STOP_REQUEST_MS;

	if (f == NULL || !f->configured)
		return;
	if (deadline > deadline_ms)
		deadline = deadline_ms;
	if (f->paused)
		resume_paused(vm, deadline, NULL);
	body = json_pack("{s:s}", "action_type", "SendCtrlAltDel");
	if (body == NULL || fc_api_open(f->api_sock, &api, NULL) < 0)
		return;
	fc_api_put(api, "/actions", body, deadline, NULL);
}

/* A VM an earlier daemon configured and left running: only the paths need rebuilding. */
static int fc_attach(struct vmm_instance *vm, struct ember_error **err)
{
	struct fc_vm *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	/* vmm_attach() frees only the instance when this fails: nothing may stay allocated. */
	if (setup_paths(vm, f, NULL, err) < 0) {
		free(f);
		return -1;
	}
	vm->priv = f;
	f->configured = true;
	return 0;
}

static void fc_release(struct vmm_instance *vm)
{
	struct fc_vm *f = vm->priv;

	if (f == NULL)
		return;
	if (f->api_sock[0] != '\0')
		unlink(f->api_sock);
	if (f->vsock_sock[0] != '\0')
		unlink(f->vsock_sock);
	if (f->jailed)
		fc_jail_cleanup(&f->jail);
	free(f);
	vm->priv = NULL;
}

struct stray_kill {
	const struct vmm_driver *drv;
	const char *chroot_base;
	bool by_identity;         /* found by command line: check who it is first */
	int pidfds[FC_STRAY_MAX];
	size_t count;
};

/* Whether a process whose command line names a jail id is ours: a jailed Firecracker runs as
 * one of this daemon's uids; the jailer (and its child before it drops to the uid) runs as
 * root with our chroot base on its command line. Anyone else's process that happens to name
 * the id is left alone. */
static bool is_our_jailed(const struct stray_kill *k, pid_t pid)
{
	uid_t uids[4];
	size_t i;

	if (proc_uids(pid, uids) < 0)
		return false;
	for (i = 0; i < 4 && uid_range_contains(k->drv->uids, uids[i]); i++)
		;
	if (i == 4)
		return true;
	return uids[0] == 0 && uids[1] == 0 && proc_cmdline_contains(pid, k->chroot_base);
}

/* Kills through a pidfd, and keeps it: the wait below then watches this very process, not
 * whoever gets its pid next. */
static void kill_jailed(pid_t pid, void *arg)
{
	struct stray_kill *k = arg;
	_cleanup_close_ int pidfd = -1;

	if (k->count == FC_STRAY_MAX)
		return;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0 || (k->by_identity && !is_our_jailed(k, pid)))
		return;
	if (syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) == 0)
		k->pidfds[k->count++] = steal_fd(&pidfd);
}

/* Kills what runs in jail j: a jailed Firecracker's command line names only its jail id
 * (`--id <id>` from the jailer; paths are inside the chroot), and with --new-pid-ns it is PID
 * 1 of its namespace (killing it ends everything in there). Then whatever else is in the jail's
 * cgroup, which only root can move processes into. Waits (bounded) until they are gone and
 * returns how many were found by command line. */
static unsigned kill_jail(const struct vmm_driver *drv, const struct fc_jail *j)
{
	const struct fc_driver *fcd = drv->priv;
	struct stray_kill k = { .drv = drv, .chroot_base = fcd->jail.chroot_base,
				.by_identity = true };
	char needle[2][FC_ID_MAX + 16];
	int64_t deadline;
	size_t i, vmms;

	snprintf(needle[0], sizeof(needle[0]), "--id %s ", j->id);
	snprintf(needle[1], sizeof(needle[1]), "--id=%s ", j->id);
	for (i = 0; i < 2; i++)
		proc_for_each_mentioning(needle[i], kill_jailed, &k);
	vmms = k.count;
	k.by_identity = false;
	if (j->cgroup_dir[0] != '\0')
		cgroup_for_each_member(j->cgroup_dir, kill_jailed, &k);
	/* Not our children: wait (bounded) on their pidfds until they are gone. */
	deadline = time_mono_ms() + FC_STRAY_EXIT_MS;
	for (i = 0; i < k.count; i++) {
		fd_wait(k.pidfds[i], POLLIN, deadline, NULL);
		close(k.pidfds[i]);
	}
	if (j->cgroup_dir[0] != '\0')
		cgroup_rmdir_wait(j->cgroup_dir, time_ms_until(deadline));
	return (unsigned)vmms;
}

/* The run-directory sweep cannot find a jailed Firecracker (its command line names only its
 * jail): find it by its jail id, then remove the jail. */
static unsigned fc_cleanup_stray(struct vmm_driver *drv, const char *sandbox_id)
{
	const struct fc_driver *fcd = drv->priv;
	struct ember_error *err = NULL;
	struct fc_jail j;
	unsigned killed;

	if (!drv->jailed)
		return 0;
	if (fc_jail_layout(&j, &fcd->jail, drv->vmm_path, sandbox_id, &err) < 0) {
		ember_error_free(&err);
		return 0;
	}
	killed = kill_jail(drv, &j);
	fc_jail_cleanup(&j);
	return killed;
}

const struct vmm_driver_ops vmm_firecracker_ops = {
	.name = "firecracker",
	.init = fc_init,
	.start = fc_start,
	.connect_agent = fc_connect_agent,
	.request_stop = fc_request_stop,
	.release = fc_release,
	.attach = fc_attach,
	.snapshot = fc_snapshot,
	.restore = fc_restore,
	.save = fc_save,
	.load = fc_restore,
	.save_resets_agent = true,
	.saves_memory_apart = true,
	.load_maps_ram = true,
	.free_driver = fc_free_driver,
	.cleanup_stray = fc_cleanup_stray,
	.own_cgroup = fc_own_cgroup,
	.tap_by_name = true,
	.mount_kind = VMM_MOUNT_BLOCK,
};
