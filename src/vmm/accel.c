/* accel.c - KVM usability probe and host TSC frequency. */
#include "vmm/accel.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/cleanup.h"

static bool cpu_has_hw_virt(void)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[8192];
	bool found = false;

	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		found = strstr(line, " vmx") != NULL || strstr(line, " svm") != NULL;
		break;
	}
	fclose(f);
	return found;
}

/* Opening /dev/kvm comes first, so the reason names the most basic thing missing; the CPU
 * flag is checked before any ioctl because a nested "PVM" /dev/kvm answers them all. */
bool accel_kvm_usable(char *reason, size_t reason_size)
{
	_cleanup_close_ int kvm = -1;
	_cleanup_close_ int vm = -1;
	_cleanup_close_ int vcpu = -1;
	bool hw_virt = cpu_has_hw_virt();
	int version;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		snprintf(reason, reason_size, "%s%s%s", errno == ENOENT ? "no /dev/kvm" :
			 "cannot open /dev/kvm: ", errno == ENOENT ? "" : strerror(errno),
			 hw_virt ? "" : "; no vmx/svm CPU flag either");
		return false;
	}
	if (!hw_virt) {
		snprintf(reason, reason_size, "no vmx/svm CPU flag (this /dev/kvm is nested or "
			 "emulated, far slower than TCG)");
		return false;
	}
	version = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION) {
		snprintf(reason, reason_size, "/dev/kvm answers API version %d, not %d", version,
			 KVM_API_VERSION);
		return false;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		snprintf(reason, reason_size, "KVM_CREATE_VM failed: %s", strerror(errno));
		return false;
	}
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0) {
		snprintf(reason, reason_size, "KVM_CREATE_VCPU failed: %s", strerror(errno));
		return false;
	}
	snprintf(reason, reason_size, "hardware virtualization");
	return true;
}

unsigned long accel_host_tsc_khz(void)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[512];
	double mhz = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "cpu MHz", 7) == 0) {
			char *colon = strchr(line, ':');

			if (colon != NULL)
				mhz = strtod(colon + 1, NULL);
			break;
		}
	}
	fclose(f);
	if (mhz < 100 || mhz > 10000)
		return 0;
	return (unsigned long)(mhz * 1000.0);
}
