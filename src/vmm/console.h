/* console.h - where every VM's console goes: a bounded ring per VM (console_ring.h), filled by
 * one reader thread (epoll) that serves every VM of a driver.
 * Used by vmm.c (one console per instance) and the drivers (the fds they give their VMM, the
 * sockets they add). Never writes a console to disk, never blocks a VMM: the VMM's side of
 * every transport is non-blocking or drops (docs/operations.md, "The guest console").
 *
 * Transports: a FIFO `console.fifo` in the run dir, created here; the daemon holds it
 * O_RDWR|O_NONBLOCK and gives that very open file to the VMM as stdout and stderr, so the
 * pipe always has a reader (no SIGPIPE/EPIPE while no daemon runs) and a full pipe makes the
 * VMM's writes fail with EAGAIN instead of blocking it. A later daemon re-opens it by name.
 * Drivers may add sockets (QEMU's serial) whose other end is the VMM's. */
#ifndef EMBER_VMM_CONSOLE_H
#define EMBER_VMM_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* The FIFO's name in a VM's run dir. */
#define CONSOLE_FIFO_NAME "console.fifo"

struct console_reader;
struct console;

/* Starts the reader thread (one per driver, i.e. per daemon). */
int console_reader_create(struct console_reader **out, struct ember_error **err);
/* Stops the thread; every console must have been freed. */
void console_reader_free(struct console_reader *reader);

/* A new VM's console: creates run_dir/console.fifo (replacing a stale one) and starts reading
 * it. */
int console_create(struct console_reader *reader, const char *run_dir, struct console **out,
		   struct ember_error **err);
/* A re-attached VM's console: opens the FIFO an earlier daemon created. A missing FIFO is not
 * an error (the console starts empty and stays so); one that is not a FIFO this daemon's user
 * owns is refused. */
int console_reopen(struct console_reader *reader, const char *run_dir, struct console **out,
		   struct ember_error **err);

/* The FIFO end to give the VMM as its stdout and stderr (owned by the console). */
int console_vmm_fd(const struct console *console);

/* Reads fd (a connected, non-blocking stream whose other end is the VMM's) into the same
 * ring too, until EOF. Takes fd, also on failure. */
int console_add_stream(struct console *console, int fd, struct ember_error **err);

/* Copies the newest min(size, kept) console bytes into out and returns how many; *total (may
 * be NULL) is the count of bytes the console ever received. Reads what the VMM already wrote
 * first, so the bytes a VMM wrote before it exited are all there. Thread-safe. */
size_t console_tail(struct console *console, void *out, size_t size, uint64_t *total);

/* Stops reading (after taking in what is already written) and closes the fds; the ring stays
 * readable until console_free(). With remove_fifo, also removes the FIFO (the VM is gone);
 * without, a later daemon may re-open it. */
void console_stop(struct console *console, bool remove_fifo);
/* console_stop(console, false) if needed, then frees the ring. NULL is fine. */
void console_free(struct console *console);

#endif
