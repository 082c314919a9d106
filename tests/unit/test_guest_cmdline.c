/* Unit tests for kernel command line parsing (src/guest/cmdline.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "guest/cmdline.h"
#include "guest/limits.h"

static int parse(const char *text, struct guest_cmdline *opts, struct ember_error **err)
{
	guest_cmdline_defaults(opts);
	return guest_cmdline_parse(text, strlen(text), opts, err);
}

static void defaults_apply_without_emberd_options(void **state)
{
	struct guest_cmdline opts;

	(void)state;
	assert_int_equal(parse("console=ttyS0 panic=-1 reboot=t quiet\n", &opts, NULL), 0);
	assert_int_equal(opts.overlay_mib, GUEST_OVERLAY_MIB_DEFAULT);
	assert_int_equal(parse("", &opts, NULL), 0);
	assert_int_equal(opts.overlay_mib, GUEST_OVERLAY_MIB_DEFAULT);
}

static void overlay_mib_is_read(void **state)
{
	struct guest_cmdline opts;

	(void)state;
	assert_int_equal(parse("console=ttyS0 emberd.overlay_mib=512 quiet\n", &opts, NULL), 0);
	assert_int_equal(opts.overlay_mib, 512);
	assert_int_equal(parse("emberd.overlay_mib=\"64\"", &opts, NULL), 0);
	assert_int_equal(opts.overlay_mib, 64);
	/* The last occurrence wins, as for kernel parameters. */
	assert_int_equal(parse("emberd.overlay_mib=32 emberd.overlay_mib=48", &opts, NULL), 0);
	assert_int_equal(opts.overlay_mib, 48);
}

static void bad_values_keep_the_default_and_report(void **state)
{
	static const char *const bad[] = {
		"emberd.overlay_mib=", "emberd.overlay_mib", "emberd.overlay_mib=abc",
		"emberd.overlay_mib=-5", "emberd.overlay_mib=0128", "emberd.overlay_mib=1",
		"emberd.overlay_mib=99999999999", "emberd.overlay_mib=12m",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ember_error *err = NULL;
		struct guest_cmdline opts;

		if (parse(bad[i], &opts, &err) != -1)
			fail_msg("accepted `%s`", bad[i]);
		assert_non_null(strstr(err->message, "overlay_mib"));
		assert_int_equal(opts.overlay_mib, GUEST_OVERLAY_MIB_DEFAULT);
		ember_error_free(&err);
	}
}

static void unknown_emberd_option_is_reported_but_others_still_apply(void **state)
{
	struct ember_error *err = NULL;
	struct guest_cmdline opts;

	(void)state;
	assert_int_equal(parse("emberd.bogus=1 emberd.overlay_mib=256", &opts, &err), -1);
	assert_non_null(strstr(err->message, "emberd.bogus"));
	assert_int_equal(opts.overlay_mib, 256);
	ember_error_free(&err);
}

static void quoted_values_with_blanks_stay_one_token(void **state)
{
	struct guest_cmdline opts;

	(void)state;
	/* Without quote handling "emberd.overlay_mib=8" would be seen as an option. */
	assert_int_equal(parse("foo=\"a emberd.overlay_mib=8 b\" emberd.overlay_mib=16", &opts, NULL),
			 0);
	assert_int_equal(opts.overlay_mib, 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults_apply_without_emberd_options),
		cmocka_unit_test(overlay_mib_is_read),
		cmocka_unit_test(bad_values_keep_the_default_and_report),
		cmocka_unit_test(unknown_emberd_option_is_reported_but_others_still_apply),
		cmocka_unit_test(quoted_values_with_blanks_stay_one_token),
	};

	return cmocka_run_group_tests_name("guest_cmdline", tests, NULL, NULL);
}
