/* interpturn.c - per-(sandbox, context) turns for the code interpreter (interpturn.h): a list
 * of the pairs in use under one lock, each with its holder flag and the condition its waiters sleep on. */
#include "e2b/interpturn.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/ctxmsg.h"
#include "sandbox/manager.h"
#include "util/sync.h"
#include "util/timeutil.h"

/* How often a waiter asks abandon() (the client's socket offers no event here). */
#define TURN_ABANDON_POLL_MS 1000

struct e2b_turn {
	struct e2b_turn *next;
	char sandbox_id[SANDBOX_ID_LEN + 1];
	char context_id[PROTO_CONTEXT_ID_MAX + 1];
	bool held;
	unsigned users; /* holder and waiters: the entry goes at 0 */
	pthread_cond_t cond;
};

static pthread_mutex_t turns_lock = PTHREAD_MUTEX_INITIALIZER;
static struct e2b_turn *turns;

/* The pair's entry, made when missing (lock held); NULL: out of memory. */
static struct e2b_turn *entry_get_locked(const char *sandbox_id, const char *context_id)
{
	struct e2b_turn *t;

	for (t = turns; t != NULL; t = t->next) {
		if (strcmp(t->sandbox_id, sandbox_id) == 0 && strcmp(t->context_id, context_id) == 0)
			return t;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	snprintf(t->sandbox_id, sizeof(t->sandbox_id), "%s", sandbox_id);
	snprintf(t->context_id, sizeof(t->context_id), "%s", context_id);
	cond_init_monotonic(&t->cond);
	t->next = turns;
	turns = t;
	return t;
}

/* One user fewer; the entry goes with its last (lock held). */
static void entry_put_locked(struct e2b_turn *t)
{
	struct e2b_turn **p;

	if (--t->users > 0)
		return;
	for (p = &turns; *p != NULL; p = &(*p)->next) {
		if (*p == t) {
			*p = t->next;
			break;
		}
	}
	pthread_cond_destroy(&t->cond);
	free(t);
}

int e2b_turn_take(const char *sandbox_id, const char *context_id, int64_t deadline_ms,
		  e2b_turn_abandon *abandon, void *arg, struct e2b_turn **out,
		  struct ember_error **err)
{
	struct e2b_turn *t;
	bool gave_up = false;

	pthread_mutex_lock(&turns_lock);
	t = entry_get_locked(sandbox_id, context_id);
	if (t == NULL) {
		pthread_mutex_unlock(&turns_lock);
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	t->users++;
	while (t->held && !gave_up) {
		int64_t until = time_mono_ms() + TURN_ABANDON_POLL_MS;

		if (deadline_ms >= 0 && until > deadline_ms)
			until = deadline_ms;
		if (!cond_wait_until(&t->cond, &turns_lock, until) && deadline_ms >= 0 &&
		    time_mono_ms() >= deadline_ms)
			gave_up = true;
		else if (t->held && abandon != NULL && abandon(arg))
			gave_up = true;
	}
	if (gave_up && t->held) {
		entry_put_locked(t);
		pthread_mutex_unlock(&turns_lock);
		return ember_error_set(err, EMBER_E_CONFLICT, 0,
				       "the context is busy with another cell");
	}
	t->held = true;
	pthread_mutex_unlock(&turns_lock);
	*out = t;
	return 0;
}

void e2b_turn_release(struct e2b_turn *turn)
{
	if (turn == NULL)
		return;
	pthread_mutex_lock(&turns_lock);
	turn->held = false;
	pthread_cond_broadcast(&turn->cond);
	entry_put_locked(turn);
	pthread_mutex_unlock(&turns_lock);
}

size_t e2b_turn_count(void)
{
	const struct e2b_turn *t;
	size_t n = 0;

	pthread_mutex_lock(&turns_lock);
	for (t = turns; t != NULL; t = t->next)
		n++;
	pthread_mutex_unlock(&turns_lock);
	return n;
}
