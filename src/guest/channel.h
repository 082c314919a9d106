/* channel.h - the transports to the host: virtio-serial port by name, vsock and Unix listeners.
 * Called by agent.c when it (re)opens transports; find_port is also unit-tested on a fake sysfs.
 * Never blocks: every fd returned is non-blocking and close-on-exec. */
#ifndef EMBER_GUEST_CHANNEL_H
#define EMBER_GUEST_CHANNEL_H

#include <stddef.h>

#include "util/error.h"

#define GUEST_PORT_NAME "org.emberd.agent"

/* Looks for <class_dir>/<dev>/name == name (class_dir normally /sys/class/virtio-ports) and
 * writes "<dev_dir>/<dev>" to out. 1 found, 0 not (yet) there, -1 error. */
int guest_channel_find_port(const char *class_dir, const char *dev_dir, const char *name,
			    char *out, size_t out_size, struct ember_error **err);

int guest_channel_open_port(const char *path, struct ember_error **err);

/* AF_VSOCK stream listener on (VMADDR_CID_ANY, port). Fails with errno_value EAFNOSUPPORT
 * when the kernel has no vsock. */
int guest_channel_listen_vsock(unsigned port, struct ember_error **err);

/* Unix stream listener at path (a stale socket file there is replaced), mode 0600. */
int guest_channel_listen_unix(const char *path, struct ember_error **err);

/* Accepts one pending connection: its fd, -2 when none is pending, -1 on error. */
int guest_channel_accept(int listen_fd, struct ember_error **err);

#endif
