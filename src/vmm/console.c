/* console.c - the console reader: one thread, one epoll set, every VM's console streams; each
 * VM's bytes go into its own bounded ring (see console.h for the transports).
 *
 * One lock guards the registry and every ring. It is held across reads, which is the one
 * exception to "no lock across I/O to a VMM": every fd here is O_NONBLOCK, so a read is a copy
 * of what the kernel already holds (at most CONSOLE_READ_CHUNK per event), never a wait. */
#include "vmm/console.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "vmm/console_ring.h"
#include "vmm/vmm.h"

/* Most bytes one event reads: a flooding VM gets a turn as big as the others', so one guest
 * writing as fast as it can does not starve the consoles of the rest. */
#define CONSOLE_READ_CHUNK (64u << 10)
/* The FIFO, and one stream a driver adds (QEMU's serial socket). */
#define CONSOLE_STREAMS_MAX 2
#define CONSOLE_EVENTS_MAX 64
/* epoll id of the reader's wake-up eventfd; streams count from 1. */
#define CONSOLE_WAKE_ID 0

struct console_stream {
	int fd;
	uint64_t id;     /* the epoll key: never reused, so a stale event finds nothing */
};

struct console {
	struct console_reader *reader;
	struct console_ring ring;
	struct console_stream streams[CONSOLE_STREAMS_MAX];
	size_t nstreams;
	int vmm_fd;      /* the FIFO, also streams[0] while it is read; -1 once stopped */
	bool stopped;
	char fifo_path[PATH_MAX];
	struct console *next;
};

struct console_reader {
	pthread_mutex_t lock;        /* the list, every console's streams and ring */
	struct console *list;
	uint64_t next_id;
	bool stopping;
	int epoll_fd;
	int wake_fd;
	pthread_t thread;
};

/* Lock held. Forgets stream i and closes its fd (the FIFO's too: the VMM has its own copy). */
static void remove_stream_locked(struct console *c, size_t i)
{
	epoll_ctl(c->reader->epoll_fd, EPOLL_CTL_DEL, c->streams[i].fd, NULL);
	if (c->streams[i].fd == c->vmm_fd)
		c->vmm_fd = -1;
	close(c->streams[i].fd);
	c->streams[i] = c->streams[--c->nstreams];
}

/* Lock held. One non-blocking read of at most max bytes straight into the ring; the bytes it
 * got, 0 when there was nothing (or the stream ended and is gone). */
static size_t read_stream_locked(struct console *c, size_t i, size_t max)
{
	struct iovec iov[2];
	int iovcnt = console_ring_space(&c->ring, max, iov);
	ssize_t n = readv(c->streams[i].fd, iov, iovcnt);

	if (n > 0) {
		console_ring_commit(&c->ring, (size_t)n);
		return (size_t)n;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	/* EOF (the VMM closed its end of a socket) or an error: nothing more will come. */
	remove_stream_locked(c, i);
	return 0;
}

/* Lock held. Takes in what the VMM has written so far: at most one ring's worth, so a VMM that
 * keeps writing cannot keep the caller here. */
static void drain_locked(struct console *c)
{
	size_t budget = c->ring.size, i, n;

	for (i = 0; i < c->nstreams; i++) {
		size_t before = c->nstreams;

		do {
			n = read_stream_locked(c, i, budget);
			budget -= n;
		} while (n > 0 && budget > 0);
		if (c->nstreams < before)
			i--; /* stream i was removed: another one moved into its slot */
	}
}

static void handle_event_locked(struct console_reader *reader, uint64_t id)
{
	struct console *c;
	size_t i;

	for (c = reader->list; c != NULL; c = c->next) {
		for (i = 0; i < c->nstreams; i++) {
			if (c->streams[i].id == id) {
				read_stream_locked(c, i, CONSOLE_READ_CHUNK);
				return;
			}
		}
	}
}

static void *reader_main(void *arg)
{
	struct console_reader *reader = arg;
	struct epoll_event events[CONSOLE_EVENTS_MAX];

	for (;;) {
		int n = epoll_wait(reader->epoll_fd, events, CONSOLE_EVENTS_MAX, -1), i;
		bool stop;

		if (n < 0 && errno != EINTR)
			return NULL;
		pthread_mutex_lock(&reader->lock);
		stop = reader->stopping;
		for (i = 0; i < n && !stop; i++) {
			if (events[i].data.u64 != CONSOLE_WAKE_ID)
				handle_event_locked(reader, events[i].data.u64);
		}
		pthread_mutex_unlock(&reader->lock);
		if (stop)
			return NULL;
	}
}

int console_reader_create(struct console_reader **out, struct ember_error **err)
{
	struct console_reader *reader = calloc(1, sizeof(*reader));
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = CONSOLE_WAKE_ID };

	if (reader == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	pthread_mutex_init(&reader->lock, NULL);
	reader->next_id = CONSOLE_WAKE_ID + 1;
	reader->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	reader->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (reader->epoll_fd < 0 || reader->wake_fd < 0 ||
	    epoll_ctl(reader->epoll_fd, EPOLL_CTL_ADD, reader->wake_fd, &ev) < 0) {
		ember_error_sys(err, "console reader: epoll");
		goto fail;
	}
	errno = pthread_create(&reader->thread, NULL, reader_main, reader);
	if (errno != 0) {
		ember_error_sys(err, "console reader: start its thread");
		goto fail;
	}
	*out = reader;
	return 0;
fail:
	if (reader->epoll_fd >= 0)
		close(reader->epoll_fd);
	if (reader->wake_fd >= 0)
		close(reader->wake_fd);
	pthread_mutex_destroy(&reader->lock);
	free(reader);
	return -1;
}

void console_reader_free(struct console_reader *reader)
{
	uint64_t one = 1;

	if (reader == NULL)
		return;
	pthread_mutex_lock(&reader->lock);
	reader->stopping = true;
	pthread_mutex_unlock(&reader->lock);
	if (write(reader->wake_fd, &one, sizeof(one)) != sizeof(one))
		abort(); /* an eventfd far from its limit always takes a write */
	pthread_join(reader->thread, NULL);
	close(reader->epoll_fd);
	close(reader->wake_fd);
	pthread_mutex_destroy(&reader->lock);
	free(reader);
}

/* Lock held. Takes fd, also on failure. */
static int add_stream_locked(struct console *c, int fd, struct ember_error **err)
{
	struct console_reader *reader = c->reader;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = reader->next_id };

	if (c->stopped || c->nstreams == CONSOLE_STREAMS_MAX) {
		close(fd);
		return ember_error_set(err, EMBER_E_INTERNAL, EINVAL, "console: no room for a stream");
	}
	if (epoll_ctl(reader->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		ember_error_sys(err, "console: watch a stream");
		close(fd);
		return -1;
	}
	c->streams[c->nstreams++] = (struct console_stream){ .fd = fd, .id = reader->next_id++ };
	return 0;
}

int console_add_stream(struct console *console, int fd, struct ember_error **err)
{
	int ret;

	pthread_mutex_lock(&console->reader->lock);
	ret = add_stream_locked(console, fd, err);
	pthread_mutex_unlock(&console->reader->lock);
	return ret;
}

/* A console with an empty ring, in the reader's list, reading nothing yet. */
static int console_new(struct console_reader *reader, const char *run_dir, struct console **out,
		       struct ember_error **err)
{
	struct console *c = calloc(1, sizeof(*c));

	if (c == NULL || console_ring_init(&c->ring, VMM_CONSOLE_RING_BYTES) < 0) {
		free(c);
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	c->reader = reader;
	c->vmm_fd = -1;
	if (snprintf(c->fifo_path, sizeof(c->fifo_path), "%s/%s", run_dir, CONSOLE_FIFO_NAME) >=
	    (int)sizeof(c->fifo_path)) {
		console_ring_release(&c->ring);
		free(c);
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "run dir too long");
	}
	pthread_mutex_lock(&reader->lock);
	c->next = reader->list;
	reader->list = c;
	pthread_mutex_unlock(&reader->lock);
	*out = c;
	return 0;
}

/* Starts reading the FIFO fd (taken, also on failure) and keeps it as the VMM's end. */
static int attach_fifo(struct console *c, int fd, struct ember_error **err)
{
	int ret;

	pthread_mutex_lock(&c->reader->lock);
	ret = add_stream_locked(c, fd, err);
	if (ret == 0)
		c->vmm_fd = fd;
	pthread_mutex_unlock(&c->reader->lock);
	return ret;
}

int console_create(struct console_reader *reader, const char *run_dir, struct console **out,
		   struct ember_error **err)
{
	struct console *c;
	int fd;

	if (console_new(reader, run_dir, &c, err) < 0)
		return -1;
	if (unlink(c->fifo_path) < 0 && errno != ENOENT) {
		ember_error_sys(err, "remove a stale `%s`", c->fifo_path);
		goto fail;
	}
	if (mkfifo(c->fifo_path, 0600) < 0) {
		ember_error_sys(err, "create the console FIFO `%s`", c->fifo_path);
		goto fail;
	}
	/* Read and write: opening never waits for a writer, and the VMM, holding this same open
	 * file, keeps the pipe readable while no daemon runs. */
	fd = open(c->fifo_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		ember_error_sys(err, "open the console FIFO `%s`", c->fifo_path);
		goto fail;
	}
	if (attach_fifo(c, fd, err) < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	console_stop(c, true);
	console_free(c);
	return -1;
}

/* Opens what an earlier daemon left as the FIFO, refusing anything else: the run dir may be
 * writable by the VMM's user, and root must not read (and serve as console) a file it put
 * there. -1 with errno ENOENT when there is none. */
static int open_existing_fifo(const char *path, struct ember_error **err)
{
	_cleanup_close_ int handle = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	char proc_path[64];
	struct stat st;
	int fd;

	if (handle < 0) {
		if (errno != ENOENT)
			ember_error_sys(err, "open the console FIFO `%s`", path);
		return -1;
	}
	if (fstat(handle, &st) < 0 || !S_ISFIFO(st.st_mode) || st.st_uid != geteuid()) {
		ember_error_set(err, EMBER_E_INVALID, EPERM,
				"`%s` is not a FIFO of this daemon's user", path);
		return -1;
	}
	snprintf(proc_path, sizeof(proc_path), "/proc/self/fd/%d", handle);
	fd = open(proc_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		ember_error_sys(err, "open the console FIFO `%s`", path);
	return fd;
}

int console_reopen(struct console_reader *reader, const char *run_dir, struct console **out,
		   struct ember_error **err)
{
	struct console *c;
	int fd;

	if (console_new(reader, run_dir, &c, err) < 0)
		return -1;
	errno = 0;
	fd = open_existing_fifo(c->fifo_path, err);
	if ((fd < 0 && errno != ENOENT) || (fd >= 0 && attach_fifo(c, fd, err) < 0)) {
		console_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

int console_vmm_fd(const struct console *console)
{
	return console->vmm_fd;
}

size_t console_tail(struct console *console, void *out, size_t size, uint64_t *total)
{
	size_t n;

	pthread_mutex_lock(&console->reader->lock);
	drain_locked(console);
	n = console_ring_tail(&console->ring, out, size);
	if (total != NULL)
		*total = console->ring.total;
	pthread_mutex_unlock(&console->reader->lock);
	return n;
}

void console_stop(struct console *console, bool remove_fifo)
{
	pthread_mutex_lock(&console->reader->lock);
	if (!console->stopped) {
		drain_locked(console);
		while (console->nstreams > 0)
			remove_stream_locked(console, console->nstreams - 1);
		console->stopped = true;
	}
	pthread_mutex_unlock(&console->reader->lock);
	if (remove_fifo)
		unlink(console->fifo_path);
}

void console_free(struct console *console)
{
	struct console_reader *reader;
	struct console **p;

	if (console == NULL)
		return;
	reader = console->reader;
	console_stop(console, false);
	pthread_mutex_lock(&reader->lock);
	for (p = &reader->list; *p != NULL; p = &(*p)->next) {
		if (*p == console) {
			*p = console->next;
			break;
		}
	}
	pthread_mutex_unlock(&reader->lock);
	console_ring_release(&console->ring);
	free(console);
}
