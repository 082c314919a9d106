/* Unit tests for Firecracker's hybrid vsock handshake (src/vmm/fc_vsock.c): the `OK <n>` parser
 * is strict and bounded, and the handshake over a socketpair tells a refusal (retry) from a
 * broken VMM (fail), never reads past the acknowledgement and respects its deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/fdio.h"
#include "util/timeutil.h"
#include "vmm/fc_vsock.h"

static int parse(const char *line, uint32_t *port)
{
	return fc_vsock_parse_ack(line, strlen(line), port);
}

static void ack_parser_accepts_canonical_lines(void **state)
{
	uint32_t port = 7;

	(void)state;
	assert_int_equal(parse("OK 1073741824\n", &port), 0);
	assert_int_equal(port, 1073741824u);
	assert_int_equal(parse("OK 0\n", &port), 0);
	assert_int_equal(port, 0);
	assert_int_equal(parse("OK 4294967295\n", &port), 0);
	assert_int_equal(port, 4294967295u);
}

static void ack_parser_rejects_everything_else(void **state)
{
	static const char *const bad[] = {
		"OK 4294967296\n", /* above u32 */
		"OK 99999999999\n", /* 11 digits */
		"OK 01\n",         /* leading zero */
		"OK \n",           /* no digits */
		"OK 12",           /* no newline */
		"OK 12\r\n",       /* CRLF */
		"ok 12\n",         /* case */
		"OK  12\n",        /* two spaces */
		"OK -1\n",
		"OK +1\n",
		"OK 12 \n",
		"OK 12\n\n",
		" OK 12\n",
		"OKAY 12\n",
		"CONNECT 1024\n",
		"",
		"\n",
	};
	uint32_t port = 7;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i], &port) == 0)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	/* A NUL inside, and a line longer than the bound even if well formed otherwise. */
	assert_int_equal(fc_vsock_parse_ack("OK 1\0\n", 6, &port), -1);
	{
		char longer[FC_VSOCK_ACK_MAX + 8];

		memset(longer, '1', sizeof(longer));
		memcpy(longer, "OK ", 3);
		longer[sizeof(longer) - 1] = '\n';
		assert_int_equal(fc_vsock_parse_ack(longer, sizeof(longer), &port), -1);
	}
	assert_int_equal(port, 7); /* untouched on failure */
}

/* host end (non-blocking, as unix_connect returns it) and the "Firecracker" end. */
static void pair(int *host, int *vmm)
{
	int fds[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	assert_int_equal(fd_set_nonblock(fds[0], 1), 0);
	*host = fds[0];
	*vmm = fds[1];
}

static void expect_request(int vmm)
{
	char buf[64] = "";
	ssize_t n = read(vmm, buf, sizeof(buf) - 1);

	assert_true(n > 0);
	assert_string_equal(buf, "CONNECT 1024\n");
}

static void handshake_connects_and_leaves_the_stream_untouched(void **state)
{
	struct ember_error *err = NULL;
	char rest[16] = "";
	int host, vmm;

	(void)state;
	pair(&host, &vmm);
	/* The agent's first bytes may arrive together with the acknowledgement. */
	assert_int_equal(write(vmm, "OK 1073741825\nHELLO", 19), 19);
	assert_int_equal(fc_vsock_handshake(host, 1024, time_mono_ms() + 2000, &err),
			 FC_VSOCK_CONNECTED);
	assert_null(err);
	expect_request(vmm);
	assert_int_equal(read(host, rest, sizeof(rest) - 1), 5);
	assert_string_equal(rest, "HELLO");
	close(host);
	close(vmm);
}

static void handshake_reports_a_refusal_when_the_vmm_closes_unanswered(void **state)
{
	struct ember_error *err = NULL;
	int host, vmm;

	(void)state;
	pair(&host, &vmm);
	close(vmm); /* before our CONNECT: EPIPE on send, not SIGPIPE */
	assert_int_equal(fc_vsock_handshake(host, 1024, time_mono_ms() + 2000, &err),
			 FC_VSOCK_REFUSED);
	assert_null(err);
	close(host);

	/* Read the CONNECT, then close: nothing listens on the port yet. */
	pair(&host, &vmm);
	shutdown(vmm, SHUT_WR);
	assert_int_equal(fc_vsock_handshake(host, 1024, time_mono_ms() + 2000, &err),
			 FC_VSOCK_REFUSED);
	assert_null(err);
	expect_request(vmm);
	close(host);
	close(vmm);
}

static void expect_failure(const char *answer, size_t len, bool close_after,
			   enum ember_error_kind kind, const char *mention)
{
	struct ember_error *err = NULL;
	int host, vmm;

	pair(&host, &vmm);
	if (len > 0)
		assert_int_equal(write(vmm, answer, len), (ssize_t)len);
	if (close_after)
		shutdown(vmm, SHUT_WR);
	assert_int_equal(fc_vsock_handshake(host, 1024, time_mono_ms() + 200, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->kind, kind);
	if (strstr(err->message, mention) == NULL)
		fail_msg("`%s` does not mention `%s`", err->message, mention);
	ember_error_free(&err);
	close(host);
	close(vmm);
}

static void handshake_fails_on_garbage_overlong_truncated_or_silent_answers(void **state)
{
	char flood[100];

	(void)state;
	expect_failure("YES PLEASE\n", 11, false, EMBER_E_PROTOCOL, "\"YES PLEASE\\n\"");
	expect_failure("OK 1\r\n", 6, false, EMBER_E_PROTOCOL, "\\x0d");
	memset(flood, 'A', sizeof(flood));
	expect_failure(flood, sizeof(flood), false, EMBER_E_PROTOCOL, "longer than 32 bytes");
	expect_failure("OK 12", 5, true, EMBER_E_PROTOCOL, "closed in the middle");
	expect_failure("", 0, false, EMBER_E_GUEST_TIMEOUT, "no answer to `CONNECT 1024`");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ack_parser_accepts_canonical_lines),
		cmocka_unit_test(ack_parser_rejects_everything_else),
		cmocka_unit_test(handshake_connects_and_leaves_the_stream_untouched),
		cmocka_unit_test(handshake_reports_a_refusal_when_the_vmm_closes_unanswered),
		cmocka_unit_test(handshake_fails_on_garbage_overlong_truncated_or_silent_answers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
