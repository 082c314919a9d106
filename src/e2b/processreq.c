/* processreq.c - envd process.Process request messages into C values (see processreq.h). */
#include "e2b/processreq.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/sandboxenv.h"
#include "util/cleanup.h"
#include "util/text.h"

#define KIND EMBER_E_INVALID
/* Environment variable names, as the native API takes them (api/requests.c). */

/* The member key of obj, NULL when absent or null (proto3 JSON: null is the default). Both
 * the JSON name and the proto field name are accepted, as protobuf's JSON parsers do; every
 * name this file asks for is one word, so the two are the same. */
static json_t *member(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return v == NULL || json_is_null(v) ? NULL : v;
}

/* A string member (NULL when absent): at most max bytes, no NUL. */
static int get_string(json_t *obj, const char *key, const char *what, size_t max,
		      const char **out, struct ember_error **err)
{
	json_t *v = member(obj, key);

	*out = NULL;
	if (v == NULL)
		return 0;
	if (!json_is_string(v) || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return ember_error_set(err, KIND, 0,
				       "field `%s` must be a string of at most %zu bytes without NUL",
				       what, max);
	*out = json_string_value(v);
	return 0;
}

/* A proto3 JSON integer: a number or a decimal string, within [0, max]. */
static int get_uint(json_t *v, const char *what, uint64_t max, uint64_t *out,
		    struct ember_error **err)
{
	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    (uint64_t)json_integer_value(v) <= max) {
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		uint64_t n = 0;
		size_t i;

		for (i = 0; s[i] >= '0' && s[i] <= '9' && i < 20; i++) {
			n = n * 10 + (uint64_t)(s[i] - '0');
			if (n > max)
				break;
		}
		if (i > 0 && s[i] == '\0' && i == json_string_length(v) && n <= max) {
			*out = n;
			return 0;
		}
	}
	return ember_error_set(err, KIND, 0, "field `%s` must be an integer from 0 to %llu", what,
			       (unsigned long long)max);
}

/* cmd and args into argv: the guest protocol carries up to PROTO_ARGV_MAX non-empty strings of
 * at most PROTO_STRING_MAX bytes (so a command line passed to bash -c is at most that long). */
static int parse_argv(json_t *config, struct e2b_start_request *out, struct ember_error **err)
{
	json_t *args = member(config, "args");
	const char *cmd;
	size_t i;

	if (get_string(config, "cmd", "process.cmd", PROTO_STRING_MAX, &cmd, err) < 0)
		return -1;
	if (cmd == NULL || cmd[0] == '\0')
		return ember_error_set(err, KIND, 0, "field `process.cmd` is required");
	if (args != NULL && !json_is_array(args))
		return ember_error_set(err, KIND, 0, "field `process.args` must be an array of "
						     "strings");
	if (args != NULL && json_array_size(args) + 1 > PROTO_ARGV_MAX)
		return ember_error_set(err, KIND, 0,
				       "field `process.args` has %zu entries: emberd runs at most "
				       "%d (with cmd)", json_array_size(args), PROTO_ARGV_MAX);
	out->argv[0] = strdup(cmd);
	if (out->argv[0] == NULL)
		return ember_error_oom(err);
	out->argc = 1;
	for (i = 0; args != NULL && i < json_array_size(args); i++) {
		json_t *v = json_array_get(args, i);
		const char *s = json_string_value(v);

		if (s == NULL || strlen(s) != json_string_length(v))
			return ember_error_set(err, KIND, 0,
					       "field `process.args` entry %zu must be a string "
					       "without NUL", i);
		if (s[0] == '\0')
			return ember_error_set(err, KIND, 0,
					       "field `process.args` entry %zu is empty: emberd's guest "
					       "protocol carries no empty argument (an empty command "
					       "has nothing to run)", i);
		if (json_string_length(v) > PROTO_STRING_MAX)
			return ember_error_set(err, KIND, 0,
					       "field `process.args` entry %zu has %zu bytes: emberd "
					       "runs commands of at most %d bytes (write a longer "
					       "script to a file and run that)",
					       i, json_string_length(v), PROTO_STRING_MAX);
		out->argv[out->argc] = strdup(s);
		if (out->argv[out->argc] == NULL)
			return ember_error_oom(err);
		out->argc++;
	}
	return 0;
}

/* envs {"NAME": "value"} into "NAME=value" strings. */
static int parse_envs(json_t *config, struct e2b_start_request *out, struct ember_error **err)
{
	json_t *envs = member(config, "envs"), *value;
	const char *name;

	if (envs == NULL)
		return 0;
	if (!json_is_object(envs))
		return ember_error_set(err, KIND, 0, "field `process.envs` must be an object of "
						     "strings");
	if (json_object_size(envs) > PROTO_ENV_MAX)
		return ember_error_set(err, KIND, 0, "field `process.envs` has more than %d entries",
				       PROTO_ENV_MAX);
	json_object_foreach(envs, name, value) {
		const char *s = json_string_value(value);
		size_t n = json_string_length(value);

		if (!sandbox_env_name_valid(name, strlen(name)))
			return ember_error_set(err, KIND, 0,
					       "field `process.envs`: `%.64s` is not a valid variable "
					       "name ([A-Za-z_][A-Za-z0-9_]*, at most %d bytes)", name,
					       SANDBOX_ENV_NAME_MAX);
		if (s == NULL || strlen(s) != n || strlen(name) + 1 + n > PROTO_STRING_MAX)
			return ember_error_set(err, KIND, 0,
					       "field `process.envs.%s` must be a string without NUL, "
					       "at most %d bytes with its name", name,
					       PROTO_STRING_MAX);
		if (asprintf(&out->env[out->envc], "%s=%s", name, s) < 0) {
			out->env[out->envc] = NULL;
			return ember_error_oom(err);
		}
		out->envc++;
	}
	return 0;
}

static int get_bool(json_t *obj, const char *key, bool *out, struct ember_error **err)
{
	json_t *v = member(obj, key);

	*out = false;
	if (v == NULL)
		return 0;
	if (!json_is_boolean(v))
		return ember_error_set(err, KIND, 0, "field `%s` must be a boolean", key);
	*out = json_is_true(v);
	return 0;
}

static int dup_optional(const char *s, char **out, struct ember_error **err)
{
	*out = NULL;
	if (s == NULL || s[0] == '\0') /* proto3: "" is the default, i.e. not set */
		return 0;
	*out = strdup(s);
	return *out != NULL ? 0 : ember_error_oom(err);
}

int e2b_parse_start(json_t *msg, struct e2b_start_request *out, struct ember_error **err)
{
	json_t *config = member(msg, "process"), *pty = member(msg, "pty");
	const char *cwd = NULL, *tag = NULL;

	memset(out, 0, sizeof(*out));
	if (config == NULL || !json_is_object(config)) {
		ember_error_set(err, KIND, 0, "field `process` (a ProcessConfig) is required");
		goto fail;
	}
	if (pty != NULL && !json_is_object(pty)) {
		ember_error_set(err, KIND, 0, "field `pty` must be an object");
		goto fail;
	}
	out->has_pty = pty != NULL;
	if (parse_argv(config, out, err) < 0 || parse_envs(config, out, err) < 0 ||
	    get_string(config, "cwd", "process.cwd", PROTO_STRING_MAX, &cwd, err) < 0 ||
	    get_string(msg, "tag", "tag", PROCS_TAG_MAX, &tag, err) < 0 ||
	    get_bool(msg, "stdin", &out->has_stdin, err) < 0 ||
	    dup_optional(cwd, &out->cwd, err) < 0 || dup_optional(tag, &out->tag, err) < 0)
		goto fail;
	return 0;
fail:
	e2b_start_request_release(out);
	return -1;
}

void e2b_start_request_release(struct e2b_start_request *req)
{
	size_t i;

	for (i = 0; i < req->argc; i++)
		free(req->argv[i]);
	for (i = 0; i < req->envc; i++)
		free(req->env[i]);
	free(req->cwd);
	free(req->tag);
	memset(req, 0, sizeof(*req));
}

/* ProcessSelector: a oneof, so exactly one of pid and tag. */
static int parse_selector(json_t *obj, struct e2b_process_selector *sel, struct ember_error **err)
{
	json_t *pid = member(obj, "pid");
	const char *tag = NULL;
	uint64_t v = 0;

	memset(sel, 0, sizeof(*sel));
	if (get_string(obj, "tag", "process.tag", PROCS_TAG_MAX, &tag, err) < 0)
		return -1;
	if ((pid == NULL) == (tag == NULL))
		return ember_error_set(err, KIND, 0,
				       "field `process` must select a process by exactly one of "
				       "`pid` and `tag`");
	if (tag != NULL) {
		sel->by_tag = true;
		snprintf(sel->tag, sizeof(sel->tag), "%s", tag);
		return 0;
	}
	if (get_uint(pid, "process.pid", UINT32_MAX, &v, err) < 0)
		return -1;
	sel->pid = (uint32_t)v;
	return 0;
}

int e2b_parse_selector_of(json_t *msg, struct e2b_process_selector *sel,
			  struct ember_error **err)
{
	json_t *process = member(msg, "process");

	if (process == NULL || !json_is_object(process))
		return ember_error_set(err, KIND, 0,
				       "field `process` (a ProcessSelector) is required");
	return parse_selector(process, sel, err);
}

int e2b_base64_decode_lenient(const char *in, size_t len, size_t max, uint8_t **out,
			      size_t *out_len, struct ember_error **err)
{
	_cleanup_free_ char *std = NULL;
	size_t i, n = len;

	*out = NULL;
	*out_len = 0;
	while (n > 0 && in[n - 1] == '=') /* padding is optional: strip it, then add it back */
		n--;
	if (len - n > 2 || n % 4 == 1 || n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > max)
		return ember_error_set(err, KIND, 0, "bytes field: bad base64 or more than %zu "
						     "bytes", max);
	std = malloc(n + 4);
	if (std == NULL)
		return ember_error_oom(err);
	for (i = 0; i < n; i++)
		std[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	while (i % 4 != 0)
		std[i++] = '=';
	std[i] = '\0';
	if (i == 0) {
		*out = malloc(1);
		return *out != NULL ? 0 : ember_error_oom(err);
	}
	if (base64_decode(std, i, out, out_len) < 0)
		return ember_error_set(err, KIND, 0, "bytes field: bad base64");
	return 0;
}

int e2b_parse_send_input(json_t *msg, struct e2b_process_selector *sel, uint8_t **data,
			 size_t *len, bool *pty, struct ember_error **err)
{
	json_t *input = member(msg, "input"), *stdin_v, *pty_v, *v;

	*data = NULL;
	*len = 0;
	*pty = false;
	if (e2b_parse_selector_of(msg, sel, err) < 0)
		return -1;
	if (input == NULL || !json_is_object(input))
		return ember_error_set(err, KIND, 0, "field `input` (a ProcessInput) is required");
	stdin_v = member(input, "stdin");
	pty_v = member(input, "pty");
	if ((stdin_v == NULL) == (pty_v == NULL))
		return ember_error_set(err, KIND, 0,
				       "field `input` must hold exactly one of `stdin` and `pty`");
	*pty = pty_v != NULL;
	v = stdin_v != NULL ? stdin_v : pty_v;
	if (!json_is_string(v))
		return ember_error_set(err, KIND, 0, "field `input.%s` must be base64 bytes",
				       *pty ? "pty" : "stdin");
	return e2b_base64_decode_lenient(json_string_value(v), json_string_length(v),
					 E2B_STDIN_MAX, data, len, err);
}

int e2b_parse_send_signal(json_t *msg, struct e2b_process_selector *sel, int *sig,
			  struct ember_error **err)
{
	json_t *v = member(msg, "signal");
	const char *name = json_string_value(v);

	*sig = 0;
	if (e2b_parse_selector_of(msg, sel, err) < 0)
		return -1;
	if (name != NULL && strcmp(name, "SIGNAL_SIGKILL") == 0)
		*sig = SIGKILL;
	else if (name != NULL && strcmp(name, "SIGNAL_SIGTERM") == 0)
		*sig = SIGTERM;
	else if (json_is_integer(v) && (json_integer_value(v) == SIGKILL ||
					json_integer_value(v) == SIGTERM))
		*sig = (int)json_integer_value(v);
	else
		return ember_error_set(err, KIND, 0,
				       "field `signal` must be SIGNAL_SIGKILL (9) or "
				       "SIGNAL_SIGTERM (15)");
	return 0;
}
