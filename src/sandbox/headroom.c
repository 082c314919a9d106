/* headroom.c - host memory headroom from meminfo. */
#include "sandbox/headroom.h"

#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/fdio.h"

/* One "Name: N kB" line's value in KiB, or -1 when the line is not of that shape. */
static int parse_kib_line(const char *line, size_t len, uint64_t *kib)
{
	size_t i = 0;
	uint64_t v = 0;
	bool digits = false;

	while (i < len && line[i] == ' ')
		i++;
	for (; i < len && line[i] >= '0' && line[i] <= '9'; i++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(line[i] - '0');
		digits = true;
	}
	if (!digits || len - i != 3 || memcmp(line + i, " kB", 3) != 0)
		return -1;
	*kib = v;
	return 0;
}

int headroom_parse_meminfo(const char *text, size_t len, struct headroom_sample *out,
			   struct ember_error **err)
{
	static const char *const names[] = { "MemTotal:", "MemAvailable:" };
	uint64_t *dest[] = { &out->total_mib, &out->available_mib };
	bool seen[2] = { false, false };
	size_t pos = 0, i;

	memset(out, 0, sizeof(*out));
	while (pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - line) : len - pos;

		pos += n + (nl != NULL);
		for (i = 0; i < 2; i++) {
			size_t k = strlen(names[i]);
			uint64_t kib;

			if (n < k || memcmp(line, names[i], k) != 0)
				continue;
			if (seen[i] || parse_kib_line(line + k, n - k, &kib) < 0)
				return ember_error_set(err, EMBER_E_INVALID, 0,
						       "meminfo: bad or repeated `%s` line", names[i]);
			*dest[i] = kib / 1024;
			seen[i] = true;
		}
	}
	if (!seen[0] || !seen[1])
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "meminfo: no MemTotal or MemAvailable line (Linux >= 3.14)");
	if (out->available_mib > out->total_mib)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "meminfo: MemAvailable is above MemTotal");
	return 0;
}

int headroom_read(const char *path, struct headroom_sample *out, struct ember_error **err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;

	if (file_read_all(path, HEADROOM_MEMINFO_MAX, &text, &len, err) < 0 ||
	    headroom_parse_meminfo(text, len, out, err) < 0)
		return ember_error_wrap(err, "host memory from `%s`", path);
	return 0;
}

uint64_t headroom_reserve_mib(uint64_t total_mib, unsigned configured_mib)
{
	uint64_t r = total_mib / 10;

	if (configured_mib != 0)
		return configured_mib;
	return r > HEADROOM_RESERVE_MIN_MIB ? r : HEADROOM_RESERVE_MIN_MIB;
}

uint64_t headroom_sandbox_cost_mib(unsigned memory_mib, bool tcg)
{
	return (uint64_t)memory_mib + HEADROOM_VMM_OVERHEAD_MIB + (tcg ? HEADROOM_TCG_BUFFER_MIB : 0);
}

uint64_t headroom_unpromised_mib(uint64_t available_mib, uint64_t promised_mib)
{
	return available_mib > promised_mib ? available_mib - promised_mib : 0;
}

uint64_t headroom_fit(uint64_t available_mib, uint64_t reserve_mib, uint64_t cost_mib)
{
	if (cost_mib == 0 || available_mib <= reserve_mib)
		return 0;
	return (available_mib - reserve_mib) / cost_mib;
}
