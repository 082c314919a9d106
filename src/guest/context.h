/* context.h - code contexts (protocol version 4, docs/guest.md "Contexts"): a long-lived
 * interpreter of the sandbox user's (python: scripts/context.py; node: scripts/context.js; shell:
 * /bin/sh) whose globals, cwd and environment persist between the execs run in it.
 * Created and owned by session.c (a context dies with its session); an exec in a context
 * (exec.c) borrows its output pipes while it runs; agent.c's reaper reports the interpreter's
 * death. A context whose interpreter dies or is killed starts a new one by itself.
 * Never trusts the interpreter: it runs the user's code, so its replies are parsed strictly and
 * bounded, and any reply out of place kills it (and so restarts it). */
#ifndef EMBER_GUEST_CONTEXT_H
#define EMBER_GUEST_CONTEXT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "guest/exec.h"
#include "guest/loop.h"
#include "proto/ctxmsg.h"
#include "util/error.h"

/* How long an interpreter may take to report ready (a cold python under TCG takes ~1 s). */
#define GUEST_CONTEXT_START_MS 60000
/* After a timed-out exec's SIGINT, how long the code has to return before its interpreter is
 * killed and started anew. */
#define GUEST_CONTEXT_INTERRUPT_GRACE_MS 2000
/* A reply line from the interpreter ("done {...}"): the largest outcome plus room. */
#define GUEST_CONTEXT_REPLY_MAX (1024u * 1024u)
#define GUEST_MAX_CONTEXTS 32u
/* Interpreters in a row that may die before finishing a run and still be restarted by
 * themselves (a timeout's kill or an OOM kill of a first run counts too). */
#define GUEST_CONTEXT_QUICK_DEATHS_MAX 3u

struct guest_context;

struct guest_context_ops {
	/* A CONTEXT_REPLY or ERROR for a pending open or restart (id). */
	int (*emit)(void *ctx, uint8_t type, uint32_t id, const void *payload, size_t len);
};

/* Starts the interpreter (spec moves in: *spec is zeroed); reply_id gets CONTEXT_REPLY once it
 * reports ready, or ERROR context_failed. EMBER_E_GUEST: it could not be started. */
int guest_context_open(struct guest_loop *loop, const struct guest_exec_config *cfg,
		       struct proto_context *spec, uint32_t reply_id,
		       const struct guest_context_ops *ops, void *ctx, struct guest_context **out,
		       struct ember_error **err);

/* Kills the interpreter and starts a new one; reply_id as for open. A running exec ends as
 * killed with its context restarted. */
void guest_context_restart(struct guest_context *c, uint32_t reply_id);

/* Kills the interpreter for good and frees the context (deferred to the loop's batch end); a
 * running exec ends as killed. The process is reaped later as an orphan. */
void guest_context_close(struct guest_context *c);

const char *guest_context_id(const struct guest_context *c);
/* An exec runs in it. */
bool guest_context_busy(const struct guest_context *c);

/* --- for exec.c --- */

/* Starts a run of code_path: e borrows dups of the interpreter's stdout/stderr (into out_fds);
 * the context answers with guest_exec_context_done() or guest_exec_context_lost(). */
int guest_context_begin(struct guest_context *c, struct guest_exec *e, const char *code_path,
			int out_fds[2], struct ember_error **err);
/* The run is over (e finished or was discarded): the context is idle again. */
void guest_context_end(struct guest_context *c, struct guest_exec *e);
/* SIGINT to the interpreter's process group. */
void guest_context_interrupt(struct guest_context *c);
/* SIGKILL to every process of the context; it restarts once the interpreter is reaped. */
void guest_context_kill(struct guest_context *c);
pid_t guest_context_pid(const struct guest_context *c);

/* --- for the session and the reaper --- */
struct guest_context *guest_context_next(const struct guest_context *c);
void guest_context_set_next(struct guest_context *c, struct guest_context *next);
/* The interpreter's pid while it was not reaped. */
bool guest_context_owns_pid(const struct guest_context *c, pid_t pid);
void guest_context_reaped(struct guest_context *c, int wait_status);
bool guest_context_owns_unreaped_cgroup(const struct guest_context *c, const char *path);

#endif
