/* emberctl - command-line client of emberd's HTTP API. Human output by default, --json for
 * scripts; exits non-zero on any failure (and, for exec, with the exec's own exit code).
 * Global flags, commands and each command's flags are tables; --help is generated from them. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/http.h"
#include "util/cleanup.h"
#include "util/fdio.h"
#include "util/jsonutil.h"
#include "util/text.h"
#include "util/timeutil.h"

#define CODE_MAX (256 * 1024)
#define STDIN_FILE_MAX (1u << 20)

/* One invocation: the global flags, then what the command's flags set. */
struct ctl {
	struct http_client *http;
	bool json;
	const char *addr;
	json_t *body;             /* the request body a command's flags build (create, exec) */
	json_t *env;              /* exec --env */
	const char *stdin_file;   /* exec --stdin-file */
	const char *pack;         /* test --pack */
};

/* What a flag's parser tells the caller. */
enum flag_result {
	FLAG_OK = 0,
	FLAG_EXIT = 1,            /* --help/--version printed: exit 0 */
	FLAG_BAD = -1,            /* the error was printed */
};

struct flag;
typedef enum flag_result flag_parser(struct ctl *c, const struct flag *f, const char *arg);

struct flag {
	const char *name;
	const char *arg;          /* --help's placeholder; NULL: the flag takes no argument */
	flag_parser *parse;
	const char *sets;         /* the body field it sets, for the body parsers */
	char short_name;          /* 0: none */
	bool repeats;             /* shown with "..." */
	const char *help;         /* global flags only: the commands' help says it all */
};

struct command {
	const char *name;
	const char *operands;     /* for --help */
	const struct flag *flags; /* NULL: the command takes no flags (its arguments are not scanned) */
	size_t nflags;
	int bad_flag_status;      /* exit status for an unknown flag, as each command had it */
	int (*run)(struct ctl *c, int argc, char **argv); /* argv: the operands */
	const char *help;         /* '\n' starts a continuation line */
};

static void usage(FILE *out);

static int fail_msg(const char *fmt, const char *arg)
{
	fprintf(stderr, "emberctl: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	return 1;
}

/* ---- flag parsers ---- */

static enum flag_result set_addr(struct ctl *c, const struct flag *f, const char *arg)
{
	(void)f;
	c->addr = arg;
	return FLAG_OK;
}

static enum flag_result set_json(struct ctl *c, const struct flag *f, const char *arg)
{
	(void)f;
	(void)arg;
	c->json = true;
	return FLAG_OK;
}

static enum flag_result show_help(struct ctl *c, const struct flag *f, const char *arg)
{
	(void)c;
	(void)f;
	(void)arg;
	usage(stdout);
	return FLAG_EXIT;
}

static enum flag_result show_version(struct ctl *c, const struct flag *f, const char *arg)
{
	(void)c;
	(void)f;
	(void)arg;
	printf("emberctl %s\n", EMBER_VERSION);
	return FLAG_EXIT;
}

static enum flag_result set_body_string(struct ctl *c, const struct flag *f, const char *arg)
{
	json_object_set_new(c->body, f->sets, json_string(arg));
	return FLAG_OK;
}

/* Not range-checked here: the daemon checks every field and names it. */
static enum flag_result set_body_integer(struct ctl *c, const struct flag *f, const char *arg)
{
	json_object_set_new(c->body, f->sets, json_integer(atoll(arg)));
	return FLAG_OK;
}

static enum flag_result set_stdin_file(struct ctl *c, const struct flag *f, const char *arg)
{
	(void)f;
	c->stdin_file = arg;
	return FLAG_OK;
}

static enum flag_result add_env(struct ctl *c, const struct flag *f, const char *arg)
{
	char *eq = strchr(arg, '=');

	(void)f;
	if (eq == NULL) {
		fail_msg("--env needs NAME=value, got `%s`", arg);
		return FLAG_BAD;
	}
	*eq = '\0'; /* arg is argv's own storage */
	json_object_set_new(c->env, arg, json_string(eq + 1));
	return FLAG_OK;
}

static enum flag_result set_pack(struct ctl *c, const struct flag *f, const char *arg)
{
	(void)f;
	c->pack = arg;
	return FLAG_OK;
}

/* ---- flag tables ---- */

static const struct flag global_flags[] = {
	{ "addr", "HOST:PORT|unix:PATH", set_addr, NULL, 0, false,
	  "the daemon (default 127.0.0.1:7777, or $EMBERD_ADDR)" },
	{ "json", NULL, set_json, NULL, 0, false, "machine-readable output" },
	{ "help", NULL, show_help, NULL, 'h', false, "print this help and exit" },
	{ "version", NULL, show_version, NULL, 0, false, "print the version and exit" },
};

static const struct flag create_flags[] = {
	{ "pack", "P", set_body_string, "language_pack", 0, false, NULL },
	{ "vcpus", "N", set_body_integer, "vcpus", 0, false, NULL },
	{ "memory-mib", "N", set_body_integer, "memory_mib", 0, false, NULL },
	{ "timeout-s", "N", set_body_integer, "timeout_s", 0, false, NULL },
};

static const struct flag exec_flags[] = {
	{ "stdin-file", "F", set_stdin_file, NULL, 0, false, NULL },
	{ "timeout-ms", "N", set_body_integer, "timeout_ms", 0, false, NULL },
	{ "env", "K=V", add_env, NULL, 0, true, NULL },
};

static const struct flag test_flags[] = {
	{ "pack", "P", set_pack, NULL, 0, false, NULL },
};

/* The largest flag table plus one; a bigger table is a bug caught by parse_flags. */
#define FLAGS_MAX 8

/* getopt_long's view of a flag table (val is 256 + the row) and its short options. */
static void build_getopt(const struct flag *flags, size_t n, bool stop_at_operand,
			 struct option *longopts, char *shortopts)
{
	size_t i, k = 0;

	if (stop_at_operand)
		shortopts[k++] = '+';
	for (i = 0; i < n; i++) {
		longopts[i] = (struct option){ flags[i].name,
					       flags[i].arg != NULL ? required_argument
								    : no_argument,
					       NULL, 256 + (int)i };
		if (flags[i].short_name != 0)
			shortopts[k++] = flags[i].short_name;
	}
	longopts[n] = (struct option){ 0 };
	shortopts[k] = '\0';
}

static const struct flag *find_flag(const struct flag *flags, size_t n, int opt)
{
	size_t i;

	if (opt >= 256 && opt < 256 + (int)n)
		return &flags[opt - 256];
	for (i = 0; i < n; i++) {
		if (flags[i].short_name != 0 && flags[i].short_name == opt)
			return &flags[i];
	}
	return NULL; /* '?': getopt_long has said what was wrong, unless opterr is 0 */
}

/* Scans argv with a flag table; on FLAG_OK, optind is at the first operand. The global flags
 * stop at the command (stop_at_operand); a command's flags may follow its operands. */
static enum flag_result parse_flags(struct ctl *c, const struct flag *flags, size_t n,
				    bool stop_at_operand, int argc, char **argv)
{
	struct option longopts[FLAGS_MAX];
	char shortopts[FLAGS_MAX + 1];
	const struct flag *f;
	enum flag_result r;
	int opt;

	if (n >= FLAGS_MAX)
		abort();
	build_getopt(flags, n, stop_at_operand, longopts, shortopts);
	optind = 0; /* glibc: a full re-initialisation, for the second scan of a process */
	while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		f = find_flag(flags, n, opt);
		if (f == NULL)
			return FLAG_BAD;
		r = f->parse(c, f, optarg);
		if (r != FLAG_OK)
			return r;
	}
	return FLAG_OK;
}

/* ---- talking to the daemon ---- */

/* Performs a request; on an HTTP error prints the API's error and returns -1. */
static int call(struct ctl *c, const char *method, const char *path, json_t *body,
		long expect, json_t **reply)
{
	struct ember_error *err = NULL;
	_cleanup_json_ json_t *r = NULL;
	json_t *e;
	long status = 0;

	if (http_client_request(c->http, method, path, body, 0, &status, &r, &err) < 0) {
		fprintf(stderr, "emberctl: %s (is emberd running on %s?)\n", err->message, c->addr);
		ember_error_free(&err);
		return -1;
	}
	if (status != expect) {
		e = json_object_get(r, "error");
		if (c->json && r != NULL) {
			_cleanup_free_ char *text = json_dumps(r, JSON_COMPACT);

			printf("%s\n", text != NULL ? text : "{}");
		}
		fprintf(stderr, "emberctl: %s %s: HTTP %ld %s: %s\n", method, path, status,
			json_string_value(json_object_get(e, "code")) ?: "",
			json_string_value(json_object_get(e, "message")) ?: "(no error body)");
		return -1;
	}
	if (reply != NULL)
		*reply = steal_pointer(&r);
	return 0;
}

static void print_json(json_t *v)
{
	_cleanup_free_ char *text = json_dumps(v, JSON_COMPACT);

	printf("%s\n", text != NULL ? text : "null");
}

/* Writes a text-or-base64 field (see docs/api.md) to f as raw bytes. */
static void write_bytes_field(FILE *f, json_t *obj, const char *key)
{
	char enc_key[64];
	const char *value = json_string_value(json_object_get(obj, key));
	const char *enc;

	snprintf(enc_key, sizeof(enc_key), "%s_encoding", key);
	enc = json_string_value(json_object_get(obj, enc_key));
	if (value == NULL)
		return;
	if (enc != NULL && strcmp(enc, "base64") == 0) {
		_cleanup_free_ uint8_t *raw = NULL;
		size_t len = 0;

		if (base64_decode(value, strlen(value), &raw, &len) == 0)
			fwrite(raw, 1, len, f);
	} else {
		fwrite(value, 1, json_string_length(json_object_get(obj, key)), f);
	}
	fflush(f);
}

/* ---- commands ---- */

static int cmd_create(struct ctl *c, int argc, char **argv)
{
	_cleanup_json_ json_t *reply = NULL;

	(void)argc;
	(void)argv;
	if (call(c, "POST", "/sandboxes", c->body, 201, &reply) < 0)
		return 1;
	if (c->json)
		print_json(reply);
	else
		printf("%s\n", json_string_value(json_object_get(reply, "id")));
	return 0;
}

static int read_file_or_stdin(const char *path, size_t max, char **out, size_t *len)
{
	struct ember_error *err = NULL;

	if (file_read_all(path != NULL ? path : "/dev/stdin", max, out, len, &err) < 0) {
		fprintf(stderr, "emberctl: %s%s\n", path != NULL ? "" : "reading stdin: ",
			err->message);
		ember_error_free(&err);
		return -1;
	}
	return 0;
}

/* code: the CODE operand, or stdin when it is absent or "-"; then --stdin-file and --env. */
static int fill_exec_body(struct ctl *c, const char *code_arg)
{
	_cleanup_free_ char *code = NULL, *stdin_data = NULL;
	size_t len = 0, slen;

	if (code_arg != NULL && strcmp(code_arg, "-") != 0) {
		code = strdup(code_arg);
		len = strlen(code);
	} else if (read_file_or_stdin(NULL, CODE_MAX, &code, &len) < 0) {
		return -1;
	}
	json_object_set_new(c->body, "code", json_stringn(code, len));
	if (c->stdin_file != NULL) {
		if (read_file_or_stdin(c->stdin_file, STDIN_FILE_MAX, &stdin_data, &slen) < 0)
			return -1;
		json_object_set_new(c->body, "stdin", json_stringn(stdin_data, slen));
	}
	if (json_object_size(c->env) > 0)
		json_object_set(c->body, "env", c->env);
	return 0;
}

/* Human output of an exec: its streams as they were, notes on stderr; returns its exit code
 * (128 + the signal when killed by one, as a shell reports it). */
static int print_exec_result(json_t *reply)
{
	int code;

	write_bytes_field(stdout, reply, "stdout");
	write_bytes_field(stderr, reply, "stderr");
	if (json_is_true(json_object_get(reply, "timed_out")))
		fprintf(stderr, "emberctl: exec timed out\n");
	if (json_is_true(json_object_get(reply, "oom_killed")))
		fprintf(stderr, "emberctl: the sandbox ran out of memory: its OOM killer "
				"ended a process of this exec\n");
	if (json_is_true(json_object_get(reply, "truncated")))
		fprintf(stderr, "emberctl: output was truncated\n");
	code = (int)json_integer_value(json_object_get(reply, "exit_code"));
	if (code < 0)
		code = 128 + (int)json_integer_value(json_object_get(reply, "signal"));
	return code;
}

static int cmd_exec(struct ctl *c, int argc, char **argv)
{
	_cleanup_json_ json_t *reply = NULL;
	char path[128];

	if (argc < 1 || argc > 2) {
		fprintf(stderr, "usage: emberctl exec ID [CODE] [--stdin-file F] ...\n");
		return 1;
	}
	if (fill_exec_body(c, argc == 2 ? argv[1] : NULL) < 0)
		return 1;
	snprintf(path, sizeof(path), "/sandboxes/%.64s/exec", argv[0]);
	if (call(c, "POST", path, c->body, 200, &reply) < 0)
		return 1;
	if (!c->json)
		return print_exec_result(reply);
	print_json(reply);
	return 0;
}

static int cmd_ls(struct ctl *c, int argc, char **argv)
{
	_cleanup_json_ json_t *reply = NULL;
	json_t *item;
	size_t i;

	(void)argc;
	(void)argv;
	if (call(c, "GET", "/sandboxes", NULL, 200, &reply) < 0)
		return 1;
	if (c->json) {
		print_json(reply);
		return 0;
	}
	printf("%-36s %-8s %-11s %6s %8s %8s\n", "ID", "PACK", "STATE", "EXECS", "AGE_S", "PID");
	json_array_foreach(json_object_get(reply, "sandboxes"), i, item) {
		printf("%-36s %-8s %-11s %6lld %8lld %8lld\n",
		       json_string_value(json_object_get(item, "id")),
		       json_string_value(json_object_get(item, "language_pack")),
		       json_string_value(json_object_get(item, "state")),
		       json_integer_value(json_object_get(item, "execs_run")),
		       json_integer_value(json_object_get(item, "age_ms")) / 1000,
		       json_integer_value(json_object_get(item, "vmm_pid")));
	}
	return 0;
}

static void print_inspect(json_t *info, json_t *console)
{
	const char *key;
	json_t *value;

	json_object_foreach(info, key, value) {
		_cleanup_free_ char *text = json_dumps(value, JSON_ENCODE_ANY);

		printf("%-14s %s\n", key, text != NULL ? text : "?");
	}
	printf("--- guest console (tail) ---\n");
	write_bytes_field(stdout, console, "console");
	printf("\n");
}

static int cmd_inspect(struct ctl *c, int argc, char **argv)
{
	_cleanup_json_ json_t *info = NULL, *console = NULL;
	char path[128];

	if (argc != 1) {
		usage(stderr);
		return 2;
	}
	snprintf(path, sizeof(path), "/sandboxes/%.64s", argv[0]);
	if (call(c, "GET", path, NULL, 200, &info) < 0)
		return 1;
	snprintf(path, sizeof(path), "/sandboxes/%.64s/console", argv[0]);
	if (call(c, "GET", path, NULL, 200, &console) < 0)
		return 1;
	if (!c->json) {
		print_inspect(info, console);
		return 0;
	}
	json_object_set(info, "console", json_object_get(console, "console"));
	json_object_set(info, "console_encoding", json_object_get(console, "console_encoding"));
	print_json(info);
	return 0;
}

static int cmd_rm(struct ctl *c, int argc, char **argv)
{
	char path[128];
	int i, ret = 0;

	if (argc < 1)
		return fail_msg("%s", "usage: emberctl rm ID...");
	for (i = 0; i < argc; i++) {
		snprintf(path, sizeof(path), "/sandboxes/%.64s", argv[i]);
		if (call(c, "DELETE", path, NULL, 204, NULL) < 0)
			ret = 1;
		else if (!c->json)
			printf("%s\n", argv[i]);
	}
	return ret;
}

static int print_get(struct ctl *c, const char *path)
{
	_cleanup_json_ json_t *reply = NULL;
	_cleanup_free_ char *text = NULL;

	if (call(c, "GET", path, NULL, 200, &reply) < 0)
		return 1;
	if (c->json) {
		print_json(reply);
		return 0;
	}
	text = json_dumps(reply, JSON_INDENT(2));
	printf("%s\n", text != NULL ? text : "");
	return 0;
}

static int cmd_packs(struct ctl *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return print_get(c, "/packs");
}

static int cmd_health(struct ctl *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return print_get(c, "/healthz");
}

/* ---- test: create -> inspect -> exec -> delete, with an assertion on each answer ---- */

/* One assertion: says ok (unless --json) or FAILED; returns cond. */
static bool check(const struct ctl *c, bool cond, const char *what)
{
	if (!cond)
		fprintf(stderr, "emberctl test: FAILED: %s\n", what);
	else if (!c->json)
		printf("ok   %s\n", what);
	return cond;
}

static const char *string_field(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key)) ?: "";
}

/* On success id holds the new sandbox's id (also when a later check fails: it is deleted). */
static bool test_create(struct ctl *c, char *id, size_t id_size)
{
	_cleanup_json_ json_t *body = json_pack("{s:s}", "language_pack", c->pack);
	_cleanup_json_ json_t *reply = NULL;

	if (!check(c, call(c, "POST", "/sandboxes", body, 201, &reply) == 0,
		   "create returns 201"))
		return false;
	snprintf(id, id_size, "%s", string_field(reply, "id"));
	return check(c, strncmp(id, "sb_", 3) == 0, "create returns an sb_ id") &&
	       check(c, strcmp(string_field(reply, "state"), "ready") == 0,
		     "created sandbox is ready");
}

static bool test_inspect(struct ctl *c, const char *id)
{
	_cleanup_json_ json_t *info = NULL;
	char path[128];

	snprintf(path, sizeof(path), "/sandboxes/%s", id);
	return check(c, call(c, "GET", path, NULL, 200, &info) == 0, "inspect returns 200") &&
	       check(c, json_integer_value(json_object_get(info, "vmm_pid")) > 0,
		     "inspect shows a VMM pid") &&
	       check(c, strcmp(string_field(info, "language_pack"), c->pack) == 0,
		     "inspect shows the pack");
}

static bool test_exec(struct ctl *c, const char *id)
{
	const char *code = strcmp(c->pack, "python") == 0
				   ? "import sys; print(6*7); print('e', file=sys.stderr); "
				     "sys.exit(3)"
				   : "echo 42; echo e >&2; exit 3";
	_cleanup_json_ json_t *body = json_pack("{s:s}", "code", code);
	_cleanup_json_ json_t *reply = NULL;
	char path[128];

	snprintf(path, sizeof(path), "/sandboxes/%s/exec", id);
	return check(c, call(c, "POST", path, body, 200, &reply) == 0, "exec returns 200") &&
	       check(c, strcmp(string_field(reply, "stdout"), "42\n") == 0,
		     "exec stdout is 42") &&
	       check(c, strcmp(string_field(reply, "stderr"), "e\n") == 0,
		     "exec stderr is separate") &&
	       check(c, json_integer_value(json_object_get(reply, "exit_code")) == 3,
		     "exec exit code is propagated");
}

/* Clears id once the sandbox is gone. */
static bool test_delete(struct ctl *c, char *id)
{
	struct ember_error *err = NULL;
	char path[128];
	long status = 0;
	bool gone;

	snprintf(path, sizeof(path), "/sandboxes/%s", id);
	if (!check(c, call(c, "DELETE", path, NULL, 204, NULL) == 0, "delete returns 204"))
		return false;
	gone = http_client_request(c->http, "GET", path, NULL, 0, &status, NULL, &err) == 0 &&
	       status == 404;
	ember_error_free(&err);
	if (!check(c, gone, "deleted sandbox is gone (404)"))
		return false;
	id[0] = '\0';
	return true;
}

static int cmd_test(struct ctl *c, int argc, char **argv)
{
	int64_t t0 = time_mono_ms();
	char id[64] = "", path[128];
	bool pass;

	(void)argv;
	if (argc != 0)
		return fail_msg("%s", "usage: emberctl test [--pack python|shell]");
	pass = test_create(c, id, sizeof(id)) && test_inspect(c, id) && test_exec(c, id) &&
	       test_delete(c, id);
	if (id[0] != '\0') {
		snprintf(path, sizeof(path), "/sandboxes/%s", id);
		call(c, "DELETE", path, NULL, 204, NULL);
	}
	if (!pass)
		return 1;
	if (!c->json)
		printf("PASS (%lld ms)\n", (long long)(time_mono_ms() - t0));
	else
		printf("{\"result\":\"pass\",\"duration_ms\":%lld}\n",
		       (long long)(time_mono_ms() - t0));
	return 0;
}

/* ---- the command table, --help, main ---- */

#define FLAGS(table) table, ARRAY_SIZE(table)

static const struct command commands[] = {
	{ "create", "", FLAGS(create_flags), 2, cmd_create, "boot a sandbox; prints its id" },
	{ "exec", "ID [CODE]", FLAGS(exec_flags), 1, cmd_exec,
	  "run CODE (or stdin when CODE is absent or -);\n"
	  "prints its output, exits with its exit code" },
	{ "ls", "", NULL, 0, 0, cmd_ls, "list sandboxes" },
	{ "inspect", "ID", NULL, 0, 0, cmd_inspect, "details and the guest console tail" },
	{ "rm", "ID...", NULL, 0, 0, cmd_rm, "destroy sandboxes" },
	{ "packs", "", NULL, 0, 0, cmd_packs, "list language packs" },
	{ "health", "", NULL, 0, 0, cmd_health, "daemon status" },
	{ "test", "", FLAGS(test_flags), 1, cmd_test,
	  "create, inspect, exec, delete with assertions" },
};

#define HELP_COLUMN 31

/* Pads from column `used` to the help column (or starts a new line), then the help lines. */
static void print_help_text(FILE *out, int used, const char *help)
{
	const char *nl;

	if (used + 2 > HELP_COLUMN)
		used = fprintf(out, "\n") - 1;
	fprintf(out, "%*s", HELP_COLUMN - used, "");
	while ((nl = strchr(help, '\n')) != NULL) {
		fprintf(out, "%.*s\n%*s", (int)(nl - help), help, HELP_COLUMN, "");
		help = nl + 1;
	}
	fprintf(out, "%s\n", help);
}

static int print_flag_synopsis(FILE *out, const struct flag *f)
{
	return fprintf(out, " [--%s%s%s]%s", f->name, f->arg != NULL ? " " : "",
		       f->arg != NULL ? f->arg : "", f->repeats ? "..." : "");
}

static void print_command_help(FILE *out, const struct command *cmd)
{
	int used = fprintf(out, "  %s%s%s", cmd->name, cmd->operands[0] != '\0' ? " " : "",
			   cmd->operands);
	size_t i;

	for (i = 0; i < cmd->nflags; i++)
		used += print_flag_synopsis(out, &cmd->flags[i]);
	print_help_text(out, used, cmd->help);
}

static void usage(FILE *out)
{
	size_t i;
	int used;

	fprintf(out, "usage: emberctl");
	for (i = 0; i < ARRAY_SIZE(global_flags); i++) {
		if (global_flags[i].parse != show_help && global_flags[i].parse != show_version)
			print_flag_synopsis(out, &global_flags[i]);
	}
	fprintf(out, " COMMAND [ARGS]\n"
		     "Talks to emberd (default 127.0.0.1:7777, or $EMBERD_ADDR).\n\nCommands:\n");
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		print_command_help(out, &commands[i]);
	fprintf(out, "\nOptions:\n");
	for (i = 0; i < ARRAY_SIZE(global_flags); i++) {
		used = fprintf(out, "  --%s%s%s", global_flags[i].name,
			       global_flags[i].arg != NULL ? " " : "",
			       global_flags[i].arg != NULL ? global_flags[i].arg : "");
		if (global_flags[i].short_name != 0)
			used += fprintf(out, ", -%c", global_flags[i].short_name);
		print_help_text(out, used, global_flags[i].help);
	}
}

static const struct command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	}
	return NULL;
}

/* The command's flags, then its operands; returns its exit status. */
static int run_command(struct ctl *c, const struct command *cmd, int argc, char **argv)
{
	c->body = json_object();
	c->env = json_object();
	c->pack = "python";
	if (c->body == NULL || c->env == NULL)
		return fail_msg("%s", "out of memory");
	if (cmd->flags == NULL)
		return cmd->run(c, argc - 1, argv + 1);
	opterr = 1; /* "create: unrecognized option ..." */
	if (parse_flags(c, cmd->flags, cmd->nflags, false, argc, argv) != FLAG_OK)
		return cmd->bad_flag_status;
	return cmd->run(c, argc - optind, argv + optind);
}

int main(int argc, char **argv)
{
	const char *env_addr = getenv("EMBERD_ADDR");
	struct ctl c = { .addr = env_addr != NULL ? env_addr : "127.0.0.1:7777" };
	const struct command *cmd;
	struct ember_error *err = NULL;
	int ret;

	/* Global flags come before the command, silently: a bad one gets the usage. */
	opterr = 0;
	switch (parse_flags(&c, global_flags, ARRAY_SIZE(global_flags), true, argc, argv)) {
	case FLAG_OK: break;
	case FLAG_EXIT: return 0;
	case FLAG_BAD: usage(stderr); return 2;
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (http_client_create(c.addr, &c.http, &err) < 0) {
		fprintf(stderr, "emberctl: %s\n", err->message);
		ember_error_free(&err);
		return 1;
	}
	cmd = find_command(argv[optind]);
	if (cmd != NULL) {
		ret = run_command(&c, cmd, argc - optind, argv + optind);
	} else {
		usage(stderr);
		ret = 2;
	}
	json_decref(c.body);
	json_decref(c.env);
	http_client_free(c.http);
	return ret;
}
