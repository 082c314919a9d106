/* context.c - a long-lived interpreter per code context (context.h). */
#include "guest/context.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest/cgroup.h"
#include "guest/log.h"
#include "guest/scripts.h"
#include "proto/frame.h"
#include "proto/messages.h"
#include "util/fdio.h"
#include "util/jsonutil.h"

/* The interpreter's first command (shell): answer ready; SIGINT only stops the foreground
 * program, never the shell itself (a handled signal is default again in its children). */
#define SHELL_PRELUDE "trap : INT\nprintf 'ready\\n' >&3\n"
/* One run (shell): `command .` keeps the shell alive through syntax errors in the file. */
#define SHELL_RUN "command . '%s' </dev/null\nprintf 'done {\"exit_code\":%%d}\\n' \"$?\" >&3\n"

struct guest_context {
	struct guest_context *next;        /* the session's list */
	struct guest_deferred deferred;
	struct guest_loop *loop;
	const struct guest_exec_config *cfg;
	const struct guest_context_ops *ops;
	void *ctx;
	struct proto_context spec;

	unsigned generation;               /* interpreters started so far (names cgroups) */
	pid_t pid;                         /* 0: none running */
	bool reaped;
	char cgroup[PATH_MAX];
	int cmd_fd;                        /* its fd 0: our commands */
	struct guest_watch reply;          /* its fd 3: "ready" and "done {...}" lines */
	struct guest_watch out[2];         /* its fds 1 and 2: read and dropped while idle */
	struct guest_watch start_timer;    /* GUEST_CONTEXT_START_MS for "ready" */
	char *line;                        /* the reply being read (bounded) */
	size_t line_len;
	bool ready;
	uint32_t reply_id;                 /* an open/restart waiting for "ready"; 0: none */
	bool closing;                      /* closed: never start again */
	bool restart_pending;              /* killed for a restart: start anew once reaped */
	bool dying;                        /* killed: its pipes' end is no news */
	bool ran;                          /* the current interpreter finished a run */
	unsigned quick_deaths;             /* interpreters in a row that died before finishing
					    * one: at GUEST_CONTEXT_QUICK_DEATHS_MAX no more
					    * automatic restarts (a restart request resets it) */
	struct guest_exec *running;
};

static void start_interpreter(struct guest_context *c);

const char *guest_context_id(const struct guest_context *c)
{
	return c->spec.id;
}

bool guest_context_busy(const struct guest_context *c)
{
	return c->running != NULL;
}

pid_t guest_context_pid(const struct guest_context *c)
{
	return c->pid;
}

struct guest_context *guest_context_next(const struct guest_context *c)
{
	return c->next;
}

void guest_context_set_next(struct guest_context *c, struct guest_context *next)
{
	c->next = next;
}

bool guest_context_owns_pid(const struct guest_context *c, pid_t pid)
{
	return c->pid > 0 && c->pid == pid && !c->reaped;
}

bool guest_context_owns_unreaped_cgroup(const struct guest_context *c, const char *path)
{
	return c->pid > 0 && !c->reaped && c->cgroup[0] != '\0' && strcmp(c->cgroup, path) == 0;
}

static void send_reply(struct guest_context *c, bool ok, const char *why)
{
	struct ember_error *err = NULL;
	size_t len;
	char *json;

	if (c->reply_id == 0)
		return;
	if (ok) {
		json = proto_context_reply_encode((int32_t)c->pid, &len, &err);
	} else {
		json = proto_error_encode("context_failed", why, &len, &err);
	}
	if (json == NULL)
		guest_log_error(&err, "encode CONTEXT_REPLY");
	else
		c->ops->emit(c->ctx, ok ? PROTO_CONTEXT_REPLY : PROTO_ERROR, c->reply_id, json, len);
	free(json);
	c->reply_id = 0;
}

/* Kills every process of the current interpreter; it is reaped (and replaced) later. */
void guest_context_kill(struct guest_context *c)
{
	if (c->pid > 0 && !c->reaped) {
		kill(-c->pid, SIGKILL);
		guest_cgroup_kill(c->cgroup);
		c->dying = true;
	}
}

void guest_context_interrupt(struct guest_context *c)
{
	if (c->pid > 0 && !c->reaped)
		kill(-c->pid, SIGINT);
}

/* The interpreter's pipes and timer (its process is left to the reaper). */
static void close_interpreter_fds(struct guest_context *c)
{
	if (c->cmd_fd >= 0)
		close(c->cmd_fd);
	c->cmd_fd = -1;
	guest_loop_close(c->loop, &c->reply);
	guest_loop_close(c->loop, &c->out[0]);
	guest_loop_close(c->loop, &c->out[1]);
	guest_loop_close(c->loop, &c->start_timer);
	free(c->line);
	c->line = NULL;
	c->line_len = 0;
}

/* The interpreter broke the protocol (or its user's code wrote to the reply pipe): it is killed,
 * which ends a running exec and starts a fresh interpreter. */
static void misbehaved(struct guest_context *c, const char *what)
{
	if (c->dying)
		return;
	guest_log("context %s: %s: restarting it", c->spec.id, what);
	guest_context_kill(c);
}

static void handle_done(struct guest_context *c, const char *text, size_t len)
{
	struct ember_error *err = NULL;
	struct proto_outcome outcome;
	json_t *root = NULL;
	int64_t code;

	if (c->running == NULL) {
		misbehaved(c, "a result without a run");
		return;
	}
	if (json_parse_object(text, len, &root, EMBER_E_PROTOCOL, &err) < 0 ||
	    json_get_int(root, "exit_code", true, 0, 255, &code, EMBER_E_PROTOCOL, &err) < 0 ||
	    json_object_del(root, "exit_code") < 0 ||
	    proto_outcome_from_json(root, false, &outcome, &err) < 0) {
		guest_log("context %s: its result: %s", c->spec.id, err->message);
		ember_error_free(&err);
		json_decref(root);
		misbehaved(c, "a malformed result");
		return;
	}
	json_decref(root);
	c->ran = true;
	c->quick_deaths = 0;
	guest_exec_context_done(c->running, (int)code, &outcome);
}

static void handle_line(struct guest_context *c, char *line, size_t len)
{
	if (len == 5 && memcmp(line, "ready", 5) == 0 && !c->ready) {
		c->ready = true;
		guest_loop_close(c->loop, &c->start_timer);
		send_reply(c, true, NULL);
	} else if (len > 5 && memcmp(line, "done ", 5) == 0 && c->ready) {
		handle_done(c, line + 5, len - 5);
	} else {
		misbehaved(c, "an unexpected reply");
	}
}

static void reply_ready(struct guest_watch *w, uint32_t events)
{
	struct guest_context *c = guest_container_of(w, struct guest_context, reply);
	char buf[16384];
	ssize_t n;

	(void)events;
	n = read(w->fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* It closed its reply pipe: nothing it says can arrive any more. */
		guest_loop_close(c->loop, &c->reply);
		misbehaved(c, "its reply pipe closed");
		return;
	}
	for (ssize_t i = 0; i < n && c->reply.fd >= 0; i++) {
		if (buf[i] == '\n') {
			char *line = c->line;
			size_t len = c->line_len;

			c->line = NULL;
			c->line_len = 0;
			if (len == 0) {
				misbehaved(c, "an empty reply");
				c->line = line;
				return;
			}
			line[len] = '\0';
			handle_line(c, line, len);
			/* Kept for the next reply (one allocation per interpreter, not per run),
			 * unless handling this one replaced the interpreter's state. */
			if (c->line == NULL)
				c->line = line;
			else
				free(line);
			continue;
		}
		if (c->line_len >= GUEST_CONTEXT_REPLY_MAX) {
			misbehaved(c, "a reply over the size limit");
			return;
		}
		if (c->line == NULL && (c->line = malloc(GUEST_CONTEXT_REPLY_MAX + 1)) == NULL) {
			misbehaved(c, "out of memory for its reply");
			return;
		}
		c->line[c->line_len++] = buf[i];
	}
}

/* Idle output (a background program of an earlier run, say) has no exec to go to: dropped. */
static void drop_idle_output(struct guest_context *c, struct guest_watch *w)
{
	char buf[4096];
	ssize_t n = read(w->fd, buf, sizeof(buf));

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		guest_loop_close(c->loop, w); /* EOF: the interpreter is going; the reaper knows */
}

static void idle_stdout_ready(struct guest_watch *w, uint32_t events)
{
	(void)events;
	drop_idle_output(guest_container_of(w, struct guest_context, out[0]), w);
}

static void idle_stderr_ready(struct guest_watch *w, uint32_t events)
{
	(void)events;
	drop_idle_output(guest_container_of(w, struct guest_context, out[1]), w);
}

static void start_timer_ready(struct guest_watch *w, uint32_t events)
{
	struct guest_context *c = guest_container_of(w, struct guest_context, start_timer);

	(void)events;
	guest_loop_close(c->loop, &c->start_timer);
	if (!c->ready)
		misbehaved(c, "not ready in time");
}

static int write_command(struct guest_context *c, const char *text, struct ember_error **err)
{
	size_t len = strlen(text);
	ssize_t n;

	if (c->cmd_fd < 0)
		return ember_error_set(err, EMBER_E_GUEST, EPIPE, "context %s has no interpreter",
				       c->spec.id);
	/* A command is one line of well under PIPE_BUF, written whole or not at all, and the
	 * interpreter reads each before it reports the run that follows: a full pipe means its
	 * code stopped it reading (or shrank the pipe), never a reason to block the agent. */
	do {
		n = write(c->cmd_fd, text, len);
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)len)
		return 0;
	misbehaved(c, "it does not read its commands");
	return ember_error_set(err, EMBER_E_GUEST, n < 0 ? errno : EIO,
			       "context %s does not read its commands: restarting it", c->spec.id);
}

static int spawn_interpreter(struct guest_context *c, struct ember_error **err)
{
	char script[PATH_MAX], name[96];
	char *argv[PROTO_CONTEXT_ARGV_MAX + 3];
	int cmd[2] = { -1, -1 }, rep[2] = { -1, -1 }, o[2] = { -1, -1 }, e[2] = { -1, -1 };
	struct guest_user_run run = {
		.argv = argv,
		.env = c->spec.env,
		.cwd = c->spec.cwd,
		.max_processes = c->spec.max_processes,
		.cgroup_name = name,
	};
	size_t i, n = 0;
	int ret = -1;

	/* Every run's code goes there: without it no interpreter is worth starting. */
	if (access(c->cfg->code_root, X_OK) < 0)
		return ember_error_sys(err, "code directory `%s`", c->cfg->code_root);
	if (c->spec.language == PROTO_LANG_SHELL) {
		argv[n++] = (char *)"/bin/sh";
	} else {
		bool node = c->spec.language == PROTO_LANG_NODE;

		snprintf(script, sizeof(script), "%s/%s", c->cfg->code_root,
			 node ? "context.js" : "context.py");
		if (guest_script_install(node ? GUEST_SCRIPT_CONTEXT_NODE : GUEST_SCRIPT_CONTEXT,
					 script, err) < 0)
			return -1;
		for (i = 0; i < c->spec.argc; i++)
			argv[n++] = c->spec.argv[i];
		/* The REPL's top-level-await rewrite is internal/repl/await (context.js). */
		if (node)
			argv[n++] = (char *)"--expose-internals";
		argv[n++] = script;
	}
	argv[n] = NULL;
	snprintf(name, sizeof(name), "%s-%u", c->spec.id, ++c->generation);
	if (pipe2(cmd, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0 || pipe2(o, O_CLOEXEC) < 0 ||
	    pipe2(e, O_CLOEXEC) < 0) {
		ember_error_sys(err, "pipe");
		goto out;
	}
	/* node has no dup2: context.js reopens its fds 0 and 3 through /proc/self/fd (its own
	 * O_CLOEXEC copies, and /dev/null for the code's stdin), an open the kernel checks against
	 * the pipe's owner. Both pipes are the interpreter's anyway. */
	if (c->spec.language == PROTO_LANG_NODE && c->cfg->change_ids &&
	    (fchown(cmd[0], c->cfg->uid, c->cfg->gid) < 0 ||
	     fchown(rep[0], c->cfg->uid, c->cfg->gid) < 0)) {
		ember_error_sys(err, "hand the context's pipes to uid %u", (unsigned)c->cfg->uid);
		goto out;
	}
	run.stdin_fd = cmd[0];
	run.stdout_fd = o[1];
	run.stderr_fd = e[1];
	run.fd3 = rep[1];
	if (fd_set_nonblock(rep[0], 1) < 0 || fd_set_nonblock(o[0], 1) < 0 ||
	    fd_set_nonblock(e[0], 1) < 0 || fd_set_nonblock(cmd[1], 1) < 0) {
		ember_error_sys(err, "set pipes non-blocking");
		goto out;
	}
	if (guest_exec_spawn_user(c->cfg, &run, &c->pid, c->cgroup, sizeof(c->cgroup), err) < 0) {
		c->pid = 0;
		goto out;
	}
	c->reaped = false;
	c->ready = false;
	c->dying = false;
	c->ran = false;
	c->cmd_fd = cmd[1];
	c->reply.fd = rep[0];
	c->out[0].fd = o[0];
	c->out[1].fd = e[0];
	cmd[1] = rep[0] = o[0] = e[0] = -1;
	ret = 0;
out:
	for (i = 0; i < 2; i++) {
		if (cmd[i] >= 0)
			close(cmd[i]);
		if (rep[i] >= 0)
			close(rep[i]);
		if (o[i] >= 0)
			close(o[i]);
		if (e[i] >= 0)
			close(e[i]);
	}
	return ret;
}

static int watch_interpreter(struct guest_context *c, struct ember_error **err)
{
	struct itimerspec its = { .it_value = { .tv_sec = GUEST_CONTEXT_START_MS / 1000 } };

	c->start_timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (c->start_timer.fd < 0 || timerfd_settime(c->start_timer.fd, 0, &its, NULL) < 0)
		return ember_error_sys(err, "arm the context's start timer");
	if (guest_loop_set(c->loop, &c->start_timer, EPOLLIN, err) < 0 ||
	    guest_loop_set(c->loop, &c->reply, EPOLLIN, err) < 0 ||
	    guest_loop_set(c->loop, &c->out[0], EPOLLIN, err) < 0 ||
	    guest_loop_set(c->loop, &c->out[1], EPOLLIN, err) < 0)
		return -1;
	if (c->spec.language == PROTO_LANG_SHELL)
		return write_command(c, SHELL_PRELUDE, err);
	return 0;
}

/* A new interpreter; on failure the context has none (execs in it fail) and the pending reply
 * says why. */
static void start_interpreter(struct guest_context *c)
{
	struct ember_error *err = NULL;

	if (spawn_interpreter(c, &err) < 0 || watch_interpreter(c, &err) < 0) {
		guest_log("context %s: start: %s", c->spec.id, err->message);
		send_reply(c, false, err->message);
		ember_error_free(&err);
		guest_context_kill(c);
		close_interpreter_fds(c);
	}
}

void guest_context_reaped(struct guest_context *c, int wait_status)
{
	/* Now, before the sweep after this reap removes the cgroup. */
	bool oom = guest_cgroup_oom_kills(c->cgroup) > 0;
	struct guest_exec *e = c->running;
	bool restart;

	c->reaped = true;
	guest_cgroup_kill(c->cgroup); /* what it left behind goes with it */
	if (WIFSIGNALED(wait_status) && !c->closing)
		guest_log("context %s: interpreter %d killed by signal %d%s", c->spec.id,
			  (int)c->pid, WTERMSIG(wait_status), oom ? " (out of memory)" : "");
	close_interpreter_fds(c);
	/* Only an interpreter that had been working comes back by itself, and not forever: one
	 * that dies on its way up, or soon after it every time (its user's code can arrange
	 * that), would otherwise be started again and again. */
	if (!c->ran)
		c->quick_deaths++;
	if (c->restart_pending)
		c->quick_deaths = 0;
	restart = !c->closing && (c->restart_pending ||
				  (c->ready && c->quick_deaths < GUEST_CONTEXT_QUICK_DEATHS_MAX));
	if (!restart && c->ready && !c->closing)
		guest_log("context %s: %u interpreters in a row died before finishing a run: not "
			  "restarting it (a restart request does)", c->spec.id, c->quick_deaths);
	if (!restart)
		send_reply(c, false, c->ready ? "the interpreter keeps dying"
					      : "the interpreter exited before it was ready");
	c->pid = 0;
	c->cgroup[0] = '\0';
	c->running = NULL;
	c->restart_pending = false;
	if (e != NULL)
		guest_exec_context_lost(e, wait_status, oom);
	if (restart)
		start_interpreter(c);
}

int guest_context_open(struct guest_loop *loop, const struct guest_exec_config *cfg,
		       struct proto_context *spec, uint32_t reply_id,
		       const struct guest_context_ops *ops, void *ctx, struct guest_context **out,
		       struct ember_error **err)
{
	struct guest_context *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	c->loop = loop;
	c->cfg = cfg;
	c->ops = ops;
	c->ctx = ctx;
	c->spec = *spec;
	memset(spec, 0, sizeof(*spec));
	c->cmd_fd = -1;
	guest_watch_init(&c->reply, -1, reply_ready);
	guest_watch_init(&c->out[0], -1, idle_stdout_ready);
	guest_watch_init(&c->out[1], -1, idle_stderr_ready);
	guest_watch_init(&c->start_timer, -1, start_timer_ready);
	if (spawn_interpreter(c, err) < 0 || watch_interpreter(c, err) < 0) {
		guest_context_kill(c);
		close_interpreter_fds(c);
		proto_context_release(&c->spec);
		free(c);
		return -1;
	}
	c->reply_id = reply_id;
	*out = c;
	return 0;
}

void guest_context_restart(struct guest_context *c, uint32_t reply_id)
{
	if (c->reply_id != 0)
		send_reply(c, false, "restarted again before it was ready");
	c->reply_id = reply_id;
	if (c->pid > 0 && !c->reaped) {
		c->restart_pending = true;
		guest_context_kill(c); /* the reaper starts the new one */
		return;
	}
	start_interpreter(c); /* none running (its start failed): try now */
}

static void context_free_deferred(struct guest_deferred *d)
{
	struct guest_context *c = guest_container_of(d, struct guest_context, deferred);

	proto_context_release(&c->spec);
	free(c);
}

void guest_context_close(struct guest_context *c)
{
	struct guest_exec *e = c->running;

	c->closing = true;
	send_reply(c, false, "the context was closed");
	guest_context_kill(c);
	close_interpreter_fds(c);
	c->running = NULL;
	if (e != NULL)
		guest_exec_context_lost(e, SIGKILL, false);
	guest_loop_defer_free(c->loop, &c->deferred, context_free_deferred);
}

int guest_context_begin(struct guest_context *c, struct guest_exec *e, const char *code_path,
			int out_fds[2], struct ember_error **err)
{
	char command[PATH_MAX + 160];
	int i;

	if (c->running != NULL)
		return ember_error_set(err, EMBER_E_CONFLICT, 0, "context %s is busy", c->spec.id);
	if (c->pid <= 0 || c->cmd_fd < 0)
		return ember_error_set(err, EMBER_E_GUEST, 0, "context %s has no interpreter (its "
				       "start failed: restart it)", c->spec.id);
	if (c->spec.language == PROTO_LANG_SHELL)
		snprintf(command, sizeof(command), SHELL_RUN, code_path);
	else
		snprintf(command, sizeof(command), "run %s\n", code_path);
	out_fds[0] = out_fds[1] = -1;
	for (i = 0; i < 2; i++) {
		out_fds[i] = fcntl(c->out[i].fd, F_DUPFD_CLOEXEC, 3);
		if (out_fds[i] < 0) {
			ember_error_sys(err, "dup the context's output");
			goto fail;
		}
	}
	if (write_command(c, command, err) < 0)
		goto fail;
	/* The run reads the pipes now; idle reading stops until it is over. */
	guest_loop_set(c->loop, &c->out[0], 0, NULL);
	guest_loop_set(c->loop, &c->out[1], 0, NULL);
	c->running = e;
	return 0;
fail:
	for (i = 0; i < 2; i++) {
		if (out_fds[i] >= 0)
			close(out_fds[i]);
		out_fds[i] = -1;
	}
	return -1;
}

void guest_context_end(struct guest_context *c, struct guest_exec *e)
{
	if (c->running != e)
		return;
	c->running = NULL;
	if (c->out[0].fd >= 0)
		guest_loop_set(c->loop, &c->out[0], EPOLLIN, NULL);
	if (c->out[1].fd >= 0)
		guest_loop_set(c->loop, &c->out[1], EPOLLIN, NULL);
}
