/* emberctl - command-line client of emberd's HTTP API. Human output by default, --json for
 * scripts; exits non-zero on any failure (and, for exec, with the exec's own exit code). */
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
#include "util/text.h"
#include "util/timeutil.h"

#define CODE_MAX (256 * 1024)

struct ctl {
	struct http_client *http;
	bool json;
	const char *addr;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: emberctl [--addr HOST:PORT|unix:PATH] [--json] COMMAND [ARGS]\n"
		"Talks to emberd (default 127.0.0.1:7777, or $EMBERD_ADDR).\n"
		"\n"
		"Commands:\n"
		"  create [--pack P] [--vcpus N] [--memory-mib N] [--timeout-s N]\n"
		"                               boot a sandbox; prints its id\n"
		"  exec ID [CODE] [--stdin-file F] [--timeout-ms N] [--env K=V]...\n"
		"                               run CODE (or stdin when CODE is absent or -);\n"
		"                               prints its output, exits with its exit code\n"
		"  ls                           list sandboxes\n"
		"  inspect ID                   details and the guest console tail\n"
		"  rm ID...                     destroy sandboxes\n"
		"  packs                        list language packs\n"
		"  health                       daemon status\n"
		"  test [--pack P]              create, inspect, exec, delete with assertions\n"
		"\n"
		"Options: --json (machine-readable output), --help, --version\n");
}

static int fail_msg(const char *fmt, const char *arg)
{
	fprintf(stderr, "emberctl: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	return 1;
}

/* Performs a request; on an HTTP error prints the API's error and returns -1. */
static int call(struct ctl *c, const char *method, const char *path, json_t *body,
		long expect, json_t **reply)
{
	struct ember_error *err = NULL;
	json_t *r = NULL;
	long status = 0;

	if (http_client_request(c->http, method, path, body, 0, &status, &r, &err) < 0) {
		fprintf(stderr, "emberctl: %s (is emberd running on %s?)\n", err->message, c->addr);
		ember_error_free(&err);
		return -1;
	}
	if (status != expect) {
		json_t *e = json_object_get(r, "error");

		if (c->json && r != NULL) {
			char *text = json_dumps(r, JSON_COMPACT);

			printf("%s\n", text != NULL ? text : "{}");
			free(text);
		}
		fprintf(stderr, "emberctl: %s %s: HTTP %ld %s: %s\n", method, path, status,
			json_string_value(json_object_get(e, "code")) ?: "",
			json_string_value(json_object_get(e, "message")) ?: "(no error body)");
		json_decref(r);
		return -1;
	}
	if (reply != NULL)
		*reply = r;
	else
		json_decref(r);
	return 0;
}

static void print_json(json_t *v)
{
	char *text = json_dumps(v, JSON_COMPACT);

	printf("%s\n", text != NULL ? text : "null");
	free(text);
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
		uint8_t *raw = NULL;
		size_t len = 0;

		if (base64_decode(value, strlen(value), &raw, &len) == 0)
			fwrite(raw, 1, len, f);
		free(raw);
	} else {
		fwrite(value, 1, json_string_length(json_object_get(obj, key)), f);
	}
	fflush(f);
}

static int cmd_create(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pack", required_argument, NULL, 'p' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "memory-mib", required_argument, NULL, 'm' },
		{ "timeout-s", required_argument, NULL, 't' },
		{ 0 },
	};
	json_t *body = json_object(), *reply = NULL;
	int opt, ret = 1;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'p': json_object_set_new(body, "language_pack", json_string(optarg)); break;
		case 'c': json_object_set_new(body, "vcpus", json_integer(atoll(optarg))); break;
		case 'm': json_object_set_new(body, "memory_mib", json_integer(atoll(optarg))); break;
		case 't': json_object_set_new(body, "timeout_s", json_integer(atoll(optarg))); break;
		default: json_decref(body); return 2;
		}
	}
	if (call(c, "POST", "/sandboxes", body, 201, &reply) == 0) {
		if (c->json)
			print_json(reply);
		else
			printf("%s\n", json_string_value(json_object_get(reply, "id")));
		ret = 0;
	}
	json_decref(reply);
	json_decref(body);
	return ret;
}

static int read_all_stdin(char **out, size_t *len)
{
	struct ember_error *err = NULL;

	if (file_read_all("/dev/stdin", CODE_MAX, out, len, &err) < 0) {
		fprintf(stderr, "emberctl: reading stdin: %s\n", err->message);
		ember_error_free(&err);
		return -1;
	}
	return 0;
}

static int cmd_exec(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "stdin-file", required_argument, NULL, 's' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "env", required_argument, NULL, 'e' },
		{ 0 },
	};
	json_t *body = json_object(), *env = json_object(), *reply = NULL;
	_cleanup_free_ char *code = NULL;
	_cleanup_free_ char *stdin_data = NULL;
	const char *stdin_file = NULL;
	char path[128];
	size_t len = 0;
	int opt, ret = 1;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's': stdin_file = optarg; break;
		case 't': json_object_set_new(body, "timeout_ms", json_integer(atoll(optarg))); break;
		case 'e': {
			char *eq = strchr(optarg, '=');

			if (eq == NULL) {
				fail_msg("--env needs NAME=value, got `%s`", optarg);
				goto out;
			}
			*eq = '\0';
			json_object_set_new(env, optarg, json_string(eq + 1));
			break;
		}
		default: goto out;
		}
	}
	if (optind >= argc || optind + 2 < argc) {
		fprintf(stderr, "usage: emberctl exec ID [CODE] [--stdin-file F] ...\n");
		goto out;
	}
	if (optind + 1 < argc && strcmp(argv[optind + 1], "-") != 0) {
		code = strdup(argv[optind + 1]);
		len = strlen(code);
	} else if (read_all_stdin(&code, &len) < 0) {
		goto out;
	}
	json_object_set_new(body, "code", json_stringn(code, len));
	if (stdin_file != NULL) {
		struct ember_error *err = NULL;
		size_t slen;

		if (file_read_all(stdin_file, 1u << 20, &stdin_data, &slen, &err) < 0) {
			fprintf(stderr, "emberctl: %s\n", err->message);
			ember_error_free(&err);
			goto out;
		}
		json_object_set_new(body, "stdin", json_stringn(stdin_data, slen));
	}
	if (json_object_size(env) > 0)
		json_object_set(body, "env", env);
	snprintf(path, sizeof(path), "/sandboxes/%.64s/exec", argv[optind]);
	if (call(c, "POST", path, body, 200, &reply) < 0)
		goto out;
	if (c->json) {
		print_json(reply);
		ret = 0;
	} else {
		write_bytes_field(stdout, reply, "stdout");
		write_bytes_field(stderr, reply, "stderr");
		if (json_is_true(json_object_get(reply, "timed_out")))
			fprintf(stderr, "emberctl: exec timed out\n");
		if (json_is_true(json_object_get(reply, "oom_killed")))
			fprintf(stderr, "emberctl: the sandbox ran out of memory: its OOM killer "
					"ended a process of this exec\n");
		if (json_is_true(json_object_get(reply, "truncated")))
			fprintf(stderr, "emberctl: output was truncated\n");
		ret = (int)json_integer_value(json_object_get(reply, "exit_code"));
		if (ret < 0)
			ret = 128 + (int)json_integer_value(json_object_get(reply, "signal"));
	}
out:
	json_decref(reply);
	json_decref(body);
	json_decref(env);
	return ret;
}

static int cmd_ls(struct ctl *c)
{
	json_t *reply = NULL, *item;
	size_t i;

	if (call(c, "GET", "/sandboxes", NULL, 200, &reply) < 0)
		return 1;
	if (c->json) {
		print_json(reply);
	} else {
		printf("%-36s %-8s %-11s %6s %8s %8s\n", "ID", "PACK", "STATE", "EXECS", "AGE_S",
		       "PID");
		json_array_foreach(json_object_get(reply, "sandboxes"), i, item) {
			printf("%-36s %-8s %-11s %6lld %8lld %8lld\n",
			       json_string_value(json_object_get(item, "id")),
			       json_string_value(json_object_get(item, "language_pack")),
			       json_string_value(json_object_get(item, "state")),
			       json_integer_value(json_object_get(item, "execs_run")),
			       json_integer_value(json_object_get(item, "age_ms")) / 1000,
			       json_integer_value(json_object_get(item, "vmm_pid")));
		}
	}
	json_decref(reply);
	return 0;
}

static int cmd_inspect(struct ctl *c, const char *id)
{
	json_t *info = NULL, *console = NULL;
	char path[128];
	int ret = 1;

	snprintf(path, sizeof(path), "/sandboxes/%.64s", id);
	if (call(c, "GET", path, NULL, 200, &info) < 0)
		return 1;
	snprintf(path, sizeof(path), "/sandboxes/%.64s/console", id);
	if (call(c, "GET", path, NULL, 200, &console) < 0)
		goto out;
	if (c->json) {
		json_object_set(info, "console", json_object_get(console, "console"));
		json_object_set(info, "console_encoding",
				json_object_get(console, "console_encoding"));
		print_json(info);
	} else {
		const char *key;
		json_t *value;

		json_object_foreach(info, key, value) {
			char *text = json_dumps(value, JSON_ENCODE_ANY);

			printf("%-14s %s\n", key, text != NULL ? text : "?");
			free(text);
		}
		printf("--- guest console (tail) ---\n");
		write_bytes_field(stdout, console, "console");
		printf("\n");
	}
	ret = 0;
out:
	json_decref(info);
	json_decref(console);
	return ret;
}

static int cmd_rm(struct ctl *c, int argc, char **argv)
{
	int i, ret = 0;

	if (argc < 2)
		return fail_msg("%s", "usage: emberctl rm ID...");
	for (i = 1; i < argc; i++) {
		char path[128];

		snprintf(path, sizeof(path), "/sandboxes/%.64s", argv[i]);
		if (call(c, "DELETE", path, NULL, 204, NULL) < 0)
			ret = 1;
		else if (!c->json)
			printf("%s\n", argv[i]);
	}
	return ret;
}

static int cmd_simple_get(struct ctl *c, const char *path)
{
	json_t *reply = NULL;

	if (call(c, "GET", path, NULL, 200, &reply) < 0)
		return 1;
	if (c->json) {
		print_json(reply);
	} else {
		char *text = json_dumps(reply, JSON_INDENT(2));

		printf("%s\n", text != NULL ? text : "");
		free(text);
	}
	json_decref(reply);
	return 0;
}

#define CHECK(cond, what) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "emberctl test: FAILED: %s\n", what); \
			goto out; \
		} \
		if (!c->json) \
			printf("ok   %s\n", what); \
	} while (0)

/* A full create -> inspect -> exec -> delete cycle with assertions on each answer. */
static int cmd_test(struct ctl *c, int argc, char **argv)
{
	const char *pack = "python";
	json_t *body = NULL, *reply = NULL, *info = NULL;
	char path[128], id[64] = "";
	const char *code, *expect;
	int64_t t0 = time_mono_ms();
	int ret = 1;
	long status;
	struct ember_error *err = NULL;

	if (argc == 3 && strcmp(argv[1], "--pack") == 0)
		pack = argv[2];
	else if (argc != 1)
		return fail_msg("%s", "usage: emberctl test [--pack python|shell]");
	code = strcmp(pack, "python") == 0 ? "import sys; print(6*7); print('e', file=sys.stderr); "
					     "sys.exit(3)"
					   : "echo 42; echo e >&2; exit 3";
	expect = "42\n";

	body = json_pack("{s:s}", "language_pack", pack);
	CHECK(call(c, "POST", "/sandboxes", body, 201, &reply) == 0, "create returns 201");
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(reply, "id")) ?: "");
	CHECK(strncmp(id, "sb_", 3) == 0, "create returns an sb_ id");
	CHECK(strcmp(json_string_value(json_object_get(reply, "state")) ?: "", "ready") == 0,
	      "created sandbox is ready");
	json_decref(reply);
	reply = NULL;

	snprintf(path, sizeof(path), "/sandboxes/%s", id);
	CHECK(call(c, "GET", path, NULL, 200, &info) == 0, "inspect returns 200");
	CHECK(json_integer_value(json_object_get(info, "vmm_pid")) > 0, "inspect shows a VMM pid");
	CHECK(strcmp(json_string_value(json_object_get(info, "language_pack")) ?: "", pack) == 0,
	      "inspect shows the pack");

	json_decref(body);
	body = json_pack("{s:s}", "code", code);
	snprintf(path, sizeof(path), "/sandboxes/%s/exec", id);
	CHECK(call(c, "POST", path, body, 200, &reply) == 0, "exec returns 200");
	CHECK(strcmp(json_string_value(json_object_get(reply, "stdout")) ?: "", expect) == 0,
	      "exec stdout is 42");
	CHECK(strcmp(json_string_value(json_object_get(reply, "stderr")) ?: "", "e\n") == 0,
	      "exec stderr is separate");
	CHECK(json_integer_value(json_object_get(reply, "exit_code")) == 3,
	      "exec exit code is propagated");

	snprintf(path, sizeof(path), "/sandboxes/%s", id);
	CHECK(call(c, "DELETE", path, NULL, 204, NULL) == 0, "delete returns 204");
	CHECK(http_client_request(c->http, "GET", path, NULL, 0, &status, NULL, &err) == 0 &&
		      status == 404,
	      "deleted sandbox is gone (404)");
	id[0] = '\0';
	if (!c->json)
		printf("PASS (%lld ms)\n", (long long)(time_mono_ms() - t0));
	else
		printf("{\"result\":\"pass\",\"duration_ms\":%lld}\n",
		       (long long)(time_mono_ms() - t0));
	ret = 0;
out:
	ember_error_free(&err);
	if (id[0] != '\0') {
		snprintf(path, sizeof(path), "/sandboxes/%s", id);
		call(c, "DELETE", path, NULL, 204, NULL);
	}
	json_decref(body);
	json_decref(reply);
	json_decref(info);
	return ret;
}

int main(int argc, char **argv)
{
	struct ctl c = { .addr = getenv("EMBERD_ADDR") != NULL ? getenv("EMBERD_ADDR")
							       : "127.0.0.1:7777" };
	struct ember_error *err = NULL;
	const char *cmd;
	int i, ret;

	/* Global options come before the command; the command parses the rest. */
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			c.json = true;
		} else if (strcmp(argv[i], "--addr") == 0 && i + 1 < argc) {
			c.addr = argv[++i];
		} else if (strncmp(argv[i], "--addr=", 7) == 0) {
			c.addr = argv[i] + 7;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("emberctl %s\n", EMBER_VERSION);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	if (http_client_create(c.addr, &c.http, &err) < 0) {
		fprintf(stderr, "emberctl: %s\n", err->message);
		ember_error_free(&err);
		return 1;
	}
	cmd = argv[i];
	argc -= i;
	argv += i;
	if (strcmp(cmd, "create") == 0)
		ret = cmd_create(&c, argc, argv);
	else if (strcmp(cmd, "exec") == 0)
		ret = cmd_exec(&c, argc, argv);
	else if (strcmp(cmd, "ls") == 0)
		ret = cmd_ls(&c);
	else if (strcmp(cmd, "inspect") == 0 && argc == 2)
		ret = cmd_inspect(&c, argv[1]);
	else if (strcmp(cmd, "rm") == 0)
		ret = cmd_rm(&c, argc, argv);
	else if (strcmp(cmd, "packs") == 0)
		ret = cmd_simple_get(&c, "/packs");
	else if (strcmp(cmd, "health") == 0)
		ret = cmd_simple_get(&c, "/healthz");
	else if (strcmp(cmd, "test") == 0)
		ret = cmd_test(&c, argc, argv);
	else {
		usage(stderr);
		ret = 2;
	}
	http_client_free(c.http);
	return ret;
}
