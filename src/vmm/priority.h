/* priority.h - CPU priority of VMM processes, so the daemon's API threads never wait for CPU
 * behind guests (docs/operations.md "CPU priority").
 * Used by vmm.c (the per-thread spawn priority and raising a VM) and by the spawners' children
 * (spawn.c, jail.c) just before exec. Never touches the daemon's own threads' priority, and
 * never fails a boot: a priority that cannot be set is logged and the VM runs anyway. */
#ifndef EMBER_VMM_PRIORITY_H
#define EMBER_VMM_PRIORITY_H

#include <stdbool.h>
#include <sys/types.h>

#include "util/error.h"
#include "vmm/vmm.h"

/* Nice of a VMM that serves a sandbox. The daemon keeps 0: at nice 5 the CFS weight is 335
 * against the daemon's 1024, so an API thread that wakes up gets the CPU about three times as
 * readily as any one busy vCPU thread, while guests still get all the CPU the daemon does not
 * use (nice only matters under contention). Larger values would starve guests against other
 * host work for no gain to the daemon. */
#define VMM_PRIO_SERVING_NICE 5
/* A sandbox's cpu_weight (cgroup v2 semantics: 1-10000, default 100) and the nice that gives
 * its threads about that share against other sandboxes' on hosts without cgroup v2: the CFS
 * weight of the serving nice scaled by cpu_weight/100, rounded to the nearest nice (by ratio)
 * between 1 (never the daemon's 0) and 19. 100 -> 5, 200 -> 2, 50 -> 8, 1 -> 19. */
#define VMM_PRIO_NICE_MIN 1
int prio_nice_for_weight(unsigned cpu_weight);

/* Where SCHED_IDLE is refused (kernels without it): the lowest nice, weight 15. */
#define VMM_PRIO_IDLE_NICE 19
/* How often prio_apply_threads walks the threads again when it changed one: a thread being
 * created while it walks may inherit the old priority from a thread not changed yet. */
#define VMM_PRIO_PASSES 4

/* The priority the calling thread's VMM spawns begin with (thread-local; a thread starts at
 * VMM_PRIO_SERVING). */
void prio_set_spawn(enum vmm_priority prio);
enum vmm_priority prio_spawn(void);

/* In a spawner's child, after fork/clone3 (so it has one thread, which copied the spawning
 * thread's spawn priority) and before exec: gives the process that priority, which every
 * thread it creates inherits. Async-signal-safe (raw syscalls). */
void prio_enter_child(void);

/* Gives every thread of pid the priority (walking /proc/<pid>/task until a pass changes
 * nothing, at most VMM_PRIO_PASSES times), serving_nice being the nice of VMM_PRIO_SERVING
 * (and kept under SCHED_IDLE). pid is in the daemon's PID namespace. */
int prio_apply_threads(pid_t pid, enum vmm_priority prio, int serving_nice,
		       struct ember_error **err);

/* What one thread of pid currently has: its scheduling policy (SCHED_*) and nice. */
int prio_read_thread(pid_t tid, int *policy, int *nice, struct ember_error **err);

#endif
