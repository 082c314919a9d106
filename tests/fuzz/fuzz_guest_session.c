/* libFuzzer target: arbitrary bytes from a "host" through a guest session (src/guest/session.c)
 * on a socketpair, driven by the real loop. Execs are configured to fail before spawning (their
 * code directory does not exist), so the fuzzer exercises the state machine, ERROR paths and
 * session end without starting processes. Identity (clock/RNG) is off, as in agent-only mode.
 * Every input drives a socket session and a virtio-serial port session. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "guest/loop.h"
#include "guest/session.h"
#include "util/fdio.h"

static void drain(int fd)
{
	uint8_t buf[65536];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/* One session of kind over the input. At its end the "host" stops writing (EOF): a suspended
 * virtio-serial session then parks instead of ending, and is unparked once (it parks again). */
static void run(enum guest_session_kind kind, const uint8_t *data, size_t size)
{
	struct guest_loop loop;
	struct guest_session_env env = { 0 };
	struct guest_session *s = NULL;
	int sv[2], rounds;
	size_t off = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	if (guest_loop_init(&loop, NULL) < 0) {
		close(sv[0]);
		close(sv[1]);
		return;
	}
	env.loop = &loop;
	env.exec.code_root = "/nonexistent/emberd-fuzz";
	env.exec.cwd = "/";
	env.exec.home = "/";
	if (guest_session_new(&env, sv[0], kind, "fuzz", &s, NULL) < 0) {
		guest_loop_release(&loop);
		close(sv[1]);
		return;
	}
	/* Feed in slices so frames straddle reads; stop when the session ends. */
	for (rounds = 0; rounds < 256 && !guest_session_ended(s); rounds++) {
		if (off < size) {
			size_t n = size - off < 4096 ? size - off : 4096;
			ssize_t w = write(sv[1], data + off, n);

			if (w > 0)
				off += (size_t)w;
		} else if (rounds > 0 && off == size) {
			break;
		}
		guest_loop_run_once(&loop, 0, NULL);
		guest_loop_collect(&loop);
		drain(sv[1]);
	}
	shutdown(sv[1], SHUT_WR);
	for (rounds = 0; rounds < 3 && !guest_session_ended(s); rounds++) {
		if (rounds == 1 && guest_session_parked(s))
			guest_session_unpark(s);
		guest_loop_run_once(&loop, 0, NULL);
		guest_loop_collect(&loop);
		drain(sv[1]);
	}
	guest_session_free(s);
	guest_loop_release(&loop);
	close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The kinds differ after errors (a port drains, a socket closes) and in SUSPEND, which
	 * only a port accepts. */
	run(GUEST_SESSION_SOCKET, data, size);
	run(GUEST_SESSION_PORT, data, size);
	return 0;
}
