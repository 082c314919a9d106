/* boot.h - PID 1's boot: early mounts, modules, the pack overlay, switch_root, new-root setup.
 * Called once by cmd/emberd-init/main.c in PID 1 mode, before the agent loop starts.
 * Never exits the process: failures are returned (main powers the VM off), and optional steps
 * (cgroup2, loopback, ...) only log.
 *
 * Layout after boot: / is an overlay of the pack squashfs (/dev/vda, read-only lower) and a
 * tmpfs of emberd.overlay_mib MiB (upper). The lower and tmpfs mounts are detached after the
 * overlay is up: overlayfs holds its own references, so they stay alive but are reachable only
 * through the overlay (the sandbox cannot tamper with the raw upper directory or see the pack
 * device's mount). The initramfs is emptied before the switch to free its memory. */
#ifndef EMBER_GUEST_BOOT_H
#define EMBER_GUEST_BOOT_H

#include "util/error.h"

int guest_boot(struct ember_error **err);

/* Waits (polling, there is no udev) until path is a block device node, at most
 * GUEST_DISK_WAIT_MS: the pack disk at boot, a squashfs mount's disk at HELLO (mounts.h). */
int guest_wait_for_disk(const char *path, struct ember_error **err);

/* Ends the VM. Uses reboot(RB_AUTOBOOT): with the `reboot=t panic=-1` command line the kernel
 * triple-faults, which makes QEMU exit (it runs with -no-reboot) and Firecracker exit (it
 * treats a guest reset as the end of the VM; it has no ACPI power-off). RB_POWER_OFF would
 * leave a Firecracker VM halted but alive. Never returns. */
void guest_power_off(void) __attribute__((noreturn));

#endif
