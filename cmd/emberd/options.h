/* options.h - emberd's command line: one table gives each flag its name, the field it sets, its
 * parser and its --help text, so the help is generated from what is parsed and cannot drift.
 * Called once by main before anything starts; never touches the system beyond printing. */
#ifndef EMBERD_OPTIONS_H
#define EMBERD_OPTIONS_H

#include <stdbool.h>

#include "api/guard.h"
#include "api/server.h"
#include "sandbox/manager.h"
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
	const char *allow_origins[API_ALLOW_ORIGINS_MAX]; /* api.allow_origins points here */
};

enum options_result {
	OPTIONS_RUN = 0,    /* parsed: start the daemon */
	OPTIONS_EXIT = 1,   /* --help or --version was printed: exit 0 */
	OPTIONS_BAD = -1,   /* the error was printed: exit 2 */
};

/* Fills o with the defaults (EMBERD_ADDR and IMAGES_DIR from the environment), then argv. */
enum options_result options_parse(int argc, char **argv, struct options *o);

#endif
