/* loop.c - epoll dispatch with deferred frees. */
#include "guest/loop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

/* Small batches keep one noisy exec from delaying the others' events for long. */
#define LOOP_BATCH 32

int guest_loop_init(struct guest_loop *loop, struct ember_error **err)
{
	loop->graveyard = NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		return ember_error_sys(err, "epoll_create1");
	return 0;
}

void guest_loop_collect(struct guest_loop *loop)
{
	while (loop->graveyard != NULL) {
		struct guest_deferred *d = loop->graveyard;

		loop->graveyard = d->next;
		d->free_fn(d);
	}
}

void guest_loop_release(struct guest_loop *loop)
{
	guest_loop_collect(loop);
	if (loop->epfd >= 0)
		close(loop->epfd);
	loop->epfd = -1;
}

void guest_watch_init(struct guest_watch *watch, int fd, guest_watch_fn fn)
{
	watch->fd = fd;
	watch->events = 0;
	watch->fn = fn;
}

int guest_loop_set(struct guest_loop *loop, struct guest_watch *watch, uint32_t events,
		   struct ember_error **err)
{
	struct epoll_event ev = { .events = events, .data.ptr = watch };
	int op;

	if (watch->fd < 0 || watch->events == events)
		return 0;
	if (events == 0)
		op = EPOLL_CTL_DEL;
	else if (watch->events == 0)
		op = EPOLL_CTL_ADD;
	else
		op = EPOLL_CTL_MOD;
	if (epoll_ctl(loop->epfd, op, watch->fd, &ev) < 0)
		return ember_error_sys(err, "epoll_ctl fd %d", watch->fd);
	watch->events = events;
	return 0;
}

void guest_loop_close(struct guest_loop *loop, struct guest_watch *watch)
{
	if (watch->fd < 0)
		return;
	if (watch->events != 0)
		epoll_ctl(loop->epfd, EPOLL_CTL_DEL, watch->fd, NULL);
	close(watch->fd);
	watch->fd = -1;
	watch->events = 0;
}

void guest_loop_defer_free(struct guest_loop *loop, struct guest_deferred *deferred,
			   void (*free_fn)(struct guest_deferred *deferred))
{
	deferred->free_fn = free_fn;
	deferred->next = loop->graveyard;
	loop->graveyard = deferred;
}

int guest_loop_run_once(struct guest_loop *loop, int timeout_ms, struct ember_error **err)
{
	struct epoll_event events[LOOP_BATCH];
	int n, i;

	n = epoll_wait(loop->epfd, events, LOOP_BATCH, timeout_ms);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return ember_error_sys(err, "epoll_wait");
	}
	for (i = 0; i < n; i++) {
		struct guest_watch *w = events[i].data.ptr;

		/* Closed or paused by an earlier handler of this batch: the event is stale. */
		if (w->fd < 0 || w->events == 0)
			continue;
		w->fn(w, events[i].events);
	}
	return 0;
}
