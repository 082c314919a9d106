/* Unit tests for the QEMU driver's agent connection (src/vmm/qemu.c) through the public vmm API:
 * a "QEMU" here is a child process that only waits, re-attached with vmm_attach(), so the
 * driver's socket paths point into a scratch directory where the test plays the chardev. */
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
	char agent_sock[300];
};

static pid_t spawn_idle_child(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

static int setup(void **state)
{
	static unsigned seq;
	struct vmm_driver_config cfg = {
		.name = "qemu", .qemu_bin = "/bin/true", .accel = VMM_ACCEL_TCG, .cgroup_root = "none",
	};
	struct fixture *fx = calloc(1, sizeof(*fx));
	uint64_t ticks;
	pid_t pid;

	assert_non_null(fx);
	snprintf(fx->run_dir, sizeof(fx->run_dir), "%s/vm%u", tmpdir_path, seq++);
	snprintf(fx->agent_sock, sizeof(fx->agent_sock), "%s/agent.sock", fx->run_dir);
	assert_int_equal(mkdir(fx->run_dir, 0700), 0);
	assert_int_equal(vmm_driver_create(&cfg, &fx->drv, NULL), 0);
	pid = spawn_idle_child();
	/* /proc may show the child's start time only once it runs. */
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

static void agent_connect_times_out_as_504_naming_the_boot_deadline(void **state)
{
	struct fixture *fx = *state;
	struct ember_error *err = NULL;

	assert_int_equal(vmm_connect_agent(fx->vm, time_mono_ms() + 60, &err), -1);
	assert_int_equal(err->kind, EMBER_E_GUEST_TIMEOUT);
	assert_mentions(err, "QEMU did not open the agent socket before the boot deadline");
	ember_error_free(&err);
}

static void agent_connect_reports_a_dead_qemu_at_once(void **state)
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
	assert_mentions(err, "QEMU exited");
	ember_error_free(&err);
}

static void *listen_late(void *arg)
{
	const struct fixture *fx = arg;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sleep_ms(40); /* the socket does not exist yet when the driver first tries */
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", fx->agent_sock);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 1) < 0)
		return NULL;
	return (void *)(intptr_t)fd;
}

static void agent_connect_waits_for_the_socket_to_appear(void **state)
{
	struct fixture *fx = *state;
	struct ember_error *err = NULL;
	pthread_t thread;
	void *listener;
	int fd;

	assert_int_equal(pthread_create(&thread, NULL, listen_late, fx), 0);
	fd = vmm_connect_agent(fx->vm, time_mono_ms() + 5000, &err);
	assert_int_equal(pthread_join(thread, &listener), 0);
	assert_null(err);
	assert_true(fd >= 0);
	assert_non_null(listener);
	close(fd);
	close((int)(intptr_t)listener);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(agent_connect_times_out_as_504_naming_the_boot_deadline,
						setup, teardown),
		cmocka_unit_test_setup_teardown(agent_connect_reports_a_dead_qemu_at_once, setup,
						teardown),
		cmocka_unit_test_setup_teardown(agent_connect_waits_for_the_socket_to_appear, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
