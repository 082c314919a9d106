/* channel.c - opening the host transports. */
#include "guest/channel.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/cleanup.h"

int guest_channel_find_port(const char *class_dir, const char *dev_dir, const char *name,
			    char *out, size_t out_size, struct ember_error **err)
{
	DIR *dir = opendir(class_dir);
	struct dirent *de;
	int found = 0;

	if (dir == NULL) {
		if (errno == ENOENT)
			return 0; /* virtio_console not loaded (yet), or no virtio-serial device */
		return ember_error_sys(err, "open `%s`", class_dir);
	}
	while (!found && (de = readdir(dir)) != NULL) {
		char path[512], text[128];
		_cleanup_close_ int fd = -1;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s/name", class_dir, de->d_name) >=
		    (int)sizeof(path))
			continue;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, text, sizeof(text) - 1);
		if (n <= 0)
			continue;
		text[n] = '\0';
		if (text[n - 1] == '\n')
			text[n - 1] = '\0';
		if (strcmp(text, name) != 0)
			continue;
		if (snprintf(out, out_size, "%s/%s", dev_dir, de->d_name) >= (int)out_size) {
			closedir(dir);
			return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG,
					       "port device path too long");
		}
		found = 1;
	}
	closedir(dir);
	return found;
}

int guest_channel_open_port(const char *path, struct ember_error **err)
{
	int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return ember_error_sys(err, "open `%s`", path);
	return fd;
}

int guest_channel_listen_vsock(unsigned port, struct ember_error **err)
{
	struct sockaddr_vm addr = {
		.svm_family = AF_VSOCK,
		.svm_port = port,
		.svm_cid = VMADDR_CID_ANY,
	};
	_cleanup_close_ int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return ember_error_sys(err, "vsock socket");
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return ember_error_sys(err, "bind vsock port %u", port);
	if (listen(fd, 4) < 0)
		return ember_error_sys(err, "listen on vsock port %u", port);
	return steal_fd(&fd);
}

int guest_channel_listen_unix(const char *path, struct ember_error **err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	struct stat st;

	if (strlen(path) >= sizeof(addr.sun_path))
		return ember_error_set(err, EMBER_E_INVALID, ENAMETOOLONG,
				       "socket path `%s` is longer than %zu bytes", path,
				       sizeof(addr.sun_path) - 1);
	strcpy(addr.sun_path, path);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ember_error_sys(err, "socket");
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return ember_error_sys(err, "bind `%s`", path);
	if (chmod(path, 0600) < 0)
		return ember_error_sys(err, "chmod `%s`", path);
	if (listen(fd, 4) < 0)
		return ember_error_sys(err, "listen on `%s`", path);
	return steal_fd(&fd);
}

int guest_channel_accept(int listen_fd, struct ember_error **err)
{
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t peer_len = sizeof(peer);
		int fd = accept4(listen_fd, (struct sockaddr *)&peer, &peer_len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		/* Over vsock only the host (CID 2) may be the host: a connection from another
		 * CID (a sibling VM on a shared transport) is dropped before it is read. */
		if (fd >= 0 && peer.ss_family == AF_VSOCK &&
		    ((struct sockaddr_vm *)&peer)->svm_cid != VMADDR_CID_HOST) {
			close(fd);
			return ember_error_set(err, EMBER_E_PROTOCOL, EACCES,
					       "refused a vsock connection from CID %u (only the "
					       "host, CID %u, is served)",
					       ((struct sockaddr_vm *)&peer)->svm_cid,
					       (unsigned)VMADDR_CID_HOST);
		}
		if (fd >= 0)
			return fd;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED)
			return -2;
		return ember_error_sys(err, "accept");
	}
}
