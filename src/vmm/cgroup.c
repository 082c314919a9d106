/* cgroup.c - per-VMM cgroup v2 directories and their limits. */
#include "vmm/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fdio.h"
#include "util/log.h"
#include "util/sync.h"
#include "util/timeutil.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define CGROUP_DIR "emberd"
#define CPU_PERIOD_US 100000
/* Pause between rmdir attempts on a cgroup that is still busy. */
#define RMDIR_RETRY_MS 10

static int write_file(const char *dir, const char *name, const char *value,
		      struct ember_error **err)
{
	char path[PATH_MAX];
	_cleanup_close_ int fd = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	/* O_CREAT|O_TRUNC is what `echo x > file` does: harmless on cgroupfs (the files exist),
	 * and it lets a plain directory stand in for cgroupfs in tests. */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return ember_error_sys(err, "open `%s`", path);
	if (write(fd, value, strlen(value)) != (ssize_t)strlen(value))
		return ember_error_sys(err, "write `%s` to `%s`", value, path);
	return 0;
}

static bool has_controllers(const char *path)
{
	_cleanup_free_ char *text = NULL;

	if (file_read_all(path, 4096, &text, NULL, NULL) < 0)
		return false;
	return strstr(text, "memory") != NULL && strstr(text, "cpu") != NULL &&
	       strstr(text, "pids") != NULL;
}

bool cgroup_probe(const char *root, char *status, size_t status_size)
{
	char path[PATH_MAX], dir[PATH_MAX];
	struct ember_error *err = NULL;

	snprintf(path, sizeof(path), "%s/cgroup.controllers", root);
	if (access(path, R_OK) != 0) {
		snprintf(status, status_size, "unavailable: %s is not a cgroup v2 mount (cgroup v1 "
			 "or hybrid host); VMMs run without host-side limits", root);
		return false;
	}
	if (!has_controllers(path)) {
		snprintf(status, status_size, "unavailable: %s lacks the memory, cpu or pids "
			 "controller (bound to cgroup v1?)", root);
		return false;
	}
	snprintf(dir, sizeof(dir), "%s/%s", root, CGROUP_DIR);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		snprintf(status, status_size, "unavailable: cannot create %s: %s", dir,
			 strerror(errno));
		return false;
	}
	/* Enable the controllers for our subtree; already-enabled is fine (the write of an
	 * enabled controller succeeds). */
	if (write_file(root, "cgroup.subtree_control", "+memory +cpu +pids", &err) < 0 ||
	    write_file(dir, "cgroup.subtree_control", "+memory +cpu +pids", &err) < 0) {
		snprintf(status, status_size, "unavailable: %s", err->message);
		ember_error_free(&err);
		return false;
	}
	snprintf(path, sizeof(path), "%d", CGROUP_VMM_PARENT_WEIGHT);
	if (write_file(dir, "cpu.weight", path, &err) < 0) {
		snprintf(status, status_size, "unavailable: %s", err->message);
		ember_error_free(&err);
		return false;
	}
	snprintf(status, status_size, "cgroup v2: each VMM in %s/<sandbox> with memory.max, "
		 "cpu.max and pids.max, all of them at cpu.weight %d", dir, CGROUP_VMM_PARENT_WEIGHT);
	return true;
}

int cgroup_create(const char *root, const char *id, const struct cgroup_limits *limits,
		  int *dir_fd, struct ember_error **err)
{
	char dir[PATH_MAX], value[64];

	snprintf(dir, sizeof(dir), "%s/%s/%s", root, CGROUP_DIR, id);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return ember_error_sys(err, "create cgroup `%s`", dir);
	snprintf(value, sizeof(value), "%llu", (unsigned long long)limits->memory_bytes);
	if (write_file(dir, "memory.max", value, err) < 0)
		goto fail;
	/* The guest's RAM must not be swapped out behind its back; the host's swap policy for
	 * the rest of the VMM is the host's business, so only memory.max is set. */
	snprintf(value, sizeof(value), "%u %u", limits->vcpus * CPU_PERIOD_US, CPU_PERIOD_US);
	if (write_file(dir, "cpu.max", value, err) < 0)
		goto fail;
	snprintf(value, sizeof(value), "%u", limits->pids);
	if (write_file(dir, "pids.max", value, err) < 0)
		goto fail;
	if (limits->idle)
		cgroup_set_idle(root, id, true);
	*dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*dir_fd < 0) {
		ember_error_sys(err, "open `%s`", dir);
		goto fail;
	}
	return 0;
fail:
	cgroup_remove(root, id);
	return ember_error_wrap(err, "host cgroup for %s", id);
}

void cgroup_set_idle(const char *root, const char *id, bool idle)
{
	char dir[PATH_MAX];
	struct ember_error *err = NULL;

	snprintf(dir, sizeof(dir), "%s/%s/%s", root, CGROUP_DIR, id);
	if (write_file(dir, "cpu.idle", idle ? "1" : "0", &err) < 0)
		ember_error_free(&err); /* no cpu.idle before Linux 5.15: the weight still holds */
}

void cgroup_set_weight(const char *root, const char *id, unsigned weight)
{
	char dir[PATH_MAX], text[16];
	struct ember_error *err = NULL;

	snprintf(dir, sizeof(dir), "%s/%s/%s", root, CGROUP_DIR, id);
	snprintf(text, sizeof(text), "%u", weight);
	if (write_file(dir, "cpu.weight", text, &err) < 0) {
		log_event(LOG_WARN, id, "vmm.priority_failed", -1, "%s", err->message);
		ember_error_free(&err);
	}
}

bool cgroup_is_cgroupfs(int dir_fd)
{
	struct statfs sf;

	return fstatfs(dir_fd, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

int cgroup_join(int dir_fd, pid_t pid, struct ember_error **err)
{
	_cleanup_close_ int fd = openat(dir_fd, "cgroup.procs", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	char text[32];
	int n = snprintf(text, sizeof(text), "%d", (int)pid);

	if (fd < 0 || write(fd, text, (size_t)n) != n)
		return ember_error_sys(err, "move VMM %d into its cgroup", (int)pid);
	return 0;
}

void cgroup_remove(const char *root, const char *id)
{
	char dir[PATH_MAX];
	struct statfs sf;

	snprintf(dir, sizeof(dir), "%s/%s/%s", root, CGROUP_DIR, id);
	if (statfs(dir, &sf) == 0 && sf.f_type != CGROUP2_SUPER_MAGIC) {
		/* Not a real cgroupfs (a test's stand-in directory): its "control files" are plain
		 * files that rmdir would refuse. */
		dir_remove_tree(dir, NULL);
		return;
	}
	/* A killed VMM leaves its cgroup populated for a moment after we reaped it. */
	cgroup_rmdir_wait(dir, 500);
}

void cgroup_rmdir_wait(const char *dir, int64_t timeout_ms)
{
	int64_t deadline = time_mono_ms() + timeout_ms;

	/* EBUSY lasts until the kernel has finished with the cgroup's last (already reaped)
	 * process; nothing signals that moment to the remover, so it polls, briefly. */
	while (rmdir(dir) < 0 && errno == EBUSY && time_mono_ms() < deadline)
		sleep_ms(RMDIR_RETRY_MS);
}

void cgroup_for_each_member(const char *dir, void (*fn)(pid_t pid, void *arg), void *arg)
{
	char path[PATH_MAX];
	FILE *f;
	int pid;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "re");
	if (f == NULL)
		return;
	while (fscanf(f, "%d", &pid) == 1) {
		if (pid > 1 && pid != getpid())
			fn((pid_t)pid, arg);
	}
	fclose(f);
}
