/* tap.h - a networked sandbox's link on the host: a TAP device and its IPv4 address, plus the
 * per-interface sysctls egress needs. Used by egress.c only, and by the firecracker driver for
 * tap_set_persist(). A TAP made here is not persistent: it lives while a descriptor to it is
 * open (the daemon's and the VMM's), so a killed daemon and VMM leave no device behind. The
 * exception is a TAP for a VMM that opens it by name (Firecracker): it is made persistent,
 * outlives every descriptor, and is removed with tap_delete_by_name(). */
#ifndef EMBER_NET_TAP_H
#define EMBER_NET_TAP_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

/* Creates TAP `name` (a pattern with "%d" lets the kernel number it; the name it got is written
 * back, IFNAMSIZ bytes) and returns its descriptor (close-on-exec). */
int tap_create(char name[IFNAMSIZ], struct ember_error **err);

/* Gives the interface addr/prefix (host byte order), and brings it up. */
int tap_set_address(const char *name, uint32_t addr, unsigned prefix, struct ember_error **err);

/* Makes the TAP behind fd persistent (it outlives its descriptors) and owned by uid, so a VMM
 * running as uid may attach to it by name without CAP_NET_ADMIN; persist false undoes it. */
int tap_set_persist(int fd, bool persist, uid_t owner, struct ember_error **err);

/* Deletes persistent TAP `name`: attaches to it as tap_create() does and clears its persist
 * flag. Fails (EBUSY) while a VMM is attached; ENOENT-style failure when it does not exist. */
int tap_delete_by_name(const char *name, struct ember_error **err);

/* Whether an interface of that name exists. */
bool tap_exists(const char *name);

/* Writes value to /proc/sys/net/<family>/conf/<name>/<key>. */
int net_sysctl_set(const char *family, const char *name, const char *key, const char *value,
		   struct ember_error **err);
/* Reads it (value[] NUL-terminated, newline stripped). */
int net_sysctl_get(const char *family, const char *name, const char *key, char *value,
		   size_t size, struct ember_error **err);

#endif
