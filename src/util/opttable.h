/* opttable.h - a program's command line as one table of flags: each row names a flag, its
 * argument, the parser that stores it at an offset in the caller's options struct, the shower
 * that prints it back, and its --help text; getopt_long's tables, the parse loop and --help are
 * generated from it, so they cannot drift (emberd's config file applies its keys through the
 * same parsers: cmd/emberd/config.h).
 * Called by the programs in cmd/ (emberd, ember-vm, emberctl) before they start anything.
 * Never exits and never prints a refused value's message: it comes back in the error, for the
 * caller to print its own way (getopt_long's complaints about unknown flags it cannot silence
 * but with OPT_QUIET). Uses getopt's globals: one parse at a time. */
#ifndef EMBER_UTIL_OPTTABLE_H
#define EMBER_UTIL_OPTTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "util/error.h"

enum opt_result {
	OPT_OK = 0,
	OPT_EXIT = 1,        /* a flag did all there was to do (--help, --version): exit 0 */
	OPT_BAD_VALUE = -1,  /* a parser refused its argument: the error says why */
	OPT_BAD_FLAG = -2,   /* unknown flag, argument missing or unwanted: getopt_long has said
			      * so on stderr (unless OPT_QUIET); the caller prints its usage */
};

/* Rows a table may have (emberd's, the largest, has 53 with its headings): the getopt_long
 * tables live on the stack. A bigger table is a bug the program hits on its first run. */
#define OPT_TABLE_MAX 96

struct opt_spec;

/* Stores what arg means at target + spec->field. arg is NULL for a flag without argument. */
typedef enum opt_result opt_parser(const struct opt_spec *spec, const char *arg, void *target,
				   struct ember_error **err);

/* Writes the row's value number `index` (0 for a flag given once) into buf as the flag would
 * take it, truncated to size; false when there is none at index (not set, or past the last of a
 * repeated flag's values). For listings of the effective settings (emberd --print-config). */
typedef bool opt_shower(const struct opt_spec *spec, const void *target, size_t index, char *buf,
			size_t size);

struct opt_spec {
	const char *name;             /* NULL: a --help section heading (help is its title) */
	const char *arg;              /* --help's placeholder; NULL: the flag takes no argument */
	opt_parser *parse;
	size_t field;                 /* offsetof(target's struct, member) that parse writes */
	unsigned long long min, max;  /* the number setters' range, both included */
	const char *help;             /* '\n' starts a continuation line */
	const char *key;              /* a name a parser needs besides the field (emberctl: the
				       * JSON member it sets; opt_show_version: the program) */
	opt_shower *show;             /* NULL: the row has no value to show (--help) */
	char short_name;              /* 0: none */
	bool repeats;                 /* may be given again: "..." in its synopsis */
	bool cli_only;                /* a command-line flag only, never a config file's key
				       * (--help, --config) */
};

/* Where a row's value came from (one per table row, for --print-config). */
enum opt_origin {
	OPT_FROM_DEFAULT = 0,
	OPT_FROM_ENV,     /* env names the variable */
	OPT_FROM_FILE,    /* line is the config file's line that set it (the first, if repeated) */
	OPT_FROM_FLAG,    /* the command line */
};

struct opt_source {
	enum opt_origin from;
	unsigned line;
	const char *env;
};

/* The field a parser writes: *OPT_FIELD(target, spec, unsigned) = v. */
#define OPT_FIELD(target, spec, type) ((type *)(void *)((char *)(target) + (spec)->field))

/* The generic parsers. Numbers are decimal, without sign, within [spec->min, spec->max]; the
 * error reads "--<name> must be a number between <min> and <max>". */
int opt_parse_number(const struct opt_spec *spec, const char *arg, unsigned long long *out,
		     struct ember_error **err);
opt_parser opt_set_unsigned;   /* unsigned */
opt_parser opt_set_u64;        /* uint64_t */
opt_parser opt_set_size;       /* size_t */
opt_parser opt_set_string;     /* const char *: arg itself (argv's storage), not a copy */
opt_parser opt_set_true;       /* bool */
opt_parser opt_set_false;      /* bool */
opt_parser opt_show_version;   /* prints "<spec->key> <EMBER_VERSION>" on stdout: OPT_EXIT */

/* The showers of the generic parsers. A number outside [min, max] (a default meaning "decided at
 * startup", such as 0) shows as not set. */
opt_shower opt_show_unsigned;
opt_shower opt_show_u64;
opt_shower opt_show_size;
opt_shower opt_show_string;    /* NULL: not set */
opt_shower opt_show_true;      /* "true" or "false": the bool itself */
opt_shower opt_show_false;     /* the negation, for a flag set by opt_set_false */

/* opt_table_parse's flags. */
#define OPT_IN_ORDER 1u  /* stop at the first operand (flags before a command and its own) */
#define OPT_QUIET 2u     /* getopt_long says nothing about a bad flag */

/* Scans argv with table (n rows, section headings included), calling each flag's parser with
 * target, in argv's order, until the end or the first result other than OPT_OK, which it
 * returns. *operands is then the index of the first operand in argv (argc when none): getopt_long
 * moves them to the end unless OPT_IN_ORDER. Every failure leaves an error. */
enum opt_result opt_table_parse(const struct opt_spec *table, size_t n, int argc, char **argv,
				void *target, unsigned flags, int *operands,
				struct ember_error **err);

/* opt_table_parse that also marks each row the command line gave: sources[i].from becomes
 * OPT_FROM_FLAG for row i (sources has n entries; the others are left alone). */
enum opt_result opt_table_parse_sourced(const struct opt_spec *table, size_t n, int argc,
					char **argv, void *target, unsigned flags, int *operands,
					struct opt_source *sources, struct ember_error **err);

/* The row of table named name (a long flag's name), or NULL. */
const struct opt_spec *opt_table_find(const struct opt_spec *table, size_t n, const char *name);

/* Where --help puts a flag's text: at column when the flag leaves min_gap spaces before it;
 * a longer flag is followed by long_gap spaces, or (long_gap 0) its text starts the next line. */
struct opt_help_layout {
	int column;
	int min_gap;
	int long_gap;
};

/* One row per flag ("  --name ARG, -s   help"), a section heading's title on a line of its own,
 * continuation lines indented to the column. */
void opt_table_print_help(FILE *out, const struct opt_spec *table, size_t n,
			  const struct opt_help_layout *layout);

/* For a caller's own rows (emberctl's commands): pads from `used` columns to the layout's column,
 * then prints help and its continuation lines. */
void opt_print_help_text(FILE *out, int used, const char *help,
			 const struct opt_help_layout *layout);

/* " [--name ARG]" (with "..." when it repeats); returns the columns printed. */
int opt_print_synopsis(FILE *out, const struct opt_spec *spec);

#endif
