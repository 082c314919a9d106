/* vmm.h - the driver interface between the sandbox manager and a VMM (qemu, firecracker).
 * The manager and tools call only these functions; drivers live behind vmm_driver_ops and are
 * chosen by name. A driver never blocks past the deadlines it is given and never leaves a process
 * or file behind after vmm_stop() returns. */
#ifndef EMBER_VMM_VMM_H
#define EMBER_VMM_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"
#include "util/opttable.h"

enum vmm_accel {
	VMM_ACCEL_AUTO = 0, /* KVM when hardware virtualization really works, else TCG */
	VMM_ACCEL_KVM,
	VMM_ACCEL_TCG,
};

/* Daemon-wide driver settings. */
struct vmm_driver_config {
	const char *name;             /* "qemu" or "firecracker" */
	const char *qemu_bin;         /* default qemu-system-x86_64 (PATH) */
	const char *firecracker_bin;  /* default firecracker (PATH) */
	const char *jailer_bin;       /* optional */
	enum vmm_accel accel;
	const char *cgroup_root;      /* cgroup v2 mount for per-VMM limits; NULL: /sys/fs/cgroup,
				       * "none": do not use host cgroups */
	const char *kernel_args;      /* operator's extra guest kernel arguments, or NULL */
	/* Jail (src/vmm/jail.h): the QEMU driver jails every VMM when the daemon is root and the
	 * kernel allows it. no_jail (--no-jail, debugging only) runs them as the daemon's user. */
	bool no_jail;
	uid_t vmm_uid_base;           /* first uid (= gid) of VMM_UID_RANGE_SIZE; 0: the default */
};

/* Each jailed VMM runs as its own uid and gid, taken from a range the daemon owns alone (no
 * account, file or other daemon may use it; two daemons on one host need distinct bases). The
 * default base lies far above any distribution's or systemd's dynamic ranges (systemd's reach
 * up to 0x7FFFFFFF only for containers' user namespaces, which start at 0x80000 by 0x10000).
 * The size bounds VMMs alive at once: --max-sandboxes (at most 4096), the pools (64 per pack)
 * and template builds fit with room to spare, and a released id is reused last. */
#define VMM_UID_BASE_DEFAULT 1900000000u
#define VMM_UID_RANGE_SIZE 8192u
/* An empty directory that serves as the mount point of every jail's root (each mounts its own
 * tmpfs there, in its own mount namespace, so it stays empty on the host). */
#define VMM_JAIL_ROOT "/run/emberd-vmm-root"

/* Longest --kernel-args accepted: the whole command line must stay well under the kernel's
 * 2048-byte limit (COMMAND_LINE_SIZE) and Firecracker's. */
#define VMM_KERNEL_ARGS_MAX 512

/* What one VM boots. Paths are absolute; run_dir exists and belongs to this VM alone. */
struct vmm_boot_config {
	const char *sandbox_id;
	const char *run_dir;
	const char *kernel_bzimage;   /* QEMU loads the bzImage */
	const char *kernel_vmlinux;   /* Firecracker needs the ELF */
	const char *initramfs;
	const char *pack_image;       /* attached read-only as the first virtio-blk device */
	const char *cmdline_extra;    /* appended to the kernel command line (emberd.* options) */
	unsigned vcpus;
	unsigned memory_mib;
	/* Snapshots (docs/snapshots.md). memory_file backs guest RAM with a file: shared for a
	 * template (its RAM *is* the file), private copy-on-write for a clone. restore_state makes
	 * vmm_start() load that device state and resume instead of booting the kernel. */
	const char *memory_file;
	bool memory_shared;
	/* > 0: a clone's RAM is a private mapping of this fd (a sealed memfd the template store
	 * or a fork owns, guestmem.h) instead of memory_file, which then only names it in logs.
	 * With memory_shared, a shared mapping of an unsealed one (a fork base's loader fills
	 * it). 0 (a zeroed config) means none: stdin is never guest memory. */
	int memory_fd;
	const char *restore_state;
	/* A paused sandbox's whole state (vmm_save(): devices and every RAM page): vmm_start()
	 * loads it and resumes the VM. The rest of the config must be the saved VM's (its pack,
	 * shape and NIC), without memory_file, memory_fd, restore_state or mounts. */
	const char *resume_state;
	/* With resume_state: leave the loaded VM stopped, for vmm_snapshot() and vmm_stop() only
	 * (a fork base: its RAM a shared memory_fd, its device state what forks restore). */
	bool resume_stopped;
	int64_t deadline_ms;          /* bounds a restore or resume; <0: none */
	/* > 0: a virtio-net NIC backed by this TAP descriptor (net/tap.h), which the VMM keeps.
	 * 0 (a zeroed config): no NIC at all. A clone must have one exactly when its template
	 * had one. */
	int tap_fd;
	/* The TAP's name (net/egress.h egress_link_tap_name()), set whenever tap_fd > 0: a driver
	 * whose VMM opens its TAP by name (vmm_driver_tap_by_name()) tells it this. */
	const char *tap_name;
	/* Host directories the guest sees (docs/api.md "Mounts"), at most VMM_MOUNTS_MAX, in the
	 * order the guest is told about them: share i is 9p mount tag "emberd<i>" (QEMU), block
	 * i the (i+2)-th disk, /dev/vd<'b'+i> (Firecracker). A clone never has any. */
	const struct vmm_mount *mounts;
	size_t nmounts;
};

#define VMM_MOUNTS_MAX 8

/* How a driver shows a host directory to its guest. */
enum vmm_mount_kind {
	VMM_MOUNT_SHARE = 1, /* virtio-9p of the directory itself (QEMU): ro or rw */
	VMM_MOUNT_BLOCK,     /* a read-only disk of `image`, a squashfs the caller made of the
			      * directory (Firecracker has no shared file system device) */
};

/* One host directory of a VM (vmm_boot_config.mounts). The caller owns everything here and
 * keeps it until vmm_start() returned. */
struct vmm_mount {
	/* VMM_MOUNT_SHARE: an O_PATH descriptor of the directory, opened with no symlink on the
	 * way (the caller's last check of the path: the driver shares what this names, never
	 * looks the path up again), and its path (logs, and the VMM's command line inside its
	 * jail, where the directory appears at the same path). */
	int dir_fd;
	const char *host;
	bool rw;
	/* The host uid/gid the VMM's own ids stand for inside this tree: files they own are the
	 * VMM's to read (and, rw, write), files the guest creates are theirs on the host. Never
	 * 0 for an rw mount (the caller refuses it). */
	uid_t uid;
	gid_t gid;
	/* VMM_MOUNT_BLOCK: the squashfs image (read-only; rw is then false). */
	const char *image;
};


struct vmm_driver;
struct vmm_instance;

/* The --accel flag of every program that makes a driver (emberd, ember-vm): "auto", "kvm" or
 * "tcg" into the enum vmm_accel at spec->field. Whether KVM is usable is vmm_driver_create's to
 * find out: asked for and unusable, it fails naming why. */
opt_parser vmm_opt_set_accel;

/* Creates a driver from its settings (resolves binaries, probes acceleration once). */
int vmm_driver_create(const struct vmm_driver_config *cfg, struct vmm_driver **out,
		      struct ember_error **err);
void vmm_driver_free(struct vmm_driver *drv);
const char *vmm_driver_name(const struct vmm_driver *drv);
/* Absolute path of the VMM binary (fingerprinted into template keys). */
const char *vmm_driver_binary(const struct vmm_driver *drv);
/* One line for logs and /healthz: "qemu (tcg: /dev/kvm has no hardware virtualization)". */
const char *vmm_driver_description(const struct vmm_driver *drv);
const char *vmm_driver_accel_name(const struct vmm_driver *drv);
/* Whether the driver's VMM opens its TAP by name (Firecracker) rather than using tap_fd
 * (QEMU). Such a driver makes the TAP of tap_fd persistent and owned by the VM's uid in
 * vmm_start(), and the caller must then close its own descriptor to it before
 * vmm_connect_agent() (which configures and starts the VM): a TAP a descriptor holds cannot be
 * opened by name. The TAP then outlives the VM: the caller deletes it. A snapshot of such a
 * VM would name the TAP, so networked VMs of such a driver are never templated. */
bool vmm_driver_tap_by_name(const struct vmm_driver *drv);

/* The one way this driver's VMMs show host directories to their guests. */
enum vmm_mount_kind vmm_driver_mount_kind(const struct vmm_driver *drv);

/* Whether each VMM runs jailed (own uid/gid from the range, no capabilities, own namespaces). */
bool vmm_driver_jailed(const struct vmm_driver *drv);
/* Whether VMM processes get host-side cgroup limits, and why (for logs and /healthz). */
const char *vmm_driver_cgroup_status(const struct vmm_driver *drv);

/* The validated --kernel-args ("" when none): part of what makes a template (a snapshot keeps
 * the kernel that booted with them). */
const char *vmm_driver_kernel_args(const struct vmm_driver *drv);

/* Refuses what --kernel-args must not hold (EMBER_E_INVALID, naming the problem). */
int vmm_check_kernel_args(const char *args, struct ember_error **err);

/* Starts the VMM process and returns once it runs (not once the guest booted). */
int vmm_start(struct vmm_driver *drv, const struct vmm_boot_config *cfg,
	      struct vmm_instance **out, struct ember_error **err);

/* Pauses a template VM (started with a shared memory_file) and writes its device state to
 * state_path atomically; guest RAM stays in the memory file. The VM stays paused: stop it next.
 * EMBER_E_UNAVAILABLE when the driver has no snapshots. */
int vmm_snapshot(struct vmm_instance *vm, const char *state_path, int64_t deadline_ms,
		 struct ember_error **err);
/* Pause to disk: stops the VM and writes its whole state (devices and guest RAM, however it
 * was backed) to state_path atomically (mode 0600, owned by the daemon). keep_running: the VM
 * runs on afterwards (a fork or a snapshot); otherwise the VMM stays with its VM stopped:
 * vmm_stop() it next. A later vmm_start() with resume_state continues from the state (more
 * than once: every fork of one state). A save that fails leaves the VM running as before (as
 * far as the VMM still answers). EMBER_E_CONFLICT when the driver cannot. */
int vmm_save(struct vmm_instance *vm, const char *state_path, bool keep_running,
	     int64_t deadline_ms, struct ember_error **err);
bool vmm_driver_can_save(const struct vmm_driver *drv);
/* After a vmm_save() that ran the VM on (keep_running, or a save that failed): the stream to
 * resume the agent's channel with (channel.h channel_resume()). *fd = -1 when the old one
 * survives the save (QEMU); else a new connection (Firecracker resets its vsock device at
 * /snapshot/create: every connection ends, the guest's agent keeps listening). */
int vmm_agent_after_save(struct vmm_instance *vm, int64_t deadline_ms, int *fd,
			 struct ember_error **err);

/* A saved VM (vmm_save()) on disk is the file state_path and, for a driver that writes guest
 * RAM apart (Firecracker), its companion "<state_path>" VMM_SAVED_MEM_SUFFIX; QEMU's never
 * exists. Whoever copies, counts, lists or removes saved VMs goes through these, so that the
 * suffix lives here alone. */
#define VMM_SAVED_MEM_SUFFIX ".mem"
/* The companion's path; -1 (ENAMETOOLONG) when it does not fit out. */
int vmm_saved_state_path_mem(const char *state_path, char *out, size_t size,
			     struct ember_error **err);
/* Whether a directory entry named name is the companion of a saved VM named state_name. */
bool vmm_saved_state_is_mem(const char *name, const char *state_name);
/* Unlinks both files (a missing one is no error). */
void vmm_saved_state_remove(const char *state_path);
/* The size of both files (the companion counts when it exists); -1 with errno when
 * state_path is no regular file, or when drv needs a companion (vmm_driver_saves_memory_apart)
 * and it is none. drv NULL: the companion is optional. */
int vmm_saved_state_size(const struct vmm_driver *drv, const char *state_path, uint64_t *bytes);
/* Whether the driver's saved VMs have the companion file. */
bool vmm_driver_saves_memory_apart(const struct vmm_driver *drv);

/* Whether a VM started from a saved state maps its RAM from the saved file copy-on-write (its
 * loads share memory, as clones do): otherwise each load copies the RAM into the new VM, and
 * forks go through a base (template_rebase_vm) to share it. */
bool vmm_driver_loads_ram_copy_on_write(const struct vmm_driver *drv);
/* Whether the driver can snapshot and restore. */
bool vmm_driver_can_snapshot(const struct vmm_driver *drv);

/* Opens a byte stream to the guest agent (non-blocking fd). The agent may not be listening yet;
 * drivers retry until deadline_ms. The caller owns the fd. */
int vmm_connect_agent(struct vmm_instance *vm, int64_t deadline_ms, struct ember_error **err);

/* Stops the VM (graceful request, then SIGKILL at the deadline), reaps the process and removes
 * the files it created in run_dir. Safe to call on a VM that already died. */
int vmm_stop(struct vmm_instance *vm, int64_t deadline_ms, struct ember_error **err);

/* Frees the handle; the VM must have been stopped. */
void vmm_instance_free(struct vmm_instance *vm);

/* Re-attaches to a VMM process a previous daemon started for sandbox_id in run_dir. Fails when
 * the process is gone, its start time differs from start_ticks (the PID was reused), the driver
 * cannot re-attach, or (jailed driver) its uid is not a free one of the range; that uid is
 * then taken by the re-attached VMM. */
int vmm_attach(struct vmm_driver *drv, const char *sandbox_id, const char *run_dir, pid_t pid,
	       uint64_t start_ticks, struct vmm_instance **out, struct ember_error **err);

/* Lets go of a running VM without stopping it or removing its files, and frees the handle
 * (daemon exit with --keep-sandboxes: a later daemon re-attaches). */
void vmm_detach(struct vmm_instance *vm);

/* Start time of the VMM process (/proc/<pid>/stat starttime), for the on-disk record. */
uint64_t vmm_start_ticks(const struct vmm_instance *vm);

/* SIGKILLs the VMMs a crashed daemon left without a record, except the pids in keep[]: processes
 * whose executable is a driver's VMM binary and that run as a uid of its range (jailed), or, as
 * root (an unjailed daemon's), name a sandbox or template directory of run_dir. A process that
 * only mentions run_dir (an admin's `tail -f <run_dir>/sb_x/console.log`) is never one. */
unsigned vmm_kill_strays(const char *run_dir, const pid_t *keep, size_t nkeep);

/* For a sandbox (or template VM) id of an earlier daemon that was not re-attached: what the
 * driver keeps outside the run directory, i.e. a jailed Firecracker (whose command line names
 * only its jail) and the jail itself. Returns the number of processes killed. */
unsigned vmm_driver_cleanup_stray(struct vmm_driver *drv, const char *sandbox_id);

/* CPU priority of a VMM (docs/operations.md "CPU priority"). The daemon keeps nice 0; a VMM
 * serving a sandbox runs at nice 5 (priority.h says why); a pool clone waiting for a create and
 * a template build run SCHED_IDLE (nice 19 where the kernel refuses it), so they only get CPU
 * that nothing else wants. All of a VMM's threads carry it. */
enum vmm_priority {
	VMM_PRIO_SERVING = 0,
	VMM_PRIO_IDLE,
};
/* The priority the VMMs the calling thread starts with vmm_start() begin with: a thread-local
 * setting, VMM_PRIO_SERVING until changed (the pool's filler and template builders set
 * VMM_PRIO_IDLE for themselves). */
void vmm_set_spawn_priority(enum vmm_priority prio);
/* Gives every thread of the running VM prio (a pooled clone at its handout: serving). Best
 * effort: a failure is logged with the sandbox id, and the VM runs on at its old priority. */
void vmm_set_priority(struct vmm_instance *vm, enum vmm_priority prio);
/* The VM's share of the CPU against other sandboxes (cgroup v2 cpu.weight semantics, 1-10000,
 * default 100): its cgroup's cpu.weight when it has one, and the nice its threads serve at
 * (priority.h prio_nice_for_weight), applied by the next vmm_set_priority(VMM_PRIO_SERVING). */
void vmm_set_cpu_weight(struct vmm_instance *vm, unsigned cpu_weight);
#define VMM_CPU_WEIGHT_DEFAULT 100u
#define VMM_CPU_WEIGHT_MAX 10000u

pid_t vmm_pid(const struct vmm_instance *vm);
struct vmm_driver *vmm_instance_driver(const struct vmm_instance *vm);
/* A pidfd that becomes readable when the VMM process exits (owned by the instance). */
int vmm_exit_fd(const struct vmm_instance *vm);
/* true while the VMM process exists. */
bool vmm_alive(struct vmm_instance *vm);
/* How much of a VM's console the daemon keeps: the newest 1 MiB, in memory (nothing goes to
 * disk). A boot failure or a panic needs the last few KiB and GET /console returns 16 KiB; a
 * MiB keeps a whole boot's worth of kernel messages around them, and at 1 MiB per VM even a
 * host full of sandboxes spends little on it, however much a guest writes. */
#define VMM_CONSOLE_RING_BYTES (1u << 20)

/* Copies the newest min(size, VMM_CONSOLE_RING_BYTES) bytes of the guest console (for
 * Firecracker: also its own log lines; for QEMU: also its stderr) into out, oldest first, and
 * returns how many. *total (may be NULL) is every byte this daemon's console received for
 * the VM, including what the ring no longer holds. Everything the VMM wrote before this call
 * is included. Thread-safe; valid until vmm_instance_free(), also after vmm_stop(). */
size_t vmm_console_tail(struct vmm_instance *vm, void *out, size_t size, uint64_t *total);

#endif
