/* Unit tests for the VMM jail (src/vmm/jail.c): what a jailed process is, sees and can do.
 * Needs root, as the daemon does (make test runs as root). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"
#include "util/error.h"
#include "util/fdio.h"
#include "vmm/jail.h"

#define JAIL_UID 61234
#define JAIL_GID 61235

/* Runs argv in a jail with the given binds; returns its exit status and its output. */
static int run_jailed(const struct jail_bind *binds, size_t nbinds, char *const argv[],
		      char **output)
{
	char root[256], log[256];
	struct jail_config jail = {
		.uid = JAIL_UID,
		.gid = JAIL_GID,
		.root = root,
		.binds = binds,
		.nbinds = nbinds,
		.cgroup_fd = -1,
	};
	struct ember_error *err = NULL;
	int log_fd, pidfd, status;
	size_t len;
	pid_t pid;

	snprintf(root, sizeof(root), "%s/jail-root", tmpdir_path);
	snprintf(log, sizeof(log), "%s/out.log", tmpdir_path);
	mkdir(root, 0755);
	unlink(log);
	log_fd = open(log, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(log_fd >= 0);
	if (jail_spawn(&jail, argv, log_fd, &pid, &pidfd, &err) < 0)
		fail_msg("jail_spawn: %s", err->message);
	close(log_fd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(pidfd);
	assert_int_equal(file_read_all(log, 1 << 20, output, &len, &err), 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char *sh(const char *script, int *status, const struct jail_bind *binds, size_t nbinds)
{
	char *const argv[] = { "/bin/sh", "-c", (char *)script, NULL };
	char *out = NULL;

	*status = run_jailed(binds, nbinds, argv, &out);
	return out;
}

static void jailed_process_is_unprivileged_and_alone(void **state)
{
	int status;
	char *out;

	(void)state;
	out = sh("grep -E '^(Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Groups):' "
		 "/proc/self/status; echo pid=$$; hostname; ls /proc | grep -c '^[0-9]'",
		 &status, NULL, 0);
	assert_int_equal(status, 0);
	assert_non_null(strstr(out, "Uid:\t61234\t61234\t61234\t61234"));
	assert_non_null(strstr(out, "Gid:\t61235\t61235\t61235\t61235"));
	assert_non_null(strstr(out, "CapPrm:\t0000000000000000"));
	assert_non_null(strstr(out, "CapEff:\t0000000000000000"));
	assert_non_null(strstr(out, "CapBnd:\t0000000000000000"));
	assert_non_null(strstr(out, "CapAmb:\t0000000000000000"));
	assert_non_null(strstr(out, "NoNewPrivs:\t1"));
	/* Its own PID namespace: the shell is PID 1 and sees no host process. */
	assert_non_null(strstr(out, "pid=1\n"));
	assert_non_null(strstr(out, "emberd-vmm\n"));
	free(out);
}

static void jailed_process_has_no_network_but_loopback(void **state)
{
	int status;
	char *out;

	(void)state;
	out = sh("cat /proc/net/dev", &status, NULL, 0);
	assert_int_equal(status, 0);
	assert_non_null(strstr(out, "lo:"));
	/* The host's interfaces are absent: the header lines plus lo only. */
	assert_null(strstr(out, "eth"));
	assert_null(strstr(out, "ens"));
	free(out);
}

static void jailed_process_sees_only_its_binds(void **state)
{
	char dir[256], ro[256], rw[256], script[2048];
	struct jail_bind binds[2];
	int status;
	char *out;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/sandbox", tmpdir_path);
	snprintf(ro, sizeof(ro), "%s/kernel.img", tmpdir_path);
	snprintf(rw, sizeof(rw), "%s/sandbox/console.log", tmpdir_path);
	mkdir(dir, 0700);
	assert_int_equal(chown(dir, JAIL_UID, JAIL_GID), 0);
	assert_int_equal(file_write_atomic(ro, "image", 5, 0644, false, NULL), 0);
	binds[0] = (struct jail_bind){ .path = dir, .writable = true };
	binds[1] = (struct jail_bind){ .path = ro, .writable = false };
	snprintf(script, sizeof(script),
		 "cat %s; echo; echo hi > %s && echo wrote-rw; "
		 "echo x > %s 2>/dev/null || echo ro-refused; "
		 "test -e /root || echo no-root; test -e /home || echo no-home; "
		 "test -e %s/out.log || echo no-siblings; "
		 "test -e /var || echo no-var; ls -l /dev | grep -c '^crw-rw-rw-'; "
		 "ls /dev | tr '\\n' ' '; echo; "
		 "touch /newfile 2>/dev/null || echo root-ro",
		 ro, rw, ro, tmpdir_path);
	out = sh(script, &status, binds, 2);
	if (strstr(out, "no-var") == NULL)
		print_message("%s", out);
	assert_int_equal(status, 0);
	assert_non_null(strstr(out, "image\n"));
	assert_non_null(strstr(out, "wrote-rw\n"));
	assert_non_null(strstr(out, "ro-refused\n"));
	assert_non_null(strstr(out, "no-root\n"));
	assert_non_null(strstr(out, "no-home\n"));
	assert_non_null(strstr(out, "no-siblings\n"));
	assert_non_null(strstr(out, "no-var\n"));
	assert_non_null(strstr(out, "\n2\nnull random urandom zero \n")); /* null, zero rw */
	assert_non_null(strstr(out, "root-ro\n"));
	free(out);
	/* What the jail wrote through its writable bind is on the host, owned by the jail uid. */
	{
		struct stat st;

		assert_int_equal(stat(rw, &st), 0);
		assert_int_equal(st.st_uid, JAIL_UID);
	}
}

/* A run directory on /dev/shm (a tmpfs every host has) is bound onto the jail's own /dev. */
static void a_bind_under_dev_shm_lands_on_the_jails_dev(void **state)
{
	char dir[] = "/dev/shm/emberd-jail-test.XXXXXX", file[64], script[256];
	struct jail_bind bind = { .path = dir, .writable = true };
	int status;
	char *out;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chown(dir, JAIL_UID, JAIL_GID), 0);
	snprintf(file, sizeof(file), "%s/written", dir);
	snprintf(script, sizeof(script), "echo hi > %s && ls /dev/shm | wc -l && test -c /dev/null "
		 "&& echo dev-ok", file);
	out = sh(script, &status, &bind, 1);
	assert_int_equal(status, 0);
	assert_non_null(strstr(out, "1\ndev-ok\n")); /* only the bound directory */
	free(out);
	assert_int_equal(unlink(file), 0);
	assert_int_equal(rmdir(dir), 0);
}

static void set_up_failure_is_reported_in_the_log(void **state)
{
	char *const argv[] = { "/usr/bin/does-not-exist-emberd", NULL };
	char *out = NULL;

	(void)state;
	assert_int_equal(run_jailed(NULL, 0, argv, &out), 125);
	assert_non_null(strstr(out, "emberd jail: execve `/usr/bin/does-not-exist-emberd`"));
	free(out);
}

static void jail_refuses_root_and_odd_binds(void **state)
{
	char root[256], fifo[256];
	struct jail_bind bind = { .path = fifo };
	struct jail_config jail = { .uid = 0, .gid = 0, .root = root, .cgroup_fd = -1 };
	char *const argv[] = { "/bin/true", NULL };
	struct ember_error *err = NULL;
	int pidfd;
	pid_t pid;

	(void)state;
	snprintf(root, sizeof(root), "%s/jail-root", tmpdir_path);
	snprintf(fifo, sizeof(fifo), "%s/fifo", tmpdir_path);
	mkdir(root, 0755);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(jail_spawn(&jail, argv, 2, &pid, &pidfd, &err), -1);
	assert_non_null(strstr(err->message, "never runs as root"));
	ember_error_free(&err);
	jail.uid = JAIL_UID;
	jail.gid = JAIL_GID;
	jail.binds = &bind;
	jail.nbinds = 1;
	assert_int_equal(jail_spawn(&jail, argv, 2, &pid, &pidfd, &err), -1);
	assert_non_null(strstr(err->message, "neither a file nor a directory"));
	ember_error_free(&err);
	bind.path = "/dev/pts";
	assert_int_equal(jail_spawn(&jail, argv, 2, &pid, &pidfd, &err), -1);
	assert_non_null(strstr(err->message, "is a system path"));
	ember_error_free(&err);
	bind.path = "/proc/self";
	assert_int_equal(jail_spawn(&jail, argv, 2, &pid, &pidfd, &err), -1);
	assert_non_null(strstr(err->message, "is a system path"));
	ember_error_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(jailed_process_is_unprivileged_and_alone),
		cmocka_unit_test(jailed_process_has_no_network_but_loopback),
		cmocka_unit_test(jailed_process_sees_only_its_binds),
		cmocka_unit_test(a_bind_under_dev_shm_lands_on_the_jails_dev),
		cmocka_unit_test(set_up_failure_is_reported_in_the_log),
		cmocka_unit_test(jail_refuses_root_and_odd_binds),
	};
	char why[256];

	if (!jail_supported(why, sizeof(why))) {
		fprintf(stderr, "test_vmm_jail: this host cannot run jails (%s); the daemon "
			"refuses to start VMMs unjailed, so this is a failure\n", why);
		return 1;
	}
	return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
