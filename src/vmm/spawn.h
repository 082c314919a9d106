/* spawn.h - starting a VMM process: clean fds, empty signal mask, own session, output to an fd.
 * Used by the drivers (unjailed: --no-jail, Firecracker); the child gets no fd of the daemon but
 * stdin (/dev/null), the output fd and the fds a driver asks to keep.
 * Never sets PDEATHSIG: VMs outlive a crashed daemon so a restarted one can re-attach. */
#ifndef EMBER_VMM_SPAWN_H
#define EMBER_VMM_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

/* argv[0] must be an absolute path. stdout and stderr are out_fd (the console FIFO's open
 * file, console.h); keep_fd (>= 3, or -1) stays open in the child at the same number. */
int vmm_spawn(char *const argv[], int out_fd, int keep_fd, pid_t *pid, int *pidfd,
	      struct ember_error **err);

/* vmm_spawn() with the child's working directory set to cwd (an existing directory; NULL: the
 * daemon's). Firecracker resolves the relative paths a snapshot records against it. */
int vmm_spawn_in(char *const argv[], const char *cwd, int out_fd, pid_t *pid, int *pidfd,
		 struct ember_error **err);

/* vmm_spawn() keeping several fds open in the child at their numbers (QEMU: its console's
 * listening socket and a clone's memfd). */
int vmm_spawn_fds(char *const argv[], int out_fd, const int *keep_fds, size_t nkeep, pid_t *pid,
		  int *pidfd, struct ember_error **err);

/* Resolves a command name against PATH (or checks an explicit path) into out[PATH_MAX]. */
int vmm_find_binary(const char *name, char *out, struct ember_error **err);

#endif
