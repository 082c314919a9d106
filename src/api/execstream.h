/* execstream.h - a streamed exec (POST /sandboxes/{id}/exec with Accept: application/x-ndjson or
 * text/event-stream, or "stream": true): the exec runs on a worker thread through the manager,
 * its output reaches the HTTP client as events while it runs.
 * Built by routes.c, read by server.c from the HTTP library's content callback (the connection's
 * own thread, which may block here). Memory per stream is bounded by the protocol's credit
 * window (PROTO_CREDIT_WINDOW) plus one encoded chunk: a slow client stalls the program through
 * the guest's pipes, never grows the daemon. A client that goes away cancels the exec. */
#ifndef EMBER_API_EXECSTREAM_H
#define EMBER_API_EXECSTREAM_H

#include <stdbool.h>
#include <sys/types.h>

#include "api/events.h"
#include "api/requests.h"
#include "sandbox/manager.h"
#include "util/error.h"

struct api_exec_stream;

/* Starts the exec and returns once the EXEC went to the guest (*out is then the consumer's
 * reference), or fails with what failed before (an ordinary error response: 404, 409, 429...).
 * body is taken (zeroed) on success and on failure. */
int api_exec_stream_start(struct manager *m, const char *id, struct api_exec_body *body,
			  enum api_events_format fmt, struct api_exec_stream **out,
			  struct ember_error **err);

/* What a caller must undo in the guest once the exec is over, before the client hears so:
 * fn(arg) runs on the stream's worker after the exec and before the last event is made (so a
 * client that waits for the end never sees the exec's effect still in place), then
 * free_arg(arg). Used by the E2B interpreter to restore a cell's env_vars. */
struct api_exec_after {
	void (*fn)(struct manager *m, const char *id, void *arg);
	void (*free_arg)(void *arg);
	void *arg;
};

/* api_exec_stream_start() with after (taken on success and on failure; NULL: none). */
int api_exec_stream_start_after(struct manager *m, const char *id, struct api_exec_body *body,
				enum api_events_format fmt, const struct api_exec_after *after,
				struct api_exec_stream **out, struct ember_error **err);

/* A background process's output as the same events (GET .../processes/{pid}/output): what its
 * rings hold, then (follow) what comes until it ends; the last event is "exit" (or "running"
 * without follow while it runs, or "error"). Takes the procs reference. */
int api_exec_stream_follow(struct procs *procs, int32_t pid, bool follow,
			   enum api_events_format fmt, struct api_exec_stream **out,
			   struct ember_error **err);

/* A follow with more choices (the E2B face's process streams use them). */
struct api_follow_options {
	bool follow;
	bool from_now;             /* skip what the rings hold now: only later output */
	bool start_event;          /* a first "start" event {"pid": pid} */
	unsigned keepalive_ms;     /* > 0: a "keepalive" event after that long without one */
};
int api_exec_stream_follow_with(struct procs *procs, int32_t pid,
				const struct api_follow_options *opts, enum api_events_format fmt,
				struct api_exec_stream **out, struct ember_error **err);

/* The client connection's socket, polled for a hang-up while no output comes. */
void api_exec_stream_set_client_fd(struct api_exec_stream *s, int fd);

/* Up to max bytes of event text into buf; blocks until some is there. 0: the last event is
 * out; -1: the client is gone (the exec is being cancelled). */
ssize_t api_exec_stream_read(struct api_exec_stream *s, char *buf, size_t max);

/* true once the last event has been produced (the exec is over; some text may still be
 * waiting to be read). Consumer's thread only. */
bool api_exec_stream_ended(const struct api_exec_stream *s);

/* The consumer is done (finished or gone): cancels the exec if it still runs; frees once the
 * worker is done too. NULL is fine. */
void api_exec_stream_release(struct api_exec_stream *s);

/* Waits until every worker thread has ended (the server's shutdown, after its connections). */
void api_exec_stream_drain(void);

#endif
