/* loop.h - the one epoll loop of the guest agent: watches with handlers, deferred frees.
 * Used by agent.c (which runs it) and by session.c/exec.c (which register their fds).
 * Never calls a handler for a watch that was closed earlier in the same batch, and never frees
 * an object while a later event of the same batch may still point at it. */
#ifndef EMBER_GUEST_LOOP_H
#define EMBER_GUEST_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define guest_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct guest_watch;
typedef void (*guest_watch_fn)(struct guest_watch *watch, uint32_t events);

/* Embedded in the object that owns the fd; the handler finds its owner with container_of. */
struct guest_watch {
	int fd;          /* -1 when closed */
	uint32_t events; /* current epoll interest; 0 = not in the epoll set */
	guest_watch_fn fn;
};

/* Embedded in objects freed through the loop. */
struct guest_deferred {
	struct guest_deferred *next;
	void (*free_fn)(struct guest_deferred *deferred);
};

struct guest_loop {
	int epfd;
	struct guest_deferred *graveyard;
};

int guest_loop_init(struct guest_loop *loop, struct ember_error **err);
/* Frees whatever is still deferred and closes the epoll fd. */
void guest_loop_release(struct guest_loop *loop);

void guest_watch_init(struct guest_watch *watch, int fd, guest_watch_fn fn);

/* Sets the interest of a watch. 0 takes the fd out of the set entirely: epoll reports EPOLLHUP
 * even with an empty interest mask, and a paused pipe whose writer is gone would spin. */
int guest_loop_set(struct guest_loop *loop, struct guest_watch *watch, uint32_t events,
		   struct ember_error **err);

/* Takes the fd out of the set and closes it (no-op on a closed watch). */
void guest_loop_close(struct guest_loop *loop, struct guest_watch *watch);

/* Queues an object to be freed once the current batch of events is dispatched. */
void guest_loop_defer_free(struct guest_loop *loop, struct guest_deferred *deferred,
			   void (*free_fn)(struct guest_deferred *deferred));

/* Waits up to timeout_ms (-1 = forever) and dispatches one batch of events. Deferred objects
 * are not freed here: the caller runs its own post-batch work, then guest_loop_collect(). */
int guest_loop_run_once(struct guest_loop *loop, int timeout_ms, struct ember_error **err);
void guest_loop_collect(struct guest_loop *loop);

#endif
