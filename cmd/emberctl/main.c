/* emberctl - command-line client of emberd's HTTP API. Human output by default, --json for
 * scripts; exits non-zero on any failure (and, for exec, with the exec's own exit code).
 * main parses the global flags, then the command's flags, then runs the command: the command
 * line is tables (cli.c), the commands are commands.c and selftest.c, printing is output.c. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "ctl.h"
#include "util/opttable.h"

/* The command's flags, then its operands; returns its exit status. */
static int run_command(struct ctl *c, const struct command *cmd, int argc, char **argv)
{
	struct ember_error *err = NULL;
	int operands;

	c->body = json_object();
	c->env = json_object();
	c->query = json_array();
	c->pack = "python";
	if (c->body == NULL || c->env == NULL || c->query == NULL)
		return ctl_fail("%s", "out of memory");
	if (cmd->flags == NULL)
		return cmd->run(c, argc - 1, argv + 1);
	/* getopt_long's complaints name the command: "create: unrecognized option ..." */
	switch (opt_table_parse(cmd->flags, cmd->nflags, argc, argv, c, 0, &operands, &err)) {
	case OPT_OK:
		return cmd->run(c, argc - operands, argv + operands);
	case OPT_BAD_VALUE:
		ctl_fail("%s", err->message);
		break;
	case OPT_EXIT:
	case OPT_BAD_FLAG:
		break;
	}
	ember_error_free(&err);
	return cmd->bad_flag_status;
}

int main(int argc, char **argv)
{
	const char *env_addr = getenv("EMBERD_ADDR");
	struct ctl c = { .addr = env_addr != NULL ? env_addr : "127.0.0.1:7777",
			 .token_file = getenv("EMBERD_TOKEN_FILE") };
	const struct command *cmd;
	struct ember_error *err = NULL;
	int ret, first;

	/* A bad global flag gets the usage, no message. */
	switch (cli_parse_global(&c, argc, argv, &first, &err)) {
	case OPT_OK: break;
	case OPT_EXIT: return 0;
	case OPT_BAD_VALUE:
	case OPT_BAD_FLAG: ember_error_free(&err); cli_usage(stderr); return 2;
	}
	if (first >= argc) {
		cli_usage(stderr);
		return 2;
	}
	/* A bad address is a bad flag (or environment): exit 2, naming which. opt_set_string
	 * stored argv's pointer, so c.addr is env_addr's only when --addr was not given. */
	if (http_client_create(c.addr, &c.http, &err) < 0) {
		fprintf(stderr, "emberctl: %s `%s`: %s\n",
			env_addr != NULL && c.addr == env_addr ? "EMBERD_ADDR" : "--addr", c.addr,
			err->message);
		ember_error_free(&err);
		return 2;
	}
	if (c.token_file != NULL && http_client_set_token_file(c.http, c.token_file, &err) < 0) {
		fprintf(stderr, "emberctl: %s\n", err->message);
		ember_error_free(&err);
		http_client_free(c.http);
		return 1;
	}
	cmd = cli_find_command(argv[first]);
	if (cmd != NULL) {
		ret = run_command(&c, cmd, argc - first, argv + first);
	} else {
		cli_usage(stderr);
		ret = 2;
	}
	json_decref(c.body);
	json_decref(c.env);
	json_decref(c.query);
	http_client_free(c.http);
	return ret;
}
