/* Unit tests for the Firecracker jail's file handling (src/vmm/fc_jail.c): whatever a jailed
 * Firecracker planted in its jail's root (which its uid owns), a symlink to a host file or a
 * file of its own making, the daemon neither changes nor believes the host file behind it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmpdir.h"
#include "vmm/fc_jail.h"

struct fixture {
	struct fc_jail_settings settings;
	struct fc_jail jail;
	char host_file[PATH_MAX]; /* a host file a VMM would like root to chown, chmod or read */
	char outside[PATH_MAX];   /* where fc_jail_take moves a snapshot file to */
};

static int setup(void **state)
{
	static unsigned seq;
	struct fixture *fx = calloc(1, sizeof(*fx));
	char dir[PATH_MAX], id[32];
	int fd;

	assert_non_null(fx);
	snprintf(dir, sizeof(dir), "%s/case%u", tmpdir_path, seq);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(fx->settings.chroot_base, sizeof(fx->settings.chroot_base), "%s/jails", dir);
	snprintf(fx->host_file, sizeof(fx->host_file), "%s/secret", dir);
	snprintf(fx->outside, sizeof(fx->outside), "%s/taken", dir);
	snprintf(id, sizeof(id), "sb_%08u", seq++);
	assert_int_equal(fc_jail_prepare(&fx->jail, &fx->settings, "/usr/bin/firecracker", id,
					 NULL), 0);
	/* The VM's uid: the test's own, so that a file the test writes in the jail is the VM's. */
	fx->jail.uid = geteuid();
	fd = open(fx->host_file, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "42", 2), 2);
	close(fd);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

static void in_jail(const struct fixture *fx, const char *name, char *out, size_t size)
{
	assert_int_equal(fc_jail_host_path(&fx->jail, name, out, size, NULL), 0);
}

static void assert_host_file_untouched(const struct fixture *fx)
{
	struct stat st;

	assert_int_equal(lstat(fx->host_file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(st.st_nlink, 1);
}

static void take_refuses_a_symlink_and_leaves_its_target_alone(void **state)
{
	struct fixture *fx = *state;
	struct ember_error *err = NULL;
	char planted[PATH_MAX];
	struct stat st;

	in_jail(fx, "memory", planted, sizeof(planted));
	assert_int_equal(symlink(fx->host_file, planted), 0);
	assert_int_equal(fc_jail_take(&fx->jail, "memory", fx->outside, &err), -1);
	assert_non_null(err);
	ember_error_free(&err);
	assert_host_file_untouched(fx);
	/* the symlink is gone from where it was moved: nothing dangles in the template */
	assert_int_equal(lstat(fx->outside, &st), -1);
	assert_int_equal(errno, ENOENT);
}

static void take_refuses_a_hard_link_to_a_host_file(void **state)
{
	struct fixture *fx = *state;
	struct ember_error *err = NULL;
	char planted[PATH_MAX];

	in_jail(fx, "state", planted, sizeof(planted));
	assert_int_equal(link(fx->host_file, planted), 0);
	assert_int_equal(fc_jail_take(&fx->jail, "state", fx->outside, &err), -1);
	ember_error_free(&err);
	assert_int_equal(access(fx->outside, F_OK), -1);
	assert_host_file_untouched(fx);
}

static void take_refuses_a_file_of_another_uid(void **state)
{
	struct fixture *fx = *state;
	struct ember_error *err = NULL;
	char written[PATH_MAX];
	int fd;

	in_jail(fx, "state", written, sizeof(written));
	fd = open(written, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	fx->jail.uid = geteuid() + 1;
	assert_int_equal(fc_jail_take(&fx->jail, "state", fx->outside, &err), -1);
	ember_error_free(&err);
	assert_int_equal(access(fx->outside, F_OK), -1);
}

static void take_makes_the_vms_own_file_read_only(void **state)
{
	struct fixture *fx = *state;
	char written[PATH_MAX];
	struct stat st;
	int fd;

	in_jail(fx, "memory", written, sizeof(written));
	fd = open(written, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(fc_jail_take(&fx->jail, "memory", fx->outside, NULL), 0);
	assert_int_equal(lstat(fx->outside, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(access(written, F_OK), -1);
}

static void link_replaces_a_planted_symlink_instead_of_writing_through_it(void **state)
{
	struct fixture *fx = *state;
	char planted[PATH_MAX], image[PATH_MAX], jail_path[64];
	struct stat st, img;
	int fd;

	snprintf(image, sizeof(image), "%s.image", fx->host_file);
	fd = open(image, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	close(fd);
	in_jail(fx, "pack", planted, sizeof(planted));
	assert_int_equal(symlink(fx->host_file, planted), 0);
	assert_int_equal(fc_jail_link(&fx->jail, image, "pack", jail_path, sizeof(jail_path), NULL),
			 0);
	assert_string_equal(jail_path, "/pack");
	assert_int_equal(lstat(planted, &st), 0);
	assert_int_equal(stat(image, &img), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_ino, img.st_ino);
	assert_host_file_untouched(fx);
}

/* A mount's image: hard-linked when it lies on the jail's filesystem, else copied (the daemon's,
 * 0444, the same bytes) from another one (/dev/shm stands for a tmpfs run directory). */
static void place_links_on_the_jails_filesystem_and_copies_from_another(void **state)
{
	struct fixture *fx = *state;
	char image[PATH_MAX], jail_path[PATH_MAX], placed[PATH_MAX], text[8] = "";
	struct stat st, src;
	int fd;

	snprintf(image, sizeof(image), "%s/image.squashfs", tmpdir_path);
	fd = open(image, O_WRONLY | O_CREAT | O_TRUNC, 0444);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "sqsh", 4), 4);
	close(fd);
	assert_int_equal(fc_jail_place(&fx->jail, image, "mount0", jail_path, sizeof(jail_path),
				       NULL), 0);
	assert_string_equal(jail_path, "/mount0");
	in_jail(fx, "mount0", placed, sizeof(placed));
	assert_int_equal(stat(placed, &st), 0);
	assert_int_equal(stat(image, &src), 0);
	assert_int_equal(st.st_ino, src.st_ino);
	assert_int_equal(unlink(image), 0);

	snprintf(image, sizeof(image), "/dev/shm/emberd-unit-image.%d", (int)getpid());
	fd = open(image, O_WRONLY | O_CREAT | O_TRUNC, 0400);
	if (fd < 0)
		skip();
	assert_int_equal(write(fd, "sqsh", 4), 4);
	close(fd);
	assert_int_equal(stat(image, &src), 0);
	assert_int_equal(stat(fx->jail.root, &st), 0);
	if (src.st_dev == st.st_dev) {
		unlink(image);
		skip();
	}
	assert_int_equal(fc_jail_place(&fx->jail, image, "mount1", jail_path, sizeof(jail_path),
				       NULL), 0);
	assert_int_equal(unlink(image), 0);
	in_jail(fx, "mount1", placed, sizeof(placed));
	assert_int_equal(stat(placed, &st), 0);
	assert_int_not_equal(st.st_ino, src.st_ino);
	assert_int_equal(st.st_mode & 07777, 0444);
	assert_int_equal(st.st_uid, geteuid());
	fd = open(placed, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, text, sizeof(text)), 4);
	close(fd);
	assert_string_equal(text, "sqsh");
}

static void write_pid_file(const struct fixture *fx, const char *text)
{
	char path[PATH_MAX];
	int fd;

	in_jail(fx, "firecracker.pid", path, sizeof(path));
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void pid_file_is_read_strictly(void **state)
{
	struct fixture *fx = *state;
	const char *bad[] = { "", "0", "012", "12\n", "-5", "+5", "12a", "99999999999",
			      "12345678901234567" };
	struct ember_error *err = NULL;
	pid_t pid = 0;
	size_t i;

	if (geteuid() != 0)
		skip(); /* the file must be root's, as the jailer's is */
	write_pid_file(fx, "4242");
	assert_int_equal(fc_jail_read_pid(&fx->jail, &pid, NULL), 0);
	assert_int_equal(pid, 4242);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_pid_file(fx, bad[i]);
		if (fc_jail_read_pid(&fx->jail, &pid, &err) != -1)
			fail_msg("pid file `%s` was accepted", bad[i]);
		ember_error_free(&err);
	}
}

static void pid_file_that_is_a_symlink_or_not_roots_is_refused(void **state)
{
	struct fixture *fx = *state;
	struct ember_error *err = NULL;
	char path[PATH_MAX];
	pid_t pid = 0;

	if (geteuid() != 0)
		skip();
	in_jail(fx, "firecracker.pid", path, sizeof(path));
	/* a symlink to a root-owned file holding a number: not followed */
	assert_int_equal(symlink(fx->host_file, path), 0);
	assert_int_equal(fc_jail_read_pid(&fx->jail, &pid, &err), -1);
	ember_error_free(&err);
	/* a file the jailed uid wrote itself */
	write_pid_file(fx, "4242");
	assert_int_equal(chown(path, 1900000001, 1900000001), 0);
	assert_int_equal(fc_jail_read_pid(&fx->jail, &pid, &err), -1);
	ember_error_free(&err);
	assert_int_equal(pid, 0);
}

static void settings_refuse_the_shared_jailer_uid(void **state)
{
	struct fc_jail_settings s;
	struct ember_error *err = NULL;

	(void)state;
	setenv("EMBERD_JAILER_UID", "65534", 1);
	assert_int_equal(fc_jail_settings_load(&s, &err), -1);
	assert_non_null(strstr(err->message, "--vmm-uid-base"));
	ember_error_free(&err);
	unsetenv("EMBERD_JAILER_UID");
	assert_int_equal(fc_jail_settings_load(&s, NULL), 0);
	assert_string_equal(s.chroot_base, "/srv/jailer");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(take_refuses_a_symlink_and_leaves_its_target_alone,
						setup, teardown),
		cmocka_unit_test_setup_teardown(take_refuses_a_hard_link_to_a_host_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(take_refuses_a_file_of_another_uid, setup,
						teardown),
		cmocka_unit_test_setup_teardown(take_makes_the_vms_own_file_read_only, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			link_replaces_a_planted_symlink_instead_of_writing_through_it, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			place_links_on_the_jails_filesystem_and_copies_from_another, setup, teardown),
		cmocka_unit_test_setup_teardown(pid_file_is_read_strictly, setup, teardown),
		cmocka_unit_test_setup_teardown(pid_file_that_is_a_symlink_or_not_roots_is_refused,
						setup, teardown),
		cmocka_unit_test(settings_refuse_the_shared_jailer_uid),
	};

	return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
