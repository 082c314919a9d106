/* procs.c - background processes: table, rings, one thread per process (interface: procs.h).
 *
 * Locking: one mutex per table guards the list and every process in it; its condition variable
 * is broadcast on every change (output, STARTED, an end, close). The channel's reader thread
 * calls the sinks with the channel's lock held and takes this lock inside it, so this lock is
 * never held while calling into the channel. A process's thread never takes the lock again after
 * it marked itself done: whoever removes the entry may join it under the lock.
 *
 * Cost: one condition for the whole table, so an output frame wakes every waiter of the sandbox
 * (at most 32 process threads and the followers), each of which rechecks and sleeps again;
 * cheap next to the 64 KiB copy that caused it, and it keeps the wait logic in one place. */
#include "sandbox/procs.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/credit.h"
#include "proto/frame.h"
#include "util/cleanup.h"
#include "util/sync.h"
#include "util/timeutil.h"

/* A process thread only runs channel_exec(): a small stack is plenty. */
#define PROCS_THREAD_STACK (256u * 1024u)
/* How long a start waits for the guest's STARTED before it gives up on the process (CANCEL,
 * 504): a spawn takes milliseconds, seconds on a loaded emulated guest, never a minute. */
#define PROCS_START_TIMEOUT_MS 60000

struct ring {
	uint8_t *buf;
	size_t cap;       /* grows up to PROCS_RING_BYTES as output comes */
	size_t start;
	size_t len;
	uint64_t total;   /* bytes ever appended; total - len were dropped */
};

struct process {
	struct process *next;            /* the table's list, oldest first */
	struct procs *table;
	struct channel *ch;
	struct channel_sink sink;
	struct channel_exec_request req; /* points at the owned copies below */
	char **argv;
	char **env;
	char *code;
	char *cwd;
	pthread_t thread;
	bool thread_started;
	bool joined;
	bool thread_done;                /* past its last use of the lock */
	bool running;                    /* STARTED seen: pid and exec_id are valid */
	bool channel_done;
	bool abandoned;                  /* its start timed out: CANCEL it, report 504 */
	bool awaited;                    /* its starter is still in await_started: keep it */
	int64_t kill_at_ms;              /* its timeout's end (monotonic), -1: none */
	bool expired;                    /* past kill_at_ms: CANCEL it (the guest kills it) */
	uint32_t exec_id;
	struct proto_credit_window credit;
	struct ring ring[2];
	struct procs_info info;
	struct ember_error *start_error; /* failed before STARTED */
};

struct procs {
	pthread_mutex_t lock;
	pthread_cond_t cond;             /* monotonic */
	int refs;
	bool closed;
	unsigned live;                   /* threads not yet done */
	unsigned running;                /* processes counted against PROCS_MAX_RUNNING */
	struct process *list;
};

/* --- rings --- */

/* Makes room for n more bytes (n <= PROCS_RING_BYTES): grows first, then drops the oldest. */
static void ring_reserve(struct ring *r, size_t n)
{
	if (r->len + n > r->cap && r->cap < PROCS_RING_BYTES) {
		size_t cap = r->cap > 0 ? r->cap : 4096, i;
		uint8_t *buf;

		while (cap < r->len + n && cap < PROCS_RING_BYTES)
			cap *= 2;
		if (cap > PROCS_RING_BYTES)
			cap = PROCS_RING_BYTES;
		buf = malloc(cap);
		if (buf != NULL) { /* out of memory: the old ring drops more, that is all */
			for (i = 0; i < r->len; i++)
				buf[i] = r->buf[(r->start + i) % r->cap];
			free(r->buf);
			r->buf = buf;
			r->cap = cap;
			r->start = 0;
		}
	}
	if (r->len + n > r->cap) {
		size_t drop = r->len + n - r->cap;

		if (drop > r->len)
			drop = r->len;
		r->start = r->cap > 0 ? (r->start + drop) % r->cap : 0;
		r->len -= drop;
	}
}

static void ring_append(struct ring *r, const uint8_t *data, size_t n)
{
	size_t at, first;

	r->total += n;
	if (n > PROCS_RING_BYTES) {
		data += n - PROCS_RING_BYTES;
		n = PROCS_RING_BYTES;
	}
	ring_reserve(r, n);
	if (r->len + n > r->cap) /* could not grow and holds less than n: keep the newest */
		n = r->cap - r->len;
	if (n == 0)
		return;
	at = (r->start + r->len) % r->cap;
	first = r->cap - at < n ? r->cap - at : n;
	memcpy(r->buf + at, data, first);
	memcpy(r->buf, data + first, n - first);
	r->len += n;
}

/* Copies up to max bytes from absolute position pos (>= total - len) into out. */
static size_t ring_copy(const struct ring *r, uint64_t pos, uint8_t *out, size_t max)
{
	uint64_t first_pos = r->total - r->len;
	size_t off = (size_t)(pos - first_pos), n = r->len - off, i;

	if (n > max)
		n = max;
	for (i = 0; i < n; i++)
		out[i] = r->buf[(r->start + off + i) % r->cap];
	return n;
}

static void info_update_locked(struct process *p)
{
	int i;

	for (i = 0; i < 2; i++) {
		p->info.total[i] = p->ring[i].total;
		p->info.dropped[i] = p->ring[i].total - p->ring[i].len;
	}
}

/* --- process entries --- */

static void strv_free(char **v)
{
	size_t i;

	for (i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

static char **strv_copy(char *const *v, size_t n)
{
	char **out = calloc(n + 1, sizeof(*out));
	size_t i;

	for (i = 0; out != NULL && i < n; i++) {
		out[i] = strdup(v[i]);
		if (out[i] == NULL) {
			strv_free(out);
			return NULL;
		}
	}
	return out;
}

static void process_free(struct process *p)
{
	if (p == NULL)
		return;
	strv_free(p->argv);
	strv_free(p->env);
	free(p->code);
	free(p->cwd);
	free(p->ring[0].buf);
	free(p->ring[1].buf);
	ember_error_free(&p->start_error);
	free(p);
}

/* Owned copies of everything req points at; the thread runs past the caller's request. */
static int process_copy_request(struct process *p, const struct channel_exec_request *req,
				struct ember_error **err)
{
	p->req = *req;
	p->argv = strv_copy(req->argv, req->argc);
	p->env = strv_copy(req->env, req->envc);
	p->code = malloc(req->code_len + 1);
	p->cwd = req->cwd != NULL ? strdup(req->cwd) : NULL;
	if (p->argv == NULL || p->env == NULL || p->code == NULL ||
	    (req->cwd != NULL && p->cwd == NULL))
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	memcpy(p->code, req->code, req->code_len);
	p->code[req->code_len] = '\0';
	p->req.argv = p->argv;
	p->req.env = p->env;
	p->req.code = p->code;
	p->req.cwd = p->cwd;
	p->req.stdin_data = NULL;
	p->req.stdin_len = 0;
	p->req.background = true;
	p->req.sink = &p->sink;
	return 0;
}

static struct process *find_locked(struct procs *t, int32_t pid)
{
	struct process *p;

	for (p = t->list; p != NULL; p = p->next) {
		if (p->running && p->info.pid == pid)
			return p;
	}
	return NULL;
}

/* Unlinks p (whose thread is done or never started), joins its thread and frees it. */
static void remove_locked(struct procs *t, struct process *p)
{
	struct process **pp;

	for (pp = &t->list; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	if (p->thread_started && !p->joined)
		pthread_join(p->thread, NULL);
	process_free(p);
}

/* Forgets the oldest finished processes beyond PROCS_MAX_FINISHED (never keep, still used by
 * its own thread). */
static void trim_finished_locked(struct procs *t, struct process *keep)
{
	struct process *p;
	unsigned finished = 0;

	for (p = t->list; p != NULL; p = p->next)
		finished += p->info.state == PROCS_EXITED && p->thread_done;
	while (finished > PROCS_MAX_FINISHED) {
		for (p = t->list; p != NULL; p = p->next) {
			if (p != keep && !p->awaited && p->info.state == PROCS_EXITED &&
			    p->thread_done)
				break;
		}
		if (p == NULL)
			return;
		remove_locked(t, p);
		finished--;
	}
}

/* --- the channel's side (reader thread, channel lock held: must not block) --- */

static int sink_output(void *ctx, uint8_t type, const uint8_t *data, size_t len,
		       struct ember_error **err)
{
	struct process *p = ctx;
	struct procs *t = p->table;
	int ret = 0;

	pthread_mutex_lock(&t->lock);
	if (proto_credit_window_received(&p->credit, len, err) < 0) {
		ret = ember_error_wrap(err, "guest output for a background process");
	} else {
		ring_append(&p->ring[type == PROTO_STDOUT ? 0 : 1], data, len);
		/* Taken into the ring at once: the program never waits for the host. */
		proto_credit_window_consumed(&p->credit, len);
		info_update_locked(p);
		pthread_cond_broadcast(&t->cond);
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

static void sink_done(void *ctx)
{
	struct process *p = ctx;

	pthread_mutex_lock(&p->table->lock);
	p->channel_done = true;
	pthread_cond_broadcast(&p->table->cond);
	pthread_mutex_unlock(&p->table->lock);
}

static void sink_running(void *ctx, uint32_t exec_id, int32_t guest_pid)
{
	struct process *p = ctx;

	pthread_mutex_lock(&p->table->lock);
	p->exec_id = exec_id;
	p->info.pid = guest_pid;
	p->running = true;
	pthread_cond_broadcast(&p->table->cond);
	pthread_mutex_unlock(&p->table->lock);
}

/* --- the process thread's side --- */

static void sink_started(void *ctx, bool paced)
{
	(void)ctx;
	(void)paced; /* version 3 is always paced */
}

static void sink_wait(void *ctx, int64_t deadline_ms, uint32_t *grant, bool *cancel)
{
	struct process *p = ctx;
	struct procs *t = p->table;
	int64_t until = deadline_ms;

	pthread_mutex_lock(&t->lock);
	/* Until its timeout (once: then the CANCEL is out and only the exit is awaited). */
	if (!p->expired && p->kill_at_ms >= 0 && (until < 0 || p->kill_at_ms < until))
		until = p->kill_at_ms;
	for (;;) {
		*grant = proto_credit_window_grant(&p->credit);
		if (*grant > 0 || p->channel_done || p->abandoned)
			break;
		if (!p->expired && p->kill_at_ms >= 0 && time_mono_ms() >= p->kill_at_ms) {
			p->expired = true;
			break;
		}
		if (!cond_wait_until(&t->cond, &t->lock, until) && until == deadline_ms)
			break;
	}
	/* A process ends by itself, a signal or the sandbox's end; only a start that timed out
	 * or a timeout of its own cancels it. */
	*cancel = p->abandoned || p->expired;
	pthread_mutex_unlock(&t->lock);
}

/* The outcome, recorded once channel_exec() returned. */
static void record_end_locked(struct process *p, int ret, const struct channel_exec_result *res,
			      struct ember_error **err)
{
	p->info.state = PROCS_EXITED;
	p->info.ended_wall_ns = time_wall_ns();
	p->info.stdin_open = false;
	if (ret == 0) {
		p->info.exit = res->exit;
		p->info.exit.timed_out = p->info.exit.timed_out || p->expired;
	} else if (!p->running) {
		p->start_error = *err;
		*err = NULL;
	} else {
		p->info.lost = true;
		snprintf(p->info.error, sizeof(p->info.error), "%s",
			 *err != NULL ? (*err)->message : "the exec failed");
	}
	info_update_locked(p);
}

static void *process_main(void *arg)
{
	struct process *p = arg;
	struct procs *t = p->table;
	struct channel_exec_result res = { 0 };
	struct ember_error *err = NULL;
	int ret = channel_exec(p->ch, &p->req, &res, &err);

	pthread_mutex_lock(&t->lock);
	record_end_locked(p, ret, &res, &err);
	t->running--;
	t->live--;
	p->thread_done = true;
	if (p->running)
		trim_finished_locked(t, p);
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	channel_exec_result_release(&res);
	ember_error_free(&err);
	return NULL;
}

/* --- the table --- */

int procs_new(struct procs **out, struct ember_error **err)
{
	struct procs *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	pthread_mutex_init(&t->lock, NULL);
	cond_init_monotonic(&t->cond);
	t->refs = 1;
	*out = t;
	return 0;
}

void procs_ref(struct procs *t)
{
	pthread_mutex_lock(&t->lock);
	t->refs++;
	pthread_mutex_unlock(&t->lock);
}

void procs_unref(struct procs *t)
{
	int refs;

	if (t == NULL)
		return;
	pthread_mutex_lock(&t->lock);
	refs = --t->refs;
	pthread_mutex_unlock(&t->lock);
	if (refs > 0)
		return;
	/* The last reference goes after procs_close() (the manager's is the last to be taken
	 * away only then), so every thread is joined. */
	while (t->list != NULL) {
		struct process *p = t->list;

		t->list = p->next;
		if (p->thread_started && !p->joined)
			pthread_join(p->thread, NULL);
		process_free(p);
	}
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* A new entry in the table, counted as running; NULL with err when full or closed. */
static struct process *admit_locked(struct procs *t, struct ember_error **err)
{
	struct process *p, **pp;

	if (t->closed) {
		ember_error_set(err, EMBER_E_CONFLICT, 0, "the sandbox is being destroyed");
		return NULL;
	}
	if (t->running >= PROCS_MAX_RUNNING) {
		ember_error_set(err, EMBER_E_CAPACITY, 0,
				"%u background processes already run in this sandbox",
				PROCS_MAX_RUNNING);
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
		return NULL;
	}
	p->table = t;
	p->awaited = true;
	for (pp = &t->list; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = p;
	t->running++;
	return p;
}

/* Starts p's thread; on failure p is unlinked and freed. */
static int launch(struct procs *t, struct process *p, struct ember_error **err)
{
	pthread_attr_t attr;
	int ret;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, PROCS_THREAD_STACK);
	pthread_mutex_lock(&t->lock);
	ret = pthread_create(&p->thread, &attr, process_main, p);
	if (ret == 0) {
		p->thread_started = true;
		t->live++;
	} else {
		t->running--;
		remove_locked(t, p);
	}
	pthread_mutex_unlock(&t->lock);
	pthread_attr_destroy(&attr);
	if (ret != 0)
		return ember_error_set(err, EMBER_E_INTERNAL, ret, "cannot start a process thread");
	return 0;
}

/* Waits for STARTED or the end; on a failed start the entry goes and its error is returned. */
static int await_started(struct procs *t, struct process *p, struct procs_info *info,
			 struct ember_error **err)
{
	int64_t deadline = time_mono_ms() + PROCS_START_TIMEOUT_MS;
	struct process *q;
	int ret = 0;

	pthread_mutex_lock(&t->lock);
	/* Once abandoned, only the thread's end (the channel's CANCEL grace bounds it) counts. */
	while (!p->thread_done && (!p->running || p->abandoned)) {
		if (!cond_wait_until(&t->cond, &t->lock, p->abandoned ? -1 : deadline) &&
		    !p->abandoned) {
			p->abandoned = true;
			pthread_cond_broadcast(&t->cond); /* sink_wait: CANCEL */
		}
	}
	if (p->abandoned) {
		ret = ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
				      "the guest did not start the process within %d s",
				      PROCS_START_TIMEOUT_MS / 1000);
		remove_locked(t, p);
	} else if (!p->running) {
		if (p->start_error != NULL) /* a guest that exits without STARTED has none */
			ret = ember_error_propagate(err, steal_pointer(&p->start_error));
		else
			ret = ember_error_set(err, EMBER_E_GUEST, 0,
					      "the guest ended the process without starting it");
		remove_locked(t, p);
	} else {
		/* A finished entry of a reused guest pid would shadow this one. */
		for (q = t->list; q != NULL; q = q->next) {
			if (q != p && !q->awaited && q->running && q->info.pid == p->info.pid &&
			    q->thread_done)
				break;
		}
		if (q != NULL)
			remove_locked(t, q);
		*info = p->info;
		p->awaited = false;
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int procs_start(struct procs *t, struct channel *ch, const struct channel_exec_request *req,
		const char *tag, uint32_t timeout_ms, struct procs_info *info,
		struct ember_error **err)
{
	struct process *p;
	int ret = 0;

	/* Filled while the lock is held: the entry is in the list, where readers look. */
	pthread_mutex_lock(&t->lock);
	p = admit_locked(t, err);
	if (p == NULL) {
		pthread_mutex_unlock(&t->lock);
		return -1;
	}
	p->ch = ch;
	p->info.state = PROCS_RUNNING;
	p->info.started_wall_ns = time_wall_ns();
	p->info.stdin_open = req->has_stdin;
	p->kill_at_ms = timeout_ms > 0 ? time_mono_ms() + (int64_t)timeout_ms : -1;
	snprintf(p->info.tag, sizeof(p->info.tag), "%s", tag != NULL ? tag : "");
	/* The guest may send the initial window before the first CREDIT (protocol.md). */
	proto_credit_window_init(&p->credit, PROTO_CREDIT_WINDOW);
	p->sink = (struct channel_sink){
		.ctx = p, .output = sink_output, .done = sink_done, .started = sink_started,
		.wait = sink_wait, .running = sink_running,
	};
	if (process_copy_request(p, req, err) < 0) {
		t->running--;
		remove_locked(t, p);
		ret = -1;
	}
	pthread_mutex_unlock(&t->lock);
	if (ret < 0)
		return -1;
	if (launch(t, p, err) < 0)
		return -1;
	return await_started(t, p, info, err);
}

int procs_list(struct procs *t, struct procs_info **infos, size_t *count,
	       struct ember_error **err)
{
	struct process *p;
	size_t n = 0;

	pthread_mutex_lock(&t->lock);
	for (p = t->list; p != NULL; p = p->next)
		n += p->running;
	*infos = calloc(n + 1, sizeof(**infos));
	if (*infos == NULL) {
		pthread_mutex_unlock(&t->lock);
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	n = 0;
	for (p = t->list; p != NULL; p = p->next) {
		if (p->running)
			(*infos)[n++] = p->info;
	}
	pthread_mutex_unlock(&t->lock);
	*count = n;
	return 0;
}

static int not_found(int32_t pid, struct ember_error **err)
{
	return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no background process %d", (int)pid);
}

int procs_get(struct procs *t, int32_t pid, struct procs_info *info, uint8_t *out[2],
	      size_t len[2], struct ember_error **err)
{
	struct process *p;
	int i, ret = 0;

	pthread_mutex_lock(&t->lock);
	p = find_locked(t, pid);
	if (p == NULL) {
		ret = not_found(pid, err);
		goto out;
	}
	*info = p->info;
	for (i = 0; out != NULL && i < 2; i++) {
		struct ring *r = &p->ring[i];

		out[i] = malloc(r->len + 1);
		if (out[i] == NULL) {
			free(out[0]);
			out[0] = NULL;
			ret = ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
			goto out;
		}
		len[i] = r->len > 0 ? ring_copy(r, r->total - r->len, out[i], r->len) : 0;
	}
out:
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int procs_command(struct procs *t, int32_t pid, struct procs_command *out,
		  struct ember_error **err)
{
	struct process *p;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&t->lock);
	p = find_locked(t, pid);
	if (p == NULL) {
		ret = not_found(pid, err);
	} else {
		out->argv = strv_copy(p->argv, p->req.argc);
		out->argc = p->req.argc;
		out->env = strv_copy(p->env, p->req.envc);
		out->envc = p->req.envc;
		out->cwd = p->cwd != NULL ? strdup(p->cwd) : NULL;
		if (out->argv == NULL || out->env == NULL || (p->cwd != NULL && out->cwd == NULL))
			ret = ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	pthread_mutex_unlock(&t->lock);
	if (ret < 0)
		procs_command_release(out);
	return ret;
}

void procs_command_release(struct procs_command *c)
{
	strv_free(c->argv);
	strv_free(c->env);
	free(c->cwd);
	memset(c, 0, sizeof(*c));
}

/* One stream's next bytes for a follower at pos[] (lock held); 0 when it has none. */
static size_t read_stream_locked(struct process *p, uint64_t pos[2], uint8_t *buf, size_t max,
				 int *stream)
{
	int i;

	for (i = 0; i < 2; i++) {
		struct ring *r = &p->ring[i];
		size_t n;

		if (pos[i] < r->total - r->len)
			pos[i] = r->total - r->len; /* dropped before the follower got there */
		if (pos[i] >= r->total)
			continue;
		n = ring_copy(r, pos[i], buf, max);
		pos[i] += n;
		*stream = i;
		return n;
	}
	return 0;
}

int procs_read(struct procs *t, int32_t pid, uint64_t pos[2], uint8_t *buf, size_t max,
	       int *stream, size_t *n, bool *ended, struct procs_info *info, int64_t deadline_ms,
	       struct ember_error **err)
{
	struct process *p;
	int ret = 0;

	*n = 0;
	*ended = false;
	pthread_mutex_lock(&t->lock);
	for (;;) {
		p = find_locked(t, pid);
		if (p == NULL) {
			ret = not_found(pid, err);
			break;
		}
		*n = read_stream_locked(p, pos, buf, max, stream);
		if (*n > 0)
			break;
		if (p->info.state == PROCS_EXITED) {
			*ended = true;
			*info = p->info;
			break;
		}
		if (!cond_wait_until(&t->cond, &t->lock, deadline_ms))
			break;
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

/* The exec id of a running process (lock held); for_stdin: also that its stdin is open, and
 * closing marks it closed. */
static int running_exec_locked(struct procs *t, int32_t pid, bool for_stdin, bool closing,
			       uint32_t *exec_id, struct ember_error **err)
{
	struct process *p = find_locked(t, pid);

	if (p == NULL)
		return not_found(pid, err);
	if (p->info.state != PROCS_RUNNING)
		return ember_error_set(err, EMBER_E_CONFLICT, 0, "process %d has ended", (int)pid);
	if (for_stdin && !p->info.stdin_open)
		return ember_error_set(err, EMBER_E_CONFLICT, 0,
				       p->req.has_stdin ? "process %d's stdin is closed"
							: "process %d was started without stdin",
				       (int)pid);
	if (closing)
		p->info.stdin_open = false;
	*exec_id = p->exec_id;
	return 0;
}

int procs_stdin(struct procs *t, struct channel *ch, int32_t pid, const uint8_t *data,
		size_t len, bool fin, struct ember_error **err)
{
	uint32_t exec_id;
	int ret;

	pthread_mutex_lock(&t->lock);
	ret = running_exec_locked(t, pid, true, fin, &exec_id, err);
	pthread_mutex_unlock(&t->lock);
	if (ret < 0)
		return -1;
	return channel_exec_stdin(ch, exec_id, data, len, fin, err);
}

int procs_signal(struct procs *t, struct channel *ch, int32_t pid, int sig,
		 struct ember_error **err)
{
	uint32_t exec_id;
	int ret;

	pthread_mutex_lock(&t->lock);
	ret = running_exec_locked(t, pid, false, false, &exec_id, err);
	pthread_mutex_unlock(&t->lock);
	if (ret < 0)
		return -1;
	return channel_exec_signal(ch, exec_id, sig, err);
}

void procs_close(struct procs *t)
{
	struct process *p;

	if (t == NULL)
		return;
	pthread_mutex_lock(&t->lock);
	t->closed = true;
	while (t->live > 0)
		cond_wait_until(&t->cond, &t->lock, -1);
	for (p = t->list; p != NULL; p = p->next) {
		if (p->thread_started && !p->joined) {
			pthread_join(p->thread, NULL);
			p->joined = true;
		}
	}
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}
