/* forkserver.c - the warm interpreter of plain python execs (forkserver.h). */
#include "guest/forkserver.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "guest/limits.h"
#include "guest/log.h"
#include "guest/scripts.h"
#include "guest/spawn.h"
#include "util/fdio.h"
#include "util/timeutil.h"

#define REQUEST_MAGIC "emberfs1"
#define REQUEST_FDS 4

struct guest_forkserver {
	char script[PATH_MAX];
	char interpreter[PATH_MAX]; /* what the running server is; "" when none runs */
	pid_t pid;                  /* 0: none runs (or it was reaped) */
	int sock;                   /* the agent's end of the socketpair; -1 when none runs */
	unsigned starts;            /* attempts so far (GUEST_FORKSERVER_STARTS_MAX) */
	bool ready;                 /* its "ready" came (else it is still starting) */
	bool gave_up_logged;
};

struct guest_forkserver *guest_forkserver_new(const char *script_dir, struct ember_error **err)
{
	struct guest_forkserver *fs = calloc(1, sizeof(*fs));

	if (fs == NULL) {
		ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
		return NULL;
	}
	if (snprintf(fs->script, sizeof(fs->script), "%s/forkserver.py", script_dir) >=
	    (int)sizeof(fs->script)) {
		free(fs);
		ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "fork server path too long");
		return NULL;
	}
	fs->sock = -1;
	return fs;
}

/* Kills the server; the agent's reaper (or the test) reaps it. */
static void stop(struct guest_forkserver *fs)
{
	if (fs->pid > 0)
		kill(fs->pid, SIGKILL);
	if (fs->sock >= 0)
		close(fs->sock);
	fs->sock = -1;
	fs->ready = false;
	fs->interpreter[0] = '\0';
}

void guest_forkserver_free(struct guest_forkserver *fs)
{
	if (fs == NULL)
		return;
	stop(fs);
	/* The agent-only mode removes its code directory at exit: the script must not keep it. */
	if (fs->starts > 0)
		unlink(fs->script);
	free(fs);
}

pid_t guest_forkserver_pid(const struct guest_forkserver *fs)
{
	return fs != NULL ? fs->pid : 0;
}

bool guest_forkserver_reaped(struct guest_forkserver *fs, pid_t pid)
{
	if (fs == NULL || pid <= 0 || pid != fs->pid)
		return false;
	fs->pid = 0;
	if (fs->sock >= 0) {
		guest_log("fork server exited: plain execs start python3 the old way until it is "
			  "restarted");
		stop(fs);
	}
	return true;
}

static bool python_name(const char *name)
{
	const char *base = strrchr(name, '/');
	size_t i;

	base = base != NULL ? base + 1 : name;
	if (strncmp(base, "python3", 7) != 0)
		return false;
	if (base[7] == '\0')
		return true;
	if (base[7] != '.' || base[8] == '\0')
		return false;
	for (i = 8; base[i] != '\0'; i++) {
		if (base[i] < '0' || base[i] > '9')
			return false;
	}
	return true;
}

/* What python3 reads from the environment at start-up: the server read its own instead. */
static bool env_changes_startup(char *const *env)
{
	size_t i;

	for (i = 0; env[i] != NULL; i++) {
		if (strncmp(env[i], "PYTHON", 6) == 0 || strncmp(env[i], "LANG=", 5) == 0 ||
		    strncmp(env[i], "LC_ALL=", 7) == 0 || strncmp(env[i], "LC_CTYPE=", 9) == 0)
			return true;
	}
	return false;
}

/* The path execve would run for name (as spawn.c looks it up). */
static bool resolve(const char *name, char *out, size_t size)
{
	const char *dir = GUEST_BASE_PATH;

	if (strchr(name, '/') != NULL)
		return snprintf(out, size, "%s", name) < (int)size && access(out, X_OK) == 0;
	while (*dir != '\0') {
		const char *colon = strchr(dir, ':');
		size_t len = colon != NULL ? (size_t)(colon - dir) : strlen(dir);

		if (snprintf(out, size, "%.*s/%s", (int)len, dir, name) < (int)size &&
		    access(out, X_OK) == 0)
			return true;
		dir += len + (colon != NULL ? 1 : 0);
	}
	return false;
}

bool guest_forkserver_eligible(const struct proto_exec *req, char *interp, size_t interp_size)
{
	if (req->command || req->fresh_interpreter || req->code_argument || req->argc != 1 ||
	    !python_name(req->argv[0]) || env_changes_startup(req->env))
		return false;
	return resolve(req->argv[0], interp, interp_size);
}

/* In the forked child: becomes the server (never returns). */
static void __attribute__((noreturn)) exec_server(const struct guest_forkserver *fs,
						  const char *interp, int sock)
{
	char nofile[24], fsize[24], nice[24];
	char *argv[] = { (char *)interp, "-s", (char *)fs->script, nofile, fsize, nice, NULL };
	char *envp[] = { "PATH=" GUEST_BASE_PATH, "LANG=C.UTF-8", NULL };
	sigset_t none;
	int sig, high, nul;

	for (sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	snprintf(nofile, sizeof(nofile), "%d", GUEST_RLIMIT_NOFILE);
	snprintf(fsize, sizeof(fsize), "%llu", (unsigned long long)GUEST_RLIMIT_FSIZE);
	snprintf(nice, sizeof(nice), "%d", GUEST_EXEC_NICE);
	high = fcntl(sock, F_DUPFD, 10);
	nul = open("/dev/null", O_RDWR);
	if (high < 0 || nul < 0 || setsid() < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 ||
	    dup2(high, 3) < 0)
		_exit(127);
	/* Everything above 3 (the agent's own fds) is closed; stderr stays the agent's log. */
	if (syscall(SYS_close_range, 4U, ~0U, 0U) < 0) {
		int fd;

		for (fd = 4; fd < 65536; fd++)
			close(fd);
	}
	/* The server never executes anything, and its children inherit this: no setuid program
	 * run by an exec regains privileges (as spawn.c sets it before execve). */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || chdir("/") < 0)
		_exit(127);
	execve(interp, argv, envp);
	_exit(127);
}

/* Waits (bounded) for the server's "ready". */
static int await_ready(struct guest_forkserver *fs, struct ember_error **err)
{
	char buf[16];
	ssize_t n;
	int ready = fd_wait(fs->sock, POLLIN, time_mono_ms() + GUEST_FORKSERVER_READY_MS, err);

	if (ready < 0)
		return -1;
	if (ready == 0)
		return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, 0, "not ready after %d ms",
				       GUEST_FORKSERVER_READY_MS);
	n = recv(fs->sock, buf, sizeof(buf), MSG_DONTWAIT);
	if (n != 5 || memcmp(buf, "ready", 5) != 0)
		return ember_error_set(err, EMBER_E_GUEST, n < 0 ? errno : 0,
				       n == 0 ? "exited while starting" : "bad ready message");
	return 0;
}

/* Forks and execs the server; its "ready" is awaited by the first exec that needs it. */
static int launch(struct guest_forkserver *fs, const char *interp, struct ember_error **err)
{
	int sv[2];
	pid_t pid;

	fs->starts++;
	if (guest_script_install(GUEST_SCRIPT_FORKSERVER, fs->script, err) < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return ember_error_sys(err, "socketpair");
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return ember_error_sys(err, "fork");
	}
	if (pid == 0)
		exec_server(fs, interp, sv[1]);
	close(sv[1]);
	fs->pid = pid;
	fs->sock = sv[0];
	snprintf(fs->interpreter, sizeof(fs->interpreter), "%s", interp);
	if (fd_set_nonblock(fs->sock, 1) < 0) {
		ember_error_sys(err, "set the fork server socket non-blocking");
		return -1;
	}
	return 0;
}

void guest_forkserver_prestart(struct guest_forkserver *fs, const char *name)
{
	struct ember_error *err = NULL;
	char interp[PATH_MAX];

	if (fs == NULL || fs->sock >= 0 || fs->starts >= GUEST_FORKSERVER_STARTS_MAX ||
	    !python_name(name) || !resolve(name, interp, sizeof(interp)))
		return;
	if (launch(fs, interp, &err) < 0) {
		guest_log_error(&err, "fork server: early start");
		stop(fs);
	}
}

/* A running server for interp, started if needed: false when none can be had. */
static bool ensure_running(struct guest_forkserver *fs, const char *interp)
{
	struct ember_error *err = NULL;

	if (fs->sock >= 0 && strcmp(fs->interpreter, interp) != 0)
		return false; /* another python: the old way */
	if (fs->sock >= 0 && !fs->ready) {
		/* started early (at boot) or by an earlier exec whose wait failed to finish */
		if (await_ready(fs, &err) < 0) {
			guest_log_error(&err, "fork server: start");
			stop(fs);
			return false;
		}
		fs->ready = true;
		guest_log("fork server %d ready (%s)", (int)fs->pid, interp);
	}
	if (fs->sock >= 0)
		return true;
	if (fs->starts >= GUEST_FORKSERVER_STARTS_MAX) {
		if (!fs->gave_up_logged)
			guest_log("fork server: all %u starts used up; plain execs start python3 the old "
				  "way from now on", fs->starts);
		fs->gave_up_logged = true;
		return false;
	}
	if (launch(fs, interp, &err) < 0 || await_ready(fs, &err) < 0) {
		guest_log_error(&err, "fork server: start");
		stop(fs);
		return false;
	}
	fs->ready = true;
	guest_log("fork server %d ready (%s)", (int)fs->pid, interp);
	return true;
}

static bool append(char *buf, size_t *len, const char *text)
{
	size_t n = strlen(text) + 1;

	if (n > GUEST_FORKSERVER_REQUEST_MAX - *len)
		return false;
	memcpy(buf + *len, text, n);
	*len += n;
	return true;
}

/* The request's bytes; false when it does not fit (the exec then starts the old way). */
static bool build_request(const struct guest_forkserver_request *req, char *buf, size_t *len)
{
	char num[5][24];
	size_t count = 0, i;

	while (req->envp[count] != NULL)
		count++;
	snprintf(num[0], sizeof(num[0]), "%d", req->change_ids ? 1 : 0);
	snprintf(num[1], sizeof(num[1]), "%u", (unsigned)req->uid);
	snprintf(num[2], sizeof(num[2]), "%u", (unsigned)req->gid);
	snprintf(num[3], sizeof(num[3]), "%llu", (unsigned long long)req->max_processes);
	snprintf(num[4], sizeof(num[4]), "%zu", count);
	*len = 0;
	if (!append(buf, len, REQUEST_MAGIC) || !append(buf, len, req->code_path) ||
	    !append(buf, len, req->cwd))
		return false;
	for (i = 0; i < 5; i++) {
		if (!append(buf, len, num[i]))
			return false;
	}
	for (i = 0; i < count; i++) {
		if (!append(buf, len, req->envp[i]))
			return false;
	}
	return true;
}

static int send_request(struct guest_forkserver *fs, const char *buf, size_t len, const int fds[4],
			struct ember_error **err)
{
	union {
		char space[CMSG_SPACE(sizeof(int) * REQUEST_FDS)];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.space,
		.msg_controllen = sizeof(control.space),
	};
	struct cmsghdr *cmsg;
	ssize_t n;

	memset(&control, 0, sizeof(control));
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int) * REQUEST_FDS);
	memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * REQUEST_FDS);
	do {
		n = sendmsg(fs->sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return ember_error_sys(err, "send the request");
	if ((size_t)n != len)
		return ember_error_set(err, EMBER_E_GUEST, 0, "short request send");
	return 0;
}

static int receive_reply(struct guest_forkserver *fs, struct guest_forkserver_reply *reply,
			 struct ember_error **err)
{
	char buf[GUEST_FORKSERVER_REPLY_MAX + 1];
	int ready = fd_wait(fs->sock, POLLIN, time_mono_ms() + GUEST_FORKSERVER_REPLY_MS, err);
	ssize_t n;

	if (ready < 0)
		return -1;
	if (ready == 0)
		return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, 0, "no reply within %d ms",
				       GUEST_FORKSERVER_REPLY_MS);
	do {
		n = recv(fs->sock, buf, sizeof(buf), MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return ember_error_sys(err, "receive the reply");
	if (n == 0)
		return ember_error_set(err, EMBER_E_GUEST, 0, "the server exited");
	return guest_forkserver_parse_reply(buf, (size_t)n, reply, err);
}

/* One request/reply exchange: 0 with the reply, -1 when the server failed. */
static int exchange(struct guest_forkserver *fs, const char *buf, size_t len,
		    const struct guest_forkserver_request *req, int go_read,
		    struct guest_forkserver_reply *reply, struct ember_error **err)
{
	const int fds[REQUEST_FDS] = { req->stdin_fd, req->stdout_fd, req->stderr_fd, go_read };

	if (send_request(fs, buf, len, fds, err) < 0 || receive_reply(fs, reply, err) < 0)
		return -1;
	if (reply->pid <= 0)
		return ember_error_set(err, EMBER_E_GUEST, reply->errnum, "%s: %s", reply->step,
				       strerror(reply->errnum));
	return 0;
}

/* A child that reported a failed step: what guest_spawn would say; 0 for a step spawn.c does
 * not have (the exec then starts the old way). */
static int child_failure(const struct guest_forkserver_request *req,
			 const struct guest_forkserver_reply *reply, struct ember_error **err)
{
	if (strcmp(reply->step, "child") == 0 || strcmp(reply->step, "request") == 0)
		return 0;
	if (strcmp(reply->step, "chdir to the working directory") == 0)
		return ember_error_set(err, EMBER_E_GUEST, reply->errnum, "%s `%s`: %s",
				       reply->step, req->cwd, strerror(reply->errnum));
	return ember_error_set(err, EMBER_E_GUEST, reply->errnum, "%s: %s", reply->step,
			       strerror(reply->errnum));
}

pid_t guest_forkserver_spawn(struct guest_forkserver *fs, const struct guest_forkserver_request *req,
			     int *go_fd, struct ember_error **err)
{
	struct guest_forkserver_reply reply;
	struct ember_error *why = NULL;
	char *buf;
	size_t len;
	int go[2];
	int ret;

	*go_fd = -1;
	if (fs == NULL || !ensure_running(fs, req->interpreter))
		return 0;
	buf = malloc(GUEST_FORKSERVER_REQUEST_MAX);
	if (buf == NULL)
		return 0;
	if (!build_request(req, buf, &len)) {
		free(buf);
		return 0; /* a huge environment: the old way, the server stays */
	}
	if (pipe2(go, O_CLOEXEC) < 0) {
		free(buf);
		return 0;
	}
	ret = exchange(fs, buf, len, req, go[0], &reply, &why);
	free(buf);
	close(go[0]);
	if (ret < 0) {
		close(go[1]);
		guest_log_error(&why, "fork server: stopped, this exec starts python3 the old way");
		stop(fs);
		return 0;
	}
	if (reply.errnum != 0) {
		close(go[1]);
		return child_failure(req, &reply, err);
	}
	*go_fd = go[1];
	return reply.pid;
}

int guest_forkserver_go(int go_fd, struct ember_error **err)
{
	ssize_t n;

	do {
		n = write(go_fd, "g", 1);
	} while (n < 0 && errno == EINTR);
	close(go_fd);
	if (n != 1)
		return ember_error_sys(err, "write the go byte");
	return 0;
}

/* A decimal in [0, max] of at most 10 digits, no sign, no leading zero (but "0"). */
static int parse_decimal(const char **p, const char *end, long long max, long long *out)
{
	const char *s = *p;
	long long v = 0;
	size_t digits = 0;

	while (s < end && *s >= '0' && *s <= '9' && digits < 11) {
		v = v * 10 + (*s - '0');
		s++;
		digits++;
	}
	if (digits == 0 || digits > 10 || (digits > 1 && **p == '0') || v > max)
		return -1;
	*p = s;
	*out = v;
	return 0;
}

int guest_forkserver_parse_reply(const char *buf, size_t len, struct guest_forkserver_reply *out,
				 struct ember_error **err)
{
	const char *p = buf, *end = buf + len;
	long long pid, errnum;
	size_t i, step_len;

	if (len == 0 || len > GUEST_FORKSERVER_REPLY_MAX)
		goto bad;
	if (parse_decimal(&p, end, INT_MAX, &pid) < 0 || p == end || *p++ != ' ' ||
	    parse_decimal(&p, end, 4095, &errnum) < 0 || p == end || *p++ != ' ')
		goto bad;
	step_len = (size_t)(end - p);
	if (step_len == 0 || step_len >= sizeof(out->step))
		goto bad;
	for (i = 0; i < step_len; i++) {
		if (p[i] < 0x20 || p[i] > 0x7e)
			goto bad;
	}
	/* Success is exactly "PID 0 -"; a failure names its step and an errno. */
	if ((errnum == 0) != (step_len == 1 && p[0] == '-') || (errnum == 0 && pid == 0))
		goto bad;
	out->pid = (pid_t)pid;
	out->errnum = (int)errnum;
	memcpy(out->step, p, step_len);
	out->step[step_len] = '\0';
	return 0;
bad:
	return ember_error_set(err, EMBER_E_PROTOCOL, 0, "malformed fork server reply");
}
