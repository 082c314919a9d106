/* emberd - the host daemon: flags, startup checks, VMM selection, signal handling.
 * Everything else lives in src/: api (HTTP), sandbox (manager, catalog), vmm (drivers), channel. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/server.h"
#include "sandbox/catalog.h"
#include "sandbox/manager.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "vmm/accel.h"
#include "vmm/spawn.h"
#include "vmm/vmm.h"

struct options {
	struct api_server_config api;
	struct manager_config manager;
	const char *images_dir;
	const char *vmm;
	const char *qemu_bin;
	const char *firecracker_bin;
	const char *jailer_bin;
	const char *cgroup_root;
	const char *kernel_args;
	enum vmm_accel accel;
	enum log_level log_level;
	bool keep_sandboxes;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: emberd [options]\n"
		"Runs untrusted code in microVMs behind a local HTTP/JSON API (docs/api.md).\n"
		"\n"
		"Listening:\n"
		"  --addr HOST:PORT             TCP address (default 127.0.0.1:7777, env EMBERD_ADDR)\n"
		"  --unix PATH                  also serve on a Unix socket (mode 0600)\n"
		"Images and VMs:\n"
		"  --images DIR                 kernel/initramfs/packs (default $IMAGES_DIR or\n"
		"                               /var/lib/emberd/images; build with `make images`)\n"
		"  --run-dir DIR                per-sandbox runtime files (default /run/emberd)\n"
		"  --vmm auto|qemu|firecracker  VMM driver (default auto: firecracker when installed\n"
		"                               and KVM has hardware virtualization, else qemu)\n"
		"  --accel auto|kvm|tcg         QEMU accelerator (default auto)\n"
		"  --qemu-bin PATH              default qemu-system-x86_64 on PATH\n"
		"  --firecracker-bin PATH       default firecracker on PATH\n"
		"  --jailer PATH                run firecracker under this jailer\n"
		"  --cgroup-root PATH           cgroup v2 mount for per-VMM memory/cpu/pids limits\n"
		"                               (default /sys/fs/cgroup; `none` disables them)\n"
		"  --kernel-args \"ARGS\"         extra guest kernel arguments, for debugging\n"
		"                               (e.g. \"loglevel=7\"; not init=, rdinit=, emberd.*)\n"
		"Limits:\n"
		"  --max-sandboxes N            (default 16; beyond: 429)\n"
		"  --max-concurrent-boots N     (default 4; more creates queue, then 503)\n"
		"  --max-vcpus N                per sandbox (default 4)\n"
		"  --max-memory-mib N           per sandbox (default 2048)\n"
		"  --default-timeout-s N        sandbox lifetime when not requested (default 600)\n"
		"  --max-timeout-s N            (default 86400)\n"
		"  --boot-timeout-ms N          create fails after this (default 60000)\n"
		"  --max-exec-timeout-ms N      (default 600000)\n"
		"  --max-output-bytes N         per stream per exec (default 16777216)\n"
		"  --max-processes N            processes the sandbox user may have in the guest\n"
		"                               (RLIMIT_NPROC; default 256: stops fork bombs)\n"
		"  --max-overlay-mib N          writable layer a create may ask for (default 2048)\n"
		"  --max-body-bytes N           request body (default 4194304; beyond: 413)\n"
		"  --max-connections N          (default 256)\n"
		"  --connection-timeout-s N     idle client timeout (default 30)\n"
		"Fast create (docs/snapshots.md):\n"
		"  --pool-size N                ready clones kept per pack (default 1; 0 disables)\n"
		"  --prewarm                    build every pack's template at startup (default:\n"
		"                               on first use, or when the pool needs one)\n"
		"  --no-snapshots               always boot cold (no templates, no clones, no pool)\n"
		"Restarts:\n"
		"  --keep-sandboxes             on SIGTERM/SIGINT leave VMs running for the next\n"
		"                               daemon to re-attach (default: destroy them). A daemon\n"
		"                               always re-attaches live sandboxes it finds in --run-dir\n"
		"                               at startup and removes dead ones.\n"
		"Other:\n"
		"  --log-level debug|info|warn|error   (default info; logs are logfmt on stderr)\n"
		"  --help, --version\n");
}

static int parse_num(const char *arg, unsigned long long min, unsigned long long max,
		     const char *flag, unsigned long long *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || arg[0] == '-' || v < min || v > max) {
		fprintf(stderr, "emberd: %s must be a number between %llu and %llu\n", flag, min,
			max);
		return -1;
	}
	*out = v;
	return 0;
}

enum {
	OPT_ADDR = 256, OPT_UNIX, OPT_IMAGES, OPT_RUN_DIR, OPT_VMM, OPT_ACCEL, OPT_QEMU_BIN,
	OPT_FC_BIN, OPT_JAILER, OPT_MAX_SANDBOXES, OPT_MAX_BOOTS, OPT_MAX_VCPUS, OPT_MAX_MEMORY,
	OPT_DEFAULT_TIMEOUT, OPT_MAX_TIMEOUT, OPT_BOOT_TIMEOUT, OPT_MAX_EXEC_TIMEOUT,
	OPT_MAX_OUTPUT, OPT_MAX_BODY, OPT_MAX_CONNECTIONS, OPT_CONN_TIMEOUT, OPT_LOG_LEVEL,
	OPT_POOL_SIZE, OPT_PREWARM, OPT_NO_SNAPSHOTS, OPT_CGROUP_ROOT, OPT_MAX_PROCESSES, OPT_MAX_OVERLAY, OPT_KEEP_SANDBOXES, OPT_KERNEL_ARGS, OPT_HELP, OPT_VERSION,
};

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "addr", required_argument, NULL, OPT_ADDR },
		{ "unix", required_argument, NULL, OPT_UNIX },
		{ "images", required_argument, NULL, OPT_IMAGES },
		{ "run-dir", required_argument, NULL, OPT_RUN_DIR },
		{ "vmm", required_argument, NULL, OPT_VMM },
		{ "accel", required_argument, NULL, OPT_ACCEL },
		{ "qemu-bin", required_argument, NULL, OPT_QEMU_BIN },
		{ "firecracker-bin", required_argument, NULL, OPT_FC_BIN },
		{ "jailer", required_argument, NULL, OPT_JAILER },
		{ "cgroup-root", required_argument, NULL, OPT_CGROUP_ROOT },
		{ "kernel-args", required_argument, NULL, OPT_KERNEL_ARGS },
		{ "pool-size", required_argument, NULL, OPT_POOL_SIZE },
		{ "prewarm", no_argument, NULL, OPT_PREWARM },
		{ "no-snapshots", no_argument, NULL, OPT_NO_SNAPSHOTS },
		{ "max-sandboxes", required_argument, NULL, OPT_MAX_SANDBOXES },
		{ "max-concurrent-boots", required_argument, NULL, OPT_MAX_BOOTS },
		{ "max-vcpus", required_argument, NULL, OPT_MAX_VCPUS },
		{ "max-memory-mib", required_argument, NULL, OPT_MAX_MEMORY },
		{ "default-timeout-s", required_argument, NULL, OPT_DEFAULT_TIMEOUT },
		{ "max-timeout-s", required_argument, NULL, OPT_MAX_TIMEOUT },
		{ "boot-timeout-ms", required_argument, NULL, OPT_BOOT_TIMEOUT },
		{ "max-exec-timeout-ms", required_argument, NULL, OPT_MAX_EXEC_TIMEOUT },
		{ "max-output-bytes", required_argument, NULL, OPT_MAX_OUTPUT },
		{ "max-processes", required_argument, NULL, OPT_MAX_PROCESSES },
		{ "max-overlay-mib", required_argument, NULL, OPT_MAX_OVERLAY },
		{ "max-body-bytes", required_argument, NULL, OPT_MAX_BODY },
		{ "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
		{ "connection-timeout-s", required_argument, NULL, OPT_CONN_TIMEOUT },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "keep-sandboxes", no_argument, NULL, OPT_KEEP_SANDBOXES },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ 0 },
	};
	unsigned long long v;
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_ADDR: o->api.addr = optarg; break;
		case OPT_UNIX: o->api.unix_path = optarg; break;
		case OPT_IMAGES: o->images_dir = optarg; break;
		case OPT_RUN_DIR: o->manager.run_dir = optarg; break;
		case OPT_VMM:
			if (strcmp(optarg, "auto") != 0 && strcmp(optarg, "qemu") != 0 &&
			    strcmp(optarg, "firecracker") != 0) {
				fprintf(stderr, "emberd: --vmm must be auto, qemu or firecracker\n");
				return -1;
			}
			o->vmm = optarg;
			break;
		case OPT_ACCEL:
			if (vmm_parse_accel(optarg, &o->accel) < 0) {
				fprintf(stderr, "emberd: --accel must be auto, kvm or tcg\n");
				return -1;
			}
			break;
		case OPT_QEMU_BIN: o->qemu_bin = optarg; break;
		case OPT_FC_BIN: o->firecracker_bin = optarg; break;
		case OPT_JAILER: o->jailer_bin = optarg; break;
		case OPT_CGROUP_ROOT: o->cgroup_root = optarg; break;
		case OPT_KERNEL_ARGS: {
			struct ember_error *err = NULL;

			if (vmm_check_kernel_args(optarg, &err) < 0) {
				fprintf(stderr, "emberd: %s\n", err->message);
				ember_error_free(&err);
				return -1;
			}
			o->kernel_args = optarg;
			break;
		}
		case OPT_PREWARM: o->manager.prewarm = true; break;
		case OPT_NO_SNAPSHOTS: o->manager.snapshots = false; break;
#define NUM(opt, field, min, max, flag) \
	case opt: \
		if (parse_num(optarg, min, max, flag, &v) < 0) \
			return -1; \
		field = v; \
		break;
		NUM(OPT_MAX_SANDBOXES, o->manager.max_sandboxes, 1, 4096, "--max-sandboxes")
		NUM(OPT_MAX_BOOTS, o->manager.max_concurrent_boots, 1, 256, "--max-concurrent-boots")
		NUM(OPT_MAX_VCPUS, o->manager.max_vcpus, 1, 64, "--max-vcpus")
		NUM(OPT_MAX_MEMORY, o->manager.max_memory_mib, 64, 65536, "--max-memory-mib")
		NUM(OPT_DEFAULT_TIMEOUT, o->manager.default_timeout_s, 1, 30u * 86400,
		    "--default-timeout-s")
		NUM(OPT_MAX_TIMEOUT, o->manager.max_timeout_s, 1, 30u * 86400, "--max-timeout-s")
		NUM(OPT_BOOT_TIMEOUT, o->manager.boot_timeout_ms, 100, 3600000, "--boot-timeout-ms")
		NUM(OPT_MAX_EXEC_TIMEOUT, o->manager.max_exec_timeout_ms, 1, 86400000,
		    "--max-exec-timeout-ms")
		NUM(OPT_MAX_OUTPUT, o->manager.max_output_bytes, 0, 64ull << 20,
		    "--max-output-bytes")
		NUM(OPT_POOL_SIZE, o->manager.pool_size, 0, 64, "--pool-size")
		NUM(OPT_MAX_PROCESSES, o->manager.max_processes, 8, 65536, "--max-processes")
		NUM(OPT_MAX_OVERLAY, o->manager.max_overlay_mib, 8, 65536, "--max-overlay-mib")
		NUM(OPT_MAX_BODY, o->api.max_body_bytes, 1024, 64ull << 20, "--max-body-bytes")
		NUM(OPT_MAX_CONNECTIONS, o->api.max_connections, 1, 10000, "--max-connections")
		NUM(OPT_CONN_TIMEOUT, o->api.connection_timeout_s, 1, 3600,
		    "--connection-timeout-s")
#undef NUM
		case OPT_LOG_LEVEL:
			if (strcmp(optarg, "debug") == 0)
				o->log_level = LOG_DEBUG;
			else if (strcmp(optarg, "info") == 0)
				o->log_level = LOG_INFO;
			else if (strcmp(optarg, "warn") == 0)
				o->log_level = LOG_WARN;
			else if (strcmp(optarg, "error") == 0)
				o->log_level = LOG_ERROR;
			else {
				fprintf(stderr, "emberd: --log-level must be debug, info, warn "
						"or error\n");
				return -1;
			}
			break;
		case OPT_KEEP_SANDBOXES:
			o->keep_sandboxes = true;
			break;
		case OPT_HELP:
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf("emberd %s\n", EMBER_VERSION);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "emberd: unexpected argument `%s`\n", argv[optind]);
		return -1;
	}
	if (o->manager.default_timeout_s > o->manager.max_timeout_s) {
		fprintf(stderr, "emberd: --default-timeout-s exceeds --max-timeout-s\n");
		return -1;
	}
	return 0;
}

/* auto: firecracker only where it can really run (binary present and hardware KVM). */
static const char *select_vmm(const struct options *o, char *reason, size_t size)
{
	char path[PATH_MAX], kvm_reason[160];
	struct ember_error *err = NULL;

	if (strcmp(o->vmm, "auto") != 0) {
		snprintf(reason, size, "--vmm %s", o->vmm);
		return o->vmm;
	}
	if (vmm_find_binary(o->firecracker_bin != NULL ? o->firecracker_bin : "firecracker", path,
			    &err) < 0) {
		snprintf(reason, size, "auto: firecracker not found, using qemu");
		ember_error_free(&err);
		return "qemu";
	}
	if (!accel_kvm_usable(kvm_reason, sizeof(kvm_reason))) {
		snprintf(reason, size, "auto: firecracker found but KVM unusable (%s), using qemu",
			 kvm_reason);
		return "qemu";
	}
	snprintf(reason, size, "auto: firecracker found and KVM has hardware virtualization");
	return "firecracker";
}

int main(int argc, char **argv)
{
	struct options o = {
		.api = { .addr = getenv("EMBERD_ADDR") != NULL ? getenv("EMBERD_ADDR")
							       : "127.0.0.1:7777",
			 .max_body_bytes = 4u << 20, .max_connections = 256,
			 .connection_timeout_s = 30 },
		.manager = { .run_dir = "/run/emberd", .max_sandboxes = 16,
			     .max_concurrent_boots = 4, .max_vcpus = 4, .max_memory_mib = 2048,
			     .default_timeout_s = 600, .max_timeout_s = 86400,
			     .boot_timeout_ms = 60000, .max_exec_timeout_ms = 600000,
			     .max_output_bytes = 16u << 20, .max_processes = 256,
			     .max_overlay_mib = 2048, .snapshots = true, .pool_size = 1 },
		.images_dir = getenv("IMAGES_DIR") != NULL ? getenv("IMAGES_DIR")
							   : "/var/lib/emberd/images",
		.vmm = "auto",
		.log_level = LOG_INFO,
	};
	struct vmm_driver_config dcfg = { 0 };
	struct api_context ctx = { 0 };
	struct catalog cat = { 0 };
	struct vmm_driver *driver = NULL;
	struct manager *manager = NULL;
	struct api_server *server = NULL;
	struct ember_error *err = NULL;
	char vmm_reason[256];
	sigset_t signals;
	int sig = 0, status = 1;

	if (parse_options(argc, argv, &o) < 0)
		return 2;
	log_set_level(o.log_level);
	signal(SIGPIPE, SIG_IGN);
	/* Block the shutdown signals before any thread exists, so only sigwait() below sees them. */
	sigemptyset(&signals);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);

	if (catalog_load(o.images_dir, &cat, &err) < 0)
		goto fail;
	dcfg.name = select_vmm(&o, vmm_reason, sizeof(vmm_reason));
	dcfg.qemu_bin = o.qemu_bin;
	dcfg.firecracker_bin = o.firecracker_bin;
	dcfg.jailer_bin = o.jailer_bin;
	dcfg.accel = o.accel;
	dcfg.cgroup_root = o.cgroup_root;
	dcfg.kernel_args = o.kernel_args;
	if (catalog_check_files(&cat, strcmp(dcfg.name, "firecracker") == 0, &err) < 0 ||
	    vmm_driver_create(&dcfg, &driver, &err) < 0)
		goto fail;
	log_event(LOG_INFO, NULL, "daemon.vmm", -1, "%s; %s", vmm_driver_description(driver),
		  vmm_reason);
	log_event(LOG_INFO, NULL, "daemon.cgroups", -1, "%s", vmm_driver_cgroup_status(driver));
	if (strcmp(vmm_driver_accel_name(driver), "tcg") == 0)
		log_event(LOG_WARN, NULL, "daemon.accel", -1,
			  "no usable hardware virtualization: guests run under software emulation "
			  "(TCG); isolation holds, boots take seconds instead of milliseconds");
	if (manager_create(&o.manager, &cat, driver, &manager, &err) < 0)
		goto fail;
	{
		struct manager_recovery rec;
		int64_t t0 = time_mono_ms();

		manager_recover(manager, &rec);
		if (rec.reattached + rec.cleaned + rec.strays > 0)
			log_event(LOG_INFO, NULL, "daemon.recovered", time_mono_ms() - t0,
				  "re-attached %u sandboxes, cleaned %u, killed %u stray VMMs",
				  rec.reattached, rec.cleaned, rec.strays);
	}
	manager_start_background(manager);
	ctx.manager = manager;
	ctx.catalog = &cat;
	ctx.driver = driver;
	ctx.vmm_selection_reason = vmm_reason;
	ctx.started_mono_ms = time_mono_ms();
	if (api_server_start(&o.api, &ctx, &server, &err) < 0)
		goto fail;
	log_event(LOG_INFO, NULL, "daemon.listening", -1, "emberd %s on %s (port %u)%s%s; %zu packs "
		  "from %s", EMBER_VERSION, o.api.addr, api_server_port(server),
		  o.api.unix_path != NULL ? " and " : "",
		  o.api.unix_path != NULL ? o.api.unix_path : "", cat.count, o.images_dir);

	while (sigwait(&signals, &sig) == 0 && sig == SIGHUP)
		log_event(LOG_INFO, NULL, "daemon.sighup", -1, "ignored (no reloadable config)");
	log_event(LOG_INFO, NULL, "daemon.stopping", -1, "signal %d: %s sandboxes", sig,
		  o.keep_sandboxes ? "leaving running" : "destroying");
	/* Sandboxes first, so requests blocked on guests end; then the server waits for its
	 * connection threads; only then is the manager freed. */
	manager_shutdown(manager, o.keep_sandboxes);
	api_server_stop(server);
	manager_free(manager);
	vmm_driver_free(driver);
	catalog_release(&cat);
	log_event(LOG_INFO, NULL, "daemon.stopped", -1, "clean shutdown");
	return 0;

fail:
	fprintf(stderr, "emberd: %s\n", err != NULL ? err->message : "startup failed");
	ember_error_free(&err);
	api_server_stop(server);
	manager_free(manager);
	vmm_driver_free(driver);
	catalog_release(&cat);
	return status;
}
