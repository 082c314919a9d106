/* config.h - emberd's config file: `key = value` lines (INI without sections, read by libinih),
 * each key a long flag of the option table whose value goes through that flag's own parser, so
 * a file and a command line accept exactly the same values; and --print-config's listing of the
 * effective settings with where each came from.
 * Called by options.c between the defaults and the command line (and by the fuzz target). Never
 * starts anything, never exits, and prints only in config_print. */
#ifndef EMBERD_CONFIG_H
#define EMBERD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "util/error.h"
#include "util/opttable.h"

/* Read when it exists and no --config is given; a missing one is not an error. */
#define CONFIG_DEFAULT_PATH "/etc/emberd/emberd.conf"

/* A whole config is a few hundred bytes (one line per flag): 64 KiB leaves room for comments
 * and stays a cheap, bounded read. */
#define CONFIG_MAX_BYTES (64u << 10)

/* libinih reads lines into a 200-byte buffer (INI_MAX_LINE in Debian's build) and silently drops
 * the rest of a longer one, which would turn a long value into a shorter valid one: longer lines
 * are refused before it sees them (198 = 200 less the newline and the NUL). */
#define CONFIG_MAX_LINE 198

/* Key lines per file: every flag once and the repeated ones (--allow-origin takes 16) fit many
 * times over. */
#define CONFIG_MAX_KEYS 256

/* A loaded file: the values the options' fields point into live here until config_release. */
struct config_file {
	char *path;                      /* NULL: no file was read */
	char *values[CONFIG_MAX_KEYS];
	size_t nvalues;
	struct config_key {              /* every key line, in order: which row, which line */
		unsigned row, line;
	} keys[CONFIG_MAX_KEYS];
	size_t nkeys;
};

/* Applies text (len bytes; need not be NUL-terminated), read from path (named in errors), to
 * target through table's parsers. Rows whose sources[i].from is OPT_FROM_FLAG on entry are
 * checked the same way but applied to scratch (a second options struct with the defaults), so
 * the command line overrides the file, repeated flags included. Every other row the file sets
 * gets OPT_FROM_FILE and its line. Errors read "PATH:LINE: ...", naming the key; a value's error
 * is the flag's own message. cf must be zeroed or released; it owns the values afterwards. */
int config_load_text(struct config_file *cf, const char *path, const char *text, size_t len,
		     const struct opt_spec *table, size_t n, void *target, void *scratch,
		     struct opt_source *sources, struct ember_error **err);

/* Reads path (at most CONFIG_MAX_BYTES) and applies it as config_load_text. The file must be a
 * regular file owned by root or the daemon's user and writable by nobody else, in a directory
 * tree only they can change: it may name the binaries the daemon runs as root. With
 * !must_exist a missing file is fine (cf->path stays NULL). */
int config_load(struct config_file *cf, const char *path, bool must_exist,
		const struct opt_spec *table, size_t n, void *target, void *scratch,
		struct opt_source *sources, struct ember_error **err);

/* Frees the values; cf is zeroed (options pointing into it must no longer be used). */
void config_release(struct config_file *cf);

/* --print-config: a header naming the file (cf->path; none when NULL), then one
 * `key = value ; source` line per value of every row but headings and command-line-only flags
 * (`# key = (not set) ; source` when it has none); a repeated key's values each name their own
 * line. A file can be loaded back from it. */
void config_print(FILE *out, const struct opt_spec *table, size_t n, const void *target,
		  const struct opt_source *sources, const struct config_file *cf);

#endif
