/* files.h - the file-system requests of protocol version 3 (FS / FS_REPLY / DATA, docs/protocol.md
 * "Files"): stat, list, mkdir, move and remove at once, read and write as credit-paced transfers.
 * Owned by session.c (one struct guest_files per session), which hands it FS, DATA, CREDIT and
 * CANCEL frames; knows nothing of sessions beyond the ops below.
 * Never touches a file as root: every path is resolved and every file opened with the sandbox
 * user's fsuid/fsgid (when change_ids), and never buffers more than one 64 KiB chunk per read. */
#ifndef EMBER_GUEST_FILES_H
#define EMBER_GUEST_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guest/exec.h"
#include "util/error.h"

/* How transfers talk to their session. */
struct guest_files_ops {
	/* Queues a frame for the host; -1 when the session cannot take it (it then ends). */
	int (*emit)(void *ctx, uint8_t type, uint8_t flags, uint32_t id, const void *payload,
		    size_t len);
	/* True while the session's outgoing queue is above its high-water mark. */
	bool (*congested)(void *ctx);
};

struct guest_transfer;

struct guest_files {
	const struct guest_exec_config *cfg; /* the sandbox user and home */
	const struct guest_files_ops *ops;
	void *ctx;
	unsigned *running;                   /* transfers across sessions (the limit is per guest) */
	struct guest_transfer *transfers;
};

void guest_files_init(struct guest_files *fs, const struct guest_exec_config *cfg,
		      unsigned *running, const struct guest_files_ops *ops, void *ctx);

/* An FS frame: answers FS_REPLY or ERROR for id, or starts a read/write transfer. */
void guest_files_request(struct guest_files *fs, uint32_t id, const uint8_t *payload, size_t len);

/* A DATA frame. DATA for an id without a transfer is dropped (it may cross an ERROR); -1 with
 * EMBER_E_PROTOCOL when the host went beyond the guest's credit (the session then fails). */
int guest_files_data(struct guest_files *fs, uint32_t id, const uint8_t *data, size_t len,
		     bool fin, struct ember_error **err);

/* CREDIT for id: false when id is no read transfer (the caller tries its execs). */
bool guest_files_credit(struct guest_files *fs, uint32_t id, uint32_t bytes);

/* CANCEL: abandons the transfer (a write's temp file is unlinked), nothing more is sent for it.
 * False when id is no transfer. */
bool guest_files_cancel(struct guest_files *fs, uint32_t id);

bool guest_files_busy(const struct guest_files *fs, uint32_t id);

/* The session drained below its low-water mark: reads with credit continue. */
void guest_files_resume(struct guest_files *fs);

/* Session end or restart: every transfer abandoned as by CANCEL. */
void guest_files_discard(struct guest_files *fs);

/* Maps an errno of a file operation to the protocol's ERROR code (docs/protocol.md "Files"). */
const char *guest_files_error_code(int errnum);

#endif
