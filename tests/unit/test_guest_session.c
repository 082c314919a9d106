/* Unit tests for the guest's per-connection protocol state machine (src/guest/session.c): the
 * host end is one side of a socketpair, the agent's loop runs in this thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tmpdir.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest/loop.h"
#include "guest/session.h"
#include "guest/context.h"
#include "proto/credit.h"
#include "proto/ctxmsg.h"
#include "proto/frame.h"
#include "proto/io.h"
#include "proto/messages.h"
#include "util/fdio.h"
#include "util/timeutil.h"

struct fixture {
	struct guest_loop loop;
	struct guest_session_env env;
	struct guest_session *session;
	int host_fd;
	struct proto_decoder dec;
};

static struct fixture *start(enum guest_session_kind kind)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	int sv[2];

	assert_non_null(fx);
	assert_int_equal(guest_loop_init(&fx->loop, NULL), 0);
	fx->env.loop = &fx->loop;
	fx->env.exec.code_root = tmpdir_path;
	fx->env.exec.cwd = tmpdir_path;
	fx->env.exec.home = tmpdir_path;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	fx->host_fd = sv[0];
	assert_int_equal(guest_session_new(&fx->env, sv[1], kind, "test", &fx->session, NULL), 0);
	proto_decoder_init(&fx->dec);
	return fx;
}

static void stop(struct fixture *fx)
{
	if (fx->session != NULL)
		guest_session_free(fx->session);
	guest_loop_collect(&fx->loop);
	guest_loop_release(&fx->loop);
	proto_decoder_release(&fx->dec);
	close(fx->host_fd);
	free(fx);
}

static void send_hello(struct fixture *fx, const char *sandbox_id)
{
	struct proto_hello hello = { .version = PROTO_VERSION };
	size_t len;
	char *json;

	snprintf(hello.sandbox_id, sizeof(hello.sandbox_id), "%s", sandbox_id);
	json = proto_hello_encode(&hello, &len, NULL);
	assert_non_null(json);
	assert_int_equal(proto_send(fx->host_fd, PROTO_HELLO, 0, 0, json, len,
				    time_mono_ms() + 2000, NULL), 0);
	free(json);
}

/* Runs the agent's loop until the host end has a whole frame. */
static void next_frame(struct fixture *fx, struct proto_frame *f)
{
	int64_t deadline = time_mono_ms() + 5000;

	for (;;) {
		int ret = proto_decoder_next(&fx->dec, f, NULL);

		assert_true(ret >= 0);
		if (ret == 1)
			return;
		assert_true(time_mono_ms() < deadline);
		assert_int_equal(guest_loop_run_once(&fx->loop, 10, NULL), 0);
		proto_fill(fx->host_fd, &fx->dec, NULL);
	}
}

static void expect_ready(struct fixture *fx, const char *sandbox_id)
{
	struct proto_frame f;
	struct proto_ready ready;

	next_frame(fx, &f);
	assert_int_equal(f.header.type, PROTO_READY);
	assert_int_equal(proto_ready_decode(f.payload, f.header.length, &ready, NULL), 0);
	assert_string_equal(ready.sandbox_id, sandbox_id);
}

static void hello_on_a_ready_port_session_starts_over(void **state)
{
	struct fixture *fx = start(GUEST_SESSION_PORT);

	(void)state;
	send_hello(fx, "sb_template");
	expect_ready(fx, "sb_template");
	/* The template's host left, the agent never saw it go (the snapshot came first), and
	 * a clone's host now says HELLO on the same port: it gets its READY. */
	send_hello(fx, "sb_clone");
	expect_ready(fx, "sb_clone");
	assert_false(guest_session_ended(fx->session));
	stop(fx);
}

static void hello_twice_on_a_socket_is_a_protocol_error(void **state)
{
	struct fixture *fx = start(GUEST_SESSION_SOCKET);
	struct proto_frame f;
	struct proto_error_msg msg;

	(void)state;
	send_hello(fx, "sb_one");
	expect_ready(fx, "sb_one");
	send_hello(fx, "sb_two");
	next_frame(fx, &f);
	assert_int_equal(f.header.type, PROTO_ERROR);
	assert_int_equal(proto_error_decode(f.payload, f.header.length, &msg, NULL), 0);
	assert_string_equal(msg.code, "protocol");
	stop(fx);
}

static void a_taken_fd_outlives_its_session_with_its_unread_input(void **state)
{
	struct fixture *fx = start(GUEST_SESSION_PORT);
	char buf[8];
	int fd;

	(void)state;
	fd = guest_session_take_fd(fx->session);
	assert_true(fd >= 0);
	/* bytes the next host sent before the agent looked again: closing would lose them */
	assert_int_equal(write(fx->host_fd, "HELLO", 5), 5);
	guest_session_free(fx->session);
	fx->session = NULL;
	guest_loop_collect(&fx->loop);
	assert_true(fcntl(fd, F_GETFD) >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "HELLO", 5);
	close(fd);
	stop(fx);
}

static void send_exec(struct fixture *fx, uint32_t id, const char *code)
{
	struct proto_exec req = {
		.argv = { (char *)"/bin/sh", NULL },
		.argc = 1,
		.code = (char *)code,
		.code_len = strlen(code),
		.timeout_ms = 20000,
		.output_limit = 64u << 20,
		.max_processes = 65536,
	};
	size_t len;
	char *json = proto_exec_encode(&req, &len, NULL);

	assert_non_null(json);
	assert_int_equal(proto_send(fx->host_fd, PROTO_EXEC, 0, id, json, len,
				    time_mono_ms() + 2000, NULL), 0);
	free(json);
}

/* Counts STDOUT bytes of exec id until *got reaches want (failing if it ever passes granted),
 * then runs the loop for quiet_ms more and checks nothing else came. */
static void expect_output_stalls_at(struct fixture *fx, uint32_t id, uint64_t *got,
				    uint64_t want, int quiet_ms)
{
	int64_t deadline = time_mono_ms() + 20000, quiet_until = -1;

	for (;;) {
		struct proto_frame f;
		int ret = proto_decoder_next(&fx->dec, &f, NULL);

		assert_true(ret >= 0);
		if (ret == 1) {
			assert_int_equal(f.header.id, id);
			assert_int_equal(f.header.type, PROTO_STDOUT);
			*got += f.header.length;
			assert_true(*got <= want); /* never beyond its credit */
			continue;
		}
		if (*got == want && quiet_until < 0)
			quiet_until = time_mono_ms() + quiet_ms;
		if (quiet_until >= 0 && time_mono_ms() >= quiet_until)
			return;
		assert_true(time_mono_ms() < deadline);
		assert_int_equal(guest_loop_run_once(&fx->loop, 10, NULL), 0);
		proto_fill(fx->host_fd, &fx->dec, NULL);
	}
}

static void exec_output_is_paced_by_credit(void **state)
{
	struct fixture *fx = start(GUEST_SESSION_SOCKET);
	uint8_t credit[PROTO_CREDIT_PAYLOAD];
	uint64_t got = 0;

	(void)state;
	send_hello(fx, "sb_credit");
	expect_ready(fx, "sb_credit");
	send_exec(fx, 7, "head -c 4000000 /dev/zero");
	/* The initial window, then nothing: the program is blocked on its pipe. */
	expect_output_stalls_at(fx, 7, &got, PROTO_CREDIT_WINDOW, 300);
	proto_credit_encode(credit, 100000);
	assert_int_equal(proto_send(fx->host_fd, PROTO_CREDIT, 0, 7, credit, sizeof(credit),
				    time_mono_ms() + 2000, NULL), 0);
	expect_output_stalls_at(fx, 7, &got, PROTO_CREDIT_WINDOW + 100000, 300);
	/* A CREDIT for an id that is not running is dropped, not an error. */
	assert_int_equal(proto_send(fx->host_fd, PROTO_CREDIT, 0, 99, credit, sizeof(credit),
				    time_mono_ms() + 2000, NULL), 0);
	expect_output_stalls_at(fx, 7, &got, PROTO_CREDIT_WINDOW + 100000, 100);
	assert_false(guest_session_ended(fx->session));
	stop(fx);
}

static void credit_in_a_version_1_session_is_a_protocol_error(void **state)
{
	struct fixture *fx = start(GUEST_SESSION_SOCKET);
	struct proto_hello hello = { .version = 1 };
	uint8_t credit[PROTO_CREDIT_PAYLOAD];
	struct proto_error_msg msg;
	struct proto_frame f;
	size_t len;
	char *json;

	(void)state;
	snprintf(hello.sandbox_id, sizeof(hello.sandbox_id), "sb_v1");
	json = proto_hello_encode(&hello, &len, NULL);
	assert_non_null(json);
	assert_int_equal(proto_send(fx->host_fd, PROTO_HELLO, 0, 0, json, len,
				    time_mono_ms() + 2000, NULL), 0);
	free(json);
	expect_ready(fx, "sb_v1");
	proto_credit_encode(credit, 1);
	assert_int_equal(proto_send(fx->host_fd, PROTO_CREDIT, 0, 3, credit, sizeof(credit),
				    time_mono_ms() + 2000, NULL), 0);
	next_frame(fx, &f);
	assert_int_equal(f.header.type, PROTO_ERROR);
	assert_int_equal(f.header.id, 0);
	assert_int_equal(proto_error_decode(f.payload, f.header.length, &msg, NULL), 0);
	assert_string_equal(msg.code, "protocol");
	stop(fx);
}

static void send_signal(struct fixture *fx, uint32_t id, uint32_t sig)
{
	uint8_t payload[4] = { (uint8_t)(sig >> 24), (uint8_t)(sig >> 16), (uint8_t)(sig >> 8),
			       (uint8_t)sig };

	assert_int_equal(proto_send(fx->host_fd, PROTO_SIGNAL, 0, id, payload, 4,
				    time_mono_ms() + 2000, NULL), 0);
}

static void expect_error(struct fixture *fx, uint32_t id, const char *code)
{
	struct proto_error_msg msg;
	struct proto_frame f;

	next_frame(fx, &f);
	assert_int_equal(f.header.type, PROTO_ERROR);
	assert_int_equal(f.header.id, id);
	assert_int_equal(proto_error_decode(f.payload, f.header.length, &msg, NULL), 0);
	assert_string_equal(msg.code, code);
}

static void background_command_reports_started_and_takes_signals(void **state)
{
	struct fixture *fx = start(GUEST_SESSION_SOCKET);
	struct proto_exec req = {
		.argv = { (char *)"/bin/sleep", (char *)"30", NULL },
		.argc = 2,
		.code = (char *)"",
		.timeout_ms = 1, /* ignored: a background exec has no timeout */
		.max_processes = 65536,
		.background = true,
		.command = true,
	};
	struct proto_started started;
	struct proto_frame f;
	size_t len;
	char *json;
	int status;

	(void)state;
	send_hello(fx, "sb_bg");
	expect_ready(fx, "sb_bg");
	json = proto_exec_encode(&req, &len, NULL);
	assert_non_null(json);
	assert_int_equal(proto_send(fx->host_fd, PROTO_EXEC, 0, 5, json, len,
				    time_mono_ms() + 2000, NULL), 0);
	free(json);
	next_frame(fx, &f);
	assert_int_equal(f.header.type, PROTO_STARTED);
	assert_int_equal(f.header.id, 5);
	assert_int_equal(proto_started_decode(f.payload, f.header.length, &started, NULL), 0);
	assert_true(started.pid > 0);
	send_signal(fx, 5, 0);
	expect_error(fx, 5, "bad_request");
	send_signal(fx, 5, 65);
	expect_error(fx, 5, "bad_request");
	send_signal(fx, 6, 15);
	expect_error(fx, 6, "unknown_id");
	/* still running well past its 1 ms "timeout", until the SIGTERM */
	assert_int_equal(waitpid(started.pid, &status, WNOHANG), 0);
	send_signal(fx, 5, 15);
	while (waitpid(started.pid, &status, WNOHANG) == 0)
		assert_int_equal(guest_loop_run_once(&fx->loop, 10, NULL), 0);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), 15);
	assert_false(guest_session_ended(fx->session));
	stop(fx);
}

/* --- contexts (version 4) --- */

/* What agent.c's reaper does: each exited child to its exec or context. */
static void reap(struct fixture *fx)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct guest_exec *e = guest_session_exec_by_pid(fx->session, pid);
		struct guest_context *c = guest_session_context_by_pid(fx->session, pid);

		if (e != NULL)
			guest_exec_reaped(e, status);
		else if (c != NULL)
			guest_context_reaped(c, status);
	}
}

/* The next frame for id other than output (collected into out), with the loop and reaper run. */
static void next_frame_for(struct fixture *fx, uint32_t id, struct proto_frame *f, char *out,
			   size_t size)
{
	int64_t deadline = time_mono_ms() + 20000;
	size_t used = out != NULL ? strlen(out) : 0;

	for (;;) {
		int ret = proto_decoder_next(&fx->dec, f, NULL);

		assert_true(ret >= 0);
		if (ret == 1 && f->header.id == id && f->header.type != PROTO_STDOUT &&
		    f->header.type != PROTO_STDERR)
			return;
		if (ret == 1 && f->header.type == PROTO_STDOUT && out != NULL &&
		    used + f->header.length < size) {
			memcpy(out + used, f->payload, f->header.length);
			used += f->header.length;
			out[used] = '\0';
		}
		if (ret == 1)
			continue;
		assert_true(time_mono_ms() < deadline);
		assert_int_equal(guest_loop_run_once(&fx->loop, 10, NULL), 0);
		reap(fx);
		proto_fill(fx->host_fd, &fx->dec, NULL);
	}
}

static void send_context(struct fixture *fx, uint32_t id, enum proto_context_op op,
			 enum proto_context_language language)
{
	struct proto_context req = { .op = op, .language = language, .max_processes = 65536 };
	size_t len;
	char *json;

	snprintf(req.id, sizeof(req.id), "ctx_0a");
	if (language == PROTO_LANG_PYTHON) {
		req.argv[0] = (char *)"/usr/bin/python3";
		req.argc = 1;
	}
	json = proto_context_encode(&req, &len, NULL);
	assert_non_null(json);
	assert_int_equal(proto_send(fx->host_fd, PROTO_CONTEXT, 0, id, json, len,
				    time_mono_ms() + 2000, NULL), 0);
	free(json);
}

/* Runs code in ctx_0a as exec id; returns its EXIT (release it), stdout into out. */
static struct proto_exit run_in_context(struct fixture *fx, uint32_t id, const char *code,
					uint32_t timeout_ms, char *out, size_t size)
{
	struct proto_exec req = {
		.argv = { (char *)"/bin/sh", NULL },
		.argc = 1,
		.code = (char *)code,
		.code_len = strlen(code),
		.timeout_ms = timeout_ms,
		.output_limit = 1u << 20,
		.max_processes = 65536,
		.context = (char *)"ctx_0a",
	};
	struct proto_exit exit_msg;
	struct proto_frame f;
	size_t len;
	char *json = proto_exec_encode(&req, &len, NULL);

	assert_non_null(json);
	assert_int_equal(proto_send(fx->host_fd, PROTO_EXEC, 0, id, json, len,
				    time_mono_ms() + 2000, NULL), 0);
	free(json);
	out[0] = '\0';
	next_frame_for(fx, id, &f, out, size);
	assert_int_equal(f.header.type, PROTO_EXIT);
	assert_int_equal(proto_exit_decode(f.payload, f.header.length, &exit_msg, NULL), 0);
	assert_true(exit_msg.context.present);
	assert_true(exit_msg.has_timing);
	return exit_msg;
}

static void expect_context_reply(struct fixture *fx, uint32_t id)
{
	struct proto_frame f;
	int32_t pid = -1;

	next_frame_for(fx, id, &f, NULL, 0);
	assert_int_equal(f.header.type, PROTO_CONTEXT_REPLY);
	assert_int_equal(proto_context_reply_decode(f.payload, f.header.length, &pid, NULL), 0);
	assert_true(pid >= 0);
}

static void shell_context_keeps_state_and_survives_a_lying_run(void **state)
{
	struct fixture *fx = start(GUEST_SESSION_SOCKET);
	struct proto_exit x;
	char out[256];

	(void)state;
	send_hello(fx, "sb_ctx");
	expect_ready(fx, "sb_ctx");
	send_context(fx, 2, PROTO_CONTEXT_OPEN, PROTO_LANG_SHELL);
	expect_context_reply(fx, 2);
	send_context(fx, 3, PROTO_CONTEXT_OPEN, PROTO_LANG_SHELL);
	expect_error(fx, 3, "exists");
	x = run_in_context(fx, 4, "N=41\ncd /\n", 20000, out, sizeof(out));
	assert_int_equal(x.exit_code, 0);
	proto_exit_release(&x);
	x = run_in_context(fx, 5, "echo $((N + 1)) $(pwd)\nfalse", 20000, out, sizeof(out));
	assert_string_equal(out, "42 /\n");
	assert_int_equal(x.exit_code, 1);
	assert_false(x.context.restarted);
	proto_exit_release(&x);
	/* the user's code writes to the reply pipe: the interpreter is killed and replaced */
	x = run_in_context(fx, 6, "echo 'done {\"exit_code\":\"x\"}' >&3\nsleep 30", 20000, out,
			   sizeof(out));
	assert_true(x.context.restarted);
	assert_int_equal(x.signal, 9);
	proto_exit_release(&x);
	x = run_in_context(fx, 7, "echo ${N:-gone}", 20000, out, sizeof(out));
	assert_string_equal(out, "gone\n");
	proto_exit_release(&x);
	/* a timeout: SIGINT stops the foreground program, the shell and its state live on */
	x = run_in_context(fx, 8, "M=7\nsleep 30\necho after", 300, out, sizeof(out));
	assert_true(x.timed_out);
	assert_false(x.context.restarted);
	assert_string_equal(out, "after\n");
	proto_exit_release(&x);
	send_context(fx, 9, PROTO_CONTEXT_CLOSE, PROTO_LANG_SHELL);
	expect_context_reply(fx, 9);
	send_context(fx, 10, PROTO_CONTEXT_CLOSE, PROTO_LANG_SHELL);
	expect_error(fx, 10, "unknown_context");
	stop(fx);
}

static void python_context_result_error_and_interrupt(void **state)
{
	struct fixture *fx = start(GUEST_SESSION_SOCKET);
	struct proto_exit x;
	char out[256];

	(void)state;
	if (access("/usr/bin/python3", X_OK) < 0)
		skip();
	send_hello(fx, "sb_py");
	expect_ready(fx, "sb_py");
	send_context(fx, 2, PROTO_CONTEXT_OPEN, PROTO_LANG_PYTHON);
	expect_context_reply(fx, 2);
	x = run_in_context(fx, 3, "x = 20\nprint('hi')\nx + 22", 20000, out, sizeof(out));
	assert_string_equal(out, "hi\n");
	assert_string_equal(x.context.result, "42");
	proto_exit_release(&x);
	x = run_in_context(fx, 4, "import time\ntime.sleep(30)", 300, out, sizeof(out));
	assert_true(x.timed_out);
	assert_true(x.context.has_error);
	assert_string_equal(x.context.error_name, "KeyboardInterrupt");
	assert_false(x.context.restarted);
	proto_exit_release(&x);
	x = run_in_context(fx, 5, "x", 20000, out, sizeof(out));
	assert_string_equal(x.context.result, "20");
	proto_exit_release(&x);
	/* a restart: the same context, a fresh interpreter */
	send_context(fx, 6, PROTO_CONTEXT_RESTART, PROTO_LANG_PYTHON);
	expect_context_reply(fx, 6);
	x = run_in_context(fx, 7, "x", 20000, out, sizeof(out));
	assert_string_equal(x.context.error_name, "NameError");
	proto_exit_release(&x);
	stop(fx); /* the session's end kills the interpreter */
}

/* --- suspend and resume (version 8) --- */

static void send_empty(struct fixture *fx, uint8_t type, uint32_t id)
{
	assert_int_equal(proto_send(fx->host_fd, type, 0, id, NULL, 0, time_mono_ms() + 2000, NULL),
			 0);
}

static void send_resume(struct fixture *fx, const char *sandbox_id)
{
	struct proto_hello hello = { .version = PROTO_VERSION };
	size_t len;
	char *json;

	snprintf(hello.sandbox_id, sizeof(hello.sandbox_id), "%s", sandbox_id);
	json = proto_hello_encode(&hello, &len, NULL);
	assert_non_null(json);
	assert_int_equal(proto_send(fx->host_fd, PROTO_RESUME, 0, 0, json, len,
				    time_mono_ms() + 2000, NULL), 0);
	free(json);
}

/* The next frame of any kind, with the loop and the reaper run. */
static void next_frame_reaping(struct fixture *fx, struct proto_frame *f)
{
	int64_t deadline = time_mono_ms() + 20000;

	for (;;) {
		int ret = proto_decoder_next(&fx->dec, f, NULL);

		assert_true(ret >= 0);
		if (ret == 1)
			return;
		assert_true(time_mono_ms() < deadline);
		assert_int_equal(guest_loop_run_once(&fx->loop, 10, NULL), 0);
		reap(fx);
		proto_fill(fx->host_fd, &fx->dec, NULL);
	}
}

/* Runs the loop and the reaper for ms: not a byte may reach the host meanwhile. */
static void expect_silence(struct fixture *fx, int ms)
{
	int64_t until = time_mono_ms() + ms;
	uint8_t byte;

	while (time_mono_ms() < until) {
		assert_int_equal(guest_loop_run_once(&fx->loop, 10, NULL), 0);
		reap(fx);
	}
	assert_int_equal(proto_decoder_pending(&fx->dec), 0);
	assert_int_equal(recv(fx->host_fd, &byte, 1, MSG_DONTWAIT | MSG_PEEK), -1);
}

static void expect_suspended(struct fixture *fx)
{
	struct proto_frame f;

	next_frame_reaping(fx, &f);
	assert_int_equal(f.header.type, PROTO_SUSPENDED);
	assert_int_equal(f.header.id, 0);
	assert_int_equal(f.header.length, 0);
}

static void expect_exit(struct fixture *fx, uint32_t id, int exit_code)
{
	struct proto_exit x;
	struct proto_frame f;

	next_frame_reaping(fx, &f);
	assert_int_equal(f.header.type, PROTO_EXIT);
	assert_int_equal(f.header.id, id);
	assert_int_equal(proto_exit_decode(f.payload, f.header.length, &x, NULL), 0);
	assert_int_equal(x.exit_code, exit_code);
	proto_exit_release(&x);
}

static void expect_stdout(struct fixture *fx, uint32_t id, const char *text)
{
	struct proto_frame f;

	next_frame_reaping(fx, &f);
	assert_int_equal(f.header.type, PROTO_STDOUT);
	assert_int_equal(f.header.id, id);
	assert_int_equal(f.header.length, strlen(text));
	assert_memory_equal(f.payload, text, strlen(text));
}

static void expect_session_error(struct fixture *fx, const char *code)
{
	struct proto_error_msg msg;
	struct proto_frame f;

	next_frame_reaping(fx, &f);
	assert_int_equal(f.header.type, PROTO_ERROR);
	assert_int_equal(f.header.id, 0);
	assert_int_equal(proto_error_decode(f.payload, f.header.length, &msg, NULL), 0);
	assert_string_equal(msg.code, code);
}

static void check_suspended_is_the_last_frame(enum guest_session_kind kind)
{
	struct fixture *fx = start(kind);

	send_hello(fx, "sb_susp");
	expect_ready(fx, "sb_susp");
	/* 4 closes its output at once: its EXIT is produced while suspended. 3 writes while
	 * suspended: that stays in its pipe until RESUME. */
	send_exec(fx, 4, "exec >/dev/null 2>&1\nsleep 0.5");
	send_exec(fx, 3, "sleep 0.2\necho one\nsleep 0.5\necho two");
	expect_stdout(fx, 3, "one\n");
	send_empty(fx, PROTO_SUSPEND, 0);
	expect_suspended(fx);
	expect_silence(fx, 1500); /* both programs end meanwhile */
	assert_false(guest_session_ended(fx->session));
	send_resume(fx, "sb_susp");
	expect_ready(fx, "sb_susp");
	expect_exit(fx, 4, 0); /* held while suspended, right behind READY */
	expect_stdout(fx, 3, "two\n");
	expect_exit(fx, 3, 0);
	stop(fx);
}

static void suspended_is_the_last_frame_and_what_came_meanwhile_follows_ready(void **state)
{
	(void)state;
	check_suspended_is_the_last_frame(GUEST_SESSION_PORT);
}

/* A socket the host did not drop (QEMU's ember-vm, a save that ran the VM on). */
static void a_socket_session_suspends_and_resumes_on_its_connection(void **state)
{
	(void)state;
	check_suspended_is_the_last_frame(GUEST_SESSION_SOCKET);
}

/* Held frames are bounded by the queue's cap; what execs would write is bounded by not reading
 * it: a program writing more than a pipe holds blocks until RESUME. */
static void execs_leave_their_output_in_the_pipes_while_suspended(void **state)
{
	struct fixture *fx = start(GUEST_SESSION_PORT);
	char marker[PATH_MAX];
	struct proto_frame f;
	size_t got = 0;

	(void)state;
	snprintf(marker, sizeof(marker), "%s/after_the_output", tmpdir_path);
	send_hello(fx, "sb_pipe");
	expect_ready(fx, "sb_pipe");
	/* 150000 bytes: more than a pipe (64 KiB), less than the credit window (256 KiB) */
	send_exec(fx, 3, "echo one\nsleep 0.3\nhead -c 150000 /dev/zero\ntouch after_the_output");
	expect_stdout(fx, 3, "one\n");
	send_empty(fx, PROTO_SUSPEND, 0);
	expect_suspended(fx);
	expect_silence(fx, 1200);
	assert_int_equal(access(marker, F_OK), -1); /* still blocked writing */
	send_resume(fx, "sb_pipe");
	expect_ready(fx, "sb_pipe");
	for (;;) {
		next_frame_reaping(fx, &f);
		if (f.header.type != PROTO_STDOUT)
			break;
		got += f.header.length;
	}
	assert_int_equal(f.header.type, PROTO_EXIT);
	assert_int_equal(got, 150000);
	assert_int_equal(access(marker, F_OK), 0);
	unlink(marker);
	stop(fx);
}

static void a_hangup_while_suspended_parks_and_the_next_host_resumes(void **state)
{
	struct fixture *fx = start(GUEST_SESSION_PORT);
	int64_t began;
	int sv[2], i;

	(void)state;
	send_hello(fx, "sb_park");
	expect_ready(fx, "sb_park");
	send_exec(fx, 3, "sleep 1\necho late");
	send_empty(fx, PROTO_SUSPEND, 0);
	expect_suspended(fx);
	/* The host goes (QEMU exited after saving the VM): read() == 0 and a hangup. */
	close(fx->host_fd);
	assert_int_equal(guest_loop_run_once(&fx->loop, 100, NULL), 0);
	assert_true(guest_session_parked(fx->session));
	assert_false(guest_session_ended(fx->session));
	/* Parked means out of the loop: a hung-up fd in it would wake every wait at once. */
	began = time_mono_ms();
	for (i = 0; i < 3; i++)
		assert_int_equal(guest_loop_run_once(&fx->loop, 100, NULL), 0);
	assert_true(time_mono_ms() - began >= 250);
	/* A new host on the same fd (QEMU restored the VM; its port keeps its fd). */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(dup2(sv[1], guest_session_fd(fx->session)), guest_session_fd(fx->session));
	close(sv[1]);
	fx->host_fd = sv[0];
	proto_decoder_release(&fx->dec);
	proto_decoder_init(&fx->dec);
	guest_session_unpark(fx->session);
	assert_false(guest_session_parked(fx->session));
	send_resume(fx, "sb_park");
	expect_ready(fx, "sb_park");
	/* The exec lived through it. */
	expect_stdout(fx, 3, "late\n");
	expect_exit(fx, 3, 0);
	stop(fx);
}

/* A new connection for a suspended socket session (Firecracker reset the old one at the
 * snapshot); the session then reads from it. */
static void adopt_new_connection(struct fixture *fx)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	assert_true(guest_session_awaits_resume(fx->session));
	assert_int_equal(guest_session_adopt(fx->session, sv[1], NULL), 0);
	close(fx->host_fd);
	fx->host_fd = sv[0];
	proto_decoder_release(&fx->dec);
	proto_decoder_init(&fx->dec);
	assert_false(guest_session_parked(fx->session));
}

static void a_socket_hangup_while_suspended_parks_and_a_new_connection_resumes(void **state)
{
	struct fixture *fx = start(GUEST_SESSION_SOCKET);
	int64_t began;
	int i;

	(void)state;
	send_hello(fx, "sb_vsock");
	expect_ready(fx, "sb_vsock");
	send_exec(fx, 4, "exec >/dev/null 2>&1\nsleep 0.3");
	send_exec(fx, 3, "sleep 1\necho late");
	send_empty(fx, PROTO_SUSPEND, 0);
	expect_suspended(fx);
	/* Firecracker reset the connection at the snapshot: the session parks, its fd closed. */
	close(fx->host_fd);
	fx->host_fd = -1;
	assert_int_equal(guest_loop_run_once(&fx->loop, 100, NULL), 0);
	assert_true(guest_session_parked(fx->session));
	assert_false(guest_session_ended(fx->session));
	assert_int_equal(guest_session_fd(fx->session), -1);
	began = time_mono_ms();
	for (i = 0; i < 6; i++) {
		assert_int_equal(guest_loop_run_once(&fx->loop, 100, NULL), 0);
		reap(fx);
	}
	assert_true(time_mono_ms() - began >= 500); /* nothing in the loop wakes it */
	adopt_new_connection(fx);
	send_resume(fx, "sb_vsock");
	expect_ready(fx, "sb_vsock");
	expect_exit(fx, 4, 0); /* held while parked, right behind READY */
	expect_stdout(fx, 3, "late\n"); /* the exec lived through it */
	expect_exit(fx, 3, 0);
	stop(fx);
}

/* The host may connect again before the guest saw the old connection go. */
static void a_new_connection_takes_a_suspended_socket_session_before_its_hangup(void **state)
{
	struct fixture *fx = start(GUEST_SESSION_SOCKET);
	int old_host;

	(void)state;
	send_hello(fx, "sb_early");
	expect_ready(fx, "sb_early");
	send_exec(fx, 3, "sleep 0.5\necho kept");
	send_empty(fx, PROTO_SUSPEND, 0);
	expect_suspended(fx);
	old_host = dup(fx->host_fd);
	adopt_new_connection(fx);
	send_resume(fx, "sb_early");
	expect_ready(fx, "sb_early");
	expect_stdout(fx, 3, "kept\n");
	expect_exit(fx, 3, 0);
	/* the old connection was closed by the guest: EOF there */
	assert_true(fd_wait(old_host, POLLIN, time_mono_ms() + 2000, NULL) > 0);
	assert_int_equal(read(old_host, &(char){ 0 }, 1), 0);
	close(old_host);
	stop(fx);
}

static void hello_on_a_new_connection_starts_a_suspended_socket_session_over(void **state)
{
	struct fixture *fx = start(GUEST_SESSION_SOCKET);
	struct proto_frame f;

	(void)state;
	send_hello(fx, "sb_src");
	expect_ready(fx, "sb_src");
	send_exec(fx, 4, "exec >/dev/null 2>&1\nsleep 0.2");
	expect_silence(fx, 150);
	send_empty(fx, PROTO_SUSPEND, 0);
	expect_suspended(fx);
	expect_silence(fx, 500); /* its EXIT is held */
	close(fx->host_fd);
	fx->host_fd = -1;
	assert_int_equal(guest_loop_run_once(&fx->loop, 100, NULL), 0);
	assert_true(guest_session_parked(fx->session));
	adopt_new_connection(fx); /* a fork: its own host, its own sandbox */
	send_hello(fx, "sb_fork");
	expect_ready(fx, "sb_fork");
	assert_false(guest_session_awaits_resume(fx->session));
	assert_int_equal(proto_send(fx->host_fd, PROTO_PING, 0, 0, "x", 1, time_mono_ms() + 2000,
				    NULL), 0);
	next_frame_reaping(fx, &f);
	assert_int_equal(f.header.type, PROTO_PONG); /* the old EXIT is gone */
	stop(fx);
}

static void resume_on_a_new_connection_for_another_sandbox_fails(void **state)
{
	struct fixture *fx = start(GUEST_SESSION_SOCKET);

	(void)state;
	send_hello(fx, "sb_mine");
	expect_ready(fx, "sb_mine");
	send_empty(fx, PROTO_SUSPEND, 0);
	expect_suspended(fx);
	adopt_new_connection(fx);
	send_resume(fx, "sb_other");
	expect_session_error(fx, "protocol");
	stop(fx);
}

static void resume_for_another_sandbox_fails(void **state)
{
	struct fixture *fx = start(GUEST_SESSION_PORT);

	(void)state;
	send_hello(fx, "sb_mine");
	expect_ready(fx, "sb_mine");
	send_empty(fx, PROTO_SUSPEND, 0);
	expect_suspended(fx);
	send_resume(fx, "sb_other");
	expect_session_error(fx, "protocol");
	stop(fx);
}

static void resume_without_suspend_fails(void **state)
{
	struct fixture *fx = start(GUEST_SESSION_PORT);

	(void)state;
	send_hello(fx, "sb_rs");
	expect_ready(fx, "sb_rs");
	send_resume(fx, "sb_rs");
	expect_session_error(fx, "protocol");
	stop(fx);
}

static void check_any_other_frame_while_suspended_fails(enum guest_session_kind kind)
{
	struct fixture *fx = start(kind);

	send_hello(fx, "sb_ping");
	expect_ready(fx, "sb_ping");
	send_empty(fx, PROTO_SUSPEND, 0);
	expect_suspended(fx);
	assert_int_equal(proto_send(fx->host_fd, PROTO_PING, 0, 0, "x", 1, time_mono_ms() + 2000,
				    NULL), 0);
	expect_session_error(fx, "protocol"); /* and no PONG before it */
	stop(fx);
}

static void any_other_frame_while_suspended_fails(void **state)
{
	(void)state;
	check_any_other_frame_while_suspended_fails(GUEST_SESSION_PORT);
}

static void any_other_frame_while_a_socket_session_is_suspended_fails(void **state)
{
	(void)state;
	check_any_other_frame_while_suspended_fails(GUEST_SESSION_SOCKET);
}

static void hello_while_suspended_starts_over_without_the_held_frames(void **state)
{
	struct fixture *fx = start(GUEST_SESSION_PORT);
	struct proto_frame f;

	(void)state;
	send_hello(fx, "sb_old");
	expect_ready(fx, "sb_old");
	send_exec(fx, 4, "exec >/dev/null 2>&1\nsleep 0.2");
	expect_silence(fx, 150); /* its pipes' EOF is seen before the suspension */
	send_empty(fx, PROTO_SUSPEND, 0);
	expect_suspended(fx);
	expect_silence(fx, 500); /* its EXIT is held */
	send_hello(fx, "sb_new");
	expect_ready(fx, "sb_new");
	/* not suspended any more, and the old session's EXIT is gone: PONG comes next */
	assert_int_equal(proto_send(fx->host_fd, PROTO_PING, 0, 0, "x", 1, time_mono_ms() + 2000,
				    NULL), 0);
	next_frame_reaping(fx, &f);
	assert_int_equal(f.header.type, PROTO_PONG);
	stop(fx);
}

static void check_suspend_below_version_8(enum guest_session_kind kind)
{
	struct fixture *fx = start(kind);
	struct proto_hello hello = { .version = 7 };
	size_t len;
	char *json;

	snprintf(hello.sandbox_id, sizeof(hello.sandbox_id), "sb_v7");
	json = proto_hello_encode(&hello, &len, NULL);
	assert_non_null(json);
	assert_int_equal(proto_send(fx->host_fd, PROTO_HELLO, 0, 0, json, len,
				    time_mono_ms() + 2000, NULL), 0);
	free(json);
	expect_ready(fx, "sb_v7");
	send_empty(fx, PROTO_SUSPEND, 0);
	expect_session_error(fx, "protocol");
	stop(fx);
}

static void suspend_below_version_8_is_a_protocol_error(void **state)
{
	(void)state;
	check_suspend_below_version_8(GUEST_SESSION_PORT);
}

static void suspend_below_version_8_on_a_socket_is_a_protocol_error(void **state)
{
	(void)state;
	check_suspend_below_version_8(GUEST_SESSION_SOCKET);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hello_on_a_ready_port_session_starts_over),
		cmocka_unit_test(exec_output_is_paced_by_credit),
		cmocka_unit_test(background_command_reports_started_and_takes_signals),
		cmocka_unit_test(credit_in_a_version_1_session_is_a_protocol_error),
		cmocka_unit_test(hello_twice_on_a_socket_is_a_protocol_error),
		cmocka_unit_test(a_taken_fd_outlives_its_session_with_its_unread_input),
		cmocka_unit_test(shell_context_keeps_state_and_survives_a_lying_run),
		cmocka_unit_test(python_context_result_error_and_interrupt),
		cmocka_unit_test(suspended_is_the_last_frame_and_what_came_meanwhile_follows_ready),
		cmocka_unit_test(execs_leave_their_output_in_the_pipes_while_suspended),
		cmocka_unit_test(a_hangup_while_suspended_parks_and_the_next_host_resumes),
		cmocka_unit_test(resume_for_another_sandbox_fails),
		cmocka_unit_test(resume_without_suspend_fails),
		cmocka_unit_test(any_other_frame_while_suspended_fails),
		cmocka_unit_test(hello_while_suspended_starts_over_without_the_held_frames),
		cmocka_unit_test(suspend_below_version_8_is_a_protocol_error),
		cmocka_unit_test(a_socket_session_suspends_and_resumes_on_its_connection),
		cmocka_unit_test(a_socket_hangup_while_suspended_parks_and_a_new_connection_resumes),
		cmocka_unit_test(a_new_connection_takes_a_suspended_socket_session_before_its_hangup),
		cmocka_unit_test(hello_on_a_new_connection_starts_a_suspended_socket_session_over),
		cmocka_unit_test(resume_on_a_new_connection_for_another_sandbox_fails),
		cmocka_unit_test(any_other_frame_while_a_socket_session_is_suspended_fails),
		cmocka_unit_test(suspend_below_version_8_on_a_socket_is_a_protocol_error),
	};

	return cmocka_run_group_tests_name("guest_session", tests, tmpdir_group_setup,
					   tmpdir_group_teardown);
}
