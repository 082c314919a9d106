/* config.c - the config file: a bounded line reader that feeds libinih, a handler that applies
 * each key through its flag's parser, the file's trust checks, and --print-config. */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fdio.h"

/* One load: the reader's position in the text, the handler's targets, the first failure. */
struct loader {
	struct config_file *cf;
	const char *path;
	const char *text;
	size_t len, pos;
	unsigned line;               /* of the line libinih was last given: the handler's line */
	const struct opt_spec *table;
	size_t n;
	void *target, *scratch;
	struct opt_source *sources;
	unsigned first_line[OPT_TABLE_MAX];  /* where the file set each row; 0: not yet */
	struct ember_error *err;     /* the first failure; the rest of the file is not applied */
};

static void fail(struct loader *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records the first failure as "PATH:LINE: <what fmt says>". */
static void fail(struct loader *ld, const char *fmt, ...)
{
	char what[900];
	va_list ap;

	if (ld->err != NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	ember_error_set(&ld->err, EMBER_E_INVALID, 0, "%s:%u: %s", ld->path, ld->line, what);
}

/* A line libinih would misread: a value's continuation (it starts with blanks but is neither
 * blank nor a comment: libinih would append it to the previous key as a value of its own). */
static bool is_continuation(const char *s, size_t len)
{
	size_t i = 0;

	if (len == 0 || (s[0] != ' ' && s[0] != '\t'))
		return false;
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
		i++;
	return i < len && s[i] != '#' && s[i] != ';';
}

/* libinih's reader (an fgets): hands over the next line, after the checks that keep it from
 * cutting long lines or reading NUL bytes as the end; NULL at the end or on a refused line. */
static char *next_line(char *buf, int size, void *stream)
{
	struct loader *ld = stream;
	const char *start = ld->text + ld->pos, *nl;
	size_t len, rest = ld->len - ld->pos;

	if (ld->err != NULL || rest == 0)
		return NULL;
	nl = memchr(start, '\n', rest);
	len = nl != NULL ? (size_t)(nl - start) : rest;
	ld->line++;
	ld->pos += len + (nl != NULL);
	if (len > CONFIG_MAX_LINE || size < CONFIG_MAX_LINE + 2) {
		fail(ld, "line of %zu characters: at most %d", len, CONFIG_MAX_LINE);
		return NULL;
	}
	if (memchr(start, '\0', len) != NULL) {
		fail(ld, "a NUL byte");
		return NULL;
	}
	if (is_continuation(start, len)) {
		fail(ld, "a key must start its line (no blanks before it; values do not continue "
			 "on the next line)");
		return NULL;
	}
	memcpy(buf, start, len);
	buf[len] = '\n';
	buf[len + 1] = '\0';
	return buf;
}

/* The checks a key passes before its value is looked at; returns its row or NULL (failed). */
static const struct opt_spec *check_key(struct loader *ld, const char *section, const char *name)
{
	const struct opt_spec *spec;

	if (section[0] != '\0') {
		fail(ld, "key `%s` is in section [%s]: emberd's config has no sections", name,
		     section);
		return NULL;
	}
	spec = opt_table_find(ld->table, ld->n, name);
	if (spec == NULL) {
		fail(ld, "unknown key `%s`", name);
		return NULL;
	}
	if (spec->cli_only) {
		fail(ld, "`%s` is a command-line flag only, not a config key", name);
		return NULL;
	}
	if (ld->first_line[spec - ld->table] != 0 && !spec->repeats) {
		fail(ld, "`%s` is already set on line %u", name, ld->first_line[spec - ld->table]);
		return NULL;
	}
	if (ld->cf->nkeys == CONFIG_MAX_KEYS) {
		fail(ld, "more than %d keys", CONFIG_MAX_KEYS);
		return NULL;
	}
	return spec;
}

/* A flag without argument is `key = true` (given) or `key = false` (not given). */
static enum opt_result apply_switch(struct loader *ld, const struct opt_spec *spec,
				    const char *value, void *dest)
{
	if (strcmp(value, "false") == 0)
		return OPT_OK;
	if (strcmp(value, "true") == 0)
		return spec->parse(spec, NULL, dest, &ld->err);
	ember_error_set(&ld->err, EMBER_E_INVALID, 0, "must be true or false (got `%.100s`)",
			value);
	return OPT_BAD_VALUE;
}

/* libinih's handler, once per `key = value`: 1 goes on, 0 is a failure (recorded in ld). */
static int apply_key(void *user, const char *section, const char *name, const char *value)
{
	struct loader *ld = user;
	const struct opt_spec *spec;
	size_t row;
	void *dest;
	char *copy;

	if (ld->err != NULL)
		return 0;
	spec = check_key(ld, section, name);
	if (spec == NULL)
		return 0;
	if (value[0] == '\0') {
		fail(ld, "`%s` has no value", name);
		return 0;
	}
	row = (size_t)(spec - ld->table);
	dest = ld->sources[row].from == OPT_FROM_FLAG ? ld->scratch : ld->target;
	if (spec->arg == NULL) {
		if (apply_switch(ld, spec, value, dest) != OPT_OK)
			goto refused;
	} else {
		copy = strdup(value);
		if (copy == NULL) {
			ember_error_oom(&ld->err);
			return 0;
		}
		ld->cf->values[ld->cf->nvalues++] = copy;
		if (spec->parse(spec, copy, dest, &ld->err) != OPT_OK)
			goto refused;
	}
	ld->cf->keys[ld->cf->nkeys++] = (struct config_key){ .row = (unsigned)row, .line = ld->line };
	if (ld->first_line[row] == 0)
		ld->first_line[row] = ld->line;
	if (ld->sources[row].from != OPT_FROM_FLAG && ld->sources[row].from != OPT_FROM_FILE)
		ld->sources[row] = (struct opt_source){ .from = OPT_FROM_FILE, .line = ld->line };
	return 1;
refused:
	if (ld->err == NULL) /* a parser that returned without saying why */
		ember_error_set(&ld->err, EMBER_E_INVALID, 0, "refused");
	ember_error_wrap(&ld->err, "%s:%u: %s", ld->path, ld->line, name);
	return 0;
}

int config_load_text(struct config_file *cf, const char *path, const char *text, size_t len,
		     const struct opt_spec *table, size_t n, void *target, void *scratch,
		     struct opt_source *sources, struct ember_error **err)
{
	struct loader ld = { .cf = cf, .path = path, .text = text, .len = len, .table = table,
			     .n = n, .target = target, .scratch = scratch, .sources = sources };
	int bad;

	if (n > OPT_TABLE_MAX)
		abort();
	bad = ini_parse_stream(next_line, &ld, apply_key, &ld);
	/* libinih goes on after a failure and returns the first failing line: a line without
	 * `=` (or a broken [section]) that comes before the first refused key is the error. */
	if (bad > 0 && (ld.err == NULL || (unsigned)bad < ld.line)) {
		ember_error_free(&ld.err);
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "%s:%d: expected `key = value` (or a # comment)", path, bad);
	}
	if (bad < 0 && ld.err == NULL)
		return ember_error_oom(err);
	if (ld.err != NULL)
		return ember_error_propagate(err, ld.err);
	return 0;
}

/* Whoever can write the file (or swap it through its directory) picks the binaries the daemon
 * runs as root and can turn its jail off: only root or the daemon's own user may. */
static int check_trusted_file(const char *path, struct ember_error **err)
{
	char resolved[PATH_MAX], dir[PATH_MAX];
	struct stat st;

	if (realpath(path, resolved) == NULL || stat(resolved, &st) < 0)
		return ember_error_sys(err, "config file `%s`", path);
	if (!S_ISREG(st.st_mode))
		return ember_error_set(err, EMBER_E_INVALID, 0, "config file `%s` is not a file",
				       path);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "config file `%s` is owned by uid %u, not root: another "
				       "user could change what the daemon runs", path,
				       (unsigned)st.st_uid);
	if ((st.st_mode & 022) != 0)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "config file `%s` is writable by group or others (mode "
				       "%04o): chmod go-w it", path, (unsigned)(st.st_mode & 07777));
	snprintf(dir, sizeof(dir), "%s", resolved);
	return dir_check_trusted(dirname(dir), "config file's directory", err);
}

int config_load(struct config_file *cf, const char *path, bool must_exist,
		const struct opt_spec *table, size_t n, void *target, void *scratch,
		struct opt_source *sources, struct ember_error **err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;

	if (!must_exist && access(path, F_OK) < 0 && errno == ENOENT)
		return 0;
	if (check_trusted_file(path, err) < 0 ||
	    file_read_all(path, CONFIG_MAX_BYTES, &text, &len, err) < 0)
		return -1;
	cf->path = strdup(path);
	if (cf->path == NULL)
		return ember_error_oom(err);
	return config_load_text(cf, path, text, len, table, n, target, scratch, sources, err);
}

void config_release(struct config_file *cf)
{
	size_t i;

	for (i = 0; i < cf->nvalues; i++)
		free(cf->values[i]);
	free(cf->path);
	*cf = (struct config_file){ 0 };
}

/* The line of row's value number index in the file (its index-th key line), else the row's. */
static unsigned value_line(const struct config_file *cf, const struct opt_source *source,
			   size_t row, size_t index)
{
	size_t i;

	for (i = 0; i < cf->nkeys; i++) {
		if (cf->keys[i].row == row && index-- == 0)
			return cf->keys[i].line;
	}
	return source->line;
}

static void print_source(FILE *out, int used, const struct opt_source *source, unsigned line,
			 const char *path)
{
	fprintf(out, "%*s; ", used < 40 ? 40 - used : 1, "");
	switch (source->from) {
	case OPT_FROM_DEFAULT: fprintf(out, "default\n"); break;
	case OPT_FROM_ENV: fprintf(out, "env %s\n", source->env); break;
	case OPT_FROM_FILE: fprintf(out, "%s:%u\n", path, line); break;
	case OPT_FROM_FLAG: fprintf(out, "flag\n"); break;
	}
}

void config_print(FILE *out, const struct opt_spec *table, size_t n, const void *target,
		  const struct opt_source *sources, const struct config_file *cf)
{
	const char *path = cf->path != NULL ? cf->path : "none";
	char value[4096];
	size_t i, k;

	fprintf(out, "# emberd %s effective settings; config file: %s\n"
		     "# after each value: where it came from (default, env, FILE:LINE or flag)\n",
		EMBER_VERSION, path);
	for (i = 0; i < n; i++) {
		if (table[i].name == NULL || table[i].cli_only || table[i].show == NULL)
			continue;
		for (k = 0; table[i].show(&table[i], target, k, value, sizeof(value)); k++)
			print_source(out, fprintf(out, "%s = %s", table[i].name, value),
				     &sources[i], value_line(cf, &sources[i], i, k), path);
		if (k == 0)
			print_source(out, fprintf(out, "# %s = (not set)", table[i].name),
				     &sources[i], sources[i].line, path);
	}
}
