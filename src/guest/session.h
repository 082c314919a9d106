/* session.h - the protocol state machine of one host connection (docs/protocol.md).
 * Created by agent.c for each transport connection; owns that connection's execs.
 * Never blocks and never trusts the host: bad frames end the session, never the agent, and a
 * session's memory is bounded by one decoder frame plus its outgoing queue cap (twice that once
 * suspended: what it produces then is held apart, under the same cap). */
#ifndef EMBER_GUEST_SESSION_H
#define EMBER_GUEST_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "guest/exec.h"
#include "guest/loop.h"
#include "proto/messages.h"
#include "util/error.h"

/* State shared by every session of the agent (owned by agent.c). */
struct guest_session_env {
	struct guest_loop *loop;
	struct guest_exec_config exec;
	bool apply_identity;      /* PID 1: HELLO sets the clock, reseeds the RNG,
				   * configures the NIC (net.h) and mounts (mounts.h) */
	unsigned running_execs;   /* across sessions: the limit is per guest */
	unsigned running_transfers; /* file reads and writes, likewise per guest */
	uint64_t next_exec_seq;   /* names code directories uniquely */
	/* What HELLO mounted this boot (mounts.h): a later HELLO may repeat it or carry none. */
	struct proto_hello_mounts mounts;
};

enum guest_session_kind {
	/* A socket (vsock, Unix) or inherited fd: ending the session closes it. */
	GUEST_SESSION_SOCKET,
	/* A virtio-serial port, which the guest cannot disconnect: after a session-level error the
	 * input is discarded until the host goes away (read() returns 0 / POLLHUP). */
	GUEST_SESSION_PORT,
};

struct guest_session;
struct guest_context;

/* Starts a session on fd (ownership moves in, also on failure). */
int guest_session_new(struct guest_session_env *env, int fd, enum guest_session_kind kind,
		      const char *label, struct guest_session **out, struct ember_error **err);

/* True once the session is over; the agent then frees it after the current batch. */
bool guest_session_ended(const struct guest_session *session);

/* Kills the session's execs (no EXIT), sends what can be sent without blocking, closes fd;
 * the memory itself is freed after the current batch (guest_loop_collect). */
void guest_session_free(struct guest_session *session);

/* Detaches the session's fd (out of the loop, not closed) and returns it: the agent keeps a
 * virtio-serial port open between hosts, since closing it drops whatever the guest kernel has
 * already received for it, which may be the next host's HELLO. */
int guest_session_take_fd(struct guest_session *session);

/* Suspended (protocol version 8) and its host gone (read() == 0 or a hangup on the port): the
 * session keeps its execs but no longer watches its fd, which reports a hangup until a host is
 * attached again. agent.c polls guest_session_fd() meanwhile and calls guest_session_unpark()
 * once the hangup cleared; the session then reads (the host's RESUME) again. */
bool guest_session_parked(const struct guest_session *session);
int guest_session_fd(const struct guest_session *session);
void guest_session_unpark(struct guest_session *session);

/* A suspended socket session (vsock, Unix): its host comes back on a NEW connection, since
 * Firecracker resets every vsock connection at a snapshot. agent.c hands the next connection
 * its listener accepts to guest_session_adopt() (fd: ownership moves in), which drops the old
 * one, parked or not; the session then reads there: RESUME resumes it (READY, then the held
 * frames), HELLO starts over (a fork, a sandbox from a snapshot). A failure ends the session. */
bool guest_session_awaits_resume(const struct guest_session *session);
int guest_session_adopt(struct guest_session *session, int fd, struct ember_error **err);

/* The reaper's lookup: the exec whose main process is pid, or NULL. */
struct guest_exec *guest_session_exec_by_pid(struct guest_session *session, pid_t pid);

/* The reaper's lookup for a context's interpreter (context.h), or NULL. */
struct guest_context *guest_session_context_by_pid(struct guest_session *session, pid_t pid);

/* true while the exec that owns the cgroup at path has not been reaped: the sweep must leave
 * its (possibly already empty) cgroup until its memory.events has been read. */
bool guest_session_owns_unreaped_cgroup(struct guest_session *session, const char *path);

#endif
