/* cli.c - emberctl's flag tables, their parsers, the command table and --help. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "files.h"
#include "pack.h"
#include "util/cleanup.h"

static enum opt_result set_body_string(const struct opt_spec *spec, const char *arg, void *ctl,
				       struct ember_error **err)
{
	struct ctl *c = ctl;

	(void)err;
	json_object_set_new(c->body, spec->key, json_string(arg));
	return OPT_OK;
}

/* A whole number (decimal digits, nothing else: atoll would send "12x" as 12 and "-1" as -1).
 * Its range is the daemon's to check: it names the field and the limit it was started with. */
static enum opt_result set_body_integer(const struct opt_spec *spec, const char *arg, void *ctl,
					struct ember_error **err)
{
	struct ctl *c = ctl;
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || errno != 0 || v > (unsigned long long)LLONG_MAX) {
		ember_error_set(err, EMBER_E_INVALID, 0, "--%s must be a whole number, got `%.100s`",
				spec->name, arg);
		return OPT_BAD_VALUE;
	}
	json_object_set_new(c->body, spec->key, json_integer((json_int_t)v));
	return OPT_OK;
}

static enum opt_result add_env(const struct opt_spec *spec, const char *arg, void *ctl,
			       struct ember_error **err)
{
	struct ctl *c = ctl;
	char *eq = strchr(arg, '=');

	(void)spec;
	if (eq == NULL) {
		ember_error_set(err, EMBER_E_INVALID, 0, "--env needs NAME=value, got `%s`", arg);
		return OPT_BAD_VALUE;
	}
	*eq = '\0'; /* arg is argv's own storage */
	json_object_set_new(c->env, arg, json_string(eq + 1));
	return OPT_OK;
}

/* create --label K=V: one entry of the body's labels (the daemon checks key and value). */
static enum opt_result add_label(const struct opt_spec *spec, const char *arg, void *ctl,
				 struct ember_error **err)
{
	struct ctl *c = ctl;
	char *eq = strchr(arg, '=');
	json_t *labels = json_object_get(c->body, "labels");

	(void)spec;
	if (eq == NULL) {
		ember_error_set(err, EMBER_E_INVALID, 0, "--label needs KEY=VALUE, got `%s`", arg);
		return OPT_BAD_VALUE;
	}
	if (labels == NULL) {
		labels = json_object();
		json_object_set_new(c->body, "labels", labels);
	}
	*eq = '\0'; /* arg is argv's own storage */
	json_object_set_new(labels, arg, json_string(eq + 1));
	return OPT_OK;
}

/* create --mount HOST:GUEST[:ro|rw]: one entry of the body's mounts, like `docker run -v`. A
 * guest path never holds `:` (docs/api.md "Mounts"), so the last `:` before an optional mode
 * ends the host path, which may hold some. The daemon checks both paths. */
static enum opt_result add_mount(const struct opt_spec *spec, const char *arg, void *ctl,
				 struct ember_error **err)
{
	struct ctl *c = ctl;
	json_t *mounts = json_object_get(c->body, "mounts");
	char *text = (char *)arg; /* argv's own storage */
	const char *mode = "ro";
	size_t len = strlen(text);
	char *colon;

	(void)spec;
	if (len > 3 && (strcmp(text + len - 3, ":ro") == 0 || strcmp(text + len - 3, ":rw") == 0)) {
		mode = text + len - 2;
		text[len - 3] = '\0';
	}
	colon = strrchr(text, ':');
	if (colon == NULL || colon == text || colon[1] == '\0') {
		ember_error_set(err, EMBER_E_INVALID, 0, "--mount needs HOST:GUEST[:ro|rw], got `%s`",
				arg);
		return OPT_BAD_VALUE;
	}
	*colon = '\0';
	if (mounts == NULL) {
		mounts = json_array();
		json_object_set_new(c->body, "mounts", mounts);
	}
	json_array_append_new(mounts, json_pack("{s:s, s:s, s:s}", "host", text, "guest", colon + 1,
						"mode", mode));
	return OPT_OK;
}

/* One entry of obj's list key (created on first use). */
static void append_to_list(json_t *obj, const char *key, const char *arg)
{
	json_t *list = json_object_get(obj, key);

	if (list == NULL) {
		list = json_array();
		json_object_set_new(obj, key, list);
	}
	json_array_append_new(list, json_string(arg));
}

/* create --network-mode/--allow/--deny: a member of the body's network object (created on
 * first use), sent as given: the daemon checks the mode and every entry and names the one it
 * refuses (docs/network.md). */
static enum opt_result set_create_network(const struct opt_spec *spec, const char *arg,
					  void *ctl, struct ember_error **err)
{
	struct ctl *c = ctl;
	json_t *network = json_object_get(c->body, "network");

	(void)err;
	if (network == NULL) {
		network = json_object();
		json_object_set_new(c->body, "network", network);
	}
	if (strcmp(spec->key, "mode") == 0)
		json_object_set_new(network, "mode", json_string(arg));
	else
		append_to_list(network, spec->key, arg);
	return OPT_OK;
}

/* network --allow/--deny: an entry of the PATCH body's allow or deny list. */
static enum opt_result add_body_entry(const struct opt_spec *spec, const char *arg, void *ctl,
				      struct ember_error **err)
{
	struct ctl *c = ctl;

	(void)err;
	append_to_list(c->body, spec->key, arg);
	return OPT_OK;
}

/* ls --label/--state: a query parameter, sent as given (the daemon checks it). */
static enum opt_result add_query(const struct opt_spec *spec, const char *arg, void *ctl,
				 struct ember_error **err)
{
	struct ctl *c = ctl;

	(void)err;
	json_array_append_new(c->query, json_pack("[s, s]", spec->key, arg));
	return OPT_OK;
}

static opt_parser show_help;

#define AT(member) offsetof(struct ctl, member)
/* A flag that sets the request body's member key_. */
#define BODY(name_, arg_, parse_, key_) { .name = name_, .arg = arg_, .parse = parse_, .key = key_ }

static const struct opt_spec global_flags[] = {
	{ .name = "addr", .arg = "HOST:PORT|unix:PATH", .parse = opt_set_string, .field = AT(addr),
	  .help = "the daemon (default 127.0.0.1:7777, or $EMBERD_ADDR)" },
	{ .name = "token-file", .arg = "FILE", .parse = opt_set_string, .field = AT(token_file),
	  .help = "send the bearer token in FILE (the daemon's --auth-token-file;\n"
		  "default $EMBERD_TOKEN_FILE)" },
	{ .name = "json", .parse = opt_set_true, .field = AT(json),
	  .help = "machine-readable output" },
	{ .name = "help", .parse = show_help, .short_name = 'h',
	  .help = "print this help and exit" },
	{ .name = "version", .parse = opt_show_version, .key = "emberctl",
	  .help = "print the version and exit" },
};

/* The commands' flags have no help of their own: the command's help says it all. */
static const struct opt_spec create_flags[] = {
	BODY("pack", "P", set_body_string, "language_pack"),
	BODY("vcpus", "N", set_body_integer, "vcpus"),
	BODY("memory-mib", "N", set_body_integer, "memory_mib"),
	BODY("timeout-s", "N", set_body_integer, "timeout_s"),
	BODY("overlay-mib", "N", set_body_integer, "overlay_mib"),
	BODY("idle-timeout-s", "N", set_body_integer, "idle_timeout_s"),
	BODY("cpu-weight", "N", set_body_integer, "cpu_weight"),
	{ .name = "label", .arg = "K=V", .parse = add_label, .repeats = true },
	{ .name = "network-mode", .arg = "M", .parse = set_create_network, .key = "mode" },
	{ .name = "allow", .arg = "X", .parse = set_create_network, .key = "allow",
	  .repeats = true },
	{ .name = "deny", .arg = "X", .parse = set_create_network, .key = "deny", .repeats = true },
	{ .name = "mount", .arg = "HOST:GUEST[:ro|rw]", .parse = add_mount, .repeats = true },
	BODY("from-snapshot", "SNAP", set_body_string, "from_snapshot"),
};

static const struct opt_spec fork_flags[] = {
	BODY("count", "N", set_body_integer, "count"),
	BODY("timeout-s", "N", set_body_integer, "timeout_s"),
	{ .name = "label", .arg = "K=V", .parse = add_label, .repeats = true },
};

static const struct opt_spec snapshot_flags[] = {
	{ .name = "label", .arg = "K=V", .parse = add_label, .repeats = true },
};

static const struct opt_spec network_flags[] = {
	{ .name = "allow", .arg = "X", .parse = add_body_entry, .key = "allow", .repeats = true },
	{ .name = "deny", .arg = "X", .parse = add_body_entry, .key = "deny", .repeats = true },
};

static const struct opt_spec ls_flags[] = {
	{ .name = "label", .arg = "K[=V]", .parse = add_query, .key = "label", .repeats = true },
	{ .name = "state", .arg = "S", .parse = add_query, .key = "state" },
};

static const struct opt_spec exec_flags[] = {
	{ .name = "stdin-file", .arg = "F", .parse = opt_set_string, .field = AT(stdin_file) },
	BODY("timeout-ms", "N", set_body_integer, "timeout_ms"),
	{ .name = "env", .arg = "K=V", .parse = add_env, .repeats = true },
	{ .name = "no-stream", .parse = opt_set_true, .field = AT(no_stream) },
};

static const struct opt_spec logs_flags[] = {
	{ .name = "follow", .short_name = 'f', .parse = opt_set_true, .field = AT(follow) },
};

static const struct opt_spec test_flags[] = {
	{ .name = "pack", .arg = "P", .parse = opt_set_string, .field = AT(pack) },
};

#define FLAGS(table) table, ARRAY_SIZE(table)

static const struct command commands[] = {
	{ "create", "", FLAGS(create_flags), 2, cmd_create,
	  "boot a sandbox; prints its id. Defaults from the\n"
	  "pack; --overlay-mib: its writable layer in MiB;\n"
	  "--idle-timeout-s: destroyed after N s unused;\n"
	  "--cpu-weight: CPU share against other sandboxes\n"
	  "(1-10000, default 100); --label: attach a label\n"
	  "(repeatable); --network-mode none|allowlist|open\n"
	  "with --allow/--deny entries (repeatable):\n"
	  "its network policy (docs/network.md); --mount\n"
	  "HOST:GUEST[:ro|rw]: a host directory the daemon's\n"
	  "--allow-mount allows, at GUEST (repeatable;\n"
	  "default ro; docs/api.md \"Mounts\"); --from-snapshot\n"
	  "SNAP: start from snapshot SNAP (emberctl snapshot)" },
	{ "exec", "ID [CODE]", FLAGS(exec_flags), 1, cmd_exec,
	  "run CODE (or stdin when CODE is absent or -);\n"
	  "prints its output as it comes, exits with its\n"
	  "exit code; --no-stream (or --json): all at the end" },
	{ "ls", "[ID [PATH]]", FLAGS(ls_flags), 2, cmd_ls,
	  "list sandboxes; only those with every --label\n"
	  "(KEY: has it, KEY=VALUE: equal) and in --state.\n"
	  "With ID: the files at PATH in that sandbox\n"
	  "(default its home; a file: that one entry)" },
	{ "cp", "SRC DST", NULL, 0, 0, cmd_cp,
	  "copy a file in (cp LOCAL ID:PATH) or out\n"
	  "(cp ID:PATH LOCAL); - is stdin/stdout; progress\n"
	  "on a terminal's stderr for files over 1 MiB" },
	{ "inspect", "ID", NULL, 0, 0, cmd_inspect, "details and the guest console tail" },
	{ "rm", "ID...", NULL, 0, 0, cmd_rm, "destroy sandboxes" },
	{ "network", "ID", FLAGS(network_flags), 2, cmd_network,
	  "replace a networked sandbox's allow list with\n"
	  "the --allow entries (none given: it stays) and,\n"
	  "with --deny, its deny list; prints its network" },
	{ "timeout", "ID SECONDS", NULL, 0, 0, cmd_timeout,
	  "set the sandbox's remaining lifetime to SECONDS" },
	{ "pause", "ID", NULL, 0, 0, cmd_pause,
	  "save the sandbox's whole VM to disk and stop it\n"
	  "(no CPU, no RAM); prints when it will be deleted" },
	{ "resume", "ID", NULL, 0, 0, cmd_resume,
	  "run a paused sandbox on where it stopped" },
	{ "fork", "ID", FLAGS(fork_flags), 2, cmd_fork,
	  "copy a running sandbox (memory and files, no\n"
	  "processes or contexts) --count times (default 1);\n"
	  "prints the new ids, one a line" },
	{ "snapshot", "ID", FLAGS(snapshot_flags), 2, cmd_snapshot,
	  "save the sandbox as a snapshot that outlives it;\n"
	  "prints its id (create --from-snapshot starts one)" },
	{ "snapshots", "", NULL, 0, 0, cmd_snapshots,
	  "list snapshots: id, pack, size, source sandbox" },
	{ "rm-snapshot", "SNAP...", NULL, 0, 0, cmd_rm_snapshot, "delete snapshots" },
	{ "run", "ID CMD [ARG]...", NULL, 0, 0, cmd_run,
	  "start CMD in the background; prints its pid" },
	{ "logs", "ID PID", FLAGS(logs_flags), 1, cmd_logs,
	  "the output process PID kept; -f: and what comes,\n"
	  "until it ends" },
	{ "kill", "ID PID [SIGNAL]", NULL, 0, 0, cmd_kill,
	  "send SIGNAL (default TERM; a name or a number)" },
	{ "packs", "", NULL, 0, 0, cmd_packs, "list language packs" },
	{ "reload", "", NULL, 0, 0, cmd_reload,
	  "make the daemon read the pack catalog again\n"
	  "(POST /packs/reload): added, removed, changed" },
	{ "pack", "import|list|remove ...", NULL, 0, 2, cmd_pack,
	  "add a user pack from an OCI image to the images\n"
	  "directory, list or remove them (emberctl pack\n"
	  "--help; docs/packs.md)" },
	{ "health", "", NULL, 0, 0, cmd_health, "daemon status" },
	{ "test", "", FLAGS(test_flags), 1, cmd_test,
	  "create, inspect, exec, delete with assertions" },
	{ "mcp", "", NULL, 0, 0, cmd_mcp,
	  "serve MCP over stdin/stdout (newline-delimited\n"
	  "JSON-RPC), bridged to the daemon's /mcp; for\n"
	  "clients that launch servers (docs/mcp.md)" },
};

/* Text at column 31; a longer row puts it on the next line. */
static const struct opt_help_layout help_layout = { .column = 31, .min_gap = 2, .long_gap = 0 };

static void print_command_help(FILE *out, const struct command *cmd)
{
	int used = fprintf(out, "  %s%s%s", cmd->name, cmd->operands[0] != '\0' ? " " : "",
			   cmd->operands);
	size_t i;

	for (i = 0; i < cmd->nflags; i++)
		used += opt_print_synopsis(out, &cmd->flags[i]);
	opt_print_help_text(out, used, cmd->help, &help_layout);
}

void cli_usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: emberctl");
	for (i = 0; i < ARRAY_SIZE(global_flags); i++) {
		if (global_flags[i].parse != show_help && global_flags[i].parse != opt_show_version)
			opt_print_synopsis(out, &global_flags[i]);
	}
	fprintf(out, " COMMAND [ARGS]\n"
		     "Talks to emberd (default 127.0.0.1:7777, or $EMBERD_ADDR).\n\nCommands:\n");
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		print_command_help(out, &commands[i]);
	fprintf(out, "\nOptions:\n");
	opt_table_print_help(out, global_flags, ARRAY_SIZE(global_flags), &help_layout);
}

static enum opt_result show_help(const struct opt_spec *spec, const char *arg, void *ctl,
				 struct ember_error **err)
{
	(void)spec;
	(void)arg;
	(void)ctl;
	(void)err;
	cli_usage(stdout);
	return OPT_EXIT;
}

enum opt_result cli_parse_global(struct ctl *c, int argc, char **argv, int *command,
				 struct ember_error **err)
{
	return opt_table_parse(global_flags, ARRAY_SIZE(global_flags), argc, argv, c,
			       OPT_IN_ORDER | OPT_QUIET, command, err);
}

const struct command *cli_find_command(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	}
	return NULL;
}
