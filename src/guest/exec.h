/* exec.h - one running exec: its code file, pipes, timeout and completion (EXIT).
 * Created and owned by session.c; told about its main process's death by agent.c's reaper.
 * Never blocks the loop (all pipe ends non-blocking), never buffers more than its bounds, and
 * never sends EXIT before the main process was reaped. */
#ifndef EMBER_GUEST_EXEC_H
#define EMBER_GUEST_EXEC_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "guest/loop.h"
#include "proto/messages.h"
#include "util/error.h"

struct guest_exec;
struct guest_forkserver;

/* How an exec talks to its session (kept abstract so exec.c knows nothing of sessions). */
struct guest_exec_ops {
	/* Queues a frame for the host; -1 when the session cannot take it (it then ends). */
	int (*emit)(void *ctx, uint8_t type, uint32_t id, const void *payload, size_t len);
	/* True while the session's outgoing queue is above its high-water mark. */
	bool (*congested)(void *ctx);
	/* EXIT is queued and every fd closed: the owner unlinks the exec and frees it (deferred). */
	void (*finished)(void *ctx, struct guest_exec *exec);
};

/* Where and as whom execs run; fixed for the agent's lifetime. */
struct guest_exec_config {
	const char *code_root; /* per-exec directories (0711, root-owned) are created here */
	const char *cwd;
	const char *home;      /* HOME of the base environment */
	bool change_ids;
	uid_t uid;
	gid_t gid;
	const char *cgroup_root; /* per-exec cgroups are made here; NULL: process groups only */
	struct guest_forkserver *forkserver; /* plain python execs fork from it; NULL: never */
};

struct guest_exec_stream {
	struct guest_watch watch;
	struct guest_exec *exec;
	uint8_t type;     /* PROTO_STDOUT or PROTO_STDERR */
	uint64_t kept;    /* bytes forwarded so far (<= output_limit) */
	bool truncated;
	bool eof;
	bool paused;      /* out of the epoll set while the session is congested */
};

struct guest_exec {
	struct guest_exec *next;          /* the owning session's list */
	struct guest_deferred deferred;
	struct guest_loop *loop;
	const struct guest_exec_ops *ops;
	void *ctx;

	uint32_t id;
	pid_t pid;                        /* main process = process group id */
	int64_t start_ms;
	int64_t end_ms;
	int64_t received_us;              /* monotonic: the EXEC arrived, the program started */
	int64_t started_us;               /* (spawn began at start_ms), and it ended */
	int64_t spawn_begin_us;
	int64_t ended_us;
	bool reaped;
	int wait_status;
	bool timed_out;
	bool oom_killed;
	bool cancelled;
	bool grace_over;                  /* 250 ms after reaping passed: stop waiting for EOF */
	bool finished;
	bool background;                  /* version 3: no timeout, no output limit here */
	uint64_t output_limit;
	bool credit_on;                   /* version-2 session: output is paced by CREDIT */
	uint64_t credit;                  /* data bytes the host still accepts (when credit_on) */

	struct guest_exec_stream out[2];  /* stdout, stderr */
	struct guest_watch stdin_watch;   /* our write end; fd -1 when /dev/null or closed */
	uint8_t *stdin_buf;               /* pending bytes the program has not read yet */
	size_t stdin_len;
	bool stdin_fin;                   /* FIN seen: close once stdin_buf is written */
	bool stdin_open;                  /* STDIN frames are still expected */
	struct guest_watch timer;         /* timeout, then the post-exit grace period */

	char dir[PATH_MAX];
	char code_path[PATH_MAX];
	char cgroup[PATH_MAX];            /* "" when the exec has no cgroup of its own */

	/* An exec in a context (version 4): no process of its own; NULL once the run is over. */
	struct guest_context *context;
	bool in_context;                  /* it ran in one (EXIT then carries the outcome) */
	bool interrupted;                 /* its timeout sent SIGINT; the next expiry kills */
	struct proto_outcome outcome;     /* what the interpreter reported (owned) */
};

/* A program of the sandbox user's, started the way every exec's is: base environment plus env,
 * cwd (NULL: home; relative: under it), its own cgroup (when the agent has cgroups), uid/gid
 * from cfg, fds 0-2 (and 3 when fd3 > 2). Used by guest_exec_start and context.c. */
struct guest_user_run {
	char *const *argv;
	char *const *env;             /* "NAME=value", NULL-terminated */
	const char *cwd;
	uint32_t max_processes;
	const char *cgroup_name;      /* unique under the cgroup root */
	int stdin_fd, stdout_fd, stderr_fd, fd3;
	const struct proto_exec *warm; /* non-NULL: through the fork server when it may (cfg) */
	const char *code_path;        /* with warm: the code file the server's child runs */
};

/* *pid once the program runs; its cgroup path into cgroup ("" without one, or on failure). */
int guest_exec_spawn_user(const struct guest_exec_config *cfg, const struct guest_user_run *run,
			  pid_t *pid, char *cgroup, size_t cgroup_size, struct ember_error **err);

/* Writes the code file, spawns argv + [code file] (a plain python exec through the fork server
 * when cfg has one and it works, docs/guest.md "Fork server"; argv alone for a command exec, which has no
 * code file) and registers the pipes and the timer (not armed for a background exec).
 * EMBER_E_GUEST: the program could not be started (ERROR spawn_failed); other kinds: internal. */
int guest_exec_start(struct guest_loop *loop, const struct guest_exec_config *cfg, uint64_t seq,
		     uint32_t id, const struct proto_exec *req, const struct guest_exec_ops *ops,
		     void *ctx, struct guest_exec **out, struct ember_error **err);

/* Runs req->code in context c (req->context names it; the caller checked it is idle): writes
 * the code file and starts the run. The timeout interrupts (SIGINT) first, then kills. */
int guest_exec_start_in_context(struct guest_loop *loop, const struct guest_exec_config *cfg,
				uint64_t seq, uint32_t id, const struct proto_exec *req,
				struct guest_context *c, const struct guest_exec_ops *ops,
				void *ctx, struct guest_exec **out, struct ember_error **err);

/* The context's interpreter finished the run: its exit code and outcome (moved in). */
void guest_exec_context_done(struct guest_exec *exec, int exit_code,
			     struct proto_outcome *outcome);

/* The context's interpreter died during the run (wait_status as from waitpid). */
void guest_exec_context_lost(struct guest_exec *exec, int wait_status, bool oom_killed);

/* Data from a STDIN frame (fin = last one). EMBER_E_TOO_LARGE when more than
 * GUEST_STDIN_PENDING_MAX would be pending: the caller then discards the exec. Input after FIN,
 * or after the program closed its stdin, is dropped. */
int guest_exec_stdin(struct guest_exec *exec, const uint8_t *data, size_t len, bool fin,
		     struct ember_error **err);

/* SIGNAL: sig (1..64) to the process group; a finished exec ignores it. */
void guest_exec_signal(struct guest_exec *exec, int sig);

/* CANCEL: SIGKILL to the process group; EXIT follows as usual. */
void guest_exec_cancel(struct guest_exec *exec);

/* The reaper saw the main process exit. */
void guest_exec_reaped(struct guest_exec *exec, int wait_status);

/* The session drained below its low-water mark: read the pipes again (those with credit). */
void guest_exec_resume(struct guest_exec *exec);

/* Paces output by CREDIT from now on: PROTO_CREDIT_WINDOW bytes to start with. */
void guest_exec_enable_credit(struct guest_exec *exec);

/* CREDIT: bytes more the host accepts for this exec's STDOUT/STDERR; resumes paused pipes. */
void guest_exec_credit(struct guest_exec *exec, uint32_t bytes);

/* Session end or abort: SIGKILL to the group, close everything, remove the code; no EXIT. The
 * main process, if not yet reaped, is reaped later as an orphan. */
void guest_exec_discard(struct guest_exec *exec);

void guest_exec_free(struct guest_exec *exec);

#endif
