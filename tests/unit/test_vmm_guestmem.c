/* Unit tests for sealed guest memory copies (src/vmm/guestmem.c): the copy holds the file's
 * content, stays sparse, and refuses every way of writing it, while a private mapping works. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmpdir.h"
#include "vmm/guestmem.h"

#define SIZE (8u << 20)

/* A sparse file of SIZE: "A"s in page 0, an explicitly written zero page at 3 MiB (a data
 * extent holding nothing), and a few bytes at 5 MiB + 100. */
static int make_file(const char *name, bool zero_extent, char marker)
{
	char path[512], page[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir_path, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, SIZE), 0);
	memset(page, 'A', sizeof(page));
	assert_int_equal(pwrite(fd, page, sizeof(page), 0), (ssize_t)sizeof(page));
	memset(page, 0, sizeof(page));
	if (zero_extent)
		assert_int_equal(pwrite(fd, page, sizeof(page), 3u << 20), (ssize_t)sizeof(page));
	assert_int_equal(pwrite(fd, &marker, 1, (5u << 20) + 100), 1);
	return fd;
}

static void copy(int fd, int *memfd, char digest[GUESTMEM_DIGEST_HEX_LEN + 1],
		 struct guestmem_copy_stats *stats)
{
	struct ember_error *err = NULL;

	if (guestmem_seal_copy(fd, SIZE, "emberd-test", memfd, digest, stats, &err) < 0)
		fail_msg("guestmem_seal_copy: %s", err->message);
}

static void copy_has_the_content_and_only_its_nonzero_pages(void **state)
{
	struct guestmem_copy_stats stats;
	char digest[GUESTMEM_DIGEST_HEX_LEN + 1];
	uint8_t *a = malloc(SIZE), *b = malloc(SIZE);
	int fd = make_file("content", true, 'z'), memfd;
	struct stat st;

	(void)state;
	copy(fd, &memfd, digest, &stats);
	assert_int_equal(pread(fd, a, SIZE, 0), SIZE);
	assert_int_equal(pread(memfd, b, SIZE, 0), SIZE);
	assert_memory_equal(a, b, SIZE);
	assert_int_equal(stats.data_bytes, 2 * 4096);
	assert_int_equal(fstat(memfd, &st), 0);
	assert_int_equal(st.st_size, SIZE);
	assert_int_equal((uint64_t)st.st_blocks * 512, 2 * 4096); /* sparse: two pages */
	assert_int_equal(fcntl(memfd, F_GET_SEALS),
			 F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	assert_true(fcntl(memfd, F_GETFD) & FD_CLOEXEC);
	free(a);
	free(b);
	close(fd);
	close(memfd);
}

static void copy_refuses_writes_even_reopened_but_maps_privately(void **state)
{
	struct guestmem_copy_stats stats;
	char digest[GUESTMEM_DIGEST_HEX_LEN + 1], path[64];
	int fd = make_file("writes", false, 'w'), memfd, again;
	uint8_t *map;

	(void)state;
	copy(fd, &memfd, digest, &stats);
	/* What a VMM does with mem-path=/proc/self/fd/N: reopen it read-write. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	again = open(path, O_RDWR | O_CLOEXEC);
	assert_true(again >= 0);
	assert_int_equal(pwrite(again, "x", 1, 0), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(write(again, "x", 1), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(again, 0), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(fallocate(again, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(fallocate(again, 0, 0, 2 * SIZE), -1); /* grow */
	assert_int_equal(errno, EPERM);
	assert_true(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, again, 0) == MAP_FAILED);
	assert_int_equal(errno, EPERM);
	assert_int_equal(fcntl(again, F_ADD_SEALS, 0), -1); /* F_SEAL_SEAL */
	map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, again, 0);
	assert_true(map != MAP_FAILED);
	assert_int_equal(map[0], 'A');
	map[0] = 'B'; /* copy-on-write: the clone's own page */
	assert_int_equal(munmap(map, 4096), 0);
	assert_int_equal(pread(memfd, path, 1, 0), 1);
	assert_int_equal(path[0], 'A');
	close(again);
	close(fd);
	close(memfd);
}

static void digest_follows_the_content_not_the_holes(void **state)
{
	struct guestmem_copy_stats stats;
	char with_extent[GUESTMEM_DIGEST_HEX_LEN + 1], sparse[GUESTMEM_DIGEST_HEX_LEN + 1];
	char changed[GUESTMEM_DIGEST_HEX_LEN + 1];
	int a = make_file("a", true, 'q'), b = make_file("b", false, 'q');
	int c = make_file("c", false, 'r'), m1, m2, m3;

	(void)state;
	copy(a, &m1, with_extent, &stats);
	copy(b, &m2, sparse, &stats);
	copy(c, &m3, changed, &stats);
	assert_string_equal(with_extent, sparse);
	assert_string_not_equal(sparse, changed);
	close(a);
	close(b);
	close(c);
	close(m1);
	close(m2);
	close(m3);
}

static void a_file_of_another_size_is_refused(void **state)
{
	struct guestmem_copy_stats stats;
	char digest[GUESTMEM_DIGEST_HEX_LEN + 1];
	struct ember_error *err = NULL;
	int fd = make_file("size", false, 's'), memfd = -1;

	(void)state;
	assert_int_equal(guestmem_seal_copy(fd, SIZE * 2, "emberd-test", &memfd, digest, &stats,
					    &err), -1);
	assert_non_null(strstr(err->message, "not"));
	assert_int_equal(memfd, -1);
	ember_error_free(&err);
	close(fd);
}

/* A fork base: a memfd a VMM fills through a shared mapping, then sealed with its zero pages
 * freed; while the filler's shared writable mapping exists it cannot be sealed. */
static void a_filled_memfd_seals_keeping_only_nonzero_pages(void **state)
{
	struct ember_error *err = NULL;
	uint64_t kept = 1;
	uint8_t *map, page[4096];
	struct stat st;
	int memfd;

	(void)state;
	if (guestmem_create(SIZE, "emberd-test-base", &memfd, &err) < 0)
		fail_msg("guestmem_create: %s", err->message);
	assert_true(fcntl(memfd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(fstat(memfd, &st), 0);
	assert_int_equal((uint64_t)st.st_blocks * 512, SIZE); /* allocated up front */
	map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	assert_true(map != MAP_FAILED);
	map[0] = 'A';
	map[(3u << 20) + 4095] = 'B';
	map[SIZE - 1] = 'C';
	assert_int_equal(guestmem_seal(memfd, &kept, &err), -1); /* still mapped shared */
	ember_error_free(&err);
	assert_int_equal(munmap(map, SIZE), 0);
	if (guestmem_seal(memfd, &kept, &err) < 0)
		fail_msg("guestmem_seal: %s", err->message);
	assert_int_equal(kept, 3 * 4096);
	assert_int_equal(fstat(memfd, &st), 0);
	assert_int_equal(st.st_size, SIZE);
	assert_int_equal((uint64_t)st.st_blocks * 512, 3 * 4096);
	assert_int_equal(fcntl(memfd, F_GET_SEALS),
			 F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	assert_int_equal(pread(memfd, page, sizeof(page), 3u << 20), (ssize_t)sizeof(page));
	assert_int_equal(page[4095], 'B');
	assert_int_equal(page[0], 0);
	assert_int_equal(pread(memfd, page, sizeof(page), 0), (ssize_t)sizeof(page));
	assert_int_equal(page[0], 'A');
	assert_int_equal(pwrite(memfd, "x", 1, 0), -1);
	assert_int_equal(errno, EPERM);
	close(memfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(copy_has_the_content_and_only_its_nonzero_pages),
		cmocka_unit_test(copy_refuses_writes_even_reopened_but_maps_privately),
		cmocka_unit_test(digest_follows_the_content_not_the_holes),
		cmocka_unit_test(a_file_of_another_size_is_refused),
		cmocka_unit_test(a_filled_memfd_seals_keeping_only_nonzero_pages),
	};

	return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
