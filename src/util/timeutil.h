/* timeutil.h - monotonic and wall clocks in the units the rest of emberd speaks (ms, ns).
 * Used everywhere a deadline is computed; deadlines are absolute monotonic milliseconds. */
#ifndef EMBER_UTIL_TIMEUTIL_H
#define EMBER_UTIL_TIMEUTIL_H

#include <stdint.h>

int64_t time_mono_ms(void);
int64_t time_mono_us(void);
int64_t time_wall_ns(void);
/* Milliseconds left until deadline, clamped to [0, INT32_MAX]; a deadline < 0 means "none"
 * and yields -1 (poll's infinite timeout). */
int time_ms_until(int64_t deadline_ms);
/* Writes an RFC 3339 UTC timestamp with milliseconds ("2026-11-24T02:55:00.123Z"). */
void time_format_rfc3339(int64_t wall_ns, char *out, unsigned long size);

#endif
