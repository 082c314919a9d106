/* Unit tests for the guest's per-connection protocol state machine (src/guest/session.c): the
 * host end is one side of a socketpair, the agent's loop runs in this thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tmpdir.h"

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest/loop.h"
#include "guest/session.h"
#include "proto/credit.h"
#include "proto/frame.h"
#include "proto/io.h"
#include "proto/messages.h"
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hello_on_a_ready_port_session_starts_over),
		cmocka_unit_test(exec_output_is_paced_by_credit),
		cmocka_unit_test(background_command_reports_started_and_takes_signals),
		cmocka_unit_test(credit_in_a_version_1_session_is_a_protocol_error),
		cmocka_unit_test(hello_twice_on_a_socket_is_a_protocol_error),
		cmocka_unit_test(a_taken_fd_outlives_its_session_with_its_unread_input),
	};

	return cmocka_run_group_tests_name("guest_session", tests, tmpdir_group_setup,
					   tmpdir_group_teardown);
}
