/* Unit tests for the QEMU driver's agent connection (src/vmm/qemu.c) through the public vmm API:
 * a "QEMU" here is a child process that only waits, re-attached with vmm_attach(), so the
 * driver's socket paths point into a scratch directory where the test plays the chardev.
 * And, with a jailed driver whose "VMM binary" is /bin/sleep, which processes a restarted
 * daemon re-attaches and which the stray sweep kills (src/vmm/vmm.c). Needs root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
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
		.no_jail = true,
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

/* Not the daemon's default: a running daemon's VMMs are never in this range. */
#define TEST_UID_BASE 1950000000u

static struct vmm_driver *jailed_driver(void)
{
	struct vmm_driver_config cfg = {
		.name = "qemu", .qemu_bin = "/bin/sleep", .accel = VMM_ACCEL_TCG,
		.cgroup_root = "none", .vmm_uid_base = TEST_UID_BASE,
	};
	struct vmm_driver *drv = NULL;
	struct ember_error *err = NULL;

	if (vmm_driver_create(&cfg, &drv, &err) < 0)
		fail_msg("jailed driver: %s", err->message);
	assert_true(vmm_driver_jailed(drv));
	assert_non_null(strstr(vmm_driver_description(drv), "jailed: uid/gid 1950000000-"));
	return drv;
}

/* Runs argv as uid (0: root) and returns once the child has exec'd (its exe is argv[0]). */
/* Runs path as uid with argv (argv[0] may differ from path: a command line naming a run dir). */
static pid_t spawn_path_as(uid_t uid, const char *path, char *const argv[])
{
	char exe[64], target[256], want[256];
	uint64_t ticks;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (uid != 0 && (setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0))
			_exit(126);
		execv(path, argv);
		_exit(127);
	}
	assert_non_null(realpath(path, want));
	snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)pid);
	for (;;) {
		ssize_t n = readlink(exe, target, sizeof(target) - 1);

		if (n > 0 && (target[n] = '\0', strcmp(target, want) == 0) &&
		    proc_start_ticks(pid, &ticks) == 0)
			return pid;
		sleep_ms(1);
	}
}

static pid_t spawn_as(uid_t uid, char *const argv[])
{
	return spawn_path_as(uid, argv[0], argv);
}

static bool killed_by_sigkill(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

static bool running(pid_t pid)
{
	return waitpid(pid, NULL, WNOHANG) == 0;
}

static void end(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void jailed_driver_reattaches_only_a_vmm_of_its_uid_range(void **state)
{
	char *const sleeper[] = { "/bin/sleep", "1000", NULL };
	struct vmm_driver *drv = jailed_driver();
	struct vmm_instance *vm = NULL, *twice = NULL;
	struct ember_error *err = NULL;
	pid_t as_root = spawn_as(0, sleeper), jailed = spawn_as(TEST_UID_BASE + 7, sleeper);
	uint64_t ticks;

	(void)state;
	assert_int_equal(proc_start_ticks(as_root, &ticks), 0);
	assert_int_equal(vmm_attach(drv, "sb_root", tmpdir_path, as_root, ticks, &vm, &err), -1);
	assert_mentions(err, "runs as uid 0, not a free one of this daemon's VMM uids");
	ember_error_free(&err);
	assert_int_equal(proc_start_ticks(jailed, &ticks), 0);
	assert_int_equal(vmm_attach(drv, "sb_jailed", tmpdir_path, jailed, ticks, &vm, &err), 0);
	/* A second record naming the same process finds its uid taken. */
	assert_int_equal(vmm_attach(drv, "sb_again", tmpdir_path, jailed, ticks, &twice, &err), -1);
	assert_mentions(err, "runs as uid 1950000007");
	ember_error_free(&err);
	vmm_stop(vm, time_mono_ms() + 50, NULL);
	vmm_instance_free(vm);
	/* Stopped: its uid is free again, so a re-attach of another process with it works. */
	end(jailed);
	jailed = spawn_as(TEST_UID_BASE + 7, sleeper);
	assert_int_equal(proc_start_ticks(jailed, &ticks), 0);
	assert_int_equal(vmm_attach(drv, "sb_jailed", tmpdir_path, jailed, ticks, &vm, &err), 0);
	vmm_detach(vm);
	end(jailed);
	end(as_root);
	vmm_driver_free(drv);
}

static void stray_sweep_kills_vmms_by_identity_not_by_command_line(void **state)
{
	char dir[280], console[300], sock[300], script[] = "/bin/sleep 1000; true";
	char elsewhere[] = "/run/other-daemon/sb_y/qemu";
	/* A VMM's command line names its run dir (its sockets); the stand-in's argv[0] does. */
	char *const vmm[] = { sock, "1000", NULL };
	char *const other_daemons[] = { elsewhere, "1000", NULL };
	char *const tail[] = { "/usr/bin/tail", "-f", console, NULL };
	char *const other[] = { "/usr/bin/tail", "-f", "/dev/null", NULL };
	char *const sh[] = { "/bin/sh", "-c", script, "sh", sock, NULL }; /* argv names the run dir */
	struct vmm_driver *drv = jailed_driver();
	pid_t stray, kept, admin_tail, admin_sh, other_binary, root_vmm, not_ours;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/sb_x", tmpdir_path);
	snprintf(console, sizeof(console), "%s/console.log", dir);
	snprintf(sock, sizeof(sock), "%s/agent.sock", dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	fclose(fopen(console, "w"));
	stray = spawn_path_as(TEST_UID_BASE + 3, "/bin/sleep", vmm); /* jailed, with no record */
	kept = spawn_path_as(TEST_UID_BASE + 4, "/bin/sleep", vmm);  /* a re-attached one */
	other_binary = spawn_as(TEST_UID_BASE + 5, other);      /* its uid, not the VMM binary */
	admin_tail = spawn_as(0, tail);                         /* root, naming the run dir */
	root_vmm = spawn_as(0, (char *const[]){ "/bin/sleep", "1000", NULL }); /* no run dir */
	/* another daemon's VMM: the binary and a uid of the range, another run dir */
	not_ours = spawn_path_as(TEST_UID_BASE + 6, "/bin/sleep", other_daemons);
	admin_sh = fork();
	if (admin_sh == 0) {
		setpgid(0, 0); /* its sleep goes with it */
		execv(sh[0], sh);
		_exit(127);
	}
	sleep_ms(50);
	assert_int_equal(vmm_kill_strays(tmpdir_path, &kept, 1), 1);
	assert_true(killed_by_sigkill(stray));
	assert_true(running(kept) && running(other_binary) && running(admin_tail) &&
		    running(admin_sh) && running(root_vmm) && running(not_ours));
	end(not_ours);
	end(kept);
	end(other_binary);
	end(admin_tail);
	kill(-admin_sh, SIGKILL);
	end(admin_sh);
	end(root_vmm);
	vmm_driver_free(drv);
}

/* What vmm_start() says to a mount the QEMU driver cannot serve; nothing is spawned. */
static void start_refusal(struct vmm_driver *drv, const struct vmm_boot_config *cfg,
			  const char *why)
{
	struct vmm_instance *vm = NULL;
	struct ember_error *err = NULL;

	assert_int_equal(vmm_start(drv, cfg, &vm, &err), -1);
	assert_int_equal(err->kind, EMBER_E_INVALID);
	assert_mentions(err, why);
	ember_error_free(&err);
}

static void mounts_are_refused_unjailed_as_block_images_and_for_clones(void **state)
{
	struct vmm_driver_config unjailed_cfg = {
		.name = "qemu", .qemu_bin = "/bin/true", .accel = VMM_ACCEL_TCG,
		.cgroup_root = "none", .no_jail = true,
	};
	struct vmm_driver *unjailed = NULL, *jailed = jailed_driver();
	char run_dir[256];
	struct vmm_mount mount = { .dir_fd = -1, .host = "/srv/data", .uid = 1234, .gid = 1234 };
	struct vmm_boot_config cfg = {
		.sandbox_id = "sb_mounts", .run_dir = run_dir, .kernel_bzimage = "/nonexistent/k",
		.initramfs = "/nonexistent/i", .pack_image = "/nonexistent/p", .vcpus = 1,
		.memory_mib = 128, .deadline_ms = -1, .mounts = &mount, .nmounts = 1,
	};

	(void)state;
	snprintf(run_dir, sizeof(run_dir), "%s/mounts", tmpdir_path);
	assert_int_equal(mkdir(run_dir, 0700), 0);
	assert_int_equal(vmm_driver_create(&unjailed_cfg, &unjailed, NULL), 0);
	mount.dir_fd = open(tmpdir_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(mount.dir_fd >= 0);
	start_refusal(unjailed, &cfg, "--no-jail");
	cfg.restore_state = "/nonexistent/state";
	start_refusal(jailed, &cfg, "a template, a clone or a resumed VM never has mounts");
	cfg.restore_state = NULL;
	cfg.resume_state = "/nonexistent/state";
	start_refusal(jailed, &cfg, "a template, a clone or a resumed VM never has mounts");
	cfg.resume_state = NULL;
	mount.image = "/nonexistent/data.squashfs";
	start_refusal(jailed, &cfg, "never block images");
	mount.image = NULL;
	mount.rw = true;
	mount.uid = 0;
	start_refusal(jailed, &cfg, "would write as root");
	close(mount.dir_fd);
	vmm_driver_free(unjailed);
	vmm_driver_free(jailed);
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
		cmocka_unit_test(jailed_driver_reattaches_only_a_vmm_of_its_uid_range),
		cmocka_unit_test(stray_sweep_kills_vmms_by_identity_not_by_command_line),
		cmocka_unit_test(mounts_are_refused_unjailed_as_block_images_and_for_clones),
	};

	return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
