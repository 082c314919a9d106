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

void guest_cgroup_sweep(const char *root)
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
		rmdir(path); /* EBUSY while populated: tried again after the next reap */
	}
	closedir(dir);
}
