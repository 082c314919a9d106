/* Unit tests for the /proc process table (src/guest/ps.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest/ps.h"

static int parse_stat(const char *text, struct proto_process *p, struct ember_error **err)
{
	memset(p, 0, sizeof(*p));
	return guest_ps_parse_stat(text, strlen(text), p, err);
}

static void stat_line_gives_pid_comm_state_ppid(void **state)
{
	struct proto_process p;

	(void)state;
	assert_int_equal(parse_stat("1 (init) S 0 1 1 0 -1 4194560 1 2 0 0\n", &p, NULL), 0);
	assert_int_equal(p.pid, 1);
	assert_int_equal(p.ppid, 0);
	assert_int_equal(p.state, 'S');
	assert_string_equal(p.comm, "init");
	assert_int_equal(parse_stat("4242 (python3) Z 17 4242 4242 0", &p, NULL), 0);
	assert_int_equal(p.state, 'Z');
	assert_int_equal(p.ppid, 17);
}

static void comm_with_parentheses_and_blanks_is_kept_whole(void **state)
{
	struct proto_process p;

	(void)state;
	assert_int_equal(parse_stat("77 (a) (b c)) R 5 77 77 0", &p, NULL), 0);
	assert_string_equal(p.comm, "a) (b c)");
	assert_int_equal(p.state, 'R');
	assert_int_equal(p.ppid, 5);
}

static void comm_is_made_printable(void **state)
{
	struct proto_process p;

	(void)state;
	assert_int_equal(parse_stat("9 (x\x01\xffy) S 1 9", &p, NULL), 0);
	assert_string_equal(p.comm, "x??y");
}

static void bad_stat_lines_are_rejected(void **state)
{
	static const char *const bad[] = {
		"", "1", "1 init S 0", "x (a) S 0", "1 (a) S", "1 (a) S x", "1(a) S 0",
		"-1 (a) S 0", "0 (a) S 0", "99999999999999999999 (a) S 0",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct proto_process p;

		if (parse_stat(bad[i], &p, NULL) != -1)
			fail_msg("accepted `%s`", bad[i]);
	}
}

static void status_uid_is_the_real_uid(void **state)
{
	const char *status = "Name:\tsh\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t5\n"
			     "Uid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
	uint32_t uid = 0;

	(void)state;
	assert_int_equal(guest_ps_parse_status_uid(status, strlen(status), &uid, NULL), 0);
	assert_int_equal(uid, 1000);
	assert_int_equal(guest_ps_parse_status_uid("Name:\tx\n", 8, &uid, NULL), -1);
	assert_int_equal(guest_ps_parse_status_uid("Uid:\t\n", 6, &uid, NULL), -1);
}

static void list_finds_this_process_sorted_by_pid(void **state)
{
	struct proto_process procs[1024];
	size_t count = 0, i;
	int found = 0;

	(void)state;
	assert_int_equal(guest_ps_list("/proc", procs, 1024, &count, NULL), 0);
	assert_true(count > 0);
	for (i = 0; i < count; i++) {
		if (i > 0)
			assert_true(procs[i - 1].pid < procs[i].pid);
		if (procs[i].pid == getpid()) {
			found = 1;
			assert_int_equal(procs[i].ppid, getppid());
			assert_int_equal(procs[i].uid, getuid());
		}
	}
	assert_true(found || count == 1024);
	assert_int_equal(guest_ps_list("/proc", procs, 1, &count, NULL), 0);
	assert_int_equal(count, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stat_line_gives_pid_comm_state_ppid),
		cmocka_unit_test(comm_with_parentheses_and_blanks_is_kept_whole),
		cmocka_unit_test(comm_is_made_printable),
		cmocka_unit_test(bad_stat_lines_are_rejected),
		cmocka_unit_test(status_uid_is_the_real_uid),
		cmocka_unit_test(list_finds_this_process_sorted_by_pid),
	};

	return cmocka_run_group_tests_name("guest_ps", tests, NULL, NULL);
}
