/* deadline.c - the connection list and its watcher thread. O(connections) per sweep, a sweep
 * every DEADLINE_SWEEP_MS: with at most a few hundred connections that is noise, and a precise
 * timer per connection would cost more than it saves. */
#include "api/deadline.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"
#include "util/sync.h"
#include "util/timeutil.h"

/* How often the watcher looks: the deadline is enforced to within this. */
#define DEADLINE_SWEEP_MS 500

struct deadline_conn {
	struct deadline_registry *registry;
	int fd;                   /* our duplicate of the connection's socket */
	int64_t deadline_ms;      /* < 0: not receiving a request (being served) */
	bool expired;
	struct deadline_conn *prev, *next;
};

struct deadline_registry {
	pthread_mutex_t lock;     /* guards the list, every conn's fields and stop */
	pthread_cond_t cond;      /* monotonic; signalled on stop */
	struct deadline_conn *list;
	unsigned timeout_ms;
	uint64_t expired_total;
	bool stop;
	pthread_t watcher;
};

static void sweep_locked(struct deadline_registry *r, int64_t now)
{
	struct deadline_conn *c;

	for (c = r->list; c != NULL; c = c->next) {
		if (c->expired || c->deadline_ms < 0 || now < c->deadline_ms)
			continue;
		/* Shutting the socket down makes the library's reads fail, and it closes the
		 * connection as after any client error. */
		shutdown(c->fd, SHUT_RDWR);
		c->expired = true;
		r->expired_total++;
		log_event(LOG_WARN, NULL, "http.deadline", -1,
			  "closed a connection that did not send a whole request within %u ms",
			  r->timeout_ms);
	}
}

static void *watcher_main(void *arg)
{
	struct deadline_registry *r = arg;

	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		cond_wait_until(&r->cond, &r->lock, time_mono_ms() + DEADLINE_SWEEP_MS);
		sweep_locked(r, time_mono_ms());
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int deadline_registry_start(unsigned timeout_ms, struct deadline_registry **out,
			    struct ember_error **err)
{
	struct deadline_registry *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return ember_error_oom(err);
	r->timeout_ms = timeout_ms;
	pthread_mutex_init(&r->lock, NULL);
	cond_init_monotonic(&r->cond);
	if (pthread_create(&r->watcher, NULL, watcher_main, r) != 0) {
		pthread_cond_destroy(&r->cond);
		pthread_mutex_destroy(&r->lock);
		free(r);
		return ember_error_set(err, EMBER_E_INTERNAL, 0, "cannot start the request watcher");
	}
	*out = r;
	return 0;
}

void deadline_registry_stop(struct deadline_registry *r)
{
	struct deadline_conn *c;

	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->watcher, NULL);
	while ((c = r->list) != NULL) {
		r->list = c->next;
		close(c->fd);
		free(c);
	}
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

struct deadline_conn *deadline_conn_add(struct deadline_registry *r, int fd)
{
	struct deadline_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (c->fd < 0) {
		free(c);
		return NULL;
	}
	c->registry = r;
	pthread_mutex_lock(&r->lock);
	c->deadline_ms = time_mono_ms() + r->timeout_ms;
	c->next = r->list;
	if (r->list != NULL)
		r->list->prev = c;
	r->list = c;
	pthread_mutex_unlock(&r->lock);
	return c;
}

static void set_deadline(struct deadline_conn *c, bool receiving)
{
	struct deadline_registry *r;

	if (c == NULL)
		return;
	r = c->registry;
	pthread_mutex_lock(&r->lock);
	c->deadline_ms = receiving ? time_mono_ms() + r->timeout_ms : -1;
	pthread_mutex_unlock(&r->lock);
}

void deadline_conn_received(struct deadline_conn *c)
{
	set_deadline(c, false);
}

void deadline_conn_rearm(struct deadline_conn *c)
{
	set_deadline(c, true);
}

void deadline_conn_remove(struct deadline_conn *c)
{
	struct deadline_registry *r;

	if (c == NULL)
		return;
	r = c->registry;
	pthread_mutex_lock(&r->lock);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		r->list = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&r->lock);
	close(c->fd);
	free(c);
}

uint64_t deadline_registry_expired(struct deadline_registry *r)
{
	uint64_t n;

	pthread_mutex_lock(&r->lock);
	n = r->expired_total;
	pthread_mutex_unlock(&r->lock);
	return n;
}
