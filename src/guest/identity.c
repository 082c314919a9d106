/* identity.c - clock and entropy from the host. */
#include "guest/identity.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "util/cleanup.h"

int guest_identity_apply(const struct proto_hello *hello, struct ember_error **err)
{
	_cleanup_close_ int fd = -1;

	if (hello->time_unix_ns != 0) {
		struct timespec ts = {
			.tv_sec = (time_t)(hello->time_unix_ns / 1000000000),
			.tv_nsec = (long)(hello->time_unix_ns % 1000000000),
		};

		if (clock_settime(CLOCK_REALTIME, &ts) < 0)
			return ember_error_sys(err, "set the clock");
	}
	fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return ember_error_sys(err, "open /dev/urandom");
	if (hello->entropy_len > 0) {
		/* struct rand_pool_info ends in a flexible array: lay it out in an int buffer. */
		int words[2 + PROTO_ENTROPY_MAX / sizeof(int)];
		struct rand_pool_info *pool = (struct rand_pool_info *)words;

		memset(words, 0, sizeof(words));
		/* The host drew these from its own CSPRNG: credit them in full. */
		pool->entropy_count = (int)(hello->entropy_len * 8);
		pool->buf_size = (int)hello->entropy_len;
		memcpy(pool->buf, hello->entropy, hello->entropy_len);
		if (ioctl(fd, RNDADDENTROPY, pool) < 0)
			return ember_error_sys(err, "credit host entropy (RNDADDENTROPY)");
	}
	/* A restored snapshot shares its CRNG state with every other clone until this reseed. */
	if (ioctl(fd, RNDRESEEDCRNG) < 0)
		return ember_error_sys(err, "reseed the kernel RNG (RNDRESEEDCRNG)");
	return 0;
}
