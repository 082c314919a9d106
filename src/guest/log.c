/* log.c - console logging for the guest. */
#include "guest/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = STDERR_FILENO;

void guest_log_set_fd(int fd)
{
	log_fd = fd;
}

unsigned long long guest_uptime_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_BOOTTIME, &ts) < 0)
		return 0;
	return (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000ull;
}

void guest_log(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n, m;

	n = snprintf(line, sizeof(line), "emberd-init: %llu ms: ", guest_uptime_ms());
	if (n < 0)
		return;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	n = (int)strlen(line);
	line[n++] = '\n';
	/* One write per line so lines from the agent and the kernel do not interleave mid-line. */
	if (write(log_fd, line, (size_t)n) < 0)
		return;
}

void guest_log_error(struct ember_error **err, const char *context)
{
	if (err != NULL && *err != NULL)
		guest_log("%s: %s", context, (*err)->message);
	else
		guest_log("%s: unknown error", context);
	ember_error_free(err);
}
