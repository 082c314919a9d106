/* stream.h - `emberctl exec` as a streamed exec, and `emberctl logs`: output is printed as the
 * program writes it. Used by commands.c and procs.c. Talks to the daemon through the invocation's client (ctl.h: its address
 * and token), with src/client's streamed request. */
#ifndef EMBERCTL_STREAM_H
#define EMBERCTL_STREAM_H

#include <jansson.h>

#include "ctl.h"

/* POSTs body to path with Accept: application/x-ndjson and writes each stdout/stderr event to
 * stdout/stderr as it arrives. Returns the exit status emberctl should exit with: the
 * program's (128 + signal when killed), or 1 after printing what failed. */
int stream_exec(struct ctl *c, const char *path, json_t *body);

/* GETs a background process's output events (path: .../processes/{pid}/output, with or
 * without follow) and writes them like stream_exec. 0 once the last event came, else 1. */
int stream_process_output(struct ctl *c, const char *path);

#endif
