/* spawn.c - fork/exec of VMM processes with a pidfd. */
#include "vmm/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/close_range.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "vmm/priority.h"

extern char **environ;

static int pidfd_open_compat(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int spawn(char *const argv[], const char *cwd, int log_fd, const int *keep_fds,
		 size_t nkeep, pid_t *pid_out, int *pidfd_out, struct ember_error **err)
{
	_cleanup_close_ int null_fd = -1;
	int pidfd;
	pid_t pid;

	if (log_fd < 0)
		return ember_error_set(err, EMBER_E_INTERNAL, EBADF, "no output fd for `%s`", argv[0]);
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd < 0)
		return ember_error_sys(err, "open /dev/null");
	pid = fork();
	if (pid < 0)
		return ember_error_sys(err, "fork for `%s`", argv[0]);
	if (pid == 0) {
		/* Child: async-signal-safe calls only (the daemon is multi-threaded). */
		sigset_t none;
		size_t i;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		prio_enter_child();
		if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
			_exit(126);
		if (cwd != NULL && chdir(cwd) < 0)
			_exit(126);
		syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
		for (i = 0; i < nkeep; i++) {
			if (fcntl(keep_fds[i], F_SETFD, 0) < 0)
				_exit(126);
		}
		execve(argv[0], argv, environ);
		_exit(127);
	}
	pidfd = pidfd_open_compat(pid);
	if (pidfd < 0) {
		ember_error_sys(err, "pidfd_open for `%s`", argv[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	*pid_out = pid;
	*pidfd_out = pidfd;
	return 0;
}

int vmm_spawn(char *const argv[], int out_fd, int keep_fd, pid_t *pid_out, int *pidfd_out,
	      struct ember_error **err)
{
	return spawn(argv, NULL, out_fd, &keep_fd, keep_fd >= 0 ? 1 : 0, pid_out, pidfd_out, err);
}

int vmm_spawn_in(char *const argv[], const char *cwd, int out_fd, pid_t *pid_out,
		 int *pidfd_out, struct ember_error **err)
{
	return spawn(argv, cwd, out_fd, NULL, 0, pid_out, pidfd_out, err);
}

int vmm_spawn_fds(char *const argv[], int log_fd, const int *keep_fds, size_t nkeep,
		  pid_t *pid_out, int *pidfd_out, struct ember_error **err)
{
	return spawn(argv, NULL, log_fd, keep_fds, nkeep, pid_out, pidfd_out, err);
}

int vmm_find_binary(const char *name, char *out, struct ember_error **err)
{
	const char *path_env;
	_cleanup_free_ char *path = NULL;
	char *dir, *save = NULL;

	if (strchr(name, '/') != NULL) {
		if (realpath(name, out) == NULL)
			return ember_error_sys(err, "binary `%s` not found", name);
		if (access(out, X_OK) != 0)
			return ember_error_sys(err, "binary `%s` is not executable", out);
		return 0;
	}
	path_env = getenv("PATH");
	path = strdup(path_env != NULL ? path_env : "/usr/local/bin:/usr/bin:/bin");
	if (path == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	for (dir = strtok_r(path, ":", &save); dir != NULL; dir = strtok_r(NULL, ":", &save)) {
		char candidate[PATH_MAX];
		struct stat st;

		if (snprintf(candidate, sizeof(candidate), "%s/%s", dir, name) >=
		    (int)sizeof(candidate))
			continue;
		if (stat(candidate, &st) == 0 && S_ISREG(st.st_mode) && access(candidate, X_OK) == 0) {
			if (realpath(candidate, out) == NULL)
				continue;
			return 0;
		}
	}
	return ember_error_set(err, EMBER_E_INTERNAL, ENOENT, "`%s` not found on PATH", name);
}
