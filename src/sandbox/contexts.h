/* contexts.h - a sandbox's code contexts as the daemon knows them (docs/api.md "Contexts"):
 * id, language, counters and whether an exec (or a restart) holds one. The interpreters live in
 * the guest (guest/context.h); this table is what the API lists and what makes a second exec
 * in a busy context a 409 without asking the guest.
 * Owned by its sandbox (inline, no allocation); every function is called with the manager's
 * lock held, never blocks, and never talks to the guest. */
#ifndef EMBER_SANDBOX_CONTEXTS_H
#define EMBER_SANDBOX_CONTEXTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/ctxmsg.h"
#include "util/error.h"

/* The most --max-contexts may be (the guest agent keeps at most 32 per session). */
#define SANDBOX_CONTEXTS_MAX 32

struct sandbox_context {
	char id[PROTO_CONTEXT_ID_MAX + 1];
	enum proto_context_language language;
	int64_t created_wall_ns;
	uint64_t execs;          /* finished execs in it */
	unsigned restarts;       /* its interpreter was started anew (timeout, OOM, restart) */
	bool busy;               /* an exec or a restart holds it */
	bool opening;            /* reserved: the guest has not answered the open yet */
};

struct sandbox_contexts {
	struct sandbox_context items[SANDBOX_CONTEXTS_MAX];
	size_t count;
};

/* Reserves a new entry (opening) with a fresh id; EMBER_E_CAPACITY beyond max (429). */
int contexts_reserve(struct sandbox_contexts *t, unsigned max,
		     enum proto_context_language language, struct sandbox_context *out,
		     struct ember_error **err);
/* The open succeeded (ready) or failed (removed). */
void contexts_opened(struct sandbox_contexts *t, const char *id, bool ok);
/* Marks it busy for an exec or a restart: EMBER_E_NOT_FOUND (404), or EMBER_E_CONFLICT (409)
 * when it is busy or still opening. *entry gets a copy. */
int contexts_acquire(struct sandbox_contexts *t, const char *id, struct sandbox_context *entry,
		     struct ember_error **err);
/* The exec or restart is over: execs and restarts are added. */
void contexts_release(struct sandbox_contexts *t, const char *id, unsigned execs,
		      unsigned restarts);
/* Removes it (whatever holds it); false when there is no such context. */
bool contexts_remove(struct sandbox_contexts *t, const char *id);
/* A copy of one (false: none) or of all, in creation order. */
bool contexts_get(const struct sandbox_contexts *t, const char *id, struct sandbox_context *out);
size_t contexts_list(const struct sandbox_contexts *t, struct sandbox_context *out, size_t max);
void contexts_clear(struct sandbox_contexts *t);

#endif
