/* options.c - ember-vm's flags: the table, --help's text around it. The mechanism is
 * util/opttable. Any bad flag or value gets the usage on stderr, without a message of its own. */
#include "options.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/cleanup.h"
#include "util/opttable.h"

static opt_parser show_help;

#define AT(member) offsetof(struct options, member)
#define FLAG(name_, arg_, parse_, member, help_)                                       \
	{ .name = name_, .arg = arg_, .parse = parse_, .field = AT(member), .help = help_ }
#define STRING(name, arg, member, help) FLAG(name, arg, opt_set_string, member, help)
#define UINT(name_, member, max_, help_)                                                   \
	{ .name = name_, .arg = "N", .parse = opt_set_unsigned, .field = AT(member), .min = 1, \
	  .max = max_, .help = help_ }

static const struct opt_spec option_table[] = {
	STRING("images", "DIR", images_dir,
	       "images directory (default $IMAGES_DIR or /var/lib/emberd/images)"),
	STRING("pack", "NAME", pack, "language pack (default python)"),
	STRING("vmm", "NAME", vmm, "qemu (default) or firecracker"),
	FLAG("accel", "MODE", vmm_opt_set_accel, accel, "auto (default), kvm or tcg"),
	UINT("vcpus", vcpus, 64, "default from the pack"),
	UINT("memory-mib", memory_mib, 65536, "default from the pack"),
	UINT("overlay-mib", overlay_mib, 65536, "writable layer size, default from the pack"),
	UINT("boot-timeout-ms", boot_timeout_ms, 3600000, "default 60000"),
	STRING("run-base", "DIR", run_base,
	       "where the VM's runtime directory is made (default /tmp)"),
	FLAG("keep-dir", NULL, opt_set_true, keep_dir,
	     "keep the runtime directory (console log) afterwards"),
	STRING("template", "DIR", template_dir,
	       "run the script in a clone restored from the template in DIR\n"
	       "(DIR/memory + DIR/state), making the template first if DIR\n"
	       "has none (docs/snapshots.md)"),
	{ .name = "help", .parse = show_help, .help = "print this help and exit" },
	{ .name = "version", .parse = opt_show_version, .key = "ember-vm",
	  .help = "print the version and exit" },
};

static const struct opt_help_layout help_layout = { .column = 23, .min_gap = 2, .long_gap = 2 };

static void usage(FILE *out)
{
	fprintf(out, "usage: ember-vm [options] < script.json\n"
		     "Boots one microVM, runs the requests in the JSON script on stdin, prints JSON "
		     "results.\n"
		     "A developer's tool: its VMM runs unjailed, as the user running ember-vm (root:\n"
		     "no uid of its own, no namespaces; the daemon jails every VMM), and a --template\n"
		     "DIR/memory is an ordinary file its clones could write. Use it on trusted code.\n\n");
	opt_table_print_help(out, option_table, ARRAY_SIZE(option_table), &help_layout);
	fprintf(out,
		"\n"
		"Script: {\"steps\":[{\"exec\":{\"code\":\"print(1)\",\"stdin\":\"...\",\"timeout_ms\":N,\n"
		"          \"output_limit\":N,\"env\":[\"K=V\"]}}, {\"ps\":{}}, {\"ping\":{}}]}\n"
		"Output: {\"boot_ms\":N,\"ready\":{...},\"results\":[...]} (stdout/stderr bytes are text\n"
		"when valid UTF-8, else base64, see *_encoding). Exit status 0 when the VM booted and\n"
		"every step got an answer (whatever the exec's own exit code), 1 otherwise.\n");
}

static enum opt_result show_help(const struct opt_spec *spec, const char *arg, void *o,
				 struct ember_error **err)
{
	(void)spec;
	(void)arg;
	(void)o;
	(void)err;
	usage(stdout);
	return OPT_EXIT;
}

enum options_result options_parse(int argc, char **argv, struct options *o)
{
	const char *images = getenv("IMAGES_DIR");
	struct ember_error *err = NULL;
	enum opt_result r;
	int operands;

	*o = (struct options){ .images_dir = images != NULL ? images : "/var/lib/emberd/images",
			       .pack = "python", .vmm = "qemu", .run_base = "/tmp",
			       .boot_timeout_ms = 60000 };
	r = opt_table_parse(option_table, ARRAY_SIZE(option_table), argc, argv, o, 0, &operands,
			    &err);
	ember_error_free(&err);
	if (r == OPT_EXIT)
		return OPTIONS_EXIT;
	if (r != OPT_OK || operands != argc) {
		usage(stderr);
		return OPTIONS_BAD;
	}
	return OPTIONS_RUN;
}
