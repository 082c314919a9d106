/* emberd - the host daemon: flags and config file (options.c, config.c), startup checks, VMM
 * selection, signal handling. Everything else lives in src/: api (HTTP), sandbox (manager,
 * catalog), vmm (drivers), channel.
 * main runs one phase per function: parse, set up, start, serve until a signal, tear down. */
#include <limits.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/mcp.h"
#include "api/server.h"
#include "options.h"
#include "sandbox/catalog.h"
#include "sandbox/catalogdiff.h"
#include "sandbox/manager.h"
#include "util/fdio.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "vmm/accel.h"
#include "vmm/spawn.h"
#include "vmm/vmm.h"

/* Everything the daemon starts, in start order; stop_daemon releases what is there. */
struct daemon {
	struct options o;
	sigset_t signals;
	struct catalog cat;
	struct vmm_driver *driver;
	struct egress *egress;
	struct manager *manager;
	struct api_server *server;
	struct mcp_server *mcp;
	struct api_context ctx;
	char vmm_reason[256];
	/* The mount policy's resolved paths (o.mount_policy points at them), malloc'd. */
	char *mount_paths[MOUNT_ALLOW_MAX + 12];
	size_t nmount_paths;
};

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

/* Block the shutdown signals before any thread exists, so only sigwait() in serve sees them. */
static void block_signals(struct daemon *d)
{
	log_set_level(d->o.log_level);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&d->signals);
	sigaddset(&d->signals, SIGTERM);
	sigaddset(&d->signals, SIGINT);
	sigaddset(&d->signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &d->signals, NULL);
	if (d->o.config.path != NULL)
		log_event(LOG_INFO, NULL, "daemon.config", -1,
			  "settings from %s (%zu keys; command-line flags override it)",
			  d->o.config.path, d->o.config.nkeys);
}

static int start_driver(struct daemon *d, struct ember_error **err)
{
	const struct options *o = &d->o;
	struct vmm_driver_config dcfg = {
		.name = select_vmm(o, d->vmm_reason, sizeof(d->vmm_reason)),
		.qemu_bin = o->qemu_bin,
		.firecracker_bin = o->firecracker_bin,
		.jailer_bin = o->jailer_bin,
		.accel = o->accel,
		.cgroup_root = o->cgroup_root,
		.kernel_args = o->kernel_args,
		.no_jail = o->no_jail,
		.vmm_uid_base = o->vmm_uid_base,
	};

	if (catalog_check_files(&d->cat, strcmp(dcfg.name, "firecracker") == 0, err) < 0 ||
	    catalog_check_pack_list(&d->cat, o->manager.pool_packs, "--pool-packs", err) < 0 ||
	    vmm_driver_create(&dcfg, &d->driver, err) < 0)
		return -1;
	log_event(LOG_INFO, NULL, "daemon.vmm", -1, "%s; %s", vmm_driver_description(d->driver),
		  d->vmm_reason);
	log_event(LOG_INFO, NULL, "daemon.cgroups", -1, "%s",
		  vmm_driver_cgroup_status(d->driver));
	if (o->no_jail)
		log_event(LOG_WARN, NULL, "daemon.no_jail", -1,
			  "!!! --no-jail: every VMM runs as %s with the daemon's capabilities and "
			  "host view; a guest that escapes QEMU owns this host. Debugging only !!!",
			  geteuid() == 0 ? "root" : "the daemon's user");
	if (strcmp(vmm_driver_accel_name(d->driver), "tcg") == 0)
		log_event(LOG_WARN, NULL, "daemon.accel", -1,
			  "no usable hardware virtualization: guests run under software emulation "
			  "(TCG), which QEMU does not treat as a security boundary: each guest keeps "
			  "its own kernel, and its jailed VMM is what a guest escaping TCG would reach "
			  "(docs/security.md); cold boots take about a second (docs/snapshots.md) "
			  "instead of milliseconds");
	return 0;
}

/* realpath(path) kept in d (NULL when path is NULL or does not exist, if optional). */
static const char *keep_resolved(struct daemon *d, const char *path, const char *what,
				 bool optional, struct ember_error **err)
{
	char *resolved;

	if (path == NULL)
		return NULL;
	resolved = realpath(path, NULL);
	if (resolved == NULL) {
		if (optional && errno == ENOENT)
			return NULL;
		ember_error_set(err, EMBER_E_INVALID, errno, "%s `%s`: %s", what, path,
				strerror(errno));
		return NULL;
	}
	d->mount_paths[d->nmount_paths++] = resolved;
	return resolved;
}

/* --allow-mount's directories resolved (each must exist and be a directory), and what is never
 * mountable under them: the run dir (made by then), the images, the config and token files,
 * the Unix socket, the VMM's and jailer's binaries and the jailer's chroot base. */
static int resolve_mount_policy(struct daemon *d, struct ember_error **err)
{
	struct mount_policy *p = &d->o.mount_policy;
	const char *jail_base = getenv("EMBERD_JAILER_CHROOT_BASE");
	const char *deny[] = { d->o.manager.run_dir, d->o.manager.state_dir, d->o.images_dir,
			       d->o.config.path,
			       d->o.api.auth_token_file, d->o.api.unix_path,
			       vmm_driver_binary(d->driver), d->o.jailer_bin,
			       jail_base != NULL ? jail_base : "/srv/jailer" };
	struct stat st;
	size_t i;

	for (i = 0; i < d->o.nallow_mounts; i++) {
		const char *dir = keep_resolved(d, d->o.allow_mounts[i], "--allow-mount", false,
						err);

		if (dir == NULL)
			return -1;
		if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
			return ember_error_set(err, EMBER_E_INVALID, 0, "--allow-mount `%s` is not a "
					       "directory", d->o.allow_mounts[i]);
		p->allow[p->nallow++] = dir;
	}
	for (i = 0; i < sizeof(deny) / sizeof(deny[0]); i++) {
		struct ember_error *ignored = NULL;
		const char *path = keep_resolved(d, deny[i], "path", true, &ignored);

		ember_error_free(&ignored);
		/* Not there yet (the run dir before its first start): its name as given. */
		if (path == NULL && deny[i] != NULL)
			path = deny[i];
		if (path != NULL)
			p->deny[p->ndeny++] = path;
	}
	if (p->nallow > 0)
		log_event(LOG_INFO, NULL, "daemon.mounts", -1, "%zu --allow-mount directories; "
			  "sandboxes may mount what lies under them", p->nallow);
	return 0;
}

/* The manager, after re-attaching what a previous daemon left running. */
static int start_manager(struct daemon *d, struct ember_error **err)
{
	struct manager_recovery rec;
	int64_t t0;

	if (egress_create(&d->o.egress, &d->egress, err) < 0)
		return ember_error_wrap(err, "network");
	log_event(LOG_INFO, NULL, "daemon.network", -1, "%s", egress_description(d->egress));
	d->o.manager.egress = d->egress;
	d->o.manager.mounts = &d->o.mount_policy; /* filled once the run dir exists */
	if (manager_create(&d->o.manager, &d->cat, d->driver, &d->manager, err) < 0 ||
	    resolve_mount_policy(d, err) < 0)
		return -1;
	t0 = time_mono_ms();
	manager_recover(d->manager, &rec);
	if (rec.reattached + rec.cleaned + rec.strays > 0)
		log_event(LOG_INFO, NULL, "daemon.recovered", time_mono_ms() - t0,
			  "re-attached %u sandboxes, cleaned %u, killed %u stray VMMs",
			  rec.reattached, rec.cleaned, rec.strays);
	manager_start_background(d->manager);
	return 0;
}

static int start_server(struct daemon *d, struct ember_error **err)
{
	const struct api_server_config *api = &d->o.api;

	if (mcp_server_new(d->manager, d->o.mcp_session_idle_s, &d->mcp, err) < 0)
		return -1;
	d->ctx = (struct api_context){ .manager = d->manager, .driver = d->driver, .vmm_selection_reason = d->vmm_reason,
				       .started_mono_ms = time_mono_ms(), .mcp = d->mcp };
	if (api_server_start(api, &d->ctx, &d->server, err) < 0)
		return -1;
	log_event(LOG_INFO, NULL, "daemon.listening", -1, "emberd %s on %s (port %u)%s%s; %zu packs "
		  "from %s", EMBER_VERSION, api->addr, api_server_port(d->server),
		  api->unix_path != NULL ? " and " : "",
		  api->unix_path != NULL ? api->unix_path : "", d->cat.count, d->o.images_dir);
	if (api->e2b_addr != NULL)
		log_event(LOG_INFO, NULL, "daemon.listening_e2b", -1,
			  "E2B-compatible API on %s (port %u)", api->e2b_addr,
			  api_server_e2b_port(d->server));
	return 0;
}

static int start_daemon(struct daemon *d, struct ember_error **err)
{
	/* The kernel and packs every VM boots: nobody else may swap or write them. */
	if (dir_check_trusted(d->o.images_dir, "--images", err) < 0) {
		if ((*err)->errno_value == ENOENT)
			ember_error_wrap(err, "no images (build them with `make images`, or point "
					 "--images or $IMAGES_DIR at them)");
		return -1;
	}
	if (
	    catalog_load(d->o.images_dir, &d->cat, err) < 0 || start_driver(d, err) < 0 ||
	    start_manager(d, err) < 0 || start_server(d, err) < 0)
		return -1;
	return 0;
}

/* SIGHUP: packs.json read again, as POST /packs/reload does; the outcome is logged. */
static void reload_catalog(struct daemon *d)
{
	struct catalog_diff diff;
	struct ember_error *err = NULL;
	char text[2048];
	size_t i, used = 0;
	int c;

	if (manager_reload(d->manager, &diff, &err) < 0) {
		log_event(LOG_WARN, NULL, "daemon.reload_failed", -1, "SIGHUP: %s; the catalog in "
			  "force is unchanged", err->message);
		ember_error_free(&err);
		return;
	}
	text[0] = '\0';
	for (c = CATALOG_ADDED; c <= CATALOG_UNCHANGED; c++) {
		const char *sep = "";

		used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%s=[", c > 0 ? " " : "",
					 catalog_change_name((enum catalog_change)c));
		for (i = 0; i < diff.count && used < sizeof(text); i++) {
			if ((int)diff.packs[i].change != c)
				continue;
			used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%s", sep,
						 diff.packs[i].name);
			sep = ",";
		}
		if (used < sizeof(text))
			used += (size_t)snprintf(text + used, sizeof(text) - used, "]");
		if (used >= sizeof(text))
			break;
	}
	log_event(LOG_INFO, NULL, "daemon.reloaded", -1, "SIGHUP: catalog %s: %s",
		  diff.changes > 0 ? "reloaded" : "unchanged", text);
}

/* Serves until SIGTERM or SIGINT (SIGHUP reloads the catalog); returns the signal. */
static int serve(struct daemon *d)
{
	int sig = 0;

	while (sigwait(&d->signals, &sig) == 0 && sig == SIGHUP)
		reload_catalog(d);
	return sig;
}

/* Sandboxes first, so requests blocked on guests end; then the server waits for its connection
 * threads; only then is the manager freed. After a failed start (served false) it releases what
 * was made. */
static void stop_daemon(struct daemon *d, bool served)
{
	/* MCP sessions' sandboxes are deleted even with --keep-sandboxes: their sessions die
	 * with this daemon, so nobody could use or end them. */
	if (d->mcp != NULL)
		mcp_server_stop(d->mcp);
	if (served)
		manager_shutdown(d->manager, d->o.keep_sandboxes);
	api_server_stop(d->server);
	mcp_server_free(d->mcp);
	manager_free(d->manager);
	egress_free(d->egress);
	vmm_driver_free(d->driver);
	catalog_release(&d->cat);
	while (d->nmount_paths > 0)
		free(d->mount_paths[--d->nmount_paths]);
}

int main(int argc, char **argv)
{
	struct daemon d = { 0 };
	struct ember_error *err = NULL;
	int sig;

	switch (options_parse(argc, argv, &d.o)) {
	case OPTIONS_RUN: break;
	case OPTIONS_EXIT: options_release(&d.o); return 0;
	case OPTIONS_BAD: options_release(&d.o); return 2;
	}
	block_signals(&d);
	if (start_daemon(&d, &err) < 0) {
		fprintf(stderr, "emberd: %s\n", err->message);
		ember_error_free(&err);
		stop_daemon(&d, false);
		options_release(&d.o);
		return 1;
	}
	sig = serve(&d);
	log_event(LOG_INFO, NULL, "daemon.stopping", -1, "signal %d: %s sandboxes", sig,
		  d.o.keep_sandboxes ? "leaving running" : "destroying");
	stop_daemon(&d, true);
	log_event(LOG_INFO, NULL, "daemon.stopped", -1, "clean shutdown");
	options_release(&d.o);
	return 0;
}
