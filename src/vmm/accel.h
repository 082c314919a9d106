/* accel.h - deciding whether KVM is really usable or QEMU must emulate (TCG).
 * Used once at driver creation (vmm.c). Never trusts a /dev/kvm that merely exists: nested "PVM"
 * hosts expose one without VMX/SVM, on which a stock guest runs ~1000x slower than TCG would
 * suggest; and never keeps the probe VM or any fd once it has answered. */
#ifndef EMBER_VMM_ACCEL_H
#define EMBER_VMM_ACCEL_H

#include <stdbool.h>
#include <stddef.h>

/* true when /dev/kvm opens AND /proc/cpuinfo shows vmx or svm AND /dev/kvm answers
 * KVM_GET_API_VERSION == 12 AND a VM with one vCPU can be created. reason[] says why not, with
 * the errno's text where a call failed (or "hardware virtualization"). */
bool accel_kvm_usable(char *reason, size_t reason_size);

/* The host TSC frequency in kHz from /proc/cpuinfo ("cpu MHz"), 0 when unknown. Under TCG the
 * guest TSC runs at host speed, so the guest must be told this instead of calibrating. */
unsigned long accel_host_tsc_khz(void);

#endif
