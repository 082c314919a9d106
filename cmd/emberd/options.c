/* options.c - emberd's flags: the table, its parsers, and --help generated from it. */
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
	const char *name;             /* NULL: a --help section heading (help is its title) */
	const char *arg;              /* --help's placeholder; NULL: the flag takes no argument */
	option_parser *parse;
	size_t field;                 /* offsetof(struct options, ...) that parse writes */
	unsigned long long min, max;  /* numbers only */
	const char *help;             /* '\n' starts a continuation line */
};

#define FIELD(o, spec, type) ((type *)(void *)((char *)(o) + (spec)->field))
#define AT(member) offsetof(struct options, member)

static enum options_result number(const struct option_spec *spec, const char *arg,
				  unsigned long long *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || arg[0] == '-' || v < spec->min ||
	    v > spec->max) {
		fprintf(stderr, "emberd: --%s must be a number between %llu and %llu\n",
			spec->name, spec->min, spec->max);
		return OPTIONS_BAD;
	}
	*out = v;
	return OPTIONS_RUN;
}

static enum options_result set_unsigned(const struct option_spec *spec, const char *arg,
					struct options *o)
{
	unsigned long long v;

	if (number(spec, arg, &v) < 0)
		return OPTIONS_BAD;
	*FIELD(o, spec, unsigned) = (unsigned)v;
	return OPTIONS_RUN;
}

static enum options_result set_u64(const struct option_spec *spec, const char *arg,
				   struct options *o)
{
	unsigned long long v;

	if (number(spec, arg, &v) < 0)
		return OPTIONS_BAD;
	*FIELD(o, spec, uint64_t) = v;
	return OPTIONS_RUN;
}

static enum options_result set_size(const struct option_spec *spec, const char *arg,
				    struct options *o)
{
	unsigned long long v;

	if (number(spec, arg, &v) < 0)
		return OPTIONS_BAD;
	*FIELD(o, spec, size_t) = (size_t)v;
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

static enum options_result set_false(const struct option_spec *spec, const char *arg,
				     struct options *o)
{
	(void)arg;
	*FIELD(o, spec, bool) = false;
	return OPTIONS_RUN;
}

static enum options_result set_vmm(const struct option_spec *spec, const char *arg,
				   struct options *o)
{
	if (strcmp(arg, "auto") != 0 && strcmp(arg, "qemu") != 0 &&
	    strcmp(arg, "firecracker") != 0) {
		fprintf(stderr, "emberd: --vmm must be auto, qemu or firecracker\n");
		return OPTIONS_BAD;
	}
	return set_string(spec, arg, o);
}

static enum options_result set_accel(const struct option_spec *spec, const char *arg,
				     struct options *o)
{
	if (vmm_parse_accel(arg, FIELD(o, spec, enum vmm_accel)) < 0) {
		fprintf(stderr, "emberd: --accel must be auto, kvm or tcg\n");
		return OPTIONS_BAD;
	}
	return OPTIONS_RUN;
}

static enum options_result set_kernel_args(const struct option_spec *spec, const char *arg,
					   struct options *o)
{
	struct ember_error *err = NULL;

	if (vmm_check_kernel_args(arg, &err) < 0) {
		fprintf(stderr, "emberd: %s\n", err->message);
		ember_error_free(&err);
		return OPTIONS_BAD;
	}
	return set_string(spec, arg, o);
}

static enum options_result set_log_level(const struct option_spec *spec, const char *arg,
					 struct options *o)
{
	static const char *const names[] = { [LOG_DEBUG] = "debug", [LOG_INFO] = "info",
					     [LOG_WARN] = "warn", [LOG_ERROR] = "error" };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(names); i++) {
		if (strcmp(arg, names[i]) == 0) {
			*FIELD(o, spec, enum log_level) = (enum log_level)i;
			return OPTIONS_RUN;
		}
	}
	fprintf(stderr, "emberd: --log-level must be debug, info, warn or error\n");
	return OPTIONS_BAD;
}

static enum options_result show_help(const struct option_spec *spec, const char *arg,
				     struct options *o);

static enum options_result show_version(const struct option_spec *spec, const char *arg,
					struct options *o)
{
	(void)spec;
	(void)arg;
	(void)o;
	printf("emberd %s\n", EMBER_VERSION);
	return OPTIONS_EXIT;
}

#define SECTION(title) { NULL, NULL, NULL, 0, 0, 0, title }
#define STRING(name, arg, member, help) { name, arg, set_string, AT(member), 0, 0, help }
#define UINT(name, member, min, max, help) { name, "N", set_unsigned, AT(member), min, max, help }

static const struct option_spec option_table[] = {
	SECTION("Listening:"),
	STRING("addr", "HOST:PORT", api.addr,
	       "TCP address (default 127.0.0.1:7777, env EMBERD_ADDR)"),
	STRING("unix", "PATH", api.unix_path, "also serve on a Unix socket (mode 0600)"),
	SECTION("Images and VMs:"),
	STRING("images", "DIR", images_dir, "kernel/initramfs/packs (default $IMAGES_DIR or\n"
	       "/var/lib/emberd/images; build with `make images`)"),
	STRING("run-dir", "DIR", manager.run_dir,
	       "per-sandbox runtime files (default /run/emberd)"),
	{ "vmm", "auto|qemu|firecracker", set_vmm, AT(vmm), 0, 0,
	  "VMM driver (default auto: firecracker when installed\n"
	  "and KVM has hardware virtualization, else qemu)" },
	{ "accel", "auto|kvm|tcg", set_accel, AT(accel), 0, 0, "QEMU accelerator (default auto)" },
	STRING("qemu-bin", "PATH", qemu_bin, "default qemu-system-x86_64 on PATH"),
	STRING("firecracker-bin", "PATH", firecracker_bin, "default firecracker on PATH"),
	STRING("jailer", "PATH", jailer_bin, "run firecracker under this jailer"),
	STRING("cgroup-root", "PATH", cgroup_root,
	       "cgroup v2 mount for per-VMM memory/cpu/pids limits\n"
	       "(default /sys/fs/cgroup; `none` disables them)"),
	{ "kernel-args", "\"ARGS\"", set_kernel_args, AT(kernel_args), 0, 0,
	  "extra guest kernel arguments, for debugging\n"
	  "(e.g. \"loglevel=7\"; not init=, rdinit=, emberd.*)" },
	SECTION("Limits:"),
	UINT("max-sandboxes", manager.max_sandboxes, 1, 4096, "(default 16; beyond: 429)"),
	UINT("max-concurrent-boots", manager.max_concurrent_boots, 1, 256,
	     "(default 4; more creates queue, then 503)"),
	UINT("max-vcpus", manager.max_vcpus, 1, 64, "per sandbox (default 4)"),
	UINT("max-memory-mib", manager.max_memory_mib, 64, 65536, "per sandbox (default 2048)"),
	UINT("default-timeout-s", manager.default_timeout_s, 1, 30u * 86400,
	     "sandbox lifetime when not requested (default 600)"),
	UINT("max-timeout-s", manager.max_timeout_s, 1, 30u * 86400, "(default 86400)"),
	UINT("boot-timeout-ms", manager.boot_timeout_ms, 100, 3600000,
	     "create fails after this (default 60000)"),
	UINT("max-exec-timeout-ms", manager.max_exec_timeout_ms, 1, 86400000, "(default 600000)"),
	{ "max-output-bytes", "N", set_u64, AT(manager.max_output_bytes), 0, 64ull << 20,
	  "per stream per exec (default 16777216)" },
	UINT("max-processes", manager.max_processes, 8, 65536,
	     "processes the sandbox user may have in the guest\n"
	     "(RLIMIT_NPROC; default 256: stops fork bombs)"),
	UINT("max-overlay-mib", manager.max_overlay_mib, 8, 65536,
	     "writable layer a create may ask for (default 2048)"),
	{ "max-body-bytes", "N", set_size, AT(api.max_body_bytes), 1024, 64ull << 20,
	  "request body (default 4194304; beyond: 413)" },
	UINT("max-connections", api.max_connections, 1, 10000, "(default 256)"),
	UINT("connection-timeout-s", api.connection_timeout_s, 1, 3600,
	     "idle client timeout (default 30)"),
	SECTION("Fast create (docs/snapshots.md):"),
	UINT("pool-size", manager.pool_size, 0, 64,
	     "ready clones kept per pack (default 1; 0 disables)"),
	{ "prewarm", NULL, set_true, AT(manager.prewarm), 0, 0,
	  "build every pack's template at startup (default:\n"
	  "on first use, or when the pool needs one)" },
	{ "no-snapshots", NULL, set_false, AT(manager.snapshots), 0, 0,
	  "always boot cold (no templates, no clones, no pool)" },
	SECTION("Restarts:"),
	{ "keep-sandboxes", NULL, set_true, AT(keep_sandboxes), 0, 0,
	  "on SIGTERM/SIGINT leave VMs running for the next\n"
	  "daemon to re-attach (default: destroy them). A daemon\n"
	  "always re-attaches live sandboxes it finds in --run-dir\n"
	  "at startup and removes dead ones." },
	SECTION("Other:"),
	{ "log-level", "debug|info|warn|error", set_log_level, AT(log_level), 0, 0,
	  "(default info; logs are logfmt on stderr)" },
	{ "help", NULL, show_help, 0, 0, 0, "print this help and exit" },
	{ "version", NULL, show_version, 0, 0, 0, "print the version and exit" },
};

/* Where the help text starts; a longer flag gets a fixed gap instead. */
#define HELP_COLUMN 31
#define HELP_GAP_AFTER_LONG_FLAG 3

static void print_help_row(FILE *out, const struct option_spec *spec)
{
	const char *line = spec->help, *nl;
	int used;

	used = fprintf(out, "  --%s%s%s", spec->name, spec->arg != NULL ? " " : "",
		       spec->arg != NULL ? spec->arg : "");
	fprintf(out, "%*s", used < HELP_COLUMN ? HELP_COLUMN - used : HELP_GAP_AFTER_LONG_FLAG, "");
	while ((nl = strchr(line, '\n')) != NULL) {
		fprintf(out, "%.*s\n%*s", (int)(nl - line), line, HELP_COLUMN, "");
		line = nl + 1;
	}
	fprintf(out, "%s\n", line);
}

static void usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: emberd [options]\n"
		     "Runs untrusted code in microVMs behind a local HTTP/JSON API (docs/api.md).\n"
		     "\n");
	for (i = 0; i < ARRAY_SIZE(option_table); i++) {
		if (option_table[i].name == NULL)
			fprintf(out, "%s\n", option_table[i].help);
		else
			print_help_row(out, &option_table[i]);
	}
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

static void set_defaults(struct options *o)
{
	const char *addr = getenv("EMBERD_ADDR"), *images = getenv("IMAGES_DIR");

	*o = (struct options){
		.api = { .addr = addr != NULL ? addr : "127.0.0.1:7777",
			 .max_body_bytes = 4u << 20, .max_connections = 256,
			 .connection_timeout_s = 30 },
		.manager = { .run_dir = "/run/emberd", .max_sandboxes = 16,
			     .max_concurrent_boots = 4, .max_vcpus = 4, .max_memory_mib = 2048,
			     .default_timeout_s = 600, .max_timeout_s = 86400,
			     .boot_timeout_ms = 60000, .max_exec_timeout_ms = 600000,
			     .max_output_bytes = 16u << 20, .max_processes = 256,
			     .max_overlay_mib = 2048, .snapshots = true, .pool_size = 1 },
		.images_dir = images != NULL ? images : "/var/lib/emberd/images",
		.vmm = "auto",
		.log_level = LOG_INFO,
	};
}

/* getopt_long's view of the table: val is 256 + the row, clear of every short option. */
static void build_longopts(struct option *longopts)
{
	size_t i, n = 0;

	for (i = 0; i < ARRAY_SIZE(option_table); i++) {
		if (option_table[i].name == NULL)
			continue;
		longopts[n++] = (struct option){ option_table[i].name,
						 option_table[i].arg != NULL ? required_argument
									     : no_argument,
						 NULL, 256 + (int)i };
	}
	longopts[n] = (struct option){ 0 };
}

/* Checks between flags, once all are read. */
static enum options_result validate(int argc, char **argv, const struct options *o)
{
	if (optind != argc) {
		fprintf(stderr, "emberd: unexpected argument `%s`\n", argv[optind]);
		return OPTIONS_BAD;
	}
	if (o->manager.default_timeout_s > o->manager.max_timeout_s) {
		fprintf(stderr, "emberd: --default-timeout-s exceeds --max-timeout-s\n");
		return OPTIONS_BAD;
	}
	return OPTIONS_RUN;
}

enum options_result options_parse(int argc, char **argv, struct options *o)
{
	struct option longopts[ARRAY_SIZE(option_table) + 1];
	enum options_result r;
	int c;

	set_defaults(o);
	build_longopts(longopts);
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c < 256 || c >= 256 + (int)ARRAY_SIZE(option_table)) {
			usage(stderr); /* getopt_long has said what was wrong */
			return OPTIONS_BAD;
		}
		r = option_table[c - 256].parse(&option_table[c - 256], optarg, o);
		if (r != OPTIONS_RUN)
			return r;
	}
	return validate(argc, argv, o);
}
