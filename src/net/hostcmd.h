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

/* hostcmd_run() in the working directory cwd_fd (any directory fd, O_PATH too; -1: the
 * daemon's) and killed at deadline_ms (time_mono_ms() clock) instead of after
 * HOSTCMD_TIMEOUT_MS; the timeout is then EMBER_E_INTERNAL with errno ETIMEDOUT. */
int hostcmd_run_in(char *const argv[], int cwd_fd, int64_t deadline_ms, struct ember_error **err);

/* Runs an nft script (nft's own syntax, one transaction). With out != NULL the output is JSON
 * and *out gets it (malloc'd, NUL-terminated). Errors carry nft's message. */
int hostcmd_nft(const char *script, char **out, struct ember_error **err);

/* Whether nftables works here (a `list tables` succeeds); why not in why[] otherwise. */
bool hostcmd_nft_usable(char *why, size_t size);

#endif
