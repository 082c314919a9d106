/* spawn.h - starting a VMM process: clean fds, empty signal mask, own session, output to a log.
 * Used by the drivers; the child gets no fd of the daemon but stdin (/dev/null) and the log.
 * Never sets PDEATHSIG: VMs outlive a crashed daemon so a restarted one can re-attach. */
#ifndef EMBER_VMM_SPAWN_H
#define EMBER_VMM_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

/* argv[0] must be an absolute path. Output (stdout+stderr) is appended to log_path. */
int vmm_spawn(char *const argv[], const char *log_path, pid_t *pid, int *pidfd,
	      struct ember_error **err);

/* vmm_spawn() with the child's working directory set to cwd (an existing directory; NULL: the
 * daemon's). Firecracker resolves the relative paths a snapshot records against it. */
int vmm_spawn_in(char *const argv[], const char *cwd, const char *log_path, pid_t *pid,
		 int *pidfd, struct ember_error **err);

/* vmm_spawn() with the log already open (log_fd, which the caller keeps) and keep_fds left open
 * in the child at the same numbers (a clone's memfd). */
int vmm_spawn_fds(char *const argv[], int log_fd, const int *keep_fds, size_t nkeep, pid_t *pid,
		  int *pidfd, struct ember_error **err);

/* Resolves a command name against PATH (or checks an explicit path) into out[PATH_MAX]. */
int vmm_find_binary(const char *name, char *out, struct ember_error **err);

#endif
