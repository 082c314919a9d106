/* clock.c - does the guest kernel have a working tick (see clock.h). */
#include "guest/clock.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "proto/messages.h"
#include "util/cleanup.h"
#include "util/fdio.h"

/* A device name is a short word ("lapic", "lapic-deadline", "i8253"). */
#define CURRENT_DEVICE_MAX 256
/* /proc/interrupts grows with CPUs and devices: a few KiB for a microVM's few. */
#define INTERRUPTS_MAX (256u << 10)

bool guest_local_timer_interrupts(const char *text, size_t len, uint64_t *total)
{
	const char *p = text, *end = text + len, *line;
	uint64_t sum = 0;
	unsigned counts = 0;

	/* Find the row: a line whose first non-blank characters are "LOC:". */
	for (line = p; line < end; line = p) {
		while (line < end && *line == ' ')
			line++;
		if ((size_t)(end - line) >= 4 && memcmp(line, "LOC:", 4) == 0)
			break;
		p = memchr(line, '\n', (size_t)(end - line));
		if (p == NULL)
			return false;
		p++;
	}
	if (line >= end)
		return false;
	/* One decimal count per CPU, blank-separated, then the row's description. */
	for (p = line + 4; p < end && *p != '\n';) {
		uint64_t value = 0;
		unsigned digits = 0;

		while (p < end && *p == ' ')
			p++;
		if (p >= end || !isdigit((unsigned char)*p))
			break;
		for (; p < end && isdigit((unsigned char)*p); p++, digits++) {
			if (digits == 19)
				return false;
			value = value * 10 + (uint64_t)(*p - '0');
		}
		if (p < end && *p != ' ' && *p != '\n')
			return false;
		if (sum + value < sum)
			return false;
		sum += value;
		counts++;
	}
	if (counts == 0)
		return false;
	*total = sum;
	return true;
}

/* CPU 0's tick device into out (trailing blanks dropped); false when it cannot be read. */
static bool read_tick_device(const char *dir, char *out, size_t size)
{
	struct ember_error *err = NULL;
	_cleanup_free_ char *text = NULL;
	char path[512];
	size_t len;

	if (snprintf(path, sizeof(path), "%s/clockevent0/current_device", dir) >=
	    (int)sizeof(path))
		return false;
	if (file_read_all(path, CURRENT_DEVICE_MAX, &text, &len, &err) < 0) {
		ember_error_free(&err);
		return false;
	}
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
		len--;
	snprintf(out, size, "%.*s", (int)len, text);
	return true;
}

/* Whether no local timer interrupt has come on any CPU; false when that cannot be told. */
static bool no_local_timer_interrupts(const char *interrupts_path)
{
	struct ember_error *err = NULL;
	_cleanup_free_ char *text = NULL;
	uint64_t total;
	size_t len;

	if (file_read_all(interrupts_path, INTERRUPTS_MAX, &text, &len, &err) < 0) {
		ember_error_free(&err);
		return false;
	}
	return guest_local_timer_interrupts(text, len, &total) && total == 0;
}

int guest_check_timer(const char *clockevents_dir, const char *interrupts_path,
		      struct ember_error **err)
{
	char device[CURRENT_DEVICE_MAX + 1];

	if (!read_tick_device(clockevents_dir, device, sizeof(device)))
		return 0;
	if (device[0] == '\0')
		return ember_error_set(err, EMBER_E_GUEST, 0,
				       "%s: CPU 0 has no clock event device, so nothing that sleeps "
				       "would ever wake; under TCG the kernel disables its LAPIC timer "
				       "when a host stall skews its calibration",
				       PROTO_CONSOLE_NO_TIMER);
	if (strcmp(device, "lapic") == 0 && no_local_timer_interrupts(interrupts_path))
		return ember_error_set(err, EMBER_E_GUEST, 0,
				       "%s: the LAPIC timer never fired on any CPU (it waits for a "
				       "broadcast device this VM lacks); under TCG the kernel disables "
				       "its LAPIC timer when a host stall skews its calibration",
				       PROTO_CONSOLE_NO_TIMER);
	return 0;
}
