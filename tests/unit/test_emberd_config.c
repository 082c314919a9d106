/* Unit tests for emberd's config file (cmd/emberd/config.c) through emberd's own option table
 * (cmd/emberd/options.c): values go through the flags' parsers, errors name the line and the
 * key, the command line's flags are checked but not applied, the bounds, the file's trust
 * checks and --print-config's listing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "../../cmd/emberd/config.h"
#include "../../cmd/emberd/options.h"
#include "tmpdir.h"
#include "util/cleanup.h"

/* Loads text into o with emberd's table; returns the error message or NULL (static buffer). */
static const char *load(struct options *o, const char *text)
{
	static char message[1024];
	struct ember_error *err = NULL;

	if (options_load_config_text(o, text, strlen(text), &err) == 0)
		return NULL;
	snprintf(message, sizeof(message), "%s", err->message);
	ember_error_free(&err);
	return message;
}

static void every_kind_of_value_reaches_its_field(void **state)
{
	struct options o;

	(void)state;
	assert_null(load(&o, "# a comment\n; another\n\n"
			     "max-sandboxes = 8\n"
			     "max-output-bytes = 1024\n"
			     "max-body-bytes = 2048\n"
			     "vmm = qemu\n"
			     "accel = tcg\n"
			     "log-level = debug\n"
			     "prewarm = true\n"
			     "no-snapshots = true\n"
			     "keep-sandboxes = false\n"
			     "allow-origin = http://a\n"
			     "allow-origin = http://b ; an inline comment\n"
			     "unix = /tmp/x.sock\n"));
	assert_int_equal(o.manager.max_sandboxes, 8);
	assert_int_equal(o.manager.max_output_bytes, 1024);
	assert_int_equal(o.api.max_body_bytes, 2048);
	assert_string_equal(o.vmm, "qemu");
	assert_int_equal(o.accel, VMM_ACCEL_TCG);
	assert_int_equal(o.log_level, LOG_DEBUG);
	assert_true(o.manager.prewarm);
	assert_false(o.manager.snapshots);
	assert_false(o.keep_sandboxes);
	assert_int_equal(o.api.nallow_origins, 2);
	assert_string_equal(o.api.allow_origins[0], "http://a");
	assert_string_equal(o.api.allow_origins[1], "http://b");
	assert_string_equal(o.api.unix_path, "/tmp/x.sock");
	options_release(&o);
}

static void a_bad_value_gives_the_line_the_key_and_the_flags_message(void **state)
{
	struct options o;

	(void)state;
	assert_string_equal(load(&o, "max-vcpus = 2\n\nmax-sandboxes = 0\n"),
			    "config:3: max-sandboxes: --max-sandboxes must be a number between 1 "
			    "and 4096");
	options_release(&o);
	assert_string_equal(load(&o, "vmm = bhyve\n"),
			    "config:1: vmm: --vmm must be auto, qemu or firecracker");
	options_release(&o);
	assert_string_equal(load(&o, "prewarm = yes\n"),
			    "config:1: prewarm: must be true or false (got `yes`)");
	options_release(&o);
}

static void unknown_and_command_line_only_keys_are_refused(void **state)
{
	struct options o;

	(void)state;
	assert_string_equal(load(&o, "max-vcpus = 2\nmax-sandbox = 3\n"),
			    "config:2: unknown key `max-sandbox`");
	options_release(&o);
	assert_string_equal(load(&o, "config = /etc/other.conf\n"),
			    "config:1: `config` is a command-line flag only, not a config key");
	options_release(&o);
	assert_string_equal(load(&o, "print-config = true\n"),
			    "config:1: `print-config` is a command-line flag only, not a config "
			    "key");
	options_release(&o);
	assert_string_equal(load(&o, "help = true\n"),
			    "config:1: `help` is a command-line flag only, not a config key");
	options_release(&o);
}

static void only_repeatable_keys_may_repeat(void **state)
{
	struct options o;

	(void)state;
	assert_string_equal(load(&o, "pool-size = 2\nvmm = qemu\npool-size = 3\n"),
			    "config:3: `pool-size` is already set on line 1");
	options_release(&o);
}

static void what_libinih_would_misread_is_refused(void **state)
{
	struct options o;
	char text[CONFIG_MAX_LINE + 32];

	(void)state;
	assert_string_equal(load(&o, "prewarm = true\n  pool-size = 2\n"),
			    "config:2: a key must start its line (no blanks before it; values do "
			    "not continue on the next line)");
	options_release(&o);
	assert_string_equal(load(&o, "[emberd]\npool-size = 2\n"),
			    "config:2: key `pool-size` is in section [emberd]: emberd's config has "
			    "no sections");
	options_release(&o);
	assert_string_equal(load(&o, "pool-size 2\nprewarm = true\n"),
			    "config:1: expected `key = value` (or a # comment)");
	options_release(&o);
	assert_string_equal(load(&o, "unix =\n"), "config:1: `unix` has no value");
	options_release(&o);
	/* A line of exactly the limit is read whole; one more character is refused. */
	snprintf(text, sizeof(text), "unix = %0*d\n", CONFIG_MAX_LINE - 7, 0);
	assert_null(load(&o, text));
	assert_int_equal(strlen(o.api.unix_path), CONFIG_MAX_LINE - 7);
	options_release(&o);
	snprintf(text, sizeof(text), "unix = %0*d\n", CONFIG_MAX_LINE - 6, 0);
	assert_string_equal(load(&o, text), "config:1: line of 199 characters: at most 198");
	options_release(&o);
	assert_int_equal(options_load_config_text(&o, "prewarm = true\0\n", 16, NULL), -1);
	options_release(&o);
}

static void blanks_comments_crlf_and_a_bom_are_fine(void **state)
{
	struct options o;

	(void)state;
	assert_null(load(&o, "\xef\xbb\xbfpool-size = 2\r\n   # indented comment\n\t\n"
			     "max-vcpus: 3\r\n"));
	assert_int_equal(o.manager.pool_size, 2);
	assert_int_equal(o.manager.max_vcpus, 3);
	options_release(&o);
}

/* A two-row table of our own, to see sources and the command line's precedence. */
struct small {
	unsigned count;
	const char *names[4];
	unsigned nnames;
	unsigned ntags;
};

static enum opt_result add_tag(const struct opt_spec *spec, const char *arg, void *target,
			       struct ember_error **err)
{
	(void)spec;
	(void)arg;
	(void)err;
	((struct small *)target)->ntags++;
	return OPT_OK;
}

static enum opt_result add_name(const struct opt_spec *spec, const char *arg, void *target,
				struct ember_error **err)
{
	struct small *s = target;

	(void)spec;
	if (s->nnames == 4)
		return ember_error_set(err, EMBER_E_INVALID, 0, "full"), OPT_BAD_VALUE;
	s->names[s->nnames++] = arg;
	return OPT_OK;
}

static const struct opt_spec small_table[] = {
	{ .name = "count", .arg = "N", .parse = opt_set_unsigned, .show = opt_show_unsigned,
	  .field = offsetof(struct small, count), .min = 1, .max = 9 },
	{ .name = "name", .arg = "NAME", .parse = add_name, .repeats = true },
	{ .name = "tag", .arg = "TAG", .parse = add_tag, .repeats = true },
};

static void more_keys_than_the_bound_are_refused(void **state)
{
	size_t size = (CONFIG_MAX_KEYS + 1) * 16, used = 0, i;
	_cleanup_free_ char *text = malloc(size);
	struct opt_source sources[3] = { 0 };
	struct config_file cf = { 0 };
	struct small s = { 0 }, scratch = { 0 };
	struct ember_error *err = NULL;

	(void)state;
	assert_non_null(text);
	for (i = 0; i <= CONFIG_MAX_KEYS; i++)
		used += (size_t)snprintf(text + used, size - used, "tag = %zu\n", i);
	assert_int_equal(config_load_text(&cf, "f", text, used, small_table, 3, &s, &scratch,
					  sources, &err), -1);
	assert_string_equal(err->message, "f:257: more than 256 keys");
	assert_int_equal(s.ntags, CONFIG_MAX_KEYS);
	ember_error_free(&err);
	config_release(&cf);
}

static void flags_from_the_command_line_are_checked_but_not_applied(void **state)
{
	struct opt_source sources[3] = { [1] = { .from = OPT_FROM_FLAG } };
	struct config_file cf = { 0 };
	struct small s = { 0 }, scratch = { 0 };
	struct ember_error *err = NULL;
	const char *text = "count = 3\nname = a\nname = b\n";

	(void)state;
	assert_int_equal(config_load_text(&cf, "f", text, strlen(text), small_table, 3, &s,
					  &scratch, sources, &err), 0);
	assert_int_equal(s.count, 3);
	assert_int_equal(s.nnames, 0);
	assert_int_equal(scratch.nnames, 2);
	assert_int_equal(sources[0].from, OPT_FROM_FILE);
	assert_int_equal(sources[0].line, 1);
	assert_int_equal(sources[1].from, OPT_FROM_FLAG);
	config_release(&cf);
	text = "name = a\nname = b\nname = c\nname = d\nname = e\n";
	sources[1].from = OPT_FROM_FLAG;
	assert_int_equal(config_load_text(&cf, "f", text, strlen(text), small_table, 3, &s,
					  &scratch, sources, &err), -1);
	assert_string_equal(err->message, "f:3: name: full");
	ember_error_free(&err);
	config_release(&cf);
}

static void write_file(const char *name, const char *text, mode_t mode, char *path, size_t size)
{
	FILE *f;

	snprintf(path, size, "%s/%s", tmpdir_path, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void files_are_read_only_when_nobody_else_can_write_them(void **state)
{
	struct opt_source sources[3] = { 0 };
	struct config_file cf = { 0 };
	struct small s = { 0 }, scratch = { 0 };
	struct ember_error *err = NULL;
	char path[512];

	(void)state;
	snprintf(path, sizeof(path), "%s/missing.conf", tmpdir_path);
	assert_int_equal(config_load(&cf, path, false, small_table, 3, &s, &scratch, sources,
				     &err), 0);
	assert_null(cf.path);
	assert_int_equal(config_load(&cf, path, true, small_table, 3, &s, &scratch, sources,
				     &err), -1);
	assert_non_null(strstr(err->message, "No such file"));
	ember_error_free(&err);
	write_file("open.conf", "count = 2\n", 0664, path, sizeof(path));
	assert_int_equal(config_load(&cf, path, true, small_table, 3, &s, &scratch, sources,
				     &err), -1);
	assert_non_null(strstr(err->message, "writable by group or others (mode 0664)"));
	ember_error_free(&err);
	write_file("good.conf", "count = 2\n", 0644, path, sizeof(path));
	assert_int_equal(config_load(&cf, path, true, small_table, 3, &s, &scratch, sources,
				     &err), 0);
	assert_string_equal(cf.path, path);
	assert_int_equal(s.count, 2);
	config_release(&cf);
}

static void print_shows_every_value_and_its_source(void **state)
{
	struct opt_source sources[3] = { { .from = OPT_FROM_FILE, .line = 7 } };
	struct small s = { .count = 3 };
	static const struct opt_spec table[] = {
		{ .name = "count", .arg = "N", .parse = opt_set_unsigned, .show = opt_show_unsigned,
		  .field = offsetof(struct small, count), .min = 1, .max = 9 },
		{ .name = "other", .arg = "N", .parse = opt_set_unsigned, .show = opt_show_unsigned,
		  .field = offsetof(struct small, nnames), .min = 1, .max = 9 },
		{ .name = "config", .arg = "FILE", .parse = opt_set_string, .cli_only = true },
	};
	char path[] = "/etc/x.conf";
	struct config_file cf = { .path = path };
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	(void)state;
	assert_non_null(f);
	config_print(f, table, ARRAY_SIZE(table), &s, sources, &cf);
	fclose(f);
	assert_non_null(strstr(out, "config file: /etc/x.conf\n"));
	assert_non_null(strstr(out, "\ncount = 3                               ; /etc/x.conf:7\n"));
	assert_non_null(strstr(out, "\n# other = (not set)                     ; default\n"));
	assert_null(strstr(out, "config ="));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_kind_of_value_reaches_its_field),
		cmocka_unit_test(a_bad_value_gives_the_line_the_key_and_the_flags_message),
		cmocka_unit_test(unknown_and_command_line_only_keys_are_refused),
		cmocka_unit_test(only_repeatable_keys_may_repeat),
		cmocka_unit_test(what_libinih_would_misread_is_refused),
		cmocka_unit_test(blanks_comments_crlf_and_a_bom_are_fine),
		cmocka_unit_test(more_keys_than_the_bound_are_refused),
		cmocka_unit_test(flags_from_the_command_line_are_checked_but_not_applied),
		cmocka_unit_test(files_are_read_only_when_nobody_else_can_write_them),
		cmocka_unit_test(print_shows_every_value_and_its_source),
	};

	return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
