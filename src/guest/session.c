/* session.c - per-connection protocol handling. */
#include "guest/session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "guest/context.h"
#include "guest/files.h"
#include "guest/identity.h"
#include "guest/limits.h"
#include "guest/log.h"
#include "guest/mounts.h"
#include "guest/net.h"
#include "guest/outq.h"
#include "guest/ps.h"
#include "proto/credit.h"
#include "proto/frame.h"
#include "proto/messages.h"

#ifndef EMBER_VERSION
#define EMBER_VERSION "0.0.0"
#endif

/* What a closing socket session still reads to leave the peer a clean EOF instead of a reset
 * (a Unix socket closed with unread input resets its peer). */
#define SESSION_CLOSE_DRAIN (64u * 1024u)

enum session_state {
	SESSION_AWAIT_HELLO,
	SESSION_READY,
	SESSION_DRAINING, /* virtio-serial after a session-level error: discard until hangup */
};

struct guest_session {
	struct guest_session_env *env;
	struct guest_deferred deferred;
	struct guest_watch watch;
	enum guest_session_kind kind;
	enum session_state state;
	bool ended;
	bool congested;
	bool heard;        /* the host sent something: worth a log line when it ends */
	uint32_t version;  /* agreed in READY */
	struct proto_decoder dec;
	struct guest_outq out;
	/* Version 8: after SUSPENDED the session writes nothing until it has answered a RESUME,
	 * since the VM's RAM (and any half-sent frame) is saved right after. What it produces
	 * meanwhile waits in held, sent behind RESUME's READY. */
	bool suspended;
	/* Suspended and the host gone: a port's fd out of the loop until agent.c sees a host
	 * again; a socket's closed until agent.c hands over a new connection (adopt). */
	bool parked;
	struct guest_outq held;
	char sandbox_id[PROTO_ID_MAX + 1]; /* HELLO's: a RESUME must name the same sandbox */
	struct guest_exec *execs;
	struct guest_context *contexts; /* version 4; they die with the session */
	unsigned ncontexts;
	struct guest_files files; /* file operations and transfers (protocol version 3) */
	char label[32];
};

static void session_update_interest(struct guest_session *s);
static void session_process_frames(struct guest_session *s);

static void session_end(struct guest_session *s, const char *why)
{
	/* A virtio-serial port with no host attached "ends" every few ms: only log real ones. */
	if (!s->ended && s->heard)
		guest_log("session on %s ended: %s", s->label, why);
	s->ended = true;
}

bool guest_session_ended(const struct guest_session *s)
{
	return s->ended;
}

static void exec_free_deferred(struct guest_deferred *d)
{
	guest_exec_free(guest_container_of(d, struct guest_exec, deferred));
}

static void unlink_exec(struct guest_session *s, struct guest_exec *e)
{
	struct guest_exec **pp;

	for (pp = &s->execs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	}
	s->env->running_execs--;
	guest_loop_defer_free(s->env->loop, &e->deferred, exec_free_deferred);
}

static void discard_execs(struct guest_session *s)
{
	while (s->execs != NULL) {
		struct guest_exec *e = s->execs;

		guest_exec_discard(e);
		unlink_exec(s, e);
	}
	guest_files_discard(&s->files); /* transfers end with the session's execs */
	while (s->contexts != NULL) {
		struct guest_context *c = s->contexts;

		s->contexts = guest_context_next(c);
		guest_context_close(c);
	}
	s->ncontexts = 0;
}

static struct guest_context *find_context(struct guest_session *s, const char *id)
{
	struct guest_context *c;

	for (c = s->contexts; c != NULL; c = guest_context_next(c)) {
		if (strcmp(guest_context_id(c), id) == 0)
			return c;
	}
	return NULL;
}

struct guest_context *guest_session_context_by_pid(struct guest_session *s, pid_t pid)
{
	struct guest_context *c;

	for (c = s->contexts; c != NULL; c = guest_context_next(c)) {
		if (guest_context_owns_pid(c, pid))
			return c;
	}
	return NULL;
}

static struct guest_exec *find_exec(struct guest_session *s, uint32_t id)
{
	struct guest_exec *e;

	for (e = s->execs; e != NULL; e = e->next) {
		if (e->id == id)
			return e;
	}
	return NULL;
}

struct guest_exec *guest_session_exec_by_pid(struct guest_session *s, pid_t pid)
{
	struct guest_exec *e;

	for (e = s->execs; e != NULL; e = e->next) {
		if (e->pid == pid && !e->reaped)
			return e;
	}
	return NULL;
}

bool guest_session_owns_unreaped_cgroup(struct guest_session *s, const char *path)
{
	struct guest_exec *e;

	struct guest_context *c;

	for (e = s->execs; e != NULL; e = e->next) {
		if (!e->reaped && strcmp(e->cgroup, path) == 0)
			return true;
	}
	for (c = s->contexts; c != NULL; c = guest_context_next(c)) {
		if (guest_context_owns_unreaped_cgroup(c, path))
			return true;
	}
	return false;
}

/* Execs and file reads paused by backpressure or a suspension read and send again. */
static void resume_producers(struct guest_session *s)
{
	struct guest_exec *e;

	if (s->suspended)
		return;
	for (e = s->execs; e != NULL; e = e->next)
		guest_exec_resume(e);
	guest_files_resume(&s->files);
}

static void session_flush(struct guest_session *s)
{
	struct ember_error *err = NULL;

	if (s->watch.fd < 0)
		return;
	if (guest_outq_flush(&s->out, s->watch.fd, &err) < 0) {
		session_end(s, err->message);
		ember_error_free(&err);
		return;
	}
	if (s->congested && guest_outq_bytes(&s->out) < GUEST_OUTQ_LOW_WATER) {
		s->congested = false;
		resume_producers(s);
		session_process_frames(s); /* frames held back while congested */
	}
}

/* Queues a frame (flags: FIN on a file's last DATA); while suspended it waits in held. */
static int session_emit_flags(struct guest_session *s, uint8_t type, uint8_t flags, uint32_t id,
			      const void *payload, size_t len)
{
	struct guest_outq *q = s->suspended ? &s->held : &s->out;
	struct ember_error *err = NULL;
	bool was_empty = guest_outq_bytes(q) == 0;

	if (s->ended)
		return -1;
	if (guest_outq_push(q, type, flags, id, payload, len, &err) < 0) {
		session_end(s, err->message);
		ember_error_free(&err);
		return -1;
	}
	if (was_empty && q == &s->out)
		session_flush(s); /* the common case: the frame leaves at once */
	session_update_interest(s);
	return 0;
}

static int session_emit(struct guest_session *s, uint8_t type, uint32_t id, const void *payload,
			size_t len)
{
	return session_emit_flags(s, type, 0, id, payload, len);
}

static bool session_congested(struct guest_session *s)
{
	if (!s->congested && guest_outq_bytes(&s->out) > GUEST_OUTQ_HIGH_WATER)
		s->congested = true;
	return s->congested;
}

static void session_update_interest(struct guest_session *s)
{
	struct ember_error *err = NULL;
	uint32_t want = 0;

	if (s->ended || s->watch.fd < 0)
		return;
	/* Parked: out of the epoll set, where a port without a host would report EPOLLHUP on
	 * every wait. agent.c polls it instead. */
	if (!s->parked && (s->state == SESSION_DRAINING || !session_congested(s)))
		want |= EPOLLIN;
	if (!s->parked && guest_outq_bytes(&s->out) > 0)
		want |= EPOLLOUT;
	if (guest_loop_set(s->env->loop, &s->watch, want, &err) < 0) {
		session_end(s, err->message);
		ember_error_free(&err);
	}
}

static void send_error(struct guest_session *s, uint32_t id, const char *code, const char *fmt,
		       ...) __attribute__((format(printf, 4, 5)));

static void send_error(struct guest_session *s, uint32_t id, const char *code, const char *fmt,
		       ...)
{
	struct ember_error *err = NULL;
	va_list ap;
	size_t len;
	char *json;

	va_start(ap, fmt);
	json = proto_error_encodev(code, &len, &err, fmt, ap);
	va_end(ap);
	if (json == NULL) {
		guest_log_error(&err, "encode ERROR");
		return;
	}
	session_emit(s, PROTO_ERROR, id, json, len);
	free(json);
}

/* Forgets a suspension and what it held: the host that suspended is not coming back for it. */
static void drop_suspension(struct guest_session *s)
{
	s->suspended = false;
	s->parked = false;
	guest_outq_release(&s->held);
}

/* A session-level failure (ERROR with id 0): the guest then ends the session. A suspended
 * session fails only on a frame from its host, which then gets the ERROR, not the held frames
 * of execs that die here anyway. */
static void session_fail(struct guest_session *s, const char *code, const char *message)
{
	guest_log("session on %s: %s: %s", s->label, code, message);
	drop_suspension(s);
	send_error(s, 0, code, "%s", message);
	discard_execs(s);
	if (s->kind == GUEST_SESSION_PORT) {
		/* The host stays connected to a virtio-serial port: ignore it until it leaves. */
		s->state = SESSION_DRAINING;
		proto_decoder_release(&s->dec);
		session_update_interest(s);
	} else {
		session_end(s, code);
	}
}

/* --- exec callbacks --- */

static int exec_emit(void *ctx, uint8_t type, uint32_t id, const void *payload, size_t len)
{
	return session_emit(ctx, type, id, payload, len);
}

static bool exec_congested(void *ctx)
{
	struct guest_session *s = ctx;

	/* Suspended: nothing may reach the wire, so output stays in the pipes (the programs block
	 * on them) instead of piling up in the held queue. */
	return s->ended || s->suspended || session_congested(s);
}

static void exec_finished(void *ctx, struct guest_exec *e)
{
	unlink_exec(ctx, e);
}

static const struct guest_exec_ops exec_ops = {
	.emit = exec_emit,
	.congested = exec_congested,
	.finished = exec_finished,
};

/* --- context callbacks --- */

static const struct guest_context_ops context_ops = {
	.emit = exec_emit,
};

/* --- file callbacks --- */

static int files_emit(void *ctx, uint8_t type, uint8_t flags, uint32_t id, const void *payload,
		      size_t len)
{
	return session_emit_flags(ctx, type, flags, id, payload, len);
}

static const struct guest_files_ops files_ops = {
	.emit = files_emit,
	.congested = exec_congested,
};

/* --- frame handlers --- */

/* What HELLO and RESUME share: apply the host's identity (PID 1 only) and encode the READY
 * that answers it at version. A RESUME sets the clock and reseeds the RNG (a restored VM's clock
 * stood still while it was saved, and every restore of one file starts from the same RNG
 * state) but leaves the NIC and mounts alone: they were saved and restored with the rest of
 * RAM. NULL after session_fail. */
static char *accept_hello(struct guest_session *s, const struct proto_hello *hello, bool resume,
			  uint32_t version, size_t *len)
{
	struct proto_ready ready = { .version = version };
	struct ember_error *err = NULL;
	char *json;

	if (s->env->apply_identity &&
	    (guest_identity_apply(hello, &err) < 0 ||
	     (!resume && guest_net_apply(&hello->net, &err) < 0) ||
	     (!resume && hello->mounts.n > 0 &&
	      guest_mounts_apply(&s->env->mounts, &hello->mounts, &err) < 0))) {
		/* A mount point the pack's tree cannot have (a file or a link there) is the
		 * request's fault: the host answers its client 400. */
		session_fail(s, err->kind == EMBER_E_INVALID ? "invalid_argument" : "internal",
			     err->message);
		ember_error_free(&err);
		return NULL;
	}
	snprintf(ready.agent, sizeof(ready.agent), "emberd-init %s", EMBER_VERSION);
	memcpy(ready.sandbox_id, hello->sandbox_id, sizeof(ready.sandbox_id));
	ready.uptime_ms = guest_uptime_ms();
	json = proto_ready_encode(&ready, len, &err);
	if (json == NULL) {
		session_fail(s, "internal", err->message);
		ember_error_free(&err);
	}
	return json;
}

static void handle_hello(struct guest_session *s, const struct proto_frame *f)
{
	struct ember_error *err = NULL;
	struct proto_hello hello;
	uint32_t version;
	size_t len;
	char *json;

	if (s->state == SESSION_READY && (s->kind == GUEST_SESSION_PORT || s->suspended)) {
		/* A virtio-serial port outlives its hosts, and a HELLO in a ready session comes from
		 * a new one whose predecessor left unnoticed: a clone restored from a snapshot taken
		 * before the agent saw the template's host go, or a daemon that lost the state of
		 * a suspended session. A suspended socket session gets it on the connection it
		 * adopted: a fork or a sandbox from a snapshot. Start over for the new host. */
		guest_log("session on %s: a new host said HELLO; starting over", s->label);
		discard_execs(s);
		drop_suspension(s);
		guest_outq_release(&s->out);
		guest_outq_init(&s->out, GUEST_OUTQ_MAX);
		s->congested = false;
		s->state = SESSION_AWAIT_HELLO;
	}
	if (s->state != SESSION_AWAIT_HELLO) {
		session_fail(s, "protocol", "HELLO after the session was ready");
		return;
	}
	if (proto_hello_decode(f->payload, f->header.length, &hello, &err) < 0) {
		session_fail(s, "bad_request", err->message);
		ember_error_free(&err);
		return;
	}
	version = hello.version < PROTO_VERSION ? hello.version : PROTO_VERSION;
	json = accept_hello(s, &hello, false, version, &len);
	if (json == NULL)
		return;
	s->state = SESSION_READY;
	s->version = version;
	memcpy(s->sandbox_id, hello.sandbox_id, sizeof(s->sandbox_id));
	session_emit(s, PROTO_READY, 0, json, len);
	free(json);
	guest_log("session on %s: ready for sandbox %s (version %u)", s->label, hello.sandbox_id,
		  version);
}

/* SUSPEND (version 8): SUSPENDED is the last frame on the wire until RESUME is answered; the
 * host then saves the VM. A virtio-serial port survives that and sees its host come back; a
 * vsock connection does not (Firecracker resets them all at every snapshot): the session then
 * waits, parked, for the next connection to adopt (guest_session_adopt). */
static void handle_suspend(struct guest_session *s)
{
	if (s->version < 8) {
		session_fail(s, "protocol", "SUSPEND in a session below version 8");
		return;
	}
	if (session_emit(s, PROTO_SUSPENDED, 0, NULL, 0) < 0)
		return;
	s->suspended = true;
	guest_log("session on %s: suspended", s->label);
}

/* RESUME (version 8): the VM was restored and a host is attached again. READY, then what was
 * held, in the order it was produced; then execs read their pipes again. */
static void handle_resume(struct guest_session *s, const struct proto_frame *f)
{
	struct ember_error *err = NULL;
	struct proto_hello hello;
	size_t len;
	char *json;

	if (!s->suspended) {
		session_fail(s, "protocol", "RESUME without a suspended session");
		return;
	}
	if (proto_hello_decode(f->payload, f->header.length, &hello, &err) < 0) {
		session_fail(s, "protocol", err->message);
		ember_error_free(&err);
		return;
	}
	if (strcmp(hello.sandbox_id, s->sandbox_id) != 0) {
		session_fail(s, "protocol", "RESUME for another sandbox");
		return;
	}
	json = accept_hello(s, &hello, true, s->version, &len);
	if (json == NULL)
		return;
	s->suspended = false;
	/* Not session_emit: READY must not leave (and nothing may answer a later frame) before
	 * the held frames are queued behind it. */
	if (guest_outq_push(&s->out, PROTO_READY, 0, 0, json, len, &err) < 0) {
		session_end(s, err->message);
		ember_error_free(&err);
		free(json);
		return;
	}
	free(json);
	guest_outq_append(&s->out, &s->held);
	guest_log("session on %s: resumed for sandbox %s", s->label, s->sandbox_id);
	session_flush(s);
	if (!s->ended && !session_congested(s))
		resume_producers(s);
	session_update_interest(s);
}

/* STARTED for a background exec, before any of its output (that is read by the loop later). */
static void send_started(struct guest_session *s, struct guest_exec *e)
{
	struct proto_started msg = { .pid = (int32_t)e->pid };
	struct ember_error *err = NULL;
	size_t len;
	char *json = proto_started_encode(&msg, &len, &err);

	if (json == NULL) {
		guest_log_error(&err, "encode STARTED");
		return;
	}
	session_emit(s, PROTO_STARTED, e->id, json, len);
	free(json);
}

static void add_exec(struct guest_session *s, struct guest_exec *e)
{
	if (s->version >= 2)
		guest_exec_enable_credit(e);
	e->next = s->execs;
	s->execs = e;
	s->env->running_execs++;
}

/* EXEC with a context (version 4): the code runs in that context's interpreter. */
static void start_in_context(struct guest_session *s, uint32_t id, const struct proto_exec *req)
{
	struct guest_context *c = find_context(s, req->context);
	struct ember_error *err = NULL;
	struct guest_exec *e = NULL;

	if (c == NULL) {
		send_error(s, id, "unknown_context", "no context %s", req->context);
	} else if (guest_context_busy(c)) {
		send_error(s, id, "context_busy", "context %s is running an exec", req->context);
	} else if (guest_exec_start_in_context(s->env->loop, &s->env->exec,
					       s->env->next_exec_seq++, id, req, c, &exec_ops, s,
					       &e, &err) < 0) {
		guest_log("exec %u: %s", id, err->message);
		send_error(s, id, err->kind == EMBER_E_GUEST ? "context_failed" : "internal", "%s",
			   err->message);
		ember_error_free(&err);
	} else {
		add_exec(s, e);
	}
}

/* CONTEXT (version 4): open, close or restart one. */
static void handle_context(struct guest_session *s, const struct proto_frame *f)
{
	struct ember_error *err = NULL;
	struct proto_context req;
	struct guest_context *c;
	uint32_t id = f->header.id;

	if (s->version < 4) {
		session_fail(s, "protocol", "CONTEXT in a session below version 4");
		return;
	}
	if (proto_context_decode(f->payload, f->header.length, &req, &err) < 0) {
		send_error(s, id, "bad_request", "%s", err->message);
		ember_error_free(&err);
		return;
	}
	c = find_context(s, req.id);
	if (req.op == PROTO_CONTEXT_OPEN) {
		if (c != NULL) {
			send_error(s, id, "exists", "context %s exists", req.id);
		} else if (s->ncontexts >= GUEST_MAX_CONTEXTS) {
			send_error(s, id, "too_many_contexts", "%u contexts exist already",
				   GUEST_MAX_CONTEXTS);
		} else if (guest_context_open(s->env->loop, &s->env->exec, &req, id, &context_ops, s,
					      &c, &err) < 0) {
			guest_log("context %s: %s", req.id, err->message);
			send_error(s, id, err->kind == EMBER_E_GUEST ? "context_failed" : "internal",
				   "%s", err->message);
			ember_error_free(&err);
		} else {
			guest_context_set_next(c, s->contexts);
			s->contexts = c;
			s->ncontexts++;
		}
	} else if (c == NULL) {
		send_error(s, id, "unknown_context", "no context %s", req.id);
	} else if (req.op == PROTO_CONTEXT_RESTART) {
		guest_context_restart(c, id);
	} else {
		struct guest_context *prev = NULL, *cur;
		size_t len;
		char *json;

		for (cur = s->contexts; cur != c; cur = guest_context_next(cur))
			prev = cur;
		if (prev != NULL)
			guest_context_set_next(prev, guest_context_next(c));
		else
			s->contexts = guest_context_next(c);
		s->ncontexts--;
		guest_context_close(c);
		json = proto_context_reply_encode(0, &len, &err);
		if (json != NULL)
			session_emit(s, PROTO_CONTEXT_REPLY, id, json, len);
		else
			guest_log_error(&err, "encode CONTEXT_REPLY");
		free(json);
	}
	proto_context_release(&req);
}

static void handle_exec(struct guest_session *s, const struct proto_frame *f)
{
	struct ember_error *err = NULL;
	struct proto_exec req;
	struct guest_exec *e = NULL;
	uint32_t id = f->header.id;

	if (proto_exec_decode(f->payload, f->header.length, &req, &err) < 0) {
		send_error(s, id, "bad_request", "%s", err->message);
		ember_error_free(&err);
		return;
	}
	if (s->version < 3 && (req.background || req.command || req.cwd != NULL)) {
		send_error(s, id, "bad_request", "background, command and cwd need version 3");
	} else if (s->version < 4 && (req.context != NULL || req.fresh_interpreter)) {
		send_error(s, id, "bad_request", "context and fresh_interpreter need version 4");
	} else if (s->version < 6 && req.code_argument) {
		send_error(s, id, "bad_request", "code_argument needs version 6");
	} else if (find_exec(s, id) != NULL || guest_files_busy(&s->files, id)) {
		send_error(s, id, "duplicate_id", "request id %u is in use", id);
	} else if (s->env->running_execs >= GUEST_MAX_EXECS) {
		send_error(s, id, "too_many_execs", "%u execs already running", GUEST_MAX_EXECS);
	} else if (req.context != NULL) {
		start_in_context(s, id, &req);
	} else if (guest_exec_start(s->env->loop, &s->env->exec, s->env->next_exec_seq++, id, &req,
				    &exec_ops, s, &e, &err) < 0) {
		guest_log("exec %u: %s", id, err->message);
		send_error(s, id, err->kind == EMBER_E_GUEST ? "spawn_failed" : "internal", "%s",
			   err->message);
		ember_error_free(&err);
	} else {
		add_exec(s, e);
		if (req.background)
			send_started(s, e);
	}
	proto_exec_release(&req);
}

static void handle_stdin(struct guest_session *s, const struct proto_frame *f)
{
	struct guest_exec *e = find_exec(s, f->header.id);
	struct ember_error *err = NULL;

	if (e == NULL) {
		send_error(s, f->header.id, "unknown_id", "no running exec %u", f->header.id);
		return;
	}
	if (guest_exec_stdin(e, f->payload, f->header.length,
			     (f->header.flags & PROTO_FLAG_FIN) != 0, &err) < 0) {
		/* The exec is failed as a whole: ERROR for its id, and no EXIT. */
		guest_exec_discard(e);
		unlink_exec(s, e);
		send_error(s, f->header.id, "bad_request", "%s", err->message);
		ember_error_free(&err);
	}
}

static void handle_cancel(struct guest_session *s, const struct proto_frame *f)
{
	struct guest_exec *e = find_exec(s, f->header.id);

	if (e == NULL && guest_files_cancel(&s->files, f->header.id))
		return; /* a file transfer: abandoned, nothing more is sent for it */
	if (e == NULL)
		send_error(s, f->header.id, "unknown_id", "no running exec %u", f->header.id);
	else
		guest_exec_cancel(e);
}

/* SIGNAL (version 3): a signal number for an exec's process group. */
static void handle_signal(struct guest_session *s, const struct proto_frame *f)
{
	struct guest_exec *e = find_exec(s, f->header.id);
	const uint8_t *p = f->payload;
	uint32_t sig;

	if (s->version < 3) {
		session_fail(s, "protocol", "SIGNAL in a session below version 3");
		return;
	}
	if (f->header.length != 4) {
		send_error(s, f->header.id, "bad_request", "SIGNAL carries 4 bytes");
		return;
	}
	sig = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	if (sig < 1 || sig > 64)
		send_error(s, f->header.id, "bad_request", "signal %u is not 1..64", sig);
	else if (e == NULL || e->finished)
		send_error(s, f->header.id, "unknown_id", "no running exec %u", f->header.id);
	else
		guest_exec_signal(e, (int)sig);
}

/* CREDIT for an id that is not running is dropped: it crosses the EXIT on the wire. */
static void handle_credit(struct guest_session *s, const struct proto_frame *f)
{
	struct guest_exec *e = find_exec(s, f->header.id);
	struct ember_error *err = NULL;
	uint32_t bytes;

	if (s->version < 2) {
		session_fail(s, "protocol", "CREDIT in a version-1 session");
		return;
	}
	if (proto_credit_decode(f->payload, f->header.length, &bytes, &err) < 0) {
		session_fail(s, "protocol", err->message);
		ember_error_free(&err);
		return;
	}
	if (e != NULL && !e->finished)
		guest_exec_credit(e, bytes);
	else if (e == NULL)
		guest_files_credit(&s->files, f->header.id, bytes);
}

/* FS and DATA belong to version 3: in an older session they are a protocol error. */
static bool files_allowed(struct guest_session *s, const struct proto_frame *f)
{
	if (s->version >= 3)
		return true;
	session_fail(s, "protocol", f->header.type == PROTO_FS ? "FS in a session below version 3" :
								 "DATA in a session below version 3");
	return false;
}

static void handle_fs(struct guest_session *s, const struct proto_frame *f)
{
	uint32_t id = f->header.id;

	if (!files_allowed(s, f))
		return;
	if (find_exec(s, id) != NULL || guest_files_busy(&s->files, id)) {
		send_error(s, id, "bad_request", "request id %u is in use", id);
		return;
	}
	guest_files_request(&s->files, id, f->payload, f->header.length);
}

static void handle_data(struct guest_session *s, const struct proto_frame *f)
{
	struct ember_error *err = NULL;

	if (!files_allowed(s, f))
		return;
	if (guest_files_data(&s->files, f->header.id, f->payload, f->header.length,
			     (f->header.flags & PROTO_FLAG_FIN) != 0, &err) < 0) {
		session_fail(s, "protocol", err->message);
		ember_error_free(&err);
	}
}

static void handle_ps(struct guest_session *s, const struct proto_frame *f)
{
	struct ember_error *err = NULL;
	struct proto_process *procs = calloc(PROTO_PS_MAX, sizeof(*procs));
	size_t count = 0, len;
	char *json = NULL;

	if (procs == NULL) {
		send_error(s, f->header.id, "internal", "out of memory");
		return;
	}
	if (guest_ps_list("/proc", procs, PROTO_PS_MAX, &count, &err) < 0 ||
	    (json = proto_ps_encode(procs, count, &len, &err)) == NULL) {
		send_error(s, f->header.id, "internal", "%s", err->message);
		ember_error_free(&err);
	} else {
		session_emit(s, PROTO_PS_REPLY, f->header.id, json, len);
	}
	free(json);
	free(procs);
}

static void handle_frame(struct guest_session *s, const struct proto_frame *f)
{
	uint8_t type = f->header.type;

	if (s->suspended && type != PROTO_HELLO && type != PROTO_RESUME) {
		char message[96];

		/* The host sends nothing between SUSPEND and RESUME. */
		snprintf(message, sizeof(message), "%s while suspended", proto_type_name(type));
		session_fail(s, "protocol", message);
		return;
	}
	switch (type) {
	case PROTO_HELLO:
		handle_hello(s, f);
		return;
	case PROTO_RESUME:
		handle_resume(s, f);
		return;
	case PROTO_ERROR:
		/* The host failed something; id 0 means it is ending the session. */
		guest_log("session on %s: host sent ERROR for id %u", s->label, f->header.id);
		if (f->header.id == 0)
			session_end(s, "host reported a session error");
		return;
	case PROTO_EXEC:
	case PROTO_STDIN:
	case PROTO_CANCEL:
	case PROTO_PS:
	case PROTO_PING:
	case PROTO_CREDIT:
	case PROTO_FS:
	case PROTO_DATA:
	case PROTO_SIGNAL:
	case PROTO_CONTEXT:
	case PROTO_SUSPEND:
		break;
	default:
		session_fail(s, "protocol", "the host sent a guest-to-host frame type");
		return;
	}
	if (s->state != SESSION_READY) {
		if (f->header.id == 0)
			session_fail(s, "not_ready", "HELLO must come first");
		else
			send_error(s, f->header.id, "not_ready", "HELLO must come first");
		return;
	}
	if (f->header.id == 0 && type != PROTO_PING && type != PROTO_PS && type != PROTO_SUSPEND) {
		session_fail(s, "protocol", "request id 0 is reserved for the session");
		return;
	}
	switch (type) {
	case PROTO_EXEC:
		handle_exec(s, f);
		break;
	case PROTO_STDIN:
		handle_stdin(s, f);
		break;
	case PROTO_CANCEL:
		handle_cancel(s, f);
		break;
	case PROTO_CREDIT:
		handle_credit(s, f);
		break;
	case PROTO_SIGNAL:
		handle_signal(s, f);
		break;
	case PROTO_PS:
		handle_ps(s, f);
		break;
	case PROTO_PING:
		session_emit(s, PROTO_PONG, f->header.id, f->payload, f->header.length);
		break;
	case PROTO_FS:
		handle_fs(s, f);
		break;
	case PROTO_DATA:
		handle_data(s, f);
		break;
	case PROTO_CONTEXT:
		handle_context(s, f);
		break;
	case PROTO_SUSPEND:
		handle_suspend(s);
		break;
	default:
		break;
	}
}

static void session_process_frames(struct guest_session *s)
{
	while (!s->ended && s->state != SESSION_DRAINING && !session_congested(s)) {
		struct ember_error *err = NULL;
		struct proto_frame frame;
		int ret = proto_decoder_next(&s->dec, &frame, &err);

		if (ret == 0)
			break;
		if (ret < 0) {
			session_fail(s, "protocol", err->message);
			ember_error_free(&err);
			break;
		}
		handle_frame(s, &frame);
	}
}

static void session_ready(struct guest_watch *w, uint32_t events);

/* The host went away (read() == 0, a reset or a hangup): the end of the session, unless it is
 * suspended, when the host is expected to come back with RESUME on the same port or on a new
 * connection (a socket's dead one is closed here). */
static void session_host_gone(struct guest_session *s, const char *why)
{
	if (!s->suspended) {
		session_end(s, why);
		return;
	}
	if (!s->parked)
		guest_log("session on %s: host gone while suspended; waiting for it", s->label);
	s->parked = true;
	if (s->kind == GUEST_SESSION_SOCKET)
		guest_loop_close(s->env->loop, &s->watch);
	session_update_interest(s);
}

bool guest_session_awaits_resume(const struct guest_session *s)
{
	return s->suspended && s->kind == GUEST_SESSION_SOCKET;
}

int guest_session_adopt(struct guest_session *s, int fd, struct ember_error **err)
{
	/* What the old connection still held, either way, went with it: the host saved the VM
	 * only after SUSPENDED arrived, and it sends nothing before RESUME. */
	guest_loop_close(s->env->loop, &s->watch);
	proto_decoder_release(&s->dec);
	proto_decoder_init(&s->dec);
	guest_outq_release(&s->out);
	guest_outq_init(&s->out, GUEST_OUTQ_MAX);
	s->congested = false;
	s->parked = false;
	guest_watch_init(&s->watch, fd, session_ready);
	if (guest_loop_set(s->env->loop, &s->watch, EPOLLIN, err) < 0) {
		session_end(s, "cannot watch the new connection");
		return -1;
	}
	guest_log("session on %s: a new connection takes the suspended session", s->label);
	return 0;
}

bool guest_session_parked(const struct guest_session *s)
{
	return s->parked;
}

int guest_session_fd(const struct guest_session *s)
{
	return s->watch.fd;
}

void guest_session_unpark(struct guest_session *s)
{
	if (!s->parked)
		return;
	guest_log("session on %s: a host is attached again", s->label);
	s->parked = false;
	session_update_interest(s);
}

static void session_discard_input(struct guest_session *s)
{
	uint8_t buf[4096];
	int i;

	for (i = 0; i < 16; i++) {
		ssize_t n = read(s->watch.fd, buf, sizeof(buf));

		if (n == 0) {
			session_end(s, "host disconnected");
			return;
		}
		if (n < 0) {
			if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
				session_end(s, strerror(errno));
			return;
		}
	}
}

static void session_read(struct guest_session *s)
{
	struct ember_error *err = NULL;
	uint8_t *space;
	size_t avail;
	ssize_t n;

	if (s->state == SESSION_DRAINING) {
		session_discard_input(s);
		return;
	}
	session_process_frames(s);
	if (s->ended || s->state == SESSION_DRAINING || session_congested(s))
		return;
	space = proto_decoder_space(&s->dec, &avail, &err);
	if (space == NULL) {
		session_fail(s, "internal", err->message);
		ember_error_free(&err);
		return;
	}
	do {
		n = read(s->watch.fd, space, avail);
	} while (n < 0 && errno == EINTR);
	if (n == 0 || (n < 0 && errno == ECONNRESET)) { /* a vsock transport reset: the latter */
		session_host_gone(s, "host disconnected");
		return;
	}
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			session_end(s, strerror(errno));
		return;
	}
	s->heard = true;
	proto_decoder_commit(&s->dec, (size_t)n);
	session_process_frames(s);
}

static void session_ready(struct guest_watch *w, uint32_t events)
{
	struct guest_session *s = guest_container_of(w, struct guest_session, watch);

	if (events & EPOLLOUT)
		session_flush(s);
	if (!s->ended && (events & EPOLLIN))
		session_read(s);
	/* Hangup with nothing left to read: the host is gone (a closed virtio-serial port reports
	 * this at once, and without the check a congested session would spin on it). */
	if (!s->ended && (events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLIN))
		session_host_gone(s, "host disconnected");
	session_update_interest(s);
}

int guest_session_new(struct guest_session_env *env, int fd, enum guest_session_kind kind,
		      const char *label, struct guest_session **out, struct ember_error **err)
{
	struct guest_session *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		close(fd);
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	s->env = env;
	s->kind = kind;
	s->state = SESSION_AWAIT_HELLO;
	snprintf(s->label, sizeof(s->label), "%s", label);
	proto_decoder_init(&s->dec);
	guest_outq_init(&s->out, GUEST_OUTQ_MAX);
	guest_outq_init(&s->held, GUEST_OUTQ_MAX);
	guest_files_init(&s->files, &env->exec, &env->running_transfers, &files_ops, s);
	guest_watch_init(&s->watch, fd, session_ready);
	if (guest_loop_set(env->loop, &s->watch, EPOLLIN, err) < 0) {
		guest_session_free(s);
		return -1;
	}
	*out = s;
	return 0;
}

static void session_free_deferred(struct guest_deferred *d)
{
	free(guest_container_of(d, struct guest_session, deferred));
}

int guest_session_take_fd(struct guest_session *s)
{
	int fd = s->watch.fd;

	guest_loop_set(s->env->loop, &s->watch, 0, NULL);
	s->watch.fd = -1;
	s->watch.events = 0;
	return fd;
}

void guest_session_free(struct guest_session *s)
{
	if (s == NULL)
		return;
	discard_execs(s);
	if (s->watch.fd >= 0) {
		uint8_t buf[4096];
		size_t drained = 0;
		ssize_t n;

		/* Last words (an ERROR) go out if the socket takes them now; never wait. */
		guest_outq_flush(&s->out, s->watch.fd, NULL);
		if (s->kind == GUEST_SESSION_SOCKET) {
			while (drained < SESSION_CLOSE_DRAIN &&
			       (n = read(s->watch.fd, buf, sizeof(buf))) > 0)
				drained += (size_t)n;
		}
	}
	guest_loop_close(s->env->loop, &s->watch);
	proto_decoder_release(&s->dec);
	guest_outq_release(&s->out);
	guest_outq_release(&s->held); /* never sent: SUSPENDED stays the last frame */
	/* A session may be replaced from another watch's handler while an event for its own fd is
	 * still in the current batch: the memory stays until the batch is over. */
	guest_loop_defer_free(s->env->loop, &s->deferred, session_free_deferred);
}
