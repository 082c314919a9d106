/* interpturn.h - a code context's turn: E2B's server runs one cell at a time per context and
 * queues the others, so interp.c holds a (sandbox, context)'s turn from before a cell's env_vars
 * are set until they are restored after it, and a cell waiting for its turn sleeps on a
 * condition variable instead of asking the manager again and again.
 * Used by interp.c only. The registry is process-wide and owns its entries (one per pair that
 * is held or waited for, gone when neither); a caller owns the turn it took until it gives it
 * back with e2b_turn_release(), from any thread. */
#ifndef EMBER_E2B_INTERPTURN_H
#define EMBER_E2B_INTERPTURN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct e2b_turn;

/* Whether a waiter should give up (the client left); polled about every second. */
typedef bool e2b_turn_abandon(void *arg);

/* Takes the turn of (sandbox_id, context_id), waiting while another holds it, until
 * deadline_ms (time_mono_ms(); <0: none) or until abandon(arg) says so (NULL: never): then
 * EMBER_E_CONFLICT. */
int e2b_turn_take(const char *sandbox_id, const char *context_id, int64_t deadline_ms,
		  e2b_turn_abandon *abandon, void *arg, struct e2b_turn **out,
		  struct ember_error **err);

/* Gives the turn back (NULL: nothing); the next waiter takes it. */
void e2b_turn_release(struct e2b_turn *turn);

/* How many pairs the registry holds (held or waited for): 0 once every turn is back. Tests. */
size_t e2b_turn_count(void);

#endif
