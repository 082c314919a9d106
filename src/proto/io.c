/* io.c - frame I/O over non-blocking fds. */
#include "proto/io.h"

#include <errno.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/fdio.h"

int proto_send(int fd, uint8_t type, uint8_t flags, uint32_t id, const void *payload, size_t len,
	       int64_t deadline_ms, struct ember_error **err)
{
	uint8_t header[PROTO_HEADER_SIZE];
	struct proto_header h = { .length = (uint32_t)len, .id = id, .type = type, .flags = flags };
	struct iovec iov[2] = {
		{ .iov_base = header, .iov_len = sizeof(header) },
		{ .iov_base = (void *)payload, .iov_len = len },
	};

	if (len > PROTO_MAX_PAYLOAD)
		return ember_error_set(err, EMBER_E_TOO_LARGE, 0,
				       "%s message of %zu bytes exceeds the frame limit of %u bytes",
				       proto_type_name(type), len, PROTO_MAX_PAYLOAD);
	proto_header_encode(header, &h);
	return fd_writev_all(fd, iov, len > 0 ? 2 : 1, deadline_ms, err);
}

long proto_fill(int fd, struct proto_decoder *dec, struct ember_error **err)
{
	size_t avail;
	uint8_t *space = proto_decoder_space(dec, &avail, err);
	ssize_t n;

	if (space == NULL)
		return -1;
	for (;;) {
		n = read(fd, space, avail);
		if (n > 0) {
			proto_decoder_commit(dec, (size_t)n);
			return n;
		}
		if (n == 0)
			return ember_error_set(err, EMBER_E_GUEST, 0, "peer closed the connection%s",
					       proto_decoder_pending(dec) ? " mid-frame" : "");
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno == ECONNRESET)
			return ember_error_set(err, EMBER_E_GUEST, errno, "peer reset the connection");
		return ember_error_sys(err, "read from peer");
	}
}

int proto_recv(int fd, struct proto_decoder *dec, struct proto_frame *frame, int64_t deadline_ms,
	       struct ember_error **err)
{
	for (;;) {
		int ret = proto_decoder_next(dec, frame, err);
		long n;

		if (ret != 0)
			return ret;
		ret = fd_wait(fd, POLLIN, deadline_ms, err);
		if (ret < 0)
			return -1;
		if (ret == 0)
			return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
					       "no %s from peer before the deadline",
					       proto_decoder_pending(dec) ? "rest of a frame" : "frame");
		n = proto_fill(fd, dec, err);
		if (n < 0)
			return -1;
	}
}
