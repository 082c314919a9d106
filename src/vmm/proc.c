/* proc.c - /proc readers. */
#include "vmm/proc.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"

#define CMDLINE_MAX (64 * 1024)

int proc_start_ticks(pid_t pid, uint64_t *ticks)
{
	char path[64], buf[2048], *p;
	_cleanup_close_ int fd = -1;
	ssize_t n;
	int field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* comm may contain spaces and parentheses: fields restart after the last ')'. */
	p = strrchr(buf, ')');
	if (p == NULL || p[1] != ' ')
		return -1;
	p += 2;
	if (*p == 'Z' || *p == 'X')
		return -1;
	for (field = 3; field < 22 && p != NULL; field++) {
		p = strchr(p, ' ');
		if (p != NULL)
			p++;
	}
	if (p == NULL)
		return -1;
	*ticks = strtoull(p, NULL, 10);
	return *ticks > 0 ? 0 : -1;
}

bool proc_cmdline_contains(pid_t pid, const char *needle)
{
	char path[64];
	_cleanup_free_ char *buf = malloc(CMDLINE_MAX + 1);
	_cleanup_close_ int fd = -1;
	size_t used = 0, i;
	ssize_t n;

	if (buf == NULL)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	while (used < CMDLINE_MAX && (n = read(fd, buf + used, CMDLINE_MAX - used)) > 0)
		used += (size_t)n;
	for (i = 0; i < used; i++) {
		if (buf[i] == '\0')
			buf[i] = ' ';
	}
	buf[used] = '\0';
	return strstr(buf, needle) != NULL;
}

int proc_uids(pid_t pid, uid_t uids[4])
{
	char path[64], line[256];
	unsigned long r, e, s, f;
	FILE *fp;
	int ret = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fp = fopen(path, "re");
	if (fp == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (sscanf(line, "Uid: %lu %lu %lu %lu", &r, &e, &s, &f) == 4) {
			uids[0] = (uid_t)r;
			uids[1] = (uid_t)e;
			uids[2] = (uid_t)s;
			uids[3] = (uid_t)f;
			ret = 0;
			break;
		}
	}
	fclose(fp);
	return ret;
}

bool proc_exe_is(pid_t pid, const struct stat *exe)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	return stat(path, &st) == 0 && st.st_dev == exe->st_dev && st.st_ino == exe->st_ino;
}

int proc_for_each(void (*fn)(pid_t pid, void *arg), void *arg)
{
	DIR *dir = opendir("/proc");
	struct dirent *de;
	pid_t self = getpid();

	if (dir == NULL)
		return -1;
	while ((de = readdir(dir)) != NULL) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end == '\0' && pid > 1 && pid != self)
			fn((pid_t)pid, arg);
	}
	closedir(dir);
	return 0;
}

struct mentioning {
	const char *needle;
	void (*fn)(pid_t pid, void *arg);
	void *arg;
};

static void call_if_mentioning(pid_t pid, void *arg)
{
	struct mentioning *m = arg;

	if (proc_cmdline_contains(pid, m->needle))
		m->fn(pid, m->arg);
}

int proc_for_each_mentioning(const char *needle, void (*fn)(pid_t pid, void *arg), void *arg)
{
	struct mentioning m = { needle, fn, arg };

	return proc_for_each(call_if_mentioning, &m);
}
