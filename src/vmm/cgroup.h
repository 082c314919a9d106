/* cgroup.h - host-side resource limits for VMM processes: one cgroup v2 per sandbox under
 * <root>/emberd/<id> with memory.max, cpu.max and pids.max. Used by vmm.c around spawn and stop,
 * and by the Firecracker driver to clear a jail's cgroup after a crash (the two helpers below).
 * cgroup_create/remove never touch cgroups outside <root>/emberd, and never fail a boot on a
 * host without cgroup v2: the probe says so once and /healthz reports it. */
#ifndef EMBER_VMM_CGROUP_H
#define EMBER_VMM_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

/* What the VMM process may use beyond the guest's RAM: QEMU's own heap, the TCG translation
 * cache (bounded with tb-size), device buffers. Measured idle RSS is ~60 MiB above guest RAM
 * actually touched; the margin absorbs bursts without letting a VMM eat the host. */
#define CGROUP_VMM_OVERHEAD_MIB 256
/* cpu.weight of <root>/emberd, the parent of every VMM's cgroup, against the default 100 the
 * daemon's own cgroup keeps: under contention all guests together get a third of the CPU the
 * daemon could take, so an API thread that wakes up finds the CPU, while weights are
 * work-conserving (the daemon needs little, and guests get the rest). Each VMM's cgroup keeps
 * the default weight: sandboxes share the guests' part equally. */
#define CGROUP_VMM_PARENT_WEIGHT 50
/* Threads of one VMM (vCPUs, I/O, RCU, the event loop) plus short-lived helpers. */
#define CGROUP_VMM_PIDS_MAX 128

struct cgroup_limits {
	uint64_t memory_bytes;
	unsigned vcpus;          /* cpu.max = vcpus * period */
	unsigned pids;
	bool idle;               /* cpu.idle = 1 (Linux >= 5.15; best effort): a pool clone or a
				  * template VM, whose SCHED_IDLE threads weigh nothing against
				  * other cgroups otherwise */
};

/* Checks that root is a cgroup v2 mount with the memory, cpu and pids controllers and prepares
 * <root>/emberd with them enabled. Returns true when usable; status describes the outcome for
 * logs and /healthz either way. */
bool cgroup_probe(const char *root, char *status, size_t status_size);

/* Creates <root>/emberd/<id>, applies limits, returns an O_DIRECTORY fd on it: what
 * clone3(CLONE_INTO_CGROUP) starts a jailed VMM in, or where cgroup_join() moves one. */
int cgroup_create(const char *root, const char *id, const struct cgroup_limits *limits,
		  int *dir_fd, struct ember_error **err);
/* Whether dir_fd is a directory of a cgroup v2 mount (not a test's stand-in tree): only those
 * can be spawned into (CLONE_INTO_CGROUP). */
bool cgroup_is_cgroupfs(int dir_fd);
/* Moves pid into the cgroup whose directory dir_fd is. */
int cgroup_join(int dir_fd, pid_t pid, struct ember_error **err);

/* Sets cpu.idle of <root>/emberd/<id> (a pool clone at its handout: false). Best effort: a
 * kernel without cpu.idle (before 5.15) keeps the cgroup at its weight. */
void cgroup_set_idle(const char *root, const char *id, bool idle);
/* Sets cpu.weight of <root>/emberd/<id> (a sandbox's cpu_weight). Best effort, logged. */
void cgroup_set_weight(const char *root, const char *id, unsigned weight);

/* Removes <root>/emberd/<id> once its processes are gone (bounded retries). */
void cgroup_remove(const char *root, const char *id);

/* rmdir of any cgroup directory, retried while the kernel says EBUSY (a killed process stays
 * in its cgroup until it is reaped) for at most timeout_ms. */
void cgroup_rmdir_wait(const char *dir, int64_t timeout_ms);

/* Calls fn for every process listed in <dir>/cgroup.procs, except PID 1 and this process. */
void cgroup_for_each_member(const char *dir, void (*fn)(pid_t pid, void *arg), void *arg);

#endif
