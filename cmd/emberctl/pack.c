/* pack.c - emberctl pack: the flags' shape, then rootfs/lib/packctl.py (interface: pack.h).
 * The flags are checked here (numbers within the catalog's bounds, operands, --oci given) so a
 * typo fails before a multi-second import starts; the script re-checks everything it uses. */
#include "pack.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/opttable.h"

/* The script's argv: python3, script, subcommand, NAME and each flag with its value (a flag
 * is given at most twice a row but --interpreter, which the catalog bounds to 16 words). */
#define PACK_ARGV_MAX 80
#define PACK_SCRIPT "rootfs/lib/packctl.py"
/* The daemon probe after an import: it is a hint, not worth a long wait. */
#define PACK_PROBE_TIMEOUT_MS 2000

struct pack_args {
	const char *argv[PACK_ARGV_MAX + 1];
	int argc;
	bool have_oci;
};

struct pack_subcommand {
	const char *name;
	const char *operands;
	int noperands;
	const struct opt_spec *flags;
	size_t nflags;
	bool changes_catalog;
	const char *help;
};

static enum opt_result pass_on(const struct opt_spec *spec, const char *arg, void *target,
			       struct ember_error **err)
{
	struct pack_args *a = target;
	unsigned long long v;

	if (spec->max != 0 && opt_parse_number(spec, arg, &v, err) < 0)
		return OPT_BAD_VALUE;
	if (a->argc + 2 > PACK_ARGV_MAX) {
		ember_error_set(err, EMBER_E_INVALID, 0, "too many flags (at most %d words)",
				PACK_ARGV_MAX);
		return OPT_BAD_VALUE;
	}
	if (strcmp(spec->name, "oci") == 0)
		a->have_oci = true;
	a->argv[a->argc++] = spec->key;
	if (arg != NULL)
		a->argv[a->argc++] = arg;
	return OPT_OK;
}

static opt_parser show_pack_help;

#define PASS(name_, arg_, help_) \
	{ .name = name_, .arg = arg_, .parse = pass_on, .key = "--" name_, .help = help_ }
#define NUMBER(name_, min_, max_, help_)                                                     \
	{ .name = name_, .arg = "N", .parse = pass_on, .key = "--" name_, .min = min_,        \
	  .max = max_, .help = help_ }
#define HELP_ROW { .name = "help", .short_name = 'h', .parse = show_pack_help, \
		   .help = "print this help and exit" }
#define IMAGES_ROW PASS("images", "DIR", "images directory (default $IMAGES_DIR or\n" \
					 "/var/lib/emberd/images)")

/* The numbers' bounds are the catalog's (rootfs/lib/manifest.py DEFAULT_BOUNDS). */
static const struct opt_spec import_flags[] = {
	PASS("oci", "PATH", "OCI layout dir (PATH or PATH:TAG) or a\n"
			    "docker/podman save tarball (required)"),
	{ .name = "interpreter", .arg = "ARG", .parse = pass_on, .key = "--interpreter",
	  .repeats = true,
	  .help = "interpreter argv, one word per flag (default:\n"
		  "the image's Entrypoint+Cmd); the code's file\n"
		  "is appended (or the code: --code argument)" },
	PASS("code", "MODE", "how code reaches the interpreter: `file`\n"
			     "(default: the path of a file holding it) or\n"
			     "`argument` (the code itself, for -c/-e argv)"),
	PASS("description", "TEXT", "one line for GET /packs"),
	NUMBER("memory-mib", 64, 65536, "guest memory; these five are the pack's\n"
					   "defaults (unset: the shell pack's)"),
	NUMBER("vcpus", 1, 64, "virtual CPUs"),
	NUMBER("overlay-mib", 1, 65536, "writable layer"),
	NUMBER("exec-timeout-ms", 1, 3600000, "an exec's timeout"),
	NUMBER("output-limit-bytes", 1, 1073741824, "an exec's output limit"),
	PASS("smoke-code", "CODE", "the smoke test run in a VM before publishing\n"
				   "(default: `echo ok` for shells, print/\n"
				   "console.log for python/node)"),
	PASS("smoke-stdout", "TEXT", "its exact expected stdout"),
	NUMBER("max-unpacked-mib", 1, 1048576, "refuse larger images (default 4096)"),
	NUMBER("max-members", 1, 100000000, "refuse images with more entries (default\n"
					    "500000)"),
	IMAGES_ROW,
	PASS("replace", NULL, "replace an existing user pack of that name"),
	HELP_ROW,
};

static const struct opt_spec images_flags[] = { IMAGES_ROW, HELP_ROW };

#define FLAGS(table) table, sizeof(table) / sizeof((table)[0])

static const struct pack_subcommand subcommands[] = {
	{ "import", "NAME", 1, FLAGS(import_flags), true,
	  "check the image's layers, unpack them, add emberd's\n"
	  "guest pieces, build the squashfs, smoke-test it in a\n"
	  "VM, then publish it in packs.json (docs/packs.md)" },
	{ "list", "", 0, FLAGS(images_flags), false, "the imported packs" },
	{ "remove", "NAME", 1, FLAGS(images_flags), true, "take an imported pack out of packs.json" },
};

static const struct opt_help_layout pack_layout = { .column = 31, .min_gap = 2, .long_gap = 0 };

static void pack_usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: emberctl pack import NAME --oci PATH [flags]\n"
		     "       emberctl pack list [--images DIR]\n"
		     "       emberctl pack remove NAME [--images DIR]\n"
		     "User packs from OCI images; run as root on the daemon's host.\n\n");
	for (i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
		int used = fprintf(out, "  %s%s%s", subcommands[i].name,
				   subcommands[i].operands[0] != '\0' ? " " : "",
				   subcommands[i].operands);

		opt_print_help_text(out, used, subcommands[i].help, &pack_layout);
	}
	fprintf(out, "\nimport's flags:\n");
	opt_table_print_help(out, import_flags, sizeof(import_flags) / sizeof(import_flags[0]),
			     &pack_layout);
	fprintf(out, "\nAfter an import or remove, a running emberd keeps the catalog it read until\n"
		     "it reloads it (or restarts).\n");
}

static enum opt_result show_pack_help(const struct opt_spec *spec, const char *arg, void *target,
				      struct ember_error **err)
{
	(void)spec;
	(void)arg;
	(void)target;
	(void)err;
	pack_usage(stdout);
	return OPT_EXIT;
}

/* $EMBER_LIBEXEC/rootfs/lib/packctl.py, else the one beside this binary's bin/. */
static char *find_script(void)
{
	const char *libexec = getenv("EMBER_LIBEXEC");
	char self[PATH_MAX];
	char *path = NULL;
	ssize_t n;

	if (libexec != NULL && libexec[0] != '\0') {
		if (asprintf(&path, "%s/%s", libexec, PACK_SCRIPT) < 0)
			return NULL;
	} else {
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n < 0)
			return NULL;
		self[n] = '\0';
		if (asprintf(&path, "%s/../%s", dirname(self), PACK_SCRIPT) < 0)
			return NULL;
	}
	return path;
}

static int run_script(struct pack_args *a)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return ctl_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		execvp(a->argv[0], (char *const *)a->argv);
		fprintf(stderr, "emberctl: run %s: %s\n", a->argv[0], strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return ctl_fail("waitpid: %s", strerror(errno));
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/* Only a hint: a daemon that answers has the old catalog until it reloads. */
static void reload_hint(struct ctl *c)
{
	struct ember_error *err = NULL;
	json_t *reply = NULL;
	long status = 0;

	if (http_client_request(c->http, "GET", "/healthz", NULL, PACK_PROBE_TIMEOUT_MS, &status,
				&reply, &err) < 0) {
		ember_error_free(&err);
		return;
	}
	json_decref(reply);
	if (status == 200)
		fprintf(stderr, "emberctl: emberd answers on %s and still serves the catalog it "
			"read; make it reload: emberctl reload (POST /packs/reload), or SIGHUP\n",
			c->addr);
}

static const struct pack_subcommand *find_subcommand(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
		if (strcmp(subcommands[i].name, name) == 0)
			return &subcommands[i];
	}
	return NULL;
}

int cmd_pack(struct ctl *c, int argc, char **argv)
{
	const struct pack_subcommand *sub;
	struct pack_args a = { .argc = 0 };
	struct ember_error *err = NULL;
	_cleanup_free_ char *script = NULL;
	int operands, ret;

	if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
		pack_usage(stdout);
		return 0;
	}
	sub = argc >= 1 ? find_subcommand(argv[0]) : NULL;
	if (sub == NULL) {
		pack_usage(stderr);
		return 2;
	}
	script = find_script();
	if (script == NULL)
		return ctl_fail("cannot locate %s (set EMBER_LIBEXEC to the checkout)", PACK_SCRIPT);
	a.argv[a.argc++] = "python3";
	a.argv[a.argc++] = script;
	a.argv[a.argc++] = sub->name;
	switch (opt_table_parse(sub->flags, sub->nflags, argc, argv, &a, 0, &operands, &err)) {
	case OPT_OK:
		break;
	case OPT_EXIT:
		return 0;
	case OPT_BAD_VALUE:
		fprintf(stderr, "emberctl: pack %s: %s\n", sub->name, err->message);
		ember_error_free(&err);
		return 2;
	case OPT_BAD_FLAG:
		ember_error_free(&err);
		fprintf(stderr, "see: emberctl pack --help\n");
		return 2;
	}
	if (argc - operands != sub->noperands) {
		fprintf(stderr, "emberctl: pack %s takes %s (see emberctl pack --help)\n", sub->name,
			sub->noperands != 0 ? sub->operands : "no operands");
		return 2;
	}
	if (sub == &subcommands[0] && !a.have_oci) {
		fprintf(stderr, "emberctl: pack import needs --oci PATH\n");
		return 2;
	}
	if (access(script, R_OK) != 0)
		return ctl_fail("cannot read %s (set EMBER_LIBEXEC to the directory holding "
				"rootfs/)", script);
	if (sub->noperands != 0) {
		/* "--" so that a NAME starting with "-" reaches the script's own check as a name */
		a.argv[a.argc++] = "--";
		a.argv[a.argc++] = argv[operands];
	}
	ret = run_script(&a);
	if (ret == 0 && sub->changes_catalog)
		reload_hint(c);
	return ret;
}
