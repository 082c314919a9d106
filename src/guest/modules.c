/* modules.c - modules.dep parsing, ordering and loading. */
#include "guest/modules.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/module.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "guest/limits.h"
#include "util/cleanup.h"
#include "util/fdio.h"

void guest_modules_release(struct guest_modules *mods)
{
	size_t i;

	for (i = 0; i < mods->count; i++) {
		free(mods->mods[i].path);
		free(mods->mods[i].deps);
	}
	free(mods->mods);
	mods->mods = NULL;
	mods->count = 0;
}

static bool path_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.' || c == '+' || c == ',' || c == '/';
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

static bool is_compressed(const char *path, size_t len)
{
	return ends_with(path, len, ".ko.xz") || ends_with(path, len, ".ko.zst") ||
	       ends_with(path, len, ".ko.gz");
}

/* A module path stays inside the modules directory: relative, no empty/./.. components. */
static int check_path(const char *p, size_t len, size_t line, struct ember_error **err)
{
	size_t i, start = 0;

	if (len == 0 || len > GUEST_MODULE_PATH_MAX)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "modules.dep line %zu: module path of %zu bytes", line, len);
	for (i = 0; i < len; i++) {
		if (!path_char_ok(p[i]))
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "modules.dep line %zu: byte 0x%02x in a module path",
					       line, (unsigned char)p[i]);
	}
	for (i = 0; i <= len; i++) {
		if (i == len || p[i] == '/') {
			size_t n = i - start;

			if (n == 0 || (n == 1 && p[start] == '.') ||
			    (n == 2 && p[start] == '.' && p[start + 1] == '.'))
				return ember_error_set(err, EMBER_E_INVALID, 0,
						       "modules.dep line %zu: module path `%.*s` is "
						       "not a plain relative path", line, (int)len, p);
			start = i + 1;
		}
	}
	if (!ends_with(p, len, ".ko") && !is_compressed(p, len))
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "modules.dep line %zu: `%.*s` is not a .ko file", line,
				       (int)len, p);
	return 0;
}

/* Raw dependency names per module, resolved to indices once every line is known. */
struct raw_deps {
	const char **names; /* point into the text */
	size_t *lens;
	size_t count;
	size_t line;
};

static size_t find_module(const struct guest_modules *mods, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < mods->count; i++) {
		if (strlen(mods->mods[i].path) == len && memcmp(mods->mods[i].path, name, len) == 0)
			return i;
	}
	return (size_t)-1;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int parse_line(const char *p, size_t len, size_t line, struct guest_modules *mods,
		      struct raw_deps *raw, struct ember_error **err)
{
	const char *colon = memchr(p, ':', len);
	size_t name_len, i;

	if (colon == NULL)
		return ember_error_set(err, EMBER_E_INVALID, 0, "modules.dep line %zu: no `:`", line);
	name_len = (size_t)(colon - p);
	if (check_path(p, name_len, line, err) < 0)
		return -1;
	if (find_module(mods, p, name_len) != (size_t)-1)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "modules.dep line %zu: `%.*s` is listed twice", line,
				       (int)name_len, p);
	if (mods->count >= GUEST_MODULES_MAX)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "modules.dep lists more than %u modules", GUEST_MODULES_MAX);
	mods->mods[mods->count].path = strndup(p, name_len);
	if (mods->mods[mods->count].path == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	mods->count++;

	raw->line = line;
	raw->count = 0;
	i = name_len + 1;
	if (i < len && !is_blank(p[i]))
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "modules.dep line %zu: expected a blank after `:`", line);
	for (;;) {
		size_t start;

		while (i < len && is_blank(p[i]))
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && !is_blank(p[i]))
			i++;
		if (check_path(p + start, i - start, line, err) < 0)
			return -1;
		if (raw->count >= GUEST_MODULES_MAX)
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "modules.dep line %zu: too many dependencies", line);
		raw->names[raw->count] = p + start;
		raw->lens[raw->count] = i - start;
		raw->count++;
	}
	return 0;
}

static int resolve_deps(struct guest_modules *mods, size_t idx, const struct raw_deps *raw,
			struct ember_error **err)
{
	struct guest_module *m = &mods->mods[idx];
	size_t i, j;

	if (raw->count == 0)
		return 0;
	m->deps = calloc(raw->count, sizeof(*m->deps));
	if (m->deps == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	for (i = 0; i < raw->count; i++) {
		size_t dep = find_module(mods, raw->names[i], raw->lens[i]);

		if (dep == (size_t)-1)
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "modules.dep line %zu: `%s` depends on `%.*s`, which "
					       "is not listed", raw->line, m->path, (int)raw->lens[i],
					       raw->names[i]);
		for (j = 0; j < m->ndeps; j++) {
			if (m->deps[j] == dep)
				return ember_error_set(err, EMBER_E_INVALID, 0,
						       "modules.dep line %zu: dependency `%s` "
						       "repeated", raw->line, mods->mods[dep].path);
		}
		m->deps[m->ndeps++] = dep;
	}
	return 0;
}

int guest_modules_parse(const char *text, size_t len, struct guest_modules *out,
			struct ember_error **err)
{
	struct guest_modules mods = { 0 };
	/* Per-line dependency names, kept until every line is known (deps may point forward). */
	struct raw_deps *raw = NULL;
	const char **names = NULL;
	size_t *lens = NULL;
	size_t pos = 0, line = 0, i, total_deps = 0;
	int ret = -1;

	out->mods = NULL;
	out->count = 0;
	if (len > GUEST_MODULES_DEP_MAX_BYTES)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "modules.dep is %zu bytes, more than %u", len,
				       GUEST_MODULES_DEP_MAX_BYTES);
	if (memchr(text, '\0', len) != NULL)
		return ember_error_set(err, EMBER_E_INVALID, 0, "modules.dep contains a NUL byte");
	mods.mods = calloc(GUEST_MODULES_MAX, sizeof(*mods.mods));
	raw = calloc(GUEST_MODULES_MAX, sizeof(*raw));
	/* Every dependency takes at least two bytes of the file (a blank and one character). */
	names = calloc(len / 2 + 1, sizeof(*names));
	lens = calloc(len / 2 + 1, sizeof(*lens));
	if (mods.mods == NULL || raw == NULL || names == NULL || lens == NULL) {
		ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
		goto out;
	}
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t line_len = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;

		line++;
		if (line_len > GUEST_MODULES_DEP_MAX_LINE) {
			ember_error_set(err, EMBER_E_INVALID, 0,
					"modules.dep line %zu is longer than %u bytes", line,
					GUEST_MODULES_DEP_MAX_LINE);
			goto out;
		}
		if (line_len > 0) {
			struct raw_deps *r = &raw[mods.count < GUEST_MODULES_MAX ? mods.count : 0];

			r->names = names + total_deps;
			r->lens = lens + total_deps;
			if (parse_line(text + pos, line_len, line, &mods, r, err) < 0)
				goto out;
			total_deps += r->count;
		}
		pos += line_len + (nl != NULL ? 1 : 0);
	}
	for (i = 0; i < mods.count; i++) {
		if (resolve_deps(&mods, i, &raw[i], err) < 0)
			goto out;
	}
	*out = mods;
	mods.mods = NULL;
	mods.count = 0;
	ret = 0;
out:
	guest_modules_release(&mods);
	free(raw);
	free(names);
	free(lens);
	return ret;
}

enum visit { UNSEEN = 0, VISITING, DONE };

/* Depth-first: recursion depth is bounded by the module count (GUEST_MODULES_MAX). */
static int visit(const struct guest_modules *mods, size_t idx, unsigned char *state,
		 size_t *order, size_t *n, struct ember_error **err)
{
	size_t i;

	if (state[idx] == DONE)
		return 0;
	if (state[idx] == VISITING)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "modules.dep has a dependency cycle through `%s`",
				       mods->mods[idx].path);
	state[idx] = VISITING;
	for (i = 0; i < mods->mods[idx].ndeps; i++) {
		if (visit(mods, mods->mods[idx].deps[i], state, order, n, err) < 0)
			return -1;
	}
	state[idx] = DONE;
	order[(*n)++] = idx;
	return 0;
}

int guest_modules_order(const struct guest_modules *mods, size_t *order,
			struct ember_error **err)
{
	_cleanup_free_ unsigned char *state = calloc(mods->count + 1, 1);
	size_t i, n = 0;

	if (state == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	for (i = 0; i < mods->count; i++) {
		if (visit(mods, i, state, order, &n, err) < 0)
			return -1;
	}
	return 0;
}

static int load_one(const char *dir, const char *path, struct ember_error **err)
{
	_cleanup_free_ char *full = NULL;
	_cleanup_close_ int fd = -1;
	int flags = is_compressed(path, strlen(path)) ? MODULE_INIT_COMPRESSED_FILE : 0;

	if (asprintf(&full, "%s/%s", dir, path) < 0) {
		full = NULL;
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	fd = open(full, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ember_error_sys(err, "open `%s`", full);
	if (syscall(SYS_finit_module, fd, "", flags) < 0 && errno != EEXIST)
		return ember_error_sys(err, "finit_module `%s`", path);
	return 0;
}

int guest_modules_load(const char *dir, unsigned *loaded, struct ember_error **err)
{
	_cleanup_free_ char *dep_path = NULL;
	_cleanup_free_ char *text = NULL;
	_cleanup_free_ size_t *order = NULL;
	_cleanup_free_ bool *ok = NULL;
	struct guest_modules mods = { 0 };
	char failures[768] = "";
	size_t len, i, j, failed = 0;

	*loaded = 0;
	if (asprintf(&dep_path, "%s/modules.dep", dir) < 0) {
		dep_path = NULL;
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	if (access(dep_path, F_OK) < 0 && errno == ENOENT)
		return 0;
	if (file_read_all(dep_path, GUEST_MODULES_DEP_MAX_BYTES, &text, &len, err) < 0 ||
	    guest_modules_parse(text, len, &mods, err) < 0)
		return ember_error_wrap(err, "read `%s`", dep_path);
	order = calloc(mods.count + 1, sizeof(*order));
	ok = calloc(mods.count + 1, sizeof(*ok));
	if (order == NULL || ok == NULL) {
		guest_modules_release(&mods);
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	if (guest_modules_order(&mods, order, err) < 0) {
		guest_modules_release(&mods);
		return -1;
	}
	for (i = 0; i < mods.count; i++) {
		const struct guest_module *m = &mods.mods[order[i]];
		struct ember_error *one = NULL;
		bool deps_ok = true;
		size_t used = strlen(failures);

		for (j = 0; j < m->ndeps; j++)
			deps_ok = deps_ok && ok[m->deps[j]];
		if (!deps_ok)
			ember_error_set(&one, EMBER_E_INTERNAL, 0, "`%s`: a dependency failed",
					m->path);
		else if (load_one(dir, m->path, &one) == 0)
			ok[order[i]] = true;
		if (one != NULL) {
			failed++;
			snprintf(failures + used, sizeof(failures) - used, "%s%s",
				 used > 0 ? "; " : "", one->message);
			ember_error_free(&one);
		} else {
			(*loaded)++;
		}
	}
	guest_modules_release(&mods);
	if (failed > 0)
		return ember_error_set(err, EMBER_E_INTERNAL, 0, "%zu module(s) failed to load: %s",
				       failed, failures);
	return 0;
}
