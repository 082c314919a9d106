/* proc.h - facts about host processes read from /proc: start time (to tell a PID from its
 * reuse) and which processes belong to a run directory (to find VMMs a crashed daemon left).
 * Used by the VMM layer when re-attaching; never signals a process it has not identified. */
#ifndef EMBER_VMM_PROC_H
#define EMBER_VMM_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

/* starttime (field 22 of /proc/<pid>/stat, clock ticks since boot); -1 if the process is gone
 * or a zombie. */
int proc_start_ticks(pid_t pid, uint64_t *ticks);

/* Calls fn for every process (other than this one) whose command line contains needle.
 * Bounded: command lines are read up to 64 KiB. */
int proc_for_each_mentioning(const char *needle, void (*fn)(pid_t pid, void *arg), void *arg);

#endif
