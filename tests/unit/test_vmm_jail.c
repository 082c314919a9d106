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
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fdio.h"
#include "vmm/idmap.h"
#include "vmm/jail.h"

#define JAIL_UID 61234
#define JAIL_GID 61235

#define OWNER_UID 1234   /* a mounted directory's owner on the host */
#define OWNER_GID 1235
#define NS_ID 1000       /* the id a jail with a user namespace runs as inside it */

/* Runs argv in jail (root, uid, gid and cgroup filled in here); returns its exit status and
 * its output. */
static int run_in(struct jail_config *jail, char *const argv[], char **output)
{
	char root[256], log[256];
	struct ember_error *err = NULL;
	int log_fd, pidfd, status;
	size_t len;
	pid_t pid;

	snprintf(root, sizeof(root), "%s/jail-root", tmpdir_path);
	snprintf(log, sizeof(log), "%s/out.log", tmpdir_path);
	mkdir(root, 0755);
	unlink(log);
	jail->uid = JAIL_UID;
	jail->gid = JAIL_GID;
	jail->root = root;
	jail->cgroup_fd = -1;
	log_fd = open(log, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(log_fd >= 0);
	if (jail_spawn(jail, argv, log_fd, &pid, &pidfd, &err) < 0)
		fail_msg("jail_spawn: %s", err->message);
	close(log_fd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(pidfd);
	assert_int_equal(file_read_all(log, 1 << 20, output, &len, &err), 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int run_jailed(const struct jail_bind *binds, size_t nbinds, char *const argv[],
		      char **output)
{
	struct jail_config jail = { .binds = binds, .nbinds = nbinds };

	return run_in(&jail, argv, output);
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

static void jailed_process_in_its_user_namespace_is_the_namespace_id(void **state)
{
	char dir[256], script[1024], file[300];
	struct jail_bind bind = { .path = dir, .writable = true };
	struct jail_config jail = { .binds = &bind, .nbinds = 1, .userns_id = NS_ID, .kvm = true };
	char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct stat st;
	char *out = NULL;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/ns-run", tmpdir_path);
	snprintf(file, sizeof(file), "%s/written", dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(chown(dir, JAIL_UID, JAIL_GID), 0);
	snprintf(script, sizeof(script),
		 "grep -E '^(Uid|Gid|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Groups):' "
		 "/proc/self/status; cat /proc/self/uid_map /proc/self/gid_map; "
		 "echo hi > %s && echo wrote; head -c 1 /dev/urandom >/dev/null && echo dev-ok; "
		 "mount -t tmpfs none /tmp 2>/dev/null || echo no-mount; "
		 "stat -c 'kvm %%u %%g %%A' /dev/kvm; (: </dev/kvm) 2>&1 | grep -c denied; true",
		 file);
	assert_int_equal(run_in(&jail, argv, &out), 0);
	if (strstr(out, "Uid:\t1000\t1000\t1000\t1000") == NULL)
		print_message("%s", out);
	assert_non_null(strstr(out, "Uid:\t1000\t1000\t1000\t1000"));
	assert_non_null(strstr(out, "Gid:\t1000\t1000\t1000\t1000"));
	assert_true(strstr(out, "Groups:\t\n") != NULL || strstr(out, "Groups:\t \n") != NULL);
	assert_non_null(strstr(out, "CapPrm:\t0000000000000000"));
	assert_non_null(strstr(out, "CapEff:\t0000000000000000"));
	assert_non_null(strstr(out, "CapBnd:\t0000000000000000"));
	assert_non_null(strstr(out, "CapAmb:\t0000000000000000"));
	assert_non_null(strstr(out, "NoNewPrivs:\t1"));
	/* One id each way: 1000 inside is the jail's uid and gid outside. */
	assert_non_null(strstr(out, "1000      61234          1\n"));
	assert_non_null(strstr(out, "1000      61235          1\n"));
	assert_non_null(strstr(out, "wrote\n"));
	assert_non_null(strstr(out, "dev-ok\n"));
	assert_non_null(strstr(out, "no-mount\n"));
	/* /dev/kvm, made before the namespace, is the namespace id's to open (on a host without
	 * KVM the open fails for lack of the device, not of permission). */
	assert_non_null(strstr(out, "kvm 1000 1000 crw-------\n0\n"));
	free(out);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_uid, JAIL_UID);
	assert_int_equal(st.st_gid, JAIL_GID);
}

/* A host directory of OWNER_UID's with an owner-only file and a file of root's. */
static int owner_tree(const char *dir, bool rw)
{
	struct idmap map = { OWNER_UID, JAIL_UID, OWNER_GID, JAIL_GID };
	char path[512];
	int dir_fd, userns, tree;

	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(chown(dir, OWNER_UID, OWNER_GID), 0);
	snprintf(path, sizeof(path), "%s/secret", dir);
	assert_int_equal(file_write_atomic(path, "owner-only", 10, 0600, false, NULL), 0);
	assert_int_equal(chown(path, OWNER_UID, OWNER_GID), 0);
	snprintf(path, sizeof(path), "%s/roots", dir);
	assert_int_equal(file_write_atomic(path, "root's", 6, 0644, false, NULL), 0);
	dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(dir_fd >= 0);
	userns = idmap_userns_fd(&map, NULL);
	assert_true(userns >= 0);
	tree = idmap_tree(dir_fd, userns, rw, NULL);
	assert_true(tree >= 0);
	close(userns);
	close(dir_fd);
	return tree;
}

/* The whole chain a jailed QEMU with a mount gets: the owner's files are the namespace id's,
 * what it creates is the owner's on the host, and a read-only tree takes nothing. */
static void jail_tree_is_the_namespace_ids_and_writes_as_the_owner(void **state)
{
	char rw[256], ro[256], script[2048], path[300];
	struct jail_tree trees[2];
	struct jail_config jail = { .trees = trees, .ntrees = 2, .userns_id = NS_ID };
	char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct stat st;
	char *out = NULL;

	(void)state;
	snprintf(rw, sizeof(rw), "%s/share-rw", tmpdir_path);
	snprintf(ro, sizeof(ro), "%s/share-ro", tmpdir_path);
	trees[0] = (struct jail_tree){ .fd = owner_tree(rw, true), .path = rw };
	trees[1] = (struct jail_tree){ .fd = owner_tree(ro, false), .path = ro };
	snprintf(script, sizeof(script),
		 "stat -c 'owner %%u %%g' %s/secret; cat %s/secret; echo; "
		 "stat -c 'other %%u %%g' %s/roots; echo new > %s/created && echo wrote; "
		 "stat -c 'created %%u %%g' %s/created; cat %s/secret; echo; "
		 "echo x > %s/created 2>/dev/null || echo ro-refused; ls %s | tr '\\n' ' '; echo; "
		 "cp /bin/true %s/t && %s/t || echo noexec",
		 rw, rw, rw, rw, rw, ro, ro, tmpdir_path, rw, rw);
	assert_int_equal(run_in(&jail, argv, &out), 0);
	close(trees[0].fd);
	close(trees[1].fd);
	if (strstr(out, "owner 1000 1000\n") == NULL)
		print_message("%s", out);
	assert_non_null(strstr(out, "owner 1000 1000\nowner-only\n"));
	assert_non_null(strstr(out, "other 65534 65534\n"));
	assert_non_null(strstr(out, "wrote\ncreated 1000 1000\nowner-only\n"));
	assert_non_null(strstr(out, "ro-refused\n"));
	assert_non_null(strstr(out, "\nshare-ro share-rw \n")); /* and nothing else of the host */
	assert_non_null(strstr(out, "noexec\n"));
	free(out);
	snprintf(path, sizeof(path), "%s/created", rw);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, OWNER_UID);
	assert_int_equal(st.st_gid, OWNER_GID);
	snprintf(path, sizeof(path), "%s/created", ro);
	assert_int_equal(access(path, F_OK), -1);
}

static void jail_refuses_a_tree_over_or_under_what_it_holds(void **state)
{
	char dir[256], sub[300], parent[256];
	struct jail_bind bind = { .path = sub, .writable = true };
	struct jail_tree tree = { .fd = -1 };
	struct jail_config jail = { .binds = &bind, .nbinds = 1, .trees = &tree, .ntrees = 1 };
	char *const argv[] = { "/bin/true", NULL };
	const char *bad[] = { parent, sub, "/usr/share", "/bin", "/dev/shm", "/proc", "/",
			      "/a/../b", "/./usr/x", "/srv/", "//srv", "srv" };
	struct ember_error *err = NULL;
	char root[256];
	int pidfd;
	pid_t pid;
	size_t i;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/overlap", tmpdir_path);
	snprintf(sub, sizeof(sub), "%s/run", dir);
	snprintf(parent, sizeof(parent), "%s", dir);
	snprintf(root, sizeof(root), "%s/jail-root", tmpdir_path);
	mkdir(root, 0755);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(mkdir(sub, 0755), 0);
	jail.uid = JAIL_UID;
	jail.gid = JAIL_GID;
	jail.root = root;
	jail.cgroup_fd = -1;
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		tree.path = bad[i];
		assert_int_equal(jail_spawn(&jail, argv, 2, &pid, &pidfd, &err), -1);
		assert_int_equal(err->kind, EMBER_E_INVALID);
		ember_error_free(&err);
	}
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
		cmocka_unit_test(jailed_process_in_its_user_namespace_is_the_namespace_id),
		cmocka_unit_test(jail_tree_is_the_namespace_ids_and_writes_as_the_owner),
		cmocka_unit_test(jail_refuses_a_tree_over_or_under_what_it_holds),
	};
	char why[256];

	if (!jail_supported(why, sizeof(why))) {
		fprintf(stderr, "test_vmm_jail: this host cannot run jails (%s); the daemon "
			"refuses to start VMMs unjailed, so this is a failure\n", why);
		return 1;
	}
	return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
