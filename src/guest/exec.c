/* exec.c - supervision of one exec: output forwarding, stdin, timeout, completion. */
#include "guest/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest/cgroup.h"
#include "guest/context.h"
#include "guest/env.h"
#include "guest/forkserver.h"
#include "guest/limits.h"
#include "guest/log.h"
#include "guest/spawn.h"
#include "proto/credit.h"
#include "proto/frame.h"
#include "util/fdio.h"
#include "util/text.h"
#include "util/timeutil.h"

static void exec_maybe_finish(struct guest_exec *e);

static int arm_timer(struct guest_exec *e, uint64_t ms)
{
	struct itimerspec its = {
		.it_value = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000 },
	};

	if (ms == 0)
		its.it_value.tv_nsec = 1; /* 0 would disarm */
	return timerfd_settime(e->timer.fd, 0, &its, NULL);
}

static void kill_group(struct guest_exec *e)
{
	if (e->in_context) {
		/* The run's processes are the interpreter's: it goes, and comes back fresh. Not
		 * once the run is over (output still draining): its state is then the next run's. */
		if (e->context != NULL && !e->reaped)
			guest_context_kill(e->context);
		return;
	}
	/* The group outlives its leader while members remain; once it is empty this is ESRCH.
	 * The cgroup also holds what left the group with setsid(). */
	if (e->pid > 0)
		kill(-e->pid, SIGKILL);
	guest_cgroup_kill(e->cgroup);
}

static void remove_code(struct guest_exec *e)
{
	if (e->code_path[0] != '\0' && unlink(e->code_path) < 0 && errno != ENOENT)
		guest_log("exec %u: remove `%s`: %s", e->id, e->code_path, strerror(errno));
	if (e->dir[0] != '\0' && rmdir(e->dir) < 0 && errno != ENOENT)
		guest_log("exec %u: remove `%s`: %s", e->id, e->dir, strerror(errno));
	e->code_path[0] = '\0';
	e->dir[0] = '\0';
}

static void close_stdin(struct guest_exec *e)
{
	guest_loop_close(e->loop, &e->stdin_watch);
	free(e->stdin_buf);
	e->stdin_buf = NULL;
	e->stdin_len = 0;
}

/* A context run gives the context its pipes back (idempotent). */
static void leave_context(struct guest_exec *e)
{
	if (e->context != NULL)
		guest_context_end(e->context, e);
	e->context = NULL;
}

static void close_all(struct guest_exec *e)
{
	leave_context(e);
	guest_loop_close(e->loop, &e->out[0].watch);
	guest_loop_close(e->loop, &e->out[1].watch);
	guest_loop_close(e->loop, &e->timer);
	close_stdin(e);
	e->stdin_open = false;
}

/* Forwards n bytes read from a stream, keeping at most output_limit per stream. */
static void deliver(struct guest_exec_stream *s, const uint8_t *buf, size_t n)
{
	struct guest_exec *e = s->exec;
	uint64_t room = e->cancelled ? 0 : e->output_limit - s->kept;
	size_t keep = (uint64_t)n < room ? n : (size_t)room;

	if (keep > 0) {
		s->kept += keep;
		if (e->credit_on)
			e->credit -= keep; /* read_stream read no more than the credit */
		e->ops->emit(e->ctx, s->type, e->id, buf, keep);
	}
	if (keep < n)
		s->truncated = true;
}

/* Output waits for CREDIT (after a CANCEL output is dropped, so it never waits). */
static bool out_of_credit(const struct guest_exec *e)
{
	return e->credit_on && !e->cancelled && e->credit == 0;
}

/* One read: bytes read, 0 when nothing is readable now, -1 at EOF (the stream is then closed). */
static ssize_t read_stream(struct guest_exec_stream *s)
{
	uint8_t buf[PROTO_MAX_DATA_CHUNK];
	size_t want = sizeof(buf);
	ssize_t n;

	if (out_of_credit(s->exec))
		return 0;
	if (s->exec->credit_on && !s->exec->cancelled && s->exec->credit < want)
		want = (size_t)s->exec->credit;
	do {
		n = read(s->watch.fd, buf, want);
	} while (n < 0 && errno == EINTR);
	if (n > 0) {
		deliver(s, buf, (size_t)n);
		return n;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	/* EOF, or an error that a pipe read cannot really give: the stream is over either way. */
	s->eof = true;
	guest_loop_close(s->exec->loop, &s->watch);
	return -1;
}

static void stream_ready(struct guest_watch *w, uint32_t events)
{
	struct guest_exec_stream *s = guest_container_of(w, struct guest_exec_stream, watch);
	struct guest_exec *e = s->exec;

	(void)events;
	if (e->ops->congested(e->ctx) || out_of_credit(e)) {
		/* Backpressure: the host (or this exec's reader) is behind, so the program blocks on
		 * a full pipe. */
		s->paused = true;
		if (guest_loop_set(e->loop, w, 0, NULL) < 0)
			s->paused = false;
		return;
	}
	if (read_stream(s) < 0)
		exec_maybe_finish(e);
}

void guest_exec_resume(struct guest_exec *e)
{
	size_t i;

	for (i = 0; i < 2; i++) {
		struct guest_exec_stream *s = &e->out[i];

		if (s->paused && s->watch.fd >= 0 && !out_of_credit(e)) {
			struct ember_error *err = NULL;

			if (guest_loop_set(e->loop, &s->watch, EPOLLIN, &err) < 0)
				guest_log_error(&err, "resume exec output");
			else
				s->paused = false;
		}
	}
}

void guest_exec_enable_credit(struct guest_exec *e)
{
	e->credit_on = true;
	e->credit = PROTO_CREDIT_WINDOW;
}

void guest_exec_credit(struct guest_exec *e, uint32_t bytes)
{
	e->credit += bytes;
	if (e->credit > PROTO_CREDIT_MAX)
		e->credit = PROTO_CREDIT_MAX;
	if (!e->ops->congested(e->ctx))
		guest_exec_resume(e);
}

static void stdin_flush(struct guest_exec *e)
{
	while (e->stdin_len > 0 && e->stdin_watch.fd >= 0) {
		ssize_t n = write(e->stdin_watch.fd, e->stdin_buf, e->stdin_len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			/* EPIPE: the program closed its stdin; what it did not read is dropped. */
			close_stdin(e);
			return;
		}
		memmove(e->stdin_buf, e->stdin_buf + n, e->stdin_len - (size_t)n);
		e->stdin_len -= (size_t)n;
	}
	if (e->stdin_watch.fd < 0)
		return;
	if (e->stdin_len == 0 && e->stdin_fin) {
		close_stdin(e);
		return;
	}
	if (guest_loop_set(e->loop, &e->stdin_watch, e->stdin_len > 0 ? EPOLLOUT : 0, NULL) < 0)
		close_stdin(e);
}

static void stdin_ready(struct guest_watch *w, uint32_t events)
{
	struct guest_exec *e = guest_container_of(w, struct guest_exec, stdin_watch);

	(void)events;
	stdin_flush(e);
}

int guest_exec_stdin(struct guest_exec *e, const uint8_t *data, size_t len, bool fin,
		     struct ember_error **err)
{
	uint8_t *nbuf;

	if (!e->stdin_open)
		return 0; /* after FIN or without stdin_follows: nothing to feed */
	if (fin)
		e->stdin_open = false;
	if (e->stdin_watch.fd < 0)
		return 0; /* the program closed its stdin */
	if (len > 0) {
		if (e->stdin_len + len > GUEST_STDIN_PENDING_MAX)
			return ember_error_set(err, EMBER_E_TOO_LARGE, 0,
					       "more than %u bytes of stdin pending",
					       GUEST_STDIN_PENDING_MAX);
		nbuf = realloc(e->stdin_buf, e->stdin_len + len);
		if (nbuf == NULL)
			return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
		memcpy(nbuf + e->stdin_len, data, len);
		e->stdin_buf = nbuf;
		e->stdin_len += len;
	}
	e->stdin_fin = fin;
	stdin_flush(e);
	return 0;
}

/* After the grace period, take what the pipes already hold (bounded) and stop waiting. */
static void final_drain(struct guest_exec *e)
{
	size_t i;

	for (i = 0; i < 2; i++) {
		struct guest_exec_stream *s = &e->out[i];
		size_t taken = 0;

		while (s->watch.fd >= 0 && taken < GUEST_EXEC_FINAL_DRAIN &&
		       !e->ops->congested(e->ctx) && !out_of_credit(e)) {
			ssize_t n = read_stream(s);

			if (n <= 0)
				break;
			taken += (size_t)n;
		}
		guest_loop_close(e->loop, &s->watch);
	}
}

/* After a context run: the interpreter flushed its output before it reported, so everything of
 * the run is in the pipes now. Forward it (as credit allows) until they are empty, then finish;
 * the pipes stay the context's, so there is no EOF to wait for. */
static void settle_context_run(struct guest_exec *e)
{
	size_t i;

	for (i = 0; i < 2; i++) {
		struct guest_exec_stream *s = &e->out[i];
		size_t taken = 0;

		/* Bounded: a program the run left behind may write as fast as this reads. */
		while (s->watch.fd >= 0 && taken < GUEST_EXEC_FINAL_DRAIN) {
			ssize_t n;

			if (e->ops->congested(e->ctx) || out_of_credit(e)) {
				if (arm_timer(e, GUEST_EXEC_GRACE_RECHECK_MS) == 0)
					return; /* the host reads on: go on from here later */
				break;
			}
			n = read_stream(s);
			if (n <= 0)
				break;
			taken += (size_t)n;
		}
	}
	e->grace_over = true;
	for (i = 0; i < 2; i++)
		guest_loop_close(e->loop, &e->out[i].watch);
	exec_maybe_finish(e);
}

static void timer_ready(struct guest_watch *w, uint32_t events)
{
	struct guest_exec *e = guest_container_of(w, struct guest_exec, timer);
	uint64_t expirations;

	(void)events;
	if (read(w->fd, &expirations, sizeof(expirations)) < 0)
		return; /* EAGAIN: a stale wakeup after re-arming */
	if (!e->reaped && e->in_context && !e->interrupted && e->context != NULL) {
		/* Like Ctrl-C in a notebook: the code gets a KeyboardInterrupt and the context
		 * keeps its state, unless it does not return within the grace. */
		guest_log("exec %u: timed out, interrupting its context", e->id);
		e->timed_out = true;
		e->interrupted = true;
		guest_context_interrupt(e->context);
		if (arm_timer(e, GUEST_CONTEXT_INTERRUPT_GRACE_MS) == 0)
			return;
	}
	if (!e->reaped) {
		guest_log("exec %u: timed out, killing process group %d", e->id, (int)e->pid);
		e->timed_out = true;
		kill_group(e);
		return;
	}
	if (e->in_context) {
		settle_context_run(e);
		return;
	}
	if (e->ops->congested(e->ctx) || out_of_credit(e)) {
		/* The pipes may still hold the program's own output: wait for the host first. */
		if (arm_timer(e, GUEST_EXEC_GRACE_RECHECK_MS) == 0)
			return;
	}
	e->grace_over = true;
	final_drain(e);
	exec_maybe_finish(e);
}

/* EXIT as JSON within one frame: a context's outcome may not fit once escaped (a control
 * character takes 6 bytes), so its rich results go first, then its texts are cut. */
static char *encode_exit(struct proto_exit *msg, size_t *len, struct ember_error **err)
{
	struct proto_outcome *o = &msg->context;
	char *json = proto_exit_encode(msg, len, err);
	char **texts[] = { &o->result, &o->error_value, &o->error_traceback };
	size_t i;

	if (json == NULL || *len <= PROTO_MAX_PAYLOAD)
		return json;
	free(json);
	for (i = 0; i < o->nresults; i++)
		free(o->results[i].data);
	o->nresults = 0;
	json = proto_exit_encode(msg, len, err);
	if (json == NULL || *len <= PROTO_MAX_PAYLOAD)
		return json;
	free(json);
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		if (*texts[i] != NULL && strlen(*texts[i]) > GUEST_EXIT_TEXT_CUT)
			utf8_truncate(*texts[i], GUEST_EXIT_TEXT_CUT);
	}
	return proto_exit_encode(msg, len, err);
}

static void exec_maybe_finish(struct guest_exec *e)
{
	struct proto_exit msg = { 0 };
	struct ember_error *err = NULL;
	char *json;
	size_t len;

	if (e->finished || !e->reaped)
		return;
	if (!(e->out[0].eof && e->out[1].eof) && !e->grace_over)
		return;
	if (WIFSIGNALED(e->wait_status)) {
		msg.exit_code = -1;
		msg.signal = WTERMSIG(e->wait_status);
	} else {
		msg.exit_code = WEXITSTATUS(e->wait_status);
	}
	msg.timed_out = e->timed_out;
	msg.oom_killed = e->oom_killed;
	msg.duration_ms = (uint64_t)(e->end_ms - e->start_ms);
	msg.stdout_truncated = e->out[0].truncated;
	msg.stderr_truncated = e->out[1].truncated;
	if (e->in_context) {
		msg.context = e->outcome;
		msg.context.present = true;
	}
	msg.has_timing = true;
	msg.queued_us = (uint64_t)(e->spawn_begin_us - e->received_us);
	msg.spawn_us = (uint64_t)(e->started_us - e->spawn_begin_us);
	msg.run_us = e->ended_us > e->started_us ? (uint64_t)(e->ended_us - e->started_us) : 0;
	close_all(e);
	remove_code(e);
	e->finished = true;
	json = encode_exit(&msg, &len, &err);
	e->outcome = msg.context; /* what encode_exit left of it, freed with the exec */
	if (json == NULL) {
		guest_log_error(&err, "encode EXIT");
	} else {
		e->ops->emit(e->ctx, PROTO_EXIT, e->id, json, len);
		free(json);
	}
	e->ops->finished(e->ctx, e);
}

void guest_exec_reaped(struct guest_exec *e, int wait_status)
{
	if (e->reaped)
		return;
	e->reaped = true;
	e->wait_status = wait_status;
	/* Now, before the sweep after this reap removes the cgroup. A kill of a background
	 * process counts too: it was this exec's memory. */
	e->oom_killed = guest_cgroup_oom_kills(e->cgroup) > 0;
	e->end_ms = time_mono_ms();
	e->ended_us = time_mono_us();
	if (e->timer.fd >= 0 && arm_timer(e, GUEST_EXEC_GRACE_MS) < 0) {
		guest_log("exec %u: arm grace timer: %s", e->id, strerror(errno));
		e->grace_over = true;
	}
	exec_maybe_finish(e);
}

void guest_exec_signal(struct guest_exec *e, int sig)
{
	/* The group outlives its leader while members remain; ESRCH once it is empty. */
	if (e->in_context && e->context != NULL && !e->reaped)
		kill(-guest_context_pid(e->context), sig);
	else if (!e->in_context && !e->finished && e->pid > 0)
		kill(-e->pid, sig);
}

void guest_exec_context_done(struct guest_exec *e, int exit_code, struct proto_outcome *outcome)
{
	if (e->reaped) {
		proto_outcome_release(outcome);
		return;
	}
	e->reaped = true;
	e->wait_status = (exit_code & 0xff) << 8; /* as waitpid reports an exit */
	e->end_ms = time_mono_ms();
	e->ended_us = time_mono_us();
	e->outcome = *outcome;
	memset(outcome, 0, sizeof(*outcome));
	settle_context_run(e);
}

void guest_exec_context_lost(struct guest_exec *e, int wait_status, bool oom_killed)
{
	leave_context(e);
	if (e->reaped)
		return;
	e->reaped = true;
	e->wait_status = wait_status;
	e->oom_killed = oom_killed;
	e->outcome.restarted = true;
	e->end_ms = time_mono_ms();
	e->ended_us = time_mono_us();
	settle_context_run(e);
}

void guest_exec_cancel(struct guest_exec *e)
{
	if (e->finished)
		return;
	e->cancelled = true;
	kill_group(e);
	/* From here output is read and dropped, so the pipes reach EOF without more CREDIT. */
	if (!e->ops->congested(e->ctx))
		guest_exec_resume(e);
}

void guest_exec_discard(struct guest_exec *e)
{
	if (!e->finished)
		kill_group(e);
	close_all(e);
	remove_code(e);
	e->finished = true;
}

void guest_exec_free(struct guest_exec *e)
{
	if (e == NULL)
		return;
	close_all(e);
	proto_outcome_release(&e->outcome);
	free(e);
}

/* <code_root>/<seq>-XXXXXX (0711, so the sandbox user can open the code but not list or
 * change anything) holding `code` (0644). */
static int write_code(struct guest_exec *e, const struct guest_exec_config *cfg, uint64_t seq,
		      const struct proto_exec *req, struct ember_error **err)
{
	int fd;

	if (snprintf(e->dir, sizeof(e->dir), "%s/%llu-XXXXXX", cfg->code_root,
		     (unsigned long long)seq) >= (int)sizeof(e->dir)) {
		e->dir[0] = '\0';
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "code path too long");
	}
	if (mkdtemp(e->dir) == NULL) {
		ember_error_sys(err, "create `%s`", e->dir);
		e->dir[0] = '\0';
		return -1;
	}
	if (chmod(e->dir, 0711) < 0)
		return ember_error_sys(err, "chmod `%s`", e->dir);
	snprintf(e->code_path, sizeof(e->code_path), "%s/code", e->dir);
	fd = open(e->code_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		ember_error_sys(err, "create `%s`", e->code_path);
		e->code_path[0] = '\0';
		return -1;
	}
	if (fchmod(fd, 0644) < 0 || fd_write_all(fd, req->code, req->code_len, -1, err) < 0) {
		ember_error_sys(err, "write `%s`", e->code_path);
		close(fd);
		return -1;
	}
	if (close(fd) < 0)
		return ember_error_sys(err, "close `%s`", e->code_path);
	return 0;
}

/* A plain python exec through the fork server: the child's pid once it is in the exec's cgroup
 * and let go (it ran nothing of the user's before), 0 to start it the old way, -1 when the child
 * could not be set up (as guest_spawn would fail). */
static pid_t spawn_warm(const struct guest_exec_config *cfg, const struct guest_user_run *run,
			const struct guest_spawn_spec *spec, struct ember_error **err)
{
	const struct proto_exec *req = run->warm;
	char interp[PATH_MAX];
	struct guest_forkserver_request fr = {
		.interpreter = interp,
		.code_path = run->code_path,
		.cwd = spec->cwd,
		.change_ids = spec->change_ids,
		.uid = spec->uid,
		.gid = spec->gid,
		.max_processes = spec->max_processes,
		.envp = spec->envp,
		.stdin_fd = spec->stdin_fd,
		.stdout_fd = spec->stdout_fd,
		.stderr_fd = spec->stderr_fd,
	};
	int go_fd;
	pid_t pid;

	if (req == NULL || cfg->forkserver == NULL ||
	    !guest_forkserver_eligible(req, interp, sizeof(interp)))
		return 0;
	pid = guest_forkserver_spawn(cfg->forkserver, &fr, &go_fd, err);
	if (pid <= 0)
		return pid;
	/* Before the go byte: every process the program starts is then in the cgroup. Closing
	 * go_fd without the byte makes the child exit; the reaper collects it as an orphan. */
	if (spec->cgroup_procs_fd >= 0 && guest_cgroup_move(spec->cgroup_procs_fd, pid, err) < 0) {
		close(go_fd);
		return -1;
	}
	if (guest_forkserver_go(go_fd, err) < 0) {
		kill(-pid, SIGKILL);
		return -1;
	}
	return pid;
}

int guest_exec_spawn_user(const struct guest_exec_config *cfg, const struct guest_user_run *run,
			  pid_t *pid, char *cgroup, size_t cgroup_size, struct ember_error **err)
{
	char home[PATH_MAX + 8], cwd[PATH_MAX];
	const char *base[] = {
		"PATH=" GUEST_BASE_PATH, home, "LANG=C.UTF-8", "USER=sandbox", NULL,
	};
	char **envp = NULL;
	struct guest_spawn_spec spec = {
		.argv = run->argv,
		.cwd = cfg->cwd,
		.change_ids = cfg->change_ids,
		.uid = cfg->uid,
		.gid = cfg->gid,
		.stdin_fd = run->stdin_fd,
		.stdout_fd = run->stdout_fd,
		.stderr_fd = run->stderr_fd,
		.max_processes = run->max_processes,
		.cgroup_procs_fd = -1,
		.fd3 = run->fd3,
	};

	cgroup[0] = '\0';
	snprintf(home, sizeof(home), "HOME=%s", cfg->home);
	if (run->cwd != NULL && run->cwd[0] == '/') {
		spec.cwd = run->cwd;
	} else if (run->cwd != NULL) {
		if (snprintf(cwd, sizeof(cwd), "%s/%s", cfg->home, run->cwd) >= (int)sizeof(cwd))
			return ember_error_set(err, EMBER_E_GUEST, ENAMETOOLONG,
					       "working directory too long");
		spec.cwd = cwd;
	}
	if (guest_env_build(base, (const char *const *)run->env, &envp, err) < 0)
		return -1;
	spec.envp = envp;
	/* pids.max makes the process limit per exec; RLIMIT_NPROC still bounds the user. */
	if (cfg->cgroup_root != NULL &&
	    guest_cgroup_create(cfg->cgroup_root, run->cgroup_name, run->max_processes, cgroup,
				cgroup_size, &spec.cgroup_procs_fd, err) < 0) {
		cgroup[0] = '\0';
		free(envp);
		return -1;
	}
	*pid = spawn_warm(cfg, run, &spec, err);
	if (*pid == 0)
		*pid = guest_spawn(&spec, err);
	if (spec.cgroup_procs_fd >= 0)
		close(spec.cgroup_procs_fd);
	free(envp);
	return *pid > 0 ? 0 : -1;
}

static int spawn_program(struct guest_exec *e, const struct guest_exec_config *cfg,
			 uint64_t seq, const struct proto_exec *req, int child_in, int child_out, int child_err,
			 struct ember_error **err)
{
	char *argv[PROTO_ARGV_MAX + 2];
	char name[64];
	struct guest_user_run run = {
		.argv = argv,
		.env = req->env,
		.cwd = req->cwd,
		.max_processes = req->max_processes,
		.cgroup_name = name,
		.stdin_fd = child_in,
		.stdout_fd = child_out,
		.stderr_fd = child_err,
		.fd3 = -1,
		.warm = req,
		.code_path = e->code_path,
	};
	size_t i;

	for (i = 0; i < req->argc; i++)
		argv[i] = req->argv[i];
	if (req->code_argument)
		argv[i++] = req->code;
	else if (!req->command)
		argv[i++] = e->code_path;
	argv[i] = NULL;
	if (strrchr(e->dir, '/') != NULL)
		snprintf(name, sizeof(name), "%s", strrchr(e->dir, '/') + 1);
	else /* a command exec has no code directory: its sequence number is unique too */
		snprintf(name, sizeof(name), "%llu-cmd", (unsigned long long)seq);
	e->start_ms = time_mono_ms();
	e->spawn_begin_us = time_mono_us();
	if (guest_exec_spawn_user(cfg, &run, &e->pid, e->cgroup, sizeof(e->cgroup), err) < 0)
		return -1;
	e->started_us = time_mono_us();
	return 0;
}

/* A new exec with no fds yet: its streams and watches initialised, its arrival time taken. */
static struct guest_exec *exec_new(struct guest_loop *loop, uint32_t id, uint64_t output_limit,
				   const struct guest_exec_ops *ops, void *ctx)
{
	struct guest_exec *e = calloc(1, sizeof(*e));
	int i;

	if (e == NULL)
		return NULL;
	e->received_us = time_mono_us();
	e->loop = loop;
	e->ops = ops;
	e->ctx = ctx;
	e->id = id;
	e->output_limit = output_limit;
	for (i = 0; i < 2; i++) {
		e->out[i].exec = e;
		e->out[i].type = i == 0 ? PROTO_STDOUT : PROTO_STDERR;
		guest_watch_init(&e->out[i].watch, -1, stream_ready);
	}
	guest_watch_init(&e->stdin_watch, -1, stdin_ready);
	guest_watch_init(&e->timer, -1, timer_ready);
	return e;
}

int guest_exec_start(struct guest_loop *loop, const struct guest_exec_config *cfg, uint64_t seq,
		     uint32_t id, const struct proto_exec *req, const struct guest_exec_ops *ops,
		     void *ctx, struct guest_exec **out, struct ember_error **err)
{
	/* A background exec's output is bounded by the host's ring instead (docs/protocol.md). */
	struct guest_exec *e = exec_new(loop, id, req->background ? UINT64_MAX : req->output_limit,
					ops, ctx);
	int out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 }, in_pipe[2] = { -1, -1 };
	int ret = -1, i;

	if (e == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	e->background = req->background;

	if (!req->command && !req->code_argument && write_code(e, cfg, seq, req, err) < 0)
		goto fail;
	if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0) {
		ember_error_sys(err, "pipe");
		goto fail;
	}
	if (req->stdin_follows) {
		if (pipe2(in_pipe, O_CLOEXEC) < 0) {
			ember_error_sys(err, "pipe");
			goto fail;
		}
	} else {
		in_pipe[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (in_pipe[0] < 0) {
			ember_error_sys(err, "open /dev/null");
			goto fail;
		}
	}
	e->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (e->timer.fd < 0) {
		ember_error_sys(err, "timerfd_create");
		goto fail;
	}
	if (fd_set_nonblock(out_pipe[0], 1) < 0 || fd_set_nonblock(err_pipe[0], 1) < 0 ||
	    (in_pipe[1] >= 0 && fd_set_nonblock(in_pipe[1], 1) < 0)) {
		ember_error_sys(err, "set pipes non-blocking");
		goto fail;
	}
	if (spawn_program(e, cfg, seq, req, in_pipe[0], out_pipe[1], err_pipe[1], err) < 0)
		goto fail;
	/* From here on the program runs: failures below kill it (guest_exec_discard). */
	e->out[0].watch.fd = out_pipe[0];
	e->out[1].watch.fd = err_pipe[0];
	e->stdin_watch.fd = in_pipe[1];
	out_pipe[0] = err_pipe[0] = in_pipe[1] = -1;
	e->stdin_open = req->stdin_follows;
	if (!req->background && arm_timer(e, req->timeout_ms) < 0) {
		ember_error_sys(err, "arm the exec timeout");
		goto fail_running;
	}
	if (guest_loop_set(loop, &e->timer, EPOLLIN, err) < 0 ||
	    guest_loop_set(loop, &e->out[0].watch, EPOLLIN, err) < 0 ||
	    guest_loop_set(loop, &e->out[1].watch, EPOLLIN, err) < 0)
		goto fail_running;
	*out = e;
	e = NULL;
	ret = 0;
	goto out;
fail_running:
	guest_exec_discard(e);
fail:
	remove_code(e);
	guest_exec_free(e);
out:
	for (i = 0; i < 2; i++) {
		if (out_pipe[i] >= 0)
			close(out_pipe[i]);
		if (err_pipe[i] >= 0)
			close(err_pipe[i]);
		if (in_pipe[i] >= 0)
			close(in_pipe[i]);
	}
	return ret;
}

int guest_exec_start_in_context(struct guest_loop *loop, const struct guest_exec_config *cfg,
				uint64_t seq, uint32_t id, const struct proto_exec *req,
				struct guest_context *c, const struct guest_exec_ops *ops,
				void *ctx, struct guest_exec **out, struct ember_error **err)
{
	struct guest_exec *e = exec_new(loop, id, req->output_limit, ops, ctx);
	int fds[2] = { -1, -1 };

	if (e == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	e->in_context = true;
	if (write_code(e, cfg, seq, req, err) < 0)
		goto fail;
	e->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (e->timer.fd < 0) {
		ember_error_sys(err, "timerfd_create");
		goto fail;
	}
	e->start_ms = time_mono_ms();
	e->spawn_begin_us = time_mono_us();
	if (guest_context_begin(c, e, e->code_path, fds, err) < 0)
		goto fail;
	e->started_us = time_mono_us();
	e->context = c;
	e->out[0].watch.fd = fds[0];
	e->out[1].watch.fd = fds[1];
	if (arm_timer(e, req->timeout_ms) < 0) {
		ember_error_sys(err, "arm the exec timeout");
		goto fail_running;
	}
	if (guest_loop_set(loop, &e->timer, EPOLLIN, err) < 0 ||
	    guest_loop_set(loop, &e->out[0].watch, EPOLLIN, err) < 0 ||
	    guest_loop_set(loop, &e->out[1].watch, EPOLLIN, err) < 0)
		goto fail_running;
	*out = e;
	return 0;
fail_running:
	guest_exec_discard(e);
fail:
	remove_code(e);
	guest_exec_free(e);
	return -1;
}
