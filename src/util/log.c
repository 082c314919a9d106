/* log.c - logfmt event lines. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/text.h"
#include "util/timeutil.h"

/* Written once before any thread starts, read-only afterwards: no lock needed. */
static enum log_level min_level = LOG_INFO;

void log_set_level(enum log_level level)
{
	min_level = level;
}

static const char *level_name(enum log_level level)
{
	switch (level) {
	case LOG_DEBUG: return "debug";
	case LOG_INFO: return "info";
	case LOG_WARN: return "warn";
	case LOG_ERROR: return "error";
	}
	return "info";
}

void log_event(enum log_level level, const char *sandbox_id, const char *event,
	       int64_t duration_ms, const char *fmt, ...)
{
	char ts[40], msg[1024], escaped[4 * sizeof(msg)], line[sizeof(escaped) + 256];
	char dur[32] = "";
	va_list ap;

	if (level < min_level)
		return;
	time_format_rfc3339(time_wall_ns(), ts, sizeof(ts));
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One event on one line, unambiguous quoting, and nothing a terminal acts on: messages
	 * carry guest text (ERROR frames, console lines) and client input (URLs). */
	text_escape_log(msg, escaped, sizeof(escaped));
	if (duration_ms >= 0)
		snprintf(dur, sizeof(dur), " duration_ms=%lld", (long long)duration_ms);
	snprintf(line, sizeof(line), "ts=%s level=%s event=%s%s%s%s msg=\"%s\"\n", ts,
		 level_name(level), event, sandbox_id != NULL ? " sandbox=" : "",
		 sandbox_id != NULL ? sandbox_id : "", dur, escaped);
	fputs(line, stderr);
}
