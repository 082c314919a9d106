/* agent.c - the event loop: signals, reaping, transports and sessions. */
#include "guest/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest/cgroup.h"
#include "guest/context.h"
#include "guest/channel.h"
#include "guest/forkserver.h"
#include "guest/limits.h"
#include "guest/log.h"
#include "guest/loop.h"
#include "guest/session.h"
#include "util/timeutil.h"

enum slot { SLOT_PORT, SLOT_VSOCK, SLOT_UNIX, SLOT_FD, SLOT_COUNT };

static const char *const slot_label[SLOT_COUNT] = { "virtio-serial", "vsock", "unix socket",
						     "channel fd" };

struct agent {
	const struct guest_agent_config *cfg;
	struct guest_loop loop;
	struct guest_session_env env;
	struct guest_watch signals;
	struct guest_watch port_timer;  /* (re)open the virtio-serial port */
	int port_fd;                    /* the port, kept open while no host is attached */
	int64_t started_ms;
	bool port_seen;
	bool port_late_logged;
	struct guest_watch vsock_listener;
	struct guest_watch unix_listener;
	struct guest_session *sessions[SLOT_COUNT];
	bool stop;
};

static bool cgroup_awaits_reap(const char *path, void *ctx)
{
	struct agent *a = ctx;
	size_t i;

	for (i = 0; i < SLOT_COUNT; i++) {
		if (a->sessions[i] != NULL && guest_session_owns_unreaped_cgroup(a->sessions[i], path))
			return true;
	}
	return false;
}

static void agent_reap(struct agent *a)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		size_t i;

		if (pid <= 0)
			break; /* 0: children left but none exited; -1/ECHILD: no children */
		if (guest_forkserver_reaped(a->env.exec.forkserver, pid))
			continue;
		for (i = 0; i < SLOT_COUNT; i++) {
			struct guest_exec *e;
			struct guest_context *c;

			if (a->sessions[i] == NULL)
				continue;
			e = guest_session_exec_by_pid(a->sessions[i], pid);
			if (e != NULL) {
				guest_exec_reaped(e, status);
				break;
			}
			c = guest_session_context_by_pid(a->sessions[i], pid);
			if (c != NULL) {
				guest_context_reaped(c, status);
				break;
			}
		}
		/* Not an exec's main process: an orphan reparented to us, now reaped. */
	}
	/* Exec cgroups whose last process just went are empty now: remove them. */
	if (a->cfg->exec.cgroup_root != NULL)
		guest_cgroup_sweep(a->cfg->exec.cgroup_root, cgroup_awaits_reap, a);
}

static void signals_ready(struct guest_watch *w, uint32_t events)
{
	struct agent *a = guest_container_of(w, struct agent, signals);
	struct signalfd_siginfo info;
	bool reap = false;

	(void)events;
	for (;;) {
		ssize_t n = read(w->fd, &info, sizeof(info));

		if (n != (ssize_t)sizeof(info))
			break;
		if (info.ssi_signo == SIGCHLD) {
			reap = true;
		} else if (info.ssi_signo == SIGINT || info.ssi_signo == SIGTERM) {
			guest_log("%s received: shutting down", strsignal((int)info.ssi_signo));
			a->stop = true;
		}
	}
	/* Signals coalesce: one SIGCHLD may stand for many exits, so reap until nothing is left. */
	if (reap)
		agent_reap(a);
}

static void arm_port_timer(struct agent *a, int ms)
{
	struct itimerspec its = {
		.it_value = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 },
	};

	if (timerfd_settime(a->port_timer.fd, 0, &its, NULL) < 0)
		guest_log("arm the port timer: %s", strerror(errno));
}

/* A virtio-serial port reports POLLHUP while no host is attached to it; a new host clears it. */
static bool port_hung_up(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 0) >= 0 && (pfd.revents & POLLHUP) != 0;
}

static bool port_timer_armed(struct agent *a)
{
	struct itimerspec its;

	return timerfd_gettime(a->port_timer.fd, &its) == 0 &&
	       (its.it_value.tv_sec != 0 || its.it_value.tv_nsec != 0);
}

static void start_session(struct agent *a, enum slot slot, int fd, enum guest_session_kind kind)
{
	struct ember_error *err = NULL;

	if (a->sessions[slot] != NULL) {
		/* A new connection replaces the old one (the host reconnected). */
		guest_log("session on %s replaced by a new connection", slot_label[slot]);
		guest_session_free(a->sessions[slot]);
		a->sessions[slot] = NULL;
	}
	if (guest_session_new(&a->env, fd, kind, slot_label[slot], &a->sessions[slot], &err) < 0)
		guest_log_error(&err, "start a session");
}

/* Once, when the port is late: what the kernel has instead, for the console. */
static void log_missing_port(void)
{
	DIR *dir = opendir("/sys/class/virtio-ports");
	char seen[512] = "";
	struct dirent *de;
	size_t used = 0;

	while (dir != NULL && (de = readdir(dir)) != NULL && used < sizeof(seen) - 1) {
		char path[300], name[64] = "";
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", de->d_name);
		f = fopen(path, "re");
		if (f != NULL) {
			if (fgets(name, sizeof(name), f) != NULL)
				name[strcspn(name, "\n")] = '\0';
			fclose(f);
		}
		used += (size_t)snprintf(seen + used, sizeof(seen) - used, " %s(%s)", de->d_name,
					 name);
	}
	guest_log("no virtio-serial port named %s yet; /sys/class/virtio-ports:%s", GUEST_PORT_NAME,
		  dir == NULL ? " missing" : used == 0 ? " empty" : seen);
	if (dir != NULL)
		closedir(dir);
}

/* Looks for the port and opens it; -1 (the timer re-armed) when that cannot be done now. */
static int open_port(struct agent *a)
{
	struct ember_error *err = NULL;
	char path[300];
	int found, fd;

	found = guest_channel_find_port("/sys/class/virtio-ports", "/dev", GUEST_PORT_NAME, path,
					sizeof(path), &err);
	if (found <= 0) {
		if (found < 0)
			guest_log_error(&err, "look for the virtio-serial port");
		if (!a->port_late_logged && time_mono_ms() - a->started_ms > GUEST_PORT_LATE_MS) {
			log_missing_port();
			a->port_late_logged = true;
		}
		arm_port_timer(a, time_mono_ms() - a->started_ms < GUEST_PORT_RESCAN_FAST_FOR_MS ?
				       GUEST_PORT_RESCAN_MS : GUEST_PORT_RESCAN_SLOW_MS);
		return -1;
	}
	if (!a->port_seen) {
		guest_log("virtio-serial port %s is %s", GUEST_PORT_NAME, path);
		a->port_seen = true;
	}
	fd = guest_channel_open_port(path, &err);
	if (fd < 0) {
		guest_log_error(&err, "open the virtio-serial port");
		arm_port_timer(a, GUEST_PORT_REOPEN_MS);
	}
	return fd;
}

static void port_timer_ready(struct guest_watch *w, uint32_t events)
{
	struct agent *a = guest_container_of(w, struct agent, port_timer);
	uint64_t expirations;
	int fd;

	(void)events;
	if (read(w->fd, &expirations, sizeof(expirations)) < 0)
		return;
	if (a->sessions[SLOT_PORT] != NULL) {
		struct guest_session *s = a->sessions[SLOT_PORT];

		/* A suspended session whose host went: it reads again once a host is back. */
		if (guest_session_parked(s) && port_hung_up(guest_session_fd(s)))
			arm_port_timer(a, GUEST_PORT_REOPEN_MS);
		else if (guest_session_parked(s))
			guest_session_unpark(s);
		return;
	}
	if (a->port_fd >= 0) {
		if (port_hung_up(a->port_fd)) {
			arm_port_timer(a, GUEST_PORT_REOPEN_MS);
			return;
		}
		fd = a->port_fd;
		a->port_fd = -1;
	} else {
		fd = open_port(a);
		if (fd < 0)
			return;
	}
	start_session(a, SLOT_PORT, fd, GUEST_SESSION_PORT);
	if (a->sessions[SLOT_PORT] == NULL)
		arm_port_timer(a, GUEST_PORT_REOPEN_MS); /* it closed fd: open the port anew */
}

static void listener_ready(struct agent *a, struct guest_watch *w, enum slot slot)
{
	struct ember_error *err = NULL;
	int fd = guest_channel_accept(w->fd, &err);

	if (fd == -1)
		guest_log_error(&err, "accept a host connection");
	if (fd >= 0 && a->sessions[slot] != NULL && guest_session_awaits_resume(a->sessions[slot])) {
		if (guest_session_adopt(a->sessions[slot], fd, &err) < 0)
			guest_log_error(&err, "hand a new connection to the suspended session");
	} else if (fd >= 0) {
		start_session(a, slot, fd, GUEST_SESSION_SOCKET);
	}
}

static void vsock_ready(struct guest_watch *w, uint32_t events)
{
	(void)events;
	listener_ready(guest_container_of(w, struct agent, vsock_listener), w, SLOT_VSOCK);
}

static void unix_ready(struct guest_watch *w, uint32_t events)
{
	(void)events;
	listener_ready(guest_container_of(w, struct agent, unix_listener), w, SLOT_UNIX);
}

/* After each batch: free ended sessions (their execs are killed) and schedule what follows. */
static void agent_after_batch(struct agent *a)
{
	size_t i;

	for (i = 0; i < SLOT_COUNT; i++) {
		if (a->sessions[i] == NULL || !guest_session_ended(a->sessions[i]))
			continue;
		if (i == SLOT_PORT)
			a->port_fd = guest_session_take_fd(a->sessions[i]);
		guest_session_free(a->sessions[i]);
		a->sessions[i] = NULL;
		if (i == SLOT_PORT)
			arm_port_timer(a, GUEST_PORT_REOPEN_MS); /* wait for the next host */
		if (i == SLOT_FD)
			a->stop = true; /* an inherited channel cannot come back */
	}
	/* Parked in this batch: poll the port for the host's return. Only when the timer is idle,
	 * since re-arming it after every batch would postpone it for as long as execs are busy. */
	if (a->sessions[SLOT_PORT] != NULL && guest_session_parked(a->sessions[SLOT_PORT]) &&
	    !port_timer_armed(a))
		arm_port_timer(a, GUEST_PORT_REOPEN_MS);
	guest_loop_collect(&a->loop);
}

/* jansson seeds its hash function from /dev/urandom when it builds its first object. Before
 * the kernel CRNG is initialised (PID 1 at boot: HELLO brings the entropy) that read blocks
 * while the kernel gathers jitter entropy, about a second under TCG, delaying READY. Seed it
 * without blocking instead; the seed only guards against hash flooding by the host, which can
 * stop the VM anyway. */
static void seed_json_hash(void)
{
	uint32_t seed = 0;

	if (getrandom(&seed, sizeof(seed), GRND_INSECURE) != (ssize_t)sizeof(seed))
		seed = (uint32_t)time_mono_us() ^ ((uint32_t)getpid() << 16);
	json_object_seed(seed != 0 ? seed : 1);
}

static int setup_signals(struct agent *a, struct ember_error **err)
{
	sigset_t all, mine;
	int fd;

	sigfillset(&all);
	if (sigprocmask(SIG_BLOCK, &all, NULL) < 0)
		return ember_error_sys(err, "block signals");
	sigemptyset(&mine);
	sigaddset(&mine, SIGCHLD);
	sigaddset(&mine, SIGINT);
	sigaddset(&mine, SIGTERM);
	fd = signalfd(-1, &mine, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return ember_error_sys(err, "signalfd");
	guest_watch_init(&a->signals, fd, signals_ready);
	return guest_loop_set(&a->loop, &a->signals, EPOLLIN, err);
}

static int setup_transports(struct agent *a, struct ember_error **err)
{
	const struct guest_agent_config *cfg = a->cfg;
	struct ember_error *verr = NULL;
	int fd;

	if (cfg->pid1) {
		fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (fd < 0)
			return ember_error_sys(err, "timerfd_create");
		guest_watch_init(&a->port_timer, fd, port_timer_ready);
		if (guest_loop_set(&a->loop, &a->port_timer, EPOLLIN, err) < 0)
			return -1;
		arm_port_timer(a, 1); /* look for the port right away, from the loop */
		fd = guest_channel_listen_vsock(GUEST_VSOCK_PORT, &verr);
		if (fd < 0) {
			guest_log("no vsock transport: %s", verr->message);
			ember_error_free(&verr);
		} else {
			guest_watch_init(&a->vsock_listener, fd, vsock_ready);
			if (guest_loop_set(&a->loop, &a->vsock_listener, EPOLLIN, err) < 0)
				return -1;
		}
	}
	if (cfg->listen_unix != NULL) {
		fd = guest_channel_listen_unix(cfg->listen_unix, err);
		if (fd < 0)
			return -1;
		guest_watch_init(&a->unix_listener, fd, unix_ready);
		if (guest_loop_set(&a->loop, &a->unix_listener, EPOLLIN, err) < 0)
			return -1;
	}
	if (cfg->channel_fd >= 0) {
		int dup_fd = fcntl(cfg->channel_fd, F_DUPFD_CLOEXEC, 3);

		if (dup_fd < 0)
			return ember_error_sys(err, "channel fd %d", cfg->channel_fd);
		close(cfg->channel_fd);
		if (fcntl(dup_fd, F_SETFL, fcntl(dup_fd, F_GETFL) | O_NONBLOCK) < 0) {
			close(dup_fd);
			return ember_error_sys(err, "set channel fd non-blocking");
		}
		start_session(a, SLOT_FD, dup_fd, GUEST_SESSION_SOCKET);
		if (a->sessions[SLOT_FD] == NULL)
			return ember_error_set(err, EMBER_E_INTERNAL, 0, "cannot serve the channel fd");
	}
	return 0;
}

static void agent_release(struct agent *a)
{
	size_t i;

	for (i = 0; i < SLOT_COUNT; i++) {
		guest_session_free(a->sessions[i]);
		a->sessions[i] = NULL;
	}
	guest_loop_close(&a->loop, &a->signals);
	guest_loop_close(&a->loop, &a->port_timer);
	if (a->port_fd >= 0)
		close(a->port_fd);
	a->port_fd = -1;
	guest_loop_close(&a->loop, &a->vsock_listener);
	guest_loop_close(&a->loop, &a->unix_listener);
	if (a->cfg->listen_unix != NULL)
		unlink(a->cfg->listen_unix);
	guest_loop_release(&a->loop);
	guest_forkserver_free(a->env.exec.forkserver);
	a->env.exec.forkserver = NULL;
}

int guest_agent_run(const struct guest_agent_config *cfg, struct ember_error **err)
{
	struct agent a = { .cfg = cfg, .port_fd = -1 };
	int ret = -1;

	guest_watch_init(&a.signals, -1, signals_ready);
	guest_watch_init(&a.port_timer, -1, port_timer_ready);
	guest_watch_init(&a.vsock_listener, -1, vsock_ready);
	guest_watch_init(&a.unix_listener, -1, unix_ready);
	if (guest_loop_init(&a.loop, err) < 0)
		return -1;
	a.env.loop = &a.loop;
	a.env.exec = cfg->exec;
	/* Plain python execs fork from a warm interpreter, started by the first of them. Without
	 * one (out of memory) they start python3 the old way. */
	a.env.exec.forkserver = guest_forkserver_new(cfg->exec.code_root, err);
	if (a.env.exec.forkserver == NULL)
		guest_log_error(err, "fork server");
	/* In a VM its start (seconds under emulation) overlaps the boot's end and the host's
	 * hello instead of the first exec (a pack without python3 has none). */
	if (cfg->pid1)
		guest_forkserver_prestart(a.env.exec.forkserver, "python3");
	a.env.apply_identity = cfg->pid1;
	a.started_ms = time_mono_ms();
	seed_json_hash();
	/* Outside a VM, grandchildren whose parents die are reparented to us, not to the host's
	 * init, so the agent-only mode reaps (and tests) exactly like PID 1 does. */
	if (!cfg->pid1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		guest_log("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	/* File requests run with the sandbox user's fsuid/fsgid (guest/files.c), but access checks
	 * also use the caller's supplementary groups: the agent keeps none. */
	if (cfg->exec.change_ids && setgroups(0, NULL) < 0) {
		ember_error_sys(err, "setgroups");
		goto out;
	}
	if (setup_signals(&a, err) < 0 || setup_transports(&a, err) < 0)
		goto out;
	guest_log("agent serving (execs as uid %u, gid %u, in %s)", (unsigned)cfg->exec.uid,
		  (unsigned)cfg->exec.gid, cfg->exec.cwd);
	while (!a.stop) {
		if (guest_loop_run_once(&a.loop, -1, err) < 0)
			goto out;
		agent_after_batch(&a);
	}
	ret = 0;
out:
	agent_release(&a);
	/* Children killed on the way out are reaped here so none is left a zombie. */
	agent_reap(&a);
	return ret;
}
