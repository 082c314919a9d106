/* options.c - ember-vm's flags: the table, its parsers, and --help generated from it. */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"

struct option_spec;
typedef enum options_result option_parser(const struct option_spec *spec, const char *arg,
					  struct options *o);

struct option_spec {
	const char *name;
	const char *arg;          /* --help's placeholder; NULL: the flag takes no argument */
	option_parser *parse;
	size_t field;             /* offsetof(struct options, ...) that parse writes */
	unsigned long max;        /* numbers only (the minimum is 1) */
	const char *help;         /* '\n' starts a continuation line */
};

#define FIELD(o, spec, type) ((type *)(void *)((char *)(o) + (spec)->field))
#define AT(member) offsetof(struct options, member)

static enum options_result set_unsigned(const struct option_spec *spec, const char *arg,
					struct options *o)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno != 0 || *end != '\0' || end == arg || v == 0 || v > spec->max)
		return OPTIONS_BAD;
	*FIELD(o, spec, unsigned) = (unsigned)v;
	return OPTIONS_RUN;
}

static enum options_result set_string(const struct option_spec *spec, const char *arg,
				      struct options *o)
{
	*FIELD(o, spec, const char *) = arg;
	return OPTIONS_RUN;
}

static enum options_result set_true(const struct option_spec *spec, const char *arg,
				    struct options *o)
{
	(void)arg;
	*FIELD(o, spec, bool) = true;
	return OPTIONS_RUN;
}

static enum options_result set_accel(const struct option_spec *spec, const char *arg,
				     struct options *o)
{
	return vmm_parse_accel(arg, FIELD(o, spec, enum vmm_accel)) < 0 ? OPTIONS_BAD
									 : OPTIONS_RUN;
}

static enum options_result show_help(const struct option_spec *spec, const char *arg,
				     struct options *o);

static enum options_result show_version(const struct option_spec *spec, const char *arg,
					struct options *o)
{
	(void)spec;
	(void)arg;
	(void)o;
	printf("ember-vm %s\n", EMBER_VERSION);
	return OPTIONS_EXIT;
}

#define STRING(name, arg, member, help) { name, arg, set_string, AT(member), 0, help }
#define UINT(name, member, max, help) { name, "N", set_unsigned, AT(member), max, help }

static const struct option_spec option_table[] = {
	STRING("images", "DIR", images_dir,
	       "images directory (default $IMAGES_DIR or /var/lib/emberd/images)"),
	STRING("pack", "NAME", pack, "language pack (default python)"),
	STRING("vmm", "NAME", vmm, "qemu (default) or firecracker"),
	{ "accel", "MODE", set_accel, AT(accel), 0, "auto (default), kvm or tcg" },
	UINT("vcpus", vcpus, 64, "default from the pack"),
	UINT("memory-mib", memory_mib, 65536, "default from the pack"),
	UINT("overlay-mib", overlay_mib, 65536, "writable layer size, default from the pack"),
	UINT("boot-timeout-ms", boot_timeout_ms, 3600000, "default 60000"),
	STRING("run-base", "DIR", run_base,
	       "where the VM's runtime directory is made (default /tmp)"),
	{ "keep-dir", NULL, set_true, AT(keep_dir), 0,
	  "keep the runtime directory (console log) afterwards" },
	STRING("template", "DIR", template_dir,
	       "run the script in a clone restored from the template in DIR\n"
	       "(DIR/memory + DIR/state), making the template first if DIR\n"
	       "has none (docs/snapshots.md)"),
	{ "help", NULL, show_help, 0, 0, "print this help and exit" },
	{ "version", NULL, show_version, 0, 0, "print the version and exit" },
};

#define HELP_COLUMN 23

static void print_help_row(FILE *out, const struct option_spec *spec)
{
	const char *line = spec->help, *nl;
	int used;

	used = fprintf(out, "  --%s%s%s", spec->name, spec->arg != NULL ? " " : "",
		       spec->arg != NULL ? spec->arg : "");
	fprintf(out, "%*s", used < HELP_COLUMN - 1 ? HELP_COLUMN - used : 2, "");
	while ((nl = strchr(line, '\n')) != NULL) {
		fprintf(out, "%.*s\n%*s", (int)(nl - line), line, HELP_COLUMN, "");
		line = nl + 1;
	}
	fprintf(out, "%s\n", line);
}

static void usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: ember-vm [options] < script.json\n"
		     "Boots one microVM, runs the requests in the JSON script on stdin, prints JSON "
		     "results.\n\n");
	for (i = 0; i < ARRAY_SIZE(option_table); i++)
		print_help_row(out, &option_table[i]);
	fprintf(out,
		"\n"
		"Script: {\"steps\":[{\"exec\":{\"code\":\"print(1)\",\"stdin\":\"...\",\"timeout_ms\":N,\n"
		"          \"output_limit\":N,\"env\":[\"K=V\"]}}, {\"ps\":{}}, {\"ping\":{}}]}\n"
		"Output: {\"boot_ms\":N,\"ready\":{...},\"results\":[...]} (stdout/stderr bytes are text\n"
		"when valid UTF-8, else base64, see *_encoding). Exit status 0 when the VM booted and\n"
		"every step got an answer (whatever the exec's own exit code), 1 otherwise.\n");
}

static enum options_result show_help(const struct option_spec *spec, const char *arg,
				     struct options *o)
{
	(void)spec;
	(void)arg;
	(void)o;
	usage(stdout);
	return OPTIONS_EXIT;
}

/* getopt_long's view of the table: val is 256 + the row, clear of every short option. */
static void build_longopts(struct option *longopts)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(option_table); i++)
		longopts[i] = (struct option){ option_table[i].name,
					       option_table[i].arg != NULL ? required_argument
									   : no_argument,
					       NULL, 256 + (int)i };
	longopts[i] = (struct option){ 0 };
}

enum options_result options_parse(int argc, char **argv, struct options *o)
{
	struct option longopts[ARRAY_SIZE(option_table) + 1];
	const char *images = getenv("IMAGES_DIR");
	enum options_result r = OPTIONS_RUN;
	int c;

	*o = (struct options){ .images_dir = images != NULL ? images : "/var/lib/emberd/images",
			       .pack = "python", .vmm = "qemu", .run_base = "/tmp",
			       .boot_timeout_ms = 60000 };
	build_longopts(longopts);
	while (r == OPTIONS_RUN && (c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c < 256 || c >= 256 + (int)ARRAY_SIZE(option_table))
			r = OPTIONS_BAD;
		else
			r = option_table[c - 256].parse(&option_table[c - 256], optarg, o);
	}
	if (r == OPTIONS_RUN && optind != argc)
		r = OPTIONS_BAD;
	if (r == OPTIONS_BAD)
		usage(stderr);
	return r;
}
