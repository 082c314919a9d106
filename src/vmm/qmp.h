/* qmp.h - a minimal QEMU Machine Protocol client (one command at a time, events skipped).
 * Used by the QEMU driver (qemu.c) for shutdown, snapshots and restores. Never trusts QEMU:
 * lines are bounded to 64 KiB and parsed strictly; a QEMU that misbehaves fails the call, never
 * the daemon, and no call waits past its deadline. */
#ifndef EMBER_VMM_QMP_H
#define EMBER_VMM_QMP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

struct qmp;

/* Connects (retrying while the socket does not exist yet, until deadline_ms or until
 * alive(ctx) says QEMU is gone; alive may be NULL), reads the greeting and enters command mode
 * with qmp_capabilities. */
int qmp_connect(const char *path, int64_t deadline_ms, bool (*alive)(void *ctx), void *ctx,
		struct qmp **out, struct ember_error **err);

/* Runs one command; args is borrowed (may be NULL); *result (optional) gets a new reference to
 * the "return" value. A QMP "error" answer becomes an EMBER_E_GUEST error with its desc. */
int qmp_execute(struct qmp *q, const char *command, json_t *args, json_t **result,
		int64_t deadline_ms, struct ember_error **err);

void qmp_close(struct qmp *q);

static inline void qmp_closep(struct qmp **q)
{
	qmp_close(*q);
}
/* Closes a QMP connection at the end of its scope (NULL-safe). */
#define _cleanup_qmp_ __attribute__((cleanup(qmp_closep)))

#endif
