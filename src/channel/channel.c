/* channel.c - host side of the control channel: handshake, request table, reader thread. */
#include "channel/channel.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/credit.h"
#include "proto/frame.h"
#include "proto/fsmsg.h"
#include "proto/io.h"
#include "util/buf.h"
#include "util/cleanup.h"
#include "util/sync.h"
#include "util/timeutil.h"

/* REQ_FS*: protocol-3 file operations (one-shot, a download, an upload); kept last so
 * `kind >= REQ_FS` names them all. */
/* REQ_FS and later are file requests (compared with >=). */
enum request_kind { REQ_EXEC, REQ_PS, REQ_PING, REQ_CONTEXT, REQ_FS, REQ_FS_READ, REQ_FS_WRITE };

/* One DATA frame's bytes of a download, queued until its consumer takes them. */
struct data_chunk {
	struct data_chunk *next;
	size_t len, off;
	uint8_t data[];
};

struct request {
	uint32_t id;
	enum request_kind kind;
	bool done;
	struct ember_error *error;
	/* exec */
	struct buf out;
	struct buf errout;
	uint64_t limit;
	bool out_truncated;
	bool err_truncated;
	struct proto_exit exit;
	const struct channel_sink *sink; /* streamed: output goes here, not to out/errout */
	bool background;         /* STARTED expected once; stdin open until closed */
	bool running;            /* STARTED seen */
	bool stdin_open;
	/* context: the interpreter's pid (0 after a close) */
	int32_t context_pid;
	/* ps */
	struct proto_process *procs;
	size_t nprocs;
	/* files: the FS_REPLY (a download's header first) */
	struct proto_fs_reply fs_reply;
	bool fs_replied;
	/* download: DATA queued (bounded by rx's window), FIN seen, bytes in total */
	struct data_chunk *head, *tail;
	struct proto_credit_window rx;
	uint64_t data_total;
	bool fin;
	/* upload: bytes the guest still lets the host send (its CREDIT) */
	uint64_t tx_credit;
	struct request *next;
};

struct channel {
	int fd;
	int wake_fd;             /* eventfd: tells the reader to stop */
	pthread_t reader;
	bool reader_started;
	pthread_mutex_t lock;    /* guards everything below and the request list; never held
				  * across I/O */
	pthread_cond_t cond;     /* monotonic; broadcast whenever a request completes or leaves
				  * the list, or the channel breaks */
	pthread_mutex_t write_lock; /* serialises frames on the fd; held across bounded writes */
	struct request *requests;
	uint32_t next_id;
	bool broken;
	uint32_t version;        /* agreed in READY */
	enum ember_error_kind broken_kind;
	char broken_reason[512];
	struct proto_decoder dec;
	char sandbox_id[PROTO_ID_MAX + 1];
	/* A pause (channel_suspend): from SUSPEND on no frame goes out and no request starts
	 * until channel_resume(); acked once the guest's SUSPENDED came (the reader then stops). */
	bool suspended;
	bool suspend_acked;
};

static void fail_all_locked(struct channel *ch)
{
	struct request *r;

	for (r = ch->requests; r != NULL; r = r->next) {
		if (r->done)
			continue;
		ember_error_set(&r->error, ch->broken_kind, 0, "%s", ch->broken_reason);
		r->done = true;
		if (r->sink != NULL)
			r->sink->done(r->sink->ctx);
	}
	pthread_cond_broadcast(&ch->cond);
}

static void mark_broken(struct channel *ch, struct ember_error *why)
{
	pthread_mutex_lock(&ch->lock);
	if (!ch->broken) {
		ch->broken = true;
		ch->broken_kind = why != NULL ? why->kind : EMBER_E_GUEST;
		if (ch->broken_kind != EMBER_E_PROTOCOL && ch->broken_kind != EMBER_E_GUEST_TIMEOUT)
			ch->broken_kind = EMBER_E_GUEST;
		snprintf(ch->broken_reason, sizeof(ch->broken_reason), "guest channel broken: %s",
			 why != NULL ? why->message : "unknown reason");
		/* Nothing more goes either way: a writer blocked on a guest that stopped reading
		 * wakes with EPIPE now instead of at its write deadline. */
		shutdown(ch->fd, SHUT_RDWR);
	}
	fail_all_locked(ch);
	pthread_mutex_unlock(&ch->lock);
}

/* -1 with the channel's reason in err once it is broken, else 0. */
static int fail_if_broken(struct channel *ch, struct ember_error **err)
{
	int ret = 0;

	pthread_mutex_lock(&ch->lock);
	if (ch->broken)
		ret = ember_error_set(err, ch->broken_kind, 0, "%s", ch->broken_reason);
	pthread_mutex_unlock(&ch->lock);
	return ret;
}

static struct request *find_locked(struct channel *ch, uint32_t id)
{
	struct request *r;

	for (r = ch->requests; r != NULL; r = r->next) {
		if (r->id == id && !r->done)
			return r;
	}
	return NULL;
}

static void append_capped(struct buf *b, uint64_t limit, bool *truncated, const uint8_t *data,
			  size_t n)
{
	size_t room = b->len < limit ? (size_t)(limit - b->len) : 0;

	if (n > room) {
		*truncated = true;
		n = room;
	}
	if (n > 0 && buf_append(b, data, n) < 0)
		*truncated = true; /* out of memory: report as truncated rather than lie */
}

/* A frame for no request in flight (lock held). Late frames for a request the host gave up on
 * are dropped; a session frame is a violation, and a session ERROR ends the session. */
static int apply_unmatched(const struct proto_frame *f, struct ember_error **err)
{
	const struct proto_header *h = &f->header;
	struct proto_error_msg msg;

	if (h->id != 0)
		return 0;
	if (h->type != PROTO_ERROR)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "unexpected %s frame",
				       proto_type_name(h->type));
	if (proto_error_decode(f->payload, h->length, &msg, err) < 0)
		return -1;
	return ember_error_set(err, EMBER_E_PROTOCOL, 0, "guest ended the session: %s: %s",
			       msg.code, msg.message);
}

static int apply_output(struct request *r, const struct proto_frame *f, struct ember_error **err)
{
	if (r->sink != NULL)
		return r->sink->output(r->sink->ctx, f->header.type, f->payload, f->header.length,
				       err);
	if (f->header.type == PROTO_STDOUT)
		append_capped(&r->out, r->limit, &r->out_truncated, f->payload, f->header.length);
	else
		append_capped(&r->errout, r->limit, &r->err_truncated, f->payload,
			      f->header.length);
	return 0;
}

static int apply_exit(struct request *r, const struct proto_frame *f, struct ember_error **err)
{
	if (r->exit.context.present || r->done)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "a second EXIT for exec %u",
				       f->header.id);
	if (proto_exit_decode(f->payload, f->header.length, &r->exit, err) < 0)
		return ember_error_wrap(err, "EXIT for exec %u", f->header.id);
	r->done = true;
	return 0;
}

static int apply_ps_reply(struct request *r, const struct proto_frame *f, struct ember_error **err)
{
	if (proto_ps_decode(f->payload, f->header.length, &r->procs, &r->nprocs, err) < 0)
		return ember_error_wrap(err, "PS_REPLY");
	r->done = true;
	return 0;
}

/* STARTED: once, for a background exec, before its EXIT. */
static int apply_started(struct request *r, const struct proto_frame *f,
			 struct ember_error **err)
{
	struct proto_started msg;

	if (!r->background || r->running)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "unexpected STARTED for exec %u",
				       f->header.id);
	if (proto_started_decode(f->payload, f->header.length, &msg, err) < 0)
		return ember_error_wrap(err, "STARTED for exec %u", f->header.id);
	r->running = true;
	r->sink->running(r->sink->ctx, r->id, msg.pid);
	return 0;
}

static int apply_pong(struct request *r)
{
	r->done = true;
	return 0;
}

/* The API's error kind for a file operation's ERROR code (docs/protocol.md "Files"). */
static enum ember_error_kind fs_error_kind(const char *code)
{
	static const struct {
		const char *code;
		enum ember_error_kind kind;
	} map[] = {
		{ "bad_request", EMBER_E_INVALID },
		{ "not_found", EMBER_E_NOT_FOUND },
		{ "is_directory", EMBER_E_CONFLICT },
		{ "not_directory", EMBER_E_CONFLICT },
		{ "exists", EMBER_E_CONFLICT },
		{ "not_empty", EMBER_E_CONFLICT },
		{ "permission_denied", EMBER_E_FORBIDDEN },
		{ "no_space", EMBER_E_NO_SPACE },
		{ "too_many_transfers", EMBER_E_CAPACITY },
		{ "io_error", EMBER_E_INTERNAL },
	};
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (strcmp(map[i].code, code) == 0)
			return map[i].kind;
	}
	return EMBER_E_GUEST;
}

/* FS_REPLY: a one-shot operation's outcome, a download's header (its entry; DATA follows) or
 * an upload's outcome. Any other shape for the request is a violation. */
static int apply_fs_reply(struct request *r, const struct proto_frame *f,
			  struct ember_error **err)
{
	if (r->fs_replied)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "second FS_REPLY for request %u",
				       f->header.id);
	if (proto_fs_reply_decode(f->payload, f->header.length, &r->fs_reply, err) < 0)
		return ember_error_wrap(err, "FS_REPLY for request %u", f->header.id);
	r->fs_replied = true;
	if ((r->kind == REQ_FS_READ && r->fs_reply.kind != PROTO_FS_REPLY_ENTRY) ||
	    (r->kind == REQ_FS_WRITE && r->fs_reply.kind != PROTO_FS_REPLY_WRITTEN))
		return ember_error_set(err, EMBER_E_PROTOCOL, 0,
				       "FS_REPLY of the wrong shape for request %u", f->header.id);
	r->done = r->kind != REQ_FS_READ;
	return 0;
}

/* DATA of a download: within the host's credit, after the header, never past the size the
 * header announced; FIN ends it (exactly that size). */
static int apply_data(struct request *r, const struct proto_frame *f, struct ember_error **err)
{
	size_t n = f->header.length;
	struct data_chunk *c;

	if (!r->fs_replied || r->fin)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "DATA out of turn for request %u",
				       f->header.id);
	if (proto_credit_window_received(&r->rx, n, err) < 0)
		return ember_error_wrap(err, "DATA for request %u", f->header.id);
	if (r->data_total + n > r->fs_reply.entry.size)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0,
				       "DATA past the announced %llu bytes for request %u",
				       (unsigned long long)r->fs_reply.entry.size, f->header.id);
	r->data_total += n;
	if (n > 0) {
		c = malloc(sizeof(*c) + n);
		if (c == NULL)
			return ember_error_oom(err);
		c->next = NULL;
		c->len = n;
		c->off = 0;
		memcpy(c->data, f->payload, n);
		if (r->tail != NULL)
			r->tail->next = c;
		else
			r->head = c;
		r->tail = c;
	}
	if ((f->header.flags & PROTO_FLAG_FIN) != 0) {
		r->fin = true;
		r->done = true;
		if (r->data_total != r->fs_reply.entry.size)
			ember_error_set(&r->error, EMBER_E_INTERNAL, 0,
					"the file's read ended after %llu of %llu bytes",
					(unsigned long long)r->data_total,
					(unsigned long long)r->fs_reply.entry.size);
	}
	return 0;
}

/* CREDIT from the guest: more upload bytes it accepts. */
static int apply_tx_credit(struct request *r, const struct proto_frame *f,
			   struct ember_error **err)
{
	uint32_t n;

	if (proto_credit_decode(f->payload, f->header.length, &n, err) < 0)
		return ember_error_wrap(err, "CREDIT for request %u", f->header.id);
	r->tx_credit += n;
	if (r->tx_credit > PROTO_CREDIT_MAX)
		r->tx_credit = PROTO_CREDIT_MAX;
	return 0;
}

/* The guest refused one request: that request fails, the channel stays up. */
/* The error kind of a guest's ERROR code for an exec or a context request. */
static enum ember_error_kind exec_error_kind(const char *code)
{
	if (strcmp(code, "too_many_execs") == 0 || strcmp(code, "too_many_contexts") == 0)
		return EMBER_E_CAPACITY;
	if (strcmp(code, "context_busy") == 0 || strcmp(code, "exists") == 0)
		return EMBER_E_CONFLICT;
	if (strcmp(code, "unknown_context") == 0)
		return EMBER_E_NOT_FOUND;
	return EMBER_E_GUEST;
}

static int apply_context_reply(struct request *r, const struct proto_frame *f,
			       struct ember_error **err)
{
	if (proto_context_reply_decode(f->payload, f->header.length, &r->context_pid, err) < 0)
		return ember_error_wrap(err, "CONTEXT_REPLY for request %u", f->header.id);
	r->done = true;
	return 0;
}

static int apply_error(struct request *r, const struct proto_frame *f, struct ember_error **err)
{
	struct proto_error_msg msg;

	if (proto_error_decode(f->payload, f->header.length, &msg, err) < 0)
		return ember_error_wrap(err, "ERROR for request %u", f->header.id);
	if (r->kind >= REQ_FS) {
		ember_error_set(&r->error, fs_error_kind(msg.code), 0, "%s: %s", msg.code,
				msg.message);
		r->done = true;
		return 0;
	}
	ember_error_set(&r->error, exec_error_kind(msg.code), 0, "guest refused the request: %s: %s",
			msg.code, msg.message);
	r->done = true;
	return 0;
}

/* Applies a frame to its request (lock held); a frame type the request does not expect is a
 * violation. */
static int apply_to_request(struct request *r, const struct proto_frame *f,
			    struct ember_error **err)
{
	switch (f->header.type) {
	case PROTO_STDOUT:
	case PROTO_STDERR:
		if (r->kind == REQ_EXEC)
			return apply_output(r, f, err);
		break;
	case PROTO_EXIT:
		if (r->kind == REQ_EXEC)
			return apply_exit(r, f, err);
		break;
	case PROTO_STARTED:
		if (r->kind == REQ_EXEC)
			return apply_started(r, f, err);
		break;
	case PROTO_PS_REPLY:
		if (r->kind == REQ_PS)
			return apply_ps_reply(r, f, err);
		break;
	case PROTO_CONTEXT_REPLY:
		if (r->kind == REQ_CONTEXT)
			return apply_context_reply(r, f, err);
		break;
	case PROTO_PONG:
		if (r->kind == REQ_PING)
			return apply_pong(r);
		break;
	case PROTO_FS_REPLY:
		if (r->kind >= REQ_FS)
			return apply_fs_reply(r, f, err);
		break;
	case PROTO_DATA:
		if (r->kind == REQ_FS_READ)
			return apply_data(r, f, err);
		break;
	case PROTO_CREDIT:
		if (r->kind == REQ_FS_WRITE)
			return apply_tx_credit(r, f, err);
		break;
	case PROTO_ERROR:
		return apply_error(r, f, err);
	default:
		break;
	}
	return ember_error_set(err, EMBER_E_PROTOCOL, 0, "unexpected %s frame for request %u",
			       proto_type_name(f->header.type), f->header.id);
}

/* Applies one frame from the guest. Returns -1 (with err) when the guest broke the protocol. */
static int dispatch(struct channel *ch, const struct proto_frame *f, struct ember_error **err)
{
	struct request *r;
	int ret;

	pthread_mutex_lock(&ch->lock);
	r = find_locked(ch, f->header.id);
	if ((f->header.type >= PROTO_FS && ch->version < 3) ||
	    (f->header.type >= PROTO_CONTEXT && ch->version < 4)) {
		ret = ember_error_set(err, EMBER_E_PROTOCOL, 0,
				      "%s frame in a protocol version %u session",
				      proto_type_name(f->header.type), ch->version);
	} else if (r == NULL) {
		ret = apply_unmatched(f, err);
	} else {
		ret = apply_to_request(r, f, err);
		if (ret == 0 && r->done && r->sink != NULL)
			r->sink->done(r->sink->ctx);
		/* A transfer's waiter also waits for data, credit and a download's header. */
		if (ret == 0 && (r->done || r->kind >= REQ_FS))
			pthread_cond_broadcast(&ch->cond);
	}
	pthread_mutex_unlock(&ch->lock);
	return ret;
}

/* The guest's SUSPENDED: expected only after our SUSPEND. */
static int ack_suspend(struct channel *ch, struct ember_error **err)
{
	int ret = 0;

	pthread_mutex_lock(&ch->lock);
	if (!ch->suspended || ch->version < 8)
		ret = ember_error_set(err, EMBER_E_PROTOCOL, 0, "SUSPENDED without a SUSPEND");
	ch->suspend_acked = ret == 0;
	pthread_cond_broadcast(&ch->cond);
	pthread_mutex_unlock(&ch->lock);
	return ret;
}

static void *reader_main(void *arg)
{
	struct channel *ch = arg;
	struct ember_error *err = NULL;
	int64_t partial_since = -1;

	for (;;) {
		struct pollfd pfds[2] = {
			{ .fd = ch->fd, .events = POLLIN },
			{ .fd = ch->wake_fd, .events = POLLIN },
		};
		struct proto_frame frame;
		int timeout = -1, ret;

		while ((ret = proto_decoder_next(&ch->dec, &frame, &err)) == 1) {
			if (frame.header.type == PROTO_SUSPENDED) {
				if (ack_suspend(ch, &err) < 0)
					goto broken;
				return NULL; /* the guest sends nothing more until RESUME */
			}
			if (dispatch(ch, &frame, &err) < 0)
				goto broken;
		}
		if (ret < 0)
			goto broken;
		if (proto_decoder_pending(&ch->dec) > 0) {
			if (partial_since < 0)
				partial_since = time_mono_ms();
			timeout = time_ms_until(partial_since + CHANNEL_PARTIAL_FRAME_MS);
		} else {
			partial_since = -1;
		}
		ret = poll(pfds, 2, timeout);
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			ember_error_sys(&err, "poll guest channel");
			goto broken;
		}
		if (pfds[1].revents != 0)
			break; /* channel_close() */
		if (ret == 0) {
			ember_error_set(&err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
					"guest sent a partial frame and went quiet for %d ms",
					CHANNEL_PARTIAL_FRAME_MS);
			goto broken;
		}
		if (proto_fill(ch->fd, &ch->dec, &err) < 0)
			goto broken;
	}
	return NULL;
broken:
	mark_broken(ch, err);
	ember_error_free(&err);
	return NULL;
}

/* Takes the write lock once the channel is not suspended: a frame written during a pause
 * would reach a stopped VM and be lost with its VMM. Waits (without the write lock, which
 * channel_suspend() needs) as long as the pause lasts; fails once the channel broke. */
static int lock_writer(struct channel *ch, struct ember_error **err)
{
	for (;;) {
		pthread_mutex_lock(&ch->write_lock);
		pthread_mutex_lock(&ch->lock);
		if (ch->broken) {
			ember_error_set(err, ch->broken_kind, 0, "%s", ch->broken_reason);
			pthread_mutex_unlock(&ch->lock);
			pthread_mutex_unlock(&ch->write_lock);
			return -1;
		}
		if (!ch->suspended) {
			pthread_mutex_unlock(&ch->lock);
			return 0;
		}
		pthread_mutex_unlock(&ch->write_lock);
		cond_wait_until(&ch->cond, &ch->lock, -1);
		pthread_mutex_unlock(&ch->lock);
	}
}

static int send_frame(struct channel *ch, uint8_t type, uint8_t flags, uint32_t id,
		      const void *payload, size_t len, struct ember_error **err)
{
	struct ember_error *werr = NULL;
	int ret;

	/* No write to a stream that is known dead (it would wait out its deadline for nothing). */
	if (fail_if_broken(ch, err) < 0 || lock_writer(ch, err) < 0)
		return -1;
	ret = proto_send(ch->fd, type, flags, id, payload, len,
			 time_mono_ms() + CHANNEL_WRITE_TIMEOUT_MS, &werr);
	pthread_mutex_unlock(&ch->write_lock);
	if (ret < 0) {
		/* A frame may be half-written: the stream is unusable from here on. */
		if (werr->kind != EMBER_E_TOO_LARGE)
			mark_broken(ch, werr);
		return ember_error_propagate(err, werr);
	}
	return 0;
}

/* A channel with its locks and wake fd, not yet talking to anyone; owns fd from here on. */
static struct channel *channel_alloc(int fd, struct ember_error **err)
{
	struct channel *ch = calloc(1, sizeof(*ch));

	if (ch == NULL) {
		close(fd);
		ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
		return NULL;
	}
	ch->fd = fd;
	ch->next_id = 1;
	proto_decoder_init(&ch->dec);
	pthread_mutex_init(&ch->lock, NULL);
	pthread_mutex_init(&ch->write_lock, NULL);
	cond_init_monotonic(&ch->cond);
	ch->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ch->wake_fd < 0) {
		ember_error_sys(err, "eventfd");
		channel_close(ch);
		return NULL;
	}
	return ch;
}

/* HELLO: who the guest is, the host's clock, and fresh entropy (a clone must not replay the
 * template's RNG state). */
static int send_hello(struct channel *ch, uint8_t type, const char *sandbox_id,
		      const struct proto_hello_net *net, const struct proto_hello_mounts *mounts,
		      int64_t deadline_ms, struct ember_error **err)
{
	struct proto_hello hello = { .version = PROTO_VERSION };
	_cleanup_free_ char *text = NULL;
	size_t len;

	snprintf(hello.sandbox_id, sizeof(hello.sandbox_id), "%s", sandbox_id);
	hello.time_unix_ns = time_wall_ns();
	hello.entropy_len = sizeof(hello.entropy);
	if (getrandom(hello.entropy, hello.entropy_len, 0) != (ssize_t)hello.entropy_len)
		return ember_error_sys(err, "getrandom");
	if (net != NULL)
		hello.net = *net;
	if (mounts != NULL)
		hello.mounts = *mounts;
	text = proto_hello_encode(&hello, &len, err);
	if (text == NULL)
		return -1;
	return proto_send(ch->fd, type, 0, 0, text, len, deadline_ms, err);
}

/* The one frame the handshake accepts: READY for this sandbox in a version we speak. */
static int check_handshake_frame(const struct proto_frame *f, const char *sandbox_id,
				 struct proto_ready *ready, struct ember_error **err)
{
	struct proto_error_msg msg;

	if (f->header.type == PROTO_ERROR) {
		if (proto_error_decode(f->payload, f->header.length, &msg, err) < 0)
			return -1;
		/* invalid_argument: what the handshake asked for cannot be (a mount point the
		 * guest's tree refuses), the client's to change. */
		return ember_error_set(err, strcmp(msg.code, "invalid_argument") == 0
					    ? EMBER_E_INVALID : EMBER_E_GUEST, 0,
				       "guest refused the handshake: %s: %s", msg.code,
				       msg.message);
	}
	if (f->header.type != PROTO_READY)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "expected READY, got %s",
				       proto_type_name(f->header.type));
	if (proto_ready_decode(f->payload, f->header.length, ready, err) < 0)
		return -1;
	if (ready->version < 1 || ready->version > PROTO_VERSION)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "guest chose protocol version %u",
				       ready->version);
	if (strcmp(ready->sandbox_id, sandbox_id) != 0)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "guest answered as `%s`",
				       ready->sandbox_id);
	return 0;
}

/* Reads until the first whole frame and checks it is the READY we want; fails at the deadline
 * or as soon as abort_fd (the VMM's pidfd) says the VM is gone. */
static int await_ready(struct channel *ch, const char *sandbox_id, int abort_fd,
		       int64_t deadline_ms, struct proto_ready *ready, struct ember_error **err)
{
	for (;;) {
		struct pollfd pfds[2] = {
			{ .fd = ch->fd, .events = POLLIN },
			{ .fd = abort_fd, .events = POLLIN },
		};
		struct proto_frame frame;
		int ret = proto_decoder_next(&ch->dec, &frame, err);

		if (ret < 0)
			return -1;
		if (ret == 1)
			return check_handshake_frame(&frame, sandbox_id, ready, err);
		ret = poll(pfds, abort_fd >= 0 ? 2 : 1, time_ms_until(deadline_ms));
		if (ret < 0 && errno != EINTR)
			return ember_error_sys(err, "poll");
		if (ret == 0)
			return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
					       "guest agent did not answer the handshake in time");
		if (abort_fd >= 0 && pfds[1].revents != 0)
			return ember_error_set(err, EMBER_E_GUEST, 0, "the VM exited during boot");
		if (pfds[0].revents != 0 && proto_fill(ch->fd, &ch->dec, err) < 0)
			return -1;
	}
}

int channel_open(int fd, const char *sandbox_id, const struct proto_hello_net *net,
		 const struct proto_hello_mounts *mounts, int abort_fd, int64_t deadline_ms,
		 struct channel **out, struct proto_ready *ready, struct ember_error **err)
{
	struct channel *ch = channel_alloc(fd, err);

	if (ch == NULL)
		return -1;
	snprintf(ch->sandbox_id, sizeof(ch->sandbox_id), "%s", sandbox_id);
	if (send_hello(ch, PROTO_HELLO, sandbox_id, net, mounts, deadline_ms, err) < 0 ||
	    await_ready(ch, sandbox_id, abort_fd, deadline_ms, ready, err) < 0)
		goto fail;
	ch->version = ready->version; /* before the reader starts: it reads it */
	if (pthread_create(&ch->reader, NULL, reader_main, ch) != 0) {
		ember_error_set(err, EMBER_E_INTERNAL, 0, "cannot start the channel reader thread");
		goto fail;
	}
	ch->reader_started = true;
	*out = ch;
	return 0;
fail:
	channel_close(ch);
	return -1;
}

/* Requests that keep a pause from starting: all but background execs that run. */
static size_t busy_locked(struct channel *ch)
{
	struct request *r;
	size_t n = 0;

	for (r = ch->requests; r != NULL; r = r->next)
		n += !r->done && !(r->kind == REQ_EXEC && r->background && r->running);
	return n;
}

/* Marks the channel suspended if it can be: a version-8 guest, nothing but background execs
 * in flight. */
static int begin_suspend(struct channel *ch, struct ember_error **err)
{
	size_t busy;
	int ret = 0;

	pthread_mutex_lock(&ch->lock);
	busy = busy_locked(ch);
	if (ch->broken)
		ret = ember_error_set(err, ch->broken_kind, 0, "%s", ch->broken_reason);
	else if (ch->version < 8)
		ret = ember_error_set(err, EMBER_E_CONFLICT, 0,
				      "the guest agent speaks protocol version %u; a pause needs 8 "
				      "(rebuild the images)", ch->version);
	else if (ch->suspended)
		ret = ember_error_set(err, EMBER_E_CONFLICT, 0, "already paused");
	else if (busy > 0)
		ret = ember_error_set(err, EMBER_E_CONFLICT, 0,
				      "%zu request%s in flight (an exec, a file transfer or a "
				      "context call): pause once %s ended", busy,
				      busy == 1 ? " is" : "s are", busy == 1 ? "it" : "they");
	else
		ch->suspended = true;
	pthread_mutex_unlock(&ch->lock);
	return ret;
}

int channel_suspend(struct channel *ch, int64_t deadline_ms, struct ember_error **err)
{
	struct ember_error *why = NULL;
	bool acked;

	if (begin_suspend(ch, err) < 0)
		return -1;
	/* Whoever holds the write lock now finishes its frame before ours; every later writer
	 * waits for the resume (lock_writer). */
	pthread_mutex_lock(&ch->write_lock);
	if (proto_send(ch->fd, PROTO_SUSPEND, 0, 0, NULL, 0, deadline_ms, &why) < 0) {
		pthread_mutex_unlock(&ch->write_lock);
		mark_broken(ch, why);
		return ember_error_propagate(err, why);
	}
	pthread_mutex_unlock(&ch->write_lock);
	pthread_mutex_lock(&ch->lock);
	while (!ch->suspend_acked && !ch->broken &&
	       cond_wait_until(&ch->cond, &ch->lock, deadline_ms))
		;
	acked = ch->suspend_acked;
	pthread_mutex_unlock(&ch->lock);
	if (!acked) {
		ember_error_set(&why, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
				"the guest did not confirm the pause (SUSPENDED) in time");
		mark_broken(ch, why);
		ember_error_free(&why);
		return fail_if_broken(ch, err);
	}
	pthread_join(ch->reader, NULL); /* it returned after SUSPENDED */
	ch->reader_started = false;
	return 0;
}

static int resume_handshake(struct channel *ch, int abort_fd, int64_t deadline_ms,
			    struct ember_error **err)
{
	struct proto_ready ready;

	if (proto_decoder_pending(&ch->dec) > 0)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0,
				       "the guest sent bytes after SUSPENDED");
	if (send_hello(ch, PROTO_RESUME, ch->sandbox_id, NULL, NULL, deadline_ms, err) < 0 ||
	    await_ready(ch, ch->sandbox_id, abort_fd, deadline_ms, &ready, err) < 0)
		return -1;
	if (ready.version != ch->version)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0,
				       "the guest resumed with protocol version %u, not %u",
				       ready.version, ch->version);
	if (pthread_create(&ch->reader, NULL, reader_main, ch) != 0)
		return ember_error_set(err, EMBER_E_INTERNAL, 0,
				       "cannot start the channel reader thread");
	ch->reader_started = true;
	return 0;
}

int channel_resume(struct channel *ch, int fd, int abort_fd, int64_t deadline_ms,
		   struct ember_error **err)
{
	struct ember_error *why = NULL;

	pthread_mutex_lock(&ch->lock);
	if (!ch->suspended || ch->reader_started || ch->broken) {
		pthread_mutex_unlock(&ch->lock);
		if (fd >= 0)
			close(fd);
		return ember_error_set(err, EMBER_E_INTERNAL, 0, "the channel is not paused");
	}
	if (fd >= 0) {
		close(ch->fd);
		ch->fd = fd;
	}
	pthread_mutex_unlock(&ch->lock);
	if (resume_handshake(ch, abort_fd, deadline_ms, &why) < 0) {
		mark_broken(ch, why);
		return ember_error_propagate(err, why);
	}
	pthread_mutex_lock(&ch->lock);
	ch->suspended = false;
	ch->suspend_acked = false;
	pthread_cond_broadcast(&ch->cond); /* writers waiting in lock_writer() */
	pthread_mutex_unlock(&ch->lock);
	return 0;
}

static struct request *request_new(struct channel *ch, enum request_kind kind,
				   struct ember_error **err)
{
	struct request *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
		return NULL;
	}
	r->kind = kind;
	pthread_mutex_lock(&ch->lock);
	if (ch->broken) { /* checked under the same lock as the insert: no request after a break */
		ember_error_set(err, ch->broken_kind, 0, "%s", ch->broken_reason);
		pthread_mutex_unlock(&ch->lock);
		free(r);
		return NULL;
	}
	if (ch->suspended) {
		ember_error_set(err, EMBER_E_CONFLICT, 0, "the sandbox is paused");
		pthread_mutex_unlock(&ch->lock);
		free(r);
		return NULL;
	}
	do {
		r->id = ch->next_id++;
	} while (r->id == 0 || find_locked(ch, r->id) != NULL);
	r->next = ch->requests;
	ch->requests = r;
	pthread_mutex_unlock(&ch->lock);
	return r;
}

static void request_free(struct channel *ch, struct request *r)
{
	struct request **p;

	pthread_mutex_lock(&ch->lock);
	for (p = &ch->requests; *p != NULL; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			break;
		}
	}
	pthread_cond_broadcast(&ch->cond); /* channel_close() waits for the list to empty */
	pthread_mutex_unlock(&ch->lock);
	buf_release(&r->out);
	buf_release(&r->errout);
	proto_exit_release(&r->exit);
	free(r->procs);
	while (r->head != NULL) {
		struct data_chunk *c = r->head;

		r->head = c->next;
		free(c);
	}
	proto_fs_reply_release(&r->fs_reply);
	ember_error_free(&r->error);
	free(r);
}

/* Waits until r is done or deadline_ms; true when done. */
static bool request_wait(struct channel *ch, struct request *r, int64_t deadline_ms)
{
	bool done;

	pthread_mutex_lock(&ch->lock);
	while (!r->done && cond_wait_until(&ch->cond, &ch->lock, deadline_ms))
		;
	done = r->done;
	pthread_mutex_unlock(&ch->lock);
	return done;
}

/* Moves a finished request's error (if any) to err. */
static int request_result(struct request *r, struct ember_error **err)
{
	if (r->error != NULL) {
		struct ember_error *e = r->error;

		r->error = NULL;
		return ember_error_propagate(err, e);
	}
	return 0;
}

/* The EXEC message for req, encoded; EMBER_E_TOO_LARGE when it does not fit one frame. */
static char *encode_exec(const struct channel_exec_request *req, size_t *len,
			 struct ember_error **err)
{
	struct proto_exec msg = {
		.argc = req->argc,
		.envc = req->envc,
		.code = (char *)req->code,
		.code_len = req->code_len,
		.timeout_ms = req->timeout_ms,
		.output_limit = req->output_limit,
		.max_processes = req->max_processes,
		.stdin_follows = req->has_stdin,
		.background = req->background,
		.command = req->command,
		.cwd = (char *)req->cwd,
		.context = (char *)req->context,
		.fresh_interpreter = req->fresh_interpreter,
		.code_argument = req->code_argument,
	};
	_cleanup_free_ char *text = NULL;
	size_t i;

	if (req->argc > PROTO_ARGV_MAX || req->envc > PROTO_ENV_MAX) {
		ember_error_set(err, EMBER_E_INVALID, 0, "too many argv or env entries");
		return NULL;
	}
	for (i = 0; i < req->argc; i++)
		msg.argv[i] = req->argv[i];
	for (i = 0; i < req->envc; i++)
		msg.env[i] = req->env[i];
	text = proto_exec_encode(&msg, len, err);
	if (text != NULL && *len > PROTO_MAX_PAYLOAD) {
		ember_error_set(err, EMBER_E_TOO_LARGE, 0,
				"the exec request encodes to %zu bytes, over the %u-byte frame limit "
				"(shorten code or env)", *len, PROTO_MAX_PAYLOAD);
		return NULL;
	}
	return steal_pointer(&text);
}

/* All of stdin as STDIN frames of at most a chunk each, the last one with FIN. */
static int send_stdin(struct channel *ch, uint32_t id, const uint8_t *data, size_t len,
		      struct ember_error **err)
{
	size_t off = 0;

	do {
		size_t chunk = len - off < PROTO_MAX_DATA_CHUNK ? len - off : PROTO_MAX_DATA_CHUNK;
		bool last = off + chunk == len;

		if (send_frame(ch, PROTO_STDIN, last ? PROTO_FLAG_FIN : 0, id, data + off, chunk,
			       err) < 0)
			return -1;
		off += chunk;
	} while (off < len);
	return 0;
}

/* Waits for the exec's EXIT until its timeout plus grace; past that, CANCELs it and waits a
 * little more. *cancelled says whether the CANCEL was needed. */
static int await_exit(struct channel *ch, struct request *r, uint32_t timeout_ms,
		      bool *cancelled, struct ember_error **err)
{
	*cancelled = false;
	if (request_wait(ch, r, time_mono_ms() + timeout_ms + CHANNEL_EXEC_GRACE_MS))
		return 0;
	/* The guest should have killed it by now: ask explicitly, then give up. */
	*cancelled = true;
	if (send_frame(ch, PROTO_CANCEL, 0, r->id, NULL, 0, NULL) == 0 &&
	    request_wait(ch, r, time_mono_ms() + CHANNEL_CANCEL_GRACE_MS))
		return 0;
	return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
			       "guest did not report the exec's end within %u ms of its %u ms "
			       "timeout", CHANNEL_EXEC_GRACE_MS + CHANNEL_CANCEL_GRACE_MS,
			       timeout_ms);
}

/* Moves a finished exec's output and exit into res. */
static int take_exec_result(struct request *r, bool cancelled, struct channel_exec_result *res,
			    struct ember_error **err)
{
	if (request_result(r, err) < 0)
		return -1;
	if (buf_terminate(&r->out) < 0 || buf_terminate(&r->errout) < 0)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	res->exit = r->exit;
	memset(&r->exit.context, 0, sizeof(r->exit.context)); /* moved into res */
	/* Our CANCEL killed it: the guest only saw a cancel, but for the caller the exec ran out
	 * of time (its start in the guest came too late, or its own timer did not fire). */
	res->cancelled = cancelled;
	if (cancelled && r->exit.signal != 0)
		res->exit.timed_out = true;
	res->exit.stdout_truncated = r->exit.stdout_truncated || r->out_truncated;
	res->exit.stderr_truncated = r->exit.stderr_truncated || r->err_truncated;
	res->stdout_data = r->out.data;
	res->stdout_len = r->out.len;
	res->stderr_data = r->errout.data;
	res->stderr_len = r->errout.len;
	memset(&r->out, 0, sizeof(r->out));
	memset(&r->errout, 0, sizeof(r->errout));
	return 0;
}

uint32_t channel_version(struct channel *ch)
{
	return ch->version;
}

static bool request_done(struct channel *ch, struct request *r)
{
	bool done;

	pthread_mutex_lock(&ch->lock);
	done = r->done;
	pthread_mutex_unlock(&ch->lock);
	return done;
}

/* A buffered exec keeps at most output_limit per stream: credit for all of it at once. */
static int grant_buffered(struct channel *ch, struct request *r, struct ember_error **err)
{
	uint8_t payload[PROTO_CREDIT_PAYLOAD];
	uint64_t want = 2 * r->limit;

	if (ch->version < 2 || want <= PROTO_CREDIT_WINDOW)
		return 0;
	want -= PROTO_CREDIT_WINDOW;
	proto_credit_encode(payload, want > UINT32_MAX ? UINT32_MAX : (uint32_t)want);
	return send_frame(ch, PROTO_CREDIT, 0, r->id, payload, sizeof(payload), err);
}

/* A streamed exec's wait for its EXIT: grants credit as the sink drains, CANCELs when the sink's
 * consumer left or the exec overran its timeout plus grace. */
static int await_exit_streamed(struct channel *ch, struct request *r, uint32_t timeout_ms,
			       bool *cancelled, struct ember_error **err)
{
	/* A background exec has no deadline until its sink's consumer cancels it. */
	int64_t deadline = r->background ? -1 : time_mono_ms() + timeout_ms + CHANNEL_EXEC_GRACE_MS;
	bool cancel_sent = false;

	*cancelled = false;
	while (!request_done(ch, r)) {
		uint8_t payload[PROTO_CREDIT_PAYLOAD];
		uint32_t grant = 0;
		bool cancel = false;

		if (deadline >= 0 && time_mono_ms() >= deadline) {
			if (cancel_sent)
				return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
						       "guest did not report the exec's end in time");
			cancel = true;
			*cancelled = true;
		} else {
			r->sink->wait(r->sink->ctx, deadline, &grant, &cancel);
		}
		if (grant > 0) {
			proto_credit_encode(payload, grant);
			send_frame(ch, PROTO_CREDIT, 0, r->id, payload, sizeof(payload), NULL);
		}
		if (cancel && !cancel_sent) {
			cancel_sent = true;
			send_frame(ch, PROTO_CANCEL, 0, r->id, NULL, 0, NULL);
			deadline = time_mono_ms() + CHANNEL_CANCEL_GRACE_MS;
		}
	}
	return 0;
}

int channel_exec(struct channel *ch, const struct channel_exec_request *req,
		 struct channel_exec_result *res, struct ember_error **err)
{
	const struct channel_sink *sink = req->sink;
	_cleanup_free_ char *text = NULL;
	struct request *r;
	bool cancelled;
	size_t len;
	int ret = -1;

	memset(res, 0, sizeof(*res));
	if (sink != NULL && ch->version < 2)
		return ember_error_set(err, EMBER_E_CONFLICT, 0,
				       "the guest agent speaks protocol version %u, without the "
				       "credit a streamed exec needs (rebuild the images)",
				       ch->version);
	if ((req->background || req->command || req->cwd != NULL) && ch->version < 3)
		return ember_error_set(err, EMBER_E_CONFLICT, 0,
				       "the guest agent speaks protocol version %u, without "
				       "background processes (rebuild the images)", ch->version);
	if ((req->context != NULL || req->fresh_interpreter) && ch->version < 4)
		return ember_error_set(err, EMBER_E_CONFLICT, 0,
				       "the guest agent speaks protocol version %u, without code "
				       "contexts (rebuild the images)", ch->version);
	if (req->code_argument && ch->version < 6)
		return ember_error_set(err, EMBER_E_CONFLICT, 0,
				       "the guest agent speaks protocol version %u, without code passed "
				       "as an argument (rebuild the images)", ch->version);
	if (req->background && (sink == NULL || sink->running == NULL))
		return ember_error_set(err, EMBER_E_INTERNAL, 0, "a background exec needs a sink");
	text = encode_exec(req, &len, err);
	if (text == NULL)
		return -1;
	r = request_new(ch, REQ_EXEC, err);
	if (r == NULL)
		return -1;
	pthread_mutex_lock(&ch->lock);
	r->limit = req->output_limit;
	r->sink = sink;
	r->background = req->background;
	r->stdin_open = req->background && req->has_stdin;
	pthread_mutex_unlock(&ch->lock);
	if (send_frame(ch, PROTO_EXEC, 0, r->id, text, len, err) < 0 ||
	    (sink == NULL && grant_buffered(ch, r, err) < 0) ||
	    (req->has_stdin && !req->background &&
	     send_stdin(ch, r->id, req->stdin_data, req->stdin_len, err) < 0))
		goto out;
	if (sink != NULL) {
		sink->started(sink->ctx, ch->version >= 2);
		if (await_exit_streamed(ch, r, req->timeout_ms, &cancelled, err) < 0)
			goto out;
	} else if (await_exit(ch, r, req->timeout_ms, &cancelled, err) < 0) {
		goto out;
	}
	ret = take_exec_result(r, cancelled, res, err);
out:
	request_free(ch, r);
	return ret;
}

void channel_exec_result_release(struct channel_exec_result *res)
{
	free(res->stdout_data);
	free(res->stderr_data);
	proto_exit_release(&res->exit);
	memset(res, 0, sizeof(*res));
}

/* The background exec exec_id while it runs (lock held); closing: it takes no stdin after. */
static int find_background_locked(struct channel *ch, uint32_t exec_id, bool for_stdin,
				  bool closing, struct ember_error **err)
{
	struct request *r = find_locked(ch, exec_id);

	if (ch->broken)
		return ember_error_set(err, ch->broken_kind, 0, "%s", ch->broken_reason);
	if (r == NULL || r->kind != REQ_EXEC || !r->background || !r->running)
		return ember_error_set(err, EMBER_E_CONFLICT, 0, "the process is not running");
	if (for_stdin && !r->stdin_open)
		return ember_error_set(err, EMBER_E_CONFLICT, 0, "the process's stdin is closed");
	if (closing)
		r->stdin_open = false;
	return 0;
}

int channel_exec_stdin(struct channel *ch, uint32_t exec_id, const uint8_t *data, size_t len,
		       bool fin, struct ember_error **err)
{
	int ret;

	pthread_mutex_lock(&ch->lock);
	ret = find_background_locked(ch, exec_id, true, fin, err);
	pthread_mutex_unlock(&ch->lock);
	if (ret < 0)
		return -1;
	if (len == 0) /* data may be NULL: no pointer arithmetic on it */
		return fin ? send_frame(ch, PROTO_STDIN, PROTO_FLAG_FIN, exec_id, NULL, 0, err) : 0;
	if (fin)
		return send_stdin(ch, exec_id, data, len, err);
	while (len > 0) { /* like send_stdin, without the FIN */
		size_t chunk = len < PROTO_MAX_DATA_CHUNK ? len : PROTO_MAX_DATA_CHUNK;

		if (send_frame(ch, PROTO_STDIN, 0, exec_id, data, chunk, err) < 0)
			return -1;
		data += chunk;
		len -= chunk;
	}
	return 0;
}

int channel_exec_signal(struct channel *ch, uint32_t exec_id, int sig, struct ember_error **err)
{
	uint8_t payload[4] = { 0, 0, 0, (uint8_t)sig };
	int ret;

	if (sig < 1 || sig > 64)
		return ember_error_set(err, EMBER_E_INVALID, 0, "signal %d is not 1..64", sig);
	pthread_mutex_lock(&ch->lock);
	ret = find_background_locked(ch, exec_id, false, false, err);
	pthread_mutex_unlock(&ch->lock);
	if (ret < 0)
		return -1;
	return send_frame(ch, PROTO_SIGNAL, 0, exec_id, payload, sizeof(payload), err);
}

int channel_ps(struct channel *ch, int64_t deadline_ms, struct proto_process **procs,
	       size_t *count, struct ember_error **err)
{
	struct request *r = request_new(ch, REQ_PS, err);
	int ret = -1;

	if (r == NULL)
		return -1;
	if (send_frame(ch, PROTO_PS, 0, r->id, NULL, 0, err) < 0)
		goto out;
	if (!request_wait(ch, r, deadline_ms)) {
		ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
				"guest did not answer PS in time");
		goto out;
	}
	if (request_result(r, err) < 0)
		goto out;
	*procs = steal_pointer(&r->procs);
	*count = r->nprocs;
	ret = 0;
out:
	request_free(ch, r);
	return ret;
}

int channel_context(struct channel *ch, const struct proto_context *req, int64_t deadline_ms,
		    int32_t *pid, struct ember_error **err)
{
	_cleanup_free_ char *text = NULL;
	struct request *r;
	size_t len;
	int ret = -1;

	if (ch->version < 4)
		return ember_error_set(err, EMBER_E_CONFLICT, 0,
				       "the guest agent speaks protocol version %u, without code "
				       "contexts (rebuild the images)", ch->version);
	text = proto_context_encode(req, &len, err);
	if (text == NULL)
		return -1;
	r = request_new(ch, REQ_CONTEXT, err);
	if (r == NULL)
		return -1;
	if (send_frame(ch, PROTO_CONTEXT, 0, r->id, text, len, err) < 0)
		goto out;
	if (!request_wait(ch, r, deadline_ms)) {
		ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
				"guest did not answer CONTEXT in time");
		goto out;
	}
	if (request_result(r, err) < 0)
		goto out;
	if (pid != NULL)
		*pid = r->context_pid;
	ret = 0;
out:
	request_free(ch, r);
	return ret;
}

int channel_ping(struct channel *ch, int64_t deadline_ms, struct ember_error **err)
{
	struct request *r = request_new(ch, REQ_PING, err);
	int ret = -1;

	if (r == NULL)
		return -1;
	if (send_frame(ch, PROTO_PING, 0, r->id, "ping", 4, err) < 0)
		goto out;
	if (!request_wait(ch, r, deadline_ms)) {
		ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
				"guest did not answer PING in time");
		goto out;
	}
	ret = request_result(r, err);
out:
	request_free(ch, r);
	return ret;
}

bool channel_broken(struct channel *ch, char *reason, size_t reason_size)
{
	bool broken;

	pthread_mutex_lock(&ch->lock);
	broken = ch->broken;
	if (broken && reason != NULL)
		snprintf(reason, reason_size, "%s", ch->broken_reason);
	pthread_mutex_unlock(&ch->lock);
	return broken;
}

size_t channel_inflight(struct channel *ch)
{
	struct request *r;
	size_t n = 0;

	pthread_mutex_lock(&ch->lock);
	for (r = ch->requests; r != NULL; r = r->next)
		n += !r->done;
	pthread_mutex_unlock(&ch->lock);
	return n;
}

void channel_abort(struct channel *ch, const char *reason)
{
	struct ember_error why = { .kind = EMBER_E_GUEST };

	snprintf(why.message, sizeof(why.message), "%s", reason);
	mark_broken(ch, &why);
}

void channel_close(struct channel *ch)
{
	struct ember_error closing = { .kind = EMBER_E_GUEST };

	if (ch == NULL)
		return;
	if (ch->reader_started) {
		uint64_t one = 1;

		if (write(ch->wake_fd, &one, sizeof(one)) < 0) {
			/* eventfd writes only fail on overflow; the reader will still see it */
		}
		pthread_join(ch->reader, NULL);
	}
	snprintf(closing.message, sizeof(closing.message), "the sandbox is being destroyed");
	mark_broken(ch, &closing);
	/* Waiters still referencing requests own them; they see done and free them. Wait until
	 * every waiter has left before freeing the channel. */
	pthread_mutex_lock(&ch->lock);
	while (ch->requests != NULL)
		cond_wait_until(&ch->cond, &ch->lock, -1);
	pthread_mutex_unlock(&ch->lock);
	if (ch->fd >= 0)
		close(ch->fd);
	if (ch->wake_fd >= 0)
		close(ch->wake_fd);
	proto_decoder_release(&ch->dec);
	pthread_cond_destroy(&ch->cond);
	pthread_mutex_destroy(&ch->lock);
	pthread_mutex_destroy(&ch->write_lock);
	free(ch);
}

/* --- files (protocol version 3): one-shot operations and transfers --- */

struct channel_transfer {
	struct channel *ch;
	struct request *r;
};

static int require_files(struct channel *ch, struct ember_error **err)
{
	if (ch->version >= 3)
		return 0;
	return ember_error_set(err, EMBER_E_CONFLICT, 0,
			       "the guest agent speaks protocol version %u, without file operations "
			       "(version 3; rebuild the images)", ch->version);
}

/* A new request of kind for req, its FS frame sent. */
static struct request *fs_request_send(struct channel *ch, enum request_kind kind,
				       const struct proto_fs_request *req,
				       struct ember_error **err)
{
	_cleanup_free_ char *text = NULL;
	struct request *r;
	size_t len;

	if (require_files(ch, err) < 0)
		return NULL;
	text = proto_fs_request_encode(req, &len, err);
	if (text == NULL)
		return NULL;
	r = request_new(ch, kind, err);
	if (r == NULL)
		return NULL;
	pthread_mutex_lock(&ch->lock);
	proto_credit_window_init(&r->rx, PROTO_CREDIT_WINDOW);
	r->tx_credit = PROTO_CREDIT_WINDOW;
	pthread_mutex_unlock(&ch->lock);
	if (send_frame(ch, PROTO_FS, 0, r->id, text, len, err) < 0) {
		request_free(ch, r);
		return NULL;
	}
	return r;
}

int channel_fs(struct channel *ch, const struct proto_fs_request *req, int64_t deadline_ms,
	       struct proto_fs_reply *reply, struct ember_error **err)
{
	struct request *r;
	int ret = -1;

	memset(reply, 0, sizeof(*reply));
	if (req->op == PROTO_FS_READ || req->op == PROTO_FS_WRITE)
		return ember_error_set(err, EMBER_E_INTERNAL, 0, "channel_fs: %s is a transfer",
				       proto_fs_op_name(req->op));
	r = fs_request_send(ch, REQ_FS, req, err);
	if (r == NULL)
		return -1;
	if (!request_wait(ch, r, deadline_ms)) {
		ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
				"guest did not answer the %s in time", proto_fs_op_name(req->op));
		goto out;
	}
	if (request_result(r, err) < 0)
		goto out;
	*reply = r->fs_reply;
	memset(&r->fs_reply, 0, sizeof(r->fs_reply));
	ret = 0;
out:
	request_free(ch, r);
	return ret;
}

/* What a transfer's waiter waits for, besides the request's end. */
enum transfer_wait { WAIT_HEADER, WAIT_DATA, WAIT_CREDIT };

static bool transfer_ready_locked(const struct request *r, enum transfer_wait what)
{
	switch (what) {
	case WAIT_HEADER: return r->fs_replied;
	case WAIT_DATA: return r->head != NULL;
	case WAIT_CREDIT: return r->tx_credit > 0;
	}
	return false;
}

/* Lock held: waits until what is there, the request is over, or CHANNEL_TRANSFER_STALL_MS
 * pass without either (then -1, EMBER_E_GUEST_TIMEOUT). */
static int transfer_wait_locked(struct channel *ch, struct request *r, enum transfer_wait what,
				struct ember_error **err)
{
	int64_t deadline = time_mono_ms() + CHANNEL_TRANSFER_STALL_MS;

	while (!r->done && !transfer_ready_locked(r, what)) {
		if (!cond_wait_until(&ch->cond, &ch->lock, deadline))
			return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
					       "the guest made no progress on a file transfer for "
					       "%d ms", CHANNEL_TRANSFER_STALL_MS);
	}
	return 0;
}

static struct channel_transfer *transfer_new(struct channel *ch, struct request *r,
					     struct ember_error **err)
{
	struct channel_transfer *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		ember_error_oom(err);
		send_frame(ch, PROTO_CANCEL, 0, r->id, NULL, 0, NULL);
		request_free(ch, r);
		return NULL;
	}
	t->ch = ch;
	t->r = r;
	return t;
}

int channel_download_open(struct channel *ch, const char *path, struct channel_transfer **out,
			  struct proto_fs_entry *entry, struct ember_error **err)
{
	struct proto_fs_request req = { .op = PROTO_FS_READ };
	struct channel_transfer *t;
	struct request *r;
	int ret;

	if (strlen(path) > PROTO_PATH_MAX)
		return ember_error_set(err, EMBER_E_INVALID, 0, "the path is longer than %u bytes",
				       PROTO_PATH_MAX);
	memcpy(req.path, path, strlen(path) + 1);
	r = fs_request_send(ch, REQ_FS_READ, &req, err);
	if (r == NULL)
		return -1;
	t = transfer_new(ch, r, err);
	if (t == NULL)
		return -1;
	pthread_mutex_lock(&ch->lock);
	ret = transfer_wait_locked(ch, r, WAIT_HEADER, err);
	if (ret == 0 && !r->fs_replied)
		ret = request_result(r, err); /* refused: the guest's ERROR (or the break) */
	if (ret == 0)
		*entry = r->fs_reply.entry;
	pthread_mutex_unlock(&ch->lock);
	if (ret < 0) {
		channel_transfer_close(t);
		return -1;
	}
	*out = t;
	return 0;
}

/* Lock held: up to max queued bytes into buf; the credit to grant for them. */
static size_t take_data_locked(struct request *r, uint8_t *buf, size_t max, uint32_t *grant)
{
	size_t n = 0;

	while (r->head != NULL && n < max) {
		struct data_chunk *c = r->head;
		size_t k = c->len - c->off < max - n ? c->len - c->off : max - n;

		memcpy(buf + n, c->data + c->off, k);
		c->off += k;
		n += k;
		if (c->off == c->len) {
			r->head = c->next;
			if (r->head == NULL)
				r->tail = NULL;
			free(c);
		}
	}
	proto_credit_window_consumed(&r->rx, n);
	*grant = r->fin ? 0 : proto_credit_window_grant(&r->rx);
	return n;
}

ssize_t channel_download_read(struct channel_transfer *t, void *buf, size_t max,
			      struct ember_error **err)
{
	struct channel *ch = t->ch;
	struct request *r = t->r;
	uint8_t payload[PROTO_CREDIT_PAYLOAD];
	uint32_t grant = 0;
	ssize_t n = -1;

	pthread_mutex_lock(&ch->lock);
	if (transfer_wait_locked(ch, r, WAIT_DATA, err) == 0) {
		if (r->error != NULL)
			request_result(r, err); /* failed: what is queued is not the file */
		else
			n = (ssize_t)take_data_locked(r, buf, max, &grant);
	}
	pthread_mutex_unlock(&ch->lock);
	if (grant > 0) {
		proto_credit_encode(payload, grant);
		send_frame(ch, PROTO_CREDIT, 0, r->id, payload, sizeof(payload), NULL);
	}
	return n;
}

int channel_upload_open(struct channel *ch, const struct proto_fs_request *req,
			struct channel_transfer **out, struct ember_error **err)
{
	struct request *r;

	if (req->op != PROTO_FS_WRITE)
		return ember_error_set(err, EMBER_E_INTERNAL, 0, "channel_upload_open: not a write");
	r = fs_request_send(ch, REQ_FS_WRITE, req, err);
	if (r == NULL)
		return -1;
	*out = transfer_new(ch, r, err);
	return *out != NULL ? 0 : -1;
}

/* Lock held: the request ended before the upload did: its error, or the guest's mistake. */
static int upload_ended_early(struct request *r, struct ember_error **err)
{
	if (r->error != NULL)
		return request_result(r, err);
	return ember_error_set(err, EMBER_E_GUEST, 0, "the guest ended an upload before its end");
}

int channel_upload_write(struct channel_transfer *t, const void *data, size_t len,
			 struct ember_error **err)
{
	struct channel *ch = t->ch;
	struct request *r = t->r;
	const uint8_t *p = data;

	while (len > 0) {
		size_t n;
		int ret;

		pthread_mutex_lock(&ch->lock);
		ret = transfer_wait_locked(ch, r, WAIT_CREDIT, err);
		if (ret == 0 && r->done)
			ret = upload_ended_early(r, err);
		n = len < PROTO_MAX_DATA_CHUNK ? len : PROTO_MAX_DATA_CHUNK;
		if (n > r->tx_credit)
			n = (size_t)r->tx_credit;
		if (ret == 0)
			r->tx_credit -= n;
		pthread_mutex_unlock(&ch->lock);
		if (ret < 0 || send_frame(ch, PROTO_DATA, 0, r->id, p, n, err) < 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

int channel_upload_finish(struct channel_transfer *t, struct proto_fs_reply *reply,
			  struct ember_error **err)
{
	struct channel *ch = t->ch;
	struct request *r = t->r;
	int ret;

	memset(reply, 0, sizeof(*reply));
	if (send_frame(ch, PROTO_DATA, PROTO_FLAG_FIN, r->id, NULL, 0, err) < 0)
		return -1;
	pthread_mutex_lock(&ch->lock);
	/* Credit is no progress here: only the end counts (WAIT_HEADER: the reply). */
	ret = transfer_wait_locked(ch, r, WAIT_HEADER, err);
	if (ret == 0 && r->error != NULL)
		ret = request_result(r, err);
	if (ret == 0) {
		*reply = r->fs_reply;
		memset(&r->fs_reply, 0, sizeof(r->fs_reply));
	}
	pthread_mutex_unlock(&ch->lock);
	return ret;
}

void channel_transfer_close(struct channel_transfer *t)
{
	if (t == NULL)
		return;
	if (!request_done(t->ch, t->r))
		send_frame(t->ch, PROTO_CANCEL, 0, t->r->id, NULL, 0, NULL);
	request_free(t->ch, t->r);
	free(t);
}
