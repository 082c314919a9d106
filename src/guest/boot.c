/* boot.c - PID 1 boot steps. */
#include "guest/boot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "guest/clock.h"
#include "guest/cmdline.h"
#include "guest/limits.h"
#include "guest/log.h"
#include "guest/modules.h"
#include "util/cleanup.h"
#include "util/fdio.h"
#include "util/sync.h"
#include "util/timeutil.h"

#define PACK_DEVICE "/dev/vda"
#define NEW_ROOT "/newroot"

static int mkdir_p(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int do_mount(const char *source, const char *target, const char *type,
		    unsigned long flags, const char *data, struct ember_error **err)
{
	if (mkdir_p(target, 0755) < 0)
		return ember_error_sys(err, "mkdir `%s`", target);
	if (mount(source, target, type, flags, data) < 0)
		return ember_error_sys(err, "mount %s on `%s`%s%s", type != NULL ? type : source,
				       target, data != NULL ? " with " : "", data != NULL ? data : "");
	return 0;
}

static int early_mounts(struct ember_error **err)
{
	int fd;

	/* devtmpfs may already be mounted by the kernel (CONFIG_DEVTMPFS_MOUNT) */
	if (do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755", err) < 0) {
		if ((*err)->errno_value != EBUSY)
			return -1;
		ember_error_free(err);
	}
	fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0)
		guest_log_set_fd(fd);
	if (do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err) < 0 ||
	    do_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err) < 0)
		return -1;
	return 0;
}

static void read_cmdline(struct guest_cmdline *opts)
{
	struct ember_error *err = NULL;
	_cleanup_free_ char *text = NULL;
	size_t len;

	guest_cmdline_defaults(opts);
	if (file_read_all("/proc/cmdline", GUEST_CMDLINE_MAX, &text, &len, &err) < 0) {
		guest_log_error(&err, "read /proc/cmdline (using defaults)");
		return;
	}
	if (guest_cmdline_parse(text, len, opts, &err) < 0)
		guest_log_error(&err, "kernel command line (ignored)");
}

static void load_modules(void)
{
	struct ember_error *err = NULL;
	struct utsname uts;
	char dir[300];
	unsigned loaded = 0;

	if (uname(&uts) < 0) {
		guest_log("uname: %s (modules not loaded)", strerror(errno));
		return;
	}
	snprintf(dir, sizeof(dir), "/lib/modules/%s", uts.release);
	/* A failure is not fatal here: what matters (the disk, a channel) is checked later, with
	 * a clearer error, and this line says why it is missing. */
	if (guest_modules_load(dir, &loaded, &err) < 0)
		guest_log_error(&err, "load kernel modules");
	guest_log("loaded %u kernel module(s) from %s", loaded, dir);
}

int guest_wait_for_disk(const char *path, struct ember_error **err)
{
	int64_t deadline = time_mono_ms() + GUEST_DISK_WAIT_MS;
	struct stat st;

	while (stat(path, &st) < 0 || !S_ISBLK(st.st_mode)) {
		if (time_mono_ms() > deadline)
			return ember_error_set(err, EMBER_E_INTERNAL, ENODEV,
					       "the disk %s did not appear within %d ms", path,
					       GUEST_DISK_WAIT_MS);
		sleep_ms(GUEST_DISK_POLL_MS); /* no udev: nothing to wait on but the node */
	}
	return 0;
}

static int mount_overlay(unsigned overlay_mib, struct ember_error **err)
{
	char opts[64];

	if (do_mount(PACK_DEVICE, "/mnt/lower", "squashfs", MS_RDONLY | MS_NODEV, NULL, err) < 0)
		return ember_error_wrap(err, "mount the pack");
	snprintf(opts, sizeof(opts), "size=%um,mode=0755", overlay_mib);
	if (do_mount("tmpfs", "/mnt/rw", "tmpfs", MS_NOSUID | MS_NODEV, opts, err) < 0)
		return -1;
	if (mkdir_p("/mnt/rw/upper", 0755) < 0 || mkdir_p("/mnt/rw/work", 0755) < 0)
		return ember_error_sys(err, "mkdir in /mnt/rw");
	if (do_mount("overlay", NEW_ROOT, "overlay", MS_NOSUID | MS_NODEV,
		     "lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work", err) < 0)
		return -1;
	/* overlayfs keeps private clones of its layers: the originals can go (see boot.h). */
	if (umount2("/mnt/lower", MNT_DETACH) < 0 || umount2("/mnt/rw", MNT_DETACH) < 0)
		return ember_error_sys(err, "detach the overlay layers");
	return 0;
}

static int move_into(const char *from, const char *to, struct ember_error **err)
{
	if (mkdir_p(to, 0755) < 0)
		return ember_error_sys(err, "mkdir `%s`", to);
	if (mount(from, to, NULL, MS_MOVE, NULL) < 0)
		return ember_error_sys(err, "move `%s` to `%s`", from, to);
	return 0;
}

/* Deletes everything on the device of dirfd below it, leaving other mounts alone. */
static void delete_tree(int dirfd, dev_t dev)
{
	DIR *dir = fdopendir(dirfd);
	struct dirent *de;

	if (dir == NULL) {
		close(dirfd);
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub >= 0)
				delete_tree(sub, dev);
			unlinkat(dirfd, de->d_name, AT_REMOVEDIR);
		} else {
			unlinkat(dirfd, de->d_name, 0);
		}
	}
	closedir(dir);
}

/* What busybox/klibc switch_root do: rootfs cannot be pivot_root'ed away from, so empty it,
 * move the new root over / and chroot into it. */
static int switch_root(struct ember_error **err)
{
	struct statfs sfs;
	struct stat st;
	int fd;

	if (statfs("/", &sfs) < 0 || stat("/", &st) < 0)
		return ember_error_sys(err, "stat /");
	if ((unsigned long)sfs.f_type == RAMFS_MAGIC || (unsigned long)sfs.f_type == TMPFS_MAGIC) {
		fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0)
			delete_tree(fd, st.st_dev);
	} else {
		guest_log("/ is not an initramfs (f_type 0x%lx): not emptying it",
			  (unsigned long)sfs.f_type);
	}
	if (chdir(NEW_ROOT) < 0)
		return ember_error_sys(err, "chdir " NEW_ROOT);
	if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
		return ember_error_sys(err, "move " NEW_ROOT " to /");
	if (chroot(".") < 0)
		return ember_error_sys(err, "chroot");
	if (chdir("/") < 0)
		return ember_error_sys(err, "chdir /");
	return 0;
}

static void optional_mount(const char *source, const char *target, const char *type,
			   unsigned long flags, const char *data)
{
	struct ember_error *err = NULL;

	if (do_mount(source, target, type, flags, data, &err) < 0)
		guest_log_error(&err, "optional mount");
}

static void loopback_up(void)
{
	struct ifreq ifr;
	_cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
		guest_log("loopback: %s", strerror(errno));
		return;
	}
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		guest_log("bring loopback up: %s", strerror(errno));
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, text, strlen(text)) < 0)
		guest_log("write `%s`: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void new_root_setup(void)
{
	char opts[64];
	struct stat st;

	/* /tmp is writable through the overlay: no tmpfs of its own. */
	optional_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		       "newinstance,ptmxmode=0666,mode=0620");
	snprintf(opts, sizeof(opts), "size=%um,mode=1777", GUEST_SHM_MIB);
	optional_mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, opts);
	if (stat("/sys/fs/cgroup", &st) == 0)
		optional_mount("cgroup2", "/sys/fs/cgroup", "cgroup2",
			       MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	loopback_up();
	if (sethostname("emberd", strlen("emberd")) < 0)
		guest_log("sethostname: %s", strerror(errno));
	/* Ctrl-Alt-Del (Firecracker's SendCtrlAltDel) then arrives as SIGINT: a clean stop. */
	if (reboot(RB_DISABLE_CAD) < 0)
		guest_log("disable Ctrl-Alt-Del: %s", strerror(errno));
	write_file("/proc/self/oom_score_adj", "-1000");
	/* User namespaces give the sandbox user a root of its own to reach more of the kernel
	 * with (the stock fallback kernel has them; the minimal one is built without). */
	if (access("/proc/sys/user/max_user_namespaces", F_OK) == 0)
		write_file("/proc/sys/user/max_user_namespaces", "0");
	/* Code files live here (see exec.c); the pack may not ship /run/emberd. */
	if (mkdir_p("/run", 0755) < 0 || mkdir_p("/run/emberd", 0755) < 0 ||
	    mkdir_p("/run/emberd/exec", 0711) < 0 || chmod("/run/emberd/exec", 0711) < 0)
		guest_log("create /run/emberd/exec: %s", strerror(errno));
	if (stat("/home/sandbox", &st) < 0) {
		/* A pack without the sandbox user's home: create it so execs have a cwd. */
		if (mkdir_p("/home", 0755) < 0 || mkdir("/home/sandbox", 0700) < 0 ||
		    chown("/home/sandbox", 1000, 1000) < 0)
			guest_log("create /home/sandbox: %s", strerror(errno));
	}
}

int guest_boot(struct ember_error **err)
{
	struct guest_cmdline opts;

	umask(022);
	if (early_mounts(err) < 0)
		return ember_error_wrap(err, "early mounts");
	guest_log("emberd-init %s: /dev /proc /sys mounted", EMBER_VERSION);
	if (guest_check_timer(GUEST_CLOCKEVENTS_DIR, GUEST_INTERRUPTS_PATH, err) < 0)
		return -1;
	read_cmdline(&opts);
	load_modules();
	if (guest_wait_for_disk(PACK_DEVICE, err) < 0)
		return ember_error_wrap(err, "the pack");
	if (mount_overlay(opts.overlay_mib, err) < 0)
		return ember_error_wrap(err, "mount the root overlay");
	if (move_into("/dev", NEW_ROOT "/dev", err) < 0 ||
	    move_into("/proc", NEW_ROOT "/proc", err) < 0 ||
	    move_into("/sys", NEW_ROOT "/sys", err) < 0)
		return ember_error_wrap(err, "move mounts into the new root");
	if (switch_root(err) < 0)
		return ember_error_wrap(err, "switch_root");
	guest_log("root is the pack overlay (%u MiB writable)", opts.overlay_mib);
	new_root_setup();
	return 0;
}

void guest_power_off(void)
{
	guest_log("powering off");
	sync();
	reboot(RB_AUTOBOOT);
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}
