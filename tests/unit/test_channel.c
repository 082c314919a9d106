/* Unit tests for the host channel's file operations (src/channel/channel.c, protocol version 3):
 * the "guest agent" is a thread speaking the real protocol on a socketpair with an in-memory
 * idea of files. It checks the host's side of credit (an upload never sends past the guest's
 * credit; a download's consumer grants as it reads) and the host checks the guest's. Paths tell
 * the fake what to do: "big" (a download of BIG_SIZE patterned bytes), "denied" (ERROR
 * permission_denied), "missing" (ERROR not_found), "full" (an upload that fails with no_space
 * after NOSPACE_AT bytes), "dir" (a directory), anything else (a file of 5 bytes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel/channel.h"
#include "proto/credit.h"
#include "proto/frame.h"
#include "proto/fsmsg.h"
#include "proto/io.h"
#include "proto/messages.h"
#include "util/fdio.h"
#include "util/timeutil.h"

#define BIG_SIZE (3u * 1024u * 1024u + 123u)
#define NOSPACE_AT (600u * 1024u)
#define SID "sb_0123456789abcdef0123456789abcdef"

struct fake {
	int fd;
	pthread_t thread;
	uint32_t version;
	/* what the fake saw (read after the thread ended) */
	uint64_t uploaded;
	bool cancelled;
	bool over_credit;
	/* suspend/resume (version 8): what the fake does with a SUSPEND */
	bool ignore_suspend;      /* never answers it */
	bool junk_after_suspend;  /* answers, then sends a frame more (a broken guest) */
	bool suspended;           /* it answered (its thread then ends: the VM stopped) */
};

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 7 + (off >> 12));
}

static void send_json(int fd, uint8_t type, uint32_t id, char *text, size_t len)
{
	assert_non_null(text);
	/* may fail once the host closed the channel (the end of a test) */
	proto_send(fd, type, 0, id, text, len, time_mono_ms() + 5000, NULL);
	free(text);
}

static void send_error(int fd, uint32_t id, const char *code)
{
	size_t len;
	char *text = proto_error_encode(code, "said the fake", &len, NULL);

	send_json(fd, PROTO_ERROR, id, text, len);
}

static void send_reply(int fd, uint32_t id, const struct proto_fs_reply *reply)
{
	size_t len;
	char *text = proto_fs_reply_encode(reply, &len, NULL);

	send_json(fd, PROTO_FS_REPLY, id, text, len);
}

static void send_credit(int fd, uint32_t id, uint32_t n)
{
	uint8_t payload[PROTO_CREDIT_PAYLOAD];

	proto_credit_encode(payload, n);
	proto_send(fd, PROTO_CREDIT, 0, id, payload, sizeof(payload), time_mono_ms() + 5000, NULL);
}

/* A download of BIG_SIZE bytes within the host's credit: waits for CREDIT when it has none. */
static void serve_big_read(struct fake *fk, struct proto_decoder *dec, uint32_t id)
{
	struct proto_fs_reply reply = { .kind = PROTO_FS_REPLY_ENTRY };
	static uint8_t chunk[PROTO_MAX_DATA_CHUNK];
	uint64_t credit = PROTO_CREDIT_WINDOW, off = 0;
	struct proto_frame f;

	strcpy(reply.entry.name, "big");
	reply.entry.size = BIG_SIZE;
	reply.entry.mode = 0644;
	send_reply(fk->fd, id, &reply);
	while (off < BIG_SIZE) {
		size_t n = BIG_SIZE - off < sizeof(chunk) ? BIG_SIZE - off : sizeof(chunk);
		size_t i;

		while (credit == 0) {
			uint32_t more;

			if (proto_recv(fk->fd, dec, &f, time_mono_ms() + 10000, NULL) != 1)
				return;
			if (f.header.type == PROTO_CANCEL) {
				fk->cancelled = true;
				return;
			}
			assert_int_equal(f.header.type, PROTO_CREDIT);
			assert_int_equal(proto_credit_decode(f.payload, f.header.length, &more, NULL),
					 0);
			credit += more;
		}
		if (n > credit)
			n = (size_t)credit;
		for (i = 0; i < n; i++)
			chunk[i] = pattern(off + i);
		off += n;
		credit -= n;
		/* fails once a host that cancelled closed the channel */
		if (proto_send(fk->fd, PROTO_DATA, off == BIG_SIZE ? PROTO_FLAG_FIN : 0, id, chunk,
			       n, time_mono_ms() + 10000, NULL) < 0)
			return;
	}
}

/* The upload in progress (one at a time). */
struct upload {
	uint32_t id;
	bool active;
	bool full;
	uint64_t credit;
	uint64_t size;
};

static void on_data(struct fake *fk, struct upload *up, const struct proto_frame *f)
{
	size_t len;

	if (!up->active || f->header.id != up->id)
		return; /* late DATA for an abandoned upload: dropped */
	if (f->header.length > up->credit)
		fk->over_credit = true;
	up->credit -= f->header.length;
	up->size += f->header.length;
	fk->uploaded += f->header.length;
	if (up->full && up->size > NOSPACE_AT) {
		send_error(fk->fd, up->id, "no_space");
		up->active = false;
		return;
	}
	if (f->header.length > 0) {
		up->credit += f->header.length;
		send_credit(fk->fd, up->id, f->header.length);
	}
	if ((f->header.flags & PROTO_FLAG_FIN) != 0) {
		struct proto_fs_reply reply = { .kind = PROTO_FS_REPLY_WRITTEN };

		strcpy(reply.path, "/home/sandbox/up");
		reply.size = up->size;
		memset(reply.sha256, 'a', 64);
		send_reply(fk->fd, up->id, &reply);
		up->active = false;
	}
	(void)len;
}

static void on_fs(struct fake *fk, struct proto_decoder *dec, struct upload *up,
		  const struct proto_frame *f)
{
	struct proto_fs_request req;
	struct proto_fs_reply reply = { .kind = PROTO_FS_REPLY_NONE };

	assert_int_equal(proto_fs_request_decode(f->payload, f->header.length, &req, NULL), 0);
	if (strcmp(req.path, "denied") == 0) {
		send_error(fk->fd, f->header.id, "permission_denied");
		return;
	}
	if (strcmp(req.path, "missing") == 0) {
		send_error(fk->fd, f->header.id, "not_found");
		return;
	}
	if (req.op == PROTO_FS_READ && strcmp(req.path, "big") == 0) {
		serve_big_read(fk, dec, f->header.id);
		return;
	}
	if (req.op == PROTO_FS_WRITE) {
		*up = (struct upload){ .id = f->header.id, .active = true,
				       .full = strcmp(req.path, "full") == 0,
				       .credit = PROTO_CREDIT_WINDOW };
		return;
	}
	if (req.op == PROTO_FS_STAT || req.op == PROTO_FS_READ) {
		reply.kind = PROTO_FS_REPLY_ENTRY;
		snprintf(reply.entry.name, sizeof(reply.entry.name), "%s", req.path);
		reply.entry.type = strcmp(req.path, "dir") == 0 ? PROTO_FS_TYPE_DIR
								: PROTO_FS_TYPE_FILE;
		reply.entry.size = 5;
		reply.entry.mode = 0600;
		reply.entry.mtime_s = 1700000000;
	}
	send_reply(fk->fd, f->header.id, &reply);
	if (req.op == PROTO_FS_READ)
		assert_int_equal(proto_send(fk->fd, PROTO_DATA, PROTO_FLAG_FIN, f->header.id,
					    "hello", 5, time_mono_ms() + 5000, NULL), 0);
}

static void *fake_main(void *arg)
{
	struct fake *fk = arg;
	struct proto_decoder dec;
	struct proto_frame f;
	struct upload up = { 0 };

	proto_decoder_init(&dec);
	while (proto_recv(fk->fd, &dec, &f, -1, NULL) == 1) {
		if (f.header.type == PROTO_SUSPEND) {
			if (fk->ignore_suspend)
				continue;
			if (fk->junk_after_suspend) {
				/* both in one write: the host reads them together */
				uint8_t two[2 * PROTO_HEADER_SIZE + 1] = { 0 };
				struct proto_header h1 = { .type = PROTO_SUSPENDED };
				struct proto_header h2 = { .type = PROTO_PONG, .id = 7,
							   .length = 1 };

				proto_header_encode(two, &h1);
				proto_header_encode(two + PROTO_HEADER_SIZE, &h2);
				two[2 * PROTO_HEADER_SIZE] = 'x';
				assert_int_equal(fd_write_all(fk->fd, two, sizeof(two),
							      time_mono_ms() + 5000, NULL), 0);
			} else {
				proto_send(fk->fd, PROTO_SUSPENDED, 0, 0, NULL, 0,
					   time_mono_ms() + 5000, NULL);
			}
			fk->suspended = true;
			break;
		}
		if (f.header.type == PROTO_HELLO || f.header.type == PROTO_RESUME) {
			struct proto_hello hello;
			struct proto_ready ready = { .version = fk->version, .uptime_ms = 1 };
			size_t len;
			char *text;

			assert_int_equal(proto_hello_decode(f.payload, f.header.length, &hello, NULL),
					 0);
			strcpy(ready.agent, "fake");
			strcpy(ready.sandbox_id, hello.sandbox_id);
			text = proto_ready_encode(&ready, &len, NULL);
			send_json(fk->fd, PROTO_READY, 0, text, len);
		} else if (f.header.type == PROTO_FS) {
			on_fs(fk, &dec, &up, &f);
		} else if (f.header.type == PROTO_DATA) {
			on_data(fk, &up, &f);
		} else if (f.header.type == PROTO_CANCEL) {
			fk->cancelled = true;
			if (up.active && up.id == f.header.id)
				up.active = false;
		}
	}
	proto_decoder_release(&dec);
	return NULL;
}

static struct channel *open_fake(struct fake *fk, uint32_t version)
{
	struct proto_ready ready;
	struct channel *ch = NULL;
	struct ember_error *err = NULL;
	int sv[2];

	memset(fk, 0, sizeof(*fk));
	fk->version = version;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fd_set_nonblock(sv[0], 1);
	fd_set_nonblock(sv[1], 1);
	fk->fd = sv[1];
	assert_int_equal(pthread_create(&fk->thread, NULL, fake_main, fk), 0);
	if (channel_open(sv[0], SID, NULL, NULL, -1, time_mono_ms() + 5000, &ch, &ready, &err) < 0)
		fail_msg("channel_open: %s", err->message);
	return ch;
}

static void close_fake(struct fake *fk, struct channel *ch)
{
	channel_close(ch);
	pthread_join(fk->thread, NULL);
	close(fk->fd);
}

/* A second fake on a fresh socketpair, as a restored VM's agent: returns the host's end. */
static int start_fake(struct fake *fk, uint32_t version)
{
	int sv[2];

	memset(fk, 0, sizeof(*fk));
	fk->version = version;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fd_set_nonblock(sv[0], 1);
	fd_set_nonblock(sv[1], 1);
	fk->fd = sv[1];
	assert_int_equal(pthread_create(&fk->thread, NULL, fake_main, fk), 0);
	return sv[0];
}

static void stat_dir(struct channel *ch, struct ember_error **err, int expect)
{
	struct proto_fs_request req = { .op = PROTO_FS_STAT };
	struct proto_fs_reply reply = { 0 };

	strcpy(req.path, "dir");
	assert_int_equal(channel_fs(ch, &req, time_mono_ms() + 5000, &reply, err), expect);
	if (expect == 0)
		proto_fs_reply_release(&reply);
}

static void suspend_and_resume_on_a_new_stream(void **state)
{
	struct ember_error *err = NULL;
	struct fake fk, fk2;
	struct channel *ch = open_fake(&fk, 8);
	int fd;

	(void)state;
	assert_int_equal(channel_suspend(ch, time_mono_ms() + 5000, NULL), 0);
	pthread_join(fk.thread, NULL); /* the "VM" stopped */
	assert_true(fk.suspended);
	/* Paused: nothing new starts, the channel is not broken. */
	stat_dir(ch, &err, -1);
	assert_int_equal(err->kind, EMBER_E_CONFLICT);
	ember_error_free(&err);
	assert_int_equal(channel_suspend(ch, time_mono_ms() + 5000, &err), -1);
	assert_int_equal(err->kind, EMBER_E_CONFLICT);
	ember_error_free(&err);
	assert_false(channel_broken(ch, NULL, 0));
	close(fk.fd);
	fd = start_fake(&fk2, 8);
	assert_int_equal(channel_resume(ch, fd, -1, time_mono_ms() + 5000, NULL), 0);
	stat_dir(ch, NULL, 0);
	/* and again, the same stream kept (a fork's source runs on) */
	fk2.suspended = false;
	assert_int_equal(channel_suspend(ch, time_mono_ms() + 5000, NULL), 0);
	pthread_join(fk2.thread, NULL);
	fk2.suspended = false;
	assert_int_equal(pthread_create(&fk2.thread, NULL, fake_main, &fk2), 0);
	assert_int_equal(channel_resume(ch, -1, -1, time_mono_ms() + 5000, NULL), 0);
	stat_dir(ch, NULL, 0);
	close_fake(&fk2, ch);
}

static void suspend_needs_version_8_and_an_answer(void **state)
{
	struct ember_error *err = NULL;
	struct fake fk;
	struct channel *ch = open_fake(&fk, 7);

	(void)state;
	assert_int_equal(channel_suspend(ch, time_mono_ms() + 5000, &err), -1);
	assert_int_equal(err->kind, EMBER_E_CONFLICT);
	assert_non_null(strstr(err->message, "version 7"));
	ember_error_free(&err);
	stat_dir(ch, NULL, 0); /* nothing changed */
	close_fake(&fk, ch);

	ch = open_fake(&fk, 8);
	fk.ignore_suspend = true;
	assert_int_equal(channel_suspend(ch, time_mono_ms() + 300, &err), -1);
	assert_int_equal(err->kind, EMBER_E_GUEST_TIMEOUT);
	ember_error_free(&err);
	assert_true(channel_broken(ch, NULL, 0));
	close_fake(&fk, ch);
}

static void bytes_after_suspended_fail_the_resume(void **state)
{
	struct ember_error *err = NULL;
	struct fake fk, fk2;
	struct channel *ch = open_fake(&fk, 8);
	int fd;

	(void)state;
	fk.junk_after_suspend = true;
	assert_int_equal(channel_suspend(ch, time_mono_ms() + 5000, NULL), 0);
	pthread_join(fk.thread, NULL);
	close(fk.fd);
	fd = start_fake(&fk2, 8);
	assert_int_equal(channel_resume(ch, fd, -1, time_mono_ms() + 5000, &err), -1);
	assert_int_equal(err->kind, EMBER_E_PROTOCOL);
	assert_non_null(strstr(err->message, "after SUSPENDED"));
	ember_error_free(&err);
	assert_true(channel_broken(ch, NULL, 0));
	close_fake(&fk2, ch);
}

static void stat_and_errors_map_to_kinds(void **state)
{
	struct proto_fs_request req = { .op = PROTO_FS_STAT };
	struct proto_fs_reply reply;
	struct ember_error *err = NULL;
	struct fake fk;
	struct channel *ch = open_fake(&fk, 3);

	(void)state;
	strcpy(req.path, "dir");
	assert_int_equal(channel_fs(ch, &req, time_mono_ms() + 5000, &reply, NULL), 0);
	assert_int_equal(reply.kind, PROTO_FS_REPLY_ENTRY);
	assert_int_equal(reply.entry.type, PROTO_FS_TYPE_DIR);
	proto_fs_reply_release(&reply);
	strcpy(req.path, "missing");
	assert_int_equal(channel_fs(ch, &req, time_mono_ms() + 5000, &reply, &err), -1);
	assert_int_equal(err->kind, EMBER_E_NOT_FOUND);
	ember_error_free(&err);
	strcpy(req.path, "denied");
	assert_int_equal(channel_fs(ch, &req, time_mono_ms() + 5000, &reply, &err), -1);
	assert_int_equal(err->kind, EMBER_E_FORBIDDEN);
	ember_error_free(&err);
	assert_false(channel_broken(ch, NULL, 0));
	assert_int_equal(channel_inflight(ch), 0);
	close_fake(&fk, ch);
}

static void old_guest_gets_conflict(void **state)
{
	struct proto_fs_request req = { .op = PROTO_FS_STAT };
	struct proto_fs_reply reply;
	struct ember_error *err = NULL;
	struct channel_transfer *t = NULL;
	struct proto_fs_entry entry;
	struct fake fk;
	struct channel *ch = open_fake(&fk, 2);

	(void)state;
	strcpy(req.path, "x");
	assert_int_equal(channel_fs(ch, &req, time_mono_ms() + 5000, &reply, &err), -1);
	assert_int_equal(err->kind, EMBER_E_CONFLICT);
	assert_non_null(strstr(err->message, "protocol version 2"));
	ember_error_free(&err);
	assert_int_equal(channel_download_open(ch, "x", &t, &entry, &err), -1);
	assert_int_equal(err->kind, EMBER_E_CONFLICT);
	ember_error_free(&err);
	close_fake(&fk, ch);
}

static void download_streams_within_credit(void **state)
{
	static uint8_t buf[40000]; /* not a multiple of a frame: chunks are split */
	struct channel_transfer *t = NULL;
	struct proto_fs_entry entry;
	uint64_t total = 0;
	bool same = true;
	struct fake fk;
	struct channel *ch = open_fake(&fk, 3);
	ssize_t n;

	(void)state;
	assert_int_equal(channel_download_open(ch, "big", &t, &entry, NULL), 0);
	assert_int_equal(entry.size, BIG_SIZE);
	while ((n = channel_download_read(t, buf, sizeof(buf), NULL)) > 0) {
		ssize_t i;

		for (i = 0; i < n; i++)
			same = same && buf[i] == pattern(total + (uint64_t)i);
		total += (uint64_t)n;
	}
	assert_int_equal(n, 0);
	assert_int_equal(total, BIG_SIZE);
	assert_true(same);
	channel_transfer_close(t);
	/* a small one: header, then the whole file with FIN */
	assert_int_equal(channel_download_open(ch, "small", &t, &entry, NULL), 0);
	assert_int_equal(channel_download_read(t, buf, sizeof(buf), NULL), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(channel_download_read(t, buf, sizeof(buf), NULL), 0);
	channel_transfer_close(t);
	assert_false(channel_broken(ch, NULL, 0));
	close_fake(&fk, ch);
	assert_false(fk.cancelled);
}

static void download_closed_early_cancels(void **state)
{
	uint8_t buf[1000];
	struct channel_transfer *t = NULL;
	struct proto_fs_entry entry;
	struct fake fk;
	struct channel *ch = open_fake(&fk, 3);

	(void)state;
	assert_int_equal(channel_download_open(ch, "big", &t, &entry, NULL), 0);
	assert_int_equal(channel_download_read(t, buf, sizeof(buf), NULL), (ssize_t)sizeof(buf));
	channel_transfer_close(t);
	close_fake(&fk, ch);
	assert_true(fk.cancelled);
}

static void upload_is_paced_by_guest_credit(void **state)
{
	static uint8_t data[100000];
	struct proto_fs_request req = { .op = PROTO_FS_WRITE };
	struct channel_transfer *t = NULL;
	struct proto_fs_reply reply;
	struct fake fk;
	struct channel *ch = open_fake(&fk, 3);
	int i;

	(void)state;
	strcpy(req.path, "up");
	memset(data, 'x', sizeof(data));
	assert_int_equal(channel_upload_open(ch, &req, &t, NULL), 0);
	for (i = 0; i < 30; i++)
		assert_int_equal(channel_upload_write(t, data, sizeof(data), NULL), 0);
	assert_int_equal(channel_upload_finish(t, &reply, NULL), 0);
	assert_int_equal(reply.kind, PROTO_FS_REPLY_WRITTEN);
	assert_int_equal(reply.size, 30u * sizeof(data));
	assert_string_equal(reply.path, "/home/sandbox/up");
	proto_fs_reply_release(&reply);
	channel_transfer_close(t);
	close_fake(&fk, ch);
	assert_false(fk.over_credit);
	assert_int_equal(fk.uploaded, 30u * sizeof(data));
	assert_false(fk.cancelled);
}

static void upload_refused_and_full_fail_cleanly(void **state)
{
	static uint8_t data[64 * 1024];
	struct proto_fs_request req = { .op = PROTO_FS_WRITE };
	struct channel_transfer *t = NULL;
	struct ember_error *err = NULL;
	struct fake fk;
	struct channel *ch = open_fake(&fk, 3);
	int i, ret = 0;

	(void)state;
	strcpy(req.path, "full");
	assert_int_equal(channel_upload_open(ch, &req, &t, NULL), 0);
	for (i = 0; i < 100 && ret == 0; i++)
		ret = channel_upload_write(t, data, sizeof(data), &err);
	assert_int_equal(ret, -1);
	assert_int_equal(err->kind, EMBER_E_NO_SPACE);
	ember_error_free(&err);
	channel_transfer_close(t);
	/* refused at once: the first write or the finish says so */
	strcpy(req.path, "denied");
	assert_int_equal(channel_upload_open(ch, &req, &t, NULL), 0);
	ret = 0;
	for (i = 0; i < 100 && ret == 0; i++)
		ret = channel_upload_write(t, data, sizeof(data), &err);
	assert_int_equal(ret, -1);
	assert_int_equal(err->kind, EMBER_E_FORBIDDEN);
	ember_error_free(&err);
	channel_transfer_close(t);
	/* an upload abandoned midway is cancelled */
	strcpy(req.path, "up");
	assert_int_equal(channel_upload_open(ch, &req, &t, NULL), 0);
	assert_int_equal(channel_upload_write(t, data, sizeof(data), NULL), 0);
	channel_transfer_close(t);
	assert_false(channel_broken(ch, NULL, 0));
	close_fake(&fk, ch);
	assert_true(fk.cancelled);
	assert_false(fk.over_credit);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* a write to a closed channel is an error, as in emberd */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stat_and_errors_map_to_kinds),
		cmocka_unit_test(suspend_and_resume_on_a_new_stream),
		cmocka_unit_test(suspend_needs_version_8_and_an_answer),
		cmocka_unit_test(bytes_after_suspended_fail_the_resume),
		cmocka_unit_test(old_guest_gets_conflict),
		cmocka_unit_test(download_streams_within_credit),
		cmocka_unit_test(download_closed_early_cancels),
		cmocka_unit_test(upload_is_paced_by_guest_credit),
		cmocka_unit_test(upload_refused_and_full_fail_cleanly),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
