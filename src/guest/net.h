/* net.h - configures the guest's network interface from a HELLO's `net` (protocol version 5):
 * MAC, IPv4 address and netmask, link up, default route via the gateway, /etc/resolv.conf.
 * Called by session.c on HELLO, in PID 1 mode only, before READY. Never runs DHCP, never
 * configures IPv6, and never touches a NIC when the HELLO has no `net` (a template VM keeps its
 * NIC down until a clone's HELLO configures it). See docs/guest.md "Network". */
#ifndef EMBER_GUEST_NET_H
#define EMBER_GUEST_NET_H

#include <net/if.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/messages.h"
#include "util/error.h"

#define GUEST_NET_SYSFS "/sys/class/net"
#define GUEST_NET_ETC "/etc"
#define GUEST_NET_RESOLV_MAX 96

/* Applies net when net->present (else does nothing and returns 0). No NIC: an error saying
 * the sandbox has a network policy but no network interface. */
int guest_net_apply(const struct proto_hello_net *net, struct ember_error **err);

/* The pieces, exposed for the unit tests: */

/* The netmask of a prefix length (0-32), host byte order. */
uint32_t guest_net_netmask(unsigned prefix);

/* The text of resolv.conf naming dns (host byte order) as the only resolver. */
void guest_net_resolv_text(uint32_t dns, char out[GUEST_NET_RESOLV_MAX]);

/* The first (in name order) Ethernet interface under sysfs_dir (GUEST_NET_SYSFS): not "lo",
 * with type 1 (ARPHRD_ETHER). Returns 1 and fills name, 0 when there is none, -1 on error. */
int guest_net_find_nic(const char *sysfs_dir, char name[IFNAMSIZ], struct ember_error **err);

/* Writes etc_dir/resolv.conf (0644) atomically, replacing whatever is there (a symlink too:
 * the link itself, never its target). */
int guest_net_write_resolv(const char *etc_dir, uint32_t dns, struct ember_error **err);

#endif
