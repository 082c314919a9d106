/* clock.h - PID 1's check that the guest kernel has a timer. Called once by boot.c, right after
 * /proc and /sys are mounted. Reads procfs and sysfs only; owns no state.
 *
 * Why: under TCG a host stall during the kernel's LAPIC timer calibration skews it ("APIC
 * frequency too slow, disabling apic timer"), and on a microvm nothing else delivers timer
 * interrupts (measured: no PIT clock event, no IRQ 0 row in /proc/interrupts). Such a guest runs
 * until its first sleep, then halts for good: a create would wait out its whole boot deadline.
 * Found here it ends the boot at once with PROTO_CONSOLE_NO_TIMER on the console, which the
 * daemon reads as "boot again" (docs/images.md). */
#ifndef EMBER_GUEST_CLOCK_H
#define EMBER_GUEST_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Where the kernel lists its clock event devices, and counts interrupts. */
#define GUEST_CLOCKEVENTS_DIR "/sys/devices/system/clockevents"
#define GUEST_INTERRUPTS_PATH "/proc/interrupts"

/* Fails (EMBER_E_GUEST, message starting with PROTO_CONSOLE_NO_TIMER) when the kernel has no
 * working tick:
 * - one CPU: CPU 0 has no tick device (clockevents_dir/clockevent0/current_device is empty);
 * - more: the LAPIC timer is a stand-in waiting on a broadcast device that does not exist, so
 *   CPU 0's device is "lapic" and no local timer interrupt ever came (LOC is 0 on every CPU).
 * Anything it cannot read or does not recognise passes: it must never stop a healthy guest. */
int guest_check_timer(const char *clockevents_dir, const char *interrupts_path,
		      struct ember_error **err);

/* The sum over all CPUs of /proc/interrupts' "LOC:" row (local timer interrupts), from that
 * file's text. False when the text has no such row or its counts do not parse. */
bool guest_local_timer_interrupts(const char *text, size_t len, uint64_t *total);

#endif
