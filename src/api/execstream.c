/* execstream.c - streamed exec: worker thread, bounded chunk queue with credit, event text. */
#include "api/execstream.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/encode.h"
#include "channel/channel.h"
#include "proto/credit.h"
#include "proto/frame.h"
#include "util/sync.h"
#include "util/timeutil.h"

/* Bytes of output turned into one event at most: bounds the text held per stream. */
#define EXECSTREAM_EVENT_BYTES (16u * 1024u)
/* Output a follower keeps queued for its client: a slow client makes it skip what the ring
 * dropped meanwhile, never stalls the process. */
#define EXECSTREAM_FOLLOW_QUEUE (64u * 1024u)
/* How often a consumer waiting for output checks whether its client hung up. */
#define EXECSTREAM_HANGUP_CHECK_MS 100

struct chunk {
	struct chunk *next;
	uint8_t type;         /* PROTO_STDOUT / PROTO_STDERR */
	size_t len, off;
	uint8_t data[];
};

struct api_exec_stream {
	pthread_mutex_t lock;
	pthread_cond_t cond;  /* monotonic; broadcast on every change below */
	int refs;             /* the worker's and the consumer's */
	enum api_events_format fmt;
	struct channel_sink sink;
	/* guarded by lock */
	struct chunk *head, *tail;
	size_t queued;        /* output bytes in the chunks */
	struct proto_credit_window credit;
	bool paced;
	bool started;         /* the EXEC went out */
	bool channel_done;    /* the channel is done with the request */
	bool finished;        /* the worker is done: final holds the last event */
	bool consumer_gone;
	struct ember_error *early_error; /* failed before starting */
	struct buf final;
	/* the consumer's own */
	struct buf text;
	size_t text_off;
	struct api_utf8_carry carry[2];
	bool eof;
	int client_fd;
	unsigned keepalive_ms;  /* > 0: a "keepalive" event after that long without text */
	int64_t last_text_ms;   /* when the consumer last got an event */
	/* the worker's own */
	struct manager *manager;
	char id[PROTO_ID_MAX + 1];
	struct api_exec_body body;
	struct api_exec_after after;
	/* a follower's own (api_exec_stream_follow) */
	struct procs *procs;
	int32_t pid;
	bool follow;
	uint64_t pos[2];        /* where the follower reads on (procs_read) */
};

static pthread_mutex_t workers_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t workers_cond = PTHREAD_COND_INITIALIZER;
static unsigned workers;

static void worker_exit(void);
static int enqueue_locked(struct api_exec_stream *s, uint8_t type, const uint8_t *data,
			  size_t len);

static void stream_unref(struct api_exec_stream *s)
{
	int refs;

	pthread_mutex_lock(&s->lock);
	refs = --s->refs;
	pthread_mutex_unlock(&s->lock);
	if (refs > 0)
		return;
	while (s->head != NULL) {
		struct chunk *c = s->head;

		s->head = c->next;
		free(c);
	}
	ember_error_free(&s->early_error);
	procs_unref(s->procs);
	buf_release(&s->final);
	buf_release(&s->text);
	api_exec_body_release(&s->body);
	if (s->after.free_arg != NULL)
		s->after.free_arg(s->after.arg);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Appends a chunk of output for the consumer (lock held); -1 when out of memory. */
static int enqueue_locked(struct api_exec_stream *s, uint8_t type, const uint8_t *data,
			  size_t len)
{
	struct chunk *c = malloc(sizeof(*c) + len);

	if (c == NULL)
		return -1;
	c->next = NULL;
	c->type = type;
	c->len = len;
	c->off = 0;
	memcpy(c->data, data, len);
	if (s->tail != NULL)
		s->tail->next = c;
	else
		s->head = c;
	s->tail = c;
	s->queued += len;
	pthread_cond_broadcast(&s->cond);
	return 0;
}

/* --- the channel's side (reader thread, channel lock held) --- */

static int sink_output(void *ctx, uint8_t type, const uint8_t *data, size_t len,
		       struct ember_error **err)
{
	struct api_exec_stream *s = ctx;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	if (s->paced && proto_credit_window_received(&s->credit, len, err) < 0) {
		ret = ember_error_wrap(err, "guest output for a streamed exec");
		goto out;
	}
	if (s->consumer_gone || len == 0) {
		proto_credit_window_consumed(&s->credit, len);
		goto out;
	}
	if (enqueue_locked(s, type, data, len) < 0) /* dropped, like a buffered exec's output on
						       * a failed allocation */
		proto_credit_window_consumed(&s->credit, len);
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static void sink_done(void *ctx)
{
	struct api_exec_stream *s = ctx;

	pthread_mutex_lock(&s->lock);
	s->channel_done = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* --- the worker's side --- */

static void sink_started(void *ctx, bool paced)
{
	struct api_exec_stream *s = ctx;

	pthread_mutex_lock(&s->lock);
	s->started = true;
	s->paced = paced;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void sink_wait(void *ctx, int64_t deadline_ms, uint32_t *grant, bool *cancel)
{
	struct api_exec_stream *s = ctx;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		*grant = s->paced ? proto_credit_window_grant(&s->credit) : 0;
		if (*grant > 0 || s->channel_done || s->consumer_gone)
			break;
		if (!cond_wait_until(&s->cond, &s->lock, deadline_ms))
			break;
	}
	*cancel = s->consumer_gone;
	pthread_mutex_unlock(&s->lock);
}

/* The last event: exit with the result's fields, or error. */
static void finish(struct api_exec_stream *s, int ret, const struct channel_exec_result *res,
		   struct ember_error *err)
{
	struct ember_error *eerr = NULL;
	json_t *members;

	pthread_mutex_lock(&s->lock);
	if (!s->started) {
		s->early_error = err;
		err = NULL;
	} else if (ret == 0) {
		members = api_encode_exit(&res->exit);
		if (api_events_object(&s->final, s->fmt, "exit", members, &eerr) < 0)
			ember_error_free(&eerr);
		json_decref(members);
	} else {
		members = api_encode_error(ember_error_kind_name(err->kind), err->message);
		if (api_events_object(&s->final, s->fmt, "error", members, &eerr) < 0)
			ember_error_free(&eerr);
		json_decref(members);
	}
	s->finished = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	ember_error_free(&err);
}

static void *worker_main(void *arg)
{
	struct api_exec_stream *s = arg;
	struct channel_exec_result res = { 0 };
	struct sandbox_exec_request exec = {
		.code = s->body.code,
		.code_len = s->body.code_len,
		.has_stdin = s->body.has_stdin,
		.stdin_data = (const uint8_t *)s->body.stdin_text,
		.stdin_len = s->body.stdin_len,
		.timeout_ms = s->body.timeout_ms,
		.env = s->body.env,
		.envc = s->body.envc,
		.has_max_output = s->body.has_max_output,
		.max_output_bytes = s->body.max_output_bytes,
		.sink = &s->sink,
		.context_id = s->body.context_id,
		.fresh_interpreter = s->body.fresh_interpreter,
	};
	struct ember_error *err = NULL;
	bool started;
	int ret;

	ret = manager_exec(s->manager, s->id, &exec, &res, &err);
	pthread_mutex_lock(&s->lock);
	started = s->started;
	pthread_mutex_unlock(&s->lock);
	if (s->after.fn != NULL && started) /* not started: the caller gets the error, and undoes */
		s->after.fn(s->manager, s->id, s->after.arg);
	finish(s, ret, &res, ret < 0 ? err : NULL);
	channel_exec_result_release(&res);
	stream_unref(s);
	worker_exit();
	return NULL;
}

static struct api_exec_stream *stream_new(struct manager *m, const char *id,
					  struct api_exec_body *body, enum api_events_format fmt)
{
	struct api_exec_stream *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	pthread_mutex_init(&s->lock, NULL);
	cond_init_monotonic(&s->cond);
	s->refs = 2;
	s->fmt = fmt;
	s->client_fd = -1;
	s->manager = m;
	snprintf(s->id, sizeof(s->id), "%s", id);
	s->body = *body;
	memset(body, 0, sizeof(*body));
	/* Unpaced (a version-1 guest) until started() says otherwise. */
	proto_credit_window_init(&s->credit, PROTO_CREDIT_WINDOW);
	s->sink = (struct channel_sink){
		.ctx = s, .output = sink_output, .done = sink_done,
		.started = sink_started, .wait = sink_wait,
	};
	return s;
}

static void worker_exit(void)
{
	pthread_mutex_lock(&workers_lock);
	workers--;
	pthread_cond_broadcast(&workers_cond);
	pthread_mutex_unlock(&workers_lock);
}

/* Starts s's worker (detached, counted for api_exec_stream_drain()); on failure s goes. */
static int spawn_worker(struct api_exec_stream *s, void *(*fn)(void *), struct ember_error **err)
{
	pthread_attr_t attr;
	pthread_t thread;
	int ret;

	pthread_mutex_lock(&workers_lock);
	workers++;
	pthread_mutex_unlock(&workers_lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = pthread_create(&thread, &attr, fn, s);
	pthread_attr_destroy(&attr);
	if (ret != 0) {
		worker_exit();
		s->refs = 1;
		stream_unref(s);
		return ember_error_set(err, EMBER_E_INTERNAL, ret, "cannot start a stream thread");
	}
	return 0;
}

int api_exec_stream_start(struct manager *m, const char *id, struct api_exec_body *body,
			  enum api_events_format fmt, struct api_exec_stream **out,
			  struct ember_error **err)
{
	return api_exec_stream_start_after(m, id, body, fmt, NULL, out, err);
}

int api_exec_stream_start_after(struct manager *m, const char *id, struct api_exec_body *body,
				enum api_events_format fmt, const struct api_exec_after *after,
				struct api_exec_stream **out, struct ember_error **err)
{
	struct api_exec_stream *s = stream_new(m, id, body, fmt);

	if (s == NULL) {
		api_exec_body_release(body);
		if (after != NULL && after->free_arg != NULL)
			after->free_arg(after->arg);
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	if (after != NULL)
		s->after = *after;
	if (spawn_worker(s, worker_main, err) < 0)
		return -1;
	pthread_mutex_lock(&s->lock);
	while (!s->started && !s->finished)
		cond_wait_until(&s->cond, &s->lock, -1);
	if (!s->started) {
		ember_error_propagate(err, s->early_error);
		s->early_error = NULL;
		pthread_mutex_unlock(&s->lock);
		stream_unref(s);
		return -1;
	}
	pthread_mutex_unlock(&s->lock);
	*out = s;
	return 0;
}

/* --- a follower of a background process --- */

/* Waits until the consumer took enough of the queue for another event's bytes; false when the
 * consumer left. */
static bool follow_room(struct api_exec_stream *s)
{
	bool gone;

	pthread_mutex_lock(&s->lock);
	while (s->queued >= EXECSTREAM_FOLLOW_QUEUE && !s->consumer_gone)
		cond_wait_until(&s->cond, &s->lock, -1);
	gone = s->consumer_gone;
	pthread_mutex_unlock(&s->lock);
	return !gone;
}

/* The last event of a follow: "exit" (the process's end) or, read without follow while it still
 * runs, "running"; both carry the process's fields. Or an "error" event. */
static void follow_finish(struct api_exec_stream *s, const struct procs_info *info,
			  struct ember_error *err)
{
	struct ember_error *eerr = NULL;
	json_t *members = err != NULL ? api_encode_error(ember_error_kind_name(err->kind),
							 err->message)
				      : api_encode_background(info);
	const char *type = err != NULL ? "error"
				       : info->state == PROCS_EXITED ? "exit" : "running";

	pthread_mutex_lock(&s->lock);
	if (api_events_object(&s->final, s->fmt, type, members, &eerr) < 0)
		ember_error_free(&eerr);
	s->finished = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	json_decref(members);
	ember_error_free(&err);
}

static void *follow_main(void *arg)
{
	struct api_exec_stream *s = arg;
	uint8_t buf[EXECSTREAM_EVENT_BYTES];
	struct procs_info info = { 0 };
	struct ember_error *err = NULL;
	uint64_t *pos = s->pos;

	while (follow_room(s)) {
		int64_t deadline = s->follow ? time_mono_ms() + EXECSTREAM_HANGUP_CHECK_MS : 0;
		bool ended;
		size_t n;
		int stream;

		if (procs_read(s->procs, s->pid, pos, buf, sizeof(buf), &stream, &n, &ended, &info,
			       deadline, &err) < 0) {
			follow_finish(s, NULL, err);
			break;
		}
		if (n > 0) {
			pthread_mutex_lock(&s->lock);
			enqueue_locked(s, stream == 0 ? PROTO_STDOUT : PROTO_STDERR, buf, n);
			pthread_mutex_unlock(&s->lock);
		} else if (ended || !s->follow) {
			if (!ended && procs_get(s->procs, s->pid, &info, NULL, NULL, &err) < 0)
				info.state = PROCS_RUNNING;
			ember_error_free(&err);
			follow_finish(s, &info, NULL);
			break;
		}
	}
	stream_unref(s);
	worker_exit();
	return NULL;
}

int api_exec_stream_follow(struct procs *procs, int32_t pid, bool follow,
			   enum api_events_format fmt, struct api_exec_stream **out,
			   struct ember_error **err)
{
	struct api_follow_options opts = { .follow = follow };

	return api_exec_stream_follow_with(procs, pid, &opts, fmt, out, err);
}

/* Where a follower from now starts: what each ring holds so far is behind it. */
static void follow_from_now(struct api_exec_stream *s)
{
	struct ember_error *err = NULL;
	struct procs_info info;

	if (procs_get(s->procs, s->pid, &info, NULL, NULL, &err) < 0) {
		ember_error_free(&err); /* gone meanwhile: the worker's first read says so */
		return;
	}
	s->pos[0] = info.total[0];
	s->pos[1] = info.total[1];
}

int api_exec_stream_follow_with(struct procs *procs, int32_t pid,
				const struct api_follow_options *opts, enum api_events_format fmt,
				struct api_exec_stream **out, struct ember_error **err)
{
	struct api_exec_body none = { 0 };
	struct api_exec_stream *s = stream_new(NULL, "", &none, fmt);
	json_t *start;

	if (s == NULL) {
		procs_unref(procs);
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	s->procs = procs;
	s->pid = pid;
	s->follow = opts->follow;
	s->keepalive_ms = opts->keepalive_ms;
	s->last_text_ms = time_mono_ms();
	s->started = true;
	if (opts->from_now)
		follow_from_now(s);
	if (opts->start_event) { /* the consumer's text, before any worker runs */
		start = json_pack("{s:i}", "pid", (int)pid);
		if (start == NULL || api_events_object(&s->text, fmt, "start", start, err) < 0) {
			json_decref(start);
			s->refs = 1;
			stream_unref(s);
			return start == NULL ? ember_error_oom(err) : -1;
		}
		json_decref(start);
	}
	if (spawn_worker(s, follow_main, err) < 0)
		return -1;
	*out = s;
	return 0;
}

void api_exec_stream_set_client_fd(struct api_exec_stream *s, int fd)
{
	s->client_fd = fd;
}

/* The client closed its end (or the socket failed): nobody reads the events any more. */
static bool client_hung_up(const struct api_exec_stream *s)
{
	struct pollfd p = { .fd = s->client_fd, .events = POLLRDHUP };

	if (s->client_fd < 0)
		return false;
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/* Takes up to EXECSTREAM_EVENT_BYTES of the first chunk into text as an event (lock held). */
static int take_chunk_locked(struct api_exec_stream *s, struct ember_error **err)
{
	struct chunk *c = s->head;
	size_t n = c->len - c->off < EXECSTREAM_EVENT_BYTES ? c->len - c->off
							     : EXECSTREAM_EVENT_BYTES;
	int i = c->type == PROTO_STDOUT ? 0 : 1;
	int ret = api_events_output(&s->text, s->fmt, i == 0 ? "stdout" : "stderr", &s->carry[i],
				    c->data + c->off, n, false, err);

	c->off += n;
	s->queued -= n;
	proto_credit_window_consumed(&s->credit, n);
	if (c->off == c->len) {
		s->head = c->next;
		if (s->head == NULL)
			s->tail = NULL;
		free(c);
	}
	pthread_cond_broadcast(&s->cond); /* the worker may grant credit now */
	return ret;
}

/* The end: what the carries still hold, then the exit or error event (lock held). */
static int take_final_locked(struct api_exec_stream *s, struct ember_error **err)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (s->carry[i].len > 0 &&
		    api_events_output(&s->text, s->fmt, i == 0 ? "stdout" : "stderr", &s->carry[i],
				      NULL, 0, true, err) < 0)
			return -1;
	}
	if (buf_append(&s->text, s->final.data, s->final.len) < 0)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	s->eof = true;
	return 0;
}

/* Waits until there is a chunk or the end, and turns it into text. -1: the client left. */
static int refill(struct api_exec_stream *s)
{
	struct ember_error *err = NULL;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	while (s->head == NULL && !s->finished) {
		int64_t until = time_mono_ms() + EXECSTREAM_HANGUP_CHECK_MS;

		if (!cond_wait_until(&s->cond, &s->lock, until) && client_hung_up(s)) {
			ret = -1;
			goto out;
		}
		if (s->keepalive_ms > 0 && time_mono_ms() - s->last_text_ms >= s->keepalive_ms) {
			ret = api_events_object(&s->text, s->fmt, "keepalive", NULL, &err);
			s->last_text_ms = time_mono_ms();
			goto out;
		}
	}
	s->last_text_ms = time_mono_ms();
	if (s->head != NULL)
		ret = take_chunk_locked(s, &err);
	else
		ret = take_final_locked(s, &err);
out:
	pthread_mutex_unlock(&s->lock);
	if (err != NULL) {
		fprintf(stderr, "emberd: streamed exec: %s\n", err->message);
		ember_error_free(&err);
	}
	return ret;
}

ssize_t api_exec_stream_read(struct api_exec_stream *s, char *buf, size_t max)
{
	for (;;) {
		if (s->text_off < s->text.len) {
			size_t n = s->text.len - s->text_off < max ? s->text.len - s->text_off : max;

			memcpy(buf, s->text.data + s->text_off, n);
			s->text_off += n;
			if (s->text_off == s->text.len)
				s->text_off = s->text.len = 0;
			return (ssize_t)n;
		}
		if (s->eof)
			return 0;
		if (refill(s) < 0)
			return -1;
	}
}

bool api_exec_stream_ended(const struct api_exec_stream *s)
{
	return s->eof;
}

void api_exec_stream_release(struct api_exec_stream *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->consumer_gone = true;
	while (s->head != NULL) { /* nobody will read it: give the credit back */
		struct chunk *c = s->head;

		s->head = c->next;
		proto_credit_window_consumed(&s->credit, c->len - c->off);
		free(c);
	}
	s->tail = NULL;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	stream_unref(s);
}

void api_exec_stream_drain(void)
{
	pthread_mutex_lock(&workers_lock);
	while (workers > 0)
		pthread_cond_wait(&workers_cond, &workers_lock);
	pthread_mutex_unlock(&workers_lock);
}
