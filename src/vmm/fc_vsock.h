/* fc_vsock.h - the host end of Firecracker's hybrid vsock: on a stream connected to the VM's
 * `uds_path` socket, ask for a guest port with `CONNECT <port>\n` and require `OK <n>\n`.
 * Used by the Firecracker driver. Never reads past the acknowledgement line (what follows
 * belongs to the agent's stream) and never waits past the deadline it is given. */
#ifndef EMBER_VMM_FC_VSOCK_H
#define EMBER_VMM_FC_VSOCK_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* "OK 4294967295\n" is 14 bytes; a longer answer is not an acknowledgement, whatever follows. */
#define FC_VSOCK_ACK_MAX 32

/* Parses one acknowledgement line, its '\n' included: exactly "OK ", 1 to 10 decimal digits
 * without sign or leading zero (the port Firecracker gave the host end, at most UINT32_MAX),
 * "\n". Returns 0 and the port, or -1 for anything else. */
int fc_vsock_parse_ack(const char *line, size_t len, uint32_t *host_port);

enum fc_vsock_result {
	FC_VSOCK_CONNECTED = 1, /* acknowledged: the fd now carries the guest stream */
	FC_VSOCK_REFUSED = 0,   /* closed without an answer: nothing listens on the port yet */
};

/* Sends `CONNECT <port>\n` on fd (connected to uds_path, non-blocking) and reads the answer
 * one byte at a time. Returns FC_VSOCK_CONNECTED or FC_VSOCK_REFUSED, or -1 with
 * EMBER_E_PROTOCOL (an answer that is not `OK <n>\n`), EMBER_E_GUEST_TIMEOUT (no answer by
 * deadline_ms) or another error. */
int fc_vsock_handshake(int fd, uint32_t port, int64_t deadline_ms, struct ember_error **err);

#endif
