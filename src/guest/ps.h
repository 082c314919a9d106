/* ps.h - the process table for PS_REPLY, read from /proc.
 * Called by session.c for a PS request; the line parsers are pure and unit-tested.
 * Never reads more than a bounded amount per process nor lists more than PROTO_PS_MAX entries;
 * a process that vanishes while being read is skipped, not an error. */
#ifndef EMBER_GUEST_PS_H
#define EMBER_GUEST_PS_H

#include <stddef.h>
#include <stdint.h>

#include "proto/messages.h"
#include "util/error.h"

/* Parses /proc/<pid>/stat text: pid, comm (which may hold blanks and parentheses), state, ppid. */
int guest_ps_parse_stat(const char *text, size_t len, struct proto_process *proc,
			struct ember_error **err);

/* Finds the real uid in /proc/<pid>/status text ("Uid:\t<real>\t<effective>..."). */
int guest_ps_parse_status_uid(const char *text, size_t len, uint32_t *uid,
			      struct ember_error **err);

/* Lists up to max processes from proc_dir (normally "/proc"), sorted by pid. */
int guest_ps_list(const char *proc_dir, struct proto_process *out, size_t max, size_t *count,
		  struct ember_error **err);

#endif
