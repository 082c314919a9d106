/* channel.h - the host end of the guest control channel: handshake, multiplexed requests, a
 * reader thread per sandbox. Used by the sandbox manager and ember-vm. Never trusts the guest:
 * every wait has a deadline, output is capped, and a protocol violation breaks the channel
 * (all waiters fail) instead of being guessed around. */
#ifndef EMBER_CHANNEL_CHANNEL_H
#define EMBER_CHANNEL_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/fsmsg.h"
#include "proto/messages.h"
#include "util/error.h"

/* How long the host waits beyond an exec's own timeout for its EXIT before cancelling. The
 * guest's timer starts when the program starts; this covers the frame's way there and a guest
 * too busy to start it at once. A result that comes after the CANCEL is reported timed out. */
#define CHANNEL_EXEC_GRACE_MS 10000
/* After a CANCEL, how long the guest has to report the exit before the host gives up (504). */
#define CHANNEL_CANCEL_GRACE_MS 5000
/* A frame that started arriving must finish within this, or the guest is treated as broken. */
#define CHANNEL_PARTIAL_FRAME_MS 10000
/* A single write to the guest (a frame of at most 1 MiB) must finish within this. */
#define CHANNEL_WRITE_TIMEOUT_MS 10000
/* A file transfer whose guest sends no data, credit or reply for this long has failed (504). */
#define CHANNEL_TRANSFER_STALL_MS 60000

struct channel;

/* Takes ownership of fd (a connected, non-blocking stream). Sends HELLO (sandbox id, the host
 * clock, fresh entropy, net: the NIC's configuration, or NULL for none, and mounts: the host
 * directories to mount, only in a boot's first HELLO, or NULL for none) and waits for READY
 * until deadline_ms. abort_fd (or -1) is polled too: a readable abort_fd (the VMM's pidfd)
 * fails the wait at once with EMBER_E_GUEST. */
int channel_open(int fd, const char *sandbox_id, const struct proto_hello_net *net,
		 const struct proto_hello_mounts *mounts, int abort_fd, int64_t deadline_ms,
		 struct channel **out, struct proto_ready *ready, struct ember_error **err);

struct channel_exec_request {
	char *const *argv;        /* interpreter argv (the guest appends the code file) */
	size_t argc;
	char *const *env;         /* "NAME=value" */
	size_t envc;
	const char *code;
	size_t code_len;
	const uint8_t *stdin_data;
	size_t stdin_len;
	bool has_stdin;
	uint32_t timeout_ms;
	uint64_t output_limit;
	uint32_t max_processes;
	/* NULL: buffered (output collected into the result). Otherwise output goes to the sink
	 * as it arrives, paced by credit (protocol version 2); the sink outlives the call. */
	const struct channel_sink *sink;
	/* Protocol version 3 (EMBER_E_CONFLICT on an older guest): */
	bool background;          /* needs a sink with running(); no deadline (timeout_ms is sent
				   * but the guest ignores it); stdin (has_stdin) stays open for
				   * channel_exec_stdin() and stdin_data is not sent */
	bool command;             /* argv is the whole command, code must be empty */
	const char *cwd;          /* NULL: the guest's home directory */
	/* Protocol version 4 (EMBER_E_CONFLICT on an older guest): */
	const char *context;      /* run the code in this context (channel_context() opened it);
				   * the EXIT then carries its outcome (res->exit.context) */
	bool fresh_interpreter;   /* start the interpreter anew, never through a fork server */
	/* Protocol version 6 (EMBER_E_CONFLICT on an older guest): */
	bool code_argument;       /* the guest runs argv + [code] (<= PROTO_CODE_ARG_MAX bytes)
				   * instead of argv + [code file] */
};

struct channel_exec_result {
	uint8_t *stdout_data;     /* malloc'd, NUL-terminated for convenience (not counted) */
	size_t stdout_len;
	uint8_t *stderr_data;
	size_t stderr_len;
	struct proto_exit exit;
	bool cancelled;           /* the host cancelled it at its deadline (then timed_out) */
};

/* A consumer of an exec's output as it arrives (a streamed exec), instead of buffering it.
 * Its memory is bounded by the credit it grants (proto/credit.h); a guest that speaks only
 * version 1 (no credit) gets no streamed exec (EMBER_E_CONFLICT before anything is sent). */
struct channel_sink {
	void *ctx;
	/* Reader thread, channel lock held, must not block: STDOUT/STDERR bytes for the exec.
	 * -1 (EMBER_E_PROTOCOL) when the guest went beyond its credit: the channel breaks. */
	int (*output)(void *ctx, uint8_t type, const uint8_t *data, size_t len,
		      struct ember_error **err);
	/* Reader thread (or any, channel lock held), must not block: the request is over. */
	void (*done)(void *ctx);
	/* The exec's thread: EXEC and its stdin went out; paced: credit applies. */
	void (*started)(void *ctx, bool paced);
	/* The exec's thread: blocks until done(), a CREDIT is due (*grant), the consumer left
	 * (*cancel) or deadline_ms. */
	void (*wait)(void *ctx, int64_t deadline_ms, uint32_t *grant, bool *cancel);
	/* Background execs only (may be NULL otherwise). Reader thread, channel lock held, must
	 * not block: the guest's STARTED, with the exec id channel_exec_stdin()/signal() take. */
	void (*running)(void *ctx, uint32_t exec_id, int32_t guest_pid);
};

/* Runs one exec to completion. EMBER_E_GUEST_TIMEOUT when the guest does not report the exit
 * within timeout + grace (+ cancel grace); EMBER_E_GUEST/PROTOCOL when the channel breaks. */
int channel_exec(struct channel *ch, const struct channel_exec_request *req,
		 struct channel_exec_result *res, struct ember_error **err);
void channel_exec_result_release(struct channel_exec_result *res);

/* For a background exec in flight (exec_id from its sink's running()): stdin bytes as STDIN
 * frames (fin: the last, closing the program's stdin), or a signal (1..64) for its process
 * group. EMBER_E_CONFLICT when no such exec runs (it ended) or it took no stdin. */
int channel_exec_stdin(struct channel *ch, uint32_t exec_id, const uint8_t *data, size_t len,
		       bool fin, struct ember_error **err);
int channel_exec_signal(struct channel *ch, uint32_t exec_id, int sig, struct ember_error **err);

/* The protocol version agreed in the handshake. */
uint32_t channel_version(struct channel *ch);

/* The guest's process table; *procs is malloc'd. */
int channel_ps(struct channel *ch, int64_t deadline_ms, struct proto_process **procs,
	       size_t *count, struct ember_error **err);

/* Opens, closes or restarts a context (protocol version 4, EMBER_E_CONFLICT before): returns
 * once the guest answered; open and restart answer when the interpreter is ready (*pid). Guest
 * errors: exists / context_busy 409, unknown_context 404, too_many_contexts 429, others 502. */
int channel_context(struct channel *ch, const struct proto_context *req, int64_t deadline_ms,
		    int32_t *pid, struct ember_error **err);

int channel_ping(struct channel *ch, int64_t deadline_ms, struct ember_error **err);

/* --- Files (protocol version 3, docs/protocol.md "Files") ---
 * Every call fails with EMBER_E_CONFLICT on a guest below version 3, before anything is sent.
 * A guest ERROR becomes the kind of its code (bad_request 400, not_found 404, is_directory /
 * not_directory / exists / not_empty 409, permission_denied 403, no_space 507,
 * too_many_transfers 429, io_error 500). Paths are passed through, never interpreted. */

/* stat, list, mkdir, move or remove: one FS, its FS_REPLY into *reply (release it with
 * proto_fs_reply_release()). */
int channel_fs(struct channel *ch, const struct proto_fs_request *req, int64_t deadline_ms,
	       struct proto_fs_reply *reply, struct ember_error **err);

/* A download or an upload in progress: one thread at a time drives it. Its memory is bounded
 * by the protocol's credit window (PROTO_CREDIT_WINDOW) whatever either end does. */
struct channel_transfer;

/* Sends a read and waits for its header: *entry tells the size that will follow. */
int channel_download_open(struct channel *ch, const char *path, struct channel_transfer **out,
			  struct proto_fs_entry *entry, struct ember_error **err);
/* Up to max bytes of the file into buf, blocking until some arrive (granting credit as they
 * are taken). 0: the whole file was read; -1: the read failed (the guest's error, a break, or
 * CHANNEL_TRANSFER_STALL_MS without data). */
ssize_t channel_download_read(struct channel_transfer *t, void *buf, size_t max,
			      struct ember_error **err);

/* Sends a write (req->op == PROTO_FS_WRITE); the guest creates its temporary file. */
int channel_upload_open(struct channel *ch, const struct proto_fs_request *req,
			struct channel_transfer **out, struct ember_error **err);
/* Sends len bytes as DATA frames, each within the guest's credit: blocks while it has none
 * (backpressure). Fails with the guest's error once it refused the upload. */
int channel_upload_write(struct channel_transfer *t, const void *data, size_t len,
			 struct ember_error **err);
/* Ends the upload (DATA with FIN) and waits for the guest's {"written"} in *reply. */
int channel_upload_finish(struct channel_transfer *t, struct proto_fs_reply *reply,
			  struct ember_error **err);
/* Frees a transfer; one still running is CANCELled first (the guest removes a partial upload).
 * NULL is fine. */
void channel_transfer_close(struct channel_transfer *t);

/* --- Pause (protocol version 8, docs/protocol.md "Suspend and resume") ---
 * channel_suspend() quiesces the channel before its VM is saved: EMBER_E_CONFLICT (nothing
 * changed) on an older guest or while anything but running background execs is in flight;
 * otherwise it sends SUSPEND, waits until deadline_ms for the guest's SUSPENDED (its last
 * frame) and stops the reader. From then on new requests fail with EMBER_E_CONFLICT and every
 * frame a thread wants to send (a background exec's CREDIT, a CANCEL) waits, unsent, for the
 * resume; background execs stay in flight. A guest that does not confirm in time breaks the
 * channel. channel_resume() takes the stream of the restored VM (fd, owned from here on, also
 * on failure), sends RESUME (fresh clock and entropy), waits for READY (abort_fd as in
 * channel_open) and lets everything go on; a failure breaks the channel. fd -1: the same VM
 * runs on (it was saved, not stopped) and the stream stays. channel_close() works in every
 * state. */
int channel_suspend(struct channel *ch, int64_t deadline_ms, struct ember_error **err);
int channel_resume(struct channel *ch, int fd, int abort_fd, int64_t deadline_ms,
		   struct ember_error **err);
/* true once the guest closed the stream or broke the protocol; reason (optional) gets why. */
bool channel_broken(struct channel *ch, char *reason, size_t reason_size);

/* Number of requests in flight (for tests and /healthz). */
size_t channel_inflight(struct channel *ch);

/* Fails every request in flight and refuses new ones, without freeing: other threads may
 * still hold the pointer. channel_close() frees once they are done. */
void channel_abort(struct channel *ch, const char *reason);

/* Stops the reader, fails anything in flight, closes the fd, frees. */
void channel_close(struct channel *ch);

#endif
