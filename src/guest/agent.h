/* agent.h - the guest agent: one epoll loop over a signalfd, the transports and every exec.
 * Called by cmd/emberd-init/main.c, after boot in PID 1 mode or directly with --agent-only.
 * Never handles a signal outside the loop, never leaves a zombie (it reaps every child, its
 * own or reparented), and never returns because of anything the host sent. */
#ifndef EMBER_GUEST_AGENT_H
#define EMBER_GUEST_AGENT_H

#include <stdbool.h>

#include "guest/exec.h"
#include "util/error.h"

struct guest_agent_config {
	bool pid1;               /* serve virtio-serial + vsock; HELLO sets clock and RNG */
	const char *listen_unix; /* agent-only: serve one connection at a time on this socket */
	int channel_fd;          /* agent-only: serve this inherited fd (-1 = none) */
	struct guest_exec_config exec;
};

/* Runs until SIGINT/SIGTERM (returns 0) or, with channel_fd, until that channel closes
 * (returns 0). -1 only when the loop itself cannot work (epoll, signalfd). */
int guest_agent_run(const struct guest_agent_config *cfg, struct ember_error **err);

#endif
