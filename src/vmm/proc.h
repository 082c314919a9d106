/* proc.h - facts about host processes read from /proc: start time (to tell a PID from its
 * reuse), uids and executable (who a process is), and command lines (what it names).
 * Used by the VMM layer when re-attaching and sweeping strays; never signals a process. */
#ifndef EMBER_VMM_PROC_H
#define EMBER_VMM_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "util/error.h"

/* starttime (field 22 of /proc/<pid>/stat, clock ticks since boot); -1 if the process is gone
 * or a zombie. */
int proc_start_ticks(pid_t pid, uint64_t *ticks);

/* The real, effective, saved and filesystem uids (the Uid: line of /proc/<pid>/status); -1 if
 * the process is gone. */
int proc_uids(pid_t pid, uid_t uids[4]);

/* Whether the process runs the file exe describes (same device and inode: the path a process in
 * another mount namespace shows for its executable is its own). */
bool proc_exe_is(pid_t pid, const struct stat *exe);

/* Whether the process's command line contains needle (read up to 64 KiB). */
bool proc_cmdline_contains(pid_t pid, const char *needle);

/* Calls fn for every process but PID 1 and this one. */
int proc_for_each(void (*fn)(pid_t pid, void *arg), void *arg);

/* Calls fn for every process (other than this one) whose command line contains needle.
 * Bounded: command lines are read up to 64 KiB. */
int proc_for_each_mentioning(const char *needle, void (*fn)(pid_t pid, void *arg), void *arg);

#endif
