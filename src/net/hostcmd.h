/* hostcmd.h - the host commands the daemon runs: `ip` and `tc` (iproute2) as child processes
 * for egress.c, `mksquashfs` for sandbox/mountimage.c, and nftables through libnftables. Every
 * call is bounded (a child that does not finish in time is killed and reaped) and reports the
 * tool's own error text. The nft context is one per process behind a mutex: libnftables is not
 * thread-safe, and the resolver thread and request threads both change sets. */
#ifndef EMBER_NET_HOSTCMD_H
#define EMBER_NET_HOSTCMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define HOSTCMD_TIMEOUT_MS 10000

/* Runs argv[0] (looked up in PATH) with argv, stdin /dev/null; fails (EMBER_E_INTERNAL) when it
 * cannot start, is killed at the timeout, or exits non-zero: the message then carries the first
 * line of its stderr. */
int hostcmd_run(char *const argv[], struct ember_error **err);

/* How hostcmd_run_in() runs its child, beyond hostcmd_run(). */
struct hostcmd_options {
	int cwd_fd;           /* its working directory (any directory fd, O_PATH too); -1: ours */
	int fd3;              /* its descriptor 3 (/proc/self/fd/3 for a tool that only takes a
			       * path); -1: none */
	int64_t deadline_ms;  /* killed then (time_mono_ms() clock) */
	const char *name;     /* what messages call it (NULL: its first words), for a tool run
			       * through wrappers such as prlimit */
};

/* hostcmd_run() as opts say; the timeout is EMBER_E_INTERNAL with errno ETIMEDOUT. */
int hostcmd_run_in(char *const argv[], const struct hostcmd_options *opts,
		   struct ember_error **err);

/* Runs an nft script (nft's own syntax, one transaction). With out != NULL the output is JSON
 * and *out gets it (malloc'd, NUL-terminated). Errors carry nft's message. */
int hostcmd_nft(const char *script, char **out, struct ember_error **err);

/* Whether nftables works here (a `list tables` succeeds); why not in why[] otherwise. */
bool hostcmd_nft_usable(char *why, size_t size);

#endif
