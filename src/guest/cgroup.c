/* cgroup.c - per-exec cgroups in the guest. */
#include "guest/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "guest/log.h"
#include "util/cleanup.h"

static int write_text(const char *dir, const char *file, const char *text)
{
	char path[PATH_MAX];
	_cleanup_close_ int fd = -1;
	size_t len = strlen(text);

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	return write(fd, text, len) == (ssize_t)len ? 0 : -1;
}

static void set_memory_limit(const char *root)
{
	struct sysinfo si;
	unsigned long long total, reserve;
	char value[32];

	if (sysinfo(&si) < 0)
		return;
	total = (unsigned long long)si.totalram * si.mem_unit;
	reserve = total / 8 > GUEST_CGROUP_RESERVE_MIN ? total / 8 : GUEST_CGROUP_RESERVE_MIN;
	if (reserve * 2 > total)
		return; /* too small a guest to split */
	snprintf(value, sizeof(value), "%llu", total - reserve);
	if (write_text(root, "memory.max", value) < 0)
		guest_log("set memory.max of %s: %s", root, strerror(errno));
}

bool guest_cgroup_setup(const char *root)
{
	char parent[PATH_MAX], *slash;

	snprintf(parent, sizeof(parent), "%s", root);
	slash = strrchr(parent, '/');
	if (slash == NULL)
		return false;
	*slash = '\0';
	if (mkdir(root, 0755) < 0 && errno != EEXIST) {
		guest_log("no per-exec cgroups (mkdir %s: %s): timeouts kill process groups only", root,
			  strerror(errno));
		return false;
	}
	/* pids for every exec's own pids.max; the parent must delegate it first. */
	if (write_text(parent, "cgroup.subtree_control", "+pids") < 0 ||
	    write_text(root, "cgroup.subtree_control", "+pids") < 0) {
		guest_log("no per-exec cgroups (enable pids: %s): timeouts kill process groups only",
			  strerror(errno));
		rmdir(root);
		return false;
	}
	/* memory: every exec's memory.events says whether the OOM killer hit it, and all execs
	 * together stay below the guest's RAM minus a reserve. Without that limit a program that
	 * fills RAM makes the kernel evict the page cache that everything (the agent too) keeps
	 * faulting back in: under emulation that thrash outlasts any timeout. Against the limit
	 * the execs' own cgroup is reclaimed and, when nothing is left, the OOM killer ends one
	 * of its processes within seconds. Optional: without it OOM kills are not reported. */
	if (write_text(parent, "cgroup.subtree_control", "+memory") < 0 ||
	    write_text(root, "cgroup.subtree_control", "+memory") < 0) {
		guest_log("no per-exec memory accounting (%s): OOM kills are not reported",
			  strerror(errno));
		return true;
	}
	set_memory_limit(root);
	return true;
}

int guest_cgroup_create(const char *root, const char *name, uint32_t max_pids, char *path,
			size_t path_size, int *procs_fd, struct ember_error **err)
{
	char value[32], procs[PATH_MAX];

	if ((size_t)snprintf(path, path_size, "%s/%s", root, name) >= path_size)
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "cgroup path too long");
	if (mkdir(path, 0755) < 0)
		return ember_error_sys(err, "create cgroup `%s`", path);
	snprintf(value, sizeof(value), "%u", max_pids);
	if (write_text(path, "pids.max", value) < 0) {
		ember_error_sys(err, "set pids.max of `%s`", path);
		rmdir(path);
		return -1;
	}
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
	*procs_fd = open(procs, O_WRONLY | O_CLOEXEC);
	if (*procs_fd < 0) {
		ember_error_sys(err, "open `%s`", procs);
		rmdir(path);
		return -1;
	}
	return 0;
}

int guest_cgroup_move(int procs_fd, pid_t pid, struct ember_error **err)
{
	char text[24];
	int len = snprintf(text, sizeof(text), "%d", (int)pid);

	if (write(procs_fd, text, (size_t)len) != len)
		return ember_error_sys(err, "move %d into its cgroup", (int)pid);
	return 0;
}

void guest_cgroup_kill(const char *path)
{
	char procs[PATH_MAX];
	FILE *f;
	int pid;

	if (path[0] == '\0')
		return;
	if (write_text(path, "cgroup.kill", "1") == 0)
		return;
	/* Before Linux 5.14: signal each member; a fork racing this is caught by the next kill
	 * (the timeout path kills again when the main process is reaped). */
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
	f = fopen(procs, "re");
	if (f == NULL)
		return;
	while (fscanf(f, "%d", &pid) == 1) {
		if (pid > 1)
			kill(pid, SIGKILL);
	}
	fclose(f);
}

unsigned long guest_cgroup_oom_kills(const char *path)
{
	char events[PATH_MAX], key[32];
	unsigned long value, kills = 0;
	FILE *f;

	if (path[0] == '\0')
		return 0;
	snprintf(events, sizeof(events), "%s/memory.events", path);
	f = fopen(events, "re");
	if (f == NULL)
		return 0;
	/* "<key> <count>" lines, written by the kernel */
	while (fscanf(f, "%31s %lu", key, &value) == 2) {
		if (strcmp(key, "oom_kill") == 0)
			kills = value;
	}
	fclose(f);
	return kills;
}

void guest_cgroup_sweep(const char *root, bool (*keep)(const char *path, void *ctx), void *ctx)
{
	DIR *dir = opendir(root);
	struct dirent *de;

	if (dir == NULL)
		return;
	while ((de = readdir(dir)) != NULL) {
		char path[PATH_MAX];

		if (de->d_name[0] == '.' || de->d_type != DT_DIR)
			continue;
		snprintf(path, sizeof(path), "%s/%s", root, de->d_name);
		if (keep != NULL && keep(path, ctx))
			continue;
		rmdir(path); /* EBUSY while populated: tried again after the next reap */
	}
	closedir(dir);
}
