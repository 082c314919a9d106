/* contexts.c - the table of a sandbox's contexts (contexts.h). */
#include "sandbox/contexts.h"

#include <string.h>

#include "util/ids.h"
#include "util/timeutil.h"

static struct sandbox_context *find(struct sandbox_contexts *t, const char *id)
{
	size_t i;

	for (i = 0; i < t->count; i++) {
		if (strcmp(t->items[i].id, id) == 0)
			return &t->items[i];
	}
	return NULL;
}

int contexts_reserve(struct sandbox_contexts *t, unsigned max,
		     enum proto_context_language language, struct sandbox_context *out,
		     struct ember_error **err)
{
	struct sandbox_context *c;

	if (max > SANDBOX_CONTEXTS_MAX)
		max = SANDBOX_CONTEXTS_MAX;
	if (t->count >= max)
		return ember_error_set(err, EMBER_E_CAPACITY, 0,
				       "the sandbox has %zu contexts, the most it may have "
				       "(--max-contexts): delete one first", t->count);
	c = &t->items[t->count];
	memset(c, 0, sizeof(*c));
	if (id_generate("ctx_", c->id, sizeof(c->id), err) < 0)
		return -1;
	c->language = language;
	c->created_wall_ns = time_wall_ns();
	c->opening = true;
	t->count++;
	*out = *c;
	return 0;
}

void contexts_opened(struct sandbox_contexts *t, const char *id, bool ok)
{
	struct sandbox_context *c = find(t, id);

	if (c == NULL)
		return;
	if (ok)
		c->opening = false;
	else
		contexts_remove(t, id);
}

int contexts_acquire(struct sandbox_contexts *t, const char *id, struct sandbox_context *entry,
		     struct ember_error **err)
{
	struct sandbox_context *c = find(t, id);

	if (c == NULL)
		return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no context `%.40s` in this "
				       "sandbox", id);
	if (c->busy || c->opening)
		return ember_error_set(err, EMBER_E_CONFLICT, 0, "context `%s` is %s: one exec at "
				       "a time per context", id, c->opening ? "starting" : "busy");
	c->busy = true;
	*entry = *c;
	return 0;
}

void contexts_release(struct sandbox_contexts *t, const char *id, unsigned execs,
		      unsigned restarts)
{
	struct sandbox_context *c = find(t, id);

	if (c == NULL)
		return; /* deleted while it ran */
	c->busy = false;
	c->execs += execs;
	c->restarts += restarts;
}

bool contexts_remove(struct sandbox_contexts *t, const char *id)
{
	struct sandbox_context *c = find(t, id);
	size_t i;

	if (c == NULL)
		return false;
	i = (size_t)(c - t->items);
	memmove(&t->items[i], &t->items[i + 1], (t->count - i - 1) * sizeof(t->items[0]));
	t->count--;
	return true;
}

bool contexts_get(const struct sandbox_contexts *t, const char *id, struct sandbox_context *out)
{
	const struct sandbox_context *c = find((struct sandbox_contexts *)t, id);

	if (c == NULL)
		return false;
	*out = *c;
	return true;
}

size_t contexts_list(const struct sandbox_contexts *t, struct sandbox_context *out, size_t max)
{
	size_t n = t->count < max ? t->count : max;

	memcpy(out, t->items, n * sizeof(out[0]));
	return n;
}

void contexts_clear(struct sandbox_contexts *t)
{
	t->count = 0;
}
