/* options.h - emberd's settings: one table gives each flag its name, the field it sets, its
 * parser, its shower and its --help text, so the help, the config file's keys (config.h) and
 * --print-config are generated from what is parsed and cannot drift.
 * Called once by main before anything starts; never touches the system beyond reading the
 * config file and printing. */
#ifndef EMBERD_OPTIONS_H
#define EMBERD_OPTIONS_H

#include <stdbool.h>

#include "api/guard.h"
#include "api/server.h"
#include "config.h"
#include "net/egress.h"
#include "sandbox/manager.h"
#include "sandbox/mounts.h"
#include "util/log.h"
#include "vmm/vmm.h"

struct options {
	struct api_server_config api;
	bool addr_given;              /* --addr was on the command line (else EMBERD_ADDR or the
				       * default) */
	struct manager_config manager;
	const char *images_dir;
	const char *vmm;
	const char *qemu_bin;
	const char *firecracker_bin;
	const char *jailer_bin;
	const char *cgroup_root;
	const char *kernel_args;
	enum vmm_accel accel;
	bool no_jail;
	unsigned vmm_uid_base;
	enum log_level log_level;
	bool keep_sandboxes;
	unsigned mcp_session_idle_s;  /* --mcp-session-idle-s (api/mcp.h) */
	struct egress_config egress;  /* --network-modes, --egress-* */
	const char *allow_origins[API_ALLOW_ORIGINS_MAX]; /* api.allow_origins points here */
	/* --allow-mount as given (absolute); the daemon resolves them into mount_policy at start,
	 * and manager.mounts points there. */
	const char *allow_mounts[MOUNT_ALLOW_MAX];
	size_t nallow_mounts;
	struct mount_policy mount_policy;
	const char *config_path;      /* --config; NULL: CONFIG_DEFAULT_PATH when it exists */
	bool print_config;
	struct config_file config;    /* the file read; string settings may point into it */
};

enum options_result {
	OPTIONS_RUN = 0,    /* parsed: start the daemon */
	OPTIONS_EXIT = 1,   /* --help, --version or --print-config was printed: exit 0 */
	OPTIONS_BAD = -1,   /* the error was printed: exit 2 */
};

/* Fills o with the defaults (EMBERD_ADDR and IMAGES_DIR from the environment), then the config
 * file, then argv (which overrides the file). Whatever it returns, options_release frees o. */
enum options_result options_parse(int argc, char **argv, struct options *o);

/* Applies a config file's text to o (defaults first) the way options_parse applies a file, for
 * the fuzz target and unit tests: 0 or -1 with the error. */
int options_load_config_text(struct options *o, const char *text, size_t len,
			     struct ember_error **err);

void options_release(struct options *o);

#endif
