/* cleanup.h - scope-bound release of memory, fds and jansson values (gcc/clang cleanup attribute).
 * Used by host and guest code alike; a function uses either these or a goto ladder, not both.
 * Ownership moves out with steal_pointer()/steal_fd(), never by copying and forgetting. */
#ifndef EMBER_UTIL_CLEANUP_H
#define EMBER_UTIL_CLEANUP_H

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static inline void cleanup_freep(void *p)
{
	free(*(void **)p);
}

static inline void cleanup_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

#define _cleanup_free_ __attribute__((cleanup(cleanup_freep)))
#define _cleanup_close_ __attribute__((cleanup(cleanup_closep)))

static inline void *steal_pointer_impl(void *pp)
{
	void **p = pp;
	void *v = *p;
	*p = NULL;
	return v;
}
/* Typed like bubblewrap's: the dead `0 ?` branch makes the result have *pp's type, so stealing
 * a `char **` into a `struct x *` does not compile. */
#define steal_pointer(pp) (0 ? (*(pp)) : (steal_pointer_impl)(pp))

static inline int steal_fd(int *fd)
{
	int v = *fd;
	*fd = -1;
	return v;
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
