/* Unit tests for the guest's file requests and transfers (src/guest/files.c), driven through a
 * real session (src/guest/session.c) over a socketpair, as test_guest_session.c does: the host
 * end is this thread, the agent's loop runs in between. change_ids is off, so the files are the
 * test user's in a scratch directory (the sandbox home). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tmpdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest/files.h"
#include "guest/limits.h"
#include "guest/loop.h"
#include "guest/session.h"
#include "proto/credit.h"
#include "proto/frame.h"
#include "proto/fsmsg.h"
#include "proto/io.h"
#include "proto/messages.h"
#include "util/sha256.h"
#include "util/timeutil.h"

struct fixture {
	struct guest_loop loop;
	struct guest_session_env env;
	struct guest_session *session;
	int host_fd;
	struct proto_decoder dec;
	char home[256];
};

static unsigned fixture_seq;

static struct fixture *start_version(uint32_t version)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct proto_hello hello = { .version = version };
	struct proto_frame f;
	size_t len;
	char *json;
	int sv[2];

	assert_non_null(fx);
	snprintf(fx->home, sizeof(fx->home), "%s/home%u", tmpdir_path, fixture_seq++);
	assert_int_equal(mkdir(fx->home, 0755), 0);
	assert_int_equal(guest_loop_init(&fx->loop, NULL), 0);
	fx->env.loop = &fx->loop;
	fx->env.exec.code_root = fx->home;
	fx->env.exec.cwd = fx->home;
	fx->env.exec.home = fx->home;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	fx->host_fd = sv[0];
	assert_int_equal(guest_session_new(&fx->env, sv[1], GUEST_SESSION_SOCKET, "test",
					   &fx->session, NULL), 0);
	proto_decoder_init(&fx->dec);

	snprintf(hello.sandbox_id, sizeof(hello.sandbox_id), "sb_files");
	json = proto_hello_encode(&hello, &len, NULL);
	assert_non_null(json);
	assert_int_equal(proto_send(fx->host_fd, PROTO_HELLO, 0, 0, json, len,
				    time_mono_ms() + 2000, NULL), 0);
	free(json);
	for (;;) {
		int ret = proto_decoder_next(&fx->dec, &f, NULL);

		assert_true(ret >= 0);
		if (ret == 1)
			break;
		assert_int_equal(guest_loop_run_once(&fx->loop, 10, NULL), 0);
		proto_fill(fx->host_fd, &fx->dec, NULL);
	}
	assert_int_equal(f.header.type, PROTO_READY);
	return fx;
}

static struct fixture *start(void)
{
	return start_version(PROTO_VERSION);
}

static void stop(struct fixture *fx)
{
	if (fx->session != NULL)
		guest_session_free(fx->session);
	guest_loop_collect(&fx->loop);
	guest_loop_release(&fx->loop);
	proto_decoder_release(&fx->dec);
	close(fx->host_fd);
	free(fx);
}

/* Writes all of buf to the agent, running its loop whenever the socket is full. */
static void host_write(struct fixture *fx, const uint8_t *buf, size_t len)
{
	int64_t deadline = time_mono_ms() + 10000;

	while (len > 0) {
		ssize_t n = write(fx->host_fd, buf, len);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		assert_true(n < 0 && errno == EAGAIN);
		assert_true(time_mono_ms() < deadline);
		assert_int_equal(guest_loop_run_once(&fx->loop, 10, NULL), 0);
	}
}

static void host_send(struct fixture *fx, uint8_t type, uint8_t flags, uint32_t id,
		      const void *payload, size_t len)
{
	struct proto_header h = { .length = (uint32_t)len, .id = id, .type = type, .flags = flags };
	uint8_t hdr[PROTO_HEADER_SIZE];

	proto_header_encode(hdr, &h);
	host_write(fx, hdr, sizeof(hdr));
	host_write(fx, payload, len);
}

static void send_fs(struct fixture *fx, uint32_t id, const char *json)
{
	host_send(fx, PROTO_FS, 0, id, json, strlen(json));
}

static void send_credit(struct fixture *fx, uint32_t id, uint32_t bytes)
{
	uint8_t payload[PROTO_CREDIT_PAYLOAD];

	proto_credit_encode(payload, bytes);
	host_send(fx, PROTO_CREDIT, 0, id, payload, sizeof(payload));
}

/* 1 with the next frame, 0 when none came within ms. */
static int poll_frame(struct fixture *fx, struct proto_frame *f, int ms)
{
	int64_t deadline = time_mono_ms() + ms;

	for (;;) {
		int ret = proto_decoder_next(&fx->dec, f, NULL);

		assert_true(ret >= 0);
		if (ret == 1)
			return 1;
		if (time_mono_ms() >= deadline)
			return 0;
		assert_int_equal(guest_loop_run_once(&fx->loop, 10, NULL), 0);
		proto_fill(fx->host_fd, &fx->dec, NULL);
	}
}

static void next_frame(struct fixture *fx, struct proto_frame *f)
{
	assert_int_equal(poll_frame(fx, f, 10000), 1);
}

static void expect_error(struct fixture *fx, uint32_t id, const char *code)
{
	struct proto_error_msg msg;
	struct proto_frame f;

	next_frame(fx, &f);
	assert_int_equal(f.header.type, PROTO_ERROR);
	assert_int_equal(f.header.id, id);
	assert_int_equal(proto_error_decode(f.payload, f.header.length, &msg, NULL), 0);
	if (strcmp(msg.code, code) != 0)
		fail_msg("expected %s, got %s: %s", code, msg.code, msg.message);
}

/* The FS_REPLY for id (CREDIT frames before it are skipped); decoded into *r. */
static void expect_reply(struct fixture *fx, uint32_t id, struct proto_fs_reply *r)
{
	struct proto_frame f;

	do {
		next_frame(fx, &f);
	} while (f.header.type == PROTO_CREDIT);
	if (f.header.type == PROTO_ERROR)
		fail_msg("ERROR instead of FS_REPLY: %.*s", (int)f.header.length, f.payload);
	assert_int_equal(f.header.type, PROTO_FS_REPLY);
	assert_int_equal(f.header.id, id);
	if (proto_fs_reply_decode(f.payload, f.header.length, r, NULL) < 0)
		fail_msg("bad FS_REPLY: %.*s", (int)f.header.length, f.payload);
}

static void expect_done(struct fixture *fx, uint32_t id, const char *json)
{
	struct proto_fs_reply r;

	send_fs(fx, id, json);
	expect_reply(fx, id, &r);
	assert_int_equal(r.kind, PROTO_FS_REPLY_NONE);
}

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static bool exists(const char *dir, const char *name)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return lstat(path, &st) == 0;
}

/* No ".<name>.ember-upload-<id>" left anywhere in dir. */
static void assert_no_temp_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		assert_null(strstr(de->d_name, ".ember-upload-"));
	closedir(d);
}

static void stat_list_mkdir_move_remove(void **state)
{
	struct fixture *fx = start();
	struct proto_fs_reply r;
	char path[512];

	(void)state;
	expect_done(fx, 1, "{\"op\":\"mkdir\",\"path\":\"d\",\"mode\":448}");
	snprintf(path, sizeof(path), "%s/d", fx->home);
	send_fs(fx, 2, "{\"op\":\"stat\",\"path\":\"d\"}");
	expect_reply(fx, 2, &r);
	assert_int_equal(r.kind, PROTO_FS_REPLY_ENTRY);
	assert_string_equal(r.entry.name, "d");
	assert_int_equal(r.entry.type, PROTO_FS_TYPE_DIR);
	assert_int_equal(r.entry.mode, 0700); /* exactly, whatever the umask */

	write_file(path, "b.txt", "hello", 5);
	write_file(path, "a.txt", "", 0);
	write_file(path, "bad\xff", "", 0); /* not UTF-8: left out of lists */
	assert_int_equal(symlink("/", strcat(path, "/link")), 0);
	send_fs(fx, 3, "{\"op\":\"list\",\"path\":\"d\"}");
	expect_reply(fx, 3, &r);
	assert_int_equal(r.kind, PROTO_FS_REPLY_LIST);
	assert_false(r.truncated);
	assert_int_equal(r.count, 3);
	assert_string_equal(r.entries[0].name, "a.txt");
	assert_string_equal(r.entries[1].name, "b.txt");
	assert_int_equal(r.entries[1].type, PROTO_FS_TYPE_FILE);
	assert_int_equal(r.entries[1].size, 5);
	assert_int_equal(r.entries[1].mode, 0644);
	assert_true(r.entries[1].mtime_s > 1600000000);
	assert_string_equal(r.entries[2].name, "link");
	assert_int_equal(r.entries[2].type, PROTO_FS_TYPE_SYMLINK); /* not followed */
	proto_fs_reply_release(&r);

	/* absolute paths work too; stat reports a symlink itself */
	snprintf(path, sizeof(path), "{\"op\":\"stat\",\"path\":\"%s/d/link\"}", fx->home);
	send_fs(fx, 4, path);
	expect_reply(fx, 4, &r);
	assert_int_equal(r.entry.type, PROTO_FS_TYPE_SYMLINK);
	assert_string_equal(r.entry.name, "link");

	expect_done(fx, 5, "{\"op\":\"move\",\"path\":\"d/b.txt\",\"to\":\"d/c.txt\"}");
	snprintf(path, sizeof(path), "%s/d", fx->home);
	assert_false(exists(path, "b.txt"));
	assert_true(exists(path, "c.txt"));

	expect_done(fx, 6, "{\"op\":\"mkdir\",\"path\":\"x/y/z\",\"parents\":true}");
	expect_done(fx, 7, "{\"op\":\"mkdir\",\"path\":\"x/y\",\"parents\":true}"); /* -p: fine */
	expect_done(fx, 8, "{\"op\":\"remove\",\"path\":\"d/c.txt\"}");
	expect_done(fx, 9, "{\"op\":\"remove\",\"path\":\"d/link\"}"); /* the link, not / */
	assert_true(exists("/", "tmp"));
	expect_done(fx, 10, "{\"op\":\"remove\",\"path\":\"x/\",\"recursive\":true}");
	assert_false(exists(fx->home, "x"));
	stop(fx);
}

static void errors_map_to_codes(void **state)
{
	struct fixture *fx = start();
	char dir[512];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/full", fx->home);
	assert_int_equal(mkdir(dir, 0755), 0);
	write_file(dir, "f", "x", 1);
	write_file(fx->home, "plain", "x", 1);

	send_fs(fx, 1, "{\"op\":\"stat\",\"path\":\"missing\"}");
	expect_error(fx, 1, "not_found");
	send_fs(fx, 2, "{\"op\":\"mkdir\",\"path\":\"full\"}");
	expect_error(fx, 2, "exists");
	send_fs(fx, 3, "{\"op\":\"remove\",\"path\":\"full\"}");
	expect_error(fx, 3, "not_empty");
	send_fs(fx, 4, "{\"op\":\"list\",\"path\":\"plain\"}");
	expect_error(fx, 4, "not_directory");
	send_fs(fx, 5, "{\"op\":\"read\",\"path\":\"full\"}");
	expect_error(fx, 5, "is_directory");
	send_fs(fx, 6, "{\"op\":\"write\",\"path\":\"full\"}");
	expect_error(fx, 6, "is_directory");
	send_fs(fx, 7, "{\"op\":\"write\",\"path\":\"nodir/f\"}");
	expect_error(fx, 7, "not_found");
	send_fs(fx, 8, "{\"op\":\"stat\",\"path\":\"a\",\"recursive\":true}");
	expect_error(fx, 8, "bad_request");
	send_fs(fx, 9, "{\"op\":\"mkdir\",\"path\":\"plain/sub\",\"parents\":true}");
	expect_error(fx, 9, "not_directory");
	send_fs(fx, 10, "{\"op\":\"move\",\"path\":\"missing\",\"to\":\"x\"}");
	expect_error(fx, 10, "not_found");
	send_fs(fx, 11, "{\"op\":\"read\",\"path\":\"/dev/null\"}");
	expect_error(fx, 11, "bad_request"); /* not a regular file */
	/* a recursive remove stops at GUEST_FS_REMOVE_DEPTH_MAX levels */
	{
		char deep[1024];
		unsigned i;
		int n = snprintf(deep, sizeof(deep), "%s/deep", fx->home);

		for (i = 0; i <= GUEST_FS_REMOVE_DEPTH_MAX; i++) {
			assert_int_equal(mkdir(deep, 0755), 0);
			n += snprintf(deep + n, sizeof(deep) - (size_t)n, "/d");
		}
		send_fs(fx, 12, "{\"op\":\"remove\",\"path\":\"deep\",\"recursive\":true}");
		expect_error(fx, 12, "io_error");
		assert_int_equal(system(strcat(strcpy(deep, "rm -rf "), fx->home)), 0);
	}
	assert_false(guest_session_ended(fx->session));
	assert_string_equal(guest_files_error_code(EDQUOT), "no_space");
	assert_string_equal(guest_files_error_code(EPERM), "permission_denied");
	assert_string_equal(guest_files_error_code(EIO), "io_error");
	assert_string_equal(guest_files_error_code(EXDEV), "bad_request");
	stop(fx);
}

/* Reads DATA for id into buf until got reaches want or FIN came. */
static bool collect_data(struct fixture *fx, uint32_t id, uint8_t *buf, size_t *got, size_t want)
{
	while (*got < want) {
		struct proto_frame f;

		next_frame(fx, &f);
		if (f.header.type == PROTO_ERROR)
			fail_msg("ERROR during read: %.*s", (int)f.header.length, f.payload);
		assert_int_equal(f.header.type, PROTO_DATA);
		assert_int_equal(f.header.id, id);
		assert_true(*got + f.header.length <= want);
		memcpy(buf + *got, f.payload, f.header.length);
		*got += f.header.length;
		if (f.header.flags & PROTO_FLAG_FIN)
			return true;
	}
	return false;
}

static void read_is_paced_by_host_credit(void **state)
{
	struct fixture *fx = start();
	size_t size = 600 * 1024 + 123, got = 0, i;
	uint8_t *data = malloc(size), *back = malloc(size);
	struct proto_fs_reply r;
	struct proto_frame f;

	(void)state;
	assert_non_null(data);
	assert_non_null(back);
	for (i = 0; i < size; i++)
		data[i] = (uint8_t)(i * 7 + i / 1000);
	write_file(fx->home, "big.bin", data, size);
	send_fs(fx, 3, "{\"op\":\"read\",\"path\":\"big.bin\"}");
	expect_reply(fx, 3, &r);
	assert_int_equal(r.kind, PROTO_FS_REPLY_ENTRY);
	assert_int_equal(r.entry.size, size);
	assert_string_equal(r.entry.name, "big.bin");
	/* the implicit window, then nothing until CREDIT */
	assert_false(collect_data(fx, 3, back, &got, PROTO_CREDIT_WINDOW));
	assert_int_equal(poll_frame(fx, &f, 200), 0);
	send_credit(fx, 3, 100000);
	assert_false(collect_data(fx, 3, back, &got, PROTO_CREDIT_WINDOW + 100000));
	assert_int_equal(poll_frame(fx, &f, 100), 0);
	send_credit(fx, 3, 1u << 20);
	assert_true(collect_data(fx, 3, back, &got, size));
	assert_int_equal(got, size);
	assert_memory_equal(back, data, size);
	assert_int_equal(fx->env.running_transfers, 0);
	/* an empty file: the entry, then one empty DATA with FIN */
	write_file(fx->home, "empty", "", 0);
	send_fs(fx, 4, "{\"op\":\"read\",\"path\":\"empty\"}");
	expect_reply(fx, 4, &r);
	assert_int_equal(r.entry.size, 0);
	next_frame(fx, &f);
	assert_int_equal(f.header.type, PROTO_DATA);
	assert_int_equal(f.header.length, 0);
	assert_int_equal(f.header.flags, PROTO_FLAG_FIN);
	free(data);
	free(back);
	stop(fx);
}

static void read_of_a_shrinking_file_ends_in_io_error(void **state)
{
	struct fixture *fx = start();
	size_t size = 512 * 1024, got = 0;
	uint8_t *data = calloc(1, size);
	struct proto_fs_reply r;
	char path[512];

	(void)state;
	assert_non_null(data);
	write_file(fx->home, "shrinks", data, size);
	send_fs(fx, 5, "{\"op\":\"read\",\"path\":\"shrinks\"}");
	expect_reply(fx, 5, &r);
	assert_false(collect_data(fx, 5, data, &got, PROTO_CREDIT_WINDOW));
	snprintf(path, sizeof(path), "%s/shrinks", fx->home);
	assert_int_equal(truncate(path, 1000), 0);
	send_credit(fx, 5, 1u << 20);
	expect_error(fx, 5, "io_error");
	assert_int_equal(fx->env.running_transfers, 0);
	free(data);
	stop(fx);
}

/* Uploads len bytes of data to id in 64 KiB DATA frames within the guest's credit. */
static void upload(struct fixture *fx, uint32_t id, const uint8_t *data, size_t len)
{
	uint64_t credit = PROTO_CREDIT_WINDOW;
	size_t sent = 0;

	do {
		size_t n = len - sent < PROTO_MAX_DATA_CHUNK ? len - sent : PROTO_MAX_DATA_CHUNK;
		struct proto_frame f;
		uint32_t more;

		while (credit < n) {
			next_frame(fx, &f);
			assert_int_equal(f.header.type, PROTO_CREDIT);
			assert_int_equal(f.header.id, id);
			assert_int_equal(proto_credit_decode(f.payload, f.header.length, &more, NULL),
					 0);
			credit += more;
		}
		host_send(fx, PROTO_DATA, sent + n == len ? PROTO_FLAG_FIN : 0, id, data + sent, n);
		credit -= n;
		sent += n;
	} while (sent < len);
}

static void write_goes_through_a_temp_file_and_reports_sha256(void **state)
{
	struct fixture *fx = start();
	size_t size = 1024 * 1024 + 77, i;
	uint8_t *data = malloc(size), *back = malloc(size);
	struct proto_fs_reply r;
	struct sha256_ctx sha;
	char want_sha[65], path[512], json[256];
	struct stat st;
	int fd;

	(void)state;
	assert_non_null(data);
	assert_non_null(back);
	for (i = 0; i < size; i++)
		data[i] = (uint8_t)(i ^ (i >> 9));
	sha256_init(&sha);
	sha256_update(&sha, data, size);
	sha256_final_hex(&sha, want_sha);

	send_fs(fx, 9, "{\"op\":\"write\",\"path\":\"up/load.bin\",\"parents\":true,\"mode\":384}");
	upload(fx, 9, data, size);
	expect_reply(fx, 9, &r);
	assert_int_equal(r.kind, PROTO_FS_REPLY_WRITTEN);
	assert_int_equal(r.size, size);
	assert_string_equal(r.sha256, want_sha);
	snprintf(path, sizeof(path), "%s/up/load.bin", fx->home);
	assert_string_equal(r.path, path);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, size);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_int_equal(read(fd, back, size), (ssize_t)size);
	close(fd);
	assert_memory_equal(back, data, size);
	snprintf(path, sizeof(path), "%s/up", fx->home);
	assert_no_temp_files(path);

	/* over an existing file, through a symlink (followed), empty, default mode 0644 */
	assert_int_equal(symlinkat("up/load.bin", AT_FDCWD,
				   strcat(strcpy(path, fx->home), "/alias")), 0);
	send_fs(fx, 10, "{\"op\":\"write\",\"path\":\"alias\"}");
	host_send(fx, PROTO_DATA, PROTO_FLAG_FIN, 10, NULL, 0);
	expect_reply(fx, 10, &r);
	snprintf(json, sizeof(json), "%s/up/load.bin", fx->home);
	assert_string_equal(r.path, json);
	assert_int_equal(r.size, 0);
	assert_string_equal(r.sha256,
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(stat(json, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(fx->env.running_transfers, 0);
	free(data);
	free(back);
	stop(fx);
}

static void cancel_abandons_a_write_and_later_data_is_dropped(void **state)
{
	struct fixture *fx = start();
	uint8_t chunk[1000] = { 0 };
	struct proto_fs_reply r;

	(void)state;
	send_fs(fx, 11, "{\"op\":\"write\",\"path\":\"c.bin\"}");
	host_send(fx, PROTO_DATA, 0, 11, chunk, sizeof(chunk));
	host_send(fx, PROTO_CANCEL, 0, 11, NULL, 0);
	host_send(fx, PROTO_DATA, PROTO_FLAG_FIN, 11, chunk, sizeof(chunk)); /* late: dropped */
	host_send(fx, PROTO_DATA, 0, 12345, chunk, sizeof(chunk));           /* unknown: dropped */
	/* the next answer is this stat's: nothing came for 11 */
	send_fs(fx, 12, "{\"op\":\"stat\",\"path\":\".\"}");
	expect_reply(fx, 12, &r);
	assert_int_equal(r.entry.type, PROTO_FS_TYPE_DIR);
	assert_false(exists(fx->home, "c.bin"));
	assert_no_temp_files(fx->home);
	assert_int_equal(fx->env.running_transfers, 0);
	assert_false(guest_session_ended(fx->session));
	stop(fx);
}

static void transfers_are_limited_and_end_with_the_session(void **state)
{
	struct fixture *fx = start();
	char json[128];
	uint32_t id;
	struct proto_frame f;

	(void)state;
	for (id = 1; id <= GUEST_MAX_TRANSFERS; id++) {
		snprintf(json, sizeof(json), "{\"op\":\"write\",\"path\":\"f%u\"}", id);
		send_fs(fx, id, json);
	}
	send_fs(fx, 100, "{\"op\":\"write\",\"path\":\"one-too-many\"}");
	expect_error(fx, 100, "too_many_transfers");
	send_fs(fx, 101, "{\"op\":\"read\",\"path\":\"f1\"}");
	expect_error(fx, 101, "too_many_transfers");
	assert_int_equal(fx->env.running_transfers, GUEST_MAX_TRANSFERS);
	/* an id in use cannot start another request */
	send_fs(fx, 3, "{\"op\":\"stat\",\"path\":\".\"}");
	expect_error(fx, 3, "bad_request");
	/* stat and friends are no transfers: still served */
	send_fs(fx, 102, "{\"op\":\"stat\",\"path\":\".\"}");
	next_frame(fx, &f);
	assert_int_equal(f.header.type, PROTO_FS_REPLY);
	/* the session ends: every temp file goes */
	guest_session_free(fx->session);
	fx->session = NULL;
	assert_int_equal(fx->env.running_transfers, 0);
	assert_no_temp_files(fx->home);
	stop(fx);
}

static void file_frames_in_a_version_2_session_are_a_protocol_error(void **state)
{
	struct fixture *fx = start_version(2);

	(void)state;
	send_fs(fx, 1, "{\"op\":\"stat\",\"path\":\".\"}");
	expect_error(fx, 0, "protocol");
	stop(fx);
}

/* As root with change_ids (the agent's real setting): every file is touched with the sandbox
 * user's fsuid, so root's files stay out of reach and new files are the user's. */
static void files_are_touched_as_the_sandbox_user(void **state)
{
	struct fixture *fx;
	struct proto_fs_reply r;
	char path[512], json[640];
	struct stat st;

	(void)state;
	if (geteuid() != 0)
		skip();
	fx = start();
	fx->env.exec.change_ids = true;
	fx->env.exec.uid = 65534;
	fx->env.exec.gid = 65534;
	assert_int_equal(chmod(tmpdir_path, 0755), 0);
	assert_int_equal(chown(fx->home, 65534, 65534), 0);
	write_file(fx->home, "secret", "root only", 9);
	snprintf(path, sizeof(path), "%s/secret", fx->home);
	assert_int_equal(chmod(path, 0600), 0);
	/* a symlink the user made to a root-only file does not help */
	snprintf(path, sizeof(path), "%s/shadow-link", fx->home);
	assert_int_equal(symlink("secret", path), 0);

	send_fs(fx, 1, "{\"op\":\"read\",\"path\":\"secret\"}");
	expect_error(fx, 1, "permission_denied");
	send_fs(fx, 2, "{\"op\":\"read\",\"path\":\"shadow-link\"}");
	expect_error(fx, 2, "permission_denied");
	snprintf(json, sizeof(json), "{\"op\":\"write\",\"path\":\"%s/x\"}", tmpdir_path);
	send_fs(fx, 3, json); /* a directory of root's, 0755 */
	expect_error(fx, 3, "permission_denied");
	send_fs(fx, 4, "{\"op\":\"remove\",\"path\":\"/proc/self/fd/0\"}");
	expect_error(fx, 4, "permission_denied");

	send_fs(fx, 5, "{\"op\":\"write\",\"path\":\"mine\"}");
	host_send(fx, PROTO_DATA, PROTO_FLAG_FIN, 5, "ok", 2);
	expect_reply(fx, 5, &r);
	snprintf(path, sizeof(path), "%s/mine", fx->home);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, 65534);
	assert_int_equal(st.st_gid, 65534);
	expect_done(fx, 6, "{\"op\":\"mkdir\",\"path\":\"sub\"}");
	snprintf(path, sizeof(path), "%s/sub", fx->home);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, 65534);
	/* and the agent is itself again between requests */
	assert_int_equal(setfsuid((uid_t)-1), 0);
	assert_int_equal(setfsgid((gid_t)-1), 0);
	assert_int_equal(chmod(tmpdir_path, 0700), 0);
	stop(fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stat_list_mkdir_move_remove),
		cmocka_unit_test(errors_map_to_codes),
		cmocka_unit_test(read_is_paced_by_host_credit),
		cmocka_unit_test(read_of_a_shrinking_file_ends_in_io_error),
		cmocka_unit_test(write_goes_through_a_temp_file_and_reports_sha256),
		cmocka_unit_test(cancel_abandons_a_write_and_later_data_is_dropped),
		cmocka_unit_test(transfers_are_limited_and_end_with_the_session),
		cmocka_unit_test(file_frames_in_a_version_2_session_are_a_protocol_error),
		cmocka_unit_test(files_are_touched_as_the_sandbox_user),
	};

	return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
