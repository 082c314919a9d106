/* ps.c - /proc process table. */
#include "guest/ps.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest/limits.h"
#include "util/cleanup.h"

static bool parse_int(const char *s, size_t len, int64_t max, int64_t *out)
{
	int64_t v = 0;
	size_t i;

	if (len == 0 || len > 18) /* 18 digits cannot overflow int64_t */
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

int guest_ps_parse_stat(const char *text, size_t len, struct proto_process *proc,
			struct ember_error **err)
{
	const char *open = memchr(text, '(', len);
	const char *close = NULL, *p, *end = text + len;
	const char *field;
	int64_t pid, ppid;
	size_t i, comm_len;

	/* comm is whatever lies between the first '(' and the last ')': it may contain both. */
	for (p = text; p < end; p++) {
		if (*p == ')')
			close = p;
	}
	if (open == NULL || close == NULL || close < open || open == text || open[-1] != ' ')
		return ember_error_set(err, EMBER_E_INVALID, 0, "stat: no `(comm)`");
	if (!parse_int(text, (size_t)(open - 1 - text), INT32_MAX, &pid) || pid < 1)
		return ember_error_set(err, EMBER_E_INVALID, 0, "stat: bad pid");
	comm_len = (size_t)(close - open - 1);
	if (comm_len >= sizeof(proc->comm))
		comm_len = sizeof(proc->comm) - 1;
	/* After ") ": state, blank, ppid, blank ... */
	p = close + 1;
	if (end - p < 4 || p[0] != ' ' || p[2] != ' ')
		return ember_error_set(err, EMBER_E_INVALID, 0, "stat: no state");
	field = p + 3;
	for (i = 0; field + i < end && field[i] != ' '; i++)
		;
	if (!parse_int(field, i, INT32_MAX, &ppid))
		return ember_error_set(err, EMBER_E_INVALID, 0, "stat: bad ppid");
	proc->pid = (int32_t)pid;
	proc->ppid = (int32_t)ppid;
	proc->state = p[1];
	memcpy(proc->comm, open + 1, comm_len);
	proc->comm[comm_len] = '\0';
	/* The wire carries comm as a JSON string: keep it printable ASCII. */
	for (i = 0; i < comm_len; i++) {
		unsigned char c = (unsigned char)proc->comm[i];

		if (c < 0x20 || c > 0x7e)
			proc->comm[i] = '?';
	}
	if (proc->state < 'A' || proc->state > 'z')
		proc->state = '?';
	return 0;
}

int guest_ps_parse_status_uid(const char *text, size_t len, uint32_t *uid,
			      struct ember_error **err)
{
	size_t pos = 0;

	while (pos < len) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t line_len = nl != NULL ? (size_t)(nl - line) : len - pos;

		if (line_len > 4 && memcmp(line, "Uid:", 4) == 0) {
			size_t i = 4, start;
			int64_t v;

			while (i < line_len && (line[i] == '\t' || line[i] == ' '))
				i++;
			start = i;
			while (i < line_len && line[i] >= '0' && line[i] <= '9')
				i++;
			if (!parse_int(line + start, i - start, UINT32_MAX, &v))
				break;
			*uid = (uint32_t)v;
			return 0;
		}
		pos += line_len + 1;
	}
	return ember_error_set(err, EMBER_E_INVALID, 0, "status: no Uid line");
}

/* Reads a small /proc file; -1 (without error) when the process is gone. */
static ssize_t read_small(int dirfd, const char *name, char *buf, size_t cap)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	size_t used = 0;

	if (fd < 0)
		return -1;
	while (used < cap - 1) {
		ssize_t n = read(fd, buf + used, cap - 1 - used);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	buf[used] = '\0';
	return (ssize_t)used;
}

static int cmp_pid(const void *a, const void *b)
{
	const struct proto_process *pa = a, *pb = b;

	return (pa->pid > pb->pid) - (pa->pid < pb->pid);
}

int guest_ps_list(const char *proc_dir, struct proto_process *out, size_t max, size_t *count,
		  struct ember_error **err)
{
	DIR *dir = opendir(proc_dir);
	struct dirent *de;
	char buf[GUEST_PROC_FILE_MAX];
	size_t n = 0;

	if (dir == NULL)
		return ember_error_sys(err, "open `%s`", proc_dir);
	while (n < max && (de = readdir(dir)) != NULL) {
		struct proto_process proc = { 0 };
		_cleanup_close_ int pfd = -1;
		int64_t pid;
		ssize_t len;

		if (!parse_int(de->d_name, strlen(de->d_name), INT32_MAX, &pid))
			continue;
		pfd = openat(dirfd(dir), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd < 0)
			continue;
		len = read_small(pfd, "stat", buf, sizeof(buf));
		if (len < 0 || guest_ps_parse_stat(buf, (size_t)len, &proc, NULL) < 0)
			continue;
		len = read_small(pfd, "status", buf, sizeof(buf));
		if (len < 0 || guest_ps_parse_status_uid(buf, (size_t)len, &proc.uid, NULL) < 0)
			continue;
		out[n++] = proc;
	}
	closedir(dir);
	qsort(out, n, sizeof(*out), cmp_pid);
	*count = n;
	return 0;
}
