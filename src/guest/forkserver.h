/* forkserver.h - the warm interpreter of plain python execs (docs/guest.md "Fork server"): one
 * pre-started, pre-imported python3 process per agent (scripts/forkserver.py, run as root in its
 * own session) that forks a fresh child per exec, so a plain exec skips interpreter start-up.
 * Called by exec.c (eligible/spawn/go) and agent.c (new/free, and its reaper's reaped()).
 * Never runs user code as root (the child drops privileges before it answers and waits for the
 * go byte before running anything of the user's), never blocks longer than its bounds
 * (GUEST_FORKSERVER_*_MS), and never reports its own failure to an exec: any failure of the
 * server stops it and the exec is started the old way (guest_spawn). */
#ifndef EMBER_GUEST_FORKSERVER_H
#define EMBER_GUEST_FORKSERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "proto/messages.h"
#include "util/error.h"

struct guest_forkserver;

/* What the server's child must look like (the fields of guest_spawn_spec that apply). */
struct guest_forkserver_request {
	const char *interpreter; /* resolved path, from guest_forkserver_eligible */
	const char *code_path;   /* absolute */
	const char *cwd;
	bool change_ids;
	uid_t uid;
	gid_t gid;
	rlim_t max_processes;
	char *const *envp;       /* the exec's whole environment */
	int stdin_fd;
	int stdout_fd;
	int stderr_fd;
};

/* The server's reply to one request: pid > 0 and errnum 0 when the child waits for go; else the
 * step that failed (the child then exited) and its errno. */
struct guest_forkserver_reply {
	pid_t pid;
	int errnum;
	char step[64];
};

/* The longest reply the server sends, and the bounds of the agent's waits. */
#define GUEST_FORKSERVER_REPLY_MAX 96u
#define GUEST_FORKSERVER_REQUEST_MAX (128u * 1024u)

/* No process yet: the first eligible exec starts it; script_dir holds forkserver.py (root-owned,
 * created if missing). */
struct guest_forkserver *guest_forkserver_new(const char *script_dir, struct ember_error **err);

/* Starts the server for the interpreter name (e.g. "python3") now, without waiting for it: the
 * first eligible exec then waits only for what is left of its start. Nothing when the name is no
 * python, cannot be found, or a server runs. PID 1 calls it at boot. */
void guest_forkserver_prestart(struct guest_forkserver *fs, const char *name);

/* Kills the server (if running; the agent's reaper reaps it) and removes the script it
 * installed. NULL is fine. */
void guest_forkserver_free(struct guest_forkserver *fs);

/* True when req may run through the server: a plain python exec (not a command, not
 * fresh_interpreter, argv exactly one python3 / python3.N) whose environment changes nothing
 * python reads at start-up (PYTHON*, LANG, LC_ALL, LC_CTYPE). interp gets the interpreter's
 * resolved path. */
bool guest_forkserver_eligible(const struct proto_exec *req, char *interp, size_t interp_size);

/* Starts the server when needed (waits for it to be ready, bounded) and asks it for a child.
 * > 0: the child's pid, reparented to this process, in its own session, stopped before user
 * code until guest_forkserver_go(*go_fd). 0: the server is unusable (logged, stopped): start the
 * exec the old way. -1: the child could not be set up (EMBER_E_GUEST, e.g. the cwd): the exec's
 * spawn failure, as guest_spawn would report it. */
pid_t guest_forkserver_spawn(struct guest_forkserver *fs, const struct guest_forkserver_request *req,
			     int *go_fd, struct ember_error **err);

/* Lets the child run (writes the go byte) and closes go_fd; closing go_fd without this makes
 * the child exit instead. */
int guest_forkserver_go(int go_fd, struct ember_error **err);

/* The reaper reaped pid: true when it was the server (it is then restarted on demand). */
bool guest_forkserver_reaped(struct guest_forkserver *fs, pid_t pid);

/* The server's pid, 0 when none runs (for tests and logs). */
pid_t guest_forkserver_pid(const struct guest_forkserver *fs);

/* Parses a reply ("PID ERRNO STEP", at most GUEST_FORKSERVER_REPLY_MAX bytes; STEP "-" on
 * success, else printable ASCII): strict, -1 with EMBER_E_PROTOCOL on anything else. */
int guest_forkserver_parse_reply(const char *buf, size_t len, struct guest_forkserver_reply *out,
				 struct ember_error **err);

#endif
