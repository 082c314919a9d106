/* priority.c - VMM CPU priority: the spawn priority, the child's side and re-prioritising a
 * running VMM's threads (interface: priority.h). */
#include "vmm/priority.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Per thread, not per daemon: the pool's filler and the template builders start VMMs at idle
 * priority while API threads start them serving, and neither needs to tell the other. */
static _Thread_local enum vmm_priority spawn_priority = VMM_PRIO_SERVING;

void prio_set_spawn(enum vmm_priority prio)
{
	spawn_priority = prio;
}

enum vmm_priority prio_spawn(void)
{
	return spawn_priority;
}

/* The kernel's CFS weights of nice 0..19 (kernel/sched/core.c sched_prio_to_weight). */
static const unsigned nice_weight[20] = { 1024, 820, 655, 526, 423, 335, 272, 215, 172, 137,
					  110,  87,  70,  56,  45,  36,  29,  23,  18,  15 };

int prio_nice_for_weight(unsigned cpu_weight)
{
	/* The target weight is the serving nice's scaled by cpu_weight/100 (target100 is it
	 * times 100); the nearest nice by ratio is found by moving to lower weights while the
	 * geometric midpoint to the next one is still above the target: w[n] * w[n+1] > target^2.
	 * Integers only; at most 3.35e6 squared. */
	uint64_t target100;
	int nice = VMM_PRIO_NICE_MIN;

	if (cpu_weight == 0)
		cpu_weight = VMM_CPU_WEIGHT_DEFAULT;
	target100 = (uint64_t)nice_weight[VMM_PRIO_SERVING_NICE] * cpu_weight;
	while (nice < 19 && (uint64_t)nice_weight[nice] * nice_weight[nice + 1] * 10000 >
				    target100 * target100)
		nice++;
	return nice;
}

/* Sets one thread (0: the caller) to prio. Returns 1 when it changed something, 0 when it had
 * it already, -1 with errno set on failure. Async-signal-safe for tid 0. */
static int set_thread(pid_t tid, enum vmm_priority prio, int serving_nice)
{
	struct sched_param param = { .sched_priority = 0 };
	int policy = (int)syscall(SYS_sched_getscheduler, tid);
	long raw = syscall(SYS_getpriority, PRIO_PROCESS, tid);
	int nice, want_policy = prio == VMM_PRIO_IDLE ? SCHED_IDLE : SCHED_OTHER;

	if (policy < 0 || raw < 0)
		return -1;
	nice = 20 - (int)raw; /* the raw system call returns 20 - nice, never negative */
	if (policy == want_policy && nice == serving_nice)
		return 0;
	if (prio == VMM_PRIO_IDLE && policy == SCHED_OTHER && nice == VMM_PRIO_IDLE_NICE)
		return 0; /* the fallback below, already applied */
	/* The nice first: it is kept under SCHED_IDLE, and is what the thread runs with once
	 * raised to SCHED_OTHER (an unprivileged process may leave SCHED_IDLE when its nice is
	 * within RLIMIT_NICE, which 5 is by default). */
	if (syscall(SYS_setpriority, PRIO_PROCESS, tid, serving_nice) < 0)
		return -1;
	if (syscall(SYS_sched_setscheduler, tid, want_policy, &param) == 0)
		return 1;
	if (prio != VMM_PRIO_IDLE || errno != EINVAL)
		return -1;
	if (syscall(SYS_setpriority, PRIO_PROCESS, tid, VMM_PRIO_IDLE_NICE) < 0)
		return -1;
	return 1;
}

void prio_enter_child(void)
{
	/* Nothing to report from a child about to exec: a failure leaves the inherited (daemon's)
	 * priority, and the handout's prio_apply_threads() tries again. */
	(void)set_thread(0, spawn_priority, VMM_PRIO_SERVING_NICE);
}

/* One pass over /proc/<pid>/task. *changed: whether a thread needed changing. */
static int apply_pass(pid_t pid, enum vmm_priority prio, int serving_nice, bool *changed,
		      struct ember_error **err)
{
	char path[64];
	struct dirent *de;
	DIR *dir;
	int ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (dir == NULL)
		return ember_error_sys(err, "open `%s`", path);
	while ((de = readdir(dir)) != NULL) {
		pid_t tid = (pid_t)atoi(de->d_name);
		int r;

		if (tid <= 0)
			continue;
		r = set_thread(tid, prio, serving_nice);
		if (r > 0)
			*changed = true;
		/* A thread that exited meanwhile is not a failure. */
		if (r < 0 && errno != ESRCH) {
			ret = ember_error_sys(err, "set the CPU priority of thread %d of %d",
					      (int)tid, (int)pid);
			break;
		}
	}
	closedir(dir);
	return ret;
}

int prio_apply_threads(pid_t pid, enum vmm_priority prio, int serving_nice,
		       struct ember_error **err)
{
	int pass;

	for (pass = 0; pass < VMM_PRIO_PASSES; pass++) {
		bool changed = false;

		if (apply_pass(pid, prio, serving_nice, &changed, err) < 0)
			return -1;
		if (!changed)
			break;
	}
	return 0;
}

int prio_read_thread(pid_t tid, int *policy, int *nice, struct ember_error **err)
{
	*policy = sched_getscheduler(tid);
	if (*policy < 0)
		return ember_error_sys(err, "sched_getscheduler of %d", (int)tid);
	errno = 0;
	*nice = getpriority(PRIO_PROCESS, (id_t)tid);
	if (errno != 0)
		return ember_error_sys(err, "getpriority of %d", (int)tid);
	return 0;
}
