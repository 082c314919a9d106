/* fspath.c - envd's path expansion and cleaning (fspath.h). */
#include "e2b/fspath.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int e2b_path_resolve(const char *path, char *out, struct ember_error **err)
{
	/* The joined path, then cleaned in place component by component. */
	size_t cap = sizeof(E2B_HOME) + strlen(path) + 2, n = 0;
	char *joined = malloc(cap), *save = NULL, *part;
	int ret = -1;

	if (joined == NULL)
		return ember_error_oom(err);
	if (path[0] == '/')
		snprintf(joined, cap, "%s", path);
	else if (path[0] == '~' && (path[1] == '\0' || path[1] == '/'))
		snprintf(joined, cap, "%s%s", E2B_HOME, path + 1);
	else
		snprintf(joined, cap, "%s/%s", E2B_HOME, path);
	out[0] = '\0';
	for (part = strtok_r(joined, "/", &save); part != NULL; part = strtok_r(NULL, "/", &save)) {
		size_t len = strlen(part);

		if (strcmp(part, ".") == 0)
			continue;
		if (strcmp(part, "..") == 0) {
			char *slash = strrchr(out, '/');

			n = slash != NULL ? (size_t)(slash - out) : 0;
			out[n] = '\0';
			continue;
		}
		if (n + 1 + len > PROTO_PATH_MAX) {
			ember_error_set(err, EMBER_E_INVALID, 0, "path is longer than %u bytes",
					PROTO_PATH_MAX);
			goto out;
		}
		out[n++] = '/';
		memcpy(out + n, part, len + 1);
		n += len;
	}
	if (n == 0)
		snprintf(out, PROTO_PATH_MAX + 1, "/");
	ret = 0;
out:
	free(joined);
	return ret;
}

const char *e2b_path_base(const char *resolved)
{
	const char *slash = strrchr(resolved, '/');

	return slash == NULL || slash[1] == '\0' ? resolved : slash + 1;
}

void e2b_path_dir(const char *resolved, char *out)
{
	const char *slash = strrchr(resolved, '/');
	size_t n = slash != NULL ? (size_t)(slash - resolved) : 0;

	if (n == 0) {
		snprintf(out, PROTO_PATH_MAX + 1, "/");
		return;
	}
	memcpy(out, resolved, n);
	out[n] = '\0';
}
