/* Unit tests for host memory headroom (src/sandbox/headroom.c): the meminfo parser and the
 * arithmetic admission and the pool decide by. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sandbox/headroom.h"
#include "tmpdir.h"

static const char real[] = "MemTotal:       24576000 kB\n"
			   "MemFree:        20000000 kB\n"
			   "MemAvailable:   22528000 kB\n"
			   "Buffers:          100000 kB\n"
			   "HugePages_Total:       0\n";

static int parse(const char *text, struct headroom_sample *s)
{
	struct ember_error *err = NULL;
	int ret = headroom_parse_meminfo(text, strlen(text), s, &err);

	if (ret < 0) {
		assert_int_equal(err->kind, EMBER_E_INVALID);
		ember_error_free(&err);
	}
	return ret;
}

static void a_kernel_meminfo_gives_total_and_available_in_mib(void **state)
{
	struct headroom_sample s;

	(void)state;
	assert_int_equal(parse(real, &s), 0);
	assert_int_equal(s.total_mib, 24000);
	assert_int_equal(s.available_mib, 22000);
}

static void missing_repeated_or_malformed_lines_are_refused(void **state)
{
	static const char *const bad[] = {
		"MemTotal: 100 kB\n",                                     /* no MemAvailable */
		"MemAvailable: 100 kB\n",                                 /* no MemTotal */
		"MemTotal: 100 kB\nMemAvailable: 50 kB\nMemTotal: 100 kB\n",
		"MemTotal: 100 MB\nMemAvailable: 50 kB\n",                /* unit */
		"MemTotal: -100 kB\nMemAvailable: 50 kB\n",
		"MemTotal: kB\nMemAvailable: 50 kB\n",
		"MemTotal: 99999999999999999999999 kB\nMemAvailable: 5 kB\n", /* overflow */
		"MemTotal: 100 kB\nMemAvailable: 5000 kB\n",              /* available > total */
		"MemTotal: 100 kB trailing\nMemAvailable: 5 kB\n",
		"",
		NULL,
	};
	struct headroom_sample s;
	size_t i;

	(void)state;
	for (i = 0; bad[i] != NULL; i++) {
		if (parse(bad[i], &s) != -1)
			fail_msg("accepted: %s", bad[i]);
	}
}

static void a_last_line_without_newline_counts(void **state)
{
	struct headroom_sample s;

	(void)state;
	assert_int_equal(parse("MemTotal: 2048 kB\nMemAvailable: 1024 kB", &s), 0);
	assert_int_equal(s.total_mib, 2);
	assert_int_equal(s.available_mib, 1);
}

static void the_reserve_is_a_tenth_with_a_floor_unless_configured(void **state)
{
	(void)state;
	assert_int_equal(headroom_reserve_mib(24000, 0), 2400);
	assert_int_equal(headroom_reserve_mib(1000, 0), HEADROOM_RESERVE_MIN_MIB);
	assert_int_equal(headroom_reserve_mib(24000, 64), 64);
}

static void a_sandbox_costs_its_ram_plus_the_vmm_and_under_tcg_its_buffer(void **state)
{
	(void)state;
	assert_int_equal(headroom_sandbox_cost_mib(256, false), 256 + HEADROOM_VMM_OVERHEAD_MIB);
	assert_int_equal(headroom_sandbox_cost_mib(256, true),
			 256 + HEADROOM_VMM_OVERHEAD_MIB + HEADROOM_TCG_BUFFER_MIB);
}

static void fit_counts_whole_sandboxes_beyond_the_reserve(void **state)
{
	(void)state;
	assert_int_equal(headroom_fit(10000, 1000, 300), 30);
	assert_int_equal(headroom_fit(1299, 1000, 300), 0);
	assert_int_equal(headroom_fit(1300, 1000, 300), 1);
	assert_int_equal(headroom_fit(500, 1000, 300), 0);
	assert_int_equal(headroom_fit(500, 0, 0), 0);
}

static void promises_to_booting_creates_come_off_the_available_memory(void **state)
{
	(void)state;
	assert_int_equal(headroom_unpromised_mib(10000, 432), 9568);
	assert_int_equal(headroom_unpromised_mib(432, 432), 0);
	assert_int_equal(headroom_unpromised_mib(400, 432), 0); /* never wraps */
	assert_int_equal(headroom_fit(headroom_unpromised_mib(1732, 432), 1000, 300), 1);
}

static void a_file_is_read_and_a_missing_one_fails(void **state)
{
	char path[128];
	struct headroom_sample s;
	struct ember_error *err = NULL;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/meminfo", tmpdir_path);
	assert_int_equal(headroom_read(path, &s, &err), -1);
	assert_non_null(strstr(err->message, path));
	ember_error_free(&err);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(real, f);
	fclose(f);
	assert_int_equal(headroom_read(path, &s, &err), 0);
	assert_int_equal(s.available_mib, 22000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_kernel_meminfo_gives_total_and_available_in_mib),
		cmocka_unit_test(missing_repeated_or_malformed_lines_are_refused),
		cmocka_unit_test(a_last_line_without_newline_counts),
		cmocka_unit_test(the_reserve_is_a_tenth_with_a_floor_unless_configured),
		cmocka_unit_test(a_sandbox_costs_its_ram_plus_the_vmm_and_under_tcg_its_buffer),
		cmocka_unit_test(fit_counts_whole_sandboxes_beyond_the_reserve),
		cmocka_unit_test(promises_to_booting_creates_come_off_the_available_memory),
		cmocka_unit_test(a_file_is_read_and_a_missing_one_fails),
	};

	return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
