/* Unit tests for a sandbox's background processes (src/sandbox/procs.c) over a real channel
 * (src/channel/channel.c): the guest is a thread speaking protocol version 3 on a socketpair.
 * A background exec's argv[0] tells it what to do: "flood" (STARTED, then 3 MiB of stdout paced
 * by the host's CREDIT, "e" on stderr, exit 0), "cat" (echo STDIN as STDOUT, exit 0 at FIN),
 * "sleep" (wait for a SIGNAL or a CANCEL and exit by it, a CANCEL as SIGKILL), "fail" (ERROR
 * spawn_failed, no STARTED). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel/channel.h"
#include "proto/credit.h"
#include "proto/frame.h"
#include "proto/io.h"
#include "proto/messages.h"
#include "sandbox/procs.h"
#include "util/timeutil.h"

#define FLOOD_BYTES (3u * 1024u * 1024u)

struct fake_guest {
	int fd;
	pthread_t thread;
	struct proto_decoder dec;
	uint64_t credit[256];       /* per exec id (ids stay small here) */
	bool cat[256];
	uint32_t signalled[256];
};

static void send_json(struct fake_guest *g, uint8_t type, uint32_t id, char *text)
{
	assert_non_null(text);
	proto_send(g->fd, type, 0, id, text, strlen(text), time_mono_ms() + 5000, NULL);
	free(text);
}

static void send_exit(struct fake_guest *g, uint32_t id, int code, int sig)
{
	struct proto_exit out = { .exit_code = code, .signal = sig };
	size_t len;

	send_json(g, PROTO_EXIT, id, proto_exit_encode(&out, &len, NULL));
}

static int guest_frame(struct fake_guest *g);

/* 3 MiB of stdout, byte i of it (i / 65536) & 0xff, never beyond the host's credit. */
static void flood(struct fake_guest *g, uint32_t id)
{
	static uint8_t chunk[PROTO_MAX_DATA_CHUNK];
	uint32_t sent = 0;

	while (sent < FLOOD_BYTES) {
		if (g->credit[id] < sizeof(chunk)) {
			assert_int_equal(guest_frame(g), 1);
			continue;
		}
		memset(chunk, (int)((sent / sizeof(chunk)) & 0xff), sizeof(chunk));
		proto_send(g->fd, PROTO_STDOUT, 0, id, chunk, sizeof(chunk), time_mono_ms() + 5000,
			   NULL);
		g->credit[id] -= sizeof(chunk);
		sent += sizeof(chunk);
	}
	/* Its one byte of stderr needs credit too, like any data frame of the id. */
	while (g->credit[id] < 1)
		assert_int_equal(guest_frame(g), 1);
	proto_send(g->fd, PROTO_STDERR, 0, id, "e", 1, time_mono_ms() + 5000, NULL);
	g->credit[id] -= 1;
	send_exit(g, id, 0, 0);
}

static void guest_exec(struct fake_guest *g, const struct proto_frame *f)
{
	struct proto_started started = { .pid = (int32_t)(100 + f->header.id) };
	uint32_t id = f->header.id;
	struct proto_exec ex;
	size_t len;

	assert_true(id < 256);
	assert_int_equal(proto_exec_decode(f->payload, f->header.length, &ex, NULL), 0);
	assert_true(ex.background && ex.command);
	g->credit[id] = PROTO_CREDIT_WINDOW;
	if (strcmp(ex.argv[0], "fail") == 0) {
		send_json(g, PROTO_ERROR, id, proto_error_encode("spawn_failed", "no such file",
								 &len, NULL));
		proto_exec_release(&ex);
		return;
	}
	send_json(g, PROTO_STARTED, id, proto_started_encode(&started, &len, NULL));
	if (strcmp(ex.argv[0], "flood") == 0)
		flood(g, id);
	else if (strcmp(ex.argv[0], "cat") == 0)
		g->cat[id] = true;
	proto_exec_release(&ex);
}

/* One frame from the host: 1, or 0 when the host went away. */
static int guest_frame(struct fake_guest *g)
{
	struct proto_frame f;
	uint32_t bytes, id;

	if (proto_recv(g->fd, &g->dec, &f, -1, NULL) != 1)
		return 0;
	id = f.header.id;
	switch (f.header.type) {
	case PROTO_HELLO: {
		struct proto_hello hello;
		struct proto_ready ready = { .version = 3, .uptime_ms = 1 };
		size_t len;

		assert_int_equal(proto_hello_decode(f.payload, f.header.length, &hello, NULL), 0);
		strcpy(ready.agent, "fake");
		strcpy(ready.sandbox_id, hello.sandbox_id);
		send_json(g, PROTO_READY, 0, proto_ready_encode(&ready, &len, NULL));
		break;
	}
	case PROTO_EXEC:
		guest_exec(g, &f);
		break;
	case PROTO_CREDIT:
		assert_int_equal(proto_credit_decode(f.payload, f.header.length, &bytes, NULL), 0);
		g->credit[id] += bytes;
		break;
	case PROTO_STDIN:
		assert_true(g->cat[id]);
		if (f.header.length > 0)
			proto_send(g->fd, PROTO_STDOUT, 0, id, f.payload, f.header.length,
				   time_mono_ms() + 5000, NULL);
		if (f.header.flags & PROTO_FLAG_FIN)
			send_exit(g, id, 0, 0);
		break;
	case PROTO_SIGNAL:
		assert_int_equal(f.header.length, 4);
		g->signalled[id] = f.payload[3];
		send_exit(g, id, -1, f.payload[3]);
		break;
	case PROTO_CANCEL: /* the guest kills the process group */
		send_exit(g, id, -1, 9);
		break;
	default:
		fail_msg("unexpected frame type %u", f.header.type);
	}
	return 1;
}

static void *guest_main(void *arg)
{
	struct fake_guest *g = arg;

	while (guest_frame(g) == 1)
		;
	return NULL;
}

struct fixture {
	struct fake_guest guest;
	struct channel *ch;
	struct procs *procs;
};

static struct fixture *start(void)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct proto_ready ready;
	int sv[2];

	assert_non_null(fx);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	fx->guest.fd = sv[1];
	proto_decoder_init(&fx->guest.dec);
	assert_int_equal(pthread_create(&fx->guest.thread, NULL, guest_main, &fx->guest), 0);
	assert_int_equal(channel_open(sv[0], "sb_procs", NULL, NULL, -1, time_mono_ms() + 5000, &fx->ch,
				      &ready, NULL), 0);
	assert_int_equal(ready.version, 3);
	assert_int_equal(procs_new(&fx->procs, NULL), 0);
	return fx;
}

/* As the manager's teardown: abort the channel, close the table, then the channel. */
static void stop(struct fixture *fx)
{
	channel_abort(fx->ch, "the sandbox is being destroyed");
	procs_close(fx->procs);
	procs_unref(fx->procs);
	channel_close(fx->ch);
	pthread_join(fx->guest.thread, NULL);
	close(fx->guest.fd);
	proto_decoder_release(&fx->guest.dec);
	free(fx);
}

static int start_cmd(struct fixture *fx, const char *cmd, bool has_stdin, struct procs_info *info,
		     struct ember_error **err)
{
	char *argv[] = { (char *)cmd, NULL };
	struct channel_exec_request req = {
		.argv = argv, .argc = 1, .code = "", .timeout_ms = 1, .max_processes = 8,
		.has_stdin = has_stdin, .command = true, .background = true,
	};

	return procs_start(fx->procs, fx->ch, &req, "t", 0, info, err);
}

/* Reads a process's output to its end as a follower from pos[]; returns the final info. */
static struct procs_info follow_to_end(struct fixture *fx, int32_t pid, uint64_t pos[2],
				       uint64_t got[2])
{
	static uint8_t buf[16384];
	struct procs_info info;
	bool ended = false;
	int64_t deadline = time_mono_ms() + 20000;

	while (!ended) {
		size_t n;
		int stream = 0;

		assert_true(time_mono_ms() < deadline);
		assert_int_equal(procs_read(fx->procs, pid, pos, buf, sizeof(buf), &stream, &n,
					    &ended, &info, time_mono_ms() + 200, NULL), 0);
		if (n > 0)
			got[stream] += n;
	}
	return info;
}

static void ring_keeps_the_newest_mib_and_counts_what_it_dropped(void **state)
{
	struct fixture *fx = start();
	struct procs_info info;
	uint64_t pos[2] = { 0, 0 }, got[2] = { 0, 0 };
	uint8_t *out[2] = { NULL, NULL };
	size_t len[2];

	(void)state;
	assert_int_equal(start_cmd(fx, "flood", false, &info, NULL), 0);
	assert_true(info.pid > 100);
	assert_string_equal(info.tag, "t");
	info = follow_to_end(fx, info.pid, pos, got);
	assert_int_equal(info.state, PROCS_EXITED);
	if (info.lost)
		fail_msg("lost: %s", info.error);
	assert_int_equal(info.exit.exit_code, 0);
	assert_int_equal(info.total[0], FLOOD_BYTES);
	assert_int_equal(info.dropped[0], FLOOD_BYTES - PROCS_RING_BYTES);
	assert_int_equal(info.total[1], 1);
	assert_int_equal(info.dropped[1], 0);
	assert_int_equal(pos[0], FLOOD_BYTES);
	assert_true(got[0] >= PROCS_RING_BYTES && got[0] <= FLOOD_BYTES); /* it may lag behind */
	assert_int_equal(procs_get(fx->procs, info.pid, &info, out, len, NULL), 0);
	assert_int_equal(len[0], PROCS_RING_BYTES);
	assert_int_equal(len[1], 1);
	/* the newest bytes: the last 16 chunks of 64 KiB, numbered 32..47 */
	assert_int_equal(out[0][0], 32);
	assert_int_equal(out[0][PROCS_RING_BYTES - 1], 47);
	assert_int_equal(out[1][0], 'e');
	free(out[0]);
	free(out[1]);
	/* a new follower starts at the oldest byte the ring holds */
	pos[0] = pos[1] = got[0] = got[1] = 0;
	follow_to_end(fx, info.pid, pos, got);
	assert_int_equal(got[0], PROCS_RING_BYTES);
	assert_int_equal(got[1], 1);
	stop(fx);
}

static void stdin_goes_through_and_close_ends_it(void **state)
{
	struct fixture *fx = start();
	struct ember_error *err = NULL;
	struct procs_info info;
	uint8_t *out[2] = { NULL, NULL };
	size_t len[2];

	(void)state;
	assert_int_equal(start_cmd(fx, "cat", true, &info, NULL), 0);
	assert_true(info.stdin_open);
	assert_int_equal(procs_stdin(fx->procs, fx->ch, info.pid, (const uint8_t *)"abc", 3,
				     false, NULL), 0);
	assert_int_equal(procs_stdin(fx->procs, fx->ch, info.pid, (const uint8_t *)"def", 3,
				     true, NULL), 0);
	/* closed: a second close or more bytes are a conflict */
	assert_int_equal(procs_stdin(fx->procs, fx->ch, info.pid, NULL, 0, true, &err), -1);
	assert_int_equal(err->kind, EMBER_E_CONFLICT);
	ember_error_free(&err);
	{
		uint64_t pos[2] = { 0, 0 }, got[2] = { 0, 0 };

		info = follow_to_end(fx, info.pid, pos, got);
	}
	assert_int_equal(info.exit.exit_code, 0);
	assert_int_equal(procs_get(fx->procs, info.pid, &info, out, len, NULL), 0);
	assert_int_equal(len[0], 6);
	assert_memory_equal(out[0], "abcdef", 6);
	free(out[0]);
	free(out[1]);
	stop(fx);
}

static void signal_ends_it_and_unknown_or_ended_pids_are_refused(void **state)
{
	struct fixture *fx = start();
	struct ember_error *err = NULL;
	struct procs_info info, *list = NULL;
	uint64_t pos[2] = { 0, 0 }, got[2] = { 0, 0 };
	size_t count;

	(void)state;
	assert_int_equal(start_cmd(fx, "sleep", false, &info, NULL), 0);
	assert_int_equal(procs_stdin(fx->procs, fx->ch, info.pid, (const uint8_t *)"x", 1, false,
				     &err), -1);
	assert_int_equal(err->kind, EMBER_E_CONFLICT); /* started without stdin */
	ember_error_free(&err);
	assert_int_equal(procs_signal(fx->procs, fx->ch, info.pid, 15, NULL), 0);
	info = follow_to_end(fx, info.pid, pos, got);
	assert_int_equal(info.exit.signal, 15);
	assert_int_equal(info.exit.exit_code, -1);
	assert_int_equal(procs_signal(fx->procs, fx->ch, info.pid, 9, &err), -1);
	assert_int_equal(err->kind, EMBER_E_CONFLICT);
	ember_error_free(&err);
	assert_int_equal(procs_signal(fx->procs, fx->ch, 4242, 9, &err), -1);
	assert_int_equal(err->kind, EMBER_E_NOT_FOUND);
	ember_error_free(&err);
	assert_int_equal(procs_list(fx->procs, &list, &count, NULL), 0);
	assert_int_equal(count, 1);
	assert_int_equal(list[0].state, PROCS_EXITED);
	free(list);
	stop(fx);
}

static void a_timeout_cancels_it_as_timed_out_and_its_command_stays_readable(void **state)
{
	struct fixture *fx = start();
	char *argv[] = { "sleep", "--for", "ever", NULL };
	char *env[] = { "A=1", NULL };
	struct channel_exec_request req = {
		.argv = argv, .argc = 3, .env = env, .envc = 1, .code = "", .timeout_ms = 1,
		.max_processes = 8, .command = true, .background = true, .cwd = "/tmp",
	};
	uint64_t pos[2] = { 0, 0 }, got[2] = { 0, 0 };
	struct procs_command command;
	struct ember_error *err = NULL;
	struct procs_info info;
	int64_t t0 = time_mono_ms();

	(void)state;
	assert_int_equal(procs_start(fx->procs, fx->ch, &req, NULL, 200, &info, NULL), 0);
	assert_int_equal(procs_command(fx->procs, info.pid, &command, NULL), 0);
	assert_int_equal(command.argc, 3);
	assert_string_equal(command.argv[2], "ever");
	assert_null(command.argv[3]);
	assert_int_equal(command.envc, 1);
	assert_string_equal(command.env[0], "A=1");
	assert_string_equal(command.cwd, "/tmp");
	procs_command_release(&command);
	info = follow_to_end(fx, info.pid, pos, got);
	assert_true(time_mono_ms() - t0 >= 200);
	assert_true(info.exit.timed_out);
	assert_int_equal(info.exit.signal, 9);
	assert_int_equal(procs_command(fx->procs, 4242, &command, &err), -1);
	assert_int_equal(err->kind, EMBER_E_NOT_FOUND);
	ember_error_free(&err);
	stop(fx);
}

static void a_failed_start_is_the_guest_error_and_leaves_nothing(void **state)
{
	struct fixture *fx = start();
	struct ember_error *err = NULL;
	struct procs_info info, *list = NULL;
	size_t count;

	(void)state;
	assert_int_equal(start_cmd(fx, "fail", false, &info, &err), -1);
	assert_non_null(strstr(err->message, "spawn_failed"));
	ember_error_free(&err);
	assert_int_equal(procs_list(fx->procs, &list, &count, NULL), 0);
	assert_int_equal(count, 0);
	free(list);
	stop(fx);
}

static void more_than_32_is_capacity_and_all_end_with_the_channel(void **state)
{
	struct fixture *fx = start();
	struct ember_error *err = NULL;
	struct procs_info info, *list = NULL;
	size_t count, i;

	(void)state;
	for (i = 0; i < PROCS_MAX_RUNNING; i++)
		assert_int_equal(start_cmd(fx, "sleep", false, &info, NULL), 0);
	assert_int_equal(start_cmd(fx, "sleep", false, &info, &err), -1);
	assert_int_equal(err->kind, EMBER_E_CAPACITY);
	ember_error_free(&err);
	channel_abort(fx->ch, "the sandbox is being destroyed");
	procs_close(fx->procs);
	assert_int_equal(start_cmd(fx, "sleep", false, &info, &err), -1);
	assert_int_equal(err->kind, EMBER_E_CONFLICT);
	ember_error_free(&err);
	assert_int_equal(procs_list(fx->procs, &list, &count, NULL), 0);
	assert_int_equal(count, PROCS_MAX_RUNNING);
	for (i = 0; i < count; i++) {
		assert_int_equal(list[i].state, PROCS_EXITED);
		assert_true(list[i].lost);
		assert_non_null(strstr(list[i].error, "being destroyed"));
	}
	free(list);
	stop(fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ring_keeps_the_newest_mib_and_counts_what_it_dropped),
		cmocka_unit_test(stdin_goes_through_and_close_ends_it),
		cmocka_unit_test(signal_ends_it_and_unknown_or_ended_pids_are_refused),
		cmocka_unit_test(a_timeout_cancels_it_as_timed_out_and_its_command_stays_readable),
		cmocka_unit_test(a_failed_start_is_the_guest_error_and_leaves_nothing),
		cmocka_unit_test(more_than_32_is_capacity_and_all_end_with_the_channel),
	};

	return cmocka_run_group_tests_name("sandbox_procs", tests, NULL, NULL);
}
