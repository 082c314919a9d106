/* headroom.h - how much host memory new sandboxes may still take: MemAvailable (from a meminfo
 * file) minus a reserve, against what one sandbox can cost at most (its guest RAM plus its VMM).
 * Used by the manager (the derived --max-sandboxes, admission, /healthz) and, through the
 * manager's pool ops, by the pool (refill or shrink). Never decides anything itself and never
 * reads more than one small, bounded file per call. */
#ifndef EMBER_SANDBOX_HEADROOM_H
#define EMBER_SANDBOX_HEADROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* QEMU's own memory beyond guest RAM, measured PSS of an idle VMM (bench/results): the process
 * and its device model, and under TCG the translation buffer the driver sizes (tb-size=128). */
#define HEADROOM_VMM_OVERHEAD_MIB 48u
#define HEADROOM_TCG_BUFFER_MIB 128u
/* The reserve when none is configured: a tenth of the host's memory, at least this much. */
#define HEADROOM_RESERVE_MIN_MIB 256u
/* A meminfo file larger than this is not one (the kernel's is about 1.5 KiB). */
#define HEADROOM_MEMINFO_MAX (64u * 1024u)

struct headroom_sample {
	uint64_t total_mib;     /* MemTotal */
	uint64_t available_mib; /* MemAvailable */
};

/* Parses meminfo text (lines "Name:   N kB"): MemTotal and MemAvailable are required, numbers
 * must fit, unit must be kB. EMBER_E_INVALID otherwise. */
int headroom_parse_meminfo(const char *text, size_t len, struct headroom_sample *out,
			   struct ember_error **err);

/* Reads and parses path (normally /proc/meminfo). */
int headroom_read(const char *path, struct headroom_sample *out, struct ember_error **err);

/* The reserve for a host of total_mib: configured_mib when non-zero, else a tenth of the host,
 * at least HEADROOM_RESERVE_MIN_MIB. */
uint64_t headroom_reserve_mib(uint64_t total_mib, unsigned configured_mib);

/* The most one sandbox of memory_mib can take on the host. */
uint64_t headroom_sandbox_cost_mib(unsigned memory_mib, bool tcg);

/* MemAvailable less what creates still booting were promised (0 when they were promised
 * more): the memory a new sandbox is admitted against. */
uint64_t headroom_unpromised_mib(uint64_t available_mib, uint64_t promised_mib);

/* Sandboxes of cost_mib that fit in available_mib beyond reserve_mib (0 when none). */
uint64_t headroom_fit(uint64_t available_mib, uint64_t reserve_mib, uint64_t cost_mib);

#endif
