/* commands.c - the commands that map onto one or two API requests (docs/api.md). */
#include "commands.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "files.h"
#include "output.h"
#include "stream.h"
#include "util/cleanup.h"
#include "util/fdio.h"
#include "util/jsonutil.h"

#define CODE_MAX (256 * 1024)
#define STDIN_FILE_MAX (1u << 20)

int cmd_create(struct ctl *c, int argc, char **argv)
{
	_cleanup_json_ json_t *reply = NULL;

	(void)argc;
	(void)argv;
	if (ctl_call(c, "POST", "/sandboxes", c->body, 201, &reply) < 0)
		return 1;
	if (c->json)
		output_json(reply);
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

int cmd_exec(struct ctl *c, int argc, char **argv)
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
	if (!c->json && !c->no_stream)
		return stream_exec(c, path, c->body);
	if (ctl_call(c, "POST", path, c->body, 200, &reply) < 0)
		return 1;
	if (!c->json)
		return output_exec_result(reply);
	output_json(reply);
	return 0;
}

/* Appends text percent-encoded (everything but RFC 3986's unreserved characters) to out. */
static int append_encoded(char *out, size_t size, size_t *used, const char *text)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;

	for (p = (const unsigned char *)text; *p != '\0'; p++) {
		bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			     (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL;

		if (*used + 4 > size)
			return -1;
		if (plain) {
			out[(*used)++] = (char)*p;
		} else {
			out[(*used)++] = '%';
			out[(*used)++] = hex[*p >> 4];
			out[(*used)++] = hex[*p & 15];
		}
	}
	out[*used] = '\0';
	return 0;
}

/* "/sandboxes" with ls's --label and --state as its query. */
static int list_path(const struct ctl *c, char *out, size_t size)
{
	size_t used = (size_t)snprintf(out, size, "/sandboxes"), i;
	json_t *pair;

	json_array_foreach(c->query, i, pair) {
		const char *name = json_string_value(json_array_get(pair, 0));

		if (used + strlen(name) + 3 > size)
			return -1;
		used += (size_t)snprintf(out + used, size - used, "%c%s=", i == 0 ? '?' : '&', name);
		if (append_encoded(out, size, &used,
				   json_string_value(json_array_get(pair, 1))) < 0)
			return -1;
	}
	return 0;
}

int cmd_ls(struct ctl *c, int argc, char **argv)
{
	_cleanup_json_ json_t *reply = NULL;
	char path[900];

	if (argc > 0 && json_array_size(c->query) == 0 && argc <= 2)
		return cmd_ls_files(c, argv[0], argc == 2 ? argv[1] : ".");
	if (argc != 0)
		return ctl_fail("%s", "usage: emberctl ls [--label K[=V]]... [--state S] | "
				      "emberctl ls ID [PATH]");
	if (list_path(c, path, sizeof(path)) < 0)
		return ctl_fail("%s", "ls: the filter is too long for one request");
	if (ctl_call(c, "GET", path, NULL, 200, &reply) < 0)
		return 1;
	if (c->json)
		output_json(reply);
	else
		output_sandbox_list(reply);
	return 0;
}

int cmd_inspect(struct ctl *c, int argc, char **argv)
{
	_cleanup_json_ json_t *info = NULL, *console = NULL;
	char path[128];

	if (argc != 1) {
		cli_usage(stderr);
		return 2;
	}
	snprintf(path, sizeof(path), "/sandboxes/%.64s", argv[0]);
	if (ctl_call(c, "GET", path, NULL, 200, &info) < 0)
		return 1;
	snprintf(path, sizeof(path), "/sandboxes/%.64s/console", argv[0]);
	if (ctl_call(c, "GET", path, NULL, 200, &console) < 0)
		return 1;
	if (!c->json) {
		output_inspect(info, console);
		return 0;
	}
	json_object_set(info, "console", json_object_get(console, "console"));
	json_object_set(info, "console_encoding", json_object_get(console, "console_encoding"));
	output_json(info);
	return 0;
}

int cmd_rm(struct ctl *c, int argc, char **argv)
{
	char path[128];
	int i, ret = 0;

	if (argc < 1)
		return ctl_fail("%s", "usage: emberctl rm ID...");
	for (i = 0; i < argc; i++) {
		snprintf(path, sizeof(path), "/sandboxes/%.64s", argv[i]);
		if (ctl_call(c, "DELETE", path, NULL, 204, NULL) < 0)
			ret = 1;
		else if (!c->json)
			printf("%s\n", argv[i]);
	}
	return ret;
}

int cmd_timeout(struct ctl *c, int argc, char **argv)
{
	_cleanup_json_ json_t *reply = NULL;
	unsigned long long seconds;
	char path[128], *end;

	if (argc != 2)
		return ctl_fail("%s", "usage: emberctl timeout ID SECONDS");
	seconds = strtoull(argv[1], &end, 10);
	if (argv[1][0] < '0' || argv[1][0] > '9' || *end != '\0' || seconds > INT32_MAX)
		return ctl_fail("SECONDS must be a whole number, got `%.100s`", argv[1]);
	json_object_set_new(c->body, "timeout_s", json_integer((json_int_t)seconds));
	snprintf(path, sizeof(path), "/sandboxes/%.64s/timeout", argv[0]);
	if (ctl_call(c, "POST", path, c->body, 200, &reply) < 0)
		return 1;
	if (c->json)
		output_json(reply);
	else
		printf("%s expires_at %s\n", argv[0],
		       json_string_value(json_object_get(reply, "expires_at")));
	return 0;
}

/* The PATCH body's allow list when only --deny was given: the sandbox's current one, read
 * first (the API replaces the allow list whole; a change racing this one may be undone). */
static int keep_allow_list(struct ctl *c, const char *id)
{
	_cleanup_json_ json_t *info = NULL;
	json_t *allow;
	char path[128];

	snprintf(path, sizeof(path), "/sandboxes/%.64s", id);
	if (ctl_call(c, "GET", path, NULL, 200, &info) < 0)
		return -1;
	/* mode none has no list: an empty one gets the daemon's 409, which says why */
	allow = json_object_get(json_object_get(info, "network"), "allow");
	json_object_set_new(c->body, "allow", json_is_array(allow) ? json_copy(allow) : json_array());
	return 0;
}

int cmd_network(struct ctl *c, int argc, char **argv)
{
	_cleanup_json_ json_t *reply = NULL;
	char path[128];

	if (argc != 1)
		return ctl_fail("%s", "usage: emberctl network ID [--allow X]... [--deny X]...");
	if (json_object_get(c->body, "allow") == NULL) {
		if (json_object_get(c->body, "deny") == NULL)
			return ctl_fail("%s", "network: give the new lists with --allow and/or --deny");
		if (keep_allow_list(c, argv[0]) < 0)
			return 1;
	}
	snprintf(path, sizeof(path), "/sandboxes/%.64s/network", argv[0]);
	if (ctl_call(c, "PATCH", path, c->body, 200, &reply) < 0)
		return 1;
	if (c->json)
		output_json(reply);
	else
		output_json_indented(json_object_get(reply, "network"));
	return 0;
}

static int print_get(struct ctl *c, const char *path)
{
	_cleanup_json_ json_t *reply = NULL;

	if (ctl_call(c, "GET", path, NULL, 200, &reply) < 0)
		return 1;
	if (c->json)
		output_json(reply);
	else
		output_json_indented(reply);
	return 0;
}

int cmd_packs(struct ctl *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return print_get(c, "/packs");
}

/* POST /packs/reload: one line per kind of change, naming the packs (or the JSON with --json). */
int cmd_reload(struct ctl *c, int argc, char **argv)
{
	static const char *const kinds[] = { "added", "removed", "changed", "unchanged" };
	_cleanup_json_ json_t *reply = NULL;
	size_t i, j;

	(void)argc;
	(void)argv;
	if (ctl_call(c, "POST", "/packs/reload", NULL, 200, &reply) < 0)
		return 1;
	if (c->json) {
		output_json(reply);
		return 0;
	}
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		json_t *names = json_object_get(reply, kinds[i]);

		printf("%-10s", kinds[i]);
		for (j = 0; j < json_array_size(names); j++) {
			const char *name = json_string_value(json_array_get(names, j));

			printf("%s%s", j == 0 ? "" : ", ", name != NULL ? name : "?");
		}
		printf("%s\n", json_array_size(names) == 0 ? "-" : "");
	}
	return 0;
}

int cmd_health(struct ctl *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return print_get(c, "/healthz");
}
