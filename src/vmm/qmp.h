/* qmp.h - a minimal QEMU Machine Protocol client (one command at a time, events skipped).
 * Used by the QEMU driver for shutdown and (later) snapshots. Lines from QEMU are bounded to
 * 64 KiB and parsed strictly; a QEMU that misbehaves fails the call, never the daemon. */
#ifndef EMBER_VMM_QMP_H
#define EMBER_VMM_QMP_H

#include <jansson.h>
#include <stdint.h>

#include "util/error.h"

struct qmp;

/* Connects (retrying while the socket does not exist yet), reads the greeting and enters
 * command mode with qmp_capabilities. */
int qmp_connect(const char *path, int64_t deadline_ms, struct qmp **out, struct ember_error **err);

/* Runs one command; args is borrowed (may be NULL); *result (optional) gets a new reference to
 * the "return" value. A QMP "error" answer becomes an EMBER_E_GUEST error with its desc. */
int qmp_execute(struct qmp *q, const char *command, json_t *args, json_t **result,
		int64_t deadline_ms, struct ember_error **err);

void qmp_close(struct qmp *q);

#endif
