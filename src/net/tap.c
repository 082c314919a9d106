/* tap.c - TAP devices and interface addresses through ioctls (no netlink needed for IPv4). */
#include "net/tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/cleanup.h"

#define TAP_FLAGS (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)

int tap_create(char name[IFNAMSIZ], struct ember_error **err)
{
	_cleanup_close_ int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	struct ifreq ifr = { .ifr_flags = TAP_FLAGS };

	if (fd < 0)
		return ember_error_sys(err, "open /dev/net/tun");
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		return ember_error_sys(err, "create TAP `%s`", name);
	snprintf(name, IFNAMSIZ, "%s", ifr.ifr_name);
	return steal_fd(&fd);
}

int tap_set_persist(int fd, bool persist, uid_t owner, struct ember_error **err)
{
	if (persist && ioctl(fd, TUNSETOWNER, (unsigned long)owner) < 0)
		return ember_error_sys(err, "give the TAP to uid %u", (unsigned)owner);
	if (ioctl(fd, TUNSETPERSIST, (unsigned long)persist) < 0)
		return ember_error_sys(err, "make the TAP %spersistent", persist ? "" : "non-");
	return 0;
}

int tap_delete_by_name(const char *name, struct ember_error **err)
{
	_cleanup_close_ int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	struct ifreq ifr = { .ifr_flags = TAP_FLAGS };

	if (fd < 0)
		return ember_error_sys(err, "open /dev/net/tun");
	if (strlen(name) >= sizeof(ifr.ifr_name))
		return ember_error_set(err, EMBER_E_INVALID, 0, "bad interface name `%s`", name);
	if (!tap_exists(name))
		return ember_error_set(err, EMBER_E_NOT_FOUND, ENODEV, "no TAP `%s`", name);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		return ember_error_sys(err, "attach to TAP `%s`", name);
	/* Gone once this descriptor closes: no one else is attached (TUNSETIFF succeeded). */
	if (ioctl(fd, TUNSETPERSIST, 0UL) < 0)
		return ember_error_sys(err, "make TAP `%s` non-persistent", name);
	return 0;
}

static void set_sin(struct sockaddr *sa, uint32_t addr)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(addr) };

	memcpy(sa, &sin, sizeof(sin));
}

int tap_set_address(const char *name, uint32_t addr, unsigned prefix, struct ember_error **err)
{
	_cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = { 0 };
	uint32_t mask = prefix == 0 ? 0 : ~(uint32_t)0 << (32 - prefix);

	if (s < 0)
		return ember_error_sys(err, "socket");
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	set_sin(&ifr.ifr_addr, addr);
	if (ioctl(s, SIOCSIFADDR, &ifr) < 0)
		return ember_error_sys(err, "set the address of `%s`", name);
	set_sin(&ifr.ifr_netmask, mask);
	if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0)
		return ember_error_sys(err, "set the netmask of `%s`", name);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return ember_error_sys(err, "read the flags of `%s`", name);
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		return ember_error_sys(err, "bring `%s` up", name);
	return 0;
}

bool tap_exists(const char *name)
{
	return if_nametoindex(name) != 0;
}

static int sysctl_path(char *out, size_t size, const char *family, const char *name,
		       const char *key, struct ember_error **err)
{
	if (strchr(name, '/') != NULL || strcmp(name, "..") == 0 || strcmp(name, ".") == 0 ||
	    snprintf(out, size, "/proc/sys/net/%s/conf/%s/%s", family, name, key) >= (int)size)
		return ember_error_set(err, EMBER_E_INVALID, 0, "bad interface name `%s`", name);
	return 0;
}

int net_sysctl_set(const char *family, const char *name, const char *key, const char *value,
		   struct ember_error **err)
{
	char path[160];
	_cleanup_close_ int fd = -1;
	size_t len = strlen(value);

	if (sysctl_path(path, sizeof(path), family, name, key, err) < 0)
		return -1;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, value, len) != (ssize_t)len)
		return ember_error_sys(err, "write %s", path);
	return 0;
}

int net_sysctl_get(const char *family, const char *name, const char *key, char *value,
		   size_t size, struct ember_error **err)
{
	char path[160];
	_cleanup_close_ int fd = -1;
	ssize_t n;

	if (sysctl_path(path, sizeof(path), family, name, key, err) < 0)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (n = read(fd, value, size - 1)) < 0)
		return ember_error_sys(err, "read %s", path);
	value[n] = '\0';
	if (n > 0 && value[n - 1] == '\n')
		value[n - 1] = '\0';
	return 0;
}
