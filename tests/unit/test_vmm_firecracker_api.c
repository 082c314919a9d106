/* Unit tests for the Firecracker API client (src/vmm/fc_api.c) and the jail helpers
 * (src/vmm/fc_jail.c). A thread plays Firecracker on a Unix socket with one canned answer per
 * test: a 204 passes, a 400's fault_message becomes the error (sanitized and bounded), odd
 * answers, silence and a missing socket fail with the right kind; PATCH goes out as PATCH.
 * Snapshot files leave a jail by rename, owned by the caller and read-only to others. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/timeutil.h"
#include "vmm/fc_api.h"
#include "vmm/fc_jail.h"

struct fake_fc {
	char dir[64];
	char sock[128];
	int listen_fd;
	const char *answer;   /* raw HTTP response, or NULL to stay silent until closed */
	char request[4096];   /* what the client sent (head and body) */
	pthread_t thread;
};

static void *fake_fc_main(void *arg)
{
	struct fake_fc *f = arg;
	size_t used = 0;
	int fd = accept(f->listen_fd, NULL, NULL);

	if (fd < 0)
		return NULL;
	/* Read the head and a Content-Length body (the client sends both at once, small). */
	for (;;) {
		ssize_t n = read(fd, f->request + used, sizeof(f->request) - 1 - used);
		char *head_end, *cl;

		if (n <= 0)
			break;
		used += (size_t)n;
		f->request[used] = '\0';
		head_end = strstr(f->request, "\r\n\r\n");
		if (head_end == NULL)
			continue;
		cl = strcasestr(f->request, "Content-Length: ");
		if (cl == NULL || used >= (size_t)(head_end + 4 - f->request) +
					       strtoul(cl + 16, NULL, 10))
			break;
	}
	if (f->answer != NULL) {
		if (write(fd, f->answer, strlen(f->answer)) < 0)
			perror("fake firecracker write");
	} else {
		char c;

		while (read(fd, &c, 1) > 0) /* silent until the client gives up */
			;
	}
	close(fd);
	return NULL;
}

static void fake_fc_start(struct fake_fc *f, const char *answer)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/fcapi.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sock, sizeof(f->sock), "%s/fc.sock", f->dir);
	f->answer = answer;
	f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->listen_fd >= 0);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", f->sock);
	assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(f->listen_fd, 4), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_fc_main, f), 0);
}

static void fake_fc_stop(struct fake_fc *f)
{
	pthread_join(f->thread, NULL);
	close(f->listen_fd);
	unlink(f->sock);
	rmdir(f->dir);
}

/* PUT /machine-config against a fake answering `answer`; returns the error (NULL on success). */
static struct ember_error *put(struct fake_fc *f, const char *answer, int64_t timeout_ms)
{
	struct ember_error *err = NULL;
	struct fc_api *api = NULL;
	json_t *body = json_pack("{s:i,s:i}", "vcpu_count", 2, "mem_size_mib", 256);

	fake_fc_start(f, answer);
	assert_int_equal(fc_api_open(f->sock, &api, &err), 0);
	fc_api_put(api, "/machine-config", body, time_mono_ms() + timeout_ms, &err);
	fc_api_close(api); /* closes the connection: a silent fake sees EOF and ends */
	json_decref(body);
	fake_fc_stop(f);
	return err;
}

static void assert_mentions(const struct ember_error *err, const char *text)
{
	assert_non_null(err);
	if (strstr(err->message, text) == NULL)
		fail_msg("`%s` does not mention `%s`", err->message, text);
}

static void put_succeeds_on_204_and_sends_the_json_body(void **state)
{
	struct fake_fc f;

	(void)state;
	assert_null(put(&f, "HTTP/1.1 204 No Content\r\nServer: Firecracker API\r\n\r\n", 5000));
	assert_non_null(strstr(f.request, "PUT /machine-config HTTP/1.1\r\n"));
	assert_non_null(strstr(f.request, "Content-Type: application/json\r\n"));
	assert_non_null(strstr(f.request, "\r\n\r\n{\"vcpu_count\":2,\"mem_size_mib\":256}"));
}

static void patch_goes_out_as_patch_and_names_its_method_in_errors(void **state)
{
	struct ember_error *err = NULL;
	struct fc_api *api = NULL;
	static const char fault[] =
		"{\"fault_message\":\"The requested operation is not supported before starting.\"}";
	static char answer[256];
	struct fake_fc f;
	json_t *body = json_pack("{s:s}", "state", "Paused");

	(void)state;
	fake_fc_start(&f, "HTTP/1.1 204 No Content\r\n\r\n");
	assert_int_equal(fc_api_open(f.sock, &api, &err), 0);
	assert_int_equal(fc_api_request(api, "PATCH", "/vm", body, time_mono_ms() + 5000, &err), 0);
	fc_api_close(api);
	fake_fc_stop(&f);
	assert_non_null(strstr(f.request, "PATCH /vm HTTP/1.1\r\n"));
	assert_non_null(strstr(f.request, "\r\n\r\n{\"state\":\"Paused\"}"));

	snprintf(answer, sizeof(answer), "HTTP/1.1 400 Bad Request\r\nContent-Length: %zu\r\n\r\n%s",
		 strlen(fault), fault);
	fake_fc_start(&f, answer);
	assert_int_equal(fc_api_open(f.sock, &api, &err), 0);
	assert_int_equal(fc_api_request(api, "PATCH", "/vm", body, time_mono_ms() + 5000, &err),
			 -1);
	fc_api_close(api);
	fake_fc_stop(&f);
	assert_int_equal(err->kind, EMBER_E_GUEST);
	assert_string_equal(err->message, "firecracker PATCH /vm: The requested operation is not "
					  "supported before starting.");
	ember_error_free(&err);
	json_decref(body);
}

static void put_surfaces_the_fault_message(void **state)
{
	struct ember_error *err;
	struct fake_fc f;

	(void)state;
	err = put(&f,
		  "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
		  "Content-Length: 54\r\n\r\n"
		  "{\"fault_message\":\"The memory size (MiB) is\\ninvalid.\"}",
		  5000);
	assert_int_equal(err->kind, EMBER_E_GUEST);
	/* Control characters from the VMM are blanked before they reach logs and API bodies. */
	assert_string_equal(err->message,
			    "firecracker PUT /machine-config: The memory size (MiB) is invalid.");
	ember_error_free(&err);
}

static void put_bounds_a_huge_fault_message(void **state)
{
	static char answer[8192];
	struct ember_error *err;
	struct fake_fc f;
	char text[4000];

	(void)state;
	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	snprintf(answer, sizeof(answer),
		 "HTTP/1.1 400 Bad Request\r\nContent-Length: %zu\r\n\r\n{\"fault_message\":\"%s\"}",
		 strlen(text) + 20, text);
	err = put(&f, answer, 5000);
	assert_int_equal(err->kind, EMBER_E_GUEST);
	assert_true(strlen(err->message) < FC_API_FAULT_MAX + 64);
	assert_mentions(err, "xxx...");
	ember_error_free(&err);
}

static void put_fails_as_guest_error_on_odd_answers(void **state)
{
	struct ember_error *err;
	struct fake_fc f;

	(void)state;
	err = put(&f, "HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\n{}", 5000);
	assert_int_equal(err->kind, EMBER_E_GUEST);
	assert_mentions(err, "firecracker PUT /machine-config: HTTP 400 without a fault_message");
	ember_error_free(&err);

	err = put(&f, "HTTP/1.1 500 Oops\r\nContent-Length: 5\r\n\r\nboom!", 5000);
	assert_int_equal(err->kind, EMBER_E_GUEST);
	assert_mentions(err, "firecracker PUT /machine-config");
	assert_mentions(err, "not a JSON object");
	ember_error_free(&err);

	err = put(&f, "garbage\r\n\r\n", 5000);
	assert_int_equal(err->kind, EMBER_E_GUEST);
	assert_mentions(err, "firecracker PUT /machine-config");
	ember_error_free(&err);
}

static void put_times_out_at_the_deadline(void **state)
{
	struct ember_error *err;
	struct fake_fc f;
	int64_t t0 = time_mono_ms();

	(void)state;
	err = put(&f, NULL, 300);
	assert_int_equal(err->kind, EMBER_E_GUEST_TIMEOUT);
	assert_true(time_mono_ms() - t0 < 3000);
	ember_error_free(&err);
}

static void put_on_a_missing_socket_is_a_guest_error(void **state)
{
	struct ember_error *err = NULL;
	struct fc_api *api = NULL;
	json_t *body = json_object();

	(void)state;
	assert_int_equal(fc_api_open("/tmp/fcapi-nonexistent/fc.sock", &api, &err), 0);
	assert_int_equal(fc_api_put(api, "/entropy", body, time_mono_ms() + 2000, &err), -1);
	assert_int_equal(err->kind, EMBER_E_GUEST);
	assert_mentions(err, "firecracker PUT /entropy");
	ember_error_free(&err);
	/* A deadline already passed fails without any I/O. */
	assert_int_equal(fc_api_put(api, "/entropy", body, time_mono_ms() - 1, &err), -1);
	assert_int_equal(err->kind, EMBER_E_GUEST_TIMEOUT);
	ember_error_free(&err);
	fc_api_close(api);
	json_decref(body);
}

static void instance_id_maps_sandbox_ids_and_rejects_the_rest(void **state)
{
	struct ember_error *err = NULL;
	char id[FC_ID_MAX + 1];
	char long_id[80];

	(void)state;
	assert_int_equal(fc_instance_id("sb_0123abcd", id, sizeof(id), &err), 0);
	assert_string_equal(id, "sb-0123abcd");
	assert_int_equal(fc_instance_id("sb_../x", id, sizeof(id), &err), -1);
	ember_error_free(&err);
	assert_int_equal(fc_instance_id("", id, sizeof(id), &err), -1);
	ember_error_free(&err);
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_int_equal(fc_instance_id(long_id, id, sizeof(id), &err), -1);
	ember_error_free(&err);
}

static void jail_layout_follows_the_jailer(void **state)
{
	struct fc_jail_settings s = { .chroot_base = "" };
	struct ember_error *err = NULL;
	struct fc_jail j;
	char path[256];

	(void)state;
	snprintf(s.chroot_base, sizeof(s.chroot_base), "/srv/jailer");
	snprintf(s.cgroup2_root, sizeof(s.cgroup2_root), "/sys/fs/cgroup");
	assert_int_equal(fc_jail_layout(&j, &s, "/usr/local/bin/firecracker-v1.10", "sb_42", &err),
			 0);
	assert_string_equal(j.id, "sb-42");
	assert_string_equal(j.instance_dir, "/srv/jailer/firecracker-v1.10/sb-42");
	assert_string_equal(j.root, "/srv/jailer/firecracker-v1.10/sb-42/root");
	assert_string_equal(j.cgroup_dir, "/sys/fs/cgroup/firecracker-v1.10/sb-42");
	assert_int_equal(fc_jail_host_path(&j, "v.sock", path, sizeof(path), &err), 0);
	assert_string_equal(path, "/srv/jailer/firecracker-v1.10/sb-42/root/v.sock");
	/* A socket path beyond sun_path fails with a hint instead of a confusing bind error. */
	assert_int_equal(fc_jail_host_path(&j, "v.sock", path, 40, &err), -1);
	assert_mentions(err, "EMBERD_JAILER_CHROOT_BASE");
	ember_error_free(&err);
}

static void jail_take_moves_a_snapshot_file_out_read_only(void **state)
{
	struct fc_jail_settings s = { .chroot_base = "" };
	struct ember_error *err = NULL;
	char dir[64], file[256], out[256];
	struct fc_jail j;
	struct stat st;
	FILE *fp;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/fcjail.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(s.chroot_base, sizeof(s.chroot_base), "%s", dir);
	assert_int_equal(fc_jail_prepare(&j, &s, "/usr/bin/firecracker", "tpl_42", &err), 0);
	j.uid = geteuid(); /* the VM's uid: the file below is the test's */
	/* What a jailed Firecracker leaves after /snapshot/create: a file it owns, mode 0600. */
	assert_int_equal(fc_jail_host_path(&j, "state", file, sizeof(file), &err), 0);
	fp = fopen(file, "w");
	assert_non_null(fp);
	fputs("device state", fp);
	fclose(fp);
	assert_int_equal(chmod(file, 0600), 0);
	snprintf(out, sizeof(out), "%s/state", dir);
	assert_int_equal(fc_jail_take(&j, "state", out, &err), 0);
	assert_int_equal(access(file, F_OK), -1);
	assert_int_equal(stat(out, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(st.st_size, 12);
	/* Nothing to take: the error names the jail path. */
	assert_int_equal(fc_jail_take(&j, "memory", out, &err), -1);
	assert_mentions(err, "/root/memory");
	ember_error_free(&err);
	unlink(out);
	fc_jail_cleanup(&j);
	snprintf(file, sizeof(file), "%s/firecracker", dir);
	rmdir(file);
	assert_int_equal(rmdir(dir), 0);
}

static void jail_settings_come_from_the_environment_strictly(void **state)
{
	struct fc_jail_settings s;
	struct ember_error *err = NULL;

	(void)state;
	unsetenv("EMBERD_JAILER_UID");
	unsetenv("EMBERD_JAILER_GID");
	unsetenv("EMBERD_JAILER_CHROOT_BASE");
	assert_int_equal(fc_jail_settings_load(&s, &err), 0);
	assert_string_equal(s.chroot_base, "/srv/jailer");
	setenv("EMBERD_JAILER_CHROOT_BASE", "/var/jail", 1);
	assert_int_equal(fc_jail_settings_load(&s, &err), 0);
	assert_string_equal(s.chroot_base, "/var/jail");
	/* one shared uid for every jail is gone: each VM has its own from the range */
	setenv("EMBERD_JAILER_GID", "5", 1);
	assert_int_equal(fc_jail_settings_load(&s, &err), -1);
	assert_mentions(err, "EMBERD_JAILER_GID");
	ember_error_free(&err);
	unsetenv("EMBERD_JAILER_GID");
	setenv("EMBERD_JAILER_CHROOT_BASE", "relative/dir", 1);
	assert_int_equal(fc_jail_settings_load(&s, &err), -1);
	assert_mentions(err, "absolute");
	ember_error_free(&err);
	unsetenv("EMBERD_JAILER_CHROOT_BASE");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(put_succeeds_on_204_and_sends_the_json_body),
		cmocka_unit_test(patch_goes_out_as_patch_and_names_its_method_in_errors),
		cmocka_unit_test(put_surfaces_the_fault_message),
		cmocka_unit_test(put_bounds_a_huge_fault_message),
		cmocka_unit_test(put_fails_as_guest_error_on_odd_answers),
		cmocka_unit_test(put_times_out_at_the_deadline),
		cmocka_unit_test(put_on_a_missing_socket_is_a_guest_error),
		cmocka_unit_test(instance_id_maps_sandbox_ids_and_rejects_the_rest),
		cmocka_unit_test(jail_layout_follows_the_jailer),
		cmocka_unit_test(jail_take_moves_a_snapshot_file_out_read_only),
		cmocka_unit_test(jail_settings_come_from_the_environment_strictly),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
