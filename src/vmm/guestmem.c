/* guestmem.c - sparse copy into a sealed memfd, with a digest of what was copied (interface:
 * guestmem.h). */
#include "vmm/guestmem.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/hex.h"
#include "util/timeutil.h"

#define PAGE 4096u
/* Read size: large enough that syscalls do not dominate, small enough to stay in cache. */
#define CHUNK (1u << 20)

static void cleanup_md_ctxp(EVP_MD_CTX **ctx)
{
	EVP_MD_CTX_free(*ctx); /* NULL-safe */
}

struct copy {
	int src, dst;
	uint64_t size;
	EVP_MD_CTX *md;
	uint8_t *buf;
	struct guestmem_copy_stats *stats;
};

static bool page_is_zero(const uint8_t *p, size_t len)
{
	static const uint8_t zero[PAGE];

	return memcmp(p, zero, len) == 0;
}

static void hash_u64(EVP_MD_CTX *md, uint64_t v)
{
	uint8_t le[8];
	int i;

	for (i = 0; i < 8; i++)
		le[i] = (uint8_t)(v >> (8 * i));
	EVP_DigestUpdate(md, le, sizeof(le));
}

static int pwrite_all(int fd, const uint8_t *buf, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, buf, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* Writes the nonzero pages of buf (len bytes at file offset off) to dst, runs of them at once. */
static int copy_pages(struct copy *c, uint64_t off, size_t len, struct ember_error **err)
{
	size_t i = 0;

	while (i < len) {
		size_t start, page = len - i < PAGE ? len - i : PAGE;

		if (page_is_zero(c->buf + i, page)) {
			i += page;
			continue;
		}
		start = i;
		do {
			hash_u64(c->md, off + i);
			EVP_DigestUpdate(c->md, c->buf + i, page);
			i += page;
			page = len - i < PAGE ? len - i : PAGE;
		} while (i < len && !page_is_zero(c->buf + i, page));
		if (pwrite_all(c->dst, c->buf + start, i - start, (off_t)(off + start)) < 0)
			return ember_error_sys(err, "write guest memory copy");
		c->stats->data_bytes += i - start;
	}
	return 0;
}

/* Copies [from, to) of the source, page-aligned, one chunk at a time. */
static int copy_extent(struct copy *c, uint64_t from, uint64_t to, struct ember_error **err)
{
	uint64_t pos;

	for (pos = from & ~(uint64_t)(PAGE - 1); pos < to;) {
		size_t want = to - pos < CHUNK ? (size_t)(to - pos) : CHUNK;
		ssize_t n;

		want = (want + PAGE - 1) & ~(size_t)(PAGE - 1);
		if (pos + want > c->size)
			want = (size_t)(c->size - pos);
		n = pread(c->src, c->buf, want, (off_t)pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ember_error_sys(err, "read guest memory");
		if (n == 0)
			return ember_error_set(err, EMBER_E_INTERNAL, EIO,
					       "guest memory file shrank while copied");
		c->stats->scanned_bytes += (uint64_t)n;
		if (copy_pages(c, pos, (size_t)n, err) < 0)
			return -1;
		pos += (uint64_t)n;
	}
	return 0;
}

/* Walks the source's data extents (SEEK_DATA/SEEK_HOLE): holes are neither read nor written. */
static int copy_data(struct copy *c, struct ember_error **err)
{
	uint64_t off = 0;

	while (off < c->size) {
		off_t data = lseek(c->src, (off_t)off, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			return 0; /* only a hole is left */
		if (data < 0)
			return ember_error_sys(err, "SEEK_DATA in guest memory");
		hole = lseek(c->src, data, SEEK_HOLE);
		if (hole < 0)
			return ember_error_sys(err, "SEEK_HOLE in guest memory");
		if ((uint64_t)hole > c->size)
			hole = (off_t)c->size;
		if (copy_extent(c, (uint64_t)data, (uint64_t)hole, err) < 0)
			return -1;
		off = ((uint64_t)hole + PAGE - 1) & ~(uint64_t)(PAGE - 1);
	}
	return 0;
}

/* The sparse copy itself, with the content digest of what was copied (see guestmem.h). */
static int copy_digested(int src_fd, int dst_fd, uint64_t size,
			 char digest[GUESTMEM_DIGEST_HEX_LEN + 1],
			 struct guestmem_copy_stats *stats, struct ember_error **err)
{
	__attribute__((cleanup(cleanup_md_ctxp))) EVP_MD_CTX *md = EVP_MD_CTX_new();
	_cleanup_free_ uint8_t *buf = malloc(CHUNK);
	uint8_t sum[32];
	unsigned sum_len = sizeof(sum);
	struct copy c = { .src = src_fd, .dst = dst_fd, .size = size, .md = md, .buf = buf,
			  .stats = stats };

	memset(stats, 0, sizeof(*stats));
	if (md == NULL || buf == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		return ember_error_oom(err);
	hash_u64(md, size);
	if (copy_data(&c, err) < 0)
		return -1;
	EVP_DigestFinal_ex(md, sum, &sum_len);
	if (digest != NULL)
		hex_encode(sum, sizeof(sum), digest);
	return 0;
}

int guestmem_copy(int src_fd, int dst_fd, uint64_t size, struct ember_error **err)
{
	struct guestmem_copy_stats stats;

	return copy_digested(src_fd, dst_fd, size, NULL, &stats, err);
}

static int create_memfd(uint64_t size, const char *name, int *memfd, struct ember_error **err)
{
	_cleanup_close_ int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return ember_error_sys(err, "memfd_create `%s`", name);
	if (ftruncate(fd, (off_t)size) < 0)
		return ember_error_sys(err, "size the memfd `%s`", name);
	*memfd = steal_fd(&fd);
	return 0;
}

static int add_seals(int memfd, struct ember_error **err)
{
	if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		return ember_error_sys(err, "seal guest memory");
	return 0;
}

int guestmem_create(uint64_t size, const char *name, int *memfd, struct ember_error **err)
{
	_cleanup_close_ int fd = -1;

	if (create_memfd(size, name, &fd, err) < 0)
		return -1;
	/* Allocated up front: a VMM filling it then only maps pages (QEMU reads every page it
	 * is sent as zero: each read of a hole would allocate one, 4 KiB at a time). */
	if (fallocate(fd, 0, 0, (off_t)size) < 0)
		return ember_error_sys(err, "allocate the memfd `%s`", name);
	*memfd = steal_fd(&fd);
	return 0;
}

/* Punches out every page of the memfd that holds only zeros, runs of them at once. */
static int punch_zero_pages(int fd, uint64_t size, uint64_t *kept, struct ember_error **err)
{
	_cleanup_free_ uint8_t *buf = malloc(CHUNK);
	uint64_t pos = 0, run = 0, run_start = 0;

	if (buf == NULL)
		return ember_error_oom(err);
	*kept = 0;
	while (pos < size) {
		size_t want = size - pos < CHUNK ? (size_t)(size - pos) : CHUNK, i;
		ssize_t n = pread(fd, buf, want, (off_t)pos);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return ember_error_sys(err, "read guest memory");
		for (i = 0; i < (size_t)n; i += PAGE) {
			size_t page = (size_t)n - i < PAGE ? (size_t)n - i : PAGE;

			if (page_is_zero(buf + i, page)) {
				if (run == 0)
					run_start = pos + i;
				run += page;
				continue;
			}
			*kept += page;
			if (run > 0 && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
						 (off_t)run_start, (off_t)run) < 0)
				return ember_error_sys(err, "free zero pages of guest memory");
			run = 0;
		}
		pos += (uint64_t)n;
	}
	if (run > 0 && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)run_start,
				 (off_t)run) < 0)
		return ember_error_sys(err, "free zero pages of guest memory");
	return 0;
}

int guestmem_drop_zero_pages(int memfd, uint64_t *kept_bytes, struct ember_error **err)
{
	struct stat st;

	if (fstat(memfd, &st) < 0)
		return ember_error_sys(err, "stat guest memory");
	return punch_zero_pages(memfd, (uint64_t)st.st_size, kept_bytes, err);
}

int guestmem_seal(int memfd, uint64_t *kept_bytes, struct ember_error **err)
{
	if (guestmem_drop_zero_pages(memfd, kept_bytes, err) < 0)
		return -1;
	return add_seals(memfd, err);
}

int guestmem_seal_copy(int src_fd, uint64_t size, const char *name, int *memfd,
		       char digest[GUESTMEM_DIGEST_HEX_LEN + 1], struct guestmem_copy_stats *stats,
		       struct ember_error **err)
{
	_cleanup_close_ int fd = -1;
	int64_t t0 = time_mono_ms();
	struct stat st;

	if (fstat(src_fd, &st) < 0)
		return ember_error_sys(err, "stat guest memory");
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
		return ember_error_set(err, EMBER_E_INTERNAL, EINVAL,
				       "guest memory file is %lld bytes, not %llu",
				       (long long)st.st_size, (unsigned long long)size);
	if (create_memfd(size, name, &fd, err) < 0)
		return -1;
	if (copy_digested(src_fd, fd, size, digest, stats, err) < 0)
		return ember_error_wrap(err, "copy guest memory into `%s`", name);
	if (add_seals(fd, err) < 0)
		return ember_error_wrap(err, "`%s`", name);
	stats->elapsed_ms = time_mono_ms() - t0;
	*memfd = steal_fd(&fd);
	return 0;
}
