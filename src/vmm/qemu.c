/* qemu.c - the QEMU `-M microvm` driver: no NIC, read-only pack drive, agent over a named
 * virtio-serial port backed by a Unix socket, console (serial and QEMU's own stderr) to the
 * daemon's ring (console.h), QMP for shutdown. Each QEMU runs jailed (jail.h) when the driver
 * is: it sees its run directory (its own uid's, 0700), the kernel and initramfs it boots, its
 * pack image and its RAM (a template's file, or a clone's sealed memfd), all at their host
 * paths, and the host directories its sandbox mounts (virtio-9p), as idmapped trees (idmap.h)
 * at their host paths too. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fdio.h"
#include "util/jsonutil.h"
#include "util/sync.h"
#include "util/timeutil.h"
#include "vmm/driver.h"
#include "vmm/idmap.h"
#include "vmm/jail.h"
#include "vmm/qmp.h"
#include "vmm/spawn.h"

/* About 45 arguments for the machine, boot and devices, 4 more per mount (VMM_MOUNTS_MAX). */
#define QEMU_ARGV_MAX 96
/* The guest's sandbox user (src/guest/boot.c gives it /home/sandbox; guest/spawn.c runs
 * execs as it). A QEMU with mounts runs as this id in a user namespace of its own that maps it
 * to its jail uid: virtio-9p reports the owner QEMU sees, so the guest finds the files of a
 * mount's owner (idmapped to the jail uid) owned by its sandbox user. */
#define QEMU_GUEST_SANDBOX_ID 1000u
/* Largest device state a restore reads (a microvm's is well under 1 MiB; RAM is not in it). */
#define QEMU_STATE_MAX (64u << 20)
/* Pause between QMP queries while a migration or a load is in progress (see wait_migration). */
#define QEMU_QMP_POLL_MS 1
/* A pause's migration bandwidth (bytes/s): no cap in practice (see set_unlimited_bandwidth). */
#define QEMU_SAVE_BANDWIDTH (1ull << 40)

struct qemu_vm {
	char agent_sock[108];
	char qmp_sock[108];
	char mig_sock[108];   /* device state streams through here (no exec: URIs: -sandbox) */
	/* The serial console: a socket the daemon listens on and hands to QEMU (-chardev
	 * socket,fd=), so a jailed QEMU needs no access to it; the daemon connects to it, at start
	 * and after a restart. */
	char console_sock[108];
};

static int qemu_init(struct vmm_driver *drv, const struct vmm_driver_config *cfg,
		     struct ember_error **err)
{
	const char *bin = cfg->qemu_bin != NULL ? cfg->qemu_bin : "qemu-system-x86_64";

	if (vmm_find_binary(bin, drv->vmm_path, err) < 0)
		return ember_error_wrap(err, "QEMU (install the qemu-system-x86 package)");
	snprintf(drv->description, sizeof(drv->description), "qemu %s (%s: %s)", drv->vmm_path,
		 drv->accel == VMM_ACCEL_KVM ? "kvm" : "tcg software emulation", drv->accel_reason);
	return 0;
}

struct argv_list {
	char *items[QEMU_ARGV_MAX + 1];
	size_t count;
	bool overflow;
};

static void argv_add(struct argv_list *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void argv_add(struct argv_list *a, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (a->count >= QEMU_ARGV_MAX) {
		a->overflow = true;
		return;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0) {
		s = NULL;
		a->overflow = true;
	}
	va_end(ap);
	if (s != NULL)
		a->items[a->count++] = s;
}

static void argv_release(struct argv_list *a)
{
	size_t i;

	for (i = 0; i < a->count; i++)
		free(a->items[i]);
}
#define _cleanup_argv_ __attribute__((cleanup(argv_release)))

/* Socket paths must fit sun_path (108 bytes): fail early with a clear message. */
static int sock_path(char *out, size_t size, const char *dir, const char *name,
		     struct ember_error **err)
{
	int n = snprintf(out, size, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= size)
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG,
				       "socket path `%s/%s` exceeds %zu bytes: use a shorter "
				       "--run-dir", dir, name, size - 1);
	unlink(out);
	return 0;
}

/* The driver's files in run_dir: sockets (stale ones removed) and QEMU's own log. */
static int qemu_prepare(struct vmm_instance *vm, const struct vmm_boot_config *cfg,
			struct ember_error **err)
{
	struct qemu_vm *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	vm->priv = q;
	if (sock_path(q->agent_sock, sizeof(q->agent_sock), cfg->run_dir, "agent.sock", err) < 0 ||
	    sock_path(q->qmp_sock, sizeof(q->qmp_sock), cfg->run_dir, "qmp.sock", err) < 0 ||
	    sock_path(q->mig_sock, sizeof(q->mig_sock), cfg->run_dir, "mig.sock", err) < 0 ||
	    sock_path(q->console_sock, sizeof(q->console_sock), cfg->run_dir, "console.sock",
		      err) < 0)
		return -1;
	return 0;
}

/* The machine: RAM, accelerator, CPUs, and everything QEMU must not do. */
static void add_machine_args(struct argv_list *a, const struct vmm_driver *drv,
			     const struct vmm_boot_config *cfg)
{
	argv_add(a, "-name");
	argv_add(a, "emberd-%s", cfg->sandbox_id);
	/* A template's RAM is a shared file; a clone maps the same file privately (copy-on-write),
	 * so it starts with the template's memory without copying it. Clones must be started with
	 * the template's exact device configuration (docs/snapshots.md). */
	if (cfg->memory_fd > 0) {
		/* The fd is kept open at this number in QEMU, which reopens it read-write (QEMU 7.2
		 * has no rom=off) and maps it privately; its seals refuse every write to it. A fork
		 * base's loader maps its memfd shared, unsealed: the load fills it. */
		argv_add(a, "-object");
		argv_add(a, "memory-backend-file,id=ram0,mem-path=/proc/self/fd/%d,size=%uM,"
			 "share=%s", cfg->memory_fd, cfg->memory_mib,
			 cfg->memory_shared ? "on" : "off");
	} else if (cfg->memory_file != NULL) {
		argv_add(a, "-object");
		argv_add(a, "memory-backend-file,id=ram0,mem-path=%s,size=%uM,share=%s",
			 cfg->memory_file, cfg->memory_mib, cfg->memory_shared ? "on" : "off");
	} else {
		/* Plain RAM under the same name as the others': a paused sandbox's state names its
		 * RAM block, and resumes into this backend whether it was cold, a clone or a
		 * resume before. */
		argv_add(a, "-object");
		argv_add(a, "memory-backend-ram,id=ram0,size=%uM", cfg->memory_mib);
	}
	argv_add(a, "-M");
	argv_add(a, "microvm,x-option-roms=off,memory-backend=ram0");
	argv_add(a, "-accel");
	if (drv->accel == VMM_ACCEL_KVM) {
		argv_add(a, "kvm");
		argv_add(a, "-cpu");
		argv_add(a, "host");
	} else {
		/* A bounded translation cache (default: up to 1 GiB) keeps the VMM inside its host
		 * cgroup's memory.max (guest RAM + CGROUP_VMM_OVERHEAD_MIB). */
		argv_add(a, "tcg,tb-size=128%s", cfg->vcpus > 1 ? ",thread=multi" : "");
		argv_add(a, "-cpu");
		argv_add(a, "max");
	}
	argv_add(a, "-m");
	argv_add(a, "%u", cfg->memory_mib);
	argv_add(a, "-smp");
	argv_add(a, "%u", cfg->vcpus);
	argv_add(a, "-nodefaults");
	argv_add(a, "-no-user-config");
	argv_add(a, "-display");
	argv_add(a, "none");
	argv_add(a, "-no-reboot");
	/* QEMU's own seccomp filter: no new privileges, no spawning, no resource control. */
	argv_add(a, "-sandbox");
	argv_add(a, "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
}

/* The console, and the kernel to boot (none for a clone). With a client already queued on the
 * listening socket, QEMU accepts it before the guest runs: no console byte is lost. While no
 * client is connected (the daemon restarts), QEMU drops the serial output; while the client
 * does not read, the guest's UART waits (docs/operations.md, "The guest console"). */
static void add_boot_args(struct argv_list *a, int console_listen_fd,
			  const struct vmm_boot_config *cfg, const char *cmdline)
{
	argv_add(a, "-chardev");
	argv_add(a, "socket,id=console,fd=%d,server=on,wait=off", console_listen_fd);
	argv_add(a, "-serial");
	argv_add(a, "chardev:console");
	/* A clone resumes a running kernel: loading (and keeping in QEMU's memory) the kernel and
	 * initramfs again would only cost startup time and memory. */
	if (cfg->restore_state != NULL || cfg->resume_state != NULL)
		return;
	argv_add(a, "-kernel");
	argv_add(a, "%s", cfg->kernel_bzimage);
	argv_add(a, "-initrd");
	argv_add(a, "%s", cfg->initramfs);
	argv_add(a, "-append");
	argv_add(a, "%s", cmdline);
}

/* The pack drive, RNG, agent port and QMP; a clone waits paused for its device state. */
static void add_device_args(struct argv_list *a, const struct qemu_vm *q,
			    const struct vmm_boot_config *cfg)
{
	argv_add(a, "-drive");
	argv_add(a, "id=pack,file=%s,format=raw,if=none,readonly=on", cfg->pack_image);
	argv_add(a, "-device");
	argv_add(a, "virtio-blk-device,drive=pack");
	argv_add(a, "-device");
	argv_add(a, "virtio-rng-device");
	argv_add(a, "-device");
	argv_add(a, "virtio-serial-device,max_ports=2");
	argv_add(a, "-chardev");
	argv_add(a, "socket,id=agent,path=%s,server=on,wait=off", q->agent_sock);
	argv_add(a, "-device");
	argv_add(a, "virtserialport,chardev=agent,name=org.emberd.agent");
	/* The NIC: the daemon made the TAP and passes it open. The device MAC is the same for
	 * every VM (a clone must match its template's devices); the guest sets its own from the
	 * HELLO, and each TAP is a link of its own. */
	if (cfg->tap_fd > 0) {
		argv_add(a, "-netdev");
		argv_add(a, "tap,id=net0,fd=%d", cfg->tap_fd);
		argv_add(a, "-device");
		argv_add(a, "virtio-net-device,netdev=net0,mac=02:00:00:00:00:01");
	}
	argv_add(a, "-qmp");
	argv_add(a, "unix:%s,server=on,wait=off", q->qmp_sock);
	if (cfg->restore_state != NULL || cfg->resume_state != NULL) {
		argv_add(a, "-S");
		argv_add(a, "-incoming");
		argv_add(a, "defer");
	}
}

/* Writes s into out as one QEMU option value: its commas doubled (QEMU's only escape). */
static int qemu_opt_value(const char *s, char *out, size_t size, struct ember_error **err)
{
	size_t n = 0;

	for (; *s != '\0'; s++) {
		if (n + 3 > size)
			return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG,
					       "QEMU option value too long");
		if (*s == ',')
			out[n++] = ',';
		out[n++] = *s;
	}
	out[n] = '\0';
	return 0;
}

/* Share i: 9p mount tag "emberd<i>" (vmm.h). security_model=none: QEMU acts as itself (the
 * jail's ids, which the idmapped tree writes as the mount's owner) and stores no metadata of
 * the guest's; a chown the guest asks for that QEMU cannot do is dropped, never done as
 * root. Read-only mounts are refused by QEMU and by the tree both. */
static int add_mount_args(struct argv_list *a, const struct vmm_boot_config *cfg,
			  struct ember_error **err)
{
	char path[2 * PATH_MAX];
	size_t i;

	for (i = 0; i < cfg->nmounts; i++) {
		const struct vmm_mount *m = &cfg->mounts[i];

		if (qemu_opt_value(m->host, path, sizeof(path), err) < 0)
			return ember_error_wrap(err, "mount `%s`", m->host);
		argv_add(a, "-fsdev");
		argv_add(a, "local,id=fs%zu,path=%s,security_model=none%s", i, path,
			 m->rw ? "" : ",readonly=on");
		argv_add(a, "-device");
		argv_add(a, "virtio-9p-device,fsdev=fs%zu,mount_tag=emberd%zu", i, i);
	}
	return 0;
}

/* Host directories reach a QEMU only as idmapped trees in its jail, made from the directory
 * the manager opened (never by looking its path up again): an unjailed QEMU takes none. A
 * clone resumes its template's exact devices and a template's would be every clone's, so
 * neither ever has mounts: the manager boots a sandbox with mounts cold. */
static int check_mounts(const struct vmm_driver *drv, const struct vmm_boot_config *cfg,
			struct ember_error **err)
{
	size_t i;

	if (cfg->nmounts == 0)
		return 0;
	if (!drv->jailed)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "host directories (`mounts`) need jailed VMMs, and this "
				       "daemon runs QEMU unjailed (--no-jail)");
	if (cfg->nmounts > VMM_MOUNTS_MAX)
		return ember_error_set(err, EMBER_E_INVALID, 0, "%zu mounts, at most %d",
				       cfg->nmounts, VMM_MOUNTS_MAX);
	if (cfg->restore_state != NULL || cfg->memory_file != NULL || cfg->memory_fd > 0 ||
	    cfg->resume_state != NULL)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "a template, a clone or a resumed VM never has mounts (its "
				       "devices are a snapshot's)");
	for (i = 0; i < cfg->nmounts; i++) {
		const struct vmm_mount *m = &cfg->mounts[i];

		if (m->image != NULL || m->dir_fd < 0 || m->host == NULL)
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "mount %zu is not an open directory: the QEMU driver "
					       "shares directories (virtio-9p), never block images",
					       i);
		if (m->rw && (m->uid == 0 || m->gid == 0))
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "mount `%s` would write as root", m->host);
	}
	return 0;
}

static int listen_unix_socket(const char *path, uid_t owner, struct ember_error **err);

/* Listens on the console socket and queues the daemon's connection on it (read from now on);
 * returns the listening fd for QEMU. */
static int open_console(struct vmm_instance *vm, const struct qemu_vm *q,
			struct ember_error **err)
{
	_cleanup_close_ int listen_fd = listen_unix_socket(q->console_sock, 0, err);
	int conn;

	if (listen_fd < 0)
		return -1;
	conn = unix_connect(q->console_sock, err);
	if (conn < 0 || console_add_stream(vm->console, conn, err) < 0)
		return ember_error_wrap(err, "console socket");
	return steal_fd(&listen_fd);
}

/* Hands the run directory to the VMM's uid: the directory itself (opened without following a
 * symlink) and whatever an earlier VMM of this sandbox left in it (a clone's console log before
 * the cold boot that replaces it), never following a symlink. The daemon's own files there
 * (root's) stay root's. */
static int give_run_dir(const char *dir, uid_t uid, struct ember_error **err)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	if (fd < 0 || fchown(fd, uid, uid) < 0 || fchmod(fd, 0700) < 0)
		return ember_error_sys(err, "give the run directory `%s` to uid %u", dir,
				       (unsigned)uid);
	d = fdopendir(dup(fd));
	if (d == NULL)
		return ember_error_sys(err, "read `%s`", dir);
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_uid == 0 ||
		    st.st_uid == uid || strcmp(de->d_name, "..") == 0)
			continue;
		if (fchownat(fd, de->d_name, uid, uid, AT_SYMLINK_NOFOLLOW) < 0) {
			ember_error_sys(err, "give `%s/%s` to uid %u", dir, de->d_name,
					(unsigned)uid);
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	return 0;
}

/* A template VM's RAM file, made here by the daemon (never an existing file) and given to the
 * VMM's uid; the VMM sees that file alone, not the directory it is built in. */
static int make_shared_memory(const char *path, uid_t uid, struct ember_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				      0600);

	if (fd < 0 || fchown(fd, uid, uid) < 0)
		return ember_error_sys(err, "create the template memory `%s`", path);
	return 0;
}

/* What a jailed QEMU sees besides the system's /usr: binds at the host paths. */
static int jail_binds(const struct vmm_instance *vm, const struct vmm_boot_config *cfg,
		      struct jail_bind *binds, size_t *n, struct ember_error **err)
{
	binds[(*n)++] = (struct jail_bind){ .path = cfg->run_dir, .writable = true };
	binds[(*n)++] = (struct jail_bind){ .path = cfg->pack_image };
	/* A clone resumes a running kernel: it needs neither kernel nor initramfs. */
	if (cfg->restore_state == NULL) {
		binds[(*n)++] = (struct jail_bind){ .path = cfg->kernel_bzimage };
		binds[(*n)++] = (struct jail_bind){ .path = cfg->initramfs };
	}
	if (cfg->memory_fd > 0 || cfg->memory_file == NULL)
		return 0;
	/* A private mapping of a file needs it opened read-write (QEMU 7.2): a jailed clone gets
	 * its template's RAM as a sealed memfd, never as the file. */
	if (!cfg->memory_shared)
		return ember_error_set(err, EMBER_E_INTERNAL, EINVAL,
				       "a jailed clone needs its template's memory as a memfd");
	if (make_shared_memory(cfg->memory_file, vm->uid, err) < 0)
		return -1;
	binds[(*n)++] = (struct jail_bind){ .path = cfg->memory_file, .writable = true };
	return 0;
}

/* The mounts' trees, open only while the jail is made. */
struct qemu_trees {
	struct jail_tree tree[VMM_MOUNTS_MAX];
	size_t n;
};

static void trees_close(struct qemu_trees *trees)
{
	size_t i;

	for (i = 0; i < trees->n; i++)
		close(trees->tree[i].fd);
}
#define _cleanup_trees_ __attribute__((cleanup(trees_close)))

/* Each mount as a tree idmapped from its owner (the mount's uid/gid) to the VMM's uid and
 * gid: a user namespace per mount, gone once its tree holds it. */
static int make_trees(const struct vmm_instance *vm, const struct vmm_boot_config *cfg,
		      struct qemu_trees *trees, struct ember_error **err)
{
	size_t i;

	for (i = 0; i < cfg->nmounts; i++) {
		const struct vmm_mount *m = &cfg->mounts[i];
		struct idmap map = { .uid_inside = m->uid, .uid_outside = vm->uid,
				     .gid_inside = m->gid, .gid_outside = (gid_t)vm->uid };
		_cleanup_close_ int userns = idmap_userns_fd(&map, err);
		int tree;

		if (userns < 0)
			return ember_error_wrap(err, "mount `%s`", m->host);
		tree = idmap_tree(m->dir_fd, userns, m->rw, err);
		if (tree < 0)
			return ember_error_wrap(err, "mount `%s`", m->host);
		trees->tree[trees->n++] = (struct jail_tree){ .fd = tree, .path = m->host };
	}
	return 0;
}

static int spawn_jailed(struct vmm_instance *vm, const struct vmm_boot_config *cfg,
			char *const argv[], int log_fd, const int *keep, size_t nkeep,
			struct ember_error **err)
{
	_cleanup_trees_ struct qemu_trees trees = { .n = 0 };
	struct jail_bind binds[8];
	struct jail_config jail = {
		.uid = vm->uid,
		.gid = (gid_t)vm->uid,
		.root = VMM_JAIL_ROOT,
		.binds = binds,
		.trees = trees.tree,
		/* Only with mounts: the guest then sees their owners' files as its sandbox
		 * user's. Without, the namespace would change nothing the guest sees. */
		.userns_id = cfg->nmounts > 0 ? QEMU_GUEST_SANDBOX_ID : 0,
		.kvm = vm->drv->accel == VMM_ACCEL_KVM,
		.cgroup_fd = vm->cgroup_fd,
		.keep_fds = keep,
		.nkeep_fds = nkeep,
	};

	if (give_run_dir(cfg->run_dir, vm->uid, err) < 0 ||
	    jail_binds(vm, cfg, binds, &jail.nbinds, err) < 0 ||
	    make_trees(vm, cfg, &trees, err) < 0)
		return ember_error_wrap(err, "jailed QEMU");
	jail.ntrees = trees.n;
	if (jail_spawn(&jail, argv, log_fd, &vm->pid, &vm->pidfd, err) < 0)
		return ember_error_wrap(err, "jailed QEMU");
	vm->cgroup_joined = vm->cgroup_fd >= 0;
	return 0;
}

/* The jail binds a file at the path it resolves to (jail.h): a jailed QEMU must be given those
 * paths, not ones through a symlink (an images directory of links, say). */
static int resolve_paths(struct vmm_boot_config *cfg, char kernel[PATH_MAX],
			 char initramfs[PATH_MAX], char pack[PATH_MAX], struct ember_error **err)
{
	if (realpath(cfg->pack_image, pack) == NULL)
		return ember_error_sys(err, "pack image `%s`", cfg->pack_image);
	cfg->pack_image = pack;
	if (cfg->restore_state != NULL || cfg->resume_state != NULL)
		return 0;
	if (realpath(cfg->kernel_bzimage, kernel) == NULL)
		return ember_error_sys(err, "kernel `%s`", cfg->kernel_bzimage);
	if (realpath(cfg->initramfs, initramfs) == NULL)
		return ember_error_sys(err, "initramfs `%s`", cfg->initramfs);
	cfg->kernel_bzimage = kernel;
	cfg->initramfs = initramfs;
	return 0;
}

static int qemu_start(struct vmm_instance *vm, const struct vmm_boot_config *cfg,
		      struct ember_error **err)
{
	_cleanup_argv_ struct argv_list a = { 0 };
	_cleanup_close_ int console_fd = -1;
	struct vmm_boot_config resolved = *cfg;
	char cmdline[1024], kernel[PATH_MAX], initramfs[PATH_MAX], pack[PATH_MAX];
	int keep[3];
	size_t nkeep = 1;
	const struct qemu_vm *q;

	if (check_mounts(vm->drv, cfg, err) < 0 ||
	    (vm->drv->jailed && resolve_paths(&resolved, kernel, initramfs, pack, err) < 0))
		return -1;
	cfg = &resolved;
	if (qemu_prepare(vm, cfg, err) < 0 ||
	    vmm_kernel_cmdline(vm->drv, cfg, cmdline, sizeof(cmdline), err) < 0)
		return -1;
	q = vm->priv;
	console_fd = open_console(vm, q, err);
	if (console_fd < 0)
		return -1;
	argv_add(&a, "%s", vm->drv->vmm_path);
	add_machine_args(&a, vm->drv, cfg);
	add_boot_args(&a, console_fd, cfg, cmdline);
	add_device_args(&a, q, cfg);
	if (add_mount_args(&a, cfg, err) < 0)
		return -1;
	if (a.overflow)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "QEMU command line too long");
	/* QEMU keeps its console's listening socket, a clone's memfd and the TAP; its own
	 * messages (stderr) go into the console ring too, with the serial output. */
	keep[0] = console_fd;
	if (cfg->memory_fd > 0)
		keep[nkeep++] = cfg->memory_fd;
	if (cfg->tap_fd > 0)
		keep[nkeep++] = cfg->tap_fd;
	if (vm->drv->jailed)
		return spawn_jailed(vm, cfg, a.items, console_vmm_fd(vm->console), keep, nkeep,
				    err);
	return vmm_spawn_fds(a.items, console_vmm_fd(vm->console), keep, nkeep, &vm->pid,
			     &vm->pidfd, err);
}

/* The chardev socket exists shortly after QEMU starts; a connection made before the guest opens
 * the port is fine: QEMU holds our bytes until the guest reads them. */
static int qemu_connect_agent(struct vmm_instance *vm, int64_t deadline_ms,
			      struct ember_error **err)
{
	struct qemu_vm *q = vm->priv;
	struct ember_error *connect_err = NULL;
	int fd = unix_connect_until(q->agent_sock, deadline_ms, vmm_alive_ctx, vm, &connect_err);

	if (fd >= 0)
		return fd;
	if (connect_err->kind == EMBER_E_GUEST_TIMEOUT) {
		ember_error_free(&connect_err);
		return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
				       "QEMU did not open the agent socket before the boot deadline");
	}
	/* A dead QEMU (EMBER_E_GUEST) or a connect() that cannot work (a hard error). */
	ember_error_propagate(err, connect_err);
	return ember_error_wrap(err, "connect to the agent socket%s",
				vmm_alive(vm) ? "" : " (QEMU exited)");
}

/* on: device state only (with x-ignore-shared, RAM in a shared file is not part of the
 * stream); off: RAM too. A clone's QEMU had it on for its restore: a pause sets it off. */
static int set_ignore_shared(struct qmp *qmp, bool on, int64_t deadline_ms,
			     struct ember_error **err)
{
	_cleanup_json_ json_t *args = json_pack("{s:[{s:s, s:b}]}", "capabilities", "capability",
						"x-ignore-shared", "state", on ? 1 : 0);

	if (args == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	return qmp_execute(qmp, "migrate-set-capabilities", args, NULL, deadline_ms, err);
}

/* Polls query-migrate until it reports completed (0) or failed (-1). An empty answer means
 * the migration has not started yet (QEMU 7.2 answers {} then). */
static int wait_migration(struct qmp *qmp, int64_t deadline_ms, struct ember_error **err)
{
	for (;;) {
		_cleanup_json_ json_t *info = NULL;
		const char *status, *desc;

		if (qmp_execute(qmp, "query-migrate", NULL, &info, deadline_ms, err) < 0)
			return -1;
		status = json_string_value(json_object_get(info, "status"));
		if (status != NULL && strcmp(status, "completed") == 0)
			return 0;
		if (status != NULL && (strcmp(status, "failed") == 0 ||
				       strcmp(status, "cancelled") == 0)) {
			desc = json_string_value(json_object_get(info, "error-desc"));
			return ember_error_set(err, EMBER_E_GUEST, 0, "migration %s: %s", status,
					       desc != NULL ? desc : "no description");
		}
		if (time_ms_until(deadline_ms) == 0)
			return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
					       "migration did not complete in time");
		/* QMP tells of a finished migration only as a MIGRATION event, which needs the
		 * `events` capability and an event reader this client does not have; a device
		 * state moves in a few ms, so polling 1 ms apart costs a handful of queries. */
		sleep_ms(QEMU_QMP_POLL_MS);
	}
}

/* owner: the VMM's uid (a jailed QEMU connects as it), or 0. */
static int listen_unix_socket(const char *path, uid_t owner, struct ember_error **err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return ember_error_sys(err, "socket");
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 1) < 0)
		return ember_error_sys(err, "listen on `%s`", path);
	/* Never through a symlink: the directory is the VMM's. */
	if (owner != 0 && fchownat(AT_FDCWD, path, owner, owner, AT_SYMLINK_NOFOLLOW) < 0)
		return ember_error_sys(err, "give `%s` to uid %u", path, (unsigned)owner);
	return steal_fd(&fd);
}

/* Reads fd to EOF into path (atomically: temp file + rename). */
static int stream_to_file(int fd, const char *path, int64_t deadline_ms, struct ember_error **err)
{
	char tmp[PATH_MAX + 8], buf[65536];
	int out, ret = -1;

	snprintf(tmp, sizeof(tmp), "%s.part", path);
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0)
		return ember_error_sys(err, "create `%s`", tmp);
	for (;;) {
		ssize_t n;
		int ready = fd_wait(fd, POLLIN, deadline_ms, err);

		if (ready < 0)
			goto out;
		if (ready == 0) {
			ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
					"device state did not arrive in time");
			goto out;
		}
		n = read(fd, buf, sizeof(buf));
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			ember_error_sys(err, "read device state");
			goto out;
		}
		if (fd_write_all(out, buf, (size_t)n, deadline_ms, err) < 0)
			goto out;
	}
	if (fsync(out) < 0 || rename(tmp, path) < 0) {
		ember_error_sys(err, "save `%s`", path);
		goto out;
	}
	ret = 0;
out:
	close(out);
	if (ret < 0)
		unlink(tmp);
	return ret;
}

/* Takes the one connection QEMU's `migrate` makes to listen_fd and saves what it sends. */
static int accept_state(int listen_fd, const char *state_path, int64_t deadline_ms,
			struct ember_error **err)
{
	_cleanup_close_ int conn = -1;

	if (fd_wait(listen_fd, POLLIN, deadline_ms, err) <= 0)
		return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
				       "QEMU did not connect to send its state");
	conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (conn < 0)
		return ember_error_sys(err, "accept the migration stream");
	return stream_to_file(conn, state_path, deadline_ms, err);
}

/* A whole state moves as fast as QEMU and the disk can: QEMU 7.2 caps a migration at
 * 32 MiB/s unless told otherwise (a 256 MiB guest would take 8 s to pause). */
static int set_unlimited_bandwidth(struct qmp *qmp, int64_t deadline_ms, struct ember_error **err)
{
	_cleanup_json_ json_t *args = json_pack("{s:I}", "max-bandwidth",
						(json_int_t)QEMU_SAVE_BANDWIDTH);

	if (args == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	return qmp_execute(qmp, "migrate-set-parameters", args, NULL, deadline_ms, err);
}

/* Best effort, bounded: cancels a migration in progress and resumes the stopped VM. */
static void run_on_after_failed_save(struct qmp *qmp)
{
	int64_t deadline = time_mono_ms() + 5000;

	qmp_execute(qmp, "migrate_cancel", NULL, NULL, deadline, NULL);
	qmp_execute(qmp, "cont", NULL, NULL, deadline, NULL);
}

/* whole: every RAM page goes into the stream too (a pause); else only the device state, the
 * RAM staying in the template's shared file. */
static int snapshot_to(struct vmm_instance *vm, const char *state_path, bool whole,
		       bool keep_running, int64_t deadline_ms, struct ember_error **err)
{
	struct qemu_vm *q = vm->priv;
	_cleanup_qmp_ struct qmp *qmp = NULL;
	_cleanup_close_ int listen_fd = -1;
	_cleanup_json_ json_t *args = NULL;

	if (qmp_connect(q->qmp_sock, deadline_ms, vmm_alive_ctx, vm, &qmp, err) < 0)
		return -1;
	listen_fd = listen_unix_socket(q->mig_sock, vm->uid, err);
	if (listen_fd < 0 || qmp_execute(qmp, "stop", NULL, NULL, deadline_ms, err) < 0 ||
	    set_ignore_shared(qmp, !whole, deadline_ms, err) < 0 ||
	    (whole && set_unlimited_bandwidth(qmp, deadline_ms, err) < 0))
		return -1;
	args = json_pack("{s:s+}", "uri", "unix:", q->mig_sock);
	if (args == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	if (qmp_execute(qmp, "migrate", args, NULL, deadline_ms, err) < 0 ||
	    accept_state(listen_fd, state_path, deadline_ms, err) < 0 ||
	    wait_migration(qmp, deadline_ms, err) < 0) {
		/* A whole save that failed (a full disk, a timeout) leaves the VM as it was:
		 * running again, for its sandbox to go on. */
		if (whole)
			run_on_after_failed_save(qmp);
		return -1;
	}
	/* After a completed migration QEMU 7.2 is `postmigrate`: `cont` runs the source on. */
	return keep_running ? qmp_execute(qmp, "cont", NULL, NULL, deadline_ms, err) : 0;
}

static int qemu_snapshot(struct vmm_instance *vm, const char *state_path, int64_t deadline_ms,
			 struct ember_error **err)
{
	struct qemu_vm *q = vm->priv;
	int ret = snapshot_to(vm, state_path, false, false, deadline_ms, err);

	unlink(q->mig_sock);
	return ret < 0 ? ember_error_wrap(err, "snapshot") : 0;
}

static int qemu_save(struct vmm_instance *vm, const char *state_path, bool keep_running,
		     int64_t deadline_ms, struct ember_error **err)
{
	struct qemu_vm *q = vm->priv;
	int ret = snapshot_to(vm, state_path, true, keep_running, deadline_ms, err);

	unlink(q->mig_sock);
	return ret < 0 ? ember_error_wrap(err, "save the paused VM") : 0;
}

/* Streams a saved device state into QEMU, which listens once `migrate-incoming` ran. */
static int send_state(struct vmm_instance *vm, const char *state, size_t state_len,
		      int64_t deadline_ms, struct ember_error **err)
{
	struct qemu_vm *q = vm->priv;
	_cleanup_close_ int conn = unix_connect_until(q->mig_sock, deadline_ms, vmm_alive_ctx, vm,
						      err);

	if (conn < 0)
		return ember_error_wrap(err, "send the device state");
	return fd_write_all(conn, state, state_len, deadline_ms, err);
}

/* `cont` before the load completed is accepted and leaves the VM paused forever; and
 * query-migrate may say completed while the machine is still "inmigrate". */
static int wait_loaded(struct qmp *qmp, int64_t deadline_ms, struct ember_error **err)
{
	if (wait_migration(qmp, deadline_ms, err) < 0)
		return -1;
	for (;;) {
		_cleanup_json_ json_t *status = NULL;
		const char *run_state;

		if (qmp_execute(qmp, "query-status", NULL, &status, deadline_ms, err) < 0)
			return -1;
		run_state = json_string_value(json_object_get(status, "status"));
		if (run_state != NULL && strcmp(run_state, "inmigrate") != 0)
			return 0;
		if (time_ms_until(deadline_ms) == 0)
			return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
					       "the clone stayed in `inmigrate`");
		/* The same missing event as in wait_migration (here: STOP after the load). */
		sleep_ms(QEMU_QMP_POLL_MS);
	}
}

static int restore_from(struct vmm_instance *vm, const char *state_path, int64_t deadline_ms,
			struct ember_error **err)
{
	struct qemu_vm *q = vm->priv;
	_cleanup_qmp_ struct qmp *qmp = NULL;
	_cleanup_json_ json_t *args = NULL;
	_cleanup_free_ char *state = NULL;
	size_t state_len;

	if (file_read_all(state_path, QEMU_STATE_MAX, &state, &state_len, err) < 0 ||
	    qmp_connect(q->qmp_sock, deadline_ms, vmm_alive_ctx, vm, &qmp, err) < 0 ||
	    set_ignore_shared(qmp, true, deadline_ms, err) < 0)
		return -1;
	args = json_pack("{s:s+}", "uri", "unix:", q->mig_sock);
	if (args == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	if (qmp_execute(qmp, "migrate-incoming", args, NULL, deadline_ms, err) < 0 ||
	    send_state(vm, state, state_len, deadline_ms, err) < 0 ||
	    wait_loaded(qmp, deadline_ms, err) < 0)
		return -1;
	return qmp_execute(qmp, "cont", NULL, NULL, deadline_ms, err);
}

static int qemu_restore(struct vmm_instance *vm, const char *state_path, int64_t deadline_ms,
			struct ember_error **err)
{
	struct qemu_vm *q = vm->priv;
	int ret = restore_from(vm, state_path, deadline_ms, err);

	unlink(q->mig_sock);
	return ret;
}

/* Streams a whole saved state (a paused VM's, up to its RAM size) from the file into QEMU. */
static int send_state_file(struct vmm_instance *vm, const char *state_path, int64_t deadline_ms,
			   struct ember_error **err)
{
	struct qemu_vm *q = vm->priv;
	_cleanup_close_ int in = open(state_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_close_ int conn = -1;

	if (in < 0 && errno == ENOENT) /* a snapshot deleted meanwhile */
		return ember_error_set(err, EMBER_E_NOT_FOUND, ENOENT, "the saved state is gone");
	if (in < 0)
		return ember_error_sys(err, "open `%s`", state_path);
	conn = unix_connect_until(q->mig_sock, deadline_ms, vmm_alive_ctx, vm, err);
	if (conn < 0 || fd_copy(in, conn, deadline_ms, err) < 0)
		return ember_error_wrap(err, "send the saved state `%s`", state_path);
	return 0;
}

static int load_from(struct vmm_instance *vm, const char *state_path, int64_t deadline_ms,
		     struct ember_error **err)
{
	struct qemu_vm *q = vm->priv;
	_cleanup_qmp_ struct qmp *qmp = NULL;
	_cleanup_json_ json_t *args = json_pack("{s:s+}", "uri", "unix:", q->mig_sock);

	if (args == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	if (qmp_connect(q->qmp_sock, deadline_ms, vmm_alive_ctx, vm, &qmp, err) < 0 ||
	    set_ignore_shared(qmp, false, deadline_ms, err) < 0 ||
	    qmp_execute(qmp, "migrate-incoming", args, NULL, deadline_ms, err) < 0 ||
	    send_state_file(vm, state_path, deadline_ms, err) < 0 ||
	    wait_loaded(qmp, deadline_ms, err) < 0)
		return -1;
	return vm->load_stopped ? 0 : qmp_execute(qmp, "cont", NULL, NULL, deadline_ms, err);
}

static int qemu_load(struct vmm_instance *vm, const char *state_path, int64_t deadline_ms,
		     struct ember_error **err)
{
	struct qemu_vm *q = vm->priv;
	int ret = load_from(vm, state_path, deadline_ms, err);

	unlink(q->mig_sock);
	return ret;
}

static int qemu_run(struct vmm_instance *vm, int64_t deadline_ms, struct ember_error **err)
{
	struct qemu_vm *q = vm->priv;
	_cleanup_qmp_ struct qmp *qmp = NULL;

	if (qmp_connect(q->qmp_sock, deadline_ms, vmm_alive_ctx, vm, &qmp, err) < 0 ||
	    qmp_execute(qmp, "cont", NULL, NULL, deadline_ms, err) < 0)
		return ember_error_wrap(err, "run the loaded VM");
	return 0;
}

static void qemu_request_stop(struct vmm_instance *vm, int64_t deadline_ms)
{
	struct qemu_vm *q = vm->priv;
	_cleanup_qmp_ struct qmp *qmp = NULL;
	int64_t qmp_deadline = time_mono_ms() + 1000;

	if (q == NULL)
		return;
	if (qmp_deadline > deadline_ms)
		qmp_deadline = deadline_ms;
	/* `quit` ends QEMU at once; nothing in the guest needs to survive. */
	if (qmp_connect(q->qmp_sock, qmp_deadline, vmm_alive_ctx, vm, &qmp, NULL) == 0)
		qmp_execute(qmp, "quit", NULL, NULL, qmp_deadline, NULL);
}

static int qemu_attach(struct vmm_instance *vm, struct ember_error **err)
{
	struct qemu_vm *q = calloc(1, sizeof(*q));
	int conn;

	if (q == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	vm->priv = q;
	snprintf(q->agent_sock, sizeof(q->agent_sock), "%s/agent.sock", vm->run_dir);
	snprintf(q->qmp_sock, sizeof(q->qmp_sock), "%s/qmp.sock", vm->run_dir);
	snprintf(q->mig_sock, sizeof(q->mig_sock), "%s/mig.sock", vm->run_dir);
	snprintf(q->console_sock, sizeof(q->console_sock), "%s/console.sock", vm->run_dir);
	/* QEMU accepts a new client once the earlier daemon's connection closed. Without one the
	 * VM runs on and only its serial output is lost: not a reason to give it up. */
	conn = unix_connect(q->console_sock, NULL);
	if (conn >= 0)
		console_add_stream(vm->console, conn, NULL);
	return 0;
}

static void qemu_release(struct vmm_instance *vm)
{
	struct qemu_vm *q = vm->priv;

	if (q == NULL)
		return;
	unlink(q->agent_sock);
	unlink(q->qmp_sock);
	unlink(q->mig_sock);
	unlink(q->console_sock);
	free(q);
	vm->priv = NULL;
}

const struct vmm_driver_ops vmm_qemu_ops = {
	.name = "qemu",
	.jails = true,
	.mount_kind = VMM_MOUNT_SHARE,
	.init = qemu_init,
	.start = qemu_start,
	.connect_agent = qemu_connect_agent,
	.request_stop = qemu_request_stop,
	.release = qemu_release,
	.attach = qemu_attach,
	.snapshot = qemu_snapshot,
	.restore = qemu_restore,
	.save = qemu_save,
	.load = qemu_load,
	.run = qemu_run,
};
