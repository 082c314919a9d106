/* Unit tests for the sandbox manager's state machine and limits (src/sandbox/manager.c), with a
 * fake VMM driver: the "VMM process" is a real `sleep` child (so pidfds, kills and reaping are
 * real) and the "guest agent" is a thread speaking the real protocol on a socketpair. The code
 * of an exec tells the fake agent how to behave: "echo:TEXT", "hang", "die" (close the channel),
 * "garbage" (send bytes that are not a frame), "partial" (half a frame, then silence),
 * "slow:MS", "wait-cancel" (silence until the host's CANCEL, then an exit by SIGKILL as the
 * guest reports a cancelled exec: not timed out). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/encode.h"
#include "proto/frame.h"
#include "proto/io.h"
#include "proto/messages.h"
#include "sandbox/manager.h"
#include "sandbox/metrics.h"
#include "sandbox/pool.h"
#include "util/sync.h"
#include "util/fdio.h"
#include "util/timeutil.h"
#include "vmm/driver.h"
#include "vmm/spawn.h"

/* ---- fake agent ---------------------------------------------------------------------------- */

struct fake_vm {
	int host_fd;
	int agent_fd;
	pthread_t agent;
	bool agent_started;
	bool answer_hello;
};

static bool g_answer_hello = true;

/* Takes ownership of text (a NUL-terminated JSON document). */
static void agent_send_json(int fd, uint8_t type, uint32_t id, char *text)
{
	proto_send(fd, type, 0, id, text, strlen(text), time_mono_ms() + 5000, NULL);
	free(text);
}

static void *fake_agent_main(void *arg)
{
	struct fake_vm *fv = arg;
	struct proto_decoder dec;
	struct proto_frame f;
	uint32_t cancel_id = 0;

	proto_decoder_init(&dec);
	while (proto_recv(fv->agent_fd, &dec, &f, -1, NULL) == 1) {
		size_t len;

		if (f.header.type == PROTO_CANCEL && f.header.id == cancel_id) {
			struct proto_exit out = { .exit_code = -1, .signal = SIGKILL };

			agent_send_json(fv->agent_fd, PROTO_EXIT, cancel_id,
					proto_exit_encode(&out, &len, NULL));
			cancel_id = 0;
			continue;
		}

		if (f.header.type == PROTO_HELLO) {
			struct proto_hello hello;
			struct proto_ready ready = { .version = 1, .uptime_ms = 5 };

			if (!fv->answer_hello)
				continue;
			assert_int_equal(proto_hello_decode(f.payload, f.header.length, &hello, NULL), 0);
			assert_int_equal(hello.entropy_len, PROTO_ENTROPY_MAX);
			strcpy(ready.agent, "fake");
			strcpy(ready.sandbox_id, hello.sandbox_id);
			agent_send_json(fv->agent_fd, PROTO_READY, 0,
					proto_ready_encode(&ready, &len, NULL));
		} else if (f.header.type == PROTO_EXEC) {
			struct proto_exec ex;
			struct proto_exit out = { 0 };
			uint32_t id = f.header.id;

			assert_int_equal(proto_exec_decode(f.payload, f.header.length, &ex, NULL), 0);
			if (strncmp(ex.code, "echo:", 5) == 0) {
				proto_send(fv->agent_fd, PROTO_STDOUT, 0, id, ex.code + 5,
					   strlen(ex.code + 5), time_mono_ms() + 5000, NULL);
			} else if (strcmp(ex.code, "wait-cancel") == 0) {
				cancel_id = id;
				proto_exec_release(&ex);
				continue;
			} else if (strcmp(ex.code, "hang") == 0) {
				proto_exec_release(&ex);
				continue;
			} else if (strcmp(ex.code, "die") == 0) {
				proto_exec_release(&ex);
				break;
			} else if (strcmp(ex.code, "hostile-error") == 0) {
				/* A session ERROR whose text a terminal would act on, and that is
				 * cut at its 512-byte bound in the middle of a UTF-8 sequence. */
				char msg[600];
				size_t at = 0;

				at += (size_t)snprintf(msg, sizeof(msg),
						       "\x1b[2J\x1b]0;owned\x07 back\\slash "
						       "\xe2\x80\xa8 split ");
				while (at + 2 < sizeof(msg) - 1) {
					memcpy(msg + at, "\xc3\xa9", 2);
					at += 2;
				}
				msg[at] = '\0';
				agent_send_json(fv->agent_fd, PROTO_ERROR, 0,
						proto_error_encode("hostile", msg, &len, NULL));
				proto_exec_release(&ex);
				continue;
			} else if (strcmp(ex.code, "garbage") == 0) {
				fd_write_all(fv->agent_fd, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
					     12, time_mono_ms() + 1000, NULL);
				proto_exec_release(&ex);
				continue;
			} else if (strcmp(ex.code, "partial") == 0) {
				/* half a header, then silence: the host must not wait forever */
				fd_write_all(fv->agent_fd, "\0\0\0\4\0\0", 6, time_mono_ms() + 1000,
					     NULL);
				proto_exec_release(&ex);
				continue;
			} else if (strncmp(ex.code, "slow:", 5) == 0) {
				usleep((useconds_t)atoi(ex.code + 5) * 1000);
			}
			proto_exec_release(&ex);
			agent_send_json(fv->agent_fd, PROTO_EXIT, id,
					proto_exit_encode(&out, &len, NULL));
		} else if (f.header.type == PROTO_PS) {
			struct proto_process p = { .pid = 1, .state = 'S', .comm = "init" };

			agent_send_json(fv->agent_fd, PROTO_PS_REPLY, f.header.id,
					proto_ps_encode(&p, 1, &len, NULL));
		}
	}
	proto_decoder_release(&dec);
	close(fv->agent_fd);
	return NULL;
}

static int fake_init(struct vmm_driver *drv, const struct vmm_driver_config *cfg,
		     struct ember_error **err)
{
	(void)cfg;
	(void)err;
	snprintf(drv->description, sizeof(drv->description), "fake");
	return 0;
}

static int fake_start(struct vmm_instance *vm, const struct vmm_boot_config *cfg,
		      struct ember_error **err)
{
	struct fake_vm *fv = calloc(1, sizeof(*fv));
	char *argv[] = { "/bin/sleep", "1000", NULL };
	int sv[2];

	assert_non_null(fv);
	vm->priv = fv;
	fv->answer_hello = g_answer_hello;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return ember_error_sys(err, "socketpair");
	fd_set_nonblock(sv[0], 1);
	fd_set_nonblock(sv[1], 1);
	fv->host_fd = sv[0];
	fv->agent_fd = sv[1];
	(void)cfg;
	if (vmm_spawn(argv, console_vmm_fd(vm->console), -1, &vm->pid, &vm->pidfd, err) < 0)
		return -1;
	fv->agent_started = pthread_create(&fv->agent, NULL, fake_agent_main, fv) == 0;
	return 0;
}

static int fake_connect(struct vmm_instance *vm, int64_t deadline_ms, struct ember_error **err)
{
	struct fake_vm *fv = vm->priv;
	int fd = fv->host_fd;

	(void)deadline_ms;
	(void)err;
	fv->host_fd = -1;
	return fd;
}

static void fake_request_stop(struct vmm_instance *vm, int64_t deadline_ms)
{
	(void)deadline_ms;
	kill(vm->pid, SIGTERM);
}

static void fake_release(struct vmm_instance *vm)
{
	struct fake_vm *fv = vm->priv;

	if (fv == NULL)
		return;
	if (fv->host_fd >= 0)
		close(fv->host_fd);
	/* The host end is closed by now (channel_close), so the agent thread sees EOF. */
	if (fv->agent_started)
		pthread_join(fv->agent, NULL);
	free(fv);
	vm->priv = NULL;
}

static const struct vmm_driver_ops fake_ops = {
	.name = "fake",
	.init = fake_init,
	.start = fake_start,
	.connect_agent = fake_connect,
	.request_stop = fake_request_stop,
	.release = fake_release,
};

/* ---- fixture ------------------------------------------------------------------------------- */

struct fixture {
	char run_dir[64];
	struct catalog cat;
	struct vmm_driver *drv;
	struct manager *m;
};

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
static const char manifest[] =
	"{\"version\":1,\"kernel\":{\"bzimage\":\"k\",\"vmlinux\":\"v\",\"release\":\"r\"},"
	"\"initramfs\":\"i\",\"packs\":[{\"name\":\"python\",\"image\":\"p.sq\",\"sha256\":\"" SHA
	"\",\"interpreter\":[\"/usr/bin/python3\"],\"description\":\"d\",\"defaults\":"
	"{\"exec_timeout_ms\":2000,\"output_limit_bytes\":1024,\"memory_mib\":256,\"vcpus\":1,"
	"\"overlay_mib\":64}}]}";

/* meminfo: a host memory file (headroom.h) with a 100 MiB reserve, or NULL: no memory checks
 * that could refuse (the host's own /proc/meminfo, with the default reserve). */
static struct fixture *make_fixture_meminfo(unsigned max_sandboxes, unsigned boot_timeout_ms,
					    const char *meminfo)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct vmm_driver_config dcfg = { .name = "fake", .accel = VMM_ACCEL_TCG };
	struct manager_config mcfg = {
		.max_sandboxes = max_sandboxes, .max_concurrent_boots = 4, .max_vcpus = 2,
		.max_memory_mib = 1024, .default_timeout_s = 600, .max_timeout_s = 3600,
		.boot_timeout_ms = boot_timeout_ms, .max_exec_timeout_ms = 60000,
		.max_output_bytes = 1 << 20, .max_processes = 64, .max_overlay_mib = 512,
	};

	assert_non_null(fx);
	strcpy(fx->run_dir, "/tmp/emu.XXXXXX");
	assert_non_null(mkdtemp(fx->run_dir));
	mcfg.run_dir = fx->run_dir;
	if (meminfo != NULL) {
		mcfg.meminfo_path = meminfo;
		mcfg.memory_reserve_mib = 100;
	}
	assert_int_equal(catalog_parse("/img", manifest, strlen(manifest), &fx->cat, NULL), 0);
	assert_int_equal(vmm_driver_create_with_ops(&fake_ops, &dcfg, &fx->drv, NULL), 0);
	assert_int_equal(manager_create(&mcfg, &fx->cat, fx->drv, &fx->m, NULL), 0);
	return fx;
}

static struct fixture *make_fixture(unsigned max_sandboxes, unsigned boot_timeout_ms)
{
	return make_fixture_meminfo(max_sandboxes, boot_timeout_ms, NULL);
}

static void free_fixture(struct fixture *fx)
{
	struct stat st;

	manager_free(fx->m);
	vmm_driver_free(fx->drv);
	catalog_release(&fx->cat);
	/* Every sandbox directory is gone: only the (empty) run dir remains. */
	assert_int_equal(rmdir(fx->run_dir), 0);
	assert_int_not_equal(stat(fx->run_dir, &st), 0);
	free(fx);
	g_answer_hello = true;
}

static void create_one(struct fixture *fx, struct sandbox_info *info)
{
	struct sandbox_create_request req = { 0 };
	struct ember_error *err = NULL;

	if (manager_create_sandbox(fx->m, &req, info, &err) < 0)
		fail_msg("create failed: %s", err->message);
	assert_int_equal(info->state, SANDBOX_READY);
}

static int exec_code(struct fixture *fx, const char *id, const char *code,
		     struct channel_exec_result *res, struct ember_error **err)
{
	struct sandbox_exec_request req = { .code = code, .code_len = strlen(code) };

	return manager_exec(fx->m, id, &req, res, err);
}

/* ---- tests --------------------------------------------------------------------------------- */

/* The value of the metrics' sample `series` (name and labels as written); fails without it. */
static double metric(struct fixture *fx, const char *series)
{
	struct buf out = { 0 };
	const char *line;
	double v;

	assert_int_equal(metrics_write(manager_metrics(fx->m), &out, NULL), 0);
	assert_int_equal(buf_terminate(&out), 0);
	line = strstr((char *)out.data, series);
	while (line != NULL && (line[-1] != '\n' || line[strlen(series)] != ' '))
		line = strstr(line + 1, series);
	if (line == NULL)
		fail_msg("no sample %s in:\n%s", series, (char *)out.data);
	v = strtod(line + strlen(series) + 1, NULL);
	buf_release(&out);
	return v;
}

static void create_exec_delete_cycle(void **state)
{
	struct fixture *fx = make_fixture(4, 5000);
	struct sandbox_info info, got;
	struct channel_exec_result res;
	struct ember_error *err = NULL;
	char dir[128];
	struct stat st;

	(void)state;
	create_one(fx, &info);
	assert_int_equal(strncmp(info.id, "sb_", 3), 0);
	assert_int_equal(strlen(info.id), SANDBOX_ID_LEN);
	assert_string_equal(info.language_pack, "python");
	assert_int_equal(info.vcpus, 1);
	assert_int_equal(info.memory_mib, 256);
	assert_true(info.vmm_pid > 0);
	snprintf(dir, sizeof(dir), "%s/%s", fx->run_dir, info.id);
	assert_int_equal(stat(dir, &st), 0);

	assert_int_equal(exec_code(fx, info.id, "echo:hello", &res, NULL), 0);
	assert_int_equal(res.stdout_len, 5);
	assert_memory_equal(res.stdout_data, "hello", 5);
	channel_exec_result_release(&res);
	assert_int_equal(manager_get(fx->m, info.id, &got, NULL), 0);
	assert_int_equal(got.execs_run, 1);
	assert_true(metric(fx, "emberd_sandboxes_created_total{pack=\"python\",boot_mode=\"cold\"}")
		    == 1);
	assert_true(metric(fx, "emberd_sandbox_create_seconds_count{pack=\"python\","
			       "boot_mode=\"cold\"}") == 1);
	assert_true(metric(fx, "emberd_sandbox_boot_seconds_count{pack=\"python\"}") == 1);
	assert_true(metric(fx, "emberd_execs_total{outcome=\"ok\"}") == 1);
	assert_true(metric(fx, "emberd_exec_seconds_count{pack=\"python\"}") == 1);

	assert_int_equal(manager_destroy(fx->m, info.id, NULL), 0);
	assert_true(metric(fx, "emberd_sandbox_delete_seconds_count") == 1);
	assert_int_not_equal(stat(dir, &st), 0);
	assert_int_not_equal(kill(info.vmm_pid, 0), 0);
	assert_int_equal(manager_destroy(fx->m, info.id, &err), -1);
	assert_int_equal(err->kind, EMBER_E_NOT_FOUND);
	ember_error_free(&err);
	assert_int_equal(exec_code(fx, info.id, "echo:x", &res, &err), -1);
	assert_int_equal(err->kind, EMBER_E_NOT_FOUND);
	ember_error_free(&err);
	free_fixture(fx);
}

static void create_validates_pack_and_limits(void **state)
{
	struct fixture *fx = make_fixture(4, 5000);
	struct sandbox_create_request req = { .language_pack = "ruby" };
	struct sandbox_info info;
	struct ember_error *err = NULL;

	(void)state;
	assert_int_equal(manager_create_sandbox(fx->m, &req, &info, &err), -1);
	assert_int_equal(err->kind, EMBER_E_INVALID);
	assert_non_null(strstr(err->message, "python"));
	ember_error_free(&err);
	req.language_pack = NULL;
	req.vcpus = 3;
	assert_int_equal(manager_create_sandbox(fx->m, &req, &info, &err), -1);
	assert_non_null(strstr(err->message, "vcpus"));
	ember_error_free(&err);
	req.vcpus = 0;
	req.memory_mib = 4096;
	assert_int_equal(manager_create_sandbox(fx->m, &req, &info, &err), -1);
	assert_non_null(strstr(err->message, "memory_mib"));
	ember_error_free(&err);
	free_fixture(fx);
}

static void max_sandboxes_gives_capacity_error(void **state)
{
	struct fixture *fx = make_fixture(2, 5000);
	struct sandbox_create_request req = { 0 };
	struct sandbox_info a, b, c;
	struct ember_error *err = NULL;
	struct manager_stats st;

	(void)state;
	create_one(fx, &a);
	create_one(fx, &b);
	assert_int_equal(manager_create_sandbox(fx->m, &req, &c, &err), -1);
	assert_int_equal(err->kind, EMBER_E_CAPACITY);
	ember_error_free(&err);
	manager_stats(fx->m, &st);
	assert_int_equal(st.total, 2);
	assert_int_equal(st.ready, 2);
	assert_int_equal(manager_destroy(fx->m, a.id, NULL), 0);
	create_one(fx, &c);
	free_fixture(fx); /* destroys b and c */
}

static void boot_timeout_leaves_nothing(void **state)
{
	struct fixture *fx;
	struct sandbox_create_request req = { 0 };
	struct sandbox_info info;
	struct ember_error *err = NULL;
	struct manager_stats st;

	(void)state;
	g_answer_hello = false;
	fx = make_fixture(2, 300);
	assert_int_equal(manager_create_sandbox(fx->m, &req, &info, &err), -1);
	assert_int_equal(err->kind, EMBER_E_GUEST_TIMEOUT);
	ember_error_free(&err);
	manager_stats(fx->m, &st);
	assert_int_equal(st.total, 0);
	assert_int_equal(st.create_failures_total, 1);
	assert_true(metric(fx, "emberd_sandboxes_failed_total{pack=\"python\",boot_mode=\"cold\"}")
		    == 1);
	assert_true(metric(fx, "emberd_guest_failures_total{kind=\"boot_timeout\"}") == 1);
	assert_true(metric(fx, "emberd_sandboxes_created_total{pack=\"python\",boot_mode=\"cold\"}")
		    == 0);
	free_fixture(fx); /* asserts the run dir is empty */
}

struct create_arg {
	struct fixture *fx;
	int ret;
	enum ember_error_kind kind;
};

static void *create_thread(void *p)
{
	struct create_arg *a = p;
	struct sandbox_create_request req = { 0 };
	struct sandbox_info info;
	struct ember_error *err = NULL;

	a->ret = manager_create_sandbox(a->fx->m, &req, &info, &err);
	a->kind = err != NULL ? err->kind : EMBER_E_INTERNAL;
	ember_error_free(&err);
	return NULL;
}

/* Creates that arrive together all read the same MemAvailable: the memory a create still
 * booting was promised counts as taken, so the second of two that fit only once is refused,
 * and the promise is given back when the boot ends (here: fails). */
static void memory_promised_to_a_booting_create_counts(void **state)
{
	/* The most a 256 MiB sandbox can take under TCG: 256 + 48 + 128 = 432 MiB; with a 100 MiB
	 * reserve, 732 MiB available holds one of them and not two. */
	static const char meminfo_text[] = "MemTotal:  4194304 kB\nMemAvailable: 749568 kB\n";
	char meminfo[] = "/tmp/emu-meminfo.XXXXXX";
	int fd = mkstemp(meminfo);
	struct create_arg first = { 0 };
	struct sandbox_create_request req = { 0 };
	struct sandbox_info info;
	struct ember_error *err = NULL;
	struct manager_stats st;
	pthread_t t;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, meminfo_text, strlen(meminfo_text)),
			 (ssize_t)strlen(meminfo_text));
	close(fd);
	g_answer_hello = false; /* the first boot hangs until its 3 s timeout */
	first.fx = make_fixture_meminfo(4, 3000, meminfo);
	assert_int_equal(pthread_create(&t, NULL, create_thread, &first), 0);
	do {
		sleep_ms(5);
		manager_stats(first.fx->m, &st);
	} while (st.booting == 0);
	assert_int_equal(st.memory_booting_mib, 432);
	assert_int_equal(manager_create_sandbox(first.fx->m, &req, &info, &err), -1);
	assert_int_equal(err->kind, EMBER_E_CAPACITY);
	assert_non_null(strstr(err->message, "732 MiB available (432 MiB of it promised to "
					     "sandboxes still booting)"));
	ember_error_free(&err);
	pthread_join(t, NULL);
	assert_int_equal(first.ret, -1);
	assert_int_equal(first.kind, EMBER_E_GUEST_TIMEOUT);
	manager_stats(first.fx->m, &st);
	assert_int_equal(st.memory_booting_mib, 0); /* given back by the failed boot */
	assert_int_equal(st.memory_rejections_total, 1);
	g_answer_hello = true;
	create_one(first.fx, &info); /* room again */
	manager_stats(first.fx->m, &st);
	assert_int_equal(st.memory_booting_mib, 0); /* and by the one that booted */
	assert_int_equal(manager_destroy(first.fx->m, info.id, NULL), 0);
	free_fixture(first.fx);
	unlink(meminfo);
}

static void guest_closing_channel_fails_sandbox(void **state)
{
	struct fixture *fx = make_fixture(2, 5000);
	struct sandbox_info info, got;
	struct channel_exec_result res;
	struct ember_error *err = NULL;

	(void)state;
	create_one(fx, &info);
	assert_int_equal(exec_code(fx, info.id, "die", &res, &err), -1);
	assert_int_equal(err->kind, EMBER_E_GUEST);
	ember_error_free(&err);
	assert_int_equal(manager_get(fx->m, info.id, &got, NULL), 0);
	assert_int_equal(got.state, SANDBOX_FAILED);
	assert_true(strlen(got.failure) > 0);
	assert_int_equal(exec_code(fx, info.id, "echo:x", &res, &err), -1);
	assert_int_equal(err->kind, EMBER_E_GUEST);
	ember_error_free(&err);
	/* The exec that broke it reached the guest; the next one was refused before. */
	assert_true(metric(fx, "emberd_execs_total{outcome=\"error\"}") == 1);
	assert_true(metric(fx, "emberd_guest_failures_total{kind=\"channel_broken\"}") == 1);
	assert_true(metric(fx, "emberd_guest_failures_total{kind=\"vm_exited\"}") == 0);
	assert_int_equal(manager_destroy(fx->m, info.id, NULL), 0);
	free_fixture(fx);
}

/* Runs fn with stderr (the daemon's log) going to a file, and returns what was logged. */
static char *capture_log(void (*fn)(void *), void *arg)
{
	char path[] = "/tmp/emberd-log.XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	char *text = NULL;
	size_t len;

	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, 2);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(fd);
	assert_int_equal(file_read_all(path, 1 << 20, &text, &len, NULL), 0);
	unlink(path);
	return text;
}

struct hostile_run {
	struct fixture *fx;
	const char *id;
	struct sandbox_info got;
};

static void run_hostile_error(void *arg)
{
	struct hostile_run *h = arg;
	struct channel_exec_result res;
	struct ember_error *err = NULL;

	assert_int_equal(exec_code(h->fx, h->id, "hostile-error", &res, &err), -1);
	ember_error_free(&err);
	assert_int_equal(manager_get(h->fx->m, h->id, &h->got, NULL), 0);
}

static void hostile_guest_text_is_escaped_in_logs_and_kept_in_failure(void **state)
{
	struct hostile_run h = { .fx = make_fixture(2, 5000) };
	struct sandbox_info info;
	json_t *obj;
	char *log, *p;
	const char *failure;

	(void)state;
	create_one(h.fx, &info);
	h.id = info.id;
	log = capture_log(run_hostile_error, &h);
	assert_int_equal(h.got.state, SANDBOX_FAILED);
	/* Nothing a terminal acts on reaches the log, and what was there is still readable. */
	for (p = log; *p != '\0'; p++)
		assert_false(*p == '\x1b' || *p == '\x07' || *p == '\r');
	assert_null(strstr(log, "\xe2\x80\xa8"));
	if (strstr(log, "\\x1b[2J") == NULL)
		print_message("log: %s\n", log);
	assert_non_null(strstr(log, "\\x1b[2J"));
	assert_non_null(strstr(log, "back\\\\slash"));
	/* The failure survives the cut inside a UTF-8 sequence, as valid JSON text. */
	obj = api_encode_sandbox(&h.got);
	assert_non_null(obj);
	failure = json_string_value(json_object_get(obj, "failure"));
	assert_non_null(failure);
	assert_non_null(strstr(failure, "hostile"));
	json_decref(obj);
	free(log);
	assert_int_equal(manager_destroy(h.fx->m, info.id, NULL), 0);
	free_fixture(h.fx);
}

static void garbage_from_guest_fails_sandbox(void **state)
{
	struct fixture *fx = make_fixture(2, 5000);
	struct sandbox_info info, got;
	struct channel_exec_result res;
	struct ember_error *err = NULL;

	(void)state;
	create_one(fx, &info);
	assert_int_equal(exec_code(fx, info.id, "garbage", &res, &err), -1);
	assert_int_equal(err->kind, EMBER_E_GUEST);
	ember_error_free(&err);
	assert_int_equal(manager_get(fx->m, info.id, &got, NULL), 0);
	assert_int_equal(got.state, SANDBOX_FAILED);
	free_fixture(fx); /* a failed sandbox is still cleaned up at shutdown */
}

static void half_sent_frame_fails_sandbox_after_deadline(void **state)
{
	struct fixture *fx = make_fixture(2, 5000);
	struct sandbox_info info, got;
	struct sandbox_exec_request req = { .code = "partial", .code_len = 7, .timeout_ms = 60000 };
	struct channel_exec_result res;
	struct ember_error *err = NULL;
	int64_t t0 = time_mono_ms();

	(void)state;
	create_one(fx, &info);
	assert_int_equal(manager_exec(fx->m, info.id, &req, &res, &err), -1);
	/* not the exec's 60 s: the partial-frame deadline ended it */
	assert_true(time_mono_ms() - t0 < CHANNEL_PARTIAL_FRAME_MS + 3000);
	assert_true(time_mono_ms() - t0 >= CHANNEL_PARTIAL_FRAME_MS - 100);
	assert_non_null(strstr(err->message, "partial frame"));
	ember_error_free(&err);
	assert_int_equal(manager_get(fx->m, info.id, &got, NULL), 0);
	assert_int_equal(got.state, SANDBOX_FAILED);
	free_fixture(fx);
}

static void vmm_death_is_noticed(void **state)
{
	struct fixture *fx = make_fixture(2, 5000);
	struct sandbox_info info, got;
	struct channel_exec_result res;
	struct ember_error *err = NULL;
	int64_t deadline;

	(void)state;
	create_one(fx, &info);
	kill(info.vmm_pid, SIGKILL);
	deadline = time_mono_ms() + 5000;
	do {
		usleep(50000);
		assert_int_equal(manager_get(fx->m, info.id, &got, NULL), 0);
	} while (got.state != SANDBOX_FAILED && time_mono_ms() < deadline);
	assert_int_equal(got.state, SANDBOX_FAILED);
	assert_non_null(strstr(got.failure, "exited"));
	assert_true(metric(fx, "emberd_guest_failures_total{kind=\"vm_exited\"}") == 1);
	assert_int_equal(exec_code(fx, info.id, "echo:x", &res, &err), -1);
	assert_int_equal(err->kind, EMBER_E_GUEST);
	ember_error_free(&err);
	assert_int_equal(manager_destroy(fx->m, info.id, NULL), 0);
	free_fixture(fx);
}

static void hung_guest_times_out_exec(void **state)
{
	struct fixture *fx = make_fixture(2, 5000);
	struct sandbox_info info;
	struct sandbox_exec_request req = { .code = "hang", .code_len = 4, .timeout_ms = 100 };
	struct channel_exec_result res;
	struct ember_error *err = NULL;
	int64_t t0 = time_mono_ms();

	(void)state;
	create_one(fx, &info);
	assert_int_equal(manager_exec(fx->m, info.id, &req, &res, &err), -1);
	assert_int_equal(err->kind, EMBER_E_GUEST_TIMEOUT);
	ember_error_free(&err);
	/* timeout + grace + cancel grace, not forever */
	assert_true(time_mono_ms() - t0 < 100 + CHANNEL_EXEC_GRACE_MS + CHANNEL_CANCEL_GRACE_MS +
					       2000);
	free_fixture(fx);
}

static void exec_cancelled_at_the_host_deadline_is_timed_out(void **state)
{
	struct fixture *fx = make_fixture(2, 5000);
	struct sandbox_info info;
	struct sandbox_exec_request req = { .code = "wait-cancel", .code_len = 11,
					    .timeout_ms = 100 };
	struct channel_exec_result res;
	struct ember_error *err = NULL;
	int64_t t0 = time_mono_ms(), took;

	(void)state;
	create_one(fx, &info);
	assert_int_equal(manager_exec(fx->m, info.id, &req, &res, &err), 0);
	took = time_mono_ms() - t0;
	/* the guest said "killed" only; the daemon knows why: the timeout had passed */
	assert_true(res.cancelled);
	assert_true(res.exit.timed_out);
	assert_int_equal(res.exit.signal, SIGKILL);
	assert_true(took >= 100 + CHANNEL_EXEC_GRACE_MS && took < 100 + CHANNEL_EXEC_GRACE_MS +
								 CHANNEL_CANCEL_GRACE_MS);
	channel_exec_result_release(&res);
	/* the channel is still good */
	assert_int_equal(exec_code(fx, info.id, "echo:ok", &res, NULL), 0);
	assert_false(res.cancelled || res.exit.timed_out);
	channel_exec_result_release(&res);
	free_fixture(fx);
}

struct exec_arg {
	struct fixture *fx;
	char id[SANDBOX_ID_LEN + 1];
	int ret;
	enum ember_error_kind kind;
};

static void *exec_thread(void *p)
{
	struct exec_arg *a = p;
	struct channel_exec_result res;
	struct ember_error *err = NULL;

	a->ret = exec_code(a->fx, a->id, "hang", &res, &err);
	a->kind = err != NULL ? err->kind : EMBER_E_INTERNAL;
	ember_error_free(&err);
	if (a->ret == 0)
		channel_exec_result_release(&res);
	return NULL;
}

static void delete_during_exec_gives_conflict(void **state)
{
	struct fixture *fx = make_fixture(2, 5000);
	struct exec_arg a = { .fx = fx };
	struct sandbox_info info;
	pthread_t t;
	int64_t t0;

	(void)state;
	create_one(fx, &info);
	strcpy(a.id, info.id);
	pthread_create(&t, NULL, exec_thread, &a);
	usleep(200000);
	t0 = time_mono_ms();
	assert_int_equal(manager_destroy(fx->m, info.id, NULL), 0);
	assert_true(time_mono_ms() - t0 < 3000); /* did not wait for the hung exec's timeout */
	pthread_join(t, NULL);
	assert_int_equal(a.ret, -1);
	assert_int_equal(a.kind, EMBER_E_CONFLICT);
	free_fixture(fx);
}

static void expired_sandbox_is_destroyed(void **state)
{
	struct fixture *fx = make_fixture(2, 5000);
	struct sandbox_create_request req = { .timeout_s = 1 };
	struct sandbox_info info, got;
	struct ember_error *err = NULL;
	int64_t deadline = time_mono_ms() + 5000;

	(void)state;
	assert_int_equal(manager_create_sandbox(fx->m, &req, &info, NULL), 0);
	assert_int_equal(info.timeout_s, 1);
	while (manager_get(fx->m, info.id, &got, &err) == 0 && time_mono_ms() < deadline)
		usleep(100000);
	assert_non_null(err);
	assert_int_equal(err->kind, EMBER_E_NOT_FOUND);
	ember_error_free(&err);
	assert_int_not_equal(kill(info.vmm_pid, 0), 0);
	free_fixture(fx);
}

struct cycle_arg {
	struct fixture *fx;
	int failures;
};

static void *cycle_thread(void *p)
{
	struct cycle_arg *a = p;
	int i;

	for (i = 0; i < 5; i++) {
		struct sandbox_create_request req = { 0 };
		struct sandbox_info info;
		struct channel_exec_result res;

		if (manager_create_sandbox(a->fx->m, &req, &info, NULL) < 0) {
			a->failures++;
			continue;
		}
		if (exec_code(a->fx, info.id, "echo:ok", &res, NULL) < 0 || res.stdout_len != 2)
			a->failures++;
		else
			channel_exec_result_release(&res);
		if (manager_destroy(a->fx->m, info.id, NULL) < 0)
			a->failures++;
	}
	return NULL;
}

static void concurrent_cycles_all_succeed(void **state)
{
	struct fixture *fx = make_fixture(8, 5000);
	struct cycle_arg args[6];
	pthread_t threads[6];
	struct manager_stats st;
	int i;

	(void)state;
	for (i = 0; i < 6; i++) {
		args[i] = (struct cycle_arg){ .fx = fx };
		pthread_create(&threads[i], NULL, cycle_thread, &args[i]);
	}
	for (i = 0; i < 6; i++) {
		pthread_join(threads[i], NULL);
		assert_int_equal(args[i].failures, 0);
	}
	manager_stats(fx->m, &st);
	assert_int_equal(st.total, 0);
	assert_int_equal(st.created_total, 30);
	assert_int_equal(st.execs_total, 30);
	free_fixture(fx);
}


struct reader_arg {
	struct fixture *fx;
	volatile bool stop;   /* written by the test thread once, read here: only ends the loop */
	unsigned rounds;
	int bad;
};

/* GET /sandboxes and GET /sandboxes/{id} in a loop: every info is one sandbox's consistent
 * state, whatever the other threads are booting or destroying meanwhile. */
static void *reader_thread(void *p)
{
	struct reader_arg *a = p;

	while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE)) {
		struct sandbox_info *infos = NULL, one;
		struct manager_stats st;
		size_t n = 0, i;

		assert_int_equal(manager_list(a->fx->m, &infos, &n, NULL), 0);
		for (i = 0; i < n; i++) {
			if (strncmp(infos[i].id, "sb_", 3) != 0 || infos[i].boot_mode == NULL)
				a->bad++;
			if (manager_get(a->fx->m, infos[i].id, &one, NULL) == 0 &&
			    strcmp(one.id, infos[i].id) != 0)
				a->bad++;
		}
		free(infos);
		manager_stats(a->fx->m, &st);
		a->rounds++;
	}
	return NULL;
}

static void list_during_create_and_delete_sees_consistent_state(void **state)
{
	struct fixture *fx = make_fixture(8, 5000);
	struct reader_arg reader = { .fx = fx };
	struct cycle_arg args[3];
	pthread_t r, threads[3];
	int i;

	(void)state;
	pthread_create(&r, NULL, reader_thread, &reader);
	for (i = 0; i < 3; i++) {
		args[i] = (struct cycle_arg){ .fx = fx };
		pthread_create(&threads[i], NULL, cycle_thread, &args[i]);
	}
	for (i = 0; i < 3; i++) {
		pthread_join(threads[i], NULL);
		assert_int_equal(args[i].failures, 0);
	}
	__atomic_store_n(&reader.stop, true, __ATOMIC_RELEASE);
	pthread_join(r, NULL);
	assert_int_equal(reader.bad, 0);
	assert_true(reader.rounds > 0);
	free_fixture(fx);
}

static void shutdown_during_creates_leaves_nothing(void **state)
{
	struct fixture *fx = make_fixture(8, 5000);
	struct cycle_arg args[3];
	pthread_t threads[3];
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		args[i] = (struct cycle_arg){ .fx = fx };
		pthread_create(&threads[i], NULL, cycle_thread, &args[i]);
	}
	sleep_ms(30);
	manager_shutdown(fx->m, false); /* creates after this fail with 503; none may leak */
	for (i = 0; i < 3; i++)
		pthread_join(threads[i], NULL);
	free_fixture(fx);
}

/* ---- the warm pool on its own, with fake ops --------------------------------------------- */

struct fake_clone {
	const struct pack *pack;
	bool dead;
};

struct fake_pool_env {
	pthread_mutex_t lock;
	bool slot_free;
	enum pool_memory memory;      /* what the memory op says (ROOM when zeroed) */
	unsigned booted, discarded, discarded_why, records;
	struct fake_clone *last;
};

static enum pool_boot_result fake_boot_clone(void *ctx, const struct pack *pack,
					     struct sandbox **out)
{
	struct fake_pool_env *env = ctx;
	struct fake_clone *c;

	pthread_mutex_lock(&env->lock);
	if (!env->slot_free) {
		pthread_mutex_unlock(&env->lock);
		return POOL_NO_SLOT;
	}
	c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->pack = pack;
	env->booted++;
	env->last = c;
	pthread_mutex_unlock(&env->lock);
	*out = (struct sandbox *)c;
	return POOL_BOOTED;
}

static bool fake_usable(void *ctx, struct sandbox *sb)
{
	struct fake_pool_env *env = ctx;
	bool dead;

	pthread_mutex_lock(&env->lock);
	dead = ((struct fake_clone *)sb)->dead;
	pthread_mutex_unlock(&env->lock);
	return !dead;
}

static void fake_discard(void *ctx, struct sandbox *sb, const char *why)
{
	struct fake_pool_env *env = ctx;

	pthread_mutex_lock(&env->lock);
	env->discarded++;
	env->discarded_why += why != NULL;
	pthread_mutex_unlock(&env->lock);
	free(sb);
}

static void fake_write_record(void *ctx, struct sandbox *sb)
{
	struct fake_pool_env *env = ctx;

	(void)sb;
	pthread_mutex_lock(&env->lock);
	env->records++;
	pthread_mutex_unlock(&env->lock);
}

static enum pool_memory fake_memory(void *ctx, const struct pack *pack)
{
	struct fake_pool_env *env = ctx;
	enum pool_memory m;

	(void)pack;
	pthread_mutex_lock(&env->lock);
	m = env->memory;
	pthread_mutex_unlock(&env->lock);
	return m;
}

/* A clone's "pid": 4242 (the pool only passes it on). */
static pid_t fake_vmm_pid(void *ctx, struct sandbox *sb)
{
	(void)ctx;
	(void)sb;
	return 4242;
}

static const struct pool_ops fake_pool_ops = {
	.boot_clone = fake_boot_clone,
	.usable = fake_usable,
	.discard = fake_discard,
	.write_record = fake_write_record,
	.memory = fake_memory,
	.vmm_pid = fake_vmm_pid,
};

static void env_set_memory(struct fake_pool_env *env, enum pool_memory m)
{
	pthread_mutex_lock(&env->lock);
	env->memory = m;
	pthread_mutex_unlock(&env->lock);
}

static unsigned env_read(struct fake_pool_env *env, const unsigned *field)
{
	unsigned v;

	pthread_mutex_lock(&env->lock);
	v = *field;
	pthread_mutex_unlock(&env->lock);
	return v;
}

/* Waits up to ms for the pool to hold `ready` clones; returns how long it took. */
static int64_t wait_pool_ready(struct pool *p, unsigned ready, int64_t ms)
{
	int64_t t0 = time_mono_ms();
	struct pool_stats st;

	do {
		pool_stats(p, &st);
		if (st.ready == ready)
			return time_mono_ms() - t0;
		sleep_ms(5);
	} while (time_mono_ms() - t0 < ms);
	fail_msg("the pool holds %u clones, not %u", st.ready, ready);
	return -1;
}

static void pool_fills_hands_out_and_refills(void **state)
{
	struct catalog cat;
	struct fake_pool_env env = { .slot_free = true };
	struct pool *p;
	struct sandbox *sb;
	struct pool_stats st;
	pid_t pids[3] = { 0 };

	(void)state;
	pthread_mutex_init(&env.lock, NULL);
	assert_int_equal(catalog_parse("/img", manifest, strlen(manifest), &cat, NULL), 0);
	assert_int_equal(pool_create(&cat, 2, NULL, &fake_pool_ops, &env, &p, NULL), 0);
	assert_null(pool_take(p, &cat.packs[0])); /* not started: empty */
	pool_start(p);
	wait_pool_ready(p, 2, 2000);
	/* The waiting clones' VMMs, for the metrics' memory gauges; bounded by max. */
	assert_int_equal(pool_vmm_pids(p, pids, 3), 2);
	assert_int_equal(pids[1], 4242);
	assert_int_equal(pool_vmm_pids(p, pids, 1), 1);
	sb = pool_take(p, &cat.packs[0]);
	assert_non_null(sb);
	pool_write_record_later(p, sb);
	wait_pool_ready(p, 2, 2000);
	pool_stats(p, &st);
	assert_int_equal(st.handouts_total, 1);
	assert_int_equal(st.ready_by_pack[0], 2);
	assert_int_equal(env_read(&env, &env.booted), 3);
	pool_stop(p);
	assert_int_equal(env_read(&env, &env.records), 1);
	assert_int_equal(env_read(&env, &env.discarded), 2); /* the two never handed out */
	assert_int_equal(env_read(&env, &env.discarded_why), 0);
	assert_null(pool_take(p, &cat.packs[0]));
	pool_write_record_later(p, sb); /* stopped: written at once */
	assert_int_equal(env_read(&env, &env.records), 2);
	free(sb);
	pool_free(p);
	catalog_release(&cat);
	pthread_mutex_destroy(&env.lock);
}

/* --pool-packs: only the listed packs are kept ready; the others are never booted. */
static void pool_keeps_only_the_listed_packs(void **state)
{
	static const char two[] =
		"{\"version\":1,\"kernel\":{\"bzimage\":\"k\",\"vmlinux\":\"v\",\"release\":\"r\"},"
		"\"initramfs\":\"i\",\"packs\":[{\"name\":\"python\",\"image\":\"p.sq\",\"sha256\":\""
		SHA "\",\"interpreter\":[\"/usr/bin/python3\"],\"description\":\"d\",\"defaults\":"
		"{\"exec_timeout_ms\":2000,\"output_limit_bytes\":1024,\"memory_mib\":256,\"vcpus\":1,"
		"\"overlay_mib\":64}},{\"name\":\"shell\",\"image\":\"s.sq\",\"sha256\":\"" SHA
		"\",\"interpreter\":[\"/bin/sh\"],\"description\":\"d\",\"defaults\":"
		"{\"exec_timeout_ms\":2000,\"output_limit_bytes\":1024,\"memory_mib\":256,\"vcpus\":1,"
		"\"overlay_mib\":64}}]}";
	struct catalog cat;
	struct fake_pool_env env = { .slot_free = true };
	struct pool *p;
	struct pool_stats st;

	(void)state;
	pthread_mutex_init(&env.lock, NULL);
	assert_int_equal(catalog_parse("/img", two, strlen(two), &cat, NULL), 0);
	assert_int_equal(pool_create(&cat, 2, "shell", &fake_pool_ops, &env, &p, NULL), 0);
	pool_start(p);
	wait_pool_ready(p, 2, 2000);
	sleep_ms(50); /* a filler that wanted python too would have booted one by now */
	pool_stats(p, &st);
	assert_int_equal(st.ready, 2);
	assert_int_equal(st.ready_by_pack[0], 0);
	assert_int_equal(st.ready_by_pack[1], 2);
	assert_null(pool_take(p, &cat.packs[0]));
	assert_int_equal(env_read(&env, &env.booted), 2);
	pool_stop(p);
	pool_free(p);
	catalog_release(&cat);
	pthread_mutex_destroy(&env.lock);
}

static void pool_replaces_a_clone_that_died(void **state)
{
	struct catalog cat;
	struct fake_pool_env env = { .slot_free = true };
	struct pool *p;
	int64_t deadline;

	(void)state;
	pthread_mutex_init(&env.lock, NULL);
	assert_int_equal(catalog_parse("/img", manifest, strlen(manifest), &cat, NULL), 0);
	assert_int_equal(pool_create(&cat, 1, NULL, &fake_pool_ops, &env, &p, NULL), 0);
	pool_start(p);
	wait_pool_ready(p, 1, 2000);
	pthread_mutex_lock(&env.lock);
	env.last->dead = true;
	pthread_mutex_unlock(&env.lock);
	assert_null(pool_take(p, &cat.packs[0])); /* a dead clone is never handed out */
	deadline = time_mono_ms() + 3000;
	while (env_read(&env, &env.booted) < 2 && time_mono_ms() < deadline)
		sleep_ms(10);
	assert_int_equal(env_read(&env, &env.discarded_why), 1);
	wait_pool_ready(p, 1, 2000);
	pool_free(p);
	catalog_release(&cat);
	pthread_mutex_destroy(&env.lock);
}

static void pool_waits_for_memory_and_gives_clones_back_under_pressure(void **state)
{
	struct catalog cat;
	struct fake_pool_env env = { .slot_free = true, .memory = POOL_MEMORY_FULL };
	struct pool_stats st;
	struct pool *p;

	(void)state;
	pthread_mutex_init(&env.lock, NULL);
	assert_int_equal(catalog_parse("/img", manifest, strlen(manifest), &cat, NULL), 0);
	assert_int_equal(pool_create(&cat, 2, NULL, &fake_pool_ops, &env, &p, NULL), 0);
	pool_start(p);
	sleep_ms(700); /* past a check: no room, no fill */
	pool_stats(p, &st);
	assert_int_equal(env_read(&env, &env.booted), 0);
	assert_true(st.memory_low);
	env_set_memory(&env, POOL_MEMORY_ROOM);
	wait_pool_ready(p, 2, 3000);
	pool_stats(p, &st);
	assert_false(st.memory_low);
	/* Below the reserve: the checks give both back, one at a time, and nothing refills. */
	env_set_memory(&env, POOL_MEMORY_PRESSURE);
	wait_pool_ready(p, 0, 3000);
	pool_stats(p, &st);
	assert_int_equal(st.shed_total, 2);
	assert_int_equal(env_read(&env, &env.discarded_why), 2);
	assert_int_equal(env_read(&env, &env.booted), 2);
	env_set_memory(&env, POOL_MEMORY_ROOM);
	wait_pool_ready(p, 2, 3000);
	pool_free(p);
	catalog_release(&cat);
	pthread_mutex_destroy(&env.lock);
}

static void pool_fills_as_soon_as_a_boot_slot_frees(void **state)
{
	struct catalog cat;
	struct fake_pool_env env = { .slot_free = false };
	struct pool *p;
	struct pool_stats st;

	(void)state;
	pthread_mutex_init(&env.lock, NULL);
	assert_int_equal(catalog_parse("/img", manifest, strlen(manifest), &cat, NULL), 0);
	assert_int_equal(pool_create(&cat, 1, NULL, &fake_pool_ops, &env, &p, NULL), 0);
	pool_start(p);
	sleep_ms(50);
	pool_stats(p, &st);
	assert_int_equal(st.ready, 0);
	pthread_mutex_lock(&env.lock);
	env.slot_free = true;
	pthread_mutex_unlock(&env.lock);
	pool_wake(p);
	/* woken by the freed slot, not by the next periodic check */
	assert_true(wait_pool_ready(p, 1, 2000) < 250);
	pool_free(p);
	catalog_release(&cat);
	pthread_mutex_destroy(&env.lock);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(create_exec_delete_cycle),
		cmocka_unit_test(create_validates_pack_and_limits),
		cmocka_unit_test(max_sandboxes_gives_capacity_error),
		cmocka_unit_test(boot_timeout_leaves_nothing),
		cmocka_unit_test(memory_promised_to_a_booting_create_counts),
		cmocka_unit_test(guest_closing_channel_fails_sandbox),
		cmocka_unit_test(hostile_guest_text_is_escaped_in_logs_and_kept_in_failure),
		cmocka_unit_test(garbage_from_guest_fails_sandbox),
		cmocka_unit_test(half_sent_frame_fails_sandbox_after_deadline),
		cmocka_unit_test(vmm_death_is_noticed),
		cmocka_unit_test(hung_guest_times_out_exec),
		cmocka_unit_test(exec_cancelled_at_the_host_deadline_is_timed_out),
		cmocka_unit_test(delete_during_exec_gives_conflict),
		cmocka_unit_test(expired_sandbox_is_destroyed),
		cmocka_unit_test(concurrent_cycles_all_succeed),
		cmocka_unit_test(list_during_create_and_delete_sees_consistent_state),
		cmocka_unit_test(shutdown_during_creates_leaves_nothing),
		cmocka_unit_test(pool_fills_hands_out_and_refills),
		cmocka_unit_test(pool_keeps_only_the_listed_packs),
		cmocka_unit_test(pool_replaces_a_clone_that_died),
		cmocka_unit_test(pool_waits_for_memory_and_gives_clones_back_under_pressure),
		cmocka_unit_test(pool_fills_as_soon_as_a_boot_slot_frees),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
