/* Unit tests for the console reader (src/vmm/console.c): the thread keeps reading the FIFO a
 * VMM writes to (a writer never waits for long), the ring keeps the newest bytes of a flood, a
 * stream's EOF is clean, and a later daemon re-opens the FIFO and gets what was written
 * while none read it; nothing but a FIFO of ours is re-opened. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"
#include "util/fdio.h"
#include "util/timeutil.h"
#include "vmm/console.h"
#include "vmm/vmm.h"

static char *vm_dir(const char *name)
{
	static char dir[512];

	snprintf(dir, sizeof(dir), "%s/%s", tmpdir_path, name);
	mkdir(dir, 0700);
	return dir;
}

static void write_all(int fd, const void *buf, size_t len)
{
	struct ember_error *err = NULL;

	/* The VMM's open file is non-blocking: fd_write_all waits for room, which only the
	 * reader thread makes once the pipe (64 KiB) is full. */
	assert_int_equal(fd_write_all(fd, buf, len, time_mono_ms() + 20000, &err), 0);
}

static void fifo_bytes_reach_the_ring(void **state)
{
	struct console_reader *reader;
	struct console *c;
	char out[64];
	uint64_t total;
	size_t n;
	struct stat st;
	char path[600];

	(void)state;
	assert_int_equal(console_reader_create(&reader, NULL), 0);
	assert_int_equal(console_create(reader, vm_dir("a"), &c, NULL), 0);
	snprintf(path, sizeof(path), "%s/%s", vm_dir("a"), CONSOLE_FIFO_NAME);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	assert_true((fcntl(console_vmm_fd(c), F_GETFL) & O_NONBLOCK) != 0);
	write_all(console_vmm_fd(c), "hello console\n", 14);
	n = console_tail(c, out, sizeof(out), &total);
	assert_int_equal(n, 14);
	assert_memory_equal(out, "hello console\n", 14);
	assert_true(total == 14);
	console_stop(c, true);
	assert_int_equal(stat(path, &st), -1);
	/* The ring outlives the stop: a dead VM's console can still be read. */
	assert_int_equal(console_tail(c, out, sizeof(out), NULL), 14);
	console_free(c);
	console_reader_free(reader);
}

static void flood_keeps_newest_megabyte_and_counts_all(void **state)
{
	const size_t chunk = 1 << 16, rounds = 80;  /* 5 MiB: five rings' worth */
	struct console_reader *reader;
	struct console *c;
	char *buf = malloc(chunk), *out = malloc(VMM_CONSOLE_RING_BYTES + 1);
	uint64_t total;
	size_t i, n;

	(void)state;
	assert_int_equal(console_reader_create(&reader, NULL), 0);
	assert_int_equal(console_create(reader, vm_dir("b"), &c, NULL), 0);
	for (i = 0; i < rounds; i++) {
		memset(buf, 'a' + (int)(i % 26), chunk);
		write_all(console_vmm_fd(c), buf, chunk);
	}
	write_all(console_vmm_fd(c), "THE END\n", 8);
	n = console_tail(c, out, VMM_CONSOLE_RING_BYTES + 1, &total);
	assert_int_equal(n, VMM_CONSOLE_RING_BYTES);
	assert_true(total == rounds * chunk + 8);
	assert_memory_equal(out + n - 8, "THE END\n", 8);
	/* The byte just before the marker is the last chunk's letter. */
	assert_int_equal(out[n - 9], 'a' + (int)((rounds - 1) % 26));
	console_free(c);
	console_reader_free(reader);
	free(buf);
	free(out);
}

static void stream_until_eof(void **state)
{
	struct console_reader *reader;
	struct console *c;
	char out[64];
	int sv[2];

	(void)state;
	assert_int_equal(console_reader_create(&reader, NULL), 0);
	assert_int_equal(console_create(reader, vm_dir("c"), &c, NULL), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(console_add_stream(c, sv[0], NULL), 0);
	write_all(console_vmm_fd(c), "fifo ", 5);
	assert_int_equal(write(sv[1], "serial\n", 7), 7);
	close(sv[1]);
	/* Both are in, and the stream's EOF leaves the FIFO readable. */
	assert_int_equal(console_tail(c, out, sizeof(out), NULL), 12);
	write_all(console_vmm_fd(c), "more", 4);
	assert_int_equal(console_tail(c, out, sizeof(out), NULL), 16);
	assert_memory_equal(out + 12, "more", 4);
	console_free(c);
	console_reader_free(reader);
}

static void later_daemon_reopens_and_gets_what_waited(void **state)
{
	struct console_reader *reader;
	struct console *c;
	char out[64];
	uint64_t total;
	int vmm;

	(void)state;
	assert_int_equal(console_reader_create(&reader, NULL), 0);
	assert_int_equal(console_create(reader, vm_dir("d"), &c, NULL), 0);
	vmm = dup(console_vmm_fd(c));  /* what the VMM holds as its stdout */
	write_all(vmm, "before ", 7);
	console_free(c);                /* the daemon exits, the FIFO stays */
	console_reader_free(reader);
	/* Nobody reads now: the VMM still writes without waiting or SIGPIPE. */
	assert_int_equal(write(vmm, "while away ", 11), 11);

	assert_int_equal(console_reader_create(&reader, NULL), 0);
	assert_int_equal(console_reopen(reader, vm_dir("d"), &c, NULL), 0);
	assert_int_equal(write(vmm, "after\n", 6), 6);
	assert_int_equal(console_tail(c, out, sizeof(out), &total), 17);
	assert_memory_equal(out, "while away after\n", 17);
	assert_true(total == 17);
	close(vmm);
	console_stop(c, true);
	console_free(c);
	console_reader_free(reader);
}

static void reopen_refuses_what_is_not_our_fifo(void **state)
{
	struct console_reader *reader;
	struct console *c;
	struct ember_error *err = NULL;
	char path[600], out[8];

	(void)state;
	assert_int_equal(console_reader_create(&reader, NULL), 0);
	/* None at all: an empty console. */
	assert_int_equal(console_reopen(reader, vm_dir("e"), &c, NULL), 0);
	assert_int_equal(console_tail(c, out, sizeof(out), NULL), 0);
	console_free(c);
	/* A regular file (or a symlink to one) in its place is never read as root. */
	snprintf(path, sizeof(path), "%s/%s", vm_dir("f"), CONSOLE_FIFO_NAME);
	assert_int_equal(file_write_atomic(path, "secret", 6, 0600, false, NULL), 0);
	assert_int_equal(console_reopen(reader, vm_dir("f"), &c, &err), -1);
	assert_non_null(strstr(err->message, "not a FIFO"));
	ember_error_free(&err);
	snprintf(path, sizeof(path), "%s/%s", vm_dir("g"), CONSOLE_FIFO_NAME);
	assert_int_equal(symlink("/etc/passwd", path), 0);
	assert_int_equal(console_reopen(reader, vm_dir("g"), &c, &err), -1);
	ember_error_free(&err);
	console_reader_free(reader);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fifo_bytes_reach_the_ring),
		cmocka_unit_test(flood_keeps_newest_megabyte_and_counts_all),
		cmocka_unit_test(stream_until_eof),
		cmocka_unit_test(later_daemon_reopens_and_gets_what_waited),
		cmocka_unit_test(reopen_refuses_what_is_not_our_fifo),
	};

	return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
