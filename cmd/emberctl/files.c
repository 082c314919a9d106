/* files.c - emberctl cp and ls ID PATH: files in and out of a sandbox (docs/api.md "Files").
 * Streams both ways (a file of any size in bounded memory); progress on stderr for files over
 * 1 MiB, only when stderr is a terminal. */
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "output.h"
#include "util/cleanup.h"
#include "util/jsonutil.h"

#define PROGRESS_MIN_BYTES (1024u * 1024u)

/* "sb_...:PATH" names a file in a sandbox; anything else is local ("-": stdin/stdout). */
static bool remote_spec(const char *arg, char *id, size_t id_size, const char **path)
{
	const char *colon = strchr(arg, ':');

	if (strncmp(arg, "sb_", 3) != 0 || colon == NULL || (size_t)(colon - arg) >= id_size)
		return false;
	memcpy(id, arg, (size_t)(colon - arg));
	id[colon - arg] = '\0';
	*path = colon + 1;
	return true;
}

struct progress {
	bool shown;
	uint64_t last_mib;
};

static void show_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct progress *p = ctx;
	uint64_t mib = done >> 20;

	if (total < PROGRESS_MIN_BYTES || (p->shown && mib == p->last_mib && done != total))
		return;
	fprintf(stderr, "\r%llu / %llu MiB (%u%%)", (unsigned long long)mib,
		(unsigned long long)(total >> 20), (unsigned)(done * 100 / total));
	p->shown = true;
	p->last_mib = mib;
}

static http_progress_fn progress_fn(void)
{
	return isatty(STDERR_FILENO) ? show_progress : NULL;
}

static void end_progress(const struct progress *p)
{
	if (p->shown)
		fputc('\n', stderr);
}

/* "/sandboxes/ID/ROUTE?path=ESCAPED" */
static char *route_path(struct ctl *c, const char *id, const char *route, const char *path)
{
	_cleanup_free_ char *escaped = http_client_escape(c->http, path);
	size_t len;
	char *out;

	if (escaped == NULL)
		return NULL;
	len = strlen(id) + strlen(route) + strlen(escaped) + 32;
	out = malloc(len);
	if (out != NULL)
		snprintf(out, len, "/sandboxes/%s/%s?path=%s", id, route, escaped);
	return out;
}

/* A failed transfer's answer, as ctl_call reports one. */
static int report(struct ctl *c, const char *method, long status, json_t *reply)
{
	json_t *e = json_object_get(reply, "error");

	if (c->json && reply != NULL)
		output_json(reply);
	fprintf(stderr, "emberctl: %s: HTTP %ld %s: %s\n", method, status,
		json_string_value(json_object_get(e, "code")) ?: "",
		json_string_value(json_object_get(e, "message")) ?: "(no error body)");
	return 1;
}

static int upload(struct ctl *c, const char *local, const char *id, const char *path)
{
	_cleanup_free_ char *route = route_path(c, id, "files", path);
	_cleanup_json_ json_t *reply = NULL;
	struct ember_error *err = NULL;
	struct progress prog = { 0 };
	int64_t size = -1;
	struct stat st;
	long status = 0;
	int fd, ret;

	if (route == NULL)
		return ctl_fail("%s", "out of memory");
	fd = strcmp(local, "-") == 0 ? STDIN_FILENO : open(local, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ctl_fail("cp: %s", strerror(errno));
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		size = st.st_size;
	ret = http_client_upload(c->http, "PUT", route, fd, size, progress_fn(), &prog, &status,
				 &reply, &err);
	end_progress(&prog);
	if (fd != STDIN_FILENO)
		close(fd);
	if (ret < 0) {
		fprintf(stderr, "emberctl: %s (is emberd running on %s?)\n", err->message, c->addr);
		ember_error_free(&err);
		return 1;
	}
	if (status != 201)
		return report(c, "PUT", status, reply);
	if (c->json)
		output_json(reply);
	return 0;
}

static int download(struct ctl *c, const char *id, const char *path, const char *local)
{
	_cleanup_free_ char *route = route_path(c, id, "files", path);
	_cleanup_json_ json_t *reply = NULL;
	struct ember_error *err = NULL;
	struct progress prog = { 0 };
	bool to_stdout = strcmp(local, "-") == 0;
	uint64_t written = 0;
	long status = 0;
	int fd, ret;

	if (route == NULL)
		return ctl_fail("%s", "out of memory");
	fd = to_stdout ? STDOUT_FILENO
		       : open(local, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return ctl_fail("cp: %s", strerror(errno));
	ret = http_client_download(c->http, route, fd, progress_fn(), &prog, &status, &written,
				   &reply, &err);
	end_progress(&prog);
	if (!to_stdout)
		close(fd);
	if (ret == 0 && status != 200)
		ret = report(c, "GET", status, reply);
	else if (ret < 0) {
		fprintf(stderr, "emberctl: %s\n", err->message);
		ember_error_free(&err);
		ret = 1;
	}
	if (ret != 0 && !to_stdout)
		unlink(local); /* a partial or failed download leaves no file */
	return ret;
}

int cmd_cp(struct ctl *c, int argc, char **argv)
{
	char src_id[64], dst_id[64];
	const char *src_path, *dst_path;
	bool src_remote, dst_remote;

	if (argc != 2)
		return ctl_fail("%s", "usage: emberctl cp LOCAL ID:PATH | emberctl cp ID:PATH LOCAL");
	src_remote = remote_spec(argv[0], src_id, sizeof(src_id), &src_path);
	dst_remote = remote_spec(argv[1], dst_id, sizeof(dst_id), &dst_path);
	if (dst_remote && !src_remote)
		return upload(c, argv[0], dst_id, dst_path);
	if (src_remote && !dst_remote)
		return download(c, src_id, src_path, argv[1]);
	return ctl_fail("%s", "cp: exactly one of the two must be ID:PATH (ID: sb_...)");
}

static void print_entry(json_t *e)
{
	printf("%s %-7s %12lld  %s  %s\n", json_string_value(json_object_get(e, "mode")) ?: "",
	       json_string_value(json_object_get(e, "type")) ?: "",
	       (long long)json_integer_value(json_object_get(e, "size")),
	       json_string_value(json_object_get(e, "mtime")) ?: "",
	       json_string_value(json_object_get(e, "name")) ?: "");
}

int cmd_ls_files(struct ctl *c, const char *id, const char *path)
{
	_cleanup_free_ char *route = route_path(c, id, "fs", path);
	_cleanup_json_ json_t *reply = NULL;
	json_t *entries, *e;
	size_t i;

	if (route == NULL)
		return ctl_fail("%s", "out of memory");
	if (ctl_call(c, "GET", route, NULL, 200, &reply) < 0)
		return 1;
	if (c->json) {
		output_json(reply);
		return 0;
	}
	entries = json_object_get(reply, "entries");
	if (entries == NULL) {
		print_entry(reply);
		return 0;
	}
	json_array_foreach(entries, i, e)
		print_entry(e);
	if (json_is_true(json_object_get(reply, "truncated")))
		fprintf(stderr, "emberctl: ls: only the first %zu entries\n",
			json_array_size(entries));
	return 0;
}
