/* Unit tests for finding the virtio-serial port by name (src/guest/channel.c), on a fake sysfs. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"

#include "guest/channel.h"
#include "util/fdio.h"

static void add_port(const char *dev, const char *name)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir_path, dev);
	assert_int_equal(mkdir(path, 0755), 0);
	if (name == NULL)
		return;
	snprintf(path, sizeof(path), "%s/%s/name", tmpdir_path, dev);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(name, f);
	fclose(f);
}

static void port_is_found_by_name_among_others(void **state)
{
	char out[128];

	(void)state;
	add_port("vport0p0", "");
	add_port("vport0p1", "org.other\n");
	add_port("vport0p2", NULL); /* no name file */
	add_port("vport0p3", "org.emberd.agent\n");
	assert_int_equal(guest_channel_find_port(tmpdir_path, "/dev", GUEST_PORT_NAME, out, sizeof(out),
						 NULL), 1);
	assert_string_equal(out, "/dev/vport0p3");
}

static void prefix_of_the_name_does_not_match(void **state)
{
	char out[128];

	(void)state;
	add_port("vport1p1", "org.emberd.agent.extra\n");
	add_port("vport1p2", "org.emberd.agen");
	assert_int_equal(guest_channel_find_port(tmpdir_path, "/dev", "org.emberd.agent2", out,
						 sizeof(out), NULL), 0);
}

static void missing_class_directory_is_not_found_not_an_error(void **state)
{
	char out[128];

	(void)state;
	assert_int_equal(guest_channel_find_port("/nonexistent/virtio-ports", "/dev",
						 GUEST_PORT_NAME, out, sizeof(out), NULL), 0);
}

static void unix_listener_accepts_and_replaces_stale_socket(void **state)
{
	char path[128];
	int lfd, cfd, afd;

	(void)state;
	snprintf(path, sizeof(path), "%s/agent.sock", tmpdir_path);
	lfd = guest_channel_listen_unix(path, NULL);
	assert_true(lfd >= 0);
	close(lfd); /* leaves a stale socket file behind */
	lfd = guest_channel_listen_unix(path, NULL);
	assert_true(lfd >= 0);
	assert_int_equal(guest_channel_accept(lfd, NULL), -2); /* nothing pending */
	cfd = unix_connect(path, NULL);
	assert_true(cfd >= 0);
	afd = guest_channel_accept(lfd, NULL);
	assert_true(afd >= 0);
	assert_true(fcntl(afd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(afd, F_GETFD) & FD_CLOEXEC);
	close(afd);
	close(cfd);
	close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(port_is_found_by_name_among_others),
		cmocka_unit_test(prefix_of_the_name_does_not_match),
		cmocka_unit_test(missing_class_directory_is_not_found_not_an_error),
		cmocka_unit_test(unix_listener_accepts_and_replaces_stale_socket),
	};

	return cmocka_run_group_tests_name("guest_channel", tests, tmpdir_group_setup,
					   tmpdir_group_teardown);
}
