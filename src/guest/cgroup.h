/* cgroup.h - one cgroup v2 per exec inside the guest: pids.max per exec and a kill that reaches
 * every process the exec started, including ones that left its process group with setsid().
 * Used by exec.c (create, join, kill) and agent.c (sweep of empty cgroups after reaping).
 * Optional: without a writable cgroup2 mount the agent falls back to process-group kills. */
#ifndef EMBER_GUEST_CGROUP_H
#define EMBER_GUEST_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

/* Where exec cgroups live in the guest (cgroup2 is mounted on /sys/fs/cgroup at boot). */
#define GUEST_CGROUP_ROOT "/sys/fs/cgroup/execs"

/* RAM kept out of the execs' reach (at least this, or 1/8 of the guest's RAM): for the agent,
 * the kernel, and the page cache they need to keep running. */
#define GUEST_CGROUP_RESERVE_MIN (32ULL << 20)

/* Creates root with the pids (and, when available, memory) controller enabled for its
 * children. false (and a logged reason) when cgroups cannot be used. */
bool guest_cgroup_setup(const char *root);

/* Creates <root>/<name> with pids.max = max_pids; *procs_fd is an O_WRONLY fd on its
 * cgroup.procs for the child to write "0" into before exec. */
int guest_cgroup_create(const char *root, const char *name, uint32_t max_pids, char *path,
			size_t path_size, int *procs_fd, struct ember_error **err);

/* Moves pid (a child that has not run user code yet, the fork server's) into the cgroup whose
 * cgroup.procs procs_fd is open on. */
int guest_cgroup_move(int procs_fd, pid_t pid, struct ember_error **err);

/* Kills every process in the cgroup (cgroup.kill; per-pid SIGKILL on kernels without it). */
void guest_cgroup_kill(const char *path);

/* How many of the cgroup's processes the OOM killer ended (memory.events oom_kill); 0 without
 * the memory controller. */
unsigned long guest_cgroup_oom_kills(const char *path);

/* Removes every child cgroup of root that has no process left (finished execs, and execs whose
 * background processes have now exited), except those keep(path, ctx) claims: a cgroup is empty
 * as soon as its last process exits, before the agent reaps it and reads its memory.events.
 * Cheap: one readdir. */
void guest_cgroup_sweep(const char *root, bool (*keep)(const char *path, void *ctx), void *ctx);

#endif
