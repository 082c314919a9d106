/* fc_vsock.c - Firecracker's hybrid vsock handshake (docs/firecracker.md). */
#include "vmm/fc_vsock.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/fdio.h"
#include "util/timeutil.h"

int fc_vsock_parse_ack(const char *line, size_t len, uint32_t *host_port)
{
	uint64_t value = 0;
	size_t i, digits;

	if (len < 5 || len > FC_VSOCK_ACK_MAX || memcmp(line, "OK ", 3) != 0 ||
	    line[len - 1] != '\n')
		return -1;
	digits = len - 4;
	if (digits > 10 || (digits > 1 && line[3] == '0'))
		return -1;
	for (i = 3; i < len - 1; i++) {
		if (line[i] < '0' || line[i] > '9')
			return -1;
		value = value * 10 + (uint64_t)(line[i] - '0');
	}
	if (value > UINT32_MAX)
		return -1;
	*host_port = (uint32_t)value;
	return 0;
}

/* Firecracker closing a connection it could not forward shows up as EOF, or as ECONNRESET/EPIPE
 * when it closed before reading our CONNECT line. */
static bool is_refusal(int errno_value)
{
	return errno_value == ECONNRESET || errno_value == EPIPE;
}

/* Printable rendering of what the VMM sent, for the error message. */
static void describe(const char *data, size_t len, char *out, size_t size)
{
	size_t i, used = 0;

	for (i = 0; i < len && used + 5 < size; i++) {
		unsigned char c = (unsigned char)data[i];

		if (c == '\n')
			used += (size_t)snprintf(out + used, size - used, "\\n");
		else if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			used += (size_t)snprintf(out + used, size - used, "\\x%02x", c);
		else
			out[used++] = (char)c;
	}
	out[used] = '\0';
}

/* send() with MSG_NOSIGNAL: a VMM that already closed must not raise SIGPIPE in the caller. */
static int send_all(int fd, const char *data, size_t len, int64_t deadline_ms,
		    struct ember_error **err)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		int ready;

		if (n >= 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return ember_error_sys(err, "send");
		ready = fd_wait(fd, POLLOUT, deadline_ms, err);
		if (ready < 0)
			return -1;
		if (ready == 0)
			return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
					       "send timed out");
	}
	return 0;
}

int fc_vsock_handshake(int fd, uint32_t port, int64_t deadline_ms, struct ember_error **err)
{
	char request[32], line[FC_VSOCK_ACK_MAX + 1], shown[4 * FC_VSOCK_ACK_MAX + 8];
	struct ember_error *send_err = NULL;
	uint32_t host_port;
	size_t len = 0;
	int n = snprintf(request, sizeof(request), "CONNECT %u\n", port);

	if (send_all(fd, request, (size_t)n, deadline_ms, &send_err) < 0) {
		if (send_err != NULL && is_refusal(send_err->errno_value)) {
			ember_error_free(&send_err);
			return FC_VSOCK_REFUSED;
		}
		ember_error_propagate(err, send_err);
		return ember_error_wrap(err, "send `CONNECT %u`", port);
	}
	/* One byte at a time: the agent's stream starts right after the '\n'. */
	while (len == 0 || line[len - 1] != '\n') {
		ssize_t got;
		int ready;

		if (len == FC_VSOCK_ACK_MAX) {
			describe(line, len, shown, sizeof(shown));
			return ember_error_set(err, EMBER_E_PROTOCOL, 0,
					       "answer to `CONNECT %u` is longer than %d bytes "
					       "without a newline: \"%s\"", port, FC_VSOCK_ACK_MAX,
					       shown);
		}
		ready = fd_wait(fd, POLLIN, deadline_ms, err);
		if (ready < 0)
			return -1;
		if (ready == 0)
			return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, 0,
					       "no answer to `CONNECT %u` before the deadline", port);
		got = read(fd, line + len, 1);
		if (got < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			if (is_refusal(errno) && len == 0)
				return FC_VSOCK_REFUSED;
			return ember_error_sys(err, "read the answer to `CONNECT %u`", port);
		}
		if (got == 0) {
			if (len == 0)
				return FC_VSOCK_REFUSED;
			describe(line, len, shown, sizeof(shown));
			return ember_error_set(err, EMBER_E_PROTOCOL, 0,
					       "connection closed in the middle of the answer to "
					       "`CONNECT %u`: \"%s\"", port, shown);
		}
		len++;
	}
	if (fc_vsock_parse_ack(line, len, &host_port) < 0) {
		describe(line, len, shown, sizeof(shown));
		return ember_error_set(err, EMBER_E_PROTOCOL, 0,
				       "answer to `CONNECT %u` is not `OK <port>`: \"%s\"", port,
				       shown);
	}
	return FC_VSOCK_CONNECTED;
}
