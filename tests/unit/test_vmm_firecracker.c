/* Unit tests for the Firecracker driver's agent connection (src/vmm/firecracker.c) through the
 * public vmm API: a "Firecracker" here is a child process that only waits, re-attached with
 * vmm_attach() (so the VM counts as configured), and the test plays its hybrid vsock socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tmpdir.h"
#include "util/sync.h"
#include "util/timeutil.h"
#include "vmm/proc.h"
#include "vmm/vmm.h"

struct fixture {
	struct vmm_driver *drv;
	struct vmm_instance *vm;
	char run_dir[256];
	char vsock[300];
};

static int setup(void **state)
{
	static unsigned seq;
	struct vmm_driver_config cfg = {
		.name = "firecracker", .firecracker_bin = "/bin/true", .accel = VMM_ACCEL_TCG,
		.cgroup_root = "none", .no_jail = true,
	};
	struct fixture *fx = calloc(1, sizeof(*fx));
	uint64_t ticks;
	pid_t pid;

	assert_non_null(fx);
	snprintf(fx->run_dir, sizeof(fx->run_dir), "%s/vm%u", tmpdir_path, seq++);
	snprintf(fx->vsock, sizeof(fx->vsock), "%s/v.sock", fx->run_dir);
	assert_int_equal(mkdir(fx->run_dir, 0700), 0);
	assert_int_equal(vmm_driver_create(&cfg, &fx->drv, NULL), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (;;)
			pause();
	}
	while (proc_start_ticks(pid, &ticks) < 0)
		sleep_ms(1);
	assert_int_equal(vmm_attach(fx->drv, "sb_00112233", fx->run_dir, pid, ticks, &fx->vm, NULL),
			 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	vmm_stop(fx->vm, time_mono_ms() + 50, NULL);
	vmm_instance_free(fx->vm);
	vmm_driver_free(fx->drv);
	free(fx);
	return 0;
}

static void assert_mentions(const struct ember_error *err, const char *text)
{
	assert_non_null(err);
	if (strstr(err->message, text) == NULL)
		fail_msg("`%s` does not mention `%s`", err->message, text);
}

/* The vsock socket, created late, closing the first `refusals` CONNECTs unanswered (nothing
 * listens in the guest yet) and acknowledging the next one. */
struct fake_vsock {
	const struct fixture *fx;
	int refusals;
	int accepted;
};

static void *fake_vsock_main(void *arg)
{
	struct fake_vsock *v = arg;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sleep_ms(30);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", v->fx->vsock);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 4) < 0)
		return NULL;
	for (;;) {
		char line[64] = "";
		int conn = accept(fd, NULL, NULL);

		if (conn < 0)
			break;
		v->accepted++;
		if (read(conn, line, sizeof(line) - 1) <= 0 || strcmp(line, "CONNECT 52\n") != 0) {
			close(conn);
			break;
		}
		if (v->accepted > v->refusals) {
			if (write(conn, "OK 77\nHELLO", 11) != 11)
				break;
			sleep_ms(100); /* keep it open until the driver has read the answer */
			close(conn);
			break;
		}
		close(conn);
	}
	close(fd);
	return NULL;
}

static void vsock_connect_retries_refusals_until_the_agent_listens(void **state)
{
	struct fixture *fx = *state;
	struct fake_vsock v = { .fx = fx, .refusals = 3 };
	struct ember_error *err = NULL;
	char hello[8] = "";
	pthread_t thread;
	int fd;

	assert_int_equal(pthread_create(&thread, NULL, fake_vsock_main, &v), 0);
	fd = vmm_connect_agent(fx->vm, time_mono_ms() + 5000, &err);
	assert_null(err);
	assert_true(fd >= 0);
	/* The stream starts right after the acknowledgement. */
	assert_int_equal(poll(&(struct pollfd){ .fd = fd, .events = POLLIN }, 1, 2000), 1);
	assert_int_equal(read(fd, hello, sizeof(hello) - 1), 5);
	assert_string_equal(hello, "HELLO");
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(v.accepted, 4);
	close(fd);
}

static void vsock_connect_times_out_naming_the_port(void **state)
{
	struct fixture *fx = *state;
	struct ember_error *err = NULL;

	assert_int_equal(vmm_connect_agent(fx->vm, time_mono_ms() + 60, &err), -1);
	assert_int_equal(err->kind, EMBER_E_GUEST_TIMEOUT);
	assert_mentions(err, "the guest agent did not listen on vsock port 52 before the boot "
			     "deadline");
	ember_error_free(&err);
}

static void vsock_connect_reports_a_dead_firecracker_at_once(void **state)
{
	struct fixture *fx = *state;
	struct pollfd exited = { .fd = vmm_exit_fd(fx->vm), .events = POLLIN };
	struct ember_error *err = NULL;
	int64_t t0;

	assert_int_equal(kill(vmm_pid(fx->vm), SIGKILL), 0);
	assert_int_equal(poll(&exited, 1, 5000), 1);
	t0 = time_mono_ms();
	assert_int_equal(vmm_connect_agent(fx->vm, t0 + 10000, &err), -1);
	assert_true(time_mono_ms() - t0 < 1000);
	assert_int_equal(err->kind, EMBER_E_GUEST);
	assert_mentions(err, "firecracker exited before the guest agent listened on vsock port 52");
	ember_error_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(vsock_connect_retries_refusals_until_the_agent_listens,
						setup, teardown),
		cmocka_unit_test_setup_teardown(vsock_connect_times_out_naming_the_port, setup,
						teardown),
		cmocka_unit_test_setup_teardown(vsock_connect_reports_a_dead_firecracker_at_once,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
