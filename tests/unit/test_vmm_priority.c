/* Unit tests for VMM CPU priority (src/vmm/priority.c): a spawned VMM starts at its spawning
 * thread's priority with every thread it creates, a running process's threads are all moved
 * between idle and serving, and the spawning process itself keeps its own priority. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/priority.h"
#include "vmm/spawn.h"

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

/* A child with at least three threads (a sanitizer may add its own), stopped with SIGKILL,
 * and killed with the test if a failed assertion leaves it behind. */
static pid_t start_threaded_child(void)
{
	int ready[2];
	pid_t pid;
	char c;

	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		pthread_t a, b;

		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
			_exit(1);
		if (pthread_create(&a, NULL, sleeper, NULL) != 0 ||
		    pthread_create(&b, NULL, sleeper, NULL) != 0)
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		sleeper(NULL);
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	return pid;
}

static void stop_child(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* Asserts every thread of pid has policy and nice; returns how many threads it checked. */
static int assert_all_threads(pid_t pid, int policy, int nice)
{
	char path[64];
	struct dirent *de;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	assert_non_null(dir);
	while ((de = readdir(dir)) != NULL) {
		int tid = atoi(de->d_name), got_policy, got_nice;

		if (tid <= 0)
			continue;
		assert_int_equal(prio_read_thread(tid, &got_policy, &got_nice, NULL), 0);
		if (got_policy != policy || got_nice != nice)
			fail_msg("thread %d of %d: policy %d nice %d, want policy %d nice %d", tid,
				 (int)pid, got_policy, got_nice, policy, nice);
		n++;
	}
	closedir(dir);
	return n;
}

static void all_threads_of_a_running_process_go_idle_then_serving(void **state)
{
	pid_t pid = start_threaded_child();

	(void)state;
	assert_int_equal(prio_apply_threads(pid, VMM_PRIO_IDLE, VMM_PRIO_SERVING_NICE, NULL), 0);
	assert_true(assert_all_threads(pid, SCHED_IDLE, VMM_PRIO_SERVING_NICE) >= 3);
	assert_int_equal(prio_apply_threads(pid, VMM_PRIO_SERVING, VMM_PRIO_SERVING_NICE, NULL), 0);
	assert_true(assert_all_threads(pid, SCHED_OTHER, VMM_PRIO_SERVING_NICE) >= 3);
	stop_child(pid);
}

static void a_weight_gives_the_nearest_nice_by_ratio_never_the_daemons(void **state)
{
	(void)state;
	assert_int_equal(prio_nice_for_weight(VMM_CPU_WEIGHT_DEFAULT), VMM_PRIO_SERVING_NICE);
	assert_int_equal(prio_nice_for_weight(0), VMM_PRIO_SERVING_NICE);
	assert_int_equal(prio_nice_for_weight(200), 2);   /* 670 against 655 */
	assert_int_equal(prio_nice_for_weight(50), 8);    /* 167.5 against 172 */
	assert_int_equal(prio_nice_for_weight(10), 15);   /* 33.5 against 36 */
	assert_int_equal(prio_nice_for_weight(1), 19);
	assert_int_equal(prio_nice_for_weight(VMM_CPU_WEIGHT_MAX), VMM_PRIO_NICE_MIN);
	assert_int_equal(prio_nice_for_weight(300), VMM_PRIO_NICE_MIN);
	/* Monotonic: a larger weight never gets a larger nice. */
	for (unsigned w = 1; w < VMM_CPU_WEIGHT_MAX; w++)
		assert_true(prio_nice_for_weight(w + 1) <= prio_nice_for_weight(w));
}

static void a_weights_nice_is_what_serving_threads_get(void **state)
{
	pid_t pid = start_threaded_child();
	int nice = prio_nice_for_weight(50);

	(void)state;
	assert_int_equal(prio_apply_threads(pid, VMM_PRIO_SERVING, nice, NULL), 0);
	assert_true(assert_all_threads(pid, SCHED_OTHER, nice) >= 3);
	stop_child(pid);
}

static void a_gone_process_is_an_error(void **state)
{
	pid_t pid = start_threaded_child();
	struct ember_error *err = NULL;

	(void)state;
	stop_child(pid);
	assert_int_equal(prio_apply_threads(pid, VMM_PRIO_SERVING, VMM_PRIO_SERVING_NICE, &err), -1);
	assert_non_null(err);
	ember_error_free(&err);
}

/* Spawns `sleep 30` from this thread with spawn priority prio and checks what it runs with. */
static void spawn_and_check(enum vmm_priority prio, int policy)
{
	char *argv[] = { "/bin/sleep", "30", NULL };
	int out = open("/dev/null", O_WRONLY | O_CLOEXEC), pidfd = -1;
	pid_t pid = -1;

	assert_true(out >= 0);
	prio_set_spawn(prio);
	assert_int_equal(vmm_spawn(argv, out, -1, &pid, &pidfd, NULL), 0);
	prio_set_spawn(VMM_PRIO_SERVING);
	/* The child sets its priority before exec: once it runs sleep, it has it. A SCHED_IDLE
	 * child on a busy host only gets leftover CPU: it may take many seconds to get there. */
	for (int tries = 0;; tries++) {
		char exe[64], target[64];
		ssize_t n;

		snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)pid);
		n = readlink(exe, target, sizeof(target) - 1);
		if (n > 0 && (target[n] = '\0', strstr(target, "sleep") != NULL))
			break;
		if (tries > 120000)
			fail_msg("the spawned child did not run /bin/sleep within 2 minutes");
		usleep(1000);
	}
	assert_int_equal(assert_all_threads(pid, policy, VMM_PRIO_SERVING_NICE), 1);
	stop_child(pid);
	close(pidfd);
	close(out);
}

static void a_spawned_vmm_starts_at_its_spawning_threads_priority(void **state)
{
	int policy, nice;

	(void)state;
	spawn_and_check(VMM_PRIO_IDLE, SCHED_IDLE);
	spawn_and_check(VMM_PRIO_SERVING, SCHED_OTHER);
	/* The spawner (the daemon) keeps its own priority. */
	assert_int_equal(prio_read_thread(0, &policy, &nice, NULL), 0);
	assert_int_equal(policy, SCHED_OTHER);
	assert_int_equal(nice, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(all_threads_of_a_running_process_go_idle_then_serving),
		cmocka_unit_test(a_gone_process_is_an_error),
		cmocka_unit_test(a_weight_gives_the_nearest_nice_by_ratio_never_the_daemons),
		cmocka_unit_test(a_weights_nice_is_what_serving_threads_get),
		cmocka_unit_test(a_spawned_vmm_starts_at_its_spawning_threads_priority),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
