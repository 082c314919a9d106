/* log.h - the guest's few log lines, prefixed `emberd-init: ` with ms since boot.
 * Called by every guest module; PID 1 points it at /dev/console, agent-only mode at stderr.
 * Never blocks on a full pipe for long and never fails the caller: a lost log line is fine. */
#ifndef EMBER_GUEST_LOG_H
#define EMBER_GUEST_LOG_H

#include "util/error.h"

/* Where lines go; set once at startup, before the loop (the one piece of process-wide state:
 * a log destination is by nature global). */
void guest_log_set_fd(int fd);

void guest_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Logs "<context>: <err message>" and frees *err. */
void guest_log_error(struct ember_error **err, const char *context);

/* Milliseconds since boot (CLOCK_BOOTTIME): what READY reports and every log line starts with. */
unsigned long long guest_uptime_ms(void);

#endif
