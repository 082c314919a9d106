/* guestmem.h - sealed in-memory copies of a template's guest RAM file: what a clone's VMM maps
 * privately (copy-on-write) instead of the file, so that no VMM can write the template.
 * Used by the template store after a build and when it finds a template on disk at startup, and
 * by forks (a fork base's RAM: a memfd a stopped VM filled, then sealed), and by vmm.c for a
 * VM loaded from a saved state (its own memfd, zero pages freed before it runs).
 * Never hands out a copy that can still be written: write(), ftruncate(), fallocate() and shared
 * writable mappings of it fail with EPERM (memfd seals), for root too. */
#ifndef EMBER_VMM_GUESTMEM_H
#define EMBER_VMM_GUESTMEM_H

#include <stdint.h>

#include "util/error.h"

#define GUESTMEM_DIGEST_HEX_LEN 64

struct guestmem_copy_stats {
	uint64_t data_bytes;   /* nonzero pages copied: the RAM the copy costs */
	uint64_t scanned_bytes; /* data extents of the file read (holes are skipped) */
	int64_t elapsed_ms;
};

/* Copies the size bytes of src_fd (a regular file of exactly that size) into a new memfd named
 * name, sealed F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE|F_SEAL_SEAL, and returns it (O_CLOEXEC)
 * in *memfd. Only pages that hold a nonzero byte are written, so the copy is as sparse as the
 * guest's touched memory. digest gets the SHA-256 of the size and every nonzero page with its
 * offset (a content digest independent of how the file's holes lie): "(le64 size)
 * (le64 offset, 4096 bytes)*" over nonzero pages in order. */
int guestmem_seal_copy(int src_fd, uint64_t size, const char *name, int *memfd,
		       char digest[GUESTMEM_DIGEST_HEX_LEN + 1], struct guestmem_copy_stats *stats,
		       struct ember_error **err);

/* A new memfd of size zero bytes, allocated, that can be sealed later, for a VMM to fill
 * through a shared mapping (a fork base: vmm_boot_config.memory_fd with memory_shared);
 * *memfd is O_CLOEXEC. */
int guestmem_create(uint64_t size, const char *name, int *memfd, struct ember_error **err);
/* Frees every page of a guestmem_create() memfd that holds only zeros (every mapping reads
 * them as zeros still; a write allocates a page again); *kept_bytes gets what stays allocated.
 * Only while nothing writes it (its VM stopped). */
int guestmem_drop_zero_pages(int memfd, uint64_t *kept_bytes, struct ember_error **err);
/* guestmem_drop_zero_pages(), then seals the memfd as guestmem_seal_copy() seals its copies.
 * Fails (EBUSY) while a writable shared mapping of it exists: only once the VMM that filled it
 * is gone. */
int guestmem_seal(int memfd, uint64_t *kept_bytes, struct ember_error **err);

/* The same sparse copy of size bytes of src_fd into dst_fd (already that size, holes where src
 * is zero), without the memfd or the seals: for a file a jailed VMM must read as its own. */
int guestmem_copy(int src_fd, int dst_fd, uint64_t size, struct ember_error **err);

#endif
