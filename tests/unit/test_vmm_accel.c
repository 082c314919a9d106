/* Unit tests for the accelerator (src/vmm/accel.c, and vmm.c's --accel flag and its resolution
 * at driver creation): the flag's values, and `kvm` refused with the probe's reason wherever
 * the probe finds KVM unusable (accepted where it is usable: the test asserts whichever holds
 * on the machine it runs on, never neither). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/opttable.h"
#include "vmm/accel.h"
#include "vmm/vmm.h"

struct target {
	enum vmm_accel accel;
};

static const struct opt_spec accel_flag = { .name = "accel", .arg = "MODE",
					    .parse = vmm_opt_set_accel,
					    .field = offsetof(struct target, accel) };

static void accel_flag_takes_auto_kvm_tcg_only(void **state)
{
	struct target t = { .accel = VMM_ACCEL_TCG };
	struct ember_error *err = NULL;

	(void)state;
	assert_int_equal(vmm_opt_set_accel(&accel_flag, "auto", &t, &err), OPT_OK);
	assert_int_equal(t.accel, VMM_ACCEL_AUTO);
	assert_int_equal(vmm_opt_set_accel(&accel_flag, "kvm", &t, &err), OPT_OK);
	assert_int_equal(t.accel, VMM_ACCEL_KVM);
	assert_int_equal(vmm_opt_set_accel(&accel_flag, "tcg", &t, &err), OPT_OK);
	assert_int_equal(t.accel, VMM_ACCEL_TCG);
	assert_int_equal(vmm_opt_set_accel(&accel_flag, "KVM", &t, &err), OPT_BAD_VALUE);
	assert_string_equal(err->message, "--accel must be auto, kvm or tcg (got `KVM`)");
	ember_error_free(&err);
	assert_int_equal(vmm_opt_set_accel(&accel_flag, "", &t, &err), OPT_BAD_VALUE);
	ember_error_free(&err);
	assert_int_equal(t.accel, VMM_ACCEL_TCG); /* a refused value changes nothing */
}

static int create_qemu_driver(enum vmm_accel accel, struct vmm_driver **drv,
			      struct ember_error **err)
{
	struct vmm_driver_config cfg = { .name = "qemu", .qemu_bin = "/bin/true", .accel = accel,
					 .cgroup_root = "none", .no_jail = true };

	return vmm_driver_create(&cfg, drv, err);
}

static void kvm_asked_for_is_probed_and_refused_with_the_reason(void **state)
{
	struct vmm_driver *drv = NULL;
	struct ember_error *err = NULL;
	char reason[160];

	(void)state;
	if (accel_kvm_usable(reason, sizeof(reason))) {
		assert_int_equal(create_qemu_driver(VMM_ACCEL_KVM, &drv, &err), 0);
		assert_string_equal(vmm_driver_accel_name(drv), "kvm");
	} else {
		assert_int_equal(create_qemu_driver(VMM_ACCEL_KVM, &drv, &err), -1);
		assert_null(drv);
		assert_non_null(strstr(err->message, "--accel kvm: KVM is not usable here: "));
		assert_non_null(strstr(err->message, reason));
		ember_error_free(&err);
	}
	vmm_driver_free(drv);
	drv = NULL;
	/* auto falls back instead, and tcg never probes */
	assert_int_equal(create_qemu_driver(VMM_ACCEL_AUTO, &drv, &err), 0);
	assert_string_equal(vmm_driver_accel_name(drv), strcmp(reason, "hardware virtualization")
							  == 0 ? "kvm" : "tcg");
	vmm_driver_free(drv);
	assert_int_equal(create_qemu_driver(VMM_ACCEL_TCG, &drv, &err), 0);
	assert_string_equal(vmm_driver_accel_name(drv), "tcg");
	vmm_driver_free(drv);
}

static void probe_reason_is_never_empty(void **state)
{
	char reason[160] = "";
	bool usable = accel_kvm_usable(reason, sizeof(reason));

	(void)state;
	assert_true(reason[0] != '\0');
	assert_int_equal(usable, strcmp(reason, "hardware virtualization") == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accel_flag_takes_auto_kvm_tcg_only),
		cmocka_unit_test(kvm_asked_for_is_probed_and_refused_with_the_reason),
		cmocka_unit_test(probe_reason_is_never_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
