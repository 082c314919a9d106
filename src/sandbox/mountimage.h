#ifndef EMBER_SANDBOX_MOUNTIMAGE_H
#define EMBER_SANDBOX_MOUNTIMAGE_H
#include <stdint.h>
#include "util/error.h"
int mount_image_build(int dir_fd, const char *image_path, uint64_t max_bytes, int64_t deadline_ms,
		      struct ember_error **err);
#endif
