/* spawn.c - fork/credentials/rlimits/execve for one exec. */
#include "guest/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest/limits.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

enum spawn_step {
	STEP_SIGNALS = 1, STEP_SETSID, STEP_STDIO, STEP_FDS, STEP_RLIMIT, STEP_CWD,
	STEP_GROUPS, STEP_GID, STEP_UID, STEP_VERIFY, STEP_NO_NEW_PRIVS, STEP_EXEC, STEP_CGROUP,
};

static const char *step_name(int step)
{
	switch (step) {
	case STEP_SIGNALS: return "reset signals";
	case STEP_SETSID: return "setsid";
	case STEP_CGROUP: return "join the exec's cgroup";
	case STEP_STDIO: return "set up stdin/stdout/stderr";
	case STEP_FDS: return "close inherited descriptors";
	case STEP_RLIMIT: return "set resource limits";
	case STEP_CWD: return "chdir to the working directory";
	case STEP_GROUPS: return "drop supplementary groups";
	case STEP_GID: return "setgid";
	case STEP_UID: return "setuid";
	case STEP_VERIFY: return "verify the dropped credentials";
	case STEP_NO_NEW_PRIVS: return "set no_new_privs";
	case STEP_EXEC: return "execve";
	}
	return "spawn";
}

struct spawn_report {
	int step;
	int errnum;
};

static void __attribute__((noreturn)) child_fail(int report_fd, int step)
{
	struct spawn_report r = { .step = step, .errnum = errno };

	if (write(report_fd, &r, sizeof(r)) < 0)
		_exit(126);
	_exit(127);
}

/* Marks every fd from first on close-on-exec (the report pipe must survive until execve). */
static int cloexec_all(int first)
{
	struct rlimit rl;
	int fd, max = 65536;

	if (syscall(SYS_close_range, (unsigned)first, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)max)
		max = (int)rl.rlim_cur;
	for (fd = first; fd < max; fd++) {
		int flags = fcntl(fd, F_GETFD);

		if (flags >= 0 && fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
			return -1;
	}
	return 0;
}

static int set_limits(rlim_t max_processes)
{
	const struct {
		int resource;
		rlim_t value;
	} limits[] = {
		{ RLIMIT_NPROC, max_processes },
		{ RLIMIT_NOFILE, GUEST_RLIMIT_NOFILE },
		{ RLIMIT_CORE, 0 },
		{ RLIMIT_FSIZE, GUEST_RLIMIT_FSIZE },
	};
	size_t i;

	for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		struct rlimit rl = { .rlim_cur = limits[i].value, .rlim_max = limits[i].value };

		if (setrlimit(limits[i].resource, &rl) < 0)
			return -1;
	}
	return 0;
}

static void set_oom_score(void)
{
	/* The sandbox's programs are what the OOM killer should pick first (PID 1 is -1000).
	 * Best effort: no /proc, no adjustment. */
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (write(fd, "1000", 4) < 0)
			errno = 0;
		close(fd);
	}
}

static void exec_program(const struct guest_spawn_spec *spec)
{
	const char *name = spec->argv[0];
	const char *dir = GUEST_BASE_PATH;
	int saved = ENOENT;

	if (strchr(name, '/') != NULL) {
		execve(name, spec->argv, spec->envp);
		return;
	}
	while (*dir != '\0') {
		const char *colon = strchr(dir, ':');
		size_t len = colon != NULL ? (size_t)(colon - dir) : strlen(dir);
		char path[4096];

		if (snprintf(path, sizeof(path), "%.*s/%s", (int)len, dir, name) <
		    (int)sizeof(path)) {
			execve(path, spec->argv, spec->envp);
			if (errno != ENOENT && errno != ENOTDIR)
				saved = errno;
		}
		dir += len + (colon != NULL ? 1 : 0);
	}
	errno = saved;
}

static void __attribute__((noreturn)) child(const struct guest_spawn_spec *spec, int report)
{
	sigset_t none;
	int sig;
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;

	/* The agent blocks every signal and handles none itself; the program gets defaults. */
	for (sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL); /* fails harmlessly for SIGKILL/SIGSTOP and RT gaps */
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		child_fail(report, STEP_SIGNALS);
	if (setsid() < 0)
		child_fail(report, STEP_SETSID);
	/* Join before running anything of the user's: every descendant is then in the cgroup. */
	if (spec->cgroup_procs_fd >= 0 && write(spec->cgroup_procs_fd, "0", 1) != 1)
		child_fail(report, STEP_CGROUP);
	/* The report pipe must not sit where fd 3 goes. */
	if (spec->fd3 > 2 && report == 3 && (report = fcntl(report, F_DUPFD_CLOEXEC, 4)) < 0)
		_exit(127);
	if (dup2(spec->stdin_fd, 0) < 0 || dup2(spec->stdout_fd, 1) < 0 ||
	    dup2(spec->stderr_fd, 2) < 0 || (spec->fd3 > 2 && dup2(spec->fd3, 3) < 0) ||
	    (spec->fd3 == 3 && fcntl(3, F_SETFD, 0) < 0)) /* dup2(3, 3) keeps its CLOEXEC */
		child_fail(report, STEP_STDIO);
	if (cloexec_all(spec->fd3 > 2 ? 4 : 3) < 0)
		child_fail(report, STEP_FDS);
	if (set_limits(spec->max_processes) < 0)
		child_fail(report, STEP_RLIMIT);
	set_oom_score();
	if (spec->change_ids) {
		if (setgroups(0, NULL) < 0)
			child_fail(report, STEP_GROUPS);
		if (setresgid(spec->gid, spec->gid, spec->gid) < 0)
			child_fail(report, STEP_GID);
		if (setresuid(spec->uid, spec->uid, spec->uid) < 0)
			child_fail(report, STEP_UID);
		/* Trust but verify: a half-dropped credential must never run user code. */
		errno = EPERM;
		if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0 ||
		    ruid != spec->uid || euid != spec->uid || suid != spec->uid ||
		    rgid != spec->gid || egid != spec->gid || sgid != spec->gid ||
		    getgroups(0, NULL) != 0 || (spec->uid != 0 && setuid(0) == 0))
			child_fail(report, STEP_VERIFY);
	}
	/* As the user: a cwd (a client's choice) the user could not reach is refused, not
	 * entered by root on its behalf. */
	if (chdir(spec->cwd) < 0)
		child_fail(report, STEP_CWD);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(report, STEP_NO_NEW_PRIVS);
	/* The agent (nice 0) must win the CPU against any number of busy user programs, or it
	 * cannot enforce their timeouts in time; an unprivileged program cannot undo this. Only
	 * now, right before execve: the agent waits for this child to get there, and at the
	 * programs' priority, among 50 busy loops, that wait took seconds per exec. */
	setpriority(PRIO_PROCESS, 0, GUEST_EXEC_NICE);
	exec_program(spec);
	child_fail(report, STEP_EXEC);
}

pid_t guest_spawn(const struct guest_spawn_spec *spec, struct ember_error **err)
{
	struct spawn_report report;
	int pipefd[2];
	ssize_t n;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return ember_error_sys(err, "pipe");
	pid = fork();
	if (pid < 0) {
		ember_error_sys(err, "fork");
		close(pipefd[0]);
		close(pipefd[1]);
		return -1;
	}
	if (pid == 0) {
		close(pipefd[0]);
		child(spec, pipefd[1]);
	}
	close(pipefd[1]);
	/* Blocks only until the child's execve (which closes the pipe) or its report: both are
	 * our own code running in the child, not the user's program. */
	do {
		n = read(pipefd[0], &report, sizeof(report));
	} while (n < 0 && errno == EINTR);
	close(pipefd[0]);
	if (n == 0)
		return pid;
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(report))
		return ember_error_set(err, EMBER_E_GUEST, 0, "the child died before execve");
	if (report.step == STEP_EXEC || report.step == STEP_CWD)
		return ember_error_set(err, EMBER_E_GUEST, report.errnum, "%s `%s`: %s",
				       step_name(report.step),
				       report.step == STEP_EXEC ? spec->argv[0] : spec->cwd,
				       strerror(report.errnum));
	return ember_error_set(err, EMBER_E_GUEST, report.errnum, "%s: %s", step_name(report.step),
			       strerror(report.errnum));
}
