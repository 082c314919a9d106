/* Unit tests for the guest's network configuration pieces that need no NIC (src/guest/net.c):
 * netmasks, the resolv.conf text and its atomic write, and picking the interface from sysfs.
 * The ioctls themselves run in the e2e network tests. */
#include <dirent.h>
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

#include "guest/net.h"
#include "tmpdir.h"
#include "util/cleanup.h"
#include "util/fdio.h"

static void netmask_from_prefix(void **state)
{
	(void)state;
	assert_int_equal(guest_net_netmask(0), 0);
	assert_int_equal(guest_net_netmask(8), 0xff000000u);
	assert_int_equal(guest_net_netmask(16), 0xffff0000u);
	assert_int_equal(guest_net_netmask(24), 0xffffff00u);
	assert_int_equal(guest_net_netmask(30), 0xfffffffcu);
	assert_int_equal(guest_net_netmask(32), 0xffffffffu);
}

static void resolv_text_names_the_one_resolver(void **state)
{
	char text[GUEST_NET_RESOLV_MAX];

	(void)state;
	guest_net_resolv_text(0x0ae70001u, text);
	assert_string_equal(text, "nameserver 10.231.0.1\noptions attempts:2 timeout:2\n");
	guest_net_resolv_text(0xfffffffeu, text);
	assert_string_equal(text, "nameserver 255.255.255.254\noptions attempts:2 timeout:2\n");
}

static char *path_in(const char *dir, const char *name)
{
	char *path;

	assert_true(asprintf(&path, "%s/%s/%s", tmpdir_path, dir, name) > 0);
	return path;
}

static void read_resolv(const char *etc, char **text)
{
	_cleanup_free_ char *path = path_in(etc, "resolv.conf");
	size_t len;

	assert_int_equal(file_read_all(path, 4096, text, &len, NULL), 0);
}

static int count_entries(const char *dir)
{
	struct dirent **list = NULL;
	int n = scandir(dir, &list, NULL, NULL);
	int i, count = 0;

	assert_true(n >= 0);
	for (i = 0; i < n; i++) {
		if (list[i]->d_name[0] != '.')
			count++;
		free(list[i]);
	}
	free(list);
	return count;
}

static void resolv_write_creates_the_directory_and_file(void **state)
{
	_cleanup_free_ char *etc = path_in("etc1", "");
	_cleanup_free_ char *text = NULL;
	_cleanup_free_ char *path = path_in("etc1", "resolv.conf");
	struct stat st;

	(void)state;
	assert_int_equal(guest_net_write_resolv(etc, 0x0ae70001u, NULL), 0);
	read_resolv("etc1", &text);
	assert_string_equal(text, "nameserver 10.231.0.1\noptions attempts:2 timeout:2\n");
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0644);
	/* Again, over the first: replaced, no temp file left beside it. */
	assert_int_equal(guest_net_write_resolv(etc, 0x01020304u, NULL), 0);
	free(text);
	text = NULL;
	read_resolv("etc1", &text);
	assert_string_equal(text, "nameserver 1.2.3.4\noptions attempts:2 timeout:2\n");
	assert_int_equal(count_entries(etc), 1);
}

static void resolv_write_replaces_a_symlink_not_its_target(void **state)
{
	_cleanup_free_ char *etc = path_in("etc2", "");
	_cleanup_free_ char *target = path_in("etc2", "target");
	_cleanup_free_ char *link = path_in("etc2", "resolv.conf");
	_cleanup_free_ char *text = NULL;
	size_t len;
	struct stat st;

	(void)state;
	assert_int_equal(mkdir(etc, 0755), 0);
	assert_int_equal(file_write_atomic(target, "nameserver 9.9.9.9\n", 19, 0644, false, NULL),
			 0);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(guest_net_write_resolv(etc, 0x0ae70001u, NULL), 0);
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(file_read_all(target, 4096, &text, &len, NULL), 0);
	assert_string_equal(text, "nameserver 9.9.9.9\n");
}

/* A fake /sys/class/net: each name with its type file. */
static char *fake_sysfs(const char *dir, const char *const *names, const char *const *types)
{
	char *root = path_in(dir, "");
	size_t i;

	assert_int_equal(mkdir(root, 0755), 0);
	for (i = 0; names[i] != NULL; i++) {
		_cleanup_free_ char *nic = path_in(dir, names[i]);
		_cleanup_free_ char *type = NULL;

		assert_int_equal(mkdir(nic, 0755), 0);
		assert_true(asprintf(&type, "%s/type", nic) > 0);
		assert_int_equal(file_write_atomic(type, types[i], strlen(types[i]), 0644, false,
						   NULL), 0);
	}
	return root;
}

static void find_nic_skips_loopback_and_non_ethernet(void **state)
{
	static const char *const names[] = { "lo", "sit0", "eth1", "eth0", NULL };
	static const char *const types[] = { "772\n", "776\n", "1\n", "1\n" };
	_cleanup_free_ char *root = fake_sysfs("sys1", names, types);
	char name[IFNAMSIZ];

	(void)state;
	assert_int_equal(guest_net_find_nic(root, name, NULL), 1);
	assert_string_equal(name, "eth0");
}

static void find_nic_reports_none(void **state)
{
	static const char *const names[] = { "lo", "tunl0", NULL };
	static const char *const types[] = { "772\n", "768\n" };
	_cleanup_free_ char *root = fake_sysfs("sys2", names, types);
	_cleanup_free_ char *missing = path_in("sys-missing", "");
	struct ember_error *err = NULL;
	char name[IFNAMSIZ];

	(void)state;
	assert_int_equal(guest_net_find_nic(root, name, NULL), 0);
	assert_int_equal(guest_net_find_nic(missing, name, &err), -1);
	assert_non_null(err);
	ember_error_free(&err);
}

static void apply_without_net_does_nothing(void **state)
{
	struct proto_hello_net net = { .present = false };

	(void)state;
	assert_int_equal(guest_net_apply(&net, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(netmask_from_prefix),
		cmocka_unit_test(resolv_text_names_the_one_resolver),
		cmocka_unit_test(resolv_write_creates_the_directory_and_file),
		cmocka_unit_test(resolv_write_replaces_a_symlink_not_its_target),
		cmocka_unit_test(find_nic_skips_loopback_and_non_ethernet),
		cmocka_unit_test(find_nic_reports_none),
		cmocka_unit_test(apply_without_net_does_nothing),
	};

	return cmocka_run_group_tests_name("guest_net", tests, tmpdir_group_setup,
					   tmpdir_group_teardown);
}
