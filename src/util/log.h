/* log.h - structured, one-line-per-event logs on stderr (logfmt: key=value).
 * Used by the daemon and its modules; a line is written with one call, so concurrent threads
 * never interleave within a line. Never logs guest output or request bodies. */
#ifndef EMBER_UTIL_LOG_H
#define EMBER_UTIL_LOG_H

#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Process-wide minimum level (set once at startup, before threads start). */
void log_set_level(enum log_level level);

/* event: a dotted name ("sandbox.ready"); sandbox_id may be NULL; duration_ms < 0 omits it;
 * fmt gives the free-text msg. */
void log_event(enum log_level level, const char *sandbox_id, const char *event,
	       int64_t duration_ms, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
