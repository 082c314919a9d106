/* net.c - the guest's NIC, default route and resolver from HELLO's `net` (ioctls, no netlink). */
#include "guest/net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if_arp.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest/log.h"
#include "util/cleanup.h"
#include "util/fdio.h"

#define SYSFS_TYPE_MAX 16
#define DEFAULT_ROUTES_MAX 16 /* stale default routes removed before ours is added */

uint32_t guest_net_netmask(unsigned prefix)
{
	if (prefix == 0)
		return 0;
	if (prefix >= 32)
		return UINT32_MAX;
	return UINT32_MAX << (32 - prefix);
}

static void format_ipv4(uint32_t addr, char out[INET_ADDRSTRLEN])
{
	snprintf(out, INET_ADDRSTRLEN, "%u.%u.%u.%u", (unsigned)(addr >> 24) & 255u,
		 (unsigned)(addr >> 16) & 255u, (unsigned)(addr >> 8) & 255u, (unsigned)addr & 255u);
}

void guest_net_resolv_text(uint32_t dns, char out[GUEST_NET_RESOLV_MAX])
{
	char addr[INET_ADDRSTRLEN];

	format_ipv4(dns, addr);
	snprintf(out, GUEST_NET_RESOLV_MAX, "nameserver %s\noptions attempts:2 timeout:2\n", addr);
}

/* Whether sysfs_dir/name/type says ARPHRD_ETHER. */
static bool is_ethernet(const char *sysfs_dir, const char *name)
{
	struct ember_error *err = NULL;
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *text = NULL;
	size_t len;

	if (asprintf(&path, "%s/%s/type", sysfs_dir, name) < 0)
		return false;
	if (file_read_all(path, SYSFS_TYPE_MAX, &text, &len, &err) < 0) {
		ember_error_free(&err);
		return false;
	}
	return strtol(text, NULL, 10) == ARPHRD_ETHER;
}

int guest_net_find_nic(const char *sysfs_dir, char name[IFNAMSIZ], struct ember_error **err)
{
	struct dirent **list = NULL;
	int n, i, found = 0;

	n = scandir(sysfs_dir, &list, NULL, alphasort);
	if (n < 0)
		return ember_error_sys(err, "list `%s`", sysfs_dir);
	for (i = 0; i < n; i++) {
		const char *d = list[i]->d_name;

		if (!found && d[0] != '.' && strcmp(d, "lo") != 0 && strlen(d) < IFNAMSIZ &&
		    is_ethernet(sysfs_dir, d)) {
			snprintf(name, IFNAMSIZ, "%s", d);
			found = 1;
		}
		free(list[i]);
	}
	free(list);
	return found;
}

int guest_net_write_resolv(const char *etc_dir, uint32_t dns, struct ember_error **err)
{
	char text[GUEST_NET_RESOLV_MAX];
	_cleanup_free_ char *path = NULL;

	if (mkdir(etc_dir, 0755) < 0 && errno != EEXIST)
		return ember_error_sys(err, "mkdir `%s`", etc_dir);
	if (asprintf(&path, "%s/resolv.conf", etc_dir) < 0)
		return ember_error_oom(err);
	guest_net_resolv_text(dns, text);
	/* rename() replaces a symlink itself, never the file it points to. */
	return file_write_atomic(path, text, strlen(text), 0644, false, err);
}

/* --- the ioctl phases, on an AF_INET datagram socket --- */

static void ifreq_for(struct ifreq *ifr, const char *name)
{
	memset(ifr, 0, sizeof(*ifr));
	snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", name);
}

static struct sockaddr sockaddr_ipv4(uint32_t addr)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(addr) };
	struct sockaddr sa;

	memset(&sa, 0, sizeof(sa));
	memcpy(&sa, &sin, sizeof(sin));
	return sa;
}

static int set_flags(int fd, const char *name, short set, short clear, struct ember_error **err)
{
	struct ifreq ifr;

	ifreq_for(&ifr, name);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return ember_error_sys(err, "read the flags of %s", name);
	ifr.ifr_flags = (short)((ifr.ifr_flags | set) & ~clear);
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		return ember_error_sys(err, "set the flags of %s", name);
	return 0;
}

/* Sets the MAC when it differs, taking the link down first (the kernel refuses otherwise). */
static int set_mac(int fd, const char *name, const uint8_t mac[6], struct ember_error **err)
{
	struct ifreq ifr;

	ifreq_for(&ifr, name);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
		return ember_error_sys(err, "read the MAC of %s", name);
	if (memcmp(ifr.ifr_hwaddr.sa_data, mac, 6) == 0)
		return 0;
	if (set_flags(fd, name, 0, IFF_UP, err) < 0)
		return -1;
	ifreq_for(&ifr, name);
	ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
	memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
	if (ioctl(fd, SIOCSIFHWADDR, &ifr) < 0)
		return ember_error_sys(err, "set the MAC of %s", name);
	return 0;
}

static int set_address(int fd, const char *name, uint32_t addr, uint32_t mask,
		       struct ember_error **err)
{
	struct ifreq ifr;

	ifreq_for(&ifr, name);
	ifr.ifr_addr = sockaddr_ipv4(addr);
	if (ioctl(fd, SIOCSIFADDR, &ifr) < 0)
		return ember_error_sys(err, "set the address of %s", name);
	ifreq_for(&ifr, name);
	ifr.ifr_netmask = sockaddr_ipv4(mask);
	if (ioctl(fd, SIOCSIFNETMASK, &ifr) < 0)
		return ember_error_sys(err, "set the netmask of %s", name);
	return 0;
}

/* Replaces any default route (a snapshot's, or a previous HELLO's) with one via gateway. */
static int set_default_route(int fd, const char *name, uint32_t gateway, struct ember_error **err)
{
	char dev[IFNAMSIZ];
	struct rtentry rt;
	int i;

	for (i = 0; i < DEFAULT_ROUTES_MAX; i++) {
		memset(&rt, 0, sizeof(rt));
		rt.rt_dst = sockaddr_ipv4(0);
		rt.rt_genmask = sockaddr_ipv4(0);
		rt.rt_flags = RTF_UP;
		if (ioctl(fd, SIOCDELRT, &rt) < 0)
			break; /* ESRCH: none left */
	}
	snprintf(dev, sizeof(dev), "%s", name);
	memset(&rt, 0, sizeof(rt));
	rt.rt_dst = sockaddr_ipv4(0);
	rt.rt_genmask = sockaddr_ipv4(0);
	rt.rt_gateway = sockaddr_ipv4(gateway);
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	rt.rt_dev = dev;
	if (ioctl(fd, SIOCADDRT, &rt) < 0 && errno != EEXIST)
		return ember_error_sys(err, "add the default route via %s", name);
	return 0;
}

/* A kernel with IPv6 would give the NIC a link-local address and send router solicitations
 * when it comes up: the sandbox network is IPv4 only, so switch IPv6 off on it first. */
static int disable_ipv6(const char *name, struct ember_error **err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -1;

	if (asprintf(&path, "/proc/sys/net/ipv6/conf/%s/disable_ipv6", name) < 0)
		return ember_error_oom(err);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0; /* no IPv6 in this kernel */
	if (fd < 0 || write(fd, "1", 1) != 1)
		return ember_error_sys(err, "disable IPv6 on %s", name);
	return 0;
}

static int configure_nic(const char *name, const struct proto_hello_net *net,
			 struct ember_error **err)
{
	_cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return ember_error_sys(err, "socket for network configuration");
	if (set_mac(fd, name, net->mac, err) < 0 ||
	    set_address(fd, name, net->address, guest_net_netmask(net->prefix), err) < 0 ||
	    disable_ipv6(name, err) < 0 ||
	    set_flags(fd, name, IFF_UP | IFF_RUNNING, 0, err) < 0 ||
	    set_default_route(fd, name, net->gateway, err) < 0)
		return -1;
	return 0;
}

int guest_net_apply(const struct proto_hello_net *net, struct ember_error **err)
{
	char name[IFNAMSIZ], addr[INET_ADDRSTRLEN], gateway[INET_ADDRSTRLEN];
	int found;

	if (!net->present)
		return 0;
	found = guest_net_find_nic(GUEST_NET_SYSFS, name, err);
	if (found < 0)
		return ember_error_wrap(err, "find the network interface");
	if (found == 0)
		return ember_error_set(err, EMBER_E_INTERNAL, ENODEV, "the sandbox has a network "
				       "policy but no network interface");
	if (configure_nic(name, net, err) < 0 ||
	    guest_net_write_resolv(GUEST_NET_ETC, net->dns, err) < 0)
		return ember_error_wrap(err, "configure the network");
	format_ipv4(net->address, addr);
	format_ipv4(net->gateway, gateway);
	guest_log("network: %s is %s/%u via %s", name, addr, (unsigned)net->prefix, gateway);
	return 0;
}
