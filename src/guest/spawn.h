/* spawn.h - the privileged step of an exec: fork, drop to the sandbox user, execve.
 * Called by exec.c only; everything between fork and execve lives here and nowhere else.
 * Never returns before the child either executed the program or reported why it could not,
 * and never lets the child keep an fd, a signal mask or a credential of the agent. */
#ifndef EMBER_GUEST_SPAWN_H
#define EMBER_GUEST_SPAWN_H

#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "util/error.h"

struct guest_spawn_spec {
	char *const *argv;  /* argv[0] absolute, or looked up in the base PATH */
	char *const *envp;
	const char *cwd;
	bool change_ids;    /* drop to uid/gid (the agent runs as root) */
	uid_t uid;
	gid_t gid;
	int stdin_fd;       /* become the child's 0, 1, 2 */
	int stdout_fd;
	int stderr_fd;
	rlim_t max_processes; /* RLIMIT_NPROC of the uid (counts every process it owns) */
	int cgroup_procs_fd;  /* >= 0: the child joins this cgroup (writes "0") before exec */
	int fd3;              /* > 2: becomes the child's fd 3 (a context's reply pipe); else none */
};

/* The directories an interpreter name without a slash is looked up in. */
#define GUEST_BASE_PATH "/usr/local/bin:/usr/bin:/bin"

/* Returns the child's pid (the leader of a new session and process group) once execve
 * succeeded; -1 with EMBER_E_GUEST and the child's reason ("setuid 1000: ...") otherwise,
 * the failed child already reaped. */
pid_t guest_spawn(const struct guest_spawn_spec *spec, struct ember_error **err);

#endif
