/* Unit tests for flag tables (src/util/opttable.c): the number, string and bool setters and
 * showers, the getopt_long loop and the sources it marks, and the --help layout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/cleanup.h"
#include "util/opttable.h"

struct target {
	unsigned count;
	uint64_t bytes;
	size_t size;
	const char *name;
	bool on;
	bool snapshots;
	int stops;
};

#define AT(member) offsetof(struct target, member)

static enum opt_result stop_here(const struct opt_spec *spec, const char *arg, void *target,
				 struct ember_error **err)
{
	(void)spec;
	(void)arg;
	(void)err;
	((struct target *)target)->stops++;
	return OPT_EXIT;
}

static const struct opt_spec table[] = {
	{ .help = "Numbers:" },
	{ .name = "count", .arg = "N", .parse = opt_set_unsigned, .field = AT(count), .min = 1,
	  .max = 4096, .help = "how many" },
	{ .name = "bytes", .arg = "N", .parse = opt_set_u64, .field = AT(bytes),
	  .max = UINT64_MAX, .help = "any size" },
	{ .name = "size", .arg = "N", .parse = opt_set_size, .field = AT(size), .min = 1024,
	  .max = 64ull << 20, .help = "a buffer" },
	{ .help = "Other:" },
	{ .name = "name", .arg = "NAME", .parse = opt_set_string, .field = AT(name),
	  .short_name = 'n', .help = "first line\nsecond line" },
	{ .name = "on", .parse = opt_set_true, .field = AT(on), .help = "switch on" },
	{ .name = "no-snapshots", .parse = opt_set_false, .field = AT(snapshots),
	  .help = "switch off" },
	{ .name = "stop", .parse = stop_here, .help = "stops the scan" },
};

/* Runs opt_table_parse over a NULL-terminated list of arguments after a program name. */
static enum opt_result parse(struct target *t, unsigned flags, int *operands,
			     struct ember_error **err, char **args)
{
	char *argv[16] = { "prog" };
	int argc = 1;

	while (args[argc - 1] != NULL)
		argv[argc] = args[argc - 1], argc++;
	return opt_table_parse(table, ARRAY_SIZE(table), argc, argv, t, flags, operands, err);
}

#define PARSE(t, flags, operands, err, ...) \
	parse(t, flags, operands, err, (char *[]){ __VA_ARGS__, NULL })

static void numbers_at_both_ends_of_the_range_are_stored(void **state)
{
	struct target t = { 0 };
	struct ember_error *err = NULL;
	int operands;

	(void)state;
	assert_int_equal(PARSE(&t, 0, &operands, &err, "--count", "1", "--size", "1024",
			       "--bytes", "18446744073709551615"), OPT_OK);
	assert_int_equal(t.count, 1);
	assert_int_equal(t.size, 1024);
	assert_true(t.bytes == UINT64_MAX);
	assert_int_equal(PARSE(&t, 0, &operands, &err, "--count=4096", "--size", "67108864"),
			 OPT_OK);
	assert_int_equal(t.count, 4096);
	assert_int_equal(t.size, 64u << 20);
	assert_null(err);
}

static void numbers_out_of_range_are_refused_with_the_range(void **state)
{
	const char *bad[] = { "0", "4097", "99999999999999999999999" };
	struct ember_error *err = NULL;
	struct target t = { .count = 7 };
	int operands;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(PARSE(&t, 0, &operands, &err, "--count", (char *)bad[i]),
				 OPT_BAD_VALUE);
		assert_non_null(err);
		assert_string_equal(err->message, "--count must be a number between 1 and 4096");
		ember_error_free(&err);
	}
	assert_int_equal(PARSE(&t, 0, &operands, &err, "--size", "1023"), OPT_BAD_VALUE);
	assert_string_equal(err->message, "--size must be a number between 1024 and 67108864");
	ember_error_free(&err);
	assert_int_equal(t.count, 7); /* a refused value leaves the field alone */
}

static void negative_and_garbage_numbers_are_refused(void **state)
{
	const char *bad[] = { "-1", "-0", " -1", "-18446744073709551615", "", "abc", "5x",
			      "0x10", "1.5", "5 " };
	struct ember_error *err = NULL;
	struct target t = { 0 };
	unsigned long long v;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		/* bytes' range is all of uint64_t: only the parser itself can refuse these */
		assert_int_equal(opt_parse_number(&table[2], bad[i], &v, &err), -1);
		assert_string_equal(err->message,
				    "--bytes must be a number between 0 and 18446744073709551615");
		ember_error_free(&err);
		assert_int_equal(opt_set_u64(&table[2], bad[i], &t, &err), OPT_BAD_VALUE);
		ember_error_free(&err);
	}
	assert_true(t.bytes == 0);
}

static void string_and_bool_setters_write_their_fields(void **state)
{
	struct target t = { .snapshots = true };
	struct ember_error *err = NULL;
	int operands;

	(void)state;
	assert_int_equal(PARSE(&t, 0, &operands, &err, "--name", "x", "--on", "--no-snapshots"),
			 OPT_OK);
	assert_string_equal(t.name, "x");
	assert_true(t.on);
	assert_false(t.snapshots);
	assert_int_equal(PARSE(&t, 0, &operands, &err, "-n", "short", "--name=last"), OPT_OK);
	assert_string_equal(t.name, "last");
	assert_int_equal(PARSE(&t, 0, &operands, &err, "--na", "prefix"), OPT_OK);
	assert_string_equal(t.name, "prefix");
}

static void operands_are_moved_to_the_end_unless_in_order(void **state)
{
	struct ember_error *err = NULL;
	struct target t = { 0 };
	char *argv[] = { "prog", "--on", "cmd", "--count", "3", "arg", NULL };
	int operands;

	(void)state;
	assert_int_equal(opt_table_parse(table, ARRAY_SIZE(table), 6, argv, &t, 0, &operands, &err),
			 OPT_OK);
	assert_int_equal(t.count, 3);
	assert_int_equal(operands, 4);
	assert_string_equal(argv[operands], "cmd");
	assert_string_equal(argv[operands + 1], "arg");

	char *argv2[] = { "prog", "--on", "cmd", "--count", "3", NULL };
	t.count = 0;
	assert_int_equal(opt_table_parse(table, ARRAY_SIZE(table), 5, argv2, &t, OPT_IN_ORDER,
					 &operands, &err),
			 OPT_OK);
	assert_int_equal(operands, 2);
	assert_string_equal(argv2[operands], "cmd");
	assert_int_equal(t.count, 0); /* the command's flags are not the table's business */
	assert_int_equal(PARSE(&t, 0, &operands, &err, "--on"), OPT_OK);
	assert_int_equal(operands, 2); /* argc: no operand */
}

static void unknown_flag_and_missing_argument_are_bad_flags(void **state)
{
	struct ember_error *err = NULL;
	struct target t = { 0 };
	int operands;

	(void)state;
	assert_int_equal(PARSE(&t, OPT_QUIET, &operands, &err, "--on", "--bogus", "--count", "2"),
			 OPT_BAD_FLAG);
	assert_non_null(err);
	assert_non_null(strstr(err->message, "--bogus"));
	assert_true(t.on);
	assert_int_equal(t.count, 0); /* the scan stops at the first bad flag */
	ember_error_free(&err);
	assert_int_equal(PARSE(&t, OPT_QUIET, &operands, &err, "--count"), OPT_BAD_FLAG);
	ember_error_free(&err);
	assert_int_equal(PARSE(&t, OPT_QUIET, &operands, &err, "--on=1"), OPT_BAD_FLAG);
	ember_error_free(&err);
	assert_int_equal(PARSE(&t, OPT_QUIET, &operands, &err, "-x"), OPT_BAD_FLAG);
	ember_error_free(&err);
	assert_int_equal(PARSE(&t, OPT_QUIET, &operands, &err, "--Numbers:"), OPT_BAD_FLAG);
	ember_error_free(&err); /* a heading is no flag */
}

static void a_parser_that_finishes_the_job_stops_the_scan(void **state)
{
	struct ember_error *err = NULL;
	struct target t = { 0 };
	int operands;

	(void)state;
	assert_int_equal(PARSE(&t, 0, &operands, &err, "--stop", "--count", "0", "--stop"),
			 OPT_EXIT);
	assert_int_equal(t.stops, 1);
	assert_null(err);
}

static void the_command_lines_flags_are_marked_as_their_source(void **state)
{
	struct opt_source sources[ARRAY_SIZE(table)] = { 0 };
	char *argv[] = { "prog", "--count", "3", "--on", NULL };
	struct ember_error *err = NULL;
	struct target t = { 0 };
	int operands;

	(void)state;
	assert_int_equal(opt_table_parse_sourced(table, ARRAY_SIZE(table), 4, argv, &t, 0,
						 &operands, sources, &err), OPT_OK);
	assert_int_equal(sources[1].from, OPT_FROM_FLAG);
	assert_int_equal(sources[2].from, OPT_FROM_DEFAULT);
	assert_int_equal(sources[6].from, OPT_FROM_FLAG);
	assert_ptr_equal(opt_table_find(table, ARRAY_SIZE(table), "on"), &table[6]);
	assert_null(opt_table_find(table, ARRAY_SIZE(table), "Other:"));
	assert_null(opt_table_find(table, ARRAY_SIZE(table), "o"));
}

static void showers_print_what_the_setters_take(void **state)
{
	struct target t = { .count = 5, .bytes = 18446744073709551615ull, .size = 0,
			    .name = "x y", .on = true, .snapshots = true };
	char buf[64];

	(void)state;
	assert_true(opt_show_unsigned(&table[1], &t, 0, buf, sizeof(buf)));
	assert_string_equal(buf, "5");
	assert_false(opt_show_unsigned(&table[1], &t, 1, buf, sizeof(buf)));
	assert_true(opt_show_u64(&table[2], &t, 0, buf, sizeof(buf)));
	assert_string_equal(buf, "18446744073709551615");
	assert_false(opt_show_size(&table[3], &t, 0, buf, sizeof(buf))); /* 0 < min: not set */
	assert_true(opt_show_string(&table[5], &t, 0, buf, sizeof(buf)));
	assert_string_equal(buf, "x y");
	t.name = NULL;
	assert_false(opt_show_string(&table[5], &t, 0, buf, sizeof(buf)));
	assert_true(opt_show_true(&table[6], &t, 0, buf, sizeof(buf)));
	assert_string_equal(buf, "true");
	assert_true(opt_show_false(&table[7], &t, 0, buf, sizeof(buf)));
	assert_string_equal(buf, "false");
}

static char *capture_help(const struct opt_spec *specs, size_t n,
			  const struct opt_help_layout *layout)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	assert_non_null(out);
	opt_table_print_help(out, specs, n, layout);
	fclose(out);
	return text;
}

static void help_aligns_text_with_headings_and_continuation_lines(void **state)
{
	const struct opt_help_layout layout = { .column = 20, .min_gap = 1, .long_gap = 3 };
	_cleanup_free_ char *text = capture_help(table, ARRAY_SIZE(table), &layout);

	(void)state;
	assert_string_equal(text, "Numbers:\n"
				  "  --count N         how many\n"
				  "  --bytes N         any size\n"
				  "  --size N          a buffer\n"
				  "Other:\n"
				  "  --name NAME, -n   first line\n"
				  "                    second line\n"
				  "  --on              switch on\n"
				  "  --no-snapshots    switch off\n"
				  "  --stop            stops the scan\n");
}

static void help_gives_a_long_flag_a_gap_or_the_next_line(void **state)
{
	const struct opt_spec longer[] = {
		{ .name = "just-fits", .arg = "N", .help = "a" },    /* 2+11+2 = 15 columns */
		{ .name = "too-long-by-1", .arg = "N", .help = "b\nc" },
	};
	const struct opt_help_layout gap = { .column = 16, .min_gap = 1, .long_gap = 3 };
	const struct opt_help_layout next_line = { .column = 16, .min_gap = 1, .long_gap = 0 };
	_cleanup_free_ char *with_gap = capture_help(longer, 2, &gap);
	_cleanup_free_ char *with_line = capture_help(longer, 2, &next_line);

	(void)state;
	assert_string_equal(with_gap, "  --just-fits N a\n"
				      "  --too-long-by-1 N   b\n"
				      "                c\n");
	assert_string_equal(with_line, "  --just-fits N a\n"
				       "  --too-long-by-1 N\n"
				       "                b\n"
				       "                c\n");
}

static void synopsis_shows_argument_and_repetition(void **state)
{
	const struct opt_spec env = { .name = "env", .arg = "K=V", .repeats = true };
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	int used;

	(void)state;
	used = opt_print_synopsis(out, &env);
	used += opt_print_synopsis(out, &table[6]);
	fclose(out);
	assert_string_equal(text, " [--env K=V]... [--on]");
	assert_int_equal(used, (int)strlen(text));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(numbers_at_both_ends_of_the_range_are_stored),
		cmocka_unit_test(numbers_out_of_range_are_refused_with_the_range),
		cmocka_unit_test(negative_and_garbage_numbers_are_refused),
		cmocka_unit_test(string_and_bool_setters_write_their_fields),
		cmocka_unit_test(operands_are_moved_to_the_end_unless_in_order),
		cmocka_unit_test(unknown_flag_and_missing_argument_are_bad_flags),
		cmocka_unit_test(a_parser_that_finishes_the_job_stops_the_scan),
		cmocka_unit_test(the_command_lines_flags_are_marked_as_their_source),
		cmocka_unit_test(showers_print_what_the_setters_take),
		cmocka_unit_test(help_aligns_text_with_headings_and_continuation_lines),
		cmocka_unit_test(help_gives_a_long_flag_a_gap_or_the_next_line),
		cmocka_unit_test(synopsis_shows_argument_and_repetition),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
