/* options.c - emberd's flags: the table, the parsers and showers only emberd has, --help's text
 * around the table, the order defaults < config file < command line, and the checks between
 * flags. The mechanisms are util/opttable and config.c. */
#include "options.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/mcp.h"
#include "config.h"
#include "sandbox/catalog.h"
#include "sandbox/snapshots.h"
#include "util/cleanup.h"
#include "util/hostport.h"
#include "util/opttable.h"

static enum opt_result set_vmm(const struct opt_spec *spec, const char *arg, void *o,
			       struct ember_error **err)
{
	if (strcmp(arg, "auto") != 0 && strcmp(arg, "qemu") != 0 &&
	    strcmp(arg, "firecracker") != 0) {
		ember_error_set(err, EMBER_E_INVALID, 0, "--vmm must be auto, qemu or firecracker");
		return OPT_BAD_VALUE;
	}
	return opt_set_string(spec, arg, o, err);
}

/* --addr: checked here, so a bad one stops the daemon before it loads anything (exit 2). */
static enum opt_result set_addr(const struct opt_spec *spec, const char *arg, void *target,
				struct ember_error **err)
{
	struct options *o = target;
	struct hostport where;

	if (hostport_parse(arg, HOSTPORT_ZERO_PORT, &where, err) < 0) {
		ember_error_wrap(err, "--%s `%.300s`", spec->name, arg);
		return OPT_BAD_VALUE;
	}
	o->addr_given = true;
	return opt_set_string(spec, arg, target, err);
}

/* --e2b-addr: checked like --addr. */
static enum opt_result set_e2b_addr(const struct opt_spec *spec, const char *arg, void *target,
				    struct ember_error **err)
{
	struct hostport where;

	if (hostport_parse(arg, HOSTPORT_ZERO_PORT, &where, err) < 0) {
		ember_error_wrap(err, "--%s `%.300s`", spec->name, arg);
		return OPT_BAD_VALUE;
	}
	return opt_set_string(spec, arg, target, err);
}

static enum opt_result set_kernel_args(const struct opt_spec *spec, const char *arg, void *o,
				       struct ember_error **err)
{
	if (vmm_check_kernel_args(arg, err) < 0)
		return OPT_BAD_VALUE;
	return opt_set_string(spec, arg, o, err);
}

static const char *const log_level_names[] = { [LOG_DEBUG] = "debug", [LOG_INFO] = "info",
					       [LOG_WARN] = "warn", [LOG_ERROR] = "error" };

static enum opt_result set_log_level(const struct opt_spec *spec, const char *arg, void *o,
				     struct ember_error **err)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(log_level_names); i++) {
		if (strcmp(arg, log_level_names[i]) == 0) {
			*OPT_FIELD(o, spec, enum log_level) = (enum log_level)i;
			return OPT_OK;
		}
	}
	ember_error_set(err, EMBER_E_INVALID, 0,
			"--log-level must be debug, info, warn or error");
	return OPT_BAD_VALUE;
}

/* --network-modes: a comma-separated list into a NET_MODE_BIT mask. */
static enum opt_result set_network_modes(const struct opt_spec *spec, const char *arg, void *o,
					 struct ember_error **err)
{
	if (net_modes_parse(arg, OPT_FIELD(o, spec, unsigned), err) < 0) {
		ember_error_wrap(err, "--%s", spec->name);
		return OPT_BAD_VALUE;
	}
	return OPT_OK;
}

static bool show_network_modes(const struct opt_spec *spec, const void *o, size_t index,
			       char *buf, size_t size)
{
	if (index > 0)
		return false;
	net_modes_format(*OPT_FIELD(o, spec, const unsigned), buf, size);
	return true;
}

/* --pool-packs: pack names, comma-separated (checked against the catalog at startup). */
static enum opt_result set_pool_packs(const struct opt_spec *spec, const char *arg, void *o,
				      struct ember_error **err)
{
	if (pack_list_check(arg, err) < 0) {
		ember_error_wrap(err, "--%s", spec->name);
		return OPT_BAD_VALUE;
	}
	return opt_set_string(spec, arg, o, err);
}

/* Shows an enum field through its names (the values its parser takes). */
static bool show_name(const char *const *names, size_t count, unsigned v, size_t index,
		      char *buf, size_t size)
{
	if (index > 0 || v >= count)
		return false;
	snprintf(buf, size, "%s", names[v]);
	return true;
}

static bool show_log_level(const struct opt_spec *spec, const void *o, size_t index, char *buf,
			   size_t size)
{
	return show_name(log_level_names, ARRAY_SIZE(log_level_names),
			 (unsigned)*OPT_FIELD(o, spec, const enum log_level), index, buf, size);
}

/* vmm_opt_set_accel's values (its table is private to src/vmm/vmm.c). */
static bool show_accel(const struct opt_spec *spec, const void *o, size_t index, char *buf,
		       size_t size)
{
	static const char *const names[] = { [VMM_ACCEL_AUTO] = "auto", [VMM_ACCEL_KVM] = "kvm",
					     [VMM_ACCEL_TCG] = "tcg" };
	unsigned v = (unsigned)*OPT_FIELD(o, spec, const enum vmm_accel);

	return show_name(names, ARRAY_SIZE(names), v, index, buf, size);
}

/* --allow-origin, repeated: appended to the list the API's guard checks. */
static enum opt_result add_origin(const struct opt_spec *spec, const char *arg, void *target,
				  struct ember_error **err)
{
	struct options *o = target;

	(void)spec;
	if (o->api.nallow_origins == API_ALLOW_ORIGINS_MAX) {
		ember_error_set(err, EMBER_E_INVALID, 0, "at most %d --allow-origin values",
				API_ALLOW_ORIGINS_MAX);
		return OPT_BAD_VALUE;
	}
	o->allow_origins[o->api.nallow_origins++] = arg;
	o->api.allow_origins = o->allow_origins;
	return OPT_OK;
}

static bool show_origin(const struct opt_spec *spec, const void *target, size_t index, char *buf,
			size_t size)
{
	const struct options *o = target;

	(void)spec;
	if (index >= o->api.nallow_origins)
		return false;
	snprintf(buf, size, "%s", o->allow_origins[index]);
	return true;
}

/* --allow-mount, repeated: a directory host mounts may come from (resolved at start). */
static enum opt_result add_allow_mount(const struct opt_spec *spec, const char *arg, void *target,
				       struct ember_error **err)
{
	struct options *o = target;

	(void)spec;
	if (arg[0] != '/') {
		ember_error_set(err, EMBER_E_INVALID, 0, "--allow-mount `%s` must be an absolute "
				"path", arg);
		return OPT_BAD_VALUE;
	}
	if (o->nallow_mounts == MOUNT_ALLOW_MAX) {
		ember_error_set(err, EMBER_E_INVALID, 0, "at most %d --allow-mount values",
				MOUNT_ALLOW_MAX);
		return OPT_BAD_VALUE;
	}
	o->allow_mounts[o->nallow_mounts++] = arg;
	return OPT_OK;
}

static bool show_allow_mount(const struct opt_spec *spec, const void *target, size_t index,
			     char *buf, size_t size)
{
	const struct options *o = target;

	(void)spec;
	if (index >= o->nallow_mounts)
		return false;
	snprintf(buf, size, "%s", o->allow_mounts[index]);
	return true;
}

static opt_parser show_help;

#define AT(member) offsetof(struct options, member)
#define SECTION(title) { .help = title }
#define FLAG(name_, arg_, parse_, show_, member, help_)                                    \
	{ .name = name_, .arg = arg_, .parse = parse_, .show = show_, .field = AT(member),   \
	  .help = help_ }
#define STRING(name, arg, member, help) \
	FLAG(name, arg, opt_set_string, opt_show_string, member, help)
#define SWITCH(name, parse, show, member, help) FLAG(name, NULL, parse, show, member, help)
/* type_: unsigned, u64 or size, naming opttable's setter and shower of that type. */
#define NUMBER(name_, type_, member, min_, max_, help_)                                    \
	{ .name = name_, .arg = "N", .parse = opt_set_##type_, .show = opt_show_##type_,    \
	  .field = AT(member), .min = min_, .max = max_, .help = help_ }
#define UINT(name, member, min, max, help) NUMBER(name, unsigned, member, min, max, help)

static const struct opt_spec option_table[] = {
	SECTION("Listening:"),
	FLAG("addr", "HOST:PORT", set_addr, opt_show_string, api.addr,
	     "TCP address (default 127.0.0.1:7777, env EMBERD_ADDR);\n"
	     "port 1-65535, or 0 for one the kernel picks (logged)"),
	STRING("unix", "PATH", api.unix_path, "also serve on a Unix socket (mode 0600)"),
	STRING("auth-token-file", "FILE", api.auth_token_file,
	       "require `Authorization: Bearer <token>` over TCP, the token\n"
	       "being this file's one line (16-512 printable characters;\n"
	       "mode 0600); required when --addr is not loopback"),
	{ .name = "allow-origin", .arg = "ORIGIN", .parse = add_origin, .show = show_origin,
	  .repeats = true,
	  .help = "let browser pages from ORIGIN (e.g. http://localhost:3000)\n"
		  "call the API (default: none; requests with any other\n"
		  "Origin get 403)" },
	FLAG("e2b-addr", "HOST:PORT", set_e2b_addr, opt_show_string, api.e2b_addr,
	     "also serve the E2B-compatible API (unmodified E2B SDKs,\n"
	     "docs/e2b.md) on this TCP address (default: off)"),
	SECTION("Images and VMs:"),
	STRING("images", "DIR", images_dir, "kernel/initramfs/packs (default $IMAGES_DIR or\n"
	       "/var/lib/emberd/images; build with `make images`)"),
	STRING("run-dir", "DIR", manager.run_dir,
	       "per-sandbox runtime files (default /run/emberd)"),
	STRING("state-dir", "DIR", manager.state_dir,
	       "paused sandboxes' saved VMs, on disk (default\n"
	       "/var/lib/emberd/state)"),
	FLAG("vmm", "auto|qemu|firecracker", set_vmm, opt_show_string, vmm,
	     "VMM driver (default auto: firecracker when installed\n"
	     "and KVM has hardware virtualization, else qemu)"),
	FLAG("accel", "auto|kvm|tcg", vmm_opt_set_accel, show_accel, accel,
	     "QEMU accelerator (default auto)"),
	STRING("qemu-bin", "PATH", qemu_bin, "default qemu-system-x86_64 on PATH"),
	STRING("firecracker-bin", "PATH", firecracker_bin, "default firecracker on PATH"),
	STRING("jailer", "PATH", jailer_bin, "run firecracker under this jailer"),
	STRING("cgroup-root", "PATH", cgroup_root,
	       "cgroup v2 mount for per-VMM memory/cpu/pids limits\n"
	       "(default /sys/fs/cgroup; `none` disables them)"),
	UINT("vmm-uid-base", vmm_uid_base, 1, 4294967294u - VMM_UID_RANGE_SIZE,
	     "each VMM runs jailed as its own uid/gid from N to\n"
	     "N+8191, a range no account or other daemon may use\n"
	     "(default 1900000000)"),
	SWITCH("no-jail", opt_set_true, opt_show_true, no_jail,
	     "debugging only: run each VMM as root, without the jail\n"
	     "(own uid, no capabilities, own namespaces)"),
	FLAG("kernel-args", "\"ARGS\"", set_kernel_args, opt_show_string, kernel_args,
	     "extra guest kernel arguments, for debugging\n"
	     "(e.g. \"loglevel=7\"; not init=, rdinit=, emberd.*)"),
	SECTION("Limits:"),
	UINT("max-sandboxes", manager.max_sandboxes, 1, 4096,
	     "(default: what fits in host memory beyond the reserve,\n"
	     "at the most a default python sandbox can take; beyond: 429)"),
	UINT("memory-reserve-mib", manager.memory_reserve_mib, 1, 1u << 20,
	     "host memory no new sandbox or pooled clone may take\n"
	     "(default a tenth of the host's, at least 256): below it\n"
	     "creates get 429 and pools give clones back"),
	STRING("meminfo", "PATH", manager.meminfo_path,
	       "where host memory is read (default /proc/meminfo; for\n"
	       "tests, or a container's own view)"),
	UINT("max-concurrent-boots", manager.max_concurrent_boots, 1, 256,
	     "(default 4; more creates queue, then 503)"),
	UINT("max-vcpus", manager.max_vcpus, 1, 64, "per sandbox (default 4)"),
	UINT("max-memory-mib", manager.max_memory_mib, 64, 65536, "per sandbox (default 2048)"),
	UINT("default-timeout-s", manager.default_timeout_s, 1, 30u * 86400,
	     "sandbox lifetime when not requested (default 600)"),
	UINT("max-timeout-s", manager.max_timeout_s, 1, 30u * 86400, "(default 86400)"),
	UINT("max-paused-s", manager.max_paused_s, 1, 30u * 86400,
	     "a paused sandbox is deleted after this (default 604800)"),
	UINT("max-fork", manager.max_fork, 1, 64, "sandboxes one fork may make (default 16)"),
	UINT("max-snapshots", manager.max_snapshots, 1, SNAPSHOTS_MAX,
	     "snapshots kept in --state-dir (default 16; beyond: 429)"),
	UINT("boot-timeout-ms", manager.boot_timeout_ms, 100, 3600000,
	     "create fails after this (default 60000)"),
	UINT("max-exec-timeout-ms", manager.max_exec_timeout_ms, 1, 86400000, "(default 600000)"),
	NUMBER("max-output-bytes", u64, manager.max_output_bytes, 0, 64ull << 20,
	       "per stream per exec (default 16777216)"),
	UINT("max-processes", manager.max_processes, 8, 65536,
	     "processes the sandbox user may have in the guest\n"
	     "(RLIMIT_NPROC; default 256: stops fork bombs)"),
	UINT("max-contexts", manager.max_contexts, 1, SANDBOX_CONTEXTS_MAX,
	     "code contexts per sandbox (default 8; beyond: 429)"),
	UINT("max-overlay-mib", manager.max_overlay_mib, 8, 65536,
	     "writable layer a create may ask for (default 2048)"),
	NUMBER("max-body-bytes", size, api.max_body_bytes, 1024, 64ull << 20,
	       "request body (default 4194304; beyond: 413)"),
	UINT("max-connections", api.max_connections, 1, 10000, "(default 256)"),
	UINT("connection-timeout-s", api.connection_timeout_s, 1, 3600,
	     "idle client timeout (default 30)"),
	UINT("request-timeout-s", api.request_timeout_s, 1, 3600,
	     "a whole request (headers and body) must arrive within\n"
	     "this, however slowly it trickles (default 30)"),
	UINT("max-connections-per-ip", api.max_connections_per_ip, 1, 10000,
	     "TCP connections one client address may hold (default 64)"),
	UINT("mcp-session-idle-s", mcp_session_idle_s, 1, 86400,
	     "an MCP session unused this long ends and its sandboxes\n"
	     "are deleted (default 1800; docs/mcp.md)"),
	SECTION("Fast create (docs/snapshots.md):"),
	UINT("max-templates", manager.max_templates, 1, 1024,
	     "templates kept at once (default 8): each holds its guest's RAM\n"
	     "twice (a file in --run-dir and a sealed memory copy); beyond,\n"
	     "the least recently used one no sandbox uses is evicted"),
	UINT("pool-size", manager.pool_size, 0, 64,
	     "ready clones kept per pooled pack (default 1; 0 disables)"),
	FLAG("pool-packs", "LIST", set_pool_packs, opt_show_string, manager.pool_packs,
	     "the packs the pool keeps clones of (comma-separated;\n"
	     "default every pack): each pooled pack holds a template\n"
	     "and pool-size clones in memory"),
	SWITCH("prewarm", opt_set_true, opt_show_true, manager.prewarm,
	     "build every pack's template at startup (default:\n"
	     "on first use, or when the pool needs one)"),
	SWITCH("no-snapshots", opt_set_false, opt_show_false, manager.snapshots,
	     "always boot cold (no templates, no clones, no pool)"),
	SECTION("Network (docs/network.md):"),
	FLAG("network-modes", "LIST", set_network_modes, show_network_modes, egress.modes,
	     "network modes a create may ask for: none, allowlist,\n"
	     "open (comma-separated; default none)"),
	STRING("egress-uplink", "IFACE", egress.uplink,
	       "host interface networked sandboxes' traffic leaves by\n"
	       "(required for networked sandboxes)"),
	STRING("egress-dns", "ADDR[:PORT]", egress.dns,
	       "upstream DNS server the sandboxes' resolver asks\n"
	       "(default: the first nameserver in /etc/resolv.conf)"),
	STRING("egress-gateway", "ADDR", egress.gateway,
	       "next hop on the uplink (default: the main table's\n"
	       "default route via the uplink, else on-link)"),
	STRING("egress-subnet", "CIDR", egress.subnet,
	       "address range of the sandboxes' links, a /30 each\n"
	       "(default 10.231.0.0/16)"),
	UINT("egress-rate-mbit", egress.rate_mbit, 0, 100000,
	     "bandwidth limit per networked sandbox and direction,\n"
	     "Mbit/s (default 100, 0 = none)"),
	UINT("egress-max-connections", egress.max_connections, 1, 65536,
	     "concurrent connections per networked sandbox\n(default 256)"),
	SECTION("Host directories in sandboxes (docs/api.md \"Mounts\"):"),
	{ .name = "allow-mount", .arg = "DIR", .parse = add_allow_mount, .show = show_allow_mount,
	  .repeats = true,
	  .help = "a create's `mounts` may name DIR or what lies under it\n"
		  "(default: none, every mount is refused; at most 16);\n"
		  "the run dir, the images and the daemon's own files never" },
	UINT("max-mount-image-mib", manager.max_mount_image_mib, 1, 65536,
	     "a read-only mount under Firecracker is a squashfs image\n"
	     "of the directory made at create: its files may hold at\n"
	     "most this (default 1024)"),
	SECTION("Restarts:"),
	SWITCH("keep-sandboxes", opt_set_true, opt_show_true, keep_sandboxes,
	     "on SIGTERM/SIGINT leave VMs running for the next\n"
	     "daemon to re-attach (default: destroy them). A daemon\n"
	     "always re-attaches live sandboxes it finds in --run-dir\n"
	     "at startup and removes dead ones."),
	SECTION("Other:"),
	FLAG("log-level", "debug|info|warn|error", set_log_level, show_log_level, log_level,
	     "(default info; logs are logfmt on stderr)"),
	{ .name = "config", .arg = "FILE", .parse = opt_set_string, .field = AT(config_path),
	  .cli_only = true,
	  .help = "settings as `key = value` lines, a key per long flag\n"
		  "(default " CONFIG_DEFAULT_PATH " when it exists;\n"
		  "`none`: no file at all); flags given here override it\n"
		  "(docs/operations.md)" },
	{ .name = "print-config", .parse = opt_set_true, .field = AT(print_config),
	  .cli_only = true,
	  .help = "print the effective settings and where each came from\n"
		  "(default, env, FILE:LINE or flag), then exit" },
	{ .name = "help", .parse = show_help, .cli_only = true,
	  .help = "print this help and exit" },
	{ .name = "version", .parse = opt_show_version, .key = "emberd", .cli_only = true,
	  .help = "print the version and exit" },
};

/* Text at column 31; a longer flag gets 3 spaces instead. */
static const struct opt_help_layout help_layout = { .column = 31, .min_gap = 1, .long_gap = 3 };

static void usage(FILE *out)
{
	fprintf(out, "usage: emberd [options]\n"
		     "Runs untrusted code in microVMs behind a local HTTP/JSON API (docs/api.md).\n"
		     "\n");
	opt_table_print_help(out, option_table, ARRAY_SIZE(option_table), &help_layout);
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

static void set_defaults(struct options *o)
{
	const char *addr = getenv("EMBERD_ADDR"), *images = getenv("IMAGES_DIR");

	*o = (struct options){
		.api = { .addr = addr != NULL ? addr : "127.0.0.1:7777",
			 .max_body_bytes = 4u << 20, .max_connections = 256,
			 .connection_timeout_s = 30, .request_timeout_s = API_REQUEST_TIMEOUT_S,
			 .max_connections_per_ip = 64 },
		.manager = { .run_dir = "/run/emberd", .state_dir = "/var/lib/emberd/state",
			     .max_paused_s = 7u * 86400, .max_fork = 16,
			     .max_snapshots = SNAPSHOTS_MAX_DEFAULT, .max_sandboxes = 0,
			     .max_concurrent_boots = 4, .max_vcpus = 4, .max_memory_mib = 2048,
			     .default_timeout_s = 600, .max_timeout_s = 86400,
			     .boot_timeout_ms = 60000, .max_exec_timeout_ms = 600000,
			     .max_output_bytes = 16u << 20, .max_processes = 256,
			     .max_contexts = 8, .max_overlay_mib = 2048, .snapshots = true, .pool_size = 1,
			     .max_templates = 8, .max_mount_image_mib = MOUNT_IMAGE_MIB_DEFAULT },
		.mcp_session_idle_s = MCP_SESSION_IDLE_S,
		.images_dir = images != NULL ? images : "/var/lib/emberd/images",
		.vmm = "auto",
		.vmm_uid_base = VMM_UID_BASE_DEFAULT,
		.log_level = LOG_INFO,
		.egress = { .modes = NET_MODE_BIT(NET_MODE_NONE), .subnet = EGRESS_SUBNET_DEFAULT,
			    .rate_mbit = EGRESS_RATE_MBIT_DEFAULT,
			    .max_connections = EGRESS_MAX_CONNECTIONS_DEFAULT },
	};
}

/* Checks between flags, once all are read. */
static enum options_result validate(int argc, char **argv, int operands, const struct options *o)
{
	struct ember_error *err = NULL;
	struct hostport where;

	if (!o->addr_given && hostport_parse(o->api.addr, HOSTPORT_ZERO_PORT, &where, &err) < 0) {
		fprintf(stderr, "emberd: EMBERD_ADDR `%.300s`: %s\n", o->api.addr, err->message);
		ember_error_free(&err);
		return OPTIONS_BAD;
	}
	if (operands != argc) {
		fprintf(stderr, "emberd: unexpected argument `%s`\n", argv[operands]);
		return OPTIONS_BAD;
	}
	if (o->manager.default_timeout_s > o->manager.max_timeout_s) {
		fprintf(stderr, "emberd: --default-timeout-s exceeds --max-timeout-s\n");
		return OPTIONS_BAD;
	}
	return OPTIONS_RUN;
}

/* One scan of argv; sources (may be NULL) gets OPT_FROM_FLAG for the flags it had. */
static enum options_result parse_command_line(int argc, char **argv, struct options *o,
					      struct opt_source *sources, int *operands)
{
	struct ember_error *err = NULL;

	switch (opt_table_parse_sourced(option_table, ARRAY_SIZE(option_table), argc, argv, o, 0,
					operands, sources, &err)) {
	case OPT_OK:
		return OPTIONS_RUN;
	case OPT_EXIT:
		return OPTIONS_EXIT;
	case OPT_BAD_VALUE:
		fprintf(stderr, "emberd: %s\n", err->message);
		break;
	case OPT_BAD_FLAG:
		usage(stderr); /* getopt_long has said what was wrong */
		break;
	}
	ember_error_free(&err);
	return OPTIONS_BAD;
}

/* The defaults' sources: EMBERD_ADDR and IMAGES_DIR, when they were used. */
static void mark_environment(struct opt_source *sources)
{
	static const char *const vars[][2] = { { "addr", "EMBERD_ADDR" },
					       { "images", "IMAGES_DIR" } };
	const struct opt_spec *spec;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(vars); i++) {
		spec = opt_table_find(option_table, ARRAY_SIZE(option_table), vars[i][0]);
		if (spec != NULL && getenv(vars[i][1]) != NULL &&
		    sources[spec - option_table].from == OPT_FROM_DEFAULT)
			sources[spec - option_table] =
				(struct opt_source){ .from = OPT_FROM_ENV, .env = vars[i][1] };
	}
}

int options_load_config_text(struct options *o, const char *text, size_t len,
			     struct ember_error **err)
{
	struct opt_source sources[ARRAY_SIZE(option_table)] = { 0 };
	struct options scratch;

	set_defaults(o);
	set_defaults(&scratch);
	return config_load_text(&o->config, "config", text, len, option_table,
				ARRAY_SIZE(option_table), o, &scratch, sources, err);
}

/* The file under the command line: o starts again from the defaults, takes the file (flags the
 * command line gave, marked in sources, are only checked), then argv once more. */
static enum options_result apply_config_file(int argc, char **argv, struct options *o,
					     struct opt_source *sources, int *operands)
{
	const char *path = o->config_path != NULL ? o->config_path : CONFIG_DEFAULT_PATH;
	bool must_exist = o->config_path != NULL;
	struct ember_error *err = NULL;
	struct options scratch;

	/* `--config none`: the defaults and the command line only (tests, and a machine whose
	 * default file is for another daemon). A file named none: ./none. */
	if (o->config_path != NULL && strcmp(o->config_path, "none") == 0)
		return OPTIONS_RUN;
	set_defaults(o);
	set_defaults(&scratch);
	if (config_load(&o->config, path, must_exist, option_table, ARRAY_SIZE(option_table), o,
			&scratch, sources, &err) < 0) {
		fprintf(stderr, "emberd: %s\n", err->message);
		ember_error_free(&err);
		return OPTIONS_BAD;
	}
	return parse_command_line(argc, argv, o, NULL, operands);
}

enum options_result options_parse(int argc, char **argv, struct options *o)
{
	struct opt_source sources[ARRAY_SIZE(option_table)] = { 0 };
	enum options_result r;
	int operands;

	set_defaults(o);
	r = parse_command_line(argc, argv, o, sources, &operands);
	if (r == OPTIONS_RUN)
		r = apply_config_file(argc, argv, o, sources, &operands);
	if (r == OPTIONS_RUN)
		r = validate(argc, argv, operands, o);
	if (r == OPTIONS_RUN && o->print_config) {
		mark_environment(sources);
		config_print(stdout, option_table, ARRAY_SIZE(option_table), o, sources,
			     &o->config);
		r = OPTIONS_EXIT;
	}
	return r;
}

void options_release(struct options *o)
{
	config_release(&o->config);
}
