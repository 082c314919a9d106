/* firecracker.c - placeholder until the Firecracker driver lands: selecting it fails clearly. */
#include "vmm/driver.h"

static int fc_init(struct vmm_driver *drv, const struct vmm_driver_config *cfg,
		   struct ember_error **err)
{
	(void)drv;
	(void)cfg;
	return ember_error_set(err, EMBER_E_INVALID, 0, "the firecracker driver is not built yet");
}

const struct vmm_driver_ops vmm_firecracker_ops = {
	.name = "firecracker",
	.init = fc_init,
};
