/* procs.h - one sandbox's background processes: their table, a bounded output ring per stream,
 * and the threads that run them as channel execs. The one owner of that state (locked).
 * Used by the manager (one table per sandbox, closed at teardown before the channel) and, through
 * a reference, by the API's followers. Never holds its lock across I/O to the guest, never stalls
 * a program on the host (a full ring drops its oldest bytes and counts them) and never outlives
 * its threads: procs_close() joins every one. */
#ifndef EMBER_SANDBOX_PROCS_H
#define EMBER_SANDBOX_PROCS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "channel/channel.h"
#include "proto/messages.h"
#include "util/error.h"

/* Running background processes per sandbox: each is a guest exec (the guest runs 64 at most,
 * and a buffered exec needs one too) and a host thread. Beyond: 429. */
#define PROCS_MAX_RUNNING 32u
/* Finished ones stay listed with their output until the sandbox goes; the oldest beyond this
 * many are forgotten. */
#define PROCS_MAX_FINISHED 32u
/* Output kept per stream per process: enough for a server's log tail or a job's last screens.
 * Rings grow as output comes, so the daemon's worst case per sandbox is
 * (PROCS_MAX_RUNNING + PROCS_MAX_FINISHED) x 2 x PROCS_RING_BYTES = 128 MiB; a quiet process
 * costs a few hundred bytes. */
#define PROCS_RING_BYTES (1024u * 1024u)
#define PROCS_TAG_MAX 64u

enum procs_state { PROCS_RUNNING, PROCS_EXITED };

/* A copy of one process's public state (no pointers into the table). */
struct procs_info {
	int32_t pid;                  /* guest pid of the main process */
	enum procs_state state;
	char tag[PROCS_TAG_MAX + 1];
	int64_t started_wall_ns;
	int64_t ended_wall_ns;        /* 0 while running */
	struct proto_exit exit;       /* when exited and !lost */
	bool lost;                    /* ended without an exit report (channel broke, sandbox went) */
	char error[256];              /* why, when lost */
	bool stdin_open;              /* started with stdin and not closed yet */
	uint64_t total[2];            /* bytes ever written to stdout, stderr */
	uint64_t dropped[2];          /* of which the ring no longer holds */
};

struct procs;

/* A new, empty table with one reference (the manager's). */
int procs_new(struct procs **out, struct ember_error **err);
void procs_ref(struct procs *t);
void procs_unref(struct procs *t);

/* Starts req (background is forced on) on its own thread and returns once the guest reported
 * the pid (STARTED) or the exec failed. ch must stay open until procs_close(). tag may be NULL.
 * timeout_ms > 0: the process is cancelled (the guest kills its process group) that long after
 * the start, and its exit says timed_out; 0: it runs until it ends. EMBER_E_CAPACITY beyond
 * PROCS_MAX_RUNNING; otherwise what channel_exec() failed with. */
int procs_start(struct procs *t, struct channel *ch, const struct channel_exec_request *req,
		const char *tag, uint32_t timeout_ms, struct procs_info *info,
		struct ember_error **err);

/* Every process, oldest first; *infos is malloc'd. */
int procs_list(struct procs *t, struct procs_info **infos, size_t *count,
	       struct ember_error **err);

/* One process; with out != NULL also what its rings hold now (malloc'd into out[0] stdout and
 * out[1] stderr, lengths in len[]). EMBER_E_NOT_FOUND for an unknown pid. */
int procs_get(struct procs *t, int32_t pid, struct procs_info *info, uint8_t *out[2],
	      size_t len[2], struct ember_error **err);

/* What a process was started with, as copies (for listings): the argv the guest ran (a
 * command's own, or the interpreter's for code), its environment ("NAME=value", the pack's
 * included) and its working directory (NULL: the pack's default). EMBER_E_NOT_FOUND for an
 * unknown pid. */
struct procs_command {
	char **argv;
	size_t argc;
	char **env;
	size_t envc;
	char *cwd;
};
int procs_command(struct procs *t, int32_t pid, struct procs_command *out,
		  struct ember_error **err);
void procs_command_release(struct procs_command *c);

/* A follower's read: from pos[] (bytes of each stream ever written; positions the ring dropped
 * are skipped) up to max bytes of one stream into buf (*stream 0 or 1, *n bytes, pos advanced),
 * else once the process ended and everything was read *ended with *info, else waits until
 * deadline_ms (then *n = 0). */
int procs_read(struct procs *t, int32_t pid, uint64_t pos[2], uint8_t *buf, size_t max,
	       int *stream, size_t *n, bool *ended, struct procs_info *info, int64_t deadline_ms,
	       struct ember_error **err);

/* Stdin bytes for a process started with stdin (fin: then closes it), or a signal (1..64) for
 * its process group, through ch (the caller keeps it open). EMBER_E_NOT_FOUND: unknown pid;
 * EMBER_E_CONFLICT: it ended, took no stdin or its stdin is closed. */
int procs_stdin(struct procs *t, struct channel *ch, int32_t pid, const uint8_t *data,
		size_t len, bool fin, struct ember_error **err);
int procs_signal(struct procs *t, struct channel *ch, int32_t pid, int sig,
		 struct ember_error **err);

/* The sandbox goes: the caller has aborted the channel (so every process's exec ends); refuses
 * new starts and joins every thread. Followers still holding a reference see the ends. */
void procs_close(struct procs *t);

#endif
