/* Unit tests for the guest's fork server (src/guest/forkserver.c with scripts/forkserver.py):
 * the server runs /usr/bin/python3 on the host, this process is the subreaper its children are
 * reparented to (as the agent is PID 1 in a VM), credentials are not changed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tmpdir.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest/forkserver.h"
#include "util/timeutil.h"

#define PYTHON "/usr/bin/python3"

struct run {
	pid_t pid;
	int go_fd;
	int out_fd; /* read ends */
	int err_fd;
	char out[8192];
	char err[8192];
	int status;
};

static char code_path[4096];

static void write_code(const char *code)
{
	FILE *f;

	snprintf(code_path, sizeof(code_path), "%s/code", tmpdir_path);
	f = fopen(code_path, "w");
	assert_non_null(f);
	fputs(code, f);
	assert_int_equal(fclose(f), 0);
}

/* Asks the server for a child running code; the child waits for go. */
static pid_t request(struct guest_forkserver *fs, const char *code, const char *cwd,
		     struct run *r, struct ember_error **err)
{
	char *envp[] = { "PATH=/usr/bin:/bin", "HOME=/tmp", "EMBER_T=value",
			 "EMBER_SECRET=s3cr3t-f0rk-marker", NULL };
	int out[2], errp[2], in;
	struct guest_forkserver_request req = {
		.interpreter = PYTHON,
		.cwd = cwd,
		.uid = getuid(),
		.gid = getgid(),
		.max_processes = 4096,
		.envp = envp,
	};

	write_code(code);
	req.code_path = code_path;
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(errp, O_CLOEXEC), 0);
	in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(in >= 0);
	req.stdin_fd = in;
	req.stdout_fd = out[1];
	req.stderr_fd = errp[1];
	memset(r, 0, sizeof(*r));
	r->pid = guest_forkserver_spawn(fs, &req, &r->go_fd, err);
	close(in);
	close(out[1]);
	close(errp[1]);
	r->out_fd = out[0];
	r->err_fd = errp[0];
	return r->pid;
}

static void read_all(int fd, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;

	while (len + 1 < size && (n = read(fd, buf + len, size - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fd);
}

static void finish(struct run *r)
{
	read_all(r->out_fd, r->out, sizeof(r->out));
	read_all(r->err_fd, r->err, sizeof(r->err));
	assert_int_equal(waitpid(r->pid, &r->status, 0), r->pid);
}

/* Runs code to its end through the server. */
static void run_code(struct guest_forkserver *fs, const char *code, struct run *r)
{
	assert_true(request(fs, code, tmpdir_path, r, NULL) > 0);
	assert_int_equal(guest_forkserver_go(r->go_fd, NULL), 0);
	finish(r);
}

static void stop_server(struct guest_forkserver *fs)
{
	pid_t pid = guest_forkserver_pid(fs);

	guest_forkserver_free(fs);
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

static struct guest_forkserver *new_server(void)
{
	struct guest_forkserver *fs = guest_forkserver_new(tmpdir_path, NULL);

	assert_non_null(fs);
	return fs;
}

static void request_runs_the_file_like_python3_after_go(void **state)
{
	struct guest_forkserver *fs = new_server();
	struct run r;
	struct pollfd p;

	(void)state;
	assert_true(request(fs, "import os, sys\n"
			    "print('json' in sys.modules, sys.argv == [__file__], __name__)\n"
			    "print(os.environ['EMBER_T'], 'PYTHONX' in os.environ, os.getcwd())\n"
			    "print(sys.path[0] == os.path.dirname(__file__), os.getsid(0) == os.getpid())\n",
			    "/", &r, NULL) > 0);
	assert_int_not_equal(r.pid, guest_forkserver_pid(fs));
	/* Before the go byte nothing of the program ran. */
	p = (struct pollfd){ .fd = r.out_fd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 300), 0);
	assert_int_equal(guest_forkserver_go(r.go_fd, NULL), 0);
	finish(&r);
	assert_true(WIFEXITED(r.status));
	assert_int_equal(WEXITSTATUS(r.status), 0);
	assert_string_equal(r.out, "True True __main__\nvalue False /\nTrue True\n");
	assert_string_equal(r.err, "");
	stop_server(fs);
}

static void go_pipe_eof_makes_the_child_exit_unrun(void **state)
{
	struct guest_forkserver *fs = new_server();
	char marker[4200], code[4400];
	struct run r;

	(void)state;
	snprintf(marker, sizeof(marker), "%s/ran", tmpdir_path);
	snprintf(code, sizeof(code), "open('%s', 'w').close()\n", marker);
	assert_true(request(fs, code, tmpdir_path, &r, NULL) > 0);
	close(r.go_fd);
	finish(&r);
	assert_true(WIFEXITED(r.status));
	assert_int_equal(access(marker, F_OK), -1);
	stop_server(fs);
}

static void exit_codes_and_tracebacks_match_python3(void **state)
{
	struct guest_forkserver *fs = new_server();
	struct run r;

	(void)state;
	run_code(fs, "import sys\nsys.exit(3)\n", &r);
	assert_int_equal(WEXITSTATUS(r.status), 3);
	run_code(fs, "raise SystemExit('bye')\n", &r);
	assert_int_equal(WEXITSTATUS(r.status), 1);
	assert_string_equal(r.err, "bye\n");
	run_code(fs, "print('a', end='')\nraise SystemExit\n", &r);
	assert_int_equal(WEXITSTATUS(r.status), 0);
	assert_string_equal(r.out, "a");
	run_code(fs, "def f():\n    1/0\nf()\n", &r);
	assert_int_equal(WEXITSTATUS(r.status), 1);
	assert_non_null(strstr(r.err, "Traceback (most recent call last):\n  File \""));
	assert_non_null(strstr(r.err, "ZeroDivisionError: division by zero\n"));
	assert_null(strstr(r.err, "forkserver"));
	run_code(fs, "x = (\n", &r);
	assert_int_equal(WEXITSTATUS(r.status), 1);
	assert_non_null(strstr(r.err, "SyntaxError"));
	assert_null(strstr(r.err, "forkserver"));
	run_code(fs, "import atexit\natexit.register(print, 'bye')\n", &r);
	assert_string_equal(r.out, "bye\n");
	/* A change to a module is the exec's own: the next one starts from the server's state. */
	run_code(fs, "import json\njson.marker = 1\n", &r);
	run_code(fs, "import json\nprint(hasattr(json, 'marker'))\n", &r);
	assert_string_equal(r.out, "False\n");
	stop_server(fs);
}

/* Whether pid's writable memory holds needle (read through /proc/<pid>/mem: root, or its parent). */
static bool memory_contains(pid_t pid, const char *needle)
{
	char path[64], line[512];
	size_t nlen = strlen(needle);
	bool found = false;
	FILE *maps;
	int mem;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	maps = fopen(path, "r");
	assert_non_null(maps);
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	mem = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(mem >= 0);
	while (!found && fgets(line, sizeof(line), maps) != NULL) {
		unsigned long start, end;
		char perms[8];
		char *buf;
		ssize_t n;

		if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3 || perms[1] != 'w' ||
		    end - start > (256ul << 20))
			continue;
		buf = malloc(end - start);
		assert_non_null(buf);
		n = pread(mem, buf, end - start, (off_t)start);
		found = n > 0 && memmem(buf, (size_t)n, needle, nlen) != NULL;
		free(buf);
	}
	close(mem);
	fclose(maps);
	return found;
}

static void the_server_keeps_no_execs_environment(void **state)
{
	struct guest_forkserver *fs = new_server();
	char needle[64];
	struct run r;

	(void)state;
	run_code(fs, "import os\nprint(os.environ['EMBER_SECRET'])\n", &r);
	assert_string_equal(r.out, "s3cr3t-f0rk-marker\n");
	snprintf(needle, sizeof(needle), "%s-%s", "s3cr3t", "f0rk-marker");
	/* The next exec forks from this memory: no earlier exec's variables may be in it. */
	assert_false(memory_contains(guest_forkserver_pid(fs), needle));
	stop_server(fs);
}

static void random_differs_between_execs(void **state)
{
	struct guest_forkserver *fs = new_server();
	char first[64];
	struct run r;

	(void)state;
	run_code(fs, "import random\nprint(random.random())\n", &r);
	snprintf(first, sizeof(first), "%s", r.out);
	run_code(fs, "import random\nprint(random.random())\n", &r);
	assert_string_not_equal(first, r.out);
	stop_server(fs);
}

static void a_bad_cwd_is_the_execs_spawn_failure(void **state)
{
	struct guest_forkserver *fs = new_server();
	struct ember_error *err = NULL;
	struct run r;

	(void)state;
	assert_int_equal(request(fs, "print(1)\n", "/nonexistent-emberd", &r, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->kind, EMBER_E_GUEST);
	assert_non_null(strstr(err->message, "chdir to the working directory `/nonexistent-emberd`"));
	ember_error_free(&err);
	close(r.out_fd);
	close(r.err_fd);
	/* The server is still there. */
	assert_true(guest_forkserver_pid(fs) > 0);
	stop_server(fs);
}

static void a_killed_server_means_fallback_then_a_restart(void **state)
{
	struct guest_forkserver *fs = new_server();
	pid_t server;
	struct run r;
	siginfo_t info;

	(void)state;
	run_code(fs, "print(1)\n", &r);
	server = guest_forkserver_pid(fs);
	assert_true(server > 0);
	/* Dead but not reaped yet (the agent's reaper has not run): the request fails, the exec
	 * is told to start the old way. */
	assert_int_equal(kill(server, SIGKILL), 0);
	assert_int_equal(waitid(P_PID, (id_t)server, &info, WEXITED | WNOWAIT), 0);
	assert_int_equal(request(fs, "print(1)\n", tmpdir_path, &r, NULL), 0);
	assert_int_equal(r.go_fd, -1);
	close(r.out_fd);
	close(r.err_fd);
	assert_int_equal(waitpid(server, NULL, 0), server);
	assert_true(guest_forkserver_reaped(fs, server));
	assert_int_equal(guest_forkserver_pid(fs), 0);
	/* The next exec starts a new one. */
	run_code(fs, "print(2)\n", &r);
	assert_string_equal(r.out, "2\n");
	assert_true(guest_forkserver_pid(fs) > 0);
	assert_int_not_equal(guest_forkserver_pid(fs), server);
	stop_server(fs);
}

static void restarts_are_bounded(void **state)
{
	struct guest_forkserver *fs = new_server();
	unsigned i;
	struct run r;

	(void)state;
	for (i = 0; i < 3; i++) {
		pid_t server;

		run_code(fs, "pass\n", &r);
		server = guest_forkserver_pid(fs);
		assert_int_equal(kill(server, SIGKILL), 0);
		assert_int_equal(waitpid(server, NULL, 0), server);
		assert_true(guest_forkserver_reaped(fs, server));
	}
	assert_int_equal(request(fs, "pass\n", tmpdir_path, &r, NULL), 0);
	close(r.out_fd);
	close(r.err_fd);
	assert_int_equal(guest_forkserver_pid(fs), 0);
	stop_server(fs);
}

static void eligible_is_a_plain_python3_exec(void **state)
{
	struct proto_exec req = { .argc = 1, .argv = { "python3", NULL } };
	char interp[4096];

	(void)state;
	assert_true(guest_forkserver_eligible(&req, interp, sizeof(interp)));
	assert_string_equal(strrchr(interp, '/'), "/python3");
	req.argv[0] = PYTHON;
	assert_true(guest_forkserver_eligible(&req, interp, sizeof(interp)));
	assert_string_equal(interp, PYTHON);
	req.fresh_interpreter = true;
	assert_false(guest_forkserver_eligible(&req, interp, sizeof(interp)));
	req.fresh_interpreter = false;
	req.command = true;
	assert_false(guest_forkserver_eligible(&req, interp, sizeof(interp)));
	req.command = false;
	req.env[0] = "PYTHONPATH=/x";
	assert_false(guest_forkserver_eligible(&req, interp, sizeof(interp)));
	req.env[0] = "LANG=C";
	assert_false(guest_forkserver_eligible(&req, interp, sizeof(interp)));
	req.env[0] = "FOO=1";
	assert_true(guest_forkserver_eligible(&req, interp, sizeof(interp)));
	req.argv[0] = "python3.x";
	assert_false(guest_forkserver_eligible(&req, interp, sizeof(interp)));
	req.argv[0] = "python";
	assert_false(guest_forkserver_eligible(&req, interp, sizeof(interp)));
	req.argv[0] = "/usr/bin/python3";
	req.argv[1] = "-u";
	req.argc = 2;
	assert_false(guest_forkserver_eligible(&req, interp, sizeof(interp)));
}

static void reply_parser_is_strict_and_bounded(void **state)
{
	static const char *const bad[] = {
		"", "0 0 -", "12 0 x", "12 2 -", "012 0 -", "12  0 -", "-1 0 -", "12 0 -\n",
		"12 0", "12 0 ", "99999999999 0 -", "2147483648 0 -", "12 4096 setsid", "12 02 x",
		"12 2 a\tb", "12 2 \x7f", "+1 0 -", "12 0 --",
		"12 2 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	struct guest_forkserver_reply reply;
	char huge[GUEST_FORKSERVER_REPLY_MAX + 2];
	size_t i;

	(void)state;
	assert_int_equal(guest_forkserver_parse_reply("123 0 -", 7, &reply, NULL), 0);
	assert_int_equal(reply.pid, 123);
	assert_int_equal(reply.errnum, 0);
	assert_int_equal(guest_forkserver_parse_reply("2147483647 13 setuid", 20, &reply, NULL), 0);
	assert_int_equal(reply.pid, 2147483647);
	assert_int_equal(reply.errnum, 13);
	assert_string_equal(reply.step, "setuid");
	assert_int_equal(guest_forkserver_parse_reply("0 22 request", 12, &reply, NULL), 0);
	assert_int_equal(reply.pid, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ember_error *err = NULL;

		assert_int_equal(guest_forkserver_parse_reply(bad[i], strlen(bad[i]), &reply, &err),
				 -1);
		assert_int_equal(err->kind, EMBER_E_PROTOCOL);
		ember_error_free(&err);
	}
	/* NUL inside and length bounds. */
	assert_int_equal(guest_forkserver_parse_reply("12 0 -\0", 7, &reply, NULL), -1);
	memset(huge, '1', sizeof(huge));
	assert_int_equal(guest_forkserver_parse_reply(huge, sizeof(huge), &reply, NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(request_runs_the_file_like_python3_after_go),
		cmocka_unit_test(go_pipe_eof_makes_the_child_exit_unrun),
		cmocka_unit_test(exit_codes_and_tracebacks_match_python3),
		cmocka_unit_test(random_differs_between_execs),
		cmocka_unit_test(the_server_keeps_no_execs_environment),
		cmocka_unit_test(a_bad_cwd_is_the_execs_spawn_failure),
		cmocka_unit_test(a_killed_server_means_fallback_then_a_restart),
		cmocka_unit_test(restarts_are_bounded),
		cmocka_unit_test(eligible_is_a_plain_python3_exec),
		cmocka_unit_test(reply_parser_is_strict_and_bounded),
	};

	/* The children are reparented to this process, as they are to the agent. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
