/* cli.h - emberctl's command line as tables: the global flags, the commands and each command's
 * flags, with --help generated from them (the mechanism is util/opttable).
 * Called by main to parse argv and pick the command; never talks to the daemon. */
#ifndef EMBERCTL_CLI_H
#define EMBERCTL_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "ctl.h"
#include "util/opttable.h"

struct command {
	const char *name;
	const char *operands;         /* for --help */
	const struct opt_spec *flags; /* NULL: the command takes no flags (its arguments are not
				       * scanned) */
	size_t nflags;
	int bad_flag_status;          /* exit status for a bad flag, as each command had it */
	int (*run)(struct ctl *c, int argc, char **argv); /* argv: the operands */
	const char *help;             /* '\n' starts a continuation line */
};

/* The global flags, which come before the command: stops at it, says nothing about a bad flag
 * (the caller prints the usage). *command is argv's index of the command (argc when none). */
enum opt_result cli_parse_global(struct ctl *c, int argc, char **argv, int *command,
				 struct ember_error **err);

/* NULL when there is no such command. */
const struct command *cli_find_command(const char *name);

void cli_usage(FILE *out);

#endif
